/* K-quant weight quantizers (no importance matrix), layouts in ../kquants.h.
 *
 * Two stages per super-block of 256:
 *   1. llama.cpp's search (ggml-quants.c, the *_ref quantizers that llama-quantize runs without an
 *      imatrix), re-implemented here with the same float operations in the same order, so for the
 *      same input it picks the same super-block scales d / dmin and the same 4/6/8-bit sub-block
 *      scales. Per sub-block it fits x ~ scale * q - min:
 *        q2_K, q4_K, q5_K  fit_scale_min(): weighted least squares over a sweep of candidate grids
 *                          (nstep + 1 trial scales), min clamped to <= 0 (llama.cpp's make_qkx2_quants);
 *        q6_K              fit_scale_signed(): symmetric grid, 18 trial scales, weights x^2 (make_qx_quants);
 *        q3_K              fit_scale_q3(): symmetric grid, then coordinate descent on single quants
 *                          (make_q3_quants).
 *      The sub-block scales are then quantized against the super-block scale (6 bits for q4_K/q5_K/q3_K,
 *      4 for q2_K, 8 for q6_K) and the quants re-picked for the quantized scales.
 *   2. herd's refinement: for each sub-block, the quantized scale (and min) one step either side are
 *      tried too, each with its own nearest quants, and the pair with the least squared error of the
 *      dequantized values (computed exactly as row_dequantize_*_ref computes them) is kept; llama.cpp's
 *      choice wins ties. Since llama.cpp's choice is always a candidate, every sub-block's squared error
 *      is at most llama.cpp's, so the tensor's is too (tests/unit/test_kquants.c checks this against an
 *      independent transcription of llama.cpp's algorithm).
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "herd.h"

#include "../kquants.h"
#include "../types.h"

#define GROUP_EPS 1e-15f /* a group whose largest |x| is below this quantizes to zero (as llama.cpp) */

/* Round half to even for |v| < 2^22 (see kquants_ref.c). */
static inline float round_even(float v) {
    return (v + 12582912.0f) - 12582912.0f;
}

/* round_even(v) clamped to [lo, hi]; clamping first is the same for every finite v (rounding is
 * monotonic and lo, hi are integers) and keeps huge or NaN ratios well defined. */
static inline int nearest_in(float v, int lo, int hi) {
    if (!(v >= (float)lo)) v = (float)lo; /* NaN too; comparisons, not fminf/fmaxf calls */
    if (v > (float)hi) v = (float)hi;
    return (int)round_even(v);
}

/* ---- stage 1: llama.cpp's per-sub-block fits -------------------------------------------------- */

/* x[0..n) ~ scale * L - min with L in 0..nmax, min >= 0 (returned through *min_out), minimizing the
 * w-weighted squared (or, with use_mad, absolute) error over nstep + 1 candidate grids
 * iscale = (nmax + rmin + rdelta * k) / (max - min). Returns the scale. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *min_out,
                           float rmin, float rdelta, int nstep, int use_mad) {
    uint8_t Laux[32];
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *min_out = -min;
        return 0;
    }
    float iscale = (float)nmax / (max - min), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)nearest_in(iscale * (x[i] - min), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        best += w[i] * (use_mad ? fabsf(diff) : diff * diff);
    }
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * k + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_in(iscale * (x[i] - min), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float s = (sum_w * sum_xl - sum_x * sum_l) / D, m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (m > 0) {
                m = 0;
                s = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = s * Laux[i] + m - x[i];
                err += w[i] * (use_mad ? fabsf(diff) : diff * diff);
            }
            if (err < best) {
                memcpy(L, Laux, (size_t)n);
                best = err;
                scale = s;
                min = m;
            }
        }
    }
    *min_out = -min;
    return scale;
}

/* x[0..n) ~ scale * (L - nmax), L in 0..2 nmax - 1, weights x^2, 19 trial grids around -nmax / max
 * where max is the element of largest magnitude. Returns the (signed) scale. */
