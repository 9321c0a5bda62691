/* Llama Guard 3: the prompt, the verdict grammar and the verdict parser (LLAMA31.md, Llama Guard 3).
 * Implements the herd_guard_* functions of herd.h.
 *
 * The prompt is Meta's reference (llama-stack's inline Llama Guard provider) with the turn labels
 * and stripping of Meta's docs / HF templates: ONE user message, no system block,
 *
 *   <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{BODY}<|eot_id|>
 *   <|start_header_id|>assistant<|end_header_id|>\n\n
 *
 *   BODY = "Task: Check if there is unsafe content in '$agent_type' messages in conversations according
 *           our safety policy with the below categories.\n"
 *          "\n<BEGIN UNSAFE CONTENT CATEGORIES>\n$categories\n<END UNSAFE CONTENT CATEGORIES>\n"
 *          "\n<BEGIN CONVERSATION>\n\n$conversations\n\n<END CONVERSATION>\n"
 *          "\nProvide your safety assessment for ONLY THE LAST $agent_type message in the above
 *           conversation:\n - First line must read 'safe' or 'unsafe'.\n - If unsafe, a second line
 *           must include a comma-separated list of violated categories."
 *
 * substituted in one pass (a "$agent_type" inside a message stays as written). $categories: lines
 * "{code}: {name}." (+ "\n{description}") joined by "\n", excluded codes dropped, the others keeping
 * their codes. $conversations: "{User|Agent}: {content stripped}" joined by "\n\n" (strip = Python's
 * str.strip(), as the HF template's Jinja runs it). $agent_type: the label of the last message
 * (or the caller's role).
 *
 * The verdict grammar: root := "safe" | "unsafe\n" code ("," code)*, code := one of the known codes;
 * the end token is <|eot_id|> alone. */
#ifndef HERD_SAFETY_LLAMAGUARD_H
#define HERD_SAFETY_LLAMAGUARD_H

#include <stddef.h>
#include <stdint.h>

#include "../constrain/grammar.h"
#include "herd.h"

/* The category list after defaults and exclusions (codes/names/descriptions point into the caller's
 * params or into static storage; the arrays are owned). */
typedef struct {
    herd_guard_category *cats; /* [n] in prompt order, excluded ones removed */
    int n;
} guard_categories;

/* n_default_model: the default list's length the model asks for (13 or 14). HERD_E_ARG for a bad
 * category (empty / invalid code, a name with a newline, duplicates), an unknown excluded code, or
 * every category excluded. */
int guard_categories_make(const herd_guard_params *p, int n_default_model, guard_categories *out);
void guard_categories_free(guard_categories *c);

/* The rendered prompt: text, and the spans of its special tokens (in order). */
typedef struct {
    char *text;
    size_t len;
    size_t sp_off[6], sp_len[6];
    int n_sp;
} guard_prompt;

int guard_prompt_render(const guard_categories *cats, const herd_chat_message *msgs, size_t n, int role,
                        guard_prompt *out);
void guard_prompt_free(guard_prompt *p);

/* The verdict grammar over the codes of cats (rule 0 the root). */
void guard_grammar_build(const guard_categories *cats, grammar *g);

/* Python's str.isspace() for a code point (what str.strip() removes). */
int guard_py_space(uint32_t c);

#endif
