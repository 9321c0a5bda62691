/* OpenAI's file_search tool, accepted in chat completions (the Responses API's shape):
 *
 *   "tools": [{"type": "file_search", "vector_store_ids": ["vs_..."], "max_num_results": 5,
 *              "filters": {...}, "ranking_options": {"score_threshold": 0.2}}]
 *
 * The server searches those stores (herd serve --store) with the text of the last user message before
 * anything is generated, and rewrites that message as herd chat --store does: the results numbered [1],
 * [2] ... with their file names, the request to cite them, then the question. The answer carries what was
 * used as a top-level "file_search_call" object (the Responses API's output item: id, type, status,
 * queries, results [{file_id, filename, score, text, attributes, vector_store_id, chunk_id}]); streamed,
 * it is on the first chunk. Other tools of the request are left to routes.c. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "http.h"

static enum MHD_Result bad(http_req *r, const char *msg) {
    return http_send_error(r, 400, "invalid_request_error", "tools", NULL, "%s", msg);
}

/* The text of a message's content: a string, or the "text" of its parts. NULL if it has none. */
static char *message_text(json_t *c) {
    if (json_is_string(c)) return strdup(json_string_value(c));
    strbuf b = {0};
    size_t i;
    json_t *p;
    json_array_foreach(c, i, p) {
        json_t *t = json_object_get(p, "text");
        if (json_is_string(t)) {
            if (b.n) strbuf_puts(&b, "\n");
            strbuf_puts(&b, json_string_value(t));
        }
    }
    if (!b.n) {
        free(b.p);
        return NULL;
    }
    strbuf_put(&b, "", 1);
    return b.p;
}

bool file_search_apply(http_req *r, json_t *b, enum MHD_Result *res) {
    json_object_del(b, FILE_SEARCH_KEY);
    json_t *tools = json_object_get(b, "tools"), *spec = NULL, *t;
    size_t i;
    json_array_foreach(tools, i, t) {
        json_t *ty = json_object_get(t, "type");
        if (json_is_string(ty) && !strcmp(json_string_value(ty), "file_search")) {
            if (spec) {
                *res = bad(r, "only one file_search tool per request");
                return true;
            }
            spec = t;
        }
    }
    if (!spec) return false;
    json_t *ids = json_object_get(spec, "vector_store_ids"), *v, *filters = json_object_get(spec, "filters");
    bool ok = json_is_array(ids) && json_array_size(ids) >= 1 && json_array_size(ids) <= 16;
    json_array_foreach(ids, i, v) ok &= json_is_string(v);
    if (!ok) {
        *res = bad(r, "file_search: 'vector_store_ids' must be an array of 1..16 vector store ids");
        return true;
    }
    json_t *kj = json_object_get(spec, "max_num_results");
    if (kj && (!json_is_integer(kj) || json_integer_value(kj) < 1 || json_integer_value(kj) > 50)) {
        *res = bad(r, "file_search: 'max_num_results' must be an integer from 1 to 50");
        return true;
    }
    int64_t k = kj ? json_integer_value(kj) : 5;
    if (filters && !json_is_null(filters) && !json_is_object(filters)) {
        *res = bad(r, "file_search: 'filters' must be an object");
        return true;
    }
    json_t *thr = json_object_get(json_object_get(spec, "ranking_options"), "score_threshold");
    double threshold = json_is_number(thr) ? json_number_value(thr) : -2;
    /* the query: the last user message */
    json_t *msgs = json_object_get(b, "messages"), *last = NULL, *m;
    json_array_foreach(msgs, i, m) {
        json_t *role = json_object_get(m, "role");
        if (json_is_string(role) && !strcmp(json_string_value(role), "user")) last = m;
    }
    char *q = last ? message_text(json_object_get(last, "content")) : NULL;
    if (!q || !q[0]) {
        free(q);
        *res = http_send_error(r, 400, "invalid_request_error", "messages", NULL,
                               "file_search needs a user message with text to search for");
        return true;
    }
    json_t *results;
    int rc = vector_stores_retrieve(r, ids, q, k, json_is_object(filters) ? filters : NULL, &results);
    if (rc) {
        free(q);
        const char *msg = herd_last_error();
        *res = http_send_error(r, strstr(msg, "no vector store") ? 404 : 400, "invalid_request_error",
                               strstr(msg, "no vector store") ? "vector_store_ids" : "tools",
                               strstr(msg, "no vector store") ? "not_found" : NULL, "file_search: %s", msg);
        return true;
    }
    for (size_t j = json_array_size(results); j-- > 0;)
        if (json_real_value(json_object_get(json_array_get(results, j), "score")) < threshold)
            json_array_remove(results, j);
    if (json_array_size(results) > 0) { /* the message as herd chat --store writes it */
        strbuf p = {0};
        strbuf_puts(&p, "Answer the question using the documents below. Cite the documents you use by their number "
                        "in brackets, like [1], and say so if they do not contain the answer.\n\n");
        json_array_foreach(results, i, v) {
            char head[64];
            snprintf(head, sizeof head, "[%zu] (source: ", i + 1);
            strbuf_puts(&p, head);
            strbuf_puts(&p, json_string_value(json_object_get(v, "filename")));
            strbuf_puts(&p, ")\n");
            strbuf_puts(&p, json_string_value(json_object_get(v, "text")));
            strbuf_puts(&p, "\n\n");
        }
        strbuf_puts(&p, "Question: ");
        strbuf_puts(&p, q);
        strbuf_put(&p, "", 1);
        json_object_set_new(last, "content", json_string(p.p));
        free(p.p);
    }
    /* the tool is done: the model sees only the others */
    json_t *rest = json_array();
    json_array_foreach(tools, i, t) if (t != spec) json_array_append(rest, t);
    json_object_set_new(b, "tools", rest);
    /* a choice of this tool is fulfilled; "required" with no other tool too */
    json_t *choice = json_object_get(b, "tool_choice");
    if ((json_is_object(choice) && json_is_string(json_object_get(choice, "type")) &&
         !strcmp(json_string_value(json_object_get(choice, "type")), "file_search")) ||
        (json_is_string(choice) && !strcmp(json_string_value(choice), "required") && !json_array_size(rest)))
        json_object_del(b, "tool_choice");
    char id[40] = "fs_";
    unsigned char rnd[12] = {0};
    FILE *ur = fopen("/dev/urandom", "rb");
    if (!ur || fread(rnd, 1, sizeof rnd, ur) != sizeof rnd) memcpy(rnd, &b, sizeof b < sizeof rnd ? sizeof b : sizeof rnd);
    if (ur) fclose(ur);
    for (int j = 0; j < 12; j++) snprintf(id + 3 + 2 * j, sizeof id - 3 - 2 * (size_t)j, "%02x", rnd[j]);
    json_object_set_new(b, FILE_SEARCH_KEY,
                        json_pack("{s:s, s:s, s:s, s:[s], s:o}", "id", id, "type", "file_search_call", "status",
                                  "completed", "queries", q, "results", results));
    free(q);
    return false;
}
