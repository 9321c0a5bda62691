/* AVX-512 kernels (F, BW, VL, DQ, VNNI, BF16 — Zen 4 / Ice Lake and later). This file is compiled with those
 * flags; kernels.c installs its table (on top of a copy of the AVX2 table) only when CPUID reports them all.
 *
 * Same rules as kernels_avx2.c: loops start at element 0 with unaligned loads, partial vectors go through
 * masked loads (which never touch the masked-off bytes), so the reduction order is a function of n alone;
 * conversions are bit-identical to the reference.
 *
 * Quantized dots use VNNI (vpdpbusd: u8 x s8, four products summed into each int32 lane without
 * intermediate saturation). bf16 dots use vdpbf16ps, which by definition treats bf16 subnormal inputs as
 * zero and flushes subnormal results to zero (it ignores MXCSR): a dot of values below 2^-126 in magnitude
 * reads them as 0. Real weights and activations never live there; the test accounts for it explicitly.
 */
#include <immintrin.h>
#include <string.h>

#include "../kernels_impl.h"
#include "../types.h"

/* ---- helpers ------------------------------------------------------------------------------------- */

static inline __mmask16 tail_mask16(int64_t r) { /* the first r of 16 lanes, 0 <= r <= 16 */
    return (__mmask16)((1u << r) - 1);
}

static inline __mmask32 tail_mask32(int64_t r) { /* the first r of 32 lanes, 0 <= r <= 32 */
    return (__mmask32)((1ull << r) - 1);
}

/* Fixed-order horizontal sum: the two 256-bit halves, then the AVX2 tree (see kernels_avx2.c). */
static inline float hsum16(__m512 v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float f16_scalar(uint16_t h) {
    return _cvtsh_ss(h);
}

static inline __m512 load_f16x16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static inline __m512 load_f16_tail(const uint16_t *p, int64_t r) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail_mask16(r), p));
}

/* ---- f32 ----------------------------------------------------------------------------------------- */

