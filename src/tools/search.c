/* brave_search: Brave's web search API, condensed to the top results (as llama-stack gives them). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "tools.h"

#define TOOL_NAME "brave_search"

#define BRAVE_URL "https://api.search.brave.com/res/v1/web/search"

char *tool_error_json(const char *tool, const char *msg) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s: %s", tool, msg);
    json_t *o = json_pack("{s:s}", "error", buf);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void put_str(json_t *dst, const char *key, json_t *src) {
    const char *v = json_string_value(json_object_get(src, key));
    if (v) json_object_set_new(dst, key, json_string(v));
}

char *tool_brave_search(const char *query, const herd_tool_params *p) {
    const char *key = getenv("BRAVE_API_KEY");
    if (!key || !*key)
        return tool_error_json("brave_search", "BRAVE_API_KEY is not set, so herd cannot search the web");
    const char *base = getenv("HERD_BRAVE_URL");
    if (!base || !*base) base = BRAVE_URL;
    char *q = http_escape(query);
    size_t ul = strlen(base) + strlen(q) + 32;
    char *url = malloc(ul);
    snprintf(url, ul, "%s?q=%s&count=%d", base, q, p->top_k);
    char hdr[512];
    snprintf(hdr, sizeof hdr, "X-Subscription-Token: %s", key);
    const char *headers[] = {"Accept: application/json", hdr, NULL};
    http_response r;
    char err[256];
    int rc = http_get(url, headers, p->timeout_s, 4 << 20, &r, err, sizeof err);
    free(url);
    free(q);
    if (rc != 0) return tool_error_json("brave_search", err);
    char *out = NULL;
    if (r.status != 200) {
        snprintf(err, sizeof err, "the search API answered HTTP %ld", r.status);
        out = tool_error_json("brave_search", err);
    } else {
        json_error_t je;
        json_t *doc = json_loadb(r.body, r.len, 0, &je);
        json_t *results = json_object_get(json_object_get(doc, "web"), "results");
        if (!doc) {
            out = tool_error_json("brave_search", "the search API's answer is not JSON");
        } else {
            json_t *top = json_array();
            for (size_t i = 0; i < json_array_size(results) && (int)json_array_size(top) < p->top_k; i++) {
                json_t *it = json_array_get(results, i), *o = json_object();
                put_str(o, "title", it);
                put_str(o, "url", it);
                put_str(o, "description", it);
                json_array_append_new(top, o);
            }
            json_t *res = json_pack("{s:s,s:o}", "query", query, "top_k", top);
            out = res ? json_dumps(res, JSON_COMPACT) : NULL;
            if (!out) out = tool_error_json(TOOL_NAME, "the query is not valid UTF-8");
            json_decref(res);
        }
        json_decref(doc);
    }
    http_response_free(&r);
    return out;
}
