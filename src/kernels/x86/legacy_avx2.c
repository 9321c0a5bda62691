/* AVX2 variants of the legacy / i-quant kernels (legacy.h). Bit-identical to the reference: each block's
 * integer dot is computed in SIMD (exact), and the floats are combined in the reference's order with the
 * reference's operations, one block at a time. The per-block float work is a few scalar operations next
 * to 32 multiply-adds, and decode is bound by the weight bytes, not by them. Dequantization: the same
 * products (one rounding each) as the reference, 8 lanes at a time. */
#include <immintrin.h>
#include <string.h>

#include "herd.h"
#include "../kernels_impl.h"
#include "../kquants.h"
#include "../legacy.h"
#include "../types.h"

static inline float f16s(uint16_t h) {
    return _cvtsh_ss(h);
}

static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* The 32 nibbles of a block as bytes 0..15 in element order: [low nibbles | high nibbles]. */
static inline __m256i nibbles(const uint8_t *qs) {
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}

/* The fifth bits of a q5 block as 0x10 bytes in element order: byte e = 16 * bit e of qh. */
static inline __m256i q5_high(const uint8_t qh4[4]) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    /* byte e gets qh's byte e / 8 (vpshufb works within 128-bit lanes; each lane holds all 4 bytes of
     * qh, so indices 0..3 reach them), then tests bit e % 8 */
    __m256i bytes = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                                     3, 3, 3, 3);
    __m256i q = _mm256_set1_epi32((int)qh);
    __m256i sel = _mm256_shuffle_epi8(q, bytes);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i on = _mm256_cmpeq_epi8(_mm256_and_si256(sel, bit), bit);
    return _mm256_and_si256(on, _mm256_set1_epi8(0x10));
}

/* sum_j u[j] * x[j] over 32 bytes, u unsigned (<= 31 or |.| <= 127 via sign trick), x int8: exact */
static inline int32_t dot_u8_i8(__m256i u, const int8_t *xq) {
    __m256i x = _mm256_loadu_si256((const __m256i *)xq);
    return hsum_i32(_mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1)));
}

/* sum_j s[j] * x[j], s int8 (any), x int8 without -128 (as q8_0 / q8_1 / q8_K produce): exact */
static inline int32_t dot_i8_i8(__m256i s, const int8_t *xq) {
    __m256i x = _mm256_loadu_si256((const __m256i *)xq);
    __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(s), _mm256_sign_epi8(x, s));
    return hsum_i32(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

static inline __m256i iq4_levels(const uint8_t *qs) {
    const __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)k_iq4nl));
    return _mm256_shuffle_epi8(tab, nibbles(qs));
}

static void dot_q4_1_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_q4_1 *a = w;
    const block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int32_t si = dot_u8_i8(nibbles(a[i].qs), b[i].qs);
        s += (float)si * (f16s(a[i].d) * f16s(b[i].d)) + f16s(a[i].m) * f16s(b[i].s);
    }
    *out = s;
}

static void dot_q5_0_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_q5_0 *a = w;
    const block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        __m256i q = _mm256_sub_epi8(_mm256_or_si256(nibbles(a[i].qs), q5_high(a[i].qh)), _mm256_set1_epi8(16));
        int32_t si = dot_i8_i8(q, b[i].qs);
        s += (float)si * (f16s(a[i].d) * f16s(b[i].d));
    }
    *out = s;
}

static void dot_q5_1_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_q5_1 *a = w;
    const block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        int32_t si = dot_u8_i8(_mm256_or_si256(nibbles(a[i].qs), q5_high(a[i].qh)), b[i].qs);
        s += (float)si * (f16s(a[i].d) * f16s(b[i].d)) + f16s(a[i].m) * f16s(b[i].s);
    }
    *out = s;
}

static void dot_iq4_nl_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_iq4_nl *a = w;
    const block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_NL; i++) {
        int32_t si = dot_i8_i8(iq4_levels(a[i].qs), b[i].qs);
        s += (float)si * (f16s(a[i].d) * f16s(b[i].d));
    }
    *out = s;
}

