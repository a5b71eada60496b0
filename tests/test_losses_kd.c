/* test_losses_kd.c: the distillation divergences of ad_loss_divergence against a long double
 * reference written here from the definitions (log-softmax, mixtures by log-add-exp, KL as
 * sum a log(a/b) over a > 0): row values and sums, dlogits against central finite
 * differences of that reference, JSD at beta = 0 / 1 (bitwise forward / reverse KL) and near
 * those ends, identities (zero divergence at p = q, bounds, p/q swap relations, skew -> 0),
 * masked rows, scale, extreme and underflowing logits, NaN propagation, and determinism
 * over threads. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodidact/losses.h"
#include "autodidact/rng.h"
#include "testutil.h"

#define EPS32 ((double)FLT_EPSILON)
#define FD_H 1e-6L /* finite-difference step on a logit (long double: roundoff ~1e-13) */
#define VMAX 520
#define TIMEOUT 60

typedef long double ld;

typedef struct {
    AdLossKind kind;
    float param; /* beta (JSD) or alpha (SKL, SRKL) */
} Div;

/* ---- Reference ---------------------------------------------------------------------------- */

/* out = log softmax(x / tau). */
static void ref_log_softmax(ld *out, const ld *x, int V, ld tau) {
    ld mx = -INFINITY, sum = 0;
    for (int j = 0; j < V; j++) mx = fmaxl(mx, x[j] / tau);
    for (int j = 0; j < V; j++) sum += expl(x[j] / tau - mx);
    ld lse = mx + logl(sum);
    for (int j = 0; j < V; j++) out[j] = x[j] / tau - lse;
}

static ld ref_logaddexp(ld a, ld b) {
    ld m = fmaxl(a, b);
    return m == -INFINITY ? m : m + logl(expl(a - m) + expl(b - m));
}

/* sum_j a_j log(a_j / b_j) for distributions given by their logs; 0 log 0 = 0. */
static ld ref_kl(const ld *la, const ld *lb, int V) {
    ld L = 0;
    for (int j = 0; j < V; j++) {
        ld a = expl(la[j]);
        if (a > 0) L += a * (la[j] - lb[j]);
    }
    return L;
}

/* lm = log(wa e^la + wb e^lb). */
static void ref_log_mixture(ld *lm, const ld *la, ld wa, const ld *lb, ld wb, int V) {
    for (int j = 0; j < V; j++) lm[j] = ref_logaddexp(logl(wa) + la[j], logl(wb) + lb[j]);
}

/* The divergence of one row, student s and teacher t (V), straight from DESIGN.md. */
static ld ref_div(const ld *s, const ld *t, int V, Div dv, ld tau) {
    ld lq[VMAX], lp[VMAX], lm[VMAX], w = dv.param, L = 0;
    ref_log_softmax(lq, s, V, tau);
    ref_log_softmax(lp, t, V, tau);
    switch (dv.kind) {
    case AD_LOSS_FKL: return ref_kl(lp, lq, V);
    case AD_LOSS_RKL: return ref_kl(lq, lp, V);
    case AD_LOSS_JSD:
        if (w == 0) return ref_kl(lp, lq, V);
        if (w == 1) return ref_kl(lq, lp, V);
        ref_log_mixture(lm, lp, w, lq, 1 - w, V);
        return w * ref_kl(lp, lm, V) + (1 - w) * ref_kl(lq, lm, V);
    case AD_LOSS_TVD:
        for (int j = 0; j < V; j++) L += fabsl(expl(lp[j]) - expl(lq[j]));
        return L / 2;
    case AD_LOSS_SKL:
        ref_log_mixture(lm, lp, w, lq, 1 - w, V);
        return ref_kl(lp, lm, V);
    case AD_LOSS_SRKL:
        ref_log_mixture(lm, lp, 1 - w, lq, w, V);
        return ref_kl(lq, lm, V);
    default: ck_abort_msg("not a divergence: %d", (int)dv.kind);
    }
    return 0;
}

/* ---- Tolerances --------------------------------------------------------------------------
 * The float path rounds x / tau - max to a float: log p_j and log q_j carry absolute errors
 * of a few EPS32 times X = (range of s + range of t) / tau, and p_j, q_j relative errors of
 * the same order. A loss therefore errs by about EPS32 (1 + X) W (1 + D), where
 * D = sum (p_j + q_j) |log p_j - log q_j| bounds what the weights multiply and W is the
 * sensitivity of the divergence to its log ratios: 1, except min(beta, 1 - beta) for JSD,
 * whose whole value and gradient shrink by that factor near the ends. A gradient entry errs
 * by about c EPS32 (1 + X) W (p_j + q_j) (1 + |log p_j - log q_j| + D), c = scale / tau.
 * K covers the constants: the worst cases measured here use 1/40 of the loss tolerance and
 * 1/15 of the gradient tolerance, leaving room for other vector widths and FMA choices. A
 * wrong term, sign or factor moves a value by the order of the value itself, far above. */
