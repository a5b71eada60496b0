/* import_safetensors.c: reads a Hugging Face LlamaForCausalLM, MistralForCausalLM or
 * Qwen2ForCausalLM checkpoint (one .safetensors file with F32, F16 or BF16 tensors, plus
 * its config.json: Llama 3 RoPE scaling, Mistral's sliding window, Qwen2's q/k/v biases)
 * into a Llama-family AdModel, permuting q/k rows from rotate-half back to interleaved
 * pairs; one of the readers behind importers.h. Sharded checkpoints, other RoPE scalings,
 * other biased projections and tokenizer.json are out of scope. */
#include "import_internal.h"

#include <math.h>

#include <cjson/cJSON.h>

enum {
    ST_MAX_HEADER = 100 << 20, /* the safetensors format's own limit on the JSON header */
    ST_MAX_CONFIG = 16 << 20,  /* bound on config.json */
    ST_MAX_DIMS = 8
};

typedef struct {
    const char *name;
    const cJSON *item;
    int used;
} StEntry;

typedef struct {
    const ImpFile *f;
    cJSON *header;
    StEntry *entries; /* (n) the header's tensors, sorted by name */
    size_t n;
    size_t data_off;  /* 8 + header length */
} St;

static int cmp_entry(const void *x, const void *y) {
    return strcmp(((const StEntry *)x)->name, ((const StEntry *)y)->name);
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_uint(const cJSON *n, uint64_t *v) {
    if (!cJSON_IsNumber(n)) return 0;
    double d = n->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return 0;
    *v = (uint64_t)d;
    return 1;
}

/* ---------------------------------------------------------------- header */

static AdStatus parse_header(St *s) {
    const ImpFile *f = s->f;
    if (f->size < 8)
        return ad_fail(AD_ERR_FORMAT, "%s: %zu bytes, too short for the safetensors header "
                       "length", f->path, f->size);
    uint64_t n = imp_u64(f->data);
    if (n < 2 || n > f->size - 8 || n > ST_MAX_HEADER)
        return ad_fail(AD_ERR_FORMAT, "%s: safetensors header length %llu is not within the "
                       "file's %zu bytes (or above %d)", f->path, (unsigned long long)n,
                       f->size - 8, ST_MAX_HEADER);
    s->data_off = 8 + (size_t)n;
    s->header = cJSON_ParseWithLength((const char *)f->data + 8, (size_t)n);
    if (!s->header || !cJSON_IsObject(s->header))
        return ad_fail(AD_ERR_FORMAT, "%s: the safetensors header is not a JSON object",
                       f->path);
    for (const cJSON *c = s->header->child; c; c = c->next) s->n++;
    s->entries = ad_calloc(s->n, sizeof *s->entries, "safetensors tensor index");
    if (!s->entries) return AD_ERR_NOMEM;
    size_t i = 0;
    for (const cJSON *c = s->header->child; c; c = c->next) {
        if (!c->string || !cJSON_IsObject(c))
            return ad_fail(AD_ERR_FORMAT, "%s: header entry %s is not an object", f->path,
                           c->string ? c->string : "(unnamed)");
        s->entries[i++] = (StEntry){c->string, c, 0};
    }
    qsort(s->entries, s->n, sizeof *s->entries, cmp_entry);
    for (i = 1; i < s->n; i++)
        if (strcmp(s->entries[i - 1].name, s->entries[i].name) == 0)
            return ad_fail(AD_ERR_FORMAT, "%s: tensor %s appears twice in the header", f->path,
                           s->entries[i].name);
    return AD_OK;
}

static StEntry *find_entry(const St *s, const char *name) {
    StEntry probe = {.name = name};
    return s->n ? bsearch(&probe, s->entries, s->n, sizeof *s->entries, cmp_entry) : NULL;
}

/* Finds tensor `name`, checks dtype (F32, F16, BF16), shape (rows, cols) (cols = 0: a
 * vector of rows) and data_offsets against the data section; *data = NULL (AD_OK) when
 * absent and optional. */
static AdStatus get_tensor(St *s, const char *name, int required, int64_t rows, int64_t cols,
                           const unsigned char **data, ImpDtype *dt) {
    const char *path = s->f->path;
    StEntry *e = find_entry(s, name);
    *data = NULL;
    if (!e) {
        if (required) return ad_fail(AD_ERR_FORMAT, "%s: tensor %s is missing", path, name);
        return AD_OK;
    }
    const char *dtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e->item, "dtype"));
    if (!dtype) return ad_fail(AD_ERR_FORMAT, "%s: tensor %s has no dtype string", path, name);
    if (strcmp(dtype, "F32") == 0) *dt = IMP_F32;
    else if (strcmp(dtype, "F16") == 0) *dt = IMP_F16;
    else if (strcmp(dtype, "BF16") == 0) *dt = IMP_BF16;
    else
        return ad_fail(AD_ERR_FORMAT, "%s: tensor %s has dtype %.16s; only F32, F16 and BF16 are "
                       "read", path, name, dtype);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e->item, "shape");
    int ndim = cJSON_GetArraySize(shape);
    int want_ndim = cols ? 2 : 1;
    const int64_t want[2] = {rows, cols};
    int ok = cJSON_IsArray(shape) && ndim == want_ndim;
    for (int d = 0; ok && d < ndim; d++) {
        uint64_t v;
        ok = json_uint(cJSON_GetArrayItem(shape, d), &v) && v == (uint64_t)want[d];
    }
    if (!ok) {
        char got[160] = "not an array of sizes";
        if (cJSON_IsArray(shape) && ndim <= ST_MAX_DIMS) {
            size_t k = 0;
            got[0] = 0;
            for (int d = 0; d < ndim && k < sizeof got; d++) {
                const cJSON *x = cJSON_GetArrayItem(shape, d);
                k += (size_t)snprintf(got + k, sizeof got - k, "%s%.0f", d ? ", " : "",
                                      cJSON_IsNumber(x) ? x->valuedouble : -1.0);
            }
        }
        return cols ? ad_fail(AD_ERR_FORMAT, "%s: tensor %s has shape [%s], expected [%lld, %lld]",
                              path, name, got, (long long)rows, (long long)cols)
                    : ad_fail(AD_ERR_FORMAT, "%s: tensor %s has shape [%s], expected [%lld]",
                              path, name, got, (long long)rows);
    }
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e->item, "data_offsets");
    uint64_t begin, end;
    uint64_t data_size = s->f->size - s->data_off;
    uint64_t nbytes = (uint64_t)rows * (uint64_t)(cols ? cols : 1) * imp_dtype_size(*dt);
    if (cJSON_GetArraySize(offs) != 2 || !json_uint(cJSON_GetArrayItem(offs, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &end))
        return ad_fail(AD_ERR_FORMAT, "%s: tensor %s has no [begin, end] data_offsets", path,
                       name);
    if (begin > end || end > data_size || end - begin != nbytes)
        return ad_fail(AD_ERR_FORMAT, "%s: tensor %s has data_offsets [%llu, %llu]; its shape "
                       "and dtype need %llu bytes inside a data section of %llu", path, name,
                       (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)nbytes, (unsigned long long)data_size);
    e->used = 1;
    *data = s->f->data + s->data_off + begin;
    return AD_OK;
}

