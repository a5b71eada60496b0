/* test_optim.c: AdamW against the update formula evaluated here in double (one step in
 * closed form, three steps iterated, decay only on tensors flagged decay = 1), the
 * learning-rate schedules against numbers worked out by hand, and global-norm clipping on
 * gradients of known norm. Parameters and gradients are set by hand in a tiny AdModel. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodidact/model.h"
#include "autodidact/optim.h"
#include "autodidact/rng.h"
#include "testutil.h"

#define EPS32 ((double)FLT_EPSILON)
#define TIMEOUT 60

/* ---- a tiny model: only its tensor table and flat blocks are used ---------------- */

/* gpt2 switches with vocabulary V, width C, F = 2C, maxT = 2, one layer and head (V=3, C=2:
 * 68 parameters in 16 tensors), both decayed (embeddings, matrices) and not (norms,
 * biases). */
static void tiny_model(AdModel *m, int V, int C) {
    AdModelConfig c;
    ck_assert_int_eq(ad_model_config_preset(&c, "gpt2"), AD_OK);
    c.vocab_size = V, c.max_seq_len = 2, c.n_layer = 1, c.n_head = 1, c.n_kv_head = 1;
    c.d_model = C, c.d_ff = 2 * C;
    AdStatus st = ad_model_init(m, &c, 1);
    ck_assert_msg(st == AD_OK, "ad_model_init: %s", ad_errmsg());
    ck_assert_ptr_nonnull(m->grads_mem);
}

/* decay flag of each flat parameter index, from the tensor table in storage order. */
static int *decay_flags(const AdModel *m) {
    int *d = calloc(m->n_params, sizeof(int));
    ck_assert_ptr_nonnull(d);
    size_t off = 0, n_decay = 0;
    for (int t = 0; t < AD_P_COUNT; t++) {
        for (size_t i = 0; i < m->info[t].size; i++) d[off + i] = m->info[t].decay;
        off += m->info[t].size;
        n_decay += m->info[t].decay ? m->info[t].size : 0;
    }
    ck_assert(off == m->n_params);
    ck_assert_msg(n_decay > 0 && n_decay < m->n_params, "need both decayed and undecayed tensors");
    return d;
}

/* ==================================================================== AdamW */

/* One literal case worked by hand: p = 1, g = 0.5, lr = 0.1, wd = 0.1, eps = 1e-8, step 1:
 * mhat = g, vhat = g^2, so p1 = 1 - 0.1 (0.5 / (0.5 + 1e-8) + 0.1 * 1) = 0.890000002. A
 * no-decay tensor with the same p, g moves to 1 - 0.1 * 0.99999998 = 0.900000002. */
START_TEST(test_adamw_hand_value) {
    AdModel m;
    tiny_model(&m, 3, 2);
    AdAdamWConfig cfg = {0.9f, 0.999f, 1e-8f, 0.1f};
    AdAdamW o;
    ck_assert_int_eq(ad_adamw_init(&o, &cfg, m.n_params), AD_OK);
    ck_assert(m.info[AD_P_WTE].decay == 1 && m.info[AD_P_LN1W].decay == 0);
    m.params.t[AD_P_WTE][0] = 1.0f, m.grads.t[AD_P_WTE][0] = 0.5f;
    m.params.t[AD_P_LN1W][0] = 1.0f, m.grads.t[AD_P_LN1W][0] = 0.5f;
    ad_adamw_step(&o, &m, 0.1f);
    ck_assert_msg(fabs(m.params.t[AD_P_WTE][0] - 0.890000002) <= 2 * EPS32, "decayed: %.9g",
                  m.params.t[AD_P_WTE][0]);
    ck_assert_msg(fabs(m.params.t[AD_P_LN1W][0] - 0.900000002) <= 2 * EPS32, "undecayed: %.9g",
                  m.params.t[AD_P_LN1W][0]);
    /* Zero parameters with zero gradients stay exactly zero. */
    ck_assert(m.params.t[AD_P_WTE][1] == 0.0f && m.params.t[AD_P_LN1W][1] == 0.0f);
    ck_assert_int_eq(o.step, 1);
    ad_adamw_free(&o);
    ad_model_free(&m);
}
END_TEST

