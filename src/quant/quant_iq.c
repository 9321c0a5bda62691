/* The quantizers of the low-bit i-quants and the ternary types (formats: src/kernels/iquants.h): ggml's
 * quantize_row_<type>_impl (ggml/src/ggml-quants.c in the bundled llama.cpp), which llama-quantize runs, redone
 * operation for operation so that the same row and the same importance weights give the same bytes (the notes
 * at the top of quant_weighted.c on FP contraction hold here too).
 *
 * Lattice types (iq2_*, iq3_*, iq1_*): groups of 8 (iq2, iq1) or 4 (iq3) values take one point of a fixed grid
 * (src/kernels/iq_grids.c). A grid point is stored here by its coordinates' levels l (0..2 for iq2 and iq1,
 * 0..7 for iq3) as pos = 2 l + 1; a group's "key" packs its levels, 2 bits (iq2, iq1) or 3 bits (iq3) each,
 * coordinate 0 lowest. The search rounds a group to levels, looks the key up in map[]: a grid point, or the
 * list of the grid points nearest to it (integer squared distance of the pos vectors; all points at the
 * nwant smallest distances, in order of distance then grid index: ggml's qsort order), among which a weighted
 * least-squares test picks. The lattice tables are built once per type on first use (lattice_get, locked).
 *
 * Per type (super-blocks of 256; weights w = qw * sqrt(sigma2 + x^2), sigma2 = mean x^2 of the super-block,
 * times 2 for all but iq2_xxs / iq2_xs; without an importance matrix (types that allow it) w = x^2, iq2_s
 * 0.25 sigma2 + x^2):
 *   iq2_xxs  per 32: |x| with an even count of sign flips (the flip of least w x^2 undone), 13 trial scales
 *            around make_qp_quants' (x 0.1 steps), 4-bit block scales of d = max / 31
 *   iq2_xs   per 16: likewise, 19 trial scales around max / 5, 4-bit scales
 *   iq2_s    per 16: free signs (8 bits per group), 19 trial scales, d fudged by 0.9875
 *   iq3_xxs  per 32: even sign flips, groups of 4 on the 256-point grid, 31 trial scales, d fudged by 1.0125
 *   iq3_s    per 32: free signs, 512-point grid, 19 trial scales, d fudged by 1.033
 *   iq1_s    per 32: the exact optimum split of the sorted values into -1 / 0 / +1 (shifted by +-IQ1_DELTA),
 *            then the nearest grid points; 3-bit scales of d = max / 15, fudged by 1.125
 *   iq1_m    per 16: as iq1_s, each half of 8 its own shift; d refit over the super-block, fudged by 1.1125
 *   tq1_0, tq2_0: round x / max|x| to -1, 0, 1 (no importance matrix, as ggml)
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/iquants.h"
#include "../kernels/types.h"
#include "herd.h"
#include "quant.h"
#include "quant_impl.h"

#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

#define GROUP_MAX_EPS 1e-15f
#define GROUP_MAX_EPS_IQ3_XXS 1e-8f
#define GROUP_MAX_EPS_IQ2_S 1e-8f
#define GROUP_MAX_EPS_IQ1_M 1e-7f
#define GROUP_MAX_EPS_IQ1_S 1e-12f

/* ---------------------------------------------------------------- lattices */

enum { LAT_IQ2_XXS, LAT_IQ2_XS, LAT_IQ2_S, LAT_IQ1_S, LAT_IQ3_XXS, LAT_IQ3_S, LAT_COUNT };

typedef struct {
    int dim;              /* coordinates per point: 8 or 4 */
    int bits;             /* bits per level in a key: 2 or 3 */
    int n_grid;
    int nwant;            /* neighbour lists hold the points at this many smallest distances */
    int8_t *pos;          /* [n_grid][dim]: 2 l + 1 */
    int *map;             /* [1 << bits * dim]: grid index, or -(offset + 1) of a list in neighbours, or
                           * UNREACHABLE (a level no quantizer rounds to) */
    uint16_t *neighbours; /* per list: count, then the grid indices */
} lattice;

#define UNREACHABLE INT_MIN

static lattice g_lat[LAT_COUNT];
static pthread_mutex_t g_lat_lock = PTHREAD_MUTEX_INITIALIZER;

/* level of coordinate k of grid entry j of the kernels' tables (iq_grids.c: the dequantized coordinates) */
static int grid_level(int which, int j, int k) {
    switch (which) {
    case LAT_IQ2_XXS: case LAT_IQ2_XS: case LAT_IQ2_S: {
        uint64_t g = which == LAT_IQ2_XXS ? iq2xxs_grid[j] : which == LAT_IQ2_XS ? iq2xs_grid[j] : iq2s_grid[j];
        int v = (int)((g >> 8 * k) & 0xff); /* 8, 25, 43 */
        return v == 8 ? 0 : v == 25 ? 1 : 2;
    }
    case LAT_IQ1_S: {
        int v = (int8_t)((iq1s_grid[j] >> 8 * k) & 0xff); /* -1, 0, 1 */
        return v + 1;
    }
    case LAT_IQ3_XXS: {
        int v = (int)((iq3xxs_grid[j] >> 8 * k) & 0xff); /* 4, 12, .., 52, 62 */
        return v == 62 ? 7 : (v - 4) / 8;
    }
    default: return (int)(((iq3s_grid[j] >> 8 * k) & 0xff) - 1) / 2; /* 1, 3, .., 15 */
    }
}

/* Builds lattice `which`. Only keys whose every level lies in 0..max_level (the levels a quantizer can round
 * to: 2 for the 2-bit keys, 7 for the 3-bit ones) get a list; others are UNREACHABLE. */
