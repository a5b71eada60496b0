/* method_grpo.c: the "grpo" round method, online RL on a verifiable reward (GRPO, Dr. GRPO,
 * RLOO). build scores each of the round's G samples per prompt with rl.reward, turns the
 * rewards into group-relative advantages and stores the sampling policy's per-token
 * log-probabilities (which also serve as the KL reference: the model as the round starts);
 * train makes rl.mu passes of clipped-surrogate updates over the samples; log writes the
 * samples' rewards and advantages and TRL's GRPOTrainer metrics. The objective is losses_rl.c. */
#include <math.h>
#include <string.h>

#include "autodidact/preference.h"
#include "autodidact/rl.h"
#include "round_method.h"

typedef struct {
    long n;                  /* samples = prompts x G */
    int G;
    int *tokens, *targets;   /* (n, T) encoded prompt + answer rows */
    double *reward, *adv;    /* (n) */
    double *old;             /* (n, T) the sampling policy's per-token log-probs (0 if masked) */
    double *old_sum;         /* (n) their sums over the answer */
    int *len;                /* (n) answer tokens (with <eos>) */
    long n_tokens;           /* sum of len */
    long flat_groups;        /* groups whose rewards are all equal */
    AdRlRecord *curve;       /* (n_curve) one record per update */
    long n_curve;
    AdRlRound sum;
} Groups;

static void groups_free(Groups *g) {
    if (!g) return;
    free(g->tokens), free(g->targets), free(g->reward), free(g->adv), free(g->old);
    free(g->old_sum), free(g->len), free(g->curve);
    free(g);
}

/* Per-token log-probabilities (n, T) of n rows under m, Bf rows per forward pass. */
static AdStatus rows_token_logps(const AdModel *m, const int *tokens, const int *targets, long n,
                                 int T, int Bf, double *out) {
    if (Bf > n) Bf = (int)(n > 0 ? n : 1);
    AdActs acts;
    AdStatus st = ad_acts_init(&acts, &m->cfg, Bf, T);
    if (st) return st;
    int *tk = ad_calloc((size_t)Bf * T * 2, sizeof(int), "old log-prob rows");
    double *lp = ad_calloc((size_t)Bf * T, sizeof(double), "old log-prob rows");
    if (!tk || !lp) st = AD_ERR_NOMEM;
    int *tg = tk + (size_t)Bf * T;
    for (long i0 = 0; i0 < n && !st; i0 += Bf) {
        int b = n - i0 < Bf ? (int)(n - i0) : Bf;
        memcpy(tk, tokens + (size_t)i0 * T, sizeof(int) * (size_t)b * T);
        memcpy(tg, targets + (size_t)i0 * T, sizeof(int) * (size_t)b * T);
        int Tb = ad_trim_batch(tk, tg, b, T);
        ad_model_forward(m, &acts, tk, b, Tb);
        ad_pref_token_logps(lp, NULL, acts.logits, tg, b, Tb, m->cfg.vocab_size);
        for (int j = 0; j < b; j++) {
            double *o = out + (size_t)(i0 + j) * T;
            memset(o, 0, sizeof(double) * T);
            memcpy(o, lp + (size_t)j * Tb, sizeof(double) * Tb);
        }
    }
    free(tk);
    free(lp);
    ad_acts_free(&acts);
    return st;
}

