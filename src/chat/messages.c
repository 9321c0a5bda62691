#include "messages.h"

#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../base/strbuf.h"

static const char *own(chat_messages *m, char *s) {
    m->owned = herd_xrealloc(m->owned, (m->n_owned + 1) * sizeof *m->owned);
    m->owned[m->n_owned++] = s;
    return s;
}

void chat_messages_free(chat_messages *m) {
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->msgs);
    memset(m, 0, sizeof *m);
}

static int content_of(chat_messages *m, const json_t *c, size_t i, const char **out) {
    *out = NULL;
    if (!c || json_is_null(c)) return HERD_OK;
    if (json_is_string(c)) {
        *out = own(m, herd_xstrndup(json_string_value(c), json_string_length(c)));
        return HERD_OK;
    }
    if (!json_is_array(c))
        return herd_err(HERD_E_ARG, "messages[%zu].content must be a string, null or an array of text parts", i);
    strbuf b = {0};
    strbuf_put(&b, "", 0);
    size_t k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *t = json_object_get(part, "type"), *tx = json_object_get(part, "text");
        if (!json_is_string(t) || strcmp(json_string_value(t), "text") != 0 || !json_is_string(tx)) {
            free(b.p);
            return herd_err(HERD_E_ARG, "messages[%zu].content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are "
                                        "supported", i, k);
        }
        strbuf_put(&b, json_string_value(tx), json_string_length(tx));
    }
    *out = own(m, b.p);
    return HERD_OK;
}

int chat_messages_from_json(const json_t *arr, chat_messages *m) {
    memset(m, 0, sizeof *m);
    if (!json_is_array(arr)) return herd_err(HERD_E_ARG, "'messages' must be an array of {role, content}");
    size_t n = json_array_size(arr);
    m->msgs = herd_xcalloc(n ? n : 1, sizeof *m->msgs);
    m->n = n;
    int rc = HERD_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *o = json_array_get(arr, i), *role = json_object_get(o, "role");
        herd_chat_message *cm = &m->msgs[i];
        if (!json_is_object(o) || !json_is_string(role)) {
            rc = herd_err(HERD_E_ARG, "messages[%zu] needs a string 'role'", i);
            break;
        }
        const char *r = json_string_value(role);
        if (!strcmp(r, "developer")) r = "system";
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool") &&
            strcmp(r, "ipython")) {
            rc = herd_err(HERD_E_ARG, "messages[%zu].role '%.64s' is not one of system, user, assistant, tool, ipython",
                          i, r);
            break;
        }
        cm->role = r; /* a literal or the JSON's own string: lives as long as the JSON */
        if ((rc = content_of(m, json_object_get(o, "content"), i, &cm->content))) break;
        json_t *calls = json_object_get(o, "tool_calls");
        if (calls && !json_is_null(calls) && !(json_is_array(calls) && json_array_size(calls) == 0)) {
            if (strcmp(r, "assistant") != 0) {
                rc = herd_err(HERD_E_ARG, "messages[%zu]: only assistant messages carry tool_calls", i);
                break;
            }
            if (!json_is_array(calls) || json_array_size(calls) != 1) {
                rc = herd_err(HERD_E_ARG, "messages[%zu]: Llama 3.1 renders exactly one tool call per message, got %zu",
                              i, json_is_array(calls) ? json_array_size(calls) : 0);
                break;
            }
            json_t *fn = json_object_get(json_array_get(calls, 0), "function");
            json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
            if (!json_is_string(name) || json_string_length(name) == 0) {
                rc = herd_err(HERD_E_ARG, "messages[%zu].tool_calls[0].function needs a 'name'", i);
                break;
            }
            cm->tool_name = own(m, herd_xstrndup(json_string_value(name), json_string_length(name)));
            if (json_is_string(args)) {
                json_error_t err;
                json_t *parsed = json_loads(json_string_value(args), 0, &err);
                bool obj = json_is_object(parsed);
                json_decref(parsed);
                if (!obj) {
                    rc = herd_err(HERD_E_ARG, "messages[%zu].tool_calls[0].function.arguments is not a JSON object", i);
                    break;
                }
                cm->tool_arguments = own(m, herd_xstrndup(json_string_value(args), json_string_length(args)));
            } else if (json_is_object(args)) {
                cm->tool_arguments = own(m, json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY));
            } else if (!args || json_is_null(args)) {
                cm->tool_arguments = "{}";
            } else {
                rc = herd_err(HERD_E_ARG, "messages[%zu].tool_calls[0].function.arguments must be a JSON string or object", i);
                break;
            }
        } else if (!cm->content) {
            rc = herd_err(HERD_E_ARG, "messages[%zu] needs 'content'", i);
            break;
        }
    }
    if (rc) chat_messages_free(m);
    return rc;
}

/* Public wrappers: the owner keeps the parsed JSON (roles point into it) and the strings. */
typedef struct {
    json_t *root;
    chat_messages m;
} parsed_messages;

int herd_chat_parse_messages(const char *json, size_t len, herd_chat_message **msgs, size_t *n, void **owner) {
    *msgs = NULL;
    *n = 0;
    *owner = NULL;
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return herd_err(HERD_E_FORMAT, "messages: invalid JSON at line %d, column %d: %s", err.line, err.column, err.text);
    parsed_messages *pm = herd_xcalloc(1, sizeof *pm);
    pm->root = root;
    int rc = chat_messages_from_json(root, &pm->m);
    if (rc) {
        json_decref(root);
        free(pm);
        return rc;
    }
    *msgs = pm->m.msgs;
    *n = pm->m.n;
    *owner = pm;
    return HERD_OK;
}

void herd_chat_messages_free(void *owner) {
    parsed_messages *pm = owner;
    if (!pm) return;
    chat_messages_free(&pm->m);
    json_decref(pm->root);
    free(pm);
}

void chat_messages_push(chat_messages *m, const char *role, const char *content, const char *tool_name,
                        const char *tool_arguments) {
    m->msgs = herd_xrealloc(m->msgs, (m->n + 1) * sizeof *m->msgs);
    herd_chat_message *x = &m->msgs[m->n++];
    x->role = own(m, herd_xstrndup(role, strlen(role)));
    x->content = content ? own(m, herd_xstrndup(content, strlen(content))) : NULL;
    x->tool_name = tool_name ? own(m, herd_xstrndup(tool_name, strlen(tool_name))) : NULL;
    x->tool_arguments = tool_arguments ? own(m, herd_xstrndup(tool_arguments, strlen(tool_arguments))) : NULL;
}