static void lattice_build(lattice *lt, int which) {
    static const int n_grid[LAT_COUNT] = {256, 512, 1024, 2048, 256, 512};
    static const int nwant[LAT_COUNT] = {2, 2, 1, 3, 2, 3};
    lt->dim = which >= LAT_IQ3_XXS ? 4 : 8;
    lt->bits = which >= LAT_IQ3_XXS ? 3 : 2;
    lt->n_grid = n_grid[which];
    lt->nwant = nwant[which];
    int max_level = lt->bits == 3 ? 7 : 2, n_keys = 1 << lt->bits * lt->dim, mask = (1 << lt->bits) - 1;
    lt->pos = herd_xmalloc((size_t)lt->n_grid * (size_t)lt->dim);
    lt->map = herd_xmalloc((size_t)n_keys * sizeof *lt->map);
    for (int i = 0; i < n_keys; i++) lt->map[i] = -1;
    for (int j = 0; j < lt->n_grid; j++) {
        int key = 0;
        for (int k = 0; k < lt->dim; k++) {
            int l = grid_level(which, j, k);
            lt->pos[j * lt->dim + k] = (int8_t)(2 * l + 1);
            key |= l << lt->bits * k;
        }
        lt->map[key] = j;
    }
    /* The nearest points of each off-grid key: squared distances are small integers (< 1024), so a count per
     * distance finds the nwant smallest, and a scan per chosen distance lists its points by grid index. */
    int *d2 = herd_xmalloc((size_t)lt->n_grid * sizeof *d2);
    size_t cap = 1 << 16, used = 0;
    uint16_t *nb = herd_xmalloc(cap * sizeof *nb);
    for (int key = 0; key < n_keys; key++) {
        if (lt->map[key] >= 0) continue;
        int pos[8], count[1024] = {0};
        bool reachable = true;
        for (int k = 0; k < lt->dim; k++) {
            int l = (key >> lt->bits * k) & mask;
            reachable &= l <= max_level;
            pos[k] = 2 * l + 1;
        }
        if (!reachable) {
            lt->map[key] = UNREACHABLE;
            continue;
        }
        for (int j = 0; j < lt->n_grid; j++) {
            int s = 0;
            for (int k = 0; k < lt->dim; k++) {
                int d = lt->pos[j * lt->dim + k] - pos[k];
                s += d * d;
            }
            d2[j] = s;
            count[s]++;
        }
        int chosen[3], n_chosen = 0, total = 0;
        for (int s = 0; s < 1024 && n_chosen < lt->nwant; s++)
            if (count[s]) chosen[n_chosen++] = s, total += count[s];
        if (used + 1 + (size_t)total > cap) {
            while (used + 1 + (size_t)total > cap) cap *= 2;
            nb = herd_xrealloc(nb, cap * sizeof *nb);
        }
        lt->map[key] = -(int)(used + 1);
        nb[used++] = (uint16_t)total;
        for (int c = 0; c < n_chosen; c++)
            for (int j = 0; j < lt->n_grid; j++)
                if (d2[j] == chosen[c]) nb[used++] = (uint16_t)j;
    }
    free(d2);
    lt->neighbours = nb;
}

static const lattice *lattice_get(int which) {
    pthread_mutex_lock(&g_lat_lock);
    if (!g_lat[which].pos) lattice_build(&g_lat[which], which);
    pthread_mutex_unlock(&g_lat_lock);
    return &g_lat[which];
}

static const uint16_t *lattice_list(const lattice *lt, int key) {
    HERD_ASSERT(lt->map[key] < 0 && lt->map[key] != UNREACHABLE);
    return lt->neighbours - lt->map[key] - 1;
}

/* ggml's iq2_find_best_neighbour / iq3_find_best_neighbour: the listed point of least sum w (scale pos - x)^2;
 * L[dim] gets its levels. Returns its grid index. */
static int best_neighbour(const lattice *lt, const uint16_t *list, const float *xval, const float *weight, float scale,
                          int8_t *L) {
    int n = list[0];
    HERD_ASSERT(n > 0);
    float best_d2 = FLT_MAX;
    int grid_index = -1;
    for (int j = 1; j <= n; ++j) {
        const int8_t *pg = lt->pos + list[j] * lt->dim;
        float d2 = 0;
        for (int i = 0; i < lt->dim; ++i) {
            float q = pg[i];
            float diff = scale * q - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if (d2 < best_d2) {
            best_d2 = d2;
            grid_index = list[j];
        }
    }
    HERD_ASSERT(grid_index >= 0);
    const int8_t *pg = lt->pos + grid_index * lt->dim;
    for (int i = 0; i < lt->dim; ++i) L[i] = (int8_t)((pg[i] - 1) / 2);
    return grid_index;
}

/* the key of levels L[dim] */
static int lattice_key(const lattice *lt, const int8_t *L) {
    int u = 0;
    for (int i = 0; i < lt->dim; ++i) u |= L[i] << lt->bits * i;
    return u;
}

/* |x| of a group of 8 into xval, the flipped signs as bits; with even_flips (iq2_xxs, iq2_xs, iq3_xxs) an odd
 * count gets the flip of least w x^2 undone (its sign is implied by the parity) */
static uint8_t group_signs(const float *xb, const float *weight, float *xval, bool even_flips) {
    int nflip = 0;
    uint8_t s = 0;
    for (int i = 0; i < 8; ++i) {
        if (xb[i] >= 0) xval[i] = xb[i];
        else {
            xval[i] = -xb[i];
            ++nflip;
            s |= (uint8_t)(1 << i);
        }
    }
    if (even_flips && nflip % 2) {
        int imin = 0;
        float min = weight[imin] * xb[imin] * xb[imin];
        for (int i = 1; i < 8; ++i) {
            float ax = weight[i] * xb[i] * xb[i];
            if (ax < min) {
                min = ax;
                imin = i;
            }
        }
        xval[imin] = -xval[imin];
        s ^= (uint8_t)(1 << imin);
    }
    return even_flips ? (uint8_t)(s & 127) : s;
}

/* ---------------------------------------------------------------- iq2_xxs, iq2_xs, iq2_s */

static void iq2_xxs_row(const float *x, block_iq2_xxs *y, int64_t n, const float *quant_weights) {
    const lattice *lt = lattice_get(LAT_IQ2_XXS);
    const int kMaxQ = 3;
    float scales[QK_K / 32], weight[32], xval[32], waux[32];
    int8_t L[32], Laux[32];
    uint8_t block_signs[4];
    uint32_t q2[2 * (QK_K / 32)];
    for (int64_t ibl = 0; ibl < n / QK_K; ++ibl) {
        y[ibl].d = fp32_to_fp16(0.f);
        memset(q2, 0, QK_K / 4);
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        float sumx2 = 0;
        for (int i = 0; i < QK_K; ++i) sumx2 += xbl[i] * xbl[i];
        float sigma2 = sumx2 / QK_K;
        for (int ib = 0; ib < QK_K / 32; ++ib) {
            const float *xb = xbl + 32 * ib;
            const float *qw = quant_weights + QK_K * ibl + 32 * ib;
            for (int i = 0; i < 32; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
            for (int i = 0; i < 32; ++i) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 4; ++k) block_signs[k] = group_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, true);
            float max = xval[0];
            for (int i = 1; i < 32; ++i) max = MAX(max, xval[i]);
            if (max < GROUP_MAX_EPS) {
                scales[ib] = 0;
                memset(L, 0, 32);
                continue;
            }
            float scale = quant_make_qp_quants(32, kMaxQ + 1, xval, (uint8_t *)L, weight);
            float eff_max = scale * kMaxQ;
            if (eff_max <= 0) {
                scales[ib] = 0;
                memset(L, 0, 32);
                continue;
            }
            float best = 0;
            for (int is = -6; is <= 6; ++is) {
                float id = (2 * kMaxQ - 1 + is * 0.1f) / eff_max;
                float this_scale = 1 / id;
                for (int k = 0; k < 4; ++k) {
                    for (int i = 0; i < 8; ++i) {
                        int l = nearest_int(0.5f * (id * xval[8 * k + i] - 1));
                        Laux[8 * k + i] = (int8_t)MAX(0, MIN(kMaxQ - 1, l));
                    }
                    int u = lattice_key(lt, Laux + 8 * k);
                    if (lt->map[u] < 0)
                        best_neighbour(lt, lattice_list(lt, u), xval + 8 * k, waux + 8 * k, this_scale, Laux + 8 * k);
                }
                float sumqx = 0, sumq2 = 0;
                for (int i = 0; i < 32; ++i) {
                    float w = weight[i];
                    float q = 2 * Laux[i] + 1;
                    sumqx += w * xval[i] * q;
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                    scale = sumqx / sumq2;
                    best = scale * sumqx;
                    memcpy(L, Laux, 32);
                }
            }
            if (scale > 0) {
                float id = 1 / scale;
                for (int k = 0; k < 4; ++k) {
                    int u = 0;
                    for (int i = 0; i < 8; ++i) {
                        int l = nearest_int(0.5f * (id * xval[8 * k + i] - 1));
                        l = MAX(0, MIN(kMaxQ - 1, l));
                        u |= l << 2 * i;
                    }
                    int grid_index = lt->map[u];
                    if (grid_index < 0)
                        grid_index = best_neighbour(lt, lattice_list(lt, u), xval + 8 * k, waux + 8 * k, scale, L + 8 * k);
                    const int8_t *pg = lt->pos + grid_index * 8;
                    for (int i = 0; i < 8; ++i) L[8 * k + i] = (int8_t)((pg[i] - 1) / 2);
                }
                float sumqx = 0, sumq2 = 0;
                for (int i = 0; i < 32; ++i) {
                    float w = weight[i];
                    float q = 2 * L[i] + 1;
                    sumqx += w * xval[i] * q;
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0) scale = sumqx / sumq2;
            }
            if (scale < 0) { /* never expected; ggml flips the scale and the signs */
                scale = -scale;
                for (int k = 0; k < 4; ++k) block_signs[k] = (uint8_t)((~block_signs[k]) & 127);
            }
            for (int k = 0; k < 4; ++k) {
                int grid_index = lt->map[lattice_key(lt, L + 8 * k)];
                HERD_ASSERT(grid_index >= 0);
                q2[2 * ib + 0] |= (uint32_t)grid_index << 8 * k;
                q2[2 * ib + 1] |= (uint32_t)block_signs[k] << 7 * k;
            }
            scales[ib] = scale;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) {
            memset(y[ibl].qs, 0, QK_K / 4);
            continue;
        }
        float d = max_scale / 31;
        y[ibl].d = fp32_to_fp16(d);
        float id = 1 / d;
        for (int ib = 0; ib < QK_K / 32; ++ib) {
            int l = nearest_int(0.5f * (id * scales[ib] - 1));
            l = MAX(0, MIN(15, l));
            q2[2 * ib + 1] |= (uint32_t)l << 28;
        }
        memcpy(y[ibl].qs, q2, QK_K / 4);
    }
}

