/* import_llmc.c: reads an llm.c GPT-2 checkpoint (train_gpt2.c's layout: 256 int32
 * header, then the parameters in fp32 for version 3 or bf16 for version 5) into a
 * GPT-2-family AdModel; one of the readers behind importers.h. It drops the padded
 * vocabulary rows and reads no optimizer state or tokenizer. */
#include "import_internal.h"

enum { HEADER_BYTES = 256 * 4, LLMC_MAGIC = 20240326 };

AdStatus imp_load_llmc(const ImpFile *f, const AdImportOptions *opt, AdModel *m) {
    if (f->size < HEADER_BYTES)
        return ad_fail(AD_ERR_FORMAT, "%s: %zu bytes, too short for the llm.c header of 256 "
                       "int32", f->path, f->size);
    const unsigned char *p = f->data;
    if (imp_i32(p) != LLMC_MAGIC)
        return ad_fail(AD_ERR_FORMAT, "%s: magic %d is not llm.c's GPT-2 magic %d", f->path,
                       (int)imp_i32(p), LLMC_MAGIC);
    int32_t version = imp_i32(p + 4);
    ImpDtype dt;
    if (version == 3) dt = IMP_F32;
    else if (version == 5) dt = IMP_BF16;
    else
        return ad_fail(AD_ERR_FORMAT, "%s: llm.c checkpoint version %d is not supported (3: "
                       "fp32, 5: bf16; older versions lack the padded vocabulary size)",
                       f->path, (int)version);
    int32_t maxT = imp_i32(p + 8), V = imp_i32(p + 12), L = imp_i32(p + 16);
    int32_t H = imp_i32(p + 20), C = imp_i32(p + 24), Vp = imp_i32(p + 28);
    AdStatus st = AD_OK;
    if (!st) st = imp_check_field(f, "header field max_seq_len", maxT, 1, IMP_MAX_DIM);
    if (!st) st = imp_check_field(f, "header field vocab_size", V, 1, IMP_MAX_VOCAB);
    if (!st) st = imp_check_field(f, "header field num_layers", L, 1, IMP_MAX_LAYERS);
    if (!st) st = imp_check_field(f, "header field num_heads", H, 1, IMP_MAX_DIM);
    if (!st) st = imp_check_field(f, "header field channels", C, 1, IMP_MAX_DIM / 4);
    if (!st) st = imp_check_field(f, "header field padded_vocab_size", Vp, V, IMP_MAX_VOCAB);
    if (st != AD_OK) return st;
    if (opt->max_seq_len > maxT)
        return ad_fail(AD_ERR_ARG, "%s: import option max_seq_len %d exceeds the %d learned "
                       "positions of the checkpoint", f->path, opt->max_seq_len, (int)maxT);

    AdModelConfig cfg;
    st = ad_model_config_preset(&cfg, "gpt2");
    if (st != AD_OK) return st;
    cfg.vocab_size = V;
    cfg.n_layer = L;
    cfg.n_head = H;
    cfg.n_kv_head = H;
    cfg.d_model = C;
    cfg.d_ff = 4 * C;
    cfg.norm_eps = 1e-5f;
    cfg.tied = 1;
    st = imp_config_finish(&cfg, maxT, opt, f);
    if (st != AD_OK) return st;

    /* llm.c's tensors, in file order; all but wte and wpe match the model's layout. */
    size_t c = (size_t)C, l = (size_t)L;
    const struct { const char *name; int id; size_t n; } tensors[] = {
        {"wte", AD_P_WTE, (size_t)Vp * c},      {"wpe", AD_P_WPE, (size_t)maxT * c},
        {"ln1w", AD_P_LN1W, l * c},             {"ln1b", AD_P_LN1B, l * c},
        {"qkvw", AD_P_QKVW, l * 3 * c * c},     {"qkvb", AD_P_QKVB, l * 3 * c},
        {"attprojw", AD_P_ATTPROJW, l * c * c}, {"attprojb", AD_P_ATTPROJB, l * c},
        {"ln2w", AD_P_LN2W, l * c},             {"ln2b", AD_P_LN2B, l * c},
        {"fcw", AD_P_FCW, l * 4 * c * c},       {"fcb", AD_P_FCB, l * 4 * c},
        {"fcprojw", AD_P_FCPROJW, l * c * 4 * c}, {"fcprojb", AD_P_FCPROJB, l * c},
        {"lnfw", AD_P_LNFW, c},                 {"lnfb", AD_P_LNFB, c},
    };
    enum { N_TENSORS = sizeof tensors / sizeof tensors[0] };
    size_t total = 0;
    for (int i = 0; i < N_TENSORS; i++) total += tensors[i].n;
    size_t esz = imp_dtype_size(dt), expect = HEADER_BYTES + total * esz;
    if (f->size != expect)
        return ad_fail(AD_ERR_FORMAT, "%s: the llm.c header (max_seq_len %d, vocab_size %d, "
                       "num_layers %d, num_heads %d, channels %d, padded_vocab_size %d, %s) "
                       "implies %zu bytes but the file has %zu (%s)", f->path, (int)maxT, (int)V,
                       (int)L, (int)H, (int)C, (int)Vp, imp_dtype_name(dt), expect, f->size,
                       f->size < expect ? "truncated, or a wrong header field"
                                        : "trailing bytes, or a wrong header field");
    st = imp_model_init(m, &cfg, f);
    if (st != AD_OK) return st;

    size_t off = HEADER_BYTES;
    for (int i = 0; i < N_TENSORS && st == AD_OK; i++) {
        int id = tensors[i].id;
        /* wte keeps its first V of Vp rows, wpe its first max_seq_len of maxT rows */
        AD_ASSERT(m->info[id].size <= tensors[i].n);
        st = imp_convert(m->params.t[id], f->data + off, dt, m->info[id].size, f, tensors[i].name);
        off += tensors[i].n * esz;
    }
    if (st != AD_OK) ad_model_free(m);
    return st;
}
