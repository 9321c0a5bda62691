/* kernel_vec_ops.gemm_bf16 with AVX-512 BF16 (bf16gemm.h): register tiles of 8 rows x 32 columns of C
 * (two strips of B; 16 accumulators of 16 lanes), or 16 x 16 for a last single strip; per k pair two
 * loads of B (a 64-byte pair row of each strip) and, per row, a 32-bit broadcast of A's pair, one
 * vdpbf16ps per accumulator. Ragged columns by masked stores of C (the lanes past N compute on whatever
 * the strip holds there and are dropped), ragged rows by smaller tiles.
 *
 * Accumulation: vdpbf16ps adds, per lane, a[2p+1] b[2p+1] and then a[2p] b[2p] to the lane, each rounded
 * to nearest even, with DAZ/FTZ (SDM) — exactly the reference's chain, so the results are bit-identical
 * to gemm_bf16_ref. */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "../bf16gemm.h"
#include "../kernels_impl.h"
#include "gemm_strips.h"

static inline __attribute__((always_inline)) void tile(const int MR_, const bool WIDE_, int64_t P, const uint16_t *A,
                                                      int64_t lda, const uint16_t *B, int64_t ldb, float *C,
                                                      int64_t ldc, __mmask16 m0, __mmask16 m1) {
    __m512 c0[16], c1[16];
#pragma GCC unroll 16
    for (int i = 0; i < MR_; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t p = 0; p < P; p++) {
        const uint16_t *b = B + p * 32;
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
        const __m512bh b1 = WIDE_ ? (__m512bh)_mm512_loadu_si512(b + ldb) : b0;
        const uint16_t *a = A + 2 * p;
#pragma GCC unroll 16
        for (int i = 0; i < MR_; i++) {
            uint32_t pair;
            memcpy(&pair, a + i * lda, sizeof pair);
            const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)pair);
            c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
            if (WIDE_) c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR_; i++) {
        float *c = C + i * ldc;
        _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), c0[i]));
        if (WIDE_) _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), c1[i]));
    }
}

#define ROWS(n, W) tile(n, W, K / 2, A + m * lda, lda, B + n0 / 16 * ldb, ldb, C + m * ldc + n0, ldc, m0, m1)
void gemm_bf16_avx512(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *B,
                      int64_t ldb, float *C, int64_t ldc) {
    GEMM_STRIPS_WALK(M, N)
}
#undef ROWS

/* fp32_to_bf16 on 16 lanes into the low 16 bits of each 32-bit lane, with integer arithmetic (as
 * kernels_avx512.c's row conversion: vcvtneps2bf16 would flush subnormal inputs, the reference rounds them) */
static inline __m512i to_bf16_lanes(__m512 f) {
    const __m512i u = _mm512_castps_si512(f), hi = _mm512_srli_epi32(u, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(64));
}

/* 16 pairs per step (one strip's row): x0's bf16 in the low half of each 32-bit word, x1's in the high half */
static void bf16_pairs_avx512(int64_t n, const float *x0, const float *x1, uint16_t *out, int64_t ld) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512i w = to_bf16_lanes(_mm512_maskz_loadu_ps(m, x0 + i));
        if (x1) w = _mm512_or_si512(w, _mm512_slli_epi32(to_bf16_lanes(_mm512_maskz_loadu_ps(m, x1 + i)), 16));
        _mm512_mask_storeu_epi32(out + i / 16 * ld, m, w);
    }
}

/* 16 elements of each row widened to 32-bit lanes (x0 low half, x1 high half): one strip's pair row */
static void bf16_pairs_u16_avx512(int64_t n, const uint16_t *x0, const uint16_t *x1, uint16_t *out, int64_t ld) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, x0 + i));
        if (x1) w = _mm512_or_si512(w, _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, x1 + i)), 16));
        _mm512_mask_storeu_epi32(out + i / 16 * ld, m, w);
    }
}

void kernels_fill_bf16gemm_avx512(kernel_vec_ops *vec) {
    vec->gemm_bf16 = gemm_bf16_avx512;
    vec->bf16_pairs = bf16_pairs_avx512;
    vec->bf16_pairs_u16 = bf16_pairs_u16_avx512;
}
