/* import_gguf.c: reads a GGUF file (versions 2 and 3) of the llama architecture (with
 * Llama 3 RoPE scaling and a sliding window when the file states them) or the qwen2 one
 * (q/k/v biases), with F32, F16, BF16 or quantized (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, expanded
 * to F32) tensors, into a Llama-family AdModel, and its embedded vocabulary into an
 * AdTokenizer; one of the readers behind importers.h. Other tensor types and architectures
 * are refused with a message naming what was found. */
#include "import_internal.h"

#include <math.h>

#include "autodidact/kernels.h" /* ad_rope_freq */

/* Metadata value types of the GGUF specification. */
enum {
    KV_U8 = 0, KV_I8, KV_U16, KV_I16, KV_U32, KV_I32, KV_F32, KV_BOOL, KV_STRING, KV_ARRAY,
    KV_U64, KV_I64, KV_F64, KV_N_TYPES
};
static const char *const kv_type_names[KV_N_TYPES] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
static const size_t kv_type_size[KV_N_TYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* ggml tensor types this reader converts; any other is named in the error. */
enum {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q8_0 = 8, GGML_Q4_K = 12, GGML_Q5_K = 13,
    GGML_Q6_K = 14, GGML_BF16 = 30
};
static const char *const ggml_type_names[] = {
    "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
    "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",
    "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16"};

enum {
    GGUF_MAX_DIMS = 4,
    GGUF_MAX_NAME = 256,      /* tensor names (the specification says 64) */
    GGUF_MAX_DEPTH = 4,       /* nesting of arrays in metadata */
    GGUF_MAX_ALIGN = 1 << 20,
    GGUF_MAX_PIECE = 1 << 16, /* bytes of one vocabulary token */
    GGUF_MIN_KV_BYTES = 8 + 4 + 1,           /* key length, type, smallest value */
    GGUF_MIN_TENSOR_BYTES = 8 + 4 + 8 + 4 + 8 /* name length, n_dims, one dim, type, offset */
};

typedef struct {
    const char *name; /* key bytes in the mapped file, not NUL-terminated */
    size_t len;
    uint32_t type;
    size_t val;       /* file offset of the value */
} GgufKv;

typedef struct {
    const char *name; /* in the mapped file, not NUL-terminated */
    size_t len;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length (fastest dimension) */
    uint32_t type;
    uint64_t offset;  /* from the start of the data section */
    int used;
} GgufTensor;

typedef struct {
    const ImpFile *f;
    size_t off;               /* parse cursor */
    uint64_t n_kv, n_tensors;
    GgufKv *kv;               /* (n_kv) sorted by key */
    GgufTensor *tensors;      /* (n_tensors) sorted by name */
    uint64_t *offsets;        /* (n_tensors) the tensors' offsets, ascending */
    size_t data_off;          /* start of the data section */
} Gguf;

static void gguf_free(Gguf *g) {
    free(g->kv);
    free(g->tensors);
    free(g->offsets);
    memset(g, 0, sizeof *g);
}

/* ---------------------------------------------------------------- parsing */

static AdStatus need(const Gguf *g, size_t n, const char *what) {
    if (n > g->f->size - g->off)
        return ad_fail(AD_ERR_FORMAT, "%s: truncated GGUF file: %s at offset %zu needs %zu "
                       "bytes, %zu remain", g->f->path, what, g->off, n, g->f->size - g->off);
    return AD_OK;
}

static AdStatus rd_u32(Gguf *g, uint32_t *v, const char *what) {
    AdStatus st = need(g, 4, what);
    if (st != AD_OK) return st;
    *v = imp_u32(g->f->data + g->off);
    g->off += 4;
    return AD_OK;
}

static AdStatus rd_u64(Gguf *g, uint64_t *v, const char *what) {
    AdStatus st = need(g, 8, what);
    if (st != AD_OK) return st;
    *v = imp_u64(g->f->data + g->off);
    g->off += 8;
    return AD_OK;
}

/* A GGUF string: uint64 length, then the bytes (no terminator). */
static AdStatus rd_str(Gguf *g, const char **s, size_t *len, const char *what) {
    uint64_t n;
    AdStatus st = rd_u64(g, &n, what);
    if (st != AD_OK) return st;
    if (n > g->f->size - g->off)
        return ad_fail(AD_ERR_FORMAT, "%s: %s at offset %zu has string length %llu, beyond the "
                       "end of the file (%zu bytes remain)", g->f->path, what, g->off - 8,
                       (unsigned long long)n, g->f->size - g->off);
    *s = (const char *)g->f->data + g->off;
    *len = (size_t)n;
    g->off += (size_t)n;
    return AD_OK;
}

/* Steps over one metadata value of `type`, checking every length against the file. */
static AdStatus skip_value(Gguf *g, uint32_t type, int depth, const char *what) {
    if (type >= KV_N_TYPES)
        return ad_fail(AD_ERR_FORMAT, "%s: %s has unknown value type %u", g->f->path, what,
                       (unsigned)type);
    if (type == KV_STRING) {
        const char *s;
        size_t n;
        return rd_str(g, &s, &n, what);
    }
    if (type != KV_ARRAY) {
        AdStatus st = need(g, kv_type_size[type], what);
        if (st == AD_OK) g->off += kv_type_size[type];
        return st;
    }
    if (depth >= GGUF_MAX_DEPTH)
        return ad_fail(AD_ERR_FORMAT, "%s: %s nests arrays deeper than %d", g->f->path, what,
                       GGUF_MAX_DEPTH);
    uint32_t et;
    uint64_t count;
    AdStatus st = rd_u32(g, &et, what);
    if (st == AD_OK) st = rd_u64(g, &count, what);
    if (st != AD_OK) return st;
    if (et >= KV_N_TYPES)
        return ad_fail(AD_ERR_FORMAT, "%s: %s is an array of unknown type %u", g->f->path, what,
                       (unsigned)et);
    size_t remain = g->f->size - g->off;
    size_t min_elem = kv_type_size[et] ? kv_type_size[et] : 8; /* strings, arrays: >= 8 */
    if (count > remain / min_elem)
        return ad_fail(AD_ERR_FORMAT, "%s: %s is an array of %llu %s values, which cannot fit "
                       "in the %zu bytes left in the file", g->f->path, what,
                       (unsigned long long)count, kv_type_names[et], remain);
    if (kv_type_size[et]) {
        g->off += (size_t)count * kv_type_size[et];
        return AD_OK;
    }
    for (uint64_t i = 0; i < count && st == AD_OK; i++) st = skip_value(g, et, depth + 1, what);
    return st;
}

static int cmp_name(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}
static int cmp_kv(const void *x, const void *y) {
    const GgufKv *a = x, *b = y;
    return cmp_name(a->name, a->len, b->name, b->len);
}
static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}
static int cmp_tensor(const void *x, const void *y) {
    const GgufTensor *a = x, *b = y;
    return cmp_name(a->name, a->len, b->name, b->len);
}

