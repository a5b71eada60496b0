/* test_vocab.c: vocabularies as real model files carry them. The pre-tokenizers against
 * splits derived by hand from their regular expressions; added (user-defined) tokens,
 * missing byte pieces, whole-word lookup and decoding on a small byte-level vocabulary
 * built here; llama.cpp's test vectors (../shared/vocab) through the GGUF reader, with
 * decode(encode(s)) == s for each; a GGUF vocabulary kept whole through a checkpoint. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/pretokenize.h"
#include "autodidact/checkpoint.h"
#include "autodidact/importers.h"
#include "autodidact/model.h"
#include "autodidact/tokenizer.h"
#include "testutil.h"

/* ---- pre-tokenizers ---- */

/* Splits text with pre and compares the pieces with want[] (NULL-terminated). */
static void expect_split(AdPreTok pre, const char *text, const char *const *want) {
    size_t len = strlen(text);
    size_t *ends = malloc((2 * len + 1) * sizeof *ends);
    size_t n = ad_pretok_split(pre, (const unsigned char *)text, len, ends, ends + len);
    size_t k = 0;
    for (size_t p = 0, a = 0; p < n; a = ends[p++], k++) {
        ck_assert_msg(want[k] != NULL, "%s: \"%s\": more pieces than expected (piece %zu \"%.*s\")",
                      ad_pretok_name(pre), text, p, (int)(ends[p] - a), text + a);
        ck_assert_msg(ends[p] - a == strlen(want[k]) && !memcmp(text + a, want[k], ends[p] - a),
                      "%s: \"%s\": piece %zu is \"%.*s\", expected \"%s\"", ad_pretok_name(pre),
                      text, p, (int)(ends[p] - a), text + a, want[k]);
    }
    ck_assert_msg(want[k] == NULL, "%s: \"%s\": only %zu pieces", ad_pretok_name(pre), text, k);
    free(ends);
}

#define SPLIT(pre, text, ...) expect_split(pre, text, (const char *const[]){__VA_ARGS__, NULL})

START_TEST(test_pretok_splits_by_hand) {
    const char *s = "Hello world 12345 don't\n\n  x";
    /* llama-bpe: " " before a digit is alone (\s+), digits in threes, \s*[\r\n]+ takes the
     * newlines, then \s+(?!\S) leaves the last space to " x" */
    SPLIT(AD_PRE_LLAMA3, s, "Hello", " world", " ", "123", "45", " don", "'t", "\n\n", " ", " x");
    SPLIT(AD_PRE_QWEN2, s, "Hello", " world", " ", "1", "2", "3", "4", "5", " don", "'t", "\n\n",
          " ", " x");
    /* gpt-2: " ?\p{N}+" keeps the space; \s+(?!\S) takes "\n\n " */
    SPLIT(AD_PRE_GPT2, s, "Hello", " world", " 12345", " don", "'t", "\n\n ", " x");
    SPLIT(AD_PRE_MPT, s, "Hello", " world", " 12345", " don", "'t", "\n\n ", " x");
    /* starcoder: every \p{N} alone first, then gpt-2 inside each stretch */
    SPLIT(AD_PRE_STARCODER, s, "Hello", " world", " ", "1", "2", "3", "4", "5", " don", "'t",
          "\n\n ", " x");
    /* contractions: case-insensitive for llama-bpe only */
    SPLIT(AD_PRE_LLAMA3, "I'M", "I", "'M");
    SPLIT(AD_PRE_GPT2, "I'M", "I", "'", "M");
    /* Unicode classes: U+0663 U+0664 (Arabic-Indic digits, Nd) are numbers; U+00BD (No) too;
     * U+00A0 is white space; U+0301 (a mark) is neither letter nor number */
    SPLIT(AD_PRE_STARCODER, "ab\xd9\xa3\xd9\xa4 cd", "ab", "\xd9\xa3", "\xd9\xa4", " cd");
    SPLIT(AD_PRE_GPT2, "4 \xc2\xbd", "4", " \xc2\xbd");
    SPLIT(AD_PRE_GPT2, "a\xc2\xa0\xc2\xa0" "b", "a", "\xc2\xa0", "\xc2\xa0", "b"); /* " ?" is U+0020 only */
    SPLIT(AD_PRE_GPT2, "e\xcc\x81t", "e", "\xcc\x81", "t");
    /* deepseek-coder: \p{P} takes ",.", not the symbols "+="; single digits */
    SPLIT(AD_PRE_DEEPSEEK_CODER, "x+=12,.", "x", "+=", "1", "2", ",.");
    /* deepseek-llm: its letter set, then punctuation, then CJK runs, then \p{N}+ */
    SPLIT(AD_PRE_DEEPSEEK_LLM, "\xe4\xbd\xa0\xe5\xa5\xbdworld 42!\n", "\xe4\xbd\xa0\xe5\xa5\xbd",
          "world", " ", "42", "!", "\n");
    /* falcon: [\p{P}$+<=>^~|`]+ first, then gpt-2, then ASCII digits in threes */
    SPLIT(AD_PRE_FALCON, "a+b 12345", "a", "+", "b", " ", "123", "45");
    /* default: as falcon but without the backquote, and \p{N}+ before the threes */
    SPLIT(AD_PRE_DEFAULT, "a`b 12345", "a", "`", "b", " ", "123", "45");
    /* a byte that is not UTF-8 is a unit in no class ("other") */
    SPLIT(AD_PRE_GPT2, "a\xff\xfe b", "a", "\xff\xfe", " b");
}
END_TEST

