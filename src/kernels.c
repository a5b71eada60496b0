/* kernels.c: the transformer's forward and backward ops (see kernels.h). Matrix
 * products are cblas_sgemm calls, except the batch-invariant ones of the decoding step;
 * elementwise and row loops are OpenMP-parallel over disjoint outputs. Naive twins at the end are the test references. No allocation,
 * no model structure: the model composes these. */
#include "autodidact/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "fastmath.h"

#define ATT_BLOCK 64 /* query rows per attention block; keys beyond the block's last row are skipped */

/* ---------------------------------------------------------------- encoder */

void ad_encoder_forward(float *out, const int *tok, const float *wte, const float *wpe, int B,
                        int T, int C) {
#pragma omp parallel for schedule(static) if((long)B * T * C >= AD_PAR_MIN)
    for (long bt = 0; bt < (long)B * T; bt++) {
        float *o = out + bt * C;
        const float *e = wte + (size_t)tok[bt] * C;
        if (wpe) {
            const float *p = wpe + (size_t)(bt % T) * C;
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
        } else {
            memcpy(o, e, sizeof(float) * C);
        }
    }
}

void ad_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tok, int B, int T,
                         int C) {
    /* Tokens repeat, so threads split the channels, not the tokens. */
#pragma omp parallel if((long)B * T * C >= AD_PAR_MIN)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((long)C * id / nt), c1 = (int)((long)C * (id + 1) / nt);
        for (long bt = 0; bt < (long)B * T; bt++) {
            const float *d = dout + bt * C;
            float *e = dwte + (size_t)tok[bt] * C;
            for (int c = c0; c < c1; c++) e[c] += d[c];
            if (dwpe) {
                float *p = dwpe + (size_t)(bt % T) * C;
                for (int c = c0; c < c1; c++) p[c] += d[c];
            }
        }
    }
}

/* ---------------------------------------------------------------- norms */

void ad_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if((long)N * C >= AD_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *o = out + (size_t)i * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            v += d * d;
        }
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        if (b)
            for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
        else
            for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c];
        mean[i] = m;
        rstd[i] = s;
    }
}

/* Column sums over rows for weight gradients: threads split the channels. */
void ad_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel if((long)N * C >= AD_PAR_MIN)
    {
#pragma omp for schedule(static)
        for (int i = 0; i < N; i++) {
            const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
            float *dx = dinp + (size_t)i * C;
            float m = mean[i], s = rstd[i];
            float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s;
                float dn = w[c] * d[c];
                dnorm_mean += dn;
                dnorm_norm_mean += dn * xhat;
            }
            dnorm_mean /= C;
            dnorm_norm_mean /= C;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s;
                float dn = w[c] * d[c];
                dx[c] += (dn - dnorm_mean - xhat * dnorm_norm_mean) * s;
            }
        }
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((long)C * id / nt), c1 = (int)((long)C * (id + 1) / nt);
        for (int i = 0; i < N; i++) {
            const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
            float m = mean[i], s = rstd[i];
            for (int c = c0; c < c1; c++) dw[c] += (x[c] - m) * s * d[c];
            if (db)
                for (int c = c0; c < c1; c++) db[c] += d[c];
        }
    }
}

void ad_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                        float eps) {
#pragma omp parallel for schedule(static) if((long)N * C >= AD_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *o = out + (size_t)i * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float s = 1.0f / sqrtf(ss / C + eps);
        for (int c = 0; c < C; c++) o[c] = x[c] * s * w[c];
        rstd[i] = s;
    }
}

