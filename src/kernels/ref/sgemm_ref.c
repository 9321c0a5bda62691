/* The scalar truths of kernel_vec_ops.gemm_f32 and transpose_f32 (kernels.h). gemm_f32: each C element is one fmaf chain over k in
 * order, started at 0, then added to C. */
#include <math.h>

#include "../kernels_impl.h"

static void gemm_f32_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t am, int64_t ak, const float *B,
                         int64_t ldb, float *C, int64_t ldc) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            float acc = 0;
            for (int64_t k = 0; k < K; k++) acc = fmaf(A[m * am + k * ak], B[k * ldb + n], acc);
            C[m * ldc + n] += acc;
        }
}

/* in 16 x 16 tiles: each tile's source and destination lines stay in L1, where a whole-row walk
 * strides through a cache line per element */
static void transpose_f32_ref(int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst, int64_t ldd) {
    for (int64_t r0 = 0; r0 < rows; r0 += 16)
        for (int64_t c0 = 0; c0 < cols; c0 += 16) {
            const int64_t r1 = r0 + 16 < rows ? r0 + 16 : rows, c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) dst[c * ldd + r] = src[r * lds + c];
        }
}

void kernels_fill_sgemm_ref(kernel_vec_ops *vec) {
    vec->gemm_f32 = gemm_f32_ref;
    vec->transpose_f32 = transpose_f32_ref;
}