/* A printable, bounded form of a name for messages. */
#define NAME_ARG(p, n) (int)((n) < 80 ? (n) : 80), (p)

static const GgufKv *find_kv(const Gguf *g, const char *key) {
    GgufKv probe = {.name = key, .len = strlen(key)};
    return g->n_kv ? bsearch(&probe, g->kv, (size_t)g->n_kv, sizeof *g->kv, cmp_kv) : NULL;
}

static GgufTensor *find_tensor(const Gguf *g, const char *name) {
    GgufTensor probe = {.name = name, .len = strlen(name)};
    return g->n_tensors
               ? bsearch(&probe, g->tensors, (size_t)g->n_tensors, sizeof *g->tensors, cmp_tensor)
               : NULL;
}

static AdStatus parse_header(Gguf *g) {
    const ImpFile *f = g->f;
    uint32_t version;
    AdStatus st = need(g, 4, "the magic");
    if (st != AD_OK) return st;
    if (memcmp(f->data, "GGUF", 4) != 0)
        return ad_fail(AD_ERR_FORMAT, "%s: no GGUF magic (the file starts with bytes %02x %02x "
                       "%02x %02x)", f->path, f->data[0], f->data[1], f->data[2], f->data[3]);
    g->off = 4;
    st = rd_u32(g, &version, "the version");
    if (st != AD_OK) return st;
    if (version != 2 && version != 3)
        return ad_fail(AD_ERR_FORMAT, "%s: GGUF version %u is not supported (2 and 3 are)",
                       f->path, (unsigned)version);
    if ((st = rd_u64(g, &g->n_tensors, "the tensor count")) != AD_OK) return st;
    if ((st = rd_u64(g, &g->n_kv, "the metadata count")) != AD_OK) return st;
    size_t remain = f->size - g->off;
    if (g->n_kv > remain / GGUF_MIN_KV_BYTES)
        return ad_fail(AD_ERR_FORMAT, "%s: metadata count %llu cannot fit in the %zu bytes left "
                       "in the file", f->path, (unsigned long long)g->n_kv, remain);
    if (g->n_tensors > remain / GGUF_MIN_TENSOR_BYTES)
        return ad_fail(AD_ERR_FORMAT, "%s: tensor count %llu cannot fit in the %zu bytes left in "
                       "the file", f->path, (unsigned long long)g->n_tensors, remain);

    g->kv = ad_calloc((size_t)g->n_kv, sizeof *g->kv, "GGUF metadata index");
    g->tensors = ad_calloc((size_t)g->n_tensors, sizeof *g->tensors, "GGUF tensor index");
    if (!g->kv || !g->tensors) return AD_ERR_NOMEM;
    char what[160];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        GgufKv *kv = &g->kv[i];
        snprintf(what, sizeof what, "the key of metadata entry %llu", (unsigned long long)i);
        if ((st = rd_str(g, &kv->name, &kv->len, what)) != AD_OK) return st;
        snprintf(what, sizeof what, "metadata key %.*s", NAME_ARG(kv->name, kv->len));
        if ((st = rd_u32(g, &kv->type, what)) != AD_OK) return st;
        kv->val = g->off;
        if ((st = skip_value(g, kv->type, 0, what)) != AD_OK) return st;
    }
    qsort(g->kv, (size_t)g->n_kv, sizeof *g->kv, cmp_kv);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (cmp_kv(&g->kv[i - 1], &g->kv[i]) == 0)
            return ad_fail(AD_ERR_FORMAT, "%s: metadata key %.*s appears twice", f->path,
                           NAME_ARG(g->kv[i].name, g->kv[i].len));

    uint64_t align = 32;
    const GgufKv *akv = find_kv(g, "general.alignment");
    if (akv) {
        if (akv->type != KV_U32)
            return ad_fail(AD_ERR_FORMAT, "%s: general.alignment has type %s, expected u32",
                           f->path, kv_type_names[akv->type]);
        align = imp_u32(f->data + akv->val);
        if (align == 0 || align > GGUF_MAX_ALIGN || (align & (align - 1)))
            return ad_fail(AD_ERR_FORMAT, "%s: general.alignment = %llu is not a power of two in "
                           "[1, %d]", f->path, (unsigned long long)align, GGUF_MAX_ALIGN);
    }

    for (uint64_t i = 0; i < g->n_tensors; i++) {
        GgufTensor *t = &g->tensors[i];
        snprintf(what, sizeof what, "the name of tensor info %llu", (unsigned long long)i);
        if ((st = rd_str(g, &t->name, &t->len, what)) != AD_OK) return st;
        if (t->len > GGUF_MAX_NAME)
            return ad_fail(AD_ERR_FORMAT, "%s: tensor info %llu has a name of %zu bytes (at most "
                           "%d)", f->path, (unsigned long long)i, t->len, GGUF_MAX_NAME);
        snprintf(what, sizeof what, "tensor info %.*s", NAME_ARG(t->name, t->len));
        if ((st = rd_u32(g, &t->n_dims, what)) != AD_OK) return st;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
            return ad_fail(AD_ERR_FORMAT, "%s: tensor %.*s has %u dimensions (1 to %d allowed)",
                           f->path, NAME_ARG(t->name, t->len), (unsigned)t->n_dims,
                           GGUF_MAX_DIMS);
        uint64_t nelem = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
            t->ne[d] = 1;
            if (d < t->n_dims && (st = rd_u64(g, &t->ne[d], what)) != AD_OK) return st;
            if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 62) / nelem)
                return ad_fail(AD_ERR_FORMAT, "%s: tensor %.*s has dimension %u = %llu (zero, or "
                               "too many elements)", f->path, NAME_ARG(t->name, t->len),
                               (unsigned)d, (unsigned long long)t->ne[d]);
            nelem *= t->ne[d];
        }
        if ((st = rd_u32(g, &t->type, what)) != AD_OK) return st;
        if ((st = rd_u64(g, &t->offset, what)) != AD_OK) return st;
        if (t->offset % align)
            return ad_fail(AD_ERR_FORMAT, "%s: tensor %.*s has offset %llu, not a multiple of the "
                           "alignment %llu", f->path, NAME_ARG(t->name, t->len),
                           (unsigned long long)t->offset, (unsigned long long)align);
    }
    qsort(g->tensors, (size_t)g->n_tensors, sizeof *g->tensors, cmp_tensor);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (cmp_tensor(&g->tensors[i - 1], &g->tensors[i]) == 0)
            return ad_fail(AD_ERR_FORMAT, "%s: tensor %.*s appears twice", f->path,
                           NAME_ARG(g->tensors[i].name, g->tensors[i].len));
    size_t pad = (size_t)((align - g->off % align) % align);
    if (g->n_tensors == 0 && pad > f->size - g->off) pad = f->size - g->off; /* vocab only */
    if (pad > f->size - g->off)
        return ad_fail(AD_ERR_FORMAT, "%s: truncated GGUF file: the data section would start at "
                       "offset %zu, past the end (%zu bytes)", f->path, g->off + pad, f->size);
    g->data_off = g->off + pad;
    g->offsets = ad_calloc((size_t)g->n_tensors + 1, sizeof *g->offsets, "GGUF tensor offsets");
    if (!g->offsets) return AD_ERR_NOMEM;
    for (uint64_t i = 0; i < g->n_tensors; i++) g->offsets[i] = g->tensors[i].offset;
    qsort(g->offsets, (size_t)g->n_tensors, sizeof *g->offsets, cmp_u64);
    return AD_OK;
}

