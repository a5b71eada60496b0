/* test_run.c: end-to-end tests of the round engine: a tiny run's file has every
 * documented object with the right shapes; stopping after a round and resuming, or
 * killing the process at a random moment and resuming, ends with exactly the numbers of
 * an uninterrupted run; bad configs fail with a message naming the key; the dry run shows
 * the models as loaded and fails where the run would; prompts from JSONL; the shipped
 * stories260K configs run (tiny versions) when the shared model files are present. */
#include <math.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/h5util.h"
#include "autodidact/checkpoint.h"
#include "autodidact/data.h"
#include "autodidact/experiment.h"
#include "autodidact/importers.h"
#include "autodidact/round.h"
#include "autodidact/runlog.h"
#include "testutil.h"

static const char *TINY =
    "{\"seed\": 7, \"threads\": 2, \"keep_checkpoints\": 0,"
    " \"model\": {\"family\": \"gpt2\", \"pos\": \"none\", \"d_model\": 32, \"n_layer\": 2,"
    "             \"n_head\": 2, \"max_seq_len\": 24},"
    " \"task\": {\"name\": \"copy\", \"train_min_len\": 1, \"train_max_len\": 4,"
    "            \"eval_min_len\": 1, \"eval_max_len\": 6, \"eval_per_len\": 16},"
    " \"pretrain\": {\"steps\": 60, \"batch_size\": 16, \"log_every\": 0, \"warmup_steps\": 5},"
    " \"train\": {\"steps\": 20, \"batch_size\": 16, \"log_every\": 0, \"warmup_steps\": 2},"
    " \"rounds\": {\"count\": 2, \"prompts\": 24},"
    " \"generate\": {\"samples\": 2, \"temperature\": 0.8, \"batch\": 16},"
    " \"score\": {\"self_judge\": true, \"ensemble\": 1}}";

static void load_tiny(AdExperimentConfig *c, const char *run_file) {
    char over[1200];
    snprintf(over, sizeof over, "run_file=%s", run_file);
    const char *ov[] = {over};
    AdStatus st = ad_experiment_config_parse(c, TINY, "tiny", ov, 1);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
}

static void run_fresh(const char *file, int stop_after) __attribute__((unused));
static void run_fresh(const char *file, int stop_after) {
    AdExperimentConfig c;
    load_tiny(&c, file);
    AdRunOptions o = {1, stop_after};
    AdStatus st = ad_run_start(&c, TINY, 1, &o);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
}

static hid_t open_run(const char *file) {
    hid_t f;
    AdStatus st = ad_h5_open(file, 0, &f);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    return f;
}

static void expect_rows(hid_t f, const char *name, int rank, hsize_t d0, hsize_t d1) {
    int r = 0;
    hsize_t shape[4] = {0};
    AdStatus st = ad_h5_array_shape(f, name, 4, &r, shape);
    ck_assert_msg(st == AD_OK, "%s: %s", name, ad_errmsg());
    ck_assert_msg(r == rank, "%s: rank %d, expected %d", name, r, rank);
    ck_assert_msg(shape[0] == d0, "%s: %llu rows, expected %llu", name, (unsigned long long)shape[0],
                  (unsigned long long)d0);
    if (rank > 1) ck_assert_msg(shape[1] == d1, "%s: %llu columns, expected %llu", name,
                                (unsigned long long)shape[1], (unsigned long long)d1);
}

/* The numbers that must agree between runs: everything but timings and throughput. */
static const char *NUMERIC[] = {"summary/round", "summary/length_lo", "summary/length_hi",
                                "summary/n_prompts", "summary/n_candidates", "summary/n_selected",
                                "summary/acceptance", "summary/label_accuracy",
                                "summary/candidate_accuracy", "summary/train_examples",
                                "summary/train_steps", "summary/train_loss", "summary/frontier_90"};

static void read_numbers(const char *file, double *out /* 13 x 3 + 3 x 6 */, double *curve /* 20 */) {
    hid_t f = open_run(file);
    hsize_t shape[2] = {3, 6};
    for (int k = 0; k < 13; k++) {
        AdStatus st = ad_h5_read_array(f, NUMERIC[k], AD_H5_F64, 1, shape, out + 3 * k);
        if (st) { /* an integer column */
            int64_t tmp[3];
            st = ad_h5_read_array(f, NUMERIC[k], AD_H5_I64, 1, shape, tmp);
            for (int i = 0; i < 3; i++) out[3 * k + i] = (double)tmp[i];
        }
        ck_assert_msg(st == AD_OK, "%s: %s", NUMERIC[k], ad_errmsg());
    }
    AdStatus st = ad_h5_read_array(f, "summary/eval_accuracy", AD_H5_F64, 2, shape, out + 39);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    hsize_t cs[1] = {20};
    st = ad_h5_read_array(f, "rounds/002/train/loss", AD_H5_F64, 1, cs, curve);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    ad_h5_close_quietly(f);
}

