/* rng.h: deterministic random streams. Each consumer (weight init, data order,
 * sampling, selection, ...) owns a stream derived from (seed, stream id, round), so
 * no consumer's draws depend on another's. No global state. xoshiro256** seeded via
 * splitmix64 of the three keys. */
#ifndef AUTODIDACT_RNG_H
#define AUTODIDACT_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} AdRng;

/* Well-known stream ids; the other key of a stream is the round (or a sub-index). */
enum {
    AD_STREAM_INIT = 1,     /* weight initialisation */
    AD_STREAM_DATA = 2,     /* training batch order / task example generation */
    AD_STREAM_EVAL = 3,     /* evaluation set generation */
    AD_STREAM_SAMPLE = 4,   /* token sampling during generation */
    AD_STREAM_SELECT = 5,   /* random selection policies */
    AD_STREAM_PROMPTS = 6,  /* prompt generation for rounds */
    AD_STREAM_DROPOUT = 7
};

void ad_rng_init(AdRng *r, uint64_t seed, uint64_t stream, uint64_t sub);
uint64_t ad_rng_u64(AdRng *r);
/* Uniform in [0, 1) with 24 random bits. */
float ad_rng_uniform(AdRng *r);
/* Uniform in [0, 1) with 53 random bits. */
double ad_rng_uniform_double(AdRng *r);
/* Standard normal (Box-Muller, consumes two uniforms). */
float ad_rng_normal(AdRng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint32_t ad_rng_below(AdRng *r, uint32_t n);

#endif
