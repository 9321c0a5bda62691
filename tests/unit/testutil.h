/* Tiny test helpers (no framework): CHECK counts and reports, tu_done() prints a summary line and
 * gives the exit status (0 pass, 1 fail). Each tests/unit/test_*.c is one program. */
#ifndef HERD_TESTUTIL_H
#define HERD_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_checks, tu_failed;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        tu_checks++;                                                                                         \
        if (!(cond)) {                                                                                       \
            tu_failed++;                                                                                     \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

#define TU_DONE(name)                                                                                        \
    (printf("%s: %d checks, %d failed\n", (name), tu_checks, tu_failed), tu_failed ? 1 : 0)

/* Random numbers for the tests: splitmix64. A test sets its own seed (tu_rng = ...) first thing in main,
 * so that each draws its own reproducible sequence. */
static uint64_t tu_rng = 0x1234567887654321ull;

static inline uint64_t tu_u64(void) {
    uint64_t z = (tu_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float tu_sym(void) { /* [-1, 1) */
    return (float)((double)(tu_u64() >> 11) * 0x1p-52 - 1.0);
}

/* n elements of random blocks of a type herd only reads (no from_f32: the lattice i-quants): random bytes,
 * each super-block of 256 (block_bytes each) starting with an f16 scale d in [0.002, 0.02). Any bytes are
 * a valid block of these types. */
static inline void tu_random_blocks(void *w, int64_t n, int64_t block_bytes, uint16_t (*to_f16)(float)) {
    uint8_t *p = (uint8_t *)w;
    for (int64_t i = 0; i < n / 256 * block_bytes; i++) p[i] = (uint8_t)(tu_u64() >> 56);
    for (int64_t b = 0; b < n / 256; b++) {
        uint16_t d = to_f16(0.002f + 0.018f * (float)(tu_u64() >> 40) * 0x1p-24f);
        memcpy(p + b * block_bytes, &d, 2);
    }
}

#endif
