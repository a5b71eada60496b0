/* train.h: the training loop shared by `autodidact train` and the round engine:
 * batches from a data source, forward, loss, backward, accumulation over micro-batches
 * (the loss is averaged over all unmasked tokens of the accumulated batch), clipping,
 * AdamW under a schedule, NaN guard, progress lines, periodic evaluation and
 * checkpoints. Resuming from a checkpoint's AdTrainState continues bit-identically. */
#ifndef AUTODIDACT_TRAIN_H
#define AUTODIDACT_TRAIN_H

#include "autodidact/data.h"
#include "autodidact/losses.h"
#include "autodidact/model.h"
#include "autodidact/optim.h"
#include "autodidact/rng.h"
#include "autodidact/tokenizer.h"

/* Everything beyond the weights needed to resume training exactly. */
typedef struct {
    long step;          /* optimizer updates applied */
    AdAdamW opt;        /* moments; opt.m == NULL for a weights-only checkpoint */
    AdRng data_rng;     /* data-order stream, positioned after the last batch used */
    double tokens_seen; /* training tokens processed (unmasked targets) */
    char *config_json;  /* resolved config text, owned (may be NULL) */
} AdTrainState;

void ad_train_state_free(AdTrainState *s);

/* One logged training step, handed to an optional observer (the run log). */
typedef struct {
    long step;          /* 1-based number of the update just applied */
    float loss, lr, grad_norm;
    double tokens_per_s;
    double elapsed_s;
} AdTrainRecord;

typedef void (*AdTrainObserver)(const AdTrainRecord *r, void *user);

typedef struct {
    long steps;             /* total updates (the loop stops when st->step reaches it) */
    int batch_size, seq_len, grad_accum;
    AdSchedule sched;
    float grad_clip;
    int log_every;          /* progress line every N steps (0: never) */
    int eval_every;         /* validation loss every N steps (0: never) */
    int eval_batches;
    int ckpt_every;         /* checkpoint every N steps (0: only at the end) */
    const char *ckpt_path;  /* NULL: no checkpoints */
    const AdTokenizer *tok; /* saved with checkpoints (may be NULL) */
    uint64_t seed;          /* for the evaluation stream */
    int quiet;              /* 1: no progress lines */
    const char *label;      /* prefix of progress lines (e.g. "round 2"); may be NULL */
    /* Distillation: with a teacher, the loss at each target position is the divergence
     * `loss` between the teacher's and the student's distributions (temperature tau)
     * instead of cross-entropy on the target token. */
    const AdModel *teacher;
    AdLossKind loss;
    float loss_param;       /* JSD beta or skew alpha */
    float tau;
    /* With ema != NULL, after every update ema = ema_decay * ema + (1 - ema_decay) * m. */
    AdModel *ema;
    float ema_decay;
    AdTrainObserver observer;
    void *observer_user;
    /* Debugging: with batch_dump != NULL every micro-batch is appended to it as it is used,
     * as int32 values: step (1-based), micro-batch index, micro-batches per step, B, T,
     * then tokens (B, T) and targets (B, T) (T after trimming; -1 = masked). */
    FILE *batch_dump;
} AdTrainOptions;

/* Trains m (which must have gradients) from st->step to o->steps. st->opt must be
 * initialised. A non-finite loss or gradient norm stops with AD_ERR_NAN naming the step;
 * the last checkpoint written (if any) is left intact. */
AdStatus ad_train(AdModel *m, AdTrainState *st, const AdData *data, const AdTrainOptions *o);

/* Mean loss over n_batches validation batches drawn from a fixed stream (seed,
 * AD_STREAM_EVAL, 0), so successive evaluations see the same data. *tokens receives the
 * number of unmasked targets. acts must hold (B, T). */
AdStatus ad_eval_loss(AdModel *m, AdActs *acts, const AdData *data, uint64_t seed, int B,
                      int n_batches, int split, double *mean_loss, long *tokens);

/* Task and pool rows are padded to T; this trims a batch (B, T) in place to the longest
 * row that still has a target, packing rows to the new stride. Returns the new T. */
int ad_trim_batch(int *tokens, int *targets, int B, int T);

/* Formats seconds as "1h02m", "3m05s" or "12s". */
void ad_format_duration(double s, char *buf, size_t cap);

#endif
