/* Sampling (llama.cpp's chain and order): repetition penalty -> top-k -> top-p -> min-p ->
 * temperature -> draw from the softmax with a seeded RNG. temp <= 0 is greedy (argmax after the
 * penalty). With a constraint (herd_sampler_set_constraint) only the tokens it allows stay
 * candidates, after the penalty and before the filters, so greedy picks the best allowed token.
 * Implements the herd_sampler_* functions of herd.h. */
#ifndef HERD_SAMPLE_H
#define HERD_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "herd.h"

/* xoshiro256** seeded through splitmix64: the same seed gives the same stream on every machine. */
typedef struct {
    uint64_t s[4];
} sample_rng;

void sample_rng_seed(sample_rng *r, uint64_t seed);
uint64_t sample_rng_next(sample_rng *r);
double sample_rng_uniform(sample_rng *r); /* [0, 1), 53 random bits */

/* For speculative decoding (src/spec/): the distribution herd_sampler_sample would draw from, given
 * the sampler's state (penalty window, constraint) and logits: probs[n_vocab] gets each candidate's
 * probability after the whole chain (penalty, constraint, top-k, top-p, min-p, temperature), 0 for the
 * others; greedy: 1 at the argmax. Returns the number of candidates. Does not advance anything. */
int64_t sampler_dist(herd_sampler *s, const float *logits, float *probs);
/* A uniform draw in [0, 1) from the sampler's own seeded stream. */
double sampler_uniform(herd_sampler *s);
bool sampler_greedy(const herd_sampler *s);
/* Empties the penalty window (a draft sampler refilled for each proposal). */
void sampler_clear_recent(herd_sampler *s);
const herd_sampler_params *sampler_params(const herd_sampler *s);

#endif
