/* import_llama2c.c: reads a llama2.c legacy fp32 checkpoint (the layout run.c maps) into
 * a Llama-family AdModel; one of the readers behind importers.h. The tokenizer file is
 * read by importers.c; llama2.c's later export versions ("ak42" magic) are refused. */
#include "import_internal.h"

enum { HEADER_BYTES = 7 * 4, AK42_MAGIC = 0x616b3432 };

/* Converts `blocks` consecutive runs of n floats from the file at *off into
 * dst + b * stride and advances *off. The caller has checked the file's length. */
static AdStatus read_blocks(const ImpFile *f, size_t *off, float *dst, size_t stride, size_t n,
                            int blocks, const char *tensor) {
    for (int b = 0; b < blocks; b++) {
        AD_ASSERT(*off + n * 4 <= f->size);
        AdStatus st = imp_convert(dst + (size_t)b * stride, f->data + *off, IMP_F32, n, f, tensor);
        if (st != AD_OK) return st;
        *off += n * 4;
    }
    return AD_OK;
}

AdStatus imp_load_llama2c(const ImpFile *f, const AdImportOptions *opt, AdModel *m) {
    if (f->size < HEADER_BYTES)
        return ad_fail(AD_ERR_FORMAT, "%s: %zu bytes, too short for the llama2.c header of "
                       "7 int32", f->path, f->size);
    const unsigned char *p = f->data;
    if (imp_u32(p) == AK42_MAGIC)
        return ad_fail(AD_ERR_FORMAT, "%s: a llama2.c export of version %d (\"ak42\" magic); "
                       "only the legacy layout is read: re-export with export.py --version 0",
                       f->path, f->size >= 8 ? (int)imp_i32(p + 4) : -1);
    static const char *const names[7] = {"header field dim", "header field hidden_dim",
                                         "header field n_layers", "header field n_heads",
                                         "header field n_kv_heads", "header field vocab_size",
                                         "header field seq_len"};
    const int64_t hi[7] = {IMP_MAX_DIM, IMP_MAX_DIM, IMP_MAX_LAYERS, IMP_MAX_DIM,
                           IMP_MAX_DIM, IMP_MAX_VOCAB, IMP_MAX_DIM};
    int32_t h[7];
    for (int i = 0; i < 7; i++) {
        h[i] = imp_i32(p + 4 * i);
        AdStatus st = imp_check_field(f, names[i], h[i], i == 5 ? -IMP_MAX_VOCAB : 1, hi[i]);
        if (st != AD_OK) return st;
    }
    if (h[5] == 0) return ad_fail(AD_ERR_FORMAT, "%s: header field vocab_size is 0", f->path);

    AdModelConfig cfg;
    const ImpLlamaDims dims = {.d_model = h[0], .d_ff = h[1], .n_layer = h[2], .n_head = h[3],
                               .n_kv_head = h[4], .vocab_size = h[5] > 0 ? h[5] : -h[5],
                               .seq_len = h[6], .norm_eps = 1e-5, .rope_theta = 10000.0,
                               /* negative vocab_size: an unshared classifier follows */
                               .tied = h[5] > 0};
    AdStatus st = imp_llama_config(&cfg, &dims, opt, f);
    if (st != AD_OK) return st;

    /* The weights are the model's parameters in another order, then the legacy
     * freq_cis_real and freq_cis_imag tables (seq_len * hs/2 floats each). */
    AdTensorInfo info[AD_P_COUNT];
    size_t n_params = ad_model_param_info(&cfg, info);
    size_t C = (size_t)cfg.d_model, F = (size_t)cfg.d_ff, L = (size_t)cfg.n_layer;
    size_t V = (size_t)cfg.vocab_size, hs = C / (size_t)cfg.n_head;
    size_t kvd = (size_t)cfg.n_kv_head * hs, QKV = C + 2 * kvd;
    size_t n_freq = (size_t)h[6] * hs;
    size_t expect = HEADER_BYTES + 4 * (n_params + n_freq);
    if (f->size != expect)
        return ad_fail(AD_ERR_FORMAT, "%s: the llama2.c header (dim %d, hidden_dim %d, n_layers "
                       "%d, n_heads %d, n_kv_heads %d, vocab_size %d, seq_len %d) implies %zu "
                       "bytes but the file has %zu (%s)", f->path, h[0], h[1], h[2], h[3], h[4],
                       h[5], h[6], expect, f->size,
                       f->size < expect ? "truncated, or a wrong header field"
                                        : "trailing bytes, or a wrong header field");
    st = imp_model_init(m, &cfg, f);
    if (st != AD_OK) return st;

    float *const *t = m->params.t;
    size_t off = HEADER_BYTES;
    int nl = (int)L;
    if (!st) st = read_blocks(f, &off, t[AD_P_WTE], 0, V * C, 1, "token_embedding_table");
    if (!st) st = read_blocks(f, &off, t[AD_P_LN1W], C, C, nl, "rms_att_weight");
    if (!st) st = read_blocks(f, &off, t[AD_P_QKVW], QKV * C, C * C, nl, "wq");
    if (!st) st = read_blocks(f, &off, t[AD_P_QKVW] + C * C, QKV * C, kvd * C, nl, "wk");
    if (!st) st = read_blocks(f, &off, t[AD_P_QKVW] + (C + kvd) * C, QKV * C, kvd * C, nl, "wv");
    if (!st) st = read_blocks(f, &off, t[AD_P_ATTPROJW], C * C, C * C, nl, "wo");
    if (!st) st = read_blocks(f, &off, t[AD_P_LN2W], C, C, nl, "rms_ffn_weight");
    if (!st) st = read_blocks(f, &off, t[AD_P_FCW], 2 * F * C, F * C, nl, "w1");
    if (!st) st = read_blocks(f, &off, t[AD_P_FCPROJW], C * F, C * F, nl, "w2");
    if (!st) st = read_blocks(f, &off, t[AD_P_FCW] + F * C, 2 * F * C, F * C, nl, "w3");
    if (!st) st = read_blocks(f, &off, t[AD_P_LNFW], 0, C, 1, "rms_final_weight");
    off += 4 * n_freq;
    if (!st && !cfg.tied) st = read_blocks(f, &off, t[AD_P_LM_HEAD], 0, V * C, 1, "wcls");
    if (!st) AD_ASSERT(off == f->size);
    if (st != AD_OK) ad_model_free(m);
    return st;
}
