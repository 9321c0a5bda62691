/* Tool-call parsing (see toolcall.h). */
#include "toolcall.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"

static const char k_tag[] = TOOLCALL_PYTHON_TAG;
static const char k_fn[] = "<function=";

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void add_call(herd_parsed_output *out, const char *name, size_t nlen, json_t *args, bool builtin) {
    out->calls = herd_xrealloc(out->calls, (size_t)(out->n_calls + 1) * sizeof *out->calls);
    herd_tool_call *c = &out->calls[out->n_calls++];
    c->name = herd_xstrndup(name, nlen);
    c->arguments = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
    c->builtin = builtin;
}

static void clear_calls(herd_parsed_output *out) {
    for (int i = 0; i < out->n_calls; i++) {
        free(out->calls[i].name);
        free(out->calls[i].arguments);
    }
    free(out->calls);
    out->calls = NULL;
    out->n_calls = 0;
}

/* One JSON call object: {"name": s, "parameters"|"arguments": object or JSON text of one}, with an
 * optional "type": "function". */
static bool json_call(herd_parsed_output *out, json_t *o) {
    if (!json_is_object(o)) return false;
    json_t *name = json_object_get(o, "name"), *type = json_object_get(o, "type");
    json_t *args = json_object_get(o, "parameters");
    if (!args) args = json_object_get(o, "arguments");
    if (!json_is_string(name) || json_string_length(name) == 0 || !args) return false;
    if (type && !(json_is_string(type) && !strcmp(json_string_value(type), "function"))) return false;
    size_t allowed = 2 + (type != NULL);
    if (json_object_size(o) != allowed) return false; /* anything else: not a call */
    json_t *a = args;
    bool owned = false;
    if (json_is_string(args)) { /* arguments given as JSON text */
        json_error_t err;
        a = json_loads(json_string_value(args), 0, &err);
        owned = true;
    }
    bool ok = json_is_object(a);
    if (ok) add_call(out, json_string_value(name), json_string_length(name), a, false);
    if (owned) json_decref(a);
    return ok;
}

/* One or more JSON call objects, separated by ';' or whitespace, filling all of s[0..n). */
static bool json_calls(herd_parsed_output *out, const char *s, size_t n) {
    size_t at = 0;
    int found = 0;
    while (at < n) {
        while (at < n && (is_space(s[at]) || s[at] == ';')) at++;
        if (at == n) break;
        if (s[at] != '{') return false;
        json_error_t err;
        json_t *o = json_loadb(s + at, n - at, JSON_DISABLE_EOF_CHECK, &err);
        if (!o) return false;
        bool ok = json_call(out, o);
        json_decref(o);
        if (!ok) return false;
        at += (size_t)err.position;
        found++;
    }
    return found > 0;
}

/* name.call(k="v", k2=3, ...) covering all of s[0..n) (trailing spaces allowed). */
static bool builtin_call(herd_parsed_output *out, const char *s, size_t n) {
    size_t i = 0;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_')) i++;
    size_t nlen = i;
    if (nlen == 0 || n - i < 6 || memcmp(s + i, ".call(", 6) != 0) return false;
    i += 6;
    json_t *args = json_object();
    for (;;) {
        while (i < n && is_space(s[i])) i++;
        if (i < n && s[i] == ')') {
            i++;
            break;
        }
        size_t k0 = i;
        while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_')) i++;
        size_t k1 = i;
        while (i < n && is_space(s[i])) i++;
        if (k1 == k0 || i >= n || s[i] != '=') goto bad;
        i++;
        while (i < n && is_space(s[i])) i++;
        if (i >= n) goto bad;
        json_t *v;
        if (s[i] == '"' || s[i] == '\'') { /* a quoted string with backslash escapes */
            char q = s[i++];
            strbuf val = {0};
            strbuf_put(&val, "", 0);
            while (i < n && s[i] != q) {
                if (s[i] == '\\' && i + 1 < n) {
                    char e = s[++i];
                    char c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
                    strbuf_put(&val, &c, 1);
                } else {
                    strbuf_put(&val, &s[i], 1);
                }
                i++;
            }
            if (i >= n) {
                free(val.p);
                goto bad;
            }
            i++;
            v = json_stringn(val.p, val.n);
            free(val.p);
            if (!v) goto bad;
        } else { /* a number or true/false */
            size_t v0 = i;
            while (i < n && s[i] != ',' && s[i] != ')' && !is_space(s[i])) i++;
            json_error_t err;
            v = json_loadb(s + v0, i - v0, JSON_DECODE_ANY, &err);
            if (!v || !(json_is_number(v) || json_is_boolean(v))) {
                json_decref(v);
                goto bad;
            }
        }
        char *key = herd_xstrndup(s + k0, k1 - k0);
        json_object_set_new(args, key, v);
        free(key);
        while (i < n && is_space(s[i])) i++;
        if (i < n && s[i] == ',') i++;
        else if (!(i < n && s[i] == ')')) goto bad;
    }
    while (i < n && is_space(s[i])) i++;
    if (i != n) goto bad;
    add_call(out, s, nlen, args, true);
    json_decref(args);
    return true;
bad:
    json_decref(args);
    return false;
}

