/* test_importers.c: the importers against files this test writes byte by byte (llama2.c,
 * GGUF, llm.c, safetensors + config.json) with every parameter compared to what was
 * written; F16/BF16 decoding against ldexp over every bit pattern; the Hugging Face q/k
 * permutation checked through RoPE attention scores; malformed, truncated and oversized
 * inputs; and, when the shared files are present, stories260K from .bin and .gguf. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/import_internal.h" /* imp_f16_to_f32, imp_bf16_to_f32 */
#include "autodidact/importers.h"
#include "autodidact/model.h"
#include "autodidact/rng.h"
#include "autodidact/tokenizer.h"
#include "testbuf.h"
#include "testutil.h"

#define TIMEOUT 120

/* ---- float encodings written by the test (values are chosen representable) -------- */

/* Half bits of x by frexp; fails the test unless x is exactly a normal half or zero. */
static uint16_t f16_bits(float x) {
    if (x == 0) return signbit(x) ? 0x8000 : 0;
    int e;
    double m = frexp(fabs(x), &e); /* |x| = m 2^e, m in [0.5, 1) */
    int he = e - 1 + 15;
    double man = (m * 2 - 1) * 1024;
    ck_assert_msg(he >= 1 && he <= 30 && man == floor(man), "%g is not a normal half", x);
    return (uint16_t)((x < 0 ? 0x8000 : 0) | he << 10 | (int)man);
}
static uint16_t bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    ck_assert_msg((u & 0xffff) == 0, "%g is not a bfloat16 value", x);
    return (uint16_t)(u >> 16);
}

typedef enum { DT_F32, DT_F16, DT_BF16 } Dt;
static const char *dt_name(Dt d) { return d == DT_F32 ? "F32" : d == DT_F16 ? "F16" : "BF16"; }
static size_t dt_size(Dt d) { return d == DT_F32 ? 4 : 2; }
static void put_floats(Buf *b, const float *x, size_t n, Dt d) {
    for (size_t i = 0; i < n; i++) {
        if (d == DT_F32) put_f32(b, x[i]);
        else if (d == DT_F16) put_u16(b, f16_bits(x[i]));
        else put_u16(b, bf16_bits(x[i]));
    }
}

/* ---- a tiny Llama, in llama2.c's tensor layout ------------------------------------ */

typedef struct {
    int C, F, L, H, Hkv, V, T, hs, kvd;
    float *emb;       /* (V, C) */
    float *rms_att;   /* (L, C) */
    float *wq;        /* (L, C, C) interleaved-pair rows */
    float *wk;        /* (L, kvd, C) */
    float *wv;        /* (L, kvd, C) */
    float *wo;        /* (L, C, C) */
    float *rms_ffn;   /* (L, C) */
    float *w1;        /* (L, F, C) */
    float *w2;        /* (L, C, F) */
    float *w3;        /* (L, F, C) */
    float *rms_final; /* (C) */
    float *wcls;      /* (V, C) */
} Ref;

/* Values k/64 for k in [-128, 128): exact in F32, F16 and BF16. */
static float rand_val(AdRng *r) { return ((int)ad_rng_below(r, 256) - 128) / 64.0f; }

static float *rand_floats(AdRng *r, size_t n) {
    float *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++) x[i] = rand_val(r);
    return x;
}

static void ref_init(Ref *r, int C, int F, int L, int H, int Hkv, int V, int T, uint64_t seed) {
    AdRng rng;
    ad_rng_init(&rng, seed, AD_STREAM_INIT, 0);
    *r = (Ref){.C = C, .F = F, .L = L, .H = H, .Hkv = Hkv, .V = V, .T = T};
    r->hs = C / H;
    r->kvd = Hkv * r->hs;
    size_t c = C, f = F, l = L, kvd = r->kvd;
    r->emb = rand_floats(&rng, V * c);
    r->rms_att = rand_floats(&rng, l * c);
    r->wq = rand_floats(&rng, l * c * c);
    r->wk = rand_floats(&rng, l * kvd * c);
    r->wv = rand_floats(&rng, l * kvd * c);
    r->wo = rand_floats(&rng, l * c * c);
    r->rms_ffn = rand_floats(&rng, l * c);
    r->w1 = rand_floats(&rng, l * f * c);
    r->w2 = rand_floats(&rng, l * c * f);
    r->w3 = rand_floats(&rng, l * f * c);
    r->rms_final = rand_floats(&rng, c);
    r->wcls = rand_floats(&rng, V * c);
}

static void ref_free(Ref *r) {
    float *all[] = {r->emb, r->rms_att, r->wq, r->wk, r->wv, r->wo, r->rms_ffn,
                    r->w1, r->w2, r->w3, r->rms_final, r->wcls};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    memset(r, 0, sizeof *r);
}

/* Asserts got[0..n) == want[0..n) exactly, naming the first mismatch. */
static void same(const float *got, const float *want, size_t n, const char *what, int layer) {
    ck_assert_ptr_nonnull(got);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s (layer %d) element %zu: got %g, want %g", what,
                      layer, i, got[i], want[i]);
}

/* Checks an imported Llama against the reference, tensor by tensor. */
static void check_llama(const AdModel *m, const Ref *r, int tied, int max_seq_len) {
    const AdModelConfig *c = &m->cfg;
    ck_assert_int_eq(c->d_model, r->C);
    ck_assert_int_eq(c->d_ff, r->F);
    ck_assert_int_eq(c->n_layer, r->L);
    ck_assert_int_eq(c->n_head, r->H);
    ck_assert_int_eq(c->n_kv_head, r->Hkv);
    ck_assert_int_eq(c->vocab_size, r->V);
    ck_assert_int_eq(c->max_seq_len, max_seq_len);
    ck_assert_int_eq(c->norm, AD_NORM_RMSNORM);
    ck_assert_int_eq(c->mlp, AD_MLP_SWIGLU);
    ck_assert_int_eq(c->pos, AD_POS_ROPE);
    ck_assert_int_eq(c->bias, 0);
    ck_assert_int_eq(c->tied, tied);
    size_t C = r->C, F = r->F, kvd = r->kvd, QKV = C + 2 * kvd, V = r->V;
    float *const *t = m->params.t;
    same(t[AD_P_WTE], r->emb, V * C, "wte", -1);
    same(t[AD_P_LNFW], r->rms_final, C, "lnf_w", -1);
    if (tied) ck_assert_ptr_null(t[AD_P_LM_HEAD]);
    else same(t[AD_P_LM_HEAD], r->wcls, V * C, "lm_head", -1);
    for (int l = 0; l < r->L; l++) {
        size_t ll = (size_t)l;
        same(t[AD_P_LN1W] + ll * C, r->rms_att + ll * C, C, "ln1_w", l);
        same(t[AD_P_QKVW] + ll * QKV * C, r->wq + ll * C * C, C * C, "qkv_w q rows", l);
        same(t[AD_P_QKVW] + ll * QKV * C + C * C, r->wk + ll * kvd * C, kvd * C, "qkv_w k rows", l);
        same(t[AD_P_QKVW] + ll * QKV * C + (C + kvd) * C, r->wv + ll * kvd * C, kvd * C,
             "qkv_w v rows", l);
        same(t[AD_P_ATTPROJW] + ll * C * C, r->wo + ll * C * C, C * C, "attproj_w", l);
        same(t[AD_P_LN2W] + ll * C, r->rms_ffn + ll * C, C, "ln2_w", l);
        same(t[AD_P_FCW] + ll * 2 * F * C, r->w1 + ll * F * C, F * C, "fc_w w1 rows", l);
        same(t[AD_P_FCW] + ll * 2 * F * C + F * C, r->w3 + ll * F * C, F * C, "fc_w w3 rows", l);
        same(t[AD_P_FCPROJW] + ll * C * F, r->w2 + ll * C * F, C * F, "fcproj_w", l);
    }
    for (int i = 0; i < AD_P_COUNT; i++)
        if (i == AD_P_WPE || i == AD_P_LN1B || (i == AD_P_QKVB && !c->qkv_bias) || i == AD_P_ATTPROJB ||
            i == AD_P_LN2B || i == AD_P_FCB || i == AD_P_FCPROJB || i == AD_P_LNFB)
            ck_assert_msg(m->info[i].size == 0, "tensor %s should be absent", m->info[i].name);
}

/* ---- failure checks ---------------------------------------------------------------- */

/* Imports and expects status `want` with a message holding both fragments (NULL: skip),
 * and nothing left allocated. */
static void expect_fail(const char *path, const AdImportOptions *o, AdStatus want,
                        const char *frag1, const char *frag2) {
    AdModel m;
    AdTokenizer t;
    memset(&m, 0x5a, sizeof m);
    memset(&t, 0x5a, sizeof t);
    ad_clear_error();
    AdStatus st = ad_import_opts(path, o, &m, &t);
    const char *msg = ad_errmsg();
    ck_assert_msg(st == want, "importing %s: got %s (\"%s\"), want %s", path,
                  ad_status_name(st), msg, ad_status_name(want));
    ck_assert_msg(!frag1 || strstr(msg, frag1), "message \"%s\" lacks \"%s\"", msg, frag1);
    ck_assert_msg(!frag2 || strstr(msg, frag2), "message \"%s\" lacks \"%s\"", msg, frag2);
    ck_assert_ptr_null(m.params_mem);
    ck_assert_int_eq((int)m.n_params, 0);
    ck_assert_ptr_null(t.pieces);
    ck_assert_int_eq(t.vocab_size, 0);
}

/* Every proper prefix of a valid file must be refused with a message naming the file
 * (all lengths below 64, then about 300 more spread over the rest). */
static void expect_prefixes_fail(const char *name, const Buf *b, AdImportFormat fmt) {
    size_t step = b->n / 300 + 1;
    for (size_t len = 0; len < b->n; len += len < 64 ? 1 : step) {
        const char *path = write_file(name, b->p, len);
        AdImportOptions o = {.format = fmt};
        AdModel m;
        AdStatus st = ad_import_opts(path, &o, &m, NULL);
        ck_assert_msg(st != AD_OK, "a %zu-byte prefix of a %zu-byte %s file was accepted", len,
                      b->n, ad_import_format_name(fmt));
        ck_assert_msg(strstr(ad_errmsg(), name), "message \"%s\" does not name the file",
                      ad_errmsg());
        ck_assert_ptr_null(m.params_mem);
    }
}