void ad_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, const float *rstd, int N, int C) {
#pragma omp parallel if((long)N * C >= AD_PAR_MIN)
    {
#pragma omp for schedule(static)
        for (int i = 0; i < N; i++) {
            const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
            float *dx = dinp + (size_t)i * C;
            float s = rstd[i];
            /* y = x s w;  dx = s (w d) - x s^3 mean(w d x) */
            float dot = 0.0f;
            for (int c = 0; c < C; c++) dot += w[c] * d[c] * x[c];
            float k = s * s * s * dot / C;
            for (int c = 0; c < C; c++) dx[c] += s * w[c] * d[c] - x[c] * k;
        }
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((long)C * id / nt), c1 = (int)((long)C * (id + 1) / nt);
        for (int i = 0; i < N; i++) {
            const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
            float s = rstd[i];
            for (int c = c0; c < c1; c++) dw[c] += x[c] * s * d[c];
        }
    }
}

/* ---------------------------------------------------------------- matmul */

void ad_matmul_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                       int OC, int accumulate) {
    float beta = 0.0f;
    if (b) {
        if (accumulate) {
#pragma omp parallel for schedule(static) if((long)N * OC >= AD_PAR_MIN)
            for (int i = 0; i < N; i++)
                for (int o = 0; o < OC; o++) out[(size_t)i * OC + o] += b[o];
        } else {
#pragma omp parallel for schedule(static) if((long)N * OC >= AD_PAR_MIN)
            for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, b, sizeof(float) * OC);
        }
        beta = 1.0f;
    } else if (accumulate) {
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, beta, out,
                OC);
}

void ad_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int N, int C, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C,
                    0.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
                dw, C);
    if (db) {
#pragma omp parallel if((long)N * OC >= AD_PAR_MIN)
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            int o0 = (int)((long)OC * id / nt), o1 = (int)((long)OC * (id + 1) / nt);
            for (int i = 0; i < N; i++) {
                const float *d = dout + (size_t)i * OC;
                for (int o = o0; o < o1; o++) db[o] += d[o];
            }
        }
    }
}

/* ---------------------------------------------------------------- row-invariant products */

/* Decoding must give a sequence the same bits whatever else shares its batch, but BLAS
 * kernels pick blockings and edge kernels by the number of rows, so a row's sums change
 * order with the batch size. These products fix the order per output element instead:
 * out = (((0 + x0 w0) + x1 w1) + ... + x(K-1) w(K-1)) + bias, then + the value already in
 * out, k strictly in order. Tiles only choose which elements run side by side (one row or
 * several, one panel of 16 columns or several); no element's arithmetic depends on them,
 * so it depends on its own row and column alone, and even the vector width does not
 * matter. The weights are read transposed, in panels of AD_PANEL columns
 * (ad_pack_panels), so that 16 neighbouring outputs advance with one vector operation. */

typedef float ad_v16f __attribute__((vector_size(4 * AD_PANEL))); /* one panel row */

size_t ad_packed_size(int OC, int K) { return (size_t)((OC + AD_PANEL - 1) / AD_PANEL) * AD_PANEL * K; }

void ad_pack_panels(float *wp, const float *w, int OC, int K) {
    int np = (OC + AD_PANEL - 1) / AD_PANEL;
#pragma omp parallel for schedule(static) if((long)OC * K >= AD_PAR_MIN)
    for (int p = 0; p < np; p++) {
        float *dst = wp + (size_t)p * K * AD_PANEL;
        for (int j = 0; j < AD_PANEL; j++) {
            int o = p * AD_PANEL + j;
            const float *src = w + (size_t)o * K;
            if (o < OC)
                for (int k = 0; k < K; k++) dst[(size_t)k * AD_PANEL + j] = src[k];
            else
                for (int k = 0; k < K; k++) dst[(size_t)k * AD_PANEL + j] = 0.0f;
        }
    }
}

