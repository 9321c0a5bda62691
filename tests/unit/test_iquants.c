/* The low-bit i-quants and ternary types (src/kernels/iquants.h):
 *   tables     ksigns_iq2xs (7 bits + even parity), the grids' coordinate sets and a few of ggml's entries
 *   reference  dot of a weight row with a q8_K row = the double sum of their dequantized products (within
 *              f32 rounding of the per-super-block terms), on random blocks (every bit pattern of grid
 *              indices, signs and scales; f16 scales of either sign)
 *   each ISA   to_f32 and dot bit-identical to the reference on random blocks, for 1 .. 9 super-blocks and
 *              Llama widths; gemm (every type has one) bit-identical to dot for 1 .. 19 tokens.
 * ggml agreement (bit-exact dequantization of llama-quantize's files, logits) is
 * tests/conformance/iquants_llama_cpp.sh. */
#include <inttypes.h>

#include "../../src/kernels/iquants.h"
#include "../../src/kernels/kernels.h"
#include "../../src/kernels/kquants.h"
#include "../../src/kernels/types.h"
#include "herd.h"
#include "testutil.h"
#include "quanttest.h"

static const int k_types[] = {HERD_TYPE_IQ2_XXS, HERD_TYPE_IQ2_XS, HERD_TYPE_IQ2_S, HERD_TYPE_IQ3_XXS, HERD_TYPE_IQ3_S,
                              HERD_TYPE_IQ1_S,   HERD_TYPE_IQ1_M,  HERD_TYPE_TQ1_0, HERD_TYPE_TQ2_0};
#define N_TYPES 9

/* a random f16 scale of magnitude 2^-12 .. 2^-4, either sign */
static uint16_t rand_scale(void) {
    float v = ldexpf(0.5f + 0.5f * (float)(tu_u64() % 1024) / 1024.0f, -4 - (int)(tu_u64() % 9));
    return fp32_to_fp16(tu_u64() & 1 ? -v : v);
}

/* random valid blocks: random bytes, then the f16 scale set to a sane value (where each type keeps it) */
static void random_blocks(int type, void *w, int64_t nb) {
    const kernel_type_ops *o = kernels_type_isa(type, KERNEL_ISA_REF);
    uint8_t *p = w;
    for (int64_t i = 0; i < nb * o->block_bytes; i++) p[i] = (uint8_t)tu_u64();
    for (int64_t i = 0; i < nb; i++) {
        uint8_t *blk = p + i * o->block_bytes;
        uint16_t d = rand_scale();
        if (type == HERD_TYPE_TQ1_0) memcpy(blk + 52, &d, 2);
        else if (type == HERD_TYPE_TQ2_0) memcpy(blk + 64, &d, 2);
        else if (type == HERD_TYPE_IQ1_M) { /* d's nibble k in the top nibble of scales u16 k */
            block_iq1_m *b = (block_iq1_m *)blk;
            for (int k = 0; k < 4; k++) b->scales[2 * k + 1] = (uint8_t)((b->scales[2 * k + 1] & 15) | ((d >> 4 * k) & 15) << 4);
        } else memcpy(blk, &d, 2);
    }
}

static double dot_double(const float *a, const float *b, int64_t n, double *S) {
    double s = 0, sa = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i], sa += fabs((double)a[i] * b[i]);
    *S = sa;
    return s;
}

