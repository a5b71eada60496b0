/* test_quant.c: ggml's quantized tensor formats (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) as the GGUF
 * importer expands them: hand-packed blocks against values computed by hand, a simple
 * reference quantizer (written here from the block layouts) round-tripped on stories260K's
 * weights within an error bound, GGUF files with quantized tensors imported and compared,
 * malformed quantized tensors, and a Q8_0 stories260K whose greedy text matches F32's.
 * Also the GGUF files of later families this writer makes: qwen2 (q/k/v biases) and
 * Llama 3.1's rope_freqs.weight with a sliding-window key. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/import_internal.h" /* imp_dequantize, imp_dtype_bytes */
#include "autodidact/importers.h"
#include "autodidact/model.h"
#include "autodidact/rng.h"
#include "testbuf.h"
#include "testutil.h"

#define TIMEOUT 120

/* ---- half floats ----------------------------------------------------------------- */

/* float -> IEEE half, round to nearest even (normal and subnormal range; no overflow here). */
static uint16_t to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    float a = fabsf(f);
    if (a == 0.0f) return sign;
    int e;
    frexpf(a, &e);           /* a = m 2^e, m in [0.5, 1) */
    int ex = e - 1;          /* a = 1.x 2^ex */
    if (ex < -14) ex = -14;  /* subnormal: fixed exponent */
    float q = ldexpf(a, 10 - ex); /* mantissa with 10 fraction bits */
    float r = nearbyintf(q);      /* ties to even under the default rounding mode */
    uint32_t m = (uint32_t)r;
    if (m >= 2048) { m >>= 1; ex++; }
    ck_assert_int_lt(ex, 16);
    if (m < 1024) return (uint16_t)(sign | m); /* subnormal */
    return (uint16_t)(sign | (uint16_t)((ex + 15) << 10) | (m & 0x3ff));
}
static float h(float f) { return imp_f16_to_f32(to_f16(f)); }
static void put16(unsigned char *p, float f) {
    uint16_t v = to_f16(f);
    p[0] = (unsigned char)(v & 0xff), p[1] = (unsigned char)(v >> 8);
}

/* ---- packing, from the block layouts --------------------------------------------- */

/* Q4_K/Q5_K 6-bit scales and mins of the 8 sub-blocks into 12 bytes: bytes 0-3 hold
 * sc[0..3] (low 6 bits) with the top 2 bits of sc[4..7]; bytes 4-7 m[0..3] with the top
 * 2 bits of m[4..7]; bytes 8-11 the low nibbles of sc[4..7] and (high nibble) m[4..7]. */
static void pack_scales(unsigned char *s, const int sc[8], const int m[8]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (unsigned char)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (unsigned char)(m[j] | (m[j + 4] >> 4) << 6);
        s[j + 8] = (unsigned char)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

/* Packs 256 quants q (0..15, or 0..31 with five bits) of a Q4_K/Q5_K block: in each 64,
 * value l in qs[l] low nibble, value 32 + l in its high nibble; the fifth bit of the
 * i-th 64's two halves in qh[l] bits 2i and 2i+1. */
static void pack_k45(unsigned char *b, float d, float dmin, const int sc[8], const int m[8],
                     const int *q, int five) {
    put16(b, d), put16(b + 2, dmin);
    pack_scales(b + 4, sc, m);
    unsigned char *qh = b + 16, *qs = five ? b + 48 : b + 16;
    if (five) memset(qh, 0, 32);
    for (int i = 0; i < 4; i++)
        for (int l = 0; l < 32; l++) {
            int lo = q[64 * i + l], hi = q[64 * i + 32 + l];
            qs[32 * i + l] = (unsigned char)((lo & 15) | (hi & 15) << 4);
            if (five) qh[l] |= (unsigned char)((lo >> 4) << (2 * i) | (hi >> 4) << (2 * i + 1));
        }
}

/* Packs 256 quants q (0..63, value = q - 32) of a Q6_K block: value 128 n + 32 k + l
 * has its low nibble in ql[64 n + l + 32 (k & 1)] (high nibble of that byte if k >= 2)
 * and its top two bits in qh[32 n + l] at bits 2k, 2k+1. */
static void pack_q6k(unsigned char *b, float d, const int8_t sc[16], const int *q) {
    unsigned char *ql = b, *qh = b + 128;
    memset(b, 0, 210);
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int v = q[128 * n + 32 * k + l];
                ql[64 * n + l + 32 * (k & 1)] |= (unsigned char)((v & 15) << (k >= 2 ? 4 : 0));
                qh[32 * n + l] |= (unsigned char)((v >> 4) << (2 * k));
            }
    memcpy(b + 192, sc, 16);
    put16(b + 208, d);
}

/* ---- hand-made blocks -------------------------------------------------------------- */

