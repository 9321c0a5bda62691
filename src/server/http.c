/* HTTP core: the libmicrohttpd daemon, request bodies and limits, authentication, dispatch to the
 * routes, response helpers, SSE streaming and client-disconnect detection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../base/log.h"
#include "files.h"
#include "http.h"

double http_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void add_common_headers(struct MHD_Response *resp) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
}

static enum MHD_Result queue(http_req *r, int status, struct MHD_Response *resp) {
    add_common_headers(resp);
    r->status = status;
    r->responded = true;
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ok;
}

enum MHD_Result http_send_text(http_req *r, int status, const char *content_type, const char *text, size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", content_type);
    return queue(r, status, resp);
}

enum MHD_Result http_send_json(http_req *r, int status, json_t *body) {
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s) return http_send_text(r, 500, "application/json", "{\"error\":{\"message\":\"cannot encode\"}}", 37);
    enum MHD_Result ok = http_send_text(r, status, "application/json", s, strlen(s));
    free(s);
    return ok;
}

enum MHD_Result http_send_error(http_req *r, int status, const char *type, const char *param, const char *code,
                                const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *err = json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", msg, "type", type, "param",
                            param ? json_string(param) : json_null(), "code", code ? json_string(code) : json_null());
    if (!err) { /* a message that is not valid UTF-8: say so plainly */
        err = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", "invalid request", "type", type, "param",
                        "code");
    }
    if (status == 429 || status == 503) {
        char *s = json_dumps(err, JSON_COMPACT);
        json_decref(err);
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(resp, "Content-Type", "application/json");
        MHD_add_response_header(resp, "Retry-After", "1");
        return queue(r, status, resp);
    }
    return http_send_json(r, status, err);
}

int http_conn_fd(http_req *r) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

bool http_fd_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

int http_wait_event(int fd, engine_req *er, engine_event *ev) {
    for (;;) {
        if (engine_next_event(er, ev, 100)) return 1;
        if (http_fd_gone(fd)) {
            engine_cancel(er);
            return 0;
        }
    }
}

/* ---- streaming ------------------------------------------------------------------------------- */

typedef struct {
    http_req *r;
    http_fill_fn fill;
    void (*free_cb)(void *);
    void *user;
    strbuf out;
    size_t sent;
    bool ended;
} stream_state;

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_state *st = cls;
    while (st->sent == st->out.n) {
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        st->out.n = 0;
        st->sent = 0;
        if (st->fill(st->user, &st->out) < 0) st->ended = true;
        if (st->out.n == 0 && !st->ended) return MHD_CONTENT_READER_END_WITH_ERROR; /* client gone */
    }
    size_t k = st->out.n - st->sent < max ? st->out.n - st->sent : max;
    memcpy(buf, st->out.p + st->sent, k);
    st->sent += k;
    return (ssize_t)k;
}

static void stream_free(void *cls) {
    stream_state *st = cls;
    st->free_cb(st->user);
    free(st->out.p);
    free(st);
}

enum MHD_Result http_send_stream(http_req *r, http_fill_fn fill, void (*free_cb)(void *), void *user) {
    stream_state *st = herd_xcalloc(1, sizeof *st);
    st->r = r;
    st->fill = fill;
    st->free_cb = free_cb;
    st->user = user;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return queue(r, 200, resp);
}

/* ---- dispatch ------------------------------------------------------------------------------------ */

static bool auth_ok(http_req *r) {
    const char *key = r->srv->api_key;
    if (!key) return true;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    size_t a = strlen(h), b = strlen(key);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned char)(h[i] ^ key[i]); /* constant time */
    return diff == 0;
}

