/* kernels.h: stateless forward/backward ops of the transformer. Outputs first, then
 * inputs, then weights, then sizes; shapes in the comments (N = B*T rows).
 * Matrix products go through cblas_sgemm, except the decoding step's, whose fixed order
 * of summation makes a row's result independent of its batch; row loops are OpenMP-parallel
 * and write disjoint outputs, so results are identical for a fixed thread count. Weight
 * gradients always accumulate (+=); what activation gradients do is stated per op.
 * Naive twins (*_naive) are the references the tests compare against. No allocation. */
#ifndef AUTODIDACT_KERNELS_H
#define AUTODIDACT_KERNELS_H

#include <stddef.h>

/* Loops with less work than this many elements run on one thread: a parallel region
 * costs more than it saves there (decoding one token at a time, tiny models). */
#define AD_PAR_MIN 16384L

/* out (B,T,C) = wte[tok] + wpe[t] (wpe may be NULL). */
void ad_encoder_forward(float *out, const int *tok, const float *wte, const float *wpe, int B,
                        int T, int C);
/* dwte[tok] += dout, dwpe[t] += dout (dwpe may be NULL). */
void ad_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tok, int B, int T,
                         int C);

/* LayerNorm over C: out = (x - mean) * rstd * w + b (b may be NULL); mean, rstd (N) saved. */
void ad_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps);
/* dinp += ..., dw += ..., db += ... (db may be NULL). */
void ad_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, int N, int C);
/* RMSNorm over C: out = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps) saved (N). */
void ad_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                        float eps);
/* dinp += ..., dw += ... */
void ad_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, const float *rstd, int N, int C);

/* out (N,OC) = inp (N,C) w^T (w is (OC,C)) + b (b may be NULL). If accumulate, out += instead
 * (used to add a block's output into the residual stream in place). */
void ad_matmul_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                       int OC, int accumulate);
void ad_matmul_forward_naive(float *out, const float *inp, const float *w, const float *b, int N,
                             int C, int OC, int accumulate);
/* dinp (N,C) = dout w (overwritten; may be NULL), dw (OC,C) += dout^T inp, db (OC) += column
 * sums of dout (may be NULL). */
void ad_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int N, int C, int OC);
void ad_matmul_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, int N, int C, int OC);

/* Products for the decoding step whose every output element is summed in one fixed order
 * (k = 0 .. C-1 in turn, then the bias, then the value already in out), whatever N, the
 * row's index or the thread count; BLAS blockings and edge kernels depend on N, so sgemm
 * cannot promise that. The weights are read from a transposed copy in panels of AD_PANEL
 * output columns (the vector width), made once by ad_pack_panels. Since no sum is split,
 * the results do not depend on the vector width either. */
#if defined(__AVX512F__)
#define AD_PANEL 16 /* one vector register of floats */
#elif defined(__AVX__)
#define AD_PANEL 8
#else
#define AD_PANEL 4
#endif
/* Floats of the packed copy of a (OC, C) matrix. */
size_t ad_packed_size(int OC, int C);
/* wp (ad_packed_size) = w (OC, C) in panels: panel p is (C, AD_PANEL) with wp[p][k][j] =
 * w[p*AD_PANEL + j][k], zero past OC. */
void ad_pack_panels(float *wp, const float *w, int OC, int C);
/* out (N,OC) = inp (N,C) w^T + b (b may be NULL), or out += that if accumulate; w packed. */
void ad_matmul_forward_packed(float *out, const float *inp, const float *wp, const float *b, int N,
                              int C, int OC, int accumulate);

/* One query row of causal attention at decoding time, every sum in a fixed order that
 * depends on np and hs alone (so the result does not depend on the batch): q (hs); keys
 * transposed, kt[d][j] at kt[d*ldk + j];
 * values v[j][d] at v[j*ldv + d], for the np positions j < np. out (hs) = softmax(K q /
 * sqrt(hs)) V; scores (np) is scratch. */
void ad_attention_decode(float *out, float *scores, const float *q, const float *kt,
                         const float *v, int np, int hs, int ldk, int ldv);

/* Rotary embedding applied in place to the q and k parts of qkv (B,T,(H+2Hkv)*hs) at
 * positions pos0 .. pos0+T-1; cos/sin tables are (maxT, hs/2). */
void ad_rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                     int Hkv, int hs, int pos0);
/* The inverse rotation, in place on the q and k parts of dqkv. */
void ad_rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                      int Hkv, int hs, int pos0);
/* Llama 3's RoPE frequency scaling (Hugging Face rope_type "llama3"): with wavelength
 * w = 2 pi / f of pair j's frequency f = theta^(-2j/hs), lo = original_max_pos /
 * low_freq_factor and hi = original_max_pos / high_freq_factor, f becomes f / factor
 * when w > lo, stays f when w < hi, and in between (1 - s) f / factor + s f with
 * s = (original_max_pos / w - low_freq_factor) / (high_freq_factor - low_freq_factor). */
typedef struct {
    float factor, low_freq_factor, high_freq_factor;
    int original_max_pos;
} AdRopeScaling;
/* The angular frequency of pair j: theta^(-2j/hs), scaled as above when llama3 != NULL. */
double ad_rope_freq(int j, int hs, float theta, const AdRopeScaling *llama3);
/* Fills cos/sin tables (maxT, hs/2) for angle t * f_j, f_j = ad_rope_freq rounded to float. */
void ad_rope_tables(float *cos_t, float *sin_t, int maxT, int hs, float theta,
                    const AdRopeScaling *llama3);

/* Causal self-attention. qkv (B,T,(H+2Hkv)*hs) rows [q heads | k heads | v heads]; query head h
 * uses key/value head h / (H/Hkv). out (B,T,H*hs); att (B,H,T,T) softmax probabilities (only
 * j <= i is written and read). Work on the masked upper triangle is skipped block-wise.
 * window > 0: sliding-window attention, query i attends to keys i-window+1 .. i only (the
 * probabilities of the others are written as exact zeros, so ad_attention_backward needs no
 * window); window 0: every key j <= i. */
void ad_attention_forward(float *out, float *att, const float *qkv, int B, int T, int H, int Hkv,
                          int hs, int window);
void ad_attention_forward_naive(float *out, float *att, const float *qkv, int B, int T, int H,
                                int Hkv, int hs, int window);
/* Floats of attention-backward scratch one thread needs for sequences of length T. */
#define AD_ATT_SCRATCH(T) (2 * 64 * (size_t)(T))
/* dqkv (B,T,QKV) is overwritten. scratch: (nthreads, AD_ATT_SCRATCH(T)) floats.
 * Reads att only at j <= i. */
void ad_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int T, int H, int Hkv, int hs);
void ad_attention_backward_naive(float *dqkv, const float *dout, const float *qkv,
                                 const float *att, int B, int T, int H, int Hkv, int hs);

/* GELU (tanh approximation), elementwise over n. Backward overwrites dinp. */
void ad_gelu_forward(float *out, const float *inp, long n);
void ad_gelu_backward(float *dinp, const float *dout, const float *inp, long n);
/* SwiGLU: inp (N, 2F) rows [gate | up]; out (N, F) = silu(gate) * up. Backward overwrites
 * dinp (N, 2F). */
void ad_swiglu_forward(float *out, const float *inp, int N, int F);
void ad_swiglu_backward(float *dinp, const float *dout, const float *inp, int N, int F);

/* Softmax of each row of x (N, V) into out, with temperature 1. */
void ad_softmax_rows(float *out, const float *x, int N, int V);

#endif
