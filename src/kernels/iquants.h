/* The low-bit i-quants and the ternary types: llama.cpp's formats, bit for bit (ggml-common.h), with
 * scalar reference dequantization and dots (ref/iquants_ref.c). Every type has super-blocks of 256
 * (QK_K) elements; a row of n elements is n / 256 consecutive blocks. Each is dotted with a q8_K
 * activation row (kquants.h). No quantizer here: llama-quantize needs an importance matrix for most of
 * these, and herd only reads them.
 *
 * Lattice types: groups of 8 (iq2, iq1) or 4 (iq3) elements take one entry of a fixed grid (iq_grids.c,
 * coordinate k of an entry in its byte k) and, except iq1, a sign per element. ksigns_iq2xs[s] expands 7
 * stored sign bits into 8 (the eighth makes the count even). Per 32-element block b (ib32 below), with
 * d the f16 scale of the super-block and sign(j) = -1 where bit j of the group's signs is set:
 *
 *   iq2_xxs  66 bytes { f16 d; u16 qs[32] }: block b = qs[4b .. 4b+3] as two u32 a0, a1: group l < 4
 *            is iq2xxs_grid[byte l of a0], signs ksigns[(a1 >> 7l) & 127]; x = d (0.5 + (a1 >> 28)) 0.25
 *            * grid * sign
 *   iq2_xs   74 bytes { f16 d; u16 qs[32]; u8 scales[8] }: group g < 32 is iq2xs_grid[qs[g] & 511],
 *            signs ksigns[qs[g] >> 9]; groups 4b, 4b+1 scale nibble 0 of scales[b], 4b+2, 4b+3 nibble 1;
 *            x = d (0.5 + s) 0.25 * grid * sign
 *   iq2_s    82 bytes { f16 d; u8 qs[32]; u8 signs[32]; u8 qh[8]; u8 scales[8] }: group g = 4b + l is
 *            iq2s_grid[qs[g] | ((qh[b] >> 2l) & 3) << 8], signs signs[g]; scales as iq2_xs
 *   iq3_xxs  98 bytes { f16 d; u8 qs[64]; u32 sas[8] }: block b: half-group h < 8 (4 elements) is
 *            iq3xxs_grid[qs[8b + h]], group l = h / 2 takes signs ksigns[(sas[b] >> 7l) & 127];
 *            x = d (0.5 + (sas[b] >> 28)) 0.5 * grid * sign
 *   iq3_s    110 bytes { f16 d; u8 qs[64]; u8 qh[8]; u8 signs[32]; u8 scales[4] }: half-group h of block b
 *            is iq3s_grid[qs[8b + h] | bit h of qh[b] << 8], signs[4b + h / 2]; x = d (1 + 2 s) * grid * sign,
 *            s = nibble (b % 2) of scales[b / 2]
 *   iq1_s    50 bytes { f16 d; u8 qs[32]; u16 qh[8] }: group l of block b is iq1s_grid[qs[4b + l] |
 *            ((qh[b] >> 3l) & 7) << 8] (coordinates -1, 0, 1); x = d (2 ((qh[b] >> 12) & 7) + 1) *
 *            (grid + delta), delta = -0.125 if bit 15 of qh[b] else +0.125
 *   iq1_m    56 bytes { u8 qs[32]; u8 qh[16]; u16 sc[4] }: the f16 d is the top nibbles of sc[0..3]
 *            (sc[0] >> 12 lowest); group l of block b is iq1s_grid[qs[4b + l] | (nibble (l % 2) of
 *            qh[2b + l / 2] & 7) << 8], delta by bit 3 of that nibble; groups 0-1 scale
 *            2 ((sc[b / 2] >> 6 (b % 2)) & 7) + 1, groups 2-3 the next 3 bits; x = d scale (grid + delta)
 *   tq1_0    54 bytes { u8 qs[48]; u8 qh[4]; f16 d }: base-3 digits, 5 per byte of qs and 4 per byte of qh,
 *            digit k of byte q is ((u8)(q * 3^k) * 3) >> 8 (0..2); element order: qs[0..31] digit k
 *            -> 32k + m, qs[32..47] -> 160 + 16k + m, qh -> 240 + 4k + j; x = (t - 1) * d
 *   tq2_0    66 bytes { u8 qs[64]; f16 d }: element 128c + 32l + m = (qs[32c + m] >> 2l) & 3, x = (t - 1) d
 *
 * Products are rounded as ggml's C and gguf-py's numpy compute them: the block scale first (d * (0.5 +
 * s) then * 0.25), then scale * grid, then the sign. Dots (as ggml's generic C): per super-block an
 * exact integer sum bsum = sum_b ls_b * sum (grid * sign * q8), with ls = 2 s + 1 for the iq2 and iq3
 * types, then
 *     iq2_*:   S += (d_w d_x) * bsum, result 0.125 S          iq3_xxs: likewise, 0.25 S
 *     iq3_s:   S += (d_w d_x) * bsum                           tq*:     S += (float)bsum * (d_w d_x)
 *     iq1_s/m: S += d_w d_x * (bsum + 0.125 * bsum_delta), bsum_delta = sum_b ls_b * delta_b * (block sums
 *              of q8, from its bsums for iq1_s)
 * so every ISA's variant that sums the integers exactly is bit-identical to the reference.
 */
