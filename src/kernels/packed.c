/* Interleaved weights (packed.h): packing, the activation rows, the scalar reference and
 * the choice of kernel. */
#include "packed.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "herd.h"
#include "kernels.h"
#include "kernels_impl.h"
#include "kquants.h"
#include "iquants.h"
#include "legacy.h"
#include "types.h"

/* the layouts of blocks of 32 (the others have super-blocks of 256) */
static bool block32(int type) {
    return type == HERD_TYPE_Q8_0 || type == HERD_TYPE_Q4_0 || type == HERD_TYPE_Q5_0 || type == HERD_TYPE_IQ4_NL ||
           type == HERD_TYPE_Q4_1 || type == HERD_TYPE_Q5_1;
}

/* q4_1 / q5_1: a min per block (the f16 m after d), the quants 32 bytes further */
static bool has_min(int type) {
    return type == HERD_TYPE_Q4_1 || type == HERD_TYPE_Q5_1;
}

pk_gemm_fn pk_gemm_for(int type, int64_t n, int64_t n_out) {
    if (n <= 0 || n % 32 || n_out <= 0 || n_out % PK_ROWS) return NULL;
    if (kernels_active_isa() != KERNEL_ISA_AVX512) return NULL;
    switch (type) {
    /* AMX (x86/gemm_amx.c) takes batches of 16 tokens and more, the same bits; the rest goes to VNNI
     * (every packed type) */
    case HERD_TYPE_Q8_0: return kernels_amx_active() ? pk_gemm_q8_0_amx : pk_gemm_q8_0_avx512;
    case HERD_TYPE_Q4_0: return kernels_amx_active() ? pk_gemm_q4_0_amx : pk_gemm_q4_0_avx512;
    case HERD_TYPE_Q5_0: return kernels_amx_active() ? pk_gemm_q5_0_amx : pk_gemm_q5_0_avx512;
    case HERD_TYPE_IQ4_NL: return kernels_amx_active() ? pk_gemm_iq4_nl_amx : pk_gemm_iq4_nl_avx512;
    case HERD_TYPE_Q4_1: return kernels_amx_active() ? pk_gemm_q4_1_amx : pk_gemm_q4_1_avx512;
    case HERD_TYPE_Q5_1: return kernels_amx_active() ? pk_gemm_q5_1_amx : pk_gemm_q5_1_avx512;
    case HERD_TYPE_Q4_K: return n % QK_K ? NULL : kernels_amx_active() ? pk_gemm_q4_K_amx : pk_gemm_q4_K_avx512;
    case HERD_TYPE_Q5_K: return n % QK_K ? NULL : kernels_amx_active() ? pk_gemm_q5_K_amx : pk_gemm_q5_K_avx512;
    case HERD_TYPE_Q6_K: return n % QK_K ? NULL : kernels_amx_active() ? pk_gemm_q6_K_amx : pk_gemm_q6_K_avx512;
    case HERD_TYPE_IQ4_XS:
        return n % QK_K ? NULL : kernels_amx_active() ? pk_gemm_iq4_xs_amx : pk_gemm_iq4_xs_avx512;
    case HERD_TYPE_IQ3_S: return n % QK_K ? NULL : kernels_amx_active() ? pk_gemm_iq3_s_amx : pk_gemm_iq3_s_avx512;
    case HERD_TYPE_IQ3_XXS:
        return n % QK_K ? NULL : kernels_amx_active() ? pk_gemm_iq3_xxs_amx : pk_gemm_iq3_xxs_avx512;
    case HERD_TYPE_IQ2_S: return n % QK_K ? NULL : pk_gemm_iq2_s_avx512; /* (per-16 scales: no AMX kernel) */
    default: return NULL;
    }
}

int64_t pk_group_bytes(int type, int64_t n) {
    int64_t nb = n / 32;
    switch (type) {
    case HERD_TYPE_Q8_0: return nb * 544;
    case HERD_TYPE_Q4_0:
    case HERD_TYPE_IQ4_NL: return nb * 288;
    case HERD_TYPE_Q5_0: return nb * 352;
    case HERD_TYPE_Q4_1: return nb * 320;
    case HERD_TYPE_Q5_1: return nb * 384;
    case HERD_TYPE_Q4_K: return n / QK_K * PK_K4_BLOCK;
    case HERD_TYPE_Q5_K: return n / QK_K * PK_K5_BLOCK;
    case HERD_TYPE_Q6_K: return n / QK_K * PK_K6_BLOCK;
    case HERD_TYPE_IQ4_XS:
    case HERD_TYPE_IQ3_S:
    case HERD_TYPE_IQ3_XXS: return n / QK_K * PK_LT_BLOCK;
    case HERD_TYPE_IQ2_S: return n / QK_K * PK_LT2_BLOCK;
    default: return 0;
    }
}

