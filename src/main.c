/* main.c: the `autodidact` command line. Parses arguments, wires the library's modules
 * together for each command, prints progress and results, and is the only place that
 * decides to exit. No model math, no file formats. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autodidact/bench.h"
#include "autodidact/checkpoint.h"
#include "autodidact/common.h"
#include "autodidact/config.h"
#include "autodidact/data.h"
#include "autodidact/dist.h"
#include "autodidact/generate.h"
#include "autodidact/importers.h"
#include "autodidact/losses.h"
#include "autodidact/model.h"
#include "autodidact/experiment.h"
#include "autodidact/round.h"
#include "autodidact/tasks.h"
#include "autodidact/tokenizer.h"
#include "autodidact/train.h"

#ifndef AD_SOURCE_DIR
#define AD_SOURCE_DIR "."
#endif

#define MAX_OVERRIDES 128

static int die(const char *what) {
    if (!ad_dist_is_root() && ad_dist_failure_shared()) return 1; /* rank 0 prints it */
    fprintf(stderr, "autodidact: %s%s%s\n", what ? what : "", what ? ": " : "", ad_errmsg());
    return 1;
}

static int usage_error(const char *cmd, const char *msg, const char *arg) {
    fprintf(stderr, "autodidact %s: %s%s%s\nTry 'autodidact %s --help'.\n", cmd, msg,
            arg ? " " : "", arg ? arg : "", cmd);
    return 2;
}

/* Handles "--set key=value" and "--set=key=value" at argv[*i]: 1 if it was one (stored
 * in ov), 0 if argv[*i] is something else, -1 after printing a usage error. */
static int take_override(const char *cmd, int argc, char **argv, int *i, const char **ov, int *n) {
    const char *v;
    if (!strcmp(argv[*i], "--set")) {
        if (*i + 1 >= argc) {
            usage_error(cmd, "--set needs key.path=value", NULL);
            return -1;
        }
        v = argv[++*i];
    } else if (!strncmp(argv[*i], "--set=", 6)) {
        v = argv[*i] + 6;
    } else {
        return 0;
    }
    if (*n == MAX_OVERRIDES) {
        usage_error(cmd, "too many --set options", NULL);
        return -1;
    }
    ov[(*n)++] = v;
    return 1;
}

