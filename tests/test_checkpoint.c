/* test_checkpoint.c: HDF5 checkpoints. Round trips are compared bit for bit with the
 * values that were saved; the layout is checked with raw HDF5 calls against shapes worked
 * out here from the config (not from ad_model_param_info); damaged, foreign, newer and
 * inconsistent files must fail with a message naming the file and object and leave
 * nothing allocated; a failed save must leave the previous checkpoint intact. The
 * h5util layer's tables and long strings are exercised at the end. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/h5util.h" /* brings <hdf5.h> (see the note there on the 1.8 API default) */
#include "autodidact/checkpoint.h"
#include "autodidact/model.h"
#include "autodidact/rng.h"
#include "autodidact/tokenizer.h"
#include "autodidact/train.h"
#include "testutil.h"

#define TIMEOUT 60

/* ---- fixtures ------------------------------------------------------------------ */

static AdModelConfig make_cfg(const char *family, int V, int maxT, int L, int H, int Hkv, int C,
                              int F) {
    AdModelConfig c;
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(ad_model_config_preset(&c, family), AD_OK);
    c.vocab_size = V, c.max_seq_len = maxT, c.n_layer = L, c.n_head = H, c.n_kv_head = Hkv;
    c.d_model = C, c.d_ff = F;
    return c;
}

/* A model whose every parameter is a distinct random value, plus a few special bit
 * patterns (negative zero, subnormals, the largest float) that a lossy path would change.
 * Checkpoints refuse NaN and infinity (test_non_finite_refused); that the storage keeps
 * their bits, payload included, is test_float_bits_lossless. */
static void make_model(AdModel *m, const AdModelConfig *c, uint64_t seed) {
    ck_assert_int_eq(ad_model_init(m, c, 0), AD_OK);
    AdRng r;
    ad_rng_init(&r, seed, AD_STREAM_INIT, 0);
    for (size_t i = 0; i < m->n_params; i++) m->params_mem[i] = ad_rng_normal(&r);
    uint32_t tiny_bits = 0x80000001u; /* the smallest negative subnormal */
    float tiny;
    memcpy(&tiny, &tiny_bits, sizeof tiny);
    m->params_mem[0] = -0.0f;
    m->params_mem[1] = FLT_MIN / 8;
    m->params_mem[2] = FLT_MAX;
    m->params_mem[3] = tiny;
}

static float *copy_floats(const float *src, size_t n) {
    float *d = malloc(n * sizeof *d + 1);
    ck_assert_ptr_nonnull(d);
    memcpy(d, src, n * sizeof *d);
    return d;
}

static int all_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

/* A resolved-config text longer than the 64 KiB attribute limit, with UTF-8 in it. */
static char *make_json(size_t approx) {
    char *s = malloc(approx + 64);
    ck_assert_ptr_nonnull(s);
    size_t n = (size_t)sprintf(s, "{\"note\": \"gr\xc3\xbc\xc3\x9f \xe2\x9c\x93\", \"pad\": \"");
    for (; n < approx; n++) s[n] = (char)('a' + n % 26);
    strcpy(s + n, "\"}");
    return s;
}

static void make_train_state(AdTrainState *st, size_t n_params, int with_moments, uint64_t seed) {
    memset(st, 0, sizeof *st);
    AdAdamWConfig oc = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    AdRng r;
    ad_rng_init(&r, seed, AD_STREAM_DATA, 7);
    if (with_moments) {
        ck_assert_int_eq(ad_adamw_init(&st->opt, &oc, n_params), AD_OK);
        for (size_t i = 0; i < n_params; i++) {
            st->opt.m[i] = ad_rng_normal(&r) * 1e-3f;
            st->opt.v[i] = ad_rng_uniform(&r) * 1e-6f;
        }
    } else {
        st->opt.cfg = oc;
    }
    st->opt.step = 1234;
    st->step = 1234;
    st->tokens_seen = 9876543210.5;
    st->data_rng = r;
    ad_rng_u64(&st->data_rng); /* move on so the state is not a fresh seed */
}

static void free_train_state(AdTrainState *st) {
    ad_adamw_free(&st->opt);
    free(st->config_json);
    memset(st, 0, sizeof *st);
}

static void assert_cfg_eq(const AdModelConfig *a, const AdModelConfig *b) {
    ck_assert_int_eq(a->vocab_size, b->vocab_size);
    ck_assert_int_eq(a->max_seq_len, b->max_seq_len);
    ck_assert_int_eq(a->n_layer, b->n_layer);
    ck_assert_int_eq(a->n_head, b->n_head);
    ck_assert_int_eq(a->n_kv_head, b->n_kv_head);
    ck_assert_int_eq(a->d_model, b->d_model);
    ck_assert_int_eq(a->d_ff, b->d_ff);
    ck_assert_int_eq(a->norm, b->norm);
    ck_assert_int_eq(a->mlp, b->mlp);
    ck_assert_int_eq(a->pos, b->pos);
    ck_assert_int_eq(a->bias, b->bias);
    ck_assert_int_eq(a->tied, b->tied);
    ck_assert(memcmp(&a->norm_eps, &b->norm_eps, sizeof(float)) == 0);
    ck_assert(memcmp(&a->rope_theta, &b->rope_theta, sizeof(float)) == 0);
    ck_assert_int_eq(a->qkv_bias, b->qkv_bias);
    ck_assert_int_eq(a->sliding_window, b->sliding_window);
    ck_assert_int_eq(a->rope_scaling, b->rope_scaling);
    ck_assert(a->rope_factor == b->rope_factor);
    ck_assert(a->rope_low_freq_factor == b->rope_low_freq_factor);
    ck_assert(a->rope_high_freq_factor == b->rope_high_freq_factor);
    ck_assert_int_eq(a->rope_original_max_pos, b->rope_original_max_pos);
}

static void assert_tok_eq(const AdTokenizer *a, const AdTokenizer *b) {
    ck_assert_int_eq(a->kind, b->kind);
    ck_assert_int_eq(a->vocab_size, b->vocab_size);
    ck_assert_int_eq(a->bos_id, b->bos_id);
    ck_assert_int_eq(a->eos_id, b->eos_id);
    ck_assert_int_eq(a->pad_id, b->pad_id);
    ck_assert_int_eq(a->sep_id, b->sep_id);
    for (int i = 0; i < a->vocab_size; i++) {
        ck_assert_int_eq(a->piece_len[i], b->piece_len[i]);
        ck_assert(memcmp(a->pieces[i], b->pieces[i], (size_t)a->piece_len[i]) == 0);
        ck_assert(memcmp(&a->scores[i], &b->scores[i], sizeof(float)) == 0);
    }
    ck_assert_int_eq(a->n_merges, b->n_merges);
    ck_assert_int_eq(a->merges == NULL, b->merges == NULL);
    if (a->merges)
        ck_assert(memcmp(a->merges, b->merges, 2 * (size_t)a->n_merges * sizeof(int)) == 0);
}

static void assert_msg_has(const char *needle) {
    const char *msg = ad_errmsg();
    if (!strstr(msg, needle))
        ck_abort_msg("error message \"%s\" does not mention \"%s\"", msg, needle);
}

