/* unicode_tables.h: generated Unicode range tables (src/unicode_tables.c, written by
 * scripts/gen_unicode_tables.py) and their lookup; internal to the tokenizers. */
#ifndef AUTODIDACT_UNICODE_TABLES_H
#define AUTODIDACT_UNICODE_TABLES_H

#include <stdint.h>

/* Major general category of a code point (unassigned and C* are AD_UC_OTHER). */
enum {
    AD_UC_OTHER = 0, AD_UC_LETTER, AD_UC_MARK, AD_UC_NUMBER, AD_UC_PUNCT, AD_UC_SYMBOL,
    AD_UC_SEPARATOR
};

typedef struct {
    uint32_t lo, hi;   /* inclusive */
    unsigned char val; /* category, or 1 in the set tables */
} AdUnicodeRange;

extern const AdUnicodeRange ad_unicode_categories[];      /* sorted, disjoint */
extern const int ad_unicode_n_categories;
extern const AdUnicodeRange ad_unicode_white_space[];     /* White_Space property */
extern const int ad_unicode_n_white_space;
extern const AdUnicodeRange ad_unicode_deepseek_llm_letters[];
extern const int ad_unicode_n_deepseek_llm_letters;

/* Canonical composition data (NFC). */
typedef struct {
    uint32_t cp, a, b; /* cp's canonical decomposition is a (b), b = 0 for one point */
} AdUnicodeMap;
extern const AdUnicodeRange ad_unicode_combining_class[]; /* non-zero classes */
extern const int ad_unicode_n_combining_class;
extern const AdUnicodeMap ad_unicode_decompositions[];    /* sorted by cp */
extern const int ad_unicode_n_decompositions;
extern const AdUnicodeMap ad_unicode_compositions[];      /* primary composites, by (a, b) */
extern const int ad_unicode_n_compositions;

/* Value of the range holding cp in a sorted table of n ranges, 0 if none does. */
static inline int ad_unicode_lookup(const AdUnicodeRange *r, int n, uint32_t cp) {
    int lo = 0, hi = n;
    while (lo < hi) { /* first range with r.hi >= cp */
        int mid = lo + (hi - lo) / 2;
        if (r[mid].hi < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && r[lo].lo <= cp ? r[lo].val : 0;
}

#endif
