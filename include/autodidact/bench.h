/* bench.h: measured speed of training steps, of batched generation and of cblas_sgemm on
 * this machine, for `autodidact bench`. A benchmark, not a test: numbers depend on the
 * machine's load. */
#ifndef AUTODIDACT_BENCH_H
#define AUTODIDACT_BENCH_H

#include "autodidact/model.h"
#include "autodidact/tokenizer.h"

typedef struct {
    double tokens_per_s;   /* median over repeats */
    double runs[16];       /* tokens/s of each repeat */
    int n_runs;
    double flops_per_token;/* model FLOPs per trained token (forward + backward) */
    double peak_rss_mb;    /* process peak resident set after the run */
    double need_mb;        /* parameters + gradients + AdamW moments + activations */
} AdBenchResult;

/* Trains a randomly initialised model on random tokens: `warmup` untimed steps, then
 * `repeats` timings of `steps` steps (forward, CE loss, backward, clipping, AdamW). */
AdStatus ad_bench_train(const AdModelConfig *c, int B, int T, int warmup, int steps, int repeats,
                        AdBenchResult *r);
typedef struct {
    double tokens_per_s;   /* median over repeats: generated tokens / seconds */
    double runs[16];       /* tokens/s of each repeat */
    int n_runs;
    long tokens_per_run;   /* tokens generated in one repeat (batch x new when nothing stops early) */
} AdBenchGenResult;

/* Times ad_generate: `batch` sequences, each from the lone token `bos`, sample `new_tokens`
 * tokens at temperature 1 with no filters and no early stop. One generator (and so one
 * KV cache of the model's max_seq_len positions) serves `warmup` untimed runs and then
 * `repeats` (at most 16) timed ones. tok (may be NULL) is passed through to ad_generate.
 * AD_ERR_ARG when new_tokens does not fit the model's context. */
AdStatus ad_bench_generate(const AdModel *m, const AdTokenizer *tok, int bos, int batch,
                           int new_tokens, int warmup, int repeats, AdBenchGenResult *r);
/* Median GFLOP/s of an (n x n) x (n x n) cblas_sgemm, with the current thread count. */
double ad_bench_sgemm_gflops(int n, int repeats);
/* FLOPs of one training step per token: 6 x (matrix parameters) + causal attention. */
double ad_model_flops_per_token(const AdModelConfig *c, int T);

#endif