static void test_tables(void) {
    for (int i = 0; i < 128; i++) {
        int bits = __builtin_popcount(ksigns_iq2xs[i]);
        CHECK((ksigns_iq2xs[i] & 127) == i && bits % 2 == 0, "ksigns_iq2xs[%d] = %d", i, ksigns_iq2xs[i]);
    }
    struct {
        const char *name;
        const void *g;
        int n, width, nvals;
        int vals[8];
    } grids[] = {
        {"iq2xxs_grid", iq2xxs_grid, 256, 8, 3, {8, 25, 43}},
        {"iq2xs_grid", iq2xs_grid, 512, 8, 3, {8, 25, 43}},
        {"iq2s_grid", iq2s_grid, 1024, 8, 3, {8, 25, 43}},
        {"iq3xxs_grid", iq3xxs_grid, 256, 4, 8, {4, 12, 20, 28, 36, 44, 52, 62}},
        {"iq3s_grid", iq3s_grid, 512, 4, 8, {1, 3, 5, 7, 9, 11, 13, 15}},
        {"iq1s_grid", iq1s_grid, 2048, 8, 3, {255, 0, 1}},
    };
    for (size_t k = 0; k < sizeof grids / sizeof grids[0]; k++) {
        const uint8_t *b = grids[k].g;
        int bad = 0, dup = 0;
        for (int i = 0; i < grids[k].n * grids[k].width; i++) {
            int ok = 0;
            for (int v = 0; v < grids[k].nvals; v++) ok |= b[i] == grids[k].vals[v];
            bad += !ok;
        }
        for (int i = 1; i < grids[k].n; i++) /* entries are distinct points */
            dup += memcmp(b + (i - 1) * grids[k].width, b + i * grids[k].width, (size_t)grids[k].width) == 0;
        CHECK(bad == 0 && dup == 0, "%s: %d coordinates off its value set, %d repeated entries", grids[k].name, bad, dup);
    }
    /* a few entries as ggml-common.h prints them */
    CHECK(iq2xxs_grid[1] == 0x080808080808082bull && iq2xxs_grid[255] == 0x2b2b2b1908081908ull, "iq2xxs_grid");
    CHECK(iq2xs_grid[511] == 0x2b2b2b2b2b2b2b2bull, "iq2xs_grid[511] %#" PRIx64, iq2xs_grid[511]);
    CHECK(iq2s_grid[1023] == 0x2b2b2b2b2b2b2b2bull, "iq2s_grid[1023] %#" PRIx64, iq2s_grid[1023]);
    CHECK(iq3xxs_grid[0] == 0x04040404 && iq3s_grid[0] == 0x01010101, "iq3 grids' first entries");
    CHECK(iq1s_grid[0] == 0xffffffffffffffffull && iq1s_grid[2047] == 0x0101010101010101ull, "iq1s_grid");
}

static void test_reference(int type, int64_t n) {
    const kernel_type_ops *o = kernels_type_isa(type, KERNEL_ISA_REF), *xo = kernels_type_isa(o->vec_dot_type, KERNEL_ISA_REF);
    CHECK(o->vec_dot_type == HERD_TYPE_Q8_K && o->block == QK_K, "%s: dot partner %d", herd_type_name(type), o->vec_dot_type);
    int64_t nb = n / o->block;
    void *w = malloc((size_t)kernels_row_bytes(type, n)), *xq = malloc((size_t)kernels_row_bytes(o->vec_dot_type, n));
    float *x = malloc((size_t)n * 4), *wf = malloc((size_t)n * 4), *xf = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) x[i] = tu_sym();
    random_blocks(type, w, nb);
    xo->from_f32(x, xq, n);
    o->to_f32(w, wf, n);
    xo->to_f32(xq, xf, n);
    double S, want = dot_double(wf, xf, n, &S);
    float got;
    o->dot(n, &got, w, xq);
    /* per super-block: the product of the scales, the integer sum as a float (and iq1's sum with its delta
     * term) and the running sum are rounded (2^-24 each) */
    double tol = 0x1p-20 * S + (double)nb * 0x1p-24 * S + 1e-30;
    CHECK(fabs(got - want) <= tol, "%s n=%" PRId64 ": reference dot %.9g, dequantized sum %.9g (tol %.3g)",
          herd_type_name(type), n, got, want, tol);
    free(w), free(xq), free(x), free(wf), free(xf);
}

static void test_isa(kernel_isa isa, int type, int64_t n) {
    qt_check_isa(isa, type, n, random_blocks);
}

static void test_gemm(kernel_isa isa, int type, int64_t n) {
    qt_check_gemm(isa, type, n, true, random_blocks);
}

int main(void) {
    tu_rng = 0x19a11;
    test_tables();
    static const int64_t blocks[] = {1, 2, 3, 5, 9};
    static const int64_t widths[] = {2048, 4096, 14336};
    for (int t = 0; t < N_TYPES; t++) {
        for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) test_reference(k_types[t], blocks[k] * QK_K);
        for (size_t k = 0; k < 3; k++) test_reference(k_types[t], widths[k]);
        for (int isa = KERNEL_ISA_AVX2; isa < KERNEL_ISA_COUNT; isa++) {
            if (!kernels_isa_supported((kernel_isa)isa)) {
                if (t == 0) printf("  %s: not supported by this CPU, skipped\n", kernels_isa_name((kernel_isa)isa));
                continue;
            }
            for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) test_isa((kernel_isa)isa, k_types[t], blocks[k] * QK_K);
            for (size_t k = 0; k < 3; k++) test_isa((kernel_isa)isa, k_types[t], widths[k]);
            test_gemm((kernel_isa)isa, k_types[t], 3 * QK_K);
            test_gemm((kernel_isa)isa, k_types[t], 2048);
        }
    }
    return TU_DONE("test_iquants");
}