static inline ad_v16f load_v16f(const float *p) {
    ad_v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* PK_TILE(name, R, NP) defines name(acc, x, w, K): the sums of R rows x[r] against NP panels
 * w[p] (each K x AD_PANEL), into acc[r * NP + p]. */
#define PK_TILE(name, R, NP)                                                                      \
    static inline void name(ad_v16f acc[R * NP], const float *const x[R],                         \
                            const float *const w[NP], int K) {                                    \
        for (int e = 0; e < R * NP; e++) acc[e] = (ad_v16f){0};                                   \
        for (int k = 0; k < K; k++) {                                                             \
            ad_v16f wv[NP];                                                                       \
            for (int p = 0; p < NP; p++) wv[p] = load_v16f(w[p] + (size_t)k * AD_PANEL);          \
            for (int r = 0; r < R; r++) {                                                         \
                float xs = x[r][k];                                                               \
                for (int p = 0; p < NP; p++) acc[r * NP + p] += xs * wv[p];                       \
            }                                                                                     \
        }                                                                                         \
    }

/* Tile shapes by register file: 16 accumulators (AVX-512's 32 registers) or 8 (AVX's and
 * SSE's 16), leaving registers for the loaded panels and the broadcast input. */
#if AD_PANEL == 16
enum { PK_ROWS = 4, PK_PANELS = 4 };
#else
enum { PK_ROWS = 4, PK_PANELS = 2 };
#endif
enum { PK_ROW_PANELS = 4 }; /* panels a lone row advances at once */
PK_TILE(pk_tile_rows, PK_ROWS, PK_PANELS)
PK_TILE(pk_tile_one, 1, PK_ROW_PANELS)

/* Writes R rows x NP panels of sums (acc rows ld panels apart): out = (out if accumulate) +
 * (sum + bias), inside OC columns. */
static inline void pk_store(float *out, const ad_v16f *acc, const float *b, int OC, int row0,
                            int R, int col0, int NP, int ld, int accumulate) {
    for (int r = 0; r < R; r++) {
        float *o = out + (size_t)(row0 + r) * OC;
        for (int p = 0; p < NP; p++) {
            float v[AD_PANEL];
            memcpy(v, &acc[r * ld + p], sizeof v);
            for (int j = 0; j < AD_PANEL; j++) {
                int c = col0 + p * AD_PANEL + j;
                if (c >= OC) break;
                float y = b ? v[j] + b[c] : v[j];
                o[c] = accumulate ? o[c] + y : y;
            }
        }
    }
}

/* Sums of `rows` rows starting at row0 against NP panels starting at panel p0 (panels past
 * the last repeat it: computed, not stored), written by pk_store. */
#define PK_RUN(tile, R, NP, rows)                                                                  \
    do {                                                                                          \
        const float *xr[R], *wr[NP];                                                              \
        for (int r = 0; r < R; r++) xr[r] = inp + (size_t)(row0 + (r < (rows) ? r : 0)) * C;      \
        int npan = np - p0 < NP ? np - p0 : NP;                                                   \
        for (int q = 0; q < NP; q++) wr[q] = wp + (size_t)(p0 + (q < npan ? q : 0)) * ldp;        \
        ad_v16f acc[R * NP];                                                                      \
        tile(acc, xr, wr, C);                                                                     \
        pk_store(out, acc, b, OC, row0, rows, p0 * AD_PANEL, npan, NP, accumulate);              \
    } while (0)

void ad_matmul_forward_packed(float *out, const float *inp, const float *wp, const float *b, int N,
                              int C, int OC, int accumulate) {
    int np = (OC + AD_PANEL - 1) / AD_PANEL;
    size_t ldp = (size_t)C * AD_PANEL;
    int nwide = N / PK_ROWS, rest0 = nwide * PK_ROWS, nrest = N - rest0;
    int wgroups = (np + PK_PANELS - 1) / PK_PANELS, rgroups = (np + PK_ROW_PANELS - 1) / PK_ROW_PANELS;
    long wide = (long)nwide * wgroups, tiles = wide + (long)nrest * rgroups;
    /* Panels outer: a panel stays in cache while the batch's rows stream past it. Rows left
     * over (and batch 1) go one at a time, several panels at once. */
#pragma omp parallel for schedule(static) if((long)N * OC * C >= 8 * AD_PAR_MIN)
    for (long t = 0; t < tiles; t++) {
        if (t < wide) {
            int p0 = (int)(t / nwide) * PK_PANELS, row0 = (int)(t % nwide) * PK_ROWS;
            PK_RUN(pk_tile_rows, PK_ROWS, PK_PANELS, PK_ROWS);
        } else {
            long u = t - wide;
            int p0 = (int)(u / nrest) * PK_ROW_PANELS, row0 = rest0 + (int)(u % nrest);
            PK_RUN(pk_tile_one, 1, PK_ROW_PANELS, 1);
        }
    }
}

/* Attention at decoding time runs its vectors across positions (scores) or channels
 * (output), never across a sum, so their width (8 with AVX, else 4) changes no result. */
#if defined(__AVX__)
#define AW 8
#else
#define AW 4
#endif
typedef float ad_vatt __attribute__((vector_size(4 * AW)));

static inline ad_vatt load_vatt(const float *p) {
    ad_vatt v;
    memcpy(&v, p, sizeof v);
    return v;
}

void ad_attention_decode(float *out, float *scores, const float *q, const float *kt,
                         const float *v, int np, int hs, int ldk, int ldv) {
    float scale = 1.0f / sqrtf((float)hs);
    /* scores[j] = sum over d in turn of q[d] kt[d][j]: four vectors of positions at a time
     * (independent chains), then one vector, then one position */
    int j = 0;
    for (; j + 4 * AW <= np; j += 4 * AW) {
        ad_vatt a[4] = {{0}, {0}, {0}, {0}};
        for (int d = 0; d < hs; d++) {
            const float *kd = kt + (size_t)d * ldk + j;
            for (int u = 0; u < 4; u++) a[u] += q[d] * load_vatt(kd + u * AW);
        }
        memcpy(scores + j, a, sizeof a);
    }
    for (; j + AW <= np; j += AW) {
        ad_vatt acc = {0};
        for (int d = 0; d < hs; d++) acc += q[d] * load_vatt(kt + (size_t)d * ldk + j);
        memcpy(scores + j, &acc, sizeof acc);
    }
    for (; j < np; j++) {
        float acc = 0.0f;
        for (int d = 0; d < hs; d++) acc += q[d] * kt[(size_t)d * ldk + j];
        scores[j] = acc;
    }
    float mx = -INFINITY;
    for (j = 0; j < np; j++) {
        scores[j] *= scale;
        mx = scores[j] > mx ? scores[j] : mx;
    }
    for (j = 0; j < np; j++) scores[j] = ad_expf(scores[j] - mx);
    float sum = 0.0f;
    for (j = 0; j < np; j++) sum += scores[j];
    float inv = 1.0f / sum;
    /* out[d] = ((s0 + s1) + (s2 + s3)) / sum, where s_r sums p[j] v[j][d] over j = r mod 4
     * in turn (four independent chains): a vector of channels at a time, then one */
    int hsw = hs - hs % AW, np4 = np & ~3;
    for (int d = 0; d < hsw; d += AW) {
        ad_vatt s4[4] = {{0}, {0}, {0}, {0}};
        const float *vd = v + d;
        for (j = 0; j < np4; j += 4)
            for (int r = 0; r < 4; r++) s4[r] += scores[j + r] * load_vatt(vd + (size_t)(j + r) * ldv);
        for (; j < np; j++) s4[j & 3] += scores[j] * load_vatt(vd + (size_t)j * ldv);
        ad_vatt acc = ((s4[0] + s4[1]) + (s4[2] + s4[3])) * inv;
        memcpy(out + d, &acc, sizeof acc);
    }
    for (int d = hsw; d < hs; d++) {
        float s4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (j = 0; j < np; j++) s4[j & 3] += scores[j] * v[(size_t)j * ldv + d];
        out[d] = ((s4[0] + s4[1]) + (s4[2] + s4[3])) * inv;
    }
}

/* ---------------------------------------------------------------- RoPE */

double ad_rope_freq(int j, int hs, float theta, const AdRopeScaling *llama3) {
    double f = pow((double)theta, -2.0 * j / hs);
    if (!llama3) return f;
    const double pi = 3.14159265358979323846, orig = llama3->original_max_pos;
    double wavelen = 2.0 * pi / f, low_wl = orig / llama3->low_freq_factor;
    double high_wl = orig / llama3->high_freq_factor;
    if (wavelen > low_wl) return f / llama3->factor;
    if (wavelen < high_wl) return f;
    double smooth = (orig / wavelen - llama3->low_freq_factor) /
                    (llama3->high_freq_factor - llama3->low_freq_factor);
    return (1.0 - smooth) * f / llama3->factor + smooth * f;
}

void ad_rope_tables(float *cos_t, float *sin_t, int maxT, int hs, float theta,
                    const AdRopeScaling *llama3) {
    int half = hs / 2;
    for (int j = 0; j < half; j++) {
        float freq = (float)ad_rope_freq(j, hs, theta, llama3);
        for (int t = 0; t < maxT; t++) {
            double a = (double)t * (double)freq;
            cos_t[(size_t)t * half + j] = (float)cos(a);
            sin_t[(size_t)t * half + j] = (float)sin(a);
        }
    }
}

static void rope_apply(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                       int Hkv, int hs, int pos0, float sign) {
    int QKV = (H + 2 * Hkv) * hs, half = hs / 2, nheads = H + Hkv; /* q heads then k heads */
#pragma omp parallel for schedule(static) if((long)B * T * (H + Hkv) * hs >= AD_PAR_MIN)
    for (long bt = 0; bt < (long)B * T; bt++) {
        int t = (int)(bt % T) + pos0;
        const float *cs = cos_t + (size_t)t * half, *sn = sin_t + (size_t)t * half;
        float *row = qkv + bt * QKV;
        for (int h = 0; h < nheads; h++) {
            float *v = row + h * hs;
            for (int j = 0; j < half; j++) {
                float a = v[2 * j], b = v[2 * j + 1], c = cs[j], s = sign * sn[j];
                v[2 * j] = a * c - b * s;
                v[2 * j + 1] = a * s + b * c;
            }
        }
    }
}

void ad_rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                     int Hkv, int hs, int pos0) {
    rope_apply(qkv, cos_t, sin_t, B, T, H, Hkv, hs, pos0, 1.0f);
}

