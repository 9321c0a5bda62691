/* AVX-512 (VNNI) gemm of iq4_xs with q8_K (legacy.h, prompt processing), bit-identical to ref/legacy_ref.c and
 * to the AVX2 dot, which the AVX-512 table keeps for decode: a dot made of this unpack and term (one token per
 * unpack) measured 18.4 ns per 256 weights against AVX2's 15.8, this gemm 6.6 against AVX2's gemm 8.9 per token
 * (2026-12-03, one thread's CPU time, 64 rows of 4096 in cache, 64 tokens, load 11). tests/unit/test_legacy.c
 * checks the gemm against the dot. Two 32-blocks per 512-bit step: the 64 nibbles in element order
 * (128-bit lanes: block ib's low nibbles, its high nibbles, then block ib + 1's), looked up by vpshufb in the
 * levels plus 128 (k_iq4nl + 128 is 1..241, unsigned, as vpdpbusd takes it), times q8 summed by fours into
 * i32 lanes, times each block's ls - 32 (vpmulld), summed. The + 128 comes back out exactly:
 *     sum_b (ls_b - 32) * sum (k + 128) q8 = isum + 128 * sum_b (ls_b - 32) * (q8 block sum, from the bsums)
 * Bounds: a lane is at most 4 * 241 * 127 per block, times 32, over 8 blocks: < 2^28. The super-block's integer
 * sum is the reference's, and the float step its: S += (float)isum * (d_w d_x). */
#include <immintrin.h>
#include <string.h>

#include "herd.h"
#include "../kernels_impl.h"
#include "../kquants.h"
#include "../legacy.h"
#include "../types.h"

static __m512i g_tab; /* k_iq4nl + 128 as bytes, in every 128-bit lane; set by kernels_fill_avx512_legacy */

typedef struct {
    __m512i u[4];  /* block pair p: the (levels + 128) of blocks 2p, 2p + 1 in element order */
    __m512i ls[4]; /* i32: ls - 32 of block 2p in lanes 0..7, of block 2p + 1 in lanes 8..15 */
    int32_t l[8];  /* ls - 32 per block */
    float d;
} iq4xs_unpacked;

/* The 64 nibbles of blocks 2p, 2p + 1 (their 32 bytes at qs) as bytes in element order, 128-bit lanes:
 * block 2p's low nibbles, its high nibbles, then block 2p + 1's (the index vector for a vpshufb table) */
static inline __m512i iq4_pair_nibbles(const uint8_t *qs) {
    const __m512i perm = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), sh = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
    __m512i q = _mm512_permutexvar_epi64(perm, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)qs)));
    return _mm512_and_si512(_mm512_srlv_epi64(q, sh), _mm512_set1_epi8(0x0f));
}

static inline void unpack_iq4_xs(const block_iq4_xs *x, iq4xs_unpacked *u) {
    for (int b = 0; b < 8; b++) u->l[b] = iq4_xs_scale(x, b) - 32;
    for (int p = 0; p < 4; p++) {
        u->u[p] = _mm512_shuffle_epi8(g_tab, iq4_pair_nibbles(x->qs + 32 * p));
        u->ls[p] = _mm512_inserti64x4(_mm512_set1_epi32(u->l[2 * p]), _mm256_set1_epi32(u->l[2 * p + 1]), 1);
    }
    u->d = _cvtsh_ss(x->d);
}

static inline float term_iq4_xs(const iq4xs_unpacked *u, const block_q8_K *y) {
    __m512i acc = _mm512_setzero_si512();
    for (int p = 0; p < 4; p++) {
        __m512i t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u->u[p], _mm512_loadu_si512((const void *)(y->qs + 64 * p)));
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(t, u->ls[p]));
    }
    int32_t corr = 0;
    for (int b = 0; b < 8; b++) corr += u->l[b] * (y->bsums[2 * b] + y->bsums[2 * b + 1]);
    return (float)(_mm512_reduce_add_epi32(acc) - 128 * corr) * (u->d * y->d);
}

