/* AVX2 dots and gemms of q1_0 and q2_0 with q8_0 (bitquants.h), bit-identical to ref/bitquants_ref.c: each
 * 32-element piece of a weight block becomes 32 signed bytes w_int (q1_0: +-1, q2_0: t - 1 in -1..2), its
 * integer sum with the q8_0 block exact (|w_int| as unsigned times q8 with w_int's sign, pairs by maddubs:
 * at most 2 * 2 * 127; q8_0 values are never -128), and the float steps are the reference's. gemm (kernels.h):
 * a weight block unpacked once for up to 8 tokens, each token's term computed as in dot. */
#include <immintrin.h>
#include <string.h>

#include "herd.h"
#include "../bitquants.h"
#include "../kernels_impl.h"
#include "../types.h"

static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* sum_j s[j] * q[j], s int8 with |s| <= 2, q the 32 values of a q8_0 block: exact */
static inline int32_t dot_s8(__m256i s, const int8_t *q) {
    __m256i x = _mm256_loadu_si256((const __m256i *)q);
    return hsum_i32(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(s), _mm256_sign_epi8(x, s)), _mm256_set1_epi16(1)));
}

/* q1_0: the 32 bits of piece k (qs[4k .. 4k + 3], bit j of the u32 = element j) as +1 / -1 bytes */
static inline __m256i q1_piece(const uint8_t *qs4) {
    uint32_t bits;
    memcpy(&bits, qs4, 4);
    /* byte e gets byte e / 8 of the u32 (each 128-bit lane holds all four), then tests bit e % 8 */
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                                         3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), sel), bit);
    __m256i on = _mm256_cmpeq_epi8(b, bit); /* 0xff where set */
    return _mm256_sub_epi8(_mm256_and_si256(on, _mm256_set1_epi8(2)), _mm256_set1_epi8(1));
}

/* q2_0: the 8 bytes of piece k (qs[8k ..]) hold element 4b + l at bits 2l of byte b. Byte b zero-extended
 * into dword b, then dword | dword << 6 | << 12 | << 18 puts bits 2l, 2l + 1 at bits 0, 1 of byte l (no other
 * copy reaches those two bits: the byte is < 256), masked, minus 1 */
static inline __m256i q2_piece(const uint8_t *qs8) {
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)qs8));
    v = _mm256_or_si256(_mm256_or_si256(v, _mm256_slli_epi32(v, 6)), _mm256_or_si256(_mm256_slli_epi32(v, 12), _mm256_slli_epi32(v, 18)));
    return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(3)), _mm256_set1_epi8(1));
}

/* a weight block unpacked: its pieces as signed bytes and its scale */
typedef struct {
    __m256i s[4];
    float d;
} bq_unpacked;

static inline void unpack_q1_0(const block_q1_0 *x, bq_unpacked *u) {
    for (int k = 0; k < 4; k++) u->s[k] = q1_piece(x->qs + 4 * k);
    u->d = _cvtsh_ss(x->d);
}

static inline void unpack_q2_0(const block_q2_0 *x, bq_unpacked *u) {
    for (int k = 0; k < 2; k++) u->s[k] = q2_piece(x->qs + 8 * k);
    u->d = _cvtsh_ss(x->d);
}

/* the block's term d_w * sumi over its NP q8_0 blocks y[0 .. NP - 1] (the reference's float steps) */
static inline float term(const bq_unpacked *u, const block_q8_0 *y, int np) {
    float sumi = 0;
    for (int k = 0; k < np; k++) sumi += _cvtsh_ss(y[k].d) * (float)dot_s8(u->s[k], y[k].qs);
    return u->d * sumi;
}

#define GEMM_NT 8
#define DEFINE_BQ(T, QK, NP)                                                                                    \
    static void dot_##T##_avx2(int64_t n, float *out, const void *w, const void *vy) {                          \
        const block_##T *x = w;                                                                                 \
        const block_q8_0 *y = vy;                                                                               \
        bq_unpacked u;                                                                                          \
        float sumf = 0;                                                                                         \
        for (int64_t i = 0; i < n / (QK); i++) {                                                                \
            unpack_##T(&x[i], &u);                                                                              \
            sumf += term(&u, y + (NP) * i, NP);                                                                 \
        }                                                                                                       \
        *out = sumf;                                                                                            \
    }                                                                                                           \
    static void gemm_##T##_avx2(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp, \
                                int64_t xp_stride, float *y, int64_t ldy) {                                     \
        bq_unpacked u;                                                                                          \
        for (int64_t r = 0; r < nr; r++) {                                                                      \
            const block_##T *x = (const block_##T *)((const uint8_t *)w + r * w_stride);                        \
            for (int64_t t0 = 0; t0 < nt; t0 += GEMM_NT) {                                                      \
                int tn = nt - t0 < GEMM_NT ? (int)(nt - t0) : GEMM_NT;                                          \
                float acc[GEMM_NT] = {0};                                                                       \
                const block_q8_0 *xb[GEMM_NT];                                                                  \
                for (int t = 0; t < tn; t++) xb[t] = (const block_q8_0 *)((const uint8_t *)xp + (t0 + t) * xp_stride); \
                for (int64_t i = 0; i < n / (QK); i++) {                                                        \
                    unpack_##T(&x[i], &u);                                                                      \
                    for (int t = 0; t < tn; t++) acc[t] += term(&u, xb[t] + (NP) * i, NP);                      \
                }                                                                                               \
                for (int t = 0; t < tn; t++) y[(t0 + t) * ldy + r] = acc[t];                                    \
            }                                                                                                   \
        }                                                                                                       \
    }                                                                                                           \
    static int64_t gemm_x_bytes_##T(int64_t n) {                                                                \
        return n % (QK) ? 0 : n / QK8_0 * (int64_t)sizeof(block_q8_0);                                          \
    }
DEFINE_BQ(q1_0, QK1_0, 4)
DEFINE_BQ(q2_0, QK2_0, 2)
#undef DEFINE_BQ

static void gemm_pack_copy_q8_0(int64_t n, const void *x, void *xp) {
    memcpy(xp, x, (size_t)(n / QK8_0) * sizeof(block_q8_0));
}

void kernels_fill_avx2_bitquants(kernel_type_ops ops[KSLOT_COUNT]) {
#define SET(slot, T)                                                                                            \
    ops[slot].dot = dot_##T##_avx2, ops[slot].gemm = gemm_##T##_avx2, ops[slot].gemm_x_bytes = gemm_x_bytes_##T, \
    ops[slot].gemm_pack_x = gemm_pack_copy_q8_0
    SET(KSLOT_Q1_0, q1_0);
    SET(KSLOT_Q2_0, q2_0);
#undef SET
}
