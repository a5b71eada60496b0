/* losses.c: token losses on logits: hard-label cross-entropy (SFT) and the distillation
 * divergences between teacher and student softmaxes (forward/reverse KL, JSD, TVD, skew KL),
 * each giving the summed loss and dlogits scaled by 1/(unmasked tokens of the accumulated
 * batch); the training loop calls them after the forward pass. Rows are OpenMP-parallel;
 * sums are combined in a fixed order so results do not depend on thread timing. No
 * sampling, no allocation, no teacher gradient. */
#include "autodidact/losses.h"
#include "autodidact/kernels.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include <omp.h>

#include "fastmath.h"

#define MAX_THREADS 256

long ad_count_targets(const int *targets, long n) {
    long k = 0;
    for (long i = 0; i < n; i++) k += targets[i] >= 0;
    return k;
}

double ad_loss_ce(float *dlogits, float *token_loss, const float *logits, const int *targets,
                  int N, int V, float scale) {
    double partial[MAX_THREADS] = {0};
    int nthreads = 1, want = omp_get_max_threads();
    if (want > MAX_THREADS) want = MAX_THREADS;
#pragma omp parallel num_threads(want) if((long)N * V >= AD_PAR_MIN)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        if (id == 0) nthreads = nt;
        long i0 = (long)N * id / nt, i1 = (long)N * (id + 1) / nt;
        double acc = 0.0;
        for (long i = i0; i < i1; i++) {
            const float *x = logits + i * V;
            int y = targets[i];
            if (y < 0) {
                if (dlogits) memset(dlogits + i * V, 0, sizeof(float) * V);
                if (token_loss) token_loss[i] = 0.0f;
                continue;
            }
            float mx = x[0];
            for (int j = 1; j < V; j++) mx = x[j] > mx ? x[j] : mx;
            float sum = 0.0f;
            for (int j = 0; j < V; j++) sum += ad_expf(x[j] - mx);
            float lse = mx + logf(sum);
            float loss = lse - x[y];
            if (token_loss) token_loss[i] = loss;
            acc += loss;
            if (dlogits) {
                float *d = dlogits + i * V;
                float inv = scale / sum;
                for (int j = 0; j < V; j++) d[j] = ad_expf(x[j] - mx) * inv;
                d[y] -= scale;
            }
        }
        partial[id] = acc;
    }
    double total = 0.0;
    for (int t = 0; t < nthreads; t++) total += partial[t];
    return total;
}

/* ---- Distillation divergences ------------------------------------------------------------
 * Every row is handled in log space: xs = (s - max s) / tau and xt likewise (floats),
 * zs = sum e^xs and zt = sum e^xt (doubles), so log q_j = xs_j - log zs and log p_j =
 * xt_j - log zt stay finite for finite logits even where q_j or p_j underflow. Each loss
 * term is a weight (p_j or q_j, possibly 0) times a finite log ratio, which gives 0 log 0 = 0
 * without a test. Log ratios against a mixture m come from log_mix (log1p/expm1), never
 * from log(m) - log(q), which would cancel when the mixture weight is near 0 or 1.
 * The gradient uses h_j = q_j dL/dq_j: dL/dz_j = (1/tau) (h_j - q_j sum_k h_k), so dL/dq_j
 * itself (p_j / q_j for forward KL) is never formed where q_j underflows. Pass order per
 * row: maxima, normalisers, the loss (storing h in dlogits), then dlogits from h. */

#define LANES 8 /* independent partial sums: gcc vectorises them, and the order is fixed */

static const char *const loss_names[] = {"sft", "fkl", "rkl", "jsd", "tvd", "skl", "srkl"};
#define N_LOSS_KINDS ((int)(sizeof loss_names / sizeof loss_names[0]))

const char *ad_loss_name(AdLossKind k) {
    return (int)k >= 0 && (int)k < N_LOSS_KINDS ? loss_names[k] : "unknown";
}

int ad_loss_parse(const char *s) {
    if (!s) return -1;
    for (int k = 0; k < N_LOSS_KINDS; k++)
        if (strcmp(s, loss_names[k]) == 0) return k;
    return -1;
}

