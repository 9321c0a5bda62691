/* q1_0 and q2_0: llama.cpp's 1-bit and 2-bit block types (ggml-common.h; llama-quantize's Q1_0 and Q2_0,
 * GGML types 41 and 42), bit for bit, with scalar reference dequantization and dots (ref/bitquants_ref.c).
 * A row of n elements is n / block consecutive blocks. Read only: herd does not write them.
 *
 *   q1_0  128 elements, 18 bytes { f16 d; u8 qs[16] }: element j is bit j % 8 of qs[j / 8];
 *         x = d where the bit is set, else -d
 *   q2_0  64 elements, 18 bytes { f16 d; u8 qs[16] }: element j is t = (qs[j / 4] >> 2 (j % 4)) & 3;
 *         x = (t - 1) * d (levels -d, 0, d, 2d; the product as ggml's ((int)t - 1) * d)
 *
 * Dot partner (as llama.cpp): q8_0, one weight block spanning 4 (q1_0) or 2 (q2_0) q8_0 blocks. As ggml's
 * generic C (ggml-cpu/quants.c): per q8_0 block k an exact integer sum s_k = sum w_int * q8 (w_int = +-1,
 * or t - 1), then per weight block
 *     sumi = 0; sumi += d_x,k * s_k (k in order, f32);   S += d_w * sumi
 * so every ISA's variant that sums the integers exactly is bit-identical to the reference.
 * gguf-py (gguf/quants.py) of the bundled llama.cpp has no numpy code for these two types; the reference here
 * is ggml's dequantize_row_q1_0 / q2_0 (ggml-quants.c), which tests/conformance/bitquants_llama_cpp.sh checks
 * against through llama.cpp's logits.
 */
#ifndef HERD_KERNELS_BITQUANTS_H
#define HERD_KERNELS_BITQUANTS_H

#include <stdint.h>

#define QK1_0 128
#define QK2_0 64

typedef struct {
    uint16_t d;
    uint8_t qs[QK1_0 / 8];
} block_q1_0;

typedef struct {
    uint16_t d;
    uint8_t qs[QK2_0 / 4];
} block_q2_0;

_Static_assert(sizeof(block_q1_0) == 18, "q1_0 block is 18 bytes");
_Static_assert(sizeof(block_q2_0) == 18, "q2_0 block is 18 bytes");

/* Scalar references (n a multiple of the block). */
void row_dequantize_q1_0_ref(const void *x, float *y, int64_t n);
void row_dequantize_q2_0_ref(const void *x, float *y, int64_t n);

#endif
