/* test_tokenizer.c: byte and char vocabularies against hand-derived ids, SPM against ids
 * computed by an independent script and by a naive transcription of llama2.c's encode(),
 * rebuilding from pieces, and the llama2.c file reader's errors. */
#include "autodidact/rng.h"
#include "autodidact/tokenizer.h"
#include "testutil.h"

#include <string.h>

/* ---- byte ---- */

START_TEST(test_byte_round_trip) {
    AdTokenizer t;
    ck_assert_int_eq(ad_tokenizer_init_byte(&t), AD_OK);
    ck_assert_int_eq(t.vocab_size, 260);
    ck_assert_int_eq(t.pad_id, 0);
    ck_assert_int_eq(t.bos_id, 1);
    ck_assert_int_eq(t.eos_id, 2);
    ck_assert_int_eq(t.sep_id, 3);
    ck_assert_str_eq(t.pieces[0], "<pad>");
    ck_assert_str_eq(t.pieces[3], "<sep>");
    /* every byte value, then NUL and invalid UTF-8 (lone continuation, truncated lead) */
    unsigned char text[256 + 6];
    for (int b = 0; b < 256; b++) text[b] = (unsigned char)(255 - b);
    memcpy(text + 256, "\x00\x80\xC3\xFF\xE2\x82", 6);
    int ids[300], n = -1;
    ck_assert_int_eq(ad_tokenizer_encode(&t, (const char *)text, sizeof text, ids, 300, &n), AD_OK);
    ck_assert_int_eq(n, (int)sizeof text);
    for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], 4 + text[i]);
    char out[300];
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, n, out, sizeof out), sizeof text);
    ck_assert(memcmp(out, text, sizeof text) == 0);
    ck_assert_int_eq(out[sizeof text], '\0');
    /* too little room */
    ck_assert_int_eq(ad_tokenizer_encode(&t, (const char *)text, sizeof text, ids, 10, &n),
                     AD_ERR_ARG);
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_byte_decode_specials_and_truncation) {
    AdTokenizer t;
    ck_assert_int_eq(ad_tokenizer_init_byte(&t), AD_OK);
    const int ids[] = {1, 4 + 'h', 0, 4 + 'i', 3, 2, -5, 999, 4 + '!'};
    char out[16];
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, 9, out, sizeof out), 3);
    ck_assert_str_eq(out, "hi!");
    char small[3];
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, 9, small, sizeof small), 3);
    ck_assert_str_eq(small, "hi");
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, 9, NULL, 0), 3);
    ad_tokenizer_free(&t);
    ad_tokenizer_free(&t); /* free leaves a zeroed struct: safe twice */
    AdTokenizer z;
    memset(&z, 0, sizeof z);
    ad_tokenizer_free(&z);
}
END_TEST

/* ---- char ---- */

/* "héllo wörld €😀": code points, sorted: ' ' d h l o r w é(E9) ö(F6) €(20AC) 😀(1F600),
 * so ids 4..14 in that order. */
static const char CHAR_TEXT[] = "h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC\xF0\x9F\x98\x80";

