/* bench.c: timing of training steps, of batched KV-cache generation and of sgemm, for
 * `autodidact bench`. Pure measurement: the comparisons with PyTorch are run by the CLI
 * from bench/torch_train.py and bench/torch_generate.py. */
#include "autodidact/bench.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cblas.h>

#include "autodidact/generate.h"
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
    ad_model_init_weights(&m, &rng, AD_INIT_GPT2);
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

static void count_tokens(long request, const AdGenOutput *out, void *user) {
    (void)request;
    *(long *)user += out->n;
}

AdStatus ad_bench_generate(const AdModel *m, const AdTokenizer *tok, int bos, int batch,
                           int new_tokens, int warmup, int repeats, AdBenchGenResult *r) {
    memset(r, 0, sizeof *r);
    const AdModelConfig *c = &m->cfg;
    if (repeats > 16) repeats = 16;
    if (repeats < 1) return ad_fail(AD_ERR_ARG, "generation benchmark: repeats must be at least 1");
    if (warmup < 0) warmup = 0;
    if (batch < 1 || new_tokens < 1 || new_tokens >= c->max_seq_len)
        return ad_fail(AD_ERR_ARG, "generation benchmark: batch %d and %d new tokens after <bos> "
                       "do not fit a context of %d positions", batch, new_tokens, c->max_seq_len);
    if (bos < 0 || bos >= c->vocab_size)
        return ad_fail(AD_ERR_ARG, "generation benchmark: <bos> id %d is outside the vocabulary "
                       "of %d", bos, c->vocab_size);
    AdGenerator g;
    AdStatus st = ad_generator_init(&g, m, batch, c->max_seq_len, new_tokens, 0);
    if (st) return st;
    AdGenRequest *reqs = ad_calloc((size_t)batch, sizeof *reqs, "benchmark requests");
    if (!reqs) {
        ad_generator_free(&g);
        return AD_ERR_NOMEM;
    }
    for (int b = 0; b < batch; b++) {
        reqs[b].prompt = &bos;
        reqs[b].prompt_len = 1;
        reqs[b].prompt_index = 0;
        reqs[b].sample_index = b;
    }
    AdSampleConfig sc;
    ad_sample_config_default(&sc);
    sc.max_new_tokens = new_tokens;
    sc.temperature = 1.0f;
    sc.stop_at_eos = 0;
    for (int rep = -warmup; rep < repeats; rep++) {
        long n_tok = 0;
        sc.seed = (uint64_t)(rep + warmup); /* a fresh sample each run */
        double t0 = ad_time_now();
        st = ad_generate(&g, tok, reqs, batch, &sc, count_tokens, &n_tok, NULL, NULL);
        double dt = ad_time_now() - t0;
        if (st) break;
        if (rep >= 0) {
            r->runs[r->n_runs++] = (double)n_tok / dt;
            r->tokens_per_run = n_tok;
        }
    }
    if (!st) r->tokens_per_s = median(r->runs, r->n_runs);
    free(reqs);
    ad_generator_free(&g);
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