#define K_LOSS 1.0
#define K_GRAD 16.0

typedef struct {
    double X, D, W;
    ld lp[VMAX], lq[VMAX];
} RowInfo;

static void row_info(RowInfo *ri, const ld *s, const ld *t, int V, Div dv, ld tau) {
    ld smin = s[0], smax = s[0], tmin = t[0], tmax = t[0];
    for (int j = 1; j < V; j++) {
        smin = fminl(smin, s[j]), smax = fmaxl(smax, s[j]);
        tmin = fminl(tmin, t[j]), tmax = fmaxl(tmax, t[j]);
    }
    ri->X = (double)((smax - smin + tmax - tmin) / tau);
    ref_log_softmax(ri->lq, s, V, tau);
    ref_log_softmax(ri->lp, t, V, tau);
    ld D = 0;
    for (int j = 0; j < V; j++)
        D += (expl(ri->lp[j]) + expl(ri->lq[j])) * fabsl(ri->lp[j] - ri->lq[j]);
    ri->D = (double)D;
    ri->W = dv.kind == AD_LOSS_JSD && dv.param > 0 && dv.param < 1
                ? fmin(dv.param, 1.0 - (double)dv.param)
                : 1.0;
}

static double loss_tol(const RowInfo *ri) {
    return K_LOSS * EPS32 * (1 + ri->X) * ri->W * (1 + ri->D);
}

static double grad_tol(const RowInfo *ri, int j, double c) {
    double p = (double)expl(ri->lp[j]), q = (double)expl(ri->lq[j]);
    double lr = (double)fabsl(ri->lp[j] - ri->lq[j]);
    return K_GRAD * EPS32 * fabs(c) * (1 + ri->X) * ri->W * (p + q) * (1 + lr + ri->D);
}

/* TVD has kinks where p_k = q_k: finite differences across one are meaningless. True if
 * some entry is within the reach of a step of size FD_H. */
static int tvd_near_kink(const RowInfo *ri, int V, ld tau) {
    for (int j = 0; j < V; j++) {
        ld p = expl(ri->lp[j]), q = expl(ri->lq[j]);
        if (fabsl(p - q) <= 8 * FD_H / tau * (p + q)) return 1;
    }
    return 0;
}

/* ---- The contract on one batch -------------------------------------------------------------
 * token_loss and the sum against the reference; masked rows exactly zero though pre-filled
 * with NaN; every (or every stride-th) dlogits entry against scale times the central
 * difference of the reference; the same sum, token losses and bits with dlogits or
 * token_loss NULL. Returns the number of rows whose gradient was checked. */
typedef struct {
    int N, V, stride;
    float tau, scale;
    const float *s, *t; /* (N, V) */
    const int *y;       /* (N) */
} Batch;

