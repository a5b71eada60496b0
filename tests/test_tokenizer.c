/* test_tokenizer.c: byte and char vocabularies against hand-derived ids, SPM against ids
 * computed by an independent script and by a naive transcription of llama2.c's encode(),
 * GPT-2 BPE on a vocab.json + merges.txt written here against hand-derived ids and a
 * transcription of encoder.py's bpe(), rebuilding from pieces, and the llama2.c and
 * Hugging Face file readers' errors. */
#include "autodidact/rng.h"
#include "autodidact/data.h"
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
    if (t->merges) {
        ck_assert_ptr_null(r.merges);
        ck_assert_int_eq(ad_tokenizer_set_merges(&r, t->n_merges, t->merges), AD_OK);
        ck_assert_int_eq(r.n_merges, t->n_merges);
        ck_assert(memcmp(r.merges, t->merges, 2 * (size_t)t->n_merges * sizeof(int)) == 0);
    }
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

START_TEST(test_kind_names_and_gpt2_decode_only) {
    for (int k = AD_TOK_BYTE; k <= AD_TOK_GPT2; k++)
        ck_assert_int_eq(ad_tok_kind_parse(ad_tok_kind_name((AdTokKind)k)), k);
    ck_assert_str_eq(ad_tok_kind_name(AD_TOK_SPM), "spm");
    ck_assert_int_eq(ad_tok_kind_parse("wordpiece"), -1);
    /* raw pieces, as llm.c's tokenizer files hold them: decoded as stored, no encoding */
    const char *pieces[] = {"<|endoftext|>", "a", " the", "\n", "\xC4\xA0x"};
    const int lens[] = {13, 1, 4, 1, 3};
    AdTokenizer t;
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(&t, AD_TOK_GPT2, 5, pieces, lens, NULL, -1, 0,
                                                   -1, -1),
                     AD_OK);
    ck_assert_ptr_null(t.merges);
    int ids[4] = {1, 2, 0, 3}, n;
    char out[32];
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, 4, out, sizeof out), 6);
    ck_assert_str_eq(out, "a the\n");
    ids[0] = 4;
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, 1, out, sizeof out), 3);
    ck_assert_str_eq(out, "\xC4\xA0x");
    ck_assert_int_eq(ad_tokenizer_encode(&t, "ab", 2, ids, 4, &n), AD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "can only decode"));
    /* no merges without a byte-level vocabulary; zero merges are fine, still decode-only */
    const int pair[2] = {1, 1};
    ck_assert_int_eq(ad_tokenizer_set_merges(&t, 1, pair), AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "byte-level"));
    ck_assert_ptr_null(t.merges);
    ck_assert_int_eq(ad_tokenizer_set_merges(&t, 0, NULL), AD_OK);
    ck_assert_int_eq(ad_tokenizer_encode(&t, "ab", 2, ids, 4, &n), AD_ERR_ARG);
    ad_tokenizer_free(&t);
    /* merges belong to GPT-2 only */
    ck_assert_int_eq(ad_tokenizer_init_byte(&t), AD_OK);
    ck_assert_int_eq(ad_tokenizer_set_merges(&t, 0, NULL), AD_ERR_ARG);
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

/* An answer decoded from generated ids keeps the leading space of its first piece and
 * follows a prompt: encoded as a continuation (no dummy " ") it gives back those ids, while
 * a plain encode would prepend another space. A vocabulary without <pad> (llama2.c's)
 * pads training rows with <eos>, and task data accepts it. */