/* With AD_TEST_SHOW_ERRORS set, prints the messages of expected failures for review. */
static void show_error(AdStatus s) {
    if (getenv("AD_TEST_SHOW_ERRORS")) fprintf(stderr, "[%s] %s\n", ad_status_name(s), ad_errmsg());
}

/* Loads path expecting failure with status want (0: any error); checks that every output
 * struct comes back zeroed although it was filled with garbage. */
static void expect_load_fails(const char *path, AdStatus want, int with_tok, int with_st) {
    AdModel m;
    AdTokenizer tok;
    AdTrainState st;
    memset(&m, 0x5a, sizeof m);
    memset(&tok, 0x5a, sizeof tok);
    memset(&st, 0x5a, sizeof st);
    AdStatus s = ad_checkpoint_load(path, &m, 1, with_tok ? &tok : NULL, with_st ? &st : NULL);
    if (s == AD_OK) ck_abort_msg("loading %s succeeded, expected an error", path);
    show_error(s);
    if (want != AD_OK && s != want)
        ck_abort_msg("loading %s: status %s, expected %s (%s)", path, ad_status_name(s),
                     ad_status_name(want), ad_errmsg());
    ck_assert(all_zero(&m, sizeof m));
    if (with_tok) ck_assert(all_zero(&tok, sizeof tok));
    if (with_st) ck_assert(all_zero(&st, sizeof st));
    assert_msg_has(path);
}

static void copy_file(const char *from, const char *to, long keep_bytes) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    char buf[8192];
    long done = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (keep_bytes >= 0 && done + (long)n > keep_bytes) n = (size_t)(keep_bytes - done);
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
        done += (long)n;
        if (keep_bytes >= 0 && done >= keep_bytes) break;
    }
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

static long file_size(const char *path) {
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    return (long)sb.st_size;
}

/* A small GPT-2 checkpoint with a byte tokenizer, weights only; returns its path. */
static const char *save_small_gpt2(const char *name, AdModel *m, uint64_t seed) {
    AdModelConfig c = make_cfg("gpt2", 264, 16, 2, 2, 2, 16, 64);
    make_model(m, &c, seed);
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_byte(&tok), AD_OK);
    const char *path = ad_test_path(ad_test_tmpdir(), name);
    if (ad_checkpoint_save(path, m, &tok, NULL) != AD_OK) ck_abort_msg("%s", ad_errmsg());
    ad_tokenizer_free(&tok);
    return path;
}

/* ---- round trips --------------------------------------------------------------- */

static void roundtrip(const AdModelConfig *c, AdTokenizer *tok, int with_moments,
                      const char *json, const char *name) {
    AdModel m;
    make_model(&m, c, 42);
    AdTrainState st;
    make_train_state(&st, m.n_params, with_moments, 43);
    if (json) st.config_json = strdup(json);
    float *want = copy_floats(m.params_mem, m.n_params);
    const char *path = ad_test_path(ad_test_tmpdir(), name);
    if (ad_checkpoint_save(path, &m, tok, &st) != AD_OK) ck_abort_msg("save: %s", ad_errmsg());
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0);

    AdModel m2;
    AdTokenizer tok2;
    AdTrainState st2;
    AdStatus s = ad_checkpoint_load(path, &m2, with_moments, &tok2, &st2);
    if (s != AD_OK) ck_abort_msg("load: %s", ad_errmsg());
    assert_cfg_eq(&m2.cfg, c);
    ck_assert_uint_eq(m2.n_params, m.n_params);
    ck_assert(memcmp(m2.params_mem, want, m.n_params * sizeof(float)) == 0);
    if (with_moments) {
        ck_assert_ptr_nonnull(m2.grads_mem);
        ck_assert(all_zero(m2.grads_mem, m2.n_params * sizeof(float)));
    } else {
        ck_assert_ptr_null(m2.grads_mem);
    }
    assert_tok_eq(&tok2, tok);

    ck_assert_int_eq(st2.step, 1234);
    ck_assert(st2.tokens_seen == 9876543210.5);
    ck_assert_int_eq(st2.opt.step, 1234);
    ck_assert(st2.opt.cfg.beta1 == 0.9f && st2.opt.cfg.beta2 == 0.95f);
    ck_assert(st2.opt.cfg.eps == 1e-8f && st2.opt.cfg.weight_decay == 0.1f);
    ck_assert(memcmp(st2.data_rng.s, st.data_rng.s, sizeof st.data_rng.s) == 0);
    if (with_moments) {
        ck_assert_uint_eq(st2.opt.n, m.n_params);
        ck_assert(memcmp(st2.opt.m, st.opt.m, m.n_params * sizeof(float)) == 0);
        ck_assert(memcmp(st2.opt.v, st.opt.v, m.n_params * sizeof(float)) == 0);
    } else {
        ck_assert_ptr_null(st2.opt.m);
        ck_assert_ptr_null(st2.opt.v);
    }
    if (json) {
        ck_assert_ptr_nonnull(st2.config_json);
        ck_assert_str_eq(st2.config_json, json);
    } else {
        ck_assert_ptr_null(st2.config_json);
    }

    AdModelConfig c3;
    ck_assert_int_eq(ad_checkpoint_read_config(path, &c3), AD_OK);
    assert_cfg_eq(&c3, c);

    free(want);
    ad_model_free(&m);
    ad_model_free(&m2);
    ad_tokenizer_free(&tok2);
    free_train_state(&st);
    free_train_state(&st2);
}

START_TEST(test_roundtrip_gpt2_byte) {
    AdModelConfig c = make_cfg("gpt2", 264, 32, 2, 4, 4, 32, 128);
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_byte(&tok), AD_OK);
    char *json = make_json(100000);
    roundtrip(&c, &tok, 1, json, "gpt2.h5");
    free(json);
    ad_tokenizer_free(&tok);
}
END_TEST

static int64_t raw_attr_i64(hid_t obj, const char *name);

/* The switches of later families (Qwen2 q/k/v biases, Mistral's sliding window, Llama 3
 * RoPE scaling) round-trip in a version-2 file; a file without their attributes (as
 * written before them, version 1) loads with the switches off. */
