/* test_grpo.c: grpo rounds end to end: the run file holds each sample's reward (the
 * configured scorer's value), its advantage (zero-sum within a group, zero for a group of
 * equal rewards) and TRL's curve with one record per update (mu passes); the first update
 * sees the policy equal to its stored old log-probs (ratio 1, KL 0, nothing clipped); the
 * dry run states G, B, mu and beta; bad combinations of keys fail naming the key. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/h5util.h"
#include "autodidact/experiment.h"
#include "autodidact/round.h"
#include "testutil.h"

static const char *CFG =
    "{\"seed\": 5, \"threads\": 2, \"keep_checkpoints\": 0,"
    " \"model\": {\"family\": \"gpt2\", \"pos\": \"none\", \"d_model\": 32, \"n_layer\": 2,"
    "             \"n_head\": 2, \"max_seq_len\": 20},"
    " \"task\": {\"name\": \"copy\", \"train_min_len\": 1, \"train_max_len\": 4,"
    "            \"eval_min_len\": 1, \"eval_max_len\": 5, \"eval_per_len\": 8},"
    " \"pretrain\": {\"steps\": 60, \"batch_size\": 16, \"log_every\": 0, \"warmup_steps\": 5,"
    "               \"lr\": 3e-3},"
    " \"train\": {\"steps\": 6, \"batch_size\": 4, \"grad_accum\": 2, \"log_every\": 0,"
    "             \"warmup_steps\": 1, \"lr\": 1e-3, \"objective\": \"grpo\"},"
    " \"rounds\": {\"count\": 1, \"prompts\": 16, \"length_start\": 3, \"length_step\": 0,"
    "              \"length_span\": 1},"
    " \"generate\": {\"samples\": 3, \"temperature\": 1.0, \"batch\": 48},"
    " \"score\": {\"majority\": true},"
    " \"rl\": {\"reward\": \"majority\", \"mu\": 2, \"beta\": 0.04}}";

static double *read_col(hid_t f, const char *name, long n) {
    int rank = 0;
    hsize_t shape[2] = {0, 0};
    AdStatus st = ad_h5_array_shape(f, name, 2, &rank, shape);
    ck_assert_msg(st == AD_OK, "%s: %s", name, ad_errmsg());
    ck_assert_msg(rank == 1 && (long)shape[0] == n, "%s: %ld rows, expected %ld", name,
                  (long)shape[0], n);
    double *v = calloc((size_t)(n ? n : 1), sizeof *v);
    if (ad_h5_read_array(f, name, AD_H5_F64, 1, shape, v) != AD_OK) {
        float *fv = calloc((size_t)(n ? n : 1), sizeof *fv);
        int64_t *iv = calloc((size_t)(n ? n : 1), sizeof *iv);
        if (ad_h5_read_array(f, name, AD_H5_F32, 1, shape, fv) == AD_OK)
            for (long i = 0; i < n; i++) v[i] = fv[i];
        else {
            st = ad_h5_read_array(f, name, AD_H5_I64, 1, shape, iv);
            ck_assert_msg(st == AD_OK, "%s: %s", name, ad_errmsg());
            for (long i = 0; i < n; i++) v[i] = (double)iv[i];
        }
        free(fv);
        free(iv);
    }
    return v;
}

START_TEST(test_grpo_run_layout) {
    const char *file = ad_test_path(ad_test_tmpdir(), "grpo.h5");
    char over[700];
    snprintf(over, sizeof over, "run_file=%s", file);
    const char *ov[] = {over};
    AdExperimentConfig c;
    AdStatus st = ad_experiment_config_parse(&c, CFG, "grpo test", ov, 1);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    AdRunOptions o = {1, 0};
    st = ad_run_start(&c, CFG, 1, &o);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    hid_t f;
    ck_assert_msg(ad_h5_open(file, 0, &f) == AD_OK, "%s", ad_errmsg());
    const long n = 16 * 3, updates = 2 * (n / 8); /* mu 2 passes of 48 samples, 8 an update */
    double *reward = read_col(f, "rounds/001/rl/reward", n);
    double *adv = read_col(f, "rounds/001/rl/advantage", n);
    double *major = read_col(f, "rounds/001/scores/majority", n);
    double *old = read_col(f, "rounds/001/rl/old_logp", n);
    double *tok = read_col(f, "rounds/001/rl/tokens", n);
    long flat = 0;
    double rsum = 0, lsum = 0;
    for (long g = 0; g < 16; g++) {
        double s = 0;
        int equal = 1;
        for (int k = 0; k < 3; k++) {
            long i = 3 * g + k;
            ck_assert_msg(fabs(reward[i] - major[i]) < 1e-6, "sample %ld: reward %g, majority %g",
                          i, reward[i], major[i]);
            ck_assert_msg(old[i] < 0 && tok[i] >= 1, "sample %ld: old log-prob %g over %g tokens",
                          i, old[i], tok[i]);
            s += adv[i], rsum += reward[i], lsum += tok[i];
            equal &= reward[i] == reward[3 * g];
        }
        ck_assert_msg(fabs(s) < 1e-9, "group %ld: advantages sum to %g", g, s);
        if (equal) {
            flat++;
            for (int k = 0; k < 3; k++) ck_assert(adv[3 * g + k] == 0.0);
        }
    }
    ck_assert_msg(flat < 16, "every group was flat: the test does not reach the advantages");
    double *frac = read_col(f, "rounds/001/grpo/frac_reward_zero_std", 1);
    double *rmean = read_col(f, "rounds/001/grpo/reward", 1);
    double *mlen = read_col(f, "rounds/001/grpo/completions/mean_length", 1);
    ck_assert_msg(fabs(*frac - flat / 16.0) < 1e-12, "frac_reward_zero_std %g, %ld flat", *frac, flat);
    ck_assert_msg(fabs(*rmean - rsum / n) < 1e-9, "reward %g vs %g", *rmean, rsum / n);
    ck_assert_msg(fabs(*mlen - lsum / n) < 1e-9, "mean length %g vs %g", *mlen, lsum / n);
    double *step = read_col(f, "rounds/001/grpo/step", updates);
    double *ratio = read_col(f, "rounds/001/grpo/ratio", updates);
    double *kl = read_col(f, "rounds/001/grpo/kl", updates);
    double *clip = read_col(f, "rounds/001/grpo/clip_ratio/region_mean", updates);
    double *ent = read_col(f, "rounds/001/grpo/entropy", updates);
    double *loss = read_col(f, "rounds/001/train/loss", updates);
    ck_assert_msg(fabs(ratio[0] - 1) < 1e-5, "first update's ratio %g", ratio[0]);
    ck_assert_msg(kl[0] >= 0 && kl[0] < 1e-8, "first update's kl %g", kl[0]);
    ck_assert(clip[0] == 0.0);
    for (long u = 0; u < updates; u++) {
        ck_assert(step[u] == u + 1);
        ck_assert(isfinite(loss[u]) && kl[u] >= 0 && clip[u] >= 0 && clip[u] <= 1);
        ck_assert(ent[u] > 0 && ent[u] < log(64.0));
    }
    ck_assert_msg(fabs(kl[updates - 1]) > 0, "the policy never moved from its reference");
    free(reward), free(adv), free(major), free(old), free(tok), free(frac), free(rmean);
    free(mlen), free(step), free(ratio), free(kl), free(clip), free(ent), free(loss);
    ad_h5_close_quietly(f);
}
END_TEST