START_TEST(test_spm_continuation_and_no_pad) {
    AdTokenizer t;
    tiny_spm(&t);
    const int gen[] = {TINY_SAB, TINY_SA};
    char text[32];
    ck_assert_uint_eq(ad_tokenizer_decode(&t, gen, 2, text, sizeof text), 5);
    ck_assert_str_eq(text, " ab a");
    int ids[32], n = 0;
    ck_assert_int_eq(ad_tokenizer_encode_continuation(&t, text, 5, ids, 32, &n), AD_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ids[0], TINY_SAB);
    ck_assert_int_eq(ids[1], TINY_SA);
    ck_assert_int_eq(ad_tokenizer_encode(&t, text, 5, ids, 32, &n), AD_OK);
    ck_assert_msg(n != 2 || ids[0] != TINY_SAB, "plain encode should add the dummy prefix");
    /* "ab" continued: no space piece at all */
    ck_assert_int_eq(ad_tokenizer_encode_continuation(&t, "ab", 2, ids, 32, &n), AD_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], TINY_AB);
    /* a training row: <bos> " ab" | " a" <eos>, then <eos> as padding, masked */
    ck_assert_int_eq(t.pad_id, -1);
    ck_assert_int_eq(ad_data_pad_id(&t), 2);
    int tok[8], tgt[8], np = 0;
    ck_assert_int_eq(ad_data_encode_example(&t, "ab", " a", 8, tok, tgt, &np), AD_OK);
    ck_assert_int_eq(np, 2);
    const int want_tok[8] = {1, TINY_SAB, TINY_SA, 2, 2, 2, 2, 2};
    const int want_tgt[8] = {-1, TINY_SA, 2, -1, -1, -1, -1, -1};
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(tok[i] == want_tok[i], "token %d: %d, expected %d", i, tok[i], want_tok[i]);
        ck_assert_msg(tgt[i] == want_tgt[i], "target %d: %d, expected %d", i, tgt[i], want_tgt[i]);
    }
    AdData d;
    ck_assert_msg(ad_data_init_task(&d, &t, AD_TASK_COPY, 1, 3, 16) == AD_OK, "%s", ad_errmsg());
    ad_data_free(&d);
    /* a pool example cut off before <eos> trains without the <eos> target */
    for (int cut = 0; cut <= 1; cut++) {
        ck_assert_int_eq(ad_data_init_pool(&d, &t, 8, 0.0, AD_TASK_COPY, 1, 1), AD_OK);
        ck_assert_int_eq(ad_data_pool_add_cut(&d, "ab", " a", 1, cut), AD_OK);
        AdRng rng;
        ad_rng_init(&rng, 1, 2, 3);
        ck_assert_int_eq(ad_data_batch(&d, &rng, 0, tok, tgt, 1), AD_OK);
        ck_assert_int_eq(tgt[1], TINY_SA);
        ck_assert_int_eq(tgt[2], cut ? -1 : 2);
        ad_data_free(&d);
    }
    ad_tokenizer_free(&t);
    /* other kinds encode a continuation as plain text */
    ck_assert_int_eq(ad_tokenizer_init_byte(&t), AD_OK);
    int a[8], b[8], na = 0, nb = 0;
    ck_assert_int_eq(ad_tokenizer_encode(&t, " x", 2, a, 8, &na), AD_OK);
    ck_assert_int_eq(ad_tokenizer_encode_continuation(&t, " x", 2, b, 8, &nb), AD_OK);
    ck_assert_int_eq(na, nb);
    ck_assert(memcmp(a, b, sizeof(int) * (size_t)na) == 0);
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

/* ---- GPT-2 byte-level BPE on files written here ---- */

/* OpenAI's bytes_to_unicode(), transcribed: bs lists the printable bytes, then the others
 * in byte order; cs[i] is the character standing for byte bs[i]. The test vocabulary
 * gives id i to cs[i], as GPT-2's own vocab.json does. */
static void b2u_table(int bs[256], unsigned cs[256]) {
    int n = 0;
    for (int b = '!'; b <= '~'; b++) bs[n] = b, cs[n++] = (unsigned)b;
    for (int b = 0xA1; b <= 0xAC; b++) bs[n] = b, cs[n++] = (unsigned)b;
    for (int b = 0xAE; b <= 0xFF; b++) bs[n] = b, cs[n++] = (unsigned)b;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = 0;
        for (int k = 0; k < n && !printable; k++) printable = bs[k] == b;
        if (!printable) bs[n] = b, cs[n++] = 256u + (unsigned)extra++;
    }
    ck_assert_int_eq(n, 256);
}

/* UTF-8 of a code point below U+0800, NUL-terminated. */
static void utf8_small(unsigned cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = '\0';
    }
}

/* Ġ = U+0120 (space), Ċ = U+010A (newline), Ã© = U+00C3 U+00A9 (the bytes of "é") */
#define G "\xC4\xA0"
#define C "\xC4\x8A"
static const char *const GPT2_MERGES[] = {
    "l l",     G " " G,  "e l",   "h e",   "he ll",  "hell o",   G " hello", "d o",  "do n",
    "' t",     "' r",    "'r e",  "2 0",   "2 4",    "20 24",    "! !",      C " " C,
    "\xC3\x83 \xC2\xA9", "c a",   "ca f",  G " caf", G " w",     "o r",      G "w or", G " 2",
};
enum { GPT2_NM = sizeof GPT2_MERGES / sizeof GPT2_MERGES[0], GPT2_EOT = 256 + GPT2_NM,
       GPT2_V = GPT2_EOT + 1 };