static AdStatus grpo_build(Run *r, RoundBatch *b) {
    const AdExperimentConfig *cfg = r->cfg;
    const AdCandidates *c = b->cand;
    int T = r->T, G = c->samples, scorer = ad_score_parse(cfg->rl.reward);
    Groups *g = ad_calloc(1, sizeof *g, "rl groups");
    if (!g) return AD_ERR_NOMEM;
    b->own = g;
    size_t n = (size_t)(c->n > 0 ? c->n : 1);
    g->n = c->n, g->G = G;
    g->tokens = ad_calloc(n * T, sizeof(int), "rl rows");
    g->targets = ad_calloc(n * T, sizeof(int), "rl rows");
    g->old = ad_calloc(n * T, sizeof(double), "rl old log-probs");
    g->reward = ad_calloc(n, sizeof(double), "rl rewards");
    g->adv = ad_calloc(n, sizeof(double), "rl advantages");
    g->old_sum = ad_calloc(n, sizeof(double), "rl old log-probs");
    g->len = ad_calloc(n, sizeof(int), "rl rows");
    if (!g->tokens || !g->targets || !g->old || !g->reward || !g->adv || !g->old_sum || !g->len)
        return AD_ERR_NOMEM;
    AdStatus st = AD_OK;
    long right = 0, known = 0;
    double rsum = 0.0, rss = 0.0;
    for (long i = 0; i < c->n && !st; i++) {
        double v = c->scores[scorer][i];
        if (!isfinite(v))
            return ad_fail(AD_ERR_ARG, "round %d: rl.reward \"%s\" of sample %ld is %g; the reward "
                           "must be computed for every sample", b->round, cfg->rl.reward, i, v);
        g->reward[i] = v;
        rsum += v;
        if (c->correct[i] >= 0) known++, right += c->correct[i];
        int *row = g->tokens + (size_t)i * T, *tgt = g->targets + (size_t)i * T;
        st = ad_data_encode_example(&r->tok, c->prompt[i / G], c->answer[i], T, row, tgt, NULL);
        g->len[i] = (int)ad_count_targets(tgt, T);
        g->n_tokens += g->len[i];
    }
    if (st) return st;
    long n_groups = c->n_prompts;
    g->flat_groups = ad_rl_advantages(g->adv, g->reward, n_groups, G,
                                      !strcmp(cfg->rl.baseline, "rloo") ? AD_RL_BASELINE_RLOO
                                                                       : AD_RL_BASELINE_MEAN,
                                      cfg->rl.scale_rewards);
    double mean = c->n ? rsum / c->n : NAN;
    for (long i = 0; i < c->n; i++) rss += (g->reward[i] - mean) * (g->reward[i] - mean);
    /* the generating model's view of its samples: old log-probs and the KL reference */
    st = rows_token_logps(b->teacher, g->tokens, g->targets, g->n, T, cfg->train.batch_size, g->old);
    for (long i = 0; i < g->n && !st; i++) {
        double s = 0.0;
        for (int t = 0; t < T; t++) s += g->old[(size_t)i * T + t];
        g->old_sum[i] = s;
    }
    g->sum = (AdRlRound){mean, c->n > 1 ? sqrt(rss / (c->n - 1)) : NAN,
                         n_groups ? (double)g->flat_groups / n_groups : NAN,
                         known ? (double)right / known : NAN,
                         c->n ? (double)g->n_tokens / c->n : NAN};
    b->n_examples = g->n;
    /* the curve holds every update of the round: rl.mu passes over the samples */
    int A = cfg->train.grad_accum > 0 ? cfg->train.grad_accum : 1;
    long per = (long)A * cfg->train.batch_size, updates = (long)cfg->rl.mu * ((g->n + per - 1) / per);
    AdTrainRecord *rec = realloc(b->curve.rec, (size_t)(updates ? updates : 1) * sizeof *rec);
    if (!rec) return AD_ERR_NOMEM;
    b->curve.rec = rec, b->curve.cap = updates;
    g->curve = ad_calloc((size_t)(updates ? updates : 1), sizeof(AdRlRecord), "rl curve");
    if (!g->curve) return AD_ERR_NOMEM;
    char acc[48] = "";
    if (known) snprintf(acc, sizeof acc, " | accuracy %.1f%%", 100.0 * g->sum.accuracy);
    ad_round_say(r, "round %d | %ld groups of %d | reward %.3f (std %.3f)%s | %.0f%% groups with "
                 "zero advantage | mean length %.1f", b->round, n_groups, G, mean, g->sum.reward_std,
                 acc, 100.0 * g->sum.frac_reward_zero_std, g->sum.mean_length);
    return st;
}

