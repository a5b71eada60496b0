/* test_score.c: the candidate table, every scorer and every selection policy of score.h.
 * Model-free scorers and the policies run on hand-built tables whose expected scores and
 * masks are worked out by hand below; the log-probability and judge scorers on a tiny
 * random model against log_softmax of ad_model_forward logits computed here one row at a
 * time; the random policy for determinism, its draw order and its rate. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodidact/model.h"
#include "autodidact/score.h"
#include "autodidact/tokenizer.h"
#include "testutil.h"

/* LP_TOL: a row scored in a batch (sgemm over several rows, packed to the batch's
 * longest row) against the same row alone; both are float32 forward passes over the same
 * weights, so they agree to ~1e-6 on log-probabilities of magnitude ~3. A wrong target
 * position or a missing token moves them by 1e-1 or more on this model. */
#define LP_TOL 1e-4
#define TIMEOUT 60

static AdCandidates make_table(long n_prompts, int samples) {
    AdCandidates c;
    ck_assert_int_eq(ad_candidates_init(&c, n_prompts, samples), AD_OK);
    return c;
}

static void set_answers(AdCandidates *c, const char *const *answers, const int *ended) {
    for (long i = 0; i < c->n; i++)
        ck_assert_int_eq(ad_candidates_set_answer(c, i, answers[i], ended ? ended[i] : 1), AD_OK);
}

static void expect_scores(const AdCandidates *c, int scorer, const float *want) {
    for (long i = 0; i < c->n; i++) {
        float got = c->scores[scorer][i];
        if (isnan(want[i]))
            ck_assert_msg(isnan(got), "%s[%ld] = %g, expected NAN", ad_score_name(scorer), i, got);
        else
            ck_assert_msg(fabsf(got - want[i]) < 1e-6f, "%s[%ld] = %g, expected %g",
                          ad_score_name(scorer), i, got, want[i]);
    }
}

/* ==== names ================================================================== */

START_TEST(test_names) {
    const char *scorers[] = {"verifier",     "length",      "majority",   "ensemble",
                             "logprob_mean", "logprob_min", "perplexity", "judge"};
    for (int s = 0; s < AD_SCORE_COUNT; s++) {
        ck_assert_str_eq(ad_score_name(s), scorers[s]);
        ck_assert_int_eq(ad_score_parse(scorers[s]), s);
    }
    const char *policies[] = {"all", "threshold", "topk", "best_of_n", "top_frac", "random",
                              "oracle"};
    for (int p = 0; p <= AD_SELECT_ORACLE; p++) {
        ck_assert_str_eq(ad_select_name((AdSelectPolicy)p), policies[p]);
        ck_assert_int_eq(ad_select_parse(policies[p]), p);
    }
    ck_assert_int_eq(ad_score_parse("logprob"), -1);
    ck_assert_int_eq(ad_score_parse(NULL), -1);
    ck_assert_int_eq(ad_select_parse("best"), -1);
    ck_assert_int_eq(ad_select_parse(NULL), -1);
    ck_assert_str_eq(ad_score_name(AD_SCORE_COUNT), "unknown");
    ck_assert_str_eq(ad_score_name(-1), "unknown");
    ck_assert_str_eq(ad_select_name((AdSelectPolicy)99), "unknown");
}
END_TEST

/* ==== the table =============================================================== */

