/* train.h: the training loop shared by `autodidact train` and the round engine:
 * batches from a data source, forward, loss, backward, accumulation, clipping,
 * AdamW under a schedule, progress lines, periodic eval and checkpoints. */
#ifndef AUTODIDACT_TRAIN_H
#define AUTODIDACT_TRAIN_H

#include "autodidact/model.h"
#include "autodidact/optim.h"
#include "autodidact/rng.h"

/* Everything beyond the weights needed to resume training exactly. */
typedef struct {
    long step;          /* optimizer updates applied */
    AdAdamW opt;        /* moments; opt.m == NULL for a weights-only checkpoint */
    AdRng data_rng;     /* data-order stream, positioned after the last batch used */
    double tokens_seen; /* training tokens processed (unmasked targets) */
    char *config_json;  /* resolved config text, owned (may be NULL) */
} AdTrainState;

void ad_train_state_free(AdTrainState *s);

#endif
