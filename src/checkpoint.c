/* checkpoint.c: model checkpoints in HDF5 (layout in docs/CHECKPOINT.md): weights, model
 * config, tokenizer and the training state needed for exact resume. Training and the
 * CLI save and load through it; saving is write-temp + fsync + rename, loading checks
 * every name, type and shape against the stored config before trusting a byte. It does
 * not decide when to save or what to resume; the run log is a separate file. */
#include "autodidact/checkpoint.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "h5util.h"


/* Bounds on sizes read from a file, checked before anything is allocated. */
#define CKPT_MAX_PARAMS ((int64_t)1 << 32)          /* floats in the model (16 GiB) */
#define CKPT_MAX_TOK_VOCAB ((int64_t)1 << 22)       /* tokenizer pieces */
#define CKPT_MAX_PIECE_LEN ((int64_t)1 << 16)       /* bytes in one piece */
#define CKPT_MAX_PIECE_BYTES ((int64_t)1 << 30)     /* bytes in all pieces */
#define CKPT_MAX_MERGES ((int64_t)1 << 21)          /* GPT-2 merges */
#define CKPT_MAX_NAME 256                           /* short string attributes */
#define CKPT_MAX_CONFIG_JSON ((size_t)64 << 20)     /* the resolved config text */

/* ================================================================ saving */

/* AD_ERR_NAN naming the first weight or AdamW moment (st may be NULL) that is NaN or
 * infinite: such a checkpoint is neither written nor loaded. */
static AdStatus check_finite(const AdModel *m, const AdTrainState *st) {
    AdStatus s = ad_model_check_finite(m);
    if (s == AD_OK && st && st->opt.m) s = ad_check_finite(st->opt.m, st->opt.n, "/train/adam_m");
    if (s == AD_OK && st && st->opt.v) s = ad_check_finite(st->opt.v, st->opt.n, "/train/adam_v");
    return s;
}

static AdStatus check_save_args(const char *path, const AdModel *m, const AdTokenizer *tok,
                                const AdTrainState *st) {
    if (!path || !path[0]) return ad_fail(AD_ERR_ARG, "checkpoint save: empty path");
    if (!m || !m->params_mem)
        return ad_fail(AD_ERR_ARG, "checkpoint save %s: the model has no parameters", path);
    AdStatus s = ad_model_config_validate(&m->cfg);
    if (s != AD_OK) return ad_fail_context(s, "checkpoint save %s", path);
    if ((unsigned)m->cfg.bias > 1 || (unsigned)m->cfg.tied > 1 || !isfinite(m->cfg.rope_theta))
        return ad_fail(AD_ERR_ARG, "checkpoint save %s: model bias = %d, tied = %d (0 or 1 "
                       "expected), rope_theta = %g (finite expected)", path, m->cfg.bias,
                       m->cfg.tied, m->cfg.rope_theta);
    AdTensorInfo info[AD_P_COUNT];
    if (ad_model_param_info(&m->cfg, info) != m->n_params)
        return ad_fail(AD_ERR_ARG, "checkpoint save %s: the model holds %zu parameters, its "
                       "config implies another count", path, m->n_params);
    if (tok) {
        if (tok->vocab_size < 1 || !tok->pieces || !tok->piece_len ||
            strcmp(ad_tok_kind_name(tok->kind), "unknown") == 0)
            return ad_fail(AD_ERR_ARG, "checkpoint save %s: the tokenizer is not initialised",
                           path);
        if (tok->vocab_size > m->cfg.vocab_size)
            return ad_fail(AD_ERR_ARG, "checkpoint save %s: tokenizer vocab_size %d exceeds the "
                           "model's vocab_size %d", path, tok->vocab_size, m->cfg.vocab_size);
        for (int i = 0; i < tok->vocab_size; i++)
            if (tok->piece_len[i] < 0 || (tok->piece_len[i] > 0 && !tok->pieces[i]))
                return ad_fail(AD_ERR_ARG, "checkpoint save %s: tokenizer piece %d has length "
                               "%d and %s bytes", path, i, tok->piece_len[i],
                               tok->pieces[i] ? "some" : "no");
        if (tok->merges && tok->n_merges < 0)
            return ad_fail(AD_ERR_ARG, "checkpoint save %s: tokenizer has %d merges", path,
                           tok->n_merges);
    }
    if (st && st->opt.m && (!st->opt.v || st->opt.n != m->n_params))
        return ad_fail(AD_ERR_ARG, "checkpoint save %s: AdamW moments hold %zu values (second "
                       "moment %s), the model %zu", path, st->opt.n,
                       st->opt.v ? "present" : "missing", m->n_params);
    /* a checkpoint that could not be loaded again is not written */
    if ((s = check_finite(m, st)) != AD_OK)
        return ad_fail_context(s, "checkpoint save %s: refusing non-finite values", path);
    return AD_OK;
}

/* Version 1 for a model without the version-2 switches, so that older programs read it;
 * version 2 otherwise, so that they refuse it rather than ignore a switch. */
static int format_version_for(const AdModelConfig *c) {
    return c->qkv_bias || c->sliding_window || c->rope_scaling != AD_ROPE_SCALING_NONE ? 2 : 1;
}