START_TEST(test_char_vocab_and_round_trip) {
    AdTokenizer t;
    ck_assert_int_eq(ad_tokenizer_init_char(&t, CHAR_TEXT, strlen(CHAR_TEXT)), AD_OK);
    ck_assert_int_eq(t.vocab_size, 15);
    ck_assert_int_eq(t.kind, AD_TOK_CHAR);
    ck_assert_str_eq(t.pieces[1], "<bos>");
    const char *expect[11] = {" ", "d", "h", "l", "o", "r", "w",
                              "\xC3\xA9", "\xC3\xB6", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
    for (int i = 0; i < 11; i++) {
        ck_assert_str_eq(t.pieces[4 + i], expect[i]);
        ck_assert_int_eq(t.piece_len[4 + i], (int)strlen(expect[i]));
    }
    int ids[64], n;
    ck_assert_int_eq(ad_tokenizer_encode(&t, CHAR_TEXT, strlen(CHAR_TEXT), ids, 64, &n), AD_OK);
    const int want[] = {6, 11, 7, 7, 8, 4, 10, 12, 9, 7, 5, 4, 13, 14};
    ck_assert_int_eq(n, 14);
    for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], want[i]);
    char out[64];
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, n, out, sizeof out), strlen(CHAR_TEXT));
    ck_assert_str_eq(out, CHAR_TEXT);
    ck_assert_int_eq(ad_tokenizer_encode(&t, CHAR_TEXT, strlen(CHAR_TEXT), ids, 13, &n),
                     AD_ERR_ARG);
    ck_assert_int_eq(ad_tokenizer_encode(&t, "", 0, ids, 0, &n), AD_OK);
    ck_assert_int_eq(n, 0);
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_char_missing_and_invalid) {
    AdTokenizer t;
    ck_assert_int_eq(ad_tokenizer_init_char(&t, CHAR_TEXT, strlen(CHAR_TEXT)), AD_OK);
    int ids[64], n;
    ck_assert_int_eq(ad_tokenizer_encode(&t, "hallo", 5, ids, 64, &n), AD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "'a'"));
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "U+0061"));
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "offset 1"));
    ck_assert_int_eq(ad_tokenizer_encode(&t, "h\xC3\xBC", 3, ids, 64, &n), AD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "U+00FC"));
    ck_assert_int_eq(ad_tokenizer_encode(&t, "hh\xFF", 3, ids, 64, &n), AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "offset 2"));
    ad_tokenizer_free(&t);

    /* invalid UTF-8 given to init_char: bad continuation, overlong, surrogate, too large,
     * truncated at the end, stray continuation byte */
    const struct { const char *s; size_t len; const char *where; } bad[] = {
        {"ab\xC3(", 4, "offset 2"},     {"\xC0\xAF", 2, "offset 0"},
        {"x\xED\xA0\x80", 4, "offset 1"}, {"xy\xF4\x90\x80\x80", 6, "offset 2"},
        {"abc\xE2\x82", 5, "offset 3"}, {"abcd\x80", 5, "offset 4"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(ad_tokenizer_init_char(&t, bad[i].s, bad[i].len), AD_ERR_FORMAT);
        ck_assert_msg(strstr(ad_errmsg(), bad[i].where), "case %zu: %s", i, ad_errmsg());
        ck_assert_ptr_null(t.pieces);
    }
    /* NUL is a character like any other */
    ck_assert_int_eq(ad_tokenizer_init_char(&t, "a\0b", 3), AD_OK);
    ck_assert_int_eq(t.vocab_size, 7);
    ck_assert_int_eq(t.piece_len[4], 1);
    ck_assert_int_eq(t.pieces[4][0], '\0');
    ad_tokenizer_free(&t);
}
END_TEST

/* Rebuilds t from its own pieces and checks that the copy is identical and encodes
 * `text` to the same ids. */
static void check_rebuild(const AdTokenizer *t, const char *text, size_t len) {
    AdTokenizer r;
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(&r, t->kind, t->vocab_size,
                                                   (const char *const *)t->pieces, t->piece_len,
                                                   t->scores, t->bos_id, t->eos_id, t->pad_id,
                                                   t->sep_id),
                     AD_OK);
    ck_assert_int_eq(r.kind, t->kind);
    ck_assert_int_eq(r.vocab_size, t->vocab_size);
    ck_assert_int_eq(r.bos_id, t->bos_id);
    ck_assert_int_eq(r.eos_id, t->eos_id);
    ck_assert_int_eq(r.pad_id, t->pad_id);
    ck_assert_int_eq(r.sep_id, t->sep_id);
    for (int i = 0; i < t->vocab_size; i++) {
        ck_assert_int_eq(r.piece_len[i], t->piece_len[i]);
        ck_assert(memcmp(r.pieces[i], t->pieces[i], (size_t)t->piece_len[i] + 1) == 0);
        ck_assert(r.scores[i] == t->scores[i]);
        ck_assert_ptr_ne(r.pieces[i], t->pieces[i]);
    }
    int a[256], b[256], na, nb;
    ck_assert_int_eq(ad_tokenizer_encode(t, text, len, a, 256, &na), AD_OK);
    ck_assert_int_eq(ad_tokenizer_encode(&r, text, len, b, 256, &nb), AD_OK);
    ck_assert_int_eq(na, nb);
    for (int i = 0; i < na; i++) ck_assert_int_eq(a[i], b[i]);
    ad_tokenizer_free(&r);
}

