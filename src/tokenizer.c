/* tokenizer.c: text <-> token ids for byte, char and llama2.c-style SPM vocabularies,
 * plus the llama2.c tokenizer-file reader. The data and generation modules sit on top;
 * checkpoints store the pieces. It does no model math and no GPT-2 BPE encoding yet. */
#include "autodidact/tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

enum {
    TOK_MAX_VOCAB = 1 << 21,  /* bound on vocab_size from a caller or a file */
    TOK_MAX_PIECE = 1024,     /* bound on one piece's byte length */
    TOK_N_CODEPOINTS = 0x110000
};
static const long TOK_MAX_FILE = 1L << 30; /* bound on a tokenizer file's size */

static const char *const SPECIAL_PIECES[4] = {"<pad>", "<bos>", "<eos>", "<sep>"};

typedef struct {
    const char *str; /* piece bytes (owned by the tokenizer) */
    int len;
    int id;
} SortedPiece;

typedef struct {
    unsigned char *special; /* (vocab_size) 1 for bos/eos/pad/sep */
    int byte_id[256];       /* byte kind: id of byte b; SPM: id of piece "<0xNN>"; -1 if none */
    short *piece_byte;      /* (vocab_size) SPM: byte an "<0xNN>" piece decodes to, else -1 */
    uint32_t *cps;          /* (n_cps) char kind: code points, ascending */
    int *cp_ids;            /* (n_cps) char kind: id of cps[i] */
    int n_cps;
    SortedPiece *sorted;    /* (vocab_size) SPM: pieces by bytes, then id (as llama2.c) */
} TokImpl;

/* ---- UTF-8 ---- */

/* Decodes one well-formed UTF-8 sequence (no overlongs, surrogates or values past
 * U+10FFFF) from s[0..n); returns its length, or 0 if it is invalid. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if ((size_t)len > n || s[1] < lo || s[1] > hi) return 0;
    uint32_t v = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

static int utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- construction ---- */

/* Allocates the zeroed piece tables of a vocabulary of n pieces. */
static AdStatus tok_alloc(AdTokenizer *t, AdTokKind kind, int n) {
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->bos_id = t->eos_id = t->pad_id = t->sep_id = -1;
    t->pieces = ad_calloc((size_t)n, sizeof *t->pieces, "tokenizer pieces");
    if (!t->pieces) return AD_ERR_NOMEM;
    t->vocab_size = n;
    t->piece_len = ad_calloc((size_t)n, sizeof *t->piece_len, "tokenizer piece lengths");
    t->scores = ad_calloc((size_t)n, sizeof *t->scores, "tokenizer scores");
    if (!t->piece_len || !t->scores) return AD_ERR_NOMEM;
    return AD_OK;
}

static AdStatus tok_set_piece(AdTokenizer *t, int i, const char *bytes, int len) {
    char *p = ad_malloc((size_t)len + 1, "tokenizer piece");
    if (!p) return AD_ERR_NOMEM;
    if (len > 0) memcpy(p, bytes, (size_t)len);
    p[len] = '\0';
    t->pieces[i] = p;
    t->piece_len[i] = len;
    return AD_OK;
}

