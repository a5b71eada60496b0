/* losses.c: token losses on logits, called by the training loop after the forward pass:
 * cross-entropy on hard labels and the distillation divergences (KL both ways, JSD, TVD, skew
 * KL) between teacher and student softmaxes. Rows are OpenMP-parallel and sums combined in a
 * fixed order. No sampling, no allocation, no gradient for the teacher. */
#include "autodidact/losses.h"
#include "autodidact/kernels.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
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
 * Each row is normalised once: xs = (s - max s) / tau and xt likewise (floats), zs = sum
 * e^xs and zt = sum e^xt (doubles). Forward and reverse KL then need no per-entry log:
 * FKL = sum_j e^xt_j (xt_j - xs_j) / zt - (log zt - log zs), finite whatever underflows, and
 * RKL mirrors it. The other kinds use the weights q_j = e^xs_j / zs, p_j = e^xt_j / zt
 * (doubles) and logs of their ratios, log(m_j / q_j) = log(beta p_j / q_j + 1 - beta) rather
 * than log m_j - log q_j: one log per ratio, exactly 0 where p = q, accurate for a result
 * near 0 (a mixture weight near 0 or 1), and a tiny weight only meets ratios it multiplies;
 * a zero weight gives a zero term (0 log 0 = 0) and is never divided by. (ad_expf stops at
 * FLT_MIN, so weights below ~1e-38 are too large, by amounts that vanish in every sum.)
 * The gradient is dL/dz_j = (1/tau) q_j (g_j - sum_k q_k g_k), g = dL/dq; g may be shifted
 * by any constant and is chosen bounded (or logarithmic) and exactly 0 where p = q. Passes
 * per row: maxima; normalisers; the loss, storing g in dlogits; dlogits from g. Sums are
 * double, kept in LANES fixed partial sums so that gcc vectorises the loops. */

#define LANES 8 /* independent partial sums: gcc vectorises them, and the order is fixed */
/* The generic term pass must be inlined into each kind's call, or its term stays an indirect
 * call and the loop is not vectorised. */
#define INLINE_ALWAYS static inline __attribute__((always_inline))

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

/* Natural log of a double x >= DBL_MIN, in a form gcc vectorises (libm's log is a call per
 * entry): the fdlibm algorithm (also musl's), error below 1 ulp. x = 2^k (1 + f) with
 * 1 + f in [sqrt(2)/2, sqrt(2)); log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f),
 * so log(1 + f) keeps full relative accuracy for small f. NaN and +inf are returned as is
 * (a NaN logit must reach the loss). */
static inline double vlog(double x) {
    double x0 = x;
    static const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10,
                        Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                        Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                        Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                        Lg7 = 1.479819860511658591e-01;
    uint64_t i;
    memcpy(&i, &x, sizeof i);
    /* Offset the high word so that the exponent rounds at sqrt(2)/2 instead of 1. */
    uint64_t hx = (i >> 32) + (0x3ff00000 - 0x3fe6a09e);
    int k = (int)(hx >> 20) - 0x3ff;
    i = ((hx & 0x000fffff) + 0x3fe6a09e) << 32 | (i & 0xffffffff);
    memcpy(&x, &i, sizeof x);
    double f = x - 1.0, hfsq = 0.5 * f * f, s = f / (2.0 + f), z = s * s, w = z * z;
    double R = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7))) + w * (Lg2 + w * (Lg4 + w * Lg6));
    double dk = k;
    double y = s * (hfsq + R) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
    return x0 < INFINITY ? y : x0 + y; /* x0 + y == x0 there; gcc vectorises this form */
}

/* dlogits from g (stored in d by the loss pass): d_j = c q_j (g_j - gbar). */
static void grad_from_g(float *d, const Row *r, double gbar, double c) {
    for (int j = 0; j < r->V; j++) {
        double q = ad_expf(scaled(r->s[j], r->ms, r->inv_tau)) * r->izs;
        d[j] = (float)(c * q * ((double)d[j] - gbar));
    }
}

/* The kinds that need a value per entry: term(q_j, p_j, w, &g_j) returns entry j's share of
 * the divergence and sets g_j. A term whose weight is 0 is 0; a g_j whose q_j is 0 is never
 * used. Ratios divide by 1 in place of a zero weight, so no term is ever 0 * inf. */
typedef double (*TermFn)(double q, double p, double w, float *g);

/* TVD = 1/2 sum |p - q|; g_j = sign(q_j - p_j) / 2 (0 where they are equal). */
static inline double tvd_term(double q, double p, double w, float *g) {
    *g = 0.5f * (float)((q > p) - (q < p));
    return 0.5 * fabs(p - q);
}

/* JSD(beta), 0 < beta < 1, m = beta p + (1 - beta) q, with A = log(m / q) =
 * log(beta p / q + 1 - beta) and B = log(m / p) = log(beta + (1 - beta) q / p): the term is
 * -beta p B - (1 - beta) q A; g = (1 - beta) log(q / m) = -(1 - beta) A. */
static inline double jsd_term(double q, double p, double beta, float *g) {
    double A = vlog(beta * (p / (q > 0.0 ? q : 1.0)) + (1.0 - beta));
    double B = vlog(beta + (1.0 - beta) * (q / (p > 0.0 ? p : 1.0)));
    *g = (float)(-(1.0 - beta) * A);
    return -beta * p * B - (1.0 - beta) * q * A;
}

