/* config_schema.c: the table-driven engine behind every JSON config (see config_schema.h).
 * It sits between cJSON and the config structs of config.c: rows in, typed fields out,
 * and back to JSON text for run files. It knows no particular config: presets,
 * "0 = automatic" rules and cross-field checks are left to the table's owner. */
#include "config_schema.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 256    /* longest key path handled; longer names are unknown keys */
#define QUOTE_MAX 48        /* bytes of a user string shown in a message */
#define TWO_POW_53 9007199254740992.0
#define CONFIG_FILE_MAX (16u << 20) /* bytes; a config is a few KiB */

/* ---- small text helpers ---- */

/* 1 if s[0..n) is valid UTF-8 (no overlong forms, surrogates or code points > U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
            return 0;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

/* Writes s as a double-quoted string for a message: control characters (and every byte
 * >= 0x80 when s is not valid UTF-8) escaped as \xNN, cut after QUOTE_MAX bytes. */
static void quote(const char *s, char *buf, size_t cap) {
    size_t n = strlen(s);
    int valid = utf8_valid((const unsigned char *)s, n);
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == QUOTE_MAX) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !valid)) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* Formats a double with the fewest digits that read back (strtod) to the same value:
 * integers below 1e17 in plain notation (keeping the sign of -0), else %.1g .. %.17g. */
static void fmt_double(double v, char *buf, size_t cap) {
    if (!isfinite(v)) {
        snprintf(buf, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e17) {
        snprintf(buf, cap, "%.0f", v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* The same for a float: the fewest digits (at most 9) that read back through
 * strtod and a conversion to float to the same float. */
static void fmt_float(float v, char *buf, size_t cap) {
    if (!isfinite(v) || (v == floorf(v) && fabsf(v) < 1e17f)) {
        fmt_double((double)v, buf, cap);
        return;
    }
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, cap, "%.*g", p, (double)v);
        if ((float)strtod(buf, NULL) == v) return;
    }
}

/* What a JSON item is, for "expected X, got Y" messages. */
static void describe(const cJSON *it, char *buf, size_t cap) {
    char tmp[2 * QUOTE_MAX + 16];
    if (cJSON_IsObject(it)) snprintf(buf, cap, "an object");
    else if (cJSON_IsArray(it)) snprintf(buf, cap, "an array");
    else if (cJSON_IsTrue(it)) snprintf(buf, cap, "true");
    else if (cJSON_IsFalse(it)) snprintf(buf, cap, "false");
    else if (cJSON_IsNull(it)) snprintf(buf, cap, "null");
    else if (cJSON_IsNumber(it)) {
        fmt_double(it->valuedouble, tmp, sizeof tmp);
        snprintf(buf, cap, "number %s", tmp);
    } else if (cJSON_IsString(it)) {
        quote(it->valuestring, tmp, sizeof tmp);
        snprintf(buf, cap, "string %s", tmp);
    } else snprintf(buf, cap, "an invalid item");
}

/* Levenshtein distance, giving up (returning limit + 1) for lengths beyond PATH_MAX_LEN. */
static int edit_distance(const char *a, const char *b, int limit) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > PATH_MAX_LEN || nb > PATH_MAX_LEN) return limit + 1;
    if ((na > nb ? na - nb : nb - na) > (size_t)limit) return limit + 1;
    int row[PATH_MAX_LEN + 1];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* ---- rows and groups ---- */

const AdSchemaRow *ad_schema_find(const AdSchema *s, const char *key) {
    for (int i = 0; i < s->n_rows; i++)
        if (strcmp(s->rows[i].key, key) == 0) return &s->rows[i];
    return NULL;
}

/* 1 if `path` names a group: some row's key starts with path + ".". */
static int is_group(const AdSchema *s, const char *path) {
    size_t n = strlen(path);
    for (int i = 0; i < s->n_rows; i++) {
        const char *k = s->rows[i].key;
        if (strncmp(k, path, n) == 0 && k[n] == '.') return 1;
    }
    return 0;
}

/* Fills `buf` with " (did you mean X?)" for the known key or group closest to `path`
 * (edit distance <= 2, else a row whose last component equals path's), or "". */
static void suggest(const AdSchema *s, const char *path, char *buf, size_t cap) {
    char cand[PATH_MAX_LEN + 1];
    int best = 3;
    const char *best_key = NULL;
    size_t best_len = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->n_rows; i++) {
        const char *k = s->rows[i].key;
        /* the key itself and each of its group prefixes */
        for (const char *dot = k;; dot++) {
            if (*dot != '.' && *dot != '\0') continue;
            size_t len = (size_t)(dot - k);
            if (len <= PATH_MAX_LEN) {
                memcpy(cand, k, len);
                cand[len] = '\0';
                int d = edit_distance(path, cand, 2);
                if (d < best) {
                    best = d;
                    best_key = k;
                    best_len = len;
                }
            }
            if (*dot == '\0') break;
        }
    }
    if (best_key) {
        snprintf(buf, cap, " (did you mean %.*s?)", (int)best_len, best_key);
        return;
    }
    size_t n = strlen(path);
    for (int i = 0; i < s->n_rows; i++) {
        const char *k = s->rows[i].key;
        if (strncmp(k, path, n) == 0 && k[n] != '.') {
            snprintf(buf, cap, " (did you mean %s?)", k);
            return;
        }
    }
    const char *leaf = strrchr(path, '.');
    leaf = leaf ? leaf + 1 : path;
    for (int i = 0; i < s->n_rows; i++) {
        const char *k = s->rows[i].key;
        const char *kleaf = strrchr(k, '.');
        kleaf = kleaf ? kleaf + 1 : k;
        if (strcmp(kleaf, leaf) == 0) {
            snprintf(buf, cap, " (did you mean %s?)", k);
            return;
        }
    }
}