static int check_batch(const Batch *b, Div dv, const char *what) {
    int N = b->N, V = b->V;
    size_t n = (size_t)N * V;
    float *d = malloc(sizeof(float) * n), *d2 = malloc(sizeof(float) * n);
    float *tl = malloc(sizeof(float) * N), *tl2 = malloc(sizeof(float) * N);
    RowInfo *ri = malloc(sizeof *ri);
    ck_assert(d && d2 && tl && tl2 && ri);
    for (size_t i = 0; i < n; i++) d[i] = NAN;
    for (int i = 0; i < N; i++) tl[i] = NAN;
    char tag[160];
    snprintf(tag, sizeof tag, "%s %s(%g) N=%d V=%d tau=%g scale=%g", what,
             ad_loss_name(dv.kind), dv.param, N, V, b->tau, b->scale);

    double L = ad_loss_divergence(d, tl, b->s, b->t, b->y, N, V, dv.kind, dv.param, b->tau,
                                  b->scale);
    double c = (double)b->scale / b->tau, Lref = 0, Ltol = 0;
    int checked = 0;
    ld s[VMAX], t[VMAX];
    for (int i = 0; i < N; i++) {
        const float *di = d + (size_t)i * V;
        if (b->y[i] < 0) {
            ck_assert_msg(tl[i] == 0.0f, "%s: masked row %d has loss %g", tag, i, tl[i]);
            for (int j = 0; j < V; j++)
                ck_assert_msg(di[j] == 0.0f, "%s: masked row %d dlogits[%d] = %g", tag, i, j,
                              di[j]);
            continue;
        }
        for (int j = 0; j < V; j++) s[j] = b->s[(size_t)i * V + j], t[j] = b->t[(size_t)i * V + j];
        ld li = ref_div(s, t, V, dv, b->tau);
        row_info(ri, s, t, V, dv, b->tau);
        double tol = loss_tol(ri) + 2 * EPS32 * fabs((double)li); /* + float rounding of tl */
        ck_assert_msg(isfinite(tl[i]) && fabs(tl[i] - (double)li) <= tol,
                      "%s: row %d loss %.9g want %.12Lg (tol %.3g)", tag, i, tl[i], li, tol);
        Lref += (double)li, Ltol += tol;

        for (int j = 0; j < V; j++)
            ck_assert_msg(isfinite(di[j]), "%s: dlogits[%d,%d] = %g", tag, i, j, di[j]);
        if (dv.kind == AD_LOSS_TVD && tvd_near_kink(ri, V, b->tau)) continue;
        checked++;
        /* Rounding of the long double reference, amplified by 1 / FD_H. */
        double fd_noise = fabs(b->scale) * 16 * LDBL_EPSILON * (1 + fabsl(li) + ri->D) / FD_H;
        for (int j = 0; j < V; j += b->stride) {
            ld x = s[j];
            s[j] = x + FD_H;
            ld lp = ref_div(s, t, V, dv, b->tau);
            s[j] = x - FD_H;
            ld lm = ref_div(s, t, V, dv, b->tau);
            s[j] = x;
            double fd = b->scale * (double)((lp - lm) / (2 * FD_H));
            double gtol = grad_tol(ri, j, c) + fd_noise;
            ck_assert_msg(fabs(di[j] - fd) <= gtol, "%s: dlogits[%d,%d] = %.9g, FD %.9g (tol %.3g)",
                          tag, i, j, di[j], fd, gtol);
        }
    }
    ck_assert_msg(isfinite(L) && fabs(L - Lref) <= Ltol, "%s: sum %.12g want %.12g", tag, L, Lref);

    /* Without dlogits, without token losses: the same numbers, bit for bit. */
    double L2 = ad_loss_divergence(NULL, tl2, b->s, b->t, b->y, N, V, dv.kind, dv.param, b->tau,
                                   b->scale);
    ck_assert_msg(memcmp(&L, &L2, sizeof L) == 0, "%s: dlogits NULL changes the sum", tag);
    ck_assert_msg(memcmp(tl, tl2, sizeof(float) * N) == 0, "%s: dlogits NULL changes token losses",
                  tag);
    double L3 = ad_loss_divergence(d2, NULL, b->s, b->t, b->y, N, V, dv.kind, dv.param, b->tau,
                                   b->scale);
    ck_assert_msg(memcmp(&L, &L3, sizeof L) == 0, "%s: token_loss NULL changes the sum", tag);
    ck_assert_msg(memcmp(d, d2, sizeof(float) * n) == 0, "%s: token_loss NULL changes dlogits",
                  tag);
    free(d), free(d2), free(tl), free(tl2), free(ri);
    return checked;
}

/* Random student and teacher logits (independent normals of the given spreads); row 1
 * masked when N > 2. */
typedef struct {
    float *s, *t;
    int *y;
} Logits;

static Logits random_logits(int N, int V, float std_s, float std_t, uint64_t seed) {
    AdRng rng;
    ad_rng_init(&rng, seed, 200, 0);
    Logits g = {malloc(sizeof(float) * N * V), malloc(sizeof(float) * N * V),
                malloc(sizeof(int) * N)};
    ck_assert(g.s && g.t && g.y);
    for (int i = 0; i < N * V; i++) g.s[i] = std_s * ad_rng_normal(&rng);
    for (int i = 0; i < N * V; i++) g.t[i] = std_t * ad_rng_normal(&rng) + 0.5f;
    for (int i = 0; i < N; i++)
        g.y[i] = N > 2 && i == 1 ? -1 : (int)ad_rng_below(&rng, (uint32_t)V);
    return g;
}

static void free_logits(Logits *g) { free(g->s), free(g->t), free(g->y); }

