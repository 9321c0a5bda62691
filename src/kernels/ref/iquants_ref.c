/* Scalar references of the low-bit i-quants and the ternary types (iquants.h): dequantization as ggml's
 * dequantize_row_* (ggml-quants.c, bit for bit) and dots as ggml's generic ggml_vec_dot_*_q8_K (exact
 * integer sums per super-block, then the same float operations in the same order). */
#include <string.h>

#include "herd.h"
#include "../iquants.h"
#include "../kernels_impl.h"
#include "../kquants.h"
#include "../types.h"

/* coordinate j of a grid entry */
static inline int g8(uint64_t e, int j) {
    return (int)((e >> 8 * j) & 0xff);
}
static inline int g4(uint32_t e, int j) {
    return (int)((e >> 8 * j) & 0xff);
}
static inline int gs8(uint64_t e, int j) { /* iq1s: the byte as int8 (-1, 0, 1) */
    return (int)(int8_t)((e >> 8 * j) & 0xff);
}
static inline float fsign(uint8_t signs, int j) {
    return signs >> j & 1 ? -1.0f : 1.0f;
}
static inline int isign(uint8_t signs, int j) {
    return signs >> j & 1 ? -1 : 1;
}
static inline uint32_t rd32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* the 3-bit scale pair of iq1_m block b and its f16 super-block scale */
static inline uint16_t iq1m_d(const block_iq1_m *x) {
    uint16_t sc[4];
    memcpy(sc, x->scales, 8);
    return (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}
static inline int iq1m_ls(const block_iq1_m *x, int b, int half) {
    uint16_t sc[4];
    memcpy(sc, x->scales, 8);
    return 2 * ((sc[b / 2] >> (6 * (b % 2) + 3 * half)) & 7) + 1;
}
/* iq1_m group l (< 4) of block b: grid index and delta sign */
static inline int iq1m_idx(const block_iq1_m *x, int b, int l) {
    int nib = (x->qh[2 * b + l / 2] >> 4 * (l % 2)) & 15;
    return x->qs[4 * b + l] | (nib & 7) << 8;
}
static inline int iq1m_neg(const block_iq1_m *x, int b, int l) {
    return (x->qh[2 * b + l / 2] >> 4 * (l % 2)) & 8;
}

/* ---- dequantization ------------------------------------------------------------------------------ */

void row_dequantize_iq2_xxs_ref(const void *vx, float *y, int64_t n) {
    const block_iq2_xxs *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d);
        for (int b = 0; b < QK_K / 32; b++) {
            uint32_t a0 = (uint32_t)x[i].qs[4 * b] | (uint32_t)x[i].qs[4 * b + 1] << 16;
            uint32_t a1 = (uint32_t)x[i].qs[4 * b + 2] | (uint32_t)x[i].qs[4 * b + 3] << 16;
            const float db = d * (0.5f + (float)(a1 >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++, y += 8) {
                uint64_t e = iq2xxs_grid[(a0 >> 8 * l) & 255];
                uint8_t s = ksigns_iq2xs[(a1 >> 7 * l) & 127];
                for (int j = 0; j < 8; j++) y[j] = db * (float)g8(e, j) * fsign(s, j);
            }
        }
    }
}

void row_dequantize_iq2_xs_ref(const void *vx, float *y, int64_t n) {
    const block_iq2_xs *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d);
        for (int b = 0; b < QK_K / 32; b++) {
            float db[2] = {d * (0.5f + (float)(x[i].scales[b] & 15)) * 0.25f,
                           d * (0.5f + (float)(x[i].scales[b] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, y += 8) {
                uint16_t q = x[i].qs[4 * b + l];
                uint64_t e = iq2xs_grid[q & 511];
                uint8_t s = ksigns_iq2xs[q >> 9];
                for (int j = 0; j < 8; j++) y[j] = db[l / 2] * (float)g8(e, j) * fsign(s, j);
            }
        }
    }
}