/* mkdir -p */
static AdStatus make_dirs(const char *path) {
    char buf[AD_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return ad_fail(AD_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return ad_fail(AD_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    return AD_OK;
}

static AdStatus write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return ad_fail(AD_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    int ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok ? AD_OK : ad_fail(AD_ERR_IO, "cannot write %s: %s", path, strerror(errno));
}

/* ------------------------------------------------------------------ train */

static const char *TRAIN_HELP =
    "usage: autodidact train CONFIG.json [--set key.path=value ...] [--quiet]\n"
    "       autodidact train --resume CHECKPOINT.h5 [--set train.steps=N ...]\n"
    "\n"
    "Trains a model on a built-in task or a text file as the config describes, printing a\n"
    "progress line (step, loss, learning rate, gradient norm, tokens/s, ETA), validation loss\n"
    "every train.eval_every steps, and writing OUT_DIR/checkpoint.h5 (every train.ckpt_every\n"
    "steps and at the end), OUT_DIR/config.json (the resolved config) and\n"
    "OUT_DIR/train_log.jsonl (one line per step: step, loss, lr, grad_norm, tokens_per_s,\n"
    "elapsed_s; see docs/OUTPUTS.md).\n"
    "\n"
    "  --set key.path=value  override a config key (repeatable); value is JSON or a bare string\n"
    "  --resume CKPT         continue the run saved in CKPT with its own resolved config;\n"
    "                        same seed and thread count give exactly the uninterrupted losses\n"
    "  --quiet               no progress lines\n"
    "  --dump-batches DIR    debugging: write the starting weights (DIR/init.h5) and every\n"
    "                        micro-batch used (DIR/batches.bin, int32; see train.h) for\n"
    "                        bench/torch_parity.py to replay\n"
    "  --keys                list every config key with its default and meaning\n";

static AdStatus build_tokenizer(const AdTrainConfig *c, const char *text, size_t len,
                                AdTokenizer *tok) {
    if (c->tokenizer_from[0]) {
        AdModel tmp;
        AdStatus st = ad_checkpoint_load(c->tokenizer_from, &tmp, 0, tok, NULL);
        if (st) return ad_fail_context(st, "model.tokenizer_from");
        ad_model_free(&tmp);
        return AD_OK;
    }
    if (strcmp(c->data.tokenizer, "byte") == 0) return ad_tokenizer_init_byte(tok);
    if (strcmp(c->data.source, "task") == 0) {
        int k = ad_task_parse(c->data.task);
        const char *alpha = ad_task_alphabet((AdTaskKind)k);
        return ad_tokenizer_init_char(tok, alpha, strlen(alpha));
    }
    return ad_tokenizer_init_char(tok, text, len);
}

/* Every path train writes (out_dir, its checkpoint.h5 and config.json), checked before
 * any work; none may be a file the run reads. */
static AdStatus check_train_outputs(const AdTrainConfig *cfg, const char *config_path) {
    const char *inputs[] = {config_path, cfg->data.path, cfg->init_from};
    char ckpt[AD_PATH_MAX + 32], cpath[AD_PATH_MAX + 32];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.h5", cfg->out_dir);
    snprintf(cpath, sizeof cpath, "%s/config.json", cfg->out_dir);
    AdStatus st = ad_check_output_path(cfg->out_dir, "out_dir", AD_OUT_DIR | AD_OUT_MAKE_PARENTS,
                                       inputs, 3);
    if (!st) st = ad_check_output_path(ckpt, "out_dir (its checkpoint)", AD_OUT_MAKE_PARENTS,
                                       inputs, 3);
    if (!st) st = ad_check_output_path(cpath, "out_dir (its config.json)", AD_OUT_MAKE_PARENTS,
                                       inputs, 3);
    return st;
}

/* train's loss curve: one JSON line per step in OUT_DIR/train_log.jsonl (docs/OUTPUTS.md). */
typedef struct {
    FILE *f;
    int failed;
} CurveLog;

static void curve_log(const AdTrainRecord *r, void *user) {
    CurveLog *c = user;
    if (!c->f || c->failed) return;
    if (fprintf(c->f, "{\"step\": %ld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, "
                "\"tokens_per_s\": %.9g, \"elapsed_s\": %.9g}\n", r->step, r->loss, r->lr,
                r->grad_norm, r->tokens_per_s, r->elapsed_s) < 0 || fflush(c->f) != 0)
        c->failed = 1;
}

/* Opens the curve for appending after step `keep` (0: a new curve): lines of later steps,
 * written after the checkpoint a resumed run starts from, are dropped. */
static AdStatus curve_log_open(CurveLog *c, const char *path, long keep) {
    c->f = NULL, c->failed = 0;
    char *old = NULL;
    size_t len = 0;
    if (keep > 0 && ad_read_file(path, (size_t)1 << 30, &old, &len) != AD_OK) old = NULL;
    c->f = fopen(path, "w");
    if (!c->f) {
        free(old);
        return ad_fail(AD_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    for (char *l = old, *next; l && *l; l = next) {
        next = strchr(l, '\n');
        if (next) *next++ = '\0';
        long step = 0;
        if (sscanf(l, "{\"step\": %ld", &step) == 1 && step <= keep) fprintf(c->f, "%s\n", l);
    }
    free(old);
    return AD_OK;
}

/* A warmup as long as the phase never reaches the peak learning rate (nor decays). */
static void warn_warmup(const char *phase, int warmup, int steps) {
    if (steps > 0 && warmup >= steps)
        ad_log(AD_LOG_WARN, "%s.warmup_steps %d >= %s.steps %d: the learning rate never reaches "
               "%s.lr and the schedule never decays; lower %s.warmup_steps", phase, warmup, phase,
               steps, phase, phase);
}

static int cmd_train(int argc, char **argv) {
    const char *config_path = NULL, *resume = NULL, *dump_dir = NULL;
    const char *overrides[MAX_OVERRIDES];
    int n_over = 0, quiet = 0;
    FILE *dump = NULL;
    for (int i = 0; i < argc; i++) {
        int k = take_override("train", argc, argv, &i, overrides, &n_over);
        if (k < 0) return 2;
        if (k) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(TRAIN_HELP, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--keys")) {
            ad_train_config_print_keys(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--resume")) {
            if (i + 1 >= argc) return usage_error("train", "--resume needs a checkpoint path", NULL);
            resume = argv[++i];
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "--dump-batches")) {
            if (i + 1 >= argc) return usage_error("train", "--dump-batches needs a directory", NULL);
            dump_dir = argv[++i];
        } else if (argv[i][0] == '-') {
            return usage_error("train", "unknown option", argv[i]);
        } else if (!config_path) {
            config_path = argv[i];
        } else {
            return usage_error("train", "unexpected argument", argv[i]);
        }
    }
    if (!config_path && !resume) return usage_error("train", "missing CONFIG.json", NULL);
    if (config_path && resume)
        return usage_error("train", "give either CONFIG.json or --resume CHECKPOINT, not both", NULL);

    int rc = 1;
    AdTrainConfig cfg;
    AdModel m;
    AdTokenizer tok;
    AdTrainState st;
    AdData data;
    CurveLog curve = {NULL, 0};
    char *text = NULL, *cfg_json = NULL;
    size_t text_len = 0;
    memset(&m, 0, sizeof m);
    memset(&tok, 0, sizeof tok);
    memset(&st, 0, sizeof st);
    memset(&data, 0, sizeof data);

    if (resume) {
        if (ad_checkpoint_load(resume, &m, 1, &tok, &st)) {
            die("cannot resume");
            goto done;
        }
        if (!st.config_json || !st.opt.m) {
            fprintf(stderr, "autodidact: cannot resume: %s holds no training state (a weights-only "
                            "checkpoint); start a new run with model.init_from instead\n", resume);
            goto done;
        }
        if (ad_train_config_parse(&cfg, st.config_json, resume, overrides, n_over)) {
            die("the config stored in the checkpoint");
            goto done;
        }
    } else if (ad_train_config_load(&cfg, config_path, overrides, n_over)) {
        die(NULL);
        goto done;
    }
    if (check_train_outputs(&cfg, config_path)) {
        die(NULL);
        goto done;
    }
    ad_set_threads(cfg.threads);
    warn_warmup("train", cfg.train.warmup_steps, cfg.train.steps);
    if (resume && st.step >= cfg.train.steps) {
        /* not an error: nothing is left to do, and the message says how to go on */
        fprintf(stderr, "autodidact: %s is finished: it is at step %ld of train.steps %d; to "
                "train further, raise train.steps: autodidact train --resume %s --set "
                "train.steps=%ld\n", resume, (long)st.step, cfg.train.steps, resume,
                (long)st.step + (cfg.train.steps > 0 ? cfg.train.steps : 1000));
        rc = 0;
        goto done;
    }

    int is_text = strcmp(cfg.data.source, "text") == 0;
    if (is_text && ad_read_file(cfg.data.path, (size_t)1 << 30, &text, &text_len)) {
        die("data.path");
        goto done;
    }
    if (!resume) {
        if (cfg.init_from[0]) {
            if (ad_checkpoint_load(cfg.init_from, &m, 1, &tok, NULL)) {
                die("model.init_from");
                goto done;
            }
            ad_log(AD_LOG_INFO, "starting from %s (%zu parameters)", cfg.init_from, m.n_params);
        } else {
            if (build_tokenizer(&cfg, text, text_len, &tok)) {
                die("building the tokenizer");
                goto done;
            }
            AdModelConfig mc = cfg.model;
            if (mc.vocab_size == 0) mc.vocab_size = tok.vocab_size;
            if (mc.vocab_size < tok.vocab_size) {
                fprintf(stderr, "autodidact: model.vocab_size %d is smaller than the tokenizer's %d\n",
                        mc.vocab_size, tok.vocab_size);
                goto done;
            }
            cfg.model.vocab_size = mc.vocab_size;
            if (ad_model_init(&m, &mc, 1)) {
                die("model");
                goto done;
            }
            AdRng init_rng;
            ad_rng_init(&init_rng, cfg.seed, AD_STREAM_INIT, 0);
            ad_model_init_weights(&m, &init_rng, (AdInitKind)cfg.init);
        }
        AdAdamWConfig oc = {(float)cfg.train.beta1, (float)cfg.train.beta2, (float)cfg.train.eps,
                            (float)cfg.train.weight_decay};
        if (ad_adamw_init(&st.opt, &oc, m.n_params)) {
            die("optimizer");
            goto done;
        }
        ad_rng_init(&st.data_rng, cfg.seed, AD_STREAM_DATA, 0);
        st.config_json = ad_train_config_to_json(&cfg);
    } else {
        /* the moments came from the checkpoint; the hyperparameters from its config */
        AdAdamWConfig oc = {(float)cfg.train.beta1, (float)cfg.train.beta2, (float)cfg.train.eps,
                            (float)cfg.train.weight_decay};
        st.opt.cfg = oc;
        free(st.config_json);
        st.config_json = ad_train_config_to_json(&cfg);
    }
    if (!st.config_json) {
        die("config");
        goto done;
    }

    int T = cfg.train.seq_len;
    /* activations and token rows of a step, beside weights, gradients and moments */
    if (ad_mem_check(ad_acts_bytes(&m.cfg, cfg.train.batch_size, T) +
                         (double)cfg.train.batch_size * T * cfg.train.grad_accum * 2 * sizeof(int) +
                         ad_model_bytes(&m.cfg, 0) * 4,
                     "train.batch_size = %d (sequences of %d tokens, train.grad_accum %d)",
                     cfg.train.batch_size, T, cfg.train.grad_accum)) {
        die(NULL);
        goto done;
    }
    AdStatus s = is_text ? ad_data_init_text(&data, &tok, text, text_len, T, cfg.data.val_frac)
                         : ad_data_init_task(&data, &tok, (AdTaskKind)(ad_task_parse(cfg.data.task) | (cfg.data.pad_answer ? AD_TASK_PADDED : 0)),
                                             cfg.data.min_len, cfg.data.max_len, T);
    if (s) {
        die("data");
        goto done;
    }
    if (make_dirs(cfg.out_dir)) {
        die("out_dir");
        goto done;
    }
    char ckpt[AD_PATH_MAX + 32], cpath[AD_PATH_MAX + 32], lpath[AD_PATH_MAX + 32];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.h5", cfg.out_dir);
    snprintf(lpath, sizeof lpath, "%s/train_log.jsonl", cfg.out_dir);
    /* under MPI, rank 0 alone writes the outputs (ad_train saves its checkpoints) */
    if (ad_dist_is_root() && curve_log_open(&curve, lpath, st.step)) {
        die(NULL);
        goto done;
    }
    snprintf(cpath, sizeof cpath, "%s/config.json", cfg.out_dir);
    if (ad_dist_is_root() && write_text(cpath, st.config_json)) {
        die(NULL);
        goto done;
    }

    AdTrainOptions o = {0};
    o.steps = cfg.train.steps;
    o.batch_size = cfg.train.batch_size;
    o.seq_len = T;
    o.grad_accum = cfg.train.grad_accum;
    o.sched.kind = (AdSchedKind)ad_sched_parse(cfg.train.schedule);
    o.sched.lr_max = (float)cfg.train.lr;
    o.sched.lr_min = (float)cfg.train.min_lr;
    o.sched.warmup_steps = cfg.train.warmup_steps;
    o.sched.total_steps = cfg.train.steps;
    o.sched.decay_steps = cfg.train.decay_steps;
    o.grad_clip = (float)cfg.train.grad_clip;
    o.log_every = cfg.train.log_every;
    o.eval_every = cfg.train.eval_every;
    o.eval_batches = cfg.train.eval_batches;
    o.ckpt_every = cfg.train.ckpt_every;
    o.ckpt_path = ckpt;
    o.tok = &tok;
    o.seed = cfg.seed;
    o.quiet = quiet;
    o.observer = curve_log;
    o.observer_user = &curve;
    if (dump_dir && ad_dist_is_root()) {
        char p[AD_PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/init.h5", dump_dir);
        if (make_dirs(dump_dir) || ad_checkpoint_save(p, &m, &tok, NULL)) {
            die("--dump-batches");
            goto done;
        }
        snprintf(p, sizeof p, "%s/batches.bin", dump_dir);
        if (!(dump = fopen(p, "wb"))) {
            fprintf(stderr, "autodidact: cannot write %s: %s\n", p, strerror(errno));
            goto done;
        }
        o.batch_dump = dump;
    }

    if (!quiet) {
        const AdModelConfig *mc = &m.cfg;
        ad_log(AD_LOG_INFO,
               "model: %s/%s/%s, %d layers, d_model %d, %d heads (%d kv), d_ff %d, vocab %d: %.3fM "
               "parameters",
               ad_norm_name(mc->norm), ad_mlp_name(mc->mlp), ad_pos_name(mc->pos), mc->n_layer,
               mc->d_model, mc->n_head, mc->n_kv_head, mc->d_ff, mc->vocab_size, m.n_params / 1e6);
        if (is_text)
            ad_log(AD_LOG_INFO, "data: %s, %ld tokens (%ld train) with a %s tokenizer of %d ids",
                   cfg.data.path, data.n_ids, data.n_train, ad_tok_kind_name(tok.kind), tok.vocab_size);
        else
            ad_log(AD_LOG_INFO, "data: task %s, lengths %d..%d, seq_len %d", cfg.data.task,
                   cfg.data.min_len, cfg.data.max_len, T);
        ad_log(AD_LOG_INFO, "training: steps %ld..%d, batch %d x %d accumulation, lr %g (%s), %d threads, seed %llu",
               st.step, cfg.train.steps, cfg.train.batch_size, cfg.train.grad_accum, cfg.train.lr,
               cfg.train.schedule, ad_get_threads(), (unsigned long long)cfg.seed);
    }
    double t0 = ad_time_now();
    if (ad_train(&m, &st, &data, &o)) {
        die("training stopped");
        if (access(ckpt, F_OK) == 0)
            fprintf(stderr, "autodidact: the last checkpoint is %s; after fixing the cause, "
                            "continue with 'autodidact train --resume %s'\n", ckpt, ckpt);
        else
            fprintf(stderr, "autodidact: no checkpoint was written; fix the cause and start the "
                            "training again\n");
        goto done;
    }
    if (!quiet) {
        char dur[32];
        ad_format_duration(ad_time_now() - t0, dur, sizeof dur);
        ad_log(AD_LOG_INFO, "done in %s: checkpoint %s, config %s, loss curve %s", dur, ckpt,
               cpath, lpath);
    }
    rc = 0;
    if (curve.failed || (curve.f && fclose(curve.f) != 0)) {
        fprintf(stderr, "autodidact: writing %s failed\n", lpath);
        rc = 1;
    }
    curve.f = NULL;
done:
    if (curve.f) fclose(curve.f);
    if (dump && fclose(dump) != 0) {
        fprintf(stderr, "autodidact: writing the batch dump in %s failed\n", dump_dir);
        rc = 1;
    }
    ad_data_free(&data);
    ad_train_state_free(&st);
    ad_tokenizer_free(&tok);
    ad_model_free(&m);
    free(text);
    free(cfg_json);
    return rc;
}

/* ------------------------------------------------------------------ eval */

static const char *EVAL_HELP =
    "usage: autodidact eval --model CKPT.h5 (--task NAME [--min-len N] [--max-len N]\n"
    "                       [--pad-answer] | --text FILE)\n"
    "                       [--batches N] [--batch-size B] [--seq-len T] [--seed S]\n"
    "                       [--per-len N] [--logprobs OUT.jsonl]\n"
    "\n"
    "Reports the mean loss and perplexity of a checkpoint on task examples (answer tokens only)\n"
    "or on windows of a text file (every token; a text with fewer distinct windows than\n"
    "--batches x --batch-size is evaluated once per distinct window). For a task it also\n"
    "reports the greedy exact-match accuracy at each length. With --logprobs, writes one JSON\n"
    "line per sequence: {\"tokens\": [...], \"targets\": [...], \"logprobs\": [...]} with the\n"
    "log-probability of each unmasked target token (null where masked); docs/OUTPUTS.md.\n"
    "\n"
    "  --min-len N      shortest task length (default 1)\n"
    "  --pad-answer     add/radd/mul answers zero-padded to their longest length, as a model\n"
    "                   trained with data.pad_answer (or task.pad_answer) writes them\n"
    "  --max-len N      longest task length (default 5)\n"
    "  --per-len N      task examples per length for the accuracy (default 100; 0 = none)\n"
    "  --batches N      number of batches (default 8)\n"
    "  --batch-size B   sequences per batch (default 16)\n"
    "  --seq-len T      tokens per sequence (default: the model's max_seq_len)\n"
    "  --seed S         seed of the evaluation stream (default 1337)\n";

static int parse_int_arg(const char *cmd, const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || x < lo || x > hi) {
        fprintf(stderr, "autodidact %s: %s needs an integer in [%ld, %ld], got \"%s\"\n", cmd, opt, lo,
                hi, v ? v : "");
        return 0;
    }
    *out = x;
    return 1;
}

typedef struct {
    const AdTokenizer *tok;
    char **answers; /* (n) the task's answers */
    int *right;     /* (n) */
    char buf[2 * AD_TASK_MAX_TEXT];
} AccSink;

static void acc_sink(long req, const AdGenOutput *o, void *user) {
    AccSink *a = user;
    int ended = o->stop == AD_STOP_EOS;
    ad_tokenizer_decode(a->tok, o->tokens, o->n - ended, a->buf, sizeof a->buf);
    a->right[req] = ended && strcmp(a->buf, a->answers[req]) == 0;
}

/* Greedy exact-match accuracy of per_len task examples at each length lo..hi (the answer
 * must be followed by <eos>), printed as one line per length. */
static AdStatus eval_task_accuracy(const AdModel *m, const AdTokenizer *tok, AdTaskKind task,
                                   int lo, int hi, int per_len, uint64_t seed) {
    long n = (long)(hi - lo + 1) * per_len;
    int S = m->cfg.max_seq_len, max_new = ad_task_max_answer_len(task, hi) + 1;
    int *ids = ad_calloc((size_t)n * S, sizeof(int), "accuracy prompts");
    AdGenRequest *reqs = ad_calloc((size_t)n, sizeof *reqs, "accuracy requests");
    AccSink *a = ad_calloc(1, sizeof *a, "accuracy sink");
    char **answers = ad_calloc((size_t)n, sizeof(char *), "accuracy answers");
    int *right = ad_calloc((size_t)n, sizeof(int), "accuracy results");
    AdGenerator g;
    memset(&g, 0, sizeof g);
    AdStatus st = ids && reqs && a && answers && right ? AD_OK : AD_ERR_NOMEM;
    char prompt[AD_TASK_MAX_TEXT], answer[AD_TASK_MAX_TEXT];
    AdRng rng; /* one stream per length */
    for (long i = 0; i < n && !st; i++) {
        int len = lo + (int)(i / per_len), k = 0;
        if (i % per_len == 0) ad_rng_init(&rng, seed, AD_STREAM_EVAL, (uint64_t)len);
        st = ad_task_example(task, len, &rng, prompt, answer);
        if (!st && !(answers[i] = strdup(answer))) st = AD_ERR_NOMEM;
        int *row = ids + (size_t)i * S;
        row[0] = tok->bos_id >= 0 ? tok->bos_id : 0;
        if (!st) st = ad_tokenizer_encode(tok, prompt, strlen(prompt), row + 1, S - 1, &k);
        if (!st && k + 1 + max_new > S)
            st = ad_fail(AD_ERR_ARG, "task %s at length %d needs %d tokens, more than the model's "
                         "context %d: lower --max-len", ad_task_name(task), len, k + 1 + max_new, S);
        reqs[i] = (AdGenRequest){row, k + 1, i, 0};
    }
    int B = n < 64 ? (int)n : 64;
    if (!st) st = ad_generator_init(&g, m, B, S, max_new, 0);
    if (!st) {
        AdSampleConfig sc;
        ad_sample_config_default(&sc);
        sc.temperature = 0.0f, sc.max_new_tokens = max_new, sc.seed = seed;
        a->tok = tok, a->answers = answers, a->right = right;
        st = ad_generate(&g, tok, reqs, n, &sc, acc_sink, a, NULL, NULL);
    }
    if (!st) {
        printf("exact-match accuracy (greedy, %d per length):", per_len);
        for (int len = lo; len <= hi; len++) {
            long ok = 0;
            for (int i = 0; i < per_len; i++) ok += right[(size_t)(len - lo) * per_len + i];
            printf(" %d:%.1f%%", len, 100.0 * ok / per_len);
        }
        printf("\n");
    }
    ad_generator_free(&g);
    for (long i = 0; answers && i < n; i++) free(answers[i]);
    free(answers);
    free(right);
    free(a);
    free(reqs);
    free(ids);
    return st;
}

static int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *task = NULL, *textf = NULL, *lp_path = NULL;
    long min_len = 1, max_len = 5, batches = 8, bs = 16, T = 0, seed = 1337, per_len = 100;
    int pad = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(EVAL_HELP, stdout);
            return 0;
        }
        int ok = 1;
        if (!strcmp(a, "--pad-answer")) {
            pad = 1;
            continue;
        }
        if (!strcmp(a, "--model")) model = v, i++;
        else if (!strcmp(a, "--task")) task = v, i++;
        else if (!strcmp(a, "--text")) textf = v, i++;
        else if (!strcmp(a, "--logprobs")) lp_path = v, i++;
        else if (!strcmp(a, "--min-len")) ok = parse_int_arg("eval", a, v, 1, 250, &min_len), i++;
        else if (!strcmp(a, "--max-len")) ok = parse_int_arg("eval", a, v, 1, 250, &max_len), i++;
        else if (!strcmp(a, "--batches")) ok = parse_int_arg("eval", a, v, 1, 1000000, &batches), i++;
        else if (!strcmp(a, "--batch-size")) ok = parse_int_arg("eval", a, v, 1, 65536, &bs), i++;
        else if (!strcmp(a, "--seq-len")) ok = parse_int_arg("eval", a, v, 1, 65536, &T), i++;
        else if (!strcmp(a, "--seed")) ok = parse_int_arg("eval", a, v, 0, 2147483647L, &seed), i++;
        else if (!strcmp(a, "--per-len")) ok = parse_int_arg("eval", a, v, 0, 1000000, &per_len), i++;
        else return usage_error("eval", "unknown argument", a);
        if (!ok) return 2;
        if (i >= argc) return usage_error("eval", "missing value for", a);
    }
    if (!model) return usage_error("eval", "missing --model", NULL);
    if (!task == !textf) return usage_error("eval", "give exactly one of --task and --text", NULL);
    if (task && ad_task_parse(task) < 0) return usage_error("eval", "unknown task", task);
    AdTaskKind kind = task ? (AdTaskKind)(ad_task_parse(task) | (pad ? AD_TASK_PADDED : 0)) : AD_TASK_COPY;

    const char *inputs[] = {model, textf};
    if (lp_path && ad_check_output_path(lp_path, "--logprobs", AD_OUT_FILE, inputs, 2))
        return die("eval");

    int rc = 1;
    AdModel m;
    AdTokenizer tok;
    AdActs acts;
    AdData data;
    char *text = NULL;
    size_t text_len = 0;
    int *buf = NULL;
    float *tl = NULL;
    FILE *lp = NULL;
    memset(&m, 0, sizeof m);
    memset(&tok, 0, sizeof tok);
    memset(&acts, 0, sizeof acts);
    memset(&data, 0, sizeof data);
    if (ad_checkpoint_load(model, &m, 0, &tok, NULL)) {
        die("--model");
        goto done;
    }
    if (T == 0) T = m.cfg.max_seq_len;
    if (T > m.cfg.max_seq_len) {
        fprintf(stderr, "autodidact eval: --seq-len %ld exceeds the model's max_seq_len %d\n", T,
                m.cfg.max_seq_len);
        goto done;
    }
    if (ad_mem_check(ad_acts_bytes(&m.cfg, (int)bs, (int)T) + (double)bs * T * 12,
                     "--batch-size %ld x --seq-len %ld", bs, T)) {
        die("eval");
        goto done;
    }
    AdStatus s;
    if (textf) {
        s = ad_read_file(textf, (size_t)1 << 30, &text, &text_len);
        if (!s && (s = ad_data_init_text(&data, &tok, text, text_len, (int)T, 0.0)))
            ad_fail_context(s, "--text %s with --seq-len %ld", textf, T);
    } else {
        s = ad_data_init_task(&data, &tok, kind, (int)min_len, (int)max_len, (int)T);
    }
    if (s || ad_acts_init(&acts, &m.cfg, (int)bs, (int)T)) {
        die("eval");
        goto done;
    }
    if (lp_path && !(lp = fopen(lp_path, "w"))) {
        fprintf(stderr, "autodidact eval: cannot write %s: %s\n", lp_path, strerror(errno));
        goto done;
    }
    size_t n = (size_t)bs * T;
    buf = ad_calloc(n * 2, sizeof(int), "eval batch");
    tl = ad_alloc_floats(n, "token losses");
    if (!buf || !tl) {
        die(NULL);
        goto done;
    }
    AdRng rng;
    ad_rng_init(&rng, (uint64_t)seed, AD_STREAM_EVAL, 0);
    double sum = 0.0;
    long count = 0;
    /* a text with few distinct windows: each once, in order, instead of random repeats */
    long distinct = textf ? data.n_ids - T : 0, windows = batches * bs;
    int in_order = textf && distinct <= windows;
    if (in_order) {
        batches = (distinct + bs - 1) / bs;
        windows = distinct;
    }
    for (long b = 0; b < batches; b++) {
        int rows = (int)bs;
        if (in_order) {
            rows = (int)(windows - b * bs < bs ? windows - b * bs : bs);
            for (int r = 0; r < rows; r++)
                for (long t = 0; t < T; t++) {
                    buf[r * T + t] = data.ids[b * bs + r + t];
                    buf[n + r * T + t] = data.ids[b * bs + r + t + 1];
                }
            for (size_t k = (size_t)rows * T; k < n; k++) buf[n + k] = -1; /* unused rows */
        } else if (ad_data_batch(&data, &rng, 0, buf, buf + n, (int)bs)) {
            die("eval");
            goto done;
        }
        ad_model_forward(&m, &acts, buf, (int)bs, (int)T);
        sum += ad_loss_ce(NULL, tl, acts.logits, buf + n, (int)n, m.cfg.vocab_size, 1.0f);
        count += ad_count_targets(buf + n, (long)n);
        for (long r = 0; lp && r < rows; r++) {
            const int *tk = buf + r * T, *tg = buf + n + r * T;
            fputs("{\"tokens\": [", lp);
            for (long t = 0; t < T; t++) fprintf(lp, "%s%d", t ? ", " : "", tk[t]);
            fputs("], \"targets\": [", lp);
            for (long t = 0; t < T; t++) fprintf(lp, "%s%d", t ? ", " : "", tg[t]);
            fputs("], \"logprobs\": [", lp);
            for (long t = 0; t < T; t++) {
                if (tg[t] < 0) fprintf(lp, "%snull", t ? ", " : "");
                else fprintf(lp, "%s%.9g", t ? ", " : "", -tl[r * T + t]);
            }
            fputs("]}\n", lp);
        }
    }
    if (lp && fclose(lp) != 0) {
        lp = NULL;
        fprintf(stderr, "autodidact eval: writing %s failed: %s\n", lp_path, strerror(errno));
        goto done;
    }
    lp = NULL;
    double mean = count ? sum / count : 0.0;
    printf("model %s\n", model);
    if (task) printf("data  task %s, lengths %ld..%ld, %ld sequences of %ld tokens\n", task, min_len, max_len, batches * bs, T);
    else if (in_order)
        printf("data  %s, %ld tokens: all %ld distinct windows of %ld tokens\n", textf, data.n_ids,
               windows, T);
    else printf("data  %s, %ld windows of %ld tokens\n", textf, windows, T);
    printf("loss  %.6f nats/token over %ld target tokens\nperplexity %.4f\n", mean, count, exp(mean));
    if (task && per_len > 0 && eval_task_accuracy(&m, &tok, kind,
                                                  (int)min_len, (int)max_len, (int)per_len,
                                                  (uint64_t)seed)) {
        die("eval");
        goto done;
    }
    if (lp_path) printf("log-probabilities written to %s\n", lp_path);
    rc = 0;
done:
    if (lp) fclose(lp);
    free(buf);
    free(tl);
    free(text);
    ad_data_free(&data);
    ad_acts_free(&acts);
    ad_tokenizer_free(&tok);
    ad_model_free(&m);
    return rc;
}


/* ------------------------------------------------------------------ model loading */

/* A checkpoint (HDF5) or any importable open-model file. */
/* *yes = 1 when path is an HDF5 file (a checkpoint), 0 for anything else. */
static AdStatus is_checkpoint(const char *path, int *yes) {
    unsigned char magic[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return ad_fail(AD_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t got = fread(magic, 1, 8, f);
    fclose(f);
    *yes = got == 8 && !memcmp(magic, "\x89HDF\r\n\x1a\n", 8);
    return AD_OK;
}

static AdStatus load_any_model(const char *path, const char *tokenizer, int max_seq, AdModel *m,
                               AdTokenizer *tok) {
    int ckpt;
    AdStatus cs = is_checkpoint(path, &ckpt);
    if (cs != AD_OK) return cs;
    if (ckpt) {
        if (tokenizer) ad_log(AD_LOG_WARN, "--tokenizer is ignored: %s carries its own", path);
        return ad_checkpoint_load(path, m, 0, tok, NULL);
    }
    AdImportOptions o = {AD_IMPORT_AUTO, tokenizer, NULL, max_seq};
    AdStatus st = ad_import_opts(path, &o, m, tok);
    if (!st && tok->vocab_size == 0) {
        ad_model_free(m);
        return ad_fail(AD_ERR_ARG, "%s has no vocabulary: give one with --tokenizer", path);
    }
    return st;
}

/* ------------------------------------------------------------------ import */

static const char *IMPORT_HELP =
    "usage: autodidact import SRC -o OUT.h5 [--format auto|llama2c|gguf|llmc|safetensors]\n"
    "                         [--tokenizer FILE] [--config config.json] [--max-seq-len N]\n"
    "\n"
    "Converts an open model into an autodidact checkpoint (weights, config, vocabulary).\n"
    "Formats: llama2.c .bin (with its tokenizer file), GGUF v2/v3 llama or qwen2 (F32, F16,\n"
    "BF16, and Q8_0, Q4_0, Q4_K, Q5_K, Q6_K expanded to F32; vocabulary embedded), llm.c GPT-2\n"
    "(magic 20240326), Hugging Face safetensors + config.json (Llama incl. Llama 3 RoPE\n"
    "scaling, Mistral, Qwen2; F32/F16/BF16). The format is detected from the file unless\n"
    "--format is given.\n"
    "  --tokenizer FILE   llama2.c tokenizer .bin, llm.c GPT-2 tokenizer file or a Hugging Face\n"
    "                     tokenizer.json (safetensors: the tokenizer.json beside SRC by default)\n"
    "  --config FILE      safetensors only: the config.json (default: the one beside SRC)\n"
    "  --max-seq-len N    replace the file's context length (e.g. a model trained shorter)\n";

static int cmd_import(int argc, char **argv) {
    const char *src = NULL, *out = NULL, *fmt = "auto", *tokp = NULL, *cfgp = NULL;
    long max_seq = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(IMPORT_HELP, stdout);
            return 0;
        }
        if (a[0] == '-' && !v) return usage_error("import", "missing value for", a);
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v, i++;
        else if (!strcmp(a, "--format")) fmt = v, i++;
        else if (!strcmp(a, "--tokenizer")) tokp = v, i++;
        else if (!strcmp(a, "--config")) cfgp = v, i++;
        else if (!strcmp(a, "--max-seq-len")) {
            if (!parse_int_arg("import", a, v, 1, 1 << 20, &max_seq)) return 2;
            i++;
        } else if (a[0] == '-') return usage_error("import", "unknown option", a);
        else if (!src) src = a;
        else return usage_error("import", "unexpected argument", a);
    }
    if (!src || !out) return usage_error("import", "need SRC and -o OUT.h5", NULL);
    int f = ad_import_format_parse(fmt);
    if (f < 0) return usage_error("import", "unknown format", fmt);
    const char *inputs[] = {src, tokp, cfgp};
    if (ad_check_output_path(out, "-o", AD_OUT_MAKE_PARENTS, inputs, 3)) return die("import");
    AdModel m;
    AdTokenizer tok;
    AdImportOptions o = {(AdImportFormat)f, tokp, cfgp, (int)max_seq};
    if (ad_import_opts(src, &o, &m, &tok)) return die("import");
    int rc = 0;
    const char *slash = strrchr(out, '/');
    if (slash && slash != out) { /* the directory of OUT.h5, as run and train create theirs */
        char dir[AD_PATH_MAX];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - out), out);
        if (make_dirs(dir)) {
            ad_tokenizer_free(&tok);
            ad_model_free(&m);
            return die("-o");
        }
    }
    if (tok.vocab_size == 0)
        ad_log(AD_LOG_WARN, "%s carries no vocabulary and no --tokenizer was given: %s will hold "
               "weights only, and generate, eval and run will refuse it; import again with "
               "--tokenizer FILE (for llama2.c models, the tokenizer .bin published with them)",
               src, out);
    if (ad_checkpoint_save(out, &m, tok.vocab_size ? &tok : NULL, NULL)) rc = die("writing the checkpoint");
    else
        printf("imported %s: %s/%s/%s, %d layers, d_model %d, %d heads (%d kv), d_ff %d, vocab %d, "
               "context %d, %s classifier, %zu parameters; vocabulary %s (%d pieces)\nwrote %s\n",
               src, ad_norm_name(m.cfg.norm), ad_mlp_name(m.cfg.mlp), ad_pos_name(m.cfg.pos),
               m.cfg.n_layer, m.cfg.d_model, m.cfg.n_head, m.cfg.n_kv_head, m.cfg.d_ff,
               m.cfg.vocab_size, m.cfg.max_seq_len, m.cfg.tied ? "tied" : "separate", m.n_params,
               tok.vocab_size ? ad_tok_kind_name(tok.kind) : "none", tok.vocab_size, out);
    ad_tokenizer_free(&tok);
    ad_model_free(&m);
    return rc;
}