/* The super-block's integer sum stays in 8 int32 lanes: each sub-block's 16 pair sums (|.| <= 2 * 127 * 127,
 * no saturation) times its scale ls - 32 by one vpmaddwd (|.| <= 2^21 a lane), one horizontal sum per
 * super-block (the total, |.| <= 256 * 127 * 127 * 32 < 2^31, is the same exact integer as the
 * reference's: same bits). A horizontal sum per sub-block made decode compute-bound (58 ns per 256
 * weights on a Xeon, 17 % of the bandwidth roofline at 8B). */
static void dot_iq4_xs_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_iq4_xs *a = w;
    const block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i acc = _mm256_setzero_si256();
        for (int ib = 0; ib < QK_K / 32; ib++) {
            int ls = iq4_xs_scale(&a[i], ib);
            const __m256i lv = iq4_levels(a[i].qs + 16 * ib);
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * ib));
            const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(lv), _mm256_sign_epi8(xv, lv));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16((short)(ls - 32))));
        }
        s += (float)hsum_i32(acc) * (f16s(a[i].d) * b[i].d);
    }
    *out = s;
}

/* y[0..32) = float(q) * d (+ m): q as 32 int8 in element order; products and sums rounded as the reference */
static inline void store32(float *y, __m256i q, __m256 d, const __m256 *m) {
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    __m256i v[4] = {_mm256_cvtepi8_epi32(lo), _mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)), _mm256_cvtepi8_epi32(hi),
                    _mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))};
    for (int k = 0; k < 4; k++) {
        __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(v[k]), d);
        _mm256_storeu_ps(y + 8 * k, m ? _mm256_add_ps(p, *m) : p);
    }
}

static void row_dequantize_q4_1_avx2(const void *x, float *y, int64_t n) {
    const block_q4_1 *b = x;
    for (int64_t i = 0; i < n / QK4_1; i++, y += 32) {
        __m256 m = _mm256_set1_ps(f16s(b[i].m));
        store32(y, nibbles(b[i].qs), _mm256_set1_ps(f16s(b[i].d)), &m);
    }
}

static void row_dequantize_q5_0_avx2(const void *x, float *y, int64_t n) {
    const block_q5_0 *b = x;
    for (int64_t i = 0; i < n / QK5_0; i++, y += 32) {
        __m256i q = _mm256_sub_epi8(_mm256_or_si256(nibbles(b[i].qs), q5_high(b[i].qh)), _mm256_set1_epi8(16));
        store32(y, q, _mm256_set1_ps(f16s(b[i].d)), NULL);
    }
}

static void row_dequantize_q5_1_avx2(const void *x, float *y, int64_t n) {
    const block_q5_1 *b = x;
    for (int64_t i = 0; i < n / QK5_1; i++, y += 32) {
        __m256 m = _mm256_set1_ps(f16s(b[i].m));
        store32(y, _mm256_or_si256(nibbles(b[i].qs), q5_high(b[i].qh)), _mm256_set1_ps(f16s(b[i].d)), &m);
    }
}

static void row_dequantize_iq4_nl_avx2(const void *x, float *y, int64_t n) {
    const block_iq4_nl *b = x;
    for (int64_t i = 0; i < n / QK4_NL; i++, y += 32) store32(y, iq4_levels(b[i].qs), _mm256_set1_ps(f16s(b[i].d)), NULL);
}

static void row_dequantize_iq4_xs_avx2(const void *x, float *y, int64_t n) {
    const block_iq4_xs *b = x;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = f16s(b[i].d);
        for (int ib = 0; ib < QK_K / 32; ib++, y += 32) {
            int ls = iq4_xs_scale(&b[i], ib);
            store32(y, iq4_levels(b[i].qs + 16 * ib), _mm256_set1_ps(d * (float)(ls - 32)), NULL);
        }
    }
}

/* ---- batched dots (gemm, kernels.h) ----------------------------------------------------------------
 * The activation rows are used as they come (the vec_dot type's row, copied); per weight row, each block
 * is unpacked once and dotted with up to 8 tokens' blocks, each token's sum taking the very operations
 * of the dot above in the same order, so every result is bit-identical to dot's. */
