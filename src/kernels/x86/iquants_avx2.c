/* AVX2 dots and gemms of the low-bit i-quants and the ternary types with q8_K (iquants.h), bit-identical to ref/iquants_ref.c:
 * each super-block's integer sum is exact here too (per 32-block: grid coordinates as unsigned bytes
 * times the q8 values with the weight's signs applied, pairs summed to i16 by maddubs, then multiplied
 * by the block's odd scale ls and summed to i32 by madd), and the float steps are the reference's.
 * Bounds: a maddubs pair is at most 2 * 62 * 127 = 15748 (< 2^15), an i32 lane at most 2 * 15748 * 31
 * per block; q8_K values are never -128 (kquants.h), so negating one by sign_epi8 cannot wrap. */
#include <immintrin.h>
#include <string.h>

#include "herd.h"
#include "../iquants.h"
#include "../kernels_impl.h"
#include "../kquants.h"
#include "../types.h"

/* g_bits64[s]: byte j = 0xff where bit j of s is set, else 0x01 (the multiplier sign_epi8 applies);
 * g_ksigns64[i] = g_bits64[ksigns_iq2xs[i]]. Filled once by kernels_fill_avx2_iquants (under the kernels'
 * pthread_once). */
static uint64_t g_bits64[256], g_ksigns64[128];

static void init_tables(void) {
    for (int s = 0; s < 256; s++) {
        uint64_t v = 0;
        for (int j = 0; j < 8; j++) v |= (uint64_t)(s >> j & 1 ? 0xff : 0x01) << 8 * j;
        g_bits64[s] = v;
    }
    for (int i = 0; i < 128; i++) g_ksigns64[i] = g_bits64[ksigns_iq2xs[i]];
}

static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline uint32_t rd32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ls1 for elements 0..15 of a 32-block, ls2 for 16..31, as the i16 multipliers of madd */
static inline __m256i ls_pair(int ls1, int ls2) {
    return _mm256_set_m128i(_mm_set1_epi16((short)ls2), _mm_set1_epi16((short)ls1));
}

/* the 32-block term: sum_k ls_k * grid_k * (q8_k * sign_k), exact, as 8 i32 lanes */
static inline __m256i block_term(__m256i grid, __m256i q8, __m256i sgn, __m256i ls) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(grid, _mm256_sign_epi8(q8, sgn)), ls);
}

/* ---- iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s: a super-block unpacked into 8 (grid, signs, ls) triples ---- */

typedef struct {
    __m256i grid[8], sgn[8], ls[8]; /* per 32-block: coordinates (u8), sign multipliers, i16 scales */
} iq_unpacked;

static inline void unpack_iq2_xxs(const block_iq2_xxs *x, iq_unpacked *u) {
    for (int b = 0; b < QK_K / 32; b++) {
        uint32_t a0 = rd32(x->qs + 4 * b), a1 = rd32(x->qs + 4 * b + 2);
        u->grid[b] = _mm256_set_epi64x((long long)iq2xxs_grid[a0 >> 24], (long long)iq2xxs_grid[(a0 >> 16) & 255],
                                       (long long)iq2xxs_grid[(a0 >> 8) & 255], (long long)iq2xxs_grid[a0 & 255]);
        u->sgn[b] = _mm256_set_epi64x((long long)g_ksigns64[(a1 >> 21) & 127], (long long)g_ksigns64[(a1 >> 14) & 127],
                                      (long long)g_ksigns64[(a1 >> 7) & 127], (long long)g_ksigns64[a1 & 127]);
        u->ls[b] = _mm256_set1_epi16((short)(2 * (a1 >> 28) + 1));
    }
}

