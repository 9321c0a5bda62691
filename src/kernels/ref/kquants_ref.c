/* Scalar reference of the K-quants (layouts in ../kquants.h): scale packing, dequantization, q8_K
 * activation quantization and the dots with q8_K. Each super-block is first unpacked into plain
 * per-element quants, so the element order is spelled out once (unpack_*) and everything else is an
 * obvious loop over e = 0..255. Integer block sums are exact; the per-super-block float terms are
 * formed as llama.cpp forms them (d_w * d_x rounded once) and summed in double. */
#include <math.h>
#include <string.h>

#include "herd.h"
#include "../kernels_impl.h"
#include "../kquants.h"
#include "../types.h"

/* ---- scale packing ----------------------------------------------------------------------------- */

void kq_scale_min(const uint8_t scales[12], int s, uint8_t *sc, uint8_t *m) {
    if (s < 4) {
        *sc = scales[s] & 63;
        *m = scales[s + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[s + 4] & 15) | ((scales[s - 4] >> 6) << 4));
        *m = (uint8_t)((scales[s + 4] >> 4) | ((scales[s] >> 6) << 4));
    }
}

void kq_pack_scale_min(const uint8_t sc[8], const uint8_t m[8], uint8_t scales[12]) {
    memset(scales, 0, 12);
    for (int s = 0; s < 8; s++) {
        if (s < 4) {
            scales[s] |= sc[s] & 63;
            scales[s + 4] |= m[s] & 63;
        } else {
            scales[s + 4] = (uint8_t)((sc[s] & 15) | ((m[s] & 15) << 4));
            scales[s - 4] |= (uint8_t)((sc[s] >> 4) << 6);
            scales[s] |= (uint8_t)((m[s] >> 4) << 6);
        }
    }
}

void kq3_scales(const uint8_t packed[12], int8_t out[16]) {
    for (int g = 0; g < 16; g++) {
        int lo = (packed[g % 8] >> (4 * (g / 8))) & 15;
        int hi = (packed[8 + g % 4] >> (2 * (g / 4))) & 3;
        out[g] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

void kq3_pack_scales(const int8_t sc[16], uint8_t packed[12]) {
    memset(packed, 0, 12);
    for (int g = 0; g < 16; g++) {
        int v = sc[g] + 32; /* 0..63 */
        packed[g % 8] |= (uint8_t)((v & 15) << (4 * (g / 8)));
        packed[8 + g % 4] |= (uint8_t)((v >> 4) << (2 * (g / 4)));
    }
}

void kq_block_set_scales(int type, void *block, uint16_t d, uint16_t dmin) {
    switch (type) {
    case HERD_TYPE_Q2_K: ((block_q2_K *)block)->d = d, ((block_q2_K *)block)->dmin = dmin; break;
    case HERD_TYPE_Q3_K: ((block_q3_K *)block)->d = d; break;
    case HERD_TYPE_Q4_K: ((block_q4_K *)block)->d = d, ((block_q4_K *)block)->dmin = dmin; break;
    case HERD_TYPE_Q5_K: ((block_q5_K *)block)->d = d, ((block_q5_K *)block)->dmin = dmin; break;
    case HERD_TYPE_Q6_K: ((block_q6_K *)block)->d = d; break;
    default: break;
    }
}

/* ---- unpacking: the quant of every element e of a super-block, in element order ---------------- */

static void unpack_q2_K(const block_q2_K *b, int8_t q[QK_K]) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) q[128 * h + 32 * k + l] = (int8_t)((b->qs[32 * h + l] >> (2 * k)) & 3);
}

static void unpack_q3_K(const block_q3_K *b, int8_t q[QK_K]) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int lo = (b->qs[32 * h + l] >> (2 * k)) & 3, hi = (b->hmask[l] >> (4 * h + k)) & 1;
                q[128 * h + 32 * k + l] = (int8_t)(lo + 4 * hi - 4);
            }
}

static void unpack_q4_K(const block_q4_K *b, int8_t q[QK_K]) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (int8_t)(b->qs[32 * c + l] & 15);
            q[64 * c + 32 + l] = (int8_t)(b->qs[32 * c + l] >> 4);
        }
}

static void unpack_q5_K(const block_q5_K *b, int8_t q[QK_K]) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (int8_t)((b->qs[32 * c + l] & 15) + 16 * ((b->qh[l] >> (2 * c)) & 1));
            q[64 * c + 32 + l] = (int8_t)((b->qs[32 * c + l] >> 4) + 16 * ((b->qh[l] >> (2 * c + 1)) & 1));
        }
}

static void unpack_q6_K(const block_q6_K *b, int8_t q[QK_K]) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int lo = (b->ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15;
                int hi = (b->qh[32 * h + l] >> (2 * k)) & 3;
                q[128 * h + 32 * k + l] = (int8_t)((lo | (hi << 4)) - 32);
            }
}

/* ---- dequantization: x = d_sub * q - m_sub, each factor rounded as llama.cpp rounds it ---------- */