static void expect_config_error(const char *a, const char *b, const char *key) {
    const char *ov[] = {"run_file=/tmp/never.h5", a, b};
    AdExperimentConfig c;
    AdStatus st = ad_experiment_config_parse(&c, CFG, "grpo test", ov, b ? 3 : 2);
    ck_assert_msg(st == AD_ERR_CONFIG, "%s %s: accepted", a, b ? b : "");
    ck_assert_msg(strstr(ad_errmsg(), key) != NULL, "%s %s: the error does not name %s: %s", a,
                  b ? b : "", key, ad_errmsg());
}

START_TEST(test_bad_combinations_and_plan) {
    expect_config_error("rounds.teacher=snapshot", NULL, "rounds.teacher");
    expect_config_error("generate.samples=1", NULL, "generate.samples");
    expect_config_error("rl.reward=judge", NULL, "rl.reward");
    expect_config_error("rl.norm=bnpo", NULL, "rl.norm");
    expect_config_error("rl.baseline=median", NULL, "rl.baseline");
    expect_config_error("rl.mu=0", NULL, "rl.mu");
    expect_config_error("train.loss=fkl", NULL, "train.loss");
    const char *ov[] = {"run_file=/tmp/never.h5"};
    AdExperimentConfig d;
    ck_assert_int_eq(ad_experiment_config_parse(&d, CFG, "t", ov, 1), AD_OK);
    char *plan = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&plan, &len);
    ck_assert_msg(ad_run_plan(&d, f) == AD_OK, "%s", ad_errmsg());
    fclose(f);
    ck_assert_msg(strstr(plan, "grpo: groups of G = 3, B = 16 prompts, rl.reward majority, "
                               "baseline mean / std, mu 2 pass(es) of batch 8, beta 0.04") != NULL,
                  "%s", plan);
    free(plan);
}
END_TEST

int main(void) {
    Suite *s = suite_create("grpo");
    const AdTestCase cases[] = {
        {"grpo run layout", test_grpo_run_layout},
        {"bad combinations and plan", test_bad_combinations_and_plan},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], 300);
    return ad_test_run(s);
}
