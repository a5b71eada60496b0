/* test_model.c: the whole model against an independent double-precision reference
 * (ref_model.c): logits, loss and every gradient entry (against central finite
 * differences of the reference) for each family switch, plus capacity, accumulation
 * and determinism checks, and property checks of the reference itself. It does not
 * test kernels one by one, nor losses other than hard-label cross-entropy. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodidact/kernels.h"
#include "autodidact/losses.h"
#include "autodidact/model.h"
#include "autodidact/rng.h"
#include "ref_model.h"
#include "testutil.h"

/* ---- tolerances ----------------------------------------------------------------
 * The model computes in float32 (unit roundoff 6e-8) through a few hundred accumulated
 * products per entry; the reference is double, and its central differences with step
 * 1e-5 are accurate to ~1e-9 absolute (truncation h^2 L'''/6 and roundoff 1e-16/h, both
 * far below float32 noise). So every difference below is the model's float32 rounding,
 * measured at 1e-7..1e-6 of the relevant scale on these configs; each bound leaves a
 * margin of 10x or more over it.
 *
 * Logits: |got - ref| <= LOGIT_TOL * max(1, max|ref|).
 * Loss:   |got - ref| <= LOSS_RTOL * ref.
 * Gradients, per tensor (scale = max|g_ref| over that tensor):
 *   each entry:  |g - g_ref| <= GRAD_RTOL * |g_ref| + GRAD_ATOL * scale + GRAD_FLOOR
 *   the tensor:  ||g - g_ref||_2 <= GRAD_L2 * ||g_ref||_2 + GRAD_FLOOR
 * The entry bound never exceeds 2.2e-4 * scale, so a wrong sign, a dropped term or a
 * misplaced row is caught unless it moves every entry by less than 0.02% of the tensor's
 * largest gradient; the L2 bound catches a small error spread over a whole tensor. The
 * weights are scaled up from the GPT-2 init (see perturb_weights) so that attention is
 * far from uniform and every nonlinearity contributes visibly to the gradients;
 * check_grads_mutations() shows that sign flips and dropped entries fail. */
#define LOGIT_TOL 3e-5
#define LOSS_RTOL 2e-6
#define GRAD_RTOL 2e-4
#define GRAD_ATOL 2e-5
#define GRAD_L2 2e-5
#define GRAD_FLOOR 1e-8
#define FD_STEP 1e-5
#define TIMEOUT 120

/* ---- configs --------------------------------------------------------------------- */

static AdModelConfig make_cfg(const char *family, int V, int maxT, int L, int H, int Hkv, int C,
                              int F) {
    AdModelConfig c;
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(ad_model_config_preset(&c, family), AD_OK);
    c.vocab_size = V;
    c.max_seq_len = maxT;
    c.n_layer = L;
    c.n_head = H;
    c.n_kv_head = Hkv;
    c.d_model = C;
    c.d_ff = F;
    return c;
}

static AdModelConfig cfg_gpt2(void) { return make_cfg("gpt2", 13, 7, 2, 2, 2, 8, 32); }
static AdModelConfig cfg_llama(int Hkv) { return make_cfg("llama", 11, 8, 2, 4, Hkv, 16, 12); }

/* ---- model setup ----------------------------------------------------------------- */

static int is_norm_weight(int id) { return id == AD_P_LN1W || id == AD_P_LN2W || id == AD_P_LNFW; }
static int is_bias(int id) {
    return id == AD_P_LN1B || id == AD_P_LN2B || id == AD_P_LNFB || id == AD_P_QKVB ||
           id == AD_P_ATTPROJB || id == AD_P_FCB || id == AD_P_FCPROJB;
}

/* Moves the weights away from the init so that every part of the network matters:
 * matrices x12 (std 0.24, residual projections 0.24/sqrt(2L)), norm weights 1 + 0.3 N,
 * biases 0.2 N. */
static void perturb_weights(AdModel *m, uint64_t seed) {
    RefLayout lay;
    ref_layout(&m->cfg, &lay);
    AdRng rng;
    ad_rng_init(&rng, seed, AD_STREAM_INIT, 99);
    for (int id = 0; id < AD_P_COUNT; id++) {
        float *p = m->params_mem + lay.offset[id];
        for (size_t i = 0; i < lay.size[id]; i++) {
            if (is_norm_weight(id))
                p[i] = 1.0f + 0.3f * ad_rng_normal(&rng);
            else if (is_bias(id))
                p[i] = 0.2f * ad_rng_normal(&rng);
            else
                p[i] *= 12.0f;
        }
    }
}

static void setup_model(AdModel *m, const AdModelConfig *c, uint64_t seed) {
    memset(m, 0, sizeof *m);
    AdStatus st = ad_model_init(m, c, 1);
    ck_assert_msg(st == AD_OK, "ad_model_init: %s", ad_errmsg());
    AdRng rng;
    ad_rng_init(&rng, seed, AD_STREAM_INIT, 0);
    ad_model_init_weights(m, &rng, AD_INIT_GPT2);
    perturb_weights(m, seed);
}

/* Random tokens; targets are the next token (a random one at the end). mask = 1 masks a
 * prompt of 2 + b positions in sequence b and the last position of odd sequences. */
static void make_batch(int *tokens, int *targets, int B, int T, int V, int mask, uint64_t seed) {
    AdRng rng;
    ad_rng_init(&rng, seed, AD_STREAM_DATA, 0);
    for (int i = 0; i < B * T; i++) tokens[i] = (int)ad_rng_below(&rng, (uint32_t)V);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int *y = &targets[b * T + t];
            *y = t + 1 < T ? tokens[b * T + t + 1] : (int)ad_rng_below(&rng, (uint32_t)V);
            if (mask && (t < 2 + b || (b % 2 == 1 && t == T - 1))) *y = -1;
        }
}

/* ---- comparisons ----------------------------------------------------------------- */

