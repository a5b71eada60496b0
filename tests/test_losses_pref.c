/* test_losses_pref.c: the DPO family of preference.h: DPO (with and without label
 * smoothing), IPO and SimPO values and TRL's metrics against numbers worked out by hand,
 * the SFT term, the split of an accumulated batch, derivatives against central finite
 * differences, and the bridge to logits (sequence log-probabilities by hand, their logit
 * gradient against finite differences, masked positions). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autodidact/preference.h"
#include "autodidact/rng.h"
#include "testutil.h"

#define NEAR(a, b, tol) ck_assert_msg(fabs((double)(a) - (double)(b)) <= (tol), \
                                      "%s = %.12g, expected %.12g", #a, (double)(a), (double)(b))

/* DPO, beta 0.1: h = (pc - rc) - (pr - rr) = (-5 + 6) - (-7 + 6) = 2, z = 0.2;
 * loss = log(1 + e^-0.2) = 0.598138869...; with label smoothing 0.1:
 * 0.9 log(1 + e^-0.2) + 0.1 log(1 + e^0.2) = 0.538324982 + 0.0798138869 = 0.618138869. */
START_TEST(test_dpo_by_hand) {
    double pc = -5, pr = -7, rc = -6, rr = -6;
    int lc = 3, lr = 4;
    AdPrefLoss L = {AD_PREF_DPO, 0.1, 0.0, 0.0, 0.0};
    AdPrefMetrics m;
    memset(&m, 0, sizeof m);
    double d_pc, d_pr;
    double v = ad_pref_loss(&d_pc, &d_pr, &m, &L, &pc, &pr, &lc, &lr, &rc, &rr, 1, 1, lc);
    NEAR(v, log1p(exp(-0.2)), 1e-12);
    NEAR(v, 0.598138869381, 1e-9);
    /* d/dpc = -beta sigmoid(-z) = -0.1 * 0.450166002688 */
    NEAR(d_pc, -0.0450166002688, 1e-11);
    NEAR(d_pr, 0.0450166002688, 1e-11);
    NEAR(m.rewards_chosen, 0.1, 1e-12);
    NEAR(m.rewards_rejected, -0.1, 1e-12);
    NEAR(m.rewards_margins, 0.2, 1e-12);
    NEAR(m.rewards_accuracies, 1, 0);
    NEAR(m.logps_chosen, -5, 0);
    NEAR(m.logps_rejected, -7, 0);
    ck_assert_int_eq(m.n, 1);
    NEAR(m.loss, v, 0);
    L.label_smoothing = 0.1;
    v = ad_pref_loss(NULL, NULL, NULL, &L, &pc, &pr, &lc, &lr, &rc, &rr, 1, 1, lc);
    NEAR(v, 0.618138869381, 1e-9);
    /* a pair the policy has the wrong way round: chosen reward below rejected */
    double pc2 = -8;
    memset(&m, 0, sizeof m);
    L.label_smoothing = 0;
    v = ad_pref_loss(NULL, NULL, &m, &L, &pc2, &pr, &lc, &lr, &rc, &rr, 1, 1, lc);
    NEAR(v, log1p(exp(0.1)), 1e-12); /* h = -2 + 1 = -1, z = -0.1 */
    NEAR(m.rewards_accuracies, 0, 0);
}
END_TEST

/* IPO, beta 0.5 on per-token means: pc -2 over 2 tokens (-1), rc -3 (-1.5), pr -8 over 4
 * (-2), rr -8 (-2): h = 0.5 - 0 = 0.5, loss = (0.5 - 1/(2 * 0.5))^2 = 0.25;
 * d/dpc = 2 (0.5 - 1) / 2 = -0.5, d/dpr = -2 (0.5 - 1) / 4 = 0.25. */
START_TEST(test_ipo_by_hand) {
    double pc = -2, pr = -8, rc = -3, rr = -8, d_pc, d_pr;
    int lc = 2, lr = 4;
    AdPrefLoss L = {AD_PREF_IPO, 0.5, 0.0, 0.0, 0.0};
    AdPrefMetrics m;
    memset(&m, 0, sizeof m);
    double v = ad_pref_loss(&d_pc, &d_pr, &m, &L, &pc, &pr, &lc, &lr, &rc, &rr, 1, 1, lc);
    NEAR(v, 0.25, 1e-14);
    NEAR(d_pc, -0.5, 1e-14);
    NEAR(d_pr, 0.25, 1e-14);
    NEAR(m.logps_chosen, -1, 0); /* the means the loss sees */
    NEAR(m.rewards_chosen, 0.5 * 0.5, 1e-14);
    NEAR(m.rewards_rejected, 0, 1e-14);
}
END_TEST

