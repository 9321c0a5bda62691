/* The trainer's kernels: gemm_f32 of every ISA bit-identical to the scalar reference (ragged shapes,
 * A plain and transposed); the threaded products of train/gemm.c (F32 and Q8_0 weights, both ways of
 * computing x W^T) against sums in double and bit-identical for 1 and 3 threads; the threaded attention against the scalar reference; each backward
 * (RMSNorm, RoPE, SwiGLU, attention, cross-entropy) against central finite differences of its forward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/ops.h"
#include "testutil.h"
#include "thread/pool.h"
#include "train/attn.h"
#include "train/gemm.h"
#include "train/ops.h"

static float *rnd(int64_t n) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = tu_sym();
    return p;
}

static void test_gemm(void) {
    const kernel_vec_ops *ref = kernels_vec_isa(KERNEL_ISA_REF);
    { /* the reference is the product: C += A B (A transposed too) against sums in double */
        enum { M = 5, N = 7, K = 9 };
        float *A = rnd(M * K), *B = rnd(K * N), *C = rnd(M * N), *C0 = malloc(sizeof(float) * M * N);
        for (int tr = 0; tr < 2; tr++) {
            memcpy(C0, C, sizeof(float) * M * N);
            const int64_t am = tr ? 1 : K, ak = tr ? M : 1;
            ref->gemm_f32(M, N, K, A, am, ak, B, N, C0, N);
            double err = 0;
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    double want = C[m * N + n];
                    for (int k = 0; k < K; k++) want += (double)A[m * am + k * ak] * B[k * N + n];
                    err = fmax(err, fabs(want - C0[m * N + n]));
                }
            CHECK(err < 1e-5, "gemm_f32 reference (transposed A: %d) is not the product: %g", tr, err);
        }
        free(A), free(B), free(C), free(C0);
    }
    const int64_t shapes[][3] = {{1, 1, 1}, {3, 17, 5}, {8, 32, 64}, {9, 33, 7}, {17, 100, 256}, {5, 15, 300}};
    for (int isa = 1; isa < KERNEL_ISA_COUNT; isa++) {
        const kernel_vec_ops *vo = kernels_vec_isa((kernel_isa)isa);
        if (!vo) continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int tr = 0; tr < 2; tr++) {
                const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                float *A = rnd(M * K), *B = rnd(K * (N + 3)), *C0 = rnd(M * (N + 2)), *C1 = malloc((size_t)(M * (N + 2)) * sizeof(float));
                memcpy(C1, C0, (size_t)(M * (N + 2)) * sizeof(float));
                const int64_t am = tr ? 1 : K, ak = tr ? M : 1;
                ref->gemm_f32(M, N, K, A, am, ak, B, N + 3, C0, N + 2);
                vo->gemm_f32(M, N, K, A, am, ak, B, N + 3, C1, N + 2);
                CHECK(!memcmp(C0, C1, (size_t)(M * (N + 2)) * sizeof(float)), "gemm_f32 %s %lldx%lldx%lld tr %d differs",
                      kernels_isa_name((kernel_isa)isa), (long long)M, (long long)N, (long long)K, tr);
                free(A), free(B), free(C0), free(C1);
            }
    }
}

/* transpose_f32: the reference is the transpose; every ISA's variant gives its bits (whole 16 x 16 tiles
 * and ragged edges, leading dimensions wider than the rows) */
static void test_transpose(void) {
    const int64_t shapes[][2] = {{1, 1}, {16, 16}, {32, 48}, {17, 33}, {5, 40}, {40, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t R = shapes[s][0], C = shapes[s][1], lds = C + 3, ldd = R + 5;
        float *src = rnd(R * lds), *d0 = rnd(C * ldd), *d1 = malloc((size_t)(C * ldd) * sizeof(float));
        memcpy(d1, d0, (size_t)(C * ldd) * sizeof(float));
        kernels_vec_isa(KERNEL_ISA_REF)->transpose_f32(R, C, src, lds, d0, ldd);
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++)
                CHECK(d0[c * ldd + r] == src[r * lds + c], "transpose_f32 reference %lldx%lld wrong at %lld,%lld",
                      (long long)R, (long long)C, (long long)r, (long long)c);
        for (int isa = 1; isa < KERNEL_ISA_COUNT; isa++) {
            const kernel_vec_ops *vo = kernels_vec_isa((kernel_isa)isa);
            if (!vo) continue;
            float *d2 = malloc((size_t)(C * ldd) * sizeof(float));
            memcpy(d2, d1, (size_t)(C * ldd) * sizeof(float));
            vo->transpose_f32(R, C, src, lds, d2, ldd);
            CHECK(!memcmp(d0, d2, (size_t)(C * ldd) * sizeof(float)), "transpose_f32 %s %lldx%lld differs",
                  kernels_isa_name((kernel_isa)isa), (long long)R, (long long)C);
            free(d2);
        }
        free(src), free(d0), free(d1);
    }
}

