/* test_cli.c: what the command line tells a user, through the real binary (AD_BIN):
 * version --help; run --quiet still prints the final table; train writes its loss curve
 * and, resumed, keeps it whole; a finished train --resume says to raise train.steps; a
 * warmup as long as training warns; eval --task reports exact-match accuracy by length;
 * eval --text on a short text evaluates each distinct window once and names --seq-len;
 * generate warns when -n is cut to the context and prints log-probs at full precision;
 * import without a vocabulary warns and the later error says how to fix it; a run prints
 * the ETA of its remaining rounds. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

static const char *TRAIN_CFG =
    "{\"model\": {\"family\": \"gpt2\", \"d_model\": 32, \"n_layer\": 2, \"n_head\": 2,"
    "  \"max_seq_len\": 16},"
    " \"data\": {\"source\": \"task\", \"task\": \"copy\", \"min_len\": 1, \"max_len\": 3},"
    " \"train\": {\"steps\": 20, \"batch_size\": 16, \"lr\": 3e-3, \"min_lr\": 3e-4,"
    "  \"warmup_steps\": 2, \"log_every\": 0, \"eval_every\": 0, \"ckpt_every\": 0},"
    " \"threads\": 2, \"seed\": 5}";

static const char *RUN_CFG =
    "{\"seed\": 3, \"threads\": 2, \"model\": {\"family\": \"gpt2\", \"pos\": \"none\","
    "  \"d_model\": 16, \"n_layer\": 1, \"n_head\": 2, \"max_seq_len\": 16},"
    " \"task\": {\"name\": \"copy\", \"train_max_len\": 3, \"eval_max_len\": 3,"
    "  \"eval_per_len\": 4},"
    " \"pretrain\": {\"steps\": 3, \"batch_size\": 8, \"log_every\": 0, \"warmup_steps\": 1},"
    " \"rounds\": {\"count\": 0}}";

static char out_text[1 << 16], err_text[1 << 16];

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
}

/* Runs "AD_BIN args" in the scratch directory; stdout and stderr land in out_text and
 * err_text. Returns the exit status (-1 if it did not exit). */
static int cli(const char *args) {
    const char *dir = ad_test_tmpdir();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s >%s/out.txt 2>%s/err.txt", dir, ad_test_bin(), args,
             dir, dir);
    int rc = system(cmd);
    slurp(ad_test_path(dir, "out.txt"), out_text, sizeof out_text);
    slurp(ad_test_path(dir, "err.txt"), err_text, sizeof err_text);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