static enum MHD_Result dispatch(http_req *r) {
    server *s = r->srv;
    const char *m = r->method, *u = r->url;
    bool get = !strcmp(m, "GET"), post = !strcmp(m, "POST");
    if (!strcmp(m, "OPTIONS")) {
        r->route = "options";
        return http_send_text(r, 204, "text/plain", "", 0);
    }
    if (!strcmp(u, "/health")) {
        r->route = "/health";
        pthread_mutex_lock(&s->mu);
        bool closing = s->closing;
        pthread_mutex_unlock(&s->mu);
        if (closing) return http_send_error(r, 503, "unavailable", NULL, "shutting_down", "the server is shutting down");
        return http_send_json(r, 200, json_pack("{s:s}", "status", "ok"));
    }
    if (!auth_ok(r)) {
        r->route = "unauthorized";
        return http_send_error(r, 401, "invalid_request_error", NULL, "invalid_api_key",
                               "missing or invalid API key: send 'Authorization: Bearer <key>'");
    }
    if (get && (!strcmp(u, "/") || !strcmp(u, "/index.html"))) {
        r->route = "/";
        return http_send_text(r, 200, "text/html; charset=utf-8", k_chat_page_html, strlen(k_chat_page_html));
    }
    if (get && !strcmp(u, "/metrics")) {
        r->route = "/metrics";
        engine_stats es;
        engine_get_stats(s->e, &es);
        char *t = metrics_render(&s->met, &es);
        enum MHD_Result ok = http_send_text(r, 200, "text/plain; version=0.0.4", t, strlen(t));
        free(t);
        return ok;
    }
    if (get && !strcmp(u, "/v1/models")) {
        r->route = "/v1/models";
        return route_models(r);
    }
    if (get && !strcmp(u, "/v1/shields")) {
        r->route = "/v1/shields";
        return route_shields(r);
    }
    if (get && !strncmp(u, "/v1/shields/", 12)) {
        r->route = "/v1/shields/{id}";
        return route_shield(r, u + 12);
    }
    if (get && !strncmp(u, "/v1/models/", 11)) {
        r->route = "/v1/models/{id}";
        return route_model(r, u + 11);
    }
    if (!strcmp(u, "/v1/files") || !strncmp(u, "/v1/files/", 10)) return route_files(r);
    if (!strcmp(u, "/v1/batches") || !strncmp(u, "/v1/batches/", 12)) return route_batches(r);
    if (!strncmp(u, "/slots/", 7)) {
        r->route = "/slots/{id}";
        if (!post) return http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "use POST on %s", u);
        json_error_t err;
        json_t *body = r->body.n ? json_loadb(r->body.p, r->body.n, JSON_REJECT_DUPLICATES, &err) : json_object();
        if (!json_is_object(body)) {
            json_decref(body);
            return http_send_error(r, 400, "invalid_request_error", NULL, "invalid_json", "the body must be a JSON object");
        }
        enum MHD_Result ok = route_slots(r, u + 7, body);
        json_decref(body);
        return ok;
    }
    enum MHD_Result vres;
    if (vector_routes_dispatch(r, &vres)) return vres;
    static const struct {
        const char *path;
        enum MHD_Result (*fn)(http_req *, json_t *);
    } posts[] = {{"/v1/chat/completions", route_chat_completions},
                 {"/v1/completions", route_completions},
                 {"/v1/embeddings", route_embeddings},
                 {"/v1/safety/run-shield", route_run_shield},
                 {"/v1/moderations", route_moderations}};
    for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++) {
        if (strcmp(u, posts[i].path) != 0) continue;
        r->route = posts[i].path;
        if (!post) return http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "use POST on %s", u);
        if (r->too_large)
            return http_send_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                                   "the request body exceeds the limit of %zu bytes", s->cfg.max_body);
        json_error_t err;
        json_t *body = json_loadb(r->body.p ? r->body.p : "", r->body.n, JSON_REJECT_DUPLICATES, &err);
        if (!body)
            return http_send_error(r, 400, "invalid_request_error", NULL, "invalid_json",
                                   "the body is not valid JSON (line %d, column %d): %s", err.line, err.column, err.text);
        if (!json_is_object(body)) {
            json_decref(body);
            return http_send_error(r, 400, "invalid_request_error", NULL, "invalid_json", "the body must be a JSON object");
        }
        enum MHD_Result ok = posts[i].fn(r, body);
        json_decref(body);
        return ok;
    }
    r->route = "unknown";
    return http_send_error(r, 404, "invalid_request_error", NULL, "not_found", "no route %s %s", m, u);
}

/* The largest body a request may send: --max-body, or for an upload to /v1/files the file limit plus
 * room for the multipart framing. */