void row_dequantize_iq2_s_ref(const void *vx, float *y, int64_t n) {
    const block_iq2_s *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t *qs = x[i].qs, *signs = x[i].qs + QK_K / 8;
        for (int b = 0; b < QK_K / 32; b++) {
            float db[2] = {d * (0.5f + (float)(x[i].scales[b] & 15)) * 0.25f,
                           d * (0.5f + (float)(x[i].scales[b] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, y += 8) {
                uint64_t e = iq2s_grid[qs[4 * b + l] | ((x[i].qh[b] >> 2 * l) & 3) << 8];
                for (int j = 0; j < 8; j++) y[j] = db[l / 2] * (float)g8(e, j) * fsign(signs[4 * b + l], j);
            }
        }
    }
}

void row_dequantize_iq3_xxs_ref(const void *vx, float *y, int64_t n) {
    const block_iq3_xxs *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t *qs = x[i].qs, *sas = x[i].qs + QK_K / 4;
        for (int b = 0; b < QK_K / 32; b++) {
            uint32_t a = rd32(sas + 4 * b);
            const float db = d * (0.5f + (float)(a >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++, y += 8) {
                uint8_t s = ksigns_iq2xs[(a >> 7 * l) & 127];
                uint32_t e1 = iq3xxs_grid[qs[8 * b + 2 * l]], e2 = iq3xxs_grid[qs[8 * b + 2 * l + 1]];
                for (int j = 0; j < 4; j++) {
                    y[j] = db * (float)g4(e1, j) * fsign(s, j);
                    y[j + 4] = db * (float)g4(e2, j) * fsign(s, j + 4);
                }
            }
        }
    }
}

static inline int iq3s_idx(const block_iq3_s *x, int b, int h) {
    return x->qs[8 * b + h] | ((x->qh[b] >> h) & 1) << 8;
}

void row_dequantize_iq3_s_ref(const void *vx, float *y, int64_t n) {
    const block_iq3_s *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d);
        for (int b = 0; b < QK_K / 32; b++) {
            const float db = d * (float)(1 + 2 * ((x[i].scales[b / 2] >> 4 * (b % 2)) & 15));
            for (int l = 0; l < 4; l++, y += 8) {
                uint8_t s = x[i].signs[4 * b + l];
                uint32_t e1 = iq3s_grid[iq3s_idx(&x[i], b, 2 * l)], e2 = iq3s_grid[iq3s_idx(&x[i], b, 2 * l + 1)];
                for (int j = 0; j < 4; j++) {
                    y[j] = db * (float)g4(e1, j) * fsign(s, j);
                    y[j + 4] = db * (float)g4(e2, j) * fsign(s, j + 4);
                }
            }
        }
    }
}

void row_dequantize_iq1_s_ref(const void *vx, float *y, int64_t n) {
    const block_iq1_s *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d);
        for (int b = 0; b < QK_K / 32; b++) {
            const uint16_t qh = x[i].qh[b];
            const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA;
            for (int l = 0; l < 4; l++, y += 8) {
                uint64_t e = iq1s_grid[x[i].qs[4 * b + l] | ((qh >> 3 * l) & 7) << 8];
                for (int j = 0; j < 8; j++) y[j] = dl * ((float)gs8(e, j) + delta);
            }
        }
    }
}

void row_dequantize_iq1_m_ref(const void *vx, float *y, int64_t n) {
    const block_iq1_m *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(iq1m_d(&x[i]));
        for (int b = 0; b < QK_K / 32; b++) {
            const float dl[2] = {d * (float)iq1m_ls(&x[i], b, 0), d * (float)iq1m_ls(&x[i], b, 1)};
            for (int l = 0; l < 4; l++, y += 8) {
                uint64_t e = iq1s_grid[iq1m_idx(&x[i], b, l)];
                const float delta = iq1m_neg(&x[i], b, l) ? -IQ1_DELTA : IQ1_DELTA;
                for (int j = 0; j < 8; j++) y[j] = dl[l / 2] * ((float)gs8(e, j) + delta);
            }
        }
    }
}