/* ---- F16 / BF16 ------------------------------------------------------------------- */

START_TEST(test_f16_all_patterns) {
    for (uint32_t h = 0; h < 65536; h++) {
        int s = h >> 15, e = (h >> 10) & 31, man = h & 1023;
        float got = imp_f16_to_f32((uint16_t)h);
        if (e == 31 && man) {
            ck_assert_msg(isnan(got), "half 0x%04x should be NaN", h);
            continue;
        }
        double want = e == 31 ? INFINITY : e == 0 ? ldexp(man, -24) : ldexp(1024 + man, e - 25);
        if (s) want = -want;
        ck_assert_msg(got == want && !signbit(got) == !signbit(want),
                      "half 0x%04x: got %.9g, want %.9g", h, got, want);
    }
    /* a few values by hand */
    ck_assert(imp_f16_to_f32(0x3C00) == 1.0f);
    ck_assert(imp_f16_to_f32(0xC000) == -2.0f);
    ck_assert(imp_f16_to_f32(0x7BFF) == 65504.0f);
    ck_assert(imp_f16_to_f32(0x0001) == 5.9604644775390625e-8f);
    ck_assert(imp_f16_to_f32(0x3555) == 0.333251953125f);
}
END_TEST

START_TEST(test_bf16_all_patterns) {
    for (uint32_t h = 0; h < 65536; h++) {
        int s = h >> 15, e = (h >> 7) & 255, man = h & 127;
        float got = imp_bf16_to_f32((uint16_t)h);
        if (e == 255 && man) {
            ck_assert_msg(isnan(got), "bf16 0x%04x should be NaN", h);
            continue;
        }
        double want = e == 255 ? INFINITY : e == 0 ? ldexp(man, -133) : ldexp(128 + man, e - 134);
        if (s) want = -want;
        ck_assert_msg(got == want && !signbit(got) == !signbit(want),
                      "bf16 0x%04x: got %.9g, want %.9g", h, got, want);
    }
    ck_assert(imp_bf16_to_f32(0x3F80) == 1.0f);
    ck_assert(imp_bf16_to_f32(0xC0A0) == -5.0f);
    ck_assert(imp_bf16_to_f32(0x3EAB) == 0.333984375f);
}
END_TEST

/* ---- llama2.c ------------------------------------------------------------------------ */

static void build_llama2c(const Ref *r, int shared, Buf *b) {
    int32_t h[7] = {r->C, r->F, r->L, r->H, r->Hkv, shared ? r->V : -r->V, r->T};
    put(b, h, sizeof h);
    size_t C = r->C, F = r->F, L = r->L, kvd = r->kvd;
    put_floats(b, r->emb, r->V * C, DT_F32);
    put_floats(b, r->rms_att, L * C, DT_F32);
    put_floats(b, r->wq, L * C * C, DT_F32);
    put_floats(b, r->wk, L * kvd * C, DT_F32);
    put_floats(b, r->wv, L * kvd * C, DT_F32);
    put_floats(b, r->wo, L * C * C, DT_F32);
    put_floats(b, r->rms_ffn, L * C, DT_F32);
    put_floats(b, r->w1, L * F * C, DT_F32);
    put_floats(b, r->w2, L * C * F, DT_F32);
    put_floats(b, r->w3, L * F * C, DT_F32);
    put_floats(b, r->rms_final, C, DT_F32);
    for (size_t i = 0; i < (size_t)r->T * r->hs; i++) put_f32(b, 1e30f); /* freq_cis, skipped */
    if (!shared) put_floats(b, r->wcls, r->V * C, DT_F32);
}

START_TEST(test_llama2c_tiny) {
    Ref r;
    ref_init(&r, 8, 12, 2, 2, 1, 11, 6, 1);
    for (int shared = 0; shared <= 1; shared++) {
        Buf b = {0};
        build_llama2c(&r, shared, &b);
        const char *path = write_buf(shared ? "tiny_shared.bin" : "tiny_unshared.bin", &b);
        AdImportFormat fmt;
        ck_assert_int_eq(ad_import_detect(path, &fmt), AD_OK);
        ck_assert_int_eq(fmt, AD_IMPORT_LLAMA2C);
        AdModel m;
        AdTokenizer t;
        ck_assert_msg(ad_import(path, AD_IMPORT_AUTO, NULL, &m, &t) == AD_OK, "%s", ad_errmsg());
        check_llama(&m, &r, shared, 6);
        ck_assert_int_eq(t.vocab_size, 0); /* no tokenizer given, none embedded */
        ck_assert(m.cfg.norm_eps == 1e-5f && m.cfg.rope_theta == 10000.0f);
        ad_model_free(&m);
        /* max_seq_len override (RoPE: any length the model allows) */
        AdImportOptions o = {.format = AD_IMPORT_LLAMA2C, .max_seq_len = 100};
        ck_assert_msg(ad_import_opts(path, &o, &m, NULL) == AD_OK, "%s", ad_errmsg());
        check_llama(&m, &r, shared, 100);
        ad_model_free(&m);
        buf_free(&b);
    }
    ref_free(&r);
}
END_TEST

START_TEST(test_llama2c_malformed) {
    Ref r;
    ref_init(&r, 8, 12, 2, 2, 1, 11, 6, 2);
    Buf b = {0};
    build_llama2c(&r, 1, &b);
    AdImportOptions o = {.format = AD_IMPORT_LLAMA2C};
    /* truncated by one float */
    expect_fail(write_file("trunc.bin", b.p, b.n - 4), &o, AD_ERR_FORMAT, "trunc.bin", "truncated");
    /* one byte too many */
    Buf big = {0};
    put(&big, b.p, b.n);
    put_u8(&big, 0);
    expect_fail(write_buf("long.bin", &big), &o, AD_ERR_FORMAT, "long.bin", "trailing");
    /* absurd dimension */
    Buf x = {0};
    put(&x, b.p, b.n);
    set_u32(&x, 0, 1u << 30);
    expect_fail(write_buf("dim.bin", &x), &o, AD_ERR_FORMAT, "dim.bin", "dim = 1073741824");
    /* header that disagrees with the file length */
    set_u32(&x, 0, 8);
    set_u32(&x, 8, 3);
    expect_fail(write_buf("layers.bin", &x), &o, AD_ERR_FORMAT, "n_layers 3", "implies");
    /* a large but legal header on a small file: refused by size, before any allocation */
    int32_t h7[7] = {4096, 11008, 32, 32, 32, 32000, 2048};
    memcpy(x.p, h7, sizeof h7);
    expect_fail(write_buf("big.bin", &x), &o, AD_ERR_FORMAT, "big.bin", "implies");
    /* heads that do not divide dim */
    int32_t h3[7] = {8, 12, 2, 3, 1, 11, 6};
    memcpy(x.p, h3, sizeof h3);
    expect_fail(write_buf("heads.bin", &x), &o, AD_ERR_FORMAT, "heads.bin", "divisible");
    /* vocab_size 0 and a negative dimension */
    int32_t h0[7] = {8, 12, 2, 2, 1, 0, 6};
    memcpy(x.p, h0, sizeof h0);
    expect_fail(write_buf("v0.bin", &x), &o, AD_ERR_FORMAT, "v0.bin", "vocab_size");
    int32_t hn[7] = {8, -12, 2, 2, 1, 11, 6};
    memcpy(x.p, hn, sizeof hn);
    expect_fail(write_buf("neg.bin", &x), &o, AD_ERR_FORMAT, "hidden_dim = -12", NULL);
    /* a later llama2.c export version */
    set_u32(&x, 0, 0x616b3432);
    set_u32(&x, 4, 1);
    expect_fail(write_buf("ak42.bin", &x), &o, AD_ERR_FORMAT, "ak42.bin", "version 1");
    /* empty file, missing file */
    expect_fail(write_file("empty.bin", "", 0), &o, AD_ERR_FORMAT, "empty.bin", "too short");
    expect_fail(ad_test_path(ad_test_tmpdir(), "absent.bin"), &o, AD_ERR_IO, "absent.bin", NULL);
    /* a non-finite weight */
    memcpy(x.p, b.p, b.n);
    float inf = INFINITY;
    memcpy(x.p + 28 + 4 * 5, &inf, 4);
    expect_fail(write_buf("inf.bin", &x), &o, AD_ERR_FORMAT, "token_embedding_table", "element 5");
    expect_prefixes_fail("prefix.bin", &b, AD_IMPORT_LLAMA2C);
    buf_free(&x);
    buf_free(&big);
    buf_free(&b);
    ref_free(&r);
}
END_TEST

/* ---- GGUF --------------------------------------------------------------------------- */

enum { G_U8 = 0, G_I8, G_U16, G_I16, G_U32, G_I32, G_F32, G_BOOL, G_STR, G_ARR, G_U64, G_I64,
       G_F64 };