/* ------------------------------------------------------------------ tokenize */

/* The options of tokenize: parsed and described from this one table. */
static const struct {
    const char *name, *arg, *help;
} TOKENIZE_OPTS[] = {
    {"--model", "M", "checkpoint, or any file 'autodidact import' reads (also a vocabulary-only "
                     "GGUF)"},
    {"--text", "S", "the text to tokenize"},
    {"--file", "F", "tokenize the bytes of file F verbatim (a trailing newline included)"},
    {"--no-bos", NULL, "do not add the BOS (and EOS) the vocabulary asks for"},
    {"--ids", NULL, "print only the ids, space-separated on one line"},
};
enum { TOK_OPT_MODEL, TOK_OPT_TEXT, TOK_OPT_FILE, TOK_OPT_NO_BOS, TOK_OPT_IDS, TOK_OPT_N };

static void tokenize_help(FILE *out) {
    fputs("usage: autodidact tokenize --model M (--text S | --file F) [--no-bos] [--ids]\n\n"
          "Prints the tokens of a text with their ids, as the model's vocabulary encodes it\n"
          "(byte-level BPE with the vocabulary's pre-tokenizer and added tokens, or\n"
          "sentencepiece BPE); BOS is added when the vocabulary asks for it.\n", out);
    for (int k = 0; k < TOK_OPT_N; k++) {
        char lhs[32];
        snprintf(lhs, sizeof lhs, "%s%s%s", TOKENIZE_OPTS[k].name,
                 TOKENIZE_OPTS[k].arg ? " " : "", TOKENIZE_OPTS[k].arg ? TOKENIZE_OPTS[k].arg : "");
        fprintf(out, "  %-12s %s\n", lhs, TOKENIZE_OPTS[k].help);
    }
}

