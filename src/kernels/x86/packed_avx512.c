/* AVX-512 VNNI kernels of the interleaved layouts (packed.h; reference: pk_gemm_ref).
 *
 * One 512-bit lane per weight row: for a group of 16 rows and one block of 32 elements, chunk c of the
 * block (elements 4c..4c+3 of every row, 64 bytes) goes through one vpdpbusd against the broadcast 4
 * activation bytes of that chunk. A block costs per token 8 vpdpbusd (the int32 sums, started at the
 * activation block's offset, which makes the unsigned weight bytes signed again), vcvtdq2ps, one
 * vmulps (d_w * d_x) and one vfmadd into the accumulator (q4_1 / q5_1: a second for the min): the
 * reference's order, lane by lane. The super-block layouts below say their own.
 *
 * Register tile: one group x T tokens of accumulators (T <= 8): the block's weight vectors are loaded
 * (q4_0: and split into nibbles) once for the T tokens. Decode (1 or 2 tokens) splits each block's 8
 * vpdpbusd into two chains (integer sums: any order is exact). Tokens go in blocks whose activations
 * stay in L3, groups in chunks that stay in L2 (entry, at the end).
 *
 * Decode reads the groups one after another, so each thread streams its share of a weight as one
 * sequential run of memory. Four groups side by side (four streams, four independent accumulator
 * chains) streamed 76-95 % of a plain read loop's bandwidth; one group at a time 95-103 % (bench/stream:
 * 1 GB of 2048- and 4096-wide weights from DRAM, 2 threads, all four layouts). The memory, not the FMA
 * latency of a single chain, is the limit: from L2 one group at a time still computes at ~96 GB/s per
 * thread (q4_0; q6_K ~49).
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "../packed.h"

#define ALWAYS static inline __attribute__((always_inline))
#define X_BLOCK_BYTES (4 << 20)    /* activation bytes per token block (see entry) */
#define W_CHUNK_BYTES (256 * 1024) /* weight bytes per chunk of groups (see entry) */
/* the layouts: blocks of 32 (K_M*: with a min), then super-blocks of 256 (K_I*: level tables) */
enum { K_Q8, K_Q4, K_Q5, K_N4, K_M4, K_M5, K_K4, K_K5, K_K6, K_I4, K_I3, K_X3, K_I2 };
/* Decode's software prefetch distance. It must cover a thread's bandwidth x the memory latency: this
 * machine moves between ~47 and ~78 GB/s for 2 threads (other tenants), and at the high end a thread
 * streams ~38 GB/s, i.e. ~4.5 KB per 120 ns. bench/stream, 4096-wide weights, fraction of a plain read:
 *   q4_0  2048 B: 74-93 % at 72-81 GB/s, 99-103 % at ~47;  4096 B: 88-103 % and 95-100 %
 *   q4_K  2 super-blocks: 79-83 % at ~77, 96-99 % at ~47;  3: 89 % and 95-96 %;  4: 88 % and 86-94 % */
#define PF_Q 4096 /* q8_0 / q4_0: bytes ahead */
#define PF_K4 3   /* q4_K / q5_K / q6_K: super-blocks ahead (7.1 KB of q4_K, 8.6 KB of q5_K, 10 KB of q6_K) */

/* The 8 weight vectors of a block: w[k] pairs with activation dword k (elements 4k..4k+3). q4_0 (and
 * q5_0, iq4_nl): the low nibbles of chunk c are elements 4c.., the high nibbles 16 + 4c.., i.e. dword
 * 4 + c; q5_0 adds its fifth bits (bit k of the hb vector: one byte test and a masked add of 16), iq4_nl
 * looks its levels up (K + 128, unsigned); q4_1 / q5_1 as q4_0 / q5_0 after their 32 bytes of mins. */
