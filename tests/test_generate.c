/* test_generate.c: batched KV-cache generation (generate.h) and ad_model_forward_step
 * (model.h) against independent references: the published greedy text of the real
 * stories260K model, greedy decoding by repeated full forward passes, log-probabilities
 * from a full forward over the finished sequences, the same requests run one at a time,
 * and the samplers' exact distributions (chi-square at p = 0.001) on hand-made logits.
 * It does not test the forward pass itself (test_model.c) nor the tokenizer. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodidact/generate.h"
#include "autodidact/importers.h"
#include "autodidact/model.h"
#include "autodidact/rng.h"
#include "autodidact/tokenizer.h"
#include "testutil.h"

/* ---- tolerances ----------------------------------------------------------------
 * KV_LP_TOL: a generated token's log-probability against log_softmax of the full-forward
 *   logits. Both paths are float32 over the same weights but sum in different orders
 *   (per-row attention loop and sgemm with M = rows in the step, against the forward's
 *   attention kernel and sgemm with M = T); measured differences are ~1e-6 on logits of
 *   magnitude ~5. A wrong position, cache slot or RoPE angle moves them by 1e-2 or more
 *   (each config checks that an off-by-one position would be caught).
 * Batch invariance is exact: the decoding step sums every logit in a fixed order per row
 *   (kernels.h, ad_matmul_forward_packed and ad_attention_decode), so a request's tokens,
 *   log-probs and entropies are compared bit for bit across batch sizes, orders and
 *   thread counts, whatever BLAS kernel the machine picks.
 * SAMPLER_TOL: logprob and entropy from ad_sample_token against double recomputation
 *   from the same float logits: the only error is the final rounding to float (< 5e-7
 *   for values below 8 in magnitude).
 * Chi-square tests use the p = 0.001 critical values below; the RNG streams are fixed,
 *   so each statistic is one deterministic number, not a flaky draw. */
#define KV_LP_TOL 1e-4
#define SAMPLER_TOL 1e-5
#define TIMEOUT 60
#define MAXNEW 256

/* Upper 0.001 quantiles of the chi-square distribution for df = 1..50 (scipy.stats.chi2.ppf). */
static const double CHI2_999[51] = {
    0,      10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588,
    31.264, 32.909, 34.528, 36.123, 37.697, 39.252, 40.790, 42.312, 43.820, 45.315,
    46.797, 48.268, 49.728, 51.179, 52.620, 54.052, 55.476, 56.892, 58.301, 59.703,
    61.098, 62.487, 63.870, 65.247, 66.619, 67.985, 69.346, 70.703, 72.055, 73.402,
    74.745, 76.084, 77.419, 78.750, 80.077, 81.400, 82.720, 84.037, 85.351, 86.661};

/* ---- collecting generate's output -------------------------------------------------- */

typedef struct {
    int calls, n, stop, has_entropy;
    int tok[MAXNEW];
    float lp[MAXNEW], ent[MAXNEW];
} Out;

typedef struct {
    Out *o;
    long n;
} Collect;

static void collect_sink(long req, const AdGenOutput *out, void *user) {
    Collect *c = user;
    ck_assert_msg(req >= 0 && req < c->n, "sink got request %ld of %ld", req, c->n);
    ck_assert_msg(out->n >= 0 && out->n <= MAXNEW, "request %ld: %d tokens", req, out->n);
    Out *o = &c->o[req];
    o->calls++;
    o->n = out->n;
    o->stop = out->stop;
    o->has_entropy = out->entropy != NULL;
    for (int i = 0; i < out->n; i++) {
        o->tok[i] = out->tokens[i];
        o->lp[i] = out->logprobs[i];
        o->ent[i] = out->entropy ? out->entropy[i] : NAN;
    }
}

/* Runs ad_generate with a fresh generator of max_batch rows; outputs land in o[n]. */
static void run_generate(const AdModel *m, const AdTokenizer *tok, const AdGenRequest *reqs, long n,
                         const AdSampleConfig *sc, int max_batch, int max_seq, int want_entropy,
                         Out *o) {
    AdGenerator g;
    AdStatus st = ad_generator_init(&g, m, max_batch, max_seq, sc->max_new_tokens, want_entropy);
    ck_assert_msg(st == AD_OK, "ad_generator_init: %s", ad_errmsg());
    memset(o, 0, sizeof(Out) * (size_t)n);
    Collect c = {o, n};
    st = ad_generate(&g, tok, reqs, n, sc, collect_sink, &c, NULL, NULL);
    ck_assert_msg(st == AD_OK, "ad_generate: %s", ad_errmsg());
    for (long r = 0; r < n; r++)
        ck_assert_msg(o[r].calls == 1, "request %ld reached the sink %d times", r, o[r].calls);
    ad_generator_free(&g);
}

/* ---- independent math in double ------------------------------------------------------- */

static double log_sum_exp(const float *z, int V, double temp) {
    double mx = -INFINITY, s = 0.0;
    for (int j = 0; j < V; j++) mx = fmax(mx, z[j] / temp);
    for (int j = 0; j < V; j++) s += exp(z[j] / temp - mx);
    return mx + log(s);
}

static double log_softmax_at(const float *z, int V, int j) { return z[j] - log_sum_exp(z, V, 1.0); }

static void softmax_d(double *p, const float *z, int V, double temp) {
    double lse = log_sum_exp(z, V, temp);
    for (int j = 0; j < V; j++) p[j] = exp(z[j] / temp - lse);
}

static double entropy_d(const float *z, int V) {
    double lse = log_sum_exp(z, V, 1.0), h = 0.0;
    for (int j = 0; j < V; j++) h -= exp(z[j] - lse) * (z[j] - lse);
    return h;
}

static int argmax_first(const float *z, int V) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (z[j] > z[best]) best = j;
    return best;
}

/* Pearson's statistic of counts over N draws against probabilities p; a draw of a
 * category with p == 0 makes it INFINITY. *df = (categories with p > 0) - 1. */
static double chi_square(const long *counts, const double *p, int V, long N, int *df) {
    double x2 = 0.0;
    int cats = 0;
    for (int j = 0; j < V; j++) {
        if (p[j] <= 0.0) {
            if (counts[j] > 0) x2 = INFINITY;
            continue;
        }
        double e = p[j] * (double)N;
        x2 += (counts[j] - e) * (counts[j] - e) / e;
        cats++;
    }
    *df = cats - 1;
    return x2;
}

/* ---- random small models ---------------------------------------------------------------- */

/* A model of `family` with the given sizes (pos < 0 keeps the family's positions),
 * GPT-2 init, then matrices scaled by `mat_scale`, norm weights 1 + 0.2 N, biases 0.1 N,
 * so that attention is far from uniform and positions matter. */
/* family: "gpt2" or "llama", optionally with a later family's switch: "llama/window"
 * (sliding window of 5 positions, Mistral), "llama/qkvbias" (q, k, v biases, Qwen2),
 * "llama/llama3" (Llama 3 RoPE scaling with an original context of 16 positions). */