/* 4 accumulators x 16 lanes over 64-element steps, 16-element steps into acc0, a masked tail into acc1. */
static float vdot_f32_avx512(int64_t n, const float *a, const float *b) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
    }
    return hsum16(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

static void dot_f32_avx512(int64_t n, float *out, const void *w, const void *x) {
    *out = vdot_f32_avx512(n, w, x);
}

/* ---- f16 ----------------------------------------------------------------------------------------- */

static void dot_f16_avx512(int64_t n, float *out, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(load_f16x16(a + i), load_f16x16(b + i), acc0);
        acc1 = _mm512_fmadd_ps(load_f16x16(a + i + 16), load_f16x16(b + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(load_f16x16(a + i + 32), load_f16x16(b + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(load_f16x16(a + i + 48), load_f16x16(b + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(load_f16x16(a + i), load_f16x16(b + i), acc0);
    if (i < n) acc1 = _mm512_fmadd_ps(load_f16_tail(a + i, n - i), load_f16_tail(b + i, n - i), acc1);
    *out = hsum16(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

static float vdot_f16_f32_avx512(int64_t n, const uint16_t *a, const float *b) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(load_f16x16(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(load_f16x16(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(load_f16x16(a + i + 32), _mm512_loadu_ps(b + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(load_f16x16(a + i + 48), _mm512_loadu_ps(b + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(load_f16x16(a + i), _mm512_loadu_ps(b + i), acc0);
    if (i < n)
        acc1 = _mm512_fmadd_ps(load_f16_tail(a + i, n - i), _mm512_maskz_loadu_ps(tail_mask16(n - i), b + i),
                               acc1);
    return hsum16(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

/* See kernels_avx2.c: F16C/AVX-512 conversion rounds to nearest even and quiets NaNs like fp32_to_fp16. */
static void row_f32_to_f16_avx512(const float *x, void *y, int64_t n) {
    uint16_t *o = y;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(o + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        _mm256_mask_storeu_epi16(o + i, m,
                                 _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT));
    }
}

/* Keeps signaling NaNs signaling, as fp16_to_fp32 (see f16x8_to_f32_exact in kernels_avx2.c). */
static inline __m512 f16x16_to_f32_exact(__m256i h) {
    __mmask16 pay = _mm256_test_epi16_mask(h, _mm256_set1_epi16(0x1ff));
    __mmask16 snan = _mm256_mask_cmpeq_epi16_mask(pay, _mm256_and_si256(h, _mm256_set1_epi16(0x7e00)),
                                                  _mm256_set1_epi16(0x7c00));
    __m512i f = _mm512_castps_si512(_mm512_cvtph_ps(h));
    return _mm512_castsi512_ps(_mm512_mask_andnot_epi32(f, snan, _mm512_set1_epi32(0x00400000), f));
}

static void row_f16_to_f32_avx512(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, f16x16_to_f32_exact(_mm256_loadu_si256((const __m256i *)(h + i))));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, f16x16_to_f32_exact(_mm256_maskz_loadu_epi16(m, h + i)));
    }
}

/* ---- bf16 ---------------------------------------------------------------------------------------- */

/* vdpbf16ps: each of 16 lanes adds the products of one pair of bf16 elements (2 roundings per pair, as
 * per element in the f32 kernels). 4 accumulators over 128-element steps, 32-element steps into acc0, a
 * masked (zero-filled) tail into acc1. Subnormal bf16 inputs count as zero — see the top of the file. */
static inline __m512 bf16x32_fma(const uint16_t *a, const uint16_t *b, __m512 acc) {
    return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(a), (__m512bh)_mm512_loadu_si512(b));
}

static void dot_bf16_avx512(int64_t n, float *out, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 128 <= n; i += 128) {
        acc0 = bf16x32_fma(a + i, b + i, acc0);
        acc1 = bf16x32_fma(a + i + 32, b + i + 32, acc1);
        acc2 = bf16x32_fma(a + i + 64, b + i + 64, acc2);
        acc3 = bf16x32_fma(a + i + 96, b + i + 96, acc3);
    }
    for (; i + 32 <= n; i += 32) acc0 = bf16x32_fma(a + i, b + i, acc0);
    if (i < n) {
        __mmask32 m = tail_mask32(n - i);
        acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)_mm512_maskz_loadu_epi16(m, a + i),
                                (__m512bh)_mm512_maskz_loadu_epi16(m, b + i));
    }
    *out = hsum16(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

/* fp32_to_bf16 on 16 lanes with integer arithmetic. Not vcvtneps2bf16: that one flushes f32 subnormal
 * inputs to zero, and the reference rounds them. */
static inline __m256i f32_to_bf16_lanes(__m512 f) {
    __m512i u = _mm512_castps_si512(f);
    __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(64));
    return _mm512_cvtepi32_epi16(r);
}

static void row_f32_to_bf16_avx512(const float *x, void *y, int64_t n) {
    uint16_t *o = y;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(o + i), f32_to_bf16_lanes(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        _mm256_mask_storeu_epi16(o + i, m, f32_to_bf16_lanes(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static inline __m512 bf16x16_to_f32(__m256i v) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

static void row_bf16_to_f32_avx512(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, bf16x16_to_f32(_mm256_loadu_si256((const __m256i *)(h + i))));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, bf16x16_to_f32(_mm256_maskz_loadu_epi16(m, h + i)));
    }
}

/* ---- q8_0 and q4_0 dots -------------------------------------------------------------------------- */

/* Two blocks are handled per 512-bit register: lanes 0-7 hold block i's 8 int32 partial sums, lanes 8-15
 * block i+1's. The blocks are 34 (q8_0) or 18 (q4_0) bytes apart, so each half is loaded on its own. */
static inline __m512i load_q8_pair(const block_q8_0 *b) {
    __m256i lo = _mm256_loadu_si256((const __m256i *)b[0].qs),
            hi = _mm256_loadu_si256((const __m256i *)b[1].qs);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

static inline __m512i load_q8_one(const block_q8_0 *b) { /* upper half zero */
    return _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)b[0].qs));
}

/* The 64 nibbles of blocks i, i+1 as bytes 0..15 in element order, matching load_q8_pair:
 * [lo(i) | hi(i) | lo(i+1) | hi(i+1)], 16 bytes each. Each block's 16 bytes are broadcast to two 128-bit
 * lanes and the second lane of each is shifted down by 4. */
static inline __m512i q4_nibbles_pair(const block_q4_0 *a) {
    __m512i r = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)a[0].qs));
    r = _mm512_mask_broadcast_i32x4(r, 0xff00, _mm_loadu_si128((const __m128i *)a[1].qs));
    r = _mm512_mask_srli_epi16(r, 0xff00ff00u, r, 4);
    return _mm512_and_si512(r, _mm512_set1_epi8(0x0f));
}

static inline __m512i q4_nibbles_one(const block_q4_0 *a) { /* upper half zero */
    __m512i r = _mm512_maskz_broadcast_i32x4(0x00ff, _mm_loadu_si128((const __m128i *)a[0].qs));
    r = _mm512_mask_srli_epi16(r, 0x0000ff00u, r, 4);
    return _mm512_and_si512(r, _mm512_set1_epi8(0x0f));
}

/* sum w*x for signed bytes with vpdpbusd (unsigned x signed): w + 128 is a valid unsigned byte, so
 * dpbusd(w ^ 0x80, x) - dpbusd(128, x) = sum (w + 128) x - 128 sum x. Exact for every pair of int8 values
 * (-128 included), unlike the |w| * sign(x, w) trick, at the same instruction count (512-bit vpsignb
 * does not exist). */
static inline __m512i q8_pair_dot(__m512i wq, __m512i xq) {
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(wq, k80), xq);
    return _mm512_sub_epi32(s, _mm512_dpbusd_epi32(_mm512_setzero_si512(), k80, xq));
}

/* (nib - 8) * x summed: nibbles are already unsigned bytes, so dpbusd(nib, x) - dpbusd(8, x). Exact. */
static inline __m512i q4_pair_dot(__m512i nib, __m512i xq) {
    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nib, xq);
    return _mm512_sub_epi32(s, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), xq));
}

/* The f16 scales of 8 consecutive blocks as 8 floats, without 16 scalar loads and conversions: the scale
 * of block k sits at 16-bit word k * stride of the block array (stride 9 for q4_0's 18-byte blocks, 17 for
 * q8_0's 34-byte ones), so word permutes over 64-byte loads collect them. q4_0: words 0..63 (bytes
 * 0..127 of the 144 the 8 blocks span). q8_0: words 0..51 from bytes 0..127, 68..119 from 128..255 (of
 * 272). Exact: f16 -> f32 conversion. */
static const uint16_t k_q4_scale_words[32] = {0, 9, 18, 27, 36, 45, 54, 63};
/* blocks 0-3 from words 0..63 of the first 128 bytes, blocks 4-7 (words 68, 85, 102, 119) from the next */
static const uint16_t k_q8_scale_words[32] = {0, 17, 34, 51, 68 - 64, 85 - 64, 102 - 64, 119 - 64};

static inline __m256 q4_scales8(const block_q4_0 *a) {
    const __m512i idx = _mm512_loadu_si512(k_q4_scale_words);
    const char *p = (const char *)a;
    __m512i d = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx, _mm512_loadu_si512(p + 64));
    return _mm256_cvtph_ps(_mm512_castsi512_si128(d));
}

static inline __m256 q8_scales8(const block_q8_0 *b) {
    const __m512i idx = _mm512_loadu_si512(k_q8_scale_words);
    const char *p = (const char *)b;
    __m512i lo = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx, _mm512_loadu_si512(p + 64));
    __m512i hi = _mm512_permutex2var_epi16(_mm512_loadu_si512(p + 128), idx, _mm512_loadu_si512(p + 192));
    return _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_mask_blend_epi16(0xf0, lo, hi)));
}