/* Formats "name[i,j,k]" for flat index `k` of tensor `id`. */
static const char *entry_name(const RefLayout *lay, int id, size_t k) {
    static char buf[128];
    int idx[3] = {0, 0, 0};
    size_t r = k;
    for (int d = lay->ndim[id] - 1; d >= 0; d--) {
        idx[d] = (int)(r % (size_t)lay->shape[id][d]);
        r /= (size_t)lay->shape[id][d];
    }
    if (lay->ndim[id] == 1) snprintf(buf, sizeof buf, "%s[%d]", lay->name[id], idx[0]);
    if (lay->ndim[id] == 2) snprintf(buf, sizeof buf, "%s[%d,%d]", lay->name[id], idx[0], idx[1]);
    if (lay->ndim[id] == 3)
        snprintf(buf, sizeof buf, "%s[%d,%d,%d]", lay->name[id], idx[0], idx[1], idx[2]);
    return buf;
}

static void check_logits(const char *label, const float *got, const double *ref, size_t n, int V) {
    double scale = 1.0, worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]);
        if (!(d <= worst)) worst = d, wi = i;
    }
    printf("%-15s logits   max|diff| %.2e (scale %.2f)\n", label, worst, scale);
    ck_assert_msg(worst <= LOGIT_TOL * scale,
                  "%s: logits differ at token %zu, vocab %zu: model %.9g reference %.9g "
                  "(|diff| %.3g > %.3g)",
                  label, wi / (size_t)V, wi % (size_t)V, got[wi], ref[wi], worst, LOGIT_TOL * scale);
}

typedef struct {
    double ratio;       /* worst |g - g_ref| / bound over entries and tensors (> 1: fail) */
    double entry_ratio; /* the worst over entries alone */
    double l2_ratio;    /* the worst over tensors' L2 alone */
    char msg[512];      /* the worst entry or tensor, both values */
} GradReport;

/* Compares the model gradient block with the reference gradient, tensor by tensor. */
static GradReport compare_grads(const AdModelConfig *c, const float *g, const double *gref) {
    RefLayout lay;
    ref_layout(c, &lay);
    GradReport rep = {0, 0, 0, ""};
    for (int id = 0; id < AD_P_COUNT; id++) {
        size_t off = lay.offset[id], n = lay.size[id];
        if (!n) continue;
        double scale = 0, l2d = 0, l2r = 0;
        for (size_t k = 0; k < n; k++) scale = fmax(scale, fabs(gref[off + k]));
        for (size_t k = 0; k < n; k++) {
            double r = gref[off + k], d = fabs(g[off + k] - r);
            double bound = GRAD_RTOL * fabs(r) + GRAD_ATOL * scale + GRAD_FLOOR;
            l2d += d * d;
            l2r += r * r;
            rep.entry_ratio = fmax(rep.entry_ratio, d / bound);
            if (!(d / bound <= rep.ratio)) {
                rep.ratio = isnan(d) ? INFINITY : d / bound;
                snprintf(rep.msg, sizeof rep.msg,
                         "%s: model %.9g reference %.9g |diff| %.3g bound %.3g "
                         "(tensor max|g_ref| %.3g)",
                         entry_name(&lay, id, k), g[off + k], r, d, bound, scale);
            }
        }
        double bound = GRAD_L2 * sqrt(l2r) + GRAD_FLOOR;
        rep.l2_ratio = fmax(rep.l2_ratio, sqrt(l2d) / bound);
        if (!(sqrt(l2d) / bound <= rep.ratio)) {
            rep.ratio = sqrt(l2d) / bound;
            snprintf(rep.msg, sizeof rep.msg,
                     "%s: ||g - g_ref|| %.3g > %.3g * ||g_ref|| (= %.3g) over the tensor",
                     lay.name[id], sqrt(l2d), GRAD_L2, sqrt(l2r));
        }
    }
    return rep;
}

/* Shows the comparison is sharp enough: flipping the sign of any tensor's gradient,
 * or zeroing its largest entry, must fail it. */
static void check_grads_mutations(const char *label, const AdModelConfig *c, const float *g,
                                  const double *gref) {
    RefLayout lay;
    ref_layout(c, &lay);
    float *mut = malloc(lay.total * sizeof(float));
    ck_assert_ptr_nonnull(mut);
    for (int id = 0; id < AD_P_COUNT; id++) {
        size_t off = lay.offset[id], n = lay.size[id], big = off;
        double scale = 0;
        for (size_t k = off; k < off + n; k++)
            if (fabs(gref[k]) > scale) scale = fabs(gref[k]), big = k;
        if (scale == 0) continue;
        memcpy(mut, g, lay.total * sizeof(float));
        for (size_t k = off; k < off + n; k++) mut[k] = -mut[k];
        ck_assert_msg(compare_grads(c, mut, gref).ratio > 1, "%s: negated %s not detected", label,
                      lay.name[id]);
        memcpy(mut, g, lay.total * sizeof(float));
        mut[big] = 0;
        ck_assert_msg(compare_grads(c, mut, gref).ratio > 1, "%s: zeroed %s not detected", label,
                      entry_name(&lay, id, big - off));
    }
    free(mut);
}

/* ---- the whole-model comparison -------------------------------------------------- */

static void check_against_reference(const char *label, AdModelConfig cfg, int B, int T, int mask) {
    AdModel m;
    AdActs a;
    memset(&a, 0, sizeof a);
    setup_model(&m, &cfg, 1234);
    RefLayout lay;
    ref_layout(&cfg, &lay);
    ck_assert_msg(m.n_params == lay.total, "%s: n_params %zu, docs/MODEL.md gives %zu", label,
                  m.n_params, lay.total);
    AdStatus st = ad_acts_init(&a, &cfg, B, T);
    ck_assert_msg(st == AD_OK, "ad_acts_init: %s", ad_errmsg());

    int N = B * T, V = cfg.vocab_size;
    int *tokens = malloc(N * sizeof(int)), *targets = malloc(N * sizeof(int));
    double *ref_logits = malloc((size_t)N * V * sizeof(double));
    double *gref = malloc(lay.total * sizeof(double));
    ck_assert(tokens && targets && ref_logits && gref);
    make_batch(tokens, targets, B, T, V, mask, 77);
    long count = ad_count_targets(targets, N);
    ck_assert_int_gt(count, 0);

    double ref_loss = ref_forward_loss(&cfg, m.params_mem, tokens, targets, B, T, ref_logits);
    ad_model_forward(&m, &a, tokens, B, T);
    check_logits(label, a.logits, ref_logits, (size_t)N * V, V);

    double loss = ad_loss_ce(a.dlogits, NULL, a.logits, targets, N, V, 1.0f / (float)count) / count;
    printf("%-15s loss     model %.8f reference %.8f (%ld targets)\n", label, loss, ref_loss, count);
    ck_assert_msg(fabs(loss - ref_loss) <= LOSS_RTOL * ref_loss,
                  "%s: loss model %.9g reference %.9g", label, loss, ref_loss);

    ad_model_zero_grad(&m);
    ad_model_backward(&m, &a, tokens, B, T);
    ref_grad_fd(&cfg, m.params_mem, tokens, targets, B, T, FD_STEP, gref);
    GradReport rep = compare_grads(&cfg, m.grads_mem, gref);
    printf("%-15s grads    worst |diff|/bound: entries %.3f, tensor L2 %.3f over %zu entries\n",
           label, rep.entry_ratio, rep.l2_ratio, lay.total);
    ck_assert_msg(rep.ratio <= 1, "%s: gradient mismatch at %s", label, rep.msg);
    check_grads_mutations(label, &cfg, m.grads_mem, gref);

    free(tokens);
    free(targets);
    free(ref_logits);
    free(gref);
    ad_acts_free(&a);
    ad_model_free(&m);
}

