/* Scalar truth for q1_0 and q2_0 (bitquants.h): ggml's dequantize_row_q1_0 / q2_0 and the generic C
 * ggml_vec_dot_q1_0_q8_0 / q2_0_q8_0, in their order of float operations. */
#include "herd.h"
#include "../bitquants.h"
#include "../kernels_impl.h"
#include "../types.h"

void row_dequantize_q1_0_ref(const void *vx, float *y, int64_t n) {
    const block_q1_0 *x = vx;
    for (int64_t i = 0; i < n / QK1_0; i++, y += QK1_0) {
        const float d = fp16_to_fp32(x[i].d), neg_d = -d;
        for (int j = 0; j < QK1_0; j++) y[j] = (x[i].qs[j / 8] >> (j % 8)) & 1 ? d : neg_d;
    }
}

void row_dequantize_q2_0_ref(const void *vx, float *y, int64_t n) {
    const block_q2_0 *x = vx;
    for (int64_t i = 0; i < n / QK2_0; i++, y += QK2_0) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < QK2_0; j++) y[j] = (float)((int)((x[i].qs[j / 4] >> 2 * (j % 4)) & 3) - 1) * d;
    }
}

static void dot_q1_0_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_q1_0 *x = w;
    const block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK1_0; i++) {
        const float d0 = fp16_to_fp32(x[i].d);
        float sumi = 0;
        for (int k = 0; k < 4; k++) {
            const block_q8_0 *yb = &y[4 * i + k];
            int32_t s = 0;
            for (int j = 0; j < 32; j++) s += (x[i].qs[4 * k + j / 8] >> (j % 8)) & 1 ? yb->qs[j] : -yb->qs[j];
            sumi += fp16_to_fp32(yb->d) * (float)s;
        }
        sumf += d0 * sumi;
    }
    *out = sumf;
}

static void dot_q2_0_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_q2_0 *x = w;
    const block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK2_0; i++) {
        const float d0 = fp16_to_fp32(x[i].d);
        float sumi = 0;
        for (int k = 0; k < 2; k++) {
            const block_q8_0 *yb = &y[2 * i + k];
            int32_t s = 0;
            for (int j = 0; j < 32; j++) s += ((int)((x[i].qs[8 * k + j / 4] >> 2 * (j % 4)) & 3) - 1) * yb->qs[j];
            sumi += fp16_to_fp32(yb->d) * (float)s;
        }
        sumf += d0 * sumi;
    }
    *out = sumf;
}

void kernels_fill_ref_bitquants(kernel_type_ops ops[KSLOT_COUNT]) {
    /* read-only types: no from_f32 (herd does not write them) */
    ops[KSLOT_Q1_0] = (kernel_type_ops){.type = HERD_TYPE_Q1_0, .vec_dot_type = HERD_TYPE_Q8_0, .block = QK1_0,
                                        .block_bytes = sizeof(block_q1_0), .dot = dot_q1_0_ref, .to_f32 = row_dequantize_q1_0_ref};
    ops[KSLOT_Q2_0] = (kernel_type_ops){.type = HERD_TYPE_Q2_0, .vec_dot_type = HERD_TYPE_Q8_0, .block = QK2_0,
                                        .block_bytes = sizeof(block_q2_0), .dot = dot_q2_0_ref, .to_f32 = row_dequantize_q2_0_ref};
}