/* ---------------------------------------------------------------- metadata values */

/* Reads an integer-typed key into *v; absent keys give dflt, or an error if required. */
static AdStatus kv_int(const Gguf *g, const char *key, int required, int64_t dflt, int64_t lo,
                       int64_t hi, int64_t *v) {
    const GgufKv *kv = find_kv(g, key);
    *v = dflt;
    if (!kv) {
        if (required)
            return ad_fail(AD_ERR_FORMAT, "%s: metadata key %s is missing", g->f->path, key);
        return AD_OK;
    }
    const unsigned char *p = g->f->data + kv->val;
    switch (kv->type) {
    case KV_U8: *v = p[0]; break;
    case KV_I8: *v = (int8_t)p[0]; break;
    case KV_U16: *v = (uint16_t)(p[0] | p[1] << 8); break;
    case KV_I16: *v = (int16_t)(uint16_t)(p[0] | p[1] << 8); break;
    case KV_U32: *v = imp_u32(p); break;
    case KV_I32: *v = imp_i32(p); break;
    case KV_U64: {
        uint64_t u = imp_u64(p);
        *v = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        break;
    }
    case KV_I64: {
        uint64_t u = imp_u64(p);
        memcpy(v, &u, sizeof *v);
        break;
    }
    default:
        return ad_fail(AD_ERR_FORMAT, "%s: metadata key %s has type %s, expected an integer",
                       g->f->path, key, kv_type_names[kv->type]);
    }
    return imp_check_field(g->f, key, *v, lo, hi);
}

static AdStatus kv_float(const Gguf *g, const char *key, double dflt, double *v) {
    const GgufKv *kv = find_kv(g, key);
    *v = dflt;
    if (!kv) return AD_OK;
    const unsigned char *p = g->f->data + kv->val;
    if (kv->type == KV_F32) {
        uint32_t u = imp_u32(p);
        float x;
        memcpy(&x, &u, sizeof x);
        *v = x;
    } else if (kv->type == KV_F64) {
        uint64_t u = imp_u64(p);
        memcpy(v, &u, sizeof *v);
    } else {
        return ad_fail(AD_ERR_FORMAT, "%s: metadata key %s has type %s, expected f32 or f64",
                       g->f->path, key, kv_type_names[kv->type]);
    }
    if (!isfinite(*v) || *v <= 0)
        return ad_fail(AD_ERR_FORMAT, "%s: metadata key %s = %g is not a positive number",
                       g->f->path, key, *v);
    return AD_OK;
}

/* Finds a string key; *s = NULL when absent. */
static AdStatus kv_str(const Gguf *g, const char *key, const char **s, size_t *len) {
    const GgufKv *kv = find_kv(g, key);
    *s = NULL;
    *len = 0;
    if (!kv) return AD_OK;
    if (kv->type != KV_STRING)
        return ad_fail(AD_ERR_FORMAT, "%s: metadata key %s has type %s, expected string",
                       g->f->path, key, kv_type_names[kv->type]);
    *len = (size_t)imp_u64(g->f->data + kv->val);
    *s = (const char *)g->f->data + kv->val + 8;
    return AD_OK;
}

static int str_is(const char *s, size_t len, const char *lit) {
    return s && len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* ---------------------------------------------------------------- tensors */

static const char *ggml_type_name(uint32_t t) {
    return t < sizeof ggml_type_names / sizeof ggml_type_names[0] ? ggml_type_names[t]
                                                                   : "unknown";
}

/* Bytes from tensor t's offset to the next tensor's offset, or to the end of the data
 * section: the most t may occupy. */
static uint64_t tensor_room(const Gguf *g, const GgufTensor *t) {
    uint64_t end = g->f->size - g->data_off;
    size_t lo = 0, hi = (size_t)g->n_tensors; /* first offset > t->offset */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->offsets[mid] <= t->offset) lo = mid + 1;
        else hi = mid;
    }
    if (lo < g->n_tensors && g->offsets[lo] < end) end = g->offsets[lo];
    return end - (t->offset < end ? t->offset : end);
}

/* Finds tensor `name` and checks that its type is one this reader converts (F32, F16,
 * BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K), that its shape is (ne0) or (ne0, ne1) (ne1 = 0:
 * a vector; ne[0] is the row length) with rows a whole number of quantization blocks,
 * and that its bytes lie inside the data section, before the next tensor's offset.
 * *t = NULL (and AD_OK) if it is absent and optional. */
