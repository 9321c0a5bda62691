/* libFuzzer target: the multipart/form-data parser of herd serve's file uploads (src/server/files.c,
 * multipart_parse) over arbitrary bytes. The first line of the input is the Content-Type header, the rest
 * the body. A parse that succeeds must give parts with names and data inside the body; one that fails must
 * say why. Any outcome but a crash, a leak or a sanitizer report is fine. Seeds: fuzz/seeds/fuzz_multipart/
 * (an upload as the openai client sends it, a few broken ones). Built by `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *nl = memchr(data, '\n', size);
    size_t hl = nl ? (size_t)(nl - (const char *)data) : size;
    char *ct = malloc(hl + 1);
    memcpy(ct, data, hl);
    ct[hl] = 0;
    const char *body = nl ? nl + 1 : (const char *)data + size;
    size_t n = (size_t)((const char *)data + size - body);
    char *copy = malloc(n ? n : 1); /* its own allocation, so ASan sees a read past the body */
    memcpy(copy, body, n);
    multipart_part *parts;
    int np;
    char msg[600];
    msg[0] = 0;
    if (multipart_parse(ct, copy, n, 8, &parts, &np, msg, sizeof msg) == 0) {
        if (np > 8) abort();
        for (int i = 0; i < np; i++) {
            if (!parts[i].name || parts[i].data < copy || parts[i].data + parts[i].len > copy + n) abort();
            volatile char sink = 0;
            for (size_t k = 0; k < parts[i].len; k++) sink ^= parts[i].data[k];
        }
        multipart_free(parts, np);
    } else if (!msg[0])
        abort();
    free(copy);
    free(ct);
    return 0;
}