void ad_rope_backward(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int H,
                      int Hkv, int hs, int pos0) {
    /* The rotation is orthogonal: its gradient is the rotation by the opposite angle. */
    rope_apply(dqkv, cos_t, sin_t, B, T, H, Hkv, hs, pos0, -1.0f);
}

/* ---------------------------------------------------------------- attention */

/* First key position query i attends to: 0, or i - window + 1 with a sliding window. */
static inline int window_start(int i, int window) {
    return window > 0 && i >= window ? i - window + 1 : 0;
}

/* Softmax of row[lo..i] in place (lo = window_start), zeroing row[0..lo) and row[i+1..n):
 * a masked probability is exactly 0, so backward (which reads P at j <= i) needs no mask. */
static inline void causal_softmax_row(float *row, int i, int n, int window) {
    int lo = window_start(i, window);
    for (int j = 0; j < lo; j++) row[j] = 0.0f;
    float mx = row[lo];
    for (int j = lo + 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0.0f;
    for (int j = lo; j <= i; j++) {
        float e = ad_expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int j = lo; j <= i; j++) row[j] *= inv;
    for (int j = i + 1; j < n; j++) row[j] = 0.0f;
}

void ad_attention_forward(float *out, float *att, const float *qkv, int B, int T, int H, int Hkv,
                          int hs, int window) {
    int QKV = (H + 2 * Hkv) * hs, C = H * hs, group = H / Hkv;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(static) if((long)B * H * T * T * hs >= AD_PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / group;
            const float *base = qkv + (size_t)b * T * QKV;
            const float *q = base + h * hs;
            const float *k = base + C + g * hs;
            const float *v = base + C + Hkv * hs + g * hs;
            float *P = att + ((size_t)b * H + h) * T * T;
            float *o = out + (size_t)b * T * C + h * hs;
            for (int i0 = 0; i0 < T; i0 += ATT_BLOCK) {
                int m = T - i0 < ATT_BLOCK ? T - i0 : ATT_BLOCK, kn = i0 + m;
                float *Pb = P + (size_t)i0 * T;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kn, hs, scale,
                            q + (size_t)i0 * QKV, QKV, k, QKV, 0.0f, Pb, T);
                for (int r = 0; r < m; r++) causal_softmax_row(Pb + (size_t)r * T, i0 + r, kn, window);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hs, kn, 1.0f, Pb, T, v,
                            QKV, 0.0f, o + (size_t)i0 * C, C);
            }
        }
}

