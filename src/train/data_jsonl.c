/* Training data, the JSONL objectives (data.h): sft and dpo lines -> chat messages -> token
 * sequences whose targets are the assistant bodies (src/chat/chat_tokens.h gives the spans).
 *
 * Each line is checked here first, field by field, so that an error names its path
 * ("messages[1].content: ..."); the checks accept exactly what chat_messages_from_json accepts (the
 * parser `herd format --messages` uses), which then builds the messages, so that the tokens are the
 * ones `herd format --tokens` prints. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../base/log.h"
#include "../chat/chat_tokens.h"
#include "../chat/messages.h"
#include "../model/model.h"
#include "data.h"
#include "data_impl.h"

typedef struct {
    const herd_model *m;
    const train_data_params *p;
    const char *path;
    int64_t line;
} jl_ctx;

/* One error line: "path:line: " + the message. */
__attribute__((format(printf, 2, 3))) static int fail(const jl_ctx *c, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return herd_err(HERD_E_FORMAT, "%s:%lld: %s", c->path, (long long)c->line, msg);
}

/* Wraps the message of a lower layer's error (chat) in "path:line: ", keeping its status where it is
 * not the data's fault (a vocabulary without the template's tokens). */
static int fail_wrap(const jl_ctx *c, int rc) {
    char msg[768];
    snprintf(msg, sizeof msg, "%s", herd_last_error());
    return herd_err(rc == HERD_E_UNSUPPORTED ? rc : HERD_E_FORMAT, "%s:%lld: %s", c->path, (long long)c->line,
                    msg);
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

#define ROLES "system, user, assistant, tool, ipython (or developer)"

/* Checks one message object at `path` ("messages[2]", "chosen"). */
static int check_message(const jl_ctx *c, const json_t *o, const char *path) {
    if (!json_is_object(o))
        return fail(c, "%s: expected a message object {\"role\": ..., \"content\": ...}, got %s", path,
                    type_name(o));
    const json_t *role = json_object_get(o, "role");
    if (!role) return fail(c, "%s.role: missing; expected one of " ROLES, path);
    if (!json_is_string(role))
        return fail(c, "%s.role: expected one of " ROLES ", got %s", path, type_name(role));
    const char *r = json_string_value(role);
    if (strcmp(r, "system") && strcmp(r, "developer") && strcmp(r, "user") && strcmp(r, "assistant") &&
        strcmp(r, "tool") && strcmp(r, "ipython"))
        return fail(c,
                    "%s.role: expected one of " ROLES ", got '%.40s' (Llama 3.1's template has no such role)",
                    path, r);
    const json_t *content = json_object_get(o, "content");
    if (content && !json_is_null(content) && !json_is_string(content)) {
        if (!json_is_array(content))
            return fail(c, "%s.content: expected a string or an array of text parts, got %s", path,
                        type_name(content));
        size_t k;
        const json_t *part;
        json_array_foreach(content, k, part) {
            const json_t *t = json_object_get(part, "type"), *tx = json_object_get(part, "text");
            if (!json_is_object(part) || !json_is_string(t) || strcmp(json_string_value(t), "text") != 0 ||
                !json_is_string(tx))
                return fail(c,
                            "%s.content[%zu]: expected a text part {\"type\": \"text\", \"text\": \"...\"}",
                            path, k);
        }
    }
    const json_t *calls = json_object_get(o, "tool_calls");
    bool has_call = calls && !json_is_null(calls) && !(json_is_array(calls) && json_array_size(calls) == 0);
    if (has_call) {
        if (strcmp(r, "assistant") != 0)
            return fail(c, "%s.tool_calls: only assistant messages carry tool calls (role is '%s')", path, r);
        if (!json_is_array(calls))
            return fail(c, "%s.tool_calls: expected an array of one tool call, got %s", path,
                        type_name(calls));
        if (json_array_size(calls) != 1)
            return fail(c, "%s.tool_calls: Llama 3.1 renders exactly one tool call per message, got %zu",
                        path, json_array_size(calls));
        const json_t *call = json_array_get(calls, 0), *fn = json_object_get(call, "function");
        if (!json_is_object(call))
            return fail(c, "%s.tool_calls[0]: expected {\"type\": \"function\", \"function\": {...}}", path);
        if (!json_is_object(fn))
            return fail(c, "%s.tool_calls[0].function: expected an object {\"name\", \"arguments\"}", path);
        const json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
        if (!json_is_string(name) || json_string_length(name) == 0)
            return fail(c, "%s.tool_calls[0].function.name: expected a non-empty string", path);
        if (json_is_string(args)) {
            json_error_t err;
            json_t *parsed = json_loads(json_string_value(args), 0, &err);
            bool obj = json_is_object(parsed);
            json_decref(parsed);
            if (!obj)
                return fail(c, "%s.tool_calls[0].function.arguments: the text is not a JSON object", path);
        } else if (args && !json_is_null(args) && !json_is_object(args)) {
            return fail(c, "%s.tool_calls[0].function.arguments: expected a JSON object or its text, got %s",
                        path, type_name(args));
        }
    } else if (!content || json_is_null(content)) {
        return fail(c, "%s.content: missing; expected a string or an array of text parts", path);
    }
    return HERD_OK;
}

/* Checks an array of messages at `name` ("messages", "chosen"). */
static int check_messages(const jl_ctx *c, const json_t *arr, const char *name) {
    char path[64];
    for (size_t i = 0; i < json_array_size(arr); i++) {
        snprintf(path, sizeof path, "%s[%zu]", name, i);
        int rc = check_message(c, json_array_get(arr, i), path);
        if (rc) return rc;
    }
    return HERD_OK;
}

/* The line's "tools" and "builtin_tools" as chat params. OUT: *tools_json (caller frees), names[] point
 * into the JSON (valid while it lives; caller frees the array). */
static int line_params(const jl_ctx *c, const json_t *root, herd_chat_params *cp, char **tools_json,
                       const char ***names) {
    memset(cp, 0, sizeof *cp);
    *tools_json = NULL;
    *names = NULL;
    const json_t *tools = json_object_get(root, "tools");
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools))
            return fail(c, "tools: expected an array of tool definitions, got %s", type_name(tools));
        for (size_t i = 0; i < json_array_size(tools); i++)
            if (!json_is_object(json_array_get(tools, i)))
                return fail(c, "tools[%zu]: expected a tool definition object {\"type\": \"function\", ...}",
                            i);
        *tools_json = json_dumps(tools, JSON_ENCODE_ANY);
        cp->tools_json = *tools_json;
    }
    const json_t *bt = json_object_get(root, "builtin_tools");
    if (bt && !json_is_null(bt)) {
        if (!json_is_array(bt))
            return fail(c,
                        "builtin_tools: expected an array of tool names (brave_search, wolfram_alpha, "
                        "code_interpreter), got %s",
                        type_name(bt));
        size_t n = json_array_size(bt);
        *names = herd_xcalloc(n ? n : 1, sizeof **names);
        for (size_t i = 0; i < n; i++) {
            const json_t *s = json_array_get(bt, i);
            if (!json_is_string(s) || json_string_length(s) == 0 ||
                strlen(json_string_value(s)) != json_string_length(s))
                return fail(c,
                            "builtin_tools[%zu]: expected a tool name (brave_search, wolfram_alpha, "
                            "code_interpreter)",
                            i);
            (*names)[i] = json_string_value(s);
        }
        cp->builtin_tools = *names;
        cp->n_builtin_tools = (int)n;
    }
    return HERD_OK;
}

