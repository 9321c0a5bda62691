/* Safety routes of herd serve (--guard-model): Llama Stack's shields and OpenAI's moderations, answered
 * by Llama Guard 3 (src/safety/llamaguard.h). Shapes: docs/API.md.
 *
 *   GET  /v1/shields              {"data": [{"identifier", "provider_resource_id", "provider_id", "type", "params"}]}
 *   POST /v1/safety/run-shield    {shield_id, messages, params?} -> {"violation": null | {violation_level,
 *                                 user_message, metadata: {violation_type: "S1,S10", p_unsafe}}}
 *   POST /v1/moderations          {input: string | [string], model?} -> {id, model, results: [{flagged,
 *                                 categories, category_scores, category_applied_input_types, ...}]}
 *
 * The guard model runs in an engine of its own (src/engine: continuous batching, the same code as the main
 * model's): concurrent guard requests share its forward passes; HTTP threads only submit and wait.
 * A Prompt Guard shield (--prompt-guard) is listed and dispatched here, answered in promptguard.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../chat/messages.h"
#include "http.h"
#include "shields.h"

/* Llama Stack's canned refusal (llama_guard.py CANNED_RESPONSE_TEXT) */
const char k_shield_refusal[] = "I can't answer that. Can I help with something else?";

/* OpenAI moderation categories -> Llama Guard codes (Llama Stack's OPENAI_TO_LLAMA_CATEGORIES_MAP, by code) */
static const struct {
    const char *openai;
    const char *codes; /* comma-separated */
} k_openai_map[] = {
    {"violence", "S1"},
    {"violence/graphic", "S1"},
    {"harassment", "S4"},
    {"harassment/threatening", "S1,S4"},
    {"hate", "S10"},
    {"hate/threatening", "S10,S1"},
    {"illicit", "S2"},
    {"illicit/violent", "S1,S9"},
    {"sexual", "S3,S12"},
    {"sexual/minors", "S4"},
    {"self-harm", "S11"},
    {"self-harm/intent", "S11"},
    {"self-harm/instructions", "S11,S6"},
    {"custom/defamation", "S5"},
    {"custom/specialized_advice", "S6"},
    {"custom/privacy_violation", "S7"},
    {"custom/intellectual_property", "S8"},
    {"custom/weapons", "S9"},
    {"custom/elections", "S13"},
    {"custom/code_interpreter_abuse", "S14"},
};

static bool list_has(const char *list, const char *code) {
    size_t n = strlen(code);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t L = c ? (size_t)(c - p) : strlen(p);
        if (L == n && !memcmp(p, code, n)) return true;
        if (!c) break;
        p = c + 1;
    }
    return false;
}

/* The longest verdict asked of the engine: "unsafe\n" and a dozen codes, each at worst a few tokens (a
 * verdict cut here is trimmed back to its last complete code). */
#define SHIELD_MAX_TOKENS 96

