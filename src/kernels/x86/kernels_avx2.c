/* AVX2 + FMA + F16C kernels (x86-64-v3). This file is compiled with -mavx2 -mfma -mf16c and its table is
 * installed by kernels.c only when CPUID reports all three. Every function has the signature of its scalar
 * reference in ref/kernels_ref.c and is tested against it by tests/unit/test_kernels.c.
 *
 * Determinism: every loop starts at element 0 with unaligned loads (no peeling to an alignment boundary)
 * and a partial last vector is read through a mask or a zero-padded copy, so which products meet in which
 * accumulator lane, and the order the lanes are finally added, is a function of n alone. The same row
 * therefore gives the same bits at any address and in any batch.
 *
 * Exactness: conversions (to_f32, from_f32) are bit-identical to the reference. Float dots differ from the
 * double-precision reference only by float rounding in the accumulators; quantized dots form each block's
 * integer sum exactly and differ only in how the per-block float terms are accumulated.
 */
#include <immintrin.h>
#include <string.h>

#include "../kernels_impl.h"
#include "../types.h"

/* ---- helpers ------------------------------------------------------------------------------------- */

/* k_tail_mask + 8 - r: the first r int32 lanes all-ones, the rest zero (0 <= r <= 8). */
static const int32_t k_tail_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline __m256i tail_mask8(int64_t r) {
    return _mm256_loadu_si256((const __m256i *)(k_tail_mask + 8 - r));
}

/* Fixed-order horizontal sum: (l0+l4)+(l2+l6) + (l1+l5)+(l3+l7). */
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 load_f16x8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* The last r < 8 halves of a row, zero-padded: F16C has no masked load, and reading past the row is not
 * allowed (it may end at a page boundary). */
static inline __m256 load_f16_tail(const uint16_t *p, int64_t r) {
    uint16_t buf[8] = {0};
    memcpy(buf, p, (size_t)r * sizeof *p);
    return load_f16x8(buf);
}

static inline float f16_scalar(uint16_t h) {
    return _cvtsh_ss(h);
}

/* ---- f32 ----------------------------------------------------------------------------------------- */

/* 4 accumulators x 8 lanes over 32-element steps, then 8-element steps into acc0, then a masked tail into
 * acc1. Every lane sees at most n/32 + 4 additions before the final 3-level tree. */
static float vdot_f32_avx2(int64_t n, const float *a, const float *b) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    if (i < n) {
        __m256i m = tail_mask8(n - i);
        acc1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), acc1);
    }
    return hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

static void dot_f32_avx2(int64_t n, float *out, const void *w, const void *x) {
    *out = vdot_f32_avx2(n, w, x);
}

/* ---- f16 ----------------------------------------------------------------------------------------- */

