/* generate.h: batched decoding with a KV cache. Many sequences advance together, one
 * token per step each, so every matrix product runs over the whole batch; prompts of
 * different lengths are fed token by token until each sequence starts sampling, and
 * each sequence stops on its own (EOS, a stop string, or its length limit). Samplers:
 * greedy, temperature, top-k, top-p, min-p, repetition penalty. Every sequence draws
 * from its own RNG stream (seed, prompt index, sample index), so a sample does not
 * depend on the batch it ran in. Each generated token comes with its log-probability
 * under the model (temperature 1, before any filtering) and optionally the entropy of
 * that distribution. No scoring policy here. */
#ifndef AUTODIDACT_GENERATE_H
#define AUTODIDACT_GENERATE_H

#include "autodidact/model.h"
#include "autodidact/tokenizer.h"

typedef struct {
    int max_new_tokens;       /* per sequence; also bounded by the cache length */
    float temperature;        /* 0: greedy (argmax) */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off; drop tokens with p < min_p * p_max */
    float repetition_penalty; /* 1: off; logits of tokens already in the sequence are divided
                                 (if > 0) or multiplied (if < 0) by it, as in CTRL */
    uint64_t seed;
    int stop_at_eos;          /* 1: stop when the tokenizer's <eos> is produced (it is kept) */
    const char *stop;         /* stop string (NULL: none): generation ends once the decoded
                                 output contains it */
    int want_entropy;
} AdSampleConfig;

/* Defaults: 64 new tokens, temperature 1, no filters, stop at EOS, seed 0. */
void ad_sample_config_default(AdSampleConfig *s);

typedef enum { AD_STOP_LENGTH = 0, AD_STOP_EOS = 1, AD_STOP_STRING = 2 } AdStopReason;

typedef struct {
    int n;              /* generated tokens */
    int *tokens;        /* (max_new_tokens) owned by the AdGenBatch */
    float *logprobs;    /* (max_new_tokens) log p(token) under the model */
    float *entropy;     /* (max_new_tokens) entropy in nats, or NULL unless want_entropy */
    AdStopReason stop;
} AdGenOutput;

/* One request: a prompt (token ids; start with <bos> if the model expects it), and the
 * (prompt index, sample index) pair that names its RNG stream (distinct streams for
 * indices in [0, 2^32)). */
typedef struct {
    const int *prompt;
    int prompt_len;
    long prompt_index;
    long sample_index;
} AdGenRequest;

typedef struct {
    const AdModel *model;   /* borrowed */
    AdKVCache cache;
    int max_batch, max_seq, max_new;
    int want_entropy;
    float *probs;           /* (max_batch, V) sampling scratch */
    uint64_t *keys;         /* (max_batch, V) sort scratch */
    int *seen;              /* (max_batch, V) token occurrence counts for the penalty */
    int *out_tokens;        /* (max_batch, max_new) */
    float *out_logprobs, *out_entropy;
} AdGenerator;

/* Sizes everything for up to max_batch sequences at once of up to max_seq positions
 * (prompt + generated) and max_new generated tokens each (at most max_seq: a longer
 * budget cannot be used and is cut). Callers size max_batch by the sequences they have
 * (never more); memory beyond ad_mem_limit() is refused before allocating. */
AdStatus ad_generator_init(AdGenerator *g, const AdModel *m, int max_batch, int max_seq, int max_new,
                           int want_entropy);
void ad_generator_free(AdGenerator *g);
/* Bytes ad_generator_init allocates for these sizes. */
double ad_generator_bytes(const AdModelConfig *c, int max_batch, int max_seq, int max_new);

/* Callback receiving each finished sequence; out's arrays are valid during the call only. */
typedef void (*AdGenSink)(long request, const AdGenOutput *out, void *user);
/* Progress callback: tokens generated so far, elapsed seconds. May be NULL. */
typedef void (*AdGenProgress)(long done_requests, long total_requests, long tokens, double seconds,
                              void *user);

/* Generates for n requests, in chunks of the generator's max_batch, calling sink for each
 * finished sequence (in request order within a chunk). A prompt longer than the cache or
 * empty is AD_ERR_ARG naming the request. tok is needed for <eos> and stop strings. */
AdStatus ad_generate(AdGenerator *g, const AdTokenizer *tok, const AdGenRequest *reqs, long n,
                     const AdSampleConfig *sc, AdGenSink sink, void *sink_user,
                     AdGenProgress progress, void *progress_user);

/* Samples one token from logits (V) under sc using rng; seen (V, may be NULL) counts
 * earlier tokens for the repetition penalty; probs and keys are (V) scratch. Returns the
 * token; *logprob receives log p under the unfiltered temperature-1 distribution and
 * *entropy (may be NULL) its entropy. Exposed for the sampler tests. */
int ad_sample_token(const float *logits, int V, const AdSampleConfig *sc, const int *seen,
                    AdRng *rng, float *probs, uint64_t *keys, float *logprob, float *entropy);

#endif