int64_t pk_weight_bytes(int type, int64_t n, int64_t n_out) {
    return n_out / PK_ROWS * pk_group_bytes(type, n);
}

/* q4_K and q5_K (their first 2368 bytes are the same layout; q5_K's fifth bits follow) */
static void pack_w_k4(int type, int64_t n, const uint8_t *src, int64_t row_bytes, uint8_t *o) {
    const int q5 = type == HERD_TYPE_Q5_K;
    const int64_t bb = q5 ? PK_K5_BLOCK : PK_K4_BLOCK, sbb = q5 ? (int64_t)sizeof(block_q5_K) : (int64_t)sizeof(block_q4_K);
    for (int r = 0; r < PK_ROWS; r++) {
        const uint8_t *row = src + r * row_bytes;
        for (int64_t b = 0; b < n / QK_K; b++) {
            /* d, dmin, scales[12] at the same offsets in both blocks; then q5_K's qh[32], qs[128] */
            const uint8_t *blk = row + b * sbb, *scales = blk + 4;
            const uint8_t *qs = q5 ? ((const block_q5_K *)blk)->qs : ((const block_q4_K *)blk)->qs;
            uint8_t *ob = o + b * bb;
            memcpy(ob + 2 * r, blk, 2);
            memcpy(ob + 32 + 2 * r, blk + 2, 2);
            for (int s = 0; s < 8; s++) {
                uint8_t sc, m;
                kq_scale_min(scales, s, &sc, &m);
                ob[64 + 16 * s + r] = sc;
                ob[192 + 32 * (s / 2) + 2 * r + s % 2] = m;
            }
            for (int c = 0; c < 4; c++)
                for (int k = 0; k < 8; k++) memcpy(ob + 320 + c * 512 + k * 64 + r * 4, qs + 32 * c + 4 * k, 4);
            if (q5)
                for (int k = 0; k < 8; k++) memcpy(ob + PK_K4_BLOCK + k * 64 + r * 4, ((const block_q5_K *)blk)->qh + 4 * k, 4);
        }
    }
}

