/* tokenizer.c: text <-> token ids for byte, char, llama2.c-style SPM and GPT-2 byte-level BPE
 * vocabularies, and their readers (llama2.c files; Hugging Face vocab.json + merges.txt). Data
 * and generation sit on top, checkpoints store pieces and merges; no model math here. */
#include "autodidact/tokenizer.h"

#include "pretokenize.h"
#include "tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

enum {
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
    /* GPT-2 (byte_id[b] is then the id of byte b's bytes_to_unicode() character) */
    int byte_level;         /* pieces are in byte-to-unicode form, every byte has one */
    int *piece_hash;        /* (hash_cap) ids of the non-special pieces by their bytes
                             * (open addressing, -1 empty; the lowest id of equal pieces) */
    uint32_t hash_cap;      /* a power of two */
    char *raw;              /* byte level: the raw bytes of all pieces, in id order */
    int *raw_off;           /* (vocab_size + 1) piece i decodes to raw[raw_off[i]..raw_off[i+1]) */
    int *merge_hash;        /* (merge_cap) merge ranks by their id pair, -1 empty */
    uint32_t merge_cap;     /* a power of two, 0 without merges */
    int *merge_result;      /* (n_merges) id of the piece that merge r creates */
    /* user-defined pieces (SPM and GPT-2), matched in the text before anything else */
    int *user_ids;          /* (n_user) longest first, then by id */
    int n_user;
    int *user_hash;         /* (user_cap) their ids by bytes, -1 empty */
    uint32_t user_cap;
} TokImpl;

static AdStatus gpt2_install_merges(AdTokenizer *t, int n, const int *pairs, const int *lines,
                                    const char *path);