/* the ternary digit k (0..2) of a base-3 byte, as ggml extracts it */
static inline int tq1_digit(uint8_t q, int k) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t v = (uint8_t)(q * pow3[k]);
    return ((uint16_t)v * 3) >> 8;
}

/* the 256 ternary values (0..2) of a tq1_0 block, in element order */
static void tq1_unpack(const block_tq1_0 *x, int8_t t[QK_K]) {
    int e = 0;
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 32; m++) t[e++] = (int8_t)tq1_digit(x->qs[m], k);
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 16; m++) t[e++] = (int8_t)tq1_digit(x->qs[32 + m], k);
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++) t[e++] = (int8_t)tq1_digit(x->qh[j], k);
}

void row_dequantize_tq1_0_ref(const void *vx, float *y, int64_t n) {
    const block_tq1_0 *x = vx;
    int8_t t[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d = fp16_to_fp32(x[i].d);
        tq1_unpack(&x[i], t);
        for (int e = 0; e < QK_K; e++) y[e] = (float)(t[e] - 1) * d;
    }
}

void row_dequantize_tq2_0_ref(const void *vx, float *y, int64_t n) {
    const block_tq2_0 *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d);
        for (int c = 0; c < 2; c++)
            for (int l = 0; l < 4; l++, y += 32)
                for (int m = 0; m < 32; m++) y[m] = (float)(((x[i].qs[32 * c + m] >> 2 * l) & 3) - 1) * d;
    }
}

/* ---- dots with q8_K ------------------------------------------------------------------------------ */

static void dot_iq2_xxs_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq2_xxs *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        const int8_t *q8 = y[i].qs;
        int32_t bsum = 0;
        for (int b = 0; b < QK_K / 32; b++) {
            uint32_t a0 = (uint32_t)x[i].qs[4 * b] | (uint32_t)x[i].qs[4 * b + 1] << 16;
            uint32_t a1 = (uint32_t)x[i].qs[4 * b + 2] | (uint32_t)x[i].qs[4 * b + 3] << 16;
            int32_t sumi = 0;
            for (int l = 0; l < 4; l++, q8 += 8) {
                uint64_t e = iq2xxs_grid[(a0 >> 8 * l) & 255];
                uint8_t s = ksigns_iq2xs[(a1 >> 7 * l) & 127];
                for (int j = 0; j < 8; j++) sumi += g8(e, j) * q8[j] * isign(s, j);
            }
            bsum += sumi * (int32_t)(2 * (a1 >> 28) + 1);
        }
        sumf += d * (float)bsum;
    }
    *out = 0.125f * sumf;
}

static void dot_iq2_xs_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq2_xs *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        const int8_t *q8 = y[i].qs;
        int32_t bsum = 0;
        for (int b = 0; b < QK_K / 32; b++) {
            int32_t sumi[2] = {0, 0};
            for (int l = 0; l < 4; l++, q8 += 8) {
                uint16_t q = x[i].qs[4 * b + l];
                uint64_t e = iq2xs_grid[q & 511];
                uint8_t s = ksigns_iq2xs[q >> 9];
                for (int j = 0; j < 8; j++) sumi[l / 2] += g8(e, j) * q8[j] * isign(s, j);
            }
            bsum += sumi[0] * (2 * (x[i].scales[b] & 15) + 1) + sumi[1] * (2 * (x[i].scales[b] >> 4) + 1);
        }
        sumf += d * (float)bsum;
    }
    *out = 0.125f * sumf;
}

static void dot_iq2_s_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq2_s *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        const int8_t *q8 = y[i].qs;
        const uint8_t *qs = x[i].qs, *signs = x[i].qs + QK_K / 8;
        int32_t bsum = 0;
        for (int b = 0; b < QK_K / 32; b++) {
            int32_t sumi[2] = {0, 0};
            for (int l = 0; l < 4; l++, q8 += 8) {
                uint64_t e = iq2s_grid[qs[4 * b + l] | ((x[i].qh[b] >> 2 * l) & 3) << 8];
                for (int j = 0; j < 8; j++) sumi[l / 2] += g8(e, j) * q8[j] * isign(signs[4 * b + l], j);
            }
            bsum += sumi[0] * (2 * (x[i].scales[b] & 15) + 1) + sumi[1] * (2 * (x[i].scales[b] >> 4) + 1);
        }
        sumf += d * (float)bsum;
    }
    *out = 0.125f * sumf;
}

