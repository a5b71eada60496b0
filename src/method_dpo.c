/* method_dpo.c: the "preference" round method (Self-Rewarding, SPIN, the DPO family).
 * build turns each prompt's scored candidates into at most one chosen/rejected pair (best
 * vs worst by a scorer, right vs wrong by the verifier, or the ground truth vs the model's
 * own sample), encodes both rows, and stores the frozen reference's log-probabilities of
 * every pair once; train minimises preference.loss over random batches of pairs; log
 * writes the pairs and TRL's metrics. The losses themselves live in losses_pref.c. */
#include <math.h>
#include <string.h>

#include "autodidact/preference.h"
#include "round_method.h"

typedef struct {
    long n, n_dropped;
    long *prompt;               /* (n) prompt index in the round's candidates */
    char **chosen, **rejected;  /* (n) owned answer texts */
    double *score_c, *score_r;  /* what the builder ranked by */
    int *correct_c, *correct_r; /* 1 right, 0 wrong, -1 unknown */
    double *ref_c, *ref_r;      /* reference log-prob sums of the answers */
    int *len_c, *len_r;         /* answer tokens (with <eos>) */
    int *tokens, *targets;      /* (2n, T): row 2i the chosen, 2i + 1 the rejected sequence */
    AdPrefRecord *curve;        /* (n_curve) one record per update */
    long n_curve;
} Pairs;

static void pairs_free(Pairs *P) {
    if (!P) return;
    for (long i = 0; i < P->n; i++) {
        free(P->chosen[i]);
        free(P->rejected[i]);
    }
    free(P->prompt), free(P->chosen), free(P->rejected), free(P->score_c), free(P->score_r);
    free(P->correct_c), free(P->correct_r), free(P->ref_c), free(P->ref_r), free(P->len_c);
    free(P->len_r), free(P->tokens), free(P->targets), free(P->curve);
    free(P);
}

static AdStatus pairs_alloc(Pairs *P, long cap, int T) {
    size_t n = (size_t)(cap > 0 ? cap : 1);
    P->prompt = ad_calloc(n, sizeof(long), "pairs");
    P->chosen = ad_calloc(n, sizeof(char *), "pairs");
    P->rejected = ad_calloc(n, sizeof(char *), "pairs");
    P->score_c = ad_calloc(n, sizeof(double), "pairs");
    P->score_r = ad_calloc(n, sizeof(double), "pairs");
    P->correct_c = ad_calloc(n, sizeof(int), "pairs");
    P->correct_r = ad_calloc(n, sizeof(int), "pairs");
    P->ref_c = ad_calloc(n, sizeof(double), "pairs");
    P->ref_r = ad_calloc(n, sizeof(double), "pairs");
    P->len_c = ad_calloc(n, sizeof(int), "pairs");
    P->len_r = ad_calloc(n, sizeof(int), "pairs");
    P->tokens = ad_calloc(2 * n * (size_t)T, sizeof(int), "pair rows");
    P->targets = ad_calloc(2 * n * (size_t)T, sizeof(int), "pair rows");
    return P->prompt && P->chosen && P->rejected && P->score_c && P->score_r && P->correct_c &&
                   P->correct_r && P->ref_c && P->ref_r && P->len_c && P->len_r && P->tokens &&
                   P->targets ? AD_OK : AD_ERR_NOMEM;
}

static char *dup_text(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = ad_malloc(n, "pair text");
    if (p) memcpy(p, s, n);
    return p;
}

/* The pair of prompt p, as candidate indices (ci = -1: the chosen answer is `truth`);
 * 0 if the prompt has no usable pair. */
