/* AVX-512 kernels of the K-quants (F, BW, VL, DQ, VNNI; compiled with those flags and installed by kernels.c on
 * top of the AVX2 table only when CPUID reports them all). Tested against ref/kquants_ref.c by
 * tests/unit/test_kquants.c.
 *
 * Same arithmetic as kquants_avx2.c, 64 elements per register: the weight quants widened to unsigned bytes,
 * vpmaddubsw with the q8_K bytes (pairs into int16, exact), then VNNI's vpdpwssd multiplies by the scales
 * (int16) and accumulates into 16 int32 lanes in one instruction. Offsets and mins come from the bsums.
 * Each 64-element register holds two 32-element runs of the super-block that are contiguous in the
 * activation; the 32 packed quant bytes they share are broadcast to both halves and the upper half is
 * shifted to its bit plane with a masked shift. Per super-block one FMA adds the exact int32 lanes times
 * fl(d_w d_x) into the accumulator of the block's parity; the reduction order depends on n alone.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "../kernels_impl.h"
#include "../kquants.h"
#include "../types.h"

/* ---- helpers ------------------------------------------------------------------------------------- */

static inline float hsum16(__m512 v) { /* fixed order, as kernels_avx512.c */
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

static inline __m512i load512(const void *p) {
    return _mm512_loadu_si512(p);
}

/* 32 bytes in both 256-bit halves */
static inline __m512i bcast32(const void *p) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

static inline __m512i bytes(int v) {
    return _mm512_set1_epi8((char)v);
}

static inline __m512i srl16(__m512i v, int n) {
    return _mm512_srl_epi16(v, _mm_cvtsi32_si128(n));
}

#define UPPER 0xffff0000u /* the upper 16 of 32 int16 lanes = the upper 32 bytes */

/* 16 int32 lanes += (q * x pairs) * scales: q unsigned bytes, x = 64 activation bytes, scale16 int16 */
static inline __m512i qdot64(__m512i acc, __m512i q, const int8_t *x, __m512i scale16) {
    return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(q, load512(x)), scale16);
}

/* Scales as int16 lanes: lanes 8j..8j+7 (16 elements each) get scale g0 + j, j = 0..3; from the 16
 * scales held as int16 in sc16. */
static inline __m512i quad_scales16(__m512i sc16, int g0) {
    const __m512i idx = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0,
                                         0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16((short)g0)), sc16);
}

/* lanes 0-15 scale s, lanes 16-31 scale s + 1 (32-element sub-blocks of q4_K / q5_K) */
static inline __m512i pair_scales16(__m512i sc16, int s) {
    const __m512i idx = _mm512_set_epi16(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16((short)s)), sc16);
}

static inline void accumulate(__m512 acc[2], int64_t i, __m512i lanes, float scale) {
    acc[i & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), _mm512_set1_ps(scale), acc[i & 1]);
}

static inline void accumulate8(__m256 acc[2], int64_t i, __m256i lanes, float scale) {
    acc[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), _mm256_set1_ps(scale), acc[i & 1]);
}

/* sum_g scale_g bsums_g as 8 int32 lanes, the 16 scales as int16 lanes */
static inline __m256i bsum_lanes(const block_q8_K *b, __m256i scales16) {
    return _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), scales16);
}

/* ---- scale unpacking (as kquants_avx2.c) ------------------------------------------------------------ */

static inline void k4_scales(const uint8_t packed[12], __m128i *sc, __m128i *m) {
    uint32_t w[3];
    memcpy(w, packed, 12);
    uint32_t sc_lo = w[0] & 0x3f3f3f3fu, m_lo = w[1] & 0x3f3f3f3fu;
    uint32_t sc_hi = (w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u);
    uint32_t m_hi = ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u);
    *sc = _mm_setr_epi32((int)sc_lo, (int)sc_hi, 0, 0);
    *m = _mm_setr_epi32((int)m_lo, (int)m_hi, 0, 0);
}

