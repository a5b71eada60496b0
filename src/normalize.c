/* normalize.c: Unicode canonical composition (NFC), the normalizer of tokenizer.json
 * vocabularies such as Qwen2's, over the tables of unicode_tables.c; applied to a text
 * before a tokenizer splits it. No compatibility (NFKC) forms. */
#include "pretokenize.h"

#include <stdlib.h>

#include "unicode_tables.h"

enum {
    S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7,
    L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT,
    S_COUNT = L_COUNT * N_COUNT,
    RAW_BYTE = 0x80000000u /* a byte that is not UTF-8, kept as it is */
};

static int ccc(uint32_t c) {
    if (c < 0x300 || (c & RAW_BYTE)) return 0;
    return ad_unicode_lookup(ad_unicode_combining_class, ad_unicode_n_combining_class, c);
}

static const AdUnicodeMap *find_decomp(uint32_t c) {
    int lo = 0, hi = ad_unicode_n_decompositions;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (ad_unicode_decompositions[mid].cp < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < ad_unicode_n_decompositions && ad_unicode_decompositions[lo].cp == c
               ? &ad_unicode_decompositions[lo] : NULL;
}

/* Appends the full canonical decomposition of c to x[*n]. */
static void decompose(uint32_t c, uint32_t *x, size_t *n) {
    if (c >= S_BASE && c < S_BASE + S_COUNT) {
        uint32_t s = c - S_BASE;
        x[(*n)++] = L_BASE + s / N_COUNT;
        x[(*n)++] = V_BASE + (s % N_COUNT) / T_COUNT;
        if (s % T_COUNT) x[(*n)++] = T_BASE + s % T_COUNT;
        return;
    }
    const AdUnicodeMap *d = c >= 0xC0 && !(c & RAW_BYTE) ? find_decomp(c) : NULL;
    if (!d) {
        x[(*n)++] = c;
        return;
    }
    decompose(d->a, x, n);
    if (d->b) decompose(d->b, x, n);
}

/* The primary composite of a + b, or 0. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    int lo = 0, hi = ad_unicode_n_compositions;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const AdUnicodeMap *m = &ad_unicode_compositions[mid];
        if (m->a < a || (m->a == a && m->b < b)) lo = mid + 1;
        else hi = mid;
    }
    if (lo < ad_unicode_n_compositions && ad_unicode_compositions[lo].a == a &&
        ad_unicode_compositions[lo].b == b)
        return ad_unicode_compositions[lo].cp;
    return 0;
}

static size_t put_utf8(uint32_t c, unsigned char *o) {
    if (c & RAW_BYTE) {
        o[0] = (unsigned char)(c & 0xFF);
        return 1;
    }
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* Decompose fully, order the marks by combining class (stably), then compose each mark
 * with the last starter unless a mark of the same or a higher class stands between them
 * (UAX #15). */
int ad_unicode_nfc(const unsigned char *s, size_t len, unsigned char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    /* a code point decomposes into at most 4 (the longest canonical decomposition), and
     * is at least 1 byte */
    uint32_t *x = malloc((4 * len + 1) * sizeof *x);
    unsigned char *o = malloc(3 * len + 1); /* NFC grows UTF-8 text at most threefold */
    if (!x || !o) {
        free(x);
        free(o);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        int k = ad_utf8_decode(s + i, len - i, &c);
        if (k == 0) {
            c = RAW_BYTE | s[i];
            k = 1;
        }
        decompose(c, x, &n);
        i += (size_t)k;
    }
    for (size_t i = 1; i < n; i++) { /* canonical ordering: insertion sort within mark runs */
        int ci = ccc(x[i]);
        if (ci == 0) continue;
        for (size_t j = i; j > 0 && ccc(x[j - 1]) > ci; j--) {
            uint32_t t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    }
    size_t w = 0;
    if (n > 0) {
        size_t starter = 0;
        int last = ccc(x[0]) ? 256 : 0; /* a leading mark composes with nothing */
        w = 1;
        for (size_t i = 1; i < n; i++) {
            uint32_t c = x[i];
            int cc = ccc(c);
            uint32_t comp = last < 256 ? compose(x[starter], c) : 0;
            if (comp && (last < cc || last == 0) && (last != 0 || w - 1 == starter)) {
                x[starter] = comp;
                continue;
            }
            if (cc == 0) {
                starter = w;
                last = 0;
            } else {
                last = cc;
            }
            x[w++] = c;
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < w; i++) m += put_utf8(x[i], o + m);
    free(x);
    *out = o;
    *out_len = m;
    return 0;
}
