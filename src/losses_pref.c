/* losses_pref.c: the DPO family (preference.h): pair losses on sequence log-probabilities
 * with their derivatives, TRL's metrics, and the bridge to token logits used by the
 * preference round method (method_dpo.c). Works on sums the caller computed; no model,
 * no sampling, no allocation. */
#include "autodidact/preference.h"

#include <math.h>
#include <string.h>

#include "autodidact/kernels.h"
#include "fastmath.h"

const char *ad_pref_name(AdPrefKind k) {
    static const char *names[] = {"dpo", "ipo", "simpo"};
    return (unsigned)k < 3 ? names[k] : "?";
}

int ad_pref_parse(const char *s) {
    for (int k = 0; k < 3; k++)
        if (!strcmp(s, ad_pref_name((AdPrefKind)k))) return k;
    return -1;
}

/* log(sigmoid(x)) without overflow */
static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

double ad_pref_loss(double *d_pc, double *d_pr, AdPrefMetrics *metrics, const AdPrefLoss *L,
                    const double *pc, const double *pr, const int *lc, const int *lr,
                    const double *rc, const double *rr, int n, long n_total,
                    long chosen_tokens_total) {
    double b = L->beta, e = L->label_smoothing, total = 0.0;
    double inv_n = n_total > 0 ? 1.0 / (double)n_total : 0.0;
    double inv_tok = chosen_tokens_total > 0 ? 1.0 / (double)chosen_tokens_total : 0.0;
    for (int i = 0; i < n; i++) {
        /* x_c, x_r: the log-probabilities the loss sees (sums, or per-token means) */
        double sc = 1.0, sr = 1.0; /* d x / d p */
        if (L->kind != AD_PREF_DPO) sc = 1.0 / lc[i], sr = 1.0 / lr[i];
        double xc = pc[i] * sc, xr = pr[i] * sr;
        double yc = L->kind == AD_PREF_SIMPO ? 0.0 : rc[i] * sc;
        double yr = L->kind == AD_PREF_SIMPO ? 0.0 : rr[i] * sr;
        double loss, dz; /* dz = d loss / d (xc - xr) */
        if (L->kind == AD_PREF_IPO) {
            double h = (xc - yc) - (xr - yr) - 1.0 / (2.0 * b);
            loss = h * h;
            dz = 2.0 * h;
        } else {
            double z = b * ((xc - yc) - (xr - yr)) - (L->kind == AD_PREF_SIMPO ? L->gamma : 0.0);
            loss = -(1.0 - e) * log_sigmoid(z) - e * log_sigmoid(-z);
            dz = b * (-(1.0 - e) * sigmoid(-z) + e * sigmoid(z));
        }
        double sft = -L->sft_alpha * inv_tok; /* d (alpha * mean NLL) / d pc */
        total += loss * inv_n - L->sft_alpha * pc[i] * inv_tok;
        if (d_pc) d_pc[i] = dz * sc * inv_n + sft;
        if (d_pr) d_pr[i] = -dz * sr * inv_n;
        if (metrics) {
            double bc = b * (xc - yc), br = b * (xr - yr);
            metrics->rewards_chosen += bc;
            metrics->rewards_rejected += br;
            metrics->rewards_margins += bc - br;
            metrics->rewards_accuracies += bc > br;
            metrics->logps_chosen += xc;
            metrics->logps_rejected += xr;
            metrics->n++;
        }
    }
    if (metrics) metrics->loss += total;
    return total;
}

/* log-sum-exp of one row of logits */
static float row_lse(const float *x, int V) {
    float mx = x[0];
    for (int j = 1; j < V; j++) mx = x[j] > mx ? x[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < V; j++) sum += ad_expf(x[j] - mx);
    return mx + logf(sum);
}

void ad_pref_seq_logps(double *logp, int *count, const float *logits, const int *targets, int B,
                       int T, int V) {
#pragma omp parallel for schedule(static) if ((long)B * T * V >= AD_PAR_MIN)
    for (int b = 0; b < B; b++) {
        double s = 0.0;
        int k = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            int y = targets[i];
            if (y < 0) continue;
            const float *x = logits + i * V;
            s += (double)(x[y] - row_lse(x, V));
            k++;
        }
        logp[b] = s;
        if (count) count[b] = k;
    }
}

/* dlogits (B, T, V) = g_i (onehot(target) - softmax) at unmasked positions i, with
 * g_i = d[i / T] (per_token 0) or d[i] (per_token 1); zero elsewhere. */
static void dlogits_of(float *dlogits, const float *logits, const int *targets, const double *d,
                       int per_token, int B, int T, int V) {
#pragma omp parallel for schedule(static) if ((long)B * T * V >= AD_PAR_MIN)
    for (long i = 0; i < (long)B * T; i++) {
        float *dl = dlogits + i * V;
        int y = targets[i];
        if (y < 0) {
            memset(dl, 0, sizeof(float) * V);
            continue;
        }
        const float *x = logits + i * V;
        float lse = row_lse(x, V), g = (float)d[per_token ? i : i / T];
        for (int j = 0; j < V; j++) dl[j] = -g * ad_expf(x[j] - lse);
        dl[y] += g;
    }
}

void ad_pref_seq_dlogits(float *dlogits, const float *logits, const int *targets,
                         const double *d_seq, int B, int T, int V) {
    dlogits_of(dlogits, logits, targets, d_seq, 0, B, T, V);
}

void ad_pref_token_dlogits(float *dlogits, const float *logits, const int *targets,
                           const double *d_tok, int B, int T, int V) {
    dlogits_of(dlogits, logits, targets, d_tok, 1, B, T, V);
}

void ad_pref_token_logps(double *logp, double *entropy, const float *logits, const int *targets,
                         int B, int T, int V) {
#pragma omp parallel for schedule(static) if ((long)B * T * V >= AD_PAR_MIN)
    for (long i = 0; i < (long)B * T; i++) {
        int y = targets[i];
        if (y < 0) {
            logp[i] = 0.0;
            if (entropy) entropy[i] = 0.0;
            continue;
        }
        const float *x = logits + i * V;
        float lse = row_lse(x, V);
        logp[i] = (double)(x[y] - lse);
        if (entropy) {
            double h = 0.0;
            for (int j = 0; j < V; j++) {
                double lq = (double)(x[j] - lse);
                h -= exp(lq) * lq;
            }
            entropy[i] = h;
        }
    }
}