void ad_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int T, int H, int Hkv, int hs) {
    int QKV = (H + 2 * Hkv) * hs, C = H * hs, group = H / Hkv;
    float scale = 1.0f / sqrtf((float)hs);
    /* One task per (batch, key/value head): the query heads sharing it add into the same dk,
     * dv, so they run in the same task. */
#pragma omp parallel for collapse(2) schedule(static) if((long)B * H * T * T * hs >= AD_PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < Hkv; g++) {
            float *D = scratch + (size_t)omp_get_thread_num() * AD_ATT_SCRATCH(T);
            float *Pm = D + (size_t)ATT_BLOCK * T; /* the block of P, zero above the diagonal */
            const float *base = qkv + (size_t)b * T * QKV;
            float *dbase = dqkv + (size_t)b * T * QKV;
            const float *k = base + C + g * hs, *v = base + C + Hkv * hs + g * hs;
            float *dk = dbase + C + g * hs, *dv = dbase + C + Hkv * hs + g * hs;
            for (int t = 0; t < T; t++) {
                memset(dk + (size_t)t * QKV, 0, sizeof(float) * hs);
                memset(dv + (size_t)t * QKV, 0, sizeof(float) * hs);
                for (int h = g * group; h < (g + 1) * group; h++)
                    memset(dbase + (size_t)t * QKV + h * hs, 0, sizeof(float) * hs);
            }
            for (int h = g * group; h < (g + 1) * group; h++) {
                const float *q = base + h * hs;
                float *dq = dbase + h * hs;
                const float *P = att + ((size_t)b * H + h) * T * T;
                const float *dO = dout + (size_t)b * T * C + h * hs;
                for (int i0 = 0; i0 < T; i0 += ATT_BLOCK) {
                    int m = T - i0 < ATT_BLOCK ? T - i0 : ATT_BLOCK, kn = i0 + m;
                    const float *Pb = P + (size_t)i0 * T;
                    /* dP = dO V^T (m, kn) */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kn, hs, 1.0f,
                                dO + (size_t)i0 * C, C, v, QKV, 0.0f, D, kn);
                    /* dV += P^T dO (kn, hs), with P masked so only j <= i is read */
                    for (int r = 0; r < m; r++) {
                        int i = i0 + r;
                        memcpy(Pm + (size_t)r * kn, Pb + (size_t)r * T, sizeof(float) * (i + 1));
                        memset(Pm + (size_t)r * kn + i + 1, 0, sizeof(float) * (kn - i - 1));
                    }
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kn, hs, m, 1.0f, Pm, kn,
                                dO + (size_t)i0 * C, C, 1.0f, dv, QKV);
                    /* dS = P * (dP - rowsum(P * dP)) * scale, zero above the diagonal */
                    for (int r = 0; r < m; r++) {
                        int i = i0 + r;
                        const float *p = Pb + (size_t)r * T;
                        float *d = D + (size_t)r * kn;
                        float dot = 0.0f;
                        for (int j = 0; j <= i; j++) dot += p[j] * d[j];
                        for (int j = 0; j <= i; j++) d[j] = p[j] * (d[j] - dot) * scale;
                        for (int j = i + 1; j < kn; j++) d[j] = 0.0f;
                    }
                    /* dQ += dS K (m, hs);  dK += dS^T Q (kn, hs) */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hs, kn, 1.0f, D, kn,
                                k, QKV, 1.0f, dq + (size_t)i0 * QKV, QKV);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kn, hs, m, 1.0f, D, kn,
                                q + (size_t)i0 * QKV, QKV, 1.0f, dk, QKV);
                }
            }
        }
}