/* Piece of id i of the test vocabulary (bytes, then merge results, then the special). */
static void gpt2_test_piece(int i, char *out) {
    if (i < 256) {
        int bs[256];
        unsigned cs[256];
        b2u_table(bs, cs);
        utf8_small(cs[i], out);
    } else if (i < GPT2_EOT) {
        const char *m = GPT2_MERGES[i - 256], *sp = strchr(m, ' ');
        memcpy(out, m, (size_t)(sp - m));
        strcpy(out + (sp - m), sp + 1);
    } else {
        strcpy(out, "<|endoftext|>");
    }
}

/* Writes the test vocabulary as vocab.json (entries in reverse id order, so that ids and
 * not positions count) and the merges as merges.txt; returns the two paths. */
static void write_gpt2_files(const char *vocab_name, const char *merges_name, const char **vocab,
                             const char **merges) {
    *vocab = ad_test_path(ad_test_tmpdir(), vocab_name);
    FILE *f = fopen(*vocab, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{", f);
    for (int i = GPT2_V - 1; i >= 0; i--) {
        char p[64];
        gpt2_test_piece(i, p);
        fputs("\"", f);
        for (const char *c = p; *c; c++) {
            if (*c == '"' || *c == '\\') fputc('\\', f);
            fputc(*c, f);
        }
        fprintf(f, "\": %d%s\n", i, i ? "," : "");
    }
    fputs("}\n", f);
    fclose(f);
    *merges = ad_test_path(ad_test_tmpdir(), merges_name);
    f = fopen(*merges, "w");
    ck_assert_ptr_nonnull(f);
    fputs("#version: 0.2\n", f);
    for (int r = 0; r < GPT2_NM; r++) fprintf(f, "%s\n", GPT2_MERGES[r]);
    fclose(f);
}

static void load_gpt2_test(AdTokenizer *t) {
    const char *vocab, *merges;
    write_gpt2_files("vocab.json", "merges.txt", &vocab, &merges);
    AdStatus st = ad_tokenizer_load_gpt2(t, vocab, merges);
    ck_assert_msg(st == AD_OK, "%s", ad_errmsg());
}

/* Ids worked out by hand from the tables above: bytes 0x21-0x7E are ids 0-93, 0xA1-0xAC
 * 94-105, 0xAE-0xFF 106-187, 0x00-0x20 188-220, 0x7F-0xA0 221-254, 0xAD 255 (so 'a' 64,
 * 'e' 68, 'l' 75, ' ' 220, '\n' 198); merge r makes id 256 + r. The valid UTF-8 ones
 * agree with OpenAI's encoder.py (Python, `regex` module) run on the same two files. */
static const struct {
    const char *text;
    size_t len;
    int n;
    int ids[16];
} GPT2_CASES[] = {
    /* "l l" (0) first, then "h e", "he ll", "hell o"; " world": Ġw, or, Ġwor */
    {"hello world", 11, 4, {261, 279, 75, 67}},
    {" hello", 6, 1, {262}},
    {"Hello", 5, 4, {39, 68, 256, 78}},
    /* lowest rank first, not leftmost: "e l" (2) beats "h e" (3) */
    {"hel", 3, 2, {71, 258}},
    /* contractions split off */
    {"don't", 5, 2, {264, 265}},
    {"they're", 7, 4, {83, 259, 88, 267}},
    {"I'M", 3, 3, {40, 6, 44}}, /* only lower case contractions */
    /* digits: "2 0" and "2 4" before "20 24"; "Ġ 2" (24) then no longer applies */
    {" 2024", 5, 2, {220, 270}},
    {"x2024", 5, 2, {87, 270}},
    {"12345", 5, 5, {16, 17, 18, 19, 20}},
    /* punctuation runs; "! !" merges left to right without overlap */
    {"a!!!b", 5, 4, {64, 271, 0, 65}},
    {"!!!!", 4, 2, {271, 271}},
    /* white space: a run before a word leaves its last space to the word */
    {"x   y", 5, 4, {87, 257, 220, 88}},
    {"hello  ", 7, 2, {261, 257}},
    {"  hello", 7, 2, {220, 262}},
    {"a\n\nb", 4, 4, {64, 198, 198, 65}},
    {"a\n\n", 3, 2, {64, 272}},
    {"\tx", 2, 2, {197, 87}},
    /* U+00A0 is white space, but only ' ' joins the next word */
    {"a\xC2\xA0" "b", 4, 4, {64, 126, 254, 65}},
    /* multi-byte UTF-8: é is a letter, € (E2 82 AC, in no merge) is not */
    {" caf\xC3\xA9 \xE2\x82\xAC" "5", 11, 7, {276, 273, 220, 158, 224, 105, 20}},
    /* U+2460 (E2 91 A0) is a number, so "'t" splits off; U+2014 (E2 80 94) is
     * punctuation, so the apostrophe joins it and "'t" does not form */
    {"\xE2\x91\xA0't", 5, 4, {158, 239, 254, 265}},
    {"\xE2\x80\x94't", 5, 5, {158, 222, 242, 6, 83}},
    /* NUL and a byte that is not UTF-8: one punctuation pre-token */
    {"\x00\xFF", 2, 2, {188, 187}},
    /* special tokens in text are plain text */
    {"<|endoftext|>", 13, 12, {27, 91, 68, 77, 263, 69, 83, 68, 87, 83, 91, 29}},
    {"", 0, 0, {0}},
};

START_TEST(test_gpt2_by_hand) {
    AdTokenizer t;
    load_gpt2_test(&t);
    ck_assert_int_eq(t.kind, AD_TOK_GPT2);
    ck_assert_int_eq(t.vocab_size, GPT2_V);
    ck_assert_int_eq(t.eos_id, GPT2_EOT);
    ck_assert_int_eq(t.bos_id, GPT2_EOT);
    ck_assert_int_eq(t.pad_id, -1);
    ck_assert_int_eq(t.sep_id, -1);
    ck_assert_int_eq(t.n_merges, GPT2_NM);
    ck_assert_str_eq(t.pieces[220], G);
    ck_assert_str_eq(t.pieces[64], "a");
    ck_assert_str_eq(t.pieces[262], G "hello");
    ck_assert_int_eq(t.merges[2 * 6], 220);     /* "Ġ hello" */
    ck_assert_int_eq(t.merges[2 * 6 + 1], 261);
    for (size_t c = 0; c < sizeof GPT2_CASES / sizeof GPT2_CASES[0]; c++) {
        check_ids(&t, GPT2_CASES[c].text, GPT2_CASES[c].len, GPT2_CASES[c].ids, GPT2_CASES[c].n);
        int ids[64], n;
        ck_assert_int_eq(ad_tokenizer_encode(&t, GPT2_CASES[c].text, GPT2_CASES[c].len, ids, 64,
                                             &n), AD_OK);
        char out[64];
        ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, n, out, sizeof out), GPT2_CASES[c].len);
        ck_assert(memcmp(out, GPT2_CASES[c].text, GPT2_CASES[c].len) == 0);
    }
    /* the special token decodes to nothing, the others to raw bytes */
    const int ids[] = {GPT2_EOT, 262, GPT2_EOT, 273, 198, 188};
    char out[32];
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, 6, out, sizeof out), 10);
    ck_assert(memcmp(out, " hello\xC3\xA9\n\0", 10) == 0);
    /* too little room */
    int few[3], n;
    ck_assert_int_eq(ad_tokenizer_encode(&t, "hello world", 11, few, 3, &n), AD_ERR_ARG);
    const char *mixed = "don't stop  2024 caf\xC3\xA9!!\n\n";
    check_rebuild(&t, mixed, strlen(mixed));
    ad_tokenizer_free(&t);
}
END_TEST

