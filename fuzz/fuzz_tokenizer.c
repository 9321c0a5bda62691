/* libFuzzer target: tokenizes arbitrary bytes with the Llama 3 (llama-bpe) and Llama 2 (llama-spm)
 * vocabularies, loaded once from build/ref (tests/ref/setup.sh installs them), and checks that every
 * id is in range and that detokenize(tokenize(x)) == x (SPM: unless x holds U+2581 or special
 * parsing is on, which SentencePiece cannot give back). The first input byte picks the options:
 * bit 0 parse_special, bit 1 add_bos, bit 2 the SPM vocabulary. Built by `make fuzz`. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

static const char *const paths[2] = {"build/ref/llama.cpp/models/ggml-vocab-llama-bpe.gguf",
                                     "build/ref/llama.cpp/models/ggml-vocab-llama-spm.gguf"};
static herd_mapped_file files[2];
static gguf_file ggufs[2];
static herd_vocab *vocabs[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    for (int i = 0; i < 2; i++) {
        if (herd_file_map(paths[i], &files[i]) != 0 ||
            gguf_parse(files[i].data, files[i].size, paths[i], &ggufs[i]) != 0 ||
            vocab_load(&ggufs[i], paths[i], &vocabs[i]) != 0) {
            fprintf(stderr, "fuzz_tokenizer: %s (run tests/ref/setup.sh from the repository root)\n",
                    herd_last_error());
            abort();
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    bool special = data[0] & 1, bos = data[0] & 2;
    const herd_vocab *v = vocabs[(data[0] >> 2) & 1];
    /* an exact-size copy, so that any read past the end is caught by ASan */
    size_t n = size - 1;
    char *text = malloc(n ? n : 1);
    memcpy(text, data + 1, n);

    int32_t *ids;
    int64_t n_ids;
    if (vocab_tokenize(v, text, n, bos, special, &ids, &n_ids) != 0) abort();
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= vocab_n_tokens(v)) abort();
    char *back;
    size_t len;
    int64_t skip = bos ? 1 : 0;
    if (vocab_detokenize(v, ids + skip, n_ids - skip, true, &back, &len) != 0) abort();
    bool spm = vocab_get_kind(v) == VOCAB_SPM;
    bool checkable = !spm || (!special && !memmem(text, n, "\xe2\x96\x81", 3));
    if (checkable && (len != n || memcmp(back, text, n) != 0)) {
        fprintf(stderr, "fuzz_tokenizer: round trip differs (%zu bytes in, %zu out)\n", n, len);
        abort();
    }
    char piece[256];
    for (int64_t i = 0; i < n_ids && i < 8; i++)
        vocab_token_to_piece(v, ids[i], special, piece, sizeof(piece));
    free(back);
    free(ids);
    free(text);
    return 0;
}
