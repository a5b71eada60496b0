/* test_train.c: the training loop as a whole: a small model learns a task below a stated
 * loss; training resumed from a checkpoint ends bit-identical to an uninterrupted run (in
 * the library and through the CLI, killed after a checkpoint); bad input to the CLI ends
 * with a non-zero exit and a message naming the problem, never a crash. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "autodidact/checkpoint.h"
#include "autodidact/config.h"
#include "autodidact/data.h"
#include "autodidact/tasks.h"
#include "autodidact/train.h"
#include "testutil.h"

static const char *CFG =
    "{\"model\": {\"family\": \"gpt2\", \"d_model\": 32, \"n_layer\": 2,"
    "  \"n_head\": 2, \"max_seq_len\": 16},"
    " \"data\": {\"source\": \"task\", \"task\": \"copy\", \"min_len\": 1, \"max_len\": 3},"
    " \"train\": {\"steps\": 40, \"batch_size\": 16, \"lr\": 3e-3, \"min_lr\": 3e-4,"
    "  \"warmup_steps\": 5, \"log_every\": 0, \"eval_every\": 0, \"ckpt_every\": 20},"
    " \"threads\": 2, \"seed\": 5}";

/* Everything one training run needs, built from CFG (with overrides). */
typedef struct {
    AdTrainConfig cfg;
    AdTokenizer tok;
    AdModel m;
    AdTrainState st;
    AdData data;
    AdTrainOptions o;
} Setup;

static void setup(Setup *s, const char *const *ov, int n_ov) {
    memset(s, 0, sizeof *s);
    ck_assert_msg(ad_train_config_parse(&s->cfg, CFG, "test", ov, n_ov) == AD_OK, "%s", ad_errmsg());
    ad_set_threads(s->cfg.threads);
    const char *alpha = ad_task_alphabet(AD_TASK_COPY);
    ck_assert_int_eq(ad_tokenizer_init_char(&s->tok, alpha, strlen(alpha)), AD_OK);
    AdModelConfig mc = s->cfg.model;
    mc.vocab_size = s->tok.vocab_size;
    ck_assert_msg(ad_model_init(&s->m, &mc, 1) == AD_OK, "%s", ad_errmsg());
    AdRng rng;
    ad_rng_init(&rng, s->cfg.seed, AD_STREAM_INIT, 0);
    ad_model_init_weights(&s->m, &rng, AD_INIT_GPT2);
    AdAdamWConfig oc = {(float)s->cfg.train.beta1, (float)s->cfg.train.beta2, (float)s->cfg.train.eps,
                        (float)s->cfg.train.weight_decay};
    ck_assert_int_eq(ad_adamw_init(&s->st.opt, &oc, s->m.n_params), AD_OK);
    ad_rng_init(&s->st.data_rng, s->cfg.seed, AD_STREAM_DATA, 0);
    ck_assert_msg(ad_data_init_task(&s->data, &s->tok, AD_TASK_COPY, s->cfg.data.min_len,
                                    s->cfg.data.max_len, s->cfg.train.seq_len) == AD_OK, "%s", ad_errmsg());
    AdTrainOptions o = {0};
    o.steps = s->cfg.train.steps;
    o.batch_size = s->cfg.train.batch_size;
    o.seq_len = s->cfg.train.seq_len;
    o.grad_accum = s->cfg.train.grad_accum;
    o.sched = (AdSchedule){AD_SCHED_COSINE, (float)s->cfg.train.lr, (float)s->cfg.train.min_lr,
                           s->cfg.train.warmup_steps, s->cfg.train.steps, 0};
    o.grad_clip = (float)s->cfg.train.grad_clip;
    o.tok = &s->tok;
    o.seed = s->cfg.seed;
    o.quiet = 1;
    s->o = o;
}

static void teardown(Setup *s) {
    ad_data_free(&s->data);
    ad_train_state_free(&s->st);
    ad_model_free(&s->m);
    ad_tokenizer_free(&s->tok);
}