/* ---------------------------------------------------------------- activations */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

void ad_gelu_forward(float *out, const float *inp, long n) {
#pragma omp parallel for schedule(static) if(n >= AD_PAR_MIN)
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_K * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + ad_tanhf(u));
    }
}

void ad_gelu_backward(float *dinp, const float *dout, const float *inp, long n) {
#pragma omp parallel for schedule(static) if(n >= AD_PAR_MIN)
    for (long i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_K * (x + 0.044715f * x * x * x);
        float th = ad_tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        float g = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
        dinp[i] = g * dout[i];
    }
}

void ad_swiglu_forward(float *out, const float *inp, int N, int F) {
#pragma omp parallel for schedule(static) if((long)N * F >= AD_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *gate = inp + (size_t)i * 2 * F, *up = gate + F;
        float *o = out + (size_t)i * F;
        for (int j = 0; j < F; j++) {
            float a = gate[j];
            float sig = 1.0f / (1.0f + ad_expf(-a));
            o[j] = a * sig * up[j];
        }
    }
}

void ad_swiglu_backward(float *dinp, const float *dout, const float *inp, int N, int F) {
#pragma omp parallel for schedule(static) if((long)N * F >= AD_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *gate = inp + (size_t)i * 2 * F, *up = gate + F;
        const float *d = dout + (size_t)i * F;
        float *dgate = dinp + (size_t)i * 2 * F, *dup = dgate + F;
        for (int j = 0; j < F; j++) {
            float a = gate[j];
            float sig = 1.0f / (1.0f + ad_expf(-a));
            float silu = a * sig;
            dup[j] = d[j] * silu;
            dgate[j] = d[j] * up[j] * sig * (1.0f + a * (1.0f - sig));
        }
    }
}

