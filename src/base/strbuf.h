/* A growable byte string, always NUL-terminated after its n bytes. Owns p (free it). */
#ifndef HERD_BASE_STRBUF_H
#define HERD_BASE_STRBUF_H

#include <stddef.h>

typedef struct {
    char *p;   /* NULL until the first put */
    size_t n;  /* bytes used, not counting the terminator */
    size_t cap;
} strbuf;

void strbuf_put(strbuf *b, const char *s, size_t n);
void strbuf_puts(strbuf *b, const char *s);
void strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_free(strbuf *b);

#endif
