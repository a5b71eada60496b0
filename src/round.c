/* round.c: the self-distillation loop (round.h). Round 0 trains on ground truth; each
 * later round: prompts -> teacher generates -> score -> select -> the round method's build
 * and train (round_method.h: one file and one table row per method) -> evaluate -> commit
 * (run file + checkpoint + example pool). Every random choice comes from a stream keyed by
 * (seed, purpose, round), so a resumed run repeats the numbers of an uninterrupted one. The
 * math lives in the modules it calls; what a method trains on lives in its own file. */
#include "round_method.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "autodidact/checkpoint.h"
#include "autodidact/data.h"
#include "autodidact/dist.h"
#include "autodidact/generate.h"
#include "autodidact/losses.h"
#include "autodidact/preference.h"
#include "autodidact/runlog.h"
#include "autodidact/score.h"
#include "autodidact/tasks.h"
#include "autodidact/train.h"
#include "h5util.h"

#define POOL_FORMAT "autodidact-pool"
#define EVAL_LOSS_BATCH 64       /* rows per forward pass of the evaluation loss */

void ad_round_say(const Run *r, const char *fmt, ...) {
    if (r->opt && r->opt->quiet) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ad_log(AD_LOG_INFO, "%s", buf);
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s);
    char *p = ad_malloc(n + 1, "string");
    if (p) memcpy(p, s, n + 1);
    return p;
}

/* ------------------------------------------------------------------ small pieces */

static AdStatus make_dir(const char *path) {
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return ad_fail(AD_ERR_IO, "cannot create directory %s: %s", path, strerror(errno));
    return AD_OK;
}

static AdStatus make_parent_dirs(const char *file) {
    char buf[AD_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", file);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        AdStatus st = make_dir(buf);
        *p = '/';
        if (st) return st;
    }
    return AD_OK;
}

static void ckpt_path(const Run *r, int round, const char *suffix, char *out, size_t cap) {
    snprintf(out, cap, "%s/round_%03d%s", r->ckpt_dir, round, suffix);
}

/* The longest prompt length the run generates answers for (rounds and evaluation). */
static int longest_length(const Run *r) {
    const AdExperimentConfig *c = r->cfg;
    int n = c->task.eval_max_len;
    if (c->rounds.count > 0) {
        int m = c->rounds.length_start + (c->rounds.count - 1) * c->rounds.length_step +
                c->rounds.length_span;
        if (m > n) n = m;
    }
    return n;
}

static int answer_budget(const Run *r, int length) {
    const AdExperimentConfig *c = r->cfg;
    if (c->generate.max_new_tokens > 0) return c->generate.max_new_tokens;
    return r->is_task ? ad_task_max_answer_len(r->task, length) + 1 : r->free_budget;
}

static AdPhaseConfig const *phase(const Run *r, int round) {
    return round == 0 ? &r->cfg->pretrain : &r->cfg->train;
}

/* Writes the pool (all examples with origin < AD_ON_POLICY_ORIGIN) as JSON lines, atomically. */
static AdStatus pool_save(const AdData *pool, const char *path) {
    char tmp[AD_PATH_MAX + 160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return ad_fail(AD_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fprintf(f, "{\"format\": \"%s\", \"version\": 1, \"examples\": %ld}\n", POOL_FORMAT,
                     pool->n_ex) > 0;
    for (long i = 0; i < pool->n_ex && ok; i++) {
        const AdExample *e = &pool->ex[i];
        if (e->origin >= AD_ON_POLICY_ORIGIN) continue;
        cJSON *o = cJSON_CreateObject();
        if (!o) { ok = 0; break; }
        cJSON_AddStringToObject(o, "prompt", e->prompt);
        cJSON_AddStringToObject(o, "answer", e->answer);
        cJSON_AddNumberToObject(o, "origin", e->origin);
        if (e->cut) cJSON_AddTrueToObject(o, "cut");
        char *line = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        ok = line && fprintf(f, "%s\n", line) > 0;
        free(line);
    }
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return ad_fail(AD_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return AD_OK;
}

static AdStatus pool_load(AdData *pool, const char *path) {
    char *text = NULL;
    size_t len = 0;
    AdStatus st = ad_read_file(path, (size_t)1 << 32, &text, &len);
    if (st) return st;
    char *line = text, *save = NULL;
    long lineno = 0;
    for (line = strtok_r(text, "\n", &save); line && !st; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        cJSON *o = cJSON_Parse(line);
        if (!o) {
            st = ad_fail(AD_ERR_FORMAT, "%s:%ld: not a JSON line", path, lineno);
            break;
        }
        if (lineno == 1) {
            const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format");
            const cJSON *ver = cJSON_GetObjectItemCaseSensitive(o, "version");
            if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, POOL_FORMAT) || !cJSON_IsNumber(ver))
                st = ad_fail(AD_ERR_FORMAT, "%s is not an autodidact example pool", path);
            else if (ver->valueint != 1)
                st = ad_fail(AD_ERR_FORMAT, "%s: pool version %d; this program reads version 1",
                             path, ver->valueint);
        } else {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "answer");
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "origin");
            int cut = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "cut"));
            if (!cJSON_IsString(p) || !cJSON_IsString(a) || !cJSON_IsNumber(g))
                st = ad_fail(AD_ERR_FORMAT, "%s:%ld: expected prompt, answer and origin", path, lineno);
            else
                st = ad_data_pool_add_cut(pool, p->valuestring, a->valuestring, g->valueint, cut);
        }
        cJSON_Delete(o);
    }
    if (!st && lineno == 0) st = ad_fail(AD_ERR_FORMAT, "%s is empty", path);
    free(text);
    return st;
}

/* ------------------------------------------------------------------ evaluation */

static AdStatus build_eval_set(Run *r) {
    const AdExperimentConfig *c = r->cfg;
    if (!r->is_task) return AD_OK;
    int lo = c->task.eval_min_len, hi = c->task.eval_max_len, per = c->task.eval_per_len;
    r->n_eval = hi - lo + 1;
    r->eval_len = ad_calloc(r->n_eval, sizeof(int), "evaluation lengths");
    r->eval_prompt = ad_calloc((size_t)r->n_eval * per, sizeof(char *), "evaluation prompts");
    r->eval_answer = ad_calloc((size_t)r->n_eval * per, sizeof(char *), "evaluation answers");
    if (!r->eval_len || !r->eval_prompt || !r->eval_answer) return AD_ERR_NOMEM;
    char prompt[AD_TASK_MAX_TEXT], answer[AD_TASK_MAX_TEXT];
    for (int e = 0; e < r->n_eval; e++) {
        r->eval_len[e] = lo + e;
        AdRng rng;
        ad_rng_init(&rng, c->seed, AD_STREAM_EVAL, (uint64_t)(lo + e));
        for (int i = 0; i < per; i++) {
            AdStatus st = ad_task_example(r->task, lo + e, &rng, prompt, answer);
            if (st) return st;
            size_t k = (size_t)e * per + i;
            r->eval_prompt[k] = xstrdup(prompt);
            r->eval_answer[k] = xstrdup(answer);
            if (!r->eval_prompt[k] || !r->eval_answer[k]) return AD_ERR_NOMEM;
        }
    }
    return AD_OK;
}

typedef struct {
    const Run *r;
    int *right;          /* (n_requests) */
    char *buf;
    size_t cap;
} EvalSink;

static void eval_sink(long req, const AdGenOutput *o, void *user) {
    EvalSink *s = user;
    int n = o->n - (o->stop == AD_STOP_EOS ? 1 : 0);
    ad_tokenizer_decode(&s->r->tok, o->tokens, n, s->buf, s->cap);
    s->right[req] = o->stop == AD_STOP_EOS && strcmp(s->buf, s->r->eval_answer[req]) == 0;
}

/* Greedy exact-match accuracy and teacher-forced answer loss per evaluation length. */
static AdStatus evaluate(Run *r, AdModel *m, double *acc, double *loss, long *n_out, int *frontier) {
    const AdExperimentConfig *c = r->cfg;
    int per = c->task.eval_per_len, S = m->cfg.max_seq_len;
    long n = (long)r->n_eval * per;
    AdStatus st = AD_OK;
    int *ids = ad_calloc((size_t)n * S, sizeof(int), "evaluation prompts");
    AdGenRequest *reqs = ad_calloc(n, sizeof *reqs, "evaluation requests");
    int *right = ad_calloc(n, sizeof(int), "evaluation results");
    int max_new = answer_budget(r, r->eval_len[r->n_eval - 1]);
    EvalSink sink = {r, right, NULL, (size_t)max_new * 8 + 16};
    sink.buf = ad_malloc(sink.cap, "decode buffer");
    AdGenerator g;
    memset(&g, 0, sizeof g);
    AdActs acts;
    memset(&acts, 0, sizeof acts);
    int *rows = NULL;
    if (!ids || !reqs || !right || !sink.buf) {
        st = AD_ERR_NOMEM;
        goto done;
    }
    for (long i = 0; i < n; i++) {
        int *row = ids + (size_t)i * S, k = 0;
        row[0] = r->tok.bos_id;
        st = ad_tokenizer_encode(&r->tok, r->eval_prompt[i], strlen(r->eval_prompt[i]), row + 1, S - 1, &k);
        if (st) goto done;
        reqs[i] = (AdGenRequest){row, k + 1, i, 0};
    }
    int B = c->generate.batch < n ? c->generate.batch : (int)n;
    if ((st = ad_generator_init(&g, m, B, S, max_new, 0))) goto done;
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.temperature = 0.0f, sc.max_new_tokens = max_new, sc.seed = c->seed;
    if ((st = ad_dist_generate(&g, &r->tok, reqs, n, &sc, eval_sink, &sink, NULL, NULL))) goto done;
    /* teacher-forced loss of the ground-truth answers */
    int Bl = per < EVAL_LOSS_BATCH ? per : EVAL_LOSS_BATCH;
    if ((st = ad_acts_init(&acts, &m->cfg, Bl, S))) goto done;
    rows = ad_calloc((size_t)Bl * S * 2, sizeof(int), "evaluation rows");
    if (!rows) {
        st = AD_ERR_NOMEM;
        goto done;
    }
    *frontier = 0;
    int broken = 0;
    for (int e = 0; e < r->n_eval; e++) {
        long ok = 0;
        double lsum = 0.0;
        long lcount = 0;
        for (int i = 0; i < per; i++) ok += right[(size_t)e * per + i];
        for (int i0 = 0; i0 < per; i0 += Bl) {
            int b = per - i0 < Bl ? per - i0 : Bl;
            for (int j = 0; j < b && !st; j++) {
                size_t k = (size_t)e * per + i0 + j;
                st = ad_data_encode_example(&r->tok, r->eval_prompt[k], r->eval_answer[k], S,
                                            rows + (size_t)j * S, rows + (size_t)Bl * S + (size_t)j * S, NULL);
            }
            if (st) goto done;
            int *tg = rows + (size_t)Bl * S;
            int Tb = ad_trim_batch(rows, tg, b, S);
            ad_model_forward(m, &acts, rows, b, Tb);
            lsum += ad_loss_ce(NULL, NULL, acts.logits, tg, b * Tb, m->cfg.vocab_size, 1.0f);
            lcount += ad_count_targets(tg, (long)b * Tb);
        }
        acc[e] = (double)ok / per;
        loss[e] = lcount ? lsum / lcount : NAN;
        n_out[e] = per;
        if (!broken && acc[e] >= 0.9) *frontier = r->eval_len[e];
        else broken = 1;
    }
done:
    free(rows);
    ad_acts_free(&acts);
    ad_generator_free(&g);
    free(sink.buf);
    free(right);
    free(reqs);
    free(ids);
    return st;
}

