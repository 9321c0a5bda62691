/* AVX2 kernels of the K-quants (layouts in ../kquants.h; compiled with -mavx2 -mfma -mf16c, installed by
 * kernels.c only when CPUID reports AVX2 + FMA + F16C). Tested against ref/kquants_ref.c by
 * tests/unit/test_kquants.c.
 *
 * Dots, per super-block: the weight quants are widened to unsigned bytes (q2_K 0..3, q3_K 0..7 = q + 4,
 * q4_K 0..15, q5_K 0..31, q6_K 0..63 = q + 32) and multiplied with the q8_K activation bytes by
 * vpmaddubsw (u8 x s8, adjacent pairs summed into int16: |pair| <= 2 * 63 * 128, never saturates, -128
 * included); vpmaddwd with the scales as int16 then sums pairs into 8 int32 lanes. The offsets of q3_K /
 * q6_K (4, 32) and the mins of q2_K / q4_K / q5_K come from the activation's bsums (16 group sums):
 *     sum_g sc_g sum_e (q_e - off) x_e = sum_g sc_g sum_e q_e x_e - off * sum_g sc_g bsums_g.
 * All of that is exact int32 (|lane| < 2^31 by the bounds in kquants_ref.c). One FMA per super-block then
 * adds the lanes times fl(d_w d_x) into a float accumulator (the min lanes times fl(dmin_w d_x) into a
 * second), even and odd super-blocks into separate accumulators, reduced in a fixed order at the end: the
 * order of every float operation depends on n alone, so a row gives the same bits at any address and in
 * any batch.
 *
 * Conversions: q8_K from_f32 is bit-identical to row_quantize_q8_K_ref. The weight types' to_f32 (only
 * used for embedding-row lookups) and quantizers (offline) stay the reference.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "../kernels_impl.h"
#include "../kquants.h"
#include "../types.h"

/* ---- helpers ------------------------------------------------------------------------------------- */

static inline float hsum8(__m256 v) { /* fixed order, as kernels_avx2.c */
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

static inline __m256i load256(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline __m256i bytes(int v) {
    return _mm256_set1_epi8((char)v);
}

/* Shifts of every 16-bit lane; used on byte data with masks that keep only bits that stayed in their byte. */
static inline __m256i srl16(__m256i v, int n) {
    return _mm256_srl_epi16(v, _mm_cvtsi32_si128(n));
}

/* Two of 16 byte scales spread over the int16 lanes of one vpmaddubsw result of 32 elements: lanes 0-7
 * (elements 0-15) get scale g, lanes 8-15 (elements 16-31) scale g + 1. signed: scales are int8. */
static inline __m256i pair_scales16(__m128i sc8, int g) {
    const __m128i ctrl = _mm_add_epi8(_mm_set1_epi8((char)g), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, ctrl));
}

/* Scale s of 8 byte scales on all 16 int16 lanes (the 32 elements of a q4_K / q5_K sub-block). */
static inline __m256i one_scale16(__m128i sc8, int s) {
    return _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sc8, _mm_set1_epi8((char)s)));
}

/* 8 int32 lanes of sum q x scale over 32 elements: q unsigned bytes, x the activation's signed bytes. */
static inline __m256i qdot32(__m256i q, const int8_t *x, __m256i scale16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, load256(x)), scale16);
}

/* acc += lanes * scale, into the accumulator of the super-block's parity */
static inline void accumulate(__m256 acc[2], int64_t i, __m256i lanes, float scale) {
    acc[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), _mm256_set1_ps(scale), acc[i & 1]);
}

static inline float reduce(const __m256 acc[2]) {
    return hsum8(_mm256_add_ps(acc[0], acc[1]));
}

/* ---- scale unpacking ----------------------------------------------------------------------------- */

/* q4_K / q5_K (see kq_scale_min): the 8 six-bit scales in bytes 0-7 of *sc, the mins in bytes 0-7 of *m.
 * Sub-blocks 0-3 from the low 6 bits of bytes 0-3 (scales) / 4-7 (mins); 4-7 from the nibbles of bytes
 * 8-11 plus the top 2 bits of bytes 0-3 / 4-7, moved to bits 4-5. */
static inline void k4_scales(const uint8_t packed[12], __m128i *sc, __m128i *m) {
    uint32_t w[3];
    memcpy(w, packed, 12);
    uint32_t sc_lo = w[0] & 0x3f3f3f3fu, m_lo = w[1] & 0x3f3f3f3fu;
    uint32_t sc_hi = (w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u);
    uint32_t m_hi = ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u);
    *sc = _mm_setr_epi32((int)sc_lo, (int)sc_hi, 0, 0);
    *m = _mm_setr_epi32((int)m_lo, (int)m_hi, 0, 0);
}

/* q3_K (see kq3_scales): the 16 signed scales as bytes. Low nibbles: groups 0-7 from the low nibbles of
 * bytes 0-7, groups 8-15 from their high nibbles; high 2 bits: bits 2j..2j+1 of bytes 8-11 for groups
 * 4j..4j+3. */