ALWAYS void load_w(int kind, const uint8_t *blk, __m512i w[8]) {
    if (kind == K_Q8) {
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) w[c] = _mm512_loadu_si512(blk + 32 + 64 * c);
        return;
    }
    static const uint8_t lev_n4[16] = {1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};
    const __m512i m = _mm512_set1_epi8(0x0f);
    const int q0 = kind == K_M4 || kind == K_M5 ? 64 : 32;
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512i v = _mm512_loadu_si512(blk + q0 + 64 * c);
        w[c] = _mm512_and_si512(v, m);
        w[4 + c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
    }
    if (kind == K_Q5 || kind == K_M5) {
        const __m512i hb = _mm512_loadu_si512(blk + q0 + 256), k16 = _mm512_set1_epi8(16);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            w[k] = _mm512_mask_add_epi8(w[k], _mm512_test_epi8_mask(hb, _mm512_set1_epi8((char)(1 << k))), w[k], k16);
    } else if (kind == K_N4) {
        const __m512i tab = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)lev_n4));
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) w[k] = _mm512_shuffle_epi8(tab, w[k]);
    }
}

static inline int32_t ld32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline float ldf(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* The accumulators of a tile of T tokens, and their results: token t's 16 rows are contiguous in y. */
ALWAYS void acc_zero(int T, __m512 acc[8]) {
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
}

ALWAYS void acc_store(int T, __m512 acc[8], float *y, int64_t ldy) {
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

/* y[t][r] for the group at w, t < T: tokens xs bytes apart from x. */
ALWAYS void tile(int kind, int T, int64_t nb, const uint8_t *w, const uint8_t *x, int64_t xs, float *y,
                 int64_t ldy) {
    const int64_t bb = kind == K_Q8 ? 544 : kind == K_Q5 ? 352 : kind == K_M4 ? 320 : kind == K_M5 ? 384 : 288;
    const int mins = kind == K_M4 || kind == K_M5;
    const int split = T < 4; /* few accumulators: two vpdpbusd chains per block */
    __m512 acc[8];           /* T <= 8: a constant once inlined, the unused ones vanish */
    acc_zero(T, acc);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * bb;
        if (PF_Q && T <= 2) /* decode: the hardware prefetchers alone keep too few lines in flight */
            for (int k = 0; k < (bb + 63) / 64; k++)
                _mm_prefetch((const char *)blk + 64 * k + PF_Q, _MM_HINT_T0);
        __m512i wv[8];
        load_w(kind, blk, wv);
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        __m512 mw = mins ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32))) : dw;
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const uint8_t *xb = x + t * xs + b * PK_X_BLOCK;
            /* the offset that makes the weights signed; q4_1 / q5_1 keep theirs unsigned (bytes 4..7: s) */
            __m512i s0 = mins ? _mm512_setzero_si512() : _mm512_set1_epi32(ld32(xb + 4)), s1 = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m512i xk = _mm512_set1_epi32(ld32(xb + 8 + 4 * k));
                if (split && (k & 1))
                    s1 = _mm512_dpbusd_epi32(s1, wv[k], xk);
                else
                    s0 = _mm512_dpbusd_epi32(s0, wv[k], xk);
            }
            if (split) s0 = _mm512_add_epi32(s0, s1);
            __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(ldf(xb)));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), sc, acc[t]);
            if (mins) acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(ldf(xb + 4)), acc[t]);
        }
    }
    acc_store(T, acc, y, ldy);
}

/* ---- q4_K, q5_K -----------------------------------------------------------------------------------
 * Per super-block and group: sub-block s's 8 nibble vectors (the low or high nibbles of c = s / 2's 8
 * vectors) are made once for the T tokens; per token 8 vpdpbusd give the 16 rows' exact sums, one
 * vpmulld applies the rows' 6-bit scales, and the int32 total of the 8 sub-blocks meets d * dx in one
 * FMA; the mins' term (16-bit mins x 16-bit activation sums) is 4 vpdpwssd and one FMA with dmin * dx.
 * q5_K (q5): each nibble vector gets its fifth bit from bit s of the qh plane's vector (one byte test,
 * one masked add of 16), the rest as q4_K. */
