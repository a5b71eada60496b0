/* model.c: the transformer of model.h for both families: config presets and checks,
 * the parameter table, one allocation for parameters (and one for gradients), one for
 * activations, and forward/backward composed from kernels.c. No optimizer, no file I/O. */
#include "autodidact/model.h"

#include <math.h>
#include <string.h>

#include <omp.h>

#include "autodidact/kernels.h"
#include "fastmath.h"

/* ---------------------------------------------------------------- config */

static const char *norm_names[] = {"layernorm", "rmsnorm"};
static const char *mlp_names[] = {"gelu", "swiglu"};
static const char *pos_names[] = {"learned", "rope", "none"};
static const char *init_names[] = {"gpt2", "torch"};
static const char *rope_scaling_names[] = {"none", "llama3"};

const char *ad_norm_name(AdNormKind k) { return (unsigned)k < 2 ? norm_names[k] : "?"; }
const char *ad_mlp_name(AdMlpKind k) { return (unsigned)k < 2 ? mlp_names[k] : "?"; }
const char *ad_pos_name(AdPosKind k) { return (unsigned)k < 3 ? pos_names[k] : "?"; }
const char *ad_init_name(AdInitKind k) { return (unsigned)k < 2 ? init_names[k] : "?"; }
const char *ad_rope_scaling_name(AdRopeScalingKind k) {
    return (unsigned)k < 2 ? rope_scaling_names[k] : "?";
}

static int parse_name(const char *s, const char **names, int n) {
    for (int i = 0; i < n; i++)
        if (s && strcmp(s, names[i]) == 0) return i;
    return -1;
}
int ad_norm_parse(const char *s) { return parse_name(s, norm_names, 2); }
int ad_mlp_parse(const char *s) { return parse_name(s, mlp_names, 2); }
int ad_pos_parse(const char *s) { return parse_name(s, pos_names, 3); }
int ad_init_parse(const char *s) { return parse_name(s, init_names, 2); }
int ad_rope_scaling_parse(const char *s) { return parse_name(s, rope_scaling_names, 2); }

AdStatus ad_model_config_preset(AdModelConfig *c, const char *family) {
    AdModelConfig d = {.vocab_size = 256, .max_seq_len = 128, .n_layer = 4, .n_head = 4,
                       .n_kv_head = 4, .d_model = 128, .d_ff = 512, .norm_eps = 1e-5f,
                       .rope_theta = 10000.0f};
    if (strcmp(family, "gpt2") == 0) {
        d.norm = AD_NORM_LAYERNORM, d.mlp = AD_MLP_GELU, d.pos = AD_POS_LEARNED;
        d.bias = 1, d.tied = 1;
    } else if (strcmp(family, "llama") == 0) {
        d.norm = AD_NORM_RMSNORM, d.mlp = AD_MLP_SWIGLU, d.pos = AD_POS_ROPE;
        d.bias = 0, d.tied = 0, d.d_ff = 352;
    } else {
        return ad_fail(AD_ERR_ARG, "unknown model family \"%s\" (expected gpt2 or llama)", family);
    }
    *c = d;
    return AD_OK;
}

AdStatus ad_model_config_validate(const AdModelConfig *c) {
    struct { const char *name; long v, lo, hi; } sizes[] = {
        {"vocab_size", c->vocab_size, 1, 1 << 22}, {"max_seq_len", c->max_seq_len, 1, 1 << 16},
        {"n_layer", c->n_layer, 1, 1024},          {"n_head", c->n_head, 1, 1024},
        {"n_kv_head", c->n_kv_head, 1, 1024},      {"d_model", c->d_model, 1, 1 << 16},
        {"d_ff", c->d_ff, 1, 1 << 18},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v < sizes[i].lo || sizes[i].v > sizes[i].hi)
            return ad_fail(AD_ERR_ARG, "model.%s = %ld is out of range [%ld, %ld]", sizes[i].name,
                           sizes[i].v, sizes[i].lo, sizes[i].hi);
    if (c->d_model % c->n_head)
        return ad_fail(AD_ERR_ARG, "model.d_model = %d is not divisible by model.n_head = %d",
                       c->d_model, c->n_head);
    if (c->n_head % c->n_kv_head)
        return ad_fail(AD_ERR_ARG, "model.n_head = %d is not divisible by model.n_kv_head = %d",
                       c->n_head, c->n_kv_head);
    if (c->pos == AD_POS_ROPE && (c->d_model / c->n_head) % 2)
        return ad_fail(AD_ERR_ARG, "RoPE needs an even head size, got %d", c->d_model / c->n_head);
    if ((unsigned)c->norm > 1 || (unsigned)c->mlp > 1 || (unsigned)c->pos > 2)
        return ad_fail(AD_ERR_ARG, "model norm/mlp/pos switch out of range");
    if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f))
        return ad_fail(AD_ERR_ARG, "model.norm_eps = %g must be in (0, 1)", c->norm_eps);
    if (c->pos == AD_POS_ROPE && !(c->rope_theta > 1.0f))
        return ad_fail(AD_ERR_ARG, "model.rope_theta = %g must be > 1", c->rope_theta);
    if ((unsigned)c->qkv_bias > 1)
        return ad_fail(AD_ERR_ARG, "model.qkv_bias = %d must be 0 or 1", c->qkv_bias);
    if (c->sliding_window < 0 || c->sliding_window > (1 << 24))
        return ad_fail(AD_ERR_ARG, "model.sliding_window = %d must be in [0, 2^24] (0: off)",
                       c->sliding_window);
    if ((unsigned)c->rope_scaling > 1)
        return ad_fail(AD_ERR_ARG, "model.rope_scaling = %d is out of range", (int)c->rope_scaling);
    if (c->rope_scaling == AD_ROPE_SCALING_LLAMA3) {
        if (!(c->rope_factor >= 1.0f && c->rope_factor <= 1e6f))
            return ad_fail(AD_ERR_ARG, "model.rope_factor = %g must be in [1, 1e6] for llama3 "
                           "RoPE scaling", c->rope_factor);
        if (!(c->rope_low_freq_factor > 0.0f && c->rope_high_freq_factor > c->rope_low_freq_factor &&
              c->rope_high_freq_factor < 1e6f))
            return ad_fail(AD_ERR_ARG, "model.rope_low_freq_factor = %g and rope_high_freq_factor = "
                           "%g must satisfy 0 < low < high", c->rope_low_freq_factor,
                           c->rope_high_freq_factor);
        if (c->rope_original_max_pos < 1)
            return ad_fail(AD_ERR_ARG, "model.rope_original_max_pos = %d must be >= 1",
                           c->rope_original_max_pos);
    }
    return AD_OK;
}

