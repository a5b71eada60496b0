/* model.h: one decoder-only transformer for the GPT-2 and Llama families.
 * The family is a set of switches in AdModelConfig (norm, MLP, positions, biases,
 * tied classifier, grouped-query attention), not a separate code path.
 * The model owns parameters and gradients; activations live in AdActs, sized once
 * for a (B, T) at init, so forward/backward never allocate. File I/O and optimizers
 * live elsewhere (checkpoint.h, optim.h). */
#ifndef AUTODIDACT_MODEL_H
#define AUTODIDACT_MODEL_H

#include "autodidact/common.h"
#include "autodidact/rng.h"

typedef enum { AD_NORM_LAYERNORM = 0, AD_NORM_RMSNORM = 1 } AdNormKind;
typedef enum { AD_MLP_GELU = 0, AD_MLP_SWIGLU = 1 } AdMlpKind;
typedef enum { AD_POS_LEARNED = 0, AD_POS_ROPE = 1, AD_POS_NONE = 2 } AdPosKind;
/* Random initialisation schemes (not part of the architecture: not stored in checkpoints). */
typedef enum { AD_INIT_GPT2 = 0, AD_INIT_TORCH = 1 } AdInitKind;
typedef enum { AD_ROPE_SCALING_NONE = 0, AD_ROPE_SCALING_LLAMA3 = 1 } AdRopeScalingKind;

typedef struct {
    int vocab_size;   /* V */
    int max_seq_len;  /* maximum T (size of the learned position table, RoPE limit) */
    int n_layer;      /* L */
    int n_head;       /* H query heads */
    int n_kv_head;    /* key/value heads; divides n_head (== n_head: plain multi-head) */
    int d_model;      /* C; divisible by n_head */
    int d_ff;         /* F: MLP hidden width */
    AdNormKind norm;
    AdMlpKind mlp;
    AdPosKind pos;
    int bias;         /* 1: linear layers and norms carry biases */
    int tied;         /* 1: the classifier is the token embedding (wte) */
    float norm_eps;
    float rope_theta;
    /* Switches of later families; all zero is the plain model above. */
    int qkv_bias;     /* 1: the q, k, v projections carry a bias even when bias == 0 (Qwen2) */
    int sliding_window; /* W > 0: query t attends to positions t-W+1 .. t only (Mistral);
                         * 0: to every position <= t */
    AdRopeScalingKind rope_scaling; /* llama3: RoPE frequencies scaled as kernels.h's
                                     * AdRopeScaling describes, with the four fields below */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
} AdModelConfig;

/* RoPE cos/sin tables (maxT, hs/2) of a config: theta, and llama3 frequency scaling when
 * c->rope_scaling says so (kernels.h, ad_rope_tables). */
void ad_model_rope_tables(const AdModelConfig *c, float *cos_t, float *sin_t, int maxT);
/* Fills `c` with a family's switches ("gpt2": LayerNorm, GELU, learned positions,
 * biases, tied; "llama": RMSNorm, SwiGLU, RoPE theta 10000, no biases, untied) and
 * leaves sizes at small defaults. Returns AD_ERR_ARG for an unknown family. */
AdStatus ad_model_config_preset(AdModelConfig *c, const char *family);
/* Checks sizes and divisibility; the message names the offending field. */
AdStatus ad_model_config_validate(const AdModelConfig *c);
const char *ad_norm_name(AdNormKind k);
const char *ad_mlp_name(AdMlpKind k);
const char *ad_pos_name(AdPosKind k);
const char *ad_rope_scaling_name(AdRopeScalingKind k); /* "none", "llama3" */
/* Parses the names above; returns -1 when unknown. */
int ad_norm_parse(const char *s);
int ad_mlp_parse(const char *s);
int ad_pos_parse(const char *s);
const char *ad_init_name(AdInitKind k);
int ad_init_parse(const char *s);
int ad_rope_scaling_parse(const char *s);

/* Parameter tensors, in storage order. Absent tensors (wpe without learned positions,
 * biases when bias == 0, lnXb with RMSNorm, lm_head when tied) have size 0 and NULL
 * pointers. Per-layer tensors are stacked along a leading L dimension. */
