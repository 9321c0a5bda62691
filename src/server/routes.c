/* Routes: OpenAI chat completions, completions, embeddings, models (whose shapes the Llama Stack
 * client uses too; /v1/models/{id} answers both clients' fields). Validation errors are 400 with an
 * OpenAI error object naming the parameter; an unknown model is 404; a full queue 429. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "../chat/messages.h"
#include "../chat/toolcall.h"
#include "ctx_policy.h"
#include "http.h"
#include "shields.h"

/* ---- request options ----------------------------------------------------------------------- */

typedef struct {
    herd_sampler_params sp;
    int64_t max_tokens;  /* -1: until the end of generation or the context */
    char **stop;
    int n_stop;
    bool stream, include_usage, echo;
    int top_logprobs;    /* -1: no logprobs */
    herd_constraint *con; /* response_format / tool_choice constraint, or NULL */
    int lora;            /* the request's "model": 0 the base, i > 0 the server's adapter i - 1 */
    chat_messages *shield_conv; /* --shields output: the conversation the answer is assessed in (owned) */
    json_t *echo_lps;    /* completions, echo + logprobs: the prompt's logprobs (prompt_logprobs.c), owned */
    int64_t n_dropped;   /* context policy shift: messages left out (ctx_policy.h) */
    engine_shift_prompt *shift; /* ... and the prompts a shift mid-reply takes (ctx_policy_shift_prompts), owned */
    int n_shift;
    json_t *extra;       /* herd's fields of the answer (file_search_call: file_search.c), owned, or NULL */
} gen_opts;

static void gen_opts_free(gen_opts *o) {
    for (int i = 0; i < o->n_shift; i++) free(o->shift[i].ids);
    free(o->shift);
    o->shift = NULL;
    o->n_shift = 0;
    json_decref(o->extra);
    o->extra = NULL;
    json_decref(o->echo_lps);
    o->echo_lps = NULL;
    if (o->shield_conv) chat_messages_free(o->shield_conv);
    free(o->shield_conv);
    o->shield_conv = NULL;
    herd_constraint_free(o->con);
    o->con = NULL;
    for (int i = 0; i < o->n_stop; i++) free(o->stop[i]);
    free(o->stop);
    o->stop = NULL;
    o->n_stop = 0;
}

/* Each check writes a message into err and returns false. */
#define ERRBUF 512

static bool get_num(json_t *b, const char *key, double lo, double hi, double *out, char *err) {
    json_t *v = json_object_get(b, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) {
        snprintf(err, ERRBUF, "'%s' must be a number", key);
        return false;
    }
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) {
        snprintf(err, ERRBUF, "'%s' must be between %g and %g, got %g", key, lo, hi, x);
        return false;
    }
    *out = x;
    return true;
}

static bool get_int(json_t *b, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err) {
    json_t *v = json_object_get(b, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v)) {
        snprintf(err, ERRBUF, "'%s' must be an integer", key);
        return false;
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        snprintf(err, ERRBUF, "'%s' must be between %lld and %lld, got %lld", key, (long long)lo, (long long)hi,
                 (long long)x);
        return false;
    }
    *out = x;
    return true;
}

static bool get_bool(json_t *b, const char *key, bool *out, char *err) {
    json_t *v = json_object_get(b, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) {
        snprintf(err, ERRBUF, "'%s' must be true or false", key);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

/* Options shared by chat and text completions. `param` receives the offending parameter. */
static bool parse_gen_opts(server *s, json_t *b, bool chat, gen_opts *o, char *err, const char **param) {
    memset(o, 0, sizeof *o);
    o->sp = herd_sampler_default_params();
    /* OpenAI's defaults: temperature 1, top_p 1, no top-k / min-p / repetition penalty */
    o->sp.temp = 1.0f;
    o->sp.top_p = 1.0f;
    o->sp.top_k = 0;
    o->sp.min_p = 0.0f;
    o->sp.repeat_penalty = 1.0f;
    o->sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)o << 16);
    o->max_tokens = chat ? -1 : 16; /* the legacy completions endpoint defaults to 16 */
    o->top_logprobs = -1;
    double x;
    int64_t k;
#define NUM(key, lo, hi, dst)                                                                                  \
    x = NAN;                                                                                                   \
    if (!get_num(b, key, lo, hi, &x, err)) return *param = key, false;                                       \
    if (!isnan(x)) dst = (float)x;
    NUM("temperature", 0, 2, o->sp.temp)
    NUM("top_p", 0, 1, o->sp.top_p)
    NUM("min_p", 0, 1, o->sp.min_p)
    NUM("repeat_penalty", 0.01, 100, o->sp.repeat_penalty)
#undef NUM
    k = -1;
    if (!get_int(b, "top_k", 0, INT32_MAX, &k, err)) return *param = "top_k", false;
    if (k >= 0) o->sp.top_k = (int32_t)k;
    const char *pen[2] = {"presence_penalty", "frequency_penalty"};
    for (int i = 0; i < 2; i++) {
        x = 0;
        if (!get_num(b, pen[i], -2, 2, &x, err)) return *param = pen[i], false;
        if (x != 0) {
            snprintf(err, ERRBUF, "'%s' is not supported (only 0); use 'repeat_penalty'", pen[i]);
            return *param = pen[i], false;
        }
    }
    k = INT64_MIN;
    if (!get_int(b, "seed", INT64_MIN + 1, INT64_MAX, &k, err)) return *param = "seed", false;
    if (k != INT64_MIN) o->sp.seed = (uint64_t)k;
    const char *mt[2] = {"max_tokens", "max_completion_tokens"};
    for (int i = 0; i < 2; i++) {
        k = INT64_MIN;
        if (!get_int(b, mt[i], 1, INT32_MAX, &k, err)) return *param = mt[i], false;
        if (k != INT64_MIN) {
            if (k > s->cfg.n_ctx_slot) {
                snprintf(err, ERRBUF, "'%s' is %lld but the context holds %lld tokens in all", mt[i], (long long)k,
                         (long long)s->cfg.n_ctx_slot);
                return *param = mt[i], false;
            }
            o->max_tokens = k;
        }
    }
    k = 1;
    if (!get_int(b, "n", 1, 128, &k, err)) return *param = "n", false;
    if (k != 1) {
        snprintf(err, ERRBUF, "'n' must be 1 (one choice per request)");
        return *param = "n", false;
    }
    if (!get_bool(b, "stream", &o->stream, err)) return *param = "stream", false;
    json_t *so = json_object_get(b, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) {
            snprintf(err, ERRBUF, "'stream_options' must be an object");
            return *param = "stream_options", false;
        }
        if (!get_bool(so, "include_usage", &o->include_usage, err)) return *param = "stream_options", false;
    }
    json_t *stop = json_object_get(b, "stop");
    if (stop && !json_is_null(stop)) {
        size_t n = json_is_string(stop) ? 1 : json_is_array(stop) ? json_array_size(stop) : 0;
        if (!json_is_string(stop) && !json_is_array(stop)) {
            snprintf(err, ERRBUF, "'stop' must be a string or an array of strings");
            return *param = "stop", false;
        }
        if (n > 16) {
            snprintf(err, ERRBUF, "'stop' holds %zu strings; at most 16", n);
            return *param = "stop", false;
        }
        o->stop = herd_xcalloc(n ? n : 1, sizeof *o->stop);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_is_string(stop) ? stop : json_array_get(stop, i);
            if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > 1024) {
                snprintf(err, ERRBUF, "'stop' entries must be non-empty strings of at most 1024 bytes");
                return *param = "stop", false;
            }
            o->stop[o->n_stop++] = herd_xstrndup(json_string_value(e), json_string_length(e));
        }
    }
    json_t *lp = json_object_get(b, "logprobs");
    if (chat) {
        bool want = false;
        if (!get_bool(b, "logprobs", &want, err)) return *param = "logprobs", false;
        k = 0;
        if (!get_int(b, "top_logprobs", 0, ENGINE_MAX_TOP, &k, err)) return *param = "top_logprobs", false;
        if (json_object_get(b, "top_logprobs") && !json_is_null(json_object_get(b, "top_logprobs")) && !want) {
            snprintf(err, ERRBUF, "'top_logprobs' needs 'logprobs': true");
            return *param = "top_logprobs", false;
        }
        if (want) o->top_logprobs = (int)k;
    } else if (lp && !json_is_null(lp)) {
        k = -1;
        if (!get_int(b, "logprobs", 0, 5, &k, err)) return *param = "logprobs", false;
        o->top_logprobs = (int)k;
    }
    if (!chat && !get_bool(b, "echo", &o->echo, err)) return *param = "echo", false;
    /* response_format: text, json_object (any JSON object), json_schema {name, schema, strict} */
    json_t *rf = json_object_get(b, "response_format");
    if (rf && !json_is_null(rf)) {
        json_t *t = json_object_get(rf, "type");
        const char *ty = json_is_string(t) ? json_string_value(t) : "";
        if (!strcmp(ty, "json_object")) {
            if (herd_constraint_json_schema(engine_model(s->e), NULL, &o->con) != HERD_OK) {
                snprintf(err, ERRBUF, "%s", herd_last_error());
                return *param = "response_format", false;
            }
        } else if (!strcmp(ty, "json_schema")) {
            json_t *js = json_object_get(rf, "json_schema"), *sch = json_object_get(js, "schema");
            if (!json_is_object(js) || (sch && !json_is_object(sch) && !json_is_boolean(sch))) {
                snprintf(err, ERRBUF, "'response_format' json_schema must be {\"name\": ..., \"schema\": {...}}");
                return *param = "response_format", false;
            }
            char *st = sch ? json_dumps(sch, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            int rc = herd_constraint_json_schema(engine_model(s->e), st, &o->con);
            free(st);
            if (rc != HERD_OK) {
                snprintf(err, ERRBUF, "response_format: %s", herd_last_error());
                return *param = "response_format", false;
            }
        } else if (strcmp(ty, "text") != 0) {
            snprintf(err, ERRBUF, "'response_format' type must be \"text\", \"json_object\" or \"json_schema\"");
            return *param = "response_format", false;
        }
    }
    json_t *lb = json_object_get(b, "logit_bias");
    if (lb && !json_is_null(lb) && !(json_is_object(lb) && json_object_size(lb) == 0)) {
        snprintf(err, ERRBUF, "'logit_bias' is not supported");
        return *param = "logit_bias", false;
    }
    return true;
}