ALWAYS void tile_k4(int q5, int T, int64_t nb, const uint8_t *w, const uint8_t *x, int64_t xs, float *y,
                    int64_t ldy) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), k16 = _mm512_set1_epi8(16);
    const int64_t bb = q5 ? PK_K5_BLOCK : PK_K4_BLOCK;
    __m512 acc[8];
    acc_zero(T, acc);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * bb;
        if (PF_K4 && T == 1) {
            for (int k = 0; k < 5; k++) _mm_prefetch((const char *)blk + 64 * k + PF_K4 * bb, _MM_HINT_T0);
            if (q5)
                for (int k = 0; k < 8; k++)
                    _mm_prefetch((const char *)blk + PK_K4_BLOCK + 64 * k + PF_K4 * bb, _MM_HINT_T0);
        }
        __m512i sumi[8];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int s = 0; s < 8; s++) {
            const uint8_t *q = blk + 320 + (s / 2) * 512;
            if (PF_K4 && T == 1 && !(s & 1)) /* decode: the window holds too little of this long loop */
                for (int k = 0; k < 8; k++)
                    _mm_prefetch((const char *)q + 64 * k + PF_K4 * bb, _MM_HINT_T0);
            __m512i wv[8];
            const __m512i bit = _mm512_set1_epi8((char)(1 << s));
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m512i v = _mm512_loadu_si512(q + 64 * k);
                wv[k] = _mm512_and_si512(s & 1 ? _mm512_srli_epi16(v, 4) : v, m4);
                if (q5) {
                    __mmask64 h = _mm512_test_epi8_mask(_mm512_loadu_si512(blk + PK_K4_BLOCK + 64 * k), bit);
                    wv[k] = _mm512_mask_add_epi8(wv[k], h, wv[k], k16);
                }
            }
            __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 64 + 16 * s)));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const uint8_t *xq = x + t * xs + b * PK_XK_BLOCK + 32 + 32 * s;
                __m512i i0 = _mm512_setzero_si512(), i1 = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int k = 0; k < 8; k += 2) {
                    i0 = _mm512_dpbusd_epi32(i0, wv[k], _mm512_set1_epi32(ld32(xq + 4 * k)));
                    i1 = _mm512_dpbusd_epi32(i1, wv[k + 1], _mm512_set1_epi32(ld32(xq + 4 * k + 4)));
                }
                sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(_mm512_add_epi32(i0, i1), sc));
            }
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const uint8_t *xb = x + t * xs + b * PK_XK_BLOCK;
            __m512i summ = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                summ = _mm512_dpwssd_epi32(
                    summ, _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(blk + 192 + 32 * i))),
                    _mm512_set1_epi32(ld32(xb + 16 + 4 * i)));
            __m512 dx = _mm512_set1_ps(ldf(xb));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]), _mm512_mul_ps(dw, dx), acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(summ), _mm512_mul_ps(dm, dx), acc[t]);
        }
    }
    acc_store(T, acc, y, ldy);
}

/* ---- q6_K ----------------------------------------------------------------------------------------
 * Per super-block, group of 16 elements (4 chunks) by group: the chunks' u = q + 32 are assembled from
 * the two bit planes (low nibble | top 2 bits << 4) once for the T tokens; per token 4 vpdpbusd started
 * at the activation's -32 * (group sum), one vpmulld by the rows' signed scales, one add; one FMA with
 * d * dx per super-block. */
