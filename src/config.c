/* config.c: the training config (AdTrainConfig) as one schema table, plus the rules a
 * table cannot express: the model family preset, "0 = automatic" sizes and cross-field
 * checks (the model's are shared with experiment.c). First step of every command; it
 * reads JSON text only, leaving what values mean to the modules that use them. */
#include "autodidact/config.h"

#include <stddef.h>
#include <string.h>

#include "config_schema.h"

_Static_assert(sizeof(AdNormKind) == sizeof(int) && sizeof(AdMlpKind) == sizeof(int) &&
                   sizeof(AdPosKind) == sizeof(int) && sizeof(AdRopeScalingKind) == sizeof(int),
               "the schema stores C enums as int");

/* Task names as in tasks.h (kept here so that parsing a config needs no task code). */
static const char *const task_names[] = {"copy", "reverse", "add", "radd", "mul", "sort", NULL};
static const char *const source_names[] = {"task", "text", NULL};
static const char *const tokenizer_names[] = {"char", "byte", NULL};
static const char *const schedule_names[] = {"constant", "cosine", "linear", "wsd", NULL};

/* ---- the model keys, shared with experiment.c (declared in config_schema.h) ---- */

const char *const ad_config_family_names[] = {"gpt2", "llama", NULL};

const char *ad_config_norm_name(int k) { return ad_norm_name((AdNormKind)k); }
const char *ad_config_mlp_name(int k) { return ad_mlp_name((AdMlpKind)k); }
const char *ad_config_pos_name(int k) { return ad_pos_name((AdPosKind)k); }
const char *ad_config_init_name(int k) { return ad_init_name((AdInitKind)k); }
const char *ad_config_rope_scaling_name(int k) {
    return ad_rope_scaling_name((AdRopeScalingKind)k);
}

AdStatus ad_config_model_family(AdModelConfig *m, const char *family, const char *source) {
    AdModelConfig keep = *m;
    if (ad_model_config_preset(m, family) != AD_OK)
        return ad_fail_context(AD_ERR_CONFIG, "%s: model.family", source);
    m->vocab_size = keep.vocab_size;
    m->max_seq_len = keep.max_seq_len;
    m->n_layer = keep.n_layer;
    m->n_head = keep.n_head;
    m->n_kv_head = keep.n_kv_head;
    m->d_model = keep.d_model;
    m->d_ff = keep.d_ff;
    return AD_OK;
}

void ad_config_model_resolve(AdModelConfig *m) {
    if (m->n_kv_head == 0) m->n_kv_head = m->n_head;
    if (m->d_ff == 0) {
        if (m->mlp == AD_MLP_SWIGLU) {
            int hidden = 2 * (4 * m->d_model) / 3; /* Llama: multiple_of 32 */
            m->d_ff = 32 * ((hidden + 31) / 32);
        } else {
            m->d_ff = 4 * m->d_model;
        }
    }
}

AdStatus ad_config_model_check(const AdModelConfig *m, const char *src) {
    if (m->d_model % m->n_head != 0)
        return ad_fail(AD_ERR_CONFIG, "%s: model.d_model: %d is not divisible by model.n_head (%d)",
                       src, m->d_model, m->n_head);
    if (m->n_head % m->n_kv_head != 0)
        return ad_fail(AD_ERR_CONFIG, "%s: model.n_kv_head: %d does not divide model.n_head (%d)",
                       src, m->n_kv_head, m->n_head);
    if (m->pos == AD_POS_ROPE && (m->d_model / m->n_head) % 2 != 0)
        return ad_fail(AD_ERR_CONFIG, "%s: model.pos: rope needs an even head size, but "
                       "model.d_model / model.n_head = %d", src, m->d_model / m->n_head);
    return AD_OK;
}

/* ---- the train config ---- */

/* model.family: reset the architecture switches to the family's preset, keeping the
 * sizes, before any other model key applies (the row is AD_SCHEMA_EARLY). */
static AdStatus apply_family(void *target, const char *source) {
    AdTrainConfig *c = target;
    return ad_config_model_family(&c->model, c->family, source);
}

