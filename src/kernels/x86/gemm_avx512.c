/* AVX-512 batched dots (GEMM) of q8_0 and q4_0 weights with q8_0 activations, for prompt processing.
 *
 * Bit-identical to dot_q8_0_avx512 / dot_q4_0_avx512 (kernels_avx512.c) for every (row, token), by
 * construction: those dots work on pairs of blocks (one 512-bit register: lanes 0-7 block i, 8-15 block
 * i+1), FMA each pair's exact int32 lanes times fl(d_w d_x) into one of four accumulators, and finish
 * with hsum16((acc0 + acc1) + (acc2 + acc3)). Which accumulator a pair goes to depends on n alone:
 *     pair 4g + k of each group g of 8 blocks   -> acc k
 *     the whole pairs after the last group      -> acc0 (after the groups)
 *     a last odd block (upper lanes zero)       -> acc1 (after the groups)
 * Here the pairs are visited *accumulator by accumulator* ("passes", in that order within each), so a
 * tile of R rows x T tokens needs only R*T registers of accumulators; the four partial sums of each
 * output are kept and combined as the dot combines them. Each FMA gets the same operands as the dot's:
 * the int32 lanes are exact whichever way they are computed, the scale vector holds the same products.
 *
 *   int32 lanes   vpdpbusd(-128 * S, x + 128, ws) = sum (x + 128) ws - 128 sum ws = sum x ws, exactly, with
 *                 ws the signed weight bytes (q8_0: w, q4_0: nibble - 8) and S the per-lane sums of
 *                 four of them, computed when the weights are packed.
 *
 * Layouts. An activation row is packed once per matmul (gemm_pack_x, the same for q8_0 and q4_0), in
 * pass order: per pair 128 bytes { x ^ 0x80 [64], d_x of the two blocks [16 x f32, 8 each] }. The
 * weights are packed per tile of R rows (on the stack) as { ws [64], -128 S [16 x int32], d_w [16 x f32] }
 * per pair; then every T-token tile runs over them from L1/L2 while the packed tokens stream past.
 * Per (row, token, pair): vpdpbusd, vcvtdq2ps, vmulps (the scales), vfmadd — as the dot, less its
 * per-row work.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "../kernels_impl.h"
#include "../types.h"

#define GEMM_R 4       /* rows per register tile */
#define GEMM_T 6       /* tokens per register tile (at most 6) */
#define GEMM_MAX_E 256 /* pairs per row the stack pack holds: n <= 16384 */
#define XE_BYTES 128   /* packed activation bytes per pair */
#define X_BLOCK_BYTES (4096 * 1024) /* tokens per pass over the rows: each weight row is packed (read) once per block */

/* ---- pass order ---------------------------------------------------------------------------------- */

typedef struct {
    int64_t nb, ne;         /* blocks, pairs (a last odd block is a half pair) */
    int64_t bound[5];       /* pass k holds entries bound[k] .. bound[k+1]-1 */
} pass_plan;

static void plan_of(int64_t n, pass_plan *p) {
    int64_t nb = n / QK8_0, ng = nb / 8, tail_pairs = nb / 2 - 4 * ng;
    p->nb = nb;
    p->ne = (nb + 1) / 2;
    p->bound[0] = 0;
    p->bound[1] = ng + tail_pairs;
    p->bound[2] = p->bound[1] + ng + (nb & 1);
    p->bound[3] = p->bound[2] + ng;
    p->bound[4] = p->bound[3] + ng;
}

/* The pair index (blocks 2p, 2p+1) of entry e of the pass order. */
static inline int64_t pair_of(const pass_plan *p, int64_t e) {
    int64_t ng = p->nb / 8;
    if (e < p->bound[1]) return e < ng ? 4 * e : 4 * ng + (e - ng); /* pass 0, then the tail pairs */
    if (e < p->bound[2]) return e - p->bound[1] < ng ? 4 * (e - p->bound[1]) + 1 : p->nb / 2; /* the odd block */
    if (e < p->bound[3]) return 4 * (e - p->bound[2]) + 2;
    return 4 * (e - p->bound[3]) + 3;
}