/* u = q + 32 (0..63) of element e of a q6_K block (kquants.h: e = 128h + 32k + l) */
static int q6_u(const block_q6_K *b, int e) {
    int h = e / 128, k = (e % 128) / 32, l = e % 32;
    int lo = (b->ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15;
    int hi = (b->qh[32 * h + l] >> (2 * k)) & 3;
    return lo | hi << 4;
}

static void pack_w_q6_K(int64_t n, const uint8_t *src, int64_t row_bytes, uint8_t *o) {
    for (int r = 0; r < PK_ROWS; r++) {
        const block_q6_K *row = (const block_q6_K *)(src + r * row_bytes);
        for (int64_t b = 0; b < n / QK_K; b++) {
            const block_q6_K *blk = row + b;
            uint8_t *ob = o + b * PK_K6_BLOCK;
            memcpy(ob + 2 * r, &blk->d, 2);
            for (int g = 0; g < 16; g++) ob[32 + 16 * g + r] = (uint8_t)blk->scales[g];
            uint8_t u[QK_K];
            for (int e = 0; e < QK_K; e++) u[e] = (uint8_t)q6_u(blk, e);
            for (int c = 0; c < 32; c++)
                for (int j = 0; j < 4; j++)
                    ob[288 + c * 64 + r * 4 + j] = (uint8_t)((u[4 * c + j] & 15) | (u[4 * (c + 32) + j] & 15) << 4);
            for (int c = 0; c < 16; c++)
                for (int j = 0; j < 4; j++) {
                    uint8_t v = 0;
                    for (int i = 0; i < 4; i++) v |= (uint8_t)((u[4 * (c + 16 * i) + j] >> 4) << (2 * i));
                    ob[2336 + c * 64 + r * 4 + j] = v;
                }
        }
    }
}

/* ---- the level-table layouts (iq4_xs, iq3_s, iq3_xxs, iq2_s) ---------------------------------------------------- */

static const int8_t k_lv_iq3s[16] = {1, 3, 5, 7, 9, 11, 13, 15, -1, -3, -5, -7, -9, -11, -13, -15};
static const int8_t k_lv_iq3xxs[16] = {4, 12, 20, 28, 36, 44, 52, 62, -4, -12, -20, -28, -36, -44, -52, -62};
static const int8_t k_lv_iq2s[16] = {8, 25, 43, 0, 0, 0, 0, 0, -8, -25, -43, 0, 0, 0, 0, 0};

const int8_t *pk_levels(int type) {
    switch (type) {
    case HERD_TYPE_IQ4_XS: return k_iq4nl;
    case HERD_TYPE_IQ3_S: return k_lv_iq3s;
    case HERD_TYPE_IQ3_XXS: return k_lv_iq3xxs;
    case HERD_TYPE_IQ2_S: return k_lv_iq2s;
    default: return NULL;
    }
}

/* The grids' coordinates as codes m (byte j of an entry: coordinate j's m), and the 8 sign bits of a byte
 * spread to bit 3 of 8 bytes: made once (the packers run on several threads). */
static uint32_t g_iq3s_m[512], g_iq3xxs_m[256];
static uint64_t g_iq2s_m[1024], g_sign8[256];
static pthread_once_t g_lt_once = PTHREAD_ONCE_INIT;

static void lt_tables(void) {
    for (int i = 0; i < 512; i++)
        for (int j = 0; j < 4; j++) g_iq3s_m[i] |= (uint32_t)((((iq3s_grid[i] >> 8 * j) & 0xff) - 1) / 2) << 8 * j;
    for (int i = 0; i < 256; i++)
        for (int j = 0; j < 4; j++) {
            uint32_t c = (iq3xxs_grid[i] >> 8 * j) & 0xff; /* 4, 12, ..., 52, 62 */
            g_iq3xxs_m[i] |= (c == 62 ? 7u : (c - 4) / 8) << 8 * j;
        }
    for (int i = 0; i < 1024; i++)
        for (int j = 0; j < 8; j++) {
            uint64_t c = (iq2s_grid[i] >> 8 * j) & 0xff; /* 8, 25 or 43 */
            g_iq2s_m[i] |= (uint64_t)(c == 8 ? 0 : c == 25 ? 1 : 2) << 8 * j;
        }
    for (int s = 0; s < 256; s++)
        for (int j = 0; j < 8; j++) g_sign8[s] |= (uint64_t)((s >> j) & 1) << (8 * j + 3);
}

/* The 256 codes (element order) and the G integer scales of one super-block of a row. */
static void lt_codes(int type, const uint8_t *blk, uint8_t code[QK_K], int8_t *ls) {
    if (type == HERD_TYPE_IQ4_XS) {
        const block_iq4_xs *x = (const block_iq4_xs *)blk;
        for (int b = 0; b < 8; b++) {
            ls[b] = (int8_t)(iq4_xs_scale(x, b) - 32);
            for (int j = 0; j < 16; j++) code[32 * b + j] = x->qs[16 * b + j] & 15, code[32 * b + 16 + j] = x->qs[16 * b + j] >> 4;
        }
    } else if (type == HERD_TYPE_IQ3_S) { /* element 32b + 8l + j: half-group h = 2l + j / 4, sign bit j of signs[4b + l] */
        const block_iq3_s *x = (const block_iq3_s *)blk;
        for (int b = 0; b < 8; b++) {
            ls[b] = (int8_t)(2 * ((x->scales[b / 2] >> 4 * (b % 2)) & 15) + 1);
            for (int l = 0; l < 4; l++) {
                uint64_t m = 0;
                for (int h = 0; h < 2; h++)
                    m |= (uint64_t)g_iq3s_m[x->qs[8 * b + 2 * l + h] | ((x->qh[b] >> (2 * l + h)) & 1) << 8] << 32 * h;
                m |= g_sign8[x->signs[4 * b + l]];
                memcpy(code + 32 * b + 8 * l, &m, 8);
            }
        }
    } else if (type == HERD_TYPE_IQ3_XXS) { /* block b: u32 a of signs and scale after the 64 grid bytes */
        const block_iq3_xxs *x = (const block_iq3_xxs *)blk;
        for (int b = 0; b < 8; b++) {
            uint32_t a;
            memcpy(&a, x->qs + QK_K / 4 + 4 * b, 4);
            ls[b] = (int8_t)(2 * (a >> 28) + 1);
            for (int l = 0; l < 4; l++) {
                uint64_t m = (uint64_t)g_iq3xxs_m[x->qs[8 * b + 2 * l]] | (uint64_t)g_iq3xxs_m[x->qs[8 * b + 2 * l + 1]] << 32;
                m |= g_sign8[ksigns_iq2xs[(a >> 7 * l) & 127]];
                memcpy(code + 32 * b + 8 * l, &m, 8);
            }
        }
    } else { /* iq2_s: group 4b + l of 8 elements; scales per 16 (nibble l / 2 of scales[b]) */
        const block_iq2_s *x = (const block_iq2_s *)blk;
        const uint8_t *signs = x->qs + QK_K / 8;
        for (int b = 0; b < 8; b++) {
            ls[2 * b] = (int8_t)(2 * (x->scales[b] & 15) + 1);
            ls[2 * b + 1] = (int8_t)(2 * (x->scales[b] >> 4) + 1);
            for (int l = 0; l < 4; l++) {
                uint64_t m = g_iq2s_m[x->qs[4 * b + l] | ((x->qh[b] >> 2 * l) & 3) << 8] | g_sign8[signs[4 * b + l]];
                memcpy(code + 32 * b + 8 * l, &m, 8);
            }
        }
    }
}

static void pack_w_lt(int type, int64_t n, const uint8_t *src, int64_t row_bytes, uint8_t *o) {
    pthread_once(&g_lt_once, lt_tables);
    const int ng = type == HERD_TYPE_IQ2_S ? 16 : 8; /* scales a row */
    const int64_t bb = pk_group_bytes(type, QK_K), sbb = kernels_row_bytes(type, QK_K), qo = 32 + 16 * ng;
    for (int r = 0; r < PK_ROWS; r++) {
        const uint8_t *row = src + r * row_bytes;
        for (int64_t i = 0; i < n / QK_K; i++) {
            const uint8_t *blk = row + i * sbb;
            uint8_t *ob = o + i * bb, code[QK_K];
            int8_t ls[16];
            lt_codes(type, blk, code, ls);
            memcpy(ob + 2 * r, blk, 2); /* every one of these blocks starts with its f16 d */
            for (int g = 0; g < ng; g++) ob[32 + 16 * g + r] = (uint8_t)ls[g];
            for (int b = 0; b < 8; b++)
                for (int k = 0; k < 16; k++) /* byte k of block b: element k low, 16 + k high */
                    ob[qo + b * 256 + (k / 4) * 64 + r * 4 + k % 4] = (uint8_t)(code[32 * b + k] | code[32 * b + 16 + k] << 4);
        }
    }
}

void pk_pack_w(int type, int64_t n, const void *rows, int64_t row_bytes, void *out) {
    const uint8_t *src = rows;
    uint8_t *o = out;
    if (type == HERD_TYPE_Q4_K || type == HERD_TYPE_Q5_K) {
        pack_w_k4(type, n, src, row_bytes, o);
        return;
    }
    if (type == HERD_TYPE_Q6_K) {
        pack_w_q6_K(n, src, row_bytes, o);
        return;
    }
    if (pk_levels(type)) {
        pack_w_lt(type, n, src, row_bytes, o);
        return;
    }
    int64_t nb = n / 32, bb = pk_group_bytes(type, n) / nb;
    /* row by row, so each source row is read sequentially; 4 bytes at a time */
    for (int r = 0; r < PK_ROWS; r++) {
        const uint8_t *row = src + r * row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *ob = o + b * bb;
            if (type == HERD_TYPE_Q8_0) {
                const block_q8_0 *blk = (const block_q8_0 *)row + b;
                memcpy(ob + 2 * r, &blk->d, 2);
                for (int c = 0; c < 8; c++) {
                    uint32_t v;
                    memcpy(&v, blk->qs + 4 * c, 4);
                    v ^= 0x80808080u; /* w + 128 in every byte */
                    memcpy(ob + 32 + c * 64 + r * 4, &v, 4);
                }
            } else if (type == HERD_TYPE_Q5_0 || has_min(type)) {
                /* { d, [m,] [qh[4],] qs[16] }: q5_0 22 bytes, q4_1 20, q5_1 24 */
                const uint8_t *blk = row + b * kernels_row_bytes(type, 32);
                const int q5 = type != HERD_TYPE_Q4_1, mo = has_min(type) ? 2 : 0, q0 = has_min(type) ? 64 : 32;
                const uint8_t *qs = blk + 2 + mo + (q5 ? 4 : 0);
                memcpy(ob + 2 * r, blk, 2);
                if (mo) memcpy(ob + 32 + 2 * r, blk + 2, 2);
                for (int c = 0; c < 4; c++) memcpy(ob + q0 + c * 64 + r * 4, qs + 4 * c, 4);
                if (q5) {
                    uint32_t qh;
                    memcpy(&qh, blk + 2 + mo, 4);
                    for (int j = 0; j < 4; j++) {
                        uint8_t h = 0;
                        for (int k = 0; k < 8; k++) h |= (uint8_t)(((qh >> (k < 4 ? 4 * k + j : 16 + 4 * (k - 4) + j)) & 1) << k);
                        ob[q0 + 256 + r * 4 + j] = h;
                    }
                }
            } else { /* q4_0, iq4_nl: the same block layout */
                const block_q4_0 *blk = (const block_q4_0 *)row + b;
                memcpy(ob + 2 * r, &blk->d, 2);
                for (int c = 0; c < 4; c++) memcpy(ob + 32 + c * 64 + r * 4, blk->qs + 4 * c, 4);
            }
        }
    }
}