static void print_eval(const Run *r, int round, const double *acc, int frontier) {
    if (r->opt && r->opt->quiet) return;
    char line[4096];
    int k = snprintf(line, sizeof line, "round %d | eval accuracy by length:", round);
    for (int e = 0; e < r->n_eval && k < (int)sizeof line - 16; e++)
        k += snprintf(line + k, sizeof line - k, " %d:%.0f%%", r->eval_len[e], 100.0 * acc[e]);
    ad_log(AD_LOG_INFO, "%s", line);
    ad_log(AD_LOG_INFO, "round %d | longest length with >= 90%% accuracy at every length up to it: %d",
           round, frontier);
}

/* ------------------------------------------------------------------ training */

static void curve_observe(const AdTrainRecord *rec, void *user) {
    Curve *c = user;
    if (c->n < c->cap) c->rec[c->n++] = *rec;
}

/* Trains `model` with optimizer `opt` for the round's phase. member 0 is the student;
 * member m > 0 is ensemble model m, with its own data stream. */
AdStatus ad_round_train_phase(Run *r, int round, int member, AdModel *model, AdAdamW *opt,
                              const AdData *data, const AdModel *teacher, Curve *curve,
                              double *loss_out, double *tps_out) {
    const AdPhaseConfig *p = phase(r, round);
    if (p->steps == 0) {
        *loss_out = NAN;
        *tps_out = 0;
        return AD_OK;
    }
    AdTrainState st;
    memset(&st, 0, sizeof st);
    st.opt = *opt; /* borrowed: moments carry over between rounds */
    st.opt.cfg = (AdAdamWConfig){(float)p->beta1, (float)p->beta2, (float)p->eps, (float)p->weight_decay};
    ad_rng_init(&st.data_rng, r->cfg->seed, AD_STREAM_DATA, (uint64_t)round + 1000000ull * (uint64_t)member);
    AdTrainOptions o;
    memset(&o, 0, sizeof o);
    o.steps = p->steps;
    o.batch_size = p->batch_size;
    o.seq_len = r->T;
    o.grad_accum = p->grad_accum;
    o.sched = (AdSchedule){(AdSchedKind)ad_sched_parse(p->schedule), (float)p->lr, (float)p->min_lr,
                           p->warmup_steps, p->steps, p->decay_steps};
    o.grad_clip = (float)p->grad_clip;
    o.log_every = r->opt && r->opt->quiet ? 0 : p->log_every;
    o.seed = r->cfg->seed;
    char label[48];
    if (member) snprintf(label, sizeof label, "round %d | ensemble model %d", round, member);
    else snprintf(label, sizeof label, "round %d", round);
    o.label = label;
    AdLossKind lk = (AdLossKind)ad_loss_parse(p->loss);
    if (lk != AD_LOSS_SFT) {
        o.teacher = teacher;
        o.loss = lk;
        o.loss_param = (float)(lk == AD_LOSS_JSD ? p->beta : p->alpha);
        o.tau = (float)p->temperature;
    }
    if (!member && round > 0 && !strcmp(r->cfg->rounds.teacher, "ema")) { /* round 0 makes the EMA */
        o.ema = &r->ema;
        o.ema_decay = (float)r->cfg->rounds.ema_decay;
    }
    if (curve) {
        curve->n = 0;
        o.observer = curve_observe;
        o.observer_user = curve;
    }
    AdStatus s = ad_train(model, &st, data, &o);
    *opt = st.opt; /* hand the (possibly updated) moments back */
    *loss_out = curve && curve->n ? curve->rec[curve->n - 1].loss : NAN;
    double tps = 0;
    for (long i = 0; curve && i < curve->n; i++) tps += curve->rec[i].tokens_per_s;
    *tps_out = curve && curve->n ? tps / curve->n : 0;
    return s;
}

/* Trains every ensemble model on the same data as the student (ground truth in round 0,
 * the pool afterwards); their curves are not logged. */
AdStatus ad_round_train_members(Run *r, int round, const AdData *data, const AdModel *teacher) {
    for (int m = 0; m < r->n_members; m++) {
        double loss, tps;
        AdStatus st = ad_round_train_phase(r, round, m + 1, &r->member[m], &r->member_opt[m], data, teacher,
                                  NULL, &loss, &tps);
        if (st) return ad_fail_context(st, "ensemble model %d", m + 1);
    }
    return AD_OK;
}

/* ------------------------------------------------------------------ a round's candidates */

typedef struct {
    const Run *r;
    AdCandidates *c;
    char *buf;
    size_t cap;
    AdStatus st;
    long tokens;
} CandSink;

static void cand_sink(long req, const AdGenOutput *o, void *user) {
    CandSink *s = user;
    int ended = o->stop == AD_STOP_EOS;
    ad_tokenizer_decode(&s->r->tok, o->tokens, o->n - ended, s->buf, s->cap);
    s->tokens += o->n;
    AdStatus st = ad_candidates_set_answer(s->c, req, s->buf, ended);
    if (st && !s->st) s->st = st;
}

static void gen_progress(long done, long total, long tokens, double secs, void *user) {
    const Run *r = user;
    if ((r->opt && r->opt->quiet) || done == total) return;
    char eta[32];
    ad_format_duration(done ? secs / done * (total - done) : 0, eta, sizeof eta);
    ad_log(AD_LOG_INFO, "  generating: %ld/%ld sequences | %.0f tok/s | ETA %s", done, total,
           tokens / (secs + 1e-9), eta);
}

/* The k-th ground-truth (origin 0) example's prompt of the pool. */
static const char *seed_prompt(const Run *r, long k) {
    for (long i = 0; i < r->pool.n_ex; i++)
        if (r->pool.ex[i].origin == 0 && k-- == 0) return r->pool.ex[i].prompt;
    return "";
}

AdStatus ad_round_candidates(Run *r, int round, int lo, int hi, long np, const AdModel *gen_model,
                             int samples, float temperature, AdCandidates *c, long *tokens) {
    const AdExperimentConfig *cfg = r->cfg;
    AdStatus st = ad_candidates_init(c, np, samples);
    if (st) return st;
    long n_seed = 0; /* rounds.prompt_source seed: the ground-truth examples of round 0 */
    for (long i = 0; i < r->pool.n_ex; i++) n_seed += r->pool.ex[i].origin == 0;
    if (!strcmp(cfg->rounds.prompt_source, "seed") && n_seed == 0)
        return ad_fail(AD_ERR_CONFIG, "rounds.prompt_source: \"seed\", but the pool holds no "
                       "seed examples (task.seed_examples)");
    AdRng rng;
    ad_rng_init(&rng, cfg->seed, AD_STREAM_PROMPTS, (uint64_t)round);
    char prompt[AD_TASK_MAX_TEXT], answer[AD_TASK_MAX_TEXT];
    for (long p = 0; p < np; p++) {
        int len = -1;
        if (r->is_task && !strcmp(cfg->rounds.prompt_source, "seed")) {
            snprintf(prompt, sizeof prompt, "%s", seed_prompt(r, ad_rng_below(&rng, (uint32_t)n_seed)));
            len = ad_task_length(r->task, prompt);
        } else if (r->is_task) {
            len = lo + (int)ad_rng_below(&rng, (uint32_t)(hi - lo + 1));
            if ((st = ad_task_example(r->task, len, &rng, prompt, answer))) return st;
        } else if (r->n_file_lines > 0) {
            snprintf(prompt, sizeof prompt, "%s", r->file_lines[ad_rng_below(&rng, (uint32_t)r->n_file_lines)]);
        } else {
            prompt[0] = '\0';
        }
        if ((st = ad_candidates_set_prompt(c, p, prompt, len))) return st;
    }
    int S = gen_model->cfg.max_seq_len, max_new = answer_budget(r, hi);
    long n = c->n;
    int *ids = ad_calloc((size_t)np * S, sizeof(int), "round prompts");
    AdGenRequest *reqs = ad_calloc(n, sizeof *reqs, "round requests");
    CandSink sink = {r, c, NULL, (size_t)max_new * 64 + 16, AD_OK, 0};
    sink.buf = ad_malloc(sink.cap, "decode buffer");
    AdGenerator g;
    memset(&g, 0, sizeof g);
    if (!ids || !reqs || !sink.buf) {
        st = AD_ERR_NOMEM;
        goto done;
    }
    for (long p = 0; p < np; p++) {
        int *row = ids + (size_t)p * S, k = 0;
        row[0] = r->tok.bos_id;
        if ((st = ad_tokenizer_encode(&r->tok, c->prompt[p], strlen(c->prompt[p]), row + 1, S - 1, &k)))
            goto done;
        for (int s = 0; s < samples; s++)
            reqs[p * samples + s] = (AdGenRequest){row, k + 1, p, s};
    }
    int B = cfg->generate.batch < n ? cfg->generate.batch : (int)n;
    if ((st = ad_generator_init(&g, gen_model, B, S, max_new, 0))) goto done;
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.max_new_tokens = max_new;
    sc.temperature = temperature;
    sc.top_k = cfg->generate.top_k;
    sc.top_p = cfg->generate.top_p;
    sc.min_p = cfg->generate.min_p;
    sc.seed = cfg->seed ^ ((uint64_t)round * 0x9E3779B97F4A7C15ull);
    st = ad_dist_generate(&g, &r->tok, reqs, n, &sc, cand_sink, &sink, gen_progress, r);
    if (!st) st = sink.st;
    *tokens = sink.tokens;
done:
    ad_generator_free(&g);
    free(sink.buf);
    free(reqs);
    free(ids);
    return st;
}

