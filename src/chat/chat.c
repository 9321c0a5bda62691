#include "chat.h"

#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../base/strbuf.h"
#include "jsonfmt.h"

#include <jansson.h>
#include "herd.h"

/* JavaScript's trim set: TAB VT FF SP NBSP ZWNBSP(FEFF) + Zs, and LF CR LS PS. */
static bool js_space(uint32_t c) {
    switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000: case 0xFEFF:
        return true;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

/* Decodes the UTF-8 code point at s[i]; an invalid or truncated sequence decodes as its first
 * byte with *n = 1 (never a space, so it is kept). */
static uint32_t decode(const unsigned char *s, size_t len, size_t i, size_t *n) {
    unsigned c = s[i];
    size_t k = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    *n = 1;
    if (k == 0 || i + k >= len) return c;
    uint32_t v = c & (0x3Fu >> k);
    for (size_t j = 1; j <= k; j++) {
        if ((s[i + j] & 0xC0) != 0x80) return c;
        v = (v << 6) | (s[i + j] & 0x3F);
    }
    *n = k + 1;
    return v;
}

void chat_trim(const char *str, size_t len, size_t *begin, size_t *end) {
    const unsigned char *s = (const unsigned char *)str;
    size_t b = 0, e = 0, i = 0, n;
    bool any = false;
    /* one pass: the first non-space start and the end of the last non-space character */
    while (i < len) {
        uint32_t c = decode(s, len, i, &n);
        if (!js_space(c)) {
            if (!any) b = i;
            any = true;
            e = i + n;
        }
        i += n;
    }
    *begin = any ? b : 0;
    *end = any ? e : 0;
}

static void put_trimmed(strbuf *b, const char *s) {
    size_t len = strlen(s), i, j;
    chat_trim(s, len, &i, &j);
    strbuf_put(b, s + i, j - i);
}

/* Appends a special token's text and records its span. */
static void sp(chat_rendered *r, const char *tok) {
    if (r->n_sp == r->cap_sp) {
        r->cap_sp = r->cap_sp ? r->cap_sp * 2 : 32;
        r->sp_off = herd_xrealloc(r->sp_off, r->cap_sp * sizeof *r->sp_off);
        r->sp_len = herd_xrealloc(r->sp_len, r->cap_sp * sizeof *r->sp_len);
    }
    r->sp_off[r->n_sp] = r->text.n;
    r->sp_len[r->n_sp++] = strlen(tok);
    strbuf_puts(&r->text, tok);
}

/* Appends "<|start_header_id|>{role}<|end_header_id|>\n\n" and returns where the body begins. */
static size_t header(chat_rendered *r, const char *role) {
    sp(r, "<|start_header_id|>");
    strbuf_puts(&r->text, role);
    sp(r, "<|end_header_id|>");
    strbuf_puts(&r->text, "\n\n");
    return r->text.n;
}

static bool is_builtin(const herd_chat_params *p, const char *name) {
    if (!p || !p->builtin_tools) return false;
    for (int i = 0; i < p->n_builtin_tools; i++)
        if (!strcmp(p->builtin_tools[i], name)) return true;
    return false;
}

/* An assistant tool call's body (after its header): built-in -> <|python_tag|>name.call(k="v", ...),
 * custom -> the JSON form. */
static int render_tool_call(chat_rendered *r, const herd_chat_params *p, const herd_chat_message *m, size_t i) {
    strbuf *b = &r->text;
    json_error_t err;
    json_t *args = json_loads(m->tool_arguments ? m->tool_arguments : "{}", 0, &err);
    if (!args || !json_is_object(args)) {
        json_decref(args);
        return herd_err(HERD_E_ARG, "chat: message %zu: tool call arguments are not a JSON object", i);
    }
    if (is_builtin(p, m->tool_name)) {
        sp(r, "<|python_tag|>");
        strbuf_puts(b, m->tool_name);
        strbuf_puts(b, ".call(");
        const char **keys;
        size_t n = chat_js_keys(args, &keys);
        for (size_t k = 0; k < n; k++) {
            json_t *v = json_object_get(args, keys[k]);
            strbuf_puts(b, keys[k]);
            strbuf_puts(b, "=\"");
            if (json_is_string(v)) strbuf_put(b, json_string_value(v), json_string_length(v));
            else if (json_is_number(v)) chat_js_number(b, json_number_value(v));
            else chat_tojson(b, v, 0);
            strbuf_puts(b, "\"");
            if (k + 1 < n) strbuf_puts(b, ", ");
        }
        free(keys);
        strbuf_puts(b, ")");
    } else {
        strbuf_puts(b, "{\"name\": \"");
        strbuf_puts(b, m->tool_name);
        strbuf_puts(b, "\", \"parameters\": ");
        chat_tojson(b, args, 0);
        strbuf_puts(b, "}");
    }
    json_decref(args);
    sp(r, p && p->builtin_tools ? "<|eom_id|>" : "<|eot_id|>");
    return HERD_OK;
}

/* The function list text that precedes tools (in the user or the system message). */
static void render_tools(strbuf *b, const json_t *tools) {
    for (size_t i = 0; i < json_array_size(tools); i++) {
        chat_tojson(b, json_array_get(tools, i), 4);
        strbuf_puts(b, "\n\n");
    }
}

int chat_render(const herd_chat_message *msgs, size_t n, const herd_chat_params *p, chat_rendered *r) {
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !*msgs[i].role)
            return herd_err(HERD_E_ARG, "chat: message %zu has no role", i);
        if (!msgs[i].content && !(msgs[i].tool_name && !strcmp(msgs[i].role, "assistant")))
            return herd_err(HERD_E_ARG, "chat: message %zu has no content", i);
    }
    json_t *tools = NULL;
    if (p && p->tools_json) {
        json_error_t err;
        tools = json_loads(p->tools_json, JSON_DECODE_ANY, &err);
        if (!tools || !json_is_array(tools)) {
            json_decref(tools);
            return herd_err(HERD_E_ARG, "chat: tools must be a JSON array of tool definitions");
        }
    }
    bool in_user = tools && !(p && p->tools_in_system);
    size_t first = 0;
    strbuf *b = &r->text;
    strbuf_put(b, "", 0);
    r->msg = herd_xcalloc(n ? n : 1, sizeof *r->msg);
    sp(r, "<|begin_of_text|>");
    size_t sys_begin = b->n, sys_body = header(r, "system");
    if ((p && p->builtin_tools) || tools) strbuf_puts(b, "Environment: ipython\n");
    if (p && p->builtin_tools) {
        strbuf_puts(b, "Tools: ");
        bool any = false;
        for (int i = 0; i < p->n_builtin_tools; i++) {
            if (!strcmp(p->builtin_tools[i], "code_interpreter")) continue; /* implied by Environment: ipython */
            if (any) strbuf_puts(b, ", ");
            strbuf_puts(b, p->builtin_tools[i]);
            any = true;
        }
        strbuf_puts(b, "\n\n");
    }
    strbuf_puts(b, "Cutting Knowledge Date: December 2023\nToday Date: ");
    strbuf_puts(b, p && p->date_string ? p->date_string : CHAT_DEFAULT_DATE);
    strbuf_puts(b, "\n\n");
    if (tools && !in_user) {
        strbuf_puts(b, "You have access to the following functions. To call a function, please respond with JSON for a "
                       "function call.Respond in the format {\"name\": function name, \"parameters\": dictionary of "
                       "argument name and its value}.Do not use variables.\n\n");
        render_tools(b, tools);
    }
    if (n > 0 && strcmp(msgs[0].role, "system") == 0) {
        put_trimmed(b, msgs[0].content);
        first = 1;
    }
    sp(r, "<|eot_id|>");
    if (first) r->msg[0] = (chat_msg_place){sys_begin, sys_body, b->n, false};
    if (in_user) {
        if (first >= n) {
            json_decref(tools);
            chat_rendered_free(r);
            return herd_err(HERD_E_ARG, "chat: cannot put tools in the first user message when there is no first "
                                        "user message");
        }
        size_t begin = b->n, body = header(r, "user");
        strbuf_puts(b, "Given the following functions, please respond with a JSON for a function call with its "
                       "proper arguments that best answers the given prompt.\n\nRespond in the format {\"name\": "
                       "function name, \"parameters\": dictionary of argument name and its value}.Do not use "
                       "variables.\n\n");
        render_tools(b, tools);
        /* the template takes the next message's content as the first user message, whatever its role */
        if (msgs[first].content) put_trimmed(b, msgs[first].content);
        sp(r, "<|eot_id|>");
        r->msg[first] = (chat_msg_place){begin, body, b->n, false};
        first++;
    }
    json_decref(tools);
    for (size_t i = first; i < n; i++) {
        const char *role = msgs[i].role;
        bool tool_result = !strcmp(role, "tool") || !strcmp(role, "ipython");
        size_t begin = b->n, body;
        if (msgs[i].tool_name && !tool_result) {
            body = header(r, "assistant");
            int rc = render_tool_call(r, p, &msgs[i], i);
            if (rc) {
                chat_rendered_free(r);
                return rc;
            }
        } else if (tool_result) {
            /* the template tojson's a string content (a string is "iterable" to Jinja): it arrives quoted */
            body = header(r, "ipython");
            json_t *str = json_string(msgs[i].content);
            if (str) chat_tojson(b, str, 0);
            else strbuf_puts(b, msgs[i].content); /* not UTF-8: as is */
            json_decref(str);
            sp(r, "<|eot_id|>");
        } else {
            body = header(r, role);
            put_trimmed(b, msgs[i].content);
            sp(r, "<|eot_id|>");
        }
        bool assistant = !tool_result && (msgs[i].tool_name || !strcmp(role, "assistant"));
        r->msg[i] = (chat_msg_place){begin, body, b->n, assistant};
    }
    if (!p || p->add_generation_prompt) header(r, "assistant");
    return HERD_OK;
}

void chat_rendered_free(chat_rendered *r) {
    free(r->text.p);
    free(r->sp_off);
    free(r->sp_len);
    free(r->msg);
    memset(r, 0, sizeof *r);
}

int herd_chat_format(const herd_chat_message *msgs, size_t n, const herd_chat_params *p, char **text) {
    chat_rendered r;
    *text = NULL;
    int rc = chat_render(msgs, n, p, &r);
    if (rc) return rc;
    *text = r.text.p;
    r.text.p = NULL;
    chat_rendered_free(&r);
    return HERD_OK;
}