static AdStatus fail_unknown(const AdSchema *s, const char *source, const char *path) {
    char q[2 * QUOTE_MAX + 16], hint[PATH_MAX_LEN + 32];
    quote(path, q, sizeof q);
    suggest(s, path, hint, sizeof hint);
    return ad_fail(AD_ERR_CONFIG, "%s: unknown key %s%s", source, q, hint);
}

/* 1 for a CHOICE row whose names come from a list, 0 for one (or an ENUM row) whose
 * names come from enum_name(0 .. n_enum-1). */
static int has_list(const AdSchemaRow *r) { return r->type == AD_SCHEMA_CHOICE && r->choices; }

/* "one of a, b, c" for a CHOICE or ENUM row. */
static void list_choices(const AdSchemaRow *r, char *buf, size_t cap, const char *sep) {
    size_t o = 0;
    buf[0] = '\0';
    int n = has_list(r) ? 0 : r->n_enum;
    if (has_list(r))
        while (r->choices[n]) n++;
    for (int i = 0; i < n && o < cap; i++) {
        const char *name = has_list(r) ? r->choices[i] : r->enum_name(i);
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? sep : "", name ? name : "?");
    }
}

/* "[1, 100]", "(0, 10]" for a numeric row. */
static void fmt_range(const AdSchemaRow *r, char *buf, size_t cap) {
    char lo[40], hi[40];
    fmt_double(r->min, lo, sizeof lo);
    fmt_double(r->max, hi, sizeof hi);
    snprintf(buf, cap, "%c%s, %s%c", (r->flags & AD_SCHEMA_MIN_OPEN) ? '(' : '[', lo, hi,
             (r->flags & AD_SCHEMA_MAX_OPEN) ? ')' : ']');
}

static int in_range(const AdSchemaRow *r, double v) {
    if (!(r->flags & AD_SCHEMA_MIN_OPEN) ? !(v >= r->min) : !(v > r->min)) return 0;
    if (!(r->flags & AD_SCHEMA_MAX_OPEN) ? !(v <= r->max) : !(v < r->max)) return 0;
    return 1;
}

/* ---- converting one JSON value ---- */

static const char *expected_what(const AdSchemaRow *r) {
    switch (r->type) {
    case AD_SCHEMA_INT: return "an integer";
    case AD_SCHEMA_U64: return "an integer or a decimal string";
    case AD_SCHEMA_DOUBLE:
    case AD_SCHEMA_FLOAT: return "a number";
    case AD_SCHEMA_BOOL: return "true or false";
    case AD_SCHEMA_STRING: return "a string";
    case AD_SCHEMA_CHOICE:
    case AD_SCHEMA_ENUM: return "a string";
    }
    return "a value";
}

static AdStatus fail_type(const AdSchemaRow *r, const cJSON *it, const char *source) {
    char got[2 * QUOTE_MAX + 32];
    describe(it, got, sizeof got);
    return ad_fail(AD_ERR_CONFIG, "%s: %s: expected %s, got %s", source, r->key, expected_what(r),
                   got);
}

static AdStatus fail_range(const AdSchemaRow *r, double v, const char *source) {
    char num[40], range[96];
    fmt_double(v, num, sizeof num);
    fmt_range(r, range, sizeof range);
    return ad_fail(AD_ERR_CONFIG, "%s: %s: %s is out of range %s", source, r->key, num, range);
}

/* Copies a string into a char[cap] field, zero-filling the rest. */
static void store_string(void *field, size_t cap, const char *s) {
    memset(field, 0, cap);
    memcpy(field, s, strlen(s));
}

