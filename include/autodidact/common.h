/* common.h: status codes, error messages, checked allocation, logging hook, timing.
 * Every library function that can fail returns an AdStatus and leaves a message
 * (naming the file, key or value at fault) readable with ad_errmsg() on the same
 * thread. Library code never exits; only the CLI decides to. */
#ifndef AUTODIDACT_COMMON_H
#define AUTODIDACT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define AD_VERSION_STRING "0.1.0"

typedef enum {
    AD_OK = 0,
    AD_ERR_IO,       /* a file could not be opened, read, written or renamed */
    AD_ERR_FORMAT,   /* a file's contents are malformed or of the wrong version */
    AD_ERR_CONFIG,   /* an experiment config key or value is wrong */
    AD_ERR_ARG,      /* a caller passed a bad argument (size, shape, name) */
    AD_ERR_NOMEM,    /* an allocation failed or a size overflowed */
    AD_ERR_NAN,      /* a loss or gradient became NaN or Inf */
    AD_ERR_HDF5,     /* the HDF5 library reported an error */
    AD_ERR_INTERNAL  /* should not happen: a bug */
} AdStatus;

/* Records a formatted message for the calling thread and returns `code`,
 * so that `return ad_fail(AD_ERR_IO, "cannot open %s", path);` reads naturally. */
AdStatus ad_fail(AdStatus code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prepends context to the current message: "loading ckpt.h5: <old message>". */
AdStatus ad_fail_context(AdStatus code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The last message recorded on this thread ("" if none). Valid until the next ad_fail. */
const char *ad_errmsg(void);
void ad_clear_error(void);
const char *ad_status_name(AdStatus s);

/* Checked allocation: on failure (or size overflow) returns NULL and records an
 * AD_ERR_NOMEM message naming `what`. Memory from ad_alloc_floats is 64-byte aligned
 * and zeroed; release it with free(). */
void *ad_malloc(size_t n, const char *what);
void *ad_calloc(size_t count, size_t size, const char *what);
float *ad_alloc_floats(size_t count, const char *what);

/* The memory this process may use, in bytes: the smallest of physical memory, the
 * address-space limit (ulimit -v) and the data-segment limit (ulimit -d). *source (may
 * be NULL) names which one it is. The checked allocators above refuse any single block
 * larger than it, and callers that size work from a config check their whole estimate
 * against it before allocating (ad_mem_check). */
double ad_mem_limit(const char **source);
/* AD_OK if `bytes` fit under ad_mem_limit(); otherwise AD_ERR_NOMEM with the message
 * "<what> would need <bytes>, more than the <limit> this process may use (<source>)",
 * where what is formatted from fmt (name the config key or option and its value). */
AdStatus ad_mem_check(double bytes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "512 B", "3.0 KiB", "12.5 MiB", "8.2 GiB" into buf. */
void ad_format_bytes(double bytes, char *buf, size_t cap);

/* Output paths, checked before a command does any work. */
enum {
    AD_OUT_FILE = 0,          /* path names a file to write */
    AD_OUT_DIR = 1,           /* path names a directory to write files into */
    AD_OUT_MAKE_PARENTS = 2   /* missing parent directories will be created */
};
/* AD_OK if `path` can be written as the output `what` (a config key or option, named in
 * the message): it is not empty; a file's name is not an existing directory (a
 * directory's is not an existing file); the nearest existing ancestor directory is
 * writable (with AD_OUT_MAKE_PARENTS; else the parent itself must exist); an existing
 * file or directory is writable; and it is none of the n_inputs files in inputs (NULL
 * or "" entries are skipped). Otherwise AD_ERR_IO saying which. Touches nothing. */
AdStatus ad_check_output_path(const char *path, const char *what, int flags,
                              const char *const *inputs, int n_inputs);

/* Programmer errors (shape mismatches, broken invariants): print file:line and abort. */
#define AD_ASSERT(cond)                                                          \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                      \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* Logging: the default handler prints to stderr; a caller may replace it. */
typedef enum { AD_LOG_DEBUG = 0, AD_LOG_INFO, AD_LOG_WARN, AD_LOG_ERROR } AdLogLevel;
typedef void (*AdLogFn)(AdLogLevel level, const char *msg, void *user);
void ad_log_set_handler(AdLogFn fn, void *user);
void ad_log_set_level(AdLogLevel min_level);
void ad_log(AdLogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole regular file into a NUL-terminated buffer (caller frees), refusing a
 * directory or other non-file and anything over max_bytes, with a message naming path. */
AdStatus ad_read_file(const char *path, size_t max_bytes, char **out, size_t *len);

/* Monotonic wall-clock seconds. */
double ad_time_now(void);

/* Number of threads OpenMP (and so OpenBLAS) will use; ad_set_threads(0) keeps the default. */
int ad_get_threads(void);
void ad_set_threads(int n);

/* The git commit the library was built from ("abc123def456", "-dirty" appended when the
 * tree had uncommitted changes, "unknown" outside a checkout). */
const char *ad_git_commit(void);

/* Description of the BLAS build ("OpenBLAS 0.3.21 ... Zen MAX_THREADS=64"), for run files. */
const char *ad_blas_info(void);

#endif