static inline __m128i k3_scales(const uint8_t packed[12]) {
    uint32_t w[3];
    memcpy(w, packed, 12);
    uint32_t g0 = (w[0] & 0x0f0f0f0fu) | ((w[2] << 4) & 0x30303030u);
    uint32_t g4 = (w[1] & 0x0f0f0f0fu) | ((w[2] << 2) & 0x30303030u);
    uint32_t g8 = ((w[0] >> 4) & 0x0f0f0f0fu) | (w[2] & 0x30303030u);
    uint32_t g12 = ((w[1] >> 4) & 0x0f0f0f0fu) | ((w[2] >> 2) & 0x30303030u);
    return _mm_sub_epi8(_mm_setr_epi32((int)g0, (int)g4, (int)g8, (int)g12), _mm_set1_epi8(32));
}

/* ---- dots ------------------------------------------------------------------------------------------ */

/* q2_K: per half h, register A = elements 128h + 0..63 (bit planes 0, 1 of qs[32h..]), B = 64..127
 * (planes 2, 3). */
static void dot_q2_K_avx512(int64_t n, float *out, const void *w, const void *x) {
    const block_q2_K *a = w;
    const block_q8_K *b = x;
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    __m256 accm[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128i raw = _mm_loadu_si128((const __m128i *)a[i].scales);
        __m128i m8 = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
        __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(15))));
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512i qs = bcast32(a[i].qs + 32 * h);
            __m512i qa = _mm512_and_si512(_mm512_mask_srli_epi16(qs, UPPER, qs, 2), bytes(3));
            __m512i t = _mm512_srli_epi16(qs, 4);
            __m512i qb = _mm512_and_si512(_mm512_mask_srli_epi16(t, UPPER, t, 2), bytes(3));
            isum = qdot64(isum, qa, b[i].qs + 128 * h, quad_scales16(sc16, 8 * h));
            isum = qdot64(isum, qb, b[i].qs + 128 * h + 64, quad_scales16(sc16, 8 * h + 4));
        }
        accumulate(acc, i, isum, f16(a[i].d) * b[i].d);
        accumulate8(accm, i, bsum_lanes(&b[i], _mm256_cvtepu8_epi16(m8)), f16(a[i].dmin) * b[i].d);
    }
    *out = hsum16(_mm512_add_ps(acc[0], acc[1])) - hsum8(_mm256_add_ps(accm[0], accm[1]));
}

/* q3_K: as q2_K, plus the high bit from hmask bit planes 4h..4h+3. */
static void dot_q3_K_avx512(int64_t n, float *out, const void *w, const void *x) {
    const block_q3_K *a = w;
    const block_q8_K *b = x;
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m128i sc8 = k3_scales(a[i].scales);
        __m256i sc16y = _mm256_cvtepi8_epi16(sc8);
        __m512i sc16 = _mm512_castsi256_si512(sc16y), hm = bcast32(a[i].hmask), isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512i qs = bcast32(a[i].qs + 32 * h);
            __m512i la = _mm512_and_si512(_mm512_mask_srli_epi16(qs, UPPER, qs, 2), bytes(3));
            __m512i t = _mm512_srli_epi16(qs, 4);
            __m512i lb = _mm512_and_si512(_mm512_mask_srli_epi16(t, UPPER, t, 2), bytes(3));
            __m512i ha = srl16(hm, 4 * h), hb = srl16(hm, 4 * h + 2);
            ha = _mm512_and_si512(_mm512_mask_srli_epi16(ha, UPPER, ha, 1), bytes(1));
            hb = _mm512_and_si512(_mm512_mask_srli_epi16(hb, UPPER, hb, 1), bytes(1));
            __m512i qa = _mm512_or_si512(la, _mm512_slli_epi16(ha, 2)), qb = _mm512_or_si512(lb, _mm512_slli_epi16(hb, 2));
            isum = qdot64(isum, qa, b[i].qs + 128 * h, quad_scales16(sc16, 8 * h));
            isum = qdot64(isum, qb, b[i].qs + 128 * h + 64, quad_scales16(sc16, 8 * h + 4));
        }
        __m256i off = _mm256_slli_epi32(bsum_lanes(&b[i], sc16y), 2); /* q = code - 4 */
        accumulate(acc, i, _mm512_sub_epi32(isum, _mm512_zextsi256_si512(off)), f16(a[i].d) * b[i].d);
    }
    *out = hsum16(_mm512_add_ps(acc[0], acc[1]));
}

/* q4_K / q5_K: chunk c's 32 quant bytes broadcast; the lower half keeps the low nibbles (sub-block 2c,
 * elements 64c..64c+31), the upper half the high ones (sub-block 2c + 1): contiguous in the activation. */
