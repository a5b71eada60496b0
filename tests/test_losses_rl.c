/* test_losses_rl.c: the GRPO / RLOO objective of rl.h: advantages (GRPO, Dr. GRPO, RLOO)
 * and the clipped surrogate with its k3 KL term against numbers worked out by hand, the three
 * normalisations, the split of an accumulated batch, the derivative against central finite
 * differences, the two identities (ratio 1 gives REINFORCE with the group baseline; a group of
 * equal rewards contributes nothing), and the per-token bridges of preference.h. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "autodidact/preference.h"
#include "autodidact/rl.h"
#include "autodidact/rng.h"
#include "testutil.h"

#define NEAR(a, b, tol) ck_assert_msg(fabs((double)(a) - (double)(b)) <= (tol), \
                                      "%s = %.12g, expected %.12g", #a, (double)(a), (double)(b))

/* Groups of G = 4: {1, 0, 0, 1} (mean 0.5, unbiased std sqrt(1/3)), {2, 2, 2, 2} (flat),
 * {3, 0, 0, 0} (mean 0.75, unbiased std 1.5). */
START_TEST(test_advantages_by_hand) {
    double r[12] = {1, 0, 0, 1, 2, 2, 2, 2, 3, 0, 0, 0}, a[12];
    long flat = ad_rl_advantages(a, r, 3, 4, AD_RL_BASELINE_MEAN, 1);
    ck_assert_int_eq(flat, 1);
    double s = 0.5 / (sqrt(1.0 / 3.0) + 1e-4);
    NEAR(a[0], s, 1e-12);
    NEAR(a[1], -s, 1e-12);
    NEAR(a[3], s, 1e-12);
    for (int i = 4; i < 8; i++) NEAR(a[i], 0, 0);
    NEAR(a[8], 2.25 / 1.5001, 1e-12);
    NEAR(a[9], -0.75 / 1.5001, 1e-12);
    /* Dr. GRPO: no std division */
    ad_rl_advantages(a, r, 3, 4, AD_RL_BASELINE_MEAN, 0);
    NEAR(a[0], 0.5, 1e-15);
    NEAR(a[2], -0.5, 1e-15);
    NEAR(a[8], 2.25, 1e-15);
    NEAR(a[11], -0.75, 1e-15);
    /* RLOO: r_i minus the mean of the other three */
    flat = ad_rl_advantages(a, r, 3, 4, AD_RL_BASELINE_RLOO, 0);
    ck_assert_int_eq(flat, 1);
    NEAR(a[0], 1 - 1.0 / 3, 1e-15);
    NEAR(a[1], -2.0 / 3, 1e-15);
    for (int i = 4; i < 8; i++) NEAR(a[i], 0, 0);
    NEAR(a[8], 3, 1e-15);
    NEAR(a[9], -1, 1e-15);
    /* RLOO is G/(G-1) times the mean baseline's advantage */
    double m[12];
    ad_rl_advantages(m, r, 3, 4, AD_RL_BASELINE_MEAN, 0);
    for (int i = 0; i < 12; i++) NEAR(a[i], m[i] * 4.0 / 3.0, 1e-14);
}
END_TEST

/* One sequence of two tokens, advantage 2, epsilon 0.2, beta 0.1, per-sequence norm:
 * token 0: ratio e^0.5 = 1.6487 > 1.2 with A > 0: the clip binds, l = -1.2 * 2, d = 0;
 *          ref = logp: kl 0.
 * token 1: ratio 1, l = -2, d = -2; ref - logp = -0.5: kl = e^-0.5 - 0.5 = 0.1065306597,
 *          d kl = 1 - e^-0.5 = 0.3934693403.
 * loss = (-2.4 - 2 + 0.01065306597) / 2, d = (0, (-2 + 0.03934693403) / 2). */