static void expect_same(const char *a, const char *b) {
    double x[57], y[57], cx[20], cy[20];
    read_numbers(a, x, cx);
    read_numbers(b, y, cy);
    for (int i = 0; i < 57; i++) {
        int both_nan = isnan(x[i]) && isnan(y[i]);
        ck_assert_msg(both_nan || memcmp(&x[i], &y[i], sizeof(double)) == 0,
                      "value %d differs: %.17g vs %.17g (%s)", i, x[i], y[i],
                      i < 39 ? NUMERIC[i / 3] : "summary/eval_accuracy");
    }
    for (int i = 0; i < 20; i++)
        ck_assert_msg(memcmp(&cx[i], &cy[i], sizeof(double)) == 0,
                      "round 2 training loss at step %d differs: %.17g vs %.17g", i + 1, cx[i], cy[i]);
}

/* The uninterrupted run, made once by main() before the tests fork. */
static char reference_path[512];
static double reference_seconds; /* how long the reference run took */
static const char *reference_run(void) { return reference_path; }

START_TEST(test_layout) {
    const char *file = reference_run();
    hid_t f = open_run(file);
    char *s = NULL;
    ck_assert_int_eq(ad_h5_attr_read_str(f, "format", 64, &s), AD_OK);
    ck_assert_str_eq(s, "autodidact-run");
    free(s);
    int64_t v = 0;
    ck_assert_int_eq(ad_h5_attr_read_i64(f, "format_version", &v), AD_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(ad_h5_attr_read_i64(f, "rounds_complete", &v), AD_OK);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(ad_h5_attr_read_i64(f, "seed", &v), AD_OK);
    ck_assert_int_eq(v, 7);
    const char *attrs[] = {"program_version", "git_commit", "start_time", "blas", "cpu"};
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(ad_h5_attr_read_str(f, attrs[i], 4096, &s) == AD_OK, "%s: %s", attrs[i], ad_errmsg());
        ck_assert_msg(strlen(s) > 0, "%s is empty", attrs[i]);
        free(s);
    }
    ck_assert_int_eq(ad_h5_read_string(f, "config", 1 << 20, &s), AD_OK);
    ck_assert_msg(strstr(s, "\"eval_per_len\"") != NULL, "config lacks keys: %s", s);
    free(s);
    ck_assert_int_eq(ad_h5_read_string(f, "config_original", 1 << 20, &s), AD_OK);
    free(s);
    expect_rows(f, "eval_lengths", 1, 6, 0);
    const char *cols[] = {"round", "length_lo", "length_hi", "n_prompts", "n_candidates", "n_selected",
                          "acceptance", "label_accuracy", "candidate_accuracy", "train_examples",
                          "train_steps", "train_loss", "frontier_90", "time_generate", "time_score",
                          "time_train", "time_eval", "time_total", "gen_tokens_per_s",
                          "train_tokens_per_s"};
    char name[128];
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        snprintf(name, sizeof name, "summary/%s", cols[i]);
        expect_rows(f, name, 1, 3, 0);
    }
    expect_rows(f, "summary/eval_accuracy", 2, 3, 6);
    expect_rows(f, "summary/eval_loss", 2, 3, 6);
    for (int r = 1; r <= 2; r++) {
        const char *per_cand[] = {"candidates", "candidate_prompt", "candidate_sample", "candidate_ended",
                                  "selected", "correct", "scores/verifier", "scores/length",
                                  "scores/majority", "scores/logprob_mean", "scores/logprob_min",
                                  "scores/perplexity", "scores/judge", "scores/ensemble"};
        for (size_t i = 0; i < sizeof per_cand / sizeof per_cand[0]; i++) {
            snprintf(name, sizeof name, "rounds/%03d/%s", r, per_cand[i]);
            expect_rows(f, name, 1, 48, 0);
        }
        snprintf(name, sizeof name, "rounds/%03d/prompts", r);
        expect_rows(f, name, 1, 24, 0);
        snprintf(name, sizeof name, "rounds/%03d/prompt_length", r);
        expect_rows(f, name, 1, 24, 0);
    }
    for (int r = 0; r <= 2; r++) {
        const char *curve[] = {"step", "loss", "lr", "grad_norm", "tokens_per_s"};
        for (int i = 0; i < 5; i++) {
            snprintf(name, sizeof name, "rounds/%03d/train/%s", r, curve[i]);
            expect_rows(f, name, 1, r == 0 ? 60 : 20, 0);
        }
        const char *ev[] = {"length", "accuracy", "loss", "n"};
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "rounds/%03d/eval/%s", r, ev[i]);
            expect_rows(f, name, 1, 6, 0);
        }
    }
    /* round 1 labels length 5 (train_max_len + 1), round 2 length 6 */
    int64_t lo[3];
    hsize_t three[1] = {3};
    ck_assert_int_eq(ad_h5_read_array(f, "summary/length_lo", AD_H5_I64, 1, three, lo), AD_OK);
    ck_assert(lo[0] == 1 && lo[1] == 5 && lo[2] == 6);
    ad_h5_close_quietly(f);
    /* the report reads it */
    char rpt[512];
    snprintf(rpt, sizeof rpt, "%s/report.txt", ad_test_tmpdir());
    FILE *out = fopen(rpt, "w");
    ck_assert_int_eq(ad_run_report(file, out), AD_OK);
    fclose(out);
}
END_TEST

START_TEST(test_stop_and_resume_equal) {
    char file[512];
    snprintf(file, sizeof file, "%s/stopped.h5", ad_test_tmpdir());
    run_fresh(file, 1); /* round 0 only */
    AdRunOptions o = {1, 0};
    AdStatus st = ad_run_resume(file, NULL, 0, &o);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    expect_same(reference_run(), file);
}
END_TEST

