/* libFuzzer target: the GGUF parser and, on files that parse, the typed getters and the tokenizer
 * loader over whatever metadata the input holds. Built by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* an exact-size copy, so that any read past the end is caught by ASan */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    gguf_file g;
    if (gguf_parse(buf, size, "fuzz", &g) == 0) {
        for (int64_t i = 0; i < g.n_kv; i++) {
            int64_t v;
            double f;
            bool b;
            gguf_str s;
            gguf_get_int(&g, g.kv[i].key, &v);
            gguf_get_float(&g, g.kv[i].key, &f);
            gguf_get_bool(&g, g.kv[i].key, &b);
            gguf_get_str(&g, g.kv[i].key, &s);
        }
        volatile uint64_t sum = 0;
        for (int64_t i = 0; i < g.n_tensors; i++)
            if (g.tensors[i].nbytes) sum += g.tensors[i].data[0] + g.tensors[i].data[g.tensors[i].nbytes - 1];
        herd_vocab *v;
        if (vocab_load(&g, "fuzz", &v) == 0) {
            int32_t *ids;
            int64_t n;
            if (vocab_tokenize(v, "Hello world 123 <|eot_id|>", 26, true, true, &ids, &n) == 0) free(ids);
            vocab_free(v);
        }
        gguf_file_clear(&g);
    }
    free(buf);
    return 0;
}
