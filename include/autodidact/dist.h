/* dist.h: running one experiment on several processes (MPI ranks). Rank, size, sharding
 * of work by index, status agreement, sums of gradients, and gathering of sharded
 * results to every rank live here and nowhere else. Built without AD_MPI (or run as one
 * process) every function is a no-op or the plain single-process call, so callers use
 * them unconditionally.
 *
 * The contract between ranks: every rank runs the same program on the same inputs and
 * calls the collective functions below (marked "collective") in the same order; a rank
 * that fails reports its status through ad_dist_agree (or a collective that takes a
 * status) instead of leaving the others waiting. Rank 0 alone writes files. */
#ifndef AUTODIDACT_DIST_H
#define AUTODIDACT_DIST_H

#include "autodidact/common.h"
#include "autodidact/generate.h"

/* Starts MPI (with AD_MPI; otherwise nothing), makes MPI errors return codes instead of
 * aborting, and lowers the log level of ranks other than 0 to warnings, so that progress
 * is printed once. Call once, first thing in main. */
AdStatus ad_dist_init(int *argc, char ***argv);
/* Ends MPI and returns rc. A rank failing alone (rc != 0 without a failure shared by
 * ad_dist_agree) aborts the whole job, so that no rank is left waiting in a collective
 * for it. */
int ad_dist_finish(int rc);
/* 1 when the last failure was agreed by every rank (each holds the same message), so
 * that only rank 0 needs to print it. */
int ad_dist_failure_shared(void);

int ad_dist_rank(void);    /* 0 .. size-1; 0 without MPI */
int ad_dist_size(void);    /* number of ranks; 1 without MPI */
int ad_dist_is_root(void); /* rank 0: the one that writes files and prints progress */
/* "MPI, 4 ranks" or "no MPI" style description, for version output. */
const char *ad_dist_info(void);

/* This rank's contiguous share [*lo, *hi) of n items: the first n % size ranks take one
 * more. Every index belongs to exactly one rank; with one rank it is [0, n). */
void ad_dist_range(long n, long *lo, long *hi);

/* Collective: the first failing rank's status and message, on every rank (AD_OK when
 * every rank passed AD_OK). Ranks that did not fail get the message prefixed with the
 * failing rank's number. */
AdStatus ad_dist_agree(AdStatus st);

/* Collective: a[i] summed over the ranks, in place, on every rank (the same bits on
 * every rank). Sent in buckets of AD_DIST_BUCKET floats. */
#define AD_DIST_BUCKET (1L << 22)
AdStatus ad_dist_sum_floats(float *a, size_t n);
AdStatus ad_dist_sum_doubles(double *a, size_t n);

/* Collective: agrees on st first; if every rank passed AD_OK, each rank's block
 * a[lo, hi) is copied to every other rank, so that all ranks hold the whole array. The
 * ranks' blocks must tile it in rank order (rank 0's starts at 0, each next one where the
 * last ended). */
AdStatus ad_dist_gather_floats(AdStatus st, float *a, long lo, long hi);

/* Collective: ad_generate with the n requests sharded across ranks by ad_dist_range;
 * every rank then receives every output, and sink is called for all n requests in
 * request order on every rank. Each request keeps its own RNG stream (generate.h), so
 * the outputs equal a single-process ad_generate's at the same thread count. The
 * generator must have been made with max_new >= sc->max_new_tokens. progress reports
 * this rank's share. */
AdStatus ad_dist_generate(AdGenerator *g, const AdTokenizer *tok, const AdGenRequest *reqs, long n,
                          const AdSampleConfig *sc, AdGenSink sink, void *sink_user,
                          AdGenProgress progress, void *progress_user);

#endif