static void g_str(Buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void g_key(Buf *b, const char *k, uint32_t type) {
    g_str(b, k);
    put_u32(b, type);
}

/* Vocabulary of the tiny GGUF: U+2581 is sentencepiece's space. */
static const char *const tiny_tokens[11] = {
    "<unk>", "<s>", "</s>", "<0x0A>", "\xe2\x96\x81" "a", "\xe2\x96\x81" "ab", "b",
    "\xe2\x96\x81\xe2\x96\x81" "c", "x\xe2\x96\x81", "\xe2\x96\x81", "xyz"};
static const char *const tiny_pieces[11] = {"<unk>", "<s>", "</s>", "<0x0A>", " a", " ab", "b",
                                            "  c", "x ", " ", "xyz"};

typedef struct {
    uint32_t alignment;       /* 0: no general.alignment key (32) */
    int out_mode;             /* 0: no output.weight, 1: a copy of token_embd, 2: wcls */
    int half_types;           /* ffn_down F16, attn_k BF16, token_embd F16 */
    const char *bad_type;     /* this tensor gets type Q2_K (not read) */
    const char *omit;         /* this tensor is left out */
    int64_t embedding_length; /* 0: r->C */
    int64_t head_count_kv;    /* 0: r->Hkv */
    const char *arch;         /* NULL: "llama" */
} GgufOpt;

typedef struct {
    char name[64];
    const float *x;
    int64_t ne0, ne1; /* ne1 = 0: a vector */
    Dt dt;
} GT;

static void build_gguf(const Ref *r, const GgufOpt *o, Buf *b) {
    GT ts[64];
    int n = 0;
    size_t C = r->C, F = r->F, kvd = r->kvd;
    Dt half16 = o->half_types ? DT_F16 : DT_F32, halfb = o->half_types ? DT_BF16 : DT_F32;
    ts[n++] = (GT){"token_embd.weight", r->emb, r->C, r->V, half16};
    ts[n++] = (GT){"output_norm.weight", r->rms_final, r->C, 0, DT_F32};
    if (o->out_mode) ts[n++] = (GT){"output.weight", o->out_mode == 1 ? r->emb : r->wcls, r->C, r->V,
                                    o->out_mode == 1 ? half16 : DT_F32};
    for (int l = 0; l < r->L; l++) {
        size_t ll = (size_t)l;
        GT lt[9] = {
            {"attn_norm", r->rms_att + ll * C, r->C, 0, DT_F32},
            {"attn_q", r->wq + ll * C * C, r->C, r->C, DT_F32},
            {"attn_k", r->wk + ll * kvd * C, r->C, r->kvd, halfb},
            {"attn_v", r->wv + ll * kvd * C, r->C, r->kvd, DT_F32},
            {"attn_output", r->wo + ll * C * C, r->C, r->C, DT_F32},
            {"ffn_norm", r->rms_ffn + ll * C, r->C, 0, DT_F32},
            {"ffn_gate", r->w1 + ll * F * C, r->C, r->F, DT_F32},
            {"ffn_up", r->w3 + ll * F * C, r->C, r->F, DT_F32},
            {"ffn_down", r->w2 + ll * C * F, r->F, r->C, half16},
        };
        for (int k = 0; k < 9; k++) {
            ts[n] = lt[k];
            snprintf(ts[n].name, sizeof ts[n].name, "blk.%d.%.40s.weight", l, lt[k].name);
            n++;
        }
    }
    int keep = 0;
    for (int i = 0; i < n; i++)
        if (!o->omit || strcmp(ts[i].name, o->omit) != 0) ts[keep++] = ts[i];
    n = keep;

    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, (uint64_t)n);
    size_t n_kv_at = b->n;
    put_u64(b, 0);
    uint64_t n_kv = 0;
    g_key(b, "general.architecture", G_STR), g_str(b, o->arch ? o->arch : "llama"), n_kv++;
    if (o->alignment) g_key(b, "general.alignment", G_U32), put_u32(b, o->alignment), n_kv++;
    g_key(b, "llama.context_length", G_U32), put_u32(b, 4096), n_kv++;
    g_key(b, "llama.embedding_length", G_U64),
        put_u64(b, (uint64_t)(o->embedding_length ? o->embedding_length : r->C)), n_kv++;
    g_key(b, "llama.feed_forward_length", G_I32), put_i32(b, r->F), n_kv++;
    g_key(b, "llama.block_count", G_U16), put_u16(b, (uint16_t)r->L), n_kv++;
    g_key(b, "llama.attention.head_count", G_U8), put_u8(b, (uint8_t)r->H), n_kv++;
    g_key(b, "llama.attention.head_count_kv", G_I64),
        put_u64(b, (uint64_t)(o->head_count_kv ? o->head_count_kv : r->Hkv)), n_kv++;
    g_key(b, "llama.attention.layer_norm_rms_epsilon", G_F32), put_f32(b, 1e-6f), n_kv++;
    g_key(b, "llama.rope.freq_base", G_F64), put_f64(b, 500000.0), n_kv++;
    g_key(b, "llama.rope.dimension_count", G_U32), put_u32(b, (uint32_t)r->hs), n_kv++;
    /* values of every other type, which the reader must step over */
    g_key(b, "test.i8", G_I8), put_u8(b, 0xff), n_kv++;
    g_key(b, "test.i16", G_I16), put_u16(b, 0xffff), n_kv++;
    g_key(b, "test.bool", G_BOOL), put_u8(b, 1), n_kv++;
    g_key(b, "test.nested", G_ARR), put_u32(b, G_ARR), put_u64(b, 2), n_kv++;
    put_u32(b, G_U16), put_u64(b, 3), put_u16(b, 1), put_u16(b, 2), put_u16(b, 3);
    put_u32(b, G_STR), put_u64(b, 2), g_str(b, "p"), g_str(b, "");
    g_key(b, "tokenizer.ggml.model", G_STR), g_str(b, "llama"), n_kv++;
    g_key(b, "tokenizer.ggml.tokens", G_ARR), put_u32(b, G_STR), put_u64(b, 11), n_kv++;
    for (int i = 0; i < 11; i++) g_str(b, tiny_tokens[i]);
    g_key(b, "tokenizer.ggml.scores", G_ARR), put_u32(b, G_F32), put_u64(b, 11), n_kv++;
    for (int i = 0; i < 11; i++) put_f32(b, -0.25f * i);
    g_key(b, "tokenizer.ggml.token_type", G_ARR), put_u32(b, G_I32), put_u64(b, 11), n_kv++;
    for (int i = 0; i < 11; i++) put_i32(b, i < 3 ? 3 : 1);
    g_key(b, "tokenizer.ggml.bos_token_id", G_U32), put_u32(b, 1), n_kv++;
    g_key(b, "tokenizer.ggml.eos_token_id", G_U32), put_u32(b, 2), n_kv++;
    g_key(b, "tokenizer.ggml.padding_token_id", G_U32), put_u32(b, 0xffffffffu), n_kv++;
    set_u64(b, n_kv_at, n_kv);

    /* tensor infos in reverse order; data in forward order */
    size_t align = o->alignment ? o->alignment : 32, off = 0, offs[64];
    for (int i = 0; i < n; i++) {
        offs[i] = off;
        size_t bytes = (size_t)ts[i].ne0 * (ts[i].ne1 ? ts[i].ne1 : 1) * dt_size(ts[i].dt);
        off = (off + bytes + align - 1) / align * align;
    }
    for (int i = n - 1; i >= 0; i--) {
        g_str(b, ts[i].name);
        put_u32(b, ts[i].ne1 ? 2 : 1);
        put_u64(b, (uint64_t)ts[i].ne0);
        if (ts[i].ne1) put_u64(b, (uint64_t)ts[i].ne1);
        uint32_t type = ts[i].dt == DT_F32 ? 0 : ts[i].dt == DT_F16 ? 1 : 30;
        if (o->bad_type && strcmp(ts[i].name, o->bad_type) == 0) type = 10;
        put_u32(b, type);
        put_u64(b, offs[i]);
    }
    put_pad(b, align, 0);
    size_t data = b->n;
    for (int i = 0; i < n; i++) {
        put_pad(b, align, 0);
        ck_assert_uint_eq(b->n - data, offs[i]);
        put_floats(b, ts[i].x, (size_t)ts[i].ne0 * (ts[i].ne1 ? ts[i].ne1 : 1), ts[i].dt);
    }
}