/* Random parameters and gradients (some gradients exactly 0), steps with varying lr.
 * Reference in double: after step 1 the closed form p - lr (g / (|g| + eps) + wd p); after
 * each step the iterated formula of optim.h. The float update differs from it by a few
 * roundings of p and of the update: tolerance 1e-6 (|p| + lr). The effects the test must
 * see are far larger: bias correction (x3 at step 1), decay on the wrong tensors
 * (lr wd |p| >= 1e-3 here), and eps (eps = 1e-3 against |g| ~ 1e-2..1 moves updates by
 * 0.1 .. 10%). */
START_TEST(test_adamw_steps) {
    AdModel m;
    tiny_model(&m, 5, 4);
    size_t n = m.n_params;
    int *decay = decay_flags(&m);
    AdAdamWConfig cfg = {0.8f, 0.95f, 1e-3f, 0.5f};
    AdAdamW o;
    ck_assert_int_eq(ad_adamw_init(&o, &cfg, n), AD_OK);
    AdRng rng;
    ad_rng_init(&rng, 7, 100, 0);
    /* ma: sum of |terms| of the first moment (its float error is a few EPS32 of that). */
    double *p = calloc(n, sizeof(double)), *mm = calloc(n, sizeof(double)),
           *vv = calloc(n, sizeof(double)), *ma = calloc(n, sizeof(double));
    ck_assert(p && mm && vv && ma);
    for (size_t i = 0; i < n; i++) {
        m.params_mem[i] = (0.5f + ad_rng_uniform(&rng)) * (ad_rng_uniform(&rng) < 0.5f ? -1 : 1);
        p[i] = m.params_mem[i];
    }
    const float lrs[3] = {0.01f, 0.02f, 0.005f};
    const double b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps, wd = cfg.weight_decay;
    for (int step = 1; step <= 3; step++) {
        for (size_t i = 0; i < n; i++) {
            float mag = powf(10.0f, -2.0f + 2.0f * ad_rng_uniform(&rng)); /* 1e-2 .. 1 */
            m.grads_mem[i] = i % 7 == 3 ? 0.0f : mag * (ad_rng_uniform(&rng) < 0.5f ? -1 : 1);
        }
        double lr = lrs[step - 1];
        double *closed = NULL;
        if (step == 1) {
            closed = calloc(n, sizeof(double));
            ck_assert_ptr_nonnull(closed);
            for (size_t i = 0; i < n; i++) {
                double g = m.grads_mem[i];
                closed[i] = p[i] - lr * (g / (fabs(g) + eps) + (decay[i] ? wd : 0.0) * p[i]);
            }
        }
        for (size_t i = 0; i < n; i++) {
            double g = m.grads_mem[i];
            mm[i] = b1 * mm[i] + (1 - b1) * g;
            ma[i] = b1 * ma[i] + (1 - b1) * fabs(g);
            vv[i] = b2 * vv[i] + (1 - b2) * g * g;
            double mhat = mm[i] / (1 - pow(b1, step)), vhat = vv[i] / (1 - pow(b2, step));
            p[i] -= lr * (mhat / (sqrt(vhat) + eps) + (decay[i] ? wd : 0.0) * p[i]);
        }
        ad_adamw_step(&o, &m, lrs[step - 1]);
        ck_assert_int_eq(o.step, step);
        for (size_t i = 0; i < n; i++) {
            double tol = 1e-6 * (fabs(p[i]) + lr);
            ck_assert_msg(fabs(m.params_mem[i] - p[i]) <= tol,
                          "step %d param %zu (decay %d): got %.9g want %.9g", step, i, decay[i],
                          m.params_mem[i], p[i]);
            if (closed)
                ck_assert_msg(fabs(m.params_mem[i] - closed[i]) <= tol,
                              "step 1 closed form, param %zu: got %.9g want %.9g", i,
                              m.params_mem[i], closed[i]);
            ck_assert_msg(fabs(o.m[i] - mm[i]) <= 4 * EPS32 * ma[i] + 1e-30,
                          "step %d first moment %zu: %.9g vs %.9g", step, i, o.m[i], mm[i]);
            ck_assert_msg(fabs(o.v[i] - vv[i]) <= 8 * EPS32 * fabs(vv[i]) + 1e-30,
                          "step %d second moment %zu: %.9g vs %.9g", step, i, o.v[i], vv[i]);
        }
        free(closed);
    }
    free(p), free(mm), free(vv), free(ma), free(decay);
    ad_adamw_free(&o);
    ad_adamw_free(&o); /* safe twice (zeroed) */
    ad_model_free(&m);
}
END_TEST