START_TEST(test_pretok_names) {
    for (int k = 0; k < AD_PRE_COUNT; k++)
        ck_assert_int_eq(ad_pretok_parse(ad_pretok_name((AdPreTok)k)), k);
    ck_assert_int_eq(ad_pretok_parse("llama3"), AD_PRE_LLAMA3);
    ck_assert_int_eq(ad_pretok_parse("qwen2.5"), AD_PRE_QWEN2);
    ck_assert_int_eq(ad_pretok_parse("command-r-plus"), -1);
    ck_assert_str_eq(ad_pretok_name((AdPreTok)AD_PRE_COUNT), "?");
}
END_TEST

/* ---- NFC ---- */

static void expect_nfc(const char *in, const char *want) {
    unsigned char *out;
    size_t n;
    ck_assert_int_eq(ad_unicode_nfc((const unsigned char *)in, strlen(in), &out, &n), 0);
    ck_assert_msg(n == strlen(want) && !memcmp(out, want, n), "NFC of \"%s\" is \"%.*s\", not "
                  "\"%s\"", in, (int)n, (const char *)out, want);
    free(out);
}

START_TEST(test_nfc_by_hand) {
    expect_nfc("e\xcc\x81", "\xc3\xa9");                        /* e + acute -> é */
    expect_nfc("\xe2\x84\xab", "\xc3\x85");                     /* Angstrom sign -> Å */
    expect_nfc("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"); /* L V T -> 각 */
    /* marks reordered by class (dot below 220 before acute 230), then composed */
    expect_nfc("a\xcc\x81\xcc\xa3", "\xe1\xba\xa1\xcc\x81");
    /* U+0958 is excluded from composition: it stays decomposed */
    expect_nfc("\xe0\xa5\x98", "\xe0\xa4\x95\xe0\xa4\xbc");
    /* a leading mark, bytes that are not UTF-8 and ASCII pass through */
    expect_nfc("\xcc\x81" "a\xff" "b", "\xcc\x81" "a\xff" "b");
    expect_nfc("", "");
}
END_TEST

/* Hex code points "0041 0301" -> UTF-8. */
static size_t cps_to_utf8(const char *field, char *out) {
    size_t n = 0;
    char *end;
    for (const char *p = field; *p;) {
        unsigned long c = strtoul(p, &end, 16);
        if (end == p) break;
        p = end;
        if (c < 0x80) out[n++] = (char)c;
        else if (c < 0x800) {
            out[n++] = (char)(0xC0 | (c >> 6));
            out[n++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[n++] = (char)(0xE0 | (c >> 12));
            out[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (c & 0x3F));
        } else {
            out[n++] = (char)(0xF0 | (c >> 18));
            out[n++] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (c & 0x3F));
        }
    }
    out[n] = '\0';
    return n;
}

/* Unicode's own conformance file: c2 == NFC(c1) == NFC(c2) == NFC(c3), c4 == NFC(c4) ==
 * NFC(c5), on every line. */
