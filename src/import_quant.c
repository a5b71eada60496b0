/* import_quant.c: dequantizes ggml's block formats (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) to
 * float32 for the GGUF reader; the engine trains in F32, so quantized weights are
 * expanded once at import. It does not quantize, and computes nothing in these formats.
 * Layouts and arithmetic follow ggml's reference dequantize_row_* (ggml-quants.c). */
#include "import_internal.h"

enum { QK = 32, QK_K = 256 };

/* Bytes of one block of each type (ggml-common.h):
 *   Q8_0 { f16 d; int8 qs[32] }                                       34 bytes, 32 values
 *   Q4_0 { f16 d; uint8 qs[16] }                                      18 bytes, 32 values
 *   Q4_K { f16 d, dmin; uint8 scales[12]; uint8 qs[128] }            144 bytes, 256 values
 *   Q5_K { f16 d, dmin; uint8 scales[12]; uint8 qh[32]; qs[128] }     176 bytes, 256 values
 *   Q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d }     210 bytes, 256 values */
int imp_dtype_block(ImpDtype t) {
    switch (t) {
    case IMP_Q8_0: case IMP_Q4_0: return QK;
    case IMP_Q4_K: case IMP_Q5_K: case IMP_Q6_K: return QK_K;
    default: return 1;
    }
}

size_t imp_dtype_block_bytes(ImpDtype t) {
    switch (t) {
    case IMP_F32: return 4;
    case IMP_F16: case IMP_BF16: return 2;
    case IMP_Q8_0: return 2 + QK;
    case IMP_Q4_0: return 2 + QK / 2;
    case IMP_Q4_K: return 4 + 12 + QK_K / 2;
    case IMP_Q5_K: return 4 + 12 + QK_K / 8 + QK_K / 2;
    case IMP_Q6_K: return QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;
    }
    return 0;
}

size_t imp_dtype_bytes(ImpDtype t, size_t n) {
    AD_ASSERT(n % (size_t)imp_dtype_block(t) == 0);
    return n / (size_t)imp_dtype_block(t) * imp_dtype_block_bytes(t);
}

static float f16_at(const unsigned char *p) { return imp_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* The 6-bit scale and min of sub-block j (0..7) packed in 12 bytes (ggml's get_scale_min_k4):
 * j < 4: low 6 bits of q[j] and q[j+4]; j >= 4: low/high nibble of q[j+4], with the top
 * two bits taken from q[j-4] (scale) and q[j] (min). */
static void scale_min_k4(int j, const unsigned char *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* y = d * q, q signed 8-bit. */
static void deq_q8_0(float *y, const unsigned char *b) {
    float d = f16_at(b);
    for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Value j (< 16) is the low nibble of qs[j], value j + 16 the high one; y = (q - 8) d. */
static void deq_q4_0(float *y, const unsigned char *b) {
    float d = f16_at(b);
    const unsigned char *qs = b + 2;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + QK / 2] = (float)((qs[j] >> 4) - 8) * d;
    }
}

/* Eight sub-blocks of 32; each 64 values share 32 bytes of qs (low nibbles first, then
 * high nibbles). y = (d sc) q - (dmin m); Q5_K adds a fifth bit from qh: bit 2i of
 * qh[l] for the low-nibble half of the i-th 64, bit 2i + 1 for the high half. */
static void deq_k4_k5(float *y, const unsigned char *b, int five) {
    float d = f16_at(b), dmin = f16_at(b + 2);
    const unsigned char *scales = b + 4, *qh = b + 16;
    const unsigned char *q = five ? b + 16 + QK_K / 8 : b + 16;
    for (int i = 0; i < 4; i++) {
        int sc, m;
        scale_min_k4(2 * i, scales, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(2 * i + 1, scales, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        int u1 = 1 << (2 * i), u2 = 2 << (2 * i);
        for (int l = 0; l < 32; l++) {
            int hi = five && (qh[l] & u1) ? 16 : 0;
            *y++ = d1 * (float)((q[l] & 0xF) + hi) - m1;
        }
        for (int l = 0; l < 32; l++) {
            int hi = five && (qh[l] & u2) ? 16 : 0;
            *y++ = d2 * (float)((q[l] >> 4) + hi) - m2;
        }
        q += 32;
    }
}

/* Two halves of 128; in each, value l + 32 k (l < 32, k < 4) takes 4 low bits from
 * ql (low nibble of ql[l] for k = 0, of ql[l + 32] for k = 1, high nibbles for k = 2, 3)
 * and 2 high bits from qh[l] (bits 2k, 2k+1); y = d * scales[l / 16 + 2k] * (q - 32). */
static void deq_q6_k(float *y, const unsigned char *b) {
    const unsigned char *ql = b, *qh = b + QK_K / 2;
    const int8_t *sc = (const int8_t *)(b + QK_K / 2 + QK_K / 4);
    float d = f16_at(b + QK_K / 2 + QK_K / 4 + QK_K / 16);
    for (int n = 0; n < QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

void imp_dequantize(float *dst, const unsigned char *src, ImpDtype t, size_t n) {
    size_t bk = (size_t)imp_dtype_block(t), bb = imp_dtype_block_bytes(t);
    AD_ASSERT(bk > 1 && n % bk == 0);
    long nb = (long)(n / bk);
#pragma omp parallel for schedule(static) if(nb >= 4096)
    for (long i = 0; i < nb; i++) {
        float *y = dst + (size_t)i * bk;
        const unsigned char *b = src + (size_t)i * bb;
        switch (t) {
        case IMP_Q8_0: deq_q8_0(y, b); break;
        case IMP_Q4_0: deq_q4_0(y, b); break;
        case IMP_Q4_K: deq_k4_k5(y, b, 0); break;
        case IMP_Q5_K: deq_k4_k5(y, b, 1); break;
        case IMP_Q6_K: deq_q6_k(y, b); break;
        default: AD_ASSERT(0);
        }
    }
}