static int pick_pair(const Run *r, const AdCandidates *c, long p, const char *truth, long *ci,
                     long *ri, double *sc, double *sr) {
    const char *kind = r->cfg->preference.pairs;
    long k0 = p * c->samples, k1 = k0 + c->samples;
    const float *ver = c->scores[AD_SCORE_VERIFIER];
    *ci = *ri = -1;
    if (!strcmp(kind, "spin")) {
        /* the model's first sample that differs from the ground truth */
        for (long k = k0; k < k1 && *ri < 0; k++)
            if (strcmp(c->answer[k], truth) != 0) *ri = k;
        *sc = 1.0, *sr = *ri >= 0 ? ver[*ri] : NAN;
        return *ri >= 0;
    }
    if (!strcmp(kind, "verifier")) {
        for (long k = k0; k < k1; k++) {
            if (c->correct[k] == 1 && *ci < 0) *ci = k;
            if (c->correct[k] == 0 && *ri < 0) *ri = k;
        }
        if (*ci < 0 || *ri < 0) return 0;
        *sc = ver[*ci], *sr = ver[*ri];
        return 1;
    }
    /* best_worst: ties go to the lowest sample index; perplexity ranks lower-is-better */
    int scorer = ad_score_parse(r->cfg->preference.scorer);
    double sign = scorer == AD_SCORE_PERPLEXITY ? -1.0 : 1.0, best = -INFINITY, worst = INFINITY;
    for (long k = k0; k < k1; k++) {
        double s = sign * c->scores[scorer][k];
        if (!isfinite(s)) continue;
        if (s > best) best = s, *ci = k;
        if (s < worst) worst = s, *ri = k;
    }
    if (*ci < 0 || *ci == *ri || !(best - worst > r->cfg->preference.min_margin) ||
        !strcmp(c->answer[*ci], c->answer[*ri]))
        return 0;
    *sc = c->scores[scorer][*ci], *sr = c->scores[scorer][*ri];
    return 1;
}

static AdStatus pref_build(Run *r, RoundBatch *b) {
    const AdExperimentConfig *cfg = r->cfg;
    const AdCandidates *c = b->cand;
    int T = r->T, spin = !strcmp(cfg->preference.pairs, "spin");
    Pairs *P = ad_calloc(1, sizeof *P, "pairs");
    if (!P) return AD_ERR_NOMEM;
    b->own = P;
    AdStatus st = pairs_alloc(P, c->n_prompts, T);
    char truth[AD_TASK_MAX_TEXT];
    for (long p = 0; p < c->n_prompts && !st; p++) {
        if (spin && (st = ad_task_solve(r->task, c->prompt[p], truth))) break;
        long ci, ri;
        double sc, sr;
        if (!pick_pair(r, c, p, truth, &ci, &ri, &sc, &sr)) {
            P->n_dropped++;
            continue;
        }
        long i = P->n;
        P->prompt[i] = p;
        P->chosen[i] = dup_text(ci >= 0 ? c->answer[ci] : truth);
        P->rejected[i] = dup_text(c->answer[ri]);
        if (!P->chosen[i] || !P->rejected[i]) {
            free(P->chosen[i]), free(P->rejected[i]);
            st = AD_ERR_NOMEM;
            break;
        }
        P->n++;
        P->score_c[i] = sc, P->score_r[i] = sr;
        P->correct_c[i] = ci >= 0 ? c->correct[ci] : 1;
        P->correct_r[i] = c->correct[ri];
        int *row = P->tokens + (size_t)2 * i * T, *tgt = P->targets + (size_t)2 * i * T;
        st = ad_data_encode_example(&r->tok, c->prompt[p], P->chosen[i], T, row, tgt, NULL);
        if (!st) st = ad_data_encode_example(&r->tok, c->prompt[p], P->rejected[i], T, row + T,
                                             tgt + T, NULL);
        P->len_c[i] = (int)ad_count_targets(tgt, T);
        P->len_r[i] = (int)ad_count_targets(tgt + T, T);
    }
    if (st) return st;
    long judged = 0, right = 0;
    for (long i = 0; i < P->n; i++) {
        if (P->correct_c[i] < 0 || P->correct_r[i] < 0) continue;
        judged++;
        right += P->correct_c[i] == 1 && P->correct_r[i] == 0;
    }
    b->n_pairs = b->n_examples = P->n;
    b->pairs_dropped = P->n_dropped;
    b->pair_accuracy = judged ? (double)right / judged : NAN;
    /* the frozen reference, once per round: the student before this round's updates (the
     * previous round's model), or the round's teacher */
    const AdModel *ref = !strcmp(cfg->preference.reference, "teacher") ? b->teacher : &r->student;
    double *lp = ad_calloc((size_t)2 * (P->n ? P->n : 1), sizeof(double), "reference log-probs");
    if (!lp) return AD_ERR_NOMEM;
    st = ad_round_rows_logps(ref, P->tokens, P->targets, 2 * P->n, T, 2 * cfg->train.batch_size, lp);
    for (long i = 0; i < P->n && !st; i++) P->ref_c[i] = lp[2 * i], P->ref_r[i] = lp[2 * i + 1];
    free(lp);
    char acc[64] = "";
    if (judged) snprintf(acc, sizeof acc, " | pair accuracy %.1f%%", 100.0 * b->pair_accuracy);
    ad_round_say(r, "round %d | %ld %s pairs, %ld prompt(s) without a usable pair dropped%s",
                 b->round, P->n, cfg->preference.pairs, P->n_dropped, acc);
    return st;
}