/* Each ensemble model answers the round's prompts greedily; ENSEMBLE scores the share of
 * them that agree with each candidate. */
static AdStatus ensemble_vote(Run *r, int round, int lo, int hi, AdCandidates *c) {
    int M = r->n_members;
    AdCandidates *own = ad_calloc(M, sizeof *own, "ensemble answers");
    char ***others = ad_calloc(M, sizeof *others, "ensemble answers");
    AdStatus st = own && others ? AD_OK : AD_ERR_NOMEM;
    for (int m = 0; m < M && !st; m++) {
        long tokens = 0;
        st = ad_round_candidates(r, round, lo, hi, r->cfg->rounds.prompts, &r->member[m], 1, 0.0f,
                                 &own[m], &tokens);
        if (!st) others[m] = own[m].answer; /* one sample per prompt: answer p is prompt p's */
    }
    if (!st) ad_score_ensemble(c, (char *const *const *)others, M);
    for (int m = 0; own && m < M; m++) ad_candidates_free(&own[m]);
    free(own);
    free(others);
    return st;
}

static AdStatus score_and_select(Run *r, int round, AdCandidates *c, const AdModel *teacher,
                                 long *n_selected) {
    const AdExperimentConfig *cfg = r->cfg;
    AdStatus st = AD_OK;
    if (r->is_task) ad_score_verifier(c, r->task);
    if (cfg->score.length && r->is_task) ad_score_length(c, r->task);
    if (cfg->score.majority) ad_score_majority(c);
    if (cfg->score.logprob &&
        (st = ad_score_logprobs(c, (AdModel *)teacher, &r->tok, cfg->generate.batch, teacher->cfg.max_seq_len)))
        return st;
    if (cfg->score.self_judge &&
        (st = ad_score_judge(c, (AdModel *)teacher, &r->tok, cfg->score.judge_template,
                             cfg->score.judge_verdict, cfg->generate.batch, teacher->cfg.max_seq_len)))
        return st;
    AdSelectConfig s = {cfg->select.length_filter && r->is_task && cfg->score.length,
                        cfg->select.min_agreement,
                        cfg->select.min_ensemble,
                        (AdSelectPolicy)ad_select_parse(cfg->select.policy),
                        ad_score_parse(cfg->select.scorer),
                        cfg->select.threshold,
                        cfg->select.k,
                        cfg->select.frac,
                        cfg->select.one_per_prompt};
    AdRng rng;
    ad_rng_init(&rng, cfg->seed, AD_STREAM_SELECT, (uint64_t)round);
    *n_selected = ad_select(c, &s, &rng);
    return AD_OK;
}

/* ------------------------------------------------------------------ setup and teardown */

static void run_free(Run *r) {
    ad_tokenizer_free(&r->tok);
    ad_model_free(&r->student);
    ad_model_free(&r->base);
    ad_model_free(&r->ema);
    ad_model_free(&r->frozen);
    ad_adamw_free(&r->opt_state);
    for (int m = 0; m < r->n_members; m++) {
        if (r->member) ad_model_free(&r->member[m]);
        if (r->member_opt) ad_adamw_free(&r->member_opt[m]);
    }
    free(r->member);
    free(r->member_opt);
    ad_data_free(&r->pool);
    ad_runlog_close(&r->log);
    if (r->eval_prompt)
        for (long i = 0; i < (long)r->n_eval * r->cfg->task.eval_per_len; i++) {
            free(r->eval_prompt[i]);
            free(r->eval_answer[i]);
        }
    free(r->eval_prompt);
    free(r->eval_answer);
    free(r->eval_len);
    for (long i = 0; i < r->n_file_lines; i++) free(r->file_lines[i]);
    free(r->file_lines);
}

/* The prompts of task.path: one per line (source file; blank lines skipped) or one
 * {"prompt": "..."} object per line (source jsonl). */
static AdStatus load_prompts(Run *r) {
    const AdExperimentConfig *cfg = r->cfg;
    int jsonl = !strcmp(cfg->task.source, "jsonl");
    if (!jsonl && strcmp(cfg->task.source, "file") != 0) return AD_OK;
    char *text = NULL;
    size_t len = 0;
    AdStatus st = ad_read_file(cfg->task.path, (size_t)1 << 30, &text, &len);
    if (st) return ad_fail_context(st, "task.path");
    long n = 1;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    r->file_lines = ad_calloc(n, sizeof(char *), "prompt lines");
    if (!r->file_lines) st = AD_ERR_NOMEM;
    long lineno = 0;
    for (char *l = text, *next; !st && l && *l; l = next) {
        next = strchr(l, '\n');
        if (next) *next++ = '\0';
        lineno++;
        if (!jsonl) {
            if (*l == '\0' || (*l == '\r' && l[1] == '\0')) continue;
            if (!(r->file_lines[r->n_file_lines] = xstrdup(l))) st = AD_ERR_NOMEM;
            else r->n_file_lines++;
            continue;
        }
        if (strspn(l, " \t\r") == strlen(l)) continue;
        cJSON *o = cJSON_Parse(l);
        const cJSON *p = o ? cJSON_GetObjectItemCaseSensitive(o, "prompt") : NULL;
        if (!cJSON_IsString(p))
            st = ad_fail(AD_ERR_FORMAT, "task.path: %s:%ld: expected a JSON object with a string "
                         "\"prompt\" (task.source is \"jsonl\")", cfg->task.path, lineno);
        else if (!(r->file_lines[r->n_file_lines] = xstrdup(p->valuestring)))
            st = AD_ERR_NOMEM;
        else
            r->n_file_lines++;
        cJSON_Delete(o);
    }
    free(text);
    if (!st && r->n_file_lines == 0)
        st = ad_fail(AD_ERR_CONFIG, "task.path: %s has no prompts", cfg->task.path);
    return st;
}

/* The tokenizer of a new student: model.tokenizer_from's (a checkpoint's, or the
 * teacher's), else the task's characters (source task) or bytes. */
static AdStatus new_student_tokenizer(Run *r) {
    const AdExperimentConfig *cfg = r->cfg;
    const char *from = cfg->tokenizer_from;
    if (from[0]) {
        const char *path = strcmp(from, "teacher") ? from : cfg->rounds.teacher_path;
        AdModel tmp;
        AdStatus st = ad_checkpoint_load(path, &tmp, 0, &r->tok, NULL);
        if (st) return ad_fail_context(st, "model.tokenizer_from");
        ad_model_free(&tmp);
        return AD_OK;
    }
    if (r->is_task) {
        const char *alpha = ad_task_alphabet(r->task);
        return ad_tokenizer_init_char(&r->tok, alpha, strlen(alpha));
    }
    return ad_tokenizer_init_byte(&r->tok);
}

/* The student: a checkpoint (model.init_from, with its tokenizer), or a new model over
 * new_student_tokenizer's vocabulary. */
static AdStatus init_student(Run *r) {
    const AdExperimentConfig *cfg = r->cfg;
    AdStatus st;
    if (cfg->init_from[0]) {
        if ((st = ad_checkpoint_load(cfg->init_from, &r->student, 1, &r->tok, NULL)))
            return ad_fail_context(st, "model.init_from");
        return AD_OK;
    }
    if ((st = new_student_tokenizer(r))) return st;
    AdModelConfig mc = cfg->model;
    if (mc.vocab_size == 0) mc.vocab_size = r->tok.vocab_size;
    if (mc.vocab_size < r->tok.vocab_size)
        return ad_fail(AD_ERR_CONFIG, "model.vocab_size %d is smaller than the tokenizer's %d",
                       mc.vocab_size, r->tok.vocab_size);
    if ((st = ad_model_init(&r->student, &mc, 1))) return st;
    AdRng rng;
    ad_rng_init(&rng, cfg->seed, AD_STREAM_INIT, 0);
    ad_model_init_weights(&r->student, &rng, (AdInitKind)cfg->init);
    return AD_OK;
}

/* Log-prob sums of encoded rows under a frozen model (round_method.h). */
AdStatus ad_round_rows_logps(const AdModel *m, const int *tokens, const int *targets, long n,
                             int T, int Bf, double *out) {
    if (n == 0) return AD_OK;
    if (Bf > n) Bf = (int)n;
    AdActs acts;
    AdStatus st = ad_acts_init(&acts, &m->cfg, Bf, T);
    if (st) return st;
    int *tk = ad_calloc((size_t)Bf * T * 2, sizeof(int), "reference rows");
    if (!tk) {
        ad_acts_free(&acts);
        return AD_ERR_NOMEM;
    }
    int *tg = tk + (size_t)Bf * T;
    for (long i0 = 0; i0 < n; i0 += Bf) {
        int b = n - i0 < Bf ? (int)(n - i0) : Bf;
        memcpy(tk, tokens + (size_t)i0 * T, sizeof(int) * (size_t)b * T);
        memcpy(tg, targets + (size_t)i0 * T, sizeof(int) * (size_t)b * T);
        int Tb = ad_trim_batch(tk, tg, b, T);
        ad_model_forward(m, &acts, tk, b, Tb);
        ad_pref_seq_logps(out + i0, NULL, acts.logits, tg, b, Tb, m->cfg.vocab_size);
    }
    free(tk);
    ad_acts_free(&acts);
    return AD_OK;
}

/* 1 if a round's retraining (or round 0's) uses a distillation loss, whose teacher
 * forward pass reads the student's rows. */
static int uses_distillation(const AdExperimentConfig *cfg) {
    return (cfg->rounds.count > 0 && ad_loss_parse(cfg->train.loss) != AD_LOSS_SFT) ||
           (cfg->pretrain.steps > 0 && ad_loss_parse(cfg->pretrain.loss) != AD_LOSS_SFT);
}

/* rounds.teacher "checkpoint": loads it into r->frozen and checks what the rounds need of
 * it: the student's tokenizer, and for distillation the same vocabulary size and a
 * context that holds the training rows. */
