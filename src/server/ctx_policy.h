/* The context-full policy of the server's chat completions (docs/CONTEXT.md).
 *
 * stop (the default): a conversation that does not fit is refused (400 context_length_exceeded), and a
 * reply that fills the slot's context ends there with finish_reason "length" (what OpenAI clients know)
 * and the herd field "stop_reason": "context" beside it (max_tokens ends with "length" alone).
 * shift: before generating, the conversation's oldest turns are left out (the system messages and the
 * last turn stay; herd_chat_tokenize_fit) until the prompt and max_tokens — or, without max_tokens, a
 * quarter of the slot's context — fit; the response says how many messages went ("dropped_messages").
 * A reply that fills the context while it is written: under stop it ends there (above); under shift the
 * conversation loses its oldest turns as herd chat does it, the reply so far is appended to it, and the
 * reply goes on (engine_params.shift: re-prefilled, exact); "dropped_messages" counts those turns too.
 * The server's default is `herd serve --context-policy`; a request may pick its own ("context_policy"). */
#ifndef HERD_SERVER_CTX_POLICY_H
#define HERD_SERVER_CTX_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "../chat/messages.h"
#include "../engine/engine.h"
#include "herd.h"

enum { CTX_POLICY_STOP = 0, CTX_POLICY_SHIFT = 1 };

/* The request's "context_policy" ("stop" | "shift"; absent or null: def). false with a message in
 * err[cap] when it is anything else. */
bool ctx_policy_parse(json_t *body, int def, int *out, char *err, size_t cap);
/* The prompt of conv under policy: with shift, its oldest turns are left out so that the prompt and
 * max_tokens (< 0: n_ctx / 4) fit n_ctx, and removed from conv (the strings stay owned by conv).
 * HERD_E_RANGE (context_length_exceeded) when even the system messages and the last turn do not fit.
 * OUT: *ids (caller frees), *n, *n_dropped. */
int ctx_policy_tokenize(int policy, const herd_model *m, chat_messages *conv, const herd_chat_params *cp,
                        int64_t n_ctx, int64_t max_tokens, int32_t **ids, int64_t *n, int64_t *n_dropped);
/* Context policy shift mid-reply (engine_params.shift): the prompts of conv (already fitted; n_ids its
 * prompt's length) with 1, 2, ... more of its oldest turns left out, until only the system messages and
 * the last turn are left; each with the messages it leaves out. None under stop. OUT: *out (malloc'd,
 * moved into the engine), *n. */
void ctx_policy_shift_prompts(int policy, const herd_model *m, const chat_messages *conv, const herd_chat_params *cp,
                              int64_t n_ids, engine_shift_prompt **out, int *n);
/* A choice the context ended (finish == ENGINE_FINISH_CONTEXT) gets "stop_reason": "context". */
void ctx_policy_mark(json_t *choice, int finish);

#endif
