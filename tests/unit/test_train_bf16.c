/* --base-compute bf16 (src/train/gemm.c, src/kernels/bf16gemm.h):
 * 1. gemm_bf16: the AVX-512 BF16 variant bit-identical to the scalar reference, the AMX variant within
 *    the bound below, on ragged shapes (edges of 16/32-wide tiles, K steps short of 32, odd strides),
 *    and with subnormal and huge operands for the DAZ/FTZ semantics.
 * 2. train_gemm over a frozen weight (bf16 and q8_0): the bf16 mode against a double-precision sum of the
 *    bf16-rounded operands; the same bits with 1 and 3 threads; an F32 (adapter) weight and the default
 *    f32 mode bit-identical to the documented F32 order (the mode changes nothing else).
 *
 * The AMX bound: the reference and AMX both sum the same exact products (bf16 x bf16 fits in F32) in F32,
 * in different orders; each is within gamma_K * S of the exact sum (S = sum |a_k b_k|, gamma_K ~ K u,
 * u = 2^-24), so they differ by at most 2 K u S; adding to C contributes 2 u |C + sum| more, and FTZ of
 * subnormal partial sums at most 2 K FLT_MIN. */
#include <float.h>

#include "../../src/kernels/bf16gemm.h"
#include "../../src/kernels/kernels.h"
#include "../../src/kernels/kernels_impl.h"
#include "../../src/kernels/types.h"
#include "../../src/train/gemm.h"
#include "testutil.h"

static uint16_t rnd_bf16(int mode) {
    float f = tu_sym();
    if (mode == 1 && tu_u64() % 8 == 0) f *= 0x1p-130f;      /* subnormal in bf16: DAZ reads 0 */
    if (mode == 1 && tu_u64() % 16 == 0) f *= 0x1p-100f;     /* products near the subnormal range: FTZ */
    if (mode == 2) f *= (float)(1 << (tu_u64() % 20)) / 1024; /* spread exponents */
    return fp32_to_bf16(f);
}