/* Decimal digits only, no sign, no blanks, at least one. */
static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

static AdStatus convert_u64(const AdSchemaRow *r, const cJSON *it, uint64_t *out,
                            const char *source) {
    char q[2 * QUOTE_MAX + 16];
    if (cJSON_IsNumber(it)) {
        double v = it->valuedouble;
        if (v != floor(v)) return fail_type(r, it, source);
        if (v < 0) {
            char num[40];
            fmt_double(v, num, sizeof num);
            return ad_fail(AD_ERR_CONFIG, "%s: %s: %s is out of range [0, %" PRIu64 "]", source,
                           r->key, num, UINT64_MAX);
        }
        if (v >= TWO_POW_53)
            return ad_fail(AD_ERR_CONFIG,
                           "%s: %s: a JSON number at or above 2^53 cannot be read exactly; "
                           "give the value as a decimal string, e.g. \"9007199254740993\"",
                           source, r->key);
        *out = (uint64_t)v;
        return AD_OK;
    }
    if (!cJSON_IsString(it)) return fail_type(r, it, source);
    const char *s = it->valuestring;
    quote(s, q, sizeof q);
    if (!all_digits(s))
        return ad_fail(AD_ERR_CONFIG, "%s: %s: expected a decimal integer string, got %s", source,
                       r->key, q);
    uint64_t v = 0;
    for (; *s; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return ad_fail(AD_ERR_CONFIG, "%s: %s: %s is out of range [0, %" PRIu64 "]", source,
                           r->key, q, UINT64_MAX);
        v = v * 10 + d;
    }
    *out = v;
    return AD_OK;
}

/* Converts `it` for row `r` and stores it at `field` (the row's field in some struct,
 * or a scratch buffer of the field's size). */
static AdStatus convert(const AdSchemaRow *r, const cJSON *it, void *field, const char *source) {
    char q[2 * QUOTE_MAX + 16], names[512];
    switch (r->type) {
    case AD_SCHEMA_INT: {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
            return fail_type(r, it, source);
        double v = it->valuedouble;
        if (!in_range(r, v)) return fail_range(r, v, source);
        int iv = (int)v;
        memcpy(field, &iv, sizeof iv);
        return AD_OK;
    }
    case AD_SCHEMA_U64: {
        uint64_t v = 0;
        AdStatus st = convert_u64(r, it, &v, source);
        if (st != AD_OK) return st;
        memcpy(field, &v, sizeof v);
        return AD_OK;
    }
    case AD_SCHEMA_DOUBLE: {
        if (!cJSON_IsNumber(it)) return fail_type(r, it, source);
        double v = it->valuedouble;
        if (!isfinite(v) || !in_range(r, v)) return fail_range(r, v, source);
        memcpy(field, &v, sizeof v);
        return AD_OK;
    }
    case AD_SCHEMA_FLOAT: {
        if (!cJSON_IsNumber(it)) return fail_type(r, it, source);
        float v = (float)it->valuedouble;
        if (!isfinite(v) || !in_range(r, (double)v)) return fail_range(r, it->valuedouble, source);
        memcpy(field, &v, sizeof v);
        return AD_OK;
    }
    case AD_SCHEMA_BOOL: {
        if (!cJSON_IsBool(it)) return fail_type(r, it, source);
        int v = cJSON_IsTrue(it) ? 1 : 0;
        memcpy(field, &v, sizeof v);
        return AD_OK;
    }
    case AD_SCHEMA_STRING:
    case AD_SCHEMA_CHOICE:
    case AD_SCHEMA_ENUM:
        break;
    }
    if (!cJSON_IsString(it)) {
        if (r->type == AD_SCHEMA_STRING) return fail_type(r, it, source);
        char got[2 * QUOTE_MAX + 32];
        describe(it, got, sizeof got);
        list_choices(r, names, sizeof names, ", ");
        return ad_fail(AD_ERR_CONFIG, "%s: %s: expected one of the strings %s, got %s", source,
                       r->key, names, got);
    }
    const char *s = it->valuestring;
    size_t len = strlen(s);
    quote(s, q, sizeof q);
    if (r->type == AD_SCHEMA_ENUM) {
        int v = r->enum_parse(s);
        if (v < 0 || v >= r->n_enum) {
            list_choices(r, names, sizeof names, ", ");
            return ad_fail(AD_ERR_CONFIG, "%s: %s: %s is not one of %s", source, r->key, q, names);
        }
        memcpy(field, &v, sizeof v);
        return AD_OK;
    }
    if (r->type == AD_SCHEMA_CHOICE) {
        if (!has_list(r)) {
            int v = r->enum_parse(s);
            if (v >= 0 && v < r->n_enum && strcmp(r->enum_name(v), s) == 0) {
                store_string(field, r->cap, s);
                return AD_OK;
            }
        }
        for (int i = 0; has_list(r) && r->choices[i]; i++) {
            if (strcmp(s, r->choices[i]) == 0) {
                store_string(field, r->cap, s);
                return AD_OK;
            }
        }
        list_choices(r, names, sizeof names, ", ");
        return ad_fail(AD_ERR_CONFIG, "%s: %s: %s is not one of %s", source, r->key, q, names);
    }
    if (len >= r->cap)
        return ad_fail(AD_ERR_CONFIG, "%s: %s: string of %zu bytes is longer than the limit of %zu",
                       source, r->key, len, r->cap - 1);
    if (!utf8_valid((const unsigned char *)s, len))
        return ad_fail(AD_ERR_CONFIG, "%s: %s: string %s is not valid UTF-8", source, r->key, q);
    store_string(field, r->cap, s);
    return AD_OK;
}