START_TEST(test_q8_0_block) {
    unsigned char b[34];
    put16(b, 0.5f);
    int8_t q[32];
    for (int j = 0; j < 32; j++) q[j] = (int8_t)(j * 9 - 128); /* -128 .. 151 wraps: keep */
    q[31] = 127;
    memcpy(b + 2, q, 32);
    float y[32];
    imp_dequantize(y, b, IMP_Q8_0, 32);
    ck_assert_float_eq(y[0], -64.0f);    /* -128 * 0.5 */
    ck_assert_float_eq(y[31], 63.5f);    /* 127 * 0.5 */
    ck_assert_float_eq(y[14], -1.0f);    /* (14*9 - 128) = -2 */
    for (int j = 0; j < 32; j++) ck_assert_float_eq(y[j], 0.5f * q[j]);
    ck_assert_uint_eq(imp_dtype_bytes(IMP_Q8_0, 64), 68);
}
END_TEST

START_TEST(test_q4_0_block) {
    unsigned char b[18];
    put16(b, -0.25f);
    for (int j = 0; j < 16; j++) b[2 + j] = (unsigned char)(j | (15 - j) << 4);
    float y[32];
    imp_dequantize(y, b, IMP_Q4_0, 32);
    ck_assert_float_eq(y[0], 2.0f);   /* (0 - 8) * -0.25 */
    ck_assert_float_eq(y[16], -1.75f); /* (15 - 8) * -0.25 */
    for (int j = 0; j < 16; j++) {
        ck_assert_float_eq(y[j], (float)(j - 8) * -0.25f);
        ck_assert_float_eq(y[16 + j], (float)(7 - j) * -0.25f);
    }
    ck_assert_uint_eq(imp_dtype_bytes(IMP_Q4_0, 64), 36);
}
END_TEST

/* Scales and mins that use every bit of the 6-bit fields, both halves of the packing. */
static const int ksc[8] = {1, 2, 33, 63, 17, 48, 5, 62};
static const int km[8] = {0, 63, 7, 40, 16, 1, 47, 32};

static void check_k45(int five) {
    unsigned char b[176];
    int q[256];
    int nmax = five ? 31 : 15;
    for (int i = 0; i < 256; i++) q[i] = (i * 7 + i / 32) % (nmax + 1);
    float d = 0.125f, dmin = 0.0625f;
    pack_k45(b, d, dmin, ksc, km, q, five);
    float y[256];
    imp_dequantize(y, b, five ? IMP_Q5_K : IMP_Q4_K, 256);
    for (int i = 0; i < 256; i++) {
        int j = i / 32;
        float want = d * (float)ksc[j] * (float)q[i] - dmin * (float)km[j];
        ck_assert_msg(y[i] == want, "Q%d_K value %d: %g, want %g", five ? 5 : 4, i, y[i], want);
    }
    /* two by hand: value 0 (sub-block 0, q 0): 0.125*1*0 - 0.0625*0 = 0;
     * value 200 (sub-block 6, q = (1400 + 6) % 16 = 14 or % 32 = 30): 0.125*5*q - 0.0625*47 */
    ck_assert_float_eq(y[0], 0.0f);
    ck_assert_float_eq(y[200], five ? 0.625f * 30 - 2.9375f : 0.625f * 14 - 2.9375f);
}

START_TEST(test_q4_k_block) {
    check_k45(0);
    ck_assert_uint_eq(imp_dtype_bytes(IMP_Q4_K, 512), 288);
}
END_TEST

START_TEST(test_q5_k_block) {
    check_k45(1);
    ck_assert_uint_eq(imp_dtype_bytes(IMP_Q5_K, 256), 176);
}
END_TEST

START_TEST(test_q6_k_block) {
    unsigned char b[210];
    int q[256];
    int8_t sc[16] = {1, -1, 127, -128, 3, 5, 7, 9, -20, 30, 40, 50, 60, 70, 80, 90};
    for (int i = 0; i < 256; i++) q[i] = (i * 13 + i / 16) % 64;
    pack_q6k(b, 0.5f, sc, q);
    float y[256];
    imp_dequantize(y, b, IMP_Q6_K, 256);
    for (int i = 0; i < 256; i++) {
        float want = 0.5f * (float)sc[i / 16] * (float)(q[i] - 32);
        ck_assert_msg(y[i] == want, "Q6_K value %d: %g, want %g", i, y[i], want);
    }
    /* by hand: value 0: q 0 -> 0.5 * 1 * -32 = -16; value 48 (scale -128, q = 624 + 3 = 627 % 64 = 51):
     * 0.5 * -128 * 19 = -1216 */
    ck_assert_float_eq(y[0], -16.0f);
    ck_assert_float_eq(y[48], -1216.0f);
    ck_assert_uint_eq(imp_dtype_bytes(IMP_Q6_K, 256), 210);
}
END_TEST

/* ---- a reference quantizer --------------------------------------------------------- */

