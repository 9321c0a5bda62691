/* The interleaved layouts (q8_0, q4_0, q5_0, iq4_nl, q4_1, q5_1, q4_K, q5_K, q6_K, iq4_xs, iq3_s, iq2_s) (kernels/packed.h) and the matmul that uses it.
 *
 *   packing      pk_gemm_ref on packed rows vs the plain scalar dot on the original rows: the same sum
 *                up to rounding (checks that packing put every weight, scale and activation where the
 *                numerics say); the level-table types (iq4_xs, iq3_s, iq2_s) bit for bit (their packed
 *                numerics are the plain dots').
 *   kernel       the active ISA's kernel (where it has one) vs pk_gemm_ref, bit for bit, on 1..20
 *                tokens, 1..9 groups, widths of 1..70 blocks, odd strides; no write outside y.
 *   invariance   each token's result is the same bits whatever else is computed with it (alone, in a
 *                batch of 17 at any position).
 *   matmul       a packed weight through matmul / matmul_multi: every token of a batch bit-identical to
 *                that token alone, on 1 and 3 threads; equal to pk_gemm_ref.
 * Types: q8_0, q4_0, q5_0, iq4_nl, q4_1, q5_1 (blocks of 32; q4_1 / q5_1 with q8_1 activations), q4_K, q5_K, q6_K, iq4_xs, iq3_s, iq2_s (super-blocks of 256, q8_K
 * activations; iq3_s / iq3_xxs / iq2_s weights random blocks, herd has no quantizer for them).
 * Exit status 0 = pass, 1 = fail.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "kernels/kernels.h"
#include "kernels/packed.h"
#include "kernels/types.h"
#include "model/matmul.h"
#include "testutil.h"

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

#define SENTINEL 0x7fc0beefu

typedef struct {
    int type;
    int64_t n, nr, nt, wrow, xrow, xp_stride, gb;
    uint8_t *w, *wp, *x, *xp;
} case_data;

/* Random weights (nr rows, quantized to type) and activations (nt rows, q8_0), packed both ways. */
static void make_case(case_data *c, int type, int64_t n, int64_t nr, int64_t nt) {
    const kernel_type_ops *wt = kernels_type_isa(type, KERNEL_ISA_REF);
    const kernel_type_ops *q8 = kernels_type_isa(wt->vec_dot_type, KERNEL_ISA_REF); /* q8_0 or q8_K */
    c->type = type, c->n = n, c->nr = nr, c->nt = nt;
    c->wrow = kernels_row_bytes(type, n), c->xrow = kernels_row_bytes(wt->vec_dot_type, n);
    c->gb = pk_group_bytes(type, n);
    c->xp_stride = pk_x_bytes(type, n) + 12; /* odd: nothing accidentally aligned */
    float *f = malloc(sizeof(float) * (size_t)(n * (nr > nt ? nr : nt)));
    c->w = malloc((size_t)(c->wrow * nr));
    c->wp = malloc((size_t)(c->gb * (nr / PK_ROWS)) + 1);
    c->x = malloc((size_t)(c->xrow * nt));
    c->xp = malloc((size_t)(c->xp_stride * nt) + 1);
    for (int64_t i = 0; i < n * nr; i++) f[i] = tu_sym();
    for (int64_t r = 0; r < nr; r++) {
        if (r % 5 == 4) /* a row with extreme values: q8_0 -127/127 and q4_0 0/15 in every block */
            for (int64_t i = 0; i < n; i++) f[r * n + i] = i % 2 ? 1.0f : -1.0f;
        if (wt->from_f32)
            wt->from_f32(f + r * n, c->w + r * c->wrow, n);
        else /* iq3_s, iq3_xxs, iq2_s: herd only reads them */
            tu_random_blocks(c->w + r * c->wrow, n, wt->block_bytes, fp32_to_fp16);
    }
    /* odd byte offsets for the packed buffers too */
    c->wp += 1, c->xp += 1;
    for (int64_t g = 0; g < nr / PK_ROWS; g++) pk_pack_w(type, n, c->w + g * PK_ROWS * c->wrow, c->wrow, c->wp + g * c->gb);
    for (int64_t i = 0; i < n * nt; i++) f[i] = 2.0f * tu_sym();
    for (int64_t t = 0; t < nt; t++) {
        if (t % 4 == 3) /* a wide range of block magnitudes */
            for (int64_t i = 0; i < n; i++) f[t * n + i] *= (float)(1 + (i / 32) % 7) * (i % 5 ? 0.01f : 3.0f);
        if (t % 7 == 6) /* activations at -127 / 127 */
            for (int64_t i = 0; i < n; i++) f[t * n + i] = i % 3 ? 1.0f : -1.0f;
        q8->from_f32(f + t * n, c->x + t * c->xrow, n);
        pk_pack_x(type, n, c->x + t * c->xrow, c->xp + t * c->xp_stride);
    }
    free(f);
}

