/* Batched dots (the gemm fields of kernel_type_ops, kernels.h) and the matmul that uses them.
 *
 *   gemm vs dot     for every weight type and every ISA this CPU has, where the type has a gemm: each
 *                   y[t][r] is bit-identical to the same ISA's dot of row r and token t (the batch
 *                   invariance of the forward pass rests on this), on ragged shapes: rows and tokens
 *                   that are not multiples of the register tile, widths with odd block counts, widths
 *                   below, at and between the kernel's groups of blocks; no write outside y's cells.
 *   gemm vs ref     the same results within a tolerance of the scalar reference dot.
 *   matmul          every token of a batch (which takes the gemm) bit-identical to that token alone
 *                   (which takes the per-row dots), for Q/K/V-like multi-weight passes too, on 1 and
 *                   3 threads.
 * Exit status 0 = pass, 1 = fail.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "kernels/kernels.h"
#include "model/matmul.h"
#include "testutil.h"

static const int k_types[] = {HERD_TYPE_F32,  HERD_TYPE_F16,  HERD_TYPE_BF16, HERD_TYPE_Q8_0,
                              HERD_TYPE_Q4_0, HERD_TYPE_Q2_K, HERD_TYPE_Q3_K, HERD_TYPE_Q4_K,
                              HERD_TYPE_Q5_K, HERD_TYPE_Q6_K};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

static const char *type_name(int t) {
    switch (t) {
    case HERD_TYPE_F32: return "f32";
    case HERD_TYPE_F16: return "f16";
    case HERD_TYPE_BF16: return "bf16";
    case HERD_TYPE_Q8_0: return "q8_0";
    case HERD_TYPE_Q4_0: return "q4_0";
    case HERD_TYPE_Q2_K: return "q2_K";
    case HERD_TYPE_Q3_K: return "q3_K";
    case HERD_TYPE_Q4_K: return "q4_K";
    case HERD_TYPE_Q5_K: return "q5_K";
    case HERD_TYPE_Q6_K: return "q6_K";
    default: return "?";
    }
}

static void random_floats(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = tu_sym() * scale;
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

#define SENTINEL 0x7fc0beefu /* a NaN pattern in y cells the gemm must not touch */

/* One shape: nr rows x nt tokens of width n, at one ISA. Returns the number of failures. */
static int check_shape(int type, kernel_isa isa, int64_t n, int64_t nr, int64_t nt, double *worst) {
    const kernel_type_ops *o = kernels_type_isa(type, isa), *ref = kernels_type_isa(type, KERNEL_ISA_REF);
    const kernel_type_ops *vd = kernels_type_isa(o->vec_dot_type, isa);
    int64_t xp_bytes = o->gemm_x_bytes(n);
    if (xp_bytes <= 0) return 0; /* a width the kernel does not take: matmul uses the dots */
    int64_t wrow = kernels_row_bytes(type, n), xrow = kernels_row_bytes(o->vec_dot_type, n);
    float *f = malloc(sizeof(float) * (size_t)(n * (nr > nt ? nr : nt)));
    uint8_t *w = malloc((size_t)(wrow * nr)), *x = malloc((size_t)(xrow * nt));
    /* odd strides so nothing is accidentally aligned */
    int64_t xp_stride = xp_bytes + 8, ldy = nr + 3;
    uint8_t *xp = malloc((size_t)(xp_stride * nt + 64));
    float *y = malloc(sizeof(float) * (size_t)(ldy * nt));
    random_floats(f, n * nr, 1.0f);
    for (int64_t r = 0; r < nr; r++) ref->from_f32(f + r * n, w + r * wrow, n);
    random_floats(f, n * nt, 2.0f);
    for (int64_t t = 0; t < nt; t++) {
        if (t % 4 == 3) /* a token with a wide range of block magnitudes */
            for (int64_t i = 0; i < n; i++) f[t * n + i] *= (float)(1 + (i / 32) % 7) * (i % 5 ? 0.01f : 3.0f);
        vd->from_f32(f + t * n, x + t * xrow, n);
        o->gemm_pack_x(n, x + t * xrow, xp + t * xp_stride);
    }
    for (int64_t i = 0; i < ldy * nt; i++) {
        uint32_t s = SENTINEL;
        memcpy(&y[i], &s, 4);
    }
    o->gemm(n, nr, nt, w, wrow, xp, xp_stride, y, ldy);
    int bad = 0, outside = 0;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t c = 0; c < ldy; c++) {
            float got = y[t * ldy + c];
            if (c >= nr) {
                outside += bits(got) != SENTINEL;
                continue;
            }
            float want, wref;
            o->dot(n, &want, w + c * wrow, x + t * xrow);
            ref->dot(n, &wref, w + c * wrow, x + t * xrow);
            if (bits(got) != bits(want)) {
                if (bad < 3)
                    fprintf(stderr, "    %s %s n=%lld %lldx%lld: row %lld token %lld: gemm %.9g, dot %.9g\n",
                            type_name(type), kernels_isa_name(isa), (long long)n, (long long)nr, (long long)nt,
                            (long long)c, (long long)t, got, want);
                bad++;
            }
            /* vs the scalar reference: relative to the sum of |products| scale */
            double e = fabs((double)got - wref) / (fabs(wref) + sqrt((double)n) * 0.1);
            if (e > *worst) *worst = e;
        }
    CHECK(bad == 0, "%s %s n=%lld %lld rows x %lld tokens: %d results differ from the dot's bits", type_name(type),
          kernels_isa_name(isa), (long long)n, (long long)nr, (long long)nt, bad);
    CHECK(outside == 0, "%s %s: gemm wrote %d cells outside its rows", type_name(type), kernels_isa_name(isa),
          outside);
    free(f), free(w), free(x), free(xp), free(y);
    return bad + outside;
}

