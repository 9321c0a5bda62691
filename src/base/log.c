#include "log.h"

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_err[1024];
static int g_verbosity = 0;

int herd_err(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    /* keep it one line: a message must never smuggle a newline into the user's terminal */
    for (char *p = g_err; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return status;
}

const char *herd_last_error(void) {
    return g_err[0] ? g_err : "no error recorded";
}

void herd_set_verbosity(int level) {
    g_verbosity = level;
}

void herd_log(int level, const char *fmt, ...) {
    if (level > g_verbosity) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("herd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void herd_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "herd: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}

static void oom(size_t n) {
    fprintf(stderr, "herd: out of memory allocating %zu bytes\n", n);
    abort();
}

void *herd_malloc64(size_t n) {
    if (n > SIZE_MAX - 63) return NULL; /* the rounding below would wrap */
    return aligned_alloc(64, n ? (n + 63) / 64 * 64 : 64);
}

/* Blocks of a page or more start on a cache line (herd_malloc64): they hold rows that the kernels read
 * with 64-byte vector loads. */
void *herd_xmalloc(size_t n) {
    void *p = n >= 4096 ? herd_malloc64(n) : malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *herd_xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) oom(n * sz);
    return p;
}

void *herd_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *herd_xstrndup(const char *s, size_t n) {
    char *p = herd_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}