START_TEST(test_roundtrip_v2_switches) {
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_byte(&tok), AD_OK);
    AdModelConfig c = make_cfg("llama", 264, 24, 2, 4, 2, 32, 48);
    c.qkv_bias = 1, c.sliding_window = 7, c.rope_scaling = AD_ROPE_SCALING_LLAMA3;
    c.rope_factor = 32.0f, c.rope_low_freq_factor = 1.0f, c.rope_high_freq_factor = 4.0f;
    c.rope_original_max_pos = 8192;
    roundtrip(&c, &tok, 0, NULL, "v2.h5");
    const char *path = ad_test_path(ad_test_tmpdir(), "v2.h5");
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    ck_assert_int_eq(raw_attr_i64(f, "format_version"), 2);
    /* make it a file from before version 2: a plain llama model without the attributes */
    int64_t one = 1;
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    ck_assert_int_ge(H5Awrite(a, H5T_NATIVE_INT64, &one), 0);
    H5Aclose(a);
    hid_t g = H5Gopen2(f, "model", H5P_DEFAULT);
    const char *v2[] = {"qkv_bias", "sliding_window", "rope_scaling", "rope_factor",
                        "rope_low_freq_factor", "rope_high_freq_factor", "rope_original_max_pos"};
    for (size_t i = 0; i < sizeof v2 / sizeof v2[0]; i++) ck_assert_int_ge(H5Adelete(g, v2[i]), 0);
    /* qkv_b's parameters would no longer match n_params: drop the dataset and fix the count */
    int64_t n = raw_attr_i64(g, "n_params") - 2 * (4 + 2 + 2) * 8;
    a = H5Aopen(g, "n_params", H5P_DEFAULT);
    ck_assert_int_ge(H5Awrite(a, H5T_NATIVE_INT64, &n), 0);
    H5Aclose(a);
    H5Gclose(g);
    ck_assert_int_ge(H5Ldelete(f, "weights/qkv_b", H5P_DEFAULT), 0);
    ck_assert_int_ge(H5Fclose(f), 0);
    AdModelConfig old;
    ck_assert_msg(ad_checkpoint_read_config(path, &old) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(old.qkv_bias, 0);
    ck_assert_int_eq(old.sliding_window, 0);
    ck_assert_int_eq(old.rope_scaling, AD_ROPE_SCALING_NONE);
    AdModel m;
    ck_assert_msg(ad_checkpoint_load(path, &m, 0, NULL, NULL) == AD_OK, "%s", ad_errmsg());
    ck_assert_ptr_null(m.params.t[AD_P_QKVB]);
    ad_model_free(&m);
    /* a plain model is still written as version 1 */
    AdModelConfig p = make_cfg("llama", 264, 24, 2, 4, 2, 32, 48);
    roundtrip(&p, &tok, 0, NULL, "v1.h5");
    f = H5Fopen(ad_test_path(ad_test_tmpdir(), "v1.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_eq(raw_attr_i64(f, "format_version"), 1);
    H5Fclose(f);
    ad_tokenizer_free(&tok);
}
END_TEST

START_TEST(test_roundtrip_llama_char) {
    const char *text = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x99\x82";
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_char(&tok, text, strlen(text)), AD_OK);
    /* GQA (4 query heads on 2 key/value heads), untied, vocabulary padded past the tokenizer */
    AdModelConfig c = make_cfg("llama", tok.vocab_size + 3, 24, 3, 4, 2, 32, 48);
    roundtrip(&c, &tok, 0, NULL, "llama.h5");
    /* the reloaded char tokenizer still encodes and decodes the text */
    AdModel m;
    AdTokenizer tok2;
    ck_assert_int_eq(ad_checkpoint_load(ad_test_path(ad_test_tmpdir(), "llama.h5"), &m, 0, &tok2,
                                        NULL), AD_OK);
    int ids[64], n = 0, ids2[64], n2 = 0;
    ck_assert_int_eq(ad_tokenizer_encode(&tok, text, strlen(text), ids, 64, &n), AD_OK);
    ck_assert_int_eq(ad_tokenizer_encode(&tok2, text, strlen(text), ids2, 64, &n2), AD_OK);
    ck_assert_int_eq(n, n2);
    ck_assert(memcmp(ids, ids2, (size_t)n * sizeof *ids) == 0);
    char buf[128];
    ck_assert_uint_eq(ad_tokenizer_decode(&tok2, ids2, n2, buf, sizeof buf), strlen(text));
    ck_assert_str_eq(buf, text);
    ad_model_free(&m);
    ad_tokenizer_free(&tok2);
    ad_tokenizer_free(&tok);
}
END_TEST

START_TEST(test_roundtrip_spm_scores) {
    /* pieces with an empty piece, an embedded NUL and non-zero scores */
    const char *pieces[7] = {"<unk>", "<s>", "</s>", "", "a\0b", " the", "<0x41>"};
    int lens[7] = {5, 3, 4, 0, 3, 4, 6};
    float scores[7] = {0.0f, 0.0f, 0.0f, -1.5f, -2.25f, 3.0e-7f, -1e30f};
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(&tok, AD_TOK_SPM, 7, pieces, lens, scores, 1,
                                                   2, -1, -1), AD_OK);
    AdModelConfig c = make_cfg("llama", 7, 8, 1, 2, 1, 8, 16);
    c.pos = AD_POS_NONE;
    c.tied = 1;
    roundtrip(&c, &tok, 1, "{}", "spm.h5");
    ad_tokenizer_free(&tok);
}
END_TEST

/* A byte-level GPT-2 tokenizer built from pieces: id b is byte b's character under
 * GPT-2's bytes_to_unicode() (printable bytes stand for themselves, the others are
 * U+0100 + n in byte order, so ' ' is "Ġ" = U+0120), then "ll", "Ġt", "Ġte" made by the
 * merges "l l", "Ġ t", "Ġt e", and "<|endoftext|>" as bos and eos. */
static void make_gpt2_tok(AdTokenizer *tok) {
    static char bytes[256][3];
    const char *pieces[260];
    int lens[260], extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unsigned cp = printable ? (unsigned)b : 0x100u + (unsigned)extra++;
        if (cp < 0x80) {
            bytes[b][0] = (char)cp, bytes[b][1] = '\0';
        } else {
            bytes[b][0] = (char)(0xC0 | (cp >> 6)), bytes[b][1] = (char)(0x80 | (cp & 0x3F));
            bytes[b][2] = '\0';
        }
        pieces[b] = bytes[b];
    }
    ck_assert_int_eq(extra, 68);
    pieces[256] = "ll";
    pieces[257] = "\xc4\xa0t";
    pieces[258] = "\xc4\xa0te";
    pieces[259] = "<|endoftext|>";
    for (int i = 0; i < 260; i++) lens[i] = (int)strlen(pieces[i]);
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(tok, AD_TOK_GPT2, 260, pieces, lens, NULL, 259,
                                                   259, -1, -1), AD_OK);
    const int merges[6] = {'l', 'l', ' ', 't', 257, 'e'};
    ck_assert_int_eq(ad_tokenizer_set_merges(tok, 3, merges), AD_OK);
}

