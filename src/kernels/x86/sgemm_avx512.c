/* kernel_vec_ops.gemm_f32 with AVX-512 (kernels.h): register tiles of 8 rows x 32 columns of C (16
 * accumulators: each k step two loads of B and eight broadcasts of A), or 16 x 16 for strips of at most
 * 16 columns; ragged edges by fewer rows and masked columns. Per C element the same fused multiply-add chain over k as the reference, so the
 * results are bit-identical to it. */
#include <immintrin.h>
#include <stdbool.h>

#include "../kernels_impl.h"
#include "gemm_strips.h"


/* C[MR_][<=32] += A[MR_][K] B[K][<=32 masked by m0, m1]; MR_ a constant at each call site (the
 * accumulators stay in registers); WIDE_ false: at most 16 columns, one accumulator per row */
static inline __attribute__((always_inline)) void tile(const int MR_, const bool WIDE_, int64_t K, const float *A, int64_t am,
                                                      int64_t ak, const float *B, int64_t ldb, float *C, int64_t ldc,
                                                      __mmask16 m0, __mmask16 m1) {
    __m512 c0[16], c1[16];
    /* the row loops are unrolled explicitly: -O2 leaves them rolled and keeps the accumulators in memory
     * (a load, fma and store per step: half the speed) */
#pragma GCC unroll 16
    for (int i = 0; i < MR_; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, B + k * ldb);
        const __m512 b1 = WIDE_ ? _mm512_maskz_loadu_ps(m1, B + k * ldb + 16) : b0;
        const float *a = A + k * ak;
#pragma GCC unroll 16
        for (int i = 0; i < MR_; i++) {
            const __m512 ai = _mm512_set1_ps(a[i * am]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            if (WIDE_) c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR_; i++) {
        float *c = C + i * ldc;
        _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), c0[i]));
        if (WIDE_) _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), c1[i]));
    }
}

/* the walk over C (gemm_strips.h): tiles of 8 rows x 32 columns (16 accumulators), or 16 rows x 16 columns for narrow
 * strips (N <= 16: the common case of a few tokens), and the ragged rest by row count */
#define ROWS(n, W) tile(n, W, K, A + m * am, am, ak, B + n0, ldb, C + m * ldc + n0, ldc, m0, m1)
static void gemm_f32_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t am, int64_t ak, const float *B,
                            int64_t ldb, float *C, int64_t ldc) {
    GEMM_STRIPS_WALK(M, N)
}
#undef ROWS

/* transpose_f32: whole 16 x 16 tiles in registers (16 loads, four rounds of 2-source permutes, 16
 * stores: the scalar walk's 256 loads and 256 strided stores become 32 wide ones), the ragged edges as
 * the reference does them */
static inline __attribute__((always_inline)) void t16x16(const float *src, int64_t lds, float *dst, int64_t ldd) {
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
    /* round 1: 32-bit interleave of row pairs */
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* round 2: 64-bit interleave of pairs of pairs */
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    /* now r[4g + j] holds, in each 128-bit lane L, the 4 elements of column 4L + j... of rows 4g..4g+3;
     * rounds 3 and 4 gather the lanes: 128-bit shuffles across groups */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);      /* lanes 0,2 of g0 | 0,2 of g1 */
        t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);  /* lanes 1,3 of g0 | 1,3 of g1 */
        t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);      /* lane 0 of g0..g3: column j */
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);  /* lane 2: column 8 + j */
        r[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88); /* lane 1: column 4 + j */
        r[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xdd); /* lane 3: column 12 + j */
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ldd, r[i]);
}

static void transpose_f32_avx512(int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst, int64_t ldd) {
    for (int64_t r0 = 0; r0 < rows; r0 += 16)
        for (int64_t c0 = 0; c0 < cols; c0 += 16) {
            if (r0 + 16 <= rows && c0 + 16 <= cols) {
                t16x16(src + r0 * lds + c0, lds, dst + c0 * ldd + r0, ldd);
                continue;
            }
            const int64_t r1 = r0 + 16 < rows ? r0 + 16 : rows, c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) dst[c * ldd + r] = src[r * lds + c];
        }
}

void kernels_fill_sgemm_avx512(kernel_vec_ops *vec) {
    vec->gemm_f32 = gemm_f32_avx512;
    vec->transpose_f32 = transpose_f32_avx512;
}
