/* kernels.c: the transformer's forward and backward ops (see kernels.h). Matrix
 * products are cblas_sgemm calls; elementwise and row loops are OpenMP-parallel over
 * disjoint outputs. Naive twins at the end are the test references. No allocation,
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

/* ---------------------------------------------------------------- RoPE */

void ad_rope_tables(float *cos_t, float *sin_t, int maxT, int hs, float theta) {
    int half = hs / 2;
    for (int t = 0; t < maxT; t++)
        for (int j = 0; j < half; j++) {
            double freq = pow((double)theta, -2.0 * j / hs);
            double a = (double)t * (double)(float)freq;
            cos_t[(size_t)t * half + j] = (float)cos(a);
            sin_t[(size_t)t * half + j] = (float)sin(a);
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

/* Softmax of row[0..i] in place, zeroing row[i+1..n). */
static inline void causal_softmax_row(float *row, int i, int n) {
    float mx = row[0];
    for (int j = 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j <= i; j++) {
        float e = ad_expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int j = 0; j <= i; j++) row[j] *= inv;
    for (int j = i + 1; j < n; j++) row[j] = 0.0f;
}

void ad_attention_forward(float *out, float *att, const float *qkv, int B, int T, int H, int Hkv,
                          int hs) {
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
                for (int r = 0; r < m; r++) causal_softmax_row(Pb + (size_t)r * T, i0 + r, kn);
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
                                int Hkv, int hs) {
    int QKV = (H + 2 * Hkv) * hs, C = H * hs, group = H / Hkv;
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / group;
            float *P = att + ((size_t)b * H + h) * T * T;
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * QKV + h * hs;
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j <= i; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * QKV + C + g * hs;
                    double s = 0.0;
                    for (int d = 0; d < hs; d++) s += (double)q[d] * k[d];
                    P[(size_t)i * T + j] = (float)(s * scale);
                    if (s * scale > mx) mx = s * scale;
                }
                for (int j = 0; j <= i; j++) sum += exp(P[(size_t)i * T + j] - mx);
                for (int j = 0; j <= i; j++)
                    P[(size_t)i * T + j] = (float)(exp(P[(size_t)i * T + j] - mx) / sum);
                float *o = out + ((size_t)b * T + i) * C + h * hs;
                for (int d = 0; d < hs; d++) {
                    double s = 0.0;
                    for (int j = 0; j <= i; j++)
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