static inline void unpack_iq2_xs(const block_iq2_xs *x, iq_unpacked *u) {
    for (int b = 0; b < QK_K / 32; b++) {
        const uint16_t *q = x->qs + 4 * b;
        u->grid[b] = _mm256_set_epi64x((long long)iq2xs_grid[q[3] & 511], (long long)iq2xs_grid[q[2] & 511],
                                       (long long)iq2xs_grid[q[1] & 511], (long long)iq2xs_grid[q[0] & 511]);
        u->sgn[b] = _mm256_set_epi64x((long long)g_ksigns64[q[3] >> 9], (long long)g_ksigns64[q[2] >> 9],
                                      (long long)g_ksigns64[q[1] >> 9], (long long)g_ksigns64[q[0] >> 9]);
        u->ls[b] = ls_pair(2 * (x->scales[b] & 15) + 1, 2 * (x->scales[b] >> 4) + 1);
    }
}

static inline void unpack_iq2_s(const block_iq2_s *x, iq_unpacked *u) {
    const uint8_t *qs = x->qs, *signs = x->qs + QK_K / 8;
    for (int b = 0; b < QK_K / 32; b++) {
        const int qh = x->qh[b];
        u->grid[b] = _mm256_set_epi64x((long long)iq2s_grid[qs[4 * b + 3] | (qh << 2 & 0x300)],
                                       (long long)iq2s_grid[qs[4 * b + 2] | (qh << 4 & 0x300)],
                                       (long long)iq2s_grid[qs[4 * b + 1] | (qh << 6 & 0x300)],
                                       (long long)iq2s_grid[qs[4 * b + 0] | (qh << 8 & 0x300)]);
        u->sgn[b] = _mm256_set_epi64x((long long)g_bits64[signs[4 * b + 3]], (long long)g_bits64[signs[4 * b + 2]],
                                      (long long)g_bits64[signs[4 * b + 1]], (long long)g_bits64[signs[4 * b + 0]]);
        u->ls[b] = ls_pair(2 * (x->scales[b] & 15) + 1, 2 * (x->scales[b] >> 4) + 1);
    }
}

static inline void unpack_iq3_xxs(const block_iq3_xxs *x, iq_unpacked *u) {
    const uint8_t *q3 = x->qs, *sas = x->qs + QK_K / 4;
    for (int b = 0; b < QK_K / 32; b++, q3 += 8) {
        uint32_t a = rd32(sas + 4 * b);
        u->grid[b] = _mm256_set_epi32((int)iq3xxs_grid[q3[7]], (int)iq3xxs_grid[q3[6]], (int)iq3xxs_grid[q3[5]],
                                      (int)iq3xxs_grid[q3[4]], (int)iq3xxs_grid[q3[3]], (int)iq3xxs_grid[q3[2]],
                                      (int)iq3xxs_grid[q3[1]], (int)iq3xxs_grid[q3[0]]);
        u->sgn[b] = _mm256_set_epi64x((long long)g_ksigns64[(a >> 21) & 127], (long long)g_ksigns64[(a >> 14) & 127],
                                      (long long)g_ksigns64[(a >> 7) & 127], (long long)g_ksigns64[a & 127]);
        u->ls[b] = _mm256_set1_epi16((short)(2 * (a >> 28) + 1));
    }
}

static inline void unpack_iq3_s(const block_iq3_s *x, iq_unpacked *u) {
    for (int b = 0; b < QK_K / 32; b++) {
        const uint8_t *qs = x->qs + 8 * b, *s = x->signs + 4 * b;
        const int qh = x->qh[b];
        u->grid[b] = _mm256_set_epi32((int)iq3s_grid[qs[7] | (qh << 1 & 256)], (int)iq3s_grid[qs[6] | (qh << 2 & 256)],
                                      (int)iq3s_grid[qs[5] | (qh << 3 & 256)], (int)iq3s_grid[qs[4] | (qh << 4 & 256)],
                                      (int)iq3s_grid[qs[3] | (qh << 5 & 256)], (int)iq3s_grid[qs[2] | (qh << 6 & 256)],
                                      (int)iq3s_grid[qs[1] | (qh << 7 & 256)], (int)iq3s_grid[qs[0] | (qh << 8 & 256)]);
        u->sgn[b] = _mm256_set_epi64x((long long)g_bits64[s[3]], (long long)g_bits64[s[2]], (long long)g_bits64[s[1]],
                                      (long long)g_bits64[s[0]]);
        u->ls[b] = _mm256_set1_epi16((short)(2 * ((x->scales[b / 2] >> 4 * (b % 2)) & 15) + 1));
    }
}