/* Runs the CLI on the tiny config, kills it after a random delay, resumes (or restarts if
 * nothing was committed yet), and compares with the uninterrupted run. */
START_TEST(test_kill_and_resume_equal) {
    const char *bin = ad_test_bin();
    if (!bin) {
        printf("test_kill_and_resume_equal: skipped: AD_BIN (the autodidact binary) is not set\n");
        return;
    }
    const char *dir = ad_test_tmpdir();
    char cfg[512], file[512], cmd[2048];
    snprintf(cfg, sizeof cfg, "%s/tiny.json", dir);
    snprintf(file, sizeof file, "%s/killed.h5", dir);
    FILE *f = fopen(cfg, "w");
    fputs(TINY, f);
    fclose(f);
    uint64_t x = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    x *= 0x9E3779B97F4A7C15ull;
    double u = (double)(x >> 40) / 16777216.0;
    /* somewhere in the run: between 5% and 95% of the reference run's duration */
    double delay = reference_seconds * (0.05 + 0.9 * u);
    printf("test_kill_and_resume_equal: killing after %.2f s of a %.2f s run\n", delay, reference_seconds);
    fflush(stdout);
    char setarg[600];
    snprintf(setarg, sizeof setarg, "run_file=%s", file);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execl(bin, bin, "run", cfg, "--quiet", "--overwrite", "--set", setarg, (char *)NULL);
        _exit(127);
    }
    struct timespec ts = {(time_t)delay, (long)((delay - (time_t)delay) * 1e9)};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (access(file, F_OK) == 0)
        snprintf(cmd, sizeof cmd, "%s resume %s --quiet >/dev/null 2>&1", bin, file);
    else
        snprintf(cmd, sizeof cmd, "%s run %s --quiet --overwrite --set %s >/dev/null 2>&1", bin, cfg, setarg);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "'%s' failed with %d", cmd, rc);
    expect_same(reference_run(), file);
}
END_TEST

START_TEST(test_bad_configs) {
    AdExperimentConfig c;
    const char *ov1[] = {"rounds.teacher=self", "train.loss=jsd"};
    ck_assert_int_eq(ad_experiment_config_parse(&c, TINY, "tiny", ov1, 2), AD_ERR_CONFIG);
    ck_assert_msg(strstr(ad_errmsg(), "train.loss") != NULL, "%s", ad_errmsg());
    const char *ov2[] = {"rounds.cuont=3"};
    ck_assert_int_eq(ad_experiment_config_parse(&c, TINY, "tiny", ov2, 1), AD_ERR_CONFIG);
    ck_assert_msg(strstr(ad_errmsg(), "rounds.cuont") != NULL, "%s", ad_errmsg());
    /* resuming something that is not a run file */
    char path[512];
    snprintf(path, sizeof path, "%s/not_a_run.h5", ad_test_tmpdir());
    FILE *f = fopen(path, "w");
    fputs("hello", f);
    fclose(f);
    AdRunOptions o = {1, 0};
    ck_assert_int_ne(ad_run_resume(path, NULL, 0, &o), AD_OK);
    ck_assert_msg(strstr(ad_errmsg(), path) != NULL, "message does not name the file: %s", ad_errmsg());
    /* starting over an existing run file is refused */
    AdExperimentConfig c2;
    load_tiny(&c2, reference_run());
    ck_assert_int_eq(ad_run_start(&c2, TINY, 0, &o), AD_ERR_IO);
    ck_assert_msg(strstr(ad_errmsg(), "resume") != NULL, "%s", ad_errmsg());
}
END_TEST

/* Waits (up to 60 s) until the lock file names pid, which its holder writes once it holds
 * the lock; probing with a lock of our own would turn the holder away. */
