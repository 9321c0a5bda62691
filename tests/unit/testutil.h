/* Tiny test helpers (no framework): CHECK counts and reports, tu_done() prints a summary line and
 * gives the exit status (0 pass, 1 fail). Each tests/unit/test_*.c is one program. */
#ifndef HERD_TESTUTIL_H
#define HERD_TESTUTIL_H

#include <math.h>
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

#endif