static void free_case(case_data *c) {
    free(c->w), free(c->wp - 1), free(c->x), free(c->xp - 1);
}

static const char *tname(int t) {
    return herd_type_name(t);
}

static const int k_types[] = {HERD_TYPE_Q8_0, HERD_TYPE_Q4_0, HERD_TYPE_Q5_0,   HERD_TYPE_IQ4_NL,
                              HERD_TYPE_Q4_1, HERD_TYPE_Q5_1, HERD_TYPE_Q4_K,   HERD_TYPE_Q5_K,
                              HERD_TYPE_Q6_K, HERD_TYPE_IQ4_XS, HERD_TYPE_IQ3_S, HERD_TYPE_IQ3_XXS, HERD_TYPE_IQ2_S};
#define N_TYPES 13
/* the unit of a row: the K-quants' super-blocks are 8 blocks */
static int64_t unit(int type) {
    return kernels_type(type)->block == 32 ? 32 : 256;
}

static void test_ref_vs_dot(void) {
    const int *types = k_types;
    static const int64_t blocks[] = {1, 2, 3, 8, 9, 64};
    for (int ti = 0; ti < N_TYPES; ti++)
        for (int bi = 0; bi < 6; bi++) {
            case_data c;
            int64_t n = unit(types[ti]) * blocks[bi], nr = 32, nt = 7;
            make_case(&c, types[ti], n, nr, nt);
            const kernel_type_ops *ref = kernels_type_isa(types[ti], KERNEL_ISA_REF);
            float *y = malloc(sizeof(float) * (size_t)(nr * nt));
            pk_gemm_ref(types[ti], n, nr / PK_ROWS, nt, c.wp, c.xp, c.xp_stride, y, nr);
            double worst = 0;
            int differ = 0;
            for (int64_t t = 0; t < nt; t++)
                for (int64_t r = 0; r < nr; r++) {
                    float want;
                    ref->dot(n, &want, c.w + r * c.wrow, c.x + t * c.xrow);
                    differ += bits(want) != bits(y[t * nr + r]);
                    double e = fabs((double)y[t * nr + r] - want) / (fabs(want) + 0.1 * sqrt((double)n)) /* vs the products' scale */;
                    if (e > worst) worst = e;
                }
            CHECK(worst < 1e-4, "%s n=%lld: packed reference vs plain dot: relative error %.3g", tname(types[ti]),
                  (long long)n, worst);
            if (pk_levels(types[ti]))
                CHECK(differ == 0, "%s n=%lld: %d packed results differ from the plain dot's bits", tname(types[ti]),
                      (long long)n, differ);
            free(y);
            free_case(&c);
        }
}

static int check_kernel(pk_gemm_fn k, int type, int64_t n, int64_t ng, int64_t nt) {
    case_data c;
    make_case(&c, type, n, ng * PK_ROWS, nt);
    int64_t ldy = ng * PK_ROWS + 5;
    float *want = malloc(sizeof(float) * (size_t)(ldy * nt)), *got = malloc(sizeof(float) * (size_t)(ldy * nt));
    for (int64_t i = 0; i < ldy * nt; i++) {
        uint32_t s = SENTINEL;
        memcpy(&got[i], &s, 4);
    }
    pk_gemm_ref(type, n, ng, nt, c.wp, c.xp, c.xp_stride, want, ldy);
    k(n, ng, nt, c.wp, c.xp, c.xp_stride, got, ldy);
    int bad = 0, outside = 0;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t col = 0; col < ldy; col++) {
            if (col >= ng * PK_ROWS) {
                outside += bits(got[t * ldy + col]) != SENTINEL;
                continue;
            }
            if (bits(got[t * ldy + col]) != bits(want[t * ldy + col])) {
                if (bad < 3)
                    fprintf(stderr, "    %s n=%lld %lld groups x %lld tokens: row %lld token %lld: %.9g, ref %.9g\n",
                            tname(type), (long long)n, (long long)ng, (long long)nt, (long long)col, (long long)t,
                            got[t * ldy + col], want[t * ldy + col]);
                bad++;
            }
        }
    /* invariance: each token alone, through the kernel, gives the same bits */
    int var = 0;
    float *one = malloc(sizeof(float) * (size_t)(ng * PK_ROWS));
    for (int64_t t = 0; t < nt; t += 3) {
        k(n, ng, 1, c.wp, c.xp + t * c.xp_stride, c.xp_stride, one, ng * PK_ROWS);
        for (int64_t r = 0; r < ng * PK_ROWS; r++) var += bits(one[r]) != bits(got[t * ldy + r]);
    }
    CHECK(bad == 0, "%s n=%lld %lld groups x %lld tokens: %d results differ from the reference's bits", tname(type),
          (long long)n, (long long)ng, (long long)nt, bad);
    CHECK(outside == 0, "%s: the kernel wrote %d cells outside its rows", tname(type), outside);
    CHECK(var == 0, "%s n=%lld: %d results of tokens alone differ from the same tokens in a batch of %lld",
          tname(type), (long long)n, var, (long long)nt);
    free(one), free(want), free(got);
    free_case(&c);
    return bad + outside + var;
}