START_TEST(test_nfc_conformance) {
    const char *file = "/usr/share/unicode/NormalizationTest.txt.bz2";
    FILE *probe = fopen(file, "rb");
    if (!probe) {
        printf("skipped: %s is absent (Debian package unicode-data)\n", file);
        return;
    }
    fclose(probe);
    FILE *p = popen("bzcat /usr/share/unicode/NormalizationTest.txt.bz2", "r");
    ck_assert_ptr_nonnull(p);
    char line[4096];
    long lines = 0, bad = 0;
    while (fgets(line, sizeof line, p)) {
        if (line[0] == '#' || line[0] == '@' || line[0] == '\n') continue;
        char *f[5];
        char *q = line;
        for (int k = 0; k < 5; k++) {
            f[k] = q;
            q = strchr(q, ';');
            ck_assert_ptr_nonnull(q);
            *q++ = '\0';
        }
        char c[5][256];
        size_t n[5];
        for (int k = 0; k < 5; k++) n[k] = cps_to_utf8(f[k], c[k]);
        const int src[5] = {0, 1, 2, 3, 4}, want[5] = {1, 1, 1, 3, 3};
        for (int k = 0; k < 5; k++) {
            unsigned char *out;
            size_t m;
            ck_assert_int_eq(ad_unicode_nfc((const unsigned char *)c[src[k]], n[src[k]], &out, &m),
                             0);
            if (m != n[want[k]] || memcmp(out, c[want[k]], m)) {
                if (bad++ < 5) fprintf(stderr, "NFC(%s) != %s\n", f[src[k]], f[want[k]]);
            }
            free(out);
        }
        lines++;
    }
    pclose(p);
    printf("NFC conformance: %ld lines, %ld mismatches\n", lines, bad);
    ck_assert_int_gt(lines, 10000);
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* ---- a small byte-level vocabulary ---- */

/* GPT-2's bytes_to_unicode() character for byte b, UTF-8 encoded into out. */
static int byte_char(int b, char *out) {
    int cp;
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
        cp = b;
    } else {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF)))
                n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* Ids 0..255: byte b's character (byte 0x7B '{' has none when drop_brace: its id holds an
 * unused piece instead); 256 "ab", 257 "abc" (merges "a b", "ab c"); 258 "<ctl>", a
 * control piece (also BOS and EOS); 259 "xy z" and 260 "y z", user-defined. */
enum { V_AB = 256, V_ABC, V_CTL, V_USER_LONG, V_USER_SHORT, V_N };

static void small_vocab(AdTokenizer *t, AdPreTok pre, int drop_brace) {
    static char store[V_N][8];
    const char *pieces[V_N];
    int lens[V_N];
    unsigned char types[V_N];
    for (int b = 0; b < 256; b++) {
        lens[b] = byte_char(b, store[b]);
        pieces[b] = store[b];
        types[b] = AD_TT_NORMAL;
    }
    if (drop_brace) { /* byte 0x7B becomes an unused piece "<unused>" */
        pieces['{'] = "<unused>";
        lens['{'] = 8;
        types['{'] = AD_TT_UNUSED;
    }
    const char *extra[] = {"ab", "abc", "<ctl>", "xy z", "y z"};
    const unsigned char extra_types[] = {AD_TT_NORMAL, AD_TT_NORMAL, AD_TT_CONTROL,
                                         AD_TT_USER_DEFINED, AD_TT_USER_DEFINED};
    for (int k = 0; k < 5; k++) {
        pieces[256 + k] = extra[k];
        lens[256 + k] = (int)strlen(extra[k]);
        types[256 + k] = extra_types[k];
    }
    const int merges[] = {'a', 'b', V_AB, 'c'};
    const AdTokSpec spec = {.kind = AD_TOK_GPT2, .vocab_size = V_N, .pieces = pieces,
                            .piece_len = lens, .types = types, .bos_id = V_CTL,
                            .eos_id = V_CTL, .pad_id = -1, .sep_id = -1, .unk_id = -1,
                            .pre = pre, .n_merges = 2, .merges = merges};
    ck_assert_int_eq(ad_tokenizer_init_spec(t, &spec), AD_OK);
}

static void expect_ids(const AdTokenizer *t, const char *text, const int *want, int n_want) {
    int ids[64], n = -1;
    ck_assert_int_eq(ad_tokenizer_encode(t, text, strlen(text), ids, 64, &n), AD_OK);
    ck_assert_int_eq(n, n_want);
    for (int i = 0; i < n; i++) ck_assert_int_eq(ids[i], want[i]);
    char buf[256];
    size_t m = ad_tokenizer_decode(t, ids, n, buf, sizeof buf);
    ck_assert_uint_eq(m, strlen(text));
    ck_assert_str_eq(buf, text);
}