START_TEST(test_from_pieces_rebuild) {
    AdTokenizer t;
    ck_assert_int_eq(ad_tokenizer_init_byte(&t), AD_OK);
    check_rebuild(&t, "any\0bytes\xFF", 11);
    ad_tokenizer_free(&t);
    ck_assert_int_eq(ad_tokenizer_init_char(&t, CHAR_TEXT, strlen(CHAR_TEXT)), AD_OK);
    check_rebuild(&t, CHAR_TEXT, strlen(CHAR_TEXT));
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_from_pieces_rejects) {
    AdTokenizer t, r;
    ck_assert_int_eq(ad_tokenizer_init_byte(&t), AD_OK);
    const char *const *p = (const char *const *)t.pieces;
    /* 259 pieces: byte 0xFF has none */
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(&r, AD_TOK_BYTE, 259, p, t.piece_len, NULL, 1,
                                                   2, 0, 3),
                     AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "0xFF"));
    ck_assert_ptr_null(r.pieces);
    /* bos_id out of range */
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(&r, AD_TOK_BYTE, 260, p, t.piece_len, NULL,
                                                   260, 2, 0, 3),
                     AD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "bos_id"));
    /* "<pad>" is not one code point when it is not a special id */
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(&r, AD_TOK_CHAR, 260, p, t.piece_len, NULL,
                                                   1, 2, -1, 3),
                     AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "piece 0"));
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_kind_names_and_gpt2) {
    for (int k = AD_TOK_BYTE; k <= AD_TOK_GPT2; k++)
        ck_assert_int_eq(ad_tok_kind_parse(ad_tok_kind_name((AdTokKind)k)), k);
    ck_assert_str_eq(ad_tok_kind_name(AD_TOK_SPM), "spm");
    ck_assert_int_eq(ad_tok_kind_parse("wordpiece"), -1);
    const char *pieces[] = {"<|endoftext|>", "a", "b"};
    const int lens[] = {13, 1, 1};
    AdTokenizer t;
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(&t, AD_TOK_GPT2, 3, pieces, lens, NULL, -1, 0,
                                                   -1, -1),
                     AD_OK);
    int ids[4], n;
    ck_assert_int_eq(ad_tokenizer_encode(&t, "ab", 2, ids, 4, &n), AD_ERR_ARG);
    ck_assert_str_eq(ad_errmsg(), "GPT-2 BPE tokenizer is not available yet");
    ad_tokenizer_free(&t);
}
END_TEST

/* ---- SPM on a hand-made vocabulary ---- */

/* ids 0-2 <unk> <s> </s>, 3..258 byte pieces, then the pieces below. */
static const char *const TINY_PIECES[] = {" ", "a", "b", "ab", " a", " ab", "aa"};
static const float TINY_SCORES[] = {-10, -11, -12, -1, -2, -0.5f, -3};
enum { TINY_SP = 259, TINY_A, TINY_B, TINY_AB, TINY_SA, TINY_SAB, TINY_AA, TINY_N };

static void tiny_spm(AdTokenizer *t) {
    static char bytes[256][7];
    const char *pieces[TINY_N];
    int lens[TINY_N];
    float scores[TINY_N] = {0};
    pieces[0] = "<unk>";
    pieces[1] = "\n<s>\n";
    pieces[2] = "\n</s>\n";
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        pieces[3 + b] = bytes[b];
    }
    for (int i = 0; i < TINY_N - TINY_SP; i++) {
        pieces[TINY_SP + i] = TINY_PIECES[i];
        scores[TINY_SP + i] = TINY_SCORES[i];
    }
    for (int i = 0; i < TINY_N; i++) lens[i] = (int)strlen(pieces[i]);
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(t, AD_TOK_SPM, TINY_N, pieces, lens, scores,
                                                   1, 2, -1, -1),
                     AD_OK);
}