/* ---------------------------------------------------------------- config.json */

static int cmp_str_ptr(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* cJSON keeps duplicate keys and finds the first: refuse them. */
static AdStatus check_unique_keys(const cJSON *obj, const char *path) {
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next) n++;
    const char **keys = ad_calloc(n, sizeof *keys, "config.json keys");
    if (!keys) return AD_ERR_NOMEM;
    n = 0;
    for (const cJSON *c = obj->child; c; c = c->next) keys[n++] = c->string ? c->string : "";
    qsort(keys, n, sizeof *keys, cmp_str_ptr);
    AdStatus st = AD_OK;
    for (size_t i = 1; i < n && st == AD_OK; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            st = ad_fail(AD_ERR_FORMAT, "%s: key %.80s appears twice", path, keys[i]);
    free(keys);
    return st;
}

static AdStatus read_config(const char *path, cJSON **root) {
    *root = NULL;
    ImpFile cf;
    AdStatus st = imp_file_open(&cf, path);
    if (st != AD_OK) return st;
    if (cf.size > ST_MAX_CONFIG)
        st = ad_fail(AD_ERR_FORMAT, "%s is larger than %d bytes", path, ST_MAX_CONFIG);
    else if (!(*root = cJSON_ParseWithLength((const char *)cf.data, cf.size)) ||
             !cJSON_IsObject(*root))
        st = ad_fail(AD_ERR_FORMAT, "%s is not a valid JSON object", path);
    if (st == AD_OK) st = check_unique_keys(*root, path);
    imp_file_close(&cf);
    if (st != AD_OK) {
        cJSON_Delete(*root);
        *root = NULL;
    }
    return st;
}

static AdStatus cfg_int(const cJSON *root, const char *path, const char *key, int required,
                        int64_t dflt, int64_t lo, int64_t hi, int64_t *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, key);
    *v = dflt;
    if (!x || cJSON_IsNull(x)) {
        if (required) return ad_fail(AD_ERR_FORMAT, "%s: key %s is missing", path, key);
        return AD_OK;
    }
    uint64_t u;
    if (!json_uint(x, &u))
        return ad_fail(AD_ERR_FORMAT, "%s: key %s is not a non-negative whole number", path, key);
    if ((int64_t)u < lo || (int64_t)u > hi)
        return ad_fail(AD_ERR_FORMAT, "%s: %s = %llu is outside [%lld, %lld]", path, key,
                       (unsigned long long)u, (long long)lo, (long long)hi);
    *v = (int64_t)u;
    return AD_OK;
}