START_TEST(test_table) {
    AdCandidates z;
    memset(&z, 0, sizeof z);
    ad_candidates_free(&z); /* zeroed: safe */
    ad_candidates_free(&z); /* twice */

    AdCandidates c = make_table(2, 3);
    ck_assert_int_eq(c.n, 6);
    ck_assert_int_eq(c.n_prompts, 2);
    ck_assert_int_eq(c.samples, 3);
    for (long p = 0; p < 2; p++) {
        ck_assert_str_eq(c.prompt[p], "");
        ck_assert_int_eq(c.length[p], -1);
    }
    for (long i = 0; i < 6; i++) {
        ck_assert_str_eq(c.answer[i], "");
        ck_assert_int_eq(c.ended[i], 0);
        ck_assert_int_eq(c.selected[i], 0);
        ck_assert_int_eq(c.correct[i], -1);
        for (int s = 0; s < AD_SCORE_COUNT; s++) ck_assert(isnan(c.scores[s][i]));
    }
    char buf[16];
    strcpy(buf, "12+3=");
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 1, buf, 2), AD_OK);
    buf[0] = 'x'; /* the table holds a copy */
    ck_assert_str_eq(c.prompt[1], "12+3=");
    ck_assert_int_eq(c.length[1], 2);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 1, "4+5=", 1), AD_OK); /* replaces */
    ck_assert_str_eq(c.prompt[1], "4+5=");
    ck_assert_int_eq(ad_candidates_set_answer(&c, 5, "9", 7), AD_OK);
    ck_assert_str_eq(c.answer[5], "9");
    ck_assert_int_eq(c.ended[5], 1);
    ck_assert_int_eq(ad_candidates_set_answer(&c, 5, "", 0), AD_OK);
    ck_assert_str_eq(c.answer[5], "");
    ck_assert_int_eq(c.ended[5], 0);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 2, "1=", 1), AD_ERR_ARG);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, -1, "1=", 1), AD_ERR_ARG);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 0, NULL, 1), AD_ERR_ARG);
    ck_assert_int_eq(ad_candidates_set_answer(&c, 6, "1", 1), AD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "6"));
    ck_assert_int_eq(ad_candidates_set_answer(&c, 0, NULL, 1), AD_ERR_ARG);
    ad_candidates_free(&c);
    ck_assert_ptr_null(c.answer);
    ad_candidates_free(&c);

    /* an empty round (round 0 has no candidates) */
    c = make_table(0, 4);
    ck_assert_int_eq(c.n, 0);
    AdSelectConfig s;
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(ad_select(&c, &s, NULL), 0);
    ad_score_majority(&c);
    ad_candidates_free(&c);

    ck_assert_int_eq(ad_candidates_init(&c, 3, 0), AD_ERR_ARG);
    ck_assert_int_eq(ad_candidates_init(&c, -1, 2), AD_ERR_ARG);
    ad_candidates_free(&c);
}
END_TEST

/* ==== verifier, length, majority, ensemble ===================================== */

START_TEST(test_verifier_and_length) {
    /* add: 12 + 34 = 46; 99 + 1 = 100; 0 + 0 = 0; the last prompt is not an add prompt */
    AdCandidates c = make_table(4, 3);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 0, "12+34=", 2), AD_OK);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 1, "99+1=", 2), AD_OK);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 2, "0+0=", 1), AD_OK);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 3, "12*3=", 2), AD_OK);
    const char *ans[12] = {"46", "47", "460",   /* right, wrong length ok, one longer (ok) */
                           "100", "10", "1x0", /* right, wrong (length 2 is ok), non-digit */
                           "0", "", "00",      /* right, empty, "00" (length 2 = 1 + 1) */
                           "36", "63", ""};
    set_answers(&c, ans, NULL);
    ad_score_verifier(&c, AD_TASK_ADD);
    const float N = NAN;
    const float ver[12] = {1, 0, 0, 1, 0, 0, 1, 0, 0, N, N, N};
    expect_scores(&c, AD_SCORE_VERIFIER, ver);
    const signed char cor[12] = {1, 0, 0, 1, 0, 0, 1, 0, 0, -1, -1, -1};
    for (int i = 0; i < 12; i++) ck_assert_int_eq(c.correct[i], cor[i]);

    ad_score_length(&c, AD_TASK_ADD);
    const float len[12] = {1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0};
    expect_scores(&c, AD_SCORE_LENGTH, len);

    /* the same table read as mul prompts: only the last prompt parses. 12 * 3 reversed:
     * 21 * 3 = 63, written "36"; lengths 2 + 1 = 3 or 2 are allowed */
    ad_score_verifier(&c, AD_TASK_MUL);
    const float ver_mul[12] = {N, N, N, N, N, N, N, N, N, 1, 0, 0};
    expect_scores(&c, AD_SCORE_VERIFIER, ver_mul);
    ck_assert_int_eq(c.correct[0], -1);
    ck_assert_int_eq(c.correct[9], 1);
    ck_assert_int_eq(c.correct[10], 0);
    ad_score_length(&c, AD_TASK_MUL);
    const float len_mul[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0};
    expect_scores(&c, AD_SCORE_LENGTH, len_mul);

    /* an unknown task: not applicable */
    ad_score_length(&c, AD_TASK_COUNT);
    for (int i = 0; i < 12; i++) ck_assert(isnan(c.scores[AD_SCORE_LENGTH][i]));
    ad_candidates_free(&c);
}
END_TEST