static inline void dot_k32_block(const uint8_t *qs, const uint8_t *qh, const uint8_t packed[12], const block_q8_K *b,
                                 __m512i *isum_out, __m256i *msum_out) {
    __m128i sc8, m8;
    k4_scales(packed, &sc8, &m8);
    __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sc8));
    __m512i isum = _mm512_setzero_si512(), hz = qh ? bcast32(qh) : _mm512_setzero_si512();
    for (int c = 0; c < 4; c++) {
        __m512i q = bcast32(qs + 32 * c);
        q = _mm512_and_si512(_mm512_mask_srli_epi16(q, UPPER, q, 4), bytes(15));
        if (qh) { /* bit 2c (lower half) / 2c + 1 (upper half) of qh[l] -> + 16 (q <= 15): a test, a masked add */
            const __m512i bit = _mm512_inserti64x4(bytes(1 << (2 * c)), _mm256_set1_epi8((char)(1 << (2 * c + 1))), 1);
            q = _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(hz, bit), q, bytes(16));
        }
        isum = qdot64(isum, q, b->qs + 64 * c, pair_scales16(sc16, 2 * c));
    }
    *isum_out = isum;
    *msum_out = bsum_lanes(b, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8)));
}

static void dot_q4_K_avx512(int64_t n, float *out, const void *w, const void *x) {
    const block_q4_K *a = w;
    const block_q8_K *b = x;
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    __m256 accm[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m512i isum;
        __m256i msum;
        dot_k32_block(a[i].qs, NULL, a[i].scales, &b[i], &isum, &msum);
        accumulate(acc, i, isum, f16(a[i].d) * b[i].d);
        accumulate8(accm, i, msum, f16(a[i].dmin) * b[i].d);
    }
    *out = hsum16(_mm512_add_ps(acc[0], acc[1])) - hsum8(_mm256_add_ps(accm[0], accm[1]));
}

static void dot_q5_K_avx512(int64_t n, float *out, const void *w, const void *x) {
    const block_q5_K *a = w;
    const block_q8_K *b = x;
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    __m256 accm[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m512i isum;
        __m256i msum;
        dot_k32_block(a[i].qs, a[i].qh, a[i].scales, &b[i], &isum, &msum);
        accumulate(acc, i, isum, f16(a[i].d) * b[i].d);
        accumulate8(accm, i, msum, f16(a[i].dmin) * b[i].d);
    }
    *out = hsum16(_mm512_add_ps(acc[0], acc[1])) - hsum8(_mm256_add_ps(accm[0], accm[1]));
}

/* q6_K: per half h, A = elements 128h + 0..63 = low nibbles of the 64 bytes ql[64h..] with qh planes 0, 1;
 * B = 128h + 64..127 = their high nibbles with qh planes 2, 3. */
static void dot_q6_K_avx512(int64_t n, float *out, const void *w, const void *x) {
    const block_q6_K *a = w;
    const block_q8_K *b = x;
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i sc16y = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
        __m512i sc16 = _mm512_castsi256_si512(sc16y), isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512i ql = load512(a[i].ql + 64 * h), qh = bcast32(a[i].qh + 32 * h);
            /* planes to bits 4-5: A lower <<4, upper <<2; B lower as is, upper >>2 */
            __m512i ha = _mm512_mask_slli_epi16(_mm512_slli_epi16(qh, 4), UPPER, qh, 2);
            __m512i hb = _mm512_mask_srli_epi16(qh, UPPER, qh, 2);
            __m512i qa = _mm512_or_si512(_mm512_and_si512(ql, bytes(15)), _mm512_and_si512(ha, bytes(0x30)));
            __m512i qb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), bytes(15)),
                                         _mm512_and_si512(hb, bytes(0x30)));
            isum = qdot64(isum, qa, b[i].qs + 128 * h, quad_scales16(sc16, 8 * h));
            isum = qdot64(isum, qb, b[i].qs + 128 * h + 64, quad_scales16(sc16, 8 * h + 4));
        }
        __m256i off = _mm256_slli_epi32(bsum_lanes(&b[i], sc16y), 5); /* q = code - 32 */
        accumulate(acc, i, _mm512_sub_epi32(isum, _mm512_zextsi256_si512(off)), f16(a[i].d) * b[i].d);
    }
    *out = hsum16(_mm512_add_ps(acc[0], acc[1]));
}