int64_t pk_x_bytes(int type, int64_t n) {
    switch (type) {
    case HERD_TYPE_Q4_K:
    case HERD_TYPE_Q5_K: return n / QK_K * PK_XK_BLOCK;
    case HERD_TYPE_Q6_K: return n / QK_K * PK_XK6_BLOCK;
    default: return pk_levels(type) ? n / QK_K * PK_XLT_BLOCK : n / 32 * PK_X_BLOCK;
    }
}

void pk_pack_x(int type, int64_t n, const void *x, void *xp) {
    uint8_t *o = xp;
    if (type == HERD_TYPE_Q4_K || type == HERD_TYPE_Q5_K) {
        const block_q8_K *k = x;
        for (int64_t i = 0; i < n / QK_K; i++, o += PK_XK_BLOCK) {
            memset(o, 0, 32);
            memcpy(o, &k[i].d, 4);
            for (int s = 0; s < 8; s++) {
                int16_t nbs = (int16_t)-(k[i].bsums[2 * s] + k[i].bsums[2 * s + 1]);
                memcpy(o + 16 + 2 * s, &nbs, 2);
            }
            memcpy(o + 32, k[i].qs, QK_K);
        }
        return;
    }
    if (type == HERD_TYPE_Q6_K || pk_levels(type)) { /* the same layout; q6_K's u = q + 32, the levels' + 128 */
        const block_q8_K *k = x;
        const int32_t bias = type == HERD_TYPE_Q6_K ? -32 : -128;
        for (int64_t i = 0; i < n / QK_K; i++, o += PK_XK6_BLOCK) {
            memset(o, 0, 16);
            memcpy(o, &k[i].d, 4);
            for (int g = 0; g < 16; g++) {
                int32_t off = bias * k[i].bsums[g];
                memcpy(o + 16 + 4 * g, &off, 4);
            }
            memcpy(o + 80, k[i].qs, QK_K);
        }
        return;
    }
    if (has_min(type)) { /* q8_1 rows: d, s widened */
        const block_q8_1 *b = x;
        for (int64_t i = 0; i < n / 32; i++, o += PK_X_BLOCK) {
            float d = fp16_to_fp32(b[i].d), s = fp16_to_fp32(b[i].s);
            memcpy(o, &d, 4);
            memcpy(o + 4, &s, 4);
            memcpy(o + 8, b[i].qs, 32);
        }
        return;
    }
    const block_q8_0 *b = x;
    int32_t bias = type == HERD_TYPE_Q8_0 || type == HERD_TYPE_IQ4_NL ? -128 : type == HERD_TYPE_Q5_0 ? -16 : -8;
    for (int64_t i = 0; i < n / 32; i++, o += PK_X_BLOCK) {
        float d = fp16_to_fp32(b[i].d);
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += b[i].qs[j];
        int32_t off = bias * s;
        memcpy(o, &d, 4);
        memcpy(o + 4, &off, 4);
        memcpy(o + 8, b[i].qs, 32);
    }
}