static AdStatus get_tensor(const Gguf *g, const char *name, int required, int64_t ne0,
                           int64_t ne1, GgufTensor **t, ImpDtype *dt) {
    const char *path = g->f->path;
    *t = find_tensor(g, name);
    if (!*t) {
        if (required) return ad_fail(AD_ERR_FORMAT, "%s: tensor %s is missing", path, name);
        return AD_OK;
    }
    const GgufTensor *x = *t;
    switch (x->type) {
    case GGML_F32: *dt = IMP_F32; break;
    case GGML_F16: *dt = IMP_F16; break;
    case GGML_BF16: *dt = IMP_BF16; break;
    case GGML_Q8_0: *dt = IMP_Q8_0; break;
    case GGML_Q4_0: *dt = IMP_Q4_0; break;
    case GGML_Q4_K: *dt = IMP_Q4_K; break;
    case GGML_Q5_K: *dt = IMP_Q5_K; break;
    case GGML_Q6_K: *dt = IMP_Q6_K; break;
    default:
        return ad_fail(AD_ERR_FORMAT, "%s: tensor %s has type %s (%u); F32, F16, BF16, Q8_0, "
                       "Q4_0, Q4_K, Q5_K and Q6_K are read", path, name,
                       ggml_type_name(x->type), (unsigned)x->type);
    }
    uint64_t want[GGUF_MAX_DIMS] = {(uint64_t)ne0, ne1 ? (uint64_t)ne1 : 1, 1, 1};
    if (memcmp(want, x->ne, sizeof want) != 0)
        return ad_fail(AD_ERR_FORMAT, "%s: tensor %s has shape [%llu, %llu, %llu, %llu] "
                       "(fastest first), expected [%lld, %lld, 1, 1]", path, name,
                       (unsigned long long)x->ne[0], (unsigned long long)x->ne[1],
                       (unsigned long long)x->ne[2], (unsigned long long)x->ne[3],
                       (long long)ne0, (long long)(ne1 ? ne1 : 1));
    int block = imp_dtype_block(*dt);
    if (x->ne[0] % (uint64_t)block)
        return ad_fail(AD_ERR_FORMAT, "%s: tensor %s of type %s has rows of %llu values, not a "
                       "multiple of the type's block of %d", path, name, imp_dtype_name(*dt),
                       (unsigned long long)x->ne[0], block);
    uint64_t nbytes = imp_dtype_bytes(*dt, (size_t)(x->ne[0] * x->ne[1]));
    uint64_t data_size = g->f->size - g->data_off;
    if (x->offset > data_size || nbytes > data_size - x->offset)
        return ad_fail(AD_ERR_FORMAT, "%s: tensor %s (offset %llu, %llu bytes) runs past the end "
                       "of the file's data section (%llu bytes)", path, name,
                       (unsigned long long)x->offset, (unsigned long long)nbytes,
                       (unsigned long long)data_size);
    uint64_t room = tensor_room(g, x);
    if (nbytes > room)
        return ad_fail(AD_ERR_FORMAT, "%s: tensor %s (%s, [%llu, %llu]) needs %llu bytes but the "
                       "next tensor starts %llu bytes after its offset %llu", path, name,
                       imp_dtype_name(*dt), (unsigned long long)x->ne[0],
                       (unsigned long long)x->ne[1], (unsigned long long)nbytes,
                       (unsigned long long)room, (unsigned long long)x->offset);
    return AD_OK;
}

static const unsigned char *tensor_data(const Gguf *g, const GgufTensor *t) {
    return g->f->data + g->data_off + t->offset;
}

/* One tensor to read and where it goes: `at` floats into the parameter block. */
typedef struct {
    char name[64];
    GgufTensor *t;
    ImpDtype dt;
    size_t at, n;
    int heads; /* > 0: rows of `heads` heads in rotate-half order, permuted to interleaved */
} Job;

/* ---------------------------------------------------------------- vocabulary */

/* A boolean key (GGUF bool, or an integer 0/1); absent keys give dflt. */
static AdStatus kv_bool(const Gguf *g, const char *key, int dflt, int *v) {
    const GgufKv *kv = find_kv(g, key);
    *v = dflt;
    if (!kv) return AD_OK;
    if (kv->type == KV_BOOL) {
        unsigned char b = g->f->data[kv->val];
        if (b > 1)
            return ad_fail(AD_ERR_FORMAT, "%s: metadata key %s = %u is not a boolean",
                           g->f->path, key, b);
        *v = b;
        return AD_OK;
    }
    int64_t x;
    AdStatus st = kv_int(g, key, 0, dflt, 0, 1, &x);
    *v = (int)x;
    return st;
}

/* An array key of n elements of one type; *p = its first element, NULL when absent. */
static AdStatus kv_array(const Gguf *g, const char *key, uint32_t type, uint64_t n,
                         const unsigned char **p) {
    const GgufKv *kv = find_kv(g, key);
    *p = NULL;
    if (!kv) return AD_OK;
    const unsigned char *q = g->f->data + kv->val;
    if (kv->type != KV_ARRAY || imp_u32(q) != type || (n && imp_u64(q + 4) != n))
        return ad_fail(AD_ERR_FORMAT, "%s: %s is not an array of %llu %s", g->f->path, key,
                       (unsigned long long)n, kv_type_names[type]);
    *p = q + 12;
    return AD_OK;
}

/* Gives tok the merges of tokenizer.ggml.merges: strings "a b" (split at the first space
 * after the first byte, as llama.cpp), both pieces of the vocabulary. */
static AdStatus load_merges(const Gguf *g, AdTokenizer *tok) {
    const ImpFile *f = g->f;
    const unsigned char *p;
    AdStatus st = kv_array(g, "tokenizer.ggml.merges", KV_STRING, 0, &p);
    if (st != AD_OK || !p) return st;
    uint64_t n = imp_u64(p - 8);
    if ((st = imp_check_field(f, "tokenizer.ggml.merges count",
                              (int64_t)(n > INT32_MAX ? INT32_MAX : n), 0, IMP_MAX_VOCAB)))
        return st;
    int *pairs = ad_malloc(2 * (size_t)(n ? n : 1) * sizeof *pairs, "GGUF merges");
    if (!pairs) return AD_ERR_NOMEM;
    size_t off = (size_t)(p - f->data);
    for (uint64_t r = 0; r < n && st == AD_OK; r++) {
        size_t len = (size_t)imp_u64(f->data + off); /* bounds checked by parse_header */
        const char *s = (const char *)f->data + off + 8;
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        int a = sp ? ad_tokenizer_piece_id(tok, s, (int)(sp - s)) : -1;
        int b = sp ? ad_tokenizer_piece_id(tok, sp + 1, (int)(len - (size_t)(sp + 1 - s))) : -1;
        if (a < 0 || b < 0)
            st = ad_fail(AD_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] = \"%.*s\" is not two "
                         "pieces of the vocabulary", f->path, (unsigned long long)r,
                         NAME_ARG(s, len > 200 ? 200 : len));
        pairs[2 * r] = a;
        pairs[2 * r + 1] = b;
        off += 8 + len;
    }
    if (st == AD_OK && (st = ad_tokenizer_set_merges(tok, (int)n, pairs)) != AD_OK)
        st = ad_fail_context(st, "%s: tokenizer.ggml.merges", f->path);
    free(pairs);
    return st;
}

