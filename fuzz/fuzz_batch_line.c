/* libFuzzer target: herd batch's input-line parser (src/batch/batch.c, batch_parse_line) over arbitrary
 * bytes. A line that parses must give one of the three routes and a body that is a JSON object; one that does
 * not must name an error code and a message. Any outcome but a crash, a leak or a sanitizer report is fine.
 * Seeds: fuzz/seeds/fuzz_batch_line/ (a chat, a completion, an embedding line, a few bad ones). Built by
 * `make fuzz`. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *cid = NULL, *body = NULL, msg[512];
    const char *url = NULL, *code = NULL;
    msg[0] = 0;
    /* a small limit half the time, so the oversized path runs too */
    size_t max_body = size && (data[0] & 1) ? 64 : 1 << 20;
    int rc = batch_parse_line((const char *)data, size, max_body, &cid, &url, &body, &code, msg, sizeof msg);
    if (rc == 0) {
        if (!url || !body || !cid || code) abort();
        json_t *b = json_loads(body, 0, NULL);
        if (!json_is_object(b)) abort();
        json_decref(b);
    } else if (!code || !*msg || url || body)
        abort();
    free(cid);
    free(body);
    return 0;
}
