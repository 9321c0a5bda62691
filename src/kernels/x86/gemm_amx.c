/* AMX-INT8 kernels of the interleaved layouts (packed.h; reference: pk_gemm_ref), for prompt processing
 * on CPUs with AMX (Intel Sapphire Rapids and later). First the layouts of blocks of 32 (q8_0, q4_0, q5_0,
 * iq4_nl, q4_1, q5_1). Same signature and same bits as the VNNI kernels of the same layout
 * (packed_avx512.c), which they call for what they do not take themselves: fewer than AMX_MIN_T tokens
 * (decode) and the last nt % 16 tokens of a batch.
 *
 * Why the bits agree. The packed numerics are, per (row r, token t), over the blocks b in order:
 *     y = fmaf((float)isum_b, fl(dw_rb * dx_tb), y),   isum_b = sum_{i<32} ws_rbi * x_tbi   (exact int32)
 * (q4_1 / q5_1: then y = fmaf(m_rb, s_tb, y))
 * AMX's TDPBSSD computes exactly those isum_b for a tile of 16 tokens x 16 rows at once (a 16 x 32
 * int8 activation tile times a 32 x 16 int8 weight tile, int32 sums: exact, whatever the order inside).
 * The tile goes to memory and each token's 16 sums (one 512-bit row: the group's 16 rows, the lane
 * layout of the VNNI kernel) meet vcvtdq2ps, vmulps(dw, dx) and vfmadd into that token's accumulator,
 * block after block: the reference's operations in the reference's order. So nothing depends on how
 * many tokens are in flight, and decode (the VNNI kernel) and prompt processing (this one) agree bit
 * for bit. (The plain, unpacked gemm_avx512.c cannot be done this way: its dots sum 4-byte partial
 * sums lane by lane in float, which an int32 block sum cannot reproduce.)
 *
 * Per block and tile of 16 x 16: one TDPBSSD (16 x 16 x 32 int8 MACs), a tile store, then 16 x 3 vector
 * ops, against 16 x 11 for the VNNI kernel (8 vpdpbusd per token). The float work is now the bound.
 *
 * Tiles: C0, C1 (16 x 16 int32) for even and odd blocks, in flight together; A0, A1 (16 tokens x 32
 * activation bytes, loaded straight from the packed activation rows: q at byte 8 of each 40-byte block,
 * xs bytes from one token to the next); B0, B1 (the weights, in TDPBSSD's layout: row k/4 holds bytes k
 * of the 16 rows as 16 dwords). The packed group is exactly that layout but unsigned (q8_0: w + 128;
 * the others: nibbles, two chunks to a byte), so each chunk of blocks of a group is first made signed
 * (q8_0: xor 0x80; q4_0: split the nibbles, minus 8; convert says the rest) into a stack buffer, once per
 * token block, with the rows' f16 scales widened; then every 16-token tile of the token block runs over it. The accumulators live in
 * registers over a chunk and in y between chunks (a float stored and loaded back is the same float).
 *
 * The process must have asked Linux for the tile data state (arch_prctl, kernels.c) before any of this
 * runs: pk_gemm_for hands these out only when kernels_amx_active(). Each call loads its own tile
 * configuration (it is per thread) and releases the tiles at the end.
 *
 * Also here: the iq4_xs gemm of the kernel table (plain rows), the packed level-table layouts (iq4_xs,
 * iq3_s, iq3_xxs) and the packed q4_K / q5_K / q6_K layouts (the section at the end).
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "herd.h"
#include "../kernels_impl.h"
#include "../kquants.h"
#include "../legacy.h"
#include "../packed.h"

#define ALWAYS static inline __attribute__((always_inline))
#define AMX_MIN_T 16                 /* tokens: fewer go to the VNNI kernel (also the tile's height) */
#define AMX_KB 128                   /* blocks per converted chunk: 64 KB of weights + 8 KB of scales */
#define AMX_X_BLOCK_BYTES (1 << 20)  /* activation bytes per token block: they stay in L2 ... */
#define AMX_MIN_TB 512               /* ... unless that makes blocks of fewer tokens: each block converts
                                      * the weights once (8192 wide, 96 tokens a block: 13 % of the time) */
#define AMX_W_BYTES 512              /* one converted block of a group: 8 rows of 64 bytes */

/* tile registers (numbers: gcc's intrinsics paste them into the instruction text, hence the wrappers,
 * which expand the names first) */
#define TC0 0
#define TC1 1
#define TA0 2
#define TA1 3
#define TB0 4
#define TB1 5
#define T_ZERO(t) _tile_zero(t)
#define T_LOAD(t, p, stride) _tile_loadd(t, p, stride)
#define T_STORE(t, p, stride) _tile_stored(t, p, stride)
#define T_DPBSSD(c, a, b) _tile_dpbssd(c, a, b)
#define T_DPBSUD(c, a, b) _tile_dpbsud(c, a, b) /* signed A (activations) x unsigned B (weights) */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg;

/* A constant in memory, not a local: gcc 12's _tile_loadconfig tells the compiler it reads 8 bytes, so
 * the stores that fill a local configuration can be dropped as dead (then the tiles stay unconfigured
 * and the first tile instruction faults). */
static const _Alignas(64) amx_tilecfg k_cfg = {
    .palette = 1,
    .colsb = {[TC0] = 64, [TC1] = 64, [TA0] = 32, [TA1] = 32, [TB0] = 64, [TB1] = 64},
    .rows = {[TC0] = 16, [TC1] = 16,  /* 16 tokens x 16 int32 */
             [TA0] = 16, [TA1] = 16,  /* 16 tokens x 32 int8 */
             [TB0] = 8, [TB1] = 8},   /* 8 dword rows x 16 rows x 4 int8 */
};

static void amx_config(void) {
    _tile_loadconfig(&k_cfg);
}

/* The layouts of blocks of 32 (packed.h; B_M*: with a min per block) */
enum { B_Q8, B_Q4, B_Q5, B_N4, B_M4, B_M5 };