/* The unsigned weight byte of element e (0..31) of row r in a group's block blk (what the kernels
 * multiply: q8_0 w + 128, q4_0 the nibble, q5_0 nibble | 16 bit, iq4_nl K[nibble] + 128). */
static inline int u_of(int type, const uint8_t *blk, int r, int e) {
    if (type == HERD_TYPE_Q8_0) return blk[32 + (e / 4) * 64 + r * 4 + e % 4];
    int lo = e < 16, k = lo ? e : e - 16, q0 = has_min(type) ? 64 : 32; /* element k (< 16) low nibble, 16 + k high */
    uint8_t byte = blk[q0 + (k / 4) * 64 + r * 4 + k % 4];
    int nib = lo ? byte & 15 : byte >> 4;
    if (type == HERD_TYPE_IQ4_NL) return k_iq4nl[nib] + 128;
    if (type == HERD_TYPE_Q5_0 || type == HERD_TYPE_Q5_1)
        nib |= ((blk[q0 + 256 + r * 4 + k % 4] >> (k / 4 + (lo ? 0 : 4))) & 1) << 4;
    return nib;
}

/* q4_K, and q5_K (q5: its fifth bits after q4_K's layout) */
static float dot_ref_k4(int q5, int64_t n, const uint8_t *wg, int r, const uint8_t *x) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *blk = wg + b * (q5 ? PK_K5_BLOCK : PK_K4_BLOCK), *xb = x + b * PK_XK_BLOCK;
        float dx;
        uint16_t d, dmin;
        memcpy(&dx, xb, 4);
        memcpy(&d, blk + 2 * r, 2);
        memcpy(&dmin, blk + 32 + 2 * r, 2);
        int32_t sumi = 0, summ = 0;
        for (int s = 0; s < 8; s++) {
            int32_t isum = 0;
            for (int e = 0; e < 32; e++) { /* element 32s + e = 64c + 32u + l */
                int c = s / 2, u = s % 2;
                uint8_t byte = blk[320 + c * 512 + (e / 4) * 64 + r * 4 + e % 4];
                int q = u ? byte >> 4 : byte & 15;
                if (q5) q |= ((blk[PK_K4_BLOCK + (e / 4) * 64 + r * 4 + e % 4] >> s) & 1) << 4;
                isum += q * (int8_t)xb[32 + 32 * s + e];
            }
            int16_t nbs;
            memcpy(&nbs, xb + 16 + 2 * s, 2);
            sumi += blk[64 + 16 * s + r] * isum;
            summ += blk[192 + 32 * (s / 2) + 2 * r + s % 2] * nbs;
        }
        acc = fmaf((float)sumi, fp16_to_fp32(d) * dx, acc);
        acc = fmaf((float)summ, fp16_to_fp32(dmin) * dx, acc);
    }
    return acc;
}