/* the exact integer sum of an unpacked super-block with a q8_K block's 256 values */
static inline int32_t sb_sum(const iq_unpacked *u, const int8_t *q8) {
    __m256i acc = _mm256_setzero_si256();
    for (int b = 0; b < QK_K / 32; b++)
        acc = _mm256_add_epi32(acc, block_term(u->grid[b], _mm256_loadu_si256((const __m256i *)(q8 + 32 * b)), u->sgn[b], u->ls[b]));
    return hsum_i32(acc);
}

/* dot: S += (d_w d_x) * bsum per super-block, result post * S (iquants.h). gemm (kernels.h): each weight
 * super-block unpacked once for up to GEMM_NT tokens, each token's sum the dot's operations in the dot's order,
 * so every result is bit-identical to dot's; the activation rows are the q8_K rows as they come. */
#define GEMM_NT 8
#define DEFINE_IQ(T, post)                                                                                      \
    static void dot_##T##_avx2(int64_t n, float *out, const void *w, const void *vy) {                          \
        const block_##T *x = w;                                                                                 \
        const block_q8_K *y = vy;                                                                               \
        iq_unpacked u;                                                                                          \
        float sumf = 0;                                                                                         \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                                \
            unpack_##T(&x[i], &u);                                                                              \
            const float d = fp16_to_fp32(x[i].d) * y[i].d;                                                      \
            sumf += d * (float)sb_sum(&u, y[i].qs);                                                             \
        }                                                                                                       \
        *out = (post) * sumf;                                                                                   \
    }                                                                                                           \
    static void gemm_##T##_avx2(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp, \
                                int64_t xp_stride, float *y, int64_t ldy) {                                     \
        iq_unpacked u;                                                                                          \
        for (int64_t r = 0; r < nr; r++) {                                                                      \
            const block_##T *x = (const block_##T *)((const uint8_t *)w + r * w_stride);                        \
            for (int64_t t0 = 0; t0 < nt; t0 += GEMM_NT) {                                                      \
                int tn = nt - t0 < GEMM_NT ? (int)(nt - t0) : GEMM_NT;                                          \
                float acc[GEMM_NT] = {0};                                                                       \
                const block_q8_K *xb[GEMM_NT];                                                                  \
                for (int t = 0; t < tn; t++) xb[t] = (const block_q8_K *)((const uint8_t *)xp + (t0 + t) * xp_stride); \
                for (int64_t i = 0; i < n / QK_K; i++) {                                                        \
                    unpack_##T(&x[i], &u);                                                                      \
                    const float dw = fp16_to_fp32(x[i].d);                                                      \
                    for (int t = 0; t < tn; t++) acc[t] += (dw * xb[t][i].d) * (float)sb_sum(&u, xb[t][i].qs);  \
                }                                                                                               \
                for (int t = 0; t < tn; t++) y[(t0 + t) * ldy + r] = (post) * acc[t];                           \
            }                                                                                                   \
        }                                                                                                       \
    }
DEFINE_IQ(iq2_xxs, 0.125f)
DEFINE_IQ(iq2_xs, 0.125f)
DEFINE_IQ(iq2_s, 0.125f)
DEFINE_IQ(iq3_xxs, 0.25f)
DEFINE_IQ(iq3_s, 1.0f)
#undef DEFINE_IQ

static void gemm_pack_copy_q8_K(int64_t n, const void *x, void *xp) {
    memcpy(xp, x, (size_t)(n / QK_K) * sizeof(block_q8_K));
}
static int64_t gemm_x_bytes_q8_K(int64_t n) {
    return n % QK_K ? 0 : n / QK_K * (int64_t)sizeof(block_q8_K);
}

