/* deberta_kern.h's functions with AVX-512 (compiled with AVX512_FLAGS; called only when
 * kernels_active_isa() is KERNEL_ISA_AVX512). */
#include <immintrin.h>
#include <math.h>

#include "../kernels/x86/vmath_avx512.h"
#include "deberta_kern.h"

static inline __mmask16 tail(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

/* Three passes over the row (it stays in L1: T <= a few thousand floats): the scores with both
 * gathers (c2p from its row, p2c from rows j, j + 1, ... of p2c at index j * ldp + r[j]) and their
 * maximum; e^(s - max) and its sum; the scaling. Masked lanes past T are never stored. */
void deberta_row_avx512(int64_t T, float *s, const float *c2p, const float *p2c, int64_t ldp, const int32_t *r, float inv) {
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i lane_r = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                              _mm512_set1_epi32((int)ldp));
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < T; j += 16) {
        const __mmask16 k = tail(T - j);
        __m512 v = _mm512_maskz_loadu_ps(k, s + j);
        if (c2p || p2c) {
            const __m512i ri = _mm512_maskz_loadu_epi32(k, r + j);
            if (c2p) v = _mm512_add_ps(v, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, ri, c2p, 4));
            if (p2c) {
                const __m512i idx = _mm512_add_epi32(_mm512_add_epi32(ri, lane_r), _mm512_set1_epi32((int)(j * ldp)));
                v = _mm512_add_ps(v, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, p2c, 4));
            }
        }
        v = _mm512_mul_ps(v, vinv);
        _mm512_mask_storeu_ps(s + j, k, v);
        vmax = _mm512_mask_max_ps(vmax, k, vmax, v);
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t j = 0; j < T; j += 16) {
        const __mmask16 k = tail(T - j);
        const __m512 e = _mm512_maskz_mov_ps(k, vmath_exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), mx)));
        _mm512_mask_storeu_ps(s + j, k, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    const __m512 is = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (int64_t j = 0; j < T; j += 16) {
        const __mmask16 k = tail(T - j);
        _mm512_mask_storeu_ps(s + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, s + j), is));
    }
}

void deberta_gelu_avx512(int64_t n, float *x) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail(n - i);
        _mm512_mask_storeu_ps(x + i, k, vmath_gelu_ps(_mm512_maskz_loadu_ps(k, x + i)));
    }
}