START_TEST(test_user_defined_before_bpe) {
    AdTokenizer t;
    small_vocab(&t, AD_PRE_GPT2, 0);
    /* "abc" merges to one piece; the user-defined "xy z" (longest first) wins over "y z",
     * and is taken from the raw text before pre-tokenizing (it holds a space) */
    expect_ids(&t, "abc", (const int[]){V_ABC}, 1);
    expect_ids(&t, "abxy z", (const int[]){V_AB, V_USER_LONG}, 2);
    expect_ids(&t, "y zxy z", (const int[]){V_USER_SHORT, V_USER_LONG}, 2);
    /* a control piece's text is plain text: "<ctl>" is five byte pieces */
    expect_ids(&t, "<ctl>", (const int[]){'<', 'c', 't', 'l', '>'}, 5);
    /* and decodes to nothing */
    char buf[16];
    int ctl = V_CTL;
    ck_assert_uint_eq(ad_tokenizer_decode(&t, &ctl, 1, buf, sizeof buf), 0);
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_missing_byte_fails_naming_it) {
    AdTokenizer t;
    small_vocab(&t, AD_PRE_GPT2, 1);
    expect_ids(&t, "abc}", (const int[]){V_ABC, '}'}, 2);
    int ids[16], n;
    ck_assert_int_eq(ad_tokenizer_encode(&t, "ab{c", 4, ids, 16, &n), AD_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "byte 0x7B"));
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "at byte 2"));
    /* the unused piece decodes as stored */
    int u = '{';
    char buf[16];
    ck_assert_uint_eq(ad_tokenizer_decode(&t, &u, 1, buf, sizeof buf), 8);
    ck_assert_str_eq(buf, "<unused>");
    ad_tokenizer_free(&t);
}
END_TEST

START_TEST(test_llama3_whole_word_lookup) {
    /* "ac" is not reachable by the merges ("a b", "ab c"), but llama-bpe looks a whole
     * pre-token up first: give the vocabulary a piece "abc" reached both ways, and check
     * with a vocabulary where only the whole-word path can find a piece. */
    static char store[257][4];
    const char *pieces[257];
    int lens[257];
    for (int b = 0; b < 256; b++) {
        lens[b] = byte_char(b, store[b]);
        pieces[b] = store[b];
    }
    pieces[256] = "ac";
    lens[256] = 2;
    const unsigned char *no_types = NULL;
    for (int pre = AD_PRE_GPT2; pre <= AD_PRE_LLAMA3; pre++) {
        AdTokSpec spec = {.kind = AD_TOK_GPT2, .vocab_size = 257, .pieces = pieces,
                          .piece_len = lens, .types = no_types, .bos_id = -1, .eos_id = -1,
                          .pad_id = -1, .sep_id = -1, .unk_id = -1, .pre = (AdPreTok)pre,
                          .n_merges = 0, .merges = (const int[]){0, 0}};
        AdTokenizer t;
        ck_assert_int_eq(ad_tokenizer_init_spec(&t, &spec), AD_OK);
        if (pre == AD_PRE_LLAMA3) expect_ids(&t, "ac", (const int[]){256}, 1);
        else expect_ids(&t, "ac", (const int[]){'a', 'c'}, 2);
        ad_tokenizer_free(&t);
    }
}
END_TEST

/* ---- llama.cpp's vectors ---- */

static const char *vocab_dir(void) {
    const char *d = getenv("AD_SHARED_VOCAB");
    if (d) return d;
    const char *models = getenv("AD_SHARED_MODELS");
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/../vocab", models ? models : "../shared/models");
    return buf;
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)size + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)size, f), (size_t)size);
    b[size] = '\0';
    fclose(f);
    *n = (size_t)size;
    return b;
}

/* Checks one vocabulary: every distinct string of NAME.inp encodes to its line of
 * NAME.out and decodes back (for SPM after a BOS, which drops the dummy prefix). */
