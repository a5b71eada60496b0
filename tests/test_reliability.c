/* test_reliability.c: the command line under hostile inputs, through the binary (AD_BIN).
 * Sizes from a config are capped by the work or refused up front under a memory limit;
 * run files with holes or absurd counts are refused naming the first bad object;
 * non-finite weights are refused naming the tensor and index; output paths are checked
 * before any work; and the advice printed after a failure names only commands that work. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/h5util.h"
#include "testutil.h"

#define TIMEOUT 300
#define MEMORY_KB 2000000 /* ulimit -v for the memory tests: about 1.9 GiB */

/* A run of a few seconds: round 0 and two rounds, log-prob and self-judge scorers. */
static const char *TINY =
    "{\"seed\": 7, \"threads\": 2, \"keep_checkpoints\": 0,"
    " \"model\": {\"family\": \"gpt2\", \"pos\": \"none\", \"d_model\": 32, \"n_layer\": 2,"
    "             \"n_head\": 2, \"max_seq_len\": 24},"
    " \"task\": {\"name\": \"copy\", \"train_min_len\": 1, \"train_max_len\": 4,"
    "            \"eval_min_len\": 1, \"eval_max_len\": 6, \"eval_per_len\": 16},"
    " \"pretrain\": {\"steps\": 30, \"batch_size\": 16, \"log_every\": 0, \"warmup_steps\": 5},"
    " \"train\": {\"steps\": 10, \"batch_size\": 16, \"log_every\": 0, \"warmup_steps\": 2},"
    " \"rounds\": {\"count\": 2, \"prompts\": 24},"
    " \"generate\": {\"samples\": 2, \"temperature\": 0.8, \"batch\": 16},"
    " \"score\": {\"self_judge\": true}}";

static char tiny_path[512], complete_run[512], err_path[512];
static double last_seconds;

/* Runs a shell command built from fmt (stderr of the binary goes to err_path, read back
 * with err_text) and returns its exit status; the wall time is in last_seconds. */