static AdStatus load_teacher(Run *r) {
    const AdExperimentConfig *cfg = r->cfg;
    if (strcmp(cfg->rounds.teacher, "checkpoint") != 0) return AD_OK;
    AdTokenizer ttok;
    AdStatus st = ad_checkpoint_load(cfg->rounds.teacher_path, &r->frozen, 0, &ttok, NULL);
    if (st) return ad_fail_context(st, "rounds.teacher_path");
    int same = ttok.vocab_size == r->tok.vocab_size;
    for (int i = 0; same && i < ttok.vocab_size; i++)
        same = ttok.piece_len[i] == r->tok.piece_len[i] &&
               !memcmp(ttok.pieces[i], r->tok.pieces[i], ttok.piece_len[i]);
    int tv = ttok.vocab_size;
    AdTokKind tkind = ttok.kind;
    ad_tokenizer_free(&ttok);
    if (!same)
        return ad_fail(AD_ERR_CONFIG, "rounds.teacher_path: %s has a different vocabulary (%s, %d "
                       "pieces) from the student's (%s, %d pieces); distillation needs the same "
                       "tokenizer: give a new student the teacher's with "
                       "model.tokenizer_from=teacher", cfg->rounds.teacher_path,
                       ad_tok_kind_name(tkind), tv,
                       ad_tok_kind_name(r->tok.kind), r->tok.vocab_size);
    const AdModelConfig *t = &r->frozen.cfg, *s = &r->student.cfg;
    if (uses_distillation(cfg) && t->vocab_size != s->vocab_size)
        return ad_fail(AD_ERR_CONFIG, "rounds.teacher_path: the teacher's model vocabulary (%d) "
                       "must equal the student's (%d, model.vocab_size) for a distillation loss",
                       t->vocab_size, s->vocab_size);
    if (uses_distillation(cfg) && t->max_seq_len < r->T)
        return ad_fail(AD_ERR_CONFIG, "rounds.teacher_path: the teacher's context (%d) must hold "
                       "the training rows of %d tokens (train.seq_len / pretrain.seq_len, or "
                       "model.max_seq_len) for a distillation loss; lower them to %d",
                       t->max_seq_len, r->T, t->max_seq_len);
    return AD_OK;
}

/* Prompts without a task (a file's, or <bos> alone): each must fit the generating model's
 * context, and <bos>, the longest prompt, an answer of the full budget and <eos> must fit
 * the training rows, or the round would fail when it adds the selected answers. */
static AdStatus check_prompts_fit(Run *r) {
    if (r->is_task) return AD_OK;
    int S = r->T;
    if (!strcmp(r->cfg->rounds.teacher, "checkpoint") && r->frozen.cfg.max_seq_len < S)
        S = r->frozen.cfg.max_seq_len;
    int *ids = ad_calloc((size_t)S + 8, sizeof(int), "prompt check");
    if (!ids) return AD_ERR_NOMEM;
    AdStatus st = AD_OK;
    int longest = 0;
    for (long i = 0; i < r->n_file_lines && !st; i++) {
        int n = 0;
        const char *p = r->file_lines[i];
        char why[256] = "is too long";
        int bad = strlen(p) >= AD_TASK_MAX_TEXT;
        if (bad) snprintf(why, sizeof why, "has %zu bytes, more than %d", strlen(p), AD_TASK_MAX_TEXT - 1);
        else if ((bad = ad_tokenizer_encode(&r->tok, p, strlen(p), ids, S + 8, &n) != AD_OK))
            snprintf(why, sizeof why, "cannot be encoded (%s)", ad_errmsg());
        if (bad || n + 3 > S)
            st = ad_fail(AD_ERR_CONFIG, "task.path: prompt %ld of %s (\"%.40s%s\") %s; each "
                         "prompt needs <bos>, itself, an answer token and <eos> within %d tokens",
                         i + 1, r->cfg->task.path, p, strlen(p) > 40 ? "..." : "", why, S);
        if (n > longest) longest = n;
    }
    free(ids);
    r->free_budget = r->T - longest - 1 < 64 ? r->T - longest - 1 : 64;
    if (r->free_budget < 1) r->free_budget = 1;
    int budget = answer_budget(r, 0);
    if (!st && longest + budget + 1 > r->T)
        st = ad_fail(AD_ERR_CONFIG, "generate.max_new_tokens: answers of up to %d tokens after "
                     "prompts of up to %d do not fit the training rows of %d tokens "
                     "(train.seq_len, or the model's context): <bos> prompt answer <eos> needs "
                     "%d; set generate.max_new_tokens to at most %d", budget, longest, r->T,
                     longest + budget + 1, r->T - longest - 1);
    return st;
}

/* The self-judge's template and verdict text must be in the student's vocabulary (a
 * character vocabulary lacks most letters), or scoring fails in round 1. */
static AdStatus check_judge_text(Run *r) {
    const AdExperimentConfig *cfg = r->cfg;
    if (!cfg->score.self_judge) return AD_OK;
    const char *texts[2] = {cfg->score.judge_template, cfg->score.judge_verdict};
    const char *keys[2] = {"score.judge_template", "score.judge_verdict"};
    char literal[512];
    int ids[1024], n = 0;
    for (int k = 0; k < 2; k++) {
        /* the template's text around its {prompt} and {answer} */
        size_t o = 0;
        for (const char *p = texts[k]; *p && o + 1 < sizeof literal;) {
            if (!strncmp(p, "{prompt}", 8)) p += 8;
            else if (!strncmp(p, "{answer}", 8)) p += 8;
            else literal[o++] = *p++;
        }
        literal[o] = '\0';
        if (ad_tokenizer_encode(&r->tok, literal, o, ids, 1024, &n) != AD_OK) {
            char why[256];
            snprintf(why, sizeof why, "%s", ad_errmsg());
            return ad_fail(AD_ERR_CONFIG, "%s: \"%s\" cannot be encoded by the student's %s "
                           "tokenizer (%d pieces): %s", keys[k], texts[k],
                           ad_tok_kind_name(r->tok.kind), r->tok.vocab_size, why);
        }
    }
    return AD_OK;
}

/* The longest task example the run meets (round 0's ground truth, the rounds' prompts
 * and the evaluation grid) must fit the rows before any work starts. */
static AdStatus probe_task_lengths(Run *r) {
    const AdExperimentConfig *cfg = r->cfg;
    if (!r->is_task) {
        if (cfg->pretrain.steps == 0 || cfg->task.seed_examples > 0) return AD_OK;
    }
    struct { const char *what; int len; } use[] = {
        {"round 0's ground truth (task.train_max_len)", cfg->task.train_max_len},
        {"the evaluation (task.eval_max_len)", r->is_task ? cfg->task.eval_max_len : 0},
        {"the rounds' prompts (rounds.length_start, length_step, length_span)",
         r->is_task && cfg->rounds.count > 0
             ? cfg->rounds.length_start + (cfg->rounds.count - 1) * cfg->rounds.length_step +
                   cfg->rounds.length_span : 0},
    };
    for (int i = 0; i < 3; i++) {
        if (use[i].len <= 0) continue;
        AdData d;
        AdStatus st = ad_data_init_task(&d, &r->tok, r->task, use[i].len, use[i].len, r->T);
        ad_data_free(&d);
        if (st) return ad_fail_context(st, "%s", use[i].what);
    }
    return AD_OK;
}

static AdStatus check_memory(const Run *r);

static AdStatus run_setup(Run *r, const AdExperimentConfig *cfg, const AdRunOptions *o) {
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->opt = o;
    AdStatus st;
    ad_set_threads(cfg->threads);
    r->is_task = !strcmp(cfg->task.source, "task");
    if (r->is_task)
        r->task = (AdTaskKind)(ad_task_parse(cfg->task.name) | (cfg->task.pad_answer ? AD_TASK_PADDED : 0));
    snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s.ckpt", cfg->run_file);
    if ((st = load_prompts(r))) return st;
    if ((st = init_student(r))) return st;
    r->T = cfg->train.seq_len > 0 ? cfg->train.seq_len : r->student.cfg.max_seq_len;
    if (cfg->pretrain.seq_len > r->T) r->T = cfg->pretrain.seq_len;
    if (r->T > r->student.cfg.max_seq_len)
        return ad_fail(AD_ERR_CONFIG, "seq_len %d exceeds model.max_seq_len %d", r->T, r->student.cfg.max_seq_len);
    if ((st = check_memory(r))) return st;
    AdAdamWConfig oc = {(float)cfg->pretrain.beta1, (float)cfg->pretrain.beta2, (float)cfg->pretrain.eps,
                        (float)cfg->pretrain.weight_decay};
    if ((st = ad_adamw_init(&r->opt_state, &oc, r->student.n_params))) return st;
    r->n_members = cfg->score.ensemble;
    if (r->n_members) {
        r->member = ad_calloc(r->n_members, sizeof(AdModel), "ensemble models");
        r->member_opt = ad_calloc(r->n_members, sizeof(AdAdamW), "ensemble optimizers");
        if (!r->member || !r->member_opt) return AD_ERR_NOMEM;
        for (int m = 0; m < r->n_members; m++) {
            if ((st = ad_model_init(&r->member[m], &r->student.cfg, 1)) ||
                (st = ad_adamw_init(&r->member_opt[m], &oc, r->student.n_params)))
                return st;
            if (cfg->init_from[0]) {
                ad_model_copy_params(&r->member[m], &r->student);
            } else {
                AdRng rng;
                ad_rng_init(&rng, cfg->seed, AD_STREAM_INIT, (uint64_t)m + 1);
                ad_model_init_weights(&r->member[m], &rng, (AdInitKind)cfg->init);
            }
        }
    }
    if ((st = load_teacher(r))) return st;
    if ((st = check_prompts_fit(r))) return st;
    if ((st = check_judge_text(r))) return st;
    if ((st = probe_task_lengths(r))) return st;
    if ((st = ad_data_init_pool(&r->pool, &r->tok, r->T, 0.0, r->task, cfg->task.train_min_len,
                                cfg->task.train_max_len)))
        return st;
    return build_eval_set(r);
}

/* ------------------------------------------------------------------ memory */

typedef struct {
    const char *key;  /* the config key that sizes this part */
    long value;
    const char *what;
    double bytes;
} MemPart;