void ad_softmax_rows(float *out, const float *x, int N, int V) {
#pragma omp parallel for schedule(static) if((long)N * V >= AD_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *r = x + (size_t)i * V;
        float *o = out + (size_t)i * V;
        float mx = r[0];
        for (int j = 1; j < V; j++) mx = r[j] > mx ? r[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < V; j++) {
            o[j] = ad_expf(r[j] - mx);
            sum += o[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < V; j++) o[j] *= inv;
    }
}

/* ---------------------------------------------------------------- naive twins */

void ad_matmul_forward_naive(float *out, const float *inp, const float *w, const float *b, int N,
                             int C, int OC, int accumulate) {
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++) s += (double)inp[(size_t)i * C + c] * w[(size_t)o * C + c];
            if (accumulate)
                out[(size_t)i * OC + o] += (float)s;
            else
                out[(size_t)i * OC + o] = (float)s;
        }
}

void ad_matmul_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, int N, int C, int OC) {
    if (dinp)
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++) {
                double s = 0.0;
                for (int o = 0; o < OC; o++) s += (double)dout[(size_t)i * OC + o] * w[(size_t)o * C + c];
                dinp[(size_t)i * C + c] = (float)s;
            }
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int i = 0; i < N; i++) s += (double)dout[(size_t)i * OC + o] * inp[(size_t)i * C + c];
            dw[(size_t)o * C + c] += (float)s;
        }
    if (db)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int i = 0; i < N; i++) s += dout[(size_t)i * OC + o];
            db[o] += (float)s;
        }
}

