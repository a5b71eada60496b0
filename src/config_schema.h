/* config_schema.h (internal): a table-driven engine that maps dotted JSON key paths
 * onto fields of a plain C struct. A config is one table of rows (key, type, offset,
 * range or choices, default, help); the engine fills defaults, applies "a.b=v"
 * overrides to a cJSON tree, parses the tree into the struct with errors that name the
 * source and the key path, and writes the struct back as JSON that reloads exactly.
 * Cross-field rules and "0 means automatic" resolutions belong to the caller. */
#ifndef AUTODIDACT_CONFIG_SCHEMA_H
#define AUTODIDACT_CONFIG_SCHEMA_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "autodidact/common.h"
#include "autodidact/config.h"

typedef enum {
    AD_SCHEMA_INT = 0, /* int: a JSON integer within [min, max] (3.5 is an error) */
    AD_SCHEMA_U64,     /* uint64_t: a JSON integer below 2^53, or a decimal string for the
                          full range; min/max unused */
    AD_SCHEMA_DOUBLE,  /* double: a finite JSON number within the range */
    AD_SCHEMA_FLOAT,   /* float: as double, then rounded to float */
    AD_SCHEMA_BOOL,    /* int 0/1: JSON true or false */
    AD_SCHEMA_STRING,  /* char[cap]: a JSON string of at most cap-1 bytes of valid UTF-8 */
    AD_SCHEMA_CHOICE,  /* char[cap]: a JSON string equal to one of `choices`, or, when
                          choices is NULL, to one of enum_name(0 .. n_enum-1) (a name list
                          owned by another module: enum_parse must map each name back) */
    AD_SCHEMA_ENUM     /* int-sized C enum: a JSON string that enum_parse maps to >= 0;
                          enum_name(0 .. n_enum-1) are the names */
} AdSchemaType;

/* Row flags. */
enum {
    AD_SCHEMA_MIN_OPEN = 1, /* the range excludes min: (min, max] */
    AD_SCHEMA_MAX_OPEN = 2, /* the range excludes max: [min, max) */
    AD_SCHEMA_EARLY = 4     /* applied before every other row, wherever it sits in the JSON
                               (e.g. a preset that later keys refine) */
};

typedef struct AdSchemaRow {
    const char *key;             /* dotted path, e.g. "train.lr" */
    AdSchemaType type;
    size_t offset;               /* offsetof(target struct, field) */
    size_t cap;                  /* STRING, CHOICE: size of the char array, NUL included */
    double min, max;             /* INT, DOUBLE, FLOAT: the valid range (see flags) */
    int flags;
    const char *def;             /* default as text ("128", "1e-3", "true", "cosine");
                                    NULL: the field is left to an on_set hook */
    const char *const *choices;  /* CHOICE: NULL-terminated list (or NULL, see above) */
    int (*enum_parse)(const char *name);     /* ENUM, list-less CHOICE: -1 when unknown */
    const char *(*enum_name)(int value);     /* ENUM, list-less CHOICE */
    int n_enum;                              /* ENUM, list-less CHOICE: values 0 .. n_enum-1 */
    /* Called after the row's value has been stored into `target` (by defaults or by
     * parse, not while checking an override). May change other fields; returns a
     * status whose message should name `source`. */
    AdStatus (*on_set)(void *target, const char *source);
    const char *help;
} AdSchemaRow;

typedef struct {
    const AdSchemaRow *rows;
    int n_rows;
} AdSchema;

/* The row with exactly this key path, or NULL. */
const AdSchemaRow *ad_schema_find(const AdSchema *s, const char *key);

/* Checks the table itself: keys unique and well formed, no key both a leaf and a group,
 * every default converts and lies in range. AD_ERR_INTERNAL names the faulty row.
 * Meant for unit tests of each table. */
AdStatus ad_schema_check(const AdSchema *s);

/* Stores every row's default into `target` (EARLY rows first, then the rest in row
 * order), running on_set hooks.
 * String fields are zero-filled past their NUL so that equal configs compare equal
 * with memcmp. A default that fails to convert is a bug in the table: it asserts. */
void ad_schema_defaults(const AdSchema *s, void *target);

/* Parses JSON text into a tree whose root must be an object. On malformed JSON the
 * AD_ERR_CONFIG message names `source`, the line and the column. *out is NULL on
 * error; otherwise the caller frees it with cJSON_Delete. */
