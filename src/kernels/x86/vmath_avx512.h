/* AVX-512 elementwise math for files compiled with AVX512_FLAGS (see the Makefile): e^x for softmax
 * and the exact (erf) GELU, 16 lanes at a time, lanes never mixed. Self-contained: include it after
 * <immintrin.h>. Each function's scalar truth is the libm call named beside it; the accuracy bound is
 * given with it and tested against that call (tests/unit/test_deberta.c).
 *
 * These are static inline on purpose: they are a few instructions each, and an out-of-line call per
 * vector would cost as much as the arithmetic. */
#ifndef HERD_KERNELS_X86_VMATH_AVX512_H
#define HERD_KERNELS_X86_VMATH_AVX512_H

#include <immintrin.h>

/* e^x for x <= 0 (truth: expf). Cephes expf: Cody-Waite reduction by ln 2 (n = round(x / ln 2),
 * r = x - n ln 2 in two parts), a degree-7 polynomial on |r| <= ln 2 / 2, then scaled by 2^n
 * (vscalefps); ~1 ulp. Exactly 1 at 0, exactly 0 below -104 and for -inf. */
static inline __m512 vmath_exp_ps(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-104.0f);
    const __mmask16 live = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    x = _mm512_max_ps(x, lo);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_scalef_ps(live, y, n);
}

/* gelu(x) = 0.5 x (1 + erf(x / sqrt 2)) (truth: the same with erff). erfc(a) for a = |x| / sqrt 2 by
 * Abramowitz & Stegun 7.1.26: t = 1 / (1 + p a), erfc(a) = t (a1 + t (a2 + t (a3 + t (a4 + t a5))))
 * e^(-a^2), absolute error <= 1.5e-7 for all a >= 0; then 1 + erf = 2 - erfc(a) for x >= 0 and
 * erfc(a) itself for x < 0 (no cancellation on the negative side). In float the polynomial cancels
 * (terms ~1.4 summing to ~0.3): 1 + erf is within ~5e-7 (4 ulp at 1) near 0, so |error| <= ~3e-7 |x| + 1 ulp. */
static inline __m512 vmath_gelu_ps(__m512 x) {
    const __m512 a = _mm512_abs_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(a, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    const __m512 erfc = _mm512_mul_ps(_mm512_mul_ps(p, t), vmath_exp_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), a)));
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 one_erf = _mm512_mask_mov_ps(_mm512_sub_ps(_mm512_set1_ps(2.0f), erfc), neg, erfc);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), one_erf);
}

#endif
