/* The legacy block types and the 4-bit i-quants: llama.cpp's formats, bit for bit (ggml-common.h),
 * with scalar reference conversions, dots and quantizers (ref/legacy_ref.c). A row of n elements is
 * n / block consecutive blocks. j < 16 below; element j of a 32-block sits in the low nibble of qs[j],
 * element j + 16 in the high nibble (as q4_0, types.h).
 *
 *   q4_1    20 bytes { f16 d; f16 m; u8 qs[16] }        x = d * q + m               q = nibble (0..15)
 *   q5_0    22 bytes { f16 d; u8 qh[4]; u8 qs[16] }     x = d * (q - 16)            q = nibble | 16 * bit e of qh
 *   q5_1    24 bytes { f16 d; f16 m; u8 qh[4]; u8 qs[16] }  x = d * q + m            (qh: u32 little-endian)
 *   q8_1    36 bytes { f16 d; f16 s; i8 qs[32] }        x = d * qs; s = f16(d * sum qs)   (activations)
 *   iq4_nl  18 bytes { f16 d; u8 qs[16] }               x = d * K[q], K = k_iq4nl below
 *   iq4_xs  136 bytes per 256 { f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128] }: eight 32-blocks,
 *           block b: ls = nibble (b % 2) of scales_l[b / 2] | 16 * bits 2b..2b+1 of scales_h (0..63),
 *           x = (d * (ls - 32)) * K[q], q as iq4_nl in qs[16 b ..]
 * "x = d * q + m" is two roundings (a product, then a sum), as ggml's C and gguf-py's numpy compute it.
 *
 * Dot partners (vec_dot types, as llama.cpp): q5_0, iq4_nl -> q8_0; q4_1, q5_1 -> q8_1 (its s carries
 * the block sum, so the min term costs one multiply per block); iq4_xs -> q8_K. Per block the integer
 * dot is exact; the reference then adds, in block order,
 *     q5_0, iq4_nl:  (d_w d_x) * isum
 *     q4_1, q5_1:    (d_w d_x) * isum + m_w s_x
 *     iq4_xs:        (d_w d_x) * (exact integer sum over the 8 blocks of (ls - 32) * isum_b)
 */
#ifndef HERD_KERNELS_LEGACY_H
#define HERD_KERNELS_LEGACY_H

#include <stdint.h>

#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_1 32
#define QK4_NL 32

typedef struct {
    uint16_t d, m;
    uint8_t qs[QK4_1 / 2];
} block_q4_1;

typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} block_q5_0;

typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;

typedef struct {
    uint16_t d, s;
    int8_t qs[QK8_1];
} block_q8_1;

typedef struct {
    uint16_t d;
    uint8_t qs[QK4_NL / 2];
} block_iq4_nl;

typedef struct {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[4];
    uint8_t qs[128];
} block_iq4_xs;

/* the 6-bit scale of iq4_xs 32-block ib (0..63; the value is ls - 32) */
static inline int iq4_xs_scale(const block_iq4_xs *b, int ib) {
    return ((b->scales_l[ib / 2] >> 4 * (ib % 2)) & 15) | (((b->scales_h >> 2 * ib) & 3) << 4);
}

_Static_assert(sizeof(block_q4_1) == 20, "q4_1 block is 20 bytes");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 block is 22 bytes");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 block is 24 bytes");
_Static_assert(sizeof(block_q8_1) == 36, "q8_1 block is 36 bytes");
_Static_assert(sizeof(block_iq4_nl) == 18, "iq4_nl block is 18 bytes");
_Static_assert(sizeof(block_iq4_xs) == 136, "iq4_xs block is 136 bytes");

/* The 16 non-uniform levels of iq4_nl / iq4_xs (ggml's kvalues_iq4nl). */
extern const int8_t k_iq4nl[16];

/* Scalar references (n a multiple of the block). */
void row_dequantize_q4_1_ref(const void *x, float *y, int64_t n);
void row_dequantize_q5_0_ref(const void *x, float *y, int64_t n);
void row_dequantize_q5_1_ref(const void *x, float *y, int64_t n);
void row_dequantize_q8_1_ref(const void *x, float *y, int64_t n);
void row_dequantize_iq4_nl_ref(const void *x, float *y, int64_t n);
void row_dequantize_iq4_xs_ref(const void *x, float *y, int64_t n);
/* ggml's quantize_row_*_ref (no importance matrix), bit for bit. */
void row_quantize_q4_1_ref(const float *x, void *y, int64_t n);
void row_quantize_q5_0_ref(const float *x, void *y, int64_t n);
void row_quantize_q5_1_ref(const float *x, void *y, int64_t n);
void row_quantize_q8_1_ref(const float *x, void *y, int64_t n);
void row_quantize_iq4_nl_ref(const float *x, void *y, int64_t n);
void row_quantize_iq4_xs_ref(const float *x, void *y, int64_t n);

#endif
