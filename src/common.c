/* common.c: thread-local error messages, checked allocation, the logging hook and
 * small platform facts (time, threads, BLAS build). Everything else builds on it. */
#include "autodidact/common.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <omp.h>

static _Thread_local char err_buf[2048];

AdStatus ad_fail(AdStatus code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return code;
}

AdStatus ad_fail_context(AdStatus code, const char *fmt, ...) {
    char prefix[1024], old[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    if (old[0])
        snprintf(err_buf, sizeof err_buf, "%.1000s: %.1000s", prefix, old);
    else
        snprintf(err_buf, sizeof err_buf, "%s", prefix);
    return code;
}

const char *ad_errmsg(void) { return err_buf; }
void ad_clear_error(void) { err_buf[0] = '\0'; }

const char *ad_status_name(AdStatus s) {
    switch (s) {
    case AD_OK: return "ok";
    case AD_ERR_IO: return "I/O error";
    case AD_ERR_FORMAT: return "format error";
    case AD_ERR_CONFIG: return "config error";
    case AD_ERR_ARG: return "bad argument";
    case AD_ERR_NOMEM: return "out of memory";
    case AD_ERR_NAN: return "non-finite value";
    case AD_ERR_HDF5: return "HDF5 error";
    case AD_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

void *ad_malloc(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) ad_fail(AD_ERR_NOMEM, "out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *ad_calloc(size_t count, size_t size, const char *what) {
    if (size && count > SIZE_MAX / size) {
        ad_fail(AD_ERR_NOMEM, "size overflow allocating %zu x %zu bytes for %s", count, size, what);
        return NULL;
    }
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) ad_fail(AD_ERR_NOMEM, "out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return p;
}

float *ad_alloc_floats(size_t count, const char *what) {
    if (count > (SIZE_MAX - 64) / sizeof(float)) {
        ad_fail(AD_ERR_NOMEM, "size overflow allocating %zu floats for %s", count, what);
        return NULL;
    }
    size_t bytes = (count * sizeof(float) + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) {
        ad_fail(AD_ERR_NOMEM, "out of memory allocating %zu floats (%.1f MiB) for %s", count,
                bytes / 1048576.0, what);
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}

/* ---- logging ---- */

static void default_log(AdLogLevel level, const char *msg, void *user) {
    (void)user;
    static const char *tags[] = {"debug: ", "", "warning: ", "error: "};
    fprintf(stderr, "%s%s\n", tags[level], msg);
}

static AdLogFn log_fn = default_log;
static void *log_user = NULL;
static AdLogLevel log_min = AD_LOG_INFO;

void ad_log_set_handler(AdLogFn fn, void *user) {
    log_fn = fn ? fn : default_log;
    log_user = user;
}

void ad_log_set_level(AdLogLevel min_level) { log_min = min_level; }

void ad_log(AdLogLevel level, const char *fmt, ...) {
    if (level < log_min) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}

double ad_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ad_get_threads(void) { return omp_get_max_threads(); }

void ad_set_threads(int n) {
    if (n > 0) {
        omp_set_num_threads(n);
        openblas_set_num_threads(n);
    }
}

const char *ad_blas_info(void) {
    static _Thread_local char buf[256];
    snprintf(buf, sizeof buf, "%s; core %s; parallel %d", openblas_get_config(),
             openblas_get_corename(), openblas_get_parallel());
    return buf;
}