static void build_model(AdModel *m, const char *family, int V, int maxT, int L, int H, int Hkv,
                        int C, int F, int pos, float mat_scale, uint64_t seed) {
    AdModelConfig c;
    memset(&c, 0, sizeof c);
    char fam[16];
    snprintf(fam, sizeof fam, "%s", family);
    char *variant = strchr(fam, '/');
    if (variant) *variant++ = '\0';
    ck_assert_int_eq(ad_model_config_preset(&c, fam), AD_OK);
    c.vocab_size = V, c.max_seq_len = maxT, c.n_layer = L, c.n_head = H, c.n_kv_head = Hkv;
    c.d_model = C, c.d_ff = F;
    if (pos >= 0) c.pos = (AdPosKind)pos;
    if (variant && strcmp(variant, "window") == 0) c.sliding_window = 5;
    else if (variant && strcmp(variant, "qkvbias") == 0) c.qkv_bias = 1;
    else if (variant && strcmp(variant, "llama3") == 0) {
        c.rope_scaling = AD_ROPE_SCALING_LLAMA3, c.rope_factor = 8.0f;
        c.rope_low_freq_factor = 1.0f, c.rope_high_freq_factor = 4.0f, c.rope_original_max_pos = 16;
    } else {
        ck_assert_msg(!variant, "unknown variant %s", variant);
    }
    memset(m, 0, sizeof *m);
    AdStatus st = ad_model_init(m, &c, 0);
    ck_assert_msg(st == AD_OK, "ad_model_init: %s", ad_errmsg());
    AdRng rng;
    ad_rng_init(&rng, seed, AD_STREAM_INIT, 0);
    ad_model_init_weights(m, &rng, AD_INIT_GPT2);
    ad_rng_init(&rng, seed, AD_STREAM_INIT, 1);
    for (int id = 0; id < AD_P_COUNT; id++) {
        float *p = m->params.t[id];
        size_t n = m->info[id].size;
        int norm_w = id == AD_P_LN1W || id == AD_P_LN2W || id == AD_P_LNFW;
        int bias = id == AD_P_LN1B || id == AD_P_LN2B || id == AD_P_LNFB || id == AD_P_QKVB ||
                   id == AD_P_ATTPROJB || id == AD_P_FCB || id == AD_P_FCPROJB;
        for (size_t i = 0; i < n; i++) {
            if (norm_w)
                p[i] = 1.0f + 0.2f * ad_rng_normal(&rng);
            else if (bias)
                p[i] = 0.1f * ad_rng_normal(&rng);
            else
                p[i] *= mat_scale;
        }
    }
}

static void random_tokens(int *t, int n, int lo, int hi, uint64_t seed, uint64_t sub) {
    AdRng rng;
    ad_rng_init(&rng, seed, AD_STREAM_DATA, sub);
    for (int i = 0; i < n; i++) t[i] = lo + (int)ad_rng_below(&rng, (uint32_t)(hi - lo));
}

/* ==== 1. the real stories260K model ======================================================== */

static const char *EXPECTED_GREEDY =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.";

/* Greedy continuation by repeated full forward passes over the growing sequence (B = 1),
 * taking the first argmax of the last position's logits; writes n_new tokens to gen and
 * the smallest top-1/top-2 logit gap seen to *min_gap, and the chosen tokens' log-softmax
 * to lp. */
static void greedy_by_full_forward(AdModel *m, const int *prompt, int plen, int n_new, int *gen,
                                   float *lp, double *min_gap) {
    int V = m->cfg.vocab_size, T = plen + n_new;
    AdActs a;
    memset(&a, 0, sizeof a);
    AdStatus st = ad_acts_init(&a, &m->cfg, 1, T);
    ck_assert_msg(st == AD_OK, "ad_acts_init: %s", ad_errmsg());
    int *seq = malloc(sizeof(int) * (size_t)T);
    ck_assert_ptr_nonnull(seq);
    memcpy(seq, prompt, sizeof(int) * (size_t)plen);
    *min_gap = INFINITY;
    for (int i = 0; i < n_new; i++) {
        int len = plen + i;
        ad_model_forward(m, &a, seq, 1, len);
        const float *z = a.logits + (size_t)(len - 1) * V;
        int best = argmax_first(z, V);
        double second = -INFINITY;
        for (int j = 0; j < V; j++)
            if (j != best) second = fmax(second, z[j]);
        *min_gap = fmin(*min_gap, z[best] - second);
        gen[i] = best;
        lp[i] = (float)log_softmax_at(z, V, best);
        seq[len] = best;
    }
    free(seq);
    ad_acts_free(&a);
}

START_TEST(test_real_model_greedy) {
    const char *dir = ad_test_models_dir();
    if (!dir) {
        printf("test_real_model_greedy: SKIPPED: no stories260K.bin found "
               "(set AD_SHARED_MODELS)\n");
        return;
    }
    AdModel m, mg;
    AdTokenizer tok, tokg;
    AdStatus st = ad_import(ad_test_path(dir, "stories260K.bin"), AD_IMPORT_AUTO,
                            ad_test_path(dir, "tok512.bin"), &m, &tok);
    ck_assert_msg(st == AD_OK, "import stories260K.bin: %s", ad_errmsg());
    st = ad_import(ad_test_path(dir, "stories260K.gguf"), AD_IMPORT_AUTO, NULL, &mg, &tokg);
    ck_assert_msg(st == AD_OK, "import stories260K.gguf: %s", ad_errmsg());
    ck_assert_int_eq(tok.vocab_size, 512);
    ck_assert_int_eq(tokg.vocab_size, 512);
    ck_assert_int_eq(tok.bos_id, 1);

    enum { NNEW = 200, SEQ = 256 };
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.temperature = 0.0f;
    sc.max_new_tokens = NNEW;
    sc.stop_at_eos = 0; /* exactly 200 tokens */
    int bos = 1;
    AdGenRequest rq = {&bos, 1, 0, 0};
    static Out ob, og;
    run_generate(&m, &tok, &rq, 1, &sc, 1, SEQ, 0, &ob);
    ck_assert_int_eq(ob.n, NNEW);
    ck_assert_int_eq(ob.stop, AD_STOP_LENGTH);

    int ids[NNEW + 1];
    ids[0] = bos;
    memcpy(ids + 1, ob.tok, sizeof(int) * NNEW);
    char text[8192];
    size_t need = ad_tokenizer_decode(&tok, ids, NNEW + 1, text, sizeof text);
    ck_assert(need < sizeof text);
    printf("stories260K greedy: %.200s...\n", text);
    ck_assert_msg(strncmp(text, EXPECTED_GREEDY, strlen(EXPECTED_GREEDY)) == 0,
                  "greedy text from BOS differs from the published one:\n got: %s\nwant: %s...",
                  text, EXPECTED_GREEDY);

    /* GGUF file (same weights, embedded vocabulary): identical token ids and text */
    run_generate(&mg, &tokg, &rq, 1, &sc, 1, SEQ, 0, &og);
    ck_assert_int_eq(og.n, NNEW);
    for (int i = 0; i < NNEW; i++)
        ck_assert_msg(og.tok[i] == ob.tok[i], "gguf greedy token %d is %d, bin gives %d", i,
                      og.tok[i], ob.tok[i]);
    char textg[8192];
    memcpy(ids + 1, og.tok, sizeof(int) * NNEW);
    ad_tokenizer_decode(&tokg, ids, NNEW + 1, textg, sizeof textg);
    ck_assert_str_eq(textg, text);

    /* a non-empty prompt: KV-cache greedy against repeated full forward passes */
    const char *ptext = "Once upon a time, there was a boy";
    int prompt[64], np = 0;
    prompt[0] = bos;
    st = ad_tokenizer_encode(&tok, ptext, strlen(ptext), prompt + 1, 63, &np);
    ck_assert_msg(st == AD_OK, "encode: %s", ad_errmsg());
    int plen = np + 1;
    enum { NCONT = 60 };
    AdSampleConfig sc2 = sc;
    sc2.max_new_tokens = NCONT;
    AdGenRequest rq2 = {prompt, plen, 1, 0};
    static Out oc;
    run_generate(&m, &tok, &rq2, 1, &sc2, 1, SEQ, 0, &oc);
    ck_assert_int_eq(oc.n, NCONT);
    int ref[NCONT];
    float ref_lp[NCONT];
    double gap;
    greedy_by_full_forward(&m, prompt, plen, NCONT, ref, ref_lp, &gap);
    double worst = 0.0;
    for (int i = 0; i < NCONT; i++) {
        ck_assert_msg(oc.tok[i] == ref[i],
                      "continuation token %d: KV-cache greedy %d, full-forward greedy %d", i,
                      oc.tok[i], ref[i]);
        worst = fmax(worst, fabs(oc.lp[i] - ref_lp[i]));
    }
    ids[0] = bos;
    memcpy(ids + 1, prompt + 1, sizeof(int) * np);
    memcpy(ids + plen, oc.tok, sizeof(int) * NCONT);
    ad_tokenizer_decode(&tok, ids, plen + NCONT, text, sizeof text);
    printf("stories260K prompt continuation: %s\n  (smallest top-1/top-2 logit gap %.3g, "
           "max|logprob diff| %.2e)\n", text, gap, worst);
    ck_assert_msg(worst <= KV_LP_TOL, "continuation logprobs differ by %.3g", worst);

    /* both requests in one batch of 2: the same tokens */
    AdGenRequest both[2] = {rq, rq2};
    static Out ob2[2];
    run_generate(&m, &tok, both, 2, &sc2, 2, SEQ, 0, ob2);
    for (int i = 0; i < NCONT; i++) {
        ck_assert_msg(ob2[0].tok[i] == ob.tok[i], "batched BOS greedy token %d differs", i);
        ck_assert_msg(ob2[1].tok[i] == oc.tok[i], "batched prompt greedy token %d differs", i);
    }
    ad_model_free(&m);
    ad_model_free(&mg);
    ad_tokenizer_free(&tok);
    ad_tokenizer_free(&tokg);
}
END_TEST