AdStatus ad_schema_parse_text(const char *text, const char *source, cJSON **out);

/* Reads a config file (at most 16 MiB, no NUL bytes) into a NUL-terminated buffer that
 * the caller frees. AD_ERR_IO or AD_ERR_CONFIG naming the path; *out is NULL on error. */
AdStatus ad_schema_read_file(const char *path, char **out);

/* Applies "a.b=v" overrides, in order, to the tree `root` (an object). v is parsed as
 * JSON if it parses, else taken as a string; for a U64 row a plain run of decimal
 * digits is kept as a string so that seeds above 2^53 stay exact. The key must be a
 * row of the schema, and the value must convert for that row (checked here so the
 * message names the override); intermediate objects are created as needed. */
AdStatus ad_schema_apply_overrides(const AdSchema *s, cJSON *root,
                                   const char *const *overrides, int n_overrides);

/* Parses the tree into `target`, over whatever it holds (normally defaults). EARLY
 * rows are applied first, then the rest. Errors (AD_ERR_CONFIG, messages start with
 * "<source>: "): unknown key (with the closest known key when one is within edit
 * distance 2), duplicate key at any depth, wrong JSON type (an object where a value is
 * expected and the reverse), non-integer or out-of-range numbers, integers at or above
 * 2^53, strings longer than their field, unknown choices, invalid UTF-8. On error
 * `target` holds a partial mix of old and new values. */
AdStatus ad_schema_parse(const AdSchema *s, void *target, const cJSON *root, const char *source);

/* The struct as a cJSON tree (every row, nested by key path). Numbers are raw items
 * printed with the fewest significant digits (at most 17 for double, 9 for float)
 * that read back to the same bits; a U64 at or above 2^53 is written as a decimal
 * string. NULL on allocation failure (message recorded). */
cJSON *ad_schema_to_cjson(const AdSchema *s, const void *target);
/* The same as pretty-printed JSON text; caller frees with free(). NULL on failure. */
char *ad_schema_to_json(const AdSchema *s, const void *target);

/* Prints one line per row: key, type with range or choices, the value held in
 * `defaults`, and the help text. */
void ad_schema_print_keys(const AdSchema *s, const void *defaults, FILE *f);

/* ---- A whole config struct: its table and the rules a table cannot express ---- */
typedef struct {
    const AdSchema *schema;
    size_t size;                /* sizeof the config struct */
    const char *default_source; /* names the text in messages when the caller gives no name */
    const char *parse_name;     /* the public parse function, named in argument errors */
    void (*resolve)(void *cfg); /* replaces the "0 = automatic" values by their values */
    AdStatus (*check)(const void *cfg, const char *source); /* rules that tie several keys
                                                               together, on a resolved struct */
} AdConfigSpec;

/* Zero-fills *cfg, stores the defaults and resolves them. */
void ad_config_spec_defaults(const AdConfigSpec *k, void *cfg);
/* Parses json_text into *cfg over the defaults: the text, the overrides, the rows, then
 * resolve and check. It works on a scratch copy (allocated: AD_ERR_NOMEM is possible),
 * so *cfg changes only on success.
 * Messages start with source_name (NULL: k->default_source); a NULL cfg or text or bad
 * overrides are AD_ERR_ARG. */
AdStatus ad_config_spec_parse(const AdConfigSpec *k, void *cfg, const char *json_text,
                              const char *source_name, const char *const *overrides,
                              int n_overrides);
/* Reads the config file at path (ad_schema_read_file) and parses it as above, named by
 * the path. */
AdStatus ad_config_spec_load(const AdConfigSpec *k, void *cfg, const char *path,
                             const char *const *overrides, int n_overrides);

/* The tables (config.c, experiment.c), for tests that check the table itself. */
const AdSchema *ad_train_config_schema(void);
const AdSchema *ad_experiment_config_schema(void);

/* ---- The "model.*" keys, shared by every config that builds a model (config.c) ----
 * Such a config struct T holds `char family[16]; AdModelConfig model;
 * char init_from[AD_PATH_MAX];`. */