static void check_ids(const AdTokenizer *t, const char *text, size_t len, const int *want,
                      int n_want) {
    int ids[512], n;
    ck_assert_int_eq(ad_tokenizer_encode(t, text, len, ids, 512, &n), AD_OK);
    ck_assert_msg(n == n_want, "\"%s\": %d tokens, expected %d", text, n, n_want);
    for (int i = 0; i < n; i++)
        ck_assert_msg(ids[i] == want[i], "\"%s\": token %d is %d, expected %d", text, i, ids[i],
                      want[i]);
}

START_TEST(test_spm_tiny_by_hand) {
    AdTokenizer t;
    tiny_spm(&t);
    /* " ","a","b": "ab" (-1) beats " a" (-2), then " ab" (-0.5) */
    check_ids(&t, "ab", 2, (const int[]){TINY_SAB}, 1);
    /* " ","a","a","a": " a" (-2) beats both "aa" pairs (-3); " aa" is no piece, so the
     * remaining "a","a" become "aa" */
    check_ids(&t, "aaa", 3, (const int[]){TINY_SA, TINY_AA}, 2);
    /* "b","a","a" after " ": " b" is no piece, "ba" neither; "aa" (-3) */
    check_ids(&t, "baa", 3, (const int[]){TINY_SP, TINY_B, TINY_AA}, 3);
    /* byte fallback: 'c' (0x63) and the two bytes of "é" have no piece: ids 3 + byte */
    check_ids(&t, "c\xC3\xA9", 3, (const int[]){TINY_SP, 3 + 0x63, 3 + 0xC3, 3 + 0xA9}, 4);
    check_ids(&t, "", 0, NULL, 0);
    /* decode: after BOS the leading space goes, elsewhere it stays; bytes come back */
    char out[32];
    const int ids[] = {1, TINY_SAB, TINY_SA, 3 + 0x0A, 2};
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, 5, out, sizeof out), 5);
    ck_assert_str_eq(out, "ab a\n");
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids + 1, 3, out, sizeof out), 6);
    ck_assert_str_eq(out, " ab a\n");
    check_rebuild(&t, "aab c", 5);
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_spm_tiny_ties_go_left) {
    /* With " a" removed from the race (score -20), "aaa" is " ","a","a","a" and the two
     * "aa" pairs tie at -3: the leftmost merges, giving " ","aa","a". */
    AdTokenizer t;
    tiny_spm(&t);
    t.scores[TINY_SA] = -20; /* scores are read at encode time */
    check_ids(&t, "aaa", 3, (const int[]){TINY_SP, TINY_AA, TINY_A}, 3);
    check_ids(&t, "aaaa", 4, (const int[]){TINY_SP, TINY_AA, TINY_AA}, 3);
    /* at -1e10 or below a pair never merges (llama2.c starts from best = -1e10): " a" (-20)
     * still does, "aa" no longer */
    t.scores[TINY_AA] = -1e10f;
    check_ids(&t, "aaa", 3, (const int[]){TINY_SA, TINY_A, TINY_A}, 3);
    ad_tokenizer_free(&t);
}
END_TEST

/* ---- SPM with the real llama2.c tokenizer ---- */

static int load_tok512(AdTokenizer *t) {
    const char *dir = ad_test_models_dir();
    if (!dir) {
        printf("skipped: no shared model directory (set AD_SHARED_MODELS)\n");
        return 0;
    }
    const char *path = ad_test_path(dir, "tok512.bin");
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("skipped: %s is absent\n", path);
        return 0;
    }
    fclose(f);
    AdStatus st = ad_tokenizer_load_llama2c(t, path, 512);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
    return 1;
}

