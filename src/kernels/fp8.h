/* FP8 E4M3 and the rowwise scheme of Meta's FP8 checkpoints (LLAMA31.md, FP8) — a herd extension.
 *
 * E4M3 ("e4m3fn", torch.float8_e4m3fn, safetensors F8_E4M3): sign, 4 exponent bits (bias 7), 3
 * mantissa bits, no infinities, 0x7f / 0xff are NaN, largest finite 448:
 *     value(s,e,m) = (-1)^s * 2^(e-7) * (1 + m/8)   for e = 1..15
 *                  = (-1)^s * 2^-6 * m/8             for e = 0 (subnormal)
 * Conversion from f32 rounds to nearest, ties to even, and saturates at +-448 (NaN -> 0x7f).
 *
 * Rowwise quantization (fbgemm's quantize_fp8_per_row, used by Meta and transformers):
 *     inv = min(448 / min(max|x|, ub), 448 * 512);   q_i = e4m3(clamp(x_i * inv, -448, 448));
 *     scale = 1 / inv                                 (so x_i ~ q_i * scale)
 * Weights (ub = +inf) keep one scale per output row in a companion tensor; activations are
 * quantized per token row at run time with ub = activation_scale_ub (1200 for Meta's 405B), and
 * stored as an FP8 activation row { f32 scale; uint8 q[n] } (KERNEL_TYPE_FP8_ACT, n + 4 bytes).
 * The dot of a weight row w with an activation row a is  a.scale * sum_i w_i * a.q_i;  the matmul
 * multiplies by the weight row's scale.
 */
#ifndef HERD_KERNELS_FP8_H
#define HERD_KERNELS_FP8_H

#include <stdint.h>

#define FP8_E4M3_MAX 448.0f

float fp8_e4m3_to_f32(uint8_t b);
uint8_t fp8_e4m3_from_f32(float x);
/* Quantizes x[0..n) into q with the rowwise scheme above; returns the scale (1 / inv). */
float fp8_quantize_row_ref(const float *x, uint8_t *q, int64_t n, float ub);

#endif