#define OFF(f) offsetof(AdTrainConfig, f)
#define CAP(f) sizeof(((AdTrainConfig *)0)->f)
#define INT(k, f, lo, hi, d, h) \
    {.key = k, .type = AD_SCHEMA_INT, .offset = OFF(f), .min = lo, .max = hi, .def = d, .help = h}
#define NUM(k, f, lo, hi, fl, d, h)                                                          \
    {.key = k, .type = AD_SCHEMA_DOUBLE, .offset = OFF(f), .min = lo, .max = hi, .flags = fl, \
     .def = d, .help = h}
#define STR(k, f, d, h) \
    {.key = k, .type = AD_SCHEMA_STRING, .offset = OFF(f), .cap = CAP(f), .def = d, .help = h}
#define CHOICE(k, f, names, d, h)                                                        \
    {.key = k, .type = AD_SCHEMA_CHOICE, .offset = OFF(f), .cap = CAP(f), .choices = names, \
     .def = d, .help = h}

static const AdSchemaRow train_rows[] = {
    AD_CONFIG_MODEL_ROWS(AdTrainConfig, apply_family, "128", NULL),
    STR("model.tokenizer_from", tokenizer_from, "",
        "tokenizer of a new model: \"\" = data.tokenizer; else the path of a checkpoint whose "
        "tokenizer (any kind, BPE included) it takes, e.g. an imported model's"),

    CHOICE("data.source", data.source, source_names, "task",
           "training data: a built-in task or a text file"),
    CHOICE("data.task", data.task, task_names, "radd", "task when data.source is \"task\""),
    INT("data.min_len", data.min_len, 1, 512, "1", "shortest task length (digits or symbols)"),
    INT("data.max_len", data.max_len, 1, 512, "5", "longest task length; >= data.min_len"),
    {.key = "data.pad_answer", .type = AD_SCHEMA_BOOL, .offset = OFF(data.pad_answer),
     .def = "false",
     .help = "add, radd, mul: write every answer at its longest length, zero-padded on the most "
             "significant side (radd 5+3 -> \"80\")"},
    STR("data.path", data.path, "", "text file; required when data.source is \"text\""),
    CHOICE("data.tokenizer", data.tokenizer, tokenizer_names, "char",
           "tokenizer of a new model when model.tokenizer_from is empty"),
    NUM("data.val_frac", data.val_frac, 0, 1, AD_SCHEMA_MAX_OPEN, "0.05",
        "fraction of a text file held out for evaluation"),

    INT("train.steps", train.steps, 1, 100000000, "1000", "optimizer updates"),
    INT("train.batch_size", train.batch_size, 1, 1 << 20, "16", "sequences per micro-batch"),
    INT("train.seq_len", train.seq_len, 0, 1 << 16, "0",
        "tokens per training sequence; <= model.max_seq_len; 0 = model.max_seq_len"),
    INT("train.grad_accum", train.grad_accum, 1, 1 << 16, "1", "micro-batches per update"),
    NUM("train.lr", train.lr, 0, 10, AD_SCHEMA_MIN_OPEN, "1e-3", "peak learning rate"),
    NUM("train.min_lr", train.min_lr, 0, 10, 0, "1e-4",
        "learning rate at the end of the decay; <= train.lr"),
    CHOICE("train.schedule", train.schedule, schedule_names, "cosine",
           "learning-rate schedule after warmup"),
    INT("train.warmup_steps", train.warmup_steps, 0, 100000000, "100",
        "linear warmup steps"),
    INT("train.decay_steps", train.decay_steps, 0, 100000000, "0",
        "wsd: steps of the final linear decay to min_lr"),
    NUM("train.weight_decay", train.weight_decay, 0, 10, 0, "0.1",
        "AdamW decoupled weight decay (matrices only)"),
    NUM("train.beta1", train.beta1, 0, 1, AD_SCHEMA_MAX_OPEN, "0.9", "AdamW beta1"),
    NUM("train.beta2", train.beta2, 0, 1, AD_SCHEMA_MAX_OPEN, "0.95", "AdamW beta2"),
    NUM("train.eps", train.eps, 0, 1, AD_SCHEMA_MIN_OPEN, "1e-8", "AdamW epsilon"),
    NUM("train.grad_clip", train.grad_clip, 0, 1e6, 0, "1.0",
        "maximum global gradient norm; 0 = no clipping"),
    INT("train.log_every", train.log_every, 0, 100000000, "10",
        "steps between progress lines; 0 = never"),
    INT("train.eval_every", train.eval_every, 0, 100000000, "200",
        "steps between evaluations; 0 = never"),
    INT("train.ckpt_every", train.ckpt_every, 0, 100000000, "500",
        "steps between checkpoints; 0 = only at the end"),
    INT("train.eval_batches", train.eval_batches, 1, 1000000, "8",
        "batches (or task examples / batch_size) per evaluation"),

    {.key = "seed", .type = AD_SCHEMA_U64, .offset = OFF(seed), .def = "1337",
     .help = "seed of every random stream; above 2^53 give it as a decimal string"},
    INT("threads", threads, 0, 1024, "0", "OpenMP/BLAS threads; 0 = the OpenMP default"),
    STR("out_dir", out_dir, "runs/train", "directory for checkpoints and logs"),
};