static AdStatus write_root(hid_t f, const AdModelConfig *c) {
    AdStatus s = ad_h5_attr_write_str(f, "format", AD_CHECKPOINT_FORMAT);
    if (s == AD_OK) s = ad_h5_attr_write_i64(f, "format_version", format_version_for(c));
    if (s == AD_OK) s = ad_h5_attr_write_str(f, "program_version", AD_VERSION_STRING);
    if (s == AD_OK) s = ad_h5_attr_write_str(f, "git_commit", ad_git_commit());
    return s;
}

static AdStatus write_model(hid_t f, const AdModel *m) {
    const AdModelConfig *c = &m->cfg;
    hid_t g = -1;
    AdStatus s = ad_h5_group_create(f, "model", &g);
    const struct { const char *name; int64_t v; } ints[] = {
        {"vocab_size", c->vocab_size}, {"max_seq_len", c->max_seq_len}, {"n_layer", c->n_layer},
        {"n_head", c->n_head},         {"n_kv_head", c->n_kv_head},     {"d_model", c->d_model},
        {"d_ff", c->d_ff},             {"bias", c->bias},               {"tied", c->tied},
        {"n_params", (int64_t)m->n_params},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && s == AD_OK; i++)
        s = ad_h5_attr_write_i64(g, ints[i].name, ints[i].v);
    if (s == AD_OK) s = ad_h5_attr_write_str(g, "norm", ad_norm_name(c->norm));
    if (s == AD_OK) s = ad_h5_attr_write_str(g, "mlp", ad_mlp_name(c->mlp));
    if (s == AD_OK) s = ad_h5_attr_write_str(g, "pos", ad_pos_name(c->pos));
    if (s == AD_OK) s = ad_h5_attr_write_f64(g, "norm_eps", c->norm_eps);
    if (s == AD_OK) s = ad_h5_attr_write_f64(g, "rope_theta", c->rope_theta);
    /* version 2: written whenever present in the struct (zero = off) */
    if (s == AD_OK) s = ad_h5_attr_write_i64(g, "qkv_bias", c->qkv_bias);
    if (s == AD_OK) s = ad_h5_attr_write_i64(g, "sliding_window", c->sliding_window);
    if (s == AD_OK) s = ad_h5_attr_write_str(g, "rope_scaling", ad_rope_scaling_name(c->rope_scaling));
    if (s == AD_OK) s = ad_h5_attr_write_f64(g, "rope_factor", c->rope_factor);
    if (s == AD_OK) s = ad_h5_attr_write_f64(g, "rope_low_freq_factor", c->rope_low_freq_factor);
    if (s == AD_OK) s = ad_h5_attr_write_f64(g, "rope_high_freq_factor", c->rope_high_freq_factor);
    if (s == AD_OK) s = ad_h5_attr_write_i64(g, "rope_original_max_pos", c->rope_original_max_pos);
    s = ad_h5_close_after(g, s);
    g = -1;
    if (s == AD_OK) s = ad_h5_group_create(f, "weights", &g);
    for (int i = 0; i < AD_P_COUNT && s == AD_OK; i++) {
        const AdTensorInfo *t = &m->info[i];
        if (!t->size) continue;
        hsize_t shape[3] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1], (hsize_t)t->shape[2]};
        s = ad_h5_write_floats(g, t->name, t->ndim, shape, m->params.t[i]);
    }
    return ad_h5_close_after(g, s);
}

static AdStatus write_tokenizer(hid_t f, const AdTokenizer *t) {
    hid_t g = -1;
    int V = t->vocab_size;
    size_t total = 0;
    for (int i = 0; i < V; i++) total += (size_t)t->piece_len[i];
    unsigned char *bytes = ad_malloc(total, "checkpoint tokenizer pieces");
    int64_t *offsets = ad_calloc((size_t)V + 1, sizeof *offsets, "checkpoint piece offsets");
    float *zeros = t->scores ? NULL : ad_alloc_floats((size_t)V, "checkpoint tokenizer scores");
    AdStatus s = bytes && offsets && (t->scores || zeros) ? AD_OK : AD_ERR_NOMEM;
    if (s == AD_OK) {
        for (int i = 0; i < V; i++) {
            if (t->piece_len[i]) memcpy(bytes + offsets[i], t->pieces[i], (size_t)t->piece_len[i]);
            offsets[i + 1] = offsets[i] + t->piece_len[i];
        }
        s = ad_h5_group_create(f, "tokenizer", &g);
    }
    if (s == AD_OK) s = ad_h5_attr_write_str(g, "kind", ad_tok_kind_name(t->kind));
    const struct { const char *name; int64_t v; } ints[] = {
        {"vocab_size", V},  {"bos_id", t->bos_id}, {"eos_id", t->eos_id},
        {"pad_id", t->pad_id}, {"sep_id", t->sep_id}, {"unk_id", t->unk_id},
        {"add_bos", t->add_bos}, {"add_eos", t->add_eos},
        {"add_space_prefix", t->add_space_prefix}, {"nfc", t->nfc},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && s == AD_OK; i++)
        s = ad_h5_attr_write_i64(g, ints[i].name, ints[i].v);
    hsize_t n_bytes = total, n_offsets = (hsize_t)V + 1, n_scores = (hsize_t)V;
    if (s == AD_OK) s = ad_h5_write_array(g, "piece_bytes", AD_H5_U8, 1, &n_bytes, bytes);
    if (s == AD_OK) s = ad_h5_write_array(g, "piece_offsets", AD_H5_I64, 1, &n_offsets, offsets);
    if (s == AD_OK) s = ad_h5_write_floats(g, "scores", 1, &n_scores, t->scores ? t->scores : zeros);
    if (s == AD_OK && t->kind == AD_TOK_GPT2) s = ad_h5_attr_write_str(g, "pre", ad_pretok_name(t->pre));
    if (s == AD_OK && t->types) s = ad_h5_write_array(g, "token_types", AD_H5_U8, 1, &n_scores, t->types);
    if (s == AD_OK && t->kind == AD_TOK_GPT2 && t->merges) {
        _Static_assert(sizeof(int) == sizeof(int32_t), "merges are stored as int32");
        hsize_t shape[2] = {(hsize_t)t->n_merges, 2};
        s = ad_h5_write_array(g, "merges", AD_H5_I32, 2, shape, t->merges);
    }
    s = ad_h5_close_after(g, s);
    free(bytes);
    free(offsets);
    free(zeros);
    return s;
}

