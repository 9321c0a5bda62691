/* libFuzzer target: the training data JSONL reader (src/train/data_jsonl.c) over arbitrary bytes, with
 * the Llama 3.1 vocabulary (build/ref/llama31-vocab.gguf, tests/ref/setup.sh), loaded once. The first
 * input byte picks the options: bit 0 dpo (else sft), bit 1 train_on_input, bit 2 overlong skip, bits
 * 3-7 seq_len = 1 + 8 * value. Checks the contract of data.h on every outcome: on success every
 * sequence holds 2..seq_len + 1 tokens in range, target[0] == 0 and some target, dpo pairs come in
 * twos, and the totals add up; on failure an empty result and HERD_E_FORMAT with one line naming
 * "fuzz.jsonl:LINE: ". Built by `make fuzz`. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "train/data.h"
#include "train/data_impl.h"

static herd_model *g_m;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (herd_model_load_vocab("build/ref/llama31-vocab.gguf", &g_m) != HERD_OK) {
        fprintf(stderr, "fuzz_train_jsonl: %s (run tests/ref/setup.sh from the repository root)\n",
                herd_last_error());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > 1 << 16) return 0;
    train_data_params p = {.objective = (data[0] & 1) ? TRAIN_OBJ_DPO : TRAIN_OBJ_SFT,
                           .train_on_input = (data[0] & 2) != 0,
                           .overlong = (data[0] & 4) ? TRAIN_OVERLONG_SKIP : TRAIN_OVERLONG_TRUNCATE,
                           .seq_len = 1 + 8 * (data[0] >> 3)};
    /* an exact-size copy, so that any read past the end is caught by ASan */
    size_t n = size - 1;
    char *text = malloc(n ? n : 1);
    memcpy(text, data + 1, n);
    train_data d = {0};
    int rc = train_data_load_jsonl(g_m, "fuzz.jsonl", text, n, &p, &d);
    if (rc == 0) {
        int64_t nt = 0, ng = 0;
        for (int64_t i = 0; i < d.n_seqs; i++) {
            const train_seq *s = &d.seqs[i];
            if (s->n < 2 || s->n > p.seq_len + 1 || s->target[0] != 0) abort();
            int64_t g = 0;
            for (int64_t j = 0; j < s->n; j++) {
                if (s->tokens[j] < 0 || s->tokens[j] >= herd_vocab_n_tokens(g_m) || s->target[j] > 1) abort();
                g += s->target[j];
            }
            if (g == 0) abort();
            nt += s->n;
            ng += g;
        }
        if (nt != d.n_tokens || ng != d.n_targets) abort();
        if (d.n_seqs != (p.objective == TRAIN_OBJ_DPO ? 2 : 1) * d.n_examples) abort();
    } else {
        const char *e = herd_last_error();
        if (rc != HERD_E_FORMAT || strncmp(e, "fuzz.jsonl:", 11) != 0 || strchr(e, '\n')) {
            fprintf(stderr, "fuzz_train_jsonl: unexpected error %d: %s\n", rc, e);
            abort();
        }
    }
    train_data_free(&d);
    free(text);
    return 0;
}