/* adamw_f32 and sumsq_f32: the reference is the formula (checked against doubles where it is exact to
 * compare); every ISA's variant gives its bits, ragged lengths, zero and tiny gradients included */
static void test_optim_kernels(void) {
    const kernel_adamw c = {.decay = 1 - 3e-4f * 0.01f, .b1 = 0.9f, .c1 = 0.1f, .b2 = 0.999f, .c2 = 1 - 0.999f,
                            .step_size = 3e-4f / 0.19f, .bc2_sqrt = 0.0447f, .eps = 1e-8f};
    for (int64_t n = 1; n < 90; n += 11) {
        float w0[90], g[90], m0[90], v0[90];
        for (int64_t i = 0; i < 90; i++) {
            w0[i] = tu_sym(), g[i] = tu_sym() * (i % 7 == 3 ? 1e-30f : 1), m0[i] = tu_sym() * 0.1f;
            v0[i] = fabsf(tu_sym()) * 0.01f;
            if (i % 13 == 5) g[i] = 0, v0[i] = 0;
        }
        float w1[90], m1[90], v1[90];
        memcpy(w1, w0, sizeof w0), memcpy(m1, m0, sizeof m0), memcpy(v1, v0, sizeof v0);
        kernels_vec_isa(KERNEL_ISA_REF)->adamw_f32(n, w1, g, m1, v1, &c);
        for (int64_t i = 0; i < n; i++) { /* the formula, step by step in F32 */
            const float m = m0[i] * c.b1 + c.c1 * g[i], v = v0[i] * c.b2 + (c.c2 * g[i]) * g[i];
            const float w = w0[i] * c.decay + -c.step_size * (m / (sqrtf(v) / c.bc2_sqrt + c.eps));
            CHECK(w1[i] == w && m1[i] == m && v1[i] == v, "adamw_f32 reference at %lld", (long long)i);
        }
        double s0[8] = {1, 2, 3, 4, 5, 6, 7, 8}, e[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        kernels_vec_isa(KERNEL_ISA_REF)->sumsq_f32(n, g, s0);
        for (int64_t i = 0; i < n; i++) e[i % 8] += (double)g[i] * g[i];
        CHECK(!memcmp(s0, e, sizeof e), "sumsq_f32 reference (n %lld)", (long long)n);
        for (int isa = 1; isa < KERNEL_ISA_COUNT; isa++) {
            const kernel_vec_ops *vo = kernels_vec_isa((kernel_isa)isa);
            if (!vo) continue;
            float w2[90], m2[90], v2[90];
            memcpy(w2, w0, sizeof w0), memcpy(m2, m0, sizeof m0), memcpy(v2, v0, sizeof v0);
            vo->adamw_f32(n, w2, g, m2, v2, &c);
            CHECK(!memcmp(w1, w2, (size_t)n * 4) && !memcmp(m1, m2, (size_t)n * 4) && !memcmp(v1, v2, (size_t)n * 4) &&
                      !memcmp(w0 + n, w2 + n, (size_t)(90 - n) * 4),
                  "adamw_f32 %s differs (n %lld)", kernels_isa_name((kernel_isa)isa), (long long)n);
            double s1[8] = {1, 2, 3, 4, 5, 6, 7, 8};
            vo->sumsq_f32(n, g, s1);
            CHECK(!memcmp(s0, s1, sizeof s1), "sumsq_f32 %s differs (n %lld)", kernels_isa_name((kernel_isa)isa),
                  (long long)n);
        }
    }
}

/* exp_f32: the reference within 2 ulp of exp (in double) over the normal range, 0 / +inf / NaN at and past
 * its ends, the sum its 16 partials; every ISA's variant gives its bits (values, sum), ragged lengths,
 * in place too. A mutation check: a reference off by one ulp in one element must fail the comparison. */
static void test_exp_kernel(void) {
    const kernel_vec_ops *ref = kernels_vec_isa(KERNEL_ISA_REF);
    enum { N = 4096 + 13 };
    float *x = malloc(N * sizeof(float)), *y0 = malloc(N * sizeof(float)), *y1 = malloc(N * sizeof(float));
    for (int64_t i = 0; i < N; i++) x[i] = -100.0f + 190.0f * (float)i / N + 0.01f * tu_sym();
    const float specials[] = {0.0f, -0.0f, KERNEL_EXP_LO, KERNEL_EXP_HI, -INFINITY, INFINITY, NAN, 1e-30f, -1e-30f};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) x[i * 37] = specials[i];
    const double sum = ref->exp_f32(N, x, 1.0f, 0.0f, y0);
    double worst = 0;
    for (int64_t i = 0; i < N; i++) {
        const float t = x[i];
        if (t != t) {
            CHECK(y0[i] != y0[i], "exp_f32(NaN) = %g", y0[i]);
            continue;
        }
        if (t < KERNEL_EXP_LO) CHECK(y0[i] == 0.0f, "exp_f32(%g) = %g, want 0", t, y0[i]);
        else if (t > KERNEL_EXP_HI) CHECK(isinf(y0[i]) && y0[i] > 0, "exp_f32(%g) = %g, want inf", t, y0[i]);
        else {
            const double e = exp((double)t), ulp = ldexp(1.0, ilogb(e) - 23);
            worst = fmax(worst, fabs(y0[i] - e) / ulp);
        }
    }
    CHECK(worst <= 2.0, "exp_f32 reference: %g ulp from exp", worst);
    CHECK(sum != sum, "exp_f32's sum over a NaN is %g", sum);
    /* the sum without the NaN element: its partials, in order */
    float *xf = malloc(N * sizeof(float));
    memcpy(xf, x, N * sizeof(float));
    xf[6 * 37] = 0.0f, xf[5 * 37] = 0.0f; /* no NaN, no inf */
    for (int64_t i = 0; i < N; i++)
        if (xf[i] > 80.0f) xf[i] = 80.0f - 0.001f * (float)(i % 7);
    const double s2 = ref->exp_f32(N, xf, 0.5f, 3.0f, y1);
    double p2[16] = {0}, e2 = 0;
    for (int64_t i = 0; i < N; i++) {
        float t = xf[i] * 0.5f - 3.0f, e;
        ref->exp_f32(1, &t, 1.0f, 0.0f, &e);
        CHECK(y1[i] == e, "exp_f32 scale/sub at %lld", (long long)i);
        p2[i % 16] += (double)y1[i];
    }
    for (int l = 0; l < 16; l++) e2 += p2[l];
    CHECK(s2 == e2, "exp_f32 sum %.17g, want %.17g", s2, e2);
    for (int isa = 1; isa < KERNEL_ISA_COUNT; isa++) {
        const kernel_vec_ops *vo = kernels_vec_isa((kernel_isa)isa);
        if (!vo) continue;
        for (int64_t n = 1; n <= N; n = n < 40 ? n + 1 : n * 3 + 1) {
            const double r0 = ref->exp_f32(n, x, 1.0f, 0.0f, y0);
            float *y2 = malloc(N * sizeof(float));
            memcpy(y2, x, N * sizeof(float));
            const double r1 = vo->exp_f32(n, y2, 1.0f, 0.0f, y2); /* in place */
            CHECK(!memcmp(y0, y2, (size_t)n * 4) && !memcmp(x + n, y2 + n, (size_t)(N - n) * 4) &&
                      (r0 == r1 || (r0 != r0 && r1 != r1)),
                  "exp_f32 %s differs from the reference (n %lld)", kernels_isa_name((kernel_isa)isa), (long long)n);
            const double q0 = ref->exp_f32(n, xf, 0.5f, 3.0f, y0), q1 = vo->exp_f32(n, xf, 0.5f, 3.0f, y2);
            CHECK(!memcmp(y0, y2, (size_t)n * 4) && q0 == q1, "exp_f32 %s scale/sub differs (n %lld)",
                  kernels_isa_name((kernel_isa)isa), (long long)n);
            if (n == N) { /* the comparison can fail: one ulp off in one element */
                uint32_t b;
                memcpy(&b, &y0[n / 2], 4), b ^= 1, memcpy(&y0[n / 2], &b, 4);
                CHECK(memcmp(y0, y2, (size_t)n * 4) != 0, "exp_f32 mutation not detected");
            }
            free(y2);
        }
    }
    free(x), free(y0), free(y1), free(xf);
}

