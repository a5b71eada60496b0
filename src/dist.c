/* dist.c: the one module that knows about MPI (dist.h). It shards index ranges, agrees
 * on failures, sums gradients and gathers sharded generation and scores to every rank.
 * Built without AD_MPI it compiles to the single-process no-ops; it holds no policy of
 * its own (what is sharded is decided by the callers). */
#include "autodidact/dist.h"

#include <string.h>

#ifdef AD_MPI
#include <mpi.h>
#include <signal.h>
#include <unistd.h>
#endif

/* Set once by ad_dist_init and read-only afterwards: the process's place in the job,
 * which MPI itself holds process-wide. */
static int g_rank = 0, g_size = 1;

int ad_dist_rank(void) { return g_rank; }
int ad_dist_size(void) { return g_size; }
int ad_dist_is_root(void) { return g_rank == 0; }

void ad_dist_range(long n, long *lo, long *hi) {
    long q = n / g_size, rem = n % g_size;
    *lo = (long)g_rank * q + (g_rank < rem ? g_rank : rem);
    *hi = *lo + q + (g_rank < rem ? 1 : 0);
}

#ifdef AD_MPI

static char g_info[64];
static int g_shared_failure; /* the last failure came through ad_dist_agree */

/* A sharded output record of ad_dist_generate: n, stop, then max_new tokens, max_new
 * log-probs and (with entropy) max_new entropies. */
typedef struct {
    unsigned char *buf;
    size_t rec;
    long lo;
    int max_new, entropy;
} Collect;

static size_t record_bytes(int max_new, int entropy) {
    return 2 * sizeof(int) + (size_t)max_new * (sizeof(int) + sizeof(float) * (entropy ? 2 : 1));
}

static void collect_sink(long req, const AdGenOutput *o, void *user) {
    Collect *c = user;
    unsigned char *p = c->buf + (size_t)(c->lo + req) * c->rec;
    int head[2] = {o->n, (int)o->stop};
    memcpy(p, head, sizeof head);
    p += sizeof head;
    memcpy(p, o->tokens, sizeof(int) * (size_t)o->n);
    p += sizeof(int) * (size_t)c->max_new;
    memcpy(p, o->logprobs, sizeof(float) * (size_t)o->n);
    p += sizeof(float) * (size_t)c->max_new;
    if (c->entropy && o->entropy) memcpy(p, o->entropy, sizeof(float) * (size_t)o->n);
}

/* Calls sink for every record of c in request order. */
static void replay(const Collect *c, long n, AdGenSink sink, void *user) {
    for (long i = 0; i < n; i++) {
        unsigned char *p = c->buf + (size_t)i * c->rec;
        int head[2];
        memcpy(head, p, sizeof head);
        p += sizeof head;
        AdGenOutput o = {head[0], (int *)p, (float *)(p + sizeof(int) * (size_t)c->max_new),
                         c->entropy ? (float *)(p + (sizeof(int) + sizeof(float)) * (size_t)c->max_new) : NULL,
                         (AdStopReason)head[1]};
        sink(i, &o, user);
    }
}


/* An MPI call's failure as a status; with MPI_ERRORS_RETURN a dead peer lands here. */
static AdStatus mpi_check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return AD_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ad_fail(AD_ERR_IO, "%s failed on rank %d of %d: %s. Another rank has probably died; the "
                   "run file on disk keeps its last complete round (continue it with 'autodidact "
                   "resume')", what, g_rank, g_size, msg);
}

/* The launcher ends the surviving ranks with SIGTERM when one rank dies: say what is
 * left on disk. Rank 0 writes files by temp + rename, so the run file holds its last
 * complete round whatever moment this comes at. */
static void on_terminate(int sig) {
    static const char msg[] = "autodidact: stopped by the MPI launcher (a rank of this job ended "
                              "or the job was cancelled); the run file keeps its last complete "
                              "round: continue it with 'autodidact resume RUN.h5' on any number "
                              "of ranks\n";
    if (g_rank == 0 && write(2, msg, sizeof msg - 1) < 0) { /* nothing more to do */
    }
    _exit(128 + sig);
}

