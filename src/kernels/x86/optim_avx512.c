/* kernel_vec_ops.adamw_f32 and sumsq_f32 with AVX-512 (reference: ref/optim_ref.c): the same operations
 * lane by lane — products and sums rounded separately (no FMA), sqrt and division correctly rounded —
 * so every element gets the reference's bits. AdamW reads and writes four arrays: it is memory-bound
 * once vectorized (the scalar loop's two divisions and square root an element were not). */
#include <immintrin.h>

#include "../kernels_impl.h"

static void adamw_f32_avx512(int64_t n, float *w, const float *g, float *m, float *v, const kernel_adamw *c) {
    const __m512 decay = _mm512_set1_ps(c->decay), b1 = _mm512_set1_ps(c->b1), c1 = _mm512_set1_ps(c->c1),
                 b2 = _mm512_set1_ps(c->b2), c2 = _mm512_set1_ps(c->c2), bc2 = _mm512_set1_ps(c->bc2_sqrt),
                 eps = _mm512_set1_ps(c->eps), nstep = _mm512_set1_ps(-c->step_size);
    for (int64_t e = 0; e < n; e += 16) {
        const __mmask16 k = n - e >= 16 ? 0xFFFF : (__mmask16)((1u << (n - e)) - 1);
        const __m512 gv = _mm512_maskz_loadu_ps(k, g + e);
        const __m512 wv = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, w + e), decay);
        const __m512 mv = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, m + e), b1), _mm512_mul_ps(c1, gv));
        const __m512 vv = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, v + e), b2),
                                        _mm512_mul_ps(_mm512_mul_ps(c2, gv), gv));
        const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vv), bc2), eps);
        _mm512_mask_storeu_ps(w + e, k, _mm512_add_ps(wv, _mm512_mul_ps(nstep, _mm512_div_ps(mv, denom))));
        _mm512_mask_storeu_ps(m + e, k, mv);
        _mm512_mask_storeu_ps(v + e, k, vv);
    }
}

/* lane l of the 8-double accumulator is s[l]: element j goes to lane j % 8, as the reference sums */
static void sumsq_f32_avx512(int64_t n, const float *x, double s[8]) {
    __m512d acc = _mm512_loadu_pd(s);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m512d d = _mm512_cvtps_pd(_mm256_loadu_ps(x + j));
        acc = _mm512_add_pd(acc, _mm512_mul_pd(d, d));
    }
    _mm512_storeu_pd(s, acc);
    for (; j < n; j++) s[j % 8] += (double)x[j] * (double)x[j];
}

void kernels_fill_optim_avx512(kernel_vec_ops *vec) {
    vec->adamw_f32 = adamw_f32_avx512;
    vec->sumsq_f32 = sumsq_f32_avx512;
}