/* iq2_xs and iq2_s: groups of 16 (two of 8), 19 trial scales around max / 5, then the off-grid groups
 * requantized at the chosen scale. xs: parity signs, 512-point grid; s: free signs, 1024 points. */
static void iq2_xs_s_row(bool is_s, const float *x, void *vy, int64_t n, const float *quant_weights) {
    const lattice *lt = lattice_get(is_s ? LAT_IQ2_S : LAT_IQ2_XS);
    const int kMaxQ = 3;
    float scales[QK_K / 16], weight[16], xval[16], waux[16];
    int8_t L[16], Laux[16];
    bool is_on_grid[2], is_on_grid_aux[2];
    uint8_t block_signs[2];
    uint16_t q2[2 * (QK_K / 16)];
    for (int64_t ibl = 0; ibl < n / QK_K; ++ibl) {
        block_iq2_xs *yx = (block_iq2_xs *)vy + ibl;
        block_iq2_s *ys = (block_iq2_s *)vy + ibl;
        if (is_s) {
            memset(ys, 0, sizeof *ys);
            ys->d = fp32_to_fp16(0.f);
        } else {
            yx->d = fp32_to_fp16(0.f);
            memset(q2, 0, QK_K / 4);
            memset(yx->scales, 0, QK_K / 32);
        }
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        float sumx2 = 0;
        for (int i = 0; i < QK_K; ++i) sumx2 += xbl[i] * xbl[i];
        float sigma2 = is_s ? 2 * sumx2 / QK_K : sumx2 / QK_K;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float *xb = xbl + 16 * ib;
            if (quant_weights) {
                const float *qw = quant_weights + QK_K * ibl + 16 * ib;
                for (int i = 0; i < 16; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
            } else {
                for (int i = 0; i < 16; ++i) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
            }
            for (int i = 0; i < 16; ++i) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 2; ++k) block_signs[k] = group_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, !is_s);
            float max = xval[0];
            for (int i = 1; i < 16; ++i) max = MAX(max, xval[i]);
            memset(L, 0, 16);
            if (max < (is_s ? GROUP_MAX_EPS_IQ2_S : GROUP_MAX_EPS)) {
                scales[ib] = 0;
                continue;
            }
            float best = 0;
            float scale = max / (2 * kMaxQ - 1);
            is_on_grid[0] = is_on_grid[1] = true;
            for (int is = -9; is <= 9; ++is) {
                float id = (2 * kMaxQ - 1 + is * 0.1f) / max;
                float this_scale = 1 / id;
                for (int k = 0; k < 2; ++k) {
                    for (int i = 0; i < 8; ++i) {
                        int l = nearest_int(0.5f * (id * xval[8 * k + i] - 1));
                        Laux[8 * k + i] = (int8_t)MAX(0, MIN(kMaxQ - 1, l));
                    }
                    int u = lattice_key(lt, Laux + 8 * k);
                    is_on_grid_aux[k] = lt->map[u] >= 0;
                    if (!is_on_grid_aux[k])
                        best_neighbour(lt, lattice_list(lt, u), xval + 8 * k, waux + 8 * k, this_scale, Laux + 8 * k);
                }
                float sumqx = 0, sumq2 = 0;
                for (int i = 0; i < 16; ++i) {
                    float w = weight[i];
                    float q = 2 * Laux[i] + 1;
                    sumqx += w * xval[i] * q;
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                    scale = sumqx / sumq2;
                    best = scale * sumqx;
                    for (int i = 0; i < 16; ++i) L[i] = Laux[i];
                    for (int k = 0; k < 2; ++k) is_on_grid[k] = is_on_grid_aux[k];
                }
            }
            int n_not_ongrid = 0;
            for (int k = 0; k < 2; ++k)
                if (!is_on_grid[k]) ++n_not_ongrid;
            if (n_not_ongrid > 0 && scale > 0) {
                float id = 1 / scale;
                for (int k = 0; k < 2; ++k) {
                    if (is_on_grid[k]) continue;
                    for (int i = 0; i < 8; ++i) {
                        int l = nearest_int(0.5f * (id * xval[8 * k + i] - 1));
                        L[8 * k + i] = (int8_t)MAX(0, MIN(kMaxQ - 1, l));
                    }
                    int u = lattice_key(lt, L + 8 * k);
                    if (lt->map[u] < 0) best_neighbour(lt, lattice_list(lt, u), xval + 8 * k, waux + 8 * k, scale, L + 8 * k);
                }
                float sumqx = 0, sumq2 = 0;
                for (int i = 0; i < 16; ++i) {
                    float w = weight[i];
                    float q = 2 * L[i] + 1;
                    sumqx += w * xval[i] * q;
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0) scale = sumqx / sumq2;
            }
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < 2; ++k) block_signs[k] = (uint8_t)(is_s ? ~block_signs[k] : (~block_signs[k]) & 127);
            }
            for (int k = 0; k < 2; ++k) {
                int grid_index = lt->map[lattice_key(lt, L + 8 * k)];
                HERD_ASSERT(grid_index >= 0);
                if (is_s) {
                    const int i8 = 2 * ib + k;
                    ys->qs[i8] = (uint8_t)(grid_index & 255);
                    ys->qh[i8 / 4] |= (uint8_t)((grid_index >> 8) << 2 * (i8 % 4));
                    ys->qs[QK_K / 8 + i8] = block_signs[k];
                } else {
                    q2[2 * ib + k] = (uint16_t)(grid_index | (block_signs[k] << 9));
                }
            }
            scales[ib] = scale;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) {
            if (!is_s) memset(yx->qs, 0, QK_K / 4);
            continue;
        }
        float d = max_scale / 31;
        if (is_s) ys->d = fp32_to_fp16(d * 0.9875f);
        else yx->d = fp32_to_fp16(d);
        float id = 1 / d;
        uint8_t *sc = is_s ? ys->scales : yx->scales;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            int l = nearest_int(0.5f * (id * scales[ib] - 1));
            l = MAX(0, MIN(15, l));
            if (ib % 2 == 0) sc[ib / 2] = (uint8_t)l;
            else sc[ib / 2] |= (uint8_t)(l << 4);
        }
        if (!is_s) memcpy(yx->qs, q2, QK_K / 4);
    }
}