/* Quantizes n values (a multiple of the block) of x into out (zeroed), the simplest way
 * each format allows: symmetric scales from the block's largest magnitude (Q8_0, Q4_0 as
 * ggml's reference, Q6_K), min/max affine sub-blocks (Q4_K, Q5_K). Fills step[] (one
 * per value) with the largest error this rounding allows the value: half its
 * (sub-)block's step, plus what rounding the scales (to half floats, to 6 or 8 bits)
 * can add at the ends of the range. A value decoded from the wrong bits misses it by
 * whole steps. */
static void quantize(ImpDtype t, const float *x, size_t n, unsigned char *out, float *step) {
    size_t bk = (size_t)imp_dtype_block(t), bb = imp_dtype_block_bytes(t);
    for (size_t blk = 0; blk < n / bk; blk++) {
        const float *v = x + blk * bk;
        unsigned char *b = out + blk * bb;
        float *st = step + blk * bk;
        if (t == IMP_Q8_0 || t == IMP_Q4_0) {
            float amax = 0, max = 0;
            for (int j = 0; j < 32; j++)
                if (fabsf(v[j]) > amax) amax = fabsf(v[j]), max = v[j];
            float d = t == IMP_Q8_0 ? amax / 127 : max / -8, id = d ? 1 / d : 0;
            put16(b, d);
            for (int j = 0; j < 32; j++) {
                if (t == IMP_Q8_0) {
                    st[j] = fabsf(d) / 2 + 127 * fabsf(d - h(d));
                    b[2 + j] = (unsigned char)(int8_t)lroundf(v[j] * id);
                } else {
                    int qv = (int)lroundf(v[j] * id) + 8;
                    qv = qv < 0 ? 0 : qv > 15 ? 15 : qv;
                    st[j] = fabsf(d) + 8 * fabsf(d - h(d)); /* 8 d at the clamp */
                    if (j < 16) b[2 + j] = (unsigned char)qv;
                    else b[2 + j - 16] |= (unsigned char)(qv << 4);
                }
            }
        } else if (t == IMP_Q4_K || t == IMP_Q5_K) {
            int nmax = t == IMP_Q4_K ? 15 : 31, sc[8], mq[8], q[256];
            float s[8], mn[8], smax = 0, mmax = 0;
            for (int j = 0; j < 8; j++) {
                float lo = 0, hi = v[32 * j];
                for (int l = 0; l < 32; l++) {
                    lo = fminf(lo, v[32 * j + l]);
                    hi = fmaxf(hi, v[32 * j + l]);
                }
                s[j] = (hi - lo) / nmax, mn[j] = -lo;
                smax = fmaxf(smax, s[j]), mmax = fmaxf(mmax, mn[j]);
            }
            float d = smax / 63, dmin = mmax / 63;
            for (int j = 0; j < 8; j++) {
                sc[j] = d ? (int)lroundf(s[j] / d) : 0;
                mq[j] = dmin ? (int)lroundf(mn[j] / dmin) : 0;
                float dl = h(d) * sc[j], ml = h(dmin) * mq[j];
                for (int l = 0; l < 32; l++) {
                    int qv = dl ? (int)lroundf((v[32 * j + l] + ml) / dl) : 0;
                    q[32 * j + l] = qv < 0 ? 0 : qv > nmax ? nmax : qv;
                    st[32 * j + l] = dl / 2 + fabsf(ml - mn[j]) + nmax * fabsf(dl - s[j]);
                }
            }
            pack_k45(b, d, dmin, sc, mq, q, t == IMP_Q5_K);
        } else {
            AD_ASSERT(t == IMP_Q6_K);
            float s[16], smax = 0;
            int8_t sc[16];
            int q[256];
            for (int j = 0; j < 16; j++) {
                float amax = 0;
                for (int l = 0; l < 16; l++) amax = fmaxf(amax, fabsf(v[16 * j + l]));
                s[j] = amax / 31;
                smax = fmaxf(smax, s[j]);
            }
            float d = smax / 127;
            for (int j = 0; j < 16; j++) {
                sc[j] = (int8_t)(d ? lroundf(s[j] / d) : 0);
                float dl = h(d) * sc[j];
                for (int l = 0; l < 16; l++) {
                    int qv = dl ? (int)lroundf(v[16 * j + l] / dl) : 0;
                    q[16 * j + l] = (qv < -32 ? -32 : qv > 31 ? 31 : qv) + 32;
                    st[16 * j + l] = dl / 2 + 31 * fabsf(dl - s[j]);
                }
            }
            pack_q6k(b, d, sc, q);
        }
    }
}

static const ImpDtype qtypes[5] = {IMP_Q8_0, IMP_Q4_0, IMP_Q4_K, IMP_Q5_K, IMP_Q6_K};
/* Relative RMS error a format of b bits must stay under: about 2^(1-b) (uniform
 * rounding over the block's range gives 2^-b / sqrt(3) of the range per value). */