/* Bytes of one training phase: activations (twice with a teacher) and the token rows. */
static double phase_bytes(const Run *r, const AdPhaseConfig *p) {
    const AdModelConfig *mc = &r->student.cfg;
    int distill = ad_loss_parse(p->loss) != AD_LOSS_SFT;
    /* a preference batch holds a chosen and a rejected row per pair */
    int rows = p == &r->cfg->train && !strcmp(r->cfg->objective, "preference") ? 2 : 1;
    return ad_acts_bytes(mc, p->batch_size * rows, r->T) * (distill ? 2 : 1) +
           (double)p->batch_size * r->T * p->grad_accum * 2 * sizeof(int);
}

/* Checks, before the run allocates anything big, that its peak memory fits under
 * ad_mem_limit(): the learners' weights, gradients and AdamW moments and the teacher
 * copies, plus the largest of the phases (training, generation and scoring, evaluation,
 * the candidates and the pool). Batches are cut to the sequences they decode, as the
 * phases do. The error names the key behind the largest part. */
static AdStatus check_memory(const Run *r) {
    const AdExperimentConfig *c = r->cfg;
    const AdModelConfig *mc = &r->student.cfg;
    int S = mc->max_seq_len, copies = 0;
    copies += !strcmp(c->rounds.init, "restart");
    copies += strcmp(c->rounds.teacher, "self") != 0;
    double state = ad_model_bytes(mc, 0) * (4.0 * (1 + c->score.ensemble) + copies);
    double n_cand = (double)c->rounds.prompts * c->generate.samples;
    int B = c->generate.batch < n_cand ? c->generate.batch : (int)n_cand;
    int max_new = answer_budget(r, longest_length(r));
    double gen = ad_generator_bytes(mc, B, S, max_new);
    if (c->score.logprob || c->score.self_judge) gen += ad_acts_bytes(mc, B, S);
    /* per prompt: its token row; per candidate: answer text, scores, flags, request */
    double cand = (double)c->rounds.prompts * (S * sizeof(int) + 2.0 * AD_TASK_MAX_TEXT / 8) +
                  n_cand * (AD_SCORE_COUNT * 4.0 + 64 + max_new * 2.0) * (1 + c->rounds.count);
    double n_eval = r->is_task ? (double)(c->task.eval_max_len - c->task.eval_min_len + 1) *
                                     c->task.eval_per_len : 0;
    int Be = c->generate.batch < n_eval ? c->generate.batch : (int)(n_eval > 0 ? n_eval : 1);
    int Bl = c->task.eval_per_len < EVAL_LOSS_BATCH ? c->task.eval_per_len : EVAL_LOSS_BATCH;
    double eval = n_eval * (S * sizeof(int) + 160.0) +
                  (n_eval > 0 ? ad_generator_bytes(mc, Be, S, max_new) + ad_acts_bytes(mc, Bl, S) : 0);
    MemPart part[] = {
        {"pretrain.batch_size", c->pretrain.batch_size, "round 0's training batches",
         phase_bytes(r, &c->pretrain)},
        {"train.batch_size", c->train.batch_size, "the rounds' training batches",
         c->rounds.count ? phase_bytes(r, &c->train) : 0},
        {"generate.batch", B, "the sequences decoded and scored at once", gen},
        {"rounds.prompts", c->rounds.prompts,
         "rounds.prompts x generate.samples candidates a round, and the pool",
         c->rounds.count ? cand : 0},
        {"task.eval_per_len", c->task.eval_per_len, "the evaluation prompts", eval},
        {"task.seed_examples", c->task.seed_examples, "the seed examples",
         c->task.seed_examples * 256.0},
    };
    int big = 0;
    for (int i = 1; i < (int)(sizeof part / sizeof part[0]); i++)
        if (part[i].bytes > part[big].bytes) big = i;
    char sb[32];
    ad_format_bytes(state, sb, sizeof sb);
    AdStatus st;
    if (state >= part[big].bytes)
        st = ad_mem_check(state + part[big].bytes, "model.d_model %d, model.n_layer %d, "
                            "model.vocab_size %d with score.ensemble %d (%s of weights, gradients "
                            "and AdamW moments, %d teacher cop%s)", mc->d_model, mc->n_layer,
                            mc->vocab_size, c->score.ensemble, sb, copies, copies == 1 ? "y" : "ies");
    else
        st = ad_mem_check(state + part[big].bytes, "%s = %ld (%s, plus %s of weights and optimizer "
                          "state)", part[big].key, part[big].value, part[big].what, sb);
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ad_errmsg());
        ad_fail(st, "%s; lower %s", msg, state >= part[big].bytes ? "the model's size" : part[big].key);
    }
    return st;
}

/* The teacher of a round: who generates, and whose distribution distillation matches. */
static const AdModel *round_teacher(Run *r) {
    const char *t = r->cfg->rounds.teacher;
    if (!strcmp(t, "checkpoint") || !strcmp(t, "snapshot")) return &r->frozen;
    if (!strcmp(t, "ema")) return &r->ema;
    return &r->student;
}

/* A learner (the student or an ensemble model) is its weights and optimizer state. */
static AdStatus save_learner(const Run *r, const char *path, const AdModel *m, const AdAdamW *opt) {
    AdTrainState ts;
    memset(&ts, 0, sizeof ts);
    ts.opt = *opt;
    ts.step = opt->step;
    return ad_checkpoint_save(path, m, &r->tok, &ts);
}

/* The first model key whose value differs between a (the checkpoint's) and b (the
 * config's), as "model.KEY: A in the checkpoint, B in the config"; 0 if none. */
static int model_key_diff(const AdModelConfig *a, const AdModelConfig *b, char *buf, size_t cap) {
    struct { const char *key; long x, y; } ints[] = {
        {"vocab_size", a->vocab_size, b->vocab_size}, {"max_seq_len", a->max_seq_len, b->max_seq_len},
        {"n_layer", a->n_layer, b->n_layer},          {"n_head", a->n_head, b->n_head},
        {"n_kv_head", a->n_kv_head, b->n_kv_head},    {"d_model", a->d_model, b->d_model},
        {"d_ff", a->d_ff, b->d_ff},                   {"bias", a->bias, b->bias},
        {"tied", a->tied, b->tied},                   {"qkv_bias", a->qkv_bias, b->qkv_bias},
        {"sliding_window", a->sliding_window, b->sliding_window},
        {"rope_original_max_pos", a->rope_original_max_pos, b->rope_original_max_pos}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].x != ints[i].y) {
            snprintf(buf, cap, "model.%s: %ld in the checkpoint, %ld in the config", ints[i].key,
                     ints[i].x, ints[i].y);
            return 1;
        }
    struct { const char *key; const char *x, *y; } names[] = {
        {"norm", ad_norm_name(a->norm), ad_norm_name(b->norm)},
        {"mlp", ad_mlp_name(a->mlp), ad_mlp_name(b->mlp)},
        {"pos", ad_pos_name(a->pos), ad_pos_name(b->pos)},
        {"rope_scaling", ad_rope_scaling_name(a->rope_scaling), ad_rope_scaling_name(b->rope_scaling)}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].x, names[i].y) != 0) {
            snprintf(buf, cap, "model.%s: \"%s\" in the checkpoint, \"%s\" in the config",
                     names[i].key, names[i].x, names[i].y);
            return 1;
        }
    struct { const char *key; float x, y; } floats[] = {
        {"norm_eps", a->norm_eps, b->norm_eps}, {"rope_theta", a->rope_theta, b->rope_theta},
        {"rope_factor", a->rope_factor, b->rope_factor},
        {"rope_low_freq_factor", a->rope_low_freq_factor, b->rope_low_freq_factor},
        {"rope_high_freq_factor", a->rope_high_freq_factor, b->rope_high_freq_factor}};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
        if (floats[i].x != floats[i].y) {
            snprintf(buf, cap, "model.%s: %.9g in the checkpoint, %.9g in the config",
                     floats[i].key, floats[i].x, floats[i].y);
            return 1;
        }
    return 0;
}

static AdStatus load_learner(const char *path, AdModel *m, AdAdamW *opt) {
    AdModel tmp;
    AdTrainState ts;
    memset(&ts, 0, sizeof ts);
    AdStatus st = ad_checkpoint_load(path, &tmp, 0, NULL, &ts);
    if (st) return st;
    char diff[256];
    if (model_key_diff(&tmp.cfg, &m->cfg, diff, sizeof diff))
        st = ad_fail(AD_ERR_CONFIG, "%s does not match the run's model: %s; the model keys cannot "
                     "change on resume (start a new run with model.init_from=%s to change the "
                     "model from these weights)", path, diff, path);
    else if (tmp.n_params != m->n_params || memcmp(&tmp.cfg, &m->cfg, sizeof tmp.cfg) || !ts.opt.m)
        st = ad_fail(AD_ERR_FORMAT, "%s does not match the run's model or lacks optimizer state", path);
    if (!st) {
        memcpy(m->params_mem, tmp.params_mem, m->n_params * sizeof(float));
        memcpy(opt->m, ts.opt.m, m->n_params * sizeof(float));
        memcpy(opt->v, ts.opt.v, m->n_params * sizeof(float));
        opt->step = ts.opt.step;
    }
    ad_model_free(&tmp);
    ad_train_state_free(&ts);
    return st;
}

static void member_suffix(int m, char *buf, size_t cap) { snprintf(buf, cap, ".ensemble%d.h5", m + 1); }

/* Refuses to commit a round whose weights (student, ensemble models, EMA teacher) hold
 * a NaN or an infinity, naming the model, the tensor and the index. */
static AdStatus check_weights_finite(const Run *r, int round) {
    AdStatus st = ad_model_check_finite(&r->student);
    if (st) return ad_fail_context(st, "round %d left non-finite weights in the student", round);
    for (int m = 0; m < r->n_members; m++)
        if ((st = ad_model_check_finite(&r->member[m])))
            return ad_fail_context(st, "round %d left non-finite weights in ensemble model %d",
                                   round, m + 1);
    if (!strcmp(r->cfg->rounds.teacher, "ema") && (st = ad_model_check_finite(&r->ema)))
        return ad_fail_context(st, "round %d left non-finite weights in the EMA teacher", round);
    return AD_OK;
}