/* ---- tq1_0, tq2_0, iq1_s, iq1_m: a super-block unpacked once (sb_unpacked), then one float term per q8_K
 * block (term_T), so dot and gemm share every operation and gemm is bit-identical to dot ---- */

typedef struct {
    __m256i a[8];  /* per 32-block: tq: the trits t (0..2, u8); iq1: the grid coordinates (-1, 0, 1 as i8) */
    __m256i s[8];  /* iq1_m: the four groups' delta signs as byte multipliers (+1 / -1) */
    __m256i ls[8]; /* iq1: the i16 scale multipliers of madd */
    int32_t dl[8]; /* iq1_s: ls * delta sign of the block */
    float d;       /* the weight's f16 super-block scale */
} sb_unpacked;

/* tq: sum (t - 1) q8 = sum t q8 - sum q8 (t unsigned for maddubs, at most 2 * 2 * 127 per pair; sum q8 from
 * the bsums); the float step is the reference's (float)sum * (d_w d_x) */
static inline float term_tq(const sb_unpacked *u, const block_q8_K *y) {
    const __m256i one16 = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (int b = 0; b < QK_K / 32; b++)
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u->a[b], _mm256_loadu_si256((const __m256i *)(y->qs + 32 * b))), one16));
    int32_t bs = 0;
    for (int g = 0; g < QK_K / 16; g++) bs += y->bsums[g];
    return (float)(hsum_i32(acc) - bs) * (u->d * y->d);
}
#define term_tq1_0 term_tq
#define term_tq2_0 term_tq

/* tq2_0: 32-block 4c + l is (qs[32c + m] >> 2l) & 3 */
static inline void unpack_tq2_0(const block_tq2_0 *x, sb_unpacked *u) {
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int c = 0; c < 2; c++) {
        __m256i qs = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
        for (int l = 0; l < 4; l++) u->a[4 * c + l] = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * l), m3);
    }
    u->d = fp16_to_fp32(x->d);
}

/* digit k of byte q, ((u8)(q * 3^k) * 3) >> 8, for every byte of v with mult's byte as 3^k (bytes may differ):
 * even and odd bytes each in a u16 lane, so the products cannot spill into a neighbour */
static inline __m256i tq1_digits(__m256i v, __m256i mult) {
    const __m256i lo = _mm256_set1_epi16(0xff), three = _mm256_set1_epi16(3);
    __m256i e = _mm256_and_si256(_mm256_mullo_epi16(_mm256_and_si256(v, lo), _mm256_and_si256(mult, lo)), lo);
    __m256i o = _mm256_and_si256(_mm256_mullo_epi16(_mm256_srli_epi16(v, 8), _mm256_srli_epi16(mult, 8)), lo);
    e = _mm256_srli_epi16(_mm256_mullo_epi16(e, three), 8);
    o = _mm256_srli_epi16(_mm256_mullo_epi16(o, three), 8);
    return _mm256_or_si256(e, _mm256_slli_epi16(o, 8));
}

/* tq1_0 (element order iquants.h): a[k] = digit k of qs[0..31] (k < 5); a[5] = digits 0 | 1 of qs[32..47] (the
 * two 128-bit lanes), a[6] = digits 2 | 3, a[7] = digit 4 of qs[32..47] | qh's 16 (byte 4k + j = digit k of qh[j]) */
static inline void unpack_tq1_0(const block_tq1_0 *x, sb_unpacked *u) {
    static const uint8_t p3[5] = {1, 3, 9, 27, 81};
    __m256i q0 = _mm256_loadu_si256((const __m256i *)x->qs);
    for (int k = 0; k < 5; k++) u->a[k] = tq1_digits(q0, _mm256_set1_epi8((char)p3[k]));
    __m128i q1 = _mm_loadu_si128((const __m128i *)(x->qs + 32));
    __m256i q11 = _mm256_set_m128i(q1, q1);
    u->a[5] = tq1_digits(q11, _mm256_set_m128i(_mm_set1_epi8(3), _mm_set1_epi8(1)));
    u->a[6] = tq1_digits(q11, _mm256_set_m128i(_mm_set1_epi8(27), _mm_set1_epi8(9)));
    uint32_t qh;
    memcpy(&qh, x->qh, 4);
    __m256i v7 = _mm256_set_m128i(_mm_set1_epi32((int)qh), q1);
    u->a[7] = tq1_digits(v7, _mm256_set_m128i(_mm_set_epi32(0x1b1b1b1b, 0x09090909, 0x03030303, 0x01010101), _mm_set1_epi8(81)));
    u->d = fp16_to_fp32(x->d);
}