/* Blocks b0 .. b0 + kb - 1 of a packed group (bb bytes a block) into signed weight tiles wq[kb][512] and
 * the 16 rows' scales dwf[kb][16]. Tile row c: chunk c of q8_0; for the nibble layouts the low nibbles
 * of stored chunk c < 4, the high ones of chunk c - 4, made signed: q4_0 - 8, q5_0 with its fifth bit
 * (bit c of the hb vector) - 16, iq4_nl its level; q4_1 / q5_1 unsigned as they are (0..31: signed bytes
 * too), their mins widened into dmf[kb][16]. */
ALWAYS void convert(int kind, const uint8_t *grp, int64_t bb, int64_t b0, int64_t kb, int8_t *wq, float *dwf,
                    float *dmf) {
    const int mins = kind == B_M4 || kind == B_M5, q0 = mins ? 64 : 32;
    const __m512i k80 = _mm512_set1_epi8((char)0x80), m4 = _mm512_set1_epi8(0x0f), k8 = _mm512_set1_epi8(8);
    const __m512i k16 = _mm512_set1_epi8(16), tab = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)k_iq4nl));
    for (int64_t i = 0; i < kb; i++) {
        const uint8_t *blk = grp + (b0 + i) * bb;
        int8_t *o = wq + i * AMX_W_BYTES;
        _mm512_store_ps(dwf + 16 * i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk)));
        if (mins) _mm512_store_ps(dmf + 16 * i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32))));
        if (kind == B_Q8) {
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++)
                _mm512_store_si512(o + 64 * c, _mm512_xor_si512(_mm512_loadu_si512(blk + 32 + 64 * c), k80));
            continue;
        }
        __m512i w[8];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512i v = _mm512_loadu_si512(blk + q0 + 64 * c);
            w[c] = _mm512_and_si512(v, m4);
            w[4 + c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        const __m512i hb = kind == B_Q5 || kind == B_M5 ? _mm512_loadu_si512(blk + q0 + 256) : k16;
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const __m512i q5 = _mm512_mask_add_epi8(w[c], _mm512_test_epi8_mask(hb, _mm512_set1_epi8((char)(1 << c))), w[c], k16);
            __m512i q = kind == B_Q4   ? _mm512_sub_epi8(w[c], k8)
                        : kind == B_N4 ? _mm512_shuffle_epi8(tab, w[c])
                        : kind == B_M4 ? w[c]
                        : kind == B_M5 ? q5
                                       : _mm512_sub_epi8(q5, k16);
            _mm512_store_si512(o + 64 * c, q);
        }
    }
}

static inline float ldf(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

static inline int32_t ld32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* acc[t] = fma(isum[t], dw * dx_t, acc[t]) for the 16 tokens, isum the stored C tile (token t's 16 rows
 * at c + 16 t), dx_t the f32 scale at byte 0 of token t's block (x already at that block); with mins
 * (dm16 not NULL: q4_1 / q5_1) then acc[t] = fma(m, s_t, acc[t]), s_t at byte 4. */
ALWAYS void apply(__m512 acc[16], const int32_t *c, const float *dw16, const float *dm16, const uint8_t *x,
                  int64_t xs) {
    const __m512 dw = _mm512_load_ps(dw16), dm = dm16 ? _mm512_load_ps(dm16) : dw;
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) {
        __m512 s = _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * t));
        acc[t] = _mm512_fmadd_ps(s, _mm512_mul_ps(dw, _mm512_set1_ps(ldf(x + t * xs))), acc[t]);
        if (dm16) acc[t] = _mm512_fmadd_ps(dm, _mm512_set1_ps(ldf(x + t * xs + 4)), acc[t]);
    }
}

/* One block of the tile's pipeline: the int32 sums of block i (16 tokens x 16 rows) into C, then to
 * ring slot i % 4. */
#define AMX_BLOCK(C, A, B, i)                                                                                 \
    do {                                                                                                      \
        T_ZERO(C);                                                                                            \
        T_LOAD(A, x + (i) * PK_X_BLOCK + 8, xs);                                                              \
        T_LOAD(B, wq + (i) * AMX_W_BYTES, 64);                                                                \
        T_DPBSSD(C, A, B);                                                                                    \
        T_STORE(C, ring[(i) & 3], 64);                                                                        \
    } while (0)

/* 16 tokens (x: their packed rows, xs apart, at block b0) x one group's 16 rows over the kb converted
 * blocks; y[t * ldy + r] holds the running sums (first: start from 0).
 * The float work of block i runs AMX_LAG blocks after its tile work (its sums wait in a ring of 4 stored
 * tiles): a vector load right behind the tile store that wrote its data stalls, and this way the tile
 * unit works on later blocks meanwhile (bench, one thread, 2048 x 2048 x 512 tokens: 9.3 ms with no lag,
 * 8.0-8.4 with 2 or 3). The blocks' float work still goes in block order. */
#define AMX_LAG 2
static void tile16(int first, int64_t kb, const int8_t *wq, const float *dwf, const float *dmf, const uint8_t *x,
                   int64_t xs, float *y, int64_t ldy) {
    _Alignas(64) int32_t ring[4][256];
    __m512 acc[16];
    /* a compiler barrier: gcc 12's _tile_loadd does not tell the compiler that it reads memory, so the
     * stores that wrote wq must not be moved past (or dropped before) the tile loads */
    __asm__ volatile("" ::: "memory");
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) acc[t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + t * ldy);
    for (int64_t i = 0; i < kb; i++) {
        if (i & 1) AMX_BLOCK(TC1, TA1, TB1, i); /* two sets of tiles, alternating */
        else AMX_BLOCK(TC0, TA0, TB0, i);
        int64_t j = i - AMX_LAG;
        if (j >= 0) apply(acc, ring[j & 3], dwf + 16 * j, dmf ? dmf + 16 * j : NULL, x + j * PK_X_BLOCK, xs);
    }
    for (int64_t j = kb - AMX_LAG < 0 ? 0 : kb - AMX_LAG; j < kb; j++)
        apply(acc, ring[j & 3], dwf + 16 * j, dmf ? dmf + 16 * j : NULL, x + j * PK_X_BLOCK, xs);
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