static inline __m128i k3_scales(const uint8_t packed[12]) {
    uint32_t w[3];
    memcpy(w, packed, 12);
    uint32_t g0 = (w[0] & 0x0f0f0f0fu) | ((w[2] << 4) & 0x30303030u);
    uint32_t g4 = (w[1] & 0x0f0f0f0fu) | ((w[2] << 2) & 0x30303030u);
    uint32_t g8 = ((w[0] >> 4) & 0x0f0f0f0fu) | (w[2] & 0x30303030u);
    uint32_t g12 = ((w[1] >> 4) & 0x0f0f0f0fu) | ((w[2] >> 2) & 0x30303030u);
    return _mm_sub_epi8(_mm_setr_epi32((int)g0, (int)g4, (int)g8, (int)g12), _mm_set1_epi8(32));
}

/* sum_g scale_g bsums_g as 8 int32 lanes, the 16 scales given as int16 lanes */
static inline __m256i bsum_lanes(const block_q8_K *b, __m256i scales16) {
    return _mm256_madd_epi16(load256(b->bsums), scales16);
}

/* ---- dots ------------------------------------------------------------------------------------------ */

static void dot_q2_K_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_q2_K *a = w;
    const block_q8_K *b = x;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, accm[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128i raw = _mm_loadu_si128((const __m128i *)a[i].scales);
        __m128i sc8 = _mm_and_si128(raw, _mm_set1_epi8(15)), m8 = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i qs = load256(a[i].qs + 32 * h);
            for (int k = 0; k < 4; k++) {
                __m256i q = _mm256_and_si256(srl16(qs, 2 * k), bytes(3));
                isum = _mm256_add_epi32(isum, qdot32(q, b[i].qs + 128 * h + 32 * k, pair_scales16(sc8, 8 * h + 2 * k)));
            }
        }
        accumulate(acc, i, isum, f16(a[i].d) * b[i].d);
        accumulate(accm, i, bsum_lanes(&b[i], _mm256_cvtepu8_epi16(m8)), f16(a[i].dmin) * b[i].d);
    }
    *out = reduce(acc) - reduce(accm);
}

static void dot_q3_K_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_q3_K *a = w;
    const block_q8_K *b = x;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128i sc8 = k3_scales(a[i].scales);
        __m256i hm = load256(a[i].hmask), isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i qs = load256(a[i].qs + 32 * h);
            for (int k = 0; k < 4; k++) {
                __m256i lo = _mm256_and_si256(srl16(qs, 2 * k), bytes(3));
                __m256i hi = _mm256_and_si256(srl16(hm, 4 * h + k), bytes(1));
                __m256i q = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 2)); /* q + 4, 0..7 */
                isum = _mm256_add_epi32(isum, qdot32(q, b[i].qs + 128 * h + 32 * k, pair_scales16(sc8, 8 * h + 2 * k)));
            }
        }
        __m256i off = bsum_lanes(&b[i], _mm256_cvtepi8_epi16(sc8)); /* q = code - 4 */
        accumulate(acc, i, _mm256_sub_epi32(isum, _mm256_slli_epi32(off, 2)), f16(a[i].d) * b[i].d);
    }
    *out = reduce(acc);
}

/* q4_K and q5_K share everything but the fifth bit (qh == NULL for q4_K). */
static inline void dot_k32_block(const uint8_t *qs, const uint8_t *qh, const uint8_t packed[12], const block_q8_K *b,
                                 __m256i *isum_out, __m256i *msum_out) {
    __m128i sc8, m8;
    k4_scales(packed, &sc8, &m8);
    __m256i isum = _mm256_setzero_si256(), h = qh ? load256(qh) : _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        __m256i q = load256(qs + 32 * c);
        __m256i lo = _mm256_and_si256(q, bytes(15)), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), bytes(15));
        if (qh) { /* bit 2c of qh[l] -> 16 for element 64c + l, bit 2c + 1 for element 64c + 32 + l */
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(srl16(h, 2 * c), bytes(1)), 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(srl16(h, 2 * c + 1), bytes(1)), 4));
        }
        isum = _mm256_add_epi32(isum, qdot32(lo, b->qs + 64 * c, one_scale16(sc8, 2 * c)));
        isum = _mm256_add_epi32(isum, qdot32(hi, b->qs + 64 * c + 32, one_scale16(sc8, 2 * c + 1)));
    }
    *isum_out = isum;
    /* mins: m_s (bsums_2s + bsums_2s+1), the 8 mins doubled to [m0 m0 m1 m1 ...] */
    *msum_out = bsum_lanes(b, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)));
}