START_TEST(test_majority_and_ensemble) {
    AdCandidates c = make_table(3, 4);
    const char *ans[12] = {"12", "13", "12", "12",   /* 3/4, 1/4, 3/4, 3/4 */
                           "1", "", "", "01",        /* 1/4, 2/4, 2/4, 1/4 */
                           "7", "7", "7", "7"};      /* all 1 */
    set_answers(&c, ans, NULL);
    ad_score_majority(&c);
    const float maj[12] = {0.75f, 0.25f, 0.75f, 0.75f, 0.25f, 0.5f, 0.5f, 0.25f, 1, 1, 1, 1};
    expect_scores(&c, AD_SCORE_MAJORITY, maj);

    /* three models; model 2 has no answer for prompt 2 */
    char *m0[3] = {"12", "", "7"};
    char *m1[3] = {"13", "1", "7"};
    char *m2[3] = {"12", "01", NULL};
    char *const *others[3] = {m0, m1, m2};
    ad_score_ensemble(&c, (char *const *const *)others, 3);
    const float t = 1.0f / 3, tt = 2.0f / 3;
    const float ens[12] = {tt, t, tt, tt, t, t, t, t, tt, tt, tt, tt};
    expect_scores(&c, AD_SCORE_ENSEMBLE, ens);
    ad_score_ensemble(&c, (char *const *const *)others, 1); /* model 0 alone */
    const float ens1[12] = {1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1};
    expect_scores(&c, AD_SCORE_ENSEMBLE, ens1);
    ad_score_ensemble(&c, NULL, 0);
    for (int i = 0; i < 12; i++) ck_assert(isnan(c.scores[AD_SCORE_ENSEMBLE][i]));
    ad_candidates_free(&c);

    /* one sample per prompt: each agrees with itself */
    c = make_table(2, 1);
    const char *one[2] = {"5", ""};
    set_answers(&c, one, NULL);
    ad_score_majority(&c);
    ck_assert(c.scores[AD_SCORE_MAJORITY][0] == 1.0f && c.scores[AD_SCORE_MAJORITY][1] == 1.0f);
    ad_candidates_free(&c);
}
END_TEST

/* ==== selection on a hand-built table =========================================== */

/* 3 prompts x 4 samples. Columns: LENGTH, MAJORITY, ENSEMBLE, VERIFIER, LOGPROB_MEAN,
 * PERPLEXITY. The values need not be consistent with one another. */
static AdCandidates selection_table(void) {
    const float N = NAN;
    const float rows[12][6] = {
        /* prompt 0 */
        {1, 0.50f, 1.0f, 1, -0.5f, 2.0f},   /* 0 */
        {0, 0.25f, 0.0f, 0, -0.1f, 1.1f},   /* 1 */
        {1, 0.50f, 0.5f, 1, -0.5f, 2.0f},   /* 2: ties with 0 */
        {1, 0.25f, 0.0f, 0, N, N},          /* 3 */
        /* prompt 1 */
        {N, 0.75f, 1.0f, 1, -0.2f, 1.5f},   /* 4 */
        {1, 0.75f, 1.0f, 1, -0.3f, 1.2f},   /* 5 */
        {1, 0.75f, 0.5f, 1, -0.9f, 3.0f},   /* 6 */
        {1, 0.25f, 0.0f, 0, -0.05f, 1.05f}, /* 7 */
        /* prompt 2 */
        {1, 1.0f, N, N, N, N},              /* 8 */
        {1, 1.0f, N, N, N, N},              /* 9 */
        {0, 1.0f, N, N, -1.0f, 4.0f},       /* 10 */
        {1, 1.0f, N, N, -2.0f, 5.0f},       /* 11 */
    };
    const int cols[6] = {AD_SCORE_LENGTH,  AD_SCORE_MAJORITY,     AD_SCORE_ENSEMBLE,
                         AD_SCORE_VERIFIER, AD_SCORE_LOGPROB_MEAN, AD_SCORE_PERPLEXITY};
    AdCandidates c = make_table(3, 4);
    for (int i = 0; i < 12; i++)
        for (int k = 0; k < 6; k++) c.scores[cols[k]][i] = rows[i][k];
    return c;
}

static AdSelectConfig policy(AdSelectPolicy p, int scorer) {
    AdSelectConfig s;
    memset(&s, 0, sizeof s);
    s.policy = p;
    s.scorer = scorer;
    return s;
}

/* want: one '0'/'1' per candidate */
static void expect_mask(AdCandidates *c, const AdSelectConfig *s, const char *want,
                        const char *what) {
    memset(c->selected, 7, (size_t)c->n); /* stale values must be overwritten */
    long count = ad_select(c, s, NULL);
    char got[64];
    long ones = 0;
    for (long i = 0; i < c->n; i++) {
        got[i] = c->selected[i] ? '1' : '0';
        ck_assert_msg(c->selected[i] <= 1, "%s: selected[%ld] = %d", what, i, c->selected[i]);
        ones += c->selected[i];
    }
    got[c->n] = '\0';
    ck_assert_msg(strcmp(got, want) == 0, "%s: mask %s, expected %s", what, got, want);
    ck_assert_int_eq(count, ones);
}

