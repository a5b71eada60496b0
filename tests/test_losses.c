/* test_losses.c: cross-entropy against a double log-softmax written here (loss sum, token
 * losses), dlogits against central finite differences of that double loss times `scale`,
 * masked targets (no loss, zero gradient rows), extreme logits, a batch large enough to run
 * on several threads, and the target counter. */
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
#define FD_H 1e-5
#define TIMEOUT 60

/* -log softmax(x)[y] in double. */
static double ce_ref(const double *x, int V, int y) {
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, x[j]);
    for (int j = 0; j < V; j++) sum += exp(x[j] - mx);
    return mx + log(sum) - x[y];
}

static double ce_sum_ref(const double *x, const int *targets, int N, int V) {
    double L = 0;
    for (int i = 0; i < N; i++)
        if (targets[i] >= 0) L += ce_ref(x + (size_t)i * V, V, targets[i]);
    return L;
}

/* Float error of one token's loss: the max, log of a float sum of V exps (each within
 * 2 ulp): (V + 4) EPS32 absolutely, plus rounding of lse and of lse - x[y]. */
static double ce_tol(const float *x, int V, int y) {
    double mx = -INFINITY;
    for (int j = 0; j < V; j++) mx = fmax(mx, x[j]);
    return (V + 4) * EPS32 + 2 * EPS32 * (fabs(mx) + fabs(x[y]));
}

/* The whole contract on one batch: returned sum and token_loss against the double
 * reference; dlogits against scale * (central differences of the double sum); masked rows
 * exactly zero though pre-filled with NaN; the same sum with dlogits or token_loss NULL.
 * Gradient tolerance per entry: scale ((V + 8) EPS32 (p_j + [j = y]) + 1e-8), the float
 * error of p_j - [j = y] plus the finite-difference error (~1e-10); a missing scale, sign
 * or target subtraction is off by ~ scale * p_j or scale. */
static void check_ce(int N, int V, float std, float scale, uint64_t seed, int n_masked) {
    AdRng rng;
    ad_rng_init(&rng, seed, 100, 0);
    size_t n = (size_t)N * V;
    float *x = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n);
    float *tl = malloc(sizeof(float) * N), *tl2 = malloc(sizeof(float) * N);
    double *xd = malloc(sizeof(double) * n);
    int *y = malloc(sizeof(int) * N);
    ck_assert(x && d && tl && tl2 && xd && y);
    for (size_t i = 0; i < n; i++) x[i] = std * ad_rng_normal(&rng), xd[i] = x[i];
    for (int i = 0; i < N; i++) y[i] = (int)ad_rng_below(&rng, (uint32_t)V);
    for (int k = 0; k < n_masked; k++) y[(k * 5 + 1) % N] = k % 2 ? -1 : -100;
    for (size_t i = 0; i < n; i++) d[i] = NAN;
    for (int i = 0; i < N; i++) tl[i] = NAN;

    char tag[96];
    snprintf(tag, sizeof tag, "CE N=%d V=%d std=%g scale=%g", N, V, std, scale);
    double L = ad_loss_ce(d, tl, x, y, N, V, scale);
    double Lref = 0, Ltol = 0;
    for (int i = 0; i < N; i++) {
        if (y[i] < 0) {
            ck_assert_msg(tl[i] == 0.0f, "%s: masked token %d has loss %g", tag, i, tl[i]);
            for (int j = 0; j < V; j++)
                ck_assert_msg(d[(size_t)i * V + j] == 0.0f, "%s: masked row %d dlogits[%d] = %g",
                              tag, i, j, d[(size_t)i * V + j]);
            continue;
        }
        double li = ce_ref(xd + (size_t)i * V, V, y[i]), tol = ce_tol(x + (size_t)i * V, V, y[i]);
        ck_assert_msg(fabs(tl[i] - li) <= tol, "%s: token %d loss %.9g want %.9g", tag, i, tl[i],
                      li);
        Lref += li, Ltol += tol;
    }
    ck_assert_msg(fabs(L - Lref) <= Ltol, "%s: loss %.12g want %.12g", tag, L, Lref);

    for (int i = 0; i < N; i++) {
        if (y[i] < 0) continue;
        double *r = xd + (size_t)i * V, mx = -INFINITY, sum = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, r[j]);
        for (int j = 0; j < V; j++) sum += exp(r[j] - mx);
        for (int j = 0; j < V; j++) {
            double xj = r[j], h = FD_H * fmax(1.0, fabs(xj));
            r[j] = xj + h;
            double lp = ce_sum_ref(xd, y, N, V);
            r[j] = xj - h;
            double lm = ce_sum_ref(xd, y, N, V);
            r[j] = xj;
            double fd = scale * (lp - lm) / (2 * h), p = exp(xj - mx) / sum;
            double tol = scale * ((V + 8) * EPS32 * (p + (j == y[i])) + 1e-8);
            float got = d[(size_t)i * V + j];
            ck_assert_msg(fabs(got - fd) <= tol, "%s: dlogits[%d,%d] = %.9g, FD %.9g (tol %.3g)",
                          tag, i, j, got, fd, tol);
        }
    }

    /* Evaluation only (dlogits NULL) and no token losses: the same sum, same token losses. */
    double L2 = ad_loss_ce(NULL, tl2, x, y, N, V, scale);
    ck_assert_msg(L2 == L, "%s: dlogits NULL changes the loss: %.17g vs %.17g", tag, L2, L);
    ck_assert(memcmp(tl, tl2, sizeof(float) * N) == 0);
    double L3 = ad_loss_ce(NULL, NULL, x, y, N, V, scale);
    ck_assert_msg(L3 == L, "%s: token_loss NULL changes the loss", tag);
    free(x), free(d), free(tl), free(tl2), free(xd), free(y);
}

