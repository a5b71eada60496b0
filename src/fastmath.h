/* fastmath.h: exp and tanh written so gcc vectorises them without -ffast-math
 * (which would also disable NaN checks). Relative error about 2 ulp for exp;
 * NaN inputs give NaN outputs. Internal to the kernels and losses. */
#ifndef AD_FASTMATH_H
#define AD_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float ad_expf(float x) {
    /* Cephes-style: exp(x) = 2^n * exp(r), |r| <= ln2/2, polynomial for exp(r). */
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -87.3365447505531f ? -87.3365447505531f : x;
    /* n = round(x / ln2): adding and subtracting 1.5 * 2^23 rounds to nearest without a
     * call to floorf, which gcc would not vectorise. */
    float fx = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    float z = r * r;
    float y = 1.9875691500E-4f;
    y = y * r + 1.3981999507E-3f;
    y = y * r + 8.3334519073E-3f;
    y = y * r + 4.1665795894E-2f;
    y = y * r + 1.6666665459E-1f;
    y = y * r + 5.0000001201E-1f;
    y = y * z + r + 1.0f;
    int32_t n = (int32_t)(fx == fx ? fx : 0.0f); /* NaN stays NaN through y */
    uint32_t bits = (uint32_t)(n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

static inline float ad_tanhf(float x) {
    /* tanh(x) = 1 - 2 / (exp(2x) + 1); for |x| < 0.005 use x - x^3/3 to avoid cancellation. */
    float e = ad_expf(2.0f * x);
    float t = 1.0f - 2.0f / (e + 1.0f);
    float small = x - x * x * x * (1.0f / 3.0f);
    return fabsf(x) < 0.005f ? small : t;
}

#endif