START_TEST(test_select_filters) {
    AdCandidates c = selection_table();
    AdSelectConfig s = policy(AD_SELECT_ALL, AD_SCORE_LOGPROB_MEAN);
    expect_mask(&c, &s, "111111111111", "all");
    s.length_filter = 1; /* drops 1 and 10 (0) and 4 (NAN) */
    expect_mask(&c, &s, "101101111101", "all + length");
    s = policy(AD_SELECT_ALL, AD_SCORE_LOGPROB_MEAN);
    s.min_agreement = 0.5; /* drops majority 0.25: 1, 3, 7 */
    expect_mask(&c, &s, "101011101111", "all + agreement 0.5");
    s.min_agreement = 0.75; /* also 0 and 2 */
    expect_mask(&c, &s, "000011101111", "all + agreement 0.75");
    s = policy(AD_SELECT_ALL, AD_SCORE_LOGPROB_MEAN);
    s.min_ensemble = 0.5; /* drops 1, 3, 7 and the NANs 8-11 */
    expect_mask(&c, &s, "101011100000", "all + ensemble 0.5");
    s.length_filter = 1;
    s.min_agreement = 0.75;
    expect_mask(&c, &s, "000001100000", "all + every filter");
    ad_candidates_free(&c);
}
END_TEST

START_TEST(test_select_threshold) {
    AdCandidates c = selection_table();
    AdSelectConfig s = policy(AD_SELECT_THRESHOLD, AD_SCORE_LOGPROB_MEAN);
    s.threshold = -0.5; /* >= -0.5: 0, 1, 2, 4, 5, 7 (NANs never) */
    expect_mask(&c, &s, "111011010000", "threshold logprob -0.5");
    s.length_filter = 1;
    expect_mask(&c, &s, "101001010000", "threshold logprob -0.5 + length");
    /* perplexity is lower-is-better: <= 1.5 keeps 1, 4, 5, 7 */
    s = policy(AD_SELECT_THRESHOLD, AD_SCORE_PERPLEXITY);
    s.threshold = 1.5;
    expect_mask(&c, &s, "010011010000", "threshold perplexity 1.5");
    s = policy(AD_SELECT_THRESHOLD, AD_SCORE_MAJORITY);
    s.threshold = 0.75;
    expect_mask(&c, &s, "000011101111", "threshold majority 0.75");
    s.threshold = 2;
    expect_mask(&c, &s, "000000000000", "threshold majority 2");
    s = policy(AD_SELECT_THRESHOLD, AD_SCORE_COUNT); /* not a scorer: nothing to rank by */
    s.threshold = -1e30;
    expect_mask(&c, &s, "000000000000", "threshold unknown scorer");
    ad_candidates_free(&c);
}
END_TEST