/* Tokenizes arr (an array of checked messages) and makes the sequence: targets on the bodies of the
 * assistant messages from index `from` on (every token but the first when all_targets).
 * OUT: *s (arrays owned by the caller), *prompt_end (the first token of message `from`). */
static int make_seq(const jl_ctx *c, const json_t *arr, const herd_chat_params *cp, size_t from,
                    bool all_targets, train_seq *s, int64_t *prompt_end) {
    chat_messages cm;
    int rc = chat_messages_from_json(arr, &cm);
    if (rc) return fail_wrap(c, rc); /* the checks above should have caught it */
    chat_tokens t;
    rc = chat_tokenize(c->m->vocab, cm.msgs, cm.n, cp, &t);
    chat_messages_free(&cm);
    if (rc) return fail_wrap(c, rc);
    uint8_t *target = calloc((size_t)t.n_ids, 1);
    if (!target) {
        chat_tokens_free(&t);
        return herd_err(HERD_E_NOMEM, "train: out of memory for %lld tokens", (long long)t.n_ids);
    }
    if (all_targets) memset(target + 1, 1, (size_t)t.n_ids - 1);
    for (size_t i = from; i < t.n_msg; i++)
        if (t.msg[i].assistant) memset(target + t.msg[i].body, 1, (size_t)(t.msg[i].end - t.msg[i].body));
    target[0] = 0;
    if (prompt_end) *prompt_end = from < t.n_msg ? t.msg[from].begin : t.n_ids;
    *s = (train_seq){.tokens = t.ids, .target = target, .n = t.n_ids, .line = c->line};
    t.ids = NULL;
    chat_tokens_free(&t);
    return HERD_OK;
}

static int sft_line(const jl_ctx *c, const json_t *root, const herd_chat_params *cp, train_data *d) {
    const json_t *msgs = json_object_get(root, "messages");
    if (!msgs) return fail(c, "messages: missing; expected an array of messages");
    if (!json_is_array(msgs))
        return fail(c, "messages: expected an array of messages, got %s", type_name(msgs));
    int rc = check_messages(c, msgs, "messages");
    if (rc) return rc;
    train_seq s;
    if ((rc = make_seq(c, msgs, cp, 0, c->p->train_on_input, &s, NULL))) return rc;
    train_data_add_example(d, c->p, &s, 1); /* no assistant message: no target, skipped and counted */
    return HERD_OK;
}