START_TEST(test_ce_small) { check_ce(6, 11, 3.0f, 1.0f, 1, 0); }
END_TEST

START_TEST(test_ce_masked_scaled) {
    check_ce(9, 17, 2.0f, 1.0f / 7.0f, 2, 2); /* 7 of 9 unmasked: scale = 1/7 */
    check_ce(5, 4, 1.0f, 0.37f, 3, 1);
}
END_TEST

START_TEST(test_ce_wide) { check_ce(3, 300, 4.0f, 0.25f, 4, 0); }
END_TEST

/* V = 1: the only class has probability 1: loss 0 and gradient 0. */
START_TEST(test_ce_single_class) {
    float x[3] = {5.0f, -2.0f, 0.0f}, d[3] = {NAN, NAN, NAN}, tl[3];
    int y[3] = {0, 0, -1};
    double L = ad_loss_ce(d, tl, x, y, 3, 1, 0.5f);
    ck_assert(L == 0.0);
    for (int i = 0; i < 3; i++) ck_assert(d[i] == 0.0f && tl[i] == 0.0f);
}
END_TEST

/* Everything masked: zero loss, all rows zero. */
START_TEST(test_ce_all_masked) {
    float x[6] = {1, 2, 3, 4, 5, 6}, d[6], tl[2] = {NAN, NAN};
    int y[2] = {-1, -1};
    for (int i = 0; i < 6; i++) d[i] = NAN;
    ck_assert(ad_loss_ce(d, tl, x, y, 2, 3, 1.0f) == 0.0);
    for (int i = 0; i < 6; i++) ck_assert(d[i] == 0.0f);
    ck_assert(tl[0] == 0.0f && tl[1] == 0.0f);
}
END_TEST

/* Logits of magnitude 1000 (exp overflows without the max shift): finite, correct loss.
 * Row 0: x = (1000, 990, -1000), target 1: loss = 10 + log(1 + e^-10 + e^-2000).
 * Row 1: target 0 (the max): loss = log(1 + e^-10) = 4.53988992e-5. The float tolerance
 * is the rounding of lse near 1000 (EPS32 * 1000 * 2). */
START_TEST(test_ce_extreme_logits) {
    float x[6] = {1000.0f, 990.0f, -1000.0f, 1000.0f, 990.0f, -1000.0f}, d[6], tl[2];
    int y[2] = {1, 0};
    double L = ad_loss_ce(d, tl, x, y, 2, 3, 1.0f);
    double want0 = 10.0 + log1p(exp(-10.0)), want1 = log1p(exp(-10.0));
    ck_assert_msg(fabs(tl[0] - want0) <= 2000 * EPS32, "row 0: %.9g vs %.9g", tl[0], want0);
    ck_assert_msg(fabs(tl[1] - want1) <= 2000 * EPS32, "row 1: %.9g vs %.9g", tl[1], want1);
    ck_assert(isfinite(L));
    double p1 = exp(-10.0) / (1 + exp(-10.0));
    ck_assert_msg(fabs(d[0] - (1 - p1)) <= 4 * EPS32 && fabs(d[1] - (p1 - 1)) <= 4 * EPS32 &&
                      fabs(d[2]) <= 4 * EPS32,
                  "row 0 grad %g %g %g", d[0], d[1], d[2]);
    ck_assert_msg(fabs(d[3] - (-p1)) <= 4 * EPS32 && fabs(d[4] - p1) <= 4 * EPS32, "row 1 grad");
    for (int i = 0; i < 6; i++) ck_assert(isfinite(d[i]));
}
END_TEST