/* Token blocks whose activations stay in L2; per block and group, chunks of AMX_KB blocks converted
 * once and run by every 16-token tile of the token block. */
ALWAYS void entry(int kind, int64_t bb, int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                  int64_t ldy) {
    const pk_gemm_fn vnni = kind == B_Q8   ? pk_gemm_q8_0_avx512
                            : kind == B_Q4 ? pk_gemm_q4_0_avx512
                            : kind == B_Q5 ? pk_gemm_q5_0_avx512
                            : kind == B_N4 ? pk_gemm_iq4_nl_avx512
                            : kind == B_M4 ? pk_gemm_q4_1_avx512
                                           : pk_gemm_q5_1_avx512;
    const int64_t nt16 = nt / AMX_MIN_T * AMX_MIN_T;
    if (nt < AMX_MIN_T || xs <= 0) {
        vnni(n, ng, nt, wp, xp, xs, y, ldy);
        return;
    }
    const int64_t nb = n / 32, gb = nb * bb;
    const int mins = kind == B_M4 || kind == B_M5;
    const uint8_t *w = wp, *x = xp;
    _Alignas(64) int8_t wq[AMX_KB * AMX_W_BYTES];
    _Alignas(64) float dwf[AMX_KB * 16], dmf[AMX_KB * 16];
    int64_t tb = AMX_X_BLOCK_BYTES / xs / AMX_MIN_T * AMX_MIN_T;
    if (tb < AMX_MIN_TB) tb = AMX_MIN_TB;
    amx_config();
    for (int64_t t0 = 0; t0 < nt16; t0 += tb) {
        int64_t t1 = t0 + tb < nt16 ? t0 + tb : nt16;
        for (int64_t g = 0; g < ng; g++)
            for (int64_t b0 = 0; b0 < nb; b0 += AMX_KB) {
                int64_t kb = nb - b0 < AMX_KB ? nb - b0 : AMX_KB;
                convert(kind, w + g * gb, bb, b0, kb, wq, dwf, dmf);
                for (int64_t t = t0; t < t1; t += AMX_MIN_T)
                    tile16(b0 == 0, kb, wq, dwf, mins ? dmf : NULL, x + t * xs + b0 * PK_X_BLOCK, xs,
                           y + t * ldy + 16 * g, ldy);
            }
    }
    _tile_release();
    if (nt16 < nt) vnni(n, ng, nt - nt16, wp, x + nt16 * xs, xs, y + nt16 * ldy, ldy);
}

#define AMX_ENTRY(name, kind, bb)                                                                            \
    void name(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,       \
              int64_t ldy) {                                                                                 \
        entry(kind, bb, n, ng, nt, wp, xp, xs, y, ldy);                                                      \
    }
AMX_ENTRY(pk_gemm_q8_0_amx, B_Q8, 544)
AMX_ENTRY(pk_gemm_q4_0_amx, B_Q4, 288)
AMX_ENTRY(pk_gemm_q5_0_amx, B_Q5, 352)
AMX_ENTRY(pk_gemm_iq4_nl_amx, B_N4, 288)
AMX_ENTRY(pk_gemm_q4_1_amx, B_M4, 320)
AMX_ENTRY(pk_gemm_q5_1_amx, B_M5, 384)

/* ---- iq4_xs (plain rows, q8_K activations: the gemm of the kernel table) ----------------------------
 *
 * The reference (ref/legacy_ref.c) and every other variant: per row, per super-block of 256,
 *     sum = sum_{b<8} (ls_b - 32) * isum_b,  isum_b = sum_{i<32} K[q_bi] * x_bi      (exact int32)
 *     s = s + (float)sum * (d_w * d_x)                                                (no FMA)
 * TDPBSSD gives each isum_b for 16 tokens x 16 rows (K: the signed levels, unpacked per group of 16
 * rows into the tile layout); per token, 8 vpmulld by the rows' ls_b - 32 and 8 vpaddd make the exact
 * sum, then the float step as written. Rows past the last whole group of 16, tokens past the last whole
 * tile of 16, and calls with fewer than 16 tokens go to the table's gemm from before (VNNI): the same bits. */

#define IQ_KS 16 /* super-blocks per converted chunk: 64 KB of levels, 8 KB of scales */
static kernel_gemm_fn g_iq4xs_vnni; /* set by kernels_fill_amx */

/* Rows r < 16 (w: the group's first row, w_stride apart), super-blocks s0 .. s0 + ks - 1, into the tile
 * layout: wq[(i * 8 + b) * 512 + c * 64 + r * 4 + j] = K[element 32 b + 4 c + j of row r in super-block
 * s0 + i]; ls[(i * 8 + b) * 16 + r] = ls_b - 32; dw[i * 16 + r] = d. */
static void convert_iq4xs(const uint8_t *w, int64_t w_stride, int64_t s0, int64_t ks, int8_t *wq, int32_t *ls,
                          float *dw) {
    /* as legacy_avx512.c: 32 bytes of qs (sub-blocks 2p, 2p + 1) to 64 levels in element order */
    const __m512i perm = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), sh = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
    const __m512i m4 = _mm512_set1_epi8(0x0f), tab = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)k_iq4nl));
    for (int r = 0; r < 16; r++) {
        const block_iq4_xs *x = (const block_iq4_xs *)(w + r * w_stride) + s0;
        for (int64_t i = 0; i < ks; i++) {
            dw[i * 16 + r] = _cvtsh_ss(x[i].d);
            for (int b = 0; b < 8; b++)
                ls[(i * 8 + b) * 16 + r] =
                    iq4_xs_scale(&x[i], b) - 32;
            for (int p = 0; p < 4; p++) {
                __m512i q = _mm512_permutexvar_epi64(perm, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * p))));
                _Alignas(64) uint8_t lev[64];
                _mm512_store_si512(lev, _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srlv_epi64(q, sh), m4)));
                for (int k = 0; k < 16; k++) /* dword k: sub-block 2p + k / 8, chunk k % 8 */
                    memcpy(wq + (i * 8 + 2 * p + k / 8) * AMX_W_BYTES + (k % 8) * 64 + r * 4, lev + 4 * k, 4);
            }
        }
    }
}