/* ---- UTF-8 ---- */

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
    t->bos_id = t->eos_id = t->pad_id = t->sep_id = t->unk_id = -1;
    t->add_space_prefix = kind == AD_TOK_SPM;
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
        if (len < 1 || ad_utf8_decode((const unsigned char *)t->pieces[i], (size_t)len, &cp) != len) {
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

/* ---- GPT-2 byte-to-unicode form ---- */

/* OpenAI's bytes_to_unicode(): bytes that print (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF) stand
 * for themselves; the other 68 map, in byte order, to U+0100..U+0143 (space is U+0120,
 * "Ġ"; newline U+010A, "Ċ"). */
static uint32_t gpt2_byte_char(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return (uint32_t)b;
    int n = b <= 0x20 ? b : b <= 0xA0 ? 33 + (b - 0x7F) : 67; /* 0xAD is the last */
    return 0x100u + (uint32_t)n;
}

/* The byte a bytes_to_unicode() character stands for, or -1. */
static int gpt2_char_byte(uint32_t cp) {
    if (cp < 0x100) return gpt2_byte_char((int)cp) == cp ? (int)cp : -1;
    if (cp > 0x143) return -1;
    int n = (int)(cp - 0x100);
    return n <= 32 ? n : n <= 66 ? 0x7F + (n - 33) : 0xAD;
}

/* Maps a piece in byte-to-unicode form to its raw bytes (written to out unless NULL).
 * Returns the byte count, or -1 - offset of the first byte that is not such a character. */
static int gpt2_piece_bytes(const char *piece, int len, char *out) {
    const unsigned char *s = (const unsigned char *)piece;
    int n = 0;
    for (int i = 0; i < len;) {
        uint32_t cp;
        int k = ad_utf8_decode(s + i, (size_t)(len - i), &cp);
        int b = k > 0 ? gpt2_char_byte(cp) : -1;
        if (b < 0) return -1 - i;
        if (out) out[n] = (char)b;
        n++;
        i += k;
    }
    return n;
}

/* ---- GPT-2 lookup tables ---- */

static uint32_t hash_bytes(const char *s, int len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static uint32_t hash_pair(int a, int b) {
    uint64_t x = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(x >> 32);
}

/* Smallest power of two >= 2 n (at least 16). */
static uint32_t hash_capacity(int n) {
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n) cap <<= 1;
    return cap;
}

/* Id of the non-special piece with these bytes, or -1. */
static int gpt2_find_piece(const AdTokenizer *t, const TokImpl *im, const char *s, int len) {
    uint32_t mask = im->hash_cap - 1;
    for (uint32_t h = hash_bytes(s, len) & mask;; h = (h + 1) & mask) {
        int id = im->piece_hash[h];
        if (id < 0) return -1;
        if (t->piece_len[id] == len && (len == 0 || memcmp(t->pieces[id], s, (size_t)len) == 0))
            return id;
    }
}

/* Rank of the merge joining ids a and b, or -1. */
static int gpt2_merge_rank(const AdTokenizer *t, const TokImpl *im, int a, int b) {
    if (im->merge_cap == 0) return -1;
    uint32_t mask = im->merge_cap - 1;
    for (uint32_t h = hash_pair(a, b) & mask;; h = (h + 1) & mask) {
        int r = im->merge_hash[h];
        if (r < 0) return -1;
        if (t->merges[2 * r] == a && t->merges[2 * r + 1] == b) return r;
    }
}

/* Type of piece i (normal when the vocabulary has no types). */
static int tok_type(const AdTokenizer *t, int i) {
    return t->types ? t->types[i] : AD_TT_NORMAL;
}

/* Pieces stored in byte-to-unicode form: normal and byte pieces (the others hold their
 * text as it is). */
static int bpe_encoded(const AdTokenizer *t, int i) {
    int ty = tok_type(t, i);
    return ty == AD_TT_NORMAL || ty == AD_TT_UNDEFINED || ty == AD_TT_BYTE;
}

static int cmp_len_desc_id(const void *a, const void *b) {
    const int *x = a, *y = b; /* (length, id) pairs */
    if (x[0] != y[0]) return x[0] > y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* The user-defined pieces, longest first (then by id), for matching before BPE/SPM. */
static AdStatus build_user_tables(AdTokenizer *t, TokImpl *im) {
    int n = 0;
    for (int i = 0; i < t->vocab_size; i++)
        if (tok_type(t, i) == AD_TT_USER_DEFINED && !im->special[i] && t->piece_len[i] > 0) n++;
    if (n == 0) return AD_OK;
    im->user_ids = ad_malloc((size_t)n * sizeof *im->user_ids, "user-defined token index");
    im->user_cap = hash_capacity(n);
    im->user_hash = ad_malloc((size_t)im->user_cap * sizeof *im->user_hash,
                              "user-defined token hash");
    if (!im->user_ids || !im->user_hash) return AD_ERR_NOMEM;
    int *pairs = ad_malloc(2 * (size_t)n * sizeof *pairs, "user-defined token order");
    if (!pairs) return AD_ERR_NOMEM;
    n = 0;
    for (int i = 0; i < t->vocab_size; i++)
        if (tok_type(t, i) == AD_TT_USER_DEFINED && !im->special[i] && t->piece_len[i] > 0) {
            pairs[2 * n] = t->piece_len[i];
            pairs[2 * n + 1] = i;
            n++;
        }
    qsort(pairs, (size_t)n, 2 * sizeof *pairs, cmp_len_desc_id);
    for (int k = 0; k < n; k++) im->user_ids[k] = pairs[2 * k + 1];
    free(pairs);
    im->n_user = n;
    for (uint32_t h = 0; h < im->user_cap; h++) im->user_hash[h] = -1;
    uint32_t mask = im->user_cap - 1;
    for (int k = 0; k < n; k++) {
        int i = im->user_ids[k];
        uint32_t h = hash_bytes(t->pieces[i], t->piece_len[i]) & mask;
        int dup = 0;
        for (; im->user_hash[h] >= 0; h = (h + 1) & mask) {
            int j = im->user_hash[h];
            if (t->piece_len[j] == t->piece_len[i] &&
                memcmp(t->pieces[j], t->pieces[i], (size_t)t->piece_len[i]) == 0)
                dup = 1;
        }
        if (!dup) im->user_hash[h] = i;
    }
    return AD_OK;
}

/* Id of the user-defined piece with these bytes, or -1. */
static int user_find(const AdTokenizer *t, const TokImpl *im, const unsigned char *s, int len) {
    uint32_t mask = im->user_cap - 1;
    for (uint32_t h = hash_bytes((const char *)s, len) & mask;; h = (h + 1) & mask) {
        int id = im->user_hash[h];
        if (id < 0) return -1;
        if (t->piece_len[id] == len && memcmp(t->pieces[id], s, (size_t)len) == 0) return id;
    }
}

/* The piece index, the byte pieces and, for a byte-level vocabulary, the raw bytes of
 * every piece. A vocabulary whose normal pieces are not all in byte-to-unicode form is
 * kept as a decode-only one; bytes without a piece keep byte_id -1. */
static AdStatus build_gpt2_tables(AdTokenizer *t, TokImpl *im) {
    int n = t->vocab_size;
    im->hash_cap = hash_capacity(n);
    im->piece_hash = ad_malloc((size_t)im->hash_cap * sizeof *im->piece_hash, "GPT-2 piece index");
    if (!im->piece_hash) return AD_ERR_NOMEM;
    for (uint32_t h = 0; h < im->hash_cap; h++) im->piece_hash[h] = -1;
    uint32_t mask = im->hash_cap - 1;
    for (int i = 0; i < n; i++) {
        if (im->special[i] || gpt2_find_piece(t, im, t->pieces[i], t->piece_len[i]) >= 0) continue;
        uint32_t h = hash_bytes(t->pieces[i], t->piece_len[i]) & mask;
        while (im->piece_hash[h] >= 0) h = (h + 1) & mask;
        im->piece_hash[h] = i;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int k = im->special[i] ? 0
              : bpe_encoded(t, i) ? gpt2_piece_bytes(t->pieces[i], t->piece_len[i], NULL)
                                  : t->piece_len[i];
        if (k < 0) return AD_OK; /* raw pieces (llm.c): decode-only */
        total += (size_t)k;
    }
    int n_bytes = 0;
    for (int b = 0; b < 256; b++) {
        char c[4];
        im->byte_id[b] = gpt2_find_piece(t, im, c, utf8_encode(gpt2_byte_char(b), c));
        n_bytes += im->byte_id[b] >= 0;
    }
    /* without types, a vocabulary missing a byte stays decode-only as before */
    if (n_bytes < 256 && !t->types) {
        for (int k = 0; k < 256; k++) im->byte_id[k] = -1;
        return AD_OK;
    }
    im->raw = ad_malloc(total + 1, "GPT-2 raw piece bytes");
    im->raw_off = ad_calloc((size_t)n + 1, sizeof *im->raw_off, "GPT-2 raw piece offsets");
    if (!im->raw || !im->raw_off) return AD_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        char *dst = im->raw + im->raw_off[i];
        int k = 0;
        if (im->special[i]) {
            k = 0;
        } else if (bpe_encoded(t, i)) {
            k = gpt2_piece_bytes(t->pieces[i], t->piece_len[i], dst);
        } else {
            k = t->piece_len[i];
            memcpy(dst, t->pieces[i], (size_t)k);
        }
        im->raw_off[i + 1] = im->raw_off[i] + k;
    }
    im->byte_level = 1;
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
    for (int i = 0; i < t->vocab_size; i++)
        if (tok_type(t, i) == AD_TT_CONTROL) im->special[i] = 1;
    AdStatus st;
    switch (t->kind) {
    case AD_TOK_BYTE: return build_byte_tables(t, im);
    case AD_TOK_CHAR: return build_char_tables(t, im);
    case AD_TOK_SPM: st = build_spm_tables(t, im); break;
    case AD_TOK_GPT2: st = build_gpt2_tables(t, im); break;
    default: return ad_fail(AD_ERR_ARG, "unknown tokenizer kind %d", (int)t->kind);
    }
    return st == AD_OK ? build_user_tables(t, im) : st;
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
        int k = ad_utf8_decode(s + i, len - i, &cp);
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

AdStatus ad_tokenizer_init_spec(AdTokenizer *t, const AdTokSpec *sp) {
    memset(t, 0, sizeof *t);
    if ((int)sp->kind < AD_TOK_BYTE || (int)sp->kind > AD_TOK_GPT2)
        return ad_fail(AD_ERR_ARG, "unknown tokenizer kind %d", (int)sp->kind);
    int vocab_size = sp->vocab_size;
    if (vocab_size < 1 || vocab_size > TOK_MAX_VOCAB)
        return ad_fail(AD_ERR_ARG, "tokenizer vocab_size %d is outside [1, %d]", vocab_size,
                       TOK_MAX_VOCAB);
    if (!sp->pieces || !sp->piece_len)
        return ad_fail(AD_ERR_ARG, "tokenizer pieces or lengths are NULL");
    if ((int)sp->pre < 0 || (int)sp->pre >= AD_PRE_COUNT)
        return ad_fail(AD_ERR_ARG, "tokenizer pre-tokenizer %d is unknown", (int)sp->pre);
    const int ids[5] = {sp->bos_id, sp->eos_id, sp->pad_id, sp->sep_id, sp->unk_id};
    const char *names[5] = {"bos_id", "eos_id", "pad_id", "sep_id", "unk_id"};
    for (int k = 0; k < 5; k++)
        if (ids[k] < -1 || ids[k] >= vocab_size)
            return ad_fail(AD_ERR_ARG, "tokenizer %s %d is outside [-1, %d)", names[k], ids[k],
                           vocab_size);
    for (int i = 0; i < vocab_size; i++) {
        int len = sp->piece_len[i];
        if (len < 0 || len > TOK_MAX_PIECE || (!sp->pieces[i] && len > 0))
            return ad_fail(AD_ERR_ARG, "tokenizer piece %d: length %d is outside [0, %d] or "
                           "its bytes are NULL", i, len, TOK_MAX_PIECE);
        if (sp->scores && !isfinite(sp->scores[i]))
            return ad_fail(AD_ERR_ARG, "tokenizer piece %d has a non-finite score", i);
        if (sp->types && sp->types[i] > AD_TT_BYTE)
            return ad_fail(AD_ERR_ARG, "tokenizer piece %d has token type %d (not 0..6)", i,
                           sp->types[i]);
    }
    AdStatus st = tok_alloc(t, sp->kind, vocab_size);
    for (int i = 0; i < vocab_size && st == AD_OK; i++) {
        st = tok_set_piece(t, i, sp->pieces[i], sp->piece_len[i]);
        t->scores[i] = sp->scores ? sp->scores[i] : 0.0f;
    }
    if (st == AD_OK && sp->types) {
        t->types = ad_malloc((size_t)vocab_size, "tokenizer token types");
        if (!t->types) st = AD_ERR_NOMEM;
        else memcpy(t->types, sp->types, (size_t)vocab_size);
    }
    if (st == AD_OK) {
        t->bos_id = sp->bos_id;
        t->eos_id = sp->eos_id;
        t->pad_id = sp->pad_id;
        t->sep_id = sp->sep_id;
        t->unk_id = sp->unk_id;
        t->pre = sp->pre;
        t->add_bos = sp->add_bos != 0;
        t->add_eos = sp->add_eos != 0;
        t->add_space_prefix = sp->add_space_prefix != 0;
        t->nfc = sp->nfc != 0;
        st = tok_build_impl(t);
    }
    if (st == AD_OK && (sp->n_merges != 0 || sp->merges)) {
        if (sp->kind != AD_TOK_GPT2)
            st = ad_fail(AD_ERR_ARG, "tokenizer: merges given for a %s vocabulary",
                         ad_tok_kind_name(sp->kind));
        else
            st = gpt2_install_merges(t, sp->n_merges, sp->merges, NULL, NULL);
    }
    if (st != AD_OK) ad_tokenizer_free(t);
    return st;
}

AdStatus ad_tokenizer_init_from_pieces(AdTokenizer *t, AdTokKind kind, int vocab_size,
                                       const char *const *pieces, const int *piece_len,
                                       const float *scores, int bos_id, int eos_id,
                                       int pad_id, int sep_id) {
    const AdTokSpec sp = {.kind = kind, .vocab_size = vocab_size, .pieces = pieces,
                          .piece_len = piece_len, .scores = scores, .bos_id = bos_id,
                          .eos_id = eos_id, .pad_id = pad_id, .sep_id = sep_id, .unk_id = -1,
                          .pre = AD_PRE_GPT2, .add_space_prefix = kind == AD_TOK_SPM};
    return ad_tokenizer_init_spec(t, &sp);
}

static const char *const PRE_NAMES[AD_PRE_COUNT] = {
    "gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", "falcon", "mpt",
    "starcoder", "refact", "smollm", "default"};

const char *ad_pretok_name(AdPreTok p) {
    return (int)p >= 0 && (int)p < AD_PRE_COUNT ? PRE_NAMES[p] : "?";
}

int ad_pretok_parse(const char *s) {
    if (!s) return -1;
    for (int k = 0; k < AD_PRE_COUNT; k++)
        if (strcmp(s, PRE_NAMES[k]) == 0) return k;
    static const struct {
        const char *name;
        AdPreTok pre;
    } aliases[] = {{"llama3", AD_PRE_LLAMA3}, {"llama-v3", AD_PRE_LLAMA3},
                   {"qwen2.5", AD_PRE_QWEN2}, {"qwen-2.5", AD_PRE_QWEN2},
                   {"deepseek-r1-qwen", AD_PRE_QWEN2}};
    for (size_t k = 0; k < sizeof aliases / sizeof aliases[0]; k++)
        if (strcmp(s, aliases[k].name) == 0) return aliases[k].pre;
    return -1;
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

/* Reads a whole tokenizer file (at most TOK_MAX_FILE bytes) into *buf (malloc'd, with a
 * NUL after the n bytes). */
static AdStatus read_whole_file(const char *path, unsigned char **buf, size_t *n) {
    *buf = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ad_fail(AD_ERR_IO, "cannot open tokenizer file %s: %s", path, strerror(errno));
    AdStatus st = AD_OK;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = ad_fail(AD_ERR_IO, "cannot determine the size of tokenizer file %s", path);
    } else if (size > TOK_MAX_FILE) {
        st = ad_fail(AD_ERR_FORMAT, "tokenizer file %s is %ld bytes, more than the %ld allowed",
                     path, size, TOK_MAX_FILE);
    } else if (!(*buf = ad_malloc((size_t)size + 1, "tokenizer file contents"))) {
        st = AD_ERR_NOMEM;
    } else if (fread(*buf, 1, (size_t)size, f) != (size_t)size) {
        st = ad_fail(AD_ERR_IO, "cannot read %zu bytes from tokenizer file %s", (size_t)size,
                     path);
    } else {
        (*buf)[size] = '\0';
        *n = (size_t)size;
    }
    fclose(f);
    if (st != AD_OK) {
        free(*buf);
        *buf = NULL;
    }
    return st;
}

AdStatus ad_tokenizer_load_llama2c(AdTokenizer *t, const char *path, int vocab_size) {
    memset(t, 0, sizeof *t);
    if (vocab_size < 1 || vocab_size > TOK_MAX_VOCAB)
        return ad_fail(AD_ERR_ARG, "tokenizer %s: vocab_size %d is outside [1, %d]", path,
                       vocab_size, TOK_MAX_VOCAB);
    unsigned char *buf = NULL;
    size_t n = 0;
    AdStatus st = read_whole_file(path, &buf, &n);
    if (st != AD_OK) return st;
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
    free(buf);
    if (st != AD_OK) ad_tokenizer_free(t);
    return st;
}

/* ---- GPT-2 merges and the Hugging Face files ---- */

/* Names merge r in messages: "<path> line <lines[r]>" when read from merges.txt, else
 * "merge <r>". */
static const char *merge_where(char *buf, size_t cap, int r, const int *lines, const char *path) {
    if (lines) snprintf(buf, cap, "%s line %d", path, lines[r]);
    else snprintf(buf, cap, "merge %d", r);
    return buf;
}

/* Checks n merges (id pairs) against t's vocabulary and installs them with their lookup
 * tables; t is unchanged on error. lines/path (may be NULL) name merges in messages. */
static AdStatus gpt2_install_merges(AdTokenizer *t, int n, const int *pairs, const int *lines,
                                    const char *path) {
    TokImpl *im = t->impl;
    if (n < 0 || n > TOK_MAX_VOCAB)
        return ad_fail(AD_ERR_ARG, "GPT-2 merges: %d merges is outside [0, %d]", n, TOK_MAX_VOCAB);
    if (n > 0 && !pairs) return ad_fail(AD_ERR_ARG, "GPT-2 merges: %d merges but no pairs", n);
    if (n > 0 && !im->byte_level)
        return ad_fail(AD_ERR_FORMAT, "GPT-2 merges need a byte-level vocabulary (each of the "
                       "256 byte characters a piece, every piece in byte-to-unicode form)");
    uint32_t cap = n > 0 ? hash_capacity(n) : 0;
    int *merges = ad_malloc(2 * (size_t)(n > 0 ? n : 1) * sizeof *merges, "GPT-2 merges");
    int *result = ad_malloc((size_t)(n > 0 ? n : 1) * sizeof *result, "GPT-2 merge results");
    int *table = cap ? ad_malloc((size_t)cap * sizeof *table, "GPT-2 merge index") : NULL;
    AdStatus st = merges && result && (table || !cap) ? AD_OK : AD_ERR_NOMEM;
    for (uint32_t h = 0; h < cap && st == AD_OK; h++) table[h] = -1;
    char where[4200], cat[TOK_MAX_PIECE];
    for (int r = 0; r < n && st == AD_OK; r++) {
        int a = pairs[2 * r], b = pairs[2 * r + 1];
        merge_where(where, sizeof where, r, lines, path);
        if (a < 0 || a >= t->vocab_size || b < 0 || b >= t->vocab_size) {
            st = ad_fail(AD_ERR_ARG, "%s: ids %d and %d: outside [0, %d)", where, a, b,
                         t->vocab_size);
            break;
        }
        int la = t->piece_len[a], lb = t->piece_len[b];
        if (im->special[a] || im->special[b] || la == 0 || lb == 0) {
            st = ad_fail(AD_ERR_FORMAT, "%s: joins pieces %d and %d, of which one is empty or "
                         "special", where, a, b);
            break;
        }
        int m = -1;
        if (la + lb <= TOK_MAX_PIECE) {
            memcpy(cat, t->pieces[a], (size_t)la);
            memcpy(cat + la, t->pieces[b], (size_t)lb);
            m = gpt2_find_piece(t, im, cat, la + lb);
        }
        if (m < 0) {
            st = ad_fail(AD_ERR_FORMAT, "%s: \"%s\" + \"%s\" makes a piece that is not in the "
                         "vocabulary", where, t->pieces[a], t->pieces[b]);
            break;
        }
        merges[2 * r] = a;
        merges[2 * r + 1] = b;
        result[r] = m;
        uint32_t h = hash_pair(a, b) & (cap - 1);
        for (; table[h] >= 0; h = (h + 1) & (cap - 1)) {
            int q = table[h];
            if (merges[2 * q] == a && merges[2 * q + 1] == b) {
                char first[4200];
                st = ad_fail(AD_ERR_FORMAT, "%s: \"%s %s\" repeats %s", where, t->pieces[a],
                             t->pieces[b], merge_where(first, sizeof first, q, lines, path));
                break;
            }
        }
        if (st != AD_OK) break;
        table[h] = r;
    }
    if (st != AD_OK) {
        free(merges);
        free(result);
        free(table);
        return st;
    }
    free(t->merges);
    free(im->merge_result);
    free(im->merge_hash);
    t->merges = merges;
    t->n_merges = n;
    im->merge_result = result;
    im->merge_hash = table;
    im->merge_cap = cap;
    return AD_OK;
}

int ad_tokenizer_piece_id(const AdTokenizer *t, const char *s, int len) {
    if (!t || !t->impl || t->kind != AD_TOK_GPT2 || len < 0 || (len > 0 && !s)) return -1;
    return gpt2_find_piece(t, t->impl, s, len);
}

AdStatus ad_tokenizer_set_merges(AdTokenizer *t, int n_merges, const int *merges) {
    if (!t || !t->impl || t->kind != AD_TOK_GPT2)
        return ad_fail(AD_ERR_ARG, "set_merges: not an initialised GPT-2 tokenizer");
    return gpt2_install_merges(t, n_merges, merges, NULL, NULL);
}

/* Line and column (from 1) of text + off, for messages. */
static void text_position(const char *text, size_t off, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

static int cmp_piece_ptrs(const void *a, const void *b) {
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

AdStatus ad_tok_read_json(const char *path, cJSON **root) {
    *root = NULL;
    unsigned char *text = NULL;
    size_t n = 0;
    AdStatus st = read_whole_file(path, &text, &n);
    if (st != AD_OK) return st;
    /* the NUL read_whole_file appends must end the value: nothing may follow it */
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts((const char *)text, n + 1, &end, 1);
    if (*root && end != (const char *)text + n) {
        cJSON_Delete(*root);
        *root = NULL;
    }
    if (!*root) {
        size_t off = end && end >= (const char *)text ? (size_t)(end - (const char *)text) : n;
        int line, col;
        text_position((const char *)text, off < n ? off : n, &line, &col);
        free(text);
        return ad_fail(AD_ERR_FORMAT, "%s: line %d, column %d: malformed JSON", path, line, col);
    }
    free(text);
    return AD_OK;
}

/* Parses vocab.json into pieces[0..V) (pointers into the cJSON tree). */
static AdStatus gpt2_read_vocab(const char *path, cJSON **root, const char ***pieces, int *V) {
    AdStatus st = ad_tok_read_json(path, root);
    if (st != AD_OK) return st;
    if (!cJSON_IsObject(*root))
        return ad_fail(AD_ERR_FORMAT, "%s: not a JSON object mapping pieces to ids", path);
    int count = 0;
    for (const cJSON *e = (*root)->child; e; e = e->next)
        if (++count > TOK_MAX_VOCAB)
            return ad_fail(AD_ERR_FORMAT, "%s: more than %d pieces", path, TOK_MAX_VOCAB);
    if (count == 0) return ad_fail(AD_ERR_FORMAT, "%s: no pieces", path);
    const char **p = ad_calloc((size_t)count, sizeof *p, "GPT-2 vocabulary pieces");
    if (!p) return AD_ERR_NOMEM;
    *pieces = p;
    *V = count;
    for (const cJSON *e = (*root)->child; e; e = e->next) {
        const char *key = e->string;
        size_t len = strlen(key);
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e))
            return ad_fail(AD_ERR_FORMAT, "%s: key \"%.200s\": the id is not a number", path, key);
        if (!(v >= 0 && v < count) || v != floor(v))
            return ad_fail(AD_ERR_FORMAT, "%s: key \"%.200s\": id %.17g is not an integer in "
                           "[0, %d) (the ids of V pieces must be 0..V-1)", path, key, v, count);
        int id = (int)v;
        if (p[id])
            return ad_fail(AD_ERR_FORMAT, "%s: keys \"%.200s\" and \"%.200s\" share id %d", path,
                           p[id], key, id);
        if (len == 0 || len > TOK_MAX_PIECE)
            return ad_fail(AD_ERR_FORMAT, "%s: key \"%.200s\" (id %d) is %zu bytes long, "
                           "outside [1, %d]", path, key, id, len, TOK_MAX_PIECE);
        int bad = gpt2_piece_bytes(key, (int)len, NULL);
        if (bad < 0)
            return ad_fail(AD_ERR_FORMAT, "%s: key \"%.200s\" (id %d) is not in GPT-2's "
                           "byte-to-unicode form (byte offset %d)", path, key, id, -1 - bad);
        p[id] = key;
    }
    /* dense ids: count entries, ids distinct and below count */
    const char **sorted = ad_malloc((size_t)count * sizeof *sorted, "GPT-2 vocabulary check");
    if (!sorted) return AD_ERR_NOMEM;
    memcpy(sorted, p, (size_t)count * sizeof *sorted);
    qsort(sorted, (size_t)count, sizeof *sorted, cmp_piece_ptrs);
    for (int i = 1; i < count && st == AD_OK; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            st = ad_fail(AD_ERR_FORMAT, "%s: key \"%.200s\" appears twice", path, sorted[i]);
    free(sorted);
    return st;
}

/* Parses merges.txt into id pairs, with the line of each merge. */
static AdStatus gpt2_read_merges(const AdTokenizer *t, const char *path, int **pairs,
                                 int **lines, int *n_merges) {
    const TokImpl *im = t->impl;
    unsigned char *text = NULL;
    size_t n = 0;
    AdStatus st = read_whole_file(path, &text, &n);
    if (st != AD_OK) return st;
    size_t n_lines = 1;
    for (size_t i = 0; i < n; i++) n_lines += text[i] == '\n';
    if (n_lines > (size_t)TOK_MAX_VOCAB + 2) {
        free(text);
        return ad_fail(AD_ERR_FORMAT, "%s: %zu lines, more than the %d merges allowed", path,
                       n_lines, TOK_MAX_VOCAB);
    }
    *pairs = ad_malloc(2 * n_lines * sizeof **pairs, "GPT-2 merge pairs");
    *lines = ad_malloc(n_lines * sizeof **lines, "GPT-2 merge lines");
    if (!*pairs || !*lines) {
        free(text);
        return AD_ERR_NOMEM;
    }
    int m = 0, line = 0;
    const char *s = (const char *)text;
    for (size_t i = 0; i < n && st == AD_OK;) {
        size_t e = i;
        while (e < n && s[e] != '\n') e++;
        size_t next = e + 1, end = e;
        line++;
        if (end > i && s[end - 1] == '\r') end--;
        if (line == 1 && end - i >= 8 && memcmp(s + i, "#version", 8) == 0) {
            i = next;
            continue;
        }
        if (end == i) { /* blank line */
            i = next;
            continue;
        }
        const char *sp = memchr(s + i, ' ', end - i);
        const char *sp2 = sp ? memchr(sp + 1, ' ', (size_t)(s + end - sp - 1)) : NULL;
        int len = (int)(end - i < 200 ? end - i : 200);
        if (!sp || sp2 || sp == s + i || sp + 1 == s + end) {
            st = ad_fail(AD_ERR_FORMAT, "%s line %d: \"%.*s\" is not two pieces separated by "
                         "one space", path, line, len, s + i);
            break;
        }
        const char *field[2] = {s + i, sp + 1};
        size_t flen[2] = {(size_t)(sp - (s + i)), (size_t)(s + end - sp - 1)};
        for (int k = 0; k < 2 && st == AD_OK; k++) {
            int id = flen[k] <= TOK_MAX_PIECE ? gpt2_find_piece(t, im, field[k], (int)flen[k]) : -1;
            if (id < 0)
                st = ad_fail(AD_ERR_FORMAT, "%s line %d: \"%.*s\" is not a piece of the "
                             "vocabulary (or is a special token)", path, line,
                             (int)(flen[k] < 200 ? flen[k] : 200), field[k]);
            (*pairs)[2 * m + k] = id;
        }
        (*lines)[m++] = line;
        i = next;
    }
    free(text);
    *n_merges = m;
    return st;
}

AdStatus ad_tokenizer_load_gpt2(AdTokenizer *t, const char *vocab_json_path,
                                const char *merges_txt_path) {
    memset(t, 0, sizeof *t);
    cJSON *root = NULL;
    const char **pieces = NULL;
    int *pairs = NULL, *lines = NULL, V = 0, n_merges = 0;
    AdStatus st = gpt2_read_vocab(vocab_json_path, &root, &pieces, &V);
    if (st == AD_OK) st = tok_alloc(t, AD_TOK_GPT2, V);
    int eot = -1;
    for (int i = 0; i < V && st == AD_OK; i++) {
        int len = (int)strlen(pieces[i]);
        st = tok_set_piece(t, i, pieces[i], len);
        if (strcmp(pieces[i], "<|endoftext|>") == 0) eot = i;
    }
    if (st == AD_OK) {
        t->bos_id = t->eos_id = eot;
        st = tok_build_impl(t);
    }
    if (st == AD_OK && !((TokImpl *)t->impl)->byte_level) {
        const TokImpl *im = t->impl;
        char c[4];
        int b = 0;
        for (; b < 256; b++)
            if (gpt2_find_piece(t, im, c, utf8_encode(gpt2_byte_char(b), c)) < 0) break;
        st = ad_fail(AD_ERR_FORMAT, "%s has no piece for byte 0x%02X (\"%.*s\"): a byte-level "
                     "vocabulary needs all 256", vocab_json_path, b & 0xFF,
                     utf8_encode(gpt2_byte_char(b & 0xFF), c), c);
    }
    if (st == AD_OK) st = gpt2_read_merges(t, merges_txt_path, &pairs, &lines, &n_merges);
    if (st == AD_OK) st = gpt2_install_merges(t, n_merges, pairs, lines, merges_txt_path);
    cJSON_Delete(root);
    free(pieces);
    free(pairs);
    free(lines);
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
        free(im->piece_hash);
        free(im->raw);
        free(im->raw_off);
        free(im->merge_hash);
        free(im->merge_result);
        free(im->user_ids);
        free(im->user_hash);
        free(im);
    }
    free(t->merges);
    free(t->types);
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
        int k = ad_utf8_decode(s + i, len - i, &cp);
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
                           int cap, int *n_out, int dummy_prefix) {
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
    AdStatus st = dummy_prefix ? spm_add_group(t, &w, (const unsigned char *)" ", 1, 0) : AD_OK;
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

/* ---- GPT-2 BPE ---- */

/* Queues the merge of node l with node r if their ids have a merge rank; the heap of
 * SPM's encoder serves with score = -rank (exact in a float: ranks are below 2^24). */
static void gpt2_offer(const AdTokenizer *t, SpmWork *w, int l, int r) {
    const TokImpl *im = t->impl;
    int a = w->id[l], b = w->id[r];
    int rank = gpt2_merge_rank(t, im, a, b);
    if (rank >= 0) heap_push(w, (SpmPair){-(float)rank, l, r, a, b, im->merge_result[rank]});
}

/* Merges the m bytes of one pre-token, as encoder.py's bpe(): while some adjacent pair
 * has a rank, every occurrence of the lowest-ranked pair is merged, left to right (an
 * occurrence overlapping one just merged is skipped). Pairs that such a round creates are
 * queued only after it, so that the round sees only the pairs it started with. pending
 * has room for 2 m nodes; the result is the list from node 0 along w->next. */
static void gpt2_bpe(const AdTokenizer *t, SpmWork *w, int *pending, const unsigned char *p,
                     int m) {
    const TokImpl *im = t->impl;
    w->n = m;
    w->heap_n = 0;
    for (int k = 0; k < m; k++) {
        w->id[k] = im->byte_id[p[k]];
        w->prev[k] = k - 1;
        w->next[k] = k + 1 < m ? k + 1 : -1;
    }
    for (int k = 0; k + 1 < m; k++) gpt2_offer(t, w, k, k + 1);
    while (w->heap_n > 0) {
        float round = w->heap[0].score;
        int n_pending = 0;
        while (w->heap_n > 0 && w->heap[0].score == round) {
            SpmPair q = heap_pop(w);
            int l = q.left, r = q.right;
            if (w->id[l] != q.left_id || w->next[l] != r || w->id[r] != q.right_id)
                continue; /* stale: one side has merged since this pair was queued */
            w->id[l] = q.merged;
            w->id[r] = -1;
            w->next[l] = w->next[r];
            if (w->next[l] >= 0) w->prev[w->next[l]] = l;
            if (w->prev[l] >= 0) pending[n_pending++] = w->prev[l];
            pending[n_pending++] = l;
        }
        for (int k = 0; k < n_pending; k++) {
            int x = pending[k];
            if (w->id[x] >= 0 && w->next[x] >= 0) gpt2_offer(t, w, x, w->next[x]);
        }
    }
}

/* Byte-level BPE of one stretch of raw text (no user-defined pieces in it): the
 * pre-tokenizer t->pre splits it, then each pre-token's bytes are merged (llama-bpe first
 * looks the whole pre-token up, as Hugging Face's ignore_merges). */
static AdStatus encode_gpt2(const AdTokenizer *t, const unsigned char *s, size_t len, int *out,
                            int cap, int *n_out) {
    const TokImpl *im = t->impl;
    *n_out = 0;
    if (!im->byte_level)
        return ad_fail(AD_ERR_ARG, "encode: this GPT-2 vocabulary can only decode: its pieces "
                       "are not in byte-to-unicode form or miss a byte (llm.c tokenizer files "
                       "hold raw bytes); load vocab.json and merges.txt instead");
    if (!t->merges)
        return ad_fail(AD_ERR_ARG, "encode: this GPT-2 vocabulary has no merge table (imported "
                       "without merges?): it can only decode; load vocab.json and merges.txt "
                       "instead");
    if (len > (size_t)INT_MAX / 4)
        return ad_fail(AD_ERR_ARG, "encode: text of %zu bytes is too long", len);
    if (len == 0) return AD_OK;
    for (size_t i = 0; i < len; i++)
        if (im->byte_id[s[i]] < 0)
            return ad_fail(AD_ERR_ARG, "encode: byte 0x%02X (at byte %zu of the text) has no "
                           "piece in this vocabulary, so the text cannot be encoded", s[i], i);
    size_t *ends = ad_malloc(2 * len * sizeof *ends, "pre-token bounds");
    if (!ends) return AD_ERR_NOMEM;
    size_t n_pre = ad_pretok_split(t->pre, s, len, ends, ends + len);
    size_t longest = 0;
    for (size_t p = 0, a = 0; p < n_pre; a = ends[p++])
        if (ends[p] - a > longest) longest = ends[p] - a;
    /* m nodes; at most m - 1 initial pairs and 2 more per merge; 2 pending per merge;
     * the byte-to-unicode form of a pre-token takes at most 2 bytes per byte */
    size_t m = longest, heap_max = 3 * m;
    SpmWork w = {0};
    void *scratch = ad_calloc(1, 5 * m * sizeof(int) + heap_max * sizeof(SpmPair) + 2 * m,
                              "GPT-2 encode scratch");
    if (!scratch) {
        free(ends);
        return AD_ERR_NOMEM;
    }
    w.heap = scratch;
    w.heap_cap = (int)heap_max;
    w.id = (int *)(w.heap + heap_max);
    w.prev = w.id + m;
    w.next = w.prev + m;
    int *pending = w.next + m;
    char *word = (char *)(pending + 2 * m);
    AdStatus st = AD_OK;
    int n = 0;
    for (size_t p = 0, a = 0; p < n_pre && st == AD_OK; a = ends[p++]) {
        size_t e = ends[p];
        int whole = -1;
        if (t->pre == AD_PRE_LLAMA3) {
            int wl = 0;
            for (size_t i = a; i < e; i++) wl += utf8_encode(gpt2_byte_char(s[i]), word + wl);
            whole = gpt2_find_piece(t, im, word, wl);
        }
        if (whole >= 0) {
            w.id[0] = whole;
            w.next[0] = -1;
        } else {
            gpt2_bpe(t, &w, pending, s + a, (int)(e - a));
        }
        for (int k = 0; k >= 0; k = w.next[k]) {
            if (n == cap) {
                st = ad_fail(AD_ERR_ARG, "encode: text needs more than %d tokens (room for %d)",
                             cap, cap);
                break;
            }
            out[n++] = w.id[k];
        }
    }
    free(scratch);
    free(ends);
    if (st == AD_OK) *n_out = n;
    return st;
}

/* Marks the user-defined pieces of s[0..len) in tok_at (-1 elsewhere; tok_at[i] = id of the
 * piece starting at byte i), as llama.cpp's tokenizer_st_partition: longest pieces first,
 * each length's occurrences leftmost first, none overlapping a piece already placed
 * (covered has len bytes of scratch). */
static void user_partition(const AdTokenizer *t, const unsigned char *s, size_t len, int *tok_at,
                           unsigned char *covered) {
    const TokImpl *im = t->impl;
    for (size_t i = 0; i < len; i++) tok_at[i] = -1;
    memset(covered, 0, len);
    for (int k = 0; k < im->n_user;) {
        size_t L = (size_t)t->piece_len[im->user_ids[k]];
        while (k < im->n_user && (size_t)t->piece_len[im->user_ids[k]] == L) k++;
        /* pieces placed before are at least L long: a window of L bytes overlaps one iff
         * its first or last byte is covered */
        for (size_t i = 0; i + L <= len;) {
            int id = covered[i] || covered[i + L - 1] ? -1 : user_find(t, im, s + i, (int)L);
            if (id < 0) {
                i++;
                continue;
            }
            tok_at[i] = id;
            memset(covered + i, 1, L);
            i += L;
        }
    }
}

/* Encodes one stretch of raw text with the kind's encoder, after n tokens of out. */
static AdStatus encode_raw(const AdTokenizer *t, const unsigned char *s, size_t len, int *out,
                           int cap, int *n, int dummy_prefix) {
    int k = 0;
    AdStatus st;
    switch (t->kind) {
    case AD_TOK_BYTE: st = encode_byte(t, s, len, out + *n, cap - *n, &k); break;
    case AD_TOK_CHAR: st = encode_char(t, s, len, out + *n, cap - *n, &k); break;
    case AD_TOK_SPM: st = encode_spm(t, s, len, out + *n, cap - *n, &k, dummy_prefix); break;
    case AD_TOK_GPT2: st = encode_gpt2(t, s, len, out + *n, cap - *n, &k); break;
    default: return ad_fail(AD_ERR_ARG, "encode: unknown tokenizer kind %d", (int)t->kind);
    }
    if (st == AD_OK) *n += k;
    return st;
}

/* encode and encode_continuation: user-defined pieces are cut out first; SPM adds its
 * dummy prefix (when add_space_prefix) to the first stretch of a text of its own and,
 * as llama.cpp, to each stretch that follows a user-defined piece. */
static AdStatus encode_any(const AdTokenizer *t, const char *text, size_t len, int *out, int cap,
                           int *n_out, int dummy_prefix) {
    *n_out = 0;
    if (!t->impl) return ad_fail(AD_ERR_ARG, "encode: the tokenizer is not initialised");
    if (!text && len > 0) return ad_fail(AD_ERR_ARG, "encode: text is NULL but len is %zu", len);
    if (cap < 0) return ad_fail(AD_ERR_ARG, "encode: negative capacity %d", cap);
    const unsigned char *s = (const unsigned char *)text;
    const TokImpl *im = t->impl;
    int prefix = t->add_space_prefix;
    if (t->nfc && len > 0) {
        unsigned char *norm;
        size_t nlen;
        if (ad_unicode_nfc(s, len, &norm, &nlen) != 0)
            return ad_fail(AD_ERR_NOMEM, "encode: out of memory normalizing %zu bytes", len);
        AdTokenizer plain = *t;
        plain.nfc = 0;
        AdStatus st = encode_any(&plain, (const char *)norm, nlen, out, cap, n_out, dummy_prefix);
        free(norm);
        return st;
    }
    int n = 0;
    if (im->n_user == 0 || len == 0) {
        AdStatus st = encode_raw(t, s, len, out, cap, &n, dummy_prefix && prefix);
        if (st == AD_OK) *n_out = n;
        return st;
    }
    int *tok_at = ad_malloc(len * sizeof *tok_at, "user-defined token marks");
    unsigned char *covered = ad_malloc(len, "user-defined token cover");
    AdStatus st = tok_at && covered ? AD_OK : AD_ERR_NOMEM;
    if (st == AD_OK) user_partition(t, s, len, tok_at, covered);
    size_t raw = 0;
    int after_piece = dummy_prefix;
    for (size_t i = 0; i <= len && st == AD_OK;) {
        if (i < len && tok_at[i] < 0) {
            i++;
            continue;
        }
        if (i > raw) st = encode_raw(t, s + raw, i - raw, out, cap, &n, after_piece && prefix);
        if (i == len || st != AD_OK) break;
        if (n == cap) {
            st = ad_fail(AD_ERR_ARG, "encode: text needs more than %d tokens (room for %d)", cap,
                         cap);
            break;
        }
        out[n++] = tok_at[i];
        after_piece = 1;
        i += (size_t)t->piece_len[tok_at[i]];
        raw = i;
    }
    free(tok_at);
    free(covered);
    if (st == AD_OK) *n_out = n;
    return st;
}

AdStatus ad_tokenizer_encode(const AdTokenizer *t, const char *text, size_t len, int *out,
                             int cap, int *n_out) {
    return encode_any(t, text, len, out, cap, n_out, 1);
}

AdStatus ad_tokenizer_encode_continuation(const AdTokenizer *t, const char *text, size_t len,
                                          int *out, int cap, int *n_out) {
    return encode_any(t, text, len, out, cap, n_out, 0);
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
        } else if (t->kind == AD_TOK_GPT2 && im->byte_level) {
            p = im->raw + im->raw_off[id];
            plen = im->raw_off[id + 1] - im->raw_off[id];
        }
        for (int k = 0; k < plen; k++, need++)
            if (need + 1 < cap) buf[need] = p[k];
    }
    if (cap > 0) buf[need < cap ? need : cap - 1] = '\0';
    return need;
}