void ad_model_rope_tables(const AdModelConfig *c, float *cos_t, float *sin_t, int maxT) {
    AdRopeScaling llama3 = {c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor,
                            c->rope_original_max_pos};
    ad_rope_tables(cos_t, sin_t, maxT, c->d_model / c->n_head, c->rope_theta,
                   c->rope_scaling == AD_ROPE_SCALING_LLAMA3 ? &llama3 : NULL);
}

/* ---------------------------------------------------------------- parameters */

static void set_info(AdTensorInfo *t, const char *name, int decay, int ndim, int d0, int d1,
                     int d2, int present) {
    t->name = name;
    t->decay = decay;
    t->ndim = ndim;
    t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)t->shape[i];
    t->size = present ? n : 0;
}

size_t ad_model_param_info(const AdModelConfig *c, AdTensorInfo info[AD_P_COUNT]) {
    int V = c->vocab_size, C = c->d_model, L = c->n_layer, hs = C / c->n_head;
    int QKV = (c->n_head + 2 * c->n_kv_head) * hs;
    int FC = c->mlp == AD_MLP_SWIGLU ? 2 * c->d_ff : c->d_ff;
    int ln_b = c->norm == AD_NORM_LAYERNORM && c->bias, b = c->bias;
    set_info(&info[AD_P_WTE], "wte", 1, 2, V, C, 0, 1);
    set_info(&info[AD_P_WPE], "wpe", 1, 2, c->max_seq_len, C, 0, c->pos == AD_POS_LEARNED);
    set_info(&info[AD_P_LN1W], "ln1_w", 0, 2, L, C, 0, 1);
    set_info(&info[AD_P_LN1B], "ln1_b", 0, 2, L, C, 0, ln_b);
    set_info(&info[AD_P_QKVW], "qkv_w", 1, 3, L, QKV, C, 1);
    set_info(&info[AD_P_QKVB], "qkv_b", 0, 2, L, QKV, 0, b || c->qkv_bias);
    set_info(&info[AD_P_ATTPROJW], "attproj_w", 1, 3, L, C, C, 1);
    set_info(&info[AD_P_ATTPROJB], "attproj_b", 0, 2, L, C, 0, b);
    set_info(&info[AD_P_LN2W], "ln2_w", 0, 2, L, C, 0, 1);
    set_info(&info[AD_P_LN2B], "ln2_b", 0, 2, L, C, 0, ln_b);
    set_info(&info[AD_P_FCW], "fc_w", 1, 3, L, FC, C, 1);
    set_info(&info[AD_P_FCB], "fc_b", 0, 2, L, FC, 0, b);
    set_info(&info[AD_P_FCPROJW], "fcproj_w", 1, 3, L, C, c->d_ff, 1);
    set_info(&info[AD_P_FCPROJB], "fcproj_b", 0, 2, L, C, 0, b);
    set_info(&info[AD_P_LNFW], "lnf_w", 0, 1, C, 0, 0, 1);
    set_info(&info[AD_P_LNFB], "lnf_b", 0, 1, C, 0, 0, ln_b);
    set_info(&info[AD_P_LM_HEAD], "lm_head", 1, 2, V, C, 0, !c->tied);
    size_t total = 0;
    for (int i = 0; i < AD_P_COUNT; i++) total += info[i].size;
    return total;
}

static void carve(AdParams *p, float *mem, const AdTensorInfo *info) {
    for (int i = 0; i < AD_P_COUNT; i++) {
        p->t[i] = info[i].size ? mem : NULL;
        mem += info[i].size;
    }
}

double ad_model_bytes(const AdModelConfig *c, int with_grads) {
    AdTensorInfo info[AD_P_COUNT];
    return (double)ad_model_param_info(c, info) * sizeof(float) * (with_grads ? 2 : 1);
}

