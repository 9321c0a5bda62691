/* The legacy block types and 4-bit i-quants (src/kernels/legacy.h):
 *   reference  dot of a weight row with an activation row = the double sum of their dequantized
 *              products (within f32 rounding of the per-block terms); quantize -> dequantize stays
 *              within the type's step; q8_1's s = f16(d * sum qs); iq4 level table sorted as ggml's
 *   each ISA   to_f32, from_f32 and dot bit-identical to the reference, on random valid blocks (every bit
 *              pattern of quants, qh and scales; f16 scales of either sign) and on quantized rows, for
 *              row lengths covering 1 .. 9 blocks and Llama widths.
 * ggml agreement (bit-exact dequantization, llama-quantize's bytes, logits) is
 * tests/conformance/legacy_quants_llama_cpp.sh. */
#include <inttypes.h>

#include "../../src/kernels/kernels.h"
#include "../../src/kernels/kquants.h"
#include "../../src/kernels/legacy.h"
#include "../../src/kernels/types.h"
#include "herd.h"
#include "testutil.h"
#include "quanttest.h"

static const int k_types[] = {HERD_TYPE_Q4_1, HERD_TYPE_Q5_0, HERD_TYPE_Q5_1, HERD_TYPE_IQ4_NL, HERD_TYPE_IQ4_XS};
#define N_TYPES 5

/* a random f16 scale of magnitude 2^-12 .. 2^-4, either sign */
static uint16_t rand_scale(void) {
    float v = ldexpf(0.5f + 0.5f * (float)(tu_u64() % 1024) / 1024.0f, -4 - (int)(tu_u64() % 9));
    return fp32_to_fp16(tu_u64() & 1 ? -v : v);
}

/* random valid blocks: random bytes, then every f16 field set to a sane scale */
static void random_blocks(int type, void *w, int64_t nb) {
    const kernel_type_ops *o = kernels_type_isa(type, KERNEL_ISA_REF);
    uint8_t *p = w;
    for (int64_t i = 0; i < nb * o->block_bytes; i++) p[i] = (uint8_t)tu_u64();
    for (int64_t i = 0; i < nb; i++) {
        uint8_t *blk = p + i * o->block_bytes;
        uint16_t d = rand_scale(), m = rand_scale();
        memcpy(blk, &d, 2);
        if (type == HERD_TYPE_Q4_1 || type == HERD_TYPE_Q5_1) memcpy(blk + 2, &m, 2);
    }
}

static double dot_double(const float *a, const float *b, int64_t n, double *S) {
    double s = 0, sa = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i], sa += fabs((double)a[i] * b[i]);
    *S = sa;
    return s;
}

static void test_reference(int type, int64_t n) {
    const kernel_type_ops *o = kernels_type_isa(type, KERNEL_ISA_REF), *xo = kernels_type_isa(o->vec_dot_type, KERNEL_ISA_REF);
    int64_t nb = n / o->block;
    void *w = malloc((size_t)kernels_row_bytes(type, n)), *xq = malloc((size_t)kernels_row_bytes(o->vec_dot_type, n));
    float *x = malloc((size_t)n * 4), *wf = malloc((size_t)n * 4), *xf = malloc((size_t)n * 4), *back = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) x[i] = tu_sym();
    random_blocks(type, w, nb);
    xo->from_f32(x, xq, n);
    o->to_f32(w, wf, n);
    xo->to_f32(xq, xf, n);
    double S, want = dot_double(wf, xf, n, &S);
    float got;
    o->dot(n, &got, w, xq);
    /* per block: the product of two f16 scales and the block term are rounded (2^-24 each), q8_1's s
     * is f16(d sum q), off by up to 2^-11 of the min term |m| |s| <= the block's share of S */
    double tol = (o->vec_dot_type == HERD_TYPE_Q8_1 ? 0x1p-10 : 0x1p-20) * S + (double)nb * 0x1p-24 * S + 1e-30;
    CHECK(fabs(got - want) <= tol, "%s n=%" PRId64 ": reference dot %.9g, dequantized sum %.9g (tol %.3g)",
          herd_type_name(type), n, got, want, tol);
    /* quantize -> dequantize: within the type's step of the block's range */
    o->from_f32(x, w, n);
    o->to_f32(w, back, n);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)back[i] - x[i]));
    double step = type == HERD_TYPE_Q4_1 ? 2.0 / 15 : type == HERD_TYPE_Q5_1 ? 2.0 / 31 : type == HERD_TYPE_Q5_0 ? 1.0 / 16 : 0.25;
    /* half a step, except q5_0 (as q4_0): d = max / -16 puts -max at q = 32, clamped to 31, one step off */
    double bound = type == HERD_TYPE_Q5_0 ? step * 1.01 : step * 0.6;
    CHECK(worst <= bound + 1e-3, "%s n=%" PRId64 ": quantize round trip error %.4g > step %.4g", herd_type_name(type),
          n, worst, step);
    free(w), free(xq), free(x), free(wf), free(xf), free(back);
}