/* A dpo response (chosen / rejected) appended to `all` as messages. */
static int dpo_response(const jl_ctx *c, const json_t *root, const char *name, json_t *all) {
    const json_t *r = json_object_get(root, name);
    if (!r) return fail(c, "%s: missing; expected a string, a message object or an array of messages", name);
    if (json_is_string(r)) {
        json_array_append_new(all, json_pack("{s:s,s:O}", "role", "assistant", "content", r));
        return HERD_OK;
    }
    if (json_is_object(r)) {
        int rc = check_message(c, r, name);
        if (rc == 0) json_array_append(all, (json_t *)r);
        return rc;
    }
    if (json_is_array(r)) {
        if (json_array_size(r) == 0)
            return fail(c, "%s: expected at least one message, got an empty array", name);
        int rc = check_messages(c, r, name);
        if (rc == 0) json_array_extend(all, (json_t *)r);
        return rc;
    }
    return fail(c, "%s: expected a string, a message object or an array of messages, got %s", name,
                type_name(r));
}

static int dpo_line(const jl_ctx *c, const json_t *root, const herd_chat_params *cp, train_data *d) {
    const json_t *msgs = json_object_get(root, "messages"), *prompt = json_object_get(root, "prompt");
    if (msgs && prompt) return fail(c, "prompt: give \"messages\" or \"prompt\", not both");
    if (!msgs && !prompt)
        return fail(c, "messages: missing; expected \"messages\" (an array) or \"prompt\" (a string)");
    if (msgs && !json_is_array(msgs))
        return fail(c, "messages: expected an array of messages, got %s", type_name(msgs));
    if (prompt && !json_is_string(prompt))
        return fail(c, "prompt: expected a string, got %s", type_name(prompt));
    int rc = msgs ? check_messages(c, msgs, "messages") : HERD_OK;
    if (rc) return rc;
    json_t *base = json_array();
    if (msgs)
        json_array_extend(base, (json_t *)msgs);
    else
        json_array_append_new(base, json_pack("{s:s,s:O}", "role", "user", "content", prompt));
    size_t n_prompt = json_array_size(base);
    json_t *chosen = json_copy(base), *rejected = json_copy(base);
    train_seq s[2] = {{0}, {0}};
    int64_t end[2];
    if (!(rc = dpo_response(c, root, "chosen", chosen)) &&
        !(rc = dpo_response(c, root, "rejected", rejected)) &&
        !(rc = make_seq(c, chosen, cp, n_prompt, false, &s[0], &end[0])) &&
        !(rc = make_seq(c, rejected, cp, n_prompt, false, &s[1], &end[1]))) {
        /* the template renders a message from itself and what precedes it, so the prompts agree;
         * checked, since the pair's loss compares the two responses after the same prompt */
        if (end[0] != end[1] || memcmp(s[0].tokens, s[1].tokens, (size_t)end[0] * sizeof(int32_t)) != 0)
            rc = fail(c, "chosen, rejected: the prompt renders differently before the two responses");
    }
    if (rc == 0) {
        train_data_add_example(d, c->p, s, 2);
    } else {
        for (int i = 0; i < 2; i++) free(s[i].tokens), free(s[i].target);
    }
    json_decref(base);
    json_decref(chosen);
    json_decref(rejected);
    return rc;
}

static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

int train_data_load_jsonl(const herd_model *m, const char *path, const char *text, size_t len,
                          const train_data_params *p, train_data *d) {
    jl_ctx c = {m, p, path, 0};
    bool dpo = p->objective == TRAIN_OBJ_DPO;
    size_t at = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) at = 3; /* a UTF-8 byte order mark */
    while (at < len) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - at;
        const char *s = text + at;
        at = nl ? end + 1 : len;
        c.line++;
        if (blank(s, n)) continue;
        json_error_t err;
        json_t *root = json_loadb(s, n, JSON_REJECT_DUPLICATES, &err);
        if (!root) return fail(&c, "invalid JSON at column %d: %s", err.column, err.text);
        int rc;
        if (!json_is_object(root)) {
            rc = fail(&c, "expected a JSON object {\"messages\": [...]}, got %s", type_name(root));
        } else {
            herd_chat_params cp;
            char *tools_json;
            const char **names;
            rc = line_params(&c, root, &cp, &tools_json, &names);
            if (rc == 0) rc = dpo ? dpo_line(&c, root, &cp, d) : sft_line(&c, root, &cp, d);
            free(tools_json);
            free(names);
        }
        json_decref(root);
        if (rc) return rc;
    }
    return HERD_OK;
}