AdStatus ad_model_init(AdModel *m, const AdModelConfig *c, int with_grads) {
    memset(m, 0, sizeof *m);
    AdStatus st = ad_model_config_validate(c);
    if (st) return st;
    st = ad_mem_check(ad_model_bytes(c, with_grads), "a model with d_model %d, n_layer %d, d_ff %d "
                      "and vocab_size %d (parameters%s)", c->d_model, c->n_layer, c->d_ff,
                      c->vocab_size, with_grads ? " and gradients" : "");
    if (st) return st;
    m->cfg = *c;
    m->n_params = ad_model_param_info(c, m->info);
    m->params_mem = ad_alloc_floats(m->n_params, "model parameters");
    if (!m->params_mem) return AD_ERR_NOMEM;
    carve(&m->params, m->params_mem, m->info);
    if (with_grads) {
        m->grads_mem = ad_alloc_floats(m->n_params, "model gradients");
        if (!m->grads_mem) {
            ad_model_free(m);
            return AD_ERR_NOMEM;
        }
        carve(&m->grads, m->grads_mem, m->info);
    }
    return AD_OK;
}

/* The first element of x[0..n) that is NaN or infinite, or -1. */
static long first_non_finite(const float *x, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    if (!bad) return -1;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long)i;
    return -1;
}

AdStatus ad_check_finite(const float *x, size_t n, const char *name) {
    long i = first_non_finite(x, n);
    if (i < 0) return AD_OK;
    return ad_fail(AD_ERR_NAN, "%s: element %ld is %s", name, i,
                   isnan(x[i]) ? "nan" : x[i] > 0 ? "inf" : "-inf");
}