static const Div ALL_DIVS[] = {
    {AD_LOSS_FKL, 0},    {AD_LOSS_RKL, 0},    {AD_LOSS_JSD, 0.5f},  {AD_LOSS_JSD, 0.1f},
    {AD_LOSS_JSD, 0.9f}, {AD_LOSS_TVD, 0},    {AD_LOSS_SKL, 0.1f},  {AD_LOSS_SKL, 0.5f},
    {AD_LOSS_SRKL, 0.1f}, {AD_LOSS_SRKL, 0.5f},
};
#define N_DIVS (int)(sizeof ALL_DIVS / sizeof ALL_DIVS[0])

/* Every divergence at V = 7, 50, 513 and tau = 0.5, 1, 2 (V = 513: every 5th gradient entry). */
static void check_all(int V, int N, int stride, uint64_t seed) {
    static const float taus[] = {0.5f, 1.0f, 2.0f};
    Logits g = random_logits(N, V, 2.0f, 2.5f, seed);
    for (int k = 0; k < N_DIVS; k++)
        for (int it = 0; it < 3; it++) {
            Batch b = {N, V, stride, taus[it], 0.3f, g.s, g.t, g.y};
            int checked = check_batch(&b, ALL_DIVS[k], "random");
            ck_assert_msg(checked >= N - 2, "%s: only %d rows had a gradient check",
                          ad_loss_name(ALL_DIVS[k].kind), checked);
        }
    free_logits(&g);
}

START_TEST(test_random_v7) { check_all(7, 5, 1, 11); }
END_TEST

START_TEST(test_random_v50) { check_all(50, 4, 1, 12); }
END_TEST

START_TEST(test_random_v513) { check_all(513, 3, 5, 13); }
END_TEST

/* JSD at beta = 0 and 1 is forward and reverse KL: the same bits, sum and dlogits. */
START_TEST(test_jsd_ends_exact) {
    enum { N = 4, V = 50 };
    Logits g = random_logits(N, V, 3.0f, 2.0f, 21);
    float da[N * V], db[N * V], ta[N], tb[N];
    for (int end = 0; end < 2; end++)
        for (int it = 0; it < 3; it++) {
            float tau = it == 0 ? 0.5f : it == 1 ? 1.0f : 2.0f;
            AdLossKind kl = end ? AD_LOSS_RKL : AD_LOSS_FKL;
            double La = ad_loss_divergence(da, ta, g.s, g.t, g.y, N, V, AD_LOSS_JSD,
                                           (float)end, tau, 0.25f);
            double Lb = ad_loss_divergence(db, tb, g.s, g.t, g.y, N, V, kl, 0.0f, tau, 0.25f);
            ck_assert_msg(memcmp(&La, &Lb, sizeof La) == 0, "JSD(%d) %.17g vs %s %.17g", end, La,
                          ad_loss_name(kl), Lb);
            ck_assert(memcmp(ta, tb, sizeof ta) == 0);
            ck_assert(memcmp(da, db, sizeof da) == 0);
            ck_assert(La > 0.01);
        }
    free_logits(&g);
}
END_TEST

/* Near the ends the interior formula is a small difference of large terms: the value must
 * still match the reference (relative 1e-4 or absolute 1e-9, and the tighter check of
 * check_batch, whose tolerance shrinks with min(beta, 1 - beta)), and the gradient must be
 * finite and match finite differences. */
START_TEST(test_jsd_near_ends) {
    static const float betas[] = {1e-6f, 1e-3f, 0.999f, 1.0f - 1e-6f};
    enum { N = 3 };
    static const int Vs[] = {7, 50, 513};
    for (int iv = 0; iv < 3; iv++) {
        int V = Vs[iv];
        Logits g = random_logits(N, V, 2.0f, 2.0f, 30 + iv);
        float tl[N];
        for (int ib = 0; ib < 4; ib++)
            for (int it = 0; it < 3; it++) {
                float tau = it == 0 ? 0.5f : it == 1 ? 1.0f : 2.0f;
                Div dv = {AD_LOSS_JSD, betas[ib]};
                Batch b = {N, V, V > 64 ? 5 : 1, tau, 1.0f, g.s, g.t, g.y};
                check_batch(&b, dv, "near end");
                ad_loss_divergence(NULL, tl, g.s, g.t, g.y, N, V, AD_LOSS_JSD, betas[ib], tau, 1);
                ld s[VMAX], t[VMAX];
                for (int i = 0; i < N; i++) {
                    if (g.y[i] < 0) continue;
                    for (int j = 0; j < V; j++) s[j] = g.s[i * V + j], t[j] = g.t[i * V + j];
                    double want = (double)ref_div(s, t, V, dv, tau);
                    ck_assert_msg(want > 0 && (fabs(tl[i] - want) <= 1e-4 * want ||
                                               fabs(tl[i] - want) <= 1e-9),
                                  "beta %.9g V %d tau %g row %d: %.9g want %.9g", betas[ib], V,
                                  tau, i, tl[i], want);
                }
            }
        free_logits(&g);
    }
}
END_TEST