/* Reads tokenizer.ggml.* into tok: tokens, scores, token_type, merges, pre, the special
 * ids and the add_* flags. SPM ("llama") pieces get U+2581 replaced by ' ' as in
 * llama2.c's tokenizer files; GPT-2 pieces are kept as stored. An unknown
 * tokenizer.ggml.pre is an error naming it; a missing one is "default" (llama.cpp's
 * choice). No tokens key: no vocabulary (tok stays zeroed). */
static AdStatus load_vocab(const Gguf *g, int model_vocab, AdTokenizer *tok) {
    const ImpFile *f = g->f;
    const GgufKv *tk = find_kv(g, "tokenizer.ggml.tokens");
    if (!tk) {
        ad_log(AD_LOG_INFO, "%s has no tokenizer.ggml.tokens: no vocabulary imported", f->path);
        return AD_OK;
    }
    const char *model;
    size_t model_len;
    AdStatus st = kv_str(g, "tokenizer.ggml.model", &model, &model_len);
    if (st != AD_OK) return st;
    AdTokKind kind;
    if (str_is(model, model_len, "llama")) kind = AD_TOK_SPM;
    else if (str_is(model, model_len, "gpt2")) kind = AD_TOK_GPT2;
    else if (!model)
        return ad_fail(AD_ERR_FORMAT, "%s: tokenizer.ggml.model is missing", f->path);
    else
        return ad_fail(AD_ERR_FORMAT, "%s: tokenizer.ggml.model = \"%.*s\" is not supported "
                       "(llama or gpt2)", f->path, NAME_ARG(model, model_len));
    const unsigned char *p = f->data + tk->val;
    if (tk->type != KV_ARRAY || imp_u32(p) != KV_STRING)
        return ad_fail(AD_ERR_FORMAT, "%s: tokenizer.ggml.tokens is not an array of strings",
                       f->path);
    uint64_t n = imp_u64(p + 4);
    if ((st = imp_check_field(f, "tokenizer.ggml.tokens count", (int64_t)(n > INT32_MAX ? INT32_MAX : n),
                              1, model_vocab)) != AD_OK)
        return ad_fail_context(st, "the model's token_embd has %d rows", model_vocab);
    const unsigned char *scores, *types;
    if ((st = kv_array(g, "tokenizer.ggml.scores", KV_F32, n, &scores)) ||
        (st = kv_array(g, "tokenizer.ggml.token_type", KV_I32, n, &types)))
        return st;
    AdPreTok pre = AD_PRE_GPT2;
    if (kind == AD_TOK_GPT2) {
        const char *pre_s;
        size_t pre_len;
        if ((st = kv_str(g, "tokenizer.ggml.pre", &pre_s, &pre_len)) != AD_OK) return st;
        char name[64];
        snprintf(name, sizeof name, "%.*s", NAME_ARG(pre_s ? pre_s : "default",
                                                     pre_s ? pre_len : 7));
        int k = ad_pretok_parse(name);
        if (k < 0 || pre_len >= sizeof name)
            return ad_fail(AD_ERR_FORMAT, "%s: tokenizer.ggml.pre = \"%s\" is not a supported "
                           "pre-tokenizer (gpt-2, llama-bpe, qwen2, deepseek-llm, deepseek-coder, "
                           "falcon, mpt, starcoder, refact, smollm, default)", f->path, name);
        pre = (AdPreTok)k;
    }
    int ids[5];
    const char *id_keys[5] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                              "tokenizer.ggml.padding_token_id",
                              "tokenizer.ggml.seperator_token_id",
                              "tokenizer.ggml.unknown_token_id"};
    const int dflt[5] = {kind == AD_TOK_SPM && n > 1 ? 1 : -1,
                         kind == AD_TOK_SPM && n > 2 ? 2 : -1, -1, -1,
                         kind == AD_TOK_SPM ? 0 : -1};
    for (int k = 0; k < 5; k++) {
        int64_t v;
        const char *key = id_keys[k];
        if (k == 3 && !find_kv(g, key)) key = "tokenizer.ggml.separator_token_id";
        st = kv_int(g, key, 0, dflt[k], -1, UINT32_MAX, &v);
        if (st != AD_OK) return st;
        if (v == -1 || v == UINT32_MAX) v = -1;
        else if (v >= (int64_t)n)
            return ad_fail(AD_ERR_FORMAT, "%s: %s = %lld is not a token id (there are %llu)",
                           f->path, key, (long long)v, (unsigned long long)n);
        ids[k] = (int)v;
    }
    int add_bos, add_eos, add_space;
    if ((st = kv_bool(g, "tokenizer.ggml.add_bos_token", kind == AD_TOK_SPM, &add_bos)) ||
        (st = kv_bool(g, "tokenizer.ggml.add_eos_token", 0, &add_eos)) ||
        (st = kv_bool(g, "tokenizer.ggml.add_space_prefix", kind == AD_TOK_SPM, &add_space)))
        return st;

    /* Copy the pieces (the file's bytes were bounds-checked when the header was parsed). */
    size_t total = 0, off = tk->val + 12;
    for (uint64_t i = 0; i < n; i++) {
        AD_ASSERT(off + 8 <= f->size);
        size_t len = (size_t)imp_u64(f->data + off);
        AD_ASSERT(len <= f->size - off - 8);
        total += len;
        off += 8 + len;
    }
    char *bytes = ad_malloc(total + 1, "GGUF vocabulary bytes");
    const char **pieces = ad_calloc((size_t)n, sizeof *pieces, "GGUF vocabulary pieces");
    int *lens = ad_calloc((size_t)n, sizeof *lens, "GGUF vocabulary lengths");
    float *sc = ad_calloc((size_t)n, sizeof *sc, "GGUF vocabulary scores");
    unsigned char *ty = ad_calloc((size_t)n, 1, "GGUF vocabulary token types");
    if (!bytes || !pieces || !lens || !sc || !ty) {
        st = AD_ERR_NOMEM;
        goto cleanup;
    }
    size_t used = 0;
    off = tk->val + 12;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = (size_t)imp_u64(f->data + off);
        if (len > GGUF_MAX_PIECE) {
            st = ad_fail(AD_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%llu] is %zu bytes long (at "
                         "most %d)", f->path, (unsigned long long)i, len, GGUF_MAX_PIECE);
            goto cleanup;
        }
        const unsigned char *s = f->data + off + 8;
        char *out = bytes + used;
        size_t k = 0;
        for (size_t j = 0; j < len; j++) {
            if (kind == AD_TOK_SPM && j + 2 < len && s[j] == 0xE2 && s[j + 1] == 0x96 &&
                s[j + 2] == 0x81) {
                out[k++] = ' '; /* U+2581, sentencepiece's visible space */
                j += 2;
            } else {
                out[k++] = (char)s[j];
            }
        }
        pieces[i] = out;
        lens[i] = (int)k;
        used += k;
        off += 8 + len;
        if (scores) {
            uint32_t u = imp_u32(scores + 4 * i);
            memcpy(&sc[i], &u, sizeof u);
        }
        ty[i] = AD_TT_NORMAL;
        if (types) {
            int32_t v = imp_i32(types + 4 * i);
            if (v < 0 || v > AD_TT_BYTE) {
                st = ad_fail(AD_ERR_FORMAT, "%s: tokenizer.ggml.token_type[%llu] = %d is not a "
                             "token type (0..6)", f->path, (unsigned long long)i, (int)v);
                goto cleanup;
            }
            ty[i] = (unsigned char)v;
        }
    }
    const AdTokSpec spec = {.kind = kind, .vocab_size = (int)n, .pieces = pieces,
                            .piece_len = lens, .scores = sc, .types = ty, .bos_id = ids[0],
                            .eos_id = ids[1], .pad_id = ids[2], .sep_id = ids[3],
                            .unk_id = ids[4], .pre = pre, .add_bos = add_bos,
                            .add_eos = add_eos, .add_space_prefix = add_space};
    st = ad_tokenizer_init_spec(tok, &spec);
    if (st != AD_OK) st = ad_fail_context(st, "%s: tokenizer.ggml.tokens", f->path);
    else if (kind == AD_TOK_GPT2 && (st = load_merges(g, tok)) != AD_OK) ad_tokenizer_free(tok);
