/* testbuf.h: for tests that write model files byte by byte (GGUF, safetensors, llama2.c,
 * llm.c): a growing byte buffer, little-endian puts, writing it to the test's scratch
 * directory, and Hugging Face's rotate-half row order. Header-only (static inline):
 * include it in the test that needs it. */
#ifndef AD_TESTBUF_H
#define AD_TESTBUF_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct {
    unsigned char *p;
    size_t n, cap;
} Buf;

static inline void put(Buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static inline void put_u8(Buf *b, uint8_t v) { put(b, &v, 1); }
static inline void put_u16(Buf *b, uint16_t v) { put(b, &v, 2); }
static inline void put_u32(Buf *b, uint32_t v) { put(b, &v, 4); }
static inline void put_i32(Buf *b, int32_t v) { put(b, &v, 4); }
static inline void put_u64(Buf *b, uint64_t v) { put(b, &v, 8); }
static inline void put_f32(Buf *b, float v) { put(b, &v, 4); }
static inline void put_f64(Buf *b, double v) { put(b, &v, 8); }
static inline void put_pad(Buf *b, size_t align, unsigned char c) {
    while (b->n % align) put(b, &c, 1);
}
static inline void buf_free(Buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}
static inline void set_u32(Buf *b, size_t off, uint32_t v) { memcpy(b->p + off, &v, 4); }
static inline void set_u64(Buf *b, size_t off, uint64_t v) { memcpy(b->p + off, &v, 8); }

/* Writes n bytes to NAME in the test's scratch directory; returns the path. */
static inline const char *write_file(const char *name, const void *p, size_t n) {
    const char *path = ad_test_path(ad_test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert(fwrite(p, 1, n, f) == n);
    ck_assert(fclose(f) == 0);
    return path;
}
static inline const char *write_buf(const char *name, const Buf *b) {
    return write_file(name, b->p, b->n);
}

/* HF's layout of an interleaved-pair projection (convert_llama_weights_to_hf.py's
 * permute; also qwen2 GGUF files' q/k rows and biases): HF row (h, i, j) =
 * w.view(n_heads, hs/2, 2, cols).transpose(1, 2), i.e. original row h*hs + 2j + i.
 * Returns a new (n_heads * hs, cols) array. */
static inline float *hf_permute(const float *w, int n_heads, int hs, int cols) {
    float *out = malloc((size_t)n_heads * hs * cols * sizeof *out);
    ck_assert_ptr_nonnull(out);
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < hs / 2; j++)
                memcpy(out + ((size_t)h * hs + i * (hs / 2) + j) * cols,
                       w + ((size_t)h * hs + 2 * j + i) * cols, (size_t)cols * sizeof *out);
    return out;
}

#endif