/* ==== 2. KV cache against a full forward pass ============================================= */

typedef struct {
    const char *label, *family;
    int V, L, H, Hkv, C, F, pos;
} SmallCfg;

static const SmallCfg KV_CFGS[] = {
    {"gpt2 learned", "gpt2", 37, 2, 2, 2, 16, 32, AD_POS_LEARNED},
    {"llama rope gqa", "llama", 41, 2, 4, 2, 16, 24, AD_POS_ROPE},
    {"llama rope mqa", "llama", 29, 3, 4, 1, 16, 20, AD_POS_ROPE},
    {"llama pos none", "llama", 33, 2, 4, 2, 16, 24, AD_POS_NONE},
    {"gpt2 pos none", "gpt2", 31, 2, 2, 1, 16, 32, AD_POS_NONE},
    {"mistral window", "llama/window", 41, 2, 4, 2, 16, 24, AD_POS_ROPE},
    {"qwen2 qkv bias", "llama/qkvbias", 41, 2, 4, 2, 16, 24, AD_POS_ROPE},
    {"llama3 rope", "llama/llama3", 41, 2, 4, 2, 32, 24, AD_POS_ROPE},
};

START_TEST(test_kv_vs_full_forward) {
    const SmallCfg *k = &KV_CFGS[_i];
    enum { S = 24, NREQ = 5, NEW = 12 };
    AdModel m;
    build_model(&m, k->family, k->V, S, k->L, k->H, k->Hkv, k->C, k->F, k->pos, 10.0f, 100 + _i);
    int V = k->V;
    static const int plens[NREQ] = {1, 3, 6, 9, 20}; /* the last one runs into the cache end */
    int prompts[NREQ][S];
    AdGenRequest reqs[NREQ];
    for (int r = 0; r < NREQ; r++) {
        random_tokens(prompts[r], plens[r], 0, V, 7 + _i, r);
        reqs[r] = (AdGenRequest){prompts[r], plens[r], r, 0};
    }
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.temperature = 1.0f;
    sc.max_new_tokens = NEW;
    sc.stop_at_eos = 0;
    sc.want_entropy = 1;
    sc.seed = 42;
    static Out o[NREQ];
    /* max_batch 3: chunks of 3 + 2 sequences at different positions; no tokenizer needed
     * without EOS and stop strings */
    run_generate(&m, NULL, reqs, NREQ, &sc, 3, S, 1, o);

    AdActs a;
    memset(&a, 0, sizeof a);
    ck_assert_int_eq(ad_acts_init(&a, &m.cfg, 1, S), AD_OK);
    /* shift_max: how far the logprobs would move if the logits were read one position
     * early; it must exceed the tolerance by far, or the comparison would be blunt */
    double worst = 0.0, worst_h = 0.0, shift_max = 0.0;
    for (int r = 0; r < NREQ; r++) {
        int want_n = NEW < S - plens[r] ? NEW : S - plens[r];
        ck_assert_msg(o[r].n == want_n, "%s request %d: %d tokens, want %d", k->label, r, o[r].n,
                      want_n);
        ck_assert_int_eq(o[r].stop, AD_STOP_LENGTH);
        ck_assert(o[r].has_entropy);
        int seq[S], len = plens[r] + o[r].n;
        memcpy(seq, prompts[r], sizeof(int) * plens[r]);
        for (int i = 0; i < o[r].n; i++) {
            ck_assert_msg(o[r].tok[i] >= 0 && o[r].tok[i] < V, "token %d out of range",
                          o[r].tok[i]);
            seq[plens[r] + i] = o[r].tok[i];
        }
        ad_model_forward(&m, &a, seq, 1, len);
        for (int i = 0; i < o[r].n; i++) {
            int p = plens[r] - 1 + i;
            const float *z = a.logits + (size_t)p * V;
            double ref = log_softmax_at(z, V, o[r].tok[i]), href = entropy_d(z, V);
            double d = fabs(o[r].lp[i] - ref), dh = fabs(o[r].ent[i] - href);
            ck_assert_msg(d <= KV_LP_TOL,
                          "%s request %d token %d (position %d): generate logprob %.7g, full "
                          "forward %.7g",
                          k->label, r, i, p + 1, o[r].lp[i], ref);
            ck_assert_msg(dh <= KV_LP_TOL,
                          "%s request %d token %d: entropy %.7g, full forward %.7g", k->label, r,
                          i, o[r].ent[i], href);
            worst = fmax(worst, d), worst_h = fmax(worst_h, dh);
            if (p > 0)
                shift_max = fmax(shift_max, fabs(ref - log_softmax_at(z - V, V, o[r].tok[i])));
        }
    }
    printf("%-15s KV vs full forward: max|logprob diff| %.2e, max|entropy diff| %.2e; "
           "off-by-one position would differ by up to %.3g\n",
           k->label, worst, worst_h, shift_max);
    ck_assert_msg(shift_max > 100 * KV_LP_TOL, "%s: logprobs barely depend on the position (%.3g)",
                  k->label, shift_max);
    ad_acts_free(&a);
    ad_model_free(&m);
}
END_TEST

/* Greedy decoding with a repetition penalty against the same by full forward passes:
 * each step applies CTRL's penalty to every token already in the sequence, prompt
 * included, and takes the first argmax. */