extern const char *const ad_config_family_names[]; /* "gpt2", "llama", NULL */
/* AdNormKind / AdMlpKind / AdPosKind names with an int argument, for ENUM rows. */
const char *ad_config_norm_name(int k);
const char *ad_config_rope_scaling_name(int k);
const char *ad_config_mlp_name(int k);
const char *ad_config_pos_name(int k);
const char *ad_config_init_name(int k);

/* The body of T's model.family hook: resets the architecture switches of *m to the
 * family's preset, keeping the sizes. */
AdStatus ad_config_model_family(AdModelConfig *m, const char *family, const char *source);
/* Replaces the "0 = automatic" sizes: n_kv_head 0 -> n_head; d_ff 0 -> 4 * d_model for
 * gelu, 2/3 of 4 * d_model rounded up to a multiple of 32 for swiglu. */
void ad_config_model_resolve(AdModelConfig *m);
/* Cross-field rules of a resolved model (head divisibility, even RoPE heads); the
 * message starts with "<source>: " and names the key. */
AdStatus ad_config_model_check(const AdModelConfig *m, const char *source);

/* The model rows of struct T: family_hook is T's model.family on_set (a call of
 * ad_config_model_family); max_seq_len_def is the default of model.max_seq_len;
 * pos_def the default of model.pos (NULL: the family preset's). */