#define AMX_TILE(C, A, B, pa, pb, out)                                                                        \
    do {                                                                                                      \
        T_ZERO(C);                                                                                            \
        T_LOAD(A, pa, xs);                                                                                    \
        T_LOAD(B, pb, 64);                                                                                    \
        T_DPBSSD(C, A, B);                                                                                    \
        T_STORE(C, out, 64);                                                                                  \
    } while (0)

/* 16 tokens (x: token 0's activations at super-block s0, tokens xs apart; a super-block xsb bytes with its
 * f32 d first and its 256 int8 at qoff: a q8_K row, or packed.h's level-table activation row) x one group of 16
 * rows over ks converted super-blocks; y as tile16's. The float work of a super-block runs one super-block
 * behind its tile work (ring: two super-blocks of 8 stored tiles). */
static void tile16_iq4xs(int first, int64_t ks, const int8_t *wq, const int32_t *ls, const float *dw,
                         const uint8_t *x, int64_t xs, int64_t xsb, int64_t qoff, float *y, int64_t ldy) {
    _Alignas(64) int32_t ring[16][256];
    __m512 acc[16];
    __asm__ volatile("" ::: "memory"); /* see tile16 */
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) acc[t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + t * ldy);
    for (int64_t i = 0; i <= ks; i++) {
        if (i < ks) {
            const uint8_t *xa = x + i * xsb + qoff;
            const int8_t *wb = wq + i * 8 * AMX_W_BYTES;
            int32_t(*o)[256] = ring + (i & 1) * 8;
            for (int b = 0; b < 8; b += 2) {
                AMX_TILE(TC0, TA0, TB0, xa + 32 * b, wb + b * AMX_W_BYTES, o[b]);
                AMX_TILE(TC1, TA1, TB1, xa + 32 * (b + 1), wb + (b + 1) * AMX_W_BYTES, o[b + 1]);
            }
        }
        if (i == 0) continue;
        const int64_t j = i - 1;
        int32_t(*c)[256] = ring + (j & 1) * 8;
        __m512i lsv[8];
#pragma GCC unroll 8
        for (int b = 0; b < 8; b++) lsv[b] = _mm512_load_si512(ls + (j * 8 + b) * 16);
        const __m512 dwv = _mm512_load_ps(dw + j * 16);
        const uint8_t *xd = x + j * xsb; /* d: the super-block's first 4 bytes */
#pragma GCC unroll 4
        for (int t = 0; t < 16; t++) {
            __m512i sum = _mm512_mullo_epi32(_mm512_load_si512(c[0] + 16 * t), lsv[0]);
#pragma GCC unroll 8
            for (int b = 1; b < 8; b++) sum = _mm512_add_epi32(sum, _mm512_mullo_epi32(_mm512_load_si512(c[b] + 16 * t), lsv[b]));
            __m512 sc = _mm512_mul_ps(dwv, _mm512_set1_ps(ldf(xd + t * xs)));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_cvtepi32_ps(sum), sc));
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

static void gemm_iq4_xs_amx(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,
                            int64_t xs, float *y, int64_t ldy) {
    const int64_t nr16 = nr / 16 * 16, nt16 = nt / AMX_MIN_T * AMX_MIN_T, nsb = n / QK_K;
    if (nt < AMX_MIN_T || nr16 == 0 || xs <= 0) {
        g_iq4xs_vnni(n, nr, nt, w, w_stride, xp, xs, y, ldy);
        return;
    }
    _Alignas(64) int8_t wq[IQ_KS * 8 * AMX_W_BYTES];
    _Alignas(64) int32_t ls[IQ_KS * 8 * 16];
    _Alignas(64) float dw[IQ_KS * 16];
    const uint8_t *x = xp;
    /* (the conversion costs as much as ~7 tiles of work: token blocks of at least AMX_MIN_TB tokens) */
    int64_t tb = AMX_X_BLOCK_BYTES / xs / AMX_MIN_T * AMX_MIN_T;
    if (tb < AMX_MIN_TB) tb = AMX_MIN_TB;
    amx_config();
    for (int64_t t0 = 0; t0 < nt16; t0 += tb) {
        int64_t t1 = t0 + tb < nt16 ? t0 + tb : nt16;
        for (int64_t r0 = 0; r0 < nr16; r0 += 16)
            for (int64_t s0 = 0; s0 < nsb; s0 += IQ_KS) {
                int64_t ks = nsb - s0 < IQ_KS ? nsb - s0 : IQ_KS;
                convert_iq4xs((const uint8_t *)w + r0 * w_stride, w_stride, s0, ks, wq, ls, dw);
                for (int64_t t = t0; t < t1; t += AMX_MIN_T)
                    tile16_iq4xs(s0 == 0, ks, wq, ls, dw, x + t * xs + s0 * (int64_t)sizeof(block_q8_K), xs,
                                 (int64_t)sizeof(block_q8_K), offsetof(block_q8_K, qs), y + t * ldy + r0, ldy);
            }
    }
    _tile_release();
    if (nt16 < nt) g_iq4xs_vnni(n, nr16, nt - nt16, w, w_stride, x + nt16 * xs, xs, y + nt16 * ldy, ldy);
    if (nr16 < nr)
        g_iq4xs_vnni(n, nr - nr16, nt, (const uint8_t *)w + nr16 * w_stride, w_stride, xp, xs, y + nr16, ldy);
}

/* A packed level-table layout with a scale per block of 32 (iq4_xs, iq3_s, iq3_xxs; packed.h) into the same
 * converted form as convert_iq4xs: block b's 4 stored vectors split into nibbles and looked up as signed
 * levels, low nibbles to tile rows 0..3 (elements 4k..4k+3), high ones to rows 4..7 (16 + 4k..); the
 * scales widened to int32, d to float. */