/* Expected ids computed outside this code base by a 50-line Python 3 transcription of
 * llama2.c run.c encode() (dummy " " token, code-point groups, byte fallback 3 + byte,
 * repeated best-score merge with ties to the leftmost, dict lookups) that read tok512.bin
 * itself; its output is pasted here. */
static const struct {
    const char *text;
    size_t len;
    int n;
    int ids[16];
} TOK512_CASES[] = {
    {"Once upon a time", 16, 4, {403, 407, 261, 378}},
    {"Once upon a time, there was a little girl named Lily.", 53, 15,
     {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426}},
    {"Hello\nworld\n", 12, 8, {346, 306, 414, 13, 424, 304, 341, 13}},
    {"caf\xC3\xA9 \xE2\x82\xAC" "5 \xF0\x9F\x98\x80!", 16, 13,
     {280, 412, 431, 485, 410, 503, 480, 410, 243, 162, 155, 131, 443}},
    {"\x00\x01\xFF\xFE" "A", 5, 6, {410, 3, 4, 258, 257, 447}},
    {"The cat sat.", 12, 6, {291, 280, 294, 262, 294, 426}},
    {"a", 1, 1, {261}},
    {" ", 1, 2, {410, 410}},
};

START_TEST(test_spm_tok512_ids) {
    AdTokenizer t;
    if (!load_tok512(&t)) return;
    ck_assert_int_eq(t.kind, AD_TOK_SPM);
    ck_assert_int_eq(t.vocab_size, 512);
    ck_assert_int_eq(t.bos_id, 1);
    ck_assert_int_eq(t.eos_id, 2);
    ck_assert_int_eq(t.pad_id, -1);
    ck_assert_int_eq(t.sep_id, -1);
    ck_assert_str_eq(t.pieces[13], "<0x0A>");
    ck_assert_str_eq(t.pieces[259], " t");
    ck_assert(t.scores[260] == -1.0f);
    for (size_t c = 0; c < sizeof TOK512_CASES / sizeof TOK512_CASES[0]; c++)
        check_ids(&t, TOK512_CASES[c].text, TOK512_CASES[c].len, TOK512_CASES[c].ids,
                  TOK512_CASES[c].n);
    check_rebuild(&t, TOK512_CASES[1].text, TOK512_CASES[1].len);
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_spm_tok512_round_trip) {
    AdTokenizer t;
    if (!load_tok512(&t)) return;
#define TEXT(s) {s, sizeof(s) - 1}
    const struct { const char *s; size_t len; } texts[] = {
        TEXT("Once upon a time"),
        TEXT("Lily said:\n\"Look!\"\n\nThe end.\n"),
        TEXT("\x00\x01\xFF\xFE raw \x80 bytes \xC3"),
        TEXT("emoji \xF0\x9F\x98\x80 and \xE2\x82\xAC"),
        TEXT("  two leading spaces"),
    };
#undef TEXT
    for (size_t c = 0; c < sizeof texts / sizeof texts[0]; c++) {
        int ids[128], n;
        ids[0] = t.bos_id;
        ck_assert_int_eq(ad_tokenizer_encode(&t, texts[c].s, texts[c].len, ids + 1, 127, &n), AD_OK);
        char out[256];
        /* with BOS in front the dummy-prefix space is stripped, as llama2.c does */
        ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, n + 1, out, sizeof out), texts[c].len);
        ck_assert(memcmp(out, texts[c].s, texts[c].len) == 0);
        /* without BOS it stays */
        ck_assert_uint_eq(ad_tokenizer_decode(&t, ids + 1, n, out, sizeof out), texts[c].len + 1);
        ck_assert_int_eq(out[0], ' ');
        ck_assert(memcmp(out + 1, texts[c].s, texts[c].len) == 0);
    }
    ad_tokenizer_free(&t);
}
END_TEST

/* llama2.c run.c encode(), transcribed with linear lookups: the reference for the
 * fast encoder. Returns the token count. */
