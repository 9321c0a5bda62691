/* Constrained decoding: internals of herd_constraint shared with the sampler and tests.
 * See schema.h (what a schema compiles to), grammar.h (the recognizer), mask.h (the token mask). */
#ifndef HERD_CONSTRAIN_CONSTRAIN_H
#define HERD_CONSTRAIN_CONSTRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "../tokenizer/vocab.h"
#include "grammar.h"
#include "herd.h"

/* herd_constraint_json_schema over a vocabulary (a model is not needed). */
int constraint_new(const herd_vocab *v, const char *schema_json, herd_constraint **out);
/* The same over a grammar built by the caller (grammar.h; moved into the constraint, *g is emptied
 * whether or not it succeeds). */
int constraint_new_grammar(const herd_vocab *v, grammar *g, herd_constraint **out);
/* Restricts the end tokens (allowed once the document is complete) to ids[0..n) instead of every
 * end-of-generation token of the vocabulary (Llama Guard's verdict ends with <|eot_id|> only). */
void constraint_set_end_tokens(herd_constraint *c, const int32_t *ids, int32_t n);

/* The allowed tokens of the current state ([n_vocab] bytes, 1 = allowed; owned by c, valid until
 * the next accept); *n_allowed gets their count when not NULL. Computed once per state. */
const uint8_t *constraint_mask(herd_constraint *c, int64_t *n_allowed);
/* True when some token other than end-of-generation may still follow. */
bool constraint_can_continue(const herd_constraint *c);

/* Whether token id may come next, by stepping its bytes alone (no trie; for tests). */
bool constraint_token_ok(herd_constraint *c, int32_t id);

/* Reuse of masks of recent states (on by default; off for measuring the walk itself). */
void constraint_set_memo(herd_constraint *c, bool on);

#endif