static AdStatus write_train(hid_t f, const AdTrainState *st, size_t n_params) {
    hid_t g = -1;
    const AdAdamW *o = &st->opt;
    AdStatus s = ad_h5_group_create(f, "train", &g);
    if (s == AD_OK) s = ad_h5_attr_write_i64(g, "step", st->step);
    if (s == AD_OK) s = ad_h5_attr_write_f64(g, "tokens_seen", st->tokens_seen);
    if (s == AD_OK) s = ad_h5_attr_write_i64(g, "adam_step", o->step);
    if (s == AD_OK) s = ad_h5_attr_write_f64(g, "beta1", o->cfg.beta1);
    if (s == AD_OK) s = ad_h5_attr_write_f64(g, "beta2", o->cfg.beta2);
    if (s == AD_OK) s = ad_h5_attr_write_f64(g, "eps", o->cfg.eps);
    if (s == AD_OK) s = ad_h5_attr_write_f64(g, "weight_decay", o->cfg.weight_decay);
    hsize_t n = n_params, four = 4;
    if (s == AD_OK && o->m) s = ad_h5_write_floats(g, "adam_m", 1, &n, o->m);
    if (s == AD_OK && o->m) s = ad_h5_write_floats(g, "adam_v", 1, &n, o->v);
    if (s == AD_OK) s = ad_h5_write_array(g, "rng_state", AD_H5_U64, 1, &four, st->data_rng.s);
    if (s == AD_OK && st->config_json) s = ad_h5_write_string(g, "config_json", st->config_json);
    return ad_h5_close_after(g, s);
}

/* Bytes the file will take, about: the floats (compression only shrinks them), the
 * tokenizer and some metadata. The in-memory file grows in steps of this size. */
static size_t estimate_size(const AdModel *m, const AdTokenizer *tok, const AdTrainState *st) {
    size_t floats = m->n_params * ((st && st->opt.m) ? 3 : 1);
    size_t bytes = floats * sizeof(float) + (1u << 20);
    if (tok) bytes += (size_t)tok->vocab_size * 32;
    if (st && st->config_json) bytes += strlen(st->config_json);
    return bytes;
}

/* Builds the whole checkpoint as an in-memory HDF5 file named `name` and returns its
 * bytes in *image (malloc'd). HDF5 itself never writes to disk here: see
 * ad_h5_create_mem for why. */
static AdStatus build_image(const char *name, const AdModel *m, const AdTokenizer *tok,
                            const AdTrainState *st, void **image, size_t *size) {
    *image = NULL;
    *size = 0;
    hid_t f;
    AdStatus s = ad_h5_create_mem(name, estimate_size(m, tok, st), &f);
    if (s != AD_OK) return s;
    s = write_root(f, &m->cfg);
    if (s == AD_OK) s = write_model(f, m);
    if (s == AD_OK && tok) s = write_tokenizer(f, tok);
    if (s == AD_OK && st) s = write_train(f, st, m->n_params);
    if (s == AD_OK) s = ad_h5_mem_image(f, image, size);
    if (s != AD_OK) {
        ad_h5_close_quietly(f);
        return s;
    }
    s = ad_h5_close_file(f);
    if (s != AD_OK) {
        free(*image);
        *image = NULL;
    }
    return s;
}

/* Save protocol: the file is built in memory, then written with
 * ad_h5_write_image_atomic ("<path>.tmp", fsync, rename, fsync of the directory). On
 * any failure before the rename an older checkpoint under `path` is untouched. A
 * failure to sync the directory after the rename is reported although `path` then
 * already holds the new checkpoint. Memory: the file image is held twice for a moment
 * (HDF5's buffer and the copy being written). */
AdStatus ad_checkpoint_save(const char *path, const AdModel *m, const AdTokenizer *tok,
                            const AdTrainState *st) {
    AdStatus s = check_save_args(path, m, tok, st);
    if (s != AD_OK) return s;
    size_t n = strlen(path), size = 0;
    char *tmp = ad_malloc(n + 5, "checkpoint temporary name");
    if (!tmp) return AD_ERR_NOMEM;
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    void *image = NULL;
    int renamed = 0;
    s = build_image(tmp, m, tok, st, &image, &size); /* named as the file it becomes */
    free(tmp);
    if (s == AD_OK) s = ad_h5_write_image_atomic(path, image, size, &renamed);
    free(image);
    if (s != AD_OK && !renamed) ad_fail_context(s, "saving checkpoint %s", path);
    else if (s != AD_OK) ad_fail_context(s, "checkpoint %s was written, but", path);
    return s;
}