static void convert_pk_lt(const int8_t *levels, const uint8_t *grp, int64_t s0, int64_t ks, int8_t *wq, int32_t *ls,
                          float *dw) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), tab = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)levels));
    for (int64_t i = 0; i < ks; i++) {
        const uint8_t *blk = grp + (s0 + i) * PK_LT_BLOCK;
        _mm512_store_ps(dw + 16 * i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk)));
        for (int b = 0; b < 8; b++) {
            _mm512_store_si512(ls + (i * 8 + b) * 16, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * b))));
            int8_t *o = wq + (i * 8 + b) * AMX_W_BYTES;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_loadu_si512(blk + 160 + 256 * b + 64 * k);
                _mm512_store_si512(o + 64 * k, _mm512_shuffle_epi8(tab, _mm512_and_si512(v, m4)));
                _mm512_store_si512(o + 64 * (4 + k), _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4)));
            }
        }
    }
}

/* The packed iq4_xs / iq3_s / iq3_xxs (pk_gemm_fn): 16-token tiles as gemm_iq4_xs_amx, on whole groups;
 * fewer tokens and the tail go to the VNNI kernel of the same layout (the same bits); iq3_xxs's final
 * 0.25 on each finished tile. */
static void entry_lt(int type, pk_gemm_fn vnni, int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp,
                     int64_t xs, float *y, int64_t ldy) {
    const int64_t nt16 = nt / AMX_MIN_T * AMX_MIN_T, nsb = n / QK_K, gb = nsb * PK_LT_BLOCK;
    if (nt < AMX_MIN_T || xs <= 0) {
        vnni(n, ng, nt, wp, xp, xs, y, ldy);
        return;
    }
    const int8_t *levels = pk_levels(type);
    _Alignas(64) int8_t wq[IQ_KS * 8 * AMX_W_BYTES];
    _Alignas(64) int32_t ls[IQ_KS * 8 * 16];
    _Alignas(64) float dw[IQ_KS * 16];
    const uint8_t *x = xp, *w = wp;
    int64_t tb = AMX_X_BLOCK_BYTES / xs / AMX_MIN_T * AMX_MIN_T;
    if (tb < AMX_MIN_TB) tb = AMX_MIN_TB;
    amx_config();
    for (int64_t t0 = 0; t0 < nt16; t0 += tb) {
        int64_t t1 = t0 + tb < nt16 ? t0 + tb : nt16;
        for (int64_t g = 0; g < ng; g++)
            for (int64_t s0 = 0; s0 < nsb; s0 += IQ_KS) {
                int64_t ks = nsb - s0 < IQ_KS ? nsb - s0 : IQ_KS;
                convert_pk_lt(levels, w + g * gb, s0, ks, wq, ls, dw);
                for (int64_t t = t0; t < t1; t += AMX_MIN_T) /* (the activations' q at byte 80: packed.h) */
                    tile16_iq4xs(s0 == 0, ks, wq, ls, dw, x + t * xs + s0 * PK_XLT_BLOCK, xs, PK_XLT_BLOCK, 80,
                                 y + t * ldy + 16 * g, ldy);
            }
        if (type == HERD_TYPE_IQ3_XXS)
            for (int64_t g = 0; g < ng; g++)
                for (int64_t t = t0; t < t1; t++)
                    _mm512_storeu_ps(y + t * ldy + 16 * g, _mm512_mul_ps(_mm512_loadu_ps(y + t * ldy + 16 * g), _mm512_set1_ps(0.25f)));
    }
    _tile_release();
    if (nt16 < nt) vnni(n, ng, nt - nt16, wp, x + nt16 * xs, xs, y + nt16 * ldy, ldy);
}

void pk_gemm_iq4_xs_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                        int64_t ldy) {
    entry_lt(HERD_TYPE_IQ4_XS, pk_gemm_iq4_xs_avx512, n, ng, nt, wp, xp, xs, y, ldy);
}

void pk_gemm_iq3_s_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                       int64_t ldy) {
    entry_lt(HERD_TYPE_IQ3_S, pk_gemm_iq3_s_avx512, n, ng, nt, wp, xp, xs, y, ldy);
}

void pk_gemm_iq3_xxs_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                         int64_t ldy) {
    entry_lt(HERD_TYPE_IQ3_XXS, pk_gemm_iq3_xxs_avx512, n, ng, nt, wp, xp, xs, y, ldy);
}

void kernels_fill_amx(kernel_type_ops ops[KSLOT_COUNT]) {
    if (!ops[KSLOT_IQ4_XS].gemm || ops[KSLOT_IQ4_XS].gemm == gemm_iq4_xs_amx) return;
    g_iq4xs_vnni = ops[KSLOT_IQ4_XS].gemm;
    ops[KSLOT_IQ4_XS].gemm = gemm_iq4_xs_amx;
}

/* ---- q4_K / q5_K / q6_K (the packed layouts of packed.h; reference: pk_gemm_ref's dot_ref_*) ---------
 *
 * The packed K-quant numerics, per (row r, token t) and super-block of 256 (packed_avx512.c, tile_k4 and
 * tile_k6, do the same):
 *   q4_K  sumi = sum_{s<8} sc_rs * isum_s,  isum_s = sum_{i<32} nib_rsi * x_tsi             (exact int32)
 *         (q5_K: the same with its 5-bit quants in place of the nibbles)
 *         summ = sum_{s<8} m_rs * nbs_ts                                                     (exact int32)
 *         y = fmaf((float)sumi, fl(d_r * dx_t), y);  y = fmaf((float)summ, fl(dmin_r * dx_t), y)
 *   q6_K  sumi = sum_{g<16} sc_rg * (isum_g - 32 bsum_tg),  isum_g over the 16 elements of group g of
 *         u = q + 32 (0..63)                                                                 (exact int32)
 *         y = fmaf((float)sumi, fl(d_r * dx_t), y)
 * sumi is an exact integer, so any way of getting it gives the same bits. The scales (per row and
 * sub-block / group) go into the weight tiles, split into digits small enough that digit x weight is a
 * byte: q4_K sc = 8 sh + sl (x nibble <= 105; q5_K x quant <= 217: an unsigned byte, hence TDPBSUD for
 * both), q6_K sc = 64 a + 16 b + 4 c + e (a in -2..1, the rest 0..3; x (u - 32) in -96..93, and u - 32
 * already folds the -32 bsum term in). One C tile per digit then
 * accumulates the whole super-block with K = 64 tile products (TDPBSUD for q4_K / q5_K 2 x 4, TDPBSSD for
 * q6_K 4 x 4), and per token the
 * float side is sumi = shifts and adds of the digit sums, q4_K's mins term (4 vpdpwssd as the VNNI
 * kernel) and the FMAs as written. (The first version, one tile and one vpmulld per sub-block / group,
 * was 1.3x / 1.25x VNNI single-thread; this one 1.75x / 1.67x: the tile stores were the bound.) Rows
 * come in whole groups of 16 (the layout); tokens past the last tile of 16 and calls with fewer than 16
 * go to VNNI. */