static inline float f16s(uint16_t h) {
    return _cvtsh_ss(h);
}

/* [a x 8 | b x 8] */
static inline __m512 pair_vec(float a, float b) {
    return _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(a), _mm512_set1_ps(b));
}

static inline float hsum16(__m512 v) { /* as kernels_avx512.c */
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- packing ------------------------------------------------------------------------------------- */

static int64_t gemm_x_bytes_q(int64_t n) {
    int64_t ne = (n / QK8_0 + 1) / 2;
    return ne <= GEMM_MAX_E ? ne * XE_BYTES : 0;
}

/* x: a q8_0 row, into { x ^ 0x80 [64], d_x [16] } per entry. A half pair's upper bytes do not matter
 * (the weights' are zero there), its upper scales are 0. */
static void gemm_pack_x_q(int64_t n, const void *x, void *xp) {
    const block_q8_0 *b = x;
    pass_plan pl;
    plan_of(n, &pl);
    uint8_t *o = xp;
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    for (int64_t e = 0; e < pl.ne; e++, o += XE_BYTES) {
        int64_t i = 2 * pair_of(&pl, e);
        bool half = i + 1 >= pl.nb;
        __m256i lo = _mm256_loadu_si256((const __m256i *)b[i].qs);
        __m512i xs = half ? _mm512_zextsi256_si512(lo)
                          : _mm512_inserti64x4(_mm512_castsi256_si512(lo),
                                               _mm256_loadu_si256((const __m256i *)b[i + 1].qs), 1);
        __m512 d = half ? _mm512_maskz_mov_ps(0x00ff, _mm512_set1_ps(f16s(b[i].d)))
                        : pair_vec(f16s(b[i].d), f16s(b[i + 1].d));
        _mm512_storeu_si512(o, _mm512_xor_si512(xs, k80));
        _mm512_storeu_ps(o + 64, d);
    }
}

/* The signed weight bytes ws of an entry (q8_0: w, q4_0: nibble - 8; a half pair's upper 32 zero) into
 * { ws [64], -128 S [16 x int32], d_w [16] }, S the sums of four bytes per lane: then
 * vpdpbusd(-128 S, x + 128, ws) = sum (x + 128) ws - 128 sum ws = sum x ws, exactly. */
static inline void put_w(__m512i ws, __m512 d, __m512i *out) {
    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), ws); /* 128 S */
    out[0] = ws;
    out[1] = _mm512_sub_epi32(_mm512_setzero_si512(), s);
    out[2] = _mm512_castps_si512(d);
}

static void pack_w_q8_0(const pass_plan *pl, const int32_t *order, const void *row, __m512i *out) {
    const block_q8_0 *a = row;
    for (int64_t e = 0; e < pl->ne; e++, out += 3) {
        int64_t i = 2 * order[e];
        bool half = i + 1 >= pl->nb;
        __m256i lo = _mm256_loadu_si256((const __m256i *)a[i].qs);
        if (half) put_w(_mm512_zextsi256_si512(lo), _mm512_maskz_mov_ps(0x00ff, _mm512_set1_ps(f16s(a[i].d))), out);
        else
            put_w(_mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)a[i + 1].qs), 1),
                  pair_vec(f16s(a[i].d), f16s(a[i + 1].d)), out);
    }
}