/* ================================================================ loading */

static AdStatus check_format(hid_t f, const char *path) {
    int has;
    AdStatus s = ad_h5_attr_exists(f, "format", &has);
    if (s != AD_OK) return s;
    if (!has)
        return ad_fail(AD_ERR_FORMAT, "%s is not an autodidact checkpoint (it has no root "
                       "attribute \"format\")", path);
    char *fmt = NULL;
    s = ad_h5_attr_read_str(f, "format", CKPT_MAX_NAME, &fmt);
    if (s != AD_OK)
        return ad_fail_context(AD_ERR_FORMAT, "%s is not an autodidact checkpoint", path);
    int ok = strcmp(fmt, AD_CHECKPOINT_FORMAT) == 0;
    if (!ok)
        s = ad_fail(AD_ERR_FORMAT, "%s is not an autodidact checkpoint (its format is \"%.64s\", "
                    "expected \"%s\")", path, fmt, AD_CHECKPOINT_FORMAT);
    free(fmt);
    if (!ok) return s;
    int64_t version;
    s = ad_h5_attr_read_i64(f, "format_version", &version);
    if (s != AD_OK) return s;
    if (version > AD_CHECKPOINT_VERSION)
        return ad_fail(AD_ERR_FORMAT, "%s is an autodidact checkpoint of format version %lld; "
                       "this program (autodidact %s) reads version %d: use a newer autodidact",
                       path, (long long)version, AD_VERSION_STRING, AD_CHECKPOINT_VERSION);
    if (version < 1)
        return ad_fail(AD_ERR_FORMAT, "%s has an invalid format_version %lld (this program "
                       "reads version %d)", path, (long long)version, AD_CHECKPOINT_VERSION);
    return AD_OK;
}

/* Reads an integer attribute of g into *out, requiring lo <= value <= hi. */
static AdStatus read_int_attr(hid_t g, const char *path, const char *group, const char *name,
                              int64_t lo, int64_t hi, int64_t *out) {
    AdStatus s = ad_h5_attr_read_i64(g, name, out);
    if (s != AD_OK) return s;
    if (*out < lo || *out > hi)
        return ad_fail(AD_ERR_FORMAT, "%s:%s: attribute %s = %lld is outside [%lld, %lld]", path,
                       group, name, (long long)*out, (long long)lo, (long long)hi);
    return AD_OK;
}

/* Reads a float-valued attribute, requiring a finite value that fits a float. */
static AdStatus read_float_attr(hid_t g, const char *path, const char *group, const char *name,
                                float *out) {
    double v;
    AdStatus s = ad_h5_attr_read_f64(g, name, &v);
    if (s != AD_OK) return s;
    if (!isfinite(v) || fabs(v) > FLT_MAX)
        return ad_fail(AD_ERR_FORMAT, "%s:%s: attribute %s = %g is not a finite float", path,
                       group, name, v);
    *out = (float)v;
    return AD_OK;
}

/* Reads a name attribute and parses it with parse(); -1 is an error listing `expected`. */
static AdStatus read_enum_attr(hid_t g, const char *path, const char *name, int (*parse)(const char *),
                               const char *expected, int *out) {
    char *v = NULL;
    AdStatus s = ad_h5_attr_read_str(g, name, CKPT_MAX_NAME, &v);
    if (s != AD_OK) return s;
    *out = parse(v);
    if (*out < 0)
        s = ad_fail(AD_ERR_FORMAT, "%s:/model: attribute %s = \"%.64s\" is unknown (expected %s)",
                    path, name, v, expected);
    free(v);
    return s;
}

/* The /model attributes of format version 2 (later families' switches). A file written
 * before them has none: the switches stay off (zero), as that file's model had them. */
static AdStatus read_v2_config(hid_t g, const char *path, AdModelConfig *c) {
    int present;
    AdStatus s = ad_h5_attr_exists(g, "qkv_bias", &present);
    if (s != AD_OK || !present) return s;
    int64_t v;
    s = read_int_attr(g, path, "/model", "qkv_bias", 0, 1, &v);
    if (s == AD_OK) c->qkv_bias = (int)v;
    if (s == AD_OK) s = read_int_attr(g, path, "/model", "sliding_window", 0, INT_MAX, &v);
    if (s == AD_OK) c->sliding_window = (int)v;
    int e;
    if (s == AD_OK) s = read_enum_attr(g, path, "rope_scaling", ad_rope_scaling_parse, "none, llama3", &e);
    if (s == AD_OK) c->rope_scaling = (AdRopeScalingKind)e;
    if (s == AD_OK) s = read_float_attr(g, path, "/model", "rope_factor", &c->rope_factor);
    if (s == AD_OK) s = read_float_attr(g, path, "/model", "rope_low_freq_factor", &c->rope_low_freq_factor);
    if (s == AD_OK) s = read_float_attr(g, path, "/model", "rope_high_freq_factor", &c->rope_high_freq_factor);
    if (s == AD_OK) s = read_int_attr(g, path, "/model", "rope_original_max_pos", 0, INT_MAX, &v);
    if (s == AD_OK) c->rope_original_max_pos = (int)v;
    return s;
}