static void test_kernels(void) {
    const int *types = k_types;
    static const int64_t groups[] = {1, 2, 3, 4, 5, 9};
    static const int64_t toks[] = {1, 2, 3, 5, 8, 9, 17, 20};
    static const int64_t blocks[] = {1, 2, 3, 7, 64, 70};
    int ran = 0;
    for (int ti = 0; ti < N_TYPES; ti++) {
        pk_gemm_fn k = pk_gemm_for(types[ti], 256, 16);
        if (!k) continue;
        ran++;
        for (int gi = 0; gi < 6; gi++)
            for (int tk = 0; tk < 8; tk++)
                for (int bi = 0; bi < (unit(types[ti]) == 256 ? 4 : 6); bi++)
                    if (check_kernel(k, types[ti], unit(types[ti]) * blocks[bi], groups[gi], toks[tk])) return;
    }
    /* long rows: groups in several chunks of the L2 size, and (q8_0, 16384 wide: 20 KiB per token)
     * tokens in several blocks of the L3 size (packed_avx512.c, drive) */
    for (int ti = 0; ti < N_TYPES; ti++) {
        pk_gemm_fn k = pk_gemm_for(types[ti], 256, 16);
        if (k) check_kernel(k, types[ti], 8192, 2, 75);
    }
    pk_gemm_fn k8 = pk_gemm_for(HERD_TYPE_Q8_0, 256, 16);
    if (k8) check_kernel(k8, HERD_TYPE_Q8_0, 16384, 1, 420);
    if (!ran) printf("  (no packed kernel on this CPU: only the reference is checked)\n");
}

/* matmul with a packed weight: batch rows vs the same rows alone, 1 and 3 threads. */
static void test_matmul(void) {
    const int *types = k_types;
    for (int ti = 0; ti < N_TYPES; ti++) {
        int type = types[ti];
        int64_t n = 3 * unit(type), nr = 48, nt = 13;
        if (!pk_gemm_for(type, n, nr)) continue;
        case_data c;
        make_case(&c, type, n, nr, 1);
        weight w = {.type = type, .n_in = n, .n_out = nr, .row_bytes = c.wrow, .data = c.w, .name = "w",
                    .packed = c.wp};
        weight w2 = w; /* a second weight sharing the input, as K with Q */
        float *x = malloc(sizeof(float) * (size_t)(n * nt));
        for (int64_t i = 0; i < n * nt; i++) x[i] = tu_sym();
        void *xq = malloc((size_t)matmul_scratch_bytes(type, n, nt));
        float *yb = malloc(sizeof(float) * (size_t)(nr * nt)), *y2 = malloc(sizeof(float) * (size_t)(nr * nt));
        float *y1 = malloc(sizeof(float) * (size_t)nr), *yr = malloc(sizeof(float) * (size_t)(nr * nt));
        /* the reference: q8_0 rows of x, packed, through pk_gemm_ref */
        const kernel_type_ops *q8 = kernels_type(kernels_type(type)->vec_dot_type);
        int64_t xs = pk_x_bytes(type, n);
        uint8_t *xr = malloc((size_t)kernels_row_bytes(q8->type, n)), *xp = malloc((size_t)(xs * nt));
        for (int64_t t = 0; t < nt; t++) {
            q8->from_f32(x + t * n, xr, n);
            pk_pack_x(type, n, xr, xp + t * xs);
        }
        pk_gemm_ref(type, n, nr / PK_ROWS, nt, c.wp, xp, xs, yr, nr);
        for (int threads = 1; threads <= 3; threads += 2) {
            thread_pool *pool = pool_new(threads);
            matmul_out outs[2] = {{&w, yb, nr}, {&w2, y2, nr}};
            matmul_multi(pool, outs, 2, x, n, nt, xq);
            int bad = 0;
            for (int64_t t = 0; t < nt; t++) {
                matmul(pool, &w, x + t * n, n, 1, y1, nr, xq);
                for (int64_t r = 0; r < nr; r++) {
                    bad += bits(y1[r]) != bits(yb[t * nr + r]) || bits(y2[t * nr + r]) != bits(yb[t * nr + r]);
                    bad += bits(yr[t * nr + r]) != bits(yb[t * nr + r]);
                }
            }
            CHECK(bad == 0, "%s matmul, %d threads: %d results differ between batch, alone, second weight, reference",
                  tname(type), threads, bad);
            pool_free(pool);
        }
        free(x), free(xq), free(yb), free(y2), free(y1), free(yr), free(xr), free(xp);
        free_case(&c);
    }
}

int main(void) {
    tu_rng = 0x5eed5eed12345678ull; /* this test's seed */
    kernels_init();
    test_ref_vs_dot();
    test_kernels();
    test_matmul();
    return TU_DONE("test_packed");
}
