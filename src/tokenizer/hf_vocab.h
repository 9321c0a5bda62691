/* The tokenizer of a Hugging Face directory, as GGUF tokenizer metadata.
 *
 * Sources, first found wins:
 *   tokenizer.json            Llama 3 byte-level BPE: model.vocab, model.merges ("a b" strings or
 *                             [a, b] pairs), added_tokens (special -> control, else user-defined).
 *                             The pre-tokenizer must be Llama 3's (Split on the LLAMA31.md regex,
 *                             then ByteLevel without regex); anything else is refused.
 *   original/tokenizer.model  Meta's tiktoken file: lines "base64(bytes) rank", ranks 0..n-1 in
 *                             order, plus Meta's 256 special tokens (ids n..n+255). Merges are
 *                             recovered from the ranks: a token's two parts are what byte-level
 *                             BPE with only lower-ranked tokens leaves of it (so BPE by merge rank
 *                             equals tiktoken's BPE by token rank).
 * plus tokenizer_config.json (bos_token, eos_token, add_bos_token, chat_template) and config.json /
 * generation_config.json (bos_token_id, eos_token_id) for the special ids.
 *
 * The result holds the keys llama.cpp's converter writes — tokenizer.ggml.model "gpt2", .pre
 * "llama-bpe", .tokens (GPT-2 byte-to-unicode text; ids without a token become "[PAD<id>]",
 * unused), .token_type, .merges, .bos_token_id, .eos_token_id, .add_bos_token and
 * tokenizer.chat_template — in a gguf_file that lives in memory: vocab_load() reads it as it reads a
 * GGUF, and `herd convert` copies its keys into the file it writes.
 */
#ifndef HERD_TOKENIZER_HF_VOCAB_H
#define HERD_TOKENIZER_HF_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "../gguf/gguf.h"

typedef struct {
    int64_t n_vocab; /* config.json vocab_size: the token list is padded to it */
    int64_t bos_id;  /* config.json ids, -1 when absent (tokenizer_config.json wins) */
    int64_t eos_id;
} hf_vocab_hints;

typedef struct hf_vocab hf_vocab;

/* Reads the tokenizer of dir. OUT: *out (free with hf_vocab_free). Errors name the file. */
int hf_vocab_load(const char *dir, const hf_vocab_hints *hints, hf_vocab **out);
/* Builds from tokenizer.json text alone (no config files), for tests and fuzzing. */
int hf_vocab_from_json(const char *json, size_t len, const char *what, int64_t n_vocab, hf_vocab **out);
/* Builds from tiktoken text alone. */
int hf_vocab_from_tiktoken(const char *text, size_t len, const char *what, int64_t n_vocab, hf_vocab **out);
void hf_vocab_free(hf_vocab *v);

/* The tokenizer.* keys, owned by v. */
const gguf_file *hf_vocab_meta(const hf_vocab *v);
/* The file the tokens came from (for messages). */
const char *hf_vocab_source(const hf_vocab *v);

#endif