static void test_gemm_vs_dot(void) {
    static const int64_t rows[] = {1, 2, 3, 4, 5, 7, 9, 13};
    static const int64_t toks[] = {1, 2, 3, 4, 5, 6, 9, 17};
    static const int64_t blocks32[] = {1, 2, 3, 7, 8, 9, 10, 11, 16, 17, 19, 24, 64, 70};
    static const int64_t blocks256[] = {1, 2, 3, 5, 8};
    static const int64_t widths1[] = {1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 257, 300, 513, 1000};
    int n_gemm = 0;
    for (int ti = 0; ti < N_TYPES; ti++)
        for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
            const kernel_type_ops *o = kernels_type_isa(k_types[ti], (kernel_isa)isa);
            if (!o || !o->gemm) continue;
            n_gemm++;
            CHECK(o->gemm_x_bytes && o->gemm_pack_x, "%s %s: gemm without its packing", type_name(k_types[ti]),
                  kernels_isa_name((kernel_isa)isa));
            /* widths: counts of blocks, or of elements for the float types (every chunk tail) */
            int64_t bs = o->block;
            const int64_t *bl = bs == 1 ? widths1 : bs == 32 ? blocks32 : blocks256;
            int nbl = bs == 1    ? (int)(sizeof widths1 / sizeof widths1[0])
                      : bs == 32 ? (int)(sizeof blocks32 / sizeof blocks32[0])
                                 : (int)(sizeof blocks256 / sizeof blocks256[0]);
            double worst = 0;
            int fails = 0;
            for (int b = 0; b < nbl; b++)
                for (int ri = 0; ri < 8; ri++)
                    for (int k = 0; k < 8; k++) {
                        if (bl[b] * bs > 24 * 32 && (ri % 3 || k % 3)) continue; /* wide: a sample of shapes */
                        fails += check_shape(k_types[ti], (kernel_isa)isa, bl[b] * bs, rows[ri], toks[k], &worst);
                    }
            /* a width of a real model (the 1B's n_embd), a full register tile and ragged edges */
            fails += check_shape(k_types[ti], (kernel_isa)isa, 2048, 6, 7, &worst);
            CHECK(worst < 1e-4, "%s %s: gemm vs the scalar reference: relative error %.2e", type_name(k_types[ti]),
                  kernels_isa_name((kernel_isa)isa), worst);
            printf("  %-5s %-7s gemm == dot bit for bit on every shape (%s), vs scalar reference %.2e\n",
                   type_name(k_types[ti]), kernels_isa_name((kernel_isa)isa), fails ? "FAILED" : "ok", worst);
        }
    printf("  %d (type, ISA) pairs with a gemm on this CPU\n", n_gemm);
}