AdStatus ad_model_check_finite(const AdModel *m) {
    for (int t = 0; t < AD_P_COUNT; t++) {
        const AdTensorInfo *ti = &m->info[t];
        if (!ti->size || !m->params.t[t]) continue;
        long i = first_non_finite(m->params.t[t], ti->size);
        if (i < 0) continue;
        long idx[3] = {0, 0, 0}, rest = i;
        for (int d = ti->ndim - 1; d >= 0; d--) idx[d] = rest % ti->shape[d], rest /= ti->shape[d];
        char where[96];
        if (ti->ndim == 1) snprintf(where, sizeof where, "[%ld]", idx[0]);
        else if (ti->ndim == 2) snprintf(where, sizeof where, "[%ld, %ld]", idx[0], idx[1]);
        else snprintf(where, sizeof where, "[%ld, %ld, %ld]", idx[0], idx[1], idx[2]);
        float v = m->params.t[t][i];
        return ad_fail(AD_ERR_NAN, "weight %s%s (element %ld of %zu) is %s", ti->name, where, i,
                       ti->size, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    }
    return AD_OK;
}

void ad_model_free(AdModel *m) {
    free(m->params_mem);
    free(m->grads_mem);
    memset(m, 0, sizeof *m);
}

/* fan_in of a linear layer's weight or bias tensor; 0 for the others. */
static int linear_fan_in(const AdModelConfig *c, int i) {
    switch (i) {
    case AD_P_QKVW: case AD_P_QKVB: case AD_P_ATTPROJW: case AD_P_ATTPROJB:
    case AD_P_FCW: case AD_P_FCB: case AD_P_LM_HEAD: return c->d_model;
    case AD_P_FCPROJW: case AD_P_FCPROJB: return c->d_ff;
    default: return 0;
    }
}

void ad_model_init_weights(AdModel *m, AdRng *rng, AdInitKind kind) {
    const AdModelConfig *c = &m->cfg;
    float resid_std = 0.02f / sqrtf(2.0f * c->n_layer);
    for (int i = 0; i < AD_P_COUNT; i++) {
        float *p = m->params.t[i];
        size_t n = m->info[i].size;
        if (!n) continue;
        int fan_in = linear_fan_in(c, i);
        if (i == AD_P_LN1W || i == AD_P_LN2W || i == AD_P_LNFW) {
            for (size_t j = 0; j < n; j++) p[j] = 1.0f;
        } else if (kind == AD_INIT_TORCH && (i == AD_P_WTE || i == AD_P_WPE)) {
            for (size_t j = 0; j < n; j++) p[j] = ad_rng_normal(rng);
        } else if (kind == AD_INIT_TORCH && fan_in > 0) {
            float bound = 1.0f / sqrtf((float)fan_in);
            for (size_t j = 0; j < n; j++) p[j] = bound * (2.0f * ad_rng_uniform(rng) - 1.0f);
        } else if (kind == AD_INIT_GPT2 && m->info[i].ndim >= 2 && m->info[i].decay) {
            float std = (i == AD_P_ATTPROJW || i == AD_P_FCPROJW) ? resid_std : 0.02f;
            for (size_t j = 0; j < n; j++) p[j] = std * ad_rng_normal(rng);
        } else {
            memset(p, 0, n * sizeof(float));
        }
    }
}

void ad_model_zero_grad(AdModel *m) {
    if (m->grads_mem) memset(m->grads_mem, 0, m->n_params * sizeof(float));
}

AdStatus ad_model_copy_params(AdModel *dst, const AdModel *src) {
    if (dst->n_params != src->n_params || memcmp(&dst->cfg, &src->cfg, sizeof src->cfg) != 0)
        return ad_fail(AD_ERR_ARG, "cannot copy parameters between models of different configs");
    memcpy(dst->params_mem, src->params_mem, src->n_params * sizeof(float));
    return AD_OK;
}

/* ---------------------------------------------------------------- activations */

/* Element counts of the activation arrays of ad_acts_init, in its order, as doubles (so
 * that a size too large for memory is refused before any size_t product can wrap). */
enum { N_ACT_PARTS = 28 };
static double act_sizes(const AdModelConfig *c, double B, double T, int nt, double n[N_ACT_PARTS]) {
    double N = B * T, C = c->d_model, L = c->n_layer, V = c->vocab_size, H = c->n_head;
    double hs = (double)(c->d_model / c->n_head), QKV = (H + 2.0 * c->n_kv_head) * hs;
    double F = c->d_ff, FC = c->mlp == AD_MLP_SWIGLU ? 2 * F : F;
    double half = c->d_model / c->n_head / 2 ? c->d_model / c->n_head / 2 : 1;
    const double v[N_ACT_PARTS] = {
        N * C,     L * N * C, L * N * C, L * N * C, L * N,   L * N,  L * N * QKV,
        L * B * H * T * T,    L * N * C, L * N * C, L * N,   L * N,  L * N * FC,
        L * N * F, N * C,     N,         N,         N * V,   N * V,  N * C,
        N * C,     N * C,     N * QKV,   N * FC,    N * F,   (double)nt * AD_ATT_SCRATCH((double)T),
        (double)c->max_seq_len * half,   (double)c->max_seq_len * half};
    double total = 0.0;
    for (int i = 0; i < N_ACT_PARTS; i++) {
        n[i] = v[i];
        total += v[i] + 15;
    }
    return total;
}

double ad_acts_bytes(const AdModelConfig *c, int B, int T) {
    double n[N_ACT_PARTS];
    return act_sizes(c, B, T, omp_get_max_threads(), n) * sizeof(float);
}

AdStatus ad_acts_init(AdActs *a, const AdModelConfig *c, int B, int T) {
    memset(a, 0, sizeof *a);
    if (B < 1 || T < 1 || T > c->max_seq_len)
        return ad_fail(AD_ERR_ARG, "activations for B=%d T=%d: need B >= 1, 1 <= T <= max_seq_len %d",
                       B, T, c->max_seq_len);
    int nt = omp_get_max_threads();
    double n[N_ACT_PARTS];
    AdStatus st = ad_mem_check(act_sizes(c, B, T, nt, n) * sizeof(float),
                               "activations for %d sequences of %d tokens", B, T);
    if (st) return st;
    a->B = B, a->T = T, a->nthreads = nt;
    float **parts[N_ACT_PARTS] = {
        &a->encoded, &a->resid, &a->resid_out, &a->ln1,  &a->ln1_mean, &a->ln1_rstd, &a->qkv,
        &a->att,     &a->atty,  &a->ln2,       &a->ln2_mean, &a->ln2_rstd, &a->fch,  &a->fch_act,
        &a->lnf,     &a->lnf_mean, &a->lnf_rstd, &a->logits, &a->dlogits, &a->dresid, &a->dbuf_c,
        &a->dbuf_c2, &a->dqkv,  &a->dfch,      &a->dfch_act, &a->datt_scratch, &a->rope_cos,
        &a->rope_sin};
    size_t total = 0;
    for (int i = 0; i < N_ACT_PARTS; i++)
        total += ((size_t)n[i] + 15) & ~(size_t)15; /* keep each array 64-byte aligned */
    a->mem = ad_alloc_floats(total, "activations");
    if (!a->mem) return AD_ERR_NOMEM;
    a->n_floats = total;
    float *p = a->mem;
    for (int i = 0; i < N_ACT_PARTS; i++) {
        *parts[i] = p;
        p += ((size_t)n[i] + 15) & ~(size_t)15;
    }
    if (c->pos == AD_POS_ROPE)
        ad_model_rope_tables(c, a->rope_cos, a->rope_sin, c->max_seq_len);
    return AD_OK;
}

void ad_acts_free(AdActs *a) {
    free(a->mem);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- forward / backward */

/* Per-layer views into the stacked parameter tensors and activations. */
typedef struct {
    const float *ln1w, *ln1b, *qkvw, *qkvb, *projw, *projb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw,
        *fcprojb;
} LayerW;

typedef struct {
    float *ln1w, *ln1b, *qkvw, *qkvb, *projw, *projb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
} LayerG;

#define LAYER_PTR(P, id, l) ((P).t[id] ? (P).t[id] + (size_t)(l) * (m->info[id].size / L) : NULL)

static LayerW layer_weights(const AdModel *m, int l) {
    int L = m->cfg.n_layer;
    LayerW w = {LAYER_PTR(m->params, AD_P_LN1W, l),     LAYER_PTR(m->params, AD_P_LN1B, l),
                LAYER_PTR(m->params, AD_P_QKVW, l),     LAYER_PTR(m->params, AD_P_QKVB, l),
                LAYER_PTR(m->params, AD_P_ATTPROJW, l), LAYER_PTR(m->params, AD_P_ATTPROJB, l),
                LAYER_PTR(m->params, AD_P_LN2W, l),     LAYER_PTR(m->params, AD_P_LN2B, l),
                LAYER_PTR(m->params, AD_P_FCW, l),      LAYER_PTR(m->params, AD_P_FCB, l),
                LAYER_PTR(m->params, AD_P_FCPROJW, l),  LAYER_PTR(m->params, AD_P_FCPROJB, l)};
    return w;
}

static LayerG layer_grads(const AdModel *m, int l) {
    int L = m->cfg.n_layer;
    LayerG g = {LAYER_PTR(m->grads, AD_P_LN1W, l),     LAYER_PTR(m->grads, AD_P_LN1B, l),
                LAYER_PTR(m->grads, AD_P_QKVW, l),     LAYER_PTR(m->grads, AD_P_QKVB, l),
                LAYER_PTR(m->grads, AD_P_ATTPROJW, l), LAYER_PTR(m->grads, AD_P_ATTPROJB, l),
                LAYER_PTR(m->grads, AD_P_LN2W, l),     LAYER_PTR(m->grads, AD_P_LN2B, l),
                LAYER_PTR(m->grads, AD_P_FCW, l),      LAYER_PTR(m->grads, AD_P_FCB, l),
                LAYER_PTR(m->grads, AD_P_FCPROJW, l),  LAYER_PTR(m->grads, AD_P_FCPROJB, l)};
    return g;
}

static void norm_forward(const AdModelConfig *c, float *out, float *mean, float *rstd,
                         const float *inp, const float *w, const float *b, int N) {
    if (c->norm == AD_NORM_LAYERNORM)
        ad_layernorm_forward(out, mean, rstd, inp, w, b, N, c->d_model, c->norm_eps);
    else
        ad_rmsnorm_forward(out, rstd, inp, w, N, c->d_model, c->norm_eps);
}

static void norm_backward(const AdModelConfig *c, float *dinp, float *dw, float *db,
                          const float *dout, const float *inp, const float *w, const float *mean,
                          const float *rstd, int N) {
    if (c->norm == AD_NORM_LAYERNORM)
        ad_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, c->d_model);
    else
        ad_rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, c->d_model);
}