START_TEST(test_loss_by_hand) {
    double logp[2] = {-1, -2}, old[2] = {-1.5, -2}, ref[2] = {-1, -2.5}, adv = 2, d[2];
    int tg[2] = {3, 4};
    AdRlLoss L = {0.2, 0, 0.1, AD_RL_NORM_SEQUENCE, 8};
    AdRlMetrics m;
    memset(&m, 0, sizeof m);
    double v = ad_rl_loss(d, &m, &L, logp, old, ref, tg, &adv, 1, 2, 1, 2);
    NEAR(v, (-4.4 + 0.01065306597) / 2, 1e-10);
    NEAR(d[0], 0, 0);
    NEAR(d[1], (-2 + 0.03934693403) / 2, 1e-10);
    NEAR(m.kl, 0.1065306597, 1e-10);
    NEAR(m.clip_high, 1, 0);
    NEAR(m.clip_low, 0, 0);
    NEAR(m.ratio, exp(0.5) + 1, 1e-12);
    ck_assert_int_eq(m.tokens, 2);
    NEAR(m.loss, v, 0);
    /* epsilon_high 0.7: 1.6487 < 1.7, token 0 unclipped: l = -2 e^0.5, d = -2 e^0.5 */
    L.epsilon_high = 0.7;
    v = ad_rl_loss(d, NULL, &L, logp, old, ref, tg, &adv, 1, 2, 1, 2);
    NEAR(v, (-2 * exp(0.5) - 2 + 0.01065306597) / 2, 1e-10);
    NEAR(d[0], -exp(0.5), 1e-12);
    /* a negative advantage: ratio e^0.5 is above 1 - eps and the clip does not bind (the
     * unclipped -r A is the larger loss); ratio e^-0.5 = 0.607 < 0.8 binds: l = 0.8 * 2 */
    adv = -2;
    L.epsilon_high = 0, L.beta = 0;
    v = ad_rl_loss(d, NULL, &L, logp, old, NULL, tg, &adv, 1, 2, 1, 2);
    NEAR(v, (2 * exp(0.5) + 2) / 2, 1e-12);
    NEAR(d[0], exp(0.5), 1e-12);
    double old2[2] = {-0.5, -2};
    memset(&m, 0, sizeof m);
    v = ad_rl_loss(d, &m, &L, logp, old2, NULL, tg, &adv, 1, 2, 1, 2);
    NEAR(v, (1.6 + 2) / 2, 1e-12);
    NEAR(d[0], 0, 0);
    NEAR(m.clip_low, 1, 0);
    NEAR(m.kl, 0, 0); /* no reference: no KL */
}
END_TEST

/* The normalisations on two sequences of 1 and 3 tokens (one masked position), ratio 1,
 * beta 0, advantages 1 and -1: token losses -1 and +1, +1, +1.
 * sequence: (-1/1 + 3/3) / 2 = 0; token: (-1 + 3) / 4 = 0.5; constant (max_len 5): 2 / 10. */
START_TEST(test_normalisations) {
    double logp[8] = {-1, 0, 0, 0, -1, -2, -3, 0}, adv[2] = {1, -1}, d[8];
    int tg[8] = {1, -1, -1, -1, 1, 2, 3, -1};
    AdRlLoss L = {0.2, 0, 0, AD_RL_NORM_SEQUENCE, 5};
    NEAR(ad_rl_loss(d, NULL, &L, logp, logp, NULL, tg, adv, 2, 4, 2, 4), 0, 1e-15);
    NEAR(d[0], -0.5, 1e-15);
    NEAR(d[4], 1.0 / 6, 1e-15);
    NEAR(d[1], 0, 0);
    NEAR(d[7], 0, 0);
    L.norm = AD_RL_NORM_TOKEN;
    NEAR(ad_rl_loss(d, NULL, &L, logp, logp, NULL, tg, adv, 2, 4, 2, 4), 0.5, 1e-15);
    NEAR(d[0], -0.25, 1e-15);
    NEAR(d[5], 0.25, 1e-15);
    L.norm = AD_RL_NORM_CONSTANT;
    NEAR(ad_rl_loss(d, NULL, &L, logp, logp, NULL, tg, adv, 2, 4, 2, 4), 0.2, 1e-15);
    NEAR(d[0], -0.1, 1e-15);
    NEAR(d[6], 0.1, 1e-15);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(ad_rl_norm_parse(ad_rl_norm_name((AdRlNorm)k)), k);
    ck_assert_int_eq(ad_rl_norm_parse("bnpo"), -1);
}
END_TEST

