/* import_internal.h: what the importer files (importers.c, import_*.c) share: a
 * read-only mapped file, bounded header-field checks, element conversion (F32, F16,
 * BF16, little-endian; ggml's quantized blocks) and each format's entry point. Not a
 * public header. */
#ifndef AUTODIDACT_IMPORT_INTERNAL_H
#define AUTODIDACT_IMPORT_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "autodidact/importers.h"

typedef struct {
    const char *path;
    const unsigned char *data; /* (size) read-only mapping of the whole file */
    size_t size;
} ImpFile;

/* Maps a whole file read-only. An empty file maps to data == NULL, size 0. */
AdStatus imp_file_open(ImpFile *f, const char *path);
/* Safe on a zeroed struct. */
void imp_file_close(ImpFile *f);

/* Element types of imported tensors: plain floats, and ggml's block-quantized formats
 * (import_quant.c), whose values come in blocks of 32 (Q8_0, Q4_0) or 256 (K formats). */
typedef enum {
    IMP_F32 = 0, IMP_F16 = 1, IMP_BF16 = 2,
    IMP_Q8_0, IMP_Q4_0, IMP_Q4_K, IMP_Q5_K, IMP_Q6_K
} ImpDtype;

/* Bytes per element of a plain type (F32, F16, BF16). */
size_t imp_dtype_size(ImpDtype t);
/* Elements per block: 1 for plain types, 32 for Q8_0 and Q4_0, 256 for Q4_K, Q5_K, Q6_K. */
int imp_dtype_block(ImpDtype t);
/* Bytes per block (per element for plain types). */
size_t imp_dtype_block_bytes(ImpDtype t);
/* Bytes of n elements; n must be a multiple of imp_dtype_block(t) (asserted). */
size_t imp_dtype_bytes(ImpDtype t, size_t n);
/* Expands n elements of a quantized type (n a multiple of its block) to float32 as
 * ggml's dequantize_row_* does. No checks: the caller has bounded src. */
void imp_dequantize(float *dst, const unsigned char *src, ImpDtype t, size_t n);
const char *imp_dtype_name(ImpDtype t);
float imp_f16_to_f32(uint16_t h);  /* exact for every half value, incl. subnormals */
float imp_bf16_to_f32(uint16_t h); /* exact: bf16 is the top half of a float32 */

/* Converts n little-endian elements of type t at src (any alignment) into dst; for a
 * quantized type n is a multiple of its block.
 * A non-finite value is AD_ERR_FORMAT naming the file, the tensor and the index. */
AdStatus imp_convert(float *dst, const unsigned char *src, ImpDtype t, size_t n,
                     const ImpFile *f, const char *tensor);

/* Converts an (n_heads * hs, cols) projection stored in the rotate-half row order of
 * Hugging Face Llama checkpoints into interleaved-pair order (llama2.c, Meta, GGUF).
 * Within a head, HF row i * hs/2 + j (half i in {0, 1}, pair j < hs/2) holds what
 * interleaved row 2j + i holds: HF's converter applied
 *   w.view(n_heads, hs/2, 2, cols).transpose(1, 2).reshape(n_heads * hs, cols)
 * so that its rotate_half RoPE (pairs (j, j + hs/2)) equals RoPE on pairs (2j, 2j+1). */
AdStatus imp_convert_rows_unpermute(float *dst, const unsigned char *src, ImpDtype t,
                                    int n_heads, int hs, int cols, const ImpFile *f,
                                    const char *tensor);

/* AD_ERR_FORMAT "<file>: <field> = v is outside [lo, hi]" unless lo <= v <= hi. */
AdStatus imp_check_field(const ImpFile *f, const char *field, int64_t v, int64_t lo,
                         int64_t hi);

/* Bounds applied to header fields before any size is computed (the model's own
 * validation then applies its exact limits). They keep every product of three
 * fields below 2^63. */
enum {
    IMP_MAX_DIM = 1 << 20,     /* d_model, d_ff, head counts, context lengths */
    IMP_MAX_LAYERS = 1 << 12,
    IMP_MAX_VOCAB = 1 << 23
};

/* Sets cfg->max_seq_len from the file's value or the caller's override and validates
 * the config; errors name the file. Call before sizes derived from cfg are trusted. */
AdStatus imp_config_finish(AdModelConfig *cfg, int file_seq_len, const AdImportOptions *opt,
                           const ImpFile *f);

/* What a Llama-family file states about its model, each field already bounded by the
 * reader (imp_check_field or the IMP_MAX_* limits). */
typedef struct {
    int64_t vocab_size, d_model, d_ff, n_layer, n_head, n_kv_head;
    int64_t seq_len; /* the file's context length (AdImportOptions.max_seq_len overrides it) */
    double norm_eps, rope_theta;
    int tied;        /* the classifier is the token embedding */
} ImpLlamaDims;

/* The "llama" preset (RMSNorm, SwiGLU, RoPE, no biases) with the file's sizes, finished
 * by imp_config_finish. */
AdStatus imp_llama_config(AdModelConfig *cfg, const ImpLlamaDims *d, const AdImportOptions *opt,
                          const ImpFile *f);
/* ad_model_init(m, cfg, 0) with the file named in an error. */
AdStatus imp_model_init(AdModel *m, const AdModelConfig *cfg, const ImpFile *f);

/* Format readers. Each initialises m; those with an embedded vocabulary fill tok when
 * it is non-NULL (otherwise tok is untouched). On error they free what they made. */
AdStatus imp_load_llama2c(const ImpFile *f, const AdImportOptions *opt, AdModel *m);
/* The vocabulary of a GGUF file alone (tensors may be absent): AD_ERR_FORMAT if it has
 * none. */
AdStatus imp_load_gguf_vocab(const ImpFile *f, AdTokenizer *tok);
AdStatus imp_load_gguf(const ImpFile *f, const AdImportOptions *opt, AdModel *m,
                       AdTokenizer *tok);
AdStatus imp_load_llmc(const ImpFile *f, const AdImportOptions *opt, AdModel *m);
AdStatus imp_load_safetensors(const ImpFile *f, const AdImportOptions *opt, AdModel *m);

/* Little-endian reads from a byte pointer the caller has bounds-checked. */
static inline uint32_t imp_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline int32_t imp_i32(const unsigned char *p) {
    uint32_t u = imp_u32(p);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}
static inline uint64_t imp_u64(const unsigned char *p) {
    return (uint64_t)imp_u32(p) | (uint64_t)imp_u32(p + 4) << 32;
}

#endif
