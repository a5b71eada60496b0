/* fuzz_common.h: what the libFuzzer harnesses share. Loaders that take a path get the input
 * written to a per-process scratch file (under TMPDIR, else /tmp). The memory limit is the
 * one libFuzzer is run with (-rss_limit_mb), so a loader that trusts a size field to
 * allocate shows up as an out-of-memory finding. */
#ifndef AD_FUZZ_COMMON_H
#define AD_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autodidact/common.h"

static void fuzz_quiet(void) {
    static int done = 0;
    if (done) return;
    done = 1;
    ad_log_set_level(AD_LOG_ERROR + 1);
    ad_set_threads(1);
}

/* This process's scratch directory (TMPDIR or /tmp, then ad_fuzz_PID), made once. */
static const char *fuzz_dir(void) {
    static char dir[400];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(dir, sizeof dir, "%s/ad_fuzz_%ld", t, (long)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

/* Writes data to the scratch file model<suffix> and returns its path (static storage). */
static const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix) {
    static char path[512];
    snprintf(path, sizeof path, "%s/model%s", fuzz_dir(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

/* A NUL-terminated copy of the input (caller frees). */
static char *fuzz_text(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