/* encoder.py's bpe(), transcribed with strings: the word is a list of symbols; while a
 * pair of adjacent symbols is in the merge list, the one of lowest rank is merged at every
 * occurrence, left to right. pieces[i] is piece i of the test vocabulary, byte_piece[b]
 * the id of byte b's character. Returns the symbols' ids. */
static int naive_gpt2_bpe(const char pieces[][64], const int *byte_piece, const char *word,
                          int *ids) {
    char sym[64][64];
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)word; *p; p++)
        strcpy(sym[n++], pieces[byte_piece[*p]]);
    for (;;) {
        int best = -1;
        for (int i = 0; i + 1 < n; i++) {
            char pair[160];
            size_t la = strlen(sym[i]), lb = strlen(sym[i + 1]);
            memcpy(pair, sym[i], la);
            pair[la] = ' ';
            memcpy(pair + la + 1, sym[i + 1], lb + 1);
            for (int r = 0; r < GPT2_NM; r++)
                if (strcmp(pair, GPT2_MERGES[r]) == 0 && (best < 0 || r < best)) best = r;
        }
        if (best < 0) break;
        const char *m = GPT2_MERGES[best], *sp = strchr(m, ' ');
        char first[64], second[64];
        memcpy(first, m, (size_t)(sp - m));
        first[sp - m] = '\0';
        strcpy(second, sp + 1);
        int j = 0;
        for (int i = 0; i < n;) {
            if (i + 1 < n && strcmp(sym[i], first) == 0 && strcmp(sym[i + 1], second) == 0) {
                size_t lf = strlen(first), ls = strlen(second);
                ck_assert_uint_lt(lf + ls, sizeof sym[0]);
                memcpy(sym[j], first, lf);
                memcpy(sym[j] + lf, second, ls + 1);
                j++;
                i += 2;
            } else {
                if (j != i) memmove(sym[j], sym[i], strlen(sym[i]) + 1);
                j++;
                i++;
            }
        }
        n = j;
    }
    for (int i = 0; i < n; i++) {
        ids[i] = -1;
        for (int id = 0; id < GPT2_EOT && ids[i] < 0; id++)
            if (strcmp(pieces[id], sym[i]) == 0) ids[i] = id;
        ck_assert_int_ge(ids[i], 0);
    }
    return n;
}

