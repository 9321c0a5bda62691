/* The AMX-INT8 kernels of the packed layouts (kernels/x86/gemm_amx.c).
 *
 *   bits        pk_gemm_q8_0_amx / _q4_0_ / _q5_0_ / _iq4_nl_ / _q4_1_ / _q5_1_ vs pk_gemm_ref (the scalar reference) and vs the VNNI
 *               kernels, bit for bit, on 1..100 tokens (below 16: the VNNI path; 16 and up: AMX tiles plus
 *               a VNNI remainder), 1..5 groups, widths of 1..300 blocks (odd counts: the single-block
 *               tail; past 128: several converted chunks), odd strides and offsets; long rows with
 *               two token blocks; no write outside the group's columns.
 *   invariance  a token's results are the same bits alone (the VNNI path) and inside any batch.
 *   q4_K, q5_K, q6_K, iq4_xs, iq3_s  the same checks for pk_gemm_q4_K_amx / ... (packed, q8_K activations) on 1..17
 *               super-blocks (several converted chunks of 8), 15..100 tokens, 1..3 groups, 8192 wide, and
 *               2048 wide x 530 tokens (two token blocks and a VNNI tail).
 *   iq4_xs      the AVX-512 table's gemm (AMX from 16 tokens and 16 rows) vs the reference dot, bit for bit,
 *               on whole and partial groups of rows and tiles of tokens, 1..33 super-blocks.
 *   dispatch    pk_gemm_for hands out the AMX kernels only when kernels_amx_active(); HERD_ISA=avx512
 *               (run as a child process) keeps the VNNI ones.
 * Skips (77) on CPUs or kernels without AMX-INT8. Exit status 0 = pass, 1 = fail.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "kernels/kquants.h"
#include "kernels/packed.h"
#include "kernels/types.h"
#include "testutil.h"

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

#define SENTINEL 0x7fc0beefu

typedef struct {
    int64_t n, ng, nt, xs, gb;
    uint8_t *wp, *xp; /* packed weights and activations, each at an odd offset into its allocation */
} amx_case;

static int is_k(int type) {
    return kernels_type(type)->block == 256;
}

/* Random weights (ng groups of 16 rows) and activations (nt tokens), packed; some rows and tokens at the
 * extremes of the types (q8_0 -127/127, q4_0 0/15, activations -127/127), some tokens with wide block
 * magnitudes. */
static void make_case(amx_case *c, int type, int64_t n, int64_t ng, int64_t nt) {
    const int xt = kernels_type(type)->vec_dot_type; /* the activations' type: q8_0, q8_1 or q8_K */
    const kernel_type_ops *wt = kernels_type_isa(type, KERNEL_ISA_REF), *q8 = kernels_type_isa(xt, KERNEL_ISA_REF);
    int64_t nr = ng * PK_ROWS, wrow = kernels_row_bytes(type, n), xrow = kernels_row_bytes(xt, n);
    c->n = n, c->ng = ng, c->nt = nt;
    c->gb = pk_group_bytes(type, n);
    c->xs = pk_x_bytes(type, n) + 12; /* odd: nothing accidentally aligned */
    float *f = malloc(sizeof(float) * (size_t)n);
    uint8_t *w = malloc((size_t)(wrow * nr)), *xq = malloc((size_t)xrow);
    c->wp = (uint8_t *)malloc((size_t)(c->gb * ng) + 1) + 1;
    c->xp = (uint8_t *)malloc((size_t)(c->xs * nt) + 3) + 3;
    for (int64_t r = 0; r < nr; r++) {
        for (int64_t i = 0; i < n; i++)
            f[i] = r % 5 == 4 ? (i % 2 ? 1.0f : -1.0f) : tu_sym() * (is_k(type) ? (float)(1 + (i / 16) % 9) : 1.0f);
        if (wt->from_f32)
            wt->from_f32(f, w + r * wrow, n);
        else /* iq3_s, iq3_xxs: herd only reads them */
            tu_random_blocks(w + r * wrow, n, wt->block_bytes, fp32_to_fp16);
    }
    for (int64_t g = 0; g < ng; g++) pk_pack_w(type, n, w + g * PK_ROWS * wrow, wrow, c->wp + g * c->gb);
    for (int64_t t = 0; t < nt; t++) {
        for (int64_t i = 0; i < n; i++) {
            f[i] = 2.0f * tu_sym();
            if (t % 4 == 3) f[i] *= (float)(1 + (i / 32) % 7) * (i % 5 ? 0.01f : 3.0f);
            if (t % 7 == 6) f[i] = i % 3 ? 1.0f : -1.0f;
        }
        q8->from_f32(f, xq, n);
        pk_pack_x(type, n, xq, c->xp + t * c->xs);
    }
    free(f), free(w), free(xq);
}

