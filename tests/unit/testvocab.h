/* A SentencePiece-style vocabulary GGUF for unit tests (test_forward, test_tp_shard, test_lora, test_spec). Needs gguf/gguf.h,
 * herd.h and testutil.h included first. */
#ifndef HERD_TESTVOCAB_H
#define HERD_TESTVOCAB_H

/* A SentencePiece-style vocabulary of 259 + 40 tokens: enough to tokenize and detokenize anything.
 * variant 1 spells one piece differently ("F" for "f"): a vocabulary that does not match. */
static void write_vocab_variant(const char *path, int variant) {
    enum { NB = 256, NX = 40 };
    int n = 3 + NB + NX;
    gguf_str *toks = calloc((size_t)n, sizeof *toks);
    char(*buf)[16] = calloc((size_t)n, 16);
    float *scores = calloc((size_t)n, sizeof(float));
    int32_t *types = calloc((size_t)n, sizeof(int32_t));
    const char *special[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) {
        toks[i] = (gguf_str){special[i], strlen(special[i])};
        types[i] = i == 0 ? 2 : 3;
    }
    for (int b = 0; b < NB; b++) {
        snprintf(buf[3 + b], 16, "<0x%02X>", b);
        toks[3 + b] = (gguf_str){buf[3 + b], 6};
        types[3 + b] = 6;
    }
    for (int i = 0; i < NX; i++) { /* "\u2581a" .. and letters */
        int k = 3 + NB + i;
        if (i < 26) snprintf(buf[k], 16, "%c", (variant && i == 5 ? 'A' : 'a') + i);
        else snprintf(buf[k], 16, "\xe2\x96\x81%c", 'a' + (i - 26));
        toks[k] = (gguf_str){buf[k], strlen(buf[k])};
        types[k] = 1;
        scores[k] = -(float)i;
    }
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_T_FLOAT32, scores, (uint64_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, types, (uint64_t)n);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    CHECK(gguf_writer_write(w, path) == 0, "write vocab: %s", herd_last_error());
    gguf_writer_free(w);
    free(toks);
    free(buf);
    free(scores);
    free(types);
}

static inline void write_vocab(const char *path) {
    write_vocab_variant(path, 0);
}

#endif