AdStatus ad_dist_init(int *argc, char ***argv) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return ad_fail(AD_ERR_IO, "MPI_Init_thread failed");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    snprintf(g_info, sizeof g_info, "MPI, %d rank%s", g_size, g_size == 1 ? "" : "s");
    if (g_rank != 0) ad_log_set_level(AD_LOG_WARN);
    if (g_size > 1) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_terminate;
        sigaction(SIGTERM, &sa, NULL);
    }
    return AD_OK;
}

int ad_dist_finish(int rc) {
    if (rc != 0 && g_size > 1 && !g_shared_failure) MPI_Abort(MPI_COMM_WORLD, rc);
    MPI_Finalize();
    return rc;
}

const char *ad_dist_info(void) { return g_info[0] ? g_info : "MPI, not started"; }
int ad_dist_failure_shared(void) { return g_shared_failure; }

AdStatus ad_dist_agree(AdStatus st) {
    if (g_size == 1) return st;
    int mine = st != AD_OK ? g_rank : g_size, first = g_size;
    AdStatus rc = mpi_check(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD),
                            "MPI_Allreduce (status agreement)");
    if (rc) return rc;
    if (first == g_size) return AD_OK;
    g_shared_failure = 1;
    int code = (int)st;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", g_rank == first ? ad_errmsg() : "");
    if ((rc = mpi_check(MPI_Bcast(&code, 1, MPI_INT, first, MPI_COMM_WORLD), "MPI_Bcast (status)")) ||
        (rc = mpi_check(MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, MPI_COMM_WORLD), "MPI_Bcast (status)")))
        return rc;
    if (g_rank == first) return st;
    msg[sizeof msg - 1] = '\0';
    return ad_fail((AdStatus)code, "rank %d: %s", first, msg);
}

static AdStatus sum(void *a, size_t n, MPI_Datatype type, size_t elem) {
    if (g_size == 1) return AD_OK;
    for (size_t off = 0; off < n; off += AD_DIST_BUCKET) {
        size_t cnt = n - off < (size_t)AD_DIST_BUCKET ? n - off : (size_t)AD_DIST_BUCKET;
        AdStatus st = mpi_check(MPI_Allreduce(MPI_IN_PLACE, (char *)a + off * elem, (int)cnt, type,
                                              MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce (sum)");
        if (st) return st;
    }
    return AD_OK;
}

AdStatus ad_dist_sum_floats(float *a, size_t n) { return sum(a, n, MPI_FLOAT, sizeof(float)); }
AdStatus ad_dist_sum_doubles(double *a, size_t n) { return sum(a, n, MPI_DOUBLE, sizeof(double)); }

/* Every rank's block ad_dist_range(n) of `unit`-byte items to every rank. */
static AdStatus gather_blocks(void *buf, long n, size_t unit, const char *what) {
    int *counts = ad_calloc((size_t)g_size * 2, sizeof(int), "gather counts");
    if (!counts) return AD_ERR_NOMEM;
    int *displs = counts + g_size;
    long q = n / g_size, rem = n % g_size, at = 0;
    AdStatus st = AD_OK;
    for (int r = 0; r < g_size; r++) {
        long items = q + (r < rem ? 1 : 0);
        double bytes = (double)items * (double)unit, end = (double)(at + items) * (double)unit;
        if (bytes > 2147483647.0 || end > 2147483647.0) {
            st = ad_fail(AD_ERR_ARG, "%s: %ld items of %zu bytes are more than one MPI gather "
                         "carries (2 GiB)", what, n, unit);
            break;
        }
        counts[r] = (int)bytes;
        displs[r] = (int)((double)at * (double)unit);
        at += items;
    }
    if (!st)
        st = mpi_check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs,
                                      MPI_BYTE, MPI_COMM_WORLD), what);
    free(counts);
    return st;
}