static AdStatus cfg_num(const cJSON *root, const char *path, const char *key, double dflt,
                        double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, key);
    *v = dflt;
    if (!x || cJSON_IsNull(x)) return AD_OK;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble <= 0)
        return ad_fail(AD_ERR_FORMAT, "%s: key %s is not a positive number", path, key);
    *v = x->valuedouble;
    return AD_OK;
}

/* What config.json says beyond the sizes: the family and its switches. */
typedef struct {
    int qwen2;           /* Qwen2ForCausalLM: q/k/v biases */
    int sliding_window;  /* Mistral's sliding_window (0: none) */
    int llama3;          /* rope_scaling {rope_type: llama3} */
    double factor, low, high;
    int64_t orig;
} StArch;

/* Reads the architecture from config.json: Llama (with Llama 3 RoPE scaling when
 * rope_scaling says rope_type "llama3"), Mistral (its sliding_window) or Qwen2 (biases
 * on q, k, v). Refuses what the model cannot represent, naming the key. */
static AdStatus read_arch(const cJSON *root, const char *path, StArch *a) {
    memset(a, 0, sizeof *a);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "model_type"));
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    static const char *const types[3] = {"llama", "mistral", "qwen2"};
    static const char *const classes[3] = {"LlamaForCausalLM", "MistralForCausalLM",
                                           "Qwen2ForCausalLM"};
    int kind = -1;
    for (int i = 0; i < 3; i++)
        if (type && strcmp(type, types[i]) == 0) kind = i;
    for (const cJSON *x = cJSON_IsArray(archs) ? archs->child : NULL; x && kind < 0; x = x->next)
        for (int i = 0; i < 3; i++)
            if (cJSON_IsString(x) && strcmp(x->valuestring, classes[i]) == 0) kind = i;
    if (kind < 0)
        return ad_fail(AD_ERR_FORMAT, "%s: model_type is \"%.40s\" and architectures lists none "
                       "of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM: only Llama, "
                       "Mistral and Qwen2 checkpoints are read", path, type ? type : "(none)");
    a->qwen2 = kind == 2;
    const char *act = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "hidden_act"));
    if (act && strcmp(act, "silu") != 0)
        return ad_fail(AD_ERR_FORMAT, "%s: hidden_act = \"%.40s\"; only silu (SwiGLU) is "
                       "supported", path, act);
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (scaling && !cJSON_IsNull(scaling)) {
        const char *rt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(scaling, "rope_type"));
        if (!rt) rt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(scaling, "type"));
        if (!cJSON_IsObject(scaling) || !rt || strcmp(rt, "llama3") != 0)
            return ad_fail(AD_ERR_FORMAT, "%s: rope_scaling has rope_type \"%.40s\"; only llama3 "
                           "RoPE scaling is supported", path, rt ? rt : "(none)");
        AdStatus st;
        a->llama3 = 1;
        if ((st = cfg_num(scaling, path, "factor", 0, &a->factor)) ||
            (st = cfg_num(scaling, path, "low_freq_factor", 1.0, &a->low)) ||
            (st = cfg_num(scaling, path, "high_freq_factor", 4.0, &a->high)) ||
            (st = cfg_int(scaling, path, "original_max_position_embeddings", 1, 0, 1, INT32_MAX,
                          &a->orig)))
            return ad_fail_context(st, "%s: rope_scaling", path);
        if (!(a->factor > 0))
            return ad_fail(AD_ERR_FORMAT, "%s: rope_scaling (llama3) has no factor", path);
    }
    /* Mistral: sliding_window (null: none). Qwen2 carries one too, used only with
     * use_sliding_window, and then only above max_window_layers: refused. */
    if (a->qwen2 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_sliding_window")))
        return ad_fail(AD_ERR_FORMAT, "%s: use_sliding_window = true (a window on some layers "
                       "only) is not supported", path);
    if (kind == 1) {
        int64_t w;
        AdStatus st = cfg_int(root, path, "sliding_window", 0, 0, 0, 1 << 24, &w);
        if (st != AD_OK) return st;
        a->sliding_window = (int)w;
    }
    const char *flags[2] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, flags[i])))
            return ad_fail(AD_ERR_FORMAT, "%s: %s = true; biased projections are not supported "
                           "(Qwen2's q/k/v biases are)", path, flags[i]);
    return AD_OK;
}