static void dot_q4_K_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_q4_K *a = w;
    const block_q8_K *b = x;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, accm[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i isum, msum;
        dot_k32_block(a[i].qs, NULL, a[i].scales, &b[i], &isum, &msum);
        accumulate(acc, i, isum, f16(a[i].d) * b[i].d);
        accumulate(accm, i, msum, f16(a[i].dmin) * b[i].d);
    }
    *out = reduce(acc) - reduce(accm);
}

static void dot_q5_K_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_q5_K *a = w;
    const block_q8_K *b = x;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, accm[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i isum, msum;
        dot_k32_block(a[i].qs, a[i].qh, a[i].scales, &b[i], &isum, &msum);
        accumulate(acc, i, isum, f16(a[i].d) * b[i].d);
        accumulate(accm, i, msum, f16(a[i].dmin) * b[i].d);
    }
    *out = reduce(acc) - reduce(accm);
}

static void dot_q6_K_avx2(int64_t n, float *out, const void *w, const void *x) {
    const block_q6_K *a = w;
    const block_q8_K *b = x;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128i sc8 = _mm_loadu_si128((const __m128i *)a[i].scales);
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i ql0 = load256(a[i].ql + 64 * h), ql1 = load256(a[i].ql + 64 * h + 32);
            __m256i qh = load256(a[i].qh + 32 * h);
            /* element 128h + 32k + l: low nibble of ql0 / ql1 (k = 0, 1) or high nibble (k = 2, 3), plus
             * bits 2k..2k+1 of qh[l] moved to bits 4-5 */
            __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, bytes(15)), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bytes(0x30)));
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, bytes(15)), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bytes(0x30)));
            __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), bytes(15)), _mm256_and_si256(qh, bytes(0x30)));
            __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), bytes(15)),
                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), bytes(0x30)));
            const int8_t *xq = b[i].qs + 128 * h;
            isum = _mm256_add_epi32(isum, qdot32(q0, xq, pair_scales16(sc8, 8 * h)));
            isum = _mm256_add_epi32(isum, qdot32(q1, xq + 32, pair_scales16(sc8, 8 * h + 2)));
            isum = _mm256_add_epi32(isum, qdot32(q2, xq + 64, pair_scales16(sc8, 8 * h + 4)));
            isum = _mm256_add_epi32(isum, qdot32(q3, xq + 96, pair_scales16(sc8, 8 * h + 6)));
        }
        __m256i off = bsum_lanes(&b[i], _mm256_cvtepi8_epi16(sc8)); /* q = code - 32 */
        accumulate(acc, i, _mm256_sub_epi32(isum, _mm256_slli_epi32(off, 5)), f16(a[i].d) * b[i].d);
    }
    *out = reduce(acc);
}

/* ---- q8_K activations ------------------------------------------------------------------------------ */

/* row_quantize_q8_K_ref bit for bit: amax by maxps with the running max second (NaN inputs ignored, as the
 * reference's comparison ignores them), the first element of that magnitude gives the sign, q =
 * round-half-even(iscale x) (vroundps, the default mode) clamped to [-127, 127] in float with the NaN
 * behaviour of fminf/fmaxf, bsums from the stored bytes. */
static void row_quantize_q8_K_avx2(const float *x, void *y, int64_t n) {
    block_q8_K *blk = y;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4), max = 0;
        if (amax != 0) {
            const __m256 va = _mm256_set1_ps(amax);
            for (int j = 0; j < QK_K; j += 8) {
                int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), va, _CMP_EQ_OQ));
                if (hit) {
                    max = x[j + __builtin_ctz((unsigned)hit)];
                    break;
                }
            }
        }
        float iscale = amax != 0 ? -127.0f / max : 0.0f;
        if (!isfinite(iscale)) iscale = 0;
        blk[i].d = iscale != 0 ? 1.0f / iscale : 0.0f;
        if (iscale == 0) {
            memset(blk[i].qs, 0, sizeof blk[i].qs);
            memset(blk[i].bsums, 0, sizeof blk[i].bsums);
            continue;
        }
        const __m256 vs = _mm256_set1_ps(iscale), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), vs),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                q[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
            }
            /* packs work per 128-bit lane: [q0 0-3, q1 0-3, q2 0-3, q3 0-3 | q0 4-7, ...] -> element order */
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(blk[i].qs + j), p);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += blk[i].qs[16 * g + l];
            blk[i].bsums[g] = (int16_t)s;
        }
    }
}

void kernels_fill_avx2_kquants(kernel_type_ops ops[KSLOT_COUNT]) {
    ops[KSLOT_Q8_K].from_f32 = row_quantize_q8_K_avx2;
    ops[KSLOT_Q2_K].dot = dot_q2_K_avx2;
    ops[KSLOT_Q3_K].dot = dot_q3_K_avx2;
    ops[KSLOT_Q4_K].dot = dot_q4_K_avx2;
    ops[KSLOT_Q5_K].dot = dot_q5_K_avx2;
    ops[KSLOT_Q6_K].dot = dot_q6_K_avx2;
}