/* ---- shared pieces -------------------------------------------------------------------------- */

static const herd_model *model_of(http_req *r) {
    return engine_model(r->srv->e);
}

/* The name clients use for model i: 0 the base, i > 0 the adapter i - 1 (herd serve --lora). */
static const char *model_name(const server *s, int i) {
    return i == 0 ? s->model_id : s->cfg.lora_ids[i - 1];
}

/* -1 when no model of the server has that name */
static int model_index(const server *s, const char *name) {
    for (int i = 0; i <= s->cfg.n_loras; i++)
        if (!strcmp(name, model_name(s, i))) return i;
    return -1;
}

/* The names this server has, for errors: "'base', 'adapter-a'" (truncated past ERRBUF) */
static void model_names(const server *s, char *out, size_t cap) {
    size_t n = 0;
    out[0] = 0;
    for (int i = 0; i <= s->cfg.n_loras && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s'%s'", i ? ", " : "", model_name(s, i));
}

/* OUT: *lora, the model the request names (0: the base, also when "model" is absent). */
static enum MHD_Result check_model(http_req *r, json_t *b, bool *ok, int *lora) {
    json_t *m = json_object_get(b, "model");
    *ok = true;
    *lora = 0;
    if (!m || json_is_null(m)) return MHD_YES;
    if (!json_is_string(m)) {
        *ok = false;
        return http_send_error(r, 400, "invalid_request_error", "model", NULL, "'model' must be a string");
    }
    *lora = model_index(r->srv, json_string_value(m));
    if (*lora < 0) {
        char names[ERRBUF];
        model_names(r->srv, names, sizeof names);
        *ok = false;
        return http_send_error(r, 404, "invalid_request_error", "model", "model_not_found",
                               "the model '%.200s' does not exist; this server has %s", json_string_value(m), names);
    }
    return MHD_YES;
}

/* Maps an engine_submit failure to a status. */
static enum MHD_Result submit_error(http_req *r, int rc) {
    const char *msg = herd_last_error();
    if (!strncmp(msg, "queue full", 10)) return http_send_error(r, 429, "rate_limit_error", NULL, "queue_full", "%s", msg);
    if (!strncmp(msg, "shutting down", 13)) return http_send_error(r, 503, "unavailable", NULL, "shutting_down", "%s", msg);
    if (rc == HERD_E_RANGE)
        return http_send_error(r, 400, "invalid_request_error", "messages", "context_length_exceeded", "%s", msg);
    return http_send_error(r, 400, "invalid_request_error", NULL, NULL, "%s", msg);
}

static void random_id(char *out, size_t cap, const char *prefix) {
    static _Atomic uint64_t counter;
    uint64_t x = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (counter++ * 0xbf58476d1ce4e5b9ull);
    x ^= x >> 31;
    snprintf(out, cap, "%s%016llx", prefix, (unsigned long long)x);
}

/* A JSON string for bytes that may not be valid UTF-8 (a token can split a character). */
static json_t *jstr(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    return j ? j : json_string("\xef\xbf\xbd");
}

static json_t *token_bytes(const char *s, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

static size_t piece_of(const herd_model *m, int32_t id, char *buf, size_t cap) {
    int64_t k = herd_token_to_piece(m, id, false, buf, cap);
    return k < 0 ? 0 : (size_t)k < cap ? (size_t)k : cap;
}

/* OpenAI chat logprobs entry for one token. */
static json_t *chat_logprob_entry(const herd_model *m, const engine_event *ev) {
    char buf[256];
    size_t n = piece_of(m, ev->token, buf, sizeof buf);
    json_t *tops = json_array();
    for (int i = 0; i < ev->n_top; i++) {
        char tb[256];
        size_t tn = piece_of(m, ev->top[i].id, tb, sizeof tb);
        json_array_append_new(tops, json_pack("{s:o, s:f, s:o}", "token", jstr(tb, tn), "logprob",
                                              (double)ev->top[i].logprob, "bytes", token_bytes(tb, tn)));
    }
    return json_pack("{s:o, s:f, s:o, s:o}", "token", jstr(buf, n), "logprob", (double)ev->logprob, "bytes",
                     token_bytes(buf, n), "top_logprobs", tops);
}

static const char *finish_name(int f) {
    return f == ENGINE_FINISH_LENGTH || f == ENGINE_FINISH_CONTEXT ? "length" : "stop"; /* see ctx_policy.h */
}

static json_t *usage_json(int64_t prompt, int64_t cached, int64_t gen) {
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
                     (json_int_t)gen, "total_tokens", (json_int_t)(prompt + gen), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)cached);
}

/* Legacy completions logprobs: {tokens, token_logprobs, top_logprobs: [{token: lp}], text_offset}. */
static json_t *legacy_logprobs_new(void) {
    return json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

static void legacy_logprobs_add(json_t *lp, const herd_model *m, const engine_event *ev, size_t offset) {
    char buf[256];
    size_t n = piece_of(m, ev->token, buf, sizeof buf);
    json_array_append_new(json_object_get(lp, "tokens"), jstr(buf, n));
    json_array_append_new(json_object_get(lp, "token_logprobs"), json_real(ev->logprob));
    json_t *top = json_object();
    for (int i = 0; i < ev->n_top; i++) {
        char tb[256];
        size_t tn = piece_of(m, ev->top[i].id, tb, sizeof tb);
        json_t *k = jstr(tb, tn);
        json_object_set_new(top, json_string_value(k), json_real(ev->top[i].logprob));
        json_decref(k);
    }
    json_array_append_new(json_object_get(lp, "top_logprobs"), top);
    json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)offset));
}

/* ---- generation, streamed or not ------------------------------------------------------------- */

