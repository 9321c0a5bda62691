/* Tokenizer internals shared by the files of src/tokenizer (not part of the vocab.h contract).
 *
 * Data flow of vocab_tokenize (vocab.c):
 *   text --special.c--> fragments (raw text | special token id), llama.cpp's partition order
 *   raw fragment, gpt2:  --pretok_llama3.c--> pieces --bpe.c--> ids
 *   raw fragment, llama: ' ' -> U+2581, leading space --spm.c--> ids
 */
#ifndef HERD_TOKENIZER_TOK_INTERNAL_H
#define HERD_TOKENIZER_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tok_map.h"
#include "vocab.h"

/* Token attributes, as llama.cpp derives them from token_type (plus its by-text fix-ups). */
enum {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
};

/* Growable id list for tokenize output. */
typedef struct {
    int32_t *p;
    int64_t n, cap;
    bool oom; /* a push failed: the list is incomplete (the caller reports HERD_E_NOMEM) */
} tok_ids;

void tok_ids_push(tok_ids *o, int32_t id);

/* A trie over the texts of the special tokens (control, user-defined, unknown), for finding every
 * occurrence in one pass. Node 0 is the root; children are sibling lists. */
typedef struct {
    int32_t first_child, next_sibling;
    int32_t token; /* token ending here, or -1 */
    uint8_t byte;
} tok_trie_node;

struct herd_vocab {
    vocab_kind kind;
    char *model, *pre;
    int32_t n_tokens;

    /* token texts as stored in the GGUF (NUL-terminated, empty ones renamed "[EMPTY_i]" as llama.cpp
     * does): text(i) = texts + text_off[i], length text_off[i+1] - text_off[i] - 1 */
    char *texts;
    uint64_t *text_off;  /* n_tokens + 1 */
    uint8_t *attr;       /* TOK_ATTR_* per token */
    float *score;        /* per token (0 when the GGUF has none) */
    tok_strmap text_map; /* text -> id */

    /* detokenize: the bytes of each token with render_special (control tokens give their text):
     * piece(i) = pieces + piece_off[i], length piece_off[i+1] - piece_off[i] */
    char *pieces;
    uint64_t *piece_off;

    int32_t bos, eos, eot, eom, unk, pad; /* -1 when absent */
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    uint8_t *eog; /* per token: 1 if it ends generation */

    /* special-token partition: candidate ids, ordered as llama.cpp tries them (longest text first,
     * ties by id), their rank in that order, and the trie of their texts */
    int32_t *special;
    int32_t n_special;
    int32_t *special_rank; /* per token: index in special[], or -1 */
    tok_trie_node *trie;
    int32_t n_trie;
    uint8_t special_first[32]; /* bitmap of first bytes of special texts */

    /* byte-level BPE ("gpt2"). Symbols are token ids, or "pseudo" ids >= n_tokens for strings that
     * merges can build but the vocabulary lacks (llama.cpp falls back to bytes for those). */
    tok_strmap raw_map; /* raw bytes (byte-level chars decoded) -> token id */
    char *raw_blob;
    int32_t byte_sym[256];     /* symbol of each raw byte */
    uint8_t byte_char[256][2]; /* GPT-2 byte-to-unicode: the UTF-8 of the char that stands for a byte */
    uint8_t byte_char_len[256];
    tok_pairmap merges; /* (left, right) -> rank, result */
    int32_t n_pseudo;

    /* SentencePiece ("llama"): token for each byte (<0xXX>, else the 1-byte text, else unk, else -1) */
    int32_t spm_byte_tok[256];
    bool spm_word_cut; /* no token has U+2581 after another char: merge word by word (spm.c) */
};

/* Text and length of token id (0 <= id < n_tokens). */
const char *tok_text(const herd_vocab *v, int32_t id, size_t *len);

/* Special-token partition (special.c): splits text into fragments the way llama.cpp's
 * tokenizer_st_partition does. For each fragment in order, calls emit(user, start, len, -1) for raw
 * text or emit(user, start, len, id) for a special token. Returns 0 or a negative status. */
typedef int (*tok_fragment_fn)(void *user, size_t start, size_t len, int32_t id);
int tok_partition(const herd_vocab *v, const char *text, size_t len, bool parse_special, tok_fragment_fn emit,
                  void *user);
void tok_trie_build(herd_vocab *v);

/* Llama 3 pre-tokenizer (pretok_llama3.c): the end of the piece that starts at s[pos], pos < end. */
size_t pretok_llama3_next(const uint8_t *s, size_t pos, size_t end);

/* Byte-level BPE (bpe.c). Scratch reused across pieces of one tokenize call. */
typedef struct tok_bpe_scratch tok_bpe_scratch;
tok_bpe_scratch *tok_bpe_scratch_new(void);
void tok_bpe_scratch_free(tok_bpe_scratch *w);
/* Tokenizes raw text s[0..n) (one fragment): pre-tokenizes, then BPE per piece; appends ids. */
int tok_bpe_fragment(const herd_vocab *v, tok_bpe_scratch *w, const uint8_t *s, size_t n, tok_ids *out);
/* Builds byte_sym, byte_char, raw_map and merges from the merge strings. 0 or HERD_E_FORMAT. */
int tok_bpe_init(herd_vocab *v, const gguf_kv *merges, const char *what);

/* SentencePiece (spm.c): tokenizes the escaped text s[0..n) (spaces already U+2581); appends ids. */
int tok_spm_fragment(const herd_vocab *v, const uint8_t *s, size_t n, tok_ids *out);
void tok_spm_init(herd_vocab *v);

#endif