START_TEST(test_penalty_greedy_vs_full_forward) {
    enum { S = 24, NREQ = 3, NEW = 14 };
    const float pen = 1.6f;
    AdModel m;
    build_model(&m, "llama", 19, S, 2, 4, 2, 16, 24, -1, 10.0f, 300);
    int V = m.cfg.vocab_size;
    static const int plens[NREQ] = {2, 5, 8};
    int prompts[NREQ][S];
    AdGenRequest reqs[NREQ];
    for (int r = 0; r < NREQ; r++) {
        random_tokens(prompts[r], plens[r], 0, 6, 11, r); /* tokens 0..5 only, with repeats */
        reqs[r] = (AdGenRequest){prompts[r], plens[r], r, 0};
    }
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.temperature = 0.0f;
    sc.repetition_penalty = pen;
    sc.max_new_tokens = NEW;
    sc.stop_at_eos = 0;
    static Out o[NREQ], plain[NREQ];
    run_generate(&m, NULL, reqs, NREQ, &sc, 2, S, 0, o);
    sc.repetition_penalty = 1.0f;
    run_generate(&m, NULL, reqs, NREQ, &sc, 2, S, 0, plain);

    AdActs a;
    memset(&a, 0, sizeof a);
    ck_assert_int_eq(ad_acts_init(&a, &m.cfg, 1, S), AD_OK);
    double min_gap = INFINITY;
    int changed = 0;
    for (int r = 0; r < NREQ; r++) {
        int seq[S], len = plens[r];
        memcpy(seq, prompts[r], sizeof(int) * len);
        ck_assert_int_eq(o[r].n, NEW);
        for (int i = 0; i < NEW; i++) {
            ad_model_forward(&m, &a, seq, 1, len);
            float z[64];
            memcpy(z, a.logits + (size_t)(len - 1) * V, sizeof(float) * V);
            for (int j = 0; j < V; j++) {
                int present = 0;
                for (int t = 0; t < len; t++) present |= seq[t] == j;
                if (present) z[j] = z[j] > 0 ? z[j] / pen : z[j] * pen;
            }
            int best = argmax_first(z, V);
            for (int j = 0; j < V; j++)
                if (j != best) min_gap = fmin(min_gap, z[best] - z[j]);
            ck_assert_msg(o[r].tok[i] == best,
                          "request %d token %d: penalised greedy gives %d, the reference %d", r, i,
                          o[r].tok[i], best);
            seq[len++] = best;
        }
        for (int i = 0; i < NEW; i++) changed |= o[r].tok[i] != plain[r].tok[i];
    }
    printf("penalised greedy vs full forward: identical (smallest penalised top-1/top-2 gap "
           "%.3g)\n", min_gap);
    ck_assert_msg(changed, "the penalty changed no greedy token: the test has no power");
    ad_acts_free(&a);
    ad_model_free(&m);
}
END_TEST

/* ==== 3. batched == one at a time ============================================================ */

enum { BT_NREQ = 7, BT_S = 48, BT_NEW = 30 };
static const int BT_PLENS[BT_NREQ] = {1, 9, 4, 7, 2, 5, 3};
#define BT_STOP "xx"

/* A gpt2 model over the byte vocabulary in which <eos> (id 2) and the byte 'x' are
 * frequent, so that sequences stop on their own for different reasons: the final
 * LayerNorm's bias on two channels is raised and those tokens' embedding rows read them. */
static void build_stopping_model(AdModel *m, const AdTokenizer *tok) {
    build_model(m, "gpt2", tok->vocab_size, BT_S, 2, 2, 2, 16, 32, -1, 6.0f, 31);
    int C = m->cfg.d_model, x = 4 + 'x';
    float *wte = m->params.t[AD_P_WTE], *lnfb = m->params.t[AD_P_LNFB];
    lnfb[0] = 2.0f, lnfb[1] = 2.0f;
    wte[(size_t)tok->eos_id * C + 0] = 1.2f;
    wte[(size_t)x * C + 1] = 0.5f;
}

/* The stop reason must agree with the tokens: no <eos> before the last token, the stop
 * string absent from all but the full decoded output, and the reason's own condition. */
static void check_stop_reason(const AdTokenizer *tok, const Out *o, int r, int max_new) {
    char buf[4 * MAXNEW + 1];
    for (int i = 0; i + 1 < o->n; i++)
        ck_assert_msg(o->tok[i] != tok->eos_id, "request %d: <eos> at %d before the end", r, i);
    ad_tokenizer_decode(tok, o->tok, o->n - 1, buf, sizeof buf);
    ck_assert_msg(!strstr(buf, BT_STOP), "request %d: stop string before the last token", r);
    ad_tokenizer_decode(tok, o->tok, o->n, buf, sizeof buf);
    int has = strstr(buf, BT_STOP) != NULL;
    switch (o->stop) {
    case AD_STOP_EOS:
        ck_assert_msg(o->tok[o->n - 1] == tok->eos_id, "request %d: EOS stop without <eos>", r);
        break;
    case AD_STOP_STRING:
        ck_assert_msg(has, "request %d: STRING stop but \"%s\" is not in \"%s\"", r, BT_STOP, buf);
        break;
    case AD_STOP_LENGTH:
        ck_assert_msg(o->n == max_new && !has, "request %d: LENGTH stop after %d tokens", r, o->n);
        break;
    default:
        ck_abort_msg("request %d: stop reason %d", r, o->stop);
    }
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* a[perm[r]] against b[r] (perm NULL: identity), tokens and float bits. */
static void compare_outputs_perm(const char *what, const Out *a, const int *perm, const Out *b,
                                 int n) {
    for (int r = 0; r < n; r++) {
        const Out *x = &a[perm ? perm[r] : r], *y = &b[r];
        ck_assert_msg(x->n == y->n && x->stop == y->stop,
                      "%s, request %d: %d tokens (stop %d) against %d (stop %d)", what, r, x->n,
                      x->stop, y->n, y->stop);
        for (int i = 0; i < x->n; i++) {
            ck_assert_msg(x->tok[i] == y->tok[i], "%s, request %d token %d: %d against %d", what,
                          r, i, x->tok[i], y->tok[i]);
            ck_assert_msg(same_bits(x->lp[i], y->lp[i]),
                          "%s, request %d token %d: logprob %.9g against %.9g", what, r, i,
                          x->lp[i], y->lp[i]);
            ck_assert_msg(same_bits(x->ent[i], y->ent[i]),
                          "%s, request %d token %d: entropy %.9g against %.9g", what, r, i,
                          x->ent[i], y->ent[i]);
        }
    }
}

static void compare_outputs(const char *what, const Out *a, const Out *b, int n) {
    compare_outputs_perm(what, a, NULL, b, n);
}

static void batched_vs_single(const AdSampleConfig *sc, const char *label) {
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_byte(&tok), AD_OK);
    AdModel m;
    build_stopping_model(&m, &tok);
    int prompts[BT_NREQ][16];
    AdGenRequest reqs[BT_NREQ];
    for (int r = 0; r < BT_NREQ; r++) {
        prompts[r][0] = tok.bos_id;
        random_tokens(prompts[r] + 1, BT_PLENS[r] - 1, 4, tok.vocab_size, 5, r);
        reqs[r] = (AdGenRequest){prompts[r], BT_PLENS[r], 10 + r, r % 3};
    }
    static Out out[2][3][BT_NREQ];
    static const int batches[3] = {1, 4, 8};
    for (int th = 1; th <= 2; th++) {
        ad_set_threads(th); /* before the generator: the cache sizes per-thread scratch */
        for (int b = 0; b < 3; b++)
            run_generate(&m, &tok, reqs, BT_NREQ, sc, batches[b], BT_S, 1, out[th - 1][b]);
        int reasons[3] = {0, 0, 0};
        for (int r = 0; r < BT_NREQ; r++) {
            check_stop_reason(&tok, &out[th - 1][0][r], r, BT_NEW);
            reasons[out[th - 1][0][r].stop]++;
        }
        char what[128];
        snprintf(what, sizeof what, "%s, %d thread(s), max_batch 4 vs 1", label, th);
        compare_outputs(what, out[th - 1][1], out[th - 1][0], BT_NREQ);
        snprintf(what, sizeof what, "%s, %d thread(s), max_batch 8 vs 1", label, th);
        compare_outputs(what, out[th - 1][2], out[th - 1][0], BT_NREQ);
        printf("%s, %d thread(s): stops length/eos/string = %d/%d/%d, lengths", label, th,
               reasons[0], reasons[1], reasons[2]);
        for (int r = 0; r < BT_NREQ; r++) printf(" %d", out[th - 1][0][r].n);
        printf("\n");
        /* the sequences must really stop on their own, for different reasons */
        ck_assert_msg(reasons[AD_STOP_EOS] > 0 && reasons[AD_STOP_LENGTH] > 0,
                      "%s: want both EOS and length stops (%d/%d/%d)", label, reasons[0],
                      reasons[1], reasons[2]);
        if (sc->stop)
            ck_assert_msg(reasons[AD_STOP_STRING] > 0, "%s: no stop-string stop", label);
    }
    char what[128];
    snprintf(what, sizeof what, "%s, max_batch 1, 2 threads vs 1", label);
    compare_outputs(what, out[1][0], out[0][0], BT_NREQ);
    ad_model_free(&m);
    ad_tokenizer_free(&tok);
}