START_TEST(test_roundtrip_gpt2_bpe) {
    AdTokenizer tok;
    make_gpt2_tok(&tok);
    AdModelConfig c = make_cfg("gpt2", 264, 16, 1, 2, 2, 16, 32);
    roundtrip(&c, &tok, 0, NULL, "gpt2_bpe.h5");
    /* the reloaded tokenizer encodes with the merges: " tell" is "Ġte" "ll" */
    AdModel m;
    AdTokenizer tok2;
    AdStatus s = ad_checkpoint_load(ad_test_path(ad_test_tmpdir(), "gpt2_bpe.h5"), &m, 0, &tok2,
                                    NULL);
    if (s != AD_OK) ck_abort_msg("load: %s", ad_errmsg());
    ck_assert_int_eq(tok2.n_merges, 3);
    int ids[8], n = 0;
    ck_assert_int_eq(ad_tokenizer_encode(&tok2, " tell\n", 6, ids, 8, &n), AD_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ids[0], 258);
    ck_assert_int_eq(ids[1], 256);
    ck_assert_int_eq(ids[2], '\n');
    char buf[16];
    ck_assert_uint_eq(ad_tokenizer_decode(&tok2, ids, n, buf, sizeof buf), 6);
    ck_assert_str_eq(buf, " tell\n");
    ad_model_free(&m);
    ad_tokenizer_free(&tok2);
    ad_tokenizer_free(&tok);

    /* a decode-only GPT-2 vocabulary (raw pieces, as from llm.c) has no merges: none are
     * written, and it comes back decode-only */
    const char *raw[4] = {"a", " the", "\n", "<|endoftext|>"};
    const int lens[4] = {1, 4, 1, 13};
    ck_assert_int_eq(ad_tokenizer_init_from_pieces(&tok, AD_TOK_GPT2, 4, raw, lens, NULL, -1, 3,
                                                   -1, -1), AD_OK);
    AdModelConfig c2 = make_cfg("gpt2", 4, 8, 1, 2, 2, 8, 16);
    roundtrip(&c2, &tok, 0, NULL, "gpt2_raw.h5");
    const char *path = ad_test_path(ad_test_tmpdir(), "gpt2_raw.h5");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    ck_assert(H5Lexists(f, "tokenizer/merges", H5P_DEFAULT) == 0);
    ck_assert_int_ge(H5Fclose(f), 0);
    ck_assert_int_eq(ad_checkpoint_load(path, &m, 0, &tok2, NULL), AD_OK);
    ck_assert_ptr_null(tok2.merges);
    ck_assert_int_eq(ad_tokenizer_encode(&tok2, "a", 1, ids, 8, &n), AD_ERR_ARG);
    const int some[3] = {1, 2, 0};
    ck_assert_uint_eq(ad_tokenizer_decode(&tok2, some, 3, buf, sizeof buf), 6);
    ck_assert_str_eq(buf, " the\na");
    ad_model_free(&m);
    ad_tokenizer_free(&tok2);
    ad_tokenizer_free(&tok);
}
END_TEST

/* Replaces /tokenizer/merges of the file at path by an int32 (rows, cols) dataset. */
static void replace_merges(const char *path, hsize_t rows, hsize_t cols, const int32_t *data) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t g = H5Gopen2(f, "tokenizer", H5P_DEFAULT);
    ck_assert_int_ge(H5Ldelete(g, "merges", H5P_DEFAULT), 0);
    hsize_t dims[2] = {rows, cols};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(g, "merges", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(d >= 0);
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Gclose(g);
    ck_assert_int_ge(H5Fclose(f), 0);
}

START_TEST(test_bad_gpt2_merges) {
    AdTokenizer tok;
    make_gpt2_tok(&tok);
    AdModelConfig c = make_cfg("gpt2", 260, 8, 1, 2, 2, 8, 16);
    AdModel m;
    make_model(&m, &c, 15);
    const char *good = ad_test_path(ad_test_tmpdir(), "merges_src.h5");
    char src[4096];
    snprintf(src, sizeof src, "%s", good);
    ck_assert_int_eq(ad_checkpoint_save(src, &m, &tok, NULL), AD_OK);
    const int32_t not_a_piece[2] = {'a', 'b'};         /* "ab" is not in the vocabulary */
    const int32_t repeated[4] = {'l', 'l', 'l', 'l'};
    const int32_t out_of_range[2] = {'l', 999};
    const int32_t three_cols[3] = {'l', 'l', 0};
    struct {
        const char *name;
        hsize_t rows, cols;
        const int32_t *data;
        const char *says;
    } cases[] = {
        {"m_piece.h5", 1, 2, not_a_piece, "not in the vocabulary"},
        {"m_twice.h5", 2, 2, repeated, "repeats"},
        {"m_range.h5", 1, 2, out_of_range, "outside"},
        {"m_shape.h5", 1, 3, three_cols, "(n, 2)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = ad_test_path(ad_test_tmpdir(), cases[i].name);
        copy_file(src, path, -1);
        replace_merges(path, cases[i].rows, cases[i].cols, cases[i].data);
        expect_load_fails(path, AD_ERR_FORMAT, 1, 0);
        assert_msg_has("/tokenizer/merges");
        assert_msg_has(cases[i].says);
    }
    ad_model_free(&m);
    ad_tokenizer_free(&tok);
}
END_TEST

START_TEST(test_weights_only) {
    AdModelConfig c = make_cfg("llama", 50, 16, 2, 2, 1, 16, 24);
    AdModel m;
    make_model(&m, &c, 5);
    const char *path = ad_test_path(ad_test_tmpdir(), "weights_only.h5");
    ck_assert_int_eq(ad_checkpoint_save(path, &m, NULL, NULL), AD_OK);
    AdModel m2;
    ck_assert_int_eq(ad_checkpoint_load(path, &m2, 0, NULL, NULL), AD_OK);
    assert_cfg_eq(&m2.cfg, &c);
    ck_assert(memcmp(m2.params_mem, m.params_mem, m.n_params * sizeof(float)) == 0);
    ad_model_free(&m2);
    /* asking for what is not there is an error, and nothing stays allocated */
    expect_load_fails(path, AD_ERR_FORMAT, 1, 0);
    assert_msg_has("tokenizer");
    expect_load_fails(path, AD_ERR_FORMAT, 0, 1);
    assert_msg_has("training state");
    ad_model_free(&m);
}
END_TEST

/* ---- layout, checked with raw HDF5 calls -------------------------------------------- */

static int64_t raw_attr_i64(hid_t obj, const char *name) {
    int64_t v = -999;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "attribute %s missing", name);
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_INT64, &v), 0);
    H5Aclose(a);
    return v;
}

static void raw_attr_str(hid_t obj, const char *name, char *out, size_t cap) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "attribute %s missing", name);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *s = NULL;
    ck_assert_int_ge(H5Aread(a, t, &s), 0);
    snprintf(out, cap, "%s", s);
    H5free_memory(s);
    H5Tclose(t);
    H5Aclose(a);
}

/* Checks rank, dims, float32 little-endian type and the three filters of a dataset. */
static void raw_check_weight(hid_t w, const char *name, int rank, hsize_t d0, hsize_t d1,
                             hsize_t d2) {
    hid_t d = H5Dopen2(w, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "dataset /weights/%s missing", name);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[3] = {0, 0, 0}, want[3] = {d0, d1, d2};
    ck_assert_int_eq(H5Sget_simple_extent_ndims(sp), rank);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int i = 0; i < rank; i++)
        ck_assert_msg(dims[i] == want[i], "/weights/%s dim %d is %llu, expected %llu", name, i,
                      (unsigned long long)dims[i], (unsigned long long)want[i]);
    hid_t t = H5Dget_type(d);
    ck_assert(H5Tequal(t, H5T_IEEE_F32LE) > 0);
    hid_t dcpl = H5Dget_create_plist(d);
    ck_assert_int_eq(H5Pget_layout(dcpl), H5D_CHUNKED);
    int nf = H5Pget_nfilters(dcpl), seen = 0;
    for (int i = 0; i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char fname[64];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname,
                                         NULL);
        if (id == H5Z_FILTER_SHUFFLE) seen |= 1;
        if (id == H5Z_FILTER_DEFLATE) seen |= 2;
        if (id == H5Z_FILTER_FLETCHER32) seen |= 4;
    }
    ck_assert_int_eq(seen, 7);
    H5Pclose(dcpl);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
}