#define KQ_KS 8  /* q4_K / q5_K super-blocks per converted chunk: 2 x 32 KB of weight tiles */
#define KQ6_KS 2 /* q6_K super-blocks per converted chunk: 4 x 8 KB of weight tiles */

/* q6_K's tile shapes: all 16 x 64 bytes (tiles 0..3 the four scale digits' sums, 5 the activations,
 * 4, 6, 7 the weight tiles). */
static const _Alignas(64) amx_tilecfg k_cfg6 = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

/* q4_K's tile shapes: A 16 tokens x 64 bytes (two sub-blocks), B 16 dword rows (K = 64); C0 / C1 the
 * sums against the high / low parts of the scales, A0 / A1 and B0..B3 for two pairs of sub-blocks. */
#define TB2 6
#define TB3 7
static const _Alignas(64) amx_tilecfg k_cfg4 = {
    .palette = 1,
    .colsb = {[TC0] = 64, [TC1] = 64, [TA0] = 64, [TA1] = 64, [TB0] = 64, [TB1] = 64, [TB2] = 64, [TB3] = 64},
    .rows = {[TC0] = 16, [TC1] = 16, [TA0] = 16, [TA1] = 16, [TB0] = 16, [TB1] = 16, [TB2] = 16, [TB3] = 16},
};

/* Converted chunk of one group: ks super-blocks from s0. q4_K: the scales split as sc = 8 sh + sl (sh, sl
 * in 0..7), so that sh * nib and sl * nib (<= 105; q5_K's sh * q <= 217) are unsigned bytes:
 * wq[(i * 8 + s) * 512 ..] sh * nib of
 * sub-block s (row k: elements 4k..4k+3 of the 16 rows; two sub-blocks in a row are one K = 64 tile),
 * wl likewise sl * nib; then sumi = 8 * sum(sh nib x) + sum(sl nib x), the same integer as
 * sum_s sc_s isum_s; mn[(i * 4 + p) * 32 ..] the mins of sub-blocks 2p, 2p + 1 as int16 (the VNNI kernel's
 * vpdpwssd layout), dw / dm[i * 16 + r] d and dmin as floats. q6_K (KQ6_KS super-blocks): the four
 * scale-digit products in w6[0], w6[1], wq, wl and dw (convert_k6). */
typedef struct {
    _Alignas(64) int8_t wq[KQ_KS * 4096];
    _Alignas(64) int8_t wl[KQ_KS * 4096];
    _Alignas(64) int8_t w6[2][KQ6_KS * 4096];
    _Alignas(64) int16_t mn[KQ_KS * 4 * 32];
    _Alignas(64) float dw[KQ_KS * 16], dm[KQ_KS * 16];
} kq_chunk;

static void convert_k4(int q5, const uint8_t *grp, int64_t s0, int64_t ks, kq_chunk *o) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m7 = _mm512_set1_epi16(7), mlo = _mm512_set1_epi16(0xff);
    const __m512i k16 = _mm512_set1_epi8(16);
    for (int64_t i = 0; i < ks; i++) {
        const uint8_t *blk = grp + (s0 + i) * (q5 ? PK_K5_BLOCK : PK_K4_BLOCK);
        _mm512_store_ps(o->dw + 16 * i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk)));
        _mm512_store_ps(o->dm + 16 * i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32))));
        for (int p = 0; p < 4; p++)
            _mm512_store_si512(o->mn + (i * 4 + p) * 32, _mm512_cvtepu8_epi16(_mm256_loadu_si256(
                                                             (const __m256i *)(blk + 192 + 32 * p))));
        for (int s = 0; s < 8; s++) {
            /* row r's scale in both 16-bit lanes of its dword (bytes 4r..4r+3) */
            __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 64 + 16 * s)));
            sc = _mm512_or_si512(sc, _mm512_slli_epi32(sc, 16));
            const __m512i sh = _mm512_srli_epi16(sc, 3), sl = _mm512_and_si512(sc, m7);
            /* stored chunk s / 2: its low nibbles are sub-block s for s even, the high ones for s odd */
            const uint8_t *q = blk + 320 + (s / 2) * 512;
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m512i v = _mm512_loadu_si512(q + 64 * k);
                __m512i nb = _mm512_and_si512(s & 1 ? _mm512_srli_epi16(v, 4) : v, m4);
                if (q5) /* the fifth bit: bit s of the qh plane's vector k (as tile_k4) */
                    nb = _mm512_mask_add_epi8(nb,
                                              _mm512_test_epi8_mask(_mm512_loadu_si512(blk + PK_K4_BLOCK + 64 * k),
                                                                    _mm512_set1_epi8((char)(1 << s))),
                                              nb, k16);
                __m512i ev = _mm512_and_si512(nb, mlo), od = _mm512_srli_epi16(nb, 8); /* bytes 2j, 2j + 1 */
                /* products <= 217: each stays in its (unsigned) byte */
                __m512i ph = _mm512_or_si512(_mm512_mullo_epi16(ev, sh),
                                             _mm512_slli_epi16(_mm512_mullo_epi16(od, sh), 8));
                __m512i pl = _mm512_or_si512(_mm512_mullo_epi16(ev, sl),
                                             _mm512_slli_epi16(_mm512_mullo_epi16(od, sl), 8));
                _mm512_store_si512(o->wq + (i * 8 + s) * AMX_W_BYTES + 64 * k, ph);
                _mm512_store_si512(o->wl + (i * 8 + s) * AMX_W_BYTES + 64 * k, pl);
            }
        }
    }
}