/* p = q: every divergence is exactly 0 with an exactly zero gradient. */
START_TEST(test_identical_distributions) {
    enum { N = 3, V = 50 };
    Logits g = random_logits(N, V, 3.0f, 3.0f, 41);
    float d[N * V], tl[N];
    for (int k = 0; k < N_DIVS; k++) {
        Div dv = ALL_DIVS[k];
        double L = ad_loss_divergence(d, tl, g.s, g.s, g.y, N, V, dv.kind, dv.param, 0.7f, 1.0f);
        ck_assert_msg(L == 0.0, "%s: D(p, p) = %g", ad_loss_name(dv.kind), L);
        for (int i = 0; i < N; i++) ck_assert(tl[i] == 0.0f);
        for (int j = 0; j < N * V; j++)
            ck_assert_msg(d[j] == 0.0f, "%s: dlogits[%d] = %g at p = q", ad_loss_name(dv.kind), j,
                          d[j]);
    }
    free_logits(&g);
}
END_TEST

/* Disjoint peaks (logits +-80): TVD = 1 and JSD(beta) = H(beta) = -beta log beta -
 * (1 - beta) log(1 - beta) (so JSD(0.5) = log 2), the upper bounds of both. Random rows:
 * 0 <= TVD <= 1 and JSD(0.5) <= log 2. */
START_TEST(test_bounds) {
    enum { V = 9 };
    float s[2 * V], t[2 * V], d[2 * V], tl[2];
    int y[2] = {0, 0};
    for (int j = 0; j < 2 * V; j++) s[j] = t[j] = -80.0f;
    s[2] = 80.0f, t[5] = 80.0f;         /* row 0: peaks at 2 and 5 */
    s[V + 0] = 80.0f, t[V + 8] = 80.0f; /* row 1: peaks at 0 and 8 */
    double L = ad_loss_divergence(d, tl, s, t, y, 2, V, AD_LOSS_TVD, 0, 1.0f, 1.0f);
    ck_assert_msg(fabs(L - 2.0) <= 1e-12 && tl[0] <= 1.0f && tl[0] >= 1.0f - 1e-6f, "TVD %g", L);
    static const float betas[] = {0.5f, 0.1f, 0.9f, 1e-3f};
    for (int k = 0; k < 4; k++) {
        double b = betas[k], H = -b * log(b) - (1 - b) * log1p(-b);
        L = ad_loss_divergence(d, tl, s, t, y, 2, V, AD_LOSS_JSD, betas[k], 1.0f, 1.0f);
        for (int i = 0; i < 2; i++)
            ck_assert_msg(fabs(tl[i] - H) <= 4 * EPS32 * H, "JSD(%g) = %.9g want H = %.9g", b,
                          tl[i], H);
        for (int j = 0; j < 2 * V; j++) ck_assert(isfinite(d[j]));
    }

    enum { NR = 40, W = 50 };
    Logits g = random_logits(NR, W, 4.0f, 4.0f, 51);
    float tr[NR];
    ad_loss_divergence(NULL, tr, g.s, g.t, g.y, NR, W, AD_LOSS_TVD, 0, 0.5f, 1.0f);
    for (int i = 0; i < NR; i++) ck_assert_msg(tr[i] >= 0.0f && tr[i] <= 1.0f, "TVD %g", tr[i]);
    ad_loss_divergence(NULL, tr, g.s, g.t, g.y, NR, W, AD_LOSS_JSD, 0.5f, 0.5f, 1.0f);
    for (int i = 0; i < NR; i++)
        ck_assert_msg(tr[i] >= 0.0f && tr[i] <= (float)log(2.0), "JSD(0.5) %g", tr[i]);
    free_logits(&g);
}
END_TEST

/* Swapping student and teacher: JSD(beta; q, p) = JSD(1 - beta; p, q), FKL(q, p) = RKL(p, q)
 * and SKL(a; q, p) = SRKL(a; p, q) (all with tolerances: the computations differ). */