/* Activation pointers of layer l for a batch of N tokens (arrays are strided by capacity). */
typedef struct {
    float *resid, *resid_out, *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *ln2, *ln2_mean,
        *ln2_rstd, *fch, *fch_act;
} LayerA;

static LayerA layer_acts(const AdModelConfig *c, const AdActs *a, int l) {
    size_t Ncap = (size_t)a->B * a->T, C = c->d_model, hs = C / c->n_head;
    size_t QKV = (c->n_head + 2 * (size_t)c->n_kv_head) * hs;
    size_t F = c->d_ff, FC = c->mlp == AD_MLP_SWIGLU ? 2 * F : F;
    size_t attn = (size_t)a->B * c->n_head * a->T * a->T;
    LayerA x = {a->resid + l * Ncap * C,   a->resid_out + l * Ncap * C, a->ln1 + l * Ncap * C,
                a->ln1_mean + l * Ncap,    a->ln1_rstd + l * Ncap,      a->qkv + l * Ncap * QKV,
                a->att + l * attn,         a->atty + l * Ncap * C,      a->ln2 + l * Ncap * C,
                a->ln2_mean + l * Ncap,    a->ln2_rstd + l * Ncap,      a->fch + l * Ncap * FC,
                a->fch_act + l * Ncap * F};
    return x;
}

void ad_model_forward(const AdModel *m, AdActs *a, const int *tokens, int B, int T) {
    const AdModelConfig *c = &m->cfg;
    AD_ASSERT(B >= 1 && T >= 1 && B <= a->B && T <= a->T);
    int N = B * T, C = c->d_model, L = c->n_layer, H = c->n_head, Hkv = c->n_kv_head;
    int hs = C / H, QKV = (H + 2 * Hkv) * hs, F = c->d_ff;
    int FC = c->mlp == AD_MLP_SWIGLU ? 2 * F : F;
    const AdParams *P = &m->params;

    ad_encoder_forward(a->encoded, tokens, P->t[AD_P_WTE], P->t[AD_P_WPE], B, T, C);
    const float *x = a->encoded;
    for (int l = 0; l < L; l++) {
        LayerW w = layer_weights(m, l);
        LayerA s = layer_acts(c, a, l);
        /* x = x + attn(norm1(x)) */
        norm_forward(c, s.ln1, s.ln1_mean, s.ln1_rstd, x, w.ln1w, w.ln1b, N);
        ad_matmul_forward(s.qkv, s.ln1, w.qkvw, w.qkvb, N, C, QKV, 0);
        if (c->pos == AD_POS_ROPE) ad_rope_forward(s.qkv, a->rope_cos, a->rope_sin, B, T, H, Hkv, hs, 0);
        ad_attention_forward(s.atty, s.att, s.qkv, B, T, H, Hkv, hs, c->sliding_window);
        memcpy(s.resid, x, sizeof(float) * N * C);
        ad_matmul_forward(s.resid, s.atty, w.projw, w.projb, N, C, C, 1);
        /* x = x + mlp(norm2(x)) */
        norm_forward(c, s.ln2, s.ln2_mean, s.ln2_rstd, s.resid, w.ln2w, w.ln2b, N);
        ad_matmul_forward(s.fch, s.ln2, w.fcw, w.fcb, N, C, FC, 0);
        if (c->mlp == AD_MLP_SWIGLU)
            ad_swiglu_forward(s.fch_act, s.fch, N, F);
        else
            ad_gelu_forward(s.fch_act, s.fch, (long)N * F);
        memcpy(s.resid_out, s.resid, sizeof(float) * N * C);
        ad_matmul_forward(s.resid_out, s.fch_act, w.fcprojw, w.fcprojb, N, F, C, 1);
        x = s.resid_out;
    }
    norm_forward(c, a->lnf, a->lnf_mean, a->lnf_rstd, x, P->t[AD_P_LNFW], P->t[AD_P_LNFB], N);
    const float *wcls = c->tied ? P->t[AD_P_WTE] : P->t[AD_P_LM_HEAD];
    ad_matmul_forward(a->logits, a->lnf, wcls, NULL, N, C, c->vocab_size, 0);
}