/* q4_0: nibble - 8 in element order [lo(i) | hi(i) | lo(i+1) | hi(i+1)]. */
static void pack_w_q4_0(const pass_plan *pl, const int32_t *order, const void *row, __m512i *out) {
    const block_q4_0 *a = row;
    for (int64_t e = 0; e < pl->ne; e++, out += 3) {
        int64_t i = 2 * order[e];
        bool half = i + 1 >= pl->nb;
        __m512i r = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)a[i].qs));
        if (!half) r = _mm512_mask_broadcast_i32x4(r, 0xff00, _mm_loadu_si128((const __m128i *)a[i + 1].qs));
        r = _mm512_mask_srli_epi16(r, 0xff00ff00u, r, 4);
        r = _mm512_sub_epi8(_mm512_and_si512(r, _mm512_set1_epi8(0x0f)), _mm512_set1_epi8(8));
        if (half) put_w(_mm512_maskz_mov_epi32(0x00ff, r), _mm512_maskz_mov_ps(0x00ff, _mm512_set1_ps(f16s(a[i].d))), out);
        else put_w(r, pair_vec(f16s(a[i].d), f16s(a[i + 1].d)), out);
    }
}

/* ---- the register tile ----------------------------------------------------------------------------- */

/* R rows (packed, ne entries of 3 vectors each) x T tokens (packed rows xp_stride apart). */
static inline __attribute__((always_inline)) void tile(const int R, const int T, const pass_plan *pl,
                                                       const __m512i *wp, const uint8_t *xp, int64_t xp_stride,
                                                       float *y, int64_t ldy) {
    __m512 part[4][GEMM_R][GEMM_T];
    const int64_t ne = pl->ne;
    for (int k = 0; k < 4; k++) {
        __m512 acc[GEMM_R][GEMM_T];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
        for (int64_t e = pl->bound[k]; e < pl->bound[k + 1]; e++) {
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const uint8_t *xe = xp + t * xp_stride + e * XE_BYTES;
                __m512i xu = _mm512_loadu_si512(xe);
                __m512 dx = _mm512_loadu_ps(xe + 64);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const __m512i *we = wp + 3 * (r * ne + e);
                    __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(we[1], xu, we[0]));
                    acc[r][t] = _mm512_fmadd_ps(p, _mm512_mul_ps(_mm512_castsi512_ps(we[2]), dx), acc[r][t]);
                }
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) part[k][r][t] = acc[r][t];
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            y[t * ldy + r] = hsum16(_mm512_add_ps(_mm512_add_ps(part[0][r][t], part[1][r][t]),
                                                  _mm512_add_ps(part[2][r][t], part[3][r][t])));
}

#define TILE_CASE(R, T)                                                                                        \
    case (R) * 8 + (T): tile(R, T, pl, wp, xp, xp_stride, y, ldy); break;
#define TILE_ROW(R) TILE_CASE(R, 1) TILE_CASE(R, 2) TILE_CASE(R, 3) TILE_CASE(R, 4) TILE_CASE(R, 5) TILE_CASE(R, 6)

static void tile_any(int R, int T, const pass_plan *pl, const __m512i *wp, const uint8_t *xp, int64_t xp_stride,
                     float *y, int64_t ldy) {
    switch (R * 8 + T) {
        TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4)
    default: break;
    }
}

typedef void (*pack_w_fn)(const pass_plan *pl, const int32_t *order, const void *row, __m512i *out);

/* Tokens in blocks that stay in L2; per block, the rows in tiles of GEMM_R packed once, and every
 * GEMM_T-token tile of the block run over them. */