static const double max_rel_rms[5] = {0.01, 0.15, 0.15, 0.08, 0.04};

static const char *models_or_skip(const char *test) {
    const char *dir = ad_test_models_dir();
    if (!dir)
        printf("%s skipped: no stories260K.bin under AD_SHARED_MODELS or ../shared/models\n", test);
    return dir;
}

/* Every weight matrix of stories260K (whole tensors, flattened: their sizes are
 * multiples of 256) through the quantizer and imp_dequantize: each value within the
 * quantizer's error bound (a layout error moves values by whole steps), and the relative
 * RMS error under the format's bound. */
START_TEST(test_roundtrip_stories) {
    const char *dir = models_or_skip("test_roundtrip_stories");
    if (!dir) return;
    AdModel m;
    ck_assert_msg(ad_import(ad_test_path(dir, "stories260K.bin"), AD_IMPORT_AUTO, NULL, &m, NULL) ==
                      AD_OK, "%s", ad_errmsg());
    for (int k = 0; k < 5; k++) {
        double se = 0, sx = 0;
        size_t tested = 0;
        for (int t = 0; t < AD_P_COUNT; t++) {
            size_t n = m.info[t].size;
            if (!n || m.info[t].ndim < 2 || n % 256) continue;
            const float *x = m.params.t[t];
            unsigned char *qb = calloc(imp_dtype_bytes(qtypes[k], n), 1);
            float *y = malloc(n * sizeof *y), *step = malloc(n * sizeof *step);
            quantize(qtypes[k], x, n, qb, step);
            imp_dequantize(y, qb, qtypes[k], n);
            for (size_t i = 0; i < n; i++) {
                double e = fabs((double)x[i] - y[i]);
                ck_assert_msg(e <= step[i] * 1.0001 + 1e-7, "%s %s[%zu]: %g -> %g (step %g)",
                              imp_dtype_name(qtypes[k]), m.info[t].name, i, x[i], y[i], step[i]);
                se += e * e, sx += (double)x[i] * x[i];
            }
            tested += n;
            free(qb), free(y), free(step);
        }
        double rel = sqrt(se / sx);
        printf("%s round trip on %zu stories260K weights: relative RMS error %.4f\n",
               imp_dtype_name(qtypes[k]), tested, rel);
        ck_assert_uint_ge(tested, 100000);
        ck_assert_msg(rel < max_rel_rms[k], "%s relative RMS error %g", imp_dtype_name(qtypes[k]),
                      rel);
    }
    ad_model_free(&m);
}
END_TEST

/* ---- GGUF files with quantized tensors --------------------------------------------- */

