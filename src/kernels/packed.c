/* Interleaved q8_0 / q4_0 weights (packed.h): packing, the activation rows, the scalar reference and
 * the choice of kernel. */
#include "packed.h"

#include <math.h>
#include <string.h>

#include "herd.h"
#include "kernels.h"
#include "types.h"

pk_gemm_fn pk_gemm_for(int type, int64_t n, int64_t n_out) {
    if (n <= 0 || n % 32 || n_out <= 0 || n_out % PK_ROWS) return NULL;
    if (kernels_active_isa() != KERNEL_ISA_AVX512) return NULL;
    switch (type) {
    case HERD_TYPE_Q8_0: return pk_gemm_q8_0_avx512;
    case HERD_TYPE_Q4_0: return pk_gemm_q4_0_avx512;
    default: return NULL;
    }
}

int64_t pk_group_bytes(int type, int64_t n) {
    int64_t nb = n / 32;
    return type == HERD_TYPE_Q8_0 ? nb * 544 : type == HERD_TYPE_Q4_0 ? nb * 288 : 0;
}

void pk_pack_w(int type, int64_t n, const void *rows, int64_t row_bytes, void *out) {
    const uint8_t *src = rows;
    uint8_t *o = out;
    int64_t nb = n / 32;
    if (type == HERD_TYPE_Q8_0) {
        for (int64_t b = 0; b < nb; b++, o += 544) {
            uint16_t *d = (uint16_t *)o;
            for (int r = 0; r < PK_ROWS; r++) {
                const block_q8_0 *blk = (const block_q8_0 *)(src + r * row_bytes) + b;
                memcpy(&d[r], &blk->d, 2);
                for (int c = 0; c < 8; c++)
                    for (int j = 0; j < 4; j++) o[32 + c * 64 + r * 4 + j] = (uint8_t)(blk->qs[4 * c + j] + 128);
            }
        }
    } else {
        for (int64_t b = 0; b < nb; b++, o += 288) {
            uint16_t *d = (uint16_t *)o;
            for (int r = 0; r < PK_ROWS; r++) {
                const block_q4_0 *blk = (const block_q4_0 *)(src + r * row_bytes) + b;
                memcpy(&d[r], &blk->d, 2);
                for (int c = 0; c < 4; c++) memcpy(o + 32 + c * 64 + r * 4, blk->qs + 4 * c, 4);
            }
        }
    }
}

int64_t pk_x_bytes(int64_t n) {
    return n / 32 * PK_X_BLOCK;
}

void pk_pack_x(int type, int64_t n, const void *x_q8_0, void *xp) {
    const block_q8_0 *b = x_q8_0;
    uint8_t *o = xp;
    int32_t bias = type == HERD_TYPE_Q8_0 ? -128 : -8;
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

/* The unsigned weight byte of element e (0..31) of row r in a group's block blk. */
static inline int u_of(int type, const uint8_t *blk, int r, int e) {
    if (type == HERD_TYPE_Q8_0) return blk[32 + (e / 4) * 64 + r * 4 + e % 4];
    int lo = e < 16, k = lo ? e : e - 16; /* q4_0: element k (< 16) low nibble, 16 + k high */
    uint8_t byte = blk[32 + (k / 4) * 64 + r * 4 + k % 4];
    return lo ? byte & 15 : byte >> 4;
}

void pk_gemm_ref(int type, int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xp_stride,
                 float *y, int64_t ldy) {
    int64_t nb = n / 32, gb = pk_group_bytes(type, n), bb = gb / nb;
    for (int64_t g = 0; g < ng; g++)
        for (int64_t t = 0; t < nt; t++)
            for (int r = 0; r < PK_ROWS; r++) {
                float acc = 0.0f;
                for (int64_t b = 0; b < nb; b++) {
                    const uint8_t *blk = (const uint8_t *)wp + g * gb + b * bb;
                    const uint8_t *xb = (const uint8_t *)xp + t * xp_stride + b * PK_X_BLOCK;
                    float dx;
                    int32_t isum;
                    uint16_t dw;
                    memcpy(&dx, xb, 4);
                    memcpy(&isum, xb + 4, 4);
                    memcpy(&dw, blk + 2 * r, 2);
                    for (int e = 0; e < 32; e++) isum += u_of(type, blk, r, e) * (int8_t)xb[8 + e];
                    acc = fmaf((float)isum, fp16_to_fp32(dw) * dx, acc);
                }
                y[t * ldy + g * PK_ROWS + r] = acc;
            }
}
