/* Internal to src/server: the per-request state, response helpers and the route handlers. */
#ifndef HERD_SERVER_HTTP_H
#define HERD_SERVER_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "../base/strbuf.h"
#include "metrics.h"
#include "server.h"

struct server {
    struct MHD_Daemon *d;
    engine *e;
    server_config cfg;
    char *model_id;
    char *api_key;
    int port;
    metrics met;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;           /* requests being handled (guarded by mu) */
    _Atomic int script_next; /* next scripted output (test-only) */
    bool closing;
    pthread_mutex_t pg_mu;   /* Prompt Guard: one classification at a time (promptguard.c) */
    struct files_store *files;     /* --data-dir: the file store (files.h); NULL: off */
    struct batch_state *batches;   /* --data-dir: the batch runner (batch_routes.c) */
    pthread_mutex_t score_mu;      /* prompt_logprobs.c: one prompt scored at a time on score_ctx */
    herd_context *score_ctx;       /* created on first use; NULL: not yet */
};

typedef struct {
    server *srv;
    struct MHD_Connection *conn;
    char method[16];
    char *url;
    strbuf body;
    bool too_large;
    bool counted;            /* in srv->in_flight */
    bool responded;
    const char *route;       /* metrics label, a static string */
    int status;
    double t0;
} http_req;

double http_now(void);

/* Responses (each queues exactly one response on the connection). `body` is stolen. */
enum MHD_Result http_send_json(http_req *r, int status, json_t *body);
enum MHD_Result http_send_text(http_req *r, int status, const char *content_type, const char *text, size_t len);
/* OpenAI-style error: {"error": {"message", "type", "param", "code"}}. */
enum MHD_Result http_send_error(http_req *r, int status, const char *type, const char *param, const char *code,
                                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* A streamed body (Server-Sent Events) produced by `fill` until it returns -1. fill appends to out
 * and returns 0 (more later), or -1 (end). free_cb is called once when the stream is over or the
 * client is gone. */
typedef int (*http_fill_fn)(void *user, strbuf *out);
enum MHD_Result http_send_stream(http_req *r, http_fill_fn fill, void (*free_cb)(void *user), void *user);

/* The connection's socket (for http_fd_gone), or -1. */
int http_conn_fd(http_req *r);
/* True when the client has closed its side of the connection (poll for RDHUP; no read). */
bool http_fd_gone(int fd);

/* Waits for the next engine event, checking for a vanished client every 100 ms.
 * Returns 1 with an event, 0 when the client is gone (the request is then cancelled). */
int http_wait_event(int fd, engine_req *er, engine_event *ev);

/* Routes (routes.c); each returns what MHD expects. */
enum MHD_Result route_chat_completions(http_req *r, json_t *body);
enum MHD_Result route_completions(http_req *r, json_t *body);
enum MHD_Result route_embeddings(http_req *r, json_t *body);
/* vector_routes.c: answers /v1/vector_stores..., /v1/vector-io/... and /v1/tool-runtime/rag-tool/...
 * (true, *res set); false for any other URL. */
bool vector_routes_dispatch(http_req *r, enum MHD_Result *res);
/* The best k chunks over the vector stores ids (a JSON array of strings) for query (filters: an OpenAI
 * filter object or NULL), best first: OUT *results, a new array of {file_id, filename, score, attributes,
 * text, vector_store_id, chunk_id}. HERD_E_ARG naming an unknown store (or a server without --store). */
int vector_stores_retrieve(http_req *r, json_t *ids, const char *query, int64_t k, json_t *filters, json_t **results);
/* file_search.c: OpenAI's file_search tool in chat completions. Takes the {"type": "file_search", ...}
 * entries out of b's tools, retrieves for the last user message and rewrites it with the results, and
 * puts the report (a file_search_call object) under FILE_SEARCH_KEY in b, a key no client can set (it is
 * removed first). true (*res set) when it answered with an error. */
#define FILE_SEARCH_KEY "\x01file_search_call"
bool file_search_apply(http_req *r, json_t *b, enum MHD_Result *res);
enum MHD_Result route_models(http_req *r);
enum MHD_Result route_model(http_req *r, const char *id);
/* Safety (shields.c): Llama Stack shields, OpenAI moderations, answered by the guard model. */
enum MHD_Result route_shields(http_req *r);
enum MHD_Result route_shield(http_req *r, const char *id);
enum MHD_Result route_run_shield(http_req *r, json_t *body);
enum MHD_Result route_moderations(http_req *r, json_t *body);
/* Files and batches (files.c, batch_routes.c; with --data-dir): each route parses its own path and
 * method below /v1/files and /v1/batches. */
enum MHD_Result route_files(http_req *r);
enum MHD_Result route_batches(http_req *r);
/* A cursor page of a list (newest first) by the query's limit, after and order:
 * {"object":"list","data","first_id","last_id","has_more"}. Steals all. */
json_t *http_list_page(http_req *r, json_t *all, int default_limit);
/* The batch runner: started at the end of server_start (resuming unfinished batches), stopped first
 * thing in server_shutdown (lines in flight finish; the batch resumes at the next start). */
int batch_routes_start(server *s);
void batch_routes_stop(server *s);
/* echo + logprobs (prompt_logprobs.c): the legacy logprobs object of the prompt's n tokens (the first
 * with null logprob and top_logprobs; top alternatives per position) and the prompt's text as the pieces
 * give it (the echo, so that text_offset indexes it). OUT (on success): *lp, *echo (caller frees).
 * HERD_E_RANGE when the prompt exceeds the context. */
int server_prompt_logprobs(server *s, const int32_t *ids, int64_t n, int top, json_t **lp, char **echo);
/* Slot KV save / restore / erase (slots.c): POST /slots/{id}?action=... */
enum MHD_Result route_slots(http_req *r, const char *id, json_t *body);
/* The chat page (page.c). */
extern const char k_chat_page_html[];

#endif