static void put_gstr(Buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void kv_u32(Buf *b, const char *k, uint32_t v) {
    put_gstr(b, k), put_u32(b, 4), put_u32(b, v);
}

/* One tensor of the file: data of type `dt`, declared as `declared` (to make liars). */
typedef struct {
    char name[48];
    const float *x;
    int64_t ne0, ne1;
    ImpDtype dt, declared;
} QT;

static uint32_t ggml_id(ImpDtype t) {
    static const uint32_t ids[] = {0, 1, 30, 8, 2, 12, 13, 14};
    return ids[t];
}

/* The tensors of a llama GGUF for model m: 2-D weights in type qt where their rows are a
 * whole number of its blocks (others F32), norms F32. */
static int model_tensors(const AdModel *m, ImpDtype qt, QT *ts) {
    const AdModelConfig *c = &m->cfg;
    int n = 0, C = c->d_model, F = c->d_ff, kv = c->n_kv_head * (C / c->n_head);
    const float *const *P = (const float *const *)m->params.t;
    ts[n++] = (QT){"token_embd.weight", P[AD_P_WTE], C, c->vocab_size, qt, qt};
    ts[n++] = (QT){"output_norm.weight", P[AD_P_LNFW], C, 0, IMP_F32, IMP_F32};
    for (int l = 0; l < c->n_layer; l++) {
        size_t QKV = (size_t)C + 2 * (size_t)kv;
        const float *qkv = P[AD_P_QKVW] + (size_t)l * QKV * C, *fc = P[AD_P_FCW] + (size_t)l * 2 * F * C;
        QT lt[9] = {
            {"attn_norm", P[AD_P_LN1W] + (size_t)l * C, C, 0, IMP_F32, IMP_F32},
            {"attn_q", qkv, C, C, qt, qt},
            {"attn_k", qkv + (size_t)C * C, C, kv, qt, qt},
            {"attn_v", qkv + (size_t)(C + kv) * C, C, kv, qt, qt},
            {"attn_output", P[AD_P_ATTPROJW] + (size_t)l * C * C, C, C, qt, qt},
            {"ffn_norm", P[AD_P_LN2W] + (size_t)l * C, C, 0, IMP_F32, IMP_F32},
            {"ffn_gate", fc, C, F, qt, qt},
            {"ffn_up", fc + (size_t)F * C, C, F, qt, qt},
            {"ffn_down", P[AD_P_FCPROJW] + (size_t)l * C * F, F, C, qt, qt},
        };
        for (int k = 0; k < 9; k++) {
            ts[n] = lt[k];
            snprintf(ts[n].name, sizeof ts[n].name, "blk.%d.%.20s.weight", l, lt[k].name);
            n++;
        }
    }
    for (int i = 0; i < n; i++)
        if (ts[i].ne0 % imp_dtype_block(qt)) ts[i].dt = ts[i].declared = IMP_F32;
    return n;
}

/* Writes a GGUF v3 file of architecture `arch` ("llama", "qwen2") of the tensors ts,
 * quantized with quantize(), with n_extra more metadata entries already encoded in extra. */
static void write_gguf_arch(const char *path, const char *arch, const AdModelConfig *c,
                            const QT *ts, int n, const Buf *extra, int n_extra) {
    Buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, (uint64_t)n);
    put_u64(&b, 8 + (uint64_t)n_extra);
    put_gstr(&b, "general.architecture"), put_u32(&b, 8), put_gstr(&b, arch);
    char k[96];
    const char *names[6] = {"context_length", "embedding_length", "feed_forward_length",
                            "block_count", "attention.head_count", "attention.head_count_kv"};
    const int vals[6] = {c->max_seq_len, c->d_model, c->d_ff, c->n_layer, c->n_head, c->n_kv_head};
    for (int i = 0; i < 6; i++) {
        snprintf(k, sizeof k, "%s.%s", arch, names[i]);
        kv_u32(&b, k, (uint32_t)vals[i]);
    }
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
    put_gstr(&b, k), put_u32(&b, 6);
    put(&b, &c->norm_eps, 4);
    if (n_extra) put(&b, extra->p, extra->n);
    size_t off = 0, *offs = calloc((size_t)n, sizeof *offs);
    for (int i = 0; i < n; i++) {
        offs[i] = off;
        size_t ne = (size_t)ts[i].ne0 * (size_t)(ts[i].ne1 ? ts[i].ne1 : 1);
        off += (imp_dtype_bytes(ts[i].dt, ne) + 31) / 32 * 32;
    }
    for (int i = 0; i < n; i++) {
        put_gstr(&b, ts[i].name);
        put_u32(&b, ts[i].ne1 ? 2 : 1);
        put_u64(&b, (uint64_t)ts[i].ne0);
        if (ts[i].ne1) put_u64(&b, (uint64_t)ts[i].ne1);
        put_u32(&b, ggml_id(ts[i].declared));
        put_u64(&b, offs[i]);
    }
    static const unsigned char zeros[32];
    put(&b, zeros, (32 - b.n % 32) % 32);
    size_t data = b.n;
    for (int i = 0; i < n; i++) {
        put(&b, zeros, (32 - (b.n - data) % 32) % 32);
        ck_assert_uint_eq(b.n - data, offs[i]);
        size_t ne = (size_t)ts[i].ne0 * (size_t)(ts[i].ne1 ? ts[i].ne1 : 1);
        if (ts[i].dt == IMP_F32) {
            put(&b, ts[i].x, ne * 4);
        } else {
            size_t nb = imp_dtype_bytes(ts[i].dt, ne);
            unsigned char *q = calloc(nb, 1);
            float *step = malloc(ne * sizeof *step);
            quantize(ts[i].dt, ts[i].x, ne, q, step);
            put(&b, q, nb);
            free(q), free(step);
        }
    }
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b.p, 1, b.n, f), b.n);
    fclose(f);
    free(offs);
    free(b.p);
}

static void write_gguf(const char *path, const AdModelConfig *c, const QT *ts, int n) {
    write_gguf_arch(path, "llama", c, ts, n, NULL, 0);
}

/* A random model whose rows (256) fit every block size. */
static void random_model(AdModel *m) {
    AdModelConfig c;
    ad_model_config_preset(&c, "llama");
    c.vocab_size = 40, c.d_model = 256, c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2;
    c.d_ff = 256, c.max_seq_len = 64, c.tied = 1;
    ck_assert_int_eq(ad_model_init(m, &c, 0), AD_OK);
    AdRng rng;
    ad_rng_init(&rng, 17, 0, 0);
    ad_model_init_weights(m, &rng, AD_INIT_GPT2);
    for (int i = 0; i < 256; i++) m->params.t[AD_P_LNFW][i] = 1.0f + 0.01f * (float)(i % 7);
}

/* Each type written by write_gguf imports as the dequantized values of what was written
 * (exactly: the same bytes through imp_dequantize), and within the quantizer's bound of the original. */