START_TEST(test_layout) {
    /* llama: V 300, maxT 16, L 2, H 4, Hkv 2, C 32 (hs 8), F 24 -> QKV (4+2+2)*8 = 64 */
    AdModelConfig c = make_cfg("llama", 300, 16, 2, 4, 2, 32, 24);
    AdModel m;
    make_model(&m, &c, 9);
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_byte(&tok), AD_OK);
    AdTrainState st;
    make_train_state(&st, m.n_params, 1, 3);
    st.config_json = strdup("{\"a\": 1}");
    const char *path = ad_test_path(ad_test_tmpdir(), "layout.h5");
    ck_assert_int_eq(ad_checkpoint_save(path, &m, &tok, &st), AD_OK);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    char s[256];
    raw_attr_str(f, "format", s, sizeof s);
    ck_assert_str_eq(s, "autodidact-checkpoint");
    ck_assert_int_eq(raw_attr_i64(f, "format_version"), 1);
    raw_attr_str(f, "program_version", s, sizeof s);
    ck_assert_str_eq(s, AD_VERSION_STRING);
    raw_attr_str(f, "git_commit", s, sizeof s);
    ck_assert(strlen(s) > 0);

    hid_t g = H5Gopen2(f, "model", H5P_DEFAULT);
    ck_assert(g >= 0);
    ck_assert_int_eq(raw_attr_i64(g, "vocab_size"), 300);
    ck_assert_int_eq(raw_attr_i64(g, "n_kv_head"), 2);
    ck_assert_int_eq(raw_attr_i64(g, "d_ff"), 24);
    ck_assert_int_eq(raw_attr_i64(g, "tied"), 0);
    raw_attr_str(g, "norm", s, sizeof s);
    ck_assert_str_eq(s, "rmsnorm");
    raw_attr_str(g, "mlp", s, sizeof s);
    ck_assert_str_eq(s, "swiglu");
    raw_attr_str(g, "pos", s, sizeof s);
    ck_assert_str_eq(s, "rope");
    /* V C + L C + L QKV C + L C C + L C + L 2F C + L C F + C + V C */
    int64_t want_n = 300 * 32 + 2 * 32 + 2 * 64 * 32 + 2 * 32 * 32 + 2 * 32 + 2 * 48 * 32 +
                     2 * 32 * 24 + 32 + 300 * 32;
    ck_assert_int_eq(raw_attr_i64(g, "n_params"), want_n);
    H5Gclose(g);

    hid_t w = H5Gopen2(f, "weights", H5P_DEFAULT);
    raw_check_weight(w, "wte", 2, 300, 32, 0);
    raw_check_weight(w, "ln1_w", 2, 2, 32, 0);
    raw_check_weight(w, "qkv_w", 3, 2, 64, 32);
    raw_check_weight(w, "attproj_w", 3, 2, 32, 32);
    raw_check_weight(w, "ln2_w", 2, 2, 32, 0);
    raw_check_weight(w, "fc_w", 3, 2, 48, 32);
    raw_check_weight(w, "fcproj_w", 3, 2, 32, 24);
    raw_check_weight(w, "lnf_w", 1, 32, 0, 0);
    raw_check_weight(w, "lm_head", 2, 300, 32, 0);
    const char *absent[] = {"wpe", "ln1_b", "qkv_b", "attproj_b", "ln2_b", "fc_b", "fcproj_b",
                            "lnf_b"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        ck_assert_msg(H5Lexists(w, absent[i], H5P_DEFAULT) == 0, "%s should be absent", absent[i]);
    /* qkv_w[1][5][7] is the float at (1*64 + 5)*32 + 7 of that tensor */
    hid_t d = H5Dopen2(w, "qkv_w", H5P_DEFAULT);
    float *buf = malloc(2 * 64 * 32 * sizeof *buf);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    ck_assert(memcmp(&buf[(1 * 64 + 5) * 32 + 7], &m.params.t[AD_P_QKVW][(1 * 64 + 5) * 32 + 7],
                     sizeof(float)) == 0);
    free(buf);
    H5Dclose(d);
    H5Gclose(w);

    g = H5Gopen2(f, "tokenizer", H5P_DEFAULT);
    raw_attr_str(g, "kind", s, sizeof s);
    ck_assert_str_eq(s, "byte");
    ck_assert_int_eq(raw_attr_i64(g, "vocab_size"), 260);
    ck_assert_int_eq(raw_attr_i64(g, "bos_id"), 1);
    int64_t off[261];
    d = H5Dopen2(g, "piece_offsets", H5P_DEFAULT);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off), 0);
    H5Dclose(d);
    /* "<pad>" "<bos>" "<eos>" "<sep>" then one byte each */
    ck_assert_int_eq(off[0], 0);
    ck_assert_int_eq(off[4], 20);
    ck_assert_int_eq(off[260], 20 + 256);
    unsigned char bytes[276];
    d = H5Dopen2(g, "piece_bytes", H5P_DEFAULT);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes), 0);
    H5Dclose(d);
    ck_assert(memcmp(bytes + off[1], "<bos>", 5) == 0);
    ck_assert_int_eq(bytes[off[4 + 'A']], 'A');
    H5Gclose(g);

    g = H5Gopen2(f, "train", H5P_DEFAULT);
    ck_assert_int_eq(raw_attr_i64(g, "step"), 1234);
    ck_assert_int_eq(raw_attr_i64(g, "adam_step"), 1234);
    uint64_t rs[4];
    d = H5Dopen2(g, "rng_state", H5P_DEFAULT);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, rs), 0);
    H5Dclose(d);
    ck_assert(memcmp(rs, st.data_rng.s, sizeof rs) == 0);
    ck_assert(H5Lexists(g, "adam_m", H5P_DEFAULT) > 0);
    ck_assert(H5Lexists(g, "config_json", H5P_DEFAULT) > 0);
    H5Gclose(g);
    ck_assert_int_ge(H5Fclose(f), 0);

    ad_model_free(&m);
    ad_tokenizer_free(&tok);
    free_train_state(&st);
}
END_TEST

/* ---- bad files -------------------------------------------------------------------- */

START_TEST(test_missing_file) {
    const char *path = ad_test_path(ad_test_tmpdir(), "no_such_checkpoint.h5");
    expect_load_fails(path, AD_ERR_IO, 1, 1);
    AdModelConfig c;
    ck_assert_int_eq(ad_checkpoint_read_config(path, &c), AD_ERR_IO);
    assert_msg_has(path);
}
END_TEST

START_TEST(test_truncated) {
    AdModel m;
    const char *good = save_small_gpt2("trunc_src.h5", &m, 11);
    long size = file_size(good);
    const long cuts[] = {size / 2, size - 100, 600, 40, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "trunc_%ld.h5", cuts[i]);
        const char *path = ad_test_path(ad_test_tmpdir(), name);
        copy_file(good, path, cuts[i]);
        expect_load_fails(path, AD_OK, 1, 0);
    }
    ad_model_free(&m);
}
END_TEST

