/* FP8 E4M3 kernels, AVX2 + F16C (see ../fp8.h); compiled with -mavx2 -mfma -mf16c and installed
 * only when CPUID reports them. Tested against ref/fp8_ref.c by tests/unit/test_fp8.c.
 *
 * Decoding: an e4m3 byte becomes the f16 (b & 0x7f) << 7 | (b & 0x80) << 8, which is the e4m3 value
 * times 2^-8 exactly, subnormals included (both formats have 3 bits of mantissa under 2^-6 * 2^-8
 * and 2^-14), then vcvtph2ps makes it f32. Products of two such values are exact in f32 and at least
 * 2^-34 (no subnormals), so a dot differs from the double reference only by the f32 accumulation;
 * the 2^16 is multiplied back at the end. (The NaN code 0x7f decodes as 480 here; the rowwise
 * quantizers never write it.)
 * Encoding (activation rows) is bit-identical to fp8_e4m3_from_f32: normal values round their f32
 * mantissa to 3 bits by integer addition (ties to even), values under 2^-6 are rounded to a multiple
 * of 2^-9 by adding and subtracting 2^14 in f32 (round to nearest even, as MXCSR's default mode).
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "../fp8.h"
#include "../kernels_impl.h"

static inline void dec16(const uint8_t *p, __m256 *lo, __m256 *hi) {
    __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
    __m256i h = _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi16(b, 7), _mm256_set1_epi16(0x3f80)),
                                _mm256_and_si256(_mm256_slli_epi16(b, 8), _mm256_set1_epi16((short)0x8000)));
    *lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    *hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 4 accumulators over 32-element steps; the last partial step from zero-padded copies (0 is 0.0) */
static void dot_fp8_avx2(int64_t n, float *out, const void *w, const void *x) {
    const uint8_t *a = w, *b = (const uint8_t *)x + sizeof(float);
    float scale;
    memcpy(&scale, x, sizeof scale);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    __m256 a0, a1, b0, b1;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        dec16(a + i, &a0, &a1);
        dec16(b + i, &b0, &b1);
        acc0 = _mm256_fmadd_ps(a0, b0, acc0);
        acc1 = _mm256_fmadd_ps(a1, b1, acc1);
        dec16(a + i + 16, &a0, &a1);
        dec16(b + i + 16, &b0, &b1);
        acc2 = _mm256_fmadd_ps(a0, b0, acc2);
        acc3 = _mm256_fmadd_ps(a1, b1, acc3);
    }
    if (i < n) {
        uint8_t ta[32] = {0}, tb[32] = {0};
        memcpy(ta, a + i, (size_t)(n - i));
        memcpy(tb, b + i, (size_t)(n - i));
        for (int k = 0; k < n - i; k += 16) {
            dec16(ta + k, &a0, &a1);
            dec16(tb + k, &b0, &b1);
            acc0 = _mm256_fmadd_ps(a0, b0, acc0);
            acc1 = _mm256_fmadd_ps(a1, b1, acc1);
        }
    }
    *out = hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3))) * 65536.0f * scale;
}

/* e4m3 codes of 8 floats already clamped to [-448, 448] (one per 32-bit lane) */
static inline __m256i enc8(__m256 y) {
    __m256i u = _mm256_castps_si256(y);
    __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
    __m256i au = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    __m256i r = _mm256_add_epi32(
        au, _mm256_add_epi32(_mm256_set1_epi32(0x7ffff),
                             _mm256_and_si256(_mm256_srli_epi32(au, 20), _mm256_set1_epi32(1))));
    __m256i normal = _mm256_sub_epi32(_mm256_srli_epi32(r, 20), _mm256_set1_epi32(120 << 3));
    /* (a + 2^14) - 2^14 is a rounded to a multiple of 2^-9; times 512 the code (exact) */
    __m256 big = _mm256_set1_ps(16384.0f);
    __m256 t = _mm256_sub_ps(_mm256_add_ps(_mm256_castsi256_ps(au), big), big);
    __m256i sub = _mm256_cvtps_epi32(_mm256_mul_ps(t, _mm256_set1_ps(512.0f)));
    __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x3c800000), au); /* a < 2^-6 */
    return _mm256_or_si256(sign, _mm256_blendv_epi8(normal, sub, is_sub));
}

static void act_from_f32_ub_avx2(const float *x, void *y, int64_t n, float ub) {
    uint8_t *q = (uint8_t *)y + sizeof(float);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 mx = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(x + i), absmask));
    float amax = 0;
    float lanes[8];
    _mm256_storeu_ps(lanes, mx);
    for (int k = 0; k < 8; k++) amax = fmaxf(amax, lanes[k]);
    for (int64_t k = i; k < n; k++) amax = fmaxf(amax, fabsf(x[k]));
    float inv = fminf(FP8_E4M3_MAX / fminf(amax, ub), FP8_E4M3_MAX * 512.0f), scale = 1.0f / inv;
    memcpy(y, &scale, sizeof scale);
    const __m256 vinv = _mm256_set1_ps(inv), hi = _mm256_set1_ps(FP8_E4M3_MAX),
                 lo = _mm256_set1_ps(-FP8_E4M3_MAX);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv), lo), hi);
        __m256i c = enc8(v);
        __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        _mm_storel_epi64((__m128i *)(q + i), _mm_packus_epi16(p16, p16));
    }
    for (; i < n; i++) q[i] = fp8_e4m3_from_f32(fminf(fmaxf(x[i] * inv, -FP8_E4M3_MAX), FP8_E4M3_MAX));
}

void kernels_fill_fp8_avx2(kernel_type_ops ops[KSLOT_COUNT]) {
    ops[KSLOT_FP8].dot = dot_fp8_avx2;
    ops[KSLOT_FP8_ACT].from_f32_ub = act_from_f32_ub_avx2;
}