void ad_model_backward(AdModel *m, AdActs *a, const int *tokens, int B, int T) {
    const AdModelConfig *c = &m->cfg;
    AD_ASSERT(m->grads_mem != NULL);
    AD_ASSERT(omp_get_max_threads() <= a->nthreads); /* attention scratch slices */
    AD_ASSERT(B >= 1 && T >= 1 && B <= a->B && T <= a->T);
    int N = B * T, C = c->d_model, L = c->n_layer, H = c->n_head, Hkv = c->n_kv_head;
    int hs = C / H, QKV = (H + 2 * Hkv) * hs, F = c->d_ff;
    int FC = c->mlp == AD_MLP_SWIGLU ? 2 * F : F;
    const AdParams *P = &m->params;
    AdParams *G = &m->grads;

    /* classifier and final norm */
    const float *wcls = c->tied ? P->t[AD_P_WTE] : P->t[AD_P_LM_HEAD];
    float *dwcls = c->tied ? G->t[AD_P_WTE] : G->t[AD_P_LM_HEAD];
    ad_matmul_backward(a->dbuf_c, dwcls, NULL, a->dlogits, a->lnf, wcls, N, C, c->vocab_size);
    const float *x_last = L > 0 ? layer_acts(c, a, L - 1).resid_out : a->encoded;
    memset(a->dresid, 0, sizeof(float) * N * C);
    norm_backward(c, a->dresid, G->t[AD_P_LNFW], G->t[AD_P_LNFB], a->dbuf_c, x_last,
                  P->t[AD_P_LNFW], a->lnf_mean, a->lnf_rstd, N);

    for (int l = L - 1; l >= 0; l--) {
        LayerW w = layer_weights(m, l);
        LayerG g = layer_grads(m, l);
        LayerA s = layer_acts(c, a, l);
        const float *x_in = l > 0 ? layer_acts(c, a, l - 1).resid_out : a->encoded;
        /* MLP block: resid_out = resid + fcproj(act(fc(norm2(resid)))) */
        ad_matmul_backward(a->dfch_act, g.fcprojw, g.fcprojb, a->dresid, s.fch_act, w.fcprojw, N,
                           F, C);
        if (c->mlp == AD_MLP_SWIGLU)
            ad_swiglu_backward(a->dfch, a->dfch_act, s.fch, N, F);
        else
            ad_gelu_backward(a->dfch, a->dfch_act, s.fch, (long)N * F);
        ad_matmul_backward(a->dbuf_c, g.fcw, g.fcb, a->dfch, s.ln2, w.fcw, N, C, FC);
        norm_backward(c, a->dresid, g.ln2w, g.ln2b, a->dbuf_c, s.resid, w.ln2w, s.ln2_mean,
                      s.ln2_rstd, N);
        /* attention block: resid = x_in + proj(attn(qkv(norm1(x_in)))) */
        ad_matmul_backward(a->dbuf_c, g.projw, g.projb, a->dresid, s.atty, w.projw, N, C, C);
        ad_attention_backward(a->dqkv, a->datt_scratch, a->dbuf_c, s.qkv, s.att, B, T, H, Hkv, hs);
        if (c->pos == AD_POS_ROPE)
            ad_rope_backward(a->dqkv, a->rope_cos, a->rope_sin, B, T, H, Hkv, hs, 0);
        ad_matmul_backward(a->dbuf_c2, g.qkvw, g.qkvb, a->dqkv, s.ln1, w.qkvw, N, C, QKV);
        norm_backward(c, a->dresid, g.ln1w, g.ln1b, a->dbuf_c2, x_in, w.ln1w, s.ln1_mean,
                      s.ln1_rstd, N);
    }
    ad_encoder_backward(G->t[AD_P_WTE], G->t[AD_P_WPE], a->dresid, tokens, B, T, C);
}

/* ---------------------------------------------------------------- incremental decoding */