START_TEST(test_select_ranking) {
    AdCandidates c = selection_table();
    /* top 2 by logprob: p0 1 (-0.1), then 0 and 2 tie at -0.5: 0; p1 7, 4; p2 10, 11 */
    AdSelectConfig s = policy(AD_SELECT_TOPK, AD_SCORE_LOGPROB_MEAN);
    s.k = 2;
    expect_mask(&c, &s, "110010010011", "top2 logprob");
    /* after the length filter: p0 survivors 0, 2, 3 (NAN): 0, 2; p1 5, 6, 7: 7, 5;
     * p2 8, 9 (NAN), 11: 11 only */
    s.length_filter = 1;
    expect_mask(&c, &s, "101001010001", "top2 logprob + length");
    s = policy(AD_SELECT_TOPK, AD_SCORE_LOGPROB_MEAN);
    s.k = 10; /* every non-NAN one */
    expect_mask(&c, &s, "111011110011", "top10 logprob");
    s.k = 0;
    expect_mask(&c, &s, "000000000000", "top0");
    /* best of n by perplexity (lower better): 1, 7, 10 */
    s = policy(AD_SELECT_BEST_OF_N, AD_SCORE_PERPLEXITY);
    expect_mask(&c, &s, "010000010010", "best_of_n perplexity");
    /* best of n by majority: ties everywhere go to the lowest index: 0, 4, 8 */
    s = policy(AD_SELECT_BEST_OF_N, AD_SCORE_MAJORITY);
    expect_mask(&c, &s, "100010001000", "best_of_n majority");
    /* by verifier: p0 0 (tie with 2), p1 4, p2 all NAN: none */
    s = policy(AD_SELECT_BEST_OF_N, AD_SCORE_VERIFIER);
    expect_mask(&c, &s, "100010000000", "best_of_n verifier");
    /* top frac by logprob: 9 non-NAN, ranked 7 1 4 5 0 2 6 10 11.
     * frac 0.5: floor(4.5) = 4 -> 7 1 4 5; 0.6: 5 -> + 0 (ties 2, lower index) */
    s = policy(AD_SELECT_TOP_FRAC, AD_SCORE_LOGPROB_MEAN);
    s.frac = 0.5;
    expect_mask(&c, &s, "010011010000", "top_frac 0.5");
    s.frac = 0.6;
    expect_mask(&c, &s, "110011010000", "top_frac 0.6");
    s.frac = 1.0;
    expect_mask(&c, &s, "111011110011", "top_frac 1");
    s.frac = 0.0;
    expect_mask(&c, &s, "000000000000", "top_frac 0");
    /* top frac by perplexity over the length survivors 0 2 5 6 7 11 (3, 8, 9 are NAN):
     * ranked 7 (1.05) 5 (1.2) 0 (2) 2 (2) 6 (3) 11 (5); frac 0.5 keeps 3: 7, 5, 0 */
    s = policy(AD_SELECT_TOP_FRAC, AD_SCORE_PERPLEXITY);
    s.frac = 0.5;
    s.length_filter = 1;
    expect_mask(&c, &s, "100001010000", "top_frac perplexity + length");
    s = policy(AD_SELECT_TOPK, -1);
    s.k = 4;
    expect_mask(&c, &s, "000000000000", "topk unknown scorer");
    ad_candidates_free(&c);
}
END_TEST

START_TEST(test_select_oracle_and_one_per_prompt) {
    AdCandidates c = selection_table();
    AdSelectConfig s = policy(AD_SELECT_ORACLE, AD_SCORE_LOGPROB_MEAN);
    expect_mask(&c, &s, "101011100000", "oracle");
    s.length_filter = 1;
    expect_mask(&c, &s, "101001100000", "oracle + length");
    /* oracle, one per prompt by logprob: p0 0 and 2 tie: 0; p1 4 (-0.2) */
    s = policy(AD_SELECT_ORACLE, AD_SCORE_LOGPROB_MEAN);
    s.one_per_prompt = 1;
    expect_mask(&c, &s, "100010000000", "oracle + one per prompt");
    /* all, one per prompt by logprob: 1, 7, and in p2 10 beats the NANs 8, 9 */
    s = policy(AD_SELECT_ALL, AD_SCORE_LOGPROB_MEAN);
    s.one_per_prompt = 1;
    expect_mask(&c, &s, "010000010010", "all + one per prompt");
    /* after the length filter: p0 0 (ties 2), p1 7, p2 11 */
    s.length_filter = 1;
    expect_mask(&c, &s, "100000010001", "all + length + one per prompt");
    /* ensemble filter 0.5 leaves 0 2 4 5 6; by perplexity: p0 0 (ties 2), p1 5 (1.2) */
    s = policy(AD_SELECT_ALL, AD_SCORE_PERPLEXITY);
    s.min_ensemble = 0.5;
    s.one_per_prompt = 1;
    expect_mask(&c, &s, "100001000000", "ensemble + one per prompt perplexity");
    /* by ensemble after the length filter: p0 0 (1.0), p1 5 (1.0 beats 0.5, 0),
     * p2 survivors 8 9 11 are all NAN: the lowest sample index, 8 */
    s = policy(AD_SELECT_ALL, AD_SCORE_ENSEMBLE);
    s.length_filter = 1;
    s.one_per_prompt = 1;
    expect_mask(&c, &s, "100001001000", "length + one per prompt ensemble");
    /* top 3 by logprob, then one per prompt: the best of each */
    s = policy(AD_SELECT_TOPK, AD_SCORE_LOGPROB_MEAN);
    s.k = 3;
    s.one_per_prompt = 1;
    expect_mask(&c, &s, "010000010010", "top3 + one per prompt");
    /* threshold on majority, then one per prompt by majority: all ties, lowest index */
    s = policy(AD_SELECT_THRESHOLD, AD_SCORE_MAJORITY);
    s.threshold = 0.5;
    s.one_per_prompt = 1;
    expect_mask(&c, &s, "100010001000", "threshold + one per prompt");
    ad_candidates_free(&c);
}
END_TEST