/* a scalar loss of the attention output: sum o * w, so dO = w */
static double attn_loss(const train_attn_shape *a, const float *q, const float *k, const float *v, const float *w) {
    const int64_t n = a->T * a->n_head * a->hd;
    float *o = malloc((size_t)n * sizeof(float)), *lse = malloc((size_t)(a->T * a->n_head) * sizeof(float));
    train_attention_forward_ref(a, q, k, v, o, lse);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)o[i] * w[i];
    free(o), free(lse);
    return s;
}

static void test_attention(void) {
    const int64_t cfg[][4] = {{5, 2, 1, 8}, {37, 4, 2, 16}, {20, 4, 4, 8}};
    thread_pool *pool = pool_new(3);
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        train_attn_shape a = {cfg[c][0], cfg[c][1], cfg[c][2], cfg[c][3], 1.0f / sqrtf((float)cfg[c][3])};
        const int64_t qn = a.T * a.n_head * a.hd, kn = a.T * a.n_head_kv * a.hd;
        float *q = rnd(qn), *k = rnd(kn), *v = rnd(kn), *w = rnd(qn);
        float *o0 = malloc((size_t)qn * 4), *o1 = malloc((size_t)qn * 4), *l0 = malloc((size_t)(a.T * a.n_head) * 4),
              *l1 = malloc((size_t)(a.T * a.n_head) * 4);
        float *scr = malloc((size_t)train_attention_scratch_floats(&a, 3) * 4), *D = malloc((size_t)(a.T * a.n_head) * 4);
        train_attention_forward_ref(&a, q, k, v, o0, l0);
        train_attention_forward(pool, &a, q, k, v, o1, l1, scr);
        double err = 0;
        for (int64_t i = 0; i < qn; i++) err = fmax(err, fabs(o0[i] - o1[i]));
        CHECK(err < 1e-5, "attention forward: threaded vs reference %g", err);
        float *dq0 = malloc((size_t)qn * 4), *dk0 = malloc((size_t)kn * 4), *dv0 = malloc((size_t)kn * 4);
        float *dq1 = malloc((size_t)qn * 4), *dk1 = malloc((size_t)kn * 4), *dv1 = malloc((size_t)kn * 4);
        train_attention_backward_ref(&a, q, k, v, o0, l0, w, dq0, dk0, dv0);
        train_attention_backward(pool, &a, q, k, v, o0, l0, w, dq1, dk1, dv1, D, scr);
        err = 0;
        for (int64_t i = 0; i < qn; i++) err = fmax(err, fabs(dq0[i] - dq1[i]));
        for (int64_t i = 0; i < kn; i++) err = fmax(err, fmax(fabs(dk0[i] - dk1[i]), fabs(dv0[i] - dv1[i])));
        CHECK(err < 1e-4, "attention backward: threaded vs reference %g", err);
        /* finite differences of the reference loss for a few elements of q, k, v */
        float *xs[3] = {q, k, v}, *gs[3] = {dq0, dk0, dv0};
        const int64_t ns[3] = {qn, kn, kn};
        for (int which = 0; which < 3; which++)
            for (int rep = 0; rep < 4; rep++) {
                const int64_t i = (int64_t)(tu_u64() % (uint64_t)ns[which]);
                const float x0 = xs[which][i], h = 1e-2f;
                xs[which][i] = x0 + h;
                double lp = attn_loss(&a, q, k, v, w);
                xs[which][i] = x0 - h;
                double lm = attn_loss(&a, q, k, v, w);
                xs[which][i] = x0;
                const double fd = (lp - lm) / (2 * h), g = gs[which][i];
                CHECK(fabs(fd - g) <= 2e-3 + 2e-3 * fabs(g), "attention %c[%lld]: fd %g analytic %g", "qkv"[which], (long long)i, fd, g);
            }
        free(q), free(k), free(v), free(w), free(o0), free(o1), free(l0), free(l1), free(scr), free(D);
        free(dq0), free(dk0), free(dv0), free(dq1), free(dk1), free(dv1);
    }
    pool_free(pool);
}