static int shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int shell(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = system(cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    last_seconds = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
}

/* The captured stderr of the last command (static buffer). */
static const char *err_text(void) {
    static char buf[16384];
    FILE *f = fopen(err_path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    return buf;
}

static void expect_err_has(const char *needle) {
    const char *e = err_text();
    ck_assert_msg(strstr(e, needle) != NULL, "stderr lacks \"%s\": %s", needle, e);
}

static void expect_err_lacks(const char *needle) {
    const char *e = err_text();
    ck_assert_msg(strstr(e, needle) == NULL, "stderr has \"%s\": %s", needle, e);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static const char *tmp(const char *name) { return ad_test_path(ad_test_tmpdir(), name); }

/* `autodidact run` of the tiny config into run_file with extra arguments; 0 on success. */
static int run_tiny(const char *prefix, const char *run_file, const char *extra) {
    return shell("%s %s run %s --quiet --set run_file=%s %s 2>%s", prefix, ad_test_bin(), tiny_path,
                 run_file, extra, err_path);
}

/* ---- 1. sizes that drive allocations --------------------------------------------- */

/* AddressSanitizer reserves terabytes of address space for its shadow memory, so no
 * program built with it starts under ulimit -v: the memory-limit cases run in the plain
 * build only. */
static int skip_under_sanitizer(void) {
#ifdef AD_SANITIZED
    printf("skipped: a sanitizer build cannot run under ulimit -v (its shadow memory)\n");
    return 1;
#else
    return 0;
#endif
}

/* generate.batch far above the sequences a round decodes costs nothing: generation, the
 * log-prob and judge scorers and the evaluation cut it to their work. */
START_TEST(test_batch_capped_by_work) {
    if (skip_under_sanitizer()) return;
    char pre[64];
    snprintf(pre, sizeof pre, "ulimit -v %d;", MEMORY_KB);
    const char *file = tmp("bigbatch.h5");
    int rc = run_tiny(pre, file, "--overwrite --set generate.batch=65536");
    ck_assert_msg(rc == 0, "exit %d under ulimit -v %d: %s", rc, MEMORY_KB, err_text());
}
END_TEST

/* Sizes the work really needs beyond the limit are refused before any work, naming the
 * key and the memory. */
START_TEST(test_sizes_refused_up_front) {
    if (skip_under_sanitizer()) return;
    char pre[64];
    snprintf(pre, sizeof pre, "ulimit -v %d;", MEMORY_KB);
    const struct { const char *set, *key; } cases[] = {
        {"--set pretrain.batch_size=1000000", "pretrain.batch_size = 1000000"},
        {"--set train.batch_size=500000", "train.batch_size = 500000"},
        {"--set rounds.prompts=10000000 --set generate.samples=1000", "rounds.prompts = 10000000"},
        {"--set task.eval_per_len=10000000", "task.eval_per_len = 10000000"},
        {"--set model.d_model=8192 --set model.n_layer=64", "d_model 8192"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *file = tmp("toobig.h5");
        int rc = run_tiny(pre, file, cases[i].set);
        ck_assert_msg(rc == 1, "%s: exit %d: %s", cases[i].set, rc, err_text());
        ck_assert_msg(last_seconds < 2.0, "%s: took %.1f s", cases[i].set, last_seconds);
        expect_err_has(cases[i].key);
        expect_err_has("GiB");
        expect_err_has("ulimit -v");
        ck_assert(!exists(file));
    }
    /* eval's batch: a command-line size */
    int rc = shell("%s %s eval --model %s.ckpt/round_002.h5 --task copy --batch-size 65536 "
                   "--seq-len 24 >/dev/null 2>%s", pre, ad_test_bin(), complete_run, err_path);
    ck_assert_msg(rc == 1, "eval --batch-size 65536: exit %d: %s", rc, err_text());
    expect_err_has("--batch-size 65536 x --seq-len 24");
    expect_err_has("GiB");
}
END_TEST

/* ---- 2. run-file consistency ------------------------------------------------------- */

static void copy_run(const char *to) {
    ck_assert_int_eq(shell("cp %s %s && rm -rf %s.ckpt && cp -r %s.ckpt %s.ckpt", complete_run, to,
                           to, complete_run, to), 0);
}

/* Deletes the link `name` of a run file. */
static void unlink_object(const char *file, const char *name) {
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    ck_assert(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    ck_assert(H5Fclose(f) >= 0);
}

/* resume and report both refuse the file, naming `needle`. */
static void expect_refused(const char *file, const char *needle) {
    int rc = shell("%s resume %s --quiet 2>%s", ad_test_bin(), file, err_path);
    ck_assert_msg(rc == 1, "resume of %s: exit %d: %s", file, rc, err_text());
    expect_err_has(needle);
    rc = shell("%s report %s >/dev/null 2>%s", ad_test_bin(), file, err_path);
    ck_assert_msg(rc == 1, "report of %s: exit %d: %s", file, rc, err_text());
    expect_err_has(needle);
}

START_TEST(test_run_file_hole) {
    const char *file = tmp("hole.h5");
    copy_run(file);
    unlink_object(file, "rounds/001");
    expect_refused(file, "/rounds/001 is missing");
    expect_err_has("rounds_complete = 3");
}
END_TEST

START_TEST(test_run_file_missing_dataset) {
    const char *names[] = {"rounds/002/eval/loss", "rounds/000/train/step", "rounds/001/scores",
                           "rounds/002/selected", "summary/n_candidates"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *file = tmp("missing.h5");
        copy_run(file);
        unlink_object(file, names[i]);
        expect_refused(file, names[i]);
    }
}
END_TEST

/* A dataset whose length disagrees with the summary or its neighbours. */
START_TEST(test_run_file_bad_shape) {
    const char *file = tmp("shape.h5");
    copy_run(file);
    unlink_object(file, "rounds/001/selected");
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    uint8_t v[3] = {1, 0, 1};
    hsize_t n = 3;
    ck_assert_int_eq(ad_h5_write_array(f, "rounds/001/selected", AD_H5_U8, 1, &n, v), AD_OK);
    ck_assert(H5Fclose(f) >= 0);
    expect_refused(file, "/rounds/001/selected has 3 entries");
}
END_TEST

/* Resuming with an evaluation grid other than the file's is refused before any work. */
START_TEST(test_run_file_grid_mismatch) {
    const char *file = tmp("grid.h5");
    copy_run(file);
    int rc = shell("%s resume %s --quiet --set rounds.count=3 --set task.eval_max_len=8 2>%s",
                   ad_test_bin(), file, err_path);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, err_text());
    ck_assert_msg(last_seconds < 2.0, "took %.1f s", last_seconds);
    expect_err_has("/eval_lengths has 6 lengths");
    expect_err_has("task.eval_max_len");
}
END_TEST

/* Negative and absurd counts: a clear message, no allocation of a wrapped size. */
START_TEST(test_run_file_bad_count) {
    const long long counts[] = {-3, 2000000000LL, 7};
    const char *says[] = {"rounds_complete = -3 is outside", "rounds_complete = 2000000000 is outside",
                          "rows, but rounds_complete is 7"};
    for (int i = 0; i < 3; i++) {
        const char *file = tmp("count.h5");
        copy_run(file);
        hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
        ck_assert(f >= 0);
        ck_assert_int_eq(ad_h5_attr_write_i64(f, "rounds_complete", counts[i]), AD_OK);
        ck_assert(H5Fclose(f) >= 0);
        expect_refused(file, says[i]);
        expect_err_lacks("size overflow");
    }
}
END_TEST

/* ---- 3. non-finite weights ----------------------------------------------------------- */

START_TEST(test_nan_checkpoint_refused) {
    char src[600];
    snprintf(src, sizeof src, "%s.ckpt/round_002.h5", complete_run);
    const char *file = tmp("nan.h5");
    ck_assert_int_eq(shell("cp %s %s", src, file), 0);
    ad_test_poke_weight(file, "qkv_w", 3139, NAN); /* qkv_w is (2, 96, 32): element 3139 is [1, 2, 3] */
    int rc = shell("%s eval --model %s --task copy --max-len 4 >/dev/null 2>%s", ad_test_bin(), file,
                   err_path);
    ck_assert_msg(rc == 1, "eval of a NaN checkpoint: exit %d: %s", rc, err_text());
    expect_err_has("qkv_w[1, 2, 3]");
    expect_err_has("is nan");
    rc = shell("%s generate --model %s --prompt 12 -n 4 >/dev/null 2>%s", ad_test_bin(), file,
               err_path);
    ck_assert_msg(rc == 1, "generate from a NaN checkpoint: exit %d", rc);
    expect_err_has("qkv_w[1, 2, 3]");
    /* a run that starts from it */
    char set[700];
    snprintf(set, sizeof set, "--overwrite --set model.init_from=%s", file);
    rc = run_tiny("", tmp("from_nan.h5"), set);
    ck_assert_msg(rc == 1, "run from a NaN checkpoint: exit %d", rc);
    expect_err_has("model.init_from");
    expect_err_has("is nan");
    /* an infinity too */
    ck_assert_int_eq(shell("cp %s %s", src, file), 0);
    ad_test_poke_weight(file, "qkv_w", 0, -INFINITY);
    rc = shell("%s eval --model %s --task copy --max-len 4 >/dev/null 2>%s", ad_test_bin(), file,
               err_path);
    ck_assert_int_eq(rc, 1);
    expect_err_has("qkv_w[0, 0, 0] (element 0 of 6144) is -inf");
}
END_TEST

/* An imported model (llama2.c .bin) with one NaN weight is refused by import and by
 * generate, which imports on the fly. */
START_TEST(test_nan_import_refused) {
    const char *dir = ad_test_models_dir();
    if (!dir) {
        printf("test_nan_import_refused: skipped: no stories260K.bin in ../shared/models\n");
        return;
    }
    const char *bin = tmp("nan260K.bin");
    ck_assert_int_eq(shell("cp %s/stories260K.bin %s", dir, bin), 0);
    FILE *f = fopen(bin, "r+b");
    ck_assert_ptr_nonnull(f);
    float nan = NAN;
    ck_assert_int_eq(fseek(f, 28 + 4 * 10, SEEK_SET), 0); /* after the 7-int header: wte[0, 10] */
    ck_assert_int_eq(fwrite(&nan, sizeof nan, 1, f), 1);
    ck_assert_int_eq(fclose(f), 0);
    const char *out = tmp("nan260K.h5");
    int rc = shell("%s import %s --tokenizer %s/tok512.bin -o %s >/dev/null 2>%s", ad_test_bin(), bin,
                   dir, out, err_path);
    ck_assert_msg(rc == 1, "import of a NaN model: exit %d: %s", rc, err_text());
    expect_err_has("token_embedding_table");
    expect_err_has("element 10");
    ck_assert(!exists(out));
    rc = shell("%s generate --model %s --tokenizer %s/tok512.bin --prompt Once -n 4 >/dev/null 2>%s",
               ad_test_bin(), bin, dir, err_path);
    ck_assert_int_eq(rc, 1);
    expect_err_has("token_embedding_table");
}
END_TEST

/* ---- 4. output paths ------------------------------------------------------------------ */

START_TEST(test_run_file_is_directory) {
    const char *dir = tmp("outdir");
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    int rc = run_tiny("", dir, "");
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(last_seconds < 1.0, "took %.2f s", last_seconds);
    expect_err_has("is a directory");
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", dir);
    ck_assert_msg(!exists(ckpt), "%s was left behind", ckpt);
    /* with --overwrite too */
    rc = run_tiny("", dir, "--overwrite");
    ck_assert_int_eq(rc, 1);
    ck_assert(!exists(ckpt));
}
END_TEST

START_TEST(test_output_paths_checked_first) {
    const char *file = tmp("plain.txt");
    ck_assert_int_eq(shell("echo hello > %s", file), 0);
    char under_file[600], bad_ckpt[600];
    snprintf(under_file, sizeof under_file, "%s/run.h5", file); /* parent is a file */
    int rc = run_tiny("", under_file, "");
    ck_assert_int_eq(rc, 1);
    ck_assert(last_seconds < 1.0);
    expect_err_has("is not a directory");
    /* the checkpoint directory beside the run file is a file */
    const char *run = tmp("ckptfile.h5");
    snprintf(bad_ckpt, sizeof bad_ckpt, "%s.ckpt", run);
    ck_assert_int_eq(shell("echo x > %s", bad_ckpt), 0);
    rc = run_tiny("", run, "");
    ck_assert_int_eq(rc, 1);
    ck_assert(last_seconds < 1.0);
    expect_err_has("exists and is not a directory");
    ck_assert(!exists(run));
    /* the run file is the config it reads */
    rc = run_tiny("", tiny_path, "--overwrite");
    ck_assert_int_eq(rc, 1);
    expect_err_has("is also an input");
    /* eval --logprobs onto the model */
    char model[600];
    snprintf(model, sizeof model, "%s.ckpt/round_002.h5", complete_run);
    struct stat before, after;
    ck_assert_int_eq(stat(model, &before), 0);
    rc = shell("%s eval --model %s --task copy --logprobs %s >/dev/null 2>%s", ad_test_bin(), model,
               model, err_path);
    ck_assert_int_eq(rc, 1);
    expect_err_has("is also an input");
    ck_assert_int_eq(stat(model, &after), 0);
    ck_assert_int_eq(before.st_size, after.st_size);
    /* eval --logprobs into a missing directory: refused before the model loads */
    rc = shell("%s eval --model %s --task copy --logprobs %s/no/such/dir/lp.jsonl >/dev/null 2>%s",
               ad_test_bin(), model, ad_test_tmpdir(), err_path);
    ck_assert_int_eq(rc, 1);
    expect_err_has("does not exist");
    /* import -o a directory, or onto its input */
    rc = shell("%s import %s -o %s >/dev/null 2>%s", ad_test_bin(), model, ad_test_tmpdir(), err_path);
    ck_assert_int_eq(rc, 1);
    expect_err_has("is a directory");
    /* train: out_dir is a file */
    rc = shell("echo '{\"train\": {\"steps\": 5}}' > %s && %s train %s --quiet --set out_dir=%s 2>%s",
               tmp("train.json"), ad_test_bin(), tmp("train.json"), file, err_path);
    ck_assert_int_eq(rc, 1);
    ck_assert(last_seconds < 1.0);
    expect_err_has("out_dir");
    expect_err_has("not a directory");
}
END_TEST

/* ---- 5. advice after a failure ---------------------------------------------------------- */

/* Round 0 fails (its checkpoint cannot be written under ulimit -f) before any run file
 * exists: the advice must not name resume. */
START_TEST(test_round0_failure_advice) {
    const char *file = tmp("fail0.h5");
    int rc = run_tiny("trap '' XFSZ; ulimit -f 40;", file, "--overwrite");
    ck_assert_msg(rc == 1, "exit %d: %s", rc, err_text());
    expect_err_has("round 0");
    ck_assert(!exists(file));
    expect_err_lacks("resume");
    expect_err_has("start the run again");
}
END_TEST

/* An existing file that is not a resumable run: run refuses it without suggesting resume. */
START_TEST(test_existing_file_advice) {
    const char *file = tmp("notarun.h5");
    ck_assert_int_eq(shell("echo hello > %s", file), 0);
    int rc = run_tiny("", file, "");
    ck_assert_int_eq(rc, 1);
    expect_err_has("already exists");
    expect_err_lacks("resume");
    /* a run file with rounds left to do: resume is named, and works */
    const char *partial = tmp("partial.h5");
    rc = run_tiny("", partial, "--overwrite --stop-after 1");
    ck_assert_int_eq(rc, 0);
    rc = run_tiny("", partial, "");
    ck_assert_int_eq(rc, 1);
    expect_err_has("autodidact resume");
    rc = shell("%s resume %s --quiet 2>%s", ad_test_bin(), partial, err_path);
    ck_assert_msg(rc == 0, "the resume the advice names failed: %s", err_text());
    /* a finished run: resume is named with a larger rounds.count, and that works */
    rc = run_tiny("", partial, "");
    ck_assert_int_eq(rc, 1);
    expect_err_has("--set rounds.count=N' (N > 2)");
    rc = shell("%s resume %s --quiet --set rounds.count=3 2>%s", ad_test_bin(), partial, err_path);
    ck_assert_msg(rc == 0, "extending the finished run failed: %s", err_text());
}
END_TEST

/* train stops before writing any checkpoint: no 'train --resume' advice. */
START_TEST(test_train_failure_advice) {
    const char *cfg = tmp("train_fail.json");
    FILE *f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"model\": {\"d_model\": 32, \"n_layer\": 1, \"n_head\": 2, \"max_seq_len\": 16},"
          " \"data\": {\"task\": \"copy\", \"max_len\": 4},"
          " \"train\": {\"steps\": 20, \"batch_size\": 4, \"log_every\": 0, \"eval_every\": 0,"
          "            \"ckpt_every\": 5}}", f);
    fclose(f);
    char out[600];
    snprintf(out, sizeof out, "%s/train_fail_out", ad_test_tmpdir());
    int rc = shell("trap '' XFSZ; ulimit -f 4; %s train %s --quiet --set out_dir=%s 2>%s",
                   ad_test_bin(), cfg, out, err_path);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, err_text());
    expect_err_lacks("--resume");
    expect_err_has("no checkpoint was written");
}
END_TEST

int main(void) {
    const char *bin = ad_test_bin();
    if (!bin) {
        printf("test_reliability: skipped: AD_BIN (the autodidact binary, set by ctest) is not set\n");
        return 0;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    snprintf(tiny_path, sizeof tiny_path, "%s/tiny.json", ad_test_tmpdir());
    snprintf(complete_run, sizeof complete_run, "%s/complete.h5", ad_test_tmpdir());
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", ad_test_tmpdir());
    FILE *f = fopen(tiny_path, "w");
    if (!f || fputs(TINY, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "test_reliability: cannot write %s\n", tiny_path);
        return 1;
    }
    /* one complete run, made before the tests fork, that the run-file tests damage copies of */
    if (run_tiny("", complete_run, "--overwrite") != 0) {
        fprintf(stderr, "test_reliability: the reference run failed: %s\n", err_text());
        return 1;
    }
    const AdTestCase cases[] = {
        {"batch_capped_by_work", test_batch_capped_by_work},
        {"sizes_refused_up_front", test_sizes_refused_up_front},
        {"run_file_hole", test_run_file_hole},
        {"run_file_missing_dataset", test_run_file_missing_dataset},
        {"run_file_bad_shape", test_run_file_bad_shape},
        {"run_file_bad_count", test_run_file_bad_count},
        {"run_file_grid_mismatch", test_run_file_grid_mismatch},
        {"nan_checkpoint_refused", test_nan_checkpoint_refused},
        {"nan_import_refused", test_nan_import_refused},
        {"run_file_is_directory", test_run_file_is_directory},
        {"output_paths_checked_first", test_output_paths_checked_first},
        {"round0_failure_advice", test_round0_failure_advice},
        {"existing_file_advice", test_existing_file_advice},
        {"train_failure_advice", test_train_failure_advice},
    };
    Suite *s = suite_create("reliability");
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], TIMEOUT);
    return ad_test_run(s);
}
