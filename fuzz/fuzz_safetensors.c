/* libFuzzer target: the safetensors header parser (src/formats/safetensors.c) on arbitrary files; on
 * files that parse, every tensor's bytes are touched (ASan catches any offset past the buffer) and the
 * HF name mapping runs on every name. Built by `make fuzz`; seeds in fuzz/seeds/fuzz_safetensors/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hf_dir.h"
#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* an exact-size copy, 8-byte aligned like a mapping, so any read past the end is caught */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    st_file f;
    if (st_parse(buf, size, "fuzz", &f) == 0) {
        volatile uint64_t sum = 0;
        char name[256];
        for (int64_t i = 0; i < f.n_tensors; i++) {
            const st_tensor *t = &f.tensors[i];
            if (t->nbytes) sum += t->data[0] + t->data[t->nbytes - 1];
            if (hf_name_to_gguf(t->name, name, sizeof name)) hf_name_from_gguf(name, name, sizeof name);
            sum += st_find(&f, t->name) == t;
        }
        st_file_clear(&f);
    }
    free(buf);
    return 0;
}