/* ---------------------------------------------------------------- iq3_xxs, iq3_s */

/* Both: blocks of 32 as 8 groups of 4 (signs per 8). xxs: parity signs, 256 points, 31 trial scales of step
 * 0.2 around max / 15, only the off-grid groups requantized; s: free signs, 512 points, 19 trial scales, every
 * group requantized. */
static void iq3_row(bool is_s, const float *x, void *vy, int64_t n, const float *quant_weights) {
    const lattice *lt = lattice_get(is_s ? LAT_IQ3_S : LAT_IQ3_XXS);
    const int kMaxQ = 8;
    float scales[QK_K / 32], weight[32], xval[32], waux[32];
    int8_t L[32], Laux[32];
    bool is_on_grid[8], is_on_grid_aux[8];
    uint8_t block_signs[8];
    uint8_t q3[3 * (QK_K / 8) + QK_K / 32]; /* iq3_xxs: 64 indices, then 8 u32 of signs and scale */
    for (int64_t ibl = 0; ibl < n / QK_K; ++ibl) {
        block_iq3_xxs *yx = (block_iq3_xxs *)vy + ibl;
        block_iq3_s *ys = (block_iq3_s *)vy + ibl;
        if (is_s) {
            memset(ys, 0, sizeof *ys);
            ys->d = fp32_to_fp16(0.f);
        } else {
            yx->d = fp32_to_fp16(0.f);
            memset(q3, 0, sizeof q3);
        }
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        float sumx2 = 0;
        for (int i = 0; i < QK_K; ++i) sumx2 += xbl[i] * xbl[i];
        float sigma2 = 2 * sumx2 / QK_K;
        /* iq3_s: ggml moves its qs / signs write positions past the blocks it quantizes only, so after an
         * all-zero block (skipped) the next blocks' indices and signs land one block early; kept for identity */
        int iq3s_next = 0;
        for (int ib = 0; ib < QK_K / 32; ++ib) {
            const float *xb = xbl + 32 * ib;
            if (quant_weights) {
                const float *qw = quant_weights + QK_K * ibl + 32 * ib;
                for (int i = 0; i < 32; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
            } else {
                for (int i = 0; i < 32; ++i) weight[i] = xb[i] * xb[i];
            }
            for (int i = 0; i < 32; ++i) waux[i] = sqrtf(weight[i]);
            for (int k = 0; k < 4; ++k) block_signs[k] = group_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k, !is_s);
            float max = xval[0];
            for (int i = 1; i < 32; ++i) max = MAX(max, xval[i]);
            memset(L, 0, 32);
            if (is_s ? !max : max < GROUP_MAX_EPS_IQ3_XXS) {
                scales[ib] = 0;
                continue;
            }
            float best = 0;
            float scale = max / (2 * kMaxQ - 1);
            for (int k = 0; k < 8; ++k) is_on_grid[k] = !is_s;
            int n_is = is_s ? 9 : 15;
            for (int is = -n_is; is <= n_is; ++is) {
                float id = (2 * kMaxQ - 1 + is * 0.2f) / max;
                float this_scale = 1 / id;
                for (int k = 0; k < 8; ++k) {
                    for (int i = 0; i < 4; ++i) {
                        int l = nearest_int(0.5f * (id * xval[4 * k + i] - 1));
                        Laux[4 * k + i] = (int8_t)MAX(0, MIN(kMaxQ - 1, l));
                    }
                    int u = lattice_key(lt, Laux + 4 * k);
                    is_on_grid_aux[k] = lt->map[u] >= 0;
                    if (!is_on_grid_aux[k])
                        best_neighbour(lt, lattice_list(lt, u), xval + 4 * k, waux + 4 * k, this_scale, Laux + 4 * k);
                }
                float sumqx = 0, sumq2 = 0;
                for (int i = 0; i < 32; ++i) {
                    float w = weight[i];
                    float q = 2 * Laux[i] + 1;
                    sumqx += w * xval[i] * q;
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                    scale = sumqx / sumq2;
                    best = scale * sumqx;
                    for (int i = 0; i < 32; ++i) L[i] = Laux[i];
                    for (int k = 0; k < 8; ++k) is_on_grid[k] = is_on_grid_aux[k];
                }
            }
            int n_not_ongrid = 0;
            for (int k = 0; k < 8; ++k)
                if (!is_on_grid[k]) ++n_not_ongrid;
            if (n_not_ongrid > 0 && scale > 0) {
                float id = 1 / scale;
                for (int k = 0; k < 8; ++k) {
                    if (!is_s && is_on_grid[k]) continue;
                    int u = 0;
                    for (int i = 0; i < 4; ++i) {
                        int l = nearest_int(0.5f * (id * xval[4 * k + i] - 1));
                        l = MAX(0, MIN(kMaxQ - 1, l));
                        u |= l << 3 * i;
                    }
                    int grid_index = lt->map[u];
                    if (grid_index < 0)
                        grid_index = best_neighbour(lt, lattice_list(lt, u), xval + 4 * k, waux + 4 * k, scale, L + 4 * k);
                    const int8_t *pg = lt->pos + grid_index * 4;
                    for (int i = 0; i < 4; ++i) L[4 * k + i] = (int8_t)((pg[i] - 1) / 2);
                }
                float sumqx = 0, sumq2 = 0;
                for (int i = 0; i < 32; ++i) {
                    float w = weight[i];
                    float q = 2 * L[i] + 1;
                    sumqx += w * xval[i] * q;
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0) scale = sumqx / sumq2;
            }
            if (scale < 0) {
                scale = -scale;
                for (int k = 0; k < 4; ++k) block_signs[k] = (uint8_t)(is_s ? ~block_signs[k] : (~block_signs[k]) & 127);
            }
            for (int k = 0; k < 8; ++k) {
                int grid_index = lt->map[lattice_key(lt, L + 4 * k)];
                HERD_ASSERT(grid_index >= 0);
                if (is_s) {
                    ys->qs[8 * iq3s_next + k] = (uint8_t)(grid_index & 255);
                    ys->qh[ib] |= (uint8_t)((grid_index >> 8) << k);
                } else {
                    q3[8 * ib + k] = (uint8_t)grid_index;
                }
            }
            if (is_s) {
                for (int k = 0; k < 4; ++k) ys->signs[4 * iq3s_next + k] = block_signs[k];
                iq3s_next++;
            } else {
                uint32_t sas = (uint32_t)block_signs[0] | (uint32_t)block_signs[1] << 7 | (uint32_t)block_signs[2] << 14 |
                               (uint32_t)block_signs[3] << 21;
                memcpy(q3 + QK_K / 4 + 4 * ib, &sas, 4);
            }
            scales[ib] = scale;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) {
            if (!is_s) memset(yx->qs, 0, sizeof yx->qs);
            continue;
        }
        float d = max_scale / 31;
        float id = 1 / d;
        if (is_s) {
            ys->d = fp32_to_fp16(d * 1.033f);
            for (int ib = 0; ib < QK_K / 32; ib += 2) {
                int l1 = nearest_int(0.5f * (id * scales[ib + 0] - 1));
                l1 = MAX(0, MIN(15, l1));
                int l2 = nearest_int(0.5f * (id * scales[ib + 1] - 1));
                l2 = MAX(0, MIN(15, l2));
                ys->scales[ib / 2] = (uint8_t)(l1 | (l2 << 4));
            }
        } else {
            yx->d = fp32_to_fp16(d * 1.0125f);
            for (int ib = 0; ib < QK_K / 32; ++ib) {
                int l = nearest_int(0.5f * (id * scales[ib] - 1));
                l = MAX(0, MIN(15, l));
                uint32_t sas;
                memcpy(&sas, q3 + QK_K / 4 + 4 * ib, 4);
                sas |= (uint32_t)l << 28;
                memcpy(q3 + QK_K / 4 + 4 * ib, &sas, 4);
            }
            memcpy(yx->qs, q3, sizeof yx->qs);
        }
    }
}

