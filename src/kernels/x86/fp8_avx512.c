/* FP8 E4M3 kernels, AVX-512 (F, BW, VL; see ../fp8.h and fp8_avx2.c for the decoding and encoding
 * arguments, which are the same here on 32 and 16 lanes). Tested against ref/fp8_ref.c by
 * tests/unit/test_fp8.c. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "../fp8.h"
#include "../kernels_impl.h"

/* 32 e4m3 bytes -> two vectors of 16 floats, each value times 2^-8 (exact) */
static inline void dec32(__m256i bytes, __m512 *lo, __m512 *hi) {
    __m512i b = _mm512_cvtepu8_epi16(bytes);
    __m512i h = _mm512_or_si512(_mm512_and_si512(_mm512_slli_epi16(b, 7), _mm512_set1_epi16(0x3f80)),
                                _mm512_and_si512(_mm512_slli_epi16(b, 8), _mm512_set1_epi16((short)0x8000)));
    *lo = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    *hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
}

static void dot_fp8_avx512(int64_t n, float *out, const void *w, const void *x) {
    const uint8_t *a = w, *b = (const uint8_t *)x + sizeof(float);
    float scale;
    memcpy(&scale, x, sizeof scale);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    __m512 a0, a1, b0, b1;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        dec32(_mm256_loadu_si256((const __m256i *)(a + i)), &a0, &a1);
        dec32(_mm256_loadu_si256((const __m256i *)(b + i)), &b0, &b1);
        acc0 = _mm512_fmadd_ps(a0, b0, acc0);
        acc1 = _mm512_fmadd_ps(a1, b1, acc1);
        dec32(_mm256_loadu_si256((const __m256i *)(a + i + 32)), &a0, &a1);
        dec32(_mm256_loadu_si256((const __m256i *)(b + i + 32)), &b0, &b1);
        acc2 = _mm512_fmadd_ps(a0, b0, acc2);
        acc3 = _mm512_fmadd_ps(a1, b1, acc3);
    }
    for (; i < n; i += 32) { /* at most two steps of 32, the last one masked (zero bytes are 0.0) */
        __mmask32 m = n - i >= 32 ? 0xffffffffu : (__mmask32)((1u << (n - i)) - 1);
        dec32(_mm256_maskz_loadu_epi8(m, a + i), &a0, &a1);
        dec32(_mm256_maskz_loadu_epi8(m, b + i), &b0, &b1);
        acc0 = _mm512_fmadd_ps(a0, b0, acc0);
        acc1 = _mm512_fmadd_ps(a1, b1, acc1);
    }
    *out = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3))) *
           65536.0f * scale;
}

static inline __m128i enc16(__m512 y) {
    __m512i u = _mm512_castps_si512(y);
    __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));
    __m512i au = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    __m512i r = _mm512_add_epi32(
        au, _mm512_add_epi32(_mm512_set1_epi32(0x7ffff),
                             _mm512_and_si512(_mm512_srli_epi32(au, 20), _mm512_set1_epi32(1))));
    __m512i code = _mm512_sub_epi32(_mm512_srli_epi32(r, 20), _mm512_set1_epi32(120 << 3));
    __m512 big = _mm512_set1_ps(16384.0f);
    __m512 t = _mm512_sub_ps(_mm512_add_ps(_mm512_castsi512_ps(au), big), big);
    __mmask16 is_sub = _mm512_cmplt_epi32_mask(au, _mm512_set1_epi32(0x3c800000)); /* a < 2^-6 */
    code = _mm512_mask_mov_epi32(code, is_sub, _mm512_cvtps_epi32(_mm512_mul_ps(t, _mm512_set1_ps(512.0f))));
    return _mm512_cvtepi32_epi8(_mm512_or_si512(sign, code));
}

static void act_from_f32_ub_avx512(const float *x, void *y, int64_t n, float ub) {
    uint8_t *q = (uint8_t *)y + sizeof(float);
    __m512 mx = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    if (i < n)
        mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << (n - i)) - 1), x + i)));
    float amax = _mm512_reduce_max_ps(mx);
    float inv = fminf(FP8_E4M3_MAX / fminf(amax, ub), FP8_E4M3_MAX * 512.0f), scale = 1.0f / inv;
    memcpy(y, &scale, sizeof scale);
    const __m512 vinv = _mm512_set1_ps(inv), hi = _mm512_set1_ps(FP8_E4M3_MAX),
                 lo = _mm512_set1_ps(-FP8_E4M3_MAX);
    for (i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vinv), lo), hi);
        _mm_mask_storeu_epi8(q + i, m, enc16(v));
    }
}

void kernels_fill_fp8_avx512(kernel_type_ops ops[KSLOT_COUNT]) {
    ops[KSLOT_FP8].dot = dot_fp8_avx512;
    ops[KSLOT_FP8_ACT].from_f32_ub = act_from_f32_ub_avx512;
}
