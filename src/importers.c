/* importers.c: the importers' front door: format detection, dispatch to the readers in
 * import_*.c, the helpers they share (file mapping, F16/BF16 conversion, q/k row
 * permutation, bounded field checks) and tokenizer files (llama2.c, llm.c GPT-2).
 * It sits before training and generation, which see only AdModel/AdTokenizer; it writes
 * no files. */
#include "import_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    LLMC_TOKENIZER_MAGIC = 20240328,
    LLMC_MODEL_MAGIC = 20240326,
    LLAMA2C_V1_MAGIC = 0x616b3432 /* "ak42": llama2.c export.py versions 1 and 2 */
};

/* ---------------------------------------------------------------- names */

static const char *const format_names[] = {"auto", "llama2c", "gguf", "llmc", "safetensors"};

const char *ad_import_format_name(AdImportFormat f) {
    return (unsigned)f < 5 ? format_names[f] : "?";
}

int ad_import_format_parse(const char *s) {
    for (int i = 0; s && i < 5; i++)
        if (strcmp(s, format_names[i]) == 0) return i;
    return -1;
}

/* ---------------------------------------------------------------- files */

AdStatus imp_file_open(ImpFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->path = path;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ad_fail(AD_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ad_fail(AD_ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ad_fail(AD_ERR_IO, "%s is not a regular file", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            f->size = 0;
            return ad_fail(AD_ERR_IO, "cannot map %s: %s", path, strerror(e));
        }
        f->data = p;
    }
    close(fd);
    return AD_OK;
}

void imp_file_close(ImpFile *f) {
    if (f && f->data) munmap((void *)f->data, f->size);
    if (f) memset(f, 0, sizeof *f);
}

AdStatus imp_check_field(const ImpFile *f, const char *field, int64_t v, int64_t lo,
                         int64_t hi) {
    if (v < lo || v > hi)
        return ad_fail(AD_ERR_FORMAT, "%s: %s = %lld is outside [%lld, %lld]", f->path, field,
                       (long long)v, (long long)lo, (long long)hi);
    return AD_OK;
}

/* ---------------------------------------------------------------- conversion */

size_t imp_dtype_size(ImpDtype t) {
    AD_ASSERT(imp_dtype_block(t) == 1);
    return imp_dtype_block_bytes(t);
}

const char *imp_dtype_name(ImpDtype t) {
    switch (t) {
    case IMP_F32: return "F32";
    case IMP_F16: return "F16";
    case IMP_BF16: return "BF16";
    case IMP_Q8_0: return "Q8_0";
    case IMP_Q4_0: return "Q4_0";
    case IMP_Q4_K: return "Q4_K";
    case IMP_Q5_K: return "Q5_K";
    case IMP_Q6_K: return "Q6_K";
    }
    return "?";
}

static float bits_to_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

float imp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return bits_to_float(sign);
        /* subnormal half: man * 2^-24; shift the leading one up to bit 10 */
        uint32_t e = 127 - 15 + 1;
        while (!(man & 0x400)) {
            man <<= 1;
            e--;
        }
        return bits_to_float(sign | e << 23 | (man & 0x3ff) << 13);
    }
    if (exp == 31) return bits_to_float(sign | 0x7f800000u | man << 13);
    return bits_to_float(sign | (exp + 127 - 15) << 23 | man << 13);
}

float imp_bf16_to_f32(uint16_t h) { return bits_to_float((uint32_t)h << 16); }

AdStatus imp_convert(float *dst, const unsigned char *src, ImpDtype t, size_t n,
                     const ImpFile *f, const char *tensor) {
    switch (t) {
    case IMP_F32: memcpy(dst, src, n * sizeof(float)); break;
    case IMP_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = imp_f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    case IMP_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = imp_bf16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    default: imp_dequantize(dst, src, t, n); break;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return ad_fail(AD_ERR_FORMAT, "%s: tensor %s holds a non-finite value (%g) at "
                           "element %zu", f->path, tensor, dst[i], i);
    return AD_OK;
}

AdStatus imp_convert_rows_unpermute(float *dst, const unsigned char *src, ImpDtype t,
                                    int n_heads, int hs, int cols, const ImpFile *f,
                                    const char *tensor) {
    size_t row_bytes = imp_dtype_bytes(t, (size_t)cols);
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < hs / 2; j++) {
                size_t from = (size_t)h * hs + (size_t)i * (hs / 2) + j;
                size_t to = (size_t)h * hs + 2 * (size_t)j + i;
                AdStatus st = imp_convert(dst + to * cols, src + from * row_bytes, t,
                                          (size_t)cols, f, tensor);
                if (st != AD_OK) return st;
            }
    return AD_OK;
}

/* ---------------------------------------------------------------- model init */