typedef struct {
    server *srv;
    engine_req *er;
    int fd;
    bool chat, include_usage, started, finished;
    int top_logprobs;
    char id[48];
    long created;
    double t_submit, t_last;
    int64_t n_tokens;
    size_t text_offset;  /* bytes of text sent so far (legacy logprobs offsets) */
    const herd_model *m;
    char *echo;          /* completions with echo: the prompt text, sent first */
    json_t *echo_lps;    /* and its logprobs (echo + logprobs), sent with it */
    bool tools;          /* parse tool calls out of the reply */
    tool_stream ts;
    struct agent *ag;    /* --exec-builtin-tools: runs built-in calls and continues; NULL: off */
    int lora;            /* the model the request named (gen_opts.lora) */
    int64_t n_prompt, n_cached, n_gen; /* usage of the steps before the current one */
    chat_messages *shield_conv; /* --shields output: held text is released once the answer passes */
    strbuf held;
    int64_t n_dropped;   /* gen_opts.n_dropped */
    json_t *extra;       /* gen_opts.extra: on the answer, or on the first chunk */
} gen_stream;

static void sse(strbuf *out, json_t *obj) {
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    strbuf_puts(out, "data: ");
    strbuf_puts(out, s);
    strbuf_puts(out, "\n\n");
    free(s);
}

static json_t *chunk(gen_stream *g, json_t *delta_or_text, json_t *logprobs, const char *finish) {
    json_t *choice = g->chat ? json_pack("{s:i, s:o, s:o, s:o}", "index", 0, "delta", delta_or_text, "logprobs",
                                         logprobs ? logprobs : json_null(), "finish_reason",
                                         finish ? json_string(finish) : json_null())
                             : json_pack("{s:i, s:o, s:o, s:o}", "index", 0, "text", delta_or_text, "logprobs",
                                         logprobs ? logprobs : json_null(), "finish_reason",
                                         finish ? json_string(finish) : json_null());
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o]}", "id", g->id, "object",
                     g->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)g->created, "model",
                     model_name(g->srv, g->lora), "system_fingerprint", "herd", "choices", choice);
}

static void note_token(gen_stream *g) {
    double now = http_now();
    if (g->n_tokens == 0) metrics_ttft(&g->srv->met, now - g->t_submit);
    else metrics_token_latency(&g->srv->met, now - g->t_last);
    g->t_last = now;
    g->n_tokens++;
}

/* OpenAI tool_calls array for parsed calls; stream: with "index" on each. */
static json_t *tool_calls_json(const herd_parsed_output *o, bool stream) {
    json_t *a = json_array();
    for (int i = 0; i < o->n_calls; i++) {
        char id[40];
        random_id(id, sizeof id, "call_");
        json_t *c = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function", "function", "name",
                              o->calls[i].name, "arguments", o->calls[i].arguments);
        if (stream) json_object_set_new(c, "index", json_integer(i));
        json_array_append_new(a, c);
    }
    return a;
}

/* ---- built-in tools run by the server (herd serve --exec-builtin-tools) ------------------------ */

/* What a chat request needs to continue after the server ran a tool: the conversation (growing by
 * the call and its ipython result each step), how to render it, and the generation options again
 * (the engine took the first copies). */
typedef struct agent {
    chat_messages cm;
    char *tools_text;                /* custom tools (JSON array) or NULL */
    const char *builtin[3];          /* the request's built-in tools, rendered in the system block */
    int n_builtin;
    herd_sampler_params sp;
    int64_t max_tokens;              /* for the whole reply, all steps together; -1: unbounded */
    char **stop;
    int n_stop;
    int top_logprobs;
    int lora;
    int steps;
    json_t *executed;                /* [{"name", "arguments", "result"}] */
} agent;

static const char *const k_builtin_names[] = {"brave_search", "wolfram_alpha", "code_interpreter"};

static bool is_builtin_name(const char *name) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, k_builtin_names[i])) return true;
    return false;
}

static void agent_free(agent *a) {
    if (!a) return;
    chat_messages_free(&a->cm);
    free(a->tools_text);
    for (int i = 0; i < a->n_stop; i++) free(a->stop[i]);
    free(a->stop);
    json_decref(a->executed);
    free(a);
}

/* Submits a prompt to the engine; the test-only scripted model forces the next scripted output. */
static int submit_prompt(server *srv, const herd_model *m, engine_params *p, engine_req **er) {
    if (srv->cfg.n_script > 0) {
        int k = atomic_fetch_add(&srv->script_next, 1) % srv->cfg.n_script;
        const char *sc = srv->cfg.script[k];
        if (herd_tokenize(m, sc, strlen(sc), HERD_TOKENIZE_PARSE_SPECIAL, &p->forced, &p->n_forced) != HERD_OK) {
            free(p->prompt);
            herd_constraint_free(p->constraint);
            for (int i = 0; i < p->n_stop; i++) free(p->stop[i]);
            free(p->stop);
            return herd_err(HERD_E_ARG, "script: %s", herd_last_error());
        }
    }
    return engine_submit(srv->e, p, er);
}

static bool server_runs(const server *srv, const char *name) {
    for (int i = 0; i < srv->cfg.n_exec_tools; i++)
        if (!strcmp(srv->cfg.exec_tools[i], name)) return true;
    return false;
}

/* The generation that just ended (usage ev) produced calls po. If it is one call of a built-in tool
 * that the request declared and the server runs, and steps and tokens are left: runs it, adds the
 * call and its result to the conversation, and submits the continuation in place of g->er. True
 * then; false leaves everything as it was (the calls go back to the client). */
static bool agent_step(gen_stream *g, const herd_parsed_output *po, const engine_event *ev) {
    agent *a = g->ag;
    server *srv = g->srv;
    if (!a || po->n_calls != 1 || a->steps >= srv->cfg.max_tool_steps) return false;
    const herd_tool_call *c = &po->calls[0];
    bool declared = false;
    for (int i = 0; i < a->n_builtin; i++) declared |= !strcmp(a->builtin[i], c->name);
    int64_t used = g->n_gen + ev->n_gen;
    if (!declared || !server_runs(srv, c->name) || (a->max_tokens >= 0 && used >= a->max_tokens)) return false;
    char *result = NULL;
    if (herd_builtin_tool_run_ex(c->name, c->arguments, &srv->cfg.tool_params, &result) != HERD_OK) {
        /* arguments the tool cannot use: the model is told, as it would be by a failing tool */
        json_t *e = json_pack("{s:s}", "error", herd_last_error());
        result = json_dumps(e, JSON_COMPACT);
        json_decref(e);
    }
    a->steps++;
    json_array_append_new(a->executed, json_pack("{s:s, s:s, s:s}", "name", c->name, "arguments", c->arguments,
                                                 "result", result));
    chat_messages_push(&a->cm, "assistant", NULL, c->name, c->arguments);
    chat_messages_push(&a->cm, "ipython", result, NULL, NULL);
    free(result);
    herd_chat_params cp = {.add_generation_prompt = true, .tools_json = a->tools_text, .builtin_tools = a->builtin,
                           .n_builtin_tools = a->n_builtin};
    engine_params p = {.sampling = a->sp, .max_tokens = a->max_tokens < 0 ? -1 : a->max_tokens - used,
                       .top_logprobs = a->top_logprobs, .render_python_tag = true, .lora = a->lora};
    if (herd_chat_tokenize(g->m, a->cm.msgs, a->cm.n, &cp, &p.prompt, &p.n_prompt) != HERD_OK) return false;
    if (a->n_stop) {
        p.stop = herd_xcalloc((size_t)a->n_stop, sizeof *p.stop);
        for (int i = 0; i < a->n_stop; i++) p.stop[i] = herd_xstrndup(a->stop[i], strlen(a->stop[i]));
        p.n_stop = a->n_stop;
    }
    engine_req *er;
    if (submit_prompt(srv, g->m, &p, &er) != HERD_OK) { /* queue full or shutting down: stop here */
        herd_log(1, "serve: a tool step could not continue: %s", herd_last_error());
        return false;
    }
    engine_release(g->er);
    g->er = er;
    g->n_prompt += ev->n_prompt;
    g->n_cached += ev->n_cached;
    g->n_gen += ev->n_gen;
    tool_stream_free(&g->ts);
    tool_stream_init(&g->ts);
    return true;
}