START_TEST(test_gguf_quantized_import) {
    AdModel m;
    random_model(&m);
    for (int k = 0; k < 5; k++) {
        QT ts[32];
        int n = model_tensors(&m, qtypes[k], ts);
        char name[64];
        snprintf(name, sizeof name, "rand_%s.gguf", imp_dtype_name(qtypes[k]));
        const char *path = ad_test_path(ad_test_tmpdir(), name);
        write_gguf(path, &m.cfg, ts, n);
        AdModel b;
        ck_assert_msg(ad_import(path, AD_IMPORT_GGUF, NULL, &b, NULL) == AD_OK, "%s", ad_errmsg());
        ck_assert_int_eq(b.cfg.tied, 1);
        ck_assert_uint_eq(b.n_params, m.n_params);
        size_t n_off = 0;
        for (size_t i = 0; i < m.n_params; i++) n_off += b.params_mem[i] != m.params_mem[i];
        /* the weight matrices changed (quantized), the norms did not */
        ck_assert_uint_gt(n_off, m.n_params / 4);
        ck_assert_mem_eq(b.params.t[AD_P_LN1W], m.params.t[AD_P_LN1W], 2 * 256 * sizeof(float));
        size_t wn = m.info[AD_P_QKVW].size;
        unsigned char *q = calloc(imp_dtype_bytes(qtypes[k], wn), 1);
        float *y = malloc(wn * sizeof *y), *step = malloc(wn * sizeof *step);
        quantize(qtypes[k], m.params.t[AD_P_QKVW], wn, q, step);
        imp_dequantize(y, q, qtypes[k], wn);
        ck_assert_mem_eq(b.params.t[AD_P_QKVW], y, wn * sizeof(float));
        for (size_t i = 0; i < wn; i++)
            ck_assert(fabsf(y[i] - m.params.t[AD_P_QKVW][i]) <= step[i] * 1.0001f + 1e-7f);
        free(q), free(y), free(step);
        ad_model_free(&b);
    }
    ad_model_free(&m);
}
END_TEST

static void expect_import_fail(const char *path, const char *f1, const char *f2) {
    AdModel b;
    AdStatus st = ad_import(path, AD_IMPORT_GGUF, NULL, &b, NULL);
    ck_assert_int_eq(st, AD_ERR_FORMAT);
    const char *msg = ad_errmsg();
    ck_assert_msg(strstr(msg, f1) && (!f2 || strstr(msg, f2)), "message \"%s\" lacks \"%s\" / \"%s\"",
                  msg, f1, f2 ? f2 : "");
}

START_TEST(test_gguf_quantized_malformed) {
    AdModel m;
    random_model(&m);
    QT ts[32];
    int n = model_tensors(&m, IMP_Q8_0, ts);
    const char *dir = ad_test_tmpdir();
    /* declared Q8_0, data written as Q4_0: too few bytes before the next tensor */
    QT liar[32];
    memcpy(liar, ts, sizeof liar);
    ck_assert_str_eq(liar[3].name, "blk.0.attn_q.weight");
    liar[3].dt = IMP_Q4_0;
    write_gguf(ad_test_path(dir, "short.gguf"), &m.cfg, liar, n);
    expect_import_fail(ad_test_path(dir, "short.gguf"), "tensor blk.0.attn_q.weight (Q8_0",
                       "next tensor");
    /* the last tensor: runs past the end of the data section */
    memcpy(liar, ts, sizeof liar);
    ck_assert_str_eq(liar[n - 1].name, "blk.1.ffn_down.weight");
    liar[n - 1].dt = IMP_Q4_K, liar[n - 1].declared = IMP_Q6_K;
    write_gguf(ad_test_path(dir, "past.gguf"), &m.cfg, liar, n);
    expect_import_fail(ad_test_path(dir, "past.gguf"), "tensor blk.1.ffn_down.weight", "past the end");
    /* rows of 48 values cannot be Q8_0 (32) or Q4_K (256) blocks */
    AdModel s;
    AdModelConfig c = m.cfg;
    c.d_model = 48, c.n_head = 4, c.n_kv_head = 2, c.d_ff = 64;
    ck_assert_int_eq(ad_model_init(&s, &c, 0), AD_OK);
    n = model_tensors(&s, IMP_Q8_0, ts);
    for (int i = 0; i < n; i++)
        if (strcmp(ts[i].name, "blk.0.attn_k.weight") == 0) ts[i].declared = IMP_Q4_K;
    write_gguf(ad_test_path(dir, "rows.gguf"), &c, ts, n);
    expect_import_fail(ad_test_path(dir, "rows.gguf"), "tensor blk.0.attn_k.weight of type Q4_K",
                       "rows of 48 values, not a multiple of the type's block of 256");
    ad_model_free(&s);
    ad_model_free(&m);
}
END_TEST