START_TEST(test_select_random) {
    const long P = 5000;
    const int K = 4;
    const double frac = 0.3;
    AdCandidates c = make_table(P, K);
    long survivors = 0;
    for (long i = 0; i < c.n; i++) {
        c.scores[AD_SCORE_LENGTH][i] = i % 5 == 0 ? 0.0f : 1.0f;
        survivors += i % 5 != 0;
    }
    AdSelectConfig s = policy(AD_SELECT_RANDOM, AD_SCORE_LOGPROB_MEAN);
    s.frac = frac;
    s.length_filter = 1;
    AdRng r1, r2, ref;
    ad_rng_init(&r1, 11, AD_STREAM_SELECT, 2);
    ad_rng_init(&ref, 11, AD_STREAM_SELECT, 2);
    long n1 = ad_select(&c, &s, &r1);
    unsigned char *first = malloc((size_t)c.n);
    memcpy(first, c.selected, (size_t)c.n);
    /* one uniform draw per survivor, in candidate order */
    long expected = 0;
    for (long i = 0; i < c.n; i++) {
        int want = 0;
        if (i % 5 != 0) want = ad_rng_uniform_double(&ref) < frac;
        ck_assert_msg(c.selected[i] == want, "candidate %ld: %d, expected %d", i, c.selected[i],
                      want);
        expected += want;
    }
    ck_assert_int_eq(n1, expected);
    ck_assert(ad_rng_u64(&r1) == ad_rng_u64(&ref)); /* no other draws */
    /* the rate: binomial(16000, 0.3) has sd 58; 6 sd is far beyond chance */
    double sd = sqrt((double)survivors * frac * (1 - frac));
    ck_assert_msg(fabs((double)n1 - frac * (double)survivors) < 6 * sd, "%ld of %ld selected", n1,
                  survivors);
    /* same stream, same mask; another stream, another mask */
    ad_rng_init(&r2, 11, AD_STREAM_SELECT, 2);
    ck_assert_int_eq(ad_select(&c, &s, &r2), n1);
    ck_assert(memcmp(first, c.selected, (size_t)c.n) == 0);
    ad_rng_init(&r2, 11, AD_STREAM_SELECT, 3);
    ad_select(&c, &s, &r2);
    ck_assert(memcmp(first, c.selected, (size_t)c.n) != 0);
    /* frac 1 keeps every survivor, frac 0 none */
    s.frac = 1.0;
    ck_assert_int_eq(ad_select(&c, &s, &r2), survivors);
    for (long i = 0; i < c.n; i += 5) ck_assert_int_eq(c.selected[i], 0);
    s.frac = 0.0;
    ck_assert_int_eq(ad_select(&c, &s, &r2), 0);
    /* then one per prompt: at most one, the lowest selected sample (scorer all NAN) */
    s.frac = frac;
    s.one_per_prompt = 1;
    ad_rng_init(&r2, 11, AD_STREAM_SELECT, 2);
    long n3 = ad_select(&c, &s, &r2);
    long prompts_hit = 0;
    for (long p = 0; p < P; p++) {
        long lowest = -1;
        for (int k = 0; k < K && lowest < 0; k++)
            if (first[p * K + k]) lowest = p * K + k;
        prompts_hit += lowest >= 0;
        for (int k = 0; k < K; k++)
            ck_assert_int_eq(c.selected[p * K + k], p * K + k == lowest);
    }
    ck_assert_int_eq(n3, prompts_hit);
    free(first);
    ad_candidates_free(&c);
}
END_TEST

/* ==== scorers under a model ===================================================== */

static const char *CHARS = "0123456789+*= ok?y";

/* A tiny GPT-2 model over the tokenizer's vocabulary, GPT-2 init with matrices scaled up
 * so the distributions are far from uniform. */
static void tiny_model(AdModel *m, int V, int maxT) {
    AdModelConfig c;
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(ad_model_config_preset(&c, "gpt2"), AD_OK);
    c.vocab_size = V, c.max_seq_len = maxT, c.n_layer = 2, c.n_head = 2, c.n_kv_head = 2;
    c.d_model = 16, c.d_ff = 32;
    memset(m, 0, sizeof *m);
    ck_assert_int_eq(ad_model_init(m, &c, 0), AD_OK);
    AdRng rng;
    ad_rng_init(&rng, 3, AD_STREAM_INIT, 0);
    ad_model_init_weights(m, &rng, AD_INIT_GPT2);
    for (size_t i = 0; i < m->info[AD_P_WTE].size; i++) m->params.t[AD_P_WTE][i] *= 40.0f;
    for (size_t i = 0; i < m->info[AD_P_QKVW].size; i++) m->params.t[AD_P_QKVW][i] *= 10.0f;
}