static const AdSchema train_schema = {train_rows, (int)(sizeof train_rows / sizeof train_rows[0])};

const AdSchema *ad_train_config_schema(void) { return &train_schema; }

/* Replaces the "0 = automatic" sizes by their values. */
static void resolve(void *cfg) {
    AdTrainConfig *c = cfg;
    ad_config_model_resolve(&c->model);
    if (c->train.seq_len == 0) c->train.seq_len = c->model.max_seq_len;
}

/* Rules that tie several keys together, on a resolved config. */
static AdStatus check(const void *cfg, const char *src) {
    const AdTrainConfig *c = cfg;
    const AdModelConfig *m = &c->model;
    AdStatus st = ad_config_model_check(m, src);
    if (st != AD_OK) return st;
    if (c->train.seq_len > m->max_seq_len)
        return ad_fail(AD_ERR_CONFIG, "%s: train.seq_len: %d exceeds model.max_seq_len (%d)", src,
                       c->train.seq_len, m->max_seq_len);
    if (c->data.min_len > c->data.max_len)
        return ad_fail(AD_ERR_CONFIG, "%s: data.min_len: %d is greater than data.max_len (%d)",
                       src, c->data.min_len, c->data.max_len);
    if (strcmp(c->data.source, "text") == 0 && c->data.path[0] == '\0')
        return ad_fail(AD_ERR_CONFIG, "%s: data.path: required when data.source is \"text\"", src);
    if (c->tokenizer_from[0] && c->init_from[0])
        return ad_fail(AD_ERR_CONFIG, "%s: model.tokenizer_from: \"%s\" is for a new model; a model "
                       "from model.init_from (%s) keeps that checkpoint's tokenizer: leave "
                       "model.tokenizer_from empty", src, c->tokenizer_from, c->init_from);
    if (c->train.min_lr > c->train.lr)
        return ad_fail(AD_ERR_CONFIG, "%s: train.min_lr: %g is greater than train.lr (%g)", src,
                       c->train.min_lr, c->train.lr);
    return AD_OK;
}

static const AdConfigSpec train_spec = {
    .schema = &train_schema, .size = sizeof(AdTrainConfig), .default_source = "config",
    .parse_name = "ad_train_config_parse", .resolve = resolve, .check = check};

void ad_train_config_defaults(AdTrainConfig *c) { ad_config_spec_defaults(&train_spec, c); }

AdStatus ad_train_config_parse(AdTrainConfig *c, const char *json_text, const char *source_name,
                               const char *const *overrides, int n_overrides) {
    return ad_config_spec_parse(&train_spec, c, json_text, source_name, overrides, n_overrides);
}

AdStatus ad_train_config_load(AdTrainConfig *c, const char *path, const char *const *overrides,
                              int n_overrides) {
    return ad_config_spec_load(&train_spec, c, path, overrides, n_overrides);
}

char *ad_train_config_to_json(const AdTrainConfig *c) { return ad_schema_to_json(&train_schema, c); }

void ad_train_config_print_keys(FILE *f) {
    AdTrainConfig d;
    memset(&d, 0, sizeof d);
    ad_schema_defaults(&train_schema, &d); /* unresolved: shows 0 for the automatic sizes */
    ad_schema_print_keys(&train_schema, &d, f);
}