static void test_rows(void) {
    enum { N = 48 };
    float x[N], w[N], dy[N], y[N], dx[N], dw[N] = {0};
    for (int i = 0; i < N; i++) x[i] = tu_sym() * 2, w[i] = 1 + 0.3f * tu_sym(), dy[i] = tu_sym();
    const float eps = 1e-5f;
    float s = model_rmsnorm(y, x, w, N, eps);
    train_rmsnorm_backward(dx, dw, dy, x, w, s, N);
    for (int i = 0; i < N; i += 7) { /* d(sum dy*y)/dx_i and /dw_i */
        double f[2];
        for (int sg = 0; sg < 2; sg++) {
            float xx[N];
            memcpy(xx, x, sizeof xx);
            xx[i] += sg ? -1e-2f : 1e-2f;
            model_rmsnorm(y, xx, w, N, eps);
            f[sg] = 0;
            for (int j = 0; j < N; j++) f[sg] += (double)dy[j] * y[j];
        }
        const double fd = (f[0] - f[1]) / 2e-2;
        CHECK(fabs(fd - dx[i]) < 2e-3 * (1 + fabs(fd)), "rmsnorm dx[%d]: fd %g analytic %g", i, fd, dx[i]);
        const double dwe = (double)dy[i] * x[i] * s;
        CHECK(fabs(dwe - dw[i]) < 1e-5, "rmsnorm dw[%d]", i);
    }
    /* SwiGLU */
    float g[N], u[N], a[N], dg[N], du[N];
    for (int i = 0; i < N; i++) g[i] = tu_sym() * 4, u[i] = tu_sym();
    train_swiglu_backward(dg, du, dy, g, u, N);
    for (int i = 0; i < N; i += 5) {
        float gp = g[i] + 1e-2f, gm = g[i] - 1e-2f, ap, am;
        train_swiglu_forward(&ap, &gp, &u[i], 1);
        train_swiglu_forward(&am, &gm, &u[i], 1);
        const double fd = dy[i] * ((double)ap - am) / 2e-2;
        CHECK(fabs(fd - dg[i]) < 2e-3 * (1 + fabs(fd)), "swiglu dg[%d]: fd %g analytic %g", i, fd, dg[i]);
        train_swiglu_forward(&a[i], &g[i], &u[i], 1);
        CHECK(fabs(du[i] - dy[i] * a[i] / u[i]) < 1e-4 * (1 + fabs(du[i])) || fabs(u[i]) < 1e-3, "swiglu du[%d]", i);
    }
    /* RoPE: the backward is the transpose of the rotation (both layouts): <R x, d> == <x, R^T d> */
    for (int hs = 0; hs < 2; hs++) {
        enum { HD = 16, NH = 3 };
        float cs[HD], xv[NH * HD], dv[NH * HD], rx[NH * HD], rtd[NH * HD];
        model_rope_cache(cs, 37.0f, HD, 10000.0f, 1.0f, NULL);
        for (int i = 0; i < NH * HD; i++) xv[i] = tu_sym(), dv[i] = tu_sym();
        memcpy(rx, xv, sizeof rx);
        model_rope_apply(rx, NH, HD, cs, hs);
        memcpy(rtd, dv, sizeof rtd);
        train_rope_backward(rtd, NH, HD, cs, hs);
        double l = 0, r = 0;
        for (int i = 0; i < NH * HD; i++) l += (double)rx[i] * dv[i], r += (double)xv[i] * rtd[i];
        CHECK(fabs(l - r) < 1e-5, "rope backward (half_split %d): <Rx,d> %g vs <x,R^T d> %g", hs, l, r);
    }
    /* cross-entropy row */
    enum { V = 40 };
    float z[V], dz[V];
    for (int i = 0; i < V; i++) z[i] = tu_sym() * 3;
    double lp;
    const double l0 = train_xent_row(dz, z, V, 7, 0.5f, &lp);
    for (int i = 0; i < V; i += 3) {
        float zz[V], tmp[V];
        memcpy(zz, z, sizeof zz);
        zz[i] += 1e-2f;
        double lpp = train_xent_row(tmp, zz, V, 7, 0.5f, NULL);
        zz[i] -= 2e-2f;
        double lmm = train_xent_row(tmp, zz, V, 7, 0.5f, NULL);
        CHECK(fabs((lpp - lmm) / 2e-2 - dz[i]) < 1e-3, "xent dz[%d]", i);
    }
    CHECK(fabs(l0 + 0.5 * lp) < 1e-9, "xent loss = -w log p");
}