/* ---------------------------------------------------------------- iq1_s, iq1_m */

/* ggml's iq1_find_best_neighbour2: the listed point of least sum w (scale xg[level] - x)^2 (xg: the three
 * shifted values), falling back to the whole grid; L[8] gets its levels */
static int iq1_best_neighbour(const lattice *lt, const uint16_t *list, const float *xval, const float *weight,
                              float scale, const float *xg, int8_t *L) {
    int n = list[0];
    HERD_ASSERT(n > 0);
    float best_score = FLT_MAX;
    int grid_index = -1;
    for (int j = 1; j <= n; ++j) {
        const int8_t *pg = lt->pos + list[j] * 8;
        float d2 = 0;
        for (int i = 0; i < 8; ++i) {
            float q = xg[(pg[i] - 1) / 2];
            float w = weight[i];
            float diff = scale * q - xval[i];
            d2 += w * diff * diff;
        }
        if (d2 < best_score) {
            best_score = d2;
            grid_index = list[j];
        }
    }
    if (grid_index < 0) { /* only with NaN distances; ggml's fallback, including its use of xval[i] */
        for (int i = 0; i < lt->n_grid; ++i) {
            const int8_t *grid_i = lt->pos + i * 8;
            float d2 = 0;
            for (int j = 0; j < 8; ++j) {
                float w = weight[j];
                float q = xg[(grid_i[j] - 1) / 2];
                float diff = scale * q - xval[i < 8 ? i : 7];
                d2 += w * diff * diff;
            }
            if (d2 < best_score) {
                best_score = d2;
                grid_index = i;
            }
        }
    }
    HERD_ASSERT(grid_index >= 0);
    const int8_t *pg = lt->pos + grid_index * 8;
    for (int i = 0; i < 8; ++i) L[i] = (int8_t)((pg[i] - 1) / 2);
    return grid_index;
}