START_TEST(test_not_a_checkpoint) {
    const char *path = ad_test_path(ad_test_tmpdir(), "foreign.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    hsize_t n = 3;
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, "x", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    double v[3] = {1, 2, 3};
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Sclose(sp);
    ck_assert_int_ge(H5Fclose(f), 0);
    expect_load_fails(path, AD_ERR_FORMAT, 1, 1);
    assert_msg_has("is not an autodidact checkpoint");

    /* a text file is not HDF5 at all */
    const char *txt = ad_test_path(ad_test_tmpdir(), "text.h5");
    FILE *t = fopen(txt, "w");
    fputs("just some text, long enough to look like a file\n", t);
    fclose(t);
    expect_load_fails(txt, AD_ERR_FORMAT, 0, 0);
    AdModelConfig c;
    ck_assert_int_ne(ad_checkpoint_read_config(txt, &c), AD_OK);
}
END_TEST

/* Writes a file with only the root attributes format and format_version. */
static void write_header_only(const char *path, const char *format, int64_t version) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t a = H5Acreate2(f, "format", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Awrite(a, t, &format), 0);
    H5Aclose(a);
    a = H5Acreate2(f, "format_version", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Awrite(a, H5T_NATIVE_INT64, &version), 0);
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
    ck_assert_int_ge(H5Fclose(f), 0);
}

START_TEST(test_wrong_version) {
    const char *path = ad_test_path(ad_test_tmpdir(), "version3.h5");
    write_header_only(path, "autodidact-checkpoint", 3);
    expect_load_fails(path, AD_ERR_FORMAT, 0, 0);
    assert_msg_has("version 3");
    assert_msg_has("reads version 2");
    AdModelConfig c;
    ck_assert_int_eq(ad_checkpoint_read_config(path, &c), AD_ERR_FORMAT);

    path = ad_test_path(ad_test_tmpdir(), "otherformat.h5");
    write_header_only(path, "autodidact-runlog", 1);
    expect_load_fails(path, AD_ERR_FORMAT, 0, 0);
    assert_msg_has("is not an autodidact checkpoint");
    assert_msg_has("autodidact-runlog");
}
END_TEST

/* Copies the small checkpoint to `name` and replaces /weights/<victim> by a float dataset
 * of the given shape (rank 0: just delete it). */
