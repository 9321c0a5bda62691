/* libFuzzer target: the importance-matrix reader (src/quant/imatrix_file.c, GGUF and .dat) over arbitrary
 * bytes. A file that parses must give entries whose weights can all be computed (imatrix_weights) and be
 * found by name; one that does not must leave a one-line message. Any outcome but a crash, a leak or a
 * sanitizer report is fine. Seeds: fuzz/seeds/fuzz_imatrix/ (a .dat and a GGUF of two entries each).
 * Built by `make fuzz`. */
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "quant/imatrix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    imatrix im;
    if (imatrix_parse(data, size, "fuzz", &im) != HERD_OK) {
        if (!*herd_last_error()) abort();
        return 0;
    }
    float sum = 0;
    for (int64_t i = 0; i < im.n; i++) {
        const imatrix_entry *e = imatrix_find(&im, im.e[i].name);
        if (e != &im.e[i] || e->n_counts < 1 || e->n_sums < 1) abort();
        float *w = malloc((size_t)e->n_sums * sizeof *w);
        if (!w) abort();
        imatrix_weights(&im, e, w);
        sum += w[e->n_sums - 1];
        free(w);
    }
    imatrix_clear(&im);
    return (int)(sum * 0);
}
