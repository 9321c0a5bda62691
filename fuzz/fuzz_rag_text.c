/* libFuzzer target: src/rag's HTML-to-text converter and token windows (src/rag/text.c). The input is
 * HTML; its first two bytes also pick a chunk size and overlap for rag_chunk_windows over the text's
 * length. Checks: the text is NUL-terminated at its length, and every window lies inside [0, n) with
 * the last one ending at n. Built by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rag/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    char *t;
    size_t n;
    rag_html_to_text((const char *)data, size, &t, &n);
    if (t[n] != 0 || strlen(t) != n) abort();
    int64_t chunk = size > 0 ? 1 + data[0] % 64 : 8, overlap = size > 1 ? data[1] % chunk : 0;
    int64_t *s, *e, c = rag_chunk_windows((int64_t)n, chunk, overlap, &s, &e);
    for (int64_t i = 0; i < c; i++)
        if (s[i] < 0 || e[i] > (int64_t)n || s[i] >= e[i]) abort();
    if (c > 0 && e[c - 1] != (int64_t)n) abort();
    free(s), free(e), free(t);
    return 0;
}