static void dot_iq3_xxs_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq3_xxs *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        const int8_t *q8 = y[i].qs;
        const uint8_t *qs = x[i].qs, *sas = x[i].qs + QK_K / 4;
        int32_t bsum = 0;
        for (int b = 0; b < QK_K / 32; b++) {
            uint32_t a = rd32(sas + 4 * b);
            int32_t sumi = 0;
            for (int l = 0; l < 4; l++, q8 += 8) {
                uint8_t s = ksigns_iq2xs[(a >> 7 * l) & 127];
                uint32_t e1 = iq3xxs_grid[qs[8 * b + 2 * l]], e2 = iq3xxs_grid[qs[8 * b + 2 * l + 1]];
                for (int j = 0; j < 4; j++)
                    sumi += g4(e1, j) * q8[j] * isign(s, j) + g4(e2, j) * q8[j + 4] * isign(s, j + 4);
            }
            bsum += sumi * (int32_t)(2 * (a >> 28) + 1);
        }
        sumf += d * (float)bsum;
    }
    *out = 0.25f * sumf;
}

static void dot_iq3_s_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq3_s *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        const int8_t *q8 = y[i].qs;
        int32_t bsum = 0;
        for (int b = 0; b < QK_K / 32; b++) {
            int32_t sumi = 0;
            for (int l = 0; l < 4; l++, q8 += 8) {
                uint8_t s = x[i].signs[4 * b + l];
                uint32_t e1 = iq3s_grid[iq3s_idx(&x[i], b, 2 * l)], e2 = iq3s_grid[iq3s_idx(&x[i], b, 2 * l + 1)];
                for (int j = 0; j < 4; j++)
                    sumi += g4(e1, j) * q8[j] * isign(s, j) + g4(e2, j) * q8[j + 4] * isign(s, j + 4);
            }
            bsum += sumi * (2 * ((x[i].scales[b / 2] >> 4 * (b % 2)) & 15) + 1);
        }
        sumf += d * (float)bsum;
    }
    *out = sumf;
}

static void dot_iq1_s_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq1_s *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const int8_t *q8 = y[i].qs;
        int32_t sumi = 0, sumi1 = 0;
        for (int b = 0; b < QK_K / 32; b++) {
            const uint16_t qh = x[i].qh[b];
            const int ls = 2 * ((qh >> 12) & 7) + 1, delta = qh & 0x8000 ? -1 : 1;
            int32_t lsum = 0;
            for (int l = 0; l < 4; l++, q8 += 8) {
                uint64_t e = iq1s_grid[x[i].qs[4 * b + l] | ((qh >> 3 * l) & 7) << 8];
                for (int j = 0; j < 8; j++) lsum += q8[j] * gs8(e, j);
            }
            sumi += ls * lsum;
            sumi1 += ls * delta * (y[i].bsums[2 * b] + y[i].bsums[2 * b + 1]);
        }
        sumf += fp16_to_fp32(x[i].d) * y[i].d * ((float)sumi + IQ1_DELTA * (float)sumi1);
    }
    *out = sumf;
}