/* SSE producer: one engine event per call (plus the opening chunk). */
static int stream_fill(void *user, strbuf *out) {
    gen_stream *g = user;
    if (g->finished) return -1;
    if (!g->started) {
        g->started = true;
        if (g->chat) {
            json_t *first = chunk(g, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, NULL);
            if (g->extra) json_object_update(first, g->extra);
            sse(out, first);
        }
        else if (g->echo) {
            sse(out, chunk(g, jstr(g->echo, strlen(g->echo)), g->echo_lps, NULL));
            g->echo_lps = NULL;
            g->text_offset = strlen(g->echo);
        }
        if (out->n) return 0;
    }
    engine_event ev;
    if (!http_wait_event(g->fd, g->er, &ev)) return 0; /* client gone: nothing to add ends the stream */
    if (ev.kind == ENGINE_EV_TOKEN) {
        if (ev.token >= 0) note_token(g);
        json_t *lp = NULL;
        if (g->top_logprobs >= 0 && ev.token >= 0) {
            if (g->chat) lp = json_pack("{s:[o]}", "content", chat_logprob_entry(g->m, &ev));
            else {
                lp = legacy_logprobs_new();
                legacy_logprobs_add(lp, g->m, &ev, g->text_offset);
            }
        }
        g->text_offset += ev.text_len;
        const char *txt = ev.text ? ev.text : "";
        size_t tlen = ev.text_len;
        if (g->tools) { /* only what cannot be part of a tool call goes out as content */
            size_t from;
            tlen = tool_stream_feed(&g->ts, txt, tlen, &from);
            txt = g->ts.buf.p + from;
        }
        if (g->shield_conv) { /* the output shield: nothing goes out before the verdict */
            strbuf_put(&g->held, txt, tlen);
            json_decref(lp);
            lp = NULL;
            tlen = 0;
        }
        if (tlen > 0 || lp) {
            json_t *content = jstr(txt, tlen);
            sse(out, chunk(g, g->chat ? json_pack("{s:o}", "content", content) : content, lp, NULL));
        }
        engine_event_clear(&ev);
        if (out->n == 0) strbuf_puts(out, ": \n\n"); /* held-back text: keep the stream alive */
        return 0;
    }
    g->finished = true;
    if (ev.kind == ENGINE_EV_ERROR) {
        sse(out, json_pack("{s:{s:s, s:s}}", "error", "message", ev.error, "type", "server_error"));
    } else {
        metrics_tokens(&g->srv->met, ev.n_prompt, ev.n_gen);
        const char *finish = finish_name(ev.finish);
        herd_parsed_output po = {0};
        if (g->tools) tool_stream_finish(&g->ts, &po);
        /* the output shield first: the held text, and any call, go out (or run) only when it passes */
        json_t *violation = NULL;
        if (g->shield_conv) {
            herd_guard_result gr;
            bool ran;
            strbuf assessed = {0};
            strbuf_put(&assessed, g->held.p ? g->held.p : "", g->held.n);
            if (g->tools) shield_answer_text(&po, &assessed);
            int src = shield_check(g->srv, g->shield_conv->msgs, g->shield_conv->n, assessed.p ? assessed.p : "",
                                   assessed.n, &gr, &ran);
            free(assessed.p);
            if (src != HERD_OK) {
                herd_parsed_output_free(&po);
                sse(out, json_pack("{s:{s:s, s:s}}", "error", "message", herd_last_error(), "type", "server_error"));
                strbuf_puts(out, "data: [DONE]\n\n");
                engine_event_clear(&ev);
                return 0;
            }
            bool bad = ran && gr.unsafe;
            const char *txt = bad ? k_shield_refusal : g->held.p ? g->held.p : "";
            size_t tlen = bad ? strlen(txt) : g->held.n;
            if (tlen > 0 || !g->tools)
                sse(out, chunk(g, json_pack("{s:o}", "content", jstr(txt, tlen)), NULL, NULL));
            g->held.n = 0; /* a tool step that continues holds its own text */
            if (bad) {
                finish = "content_filter";
                violation = shield_violation_for(&gr, "output");
            }
            if (ran) herd_guard_result_free(&gr);
        }
        if (g->tools && !violation) {
            if (po.content_len > 0 && g->ag && po.n_calls == 1) { /* text before a call the server may run */
                sse(out, chunk(g, json_pack("{s:o}", "content", jstr(po.content, po.content_len)), NULL, NULL));
                po.content_len = 0;
            }
            if (agent_step(g, &po, &ev)) {
                /* the call ran: say so in a herd-specific delta field (clients ignore it), continue */
                json_t *x = json_array_get(g->ag->executed, json_array_size(g->ag->executed) - 1);
                sse(out, chunk(g, json_pack("{s:O}", "executed_tool_call", x), NULL, NULL));
                herd_parsed_output_free(&po);
                engine_event_clear(&ev);
                g->finished = false;
                return 0;
            }
            if (po.n_calls > 0) {
                sse(out, chunk(g, json_pack("{s:o}", "tool_calls", tool_calls_json(&po, true)), NULL, NULL));
                finish = "tool_calls";
            } else if (po.content_len > 0) {
                sse(out, chunk(g, json_pack("{s:o}", "content", jstr(po.content, po.content_len)), NULL, NULL));
            }
        }
        herd_parsed_output_free(&po);
        json_t *last = chunk(g, g->chat ? json_object() : json_string(""), NULL, finish);
        if (violation) json_object_set_new(last, "violation", violation);
        ctx_policy_mark(json_array_get(json_object_get(last, "choices"), 0), ev.finish);
        if (g->n_dropped + ev.n_dropped)
            json_object_set_new(last, "dropped_messages", json_integer((json_int_t)(g->n_dropped + ev.n_dropped)));
        sse(out, last);
        if (g->include_usage) {
            json_t *u = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[], s:o}", "id", g->id, "object",
                                  g->chat ? "chat.completion.chunk" : "text_completion", "created",
                                  (json_int_t)g->created, "model", model_name(g->srv, g->lora), "system_fingerprint", "herd",
                                  "choices", "usage",
                                  usage_json(g->n_prompt + ev.n_prompt, g->n_cached + ev.n_cached, g->n_gen + ev.n_gen));
            sse(out, u);
        }
    }
    strbuf_puts(out, "data: [DONE]\n\n");
    engine_event_clear(&ev);
    return 0;
}

static void stream_done(void *user) {
    gen_stream *g = user;
    engine_release(g->er);
    tool_stream_free(&g->ts);
    agent_free(g->ag);
    free(g->echo);
    json_decref(g->echo_lps);
    json_decref(g->extra);
    if (g->shield_conv) chat_messages_free(g->shield_conv);
    free(g->shield_conv);
    strbuf_free(&g->held);
    free(g);
}