START_TEST(test_gguf_tiny) {
    Ref r;
    ref_init(&r, 16, 12, 2, 4, 2, 11, 6, 3);
    struct { GgufOpt o; int tied; } cases[] = {
        {{.out_mode = 0}, 1},
        {{.out_mode = 1, .alignment = 64}, 1}, /* byte copy of the embedding: tied */
        {{.out_mode = 2, .alignment = 8}, 0},
        {{.out_mode = 2, .half_types = 1}, 0},
        {{.out_mode = 1, .half_types = 1}, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Buf b = {0};
        build_gguf(&r, &cases[k].o, &b);
        const char *path = write_buf("tiny.gguf", &b);
        AdImportFormat fmt;
        ck_assert_int_eq(ad_import_detect(path, &fmt), AD_OK);
        ck_assert_int_eq(fmt, AD_IMPORT_GGUF);
        AdModel m;
        AdTokenizer t;
        AdImportOptions o = {.max_seq_len = 6};
        ck_assert_msg(ad_import_opts(path, &o, &m, &t) == AD_OK, "case %zu: %s", k, ad_errmsg());
        check_llama(&m, &r, cases[k].tied, 6);
        ck_assert(m.cfg.norm_eps == 1e-6f);
        ck_assert(m.cfg.rope_theta == 500000.0f);
        /* vocabulary: U+2581 -> ' ', scores, special ids */
        ck_assert_int_eq(t.kind, AD_TOK_SPM);
        ck_assert_int_eq(t.vocab_size, 11);
        for (int i = 0; i < 11; i++) {
            ck_assert_int_eq(t.piece_len[i], (int)strlen(tiny_pieces[i]));
            ck_assert_msg(memcmp(t.pieces[i], tiny_pieces[i], strlen(tiny_pieces[i])) == 0,
                          "piece %d is \"%s\", want \"%s\"", i, t.pieces[i], tiny_pieces[i]);
            ck_assert(t.scores[i] == -0.25f * i);
        }
        ck_assert_int_eq(t.bos_id, 1);
        ck_assert_int_eq(t.eos_id, 2);
        ck_assert_int_eq(t.pad_id, -1);
        ad_tokenizer_free(&t);
        ad_model_free(&m);
        /* without the override the file's context length is kept */
        ck_assert_msg(ad_import(path, AD_IMPORT_GGUF, NULL, &m, NULL) == AD_OK, "%s", ad_errmsg());
        ck_assert_int_eq(m.cfg.max_seq_len, 4096);
        ad_model_free(&m);
        buf_free(&b);
    }
    ref_free(&r);
}
END_TEST

START_TEST(test_gguf_malformed) {
    Ref r;
    ref_init(&r, 16, 12, 2, 4, 2, 11, 6, 4);
    AdImportOptions o = {.format = AD_IMPORT_GGUF};
    Buf b = {0};
    GgufOpt base = {.out_mode = 2};
    build_gguf(&r, &base, &b);

    Buf x = {0};
    put(&x, b.p, b.n);
    set_u64(&x, 24, (uint64_t)1 << 40); /* length of the first key */
    expect_fail(write_buf("strlen.gguf", &x), &o, AD_ERR_FORMAT, "strlen.gguf",
                "beyond the end of the file");
    memcpy(x.p, b.p, b.n);
    set_u64(&x, 24, b.n - 30); /* a key length that just overruns */
    expect_fail(write_buf("strlen2.gguf", &x), &o, AD_ERR_FORMAT, "string length", NULL);
    memcpy(x.p, b.p, b.n);
    set_u64(&x, 8, (uint64_t)1 << 60);
    expect_fail(write_buf("ntensors.gguf", &x), &o, AD_ERR_FORMAT, "tensor count", "cannot fit");
    memcpy(x.p, b.p, b.n);
    set_u64(&x, 16, (uint64_t)1 << 62);
    expect_fail(write_buf("nkv.gguf", &x), &o, AD_ERR_FORMAT, "metadata count", "cannot fit");
    memcpy(x.p, b.p, b.n);
    set_u32(&x, 24 + 8 + strlen("general.architecture"), 99);
    expect_fail(write_buf("kvtype.gguf", &x), &o, AD_ERR_FORMAT, "general.architecture",
                "unknown value type 99");
    memcpy(x.p, b.p, b.n);
    set_u32(&x, 4, 1);
    expect_fail(write_buf("v1.gguf", &x), &o, AD_ERR_FORMAT, "version 1", NULL);
    memcpy(x.p, b.p, b.n);
    memcpy(x.p, "GGUX", 4);
    expect_fail(write_buf("magic.gguf", &x), &o, AD_ERR_FORMAT, "no GGUF magic", NULL);
    /* name-based detection of a file without magic */
    static const unsigned char zeros[64];
    expect_fail(write_file("zeros.gguf", zeros, 64), NULL, AD_ERR_FORMAT, "zeros.gguf",
                "no GGUF magic");

    struct { GgufOpt o; const char *name, *f1, *f2; } bad[] = {
        {{.out_mode = 2, .bad_type = "blk.0.attn_q.weight"}, "qtype.gguf", "blk.0.attn_q.weight",
         "has type Q2_K"},
        {{.out_mode = 2, .omit = "blk.1.ffn_up.weight"}, "omit.gguf",
         "tensor blk.1.ffn_up.weight is missing", NULL},
        {{.out_mode = 2, .omit = "token_embd.weight"}, "omit_emb.gguf", "token_embd.weight",
         "missing"},
        {{.out_mode = 2, .embedding_length = (int64_t)1 << 30}, "dim.gguf",
         "llama.embedding_length = 1073741824", NULL},
        {{.out_mode = 2, .embedding_length = 4096}, "dim2.gguf", "token_embd.weight has shape",
         NULL},
        {{.out_mode = 2, .head_count_kv = 4}, "kv.gguf", "blk.0.attn_k.weight has shape", NULL},
        {{.out_mode = 2, .arch = "gpt2"}, "arch.gguf", "general.architecture = \"gpt2\"", NULL},
        {{.out_mode = 2, .alignment = 48}, "align.gguf", "general.alignment = 48", NULL},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        Buf y = {0};
        build_gguf(&r, &bad[k].o, &y);
        expect_fail(write_buf(bad[k].name, &y), &o, AD_ERR_FORMAT, bad[k].f1, bad[k].f2);
        buf_free(&y);
    }
    expect_prefixes_fail("prefix.gguf", &b, AD_IMPORT_GGUF);
    buf_free(&x);
    buf_free(&b);
    ref_free(&r);
}
END_TEST

/* ---- llm.c -------------------------------------------------------------------------- */

typedef struct {
    int maxT, V, Vp, L, H, C;
    float *wte, *wpe, *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb,
        *fcprojw, *fcprojb, *lnfw, *lnfb;
} Gpt;

static void gpt_init(Gpt *g, uint64_t seed) {
    AdRng rng;
    ad_rng_init(&rng, seed, AD_STREAM_INIT, 1);
    *g = (Gpt){.maxT = 5, .V = 10, .Vp = 16, .L = 2, .H = 2, .C = 8};
    size_t C = g->C, L = g->L;
    g->wte = rand_floats(&rng, g->Vp * C);
    for (size_t i = g->V * C; i < g->Vp * C; i++) g->wte[i] = 768.0f; /* padding rows */
    g->wpe = rand_floats(&rng, g->maxT * C);
    g->ln1w = rand_floats(&rng, L * C), g->ln1b = rand_floats(&rng, L * C);
    g->qkvw = rand_floats(&rng, L * 3 * C * C), g->qkvb = rand_floats(&rng, L * 3 * C);
    g->attprojw = rand_floats(&rng, L * C * C), g->attprojb = rand_floats(&rng, L * C);
    g->ln2w = rand_floats(&rng, L * C), g->ln2b = rand_floats(&rng, L * C);
    g->fcw = rand_floats(&rng, L * 4 * C * C), g->fcb = rand_floats(&rng, L * 4 * C);
    g->fcprojw = rand_floats(&rng, L * C * 4 * C), g->fcprojb = rand_floats(&rng, L * C);
    g->lnfw = rand_floats(&rng, C), g->lnfb = rand_floats(&rng, C);
}

#define GPT_TENSORS(g)                                                                        \
    const struct { float *x; size_t n; int id; const char *name; } tensors[] = {             \
        {(g)->wte, (size_t)(g)->Vp * C, AD_P_WTE, "wte"},                                    \
        {(g)->wpe, (size_t)(g)->maxT * C, AD_P_WPE, "wpe"},                                  \
        {(g)->ln1w, L * C, AD_P_LN1W, "ln1w"},           {(g)->ln1b, L * C, AD_P_LN1B, "ln1b"}, \
        {(g)->qkvw, L * 3 * C * C, AD_P_QKVW, "qkvw"},   {(g)->qkvb, L * 3 * C, AD_P_QKVB, "qkvb"}, \
        {(g)->attprojw, L * C * C, AD_P_ATTPROJW, "attprojw"},                                \
        {(g)->attprojb, L * C, AD_P_ATTPROJB, "attprojb"},                                    \
        {(g)->ln2w, L * C, AD_P_LN2W, "ln2w"},           {(g)->ln2b, L * C, AD_P_LN2B, "ln2b"}, \
        {(g)->fcw, L * 4 * C * C, AD_P_FCW, "fcw"},      {(g)->fcb, L * 4 * C, AD_P_FCB, "fcb"}, \
        {(g)->fcprojw, L * 4 * C * C, AD_P_FCPROJW, "fcprojw"},                               \
        {(g)->fcprojb, L * C, AD_P_FCPROJB, "fcprojb"},                                       \
        {(g)->lnfw, C, AD_P_LNFW, "lnfw"},               {(g)->lnfb, C, AD_P_LNFB, "lnfb"},   \
    }

static void gpt_free(Gpt *g) {
    size_t C = g->C, L = g->L;
    GPT_TENSORS(g);
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) free(tensors[i].x);
}

static void build_llmc(const Gpt *g, int version, Buf *b) {
    int32_t h[256] = {20240326, version, g->maxT, g->V, g->L, g->H, g->C, g->Vp};
    put(b, h, sizeof h);
    size_t C = g->C, L = g->L;
    GPT_TENSORS(g);
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++)
        put_floats(b, tensors[i].x, tensors[i].n, version == 5 ? DT_BF16 : DT_F32);
}

START_TEST(test_llmc_tiny) {
    Gpt g;
    gpt_init(&g, 5);
    size_t C = g.C, L = g.L;
    GPT_TENSORS(&g);
    for (int version = 3; version <= 5; version += 2)
        for (int maxT = 0; maxT <= 3; maxT += 3) {
            Buf b = {0};
            build_llmc(&g, version, &b);
            const char *path = write_buf("gpt2_tiny.bin", &b);
            AdImportFormat fmt;
            ck_assert_int_eq(ad_import_detect(path, &fmt), AD_OK);
            ck_assert_int_eq(fmt, AD_IMPORT_LLMC);
            AdModel m;
            AdImportOptions o = {.max_seq_len = maxT};
            ck_assert_msg(ad_import_opts(path, &o, &m, NULL) == AD_OK, "%s", ad_errmsg());
            const AdModelConfig *c = &m.cfg;
            ck_assert_int_eq(c->vocab_size, g.V); /* padding rows dropped */
            ck_assert_int_eq(c->max_seq_len, maxT ? maxT : g.maxT);
            ck_assert_int_eq(c->n_layer, g.L);
            ck_assert_int_eq(c->n_head, g.H);
            ck_assert_int_eq(c->n_kv_head, g.H);
            ck_assert_int_eq(c->d_model, g.C);
            ck_assert_int_eq(c->d_ff, 4 * g.C);
            ck_assert(c->norm == AD_NORM_LAYERNORM && c->mlp == AD_MLP_GELU &&
                      c->pos == AD_POS_LEARNED && c->bias == 1 && c->tied == 1);
            for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) {
                size_t n = tensors[i].n;
                if (tensors[i].id == AD_P_WTE) n = (size_t)g.V * C;
                if (tensors[i].id == AD_P_WPE) n = (size_t)c->max_seq_len * C;
                ck_assert_uint_eq(m.info[tensors[i].id].size, n);
                same(m.params.t[tensors[i].id], tensors[i].x, n, tensors[i].name, -1);
            }
            ck_assert_ptr_null(m.params.t[AD_P_LM_HEAD]);
            for (size_t j = 0; j < m.n_params; j++) ck_assert(m.params_mem[j] != 768.0f);
            ad_model_free(&m);
            buf_free(&b);
        }
    gpt_free(&g);
}
END_TEST