/* Builds, without allocating, the JSON item a row's default text stands for. */
static void default_item(const AdSchemaRow *r, cJSON *it) {
    memset(it, 0, sizeof *it);
    switch (r->type) {
    case AD_SCHEMA_INT:
    case AD_SCHEMA_DOUBLE:
    case AD_SCHEMA_FLOAT:
        it->type = cJSON_Number;
        it->valuedouble = strtod(r->def, NULL);
        break;
    case AD_SCHEMA_BOOL:
        it->type = strcmp(r->def, "true") == 0 ? cJSON_True
                   : strcmp(r->def, "false") == 0 ? cJSON_False : cJSON_NULL;
        break;
    case AD_SCHEMA_U64:
    case AD_SCHEMA_STRING:
    case AD_SCHEMA_CHOICE:
    case AD_SCHEMA_ENUM:
        it->type = cJSON_String;
        it->valuestring = (char *)r->def;
        break;
    }
}

static size_t field_size(const AdSchemaRow *r) {
    switch (r->type) {
    case AD_SCHEMA_U64: return sizeof(uint64_t);
    case AD_SCHEMA_DOUBLE: return sizeof(double);
    case AD_SCHEMA_FLOAT: return sizeof(float);
    case AD_SCHEMA_STRING:
    case AD_SCHEMA_CHOICE: return r->cap;
    case AD_SCHEMA_INT:
    case AD_SCHEMA_BOOL:
    case AD_SCHEMA_ENUM: return sizeof(int);
    }
    return sizeof(uint64_t);
}

/* ---- the table itself ---- */

AdStatus ad_schema_check(const AdSchema *s) {
    for (int i = 0; i < s->n_rows; i++) {
        const AdSchemaRow *r = &s->rows[i];
        if (!r->key || !r->key[0] || strlen(r->key) >= PATH_MAX_LEN)
            return ad_fail(AD_ERR_INTERNAL, "schema row %d: missing or overlong key", i);
        const char *k = r->key;
        for (size_t j = 0; k[j]; j++) {
            char c = k[j];
            int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                     (c == '.' && j > 0 && k[j + 1] && k[j + 1] != '.');
            if (!ok) return ad_fail(AD_ERR_INTERNAL, "schema row %s: malformed key", k);
        }
        for (int j = 0; j < i; j++)
            if (strcmp(s->rows[j].key, k) == 0)
                return ad_fail(AD_ERR_INTERNAL, "schema row %s: key appears twice", k);
        if (is_group(s, k))
            return ad_fail(AD_ERR_INTERNAL, "schema row %s: key is also a group of other keys", k);
        if (!r->help) return ad_fail(AD_ERR_INTERNAL, "schema row %s: no help text", k);
        if ((r->type == AD_SCHEMA_INT || r->type == AD_SCHEMA_DOUBLE ||
             r->type == AD_SCHEMA_FLOAT) && !(r->min <= r->max))
            return ad_fail(AD_ERR_INTERNAL, "schema row %s: min > max", k);
        if (r->type == AD_SCHEMA_INT && (r->min < -2147483648.0 || r->max > 2147483647.0))
            return ad_fail(AD_ERR_INTERNAL, "schema row %s: range exceeds int", k);
        if ((r->type == AD_SCHEMA_STRING || r->type == AD_SCHEMA_CHOICE) && r->cap == 0)
            return ad_fail(AD_ERR_INTERNAL, "schema row %s: no string capacity", k);
        if (has_list(r)) {
            if (!r->choices[0]) return ad_fail(AD_ERR_INTERNAL, "schema row %s: no choices", k);
            for (int c = 0; r->choices[c]; c++)
                if (strlen(r->choices[c]) >= r->cap)
                    return ad_fail(AD_ERR_INTERNAL, "schema row %s: choice %s does not fit", k,
                                   r->choices[c]);
        } else if (r->type == AD_SCHEMA_CHOICE || r->type == AD_SCHEMA_ENUM) {
            if (!r->enum_parse || !r->enum_name || r->n_enum <= 0)
                return ad_fail(AD_ERR_INTERNAL, "schema row %s: %s", k,
                               r->type == AD_SCHEMA_ENUM ? "enum functions missing"
                                                         : "no choices or name functions");
            for (int v = 0; v < r->n_enum; v++) {
                const char *name = r->enum_name(v);
                if (!name || r->enum_parse(name) != v)
                    return ad_fail(AD_ERR_INTERNAL, "schema row %s: enum value %d does not "
                                   "round-trip through its name", k, v);
                if (r->type == AD_SCHEMA_CHOICE && strlen(name) >= r->cap)
                    return ad_fail(AD_ERR_INTERNAL, "schema row %s: choice %s does not fit", k,
                                   name);
            }
        }
        if (r->def) {
            cJSON it;
            default_item(r, &it);
            void *scratch = ad_malloc(field_size(r), "schema default check");
            if (!scratch) return AD_ERR_NOMEM;
            AdStatus st = convert(r, &it, scratch, "schema default");
            free(scratch);
            if (st != AD_OK) return ad_fail_context(AD_ERR_INTERNAL, "schema row %s", k);
        }
    }
    return AD_OK;
}