static AdStatus save_round_state(Run *r, int round) {
    char path[AD_PATH_MAX + 64], suffix[32];
    AdStatus st = check_weights_finite(r, round);
    if (st) return st;
    st = make_dir(r->ckpt_dir);
    if (st) return st;
    ckpt_path(r, round, ".h5", path, sizeof path);
    if ((st = save_learner(r, path, &r->student, &r->opt_state))) return st;
    for (int m = 0; m < r->n_members; m++) {
        member_suffix(m, suffix, sizeof suffix);
        ckpt_path(r, round, suffix, path, sizeof path);
        if ((st = save_learner(r, path, &r->member[m], &r->member_opt[m]))) return st;
    }
    ckpt_path(r, round, ".pool.jsonl", path, sizeof path);
    if ((st = pool_save(&r->pool, path))) return st;
    if (!strcmp(r->cfg->rounds.teacher, "ema")) {
        ckpt_path(r, round, ".ema.h5", path, sizeof path);
        if ((st = ad_checkpoint_save(path, &r->ema, &r->tok, NULL))) return st;
    }
    return AD_OK;
}

/* After a round is committed: keep the last N rounds' files (round 0 stays while
 * init = restart needs it). Never before the commit, or a crash in between would leave
 * the run file pointing at a deleted checkpoint. */
static void prune_round_state(Run *r, int round) {
    int keep = r->cfg->keep_checkpoints;
    if (keep <= 0 || round - keep < 0) return;
    int old = round - keep;
    if (old == 0 && !strcmp(r->cfg->rounds.init, "restart")) return;
    char path[AD_PATH_MAX + 64], suffix[32];
    const char *suffixes[] = {".h5", ".pool.jsonl", ".ema.h5"};
    for (int i = 0; i < 3; i++) {
        ckpt_path(r, old, suffixes[i], path, sizeof path);
        remove(path);
    }
    for (int m = 0; m < r->n_members; m++) {
        member_suffix(m, suffix, sizeof suffix);
        ckpt_path(r, old, suffix, path, sizeof path);
        remove(path);
    }
}

static AdStatus load_round_state(Run *r, int round) {
    char path[AD_PATH_MAX + 64], suffix[32];
    ckpt_path(r, round, ".h5", path, sizeof path);
    AdStatus st = load_learner(path, &r->student, &r->opt_state);
    if (st) return ad_fail_context(st, "resuming after round %d", round);
    for (int m = 0; m < r->n_members; m++) {
        member_suffix(m, suffix, sizeof suffix);
        ckpt_path(r, round, suffix, path, sizeof path);
        if ((st = load_learner(path, &r->member[m], &r->member_opt[m])))
            return ad_fail_context(st, "resuming after round %d", round);
    }
    ckpt_path(r, round, ".pool.jsonl", path, sizeof path);
    ad_data_pool_remove(&r->pool, -1000000000, 2000000000);
    if ((st = pool_load(&r->pool, path))) return st;
    if (!strcmp(r->cfg->rounds.teacher, "ema")) {
        ckpt_path(r, round, ".ema.h5", path, sizeof path);
        ad_model_free(&r->ema);
        if ((st = ad_checkpoint_load(path, &r->ema, 0, NULL, NULL))) return st;
    }
    if (!strcmp(r->cfg->rounds.init, "restart")) {
        ckpt_path(r, 0, ".h5", path, sizeof path);
        ad_model_free(&r->base);
        if ((st = ad_checkpoint_load(path, &r->base, 0, NULL, NULL))) return st;
    }
    return AD_OK;
}

/* ------------------------------------------------------------------ the loop */

/* Pieces of the progress lines that only a task has: prompt lengths, label accuracy
 * against the verifier, and the share of fresh ground truth. Empty for other sources. */
static const char *prompt_lengths(const Run *r, int lo, int hi, char *buf, size_t cap) {
    if (r->is_task) snprintf(buf, cap, " at lengths %d..%d", lo, hi);
    else if (r->n_file_lines) snprintf(buf, cap, " (from %.80s)", r->cfg->task.path);
    else snprintf(buf, cap, " (<bos> alone)");
    return buf;
}

static const char *label_accuracy(double label_acc, double cand_acc, char *buf, size_t cap) {
    if (isnan(label_acc) && isnan(cand_acc)) snprintf(buf, cap, " (no verifier)");
    else if (isnan(label_acc)) /* nothing selected */
        snprintf(buf, cap, " | label accuracy - (all candidates %.1f%%)", 100.0 * cand_acc);
    else snprintf(buf, cap, " | label accuracy %.1f%% (all candidates %.1f%%)", 100.0 * label_acc,
                  100.0 * cand_acc);
    return buf;
}

/* Text without a task (stories) cut at generate.max_new_tokens trains without an <eos> the
 * model never produced; a task's answers keep the <eos> as they always did. */
int ad_round_answer_was_cut(const Run *r, const AdCandidates *c, long i) {
    return !r->is_task && !c->ended[i];
}

/* The method table: a round method is a file (method_*.c) and a row here. */
static const RoundMethod *const round_methods[] = {&ad_method_sft, &ad_method_distillation,
                                                   &ad_method_preference, &ad_method_grpo};

const RoundMethod *ad_round_method(const AdExperimentConfig *cfg, int round) {
    if (round == 0) return &ad_method_ground_truth;
    for (size_t i = 0; i < sizeof round_methods / sizeof round_methods[0]; i++)
        if (!strcmp(round_methods[i]->name, cfg->objective)) return round_methods[i];
    return NULL; /* the config schema admits only the names above */
}

/* What a round measures besides its method's curve. */
typedef struct {
    double t_gen, t_score, t_train, t_eval, gen_tps;
    double label_acc, cand_acc; /* selected / all candidates right, where a verifier knows */
    double *acc, *eloss;        /* (n_eval) evaluation by length */
    long *en;
    int frontier;
} RoundStats;

/* Difficulty of a round's prompts: round 0's ground truth, then the rounds' schedule. */
static void round_lengths(const Run *r, int round, int *lo, int *hi) {
    const AdExperimentConfig *c = r->cfg;
    if (round == 0) {
        *lo = c->task.train_min_len, *hi = c->task.train_max_len;
        return;
    }
    *lo = c->rounds.length_start + (round - 1) * c->rounds.length_step;
    *hi = *lo + c->rounds.length_span;
}

/* The teacher of a round; rounds.teacher "snapshot" copies the student first. */
static AdStatus choose_teacher(Run *r, int round, const AdModel **teacher) {
    if (round > 0 && !strcmp(r->cfg->rounds.teacher, "snapshot")) {
        ad_model_free(&r->frozen);
        AdStatus st = ad_model_init(&r->frozen, &r->student.cfg, 0);
        if (!st) st = ad_model_copy_params(&r->frozen, &r->student);
        if (st) return st;
    }
    *teacher = round_teacher(r);
    return AD_OK;
}

/* Prompts, generation by the teacher (and the ensemble's votes), scoring and selection
 * into b->cand; label accuracy of the selection against the verifier. */
static AdStatus generate_and_select(Run *r, RoundBatch *b, RoundStats *s) {
    const AdExperimentConfig *cfg = r->cfg;
    char what[128];
    long tokens = 0;
    ad_round_say(r, "round %d | %ld prompts%s, %d sample%s each, teacher %s", b->round,
                 (long)cfg->rounds.prompts, prompt_lengths(r, b->lo, b->hi, what, sizeof what),
                 cfg->generate.samples, cfg->generate.samples > 1 ? "s" : "", cfg->rounds.teacher);
    double t = ad_time_now();
    AdStatus st = ad_round_candidates(r, b->round, b->lo, b->hi, cfg->rounds.prompts, b->teacher,
                                      cfg->generate.samples, cfg->generate.temperature, b->cand, &tokens);
    if (!st && r->n_members) st = ensemble_vote(r, b->round, b->lo, b->hi, b->cand);
    if (st) return st;
    s->t_gen = ad_time_now() - t;
    s->gen_tps = tokens / (s->t_gen + 1e-9);
    t = ad_time_now();
    if ((st = score_and_select(r, b->round, b->cand, b->teacher, &b->n_selected))) return st;
    s->t_score = ad_time_now() - t;
    const AdCandidates *c = b->cand;
    long right = 0, known = 0, sel_right = 0, sel_known = 0;
    for (long i = 0; i < c->n; i++) {
        if (c->correct[i] < 0) continue;
        known++, right += c->correct[i];
        if (c->selected[i]) sel_known++, sel_right += c->correct[i];
    }
    s->cand_acc = known ? (double)right / known : NAN;
    s->label_acc = sel_known ? (double)sel_right / sel_known : NAN;
    ad_round_say(r, "round %d | generated %ld candidates (%.0f tok/s) | selected %ld (%.1f%%)%s",
                 b->round, c->n, s->gen_tps, b->n_selected, 100.0 * b->n_selected / (c->n ? c->n : 1),
                 label_accuracy(s->label_acc, s->cand_acc, what, sizeof what));
    return AD_OK;
}

/* rounds.init "restart": the student starts every later round from round 0's weights
 * with fresh optimizer moments. */
static AdStatus restart_learner(Run *r) {
    if (strcmp(r->cfg->rounds.init, "restart") != 0) return AD_OK;
    AdStatus st = ad_model_copy_params(&r->student, &r->base);
    if (st) return st;
    memset(r->opt_state.m, 0, r->opt_state.n * sizeof(float));
    memset(r->opt_state.v, 0, r->opt_state.n * sizeof(float));
    r->opt_state.step = 0;
    return AD_OK;
}

/* Commits a round: checkpoint first, then the run file (whose counter says the round is
 * done), then prunes old checkpoints. */