START_TEST(test_llmc_malformed) {
    Gpt g;
    gpt_init(&g, 6);
    Buf b = {0};
    build_llmc(&g, 3, &b);
    AdImportOptions o = {.format = AD_IMPORT_LLMC};
    Buf x = {0};
    put(&x, b.p, b.n);
    set_u32(&x, 4, 4);
    expect_fail(write_buf("ver.bin", &x), &o, AD_ERR_FORMAT, "ver.bin", "version 4");
    memcpy(x.p, b.p, b.n);
    set_u32(&x, 28, 9); /* padded vocab below vocab */
    expect_fail(write_buf("vp.bin", &x), &o, AD_ERR_FORMAT, "padded_vocab_size = 9", NULL);
    memcpy(x.p, b.p, b.n);
    set_u32(&x, 24, 1u << 30);
    expect_fail(write_buf("chan.bin", &x), &o, AD_ERR_FORMAT, "channels = 1073741824", NULL);
    memcpy(x.p, b.p, b.n);
    set_u32(&x, 24, 4096); /* legal but far larger than the file */
    set_u32(&x, 16, 48);
    expect_fail(write_buf("large.bin", &x), &o, AD_ERR_FORMAT, "implies", NULL);
    expect_fail(write_file("short.bin", b.p, b.n - 2), &o, AD_ERR_FORMAT, "short.bin", "truncated");
    AdImportOptions too_long = {.format = AD_IMPORT_LLMC, .max_seq_len = g.maxT + 1};
    expect_fail(write_buf("ok.bin", &b), &too_long, AD_ERR_ARG, "learned positions", NULL);
    expect_prefixes_fail("prefix_llmc.bin", &b, AD_IMPORT_LLMC);
    buf_free(&x);
    buf_free(&b);
    gpt_free(&g);
}
END_TEST

/* llm.c's GPT-2 tokenizer file: 256 int32 header, then uint8 length + bytes per token. */
START_TEST(test_llmc_tokenizer) {
    Gpt g;
    gpt_init(&g, 7);
    Buf b = {0};
    build_llmc(&g, 3, &b);
    const char *model = write_buf("gpt2_tok_model.bin", &b);
    const char *toks[10] = {"a", "b", "c", "!", "\xc4\xa0the", "ab", "x", "yz", "\n",
                            "<|endoftext|>"};
    Buf t = {0};
    int32_t h[256] = {20240328, 2, 10, 9};
    put(&t, h, sizeof h);
    for (int i = 0; i < 10; i++) put_u8(&t, (uint8_t)strlen(toks[i])), put(&t, toks[i], strlen(toks[i]));
    const char *tokpath = write_buf("gpt2_tokenizer.bin", &t);
    AdModel m;
    AdTokenizer tok;
    ck_assert_msg(ad_import(model, AD_IMPORT_AUTO, tokpath, &m, &tok) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(tok.kind, AD_TOK_GPT2);
    ck_assert_int_eq(tok.vocab_size, 10);
    ck_assert_int_eq(tok.eos_id, 9);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(tok.piece_len[i], (int)strlen(toks[i]));
        ck_assert(memcmp(tok.pieces[i], toks[i], strlen(toks[i])) == 0);
    }
    ad_tokenizer_free(&tok);
    ad_model_free(&m);
    /* more tokens than the model has rows */
    set_u32(&t, 8, 11);
    AdImportOptions o = {.tokenizer_path = write_buf("gpt2_tok_big.bin", &t)};
    expect_fail(model, &o, AD_ERR_FORMAT, "gpt2_tok_big.bin", "vocab_size = 11");
    /* truncated */
    set_u32(&t, 8, 10);
    o.tokenizer_path = write_file("gpt2_tok_short.bin", t.p, t.n - 3);
    expect_fail(model, &o, AD_ERR_FORMAT, "gpt2_tok_short.bin", "token 9");
    buf_free(&t);
    buf_free(&b);
    gpt_free(&g);
}
END_TEST

/* ---- safetensors ---------------------------------------------------------------------- */


typedef struct {
    int mixed;             /* embed F16, q/k BF16, down F16, others F32 */
    int lm_head;           /* 0: absent, 1: wcls, 2: a copy of embed */
    int tie_flag;
    const char *bad_dtype; /* this tensor is declared I8 */
    const char *omit;
    int bad_offsets;       /* the last tensor's end points past the data */
    const char *config_extra; /* appended to config.json's object */
    int no_config;
    const char *model_type;   /* NULL: llama; "mistral", "qwen2" (and their class) */
    const float *qkv_bias;    /* (L, C + 2 kvd) [q | k | v] biases to write (qwen2) */
} StOpt;

typedef struct {
    char name[96];
    const float *x;
    float *owned;
    int64_t rows, cols;
    Dt dt;
} STT;

static void build_safetensors(const Ref *r, const StOpt *o, const char *dir_name, Buf *b,
                              const char **model_path) {
    STT ts[64];
    int n = 0;
    size_t C = r->C, F = r->F, kvd = r->kvd;
    Dt e16 = o->mixed ? DT_F16 : DT_F32, qb = o->mixed ? DT_BF16 : DT_F32;
    ts[n++] = (STT){"model.embed_tokens.weight", r->emb, NULL, r->V, r->C, e16};
    if (o->lm_head)
        ts[n++] = (STT){"lm_head.weight", o->lm_head == 1 ? r->wcls : r->emb, NULL, r->V, r->C,
                        o->lm_head == 1 ? DT_F32 : e16};
    ts[n++] = (STT){"model.norm.weight", r->rms_final, NULL, r->C, 0, DT_F32};
    for (int l = 0; l < r->L; l++) {
        size_t ll = (size_t)l;
        float *q = hf_permute(r->wq + ll * C * C, r->H, r->hs, r->C);
        float *k = hf_permute(r->wk + ll * kvd * C, r->Hkv, r->hs, r->C);
        STT lt[9] = {
            {"input_layernorm.weight", r->rms_att + ll * C, NULL, r->C, 0, DT_F32},
            {"self_attn.q_proj.weight", q, q, r->C, r->C, qb},
            {"self_attn.k_proj.weight", k, k, r->kvd, r->C, qb},
            {"self_attn.v_proj.weight", r->wv + ll * kvd * C, NULL, r->kvd, r->C, DT_F32},
            {"self_attn.o_proj.weight", r->wo + ll * C * C, NULL, r->C, r->C, DT_F32},
            {"post_attention_layernorm.weight", r->rms_ffn + ll * C, NULL, r->C, 0, DT_F32},
            {"mlp.gate_proj.weight", r->w1 + ll * F * C, NULL, r->F, r->C, DT_F32},
            {"mlp.up_proj.weight", r->w3 + ll * F * C, NULL, r->F, r->C, DT_F32},
            {"mlp.down_proj.weight", r->w2 + ll * C * F, NULL, r->C, r->F, e16},
        };
        for (int j = 0; j < 9; j++) {
            ts[n] = lt[j];
            snprintf(ts[n].name, sizeof ts[n].name, "model.layers.%d.%.60s", l, lt[j].name);
            n++;
        }
        if (o->qkv_bias) { /* q, k biases in rotate-half order, as their weights' rows */
            const float *bl = o->qkv_bias + ll * (C + 2 * kvd);
            float *qb = hf_permute(bl, r->H, r->hs, 1), *kb = hf_permute(bl + C, r->Hkv, r->hs, 1);
            STT bt[3] = {{"self_attn.q_proj.bias", qb, qb, r->C, 0, DT_F32},
                         {"self_attn.k_proj.bias", kb, kb, r->kvd, 0, DT_F32},
                         {"self_attn.v_proj.bias", bl + C + kvd, NULL, r->kvd, 0, DT_F32}};
            for (int j = 0; j < 3; j++) {
                ts[n] = bt[j];
                snprintf(ts[n].name, sizeof ts[n].name, "model.layers.%d.%.60s", l, bt[j].name);
                n++;
            }
        }
    }
    /* header JSON, data offsets in writing order */
    char *json = malloc(1 << 16);
    ck_assert_ptr_nonnull(json);
    size_t jn = (size_t)snprintf(json, 1 << 16, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    int written = 0;
    for (int i = 0; i < n; i++) {
        if (o->omit && strcmp(ts[i].name, o->omit) == 0) continue;
        size_t bytes = (size_t)ts[i].rows * (ts[i].cols ? ts[i].cols : 1) * dt_size(ts[i].dt);
        const char *dtype = o->bad_dtype && strcmp(ts[i].name, o->bad_dtype) == 0
                                ? "I8" : dt_name(ts[i].dt);
        char shape[64];
        if (ts[i].cols) snprintf(shape, sizeof shape, "%lld,%lld", (long long)ts[i].rows,
                                 (long long)ts[i].cols);
        else snprintf(shape, sizeof shape, "%lld", (long long)ts[i].rows);
        size_t end = off + bytes + (o->bad_offsets && i == n - 1 ? 4 : 0);
        jn += (size_t)snprintf(json + jn, (1 << 16) - jn,
                               ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%zu,%zu]}",
                               ts[i].name, dtype, shape, off, end);
        off += bytes;
        written++;
    }
    jn += (size_t)snprintf(json + jn, (1 << 16) - jn, "}");
    while (jn % 8) json[jn++] = ' ';
    put_u64(b, jn);
    put(b, json, jn);
    for (int i = 0; i < n; i++) {
        if (o->omit && strcmp(ts[i].name, o->omit) == 0) continue;
        put_floats(b, ts[i].x, (size_t)ts[i].rows * (ts[i].cols ? ts[i].cols : 1), ts[i].dt);
        free(ts[i].owned);
    }
    for (int i = 0; i < n; i++)
        if (o->omit && strcmp(ts[i].name, o->omit) == 0) free(ts[i].owned);
    free(json);

    /* the directory holds model.safetensors and config.json */
    const char *dir = ad_test_path(ad_test_tmpdir(), dir_name);
    ck_assert_msg(mkdir(dir, 0755) == 0 || errno == EEXIST, "cannot create %s", dir);
    static char mpath[8][4096];
    static int slot = 0;
    char *mp = mpath[slot++ & 7];
    snprintf(mp, 4096, "%s/model.safetensors", dir);
    FILE *f = fopen(mp, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert(fwrite(b->p, 1, b->n, f) == b->n);
    fclose(f);
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    remove(cpath);
    if (!o->no_config) {
        f = fopen(cpath, "w");
        ck_assert_ptr_nonnull(f);
        const char *mt = o->model_type ? o->model_type : "llama";
        const char *cls = strcmp(mt, "qwen2") == 0     ? "Qwen2ForCausalLM"
                          : strcmp(mt, "mistral") == 0 ? "MistralForCausalLM"
                                                       : "LlamaForCausalLM";
        fprintf(f, "{\"architectures\": [\"%s\"], \"model_type\": \"%s\", "
                   "\"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d, "
                   "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d, "
                   "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"hidden_act\": \"silu\", "
                   "\"max_position_embeddings\": %d, \"tie_word_embeddings\": %s, "
                   "\"torch_dtype\": \"float32\"%s}\n",
                cls, mt, r->C, r->F, r->L, r->H, r->Hkv, r->V, r->T,
                o->tie_flag ? "true" : "false", o->config_extra ? o->config_extra : "");
        fclose(f);
    }
    *model_path = mp;
    (void)written;
}