int shield_run(server *s, const herd_chat_message *msgs, size_t n, const herd_guard_params *p,
               herd_guard_result *out) {
    memset(out, 0, sizeof *out);
    if (!s->cfg.guard) return herd_err(HERD_E_ARG, "no guard model is loaded (herd serve --guard-model)");
    const herd_model *m = engine_model(s->cfg.guard);
    int32_t *ids = NULL, *u = NULL;
    int64_t n_ids = 0, nu = 0;
    int rc = herd_guard_tokenize(m, msgs, n, p, &ids, &n_ids);
    if (rc) return rc;
    if (herd_tokenize(m, "unsafe", 6, 0, &u, &nu) != HERD_OK || nu != 1) {
        free(ids);
        free(u);
        return herd_err(HERD_E_UNSUPPORTED, "llama guard: 'unsafe' is not one token of the guard's vocabulary");
    }
    herd_constraint *con;
    if ((rc = herd_guard_constraint(m, p, &con))) {
        free(ids);
        free(u);
        return rc;
    }
    /* greedy under the verdict grammar, through the guard's engine (batched with other guard requests) */
    engine_params ep = {.prompt = ids, .n_prompt = n_ids, .sampling = herd_sampler_default_params(), .top_logprobs = -1,
                        .constraint = con, .watch = true, .watch_token = u[0]};
    free(u);
    ep.sampling.temp = 0;
    ep.sampling.repeat_penalty = 1;
    int64_t room = s->cfg.guard_ctx_slot - n_ids - 1;
    ep.max_tokens = room < SHIELD_MAX_TOKENS ? (room > 1 ? room : 1) : SHIELD_MAX_TOKENS;
    engine_req *er;
    if ((rc = engine_submit(s->cfg.guard, &ep, &er))) return rc;
    strbuf text = {0};
    strbuf_put(&text, "", 0);
    engine_event ev;
    bool first = true;
    double p_unsafe = 0;
    int64_t n_prompt = 0, n_gen = 0;
    while (engine_next_event(er, &ev, -1)) {
        if (ev.kind == ENGINE_EV_TOKEN) {
            if (first) p_unsafe = exp(ev.watch_logprob);
            first = false;
            strbuf_put(&text, ev.text ? ev.text : "", ev.text_len);
        } else if (ev.kind == ENGINE_EV_ERROR) {
            rc = herd_err(HERD_E_RANGE, "llama guard: %s", ev.error);
        } else {
            n_prompt = ev.n_prompt;
            n_gen = ev.n_gen;
        }
        int kind = ev.kind;
        engine_event_clear(&ev);
        if (kind != ENGINE_EV_TOKEN) break;
    }
    engine_release(er);
    if (rc == HERD_OK) {
        /* cut at max_tokens: back to the last complete code ("unsafe\nS1,S" -> "unsafe\nS1") */
        while ((rc = herd_guard_parse(text.p, text.n, out)) != HERD_OK) {
            char *comma = memrchr(text.p, ',', text.n);
            if (!comma) break;
            text.n = (size_t)(comma - text.p);
        }
    }
    strbuf_free(&text);
    if (rc) return rc;
    out->p_unsafe = p_unsafe;
    out->n_prompt = n_prompt;
    out->n_generated = n_gen;
    metrics_shield(&s->met, out->unsafe ? "unsafe" : "safe", NULL);
    for (int i = 0; i < out->n_categories; i++) metrics_shield(&s->met, NULL, out->categories[i]);
    return HERD_OK;
}

static json_t *shield_json(const server *s) {
    return json_pack("{s:s,s:s,s:s,s:s,s:{}}", "identifier", s->cfg.guard_id, "provider_resource_id", s->cfg.guard_id,
                     "provider_id", "llama-guard", "type", "shield", "params");
}

enum MHD_Result route_shields(http_req *r) {
    server *s = r->srv;
    json_t *data = json_array();
    if (s->cfg.guard) json_array_append_new(data, shield_json(s));
    if (s->cfg.prompt_guard) json_array_append_new(data, pg_shield_json(s));
    return http_send_json(r, 200, json_pack("{s:o}", "data", data));
}

enum MHD_Result route_shield(http_req *r, const char *id) {
    server *s = r->srv;
    if (pg_is(s, id)) return http_send_json(r, 200, pg_shield_json(s));
    if (!s->cfg.guard || strcmp(id, s->cfg.guard_id))
        return http_send_error(r, 404, "invalid_request_error", NULL, "shield_not_found", "no shield '%.100s'", id);
    return http_send_json(r, 200, shield_json(s));
}

json_t *shield_violation_json(const herd_guard_result *g) {
    if (!g->unsafe) return json_null();
    strbuf codes = {0};
    strbuf_put(&codes, "", 0);
    for (int i = 0; i < g->n_categories; i++) strbuf_printf(&codes, "%s%s", i ? "," : "", g->categories[i]);
    json_t *v = json_pack("{s:s,s:s,s:{s:s,s:f}}", "violation_level", "error", "user_message", k_shield_refusal,
                          "metadata", "violation_type", codes.p, "p_unsafe", g->p_unsafe);
    strbuf_free(&codes);
    return v;
}

/* params.excluded_categories: ["S1", ...] (Llama Stack's provider option, per request here) */
static bool excluded_of(json_t *params, const char ***out, int *n, char *err, size_t cap) {
    *out = NULL;
    *n = 0;
    json_t *ex = params ? json_object_get(params, "excluded_categories") : NULL;
    if (!ex || json_is_null(ex)) return true;
    if (!json_is_array(ex)) {
        snprintf(err, cap, "'params.excluded_categories' must be an array of codes like \"S1\"");
        return false;
    }
    *out = calloc(json_array_size(ex) + 1, sizeof **out);
    size_t i;
    json_t *c;
    json_array_foreach(ex, i, c) {
        if (!json_is_string(c)) {
            snprintf(err, cap, "'params.excluded_categories[%zu]' must be a string", i);
            free(*out);
            *out = NULL;
            return false;
        }
        (*out)[(*n)++] = json_string_value(c);
    }
    return true;
}