static AdStatus commit_round(Run *r, const RoundMethod *m, const RoundBatch *b, const RoundStats *s,
                             double t0) {
    double t_write = ad_time_now();
    AdStatus st = ad_dist_agree(ad_dist_is_root() ? save_round_state(r, b->round) : AD_OK);
    if (!st && b->cand) st = ad_runlog_write_candidates(&r->log, b->round, b->cand);
    if (!st && m->log) st = m->log(r, b);
    if (!st) st = ad_runlog_write_train_curve(&r->log, b->round, b->curve.rec, b->curve.n);
    if (!st && r->n_eval)
        st = ad_runlog_write_eval(&r->log, b->round, r->eval_len, s->acc, s->eloss, s->en, r->n_eval);
    if (st) return st;
    const AdCandidates *c = b->cand;
    int lo = r->is_task ? b->lo : 0, hi = r->is_task ? b->hi : 0; /* no lengths without a task */
    AdRoundSummary sum = {b->round, lo, hi, c ? c->n_prompts : 0, c ? c->n : 0, b->n_selected,
                          c && c->n ? (double)b->n_selected / c->n : NAN, s->label_acc, s->cand_acc,
                          b->n_examples, (long)b->curve.n, b->loss, s->acc, s->eloss, s->en,
                          s->frontier, s->t_gen, s->t_score, s->t_train, s->t_eval,
                          ad_time_now() - t0, s->gen_tps, b->tps, r->cfg->rounds.teacher,
                          b->n_pairs, b->pairs_dropped, b->pair_accuracy, ad_time_now() - t_write};
    if ((st = ad_runlog_commit_round(&r->log, &sum))) return st;
    if (ad_dist_is_root()) prune_round_state(r, b->round);
    char dur[32];
    ad_format_duration(sum.time_total, dur, sizeof dur);
    ad_round_say(r, "round %d | done in %s (generate %.0fs, score %.0fs, train %.0fs, eval %.0fs, "
                 "write %.1fs); run file %s", b->round, dur, s->t_gen, s->t_score, s->t_train,
                 s->t_eval, sum.time_write, r->cfg->run_file);
    return AD_OK;
}

/* One round: prompts, generate, score and select (methods that generate), the method's
 * build and train, evaluate, commit. */
static AdStatus run_round(Run *r, int round) {
    const RoundMethod *m = ad_round_method(r->cfg, round);
    double t0 = ad_time_now();
    AdCandidates cand;
    memset(&cand, 0, sizeof cand);
    RoundBatch b;
    memset(&b, 0, sizeof b);
    b.round = round;
    round_lengths(r, round, &b.lo, &b.hi);
    RoundStats s = {0, 0, 0, 0, 0, NAN, NAN, NULL, NULL, NULL, 0};
    b.loss = NAN;
    b.pair_accuracy = NAN;
    b.curve.cap = phase(r, round)->steps;
    b.curve.rec = ad_calloc(b.curve.cap ? b.curve.cap : 1, sizeof(AdTrainRecord), "training curve");
    int E = r->n_eval ? r->n_eval : 1;
    s.acc = ad_calloc(E, sizeof(double), "eval accuracy");
    s.eloss = ad_calloc(E, sizeof(double), "eval loss");
    s.en = ad_calloc(E, sizeof(long), "eval counts");
    AdStatus st = b.curve.rec && s.acc && s.eloss && s.en ? AD_OK : AD_ERR_NOMEM;
    if (!st) st = choose_teacher(r, round, &b.teacher);
    if (!st && m->generates) {
        b.cand = &cand;
        st = generate_and_select(r, &b, &s);
    }
    if (!st) st = m->build(r, &b);
    if (!st && round > 0) st = restart_learner(r);
    if (!st) {
        double t = ad_time_now();
        st = m->train(r, &b);
        s.t_train = ad_time_now() - t;
    }
    if (!st && r->n_eval) {
        double t = ad_time_now();
        st = evaluate(r, &r->student, s.acc, s.eloss, s.en, &s.frontier);
        s.t_eval = ad_time_now() - t;
        if (!st) print_eval(r, round, s.acc, s.frontier);
    }
    if (!st) st = commit_round(r, m, &b, &s, t0);
    if (m->release) m->release(r, &b);
    ad_candidates_free(&cand);
    free(b.curve.rec);
    free(s.acc);
    free(s.eloss);
    free(s.en);
    return st;
}

/* Names the failed round and says what will work next: resume only when the run file on
 * disk holds committed rounds to continue from. */
static AdStatus failure_advice(const Run *r, int round, AdStatus st) {
    const char *file = r->cfg->run_file;
    int done = r->log.rounds_complete;
    if (done > 0)
        return ad_fail_context(st, "round %d (%s keeps rounds 0..%d; after fixing the cause, "
                               "continue with 'autodidact resume %s')", round, file, done - 1, file);
    return ad_fail_context(st, "round %d (no round was committed, so %s was not written: fix the "
                           "cause and start the run again)", round, file);
}

/* After a round: how long the rest of the run should take, from the mean time of the
 * rounds after round 0 done so far (round 0 alone says little about the others). */
static void say_run_eta(const Run *r, int round, int total, double *sum, int *n, double secs) {
    if (round == 0 || round + 1 >= total) return;
    *sum += secs, (*n)++;
    char eta[32];
    ad_format_duration(*sum / *n * (total - round - 1), eta, sizeof eta);
    ad_round_say(r, "run | %d of %d rounds done | ETA %s for the remaining %d", round + 1, total, eta,
        total - round - 1);
}

static AdStatus run_loop(Run *r, int first_round) {
    int total = r->cfg->rounds.count + 1, done_here = 0, n_timed = 0;
    double timed = 0.0;
    for (int round = first_round; round < total; round++) {
        double t0 = ad_time_now();
        AdStatus st = ad_dist_agree(run_round(r, round));
        if (st) return failure_advice(r, round, st);
        say_run_eta(r, round, total, &timed, &n_timed, ad_time_now() - t0);
        if (r->opt && r->opt->stop_after > 0 && ++done_here >= r->opt->stop_after) break;
    }
    return AD_OK;
}

/* Every path a run writes, checked before any work: the run file and the checkpoint
 * directory beside it (with its round files), none of them a file the run reads. */