static void write_file(const char *name, const char *text) {
    FILE *f = fopen(ad_test_path(ad_test_tmpdir(), name), "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

#define NEED_BIN()                                                                                 \
    do {                                                                                           \
        if (!ad_test_bin()) {                                                                      \
            printf("%s: skipped: AD_BIN (the autodidact binary, set by ctest) is not set\n",      \
                   __func__);                                                                      \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Trains the small copy model into DIR/<out> (steps steps); returns 0 on success. */
static int train_small(const char *out, int steps) {
    write_file("train.json", TRAIN_CFG);
    char args[512];
    snprintf(args, sizeof args, "train train.json --quiet --set out_dir=%s --set train.steps=%d", out,
             steps);
    return cli(args);
}

START_TEST(test_version_help) {
    NEED_BIN();
    ck_assert_int_eq(cli("version --help"), 0);
    ck_assert_msg(strstr(out_text, "usage: autodidact version") != NULL, "%s", out_text);
    ck_assert_int_eq(cli("version"), 0);
    ck_assert_msg(strstr(out_text, "autodidact ") == out_text, "%s", out_text);
    ck_assert_int_eq(cli("version --bogus"), 2);
}
END_TEST

START_TEST(test_run_quiet_prints_the_table) {
    NEED_BIN();
    write_file("run.json", RUN_CFG);
    ck_assert_int_eq(cli("run run.json --quiet --overwrite --set run_file=runs/q.h5"), 0);
    ck_assert_msg(strstr(out_text, "1 complete round(s)") && strstr(out_text, "exact-match accuracy"),
                  "stdout: %s\nstderr: %s", out_text, err_text);
    ck_assert_msg(strstr(err_text, "round 0 |") == NULL, "--quiet printed progress: %s", err_text);
    /* without --quiet, each round after the first says how long the rest should take */
    ck_assert_int_eq(cli("run run.json --overwrite --set run_file=runs/eta.h5 --set rounds.count=2 "
                         "--set rounds.prompts=4 --set train.steps=2 --set train.log_every=0"), 0);
    ck_assert_msg(strstr(err_text, "run | 2 of 3 rounds done | ETA ") &&
                  strstr(err_text, "for the remaining 1"), "%s", err_text);
    ck_assert_msg(strstr(err_text, "run | 3 of 3") == NULL, "%s", err_text);
}
END_TEST

/* The curve has one line per step; a resumed run continues it, a finished one says what
 * to raise. */
START_TEST(test_train_curve_and_finished_resume) {
    NEED_BIN();
    ck_assert_int_eq(train_small("curve", 20), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/curve/train_log.jsonl", ad_test_tmpdir());
    static char curve[1 << 16];
    slurp(path, curve, sizeof curve);
    int lines = 0;
    for (char *l = curve; (l = strstr(l, "{\"step\": ")) != NULL; l++) {
        lines++;
        ck_assert_int_eq(atoi(l + 9), lines);
        ck_assert_msg(strstr(l, "\"loss\": ") && !strncmp(strstr(l, "\"loss\": ") + 8, "nan", 3) == 0,
                      "%s", l);
    }
    ck_assert_int_eq(lines, 20);
    ck_assert_int_eq(cli("train --resume curve/checkpoint.h5 --quiet"), 0);
    ck_assert_msg(strstr(err_text, "is finished") && strstr(err_text, "raise train.steps") &&
                  strstr(err_text, "--set train.steps="), "%s", err_text);
    ck_assert_int_eq(cli("train --resume curve/checkpoint.h5 --quiet --set train.steps=30"), 0);
    slurp(path, curve, sizeof curve);
    lines = 0;
    for (char *l = curve; (l = strstr(l, "{\"step\": ")) != NULL; l++) {
        lines++;
        ck_assert_int_eq(atoi(l + 9), lines);
    }
    ck_assert_int_eq(lines, 30);
}
END_TEST

/* A new model takes an existing checkpoint's tokenizer by config. */
START_TEST(test_train_tokenizer_from) {
    NEED_BIN();
    write_file("train.json", TRAIN_CFG);
    ck_assert_int_eq(cli("train train.json --quiet --set out_dir=bytes --set train.steps=2 "
                         "--set data.tokenizer=byte"), 0);
    ck_assert_int_eq(cli("train train.json --quiet --set out_dir=taken --set train.steps=2 "
                         "--set model.tokenizer_from=bytes/checkpoint.h5"), 0);
    ck_assert_int_eq(cli("eval --model taken/checkpoint.h5 --text train.json --seq-len 8 "
                         "--batches 1"), 0); /* a byte vocabulary encodes any text */
    ck_assert_int_eq(cli("eval --model bytes/checkpoint.h5 --task copy --per-len 0"), 0);
    ck_assert_int_eq(cli("train train.json --quiet --set out_dir=bad --set train.steps=2 "
                         "--set model.tokenizer_from=missing.h5"), 1);
    ck_assert_msg(strstr(err_text, "model.tokenizer_from") && strstr(err_text, "missing.h5"), "%s",
                  err_text);
}
END_TEST

START_TEST(test_warmup_warning) {
    NEED_BIN();
    write_file("train.json", TRAIN_CFG);
    ck_assert_int_eq(cli("train train.json --quiet --set out_dir=w --set train.steps=3 "
                         "--set train.warmup_steps=3"), 0);
    ck_assert_msg(strstr(err_text, "train.warmup_steps 3 >= train.steps 3"), "%s", err_text);
    ck_assert_int_eq(cli("train train.json --quiet --set out_dir=w --set train.steps=3 "
                         "--set train.warmup_steps=2"), 0);
    ck_assert_msg(strstr(err_text, "warmup") == NULL, "%s", err_text);
    write_file("run.json", RUN_CFG);
    ck_assert_int_eq(cli("run run.json --dry-run --set pretrain.warmup_steps=5"), 0);
    ck_assert_msg(strstr(err_text, "pretrain.warmup_steps 5 >= pretrain.steps 3"), "%s", err_text);
}
END_TEST

START_TEST(test_eval_task_accuracy_and_short_text) {
    NEED_BIN();
    ck_assert_int_eq(train_small("ev", 150), 0);
    ck_assert_int_eq(cli("eval --model ev/checkpoint.h5 --task copy --max-len 4 --per-len 20"), 0);
    const char *acc = strstr(out_text, "exact-match accuracy (greedy, 20 per length): 1:");
    ck_assert_msg(acc != NULL, "%s", out_text);
    ck_assert_msg(strstr(acc, " 4:") && !strstr(acc, " 5:"), "%s", acc);
    /* a 9-token text holds one window of 8 tokens: once, not 12 times */
    write_file("d.txt", "1234=1234");
    ck_assert_int_eq(cli("eval --model ev/checkpoint.h5 --text d.txt --batches 3 --batch-size 4 "
                         "--seq-len 8 --logprobs lp.jsonl"), 0);
    ck_assert_msg(strstr(out_text, "all 1 distinct windows of 8 tokens") &&
                  strstr(out_text, "over 8 target tokens"), "%s", out_text);
    static char lp[1 << 14];
    slurp(ad_test_path(ad_test_tmpdir(), "lp.jsonl"), lp, sizeof lp);
    int n = 0;
    for (char *p = lp; (p = strchr(p, '\n')) != NULL; p++) n++;
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(cli("eval --model ev/checkpoint.h5 --text d.txt --seq-len 12"), 1);
    ck_assert_msg(strstr(err_text, "--seq-len 12") && !strstr(err_text, "val_frac"), "%s", err_text);
}
END_TEST

/* The digits after the first log-prob of generate --json. */
static int first_logprob_digits(const char *json) {
    const char *p = strstr(json, "\"logprobs\": [");
    if (!p) return -1;
    int d = 0;
    for (p += 13; *p && *p != ',' && *p != ']' && *p != 'e'; p++) d += isdigit((unsigned char)*p) != 0;
    return d;
}

START_TEST(test_generate_context_and_precision) {
    NEED_BIN();
    ck_assert_int_eq(train_small("gen", 20), 0);
    ck_assert_int_eq(cli("generate --model gen/checkpoint.h5 --prompt 12 -n 100 --temperature 0"), 0);
    ck_assert_msg(strstr(err_text, "-n 100: samples stop at the model's context of 16 tokens") &&
                  strstr(err_text, "at most 13 new tokens"), "%s", err_text);
    ck_assert_int_eq(cli("generate --model gen/checkpoint.h5 --prompt 12 -n 3 --json"), 0);
    ck_assert_msg(strstr(err_text, "context") == NULL, "%s", err_text);
    ck_assert_msg(first_logprob_digits(out_text) >= 8, "log-probs not at full precision: %s",
                  out_text);
}
END_TEST

START_TEST(test_import_without_tokenizer) {
    NEED_BIN();
    const char *models = ad_test_models_dir();
    if (!models) {
        printf("test_import_without_tokenizer: skipped: no stories260K.bin under AD_SHARED_MODELS "
               "or ../shared/models\n");
        return;
    }
    char args[4400];
    snprintf(args, sizeof args, "import %s/stories260K.bin -o notok.h5", models);
    ck_assert_int_eq(cli(args), 0);
    ck_assert_msg(strstr(err_text, "no --tokenizer") && strstr(err_text, "notok.h5"), "%s", err_text);
    ck_assert_int_ne(cli("generate --model notok.h5 --prompt x"), 0);
    ck_assert_msg(strstr(err_text, "notok.h5") && strstr(err_text, "--tokenizer"), "%s", err_text);
    /* as the README's first stories command: into runs/, which a fresh clone lacks */
    snprintf(args, sizeof args, "import %s/stories260K.bin --tokenizer %s/tok512.bin -o "
             "fresh/runs/tok.h5", models, models);
    ck_assert_int_eq(cli(args), 0);
    ck_assert_msg(strstr(err_text, "warning") == NULL, "%s", err_text);
    ck_assert_int_eq(cli("generate --model fresh/runs/tok.h5 --prompt Once -n 4"), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    const AdTestCase cases[] = {
        {"version --help", test_version_help},
        {"run --quiet prints the table", test_run_quiet_prints_the_table},
        {"train curve and finished resume", test_train_curve_and_finished_resume},
        {"warmup warning", test_warmup_warning},
        {"train model.tokenizer_from", test_train_tokenizer_from},
        {"eval task accuracy and short text", test_eval_task_accuracy_and_short_text},
        {"generate context and precision", test_generate_context_and_precision},
        {"import without tokenizer", test_import_without_tokenizer},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], 300);
    return ad_test_run(s);
}
