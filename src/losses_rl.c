/* losses_rl.c: the GRPO / RLOO objective (rl.h): group-relative advantages and the clipped
 * per-token surrogate with its k3 KL term, their derivative by per-token log-probability, and
 * TRL's metrics. Used by the grpo round method (method_grpo.c); knows nothing of models,
 * sampling or the logits (preference.h's token bridges turn log-probabilities into those). */
#include "autodidact/rl.h"

#include <math.h>
#include <string.h>

#define AD_RL_STD_EPS 1e-4 /* TRL's advantages / (std + 1e-4) */

long ad_rl_advantages(double *adv, const double *reward, long n_groups, int G,
                      AdRlBaseline baseline, int scale_std) {
    AD_ASSERT(G >= 2);
    long flat = 0;
    for (long g = 0; g < n_groups; g++) {
        const double *r = reward + g * G;
        double *a = adv + g * G, sum = 0.0, ss = 0.0;
        int equal = 1;
        for (int i = 0; i < G; i++) sum += r[i], equal &= r[i] == r[0];
        double mean = sum / G;
        for (int i = 0; i < G; i++) ss += (r[i] - mean) * (r[i] - mean);
        double scale = scale_std ? 1.0 / (sqrt(ss / (G - 1)) + AD_RL_STD_EPS) : 1.0;
        for (int i = 0; i < G; i++) {
            double base = baseline == AD_RL_BASELINE_RLOO ? (sum - r[i]) / (G - 1) : mean;
            a[i] = equal ? 0.0 : (r[i] - base) * scale;
        }
        flat += equal;
    }
    return flat;
}

const char *ad_rl_norm_name(AdRlNorm k) {
    static const char *names[] = {"sequence", "token", "constant"};
    return (unsigned)k < 3 ? names[k] : "?";
}

int ad_rl_norm_parse(const char *s) {
    for (int k = 0; k < 3; k++)
        if (!strcmp(s, ad_rl_norm_name((AdRlNorm)k))) return k;
    return -1;
}

double ad_rl_loss(double *d_logp, AdRlMetrics *metrics, const AdRlLoss *L, const double *logp,
                  const double *old, const double *ref, const int *targets, const double *adv,
                  int B, int T, long n_seq_total, long n_tok_total) {
    AD_ASSERT(L->beta == 0.0 || ref != NULL);
    double lo = 1.0 - L->epsilon, hi = 1.0 + (L->epsilon_high > 0 ? L->epsilon_high : L->epsilon);
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const int *tg = targets + (size_t)b * T;
        long len = 0;
        for (int t = 0; t < T; t++) len += tg[t] >= 0;
        double w = 0.0;
        if (L->norm == AD_RL_NORM_SEQUENCE) w = len ? 1.0 / ((double)len * n_seq_total) : 0.0;
        else if (L->norm == AD_RL_NORM_TOKEN) w = n_tok_total ? 1.0 / (double)n_tok_total : 0.0;
        else w = 1.0 / ((double)n_seq_total * (L->max_len > 0 ? L->max_len : 1));
        double A = adv[b];
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (tg[t] < 0) {
                if (d_logp) d_logp[i] = 0.0;
                continue;
            }
            double r = exp(logp[i] - old[i]);
            int low = r < lo && A < 0, high = r > hi && A > 0; /* the clipped term binds */
            double c = low ? lo : high ? hi : r;
            double l = -c * A, d = low || high ? 0.0 : -r * A, kl = 0.0;
            if (ref) {
                double x = ref[i] - logp[i];
                kl = exp(x) - x - 1.0;
                if (L->beta != 0.0) l += L->beta * kl, d += L->beta * (1.0 - exp(x));
            }
            total += w * l;
            if (d_logp) d_logp[i] = w * d;
            if (metrics) {
                metrics->kl += kl;
                metrics->clip_low += low;
                metrics->clip_high += high;
                metrics->ratio += r;
                metrics->tokens++;
            }
        }
    }
    if (metrics) metrics->loss += total;
    return total;
}