/* iq1: grid coordinates are -1, 0, 1, so q8 * coordinate is sign_epi8(q8, grid); those products are summed
 * in pairs (maddubs with ones) and times ls (madd). The delta term of iq1_s comes from the q8 bsums as the
 * reference takes it; iq1_m's (a delta sign per group of 8) is a second such sum with the signs as multipliers. */
static inline void unpack_iq1_s(const block_iq1_s *x, sb_unpacked *u) {
    for (int b = 0; b < QK_K / 32; b++) {
        const uint16_t qh = x->qh[b];
        const uint8_t *qs = x->qs + 4 * b;
        u->a[b] = _mm256_set_epi64x((long long)iq1s_grid[qs[3] | ((qh >> 9) & 7) << 8], (long long)iq1s_grid[qs[2] | ((qh >> 6) & 7) << 8],
                                    (long long)iq1s_grid[qs[1] | ((qh >> 3) & 7) << 8], (long long)iq1s_grid[qs[0] | (qh & 7) << 8]);
        const int ls = 2 * ((qh >> 12) & 7) + 1;
        u->ls[b] = _mm256_set1_epi16((short)ls);
        u->dl[b] = ls * (qh & 0x8000 ? -1 : 1);
    }
    u->d = fp16_to_fp32(x->d);
}

static inline float term_iq1_s(const sb_unpacked *u, const block_q8_K *y) {
    const __m256i ones = _mm256_set1_epi8(1);
    __m256i acc = _mm256_setzero_si256();
    int32_t sumi1 = 0;
    for (int b = 0; b < QK_K / 32; b++) {
        __m256i q8 = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * b));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, _mm256_sign_epi8(q8, u->a[b])), u->ls[b]));
        sumi1 += u->dl[b] * (y->bsums[2 * b] + y->bsums[2 * b + 1]);
    }
    return u->d * y->d * ((float)hsum_i32(acc) + IQ1_DELTA * (float)sumi1);
}

static inline void unpack_iq1_m(const block_iq1_m *x, sb_unpacked *u) {
    uint16_t sc[4];
    memcpy(sc, x->scales, 8);
    const uint16_t dh = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
    const long long pos = 0x0101010101010101ll, neg = -1ll;
    for (int b = 0; b < QK_K / 32; b++) {
        const uint8_t *qs = x->qs + 4 * b, *qh = x->qh + 2 * b;
        u->a[b] = _mm256_set_epi64x((long long)iq1s_grid[qs[3] | (qh[1] << 4 & 0x700)], (long long)iq1s_grid[qs[2] | (qh[1] << 8 & 0x700)],
                                    (long long)iq1s_grid[qs[1] | (qh[0] << 4 & 0x700)], (long long)iq1s_grid[qs[0] | (qh[0] << 8 & 0x700)]);
        u->s[b] = _mm256_set_epi64x(qh[1] & 0x80 ? neg : pos, qh[1] & 0x08 ? neg : pos, qh[0] & 0x80 ? neg : pos, qh[0] & 0x08 ? neg : pos);
        u->ls[b] = ls_pair(2 * ((sc[b / 2] >> (6 * (b % 2))) & 7) + 1, 2 * ((sc[b / 2] >> (6 * (b % 2) + 3)) & 7) + 1);
    }
    u->d = fp16_to_fp32(dh);
}

