/* Tool-call parsing: a corpus of model outputs in every format Llama 3.1 emits, with malformed
 * variants, each parsed to the expected calls / content — and the streaming parser, fed the same
 * outputs split at every byte boundary and byte by byte, must agree exactly. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/toolcall.h"
#include "herd.h"
#include "testutil.h"

typedef struct {
    const char *in;
    int n_calls;
    const char *name[2];
    const char *args[2]; /* expected JSON (compared structurally) */
    bool builtin;
} tc;

#define T "<|python_tag|>"
static const tc k_cases[] = {
    /* built-in tools */
    {T "brave_search.call(query=\"Llama 3.1 release date\")", 1, {"brave_search"}, {"{\"query\": \"Llama 3.1 release date\"}"}, true},
    {T "wolfram_alpha.call(query=\"integrate x^2\")", 1, {"wolfram_alpha"}, {"{\"query\": \"integrate x^2\"}"}, true},
    {T " brave_search.call(query=\"a, b (c)\")  ", 1, {"brave_search"}, {"{\"query\": \"a, b (c)\"}"}, true},
    {T "brave_search.call(query=\"say \\\"hi\\\"\")", 1, {"brave_search"}, {"{\"query\": \"say \\\"hi\\\"\"}"}, true},
    {T "photogen.call(prompt='a cat', n=2, hd=true)", 1, {"photogen"}, {"{\"prompt\": \"a cat\", \"n\": 2, \"hd\": true}"}, true},
    {T "brave_search.call()", 1, {"brave_search"}, {"{}"}, true},
    {"\n\n" T "wolfram_alpha.call(query=\"2+2\")", 1, {"wolfram_alpha"}, {"{\"query\": \"2+2\"}"}, true},
    {T "brave_search.call(query=\"x\", )", 1, {"brave_search"}, {"{\"query\": \"x\"}"}, true},
    {T "brave_search.call(query=\"日本 😀\")", 1, {"brave_search"}, {"{\"query\": \"日本 😀\"}"}, true},
    /* raw python: the code interpreter */
    {T "print(2**10)", 1, {"code_interpreter"}, {"{\"code\": \"print(2**10)\"}"}, true},
    {T "import math\nprint(math.pi)\n", 1, {"code_interpreter"}, {"{\"code\": \"import math\\nprint(math.pi)\\n\"}"}, true},
    {T "brave_search.call(query=\"unterminated)", 1, {"code_interpreter"}, {"{\"code\": \"brave_search.call(query=\\\"unterminated)\"}"}, true},
    {T "x = {'a': 1}\nprint(x)", 1, {"code_interpreter"}, {"{\"code\": \"x = {'a': 1}\\nprint(x)\"}"}, true},
    /* JSON calls */
    {"{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", 1, {"get_weather"}, {"{\"city\": \"Paris\"}"}, false},
    {T "{\"type\": \"function\", \"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", 1, {"get_weather"}, {"{\"city\": \"Paris\"}"}, false},
    {"{\"type\": \"function\", \"name\": \"f\", \"parameters\": {}}", 1, {"f"}, {"{}"}, false},
    {"  {\"name\": \"f\", \"arguments\": {\"n\": 10}}\n", 1, {"f"}, {"{\"n\": 10}"}, false},
    {"{\"name\": \"f\", \"arguments\": \"{\\\"n\\\": 10}\"}", 1, {"f"}, {"{\"n\": 10}"}, false},
    {"{\"name\": \"f\", \"parameters\": {\"n\": 1}}; {\"name\": \"g\", \"parameters\": {\"m\": [1, 2]}}", 2, {"f", "g"},
     {"{\"n\": 1}", "{\"m\": [1, 2]}"}, false},
    {"{\"name\": \"f\", \"parameters\": {\"n\": 1}}\n{\"name\": \"g\", \"parameters\": {}}", 2, {"f", "g"}, {"{\"n\": 1}", "{}"}, false},
    {"{\"parameters\": {\"deep\": {\"a\": [{\"b\": null}]}}, \"name\": \"nest\"}", 1, {"nest"}, {"{\"deep\": {\"a\": [{\"b\": null}]}}"}, false},
    {"{\"name\": \"ünï\", \"parameters\": {\"s\": \"é\\n\\\"\"}}", 1, {"ünï"}, {"{\"s\": \"é\\n\\\"\"}"}, false},
    /* <function=...> */
    {"<function=get_weather>{\"city\": \"Rome\"}</function>", 1, {"get_weather"}, {"{\"city\": \"Rome\"}"}, false},
    {"<function=f>{}</function>", 1, {"f"}, {"{}"}, false},
    {"<function=a>{\"x\": 1}</function><function=b>{\"y\": 2}</function>", 2, {"a", "b"}, {"{\"x\": 1}", "{\"y\": 2}"}, false},
    {" <function=f>{\"n\": 10}</function> ", 1, {"f"}, {"{\"n\": 10}"}, false},
    /* plain content and malformed calls: content, no call */
    {"Hello! How can I help you today?", 0, {0}, {0}, false},
    {"", 0, {0}, {0}, false},
    {"   ", 0, {0}, {0}, false},
    {"The answer is {x}.", 0, {0}, {0}, false},
    {"{not json", 0, {0}, {0}, false},
    {"{\"name\": \"f\"}", 0, {0}, {0}, false},
    {"{\"name\": 5, \"parameters\": {}}", 0, {0}, {0}, false},
    {"{\"name\": \"f\", \"parameters\": [1, 2]}", 0, {0}, {0}, false},
    {"{\"name\": \"f\", \"parameters\": {}, \"extra\": 1}", 0, {0}, {0}, false},
    {"{\"name\": \"f\", \"parameters\": {}} and then some text", 0, {0}, {0}, false},
    {"{\"type\": \"other\", \"name\": \"f\", \"parameters\": {}}", 0, {0}, {0}, false},
    {"{\"name\": \"f\", \"arguments\": \"not json\"}", 0, {0}, {0}, false},
    {"<function=f>{\"n\": 10}", 0, {0}, {0}, false},
    {"<function=>{}</function>", 0, {0}, {0}, false},
    {"<function=f>[1]</function>", 0, {0}, {0}, false},
    {"<funky>text</funky>", 0, {0}, {0}, false},
    {"<|python_tags|> not the tag", 0, {0}, {0}, false},
    {T, 0, {0}, {0}, false},
    {T "   ", 0, {0}, {0}, false},
    {"Sure! {\"name\": \"f\", \"parameters\": {}}", 0, {0}, {0}, false},
    {"\xff\xfe invalid utf-8 {", 0, {0}, {0}, false},
};