ALWAYS void tile_k6(int T, int64_t nb, const uint8_t *w, const uint8_t *x, int64_t xs, float *y,
                    int64_t ldy) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    __m512 acc[8];
    acc_zero(T, acc);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * PK_K6_BLOCK;
        __m512i sumi[8];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int q = 0; q < 16; q++) { /* group q: chunks 4q .. 4q + 3 */
            if (PF_K4 && T == 1)
                for (int k = 0; k < 4; k++)
                    _mm_prefetch((const char *)blk + 256 * q + 64 * k + PF_K4 * PK_K6_BLOCK, _MM_HINT_T0);
            __m512i u[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                int c = 4 * q + k, i = c / 16;
                __m512i lo = _mm512_loadu_si512(blk + 288 + (c % 32) * 64);
                __m512i hi = _mm512_loadu_si512(blk + 2336 + (c % 16) * 64);
                lo = _mm512_and_si512(c < 32 ? lo : _mm512_srli_epi16(lo, 4), m4);
                /* the 2 bits at 2i..2i+1 to bits 4..5 (16-bit shifts: what crosses a byte is masked off) */
                hi = i == 0   ? _mm512_slli_epi16(hi, 4)
                     : i == 1 ? _mm512_slli_epi16(hi, 2)
                     : i == 2 ? hi
                              : _mm512_srli_epi16(hi, 2);
                u[k] = _mm512_or_si512(lo, _mm512_and_si512(hi, m30));
            }
            __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * q)));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const uint8_t *xb = x + t * xs + b * PK_XK6_BLOCK;
                __m512i is = _mm512_set1_epi32(ld32(xb + 16 + 4 * q));
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++)
                    is = _mm512_dpbusd_epi32(is, u[k], _mm512_set1_epi32(ld32(xb + 80 + 16 * q + 4 * k)));
                sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(is, sc));
            }
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512 dx = _mm512_set1_ps(ldf(x + t * xs + b * PK_XK6_BLOCK));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]), _mm512_mul_ps(dw, dx), acc[t]);
        }
    }
    acc_store(T, acc, y, ldy);
}

/* ---- the level-table layouts: iq4_xs, iq3_s, iq3_xxs, iq2_s ---------------------------------------------------
 * Per super-block, block by block: the block's 4 stored vectors split into 8 nibble vectors and looked
 * up (vpshufb) as unsigned levels K + 128, once for the T tokens; per token two chains of 4 vpdpbusd (the
 * block's two groups of 16 elements), each started at the activation's -128 * (group sum), which makes
 * them the exact sums of K x; the rows' scales by vpmulld (one per block, iq2_s one per group), added;
 * per super-block the plain dots' float step, a multiply and an add (no FMA); iq2_s's 0.125 and iq3_xxs's
 * 0.25 at the end. */