/* ---- q8_K activations ------------------------------------------------------------------------------ */

/* row_quantize_q8_K_ref bit for bit (see row_quantize_q8_K_avx2); each 16-float vector is one bsums group. */
static void row_quantize_q8_K_avx512(const float *x, void *y, int64_t n) {
    block_q8_K *blk = y;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m512 m = _mm512_setzero_ps();
        for (int j = 0; j < QK_K; j += 16) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + j)), m);
        __m256 m8 = _mm256_max_ps(_mm512_castps512_ps256(m), _mm512_extractf32x8_ps(m, 1));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4), max = 0;
        if (amax != 0) {
            const __m512 va = _mm512_set1_ps(amax);
            for (int j = 0; j < QK_K; j += 16) {
                __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + j)), va, _CMP_EQ_OQ);
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
        const __m512 vs = _mm512_set1_ps(iscale), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
        for (int g = 0; g < QK_K / 16; g++) {
            __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * g), vs),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            __m512i q = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, lo), hi));
            _mm_storeu_si128((__m128i *)(blk[i].qs + 16 * g), _mm512_cvtepi32_epi8(q));
            blk[i].bsums[g] = (int16_t)_mm512_reduce_add_epi32(q);
        }
    }
}

/* ---- batched dots (gemm, see kernels.h) -------------------------------------------------------------- */

/* Bit-identical to the dots above for every (row, token): the dots add each super-block's exact int32
 * lanes times fl(d_w d_x) into the accumulator of the block's parity (and the mins, for q2_K/q4_K/q5_K,
 * into a 256-bit one), then hsum16(acc0 + acc1) - hsum8(accm0 + accm1). Here the super-blocks are visited
 * parity by parity ("passes"), so a tile of rows x tokens holds one accumulator (pair) per output. What the
 * dot redoes for every token — unpacking the quants to bytes, the 6-bit scales to int16 lanes — is done
 * once per row into a stack buffer; per (row, token, super-block) remain the four vpmaddubsw + vpdpwssd,
 * the bsums terms and the FMAs. The activation rows are the q8_K rows themselves. */

#define KG_R 2          /* rows per register tile */
#define KG_T 4          /* tokens per register tile */
#define KG_MAX_SB 64    /* super-blocks per row in the stack buffer: n <= 16384 */

typedef struct {
    __m512i q[4];   /* unsigned quant bytes of elements 64c .. 64c + 63 */
    __m512i sc[4];  /* int16 scale lanes for chunk c */
    __m256i m16;    /* q2_K/q4_K/q5_K: the mins as int16 lanes for bsum_lanes; q3_K/q6_K: the scales */
    float d, dmin;
    float pad[14];
} kq_packed;

static int64_t kq_gemm_x_bytes(int64_t n) {
    return n / QK_K <= KG_MAX_SB ? n / QK_K * (int64_t)sizeof(block_q8_K) : 0;
}

static void kq_gemm_pack_x(int64_t n, const void *x, void *xp) {
    memcpy(xp, x, (size_t)(n / QK_K) * sizeof(block_q8_K));
}

static void kq_pack_q4_K(const void *row, int64_t nsb, kq_packed *o, bool q5) {
    for (int64_t i = 0; i < nsb; i++) {
        const uint8_t *qs, *qh, *packed;
        uint16_t d, dmin;
        if (q5) {
            const block_q5_K *a = (const block_q5_K *)row + i;
            qs = a->qs, qh = a->qh, packed = a->scales, d = a->d, dmin = a->dmin;
        } else {
            const block_q4_K *a = (const block_q4_K *)row + i;
            qs = a->qs, qh = NULL, packed = a->scales, d = a->d, dmin = a->dmin;
        }
        __m128i sc8, m8;
        k4_scales(packed, &sc8, &m8);
        __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sc8));
        __m512i hz = qh ? bcast32(qh) : _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            __m512i q = bcast32(qs + 32 * c);
            q = _mm512_and_si512(_mm512_mask_srli_epi16(q, UPPER, q, 4), bytes(15));
            if (qh) {
                __m512i t = srl16(hz, 2 * c);
                t = _mm512_and_si512(_mm512_mask_srli_epi16(t, UPPER, t, 1), bytes(1));
                q = _mm512_or_si512(q, _mm512_slli_epi16(t, 4));
            }
            o[i].q[c] = q;
            o[i].sc[c] = pair_scales16(sc16, 2 * c);
        }
        o[i].m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
        o[i].d = f16(d);
        o[i].dmin = f16(dmin);
    }
}