/* Greedy decoding from BOS by full forward passes: n tokens into out. */
static void greedy(const AdModel *m, int n, int *out) {
    AdActs a;
    ck_assert_int_eq(ad_acts_init(&a, &m->cfg, 1, n + 1), AD_OK);
    int toks[128];
    toks[0] = 1;
    for (int t = 0; t < n; t++) {
        ad_model_forward(m, &a, toks, 1, t + 1);
        const float *lg = a.logits + (size_t)t * m->cfg.vocab_size;
        int best = 0;
        for (int v = 1; v < m->cfg.vocab_size; v++)
            if (lg[v] > lg[best]) best = v;
        out[t] = toks[t + 1] = best;
    }
    ad_acts_free(&a);
}

/* stories260K written as Q8_0 and Q4_0 GGUF (ffn_down, rows of 172, stays F32): the Q8_0
 * model's greedy text matches the F32 model's for 48 tokens, Q4_0's for 24 (27 measured). */
START_TEST(test_stories_quantized_greedy) {
    const char *dir = models_or_skip("test_stories_quantized_greedy");
    if (!dir) return;
    AdImportOptions o = {.format = AD_IMPORT_AUTO, .max_seq_len = 128};
    AdModel m;
    ck_assert_msg(ad_import_opts(ad_test_path(dir, "stories260K.bin"), &o, &m, NULL) == AD_OK, "%s",
                  ad_errmsg());
    enum { N = 48 };
    int ref[N], got[N];
    greedy(&m, N, ref);
    const struct { ImpDtype t; int match; } cases[] = {{IMP_Q8_0, N}, {IMP_Q4_0, 24}};
    for (int k = 0; k < 2; k++) {
        QT ts[64];
        int n = model_tensors(&m, cases[k].t, ts);
        const char *path = ad_test_path(ad_test_tmpdir(), "stories_q.gguf");
        write_gguf(path, &m.cfg, ts, n);
        AdModel q;
        ck_assert_msg(ad_import_opts(path, &o, &q, NULL) == AD_OK, "%s", ad_errmsg());
        greedy(&q, N, got);
        int same = 0;
        while (same < N && got[same] == ref[same]) same++;
        printf("stories260K %s: greedy matches F32 for %d of %d tokens\n",
               imp_dtype_name(cases[k].t), same, N);
        ck_assert_int_ge(same, cases[k].match);
        ad_model_free(&q);
    }
    ad_model_free(&m);
}
END_TEST

/* ---- later families through GGUF ----------------------------------------------------- */