enum {
    AD_P_WTE = 0,    /* (V, C) token embedding */
    AD_P_WPE,        /* (maxT, C) learned positions */
    AD_P_LN1W,       /* (L, C) */
    AD_P_LN1B,       /* (L, C) */
    AD_P_QKVW,       /* (L, (H + 2*Hkv)*hs, C): rows are [q heads | k heads | v heads] */
    AD_P_QKVB,       /* (L, (H + 2*Hkv)*hs) when bias or qkv_bias */
    AD_P_ATTPROJW,   /* (L, C, C) */
    AD_P_ATTPROJB,   /* (L, C) */
    AD_P_LN2W,       /* (L, C) */
    AD_P_LN2B,       /* (L, C) */
    AD_P_FCW,        /* (L, F, C) for GELU; (L, 2F, C) for SwiGLU: rows [w1 (gate) | w3 (up)] */
    AD_P_FCB,        /* (L, F) or (L, 2F) */
    AD_P_FCPROJW,    /* (L, C, F) */
    AD_P_FCPROJB,    /* (L, C) */
    AD_P_LNFW,       /* (C) */
    AD_P_LNFB,       /* (C) */
    AD_P_LM_HEAD,    /* (V, C) classifier when untied */
    AD_P_COUNT
};

typedef struct {
    const char *name; /* stable name used in checkpoints, e.g. "qkv_w" */
    size_t size;      /* number of floats (0: absent) */
    int ndim;
    int shape[3];
    int decay;        /* 1: AdamW applies weight decay (matrices); 0: norms, biases */
} AdTensorInfo;

/* Fills info[AD_P_COUNT] for a config; returns the total number of floats. */
size_t ad_model_param_info(const AdModelConfig *c, AdTensorInfo info[AD_P_COUNT]);

typedef struct {
    float *t[AD_P_COUNT]; /* pointers into one block, in storage order */
} AdParams;

typedef struct {
    AdModelConfig cfg;
    AdTensorInfo info[AD_P_COUNT];
    size_t n_params;
    float *params_mem;  /* owned; n_params floats */
    float *grads_mem;   /* owned; NULL unless init with grads */
    AdParams params;
    AdParams grads;
} AdModel;

/* Allocates parameters (zeroed) and, if with_grads, gradients. Validates the config. */
AdStatus ad_model_init(AdModel *m, const AdModelConfig *c, int with_grads);
/* Safe on a zeroed or half-initialised struct. */
void ad_model_free(AdModel *m);
/* Bytes ad_model_init allocates for a config (parameters, and gradients if with_grads);
 * ad_model_init refuses (AD_ERR_NOMEM) a model larger than ad_mem_limit(). */
double ad_model_bytes(const AdModelConfig *c, int with_grads);
/* AD_ERR_NAN if a parameter is NaN or infinite; the message names the first such weight
 * and its index ("weight qkv_w[0, 5, 3] (element 163 of 3072) is nan"). One pass over
 * the parameters, cheap next to reading or writing them. */
AdStatus ad_model_check_finite(const AdModel *m);
/* The same for any array: "<name>: element 12 is inf". */
AdStatus ad_check_finite(const float *x, size_t n, const char *name);
/* Random weights from rng. Both schemes set norm weights to 1 and norm biases to 0.
 * AD_INIT_GPT2: N(0, 0.02) for matrices and embeddings, residual projections (attproj_w,
 *   fcproj_w) N(0, 0.02/sqrt(2L)), linear biases 0.
 * AD_INIT_TORCH: PyTorch's module defaults: embeddings (wte, wpe) N(0, 1); each linear
 *   layer's weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming-uniform with
 *   a = sqrt(5)); fan_in is C for qkv, attproj, fc and lm_head, F for fcproj.
 * Tensors are filled in storage order, elements in row-major order. */
void ad_model_init_weights(AdModel *m, AdRng *rng, AdInitKind kind);
void ad_model_zero_grad(AdModel *m);
/* Copies parameters between two models of the same config. */
AdStatus ad_model_copy_params(AdModel *dst, const AdModel *src);

/* Activations for a batch of B sequences of length T (B*T = N tokens), sized once.
 * Forward stores what backward needs; backward uses the d* scratch. */
typedef struct {
    int B, T;           /* allocated capacity */
    int nthreads;       /* attention scratch slices */
    float *mem;
    size_t n_floats;
    /* forward (per layer l, arrays are indexed [l]) */
    float *encoded;     /* (N, C) embeddings entering layer 0 */
    float *resid;       /* (L, N, C) residual stream after the attention block of layer l */
    float *resid_out;   /* (L, N, C) residual stream leaving layer l */
    float *ln1;         /* (L, N, C) normed input of attention */
    float *ln1_mean;    /* (L, N) LayerNorm mean (unused for RMSNorm) */
    float *ln1_rstd;    /* (L, N) */
    float *qkv;         /* (L, N, QKV) after bias and RoPE */
    float *att;         /* (L, B, H, T, T) softmax probabilities (lower triangle used) */
    float *atty;        /* (L, N, C) attention output before projection */
    float *ln2;         /* (L, N, C) */
    float *ln2_mean;    /* (L, N) */
    float *ln2_rstd;    /* (L, N) */
    float *fch;         /* (L, N, F or 2F) MLP pre-activation */
    float *fch_act;     /* (L, N, F) MLP activation output */
    float *lnf;         /* (N, C) final norm output */
    float *lnf_mean;    /* (N) */
    float *lnf_rstd;    /* (N) */
    float *logits;      /* (N, V) */
    /* backward scratch */
    float *dlogits;     /* (N, V) filled by a loss before ad_model_backward */
    float *dresid;      /* (N, C) gradient of the residual stream */
    float *dbuf_c;      /* (N, C) */
    float *dbuf_c2;     /* (N, C) */
    float *dqkv;        /* (N, QKV) */
    float *dfch;        /* (N, F or 2F) */
    float *dfch_act;    /* (N, F) */
    float *datt_scratch;/* (nthreads, AD_ATT_SCRATCH(T)) per-thread attention backward blocks */
    /* RoPE tables */
    float *rope_cos;    /* (T, hs/2) */
    float *rope_sin;    /* (T, hs/2) */
} AdActs;