/* Reads a whole file's bytes (malloc'd, NUL after the n bytes). */
static AdStatus read_file_bytes(const char *path, char **buf, size_t *n) {
    *buf = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ad_fail(AD_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    while (b) {
        len += fread(b + len, 1, cap - len - 1, f);
        if (len < cap - 1) break;
        char *nb = realloc(b, cap *= 2);
        if (!nb) free(b);
        b = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (!b) return ad_fail(AD_ERR_NOMEM, "reading %s: out of memory", path);
    if (err) {
        free(b);
        return ad_fail(AD_ERR_IO, "reading %s failed", path);
    }
    b[len] = '\0';
    *buf = b;
    *n = len;
    return AD_OK;
}

/* The vocabulary of a checkpoint or of anything import reads. */
static AdStatus load_any_vocab(const char *path, AdTokenizer *tok) {
    int ckpt;
    AdStatus st = is_checkpoint(path, &ckpt);
    if (st != AD_OK) return st;
    if (ckpt) {
        AdModel m;
        st = ad_checkpoint_load(path, &m, 0, tok, NULL);
        if (st == AD_OK) ad_model_free(&m);
        return st;
    }
    return ad_import_vocab(path, tok);
}

static int cmd_tokenize(int argc, char **argv) {
    const char *val[TOK_OPT_N] = {0};
    int flag[TOK_OPT_N] = {0};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            tokenize_help(stdout);
            return 0;
        }
        int k = 0;
        while (k < TOK_OPT_N && strcmp(argv[i], TOKENIZE_OPTS[k].name)) k++;
        if (k == TOK_OPT_N)
            return usage_error("tokenize", argv[i][0] == '-' ? "unknown option"
                                                             : "unexpected argument", argv[i]);
        if (TOKENIZE_OPTS[k].arg) {
            if (i + 1 >= argc) return usage_error("tokenize", "missing value for", argv[i]);
            val[k] = argv[++i];
        }
        flag[k] = 1;
    }
    if (!val[TOK_OPT_MODEL]) return usage_error("tokenize", "need --model M", NULL);
    if (!!val[TOK_OPT_TEXT] == !!val[TOK_OPT_FILE])
        return usage_error("tokenize", "give exactly one of --text S and --file F", NULL);
    char *text = NULL;
    size_t len;
    if (val[TOK_OPT_FILE]) {
        if (read_file_bytes(val[TOK_OPT_FILE], &text, &len)) return die("--file");
    } else {
        len = strlen(val[TOK_OPT_TEXT]);
        text = malloc(len + 1);
        if (!text) return die("--text");
        memcpy(text, val[TOK_OPT_TEXT], len + 1);
    }
    AdTokenizer tok;
    if (load_any_vocab(val[TOK_OPT_MODEL], &tok)) {
        free(text);
        return die("--model");
    }
    int rc = 0, n = 0, bos = !flag[TOK_OPT_NO_BOS] && tok.add_bos && tok.bos_id >= 0;
    int eos = !flag[TOK_OPT_NO_BOS] && tok.add_eos && tok.eos_id >= 0;
    /* at most one token per byte, plus SPM's prefix before each stretch between added
     * tokens, plus BOS and EOS */
    if (len > (size_t)(INT_MAX - 4) / 2) {
        free(text);
        ad_tokenizer_free(&tok);
        return usage_error("tokenize", "the text is too long", NULL);
    }
    int cap = 2 * (int)len + 4;
    int *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) rc = die("tokenize");
    if (!rc && bos) ids[n++] = tok.bos_id;
    int k = 0;
    if (!rc && ad_tokenizer_encode(&tok, text, len, ids + n, cap - n - 1, &k)) rc = die("tokenize");
    n += k;
    if (!rc && eos) ids[n++] = tok.eos_id;
    for (int i = 0; i < n && !rc; i++) {
        if (flag[TOK_OPT_IDS]) {
            printf(i ? " %d" : "%d", ids[i]);
            continue;
        }
        int id = ids[i];
        const char *p = tok.pieces[id];
        char buf[4 * 1024 + 1];
        if (id != tok.bos_id && id != tok.eos_id) { /* the piece as text */
            size_t m = ad_tokenizer_decode(&tok, &id, 1, buf, sizeof buf);
            if (m < sizeof buf) p = buf;
        }
        printf("%6d -> '%s'\n", id, p);
    }
    if (!rc && flag[TOK_OPT_IDS]) printf("\n");
    free(ids);
    free(text);
    ad_tokenizer_free(&tok);
    return rc;
}