/* each weight super-block unpacked once for up to 8 tokens, each token's terms summed in dot's order */
#define GEMM_NT 8
static void gemm_iq4_xs_avx512(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,
                               int64_t xp_stride, float *y, int64_t ldy) {
    iq4xs_unpacked u;
    for (int64_t r = 0; r < nr; r++) {
        const block_iq4_xs *x = (const block_iq4_xs *)((const uint8_t *)w + r * w_stride);
        for (int64_t t0 = 0; t0 < nt; t0 += GEMM_NT) {
            int tn = nt - t0 < GEMM_NT ? (int)(nt - t0) : GEMM_NT;
            float acc[GEMM_NT] = {0};
            const block_q8_K *xb[GEMM_NT];
            for (int t = 0; t < tn; t++) xb[t] = (const block_q8_K *)((const uint8_t *)xp + (t0 + t) * xp_stride);
            for (int64_t i = 0; i < n / QK_K; i++) {
                unpack_iq4_xs(&x[i], &u);
                for (int t = 0; t < tn; t++) acc[t] += term_iq4_xs(&u, &xb[t][i]);
            }
            for (int t = 0; t < tn; t++) y[(t0 + t) * ldy + r] = acc[t];
        }
    }
}

/* The decode dot (one token): two 32-blocks per 512-bit step as the gemm's unpack lays them out
 * (iq4_pair_nibbles), but the
 * levels kept signed (k_iq4nl by vpshufb) and multiplied as ggml's AVX2 kernel does — |level| (vpabsb) times
 * q8 with the level's sign (q8 negated under the levels' sign mask; AVX-512 has no vpsignb) by vpmaddubsw
 * into pair sums (|.| <= 2 * 127 * 127: no saturation, q8_K has no -128), times the block's ls - 32 as i16
 * (vpmaddwd: |.| <= 2^21 a lane), summed over the super-block in i32 lanes and reduced once. The integer is
 * the reference's (exact), the float step its: S += (float)isum * (d_w d_x). The eight scales come from
 * vector shifts of scales_l / scales_h, not a scalar loop. */
static void dot_iq4_xs_avx512(int64_t n, float *out, const void *w, const void *x) {
    const block_iq4_xs *a = w;
    const block_q8_K *b = x;
    const __m512i tab = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)k_iq4nl));
    /* scale b: nibble b % 2 of scales_l[b / 2], bits 2b..2b+1 of scales_h */
    const __m128i lo_shift = _mm_setr_epi16(0, 4, 0, 4, 0, 4, 0, 4), hi_shift = _mm_setr_epi16(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i upper16 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(1), 1);
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint32_t sl;
        memcpy(&sl, a[i].scales_l, 4);
        __m128i l8 = _mm_cvtsi32_si128((int)sl);
        __m128i lo = _mm_and_si128(_mm_srlv_epi16(_mm_cvtepu8_epi16(_mm_unpacklo_epi8(l8, l8)), lo_shift), _mm_set1_epi16(15));
        __m128i hi = _mm_and_si128(_mm_srlv_epi16(_mm_set1_epi16((short)a[i].scales_h), hi_shift), _mm_set1_epi16(3));
        const __m512i ls = _mm512_broadcast_i32x4(_mm_sub_epi16(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi16(32)));
        __m512i acc = _mm512_setzero_si512();
        for (int p = 0; p < 4; p++) {
            const __m512i lv = _mm512_shuffle_epi8(tab, iq4_pair_nibbles(a[i].qs + 32 * p));
            __m512i xv = _mm512_loadu_si512(b[i].qs + 64 * p);
            xv = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(lv), _mm512_setzero_si512(), xv);
            /* i16 lanes 0..15: ls of block 2p, 16..31: of block 2p + 1 (vpermw from the eight in ls) */
            const __m512i sc = _mm512_permutexvar_epi16(_mm512_add_epi16(_mm512_set1_epi16((short)(2 * p)), upper16), ls);
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(lv), xv), sc));
        }
        s += (float)_mm512_reduce_add_epi32(acc) * (_cvtsh_ss(a[i].d) * b[i].d);
    }
    *out = s;
}

void kernels_fill_avx512_legacy(kernel_type_ops ops[KSLOT_COUNT]) {
    uint8_t t[16];
    for (int j = 0; j < 16; j++) t[j] = (uint8_t)(k_iq4nl[j] + 128);
    g_tab = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)t));
    ops[KSLOT_IQ4_XS].gemm = gemm_iq4_xs_avx512; /* gemm_x_bytes / gemm_pack_x: the AVX2 table's (q8_K rows) */
    ops[KSLOT_IQ4_XS].dot = dot_iq4_xs_avx512;
}
