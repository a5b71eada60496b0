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

typedef enum { AD_DATA_TASK = 0, AD_DATA_TEXT = 1 } AdDataKind;

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
} AdData;

/* Task examples with lengths drawn uniformly from [min_len, max_len]. Fails (naming the
 * task, length and T) when the longest example does not fit in T+1 tokens. */
AdStatus ad_data_init_task(AdData *d, const AdTokenizer *tok, AdTaskKind task, int min_len,
                           int max_len, int T);
/* Encodes text with tok; the last val_frac of it is held out for evaluation. */
AdStatus ad_data_init_text(AdData *d, const AdTokenizer *tok, const char *text, size_t len, int T,
                           double val_frac);
void ad_data_free(AdData *d);

/* Fills tokens (B, T) and targets (B, T) from the train (split 0) or validation (split 1)
 * part, advancing rng. */
AdStatus ad_data_batch(const AdData *d, AdRng *rng, int split, int *tokens, int *targets, int B);

/* Encodes "<bos> prompt answer <eos>" of a task example into one row: tokens[0..T) inputs,
 * targets[0..T) next tokens (answer and <eos> only, else -1), padded with <pad>/-1.
 * answer may be NULL (prompt only: no targets). *n_prompt receives the count of prompt
 * tokens including <bos> (may be NULL). */
AdStatus ad_data_encode_example(const AdTokenizer *tok, const char *prompt, const char *answer,
                                int T, int *tokens, int *targets, int *n_prompt);

/* Reads a whole file into a NUL-terminated buffer (caller frees). Bounded by max_bytes. */
AdStatus ad_read_file(const char *path, size_t max_bytes, char **out, size_t *len);

#endif