START_TEST(test_swap_relations) {
    enum { N = 4, V = 50 };
    Logits g = random_logits(N, V, 2.0f, 3.0f, 61);
    struct { Div a, b; } pairs[] = {
        {{AD_LOSS_JSD, 0.25f}, {AD_LOSS_JSD, 0.75f}},
        {{AD_LOSS_JSD, 0.125f}, {AD_LOSS_JSD, 0.875f}},
        {{AD_LOSS_JSD, 0.5f}, {AD_LOSS_JSD, 0.5f}},
        {{AD_LOSS_FKL, 0}, {AD_LOSS_RKL, 0}},
        {{AD_LOSS_SKL, 0.1f}, {AD_LOSS_SRKL, 0.1f}},
        {{AD_LOSS_TVD, 0}, {AD_LOSS_TVD, 0}},
    };
    float ta[N], tb[N];
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        double La = ad_loss_divergence(NULL, ta, g.s, g.t, g.y, N, V, pairs[k].a.kind,
                                       pairs[k].a.param, 1.0f, 1.0f);
        double Lb = ad_loss_divergence(NULL, tb, g.t, g.s, g.y, N, V, pairs[k].b.kind,
                                       pairs[k].b.param, 1.0f, 1.0f);
        ck_assert_msg(La > 0.1 && fabs(La - Lb) <= 1e-5 * La, "%s(%g) %.9g vs swapped %s(%g) %.9g",
                      ad_loss_name(pairs[k].a.kind), pairs[k].a.param, La,
                      ad_loss_name(pairs[k].b.kind), pairs[k].b.param, Lb);
        for (int i = 0; i < N; i++) ck_assert(fabsf(ta[i] - tb[i]) <= 1e-5f * ta[i] + 1e-7f);
    }
    free_logits(&g);
}
END_TEST

/* Skew KL and skew reverse KL fall to 0 as alpha -> 1 (exactly 0 at alpha = 1, with a zero
 * gradient), stay below -log(alpha) (since p / m <= 1 / alpha), and at alpha = 0 are exactly
 * forward and reverse KL. */
START_TEST(test_skew_limits) {
    enum { N = 3, V = 50 };
    Logits g = random_logits(N, V, 3.0f, 3.0f, 71);
    static const float alphas[] = {0.5f, 0.9f, 0.99f, 0.999f, 0.9999f};
    float d[N * V], dk[N * V];
    for (int kind = AD_LOSS_SKL; kind <= AD_LOSS_SRKL; kind++) {
        double prev = INFINITY, first = 0;
        for (int k = 0; k < 5; k++) {
            double L = ad_loss_divergence(NULL, NULL, g.s, g.t, g.y, N, V, kind, alphas[k], 1, 1);
            double bound = -(N - 1) * log((double)alphas[k]);
            ck_assert_msg(L > 0 && L < prev && L <= bound, "%s(%g) = %g (previous %g, bound %g)",
                          ad_loss_name(kind), alphas[k], L, prev, bound);
            prev = L;
            if (k == 0) first = L;
        }
        ck_assert_msg(prev < 1e-3 * first, "%s(%g) = %g vs %g at 0.5", ad_loss_name(kind),
                      alphas[4], prev, first);
        double L1 = ad_loss_divergence(d, NULL, g.s, g.t, g.y, N, V, kind, 1.0f, 1, 1);
        ck_assert(L1 == 0.0);
        for (int j = 0; j < N * V; j++) ck_assert(d[j] == 0.0f);
        /* alpha = 0: exactly the plain KL, bit for bit. */
        AdLossKind kl = kind == AD_LOSS_SKL ? AD_LOSS_FKL : AD_LOSS_RKL;
        double L0 = ad_loss_divergence(d, NULL, g.s, g.t, g.y, N, V, kind, 0.0f, 1, 1);
        double Lk = ad_loss_divergence(dk, NULL, g.s, g.t, g.y, N, V, kl, 0.0f, 1, 1);
        ck_assert_msg(memcmp(&L0, &Lk, sizeof L0) == 0, "%s(0) %.17g vs %s %.17g",
                      ad_loss_name(kind), L0, ad_loss_name(kl), Lk);
        ck_assert(memcmp(d, dk, sizeof d) == 0);
    }
    free_logits(&g);
}
END_TEST

