/* libFuzzer target: config.json parsing (src/formats/hf_config.c) and, with the first byte choosing,
 * tokenizer.json / tiktoken parsing into GGUF tokenizer metadata (src/tokenizer/hf_vocab.c), whose
 * result must then load as a vocabulary and tokenize. Built by `make fuzz`; seeds in
 * fuzz/seeds/fuzz_hf_config/. Modes 3 and 4: a DeBERTa-v2 config.json and a Unigram tokenizer.json
 * (Prompt Guard). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hf_config.h"
#include "tokenizer/hf_vocab.h"
#include "tokenizer/unigram.h"
#include "tokenizer/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 5;
    char *text = malloc(size); /* the rest, NUL-terminated (as files are read) */
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    if (mode == 3) {
        hf_deberta_config c;
        if (hf_deberta_config_parse(text, size - 1, "fuzz", &c) == 0) {
            volatile int64_t s = c.n_embd + c.att_span + c.n_labels;
            (void)s;
        }
    } else if (mode == 4) {
        unigram_model *m;
        if (unigram_load_json(text, size - 1, "fuzz", &m) == 0) {
            int32_t *ids;
            int64_t n;
            if (unigram_encode(m, "  Hello  wörld 123 \xff ", 22, -1, &ids, &n) == 0) free(ids);
            unigram_free(m);
        }
    } else if (mode == 0) {
        hf_config c;
        if (hf_config_parse(text, size - 1, "fuzz", &c) == 0) {
            volatile int64_t s = c.n_embd + c.n_layer + c.head_dim + c.n_eos;
            (void)s;
        }
    } else {
        hf_vocab *hv;
        int rc = mode == 1 ? hf_vocab_from_json(text, size - 1, "fuzz", 0, &hv)
                           : hf_vocab_from_tiktoken(text, size - 1, "fuzz", 0, &hv);
        if (rc == 0) {
            herd_vocab *v;
            if (vocab_load(hf_vocab_meta(hv), "fuzz", &v) == 0) {
                int32_t *ids;
                int64_t n;
                if (vocab_tokenize(v, "Hello world 123 <|eot_id|>", 26, true, true, &ids, &n) == 0) free(ids);
                vocab_free(v);
            }
            hf_vocab_free(hv);
        }
    }
    free(text);
    return 0;
}