/* Scratch of the training loop, sized once. */
typedef struct {
    AdActs acts;
    int *tokens, *targets, *Tb; /* (A, 2B, T), (A, 2B, T), (A) */
    long *idx;                  /* (A, B) pair indices of the update */
    double *logp, *dseq;        /* (2B) */
    int *len;                   /* (2B) */
    double *ref;                /* (2B) */
} Scratch;

static void scratch_free(Scratch *s) {
    ad_acts_free(&s->acts);
    free(s->tokens), free(s->targets), free(s->Tb), free(s->idx), free(s->logp), free(s->dseq);
    free(s->len), free(s->ref);
}

static AdStatus scratch_init(Scratch *s, const AdModelConfig *mc, int A, int B, int T) {
    memset(s, 0, sizeof *s);
    AdStatus st = ad_acts_init(&s->acts, mc, 2 * B, T);
    if (st) return st;
    size_t rows = (size_t)A * 2 * B * T;
    s->tokens = ad_calloc(rows, sizeof(int), "pair batches");
    s->targets = ad_calloc(rows, sizeof(int), "pair batches");
    s->Tb = ad_calloc((size_t)A, sizeof(int), "pair batches");
    s->idx = ad_calloc((size_t)A * B, sizeof(long), "pair batches");
    s->logp = ad_calloc((size_t)2 * B, sizeof(double), "pair batches");
    s->dseq = ad_calloc((size_t)2 * B, sizeof(double), "pair batches");
    s->len = ad_calloc((size_t)2 * B, sizeof(int), "pair batches");
    s->ref = ad_calloc((size_t)2 * B, sizeof(double), "pair batches");
    return s->tokens && s->targets && s->Tb && s->idx && s->logp && s->dseq && s->len && s->ref
               ? AD_OK : AD_ERR_NOMEM;
}

