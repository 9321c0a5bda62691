/* Internal to src/server: Llama Guard (shields.c) and Prompt Guard (promptguard.c) behind herd serve. */
#ifndef HERD_SERVER_SHIELDS_H
#define HERD_SERVER_SHIELDS_H

#include <jansson.h>
#include <stdbool.h>

#include "herd.h"
#include "../chat/messages.h"
#include "http.h"


extern const char k_shield_refusal[];

/* Runs the guard model on a conversation through the guard's engine (greedy under the verdict grammar,
 * P(unsafe) from the first position); counts the verdict in /metrics. Blocks until the verdict. HERD_E_ARG
 * when the server has no guard model, HERD_E_RANGE when the prompt does not fit a guard slot. */
int shield_run(server *s, const herd_chat_message *msgs, size_t n, const herd_guard_params *p, herd_guard_result *out);
/* Llama Stack's violation object for a verdict: null when safe. */
json_t *shield_violation_json(const herd_guard_result *g);
/* The same with metadata.shield = which ("input" / "output"). */
json_t *shield_violation_for(const herd_guard_result *g, const char *which);
/* The text the output shield assesses of an answer with tool calls: its content, then each call on a
 * line of its own as Llama 3.1 writes a JSON call, {"name": NAME, "parameters": ARGUMENTS}. */
void shield_answer_text(const herd_parsed_output *po, strbuf *out);
/* Shields a chat: the user and assistant text turns of msgs (system, tool and tool-call messages left
 * out), plus `answer` as an assistant turn when not NULL (the output shield). The input shield runs
 * only when those turns end with a user turn. *ran: a verdict is in *out (free it). */
int shield_check(server *s, const herd_chat_message *msgs, size_t n, const char *answer, size_t answer_len,
                 herd_guard_result *out, bool *ran);

/* ---- Prompt Guard (promptguard.c, --prompt-guard) ---- */
typedef struct {
    bool jailbreak;         /* the guard type asked */
    bool violation;
    double embedded;        /* p[INJECTION] */
    double malicious;       /* p[JAILBREAK] (jailbreak: the maximum over windows) */
    int64_t n_windows;
} pg_verdict;
/* true when id is the Prompt Guard shield's */
bool pg_is(const server *s, const char *id);
json_t *pg_shield_json(const server *s);
/* Classifies text (under the Prompt Guard lock, waited on for a bounded time) and counts the verdict.
 * HERD_E_RANGE: the text is too long; HERD_E_UNSUPPORTED: the classifier stayed busy. */
int pg_run(server *s, const char *text, size_t len, bool jailbreak, pg_verdict *out);
/* Llama Stack's violation object for a verdict: null when none. */
json_t *pg_violation_json(const server *s, const pg_verdict *v);
/* The chat input shield: the last message when it is the user's or a tool's; *violation: NULL or one. */
int pg_check_chat(server *s, const herd_chat_message *msgs, size_t n, json_t **violation);
/* POST /v1/safety/run-shield for the Prompt Guard shield (cm: the request's messages, non-empty). */
enum MHD_Result pg_route_run_shield(http_req *r, const chat_messages *cm, json_t *params);
/* A pg_run failure as an HTTP error: 503 when busy, else 400 (prefix: "input shield: " or ""). */
enum MHD_Result pg_error(http_req *r, int rc, const char *param, const char *prefix);

#endif
