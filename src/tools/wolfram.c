/* wolfram_alpha: the Wolfram|Alpha Full Results API (JSON output), condensed to pod titles and
 * their plain text. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/strbuf.h"
#include "http.h"
#include "tools.h"

#define TOOL_NAME "wolfram_alpha"

#define WOLFRAM_URL "https://api.wolframalpha.com/v2/query"

char *tool_wolfram_alpha(const char *query, const herd_tool_params *p) {
    const char *appid = getenv("WOLFRAM_ALPHA_APP_ID");
    if (!appid || !*appid)
        return tool_error_json("wolfram_alpha",
                               "WOLFRAM_ALPHA_APP_ID is not set, so herd cannot ask Wolfram|Alpha");
    const char *base = getenv("HERD_WOLFRAM_URL");
    if (!base || !*base) base = WOLFRAM_URL;
    char *q = http_escape(query), *id = http_escape(appid);
    size_t ul = strlen(base) + strlen(q) + strlen(id) + 64;
    char *url = malloc(ul);
    snprintf(url, ul, "%s?input=%s&appid=%s&format=plaintext&output=json", base, q, id);
    const char *headers[] = {"Accept: application/json", NULL};
    http_response r;
    char err[256];
    int rc = http_get(url, headers, p->timeout_s, 4 << 20, &r, err, sizeof err);
    free(url);
    free(q);
    free(id);
    if (rc != 0) return tool_error_json("wolfram_alpha", err);
    char *out = NULL;
    json_error_t je;
    json_t *doc = r.status == 200 ? json_loadb(r.body, r.len, 0, &je) : NULL;
    json_t *qr = json_object_get(doc, "queryresult");
    if (r.status != 200) {
        snprintf(err, sizeof err, "the API answered HTTP %ld", r.status);
        out = tool_error_json("wolfram_alpha", err);
    } else if (!json_is_object(qr)) {
        out = tool_error_json("wolfram_alpha", "the API's answer is not the expected JSON");
    } else if (!json_is_true(json_object_get(qr, "success"))) {
        out = tool_error_json("wolfram_alpha", "Wolfram|Alpha did not understand the query or has no answer");
    } else {
        json_t *pods = json_array(), *src = json_object_get(qr, "pods");
        for (size_t i = 0; i < json_array_size(src); i++) {
            json_t *pod = json_array_get(src, i), *subs = json_object_get(pod, "subpods");
            strbuf text = {0};
            for (size_t k = 0; k < json_array_size(subs); k++) {
                const char *t = json_string_value(json_object_get(json_array_get(subs, k), "plaintext"));
                if (!t || !*t) continue;
                if (text.n) strbuf_puts(&text, "\n");
                strbuf_puts(&text, t);
            }
            const char *title = json_string_value(json_object_get(pod, "title"));
            if (text.n)
                json_array_append_new(pods,
                                      json_pack("{s:s,s:s}", "title", title ? title : "", "text", text.p));
            free(text.p);
        }
        json_t *res = json_pack("{s:s,s:o}", "query", query, "pods", pods);
        out = res ? json_dumps(res, JSON_COMPACT) : NULL;
        if (!out) out = tool_error_json(TOOL_NAME, "the query is not valid UTF-8");
        json_decref(res);
    }
    json_decref(doc);
    http_response_free(&r);
    return out;
}