void ad_attention_forward_naive(float *out, float *att, const float *qkv, int B, int T, int H,
                                int Hkv, int hs, int window) {
    int QKV = (H + 2 * Hkv) * hs, C = H * hs, group = H / Hkv;
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / group;
            float *P = att + ((size_t)b * H + h) * T * T;
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * QKV + h * hs;
                double mx = -INFINITY, sum = 0.0;
                int lo = window > 0 && i >= window ? i - window + 1 : 0;
                for (int j = 0; j < lo; j++) P[(size_t)i * T + j] = 0.0f;
                for (int j = lo; j <= i; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * QKV + C + g * hs;
                    double s = 0.0;
                    for (int d = 0; d < hs; d++) s += (double)q[d] * k[d];
                    P[(size_t)i * T + j] = (float)(s * scale);
                    if (s * scale > mx) mx = s * scale;
                }
                for (int j = lo; j <= i; j++) sum += exp(P[(size_t)i * T + j] - mx);
                for (int j = lo; j <= i; j++)
                    P[(size_t)i * T + j] = (float)(exp(P[(size_t)i * T + j] - mx) / sum);
                float *o = out + ((size_t)b * T + i) * C + h * hs;
                for (int d = 0; d < hs; d++) {
                    double s = 0.0;
                    for (int j = lo; j <= i; j++)
                        s += (double)P[(size_t)i * T + j] *
                             qkv[((size_t)b * T + j) * QKV + C + Hkv * hs + g * hs + d];
                    o[d] = (float)s;
                }
            }
        }
}

void ad_attention_backward_naive(float *dqkv, const float *dout, const float *qkv,
                                 const float *att, int B, int T, int H, int Hkv, int hs) {
    int QKV = (H + 2 * Hkv) * hs, C = H * hs, group = H / Hkv;
    double scale = 1.0 / sqrt((double)hs);
    if (T > 4096) abort(); /* the reference keeps one row of dP on the stack */
    memset(dqkv, 0, sizeof(float) * (size_t)B * T * QKV);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / group;
            const float *P = att + ((size_t)b * H + h) * T * T;
            for (int i = 0; i < T; i++) {
                const float *dO = dout + ((size_t)b * T + i) * C + h * hs;
                const float *q = qkv + ((size_t)b * T + i) * QKV + h * hs;
                float *dq = dqkv + ((size_t)b * T + i) * QKV + h * hs;
                double dP[4096];
                double dot = 0.0;
                for (int j = 0; j <= i; j++) {
                    const float *v = qkv + ((size_t)b * T + j) * QKV + C + Hkv * hs + g * hs;
                    float *dv = dqkv + ((size_t)b * T + j) * QKV + C + Hkv * hs + g * hs;
                    double s = 0.0;
                    for (int d = 0; d < hs; d++) {
                        s += (double)dO[d] * v[d];
                        dv[d] += P[(size_t)i * T + j] * dO[d];
                    }
                    dP[j] = s;
                    dot += s * P[(size_t)i * T + j];
                }
                for (int j = 0; j <= i; j++) {
                    double ds = P[(size_t)i * T + j] * (dP[j] - dot) * scale;
                    const float *k = qkv + ((size_t)b * T + j) * QKV + C + g * hs;
                    float *dk = dqkv + ((size_t)b * T + j) * QKV + C + g * hs;
                    for (int d = 0; d < hs; d++) {
                        dq[d] += (float)(ds * k[d]);
                        dk[d] += (float)(ds * q[d]);
                    }
                }
            }
        }
}