void row_dequantize_q2_K_ref(const void *x, float *y, int64_t n) {
    const block_q2_K *b = x;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        unpack_q2_K(&b[i], q);
        for (int e = 0; e < QK_K; e++) {
            float dl = d * (float)(b[i].scales[e / 16] & 15), ml = dmin * (float)(b[i].scales[e / 16] >> 4);
            y[e] = dl * (float)q[e] - ml;
        }
    }
}

void row_dequantize_q3_K_ref(const void *x, float *y, int64_t n) {
    const block_q3_K *b = x;
    int8_t q[QK_K], sc[16];
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        float d = fp16_to_fp32(b[i].d);
        unpack_q3_K(&b[i], q);
        kq3_scales(b[i].scales, sc);
        for (int e = 0; e < QK_K; e++) y[e] = (d * (float)sc[e / 16]) * (float)q[e];
    }
}

void row_dequantize_q4_K_ref(const void *x, float *y, int64_t n) {
    const block_q4_K *b = x;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        unpack_q4_K(&b[i], q);
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            kq_scale_min(b[i].scales, s, &sc, &m);
            float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 0; l < 32; l++) y[32 * s + l] = dl * (float)q[32 * s + l] - ml;
        }
    }
}

void row_dequantize_q5_K_ref(const void *x, float *y, int64_t n) {
    const block_q5_K *b = x;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        unpack_q5_K(&b[i], q);
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            kq_scale_min(b[i].scales, s, &sc, &m);
            float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 0; l < 32; l++) y[32 * s + l] = dl * (float)q[32 * s + l] - ml;
        }
    }
}

void row_dequantize_q6_K_ref(const void *x, float *y, int64_t n) {
    const block_q6_K *b = x;
    int8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        float d = fp16_to_fp32(b[i].d);
        unpack_q6_K(&b[i], q);
        for (int e = 0; e < QK_K; e++) y[e] = (d * (float)b[i].scales[e / 16]) * (float)q[e];
    }
}

void row_dequantize_q8_K_ref(const void *x, float *y, int64_t n) {
    const block_q8_K *b = x;
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K)
        for (int e = 0; e < QK_K; e++) y[e] = b[i].d * (float)b[i].qs[e];
}

/* ---- q8_K activations ------------------------------------------------------------------------- */

/* Round half to even for |v| < 2^22: adding 1.5 * 2^23 leaves no fraction bits, so the addition itself
 * rounds (to nearest even, the default mode), and the subtraction is exact. */
static inline float round_even(float v) {
    return (v + 12582912.0f) - 12582912.0f;
}

void row_quantize_q8_K_ref(const float *x, void *y, int64_t n) {
    block_q8_K *b = y;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float amax = 0, max = 0;
        for (int e = 0; e < QK_K; e++)
            if (fabsf(x[e]) > amax) {
                amax = fabsf(x[e]);
                max = x[e];
            }
        float iscale = amax != 0 ? -127.0f / max : 0.0f;
        if (!isfinite(iscale)) iscale = 0; /* max below ~1e-36: the block reads as zero */
        b[i].d = iscale != 0 ? 1.0f / iscale : 0.0f;
        for (int e = 0; e < QK_K; e++) {
            /* |v| <= 127 (1 + 2^-23) rounds to at most 127; the clamp only defines NaN inputs (-> -127,
             * as maxps/minps in the SIMD variants) */
            float v = iscale != 0 ? round_even(iscale * x[e]) : 0.0f;
            if (!(v >= -127.0f)) v = -127.0f;
            if (v > 127.0f) v = 127.0f;
            b[i].qs[e] = (int8_t)v;
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += b[i].qs[16 * g + l];
            b[i].bsums[g] = (int16_t)s;
        }
    }
}

/* ---- dots with q8_K ------------------------------------------------------------------------------
 * Per super-block: isum = sum_g scale_g * sum_{e in g} q_w[e] q_x[e] and, for types with mins,
 * msum = sum_g min_g * bsums_g (exact int32: |isum| < 256 * 63 * 63 * 128 < 2^31); then
 * s += fl(d_w d_x) * isum - fl(dmin_w d_x) * msum. */

static void dot_q2_K_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q2_K *a = w;
    const block_q8_K *b = x;
    int8_t q[QK_K];
    double s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_q2_K(&a[i], q);
        int32_t isum = 0, msum = 0;
        for (int g = 0; g < 16; g++) {
            int32_t t = 0;
            for (int l = 0; l < 16; l++) t += q[16 * g + l] * b[i].qs[16 * g + l];
            isum += (a[i].scales[g] & 15) * t;
            msum += (a[i].scales[g] >> 4) * b[i].bsums[g];
        }
        float dw = fp16_to_fp32(a[i].d) * b[i].d, dm = fp16_to_fp32(a[i].dmin) * b[i].d;
        s += (double)dw * isum - (double)dm * msum;
    }
    *out = (float)s;
}