static void test_isa(kernel_isa isa, int type, int64_t n) {
    const kernel_type_ops *r = kernels_type_isa(type, KERNEL_ISA_REF), *o = kernels_type_isa(type, isa);
    const kernel_type_ops *xr = kernels_type_isa(r->vec_dot_type, KERNEL_ISA_REF), *xo = kernels_type_isa(r->vec_dot_type, isa);
    CHECK(o && o->vec_dot_type == r->vec_dot_type, "%s: %s has no kernels", herd_type_name(type), kernels_isa_name(isa));
    if (!o) return;
    int64_t wb = kernels_row_bytes(type, n), xb = kernels_row_bytes(r->vec_dot_type, n);
    uint8_t *w = malloc((size_t)wb), *w2 = malloc((size_t)wb), *xq = malloc((size_t)xb), *xq2 = malloc((size_t)xb);
    float *x = malloc((size_t)n * 4), *y1 = malloc((size_t)n * 4), *y2 = malloc((size_t)n * 4);
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < n; i++) x[i] = tu_sym() * (i % 7 == 0 ? 4.0f : 1.0f);
        if (pass == 0) random_blocks(type, w, n / r->block);
        else r->from_f32(x, w, n);
        o->from_f32(x, w2, n);
        if (pass == 1) CHECK(memcmp(w, w2, (size_t)wb) == 0, "%s %s from_f32 n=%" PRId64 " differs", kernels_isa_name(isa), herd_type_name(type), n);
        r->to_f32(w, y1, n);
        o->to_f32(w, y2, n);
        CHECK(memcmp(y1, y2, (size_t)n * 4) == 0, "%s %s to_f32 n=%" PRId64 " differs", kernels_isa_name(isa), herd_type_name(type), n);
        for (int64_t i = 0; i < n; i++) x[i] = tu_sym();
        xr->from_f32(x, xq, n);
        xo->from_f32(x, xq2, n);
        CHECK(memcmp(xq, xq2, (size_t)xb) == 0, "%s %s activations n=%" PRId64 " differ", kernels_isa_name(isa), herd_type_name(r->vec_dot_type), n);
        float a, b;
        r->dot(n, &a, w, xq);
        o->dot(n, &b, w, xq);
        CHECK(memcmp(&a, &b, 4) == 0, "%s %s dot n=%" PRId64 ": %.9g, reference %.9g", kernels_isa_name(isa), herd_type_name(type), n, b, a);
    }
    free(w), free(w2), free(xq), free(xq2), free(x), free(y1), free(y2);
}

static void test_gemm(kernel_isa isa, int type, int64_t n) {
    qt_check_gemm(isa, type, n, false, random_blocks);
}

int main(void) {
    tu_rng = 0x1e9ac7;
    for (int i = 1; i < 16; i++) CHECK(k_iq4nl[i - 1] < k_iq4nl[i], "k_iq4nl is not increasing at %d", i);
    CHECK(k_iq4nl[0] == -127 && k_iq4nl[8] == 1 && k_iq4nl[15] == 113, "k_iq4nl differs from ggml's kvalues_iq4nl");
    {   /* q8_1: s = f16(d * sum qs) */
        float x[64];
        block_q8_1 b[2];
        for (int i = 0; i < 64; i++) x[i] = tu_sym();
        row_quantize_q8_1_ref(x, b, 64);
        for (int k = 0; k < 2; k++) {
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += b[k].qs[j];
            CHECK(b[k].s == fp32_to_fp16((float)sum * fp16_to_fp32(b[k].d)), "q8_1 block %d: s %#x", k, b[k].s);
        }
    }
    static const int64_t blocks[] = {1, 2, 3, 4, 5, 7, 8, 9};
    static const int64_t widths[] = {2048, 4096, 14336};
    for (int t = 0; t < N_TYPES; t++) {
        int64_t blk = kernels_type_isa(k_types[t], KERNEL_ISA_REF)->block;
        for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) test_reference(k_types[t], blocks[k] * blk);
        for (size_t k = 0; k < 3; k++) test_reference(k_types[t], widths[k]);
        for (int isa = KERNEL_ISA_AVX2; isa < KERNEL_ISA_COUNT; isa++) {
            if (!kernels_isa_supported((kernel_isa)isa)) {
                if (t == 0) printf("  %s: not supported by this CPU, skipped\n", kernels_isa_name((kernel_isa)isa));
                continue;
            }
            for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) test_isa((kernel_isa)isa, k_types[t], blocks[k] * blk);
            for (size_t k = 0; k < 3; k++) test_isa((kernel_isa)isa, k_types[t], widths[k]);
            test_gemm((kernel_isa)isa, k_types[t], 3 * blk);
            test_gemm((kernel_isa)isa, k_types[t], 2048);
        }
    }
    return TU_DONE("test_legacy");
}