enum MHD_Result route_run_shield(http_req *r, json_t *b) {
    server *s = r->srv;
    json_t *id = json_object_get(b, "shield_id"), *msgs = json_object_get(b, "messages"), *params = json_object_get(b, "params");
    if (!json_is_string(id))
        return http_send_error(r, 400, "invalid_request_error", "shield_id", NULL, "'shield_id' must be a string");
    bool pg = pg_is(s, json_string_value(id));
    if (!pg && (!s->cfg.guard || strcmp(json_string_value(id), s->cfg.guard_id)))
        return http_send_error(r, 404, "invalid_request_error", "shield_id", "shield_not_found",
                               "no shield '%.100s'%s%s%s%s", json_string_value(id),
                               s->cfg.guard || s->cfg.prompt_guard ? "; this server has " : " (no --guard-model or --prompt-guard)",
                               s->cfg.guard ? s->cfg.guard_id : "", s->cfg.guard && s->cfg.prompt_guard ? ", " : "",
                               s->cfg.prompt_guard ? s->cfg.prompt_guard_id : "");
    if (params && !json_is_null(params) && !json_is_object(params))
        return http_send_error(r, 400, "invalid_request_error", "params", NULL, "'params' must be an object");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return http_send_error(r, 400, "invalid_request_error", "messages", NULL,
                               "'messages' must be a non-empty array of {role, content}");
    chat_messages cm;
    if (chat_messages_from_json(msgs, &cm) != HERD_OK)
        return http_send_error(r, 400, "invalid_request_error", "messages", NULL, "%s", herd_last_error());
    if (pg) {
        enum MHD_Result res = pg_route_run_shield(r, &cm, params);
        chat_messages_free(&cm);
        return res;
    }
    char err[256];
    herd_guard_params gp = herd_guard_default_params();
    const char **ex;
    if (!excluded_of(params, &ex, &gp.n_exclude, err, sizeof err)) {
        chat_messages_free(&cm);
        return http_send_error(r, 400, "invalid_request_error", "params", NULL, "%s", err);
    }
    gp.exclude = ex;
    herd_guard_result g;
    int rc = shield_run(s, cm.msgs, cm.n, &gp, &g);
    free(ex);
    chat_messages_free(&cm);
    if (rc != HERD_OK)
        return http_send_error(r, 400, "invalid_request_error", "messages", rc == HERD_E_RANGE ? "context_length_exceeded" : NULL,
                               "%s", herd_last_error());
    json_t *out = json_pack("{s:o}", "violation", shield_violation_json(&g));
    herd_guard_result_free(&g);
    return http_send_json(r, 200, out);
}

#define MODERATION_MAX_INPUTS 32