START_TEST(test_gpt2) { check_against_reference("gpt2", cfg_gpt2(), 2, 6, 0); }
END_TEST

START_TEST(test_gpt2_masked) { check_against_reference("gpt2 masked", cfg_gpt2(), 3, 7, 1); }
END_TEST

START_TEST(test_gpt2_nobias) {
    AdModelConfig c = cfg_gpt2();
    c.bias = 0;
    check_against_reference("gpt2 bias=0", c, 2, 6, 0);
}
END_TEST

START_TEST(test_gpt2_pos_none) {
    AdModelConfig c = cfg_gpt2();
    c.pos = AD_POS_NONE;
    check_against_reference("gpt2 pos=none", c, 2, 6, 1);
}
END_TEST

START_TEST(test_gpt2_odd) {
    AdModelConfig c = make_cfg("gpt2", 11, 9, 2, 3, 3, 12, 20);
    check_against_reference("gpt2 odd", c, 2, 7, 1);
}
END_TEST

START_TEST(test_llama_mha) { check_against_reference("llama Hkv=4", cfg_llama(4), 2, 6, 0); }
END_TEST

START_TEST(test_llama_gqa2) { check_against_reference("llama Hkv=2", cfg_llama(2), 2, 7, 0); }
END_TEST

START_TEST(test_llama_gqa1) { check_against_reference("llama Hkv=1", cfg_llama(1), 2, 7, 1); }
END_TEST

START_TEST(test_llama_pos_none) {
    AdModelConfig c = cfg_llama(2);
    c.pos = AD_POS_NONE;
    check_against_reference("llama pos=none", c, 2, 6, 0);
}
END_TEST

START_TEST(test_llama_odd) {
    AdModelConfig c = make_cfg("llama", 11, 7, 2, 3, 1, 12, 20);
    check_against_reference("llama odd", c, 2, 7, 1);
}
END_TEST

/* Switches mixed across families: the code must not assume the presets. */
START_TEST(test_mixed_switches) {
    AdModelConfig c = make_cfg("gpt2", 11, 8, 2, 4, 2, 8, 10);
    c.norm = AD_NORM_RMSNORM;  /* linear biases present, no norm biases */
    c.pos = AD_POS_ROPE;
    c.mlp = AD_MLP_SWIGLU;
    check_against_reference("rms+bias+tied", c, 2, 6, 1);
    AdModelConfig d = make_cfg("llama", 11, 8, 2, 2, 1, 8, 24);
    d.norm = AD_NORM_LAYERNORM;  /* no biases at all with bias = 0 */
    d.mlp = AD_MLP_GELU;
    d.pos = AD_POS_LEARNED;
    check_against_reference("ln+nobias+untie", d, 2, 6, 0);
}
END_TEST

/* ---- later families' switches ------------------------------------------------------ */

/* Qwen2: biases on q, k, v only; the output projection and the MLP have none. */
START_TEST(test_qwen2_qkv_bias) {
    AdModelConfig c = cfg_llama(2);
    c.qkv_bias = 1;
    AdTensorInfo info[AD_P_COUNT];
    ad_model_param_info(&c, info);
    ck_assert_uint_eq(info[AD_P_QKVB].size, 2 * (4 + 2 * 2) * 4); /* L x QKV, hs 4 */
    ck_assert_uint_eq(info[AD_P_ATTPROJB].size, 0);
    ck_assert_uint_eq(info[AD_P_FCB].size, 0);
    ck_assert_uint_eq(info[AD_P_FCPROJB].size, 0);
    ck_assert_uint_eq(info[AD_P_LN1B].size, 0);
    check_against_reference("qwen2 qkv bias", c, 2, 7, 1);
}
END_TEST

/* Llama 3 RoPE scaling: a pair in each regime (hs 8, theta 10000, original context 200,
 * low 1, high 4, factor 8: wavelengths 6.28 < 50 unchanged, 62.8 interpolated, 628 and
 * 6283 > 200 divided by 8); then the whole model against the reference. */