static float fit_scale_signed(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_in(iscale * x[i], -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        iscale = -(nmax + 0.1f * k) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_in(iscale * x[i], -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + nearest_in(iscale * x[i], -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* q3_K's fit: the symmetric grid -nmax / max, then up to 5 sweeps that move single quants to the value
 * that maximizes (sum w x l)^2 / sum w l^2 (weights x^2). L in 0..2 nmax - 1. */
static float fit_scale_q3(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_in(iscale * x[i], -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i], slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int nl = nearest_in(x[i] * sl2 / slx, -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* ---- stage 2: refinement ------------------------------------------------------------------------ */

/* Codes (stored quants) of x[0..n) for the dequantization x' = a * (code - off) - b, where a = d * scale
 * and b = dmin * min are rounded to float exactly as the dequantizer rounds them, code - off in
 * [qlo, qhi] nearest to (x + b) / a. Returns the squared error of x'. a == 0 leaves the codes alone
 * (every code gives -b: llama.cpp keeps the first stage's there, and so do we). */
static double codes_for(const float *x, int n, float a, float b, int qlo, int qhi, int off, int *code) {
    double err = 0;
    for (int i = 0; i < n; i++) {
        if (a != 0) code[i] = nearest_in((x[i] + b) / a, qlo, qhi) + off;
        float v = a * (float)(code[i] - off) - b;
        err += ((double)v - x[i]) * ((double)v - x[i]);
    }
    return err;
}

typedef struct {
    float d, dmin;            /* the super-block scales, as f32 (already rounded through f16) */
    int sc_min, sc_max, m_max; /* ranges of the scale and min codes (m_max 0: no mins) */
    int qlo, qhi, off;        /* quant range and the code offset */
    bool refine;              /* false: llama.cpp's result exactly */
} kq_final;

/* The final quants of a sub-block for its quantized (*sc, *m): llama.cpp's step (nearest quants for
 * those codes); with refine, the codes one step either side are tried too and replace llama.cpp's only
 * for a strictly smaller error. code[] holds the first stage's quants on entry. */
static void finish_sub_block(const kq_final *f, const float *x, int n, int *sc, int *m, int *code) {
    double best = codes_for(x, n, f->d * (float)*sc, f->dmin * (float)*m, f->qlo, f->qhi, f->off, code);
    if (!f->refine) return;
    int tmp[32], s0 = *sc, m0 = *m;
    for (int ds = -1; ds <= 1; ds++)
        for (int dm = -1; dm <= 1; dm++) {
            int s = s0 + ds, mm = m0 + dm;
            if ((ds == 0 && dm == 0) || s < f->sc_min || s > f->sc_max || mm < 0 || mm > f->m_max) continue;
            for (int i = 0; i < n; i++) tmp[i] = f->off; /* used as is only when d * s == 0 */
            double e = codes_for(x, n, f->d * (float)s, f->dmin * (float)mm, f->qlo, f->qhi, f->off, tmp);
            if (e < best) {
                best = e;
                *sc = s;
                *m = mm;
                memcpy(code, tmp, (size_t)n * sizeof *code);
            }
        }
}

/* ---- q4_K and q5_K: 8 sub-blocks of 32, 6-bit scales and mins --------------------------------- */

/* One super-block; nmax 15 (q4_K) or 31 (q5_K). OUT: d, dmin (f16), packed scales, codes L[256]. */
static void quantize_k32(const float *x, int nmax, float rmin, int nstep, bool refine, uint16_t *d_out,
                         uint16_t *dmin_out, uint8_t packed[12], int L[QK_K]) {
    float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
    uint8_t L8[32];
    for (int s = 0; s < 8; s++) {
        const float *xs = x + 32 * s;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
        scales[s] = fit_scale_min(32, nmax, xs, w, L8, &mins[s], rmin, 0.1f, nstep, 0);
        for (int l = 0; l < 32; l++) L[32 * s + l] = L8[l];
        if (scales[s] > max_scale) max_scale = scales[s];
        if (mins[s] > max_min) max_min = mins[s];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    *d_out = fp32_to_fp16(max_scale / 63.f);
    *dmin_out = fp32_to_fp16(max_min / 63.f);
    kq_final f = {fp16_to_fp32(*d_out), fp16_to_fp32(*dmin_out), 0, 63, 63, 0, nmax, 0, refine};
    uint8_t sc8[8], m8[8];
    for (int s = 0; s < 8; s++) {
        int sc = nearest_in(inv_scale * scales[s], 0, 63), m = nearest_in(inv_min * mins[s], 0, 63);
        finish_sub_block(&f, x + 32 * s, 32, &sc, &m, L + 32 * s);
        sc8[s] = (uint8_t)sc;
        m8[s] = (uint8_t)m;
    }
    kq_pack_scale_min(sc8, m8, packed);
}

static void quantize_q4_K(const float *x, block_q4_K *b, int64_t n, bool refine) {
    int L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        quantize_k32(x, 15, -1.0f, 20, refine, &b[i].d, &b[i].dmin, b[i].scales, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) b[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

static void quantize_q5_K(const float *x, block_q5_K *b, int64_t n, bool refine) {
    int L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        quantize_k32(x, 31, -0.5f, 15, refine, &b[i].d, &b[i].dmin, b[i].scales, L);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                b[i].qs[32 * c + l] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
                b[i].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
    }
}

/* ---- q2_K: 16 groups of 16, 4-bit scales and mins ---------------------------------------------- */

static void quantize_q2_K(const float *x, block_q2_K *b, int64_t n, bool refine) {
    int L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float scales[16], mins[16], w[16], max_scale = 0, max_min = 0;
        uint8_t L8[16];
        for (int g = 0; g < 16; g++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * g + l]);
            scales[g] = fit_scale_min(16, 3, x + 16 * g, w, L8, &mins[g], -0.5f, 0.1f, 15, 1);
            for (int l = 0; l < 16; l++) L[16 * g + l] = L8[l];
            if (scales[g] > max_scale) max_scale = scales[g];
            if (mins[g] > max_min) max_min = mins[g];
        }
        float is = max_scale > 0 ? 15.f / max_scale : 0.f, im = max_min > 0 ? 15.f / max_min : 0.f;
        b[i].d = fp32_to_fp16(max_scale > 0 ? max_scale / 15.f : 0.f);
        b[i].dmin = fp32_to_fp16(max_min > 0 ? max_min / 15.f : 0.f);
        kq_final f = {fp16_to_fp32(b[i].d), fp16_to_fp32(b[i].dmin), 0, 15, 15, 0, 3, 0, refine};
        for (int g = 0; g < 16; g++) {
            int sc = nearest_in(is * scales[g], 0, 15), m = nearest_in(im * mins[g], 0, 15);
            finish_sub_block(&f, x + 16 * g, 16, &sc, &m, L + 16 * g);
            b[i].scales[g] = (uint8_t)(sc | (m << 4));
        }
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const int *q = L + 128 * h + l;
                b[i].qs[32 * h + l] = (uint8_t)(q[0] | (q[32] << 2) | (q[64] << 4) | (q[96] << 6));
            }
    }
}

/* ---- q3_K: 16 groups of 16, signed 6-bit scales; codes 0..7 stand for -4..3 -------------------- */

static void quantize_q3_K(const float *x, block_q3_K *b, int64_t n, bool refine) {
    int L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float scales[16], max_scale = 0, amax = 0;
        int8_t L8[16];
        for (int g = 0; g < 16; g++) {
            scales[g] = fit_scale_q3(16, 4, x + 16 * g, L8);
            for (int l = 0; l < 16; l++) L[16 * g + l] = L8[l];
            if (fabsf(scales[g]) > amax) {
                amax = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        float iscale = max_scale != 0 ? -32.f / max_scale : 0.f;
        b[i].d = fp32_to_fp16(max_scale != 0 ? 1 / iscale : 0.f);
        kq_final f = {fp16_to_fp32(b[i].d), 0, -32, 31, 0, -4, 3, 4, refine};
        int8_t sc8[16];
        for (int g = 0; g < 16; g++) {
            int sc = max_scale != 0 ? nearest_in(iscale * scales[g], -32, 31) : 0, m = 0;
            finish_sub_block(&f, x + 16 * g, 16, &sc, &m, L + 16 * g);
            sc8[g] = (int8_t)sc;
        }
        kq3_pack_scales(sc8, b[i].scales);
        memset(b[i].hmask, 0, sizeof b[i].hmask);
        memset(b[i].qs, 0, sizeof b[i].qs);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++) {
                    int u = L[128 * h + 32 * k + l];
                    b[i].qs[32 * h + l] |= (uint8_t)((u & 3) << (2 * k));
                    b[i].hmask[l] |= (uint8_t)((u >> 2) << (4 * h + k));
                }
    }
}

/* ---- q6_K: 16 groups of 16, signed 8-bit scales; codes 0..63 stand for -32..31 ------------------ */

static void quantize_q6_K(const float *x, block_q6_K *b, int64_t n, bool refine) {
    int L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float scales[16], max_scale = 0, amax = 0;
        int8_t L8[16];
        for (int g = 0; g < 16; g++) {
            scales[g] = fit_scale_signed(16, 32, x + 16 * g, L8);
            for (int l = 0; l < 16; l++) L[16 * g + l] = L8[l];
            if (fabsf(scales[g]) > amax) {
                amax = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        if (amax < GROUP_EPS) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float iscale = -128.f / max_scale;
        b[i].d = fp32_to_fp16(1 / iscale);
        kq_final f = {fp16_to_fp32(b[i].d), 0, -128, 127, 0, -32, 31, 32, refine};
        for (int g = 0; g < 16; g++) {
            int sc = nearest_in(iscale * scales[g], -128, 127), m = 0;
            finish_sub_block(&f, x + 16 * g, 16, &sc, &m, L + 16 * g);
            b[i].scales[g] = (int8_t)sc;
        }
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const int *q = L + 128 * h + l; /* codes of elements 128h + 32k + l, k = 0..3 */
                b[i].ql[64 * h + l] = (uint8_t)((q[0] & 15) | ((q[64] & 15) << 4));
                b[i].ql[64 * h + 32 + l] = (uint8_t)((q[32] & 15) | ((q[96] & 15) << 4));
                b[i].qh[32 * h + l] =
                    (uint8_t)((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
            }
    }
}

/* ---- entry points --------------------------------------------------------------------------------- */

void row_quantize_q2_K_ref(const float *x, void *y, int64_t n) {
    quantize_q2_K(x, y, n, true);
}

void row_quantize_q3_K_ref(const float *x, void *y, int64_t n) {
    quantize_q3_K(x, y, n, true);
}

void row_quantize_q4_K_ref(const float *x, void *y, int64_t n) {
    quantize_q4_K(x, y, n, true);
}

void row_quantize_q5_K_ref(const float *x, void *y, int64_t n) {
    quantize_q5_K(x, y, n, true);
}

void row_quantize_q6_K_ref(const float *x, void *y, int64_t n) {
    quantize_q6_K(x, y, n, true);
}

int kq_quantize_row_llama(int type, const float *x, void *y, int64_t n) {
    switch (type) {
    case HERD_TYPE_Q2_K: quantize_q2_K(x, y, n, false); return 0;
    case HERD_TYPE_Q3_K: quantize_q3_K(x, y, n, false); return 0;
    case HERD_TYPE_Q4_K: quantize_q4_K(x, y, n, false); return 0;
    case HERD_TYPE_Q5_K: quantize_q5_K(x, y, n, false); return 0;
    case HERD_TYPE_Q6_K: quantize_q6_K(x, y, n, false); return 0;
    default: return -1;
    }
}
