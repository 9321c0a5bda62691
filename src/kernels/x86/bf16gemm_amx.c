/* kernel_vec_ops.gemm_bf16 with AMX-BF16 (bf16gemm.h). Compiled with the AVX-512 flags plus -mamx-tile
 * -mamx-bf16 (Makefile); kernels.c installs it only when the CPU has AMX-BF16, the tile data is granted (kernels.c
 * detect_amx: CPUID, XCR0, Linux's permission) and HERD_ISA does not force an ISA.
 *
 * Blocks of 32 x 32 of C in four tile registers (tmm0..3, 16 rows x 16 F32), over K in steps of 32 bf16:
 * two A tiles (tmm4, 5: 16 rows x 32 bf16, read in place, row stride lda) and two B tiles (tmm6, 7: 16
 * pair rows of one strip of B, a contiguous 1 KiB), four TDPBF16PS. Ragged rows and a K step short of 32
 * copy the operand into a zero-padded buffer first (zero pairs add +0 products); a block of at most 16
 * columns uses one strip. At the end the tiles are stored to a buffer and added to C (masked).
 *
 * Accumulation: per C element a sum over the k steps in order, each TDPBF16PS adding its 32 products
 * (the SDM's pseudo-code: per pair the even element, then the odd one, each rounded, DAZ/FTZ). The
 * hardware is not specified tightly enough to promise those bits, so the test bounds the difference to
 * the reference instead (tests/unit/test_train_bf16.c). */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "../bf16gemm.h"
#include "../kernels_impl.h"

/* palette 1: tmm0..3 C (16 x 64 bytes), tmm4, 5 A (16 x 64), tmm6, 7 B (16 pair rows x 64) */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static void config(void) {
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
}

/* one 32 x 32 block of C at (m, n); rows = min(32, M - m), cols = min(32, N - n) */
static void block(int64_t m, int64_t n, int64_t rows, int64_t cols, int64_t K, const uint16_t *A, int64_t lda,
                  const uint16_t *B, int64_t ldb, float *C, int64_t ldc) {
    _Alignas(64) uint16_t abuf[32][32];     /* [row][k] */
    _Alignas(64) uint16_t bbuf[2][16][32]; /* [strip][pair][16 pairs] */
    _Alignas(64) float cbuf[32][32];
    const bool two = cols > 16; /* a second strip of B */
    const uint16_t *b0 = B + n / 16 * ldb, *b1 = b0 + ldb;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t k0 = 0; k0 < K; k0 += 32) {
        const int64_t kc = K - k0 < 32 ? K - k0 : 32; /* even */
        if (rows == 32 && kc == 32) {
            _tile_loadd(4, A + m * lda + k0, lda * 2);
            _tile_loadd(5, A + (m + 16) * lda + k0, lda * 2);
        } else {
            memset(abuf, 0, sizeof abuf);
            for (int64_t i = 0; i < rows; i++) memcpy(abuf[i], A + (m + i) * lda + k0, (size_t)kc * 2);
            _tile_loadd(4, abuf[0], 64);
            _tile_loadd(5, abuf[16], 64);
        }
        if (kc == 32) { /* 16 pair rows of a strip: 1 KiB in a row */
            _tile_loadd(6, b0 + k0 * 16, 64);
            if (two) _tile_loadd(7, b1 + k0 * 16, 64);
        } else {
            memset(bbuf, 0, sizeof bbuf);
            memcpy(bbuf[0], b0 + k0 * 16, (size_t)kc * 16 * 2);
            if (two) memcpy(bbuf[1], b1 + k0 * 16, (size_t)kc * 16 * 2);
            _tile_loadd(6, bbuf[0], 64);
            if (two) _tile_loadd(7, bbuf[1], 64);
        }
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(2, 5, 6);
        if (two) {
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    _tile_stored(0, &cbuf[0][0], 128);
    _tile_stored(1, &cbuf[0][16], 128);
    _tile_stored(2, &cbuf[16][0], 128);
    _tile_stored(3, &cbuf[16][16], 128);
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1),
                    m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    for (int64_t i = 0; i < rows; i++) {
        float *c = C + (m + i) * ldc + n;
        _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), _mm512_load_ps(cbuf[i])));
        _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), _mm512_load_ps(cbuf[i] + 16)));
    }
}

void gemm_bf16_amx(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb,
                   float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    config(); /* per call: the tile configuration is per thread, and cheap next to a block's work */
    for (int64_t n = 0; n < N; n += 32)
        for (int64_t m = 0; m < M; m += 32)
            block(m, n, M - m < 32 ? M - m : 32, N - n < 32 ? N - n : 32, K, A, lda, B, ldb, C, ldc);
    _tile_release();
}
