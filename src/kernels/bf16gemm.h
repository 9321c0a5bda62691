/* Internal to src/kernels (and its tests): the variants of kernel_vec_ops.gemm_bf16 (kernels.h), the
 * product of training's frozen weights in bf16 (src/train/gemm.c, --base-compute bf16).
 *
 * Operands: A row-major bf16, element (m, k) at A[m * lda + k]. B in strips of 16 columns of pairs
 * (BF16_STRIP), element (k, n) at B[(n / 16) * ldb + (k / 2) * 32 + (n % 16) * 2 + k % 2]: a strip is
 * K / 2 rows of 16 pairs (B[2p][n], B[2p + 1][n]), 64 bytes each — one zmm row for vdpbf16ps, and 16 of
 * them one contiguous 1 KiB tile for AMX's TDPBF16PS; ldb >= 16 K. The last strip's columns past N are
 * read but never reach C (any values). K is even (a caller zero-pads an odd K). C[M][N] += A B.
 *
 * A product of two bf16 is exact in F32 (8 + 8 significand bits), so every step below is one rounding
 * (round to nearest even). Each C element's sum starts at +0 and is added to C once, at the end.
 *   ref, avx512 (vdpbf16ps): per pair p in order, acc += a[2p+1] b[2p+1], then acc += a[2p] b[2p] (the
 *     odd element first: Intel SDM, VDPBF16PS), with bf16 subnormal inputs read as 0 and subnormal
 *     sums flushed to (signed) 0, as vdpbf16ps does whatever MXCSR says. The two are bit-identical.
 *   amx (TDPBF16PS): K in steps of 32 per 16 x 16 tile; the SDM's pseudo-code adds the even element
 *     first, but the hardware's internal order and intermediate precision are not specified tightly
 *     enough to promise bits, so it is tested against the reference within a bound (see the test). */
#ifndef HERD_KERNELS_BF16GEMM_H
#define HERD_KERNELS_BF16GEMM_H

#include <stdbool.h>
#include <stdint.h>

void gemm_bf16_ref(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb,
                   float *C, int64_t ldc);
void gemm_bf16_avx512(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *B,
                      int64_t ldb, float *C, int64_t ldc);
void gemm_bf16_amx(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb,
                   float *C, int64_t ldc);
/* gemm_bf16_amx may be called only when kernels_amx_bf16_supported() (kernels_impl.h). */

#endif