/* One row's softmax statistics at temperature tau. */
typedef struct {
    const float *s, *t;    /* student and teacher logits (V) */
    int V;
    float ms, mt, inv_tau; /* row maxima; 1/tau */
    double izs, izt;       /* 1/zs, 1/zt: q_j = e^xs_j / zs, p_j = e^xt_j / zt */
    double lz;             /* log zt - log zs, so log p_j - log q_j = xt_j - xs_j - lz */
    double ws, wt;         /* sum_j e^xs_j (xs_j - xt_j), sum_j e^xt_j (xt_j - xs_j) */
} Row;

static inline float scaled(float x, float mx, float inv_tau) { return (x - mx) * inv_tau; }

static float row_max(const float *x, int V) {
    float m[LANES];
    for (int k = 0; k < LANES; k++) m[k] = -INFINITY;
    int j = 0;
    for (; j + LANES <= V; j += LANES)
        for (int k = 0; k < LANES; k++) m[k] = x[j + k] > m[k] ? x[j + k] : m[k];
    for (int k = 0; j < V; j++, k++) m[k] = x[j] > m[k] ? x[j] : m[k];
    float mx = m[0];
    for (int k = 1; k < LANES; k++) mx = m[k] > mx ? m[k] : mx;
    return mx;
}

static inline void stats_add(double *zs, double *zt, double *ws, double *wt, const Row *r,
                             int j) {
    float xs = scaled(r->s[j], r->ms, r->inv_tau), xt = scaled(r->t[j], r->mt, r->inv_tau);
    double es = ad_expf(xs), et = ad_expf(xt), dx = (double)xs - (double)xt;
    *zs += es, *zt += et, *ws += es * dx, *wt -= et * dx;
}

/* Fills r's normalisers and first moments: one pass, two exponentials per entry. */
static void row_stats(Row *r) {
    double zs[LANES] = {0}, zt[LANES] = {0}, ws[LANES] = {0}, wt[LANES] = {0};
    int j = 0, V = r->V;
    for (; j + LANES <= V; j += LANES)
        for (int k = 0; k < LANES; k++) stats_add(zs + k, zt + k, ws + k, wt + k, r, j + k);
    for (int k = 0; j < V; j++, k++) stats_add(zs + k, zt + k, ws + k, wt + k, r, j);
    double Zs = 0, Zt = 0, Ws = 0, Wt = 0;
    for (int k = 0; k < LANES; k++) Zs += zs[k], Zt += zt[k], Ws += ws[k], Wt += wt[k];
    r->izs = 1.0 / Zs, r->izt = 1.0 / Zt;
    r->lz = log(Zt) - log(Zs);
    r->ws = Ws, r->wt = Wt;
}

/* log(w e^u + 1 - w) for w in [0, 1] and any u, without overflow, and accurate when
 * w e^u is close to w (u near 0) or w is near 0 or 1. */
static double log_mix(double u, double w) {
    if (u <= 0.0) return log1p(w * expm1(u));
    return u + log1p((1.0 - w) * expm1(-u));
}

/* The per-entry quantities of pass 3: q_j, p_j and d_j = log p_j - log q_j. */
static inline double entry(const Row *r, int j, double *q, double *p) {
    float xs = scaled(r->s[j], r->ms, r->inv_tau), xt = scaled(r->t[j], r->mt, r->inv_tau);
    *q = ad_expf(xs) * r->izs;
    *p = ad_expf(xt) * r->izt;
    return ((double)xt - (double)xs) - r->lz;
}

/* dlogits from h (stored in d by the loss pass): d_j = c (h_j - q_j gbar). */
static void grad_from_h(float *d, const Row *r, double gbar, double c) {
    for (int j = 0; j < r->V; j++) {
        double q = ad_expf(scaled(r->s[j], r->ms, r->inv_tau)) * r->izs;
        d[j] = (float)(c * ((double)d[j] - q * gbar));
    }
}