/* All rows masked: zero sum, zero rows (pre-filled with NaN); V = 1: p = q = 1, zero. */
START_TEST(test_masked_and_single_class) {
    enum { N = 3, V = 6 };
    Logits g = random_logits(N, V, 1.0f, 1.0f, 81);
    int none[N] = {-1, -100, -1}, all[N] = {0, 0, 0};
    float d[N * V], tl[N];
    for (int k = 0; k < N_DIVS; k++) {
        Div dv = ALL_DIVS[k];
        for (int j = 0; j < N * V; j++) d[j] = NAN;
        for (int i = 0; i < N; i++) tl[i] = NAN;
        double L = ad_loss_divergence(d, tl, g.s, g.t, none, N, V, dv.kind, dv.param, 1, 0.5f);
        ck_assert(L == 0.0);
        for (int j = 0; j < N * V; j++) ck_assert(d[j] == 0.0f);
        for (int i = 0; i < N; i++) ck_assert(tl[i] == 0.0f);
        /* V = 1 (rows are the first N logits). */
        L = ad_loss_divergence(d, tl, g.s, g.t, all, N, 1, dv.kind, dv.param, 1, 0.5f);
        ck_assert_msg(L == 0.0, "%s V=1: %g", ad_loss_name(dv.kind), L);
        for (int i = 0; i < N; i++)
            ck_assert_msg(d[i] == 0.0f && tl[i] == 0.0f, "%s V=1: row %d loss %g dlogits %g",
                          ad_loss_name(dv.kind), i, tl[i], d[i]);
    }
    free_logits(&g);
}
END_TEST

/* scale multiplies dlogits and nothing else; tau enters the gradient as 1/tau. */
START_TEST(test_scale) {
    enum { N = 4, V = 30 };
    Logits g = random_logits(N, V, 2.0f, 2.0f, 91);
    float d1[N * V], ds[N * V], t1[N], ts[N];
    const float scale = 0.37f;
    for (int k = 0; k < N_DIVS; k++) {
        Div dv = ALL_DIVS[k];
        double L1 = ad_loss_divergence(d1, t1, g.s, g.t, g.y, N, V, dv.kind, dv.param, 2, 1);
        double Ls = ad_loss_divergence(ds, ts, g.s, g.t, g.y, N, V, dv.kind, dv.param, 2, scale);
        ck_assert(memcmp(&L1, &Ls, sizeof L1) == 0 && memcmp(t1, ts, sizeof t1) == 0);
        double norm = 0;
        for (int j = 0; j < N * V; j++) {
            ck_assert_msg(fabsf(ds[j] - scale * d1[j]) <= 2 * FLT_EPSILON * fabsf(ds[j]) + 1e-30f,
                          "%s: dlogits[%d] %.9g vs %g * %.9g", ad_loss_name(dv.kind), j, ds[j],
                          scale, d1[j]);
            norm += fabsf(d1[j]);
        }
        ck_assert(norm > 1e-3);
    }
    free_logits(&g);
}
END_TEST

/* Extreme logits: +-80 student and teacher at tau = 0.5 (x / tau = +-160, so most of both
 * distributions underflow in float), a very peaked teacher, and a teacher whose non-peak
 * entries are far below even double's range (differences of 500 at tau = 0.5). Everything
 * finite and within the (wide, X-scaled) tolerances of check_batch. */
START_TEST(test_extreme_logits) {
    enum { N = 3, V = 20 };
    AdRng rng;
    ad_rng_init(&rng, 101, 200, 0);
    float s[N * V], t[N * V];
    int y[N] = {0, 0, 0};
    for (int j = 0; j < V; j++) {
        s[j] = ad_rng_uniform(&rng) < 0.5f ? -80.0f : 80.0f - ad_rng_uniform(&rng);
        t[j] = ad_rng_uniform(&rng) < 0.5f ? -80.0f : 80.0f - ad_rng_uniform(&rng);
        s[V + j] = 3.0f * ad_rng_normal(&rng);
        t[V + j] = j == 7 ? 80.0f : -80.0f; /* peaked teacher */
        s[2 * V + j] = 2.0f * ad_rng_normal(&rng);
        t[2 * V + j] = j == 3 ? 0.0f : j == 4 ? -2.0f : -500.0f; /* exact zeros in double */
    }
    Batch b = {N, V, 1, 0.5f, 1.0f / 3.0f, s, t, y};
    for (int it = 0; it < 2; it++, b.tau = 1.0f) {
        for (int k = 0; k < N_DIVS; k++) check_batch(&b, ALL_DIVS[k], "extreme");
        Div ends[2] = {{AD_LOSS_JSD, 1e-6f}, {AD_LOSS_JSD, 1.0f - 1e-6f}}; /* near the ends */
        check_batch(&b, ends[0], "extreme");
        check_batch(&b, ends[1], "extreme");
    }
}
END_TEST

/* A batch above AD_PAR_MIN (rows split over the threads): two calls give the same bits, and
 * each row the same bits as when computed alone (one thread), for every divergence. */
