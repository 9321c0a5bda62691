/* AVX-512 dots of iq2_s and iq3_s with q8_K (iquants.h): two 32-blocks per 512-bit step, the grid
 * entries fetched by one gather (their indices computed in vector registers), the weight's signs applied as a
 * 64-bit mask (negate where set: mask_sub from zero; q8_K values are never -128), grid
 * coordinates times q8 summed in pairs by maddubs, times each 16 elements' odd scale ls and summed to i32 by
 * madd. The super-block's integer sum is exact and the float steps are the reference's, so each is
 * bit-identical to ref/iquants_ref.c (and to the AVX2 variant). Bounds as x86/iquants_avx2.c.
 * iq2_xxs, iq2_xs and iq3_xxs keep the AVX2 dots in the AVX-512 table: their signs come through ksigns_iq2xs
 * (7 stored bits per 8 weights), and building the 64-bit mask from it (8 scalar lookups, or a gather of
 * 0xff/0x00 byte tables and movepi8_mask) measured 30-50 % slower than the AVX2 kernel's sign_epi8 multipliers
 * (2026-12-03, one thread, 4096-wide rows in cache: iq2_xxs 22 ns per 256 weights in AVX2, 33-36 here). */
#include <immintrin.h>
#include <string.h>

#include "herd.h"
#include "../iquants.h"
#include "../kernels_impl.h"
#include "../kquants.h"
#include "../types.h"

/* an i16 multiplier vector: 16-element group g (0..3) of the two 32-blocks gets ls[g] */
static inline __m512i ls4(int l0, int l1, int l2, int l3) {
    const unsigned long long r = 0x0001000100010001ull;
    return _mm512_set_epi64((long long)(r * (unsigned)l3), (long long)(r * (unsigned)l3), (long long)(r * (unsigned)l2),
                            (long long)(r * (unsigned)l2), (long long)(r * (unsigned)l1), (long long)(r * (unsigned)l1),
                            (long long)(r * (unsigned)l0), (long long)(r * (unsigned)l0));
}

/* the term of two 32-blocks: sum_k ls_k * grid_k * (+-q8_k), exact, as 16 i32 lanes */
static inline __m512i pair_term(__m512i grid, const int8_t *q8p, __mmask64 neg, __m512i ls) {
    __m512i q8 = _mm512_loadu_si512((const void *)q8p);
    q8 = _mm512_mask_sub_epi8(q8, neg, _mm512_setzero_si512(), q8);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(grid, q8), ls);
}

static void dot_iq2_s_avx512(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq2_s *x = w;
    const block_q8_K *y = vy;
    const __m512i sh = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        const uint8_t *qs = x[i].qs, *signs = x[i].qs + QK_K / 8;
        __m512i acc = _mm512_setzero_si512();
        for (int b = 0; b < QK_K / 32; b += 2) {
            uint64_t q8b;
            memcpy(&q8b, qs + 4 * b, 8);
            __m512i hi = _mm512_srlv_epi64(_mm512_set1_epi64(x[i].qh[b] | x[i].qh[b + 1] << 8), sh);
            __m512i idx = _mm512_or_si512(_mm512_cvtepu8_epi64(_mm_cvtsi64_si128((long long)q8b)),
                                          _mm512_slli_epi64(_mm512_and_si512(hi, _mm512_set1_epi64(3)), 8));
            __m512i grid = _mm512_i64gather_epi64(idx, (const void *)iq2s_grid, 8);
            uint64_t m;
            memcpy(&m, signs + 4 * b, 8); /* the sign bits of the 64 elements, in order */
            uint8_t s0 = x[i].scales[b], s1 = x[i].scales[b + 1];
            acc = _mm512_add_epi32(acc, pair_term(grid, y[i].qs + 32 * b, (__mmask64)m,
                                                  ls4(2 * (s0 & 15) + 1, 2 * (s0 >> 4) + 1, 2 * (s1 & 15) + 1, 2 * (s1 >> 4) + 1)));
        }
        sumf += d * (float)_mm512_reduce_add_epi32(acc);
    }
    *out = 0.125f * sumf;
}

static void dot_iq3_s_avx512(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq3_s *x = w;
    const block_q8_K *y = vy;
    const __m512i sh = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        __m512i acc = _mm512_setzero_si512();
        for (int b = 0; b < QK_K / 32; b += 2) {
            /* index k of the 16: qs[8b + k] | bit k of (qh[b] | qh[b + 1] << 8), << 8 */
            __m512i hi = _mm512_srlv_epi32(_mm512_set1_epi32(x[i].qh[b] | x[i].qh[b + 1] << 8), sh);
            __m512i idx = _mm512_or_si512(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(x[i].qs + 8 * b))),
                                          _mm512_slli_epi32(_mm512_and_si512(hi, _mm512_set1_epi32(1)), 8));
            __m512i grid = _mm512_i32gather_epi32(idx, (const void *)iq3s_grid, 4);
            uint64_t m;
            memcpy(&m, x[i].signs + 4 * b, 8);
            int l0 = 2 * (x[i].scales[b / 2] & 15) + 1, l1 = 2 * (x[i].scales[b / 2] >> 4) + 1;
            acc = _mm512_add_epi32(acc, pair_term(grid, y[i].qs + 32 * b, (__mmask64)m, ls4(l0, l0, l1, l1)));
        }
        sumf += d * (float)_mm512_reduce_add_epi32(acc);
    }
    *out = sumf;
}

void kernels_fill_avx512_iquants(kernel_type_ops ops[KSLOT_COUNT]) {
    ops[KSLOT_IQ2_S].dot = dot_iq2_s_avx512;
    ops[KSLOT_IQ3_S].dot = dot_iq3_s_avx512;
}