/* TVD = 1/2 sum |p - q|; h_j = q_j sign(q_j - p_j) / 2 (0 where they are equal). */
static inline void tvd_add(double *a, double *g, float *d, const Row *r, int j) {
    double q, p;
    entry(r, j, &q, &p);
    double h = 0.5 * q * ((q > p) - (q < p));
    *a += fabs(p - q), *g += h;
    if (d) d[j] = (float)h;
}

static inline void tvd_lanes(double *a, double *g, float *d, const Row *r) {
    int j = 0, V = r->V;
    for (; j + LANES <= V; j += LANES)
        for (int k = 0; k < LANES; k++) tvd_add(a + k, g + k, d, r, j + k);
    for (int k = 0; j < V; j++, k++) tvd_add(a + k, g + k, d, r, j);
}

static double tvd_pass(float *d, const Row *r, double *gbar) {
    double a[LANES] = {0}, g[LANES] = {0};
    if (d) /* two inlined copies, so that neither loop tests d */
        tvd_lanes(a, g, d, r);
    else
        tvd_lanes(a, g, NULL, r);
    double L = 0, G = 0;
    for (int k = 0; k < LANES; k++) L += a[k], G += g[k];
    *gbar = G;
    return 0.5 * L;
}

/* JSD(beta), 0 < beta < 1, m = beta p + (1 - beta) q, with A_j = log(m_j / q_j) =
 * log_mix(d_j, beta) and log(m_j / p_j) = A_j - d_j (an exact identity; the subtraction
 * loses only |d_j| ulps). L = -beta sum p (A - d) - (1 - beta) sum q A;
 * h_j = (1 - beta) q_j log(q_j / m_j). */
static double jsd_pass(float *d, const Row *r, double beta, double *gbar) {
    double sp = 0, sq = 0;
    for (int j = 0; j < r->V; j++) {
        double q, p, dj = entry(r, j, &q, &p);
        double A = log_mix(dj, beta);
        sp += p * (A - dj), sq += q * A;
        if (d) d[j] = (float)(-(1.0 - beta) * q * A);
    }
    *gbar = -(1.0 - beta) * sq;
    return -beta * sp - (1.0 - beta) * sq;
}

/* Skew KL(alpha): m = alpha p + (1 - alpha) q, L = sum p log(p / m) with log(m_j / p_j) =
 * log_mix(-d_j, 1 - alpha); h_j = -(1 - alpha) p_j q_j / m_j, which is at most p_j. */
static double skl_pass(float *d, const Row *r, double alpha, double *gbar) {
    double L = 0, g = 0;
    for (int j = 0; j < r->V; j++) {
        double q, p, dj = entry(r, j, &q, &p);
        L -= p * log_mix(-dj, 1.0 - alpha);
        double m = alpha * p + (1.0 - alpha) * q;
        double h = m > 0.0 ? -(1.0 - alpha) * p * q / m : 0.0;
        g += h;
        if (d) d[j] = (float)h;
    }
    *gbar = g;
    return L;
}

/* Skew reverse KL(alpha): m = (1 - alpha) p + alpha q, L = sum q log(q / m) with
 * log(m_j / q_j) = log_mix(d_j, 1 - alpha); h_j = q_j log(q_j / m_j) - alpha q_j^2 / m_j
 * (the constant 1 of dL/dq drops out of h_j - q_j sum h), and q_j^2 / m_j <= q_j / alpha. */
static double srkl_pass(float *d, const Row *r, double alpha, double *gbar) {
    double L = 0, g = 0;
    for (int j = 0; j < r->V; j++) {
        double q, p, dj = entry(r, j, &q, &p);
        double lq = -q * log_mix(dj, 1.0 - alpha);
        double m = (1.0 - alpha) * p + alpha * q;
        double h = lq - (m > 0.0 ? alpha * q * q / m : 0.0);
        L += lq, g += h;
        if (d) d[j] = (float)h;
    }
    *gbar = g;
    return L;
}

/* One unmasked row: returns its divergence and, if d, writes d = c dL/d(student logits)
 * with c = scale / tau. w is beta or alpha. */