#ifndef HERD_KERNELS_IQUANTS_H
#define HERD_KERNELS_IQUANTS_H

#include <stdint.h>

#include "kquants.h"

typedef struct {
    uint16_t d;
    uint16_t qs[QK_K / 8];
} block_iq2_xxs;

typedef struct {
    uint16_t d;
    uint16_t qs[QK_K / 8];
    uint8_t scales[QK_K / 32];
} block_iq2_xs;

typedef struct {
    uint16_t d;
    uint8_t qs[QK_K / 4]; /* 32 grid index bytes, then 32 sign bytes */
    uint8_t qh[QK_K / 32];
    uint8_t scales[QK_K / 32];
} block_iq2_s;

typedef struct {
    uint16_t d;
    uint8_t qs[3 * QK_K / 8]; /* 64 grid index bytes, then 8 u32 of signs and scales */
} block_iq3_xxs;

typedef struct {
    uint16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
} block_iq3_s;

typedef struct {
    uint16_t d;
    uint8_t qs[QK_K / 8];
    uint16_t qh[QK_K / 32];
} block_iq1_s;

typedef struct {
    uint8_t qs[QK_K / 8];
    uint8_t qh[QK_K / 16];
    uint8_t scales[QK_K / 32];
} block_iq1_m;

typedef struct {
    uint8_t qs[(QK_K - 4 * QK_K / 64) / 5];
    uint8_t qh[QK_K / 64];
    uint16_t d;
} block_tq1_0;

typedef struct {
    uint8_t qs[QK_K / 4];
    uint16_t d;
} block_tq2_0;

_Static_assert(sizeof(block_iq2_xxs) == 66, "iq2_xxs block is 66 bytes");
_Static_assert(sizeof(block_iq2_xs) == 74, "iq2_xs block is 74 bytes");
_Static_assert(sizeof(block_iq2_s) == 82, "iq2_s block is 82 bytes");
_Static_assert(sizeof(block_iq3_xxs) == 98, "iq3_xxs block is 98 bytes");
_Static_assert(sizeof(block_iq3_s) == 110, "iq3_s block is 110 bytes");
_Static_assert(sizeof(block_iq1_s) == 50, "iq1_s block is 50 bytes");
_Static_assert(sizeof(block_iq1_m) == 56, "iq1_m block is 56 bytes");
_Static_assert(sizeof(block_tq1_0) == 54, "tq1_0 block is 54 bytes");
_Static_assert(sizeof(block_tq2_0) == 66, "tq2_0 block is 66 bytes");

#define IQ1_DELTA 0.125f /* ggml's IQ1S_DELTA and IQ1M_DELTA */

/* The tables (iq_grids.c, generated by tools/gen_iq_grids.py). */
extern const uint8_t ksigns_iq2xs[128];
extern const uint64_t iq2xxs_grid[256];
extern const uint64_t iq2xs_grid[512];
extern const uint64_t iq2s_grid[1024];
extern const uint32_t iq3xxs_grid[256];
extern const uint32_t iq3s_grid[512];
extern const uint64_t iq1s_grid[2048];

/* Scalar references (n a multiple of 256). */
void row_dequantize_iq2_xxs_ref(const void *x, float *y, int64_t n);
void row_dequantize_iq2_xs_ref(const void *x, float *y, int64_t n);
void row_dequantize_iq2_s_ref(const void *x, float *y, int64_t n);
void row_dequantize_iq3_xxs_ref(const void *x, float *y, int64_t n);
void row_dequantize_iq3_s_ref(const void *x, float *y, int64_t n);
void row_dequantize_iq1_s_ref(const void *x, float *y, int64_t n);
void row_dequantize_iq1_m_ref(const void *x, float *y, int64_t n);
void row_dequantize_tq1_0_ref(const void *x, float *y, int64_t n);
void row_dequantize_tq2_0_ref(const void *x, float *y, int64_t n);

#endif