static void dot_q3_K_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q3_K *a = w;
    const block_q8_K *b = x;
    int8_t q[QK_K], sc[16];
    double s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_q3_K(&a[i], q);
        kq3_scales(a[i].scales, sc);
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            int32_t t = 0;
            for (int l = 0; l < 16; l++) t += q[16 * g + l] * b[i].qs[16 * g + l];
            isum += sc[g] * t;
        }
        s += (double)(fp16_to_fp32(a[i].d) * b[i].d) * isum;
    }
    *out = (float)s;
}

/* q4_K and q5_K: unpacked quants, 8 sub-blocks of 32 with 6-bit scale and min */
static double dot_k32_block(const int8_t q[QK_K], const uint8_t scales[12], uint16_t d, uint16_t dmin,
                            const block_q8_K *b) {
    int32_t isum = 0, msum = 0;
    for (int s = 0; s < 8; s++) {
        uint8_t sc, m;
        kq_scale_min(scales, s, &sc, &m);
        int32_t t = 0;
        for (int l = 0; l < 32; l++) t += q[32 * s + l] * b->qs[32 * s + l];
        isum += sc * t;
        msum += m * (b->bsums[2 * s] + b->bsums[2 * s + 1]);
    }
    float dw = fp16_to_fp32(d) * b->d, dm = fp16_to_fp32(dmin) * b->d;
    return (double)dw * isum - (double)dm * msum;
}

static void dot_q4_K_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q4_K *a = w;
    const block_q8_K *b = x;
    int8_t q[QK_K];
    double s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_q4_K(&a[i], q);
        s += dot_k32_block(q, a[i].scales, a[i].d, a[i].dmin, &b[i]);
    }
    *out = (float)s;
}

static void dot_q5_K_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q5_K *a = w;
    const block_q8_K *b = x;
    int8_t q[QK_K];
    double s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_q5_K(&a[i], q);
        s += dot_k32_block(q, a[i].scales, a[i].d, a[i].dmin, &b[i]);
    }
    *out = (float)s;
}

static void dot_q6_K_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q6_K *a = w;
    const block_q8_K *b = x;
    int8_t q[QK_K];
    double s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_q6_K(&a[i], q);
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            int32_t t = 0;
            for (int l = 0; l < 16; l++) t += q[16 * g + l] * b[i].qs[16 * g + l];
            isum += a[i].scales[g] * t;
        }
        s += (double)(fp16_to_fp32(a[i].d) * b[i].d) * isum;
    }
    *out = (float)s;
}

/* q8_K weights (not a format files use, but a complete type): exact block sums times d_w d_x. */
static void dot_q8_K_ref(int64_t n, float *out, const void *w, const void *x) {
    const block_q8_K *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t t = 0;
        for (int e = 0; e < QK_K; e++) t += a[i].qs[e] * b[i].qs[e];
        s += (double)(a[i].d * b[i].d) * t;
    }
    *out = (float)s;
}

/* Designated initializers: fields added to kernel_type_ops later default to zero. */
#define KQ_OPS(t, vt, blk, dotf, tof, fromf)                                                                   \
    (kernel_type_ops) {                                                                                    \
        .type = (t), .vec_dot_type = (vt), .block = QK_K, .block_bytes = sizeof(blk), .dot = (dotf),         \
        .to_f32 = (tof), .from_f32 = (fromf)                                                               \
    }

void kernels_fill_ref_kquants(kernel_type_ops ops[KSLOT_COUNT]) {
    ops[KSLOT_Q8_K] = KQ_OPS(HERD_TYPE_Q8_K, HERD_TYPE_Q8_K, block_q8_K, dot_q8_K_ref, row_dequantize_q8_K_ref,
                             row_quantize_q8_K_ref);
    ops[KSLOT_Q2_K] = KQ_OPS(HERD_TYPE_Q2_K, HERD_TYPE_Q8_K, block_q2_K, dot_q2_K_ref, row_dequantize_q2_K_ref,
                             row_quantize_q2_K_ref);
    ops[KSLOT_Q3_K] = KQ_OPS(HERD_TYPE_Q3_K, HERD_TYPE_Q8_K, block_q3_K, dot_q3_K_ref, row_dequantize_q3_K_ref,
                             row_quantize_q3_K_ref);
    ops[KSLOT_Q4_K] = KQ_OPS(HERD_TYPE_Q4_K, HERD_TYPE_Q8_K, block_q4_K, dot_q4_K_ref, row_dequantize_q4_K_ref,
                             row_quantize_q4_K_ref);
    ops[KSLOT_Q5_K] = KQ_OPS(HERD_TYPE_Q5_K, HERD_TYPE_Q8_K, block_q5_K, dot_q5_K_ref, row_dequantize_q5_K_ref,
                             row_quantize_q5_K_ref);
    ops[KSLOT_Q6_K] = KQ_OPS(HERD_TYPE_Q6_K, HERD_TYPE_Q8_K, block_q6_K, dot_q6_K_ref, row_dequantize_q6_K_ref,
                             row_quantize_q6_K_ref);
}