enum MHD_Result route_moderations(http_req *r, json_t *b) {
    server *s = r->srv;
    json_t *input = json_object_get(b, "input"), *model = json_object_get(b, "model");
    if (!s->cfg.guard)
        return http_send_error(r, 404, "invalid_request_error", "model", "model_not_found",
                               "this server has no moderation model (herd serve --guard-model)");
    if (model && !json_is_null(model) && (!json_is_string(model) || strcmp(json_string_value(model), s->cfg.guard_id)))
        return http_send_error(r, 404, "invalid_request_error", "model", "model_not_found",
                               "the moderation model is '%s'", s->cfg.guard_id);
    size_t n = json_is_string(input) ? 1 : json_is_array(input) ? json_array_size(input) : 0;
    if (n == 0)
        return http_send_error(r, 400, "invalid_request_error", "input", NULL,
                               "'input' must be a non-empty string or a non-empty array of strings");
    if (n > MODERATION_MAX_INPUTS)
        return http_send_error(r, 400, "invalid_request_error", "input", NULL, "at most %d inputs per request, got %zu",
                               MODERATION_MAX_INPUTS, n);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_is_string(input) ? input : json_array_get(input, i);
        if (!json_is_string(t) || json_string_length(t) == 0)
            return http_send_error(r, 400, "invalid_request_error", "input", NULL,
                                   "input[%zu] must be a non-empty string (only text is moderated)", i);
    }
    json_t *results = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_is_string(input) ? input : json_array_get(input, i);
        herd_chat_message m = {.role = "user", .content = json_string_value(t)};
        herd_guard_result g;
        if (shield_run(s, &m, 1, NULL, &g) != HERD_OK) {
            json_decref(results);
            return http_send_error(r, 400, "invalid_request_error", "input", NULL, "input[%zu]: %s", i, herd_last_error());
        }
        json_t *cats = json_object(), *scores = json_object(), *types = json_object(), *codes = json_array();
        for (size_t k = 0; k < sizeof k_openai_map / sizeof k_openai_map[0]; k++) {
            bool hit = false;
            for (int c = 0; c < g.n_categories; c++) hit |= list_has(k_openai_map[k].codes, g.categories[c]);
            json_object_set_new(cats, k_openai_map[k].openai, json_boolean(hit));
            json_object_set_new(scores, k_openai_map[k].openai, json_real(hit ? 1.0 : 0.0));
            json_object_set_new(types, k_openai_map[k].openai, hit ? json_pack("[s]", "text") : json_array());
        }
        for (int c = 0; c < g.n_categories; c++) json_array_append_new(codes, json_string(g.categories[c]));
        json_t *res = json_pack("{s:b,s:o,s:o,s:o,s:{s:o,s:f}}", "flagged", g.unsafe, "categories", cats,
                                "category_scores", scores, "category_applied_input_types", types, "metadata",
                                "violation_type", codes, "p_unsafe", g.p_unsafe);
        if (g.unsafe) json_object_set_new(res, "user_message", json_string(k_shield_refusal));
        json_array_append_new(results, res);
        herd_guard_result_free(&g);
    }
    char id[40];
    static _Atomic unsigned long long k_mod_seq;
    snprintf(id, sizeof id, "modr-%llx-%llu", (unsigned long long)(http_now() * 1e6), ++k_mod_seq);
    return http_send_json(r, 200, json_pack("{s:s,s:s,s:o}", "id", id, "model", s->cfg.guard_id, "results", results));
}

/* ---- shields around chat completions (--shields input,output) ---------------------------------- */

void shield_answer_text(const herd_parsed_output *po, strbuf *out) {
    strbuf_put(out, po->content ? po->content : "", po->content_len);
    for (int i = 0; i < po->n_calls; i++) {
        if (out->n) strbuf_puts(out, "\n");
        json_t *name = json_string(po->calls[i].name);
        char *n = json_dumps(name, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(name);
        strbuf_puts(out, "{\"name\": ");
        strbuf_puts(out, n);
        strbuf_puts(out, ", \"parameters\": ");
        strbuf_puts(out, po->calls[i].arguments && *po->calls[i].arguments ? po->calls[i].arguments : "{}");
        strbuf_puts(out, "}");
        free(n);
    }
}

int shield_check(server *s, const herd_chat_message *msgs, size_t n, const char *answer, size_t answer_len,
                 herd_guard_result *out, bool *ran) {
    *ran = false;
    memset(out, 0, sizeof *out);
    /* the user and assistant turns with text (system prompts, tool calls and results are not assessed) */
    herd_chat_message *conv = herd_xcalloc(n + 1, sizeof *conv);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (msgs[i].content && !msgs[i].tool_name && (!strcmp(msgs[i].role, "user") || !strcmp(msgs[i].role, "assistant")))
            conv[k++] = msgs[i];
    char *a = NULL;
    if (answer) {
        a = herd_xstrndup(answer, answer_len);
        conv[k++] = (herd_chat_message){.role = "assistant", .content = a};
    }
    int rc = HERD_OK;
    /* input: only when the conversation ends with the user's turn; output: on the answer */
    if (k > 0 && (answer || !strcmp(conv[k - 1].role, "user"))) {
        rc = shield_run(s, conv, k, NULL, out);
        *ran = rc == HERD_OK;
    }
    free(a);
    free(conv);
    return rc;
}

json_t *shield_violation_for(const herd_guard_result *g, const char *which) {
    json_t *v = shield_violation_json(g);
    if (json_is_object(v)) json_object_set_new(json_object_get(v, "metadata"), "shield", json_string(which));
    return v;
}
