/* libFuzzer target: the server's slot file reader (src/engine/slot_file.c, POST /slots/{id}?action=restore)
 * over arbitrary bytes. A file that reads must have n_tokens within the limit and the tokens and KV buffers
 * of the sizes its header says (touched to the last byte); one that does not must leave a one-line message
 * and no buffers. Any outcome but a crash, a leak or a sanitizer report is fine. Seed: fuzz/seeds/
 * fuzz_slot_file/ (a valid file: 2 tokens, 8 bytes per position). Built by `make fuzz`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/slot_file.h"
#include "herd.h"

static char g_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!*g_path) snprintf(g_path, sizeof g_path, "/tmp/fuzz_slot_file.%ld.bin", (long)getpid());
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    slot_file_header h;
    int32_t *tok;
    void *kv;
    uint64_t n = 0;
    int rc = slot_file_read(g_path, 64, &h, &tok, &kv, &n);
    if (rc != HERD_OK) {
        if (!*herd_last_error() || tok || kv) abort();
        return 0;
    }
    if (h.n_tokens < 0 || h.n_tokens > 64 || n != size) abort();
    unsigned sum = 0;
    for (int64_t i = 0; i < h.n_tokens; i++) sum += (unsigned)tok[i];
    if (h.n_tokens) sum += ((uint8_t *)kv)[h.n_tokens * h.bytes_per_pos - 1];
    free(tok);
    free(kv);
    return (int)(sum & 0);
}
