/* Interleaved ("packed") q8_0, q4_0, q5_0, iq4_nl, q4_1, q5_1, q4_K, q5_K, q6_K, iq4_xs, iq3_s, iq3_xxs and
 * iq2_s weights: 16 rows side by side, repacked once when a model loads, so that one 512-bit lane holds one row and a single
 * kernel serves decode (1 token) and prompt processing (many) with the same numerics.
 *
 * Why: the plain dots (kernels.h) reduce one row at a time and need ~4 vector ops per 64 weights plus a
 * horizontal sum per row; their GEMM must reproduce that order bit for bit and so packs each tile of
 * weight rows on every call. Here the packing happens once, the reduction runs across blocks in the
 * lanes of 16 rows, and the per-token cost is 8 vpdpbusd + 3 ops per 16 x 32 weights.
 *
 * Layout of a group of 16 rows of n elements (nb = n / 32 blocks), block b after block b-1:
 *   q8_0  d[16] f16 (row r's scale of block b), then q[8][16][4] bytes: q[c][r][j] = w_r[32b + 4c + j] + 128
 *         (unsigned)                                             32 + 512 = 544 bytes = 16 rows x 34
 *   q4_0  d[16] f16, then q[4][16][4] bytes: q[c][r][j] = byte 4c + j of row r's block (its low nibble is
 *         element 4c + j, its high nibble element 16 + 4c + j, both unsigned 0..15)
 *                                                                32 + 256 = 288 bytes = 16 rows x 18
 *   iq4_nl  as q4_0 (the same block bytes), the nibbles indices into k_iq4nl (legacy.h)
 *   q5_0  as q4_0, then hb[16][4] bytes: bit k of hb[r][j] = the fifth bit of the element whose low 4 bits
 *         are in stored chunk k % 4's byte j, low nibble for k < 4, high for k >= 4 (element 4k + j, or
 *         16 + 4(k - 4) + j)                                   32 + 256 + 64 = 352 bytes = 16 rows x 22
 *   q4_1, q5_1  d[16] f16, m[16] f16, then as q4_0's / q5_0's quants (from byte 64)
 *                                              64 + 256 (+ 64) = 320 (384) bytes = 16 rows x 20 (24)
 *   q4_K  per super-block of 256 (nb = n / 256): d[16] f16, dmin[16] f16, sc[8][16] u8 (sub-block s's
 *         6-bit scale of row r), mn[4][16][2] u8 (mn[i][r][j] = row r's min of sub-block 2i + j), then
 *         q[4][8][16][4] bytes: q[c][k][r][j] = qs_r[32c + 4k + j] (low nibble: element 64c + 4k + j, in
 *         sub-block 2c; high nibble: element 64c + 32 + 4k + j, sub-block 2c + 1)
 *                                                     64 + 128 + 128 + 2048 = 2368 bytes = 16 rows x 148
 *   q5_K  as q4_K (the same 2368 bytes: the low 4 bits of each quant), then qh[8][16][4] bytes:
 *         qh[k][r][j] = row r's qh[4k + j], whose bit s is the fifth bit of element 32s + 4k + j (sub-block
 *         s, chunk k): ggml's own qh bytes, 4 at a time, as the quants
 *                                                     2368 + 512 = 2880 bytes = 16 rows x 180
 *   q6_K  per super-block: d[16] f16, sc[16][16] i8 (group g's scale of row r; groups of 16 elements),
 *         then the 6-bit quants u = q + 32 (0..63) of chunk ch (elements 4ch..4ch+3) split in two planes:
 *         lo[32][16][4]: lo[c][r][j] = low 4 bits of chunk c's (low nibble) and chunk c + 32's (high nibble)
 *         hi[16][16][4]: bits 2i..2i+1 of hi[c][r][j] = the top 2 bits of chunk c + 16i's (i < 4)
 *                                                     32 + 256 + 2048 + 1024 = 3360 bytes = 16 rows x 210
 *   iq4_xs, iq3_s, iq3_xxs, iq2_s ("level-table" layouts: every weight a 4-bit code into a table of 16
 *         signed levels) per super-block: d[16] f16, ls[G][16] i8 (the integer scale of block or group g of
 *         row r: iq4_xs ls - 32 per block of 32, iq3_s / iq3_xxs 2 s + 1 per block of 32, iq2_s 2 s + 1 per
 *         group of 16: G = 8 or 16), then q[8][4][16][4] bytes: q[b][k][r][j] = the codes of row r's elements 32b + 4k + j (low
 *         nibble) and 32b + 16 + 4k + j (high nibble), as q4_0 within block b. The codes:
 *           iq4_xs  its own 4-bit index, levels k_iq4nl (legacy.h)
 *           iq3_s   m | sign << 3 for a grid coordinate 2m + 1 (1..15): level +-(2m + 1)
 *           iq3_xxs m | sign << 3 for a grid coordinate 4, 12, ..., 52, 62 (m = 0..7): level +-coordinate
 *           iq2_s   m | sign << 3 for a grid coordinate 8, 25, 43 (m = 0, 1, 2): level +-coordinate
 *         (the lattice types expanded at load: iq3_s 110 -> 138 bytes a row's super-block, iq3_xxs 98 -> 138,
 *         iq2_s 82 -> 146,
 *         in exchange for one table lookup a weight instead of grid gathers and sign expansion)
 *                                      32 + 128 + 2048 = 2208 bytes = 16 rows x 138 (iq2_s: 2336, x 146)
 *   A weight of n_out rows (n_out % 16 == 0) is n_out / 16 groups back to back.
 * Activations, from the row the plain path makes (its vec_dot type):
 *   q8_0, q4_0, q5_0, iq4_nl weights: per block of 32, 40 bytes { f32 d; int32 off; int8 q[32] }: q and d
 *     are the q8_0 row's (d its f16 scale widened), off = -128 * sum q (q8_0; iq4_nl, whose kernels look
 *     its levels up as K + 128), -8 * sum q (q4_0) or -16 * sum q (q5_0), which turns the unsigned weight
 *     bytes back into signed ones.
 *   q4_1, q5_1 weights: per block of 32, 40 bytes { f32 d; f32 s; int8 q[32] }: the q8_1 row's d, s (= d
 *     times the block's sum) and q.
 *   q4_K, q5_K weights: per super-block, 288 bytes { f32 d; 12 zero bytes; int16 nbs[8]; int8 q[256] }: the
 *     q8_K row's d and q, nbs[s] = -(sum of q over sub-block s).
 *   q6_K weights: per super-block, 336 bytes { f32 d; 12 zero bytes; int32 off[16]; int8 q[256] }:
 *     off[g] = -32 * (sum of q over group g), which turns u back into q.
 *   level-table weights: per super-block, 336 bytes { f32 d; 12 zero bytes; int32 off[16]; int8 q[256] }:
 *     off[g] = -128 * (sum of q over group g of 16), which turns the kernels' unsigned levels K + 128
 *     back into K.
 *
 * Numerics (the reference, pk_gemm_ref; every variant bit for bit, for any number of tokens and rows),
 * int sums exact in int32:
 *   q8_0, q4_0, q5_0, iq4_nl:  y = 0;  for b = 0 .. nb-1:  y = fmaf((float)isum_b, fl(dw_rb * dx_tb), y)
 *                isum_b = off_tb + sum_i u_rbi * x_tbi = sum_i ws_rbi * x_tbi
 *                with ws the signed weight (q8_0 w, q4_0 nibble - 8, q5_0 (nibble | 16 bit) - 16, iq4_nl
 *                K[nibble])
 *   q4_1, q5_1:  as q4_0 / q5_0 with the unsigned quants (no offset), then per block y = fmaf(m_rb, s_tb, y)
 *   q4_K, q5_K:  y = 0;  for each super-block:  y = fmaf((float)sumi, fl(d_r * dx_t), y);
 *                                               y = fmaf((float)summ, fl(dmin_r * dx_t), y)
 *                sumi = sum_s sc_rs * (sum_{i in s} q_ri * x_ti),  summ = sum_s mn_rs * nbs_ts
 *                (q the 4-bit quant, q5_K's 5-bit one: 0..31)
 *   q6_K:        y = 0;  for each super-block:  y = fmaf((float)sumi, fl(d_r * dx_t), y)
 *                sumi = sum_g sc_rg * (off_tg + sum_{i in g} u_ri * x_ti)
 *   level-table: y = 0;  for each super-block:  y = y + (float)sumi * fl(d_r * dx_t)        (no FMA)
 *                sumi = sum_g ls_rg * (sum_{i in g} K[q_ri] * x_ti);  then iq2_s y = 0.125 * y, iq3_xxs
 *                y = 0.25 * y
 *                (the plain dots' numerics, legacy.h / iquants.h: packed and plain agree bit for bit)
 * A result never depends on how many tokens or rows are computed with it, so batch invariance holds by
 * construction. It differs from the plain dot's only in rounding order (both within float rounding of
 * the exact sum).
 */