/* config.json beside the checkpoint, in a new string. */
static char *sibling_config_path(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0;
    char *p = ad_malloc(dir + sizeof "config.json", "config.json path");
    if (p) {
        memcpy(p, path, dir);
        memcpy(p + dir, "config.json", sizeof "config.json");
    }
    return p;
}

/* ---------------------------------------------------------------- the model */

AdStatus imp_load_safetensors(const ImpFile *f, const AdImportOptions *opt, AdModel *m) {
    St s = {.f = f};
    cJSON *conf = NULL;
    char *conf_path = opt->config_path ? NULL : sibling_config_path(f->path);
    const char *cp = opt->config_path ? opt->config_path : conf_path;
    AdStatus st = cp ? AD_OK : AD_ERR_NOMEM;
    if (st == AD_OK) st = parse_header(&s);
    if (st == AD_OK) st = read_config(cp, &conf);
    StArch arch;
    if (st == AD_OK) st = read_arch(conf, cp, &arch);
    int64_t C = 0, F = 0, L = 0, H = 0, Hkv = 0, V = 0, ctx = 0, head_dim = 0;
    double eps = 0, theta = 0;
    if (st != AD_OK ||
        ((st = cfg_int(conf, cp, "hidden_size", 1, 0, 1, IMP_MAX_DIM, &C)) ||
         (st = cfg_int(conf, cp, "intermediate_size", 1, 0, 1, IMP_MAX_DIM, &F)) ||
         (st = cfg_int(conf, cp, "num_hidden_layers", 1, 0, 1, IMP_MAX_LAYERS, &L)) ||
         (st = cfg_int(conf, cp, "num_attention_heads", 1, 0, 1, IMP_MAX_DIM, &H)) ||
         (st = cfg_int(conf, cp, "num_key_value_heads", 0, H, 1, IMP_MAX_DIM, &Hkv)) ||
         (st = cfg_int(conf, cp, "vocab_size", 1, 0, 1, IMP_MAX_VOCAB, &V)) ||
         (st = cfg_int(conf, cp, "max_position_embeddings", 0, 2048, 1, INT32_MAX, &ctx)) ||
         (st = cfg_num(conf, cp, "rms_norm_eps", 1e-6, &eps)) ||
         (st = cfg_num(conf, cp, "rope_theta", 10000.0, &theta))))
        goto cleanup;
    AdModelConfig cfg;
    const ImpLlamaDims dims = {.vocab_size = V, .d_model = C, .d_ff = F, .n_layer = L, .n_head = H,
                               .n_kv_head = Hkv, .seq_len = ctx, .norm_eps = eps,
                               .rope_theta = theta, .tied = 1};
    if ((st = imp_llama_config(&cfg, &dims, opt, f)) != AD_OK) goto cleanup;
    int64_t hs = C / H, kvd = Hkv * hs;
    if ((st = cfg_int(conf, cp, "head_dim", 0, hs, hs, hs, &head_dim)) != AD_OK) goto cleanup;
    cfg.qkv_bias = arch.qwen2;
    cfg.sliding_window = arch.sliding_window;
    if (arch.llama3) {
        cfg.rope_scaling = AD_ROPE_SCALING_LLAMA3;
        cfg.rope_factor = (float)arch.factor, cfg.rope_low_freq_factor = (float)arch.low;
        cfg.rope_high_freq_factor = (float)arch.high, cfg.rope_original_max_pos = (int)arch.orig;
    }
    if ((st = ad_model_config_validate(&cfg)) != AD_OK) {
        st = ad_fail_context(AD_ERR_FORMAT, "%s", cp);
        goto cleanup;
    }

    /* Check every tensor before allocating the model. */
    const unsigned char *emb, *head;
    ImpDtype emb_dt, head_dt = IMP_F32;
    if ((st = get_tensor(&s, "model.embed_tokens.weight", 1, V, C, &emb, &emb_dt)) ||
        (st = get_tensor(&s, "lm_head.weight", 0, V, C, &head, &head_dt)))
        goto cleanup;
    /* tie_word_embeddings makes HF ignore a stored lm_head; a stored one byte-identical
     * to the embedding is the tied classifier too. */
    int tie_flag = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(conf, "tie_word_embeddings"));
    cfg.tied = tie_flag || !head ||
               (head_dt == emb_dt &&
                memcmp(head, emb, (size_t)(V * C) * imp_dtype_size(emb_dt)) == 0);
    const char *layer_names[9] = {
        "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"};
    const int64_t shapes[9][2] = {{C, 0}, {C, C}, {kvd, C}, {kvd, C}, {C, C},
                                  {C, 0}, {F, C}, {F, C}, {C, F}};
    const unsigned char *final_norm;
    ImpDtype final_dt;
    if ((st = get_tensor(&s, "model.norm.weight", 1, C, 0, &final_norm, &final_dt)) != AD_OK)
        goto cleanup;
    char name[96];
    for (int l = 0; l < (int)L; l++)
        for (int k = 0; k < 9; k++) {
            const unsigned char *d;
            ImpDtype dt;
            snprintf(name, sizeof name, "model.layers.%d.%s", l, layer_names[k]);
            st = get_tensor(&s, name, 1, shapes[k][0], shapes[k][1], &d, &dt);
            if (st != AD_OK) goto cleanup;
        }

    /* Qwen2: q, k, v biases, (H hs), (Hkv hs), (Hkv hs) */
    const char *bias_names[3] = {"self_attn.q_proj.bias", "self_attn.k_proj.bias",
                                 "self_attn.v_proj.bias"};
    const int64_t bias_rows[3] = {C, kvd, kvd};
    for (int l = 0; l < (int)L && cfg.qkv_bias; l++)
        for (int k = 0; k < 3; k++) {
            const unsigned char *d;
            ImpDtype dt;
            snprintf(name, sizeof name, "model.layers.%d.%s", l, bias_names[k]);
            if ((st = get_tensor(&s, name, 1, bias_rows[k], 0, &d, &dt)) != AD_OK) goto cleanup;
        }

    if ((st = imp_model_init(m, &cfg, f)) != AD_OK) goto cleanup;
    float *const *t = m->params.t;
    size_t c = (size_t)C, ff = (size_t)F, kv = (size_t)kvd, QKV = c + 2 * kv;
    st = imp_convert(t[AD_P_WTE], emb, emb_dt, (size_t)V * c, f, "model.embed_tokens.weight");
    if (st == AD_OK && !cfg.tied)
        st = imp_convert(t[AD_P_LM_HEAD], head, head_dt, (size_t)V * c, f, "lm_head.weight");
    if (st == AD_OK) st = imp_convert(t[AD_P_LNFW], final_norm, final_dt, c, f, "model.norm.weight");
    for (int l = 0; l < (int)L && st == AD_OK; l++) {
        size_t ll = (size_t)l;
        float *dst[9] = {
            t[AD_P_LN1W] + ll * c,
            t[AD_P_QKVW] + ll * QKV * c,
            t[AD_P_QKVW] + ll * QKV * c + c * c,
            t[AD_P_QKVW] + ll * QKV * c + (c + kv) * c,
            t[AD_P_ATTPROJW] + ll * c * c,
            t[AD_P_LN2W] + ll * c,
            t[AD_P_FCW] + ll * 2 * ff * c,
            t[AD_P_FCW] + ll * 2 * ff * c + ff * c,
            t[AD_P_FCPROJW] + ll * c * ff,
        };
        for (int k = 0; k < 9 && st == AD_OK; k++) {
            const unsigned char *d;
            ImpDtype dt;
            snprintf(name, sizeof name, "model.layers.%d.%s", l, layer_names[k]);
            st = get_tensor(&s, name, 1, shapes[k][0], shapes[k][1], &d, &dt);
            if (st != AD_OK) break;
            if (k == 1 || k == 2) /* q_proj, k_proj: rotate-half rows -> interleaved pairs */
                st = imp_convert_rows_unpermute(dst[k], d, dt, k == 1 ? (int)H : (int)Hkv,
                                                (int)hs, (int)C, f, name);
            else
                st = imp_convert(dst[k], d, dt, (size_t)shapes[k][0] *
                                 (size_t)(shapes[k][1] ? shapes[k][1] : 1), f, name);
        }
        for (int k = 0; k < 3 && cfg.qkv_bias && st == AD_OK; k++) {
            const unsigned char *d;
            ImpDtype dt;
            float *dst_b = t[AD_P_QKVB] + ll * QKV + (k == 0 ? 0 : k == 1 ? c : c + kv);
            snprintf(name, sizeof name, "model.layers.%d.%s", l, bias_names[k]);
            st = get_tensor(&s, name, 1, bias_rows[k], 0, &d, &dt);
            if (st != AD_OK) break;
            if (k < 2) /* q, k biases: the rows' rotate-half order, as their weights */
                st = imp_convert_rows_unpermute(dst_b, d, dt, k == 0 ? (int)H : (int)Hkv, (int)hs,
                                                1, f, name);
            else
                st = imp_convert(dst_b, d, dt, (size_t)kvd, f, name);
        }
    }
    if (st != AD_OK) goto cleanup;
    size_t unused = 0;
    const char *first_unused = NULL;
    for (size_t i = 0; i < s.n; i++) {
        const char *nm = s.entries[i].name;
        size_t len = strlen(nm);
        const char *inv = "rotary_emb.inv_freq";
        if (s.entries[i].used || strcmp(nm, "__metadata__") == 0 ||
            (len >= strlen(inv) && strcmp(nm + len - strlen(inv), inv) == 0) ||
            (cfg.tied && strcmp(nm, "lm_head.weight") == 0))
            continue;
        if (!unused++) first_unused = nm;
    }
    if (unused)
        ad_log(AD_LOG_WARN, "%s: %zu tensors were not read (e.g. %.80s)", f->path, unused,
               first_unused);

cleanup:
    if (st != AD_OK) ad_model_free(m);
    cJSON_Delete(s.header);
    cJSON_Delete(conf);
    free(s.entries);
    free(conf_path);
    return st;
}
