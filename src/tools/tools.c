/* herd_builtin_tool_run: the dispatch to the built-in tools, and the code interpreter's result in
 * the shape Meta's llama-stack gives the model:
 *
 *   completed                      (or: completed with exit code N / timeout: ... / killed: ... / error: ...)
 *   [stdout]
 *   ...
 *   [/stdout]
 *   [stderr]
 *   ...
 *   [/stderr]
 *
 * a block only when its stream is not empty. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../base/strbuf.h"
#include "sandbox.h"
#include "tools.h"

/* Appends s with invalid UTF-8 (e.g. a sequence cut by the output cap) replaced by U+FFFD. */
static void put_utf8(strbuf *b, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] >> 6) == 2;
        if (ok && len == 2 && c < 0xc2) ok = false;
        if (ok && len == 3) {
            unsigned c1 = (unsigned char)s[i + 1];
            if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)) ok = false;
        }
        if (ok && len == 4) {
            unsigned c1 = (unsigned char)s[i + 1];
            if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90) || c > 0xf4) ok = false;
        }
        if (ok && c == 0) ok = false; /* NUL would end the message text */
        if (ok) {
            strbuf_put(b, s + i, len);
            i += len;
        } else {
            strbuf_puts(b, "\xef\xbf\xbd");
            i++;
        }
    }
}

static void put_stream(strbuf *b, const char *name, const char *s, size_t n, bool truncated) {
    if (n == 0 && !truncated) return;
    strbuf_puts(b, "\n[");
    strbuf_puts(b, name);
    strbuf_puts(b, "]\n");
    put_utf8(b, s, n);
    if (truncated) strbuf_puts(b, "\n[output truncated]");
    strbuf_puts(b, "\n[/");
    strbuf_puts(b, name);
    strbuf_puts(b, "]");
}

static char *code_interpreter(const char *code, const herd_tool_params *p) {
    sandbox_limits l;
    sandbox_default_limits(&l);
    if (p->timeout_s > 0) l.wall_s = p->timeout_s;
    if (p->cpu_s > 0) l.cpu_s = p->cpu_s;
    if (p->memory_bytes > 0) l.mem_bytes = p->memory_bytes;
    if (p->max_procs > 0) l.max_procs = p->max_procs;
    if (p->max_output > 0) l.max_output = p->max_output;
    sandbox_result r;
    if (sandbox_run_python(code, strlen(code), &l, &r) != 0) {
        strbuf b = {0};
        strbuf_puts(&b, "error: ");
        strbuf_puts(&b, herd_last_error());
        return b.p;
    }
    herd_log(1, "code_interpreter: sandbox layers: %s", r.layer_names);
    char status[256];
    if (r.error)
        snprintf(status, sizeof status, "error: %.200s", r.error);
    else if (r.timed_out)
        snprintf(status, sizeof status, "timeout: stopped after %g s (wall-clock limit)", l.wall_s);
    else if (r.term_signal == SIGXCPU)
        snprintf(status, sizeof status, "killed: CPU time limit of %d s reached", l.cpu_s);
    else if (r.term_signal)
        snprintf(status, sizeof status, "killed by signal %d (%s)", r.term_signal, strsignal(r.term_signal));
    else if (r.exit_code == 0)
        snprintf(status, sizeof status, "completed");
    else
        snprintf(status, sizeof status, "completed with exit code %d", r.exit_code);
    strbuf b = {0};
    strbuf_puts(&b, status);
    put_stream(&b, "stdout", r.out, r.out_len, r.out_truncated);
    put_stream(&b, "stderr", r.err, r.err_len, r.err_truncated);
    sandbox_result_free(&r);
    return b.p;
}

int herd_builtin_tool_run_ex(const char *name, const char *args_json, const herd_tool_params *params,
                             char **result) {
    *result = NULL;
    herd_tool_params p = params ? *params : (herd_tool_params){0};
    if (p.top_k <= 0) p.top_k = 3;
    bool code = name && !strcmp(name, "code_interpreter");
    bool brave = name && !strcmp(name, "brave_search"), wolfram = name && !strcmp(name, "wolfram_alpha");
    if (!code && !brave && !wolfram)
        return herd_err(HERD_E_ARG,
                        "unknown built-in tool '%s' (code_interpreter, brave_search, wolfram_alpha)",
                        name ? name : "(null)");
    if (!code && p.timeout_s <= 0) p.timeout_s = 15;
    const char *key = code ? "code" : "query";
    json_error_t je;
    json_t *args = json_loads(args_json ? args_json : "", 0, &je);
    const char *val = json_string_value(json_object_get(args, key));
    if (!val) {
        json_decref(args);
        return herd_err(HERD_E_ARG, "%s: the arguments must be a JSON object with a string \"%s\"", name,
                        key);
    }
    *result = code    ? code_interpreter(val, &p)
              : brave ? tool_brave_search(val, &p)
                      : tool_wolfram_alpha(val, &p);
    json_decref(args);
    return HERD_OK;
}

int herd_builtin_tool_run(const char *name, const char *args_json, char **result) {
    return herd_builtin_tool_run_ex(name, args_json, NULL, result);
}