/* Products of two halves are exact in f32 (11 + 11 significant bits), so FMA rounds once per element. */
static void dot_f16_avx2(int64_t n, float *out, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load_f16x8(a + i), load_f16x8(b + i), acc0);
        acc1 = _mm256_fmadd_ps(load_f16x8(a + i + 8), load_f16x8(b + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_f16x8(a + i + 16), load_f16x8(b + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_f16x8(a + i + 24), load_f16x8(b + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_f16x8(a + i), load_f16x8(b + i), acc0);
    if (i < n) acc1 = _mm256_fmadd_ps(load_f16_tail(a + i, n - i), load_f16_tail(b + i, n - i), acc1);
    *out = hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

static float vdot_f16_f32_avx2(int64_t n, const uint16_t *a, const float *b) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(load_f16x8(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_f16x8(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_f16x8(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), acc0);
    if (i < n)
        acc1 =
            _mm256_fmadd_ps(load_f16_tail(a + i, n - i), _mm256_maskload_ps(b + i, tail_mask8(n - i)), acc1);
    return hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

/* F16C rounds to nearest even like fp32_to_fp16, and quiets NaNs the same way (sign | 0x7e00 | top
 * mantissa bits), so this is bit-identical as long as MXCSR keeps its default (no DAZ/FTZ). */
static void row_f32_to_f16_avx2(const float *x, void *y, int64_t n) {
    uint16_t *o = y;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(o + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) o[i] = fp32_to_fp16(x[i]);
}

/* vcvtph2ps sets the quiet bit of a signaling NaN; fp16_to_fp32 keeps it clear (it only moves the payload
 * up by 13 bits). For bit-identical rows, clear bit 22 again in lanes whose half was a signaling NaN:
 * exponent all ones, quiet bit 0x200 clear, payload nonzero. Dots skip this: NaN is NaN there. */
static inline __m256 f16x8_to_f32_exact(__m128i h) {
    __m128i exp_ok = _mm_cmpeq_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7e00)), _mm_set1_epi16(0x7c00));
    __m128i pay0 = _mm_cmpeq_epi16(_mm_and_si128(h, _mm_set1_epi16(0x1ff)), _mm_setzero_si128());
    __m256i snan = _mm256_cvtepi16_epi32(_mm_andnot_si128(pay0, exp_ok)); /* all ones in sNaN lanes */
    __m256 quiet = _mm256_castsi256_ps(_mm256_and_si256(snan, _mm256_set1_epi32(0x00400000)));
    return _mm256_andnot_ps(quiet, _mm256_cvtph_ps(h));
}

static void row_f16_to_f32_avx2(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, f16x8_to_f32_exact(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) y[i] = fp16_to_fp32(h[i]);
}

/* ---- bf16 ---------------------------------------------------------------------------------------- */

/* 16 bf16 in a 256-bit register as two vectors of 8 floats: the even elements (low halves of the 32-bit
 * lanes, shifted up) and the odd ones (high halves, low bits cleared). Pairing even with even and odd with
 * odd needs no shuffles; each conversion is exact, denormals included. */
static inline __m256 bf16_even(__m256i v) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static inline __m256 bf16_odd(__m256i v) {
    return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
}

static void dot_bf16_avx2(int64_t n, float *out, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i va = _mm256_loadu_si256((const __m256i *)(a + i)),
                vb = _mm256_loadu_si256((const __m256i *)(b + i));
        __m256i wa = _mm256_loadu_si256((const __m256i *)(a + i + 16));
        __m256i wb = _mm256_loadu_si256((const __m256i *)(b + i + 16));
        acc0 = _mm256_fmadd_ps(bf16_even(va), bf16_even(vb), acc0);
        acc1 = _mm256_fmadd_ps(bf16_odd(va), bf16_odd(vb), acc1);
        acc2 = _mm256_fmadd_ps(bf16_even(wa), bf16_even(wb), acc2);
        acc3 = _mm256_fmadd_ps(bf16_odd(wa), bf16_odd(wb), acc3);
    }
    if (i < n) { /* 1..31 left: at most two 16-element steps, the second one zero-padded */
        uint16_t ta[32] = {0}, tb[32] = {0};
        memcpy(ta, a + i, (size_t)(n - i) * 2);
        memcpy(tb, b + i, (size_t)(n - i) * 2);
        for (int k = 0; k < n - i; k += 16) {
            __m256i va = _mm256_loadu_si256((const __m256i *)(ta + k));
            __m256i vb = _mm256_loadu_si256((const __m256i *)(tb + k));
            acc0 = _mm256_fmadd_ps(bf16_even(va), bf16_even(vb), acc0);
            acc1 = _mm256_fmadd_ps(bf16_odd(va), bf16_odd(vb), acc1);
        }
    }
    *out = hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

/* fp32_to_bf16 on 8 lanes: round to nearest even by adding 0x7fff + (bit 16), NaNs become (u >> 16) | 64. */
static inline __m256i f32_to_bf16_lanes(__m256 f) {
    __m256i u = _mm256_castps_si256(f);
    __m256i hi = _mm256_srli_epi32(u, 16);
    __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(hi, _mm256_set1_epi32(1)));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    __m256i nan =
        _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(r, _mm256_or_si256(hi, _mm256_set1_epi32(64)), nan);
}

static void row_f32_to_bf16_avx2(const float *x, void *y, int64_t n) {
    uint16_t *o = y;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i lo = f32_to_bf16_lanes(_mm256_loadu_ps(x + i));
        __m256i hi = f32_to_bf16_lanes(_mm256_loadu_ps(x + i + 8));
        /* packus interleaves 128-bit lanes: [lo0-3 hi0-3 | lo4-7 hi4-7]; reorder the 64-bit quarters */
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), _MM_SHUFFLE(3, 1, 2, 0));
        _mm256_storeu_si256((__m256i *)(o + i), p);
    }
    for (; i < n; i++) o[i] = fp32_to_bf16(x[i]);
}

static void row_bf16_to_f32_avx2(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i)));
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) y[i] = bf16_to_fp32(h[i]);
}

/* ---- q8_0 ---------------------------------------------------------------------------------------- */