static inline void gemm_q(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,
                          int64_t xp_stride, float *y, int64_t ldy, pack_w_fn pack_w) {
    pass_plan pl;
    plan_of(n, &pl);
    int32_t order[GEMM_MAX_E];
    for (int64_t e = 0; e < pl.ne; e++) order[e] = (int32_t)pair_of(&pl, e);
    _Alignas(64) __m512i wp[GEMM_R * GEMM_MAX_E * 3];
    int64_t xb = X_BLOCK_BYTES / (pl.ne * XE_BYTES);
    xb = xb < GEMM_T ? GEMM_T : xb / GEMM_T * GEMM_T;
    const uint8_t *xbase = xp;
    for (int64_t t0 = 0; t0 < nt; t0 += xb) {
        int64_t t1 = t0 + xb < nt ? t0 + xb : nt;
        for (int64_t r0 = 0; r0 < nr; r0 += GEMM_R) {
            int R = nr - r0 < GEMM_R ? (int)(nr - r0) : GEMM_R;
            for (int r = 0; r < R; r++)
                pack_w(&pl, order, (const uint8_t *)w + (r0 + r) * w_stride, wp + 3 * r * pl.ne);
            for (int64_t t = t0; t < t1; t += GEMM_T) {
                int T = t1 - t < GEMM_T ? (int)(t1 - t) : GEMM_T;
                tile_any(R, T, &pl, wp, xbase + t * xp_stride, xp_stride, y + t * ldy + r0, ldy);
            }
        }
    }
}

static void gemm_q8_0(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,
                      int64_t xp_stride, float *y, int64_t ldy) {
    gemm_q(n, nr, nt, w, w_stride, xp, xp_stride, y, ldy, pack_w_q8_0);
}

static void gemm_q4_0(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,
                      int64_t xp_stride, float *y, int64_t ldy) {
    gemm_q(n, nr, nt, w, w_stride, xp, xp_stride, y, ldy, pack_w_q4_0);
}

/* ---- f16 and bf16 ---------------------------------------------------------------------------------- */

/* dot_f16_avx512 / dot_bf16_avx512 / dot_f32_avx512 work on chunks of C elements (16 f16 converted to
 * f32, 32 bf16 for vdpbf16ps, or 16 f32): chunk 4g + k of each group of four into acc k, the whole chunks
 * after the last group into acc0, a masked (zero-filled) last partial chunk into acc1, then
 * hsum16((acc0 + acc1) + (acc2 + acc3)). The same passes as above; the rows stay in their own layout (a
 * chunk is a plain load), the packed activation row is the row itself. Tiles of 4 rows x 6 tokens: per
 * chunk 4 + 6 loads for 24 FMAs, where the dot makes 2 loads per FMA (for F32 weights that is what
 * bounds a batch of a few tokens, a speculative verification or a server's few sequences, well below
 * the FMA peak). */

#define GEMM_TF 6 /* tokens per register tile (float types) */
#define GEMM_FEW 12 /* F32, at most this many tokens: stile (below) */
#define GEMM_PF 4096 /* stile's prefetch distance, bytes ahead in the rows */

typedef struct {
    int64_t n, c, nc, ng; /* elements, chunk size, chunks (a partial last one included), groups */
    int64_t bound[5];
} fplan;

static void fplan_of(int64_t n, int64_t c, fplan *p) {
    int64_t full = n / c, ng = full / 4;
    p->n = n, p->c = c, p->nc = (n + c - 1) / c, p->ng = ng;
    p->bound[0] = 0;
    p->bound[1] = full - 3 * ng;                 /* ng of pass 0, then the tail chunks */
    p->bound[2] = p->bound[1] + ng + (n % c != 0); /* ng of pass 1, then the partial chunk */
    p->bound[3] = p->bound[2] + ng;
    p->bound[4] = p->bound[3] + ng;
}

/* The element offset of entry e of the pass order. */
static inline int64_t fchunk_of(const fplan *p, int64_t e) {
    int64_t ng = p->ng, ch;
    if (e < p->bound[1]) ch = e < ng ? 4 * e : 4 * ng + (e - ng);
    else if (e < p->bound[2]) ch = e - p->bound[1] < ng ? 4 * (e - p->bound[1]) + 1 : p->nc - 1;
    else if (e < p->bound[3]) ch = 4 * (e - p->bound[2]) + 2;
    else ch = 4 * (e - p->bound[3]) + 3;
    return ch * p->c;
}

static int64_t gemm_x_bytes_f16(int64_t n) {
    return n <= 32768 ? n * 2 : 0;
}

