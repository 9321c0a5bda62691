/* The walk over C shared by the AVX-512 register-tiled products (sgemm_avx512.c: F32, bf16gemm_avx512.c:
 * bf16 pairs): strips of 32 columns; in a narrow strip (N - n0 <= 16: the common case of a few tokens)
 * tiles of 16 rows x 16 columns, else 8 rows x 32; then the ragged rest by row count, so each tile's row
 * count is a compile-time constant. The includer defines ROWS(n, W) (a tile of n rows, W: two 16-column
 * halves) in terms of the walk's variables: n0 (the strip's first column), m (the tile's first row) and m0,
 * m1 (the masks of the strip's two halves). Tiles only: the order of each C element's sum is the tile's. */
#ifndef HERD_GEMM_STRIPS_H
#define HERD_GEMM_STRIPS_H

#define GEMM_STRIPS_ROWS_REST(W)                                                                              \
    switch (M - m) {                                                                                          \
    case 7: ROWS(7, W); break;                                                                                \
    case 6: ROWS(6, W); break;                                                                                \
    case 5: ROWS(5, W); break;                                                                                \
    case 4: ROWS(4, W); break;                                                                                \
    case 3: ROWS(3, W); break;                                                                                \
    case 2: ROWS(2, W); break;                                                                                \
    case 1: ROWS(1, W); break;                                                                                \
    default: break;                                                                                           \
    }

#define GEMM_STRIPS_WALK(M, N)                                                                                \
    for (int64_t n0 = 0; n0 < (N); n0 += 32) {                                                                \
        const int64_t nr = (N) - n0 < 32 ? (N) - n0 : 32;                                                     \
        const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);                                \
        const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);           \
        int64_t m = 0;                                                                                        \
        if (nr <= 16) {                                                                                       \
            for (; m + 16 <= (M); m += 16) ROWS(16, false);                                                   \
            for (; m + 8 <= (M); m += 8) ROWS(8, false);                                                      \
            GEMM_STRIPS_ROWS_REST(false)                                                                      \
            continue;                                                                                         \
        }                                                                                                     \
        for (; m + 8 <= (M); m += 8) ROWS(8, true);                                                           \
        GEMM_STRIPS_ROWS_REST(true)                                                                           \
    }

#endif