/* Submits the prompt and answers: SSE when streaming, else one JSON object when done. */
static enum MHD_Result generate(http_req *r, int32_t *ids, int64_t n, gen_opts *o, bool chat, const char *echo,
                                bool tools, agent *ag) {
    engine_params p = {.prompt = ids, .n_prompt = n, .sampling = o->sp, .max_tokens = o->max_tokens,
                       .stop = o->stop, .n_stop = o->n_stop, .top_logprobs = o->top_logprobs,
                       .render_python_tag = tools, .constraint = o->con, .lora = o->lora,
                       .shift = o->shift, .n_shift = o->n_shift};
    o->shift = NULL; /* moved into the engine */
    o->n_shift = 0;
    o->stop = NULL;
    o->n_stop = 0;
    o->con = NULL;
    if (ag) { /* the agent keeps its own copies of what the engine takes */
        ag->sp = p.sampling;
        ag->max_tokens = p.max_tokens;
        ag->top_logprobs = p.top_logprobs;
        ag->lora = o->lora;
        ag->n_stop = p.n_stop;
        ag->stop = herd_xcalloc((size_t)(p.n_stop ? p.n_stop : 1), sizeof *ag->stop);
        for (int i = 0; i < p.n_stop; i++) ag->stop[i] = herd_xstrndup(p.stop[i], strlen(p.stop[i]));
        ag->executed = json_array();
    }
    engine_req *er;
    double t0 = http_now();
    int rc = submit_prompt(r->srv, model_of(r), &p, &er);
    if (rc) {
        agent_free(ag);
        if (!strncmp(herd_last_error(), "script:", 7))
            return http_send_error(r, 500, "server_error", NULL, NULL, "%s", herd_last_error());
        return submit_error(r, rc);
    }
    gen_stream *g = herd_xcalloc(1, sizeof *g);
    g->srv = r->srv;
    g->er = er;
    g->fd = http_conn_fd(r);
    g->chat = chat;
    g->include_usage = o->include_usage;
    g->top_logprobs = o->top_logprobs;
    random_id(g->id, sizeof g->id, chat ? "chatcmpl-" : "cmpl-");
    g->created = (long)time(NULL);
    g->t_submit = t0;
    g->m = model_of(r);
    g->echo = echo ? herd_xstrndup(echo, strlen(echo)) : NULL;
    g->echo_lps = o->echo_lps;
    o->echo_lps = NULL;
    g->tools = tools;
    g->ag = ag;
    g->lora = o->lora;
    g->shield_conv = o->shield_conv;
    o->shield_conv = NULL;
    g->n_dropped = o->n_dropped;
    g->extra = o->extra;
    o->extra = NULL;
    tool_stream_init(&g->ts);
    if (o->stream) return http_send_stream(r, stream_fill, stream_done, g);

    /* non-streaming: collect everything, then one object */
    strbuf text = {0};
    strbuf_put(&text, "", 0);
    if (echo) strbuf_puts(&text, echo);
    json_t *lps = chat ? json_array() : g->echo_lps ? g->echo_lps : legacy_logprobs_new();
    g->echo_lps = NULL;
    engine_event ev;
    enum MHD_Result res;
    for (;;) {
        if (!http_wait_event(g->fd, er, &ev)) { /* the client left: nobody to answer */
            res = MHD_NO;
            break;
        }
        if (ev.kind == ENGINE_EV_TOKEN) {
            if (ev.token >= 0) note_token(g);
            if (o->top_logprobs >= 0 && ev.token >= 0) {
                if (chat) json_array_append_new(lps, chat_logprob_entry(g->m, &ev));
                else legacy_logprobs_add(lps, g->m, &ev, text.n);
            }
            strbuf_put(&text, ev.text ? ev.text : "", ev.text_len);
            engine_event_clear(&ev);
            continue;
        }
        if (ev.kind == ENGINE_EV_ERROR) {
            res = http_send_error(r, 500, "server_error", NULL, NULL, "%s", ev.error);
            engine_event_clear(&ev);
            break;
        }
        metrics_tokens(&r->srv->met, ev.n_prompt, ev.n_gen);
        /* the output shield first: a call it stops is neither run by the server nor returned */
        json_t *violation = NULL;
        if (g->shield_conv) {
            herd_guard_result gr;
            bool ran;
            strbuf assessed = {0};
            if (tools) {
                herd_parsed_output po;
                herd_parse_tool_calls(text.p, text.n, &po);
                shield_answer_text(&po, &assessed);
                herd_parsed_output_free(&po);
            } else {
                strbuf_put(&assessed, text.p, text.n);
            }
            int src = shield_check(r->srv, g->shield_conv->msgs, g->shield_conv->n, assessed.p ? assessed.p : "",
                                   assessed.n, &gr, &ran);
            free(assessed.p);
            if (src != HERD_OK) {
                engine_event_clear(&ev);
                res = http_send_error(r, 500, "server_error", NULL, NULL, "output shield: %s", herd_last_error());
                break;
            }
            if (ran && gr.unsafe) {
                text.n = 0;
                strbuf_puts(&text, k_shield_refusal);
                violation = shield_violation_for(&gr, "output");
            }
            if (ran) herd_guard_result_free(&gr);
        }
        if (tools && g->ag && !violation) {
            herd_parsed_output po;
            herd_parse_tool_calls(text.p, text.n, &po);
            bool ran = agent_step(g, &po, &ev);
            herd_parsed_output_free(&po);
            if (ran) { /* the answer is what the model says after the result */
                er = g->er;
                text.n = 0;
                strbuf_put(&text, "", 0);
                engine_event_clear(&ev);
                continue;
            }
        }
        json_t *lp = o->top_logprobs < 0 ? json_null() : chat ? json_pack("{s:o}", "content", lps) : lps;
        if (o->top_logprobs < 0) json_decref(lps);
        lps = NULL;
        const char *finish = violation ? "content_filter" : finish_name(ev.finish);
        json_t *message = json_pack("{s:s, s:o}", "role", "assistant", "content", jstr(text.p, text.n));
        if (tools && !violation) {
            herd_parsed_output po;
            herd_parse_tool_calls(text.p, text.n, &po);
            if (po.n_calls > 0) {
                json_object_set_new(message, "content", json_null());
                json_object_set_new(message, "tool_calls", tool_calls_json(&po, false));
                finish = "tool_calls";
            }
            herd_parsed_output_free(&po);
        }
        json_t *choice = chat ? json_pack("{s:i, s:o, s:o, s:s}", "index", 0, "message", message, "logprobs", lp,
                                          "finish_reason", finish)
                              : json_pack("{s:i, s:o, s:o, s:s}", "index", 0, "text", jstr(text.p, text.n), "logprobs",
                                          lp, "finish_reason", finish_name(ev.finish));
        if (!chat) json_decref(message);
        ctx_policy_mark(choice, ev.finish);
        json_t *resp = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o], s:o}", "id", g->id, "object",
                                 chat ? "chat.completion" : "text_completion", "created", (json_int_t)g->created,
                                 "model", model_name(r->srv, g->lora), "system_fingerprint", "herd", "choices", choice, "usage",
                                 usage_json(g->n_prompt + ev.n_prompt, g->n_cached + ev.n_cached, g->n_gen + ev.n_gen));
        if (violation) json_object_set_new(resp, "violation", violation);
        if (g->n_dropped + ev.n_dropped)
            json_object_set_new(resp, "dropped_messages", json_integer((json_int_t)(g->n_dropped + ev.n_dropped)));
        if (g->extra) json_object_update(resp, g->extra);
        if (g->ag && json_array_size(g->ag->executed)) /* herd extension: what the server ran */
            json_object_set(resp, "executed_tool_calls", g->ag->executed);
        engine_event_clear(&ev);
        res = http_send_json(r, 200, resp);
        break;
    }
    json_decref(lps);
    free(text.p);
    stream_done(g);
    return res;
}

/* ---- routes ----------------------------------------------------------------------------------- */

/* Validates OpenAI `tools` ([{"type": "function", "function": {"name", "description"?, "parameters"?}}]). */
static bool check_tools(json_t *tools, char *err) {
    if (!json_is_array(tools)) {
        snprintf(err, ERRBUF, "'tools' must be an array of {\"type\": \"function\", \"function\": {...}}");
        return false;
    }
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *type = json_object_get(t, "type"), *fn = json_object_get(t, "function");
        json_t *name = json_object_get(fn, "name"), *params = json_object_get(fn, "parameters");
        if (!json_is_string(type) || strcmp(json_string_value(type), "function") || !json_is_object(fn)) {
            snprintf(err, ERRBUF, "tools[%zu] must be {\"type\": \"function\", \"function\": {...}}", i);
            return false;
        }
        const char *nm = json_is_string(name) ? json_string_value(name) : "";
        size_t L = strlen(nm);
        bool ok = L > 0 && L <= 64;
        for (size_t k = 0; k < L && ok; k++)
            ok = (nm[k] >= 'a' && nm[k] <= 'z') || (nm[k] >= 'A' && nm[k] <= 'Z') || (nm[k] >= '0' && nm[k] <= '9') ||
                 nm[k] == '_' || nm[k] == '-';
        if (!ok) {
            snprintf(err, ERRBUF, "tools[%zu].function.name must be 1-64 letters, digits, _ or -", i);
            return false;
        }
        if (params && !json_is_null(params) && !json_is_object(params)) {
            snprintf(err, ERRBUF, "tools[%zu].function.parameters must be a JSON Schema object", i);
            return false;
        }
    }
    return true;
}