/* [s[k] x 8 | s[k+1] x 8] from the 8 scales of a group (k even). */
static inline __m512 scale_pair_of8(__m256 s, int k) {
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    return _mm512_permutexvar_ps(_mm512_add_epi32(idx, _mm512_set1_epi32(k)), _mm512_castps256_ps512(s));
}

/* [s0 x 8 | s1 x 8] for a pair outside a group of 8. */
static inline __m512 scale_pair(float s0, float s1) {
    return _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
}

/* Groups of 8 blocks: scales d_w * d_x for all 8 at once (each product rounded once, as the reference),
 * pair p of the group into accumulator p. Then whole pairs into acc0 and a last odd block (upper half
 * zero) into acc1. The order depends only on n. The int32 lanes are exact in float (|lane| < 2^17). */
static void dot_q8_0_avx512(int64_t n, float *out, const void *w, const void *x) {
    const block_q8_0 *a = w, *b = x;
    const int64_t nb = n / QK8_0;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        __m256 s = _mm256_mul_ps(q8_scales8(a + i), q8_scales8(b + i));
        __m512 p0 = _mm512_cvtepi32_ps(q8_pair_dot(load_q8_pair(a + i), load_q8_pair(b + i)));
        __m512 p1 = _mm512_cvtepi32_ps(q8_pair_dot(load_q8_pair(a + i + 2), load_q8_pair(b + i + 2)));
        __m512 p2 = _mm512_cvtepi32_ps(q8_pair_dot(load_q8_pair(a + i + 4), load_q8_pair(b + i + 4)));
        __m512 p3 = _mm512_cvtepi32_ps(q8_pair_dot(load_q8_pair(a + i + 6), load_q8_pair(b + i + 6)));
        acc0 = _mm512_fmadd_ps(p0, scale_pair_of8(s, 0), acc0);
        acc1 = _mm512_fmadd_ps(p1, scale_pair_of8(s, 2), acc1);
        acc2 = _mm512_fmadd_ps(p2, scale_pair_of8(s, 4), acc2);
        acc3 = _mm512_fmadd_ps(p3, scale_pair_of8(s, 6), acc3);
    }
    for (; i + 2 <= nb; i += 2) {
        __m512 sp = scale_pair(f16_scalar(a[i].d) * f16_scalar(b[i].d),
                               f16_scalar(a[i + 1].d) * f16_scalar(b[i + 1].d));
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q8_pair_dot(load_q8_pair(a + i), load_q8_pair(b + i))), sp,
                               acc0);
    }
    if (i < nb) {
        __m512 s1 = _mm512_maskz_mov_ps(0x00ff, _mm512_set1_ps(f16_scalar(a[i].d) * f16_scalar(b[i].d)));
        acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q8_pair_dot(load_q8_one(a + i), load_q8_one(b + i))), s1,
                               acc1);
    }
    *out = hsum16(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

/* As dot_q8_0_avx512. */
static void dot_q4_0_avx512(int64_t n, float *out, const void *w, const void *x) {
    const block_q4_0 *a = w;
    const block_q8_0 *b = x;
    const int64_t nb = n / QK4_0;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        __m256 s = _mm256_mul_ps(q4_scales8(a + i), q8_scales8(b + i));
        __m512 p0 = _mm512_cvtepi32_ps(q4_pair_dot(q4_nibbles_pair(a + i), load_q8_pair(b + i)));
        __m512 p1 = _mm512_cvtepi32_ps(q4_pair_dot(q4_nibbles_pair(a + i + 2), load_q8_pair(b + i + 2)));
        __m512 p2 = _mm512_cvtepi32_ps(q4_pair_dot(q4_nibbles_pair(a + i + 4), load_q8_pair(b + i + 4)));
        __m512 p3 = _mm512_cvtepi32_ps(q4_pair_dot(q4_nibbles_pair(a + i + 6), load_q8_pair(b + i + 6)));
        acc0 = _mm512_fmadd_ps(p0, scale_pair_of8(s, 0), acc0);
        acc1 = _mm512_fmadd_ps(p1, scale_pair_of8(s, 2), acc1);
        acc2 = _mm512_fmadd_ps(p2, scale_pair_of8(s, 4), acc2);
        acc3 = _mm512_fmadd_ps(p3, scale_pair_of8(s, 6), acc3);
    }
    for (; i + 2 <= nb; i += 2) {
        __m512 sp = scale_pair(f16_scalar(a[i].d) * f16_scalar(b[i].d),
                               f16_scalar(a[i + 1].d) * f16_scalar(b[i + 1].d));
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4_pair_dot(q4_nibbles_pair(a + i), load_q8_pair(b + i))),
                               sp, acc0);
    }
    if (i < nb) {
        __m512 s1 = _mm512_maskz_mov_ps(0x00ff, _mm512_set1_ps(f16_scalar(a[i].d) * f16_scalar(b[i].d)));
        acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q4_pair_dot(q4_nibbles_one(a + i), load_q8_one(b + i))), s1,
                               acc1);
    }
    *out = hsum16(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

/* ---- q8_0 / q4_0 conversions --------------------------------------------------------------------- */

/* roundf() on 16 lanes; see round_half_away in kernels_avx2.c for why this is exact. */
static inline __m512 round_half_away(__m512 v) {
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512 step = _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u)),
                        _mm512_castps_si512(_mm512_set1_ps(1.0f))));
    return _mm512_mask_add_ps(t, up, t, step);
}