START_TEST(test_batched_equals_single) {
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.temperature = 0.8f;
    sc.top_k = 20;
    sc.max_new_tokens = BT_NEW;
    sc.seed = 2024;
    sc.stop_at_eos = 1;
    sc.stop = BT_STOP;
    sc.want_entropy = 1;
    batched_vs_single(&sc, "T 0.8 top-k 20");
}
END_TEST

START_TEST(test_batched_equals_single_filters) {
    /* every filter and the per-sequence repetition counts at once */
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.temperature = 0.9f;
    sc.top_k = 40;
    sc.top_p = 0.9f;
    sc.min_p = 0.02f;
    sc.repetition_penalty = 1.3f;
    sc.max_new_tokens = BT_NEW;
    sc.seed = 77;
    sc.stop_at_eos = 1;
    sc.stop = BT_STOP;
    sc.want_entropy = 1;
    batched_vs_single(&sc, "top-k/p, min-p, penalty");
}
END_TEST

/* ==== 4. samplers on hand-made logits ========================================================= */

/* Hand-made logits in [-3, 3], all distinct. */
static void make_logits(float *z, int V, double a, double b) {
    for (int j = 0; j < V; j++) z[j] = (float)(2.5 * sin(a * j + b) + 0.01 * j);
    for (int i = 0; i < V; i++)
        for (int j = 0; j < i; j++) AD_ASSERT(z[i] != z[j]);
}

typedef struct {
    float probs[64];
    uint64_t keys[64];
} Scratch;

/* Draws N tokens, counting them; checks every returned logprob and entropy. */
static void draw(const float *z, int V, const AdSampleConfig *sc, const int *seen, long N,
                 uint64_t sub, long *counts) {
    AD_ASSERT(V <= 64);
    Scratch s;
    AdRng rng;
    ad_rng_init(&rng, 12345, AD_STREAM_SAMPLE, sub);
    double h = entropy_d(z, V);
    memset(counts, 0, sizeof(long) * V);
    for (long i = 0; i < N; i++) {
        float lp = NAN, ent = NAN;
        int t = ad_sample_token(z, V, sc, seen, &rng, s.probs, s.keys, &lp, &ent);
        ck_assert_msg(t >= 0 && t < V, "sampled token %d outside [0, %d)", t, V);
        counts[t]++;
        if (i < 1000) {
            ck_assert_msg(fabs(lp - log_softmax_at(z, V, t)) <= SAMPLER_TOL,
                          "logprob of token %d is %.8g, log_softmax gives %.8g", t, lp,
                          log_softmax_at(z, V, t));
            ck_assert_msg(fabs(ent - h) <= SAMPLER_TOL, "entropy %.8g, want %.8g", ent, h);
        }
    }
}

/* Chi-square of counts against p must pass at p = 0.001. */
static void check_chi2(const char *label, const long *counts, const double *p, int V, long N) {
    int df;
    double x2 = chi_square(counts, p, V, N, &df);
    ck_assert(df >= 1 && df <= 50);
    printf("%-28s chi2 %8.2f  df %2d  critical(0.001) %.3f\n", label, x2, df, CHI2_999[df]);
    ck_assert_msg(x2 <= CHI2_999[df], "%s: chi-square %.2f > %.3f (df %d)", label, x2,
                  CHI2_999[df], df);
}

/* And against a wrong target it must fail: shows the test has the power to notice. */
static void check_chi2_rejects(const char *label, const long *counts, const double *p, int V,
                               long N) {
    int df;
    double x2 = chi_square(counts, p, V, N, &df);
    ck_assert(df >= 1 && df <= 50);
    ck_assert_msg(x2 > CHI2_999[df], "%s: chi-square %.2f does not reject the wrong target",
                  label, x2);
}

START_TEST(test_sampler_greedy) {
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.temperature = 0.0f;
    Scratch s;
    AdRng rng;
    ad_rng_init(&rng, 1, AD_STREAM_SAMPLE, 0);
    float lp, ent;
    float z[10] = {0.5f, -1.0f, 2.0f, 3.0f, 1.0f, -2.0f, 0.0f, 3.0f, 2.5f, -0.5f};
    ck_assert_int_eq(ad_sample_token(z, 10, &sc, NULL, &rng, s.probs, s.keys, &lp, &ent), 3);
    ck_assert(fabs(lp - log_softmax_at(z, 10, 3)) <= SAMPLER_TOL);
    ck_assert(fabs(ent - entropy_d(z, 10)) <= SAMPLER_TOL);
    float flat[12];
    for (int j = 0; j < 12; j++) flat[j] = -4.0f;
    ck_assert_int_eq(ad_sample_token(flat, 12, &sc, NULL, &rng, s.probs, s.keys, &lp, NULL), 0);
    ck_assert(fabs(lp - log(1.0 / 12)) <= SAMPLER_TOL);
    float neg[10] = {-5, -4, -3, -2.5f, -7, -2.5f, -9, -3, -8, -6};
    ck_assert_int_eq(ad_sample_token(neg, 10, &sc, NULL, &rng, s.probs, s.keys, &lp, NULL), 3);
    /* filters do not change the argmax */
    sc.top_k = 2, sc.top_p = 0.5f, sc.min_p = 0.3f;
    ck_assert_int_eq(ad_sample_token(z, 10, &sc, NULL, &rng, s.probs, s.keys, &lp, NULL), 3);
}
END_TEST