static float dot_ref_q4_K(int64_t n, const uint8_t *wg, int r, const uint8_t *x) {
    return dot_ref_k4(0, n, wg, r, x);
}

static float dot_ref_q5_K(int64_t n, const uint8_t *wg, int r, const uint8_t *x) {
    return dot_ref_k4(1, n, wg, r, x);
}

static float dot_ref_q6_K(int64_t n, const uint8_t *wg, int r, const uint8_t *x) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *blk = wg + b * PK_K6_BLOCK, *xb = x + b * PK_XK6_BLOCK;
        float dx;
        uint16_t d;
        memcpy(&dx, xb, 4);
        memcpy(&d, blk + 2 * r, 2);
        int32_t sumi = 0;
        for (int g = 0; g < 16; g++) {
            int32_t isum;
            memcpy(&isum, xb + 16 + 4 * g, 4);
            for (int e = 16 * g; e < 16 * g + 16; e++) {
                int c = e / 4, j = e % 4;
                uint8_t lo = blk[288 + (c % 32) * 64 + r * 4 + j], hi = blk[2336 + (c % 16) * 64 + r * 4 + j];
                int u = (c < 32 ? lo & 15 : lo >> 4) | ((hi >> (2 * (c / 16))) & 3) << 4;
                isum += u * (int8_t)xb[80 + e];
            }
            sumi += (int8_t)blk[32 + 16 * g + r] * isum;
        }
        acc = fmaf((float)sumi, fp16_to_fp32(d) * dx, acc);
    }
    return acc;
}