/* row_quantize_q8_0_ref bit for bit (see row_quantize_q8_0_avx2 for the NaN-ignoring max). */
static void row_quantize_q8_0_avx512(const float *x, void *y, int64_t n) {
    block_q8_0 *blk = y;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        __m512 m = _mm512_max_ps(_mm512_abs_ps(v1), _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps()));
        __m256 m8 = _mm256_max_ps(_mm512_castps512_ps256(m), _mm512_extractf32x8_ps(m, 1));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        blk[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        __m512 vid = _mm512_set1_ps(id);
        __m128i q0 = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v0, vid))));
        __m128i q1 = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v1, vid))));
        _mm256_storeu_si256((__m256i *)blk[i].qs, _mm256_set_m128i(q1, q0));
    }
}

static void row_dequantize_q8_0_avx512(const void *x, float *y, int64_t n) {
    const block_q8_0 *blk = x;
    for (int64_t i = 0; i < n / QK8_0; i++, y += QK8_0) {
        __m512 d = _mm512_set1_ps(f16_scalar(blk[i].d));
        __m512i q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)blk[i].qs));
        __m512i q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk[i].qs + 16)));
        _mm512_storeu_ps(y, _mm512_mul_ps(d, _mm512_cvtepi32_ps(q0)));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(q1)));
    }
}