/* ------------------------------------------------------------------ generate */

static const char *GENERATE_HELP =
    "usage: autodidact generate --model M (--prompt TEXT | --prompts FILE) [options]\n"
    "\n"
    "Samples continuations with a KV cache, many sequences per batch. M is a checkpoint or any\n"
    "file 'autodidact import' reads (give --tokenizer for a llama2.c .bin). Every sample has its\n"
    "own random stream from (seed, prompt index, sample index), and every sum of a decoding step\n"
    "runs in a fixed order: results, bit for bit, do not depend on the batch size, the order of\n"
    "the prompts or the thread count.\n"
    "  --prompt TEXT           one prompt (\"\" = start from <bos> alone)\n"
    "  --prompts FILE          one prompt per line\n"
    "  -n, --max-new N         new tokens per sample (default 128)\n"
    "  --samples K             samples per prompt (default 1)\n"
    "  --temperature T         0 = greedy (default 1.0)\n"
    "  --top-k K               keep the K most probable tokens (0 = off)\n"
    "  --top-p P               nucleus sampling (1 = off)\n"
    "  --min-p P               drop tokens below P x the top probability (0 = off)\n"
    "  --repetition-penalty R  CTRL-style penalty on tokens already present (1 = off)\n"
    "  --stop STRING           end a sample once its text contains STRING\n"
    "  --no-eos                do not stop at <eos>\n"
    "  --seed S                (default 0)\n"
    "  --batch B               sequences decoded together (default 64)\n"
    "  --tokenizer FILE        vocabulary for a model file that has none\n"
    "  --max-seq-len N         context length override for imported files\n"
    "  --json                  one JSON object per sample: tokens, per-token log-probabilities,\n"
    "                          entropies, text and stop reason\n";