static inline float term_iq1_m(const sb_unpacked *u, const block_q8_K *y) {
    const __m256i ones = _mm256_set1_epi8(1);
    __m256i acc1 = _mm256_setzero_si256(), acc2 = _mm256_setzero_si256();
    for (int b = 0; b < QK_K / 32; b++) {
        __m256i q8 = _mm256_loadu_si256((const __m256i *)(y->qs + 32 * b));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, _mm256_sign_epi8(q8, u->a[b])), u->ls[b]));
        acc2 = _mm256_add_epi32(acc2, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, _mm256_sign_epi8(q8, u->s[b])), u->ls[b]));
    }
    return u->d * y->d * ((float)hsum_i32(acc1) + IQ1_DELTA * (float)hsum_i32(acc2));
}

/* dot: S += term per super-block; gemm: each weight super-block unpacked once for up to GEMM_NT tokens, each
 * token's terms summed in the dot's order */
#define DEFINE_SB(T)                                                                                            \
    static void dot_##T##_avx2(int64_t n, float *out, const void *w, const void *vy) {                          \
        const block_##T *x = w;                                                                                 \
        const block_q8_K *y = vy;                                                                               \
        sb_unpacked u;                                                                                          \
        float sumf = 0;                                                                                         \
        for (int64_t i = 0; i < n / QK_K; i++) {                                                                \
            unpack_##T(&x[i], &u);                                                                              \
            sumf += term_##T(&u, &y[i]);                                                                        \
        }                                                                                                       \
        *out = sumf;                                                                                            \
    }                                                                                                           \
    static void gemm_##T##_avx2(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp, \
                                int64_t xp_stride, float *y, int64_t ldy) {                                     \
        sb_unpacked u;                                                                                          \
        for (int64_t r = 0; r < nr; r++) {                                                                      \
            const block_##T *x = (const block_##T *)((const uint8_t *)w + r * w_stride);                        \
            for (int64_t t0 = 0; t0 < nt; t0 += GEMM_NT) {                                                      \
                int tn = nt - t0 < GEMM_NT ? (int)(nt - t0) : GEMM_NT;                                          \
                float acc[GEMM_NT] = {0};                                                                       \
                const block_q8_K *xb[GEMM_NT];                                                                  \
                for (int t = 0; t < tn; t++) xb[t] = (const block_q8_K *)((const uint8_t *)xp + (t0 + t) * xp_stride); \
                for (int64_t i = 0; i < n / QK_K; i++) {                                                        \
                    unpack_##T(&x[i], &u);                                                                      \
                    for (int t = 0; t < tn; t++) acc[t] += term_##T(&u, &xb[t][i]);                             \
                }                                                                                               \
                for (int t = 0; t < tn; t++) y[(t0 + t) * ldy + r] = acc[t];                                    \
            }                                                                                                   \
        }                                                                                                       \
    }
DEFINE_SB(tq1_0)
DEFINE_SB(tq2_0)
DEFINE_SB(iq1_s)
DEFINE_SB(iq1_m)
#undef DEFINE_SB

void kernels_fill_avx2_iquants(kernel_type_ops ops[KSLOT_COUNT]) {
    init_tables();
#define SET(slot, T)                                                                                            \
    ops[slot].dot = dot_##T##_avx2, ops[slot].gemm = gemm_##T##_avx2, ops[slot].gemm_x_bytes = gemm_x_bytes_q8_K, \
    ops[slot].gemm_pack_x = gemm_pack_copy_q8_K
    SET(KSLOT_IQ2_XXS, iq2_xxs);
    SET(KSLOT_IQ2_XS, iq2_xs);
    SET(KSLOT_IQ2_S, iq2_s);
    SET(KSLOT_IQ3_XXS, iq3_xxs);
    SET(KSLOT_IQ3_S, iq3_s);
    SET(KSLOT_TQ1_0, tq1_0);
    SET(KSLOT_TQ2_0, tq2_0);
    SET(KSLOT_IQ1_S, iq1_s);
    SET(KSLOT_IQ1_M, iq1_m);
#undef SET
}