START_TEST(test_count_targets) {
    int y[7] = {0, -1, 5, -100, 2, 0, -1};
    ck_assert_int_eq(ad_count_targets(y, 7), 4);
    ck_assert_int_eq(ad_count_targets(y, 1), 1);
    ck_assert_int_eq(ad_count_targets(y + 1, 1), 0);
    ck_assert_int_eq(ad_count_targets(y, 0), 0);
    int none[3] = {-1, -2, -3};
    ck_assert_int_eq(ad_count_targets(none, 3), 0);
}
END_TEST

/* A batch above AD_PAR_MIN (kernels.h) elements, so rows are split over the threads:
 * loss, token losses and dlogits against the double reference, the gradient here as the
 * closed form scale (softmax - onehot) (the FD tests above pin that form down), and the
 * same bits on a second call (the partial sums are combined in a fixed order). */
START_TEST(test_ce_threaded) {
    AdRng rng;
    ad_rng_init(&rng, 5, 100, 0);
    const int N = 400, V = 50;
    const float scale = 0.01f;
    float *x = malloc(sizeof(float) * N * V), *d1 = malloc(sizeof(float) * N * V),
          *d2 = malloc(sizeof(float) * N * V);
    int *y = malloc(sizeof(int) * N);
    ck_assert(x && d1 && d2 && y);
    for (int i = 0; i < N * V; i++) x[i] = 3.0f * ad_rng_normal(&rng);
    for (int i = 0; i < N; i++) y[i] = i % 3 ? (int)ad_rng_below(&rng, V) : -1;
    float *tl = malloc(sizeof(float) * N);
    double *xd = malloc(sizeof(double) * V);
    ck_assert(tl && xd);
    double L1 = ad_loss_ce(d1, tl, x, y, N, V, scale), L2 = ad_loss_ce(d2, NULL, x, y, N, V, scale);
    ck_assert(memcmp(&L1, &L2, sizeof L1) == 0);
    ck_assert(memcmp(d1, d2, sizeof(float) * N * V) == 0);
    double Lref = 0, Ltol = 0;
    for (int i = 0; i < N; i++) {
        const float *r = x + (size_t)i * V;
        if (y[i] < 0) {
            ck_assert(tl[i] == 0.0f);
            for (int j = 0; j < V; j++) ck_assert(d1[(size_t)i * V + j] == 0.0f);
            continue;
        }
        for (int j = 0; j < V; j++) xd[j] = r[j];
        double li = ce_ref(xd, V, y[i]), tol = ce_tol(r, V, y[i]);
        ck_assert_msg(fabs(tl[i] - li) <= tol, "token %d: %.9g vs %.9g", i, tl[i], li);
        Lref += li, Ltol += tol;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, xd[j]);
        for (int j = 0; j < V; j++) sum += exp(xd[j] - mx);
        for (int j = 0; j < V; j++) {
            double p = exp(xd[j] - mx) / sum, want = scale * (p - (j == y[i]));
            ck_assert_msg(fabs(d1[(size_t)i * V + j] - want) <=
                              scale * (V + 8) * EPS32 * (p + (j == y[i])) + 1e-30,
                          "dlogits[%d,%d] = %.9g want %.9g", i, j, d1[(size_t)i * V + j], want);
        }
    }
    ck_assert_msg(fabs(L1 - Lref) <= Ltol, "loss %.12g want %.12g", L1, Lref);
    free(x), free(d1), free(d2), free(y), free(tl), free(xd);
}
END_TEST

static Suite *losses_suite(void) {
    Suite *s = suite_create("losses");
    const AdTestCase cases[] = {
        {"ce_small", test_ce_small},
        {"ce_masked_scaled", test_ce_masked_scaled},
        {"ce_wide", test_ce_wide},
        {"ce_single_class", test_ce_single_class},
        {"ce_all_masked", test_ce_all_masked},
        {"ce_extreme_logits", test_ce_extreme_logits},
        {"count_targets", test_count_targets},
        {"ce_threaded", test_ce_threaded},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], TIMEOUT);
    return s;
}

int main(void) { return ad_test_run(losses_suite()); }
