/* bench.c: timing of training steps and of sgemm, for `autodidact bench`. Pure
 * measurement: the comparison with PyTorch is run by the CLI from bench/torch_train.py. */
#include "autodidact/bench.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cblas.h>

#include "autodidact/losses.h"
#include "autodidact/optim.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double tmp[64];
    if (n > 64) n = 64;
    memcpy(tmp, v, sizeof(double) * n);
    qsort(tmp, n, sizeof(double), cmp_double);
    return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

double ad_model_flops_per_token(const AdModelConfig *c, int T) {
    AdTensorInfo info[AD_P_COUNT];
    ad_model_param_info(c, info);
    double mat = 0.0;
    for (int i = 0; i < AD_P_COUNT; i++)
        if (info[i].decay && i != AD_P_WPE) mat += (double)info[i].size; /* wte counts as the classifier */
    if (!c->tied) mat -= (double)info[AD_P_WTE].size; /* embedding lookup is free; lm_head counts */
    /* attention: QK^T and PV, 2 flops per multiply-add, averaged over the causal half,
     * forward x 3 for forward + backward */
    double attn = 2.0 * 2.0 * c->n_layer * (double)c->n_head * (c->d_model / c->n_head) * (T + 1) / 2.0;
    return 6.0 * mat + 3.0 * attn;
}

AdStatus ad_bench_train(const AdModelConfig *c, int B, int T, int warmup, int steps, int repeats,
                        AdBenchResult *r) {
    memset(r, 0, sizeof *r);
    if (repeats > 16) repeats = 16;
    AdModel m;
    AdActs a;
    AdAdamW opt;
    memset(&a, 0, sizeof a);
    memset(&opt, 0, sizeof opt);
    AdStatus st = ad_model_init(&m, c, 1);
    if (st) return st;
    AdRng rng;
    ad_rng_init(&rng, 1, AD_STREAM_INIT, 0);
    ad_model_init_weights(&m, &rng);
    AdAdamWConfig oc = {0.9f, 0.95f, 1e-8f, 0.1f};
    int *tok = NULL;
    if ((st = ad_acts_init(&a, c, B, T)) || (st = ad_adamw_init(&opt, &oc, m.n_params))) goto done;
    tok = ad_calloc((size_t)B * T * 2, sizeof(int), "benchmark batch");
    if (!tok) {
        st = AD_ERR_NOMEM;
        goto done;
    }
    int *tgt = tok + (size_t)B * T;
    for (size_t i = 0; i < (size_t)B * T; i++) {
        tok[i] = (int)ad_rng_below(&rng, c->vocab_size);
        tgt[i] = (int)ad_rng_below(&rng, c->vocab_size);
    }
    for (int rep = -1; rep < repeats; rep++) {
        int n = rep < 0 ? warmup : steps;
        double t0 = ad_time_now();
        for (int s = 0; s < n; s++) {
            ad_model_zero_grad(&m);
            ad_model_forward(&m, &a, tok, B, T);
            ad_loss_ce(a.dlogits, NULL, a.logits, tgt, B * T, c->vocab_size, 1.0f / (B * T));
            ad_model_backward(&m, &a, tok, B, T);
            ad_grad_clip(&m, 1.0f);
            ad_adamw_step(&opt, &m, 1e-4f);
        }
        double dt = ad_time_now() - t0;
        if (rep >= 0) r->runs[r->n_runs++] = (double)B * T * n / dt;
    }
    r->tokens_per_s = median(r->runs, r->n_runs);
    r->flops_per_token = ad_model_flops_per_token(c, T);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r->peak_rss_mb = ru.ru_maxrss / 1024.0;
    r->need_mb = (4.0 * m.n_params + (double)a.n_floats) * sizeof(float) / 1048576.0;
done:
    free(tok);
    ad_adamw_free(&opt);
    ad_acts_free(&a);
    ad_model_free(&m);
    return st;
}

double ad_bench_sgemm_gflops(int n, int repeats) {
    float *A = ad_alloc_floats((size_t)n * n * 3, "sgemm benchmark");
    if (!A) return 0.0;
    float *Bm = A + (size_t)n * n, *Cm = Bm + (size_t)n * n;
    for (size_t i = 0; i < (size_t)n * n; i++) A[i] = Bm[i] = (float)(i % 7) * 0.1f;
    double runs[64];
    if (repeats > 64) repeats = 64;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, Bm, n, 0.0f, Cm, n);
    for (int r = 0; r < repeats; r++) {
        double t0 = ad_time_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, Bm, n, 0.0f, Cm, n);
        runs[r] = 2.0 * n * (double)n * n / (ad_time_now() - t0) / 1e9;
    }
    free(A);
    return median(runs, repeats);
}