#ifndef HERD_KERNELS_PACKED_H
#define HERD_KERNELS_PACKED_H

#include <stdbool.h>
#include <stdint.h>

#define PK_ROWS 16     /* rows per group */
#define PK_X_BLOCK 40  /* bytes of one activation block (weights in blocks of 32) */
#define PK_XK_BLOCK 288 /* bytes of one activation super-block (q4_K / q5_K weights) */
#define PK_K4_BLOCK 2368 /* bytes of one q4_K super-block of a group */
#define PK_K5_BLOCK 2880 /* bytes of one q5_K super-block of a group (q4_K's, then the fifth bits) */
#define PK_K6_BLOCK 3360 /* bytes of one q6_K super-block of a group */
#define PK_XK6_BLOCK 336 /* bytes of one activation super-block (q6_K weights) */
#define PK_LT_BLOCK 2208  /* bytes of one iq4_xs / iq3_s / iq3_xxs super-block of a group */
#define PK_LT2_BLOCK 2336 /* bytes of one iq2_s super-block of a group (16 scales a row) */
#define PK_XLT_BLOCK 336  /* bytes of one activation super-block (level-table weights) */

/* y[t * ldy + 16 g + r] for g < ng (groups starting at wp), t < nt (activation rows xp_stride bytes
 * apart), r < 16. */