/* Reads /model into *c and checks it: validated, parameter count as stored and bounded. */
static AdStatus read_config(hid_t f, const char *path, AdModelConfig *c) {
    memset(c, 0, sizeof *c);
    hid_t g;
    AdStatus s = ad_h5_group_open(f, "model", &g);
    if (s != AD_OK) return s;
    struct { const char *name; int *dst; int64_t lo, hi; } ints[] = {
        {"vocab_size", &c->vocab_size, 1, INT_MAX}, {"max_seq_len", &c->max_seq_len, 1, INT_MAX},
        {"n_layer", &c->n_layer, 1, INT_MAX},       {"n_head", &c->n_head, 1, INT_MAX},
        {"n_kv_head", &c->n_kv_head, 1, INT_MAX},   {"d_model", &c->d_model, 1, INT_MAX},
        {"d_ff", &c->d_ff, 1, INT_MAX},             {"bias", &c->bias, 0, 1},
        {"tied", &c->tied, 0, 1},
    };
    int64_t v;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && s == AD_OK; i++) {
        s = read_int_attr(g, path, "/model", ints[i].name, ints[i].lo, ints[i].hi, &v);
        if (s == AD_OK) *ints[i].dst = (int)v;
    }
    int e;
    if (s == AD_OK) s = read_enum_attr(g, path, "norm", ad_norm_parse, "layernorm, rmsnorm", &e);
    if (s == AD_OK) c->norm = (AdNormKind)e;
    if (s == AD_OK) s = read_enum_attr(g, path, "mlp", ad_mlp_parse, "gelu, swiglu", &e);
    if (s == AD_OK) c->mlp = (AdMlpKind)e;
    if (s == AD_OK) s = read_enum_attr(g, path, "pos", ad_pos_parse, "learned, rope, none", &e);
    if (s == AD_OK) c->pos = (AdPosKind)e;
    if (s == AD_OK) s = read_float_attr(g, path, "/model", "norm_eps", &c->norm_eps);
    if (s == AD_OK) s = read_float_attr(g, path, "/model", "rope_theta", &c->rope_theta);
    if (s == AD_OK) s = read_v2_config(g, path, c);
    int64_t stored_n = 0;
    if (s == AD_OK) s = read_int_attr(g, path, "/model", "n_params", 1, INT64_MAX, &stored_n);
    ad_h5_close_quietly(g);
    if (s != AD_OK) return s;
    s = ad_model_config_validate(c);
    if (s != AD_OK) return ad_fail_context(AD_ERR_FORMAT, "%s:/model", path);
    /* Validated sizes are at most 2^22 x 2^18 x 2^10 per tensor: no overflow in size_t. */
    AdTensorInfo info[AD_P_COUNT];
    size_t n = ad_model_param_info(c, info);
    if ((int64_t)n != stored_n)
        return ad_fail(AD_ERR_FORMAT, "%s:/model: attribute n_params = %lld, but the config "
                       "implies %zu", path, (long long)stored_n, n);
    if ((int64_t)n > CKPT_MAX_PARAMS)
        return ad_fail(AD_ERR_FORMAT, "%s:/model: %zu parameters exceed the limit of %lld", path,
                       n, (long long)CKPT_MAX_PARAMS);
    return AD_OK;
}

/* Checks /weights against the config before anything is allocated: every present tensor
 * is a dataset of exactly its shape; nothing else is there. */
static AdStatus check_weights(hid_t w, const char *path, const AdTensorInfo *info) {
    int n_present = 0;
    for (int i = 0; i < AD_P_COUNT; i++) {
        const AdTensorInfo *t = &info[i];
        int exists;
        AdStatus s = ad_h5_exists(w, t->name, &exists);
        if (s != AD_OK) return s;
        if (!t->size) {
            if (exists)
                return ad_fail(AD_ERR_FORMAT, "%s:/weights/%s: the model config has no such "
                               "tensor, but the file holds it", path, t->name);
            continue;
        }
        n_present++;
        hsize_t want[3] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1], (hsize_t)t->shape[2]};
        hsize_t got[AD_H5_MAX_RANK];
        int rank;
        if (!exists)
            return ad_fail(AD_ERR_FORMAT, "%s:/weights/%s: missing dataset", path, t->name);
        s = ad_h5_array_shape(w, t->name, AD_H5_MAX_RANK, &rank, got);
        if (s != AD_OK) return s;
        int same = rank == t->ndim;
        for (int d = 0; d < t->ndim && same; d++) same = got[d] == want[d];
        if (!same) {
            char ws[128], gs[128];
            ad_h5_shape_text(ws, sizeof ws, t->ndim, want);
            ad_h5_shape_text(gs, sizeof gs, rank, got);
            return ad_fail(AD_ERR_FORMAT, "%s:/weights/%s: dataset has shape %s, expected %s",
                           path, t->name, gs, ws);
        }
    }
    H5G_info_t gi;
    if (H5Gget_info(w, &gi) < 0) return ad_h5_fail(AD_ERR_FORMAT, w, NULL, "cannot list group");
    if (gi.nlinks != (hsize_t)n_present) {
        /* Name one stray link. */
        for (hsize_t k = 0; k < gi.nlinks; k++) {
            char name[CKPT_MAX_NAME];
            if (H5Lget_name_by_idx(w, ".", H5_INDEX_NAME, H5_ITER_INC, k, name, sizeof name,
                                   H5P_DEFAULT) < 0)
                return ad_h5_fail(AD_ERR_FORMAT, w, NULL, "cannot list group");
            int known = 0;
            for (int i = 0; i < AD_P_COUNT && !known; i++)
                known = info[i].size && strcmp(info[i].name, name) == 0;
            if (!known)
                return ad_fail(AD_ERR_FORMAT, "%s:/weights/%.64s: not a tensor of this model",
                               path, name);
        }
        return ad_fail(AD_ERR_FORMAT, "%s:/weights holds %llu objects, expected %d", path,
                       (unsigned long long)gi.nlinks, n_present);
    }
    return AD_OK;
}

