/* Random *valid* K-quant blocks for herd synth --random-blocks (see synth_blocks.c). */
#ifndef HERD_MODEL_SYNTH_BLOCKS_H
#define HERD_MODEL_SYNTH_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

/* True for the types synth_random_blocks() can write (Q2_K..Q6_K). */
bool synth_random_blocks_type(int type);

/* Fills n elements (n % 256 == 0) of `type` at dst with random blocks: every quant and sub-block scale /
 * min byte uniformly random, then per block the f16 super-block scales chosen so that the block's
 * dequantized values have mean ~0 (dmin balances the mins) and RMS `rms`. Deterministic in seed. */
void synth_random_blocks(int type, uint8_t *dst, int64_t n, float rms, uint64_t seed);

#endif