static int wait_lock_pid(const char *lock, pid_t pid) {
    for (int i = 0; i < 6000; i++) {
        FILE *f = fopen(lock, "r");
        long got = -1;
        if (f) {
            if (fscanf(f, "%ld", &got) != 1) got = -1;
            fclose(f);
        }
        if (got == (long)pid) return 1;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Two processes on one run file: while a run holds it, a second `run` (even with
 * --overwrite) and a `resume` are refused with a message naming the holder, and the first
 * run ends exactly as if alone; a killed holder leaves no stale lock. */
START_TEST(test_run_file_lock) {
    const char *bin = ad_test_bin(); /* set: main() skips the whole suite without it */
    const char *dir = ad_test_tmpdir();
    char cfg[512], file[512], lock[600], setarg[600], cmd[4096];
    snprintf(cfg, sizeof cfg, "%s/tiny.json", dir);
    snprintf(file, sizeof file, "%s/locked.h5", dir);
    snprintf(lock, sizeof lock, "%s.lock", file);
    snprintf(setarg, sizeof setarg, "run_file=%s", file);
    /* the lock as another process would hold it (a separate open file description) */
    int fd;
    ck_assert_msg(ad_runlog_lock(file, &fd) == AD_OK, "%s", ad_errmsg());
    AdExperimentConfig c;
    load_tiny(&c, file);
    AdRunOptions o = {1, 0};
    ck_assert_int_eq(ad_run_start(&c, TINY, 1, &o), AD_ERR_IO);
    ck_assert_msg(strstr(ad_errmsg(), "in use by another autodidact process"), "%s", ad_errmsg());
    ck_assert_msg(access(file, F_OK) != 0, "the refused run wrote %s", file);
    ad_runlog_unlock(file, fd);
    /* the CLI: a run in the background, a second run and a resume while it is alive */
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execl(bin, bin, "run", cfg, "--quiet", "--overwrite", "--set", setarg, (char *)NULL);
        _exit(127);
    }
    ck_assert_msg(wait_lock_pid(lock, pid), "the run did not take its lock in 60 s");
    char out[600];
    snprintf(out, sizeof out, "%s/lock_msg.txt", dir);
    snprintf(cmd, sizeof cmd, "%s run %s --quiet --overwrite --set %s >%s 2>&1", bin, cfg, setarg, out);
    int rc1 = system(cmd);
    int alive = waitpid(pid, NULL, WNOHANG) == 0;
    FILE *f = fopen(out, "r");
    char msg[2048] = "";
    if (f) {
        size_t n = fread(msg, 1, sizeof msg - 1, f);
        msg[n] = '\0';
        fclose(f);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ck_assert_msg(alive, "the first run ended before the second was tried; cannot judge the lock");
    ck_assert_msg(rc1 != 0, "a second run on a run file in use exited 0");
    ck_assert_msg(strstr(msg, "in use by another autodidact process") && strstr(msg, file),
                  "second run's message: %s", msg);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the first run failed");
    expect_same(reference_run(), file);
    /* a holder killed with SIGKILL releases the lock */
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int hold;
        if (ad_runlog_lock(file, &hold) != AD_OK) _exit(1);
        pause();
        _exit(0);
    }
    ck_assert_msg(wait_lock_pid(lock, pid), "the holder did not take the lock in 60 s");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_assert_msg(ad_runlog_lock(file, &fd) == AD_OK, "lock left behind by a killed holder: %s",
                  ad_errmsg());
    ad_runlog_unlock(file, fd);
    printf("test_run_file_lock: second run refused with: %s", msg);
}
END_TEST

/* A run file renamed alone, or moved with its checkpoints, resumes to the same numbers;
 * a copy without its checkpoints says what to copy. */
START_TEST(test_renamed_and_copied_run_files) {
    const char *dir = ad_test_tmpdir();
    char a[512], b[512], c[512], d[512], cmd[2048];
    snprintf(a, sizeof a, "%s/ren_a.h5", dir);
    snprintf(b, sizeof b, "%s/ren_b.h5", dir);
    run_fresh(a, 1);
    ck_assert_int_eq(rename(a, b), 0); /* the checkpoints stay in ren_a.h5.ckpt/ */
    AdRunOptions o = {1, 0};
    AdStatus st = ad_run_resume(b, NULL, 0, &o);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    expect_same(reference_run(), b);
    /* a copy whose original is still there */
    snprintf(c, sizeof c, "%s/cp_c.h5", dir);
    snprintf(d, sizeof d, "%s/cp_d.h5", dir);
    run_fresh(c, 1);
    snprintf(cmd, sizeof cmd, "cp %s %s", c, d);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_ne(ad_run_resume(d, NULL, 0, &o), AD_OK);
    ck_assert_msg(strstr(ad_errmsg(), "cp -r") && strstr(ad_errmsg(), "cp_c.h5.ckpt") &&
                  strstr(ad_errmsg(), "cp_d.h5.ckpt"), "%s", ad_errmsg());
    /* ... which resumes once they are copied */
    snprintf(cmd, sizeof cmd, "cp -r %s.ckpt %s.ckpt", c, d);
    ck_assert_int_eq(system(cmd), 0);
    st = ad_run_resume(d, NULL, 0, &o);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    expect_same(reference_run(), d);
}
END_TEST

/* Resuming with a changed model key names the key. */
START_TEST(test_resume_with_changed_model_key) {
    char file[512];
    snprintf(file, sizeof file, "%s/changed.h5", ad_test_tmpdir());
    run_fresh(file, 1);
    AdRunOptions o = {1, 0};
    const char *ov[] = {"model.d_model=48"};
    ck_assert_int_ne(ad_run_resume(file, ov, 1, &o), AD_OK);
    ck_assert_msg(strstr(ad_errmsg(), "model.d_model: 32 in the checkpoint, 48 in the config") &&
                  strstr(ad_errmsg(), "cannot change on resume"), "%s", ad_errmsg());
}
END_TEST

/* ---- dry run, prompts files, checkpoint teachers ---- */

static AdExperimentConfig parse_cfg(const char *json, const char *const *ov, int n) {
    AdExperimentConfig c;
    AdStatus st = ad_experiment_config_parse(&c, json, "cfg", ov, n);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    return c;
}

/* Writes a random-weight Llama checkpoint with a byte tokenizer: n_layer layers,
 * d_model d, context ctx. */
static const char *write_checkpoint(const char *name, int n_layer, int d, int ctx, size_t *n_params) {
    char json[256];
    snprintf(json, sizeof json, "{\"model\": {\"family\": \"llama\", \"n_layer\": %d, \"d_model\": %d,"
             " \"n_head\": 2, \"max_seq_len\": %d}, \"task\": {\"source\": \"bos\"}}", n_layer, d, ctx);
    AdExperimentConfig c = parse_cfg(json, NULL, 0);
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_byte(&tok), AD_OK);
    AdModelConfig mc = c.model;
    mc.vocab_size = tok.vocab_size;
    AdModel m;
    ck_assert_int_eq(ad_model_init(&m, &mc, 0), AD_OK);
    AdRng rng;
    ad_rng_init(&rng, 5, 0, 0);
    ad_model_init_weights(&m, &rng, AD_INIT_GPT2);
    const char *path = ad_test_path(ad_test_tmpdir(), name);
    ck_assert_msg(ad_checkpoint_save(path, &m, &tok, NULL) == AD_OK, "%s", ad_errmsg());
    if (n_params) *n_params = m.n_params;
    ad_model_free(&m);
    ad_tokenizer_free(&tok);
    return path;
}