/* Integer dot of one q8_0 weight block with one q8_0 activation block as 8 int32 lanes (4 products each).
 * maddubs wants unsigned x signed bytes, so the weight's sign moves onto the activation: |w| * sign(x, w).
 * Exact whenever the activation has no -128 (sign() cannot negate it); our quantizer only produces
 * [-127, 127] since |x/d| <= 127. Weights may hold any int8, -128 included (|w| = 128 as unsigned). */
static inline __m256i q8_block_dot(const int8_t *wq, const int8_t *xq) {
    __m256i a = _mm256_loadu_si256((const __m256i *)wq), b = _mm256_loadu_si256((const __m256i *)xq);
    __m256i p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(b, a));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

/* d_w * d_x for 4 blocks, each product rounded once as in the reference: the 8 halves go through one
 * vcvtph2ps instead of 8 scalar conversions (the scales are 34 / 18 bytes apart, so they are inserted one
 * by one). */
static inline __m128 scales4(uint16_t w0, uint16_t w1, uint16_t w2, uint16_t w3, uint16_t x0, uint16_t x1,
                             uint16_t x2, uint16_t x3) {
    __m256 d = _mm256_cvtph_ps(_mm_setr_epi16((short)w0, (short)w1, (short)w2, (short)w3, (short)x0,
                                              (short)x1, (short)x2, (short)x3));
    return _mm_mul_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
}

/* Lane k of s in all 8 lanes. */
static inline __m256 lane_bcast(__m128 s, int k) {
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s), _mm256_set1_epi32(k));
}

/* acc += float(lanes) * scale; the lanes are exact in float (|lane| <= 4 * 128 * 128). */
static inline __m256 q8_block_fma(const block_q8_0 *a, const block_q8_0 *b, __m256 scale, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_block_dot(a->qs, b->qs)), scale, acc);
}

static inline __m256 scale1(uint16_t dw, uint16_t dx) {
    return _mm256_set1_ps(f16_scalar(dw) * f16_scalar(dx));
}

/* Block i goes to accumulator i mod 4, so the reduction order depends only on n. */
static void dot_q8_0_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_q8_0 *a = w, *b = x;
    const int64_t nb = n / QK8_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        __m128 s =
            scales4(a[i].d, a[i + 1].d, a[i + 2].d, a[i + 3].d, b[i].d, b[i + 1].d, b[i + 2].d, b[i + 3].d);
        acc0 = q8_block_fma(a + i, b + i, lane_bcast(s, 0), acc0);
        acc1 = q8_block_fma(a + i + 1, b + i + 1, lane_bcast(s, 1), acc1);
        acc2 = q8_block_fma(a + i + 2, b + i + 2, lane_bcast(s, 2), acc2);
        acc3 = q8_block_fma(a + i + 3, b + i + 3, lane_bcast(s, 3), acc3);
    }
    if (i < nb) acc0 = q8_block_fma(a + i, b + i, scale1(a[i].d, b[i].d), acc0);
    if (i + 1 < nb) acc1 = q8_block_fma(a + i + 1, b + i + 1, scale1(a[i + 1].d, b[i + 1].d), acc1);
    if (i + 2 < nb) acc2 = q8_block_fma(a + i + 2, b + i + 2, scale1(a[i + 2].d, b[i + 2].d), acc2);
    *out = hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

/* roundf() on 8 lanes: trunc(v) plus sign(v) when |v - trunc(v)| >= 0.5 (ties away from zero, as roundf;
 * the SIMD round instruction only offers ties-to-even). v - trunc(v) is exact in float, so the comparison
 * sees the true fraction and the result matches roundf for every input. */
static inline __m256 round_half_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), step));
}

/* row_quantize_q8_0_ref, bit for bit: amax with fmaxf's NaN-ignoring semantics (maxps returns its second
 * operand when the first is NaN, and the running max is always second), d = amax / 127 (a true division,
 * as the reference), id = 1 / d, q = roundf(x * id). Inf or NaN inputs are undefined in the reference too
 * (float -> int8 conversion out of range). */
static void row_quantize_q8_0_avx2(const float *x, void *y, int64_t n) {
    block_q8_0 *blk = y;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            m = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), m);
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        blk[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[k], _mm256_set1_ps(id))));
        /* packs work per 128-bit lane: bytes come out as [q0 0-3, q1 0-3, q2 0-3, q3 0-3 | q0 4-7, ...] */
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)blk[i].qs, p);
    }
}