static int cmp_sorted_piece(const void *a, const void *b) {
    const SortedPiece *x = a, *y = b;
    int m = x->len < y->len ? x->len : y->len;
    int c = m > 0 ? memcmp(x->str, y->str, (size_t)m) : 0;
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_cp_pair(const void *a, const void *b) {
    const uint32_t *x = a, *y = b; /* (code point, id) pairs */
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* 0..255 if p is exactly "<0xHH>" (either hex case), else -1. */
static int parse_byte_piece(const char *p, int len) {
    if (len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = (c >= '0' && c <= '9') ? c - '0'
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static AdStatus build_byte_tables(AdTokenizer *t, TokImpl *im) {
    for (int i = 0; i < t->vocab_size; i++) {
        if (im->special[i]) continue;
        if (t->piece_len[i] != 1)
            return ad_fail(AD_ERR_FORMAT, "byte vocabulary: piece %d is %d bytes long, not 1", i,
                           t->piece_len[i]);
        unsigned char b = (unsigned char)t->pieces[i][0];
        if (im->byte_id[b] >= 0)
            return ad_fail(AD_ERR_FORMAT, "byte vocabulary: byte 0x%02X is both piece %d and %d",
                           b, im->byte_id[b], i);
        im->byte_id[b] = i;
    }
    for (int b = 0; b < 256; b++)
        if (im->byte_id[b] < 0)
            return ad_fail(AD_ERR_FORMAT, "byte vocabulary has no piece for byte 0x%02X", b);
    return AD_OK;
}

static AdStatus build_char_tables(AdTokenizer *t, TokImpl *im) {
    AdStatus st = AD_OK;
    uint32_t *pairs = ad_calloc((size_t)t->vocab_size, 2 * sizeof *pairs, "char vocabulary index");
    if (!pairs) return AD_ERR_NOMEM;
    int n = 0;
    for (int i = 0; i < t->vocab_size; i++) {
        if (im->special[i]) continue;
        uint32_t cp;
        int len = t->piece_len[i];
        if (len < 1 || utf8_decode((const unsigned char *)t->pieces[i], (size_t)len, &cp) != len) {
            st = ad_fail(AD_ERR_FORMAT, "char vocabulary: piece %d is not one UTF-8 code point", i);
            goto cleanup;
        }
        pairs[2 * n] = cp;
        pairs[2 * n + 1] = (uint32_t)i;
        n++;
    }
    qsort(pairs, (size_t)n, 2 * sizeof *pairs, cmp_cp_pair);
    im->cps = ad_calloc((size_t)n, sizeof *im->cps, "char vocabulary code points");
    im->cp_ids = ad_calloc((size_t)n, sizeof *im->cp_ids, "char vocabulary ids");
    if (!im->cps || !im->cp_ids) {
        st = AD_ERR_NOMEM;
        goto cleanup;
    }
    for (int k = 0; k < n; k++) {
        if (k > 0 && pairs[2 * k] == pairs[2 * k - 2]) {
            st = ad_fail(AD_ERR_FORMAT, "char vocabulary: U+%04X is both piece %u and %u",
                         (unsigned)pairs[2 * k], (unsigned)pairs[2 * k - 1],
                         (unsigned)pairs[2 * k + 1]);
            goto cleanup;
        }
        im->cps[k] = pairs[2 * k];
        im->cp_ids[k] = (int)pairs[2 * k + 1];
    }
    im->n_cps = n;
cleanup:
    free(pairs);
    return st;
}

static AdStatus build_spm_tables(AdTokenizer *t, TokImpl *im) {
    int n = t->vocab_size;
    im->sorted = ad_calloc((size_t)n, sizeof *im->sorted, "SPM sorted vocabulary");
    im->piece_byte = ad_calloc((size_t)n, sizeof *im->piece_byte, "SPM byte pieces");
    if (!im->sorted || !im->piece_byte) return AD_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        im->sorted[i] = (SortedPiece){t->pieces[i], t->piece_len[i], i};
        int b = parse_byte_piece(t->pieces[i], t->piece_len[i]);
        im->piece_byte[i] = (short)b;
        if (b >= 0 && im->byte_id[b] < 0) im->byte_id[b] = i;
    }
    qsort(im->sorted, (size_t)n, sizeof *im->sorted, cmp_sorted_piece);
    return AD_OK;
}

/* Builds the private lookup tables of a tokenizer whose pieces and ids are set. */
static AdStatus tok_build_impl(AdTokenizer *t) {
    TokImpl *im = ad_calloc(1, sizeof *im, "tokenizer tables");
    if (!im) return AD_ERR_NOMEM;
    t->impl = im;
    for (int b = 0; b < 256; b++) im->byte_id[b] = -1;
    im->special = ad_calloc((size_t)t->vocab_size, 1, "tokenizer special flags");
    if (!im->special) return AD_ERR_NOMEM;
    const int specials[4] = {t->bos_id, t->eos_id, t->pad_id, t->sep_id};
    for (int k = 0; k < 4; k++)
        if (specials[k] >= 0) im->special[specials[k]] = 1;
    switch (t->kind) {
    case AD_TOK_BYTE: return build_byte_tables(t, im);
    case AD_TOK_CHAR: return build_char_tables(t, im);
    case AD_TOK_SPM: return build_spm_tables(t, im);
    case AD_TOK_GPT2: return AD_OK;
    }
    return ad_fail(AD_ERR_ARG, "unknown tokenizer kind %d", (int)t->kind);
}

/* Gives ids 0..3 the special pieces <pad> <bos> <eos> <sep>. */
static AdStatus tok_set_specials(AdTokenizer *t) {
    for (int k = 0; k < 4; k++) {
        AdStatus st = tok_set_piece(t, k, SPECIAL_PIECES[k], (int)strlen(SPECIAL_PIECES[k]));
        if (st != AD_OK) return st;
    }
    t->pad_id = 0;
    t->bos_id = 1;
    t->eos_id = 2;
    t->sep_id = 3;
    return AD_OK;
}

AdStatus ad_tokenizer_init_byte(AdTokenizer *t) {
    AdStatus st = tok_alloc(t, AD_TOK_BYTE, 4 + 256);
    if (st == AD_OK) st = tok_set_specials(t);
    for (int b = 0; b < 256 && st == AD_OK; b++) {
        char c = (char)b;
        st = tok_set_piece(t, 4 + b, &c, 1);
    }
    if (st == AD_OK) st = tok_build_impl(t);
    if (st != AD_OK) ad_tokenizer_free(t);
    return st;
}

AdStatus ad_tokenizer_init_char(AdTokenizer *t, const char *text, size_t len) {
    memset(t, 0, sizeof *t);
    if (!text && len > 0) return ad_fail(AD_ERR_ARG, "init_char: text is NULL but len is %zu", len);
    const unsigned char *s = (const unsigned char *)text;
    unsigned char *seen = ad_calloc(TOK_N_CODEPOINTS / 8, 1, "char vocabulary bitmap");
    if (!seen) return AD_ERR_NOMEM;
    AdStatus st = AD_OK;
    int n_cps = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = utf8_decode(s + i, len - i, &cp);
        if (k == 0) {
            st = ad_fail(AD_ERR_FORMAT, "invalid UTF-8 at byte offset %zu (byte 0x%02X)", i, s[i]);
            goto cleanup;
        }
        if (!(seen[cp >> 3] & (1u << (cp & 7)))) {
            seen[cp >> 3] |= (unsigned char)(1u << (cp & 7));
            n_cps++;
        }
        i += (size_t)k;
    }
    st = tok_alloc(t, AD_TOK_CHAR, 4 + n_cps);
    if (st == AD_OK) st = tok_set_specials(t);
    int id = 4;
    for (uint32_t cp = 0; cp < TOK_N_CODEPOINTS && st == AD_OK; cp++) {
        if (!(seen[cp >> 3] & (1u << (cp & 7)))) continue;
        char buf[4];
        st = tok_set_piece(t, id++, buf, utf8_encode(cp, buf));
    }
    if (st == AD_OK) st = tok_build_impl(t);
cleanup:
    free(seen);
    if (st != AD_OK) ad_tokenizer_free(t);
    return st;
}

AdStatus ad_tokenizer_init_from_pieces(AdTokenizer *t, AdTokKind kind, int vocab_size,
                                       const char *const *pieces, const int *piece_len,
                                       const float *scores, int bos_id, int eos_id,
                                       int pad_id, int sep_id) {
    memset(t, 0, sizeof *t);
    if ((int)kind < AD_TOK_BYTE || (int)kind > AD_TOK_GPT2)
        return ad_fail(AD_ERR_ARG, "unknown tokenizer kind %d", (int)kind);
    if (vocab_size < 1 || vocab_size > TOK_MAX_VOCAB)
        return ad_fail(AD_ERR_ARG, "tokenizer vocab_size %d is outside [1, %d]", vocab_size,
                       TOK_MAX_VOCAB);
    if (!pieces || !piece_len) return ad_fail(AD_ERR_ARG, "tokenizer pieces or lengths are NULL");
    const int ids[4] = {bos_id, eos_id, pad_id, sep_id};
    const char *names[4] = {"bos_id", "eos_id", "pad_id", "sep_id"};
    for (int k = 0; k < 4; k++)
        if (ids[k] < -1 || ids[k] >= vocab_size)
            return ad_fail(AD_ERR_ARG, "tokenizer %s %d is outside [-1, %d)", names[k], ids[k],
                           vocab_size);
    for (int i = 0; i < vocab_size; i++) {
        if (piece_len[i] < 0 || piece_len[i] > TOK_MAX_PIECE || (!pieces[i] && piece_len[i] > 0))
            return ad_fail(AD_ERR_ARG, "tokenizer piece %d: length %d is outside [0, %d] or "
                           "its bytes are NULL", i, piece_len[i], TOK_MAX_PIECE);
        if (scores && !isfinite(scores[i]))
            return ad_fail(AD_ERR_ARG, "tokenizer piece %d has a non-finite score", i);
    }
    AdStatus st = tok_alloc(t, kind, vocab_size);
    for (int i = 0; i < vocab_size && st == AD_OK; i++) {
        st = tok_set_piece(t, i, pieces[i], piece_len[i]);
        t->scores[i] = scores ? scores[i] : 0.0f;
    }
    if (st == AD_OK) {
        t->bos_id = bos_id;
        t->eos_id = eos_id;
        t->pad_id = pad_id;
        t->sep_id = sep_id;
        st = tok_build_impl(t);
    }
    if (st != AD_OK) ad_tokenizer_free(t);
    return st;
}

static int32_t read_i32(const unsigned char *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static float read_f32(const unsigned char *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Linear search used only while loading (the sorted index does not exist yet). */
static int find_piece_linear(const AdTokenizer *t, const char *s) {
    int len = (int)strlen(s);
    for (int i = 0; i < t->vocab_size; i++)
        if (t->piece_len[i] == len && memcmp(t->pieces[i], s, (size_t)len) == 0) return i;
    return -1;
}

AdStatus ad_tokenizer_load_llama2c(AdTokenizer *t, const char *path, int vocab_size) {
    memset(t, 0, sizeof *t);
    if (vocab_size < 1 || vocab_size > TOK_MAX_VOCAB)
        return ad_fail(AD_ERR_ARG, "tokenizer %s: vocab_size %d is outside [1, %d]", path,
                       vocab_size, TOK_MAX_VOCAB);
    AdStatus st = AD_OK;
    unsigned char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ad_fail(AD_ERR_IO, "cannot open tokenizer file %s: %s", path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = ad_fail(AD_ERR_IO, "cannot determine the size of tokenizer file %s", path);
        goto cleanup;
    }
    if (size > TOK_MAX_FILE) {
        st = ad_fail(AD_ERR_FORMAT, "tokenizer file %s is %ld bytes, more than the %ld allowed",
                     path, size, TOK_MAX_FILE);
        goto cleanup;
    }
    size_t n = (size_t)size;
    buf = ad_malloc(n, "tokenizer file contents");
    if (!buf) {
        st = AD_ERR_NOMEM;
        goto cleanup;
    }
    if (fread(buf, 1, n, f) != n) {
        st = ad_fail(AD_ERR_IO, "cannot read %zu bytes from tokenizer file %s", n, path);
        goto cleanup;
    }
    if (n < 4) {
        st = ad_fail(AD_ERR_FORMAT, "tokenizer file %s is %zu bytes, too short for its header",
                     path, n);
        goto cleanup;
    }
    int32_t max_len = read_i32(buf);
    if (max_len < 1 || max_len > TOK_MAX_PIECE) {
        st = ad_fail(AD_ERR_FORMAT, "tokenizer file %s: max_token_length %d is outside [1, %d] "
                     "(not a llama2.c tokenizer?)", path, (int)max_len, TOK_MAX_PIECE);
        goto cleanup;
    }
    if ((n - 4) / 8 < (size_t)vocab_size) {
        st = ad_fail(AD_ERR_FORMAT, "tokenizer file %s: %zu bytes cannot hold %d tokens "
                     "(truncated file, or the wrong vocab_size)", path, n, vocab_size);
        goto cleanup;
    }
    st = tok_alloc(t, AD_TOK_SPM, vocab_size);
    size_t off = 4;
    for (int i = 0; i < vocab_size && st == AD_OK; i++) {
        if (n - off < 8) {
            st = ad_fail(AD_ERR_FORMAT, "tokenizer file %s: truncated at token %d of %d "
                         "(offset %zu)", path, i, vocab_size, off);
            break;
        }
        float score = read_f32(buf + off);
        int32_t len = read_i32(buf + off + 4);
        off += 8;
        if (!isfinite(score)) {
            st = ad_fail(AD_ERR_FORMAT, "tokenizer file %s: token %d has a non-finite score",
                         path, i);
        } else if (len < 0 || len > max_len) {
            st = ad_fail(AD_ERR_FORMAT, "tokenizer file %s: token %d has length %d, outside "
                         "[0, max_token_length %d]", path, i, (int)len, (int)max_len);
        } else if ((size_t)len > n - off) {
            st = ad_fail(AD_ERR_FORMAT, "tokenizer file %s: token %d needs %d bytes but only "
                         "%zu remain (truncated file)", path, i, (int)len, n - off);
        } else {
            st = tok_set_piece(t, i, (const char *)buf + off, len);
            t->scores[i] = score;
            off += (size_t)len;
        }
    }
    if (st == AD_OK && off != n)
        st = ad_fail(AD_ERR_FORMAT, "tokenizer file %s: %zu bytes follow token %d: the file "
                     "holds more than vocab_size %d tokens", path, n - off, vocab_size - 1,
                     vocab_size);
    if (st == AD_OK) {
        t->bos_id = vocab_size > 1 ? 1 : -1;
        t->eos_id = vocab_size > 2 ? 2 : -1;
        t->pad_id = find_piece_linear(t, "<pad>");
        t->sep_id = -1;
        st = tok_build_impl(t);
    }
cleanup:
    fclose(f);
    free(buf);
    if (st != AD_OK) ad_tokenizer_free(t);
    return st;
}

void ad_tokenizer_free(AdTokenizer *t) {
    if (!t) return;
    if (t->pieces)
        for (int i = 0; i < t->vocab_size; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_len);
    free(t->scores);
    TokImpl *im = t->impl;
    if (im) {
        free(im->special);
        free(im->piece_byte);
        free(im->cps);
        free(im->cp_ids);
        free(im->sorted);
        free(im);
    }
    memset(t, 0, sizeof *t);
}

const char *ad_tok_kind_name(AdTokKind k) {
    switch (k) {
    case AD_TOK_BYTE: return "byte";
    case AD_TOK_CHAR: return "char";
    case AD_TOK_SPM: return "spm";
    case AD_TOK_GPT2: return "gpt2";
    }
    return "unknown";
}

int ad_tok_kind_parse(const char *s) {
    if (!s) return -1;
    for (int k = AD_TOK_BYTE; k <= AD_TOK_GPT2; k++)
        if (strcmp(s, ad_tok_kind_name((AdTokKind)k)) == 0) return k;
    return -1;
}

/* ---- encoding ---- */

static AdStatus encode_byte(const AdTokenizer *t, const unsigned char *s, size_t len, int *out,
                            int cap, int *n_out) {
    const TokImpl *im = t->impl;
    if (len > (size_t)cap)
        return ad_fail(AD_ERR_ARG, "encode: %zu bytes need as many tokens, room for %d", len, cap);
    for (size_t i = 0; i < len; i++) out[i] = im->byte_id[s[i]];
    *n_out = (int)len;
    return AD_OK;
}

static AdStatus encode_char(const AdTokenizer *t, const unsigned char *s, size_t len, int *out,
                            int cap, int *n_out) {
    const TokImpl *im = t->impl;
    int n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = utf8_decode(s + i, len - i, &cp);
        if (k == 0)
            return ad_fail(AD_ERR_FORMAT, "encode: invalid UTF-8 at byte offset %zu (byte 0x%02X)",
                           i, s[i]);
        int lo = 0, hi = im->n_cps; /* first index with cps[index] >= cp */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (im->cps[mid] < cp) lo = mid + 1;
            else hi = mid;
        }
        if (lo == im->n_cps || im->cps[lo] != cp) {
            if (cp < 0x20 || cp == 0x7F)
                return ad_fail(AD_ERR_ARG, "encode: character U+%04X at byte offset %zu is not "
                               "in the character vocabulary", (unsigned)cp, i);
            return ad_fail(AD_ERR_ARG, "encode: character '%.*s' (U+%04X) at byte offset %zu "
                           "is not in the character vocabulary", k, (const char *)s + i,
                           (unsigned)cp, i);
        }
        if (n == cap)
            return ad_fail(AD_ERR_ARG, "encode: text needs more than %d tokens (room for %d)",
                           cap, cap);
        out[n++] = im->cp_ids[lo];
        i += (size_t)k;
    }
    *n_out = n;
    return AD_OK;
}

/* Compares piece p with the concatenation a||b, as memcmp of the bytes, the shorter
 * string first on a common prefix. */
static int cmp_piece_concat(const char *p, int plen, const char *a, int alen, const char *b,
                            int blen) {
    int m = plen < alen ? plen : alen;
    int c = m > 0 ? memcmp(p, a, (size_t)m) : 0;
    if (c) return c;
    if (plen <= alen) return plen < alen + blen ? -1 : 0;
    int rest = plen - alen;
    m = rest < blen ? rest : blen;
    c = m > 0 ? memcmp(p + alen, b, (size_t)m) : 0;
    if (c) return c;
    return (rest > blen) - (rest < blen);
}

/* Id of the piece equal to a||b (the lowest such id), or -1: llama2.c's str_lookup. */
static int spm_lookup(const TokImpl *im, int n, const char *a, int alen, const char *b,
                      int blen) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const SortedPiece *sp = &im->sorted[mid];
        if (cmp_piece_concat(sp->str, sp->len, a, alen, b, blen) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < n && cmp_piece_concat(im->sorted[lo].str, im->sorted[lo].len, a, alen, b, blen) == 0)
        return im->sorted[lo].id;
    return -1;
}

/* A candidate merge of node `left` with its right neighbour `right` into `merged`. */
typedef struct {
    float score;
    int left, right;
    int left_id, right_id;
    int merged;
} SpmPair;

typedef struct {
    int *id, *prev, *next; /* (n) token per node (-1 once merged away), doubly linked list */
    SpmPair *heap;         /* (cap) max-heap by score, then leftmost */
    int n, heap_n, heap_cap;
} SpmWork;

static int pair_before(const SpmPair *x, const SpmPair *y) {
    if (x->score != y->score) return x->score > y->score;
    return x->left < y->left;
}

static void heap_push(SpmWork *w, SpmPair p) {
    AD_ASSERT(w->heap_n < w->heap_cap);
    int i = w->heap_n++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!pair_before(&p, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = p;
}

static SpmPair heap_pop(SpmWork *w) {
    SpmPair top = w->heap[0];
    SpmPair last = w->heap[--w->heap_n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= w->heap_n) break;
        if (c + 1 < w->heap_n && pair_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!pair_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->heap_n > 0) w->heap[i] = last;
    return top;
}

/* Queues the merge of node l with node r if their concatenation is a piece whose score
 * llama2.c would accept (it starts from best_score = -1e10 and needs a strictly larger one). */
static void spm_offer(const AdTokenizer *t, SpmWork *w, int l, int r) {
    int a = w->id[l], b = w->id[r];
    int m = spm_lookup(t->impl, t->vocab_size, t->pieces[a], t->piece_len[a], t->pieces[b],
                       t->piece_len[b]);
    if (m < 0 || !(t->scores[m] > -1e10f)) return;
    heap_push(w, (SpmPair){t->scores[m], l, r, a, b, m});
}

/* Appends the token(s) of one code-point group: its piece, else one byte piece per byte. */
static AdStatus spm_add_group(const AdTokenizer *t, SpmWork *w, const unsigned char *g, int glen,
                              size_t offset) {
    const TokImpl *im = t->impl;
    int id = spm_lookup(im, t->vocab_size, (const char *)g, glen, "", 0);
    if (id >= 0) {
        w->id[w->n++] = id;
        return AD_OK;
    }
    for (int k = 0; k < glen; k++) {
        int bid = im->byte_id[g[k]];
        if (bid < 0)
            return ad_fail(AD_ERR_ARG, "encode: byte 0x%02X at offset %zu has no piece and the "
                           "vocabulary has no <0x%02X> byte-fallback piece", g[k],
                           offset + (size_t)k, g[k]);
        w->id[w->n++] = bid;
    }
    return AD_OK;
}

static AdStatus encode_spm(const AdTokenizer *t, const unsigned char *s, size_t len, int *out,
                           int cap, int *n_out) {
    if (len == 0) {
        *n_out = 0;
        return AD_OK;
    }
    if (len > (size_t)INT_MAX / 4)
        return ad_fail(AD_ERR_ARG, "encode: text of %zu bytes is too long", len);
    /* Before merging there are at most len + 1 tokens (the prefix, then one per byte);
     * each merge adds at most two queued pairs. */
    size_t n_max = len + 1, heap_max = 3 * n_max;
    SpmWork w = {0};
    void *scratch = ad_calloc(1, 3 * n_max * sizeof(int) + heap_max * sizeof(SpmPair),
                              "SPM encode scratch");
    if (!scratch) return AD_ERR_NOMEM;
    w.heap = scratch;
    w.id = (int *)(w.heap + heap_max);
    w.prev = w.id + n_max;
    w.next = w.prev + n_max;
    w.heap_cap = (int)heap_max;

    /* llama2.c: the dummy prefix " " is its own token, then code-point groups of a
     * non-continuation byte and up to three continuation bytes. */
    AdStatus st = spm_add_group(t, &w, (const unsigned char *)" ", 1, 0);
    for (size_t i = 0; i < len && st == AD_OK;) {
        size_t g = 1;
        while (i + g < len && g < 4 && (s[i + g] & 0xC0) == 0x80) g++;
        st = spm_add_group(t, &w, s + i, (int)g, i);
        i += g;
    }
    if (st != AD_OK) goto cleanup;

    for (int i = 0; i < w.n; i++) {
        w.prev[i] = i - 1;
        w.next[i] = i + 1 < w.n ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < w.n; i++) spm_offer(t, &w, i, i + 1);
    while (w.heap_n > 0) {
        SpmPair p = heap_pop(&w);
        if (w.id[p.left] != p.left_id || w.next[p.left] != p.right || w.id[p.right] != p.right_id)
            continue; /* stale: one side has merged since this pair was queued */
        int l = p.left, r = p.right;
        w.id[l] = p.merged;
        w.id[r] = -1;
        w.next[l] = w.next[r];
        if (w.next[l] >= 0) w.prev[w.next[l]] = l;
        if (w.prev[l] >= 0) spm_offer(t, &w, w.prev[l], l);
        if (w.next[l] >= 0) spm_offer(t, &w, l, w.next[l]);
    }

    int n = 0;
    for (int i = 0; i >= 0; i = w.next[i]) n++; /* node 0 is never merged away */
    if (n > cap) {
        st = ad_fail(AD_ERR_ARG, "encode: text needs %d tokens, room for %d", n, cap);
        goto cleanup;
    }
    n = 0;
    for (int i = 0; i >= 0; i = w.next[i]) out[n++] = w.id[i];
    *n_out = n;
cleanup:
    free(scratch);
    return st;
}

AdStatus ad_tokenizer_encode(const AdTokenizer *t, const char *text, size_t len, int *out,
                             int cap, int *n_out) {
    *n_out = 0;
    if (!t->impl) return ad_fail(AD_ERR_ARG, "encode: the tokenizer is not initialised");
    if (!text && len > 0) return ad_fail(AD_ERR_ARG, "encode: text is NULL but len is %zu", len);
    if (cap < 0) return ad_fail(AD_ERR_ARG, "encode: negative capacity %d", cap);
    const unsigned char *s = (const unsigned char *)text;
    switch (t->kind) {
    case AD_TOK_BYTE: return encode_byte(t, s, len, out, cap, n_out);
    case AD_TOK_CHAR: return encode_char(t, s, len, out, cap, n_out);
    case AD_TOK_SPM: return encode_spm(t, s, len, out, cap, n_out);
    case AD_TOK_GPT2: return ad_fail(AD_ERR_ARG, "GPT-2 BPE tokenizer is not available yet");
    }
    return ad_fail(AD_ERR_ARG, "encode: unknown tokenizer kind %d", (int)t->kind);
}

/* ---- decoding ---- */

size_t ad_tokenizer_decode(const AdTokenizer *t, const int *ids, int n, char *buf, size_t cap) {
    const TokImpl *im = t->impl;
    size_t need = 0;
    int prev = -1;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        int prev_id = prev;
        prev = id;
        if (!im || id < 0 || id >= t->vocab_size || im->special[id]) continue;
        const char *p = t->pieces[id];
        int plen = t->piece_len[id];
        char byte;
        if (t->kind == AD_TOK_SPM) {
            if (prev_id == t->bos_id && t->bos_id >= 0 && plen > 0 && p[0] == ' ') {
                p++;
                plen--;
            }
            if (im->piece_byte[id] >= 0) {
                byte = (char)im->piece_byte[id];
                p = &byte;
                plen = 1;
            }
        }
        for (int k = 0; k < plen; k++, need++)
            if (need + 1 < cap) buf[need] = p[k];
    }
    if (cap > 0) buf[need < cap ? need : cap - 1] = '\0';
    return need;
}
