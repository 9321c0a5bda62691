/* Constrained decoding, part 3: the per-token mask over a vocabulary.
 *
 * A byte trie of every token's text (the bytes it adds to the output) is walked depth-first with
 * the recognizer state: a branch is cut as soon as the state dies, so the cost follows the number
 * of live prefixes, not the vocabulary size. Inside a JSON string (the common case) a second rule
 * skips whole subtrees: each trie node knows whether every token below it continues with plain
 * string characters only (complete UTF-8, no quote, backslash or control byte) and how long the
 * longest is; when the state has a string with room for that many characters, the whole subtree is
 * allowed at once (a range of the token order) without walking it.
 *
 * Tokens in the trie: normal and byte tokens with a non-empty text. Control and other special
 * tokens are never in it (never allowed inside a document); end-of-generation tokens are handled
 * by the caller (constrain.c).
 */
#ifndef HERD_CONSTRAIN_MASK_H
#define HERD_CONSTRAIN_MASK_H

#include <stdint.h>

#include "../tokenizer/vocab.h"
#include "grammar.h"

typedef struct tok_trie tok_trie;

/* Shared and read-only once built; reference-counted (one per vocabulary is cached). */
tok_trie *tok_trie_get(const herd_vocab *v);
void tok_trie_release(tok_trie *t);
int32_t tok_trie_n_vocab(const tok_trie *t);
/* The bytes of token id in the trie's view (NULL, 0 for tokens not in the trie). */
const uint8_t *tok_trie_bytes(const tok_trie *t, int32_t id, int32_t *len);

/* Sets allowed[id] = 1 for every token whose whole text can follow state s (allowed must be
 * zeroed by the caller; n_vocab entries). Returns the number allowed. The arena gets back its
 * size on return (the nodes made while walking are dropped). */
int64_t tok_trie_mask(const tok_trie *t, gr_arena *a, const gr_state *s, uint8_t *allowed);

#endif