/* qwen2: q/k/v biases (q, k rotate-half like their weight rows), read back exactly. */
START_TEST(test_gguf_qwen2) {
    AdModelConfig c;
    ad_model_config_preset(&c, "llama");
    c.vocab_size = 40, c.d_model = 64, c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2;
    c.d_ff = 96, c.max_seq_len = 64, c.tied = 1, c.qkv_bias = 1;
    AdModel m;
    ck_assert_int_eq(ad_model_init(&m, &c, 0), AD_OK);
    AdRng rng;
    ad_rng_init(&rng, 5, 0, 0);
    ad_model_init_weights(&m, &rng, AD_INIT_GPT2);
    for (size_t i = 0; i < m.info[AD_P_QKVB].size; i++) m.params.t[AD_P_QKVB][i] = 0.001f * (float)i;
    QT ts[64];
    int n = model_tensors(&m, IMP_F32, ts);
    float *owned[16];
    int n_owned = 0, hs = 16, kv = 32, QKV = 64 + 2 * kv;
    for (int i = 0; i < n; i++) {
        int l;
        char what[16];
        if (sscanf(ts[i].name, "blk.%d.%15[^.]", &l, what) != 2) continue;
        if (strcmp(what, "attn_q") == 0 || strcmp(what, "attn_k") == 0) {
            int heads = what[5] == 'q' ? 4 : 2;
            ts[i].x = owned[n_owned++] = hf_permute(ts[i].x, heads, hs, 64);
        }
    }
    for (int l = 0; l < 2; l++) {
        const float *bl = m.params.t[AD_P_QKVB] + (size_t)l * QKV;
        owned[n_owned] = hf_permute(bl, 4, hs, 1);
        ts[n] = (QT){"", owned[n_owned++], 64, 0, IMP_F32, IMP_F32};
        snprintf(ts[n++].name, sizeof ts[0].name, "blk.%d.attn_q.bias", l);
        owned[n_owned] = hf_permute(bl + 64, 2, hs, 1);
        ts[n] = (QT){"", owned[n_owned++], kv, 0, IMP_F32, IMP_F32};
        snprintf(ts[n++].name, sizeof ts[0].name, "blk.%d.attn_k.bias", l);
        ts[n] = (QT){"", bl + 64 + kv, kv, 0, IMP_F32, IMP_F32};
        snprintf(ts[n++].name, sizeof ts[0].name, "blk.%d.attn_v.bias", l);
    }
    const char *path = ad_test_path(ad_test_tmpdir(), "qwen2.gguf");
    write_gguf_arch(path, "qwen2", &c, ts, n, NULL, 0);
    AdModel b;
    ck_assert_msg(ad_import(path, AD_IMPORT_GGUF, NULL, &b, NULL) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(b.cfg.qkv_bias, 1);
    ck_assert_uint_eq(b.n_params, m.n_params);
    ck_assert_mem_eq(b.params_mem, m.params_mem, m.n_params * sizeof(float));
    ad_model_free(&b);
    /* without the biases: refused, naming the first missing one */
    write_gguf_arch(path, "qwen2", &c, ts, n - 6, NULL, 0);
    expect_import_fail(path, "tensor blk.0.attn_q.bias is missing", NULL);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    ad_model_free(&m);
}
END_TEST

/* Llama 3.1 as llama.cpp writes it: rope_freqs.weight holds each pair's divisor (1 for
 * wavelengths below 8192/4, the factor above 8192/1, 1 / ((1 - s) / factor + s) between,
 * s = (8192 / wavelength - 1) / 3), which the importer maps back to llama3 scaling; a
 * divisor off by 1% is refused naming its pair. llama.attention.sliding_window sets the
 * window. */
START_TEST(test_gguf_llama3_rope_freqs) {
    AdModel m;
    random_model(&m);
    QT ts[64];
    int n = model_tensors(&m, IMP_F32, ts);
    enum { HALF = 32 }; /* hs 64 */
    float div[HALF];
    const double theta = 500000.0, pi = 3.14159265358979323846;
    int regimes[3] = {0, 0, 0};
    for (int j = 0; j < HALF; j++) {
        double f = pow(theta, -2.0 * j / 64), wl = 2 * pi / f;
        if (wl < 8192.0 / 4) div[j] = 1.0f, regimes[0]++;
        else if (wl > 8192.0) div[j] = 8.0f, regimes[2]++;
        else {
            double s = (8192.0 / wl - 1) / 3;
            div[j] = (float)(1.0 / ((1 - s) / 8 + s)), regimes[1]++;
        }
    }
    ck_assert(regimes[0] && regimes[1] && regimes[2]);
    ts[n++] = (QT){"rope_freqs.weight", div, HALF, 0, IMP_F32, IMP_F32};
    Buf extra = {0};
    put_gstr(&extra, "llama.rope.freq_base"), put_u32(&extra, 6);
    float th = (float)theta;
    put(&extra, &th, 4);
    kv_u32(&extra, "llama.attention.sliding_window", 48);
    const char *path = ad_test_path(ad_test_tmpdir(), "llama3.gguf");
    write_gguf_arch(path, "llama", &m.cfg, ts, n, &extra, 2);
    AdModel b;
    ck_assert_msg(ad_import(path, AD_IMPORT_GGUF, NULL, &b, NULL) == AD_OK, "%s", ad_errmsg());
    ck_assert_int_eq(b.cfg.rope_scaling, AD_ROPE_SCALING_LLAMA3);
    ck_assert(b.cfg.rope_factor == 8.0f && b.cfg.rope_low_freq_factor == 1.0f);
    ck_assert(b.cfg.rope_high_freq_factor == 4.0f && b.cfg.rope_original_max_pos == 8192);
    ck_assert(b.cfg.rope_theta == 500000.0f);
    ck_assert_int_eq(b.cfg.sliding_window, 48);
    ck_assert_mem_eq(b.params_mem, m.params_mem, m.n_params * sizeof(float));
    ad_model_free(&b);
    int j = regimes[0]; /* the first interpolated pair */
    div[j] *= 1.01f;
    write_gguf_arch(path, "llama", &m.cfg, ts, n, &extra, 2);
    char want[64];
    snprintf(want, sizeof want, "rope_freqs.weight[%d]", j);
    expect_import_fail(path, want, "other RoPE frequency factors are not supported");
    free(extra.p);
    ad_model_free(&m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("quant");
    const AdTestCase cases[] = {
        {"q8_0_block", test_q8_0_block},
        {"q4_0_block", test_q4_0_block},
        {"q4_k_block", test_q4_k_block},
        {"q5_k_block", test_q5_k_block},
        {"q6_k_block", test_q6_k_block},
        {"roundtrip_stories", test_roundtrip_stories},
        {"gguf_quantized_import", test_gguf_quantized_import},
        {"gguf_quantized_malformed", test_gguf_quantized_malformed},
        {"stories_quantized_greedy", test_stories_quantized_greedy},
        {"gguf_qwen2", test_gguf_qwen2},
        {"gguf_llama3_rope_freqs", test_gguf_llama3_rope_freqs},
    };
    ad_test_add_cases(s, cases, sizeof cases / sizeof cases[0], TIMEOUT);
    return ad_test_run(s);
}