static AdStatus check_run_outputs(const AdExperimentConfig *cfg) {
    const char *inputs[] = {cfg->init_from, cfg->rounds.teacher_path, cfg->task.path};
    char dir[AD_PATH_MAX + 16], file[AD_PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s.ckpt", cfg->run_file);
    snprintf(file, sizeof file, "%s/round_000.h5", dir);
    AdStatus st = ad_check_output_path(cfg->run_file, "run_file", AD_OUT_MAKE_PARENTS, inputs, 3);
    if (!st) st = ad_check_output_path(dir, "run_file (its checkpoint directory)",
                                       AD_OUT_DIR | AD_OUT_MAKE_PARENTS, inputs, 3);
    if (!st) st = ad_check_output_path(file, "run_file (its checkpoints)", AD_OUT_MAKE_PARENTS,
                                       inputs, 3);
    return st;
}

static AdStatus run_start_locked(const AdExperimentConfig *cfg, const char *config_original,
                                 int overwrite, const AdRunOptions *o);
static AdStatus run_resume_locked(const char *run_file, const char *const *overrides,
                                  int n_overrides, const AdRunOptions *o);

/* Both hold the run's lock (runlog.h) from before the run file is looked at until the end,
 * so that two processes never write one run. */
AdStatus ad_run_start(const AdExperimentConfig *cfg, const char *config_original, int overwrite,
                      const AdRunOptions *o) {
    AdStatus st = check_run_outputs(cfg);
    if (!st) st = make_parent_dirs(cfg->run_file);
    int lock;
    if (!st) st = ad_runlog_lock(cfg->run_file, &lock);
    if (st) return st;
    st = run_start_locked(cfg, config_original, overwrite, o);
    ad_runlog_unlock(cfg->run_file, lock);
    return st;
}

static AdStatus run_start_locked(const AdExperimentConfig *cfg, const char *config_original,
                                 int overwrite, const AdRunOptions *o) {
    AdStatus st;
    if (!overwrite && access(cfg->run_file, F_OK) == 0) {
        /* resume is named only for a run file that resume can continue */
        int done = 0, valid = ad_runlog_check(cfg->run_file, &done) == AD_OK;
        if (valid && done < cfg->rounds.count + 1)
            return ad_fail(AD_ERR_IO, "%s already exists with %d complete round(s): continue it "
                           "with 'autodidact resume %s', or choose another run_file (--set "
                           "run_file=...) or pass --overwrite", cfg->run_file, done, cfg->run_file);
        if (valid)
            return ad_fail(AD_ERR_IO, "%s already exists and holds a finished run of %d rounds: "
                           "extend it with 'autodidact resume %s --set rounds.count=N' (N > %d), "
                           "or choose another run_file (--set run_file=...) or pass --overwrite",
                           cfg->run_file, done, cfg->run_file, done - 1);
        return ad_fail(AD_ERR_IO, "%s already exists and is not an autodidact run file: choose "
                       "another run_file (--set run_file=...) or pass --overwrite to replace it",
                       cfg->run_file);
    }
    Run r;
    st = run_setup(&r, cfg, o);
    char *json = st ? NULL : ad_experiment_config_to_json(cfg);
    if (!st && !json) st = AD_ERR_NOMEM;
    if (!st) {
        int one = 0;
        st = ad_runlog_create(&r.log, cfg->run_file, json, config_original ? config_original : json,
                              cfg->seed, ad_get_threads(), r.eval_len ? r.eval_len : &one, r.n_eval);
    }
    free(json);
    if (!st) {
        const AdModelConfig *m = &r.student.cfg;
        ad_round_say(&r, "run %s: %s/%s/%s model, %d layers, d_model %d, %.2fM parameters; %d rounds after "
            "round 0; %d threads", cfg->run_file, ad_norm_name(m->norm), ad_mlp_name(m->mlp),
            ad_pos_name(m->pos), m->n_layer, m->d_model, r.student.n_params / 1e6, cfg->rounds.count,
            ad_get_threads());
        st = run_loop(&r, 0);
    }
    run_free(&r);
    return st;
}

/* The run file's evaluation grid is the one the (possibly overridden) config makes. */
static AdStatus check_log_grid(const Run *r) {
    int E = r->n_eval;
    if (r->log.n_eval != E)
        return ad_fail(AD_ERR_CONFIG, "%s: /eval_lengths has %d lengths, but the config's "
                       "evaluation grid (task.eval_min_len..task.eval_max_len) has %d; resume "
                       "with the grid the run started with", r->log.path, r->log.n_eval, E);
    if (E == 0) return AD_OK;
    int64_t *grid = ad_calloc((size_t)E, sizeof *grid, "evaluation grid");
    if (!grid) return AD_ERR_NOMEM;
    hsize_t shape[1] = {(hsize_t)E};
    AdStatus st = ad_h5_read_array((hid_t)r->log.file, "eval_lengths", AD_H5_I64, 1, shape, grid);
    for (int e = 0; !st && e < E; e++)
        if (grid[e] != r->eval_len[e])
            st = ad_fail(AD_ERR_CONFIG, "%s: /eval_lengths[%d] is %lld, but the config's evaluation "
                         "grid has %d there; resume with the grid the run started with",
                         r->log.path, e, (long long)grid[e], r->eval_len[e]);
    free(grid);
    return st;
}

/* Where a resumed run's checkpoints are: <run_file>.ckpt/ (a run file moved or renamed
 * together with that directory), else, for a run file renamed alone, the directory named
 * after its original name beside it, once no run file of that name is left (a copy whose
 * original still exists would write into the original's checkpoints: the message says what
 * to copy). Sets r->ckpt_dir. */
static AdStatus find_checkpoints(Run *r, const char *original, int rounds_done) {
    struct stat sb;
    if (rounds_done == 0 || stat(r->ckpt_dir, &sb) == 0) return AD_OK;
    const char *run_file = r->cfg->run_file, *slash = strrchr(run_file, '/');
    const char *obase = strrchr(original, '/') ? strrchr(original, '/') + 1 : original;
    char alt_run[AD_PATH_MAX + 8], alt_dir[AD_PATH_MAX + 16];
    snprintf(alt_run, sizeof alt_run, "%.*s%s", slash ? (int)(slash - run_file + 1) : 0, run_file,
             obase);
    snprintf(alt_dir, sizeof alt_dir, "%s.ckpt", alt_run);
    if (strcmp(alt_run, run_file) != 0 && stat(alt_dir, &sb) == 0) {
        if (access(alt_run, F_OK) != 0) {
            ad_round_say(r, "%s was renamed from %s: its checkpoints are in %s/", run_file, obase, alt_dir);
            snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s", alt_dir);
            return AD_OK;
        }
        return ad_fail(AD_ERR_IO, "%s has no checkpoint directory %s/: it is a copy of %s, whose "
                       "checkpoints are in %s/; copy them along (cp -r %s %s) and resume again",
                       run_file, r->ckpt_dir, alt_run, alt_dir, alt_dir, r->ckpt_dir);
    }
    return ad_fail(AD_ERR_IO, "%s: its round checkpoints are not in %s/ (a run file resumes from the "
                   "directory <run file>.ckpt/ beside it; it was written as %s, with %s.ckpt/): "
                   "move or copy that directory along with the run file", run_file, r->ckpt_dir,
                   original, original);
}

AdStatus ad_run_resume(const char *run_file, const char *const *overrides, int n_overrides,
                       const AdRunOptions *o) {
    if (access(run_file, F_OK) != 0) /* no lock file beside a mistyped name */
        return ad_fail(AD_ERR_IO, "cannot open the run file %s: %s", run_file, strerror(errno));
    int lock;
    AdStatus st = ad_runlog_lock(run_file, &lock);
    if (st) return st;
    st = run_resume_locked(run_file, overrides, n_overrides, o);
    ad_runlog_unlock(run_file, lock);
    return st;
}

static AdStatus run_resume_locked(const char *run_file, const char *const *overrides,
                                  int n_overrides, const AdRunOptions *o) {
    char *json = NULL;
    AdStatus st = ad_runlog_read_config(run_file, &json);
    if (st) return st;
    AdExperimentConfig cfg;
    st = ad_experiment_config_parse(&cfg, json, run_file, overrides, n_overrides);
    free(json);
    if (st) return st;
    char original[AD_PATH_MAX];
    snprintf(original, sizeof original, "%s", cfg.run_file); /* its name when it was written */
    snprintf(cfg.run_file, sizeof cfg.run_file, "%s", run_file);
    if ((st = check_run_outputs(&cfg))) return st;
    Run r;
    st = run_setup(&r, &cfg, o);
    if (!st) st = ad_runlog_open(&r.log, run_file);
    if (!st) st = check_log_grid(&r);
    if (!st) st = find_checkpoints(&r, original, r.log.rounds_complete);
    if (!st) {
        int done = r.log.rounds_complete;
        if (done >= cfg.rounds.count + 1) {
            ad_round_say(&r, "%s is complete (%d rounds); raise rounds.count with --set to continue it", run_file, done);
        } else {
            ad_round_say(&r, "resuming %s after round %d", run_file, done - 1);
            if (done > 0) st = load_round_state(&r, done - 1);
            if (!st) st = run_loop(&r, done);
        }
    }
    run_free(&r);
    return st;
}

/* The plan as the run will see it: the student and teacher as loaded, the prompts as read. */
static void print_plan(const Run *r, FILE *f) {
    const AdExperimentConfig *c = r->cfg;
    const AdModelConfig *m = &r->student.cfg;
    fprintf(f, "run file   %s (checkpoints in %s.ckpt/)\n", c->run_file, c->run_file);
    fprintf(f, "model      %s: %s/%s/%s, %d layers, d_model %d, %d heads (%d kv), d_ff %d, "
            "vocab %d, context %d, %.2fM parameters (%zu)%s%s%s\n",
            c->init_from[0] ? "checkpoint" : c->family, ad_norm_name(m->norm), ad_mlp_name(m->mlp),
            ad_pos_name(m->pos), m->n_layer, m->d_model, m->n_head, m->n_kv_head, m->d_ff,
            m->vocab_size, m->max_seq_len, r->student.n_params / 1e6, r->student.n_params,
            c->init_from[0] ? ", from " : "", c->init_from,
            c->init_from[0] ? "" : c->init == AD_INIT_TORCH ? ", PyTorch-default init" : ", GPT-2 init");
    const char *tok_from = c->init_from[0] ? c->init_from
                           : !strcmp(c->tokenizer_from, "teacher") ? c->rounds.teacher_path
                           : c->tokenizer_from[0] ? c->tokenizer_from
                           : r->is_task ? "the task's characters" : "bytes";
    fprintf(f, "tokenizer  %s, %d pieces, from %s%s\n", ad_tok_kind_name(r->tok.kind),
            r->tok.vocab_size, tok_from, r->tok.pad_id < 0 ? " (no <pad>: rows are padded with "
            "<eos>, masked)" : "");
    if (!strcmp(c->rounds.teacher, "checkpoint")) {
        const AdModelConfig *t = &r->frozen.cfg;
        fprintf(f, "teacher    %s: %s/%s/%s, %d layers, d_model %d, vocab %d, context %d, %.2fM "
                "parameters; same tokenizer as the student\n", c->rounds.teacher_path,
                ad_norm_name(t->norm), ad_mlp_name(t->mlp), ad_pos_name(t->pos), t->n_layer,
                t->d_model, t->vocab_size, t->max_seq_len, r->frozen.n_params / 1e6);
    } else {
        const char *t = c->rounds.teacher;
        fprintf(f, "teacher    %s (%s)\n", t, !strcmp(t, "self") ? "the student itself"
                : !strcmp(t, "snapshot") ? "a copy of the student at each round's start"
                : "an average (EMA) of the student's weights");
    }
    if (r->is_task)
        fprintf(f, "task       %s%s, ground truth at lengths %d..%d, evaluation at %d..%d (%d per "
                "length)\n", c->task.name, c->task.pad_answer ? " (answers zero-padded)" : "",
                c->task.train_min_len, c->task.train_max_len,
                c->task.eval_min_len, c->task.eval_max_len, c->task.eval_per_len);
    else if (r->n_file_lines)
        fprintf(f, "prompts    %ld from %s (task.source %s); no verifier or evaluation\n",
                r->n_file_lines, c->task.path, c->task.source);
    else
        fprintf(f, "prompts    <bos> alone (task.source bos: unconditional generation); no "
                "verifier or evaluation\n");
    if (c->pretrain.steps == 0)
        fprintf(f, "round 0    no training (pretrain.steps 0)\n");
    else
        fprintf(f, "round 0    %d steps x batch %d on %s ground truth at lengths %d..%d, rows of %d "
                "tokens, lr %g (%s), loss %s\n", c->pretrain.steps, c->pretrain.batch_size,
                c->task.name, c->task.train_min_len, c->task.train_max_len, r->T, c->pretrain.lr,
                c->pretrain.schedule, c->pretrain.loss);
    int filter = r->is_task && c->select.length_filter && c->score.length;
    for (int k = 1; k <= c->rounds.count; k++) {
        char what[96];
        int lo = c->rounds.length_start + (k - 1) * c->rounds.length_step;
        if (r->is_task)
            snprintf(what, sizeof what, "prompts at lengths %d..%d", lo, lo + c->rounds.length_span);
        else
            snprintf(what, sizeof what, "prompts");
        char how[256];
        if (!strcmp(c->objective, "preference"))
            snprintf(how, sizeof how, "%s pairs; %s (beta %g) against %s, %d steps of %d pair(s)",
                     c->preference.pairs, c->preference.loss, c->preference.beta,
                     !strcmp(c->preference.loss, "simpo") ? "no reference"
                     : !strcmp(c->preference.reference, "teacher") ? "the teacher"
                     : "the previous round's model", c->train.steps,
                     c->train.batch_size * c->train.grad_accum);
        else if (!strcmp(c->objective, "grpo"))
            snprintf(how, sizeof how, "grpo: groups of G = %d, B = %d prompts, rl.reward %s, "
                     "baseline %s%s, mu %d pass(es) of batch %d, beta %g, epsilon %g, norm %s",
                     c->generate.samples, c->rounds.prompts, c->rl.reward, c->rl.baseline,
                     c->rl.scale_rewards ? " / std" : "", c->rl.mu,
                     c->train.batch_size * c->train.grad_accum, c->rl.beta, c->rl.epsilon,
                     c->rl.norm);
        else
            snprintf(how, sizeof how, "select %s%s; %s, %d steps (loss %s)", c->select.policy,
                     filter ? " after the length filter" : "", c->objective, c->train.steps,
                     c->train.loss);
        fprintf(f, "round %-4d %d %s, %d sample(s) of up to %d tokens at temperature %g by "
                "teacher %s; %s; init %s\n", k, c->rounds.prompts, what, c->generate.samples,
                answer_budget(r, lo + c->rounds.length_span), c->generate.temperature,
                c->rounds.teacher, how, c->rounds.init);
    }
}

AdStatus ad_run_plan(const AdExperimentConfig *c, FILE *f) {
    Run r;
    AdRunOptions quiet = {1, 0};
    AdStatus st = run_setup(&r, c, &quiet);
    if (!st) print_plan(&r, f);
    run_free(&r);
    return st;
}