START_TEST(test_learns_copy) {
    const char *ov[] = {"train.steps=300"};
    Setup s;
    setup(&s, ov, 1);
    AdActs acts;
    ck_assert_int_eq(ad_acts_init(&acts, &s.m.cfg, 16, s.cfg.train.seq_len), AD_OK);
    double before, after;
    ck_assert_int_eq(ad_eval_loss(&s.m, &acts, &s.data, 99, 16, 8, 0, &before, NULL), AD_OK);
    ck_assert_msg(ad_train(&s.m, &s.st, &s.data, &s.o) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(ad_eval_loss(&s.m, &acts, &s.data, 99, 16, 8, 0, &after, NULL), AD_OK);
    /* answer tokens of copy at lengths 1..3: an untrained model is near log(14) = 2.6; after
     * 300 steps the copy is learned. */
    printf("test_learns_copy: answer loss %.4f -> %.4f\n", before, after);
    ck_assert_msg(before > 2.0, "untrained loss %.4f", before);
    ck_assert_msg(after < 0.05, "after 300 steps the answer loss is %.4f, expected < 0.05", after);
    ad_acts_free(&acts);
    teardown(&s);
}
END_TEST

START_TEST(test_resume_bit_identical) {
    const char *dir = ad_test_tmpdir();
    char ckpt[512];
    snprintf(ckpt, sizeof ckpt, "%s/half.h5", dir);
    /* uninterrupted: 40 steps */
    Setup a;
    setup(&a, NULL, 0);
    ck_assert_msg(ad_train(&a.m, &a.st, &a.data, &a.o) == AD_OK, "%s", ad_errmsg());
    /* interrupted: stop after 20 of the 40 scheduled steps, checkpoint, reload, go on */
    Setup b;
    setup(&b, NULL, 0);
    b.o.steps = 20;
    b.o.ckpt_path = ckpt;
    ck_assert_msg(ad_train(&b.m, &b.st, &b.data, &b.o) == AD_OK, "%s", ad_errmsg());
    AdModel m2;
    AdTokenizer tok2;
    AdTrainState st2;
    memset(&st2, 0, sizeof st2);
    ck_assert_msg(ad_checkpoint_load(ckpt, &m2, 1, &tok2, &st2) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(st2.step, 20);
    AdTrainOptions o2 = b.o;
    o2.steps = 40;
    o2.ckpt_path = NULL;
    o2.tok = &tok2;
    ck_assert_msg(ad_train(&m2, &st2, &b.data, &o2) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(st2.step, 40);
    for (size_t i = 0; i < a.m.n_params; i++)
        ck_assert_msg(memcmp(&a.m.params_mem[i], &m2.params_mem[i], sizeof(float)) == 0,
                      "parameter %zu differs after resume: %.9g vs %.9g", i, a.m.params_mem[i],
                      m2.params_mem[i]);
    ck_assert(memcmp(a.st.opt.m, st2.opt.m, a.m.n_params * sizeof(float)) == 0);
    ck_assert(memcmp(a.st.opt.v, st2.opt.v, a.m.n_params * sizeof(float)) == 0);
    ad_train_state_free(&st2);
    ad_tokenizer_free(&tok2);
    ad_model_free(&m2);
    teardown(&a);
    teardown(&b);
}
END_TEST

/* What training promises about reproducibility (README, "Reproducibility"): the same
 * binary, seed and thread count on the same machine give the same bits, because sgemm is
 * deterministic for a fixed thread count and every reduction of ours has a fixed order
 * per thread count. Across thread counts (and BLAS kernels) sgemm blocks the sums
 * differently, so the runs agree only to float rounding, amplified by training: after
 * these 40 steps the held-out answer loss differs by at most THREADS_LOSS_TOL relative. */
#define THREADS_LOSS_TOL 1e-3

static double train_and_eval(Setup *s) {
    ck_assert_msg(ad_train(&s->m, &s->st, &s->data, &s->o) == AD_OK, "%s", ad_errmsg());
    AdActs acts;
    ck_assert_int_eq(ad_acts_init(&acts, &s->m.cfg, 16, s->cfg.train.seq_len), AD_OK);
    double loss;
    ck_assert_int_eq(ad_eval_loss(&s->m, &acts, &s->data, 99, 16, 8, 0, &loss, NULL), AD_OK);
    ad_acts_free(&acts);
    return loss;
}

START_TEST(test_reproducibility_by_threads) {
    const char *two[] = {"threads=2"}, *one[] = {"threads=1"};
    Setup a, b, c;
    setup(&a, two, 1);
    double la = train_and_eval(&a);
    setup(&b, two, 1);
    double lb = train_and_eval(&b);
    ck_assert_msg(memcmp(&la, &lb, sizeof la) == 0, "rerun on 2 threads: loss %.17g vs %.17g", la, lb);
    for (size_t i = 0; i < a.m.n_params; i++)
        ck_assert_msg(memcmp(&a.m.params_mem[i], &b.m.params_mem[i], sizeof(float)) == 0,
                      "rerun on 2 threads: parameter %zu differs: %.9g vs %.9g", i,
                      a.m.params_mem[i], b.m.params_mem[i]);
    setup(&c, one, 1);
    double lc = train_and_eval(&c);
    double maxd = 0.0;
    for (size_t i = 0; i < a.m.n_params; i++)
        maxd = fmax(maxd, fabs((double)a.m.params_mem[i] - c.m.params_mem[i]));
    printf("test_reproducibility_by_threads: answer loss %.9g (2 threads, twice identical), "
           "%.9g (1 thread): relative difference %.2e; max |parameter difference| %.2e\n", la, lc,
           fabs(la - lc) / fabs(la), maxd);
    ck_assert_msg(fabs(la - lc) <= THREADS_LOSS_TOL * fabs(la),
                  "1 vs 2 threads: loss %.9g vs %.9g differs by more than %g relative", lc, la,
                  THREADS_LOSS_TOL);
    ad_set_threads(2);
    teardown(&a);
    teardown(&b);
    teardown(&c);
}
END_TEST

/* Runs a shell command; returns its exit status (-1 if it died of a signal). */
static int sh(const char *cmd) {
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

START_TEST(test_cli_resume_after_kill) {
    const char *bin = ad_test_bin();
    if (!bin) {
        printf("test_cli_resume_after_kill: skipped: AD_BIN is not set\n");
        return;
    }
    const char *dir = ad_test_tmpdir();
    char cfg[512], cmd[4096], full[512], killed[512];
    snprintf(cfg, sizeof cfg, "%s/cli.json", dir);
    snprintf(full, sizeof full, "%s/full", dir);
    snprintf(killed, sizeof killed, "%s/killed", dir);
    FILE *f = fopen(cfg, "w");
    fputs(CFG, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s train %s --quiet --set train.steps=400 --set train.ckpt_every=100 "
             "--set out_dir=%s", bin, cfg, full);
    ck_assert_int_eq(sh(cmd), 0);
    /* the same run, killed once its first checkpoint exists, then resumed */
    char out_dir_arg[600], ckpt[600];
    snprintf(out_dir_arg, sizeof out_dir_arg, "out_dir=%s", killed);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.h5", killed);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execl(bin, bin, "train", cfg, "--quiet", "--set", "train.steps=400", "--set",
              "train.ckpt_every=100", "--set", out_dir_arg, (char *)NULL);
        _exit(127);
    }
    struct timespec ts = {0, 2000000}; /* 2 ms */
    for (int i = 0; i < 50000 && access(ckpt, F_OK) != 0; i++) nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_assert_msg(access(ckpt, F_OK) == 0, "no checkpoint appeared at %s", ckpt);
    snprintf(cmd, sizeof cmd, "%s train --resume %s --quiet", bin, ckpt);
    ck_assert_int_eq(sh(cmd), 0);
    char a_path[600];
    snprintf(a_path, sizeof a_path, "%s/checkpoint.h5", full);
    AdModel a, b;
    AdTrainState sa, sb;
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    ck_assert_msg(ad_checkpoint_load(a_path, &a, 0, NULL, &sa) == AD_OK, "%s", ad_errmsg());
    ck_assert_msg(ad_checkpoint_load(ckpt, &b, 0, NULL, &sb) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(sa.step, 400);
    ck_assert_int_eq(sb.step, 400);
    ck_assert_msg(memcmp(a.params_mem, b.params_mem, a.n_params * sizeof(float)) == 0,
                  "resumed weights differ from the uninterrupted run's");
    ad_model_free(&a);
    ad_model_free(&b);
    ad_train_state_free(&sa);
    ad_train_state_free(&sb);
}
END_TEST

/* Each case: a command line, and a fragment its error message must contain. */
START_TEST(test_cli_bad_input) {
    const char *bin = ad_test_bin();
    if (!bin) {
        printf("test_cli_bad_input: skipped: AD_BIN is not set\n");
        return;
    }
    const char *dir = ad_test_tmpdir();
    char good[512], bad_json[512], trunc[512], err[512], cmd[4096], ckdir[512];
    snprintf(good, sizeof good, "%s/good.json", dir);
    snprintf(bad_json, sizeof bad_json, "%s/bad.json", dir);
    snprintf(trunc, sizeof trunc, "%s/trunc.h5", dir);
    snprintf(err, sizeof err, "%s/err.txt", dir);
    snprintf(ckdir, sizeof ckdir, "%s/ck", dir);
    FILE *f = fopen(good, "w");
    fputs(CFG, f);
    fclose(f);
    f = fopen(bad_json, "w");
    fputs("{\"train\": {\"steps\": 10,}\n", f);
    fclose(f);
    /* a real checkpoint, then a truncated copy of it */
    snprintf(cmd, sizeof cmd, "%s train %s --quiet --set train.steps=2 --set out_dir=%s", bin, good, ckdir);
    ck_assert_int_eq(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "head -c 3000 %s/checkpoint.h5 > %s", ckdir, trunc);
    ck_assert_int_eq(sh(cmd), 0);
    struct {
        const char *args;
        const char *fragment;
    } cases[] = {
        {"train /nonexistent/cfg.json", "/nonexistent/cfg.json"},
        {"train BAD_JSON", "line 1"},
        {"train GOOD --set train.lrr=1", "train.lrr"},
        {"train GOOD --set model.n_layer=-1", "model.n_layer"},
        {"train GOOD --set train.batch_size=0", "train.batch_size"},
        {"train GOOD --set model.d_model=31", "d_model"},
        {"train --resume /nonexistent/ck.h5", "/nonexistent/ck.h5"},
        {"train --resume TRUNC", "trunc.h5"},
        {"eval --model TRUNC --task copy", "trunc.h5"},
        {"eval --model GOOD --task copy", "good.json"},
        {"generate --model /nonexistent.bin --prompt x", "/nonexistent.bin"},
        {"import TRUNC -o OUTX", "trunc.h5"},
        {"run GOOD", "GOOD_KEY"},
        {"nosuchcommand", "unknown command"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[2048] = "";
        const char *a = cases[i].args;
        /* substitute the paths */
        while (*a) {
            if (!strncmp(a, "BAD_JSON", 8)) strcat(args, bad_json), a += 8;
            else if (!strncmp(a, "GOOD", 4)) strcat(args, good), a += 4;
            else if (!strncmp(a, "TRUNC", 5)) strcat(args, trunc), a += 5;
            else if (!strncmp(a, "OUTX", 4)) strcat(args, dir), strcat(args, "/out.h5"), a += 4;
            else strncat(args, a++, 1);
        }
        snprintf(cmd, sizeof cmd, "%s %s > /dev/null 2> %s", bin, args, err);
        int rc = sh(cmd);
        char *msg = slurp(err);
        ck_assert_msg(rc > 0, "'%s' exited with %d (expected a non-zero exit, not a crash)", args, rc);
        const char *frag = cases[i].fragment;
        if (!strcmp(frag, "GOOD_KEY")) frag = "unknown key"; /* a train config is not an experiment */
        ck_assert_msg(strstr(msg, frag) != NULL, "'%s': message does not mention \"%s\": %s", args,
                      frag, msg);
        free(msg);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("training");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_learns_copy);
    tcase_add_test(tc, test_resume_bit_identical);
    tcase_add_test(tc, test_reproducibility_by_threads);
    tcase_add_test(tc, test_cli_resume_after_kill);
    tcase_add_test(tc, test_cli_bad_input);
    suite_add_tcase(s, tc);
    return ad_test_run(s);
}