START_TEST(test_llama3_rope_scaling) {
    AdRopeScaling s = {8.0f, 1.0f, 4.0f, 200};
    ck_assert_double_eq_tol(ad_rope_freq(0, 8, 10000.0f, &s), 1.0, 1e-15);
    /* s = (200 / 62.83 - 1) / 3 = 0.72770; (1 - s) 0.1 / 8 + s 0.1 = 0.0761737 */
    ck_assert_double_eq_tol(ad_rope_freq(1, 8, 10000.0f, &s), 0.0761737168, 1e-9);
    ck_assert_double_eq_tol(ad_rope_freq(2, 8, 10000.0f, &s), 0.01 / 8, 1e-12);
    ck_assert_double_eq_tol(ad_rope_freq(3, 8, 10000.0f, &s), 0.001 / 8, 1e-13);
    ck_assert_double_eq_tol(ad_rope_freq(2, 8, 10000.0f, NULL), 0.01, 1e-12);

    AdModelConfig c = make_cfg("llama", 11, 8, 2, 2, 1, 16, 12); /* hs 8 */
    c.rope_scaling = AD_ROPE_SCALING_LLAMA3;
    c.rope_factor = 8.0f, c.rope_low_freq_factor = 1.0f, c.rope_high_freq_factor = 4.0f;
    c.rope_original_max_pos = 200;
    check_against_reference("llama3 rope", c, 2, 7, 0);
    /* the scaling changes the logits (the comparison above is not of the unscaled model) */
    AdModelConfig u = c;
    u.rope_scaling = AD_ROPE_SCALING_NONE;
    AdModel m;
    setup_model(&m, &c, 5);
    int tok[7] = {1, 2, 3, 4, 5, 6, 7}, tgt[7] = {2, 3, 4, 5, 6, 7, 8};
    double *a = malloc(7 * 11 * sizeof(double)), *b = malloc(7 * 11 * sizeof(double));
    ref_forward_loss(&c, m.params_mem, tok, tgt, 1, 7, a);
    ref_forward_loss(&u, m.params_mem, tok, tgt, 1, 7, b);
    double d = 0;
    for (int i = 0; i < 7 * 11; i++) d = fmax(d, fabs(a[i] - b[i]));
    ck_assert_msg(d > 1e-3, "llama3 scaling moved the logits by only %g", d);
    free(a), free(b);
    ad_model_free(&m);
    AdModelConfig bad = c;
    bad.rope_high_freq_factor = 0.5f; /* below low */
    ck_assert_int_eq(ad_model_config_validate(&bad), AD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "rope_high_freq_factor"));
}
END_TEST

/* Mistral's sliding window: logits, loss and finite-difference gradients against the
 * reference's naive windowed attention for windows shorter than the sequence (1, 3);
 * a window at least as long as the sequence is full causal attention, bit for bit. */
START_TEST(test_sliding_window) {
    static const int windows[] = {1, 3};
    for (int k = 0; k < 2; k++) {
        AdModelConfig c = cfg_llama(2);
        c.sliding_window = windows[k];
        char label[32];
        snprintf(label, sizeof label, "window %d", windows[k]);
        check_against_reference(label, c, 2, 7, k);
        AdModelConfig g = cfg_gpt2();
        g.sliding_window = windows[k];
        snprintf(label, sizeof label, "gpt2 window %d", windows[k]);
        check_against_reference(label, g, 2, 6, 0);
    }
    AdModelConfig full = cfg_llama(2), wide = full;
    wide.sliding_window = 7;
    check_against_reference("window 7 = T", wide, 2, 7, 0);
    AdModel m;
    setup_model(&m, &full, 9);
    AdActs a;
    ck_assert_int_eq(ad_acts_init(&a, &full, 2, 7), AD_OK);
    int tok[14], tgt[14];
    make_batch(tok, tgt, 2, 7, full.vocab_size, 0, 3);
    size_t n = (size_t)14 * full.vocab_size;
    float *l0 = malloc(n * sizeof(float));
    ad_model_forward(&m, &a, tok, 2, 7);
    memcpy(l0, a.logits, n * sizeof(float));
    m.cfg.sliding_window = 7;
    ad_model_forward(&m, &a, tok, 2, 7);
    ck_assert_msg(memcmp(l0, a.logits, n * sizeof(float)) == 0, "window 7 over 7 tokens differs "
                  "from full attention");
    m.cfg.sliding_window = 6; /* shorter than the sequence: the last position changes */
    ad_model_forward(&m, &a, tok, 2, 7);
    ck_assert_msg(memcmp(l0, a.logits, 6 * full.vocab_size * sizeof(float)) == 0,
                  "window 6: positions 0..5 should not change");
    double d = 0;
    for (int v = 0; v < full.vocab_size; v++)
        d = fmax(d, fabs(l0[6 * full.vocab_size + v] - a.logits[6 * full.vocab_size + v]));
    ck_assert_msg(d > 1e-4, "window 6: position 6 moved by only %g", d);
    free(l0);
    ad_acts_free(&a);
    ad_model_free(&m);
    AdModelConfig bad = full;
    bad.sliding_window = -1;
    ck_assert_int_eq(ad_model_config_validate(&bad), AD_ERR_ARG);
}
END_TEST

/* ---- layout, init ---------------------------------------------------------------- */

/* The model's tensor pointers and sizes follow the documented storage order. */
START_TEST(test_layout) {
    AdModelConfig cfgs[5] = {cfg_gpt2(), cfg_llama(2), cfg_llama(1),
                             make_cfg("gpt2", 11, 9, 2, 3, 3, 12, 20), cfg_gpt2()};
    cfgs[4].bias = 0;
    cfgs[4].pos = AD_POS_NONE;
    for (int ci = 0; ci < 5; ci++) {
        AdModel m;
        memset(&m, 0, sizeof m);
        ck_assert_int_eq(ad_model_init(&m, &cfgs[ci], 1), AD_OK);
        RefLayout lay;
        ref_layout(&cfgs[ci], &lay);
        ck_assert_uint_eq(m.n_params, lay.total);
        for (int id = 0; id < AD_P_COUNT; id++) {
            ck_assert_str_eq(m.info[id].name, lay.name[id]);
            ck_assert_msg(m.info[id].size == lay.size[id], "config %d %s: size %zu, docs %zu", ci,
                          lay.name[id], m.info[id].size, lay.size[id]);
            if (lay.size[id]) {
                ck_assert_msg(m.params.t[id] == m.params_mem + lay.offset[id],
                              "config %d: %s not at offset %zu", ci, lay.name[id], lay.offset[id]);
                ck_assert(m.grads.t[id] == m.grads_mem + lay.offset[id]);
            } else {
                ck_assert_ptr_null(m.params.t[id]);
            }
        }
        ad_model_free(&m);
    }
}
END_TEST

/* ad_model_init_weights: norm weights 1, biases 0, N(0, 0.02), residual projections
 * N(0, 0.02 / sqrt(2L)). The sample std of n normal draws has relative standard error
 * 1/sqrt(2n) and the mean std/sqrt(n): both are allowed 5 standard errors. */
