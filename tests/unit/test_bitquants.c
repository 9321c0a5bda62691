/* q1_0 and q2_0 (src/kernels/bitquants.h):
 *   layout     hand-made blocks dequantize to the values the format defines (bit order, level order, -d)
 *   reference  dot of a weight row with a q8_0 row = the double sum of their dequantized products (within
 *              f32 rounding), on random blocks
 *   each ISA   to_f32 and dot bit-identical to the reference for 1 .. 9 weight blocks and Llama widths;
 *              gemm bit-identical to dot for 1 .. 19 tokens, and no gemm width that is not whole blocks.
 * ggml agreement (llama-quantize's files, logits against llama.cpp's) is tests/conformance/bitquants_llama_cpp.sh. */
#include <inttypes.h>

#include "../../src/kernels/bitquants.h"
#include "../../src/kernels/kernels.h"
#include "../../src/kernels/types.h"
#include "herd.h"
#include "testutil.h"
#include "quanttest.h"

static const int k_types[] = {HERD_TYPE_Q1_0, HERD_TYPE_Q2_0};

static void random_blocks(int type, void *w, int64_t nb) {
    const kernel_type_ops *o = kernels_type_isa(type, KERNEL_ISA_REF);
    uint8_t *p = w;
    for (int64_t i = 0; i < nb * o->block_bytes; i++) p[i] = (uint8_t)tu_u64();
    for (int64_t i = 0; i < nb; i++) { /* an f16 scale of magnitude 2^-12 .. 2^-4, either sign */
        float v = ldexpf(0.5f + 0.5f * (float)(tu_u64() % 1024) / 1024.0f, -4 - (int)(tu_u64() % 9));
        uint16_t d = fp32_to_fp16(tu_u64() & 1 ? -v : v);
        memcpy(p + i * o->block_bytes, &d, 2);
    }
}

static void test_layout(void) {
    const kernel_type_ops *o1 = kernels_type_isa(HERD_TYPE_Q1_0, KERNEL_ISA_REF), *o2 = kernels_type_isa(HERD_TYPE_Q2_0, KERNEL_ISA_REF);
    CHECK(o1 && o1->block == 128 && o1->block_bytes == 18 && o1->vec_dot_type == HERD_TYPE_Q8_0, "q1_0 traits");
    CHECK(o2 && o2->block == 64 && o2->block_bytes == 18 && o2->vec_dot_type == HERD_TYPE_Q8_0, "q2_0 traits");
    CHECK(strcmp(herd_type_name(HERD_TYPE_Q1_0), "q1_0") == 0 && strcmp(herd_type_name(HERD_TYPE_Q2_0), "q2_0") == 0, "names");
    block_q1_0 b1 = {.d = fp32_to_fp16(0.5f)};
    b1.qs[0] = 0x05;  /* elements 0 and 2 set */
    b1.qs[15] = 0x80; /* element 127 set */
    float y[128];
    o1->to_f32(&b1, y, 128);
    int bad = 0;
    for (int j = 0; j < 128; j++) bad += y[j] != (j == 0 || j == 2 || j == 127 ? 0.5f : -0.5f);
    CHECK(bad == 0, "q1_0: %d elements off (bit j %% 8 of byte j / 8: +d, else -d)", bad);
    block_q2_0 b2 = {.d = fp32_to_fp16(0.25f)};
    for (int j = 0; j < 16; j++) b2.qs[j] = 0xe4; /* elements 4b + l = l: levels 0, 1, 2, 3 */
    o2->to_f32(&b2, y, 64);
    static const float lv[4] = {-0.25f, 0.0f, 0.25f, 0.5f};
    bad = 0;
    for (int j = 0; j < 64; j++) bad += y[j] != lv[j % 4];
    CHECK(bad == 0, "q2_0: %d elements off ((t - 1) * d, t = bits 2 (j %% 4) of byte j / 4)", bad);
}

static void test_reference(int type, int64_t n) {
    const kernel_type_ops *o = kernels_type_isa(type, KERNEL_ISA_REF), *xo = kernels_type_isa(HERD_TYPE_Q8_0, KERNEL_ISA_REF);
    void *w = malloc((size_t)kernels_row_bytes(type, n)), *xq = malloc((size_t)kernels_row_bytes(HERD_TYPE_Q8_0, n));
    float *x = malloc((size_t)n * 4), *wf = malloc((size_t)n * 4), *xf = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) x[i] = tu_sym();
    random_blocks(type, w, n / o->block);
    xo->from_f32(x, xq, n);
    o->to_f32(w, wf, n);
    xo->to_f32(xq, xf, n);
    double want = 0, S = 0;
    for (int64_t i = 0; i < n; i++) want += (double)wf[i] * xf[i], S += fabs((double)wf[i] * xf[i]);
    float got;
    o->dot(n, &got, w, xq);
    double tol = 0x1p-20 * S + (double)(n / 32) * 0x1p-23 * S + 1e-30;
    CHECK(fabs(got - want) <= tol, "%s n=%" PRId64 ": reference dot %.9g, dequantized sum %.9g (tol %.3g)",
          herd_type_name(type), n, got, want, tol);
    free(w), free(xq), free(x), free(wf), free(xf);
}

static void test_isa(kernel_isa isa, int type, int64_t n) {
    CHECK(kernels_type_isa(type, isa)->dot != kernels_type_isa(type, KERNEL_ISA_REF)->dot, "%s %s: no SIMD dot",
          kernels_isa_name(isa), herd_type_name(type));
    qt_check_isa(isa, type, n, random_blocks);
}

static void test_gemm(kernel_isa isa, int type, int64_t n) {
    const kernel_type_ops *o = kernels_type_isa(type, isa);
    CHECK(o->vec_dot_type == HERD_TYPE_Q8_0, "%s %s: dot partner is not q8_0", kernels_isa_name(isa), herd_type_name(type));
    if (o->gemm)
        CHECK(o->gemm_x_bytes(n + 32) == 0, "%s %s gemm takes a width of %" PRId64 " (not whole blocks)",
              kernels_isa_name(isa), herd_type_name(type), n + 32);
    qt_check_gemm(isa, type, n, true, random_blocks);
}

int main(void) {
    tu_rng = 0xb17;
    test_layout();
    static const int64_t blocks[] = {1, 2, 3, 5, 9};
    static const int64_t widths[] = {2048, 4096, 14336};
    for (int t = 0; t < 2; t++) {
        const int64_t qk = kernels_type_isa(k_types[t], KERNEL_ISA_REF)->block;
        for (size_t k = 0; k < 5; k++) test_reference(k_types[t], blocks[k] * qk);
        for (size_t k = 0; k < 3; k++) test_reference(k_types[t], widths[k]);
        for (int isa = KERNEL_ISA_AVX2; isa < KERNEL_ISA_COUNT; isa++) {
            if (!kernels_isa_supported((kernel_isa)isa)) {
                if (t == 0) printf("  %s: not supported by this CPU, skipped\n", kernels_isa_name((kernel_isa)isa));
                continue;
            }
            for (size_t k = 0; k < 5; k++) test_isa((kernel_isa)isa, k_types[t], blocks[k] * qk);
            for (size_t k = 0; k < 3; k++) test_isa((kernel_isa)isa, k_types[t], widths[k]);
            test_gemm((kernel_isa)isa, k_types[t], 3 * qk);
            test_gemm((kernel_isa)isa, k_types[t], 2048);
        }
    }
    return TU_DONE("test_bitquants");
}