AdStatus imp_config_finish(AdModelConfig *cfg, int file_seq_len, const AdImportOptions *opt,
                           const ImpFile *f) {
    AdModelConfig probe = *cfg;
    probe.max_seq_len = 1;
    AdStatus st = ad_model_config_validate(&probe);
    if (st != AD_OK)
        return ad_fail_context(AD_ERR_FORMAT, "%s describes a model autodidact cannot hold",
                               f->path);
    cfg->max_seq_len = opt->max_seq_len > 0 ? opt->max_seq_len : file_seq_len;
    st = ad_model_config_validate(cfg);
    if (st != AD_OK) {
        if (opt->max_seq_len > 0)
            return ad_fail_context(AD_ERR_ARG, "%s: import option max_seq_len", f->path);
        return ad_fail_context(AD_ERR_FORMAT, "%s: context length %d from the file (set "
                               "AdImportOptions.max_seq_len to override it)", f->path,
                               file_seq_len);
    }
    return AD_OK;
}

AdStatus imp_llama_config(AdModelConfig *cfg, const ImpLlamaDims *d, const AdImportOptions *opt,
                          const ImpFile *f) {
    AdStatus st = ad_model_config_preset(cfg, "llama");
    if (st != AD_OK) return st;
    cfg->vocab_size = (int)d->vocab_size;
    cfg->d_model = (int)d->d_model;
    cfg->d_ff = (int)d->d_ff;
    cfg->n_layer = (int)d->n_layer;
    cfg->n_head = (int)d->n_head;
    cfg->n_kv_head = (int)d->n_kv_head;
    cfg->norm_eps = (float)d->norm_eps;
    cfg->rope_theta = (float)d->rope_theta;
    cfg->bias = 0;
    cfg->tied = d->tied;
    return imp_config_finish(cfg, (int)d->seq_len, opt, f);
}

AdStatus imp_model_init(AdModel *m, const AdModelConfig *cfg, const ImpFile *f) {
    AdStatus st = ad_model_init(m, cfg, 0);
    if (st != AD_OK) return ad_fail_context(st, "importing %s", f->path);
    return AD_OK;
}

/* ---------------------------------------------------------------- detection */