static void gemm_pack_x_copy16(int64_t n, const void *x, void *xp) {
    memcpy(xp, x, (size_t)n * 2);
}

/* f16: chunk of 16 as f32 (masked: rem elements, rest zero) */
static inline __m512 f16_chunk(const uint16_t *p, int64_t rem) {
    return _mm512_cvtph_ps(rem >= 16 ? _mm256_loadu_si256((const __m256i *)p)
                                     : _mm256_maskz_loadu_epi16((__mmask16)((1u << rem) - 1), p));
}

static inline __m512i bf16_chunk(const uint16_t *p, int64_t rem) {
    return rem >= 32 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi16((__mmask32)((1ull << rem) - 1), p);
}

static inline __m512 f32_chunk(const float *p, int64_t rem) {
    return rem >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps((__mmask16)((1u << rem) - 1), p);
}

/* the kinds of float row (ftile's BF) */
#define KIND_F16 0
#define KIND_BF16 1
#define KIND_F32 2
#define ESZ_(BF) ((BF) == KIND_F32 ? 4 : 2) /* bytes per element */

/* elements [off, off + 16) of an f16 or f32 row as f32 (masked: rem elements, rest zero) */
static inline __attribute__((always_inline)) __m512 float_chunk(const int BF, const uint8_t *row, int64_t off,
                                                                int64_t rem) {
    return BF == KIND_F32 ? f32_chunk((const float *)row + off, rem) : f16_chunk((const uint16_t *)row + off, rem);
}

/* w: the tile's first row, ws bytes from one row to the next */
/* pf: the tile's first token group (its rows come from memory: fetched ahead in the first pass) */
static inline __attribute__((always_inline)) void ftile(const int R, const int T, const int BF, const fplan *pl,
                                                        const uint8_t *w, int64_t ws, const uint8_t *xp,
                                                        int64_t xs, float *y, int64_t ldy, bool pf) {
    __m512 part[4][GEMM_R][GEMM_TF];
    for (int k = 0; k < 4; k++) {
        __m512 acc[GEMM_R][GEMM_TF];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 6
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
        for (int64_t e = pl->bound[k]; e < pl->bound[k + 1]; e++) {
            int64_t off = fchunk_of(pl, e), rem = pl->n - off;
            if (pf && k == 0) /* the first pass touches every fourth line: fetch the whole rows ahead of it */
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    for (int64_t b = 0; b < 4 * pl->c * ESZ_(BF); b += 64)
                        _mm_prefetch((const char *)w + r * ws + off * ESZ_(BF) + GEMM_PF + b, _MM_HINT_T0);
            if (BF == KIND_BF16) {
                __m512i wv[GEMM_R];
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) wv[r] = bf16_chunk((const uint16_t *)(w + r * ws) + off, rem);
#pragma GCC unroll 6
                for (int t = 0; t < T; t++) {
                    __m512i xv = bf16_chunk((const uint16_t *)(xp + t * xs) + off, rem);
#pragma GCC unroll 4
                    for (int r = 0; r < R; r++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)wv[r], (__m512bh)xv);
                }
            } else {
                __m512 wv[GEMM_R];
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) wv[r] = float_chunk(BF, w + r * ws, off, rem);
#pragma GCC unroll 6
                for (int t = 0; t < T; t++) {
                    __m512 xv = float_chunk(BF, xp + t * xs, off, rem);
#pragma GCC unroll 4
                    for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
                }
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 6
            for (int t = 0; t < T; t++) part[k][r][t] = acc[r][t];
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            y[t * ldy + r] = hsum16(_mm512_add_ps(_mm512_add_ps(part[0][r][t], part[1][r][t]),
                                                  _mm512_add_ps(part[2][r][t], part[3][r][t])));
}

