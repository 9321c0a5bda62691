/* libFuzzer target: the SentencePiece .model protobuf reader (src/tokenizer/spm_model.c) and, when the
 * bytes load, the unigram tokenizer over them (charsmap normalization, Viterbi, byte fallback): a fixed
 * multilingual text and the input itself as text. Built by `make fuzz`; seeds in
 * fuzz/seeds/fuzz_spm_model/ (a small spm_train unigram model with the nmt_nfkc charsmap, byte fallback). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/unigram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unigram_model *m;
    if (unigram_load_spm(data, size, "fuzz", &m) != 0) return 0;
    static const char text[] = "  Grüße, ＦＵＬＬ ﬁ ①  日本語 😀 \xff\xfe end  ";
    int32_t *ids;
    int64_t n;
    if (unigram_encode(m, text, sizeof text - 1, -1, &ids, &n) == 0) free(ids);
    size_t k = size < 4096 ? size : 4096;
    if (unigram_encode(m, (const char *)data, k, 510, &ids, &n) == 0) free(ids);
    unigram_free(m);
    return 0;
}