static void check_vectors(const char *gguf, int *n_pass, int *n_total) {
    char path[4300];
    AdTokenizer t;
    ck_assert_msg(ad_import_vocab(gguf, &t) == AD_OK, "%s: %s", gguf, ad_errmsg());
    size_t n_inp, n_out;
    snprintf(path, sizeof path, "%s.inp", gguf);
    char *inp = slurp(path, &n_inp);
    snprintf(path, sizeof path, "%s.out", gguf);
    char *out = slurp(path, &n_out);
    const char *sep = "\n__ggml_vocab_test__\n";
    char *text = inp, *line = out;
    char **seen = calloc(1024, sizeof *seen);
    int n_seen = 0;
    while (text) {
        char *end = strstr(text, sep);
        if (end) *end = '\0';
        char *eol = strchr(line, '\n');
        if (eol) *eol = '\0';
        int dup = 0;
        for (int k = 0; k < n_seen; k++) dup |= !strcmp(seen[k], text);
        if (!dup) {
            seen[n_seen++] = text;
            size_t len = strlen(text);
            int *ids = malloc((2 * len + 4) * sizeof *ids), n = 0;
            AdStatus st = ad_tokenizer_encode(&t, text, len, ids + 1, (int)(2 * len + 2), &n);
            int ok = st == AD_OK;
            char *p = line;
            for (int i = 0; ok && i < n; i++) {
                char *q;
                long v = strtol(p, &q, 10);
                ok = q != p && v == ids[1 + i];
                p = q;
            }
            while (ok && *p == ' ') p++;
            ok = ok && *p == '\0';
            if (!ok) fprintf(stderr, "%s: \"%s\" does not encode to [%s]\n", gguf, text, line);
            /* round trip */
            const int *dec = ids + 1;
            int n_dec = n;
            if (t.kind == AD_TOK_SPM && len > 0 && t.bos_id >= 0) {
                ids[0] = t.bos_id;
                dec = ids;
                n_dec = n + 1;
            }
            char *buf = malloc(4 * len + 16);
            size_t m = st == AD_OK ? ad_tokenizer_decode(&t, dec, n_dec, buf, 4 * len + 16) : 0;
            int round = st == AD_OK && m == len && !memcmp(buf, text, len);
            if (!round) fprintf(stderr, "%s: \"%s\" decodes back to \"%s\"\n", gguf, text, buf);
            *n_pass += ok && round;
            (*n_total)++;
            free(buf);
            free(ids);
        }
        text = end ? end + strlen(sep) : NULL;
        line = eol ? eol + 1 : line + strlen(line);
    }
    free(seen);
    free(inp);
    free(out);
    ad_tokenizer_free(&t);
}

START_TEST(test_llama_cpp_vectors) {
    const char *dir = vocab_dir();
    DIR *d = opendir(dir);
    if (!d) {
        printf("skipped: no vocabulary test folder at %s (set AD_SHARED_VOCAB)\n", dir);
        return;
    }
    struct dirent *e;
    int files = 0, pass = 0, total = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 9 || strcmp(e->d_name + n - 9, ".gguf.inp")) continue;
        char gguf[4200];
        snprintf(gguf, sizeof gguf, "%s/%.*s", dir, (int)(n - 4), e->d_name);
        int p = 0, tot = 0;
        check_vectors(gguf, &p, &tot);
        printf("%s: %d/%d\n", e->d_name, p, tot);
        ck_assert_msg(p == tot, "%s: %d of %d vectors pass", gguf, p, tot);
        pass += p;
        total += tot;
        files++;
    }
    closedir(d);
    ck_assert_int_ge(files, 1);
    ck_assert_int_eq(pass, total);
}
END_TEST

