/* Tokenizer: vocabulary from GGUF metadata, tokenize and detokenize.
 *
 * Two families, chosen by tokenizer.ggml.model:
 *   "gpt2"  — byte-level BPE (Llama 3): pre-tokenizer regex per tokenizer.ggml.pre ("llama-bpe",
 *             see LLAMA31.md, Tokenizer), bytes mapped to printable code points (GPT-2's
 *             byte-to-unicode), merges by rank from tokenizer.ggml.merges.
 *   "llama" — SentencePiece-style (Llama 2, TinyLlama, stories260K): spaces become U+2581, a leading
 *             space is added, merges by token score, unknown pieces fall back to <0xXX> byte tokens.
 * Metadata read: tokenizer.ggml.{model,pre,tokens,token_type,scores,merges,bos_token_id,eos_token_id,
 * eot_token_id,eom_token_id,unknown_token_id,padding_token_id,add_bos_token,add_eos_token,add_space_prefix}.
 *
 * The reference for exactness is llama.cpp (tests compare every id against it: its golden .inp/.out
 * vectors, ~1,500 texts and every code point; see tests/conformance/tokenizer_llama_cpp.sh).
 * Where herd departs from llama.cpp, on purpose:
 *  - invalid UTF-8 (only reachable from C, not from a JS/JSON string): llama.cpp replaces each bad
 *    byte by U+FFFD (gpt2) or swallows following bytes into a bad character (llama); herd keeps
 *    every byte (byte tokens), so detokenize(tokenize(x)) == x for all bytes (SPM: unless x holds
 *    U+2581, SentencePiece's own space, or special tokens are parsed, after which SPM adds a space);
 *  - detokenize never "cleans up" spaces (llama.cpp turns "Hello ?" into "Hello?" for llama-bpe),
 *    and for SPM also drops the prefix space after a leading BOS (llama.cpp keeps it there).
 * A vocabulary is read-only after vocab_load: any number of threads may tokenize with it at once.
 */
#ifndef HERD_TOKENIZER_VOCAB_H
#define HERD_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../gguf/gguf.h"

typedef enum { VOCAB_BPE = 1, VOCAB_SPM = 2 } vocab_kind;

/* tokenizer.ggml.token_type values */
enum {
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,
    TOKEN_TYPE_USER_DEFINED = 4,
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6,
};

typedef struct herd_vocab herd_vocab;

/* Builds the vocabulary from a parsed GGUF (copies what it keeps; g may be freed afterwards).
 * `what` names the file for errors. HERD_E_UNSUPPORTED for other tokenizer models / pre-tokenizers,
 * HERD_E_FORMAT for missing or inconsistent arrays. */
int vocab_load(const gguf_file *g, const char *what, herd_vocab **out);
void vocab_free(herd_vocab *v);

vocab_kind vocab_get_kind(const herd_vocab *v);
const char *vocab_model_name(const herd_vocab *v); /* "gpt2" / "llama" */
const char *vocab_pre_name(const herd_vocab *v);   /* "llama-bpe", "default", ... */
int32_t vocab_n_tokens(const herd_vocab *v);
int32_t vocab_bos(const herd_vocab *v);            /* -1 when absent */
int32_t vocab_eos(const herd_vocab *v);
bool vocab_add_bos(const herd_vocab *v);
bool vocab_add_eos(const herd_vocab *v);            /* tokenizer.ggml.add_eos_token; the caller appends EOS */
int32_t vocab_eot(const herd_vocab *v);            /* <|eot_id|> (metadata, else found by text); -1 when absent */
int32_t vocab_eom(const herd_vocab *v);            /* <|eom_id|>; -1 when absent */
bool vocab_is_eog(const herd_vocab *v, int32_t id); /* EOS, EOT, EOM and other end tokens */
bool vocab_is_control(const herd_vocab *v, int32_t id);
int32_t vocab_find(const herd_vocab *v, const char *text, size_t len); /* exact token text -> id, or -1 */
/* The token's stored text (GGUF form: byte-level chars for BPE, U+2581 for SPM), NUL-terminated. */
const char *vocab_token_text(const herd_vocab *v, int32_t id);

/* Tokenizes text[0..len). parse_special: control/special token text ("<|eot_id|>") in the input
 * becomes that token; otherwise it is tokenized as plain text (user-defined tokens always match,
 * as in llama.cpp). Special texts are cut out longest first, as llama.cpp does. add_bos prepends
 * vocab_bos() (pass vocab_add_bos(v) for the model's default); EOS is never appended here.
 * Input is bounded to INT32_MAX / 4 bytes per call (HERD_E_RANGE beyond).
 * OUT: *ids (malloc'd, caller frees), *n_ids. */
int vocab_tokenize(const herd_vocab *v, const char *text, size_t len, bool add_bos, bool parse_special,
                   int32_t **ids, int64_t *n_ids);

/* Writes the bytes of token id to buf (at most cap) and returns the full length needed.
 * Control tokens give their text only when render_special. -1 for an id out of range. */
int64_t vocab_token_to_piece(const herd_vocab *v, int32_t id, bool render_special, char *buf, size_t cap);

/* Detokenizes ids; for SPM drops the space that the leading-space rule added after BOS / at the start.
 * OUT: *text (NUL-terminated, caller frees), *len. HERD_E_ARG for an id out of range. */
int vocab_detokenize(const herd_vocab *v, const int32_t *ids, int64_t n, bool render_special, char **text,
                     size_t *len);

#endif