START_TEST(test_threads_deterministic) {
    enum { N = 400, V = 50 };
    Logits g = random_logits(N, V, 3.0f, 3.0f, 111);
    for (int i = 0; i < N; i++) g.y[i] = i % 7 == 3 ? -1 : 0;
    float *d1 = malloc(sizeof(float) * N * V), *d2 = malloc(sizeof(float) * N * V);
    float t1[N], t2[N], dr[V], tr;
    ck_assert(d1 && d2);
    for (int k = 0; k < N_DIVS; k++) {
        Div dv = ALL_DIVS[k];
        double L1 = ad_loss_divergence(d1, t1, g.s, g.t, g.y, N, V, dv.kind, dv.param, 1, 0.01f);
        double L2 = ad_loss_divergence(d2, t2, g.s, g.t, g.y, N, V, dv.kind, dv.param, 1, 0.01f);
        ck_assert(memcmp(&L1, &L2, sizeof L1) == 0);
        ck_assert(memcmp(t1, t2, sizeof t1) == 0);
        ck_assert(memcmp(d1, d2, sizeof(float) * N * V) == 0);
        double sum = 0;
        for (int i = 0; i < N; i++) {
            ad_loss_divergence(dr, &tr, g.s + i * V, g.t + i * V, g.y + i, 1, V, dv.kind,
                               dv.param, 1, 0.01f);
            ck_assert(memcmp(&tr, t1 + i, sizeof tr) == 0);
            ck_assert(memcmp(dr, d1 + (size_t)i * V, sizeof dr) == 0);
            sum += t1[i];
        }
        ck_assert_msg(fabs(L1 - sum) <= 1e-6 * fabs(sum), "%s: sum %.12g vs rows %.12g",
                      ad_loss_name(dv.kind), L1, sum);
    }
    free(d1), free(d2);
    free_logits(&g);
}
END_TEST

/* A NaN logit (student or teacher) makes that row's loss and the sum NaN, so the training
 * loop's finiteness check sees it; other rows stay finite. */
START_TEST(test_nan_propagates) {
    enum { N = 3, V = 40 };
    Logits g = random_logits(N, V, 2.0f, 2.0f, 121);
    float d[N * V], tl[N];
    for (int who = 0; who < 2; who++)
        for (int k = 0; k < N_DIVS; k++) {
            Div dv = ALL_DIVS[k];
            float *x = who ? g.t : g.s, keep = x[2 * V + 17];
            x[2 * V + 17] = NAN;
            double L = ad_loss_divergence(d, tl, g.s, g.t, g.y, N, V, dv.kind, dv.param, 1, 1);
            x[2 * V + 17] = keep;
            ck_assert_msg(isnan(L) && isnan(tl[2]) && isfinite(tl[0]),
                          "%s: NaN %s logit gives loss %g, row losses %g %g",
                          ad_loss_name(dv.kind), who ? "teacher" : "student", L, tl[0], tl[2]);
        }
    free_logits(&g);
}
END_TEST

START_TEST(test_names) {
    static const char *names[] = {"sft", "fkl", "rkl", "jsd", "tvd", "skl", "srkl"};
    for (int k = AD_LOSS_SFT; k <= AD_LOSS_SRKL; k++) {
        ck_assert_str_eq(ad_loss_name(k), names[k]);
        ck_assert_int_eq(ad_loss_parse(names[k]), k);
    }
    ck_assert_int_eq(ad_loss_parse("kl"), -1);
    ck_assert_int_eq(ad_loss_parse("FKL"), -1);
    ck_assert_int_eq(ad_loss_parse(""), -1);
    ck_assert_int_eq(ad_loss_parse(NULL), -1);
}
END_TEST

static Suite *losses_kd_suite(void) {
    Suite *s = suite_create("losses_kd");
    const AdTestCase cases[] = {
        {"random_v7", test_random_v7},
        {"random_v50", test_random_v50},
        {"random_v513", test_random_v513},
        {"jsd_ends_exact", test_jsd_ends_exact},
        {"jsd_near_ends", test_jsd_near_ends},
        {"identical_distributions", test_identical_distributions},
        {"bounds", test_bounds},
        {"swap_relations", test_swap_relations},
        {"skew_limits", test_skew_limits},
        {"masked_and_single_class", test_masked_and_single_class},
        {"scale", test_scale},
        {"extreme_logits", test_extreme_logits},
        {"threads_deterministic", test_threads_deterministic},
        {"nan_propagates", test_nan_propagates},
        {"names", test_names},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], TIMEOUT);
    return s;
}

int main(void) { return ad_test_run(losses_kd_suite()); }
