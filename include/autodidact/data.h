/* data.h: training batches as token ids and targets, from a built-in task (one example
 * per row: <bos> prompt answer <eos>, padded; only answer and <eos> are targets) or from
 * a text file (random windows; every next token is a target). A target of -1 is masked.
 * No model, no training. */
#ifndef AUTODIDACT_DATA_H
#define AUTODIDACT_DATA_H

#include "autodidact/common.h"
#include "autodidact/rng.h"
#include "autodidact/tasks.h"
#include "autodidact/tokenizer.h"

typedef enum {
    AD_DATA_TASK = 0, /* fresh task examples drawn on the fly */
    AD_DATA_TEXT = 1, /* windows of an encoded text */
    AD_DATA_POOL = 2  /* a growing set of (prompt, answer) examples, e.g. selected self-labels,
                         optionally mixed with fresh task examples (replay) */
} AdDataKind;

/* One example of a pool; origin 0 = ground truth, r > 0 = selected in round r. */
typedef struct {
    char *prompt, *answer; /* owned */
    int origin;
    int cut;               /* 1: the answer was cut off (generation reached its token limit
                              before <eos>): it trains without the <eos> target */
} AdExample;

typedef struct {
    AdDataKind kind;
    const AdTokenizer *tok; /* borrowed */
    int T;                  /* row length */
    /* task */
    AdTaskKind task;
    int min_len, max_len;
    /* text */
    int *ids;               /* owned: the whole file encoded */
    long n_ids, n_train;    /* ids[0, n_train) train, ids[n_train, n_ids) validation */
    /* pool */
    AdExample *ex;          /* owned */
    long n_ex, cap_ex;
    double replay_frac;     /* pool: share of rows drawn as fresh task examples of lengths
                               [min_len, max_len] (0: none; needs a task) */
} AdData;

/* Task examples with lengths drawn uniformly from [min_len, max_len]. Fails (naming the
 * task, length and T) when the longest example does not fit in T+1 tokens. */
AdStatus ad_data_init_task(AdData *d, const AdTokenizer *tok, AdTaskKind task, int min_len,
                           int max_len, int T);
/* Encodes text with tok; the last val_frac of it is held out for evaluation. */
AdStatus ad_data_init_text(AdData *d, const AdTokenizer *tok, const char *text, size_t len, int T,
                           double val_frac);
/* An empty pool; replay_frac > 0 mixes in fresh examples of `task` at [min_len, max_len]. */
AdStatus ad_data_init_pool(AdData *d, const AdTokenizer *tok, int T, double replay_frac,
                           AdTaskKind task, int min_len, int max_len);
/* Copies an example into the pool. Fails (naming it) if it does not fit in T + 1 tokens or
 * has characters outside the vocabulary. */
AdStatus ad_data_pool_add(AdData *d, const char *prompt, const char *answer, int origin);
/* As ad_data_pool_add; cut = 1 marks an answer that did not end (no <eos> target). */
AdStatus ad_data_pool_add_cut(AdData *d, const char *prompt, const char *answer, int origin,
                              int cut);
/* Removes the examples whose origin is in [lo, hi]. */
void ad_data_pool_remove(AdData *d, int origin_lo, int origin_hi);
void ad_data_free(AdData *d);

/* Fills tokens (B, T) and targets (B, T) from the train (split 0) or validation (split 1)
 * part, advancing rng. A pool draws its examples uniformly (after the replay share). */
AdStatus ad_data_batch(const AdData *d, AdRng *rng, int split, int *tokens, int *targets, int B);

/* Encodes "<bos> prompt answer <eos>" of a task example into one row: tokens[0..T) inputs,
 * targets[0..T) next tokens (answer and <eos> only, else -1), padded with
 * ad_data_pad_id(tok)/-1. The answer is encoded as a continuation of the prompt
 * (ad_tokenizer_encode_continuation). answer may be NULL (prompt only: no targets).
 * *n_prompt receives the count of prompt tokens including <bos> (may be NULL). */
/* The id that fills a row after its sequence: <pad>, or for a vocabulary without one
 * (llama2.c's) <eos>, else 0. Padding only follows the sequence and its targets are
 * masked, so under causal attention no real position ever attends to it: any id will do. */
int ad_data_pad_id(const AdTokenizer *tok);
AdStatus ad_data_encode_example(const AdTokenizer *tok, const char *prompt, const char *answer,
                                int T, int *tokens, int *targets, int *n_prompt);

#endif