/* train_gemm_xwt / dyw / dytx against sums in double over the (dequantized) weight, for shapes that take
 * each path of xwt (W transposed for a small W, x and y transposed otherwise) and ragged k blocks; the
 * results for 1 and 3 threads bit-identical (each element one sum in one order). */
static void test_train_gemm(void) {
    /* n_in, n_out, T; n_in 8 and 64: dy W split by tokens (a LoRA B), the others by columns; n_out 40 and
     * 8: dy^T x split by columns (a LoRA A), the others by rows; T 300: two k blocks of dy^T x */
    const int64_t shapes[][3] = {{300, 40, 8}, {8, 300, 40}, {520, 70, 37}, {64, 96, 200}, {65, 600, 19}, {600, 8, 300}};
    thread_pool *pools[2] = {pool_new(1), pool_new(3)};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int quant = 0; quant < 2; quant++) {
            const int64_t n_in = shapes[si][0], n_out = shapes[si][1], T = shapes[si][2];
            if (quant && n_in % 32) continue;
            float *wf = rnd(n_in * n_out), *x = rnd(T * n_in), *dy = rnd(T * n_out);
            uint8_t *wq = NULL;
            weight qw = {.type = HERD_TYPE_Q8_0, .n_in = n_in, .n_out = n_out};
            train_w w = {.f = wf, .n_in = n_in, .n_out = n_out};
            if (quant) { /* the weight quantized; the reference uses its dequantized values */
                const kernel_type_ops *t = kernels_type(HERD_TYPE_Q8_0);
                qw.row_bytes = kernels_row_bytes(HERD_TYPE_Q8_0, n_in);
                wq = malloc((size_t)(qw.row_bytes * n_out));
                for (int64_t r = 0; r < n_out; r++) {
                    t->from_f32(wf + r * n_in, wq + r * qw.row_bytes, n_in);
                    t->to_f32(wq + r * qw.row_bytes, wf + r * n_in, n_in);
                }
                qw.data = wq;
                w = (train_w){.q = &qw, .n_in = n_in, .n_out = n_out};
            }
            float *y[2], *dx[2], *dw[2];
            for (int pi = 0; pi < 2; pi++) {
                train_gemm *g = train_gemm_new(pools[pi]);
                y[pi] = malloc(sizeof(float) * (size_t)(T * n_out));
                dx[pi] = calloc((size_t)(T * n_in), sizeof(float));
                dw[pi] = calloc((size_t)(n_out * n_in), sizeof(float));
                train_gemm_xwt(g, &w, x, n_in, T, y[pi], n_out);
                train_gemm_dyw(g, &w, dy, n_out, T, dx[pi], n_in);
                train_gemm_dytx(g, dy, n_out, x, n_in, T, n_out, n_in, dw[pi]);
                if (!quant) { /* y0 + x W^T: the block sums added to y0 as it is, in order */
                    float *y0 = rnd(T * n_out), *ya = malloc(sizeof(float) * (size_t)(T * n_out));
                    memcpy(ya, y0, sizeof(float) * (size_t)(T * n_out));
                    train_gemm_xwt_acc(g, &w, x, n_in, T, ya, n_out);
                    int bad_acc = 0;
                    for (int64_t t = 0; t < T; t++)
                        for (int64_t r = 0; r < n_out; r++) {
                            float e = y0[t * n_out + r];
                            for (int64_t k0 = 0; k0 < n_in; k0 += TRAIN_GEMM_KC) {
                                float acc = 0;
                                for (int64_t k = k0; k < n_in && k < k0 + TRAIN_GEMM_KC; k++) acc = fmaf(x[t * n_in + k], wf[r * n_in + k], acc);
                                e += acc;
                            }
                            bad_acc += e != ya[t * n_out + r];
                        }
                    CHECK(bad_acc == 0, "train_gemm_xwt_acc %lldx%lldx%lld: %d elements off", (long long)n_in, (long long)n_out,
                          (long long)T, bad_acc);
                    free(y0), free(ya);
                }
                train_gemm_free(g);
            }
            double ey = 0, ex = 0, ew = 0;
            for (int64_t t = 0; t < T; t++)
                for (int64_t r = 0; r < n_out; r++) {
                    double s = 0;
                    for (int64_t k = 0; k < n_in; k++) s += (double)x[t * n_in + k] * wf[r * n_in + k];
                    ey = fmax(ey, fabs(s - y[0][t * n_out + r]));
                }
            for (int64_t t = 0; t < T; t++)
                for (int64_t k = 0; k < n_in; k++) {
                    double s = 0;
                    for (int64_t r = 0; r < n_out; r++) s += (double)dy[t * n_out + r] * wf[r * n_in + k];
                    ex = fmax(ex, fabs(s - dx[0][t * n_in + k]));
                }
            for (int64_t r = 0; r < n_out; r++)
                for (int64_t k = 0; k < n_in; k++) {
                    double s = 0;
                    for (int64_t t = 0; t < T; t++) s += (double)dy[t * n_out + r] * x[t * n_in + k];
                    ew = fmax(ew, fabs(s - dw[0][r * n_in + k]));
                }
            /* dx bit for bit in gemm.h's order (per element, per k block of TRAIN_GEMM_KC an fmaf chain from
             * 0, added to dx), whichever split the shape takes (an F32 W of few columns: by tokens) */
            int bad_order = 0;
            for (int64_t t = 0; t < T; t++)
                for (int64_t k = 0; k < n_in; k++) {
                    float e = 0;
                    for (int64_t r0 = 0; r0 < n_out; r0 += TRAIN_GEMM_KC) {
                        float acc = 0;
                        for (int64_t r = r0; r < n_out && r < r0 + TRAIN_GEMM_KC; r++) acc = fmaf(dy[t * n_out + r], wf[r * n_in + k], acc);
                        e += acc;
                    }
                    bad_order += e != dx[0][t * n_in + k];
                }
            /* dW likewise (its k: the tokens), whichever split (a dW of few rows: by columns) */
            for (int64_t r = 0; r < n_out; r++)
                for (int64_t k = 0; k < n_in; k++) {
                    float e = 0;
                    for (int64_t t0 = 0; t0 < T; t0 += TRAIN_GEMM_KC) {
                        float acc = 0;
                        for (int64_t t = t0; t < T && t < t0 + TRAIN_GEMM_KC; t++) acc = fmaf(dy[t * n_out + r], x[t * n_in + k], acc);
                        e += acc;
                    }
                    bad_order += e != dw[0][r * n_in + k];
                }
            CHECK(bad_order == 0, "train_gemm %lldx%lldx%lld (q8_0 %d): %d dx / dW elements off the documented order",
                  (long long)n_in, (long long)n_out, (long long)T, quant, bad_order);
            CHECK(ey < 1e-4 && ex < 1e-4 && ew < 1e-4, "train_gemm %lldx%lldx%lld (q8_0 %d): errors y %g dx %g dw %g",
                  (long long)n_in, (long long)n_out, (long long)T, quant, ey, ex, ew);
            CHECK(!memcmp(y[0], y[1], sizeof(float) * (size_t)(T * n_out)) &&
                      !memcmp(dx[0], dx[1], sizeof(float) * (size_t)(T * n_in)) &&
                      !memcmp(dw[0], dw[1], sizeof(float) * (size_t)(n_out * n_in)),
                  "train_gemm %lldx%lldx%lld (q8_0 %d): 1 and 3 threads differ", (long long)n_in, (long long)n_out,
                  (long long)T, quant);
            for (int pi = 0; pi < 2; pi++) free(y[pi]), free(dx[pi]), free(dw[pi]);
            free(wf), free(x), free(dy), free(wq);
        }
    pool_free(pools[0]), pool_free(pools[1]);
}

int main(void) {
    tu_rng = 0x7261696e;
    kernels_init();
    test_gemm();
    test_optim_kernels();
    test_exp_kernel();
    test_transpose();
    test_train_gemm();
    test_attention();
    test_rows();
    return TU_DONE("test_train_ops");
}