START_TEST(test_sampler_repetition_penalty) {
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.temperature = 0.0f;
    sc.repetition_penalty = 1.25f;
    Scratch s;
    AdRng rng;
    ad_rng_init(&rng, 1, AD_STREAM_SAMPLE, 0);
    float lp;
    /* positive logit divided: 2.0 / 1.25 = 1.6 < 1.9, so the argmax moves to token 1 */
    float zp[10] = {2.0f, 1.9f, 0, 0, 0, 0, 0, 0, 0, 0};
    int seen[12] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(ad_sample_token(zp, 10, &sc, seen, &rng, s.probs, s.keys, &lp, NULL), 1);
    ck_assert(fabs(lp - log_softmax_at(zp, 10, 1)) <= SAMPLER_TOL); /* unpenalised logprob */
    /* 1.7 / 1.25 = 1.36 < 1.5 but 1.7 > 1.5: only seen tokens are penalised */
    float zq[10] = {1.0f, 1.5f, 1.7f, 0, 0, 0, 0, 0, 0, 0};
    int seen2[10] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(ad_sample_token(zq, 10, &sc, seen2, &rng, s.probs, s.keys, &lp, NULL), 1);
    ck_assert_int_eq(ad_sample_token(zq, 10, &sc, NULL, &rng, s.probs, s.keys, &lp, NULL), 2);
    /* negative logit multiplied: -1.0 * 1.25 = -1.25 < -1.1 (dividing would give -0.8) */
    float zn[10] = {-1.0f, -1.1f, -3, -3, -3, -3, -3, -3, -3, -3};
    ck_assert_int_eq(ad_sample_token(zn, 10, &sc, seen, &rng, s.probs, s.keys, &lp, NULL), 1);
    /* a count of 3 penalises once (1.2 / 1.25 = 0.96 > 0.9; 1.25^3 would give 0.61) */
    float zc[10] = {1.2f, 0.9f, 0, 0, 0, 0, 0, 0, 0, 0};
    int seen3[10] = {3, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(ad_sample_token(zc, 10, &sc, seen3, &rng, s.probs, s.keys, &lp, NULL), 0);

    /* the sampled distribution is exactly softmax(z') with CTRL's z' */
    enum { V = 12 };
    const long N = 200000;
    float z[V];
    make_logits(z, V, 0.9, 0.3);
    int sn[V] = {0};
    sn[argmax_first(z, V)] = 1;                   /* the most probable (z > 0) */
    for (int j = 0; j < V; j++)
        if (z[j] < 0 && z[j] > -1.5f) sn[j] = 2;  /* moderately negative ones */
    float zpen[V];
    int n_neg = 0;
    for (int j = 0; j < V; j++) {
        zpen[j] = z[j];
        if (sn[j]) zpen[j] = z[j] > 0 ? z[j] / 1.25f : z[j] * 1.25f;
        n_neg += sn[j] && z[j] < 0;
    }
    ck_assert(n_neg >= 1);
    double p[V], praw[V];
    softmax_d(p, zpen, V, 1.0);
    softmax_d(praw, z, V, 1.0);
    sc.temperature = 1.0f;
    long counts[V];
    draw(z, V, &sc, sn, N, 1, counts);
    check_chi2("repetition penalty 1.25", counts, p, V, N);
    check_chi2_rejects("penalty vs unpenalised", counts, praw, V, N);
}
END_TEST

START_TEST(test_sampler_temperature) {
    enum { V = 20 };
    const long N = 200000;
    float z[V];
    make_logits(z, V, 0.7, 0.1);
    double p1[V], p07[V];
    softmax_d(p1, z, V, 1.0);
    softmax_d(p07, z, V, 0.7);
    for (int j = 0; j < V; j++) ck_assert(p07[j] * N >= 5.0); /* chi-square validity */
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    long counts[V];
    sc.temperature = 1.0f;
    draw(z, V, &sc, NULL, N, 2, counts);
    check_chi2("temperature 1", counts, p1, V, N);
    check_chi2_rejects("temperature 1 vs T 0.7", counts, p07, V, N);
    sc.temperature = 0.7f;
    draw(z, V, &sc, NULL, N, 3, counts);
    check_chi2("temperature 0.7", counts, p07, V, N);
    check_chi2_rejects("temperature 0.7 vs T 1", counts, p1, V, N);
}
END_TEST

/* Indices of z sorted by decreasing value (the test's own ordering). */
static void order_desc(const float *z, int V, int *idx) {
    for (int j = 0; j < V; j++) idx[j] = j;
    for (int i = 1; i < V; i++)
        for (int j = i; j > 0 && z[idx[j]] > z[idx[j - 1]]; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
}

/* Renormalises p over the tokens with keep[j] != 0. */
static void restrict_to(double *q, const double *p, const int *keep, int V) {
    double s = 0.0;
    for (int j = 0; j < V; j++) s += keep[j] ? p[j] : 0.0;
    for (int j = 0; j < V; j++) q[j] = keep[j] ? p[j] / s : 0.0;
}

/* The kept set is respected over 20000 draws (every kept token shows up, no other
 * does) and the frequencies over 200000 draws match the renormalised target. */
static void check_filter(const char *label, const float *z, int V, const AdSampleConfig *sc,
                         const int *keep, double temp, uint64_t sub) {
    long counts[64];
    double p[64], q[64];
    draw(z, V, sc, NULL, 20000, sub, counts);
    for (int j = 0; j < V; j++) {
        ck_assert_msg(keep[j] || counts[j] == 0, "%s: token %d (outside the kept set) drawn %ld "
                      "times", label, j, counts[j]);
        ck_assert_msg(!keep[j] || counts[j] > 0, "%s: kept token %d never drawn", label, j);
    }
    const long N = 200000;
    softmax_d(p, z, V, temp);
    restrict_to(q, p, keep, V);
    draw(z, V, sc, NULL, N, sub + 100, counts);
    check_chi2(label, counts, q, V, N);
}

START_TEST(test_sampler_top_k) {
    enum { V = 30 };
    float z[V];
    int idx[V], keep[V];
    make_logits(z, V, 0.45, 1.0);
    order_desc(z, V, idx);
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    int ks[3] = {1, 5, 8};
    for (int i = 0; i < 3; i++) {
        memset(keep, 0, sizeof keep);
        for (int j = 0; j < ks[i]; j++) keep[idx[j]] = 1;
        sc.top_k = ks[i];
        char label[64];
        snprintf(label, sizeof label, "top-k %d", ks[i]);
        if (ks[i] == 1) { /* top-1 is greedy */
            long counts[V];
            draw(z, V, &sc, NULL, 2000, 20, counts);
            ck_assert_int_eq(counts[idx[0]], 2000);
            continue;
        }
        check_filter(label, z, V, &sc, keep, 1.0, 20 + i);
    }
    sc.top_k = 8;
    sc.temperature = 0.7f;
    memset(keep, 0, sizeof keep);
    for (int j = 0; j < 8; j++) keep[idx[j]] = 1;
    check_filter("top-k 8, temperature 0.7", z, V, &sc, keep, 0.7, 30);
}
END_TEST

START_TEST(test_sampler_top_p) {
    enum { V = 25 };
    float z[V];
    int idx[V], keep[V];
    double p[V];
    make_logits(z, V, 0.55, 0.2);
    order_desc(z, V, idx);
    softmax_d(p, z, V, 1.0);
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    const float tops[3] = {0.5f, 0.8f, 0.95f};
    for (int i = 0; i < 3; i++) {
        /* the smallest prefix of the sorted tokens whose mass reaches top_p */
        double c = 0.0;
        int m = 0;
        while (c < tops[i]) c += p[idx[m++]];
        ck_assert_msg(c - tops[i] > 1e-3 && tops[i] - (c - p[idx[m - 1]]) > 1e-3,
                      "top_p %.2f too close to a prefix mass: the test needs a margin", tops[i]);
        memset(keep, 0, sizeof keep);
        for (int j = 0; j < m; j++) keep[idx[j]] = 1;
        sc.top_p = tops[i];
        char label[64];
        snprintf(label, sizeof label, "top-p %.2f (%d kept)", tops[i], m);
        check_filter(label, z, V, &sc, keep, 1.0, 40 + i);
    }
}
END_TEST

START_TEST(test_sampler_min_p) {
    enum { V = 40 };
    float z[V];
    int keep[V];
    double p[V];
    make_logits(z, V, 0.33, 0.8);
    softmax_d(p, z, V, 1.0);
    double pmax = 0;
    for (int j = 0; j < V; j++) pmax = fmax(pmax, p[j]);
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    const float mins[2] = {0.05f, 0.3f};
    for (int i = 0; i < 2; i++) {
        int m = 0;
        for (int j = 0; j < V; j++) {
            ck_assert_msg(fabs(p[j] / pmax - mins[i]) > 1e-3, "min_p too close to a ratio");
            keep[j] = p[j] >= mins[i] * pmax;
            m += keep[j];
        }
        ck_assert(m > 1 && m < V);
        sc.min_p = mins[i];
        char label[64];
        snprintf(label, sizeof label, "min-p %.2f (%d kept)", mins[i], m);
        check_filter(label, z, V, &sc, keep, 1.0, 60 + i);
    }
}
END_TEST

/* ==== 5. errors ============================================================================== */

START_TEST(test_errors) {
    AdModel m;
    enum { S = 16 };
    build_model(&m, "llama", 23, S, 1, 2, 1, 8, 12, -1, 4.0f, 9);
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_byte(&tok), AD_OK); /* only its <eos> id is used */
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.max_new_tokens = 4;
    sc.stop_at_eos = 0;
    AdGenerator g;
    ck_assert_int_eq(ad_generator_init(&g, &m, 2, S, 4, 0), AD_OK);
    int ok[3] = {1, 5, 7}, longp[S + 1], bad_hi[2] = {1, 23}, bad_lo[3] = {1, 4, -1};
    for (int i = 0; i < S + 1; i++) longp[i] = i % 23;
    static Out o[4];
    Collect c = {o, 4};
    struct {
        const char *what;
        AdGenRequest reqs[3];
        const char *needle;
    } cases[] = {
        {"empty prompt", {{ok, 3, 0, 0}, {ok, 2, 1, 0}, {ok, 0, 2, 0}}, "request 2"},
        {"NULL empty prompt", {{NULL, 0, 0, 0}, {ok, 2, 1, 0}, {ok, 3, 2, 0}}, "request 0"},
        {"prompt as long as the cache", {{ok, 3, 0, 0}, {longp, S, 1, 0}, {ok, 1, 2, 0}},
         "request 1"},
        {"prompt longer than the cache", {{longp, S + 1, 0, 0}, {ok, 1, 1, 0}, {ok, 1, 2, 0}},
         "request 0"},
        {"token id = V", {{ok, 1, 0, 0}, {ok, 1, 1, 0}, {bad_hi, 2, 2, 0}}, "request 2"},
        {"token id -1", {{bad_lo, 3, 0, 0}, {ok, 1, 1, 0}, {ok, 1, 2, 0}}, "request 0"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memset(o, 0, sizeof o);
        ad_clear_error();
        AdStatus st = ad_generate(&g, &tok, cases[k].reqs, 3, &sc, collect_sink, &c, NULL, NULL);
        printf("%-30s -> %s: %s\n", cases[k].what, ad_status_name(st), ad_errmsg());
        ck_assert_msg(st == AD_ERR_ARG, "%s: status %s", cases[k].what, ad_status_name(st));
        ck_assert_msg(strstr(ad_errmsg(), cases[k].needle), "%s: message \"%s\" does not name %s",
                      cases[k].what, ad_errmsg(), cases[k].needle);
        for (int r = 0; r < 3; r++)
            ck_assert_msg(o[r].calls == 0, "%s: request %d was generated", cases[k].what, r);
    }
    /* the longest acceptable prompt leaves room for exactly one token */
    AdGenRequest edge = {longp, S - 1, 0, 0};
    memset(o, 0, sizeof o);
    ck_assert_int_eq(ad_generate(&g, &tok, &edge, 1, &sc, collect_sink, &c, NULL, NULL), AD_OK);
    ck_assert_int_eq(o[0].calls, 1);
    ck_assert_int_eq(o[0].n, 1);
    ck_assert_int_eq(o[0].stop, AD_STOP_LENGTH);
    ad_generator_free(&g);
    ad_generator_free(&g); /* safe twice */
    ad_model_free(&m);
    ad_tokenizer_free(&tok);
}
END_TEST

/* ==== 6. determinism ========================================================================== */

static int same_tokens(const Out *a, const Out *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->tok[i] != b->tok[i] || a->lp[i] != b->lp[i]) return 0;
    return 1;
}

START_TEST(test_determinism) {
    AdModel m;
    enum { S = 32, NEW = 16, N = 6 };
    build_model(&m, "llama", 41, S, 2, 4, 2, 16, 24, -1, 3.0f, 17);
    int pa[4] = {1, 7, 8, 9}, pb[2] = {1, 30};
    /* (prompt, prompt_index, sample_index): 0 and 3 are the same request */
    AdGenRequest reqs[N] = {{pa, 4, 0, 0}, {pa, 4, 0, 1}, {pb, 2, 1, 0},
                            {pa, 4, 0, 0}, {pa, 4, 0, 2}, {pb, 2, 1, 1}};
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.max_new_tokens = NEW;
    sc.stop_at_eos = 0;
    sc.seed = 5;
    static Out a[N], b[N], rev[N], other[N];
    run_generate(&m, NULL, reqs, N, &sc, 4, S, 0, a);
    run_generate(&m, NULL, reqs, N, &sc, 4, S, 0, b);
    for (int r = 0; r < N; r++) ck_assert_msg(same_tokens(&a[r], &b[r]), "rerun differs at %d", r);
    ck_assert_msg(same_tokens(&a[0], &a[3]), "the same request in another batch row differs");
    ck_assert_msg(!same_tokens(&a[0], &a[1]) && !same_tokens(&a[0], &a[4]) &&
                      !same_tokens(&a[1], &a[4]) && !same_tokens(&a[2], &a[5]),
                  "different sample_index gave the same sample");
    /* reversed order, other batch size: each request's sample depends only on its stream */
    AdGenRequest rreqs[N];
    for (int r = 0; r < N; r++) rreqs[r] = reqs[N - 1 - r];
    run_generate(&m, NULL, rreqs, N, &sc, 3, S, 0, rev);
    for (int r = 0; r < N; r++)
        ck_assert_msg(same_tokens(&a[r], &rev[N - 1 - r]), "request %d differs when reordered", r);
    sc.seed = 6;
    run_generate(&m, NULL, reqs, N, &sc, 4, S, 0, other);
    int differ = 0;
    for (int r = 0; r < N; r++) differ += !same_tokens(&a[r], &other[r]);
    ck_assert_msg(differ == N, "another seed reproduced %d of %d samples", N - differ, N);
    ad_model_free(&m);
}
END_TEST

/* ==== 7. batch invariance ======================================================================
 * A request's output must not depend on the batch it ran in: its row, the batch size, the
 * other requests, their order or the thread count. Two models whose sizes are not multiples
 * of any vector width or tile (GPT-2 with biases and learned positions; Llama with grouped
 * queries and RoPE), 64 requests with prompts of 1..9 tokens that stop at different times;
 * every batch size 1..8 and 64, in order and shuffled, on 1 and 2 threads, against the
 * requests run one at a time on one thread, bit for bit. */

typedef struct {
    const char *family;
    int L, H, Hkv, C, F, pos;
} InvCfg;

static const InvCfg INV_CFGS[] = {
    {"gpt2", 2, 3, 3, 21, 37, -1},         /* hs 7 */
    {"llama", 2, 4, 2, 40, 52, AD_POS_ROPE}, /* hs 10, GQA */
    {"llama/window", 2, 4, 2, 40, 52, AD_POS_ROPE}, /* sliding window 5 < the sequences */
};

enum { INV_NREQ = 64, INV_S = 40, INV_NEW = 14 };

START_TEST(test_batch_invariance) {
    const InvCfg *k = &INV_CFGS[_i];
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_byte(&tok), AD_OK);
    AdModel m;
    build_model(&m, k->family, tok.vocab_size, INV_S, k->L, k->H, k->Hkv, k->C, k->F, k->pos, 3.0f,
                90 + _i);
    static int prompts[INV_NREQ][10];
    AdGenRequest reqs[INV_NREQ], shuffled[INV_NREQ];
    int perm[INV_NREQ];
    AdRng rng;
    ad_rng_init(&rng, 4, AD_STREAM_DATA, 99);
    for (int r = 0; r < INV_NREQ; r++) {
        int len = 1 + (int)ad_rng_below(&rng, 9);
        prompts[r][0] = tok.bos_id;
        random_tokens(prompts[r] + 1, len - 1, 4, tok.vocab_size, 8, r);
        reqs[r] = (AdGenRequest){prompts[r], len, r / 3, r % 3};
        perm[r] = r;
    }
    for (int r = INV_NREQ - 1; r > 0; r--) { /* Fisher-Yates */
        int j = (int)ad_rng_below(&rng, (uint32_t)r + 1), t = perm[r];
        perm[r] = perm[j], perm[j] = t;
    }
    for (int r = 0; r < INV_NREQ; r++) shuffled[perm[r]] = reqs[r]; /* request r at perm[r] */
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.max_new_tokens = INV_NEW;
    sc.seed = 11;
    sc.stop_at_eos = 1;
    sc.want_entropy = 1;
    /* <eos> likely enough that sequences finish at different steps */
    m.params.t[AD_P_LNFW][0] = 3.0f;
    float *wcls = m.params.t[m.cfg.tied ? AD_P_WTE : AD_P_LM_HEAD];
    for (int c = 0; c < m.cfg.d_model; c++) wcls[(size_t)tok.eos_id * m.cfg.d_model + c] = c == 0;
    static Out ref[INV_NREQ], got[INV_NREQ];
    ad_set_threads(1);
    run_generate(&m, &tok, reqs, INV_NREQ, &sc, 1, INV_S, 1, ref);
    int lengths[INV_NEW + 1] = {0};
    for (int r = 0; r < INV_NREQ; r++) lengths[ref[r].n]++;
    static const int batches[] = {1, 2, 3, 4, 5, 6, 7, 8, 64};
    int runs = 0;
    for (int th = 1; th <= 2; th++) {
        ad_set_threads(th);
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
            for (int order = 0; order < 2; order++) {
                if (th == 1 && batches[b] == 1 && order == 0) continue; /* the reference */
                run_generate(&m, &tok, order ? shuffled : reqs, INV_NREQ, &sc, batches[b], INV_S, 1,
                             got);
                char what[128];
                snprintf(what, sizeof what, "%s, %d thread(s), max_batch %d, %s", k->family, th,
                         batches[b], order ? "shuffled" : "in order");
                compare_outputs_perm(what, got, order ? perm : NULL, ref, INV_NREQ);
                runs++;
            }
    }
    ad_set_threads(2);
    int distinct = 0;
    for (int n = 0; n <= INV_NEW; n++) distinct += lengths[n] > 0;
    printf("%s: %d runs bit-identical to one-at-a-time decoding; %d distinct output lengths\n",
           k->family, runs, distinct);
    ck_assert_msg(distinct >= 3, "%s: sequences should stop at different steps (%d lengths)",
                  k->family, distinct);
    ad_model_free(&m);
    ad_tokenizer_free(&tok);
}
END_TEST