START_TEST(test_init_weights) {
    AdModelConfig c = make_cfg("gpt2", 64, 64, 2, 4, 4, 32, 128);
    AdModel m;
    memset(&m, 0, sizeof m);
    ck_assert_int_eq(ad_model_init(&m, &c, 0), AD_OK);
    AdRng rng;
    ad_rng_init(&rng, 5, AD_STREAM_INIT, 0);
    ad_model_init_weights(&m, &rng, AD_INIT_GPT2);
    RefLayout lay;
    ref_layout(&c, &lay);
    for (int id = 0; id < AD_P_COUNT; id++) {
        const float *p = m.params_mem + lay.offset[id];
        size_t n = lay.size[id];
        if (!n) continue;
        if (is_norm_weight(id) || is_bias(id)) {
            for (size_t k = 0; k < n; k++)
                ck_assert_msg(p[k] == (is_bias(id) ? 0.0f : 1.0f), "%s", entry_name(&lay, id, k));
            continue;
        }
        double s = 0, s2 = 0;
        for (size_t k = 0; k < n; k++) s += p[k], s2 += (double)p[k] * p[k];
        double mean = s / n, sd = sqrt(s2 / n - mean * mean);
        double want = (id == AD_P_ATTPROJW || id == AD_P_FCPROJW) ? 0.02 / sqrt(2.0 * c.n_layer) : 0.02;
        ck_assert_msg(fabs(sd / want - 1) < 5 / sqrt(2.0 * n) && fabs(mean) < 5 * want / sqrt((double)n),
                      "%s: mean %g std %g, want 0 and %g", lay.name[id], mean, sd, want);
    }
    ad_model_free(&m);
}
END_TEST

/* ad_model_init_weights with AD_INIT_TORCH, on an untied GPT-2 and a Llama model:
 * norm weights 1 and norm biases 0; wte, wpe N(0, 1); every linear weight and bias
 * uniform on [-b, b] with b = 1/sqrt(fan_in) (fan_in C, or F for fcproj): all inside the
 * bound, mean 0 and variance b^2/3 within 5 standard errors (the variance of U^2 is
 * b^4 (1/5 - 1/9)), and the extremes near the bound. */
START_TEST(test_init_weights_torch) {
    AdModelConfig cfgs[2] = {make_cfg("gpt2", 64, 64, 2, 4, 4, 32, 128),
                             make_cfg("llama", 64, 64, 2, 4, 2, 32, 96)};
    cfgs[0].tied = 0;
    for (int ci = 0; ci < 2; ci++) {
        AdModelConfig c = cfgs[ci];
        AdModel m;
        memset(&m, 0, sizeof m);
        ck_assert_int_eq(ad_model_init(&m, &c, 0), AD_OK);
        AdRng rng;
        ad_rng_init(&rng, 6, AD_STREAM_INIT, 0);
        ad_model_init_weights(&m, &rng, AD_INIT_TORCH);
        RefLayout lay;
        ref_layout(&c, &lay);
        for (int id = 0; id < AD_P_COUNT; id++) {
            const float *p = m.params_mem + lay.offset[id];
            size_t n = lay.size[id];
            if (!n) continue;
            if (is_norm_weight(id) || id == AD_P_LN1B || id == AD_P_LN2B || id == AD_P_LNFB) {
                for (size_t k = 0; k < n; k++)
                    ck_assert_msg(p[k] == (is_norm_weight(id) ? 1.0f : 0.0f), "%s", entry_name(&lay, id, k));
                continue;
            }
            double s = 0, s2 = 0, mx = 0;
            for (size_t k = 0; k < n; k++)
                s += p[k], s2 += (double)p[k] * p[k], mx = fmax(mx, fabs(p[k]));
            double mean = s / n, var = s2 / n;
            if (id == AD_P_WTE || id == AD_P_WPE) {
                ck_assert_msg(fabs(sqrt(var) - 1) < 5 / sqrt(2.0 * n) && fabs(mean) < 5 / sqrt((double)n),
                              "%s: mean %g std %g, want 0 and 1", lay.name[id], mean, sqrt(var));
                continue;
            }
            int fan_in = (id == AD_P_FCPROJW || id == AD_P_FCPROJB) ? c.d_ff : c.d_model;
            double b = 1.0 / sqrt((double)fan_in), se_var = b * b * sqrt(1.0 / 5 - 1.0 / 9) / sqrt((double)n);
            ck_assert_msg(mx <= b, "%s: |w| reaches %g beyond the bound %g", lay.name[id], mx, b);
            ck_assert_msg(mx > b * (1 - 20.0 / n), "%s: |w| only reaches %g of bound %g", lay.name[id], mx, b);
            ck_assert_msg(fabs(var - b * b / 3) < 5 * se_var && fabs(mean) < 5 * b / sqrt(3.0 * n),
                          "%s: mean %g variance %g, want 0 and %g", lay.name[id], mean, var, b * b / 3);
        }
        ad_model_free(&m);
    }
}
END_TEST

/* ---- capacity, accumulation, determinism ----------------------------------------- */

static void max_abs_diff(const float *a, const float *b, size_t n, double *diff, double *scale) {
    *diff = 0;
    *scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= *diff)) *diff = d;
        *scale = fmax(*scale, fabs(b[i]));
    }
}

/* A forward/backward with a smaller (B, T) than the acts were sized for equals one with
 * acts of exactly that size, and matches the reference at those sizes. */
