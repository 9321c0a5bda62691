/* Interleaved ("packed") q8_0 and q4_0 weights: 16 rows side by side, repacked once when a model loads,
 * so that one 512-bit lane holds one row and a single kernel serves decode (1 token) and prompt
 * processing (many) with the same numerics.
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
 *   A weight of n_out rows (n_out % 16 == 0) is n_out / 16 groups back to back.
 * Activations: one row of n is nb blocks of 40 bytes { f32 d; int32 off; int8 q[32] }: q and d are the
 *   q8_0 row's (the same rounding as the plain path; d its f16 scale widened), off = -128 * sum q (for
 *   q8_0 weights) or -8 * sum q (q4_0), which turns the unsigned weight bytes back into signed ones.
 *
 * Numerics (the reference below; every variant bit for bit, for any number of tokens and rows):
 *     y[t][r] = 0;  for b = 0 .. nb-1:  y = fmaf((float)isum_b, fl(dw_rb * dx_tb), y)
 *     isum_b  = off_tb + sum_i u_rbi * x_tbi  = sum_i ws_rbi * x_tbi   (int32, exact)
 * with ws the signed weight (q8_0 w, q4_0 nibble - 8). A result never depends on how many tokens or rows
 * are computed with it, so batch invariance holds by construction. It differs from the plain dot's
 * result only in rounding order (both are within float rounding of the exact sum).
 */
#ifndef HERD_KERNELS_PACKED_H
#define HERD_KERNELS_PACKED_H

#include <stdbool.h>
#include <stdint.h>

#define PK_ROWS 16     /* rows per group */
#define PK_X_BLOCK 40  /* bytes of one activation block */

/* y[t * ldy + 16 g + r] for g < ng (groups starting at wp), t < nt (activation rows xp_stride bytes
 * apart), r < 16. */
typedef void (*pk_gemm_fn)(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                           float *y, int64_t ldy);

/* Whether herd packs weights of this type and shape (q8_0 / q4_0, n_out % 16 == 0, n % 32 == 0), and
 * the active ISA's kernel, or NULL where it has none (then the plain path is used: ISAs without
 * VNNI would run the packed layout slower than the dots). */
pk_gemm_fn pk_gemm_for(int type, int64_t n, int64_t n_out);
/* Bytes of one group of 16 packed rows of n elements. */
int64_t pk_group_bytes(int type, int64_t n);
/* Packs 16 rows (row_bytes apart, llama.cpp blocks) of type into one group at out. */
void pk_pack_w(int type, int64_t n, const void *rows, int64_t row_bytes, void *out);
/* Bytes of one packed activation row of n elements. */
int64_t pk_x_bytes(int64_t n);
/* A q8_0 row of n elements into one packed activation row for weights of type. */
void pk_pack_x(int type, int64_t n, const void *x_q8_0, void *xp);

/* The scalar reference of every pk_gemm_fn (q8_0 or q4_0 weights). */
void pk_gemm_ref(int type, int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                 float *y, int64_t ldy);
/* The AVX-512 VNNI kernels (x86/packed_avx512.c); callers go through pk_gemm_for. */
void pk_gemm_q8_0_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                         float *y, int64_t ldy);
void pk_gemm_q4_0_avx512(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                         float *y, int64_t ldy);

#endif