START_TEST(test_gpt2_matches_naive_bpe) {
    /* one pre-token each: letters from the merges, maybe after one space */
    AdTokenizer t;
    load_gpt2_test(&t);
    static char pieces[GPT2_V][64];
    int byte_piece[256], bs[256];
    unsigned cs[256];
    b2u_table(bs, cs);
    for (int i = 0; i < GPT2_V; i++) gpt2_test_piece(i, pieces[i]);
    for (int i = 0; i < 256; i++) byte_piece[bs[i]] = i;
    AdRng rng;
    ad_rng_init(&rng, 77, 5, 0);
    const char letters[] = "helodncafwr";
    for (int iter = 0; iter < 400; iter++) {
        char word[40];
        int len = 0;
        if (ad_rng_below(&rng, 2)) word[len++] = ' ';
        int target = len + 1 + (int)ad_rng_below(&rng, 30);
        while (len < target) {
            if (ad_rng_below(&rng, 3) == 0) { /* a whole merge result, to make merges likely */
                const char *p = pieces[256 + (int)ad_rng_below(&rng, GPT2_NM)];
                int ok = 1;
                for (const char *c = p; *c; c++) ok &= strchr(letters, *c) != NULL;
                if (!ok || len + (int)strlen(p) > 38) continue;
                memcpy(word + len, p, strlen(p));
                len += (int)strlen(p);
            } else {
                word[len++] = letters[ad_rng_below(&rng, sizeof letters - 1)];
            }
        }
        word[len] = '\0';
        int want[64], got[64], n_got;
        int n_want = naive_gpt2_bpe((const char(*)[64])pieces, byte_piece, word, want);
        ck_assert_int_eq(ad_tokenizer_encode(&t, word, (size_t)len, got, 64, &n_got), AD_OK);
        ck_assert_msg(n_got == n_want, "\"%s\": %d tokens, naive %d", word, n_got, n_want);
        for (int i = 0; i < n_got; i++)
            ck_assert_msg(got[i] == want[i], "\"%s\" token %d: %d vs naive %d", word, i, got[i],
                          want[i]);
    }
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_gpt2_round_trip_random_bytes) {
    AdTokenizer t;
    load_gpt2_test(&t);
    AdRng rng;
    ad_rng_init(&rng, 4321, 6, 0);
    const char *bits[] = {" ", "  ", "\n", "'", "'s", "'re", "hello", "2", "0", "!", "\xC3\xA9",
                          "\xE2\x82\xAC", "\xC2\xA0", "\t", "l", "don", "\xF0\x9F\x98\x80"};
    for (int iter = 0; iter < 1000; iter++) {
        unsigned char text[80];
        size_t len = 0, target = ad_rng_below(&rng, 64);
        while (len < target) {
            if (ad_rng_below(&rng, 2)) {
                text[len++] = (unsigned char)ad_rng_below(&rng, 256);
            } else {
                const char *b = bits[ad_rng_below(&rng, sizeof bits / sizeof bits[0])];
                memcpy(text + len, b, strlen(b));
                len += strlen(b);
            }
        }
        int ids[128], n;
        ck_assert_int_eq(ad_tokenizer_encode(&t, (const char *)text, len, ids, 128, &n), AD_OK);
        ck_assert_int_le(n, (int)len);
        for (int i = 0; i < n; i++) ck_assert(ids[i] >= 0 && ids[i] < GPT2_EOT);
        char out[128];
        ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, n, out, sizeof out), len);
        ck_assert(memcmp(out, text, len) == 0);
    }
    /* a long pre-token: 20001 'l' pair up left to right into 10000 "ll" and one 'l' */
    size_t big = 20001;
    char *text = malloc(big);
    int *ids = malloc(big * sizeof *ids);
    ck_assert(text && ids);
    memset(text, 'l', big);
    int n;
    ck_assert_int_eq(ad_tokenizer_encode(&t, text, big, ids, (int)big, &n), AD_OK);
    ck_assert_int_eq(n, 10001);
    for (int i = 0; i < 10000; i++) ck_assert_int_eq(ids[i], 256);
    ck_assert_int_eq(ids[10000], 75);
    free(text);
    free(ids);
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_gpt2_from_pieces_and_merges) {
    AdTokenizer t, r;
    load_gpt2_test(&t);
    /* without merges the same pieces decode but do not encode */
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(&r, AD_TOK_GPT2, t.vocab_size,
                                                   (const char *const *)t.pieces, t.piece_len,
                                                   NULL, t.bos_id, t.eos_id, -1, -1), AD_OK);
    int ids[8] = {262, 198}, n;
    char out[16];
    ck_assert_uint_eq(ad_tokenizer_decode(&r, ids, 2, out, sizeof out), 7);
    ck_assert_str_eq(out, " hello\n");
    ck_assert_int_eq(ad_tokenizer_encode(&r, "hi", 2, ids, 8, &n), AD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "no merge table"));
    /* bad merge tables are refused and leave the tokenizer as it was */
    const struct { int pair[4]; int n; AdStatus st; const char *msg; } bad[] = {
        {{64, 65}, 1, AD_ERR_FORMAT, "not in the vocabulary"},      /* "ab" */
        {{75, 75, 75, 75}, 2, AD_ERR_FORMAT, "repeats merge 0"},
        {{75, GPT2_EOT}, 1, AD_ERR_FORMAT, "special"},
        {{75, GPT2_V}, 1, AD_ERR_ARG, "outside"},
        {{-1, 75}, 1, AD_ERR_ARG, "outside"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(ad_tokenizer_set_merges(&r, bad[i].n, bad[i].pair), bad[i].st);
        ck_assert_msg(strstr(ad_errmsg(), bad[i].msg), "case %zu: %s", i, ad_errmsg());
        ck_assert_ptr_null(r.merges);
    }
    ck_assert_int_eq(ad_tokenizer_set_merges(&r, -1, NULL), AD_ERR_ARG);
    /* zero merges: one token per byte */
    ck_assert_int_eq(ad_tokenizer_set_merges(&r, 0, NULL), AD_OK);
    check_ids(&r, "hel lo", 6, (const int[]){71, 68, 75, 220, 75, 78}, 6);
    /* the loaded table makes the copy encode as the original */
    ck_assert_int_eq(ad_tokenizer_set_merges(&r, t.n_merges, t.merges), AD_OK);
    check_ids(&r, "hello world", 11, GPT2_CASES[0].ids, GPT2_CASES[0].n);
    ck_assert_int_eq(ad_tokenizer_set_merges(&r, 1, bad[0].pair), AD_ERR_FORMAT);
    ck_assert_int_eq(r.n_merges, t.n_merges); /* unchanged */
    check_ids(&r, "hello world", 11, GPT2_CASES[0].ids, GPT2_CASES[0].n);
    ad_tokenizer_free(&r);
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_gpt2_merge_rounds) {
    /* An out-of-order merge list: rank 0 joins "ab" and "a", though "ab" is made only by
     * rank 1. encoder.py merges every "a b" of a round before it looks at the pairs the
     * round made, so "abab" is "ab","ab" (encoder.py gives ids 256 256), not "aba","b". */
    char bytes[256][4];
    const char *pieces[258];
    int lens[258];
    for (int i = 0; i < 256; i++) {
        gpt2_test_piece(i, bytes[i]);
        pieces[i] = bytes[i];
    }
    pieces[256] = "ab";
    pieces[257] = "aba";
    for (int i = 0; i < 258; i++) lens[i] = (int)strlen(pieces[i]);
    AdTokenizer t;
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(&t, AD_TOK_GPT2, 258, pieces, lens, NULL, -1,
                                                   -1, -1, -1), AD_OK);
    const int merges[4] = {256, 64, 64, 65}; /* "ab a", "a b" */
    ck_assert_int_eq(ad_tokenizer_set_merges(&t, 2, merges), AD_OK);
    check_ids(&t, "abab", 4, (const int[]){256, 256}, 2);
    check_ids(&t, "ababab", 6, (const int[]){256, 256, 256}, 3);
    check_ids(&t, "aba", 3, (const int[]){257}, 1);
    check_ids(&t, "aab", 3, (const int[]){64, 256}, 2);
    ad_tokenizer_free(&t);
}
END_TEST

