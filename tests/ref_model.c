/* ref_model.c: double-precision reference of the transformer in docs/MODEL.md, written
 * from the document alone, so that test_model can compare the real model's logits, loss
 * and gradients against it. Slow on purpose: plain loops, one sequence at a time. */
#include "ref_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Aborts on allocation failure: this is test code. */
static double *ref_zeros(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) {
        fprintf(stderr, "ref_model: out of memory (%zu doubles)\n", n);
        abort();
    }
    return p;
}

void ref_layout(const AdModelConfig *c, RefLayout *lay) {
    size_t V = (size_t)c->vocab_size, C = (size_t)c->d_model, L = (size_t)c->n_layer;
    size_t hs = C / (size_t)c->n_head;
    size_t QKV = ((size_t)c->n_head + 2 * (size_t)c->n_kv_head) * hs;
    size_t F = (size_t)c->d_ff, Ffc = c->mlp == AD_MLP_SWIGLU ? 2 * F : F;
    size_t maxT = (size_t)c->max_seq_len;
    int ln_bias = c->norm == AD_NORM_LAYERNORM && c->bias;
    int bias = c->bias != 0;

    static const char *names[AD_P_COUNT] = {
        "wte",       "wpe",    "ln1_w",    "ln1_b",    "qkv_w",  "qkv_b",
        "attproj_w", "attproj_b", "ln2_w", "ln2_b",    "fc_w",   "fc_b",
        "fcproj_w",  "fcproj_b", "lnf_w",  "lnf_b",    "lm_head"};
    size_t size[AD_P_COUNT];
    size[AD_P_WTE] = V * C;
    size[AD_P_WPE] = c->pos == AD_POS_LEARNED ? maxT * C : 0;
    size[AD_P_LN1W] = L * C;
    size[AD_P_LN1B] = ln_bias ? L * C : 0;
    size[AD_P_QKVW] = L * QKV * C;
    size[AD_P_QKVB] = bias || c->qkv_bias ? L * QKV : 0;
    size[AD_P_ATTPROJW] = L * C * C;
    size[AD_P_ATTPROJB] = bias ? L * C : 0;
    size[AD_P_LN2W] = L * C;
    size[AD_P_LN2B] = ln_bias ? L * C : 0;
    size[AD_P_FCW] = L * Ffc * C;
    size[AD_P_FCB] = bias ? L * Ffc : 0;
    size[AD_P_FCPROJW] = L * C * F;
    size[AD_P_FCPROJB] = bias ? L * C : 0;
    size[AD_P_LNFW] = C;
    size[AD_P_LNFB] = ln_bias ? C : 0;
    size[AD_P_LM_HEAD] = c->tied ? 0 : V * C;

    /* shapes as in the table; a per-layer tensor carries the leading L */
    int iV = c->vocab_size, iC = c->d_model, iL = c->n_layer, iT = c->max_seq_len;
    int iQ = (int)QKV, iF = c->d_ff, iFfc = (int)Ffc;
    const int shp[AD_P_COUNT][3] = {
        {iV, iC, 0}, {iT, iC, 0}, {iL, iC, 0},  {iL, iC, 0},   {iL, iQ, iC}, {iL, iQ, 0},
        {iL, iC, iC}, {iL, iC, 0}, {iL, iC, 0}, {iL, iC, 0},  {iL, iFfc, iC}, {iL, iFfc, 0},
        {iL, iC, iF}, {iL, iC, 0}, {iC, 0, 0},  {iC, 0, 0},   {iV, iC, 0}};
    size_t off = 0;
    for (int i = 0; i < AD_P_COUNT; i++) {
        lay->ndim[i] = shp[i][2] ? 3 : shp[i][1] ? 2 : 1;
        for (int d = 0; d < 3; d++) lay->shape[i][d] = shp[i][d];
        lay->name[i] = names[i];
        lay->offset[i] = off;
        lay->size[i] = size[i];
        off += size[i];
    }
    lay->total = off;
}

/* out (T, C) = norm(x (T, C)) * w + b, with b NULL when absent. */
static void ref_norm(double *out, const double *x, const double *w, const double *b, int T,
                     int C, int rms, double eps) {
    for (int t = 0; t < T; t++) {
        const double *xt = x + (size_t)t * C;
        double *ot = out + (size_t)t * C;
        if (rms) {
            double ms = 0;
            for (int i = 0; i < C; i++) ms += xt[i] * xt[i];
            ms /= C;
            double r = 1.0 / sqrt(ms + eps);
            for (int i = 0; i < C; i++) ot[i] = xt[i] * r * w[i];
        } else {
            double mean = 0, var = 0;
            for (int i = 0; i < C; i++) mean += xt[i];
            mean /= C;
            for (int i = 0; i < C; i++) var += (xt[i] - mean) * (xt[i] - mean);
            var /= C;
            double r = 1.0 / sqrt(var + eps);
            for (int i = 0; i < C; i++) ot[i] = (xt[i] - mean) * r * w[i] + (b ? b[i] : 0.0);
        }
    }
}