START_TEST(test_safetensors_tiny) {
    Ref r;
    ref_init(&r, 16, 12, 2, 4, 2, 11, 6, 8);
    struct { StOpt o; int tied; } cases[] = {
        {{.lm_head = 1}, 0},
        {{.lm_head = 0}, 1},
        {{.lm_head = 2, .mixed = 1}, 1},  /* byte copy of the embedding */
        {{.lm_head = 1, .tie_flag = 1}, 1}, /* HF ignores lm_head when tied */
        {{.lm_head = 1, .mixed = 1}, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Buf b = {0};
        const char *path;
        build_safetensors(&r, &cases[k].o, "hf", &b, &path);
        AdImportFormat fmt;
        ck_assert_int_eq(ad_import_detect(path, &fmt), AD_OK);
        ck_assert_int_eq(fmt, AD_IMPORT_SAFETENSORS);
        AdModel m;
        AdTokenizer t;
        ck_assert_msg(ad_import(path, AD_IMPORT_AUTO, NULL, &m, &t) == AD_OK, "case %zu: %s", k,
                      ad_errmsg());
        check_llama(&m, &r, cases[k].tied, 6);
        ck_assert(m.cfg.norm_eps == 1e-5f && m.cfg.rope_theta == 10000.0f);
        ck_assert_int_eq(t.vocab_size, 0);
        ad_model_free(&m);
        buf_free(&b);
    }
    /* config.json given explicitly, from elsewhere */
    Buf b = {0};
    const char *path;
    StOpt so = {.lm_head = 1};
    build_safetensors(&r, &so, "hf2", &b, &path);
    char moved[4200];
    snprintf(moved, sizeof moved, "%s", ad_test_path(ad_test_tmpdir(), "moved_config.json"));
    char orig[4200];
    snprintf(orig, sizeof orig, "%s", path);
    strcpy(strrchr(orig, '/') + 1, "config.json");
    ck_assert_int_eq(rename(orig, moved), 0);
    AdImportOptions o = {.config_path = moved};
    AdModel m;
    ck_assert_msg(ad_import_opts(path, &o, &m, NULL) == AD_OK, "%s", ad_errmsg());
    check_llama(&m, &r, 0, 6);
    ad_model_free(&m);
    buf_free(&b);
    ref_free(&r);
}
END_TEST

/* Mistral (sliding_window), Qwen2 (q/k/v biases, its unused sliding_window ignored) and
 * Llama 3 (rope_scaling llama3) from config.json: the switches set, the weights and
 * biases in place (q/k biases permuted back like their rows); refusals named. */
START_TEST(test_safetensors_families) {
    Ref r;
    ref_init(&r, 16, 12, 2, 4, 2, 11, 6, 8);
    size_t QKV = (size_t)r.C + 2 * (size_t)r.kvd;
    float *bias = malloc((size_t)r.L * QKV * sizeof *bias);
    for (size_t i = 0; i < (size_t)r.L * QKV; i++) bias[i] = 0.01f * (float)i - 0.3f;
    Buf b = {0};
    const char *path;
    AdModel m;
    StOpt mis = {.lm_head = 1, .model_type = "mistral", .config_extra = ", \"sliding_window\": 3"};
    build_safetensors(&r, &mis, "hf_mistral", &b, &path);
    ck_assert_msg(ad_import(path, AD_IMPORT_AUTO, NULL, &m, NULL) == AD_OK, "%s", ad_errmsg());
    check_llama(&m, &r, 0, 6);
    ck_assert_int_eq(m.cfg.sliding_window, 3);
    ck_assert_int_eq(m.cfg.qkv_bias, 0);
    ad_model_free(&m);
    buf_free(&b);

    StOpt qw = {.lm_head = 1, .model_type = "qwen2", .qkv_bias = bias,
                .config_extra = ", \"use_sliding_window\": false, \"sliding_window\": 4096"};
    build_safetensors(&r, &qw, "hf_qwen2", &b, &path);
    ck_assert_msg(ad_import(path, AD_IMPORT_AUTO, NULL, &m, NULL) == AD_OK, "%s", ad_errmsg());
    check_llama(&m, &r, 0, 6);
    ck_assert_int_eq(m.cfg.qkv_bias, 1);
    ck_assert_int_eq(m.cfg.sliding_window, 0);
    same(m.params.t[AD_P_QKVB], bias, (size_t)r.L * QKV, "qkv_b", -1);
    ck_assert_ptr_null(m.params.t[AD_P_ATTPROJB]);
    ad_model_free(&m);
    buf_free(&b);
    StOpt qsw = qw;
    qsw.config_extra = ", \"use_sliding_window\": true, \"sliding_window\": 4096";
    build_safetensors(&r, &qsw, "hf_qwen2_sw", &b, &path);
    AdImportOptions o = {.format = AD_IMPORT_SAFETENSORS};
    expect_fail(path, &o, AD_ERR_FORMAT, "use_sliding_window", NULL);
    buf_free(&b);
    StOpt qnb = {.lm_head = 1, .model_type = "qwen2"}; /* biases missing */
    build_safetensors(&r, &qnb, "hf_qwen2_nb", &b, &path);
    expect_fail(path, &o, AD_ERR_FORMAT, "model.layers.0.self_attn.q_proj.bias is missing", NULL);
    buf_free(&b);

    StOpt l3 = {.lm_head = 1, .config_extra = ", \"rope_scaling\": {\"rope_type\": \"llama3\", "
                "\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                "\"original_max_position_embeddings\": 8192}"};
    build_safetensors(&r, &l3, "hf_llama3", &b, &path);
    ck_assert_msg(ad_import(path, AD_IMPORT_AUTO, NULL, &m, NULL) == AD_OK, "%s", ad_errmsg());
    check_llama(&m, &r, 0, 6);
    ck_assert_int_eq(m.cfg.rope_scaling, AD_ROPE_SCALING_LLAMA3);
    ck_assert(m.cfg.rope_factor == 8.0f && m.cfg.rope_low_freq_factor == 1.0f);
    ck_assert(m.cfg.rope_high_freq_factor == 4.0f && m.cfg.rope_original_max_pos == 8192);
    ad_model_free(&m);
    buf_free(&b);
    free(bias);
    ref_free(&r);
}
END_TEST

/* RoPE by rotate-half (HF's apply_rotary_pos_emb) on one head vector, in place. */
static void rope_half(double *v, int hs, int t, double theta) {
    for (int d = 0; d < hs / 2; d++) {
        double ang = t * pow(theta, -2.0 * d / hs), a = v[d], b = v[d + hs / 2];
        v[d] = a * cos(ang) - b * sin(ang);
        v[d + hs / 2] = b * cos(ang) + a * sin(ang);
    }
}
/* RoPE on interleaved pairs (llama2.c, docs/MODEL.md), in place. */
static void rope_pairs(double *v, int hs, int t, double theta) {
    for (int j = 0; j < hs / 2; j++) {
        double ang = t * pow(theta, -2.0 * j / hs), a = v[2 * j], b = v[2 * j + 1];
        v[2 * j] = a * cos(ang) - b * sin(ang);
        v[2 * j + 1] = a * sin(ang) + b * cos(ang);
    }
}
static void matvec(double *y, const float *w, const double *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        y[r] = 0;
        for (int c = 0; c < cols; c++) y[r] += (double)w[(size_t)r * cols + c] * x[c];
    }
}

/* The permuted q/k rows give the same attention scores under interleaved RoPE as the
 * HF rows under rotate-half RoPE, for every head and a few position pairs. */
/* GPT-2's bytes_to_unicode() character of byte b, UTF-8, JSON-escaped, into out. */
static int json_byte_char(int b, char *out) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    int cp = b;
    if (!printable) {
        cp = 256;
        for (int x = 0; x < b; x++)
            cp += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE));
    }
    if (cp == '"' || cp == '\\') return sprintf(out, "\\%c", cp);
    if (cp < 0x80) return sprintf(out, "%c", cp);
    return sprintf(out, "%c%c", 0xC0 | (cp >> 6), 0x80 | (cp & 0x3F));
}

/* A model directory with config.json, model.safetensors and tokenizer.json (+
 * tokenizer_config.json) imports with its tokenizer: ids 0..255 the byte characters,
 * 256 "ab", 257 "abc" (merges given as "a b" and ["ab", "c"]), 258 "<|eot|>" special,
 * 259 "xy z" added; the llama-bpe Split + ByteLevel pre-tokenizer. */