typedef struct {
    const AdTokenizer *tok;
    int json;
    int samples;
    char **prompts;
    const AdGenRequest *reqs;
    int *ids;     /* prompt + generated tokens, for decoding the whole text */
    char *buf;
    size_t cap;
} GenPrint;

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void gen_print(long r, const AdGenOutput *o, void *user) {
    GenPrint *g = user;
    long pi = r / g->samples, si = r % g->samples;
    ad_tokenizer_decode(g->tok, o->tokens, o->n, g->buf, g->cap);
    static const char *stops[] = {"length", "eos", "stop_string"};
    if (g->json) {
        printf("{\"prompt_index\": %ld, \"sample_index\": %ld, \"prompt\": ", pi, si);
        json_string(stdout, g->prompts[pi]);
        printf(", \"text\": ");
        json_string(stdout, g->buf);
        printf(", \"stop\": \"%s\", \"tokens\": [", stops[o->stop]);
        for (int i = 0; i < o->n; i++) printf("%s%d", i ? ", " : "", o->tokens[i]);
        printf("], \"logprobs\": [");
        for (int i = 0; i < o->n; i++) printf("%s%.9g", i ? ", " : "", o->logprobs[i]);
        printf("]");
        if (o->entropy) {
            printf(", \"entropy\": [");
            for (int i = 0; i < o->n; i++) printf("%s%.9g", i ? ", " : "", o->entropy[i]);
            printf("]");
        }
        printf("}\n");
    } else {
        /* decode prompt and continuation together, so tokenizers that mark word starts
         * (sentencepiece's leading space) print as the model sees the text */
        const AdGenRequest *rq = &g->reqs[r];
        memcpy(g->ids, rq->prompt, sizeof(int) * rq->prompt_len);
        memcpy(g->ids + rq->prompt_len, o->tokens, sizeof(int) * o->n);
        ad_tokenizer_decode(g->tok, g->ids, rq->prompt_len + o->n, g->buf, g->cap);
        if (g->samples > 1) printf("--- prompt %ld, sample %ld ---\n", pi, si);
        printf("%s\n", g->buf);
    }
}

static void gen_progress(long done, long total, long tokens, double s, void *user) {
    (void)user;
    if (total <= 1) return;
    char eta[32];
    ad_format_duration(done ? s / done * (total - done) : 0, eta, sizeof eta);
    fprintf(stderr, "generate: %ld/%ld sequences | %ld tokens | %.0f tok/s | ETA %s\n", done, total,
            tokens, tokens / (s + 1e-9), eta);
}

static int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *prompts_file = NULL, *tokp = NULL;
    long max_new = 128, samples = 1, seed = 0, batch = 64, top_k = 0, max_seq = 0;
    double temperature = 1.0, top_p = 1.0, min_p = 0.0, rep = 1.0;
    int json = 0, no_eos = 0, entropy = 1;
    const char *stop = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(GENERATE_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) { json = 1; continue; }
        else if (!strcmp(a, "--no-eos")) { no_eos = 1; continue; }
        if (!v) return usage_error("generate", "missing value for", a);
        char *end = NULL;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--prompts")) prompts_file = v;
        else if (!strcmp(a, "--tokenizer")) tokp = v;
        else if (!strcmp(a, "--stop")) stop = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--max-new")) ok = parse_int_arg("generate", a, v, 1, 1 << 20, &max_new);
        else if (!strcmp(a, "--samples")) ok = parse_int_arg("generate", a, v, 1, 1 << 20, &samples);
        else if (!strcmp(a, "--seed")) ok = parse_int_arg("generate", a, v, 0, 2147483647L, &seed);
        else if (!strcmp(a, "--batch")) ok = parse_int_arg("generate", a, v, 1, 4096, &batch);
        else if (!strcmp(a, "--top-k")) ok = parse_int_arg("generate", a, v, 0, 1 << 22, &top_k);
        else if (!strcmp(a, "--max-seq-len")) ok = parse_int_arg("generate", a, v, 1, 1 << 20, &max_seq);
        else if (!strcmp(a, "--temperature")) { temperature = strtod(v, &end); ok = *end == 0 && temperature >= 0 && temperature <= 100; }
        else if (!strcmp(a, "--top-p")) { top_p = strtod(v, &end); ok = *end == 0 && top_p > 0 && top_p <= 1; }
        else if (!strcmp(a, "--min-p")) { min_p = strtod(v, &end); ok = *end == 0 && min_p >= 0 && min_p <= 1; }
        else if (!strcmp(a, "--repetition-penalty")) { rep = strtod(v, &end); ok = *end == 0 && rep > 0 && rep <= 100; }
        else return usage_error("generate", "unknown option", a);
        if (!ok) {
            if (end) fprintf(stderr, "autodidact generate: %s: bad or out-of-range value \"%s\"\n", a, v);
            return 2;
        }
        i++;
    }
    if (!model) return usage_error("generate", "missing --model", NULL);
    if (!prompt == !prompts_file) return usage_error("generate", "give exactly one of --prompt and --prompts", NULL);
    (void)entropy;

    int rc = 1;
    AdModel m;
    AdTokenizer tok;
    AdGenerator g;
    memset(&m, 0, sizeof m);
    memset(&tok, 0, sizeof tok);
    memset(&g, 0, sizeof g);
    char *file = NULL, **plist = NULL, *single = NULL;
    int *ids = NULL;
    AdGenRequest *reqs = NULL;
    long np = 0;
    if (prompts_file) {
        size_t len;
        if (ad_read_file(prompts_file, (size_t)1 << 30, &file, &len)) {
            die("--prompts");
            goto done;
        }
        for (size_t i = 0; i < len; i++) np += file[i] == '\n';
        if (len && file[len - 1] != '\n') np++;
        plist = ad_calloc(np ? np : 1, sizeof(char *), "prompt list");
        if (!plist) goto done;
        long k = 0;
        for (char *p = file; k < np; k++) {
            char *nl = strchr(p, '\n');
            if (nl) *nl = '\0';
            plist[k] = p;
            p = nl ? nl + 1 : p + strlen(p);
        }
    } else {
        np = 1;
        single = (char *)prompt;
        plist = &single;
    }
    if (np == 0) {
        fprintf(stderr, "autodidact generate: %s has no prompts\n", prompts_file);
        goto done;
    }
    if (load_any_model(model, tokp, (int)max_seq, &m, &tok)) {
        die("--model");
        goto done;
    }
    int S = m.cfg.max_seq_len;
    long asked = max_new;
    if (max_new > S) max_new = S; /* a sequence never holds more than S positions */
    if (ad_mem_check((double)np * S * sizeof(int) + (double)np * samples * sizeof(AdGenRequest),
                     "%ld prompt(s) x --samples %ld", np, samples)) {
        die("generate");
        goto done;
    }
    ids = ad_calloc((size_t)np * S, sizeof(int), "prompt tokens");
    reqs = ad_calloc((size_t)np * samples, sizeof(AdGenRequest), "requests");
    if (!ids || !reqs) {
        die(NULL);
        goto done;
    }
    for (long p = 0; p < np; p++) {
        int *row = ids + (size_t)p * S, n = 0;
        row[0] = tok.bos_id >= 0 ? tok.bos_id : 0;
        /* "" is <bos> alone: no encoding, so decode-only vocabularies can generate too */
        if (plist[p][0] && ad_tokenizer_encode(&tok, plist[p], strlen(plist[p]), row + 1, S - 1, &n)) {
            fprintf(stderr, "autodidact generate: prompt %ld: %s\n", p, ad_errmsg());
            goto done;
        }
        for (long s = 0; s < samples; s++) {
            AdGenRequest *r = &reqs[p * samples + s];
            r->prompt = row, r->prompt_len = n + 1, r->prompt_index = p, r->sample_index = s;
        }
    }
    int longest = 0;
    for (long p = 0; p < np; p++)
        if (reqs[p * samples].prompt_len > longest) longest = reqs[p * samples].prompt_len;
    if (longest + asked > S)
        ad_log(AD_LOG_WARN, "-n %ld: samples stop at the model's context of %d tokens; the longest "
               "prompt takes %d (with <bos>), so at most %d new tokens", asked, S, longest,
               S - longest);
    long total = np * samples;
    int B = (int)(batch < total ? batch : total);
    if (ad_generator_init(&g, &m, B, S, (int)max_new, 1)) {
        die("generate --batch");
        goto done;
    }
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.max_new_tokens = (int)max_new, sc.temperature = (float)temperature, sc.top_k = (int)top_k;
    sc.top_p = (float)top_p, sc.min_p = (float)min_p, sc.repetition_penalty = (float)rep;
    sc.seed = (uint64_t)seed, sc.stop_at_eos = !no_eos, sc.stop = stop, sc.want_entropy = json;
    GenPrint gp = {&tok, json, (int)samples, plist, reqs, NULL, NULL, (size_t)(S + max_new) * 64 + 1};
    gp.buf = ad_malloc(gp.cap, "decode buffer");
    gp.ids = ad_calloc((size_t)S + max_new, sizeof(int), "decode ids");
    if (!gp.buf || !gp.ids) {
        free(gp.buf);
        free(gp.ids);
        die(NULL);
        goto done;
    }
    double t0 = ad_time_now();
    AdStatus st = ad_generate(&g, &tok, reqs, total, &sc, gen_print, &gp, gen_progress, NULL);
    free(gp.buf);
    free(gp.ids);
    if (st) {
        die("generate");
        goto done;
    }
    (void)t0;
    rc = 0;
done:
    ad_generator_free(&g);
    ad_tokenizer_free(&tok);
    ad_model_free(&m);
    free(ids);
    free(reqs);
    if (plist != &single) free(plist);
    free(file);
    return rc;
}


/* ------------------------------------------------------------------ run / resume / report */

