/* Number formats and block layouts (llama.cpp's, bit for bit), with scalar reference conversions.
 *
 *   f16   IEEE binary16. Conversions round to nearest, ties to even (what F16C does).
 *   bf16  top 16 bits of a binary32; from f32 rounds to nearest even, NaNs stay (quiet) NaNs.
 *   q8_0  blocks of 32: { f16 d; int8 qs[32] }          x[i] = d * qs[i]               34 bytes
 *   q4_0  blocks of 32: { f16 d; uint8 qs[16] }         x[i]    = d * ((qs[i] & 15) - 8)
 *                                                       x[i+16] = d * ((qs[i] >> 4) - 8)   18 bytes
 * A row of n elements of a block type is n/32 consecutive blocks.
 */
#ifndef HERD_KERNELS_TYPES_H
#define HERD_KERNELS_TYPES_H

#include <stdint.h>

#define QK8_0 32
#define QK4_0 32

typedef struct {
    uint16_t d;          /* f16 scale */
    int8_t qs[QK8_0];
} block_q8_0;

typedef struct {
    uint16_t d;          /* f16 scale */
    uint8_t qs[QK4_0 / 2]; /* element j in the low nibble of byte j, element j+16 in the high nibble */
} block_q4_0;

_Static_assert(sizeof(block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(block_q4_0) == 18, "q4_0 block is 18 bytes");

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

/* Row conversions, scalar references (n any length; block types need n % 32 == 0). */
void row_f32_to_f16_ref(const float *x, void *y, int64_t n);
void row_f32_to_bf16_ref(const float *x, void *y, int64_t n);
void row_f32_to_f32_ref(const float *x, void *y, int64_t n);
/* q8_0: d = max|x| / 127, q = round(x / d) — llama.cpp's quantize_row_q8_0_ref. */
void row_quantize_q8_0_ref(const float *x, void *y, int64_t n);
/* q4_0: d = (the value of largest magnitude, with its sign) / -8, q = min(15, (int)(x/d + 8.5)). */
void row_quantize_q4_0_ref(const float *x, void *y, int64_t n);

void row_f16_to_f32_ref(const void *x, float *y, int64_t n);
void row_bf16_to_f32_ref(const void *x, float *y, int64_t n);
void row_f32_copy_ref(const void *x, float *y, int64_t n);
void row_dequantize_q8_0_ref(const void *x, float *y, int64_t n);
void row_dequantize_q4_0_ref(const void *x, float *y, int64_t n);

#endif