/* d * (float)q with one rounding, as the reference. */
static void row_dequantize_q8_0_avx2(const void *x, float *y, int64_t n) {
    const block_q8_0 *blk = x;
    for (int64_t i = 0; i < n / QK8_0; i++, y += QK8_0) {
        __m256 d = _mm256_set1_ps(f16_scalar(blk[i].d));
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk[i].qs + 8 * k)));
            _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
        }
    }
}

/* ---- q4_0 ---------------------------------------------------------------------------------------- */

/* The 32 nibbles of a q4_0 block as unsigned bytes 0..15 in element order: [low nibbles | high nibbles]. */
static inline __m256i q4_nibbles(const uint8_t *qs) {
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}

/* sum (nib - 8) * x as 8 int32 lanes, exact for every int8 activation: maddubs(nib, x) - maddubs(8, x)
 * per byte pair stays within int16 (|.| <= 2 * 15 * 128 before, 2 * 8 * 128 after the subtraction). */
static inline __m256i q4_block_dot(const uint8_t *wq, const int8_t *xq) {
    __m256i b = _mm256_loadu_si256((const __m256i *)xq);
    __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q4_nibbles(wq), b),
                                   _mm256_maddubs_epi16(_mm256_set1_epi8(8), b));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

static inline __m256 q4_block_fma(const block_q4_0 *a, const block_q8_0 *b, __m256 scale, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_block_dot(a->qs, b->qs)), scale, acc);
}

/* Two blocks i, i+1 as 8 int32 lanes (0-3 block i, 4-7 block i+1), with half the widening work of two
 * q4_block_dot calls: one register holds both blocks' low nibbles (elements 0-15) and one their high
 * nibbles (16-31), 128-bit lane per block, so the activations are loaded as [x_i 0-15 | x_i+1 0-15] and
 * [x_i 16-31 | x_i+1 16-31] and one madd/convert serves both blocks. Exact, as q4_block_dot. */
static inline __m256i q4_pair_dot(const block_q4_0 *a, const block_q8_0 *b) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), k8 = _mm256_set1_epi8(8);
    __m256i raw = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)a[1].qs),
                                   _mm_loadu_si128((const __m128i *)a[0].qs));
    __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
    __m256i xlo = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)b[1].qs),
                                   _mm_loadu_si128((const __m128i *)b[0].qs));
    __m256i xhi = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(b[1].qs + 16)),
                                   _mm_loadu_si128((const __m128i *)(b[0].qs + 16)));
    __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(k8, xlo));
    p = _mm256_add_epi16(p, _mm256_sub_epi16(_mm256_maddubs_epi16(hi, xhi), _mm256_maddubs_epi16(k8, xhi)));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1)); /* |p| <= 2 * 2048: no int16 overflow */
}

/* [s[k] x 4 | s[k+1] x 4] */
static inline __m256 scale_pair4(__m128 s, int k) {
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s),
                                    _mm256_setr_epi32(k, k, k, k, k + 1, k + 1, k + 1, k + 1));
}

/* Groups of 4 blocks: pair 0 into acc0, pair 1 into acc1; then a last pair into acc2 and a last single
 * block into acc3. The order depends only on n. */
static void dot_q4_0_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_q4_0 *a = w;
    const block_q8_0 *b = x;
    const int64_t nb = n / QK4_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        __m128 s =
            scales4(a[i].d, a[i + 1].d, a[i + 2].d, a[i + 3].d, b[i].d, b[i + 1].d, b[i + 2].d, b[i + 3].d);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_pair_dot(a + i, b + i)), scale_pair4(s, 0), acc0);
        acc1 =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_pair_dot(a + i + 2, b + i + 2)), scale_pair4(s, 2), acc1);
    }
    if (i + 2 <= nb) {
        __m128 s = _mm_setr_ps(f16_scalar(a[i].d) * f16_scalar(b[i].d),
                               f16_scalar(a[i + 1].d) * f16_scalar(b[i + 1].d), 0, 0);
        acc2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_pair_dot(a + i, b + i)), scale_pair4(s, 0), acc2);
        i += 2;
    }
    if (i < nb) acc3 = q4_block_fma(a + i, b + i, scale1(a[i].d, b[i].d), acc3);
    *out = hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