typedef struct {
    float x;
    int i;
} iq1_pair; /* ggml sorts (value, index) pairs of this layout with the same comparison */

static int iq1_pair_cmp(const void *left, const void *right) {
    const float *l = left, *r = right;
    return *l < *r ? -1 : *l > *r ? 1 : 0;
}

static void iq1_s_row(const float *x, block_iq1_s *y, int64_t n, const float *quant_weights) {
    const lattice *lt = lattice_get(LAT_IQ1_S);
    enum { block_size = 32 };
    const float x_p[3] = {-1 + IQ1_DELTA, IQ1_DELTA, 1 + IQ1_DELTA};
    const float x_m[3] = {-1 - IQ1_DELTA, -IQ1_DELTA, 1 - IQ1_DELTA};
    float scales[QK_K / block_size], weight[block_size], sumx[block_size + 1], sumw[block_size + 1];
    iq1_pair pairs[block_size];
    int8_t L[block_size], shifts[QK_K / block_size];
    uint16_t index[block_size / 8];
    for (int64_t ibl = 0; ibl < n / QK_K; ++ibl) {
        y[ibl].d = fp32_to_fp16(0.f);
        memset(y[ibl].qs, 0, QK_K / 8);
        memset(y[ibl].qh, 0, QK_K / 16);
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        float sumx2 = 0;
        for (int i = 0; i < QK_K; ++i) sumx2 += xbl[i] * xbl[i];
        float sigma2 = 2 * sumx2 / QK_K;
        for (int ib = 0; ib < QK_K / block_size; ++ib) {
            const float *xb = xbl + block_size * ib;
            const float *qw = quant_weights + QK_K * ibl + block_size * ib;
            for (int i = 0; i < block_size; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
            float max = fabsf(xb[0]);
            for (int i = 1; i < block_size; ++i) max = MAX(max, fabsf(xb[i]));
            if (max < GROUP_MAX_EPS_IQ1_S) {
                scales[ib] = 0;
                shifts[ib] = 1;
                memset(L, 1, block_size);
                continue;
            }
            /* the exact weighted optimum over every split of the sorted values into -1, 0, +1: prefix sums
             * of w x and w over the sorted order give each split's sum q x and sum q^2 at once */
            for (int j = 0; j < block_size; ++j) pairs[j] = (iq1_pair){xb[j], j};
            qsort(pairs, block_size, sizeof pairs[0], iq1_pair_cmp);
            sumx[0] = sumw[0] = 0;
            for (int j = 0; j < block_size; ++j) {
                int i = pairs[j].i;
                sumx[j + 1] = sumx[j] + weight[i] * xb[i];
                sumw[j + 1] = sumw[j] + weight[i];
            }
            float best_score = -FLT_MAX, scale = max;
            int besti1 = -1, besti2 = -1, best_shift = 0;
            for (int i1 = 0; i1 <= block_size; ++i1) {
                for (int i2 = i1; i2 <= block_size; ++i2) {
                    float sumqx = (sumx[i1] - sumx[0]) * x_p[0] + (sumx[i2] - sumx[i1]) * x_p[1] +
                                  (sumx[block_size] - sumx[i2]) * x_p[2];
                    float sumq2 = (sumw[i1] - sumw[0]) * x_p[0] * x_p[0] + (sumw[i2] - sumw[i1]) * x_p[1] * x_p[1] +
                                  (sumw[block_size] - sumw[i2]) * x_p[2] * x_p[2];
                    if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        besti1 = i1, besti2 = i2, best_shift = 1;
                    }
                    sumqx = (sumx[i1] - sumx[0]) * x_m[0] + (sumx[i2] - sumx[i1]) * x_m[1] +
                            (sumx[block_size] - sumx[i2]) * x_m[2];
                    sumq2 = (sumw[i1] - sumw[0]) * x_m[0] * x_m[0] + (sumw[i2] - sumw[i1]) * x_m[1] * x_m[1] +
                            (sumw[block_size] - sumw[i2]) * x_m[2] * x_m[2];
                    if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        besti1 = i1, besti2 = i2, best_shift = -1;
                    }
                }
            }
            if (besti1 < 0 || besti2 < 0 || best_shift == 0) {
                scales[ib] = 0;
                shifts[ib] = 1;
                memset(L, 1, block_size);
                continue;
            }
            for (int j = 0; j < besti1; ++j) L[pairs[j].i] = 0;
            for (int j = besti1; j < besti2; ++j) L[pairs[j].i] = 1;
            for (int j = besti2; j < block_size; ++j) L[pairs[j].i] = 2;
            if (scale < 0) {
                for (int j = 0; j < block_size; ++j) L[j] = (int8_t)(2 - L[j]);
                scale = -scale;
                best_shift = -best_shift;
            }
            bool all_on_grid = true;
            const float *xx = best_shift == 1 ? x_p : x_m;
            for (int k = 0; k < block_size / 8; ++k) {
                int u = lattice_key(lt, L + 8 * k);
                int grid_index = lt->map[u];
                if (grid_index < 0) {
                    all_on_grid = false;
                    grid_index = iq1_best_neighbour(lt, lattice_list(lt, u), xb + 8 * k, weight + 8 * k, scale, xx, L + 8 * k);
                }
                index[k] = (uint16_t)grid_index;
            }
            if (!all_on_grid) {
                float sumqx = 0, sumq2 = 0;
                for (int k = 0; k < block_size / 8; ++k) {
                    const int8_t *pg = lt->pos + index[k] * 8;
                    for (int j = 0; j < 8; ++j) {
                        float w = weight[8 * k + j];
                        float q = xx[(pg[j] - 1) / 2];
                        sumqx += w * q * xb[8 * k + j];
                        sumq2 += w * q * q;
                    }
                }
                if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
            }
            uint16_t h = 0;
            for (int k = 0; k < block_size / 8; ++k) {
                y[ibl].qs[(block_size / 8) * ib + k] = (uint8_t)(index[k] & 255);
                h |= (uint16_t)((index[k] >> 8) << 3 * k);
            }
            y[ibl].qh[ib] = h;
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_shift;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        float d = max_scale / 15;
        y[ibl].d = fp32_to_fp16(d * 1.125f);
        float id = 1 / d;
        for (int ib = 0; ib < QK_K / block_size; ++ib) {
            int l = nearest_int(0.5f * (id * scales[ib] - 1));
            l = MAX(0, MIN(7, l));
            if (shifts[ib] == -1) l |= 8;
            y[ibl].qh[ib] |= (uint16_t)(l << 12);
        }
    }
}

