/* libFuzzer target: the KL-divergence base-file reader (src/eval/kld_file.c) over arbitrary bytes. A file
 * that opens must give rows that can all be read and tokens inside its vocabulary; a file that does not must
 * leave a one-line message. Any outcome but a crash, a leak or a sanitizer report is fine. Seed:
 * fuzz/seeds/fuzz_kld_file/ (a valid file: n_ctx 4, n_vocab 5, 2 windows). Built by `make fuzz`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/kld_file.h"
#include "herd.h"

static char g_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!*g_path) snprintf(g_path, sizeof g_path, "/tmp/fuzz_kld_file.%ld.bin", (long)getpid());
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    kld_file k;
    int rc = kld_file_open(g_path, 0, &k);
    if (rc != HERD_OK) {
        if (!*herd_last_error()) abort();
        return 0;
    }
    uint16_t *row = malloc((size_t)k.nv * sizeof *row);
    if (!row) abort();
    unsigned sum = 0;
    for (int64_t w = 0; w < k.n_chunk; w++)
        for (int64_t r = 0; r < k.n_rows; r++) {
            kld_file_row(&k, w, r, row);
            sum += row[k.nv - 1];
        }
    for (int64_t i = 0; i < k.n_chunk * k.n_ctx; i++)
        if (k.tokens[i] < 0 || k.tokens[i] >= k.n_vocab) abort();
    free(row);
    kld_file_close(&k);
    return (int)(sum & 0);
}
