/* AVX-512 dots of the low-bit i-quants with q8_K (iquants.h): two 32-blocks per 512-bit step, the weight's
 * signs applied as a 64-bit mask (negate where set: mask_sub from zero; q8_K values are never -128), grid
 * coordinates times q8 summed in pairs by maddubs, times each 16 elements' odd scale ls and summed to i32 by
 * madd. The super-block's integer sum is exact and the float steps are the reference's, so each is
 * bit-identical to ref/iquants_ref.c (and to the AVX2 variant). Bounds as x86/iquants_avx2.c. */
#include <immintrin.h>
#include <string.h>

#include "herd.h"
#include "../iquants.h"
#include "../kernels_impl.h"
#include "../kquants.h"
#include "../types.h"

static inline uint32_t rd32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

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

static inline __mmask64 ksigns8(uint32_t a, uint32_t b) { /* the 8 sign bytes of two ksigns words */
    uint64_t m = 0;
    for (int l = 0; l < 4; l++) {
        m |= (uint64_t)ksigns_iq2xs[(a >> 7 * l) & 127] << 8 * l;
        m |= (uint64_t)ksigns_iq2xs[(b >> 7 * l) & 127] << (8 * l + 32);
    }
    return (__mmask64)m;
}

static void dot_iq2_xxs_avx512(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq2_xxs *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        __m512i acc = _mm512_setzero_si512();
        for (int b = 0; b < QK_K / 32; b += 2) {
            uint32_t a0 = rd32(x[i].qs + 4 * b), a1 = rd32(x[i].qs + 4 * b + 2);
            uint32_t c0 = rd32(x[i].qs + 4 * b + 4), c1 = rd32(x[i].qs + 4 * b + 6);
            __m512i grid = _mm512_set_epi64(
                (long long)iq2xxs_grid[c0 >> 24], (long long)iq2xxs_grid[(c0 >> 16) & 255], (long long)iq2xxs_grid[(c0 >> 8) & 255],
                (long long)iq2xxs_grid[c0 & 255], (long long)iq2xxs_grid[a0 >> 24], (long long)iq2xxs_grid[(a0 >> 16) & 255],
                (long long)iq2xxs_grid[(a0 >> 8) & 255], (long long)iq2xxs_grid[a0 & 255]);
            int la = (int)(2 * (a1 >> 28) + 1), lc = (int)(2 * (c1 >> 28) + 1);
            acc = _mm512_add_epi32(acc, pair_term(grid, y[i].qs + 32 * b, ksigns8(a1, c1), ls4(la, la, lc, lc)));
        }
        sumf += d * (float)_mm512_reduce_add_epi32(acc);
    }
    *out = 0.125f * sumf;
}

static void dot_iq2_xs_avx512(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq2_xs *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        __m512i acc = _mm512_setzero_si512();
        for (int b = 0; b < QK_K / 32; b += 2) {
            const uint16_t *q = x[i].qs + 4 * b;
            __m512i grid = _mm512_set_epi64((long long)iq2xs_grid[q[7] & 511], (long long)iq2xs_grid[q[6] & 511],
                                            (long long)iq2xs_grid[q[5] & 511], (long long)iq2xs_grid[q[4] & 511],
                                            (long long)iq2xs_grid[q[3] & 511], (long long)iq2xs_grid[q[2] & 511],
                                            (long long)iq2xs_grid[q[1] & 511], (long long)iq2xs_grid[q[0] & 511]);
            uint64_t m = 0;
            for (int k = 0; k < 8; k++) m |= (uint64_t)ksigns_iq2xs[q[k] >> 9] << 8 * k;
            uint8_t s0 = x[i].scales[b], s1 = x[i].scales[b + 1];
            acc = _mm512_add_epi32(acc, pair_term(grid, y[i].qs + 32 * b, (__mmask64)m,
                                                  ls4(2 * (s0 & 15) + 1, 2 * (s0 >> 4) + 1, 2 * (s1 & 15) + 1, 2 * (s1 >> 4) + 1)));
        }
        sumf += d * (float)_mm512_reduce_add_epi32(acc);
    }
    *out = 0.125f * sumf;
}

static void dot_iq2_s_avx512(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq2_s *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        const uint8_t *qs = x[i].qs, *signs = x[i].qs + QK_K / 8;
        __m512i acc = _mm512_setzero_si512();
        for (int b = 0; b < QK_K / 32; b += 2) {
            long long g[8];
            for (int k = 0; k < 8; k++) g[k] = (long long)iq2s_grid[qs[4 * b + k] | ((x[i].qh[b + k / 4] >> 2 * (k % 4)) & 3) << 8];
            __m512i grid = _mm512_set_epi64(g[7], g[6], g[5], g[4], g[3], g[2], g[1], g[0]);
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

static void dot_iq3_xxs_avx512(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq3_xxs *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        const uint8_t *q3 = x[i].qs, *sas = x[i].qs + QK_K / 4;
        __m512i acc = _mm512_setzero_si512();
        for (int b = 0; b < QK_K / 32; b += 2, q3 += 16) {
            __m512i grid = _mm512_set_epi32(
                (int)iq3xxs_grid[q3[15]], (int)iq3xxs_grid[q3[14]], (int)iq3xxs_grid[q3[13]], (int)iq3xxs_grid[q3[12]],
                (int)iq3xxs_grid[q3[11]], (int)iq3xxs_grid[q3[10]], (int)iq3xxs_grid[q3[9]], (int)iq3xxs_grid[q3[8]],
                (int)iq3xxs_grid[q3[7]], (int)iq3xxs_grid[q3[6]], (int)iq3xxs_grid[q3[5]], (int)iq3xxs_grid[q3[4]],
                (int)iq3xxs_grid[q3[3]], (int)iq3xxs_grid[q3[2]], (int)iq3xxs_grid[q3[1]], (int)iq3xxs_grid[q3[0]]);
            uint32_t a = rd32(sas + 4 * b), c = rd32(sas + 4 * b + 4);
            int la = (int)(2 * (a >> 28) + 1), lc = (int)(2 * (c >> 28) + 1);
            acc = _mm512_add_epi32(acc, pair_term(grid, y[i].qs + 32 * b, ksigns8(a, c), ls4(la, la, lc, lc)));
        }
        sumf += d * (float)_mm512_reduce_add_epi32(acc);
    }
    *out = 0.25f * sumf;
}

static void dot_iq3_s_avx512(int64_t n, float *out, const void *w, const void *vy) {
    const block_iq3_s *x = w;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(x[i].d) * y[i].d;
        __m512i acc = _mm512_setzero_si512();
        for (int b = 0; b < QK_K / 32; b += 2) {
            const uint8_t *qs = x[i].qs + 8 * b;
            int g[16];
            for (int k = 0; k < 16; k++) g[k] = (int)iq3s_grid[qs[k] | ((x[i].qh[b + k / 8] >> (k % 8)) & 1) << 8];
            __m512i grid = _mm512_loadu_si512((const void *)g);
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
    ops[KSLOT_IQ2_XXS].dot = dot_iq2_xxs_avx512;
    ops[KSLOT_IQ2_XS].dot = dot_iq2_xs_avx512;
    ops[KSLOT_IQ2_S].dot = dot_iq2_s_avx512;
    ops[KSLOT_IQ3_XXS].dot = dot_iq3_xxs_avx512;
    ops[KSLOT_IQ3_S].dot = dot_iq3_s_avx512;
}