/* matmul of a batch == matmul of each token alone, bit for bit (gemm vs per-row dots, thread splits). */
static void test_matmul_batch_invariance(void) {
    /* the third weight (V) of another type where a model mix does that: q4_0 with q8_0 (same packed
     * activations), q4_K with q6_K (Q4_K_M), q5_K with q8_0 (different vec_dot types: separate passes) */
    static const int types[][2] = {{HERD_TYPE_Q8_0, HERD_TYPE_Q8_0}, {HERD_TYPE_Q4_0, HERD_TYPE_Q8_0},
                                   {HERD_TYPE_F16, HERD_TYPE_BF16},  {HERD_TYPE_Q4_K, HERD_TYPE_Q6_K},
                                   {HERD_TYPE_Q5_K, HERD_TYPE_Q8_0}, {HERD_TYPE_Q6_K, HERD_TYPE_Q4_K},
                                   {HERD_TYPE_F32, HERD_TYPE_F32}};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (int nth = 1; nth <= 3; nth += 2) {
            int type = types[ti][0];
            const int64_t n_in = 512, n_tok = 11;
            const int64_t n_out[3] = {37, 8, 8}; /* Q, K, V-like: one input, three weights */
            weight w[3];
            uint8_t *wd[3];
            float *f = malloc(sizeof(float) * (size_t)(n_in * 37));
            for (int i = 0; i < 3; i++) {
                int ty = i == 2 ? types[ti][1] : type;
                const kernel_type_ops *o = kernels_type(ty);
                int64_t wrow = kernels_row_bytes(ty, n_in);
                wd[i] = malloc((size_t)(wrow * n_out[i]));
                random_floats(f, n_in * n_out[i], 0.5f);
                for (int64_t r = 0; r < n_out[i]; r++) o->from_f32(f + r * n_in, wd[i] + r * wrow, n_in);
                w[i] = (weight){.type = ty, .n_in = n_in, .n_out = n_out[i], .row_bytes = wrow, .data = wd[i],
                                .name = "w"};
            }
            float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
            random_floats(x, n_in * n_tok, 1.5f);
            float *yb[3], *y1[3];
            for (int i = 0; i < 3; i++) {
                yb[i] = malloc(sizeof(float) * (size_t)(n_out[i] * n_tok));
                y1[i] = malloc(sizeof(float) * (size_t)(n_out[i] * n_tok));
            }
            int64_t xqb = matmul_scratch_bytes(type, n_in, n_tok), xqb2 = matmul_scratch_bytes(types[ti][1], n_in, n_tok);
            void *xq = malloc((size_t)(xqb > xqb2 ? xqb : xqb2));
            thread_pool *pool = pool_new(nth);
            matmul_out outs[3] = {{&w[0], yb[0], n_out[0]}, {&w[1], yb[1], n_out[1]}, {&w[2], yb[2], n_out[2]}};
            matmul_multi(pool, outs, 3, x, n_in, n_tok, xq);
            for (int64_t t = 0; t < n_tok; t++)
                for (int i = 0; i < 3; i++) matmul(pool, &w[i], x + t * n_in, n_in, 1, y1[i] + t * n_out[i], n_out[i], xq);
            /* three tokens at once take the gemm too (the smallest batch that does) */
            float *y3 = malloc(sizeof(float) * (size_t)(n_out[0] * 3));
            matmul(pool, &w[0], x + 4 * n_in, n_in, 3, y3, n_out[0], xq);
            int bad = 0;
            for (int i = 0; i < 3; i++) bad += memcmp(yb[i], y1[i], sizeof(float) * (size_t)(n_out[i] * n_tok)) != 0;
            bad += memcmp(y3, y1[0] + 4 * n_out[0], sizeof(float) * (size_t)(n_out[0] * 3)) != 0;
            CHECK(bad == 0, "%s, %d threads: a batch of %lld tokens differs from the tokens one at a time",
                  type_name(type), nth, (long long)n_tok);
            /* and the batch against the scalar reference dots (a weight computed with another type's
             * kernel would pass the comparisons above) */
            double worst = 0;
            for (int i = 0; i < 3; i++) {
                const kernel_type_ops *ref = kernels_type_isa(w[i].type, KERNEL_ISA_REF);
                const kernel_type_ops *rvd = kernels_type_isa(ref->vec_dot_type, KERNEL_ISA_REF);
                uint8_t *xr = malloc((size_t)kernels_row_bytes(ref->vec_dot_type, n_in));
                for (int64_t t = 0; t < n_tok; t++) {
                    rvd->from_f32(x + t * n_in, xr, n_in);
                    for (int64_t r = 0; r < n_out[i]; r++) {
                        float want;
                        ref->dot(n_in, &want, wd[i] + r * w[i].row_bytes, xr);
                        double e = fabs((double)yb[i][t * n_out[i] + r] - want) / (fabs(want) + 1.0);
                        if (e > worst) worst = e;
                    }
                }
                free(xr);
            }
            CHECK(worst < 1e-4, "%s + %s: batch vs the scalar reference dots: %.2e", type_name(type),
                  type_name(types[ti][1]), worst);
            printf("  matmul %-5s + %-5s (%s, %d threads): batch of %lld and of 3 == one token at a time (%s), "
                   "vs scalar reference %.1e\n",
                   type_name(type), type_name(types[ti][1]), herd_cpu_backend(), nth, (long long)n_tok,
                   bad ? "FAILED" : "ok", worst);
            pool_free(pool);
            for (int i = 0; i < 3; i++) free(wd[i]), free(yb[i]), free(y1[i]);
            free(f), free(x), free(xq), free(y3);
        }
}

int main(void) {
    tu_rng = 0x1234567887654321ull; /* this test's seed */
    kernels_init();
    test_gemm_vs_dot();
    test_matmul_batch_invariance();
    return TU_DONE("test_gemm");
}
