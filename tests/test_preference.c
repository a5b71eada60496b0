/* test_preference.c: preference rounds end to end: a SPIN run's file holds the pairs and
 * TRL's curve with consistent shapes and counts; the first update sees the policy equal to
 * its reference (rewards 0, DPO loss log 2); the stored reference log-probs equal those of
 * the previous round's checkpoint recomputed here; the verifier and best-vs-worst builders
 * keep their promises (right vs wrong, chosen scored above rejected by the margin); a
 * preference run stopped and resumed ends with the same numbers; bad combinations of keys
 * fail naming the key. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/h5util.h"
#include "autodidact/checkpoint.h"
#include "autodidact/data.h"
#include "autodidact/experiment.h"
#include "autodidact/preference.h"
#include "autodidact/round.h"
#include "testutil.h"

static const char *CFG =
    "{\"seed\": 3, \"threads\": 2, \"keep_checkpoints\": 0,"
    " \"model\": {\"family\": \"gpt2\", \"pos\": \"none\", \"d_model\": 32, \"n_layer\": 2,"
    "             \"n_head\": 2, \"max_seq_len\": 20},"
    " \"task\": {\"name\": \"copy\", \"train_min_len\": 1, \"train_max_len\": 4,"
    "            \"eval_min_len\": 1, \"eval_max_len\": 5, \"eval_per_len\": 8},"
    " \"pretrain\": {\"steps\": 60, \"batch_size\": 16, \"log_every\": 0, \"warmup_steps\": 5,"
    "               \"lr\": 3e-3},"
    " \"train\": {\"steps\": 6, \"batch_size\": 4, \"log_every\": 0, \"warmup_steps\": 1,"
    "             \"lr\": 1e-3, \"objective\": \"preference\"},"
    " \"rounds\": {\"count\": 2, \"prompts\": 16, \"length_start\": 2, \"length_step\": 0,"
    "              \"length_span\": 2},"
    " \"generate\": {\"samples\": 3, \"temperature\": 1.0, \"batch\": 48},"
    " \"preference\": {\"pairs\": \"spin\"}}";

/* Runs CFG with overrides (run_file first); stop_after as in AdRunOptions. */
static void run_with(const char *file, const char **extra, int n_extra, int stop_after) {
    char over[700];
    snprintf(over, sizeof over, "run_file=%s", file);
    const char *ov[8] = {over};
    for (int i = 0; i < n_extra; i++) ov[1 + i] = extra[i];
    AdExperimentConfig c;
    AdStatus st = ad_experiment_config_parse(&c, CFG, "preference test", ov, 1 + n_extra);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    AdRunOptions o = {1, stop_after};
    st = ad_run_start(&c, CFG, 1, &o);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
}

static long rows_of(hid_t f, const char *name) {
    int rank = 0;
    hsize_t shape[2] = {0, 0};
    AdStatus st = ad_h5_array_shape(f, name, 2, &rank, shape);
    ck_assert_msg(st == AD_OK, "%s: %s", name, ad_errmsg());
    ck_assert_int_eq(rank, 1);
    return (long)shape[0];
}

/* Reads a 1-D dataset of n values as doubles (integers converted). */
static double *read_col(hid_t f, const char *name, long n) {
    double *v = calloc((size_t)(n ? n : 1), sizeof *v);
    hsize_t shape[1] = {(hsize_t)n};
    if (ad_h5_read_array(f, name, AD_H5_F64, 1, shape, v) != AD_OK) {
        int64_t *iv = calloc((size_t)(n ? n : 1), sizeof *iv);
        AdStatus st = ad_h5_read_array(f, name, AD_H5_I64, 1, shape, iv);
        ck_assert_msg(st == AD_OK, "%s: %s", name, ad_errmsg());
        for (long i = 0; i < n; i++) v[i] = (double)iv[i];
        free(iv);
    }
    return v;
}

static hid_t open_file(const char *path) {
    hid_t f;
    ck_assert_msg(ad_h5_open(path, 0, &f) == AD_OK, "%s", ad_errmsg());
    return f;
}