static int naive_lookup(const AdTokenizer *t, const char *s, int len) {
    for (int i = 0; i < t->vocab_size; i++)
        if (t->piece_len[i] == len && memcmp(t->pieces[i], s, (size_t)len) == 0) return i;
    return -1;
}

static int naive_encode(const AdTokenizer *t, const unsigned char *text, size_t len, int *tokens) {
    int n = 0;
    char buf[64];
    if (len == 0) return 0;
    tokens[n++] = naive_lookup(t, " ", 1);
    int blen = 0;
    for (size_t i = 0; i < len; i++) {
        if ((text[i] & 0xC0) != 0x80) blen = 0;
        buf[blen++] = (char)text[i];
        if (i + 1 < len && (text[i + 1] & 0xC0) == 0x80 && blen < 4) continue;
        int id = naive_lookup(t, buf, blen);
        if (id != -1) {
            tokens[n++] = id;
        } else {
            for (int k = 0; k < blen; k++) tokens[n++] = (unsigned char)buf[k] + 3;
        }
        blen = 0;
    }
    for (;;) {
        float best_score = -1e10f;
        int best_id = -1, best_idx = -1;
        for (int i = 0; i < n - 1; i++) {
            int la = t->piece_len[tokens[i]], lb = t->piece_len[tokens[i + 1]];
            memcpy(buf, t->pieces[tokens[i]], (size_t)la);
            memcpy(buf + la, t->pieces[tokens[i + 1]], (size_t)lb);
            int id = naive_lookup(t, buf, la + lb);
            if (id != -1 && t->scores[id] > best_score) {
                best_score = t->scores[id];
                best_id = id;
                best_idx = i;
            }
        }
        if (best_idx == -1) break;
        tokens[best_idx] = best_id;
        for (int i = best_idx + 1; i < n - 1; i++) tokens[i] = tokens[i + 1];
        n--;
    }
    return n;
}

START_TEST(test_spm_tok512_matches_naive) {
    AdTokenizer t;
    if (!load_tok512(&t)) return;
    AdRng rng;
    ad_rng_init(&rng, 1234, 99, 0);
    for (int iter = 0; iter < 150; iter++) {
        unsigned char text[64];
        size_t len = 0;
        size_t target = 1 + ad_rng_below(&rng, 40);
        while (len < target) {
            uint32_t r = ad_rng_below(&rng, 10);
            if (r < 7) { /* a random non-byte piece of the vocabulary */
                int id = 259 + (int)ad_rng_below(&rng, 512 - 259);
                if (len + (size_t)t.piece_len[id] > sizeof text) break;
                memcpy(text + len, t.pieces[id], (size_t)t.piece_len[id]);
                len += (size_t)t.piece_len[id];
            } else if (r < 8) {
                text[len++] = '\n';
            } else {
                text[len++] = (unsigned char)ad_rng_below(&rng, 256);
            }
        }
        int want[128], got[128], n_got;
        int n_want = naive_encode(&t, text, len, want);
        ck_assert_int_eq(ad_tokenizer_encode(&t, (const char *)text, len, got, 128, &n_got), AD_OK);
        ck_assert_msg(n_got == n_want, "iteration %d: %d tokens, naive %d", iter, n_got, n_want);
        for (int i = 0; i < n_got; i++)
            ck_assert_msg(got[i] == want[i], "iteration %d token %d: %d vs naive %d", iter, i,
                          got[i], want[i]);
    }
    ad_tokenizer_free(&t);
}
END_TEST