/* The JSON schema of a call as Llama 3.1's template asks for it, {"name": NAME, "parameters": {...}}:
 * of the tool named `want`, or (NULL) of any of them. NULL when `want` is not among the tools. */
static json_t *tool_call_schema(json_t *tools, const char *want) {
    json_t *any = json_array(), *defs = json_object(), *defs_old = json_object();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *fn = json_object_get(t, "function"), *params = json_object_get(fn, "parameters");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (want && strcmp(want, name)) continue;
        json_t *ps = params && json_is_object(params) ? json_deep_copy(params) : json_pack("{s:s}", "type", "object");
        /* "#/$defs/..." references in the parameters point at the root: move the definitions there */
        json_object_update(defs, json_object_get(ps, "$defs"));
        json_object_update(defs_old, json_object_get(ps, "definitions"));
        json_object_del(ps, "$defs");
        json_object_del(ps, "definitions");
        json_array_append_new(any, json_pack("{s:s, s:{s:{s:s}, s:o}, s:[s, s], s:b}", "type", "object", "properties",
                                             "name", "const", name, "parameters", ps, "required", "name",
                                             "parameters", "additionalProperties", 0));
    }
    json_t *out = NULL;
    if (json_array_size(any) == 1) out = json_incref(json_array_get(any, 0));
    else if (json_array_size(any) > 1) out = json_pack("{s:O}", "anyOf", any);
    if (out && json_object_size(defs)) json_object_set(out, "$defs", defs);
    if (out && json_object_size(defs_old)) json_object_set(out, "definitions", defs_old);
    json_decref(any);
    json_decref(defs);
    json_decref(defs_old);
    return out;
}

/* A request an input shield stopped: the refusal as the assistant's answer (Llama Stack's canned text),
 * finish_reason "content_filter", and the violation (herd extension field), streamed or not. */
static enum MHD_Result refuse(http_req *r, bool stream, int lora, json_t *violation) {
    /* the shield's own words: Llama Guard's canned text, or Prompt Guard's */
    json_t *um = json_object_get(violation, "user_message");
    const char *refusal = json_is_string(um) ? json_string_value(um) : k_shield_refusal;
    char id[48];
    random_id(id, sizeof id, "chatcmpl-");
    json_int_t created = (json_int_t)time(NULL);
    const char *model = model_name(r->srv, lora);
    if (!stream) {
        json_t *resp = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:{s:s, s:s}, s:n, s:s}], s:o, s:o}", "id", id,
                                 "object", "chat.completion", "created", created, "model", model, "system_fingerprint",
                                 "herd", "choices", "index", 0, "message", "role", "assistant", "content",
                                 refusal, "logprobs", "finish_reason", "content_filter", "usage",
                                 usage_json(0, 0, 0), "violation", violation);
        return http_send_json(r, 200, resp);
    }
    strbuf out = {0};
    sse(&out, json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:{s:s, s:s}, s:n, s:n}]}", "id", id, "object",
                        "chat.completion.chunk", "created", created, "model", model, "system_fingerprint", "herd",
                        "choices", "index", 0, "delta", "role", "assistant", "content", refusal, "logprobs",
                        "finish_reason"));
    sse(&out, json_pack("{s:s, s:s, s:I, s:s, s:s, s:[{s:i, s:{}, s:n, s:s}], s:o}", "id", id, "object",
                        "chat.completion.chunk", "created", created, "model", model, "system_fingerprint", "herd",
                        "choices", "index", 0, "delta", "logprobs", "finish_reason", "content_filter", "violation",
                        violation));
    strbuf_puts(&out, "data: [DONE]\n\n");
    enum MHD_Result ok = http_send_text(r, 200, "text/event-stream", out.p, out.n);
    strbuf_free(&out);
    return ok;
}