AdStatus ad_dist_gather_floats(AdStatus st, float *a, long lo, long hi) {
    if (g_size == 1) return st;
    if ((st = ad_dist_agree(st))) return st;
    long *ends = ad_calloc((size_t)g_size * 2, sizeof(long), "gather blocks");
    int *counts = ad_calloc((size_t)g_size * 2, sizeof(int), "gather blocks");
    long mine[2] = {lo, hi};
    st = ends && counts ? AD_OK : AD_ERR_NOMEM;
    st = ad_dist_agree(st);
    if (!st) st = mpi_check(MPI_Allgather(mine, 2, MPI_LONG, ends, 2, MPI_LONG, MPI_COMM_WORLD),
                            "MPI_Allgather (score blocks)");
    for (int r = 0; r < g_size && !st; r++) {
        if (ends[2 * r + 1] - ends[2 * r] > 2147483647L || ends[2 * r] > 2147483647L)
            st = ad_fail(AD_ERR_ARG, "scores: a block of %ld values is more than one MPI gather "
                         "carries", ends[2 * r + 1] - ends[2 * r]);
        counts[r] = (int)(ends[2 * r + 1] - ends[2 * r]);
        counts[g_size + r] = (int)ends[2 * r];
    }
    if (!st)
        st = mpi_check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, a, counts, counts + g_size,
                                      MPI_FLOAT, MPI_COMM_WORLD), "MPI_Allgatherv (scores)");
    free(ends);
    free(counts);
    return st;
}

AdStatus ad_dist_generate(AdGenerator *g, const AdTokenizer *tok, const AdGenRequest *reqs, long n,
                          const AdSampleConfig *sc, AdGenSink sink, void *sink_user,
                          AdGenProgress progress, void *progress_user) {
    if (g_size == 1) return ad_generate(g, tok, reqs, n, sc, sink, sink_user, progress, progress_user);
    long lo, hi;
    ad_dist_range(n, &lo, &hi);
    int ent = g->want_entropy && sc->want_entropy;
    Collect c = {NULL, record_bytes(g->max_new, ent), lo, g->max_new, ent};
    c.buf = ad_calloc((size_t)(n > 0 ? n : 1), c.rec, "generated sequences of all ranks");
    AdStatus st = c.buf ? AD_OK : AD_ERR_NOMEM;
    if (!st && hi > lo)
        st = ad_generate(g, tok, reqs + lo, hi - lo, sc, collect_sink, &c, progress, progress_user);
    st = ad_dist_agree(st);
    if (!st) st = gather_blocks(c.buf, n, c.rec, "MPI_Allgatherv (generated sequences)");
    if (!st) replay(&c, n, sink, sink_user);
    free(c.buf);
    return st;
}

#else /* one process */

AdStatus ad_dist_init(int *argc, char ***argv) { return AD_OK; }
int ad_dist_finish(int rc) { return rc; }
int ad_dist_failure_shared(void) { return 0; }
const char *ad_dist_info(void) { return "no MPI (built without AD_MPI)"; }
AdStatus ad_dist_agree(AdStatus st) { return st; }
AdStatus ad_dist_sum_floats(float *a, size_t n) { return AD_OK; }
AdStatus ad_dist_sum_doubles(double *a, size_t n) { return AD_OK; }
AdStatus ad_dist_gather_floats(AdStatus st, float *a, long lo, long hi) { return st; }

AdStatus ad_dist_generate(AdGenerator *g, const AdTokenizer *tok, const AdGenRequest *reqs, long n,
                          const AdSampleConfig *sc, AdGenSink sink, void *sink_user,
                          AdGenProgress progress, void *progress_user) {
    return ad_generate(g, tok, reqs, n, sc, sink, sink_user, progress, progress_user);
}

#endif