/* lp[t] = log p(seq[t+1] | seq[0..t]) for t < n - 1, from one forward pass over
 * seq[0..n-1) with B = 1 and log_softmax in double. */
static void direct_logprobs(AdModel *m, const int *seq, int n, double *lp) {
    int T = n - 1, V = m->cfg.vocab_size;
    AdActs a;
    memset(&a, 0, sizeof a);
    ck_assert_int_eq(ad_acts_init(&a, &m->cfg, 1, T), AD_OK);
    ad_model_forward(m, &a, seq, 1, T);
    for (int t = 0; t < T; t++) {
        const float *z = a.logits + (size_t)t * V;
        double mx = z[0], sum = 0;
        for (int j = 1; j < V; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < V; j++) sum += exp((double)z[j] - mx);
        lp[t] = (double)z[seq[t + 1]] - mx - log(sum);
    }
    ad_acts_free(&a);
}

/* Appends the tokens of text to seq at *n. */
static void append_text(const AdTokenizer *tok, const char *text, int *seq, int *n) {
    int got = 0;
    ck_assert_int_eq(ad_tokenizer_encode(tok, text, strlen(text), seq + *n, 256 - *n, &got), AD_OK);
    *n += got;
}

START_TEST(test_logprobs) {
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_char(&tok, CHARS, strlen(CHARS)), AD_OK);
    AdModel m;
    tiny_model(&m, tok.vocab_size, 16);
    const int T = 12;
    AdCandidates c = make_table(3, 3);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 0, "12+34=", 2), AD_OK);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 1, "7+8=", 1), AD_OK);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 2, "999+1=", 3), AD_OK);
    /* row lengths (bos + prompt + answer) against T = 12: 11 and 12 fit, 13 does not */
    const char *ans[9] = {"46", "4", "", "15", "", "51", "1000", "10000", "100000"};
    const int ended[9] = {1, 0, 1, 1, 0, 1, 1, 1, 1};
    set_answers(&c, ans, ended);
    c.scores[AD_SCORE_LOGPROB_MEAN][4] = 5.0f; /* stale: must become NAN */

    for (int pass = 0; pass < 3; pass++) {
        const int batch[3] = {4, 1, 9};
        ck_assert_int_eq(ad_score_logprobs(&c, &m, &tok, batch[pass], T), AD_OK);
        for (long i = 0; i < 9; i++) {
            const char *prompt = c.prompt[i / 3];
            int seq[256], n = 0;
            seq[n++] = tok.bos_id;
            append_text(&tok, prompt, seq, &n);
            int first = n - 1; /* position predicting the first answer token */
            append_text(&tok, ans[i], seq, &n);
            if (ended[i]) seq[n++] = tok.eos_id;
            float mean = c.scores[AD_SCORE_LOGPROB_MEAN][i], lo = c.scores[AD_SCORE_LOGPROB_MIN][i],
                  ppl = c.scores[AD_SCORE_PERPLEXITY][i];
            int fits = 1 + (int)strlen(prompt) + (int)strlen(ans[i]) <= T;
            if (n - 1 - first == 0 || !fits) {
                ck_assert_msg(isnan(mean) && isnan(lo) && isnan(ppl), "candidate %ld: %g %g %g", i,
                              mean, lo, ppl);
                continue;
            }
            double lp[256], sum = 0, worst = INFINITY;
            direct_logprobs(&m, seq, n, lp);
            for (int t = first; t < n - 1; t++) {
                sum += lp[t];
                worst = fmin(worst, lp[t]);
            }
            double want = sum / (n - 1 - first);
            ck_assert_msg(fabs(mean - want) < LP_TOL, "candidate %ld mean %g, expected %g", i,
                          mean, want);
            ck_assert_msg(fabs(lo - worst) < LP_TOL, "candidate %ld min %g, expected %g", i, lo,
                          worst);
            ck_assert_msg(fabs(ppl - exp(-want)) < LP_TOL * exp(-want),
                          "candidate %ld perplexity %g, expected %g", i, ppl, exp(-want));
            ck_assert(lo <= mean + 1e-6f);
        }
    }
    /* which candidates have a value: 2 (only <eos>) yes, 4 (no target) and 8 (too long) no */
    ck_assert(!isnan(c.scores[AD_SCORE_LOGPROB_MEAN][2]));
    ck_assert(isnan(c.scores[AD_SCORE_LOGPROB_MEAN][4]));
    ck_assert(!isnan(c.scores[AD_SCORE_LOGPROB_MEAN][7]));
    ck_assert(isnan(c.scores[AD_SCORE_LOGPROB_MEAN][8]));
    /* the model is far from uniform: a wrong target would show */
    ck_assert(fabsf(c.scores[AD_SCORE_LOGPROB_MEAN][0] - c.scores[AD_SCORE_LOGPROB_MIN][0]) > 0.1f);

    /* bad arguments */
    ck_assert_int_eq(ad_score_logprobs(&c, &m, &tok, 2, 17), AD_ERR_ARG); /* > max_seq_len */
    ck_assert_int_eq(ad_score_logprobs(&c, &m, &tok, 0, 8), AD_ERR_ARG);
    /* 'x' is not in the vocabulary: an error naming the candidate, not a NAN */
    ck_assert_int_eq(ad_candidates_set_answer(&c, 0, "4x", 1), AD_OK);
    ck_assert_int_eq(ad_score_logprobs(&c, &m, &tok, 2, 12), AD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "candidate 0"));
    ad_candidates_free(&c);
    ad_model_free(&m);
    ad_tokenizer_free(&tok);
}
END_TEST