static const char *corrupt_copy(const char *good, const char *name, const char *victim,
                                int rank, hsize_t d0, hsize_t d1) {
    const char *path = ad_test_path(ad_test_tmpdir(), name);
    copy_file(good, path, -1);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t w = H5Gopen2(f, "weights", H5P_DEFAULT);
    if (H5Lexists(w, victim, H5P_DEFAULT) > 0) ck_assert_int_ge(H5Ldelete(w, victim, H5P_DEFAULT), 0);
    if (rank > 0) {
        hsize_t dims[2] = {d0, d1};
        hid_t sp = H5Screate_simple(rank, dims, NULL);
        hid_t d = H5Dcreate2(w, victim, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert(d >= 0);
        H5Dclose(d);
        H5Sclose(sp);
    }
    H5Gclose(w);
    ck_assert_int_ge(H5Fclose(f), 0);
    return path;
}

START_TEST(test_wrong_shape) {
    AdModel m;
    const char *good = save_small_gpt2("shape_src.h5", &m, 12); /* V 264, C 16 */
    const char *path = corrupt_copy(good, "shape_wte.h5", "wte", 2, 264, 17);
    expect_load_fails(path, AD_ERR_FORMAT, 0, 0);
    assert_msg_has("/weights/wte");
    assert_msg_has("(264, 17)");
    assert_msg_has("(264, 16)");

    path = corrupt_copy(good, "shape_rank.h5", "lnf_w", 2, 1, 16);
    expect_load_fails(path, AD_ERR_FORMAT, 0, 0);
    assert_msg_has("/weights/lnf_w");
    assert_msg_has("(1, 16)");

    path = corrupt_copy(good, "missing_w.h5", "fcproj_b", 0, 0, 0);
    expect_load_fails(path, AD_ERR_FORMAT, 0, 0);
    assert_msg_has("fcproj_b");

    /* a tensor the config does not have (gpt2 is tied: no lm_head) */
    path = corrupt_copy(good, "extra_w.h5", "lm_head", 2, 264, 16);
    expect_load_fails(path, AD_ERR_FORMAT, 0, 0);
    assert_msg_has("lm_head");
    path = corrupt_copy(good, "stray_w.h5", "notes", 1, 3, 0);
    expect_load_fails(path, AD_ERR_FORMAT, 0, 0);
    assert_msg_has("notes");
    ad_model_free(&m);
}
END_TEST

START_TEST(test_bad_config_attrs) {
    AdModel m;
    const char *good = save_small_gpt2("cfg_src.h5", &m, 13);
    struct { const char *name; int64_t v; const char *says; } cases[] = {
        {"n_head", 3, "n_head"},         /* 16 % 3 != 0 */
        {"vocab_size", -5, "vocab_size"},
        {"d_model", (int64_t)1 << 40, "d_model"},
        {"n_params", 12345, "n_params"},
        {"bias", 2, "bias"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "cfg_%zu.h5", i);
        const char *path = ad_test_path(ad_test_tmpdir(), name);
        copy_file(good, path, -1);
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t g = H5Gopen2(f, "model", H5P_DEFAULT);
        hid_t a = H5Aopen(g, cases[i].name, H5P_DEFAULT);
        ck_assert(a >= 0);
        ck_assert_int_ge(H5Awrite(a, H5T_NATIVE_INT64, &cases[i].v), 0);
        H5Aclose(a);
        H5Gclose(g);
        ck_assert_int_ge(H5Fclose(f), 0);
        expect_load_fails(path, AD_ERR_FORMAT, 0, 0);
        assert_msg_has(cases[i].says);
    }
    ad_model_free(&m);
}
END_TEST

/* Flips one byte in the middle of the first stored chunk of /weights/<name>. */
static void flip_chunk_byte(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t w = H5Gopen2(f, "weights", H5P_DEFAULT);
    hid_t d = H5Dopen2(w, name, H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t offset[3];
    unsigned mask;
    haddr_t addr;
    hsize_t size;
    ck_assert_int_ge(H5Dget_chunk_info(d, sp, 0, offset, &mask, &addr, &size), 0);
    ck_assert(size > 16);
    H5Sclose(sp);
    H5Dclose(d);
    H5Gclose(w);
    ck_assert_int_ge(H5Fclose(f), 0);
    FILE *fp = fopen(path, "r+b");
    ck_assert_ptr_nonnull(fp);
    long at = (long)(addr + size / 2);
    ck_assert_int_eq(fseek(fp, at, SEEK_SET), 0);
    int c = fgetc(fp);
    ck_assert_int_ne(c, EOF);
    ck_assert_int_eq(fseek(fp, at, SEEK_SET), 0);
    fputc(c ^ 0x10, fp);
    ck_assert_int_eq(fclose(fp), 0);
}

START_TEST(test_flipped_byte) {
    AdModel m;
    const char *good = save_small_gpt2("flip_src.h5", &m, 14);
    const char *names[] = {"qkv_w", "wte", "lnf_b"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char fname[64];
        snprintf(fname, sizeof fname, "flip_%s.h5", names[i]);
        const char *path = ad_test_path(ad_test_tmpdir(), fname);
        copy_file(good, path, -1);
        flip_chunk_byte(path, names[i]);
        expect_load_fails(path, AD_ERR_FORMAT, 0, 0);
        char want[64];
        snprintf(want, sizeof want, "/weights/%s", names[i]);
        assert_msg_has(want);
        assert_msg_has("Fletcher32");
    }
    ad_model_free(&m);
}
END_TEST

/* ---- non-finite values ----------------------------------------------------------- */

/* A NaN or infinity in any weight or moment: loading refuses it naming the tensor and
 * the first bad index, and saving refuses to write it. */
START_TEST(test_non_finite_refused) {
    AdModel m;
    const char *good = save_small_gpt2("finite_src.h5", &m, 16);
    const int qkv = AD_P_QKVW;
    size_t at = 2 * (size_t)m.info[qkv].shape[2] + 3; /* [0, 2, 3] */
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const char *says[] = {"is nan", "is inf", "is -inf"};
    for (int k = 0; k < 3; k++) {
        char fname[64];
        snprintf(fname, sizeof fname, "nonfinite_%d.h5", k);
        const char *path = ad_test_path(ad_test_tmpdir(), fname);
        copy_file(good, path, -1);
        ad_test_poke_weight(path, "qkv_w", at, bad[k]);
        expect_load_fails(path, AD_ERR_NAN, 1, 0);
        assert_msg_has("qkv_w[0, 2, 3]");
        assert_msg_has(says[k]);
    }
    /* saving: weights, then an AdamW moment */
    const char *out = ad_test_path(ad_test_tmpdir(), "nonfinite_save.h5");
    m.params.t[AD_P_LNFW][5] = NAN;
    ck_assert_int_eq(ad_checkpoint_save(out, &m, NULL, NULL), AD_ERR_NAN);
    assert_msg_has("lnf_w[5]");
    ck_assert_int_ne(access(out, F_OK), 0);
    m.params.t[AD_P_LNFW][5] = 1.0f;
    AdTrainState st;
    make_train_state(&st, m.n_params, 1, 17);
    st.opt.v[7] = INFINITY;
    ck_assert_int_eq(ad_checkpoint_save(out, &m, NULL, &st), AD_ERR_NAN);
    assert_msg_has("/train/adam_v: element 7 is inf");
    ck_assert_int_ne(access(out, F_OK), 0);
    free_train_state(&st);
    ad_model_free(&m);
}
END_TEST

/* The storage itself is lossless for every bit pattern: infinities and NaN payloads
 * survive ad_h5_write_floats / ad_h5_read_floats (with the checkpoints' filters). */
START_TEST(test_float_bits_lossless) {
    const char *path = ad_test_path(ad_test_tmpdir(), "float_bits.h5");
    hid_t f;
    ck_assert_int_eq(ad_h5_create(path, &f), AD_OK);
    uint32_t bits[6] = {0x7fc12345u, 0xffa00001u, 0x7f800000u, 0xff800000u, 0x80000000u, 0x00000001u};
    float v[6], back[6];
    memcpy(v, bits, sizeof v);
    hsize_t shape[1] = {6};
    ck_assert_int_eq(ad_h5_write_floats(f, "x", 1, shape, v), AD_OK);
    ck_assert_int_eq(ad_h5_close_file(f), AD_OK);
    ck_assert_int_eq(ad_h5_open(path, 0, &f), AD_OK);
    ck_assert_int_eq(ad_h5_read_floats(f, "x", 1, shape, back), AD_OK);
    ad_h5_close_quietly(f);
    ck_assert(memcmp(back, v, sizeof v) == 0);
}
END_TEST

/* ---- failed saves keep the old checkpoint -------------------------------------------- */

static void assert_loads_weights_of(const char *path, const AdModel *want) {
    AdModel m;
    if (ad_checkpoint_load(path, &m, 0, NULL, NULL) != AD_OK) ck_abort_msg("%s", ad_errmsg());
    ck_assert_uint_eq(m.n_params, want->n_params);
    ck_assert(memcmp(m.params_mem, want->params_mem, m.n_params * sizeof(float)) == 0);
    ad_model_free(&m);
}

START_TEST(test_failed_save_tmp_is_dir) {
    AdModel a, b;
    const char *path = save_small_gpt2("keep_dir.h5", &a, 21);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_eq(mkdir(tmp, 0755), 0);
    AdModelConfig c = make_cfg("llama", 300, 16, 2, 2, 2, 16, 24);
    make_model(&b, &c, 22);
    AdStatus s = ad_checkpoint_save(path, &b, NULL, NULL);
    show_error(s);
    ck_assert_int_ne(s, AD_OK);
    assert_msg_has(tmp);
    struct stat sb;
    ck_assert_int_eq(stat(tmp, &sb), 0); /* someone else's directory is left alone */
    ck_assert(S_ISDIR(sb.st_mode));
    assert_loads_weights_of(path, &a);
    ck_assert_int_eq(rmdir(tmp), 0);
    /* with the obstacle gone the same save works */
    ck_assert_int_eq(ad_checkpoint_save(path, &b, NULL, NULL), AD_OK);
    assert_loads_weights_of(path, &b);
    ad_model_free(&a);
    ad_model_free(&b);
}
END_TEST

START_TEST(test_failed_save_disk_full) {
    /* Runs in Check's forked child: the file-size limit stays in this process. */
    AdModel a, b;
    const char *path = save_small_gpt2("keep_full.h5", &a, 31);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    AdModelConfig c = make_cfg("gpt2", 300, 64, 4, 4, 4, 64, 256); /* ~0.8 MB of floats */
    make_model(&b, &c, 32);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    AdStatus s = ad_checkpoint_save(path, &b, NULL, NULL);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    show_error(s);
    ck_assert_int_ne(s, AD_OK);
    ck_assert_int_eq(s, AD_ERR_IO);
    ck_assert_int_ne(access(tmp, F_OK), 0); /* the partial file is gone */
    assert_loads_weights_of(path, &a);
    ad_model_free(&a);
    ad_model_free(&b);
}
END_TEST

START_TEST(test_stale_tmp_and_overwrite) {
    AdModel a, b;
    const char *path = save_small_gpt2("stale.h5", &a, 41);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *t = fopen(tmp, "w");
    fputs("left over from a crash", t);
    fclose(t);
    AdModelConfig c = make_cfg("gpt2", 264, 16, 2, 2, 2, 16, 64);
    make_model(&b, &c, 42);
    ck_assert_int_eq(ad_checkpoint_save(path, &b, NULL, NULL), AD_OK);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    assert_loads_weights_of(path, &b);
    ad_model_free(&a);
    ad_model_free(&b);
}
END_TEST

START_TEST(test_save_rejects_bad_args) {
    AdModelConfig c = make_cfg("gpt2", 100, 16, 1, 2, 2, 16, 32);
    AdModel m;
    make_model(&m, &c, 1);
    AdTokenizer tok;
    ck_assert_int_eq(ad_tokenizer_init_byte(&tok), AD_OK); /* 260 > 100 */
    const char *path = ad_test_path(ad_test_tmpdir(), "bad_args.h5");
    ck_assert_int_eq(ad_checkpoint_save(path, &m, &tok, NULL), AD_ERR_ARG);
    assert_msg_has("vocab_size");
    AdTrainState st;
    make_train_state(&st, m.n_params + 1, 1, 2);
    ck_assert_int_eq(ad_checkpoint_save(path, &m, NULL, &st), AD_ERR_ARG);
    ck_assert_int_ne(access(path, F_OK), 0);
    free_train_state(&st);
    ad_tokenizer_free(&tok);
    ad_model_free(&m);
}
END_TEST

/* ---- the h5util layer -------------------------------------------------------------- */

START_TEST(test_h5util_tables_and_strings) {
    const char *path = ad_test_path(ad_test_tmpdir(), "util.h5");
    hid_t f, g;
    ck_assert_int_eq(ad_h5_create(path, &f), AD_OK);
    ck_assert_int_eq(ad_h5_group_create(f, "round_000", &g), AD_OK);
    ck_assert_int_eq(ad_h5_table_create(g, "curve", AD_H5_F64, 3, 4), AD_OK);
    ck_assert_int_eq(ad_h5_table_create(g, "ids", AD_H5_I32, 0, 16), AD_OK);
    double rows[10][3];
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 3; j++) rows[i][j] = i * 10 + j + 0.5;
    ck_assert_int_eq(ad_h5_table_append(g, "curve", AD_H5_F64, 3, 3, rows[0]), AD_OK);
    ck_assert_int_eq(ad_h5_table_append(g, "curve", AD_H5_F64, 7, 3, rows[3]), AD_OK);
    ck_assert_int_ne(ad_h5_table_append(g, "curve", AD_H5_F64, 1, 2, rows[0]), AD_OK);
    int32_t ids[5] = {5, -4, 3, -2, 1};
    ck_assert_int_eq(ad_h5_table_append(g, "ids", AD_H5_I32, 5, 0, ids), AD_OK);
    char *big = make_json(200000);
    ck_assert_int_eq(ad_h5_write_string(g, "text", big), AD_OK);
    ck_assert_int_eq(ad_h5_attr_write_i64(g, "n", 7), AD_OK);
    ck_assert_int_eq(ad_h5_attr_write_i64(g, "n", 8), AD_OK); /* replaces */
    ck_assert_int_eq(ad_h5_attr_write_str(g, "who", "caf\xc3\xa9"), AD_OK);
    ck_assert_int_eq(ad_h5_close(g), AD_OK);
    ck_assert_int_eq(ad_h5_close_file(f), AD_OK);

    ck_assert_int_eq(ad_h5_open(path, 0, &f), AD_OK);
    ck_assert_int_eq(ad_h5_group_open(f, "round_000", &g), AD_OK);
    hsize_t nrows;
    ck_assert_int_eq(ad_h5_table_rows(g, "curve", &nrows), AD_OK);
    ck_assert_uint_eq(nrows, 10);
    double back[10][3];
    hsize_t shape[2] = {10, 3};
    ck_assert_int_eq(ad_h5_read_array(g, "curve", AD_H5_F64, 2, shape, back), AD_OK);
    ck_assert(memcmp(back, rows, sizeof rows) == 0);
    int32_t ids2[5];
    hsize_t five = 5;
    ck_assert_int_eq(ad_h5_read_array(g, "ids", AD_H5_I32, 1, &five, ids2), AD_OK);
    ck_assert(memcmp(ids, ids2, sizeof ids) == 0);
    /* reading integers as floats is refused */
    ck_assert_int_eq(ad_h5_read_array(g, "ids", AD_H5_F32, 1, &five, back), AD_ERR_FORMAT);
    char *s = NULL;
    ck_assert_int_eq(ad_h5_read_string(g, "text", 1 << 20, &s), AD_OK);
    ck_assert_str_eq(s, big);
    free(s);
    ck_assert_int_eq(ad_h5_read_string(g, "text", 1000, &s), AD_ERR_FORMAT);
    ck_assert_ptr_null(s);
    assert_msg_has("/round_000/text");
    int64_t n;
    ck_assert_int_eq(ad_h5_attr_read_i64(g, "n", &n), AD_OK);
    ck_assert_int_eq(n, 8);
    ck_assert_int_eq(ad_h5_attr_read_str(g, "who", 64, &s), AD_OK);
    ck_assert_str_eq(s, "caf\xc3\xa9");
    free(s);
    ck_assert_int_eq(ad_h5_attr_read_str(g, "n", 64, &s), AD_ERR_FORMAT); /* not a string */
    ck_assert_int_eq(ad_h5_attr_read_i64(g, "who", &n), AD_ERR_FORMAT);    /* not a number */
    ck_assert_int_eq(ad_h5_attr_read_i64(g, "absent", &n), AD_ERR_FORMAT);
    assert_msg_has("absent");
    assert_msg_has(path);
    ck_assert_int_eq(ad_h5_close(g), AD_OK);
    ck_assert_int_eq(ad_h5_close_file(f), AD_OK);
    free(big);
}
END_TEST

static Suite *checkpoint_suite(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_roundtrip_gpt2_byte);
    tcase_add_test(tc, test_roundtrip_llama_char);
    tcase_add_test(tc, test_roundtrip_v2_switches);
    tcase_add_test(tc, test_roundtrip_spm_scores);
    tcase_add_test(tc, test_roundtrip_gpt2_bpe);
    tcase_add_test(tc, test_weights_only);
    tcase_add_test(tc, test_layout);
    suite_add_tcase(s, tc);
    tc = tcase_create("bad_files");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_not_a_checkpoint);
    tcase_add_test(tc, test_wrong_version);
    tcase_add_test(tc, test_wrong_shape);
    tcase_add_test(tc, test_bad_config_attrs);
    tcase_add_test(tc, test_flipped_byte);
    tcase_add_test(tc, test_bad_gpt2_merges);
    tcase_add_test(tc, test_non_finite_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("failed_saves");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_failed_save_tmp_is_dir);
    tcase_add_test(tc, test_failed_save_disk_full);
    tcase_add_test(tc, test_stale_tmp_and_overwrite);
    tcase_add_test(tc, test_save_rejects_bad_args);
    suite_add_tcase(s, tc);
    tc = tcase_create("h5util");
    tcase_set_timeout(tc, TIMEOUT);
    tcase_add_test(tc, test_h5util_tables_and_strings);
    tcase_add_test(tc, test_float_bits_lossless);
    suite_add_tcase(s, tc);
    return s;
}

/* Removes the files of the scratch directory and the directory itself. */
static void remove_scratch(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(ad_test_path(dir, e->d_name));
    closedir(d);
    rmdir(dir);
}

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the tests' own raw calls probe for absence */
    const char *dir = ad_test_tmpdir();    /* made here, so every forked test shares it */
    int rc = ad_test_run(checkpoint_suite());
    if (rc == 0) remove_scratch(dir);      /* kept for inspection when something failed */
    return rc;
}