/* The same sums for a few tokens, where the weights' bytes bound the time: the four accumulators of each
 * output side by side, so that each row is read once, in order, as the dot reads it (ftile's passes visit
 * a row's chunks four lines apart, which the hardware prefetchers do not stream from memory: 3 tokens of
 * a 1024-wide F32 model took 1.4x the per-row dots' time that way), prefetched GEMM_PF bytes ahead (without
 * it the row's loads wait between the FMAs: measured on a Zen 5, one thread, 65536 x 1024 F32 rows from
 * DRAM, 6 tokens: 26 GFLOP/s, with it 57; the dots 31). One row x up to 6 tokens, 24 accumulators: the
 * row streams past once, the tokens stay in L1. */
#define GEMM_ST 6

/* One chunk of 16 (rem elements, the rest zero) of the row and of each token, into accumulator k */
static inline __attribute__((always_inline)) void sstep(const int T, __m512 acc[4][GEMM_ST], int k, const float *w,
                                                        const uint8_t *xp, int64_t xs, int64_t off, int64_t rem) {
    __m512 wv = f32_chunk(w + off, rem);
#pragma GCC unroll 6
    for (int t = 0; t < T; t++)
        acc[k][t] = _mm512_fmadd_ps(wv, f32_chunk((const float *)(xp + t * xs) + off, rem), acc[k][t]);
}

static inline __attribute__((always_inline)) void stile(const int T, int64_t n, const float *w, const uint8_t *xp,
                                                        int64_t xs, float *y, int64_t ldy) {
    __m512 acc[4][GEMM_ST];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) acc[k][t] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        for (int b = 0; b < 256; b += 64) _mm_prefetch((const char *)(w + i) + GEMM_PF + b, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) sstep(T, acc, k, w, xp, xs, i + 16 * k, 16);
    }
    for (; i + 16 <= n; i += 16) sstep(T, acc, 0, w, xp, xs, i, 16);
    if (i < n) sstep(T, acc, 1, w, xp, xs, i, n - i);
    for (int t = 0; t < T; t++)
        y[t * ldy] = hsum16(_mm512_add_ps(_mm512_add_ps(acc[0][t], acc[1][t]), _mm512_add_ps(acc[2][t], acc[3][t])));
}

#define STILE_CASE(T)                                                                                          \
    case T: stile(T, n, w, xp, xs, y, ldy); break;

static inline __attribute__((always_inline)) void stile_any(int T, int64_t n, const float *w, const uint8_t *xp,
                                                            int64_t xs, float *y, int64_t ldy) {
    switch (T) {
        STILE_CASE(1) STILE_CASE(2) STILE_CASE(3) STILE_CASE(4) STILE_CASE(5) STILE_CASE(6)
    default: break;
    }
}

#define FTILE_CASE(R, T)                                                                                       \
    case (R) * 8 + (T): ftile(R, T, BF, pl, w, ws, xp, xs, y, ldy, pf); break;
#define FTILE_ROW(R) FTILE_CASE(R, 1) FTILE_CASE(R, 2) FTILE_CASE(R, 3) FTILE_CASE(R, 4) FTILE_CASE(R, 5) FTILE_CASE(R, 6)

static inline __attribute__((always_inline)) void ftile_any(const int BF, int R, int T, const fplan *pl,
                                                            const uint8_t *w, int64_t ws, const uint8_t *xp,
                                                            int64_t xs, float *y, int64_t ldy, bool pf) {
    switch (R * 8 + T) {
        FTILE_ROW(1) FTILE_ROW(2) FTILE_ROW(3) FTILE_ROW(4)
    default: break;
    }
}