#define GEMM_NT 8

static void gemm_pack_copy_q8_0(int64_t n, const void *x, void *xp) {
    memcpy(xp, x, (size_t)(n / QK8_0) * sizeof(block_q8_0));
}
static int64_t gemm_x_bytes_q8_0(int64_t n) {
    return n % QK8_0 ? 0 : n / QK8_0 * (int64_t)sizeof(block_q8_0);
}
static void gemm_pack_copy_q8_1(int64_t n, const void *x, void *xp) {
    memcpy(xp, x, (size_t)(n / QK8_1) * sizeof(block_q8_1));
}
static int64_t gemm_x_bytes_q8_1(int64_t n) {
    return n % QK8_1 ? 0 : n / QK8_1 * (int64_t)sizeof(block_q8_1);
}
static void gemm_pack_copy_q8_K(int64_t n, const void *x, void *xp) {
    memcpy(xp, x, (size_t)(n / QK_K) * sizeof(block_q8_K));
}
static int64_t gemm_x_bytes_q8_K(int64_t n) {
    return n % QK_K ? 0 : n / QK_K * (int64_t)sizeof(block_q8_K);
}

/* WT: weight block type, XT: activation block type, UNPACK(blk) -> __m256i, DOT: dot_i8_i8 / dot_u8_i8,
 * MIN: whether the block adds m_w * s_x (q4_1, q5_1) */
#define DEFINE_GEMM(name, WT, XT, UNPACK, DOT, MIN)                                                               \
    static void name(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,      \
                     int64_t xp_stride, float *y, int64_t ldy) {                                               \
        const int64_t nb = n / 32;                                                                             \
        for (int64_t r = 0; r < nr; r++) {                                                                     \
            const WT *a = (const WT *)((const uint8_t *)w + r * w_stride);                                     \
            for (int64_t t0 = 0; t0 < nt; t0 += GEMM_NT) {                                                     \
                int tn = nt - t0 < GEMM_NT ? (int)(nt - t0) : GEMM_NT;                                         \
                float acc[GEMM_NT] = {0};                                                                      \
                const XT *xb[GEMM_NT];                                                                         \
                for (int t = 0; t < tn; t++) xb[t] = (const XT *)((const uint8_t *)xp + (t0 + t) * xp_stride); \
                for (int64_t i = 0; i < nb; i++) {                                                             \
                    __m256i q = UNPACK(&a[i]);                                                                 \
                    float dw = f16s(a[i].d);                                                                   \
                    for (int t = 0; t < tn; t++) {                                                             \
                        int32_t si = DOT(q, xb[t][i].qs);                                                      \
                        if (MIN) acc[t] += (float)si * (dw * f16s(xb[t][i].d)) + MINTERM(a[i], xb[t][i]);       \
                        else acc[t] += (float)si * (dw * f16s(xb[t][i].d));                                     \
                    }                                                                                          \
                }                                                                                              \
                for (int t = 0; t < tn; t++) y[(t0 + t) * ldy + r] = acc[t];                                   \
            }                                                                                                  \
        }                                                                                                      \
    }

static inline __m256i unpack_q4_1(const block_q4_1 *b) {
    return nibbles(b->qs);
}
static inline __m256i unpack_q5_0(const block_q5_0 *b) {
    return _mm256_sub_epi8(_mm256_or_si256(nibbles(b->qs), q5_high(b->qh)), _mm256_set1_epi8(16));
}
static inline __m256i unpack_q5_1(const block_q5_1 *b) {
    return _mm256_or_si256(nibbles(b->qs), q5_high(b->qh));
}
static inline __m256i unpack_iq4_nl(const block_iq4_nl *b) {
    return iq4_levels(b->qs);
}
#define MINTERM(wb, xb_) (f16s((wb).m) * f16s((xb_).s))
DEFINE_GEMM(gemm_q4_1_avx2, block_q4_1, block_q8_1, unpack_q4_1, dot_u8_i8, 1)
DEFINE_GEMM(gemm_q5_1_avx2, block_q5_1, block_q8_1, unpack_q5_1, dot_u8_i8, 1)
#undef MINTERM
#define MINTERM(wb, xb_) 0.0f
DEFINE_GEMM(gemm_q5_0_avx2, block_q5_0, block_q8_0, unpack_q5_0, dot_i8_i8, 0)
DEFINE_GEMM(gemm_iq4_nl_avx2, block_iq4_nl, block_q8_0, unpack_iq4_nl, dot_i8_i8, 0)
#undef MINTERM