/* The same at the level of ad_model_forward_step: one sequence's full logits row, fed one
 * token at a time at every row index of batches of 1..8 and 64 whose other rows hold other
 * sequences at other positions, against the sequence alone. */
START_TEST(test_step_logits_invariance) {
    const InvCfg *k = &INV_CFGS[_i];
    enum { V = 53, LEN = 12, NMAX = 64 };
    AdModel m;
    build_model(&m, k->family, V, INV_S, k->L, k->H, k->Hkv, k->C, k->F, k->pos, 3.0f, 70 + _i);
    int seq[LEN], other[NMAX][INV_S];
    random_tokens(seq, LEN, 0, V, 3, 0);
    for (int r = 0; r < NMAX; r++) random_tokens(other[r], INV_S, 0, V, 3, 1 + r);
    static float ref[LEN][V];
    AdKVCache kc;
    static const int batches[] = {1, 2, 3, 4, 5, 6, 7, 8, 64};
    int checked = 0;
    for (int th = 1; th <= 2; th++) {
        ad_set_threads(th);
        ck_assert_int_eq(ad_kvcache_init(&kc, &m.cfg, NMAX, INV_S), AD_OK);
        ad_kvcache_pack(&kc, &m);
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            int n = batches[b];
            for (int row = 0; row < n; row += n > 8 ? 13 : 1) {
                int tokens[NMAX], pos[NMAX], slots[NMAX];
                for (int t = 0; t < LEN; t++) {
                    for (int r = 0; r < n; r++) {
                        /* the others start 0..4 positions later and sit in shuffled slots */
                        slots[r] = (2 * n - 1 - r + row) % n;
                        pos[r] = r == row ? t : t + (r % 5);
                        tokens[r] = r == row ? seq[t] : other[r][pos[r]];
                    }
                    ad_model_forward_step(&m, &kc, tokens, pos, slots, n);
                    const float *z = kc.logits + (size_t)row * V;
                    if (th == 1 && n == 1) {
                        memcpy(ref[t], z, sizeof ref[t]);
                        continue;
                    }
                    for (int j = 0; j < V; j++)
                        ck_assert_msg(same_bits(z[j], ref[t][j]),
                                      "%s, %d thread(s), batch %d, row %d, position %d: logit %d "
                                      "is %.9g, alone %.9g", k->family, th, n, row, t, j, z[j],
                                      ref[t][j]);
                    checked++;
                }
            }
        }
        ad_kvcache_free(&kc);
    }
    ad_set_threads(2);
    printf("%s: %d logits rows bit-identical to the sequence decoded alone\n", k->family, checked);
    ad_model_free(&m);
}
END_TEST

