/* Prompt Guard behind herd serve (--prompt-guard DIR): a Llama Stack shield answered by the DeBERTa-v2
 * classifier (src/api/classifier_api.c), the way Llama Stack's inline prompt_guard provider answers it:
 *
 *   - the text assessed is the content of the LAST message (any role; text parts concatenated);
 *   - scores: embedded = p[INJECTION], malicious = p[JAILBREAK] (softmax at temperature 1); here over
 *     Meta's 512-character windows (herd_classify), the window with the highest p[INJECTION]+p[JAILBREAK];
 *   - guard type "injection" (Llama Stack's default): a violation when embedded + malicious > 0.9;
 *     guard type "jailbreak": when malicious > 0.9 (the maximum over windows);
 *   - violation: {violation_level "error", user_message "Sorry, I cannot do this.", metadata:
 *     {violation_type "prompt_injection:embedded=E,malicious=M" (jailbreak: "prompt_injection:malicious=M"),
 *     numbers as Python's repr prints them}; herd adds metadata.embedded / malicious / guard_type.
 *
 * Concurrency: one classifier, not thread-safe, so one classification at a time under s->pg_mu. The time
 * it is held is bounded (a text is at most PG_MAX_BYTES, i.e. at most PG_MAX_BYTES / 512 windows) and a
 * request waits for it at most PG_WAIT_S (then 503). Only Prompt Guard requests wait on it: the HTTP
 * threads of other requests and the engines never take it. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "../chat/messages.h"
#include "http.h"
#include "shields.h"

#define PG_THRESHOLD 0.9
#define PG_MAX_BYTES 16384 /* 32 windows at most */
#define PG_WAIT_S 60

static const char k_pg_refusal[] = "Sorry, I cannot do this."; /* Llama Stack's PromptGuardShield */

bool pg_is(const server *s, const char *id) { return s->cfg.prompt_guard && !strcmp(id, s->cfg.prompt_guard_id); }

json_t *pg_shield_json(const server *s) {
    return json_pack("{s:s,s:s,s:s,s:s,s:{s:s}}", "identifier", s->cfg.prompt_guard_id, "provider_resource_id",
                     s->cfg.prompt_guard_id, "provider_id", "prompt-guard", "type", "shield", "params", "guard_type",
                     s->cfg.prompt_guard_jailbreak ? "jailbreak" : "injection");
}

/* Python's repr of a float: the shortest %g that reads back the same double, "1.0" rather than "1" */
static void py_repr(char *buf, size_t cap, double x) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    if (!strpbrk(buf, ".eninf")) strncat(buf, ".0", cap - strlen(buf) - 1);
}

int pg_run(server *s, const char *text, size_t len, bool jailbreak, pg_verdict *out) {
    memset(out, 0, sizeof *out);
    out->jailbreak = jailbreak;
    if (!s->cfg.prompt_guard) return herd_err(HERD_E_ARG, "no Prompt Guard model is loaded (herd serve --prompt-guard)");
    if (len > PG_MAX_BYTES)
        return herd_err(HERD_E_RANGE, "prompt guard: the text is %zu bytes, at most %d are assessed per request", len,
                        PG_MAX_BYTES);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += PG_WAIT_S;
    int e = pthread_mutex_timedlock(&s->pg_mu, &dl);
    if (e == ETIMEDOUT) return herd_err(HERD_E_UNSUPPORTED, "prompt guard: busy for %d s, try again", PG_WAIT_S);
    if (e) return herd_err(HERD_E_UNSUPPORTED, "prompt guard: lock: %s", strerror(e));
    herd_classify_result r;
    int rc = herd_classify(s->cfg.prompt_guard, text, len, &r);
    pthread_mutex_unlock(&s->pg_mu);
    if (rc) return rc;
    int nl = r.n_labels;
    if (r.n_windows > 0 && nl >= 2) {
        out->embedded = nl >= 3 ? r.probs[1] : 0;
        out->malicious = r.probs[nl - 1];
        out->n_windows = r.n_windows;
    }
    if (jailbreak) {
        out->malicious = r.n_windows > 0 ? (double)(float)r.jailbreak_score : 0; /* a float32 probability, as PyTorch's */
        out->violation = out->malicious > PG_THRESHOLD;
    } else {
        out->violation = out->embedded + out->malicious > PG_THRESHOLD;
    }
    herd_classify_result_free(&r);
    metrics_prompt_guard(&s->met, jailbreak, out->violation);
    return HERD_OK;
}