ALWAYS void tile_lt(int kind, int T, int64_t nb, const uint8_t *w, const uint8_t *x, int64_t xs, float *y,
                    int64_t ldy) {
    /* the levels + 128, as bytes (packed.c's tables) */
    static const uint8_t lev_i4[16] = {1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};
    static const uint8_t lev_i3[16] = {129, 131, 133, 135, 137, 139, 141, 143, 127, 125, 123, 121, 119, 117, 115, 113};
    static const uint8_t lev_x3[16] = {132, 140, 148, 156, 164, 172, 180, 190, 124, 116, 108, 100, 92, 84, 76, 66};
    static const uint8_t lev_i2[16] = {136, 153, 171, 128, 128, 128, 128, 128, 120, 103, 85, 128, 128, 128, 128, 128};
    const int g16 = kind == K_I2; /* scales per group of 16 */
    const int64_t bb = g16 ? PK_LT2_BLOCK : PK_LT_BLOCK, qo = g16 ? 288 : 160;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i tab = _mm512_broadcast_i32x4(
        _mm_loadu_si128((const __m128i *)(kind == K_I4 ? lev_i4 : kind == K_I3 ? lev_i3 : kind == K_X3 ? lev_x3 : lev_i2)));
    const float fin = kind == K_I2 ? 0.125f : kind == K_X3 ? 0.25f : 1.0f; /* the dots' final factor */
    __m512 acc[8];
    acc_zero(T, acc);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * bb;
        if (PF_K4 && T == 1)
            for (int k = 0; k < (g16 ? 5 : 3); k++) _mm_prefetch((const char *)blk + 64 * k + PF_K4 * bb, _MM_HINT_T0);
        __m512i sumi[8];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int s = 0; s < 8; s++) {
            const uint8_t *q = blk + qo + 256 * s;
            if (PF_K4 && T == 1)
                for (int k = 0; k < 4; k++) _mm_prefetch((const char *)q + 64 * k + PF_K4 * bb, _MM_HINT_T0);
            __m512i wv[8]; /* wv[k]: elements 4k..4k+3 of the block (k < 4: low nibbles, else high) */
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_loadu_si512(q + 64 * k);
                wv[k] = _mm512_shuffle_epi8(tab, _mm512_and_si512(v, m4));
                wv[4 + k] = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
            }
            const __m512i sc0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * (g16 ? 2 * s : s))));
            const __m512i sc1 = g16 ? _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 48 + 32 * s))) : sc0;
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const uint8_t *xb = x + t * xs + b * PK_XLT_BLOCK, *xq = xb + 80 + 32 * s;
                __m512i i0 = _mm512_set1_epi32(ld32(xb + 16 + 8 * s)), i1 = _mm512_set1_epi32(ld32(xb + 20 + 8 * s));
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    i0 = _mm512_dpbusd_epi32(i0, wv[k], _mm512_set1_epi32(ld32(xq + 4 * k)));
                    i1 = _mm512_dpbusd_epi32(i1, wv[4 + k], _mm512_set1_epi32(ld32(xq + 16 + 4 * k)));
                }
                sumi[t] = g16 ? _mm512_add_epi32(sumi[t], _mm512_add_epi32(_mm512_mullo_epi32(i0, sc0),
                                                                            _mm512_mullo_epi32(i1, sc1)))
                              : _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(_mm512_add_epi32(i0, i1), sc0));
            }
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512 dx = _mm512_set1_ps(ldf(x + t * xs + b * PK_XLT_BLOCK));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_cvtepi32_ps(sumi[t]), _mm512_mul_ps(dw, dx)));
        }
    }
    if (fin != 1.0f) {
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[t] = _mm512_mul_ps(acc[t], _mm512_set1_ps(fin));
    }
    acc_store(T, acc, y, ldy);
}

/* ---- the loop over tiles ---------------------------------------------------------------------------- */
/* One tile of T tokens of layout kind. */
ALWAYS void tile_kind(int kind, int T, int64_t nb, const uint8_t *w, const uint8_t *x, int64_t xs, float *y,
                      int64_t ldy) {
    /* clang-format off */
    switch (kind) {
    case K_Q8: tile(K_Q8, T, nb, w, x, xs, y, ldy); break;
    case K_Q4: tile(K_Q4, T, nb, w, x, xs, y, ldy); break;
    case K_Q5: tile(K_Q5, T, nb, w, x, xs, y, ldy); break;
    case K_N4: tile(K_N4, T, nb, w, x, xs, y, ldy); break;
    case K_M4: tile(K_M4, T, nb, w, x, xs, y, ldy); break;
    case K_M5: tile(K_M5, T, nb, w, x, xs, y, ldy); break;
    case K_K4: tile_k4(0, T, nb, w, x, xs, y, ldy); break;
    case K_K5: tile_k4(1, T, nb, w, x, xs, y, ldy); break;
    case K_I4: tile_lt(K_I4, T, nb, w, x, xs, y, ldy); break;
    case K_I3: tile_lt(K_I3, T, nb, w, x, xs, y, ldy); break;
    case K_X3: tile_lt(K_X3, T, nb, w, x, xs, y, ldy); break;
    case K_I2: tile_lt(K_I2, T, nb, w, x, xs, y, ldy); break;
    default: tile_k6(T, nb, w, x, xs, y, ldy); break;
    }
    /* clang-format on */
}