/* ---- the llama2.c file reader's errors ---- */

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static unsigned char buf[1 << 16];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static const char *write_file(const char *name, const void *data, size_t n) {
    const char *path = ad_test_path(ad_test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

START_TEST(test_llama2c_file_errors) {
    /* A small file written here: max_token_length 6, then 3 tokens. */
    unsigned char file[64];
    size_t n = 0;
    int32_t v = 6;
    memcpy(file + n, &v, 4), n += 4;
    const char *pieces[] = {"<unk>", "\n<s>\n", "abc"};
    size_t offsets[3];
    for (int i = 0; i < 3; i++) {
        float s = -(float)i;
        int32_t len = (int32_t)strlen(pieces[i]);
        memcpy(file + n, &s, 4), n += 4;
        offsets[i] = n;
        memcpy(file + n, &len, 4), n += 4;
        memcpy(file + n, pieces[i], (size_t)len), n += (size_t)len;
    }
    AdTokenizer t;
    const char *good = write_file("good.bin", file, n);
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, good, 3), AD_OK);
    ck_assert_str_eq(t.pieces[2], "abc");
    ck_assert(t.scores[2] == -2.0f);
    ck_assert_int_eq(t.eos_id, 2);
    ad_tokenizer_free(&t);

    /* truncated inside the last piece */
    const char *trunc = write_file("trunc.bin", file, n - 1);
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, trunc, 3), AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), trunc));
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "token 2"));
    ck_assert_ptr_null(t.pieces);
    /* truncated in the header */
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, write_file("hdr.bin", file, 2), 3),
                     AD_ERR_FORMAT);
    /* more tokens asked for than the file holds */
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, good, 4), AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), good));
    /* fewer tokens asked for than the file holds */
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, good, 2), AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "vocab_size 2"));

    /* absurd length field in token 1 */
    unsigned char bad[64];
    memcpy(bad, file, n);
    v = 1 << 30;
    memcpy(bad + offsets[1], &v, 4);
    const char *absurd = write_file("absurd.bin", bad, n);
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, absurd, 3), AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), absurd));
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "token 1"));
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "1073741824"));
    /* negative length */
    v = -3;
    memcpy(bad + offsets[1], &v, 4);
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, write_file("neg.bin", bad, n), 3),
                     AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "token 1"));
    /* a piece longer than max_token_length */
    memcpy(bad, file, n);
    v = 2;
    memcpy(bad, &v, 4);
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, write_file("long.bin", bad, n), 3),
                     AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "token 0"));
    /* absurd max_token_length */
    v = 0x7fffffff;
    memcpy(bad, &v, 4);
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, write_file("maxlen.bin", bad, n), 3),
                     AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "max_token_length"));
    /* missing file, bad vocab_size */
    const char *missing = ad_test_path(ad_test_tmpdir(), "missing.bin");
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, missing, 3), AD_ERR_IO);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), missing));
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, good, 0), AD_ERR_ARG);
}
END_TEST

START_TEST(test_llama2c_truncated_real_file) {
    const char *dir = ad_test_models_dir();
    if (!dir) {
        printf("skipped: no shared model directory (set AD_SHARED_MODELS)\n");
        return;
    }
    size_t n;
    unsigned char *data = read_all(ad_test_path(dir, "tok512.bin"), &n);
    ck_assert_uint_eq(n, 6227);
    AdTokenizer t;
    const char *cut = write_file("tok512_cut.bin", data, n - 100);
    ck_assert_int_eq(ad_tokenizer_load_llama2c(&t, cut, 512), AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), cut));
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "token"));
    ck_assert_ptr_null(t.pieces);
}
END_TEST

static Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_byte_round_trip);
    tcase_add_test(tc, test_byte_decode_specials_and_truncation);
    tcase_add_test(tc, test_char_vocab_and_round_trip);
    tcase_add_test(tc, test_char_missing_and_invalid);
    tcase_add_test(tc, test_from_pieces_rebuild);
    tcase_add_test(tc, test_from_pieces_rejects);
    tcase_add_test(tc, test_kind_names_and_gpt2);
    tcase_add_test(tc, test_spm_tiny_by_hand);
    tcase_add_test(tc, test_spm_tiny_ties_go_left);
    tcase_add_test(tc, test_spm_tok512_ids);
    tcase_add_test(tc, test_spm_tok512_round_trip);
    tcase_add_test(tc, test_spm_tok512_matches_naive);
    tcase_add_test(tc, test_llama2c_file_errors);
    tcase_add_test(tc, test_llama2c_truncated_real_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return ad_test_run(tokenizer_suite()); }