cleanup:
    free(bytes);
    free(pieces);
    free(lens);
    free(sc);
    free(ty);
    return st;
}

AdStatus imp_load_gguf_vocab(const ImpFile *f, AdTokenizer *tok) {
    Gguf g = {.f = f};
    memset(tok, 0, sizeof *tok);
    AdStatus st = parse_header(&g);
    if (st == AD_OK) st = load_vocab(&g, IMP_MAX_VOCAB, tok);
    if (st == AD_OK && tok->vocab_size == 0)
        st = ad_fail(AD_ERR_FORMAT, "%s holds no vocabulary (no tokenizer.ggml.tokens)", f->path);
    gguf_free(&g);
    return st;
}

/* ---------------------------------------------------------------- the model */

/* Llama 3 RoPE scaling from the metadata ({arch}.rope.scaling.type = "llama3" with
 * .factor, .low_freq_factor, .high_freq_factor, .original_context_length) or from the
 * tensor rope_freqs.weight that llama.cpp's converter writes for Llama 3.1+ (one divisor
 * per frequency pair): its largest divisor is the factor, the others must be what
 * Llama 3 scaling gives with low 1, high 4 and original context 8192 (or the keys' values),
 * or the file is refused naming the first pair that differs. */
static AdStatus gguf_rope_scaling(Gguf *g, const char *pfx, AdModelConfig *cfg) {
    const char *path = g->f->path, *type;
    size_t type_len;
    char k[5][96];
    snprintf(k[0], sizeof k[0], "%s.rope.scaling.type", pfx);
    AdStatus st = kv_str(g, k[0], &type, &type_len);
    if (st != AD_OK) return st;
    GgufTensor *rf = find_tensor(g, "rope_freqs.weight");
    int llama3 = str_is(type, type_len, "llama3");
    if (type && !llama3 && !str_is(type, type_len, "none"))
        return ad_fail(AD_ERR_FORMAT, "%s: %s = \"%.*s\": only llama3 RoPE scaling is supported",
                       path, k[0], NAME_ARG(type, type_len));
    if (!llama3 && !rf) return AD_OK;
    int hs = cfg->d_model / cfg->n_head, half = hs / 2;
    ImpDtype dt;
    float *freqs = NULL;
    if (rf) {
        if ((st = get_tensor(g, "rope_freqs.weight", 1, half, 0, &rf, &dt)) != AD_OK) return st;
        if (dt != IMP_F32)
            return ad_fail(AD_ERR_FORMAT, "%s: tensor rope_freqs.weight has type %s, expected F32",
                           path, imp_dtype_name(dt));
        freqs = ad_calloc((size_t)half, sizeof *freqs, "rope_freqs.weight");
        if (!freqs) return AD_ERR_NOMEM;
        st = imp_convert(freqs, g->f->data + g->data_off + rf->offset, IMP_F32, (size_t)half,
                         g->f, "rope_freqs.weight");
        if (st != AD_OK) goto done;
        rf->used = 1;
    }
    double dflt_factor = 0;
    for (int j = 0; freqs && j < half; j++) dflt_factor = fmax(dflt_factor, freqs[j]);
    double factor, low, high;
    int64_t orig;
    snprintf(k[1], sizeof k[1], "%s.rope.scaling.factor", pfx);
    snprintf(k[2], sizeof k[2], "%s.rope.scaling.low_freq_factor", pfx);
    snprintf(k[3], sizeof k[3], "%s.rope.scaling.high_freq_factor", pfx);
    snprintf(k[4], sizeof k[4], "%s.rope.scaling.original_context_length", pfx);
    if ((st = kv_float(g, k[1], dflt_factor, &factor)) || (st = kv_float(g, k[2], 1.0, &low)) ||
        (st = kv_float(g, k[3], 4.0, &high)) || (st = kv_int(g, k[4], 0, 8192, 1, INT32_MAX, &orig)))
        goto done;
    if (!(factor > 0)) {
        st = ad_fail(AD_ERR_FORMAT, "%s: %s = \"llama3\" without %s", path, k[0], k[1]);
        goto done;
    }
    cfg->rope_scaling = AD_ROPE_SCALING_LLAMA3;
    cfg->rope_factor = (float)factor, cfg->rope_low_freq_factor = (float)low;
    cfg->rope_high_freq_factor = (float)high, cfg->rope_original_max_pos = (int)orig;
    if ((st = ad_model_config_validate(cfg)) != AD_OK) {
        st = ad_fail_context(AD_ERR_FORMAT, "%s: llama3 RoPE scaling", path);
        goto done;
    }
    AdRopeScaling sc = {cfg->rope_factor, cfg->rope_low_freq_factor, cfg->rope_high_freq_factor,
                        cfg->rope_original_max_pos};
    for (int j = 0; freqs && j < half; j++) {
        double want = ad_rope_freq(j, hs, cfg->rope_theta, NULL) /
                      ad_rope_freq(j, hs, cfg->rope_theta, &sc);
        if (!(fabs(freqs[j] - want) <= 1e-3 * want)) {
            st = ad_fail(AD_ERR_FORMAT, "%s: rope_freqs.weight[%d] = %g, but llama3 scaling with "
                           "factor %g, low_freq_factor %g, high_freq_factor %g and original "
                           "context %lld gives %g: other RoPE frequency factors are not supported",
                         path, j, freqs[j], factor, low, high, (long long)orig, want);
            break;
        }
    }
done:
    free(freqs);
    return st;
}