static AdStatus read_weights(hid_t w, AdModel *m) {
    for (int i = 0; i < AD_P_COUNT; i++) {
        const AdTensorInfo *t = &m->info[i];
        if (!t->size) continue;
        hsize_t shape[3] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1], (hsize_t)t->shape[2]};
        AdStatus s = ad_h5_read_floats(w, t->name, t->ndim, shape, m->params.t[i]);
        if (s != AD_OK) return s;
    }
    return AD_OK;
}

/* Gives a GPT-2 tokenizer the merge table in /tokenizer/merges, if there is one (without
 * it the tokenizer decodes but cannot encode, as when it was saved). */
static AdStatus read_merges(hid_t g, const char *path, AdTokenizer *tok) {
    int has;
    AdStatus s = ad_h5_exists(g, "merges", &has);
    if (s != AD_OK || !has) return s;
    int rank;
    hsize_t shape[AD_H5_MAX_RANK];
    s = ad_h5_array_shape(g, "merges", AD_H5_MAX_RANK, &rank, shape);
    if (s != AD_OK) return s;
    if (rank != 2 || shape[1] != 2 || shape[0] > (hsize_t)CKPT_MAX_MERGES) {
        char got[128];
        ad_h5_shape_text(got, sizeof got, rank, shape);
        return ad_fail(AD_ERR_FORMAT, "%s:/tokenizer/merges: dataset has shape %s, expected "
                       "(n, 2) with n at most %lld", path, got, (long long)CKPT_MAX_MERGES);
    }
    int *merges = ad_malloc(2 * (size_t)shape[0] * sizeof *merges + 1, "tokenizer merges");
    if (!merges) return AD_ERR_NOMEM;
    s = ad_h5_read_array(g, "merges", AD_H5_I32, 2, shape, merges);
    if (s == AD_OK) {
        s = ad_tokenizer_set_merges(tok, (int)shape[0], merges);
        if (s != AD_OK) ad_fail_context(AD_ERR_FORMAT, "%s:/tokenizer/merges", path);
        if (s != AD_OK && s != AD_ERR_NOMEM) s = AD_ERR_FORMAT;
    }
    free(merges);
    return s;
}