static void iq1_m_row(const float *x, block_iq1_m *y, int64_t n, const float *quant_weights) {
    const lattice *lt = lattice_get(LAT_IQ1_S);
    enum { block_size = 16 };
    const float x_p[3] = {-1 + IQ1_DELTA, IQ1_DELTA, 1 + IQ1_DELTA};
    const float x_m[3] = {-1 - IQ1_DELTA, -IQ1_DELTA, 1 - IQ1_DELTA};
    const uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};
    float scales[QK_K / block_size], weight[block_size], sumqx[4], sumq2[4];
    iq1_pair pairs[block_size];
    int8_t L[block_size], shifts[QK_K / block_size];
    uint16_t index[block_size / 8];
    const float *xx;
    for (int64_t ibl = 0; ibl < n / QK_K; ++ibl) {
        memset(y[ibl].qs, 0, QK_K / 8);
        memset(y[ibl].qh, 0, QK_K / 16);
        memset(y[ibl].scales, 0, QK_K / 32);
        float max_scale = 0;
        const float *xbl = x + QK_K * ibl;
        float sumx2 = 0;
        for (int i = 0; i < QK_K; ++i) sumx2 += xbl[i] * xbl[i];
        float sigma2 = 2 * sumx2 / QK_K;
        for (int ib = 0; ib < QK_K / block_size; ++ib) {
            const float *xb = xbl + block_size * ib;
            if (quant_weights) {
                const float *qw = quant_weights + QK_K * ibl + block_size * ib;
                for (int i = 0; i < block_size; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
            } else {
                for (int i = 0; i < block_size; ++i) weight[i] = xb[i] * xb[i];
            }
            float max = fabsf(xb[0]);
            for (int i = 1; i < block_size; ++i) max = MAX(max, fabsf(xb[i]));
            if (max < GROUP_MAX_EPS_IQ1_M) {
                scales[ib] = 0;
                shifts[ib] = 0;
                memset(L, 1, block_size);
                continue;
            }
            for (int j = 0; j < block_size; ++j) pairs[j] = (iq1_pair){xb[j], j};
            qsort(pairs, block_size, sizeof pairs[0], iq1_pair_cmp);
            float best_score = -FLT_MAX, scale = max;
            int besti1 = -1, besti2 = -1, best_k = -1;
            /* k: the shifts of the two halves: 0 (+, +), 1 (+, -), 2 (-, +), 3 (-, -). Prefix sums per half;
             * since v[0] - v[1] = v[1] - v[2] = -1 for both shifts, a split's sum q x is T v[2] - px[i1] - px[i2] */
            {
                float px[2][block_size + 1], pw[2][block_size + 1];
                px[0][0] = px[1][0] = 0;
                pw[0][0] = pw[1][0] = 0;
                for (int j = 0; j < block_size; ++j) {
                    const int i = pairs[j].i;
                    const int h = i < block_size / 2 ? 0 : 1;
                    px[h][j + 1] = px[h][j] + weight[i] * xb[i];
                    px[1 - h][j + 1] = px[1 - h][j];
                    pw[h][j + 1] = pw[h][j] + weight[i];
                    pw[1 - h][j + 1] = pw[1 - h][j];
                }
                const float txs[2] = {px[0][block_size], px[1][block_size]};
                const float tws[2] = {pw[0][block_size], pw[1][block_size]};
                const float p2 = x_p[2], m2 = x_m[2];
                const float cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1];
                const float cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
                const float cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1];
                const float cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
                for (int i1 = 0; i1 <= block_size; ++i1) {
                    for (int i2 = i1; i2 <= block_size; ++i2) {
                        float qx_p[2], qx_m[2], q2_p[2], q2_m[2];
                        for (int h = 0; h < 2; ++h) {
                            const float sx = px[h][i1] + px[h][i2];
                            qx_p[h] = txs[h] * p2 - sx;
                            qx_m[h] = txs[h] * m2 - sx;
                            q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                            q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                        }
                        sumqx[0] = qx_p[0] + qx_p[1];
                        sumqx[1] = qx_p[0] + qx_m[1];
                        sumqx[2] = qx_m[0] + qx_p[1];
                        sumqx[3] = qx_m[0] + qx_m[1];
                        sumq2[0] = q2_p[0] + q2_p[1];
                        sumq2[1] = q2_p[0] + q2_m[1];
                        sumq2[2] = q2_m[0] + q2_p[1];
                        sumq2[3] = q2_m[0] + q2_m[1];
                        for (int k = 0; k < 4; ++k) {
                            if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
                                scale = sumqx[k] / sumq2[k];
                                best_score = scale * sumqx[k];
                                besti1 = i1, besti2 = i2, best_k = k;
                            }
                        }
                    }
                }
            }
            if (besti1 < 0 || besti2 < 0 || best_k < 0) {
                scales[ib] = 0;
                shifts[ib] = 0;
                memset(L, 1, block_size);
                continue;
            }
            for (int j = 0; j < besti1; ++j) L[pairs[j].i] = 0;
            for (int j = besti1; j < besti2; ++j) L[pairs[j].i] = 1;
            for (int j = besti2; j < block_size; ++j) L[pairs[j].i] = 2;
            if (scale < 0) {
                for (int j = 0; j < block_size; ++j) L[j] = (int8_t)(2 - L[j]);
                scale = -scale;
                best_k = 3 - best_k;
            }
            bool all_on_grid = true;
            for (int k = 0; k < block_size / 8; ++k) {
                if (k == 0) xx = best_k < 2 ? x_p : x_m;
                else xx = best_k % 2 == 0 ? x_p : x_m;
                int u = lattice_key(lt, L + 8 * k);
                int grid_index = lt->map[u];
                if (grid_index < 0) {
                    all_on_grid = false;
                    grid_index = iq1_best_neighbour(lt, lattice_list(lt, u), xb + 8 * k, weight + 8 * k, scale, xx, L + 8 * k);
                }
                index[k] = (uint16_t)grid_index;
            }
            if (!all_on_grid) {
                float sumqx_f = 0, sumq2_f = 0;
                for (int k = 0; k < block_size / 8; ++k) {
                    if (k == 0) xx = best_k < 2 ? x_p : x_m;
                    else xx = best_k % 2 == 0 ? x_p : x_m;
                    const int8_t *pg = lt->pos + index[k] * 8;
                    for (int j = 0; j < 8; ++j) {
                        float w = weight[8 * k + j];
                        float q = xx[(pg[j] - 1) / 2];
                        sumqx_f += w * q * xb[8 * k + j];
                        sumq2_f += w * q * q;
                    }
                }
                if (sumqx_f > 0 && sumq2_f > 0) scale = sumqx_f / sumq2_f;
            }
            y[ibl].qs[2 * ib + 0] = (uint8_t)(index[0] & 255);
            y[ibl].qs[2 * ib + 1] = (uint8_t)(index[1] & 255);
            y[ibl].qh[ib] = (uint8_t)((index[0] >> 8) | ((index[1] >> 8) << 4));
            scales[ib] = scale;
            shifts[ib] = (int8_t)best_k;
            max_scale = MAX(max_scale, scale);
        }
        if (!max_scale) continue;
        /* 3-bit block scales of d = max / 15, then d refit over the whole super-block with them */
        uint16_t sc[4] = {0, 0, 0, 0};
        float d = max_scale / 15;
        float id = 1 / d;
        float sumqx_f = 0, sumq2_f = 0;
        for (int ib = 0; ib < QK_K / block_size; ++ib) {
            int l = nearest_int(0.5f * (id * scales[ib + 0] - 1));
            l = MAX(0, MIN(7, l));
            sc[ib / 4] |= (uint16_t)(l << 3 * (ib % 4));
            y[ibl].qh[ib] |= masks[shifts[ib]];
            const float *xb = xbl + block_size * ib;
            if (quant_weights) {
                const float *qw = quant_weights + QK_K * ibl + block_size * ib;
                for (int i = 0; i < block_size; ++i) weight[i] = qw[i] * sqrtf(sigma2 + xb[i] * xb[i]);
            } else {
                for (int i = 0; i < block_size; ++i) weight[i] = xb[i] * xb[i];
            }
            for (int k = 0; k < block_size / 8; ++k) {
                if (k == 0) xx = shifts[ib] < 2 ? x_p : x_m;
                else xx = shifts[ib] % 2 == 0 ? x_p : x_m;
                const int8_t *pg = lt->pos + (y[ibl].qs[2 * ib + k] + ((y[ibl].qh[ib] << (8 - 4 * k)) & 0x700)) * 8;
                for (int j = 0; j < 8; ++j) {
                    float w = weight[8 * k + j];
                    float q = xx[(pg[j] - 1) / 2] * (2 * l + 1);
                    sumqx_f += w * q * xb[8 * k + j];
                    sumq2_f += w * q * q;
                }
            }
        }
        if (sumq2_f > 0) d = sumqx_f / sumq2_f;
        uint16_t s = fp32_to_fp16(d * 1.1125f);
        sc[0] |= (uint16_t)((s & 0x000f) << 12);
        sc[1] |= (uint16_t)((s & 0x00f0) << 8);
        sc[2] |= (uint16_t)((s & 0x0f00) << 4);
        sc[3] |= (uint16_t)((s & 0xf000) << 0);
        memcpy(y[ibl].scales, sc, sizeof sc);
    }
}