json_t *pg_violation_json(const server *s, const pg_verdict *v) {
    if (!v->violation) return json_null();
    char e[40], m[40], type[128];
    py_repr(e, sizeof e, v->embedded);
    py_repr(m, sizeof m, v->malicious);
    if (v->jailbreak) snprintf(type, sizeof type, "prompt_injection:malicious=%s", m);
    else snprintf(type, sizeof type, "prompt_injection:embedded=%s,malicious=%s", e, m);
    (void)s;
    return json_pack("{s:s,s:s,s:{s:s,s:f,s:f,s:s}}", "violation_level", "error", "user_message", k_pg_refusal,
                     "metadata", "violation_type", type, "embedded", v->embedded, "malicious", v->malicious,
                     "guard_type", v->jailbreak ? "jailbreak" : "injection");
}

/* params.guard_type: "injection" / "jailbreak" (Llama Stack's provider setting, per request here) */
static bool guard_type_of(const server *s, json_t *params, bool *jb) {
    *jb = s->cfg.prompt_guard_jailbreak;
    json_t *t = params ? json_object_get(params, "guard_type") : NULL;
    if (!t || json_is_null(t)) return true;
    if (!json_is_string(t)) return false;
    if (!strcmp(json_string_value(t), "injection")) *jb = false;
    else if (!strcmp(json_string_value(t), "jailbreak")) *jb = true;
    else return false;
    return true;
}

enum MHD_Result pg_error(http_req *r, int rc, const char *param, const char *prefix) {
    bool busy = rc == HERD_E_UNSUPPORTED; /* the lock was not had in time */
    return http_send_error(r, busy ? 503 : 400, busy ? "server_error" : "invalid_request_error", param,
                           rc == HERD_E_RANGE ? "input_too_long" : NULL, "%s%s", prefix, herd_last_error());
}

enum MHD_Result pg_route_run_shield(http_req *r, const chat_messages *cm, json_t *params) {
    bool jb;
    if (!guard_type_of(r->srv, params, &jb))
        return http_send_error(r, 400, "invalid_request_error", "params", NULL,
                               "'params.guard_type' must be \"injection\" or \"jailbreak\"");
    const herd_chat_message *last = &cm->msgs[cm->n - 1];
    const char *text = last->content ? last->content : "";
    pg_verdict v;
    int rc = pg_run(r->srv, text, strlen(text), jb, &v);
    if (rc != HERD_OK) return pg_error(r, rc, "messages", "");
    return http_send_json(r, 200, json_pack("{s:o}", "violation", pg_violation_json(r->srv, &v)));
}

int pg_check_chat(server *s, const herd_chat_message *msgs, size_t n, json_t **violation) {
    *violation = NULL;
    if (n == 0) return HERD_OK;
    const herd_chat_message *last = &msgs[n - 1];
    /* the text this request brings in: the user's turn or a tool's result (where injections hide) */
    if (!last->content || !*last->content || !(strcmp(last->role, "user") == 0 || strcmp(last->role, "tool") == 0 ||
                                               strcmp(last->role, "ipython") == 0))
        return HERD_OK;
    pg_verdict v;
    int rc = pg_run(s, last->content, strlen(last->content), s->cfg.prompt_guard_jailbreak, &v);
    if (rc) return rc;
    if (v.violation) *violation = pg_violation_json(s, &v);
    return HERD_OK;
}