#define AD_CONFIG_MODEL_ROWS(T, family_hook, max_seq_len_def, pos_def)                             \
    {.key = "model.family", .type = AD_SCHEMA_CHOICE, .offset = offsetof(T, family),               \
     .cap = sizeof(((T *)0)->family), .choices = ad_config_family_names,                           \
     .flags = AD_SCHEMA_EARLY, .def = "gpt2", .on_set = family_hook,                               \
     .help = "architecture preset; sets norm, mlp, pos, bias, tied, norm_eps and rope_theta "      \
             "before the other model keys apply, so those keys, where the file or --set gives "    \
             "them, win over the preset (--set model.family=llama keeps a file's \"pos\")"},       \
    {.key = "model.vocab_size", .type = AD_SCHEMA_INT, .offset = offsetof(T, model.vocab_size),    \
     .min = 0, .max = 1 << 21, .def = "0", .help = "vocabulary size V; 0 = the tokenizer's"},      \
    {.key = "model.max_seq_len", .type = AD_SCHEMA_INT, .offset = offsetof(T, model.max_seq_len),  \
     .min = 1, .max = 1 << 16, .def = max_seq_len_def,                                             \
     .help = "longest sequence the model handles (learned position table, RoPE limit)"},           \
    {.key = "model.n_layer", .type = AD_SCHEMA_INT, .offset = offsetof(T, model.n_layer),          \
     .min = 1, .max = 1024, .def = "4", .help = "transformer blocks"},                             \
    {.key = "model.n_head", .type = AD_SCHEMA_INT, .offset = offsetof(T, model.n_head), .min = 1,  \
     .max = 4096, .def = "4", .help = "query heads; must divide d_model"},                         \
    {.key = "model.n_kv_head", .type = AD_SCHEMA_INT, .offset = offsetof(T, model.n_kv_head),      \
     .min = 0, .max = 4096, .def = "0",                                                            \
     .help = "key/value heads (grouped-query attention); must divide n_head; 0 = n_head"},         \
    {.key = "model.d_model", .type = AD_SCHEMA_INT, .offset = offsetof(T, model.d_model),          \
     .min = 1, .max = 1 << 16, .def = "128", .help = "embedding width C"},                         \
    {.key = "model.d_ff", .type = AD_SCHEMA_INT, .offset = offsetof(T, model.d_ff), .min = 0,      \
     .max = 1 << 20, .def = "0",                                                                   \
     .help = "MLP hidden width; 0 = 4*d_model for gelu, 2/3 of 4*d_model rounded up to a "         \
             "multiple of 32 for swiglu"},                                                         \
    {.key = "model.norm", .type = AD_SCHEMA_ENUM, .offset = offsetof(T, model.norm),               \
     .enum_parse = ad_norm_parse, .enum_name = ad_config_norm_name, .n_enum = 2,                   \
     .help = "normalisation (family preset)"},                                                     \
    {.key = "model.mlp", .type = AD_SCHEMA_ENUM, .offset = offsetof(T, model.mlp),                 \
     .enum_parse = ad_mlp_parse, .enum_name = ad_config_mlp_name, .n_enum = 2,                     \
     .help = "MLP kind (family preset)"},                                                          \
    {.key = "model.pos", .type = AD_SCHEMA_ENUM, .offset = offsetof(T, model.pos),                 \
     .enum_parse = ad_pos_parse, .enum_name = ad_config_pos_name, .n_enum = 3, .def = pos_def,     \
     .help = "position encoding (family preset); none = no positional encoding"},                  \
    {.key = "model.bias", .type = AD_SCHEMA_BOOL, .offset = offsetof(T, model.bias),               \
     .help = "biases in linear layers and norms (family preset)"},                                 \
    {.key = "model.tied", .type = AD_SCHEMA_BOOL, .offset = offsetof(T, model.tied),               \
     .help = "classifier shares the token embedding (family preset)"},                             \
    {.key = "model.norm_eps", .type = AD_SCHEMA_FLOAT, .offset = offsetof(T, model.norm_eps),      \
     .min = 0, .max = 1, .flags = AD_SCHEMA_MIN_OPEN,                                              \
     .help = "epsilon of the norms (family preset)"},                                              \
    {.key = "model.rope_theta", .type = AD_SCHEMA_FLOAT, .offset = offsetof(T, model.rope_theta),  \
     .min = 0, .max = 1e12, .flags = AD_SCHEMA_MIN_OPEN,                                           \
     .help = "RoPE base frequency (family preset)"},                                               \
    {.key = "model.qkv_bias", .type = AD_SCHEMA_BOOL, .offset = offsetof(T, model.qkv_bias),       \
     .help = "biases on the q, k, v projections only, even with bias false (Qwen2)"},              \
    {.key = "model.sliding_window", .type = AD_SCHEMA_INT,                                         \
     .offset = offsetof(T, model.sliding_window), .min = 0, .max = 1 << 24,                        \
     .help = "W > 0: each position attends to the last W positions only (Mistral); 0 = all"},      \
    {.key = "model.rope_scaling", .type = AD_SCHEMA_ENUM, .offset = offsetof(T, model.rope_scaling), \
     .enum_parse = ad_rope_scaling_parse, .enum_name = ad_config_rope_scaling_name, .n_enum = 2,   \
     .help = "RoPE frequency scaling: none, or llama3 (Llama 3.1+; the four rope_* keys below)"},  \
    {.key = "model.rope_factor", .type = AD_SCHEMA_FLOAT, .offset = offsetof(T, model.rope_factor), \
     .min = 0, .max = 1e6, .help = "llama3 scaling: divisor of the low frequencies (>= 1)"},       \
    {.key = "model.rope_low_freq_factor", .type = AD_SCHEMA_FLOAT,                                 \
     .offset = offsetof(T, model.rope_low_freq_factor), .min = 0, .max = 1e6,                      \
     .help = "llama3 scaling: wavelengths above original_max_pos / this are divided"},             \
    {.key = "model.rope_high_freq_factor", .type = AD_SCHEMA_FLOAT,                                \
     .offset = offsetof(T, model.rope_high_freq_factor), .min = 0, .max = 1e6,                     \
     .help = "llama3 scaling: wavelengths below original_max_pos / this are kept"},                \
    {.key = "model.rope_original_max_pos", .type = AD_SCHEMA_INT,                                  \
     .offset = offsetof(T, model.rope_original_max_pos), .min = 0, .max = 1 << 24,                 \
     .help = "llama3 scaling: the context length the model was first trained at"},                \
    {.key = "model.init_from", .type = AD_SCHEMA_STRING, .offset = offsetof(T, init_from),         \
     .cap = sizeof(((T *)0)->init_from), .def = "",                                                \
     .help = "checkpoint to start from; \"\" = random init"},                                        \
    {.key = "model.init", .type = AD_SCHEMA_ENUM, .offset = offsetof(T, init),                     \
     .enum_parse = ad_init_parse, .enum_name = ad_config_init_name, .n_enum = 2, .def = "gpt2",    \
     .help = "random initialisation: gpt2 = N(0, 0.02), residual projections / sqrt(2L); "       \
             "torch = PyTorch's module defaults (embeddings N(0, 1), linear layers and their "     \
             "biases U(+-1/sqrt(fan_in)))"}

#endif