static void check_small_batch(const char *label, AdModelConfig cfg) {
    const int Bc = 3, Tc = cfg.max_seq_len, B = 2, T = 5, V = cfg.vocab_size;
    AdModel m;
    setup_model(&m, &cfg, 9);
    AdActs big, exact;
    memset(&big, 0, sizeof big);
    memset(&exact, 0, sizeof exact);
    ck_assert_int_eq(ad_acts_init(&big, &cfg, Bc, Tc), AD_OK);
    ck_assert_int_eq(ad_acts_init(&exact, &cfg, B, T), AD_OK);
    int tokens[Bc * 16], targets[Bc * 16];
    ck_assert_int_le(Tc, 16);
    make_batch(tokens, targets, B, T, V, 1, 3);
    long count = ad_count_targets(targets, B * T);
    size_t nl = (size_t)B * T * V;
    float *g_exact = malloc(m.n_params * sizeof(float));
    double *ref_logits = malloc(nl * sizeof(double));
    ck_assert(g_exact && ref_logits);

    ad_model_forward(&m, &exact, tokens, B, T);
    ad_loss_ce(exact.dlogits, NULL, exact.logits, targets, B * T, V, 1.0f / count);
    ad_model_zero_grad(&m);
    ad_model_backward(&m, &exact, tokens, B, T);
    memcpy(g_exact, m.grads_mem, m.n_params * sizeof(float));

    ad_model_forward(&m, &big, tokens, B, T);
    double d, s;
    max_abs_diff(big.logits, exact.logits, nl, &d, &s);
    printf("%-15s capacity (%d,%d) vs exact (%d,%d): logits max|diff| %.2e\n", label, Bc, Tc, B, T, d);
    ck_assert_msg(d <= 1e-6 * fmax(1, s), "%s: logits differ by %g with larger acts", label, d);
    ref_forward_loss(&cfg, m.params_mem, tokens, targets, B, T, ref_logits);
    check_logits(label, big.logits, ref_logits, nl, V);

    ad_loss_ce(big.dlogits, NULL, big.logits, targets, B * T, V, 1.0f / count);
    ad_model_zero_grad(&m);
    ad_model_backward(&m, &big, tokens, B, T);
    max_abs_diff(m.grads_mem, g_exact, m.n_params, &d, &s);
    ck_assert_msg(d <= 1e-5 * s, "%s: grads differ by %g (max %g) with larger acts", label, d, s);

    free(g_exact);
    free(ref_logits);
    ad_acts_free(&big);
    ad_acts_free(&exact);
    ad_model_free(&m);
}

START_TEST(test_small_batch) {
    check_small_batch("gpt2", cfg_gpt2());
    check_small_batch("llama", cfg_llama(2));
}
END_TEST

/* Backward over two half-batches, each scaled by 1 / (targets in the whole batch),
 * accumulates to the full-batch gradient. */
static void check_accumulation(const char *label, AdModelConfig cfg) {
    const int B = 4, T = 6, V = cfg.vocab_size, hB = B / 2;
    AdModel m;
    setup_model(&m, &cfg, 21);
    AdActs a;
    memset(&a, 0, sizeof a);
    ck_assert_int_eq(ad_acts_init(&a, &cfg, B, T), AD_OK);
    int tokens[B * T], targets[B * T];
    make_batch(tokens, targets, B, T, V, 1, 8);
    long count = ad_count_targets(targets, B * T);
    float *g_full = malloc(m.n_params * sizeof(float));
    ck_assert_ptr_nonnull(g_full);

    ad_model_zero_grad(&m);
    ad_model_forward(&m, &a, tokens, B, T);
    double loss_full = ad_loss_ce(a.dlogits, NULL, a.logits, targets, B * T, V, 1.0f / count);
    ad_model_backward(&m, &a, tokens, B, T);
    memcpy(g_full, m.grads_mem, m.n_params * sizeof(float));

    ad_model_zero_grad(&m);
    double loss_halves = 0;
    for (int h = 0; h < 2; h++) {
        const int *tk = tokens + h * hB * T, *tg = targets + h * hB * T;
        ad_model_forward(&m, &a, tk, hB, T);
        loss_halves += ad_loss_ce(a.dlogits, NULL, a.logits, tg, hB * T, V, 1.0f / count);
        ad_model_backward(&m, &a, tk, hB, T);
    }
    ck_assert_msg(fabs(loss_full - loss_halves) <= 1e-5 * loss_full, "%s: loss %g vs halves %g",
                  label, loss_full, loss_halves);
    double d, s;
    max_abs_diff(m.grads_mem, g_full, m.n_params, &d, &s);
    printf("%-15s accumulation: grads max|diff| %.2e (max|g| %.2e)\n", label, d, s);
    ck_assert_msg(d <= 1e-5 * s, "%s: accumulated grads differ by %g (max %g)", label, d, s);

    free(g_full);
    ad_acts_free(&a);
    ad_model_free(&m);
}

START_TEST(test_accumulation) {
    check_accumulation("gpt2", cfg_gpt2());
    check_accumulation("llama", cfg_llama(2));
}
END_TEST

/* Two runs from the same weights and batch give bit-identical logits and gradients. */
START_TEST(test_determinism) {
    AdModelConfig cfgs[2] = {cfg_gpt2(), cfg_llama(2)};
    for (int ci = 0; ci < 2; ci++) {
        AdModelConfig cfg = cfgs[ci];
        const int B = 2, T = 6, V = cfg.vocab_size;
        int tokens[B * T], targets[B * T];
        make_batch(tokens, targets, B, T, V, 1, 4);
        long count = ad_count_targets(targets, B * T);
        AdModel m[2];
        AdActs a[2];
        for (int r = 0; r < 2; r++) {
            setup_model(&m[r], &cfg, 33);
            memset(&a[r], 0, sizeof a[r]);
            ck_assert_int_eq(ad_acts_init(&a[r], &cfg, B, T), AD_OK);
            ad_model_zero_grad(&m[r]);
            ad_model_forward(&m[r], &a[r], tokens, B, T);
            ad_loss_ce(a[r].dlogits, NULL, a[r].logits, targets, B * T, V, 1.0f / count);
            ad_model_backward(&m[r], &a[r], tokens, B, T);
        }
        ck_assert(memcmp(m[0].params_mem, m[1].params_mem, m[0].n_params * sizeof(float)) == 0);
        ck_assert_msg(memcmp(a[0].logits, a[1].logits, (size_t)B * T * V * sizeof(float)) == 0,
                      "config %d: logits not bit-identical", ci);
        ck_assert_msg(memcmp(m[0].grads_mem, m[1].grads_mem, m[0].n_params * sizeof(float)) == 0,
                      "config %d: grads not bit-identical", ci);
        /* and a second pass through the same model and acts */
        float *g0 = malloc(m[0].n_params * sizeof(float));
        ck_assert_ptr_nonnull(g0);
        memcpy(g0, m[0].grads_mem, m[0].n_params * sizeof(float));
        ad_model_zero_grad(&m[0]);
        ad_model_forward(&m[0], &a[0], tokens, B, T);
        ck_assert(memcmp(a[0].logits, a[1].logits, (size_t)B * T * V * sizeof(float)) == 0);
        ad_loss_ce(a[0].dlogits, NULL, a[0].logits, targets, B * T, V, 1.0f / count);
        ad_model_backward(&m[0], &a[0], tokens, B, T);
        ck_assert(memcmp(g0, m[0].grads_mem, m[0].n_params * sizeof(float)) == 0);
        free(g0);
        for (int r = 0; r < 2; r++) {
            ad_acts_free(&a[r]);
            ad_model_free(&m[r]);
        }
    }
}
END_TEST