/* Element counts of the KV cache arrays, in ad_kvcache_init's order, as doubles. */
enum { N_KV_PARTS = 19 };
static double kv_sizes(const AdModelConfig *cfg, double Bm, double S, int nt, double n[N_KV_PARTS]) {
    double C = cfg->d_model, L = cfg->n_layer, V = cfg->vocab_size;
    double hs = (double)(cfg->d_model / cfg->n_head), KV = cfg->n_kv_head * hs;
    double QKV = (cfg->n_head + 2.0 * cfg->n_kv_head) * hs;
    double F = cfg->d_ff, FC = cfg->mlp == AD_MLP_SWIGLU ? 2 * F : F;
    double half = cfg->d_model / cfg->n_head / 2 ? cfg->d_model / cfg->n_head / 2 : 1;
    /* packed weight copies: whole panels of AD_PANEL output columns */
#define PACKED(OC, K) (ceil((OC) / AD_PANEL) * AD_PANEL * (K))
    const double v[N_KV_PARTS] = {L * Bm * S * KV, L * Bm * S * KV, Bm * C,   Bm * C, Bm,
                                  Bm,              Bm * QKV,        Bm * C,   Bm * FC, Bm * F,
                                  (double)nt * S,  S * half,        S * half, Bm * V,
                                  L * PACKED(QKV, C), L * PACKED(C, C), L * PACKED(FC, C),
                                  L * PACKED(C, F), PACKED(V, C)};
#undef PACKED
    double total = 0.0;
    for (int i = 0; i < N_KV_PARTS; i++) {
        n[i] = v[i];
        total += v[i] + 15;
    }
    return total;
}

double ad_kvcache_bytes(const AdModelConfig *cfg, int max_batch, int max_seq) {
    double n[N_KV_PARTS];
    return kv_sizes(cfg, max_batch, max_seq, omp_get_max_threads(), n) * sizeof(float);
}

AdStatus ad_kvcache_init(AdKVCache *c, const AdModelConfig *cfg, int max_batch, int max_seq) {
    memset(c, 0, sizeof *c);
    if (max_batch < 1 || max_seq < 1 || max_seq > cfg->max_seq_len)
        return ad_fail(AD_ERR_ARG, "KV cache for %d sequences of %d positions: need at least one of "
                       "each and at most max_seq_len %d positions", max_batch, max_seq, cfg->max_seq_len);
    int nt = omp_get_max_threads();
    double n[N_KV_PARTS];
    AdStatus st = ad_mem_check(kv_sizes(cfg, max_batch, max_seq, nt, n) * sizeof(float),
                               "a KV cache for %d sequences of %d positions", max_batch, max_seq);
    if (st) return st;
    c->max_batch = max_batch, c->max_seq = max_seq, c->nthreads = nt;
    float **parts[N_KV_PARTS] = {&c->k,      &c->v,        &c->x,        &c->xn,     &c->mean,
                                 &c->rstd,   &c->qkv,      &c->atty,     &c->fch,    &c->fch_act,
                                 &c->scores, &c->rope_cos, &c->rope_sin, &c->logits, &c->pk_qkv,
                                 &c->pk_proj, &c->pk_fc,   &c->pk_fcproj, &c->pk_cls};
    size_t total = 0;
    for (int i = 0; i < N_KV_PARTS; i++) total += ((size_t)n[i] + 15) & ~(size_t)15;
    c->mem = ad_alloc_floats(total, "KV cache");
    if (!c->mem) return AD_ERR_NOMEM;
    float *p = c->mem;
    for (int i = 0; i < N_KV_PARTS; i++) {
        *parts[i] = p;
        p += ((size_t)n[i] + 15) & ~(size_t)15;
    }
    if (cfg->pos == AD_POS_ROPE) ad_model_rope_tables(cfg, c->rope_cos, c->rope_sin, max_seq);
    return AD_OK;
}

void ad_kvcache_free(AdKVCache *c) {
    free(c->mem);
    memset(c, 0, sizeof *c);
}

void ad_kvcache_pack(AdKVCache *kc, const AdModel *m) {
    const AdModelConfig *c = &m->cfg;
    int C = c->d_model, hs = C / c->n_head, QKV = (c->n_head + 2 * c->n_kv_head) * hs;
    int F = c->d_ff, FC = c->mlp == AD_MLP_SWIGLU ? 2 * F : F;
    for (int l = 0; l < c->n_layer; l++) {
        LayerW w = layer_weights(m, l);
        ad_pack_panels(kc->pk_qkv + l * ad_packed_size(QKV, C), w.qkvw, QKV, C);
        ad_pack_panels(kc->pk_proj + l * ad_packed_size(C, C), w.projw, C, C);
        ad_pack_panels(kc->pk_fc + l * ad_packed_size(FC, C), w.fcw, FC, C);
        ad_pack_panels(kc->pk_fcproj + l * ad_packed_size(C, F), w.fcprojw, C, F);
    }
    const float *wcls = c->tied ? m->params.t[AD_P_WTE] : m->params.t[AD_P_LM_HEAD];
    ad_pack_panels(kc->pk_cls, wcls, c->vocab_size, C);
}