AdStatus imp_load_gguf(const ImpFile *f, const AdImportOptions *opt, AdModel *m,
                       AdTokenizer *tok) {
    Gguf g = {.f = f};
    Job *jobs = NULL;
    AdStatus st = parse_header(&g);
    if (st != AD_OK) goto cleanup;

    /* llama, or qwen2: the same tensors plus q/k/v biases, with q/k rows in rotate-half
     * (NeoX) order, permuted here to interleaved pairs */
    const char *arch;
    size_t arch_len;
    if ((st = kv_str(&g, "general.architecture", &arch, &arch_len)) != AD_OK) goto cleanup;
    int qwen2 = str_is(arch, arch_len, "qwen2");
    if (!str_is(arch, arch_len, "llama") && !qwen2) {
        st = arch ? ad_fail(AD_ERR_FORMAT, "%s: general.architecture = \"%.*s\"; only llama and "
                            "qwen2 are read", f->path, NAME_ARG(arch, arch_len))
                  : ad_fail(AD_ERR_FORMAT, "%s: metadata key general.architecture is missing",
                            f->path);
        goto cleanup;
    }
    const char *pfx = qwen2 ? "qwen2" : "llama";
    enum { K_EMB, K_FF, K_BLOCKS, K_HEADS, K_KVHEADS, K_CTX, K_EXPERTS, K_EPS, K_BASE, K_VOCAB,
           K_ROPEDIM, K_WINDOW, N_KEYS };
    static const char *const key_names[N_KEYS] = {
        "embedding_length", "feed_forward_length", "block_count", "attention.head_count",
        "attention.head_count_kv", "context_length", "expert_count",
        "attention.layer_norm_rms_epsilon", "rope.freq_base", "vocab_size",
        "rope.dimension_count", "attention.sliding_window"};
    char key[N_KEYS][80];
    for (int i = 0; i < N_KEYS; i++) snprintf(key[i], sizeof key[i], "%s.%s", pfx, key_names[i]);
    int64_t C, F, L, H, Hkv, ctx, rope_dims, experts, window;
    double eps, theta;
    if ((st = kv_int(&g, key[K_EMB], 1, 0, 1, IMP_MAX_DIM, &C)) ||
        (st = kv_int(&g, key[K_FF], 1, 0, 1, IMP_MAX_DIM, &F)) ||
        (st = kv_int(&g, key[K_BLOCKS], 1, 0, 1, IMP_MAX_LAYERS, &L)) ||
        (st = kv_int(&g, key[K_HEADS], 1, 0, 1, IMP_MAX_DIM, &H)) ||
        (st = kv_int(&g, key[K_KVHEADS], 0, H, 1, IMP_MAX_DIM, &Hkv)) ||
        (st = kv_int(&g, key[K_CTX], 1, 0, 1, INT32_MAX, &ctx)) ||
        (st = kv_int(&g, key[K_EXPERTS], 0, 0, 0, INT32_MAX, &experts)) ||
        (st = kv_int(&g, key[K_WINDOW], 0, 0, 0, 1 << 24, &window)) ||
        (st = kv_float(&g, key[K_EPS], qwen2 ? 1e-6 : 1e-5, &eps)) ||
        (st = kv_float(&g, key[K_BASE], 10000.0, &theta)))
        goto cleanup;
    if (experts > 0) {
        st = ad_fail(AD_ERR_FORMAT, "%s: %s = %lld: mixture-of-experts models are not supported",
                     f->path, key[K_EXPERTS], (long long)experts);
        goto cleanup;
    }

    /* The vocabulary size comes from the embedding's shape (C, V). */
    GgufTensor *emb, *out;
    ImpDtype emb_dt, out_dt = IMP_F32;
    GgufTensor *e0 = find_tensor(&g, "token_embd.weight");
    if (!e0) {
        st = ad_fail(AD_ERR_FORMAT, "%s: tensor token_embd.weight is missing", f->path);
        goto cleanup;
    }
    int64_t V = e0->ne[1] > (uint64_t)IMP_MAX_VOCAB ? IMP_MAX_VOCAB + 1 : (int64_t)e0->ne[1];
    if ((st = imp_check_field(f, "token_embd.weight rows (vocabulary size)", V, 1,
                              IMP_MAX_VOCAB)) != AD_OK)
        goto cleanup;
    int64_t V_key;
    if ((st = kv_int(&g, key[K_VOCAB], 0, V, V, V, &V_key)) != AD_OK) goto cleanup;

    AdModelConfig cfg;
    const ImpLlamaDims dims = {.vocab_size = V, .d_model = C, .d_ff = F, .n_layer = L, .n_head = H,
                               .n_kv_head = Hkv, .seq_len = ctx, .norm_eps = eps,
                               .rope_theta = theta, .tied = 1};
    if ((st = imp_llama_config(&cfg, &dims, opt, f)) != AD_OK) goto cleanup;
    int64_t hs = C / H, kvd = Hkv * hs;
    cfg.qkv_bias = qwen2;
    cfg.sliding_window = (int)window;
    if ((st = gguf_rope_scaling(&g, pfx, &cfg)) != AD_OK) goto cleanup;

    /* Check every tensor before allocating the model. */
    if ((st = get_tensor(&g, "token_embd.weight", 1, C, V, &emb, &emb_dt)) ||
        (st = get_tensor(&g, "output.weight", 0, C, V, &out, &out_dt)))
        goto cleanup;
    /* A stored classifier byte-identical to the embedding is the tied one. */
    cfg.tied = !out || (out->type == emb->type &&
                        memcmp(tensor_data(&g, out), tensor_data(&g, emb),
                               imp_dtype_bytes(emb_dt, (size_t)(C * V))) == 0);
    int n_jobs = 0, max_jobs = 3 + 12 * (int)L;
    jobs = ad_calloc((size_t)max_jobs, sizeof *jobs, "GGUF tensor list");
    if (!jobs) {
        st = AD_ERR_NOMEM;
        goto cleanup;
    }
    AdTensorInfo info[AD_P_COUNT];
    ad_model_param_info(&cfg, info);
    size_t base[AD_P_COUNT], acc = 0; /* where each parameter tensor starts in the block */
    for (int i = 0; i < AD_P_COUNT; i++) {
        base[i] = acc;
        acc += info[i].size;
    }
    size_t c = (size_t)C, ff = (size_t)F, kv = (size_t)kvd, QKV = c + 2 * kv;
    /* qwen2: q and k rows (weights and biases) are in rotate-half order */
    int qh = qwen2 ? (int)H : 0, kh = qwen2 ? (int)Hkv : 0;
    const struct {
        const char *name;
        int id;
        size_t offset, stride;
        int64_t ne0, ne1;
        int heads;
    } plan[] = {
        {"token_embd.weight", AD_P_WTE, 0, 0, C, V, 0},
        {"output_norm.weight", AD_P_LNFW, 0, 0, C, 0, 0},
        {"output.weight", AD_P_LM_HEAD, 0, 0, C, V, 0},
        /* per layer ("%d" = layer); GGUF (ne0, ne1) = (in, out) is the model's (out, in) */
        {"blk.%d.attn_norm.weight", AD_P_LN1W, 0, c, C, 0, 0},
        {"blk.%d.attn_q.weight", AD_P_QKVW, 0, QKV * c, C, C, qh},
        {"blk.%d.attn_k.weight", AD_P_QKVW, c * c, QKV * c, C, kvd, kh},
        {"blk.%d.attn_v.weight", AD_P_QKVW, (c + kv) * c, QKV * c, C, kvd, 0},
        {"blk.%d.attn_output.weight", AD_P_ATTPROJW, 0, c * c, C, C, 0},
        {"blk.%d.ffn_norm.weight", AD_P_LN2W, 0, c, C, 0, 0},
        {"blk.%d.ffn_gate.weight", AD_P_FCW, 0, 2 * ff * c, C, F, 0},
        {"blk.%d.ffn_up.weight", AD_P_FCW, ff * c, 2 * ff * c, C, F, 0},
        {"blk.%d.ffn_down.weight", AD_P_FCPROJW, 0, c * ff, F, C, 0},
        /* qwen2 only: q, k, v biases, (QKV) per layer */
        {"blk.%d.attn_q.bias", AD_P_QKVB, 0, QKV, C, 0, qh},
        {"blk.%d.attn_k.bias", AD_P_QKVB, c, QKV, kvd, 0, kh},
        {"blk.%d.attn_v.bias", AD_P_QKVB, c + kv, QKV, kvd, 0, 0},
    };
    enum { N_GLOBAL = 3, N_PLAN = sizeof plan / sizeof plan[0] };
    for (int k = 0; k < N_PLAN; k++) {
        if (plan[k].id == AD_P_LM_HEAD && cfg.tied) continue;
        if (plan[k].id == AD_P_QKVB && !cfg.qkv_bias) continue;
        for (int l = 0; l < (k < N_GLOBAL ? 1 : (int)L); l++) {
            AD_ASSERT(n_jobs < max_jobs);
            Job *j = &jobs[n_jobs++];
            snprintf(j->name, sizeof j->name, plan[k].name, l);
            st = get_tensor(&g, j->name, 1, plan[k].ne0, plan[k].ne1, &j->t, &j->dt);
            if (st != AD_OK) goto cleanup;
            j->at = base[plan[k].id] + (size_t)l * plan[k].stride + plan[k].offset;
            j->n = (size_t)plan[k].ne0 * (size_t)(plan[k].ne1 ? plan[k].ne1 : 1);
            j->heads = plan[k].heads;
            if (j->heads && !plan[k].ne1 && imp_dtype_block(j->dt) > 1) {
                st = ad_fail(AD_ERR_FORMAT, "%s: tensor %s has type %s; a bias is read as F32, "
                             "F16 or BF16", f->path, j->name, imp_dtype_name(j->dt));
                goto cleanup;
            }
        }
    }
    if ((st = kv_int(&g, key[K_ROPEDIM], 0, hs, hs, hs, &rope_dims)) != AD_OK) {
        st = ad_fail_context(st, "partial rotary embeddings are not supported");
        goto cleanup;
    }

    if ((st = imp_model_init(m, &cfg, f)) != AD_OK) goto cleanup;
    for (int i = 0; i < n_jobs && st == AD_OK; i++) {
        Job *j = &jobs[i];
        AD_ASSERT(j->at + j->n <= m->n_params);
        if (j->heads) /* (heads * hs, cols) rows; a bias is one column */
            st = imp_convert_rows_unpermute(m->params_mem + j->at, tensor_data(&g, j->t), j->dt,
                                            j->heads, (int)hs, (int)(j->n / ((size_t)j->heads * hs)),
                                            f, j->name);
        else
            st = imp_convert(m->params_mem + j->at, tensor_data(&g, j->t), j->dt, j->n, f, j->name);
        j->t->used = 1;
    }
    if (st != AD_OK) goto cleanup;
    if (out) out->used = 1;
    uint64_t unused = 0;
    const GgufTensor *first_unused = NULL;
    for (uint64_t i = 0; i < g.n_tensors; i++)
        if (!g.tensors[i].used && !unused++) first_unused = &g.tensors[i];
    if (unused)
        ad_log(AD_LOG_WARN, "%s: %llu tensors were not read (e.g. %.*s)", f->path,
               (unsigned long long)unused, NAME_ARG(first_unused->name, first_unused->len));
    if (tok) st = load_vocab(&g, cfg.vocab_size, tok);

cleanup:
    free(jobs);
    gguf_free(&g);
    if (st != AD_OK) ad_model_free(m);
    return st;
}