enum MHD_Result route_chat_completions(http_req *r, json_t *b) {
    bool ok;
    int lora;
    enum MHD_Result res = check_model(r, b, &ok, &lora);
    if (!ok) return res;
    json_t *msgs = json_object_get(b, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return http_send_error(r, 400, "invalid_request_error", "messages", NULL,
                               "'messages' must be a non-empty array of {role, content}");
    char err[ERRBUF] = "";
    if (file_search_apply(r, b, &res)) return res; /* retrieval first: file_search.c */
    /* tools and tool_choice: "none" hides the tools, "auto" (the default) lets the model call them */
    json_t *tools = json_object_get(b, "tools"), *choice = json_object_get(b, "tool_choice");
    bool use_tools = tools && !json_is_null(tools) && json_array_size(tools) > 0;
    if (tools && !json_is_null(tools) && !check_tools(tools, err))
        return http_send_error(r, 400, "invalid_request_error", "tools", NULL, "%s", err);
    json_t *forced = NULL; /* tool_choice "required" / a named function: the schema of the call */
    if (choice && !json_is_null(choice)) {
        const char *c = json_is_string(choice) ? json_string_value(choice) : NULL;
        if (c && !strcmp(c, "none")) use_tools = false;
        else if (c && !strcmp(c, "auto")) {
        } else if ((c && !strcmp(c, "required")) || json_is_object(choice)) {
            if (!use_tools)
                return http_send_error(r, 400, "invalid_request_error", "tool_choice", NULL,
                                       "tool_choice '%s' needs 'tools'", c ? c : "function");
            const char *want = NULL;
            if (!c) {
                json_t *ty = json_object_get(choice, "type"), *nm = json_object_get(json_object_get(choice, "function"), "name");
                if (!json_is_string(ty) || strcmp(json_string_value(ty), "function") || !json_is_string(nm))
                    return http_send_error(r, 400, "invalid_request_error", "tool_choice", NULL,
                                           "tool_choice must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
                want = json_string_value(nm);
            }
            forced = tool_call_schema(tools, want);
            if (!forced)
                return http_send_error(r, 400, "invalid_request_error", "tool_choice", NULL,
                                       "tool_choice names '%s', which is not among 'tools'", want);
        } else {
            return http_send_error(r, 400, "invalid_request_error", "tool_choice", NULL,
                                   "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", ...}");
        }
    }
    chat_messages cm;
    if (chat_messages_from_json(msgs, &cm) != HERD_OK) {
        json_decref(forced);
        return http_send_error(r, 400, "invalid_request_error", "messages", NULL, "%s", herd_last_error());
    }
    if (r->srv->cfg.shield_prompt_guard) { /* Prompt Guard on the last message, before Llama Guard (cheaper) */
        json_t *v;
        int prc = pg_check_chat(r->srv, cm.msgs, cm.n, &v);
        if (prc != HERD_OK || v) {
            json_decref(forced);
            chat_messages_free(&cm);
            if (prc != HERD_OK) return pg_error(r, prc, "messages", "input shield: ");
            json_object_set_new(json_object_get(v, "metadata"), "shield", json_string("input"));
            json_object_set_new(json_object_get(v, "metadata"), "shield_id", json_string(r->srv->cfg.prompt_guard_id));
            return refuse(r, json_is_true(json_object_get(b, "stream")), lora, v);
        }
    }
    if (r->srv->cfg.shield_input) { /* before anything is generated (docs/LLAMA_GUARD.md) */
        herd_guard_result gr;
        bool ran;
        if (shield_check(r->srv, cm.msgs, cm.n, NULL, 0, &gr, &ran) != HERD_OK) {
            json_decref(forced);
            chat_messages_free(&cm);
            return http_send_error(r, 400, "invalid_request_error", "messages", NULL, "input shield: %s", herd_last_error());
        }
        if (ran && gr.unsafe) {
            json_decref(forced);
            chat_messages_free(&cm);
            res = refuse(r, json_is_true(json_object_get(b, "stream")), lora, shield_violation_for(&gr, "input"));
            herd_guard_result_free(&gr);
            return res;
        }
        if (ran) herd_guard_result_free(&gr);
    }
    gen_opts o;
    const char *param = NULL, *ecode = NULL;
    /* functions named like Llama 3.1's built-in tools are those tools: rendered in the system block
     * ("Environment: ipython", "Tools: ..."), called as <|python_tag|>name.call(...) */
    const char *builtin[3];
    int n_builtin = 0;
    char *tools_text = NULL;
    if (use_tools) {
        json_t *custom = json_array(), *t;
        size_t i;
        json_array_foreach(tools, i, t) {
            const char *name = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
            if (!is_builtin_name(name)) json_array_append(custom, t);
            else {
                bool dup = false;
                for (int k = 0; k < n_builtin; k++) dup |= !strcmp(builtin[k], name);
                if (!dup) builtin[n_builtin++] = name;
            }
        }
        if (json_array_size(custom)) tools_text = json_dumps(custom, JSON_COMPACT);
        json_decref(custom);
    }
    agent *ag = NULL;
    if (use_tools && n_builtin > 0 && r->srv->cfg.n_exec_tools > 0) {
        ag = herd_xcalloc(1, sizeof *ag);
        /* the agent's own copy of the conversation: the messages point into the request's JSON,
         * which is gone before a streamed reply is */
        for (size_t k = 0; k < cm.n; k++)
            chat_messages_push(&ag->cm, cm.msgs[k].role, cm.msgs[k].content, cm.msgs[k].tool_name,
                               cm.msgs[k].tool_arguments);
        ag->tools_text = tools_text ? herd_xstrndup(tools_text, strlen(tools_text)) : NULL;
        for (int k = 0; k < n_builtin; k++)
            for (int j = 0; j < 3; j++)
                if (!strcmp(builtin[k], k_builtin_names[j])) ag->builtin[k] = k_builtin_names[j];
        ag->n_builtin = n_builtin;
    }
    chat_messages *conv = ag ? &ag->cm : &cm;
    bool opts_ok = parse_gen_opts(r->srv, b, true, &o, err, &param);
    o.lora = lora;
    json_t *fsc = json_object_get(b, FILE_SEARCH_KEY);
    o.extra = fsc ? json_pack("{s:O}", "file_search_call", fsc) : NULL;
    o.shield_conv = NULL;
    if (opts_ok && r->srv->cfg.shield_output) { /* tool calls are assessed as JSON text (shield_answer_text) */
        o.shield_conv = herd_xcalloc(1, sizeof *o.shield_conv);
        for (size_t k = 0; k < cm.n; k++)
            chat_messages_push(o.shield_conv, cm.msgs[k].role, cm.msgs[k].content, cm.msgs[k].tool_name,
                               cm.msgs[k].tool_arguments);
    }
    if (opts_ok && forced) {
        if (o.con) {
            snprintf(err, sizeof err, "'response_format' json and a forced 'tool_choice' cannot be combined");
            param = "response_format";
            opts_ok = false;
        } else {
            char *st = json_dumps(forced, JSON_COMPACT);
            if (herd_constraint_json_schema(model_of(r), st, &o.con) != HERD_OK) {
                snprintf(err, sizeof err, "tools: %s", herd_last_error());
                param = "tools";
                opts_ok = false;
            }
            free(st);
        }
    }
    json_decref(forced);
    if (!opts_ok) {
        gen_opts_free(&o);
    } else {
        herd_chat_params cp = {.add_generation_prompt = true, .tools_json = tools_text,
                               .builtin_tools = n_builtin ? builtin : NULL, .n_builtin_tools = n_builtin};
        int32_t *ids;
        int64_t n_ids;
        int policy, trc;
        if (!ctx_policy_parse(b, r->srv->cfg.context_shift, &policy, err, sizeof err)) {
            param = "context_policy";
        } else if ((trc = ctx_policy_tokenize(policy, model_of(r), conv, &cp, r->srv->cfg.n_ctx_slot, o.max_tokens, &ids,
                                              &n_ids, &o.n_dropped)) != HERD_OK) {
            snprintf(err, sizeof err, "%s", herd_last_error());
            param = "messages";
            ecode = trc == HERD_E_RANGE ? "context_length_exceeded" : NULL;
        } else {
            ctx_policy_shift_prompts(policy, model_of(r), conv, &cp, n_ids, &o.shift, &o.n_shift);
            res = generate(r, ids, n_ids, &o, true, NULL, use_tools, ag);
            ag = NULL; /* generate owns it */
        }
        gen_opts_free(&o);
    }
    free(tools_text);
    agent_free(ag);
    chat_messages_free(&cm);
    if (param) return http_send_error(r, 400, "invalid_request_error", param, ecode, "%s", err);
    return res;
}

/* A prompt given as a string, an array of token ids, or an array holding one of those. */
static bool parse_prompt(const herd_model *m, json_t *p, int32_t **ids, int64_t *n, char **text, char *err) {
    *ids = NULL;
    *text = NULL;
    if (json_is_array(p) && json_array_size(p) == 1 &&
        (json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0))))
        p = json_array_get(p, 0);
    if (json_is_string(p)) {
        int flags = herd_vocab_add_bos(m) ? HERD_TOKENIZE_ADD_BOS : 0;
        if (herd_tokenize(m, json_string_value(p), json_string_length(p), flags, ids, n) != HERD_OK) {
            snprintf(err, ERRBUF, "%s", herd_last_error());
            return false;
        }
        *text = herd_xstrndup(json_string_value(p), json_string_length(p));
        return true;
    }
    if (json_is_array(p) && json_array_size(p) > 0) {
        size_t k = json_array_size(p);
        int32_t nv = herd_vocab_n_tokens(m);
        *ids = herd_xmalloc(k * sizeof **ids);
        for (size_t i = 0; i < k; i++) {
            json_t *e = json_array_get(p, i);
            if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= nv) {
                snprintf(err, ERRBUF, "prompt[%zu] is not a token id in [0, %d)", i, nv);
                free(*ids);
                *ids = NULL;
                return false;
            }
            (*ids)[i] = (int32_t)json_integer_value(e);
        }
        *n = (int64_t)k;
        return true;
    }
    snprintf(err, ERRBUF, "'prompt' must be a non-empty string or array of token ids (one prompt per request)");
    return false;
}

enum MHD_Result route_completions(http_req *r, json_t *b) {
    bool ok;
    int lora;
    enum MHD_Result res = check_model(r, b, &ok, &lora);
    if (!ok) return res;
    char err[ERRBUF];
    const char *param = NULL;
    json_t *suffix = json_object_get(b, "suffix"), *best = json_object_get(b, "best_of");
    if (suffix && !json_is_null(suffix))
        return http_send_error(r, 400, "invalid_request_error", "suffix", NULL, "'suffix' is not supported");
    if (best && !json_is_null(best) && !(json_is_integer(best) && json_integer_value(best) == 1))
        return http_send_error(r, 400, "invalid_request_error", "best_of", NULL, "'best_of' must be 1");
    int32_t *ids;
    int64_t n;
    char *text;
    if (!parse_prompt(model_of(r), json_object_get(b, "prompt"), &ids, &n, &text, err))
        return http_send_error(r, 400, "invalid_request_error", "prompt", NULL, "%s", err);
    gen_opts o;
    bool opts_ok = parse_gen_opts(r->srv, b, false, &o, err, &param);
    o.lora = lora;
    if (!opts_ok) {
        gen_opts_free(&o);
        free(ids);
        free(text);
        return http_send_error(r, 400, "invalid_request_error", param, NULL, "%s", err);
    }
    char *echo_text = NULL;
    if (o.echo && o.top_logprobs >= 0) { /* the prompt's own logprobs (lm-evaluation-harness loglikelihood) */
        if (lora) {
            gen_opts_free(&o);
            free(ids), free(text);
            return http_send_error(r, 400, "invalid_request_error", "echo", NULL,
                                   "'echo' with 'logprobs' is not supported for LoRA adapter models yet");
        }
        int rc = server_prompt_logprobs(r->srv, ids, n, o.top_logprobs, &o.echo_lps, &echo_text);
        if (rc != HERD_OK) {
            gen_opts_free(&o);
            free(ids), free(text);
            return http_send_error(r, rc == HERD_E_RANGE ? 400 : 500,
                                   rc == HERD_E_RANGE ? "invalid_request_error" : "server_error", "prompt", NULL,
                                   "%s", herd_last_error());
        }
    }
    res = generate(r, ids, n, &o, false, o.echo ? (echo_text ? echo_text : text ? text : "") : NULL, false, NULL);
    gen_opts_free(&o);
    free(echo_text);
    free(text);
    return res;
}