enum { NB = 6, NT = 5 };

/* Random sequences (masked tails, one fully masked row), ratios within about e^+-0.4 of 1
 * so the clip binds on some tokens, advantages of both signs. */
static void random_batch(AdRng *rng, double *logp, double *old, double *ref, int *tg, double *adv) {
    for (int b = 0; b < NB; b++) {
        int len = b == 2 ? 0 : 1 + (int)ad_rng_below(rng, NT);
        adv[b] = 3.0 * (ad_rng_uniform(rng) - 0.5);
        for (int t = 0; t < NT; t++) {
            int i = b * NT + t;
            tg[i] = t < len ? (int)ad_rng_below(rng, 9) : -1;
            logp[i] = -4.0 * ad_rng_uniform(rng);
            old[i] = logp[i] + 0.8 * (ad_rng_uniform(rng) - 0.5);
            ref[i] = logp[i] + 1.0 * (ad_rng_uniform(rng) - 0.5);
        }
    }
}

/* d loss / d logp against central differences, every normalisation, with and without the KL
 * term and an asymmetric clip. */
START_TEST(test_gradient_fd) {
    AdRng rng;
    ad_rng_init(&rng, 11, AD_STREAM_INIT, 0);
    double logp[NB * NT], old[NB * NT], ref[NB * NT], adv[NB], d[NB * NT];
    int tg[NB * NT];
    long clipped = 0;
    for (int k = 0; k < 3; k++)
        for (int trial = 0; trial < 4; trial++) {
            random_batch(&rng, logp, old, ref, tg, adv);
            long tok = 0;
            for (int i = 0; i < NB * NT; i++) tok += tg[i] >= 0;
            AdRlLoss L = {0.1, trial & 1 ? 0.28 : 0, trial >= 2 ? 0.04 : 0, (AdRlNorm)k, 7};
            AdRlMetrics m;
            memset(&m, 0, sizeof m);
            ad_rl_loss(d, &m, &L, logp, old, ref, tg, adv, NB, NT, NB, tok);
            clipped += (long)(m.clip_low + m.clip_high);
            for (int i = 0; i < NB * NT; i++) {
                double h = 1e-6, keep = logp[i];
                logp[i] = keep + h;
                double up = ad_rl_loss(NULL, NULL, &L, logp, old, ref, tg, adv, NB, NT, NB, tok);
                logp[i] = keep - h;
                double dn = ad_rl_loss(NULL, NULL, &L, logp, old, ref, tg, adv, NB, NT, NB, tok);
                logp[i] = keep;
                ck_assert_msg(fabs(d[i] - (up - dn) / (2 * h)) < 1e-7,
                              "norm %d trial %d token %d: %.10g vs finite difference %.10g", k,
                              trial, i, d[i], (up - dn) / (2 * h));
            }
        }
    ck_assert_msg(clipped > 0, "no token was clipped: the test does not reach the clip");
}
END_TEST