static void kq_pack_q4_K_row(const void *row, int64_t nsb, kq_packed *o) {
    kq_pack_q4_K(row, nsb, o, false);
}

static void kq_pack_q5_K_row(const void *row, int64_t nsb, kq_packed *o) {
    kq_pack_q4_K(row, nsb, o, true);
}

static void kq_pack_q6_K_row(const void *row, int64_t nsb, kq_packed *o) {
    const block_q6_K *a = row;
    for (int64_t i = 0; i < nsb; i++) {
        __m256i sc16y = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
        __m512i sc16 = _mm512_castsi256_si512(sc16y);
        for (int h = 0; h < 2; h++) {
            __m512i ql = load512(a[i].ql + 64 * h), qh = bcast32(a[i].qh + 32 * h);
            __m512i ha = _mm512_mask_slli_epi16(_mm512_slli_epi16(qh, 4), UPPER, qh, 2);
            __m512i hb = _mm512_mask_srli_epi16(qh, UPPER, qh, 2);
            o[i].q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, bytes(15)), _mm512_and_si512(ha, bytes(0x30)));
            o[i].q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), bytes(15)),
                                                _mm512_and_si512(hb, bytes(0x30)));
            o[i].sc[2 * h] = quad_scales16(sc16, 8 * h);
            o[i].sc[2 * h + 1] = quad_scales16(sc16, 8 * h + 4);
        }
        o[i].m16 = sc16y;
        o[i].d = f16(a[i].d);
        o[i].dmin = 0;
    }
}

/* MINS: q4_K/q5_K (the mins into accm); else OFF_SHIFT: q6_K (isum - (bsum_lanes << 5)). */
static inline __attribute__((always_inline)) void kq_tile(const int R, const int T, const int MINS,
                                                          const int OFF_SHIFT, int64_t nsb, const kq_packed *wp,
                                                          const block_q8_K *const *xr, float *y, int64_t ldy) {
    __m512 part[2][KG_R][KG_T];
    __m256 partm[2][KG_R][KG_T];
    for (int par = 0; par < 2; par++) {
        __m512 acc[KG_R][KG_T];
        __m256 accm[KG_R][KG_T];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps(), accm[r][t] = _mm256_setzero_ps();
        for (int64_t i = par; i < nsb; i += 2) {
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) {
                const kq_packed *pw = wp + r * nsb + i;
                __m512i q0 = pw->q[0], q1 = pw->q[1], q2 = pw->q[2], q3 = pw->q[3];
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    const block_q8_K *b = xr[t] + i;
                    __m512i isum = _mm512_setzero_si512();
                    isum = qdot64(isum, q0, b->qs, pw->sc[0]);
                    isum = qdot64(isum, q1, b->qs + 64, pw->sc[1]);
                    isum = qdot64(isum, q2, b->qs + 128, pw->sc[2]);
                    isum = qdot64(isum, q3, b->qs + 192, pw->sc[3]);
                    if (!MINS) {
                        __m256i off = _mm256_slli_epi32(bsum_lanes(b, pw->m16), OFF_SHIFT);
                        isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(off));
                    }
                    acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(pw->d * b->d), acc[r][t]);
                    if (MINS)
                        accm[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bsum_lanes(b, pw->m16)),
                                                     _mm256_set1_ps(pw->dmin * b->d), accm[r][t]);
                }
            }
        }
#pragma GCC unroll 2
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) part[par][r][t] = acc[r][t], partm[par][r][t] = accm[r][t];
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            float v = hsum16(_mm512_add_ps(part[0][r][t], part[1][r][t]));
            if (MINS) v -= hsum8(_mm256_add_ps(partm[0][r][t], partm[1][r][t]));
            y[t * ldy + r] = v;
        }
}