static bool same_json(const char *a, const char *b) {
    json_error_t e;
    json_t *x = json_loads(a, 0, &e), *y = json_loads(b, 0, &e);
    bool eq = x && y && json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return eq;
}

static bool matches(const herd_parsed_output *o, const tc *c, const char *content, size_t content_len) {
    if (o->n_calls != c->n_calls) return false;
    for (int i = 0; i < c->n_calls; i++)
        if (strcmp(o->calls[i].name, c->name[i]) || !same_json(o->calls[i].arguments, c->args[i]) ||
            o->calls[i].builtin != c->builtin)
            return false;
    if (c->n_calls == 0) return content_len == strlen(c->in) && !memcmp(content, c->in, content_len);
    return content_len == 0;
}

/* Streams c->in in the given chunks; returns the released content + final content and the calls. */
static bool stream_ok(const tc *c, const size_t *cuts, int n_cuts) {
    tool_stream ts;
    tool_stream_init(&ts);
    strbuf content = {0};
    strbuf_put(&content, "", 0);
    size_t at = 0, len = strlen(c->in), from;
    for (int i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        size_t k = tool_stream_feed(&ts, c->in + at, end - at, &from);
        strbuf_put(&content, ts.buf.p + from, k);
        at = end;
    }
    herd_parsed_output o;
    tool_stream_finish(&ts, &o);
    strbuf_put(&content, o.content, o.content_len);
    bool ok = matches(&o, c, content.p, content.n);
    /* no part of a call may have been released as content */
    if (c->n_calls > 0 && content.n != 0) ok = false;
    herd_parsed_output_free(&o);
    tool_stream_free(&ts);
    free(content.p);
    return ok;
}

int main(void) {
    int n = (int)(sizeof k_cases / sizeof k_cases[0]);
    CHECK(n >= 40, "corpus of %d outputs", n);
    for (int i = 0; i < n; i++) {
        const tc *c = &k_cases[i];
        herd_parsed_output o;
        herd_parse_tool_calls(c->in, strlen(c->in), &o);
        CHECK(matches(&o, c, o.content, o.content_len), "case %d %s: got %d calls%s%s%s", i, c->in, o.n_calls,
              o.n_calls ? " (" : "", o.n_calls ? o.calls[0].arguments : "", o.n_calls ? ")" : "");
        herd_parsed_output_free(&o);
        size_t len = strlen(c->in);
        bool all = true;
        for (size_t k = 0; k <= len; k++) all &= stream_ok(c, &k, 1); /* two chunks split at k */
        size_t *cuts = malloc((len + 1) * sizeof *cuts);
        for (size_t k = 0; k < len; k++) cuts[k] = k + 1;
        all &= stream_ok(c, cuts, len > 0 ? (int)len - 1 : 0); /* byte by byte */
        free(cuts);
        CHECK(all, "case %d: streaming split at every byte agrees", i);
    }
    /* content streams out as it comes: a plain reply is released before the end */
    tool_stream ts;
    tool_stream_init(&ts);
    size_t from;
    CHECK(tool_stream_feed(&ts, "<|py", 4, &from) == 0, "a possible python_tag is held");
    CHECK(tool_stream_feed(&ts, "x", 1, &from) == 5 && from == 0, "then released at once when it is not");
    tool_stream_free(&ts);
    return TU_DONE("test_toolcall");
}