static void row_dequantize_q4_0_avx2(const void *x, float *y, int64_t n) {
    const block_q4_0 *blk = x;
    for (int64_t i = 0; i < n / QK4_0; i++, y += QK4_0) {
        __m256 d = _mm256_set1_ps(f16_scalar(blk[i].d));
        __m256i q = _mm256_sub_epi8(q4_nibbles(blk[i].qs), _mm256_set1_epi8(8)); /* 32 x int8 in -8..7 */
        __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        __m256i q0 = _mm256_cvtepi8_epi32(lo), q1 = _mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8));
        __m256i q2 = _mm256_cvtepi8_epi32(hi), q3 = _mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8));
        _mm256_storeu_ps(y, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q0)));
        _mm256_storeu_ps(y + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q1)));
        _mm256_storeu_ps(y + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q2)));
        _mm256_storeu_ps(y + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q3)));
    }
}

/* ---- f32 row copy and axpy ----------------------------------------------------------------------- */

/* memcpy is already a streaming copy; a separate function only so the table names this ISA. */
static void row_f32_copy_avx2(const void *x, float *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

/* y += alpha * x with one FMA rounding per element (the reference rounds the product and the sum
 * separately), masked on the tail so every element gets the same formula whatever n is. */
static void axpy_f32_avx2(int64_t n, float alpha, const float *x, float *y) {
    const __m256 va = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        __m256i m = tail_mask8(n - i);
        _mm256_maskstore_ps(y + i, m,
                            _mm256_fmadd_ps(va, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m)));
    }
}

static void axpy_f16_avx2(int64_t n, float alpha, const uint16_t *x, float *y) {
    const __m256 va = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load_f16x8(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        __m256i m = tail_mask8(n - i);
        _mm256_maskstore_ps(y + i, m,
                            _mm256_fmadd_ps(va, load_f16_tail(x + i, n - i), _mm256_maskload_ps(y + i, m)));
    }
}

/* four independent 256-bit accumulators, 128 bytes a step: the loads, not the adds, are the limit */
static uint64_t read_sum_avx2(const void *p, int64_t n) {
    const uint8_t *b = p;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 128 <= n; i += 128) {
        s0 = _mm256_add_epi64(s0, _mm256_loadu_si256((const __m256i *)(b + i)));
        s1 = _mm256_add_epi64(s1, _mm256_loadu_si256((const __m256i *)(b + i + 32)));
        s2 = _mm256_add_epi64(s2, _mm256_loadu_si256((const __m256i *)(b + i + 64)));
        s3 = _mm256_add_epi64(s3, _mm256_loadu_si256((const __m256i *)(b + i + 96)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t w[4];
    _mm256_storeu_si256((__m256i *)w, s);
    return w[0] + w[1] + w[2] + w[3] + kernels_read_sum_ref(b + i, n - i);
}

void kernels_fill_avx2(kernel_type_ops ops[KSLOT_COUNT], kernel_vec_ops *vec) {
    ops[KSLOT_F32].dot = dot_f32_avx2;
    ops[KSLOT_F32].to_f32 = row_f32_copy_avx2;
    ops[KSLOT_F16].dot = dot_f16_avx2;
    ops[KSLOT_F16].to_f32 = row_f16_to_f32_avx2;
    ops[KSLOT_F16].from_f32 = row_f32_to_f16_avx2;
    ops[KSLOT_BF16].dot = dot_bf16_avx2;
    ops[KSLOT_BF16].to_f32 = row_bf16_to_f32_avx2;
    ops[KSLOT_BF16].from_f32 = row_f32_to_bf16_avx2;
    ops[KSLOT_Q8_0].dot = dot_q8_0_avx2;
    ops[KSLOT_Q8_0].to_f32 = row_dequantize_q8_0_avx2;
    ops[KSLOT_Q8_0].from_f32 = row_quantize_q8_0_avx2;
    ops[KSLOT_Q4_0].dot = dot_q4_0_avx2;
    ops[KSLOT_Q4_0].to_f32 = row_dequantize_q4_0_avx2;
    /* q4_0 from_f32 stays the reference: it writes weights (offline), never activations */
    vec->dot_f32 = vdot_f32_avx2;
    vec->dot_f16_f32 = vdot_f16_f32_avx2;
    vec->axpy_f32 = axpy_f32_avx2;
    vec->axpy_f16 = axpy_f16_avx2;
    vec->read_sum = read_sum_avx2;
}

/* Attention: the reference's per-query code (ref/attn_ref.c) on this table's dots and axpys. */
static void attn_avx2(const kernel_attn_kv *kv, int64_t nq, const float *const *q, const int64_t *n_kv,
                      float *const *o, float *scratch) {
    kernels_attn_generic(KERNEL_ISA_AVX2, kv, nq, q, n_kv, o, scratch);
}

void kernels_fill_attn_avx2(kernel_vec_ops *vec) {
    vec->attn = attn_avx2;
}