static AdStatus read_tokenizer(hid_t f, const char *path, int model_vocab, AdTokenizer *tok) {
    int has;
    AdStatus s = ad_h5_exists(f, "tokenizer", &has);
    if (s != AD_OK) return s;
    if (!has)
        return ad_fail(AD_ERR_FORMAT, "%s holds no tokenizer (no group /tokenizer): a model imported "
                       "without --tokenizer has none; import it again with 'autodidact import SRC "
                       "--tokenizer TOKENIZER.bin -o OUT.h5'", path);
    hid_t g;
    s = ad_h5_group_open(f, "tokenizer", &g);
    if (s != AD_OK) return s;
    int64_t *offsets = NULL;
    unsigned char *bytes = NULL, *types = NULL;
    float *scores = NULL;
    const char **pieces = NULL;
    int *lens = NULL;
    int kind = -1;
    int64_t V = 0, ids[4] = {-1, -1, -1, -1};
    const char *id_names[4] = {"bos_id", "eos_id", "pad_id", "sep_id"};
    char *kind_name = NULL;
    s = ad_h5_attr_read_str(g, "kind", CKPT_MAX_NAME, &kind_name);
    if (s == AD_OK) {
        kind = ad_tok_kind_parse(kind_name);
        if (kind < 0)
            s = ad_fail(AD_ERR_FORMAT, "%s:/tokenizer: attribute kind = \"%.64s\" is unknown "
                        "(expected byte, char, spm or gpt2)", path, kind_name);
    }
    int64_t max_v = model_vocab < CKPT_MAX_TOK_VOCAB ? model_vocab : CKPT_MAX_TOK_VOCAB;
    if (s == AD_OK) s = read_int_attr(g, path, "/tokenizer", "vocab_size", 1, max_v, &V);
    for (int k = 0; k < 4 && s == AD_OK; k++)
        s = read_int_attr(g, path, "/tokenizer", id_names[k], -1, V - 1, &ids[k]);
    if (s == AD_OK) {
        offsets = ad_calloc((size_t)V + 1, sizeof *offsets, "tokenizer piece offsets");
        scores = ad_alloc_floats((size_t)V, "tokenizer scores");
        pieces = ad_calloc((size_t)V, sizeof *pieces, "tokenizer pieces");
        lens = ad_calloc((size_t)V, sizeof *lens, "tokenizer piece lengths");
        if (!offsets || !scores || !pieces || !lens) s = AD_ERR_NOMEM;
    }
    hsize_t n_offsets = (hsize_t)V + 1, n_scores = (hsize_t)V;
    if (s == AD_OK) s = ad_h5_read_array(g, "piece_offsets", AD_H5_I64, 1, &n_offsets, offsets);
    if (s == AD_OK && offsets[0] != 0)
        s = ad_fail(AD_ERR_FORMAT, "%s:/tokenizer/piece_offsets: starts at %lld, not 0", path,
                    (long long)offsets[0]);
    for (int64_t i = 0; i < V && s == AD_OK; i++) {
        int64_t len = offsets[i + 1] - offsets[i];
        if (len < 0 || len > CKPT_MAX_PIECE_LEN || offsets[i + 1] > CKPT_MAX_PIECE_BYTES)
            s = ad_fail(AD_ERR_FORMAT, "%s:/tokenizer/piece_offsets: piece %lld spans [%lld, %lld), "
                        "a negative length, longer than %lld bytes or past %lld bytes in all",
                        path, (long long)i, (long long)offsets[i], (long long)offsets[i + 1],
                        (long long)CKPT_MAX_PIECE_LEN, (long long)CKPT_MAX_PIECE_BYTES);
        else
            lens[i] = (int)len;
    }
    hsize_t n_bytes = s == AD_OK ? (hsize_t)offsets[V] : 0;
    if (s == AD_OK) {
        bytes = ad_malloc((size_t)n_bytes, "tokenizer piece bytes");
        if (!bytes) s = AD_ERR_NOMEM;
    }
    if (s == AD_OK) s = ad_h5_read_array(g, "piece_bytes", AD_H5_U8, 1, &n_bytes, bytes);
    if (s == AD_OK) s = ad_h5_read_floats(g, "scores", 1, &n_scores, scores);
    /* written since byte-level BPE vocabularies came from GGUF; older files lack them */
    AdTokSpec spec = {.kind = (AdTokKind)kind, .vocab_size = (int)V, .pieces = pieces,
                      .piece_len = lens, .scores = scores, .unk_id = -1, .pre = AD_PRE_GPT2,
                      .add_space_prefix = kind == AD_TOK_SPM};
    const struct { const char *name; int64_t lo, hi; int *dst; } opt_ints[] = {
        {"unk_id", -1, V - 1, &spec.unk_id}, {"add_bos", 0, 1, &spec.add_bos},
        {"add_eos", 0, 1, &spec.add_eos}, {"add_space_prefix", 0, 1, &spec.add_space_prefix},
        {"nfc", 0, 1, &spec.nfc}};
    for (size_t k = 0; k < sizeof opt_ints / sizeof opt_ints[0] && s == AD_OK; k++) {
        int present;
        int64_t v;
        s = ad_h5_attr_exists(g, opt_ints[k].name, &present);
        if (s == AD_OK && present)
            s = read_int_attr(g, path, "/tokenizer", opt_ints[k].name, opt_ints[k].lo,
                              opt_ints[k].hi, &v);
        if (s == AD_OK && present) *opt_ints[k].dst = (int)v;
    }
    int present = 0;
    if (s == AD_OK) s = ad_h5_attr_exists(g, "pre", &present);
    if (s == AD_OK && present) {
        char *pre = NULL;
        s = ad_h5_attr_read_str(g, "pre", CKPT_MAX_NAME, &pre);
        int k = s == AD_OK ? ad_pretok_parse(pre) : 0;
        if (k < 0)
            s = ad_fail(AD_ERR_FORMAT, "%s:/tokenizer: attribute pre = \"%.64s\" is not a known "
                        "pre-tokenizer", path, pre);
        else
            spec.pre = (AdPreTok)k;
        free(pre);
    }
    if (s == AD_OK) s = ad_h5_exists(g, "token_types", &present);
    if (s == AD_OK && present) {
        types = ad_malloc((size_t)V, "tokenizer token types");
        if (!types) s = AD_ERR_NOMEM;
        if (s == AD_OK) s = ad_h5_read_array(g, "token_types", AD_H5_U8, 1, &n_scores, types);
        spec.types = types;
    }
    if (s == AD_OK) {
        for (int64_t i = 0; i < V; i++) pieces[i] = (const char *)bytes + offsets[i];
        spec.bos_id = (int)ids[0];
        spec.eos_id = (int)ids[1];
        spec.pad_id = (int)ids[2];
        spec.sep_id = (int)ids[3];
        s = ad_tokenizer_init_spec(tok, &spec);
        if (s != AD_OK) ad_fail_context(AD_ERR_FORMAT, "%s:/tokenizer", path);
        if (s != AD_OK && s != AD_ERR_NOMEM) s = AD_ERR_FORMAT;
    }
    if (s == AD_OK && kind == AD_TOK_GPT2) s = read_merges(g, path, tok);
    ad_h5_close_quietly(g);
    free(kind_name);
    free(offsets);
    free(bytes);
    free(types);
    free(scores);
    free(pieces);
    free(lens);
    return s;
}

static void train_state_clear(AdTrainState *st) {
    ad_adamw_free(&st->opt);
    free(st->config_json);
    memset(st, 0, sizeof *st);
}

