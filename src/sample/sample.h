/* Sampling (llama.cpp's chain and order): repetition penalty -> top-k -> top-p -> min-p ->
 * temperature -> draw from the softmax with a seeded RNG. temp <= 0 is greedy (argmax after the
 * penalty). With a constraint (herd_sampler_set_constraint) only the tokens it allows stay
 * candidates, after the penalty and before the filters, so greedy picks the best allowed token.
 * Implements the herd_sampler_* functions of herd.h. */
#ifndef HERD_SAMPLE_H
#define HERD_SAMPLE_H

#include <stdint.h>

/* xoshiro256** seeded through splitmix64: the same seed gives the same stream on every machine. */
typedef struct {
    uint64_t s[4];
} sample_rng;

void sample_rng_seed(sample_rng *r, uint64_t seed);
uint64_t sample_rng_next(sample_rng *r);
double sample_rng_uniform(sample_rng *r); /* [0, 1), 53 random bits */

#endif