/* ==================================================================== schedules */

/* lr_max 1e-3, lr_min 1e-4, warmup 10, total 110, decay 20 (wsd decays over 90..110).
 * Worked by hand:
 *   warmup (all kinds): step s < 10 gives 1e-3 (s + 1) / 10: 0 -> 1e-4, 4 -> 5e-4, 9 -> 1e-3.
 *   cosine: frac = (s - 10) / 100, lr = 1e-4 + 9e-4 * (1 + cos(pi frac)) / 2:
 *     10 -> 1e-3; 35 -> 1e-4 + 9e-4 * 0.85355339 = 8.6819805e-4; 60 -> 5.5e-4;
 *     85 -> 1e-4 + 9e-4 * 0.14644661 = 2.3180195e-4; 110 and later -> 1e-4.
 *   linear: 35 -> 7.75e-4; 60 -> 5.5e-4; 85 -> 3.25e-4; 110 and later -> 1e-4.
 *   wsd: 1e-3 up to step 90; 95 -> 7.75e-4; 100 -> 5.5e-4; 110 and later -> 1e-4. */
START_TEST(test_schedules) {
    struct { AdSchedKind kind; long step; double lr; } cases[] = {
        {AD_SCHED_CONSTANT, 0, 1e-4},   {AD_SCHED_CONSTANT, 4, 5e-4},  {AD_SCHED_CONSTANT, 9, 1e-3},
        {AD_SCHED_CONSTANT, 10, 1e-3},  {AD_SCHED_CONSTANT, 60, 1e-3},
        {AD_SCHED_CONSTANT, 110, 1e-3}, {AD_SCHED_CONSTANT, 500, 1e-3},
        {AD_SCHED_COSINE, 0, 1e-4},    {AD_SCHED_COSINE, 4, 5e-4},     {AD_SCHED_COSINE, 9, 1e-3},
        {AD_SCHED_COSINE, 10, 1e-3},   {AD_SCHED_COSINE, 35, 8.6819805153e-4},
        {AD_SCHED_COSINE, 60, 5.5e-4}, {AD_SCHED_COSINE, 85, 2.3180194847e-4},
        {AD_SCHED_COSINE, 110, 1e-4},  {AD_SCHED_COSINE, 500, 1e-4},
        {AD_SCHED_LINEAR, 0, 1e-4},    {AD_SCHED_LINEAR, 9, 1e-3},     {AD_SCHED_LINEAR, 10, 1e-3},
        {AD_SCHED_LINEAR, 35, 7.75e-4}, {AD_SCHED_LINEAR, 60, 5.5e-4},
        {AD_SCHED_LINEAR, 85, 3.25e-4},
        {AD_SCHED_LINEAR, 110, 1e-4},  {AD_SCHED_LINEAR, 500, 1e-4},
        {AD_SCHED_WSD, 0, 1e-4},       {AD_SCHED_WSD, 9, 1e-3},        {AD_SCHED_WSD, 10, 1e-3},
        {AD_SCHED_WSD, 60, 1e-3},      {AD_SCHED_WSD, 89, 1e-3},       {AD_SCHED_WSD, 90, 1e-3},
        {AD_SCHED_WSD, 95, 7.75e-4},   {AD_SCHED_WSD, 100, 5.5e-4},    {AD_SCHED_WSD, 110, 1e-4},
        {AD_SCHED_WSD, 500, 1e-4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        AdSchedule s = {cases[i].kind, 1e-3f, 1e-4f, 10, 110, 20};
        float lr = ad_schedule_lr(&s, cases[i].step);
        ck_assert_msg(fabs(lr - cases[i].lr) <= 2 * EPS32 * cases[i].lr,
                      "%s step %ld: got %.9g want %.9g", ad_sched_name(cases[i].kind),
                      cases[i].step, lr, cases[i].lr);
    }
    /* No warmup: the decay starts at step 0. Cosine over 100 steps: 50 -> 5.5e-4. */
    AdSchedule s = {AD_SCHED_COSINE, 1e-3f, 1e-4f, 0, 100, 0};
    ck_assert(fabs(ad_schedule_lr(&s, 0) - 1e-3) <= 2 * EPS32 * 1e-3);
    ck_assert(fabs(ad_schedule_lr(&s, 50) - 5.5e-4) <= 2 * EPS32 * 5.5e-4);
    /* wsd whose decay is longer than the post-warmup phase decays from the end of warmup:
     * it is then the linear schedule (60 -> 5.5e-4). */
    AdSchedule w = {AD_SCHED_WSD, 1e-3f, 1e-4f, 10, 110, 500};
    ck_assert(fabs(ad_schedule_lr(&w, 60) - 5.5e-4) <= 2 * EPS32 * 5.5e-4);
    ck_assert(fabs(ad_schedule_lr(&w, 10) - 1e-3) <= 2 * EPS32 * 1e-3);
}
END_TEST

START_TEST(test_sched_names) {
    const char *names[] = {"constant", "cosine", "linear", "wsd"};
    for (int k = 0; k < 4; k++) {
        ck_assert_str_eq(ad_sched_name((AdSchedKind)k), names[k]);
        ck_assert_int_eq(ad_sched_parse(names[k]), k);
    }
    ck_assert_int_eq(ad_sched_parse("cosin"), -1);
    ck_assert_int_eq(ad_sched_parse(""), -1);
    ck_assert_int_eq(ad_sched_parse(NULL), -1);
}
END_TEST

/* ==================================================================== clipping */

static double norm_double(const AdModel *m) {
    double s = 0;
    for (size_t i = 0; i < m->n_params; i++) s += (double)m->grads_mem[i] * m->grads_mem[i];
    return sqrt(s);
}

/* Gradient (3, 4, -12) spread over three tensors, zero elsewhere: norm 13 exactly. Clipping
 * multiplies by max_norm / (norm + 1e-6) (as PyTorch's clip_grad_norm_), which is within
 * 1e-6 / 13 = 7.7e-8 of max_norm / norm: with the final rounding, each entry and the new
 * norm are within 2 FLT_EPSILON of the exact rescaling. */
START_TEST(test_clip_known_norm) {
    AdModel m;
    tiny_model(&m, 3, 2);
    float *g = m.grads_mem;
    m.grads.t[AD_P_WTE][0] = 3.0f, m.grads.t[AD_P_QKVW][5] = 4.0f, m.grads.t[AD_P_LNFB][1] = -12.0f;
    float *before = malloc(sizeof(float) * m.n_params);
    ck_assert_ptr_nonnull(before);
    memcpy(before, g, sizeof(float) * m.n_params);
    ck_assert(ad_grad_norm(&m) == 13.0f);

    /* At or below max_norm, and with max_norm <= 0: untouched, bit for bit. */
    const float keep[] = {13.0f, 20.0f, 0.0f, -1.0f};
    for (int k = 0; k < 4; k++) {
        ck_assert(ad_grad_clip(&m, keep[k]) == 13.0f);
        ck_assert_msg(memcmp(before, g, sizeof(float) * m.n_params) == 0, "max_norm %g changed g",
                      keep[k]);
    }

    float ret = ad_grad_clip(&m, 1.0f);
    ck_assert_msg(ret == 13.0f, "clip returns the norm before clipping: %.9g", ret);
    for (size_t i = 0; i < m.n_params; i++) {
        double want = before[i] / 13.0;
        ck_assert_msg(fabs(g[i] - want) <= 2 * EPS32 * fabs(want), "entry %zu: %.9g vs %.9g", i,
                      g[i], want);
    }
    double after = norm_double(&m);
    ck_assert_msg(fabs(after - 1.0) <= 2 * EPS32 && after <= 1.0 + EPS32, "norm after: %.9g",
                  after);
    free(before);
    ad_model_free(&m);
}
END_TEST

/* Random gradients over a larger model (several OpenMP chunks): the norm against a double
 * sum (the float result is the double norm rounded once), the same bits on every call,
 * and clipping to a quarter of it. Tolerance for the clipped norm: max_norm (1e-6 / norm
 * + 2 FLT_EPSILON), the 1e-6 being the guard in the clip factor. A NaN gradient gives a
 * NaN norm and is not scaled. */
START_TEST(test_grad_norm_random) {
    AdModel m;
    tiny_model(&m, 257, 64);
    AdRng rng;
    ad_rng_init(&rng, 9, 100, 0);
    for (size_t i = 0; i < m.n_params; i++) m.grads_mem[i] = 0.01f * ad_rng_normal(&rng);
    double ref = norm_double(&m);
    float n1 = ad_grad_norm(&m), n2 = ad_grad_norm(&m);
    ck_assert_msg(memcmp(&n1, &n2, sizeof n1) == 0, "ad_grad_norm not deterministic");
    ck_assert_msg(fabs(n1 - ref) <= EPS32 * ref, "norm %.9g vs %.9g", n1, ref);
    float *before = malloc(sizeof(float) * m.n_params);
    ck_assert_ptr_nonnull(before);
    memcpy(before, m.grads_mem, sizeof(float) * m.n_params);
    float max_norm = (float)(ref / 4);
    ck_assert(ad_grad_clip(&m, max_norm) == n1);
    double after = norm_double(&m);
    ck_assert_msg(fabs(after - max_norm) <= max_norm * (1e-6 / ref + 2 * EPS32) &&
                      after <= max_norm * (1 + EPS32),
                  "clipped norm %.9g vs max_norm %.9g", after, max_norm);
    for (size_t i = 0; i < m.n_params; i++) /* one common factor: direction kept */
        ck_assert_msg(fabs(m.grads_mem[i] - before[i] * (max_norm / ref)) <=
                          (1e-6 / ref + 2 * EPS32) * fabs(before[i] * (max_norm / ref)),
                      "entry %zu: %.9g from %.9g", i, m.grads_mem[i], before[i]);
    memcpy(m.grads_mem, before, sizeof(float) * m.n_params);
    m.grads_mem[17] = NAN;
    float nn = ad_grad_clip(&m, 1e-3f);
    ck_assert_msg(isnan(nn), "NaN gradient gave norm %g", nn);
    ck_assert(m.grads_mem[0] == before[0] && m.grads_mem[m.n_params - 1] == before[m.n_params - 1]);
    free(before);
    ad_model_free(&m);
}
END_TEST

static Suite *optim_suite(void) {
    Suite *s = suite_create("optim");
    const AdTestCase cases[] = {
        {"adamw_hand_value", test_adamw_hand_value},
        {"adamw_steps", test_adamw_steps},
        {"schedules", test_schedules},
        {"sched_names", test_sched_names},
        {"clip_known_norm", test_clip_known_norm},
        {"grad_norm_random", test_grad_norm_random},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], TIMEOUT);
    return s;
}

int main(void) { return ad_test_run(optim_suite()); }
