/* Internal to src/server: Llama Guard behind herd serve (shields.c). */
#ifndef HERD_SERVER_SHIELDS_H
#define HERD_SERVER_SHIELDS_H

#include <jansson.h>
#include <stdbool.h>

#include "herd.h"

typedef struct server server;

extern const char k_shield_refusal[];

/* Runs the guard model on a conversation through the guard's engine (greedy under the verdict grammar,
 * P(unsafe) from the first position); counts the verdict in /metrics. Blocks until the verdict. HERD_E_ARG
 * when the server has no guard model, HERD_E_RANGE when the prompt does not fit a guard slot. */
int shield_run(server *s, const herd_chat_message *msgs, size_t n, const herd_guard_params *p, herd_guard_result *out);
/* Llama Stack's violation object for a verdict: null when safe. */
json_t *shield_violation_json(const herd_guard_result *g);
/* The same with metadata.shield = which ("input" / "output"). */
json_t *shield_violation_for(const herd_guard_result *g, const char *which);
/* Shields a chat: the user and assistant text turns of msgs (system, tool and tool-call messages left
 * out), plus `answer` as an assistant turn when not NULL (the output shield). The input shield runs
 * only when those turns end with a user turn. *ran: a verdict is in *out (free it). */
int shield_check(server *s, const herd_chat_message *msgs, size_t n, const char *answer, size_t answer_len,
                 herd_guard_result *out, bool *ran);

#endif
