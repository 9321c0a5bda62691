/* A bounded HTTP GET over libcurl for the search tools: connect and total timeouts, a cap on the
 * body, http/https only, no redirects. Never hangs longer than the timeout. */
#ifndef HERD_TOOLS_HTTP_H
#define HERD_TOOLS_HTTP_H

#include <stddef.h>

typedef struct {
    long status; /* HTTP status */
    char *body;  /* NUL-terminated (owned) */
    size_t len;
} http_response;

/* headers: NULL-terminated "Name: value" lines (may be NULL). Returns 0 when a response came (any
 * status); -1 on a transport failure (DNS, connect, timeout, TLS, too large) with a one-line reason
 * in err. */
int http_get(const char *url, const char *const *headers, double timeout_s, size_t max_bytes,
             http_response *out, char *err, size_t errcap);
void http_response_free(http_response *r);
/* The URL-encoded form of s (caller frees). */
char *http_escape(const char *s);

#endif