static void free_case(amx_case *c) {
    free(c->wp - 1), free(c->xp - 3);
}

static const char *tname(int t) {
    return herd_type_name(t);
}

/* y with sentinels in every cell, ldy = 16 ng + 3 (the last 3 columns must stay untouched) */
static float *sentinels(int64_t cells) {
    float *y = malloc(sizeof(float) * (size_t)cells);
    for (int64_t i = 0; i < cells; i++) {
        uint32_t s = SENTINEL;
        memcpy(&y[i], &s, 4);
    }
    return y;
}

/* The AMX kernel vs the reference and the VNNI kernel; each token alone vs in the batch. Returns the
 * number of differences. */
static int check(int type, int64_t n, int64_t ng, int64_t nt) {
    pk_gemm_fn amx = type == HERD_TYPE_Q8_0   ? pk_gemm_q8_0_amx
                     : type == HERD_TYPE_Q4_0 ? pk_gemm_q4_0_amx
                     : type == HERD_TYPE_Q5_0 ? pk_gemm_q5_0_amx
                     : type == HERD_TYPE_IQ4_NL ? pk_gemm_iq4_nl_amx
                     : type == HERD_TYPE_Q4_1 ? pk_gemm_q4_1_amx
                     : type == HERD_TYPE_Q5_1 ? pk_gemm_q5_1_amx
                     : type == HERD_TYPE_Q4_K ? pk_gemm_q4_K_amx
                     : type == HERD_TYPE_Q5_K ? pk_gemm_q5_K_amx
                     : type == HERD_TYPE_Q6_K ? pk_gemm_q6_K_amx
                     : type == HERD_TYPE_IQ4_XS ? pk_gemm_iq4_xs_amx
                     : type == HERD_TYPE_IQ3_S ? pk_gemm_iq3_s_amx
                                              : pk_gemm_iq3_xxs_amx;
    pk_gemm_fn vnni = type == HERD_TYPE_Q8_0   ? pk_gemm_q8_0_avx512
                      : type == HERD_TYPE_Q4_0 ? pk_gemm_q4_0_avx512
                      : type == HERD_TYPE_Q5_0 ? pk_gemm_q5_0_avx512
                      : type == HERD_TYPE_IQ4_NL ? pk_gemm_iq4_nl_avx512
                      : type == HERD_TYPE_Q4_1 ? pk_gemm_q4_1_avx512
                      : type == HERD_TYPE_Q5_1 ? pk_gemm_q5_1_avx512
                      : type == HERD_TYPE_Q4_K ? pk_gemm_q4_K_avx512
                      : type == HERD_TYPE_Q5_K ? pk_gemm_q5_K_avx512
                      : type == HERD_TYPE_Q6_K ? pk_gemm_q6_K_avx512
                      : type == HERD_TYPE_IQ4_XS ? pk_gemm_iq4_xs_avx512
                      : type == HERD_TYPE_IQ3_S ? pk_gemm_iq3_s_avx512
                                               : pk_gemm_iq3_xxs_avx512;
    amx_case c;
    make_case(&c, type, n, ng, nt);
    int64_t ldy = ng * PK_ROWS + 3, cells = ldy * nt;
    float *want = sentinels(cells), *got = sentinels(cells), *vn = sentinels(cells), *one = sentinels(ldy);
    pk_gemm_ref(type, n, ng, nt, c.wp, c.xp, c.xs, want, ldy);
    vnni(n, ng, nt, c.wp, c.xp, c.xs, vn, ldy);
    amx(n, ng, nt, c.wp, c.xp, c.xs, got, ldy);
    int bad = 0, bad_vnni = 0, outside = 0, var = 0;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t col = 0; col < ldy; col++) {
            uint32_t g = bits(got[t * ldy + col]);
            if (col >= ng * PK_ROWS) {
                outside += g != SENTINEL;
                continue;
            }
            if (g != bits(want[t * ldy + col]) && bad++ < 3)
                fprintf(stderr, "    %s n=%" PRId64 " %" PRId64 " groups x %" PRId64 " tokens: row %" PRId64
                                " token %" PRId64 ": %.9g, reference %.9g\n",
                        tname(type), n, ng, nt, col, t, got[t * ldy + col], want[t * ldy + col]);
            bad_vnni += g != bits(vn[t * ldy + col]);
        }
    for (int64_t t = 0; t < nt; t += 5) { /* alone: a batch of 1 */
        amx(n, ng, 1, c.wp, c.xp + t * c.xs, c.xs, one, ldy);
        for (int64_t r = 0; r < ng * PK_ROWS; r++) var += bits(one[r]) != bits(got[t * ldy + r]);
    }
    CHECK(bad == 0, "%s n=%" PRId64 " %" PRId64 " groups x %" PRId64 " tokens: %d results differ from the reference",
          tname(type), n, ng, nt, bad);
    CHECK(bad_vnni == 0, "%s n=%" PRId64 " %" PRId64 " groups x %" PRId64 " tokens: %d results differ from VNNI's",
          tname(type), n, ng, nt, bad_vnni);
    CHECK(outside == 0, "%s n=%" PRId64 ": %d cells written outside the groups' columns", tname(type), n, outside);
    CHECK(var == 0, "%s n=%" PRId64 ": %d results of tokens alone differ from the batch of %" PRId64, tname(type), n,
          var, nt);
    free(want), free(got), free(vn), free(one);
    free_case(&c);
    return bad + bad_vnni + outside + var;
}