/* out (T, OC) = in (T, IC) W^T + b, with W stored (OC, IC) and b NULL when absent. */
static void ref_linear(double *out, const double *in, const double *W, const double *b, int T,
                       int IC, int OC) {
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < IC; i++) s += in[(size_t)t * IC + i] * W[(size_t)o * IC + i];
            out[(size_t)t * OC + o] = s;
        }
}

/* The frequency of pair j: theta^(-2j/hs), with llama3 scaling as docs/MODEL.md states it. */
static double ref_rope_freq(const AdModelConfig *c, int j, int hs) {
    double f = pow(c->rope_theta, -2.0 * j / hs);
    if (c->rope_scaling != AD_ROPE_SCALING_LLAMA3) return f;
    double wavelen = 2 * 3.14159265358979323846 / f, orig = c->rope_original_max_pos;
    double lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor, k = c->rope_factor;
    if (wavelen < orig / hi) return f;          /* high frequencies: unchanged */
    if (wavelen > orig / lo) return f / k;      /* low frequencies: divided by the factor */
    double s = (orig / wavelen - lo) / (hi - lo); /* in between: interpolated */
    return (1 - s) * f / k + s * f;
}

/* Rotates one head vector v (hs) at position t: pair (2j, 2j+1) by angle t*f_j. The
 * model rounds f_j to float (docs/MODEL.md); so does this reference. */
static void ref_rope(const AdModelConfig *c, double *v, int t, int hs) {
    for (int j = 0; j < hs / 2; j++) {
        double ang = t * (double)(float)ref_rope_freq(c, j, hs);
        double cs = cos(ang), sn = sin(ang);
        double a = v[2 * j], b = v[2 * j + 1];
        v[2 * j] = a * cs - b * sn;
        v[2 * j + 1] = a * sn + b * cs;
    }
}