#define KQ_CASE(R, T) case (R) * 8 + (T): kq_tile(R, T, MINS, OFF_SHIFT, nsb, wp, xr, y, ldy); break;

static inline __attribute__((always_inline)) void kq_tile_any(const int MINS, const int OFF_SHIFT, int R, int T,
                                                              int64_t nsb, const kq_packed *wp,
                                                              const block_q8_K *const *xr, float *y, int64_t ldy) {
    switch (R * 8 + T) {
        KQ_CASE(1, 1) KQ_CASE(1, 2) KQ_CASE(1, 3) KQ_CASE(1, 4)
        KQ_CASE(2, 1) KQ_CASE(2, 2) KQ_CASE(2, 3) KQ_CASE(2, 4)
    default: break;
    }
}

typedef void (*kq_pack_fn)(const void *row, int64_t nsb, kq_packed *o);

/* Row tiles packed once per block of tokens, every token tile of the block over them. */
static inline __attribute__((always_inline)) void kq_gemm(const int MINS, const int OFF_SHIFT, kq_pack_fn pack,
                                                          int64_t n, int64_t nr, int64_t nt, const void *w,
                                                          int64_t w_stride, const void *xp, int64_t xp_stride,
                                                          float *y, int64_t ldy) {
    const int64_t nsb = n / QK_K, xb = 256;
    _Alignas(64) kq_packed wp[KG_R * KG_MAX_SB];
    for (int64_t t0 = 0; t0 < nt; t0 += xb) {
        int64_t t1 = t0 + xb < nt ? t0 + xb : nt;
        for (int64_t r0 = 0; r0 < nr; r0 += KG_R) {
            int R = nr - r0 < KG_R ? (int)(nr - r0) : KG_R;
            for (int r = 0; r < R; r++) pack((const uint8_t *)w + (r0 + r) * w_stride, nsb, wp + r * nsb);
            for (int64_t t = t0; t < t1; t += KG_T) {
                int T = t1 - t < KG_T ? (int)(t1 - t) : KG_T;
                const block_q8_K *xr[KG_T];
                for (int k = 0; k < T; k++) xr[k] = (const block_q8_K *)((const uint8_t *)xp + (t + k) * xp_stride);
                kq_tile_any(MINS, OFF_SHIFT, R, T, nsb, wp, xr, y + t * ldy + r0, ldy);
            }
        }
    }
}

static void gemm_q4_K_avx512(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t ws, const void *xp,
                             int64_t xs, float *y, int64_t ldy) {
    kq_gemm(1, 0, kq_pack_q4_K_row, n, nr, nt, w, ws, xp, xs, y, ldy);
}

static void gemm_q5_K_avx512(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t ws, const void *xp,
                             int64_t xs, float *y, int64_t ldy) {
    kq_gemm(1, 0, kq_pack_q5_K_row, n, nr, nt, w, ws, xp, xs, y, ldy);
}

static void gemm_q6_K_avx512(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t ws, const void *xp,
                             int64_t xs, float *y, int64_t ldy) {
    kq_gemm(0, 5, kq_pack_q6_K_row, n, nr, nt, w, ws, xp, xs, y, ldy);
}

void kernels_fill_avx512_kquants(kernel_type_ops ops[KSLOT_COUNT]) {
    ops[KSLOT_Q8_K].from_f32 = row_quantize_q8_K_avx512;
    ops[KSLOT_Q2_K].dot = dot_q2_K_avx512;
    ops[KSLOT_Q3_K].dot = dot_q3_K_avx512;
    ops[KSLOT_Q4_K].dot = dot_q4_K_avx512;
    ops[KSLOT_Q5_K].dot = dot_q5_K_avx512;
    ops[KSLOT_Q6_K].dot = dot_q6_K_avx512;
    const int gk[3] = {KSLOT_Q4_K, KSLOT_Q5_K, KSLOT_Q6_K};
    const kernel_gemm_fn gf[3] = {gemm_q4_K_avx512, gemm_q5_K_avx512, gemm_q6_K_avx512};
    for (int i = 0; i < 3; i++) {
        ops[gk[i]].gemm_x_bytes = kq_gemm_x_bytes;
        ops[gk[i]].gemm_pack_x = kq_gemm_pack_x;
        ops[gk[i]].gemm = gf[i];
    }
}
