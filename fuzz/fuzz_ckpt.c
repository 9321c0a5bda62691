/* libFuzzer target: the training checkpoint reader (src/train/ckpt.c) over arbitrary bytes as
 * DIR/state.bin, against a fixed set of two tensors with AdamW moments. Any outcome but a crash, a leak or
 * a sanitizer report is fine; a failure must leave a one-line message. Seed: fuzz/seeds/fuzz_ckpt/ (a
 * valid checkpoint of these tensors). Built by `make fuzz`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herd.h"
#include "train/ckpt.h"

static char g_dir[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    snprintf(g_dir, sizeof g_dir, "/tmp/fuzz_ckpt.%ld", (long)getpid());
    char cmd[128];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_dir);
    if (system(cmd) != 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[128];
    snprintf(path, sizeof path, "%s/state.bin", g_dir);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    float wa[4], wb[3], ga[4], gb[3], ma[4], mb[3], va[4], vb[3];
    tparam p[2] = {{.name = "a", .w = wa, .g = ga, .n = 4}, {.name = "b", .w = wb, .g = gb, .n = 3}};
    float *m[2] = {ma, mb}, *v[2] = {va, vb};
    optim o = {.n = 2, .m = m, .v = v};
    ckpt_meta meta = {.seed = 42, .fingerprint = "x=1"};
    int rc = ckpt_load(g_dir, &meta, p, 2, &o);
    if (rc != HERD_OK && !*herd_last_error()) abort();
    return 0;
}