/* Parts of an accumulated batch add up to the whole's loss and gradient. */
START_TEST(test_batch_split_adds_up) {
    AdRng rng;
    ad_rng_init(&rng, 12, AD_STREAM_INIT, 0);
    double logp[NB * NT], old[NB * NT], ref[NB * NT], adv[NB], d[NB * NT], d2[NB * NT];
    int tg[NB * NT];
    random_batch(&rng, logp, old, ref, tg, adv);
    long tok = 0;
    for (int i = 0; i < NB * NT; i++) tok += tg[i] >= 0;
    for (int k = 0; k < 3; k++) {
        AdRlLoss L = {0.2, 0.3, 0.05, (AdRlNorm)k, 6};
        double whole = ad_rl_loss(d, NULL, &L, logp, old, ref, tg, adv, NB, NT, NB, tok);
        double a = ad_rl_loss(d2, NULL, &L, logp, old, ref, tg, adv, 2, NT, NB, tok);
        double b = ad_rl_loss(d2 + 2 * NT, NULL, &L, logp + 2 * NT, old + 2 * NT, ref + 2 * NT,
                              tg + 2 * NT, adv + 2, NB - 2, NT, NB, tok);
        NEAR(a + b, whole, 1e-13);
        for (int i = 0; i < NB * NT; i++) NEAR(d2[i], d[i], 0);
    }
}
END_TEST

/* With one update per batch the policy is the sampling policy (ratio 1) and, without the KL
 * term, the gradient is REINFORCE with the group baseline: d loss / d logp_bt = -A_b w_b,
 * the derivative of -sum_b w_b A_b sum_t logp_bt, whatever epsilon; nothing is clipped. */
START_TEST(test_ratio_one_is_reinforce) {
    AdRng rng;
    ad_rng_init(&rng, 13, AD_STREAM_INIT, 0);
    double logp[NB * NT], old[NB * NT], ref[NB * NT], adv[NB], d[NB * NT];
    double reward[NB] = {1, 0, 0.5, 0.5, 0, 0}, base[NB];
    int tg[NB * NT];
    random_batch(&rng, logp, old, ref, tg, adv);
    for (int k = 0; k < 2; k++) {
        /* two groups of 3; advantages r - (leave-one-out) mean */
        AdRlBaseline bl = k ? AD_RL_BASELINE_RLOO : AD_RL_BASELINE_MEAN;
        ad_rl_advantages(adv, reward, 2, 3, bl, 0);
        for (int g = 0; g < 2; g++)
            for (int i = 0; i < 3; i++) {
                double s = 0;
                for (int j = 0; j < 3; j++)
                    if (!k || j != i) s += reward[3 * g + j];
                base[3 * g + i] = s / (k ? 2 : 3);
            }
        AdRlLoss L = {0.01, 0, 0, AD_RL_NORM_SEQUENCE, 5};
        AdRlMetrics m;
        memset(&m, 0, sizeof m);
        double v = ad_rl_loss(d, &m, &L, logp, logp, NULL, tg, adv, NB, NT, NB, 1);
        double reinforce = 0;
        for (int b = 0; b < NB; b++) {
            int len = 0;
            for (int t = 0; t < NT; t++) len += tg[b * NT + t] >= 0;
            double w = len ? 1.0 / (len * (double)NB) : 0;
            reinforce -= w * (reward[b] - base[b]) * len; /* the surrogate's value at ratio 1 */
            for (int t = 0; t < NT; t++)
                if (tg[b * NT + t] >= 0) NEAR(d[b * NT + t], -(reward[b] - base[b]) * w, 1e-15);
        }
        NEAR(v, reinforce, 1e-14);
        NEAR(m.clip_low + m.clip_high, 0, 0);
        NEAR(m.ratio, m.tokens, 1e-12);
    }
}
END_TEST

/* A group whose rewards are all equal has zero advantages, so without the KL term its
 * sequences contribute neither loss nor gradient, whatever their ratios. */