static void test_bits(void) {
    static const int types[] = {HERD_TYPE_Q8_0, HERD_TYPE_Q4_0, HERD_TYPE_Q5_0,
                                HERD_TYPE_IQ4_NL, HERD_TYPE_Q4_1, HERD_TYPE_Q5_1};
    static const int64_t blocks[] = {1, 2, 3, 8, 64, 127, 128, 129, 257, 300};
    static const int64_t toks[] = {15, 16, 17, 31, 32, 33, 48, 100};
    static const int64_t groups[] = {1, 2, 5};
    for (int ti = 0; ti < 6; ti++)
        for (int bi = 0; bi < 10; bi++)
            for (int tk = 0; tk < 8; tk++)
                if (check(types[ti], 32 * blocks[bi], groups[(bi + tk) % 3], toks[tk])) return;
    /* 8192 wide (ffn_down of a 1B): two chunks of converted blocks; 2048 wide, 530 tokens: two token
     * blocks (of 512: 1 MB holds fewer), the second partial, and a VNNI tail of 2 */
    for (int ti = 0; ti < 6; ti++) check(types[ti], 8192, 2, 200), check(types[ti], 2048, 1, 530);
}

/* q4_K / q5_K / q6_K / iq4_xs: widths of 1..17 super-blocks (past 8 (16 for iq4_xs): several converted
 * chunks, the last partial),
 * tokens around the tiles of 16, 1..3 groups; 8192 wide; 2048 wide x 530 tokens: two token blocks and a
 * tail. */
static void test_bits_k(void) {
    static const int types[] = {HERD_TYPE_Q4_K, HERD_TYPE_Q5_K, HERD_TYPE_Q6_K, HERD_TYPE_IQ4_XS, HERD_TYPE_IQ3_S,
                                HERD_TYPE_IQ3_XXS};
    static const int64_t sbs[] = {1, 2, 7, 8, 9, 17};
    static const int64_t toks[] = {15, 16, 17, 33, 48, 100};
    static const int64_t groups[] = {1, 2, 3};
    for (int ti = 0; ti < 6; ti++)
        for (int si = 0; si < 6; si++)
            for (int tk = 0; tk < 6; tk++)
                if (check(types[ti], QK_K * sbs[si], groups[(si + tk) % 3], toks[tk])) return;
    for (int ti = 0; ti < 6; ti++) check(types[ti], 8192, 1, 48), check(types[ti], 2048, 1, 530);
}