static Suite *generate_suite(void) {
    Suite *s = suite_create("generate");
    TCase *tc = tcase_create("real_model");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_real_model_greedy);
    suite_add_tcase(s, tc);
    tc = tcase_create("kv_cache");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_loop_test(tc, test_kv_vs_full_forward, 0, sizeof KV_CFGS / sizeof KV_CFGS[0]);
    tcase_add_test(tc, test_penalty_greedy_vs_full_forward);
    suite_add_tcase(s, tc);
    tc = tcase_create("batching");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_batched_equals_single);
    tcase_add_test(tc, test_batched_equals_single_filters);
    suite_add_tcase(s, tc);
    tc = tcase_create("samplers");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_sampler_greedy);
    tcase_add_test(tc, test_sampler_repetition_penalty);
    tcase_add_test(tc, test_sampler_temperature);
    tcase_add_test(tc, test_sampler_top_k);
    tcase_add_test(tc, test_sampler_top_p);
    tcase_add_test(tc, test_sampler_min_p);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors_determinism");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(s, tc);
    tc = tcase_create("batch_invariance");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_loop_test(tc, test_batch_invariance, 0, sizeof INV_CFGS / sizeof INV_CFGS[0]);
    tcase_add_loop_test(tc, test_step_logits_invariance, 0, sizeof INV_CFGS / sizeof INV_CFGS[0]);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep the lines a failing test printed */
    return ad_test_run(generate_suite());
}
