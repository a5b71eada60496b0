/* allreduce.c: times ad_dist_sum_floats (the gradient sum of data-parallel training) for
 * message sizes from 1 KiB to 64 MiB, printing the fastest and the median of the repeats
 * per size on rank 0 (on a shared machine the fastest is the cost without contention).
 * Run under mpirun with the MPI build; the numbers feed the README's scaling model. */
#include <stdio.h>
#include <stdlib.h>

#include "autodidact/dist.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (ad_dist_init(&argc, &argv)) return 1;
    enum { REPEATS = 21 };
    size_t max_n = (size_t)16 << 20; /* 64 MiB of floats */
    float *a = ad_alloc_floats(max_n, "allreduce buffer");
    if (!a) return ad_dist_finish(1);
    if (ad_dist_is_root()) printf("%12s %12s %12s %12s   (%d ranks, %d repeats)\n", "bytes", "fastest s", "median s",
               "GB/s fastest", ad_dist_size(), REPEATS);
    for (size_t n = 256; n <= max_n; n *= 4) {
        double t[REPEATS];
        for (int r = 0; r < REPEATS; r++) {
            ad_dist_agree(AD_OK); /* line the ranks up */
            double t0 = ad_time_now();
            if (ad_dist_sum_floats(a, n)) return ad_dist_finish(1);
            t[r] = ad_time_now() - t0;
        }
        qsort(t, REPEATS, sizeof t[0], cmp_double);
        if (ad_dist_is_root())
            printf("%12zu %12.3e %12.3e %12.3f\n", n * sizeof(float), t[0], t[REPEATS / 2],
                   n * sizeof(float) / t[0] / 1e9);
    }
    free(a);
    return ad_dist_finish(0);
}