static size_t body_limit(const server *s, const char *method, const char *url) {
    if (s->files && !strcmp(method, "POST") && !strcmp(url, "/v1/files")) return s->cfg.max_file_bytes + 65536;
    return s->cfg.max_body;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = herd_xcalloc(1, sizeof *r);
        r->srv = s;
        r->conn = conn;
        r->t0 = http_now();
        r->route = "unknown";
        snprintf(r->method, sizeof r->method, "%s", method);
        r->url = herd_xstrndup(url, strlen(url));
        *con_cls = r;
        pthread_mutex_lock(&s->mu);
        bool closing = s->closing;
        if (!closing) {
            s->in_flight++;
            r->counted = true;
        }
        pthread_mutex_unlock(&s->mu);
        if (closing) return http_send_error(r, 503, "unavailable", NULL, "shutting_down", "the server is shutting down");
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        size_t limit = body_limit(s, method, url);
        if (cl && strtoull(cl, NULL, 10) > limit) {
            r->route = "too_large";
            return http_send_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                                   "the request body (%s bytes) exceeds the limit of %zu bytes", cl, limit);
        }
        return MHD_YES;
    }
    if (r->responded) { /* a response was queued early: drain and ignore the rest of the body */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (r->body.n + *upload_size > body_limit(s, r->method, r->url)) r->too_large = true;
        else strbuf_put(&r->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return dispatch(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    server *s = cls;
    http_req *r = *con_cls;
    if (!r) return;
    if (r->responded) metrics_request(&s->met, r->route, r->status);
    if (r->counted) {
        pthread_mutex_lock(&s->mu);
        s->in_flight--;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    free(r->url);
    free(r->body.p);
    free(r);
    *con_cls = NULL;
}

int server_start(engine *e, const server_config *cfg, server **out) {
    *out = NULL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t slen;
    bool v6 = strchr(cfg->host, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET6, cfg->host, &a->sin6_addr) != 1)
            return herd_err(HERD_E_ARG, "serve: '%s' is not an IPv6 address", cfg->host);
        slen = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET, cfg->host, &a->sin_addr) != 1)
            return herd_err(HERD_E_ARG, "serve: '%s' is not an IPv4 address", cfg->host);
        slen = sizeof *a;
    }
    (void)slen;
    server *s = herd_xcalloc(1, sizeof *s);
    s->e = e;
    s->cfg = *cfg;
    s->model_id = herd_xstrndup(cfg->model_id, strlen(cfg->model_id));
    s->api_key = cfg->api_key && *cfg->api_key ? herd_xstrndup(cfg->api_key, strlen(cfg->api_key)) : NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->pg_mu, NULL);
    pthread_mutex_init(&s->score_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    metrics_init(&s->met);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     (v6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->max_connections > 0 ? cfg->max_connections : 256),
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                            MHD_OPTION_END);
    if (!s->d) {
        int err = errno;
        metrics_free(&s->met);
        free(s->model_id);
        free(s->api_key);
        free(s);
        return herd_err(HERD_E_IO, "serve: cannot listen on %s:%d: %s", cfg->host, cfg->port,
                        err ? strerror(err) : "libmicrohttpd refused");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    if (cfg->data_dir) { /* files and batches: opened once the port is known (the runner posts to it) */
        int rc = files_store_open(cfg->data_dir, cfg->max_file_bytes, &s->files);
        if (rc == HERD_OK) rc = batch_routes_start(s);
        if (rc != HERD_OK) {
            MHD_stop_daemon(s->d);
            files_store_close(s->files);
            metrics_free(&s->met);
            free(s->model_id);
            free(s->api_key);
            free(s);
            return rc;
        }
    }
    *out = s;
    return HERD_OK;
}

int server_port(const server *s) {
    return s->port;
}

void server_shutdown(server *s) {
    if (!s) return;
    batch_routes_stop(s); /* before closing: the runner's requests in flight finish normally */
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_mutex_unlock(&s->mu);
    engine_close(s->e);
    /* stop accepting: close the listening socket, keep serving the connections we have */
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    pthread_mutex_lock(&s->mu);
    while (s->in_flight > 0) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->d);
    files_store_close(s->files);
    if (s->score_ctx) herd_context_free(s->score_ctx);
    pthread_mutex_destroy(&s->score_mu);
    metrics_free(&s->met);
    free(s->model_id);
    free(s->api_key);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->pg_mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