START_TEST(test_judge) {
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_char(&tok, CHARS, strlen(CHARS)), AD_OK);
    AdModel m;
    tiny_model(&m, tok.vocab_size, 32);
    const int T = 24;
    const char *tmpl = "{prompt}{answer} ok? {answer}";
    AdCandidates c = make_table(2, 2);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 0, "12+34=", 2), AD_OK);
    ck_assert_int_eq(ad_candidates_set_prompt(&c, 1, "7+8=", 1), AD_OK);
    /* judge texts: 6+2+5+2 = 15, 6+0+5+0 = 11, 4+2+5+2 = 13, 4+8+5+8 = 25 chars */
    const char *ans[4] = {"46", "", "15", "15151515"};
    const int ended[4] = {1, 0, 1, 1};
    set_answers(&c, ans, ended);
    const char *verdicts[2] = {"", "yo"};
    for (int v = 0; v < 2; v++) {
        const char *verdict = verdicts[v];
        ck_assert_int_eq(ad_score_judge(&c, &m, &tok, tmpl, verdict, 3, T), AD_OK);
        for (long i = 0; i < 4; i++) {
            char text[128];
            snprintf(text, sizeof text, "%s%s ok? %s", c.prompt[i / 2], ans[i], ans[i]);
            int seq[256], n = 0;
            seq[n++] = tok.bos_id;
            append_text(&tok, text, seq, &n);
            int first = n - 1;
            if (verdict[0])
                append_text(&tok, verdict, seq, &n);
            else
                seq[n++] = tok.eos_id;
            float got = c.scores[AD_SCORE_JUDGE][i];
            /* the row needs bos + text + verdict tokens (+ <eos> input room) within T */
            if (1 + (int)strlen(text) + (int)strlen(verdict) > T) {
                ck_assert_msg(isnan(got), "candidate %ld: %g, expected NAN", i, got);
                continue;
            }
            double lp[256], want = 0;
            direct_logprobs(&m, seq, n, lp);
            for (int t = first; t < n - 1; t++) want += lp[t];
            ck_assert_msg(fabs(got - want) < LP_TOL,
                          "verdict \"%s\" candidate %ld: %g, expected %g", verdict, i, got, want);
        }
        ck_assert(isnan(c.scores[AD_SCORE_JUDGE][3]));
        ck_assert(!isnan(c.scores[AD_SCORE_JUDGE][1]));
    }
    /* a template character the vocabulary lacks is an error, not a NAN */
    ck_assert_int_eq(ad_score_judge(&c, &m, &tok, "{prompt}{answer} X", "y", 2, T), AD_ERR_ARG);
    ck_assert_int_eq(ad_score_judge(&c, &m, &tok, NULL, "y", 2, T), AD_ERR_ARG);
    ad_candidates_free(&c);
    ad_model_free(&m);
    ad_tokenizer_free(&tok);
}
END_TEST

static Suite *score_suite(void) {
    Suite *s = suite_create("score");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_verifier_and_length);
    tcase_add_test(tc, test_majority_and_ensemble);
    tcase_add_test(tc, test_select_filters);
    tcase_add_test(tc, test_select_threshold);
    tcase_add_test(tc, test_select_ranking);
    tcase_add_test(tc, test_select_oracle_and_one_per_prompt);
    tcase_add_test(tc, test_select_random);
    tcase_add_test(tc, test_logprobs);
    tcase_add_test(tc, test_judge);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return ad_test_run(score_suite()); }