/* <function=name>{...}</function> repeated, covering all of s[0..n). */
static bool function_tags(herd_parsed_output *out, const char *s, size_t n) {
    size_t i = 0;
    int found = 0;
    while (i < n) {
        while (i < n && is_space(s[i])) i++;
        if (i == n) break;
        if (n - i < sizeof k_fn - 1 || memcmp(s + i, k_fn, sizeof k_fn - 1) != 0) return false;
        i += sizeof k_fn - 1;
        size_t n0 = i;
        while (i < n && s[i] != '>') i++;
        if (i >= n || i == n0) return false;
        size_t n1 = i++;
        const char *end = memmem(s + i, n - i, "</function>", 11);
        if (!end) return false;
        json_error_t err;
        json_t *args = json_loadb(s + i, (size_t)(end - (s + i)), 0, &err);
        if (!json_is_object(args)) {
            json_decref(args);
            return false;
        }
        add_call(out, s + n0, n1 - n0, args, false);
        json_decref(args);
        i = (size_t)(end - s) + 11;
        found++;
    }
    return found > 0;
}

int herd_parse_tool_calls(const char *text, size_t len, herd_parsed_output *out) {
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < len && is_space(text[i])) i++;
    const char *s = text + i;
    size_t n = len - i;
    bool parsed = false;
    if (n >= sizeof k_tag - 1 && memcmp(s, k_tag, sizeof k_tag - 1) == 0) {
        const char *b = s + sizeof k_tag - 1;
        size_t bn = n - (sizeof k_tag - 1);
        size_t j = 0;
        while (j < bn && is_space(b[j])) j++;
        parsed = json_calls(out, b + j, bn - j);
        if (!parsed) clear_calls(out), parsed = builtin_call(out, b + j, bn - j);
        if (!parsed && bn - j > 0) { /* raw python for the code interpreter */
            clear_calls(out);
            json_t *code = json_stringn(b + j, bn - j);
            if (code) {
                json_t *args = json_pack("{s:o}", "code", code);
                add_call(out, "code_interpreter", 16, args, true);
                json_decref(args);
                parsed = true;
            }
        }
    } else if (n > 0 && s[0] == '{') {
        parsed = json_calls(out, s, n);
    } else if (n >= sizeof k_fn - 1 && memcmp(s, k_fn, sizeof k_fn - 1) == 0) {
        parsed = function_tags(out, s, n);
    }
    if (!parsed) {
        clear_calls(out);
        out->content = herd_xstrndup(text, len);
        out->content_len = len;
    } else {
        out->content = herd_xstrndup("", 0);
    }
    return HERD_OK;
}

void herd_parsed_output_free(herd_parsed_output *out) {
    clear_calls(out);
    free(out->content);
    memset(out, 0, sizeof *out);
}

/* ---- streaming --------------------------------------------------------------------------------- */

enum { TS_UNDECIDED, TS_CONTENT, TS_MAYBE_CALL };

void tool_stream_init(tool_stream *ts) {
    memset(ts, 0, sizeof *ts);
    strbuf_put(&ts->buf, "", 0);
}

void tool_stream_free(tool_stream *ts) {
    free(ts->buf.p);
    memset(ts, 0, sizeof *ts);
}

/* Whether s[0..n) (leading whitespace skipped) starts a call, cannot, or cannot tell yet. */
static int classify(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && is_space(s[i])) i++;
    if (i == n) return TS_UNDECIDED;
    s += i;
    n -= i;
    if (s[0] == '{') return TS_MAYBE_CALL;
    const char *pre[2] = {k_tag, k_fn};
    for (int k = 0; k < 2; k++) {
        size_t L = strlen(pre[k]);
        if (memcmp(s, pre[k], n < L ? n : L) == 0) return n >= L ? TS_MAYBE_CALL : TS_UNDECIDED;
    }
    return TS_CONTENT;
}

size_t tool_stream_feed(tool_stream *ts, const char *s, size_t n, size_t *from) {
    strbuf_put(&ts->buf, s, n);
    *from = ts->released;
    if (ts->mode == TS_UNDECIDED) ts->mode = classify(ts->buf.p, ts->buf.n);
    if (ts->mode != TS_CONTENT) return 0;
    size_t k = ts->buf.n - ts->released;
    ts->released = ts->buf.n;
    return k;
}

int tool_stream_finish(tool_stream *ts, herd_parsed_output *out) {
    if (ts->mode == TS_CONTENT) { /* everything was released as content already */
        memset(out, 0, sizeof *out);
        out->content = herd_xstrndup(ts->buf.p + ts->released, ts->buf.n - ts->released);
        out->content_len = ts->buf.n - ts->released;
        ts->released = ts->buf.n;
        return HERD_OK;
    }
    herd_parse_tool_calls(ts->buf.p + ts->released, ts->buf.n - ts->released, out);
    ts->released = ts->buf.n;
    return HERD_OK;
}

/* ---- public wrappers --------------------------------------------------------------------------- */

struct herd_tool_stream {
    tool_stream ts;
};

herd_tool_stream *herd_tool_stream_new(void) {
    herd_tool_stream *h = herd_xcalloc(1, sizeof *h);
    tool_stream_init(&h->ts);
    return h;
}

size_t herd_tool_stream_feed(herd_tool_stream *h, const char *s, size_t n, const char **content) {
    size_t from, k = tool_stream_feed(&h->ts, s, n, &from);
    *content = h->ts.buf.p + from;
    return k;
}

int herd_tool_stream_finish(herd_tool_stream *h, herd_parsed_output *out) {
    return tool_stream_finish(&h->ts, out);
}

void herd_tool_stream_free(herd_tool_stream *h) {
    if (!h) return;
    tool_stream_free(&h->ts);
    free(h);
}