void ad_model_forward_step(const AdModel *m, AdKVCache *kc, const int *tokens, const int *pos,
                           const int *slots, int n) {
    const AdModelConfig *c = &m->cfg;
    AD_ASSERT(n >= 1 && n <= kc->max_batch && omp_get_max_threads() <= kc->nthreads);
    int C = c->d_model, L = c->n_layer, H = c->n_head, Hkv = c->n_kv_head, V = c->vocab_size;
    int hs = C / H, KV = Hkv * hs, QKV = (H + 2 * Hkv) * hs, F = c->d_ff, group = H / Hkv;
    int FC = c->mlp == AD_MLP_SWIGLU ? 2 * F : F, S = kc->max_seq, half = hs / 2;
    const AdParams *P = &m->params;

    for (int i = 0; i < n; i++) {
        AD_ASSERT(pos[i] >= 0 && pos[i] < S && slots[i] >= 0 && slots[i] < kc->max_batch);
        const float *e = P->t[AD_P_WTE] + (size_t)tokens[i] * C;
        float *x = kc->x + (size_t)i * C;
        if (c->pos == AD_POS_LEARNED) {
            const float *pe = P->t[AD_P_WPE] + (size_t)pos[i] * C;
            for (int d = 0; d < C; d++) x[d] = e[d] + pe[d];
        } else {
            memcpy(x, e, sizeof(float) * C);
        }
    }
    for (int l = 0; l < L; l++) {
        LayerW w = layer_weights(m, l);
        float *kl = kc->k + (size_t)l * kc->max_batch * S * KV;
        float *vl = kc->v + (size_t)l * kc->max_batch * S * KV;
        norm_forward(c, kc->xn, kc->mean, kc->rstd, kc->x, w.ln1w, w.ln1b, n);
        ad_matmul_forward_packed(kc->qkv, kc->xn, kc->pk_qkv + l * ad_packed_size(QKV, C), w.qkvb, n, C,
                                 QKV, 0);
#pragma omp parallel for schedule(static) if((long)n * QKV >= AD_PAR_MIN)
        for (int i = 0; i < n; i++) {
            float *row = kc->qkv + (size_t)i * QKV;
            if (c->pos == AD_POS_ROPE) {
                const float *cs = kc->rope_cos + (size_t)pos[i] * half;
                const float *sn = kc->rope_sin + (size_t)pos[i] * half;
                for (int h = 0; h < H + Hkv; h++) {
                    float *v = row + h * hs;
                    for (int j = 0; j < half; j++) {
                        float a = v[2 * j], b = v[2 * j + 1];
                        v[2 * j] = a * cs[j] - b * sn[j];
                        v[2 * j + 1] = a * sn[j] + b * cs[j];
                    }
                }
            }
            /* keys transposed (position fastest), values as rows */
            float *kt = kl + (size_t)slots[i] * KV * S + pos[i];
            for (int e = 0; e < KV; e++) kt[(size_t)e * S] = row[C + e];
            memcpy(vl + ((size_t)slots[i] * S + pos[i]) * KV, row + C + KV, sizeof(float) * KV);
        }
#pragma omp parallel for collapse(2) schedule(static) if((long)n * H * (pos[0] + 1) * hs >= AD_PAR_MIN)
        for (int i = 0; i < n; i++)
            for (int h = 0; h < H; h++) {
                /* keys lo .. pos[i]: all of them, or the last sliding_window */
                int W = c->sliding_window, lo = W > 0 && pos[i] >= W ? pos[i] - W + 1 : 0;
                int g = h / group, np = pos[i] + 1 - lo;
                float *sc = kc->scores + (size_t)omp_get_thread_num() * S;
                const float *q = kc->qkv + (size_t)i * QKV + h * hs;
                const float *kt = kl + ((size_t)slots[i] * KV + (size_t)g * hs) * S + lo;
                const float *vb = vl + ((size_t)slots[i] * S + lo) * KV + g * hs;
                float *o = kc->atty + (size_t)i * C + h * hs;
                ad_attention_decode(o, sc, q, kt, vb, np, hs, S, KV);
            }
        ad_matmul_forward_packed(kc->x, kc->atty, kc->pk_proj + l * ad_packed_size(C, C), w.projb, n, C,
                                 C, 1);
        norm_forward(c, kc->xn, kc->mean, kc->rstd, kc->x, w.ln2w, w.ln2b, n);
        ad_matmul_forward_packed(kc->fch, kc->xn, kc->pk_fc + l * ad_packed_size(FC, C), w.fcb, n, C, FC,
                                 0);
        if (c->mlp == AD_MLP_SWIGLU)
            ad_swiglu_forward(kc->fch_act, kc->fch, n, F);
        else
            ad_gelu_forward(kc->fch_act, kc->fch, (long)n * F);
        ad_matmul_forward_packed(kc->x, kc->fch_act, kc->pk_fcproj + l * ad_packed_size(C, F), w.fcprojb,
                                 n, F, C, 1);
    }
    norm_forward(c, kc->xn, kc->mean, kc->rstd, kc->x, P->t[AD_P_LNFW], P->t[AD_P_LNFB], n);
    ad_matmul_forward_packed(kc->logits, kc->xn, kc->pk_cls, NULL, n, C, V, 0);
}