START_TEST(test_safetensors_tokenizer_json) {
    Ref r;
    ref_init(&r, 16, 12, 1, 4, 2, 264, 6, 9);
    Buf b = {0};
    const char *path;
    StOpt so = {.lm_head = 1};
    build_safetensors(&r, &so, "hf_tok", &b, &path);
    static char json[16384];
    int n = sprintf(json, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 258, \"content\": "
                    "\"<|eot|>\", \"special\": true}, {\"id\": 259, \"content\": \"xy z\", "
                    "\"special\": false}], \"normalizer\": null, \"pre_tokenizer\": {\"type\": "
                    "\"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                    "{\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?"
                    "\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*"
                    "[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\", "
                    "\"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
                    "\"trim_offsets\": true, \"use_regex\": false}]}, \"model\": {\"type\": "
                    "\"BPE\", \"vocab\": {");
    for (int c = 0; c < 256; c++) {
        n += sprintf(json + n, "\"");
        n += json_byte_char(c, json + n);
        n += sprintf(json + n, "\": %d, ", c);
    }
    n += sprintf(json + n, "\"ab\": 256, \"abc\": 257}, \"merges\": [\"a b\", [\"ab\", \"c\"]]}}");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    strcpy(strrchr(dir, '/') + 1, "tokenizer.json");
    FILE *f = fopen(dir, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(json, 1, (size_t)n, f);
    fclose(f);
    strcpy(strrchr(dir, '/') + 1, "tokenizer_config.json");
    f = fopen(dir, "wb");
    fputs("{\"bos_token\": \"<|eot|>\", \"eos_token\": {\"content\": \"<|eot|>\"}, "
          "\"add_bos_token\": true}", f);
    fclose(f);
    AdModel m;
    AdTokenizer t;
    ck_assert_msg(ad_import(path, AD_IMPORT_AUTO, NULL, &m, &t) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(t.vocab_size, 260);
    ck_assert_int_eq(t.pre, AD_PRE_LLAMA3);
    ck_assert_int_eq(t.bos_id, 258);
    ck_assert_int_eq(t.eos_id, 258);
    ck_assert_int_eq(t.add_bos, 1);
    ck_assert_int_eq(t.n_merges, 2);
    /* "xy z" is cut out first; "abc" is one piece; the lone space is byte 0x20's piece */
    const char *text = "abc xy z";
    int ids[16], k;
    ck_assert_int_eq(ad_tokenizer_encode(&t, text, strlen(text), ids, 16, &k), AD_OK);
    ck_assert_int_eq(k, 3);
    ck_assert_int_eq(ids[0], 257);
    ck_assert_int_eq(ids[1], ' ');
    ck_assert_int_eq(ids[2], 259);
    char out[32];
    ck_assert_uint_eq(ad_tokenizer_decode(&t, ids, k, out, sizeof out), strlen(text));
    ck_assert_str_eq(out, text);
    ad_tokenizer_free(&t);
    ad_model_free(&m);
    /* the vocabulary alone, as tokenize reads it, comes from the same tokenizer.json */
    ck_assert_msg(ad_import_vocab(path, &t) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(t.vocab_size, 260);
    ck_assert_int_eq(t.pre, AD_PRE_LLAMA3);
    ad_tokenizer_free(&t);
    /* the NFC normalizer: "e" + U+0301 encodes as "\xc3\xa9" does (two byte pieces); without
     * tokenizer_config.json, the post_processor's template gives the BOS to add */
    static char nfc_json[16800];
    char *norm0 = strstr(json, "\"normalizer\": null");
    ck_assert_ptr_nonnull(norm0);
    int head = (int)(norm0 - json);
    int nn = snprintf(nfc_json, sizeof nfc_json, "%.*s\"normalizer\": {\"type\": \"NFC\"}, "
                      "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
                      "[{\"SpecialToken\": {\"id\": \"<|eot|>\", \"type_id\": 0}}, {\"Sequence\": "
                      "{\"id\": \"A\", \"type_id\": 0}}]}%s", head, json,
                      norm0 + strlen("\"normalizer\": null"));
    strcpy(strrchr(dir, '/') + 1, "tokenizer_config.json");
    ck_assert_int_eq(unlink(dir), 0);
    strcpy(strrchr(dir, '/') + 1, "tokenizer.json");
    f = fopen(dir, "wb");
    fwrite(nfc_json, 1, (size_t)nn, f);
    fclose(f);
    ck_assert_msg(ad_import(path, AD_IMPORT_AUTO, NULL, &m, &t) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(t.nfc, 1);
    ck_assert_int_eq(t.bos_id, 258);
    ck_assert_int_eq(t.add_bos, 1);
    ck_assert_int_eq(t.eos_id, -1);
    ck_assert_int_eq(t.add_eos, 0);
    ck_assert_int_eq(ad_tokenizer_encode(&t, "e\xcc\x81", 3, ids, 16, &k), AD_OK);
    ck_assert_int_eq(k, 2);
    ck_assert_int_eq(ids[0], 0xC3);
    ck_assert_int_eq(ids[1], 0xA9);
    ad_tokenizer_free(&t);
    ad_model_free(&m);
    /* an unsupported normalizer is refused, naming the file */
    strcpy(strrchr(dir, '/') + 1, "tokenizer.json");
    char *norm = strstr(json, "\"normalizer\": null");
    ck_assert_ptr_nonnull(norm);
    memcpy(norm, "\"normalizer\": 1234", 18);
    f = fopen(dir, "wb");
    fwrite(json, 1, (size_t)n, f);
    fclose(f);
    ck_assert_int_eq(ad_import(path, AD_IMPORT_AUTO, NULL, &m, &t), AD_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "tokenizer.json"));
    ck_assert_ptr_nonnull(strstr(ad_errmsg(), "normalizer"));
    buf_free(&b);
    ref_free(&r);
}
END_TEST

START_TEST(test_safetensors_rope_scores) {
    Ref r;
    ref_init(&r, 32, 12, 1, 4, 2, 11, 16, 9);
    Buf b = {0};
    const char *path;
    StOpt so = {.lm_head = 1};
    build_safetensors(&r, &so, "hf_rope", &b, &path);
    AdModel m;
    ck_assert_msg(ad_import(path, AD_IMPORT_SAFETENSORS, NULL, &m, NULL) == AD_OK, "%s",
                  ad_errmsg());
    int C = r.C, hs = r.hs, H = r.H, Hkv = r.Hkv;
    float *q_hf = hf_permute(r.wq, H, hs, C), *k_hf = hf_permute(r.wk, Hkv, hs, C);
    const float *q_imp = m.params.t[AD_P_QKVW], *k_imp = q_imp + (size_t)C * C;
    AdRng rng;
    ad_rng_init(&rng, 10, AD_STREAM_INIT, 2);
    double x1[64], x2[64], a[64], bb[64], c[64], d[64];
    for (int i = 0; i < C; i++) x1[i] = ad_rng_normal(&rng), x2[i] = ad_rng_normal(&rng);
    const int pos[3][2] = {{0, 0}, {5, 2}, {15, 9}};
    for (int p = 0; p < 3; p++)
        for (int h = 0; h < H; h++) {
            int g = h / (H / Hkv);
            matvec(a, q_hf + (size_t)h * hs * C, x1, hs, C);
            matvec(bb, k_hf + (size_t)g * hs * C, x2, hs, C);
            matvec(c, q_imp + (size_t)h * hs * C, x1, hs, C);
            matvec(d, k_imp + (size_t)g * hs * C, x2, hs, C);
            rope_half(a, hs, pos[p][0], 10000.0), rope_half(bb, hs, pos[p][1], 10000.0);
            rope_pairs(c, hs, pos[p][0], 10000.0), rope_pairs(d, hs, pos[p][1], 10000.0);
            double s_hf = 0, s_imp = 0, scale = 0;
            for (int i = 0; i < hs; i++) {
                s_hf += a[i] * bb[i];
                s_imp += c[i] * d[i];
                scale += fabs(a[i] * bb[i]);
            }
            ck_assert_msg(fabs(s_hf - s_imp) <= 1e-12 * scale + 1e-12,
                          "head %d positions (%d, %d): score %.17g (HF) vs %.17g (imported)", h,
                          pos[p][0], pos[p][1], s_hf, s_imp);
        }
    /* and the unpermuted rows differ (the check above is not vacuous) */
    ck_assert(memcmp(q_hf, q_imp, (size_t)C * C * sizeof(float)) != 0);
    free(q_hf);
    free(k_hf);
    ad_model_free(&m);
    buf_free(&b);
    ref_free(&r);
}
END_TEST

START_TEST(test_safetensors_malformed) {
    Ref r;
    ref_init(&r, 16, 12, 2, 4, 2, 11, 6, 11);
    AdImportOptions o = {.format = AD_IMPORT_SAFETENSORS};
    struct { StOpt o; AdStatus st; const char *f1, *f2; } bad[] = {
        {{.lm_head = 1, .bad_dtype = "model.layers.0.mlp.up_proj.weight"}, AD_ERR_FORMAT,
         "model.layers.0.mlp.up_proj.weight", "dtype I8"},
        {{.lm_head = 1, .omit = "model.layers.1.self_attn.k_proj.weight"}, AD_ERR_FORMAT,
         "tensor model.layers.1.self_attn.k_proj.weight is missing", NULL},
        {{.lm_head = 1, .bad_offsets = 1}, AD_ERR_FORMAT, "data_offsets", NULL},
        {{.lm_head = 1, .no_config = 1}, AD_ERR_IO, "config.json", NULL},
        {{.lm_head = 1, .config_extra = ", \"rope_scaling\": {\"type\": \"linear\"}"},
         AD_ERR_FORMAT, "only llama3 RoPE scaling", NULL},
        {{.lm_head = 1, .config_extra = ", \"vocab_size\": 11"}, AD_ERR_FORMAT,
         "key vocab_size appears twice", NULL},
        {{.lm_head = 1, .config_extra = ", \"attention_bias\": true"}, AD_ERR_FORMAT,
         "attention_bias", NULL},
        {{.lm_head = 1, .config_extra = ", \"head_dim\": 8"}, AD_ERR_FORMAT, "head_dim = 8",
         NULL},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        Buf b = {0};
        const char *path;
        build_safetensors(&r, &bad[k].o, "hf_bad", &b, &path);
        expect_fail(path, &o, bad[k].st, bad[k].f1, bad[k].f2);
        buf_free(&b);
    }
    /* header length beyond the file; a config that lacks a size; absurd sizes */
    Buf b = {0};
    const char *path;
    StOpt ok = {.lm_head = 1};
    build_safetensors(&r, &ok, "hf_hdr", &b, &path);
    Buf x = {0};
    put(&x, b.p, b.n);
    set_u64(&x, 0, b.n);
    FILE *f = fopen(path, "wb");
    ck_assert(fwrite(x.p, 1, x.n, f) == x.n);
    fclose(f);
    expect_fail(path, &o, AD_ERR_FORMAT, "header length", "model.safetensors");
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s", path);
    strcpy(strrchr(cpath, '/') + 1, "config.json");
    f = fopen(cpath, "w");
    fprintf(f, "{\"model_type\": \"llama\", \"intermediate_size\": 12, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"vocab_size\": 11}");
    fclose(f);
    f = fopen(path, "wb");
    ck_assert(fwrite(b.p, 1, b.n, f) == b.n);
    fclose(f);
    expect_fail(path, &o, AD_ERR_FORMAT, "hidden_size is missing", "config.json");
    f = fopen(cpath, "w");
    fprintf(f, "{\"model_type\": \"llama\", \"hidden_size\": 65536, \"intermediate_size\": "
               "262144, \"num_hidden_layers\": 1000, \"num_attention_heads\": 512, "
               "\"vocab_size\": 4000000}");
    fclose(f);
    expect_fail(path, &o, AD_ERR_FORMAT, "model.embed_tokens.weight has shape", NULL);
    f = fopen(cpath, "w");
    fprintf(f, "{\"model_type\": \"gemma\", \"hidden_size\": 16}");
    fclose(f);
    expect_fail(path, &o, AD_ERR_FORMAT, "only Llama", NULL);
    f = fopen(cpath, "w");
    fprintf(f, "{\"model_type\": \"llama\", \"hidden_size\": 16.5}");
    fclose(f);
    expect_fail(path, &o, AD_ERR_FORMAT, "hidden_size is not a non-negative whole number", NULL);
    /* every prefix of the checkpoint (with a good config beside it) */
    buf_free(&b);
    build_safetensors(&r, &ok, "hf_prefix", &b, &path);
    {
        size_t step = b.n / 300 + 1;
        for (size_t len = 0; len < b.n; len += len < 64 ? 1 : step) {
            f = fopen(path, "wb");
            ck_assert(fwrite(b.p, 1, len, f) == len);
            fclose(f);
            AdModel m;
            ck_assert_msg(ad_import_opts(path, &o, &m, NULL) != AD_OK,
                          "a %zu-byte prefix was accepted", len);
            ck_assert_ptr_null(m.params_mem);
        }
    }
    buf_free(&x);
    buf_free(&b);
    ref_free(&r);
}
END_TEST

/* ---- detection and arguments ---------------------------------------------------------- */

START_TEST(test_detect_and_names) {
    AdImportFormat fmt;
    unsigned char junk[64];
    for (int i = 0; i < 64; i++) junk[i] = (unsigned char)(200 + i);
    ck_assert_int_eq(ad_import_detect(write_file("junk.dat", junk, 64), &fmt), AD_ERR_FORMAT);
    ck_assert(strstr(ad_errmsg(), "junk.dat") && strstr(ad_errmsg(), "not a recognised"));
    ck_assert_int_eq(ad_import_detect(write_file("junk.safetensors", junk, 64), &fmt), AD_OK);
    ck_assert_int_eq(fmt, AD_IMPORT_SAFETENSORS);
    ck_assert_int_eq(ad_import_detect(ad_test_path(ad_test_tmpdir(), "nope"), &fmt), AD_ERR_IO);
    ck_assert_int_eq(ad_import_detect(ad_test_tmpdir(), &fmt), AD_ERR_IO); /* a directory */
    for (int f = AD_IMPORT_AUTO; f <= AD_IMPORT_SAFETENSORS; f++)
        ck_assert_int_eq(ad_import_format_parse(ad_import_format_name((AdImportFormat)f)), f);
    ck_assert_int_eq(ad_import_format_parse("onnx"), -1);
    AdModel m;
    AdImportOptions neg = {.max_seq_len = -1};
    ck_assert_int_eq(ad_import_opts("x", &neg, &m, NULL), AD_ERR_ARG);
    ck_assert_int_eq(ad_import(NULL, AD_IMPORT_AUTO, NULL, &m, NULL), AD_ERR_ARG);
}
END_TEST

/* ---- stories260K ------------------------------------------------------------------------ */

static const char *models_or_skip(const char *test) {
    const char *dir = ad_test_models_dir();
    if (!dir)
        printf("%s skipped: no stories260K.bin under AD_SHARED_MODELS or ../shared/models\n",
               test);
    return dir;
}

START_TEST(test_stories_bin_vs_gguf) {
    const char *dir = models_or_skip("test_stories_bin_vs_gguf");
    if (!dir) return;
    const char *bin = ad_test_path(dir, "stories260K.bin");
    const char *gguf = ad_test_path(dir, "stories260K.gguf");
    AdModel a, b;
    ck_assert_msg(ad_import(bin, AD_IMPORT_AUTO, NULL, &a, NULL) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(a.cfg.d_model, 64);
    ck_assert_int_eq(a.cfg.d_ff, 172);
    ck_assert_int_eq(a.cfg.n_layer, 5);
    ck_assert_int_eq(a.cfg.n_head, 8);
    ck_assert_int_eq(a.cfg.n_kv_head, 4);
    ck_assert_int_eq(a.cfg.vocab_size, 512);
    ck_assert_int_eq(a.cfg.max_seq_len, 512);
    ck_assert_int_eq(a.cfg.tied, 1);
    /* The GGUF's context_length says 2048; the model was trained at 512. */
    ck_assert_msg(ad_import(gguf, AD_IMPORT_AUTO, NULL, &b, NULL) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(b.cfg.max_seq_len, 2048);
    ad_model_free(&b);
    AdImportOptions o = {.max_seq_len = 512};
    ck_assert_msg(ad_import_opts(gguf, &o, &b, NULL) == AD_OK, "%s", ad_errmsg());
    ck_assert_msg(memcmp(&a.cfg, &b.cfg, sizeof a.cfg) == 0, "configs differ");
    ck_assert_uint_eq(a.n_params, b.n_params);
    /* bit-identical: the GGUF's q/k rows are already in llama2.c's interleaved order */
    for (int i = 0; i < AD_P_COUNT; i++)
        if (a.info[i].size)
            ck_assert_msg(memcmp(a.params.t[i], b.params.t[i], a.info[i].size * sizeof(float)) == 0,
                          "tensor %s differs between .bin and .gguf", a.info[i].name);
    ad_model_free(&a);
    ad_model_free(&b);
}
END_TEST

/* Reads tok512.bin directly: int32 max_len, then per token f32 score, int32 len, bytes. */
START_TEST(test_stories_gguf_vocab) {
    const char *dir = models_or_skip("test_stories_gguf_vocab");
    if (!dir) return;
    FILE *f = fopen(ad_test_path(dir, "tok512.bin"), "rb");
    ck_assert_ptr_nonnull(f);
    static unsigned char raw[1 << 16];
    size_t n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    AdModel m;
    AdTokenizer t;
    ck_assert_msg(ad_import(ad_test_path(dir, "stories260K.gguf"), AD_IMPORT_AUTO, NULL, &m, &t) ==
                      AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(t.kind, AD_TOK_SPM);
    ck_assert_int_eq(t.vocab_size, 512);
    ck_assert_int_eq(t.bos_id, 1);
    ck_assert_int_eq(t.eos_id, 2);
    size_t off = 4;
    for (int i = 0; i < 512; i++) {
        float score;
        int32_t len;
        ck_assert(off + 8 <= n);
        memcpy(&score, raw + off, 4);
        memcpy(&len, raw + off + 4, 4);
        off += 8;
        const char *piece = (const char *)raw + off;
        off += (size_t)len;
        ck_assert_msg(memcmp(&score, &t.scores[i], 4) == 0, "score %d: %g vs %g", i, score,
                      t.scores[i]);
        if (i == 1 || i == 2) {
            /* llama2.c stores the control pieces as "\n<s>\n" and "\n</s>\n" */
            const char *want = i == 1 ? "<s>" : "</s>";
            ck_assert_int_eq(len, (int)strlen(want) + 2);
            ck_assert(piece[0] == '\n' && memcmp(piece + 1, want, strlen(want)) == 0);
            ck_assert_int_eq(t.piece_len[i], (int)strlen(want));
            ck_assert(memcmp(t.pieces[i], want, strlen(want)) == 0);
            continue;
        }
        ck_assert_msg(t.piece_len[i] == len && memcmp(t.pieces[i], piece, (size_t)len) == 0,
                      "piece %d: \"%.*s\" vs tok512.bin's \"%.*s\"", i, t.piece_len[i],
                      t.pieces[i], (int)len, piece);
    }
    ck_assert_uint_eq(off, n);
    ad_tokenizer_free(&t);
    ad_model_free(&m);
}
END_TEST

/* After BOS the model's most likely token is the first token of "Once upon a time",
 * llama2.c's greedy output. */
START_TEST(test_stories_first_token) {
    const char *dir = models_or_skip("test_stories_first_token");
    if (!dir) return;
    AdModel m;
    AdTokenizer t;
    ck_assert_msg(ad_import(ad_test_path(dir, "stories260K.bin"), AD_IMPORT_LLAMA2C,
                            ad_test_path(dir, "tok512.bin"), &m, &t) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(t.vocab_size, 512);
    int ids[16], n_ids;
    const char *text = "Once upon a time";
    ck_assert_int_eq(ad_tokenizer_encode(&t, text, strlen(text), ids, 16, &n_ids), AD_OK);
    ck_assert_int_ge(n_ids, 1);
    AdActs acts;
    ck_assert_int_eq(ad_acts_init(&acts, &m.cfg, 1, 1), AD_OK);
    int bos = 1;
    ad_model_forward(&m, &acts, &bos, 1, 1);
    int best = 0;
    for (int v = 1; v < m.cfg.vocab_size; v++)
        if (acts.logits[v] > acts.logits[best]) best = v;
    ck_assert_msg(best == ids[0], "argmax after BOS is %d (\"%s\"), want %d (\"%s\")", best,
                  t.pieces[best], ids[0], t.pieces[ids[0]]);
    ad_acts_free(&acts);
    ad_tokenizer_free(&t);
    ad_model_free(&m);
}
END_TEST

static Suite *importers_suite(void) {
    Suite *s = suite_create("importers");
    const AdTestCase cases[] = {
        {"f16", test_f16_all_patterns},
        {"bf16", test_bf16_all_patterns},
        {"detect", test_detect_and_names},
        {"llama2c", test_llama2c_tiny},
        {"llama2c_malformed", test_llama2c_malformed},
        {"gguf", test_gguf_tiny},
        {"gguf_malformed", test_gguf_malformed},
        {"llmc", test_llmc_tiny},
        {"llmc_malformed", test_llmc_malformed},
        {"llmc_tokenizer", test_llmc_tokenizer},
        {"safetensors", test_safetensors_tiny},
        {"safetensors_rope", test_safetensors_rope_scores},
        {"safetensors_tokenizer_json", test_safetensors_tokenizer_json},
        {"safetensors_malformed", test_safetensors_malformed},
        {"safetensors_families", test_safetensors_families},
        {"stories_bin_vs_gguf", test_stories_bin_vs_gguf},
        {"stories_gguf_vocab", test_stories_gguf_vocab},
        {"stories_first_token", test_stories_first_token},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], TIMEOUT);
    return s;
}

int main(void) { return ad_test_run(importers_suite()); }