/* The level-table layouts: the plain dots' numerics (dot_iq4_xs_ref, dot_iq3_s_ref, dot_iq3_xxs_ref,
 * dot_iq2_s_ref) on the packed layout */
static float dot_ref_lt(int type, int64_t n, const uint8_t *wg, int r, const uint8_t *x) {
    const int8_t *lv = pk_levels(type);
    const int ng = type == HERD_TYPE_IQ2_S ? 16 : 8, gl = QK_K / ng; /* scales, and elements a scale */
    const int64_t bb = pk_group_bytes(type, QK_K), qo = 32 + 16 * ng;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *blk = wg + i * bb, *xb = x + i * PK_XLT_BLOCK;
        float dx;
        uint16_t d;
        memcpy(&dx, xb, 4);
        memcpy(&d, blk + 2 * r, 2);
        int32_t sumi = 0;
        for (int g = 0; g < ng; g++) {
            int32_t isum = 0;
            for (int e = g * gl; e < (g + 1) * gl; e++) { /* element e: block e / 32, byte k of it */
                int b = e / 32, p = e % 32, k = p % 16;
                uint8_t byte = blk[qo + b * 256 + (k / 4) * 64 + r * 4 + k % 4];
                isum += lv[p < 16 ? byte & 15 : byte >> 4] * (int8_t)xb[80 + e];
            }
            sumi += (int8_t)blk[32 + 16 * g + r] * isum;
        }
        acc += (float)sumi * (fp16_to_fp32(d) * dx);
    }
    return type == HERD_TYPE_IQ2_S ? 0.125f * acc : type == HERD_TYPE_IQ3_XXS ? 0.25f * acc : acc;
}

void pk_gemm_ref(int type, int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                 float *y, int64_t ldy) {
    if (!block32(type)) { /* super-blocks: one row's dot at a time */
        float (*dot)(int64_t, const uint8_t *, int, const uint8_t *) = type == HERD_TYPE_Q4_K   ? dot_ref_q4_K
                                                                        : type == HERD_TYPE_Q5_K ? dot_ref_q5_K
                                                                        : type == HERD_TYPE_Q6_K ? dot_ref_q6_K
                                                                                                 : NULL;
        int64_t gb = pk_group_bytes(type, n);
        for (int64_t g = 0; g < ng; g++)
            for (int64_t t = 0; t < nt; t++)
                for (int r = 0; r < PK_ROWS; r++) {
                    const uint8_t *wg = (const uint8_t *)wp + g * gb, *xt = (const uint8_t *)xp + t * xp_stride;
                    y[t * ldy + g * PK_ROWS + r] = dot ? dot(n, wg, r, xt) : dot_ref_lt(type, n, wg, r, xt);
                }
        return;
    }
    int64_t nb = n / 32, gb = pk_group_bytes(type, n), bb = gb / nb;
    for (int64_t g = 0; g < ng; g++)
        for (int64_t t = 0; t < nt; t++)
            for (int r = 0; r < PK_ROWS; r++) {
                float acc = 0.0f;
                for (int64_t b = 0; b < nb; b++) {
                    const uint8_t *blk = (const uint8_t *)wp + g * gb + b * bb;
                    const uint8_t *xb = (const uint8_t *)xp + t * xp_stride + b * PK_X_BLOCK;
                    float dx, sx = 0;
                    int32_t isum = 0;
                    uint16_t dw, mw;
                    memcpy(&dx, xb, 4);
                    if (has_min(type)) memcpy(&sx, xb + 4, 4); /* s, and the quants need no offset */
                    else memcpy(&isum, xb + 4, 4);
                    memcpy(&dw, blk + 2 * r, 2);
                    for (int e = 0; e < 32; e++) isum += u_of(type, blk, r, e) * (int8_t)xb[8 + e];
                    acc = fmaf((float)isum, fp16_to_fp32(dw) * dx, acc);
                    if (has_min(type)) {
                        memcpy(&mw, blk + 32 + 2 * r, 2);
                        acc = fmaf(fp16_to_fp32(mw), sx, acc);
                    }
                }
                y[t * ldy + g * PK_ROWS + r] = acc;
            }
}