static void check_kernels(void) {
    static const int64_t Ms[] = {1, 7, 16, 17, 33, 40}, Ns[] = {1, 15, 16, 17, 31, 33, 64, 70},
                         Ks[] = {2, 30, 32, 34, 64, 66, 258};
    const bool avx512 = kernels_isa_supported(KERNEL_ISA_AVX512), amx = kernels_amx_bf16_supported();
    printf("avx512-bf16 %s, amx-bf16 %s\n", avx512 ? "yes" : "no", amx ? "yes" : "no");
    int64_t n_cases = 0, amx_exact = 0;
    double amx_worst = 0; /* largest |diff| / bound */
    for (int mode = 0; mode < 3; mode++)
        for (size_t im = 0; im < sizeof Ms / sizeof *Ms; im++)
            for (size_t in = 0; in < sizeof Ns / sizeof *Ns; in++)
                for (size_t ik = 0; ik < sizeof Ks / sizeof *Ks; ik++) {
                    const int64_t M = Ms[im], N = Ns[in], K = Ks[ik], lda = K + 2 * (int64_t)(ik % 3),
                                  ldb = 16 * K + 32 * (int64_t)(in % 2), ldc = N + 3, nb = (N + 15) / 16 * ldb;
                    uint16_t *A = malloc((size_t)(M * lda) * 2), *B = malloc((size_t)nb * 2);
                    float *C0 = malloc((size_t)(M * ldc) * 4), *C1 = malloc((size_t)(M * ldc) * 4),
                          *C2 = malloc((size_t)(M * ldc) * 4);
                    for (int64_t i = 0; i < M * lda; i++) A[i] = rnd_bf16(mode);
                    for (int64_t i = 0; i < nb; i++) B[i] = rnd_bf16(mode);
                    for (int64_t i = 0; i < M * ldc; i++) C0[i] = C1[i] = C2[i] = tu_sym();
                    gemm_bf16_ref(M, N, K, A, lda, B, ldb, C0, ldc);
                    if (avx512) {
                        gemm_bf16_avx512(M, N, K, A, lda, B, ldb, C1, ldc);
                        CHECK(!memcmp(C0, C1, (size_t)(M * ldc) * 4), "avx512 != ref at M %lld N %lld K %lld mode %d",
                              (long long)M, (long long)N, (long long)K, mode);
                    }
                    if (amx) {
                        gemm_bf16_amx(M, N, K, A, lda, B, ldb, C2, ldc);
                        bool exact = true, ok = true;
                        for (int64_t m = 0; m < M; m++)
                            for (int64_t n = 0; n < ldc; n++) {
                                const float r = C0[m * ldc + n], x = C2[m * ldc + n];
                                if (n >= N) { /* outside the product: untouched */
                                    ok &= r == x;
                                    continue;
                                }
                                double S = 0;
                                for (int64_t k = 0; k < K; k++)
                                    S += fabs((double)bf16_to_fp32(A[m * lda + k]) *
                                              bf16_to_fp32(B[n / 16 * ldb + k / 2 * 32 + n % 16 * 2 + k % 2]));
                                const double bound = 2.0 * K * 0x1p-24 * S + 2 * 0x1p-24 * fabs(r) + 2.0 * K * FLT_MIN;
                                const double d = fabs((double)r - x);
                                exact &= r == x;
                                ok &= d <= bound;
                                if (bound > 0 && d / bound > amx_worst) amx_worst = d / bound;
                            }
                        CHECK(ok, "amx beyond the bound at M %lld N %lld K %lld mode %d", (long long)M, (long long)N,
                              (long long)K, mode);
                        amx_exact += exact;
                    }
                    n_cases++;
                    free(A), free(B), free(C0), free(C1), free(C2);
                }
    /* bf16_pairs: the same bits in every variant, NaN and subnormal inputs included */
    for (int64_t n = 1; n < 80; n += 7) {
        float x0[80], x1[80];
        uint16_t o0[6 * 40], o1[6 * 40]; /* strips of 16 pairs, 40 apart */
        for (int64_t i = 0; i < n; i++) {
            x0[i] = tu_sym() * (i % 5 == 1 ? 0x1p-130f : 1), x1[i] = tu_sym() * 1000;
            if (i % 11 == 3) x1[i] = NAN;
        }
        for (int half = 0; half < 2; half++) {
            memset(o0, 0, sizeof o0), memset(o1, 0, sizeof o1);
            kernels_vec_isa(KERNEL_ISA_REF)->bf16_pairs(n, x0, half ? NULL : x1, o0, 40);
            for (int64_t i = 0; i < n; i++) {
                const uint16_t *o = o0 + i / 16 * 40 + i % 16 * 2;
                CHECK(o[0] == fp32_to_bf16(x0[i]) && o[1] == (half ? 0 : fp32_to_bf16(x1[i])), "bf16_pairs_ref at %lld",
                      (long long)i);
            }
            /* bf16_pairs_u16 on the rows rounded to bf16 first: the same pairs */
            uint16_t h0[80], h1[80], o2[6 * 40];
            for (int64_t i = 0; i < n; i++) h0[i] = fp32_to_bf16(x0[i]), h1[i] = fp32_to_bf16(x1[i]);
            for (int isa = 0; isa < (avx512 ? 2 : 1); isa++) {
                memset(o2, 0, sizeof o2);
                kernels_vec_isa(isa ? KERNEL_ISA_AVX512 : KERNEL_ISA_REF)->bf16_pairs_u16(n, h0, half ? NULL : h1, o2, 40);
                CHECK(!memcmp(o0, o2, sizeof o0), "bf16_pairs_u16 (%s) != bf16_pairs at n %lld (or wrote outside its pairs)",
                      isa ? "avx512" : "ref", (long long)n);
            }
            if (!avx512) continue;
            kernels_vec_isa(KERNEL_ISA_AVX512)->bf16_pairs(n, x0, half ? NULL : x1, o1, 40);
            CHECK(!memcmp(o0, o1, sizeof o0), "bf16_pairs avx512 != ref at n %lld (or wrote outside its pairs)", (long long)n);
        }
    }
    if (amx)
        printf("amx: %lld of %lld cases bit-identical to the reference; worst |diff| / bound %.3g\n",
               (long long)amx_exact, (long long)n_cases, amx_worst);
}