static void row_dequantize_q4_0_avx512(const void *x, float *y, int64_t n) {
    const block_q4_0 *blk = x;
    for (int64_t i = 0; i < n / QK4_0; i++, y += QK4_0) {
        __m512 d = _mm512_set1_ps(f16_scalar(blk[i].d));
        __m128i raw = _mm_loadu_si128((const __m128i *)blk[i].qs);
        __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
        __m256i q = _mm256_sub_epi8(nib, _mm256_set1_epi8(8)); /* 32 x int8 in -8..7, element order */
        __m512i q0 = _mm512_cvtepi8_epi32(_mm256_castsi256_si128(q));
        __m512i q1 = _mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1));
        _mm512_storeu_ps(y, _mm512_mul_ps(d, _mm512_cvtepi32_ps(q0)));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(q1)));
    }
}

/* ---- axpy ---------------------------------------------------------------------------------------- */

/* y += alpha * x, one FMA rounding per element, masked tail (see axpy_f32_avx2). */
static void axpy_f32_avx512(int64_t n, float alpha, const float *x, float *y) {
    const __m512 va = _mm512_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        _mm512_mask_storeu_ps(
            y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

static void axpy_f16_avx512(int64_t n, float alpha, const uint16_t *x, float *y) {
    const __m512 va = _mm512_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, load_f16x16(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tail_mask16(n - i);
        _mm512_mask_storeu_ps(
            y + i, m, _mm512_fmadd_ps(va, load_f16_tail(x + i, n - i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

/* four independent 512-bit accumulators, 256 bytes a step */
static uint64_t read_sum_avx512(const void *p, int64_t n) {
    const uint8_t *b = p;
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 256 <= n; i += 256) {
        s0 = _mm512_add_epi64(s0, _mm512_loadu_si512(b + i));
        s1 = _mm512_add_epi64(s1, _mm512_loadu_si512(b + i + 64));
        s2 = _mm512_add_epi64(s2, _mm512_loadu_si512(b + i + 128));
        s3 = _mm512_add_epi64(s3, _mm512_loadu_si512(b + i + 192));
    }
    /* lanes summed as unsigned: _mm512_reduce_add_epi64 adds signed long longs, whose wrap is UB */
    uint64_t w[8], t = kernels_read_sum_ref(b + i, n - i);
    _mm512_storeu_si512(w, _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
    for (int k = 0; k < 8; k++) t += w[k];
    return t;
}

/* kernels_argmax_f32_ref's answer in two passes: the largest value m (max_ps(x, m) is x > m ? x : m, so a
 * NaN in x leaves m as it was, like the scan; m starts at x[0], which is not NaN here), then the first
 * i with x[i] == m (the scan stops moving at the first value equal to the final maximum). The second
 * pass usually ends early; both read 16 floats a step, the tail under a mask. */
static int64_t argmax_f32_avx512(int64_t n, const float *x) {
    if (x[0] != x[0]) return 0; /* NaN first: nothing compares greater */
    __m512 m0 = _mm512_set1_ps(x[0]), m1 = m0, m2 = m0, m3 = m0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
        m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
        m2 = _mm512_max_ps(_mm512_loadu_ps(x + i + 32), m2);
        m3 = _mm512_max_ps(_mm512_loadu_ps(x + i + 48), m3);
    }
    for (; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        m0 = _mm512_mask_max_ps(m0, k, _mm512_maskz_loadu_ps(k, x + i), m0);
    }
    /* no lane holds a NaN, so the order of the reduction does not matter */
    const float m = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
    const __m512 vm = _mm512_set1_ps(m);
    for (i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __mmask16 eq = _mm512_mask_cmp_ps_mask(k, _mm512_maskz_loadu_ps(k, x + i), vm, _CMP_EQ_OQ);
        if (eq) return i + __builtin_ctz(eq);
    }
    return 0; /* unreachable: m is one of the values */
}

void kernels_fill_avx512(kernel_type_ops ops[KSLOT_COUNT], kernel_vec_ops *vec) {
    /* f32 to_f32 (a memcpy) and q4_0 from_f32 (offline weight writing) stay as inherited from avx2 */
    ops[KSLOT_F32].dot = dot_f32_avx512;
    ops[KSLOT_F16].dot = dot_f16_avx512;
    ops[KSLOT_F16].to_f32 = row_f16_to_f32_avx512;
    ops[KSLOT_F16].from_f32 = row_f32_to_f16_avx512;
    ops[KSLOT_BF16].dot = dot_bf16_avx512;
    ops[KSLOT_BF16].to_f32 = row_bf16_to_f32_avx512;
    ops[KSLOT_BF16].from_f32 = row_f32_to_bf16_avx512;
    ops[KSLOT_Q8_0].dot = dot_q8_0_avx512;
    ops[KSLOT_Q8_0].to_f32 = row_dequantize_q8_0_avx512;
    ops[KSLOT_Q8_0].from_f32 = row_quantize_q8_0_avx512;
    ops[KSLOT_Q4_0].dot = dot_q4_0_avx512;
    ops[KSLOT_Q4_0].to_f32 = row_dequantize_q4_0_avx512;
    vec->dot_f32 = vdot_f32_avx512;
    vec->dot_f16_f32 = vdot_f16_f32_avx512;
    vec->axpy_f32 = axpy_f32_avx512;
    vec->axpy_f16 = axpy_f16_avx512;
    vec->read_sum = read_sum_avx512;
    vec->argmax_f32 = argmax_f32_avx512;
}