/* SimPO, beta 2, gamma 0.5: means -1 and -2, z = 2 (-1 + 2) - 0.5 = 1.5,
 * loss = log(1 + e^-1.5) = 0.201413277...; no reference needed (NULL). With the SFT term
 * (alpha 1, 2 chosen tokens): + 2 / 2 = 1. */
START_TEST(test_simpo_and_sft_by_hand) {
    double pc = -2, pr = -8, d_pc, d_pr;
    int lc = 2, lr = 4;
    AdPrefLoss L = {AD_PREF_SIMPO, 2.0, 0.0, 0.5, 0.0};
    double v = ad_pref_loss(&d_pc, &d_pr, NULL, &L, &pc, &pr, &lc, &lr, NULL, NULL, 1, 1, lc);
    NEAR(v, 0.201413277, 1e-9);
    /* d/dpc = -beta sigmoid(-1.5) / lc = -2 * 0.182425523806 / 2 */
    NEAR(d_pc, -0.182425523806, 1e-11);
    NEAR(d_pr, 2 * 0.182425523806 / 4, 1e-11);
    L.sft_alpha = 1.0;
    double d2;
    v = ad_pref_loss(&d2, NULL, NULL, &L, &pc, &pr, &lc, &lr, NULL, NULL, 1, 1, lc);
    NEAR(v, 1.201413277, 1e-9);
    NEAR(d2, d_pc - 0.5, 1e-12);
}
END_TEST

/* Parts of an accumulated batch add up to the loss of the whole batch. */
START_TEST(test_batch_split_adds_up) {
    double pc[4] = {-3, -1, -6, -2.5}, pr[4] = {-4, -2, -5, -7}, rc[4] = {-3.5, -1, -5, -3},
           rr[4] = {-4, -1.5, -6, -6};
    int lc[4] = {2, 1, 5, 3}, lr[4] = {3, 2, 4, 6};
    for (int k = 0; k < 3; k++) {
        AdPrefLoss L = {(AdPrefKind)k, 0.3, 0.05, 0.2, 0.5};
        double whole = ad_pref_loss(NULL, NULL, NULL, &L, pc, pr, lc, lr, rc, rr, 4, 4, 11);
        double a = ad_pref_loss(NULL, NULL, NULL, &L, pc, pr, lc, lr, rc, rr, 1, 4, 11);
        double b = ad_pref_loss(NULL, NULL, NULL, &L, pc + 1, pr + 1, lc + 1, lr + 1, rc + 1,
                                rr + 1, 3, 4, 11);
        NEAR(a + b, whole, 1e-12);
        /* the whole: the mean of the pair losses plus alpha times the mean chosen NLL */
        double sum = 0;
        for (int i = 0; i < 4; i++)
            sum += ad_pref_loss(NULL, NULL, NULL, &L, pc + i, pr + i, lc + i, lr + i, rc + i, rr + i,
                                1, 1, lc[i]) - 0.5 * (-pc[i]) / lc[i];
        NEAR(whole, sum / 4 + 0.5 * 12.5 / 11, 1e-12);
    }
}
END_TEST

/* d loss / d pc_i and d pr_i against central differences, every kind, with smoothing,
 * margin and the SFT term on, over random pairs (some with large margins). */
START_TEST(test_pair_gradients) {
    AdRng rng;
    ad_rng_init(&rng, 5, AD_STREAM_INIT, 0);
    enum { N = 6 };
    double pc[N], pr[N], rc[N], rr[N], d_pc[N], d_pr[N];
    int lc[N], lr[N];
    for (int k = 0; k < 3; k++)
        for (int trial = 0; trial < 4; trial++) {
            long tok = 0;
            for (int i = 0; i < N; i++) {
                lc[i] = 1 + (int)ad_rng_below(&rng, 9), lr[i] = 1 + (int)ad_rng_below(&rng, 9);
                pc[i] = -20 * ad_rng_uniform(&rng), pr[i] = -20 * ad_rng_uniform(&rng);
                rc[i] = -20 * ad_rng_uniform(&rng), rr[i] = -20 * ad_rng_uniform(&rng);
                tok += lc[i];
            }
            AdPrefLoss L = {(AdPrefKind)k, 0.05 + trial * 0.3, 0.1 * (trial & 1), 0.4, 0.25 * trial};
            ad_pref_loss(d_pc, d_pr, NULL, &L, pc, pr, lc, lr, rc, rr, N, N, tok);
            for (int i = 0; i < N; i++) {
                double h = 1e-5, keep = pc[i];
                pc[i] = keep + h;
                double up = ad_pref_loss(NULL, NULL, NULL, &L, pc, pr, lc, lr, rc, rr, N, N, tok);
                pc[i] = keep - h;
                double dn = ad_pref_loss(NULL, NULL, NULL, &L, pc, pr, lc, lr, rc, rr, N, N, tok);
                pc[i] = keep;
                NEAR(d_pc[i], (up - dn) / (2 * h), 1e-8);
                keep = pr[i];
                pr[i] = keep + h;
                up = ad_pref_loss(NULL, NULL, NULL, &L, pc, pr, lc, lr, rc, rr, N, N, tok);
                pr[i] = keep - h;
                dn = ad_pref_loss(NULL, NULL, NULL, &L, pc, pr, lc, lr, rc, rr, N, N, tok);
                pr[i] = keep;
                NEAR(d_pr[i], (up - dn) / (2 * h), 1e-8);
            }
        }
}
END_TEST