static const char k_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *base64_floats(const float *v, int64_t n) {
    const unsigned char *s = (const unsigned char *)v;
    size_t len = (size_t)n * 4, o = 0;
    char *out = herd_xmalloc((len + 2) / 3 * 4 + 1);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t x = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < len ? s[i + 2] : 0);
        out[o++] = k_b64[x >> 18 & 63];
        out[o++] = k_b64[x >> 12 & 63];
        out[o++] = i + 1 < len ? k_b64[x >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? k_b64[x & 63] : '=';
    }
    out[o] = 0;
    json_t *j = json_string(out);
    free(out);
    return j;
}

enum MHD_Result route_embeddings(http_req *r, json_t *b) {
    bool ok;
    int lora;
    enum MHD_Result res = check_model(r, b, &ok, &lora);
    if (!ok) return res;
    const herd_model *m = model_of(r);
    json_t *in = json_object_get(b, "input");
    json_t *fmt = json_object_get(b, "encoding_format");
    bool b64 = false;
    if (fmt && !json_is_null(fmt)) {
        if (!json_is_string(fmt) || (strcmp(json_string_value(fmt), "float") && strcmp(json_string_value(fmt), "base64")))
            return http_send_error(r, 400, "invalid_request_error", "encoding_format", NULL,
                                   "'encoding_format' must be \"float\" or \"base64\"");
        b64 = !strcmp(json_string_value(fmt), "base64");
    }
    json_t *dims = json_object_get(b, "dimensions");
    if (dims && !json_is_null(dims) && !(json_is_integer(dims) && json_integer_value(dims) == herd_model_n_embd(m)))
        return http_send_error(r, 400, "invalid_request_error", "dimensions", NULL,
                               "'dimensions' is not supported: this model's embeddings have exactly %lld dimensions "
                               "(leave it out or give %lld)",
                               (long long)herd_model_n_embd(m), (long long)herd_model_n_embd(m));
    /* inputs: a string, an array of strings, an array of ids, or an array of id arrays */
    json_t *list = json_array();
    if (json_is_string(in) || (json_is_array(in) && json_array_size(in) > 0 && json_is_integer(json_array_get(in, 0))))
        json_array_append(list, in);
    else if (json_is_array(in))
        json_array_extend(list, in);
    size_t n = json_array_size(list);
    if (n == 0 || n > 2048) {
        json_decref(list);
        return http_send_error(r, 400, "invalid_request_error", "input", NULL,
                               "'input' must be a string, an array of 1..2048 strings, or token id arrays");
    }
    engine_req **reqs = herd_xcalloc(n, sizeof *reqs);
    char err[ERRBUF] = "";
    int status = 0;
    for (size_t i = 0; i < n && !status; i++) {
        int32_t *ids;
        int64_t k;
        char *text;
        json_t *e = json_array_get(list, i);
        if ((json_is_string(e) && json_string_length(e) == 0) || !parse_prompt(m, e, &ids, &k, &text, err)) {
            if (!err[0]) snprintf(err, sizeof err, "input %zu is empty", i);
            status = 400;
            break;
        }
        free(text);
        engine_params p = {.prompt = ids, .n_prompt = k, .max_tokens = 0, .top_logprobs = -1, .embedding = true,
                           .lora = lora};
        int rc = engine_submit(r->srv->e, &p, &reqs[i]);
        if (rc) {
            for (size_t j = 0; j < i; j++) engine_release(reqs[j]);
            free(reqs);
            json_decref(list);
            return submit_error(r, rc);
        }
    }
    json_decref(list);
    if (status) {
        for (size_t j = 0; j < n; j++) engine_release(reqs[j]);
        free(reqs);
        return http_send_error(r, status, "invalid_request_error", "input", NULL, "%s", err);
    }
    json_t *data = json_array();
    int64_t total = 0;
    int fd = http_conn_fd(r);
    bool gone = false;
    for (size_t i = 0; i < n && !gone && !status; i++) {
        engine_event ev;
        for (;;) {
            if (!http_wait_event(fd, reqs[i], &ev)) {
                gone = true;
                break;
            }
            if (ev.kind == ENGINE_EV_TOKEN) {
                engine_event_clear(&ev);
                continue;
            }
            break;
        }
        if (gone) break;
        if (ev.kind == ENGINE_EV_ERROR || !ev.embedding) {
            snprintf(err, sizeof err, "%s", ev.error ? ev.error : "embedding failed");
            status = 500;
        } else {
            json_t *vec;
            if (b64) vec = base64_floats(ev.embedding, ev.n_embd);
            else {
                vec = json_array();
                for (int64_t j = 0; j < ev.n_embd; j++) json_array_append_new(vec, json_real(ev.embedding[j]));
            }
            json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object", "embedding", "index", (json_int_t)i,
                                                  "embedding", vec));
            total += ev.n_prompt;
        }
        engine_event_clear(&ev);
    }
    for (size_t j = 0; j < n; j++) engine_release(reqs[j]);
    free(reqs);
    if (gone) {
        json_decref(data);
        return MHD_NO;
    }
    if (status) {
        json_decref(data);
        return http_send_error(r, status, "server_error", NULL, NULL, "%s", err);
    }
    metrics_tokens(&r->srv->met, total, 0);
    return http_send_json(r, 200, json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data, "model",
                                            model_name(r->srv, lora), "usage", "prompt_tokens", (json_int_t)total,
                                            "total_tokens", (json_int_t)total));
}

/* Model i (0 the base, i > 0 an adapter, which names the base as its "parent" and the adapter file as "root");
 * metadata.herd_version / herd_git: the server's build (Llama Stack's free-form metadata object; OpenAI
 * clients ignore fields they do not know) */
static json_t *model_json(server *s, int i) {
    const char *id = model_name(s, i);
    json_t *m = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:{s:I, s:I, s:s}}", "id", id, "object", "model",
                          "created", (json_int_t)0, "owned_by", "herd", "identifier", id, "provider_id", "herd",
                          "provider_resource_id", id, "model_type", "llm", "metadata", "context_length",
                          (json_int_t)s->cfg.n_ctx_slot, "embedding_dimension",
                          (json_int_t)herd_model_n_embd(engine_model(s->e)), "herd_version", herd_version());
    if (*herd_version_git())
        json_object_set_new(json_object_get(m, "metadata"), "herd_git", json_string(herd_version_git()));
    if (i > 0) {
        json_object_set_new(m, "parent", json_string(s->model_id));
        json_object_set_new(m, "root", json_string(s->cfg.lora_paths[i - 1]));
    }
    json_object_set_new(m, "type", json_string("model"));
    return m;
}

enum MHD_Result route_models(http_req *r) {
    json_t *data = json_array();
    for (int i = 0; i <= r->srv->cfg.n_loras; i++) json_array_append_new(data, model_json(r->srv, i));
    return http_send_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

enum MHD_Result route_model(http_req *r, const char *id) {
    int i = model_index(r->srv, id);
    if (i < 0) {
        char names[ERRBUF];
        model_names(r->srv, names, sizeof names);
        return http_send_error(r, 404, "invalid_request_error", "model", "model_not_found",
                               "the model '%.200s' does not exist; this server has %s", id, names);
    }
    return http_send_json(r, 200, model_json(r->srv, i));
}