static double row_divergence(float *d, const float *s, const float *t, int V, AdLossKind kind,
                             double w, float inv_tau, double c) {
    Row r = {.s = s, .t = t, .V = V, .inv_tau = inv_tau};
    r.ms = row_max(s, V);
    r.mt = row_max(t, V);
    row_stats(&r);
    double L = 0.0, gbar = 0.0;
    switch (kind) {
    case AD_LOSS_FKL: /* sum p (log p - log q); dL/dz = (q - p) / tau */
        L = r.wt * r.izt - r.lz;
        if (d)
            for (int j = 0; j < V; j++) {
                float xs = scaled(s[j], r.ms, inv_tau), xt = scaled(t[j], r.mt, inv_tau);
                d[j] = (float)(c * (ad_expf(xs) * r.izs - ad_expf(xt) * r.izt));
            }
        return L;
    case AD_LOSS_RKL: /* sum q (log q - log p); dL/dz_j = q_j (log q_j - log p_j - L) / tau */
        L = r.ws * r.izs + r.lz;
        if (d) {
            double K = r.lz - L;
            for (int j = 0; j < V; j++) {
                float xs = scaled(s[j], r.ms, inv_tau), xt = scaled(t[j], r.mt, inv_tau);
                double dx = (double)xs - (double)xt;
                d[j] = (float)(c * ad_expf(xs) * r.izs * (dx + K));
            }
        }
        return L;
    case AD_LOSS_TVD: L = tvd_pass(d, &r, &gbar); break;
    case AD_LOSS_JSD: L = jsd_pass(d, &r, w, &gbar); break;
    case AD_LOSS_SKL: L = skl_pass(d, &r, w, &gbar); break;
    case AD_LOSS_SRKL: L = srkl_pass(d, &r, w, &gbar); break;
    default: AD_ASSERT(0 && "not a divergence");
    }
    if (d) grad_from_h(d, &r, gbar, c);
    return L;
}

/* Validates the arguments (programmer errors abort with file:line: the config layer checks
 * user values first), maps JSD at beta = 0 / 1 onto forward / reverse KL, and splits the
 * rows over the threads as ad_loss_ce does. Logits must be finite. */
double ad_loss_divergence(float *dlogits, float *token_loss, const float *student_logits,
                          const float *teacher_logits, const int *targets, int N, int V,
                          AdLossKind kind, float param, float tau, float scale) {
    AD_ASSERT(kind > AD_LOSS_SFT && kind < (AdLossKind)N_LOSS_KINDS);
    AD_ASSERT(tau > 0.0f && isfinite(tau));
    AD_ASSERT(N >= 0 && V >= 1);
    double w = param;
    if (kind == AD_LOSS_JSD || kind == AD_LOSS_SKL || kind == AD_LOSS_SRKL)
        AD_ASSERT(w >= 0.0 && w <= 1.0);
    if (kind == AD_LOSS_JSD && w == 0.0) kind = AD_LOSS_FKL;
    if (kind == AD_LOSS_JSD && w == 1.0) kind = AD_LOSS_RKL;
    float inv_tau = 1.0f / tau;
    double c = (double)scale / tau;

    double partial[MAX_THREADS] = {0};
    int nthreads = 1, want = omp_get_max_threads();
    if (want > MAX_THREADS) want = MAX_THREADS;
#pragma omp parallel num_threads(want) if((long)N * V >= AD_PAR_MIN)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        if (id == 0) nthreads = nt;
        long i0 = (long)N * id / nt, i1 = (long)N * (id + 1) / nt;
        double acc = 0.0;
        for (long i = i0; i < i1; i++) {
            float *d = dlogits ? dlogits + i * V : NULL;
            if (targets[i] < 0) {
                if (d) memset(d, 0, sizeof(float) * V);
                if (token_loss) token_loss[i] = 0.0f;
                continue;
            }
            double L = row_divergence(d, student_logits + i * V, teacher_logits + i * V, V, kind,
                                      w, inv_tau, c);
            if (token_loss) token_loss[i] = (float)L;
            acc += L;
        }
        partial[id] = acc;
    }
    double total = 0.0;
    for (int t = 0; t < nthreads; t++) total += partial[t];
    return total;
}
