/* config_schema.h (internal): a table-driven engine that maps dotted JSON key paths
 * onto fields of a plain C struct. A config is one table of rows (key, type, offset,
 * range or choices, default, help); the engine fills defaults, applies "a.b=v"
 * overrides to a cJSON tree, parses the tree into the struct with errors that name the
 * source and the key path, and writes the struct back as JSON that reloads exactly.
 * Cross-field rules and "0 means automatic" resolutions belong to the caller. */
#ifndef AUTODIDACT_CONFIG_SCHEMA_H
#define AUTODIDACT_CONFIG_SCHEMA_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "autodidact/common.h"

typedef enum {
    AD_SCHEMA_INT = 0, /* int: a JSON integer within [min, max] (3.5 is an error) */
    AD_SCHEMA_U64,     /* uint64_t: a JSON integer below 2^53, or a decimal string for the
                          full range; min/max unused */
    AD_SCHEMA_DOUBLE,  /* double: a finite JSON number within the range */
    AD_SCHEMA_FLOAT,   /* float: as double, then rounded to float */
    AD_SCHEMA_BOOL,    /* int 0/1: JSON true or false */
    AD_SCHEMA_STRING,  /* char[cap]: a JSON string of at most cap-1 bytes of valid UTF-8 */
    AD_SCHEMA_CHOICE,  /* char[cap]: a JSON string equal to one of `choices` */
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
    const char *const *choices;  /* CHOICE: NULL-terminated list */
    int (*enum_parse)(const char *name);     /* ENUM: -1 when unknown */
    const char *(*enum_name)(int value);     /* ENUM */
    int n_enum;                              /* ENUM: values 0 .. n_enum-1 */
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

/* The AdTrainConfig table (config.c), for tests that check the table itself. */
const AdSchema *ad_train_config_schema(void);

#endif