/* ---------------------------------------------------------------- tq1_0, tq2_0 */

static void tq1_0_row(const float *x, block_tq1_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) amax = MAX(amax, fabsf(x[j]));
        const float d = amax;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        /* 5 trits per byte (q = sum t_n 3^(4-n), stored as ceil(q 256 / 243)): qs[0..31] then qs[32..47] */
        for (size_t j = 0; j < sizeof(y->qs) - sizeof(y->qs) % 32; j += 32) {
            for (size_t m = 0; m < 32; ++m) {
                uint8_t q = 0;
                for (size_t k = 0; k < 5; ++k) q = (uint8_t)(q * 3 + lroundf(x[m + k * 32] * id) + 1);
                y[i].qs[j + m] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
            }
            x += 5 * 32;
        }
        for (size_t j = sizeof(y->qs) - sizeof(y->qs) % 32; j < sizeof(y->qs); j += 16) {
            for (size_t m = 0; m < 16; ++m) {
                uint8_t q = 0;
                for (size_t k = 0; k < 5; ++k) q = (uint8_t)(q * 3 + lroundf(x[m + k * 16] * id) + 1);
                y[i].qs[j + m] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
            }
            x += 5 * 16;
        }
        /* 4 trits per byte of qh, the first in the top trit */
        for (size_t j = 0; j < sizeof(y->qh); ++j) {
            uint8_t q = 0;
            for (size_t m = 0; m < 4; ++m) q = (uint8_t)(q * 3 + lroundf(x[j + m * sizeof(y->qh)] * id) + 1);
            q = (uint8_t)(q * 3);
            y[i].qh[j] = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
        }
        x += 4 * sizeof(y->qh);
    }
}

static void tq2_0_row(const float *x, block_tq2_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) amax = MAX(amax, fabsf(x[j]));
        const float d = amax;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (size_t j = 0; j < sizeof(y->qs); j += 32) {
            for (size_t m = 0; m < 32; ++m) {
                uint8_t q = 0;
                for (size_t k = 0; k < 4; ++k) {
                    int xi = (int)lroundf(x[m + k * 32] * id) + 1;
                    q = (uint8_t)(q + ((xi & 3) << (2 * k)));
                }
                y[i].qs[j + m] = q;
            }
            x += 4 * 32;
        }
    }
}

/* ---------------------------------------------------------------- dispatch */

bool quant_row_lowbit(int type, const float *x, void *y, int64_t n, const float *qw) {
    switch (type) {
    case HERD_TYPE_IQ2_XXS: HERD_ASSERT(qw); iq2_xxs_row(x, y, n, qw); return true;
    case HERD_TYPE_IQ2_XS: HERD_ASSERT(qw); iq2_xs_s_row(false, x, y, n, qw); return true;
    case HERD_TYPE_IQ2_S: iq2_xs_s_row(true, x, y, n, qw); return true;
    case HERD_TYPE_IQ3_XXS: iq3_row(false, x, y, n, qw); return true;
    case HERD_TYPE_IQ3_S: iq3_row(true, x, y, n, qw); return true;
    case HERD_TYPE_IQ1_S: HERD_ASSERT(qw); iq1_s_row(x, y, n, qw); return true;
    case HERD_TYPE_IQ1_M: iq1_m_row(x, y, n, qw); return true;
    case HERD_TYPE_TQ1_0: tq1_0_row(x, y, n); return true;
    case HERD_TYPE_TQ2_0: tq2_0_row(x, y, n); return true;
    default: return false;
    }
}

bool quant_lowbit_needs_weights(int type) {
    return type == HERD_TYPE_IQ2_XXS || type == HERD_TYPE_IQ2_XS || type == HERD_TYPE_IQ1_S;
}