typedef void (*pk_gemm_fn)(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                           float *y, int64_t ldy);

/* Whether herd packs weights of this type and shape (blocks of 32: q8_0 / q4_0 / q5_0 / iq4_nl / q4_1 / q5_1
 * with n % 32 == 0; super-blocks: q4_K / q5_K / q6_K / iq4_xs / iq3_s / iq3_xxs / iq2_s with n % 256 == 0;
 * n_out % 16 == 0), and
 * the active ISA's kernel, or NULL where it has none (then the plain path is used: ISAs without
 * VNNI would run the packed layout slower than the dots). */
pk_gemm_fn pk_gemm_for(int type, int64_t n, int64_t n_out);
/* Bytes of one group of 16 packed rows of n elements. */
int64_t pk_group_bytes(int type, int64_t n);
/* Bytes of the packed copy of a weight of n_out rows of n elements (n_out / 16 groups). */
int64_t pk_weight_bytes(int type, int64_t n, int64_t n_out);
/* Packs 16 rows (row_bytes apart, llama.cpp blocks) of type into one group at out. */
void pk_pack_w(int type, int64_t n, const void *rows, int64_t row_bytes, void *out);
/* Bytes of one packed activation row of n elements for weights of type. */
int64_t pk_x_bytes(int type, int64_t n);
/* A row of n elements of type's vec_dot type (q8_0 or q8_K) into one packed activation row. */
void pk_pack_x(int type, int64_t n, const void *x, void *xp);

/* The scalar reference of every pk_gemm_fn. */
void pk_gemm_ref(int type, int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                 float *y, int64_t ldy);
/* The AVX-512 VNNI kernels (x86/packed_avx512.c); callers go through pk_gemm_for. */
void pk_gemm_q8_0_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                         float *y, int64_t ldy);
void pk_gemm_q4_0_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                         float *y, int64_t ldy);
void pk_gemm_q5_0_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                         float *y, int64_t ldy);
void pk_gemm_iq4_nl_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                           float *y, int64_t ldy);
void pk_gemm_q4_1_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                         float *y, int64_t ldy);
void pk_gemm_q5_1_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                         float *y, int64_t ldy);
void pk_gemm_q4_K_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                         float *y, int64_t ldy);
void pk_gemm_q5_K_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                         float *y, int64_t ldy);
void pk_gemm_q6_K_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                         float *y, int64_t ldy);
void pk_gemm_iq4_xs_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                           float *y, int64_t ldy);
void pk_gemm_iq3_s_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                          float *y, int64_t ldy);
void pk_gemm_iq3_xxs_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                            float *y, int64_t ldy);
void pk_gemm_iq2_s_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                          float *y, int64_t ldy);
/* The 16 signed levels of a level-table type's codes (iq4_xs, iq3_s, iq3_xxs, iq2_s), or NULL. */
const int8_t *pk_levels(int type);

#endif
