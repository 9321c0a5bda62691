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

#endif