/* q6_K: the signed scale split in base-4 digits, sc = 64 a + 16 b + 4 c + e (a in -2..1, b, c, e in
 * 0..3), so q * digit (q = u - 32 in -32..31) is a byte: w6[0] a q, w6[1] b q, wq c q, wl e q, each at
 * i * 4096 + chunk * 64 (tile row k of the K = 64 step p: chunk 16 p + k). Then
 * sumi = 64 sum(a q x) + 16 sum(b q x) + 4 sum(c q x) + sum(e q x) = sum_g sc_g (isum_g - 32 bsum_g). */
static void convert_k6(const uint8_t *grp, int64_t s0, int64_t ks, kq_chunk *o) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30), k32 = _mm512_set1_epi8(32);
    const __m512i m3 = _mm512_set1_epi16(3), mlo = _mm512_set1_epi16(0xff);
    for (int64_t i = 0; i < ks; i++) {
        const uint8_t *blk = grp + (s0 + i) * PK_K6_BLOCK;
        _mm512_store_ps(o->dw + 16 * i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk)));
        for (int g = 0; g < 16; g++) {
            /* row r's scale (sign-extended) in both 16-bit lanes of its dword */
            __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * g)));
            sc = _mm512_or_si512(_mm512_and_si512(sc, _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(sc, 16));
            const __m512i dg[4] = {_mm512_srai_epi16(sc, 6), _mm512_and_si512(_mm512_srai_epi16(sc, 4), m3),
                                   _mm512_and_si512(_mm512_srai_epi16(sc, 2), m3), _mm512_and_si512(sc, m3)};
            int8_t *dst[4] = {o->w6[0], o->w6[1], o->wq, o->wl};
            for (int k = 0; k < 4; k++) { /* as tile_k6: low nibble plane | the 2 high bits << 4, then - 32 */
                int c = 4 * g + k, h = c / 16;
                __m512i lo = _mm512_loadu_si512(blk + 288 + (c % 32) * 64);
                __m512i hi = _mm512_loadu_si512(blk + 2336 + (c % 16) * 64);
                lo = _mm512_and_si512(c < 32 ? lo : _mm512_srli_epi16(lo, 4), m4);
                hi = h == 0   ? _mm512_slli_epi16(hi, 4)
                     : h == 1 ? _mm512_slli_epi16(hi, 2)
                     : h == 2 ? hi
                              : _mm512_srli_epi16(hi, 2);
                __m512i q = _mm512_sub_epi8(_mm512_or_si512(lo, _mm512_and_si512(hi, m30)), k32);
                __m512i ev = _mm512_srai_epi16(_mm512_slli_epi16(q, 8), 8), od = _mm512_srai_epi16(q, 8);
#pragma GCC unroll 4
                for (int d = 0; d < 4; d++) /* products in -96..93: each stays in its byte */
                    _mm512_store_si512(dst[d] + i * 4096 + 64 * c,
                                       _mm512_or_si512(_mm512_and_si512(_mm512_mullo_epi16(ev, dg[d]), mlo),
                                                       _mm512_slli_epi16(_mm512_mullo_epi16(od, dg[d]), 8)));
            }
        }
    }
}

/* 16 tokens (x: token 0's packed activations at super-block s0, tokens xs apart) x one group over the ks
 * converted super-blocks of o; y as tile16's. The float work of a super-block runs one super-block behind
 * its tile work (ring: two super-blocks of stored tiles), in super-block order. */