/* Large margins stay finite (log-sigmoid without overflow). */
START_TEST(test_extreme_margins) {
    double pc = 0, pr = -1e4, rc = 0, rr = 0, d_pc, d_pr;
    int lc = 1, lr = 1;
    AdPrefLoss L = {AD_PREF_DPO, 1.0, 0.0, 0.0, 0.0};
    double v = ad_pref_loss(&d_pc, &d_pr, NULL, &L, &pc, &pr, &lc, &lr, &rc, &rr, 1, 1, 1);
    ck_assert(isfinite(v) && v >= 0 && v < 1e-300 + 1e-12);
    pr = 0, pc = -1e4;
    v = ad_pref_loss(&d_pc, &d_pr, NULL, &L, &pc, &pr, &lc, &lr, &rc, &rr, 1, 1, 1);
    NEAR(v, 1e4, 1e-6);
    NEAR(d_pc, -1.0, 1e-12);
}
END_TEST

/* Two rows of V = 2, T = 3: row 0 logits [0, log 3] (p = 1/4, 3/4) at targets 1, 0 and a
 * masked third position; row 1 all masked. */
START_TEST(test_seq_logps_by_hand) {
    float logits[2 * 3 * 2];
    for (int i = 0; i < 6; i++) logits[2 * i] = 0.0f, logits[2 * i + 1] = logf(3.0f);
    int targets[6] = {1, 0, -1, -1, -1, -1};
    double logp[2];
    int count[2];
    ad_pref_seq_logps(logp, count, logits, targets, 2, 3, 2);
    NEAR(logp[0], log(0.75) + log(0.25), 1e-6);
    ck_assert_int_eq(count[0], 2);
    NEAR(logp[1], 0, 0);
    ck_assert_int_eq(count[1], 0);
}
END_TEST

/* dlogits of sum_b d_seq[b] logp_b against central differences of ad_pref_seq_logps, and
 * zeros at masked positions. */
START_TEST(test_seq_dlogits_fd) {
    enum { B = 3, T = 4, V = 7 };
    float logits[B * T * V], dl[B * T * V];
    int targets[B * T] = {2, 5, -1, -1, 0, 1, 6, 3, -1, 4, 4, -1};
    double d_seq[B] = {0.7, -1.3, 0.25}, lp[B];
    AdRng rng;
    ad_rng_init(&rng, 9, AD_STREAM_INIT, 0);
    for (int i = 0; i < B * T * V; i++) logits[i] = 4.0f * (ad_rng_uniform(&rng) - 0.5f);
    ad_pref_seq_dlogits(dl, logits, targets, d_seq, B, T, V);
    for (int i = 0; i < B * T * V; i++) {
        float keep = logits[i], h = 1e-2f;
        double f[2];
        for (int s = 0; s < 2; s++) {
            logits[i] = keep + (s ? -h : h);
            ad_pref_seq_logps(lp, NULL, logits, targets, B, T, V);
            f[s] = 0;
            for (int b = 0; b < B; b++) f[s] += d_seq[b] * lp[b];
        }
        logits[i] = keep;
        double fd = (f[0] - f[1]) / (2 * h);
        ck_assert_msg(fabs(dl[i] - fd) < 2e-3, "logit %d: %g vs finite difference %g", i, dl[i], fd);
        if (targets[i / V] < 0) ck_assert(dl[i] == 0.0f);
    }
}
END_TEST

START_TEST(test_names) {
    for (int k = 0; k < 3; k++) ck_assert_int_eq(ad_pref_parse(ad_pref_name((AdPrefKind)k)), k);
    ck_assert_int_eq(ad_pref_parse("kto"), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("losses_pref");
    const AdTestCase cases[] = {
        {"dpo by hand", test_dpo_by_hand},
        {"ipo by hand", test_ipo_by_hand},
        {"simpo and sft by hand", test_simpo_and_sft_by_hand},
        {"batch split adds up", test_batch_split_adds_up},
        {"pair gradients", test_pair_gradients},
        {"extreme margins", test_extreme_margins},
        {"sequence log-probs by hand", test_seq_logps_by_hand},
        {"sequence dlogits by finite differences", test_seq_dlogits_fd},
        {"names", test_names},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], 20);
    return ad_test_run(s);
}