/* The plan of cfg as text (caller frees), and its status. */
static char *plan_text(const AdExperimentConfig *c, AdStatus *st) {
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    *st = ad_run_plan(c, f);
    long n = ftell(f);
    char *buf = malloc((size_t)n + 1);
    rewind(f);
    ck_assert_int_eq((long)fread(buf, 1, (size_t)n, f), n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A student from a checkpoint is shown as loaded (not as the config's model keys), and
 * prompts from <bos> or a file say nothing of ground truth or a length filter. */
START_TEST(test_dry_run_shows_what_runs) {
    size_t n_params = 0;
    const char *ck = write_checkpoint("plan_student.h5", 3, 16, 40, &n_params);
    char ov[3][700];
    snprintf(ov[0], sizeof ov[0], "model.init_from=%s", ck);
    snprintf(ov[1], sizeof ov[1], "run_file=%s", ad_test_path(ad_test_tmpdir(), "plan.h5"));
    const char *ovp[] = {ov[0], ov[1]};
    AdExperimentConfig c = parse_cfg("{\"task\": {\"source\": \"bos\"}, \"pretrain\": {\"steps\": 0},"
                                     " \"rounds\": {\"count\": 2}}", ovp, 2);
    AdStatus st;
    char *plan = plan_text(&c, &st);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    char want[128];
    snprintf(want, sizeof want, "rmsnorm/swiglu/rope, 3 layers, d_model 16, 2 heads (2 kv)");
    ck_assert_msg(strstr(plan, want) != NULL, "plan lacks \"%s\":\n%s", want, plan);
    snprintf(want, sizeof want, "context 40, %.2fM parameters (%zu)", n_params / 1e6, n_params);
    ck_assert_msg(strstr(plan, want) != NULL, "plan lacks \"%s\":\n%s", want, plan);
    ck_assert_msg(strstr(plan, "gpt2") == NULL && strstr(plan, "d_model 128") == NULL,
                  "plan shows the config's model keys:\n%s", plan);
    ck_assert_msg(strstr(plan, "ground truth") == NULL && strstr(plan, "length filter") == NULL &&
                  strstr(plan, "lengths") == NULL, "plan speaks of task data:\n%s", plan);
    ck_assert_msg(strstr(plan, "round 0    no training") != NULL, "%s", plan);
    ck_assert_msg(strstr(plan, "<bos> alone") != NULL, "%s", plan);
    free(plan);
    /* the task source still shows its ground truth and filter */
    AdExperimentConfig t = parse_cfg(TINY, NULL, 0);
    plan = plan_text(&t, &st);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    ck_assert_msg(strstr(plan, "ground truth at lengths 1..4") != NULL &&
                  strstr(plan, "after the length filter") != NULL, "%s", plan);
    free(plan);
}
END_TEST

/* Each input the run reads is opened by the dry run, and every rule the rounds would
 * check fails there (and before round 0 of a real run), naming the key. */
START_TEST(test_dry_run_fails_where_the_run_would) {
    const char *dir = ad_test_tmpdir();
    const char *short_teacher = write_checkpoint("short_teacher.h5", 1, 16, 16, NULL);
    char ov[5][700];
    const char *ovp[] = {ov[0], ov[1], ov[2], ov[3], ov[4]};
    const char *run_file = ad_test_path(dir, "never.h5");
    snprintf(ov[0], sizeof ov[0], "run_file=%s", run_file);
    const char *bos_student =
        "{\"model\": {\"family\": \"gpt2\", \"d_model\": 16, \"n_layer\": 1, \"n_head\": 2,"
        " \"max_seq_len\": 32}, \"task\": {\"source\": \"bos\"}, \"pretrain\": {\"steps\": 0},"
        " \"rounds\": {\"count\": 1, \"teacher\": \"checkpoint\"}, \"train\": {\"loss\": \"fkl\"}}";
    /* a teacher whose context (16) cannot hold the student's rows (32) */
    snprintf(ov[1], sizeof ov[1], "rounds.teacher_path=%s", short_teacher);
    AdExperimentConfig c = parse_cfg(bos_student, ovp, 2);
    AdStatus st;
    char *plan = plan_text(&c, &st);
    ck_assert_int_eq(st, AD_ERR_CONFIG);
    ck_assert_msg(strstr(ad_errmsg(), "rounds.teacher_path") && strstr(ad_errmsg(), "context (16)") &&
                  strstr(ad_errmsg(), "32"), "%s", ad_errmsg());
    free(plan);
    AdRunOptions o = {1, 0};
    ck_assert_int_eq(ad_run_start(&c, bos_student, 1, &o), AD_ERR_CONFIG);
    ck_assert_msg(access(run_file, F_OK) != 0, "the run started before failing");
    /* with rows of 16 tokens it fits */
    snprintf(ov[2], sizeof ov[2], "train.seq_len=16");
    snprintf(ov[3], sizeof ov[3], "pretrain.seq_len=16");
    c = parse_cfg(bos_student, ovp, 4);
    free(plan_text(&c, &st));
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    /* a teacher file that is not there */
    snprintf(ov[1], sizeof ov[1], "rounds.teacher_path=%s", ad_test_path(dir, "missing.h5"));
    c = parse_cfg(bos_student, ovp, 2);
    free(plan_text(&c, &st));
    ck_assert_int_ne(st, AD_OK);
    ck_assert_msg(strstr(ad_errmsg(), "rounds.teacher_path") && strstr(ad_errmsg(), "missing.h5"),
                  "%s", ad_errmsg());
    /* a teacher with another vocabulary than the student's (the task's characters) */
    snprintf(ov[1], sizeof ov[1], "rounds.teacher_path=%s", short_teacher);
    snprintf(ov[2], sizeof ov[2], "rounds.teacher=checkpoint");
    snprintf(ov[3], sizeof ov[3], "train.seq_len=16");
    snprintf(ov[4], sizeof ov[4], "pretrain.seq_len=16");
    c = parse_cfg(TINY, ovp, 5);
    free(plan_text(&c, &st));
    ck_assert_int_eq(st, AD_ERR_CONFIG);
    ck_assert_msg(strstr(ad_errmsg(), "different vocabulary") &&
                  strstr(ad_errmsg(), "model.tokenizer_from=teacher"), "%s", ad_errmsg());
    /* ... which model.tokenizer_from=teacher gives the student */
    snprintf(ov[0], sizeof ov[0], "model.tokenizer_from=teacher");
    c = parse_cfg(TINY, ovp, 5);
    free(plan_text(&c, &st));
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    snprintf(ov[0], sizeof ov[0], "run_file=%s", run_file);
    /* a prompts file that is not there, and one with a bad line */
    snprintf(ov[1], sizeof ov[1], "task.source=jsonl");
    snprintf(ov[2], sizeof ov[2], "task.path=%s", ad_test_path(dir, "no_prompts.jsonl"));
    c = parse_cfg(TINY, ovp, 3);
    free(plan_text(&c, &st));
    ck_assert_int_ne(st, AD_OK);
    ck_assert_msg(strstr(ad_errmsg(), "task.path") && strstr(ad_errmsg(), "no_prompts.jsonl"), "%s",
                  ad_errmsg());
    const char *bad = ad_test_path(dir, "bad.jsonl");
    write_text(bad, "{\"prompt\": \"12\"}\n\n{\"text\": \"34\"}\n");
    snprintf(ov[2], sizeof ov[2], "task.path=%s", bad);
    c = parse_cfg(TINY, ovp, 3);
    free(plan_text(&c, &st));
    ck_assert_int_eq(st, AD_ERR_FORMAT);
    ck_assert_msg(strstr(ad_errmsg(), "bad.jsonl:3"), "%s", ad_errmsg());
    /* answers of the full budget that would not fit the training rows */
    c = parse_cfg("{\"model\": {\"d_model\": 16, \"n_layer\": 1, \"n_head\": 2, \"max_seq_len\": 32},"
                  " \"task\": {\"source\": \"bos\"}, \"pretrain\": {\"steps\": 0},"
                  " \"rounds\": {\"count\": 1}, \"generate\": {\"max_new_tokens\": 40}}", ovp, 1);
    free(plan_text(&c, &st));
    ck_assert_int_eq(st, AD_ERR_CONFIG);
    ck_assert_msg(strstr(ad_errmsg(), "generate.max_new_tokens") && strstr(ad_errmsg(), "at most 31"),
                  "%s", ad_errmsg());
    /* a self-judge text outside the student's (character) vocabulary */
    snprintf(ov[1], sizeof ov[1], "score.judge_template={prompt}{answer} ok?");
    c = parse_cfg(TINY, ovp, 2);
    free(plan_text(&c, &st));
    ck_assert_int_eq(st, AD_ERR_CONFIG);
    ck_assert_msg(strstr(ad_errmsg(), "score.judge_template") && strstr(ad_errmsg(), "U+0020"), "%s",
                  ad_errmsg());
    /* a checkpoint student too short for round 0's ground truth (copy at length 8: 18 tokens) */
    const char *tiny_ck = write_checkpoint("ctx12.h5", 1, 16, 12, NULL);
    snprintf(ov[1], sizeof ov[1], "model.init_from=%s", tiny_ck);
    snprintf(ov[2], sizeof ov[2], "task.train_max_len=8");
    c = parse_cfg("{\"task\": {\"eval_max_len\": 3}, \"rounds\": {\"count\": 0},"
                  " \"pretrain\": {\"steps\": 5}}", ovp, 3);
    free(plan_text(&c, &st));
    ck_assert_int_ne(st, AD_OK);
    ck_assert_msg(strstr(ad_errmsg(), "task.train_max_len") && strstr(ad_errmsg(), "12"), "%s",
                  ad_errmsg());
}
END_TEST

/* Prompts from a JSONL file (blank lines skipped) reach the rounds. */
START_TEST(test_prompts_jsonl) {
    const char *dir = ad_test_tmpdir();
    const char *prompts = ad_test_path(dir, "prompts.jsonl");
    write_text(prompts, "{\"prompt\": \"alpha\"}\n\n{\"prompt\": \"beta\\ngamma\", \"id\": 2}\n");
    char ov[2][700];
    const char *ovp[] = {ov[0], ov[1]};
    const char *run_file = ad_test_path(dir, "jsonl.h5");
    snprintf(ov[0], sizeof ov[0], "run_file=%s", run_file);
    snprintf(ov[1], sizeof ov[1], "task.path=%s", prompts);
    const char *json =
        "{\"threads\": 2, \"model\": {\"family\": \"gpt2\", \"d_model\": 16, \"n_layer\": 1,"
        " \"n_head\": 2, \"max_seq_len\": 24}, \"task\": {\"source\": \"jsonl\"},"
        " \"pretrain\": {\"steps\": 0}, \"rounds\": {\"count\": 1, \"prompts\": 8},"
        " \"generate\": {\"max_new_tokens\": 4, \"batch\": 8},"
        " \"train\": {\"steps\": 2, \"batch_size\": 4, \"log_every\": 0, \"warmup_steps\": 1}}";
    AdExperimentConfig c = parse_cfg(json, ovp, 2);
    AdStatus st;
    char *plan = plan_text(&c, &st);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    ck_assert_msg(strstr(plan, "prompts    2 from") != NULL, "%s", plan);
    free(plan);
    AdRunOptions o = {1, 0};
    st = ad_run_start(&c, json, 1, &o);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    char pool[800], *text = NULL;
    size_t len = 0;
    snprintf(pool, sizeof pool, "%s.ckpt/round_001.pool.jsonl", run_file);
    ck_assert_msg(ad_read_file(pool, 1 << 20, &text, &len) == AD_OK, "%s", ad_errmsg());
    ck_assert_msg(strstr(text, "\"prompt\":\"alpha\"") && strstr(text, "\"prompt\":\"beta\\ngamma\""),
                  "%s", text);
    free(text);
}
END_TEST

/* The experiments/ directory of the source tree, found from this file's path. */
static const char *experiments_dir(void) {
    static char buf[4096];
    const char *slash = strrchr(__FILE__, '/');
    if (slash) snprintf(buf, sizeof buf, "%.*s/../experiments", (int)(slash - __FILE__), __FILE__);
    else snprintf(buf, sizeof buf, "experiments");
    return buf;
}

/* Runs a tiny version (one round, 4 prompts, 2 steps) of a shipped stories260K config
 * with the model imported into teacher (a checkpoint) and checks its run file. */
static void run_stories_config(const char *name, const char *teacher, int student_is_teacher) {
    char ov[9][700];
    const char *ovp[9];
    int n = 0;
    const char *dir = ad_test_tmpdir();
    char run_file[600];
    snprintf(run_file, sizeof run_file, "%s/%s.h5", dir, name);
    snprintf(ov[n++], sizeof ov[0], "run_file=%s", run_file);
    snprintf(ov[n++], sizeof ov[0], "rounds.teacher_path=%s", teacher);
    if (student_is_teacher) snprintf(ov[n++], sizeof ov[0], "model.init_from=%s", teacher);
    snprintf(ov[n++], sizeof ov[0], "rounds.count=1");
    snprintf(ov[n++], sizeof ov[0], "rounds.prompts=4");
    snprintf(ov[n++], sizeof ov[0], "generate.max_new_tokens=24");
    snprintf(ov[n++], sizeof ov[0], "train.steps=2");
    snprintf(ov[n++], sizeof ov[0], "train.log_every=0");
    snprintf(ov[n++], sizeof ov[0], "threads=2");
    for (int i = 0; i < n; i++) ovp[i] = ov[i];
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.json", experiments_dir(), name);
    AdExperimentConfig c;
    AdStatus st = ad_experiment_config_load(&c, path, ovp, n);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    char *plan = plan_text(&c, &st);
    ck_assert_msg(st == AD_OK, "%s: %s", name, ad_errmsg());
    ck_assert_msg(strstr(plan, "spm, 512 pieces") != NULL, "%s", plan);
    free(plan);
    AdRunOptions o = {1, 0};
    st = ad_run_start(&c, "{}", 1, &o);
    ck_assert_msg(st == AD_OK, "%s: %s", name, ad_errmsg());
    hid_t f = open_run(run_file);
    int64_t done = 0;
    ck_assert_int_eq(ad_h5_attr_read_i64(f, "rounds_complete", &done), AD_OK);
    ck_assert_int_eq(done, 2);
    long n_cand = 4L * c.generate.samples;
    expect_rows(f, "rounds/001/candidates", 1, (hsize_t)n_cand, 0);
    /* the teacher scores its own samples as stories260K scores TinyStories (about -1.3
     * nats per token): a mangled re-encoding of the answers would score far lower */
    float lp[16];
    hsize_t shape[1] = {(hsize_t)n_cand};
    ck_assert_int_eq(ad_h5_read_array(f, "rounds/001/scores/logprob_mean", AD_H5_F32, 1, shape, lp),
                     AD_OK);
    for (long i = 0; i < n_cand; i++)
        ck_assert_msg(isfinite(lp[i]) && lp[i] > -3.0f, "%s: candidate %ld mean log-prob %g", name,
                      i, lp[i]);
    double loss[2];
    hsize_t two[1] = {2};
    ck_assert_int_eq(ad_h5_read_array(f, "rounds/001/train/loss", AD_H5_F64, 1, two, loss), AD_OK);
    ck_assert_msg(isfinite(loss[0]) && isfinite(loss[1]), "%s: loss %g %g", name, loss[0], loss[1]);
    ad_h5_close_quietly(f);
    /* 24-token stories are cut before <eos>: the pool marks them, so no <eos> is taught */
    char pool[800], *text = NULL;
    size_t len = 0;
    snprintf(pool, sizeof pool, "%s.ckpt/round_001.pool.jsonl", run_file);
    ck_assert_msg(ad_read_file(pool, 1 << 20, &text, &len) == AD_OK, "%s", ad_errmsg());
    ck_assert_msg(strstr(text, "\"cut\":true") != NULL, "%s", text);
    free(text);
    /* the student keeps the teacher's 512-piece vocabulary */
    AdModelConfig mc;
    char ck[800];
    snprintf(ck, sizeof ck, "%s.ckpt/round_001.h5", run_file);
    ck_assert_msg(ad_checkpoint_read_config(ck, &mc) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(mc.vocab_size, 512);
    ck_assert_int_eq(mc.d_model, student_is_teacher ? 64 : c.model.d_model);
}

/* rounds.teacher "ema": round 0 trains before the EMA teacher exists (it starts from round
 * 0's weights), so round 0's updates must not average into it. */
START_TEST(test_ema_teacher_runs) {
    char file[512], over[600];
    snprintf(file, sizeof file, "%s/ema.h5", ad_test_tmpdir());
    snprintf(over, sizeof over, "run_file=%s", file);
    const char *ov[] = {over, "rounds.teacher=ema", "rounds.count=1", "score.ensemble=0"};
    AdExperimentConfig c;
    ck_assert_msg(ad_experiment_config_parse(&c, TINY, "tiny", ov, 4) == AD_OK, "%s", ad_errmsg());
    AdRunOptions o = {1, 0};
    AdStatus st = ad_run_start(&c, TINY, 1, &o);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    hid_t f = open_run(file);
    expect_rows(f, "summary/round", 1, 2, 0);
    ad_h5_close_quietly(f);
}
END_TEST

START_TEST(test_stories_configs) {
    const char *models = ad_test_models_dir();
    if (!models) {
        printf("test_stories_configs: skipped: no stories260K.bin under AD_SHARED_MODELS or "
               "../shared/models\n");
        return;
    }
    AdModel m;
    AdTokenizer tok;
    char bin[4200], tokp[4200];
    snprintf(bin, sizeof bin, "%s/stories260K.bin", models);
    snprintf(tokp, sizeof tokp, "%s/tok512.bin", models);
    ck_assert_msg(ad_import(bin, AD_IMPORT_AUTO, tokp, &m, &tok) == AD_OK, "%s", ad_errmsg());
    const char *teacher = ad_test_path(ad_test_tmpdir(), "stories260K.h5");
    ck_assert_msg(ad_checkpoint_save(teacher, &m, &tok, NULL) == AD_OK, "%s", ad_errmsg());
    ad_model_free(&m);
    ad_tokenizer_free(&tok);
    run_stories_config("stories260K_self", teacher, 1);
    run_stories_config("stories260K_distill", teacher, 0);
}
END_TEST

int main(void) {
    /* The uninterrupted reference run is made once, by the CLI in a child process: the
     * tests run in forked children, and OpenMP's thread pool does not survive a fork of a
     * process that has already used it. */
    snprintf(reference_path, sizeof reference_path, "%s/reference.h5", ad_test_tmpdir());
    const char *bin = ad_test_bin();
    if (!bin) {
        printf("test_run: skipped: AD_BIN (the autodidact binary, set by ctest) is not set\n");
        return 0;
    }
    char cfg[512], cmd[4096];
    snprintf(cfg, sizeof cfg, "%s/tiny.json", ad_test_tmpdir());
    FILE *f = fopen(cfg, "w");
    if (!f || fputs(TINY, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "test_run: cannot write %s\n", cfg);
        return 1;
    }
    snprintf(cmd, sizeof cmd, "%s run %s --quiet --overwrite --set run_file=%s >/dev/null", bin, cfg,
             reference_path);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_run: the reference run failed: %s\n", cmd);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    reference_seconds = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    Suite *s = suite_create("run");
    TCase *tc = tcase_create("end to end");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_stop_and_resume_equal);
    tcase_add_test(tc, test_kill_and_resume_equal);
    tcase_add_test(tc, test_bad_configs);
    tcase_add_test(tc, test_run_file_lock);
    suite_add_tcase(s, tc);
    const AdTestCase cases[] = {
        {"dry run shows what runs", test_dry_run_shows_what_runs},
        {"dry run fails where the run would", test_dry_run_fails_where_the_run_would},
        {"prompts from jsonl", test_prompts_jsonl},
        {"stories260K configs", test_stories_configs},
        {"ema teacher runs", test_ema_teacher_runs},
        {"renamed and copied run files", test_renamed_and_copied_run_files},
        {"resume with a changed model key", test_resume_with_changed_model_key},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], 600);
    return ad_test_run(s);
}