START_TEST(test_spin_layout) {
    const char *file = ad_test_path(ad_test_tmpdir(), "spin.h5");
    run_with(file, NULL, 0, 0);
    hid_t f = open_file(file);
    double *np = read_col(f, "summary/n_pairs", 3), *nd = read_col(f, "summary/pairs_dropped", 3);
    double *prompts = read_col(f, "summary/n_prompts", 3), *pacc = read_col(f, "summary/pair_accuracy", 3);
    ck_assert(np[0] == 0 && nd[0] == 0 && isnan(pacc[0])); /* round 0 has no pairs */
    char name[128];
    for (int r = 1; r <= 2; r++) {
        ck_assert_msg(np[r] + nd[r] == prompts[r], "round %d: %g pairs + %g dropped != %g prompts", r,
                      np[r], nd[r], prompts[r]);
        ck_assert_msg(np[r] > 0, "round %d built no SPIN pairs", r);
        long n = (long)np[r];
        const char *per_pair[] = {"chosen_score", "rejected_score", "chosen_correct",
                                  "rejected_correct", "ref_logp_chosen", "ref_logp_rejected",
                                  "chosen_tokens", "rejected_tokens", "prompt", "chosen", "rejected"};
        for (size_t k = 0; k < sizeof per_pair / sizeof per_pair[0]; k++) {
            snprintf(name, sizeof name, "rounds/%03d/pairs/%s", r, per_pair[k]);
            ck_assert_msg(rows_of(f, name) == n, "%s: %ld rows, expected %ld", name, rows_of(f, name), n);
        }
        snprintf(name, sizeof name, "rounds/%03d/pairs/chosen_correct", r);
        double *cc = read_col(f, name, n);
        snprintf(name, sizeof name, "rounds/%03d/pairs/rejected_correct", r);
        double *rc = read_col(f, name, n);
        snprintf(name, sizeof name, "rounds/%03d/pairs/ref_logp_chosen", r);
        double *lc = read_col(f, name, n);
        snprintf(name, sizeof name, "rounds/%03d/pairs/chosen_tokens", r);
        double *tc = read_col(f, name, n);
        long right = 0;
        for (long i = 0; i < n; i++) {
            /* SPIN: the chosen answer is the ground truth, the rejected one differs from it */
            ck_assert(cc[i] == 1 && rc[i] == 0);
            ck_assert_msg(isfinite(lc[i]) && lc[i] < 0, "reference log-prob %g", lc[i]);
            ck_assert(tc[i] >= 2);
            right++;
        }
        ck_assert(pacc[r] == (double)right / n);
        const char *curve[] = {"step", "loss", "rewards/chosen", "rewards/rejected",
                               "rewards/margins", "rewards/accuracies", "logps/chosen",
                               "logps/rejected"};
        for (size_t k = 0; k < sizeof curve / sizeof curve[0]; k++) {
            snprintf(name, sizeof name, "rounds/%03d/preference/%s", r, curve[k]);
            ck_assert_int_eq(rows_of(f, name), 6);
        }
        snprintf(name, sizeof name, "rounds/%03d/train/loss", r);
        ck_assert_int_eq(rows_of(f, name), 6);
        /* the first update: the policy is its reference, so the rewards are 0 and DPO's loss
         * is log 2 (up to the float forward passes of different batch shapes) */
        snprintf(name, sizeof name, "rounds/%03d/preference/loss", r);
        double *loss = read_col(f, name, 6);
        snprintf(name, sizeof name, "rounds/%03d/preference/rewards/chosen", r);
        double *rwc = read_col(f, name, 6);
        snprintf(name, sizeof name, "rounds/%03d/preference/rewards/margins", r);
        double *mg = read_col(f, name, 6);
        ck_assert_msg(fabs(loss[0] - log(2.0)) < 1e-4, "first loss %.9g", loss[0]);
        ck_assert_msg(fabs(rwc[0]) < 1e-4 && fabs(mg[0]) < 1e-4, "first rewards %g %g", rwc[0], mg[0]);
        ck_assert_msg(loss[5] < loss[0], "six DPO steps did not lower the loss: %g -> %g", loss[0],
                      loss[5]);
        free(cc), free(rc), free(lc), free(tc), free(loss), free(rwc), free(mg);
    }
    free(np), free(nd), free(prompts), free(pacc);
    ad_h5_close_quietly(f);
}
END_TEST

/* The reference log-probs stored in round 2 are those of round 1's checkpoint (the
 * previous round's model), recomputed here from the pair texts. */