/* Refuses (AD_ERR_NOMEM, before allocating) activations larger than ad_mem_limit(). */
AdStatus ad_acts_init(AdActs *a, const AdModelConfig *c, int B, int T);
/* Bytes ad_acts_init allocates for (B, T): for memory checks before any allocation. */
double ad_acts_bytes(const AdModelConfig *c, int B, int T);
void ad_acts_free(AdActs *a);

/* Forward over tokens (B, T) with B, T within the capacity of `a`; leaves logits
 * (B, T, V) in a->logits. Positions are 0..T-1. */
void ad_model_forward(const AdModel *m, AdActs *a, const int *tokens, int B, int T);
/* Backward from a->dlogits (set by a loss); accumulates (+=) into m->grads. */
void ad_model_backward(AdModel *m, AdActs *a, const int *tokens, int B, int T);

/* Key/value cache for incremental decoding: up to max_batch sequences (slots) of up to
 * max_seq positions each, plus the scratch one decoding step needs, sized once. */
typedef struct {
    int max_batch, max_seq, nthreads;
    float *mem;
    float *k;            /* (L, max_batch, Hkv*hs, max_seq): keys, transposed */
    float *v;            /* (L, max_batch, max_seq, Hkv*hs) */
    float *x;            /* (max_batch, C) residual stream of the rows in this step */
    float *xn;           /* (max_batch, C) normed */
    float *mean, *rstd;  /* (max_batch) */
    float *qkv;          /* (max_batch, QKV) */
    float *atty;         /* (max_batch, C) */
    float *fch;          /* (max_batch, F or 2F) */
    float *fch_act;      /* (max_batch, F) */
    float *scores;       /* (nthreads, max_seq) */
    float *rope_cos, *rope_sin; /* (max_seq, hs/2) */
    float *logits;       /* (max_batch, V) output of ad_model_forward_step */
    /* the weight matrices transposed in panels (kernels.h, ad_pack_panels), per layer */
    float *pk_qkv;       /* (L, packed QKV x C) */
    float *pk_proj;      /* (L, packed C x C) */
    float *pk_fc;        /* (L, packed FC x C) */
    float *pk_fcproj;    /* (L, packed C x F) */
    float *pk_cls;       /* packed V x C classifier */
} AdKVCache;

/* Refuses (AD_ERR_NOMEM, before allocating) a cache larger than ad_mem_limit(). */
AdStatus ad_kvcache_init(AdKVCache *c, const AdModelConfig *cfg, int max_batch, int max_seq);
double ad_kvcache_bytes(const AdModelConfig *cfg, int max_batch, int max_seq);
void ad_kvcache_free(AdKVCache *c);
/* Copies m's weight matrices into the cache's packed layout. ad_model_forward_step reads
 * the weights as last packed: call this after the weights change (ad_generate does, at
 * every call). */
void ad_kvcache_pack(AdKVCache *c, const AdModel *m);

/* Advances n sequences by one token each: row i feeds tokens[i] at position pos[i] of
 * cache slot slots[i] (positions 0 .. pos[i]-1 of that slot must already be cached; the
 * slots of one call are distinct). Weight matrices are read from the copy that
 * ad_kvcache_pack made of m; the rest of m directly. Leaves logits (n, V) in c->logits. The arithmetic per
 * row is that of ad_model_forward, so the logits agree with a full forward pass over the
 * sequence to float rounding. Every sum runs in a fixed order per row (no BLAS), so a row's
 * logits are bit for bit the same whatever n, its index among the rows, the other rows or
 * the thread count. */
void ad_model_forward_step(const AdModel *m, AdKVCache *c, const int *tokens, const int *pos,
                           const int *slots, int n);

#endif