/* nt (1..8) tokens: the token count as a constant for the tile. */
ALWAYS void tile_any(int kind, int nt, int64_t nb, const uint8_t *w, const uint8_t *x, int64_t xs, float *y,
                     int64_t ldy) {
    /* clang-format off */
    switch (nt) {
#define TILE_T(n) case n: tile_kind(kind, n, nb, w, x, xs, y, ldy); break;
    TILE_T(1) TILE_T(2) TILE_T(3) TILE_T(4) TILE_T(5) TILE_T(6) TILE_T(7)
#undef TILE_T
    default: tile_kind(kind, 8, nb, w, x, xs, y, ldy); break;
    }
    /* clang-format on */
}

/* Two levels: a block of tokens whose activations stay in L3 (X_BLOCK_BYTES) while the thread's weights
 * stream from memory once per block, and within it chunks of groups whose weights stay in L2
 * (W_CHUNK_BYTES) while the block's tiles of 8 tokens pass over them. (One level, blocks of tokens
 * sized for L2, re-read an 8B model's ffn_down from memory every 8 tokens.) Decode (up to 8 tokens)
 * is one tile per group, the groups in order: one sequential stream. */
ALWAYS void entry(int kind, int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs,
                  float *y, int64_t ldy) {
    const int64_t nb = kind <= K_M5 ? n / 32 : n / 256;
    const int64_t gb = nb * (kind == K_Q8   ? 544
                             : kind == K_Q4 ? 288
                             : kind == K_Q5 ? 352
                             : kind == K_N4 ? 288
                             : kind == K_M4 ? 320
                             : kind == K_M5 ? 384
                             : kind == K_K4 ? PK_K4_BLOCK
                             : kind == K_K5 ? PK_K5_BLOCK
                             : kind == K_K6 ? PK_K6_BLOCK
                             : kind == K_I2 ? PK_LT2_BLOCK
                                            : PK_LT_BLOCK);
    const uint8_t *w = wp, *x = xp;
    int64_t tb = xs > 0 ? X_BLOCK_BYTES / xs / 8 * 8 : 8; /* (xs may be 0 for 1 token) */
    int64_t gc = W_CHUNK_BYTES / gb;
    if (tb < 8) tb = 8;
    if (gc < 1) gc = 1;
    for (int64_t t0 = 0; t0 < nt; t0 += tb) {
        int64_t t1 = t0 + tb < nt ? t0 + tb : nt;
        for (int64_t g0 = 0; g0 < ng; g0 += gc) {
            int64_t g1 = g0 + gc < ng ? g0 + gc : ng;
            for (int64_t t = t0; t < t1; t += 8) {
                int k = t1 - t < 8 ? (int)(t1 - t) : 8;
                for (int64_t g = g0; g < g1; g++)
                    tile_any(kind, k, nb, w + g * gb, x + t * xs, xs, y + t * ldy + 16 * g, ldy);
            }
        }
    }
}

#define PK_ENTRY(name, kind)                                                                                 \
    void name(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,       \
              int64_t ldy) {                                                                                 \
        entry(kind, n, ng, nt, wp, xp, xs, y, ldy);                                                          \
    }
PK_ENTRY(pk_gemm_q8_0_avx512, K_Q8)
PK_ENTRY(pk_gemm_q4_0_avx512, K_Q4)
PK_ENTRY(pk_gemm_q5_0_avx512, K_Q5)
PK_ENTRY(pk_gemm_iq4_nl_avx512, K_N4)
PK_ENTRY(pk_gemm_q4_1_avx512, K_M4)
PK_ENTRY(pk_gemm_q5_1_avx512, K_M5)
PK_ENTRY(pk_gemm_q4_K_avx512, K_K4)
PK_ENTRY(pk_gemm_q5_K_avx512, K_K5)
PK_ENTRY(pk_gemm_q6_K_avx512, K_K6)
PK_ENTRY(pk_gemm_iq4_xs_avx512, K_I4)
PK_ENTRY(pk_gemm_iq3_s_avx512, K_I3)
PK_ENTRY(pk_gemm_iq3_xxs_avx512, K_X3)
PK_ENTRY(pk_gemm_iq2_s_avx512, K_I2)
