/* herd base: error reporting and logging.
 *
 * Two tiers (see STYLE.md): bad *input* is reported with herd_err() — one precise line kept in a
 * thread-local buffer that callers read with herd_last_error() — and a negative status returned.
 * *Bugs* hit HERD_ASSERT, which is always on and aborts with file:line.
 * Library code never prints errors itself and never calls exit(). */
#ifndef HERD_BASE_LOG_H
#define HERD_BASE_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "herd.h"

/* Records a one-line error message (printf-style) and returns `status` so call sites can write
 * `return herd_err(HERD_E_FORMAT, "gguf: ...")`. A later herd_err() replaces the message. */
int herd_err(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Informational log line to stderr when verbosity >= level (0 quiet, 1 info, 2 debug). */
void herd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void herd_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define HERD_ASSERT(x) ((x) ? (void)0 : herd_assert_fail(#x, __FILE__, __LINE__))

/* Allocation that cannot fail silently: aborts with a message on out-of-memory for the small,
 * bounded allocations of bookkeeping. Large, input-sized buffers use malloc and return HERD_E_NOMEM. */
/* n bytes (at least one) starting on a 64-byte boundary — a cache line, a 512-bit vector: with malloc's
 * 16-byte alignment each 64-byte load of a row would straddle two lines (the forward's F32 batched dots
 * of a 4-token verification ran 1.8x slower: 33 vs 18 ms for a 128256 x 1024 head). NULL when it cannot
 * be had. free() and realloc() take it as any block (C11 7.22.3); a realloc'ed block keeps only malloc's
 * alignment. */
void *herd_malloc64(size_t n);
void *herd_xmalloc(size_t n);
void *herd_xcalloc(size_t n, size_t sz);
void *herd_xrealloc(void *p, size_t n);
char *herd_xstrndup(const char *s, size_t n);

#endif
