/* Scalar references of the legacy block types and the 4-bit i-quants (legacy.h): conversions as ggml's
 * (ggml-quants.c, bit for bit), dots with exact integer block sums. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "herd.h"
#include "../kernels_impl.h"
#include "../kquants.h"
#include "../legacy.h"
#include "../types.h"

const int8_t k_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* the 5-bit quant of element j and j + 16 (0..31) of a q5 block */
static inline int q5_lo(const uint8_t *qs, uint32_t qh, int j) {
    return (qs[j] & 15) | (int)(((qh >> j) << 4) & 0x10);
}
static inline int q5_hi(const uint8_t *qs, uint32_t qh, int j) {
    return (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
}

/* ---- dequantization ------------------------------------------------------------------------------ */

void row_dequantize_q4_1_ref(const void *x, float *y, int64_t n) {
    const block_q4_1 *b = x;
    for (int64_t i = 0; i < n / QK4_1; i++, y += QK4_1) {
        float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(b[i].qs[j] & 15) * d + m;
            y[j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

void row_dequantize_q5_0_ref(const void *x, float *y, int64_t n) {
    const block_q5_0 *b = x;
    for (int64_t i = 0; i < n / QK5_0; i++, y += QK5_0) {
        float d = fp16_to_fp32(b[i].d);
        uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(q5_lo(b[i].qs, qh, j) - 16) * d;
            y[j + 16] = (float)(q5_hi(b[i].qs, qh, j) - 16) * d;
        }
    }
}

void row_dequantize_q5_1_ref(const void *x, float *y, int64_t n) {
    const block_q5_1 *b = x;
    for (int64_t i = 0; i < n / QK5_1; i++, y += QK5_1) {
        float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
        uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)q5_lo(b[i].qs, qh, j) * d + m;
            y[j + 16] = (float)q5_hi(b[i].qs, qh, j) * d + m;
        }
    }
}

void row_dequantize_q8_1_ref(const void *x, float *y, int64_t n) {
    const block_q8_1 *b = x;
    for (int64_t i = 0; i < n / QK8_1; i++, y += QK8_1) {
        float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_1; j++) y[j] = d * (float)b[i].qs[j];
    }
}

void row_dequantize_iq4_nl_ref(const void *x, float *y, int64_t n) {
    const block_iq4_nl *b = x;
    for (int64_t i = 0; i < n / QK4_NL; i++, y += QK4_NL) {
        float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)k_iq4nl[b[i].qs[j] & 15];
            y[j + 16] = d * (float)k_iq4nl[b[i].qs[j] >> 4];
        }
    }
}

void row_dequantize_iq4_xs_ref(const void *x, float *y, int64_t n) {
    const block_iq4_xs *b = x;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = fp16_to_fp32(b[i].d);
        for (int ib = 0; ib < QK_K / 32; ib++, y += 32) {
            float dl = d * (float)(iq4_xs_scale(&b[i], ib) - 32);
            const uint8_t *qs = b[i].qs + 16 * ib;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)k_iq4nl[qs[j] & 15];
                y[j + 16] = dl * (float)k_iq4nl[qs[j] >> 4];
            }
        }
    }
}

/* ---- quantization (ggml's quantize_row_*_ref) ------------------------------------------------------ */

static inline int imin(int a, int b) {
    return a < b ? a : b;
}

/* min and max of 32 values */
static void min_max32(const float *x, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo, *mx = hi;
}

void row_quantize_q4_1_ref(const float *x, void *y, int64_t n) {
    block_q4_1 *b = y;
    for (int64_t i = 0; i < n / QK4_1; i++, x += QK4_1) {
        float mn, mx;
        min_max32(x, &mn, &mx);
        float d = (mx - mn) / 15.0f, id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        b[i].m = fp32_to_fp16(mn);
        for (int j = 0; j < 16; j++) {
            int q0 = imin(15, (int8_t)((x[j] - mn) * id + 0.5f)), q1 = imin(15, (int8_t)((x[j + 16] - mn) * id + 0.5f));
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void row_quantize_q5_0_ref(const float *x, void *y, int64_t n) {
    block_q5_0 *b = y;
    for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -16.0f, id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = imin(31, (int8_t)(x[j] * id + 16.5f)), q1 = imin(31, (int8_t)(x[j + 16] * id + 16.5f));
            b[i].qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + 16);
        }
        for (int k = 0; k < 4; k++) b[i].qh[k] = (uint8_t)(qh >> 8 * k);
    }
}

void row_quantize_q5_1_ref(const float *x, void *y, int64_t n) {
    block_q5_1 *b = y;
    for (int64_t i = 0; i < n / QK5_1; i++, x += QK5_1) {
        float mn, mx;
        min_max32(x, &mn, &mx);
        float d = (mx - mn) / 31.0f, id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        b[i].m = fp32_to_fp16(mn);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = (uint8_t)((x[j] - mn) * id + 0.5f), q1 = (uint8_t)((x[j + 16] - mn) * id + 0.5f);
            b[i].qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
            qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + 16);
        }
        for (int k = 0; k < 4; k++) b[i].qh[k] = (uint8_t)(qh >> 8 * k);
    }
}