/* Writes text to a file of the scratch directory; returns its path. */
static const char *write_text(const char *name, const char *text) {
    return write_file(name, text, strlen(text));
}

/* Builds a vocab.json text: the 256 byte characters (ids 0..255), minus `skip_byte_id`
 * unless negative, then `extra` (a fragment starting with ", " or empty) before "}". */
static char *vocab_text(int skip_byte_id, const char *extra) {
    static char buf[1 << 14];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
    int first = 1;
    for (int i = 0; i < 256; i++) {
        if (i == skip_byte_id) continue;
        char p[8];
        gpt2_test_piece(i, p);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"%s%s\": %d", first ? "" : ", ",
                              (p[0] == '"' || p[0] == '\\') ? "\\" : "", p, i);
        first = 0;
    }
    snprintf(buf + n, sizeof buf - n, "%s}", extra);
    return buf;
}

/* Loads expecting failure with status want and a message naming path and `needle`. */
static void expect_gpt2_fail(const char *vocab, const char *merges, AdStatus want,
                             const char *path, const char *needle) {
    AdTokenizer t;
    memset(&t, 0x5a, sizeof t);
    AdStatus st = ad_tokenizer_load_gpt2(&t, vocab, merges);
    ck_assert_msg(st == want, "status %d, expected %d (%s)", (int)st, (int)want, ad_errmsg());
    ck_assert_msg(strstr(ad_errmsg(), path), "\"%s\" does not name %s", ad_errmsg(), path);
    ck_assert_msg(strstr(ad_errmsg(), needle), "\"%s\" does not say \"%s\"", ad_errmsg(), needle);
    ck_assert_ptr_null(t.pieces);
    ck_assert_ptr_null(t.merges);
    ck_assert_ptr_null(t.impl);
}

