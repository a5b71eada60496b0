/* round_method.h: what the round loop (round.c) and the round methods (method_*.c) share:
 * the run's state between rounds, one round's batch, and the method table. A method is one
 * row: what it builds from the scored candidates (pool rows, pairs, groups), how it trains
 * on that, and what it logs. The loop never branches on a method's name. Not a public header. */
#ifndef AUTODIDACT_ROUND_METHOD_H
#define AUTODIDACT_ROUND_METHOD_H

#include "autodidact/data.h"
#include "autodidact/model.h"
#include "autodidact/optim.h"
#include "autodidact/round.h"
#include "autodidact/runlog.h"
#include "autodidact/score.h"
#include "autodidact/tasks.h"
#include "autodidact/tokenizer.h"
#include "autodidact/train.h"

#define AD_ON_POLICY_ORIGIN 1000000 /* transient on-policy examples: origin AD_ON_POLICY_ORIGIN + round */

/* Everything one run holds between rounds. */
typedef struct {
    const AdExperimentConfig *cfg;
    const AdRunOptions *opt;
    AdTaskKind task;
    int is_task;
    AdTokenizer tok;
    AdModel student;      /* with gradients */
    AdModel base;         /* round-0 weights (init = restart) */
    AdModel ema;          /* teacher = ema */
    AdModel frozen;       /* teacher = checkpoint, or the snapshot of the round */
    AdAdamW opt_state;    /* the student's optimizer, carried across rounds (continue) */
    int n_members;        /* score.ensemble: extra models of other seeds that vote */
    AdModel *member;      /* (n_members) with gradients */
    AdAdamW *member_opt;  /* (n_members) */
    AdData pool;          /* selected examples of all rounds */
    AdRunLog log;
    char ckpt_dir[AD_PATH_MAX + 16];
    int T;                /* training rows */
    /* evaluation grid */
    int n_eval;
    int *eval_len;
    char **eval_prompt;   /* (n_eval * per_len) */
    char **eval_answer;
    /* the prompts of task.path (source file or jsonl), owned */
    char **file_lines;
    long n_file_lines;
    int free_budget;      /* answer tokens without a task when generate.max_new_tokens is 0:
                             64, or what fits the rows after the longest prompt */
} Run;

/* The training curve of one round: one record per update (cap = the phase's steps). */
typedef struct {
    AdTrainRecord *rec;
    long n, cap;
} Curve;

/* One round as it moves through the pipeline. The loop fills the first block (and, for a
 * method that generates, cand and n_selected); build fills what train reads; train fills
 * the curve and its results. `own` is the method's own data (pairs, groups), freed by
 * release. */
typedef struct {
    int round, lo, hi;        /* difficulty of the round's prompts (task lengths) */
    const AdModel *teacher;   /* who generated, and whose distribution distillation matches */
    AdCandidates *cand;       /* the scored and selected candidates; NULL in round 0 */
    long n_selected;
    AdData data;              /* round 0's ground truth (owned unless data_borrowed) */
    int data_borrowed;
    void *own;                /* method data (pairs, groups); the method frees it */
    Curve curve;
    double loss, tps;         /* last logged loss, mean tokens/s */
    long n_examples;          /* what the round trained on (rows, or pairs) for the summary */
    long n_pairs, pairs_dropped; /* preference rounds: pairs built; prompts without one */
    double pair_accuracy;     /* share of judged pairs with chosen right and rejected wrong */
} RoundBatch;

typedef struct {
    const char *name;         /* as in the config ("sft", "distillation", "preference") */
    int generates;            /* 1: the round generates, scores and selects first */
    AdStatus (*build)(Run *r, RoundBatch *b);      /* what to train on */
    AdStatus (*train)(Run *r, RoundBatch *b);      /* the loss and the updates */
    AdStatus (*log)(Run *r, const RoundBatch *b);  /* its datasets (may be NULL) */
    void (*release)(Run *r, RoundBatch *b);        /* frees b->own (may be NULL) */
} RoundMethod;

/* The rows of the table (method_*.c). ground_truth is round 0's. */
extern const RoundMethod ad_method_ground_truth, ad_method_sft, ad_method_distillation,
    ad_method_preference, ad_method_grpo;

/* The method of round `round` of the run configured by cfg. */
const RoundMethod *ad_round_method(const AdExperimentConfig *cfg, int round);

/* ---- services of the loop (round.c) that methods call */

/* A progress line unless the run is quiet. */
void ad_round_say(const Run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Trains `model` (optimizer `opt`) on `data` with the round's phase settings (pretrain for
 * round 0, train after); member 0 is the student, m > 0 ensemble model m with its own data
 * stream. With a curve, records every update; *loss_out and *tps_out get the last loss and
 * the mean tokens/s. */
AdStatus ad_round_train_phase(Run *r, int round, int member, AdModel *model, AdAdamW *opt,
                              const AdData *data, const AdModel *teacher, Curve *curve,
                              double *loss_out, double *tps_out);
/* Trains every ensemble model on `data` (curves not logged). */
AdStatus ad_round_train_members(Run *r, int round, const AdData *data, const AdModel *teacher);
/* n_prompts prompts of round `round` (stream AD_STREAM_PROMPTS, round) at difficulty lo..hi
 * into c, answered by gen_model with `samples` samples each at `temperature`. */
AdStatus ad_round_candidates(Run *r, int round, int lo, int hi, long n_prompts,
                             const AdModel *gen_model, int samples, float temperature,
                             AdCandidates *c, long *tokens);
/* Log-probability sums of n encoded rows (tokens, targets: (n, T), as ad_data_encode_example
 * writes them) under m, over the unmasked targets, Bf rows per forward pass: a frozen
 * model's view of sequences (a preference reference, a policy's old log-probs). */
AdStatus ad_round_rows_logps(const AdModel *m, const int *tokens, const int *targets, long n,
                             int T, int Bf, double *out);
/* 1 if candidate i is text without a task cut at the budget (trains without <eos>). */
int ad_round_answer_was_cut(const Run *r, const AdCandidates *c, long i);

/* ---- shared by the methods that train on the example pool (method_sft.c) */

/* Adds the round's selected candidates to the pool (dropping older rounds' unless
 * rounds.keep_history). */
AdStatus ad_method_pool_build(Run *r, RoundBatch *b);
/* Trains the student on the pool (replay of fresh ground truth for a task), drops the
 * round's transient on-policy rows, then trains the ensemble models on the pool. */
AdStatus ad_method_pool_train(Run *r, RoundBatch *b);

/* ---- shared by the methods with a training loop of their own (method_dpo.c, method_grpo.c) */

/* One update of the student from its accumulated gradient: AD_ERR_NAN (naming the round,
 * `what` and 1-based step) if the loss or the gradient norm is not finite, else clips the
 * gradient to train.grad_clip and applies AdamW (r->opt_state) at lr. *gnorm receives the
 * norm before clipping. */
AdStatus ad_method_update(Run *r, int round, const char *what, long step, double loss, float lr,
                          float *gnorm);

#endif