/* Row tiles of 4 over blocks of tokens that stay in L2 (the tile's rows stay in L1 across them). */
static inline __attribute__((always_inline)) void gemm_f(const int BF, int64_t n, int64_t nr, int64_t nt,
                                                         const void *w, int64_t w_stride, const void *xp,
                                                         int64_t xp_stride, float *y, int64_t ldy) {
    if (BF == KIND_F32 && nt <= GEMM_FEW) { /* a few tokens: rows read in order, the tokens from L1 */
        for (int64_t r = 0; r < nr; r++)
            for (int64_t t = 0; t < nt; t += GEMM_ST)
                stile_any(nt - t < GEMM_ST ? (int)(nt - t) : GEMM_ST, n,
                          (const float *)((const uint8_t *)w + r * w_stride), (const uint8_t *)xp + t * xp_stride,
                          xp_stride, y + t * ldy + r, ldy);
        return;
    }
    fplan pl;
    fplan_of(n, BF == KIND_BF16 ? 32 : 16, &pl);
    int64_t xb = X_BLOCK_BYTES / (n * ESZ_(BF));
    xb = xb < GEMM_TF ? GEMM_TF : xb / GEMM_TF * GEMM_TF;
    for (int64_t t0 = 0; t0 < nt; t0 += xb) {
        int64_t t1 = t0 + xb < nt ? t0 + xb : nt;
        for (int64_t r0 = 0; r0 < nr; r0 += GEMM_R) {
            int R = nr - r0 < GEMM_R ? (int)(nr - r0) : GEMM_R;
            for (int64_t t = t0; t < t1; t += GEMM_TF) {
                int T = t1 - t < GEMM_TF ? (int)(t1 - t) : GEMM_TF;
                ftile_any(BF, R, T, &pl, (const uint8_t *)w + r0 * w_stride, w_stride,
                          (const uint8_t *)xp + t * xp_stride, xp_stride, y + t * ldy + r0, ldy, t == t0);
            }
        }
    }
}

static void gemm_f16(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,
                     int64_t xp_stride, float *y, int64_t ldy) {
    gemm_f(KIND_F16, n, nr, nt, w, w_stride, xp, xp_stride, y, ldy);
}

static void gemm_bf16(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,
                      int64_t xp_stride, float *y, int64_t ldy) {
    gemm_f(KIND_BF16, n, nr, nt, w, w_stride, xp, xp_stride, y, ldy);
}

static int64_t gemm_x_bytes_f32(int64_t n) {
    return n <= 16384 ? n * 4 : 0;
}

static void gemm_pack_x_copy32(int64_t n, const void *x, void *xp) {
    memcpy(xp, x, (size_t)n * 4);
}

static void gemm_f32(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,
                     int64_t xp_stride, float *y, int64_t ldy) {
    gemm_f(KIND_F32, n, nr, nt, w, w_stride, xp, xp_stride, y, ldy);
}

void kernels_fill_gemm_avx512(kernel_type_ops ops[KSLOT_COUNT]) {
    ops[KSLOT_Q8_0].gemm_x_bytes = gemm_x_bytes_q;
    ops[KSLOT_Q8_0].gemm_pack_x = gemm_pack_x_q;
    ops[KSLOT_Q8_0].gemm = gemm_q8_0;
    ops[KSLOT_Q4_0].gemm_x_bytes = gemm_x_bytes_q;
    ops[KSLOT_Q4_0].gemm_pack_x = gemm_pack_x_q;
    ops[KSLOT_Q4_0].gemm = gemm_q4_0;
    ops[KSLOT_F16].gemm_x_bytes = gemm_x_bytes_f16;
    ops[KSLOT_F16].gemm_pack_x = gemm_pack_x_copy16;
    ops[KSLOT_F16].gemm = gemm_f16;
    ops[KSLOT_BF16].gemm_x_bytes = gemm_x_bytes_f16;
    ops[KSLOT_BF16].gemm_pack_x = gemm_pack_x_copy16;
    ops[KSLOT_BF16].gemm = gemm_bf16;
    ops[KSLOT_F32].gemm_x_bytes = gemm_x_bytes_f32;
    ops[KSLOT_F32].gemm_pack_x = gemm_pack_x_copy32;
    ops[KSLOT_F32].gemm = gemm_f32;
}