static void gemm_iq4_xs_avx2(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,
                             int64_t xp_stride, float *y, int64_t ldy) {
    const int64_t nb = n / QK_K;
    for (int64_t r = 0; r < nr; r++) {
        const block_iq4_xs *a = (const block_iq4_xs *)((const uint8_t *)w + r * w_stride);
        for (int64_t t0 = 0; t0 < nt; t0 += GEMM_NT) {
            int tn = nt - t0 < GEMM_NT ? (int)(nt - t0) : GEMM_NT;
            float acc[GEMM_NT] = {0};
            const block_q8_K *xb[GEMM_NT];
            for (int t = 0; t < tn; t++) xb[t] = (const block_q8_K *)((const uint8_t *)xp + (t0 + t) * xp_stride);
            for (int64_t i = 0; i < nb; i++) {
                __m256i q[8];
                int ls[8];
                for (int ib = 0; ib < 8; ib++) {
                    q[ib] = iq4_levels(a[i].qs + 16 * ib);
                    ls[ib] = iq4_xs_scale(&a[i], ib) - 32;
                }
                float dw = f16s(a[i].d);
                for (int t = 0; t < tn; t++) {
                    int32_t sum = 0;
                    for (int ib = 0; ib < 8; ib++) sum += ls[ib] * dot_i8_i8(q[ib], xb[t][i].qs + 32 * ib);
                    acc[t] += (float)sum * (dw * xb[t][i].d);
                }
            }
            for (int t = 0; t < tn; t++) y[(t0 + t) * ldy + r] = acc[t];
        }
    }
}

void kernels_fill_avx2_legacy(kernel_type_ops ops[KSLOT_COUNT]) {
    /* from_f32 stays the reference: these types are written offline (weights); q8_1 activations are
     * converted once per row, next to the dots' cost */
    ops[KSLOT_Q4_1].dot = dot_q4_1_avx2;
    ops[KSLOT_Q4_1].to_f32 = row_dequantize_q4_1_avx2;
    ops[KSLOT_Q5_0].dot = dot_q5_0_avx2;
    ops[KSLOT_Q5_0].to_f32 = row_dequantize_q5_0_avx2;
    ops[KSLOT_Q5_1].dot = dot_q5_1_avx2;
    ops[KSLOT_Q5_1].to_f32 = row_dequantize_q5_1_avx2;
    ops[KSLOT_IQ4_NL].dot = dot_iq4_nl_avx2;
    ops[KSLOT_IQ4_NL].to_f32 = row_dequantize_iq4_nl_avx2;
    ops[KSLOT_IQ4_XS].dot = dot_iq4_xs_avx2;
    ops[KSLOT_IQ4_XS].to_f32 = row_dequantize_iq4_xs_avx2;
#define SET_GEMM(slot, fn, X)                                                                                   \
    ops[slot].gemm = fn, ops[slot].gemm_x_bytes = gemm_x_bytes_##X, ops[slot].gemm_pack_x = gemm_pack_copy_##X
    SET_GEMM(KSLOT_Q4_1, gemm_q4_1_avx2, q8_1);
    SET_GEMM(KSLOT_Q5_0, gemm_q5_0_avx2, q8_0);
    SET_GEMM(KSLOT_Q5_1, gemm_q5_1_avx2, q8_1);
    SET_GEMM(KSLOT_IQ4_NL, gemm_iq4_nl_avx2, q8_0);
    SET_GEMM(KSLOT_IQ4_XS, gemm_iq4_xs_avx2, q8_K);
#undef SET_GEMM
}
