/* The scalar truth of kernel_vec_ops.gemm_f32 (kernels.h): each C element is one fmaf chain over k in
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

void kernels_fill_sgemm_ref(kernel_vec_ops *vec) {
    vec->gemm_f32 = gemm_f32_ref;
}
