/* Scalar reference kernels: the truth every SIMD variant is tested against. Sums run in double
 * (f32/f16/bf16) or exact integers (quantized blocks), so the reference is at least as accurate as
 * any variant. */
#include <string.h>

#include "herd.h"
#include "../kernels_impl.h"
#include "../types.h"

static void dot_f32_ref(int64_t n, float *out, const void *w, const void *x) {
    const float *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    *out = (float)s;
}

static void dot_f16_ref(int64_t n, float *out, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)fp16_to_fp32(a[i]) * (double)fp16_to_fp32(b[i]);
    *out = (float)s;
}

static void dot_bf16_ref(int64_t n, float *out, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)bf16_to_fp32(a[i]) * (double)bf16_to_fp32(b[i]);
    *out = (float)s;
}

/* sum over blocks of (integer block dot) * d_w * d_x, as llama.cpp's ggml_vec_dot_q8_0_q8_0 */
static void dot_q8_0_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q8_0 *a = w, *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32_t si = 0;
        for (int j = 0; j < QK8_0; j++) si += (int32_t)a[i].qs[j] * (int32_t)b[i].qs[j];
        s += (float)si * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d));
    }
    *out = s;
}

static void dot_q4_0_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q4_0 *a = w;
    const block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int32_t si = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            si += ((a[i].qs[j] & 15) - 8) * (int32_t)b[i].qs[j];
            si += ((a[i].qs[j] >> 4) - 8) * (int32_t)b[i].qs[j + QK4_0 / 2];
        }
        s += (float)si * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d));
    }
    *out = s;
}

static float vdot_f32_ref(int64_t n, const float *a, const float *b) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return (float)s;
}

static float vdot_f16_f32_ref(int64_t n, const uint16_t *a, const float *b) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)fp16_to_fp32(a[i]) * (double)b[i];
    return (float)s;
}

static void axpy_f32_ref(int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

static void axpy_f16_ref(int64_t n, float alpha, const uint16_t *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * fp16_to_fp32(x[i]);
}

uint64_t kernels_read_sum_ref(const void *p, int64_t n) {
    uint64_t s = 0;
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, (const uint8_t *)p + i, 8);
        s += v;
    }
    return s;
}

int64_t kernels_argmax_f32_ref(int64_t n, const float *x) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void kernels_fill_ref(kernel_type_ops ops[KSLOT_COUNT], kernel_vec_ops *vec) {
    /* designated initializers: fields added to kernel_type_ops later default to zero */
#define OPS(t, vt, blk, bb, dotf, tof, fromf)                                                                  \
    (kernel_type_ops) {                                                                                    \
        .type = (t), .vec_dot_type = (vt), .block = (blk), .block_bytes = (bb), .dot = (dotf), .to_f32 = (tof), \
        .from_f32 = (fromf)                                                                                \
    }
    ops[KSLOT_F32] = OPS(HERD_TYPE_F32, HERD_TYPE_F32, 1, 4, dot_f32_ref, row_f32_copy_ref, row_f32_to_f32_ref);
    ops[KSLOT_F16] = OPS(HERD_TYPE_F16, HERD_TYPE_F16, 1, 2, dot_f16_ref, row_f16_to_f32_ref, row_f32_to_f16_ref);
    ops[KSLOT_BF16] = OPS(HERD_TYPE_BF16, HERD_TYPE_BF16, 1, 2, dot_bf16_ref, row_bf16_to_f32_ref, row_f32_to_bf16_ref);
    ops[KSLOT_Q8_0] = OPS(HERD_TYPE_Q8_0, HERD_TYPE_Q8_0, QK8_0, sizeof(block_q8_0), dot_q8_0_ref,
                          row_dequantize_q8_0_ref, row_quantize_q8_0_ref);
    ops[KSLOT_Q4_0] = OPS(HERD_TYPE_Q4_0, HERD_TYPE_Q8_0, QK4_0, sizeof(block_q4_0), dot_q4_0_ref,
                          row_dequantize_q4_0_ref, row_quantize_q4_0_ref);
#undef OPS
    vec->dot_f32 = vdot_f32_ref;
    vec->dot_f16_f32 = vdot_f16_f32_ref;
    vec->axpy_f32 = axpy_f32_ref;
    vec->axpy_f16 = axpy_f16_ref;
    vec->read_sum = kernels_read_sum_ref;
    vec->argmax_f32 = kernels_argmax_f32_ref;
}