double ref_forward_loss_d(const AdModelConfig *c, const double *p, const int *tokens,
                          const int *targets, int B, int T, double *logits_out) {
    RefLayout lay;
    ref_layout(c, &lay);
    const int V = c->vocab_size, C = c->d_model, L = c->n_layer, H = c->n_head;
    const int Hkv = c->n_kv_head, hs = C / H, QKV = (H + 2 * Hkv) * hs, F = c->d_ff;
    const int Ffc = c->mlp == AD_MLP_SWIGLU ? 2 * F : F;
    const int rms = c->norm == AD_NORM_RMSNORM;
    const double eps = c->norm_eps;
#define P(id) (lay.size[id] ? p + lay.offset[id] : NULL)
    const double *wte = P(AD_P_WTE), *wpe = P(AD_P_WPE);
    const double *wcls = c->tied ? wte : P(AD_P_LM_HEAD);

    double *x = ref_zeros((size_t)T * C), *h = ref_zeros((size_t)T * C);
    double *qkv = ref_zeros((size_t)T * QKV), *y = ref_zeros((size_t)T * C);
    double *tmp = ref_zeros((size_t)T * C), *f = ref_zeros((size_t)T * Ffc);
    double *act = ref_zeros((size_t)T * F), *att = ref_zeros((size_t)T);
    double *logit = ref_zeros((size_t)V);
    double loss_sum = 0;
    long count = 0;

    for (int b = 0; b < B; b++) {
        const int *tok = tokens + (size_t)b * T;
        for (int t = 0; t < T; t++)
            for (int i = 0; i < C; i++)
                x[t * C + i] = wte[(size_t)tok[t] * C + i] +
                               (c->pos == AD_POS_LEARNED ? wpe[(size_t)t * C + i] : 0.0);

        for (int l = 0; l < L; l++) {
            const double *ln1w = P(AD_P_LN1W) + (size_t)l * C;
            const double *ln1b = lay.size[AD_P_LN1B] ? P(AD_P_LN1B) + (size_t)l * C : NULL;
            const double *qkvw = P(AD_P_QKVW) + (size_t)l * QKV * C;
            const double *qkvb = lay.size[AD_P_QKVB] ? P(AD_P_QKVB) + (size_t)l * QKV : NULL;
            const double *projw = P(AD_P_ATTPROJW) + (size_t)l * C * C;
            const double *projb = lay.size[AD_P_ATTPROJB] ? P(AD_P_ATTPROJB) + (size_t)l * C : NULL;
            const double *ln2w = P(AD_P_LN2W) + (size_t)l * C;
            const double *ln2b = lay.size[AD_P_LN2B] ? P(AD_P_LN2B) + (size_t)l * C : NULL;
            const double *fcw = P(AD_P_FCW) + (size_t)l * Ffc * C;
            const double *fcb = lay.size[AD_P_FCB] ? P(AD_P_FCB) + (size_t)l * Ffc : NULL;
            const double *fpw = P(AD_P_FCPROJW) + (size_t)l * C * F;
            const double *fpb = lay.size[AD_P_FCPROJB] ? P(AD_P_FCPROJB) + (size_t)l * C : NULL;

            /* attention block: x = x + attn(norm1(x)) */
            ref_norm(h, x, ln1w, ln1b, T, C, rms, eps);
            ref_linear(qkv, h, qkvw, qkvb, T, C, QKV);
            if (c->pos == AD_POS_ROPE)
                for (int t = 0; t < T; t++) {
                    for (int i = 0; i < H; i++) ref_rope(c, qkv + t * QKV + i * hs, t, hs);
                    for (int g = 0; g < Hkv; g++) ref_rope(c, qkv + t * QKV + (H + g) * hs, t, hs);
                }
            for (int i = 0; i < H; i++) {
                int g = i / (H / Hkv);
                for (int t = 0; t < T; t++) {
                    const double *q = qkv + t * QKV + i * hs;
                    double mx = -INFINITY, z = 0;
                    /* sliding window W: only positions s > t - W */
                    int s0 = c->sliding_window > 0 && t >= c->sliding_window ? t - c->sliding_window + 1 : 0;
                    for (int s = s0; s <= t; s++) {
                        const double *k = qkv + s * QKV + (H + g) * hs;
                        double d = 0;
                        for (int e = 0; e < hs; e++) d += q[e] * k[e];
                        att[s] = d / sqrt((double)hs);
                        if (att[s] > mx) mx = att[s];
                    }
                    for (int s = s0; s <= t; s++) z += (att[s] = exp(att[s] - mx));
                    for (int e = 0; e < hs; e++) {
                        double acc = 0;
                        for (int s = s0; s <= t; s++)
                            acc += att[s] / z * qkv[s * QKV + (H + Hkv + g) * hs + e];
                        y[t * C + i * hs + e] = acc;
                    }
                }
            }
            ref_linear(tmp, y, projw, projb, T, C, C);
            for (int i = 0; i < T * C; i++) x[i] += tmp[i];

            /* MLP block: x = x + mlp(norm2(x)) */
            ref_norm(h, x, ln2w, ln2b, T, C, rms, eps);
            ref_linear(f, h, fcw, fcb, T, C, Ffc);
            for (int t = 0; t < T; t++)
                for (int j = 0; j < F; j++) {
                    double u = f[t * Ffc + j];
                    if (c->mlp == AD_MLP_GELU)
                        act[t * F + j] =
                            0.5 * u * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (u + 0.044715 * u * u * u)));
                    else
                        act[t * F + j] = u / (1.0 + exp(-u)) * f[t * Ffc + F + j];
                }
            ref_linear(tmp, act, fpw, fpb, T, F, C);
            for (int i = 0; i < T * C; i++) x[i] += tmp[i];
        }

        ref_norm(h, x, P(AD_P_LNFW), P(AD_P_LNFB), T, C, rms, eps);
        for (int t = 0; t < T; t++) {
            ref_linear(logit, h + t * C, wcls, NULL, 1, C, V);
            if (logits_out) memcpy(logits_out + ((size_t)b * T + t) * V, logit, V * sizeof(double));
            int y_t = targets[(size_t)b * T + t];
            if (y_t < 0) continue;
            double mx = -INFINITY, z = 0;
            for (int v = 0; v < V; v++) mx = logit[v] > mx ? logit[v] : mx;
            for (int v = 0; v < V; v++) z += exp(logit[v] - mx);
            loss_sum += log(z) + mx - logit[y_t];
            count++;
        }
    }
#undef P
    free(x); free(h); free(qkv); free(y); free(tmp); free(f); free(act); free(att); free(logit);
    return count ? loss_sum / count : 0.0;
}

double ref_forward_loss(const AdModelConfig *c, const float *params, const int *tokens,
                        const int *targets, int B, int T, double *logits_out) {
    RefLayout lay;
    ref_layout(c, &lay);
    double *p = ref_zeros(lay.total);
    for (size_t i = 0; i < lay.total; i++) p[i] = params[i];
    double loss = ref_forward_loss_d(c, p, tokens, targets, B, T, logits_out);
    free(p);
    return loss;
}

/* Each entry is independent of the others, so the loop splits over threads with a
 * private copy of the parameters and the result does not depend on the thread count. */
void ref_grad_fd(const AdModelConfig *c, const float *params, const int *tokens,
                 const int *targets, int B, int T, double step, double *grad_out) {
    RefLayout lay;
    ref_layout(c, &lay);
    const long n = (long)lay.total;
#pragma omp parallel
    {
        double *p = ref_zeros(lay.total);
        for (size_t i = 0; i < lay.total; i++) p[i] = params[i];
#pragma omp for schedule(dynamic, 8)
        for (long i = 0; i < n; i++) {
            double p0 = p[i], hi = p0 + step, lo = p0 - step;
            p[i] = hi;
            double lp = ref_forward_loss_d(c, p, tokens, targets, B, T, NULL);
            p[i] = lo;
            double lm = ref_forward_loss_d(c, p, tokens, targets, B, T, NULL);
            p[i] = p0;
            grad_out[i] = (lp - lm) / (hi - lo);
        }
        free(p);
    }
}