void ad_schema_defaults(const AdSchema *s, void *target) {
    char *base = target;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < s->n_rows; i++) {
            const AdSchemaRow *r = &s->rows[i];
            if (pass != ((r->flags & AD_SCHEMA_EARLY) ? 0 : 1)) continue;
            if (r->def) {
                cJSON it;
                default_item(r, &it);
                AdStatus st = convert(r, &it, base + r->offset, "schema default");
                if (st != AD_OK) fprintf(stderr, "%s\n", ad_errmsg());
                AD_ASSERT(st == AD_OK);
            }
            if (r->on_set) {
                AdStatus st = r->on_set(target, "schema default");
                if (st != AD_OK) fprintf(stderr, "%s\n", ad_errmsg());
                AD_ASSERT(st == AD_OK);
            }
        }
    }
}

/* ---- JSON text ---- */

AdStatus ad_schema_parse_text(const char *text, const char *source, cJSON **out) {
    *out = NULL;
    if (!text) return ad_fail(AD_ERR_ARG, "%s: no JSON text", source);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        if (!end) return ad_fail(AD_ERR_NOMEM, "%s: out of memory parsing JSON", source);
        /* cJSON may stop one past the offending character: report the last non-blank */
        while (end > text && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end--;
        int line = 1, col = 1;
        for (const char *p = text; p < end && *p; p++) {
            if (*p == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        char near[32];
        size_t n = 0;
        while (end[n] && end[n] != '\n' && n < 16) n++;
        memcpy(near, end, n);
        near[n] = '\0';
        char q[2 * QUOTE_MAX + 16];
        quote(near, q, sizeof q);
        if (!end[0])
            return ad_fail(AD_ERR_CONFIG, "%s: line %d, column %d: malformed JSON (unexpected end "
                           "of text)", source, line, col);
        return ad_fail(AD_ERR_CONFIG, "%s: line %d, column %d: malformed JSON near %s", source,
                       line, col, q);
    }
    if (!cJSON_IsObject(root)) {
        char got[2 * QUOTE_MAX + 32];
        describe(root, got, sizeof got);
        cJSON_Delete(root);
        return ad_fail(AD_ERR_CONFIG, "%s: the top level must be a JSON object, got %s", source,
                       got);
    }
    *out = root;
    return AD_OK;
}

AdStatus ad_schema_read_file(const char *path, char **out) {
    *out = NULL;
    if (!path) return ad_fail(AD_ERR_ARG, "no config path");
    size_t size;
    AdStatus st = ad_read_file(path, CONFIG_FILE_MAX, out, &size);
    if (st) return ad_fail_context(st, "config");
    if (strlen(*out) != size) {
        st = ad_fail(AD_ERR_CONFIG, "%s: contains a NUL byte at offset %zu", path, strlen(*out));
        free(*out);
        *out = NULL;
    }
    return st;
}

/* ---- parsing a tree ---- */

static AdStatus walk(const AdSchema *s, void *target, const cJSON *obj, const char *prefix,
                     const char *source, int pass) {
    char *base = target;
    for (const cJSON *it = obj->child; it; it = it->next) {
        const char *name = it->string ? it->string : "";
        char path[PATH_MAX_LEN + 1];
        int n = snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", name);
        int too_long = n < 0 || n >= (int)sizeof path; /* path is cut; quote() cuts sooner */

        for (const cJSON *prev = obj->child; prev != it; prev = prev->next) {
            if (prev->string && strcmp(prev->string, name) == 0) {
                char q[2 * QUOTE_MAX + 16];
                quote(path, q, sizeof q);
                return ad_fail(AD_ERR_CONFIG, "%s: duplicate key %s", source, q);
            }
        }
        if (!name[0] || too_long) return fail_unknown(s, source, path);
        if (strchr(name, '.')) {
            char q[2 * QUOTE_MAX + 16];
            quote(path, q, sizeof q);
            return ad_fail(AD_ERR_CONFIG, "%s: unknown key %s (write dotted keys as nested "
                           "objects: {\"a\": {\"b\": ...}})", source, q);
        }

        const AdSchemaRow *r = ad_schema_find(s, path);
        if (r) {
            int early = (r->flags & AD_SCHEMA_EARLY) != 0;
            if (pass == (early ? 0 : 1)) {
                AdStatus st = convert(r, it, base + r->offset, source);
                if (st != AD_OK) return st;
                if (r->on_set && (st = r->on_set(target, source)) != AD_OK) return st;
            }
            continue;
        }
        if (is_group(s, path)) {
            if (!cJSON_IsObject(it)) {
                char got[2 * QUOTE_MAX + 32];
                describe(it, got, sizeof got);
                return ad_fail(AD_ERR_CONFIG, "%s: %s: expected an object, got %s", source, path,
                               got);
            }
            AdStatus st = walk(s, target, it, path, source, pass);
            if (st != AD_OK) return st;
            continue;
        }
        return fail_unknown(s, source, path);
    }
    return AD_OK;
}

AdStatus ad_schema_parse(const AdSchema *s, void *target, const cJSON *root, const char *source) {
    if (!cJSON_IsObject(root))
        return ad_fail(AD_ERR_CONFIG, "%s: the top level must be a JSON object", source);
    AdStatus st = walk(s, target, root, "", source, 0);
    if (st == AD_OK) st = walk(s, target, root, "", source, 1);
    return st;
}

/* ---- overrides ---- */

/* Descends `root` along all but the last component of `key`, creating missing objects.
 * Returns the parent object and sets *leaf to the last component (in `buf`, a copy of
 * key), or NULL with *blocker set to the path of a non-object on the way
 * (or NULL on allocation failure). */
static cJSON *parent_of(cJSON *root, const char *key, char *buf, size_t cap, const char **leaf,
                        const cJSON **blocker) {
    snprintf(buf, cap, "%s", key);
    *blocker = NULL;
    cJSON *cur = root;
    char *comp = buf;
    for (char *dot; (dot = strchr(comp, '.')) != NULL; comp = dot + 1) {
        *dot = '\0';
        cJSON *child = cJSON_GetObjectItemCaseSensitive(cur, comp);
        if (!child) {
            child = cJSON_AddObjectToObject(cur, comp);
            if (!child) return NULL;
        } else if (!cJSON_IsObject(child)) {
            *blocker = child;
            return NULL;
        }
        *dot = '.';
        cur = child;
    }
    *leaf = comp;
    return cur;
}

static AdStatus apply_override(const AdSchema *s, cJSON *root, const char *ov) {
    char src[PATH_MAX_LEN + 64], key[PATH_MAX_LEN + 1];
    snprintf(src, sizeof src, "--set %.*s%s", PATH_MAX_LEN, ov,
             strlen(ov) > PATH_MAX_LEN ? "..." : "");
    const char *eq = strchr(ov, '=');
    if (!eq || eq == ov) return ad_fail(AD_ERR_CONFIG, "%s: expected key=value", src);
    size_t klen = (size_t)(eq - ov);
    if (klen > PATH_MAX_LEN) return ad_fail(AD_ERR_CONFIG, "%s: key too long", src);
    memcpy(key, ov, klen);
    key[klen] = '\0';
    const char *text = eq + 1;

    const AdSchemaRow *r = ad_schema_find(s, key);
    if (!r) {
        if (is_group(s, key)) {
            char q[2 * QUOTE_MAX + 16];
            quote(key, q, sizeof q);
            return ad_fail(AD_ERR_CONFIG, "%s: %s is a group of keys; set one of its keys "
                           "(a.b=v) instead", src, q);
        }
        return fail_unknown(s, src, key);
    }

    cJSON *val = NULL;
    if (r->type == AD_SCHEMA_U64 && all_digits(text)) {
        val = cJSON_CreateString(text);
    } else {
        const char *end = NULL;
        val = cJSON_ParseWithOpts(text, &end, 1);
        if (!val) val = cJSON_CreateString(text);
    }
    if (!val) return ad_fail(AD_ERR_NOMEM, "%s: out of memory", src);

    void *scratch = ad_malloc(field_size(r), "override check");
    if (!scratch) {
        cJSON_Delete(val);
        return AD_ERR_NOMEM;
    }
    AdStatus st = convert(r, val, scratch, src);
    free(scratch);
    if (st != AD_OK) {
        cJSON_Delete(val);
        return st;
    }

    char buf[PATH_MAX_LEN + 1];
    const char *leaf = NULL;
    const cJSON *blocker = NULL;
    cJSON *parent = parent_of(root, key, buf, sizeof buf, &leaf, &blocker);
    if (!parent) {
        cJSON_Delete(val);
        if (!blocker) return ad_fail(AD_ERR_NOMEM, "%s: out of memory", src);
        char got[2 * QUOTE_MAX + 32], q[2 * QUOTE_MAX + 16];
        describe(blocker, got, sizeof got);
        quote(blocker->string ? blocker->string : "", q, sizeof q);
        return ad_fail(AD_ERR_CONFIG, "%s: the config holds %s at %s where an object is needed",
                       src, got, q);
    }
    int ok = cJSON_GetObjectItemCaseSensitive(parent, leaf)
                 ? cJSON_ReplaceItemInObjectCaseSensitive(parent, leaf, val)
                 : cJSON_AddItemToObject(parent, leaf, val);
    if (!ok) {
        cJSON_Delete(val);
        return ad_fail(AD_ERR_NOMEM, "%s: out of memory", src);
    }
    return AD_OK;
}

AdStatus ad_schema_apply_overrides(const AdSchema *s, cJSON *root,
                                   const char *const *overrides, int n_overrides) {
    if (!cJSON_IsObject(root)) return ad_fail(AD_ERR_ARG, "overrides need a JSON object");
    for (int i = 0; i < n_overrides; i++) {
        if (!overrides[i]) return ad_fail(AD_ERR_ARG, "override %d is NULL", i);
        AdStatus st = apply_override(s, root, overrides[i]);
        if (st != AD_OK) return st;
    }
    return AD_OK;
}

/* ---- writing ---- */

/* The JSON item holding a field's value; NULL on allocation failure. */
static cJSON *value_item(const AdSchemaRow *r, const char *field) {
    char num[48];
    switch (r->type) {
    case AD_SCHEMA_INT: {
        int v;
        memcpy(&v, field, sizeof v);
        snprintf(num, sizeof num, "%d", v);
        return cJSON_CreateRaw(num);
    }
    case AD_SCHEMA_U64: {
        uint64_t v;
        memcpy(&v, field, sizeof v);
        snprintf(num, sizeof num, "%" PRIu64, v);
        return (double)v >= TWO_POW_53 ? cJSON_CreateString(num) : cJSON_CreateRaw(num);
    }
    case AD_SCHEMA_DOUBLE: {
        double v;
        memcpy(&v, field, sizeof v);
        if (!isfinite(v)) return cJSON_CreateNull();
        fmt_double(v, num, sizeof num);
        return cJSON_CreateRaw(num);
    }
    case AD_SCHEMA_FLOAT: {
        float v;
        memcpy(&v, field, sizeof v);
        if (!isfinite(v)) return cJSON_CreateNull();
        fmt_float(v, num, sizeof num);
        return cJSON_CreateRaw(num);
    }
    case AD_SCHEMA_BOOL: {
        int v;
        memcpy(&v, field, sizeof v);
        return cJSON_CreateBool(v != 0);
    }
    case AD_SCHEMA_ENUM: {
        int v;
        memcpy(&v, field, sizeof v);
        const char *name = v >= 0 && v < r->n_enum ? r->enum_name(v) : NULL;
        return name ? cJSON_CreateString(name) : cJSON_CreateNull();
    }
    case AD_SCHEMA_STRING:
    case AD_SCHEMA_CHOICE: {
        /* bounded copy: the field need not be NUL-terminated if the struct was garbage */
        char *tmp = ad_malloc(r->cap + 1, "config string");
        if (!tmp) return NULL;
        memcpy(tmp, field, r->cap);
        tmp[r->cap] = '\0';
        cJSON *it = cJSON_CreateString(tmp);
        free(tmp);
        return it;
    }
    }
    return NULL;
}

cJSON *ad_schema_to_cjson(const AdSchema *s, const void *target) {
    const char *base = target;
    cJSON *root = cJSON_CreateObject();
    if (!root) goto nomem;
    for (int i = 0; i < s->n_rows; i++) {
        const AdSchemaRow *r = &s->rows[i];
        char buf[PATH_MAX_LEN + 1];
        const char *leaf = NULL;
        const cJSON *blocker = NULL;
        cJSON *parent = parent_of(root, r->key, buf, sizeof buf, &leaf, &blocker);
        AD_ASSERT(blocker == NULL); /* a key that is also a group: ad_schema_check rejects it */
        if (!parent) goto nomem;
        cJSON *it = value_item(r, base + r->offset);
        if (!it) goto nomem;
        if (!cJSON_AddItemToObject(parent, leaf, it)) {
            cJSON_Delete(it);
            goto nomem;
        }
    }
    return root;
nomem:
    cJSON_Delete(root);
    ad_fail(AD_ERR_NOMEM, "out of memory writing the config as JSON");
    return NULL;
}

char *ad_schema_to_json(const AdSchema *s, const void *target) {
    cJSON *root = ad_schema_to_cjson(s, target);
    if (!root) return NULL;
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) ad_fail(AD_ERR_NOMEM, "out of memory printing the config as JSON");
    return text;
}

/* ---- help ---- */

void ad_schema_print_keys(const AdSchema *s, const void *defaults, FILE *f) {
    const char *base = defaults;
    size_t width = 0;
    for (int i = 0; i < s->n_rows; i++)
        if (strlen(s->rows[i].key) > width) width = strlen(s->rows[i].key);
    for (int i = 0; i < s->n_rows; i++) {
        const AdSchemaRow *r = &s->rows[i];
        char type[600], range[96], names[512], def[PATH_MAX_LEN + 64];
        switch (r->type) {
        case AD_SCHEMA_INT:
            fmt_range(r, range, sizeof range);
            snprintf(type, sizeof type, "int %s", range);
            break;
        case AD_SCHEMA_U64:
            snprintf(type, sizeof type, "uint64 (JSON integer < 2^53 or decimal string)");
            break;
        case AD_SCHEMA_DOUBLE:
        case AD_SCHEMA_FLOAT:
            fmt_range(r, range, sizeof range);
            snprintf(type, sizeof type, "number %s", range);
            break;
        case AD_SCHEMA_BOOL: snprintf(type, sizeof type, "bool"); break;
        case AD_SCHEMA_STRING:
            snprintf(type, sizeof type, "string (< %zu bytes)", r->cap);
            break;
        case AD_SCHEMA_CHOICE:
        case AD_SCHEMA_ENUM:
            list_choices(r, names, sizeof names, "|");
            snprintf(type, sizeof type, "%s", names);
            break;
        }
        def[0] = '\0';
        cJSON *it = value_item(r, base + r->offset);
        if (it) {
            char *txt = cJSON_PrintUnformatted(it);
            if (txt) snprintf(def, sizeof def, "%s", txt);
            free(txt);
            cJSON_Delete(it);
        }
        fprintf(f, "  %-*s  %s, default %s\n      %s\n", (int)width, r->key, type, def, r->help);
    }
}

/* ---- a whole config struct ---- */

void ad_config_spec_defaults(const AdConfigSpec *k, void *cfg) {
    memset(cfg, 0, k->size);
    ad_schema_defaults(k->schema, cfg);
    k->resolve(cfg);
}

AdStatus ad_config_spec_parse(const AdConfigSpec *k, void *cfg, const char *json_text,
                              const char *source_name, const char *const *overrides,
                              int n_overrides) {
    const char *src = source_name ? source_name : k->default_source;
    if (!cfg || !json_text || n_overrides < 0 || (n_overrides > 0 && !overrides))
        return ad_fail(AD_ERR_ARG, "%s: bad arguments to %s", src, k->parse_name);
    void *tmp = ad_calloc(1, k->size, "config");
    if (!tmp) return AD_ERR_NOMEM;
    ad_schema_defaults(k->schema, tmp);

    cJSON *root = NULL;
    AdStatus st = ad_schema_parse_text(json_text, src, &root);
    if (st == AD_OK) st = ad_schema_apply_overrides(k->schema, root, overrides, n_overrides);
    if (st == AD_OK) st = ad_schema_parse(k->schema, tmp, root, src);
    cJSON_Delete(root);
    if (st == AD_OK) {
        k->resolve(tmp);
        st = k->check(tmp, src);
    }
    if (st == AD_OK) memcpy(cfg, tmp, k->size);
    free(tmp);
    return st;
}

AdStatus ad_config_spec_load(const AdConfigSpec *k, void *cfg, const char *path,
                             const char *const *overrides, int n_overrides) {
    char *text = NULL;
    AdStatus st = ad_schema_read_file(path, &text);
    if (st == AD_OK) st = ad_config_spec_parse(k, cfg, text, path, overrides, n_overrides);
    free(text);
    return st;
}