/* Scratch of the training loop, sized once. */
typedef struct {
    AdActs acts;
    int *tokens, *targets;        /* (B, T) */
    double *logp, *old, *d, *ent; /* (B, T) */
    double *adv;                  /* (B) */
    long *order;                  /* (n) the pass's permutation */
} Scratch;

static void scratch_free(Scratch *s) {
    ad_acts_free(&s->acts);
    free(s->tokens), free(s->targets), free(s->logp), free(s->old), free(s->d), free(s->ent);
    free(s->adv), free(s->order);
}

static AdStatus scratch_init(Scratch *s, const AdModelConfig *mc, int B, int T, long n) {
    memset(s, 0, sizeof *s);
    AdStatus st = ad_acts_init(&s->acts, mc, B, T);
    if (st) return st;
    size_t bt = (size_t)B * T;
    s->tokens = ad_calloc(bt, sizeof(int), "rl batch");
    s->targets = ad_calloc(bt, sizeof(int), "rl batch");
    s->logp = ad_calloc(bt, sizeof(double), "rl batch");
    s->old = ad_calloc(bt, sizeof(double), "rl batch");
    s->d = ad_calloc(bt, sizeof(double), "rl batch");
    s->ent = ad_calloc(bt, sizeof(double), "rl batch");
    s->adv = ad_calloc((size_t)B, sizeof(double), "rl batch");
    s->order = ad_calloc((size_t)(n > 0 ? n : 1), sizeof(long), "rl batch");
    return s->tokens && s->targets && s->logp && s->old && s->d && s->ent && s->adv && s->order
               ? AD_OK : AD_ERR_NOMEM;
}

