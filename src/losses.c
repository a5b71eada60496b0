/* losses.c: token losses on logits, each giving the summed loss and dlogits scaled by
 * 1/(unmasked tokens of the accumulated batch). Rows are OpenMP-parallel; sums are
 * combined in a fixed order so results do not depend on thread timing. No sampling. */
#include "autodidact/losses.h"
#include "autodidact/kernels.h"

#include <math.h>
#include <string.h>

#include <omp.h>

#include "fastmath.h"

#define MAX_THREADS 256

long ad_count_targets(const int *targets, long n) {
    long k = 0;
    for (long i = 0; i < n; i++) k += targets[i] >= 0;
    return k;
}

double ad_loss_ce(float *dlogits, float *token_loss, const float *logits, const int *targets,
                  int N, int V, float scale) {
    double partial[MAX_THREADS] = {0};
    int nthreads = 1, want = omp_get_max_threads();
    if (want > MAX_THREADS) want = MAX_THREADS;
#pragma omp parallel num_threads(want) if((long)N * V >= AD_PAR_MIN)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        if (id == 0) nthreads = nt;
        long i0 = (long)N * id / nt, i1 = (long)N * (id + 1) / nt;
        double acc = 0.0;
        for (long i = i0; i < i1; i++) {
            const float *x = logits + i * V;
            int y = targets[i];
            if (y < 0) {
                if (dlogits) memset(dlogits + i * V, 0, sizeof(float) * V);
                if (token_loss) token_loss[i] = 0.0f;
                continue;
            }
            float mx = x[0];
            for (int j = 1; j < V; j++) mx = x[j] > mx ? x[j] : mx;
            float sum = 0.0f;
            for (int j = 0; j < V; j++) sum += ad_expf(x[j] - mx);
            float lse = mx + logf(sum);
            float loss = lse - x[y];
            if (token_loss) token_loss[i] = loss;
            acc += loss;
            if (dlogits) {
                float *d = dlogits + i * V;
                float inv = scale / sum;
                for (int j = 0; j < V; j++) d[j] = ad_expf(x[j] - mx) * inv;
                d[y] -= scale;
            }
        }
        partial[id] = acc;
    }
    double total = 0.0;
    for (int t = 0; t < nthreads; t++) total += partial[t];
    return total;
}
