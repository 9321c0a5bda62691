/* Internal to src/server: Llama Guard behind herd serve (shields.c). */
#ifndef HERD_SERVER_SHIELDS_H
#define HERD_SERVER_SHIELDS_H

#include <jansson.h>

#include "herd.h"

typedef struct server server;

extern const char k_shield_refusal[];

/* Runs the guard model on a conversation (serialized on the guard's one context); counts the
 * verdict in /metrics. HERD_E_ARG when the server has no guard model. */
int shield_run(server *s, const herd_chat_message *msgs, size_t n, const herd_guard_params *p, herd_guard_result *out);
/* Llama Stack's violation object for a verdict: null when safe. */
json_t *shield_violation_json(const herd_guard_result *g);

#endif