void row_quantize_q8_1_ref(const float *x, void *y, int64_t n) {
    block_q8_1 *b = y;
    for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            b[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += b[i].qs[j];
        }
        b[i].s = fp32_to_fp16((float)sum * d);
    }
}

/* ggml's best_index_int8: the index of the level nearest x (ties to the upper one) */
static int iq4_best_index(float x) {
    const int8_t *v = k_iq4nl;
    if (x <= v[0]) return 0;
    if (x >= v[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < v[mav]) mu = mav;
        else ml = mav;
    }
    return x - v[mu - 1] < v[mu] - x ? mu - 1 : mu;
}

/* ggml's nearest_int: round to nearest, ties to even, for |x| < 2^22 */
static int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ggml's quantize_row_iq4_nl_impl with no importance matrix (weights x^2) and ntry = 7, as llama-quantize
 * calls it: per 32-block a scale searched over 15 candidates, for iq4_xs then 6-bit block scales under one
 * f16 super-block scale. sb: 32 (iq4_nl) or 256 (iq4_xs); L receives the level indices. */
static void iq4_quantize_block(int sb, const float *x, uint16_t *dh, uint8_t *q4, uint16_t *scales_h,
                               uint8_t *scales_l) {
    const int ntry = 7;
    float scales[QK_K / 32], weight[32];
    uint8_t L[QK_K];
    memset(q4, 0, (size_t)sb / 2);
    memset(L, 0, sizeof L);
    *dh = fp32_to_fp16(0.f);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < sb / 32; ib++) {
        const float *xb = x + 32 * ib;
        uint8_t *Lb = L + 32 * ib;
        for (int j = 0; j < 32; j++) weight[j] = xb[j] * xb[j];
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        if (amax < 1e-15f) {
            scales[ib] = 0;
            continue;
        }
        float d = -max / k_iq4nl[0], id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            int l = iq4_best_index(id * xb[j]);
            Lb[j] = (uint8_t)l;
            float q = k_iq4nl[l], w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -ntry; itry <= ntry; itry++) {
            id = (float)(itry + k_iq4nl[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; j++) {
                int l = iq4_best_index(id * xb[j]);
                float q = k_iq4nl[l], w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if (fabsf(d) > amax_scale) {
            amax_scale = fabsf(d);
            max_scale = d;
        }
    }
    if (sb > 32) {
        *scales_h = 0;
        float d = -max_scale / 32;
        *dh = fp32_to_fp16(d);
        float id = d != 0 ? 1 / d : 0.f;
        for (int ib = 0; ib < sb / 32; ib++) {
            int l = nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            float dl = d * (float)l, idl = dl != 0 ? 1 / dl : 0.f;
            for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)iq4_best_index(idl * x[32 * ib + j]);
            l += 32;
            if (ib % 2 == 0) scales_l[ib / 2] = (uint8_t)(l & 15);
            else scales_l[ib / 2] |= (uint8_t)((l & 15) << 4);
            *scales_h |= (uint16_t)((l >> 4) << 2 * ib);
        }
    } else {
        *dh = fp32_to_fp16(scales[0]);
        float id = scales[0] != 0 ? 1 / scales[0] : 0;
        for (int j = 0; j < sb; j++) L[j] = (uint8_t)iq4_best_index(id * x[j]);
    }
    for (int i = 0; i < sb / 32; i++)
        for (int j = 0; j < 16; j++) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | L[32 * i + 16 + j] << 4);
}

void row_quantize_iq4_nl_ref(const float *x, void *y, int64_t n) {
    block_iq4_nl *b = y;
    for (int64_t i = 0; i < n / QK4_NL; i++) iq4_quantize_block(QK4_NL, x + QK4_NL * i, &b[i].d, b[i].qs, NULL, NULL);
}

void row_quantize_iq4_xs_ref(const float *x, void *y, int64_t n) {
    block_iq4_xs *b = y;
    for (int64_t i = 0; i < n / QK_K; i++)
        iq4_quantize_block(QK_K, x + QK_K * i, &b[i].d, b[i].qs, &b[i].scales_h, b[i].scales_l);
}

/* ---- dots ------------------------------------------------------------------------------------------ */

static void dot_q4_1_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q4_1 *a = w;
    const block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int32_t si = 0;
        for (int j = 0; j < 16; j++)
            si += (a[i].qs[j] & 15) * (int32_t)b[i].qs[j] + (a[i].qs[j] >> 4) * (int32_t)b[i].qs[j + 16];
        s += (float)si * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d)) + fp16_to_fp32(a[i].m) * fp16_to_fp32(b[i].s);
    }
    *out = s;
}

