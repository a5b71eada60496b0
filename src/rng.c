/* rng.c: xoshiro256** streams keyed by (seed, stream, sub) through splitmix64.
 * Deterministic and independent of threads; no global state. */
#include "autodidact/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ad_rng_init(AdRng *r, uint64_t seed, uint64_t stream, uint64_t sub) {
    uint64_t x = seed;
    uint64_t k = splitmix64(&x);
    x = k ^ (stream * 0xD1B54A32D192ED03ull);
    k = splitmix64(&x);
    x = k ^ (sub * 0x8CB92BA72F3D8DD7ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ad_rng_u64(AdRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float ad_rng_uniform(AdRng *r) { return (float)(ad_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double ad_rng_uniform_double(AdRng *r) {
    return (double)(ad_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

float ad_rng_normal(AdRng *r) {
    double u1 = ad_rng_uniform_double(r), u2 = ad_rng_uniform_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint32_t ad_rng_below(AdRng *r, uint32_t n) {
    /* Lemire's nearly divisionless method, made exact by rejection. */
    uint64_t m = (uint64_t)(uint32_t)(ad_rng_u64(r) >> 32) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)(uint32_t)(ad_rng_u64(r) >> 32) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
