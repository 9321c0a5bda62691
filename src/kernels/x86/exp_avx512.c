/* kernel_vec_ops.exp_f32 with AVX-512 (reference: ref/exp_ref.c): the reference's operations lane by
 * lane — the same products, fused multiply-adds and rounding to nearest — so every element gets its
 * bits; the sum in 16 double lanes (two vectors of 8), element i in lane i % 16, as the reference sums. */
#include <immintrin.h>
#include <math.h>

#include "../kernels_impl.h"

static double exp_f32_avx512(int64_t n, const float *x, float scale, float sub, float *y) {
    const __m512 vscale = _mm512_set1_ps(scale), vsub = _mm512_set1_ps(sub), log2e = _mm512_set1_ps(1.44269504088896341f),
                 c1 = _mm512_set1_ps(-0.693359375f), c2 = _mm512_set1_ps(2.12194440e-4f),
                 p0 = _mm512_set1_ps(1.9875691500e-4f), p1 = _mm512_set1_ps(1.3981999507e-3f),
                 p2 = _mm512_set1_ps(8.3334519073e-3f), p3 = _mm512_set1_ps(4.1665795894e-2f),
                 p4 = _mm512_set1_ps(1.6666665459e-1f), p5 = _mm512_set1_ps(5.0000001201e-1f),
                 one = _mm512_set1_ps(1.0f), lo = _mm512_set1_ps(KERNEL_EXP_LO), hi = _mm512_set1_ps(KERNEL_EXP_HI),
                 inf = _mm512_set1_ps(INFINITY);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 t = _mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vscale), vsub);
        const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(t, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fmadd_ps(k, c1, t);
        r = _mm512_fmadd_ps(k, c2, r);
        __m512 p = _mm512_fmadd_ps(p0, r, p1);
        p = _mm512_fmadd_ps(p, r, p2);
        p = _mm512_fmadd_ps(p, r, p3);
        p = _mm512_fmadd_ps(p, r, p4);
        p = _mm512_fmadd_ps(p, r, p5);
        __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), one);
        /* k is integral: the conversion is exact; out-of-range lanes are replaced below */
        const __m512i two_k = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
        e = _mm512_mul_ps(e, _mm512_castsi512_ps(two_k));
        e = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(t, lo, _CMP_LT_OQ), e, _mm512_setzero_ps());
        e = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(t, hi, _CMP_GT_OQ), e, inf);
        e = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q), e, t);
        _mm512_mask_storeu_ps(y + i, m, e);
        e = _mm512_maskz_mov_ps(m, e); /* lanes past n add +0: the partial sums keep their bits */
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double s[16];
    _mm512_storeu_pd(s, s0);
    _mm512_storeu_pd(s + 8, s1);
    double sum = 0;
    for (int l = 0; l < 16; l++) sum += s[l];
    return sum;
}

void kernels_fill_exp_avx512(kernel_vec_ops *vec) { vec->exp_f32 = exp_f32_avx512; }