/* f32 mode's documented order (gemm.h): per element, per k block of TRAIN_GEMM_KC an fmaf chain from 0,
 * added to the running sum */
static float f32_order(const float *x, const float *w, int64_t K) {
    float y = 0;
    for (int64_t k0 = 0; k0 < K; k0 += TRAIN_GEMM_KC) {
        float acc = 0;
        for (int64_t k = k0; k < K && k < k0 + TRAIN_GEMM_KC; k++) acc = fmaf(x[k], w[k], acc);
        y += acc;
    }
    return y;
}

static void check_train_gemm(int type, int64_t n_in, int64_t n_out, int64_t T) {
    const kernel_type_ops *t = kernels_type(type);
    const int64_t row_bytes = n_in / t->block * t->block_bytes;
    float *wf = malloc((size_t)(n_out * n_in) * 4), *x = malloc((size_t)(T * n_in) * 4), *dy = malloc((size_t)(T * n_out) * 4);
    uint8_t *wq = malloc((size_t)(n_out * row_bytes));
    for (int64_t i = 0; i < n_out * n_in; i++) wf[i] = tu_sym() * 0.1f;
    for (int64_t r = 0; r < n_out; r++) { /* the weight as stored, and as herd reads it back */
        t->from_f32(wf + r * n_in, wq + r * row_bytes, n_in);
        t->to_f32(wq + r * row_bytes, wf + r * n_in, n_in);
    }
    for (int64_t i = 0; i < T * n_in; i++) x[i] = tu_sym();
    for (int64_t i = 0; i < T * n_out; i++) dy[i] = tu_sym();
    weight wt = {.type = type, .n_in = n_in, .n_out = n_out, .row_bytes = row_bytes, .data = wq};
    train_w w = {.q = &wt, .n_in = n_in, .n_out = n_out}, wF = {.f = wf, .n_in = n_in, .n_out = n_out};

    float *y[3], *dx[3], *yF = malloc((size_t)(T * n_out) * 4);
    for (int th = 0; th < 3; th++) {
        thread_pool *pool = pool_new(th == 2 ? 3 : 1);
        train_gemm *g = train_gemm_new(pool);
        y[th] = malloc((size_t)(T * n_out) * 4), dx[th] = calloc((size_t)(T * n_in), 4);
        train_gemm_set_base_bf16(g, th > 0); /* 0: f32 mode; 1, 2: bf16 with 1 and 3 threads */
        train_gemm_xwt(g, &w, x, n_in, T, y[th], n_out);
        train_gemm_dyw(g, &w, dy, n_out, T, dx[th], n_in);
        if (th == 2) train_gemm_xwt(g, &wF, x, n_in, T, yF, n_out); /* an F32 weight: F32 in bf16 mode too */
        train_gemm_free(g);
        pool_free(pool);
    }
    /* f32 mode and an F32 weight: the documented F32 order, bit for bit */
    float *col = malloc((size_t)n_out * 4);
    int bad_f32 = 0, bad_F = 0, bad_dx = 0;
    for (int64_t tk = 0; tk < T; tk++)
        for (int64_t r = 0; r < n_out; r++) {
            const float e = f32_order(x + tk * n_in, wf + r * n_in, n_in);
            bad_f32 += y[0][tk * n_out + r] != e;
            bad_F += yF[tk * n_out + r] != e;
        }
    for (int64_t tk = 0; tk < T; tk++)
        for (int64_t c = 0; c < n_in; c++) {
            for (int64_t r = 0; r < n_out; r++) col[r] = wf[r * n_in + c];
            bad_dx += dx[0][tk * n_in + c] != f32_order(dy + tk * n_out, col, n_out);
        }
    CHECK(bad_f32 == 0 && bad_dx == 0, "type %d: f32 mode differs from the F32 order (%d y, %d dx)", type, bad_f32, bad_dx);
    CHECK(bad_F == 0, "type %d: an F32 weight in bf16 mode is not F32 (%d)", type, bad_F);
    /* bf16 mode: thread-count independent, and the sum of the rounded operands within K u S */
    CHECK(!memcmp(y[1], y[2], (size_t)(T * n_out) * 4) && !memcmp(dx[1], dx[2], (size_t)(T * n_in) * 4),
          "type %d: bf16 results depend on the thread count", type);
    double worst = 0, worst_f32 = 0;
    for (int64_t tk = 0; tk < T; tk++)
        for (int64_t r = 0; r < n_out; r++) {
            double s = 0, S = 0, s32 = 0;
            for (int64_t k = 0; k < n_in; k++) {
                const double p = (double)bf16_to_fp32(fp32_to_bf16(x[tk * n_in + k])) *
                                 bf16_to_fp32(fp32_to_bf16(wf[r * n_in + k]));
                s += p, S += fabs(p), s32 += (double)x[tk * n_in + k] * wf[r * n_in + k];
            }
            const double d = fabs(y[1][tk * n_out + r] - s) / (2.0 * n_in * 0x1p-24 * S + 1e-30);
            if (d > worst) worst = d;
            const double d32 = fabs(y[1][tk * n_out + r] - s32) / (S + 1e-30);
            if (d32 > worst_f32) worst_f32 = d32;
        }
    double worst_dx = 0;
    for (int64_t tk = 0; tk < T; tk++)
        for (int64_t c = 0; c < n_in; c++) {
            double s = 0, S = 0;
            for (int64_t r = 0; r < n_out; r++) {
                const double p = (double)bf16_to_fp32(fp32_to_bf16(dy[tk * n_out + r])) *
                                 bf16_to_fp32(fp32_to_bf16(wf[r * n_in + c]));
                s += p, S += fabs(p);
            }
            const double d = fabs(dx[1][tk * n_in + c] - s) / (2.0 * n_out * 0x1p-24 * S + 1e-30);
            if (d > worst_dx) worst_dx = d;
        }
    printf("type %d: bf16 mode |y - sum of bf16 products| <= %.3f of 2 K u S (dx %.3f); vs exact F32 %.2e S "
           "(bf16 rounding, ~2^-8)\n", type, worst, worst_dx, worst_f32);
    CHECK(worst <= 1 && worst_dx <= 1, "type %d: bf16 products off the rounded operands' sum", type);
    CHECK(worst_f32 < 0x1p-7, "type %d: bf16 products too far from F32 (%g S)", type, worst_f32);
    for (int th = 0; th < 3; th++) free(y[th]), free(dx[th]);
    free(yF), free(col), free(wf), free(x), free(dy), free(wq);
}

int main(void) {
    tu_rng = 0xbf16bf16ull;
    kernels_init();
    check_kernels();
    /* ragged against 256-wide blocks and 32-wide tiles; then several 1024-long k blocks of dy W's bf16
     * path, an odd n_out (its K, zero-padded) */
    check_train_gemm(HERD_TYPE_BF16, 320, 288, 37);
    check_train_gemm(HERD_TYPE_Q8_0, 320, 288, 37);
    check_train_gemm(HERD_TYPE_Q8_0, 2112, 1091, 5);
    check_train_gemm(HERD_TYPE_F16, 1090, 2051, 3);
    /* a BF16 weight read in place (y^T = W x^T) over several 2048-long k chunks, 19 tokens (a short strip) */
    check_train_gemm(HERD_TYPE_BF16, 160, 4100, 19);
    return TU_DONE("train_bf16");
}