/* iq4_xs through the AVX-512 table's gemm (the AMX one when AMX is active) vs the reference dot, bit for
 * bit: rows in whole groups of 16 plus a remainder, tokens in tiles of 16 plus a remainder, widths of 1..33
 * super-blocks (past 16: several converted chunks), odd strides; nothing written outside. */
static int check_iq4xs(int64_t n, int64_t nr, int64_t nt) {
    const kernel_type_ops *o = kernels_type_isa(HERD_TYPE_IQ4_XS, KERNEL_ISA_AVX512);
    const kernel_type_ops *ref = kernels_type_isa(HERD_TYPE_IQ4_XS, KERNEL_ISA_REF);
    const kernel_type_ops *q8 = kernels_type_isa(HERD_TYPE_Q8_K, KERNEL_ISA_REF);
    int64_t wrow = kernels_row_bytes(HERD_TYPE_IQ4_XS, n) + 8, xrow = kernels_row_bytes(HERD_TYPE_Q8_K, n);
    int64_t xs = o->gemm_x_bytes(n) + 4, ldy = nr + 3;
    float *f = malloc(sizeof(float) * (size_t)n);
    uint8_t *w = malloc((size_t)(wrow * nr)), *xq = malloc((size_t)(xrow * nt)), *xp = malloc((size_t)(xs * nt));
    for (int64_t r = 0; r < nr; r++) {
        for (int64_t i = 0; i < n; i++) f[i] = r % 7 == 3 ? (i % 2 ? 1.0f : -1.0f) : tu_sym() * (float)(1 + (i / 32) % 5);
        ref->from_f32(f, w + r * wrow, n);
    }
    for (int64_t t = 0; t < nt; t++) {
        for (int64_t i = 0; i < n; i++) f[i] = t % 5 == 4 ? (i % 3 ? 1.0f : -1.0f) : 2.0f * tu_sym();
        q8->from_f32(f, xq + t * xrow, n);
        o->gemm_pack_x(n, xq + t * xrow, xp + t * xs);
    }
    float *got = sentinels(ldy * nt);
    o->gemm(n, nr, nt, w, wrow, xp, xs, got, ldy);
    int bad = 0, outside = 0;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t c = 0; c < ldy; c++) {
            if (c >= nr) {
                outside += bits(got[t * ldy + c]) != SENTINEL;
                continue;
            }
            float want;
            ref->dot(n, &want, w + c * wrow, xq + t * xrow);
            if (bits(want) != bits(got[t * ldy + c]) && bad++ < 3)
                fprintf(stderr, "    iq4_xs n=%" PRId64 " %" PRId64 " rows x %" PRId64 " tokens: row %" PRId64
                                " token %" PRId64 ": %.9g, reference %.9g\n",
                        n, nr, nt, c, t, got[t * ldy + c], want);
        }
    CHECK(bad == 0, "iq4_xs n=%" PRId64 " %" PRId64 " rows x %" PRId64 " tokens: %d results differ from the reference dot",
          n, nr, nt, bad);
    CHECK(outside == 0, "iq4_xs n=%" PRId64 ": %d cells written outside the rows", n, outside);
    free(f), free(w), free(xq), free(xp), free(got);
    return bad + outside;
}

static void test_iq4xs(void) {
    static const int64_t sbs[] = {1, 2, 8, 17, 33};
    static const int64_t rows[] = {16, 37, 48};
    static const int64_t toks[] = {15, 16, 17, 35};
    for (int si = 0; si < 5; si++)
        for (int ri = 0; ri < 3; ri++)
            for (int tk = 0; tk < 4; tk++)
                if (check_iq4xs(256 * sbs[si], rows[ri], toks[tk])) return;
    check_iq4xs(512, 32, 530); /* token blocks of 512: two, the second partial, and a tail of 2 */
}