/* baichuan's vocabulary has no vectors: every string of another file round-trips. */
START_TEST(test_baichuan_round_trips) {
    char gguf[4200], inp[4200];
    snprintf(gguf, sizeof gguf, "%s/ggml-vocab-baichuan.gguf", vocab_dir());
    snprintf(inp, sizeof inp, "%s/ggml-vocab-llama-spm.gguf.inp", vocab_dir());
    FILE *f = fopen(gguf, "rb");
    if (!f) {
        printf("skipped: %s is absent (set AD_SHARED_VOCAB)\n", gguf);
        return;
    }
    fclose(f);
    AdTokenizer t;
    ck_assert_msg(ad_import_vocab(gguf, &t) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(t.kind, AD_TOK_SPM);
    size_t n;
    char *text = slurp(inp, &n);
    int strings = 0;
    for (char *s = text; s;) {
        char *end = strstr(s, "\n__ggml_vocab_test__\n");
        if (end) *end = '\0';
        size_t len = strlen(s);
        int *ids = malloc((2 * len + 4) * sizeof *ids), k = 0;
        ck_assert_int_eq(ad_tokenizer_encode(&t, s, len, ids + 1, (int)(2 * len + 2), &k), AD_OK);
        ids[0] = t.bos_id;
        char *buf = malloc(4 * len + 16);
        size_t m = ad_tokenizer_decode(&t, ids, len ? k + 1 : 0, buf, 4 * len + 16);
        ck_assert_msg(m == len && !memcmp(buf, s, len), "\"%s\" decodes back to \"%s\"", s, buf);
        free(buf);
        free(ids);
        strings++;
        s = end ? end + strlen("\n__ggml_vocab_test__\n") : NULL;
    }
    ck_assert_int_gt(strings, 40);
    free(text);
    ad_tokenizer_free(&t);
}
END_TEST

/* The deepseek-llm vocabulary (pre-tokenizer, added tokens, types, merges) through a
 * checkpoint encodes exactly as read from the GGUF. */
START_TEST(test_vocab_through_checkpoint) {
    char gguf[4200];
    snprintf(gguf, sizeof gguf, "%s/ggml-vocab-deepseek-llm.gguf", vocab_dir());
    FILE *f = fopen(gguf, "rb");
    if (!f) {
        printf("skipped: %s is absent (set AD_SHARED_VOCAB)\n", gguf);
        return;
    }
    fclose(f);
    AdTokenizer a, b;
    ck_assert_int_eq(ad_import_vocab(gguf, &a), AD_OK);
    ck_assert_int_eq(a.pre, AD_PRE_DEEPSEEK_LLM);
    ck_assert_int_eq(a.add_bos, 1);
    AdModelConfig c;
    ck_assert_int_eq(ad_model_config_preset(&c, "llama"), AD_OK);
    c.vocab_size = a.vocab_size, c.max_seq_len = 8, c.n_layer = 1, c.n_head = 1;
    c.n_kv_head = 1, c.d_model = 4, c.d_ff = 4;
    AdModel m, m2;
    ck_assert_int_eq(ad_model_init(&m, &c, 0), AD_OK);
    const char *path = ad_test_path(ad_test_tmpdir(), "vocab.h5");
    ck_assert_int_eq(ad_checkpoint_save(path, &m, &a, NULL), AD_OK);
    ck_assert_int_eq(ad_checkpoint_load(path, &m2, 0, &b, NULL), AD_OK);
    ck_assert_int_eq(b.pre, a.pre);
    ck_assert_int_eq(b.add_bos, 1);
    ck_assert_int_eq(b.unk_id, a.unk_id);
    ck_assert_int_eq(b.n_merges, a.n_merges);
    ck_assert_mem_eq(b.types, a.types, (size_t)a.vocab_size);
    const char *text = "F\xc3\xbchrer ied 4 \xc2\xbd months \xe4\xbd\xa0\xe5\xa5\xbd 3333333";
    int x[64], y[64], nx, ny;
    ck_assert_int_eq(ad_tokenizer_encode(&a, text, strlen(text), x, 64, &nx), AD_OK);
    ck_assert_int_eq(ad_tokenizer_encode(&b, text, strlen(text), y, 64, &ny), AD_OK);
    ck_assert_int_eq(nx, ny);
    ck_assert_mem_eq(x, y, (size_t)nx * sizeof *x);
    ad_tokenizer_free(&a);
    ad_tokenizer_free(&b);
    ad_model_free(&m);
    ad_model_free(&m2);
}
END_TEST

int main(void) {
    Suite *s = suite_create("vocab");
    const AdTestCase cases[] = {
        {"pretok_splits_by_hand", test_pretok_splits_by_hand},
        {"pretok_names", test_pretok_names},
        {"nfc_by_hand", test_nfc_by_hand},
        {"nfc_conformance", test_nfc_conformance},
        {"user_defined_before_bpe", test_user_defined_before_bpe},
        {"missing_byte_fails_naming_it", test_missing_byte_fails_naming_it},
        {"llama3_whole_word_lookup", test_llama3_whole_word_lookup},
        {"llama_cpp_vectors", test_llama_cpp_vectors},
        {"baichuan_round_trips", test_baichuan_round_trips},
        {"vocab_through_checkpoint", test_vocab_through_checkpoint},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], 120);
    return ad_test_run(s);
}