static void tile16_k4(int first, int64_t ks, const kq_chunk *o, const uint8_t *x, int64_t xs, float *y,
                      int64_t ldy) {
    _Alignas(64) int32_t ring[2][2][256];
    __m512 acc[16];
    __asm__ volatile("" ::: "memory"); /* see tile16 */
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) acc[t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + t * ldy);
    for (int64_t i = 0; i <= ks; i++) {
        if (i < ks) { /* C0 = sum over the 4 pairs of sub-blocks of A x (sh nib), C1 of A x (sl nib) */
            const uint8_t *xa = x + i * PK_XK_BLOCK + 32;
            const int8_t *wh = o->wq + i * 8 * AMX_W_BYTES, *wl = o->wl + i * 8 * AMX_W_BYTES;
            T_ZERO(TC0);
            T_ZERO(TC1);
            for (int p = 0; p < 4; p += 2) {
                T_LOAD(TA0, xa + 64 * p, xs);
                T_LOAD(TB0, wh + 2 * p * AMX_W_BYTES, 64);
                T_LOAD(TB1, wl + 2 * p * AMX_W_BYTES, 64);
                T_DPBSUD(TC0, TA0, TB0);
                T_DPBSUD(TC1, TA0, TB1);
                T_LOAD(TA1, xa + 64 * (p + 1), xs);
                T_LOAD(TB2, wh + 2 * (p + 1) * AMX_W_BYTES, 64);
                T_LOAD(TB3, wl + 2 * (p + 1) * AMX_W_BYTES, 64);
                T_DPBSUD(TC0, TA1, TB2);
                T_DPBSUD(TC1, TA1, TB3);
            }
            T_STORE(TC0, ring[i & 1][0], 64);
            T_STORE(TC1, ring[i & 1][1], 64);
            __asm__ volatile("" ::: "memory"); /* the tile stores wrote the ring */
        }
        if (i == 0) continue;
        const int64_t j = i - 1;
        const int32_t *ch = ring[j & 1][0], *cl = ring[j & 1][1];
        const int16_t *mn = o->mn + j * 4 * 32;
        const __m512 dw = _mm512_load_ps(o->dw + 16 * j), dm = _mm512_load_ps(o->dm + 16 * j);
        const uint8_t *xb = x + j * PK_XK_BLOCK;
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) {
            const uint8_t *xt = xb + t * xs;
            __m512i sumi = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(ch + 16 * t), 3),
                                            _mm512_load_si512(cl + 16 * t));
            __m512i summ = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++)
                summ = _mm512_dpwssd_epi32(summ, _mm512_load_si512(mn + 32 * p),
                                           _mm512_set1_epi32(ld32(xt + 16 + 4 * p)));
            const __m512 dx = _mm512_set1_ps(ldf(xt));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_mul_ps(dw, dx), acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(summ), _mm512_mul_ps(dm, dx), acc[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

#define TC2 2
#define TC3 3
#define TA6 5 /* q6_K's activation tile */
static void tile16_k6(int first, int64_t ks, const kq_chunk *o, const uint8_t *x, int64_t xs, float *y,
                      int64_t ldy) {
    _Alignas(64) int32_t ring[2][4][256];
    __m512 acc[16];
    __asm__ volatile("" ::: "memory"); /* see tile16 */
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) acc[t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + t * ldy);
    for (int64_t i = 0; i <= ks; i++) {
        if (i < ks) {
            const uint8_t *xa = x + i * PK_XK6_BLOCK + 80;
            const int64_t wo = i * 4096;
            T_ZERO(TC0);
            T_ZERO(TC1);
            T_ZERO(TC2);
            T_ZERO(TC3);
            for (int p = 0; p < 4; p++) { /* groups 4p .. 4p + 3 */
                T_LOAD(TA6, xa + 64 * p, xs);
                T_LOAD(4, o->w6[0] + wo + 1024 * p, 64);
                T_LOAD(6, o->w6[1] + wo + 1024 * p, 64);
                T_LOAD(7, o->wq + wo + 1024 * p, 64);
                T_DPBSSD(TC0, TA6, 4);
                T_DPBSSD(TC1, TA6, 6);
                T_DPBSSD(TC2, TA6, 7);
                T_LOAD(4, o->wl + wo + 1024 * p, 64);
                T_DPBSSD(TC3, TA6, 4);
            }
            T_STORE(TC0, ring[i & 1][0], 64);
            T_STORE(TC1, ring[i & 1][1], 64);
            T_STORE(TC2, ring[i & 1][2], 64);
            T_STORE(TC3, ring[i & 1][3], 64);
            __asm__ volatile("" ::: "memory");
        }
        if (i == 0) continue;
        const int64_t j = i - 1;
        int32_t(*c)[256] = ring[j & 1];
        const __m512 dw = _mm512_load_ps(o->dw + 16 * j);
        const uint8_t *xb = x + j * PK_XK6_BLOCK;
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) {
            __m512i sumi =
                _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(c[0] + 16 * t), 6),
                                                  _mm512_slli_epi32(_mm512_load_si512(c[1] + 16 * t), 4)),
                                 _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(c[2] + 16 * t), 2),
                                                  _mm512_load_si512(c[3] + 16 * t)));
            const __m512 dx = _mm512_set1_ps(ldf(xb + t * xs));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_mul_ps(dw, dx), acc[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

/* As entry: token blocks (of at least AMX_MIN_TB tokens), per group chunks of KQ_KS super-blocks
 * converted once and run by every 16-token tile of the block. */
static void entry_k(int k6, int q5, int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs,
                    float *y, int64_t ldy) {
    const pk_gemm_fn vnni = k6 ? pk_gemm_q6_K_avx512 : q5 ? pk_gemm_q5_K_avx512 : pk_gemm_q4_K_avx512;
    const int64_t nt16 = nt / AMX_MIN_T * AMX_MIN_T, nsb = n / QK_K;
    if (nt < AMX_MIN_T || xs <= 0) {
        vnni(n, ng, nt, wp, xp, xs, y, ldy);
        return;
    }
    const int64_t gb = nsb * (k6 ? PK_K6_BLOCK : q5 ? PK_K5_BLOCK : PK_K4_BLOCK), xsb = k6 ? PK_XK6_BLOCK : PK_XK_BLOCK;
    const uint8_t *w = wp, *x = xp;
    const int64_t kss = k6 ? KQ6_KS : KQ_KS;
    kq_chunk o; /* ~110 KB */
    int64_t tb = AMX_X_BLOCK_BYTES / xs / AMX_MIN_T * AMX_MIN_T;
    if (tb < AMX_MIN_TB) tb = AMX_MIN_TB;
    _tile_loadconfig(k6 ? &k_cfg6 : &k_cfg4);
    for (int64_t t0 = 0; t0 < nt16; t0 += tb) {
        int64_t t1 = t0 + tb < nt16 ? t0 + tb : nt16;
        for (int64_t g = 0; g < ng; g++)
            for (int64_t s0 = 0; s0 < nsb; s0 += kss) {
                int64_t ks = nsb - s0 < kss ? nsb - s0 : kss;
                if (k6)
                    convert_k6(w + g * gb, s0, ks, &o);
                else
                    convert_k4(q5, w + g * gb, s0, ks, &o);
                for (int64_t t = t0; t < t1; t += AMX_MIN_T) {
                    const uint8_t *xt = x + t * xs + s0 * xsb;
                    float *yt = y + t * ldy + 16 * g;
                    if (k6)
                        tile16_k6(s0 == 0, ks, &o, xt, xs, yt, ldy);
                    else
                        tile16_k4(s0 == 0, ks, &o, xt, xs, yt, ldy);
                }
            }
    }
    _tile_release();
    if (nt16 < nt) vnni(n, ng, nt - nt16, wp, x + nt16 * xs, xs, y + nt16 * ldy, ldy);
}

void pk_gemm_q4_K_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy) {
    entry_k(0, 0, n, ng, nt, wp, xp, xs, y, ldy);
}

void pk_gemm_q5_K_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy) {
    entry_k(0, 1, n, ng, nt, wp, xp, xs, y, ldy);
}

void pk_gemm_q6_K_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy) {
    entry_k(1, 0, n, ng, nt, wp, xp, xs, y, ldy);
}