START_TEST(test_gpt2_file_errors) {
    /* paths kept across calls are copied: ad_test_path reuses its buffers */
    const char *path_v, *path_m;
    char good_v[4096], good_m[4096], vocab_ll[4096];
    write_gpt2_files("good_vocab.json", "good_merges.txt", &path_v, &path_m);
    snprintf(good_v, sizeof good_v, "%s", path_v);
    snprintf(good_m, sizeof good_m, "%s", path_m);
    snprintf(vocab_ll, sizeof vocab_ll, "%s",
             write_text("ll.json", vocab_text(-1, ", \"ll\": 256, \"" G G "\": 257")));
    /* a merges.txt without the version line, with CRLF line ends and a blank line */
    const char *crlf = write_text("crlf.txt", "l l\r\n\r\n" G " " G "\r\n");
    AdTokenizer t;
    ck_assert_int_eq(ad_tokenizer_load_gpt2(&t, vocab_ll, crlf), AD_OK);
    ck_assert_int_eq(t.n_merges, 2);
    ck_assert_int_eq(t.eos_id, -1);
    check_ids(&t, "lll   x", 7, (const int[]){256, 75, 257, 220, 87}, 5);
    ad_tokenizer_free(&t);
    /* an empty merges.txt: a byte-level tokenizer without merges */
    ck_assert_int_eq(ad_tokenizer_load_gpt2(&t, vocab_ll, write_text("empty.txt", "")), AD_OK);
    ck_assert_int_eq(t.n_merges, 0);
    ck_assert_ptr_nonnull(t.merges);
    check_ids(&t, "ll", 2, (const int[]){75, 75}, 2);
    ad_tokenizer_free(&t);

    /* vocab.json */
    const char *p = write_text("bad.json", "{\"a\": 0,\n \"b\": 1,\n \"c\" 2}");
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "line 3");
    p = write_text("trailing.json", "{\"a\": 0}\n]");
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "line 2, column 1");
    p = write_file("nul.json", "{\"a\": 0}\0{", 10);
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "malformed JSON");
    p = write_text("array.json", "[1, 2]");
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "not a JSON object");
    p = write_text("sparse.json", vocab_text(-1, ", \"ll\": 300"));
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "id 300");
    p = write_text("frac.json", vocab_text(-1, ", \"ll\": 255.5"));
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "\"ll\"");
    p = write_text("str.json", vocab_text(-1, ", \"ll\": \"256\""));
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "not a number");
    p = write_text("dupid.json", vocab_text(-1, ", \"ll\": 7, \"lll\": 256"));
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "share id 7");
    p = write_text("dupkey.json", vocab_text(-1, ", \"a\": 256"));
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "\"a\" appears twice");
    p = write_text("raw.json", vocab_text(-1, ", \"a b\": 256"));
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "byte-to-unicode");
    p = write_text("nospace.json", vocab_text(220, ", \"ll\": 220"));
    expect_gpt2_fail(p, good_m, AD_ERR_FORMAT, p, "byte 0x20");
    p = ad_test_path(ad_test_tmpdir(), "absent.json");
    expect_gpt2_fail(p, good_m, AD_ERR_IO, p, "cannot open");

    /* merges.txt */
    p = write_text("one.txt", "#version: 0.2\nl l\nhello\n");
    expect_gpt2_fail(vocab_ll, p, AD_ERR_FORMAT, p, "line 3");
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "\"hello\""));
    p = write_text("three.txt", "l l " G "\n");
    expect_gpt2_fail(vocab_ll, p, AD_ERR_FORMAT, p, "line 1");
    p = write_text("lead.txt", " l\n");
    expect_gpt2_fail(vocab_ll, p, AD_ERR_FORMAT, p, "two pieces");
    p = write_text("unknown.txt", "l l\nll zz\n");
    expect_gpt2_fail(vocab_ll, p, AD_ERR_FORMAT, p, "line 2: \"zz\" is not a piece");
    p = write_text("nores.txt", "#version: 0.2\nl l\na b\n");
    expect_gpt2_fail(vocab_ll, p, AD_ERR_FORMAT, p, "line 3");
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "not in the vocabulary"));
    p = write_text("twice.txt", "#version: 0.2\nl l\n" G " " G "\nl l\n");
    expect_gpt2_fail(vocab_ll, p, AD_ERR_FORMAT, p, "line 4");
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "repeats"));
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "line 2"));
    p = ad_test_path(ad_test_tmpdir(), "absent.txt");
    expect_gpt2_fail(good_v, p, AD_ERR_IO, p, "cannot open");
}
END_TEST
#undef G
#undef C

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
    tcase_add_test(tc, test_kind_names_and_gpt2_decode_only);
    tcase_add_test(tc, test_spm_tiny_by_hand);
    tcase_add_test(tc, test_spm_tiny_ties_go_left);
    tcase_add_test(tc, test_spm_continuation_and_no_pad);
    tcase_add_test(tc, test_spm_tok512_ids);
    tcase_add_test(tc, test_spm_tok512_round_trip);
    tcase_add_test(tc, test_spm_tok512_matches_naive);
    tcase_add_test(tc, test_llama2c_file_errors);
    tcase_add_test(tc, test_llama2c_truncated_real_file);
    tcase_add_test(tc, test_gpt2_by_hand);
    tcase_add_test(tc, test_gpt2_matches_naive_bpe);
    tcase_add_test(tc, test_gpt2_round_trip_random_bytes);
    tcase_add_test(tc, test_gpt2_from_pieces_and_merges);
    tcase_add_test(tc, test_gpt2_merge_rounds);
    tcase_add_test(tc, test_gpt2_file_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return ad_test_run(tokenizer_suite()); }