static const char *RUN_HELP =
    "usage: autodidact run EXPERIMENT.json [--set key.path=value ...] [--dry-run] [--overwrite] [--quiet]\n"
    "\n"
    "Runs a self-distillation experiment: round 0 trains the student on ground truth; each\n"
    "later round the teacher labels new prompts, the labels are scored and selected, the\n"
    "student retrains (SFT or a distillation loss) and is evaluated by length. Every round is\n"
    "committed to the HDF5 run file (run_file, see docs/RUNFILE.md) and a checkpoint, so\n"
    "'autodidact resume RUN.h5' continues a killed run with the same numbers.\n"
    "  --set key.path=value  override a config key (repeatable)\n"
    "  --dry-run             open every input, check the config against them and print the\n"
    "                        plan (the models as loaded); run nothing\n"
    "  --overwrite           replace an existing run file\n"
    "  --keys                list every config key with its default and meaning\n"
    "  --quiet               no progress lines (the final table is still printed)\n";

static int cmd_run(int argc, char **argv) {
    const char *path = NULL, *overrides[MAX_OVERRIDES];
    int n_over = 0, dry = 0, overwrite = 0;
    AdRunOptions o = {0, 0};
    for (int i = 0; i < argc; i++) {
        int k = take_override("run", argc, argv, &i, overrides, &n_over);
        if (k < 0) return 2;
        if (k) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(RUN_HELP, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--keys")) {
            ad_experiment_config_print_keys(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--dry-run")) dry = 1;
        else if (!strcmp(argv[i], "--overwrite")) overwrite = 1;
        else if (!strcmp(argv[i], "--quiet")) o.quiet = 1;
        else if (!strcmp(argv[i], "--stop-after")) {
            long n;
            if (!parse_int_arg("run", argv[i], i + 1 < argc ? argv[i + 1] : NULL, 1, 1000000, &n)) return 2;
            o.stop_after = (int)n, i++;
        } else if (argv[i][0] == '-') return usage_error("run", "unknown option", argv[i]);
        else if (!path) path = argv[i];
        else return usage_error("run", "unexpected argument", argv[i]);
    }
    if (!path) return usage_error("run", "missing EXPERIMENT.json", NULL);
    AdExperimentConfig cfg;
    if (ad_experiment_config_load(&cfg, path, overrides, n_over)) return die(NULL);
    warn_warmup("pretrain", cfg.pretrain.warmup_steps, cfg.pretrain.steps);
    if (cfg.rounds.count > 0) warn_warmup("train", cfg.train.warmup_steps, cfg.train.steps);
    if (dry) return ad_run_plan(&cfg, stdout) ? die("run --dry-run") : 0;
    const char *inputs[] = {path};
    if (ad_check_output_path(cfg.run_file, "run_file", AD_OUT_MAKE_PARENTS, inputs, 1))
        return die("run");
    char *text = NULL;
    size_t len = 0;
    if (ad_read_file(path, (size_t)1 << 24, &text, &len)) return die(NULL);
    size_t cap = len + 64;
    for (int i = 0; i < n_over; i++) cap += strlen(overrides[i]) + 16;
    char *orig = malloc(cap);
    if (!orig) {
        free(text);
        return die(NULL);
    }
    size_t k = (size_t)snprintf(orig, cap, "%s", text);
    for (int i = 0; i < n_over; i++) k += (size_t)snprintf(orig + k, cap - k, "\n--set %s", overrides[i]);
    free(text);
    AdStatus st = ad_dist_agree(ad_run_start(&cfg, orig, overwrite, &o)); /* one message for all ranks */
    free(orig);
    if (st) return die("run");
    if (ad_dist_is_root()) ad_run_report(cfg.run_file, stdout); /* --quiet drops the progress lines, not the results */
    if (!o.quiet && ad_dist_is_root())
        printf("\nrun file: %s\nplots:    /usr/bin/python3 analysis/plot_run.py %s\n", cfg.run_file, cfg.run_file);
    return 0;
}

static const char *RESUME_HELP =
    "usage: autodidact resume RUN.h5 [--set key.path=value ...] [--quiet]\n"
    "\n"
    "Continues a run from its last complete round with the config stored in the run file; the\n"
    "numbers are those of an uninterrupted run (same binary, threads and CPU). --set may change\n"
    "keys such as rounds.count to extend a finished run.\n";

static int cmd_resume(int argc, char **argv) {
    const char *path = NULL, *overrides[MAX_OVERRIDES];
    int n_over = 0;
    AdRunOptions o = {0, 0};
    for (int i = 0; i < argc; i++) {
        int k = take_override("resume", argc, argv, &i, overrides, &n_over);
        if (k < 0) return 2;
        if (k) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(RESUME_HELP, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--quiet")) o.quiet = 1;
        else if (argv[i][0] == '-') return usage_error("resume", "unknown option", argv[i]);
        else if (!path) path = argv[i];
        else return usage_error("resume", "unexpected argument", argv[i]);
    }
    if (!path) return usage_error("resume", "missing RUN.h5", NULL);
    if (ad_dist_agree(ad_run_resume(path, overrides, n_over, &o))) return die("resume");
    if (ad_dist_is_root()) ad_run_report(path, stdout);
    return 0;
}

static int cmd_report(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs("usage: autodidact report RUN.h5\n\nPrints the per-round summary of a run file: "
              "candidates, selection, label accuracy,\ntraining loss, the 90% frontier, and "
              "exact-match accuracy by round and length.\n", argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    if (ad_run_report(argv[0], stdout)) return die("report");
    return 0;
}

/* ------------------------------------------------------------------ bench */

static const char *BENCH_HELP =
    "usage: autodidact bench [--shape small|medium|all] [--family gpt2|llama] [--threads N]\n"
    "                        [--steps N] [--repeats N] [--no-torch]\n"
    "       autodidact bench --generate [--new N] [--threads N] [--repeats N] [--no-torch]\n"
    "\n"
    "Trains randomly initialised models on random tokens and reports the median tokens/s of\n"
    "several timed repeats, the model FLOPs utilisation against a measured cblas_sgemm peak,\n"
    "and peak memory against what parameters, gradients, AdamW state and activations need.\n"
    "Unless --no-torch, the same architecture and optimizer are trained in PyTorch CPU\n"
    "(bench/torch_train.py under /usr/bin/python3, Debian python3-torch) with the same\n"
    "threads in the same run, and the speed ratio is printed.\n"
    "Shapes (vocab 512): small = d 128, 4 layers, 4 heads, T 128, batch 16;\n"
    "                    medium = d 256, 6 layers, 8 heads, T 256, batch 8.\n"
    "\n"
    "--generate times batched sampling instead (ad_generate, KV cache): batches of 64 and of 1\n"
    "sequence, each sampling N new tokens (--new, default 100) from <bos> at temperature 1\n"
    "without early stop, for a random gpt2 model of the small shape and for stories260K\n"
    "(stories260K.bin + tok512.bin from $AD_SHARED_MODELS, else ../shared/models beside the\n"
    "source tree; skipped when absent). The PyTorch side is bench/torch_generate.py: the same\n"
    "decoder with a preallocated KV cache and torch.multinomial sampling.\n";

typedef struct {
    const char *name;
    int d, L, H, T, B;
} BenchShape;

/* Runs a bench/ reference script (a shell command printing one JSON object) and returns
 * its "tokens_per_s", or 0 when it fails. */
static double run_reference(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return 0.0;
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    if (pclose(p) != 0) return 0.0;
    const char *k = strstr(out, "\"tokens_per_s\"");
    if (!k) return 0.0;
    k = strchr(k, ':');
    return k ? atof(k + 1) : 0.0;
}

/* The PyTorch side of one shape; d_ff is passed so both sides train the same model. */
static double run_torch(const char *family, const BenchShape *s, int d_ff, int threads, int steps,
                        int repeats) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/bench/torch_train.py --family %s --vocab 512 --d-model %d "
             "--n-layer %d --n-head %d --n-kv-head %d --d-ff %d --seq-len %d --batch %d --threads %d "
             "--steps %d --repeats %d --json 2>/dev/null",
             AD_SOURCE_DIR, family, s->d, s->L, s->H, s->H, d_ff, s->T, s->B, threads, steps, repeats);
    return run_reference(cmd);
}

static int file_readable(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* One model of the generation benchmark: a random small gpt2 (which = 0) or stories260K
 * from dir (which = 1). Fills the arguments that give bench/torch_generate.py the same
 * model. Returns 1 when loaded, 0 when skipped (message printed), -1 on error. */
static int load_generate_model(int which, const char *dir, AdModel *m, AdTokenizer *tok,
                               const char **name, int *bos, char *targs, size_t cap) {
    memset(m, 0, sizeof *m);
    memset(tok, 0, sizeof *tok);
    *bos = 1;
    if (which == 0) {
        *name = "random-small";
        AdModelConfig c;
        ad_model_config_preset(&c, "gpt2");
        c.vocab_size = 512, c.d_model = 128, c.n_layer = 4, c.n_head = 4, c.n_kv_head = 4;
        c.d_ff = 4 * 128, c.max_seq_len = 128;
        if (ad_model_init(m, &c, 0)) return -1;
        AdRng rng;
        ad_rng_init(&rng, 1, AD_STREAM_INIT, 0);
        ad_model_init_weights(m, &rng, AD_INIT_GPT2);
        snprintf(targs, cap, "--family gpt2 --vocab 512 --d-model 128 --n-layer 4 --n-head 4 "
                 "--seq-len 128");
        return 1;
    }
    *name = "stories260K";
    char bin[AD_PATH_MAX], tokp[AD_PATH_MAX];
    snprintf(bin, sizeof bin, "%s/stories260K.bin", dir);
    snprintf(tokp, sizeof tokp, "%s/tok512.bin", dir);
    if (!file_readable(bin) || !file_readable(tokp)) {
        printf("%-12s skipped: %s or %s is not readable (set AD_SHARED_MODELS)\n", *name, bin, tokp);
        return 0;
    }
    if (ad_import(bin, AD_IMPORT_LLAMA2C, tokp, m, tok)) return -1;
    if (tok->bos_id >= 0) *bos = tok->bos_id;
    snprintf(targs, cap, "--llama2c '%s'", bin);
    return 1;
}

static int bench_generate(int nt, int new_tokens, int repeats, int torch) {
    const char *env = getenv("AD_SHARED_MODELS");
    const char *dir = env && *env ? env : AD_SOURCE_DIR "/../shared/models";
    const int batches[] = {64, 1};
    printf("threads %d | BLAS %s\n", nt, ad_blas_info());
    printf("generation: %d new tokens per sequence from <bos>, temperature 1, no early stop, "
           "median of %d repeats\n\n", new_tokens, repeats);
    printf("%-12s %6s %12s %12s %7s\n", "model", "batch", "autodidact", "pytorch", "ratio");
    for (int which = 0; which < 2; which++) {
        AdModel m;
        AdTokenizer tok;
        const char *name;
        int bos;
        char targs[AD_PATH_MAX + 64];
        int got = load_generate_model(which, dir, &m, &tok, &name, &bos, targs, sizeof targs);
        if (got < 0) return die("bench");
        if (got == 0) continue;
        for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
            int B = batches[i];
            AdBenchGenResult r;
            if (ad_bench_generate(&m, tok.vocab_size ? &tok : NULL, bos, B, new_tokens, 1, repeats, &r)) {
                ad_model_free(&m);
                ad_tokenizer_free(&tok);
                return die("bench");
            }
            double tt = 0.0;
            if (torch) {
                char cmd[2 * AD_PATH_MAX + 256];
                snprintf(cmd, sizeof cmd,
                         "/usr/bin/python3 %s/bench/torch_generate.py %s --bos %d --batch %d "
                         "--new %d --threads %d --repeats %d --json 2>/dev/null",
                         AD_SOURCE_DIR, targs, bos, B, new_tokens, nt, repeats);
                tt = run_reference(cmd);
            }
            char tbuf[32] = "-", rbuf[16] = "-";
            if (tt > 0) {
                snprintf(tbuf, sizeof tbuf, "%.0f", tt);
                snprintf(rbuf, sizeof rbuf, "%.2fx", r.tokens_per_s / tt);
            } else if (torch) {
                snprintf(tbuf, sizeof tbuf, "unavailable");
            }
            printf("%-12s %6d %12.0f %12s %7s\n", name, B, r.tokens_per_s, tbuf, rbuf);
            printf("             autodidact runs (tokens/s):");
            for (int k = 0; k < r.n_runs; k++) printf(" %.0f", r.runs[k]);
            printf("\n");
            fflush(stdout);
        }
        ad_model_free(&m);
        ad_tokenizer_free(&tok);
    }
    if (torch)
        printf("\npytorch: bench/torch_generate.py, same models and settings, %d threads, "
               "torch.inference_mode, median of %d repeats; ratio = autodidact / pytorch\n",
               nt, repeats);
    return 0;
}

static int cmd_bench(int argc, char **argv) {
    const char *shape = "all", *family = "gpt2";
    long threads = 0, steps = 0, repeats = 5, new_tokens = 100;
    int torch = 1, generate = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(BENCH_HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--shape") && v) shape = v, i++;
        else if (!strcmp(a, "--family") && v) family = v, i++;
        else if (!strcmp(a, "--threads")) ok = parse_int_arg("bench", a, v, 1, 1024, &threads), i++;
        else if (!strcmp(a, "--steps")) ok = parse_int_arg("bench", a, v, 1, 100000, &steps), i++;
        else if (!strcmp(a, "--repeats")) ok = parse_int_arg("bench", a, v, 1, 15, &repeats), i++;
        else if (!strcmp(a, "--no-torch")) torch = 0;
        else if (!strcmp(a, "--generate")) generate = 1;
        else if (!strcmp(a, "--new")) ok = parse_int_arg("bench", a, v, 1, 127, &new_tokens), i++;
        else return usage_error("bench", "unknown or incomplete argument", a);
        if (!ok) return 2;
    }
    if (strcmp(family, "gpt2") && strcmp(family, "llama")) return usage_error("bench", "unknown family", family);
    BenchShape shapes[] = {{"small", 128, 4, 4, 128, 16}, {"medium", 256, 6, 8, 256, 8}};
    if (threads > 0) ad_set_threads((int)threads);
    int nt = ad_get_threads();
    if (generate) return bench_generate(nt, (int)new_tokens, (int)repeats, torch);
    double peak = ad_bench_sgemm_gflops(1024, 7);
    printf("threads %d | BLAS %s\n", nt, ad_blas_info());
    printf("cblas_sgemm 1024^3 peak: %.1f GFLOP/s (median of 7)\n\n", peak);
    printf("%-7s %-6s %12s %12s %7s %6s %10s %10s\n", "shape", "family", "autodidact", "pytorch",
           "ratio", "MFU", "RSS MiB", "need MiB");
    int matched = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const BenchShape *s = &shapes[i];
        if (strcmp(shape, "all") && strcmp(shape, s->name)) continue;
        matched = 1;
        AdModelConfig c;
        ad_model_config_preset(&c, family);
        c.vocab_size = 512, c.d_model = s->d, c.n_layer = s->L, c.n_head = s->H, c.n_kv_head = s->H;
        c.max_seq_len = s->T;
        c.d_ff = c.mlp == AD_MLP_SWIGLU ? (2 * 4 * s->d / 3 + 31) / 32 * 32 : 4 * s->d;
        int st = steps ? (int)steps : (s->d > 128 ? 6 : 20);
        AdBenchResult r;
        if (ad_bench_train(&c, s->B, s->T, 3, st, (int)repeats, &r)) return die("bench");
        double tt = torch ? run_torch(family, s, c.d_ff, nt, st, (int)repeats) : 0.0;
        char tbuf[32] = "-", rbuf[16] = "-";
        if (tt > 0) {
            snprintf(tbuf, sizeof tbuf, "%.0f", tt);
            snprintf(rbuf, sizeof rbuf, "%.2fx", r.tokens_per_s / tt);
        } else if (torch) {
            snprintf(tbuf, sizeof tbuf, "unavailable");
        }
        printf("%-7s %-6s %12.0f %12s %7s %5.0f%% %10.0f %10.0f\n", s->name, family, r.tokens_per_s,
               tbuf, rbuf, 100.0 * r.tokens_per_s * r.flops_per_token / 1e9 / peak, r.peak_rss_mb,
               r.need_mb);
        printf("        autodidact runs (tokens/s):");
        for (int k = 0; k < r.n_runs; k++) printf(" %.0f", r.runs[k]);
        printf("\n");
        fflush(stdout);
    }
    if (!matched) return usage_error("bench", "unknown shape", shape);
    if (torch)
        printf("\npytorch: bench/torch_train.py, same shapes, AdamW, clipping, %d threads, median "
               "of %ld repeats\n", nt, repeats);
    return 0;
}

/* ------------------------------------------------------------------ main */

static const char *MAIN_HELP =
    "usage: autodidact <command> [options]\n"
    "\n"
    "A self-distillation research framework: a transformer in C that trains on the CPU.\n"
    "\n"
    "commands:\n"
    "  run      run a self-distillation experiment (JSON config) into an HDF5 run file\n"
    "  resume   continue a run file from its last complete round\n"
    "  report   per-round summary of a run file\n"
    "  train    train a model on a built-in task or a text file (JSON config)\n"
    "  eval     loss, perplexity and per-token log-probabilities of a checkpoint\n"
    "  generate sample text from a checkpoint or an open model (batched, KV cache)\n"
    "  import   convert llama2.c, GGUF, llm.c or safetensors models into a checkpoint\n"
    "  bench    training (and with --generate, generation) speed against PyTorch CPU\n"
    "  version  program, BLAS and thread facts\n"
    "\n"
    "'autodidact <command> --help' describes each command.\n";

static int dispatch(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(MAIN_HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "resume")) return cmd_resume(argc - 2, argv + 2);
    if (!strcmp(cmd, "report")) return cmd_report(argc - 2, argv + 2);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 2, argv + 2);
    if (!strcmp(cmd, "import")) return cmd_import(argc - 2, argv + 2);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
            fputs("usage: autodidact version\n\nPrints the program version and git commit, the "
                  "OpenMP thread count and the BLAS\nlibrary with its core type.\n", stdout);
            return 0;
        }
        if (argc > 2) return usage_error("version", "unexpected argument", argv[2]);
        printf("autodidact %s (git %s)\nthreads %d\nBLAS %s\nprocesses %s\n", AD_VERSION_STRING,
               ad_git_commit(), ad_get_threads(), ad_blas_info(), ad_dist_info());
        return 0;
    }
    fprintf(stderr, "autodidact: unknown command \"%s\"\n%s", cmd, MAIN_HELP);
    return 2;
}

/* Under mpirun every rank runs the same command (dist.h): run, resume and train share
 * their work; the other commands are repeated by each rank. */
int main(int argc, char **argv) {
    if (ad_dist_init(&argc, &argv)) return die("starting MPI");
    return ad_dist_finish(dispatch(argc, argv));
}
