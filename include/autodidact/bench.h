/* bench.h: measured speed of training steps and of cblas_sgemm on this machine, for
 * `autodidact bench`. A benchmark, not a test: numbers depend on the machine's load. */
#ifndef AUTODIDACT_BENCH_H
#define AUTODIDACT_BENCH_H

#include "autodidact/model.h"

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
/* Median GFLOP/s of an (n x n) x (n x n) cblas_sgemm, with the current thread count. */
double ad_bench_sgemm_gflops(int n, int repeats);
/* FLOPs of one training step per token: 6 x (matrix parameters) + causal attention. */
double ad_model_flops_per_token(const AdModelConfig *c, int T);

#endif