static void dot_iq1_m_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq1_m *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const int8_t *q8 = y[i].qs;
        int32_t sumi1 = 0, sumi2 = 0;
        for (int b = 0; b < QK_K / 32; b++) {
            int32_t sum1[2] = {0, 0}, sum2[2] = {0, 0};
            for (int l = 0; l < 4; l++, q8 += 8) {
                uint64_t e = iq1s_grid[iq1m_idx(&x[i], b, l)];
                int32_t lsum1 = 0, lsum2 = 0;
                for (int j = 0; j < 8; j++) lsum1 += q8[j] * gs8(e, j), lsum2 += q8[j];
                sum1[l / 2] += lsum1;
                sum2[l / 2] += lsum2 * (iq1m_neg(&x[i], b, l) ? -1 : 1);
            }
            const int ls1 = iq1m_ls(&x[i], b, 0), ls2 = iq1m_ls(&x[i], b, 1);
            sumi1 += sum1[0] * ls1 + sum1[1] * ls2;
            sumi2 += sum2[0] * ls1 + sum2[1] * ls2;
        }
        sumf += fp16_to_fp32(iq1m_d(&x[i])) * y[i].d * ((float)sumi1 + IQ1_DELTA * (float)sumi2);
    }
    *out = sumf;
}

static void dot_tq1_0_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_tq1_0 *x = w;
    const block_q8_K *y = vy;
    int8_t t[QK_K];
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        tq1_unpack(&x[i], t);
        int32_t sum = 0;
        for (int e = 0; e < QK_K; e++) sum += (t[e] - 1) * y[i].qs[e];
        sumf += (float)sum * (fp16_to_fp32(x[i].d) * y[i].d);
    }
    *out = sumf;
}

static void dot_tq2_0_ref(int64_t n, float *out, const void *w, const void *vy) {
    const block_tq2_0 *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sumi = 0;
        for (int c = 0; c < 2; c++)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++)
                    sumi += y[i].qs[128 * c + 32 * l + m] * (((x[i].qs[32 * c + m] >> 2 * l) & 3) - 1);
        const float d = y[i].d * fp16_to_fp32(x[i].d);
        sumf += (float)sumi * d;
    }
    *out = sumf;
}

void kernels_fill_ref_iquants(kernel_type_ops ops[KSLOT_COUNT]) {
    /* read-only types: no from_f32 (herd does not write them) */
#define OPS(t, bb, dotf, tof)                                                                                  \
    (kernel_type_ops) {                                                                                    \
        .type = (t), .vec_dot_type = HERD_TYPE_Q8_K, .block = QK_K, .block_bytes = (bb), .dot = (dotf),        \
        .to_f32 = (tof)                                                                                    \
    }
    ops[KSLOT_IQ2_XXS] = OPS(HERD_TYPE_IQ2_XXS, sizeof(block_iq2_xxs), dot_iq2_xxs_ref, row_dequantize_iq2_xxs_ref);
    ops[KSLOT_IQ2_XS] = OPS(HERD_TYPE_IQ2_XS, sizeof(block_iq2_xs), dot_iq2_xs_ref, row_dequantize_iq2_xs_ref);
    ops[KSLOT_IQ2_S] = OPS(HERD_TYPE_IQ2_S, sizeof(block_iq2_s), dot_iq2_s_ref, row_dequantize_iq2_s_ref);
    ops[KSLOT_IQ3_XXS] = OPS(HERD_TYPE_IQ3_XXS, sizeof(block_iq3_xxs), dot_iq3_xxs_ref, row_dequantize_iq3_xxs_ref);
    ops[KSLOT_IQ3_S] = OPS(HERD_TYPE_IQ3_S, sizeof(block_iq3_s), dot_iq3_s_ref, row_dequantize_iq3_s_ref);
    ops[KSLOT_IQ1_S] = OPS(HERD_TYPE_IQ1_S, sizeof(block_iq1_s), dot_iq1_s_ref, row_dequantize_iq1_s_ref);
    ops[KSLOT_IQ1_M] = OPS(HERD_TYPE_IQ1_M, sizeof(block_iq1_m), dot_iq1_m_ref, row_dequantize_iq1_m_ref);
    ops[KSLOT_TQ1_0] = OPS(HERD_TYPE_TQ1_0, sizeof(block_tq1_0), dot_tq1_0_ref, row_dequantize_tq1_0_ref);
    ops[KSLOT_TQ2_0] = OPS(HERD_TYPE_TQ2_0, sizeof(block_tq2_0), dot_tq2_0_ref, row_dequantize_tq2_0_ref);
#undef OPS
}
