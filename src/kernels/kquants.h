/* K-quants: llama.cpp's super-block formats, bit for bit (ggml-common.h), with scalar reference
 * conversions, dots and quantizers. A row of n elements is n/256 consecutive super-blocks.
 *
 * Element e of a super-block (0 <= e < 256) and where its bits live. "Group" g = e / 16 (16
 * elements, Q2_K/Q3_K/Q6_K) or sub-block s = e / 32 (32 elements, Q4_K/Q5_K). Within a 128- or
 * 64-element chunk the quants are interleaved by bit plane, so element e does not sit at byte e:
 *
 *   q2_K  84 bytes { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin }
 *         e = 128h + 32k + l (h < 2, k < 4, l < 32): q = (qs[32h + l] >> 2k) & 3          (0..3)
 *         x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4)
 *   q3_K  110 bytes { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d }
 *         e = 128h + 32k + l: q = ((qs[32h + l] >> 2k) & 3) + 4 * bit(hmask[l], 4h + k) - 4   (-4..3)
 *         x = d * (sc[g] - 32) * q, sc[g] 6 bits: low 4 in scales[g % 8] (nibble g / 8),
 *         high 2 in scales[8 + g % 4] (bits 2(g / 4)..+1)
 *   q4_K  144 bytes { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }
 *         e = 64c + 32u + l (c < 4, u < 2): q = nibble u of qs[32c + l]                     (0..15)
 *         x = d * sc[s] * q - dmin * m[s], 6-bit (sc, m) per sub-block, packed by kq_scale_min()
 *   q5_K  176 bytes { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }
 *         as q4_K plus q += 16 * bit(qh[l], 2c + u)                                         (0..31)
 *   q6_K  210 bytes { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }
 *         e = 128h + 32k + l: low 4 bits = nibble (k / 2) of ql[64h + 32(k % 2) + l],
 *         high 2 bits = (qh[32h + l] >> 2k) & 3; q = (low | high << 4) - 32                (-32..31)
 *         x = d * scales[g] * q
 *   q8_K  292 bytes { f32 d; i8 qs[256]; i16 bsums[16] }   x = d * qs[e]; bsums[g] = sum of group g's qs
 *
 * Q8_K is the K-quants' activation type (as in llama.cpp): a dot of a K-quant row with a Q8_K row is,
 * per super-block, d_w d_x * (exact integer sum of scale * q_w * q_x) minus, for the types with
 * mins, dmin_w d_x * (exact integer sum of m * bsums) — bsums exist so the min term costs 16
 * multiplies, not 256.
 */
#ifndef HERD_KERNELS_KQUANTS_H
#define HERD_KERNELS_KQUANTS_H

#include <stdint.h>

#define QK_K 256

typedef struct {
    uint8_t scales[QK_K / 16]; /* low nibble: scale, high nibble: min, per group of 16 */
    uint8_t qs[QK_K / 4];      /* 2-bit quants */
    uint16_t d;                /* f16 super-block scale of the scales */
    uint16_t dmin;             /* f16 super-block scale of the mins */
} block_q2_K;

typedef struct {
    uint8_t hmask[QK_K / 8]; /* high bit of each quant */
    uint8_t qs[QK_K / 4];    /* low 2 bits */
    uint8_t scales[12];      /* 16 scales of 6 bits, offset 32 */
    uint16_t d;              /* f16 */
} block_q3_K;

typedef struct {
    uint16_t d;          /* f16 super-block scale of the scales */
    uint16_t dmin;       /* f16 super-block scale of the mins */
    uint8_t scales[12];  /* 8 scales and 8 mins of 6 bits */
    uint8_t qs[QK_K / 2]; /* 4-bit quants */
} block_q4_K;

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8]; /* fifth bit of each quant */
    uint8_t qs[QK_K / 2]; /* low 4 bits */
} block_q5_K;

typedef struct {
    uint8_t ql[QK_K / 2];     /* low 4 bits */
    uint8_t qh[QK_K / 4];     /* high 2 bits */
    int8_t scales[QK_K / 16]; /* one signed scale per group of 16 */
    uint16_t d;               /* f16 */
} block_q6_K;

typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;

_Static_assert(sizeof(block_q2_K) == 84, "q2_K block is 84 bytes");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K block is 110 bytes");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K block is 144 bytes");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K block is 176 bytes");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K block is 210 bytes");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K block is 292 bytes");

/* The 6-bit scale and min of sub-block s (0..7) of a q4_K / q5_K block: sub-blocks 0-3 keep theirs in
 * the low 6 bits of bytes s (scale) and s + 4 (min); sub-blocks 4-7 keep their low 4 bits in the
 * nibbles of byte s + 4 and their high 2 bits in the top bits of bytes s - 4 (scale) and s (min). */
void kq_scale_min(const uint8_t scales[12], int s, uint8_t *sc, uint8_t *m);
/* The inverse: packs 8 scales and 8 mins (each < 64) into 12 bytes. */
void kq_pack_scale_min(const uint8_t sc[8], const uint8_t m[8], uint8_t scales[12]);
/* The 16 signed scales (-32..31) of a q3_K block, and the inverse packing (each in -32..31). */
void kq3_scales(const uint8_t packed[12], int8_t out[16]);
void kq3_pack_scales(const int8_t sc[16], uint8_t packed[12]);

/* Sets the f16 super-block scale(s) of one block of a K type (dmin ignored by q3_K / q6_K). */
void kq_block_set_scales(int type, void *block, uint16_t d, uint16_t dmin);

/* Reference conversions (n a multiple of 256). */
void row_dequantize_q2_K_ref(const void *x, float *y, int64_t n);
void row_dequantize_q3_K_ref(const void *x, float *y, int64_t n);
void row_dequantize_q4_K_ref(const void *x, float *y, int64_t n);
void row_dequantize_q5_K_ref(const void *x, float *y, int64_t n);
void row_dequantize_q6_K_ref(const void *x, float *y, int64_t n);
void row_dequantize_q8_K_ref(const void *x, float *y, int64_t n);

/* q8_K activations, llama.cpp's quantize_row_q8_K_ref: max = the first element of largest magnitude
 * (with its sign), iscale = -127 / max, q = min(127, round-half-even(iscale * x)), d = 1 / iscale,
 * bsums = the 16 group sums; an all-zero block gets d = 0, q = 0. |q| <= 127: never -128. */
void row_quantize_q8_K_ref(const float *x, void *y, int64_t n);

/* Weight quantizers (src/kernels/ref/kquants_quantize.c): llama.cpp's search without an importance
 * matrix (make_qkx2_quants for the types with mins, make_qx_quants / make_q3_quants for the others),
 * then a refinement of the quantized 6/8-bit sub-block scales that never increases a sub-block's
 * squared error. See that file for the algorithm and docs/FORMATS.md for the measured error. */
void row_quantize_q2_K_ref(const float *x, void *y, int64_t n);
void row_quantize_q3_K_ref(const float *x, void *y, int64_t n);
void row_quantize_q4_K_ref(const float *x, void *y, int64_t n);
void row_quantize_q5_K_ref(const float *x, void *y, int64_t n);
void row_quantize_q6_K_ref(const float *x, void *y, int64_t n);
/* The first stage alone: llama.cpp's quantize_row_<type>_ref byte for byte (tests/unit/test_kquants.c
 * checks hashes of llama.cpp's own output). The yardstick herd's quantizers are measured against.
 * type: HERD_TYPE_Q2_K..Q6_K; -1 for another type. */
int kq_quantize_row_llama(int type, const float *x, void *y, int64_t n);

#endif