START_TEST(test_reference_is_previous_round) {
    const char *file = ad_test_path(ad_test_tmpdir(), "ref.h5");
    run_with(file, NULL, 0, 0);
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt/round_001.h5", file);
    AdModel m;
    AdTokenizer tok;
    ck_assert_msg(ad_checkpoint_load(ckpt, &m, 0, &tok, NULL) == AD_OK, "%s", ad_errmsg());
    hid_t f = open_file(file);
    long n = rows_of(f, "rounds/002/pairs/ref_logp_chosen");
    double *ref = read_col(f, "rounds/002/pairs/ref_logp_chosen", n);
    char **prompt = NULL, **chosen = NULL;
    hid_t d1 = H5Dopen2(f, "rounds/002/pairs/prompt", H5P_DEFAULT);
    hid_t d2 = H5Dopen2(f, "rounds/002/pairs/chosen", H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    prompt = calloc((size_t)n, sizeof *prompt), chosen = calloc((size_t)n, sizeof *chosen);
    ck_assert(H5Dread(d1, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, prompt) >= 0);
    ck_assert(H5Dread(d2, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, chosen) >= 0);
    int T = 20, tokens[20], targets[20];
    AdActs acts;
    ck_assert_int_eq(ad_acts_init(&acts, &m.cfg, 1, T), AD_OK);
    for (long i = 0; i < n; i++) {
        ck_assert_int_eq(ad_data_encode_example(&tok, prompt[i], chosen[i], T, tokens, targets, NULL), AD_OK);
        int Tb = ad_trim_batch(tokens, targets, 1, T);
        ad_model_forward(&m, &acts, tokens, 1, Tb);
        double lp;
        ad_pref_seq_logps(&lp, NULL, acts.logits, targets, 1, Tb, m.cfg.vocab_size);
        ck_assert_msg(fabs(lp - ref[i]) < 1e-4 * (1 + fabs(lp)), "pair %ld: stored %.9g, round 1's "
                      "model %.9g", i, ref[i], lp);
    }
    for (long i = 0; i < n; i++) free(prompt[i]), free(chosen[i]);
    free(prompt), free(chosen), free(ref);
    H5Tclose(t), H5Dclose(d1), H5Dclose(d2);
    ad_h5_close_quietly(f);
    ad_acts_free(&acts);
    ad_model_free(&m);
    ad_tokenizer_free(&tok);
}
END_TEST

START_TEST(test_verifier_and_best_worst_pairs) {
    const char *file = ad_test_path(ad_test_tmpdir(), "ver.h5");
    const char *ver[] = {"preference.pairs=verifier", "rounds.count=1", "preference.loss=ipo"};
    run_with(file, ver, 3, 0);
    hid_t f = open_file(file);
    long n = rows_of(f, "rounds/001/pairs/chosen_correct");
    double *cc = read_col(f, "rounds/001/pairs/chosen_correct", n);
    double *rc = read_col(f, "rounds/001/pairs/rejected_correct", n);
    for (long i = 0; i < n; i++) ck_assert(cc[i] == 1 && rc[i] == 0);
    double *pacc = read_col(f, "summary/pair_accuracy", 2);
    ck_assert(n == 0 ? isnan(pacc[1]) : pacc[1] == 1.0);
    free(cc), free(rc), free(pacc);
    ad_h5_close_quietly(f);

    file = ad_test_path(ad_test_tmpdir(), "bw.h5");
    const char *bw[] = {"preference.pairs=best_worst", "rounds.count=1", "preference.min_margin=0.05",
                        "preference.loss=simpo", "preference.sft_alpha=0.5"};
    run_with(file, bw, 5, 0);
    f = open_file(file);
    n = rows_of(f, "rounds/001/pairs/chosen_score");
    ck_assert_msg(n > 0, "no best-vs-worst pairs");
    double *sc = read_col(f, "rounds/001/pairs/chosen_score", n);
    double *sr = read_col(f, "rounds/001/pairs/rejected_score", n);
    for (long i = 0; i < n; i++)
        ck_assert_msg(sc[i] - sr[i] > 0.05, "pair %ld: %g vs %g", i, sc[i], sr[i]);
    free(sc), free(sr);
    ad_h5_close_quietly(f);
}
END_TEST

START_TEST(test_stop_and_resume_equal) {
    const char *a = ad_test_path(ad_test_tmpdir(), "whole.h5");
    const char *b = ad_test_path(ad_test_tmpdir(), "stopped.h5");
    char bb[600];
    snprintf(bb, sizeof bb, "%s", b);
    run_with(a, NULL, 0, 0);
    run_with(bb, NULL, 0, 2); /* rounds 0 and 1 */
    AdRunOptions o = {1, 0};
    ck_assert_msg(ad_run_resume(bb, NULL, 0, &o) == AD_OK, "%s", ad_errmsg());
    hid_t fa = open_file(a), fb = open_file(bb);
    const char *names[] = {"rounds/002/pairs/ref_logp_chosen", "rounds/002/pairs/ref_logp_rejected",
                           "rounds/002/preference/loss", "rounds/002/preference/rewards/margins",
                           "rounds/002/train/grad_norm", "summary/n_pairs", "summary/train_loss"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        long n = rows_of(fa, names[k]);
        ck_assert_int_eq(rows_of(fb, names[k]), n);
        double *x = read_col(fa, names[k], n), *y = read_col(fb, names[k], n);
        for (long i = 0; i < n; i++)
            ck_assert_msg(memcmp(&x[i], &y[i], sizeof(double)) == 0, "%s[%ld]: %.17g vs %.17g",
                          names[k], i, x[i], y[i]);
        free(x), free(y);
    }
    ad_h5_close_quietly(fa);
    ad_h5_close_quietly(fb);
}
END_TEST

static void expect_config_error(const char *a, const char *b, const char *key) {
    const char *ov[] = {"run_file=/tmp/never.h5", a, b};
    AdExperimentConfig c;
    AdStatus st = ad_experiment_config_parse(&c, CFG, "preference test", ov, b ? 3 : 2);
    ck_assert_msg(st == AD_ERR_CONFIG, "%s %s: accepted", a, b ? b : "");
    ck_assert_msg(strstr(ad_errmsg(), key) != NULL, "%s %s: the error does not name %s: %s", a,
                  b ? b : "", key, ad_errmsg());
}

START_TEST(test_bad_combinations) {
    expect_config_error("preference.pairs=best_worst", "generate.samples=1", "preference.pairs");
    expect_config_error("train.loss=fkl", "rounds.teacher=snapshot", "train.loss");
    expect_config_error("rounds.teacher=ema", NULL, "rounds.teacher");
    expect_config_error("preference.scorer=judge", "preference.pairs=best_worst", "preference.scorer");
    expect_config_error("train.objective=distillation", NULL, "train.objective");
    expect_config_error("preference.loss=kto", NULL, "preference.loss");
    expect_config_error("rounds.prompt_source=seed", NULL, "rounds.prompt_source");
    /* the dry run names the pairs, the loss and the reference */
    const char *ov2[] = {"run_file=/tmp/never.h5"};
    AdExperimentConfig d;
    ck_assert_int_eq(ad_experiment_config_parse(&d, CFG, "t", ov2, 1), AD_OK);
    char *plan = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&plan, &len);
    ck_assert_msg(ad_run_plan(&d, f) == AD_OK, "%s", ad_errmsg());
    fclose(f);
    ck_assert_msg(strstr(plan, "spin pairs; dpo (beta 0.1) against the previous round's model, 6 "
                               "steps of 4 pair(s)") != NULL, "%s", plan);
    free(plan);
    /* auto resolves by train.loss */
    const char *ov[] = {"run_file=/tmp/never.h5", "train.objective=auto"};
    AdExperimentConfig c;
    ck_assert_int_eq(ad_experiment_config_parse(&c, CFG, "t", ov, 2), AD_OK);
    ck_assert_str_eq(c.objective, "sft");
}
END_TEST

int main(void) {
    Suite *s = suite_create("preference");
    const AdTestCase cases[] = {
        {"spin run layout", test_spin_layout},
        {"reference is the previous round", test_reference_is_previous_round},
        {"verifier and best-worst pairs", test_verifier_and_best_worst_pairs},
        {"stop and resume equal", test_stop_and_resume_equal},
        {"bad combinations", test_bad_combinations},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], 300);
    return ad_test_run(s);
}