/* ---- the reference itself --------------------------------------------------------- */

static float *ref_params(const AdModelConfig *c, size_t *n) {
    RefLayout lay;
    ref_layout(c, &lay);
    *n = lay.total;
    float *p = calloc(lay.total, sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

/* All-zero weights: every logit is 0 and the loss is log V, whatever the switches. */
START_TEST(test_ref_zero_weights) {
    AdModelConfig cfgs[3] = {cfg_gpt2(), cfg_llama(2), make_cfg("gpt2", 11, 9, 2, 3, 3, 12, 20)};
    for (int ci = 0; ci < 3; ci++) {
        const int B = 2, T = 6, V = cfgs[ci].vocab_size;
        size_t n;
        float *p = ref_params(&cfgs[ci], &n);
        int tokens[B * T], targets[B * T];
        make_batch(tokens, targets, B, T, V, 1, 1);
        double logits[B * T * 16];
        double loss = ref_forward_loss(&cfgs[ci], p, tokens, targets, B, T, logits);
        for (int i = 0; i < B * T * V; i++) ck_assert(logits[i] == 0.0);
        ck_assert_double_eq_tol(loss, log((double)V), 1e-12);
        free(p);
    }
}
END_TEST

/* With every per-layer tensor zero, each block adds exactly 0 (the normed input is 0,
 * so q = k = v = 0 and the MLP input is 0), so logits = normf(wte[tok] + wpe[t]) Wcls^T.
 * Checks the embedding, final norm, classifier and loss against a hand computation, and
 * the finite differences against the analytic classifier gradient
 * dL/dWcls[v][c] = sum over unmasked tokens (softmax_v - [v = y]) normf_c / count. */
static void check_ref_embedding_only(AdModelConfig cfg) {
    RefLayout lay;
    ref_layout(&cfg, &lay);
    size_t n;
    float *p = ref_params(&cfg, &n);
    AdRng rng;
    ad_rng_init(&rng, 3, AD_STREAM_INIT, 0);
    int keep[] = {AD_P_WTE, AD_P_WPE, AD_P_LNFW, AD_P_LNFB, AD_P_LM_HEAD};
    for (int k = 0; k < 5; k++)
        for (size_t i = 0; i < lay.size[keep[k]]; i++)
            p[lay.offset[keep[k]] + i] = (keep[k] == AD_P_LNFW ? 1.0f : 0.0f) + 0.5f * ad_rng_normal(&rng);
    const int B = 2, T = 5, V = cfg.vocab_size, C = cfg.d_model, N = B * T;
    int tokens[B * T], targets[B * T];
    make_batch(tokens, targets, B, T, V, 1, 2);
    const float *wte = p + lay.offset[AD_P_WTE];
    const float *wcls = cfg.tied ? wte : p + lay.offset[AD_P_LM_HEAD];
    const float *w = p + lay.offset[AD_P_LNFW];
    const float *bf = lay.size[AD_P_LNFB] ? p + lay.offset[AD_P_LNFB] : NULL;
    double *hn = calloc((size_t)N * C, sizeof(double)), *lg = calloc((size_t)N * V, sizeof(double));
    double *got = calloc((size_t)N * V, sizeof(double)), *g = calloc(n, sizeof(double));
    double *ga = calloc((size_t)V * C, sizeof(double));
    ck_assert(hn && lg && got && g && ga);
    double loss = 0;
    long count = 0;
    for (int i = 0; i < N; i++) {
        int t = i % T;
        double x[64], mean = 0, var = 0, ms = 0;
        ck_assert_int_le(C, 64);
        for (int c = 0; c < C; c++) {
            x[c] = wte[tokens[i] * C + c];
            if (cfg.pos == AD_POS_LEARNED) x[c] += p[lay.offset[AD_P_WPE] + t * C + c];
            mean += x[c] / C;
            ms += x[c] * x[c] / C;
        }
        for (int c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean) / C;
        for (int c = 0; c < C; c++)
            hn[i * C + c] = cfg.norm == AD_NORM_RMSNORM
                                ? x[c] / sqrt(ms + cfg.norm_eps) * w[c]
                                : (x[c] - mean) / sqrt(var + cfg.norm_eps) * w[c] + (bf ? bf[c] : 0);
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += hn[i * C + c] * wcls[v * C + c];
            lg[i * V + v] = s;
            mx = fmax(mx, s);
        }
        for (int v = 0; v < V; v++) z += exp(lg[i * V + v] - mx);
        if (targets[i] < 0) continue;
        loss += log(z) + mx - lg[i * V + targets[i]];
        count++;
        for (int v = 0; v < V; v++) {
            double dv = exp(lg[i * V + v] - mx) / z - (v == targets[i]);
            for (int c = 0; c < C; c++) ga[v * C + c] += dv * hn[i * C + c];
        }
    }
    loss /= count;
    double rloss = ref_forward_loss(&cfg, p, tokens, targets, B, T, got);
    for (int i = 0; i < N * V; i++) ck_assert_double_eq_tol(got[i], lg[i], 1e-12);
    ck_assert_double_eq_tol(rloss, loss, 1e-12);
    if (!cfg.tied) {
        ref_grad_fd(&cfg, p, tokens, targets, B, T, FD_STEP, g);
        for (int i = 0; i < V * C; i++)
            ck_assert_double_eq_tol(g[lay.offset[AD_P_LM_HEAD] + i], ga[i] / count, 1e-8);
    }
    free(hn); free(lg); free(got); free(g); free(ga); free(p);
}

START_TEST(test_ref_embedding_only) {
    check_ref_embedding_only(cfg_gpt2());
    check_ref_embedding_only(cfg_llama(2));
}
END_TEST

/* Fills a model's block with random values (N(0, 0.3); norm weights around 1). */
static void fill_random(const AdModelConfig *c, float *p, uint64_t seed) {
    RefLayout lay;
    ref_layout(c, &lay);
    AdRng rng;
    ad_rng_init(&rng, seed, AD_STREAM_INIT, 7);
    for (int id = 0; id < AD_P_COUNT; id++)
        for (size_t i = 0; i < lay.size[id]; i++)
            p[lay.offset[id] + i] = (is_norm_weight(id) ? 1.0f : 0.0f) + 0.3f * ad_rng_normal(&rng);
}

/* Causality: changing token t leaves the logits before t unchanged and changes those at t.
 * Position 0 is not rotated: with T = 1, RoPE and no positions give the same logits. */
START_TEST(test_ref_causal_rope) {
    AdModelConfig c = cfg_llama(2);
    size_t n;
    float *p = ref_params(&c, &n);
    fill_random(&c, p, 1);
    const int T = 6, V = c.vocab_size;
    int tok[6] = {1, 2, 3, 4, 5, 6}, tgt[6] = {2, 3, 4, 5, 6, 7};
    double l0[6 * 16], l1[6 * 16];
    ref_forward_loss(&c, p, tok, tgt, 1, T, l0);
    tok[3] = 9;
    ref_forward_loss(&c, p, tok, tgt, 1, T, l1);
    for (int i = 0; i < 3 * V; i++) ck_assert(l0[i] == l1[i]);
    for (int t = 3; t < T; t++) ck_assert(l0[t * V] != l1[t * V]);
    AdModelConfig cn = c;
    cn.pos = AD_POS_NONE;
    ref_forward_loss(&c, p, tok, tgt, 1, 1, l0);
    ref_forward_loss(&cn, p, tok, tgt, 1, 1, l1);
    for (int i = 0; i < V; i++) ck_assert_double_eq_tol(l0[i], l1[i], 1e-14);
    ref_forward_loss(&c, p, tok, tgt, 1, T, l0);
    ref_forward_loss(&cn, p, tok, tgt, 1, T, l1);
    ck_assert(fabs(l0[(T - 1) * V] - l1[(T - 1) * V]) > 1e-6);
    free(p);
}
END_TEST

/* Grouped-query attention: query head i reads key/value head i / (H / Hkv), so H = 4,
 * Hkv = 2 equals plain multi-head attention whose k/v heads are [kv0, kv0, kv1, kv1]. */
START_TEST(test_ref_gqa_grouping) {
    AdModelConfig g = cfg_llama(2), mh = cfg_llama(4);
    g.bias = mh.bias = 1;
    RefLayout lg, lm;
    ref_layout(&g, &lg);
    ref_layout(&mh, &lm);
    size_t ng, nm;
    float *pg = ref_params(&g, &ng), *pm = ref_params(&mh, &nm);
    fill_random(&g, pg, 2);
    const int L = g.n_layer, C = g.d_model, H = g.n_head, hs = C / H;
    const int Qg = (H + 2 * 2) * hs, Qm = (H + 2 * 4) * hs;
    for (int id = 0; id < AD_P_COUNT; id++) {
        if (id == AD_P_QKVW || id == AD_P_QKVB) continue;
        ck_assert_uint_eq(lg.size[id], lm.size[id]);
        memcpy(pm + lm.offset[id], pg + lg.offset[id], lg.size[id] * sizeof(float));
    }
    /* row r of the MHA qkv (q rows, then 4 k heads, then 4 v heads) from the GQA rows */
    for (int l = 0; l < L; l++)
        for (int r = 0; r < Qm; r++) {
            int src;
            if (r < H * hs) src = r;
            else if (r < 2 * H * hs) src = H * hs + ((r - H * hs) / hs / 2) * hs + (r - H * hs) % hs;
            else src = H * hs + 2 * hs + ((r - 2 * H * hs) / hs / 2) * hs + (r - 2 * H * hs) % hs;
            memcpy(pm + lm.offset[AD_P_QKVW] + ((size_t)l * Qm + r) * C,
                   pg + lg.offset[AD_P_QKVW] + ((size_t)l * Qg + src) * C, C * sizeof(float));
            pm[lm.offset[AD_P_QKVB] + l * Qm + r] = pg[lg.offset[AD_P_QKVB] + l * Qg + src];
        }
    const int T = 6, V = g.vocab_size;
    int tok[6] = {1, 2, 3, 4, 5, 6}, tgt[6] = {2, 3, 4, 5, 6, 7};
    double a[6 * 16], b[6 * 16];
    ref_forward_loss(&g, pg, tok, tgt, 1, T, a);
    ref_forward_loss(&mh, pm, tok, tgt, 1, T, b);
    for (int i = 0; i < T * V; i++) ck_assert_double_eq_tol(a[i], b[i], 1e-12);
    free(pg);
    free(pm);
}
END_TEST

static Suite *model_suite(void) {
    Suite *s = suite_create("model");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"ref_zero_weights", test_ref_zero_weights}, {"ref_embedding_only", test_ref_embedding_only},
        {"ref_causal_rope", test_ref_causal_rope},   {"ref_gqa_grouping", test_ref_gqa_grouping},
        {"layout", test_layout},                     {"init_weights", test_init_weights},
        {"init_weights_torch", test_init_weights_torch},
        {"gpt2", test_gpt2},                         {"gpt2_masked", test_gpt2_masked},
        {"gpt2_nobias", test_gpt2_nobias},           {"gpt2_pos_none", test_gpt2_pos_none},
        {"gpt2_odd", test_gpt2_odd},                 {"llama_mha", test_llama_mha},
        {"llama_gqa2", test_llama_gqa2},             {"llama_gqa1", test_llama_gqa1},
        {"llama_pos_none", test_llama_pos_none},     {"llama_odd", test_llama_odd},
        {"mixed_switches", test_mixed_switches},     {"small_batch", test_small_batch},
        {"qwen2_qkv_bias", test_qwen2_qkv_bias},     {"llama3_rope_scaling", test_llama3_rope_scaling},
        {"sliding_window", test_sliding_window},
        {"accumulation", test_accumulation},         {"determinism", test_determinism},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, TIMEOUT);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) { return ad_test_run(model_suite()); }