/* Skew KL(alpha), 0 < alpha: m = alpha p + (1 - alpha) q; the term is -p log(m / p) with
 * m / p = alpha + (1 - alpha) q / p. dL/dq = -(1 - alpha) p / m; shifted by 1 - alpha,
 * g = (1 - alpha)^2 (q - p) / m, which lies in [-1 / alpha, 1]: a float, as alpha >= FLT_MIN. */
static inline double skl_term(double q, double p, double alpha, float *g) {
    double m = alpha * p + (1.0 - alpha) * q;
    double gd = (1.0 - alpha) * (1.0 - alpha) * (q - p) / (m > 0.0 ? m : 1.0);
    *g = (float)gd;
    return -p * vlog(alpha + (1.0 - alpha) * (q / (p > 0.0 ? p : 1.0)));
}

/* Skew reverse KL(alpha), 0 < alpha: m = (1 - alpha) p + alpha q; the term is q log(q / m)
 * with m / q = (1 - alpha) p / q + alpha. dL/dq = log(q / m) + 1 - alpha q / m; shifted by
 * alpha - 1, g = log(q / m) + alpha (1 - alpha) (p - q) / m, whose second term lies in
 * [-(1 - alpha), alpha]. */
static inline double srkl_term(double q, double p, double alpha, float *g) {
    double m = (1.0 - alpha) * p + alpha * q;
    double lqm = -vlog((1.0 - alpha) * (p / (q > 0.0 ? q : 1.0)) + alpha); /* log(q / m) */
    *g = (float)(lqm + alpha * (1.0 - alpha) * (p - q) / (m > 0.0 ? m : 1.0));
    return q * lqm;
}

INLINE_ALWAYS void term_add(double *L, double *gq, float *d, const Row *r, int j, double w,
                            TermFn term) {
    double q = ad_expf(scaled(r->s[j], r->ms, r->inv_tau)) * r->izs;
    double p = ad_expf(scaled(r->t[j], r->mt, r->inv_tau)) * r->izt;
    float g;
    *L += term(q, p, w, &g);
    *gq += q * g;
    if (d) d[j] = g;
}

INLINE_ALWAYS void term_lanes(double *L, double *gq, float *d, const Row *r, double w,
                              TermFn term) {
    int j = 0, V = r->V;
    for (; j + LANES <= V; j += LANES)
        for (int k = 0; k < LANES; k++) term_add(L + k, gq + k, d, r, j + k, w, term);
    for (int k = 0; j < V; j++, k++) term_add(L + k, gq + k, d, r, j, w, term);
}

/* One pass over the row: returns the divergence, stores g (as float) in d if d is not NULL,
 * and sets *gbar = sum_j q_j g_j over the stored (rounded) g, so that the gradient sums to 0
 * to double precision. */
INLINE_ALWAYS double term_pass(float *d, const Row *r, double w, double *gbar, TermFn term) {
    double L[LANES] = {0}, gq[LANES] = {0};
    if (d) /* two copies, so that neither loop tests d */
        term_lanes(L, gq, d, r, w, term);
    else
        term_lanes(L, gq, NULL, r, w, term);
    double Ls = 0, G = 0;
    for (int k = 0; k < LANES; k++) Ls += L[k], G += gq[k];
    *gbar = G;
    return Ls;
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
        if (d) {
            /* q - p = (e^xs - e^xt zs / zt) / zs: exactly 0 where p = q, even when the
             * compiler fuses the multiply-subtract. */
            double ratio = r.izt / r.izs, cq = c * r.izs;
            for (int j = 0; j < V; j++) {
                float xs = scaled(s[j], r.ms, inv_tau), xt = scaled(t[j], r.mt, inv_tau);
                d[j] = (float)(cq * ((double)ad_expf(xs) - (double)ad_expf(xt) * ratio));
            }
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
    case AD_LOSS_TVD: L = term_pass(d, &r, w, &gbar, tvd_term); break;
    case AD_LOSS_JSD: L = term_pass(d, &r, w, &gbar, jsd_term); break;
    case AD_LOSS_SKL: L = term_pass(d, &r, w, &gbar, skl_term); break;
    case AD_LOSS_SRKL: L = term_pass(d, &r, w, &gbar, srkl_term); break;
    default: AD_ASSERT(0 && "not a divergence");
    }
    if (d) grad_from_g(d, &r, gbar, c);
    return L;
}

/* Validates the arguments (programmer errors abort with file:line: the config layer checks
 * user values first), maps JSD at beta = 0 / 1 and the skew kinds at alpha = 0 onto forward
 * / reverse KL (which they equal exactly; a skew KL alpha below FLT_MIN counts as 0), and
 * splits the rows over the threads as ad_loss_ce does. Logits should be finite; a NaN one
 * makes its row's loss NaN. */
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
    if (kind == AD_LOSS_SKL && w < FLT_MIN) kind = AD_LOSS_FKL; /* denormal alpha: as 0 */
    if (kind == AD_LOSS_SRKL && w == 0.0) kind = AD_LOSS_RKL;
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