/* Fisher-Yates shuffle of 0..n-1 from the round's data stream. */
static void shuffle(long *order, long n, AdRng *rng) {
    for (long i = 0; i < n; i++) order[i] = i;
    for (long i = n - 1; i > 0; i--) {
        long j = (long)ad_rng_below(rng, (uint32_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
}

static AdStatus grpo_train(Run *r, RoundBatch *b) {
    const AdExperimentConfig *cfg = r->cfg;
    const AdPhaseConfig *p = &cfg->train;
    Groups *g = b->own;
    long updates = b->curve.cap;
    if (g->n == 0 || updates == 0) {
        ad_round_say(r, "round %d | no RL updates (no samples)", b->round);
        return AD_OK;
    }
    int A = p->grad_accum > 0 ? p->grad_accum : 1, B = p->batch_size, T = r->T;
    int V = r->student.cfg.vocab_size;
    AdRlLoss L = {cfg->rl.epsilon, cfg->rl.epsilon_high, cfg->rl.beta,
                  (AdRlNorm)ad_rl_norm_parse(cfg->rl.norm), T};
    ad_round_say(r, "round %d | %s on %ld samples, %d pass(es) of %ld update(s) of %d sample(s), "
                 "beta %g, epsilon %g", b->round,
                 !strcmp(cfg->rl.baseline, "rloo") ? "RLOO" : cfg->rl.scale_rewards ? "GRPO" : "Dr. GRPO", g->n, cfg->rl.mu,
                 updates / cfg->rl.mu, A * B, L.beta, L.epsilon);
    Scratch s;
    AdStatus st = scratch_init(&s, &r->student.cfg, B, T, g->n);
    AdAdamW *opt = &r->opt_state;
    opt->cfg = (AdAdamWConfig){(float)p->beta1, (float)p->beta2, (float)p->eps, (float)p->weight_decay};
    AdSchedule sched = {(AdSchedKind)ad_sched_parse(p->schedule), (float)p->lr, (float)p->min_lr,
                        p->warmup_steps, (int)updates, p->decay_steps};
    AdRng rng;
    ad_rng_init(&rng, cfg->seed, AD_STREAM_DATA, (uint64_t)b->round);
    double t_start = ad_time_now(), tps_sum = 0;
    long per = (long)A * B, step = 0;
    for (int pass = 0; pass < cfg->rl.mu && !st; pass++) {
        shuffle(s.order, g->n, &rng);
        for (long i0 = 0; i0 < g->n && !st; i0 += per, step++) {
            double t0 = ad_time_now();
            float lr = ad_schedule_lr(&sched, step);
            long n_upd = g->n - i0 < per ? g->n - i0 : per, tok_upd = 0, tokens_done = 0;
            for (long k = 0; k < n_upd; k++) tok_upd += g->len[s.order[i0 + k]];
            AdRlMetrics m;
            memset(&m, 0, sizeof m);
            double ent = 0.0;
            ad_model_zero_grad(&r->student);
            for (long j0 = 0; j0 < n_upd; j0 += B) {
                int nb = n_upd - j0 < B ? (int)(n_upd - j0) : B;
                for (int j = 0; j < nb; j++) {
                    long i = s.order[i0 + j0 + j];
                    memcpy(s.tokens + (size_t)j * T, g->tokens + (size_t)i * T, sizeof(int) * T);
                    memcpy(s.targets + (size_t)j * T, g->targets + (size_t)i * T, sizeof(int) * T);
                    s.adv[j] = g->adv[i];
                }
                int Tb = ad_trim_batch(s.tokens, s.targets, nb, T);
                for (int j = 0; j < nb; j++) /* old log-probs at the trimmed stride */
                    memcpy(s.old + (size_t)j * Tb, g->old + (size_t)s.order[i0 + j0 + j] * T,
                           sizeof(double) * Tb);
                tokens_done += (long)nb * Tb;
                ad_model_forward(&r->student, &s.acts, s.tokens, nb, Tb);
                ad_pref_token_logps(s.logp, s.ent, s.acts.logits, s.targets, nb, Tb, V);
                for (long k = 0; k < (long)nb * Tb; k++) ent += s.ent[k];
                ad_rl_loss(s.d, &m, &L, s.logp, s.old, L.beta != 0.0 ? s.old : NULL, s.targets,
                           s.adv, nb, Tb, n_upd, tok_upd);
                ad_pref_token_dlogits(s.acts.dlogits, s.acts.logits, s.targets, s.d, nb, Tb, V);
                ad_model_backward(&r->student, &s.acts, s.tokens, nb, Tb);
            }
            float gnorm;
            if ((st = ad_method_update(r, b->round, "rl", step, m.loss, lr, &gnorm))) break;
            double now = ad_time_now(), nt = m.tokens ? (double)m.tokens : 1.0;
            double tps = tokens_done / (now - t0 + 1e-12);
            tps_sum += tps;
            AdRlRecord *rec = &g->curve[g->n_curve++];
            *rec = (AdRlRecord){step + 1, m.loss, m.kl / nt, ent / nt, m.clip_low / nt,
                                m.clip_high / nt, (m.clip_low + m.clip_high) / nt, m.ratio / nt};
            if (b->curve.n < b->curve.cap)
                b->curve.rec[b->curve.n++] = (AdTrainRecord){step + 1, (float)m.loss, lr, gnorm,
                                                             tps, now - t_start};
            if (p->log_every > 0 && ((step + 1) % p->log_every == 0 || step + 1 == updates))
                ad_round_say(r, "round %d | update %5ld/%ld | loss %.4f | kl %.4f | clip %.3f | "
                             "entropy %.3f | lr %.2e | grad norm %.3f | %.0f tok/s", b->round,
                             step + 1, updates, m.loss, rec->kl, rec->clip_region, rec->entropy, lr,
                             gnorm, tps);
        }
    }
    scratch_free(&s);
    if (g->n_curve) {
        b->loss = g->curve[g->n_curve - 1].loss;
        b->tps = tps_sum / g->n_curve;
    }
    return st;
}

static AdStatus grpo_log(Run *r, const RoundBatch *b) {
    const Groups *g = b->own;
    AdRlLog log = {g->n, g->reward, g->adv, g->old_sum, g->len};
    return ad_runlog_write_rl(&r->log, b->round, &log, &g->sum, g->curve, g->n_curve);
}

static void grpo_release(Run *r, RoundBatch *b) {
    groups_free(b->own);
    b->own = NULL;
}

const RoundMethod ad_method_grpo = {"grpo", 1, grpo_build, grpo_train, grpo_log, grpo_release};