static AdStatus pref_train(Run *r, RoundBatch *b) {
    const AdExperimentConfig *cfg = r->cfg;
    const AdPhaseConfig *p = &cfg->train;
    Pairs *P = b->own;
    if (p->steps == 0 || P->n == 0) {
        ad_round_say(r, "round %d | no preference training (%s)", b->round,
                     P->n ? "train.steps 0" : "no pairs");
        return AD_OK;
    }
    int A = p->grad_accum > 0 ? p->grad_accum : 1, B = p->batch_size, T = r->T;
    int V = r->student.cfg.vocab_size;
    AdPrefLoss L = {(AdPrefKind)ad_pref_parse(cfg->preference.loss), cfg->preference.beta,
                    cfg->preference.label_smoothing, cfg->preference.gamma, cfg->preference.sft_alpha};
    ad_round_say(r, "round %d | %s on %ld pairs, %d steps of %d pair(s), beta %g, reference %s",
                 b->round, cfg->preference.loss, P->n, p->steps, A * B, L.beta,
                 L.kind == AD_PREF_SIMPO ? "none" : cfg->preference.reference);
    Scratch s;
    AdStatus st = scratch_init(&s, &r->student.cfg, A, B, T);
    P->curve = ad_calloc((size_t)p->steps, sizeof(AdPrefRecord), "preference curve");
    if (!st && !P->curve) st = AD_ERR_NOMEM;
    AdAdamW *opt = &r->opt_state;
    opt->cfg = (AdAdamWConfig){(float)p->beta1, (float)p->beta2, (float)p->eps, (float)p->weight_decay};
    AdSchedule sched = {(AdSchedKind)ad_sched_parse(p->schedule), (float)p->lr, (float)p->min_lr,
                        p->warmup_steps, p->steps, p->decay_steps};
    AdRng rng;
    ad_rng_init(&rng, cfg->seed, AD_STREAM_DATA, (uint64_t)b->round);
    size_t per = (size_t)2 * B * T;
    double t_start = ad_time_now(), tps_sum = 0;
    for (long step = 0; step < p->steps && !st; step++) {
        double t0 = ad_time_now();
        float lr = ad_schedule_lr(&sched, step);
        long chosen_tokens = 0, tokens_done = 0;
        for (int a = 0; a < A; a++) {
            int *tk = s.tokens + per * a, *tg = s.targets + per * a;
            for (int j = 0; j < B; j++) {
                long i = (long)ad_rng_below(&rng, (uint32_t)P->n);
                s.idx[(size_t)a * B + j] = i;
                chosen_tokens += P->len_c[i];
                memcpy(tk + (size_t)j * T, P->tokens + (size_t)2 * i * T, sizeof(int) * T);
                memcpy(tg + (size_t)j * T, P->targets + (size_t)2 * i * T, sizeof(int) * T);
                memcpy(tk + (size_t)(B + j) * T, P->tokens + (size_t)(2 * i + 1) * T, sizeof(int) * T);
                memcpy(tg + (size_t)(B + j) * T, P->targets + (size_t)(2 * i + 1) * T, sizeof(int) * T);
            }
            s.Tb[a] = ad_trim_batch(tk, tg, 2 * B, T);
            tokens_done += (long)2 * B * s.Tb[a];
        }
        AdPrefMetrics m;
        memset(&m, 0, sizeof m);
        ad_model_zero_grad(&r->student);
        for (int a = 0; a < A; a++) {
            const int *tk = s.tokens + per * a, *tg = s.targets + per * a;
            for (int j = 0; j < B; j++) {
                long i = s.idx[(size_t)a * B + j];
                s.len[j] = P->len_c[i], s.len[B + j] = P->len_r[i];
                s.ref[j] = P->ref_c[i], s.ref[B + j] = P->ref_r[i];
            }
            ad_model_forward(&r->student, &s.acts, tk, 2 * B, s.Tb[a]);
            ad_pref_seq_logps(s.logp, NULL, s.acts.logits, tg, 2 * B, s.Tb[a], V);
            ad_pref_loss(s.dseq, s.dseq + B, &m, &L, s.logp, s.logp + B, s.len, s.len + B, s.ref,
                         s.ref + B, B, (long)A * B, chosen_tokens);
            ad_pref_seq_dlogits(s.acts.dlogits, s.acts.logits, tg, s.dseq, 2 * B, s.Tb[a], V);
            ad_model_backward(&r->student, &s.acts, tk, 2 * B, s.Tb[a]);
        }
        float gnorm;
        if ((st = ad_method_update(r, b->round, "preference", step, m.loss, lr, &gnorm))) break;
        double now = ad_time_now(), n = (double)m.n, tps = tokens_done / (now - t0 + 1e-12);
        tps_sum += tps;
        AdPrefRecord *pr = &P->curve[P->n_curve++];
        *pr = (AdPrefRecord){step + 1, m.loss, m.rewards_chosen / n, m.rewards_rejected / n,
                             m.rewards_margins / n, m.rewards_accuracies / n, m.logps_chosen / n,
                             m.logps_rejected / n};
        if (b->curve.n < b->curve.cap)
            b->curve.rec[b->curve.n++] = (AdTrainRecord){step + 1, (float)m.loss, lr, gnorm, tps,
                                                         now - t_start};
        if (p->log_every > 0 && ((step + 1) % p->log_every == 0 || step + 1 == p->steps))
            ad_round_say(r, "round %d | step %5ld/%d | loss %.4f | margin %.4f | accuracy %.2f | "
                         "lr %.2e | grad norm %.3f | %.0f tok/s", b->round, step + 1, p->steps,
                         m.loss, pr->rewards_margins, pr->rewards_accuracies, lr, gnorm, tps);
    }
    scratch_free(&s);
    if (P->n_curve) {
        b->loss = P->curve[P->n_curve - 1].loss;
        b->tps = tps_sum / P->n_curve;
    }
    return st;
}

static AdStatus pref_log(Run *r, const RoundBatch *b) {
    const Pairs *P = b->own;
    char **prompts = ad_calloc((size_t)(P->n ? P->n : 1), sizeof(char *), "pair prompts");
    if (!prompts) return AD_ERR_NOMEM;
    for (long i = 0; i < P->n; i++) prompts[i] = b->cand->prompt[P->prompt[i]];
    AdPairLog log = {P->n, prompts, P->chosen, P->rejected, P->score_c, P->score_r, P->correct_c,
                     P->correct_r, P->ref_c, P->ref_r, P->len_c, P->len_r};
    AdStatus st = ad_runlog_write_pairs(&r->log, b->round, &log, P->curve, P->n_curve);
    free(prompts);
    return st;
}

static void pref_release(Run *r, RoundBatch *b) {
    pairs_free(b->own);
    b->own = NULL;
}

const RoundMethod ad_method_preference = {"preference", 1, pref_build, pref_train, pref_log,
                                          pref_release};
