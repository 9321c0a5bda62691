/* The scalar truth of kernel_vec_ops.gemm_bf16 (accumulation order: bf16gemm.h). Written out the way
 * vdpbf16ps defines it, so that the AVX-512 variant is bit-identical to it. */
#include <float.h>
#include <math.h>

#include "../bf16gemm.h"
#include "../kernels_impl.h"
#include "../types.h"

/* bf16 -> f32 with subnormals read as zero (vdpbf16ps's DAZ) */
static inline float daz(uint16_t h) {
    return (h & 0x7f80) == 0 ? ((h & 0x8000) ? -0.0f : 0.0f) : bf16_to_fp32(h);
}

/* acc + a b, rounded once (a b is exact), a subnormal result flushed to zero of its sign (FTZ) */
static inline float step(float acc, float a, float b) {
    const float s = fmaf(a, b, acc);
    return fabsf(s) < FLT_MIN ? copysignf(0.0f, s) : s;
}

void gemm_bf16_ref(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb,
                   float *C, int64_t ldc) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            float acc = 0;
            for (int64_t p = 0; p < K / 2; p++) {
                const uint16_t *a = A + m * lda + 2 * p, *b = B + (n / 16) * ldb + p * 32 + (n % 16) * 2;
                acc = step(acc, daz(a[1]), daz(b[1]));
                acc = step(acc, daz(a[0]), daz(b[0]));
            }
            C[m * ldc + n] += acc;
        }
}

static void bf16_pairs_ref(int64_t n, const float *x0, const float *x1, uint16_t *out, int64_t ld) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t *o = out + (i / 16) * ld + (i % 16) * 2;
        o[0] = fp32_to_bf16(x0[i]);
        o[1] = x1 ? fp32_to_bf16(x1[i]) : 0;
    }
}

static void bf16_pairs_u16_ref(int64_t n, const uint16_t *x0, const uint16_t *x1, uint16_t *out, int64_t ld) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t *o = out + (i / 16) * ld + (i % 16) * 2;
        o[0] = x0[i];
        o[1] = x1 ? x1[i] : 0;
    }
}

void kernels_fill_bf16gemm_ref(kernel_vec_ops *vec) {
    vec->gemm_bf16 = gemm_bf16_ref;
    vec->bf16_pairs = bf16_pairs_ref;
    vec->bf16_pairs_u16 = bf16_pairs_u16_ref;
}
