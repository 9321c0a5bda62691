/* kernel_vec_ops.gemm_f32 with AVX-512 (kernels.h): register tiles of 8 rows x 32 columns of C (16
 * accumulators), each k step two loads of B and eight broadcasts of A; ragged edges by fewer rows and
 * masked columns. Per C element the same fused multiply-add chain over k as the reference, so the
 * results are bit-identical to it. */
#include <immintrin.h>

#include "../kernels_impl.h"

#define MR 8

/* C[mr][<=32] += A[mr][K] B[K][<=32 masked by m0, m1] */
static inline void tile(int64_t mr, int64_t K, const float *A, int64_t am, int64_t ak, const float *B, int64_t ldb,
                        float *C, int64_t ldc, __mmask16 m0, __mmask16 m1) {
    __m512 c0[MR], c1[MR];
    for (int i = 0; i < MR; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    if (mr == MR) {
        for (int64_t k = 0; k < K; k++) {
            const __m512 b0 = _mm512_maskz_loadu_ps(m0, B + k * ldb), b1 = _mm512_maskz_loadu_ps(m1, B + k * ldb + 16);
            const float *a = A + k * ak;
#pragma GCC unroll 8
            for (int i = 0; i < MR; i++) {
                const __m512 ai = _mm512_set1_ps(a[i * am]);
                c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
            }
        }
    } else {
        for (int64_t k = 0; k < K; k++) {
            const __m512 b0 = _mm512_maskz_loadu_ps(m0, B + k * ldb), b1 = _mm512_maskz_loadu_ps(m1, B + k * ldb + 16);
            const float *a = A + k * ak;
            for (int i = 0; i < mr; i++) {
                const __m512 ai = _mm512_set1_ps(a[i * am]);
                c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
            }
        }
    }
    for (int i = 0; i < mr; i++) {
        float *c = C + i * ldc;
        _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), c0[i]));
        _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), c1[i]));
    }
}

static void gemm_f32_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t am, int64_t ak, const float *B,
                            int64_t ldb, float *C, int64_t ldc) {
    for (int64_t n = 0; n < N; n += 32) {
        const int64_t nr = N - n < 32 ? N - n : 32;
        const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
        const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
        for (int64_t m = 0; m < M; m += MR) {
            const int64_t mr = M - m < MR ? M - m : MR;
            tile(mr, K, A + m * am, am, ak, B + n, ldb, C + m * ldc + n, ldc, m0, m1);
        }
    }
}

void kernels_fill_sgemm_avx512(kernel_vec_ops *vec) {
    vec->gemm_f32 = gemm_f32_avx512;
}
