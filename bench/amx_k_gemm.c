/* One thread, one packed q4_K / q6_K weight (rows x width) times a batch of tokens: the AMX kernel vs the
 * VNNI kernel (the same bits: test_gemm_amx), interleaved, best of ROUNDS each. Needs an AMX CPU.
 *   make build/libherd.a && gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc -o build/bench_amx_k \
 *       bench/amx_k_gemm.c build/libherd.a -lm -lpthread
 *   build/bench_amx_k [TYPE q4_K|q6_K] [WIDTH (2048)] [ROWS (2048)] [TOKENS (512)] [ROUNDS (5)]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herd.h"
#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "kernels/packed.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float sym(void) { /* uniform in [-1, 1) (xorshift64) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1 << 23) - 1.0f;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int type = argc > 1 && strcmp(argv[1], "q6_K") == 0 ? HERD_TYPE_Q6_K : HERD_TYPE_Q4_K;
    int64_t n = argc > 2 ? atoll(argv[2]) : 2048, nr = argc > 3 ? atoll(argv[3]) : 2048;
    int64_t nt = argc > 4 ? atoll(argv[4]) : 512, rounds = argc > 5 ? atoll(argv[5]) : 5, ng = nr / PK_ROWS;
    kernels_init();
    if (!kernels_amx_supported()) return printf("no AMX\n"), 77;
    const kernel_type_ops *wt = kernels_type_isa(type, KERNEL_ISA_REF),
                          *q8 = kernels_type_isa(HERD_TYPE_Q8_K, KERNEL_ISA_REF);
    int64_t wrow = kernels_row_bytes(type, n), xrow = kernels_row_bytes(HERD_TYPE_Q8_K, n),
            gb = pk_group_bytes(type, n);
    int64_t xs = pk_x_bytes(type, n);
    float *f = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)(nt * nr));
    uint8_t *w = malloc((size_t)(wrow * PK_ROWS)), *wp = malloc((size_t)(gb * ng)),
            *xq = malloc((size_t)xrow), *xp = malloc((size_t)(xs * nt));
    for (int64_t g = 0; g < ng; g++) {
        for (int r = 0; r < PK_ROWS; r++) {
            for (int64_t i = 0; i < n; i++) f[i] = sym();
            wt->from_f32(f, w + r * wrow, n);
        }
        pk_pack_w(type, n, w, wrow, wp + g * gb);
    }
    for (int64_t t = 0; t < nt; t++) {
        for (int64_t i = 0; i < n; i++) f[i] = sym();
        q8->from_f32(f, xq, n);
        pk_pack_x(type, n, xq, xp + t * xs);
    }
    pk_gemm_fn fn[2] = {type == HERD_TYPE_Q4_K ? pk_gemm_q4_K_amx : pk_gemm_q6_K_amx,
                        type == HERD_TYPE_Q4_K ? pk_gemm_q4_K_avx512 : pk_gemm_q6_K_avx512};
    double best[2] = {1e9, 1e9};
    for (int64_t r = 0; r < rounds; r++)
        for (int k = 0; k < 2; k++) {
            double t0 = now();
            fn[k](n, ng, nt, wp, xp, xs, y, nr);
            double dt = now() - t0;
            if (dt < best[k]) best[k] = dt;
        }
    double ops = 2.0 * (double)n * (double)nr * (double)nt;
    printf("%s %lld x %lld x %lld tokens, 1 thread, best of %lld: AMX %.2f ms (%.0f GOP/s), VNNI %.2f ms "
           "(%.0f GOP/s): x%.2f\n",
           type == HERD_TYPE_Q4_K ? "q4_K" : "q6_K", (long long)nr, (long long)n, (long long)nt,
           (long long)rounds, 1e3 * best[0], ops / best[0] * 1e-9, 1e3 * best[1], ops / best[1] * 1e-9,
           best[1] / best[0]);
    free(f), free(y), free(w), free(wp), free(xq), free(xp);
    return 0;
}