START_TEST(test_flat_group_contributes_nothing) {
    AdRng rng;
    ad_rng_init(&rng, 14, AD_STREAM_INIT, 0);
    double logp[NB * NT], old[NB * NT], ref[NB * NT], adv[NB], d[NB * NT];
    double reward[NB] = {1, 0, 1, 0.7, 0.7, 0.7};
    int tg[NB * NT];
    random_batch(&rng, logp, old, ref, tg, adv);
    for (int scale = 0; scale < 2; scale++) {
        ck_assert_int_eq(ad_rl_advantages(adv, reward, 2, 3, AD_RL_BASELINE_MEAN, scale), 1);
        AdRlLoss L = {0.2, 0, 0, AD_RL_NORM_TOKEN, 5};
        double v = ad_rl_loss(d, NULL, &L, logp, old, NULL, tg, adv, NB, NT, NB, 20);
        double first = ad_rl_loss(NULL, NULL, &L, logp, old, NULL, tg, adv, 3, NT, NB, 20);
        NEAR(v, first, 0);
        for (int i = 3 * NT; i < NB * NT; i++) NEAR(d[i], 0, 0);
        ck_assert(fabs(first) > 0); /* the first group does count */
    }
}
END_TEST

/* Row 0 of V = 2, T = 3: logits [0, log 3] (p = 1/4, 3/4) at targets 1, 0 and a masked
 * position: log-probs log 3/4, log 1/4, 0; entropy -(1/4 log 1/4 + 3/4 log 3/4) = 0.5623351. */
START_TEST(test_token_logps_by_hand) {
    float logits[6];
    for (int i = 0; i < 3; i++) logits[2 * i] = 0.0f, logits[2 * i + 1] = logf(3.0f);
    int tg[3] = {1, 0, -1};
    double lp[3], h[3];
    ad_pref_token_logps(lp, h, logits, tg, 1, 3, 2);
    NEAR(lp[0], log(0.75), 1e-6);
    NEAR(lp[1], log(0.25), 1e-6);
    NEAR(lp[2], 0, 0);
    NEAR(h[0], 0.5623351446, 1e-6);
    NEAR(h[1], 0.5623351446, 1e-6);
    NEAR(h[2], 0, 0);
}
END_TEST

/* dlogits of sum_i d_tok[i] logp_i against central differences of ad_pref_token_logps. */
START_TEST(test_token_dlogits_fd) {
    enum { B = 2, T = 4, V = 5 };
    float logits[B * T * V], dl[B * T * V];
    int tg[B * T] = {2, 4, -1, 0, 1, -1, 3, 3};
    double d_tok[B * T], lp[B * T];
    AdRng rng;
    ad_rng_init(&rng, 15, AD_STREAM_INIT, 0);
    for (int i = 0; i < B * T * V; i++) logits[i] = 4.0f * (ad_rng_uniform(&rng) - 0.5f);
    for (int i = 0; i < B * T; i++) d_tok[i] = 2.0 * (ad_rng_uniform(&rng) - 0.5);
    ad_pref_token_dlogits(dl, logits, tg, d_tok, B, T, V);
    for (int i = 0; i < B * T * V; i++) {
        float keep = logits[i], h = 1e-2f;
        double f[2];
        for (int s = 0; s < 2; s++) {
            logits[i] = keep + (s ? -h : h);
            ad_pref_token_logps(lp, NULL, logits, tg, B, T, V);
            f[s] = 0;
            for (int j = 0; j < B * T; j++) f[s] += d_tok[j] * lp[j];
        }
        logits[i] = keep;
        double fd = (f[0] - f[1]) / (2 * h);
        ck_assert_msg(fabs(dl[i] - fd) < 2e-3, "logit %d: %g vs finite difference %g", i, dl[i], fd);
        if (tg[i / V] < 0) ck_assert(dl[i] == 0.0f);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("losses_rl");
    const AdTestCase cases[] = {
        {"advantages by hand", test_advantages_by_hand},
        {"loss by hand", test_loss_by_hand},
        {"normalisations", test_normalisations},
        {"gradient by finite differences", test_gradient_fd},
        {"batch split adds up", test_batch_split_adds_up},
        {"ratio one is reinforce", test_ratio_one_is_reinforce},
        {"flat group contributes nothing", test_flat_group_contributes_nothing},
        {"token log-probs by hand", test_token_logps_by_hand},
        {"token dlogits by finite differences", test_token_dlogits_fd},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], 20);
    return ad_test_run(s);
}