static int is_llama2c_header(const unsigned char *p, size_t n) {
    if (n < 28) return 0;
    int32_t dim = imp_i32(p), hidden = imp_i32(p + 4), layers = imp_i32(p + 8);
    int32_t heads = imp_i32(p + 12), kv = imp_i32(p + 16), vocab = imp_i32(p + 20);
    int32_t seq = imp_i32(p + 24);
    return dim >= 1 && dim <= IMP_MAX_DIM && hidden >= 1 && hidden <= IMP_MAX_DIM &&
           layers >= 1 && layers <= IMP_MAX_LAYERS && heads >= 1 && heads <= dim &&
           dim % heads == 0 && kv >= 1 && kv <= heads && heads % kv == 0 && vocab != 0 &&
           vocab >= -IMP_MAX_VOCAB && vocab <= IMP_MAX_VOCAB && seq >= 1 && seq <= IMP_MAX_DIM;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Returns the format the bytes of f announce, or AD_IMPORT_AUTO when none. */
static AdImportFormat detect_bytes(const ImpFile *f) {
    const unsigned char *p = f->data;
    size_t n = f->size;
    if (n >= 4 && memcmp(p, "GGUF", 4) == 0) return AD_IMPORT_GGUF;
    if (n >= 4 && imp_i32(p) == LLMC_MODEL_MAGIC) return AD_IMPORT_LLMC;
    if (n >= 9 && p[8] == '{' && imp_u64(p) >= 2 && imp_u64(p) <= n - 8)
        return AD_IMPORT_SAFETENSORS;
    if (n >= 4 && imp_u32(p) == LLAMA2C_V1_MAGIC) return AD_IMPORT_LLAMA2C;
    if (is_llama2c_header(p, n)) return AD_IMPORT_LLAMA2C;
    return AD_IMPORT_AUTO;
}

AdStatus ad_import_detect(const char *path, AdImportFormat *fmt) {
    *fmt = AD_IMPORT_AUTO;
    ImpFile f;
    AdStatus st = imp_file_open(&f, path);
    if (st != AD_OK) return st;
    AdImportFormat got = detect_bytes(&f);
    imp_file_close(&f);
    if (got == AD_IMPORT_AUTO) {
        if (ends_with(path, ".gguf")) got = AD_IMPORT_GGUF;
        else if (ends_with(path, ".safetensors")) got = AD_IMPORT_SAFETENSORS;
    }
    if (got == AD_IMPORT_AUTO)
        return ad_fail(AD_ERR_FORMAT, "%s: not a recognised model file (no GGUF magic, no llm.c "
                       "magic %d, no safetensors JSON header, no plausible llama2.c header)",
                       path, LLMC_MODEL_MAGIC);
    *fmt = got;
    return AD_OK;
}

/* ---------------------------------------------------------------- tokenizer files */

/* llm.c's GPT-2 tokenizer file: 256 int32 header (magic 20240328, version 1 or 2,
 * vocab_size, eot_token in version 2), then per token a uint8 length (> 0) and bytes. */
static AdStatus load_llmc_tokenizer(const ImpFile *f, int model_vocab, AdTokenizer *tok) {
    if (f->size < 1024)
        return ad_fail(AD_ERR_FORMAT, "%s: %zu bytes, too short for the llm.c tokenizer header "
                       "of 1024 bytes", f->path, f->size);
    const unsigned char *p = f->data;
    int32_t version = imp_i32(p + 4), n = imp_i32(p + 8);
    if (version != 1 && version != 2)
        return ad_fail(AD_ERR_FORMAT, "%s: llm.c tokenizer version %d is not 1 or 2", f->path,
                       (int)version);
    AdStatus st = imp_check_field(f, "tokenizer vocab_size", n, 1, model_vocab);
    if (st != AD_OK) return ad_fail_context(st, "the model has %d tokens", model_vocab);
    int32_t eot = version == 2 ? imp_i32(p + 12) : 50256;
    if (eot < 0 || eot >= n) {
        if (version == 2)
            return ad_fail(AD_ERR_FORMAT, "%s: eot_token %d is outside [0, %d)", f->path,
                           (int)eot, (int)n);
        eot = -1;
    }
    if ((f->size - 1024) / 2 < (size_t)n)
        return ad_fail(AD_ERR_FORMAT, "%s: %zu bytes cannot hold %d tokens (truncated file?)",
                       f->path, f->size, (int)n);
    const char **pieces = ad_calloc((size_t)n, sizeof *pieces, "llm.c tokenizer pieces");
    int *lens = ad_calloc((size_t)n, sizeof *lens, "llm.c tokenizer lengths");
    if (!pieces || !lens) {
        st = AD_ERR_NOMEM;
        goto cleanup;
    }
    size_t off = 1024;
    for (int i = 0; i < n; i++) {
        if (off >= f->size || (size_t)p[off] > f->size - off - 1 || p[off] == 0) {
            st = ad_fail(AD_ERR_FORMAT, "%s: token %d at offset %zu is empty or runs past the "
                         "end of the file", f->path, i, off);
            goto cleanup;
        }
        lens[i] = p[off];
        pieces[i] = (const char *)p + off + 1;
        off += 1 + (size_t)lens[i];
    }
    if (off != f->size) {
        st = ad_fail(AD_ERR_FORMAT, "%s: %zu bytes follow the last of %d tokens", f->path,
                     f->size - off, (int)n);
        goto cleanup;
    }
    st = ad_tokenizer_init_from_pieces(tok, AD_TOK_GPT2, n, pieces, lens, NULL, eot, eot, -1, -1);
    if (st != AD_OK) st = ad_fail_context(st, "%s", f->path);
cleanup:
    free(pieces);
    free(lens);
    return st;
}

/* path's directory + "/" + name (malloc'd), or NULL when out of memory. */
static char *beside(const char *path, const char *name) {
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
    char *out = malloc(dir + strlen(name) + 1);
    if (out) {
        memcpy(out, path, dir);
        strcpy(out + dir, name);
    }
    return out;
}

/* A Hugging Face tokenizer.json, with the tokenizer_config.json beside it if any. */
static AdStatus load_hf_json(const char *path, AdTokenizer *tok) {
    char *cfg = beside(path, "tokenizer_config.json");
    if (!cfg) return AD_ERR_NOMEM;
    AdStatus st = ad_tokenizer_load_hf_json(tok, path, cfg);
    free(cfg);
    return st;
}

static AdStatus load_tokenizer_file(const char *path, int model_vocab, AdTokenizer *tok) {
    if (ends_with(path, ".json")) {
        AdStatus st = load_hf_json(path, tok);
        if (st == AD_OK && tok->vocab_size > model_vocab) {
            st = ad_fail(AD_ERR_FORMAT, "%s: %d pieces, more than the model's %d", path,
                         tok->vocab_size, model_vocab);
            ad_tokenizer_free(tok);
        }
        return st;
    }
    ImpFile f;
    AdStatus st = imp_file_open(&f, path);
    if (st != AD_OK) return st;
    if (f.size >= 4 && imp_i32(f.data) == LLMC_TOKENIZER_MAGIC) {
        st = load_llmc_tokenizer(&f, model_vocab, tok);
        imp_file_close(&f);
        return st;
    }
    imp_file_close(&f);
    return ad_tokenizer_load_llama2c(tok, path, model_vocab);
}

/* ---------------------------------------------------------------- entry points */

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

AdStatus ad_import_opts(const char *path, const AdImportOptions *opt, AdModel *m,
                        AdTokenizer *tok) {
    if (m) memset(m, 0, sizeof *m);
    if (tok) memset(tok, 0, sizeof *tok);
    if (!path || !m) return ad_fail(AD_ERR_ARG, "ad_import: path and model must not be NULL");
    if (!host_is_little_endian())
        return ad_fail(AD_ERR_INTERNAL, "importing %s: big-endian hosts are not supported", path);
    AdImportOptions o = {0};
    if (opt) o = *opt;
    if (o.max_seq_len < 0)
        return ad_fail(AD_ERR_ARG, "importing %s: max_seq_len %d is negative", path,
                       o.max_seq_len);
    AdStatus st = AD_OK;
    if (o.format == AD_IMPORT_AUTO) {
        st = ad_import_detect(path, &o.format);
        if (st != AD_OK) return st;
    }
    ImpFile f;
    st = imp_file_open(&f, path);
    if (st != AD_OK) return st;
    AdTokenizer *embedded = o.tokenizer_path ? NULL : tok;
    switch (o.format) {
    case AD_IMPORT_LLAMA2C: st = imp_load_llama2c(&f, &o, m); break;
    case AD_IMPORT_GGUF: st = imp_load_gguf(&f, &o, m, embedded); break;
    case AD_IMPORT_LLMC: st = imp_load_llmc(&f, &o, m); break;
    case AD_IMPORT_SAFETENSORS: st = imp_load_safetensors(&f, &o, m); break;
    default:
        st = ad_fail(AD_ERR_ARG, "importing %s: unknown format %d", path, (int)o.format);
    }
    imp_file_close(&f);
    if (st == AD_OK && tok && o.tokenizer_path)
        st = load_tokenizer_file(o.tokenizer_path, m->cfg.vocab_size, tok);
    if (st == AD_OK && tok && !o.tokenizer_path && o.format == AD_IMPORT_SAFETENSORS) {
        /* the tokenizer.json of the model's directory, when there is one */
        char *tj = beside(path, "tokenizer.json");
        FILE *probe = tj ? fopen(tj, "rb") : NULL;
        if (!tj) st = AD_ERR_NOMEM;
        if (probe) {
            fclose(probe);
            st = load_tokenizer_file(tj, m->cfg.vocab_size, tok);
        }
        free(tj);
    }
    if (st == AD_OK && tok && tok->vocab_size > m->cfg.vocab_size)
        st = ad_fail(AD_ERR_FORMAT, "%s: the vocabulary has %d tokens but the model only %d",
                     path, tok->vocab_size, m->cfg.vocab_size);
    if (st == AD_OK && (st = ad_model_check_finite(m)) != AD_OK)
        ad_fail_context(st, "importing %s: refusing non-finite weights", path);
    if (st != AD_OK) {
        ad_model_free(m);
        if (tok) ad_tokenizer_free(tok);
    }
    return st;
}

AdStatus ad_import_vocab(const char *path, AdTokenizer *tok) {
    memset(tok, 0, sizeof *tok);
    if (!path) return ad_fail(AD_ERR_ARG, "ad_import_vocab: path is NULL");
    if (ends_with(path, ".json")) return load_hf_json(path, tok);
    AdImportFormat fmt;
    AdStatus st = ad_import_detect(path, &fmt);
    if (st != AD_OK) return st;
    if (fmt == AD_IMPORT_GGUF) {
        ImpFile f;
        if ((st = imp_file_open(&f, path)) != AD_OK) return st;
        st = imp_load_gguf_vocab(&f, tok);
        imp_file_close(&f);
        return st;
    }
    if (fmt == AD_IMPORT_SAFETENSORS) { /* the tokenizer.json beside it, without the weights */
        char *tj = beside(path, "tokenizer.json");
        if (!tj) return AD_ERR_NOMEM;
        FILE *probe = fopen(tj, "rb");
        if (probe) {
            fclose(probe);
            st = load_hf_json(tj, tok);
            free(tj);
            return st;
        }
        free(tj);
    }
    AdModel m;
    st = ad_import(path, fmt, NULL, &m, tok);
    if (st != AD_OK) return st;
    ad_model_free(&m);
    if (tok->vocab_size == 0)
        st = ad_fail(AD_ERR_FORMAT, "%s holds no vocabulary", path);
    return st;
}

AdStatus ad_import(const char *path, AdImportFormat fmt, const char *tokenizer_path,
                   AdModel *m, AdTokenizer *tok) {
    AdImportOptions o = {.format = fmt, .tokenizer_path = tokenizer_path};
    return ad_import_opts(path, &o, m, tok);
}