/* Run as a child with HERD_ISA=avx512: AMX must be off and the VNNI kernels handed out. */
static int child(void) {
    int ok = !kernels_amx_active() && pk_gemm_for(HERD_TYPE_Q8_0, 2048, 64) == pk_gemm_q8_0_avx512 &&
             pk_gemm_for(HERD_TYPE_Q4_0, 2048, 64) == pk_gemm_q4_0_avx512 &&
             pk_gemm_for(HERD_TYPE_Q5_0, 2048, 64) == pk_gemm_q5_0_avx512 &&
             pk_gemm_for(HERD_TYPE_IQ4_NL, 2048, 64) == pk_gemm_iq4_nl_avx512 &&
             pk_gemm_for(HERD_TYPE_Q4_1, 2048, 64) == pk_gemm_q4_1_avx512 &&
             pk_gemm_for(HERD_TYPE_Q5_1, 2048, 64) == pk_gemm_q5_1_avx512 &&
             pk_gemm_for(HERD_TYPE_Q4_K, 2048, 64) == pk_gemm_q4_K_avx512 &&
             pk_gemm_for(HERD_TYPE_Q5_K, 2048, 64) == pk_gemm_q5_K_avx512 &&
             pk_gemm_for(HERD_TYPE_IQ4_XS, 2048, 64) == pk_gemm_iq4_xs_avx512 &&
             pk_gemm_for(HERD_TYPE_IQ3_S, 2048, 64) == pk_gemm_iq3_s_avx512 &&
             pk_gemm_for(HERD_TYPE_IQ3_XXS, 2048, 64) == pk_gemm_iq3_xxs_avx512 &&
             pk_gemm_for(HERD_TYPE_Q6_K, 2048, 64) == pk_gemm_q6_K_avx512;
    return ok ? 0 : 1;
}

static void test_dispatch(const char *self) {
    const char *force = getenv("HERD_ISA");
    if (!force || !*force) {
        CHECK(kernels_amx_active(), "AMX supported but not active with HERD_ISA unset");
        CHECK(pk_gemm_for(HERD_TYPE_Q8_0, 2048, 64) == pk_gemm_q8_0_amx, "pk_gemm_for(q8_0) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_Q4_0, 2048, 64) == pk_gemm_q4_0_amx, "pk_gemm_for(q4_0) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_Q5_0, 2048, 64) == pk_gemm_q5_0_amx, "pk_gemm_for(q5_0) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_IQ4_NL, 2048, 64) == pk_gemm_iq4_nl_amx,
              "pk_gemm_for(iq4_nl) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_Q4_1, 2048, 64) == pk_gemm_q4_1_amx, "pk_gemm_for(q4_1) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_Q5_1, 2048, 64) == pk_gemm_q5_1_amx, "pk_gemm_for(q5_1) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_Q4_K, 2048, 64) == pk_gemm_q4_K_amx, "pk_gemm_for(q4_K) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_Q5_K, 2048, 64) == pk_gemm_q5_K_amx, "pk_gemm_for(q5_K) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_IQ4_XS, 2048, 64) == pk_gemm_iq4_xs_amx,
              "pk_gemm_for(iq4_xs) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_IQ3_S, 2048, 64) == pk_gemm_iq3_s_amx, "pk_gemm_for(iq3_s) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_IQ3_XXS, 2048, 64) == pk_gemm_iq3_xxs_amx,
              "pk_gemm_for(iq3_xxs) is not the AMX kernel");
        CHECK(pk_gemm_for(HERD_TYPE_Q6_K, 2048, 64) == pk_gemm_q6_K_amx, "pk_gemm_for(q6_K) is not the AMX kernel");
    } else {
        CHECK(!kernels_amx_active(), "AMX active although HERD_ISA=%s", force);
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "HERD_ISA=avx512 '%s' --child", self);
    CHECK(system(cmd) == 0, "with HERD_ISA=avx512 the AMX kernels are still handed out");
}

int main(int argc, char **argv) {
    tu_rng = 0xa3c5a3c5a3c5a3c5ull; /* this test's seed */
    kernels_init();
    if (argc > 1 && strcmp(argv[1], "--child") == 0) return child();
    if (!kernels_amx_supported()) {
        printf("test_gemm_amx: skipped (no AMX-INT8, or the OS did not grant the tile state)\n");
        return 77;
    }
    test_bits();
    test_bits_k();
    test_iq4xs();
    test_dispatch(argv[0]);
    return TU_DONE("test_gemm_amx");
}