static void dot_q5_0_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q5_0 *a = w;
    const block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        uint32_t qh = load_qh(a[i].qh);
        int32_t si = 0;
        for (int j = 0; j < 16; j++)
            si += (q5_lo(a[i].qs, qh, j) - 16) * (int32_t)b[i].qs[j] +
                  (q5_hi(a[i].qs, qh, j) - 16) * (int32_t)b[i].qs[j + 16];
        s += (float)si * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d));
    }
    *out = s;
}

static void dot_q5_1_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q5_1 *a = w;
    const block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        uint32_t qh = load_qh(a[i].qh);
        int32_t si = 0;
        for (int j = 0; j < 16; j++)
            si += q5_lo(a[i].qs, qh, j) * (int32_t)b[i].qs[j] + q5_hi(a[i].qs, qh, j) * (int32_t)b[i].qs[j + 16];
        s += (float)si * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d)) + fp16_to_fp32(a[i].m) * fp16_to_fp32(b[i].s);
    }
    *out = s;
}

static void dot_q8_1_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q8_1 *a = w, *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int32_t si = 0;
        for (int j = 0; j < 32; j++) si += (int32_t)a[i].qs[j] * (int32_t)b[i].qs[j];
        s += (float)si * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d));
    }
    *out = s;
}

static void dot_iq4_nl_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_iq4_nl *a = w;
    const block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_NL; i++) {
        int32_t si = 0;
        for (int j = 0; j < 16; j++)
            si += k_iq4nl[a[i].qs[j] & 15] * (int32_t)b[i].qs[j] + k_iq4nl[a[i].qs[j] >> 4] * (int32_t)b[i].qs[j + 16];
        s += (float)si * (fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d));
    }
    *out = s;
}

static void dot_iq4_xs_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_iq4_xs *a = w;
    const block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sum = 0; /* |sum| <= 8 * 32 * 32 * 127 * 127 < 2^31 */
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const uint8_t *qs = a[i].qs + 16 * ib;
            const int8_t *q8 = b[i].qs + 32 * ib;
            int32_t si = 0;
            for (int j = 0; j < 16; j++) si += k_iq4nl[qs[j] & 15] * (int32_t)q8[j] + k_iq4nl[qs[j] >> 4] * (int32_t)q8[j + 16];
            sum += (iq4_xs_scale(&a[i], ib) - 32) * si;
        }
        s += (float)sum * (fp16_to_fp32(a[i].d) * b[i].d);
    }
    *out = s;
}

void kernels_fill_ref_legacy(kernel_type_ops ops[KSLOT_COUNT]) {
#define OPS(t, vt, blk, bb, dotf, tof, fromf)                                                                  \
    (kernel_type_ops) {                                                                                    \
        .type = (t), .vec_dot_type = (vt), .block = (blk), .block_bytes = (bb), .dot = (dotf), .to_f32 = (tof), \
        .from_f32 = (fromf)                                                                                \
    }
    ops[KSLOT_Q4_1] = OPS(HERD_TYPE_Q4_1, HERD_TYPE_Q8_1, QK4_1, sizeof(block_q4_1), dot_q4_1_ref,
                          row_dequantize_q4_1_ref, row_quantize_q4_1_ref);
    ops[KSLOT_Q5_0] = OPS(HERD_TYPE_Q5_0, HERD_TYPE_Q8_0, QK5_0, sizeof(block_q5_0), dot_q5_0_ref,
                          row_dequantize_q5_0_ref, row_quantize_q5_0_ref);
    ops[KSLOT_Q5_1] = OPS(HERD_TYPE_Q5_1, HERD_TYPE_Q8_1, QK5_1, sizeof(block_q5_1), dot_q5_1_ref,
                          row_dequantize_q5_1_ref, row_quantize_q5_1_ref);
    ops[KSLOT_Q8_1] = OPS(HERD_TYPE_Q8_1, HERD_TYPE_Q8_1, QK8_1, sizeof(block_q8_1), dot_q8_1_ref,
                          row_dequantize_q8_1_ref, row_quantize_q8_1_ref);
    ops[KSLOT_IQ4_NL] = OPS(HERD_TYPE_IQ4_NL, HERD_TYPE_Q8_0, QK4_NL, sizeof(block_iq4_nl), dot_iq4_nl_ref,
                            row_dequantize_iq4_nl_ref, row_quantize_iq4_nl_ref);
    ops[KSLOT_IQ4_XS] = OPS(HERD_TYPE_IQ4_XS, HERD_TYPE_Q8_K, QK_K, sizeof(block_iq4_xs), dot_iq4_xs_ref,
                            row_dequantize_iq4_xs_ref, row_quantize_iq4_xs_ref);
#undef OPS
}