static AdStatus read_train(hid_t f, const char *path, size_t n_params, AdTrainState *st) {
    int has;
    AdStatus s = ad_h5_exists(f, "train", &has);
    if (s != AD_OK) return s;
    if (!has)
        return ad_fail(AD_ERR_FORMAT, "%s holds no training state (no group /train): it is a "
                       "weights-only checkpoint", path);
    hid_t g;
    s = ad_h5_group_open(f, "train", &g);
    if (s != AD_OK) return s;
    int64_t step = 0, adam_step = 0;
    double tokens = 0;
    AdAdamWConfig cfg;
    s = read_int_attr(g, path, "/train", "step", 0, LONG_MAX, &step);
    if (s == AD_OK) s = read_int_attr(g, path, "/train", "adam_step", 0, LONG_MAX, &adam_step);
    if (s == AD_OK) s = ad_h5_attr_read_f64(g, "tokens_seen", &tokens);
    if (s == AD_OK && !(isfinite(tokens) && tokens >= 0))
        s = ad_fail(AD_ERR_FORMAT, "%s:/train: attribute tokens_seen = %g is not a finite count",
                    path, tokens);
    if (s == AD_OK) s = read_float_attr(g, path, "/train", "beta1", &cfg.beta1);
    if (s == AD_OK) s = read_float_attr(g, path, "/train", "beta2", &cfg.beta2);
    if (s == AD_OK) s = read_float_attr(g, path, "/train", "eps", &cfg.eps);
    if (s == AD_OK) s = read_float_attr(g, path, "/train", "weight_decay", &cfg.weight_decay);
    if (s == AD_OK) {
        st->step = (long)step;
        st->tokens_seen = tokens;
        st->opt.cfg = cfg;
        st->opt.step = (long)adam_step;
    }
    hsize_t four = 4, n = n_params;
    if (s == AD_OK) s = ad_h5_read_array(g, "rng_state", AD_H5_U64, 1, &four, st->data_rng.s);
    int has_m = 0, has_v = 0;
    if (s == AD_OK) s = ad_h5_exists(g, "adam_m", &has_m);
    if (s == AD_OK) s = ad_h5_exists(g, "adam_v", &has_v);
    if (s == AD_OK && has_m != has_v)
        s = ad_fail(AD_ERR_FORMAT, "%s:/train: holds %s but not %s", path,
                    has_m ? "adam_m" : "adam_v", has_m ? "adam_v" : "adam_m");
    if (s == AD_OK && has_m) {
        long opt_step = st->opt.step;
        s = ad_adamw_init(&st->opt, &cfg, n_params);
        st->opt.step = opt_step;
        if (s == AD_OK) s = ad_h5_read_floats(g, "adam_m", 1, &n, st->opt.m);
        if (s == AD_OK) s = ad_h5_read_floats(g, "adam_v", 1, &n, st->opt.v);
    }
    int has_json = 0;
    if (s == AD_OK) s = ad_h5_exists(g, "config_json", &has_json);
    if (s == AD_OK && has_json)
        s = ad_h5_read_string(g, "config_json", CKPT_MAX_CONFIG_JSON, &st->config_json);
    ad_h5_close_quietly(g);
    return s;
}

/* Opens path read-only and checks its format and version. */
static AdStatus open_checkpoint(const char *path, hid_t *f) {
    AdStatus s = ad_h5_open(path, 0, f);
    if (s != AD_OK) return s;
    s = check_format(*f, path);
    if (s != AD_OK) {
        ad_h5_close_quietly(*f);
        *f = -1;
    }
    return s;
}

AdStatus ad_checkpoint_read_config(const char *path, AdModelConfig *c) {
    memset(c, 0, sizeof *c);
    hid_t f;
    AdStatus s = open_checkpoint(path, &f);
    if (s != AD_OK) return s;
    s = read_config(f, path, c);
    if (s == AD_OK) s = ad_h5_close_file(f);
    else ad_h5_close_quietly(f);
    if (s != AD_OK) memset(c, 0, sizeof *c);
    return s;
}

/* Load order: format and version, config, the shape of every weight, and only then any
 * allocation; the tokenizer and the training state follow, then the check that every
 * weight and moment is finite. Output structs are treated
 * as uninitialised on entry (anything they held is not freed). */
AdStatus ad_checkpoint_load(const char *path, AdModel *m, int with_grads, AdTokenizer *tok,
                            AdTrainState *st) {
    memset(m, 0, sizeof *m);
    if (tok) memset(tok, 0, sizeof *tok);
    if (st) memset(st, 0, sizeof *st);
    hid_t f = -1, w = -1;
    AdModelConfig cfg;
    AdTensorInfo info[AD_P_COUNT];
    AdStatus s = open_checkpoint(path, &f);
    if (s == AD_OK) s = read_config(f, path, &cfg);
    if (s == AD_OK) {
        ad_model_param_info(&cfg, info);
        s = ad_h5_group_open(f, "weights", &w);
    }
    if (s == AD_OK) s = check_weights(w, path, info);
    if (s == AD_OK) s = ad_model_init(m, &cfg, with_grads);
    if (s == AD_OK) s = read_weights(w, m);
    ad_h5_close_quietly(w);
    if (s == AD_OK && tok) s = read_tokenizer(f, path, cfg.vocab_size, tok);
    if (s == AD_OK && st) s = read_train(f, path, m->n_params, st);
    if (s == AD_OK && (s = check_finite(m, st)) != AD_OK)
        ad_fail_context(s, "%s: refusing a checkpoint with non-finite values", path);
    if (s == AD_OK) {
        s = ad_h5_close_file(f);
        f = -1;
    }
    if (s != AD_OK) {
        ad_h5_close_quietly(f);
        ad_model_free(m);
        if (tok) ad_tokenizer_free(tok);
        if (st) train_state_clear(st);
    }
    return s;
}
