/* /v1/batches (OpenAI's Batch API) over the file store (files.h) and the herd batch runner (src/batch):
 * create from an uploaded input file, retrieve, list, cancel; one batch at a time runs in a background
 * thread that posts its lines to this server's own routes over loopback (batch_run_client), so they share
 * the engine's slots with other clients (continuous batching). docs/API.md#files-and-batches.
 *
 * On disk, under DATA_DIR/batches/: ID.json, the batch object, rewritten atomically at every status change;
 * ID.out.jsonl, the runner's output, appended line by line (batch.h says how a torn last line is cut).
 * Statuses: validating (checked at create) → in_progress → finalizing → completed; cancelling → cancelled;
 * failed. What survives a crash or restart: a batch that was validating, in_progress or finalizing is taken
 * up again at the next start, resuming after the lines already in ID.out.jsonl (no line twice, none lost);
 * a cancelling one becomes cancelled. Finalizing splits ID.out.jsonl into the output file (lines answered
 * 2xx) and the error file (the others), both purpose "batch_output" in the file store. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/log.h"
#include "../batch/batch.h"
#include "files.h"
#include "http.h"

static const char *const k_endpoints[] = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"};

struct batch_state {
    server *s;
    char dir[4096];      /* DATA_DIR/batches */
    char base_url[300];  /* this server, as the runner reaches it */
    pthread_mutex_t mu;  /* everything below */
    pthread_cond_t cv;
    pthread_t th;
    bool started;
    bool stopping;       /* server shutdown: the runner leaves the current batch in_progress */
    volatile int stop_cur; /* the running batch stops taking lines (cancel or shutdown) */
    json_t *all;         /* {id: batch object} */
    char cur[64];        /* the running batch's id, "" when none */
    int64_t live_ok, live_failed; /* its request counts so far */
};

static int64_t now_unix(void) {
    return (int64_t)time(NULL);
}

static int save(struct batch_state *b, json_t *obj) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.json", b->dir, json_string_value(json_object_get(obj, "id")));
    char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rc = s ? files_write_atomic(path, s, strlen(s)) : -1;
    free(s);
    if (rc != 0) fprintf(stderr, "herd serve: warning: cannot write %s: %s\n", path, strerror(errno));
    return rc;
}

static void set_status(struct batch_state *b, json_t *obj, const char *status, const char *at_field) {
    json_object_set_new(obj, "status", json_string(status));
    if (at_field) json_object_set_new(obj, at_field, json_integer(now_unix()));
    save(b, obj);
}

static bool valid_batch_id(const char *id) {
    if (!id || strncmp(id, "batch_", 6) != 0 || strlen(id) != 30) return false;
    for (const char *p = id + 6; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

/* Counts the runner output's complete lines: answered 2xx, or not. */
static void scan_output(const char *path, int64_t *ok, int64_t *failed) {
    *ok = *failed = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') break;
        json_t *j = json_loadb(line, (size_t)len - 1, 0, NULL);
        json_int_t st = json_integer_value(json_object_get(json_object_get(j, "response"), "status_code"));
        if (j && json_is_null(json_object_get(j, "error")) && st >= 200 && st < 300) (*ok)++;
        else if (j) (*failed)++;
        json_decref(j);
    }
    free(line);
    fclose(f);
}

/* Splits ID.out.jsonl into the output and error files, registers them, and ends the batch in `status`
 * (completed or cancelled). Called by the runner without mu. */
static void finalize(struct batch_state *b, json_t *obj, const char *status) {
    const char *id = json_string_value(json_object_get(obj, "id"));
    char out[4200], okp[4200], errp[4200];
    snprintf(out, sizeof out, "%s/%s.out.jsonl", b->dir, id);
    snprintf(okp, sizeof okp, "%s/%s.output.jsonl", b->dir, id);
    snprintf(errp, sizeof errp, "%s/%s.errors.jsonl", b->dir, id);
    FILE *in = fopen(out, "rb"), *fo = fopen(okp, "wb"), *fe = fopen(errp, "wb");
    int64_t n_ok = 0, n_err = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (in && fo && fe && (len = getline(&line, &cap, in)) > 0) {
        if (line[len - 1] != '\n') break; /* a torn tail (a crash mid-write): not a result */
        json_t *j = json_loadb(line, (size_t)len - 1, 0, NULL);
        if (!j) continue;
        json_int_t st = json_integer_value(json_object_get(json_object_get(j, "response"), "status_code"));
        bool good = json_is_null(json_object_get(j, "error")) && st >= 200 && st < 300;
        fwrite(line, 1, (size_t)len, good ? fo : fe);
        good ? n_ok++ : n_err++;
        json_decref(j);
    }
    free(line);
    if (in) fclose(in);
    bool io_ok = fo && fe;
    if (fo) io_ok &= fclose(fo) == 0;
    if (fe) io_ok &= fclose(fe) == 0;
    json_t *fok = NULL, *ferr = NULL;
    char name[128];
    if (io_ok && n_ok) {
        snprintf(name, sizeof name, "%s_output.jsonl", id);
        io_ok &= files_adopt(b->s->files, "batch_output", name, okp, &fok) == HERD_OK;
    }
    if (io_ok && n_err) {
        snprintf(name, sizeof name, "%s_error.jsonl", id);
        io_ok &= files_adopt(b->s->files, "batch_output", name, errp, &ferr) == HERD_OK;
    }
    unlink(okp), unlink(errp);
    pthread_mutex_lock(&b->mu);
    json_object_set_new(obj, "output_file_id", fok ? json_incref(json_object_get(fok, "id")) : json_null());
    json_object_set_new(obj, "error_file_id", ferr ? json_incref(json_object_get(ferr, "id")) : json_null());
    json_t *rc = json_object_get(obj, "request_counts");
    json_object_set_new(rc, "completed", json_integer(n_ok));
    json_object_set_new(rc, "failed", json_integer(n_err));
    if (!io_ok) {
        json_object_set_new(obj, "errors",
                            json_pack("{s:s,s:[{s:s,s:s,s:n,s:n}]}", "object", "list", "data", "code", "storage_error",
                                      "message", "the output files could not be written", "param", "line"));
        set_status(b, obj, "failed", "failed_at");
    } else
        set_status(b, obj, status, !strcmp(status, "completed") ? "completed_at" : "cancelled_at");
    pthread_mutex_unlock(&b->mu);
    json_decref(fok), json_decref(ferr);
    if (io_ok) unlink(out);
}

static void on_line(void *user, bool ok) {
    struct batch_state *b = user;
    pthread_mutex_lock(&b->mu);
    ok ? b->live_ok++ : b->live_failed++;
    pthread_mutex_unlock(&b->mu);
}

/* The oldest unfinished batch, or NULL; mu held. */
static json_t *next_batch(struct batch_state *b) {
    json_t *best = NULL, *o;
    const char *k;
    json_object_foreach(b->all, k, o) {
        const char *st = json_string_value(json_object_get(o, "status"));
        if (strcmp(st, "validating") && strcmp(st, "in_progress") && strcmp(st, "finalizing") &&
            strcmp(st, "cancelling"))
            continue;
        json_int_t t = json_integer_value(json_object_get(o, "created_at")),
                   tb = best ? json_integer_value(json_object_get(best, "created_at")) : 0;
        if (!best || t < tb || (t == tb && strcmp(k, json_string_value(json_object_get(best, "id"))) < 0)) best = o;
    }
    return best;
}

static void *runner(void *arg) {
    struct batch_state *b = arg;
    server *s = b->s;
    pthread_mutex_lock(&b->mu);
    while (!b->stopping) {
        json_t *obj = next_batch(b);
        if (!obj) {
            pthread_cond_wait(&b->cv, &b->mu);
            continue;
        }
        json_incref(obj);
        const char *st = json_string_value(json_object_get(obj, "status"));
        if (!strcmp(st, "cancelling") || !strcmp(st, "finalizing")) {
            bool cancelled = !strcmp(st, "cancelling");
            pthread_mutex_unlock(&b->mu);
            finalize(b, obj, cancelled ? "cancelled" : "completed");
            json_decref(obj);
            pthread_mutex_lock(&b->mu);
            continue;
        }
        const char *id = json_string_value(json_object_get(obj, "id"));
        char in[4200], out[4200];
        snprintf(out, sizeof out, "%s/%s.out.jsonl", b->dir, id);
        if (files_path(s->files, json_string_value(json_object_get(obj, "input_file_id")), in, sizeof in) != 0) {
            json_object_set_new(obj, "errors",
                                json_pack("{s:s,s:[{s:s,s:s,s:n,s:n}]}", "object", "list", "data", "code",
                                          "input_file_missing", "message", "the input file was deleted",
                                          "param", "line"));
            set_status(b, obj, "failed", "failed_at");
            json_decref(obj);
            continue;
        }
        if (json_is_null(json_object_get(obj, "in_progress_at")))
            json_object_set_new(obj, "in_progress_at", json_integer(now_unix()));
        set_status(b, obj, "in_progress", NULL);
        snprintf(b->cur, sizeof b->cur, "%s", id);
        b->stop_cur = 0;
        scan_output(out, &b->live_ok, &b->live_failed);
        pthread_mutex_unlock(&b->mu);

        batch_config bc = {.input = in,
                           .output = out,
                           .parallel = s->cfg.batch_parallel > 0 ? s->cfg.batch_parallel : 4,
                           .model_id = s->model_id,
                           .n_ctx_slot = s->cfg.n_ctx_slot,
                           .max_body = s->cfg.max_body,
                           .fsync_interval_s = 1.0,
                           .stop = &b->stop_cur,
                           .on_line = on_line,
                           .on_line_user = b};
        batch_stats bs;
        int rc = batch_run_client(&bc, b->base_url, s->api_key, &bs);

        pthread_mutex_lock(&b->mu);
        b->cur[0] = 0;
        st = json_string_value(json_object_get(obj, "status"));
        if (b->stopping && strcmp(st, "cancelling")) { /* shutdown: resumed at the next start */
            json_decref(obj);
            break;
        }
        if (rc != HERD_OK) {
            json_object_set_new(obj, "errors",
                                json_pack("{s:s,s:[{s:s,s:s,s:n,s:n}]}", "object", "list", "data", "code",
                                          "runner_error", "message", herd_last_error(), "param", "line"));
            set_status(b, obj, "failed", "failed_at");
        } else {
            bool cancelled = !strcmp(st, "cancelling");
            if (!cancelled) set_status(b, obj, "finalizing", "finalizing_at");
            pthread_mutex_unlock(&b->mu);
            finalize(b, obj, cancelled ? "cancelled" : "completed");
            pthread_mutex_lock(&b->mu);
        }
        json_decref(obj);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int batch_routes_start(server *s) {
    struct batch_state *b = herd_xcalloc(1, sizeof *b);
    b->s = s;
    snprintf(b->dir, sizeof b->dir, "%s/batches", s->cfg.data_dir);
    if (mkdir(b->dir, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        free(b);
        return herd_err(HERD_E_IO, "serve: cannot create %s: %s", s->cfg.data_dir, strerror(e));
    }
    const char *h = s->cfg.host;
    if (!strcmp(h, "0.0.0.0") || !*h) h = "127.0.0.1";
    if (!strcmp(h, "::")) h = "::1";
    snprintf(b->base_url, sizeof b->base_url, strchr(h, ':') ? "http://[%s]:%d" : "http://%s:%d", h, s->port);
    b->all = json_object();
    DIR *d = opendir(b->dir);
    struct dirent *de;
    while (d && (de = readdir(d))) { /* the batches of earlier runs */
        char id[64], path[4400]; /* dir (< 4096) + '/' + a name (<= 255) */
        size_t L = strlen(de->d_name);
        if (L != 35 || strcmp(de->d_name + 30, ".json")) continue;
        snprintf(id, sizeof id, "%.30s", de->d_name);
        if (!valid_batch_id(id)) continue;
        snprintf(path, sizeof path, "%s/%s", b->dir, de->d_name);
        json_t *o = json_load_file(path, 0, NULL);
        if (json_is_object(o) && json_is_string(json_object_get(o, "status")))
            json_object_set_new(b->all, id, o);
        else {
            fprintf(stderr, "herd serve: warning: %s is not a batch object; ignored\n", path);
            json_decref(o);
        }
    }
    if (d) closedir(d);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    s->batches = b;
    if (pthread_create(&b->th, NULL, runner, b) == 0) b->started = true;
    return HERD_OK;
}

void batch_routes_stop(server *s) {
    struct batch_state *b = s->batches;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stopping = true;
    b->stop_cur = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (b->started) pthread_join(b->th, NULL);
    json_decref(b->all);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
    s->batches = NULL;
}

/* The batch object as a client sees it (live request counts while it runs); mu held. */
static json_t *view(struct batch_state *b, json_t *obj) {
    json_t *v = json_deep_copy(obj);
    if (b->cur[0] && !strcmp(b->cur, json_string_value(json_object_get(obj, "id")))) {
        json_t *rc = json_object_get(v, "request_counts");
        json_object_set_new(rc, "completed", json_integer(b->live_ok));
        json_object_set_new(rc, "failed", json_integer(b->live_failed));
    }
    return v;
}

/* POST /v1/batches: checks the request and the input file, stores the batch as validating. */
static enum MHD_Result create(http_req *r, struct batch_state *b, json_t *body) {
    json_t *fid = json_object_get(body, "input_file_id"), *ep = json_object_get(body, "endpoint"),
           *cw = json_object_get(body, "completion_window"), *md = json_object_get(body, "metadata");
    if (!json_is_string(fid))
        return http_send_error(r, 400, "invalid_request_error", "input_file_id", "invalid_value",
                               "'input_file_id' must be a string");
    const char *endpoint = NULL;
    for (size_t i = 0; json_is_string(ep) && i < 3; i++)
        if (!strcmp(json_string_value(ep), k_endpoints[i])) endpoint = k_endpoints[i];
    if (!endpoint)
        return http_send_error(r, 400, "invalid_request_error", "endpoint", "invalid_value",
                               "'endpoint' must be /v1/chat/completions, /v1/completions or /v1/embeddings");
    if (!json_is_string(cw) || strcmp(json_string_value(cw), "24h"))
        return http_send_error(r, 400, "invalid_request_error", "completion_window", "invalid_value",
                               "'completion_window' must be \"24h\"");
    if (md && !json_is_null(md)) {
        const char *k;
        json_t *v;
        bool ok = json_is_object(md) && json_object_size(md) <= 16;
        json_object_foreach(md, k, v) ok &= strlen(k) <= 64 && json_is_string(v) && json_string_length(v) <= 512;
        if (!ok)
            return http_send_error(r, 400, "invalid_request_error", "metadata", "invalid_value",
                                   "'metadata' must be an object of at most 16 strings (keys <= 64, values <= 512 chars)");
    }
    const char *file_id = json_string_value(fid);
    json_t *file = files_get(r->srv->files, file_id);
    if (!file)
        return http_send_error(r, 404, "invalid_request_error", "input_file_id", "file_not_found",
                               "no file with id '%.64s'", file_id);
    const char *purpose = json_string_value(json_object_get(file, "purpose"));
    if (!purpose || strcmp(purpose, "batch")) {
        enum MHD_Result res = http_send_error(r, 400, "invalid_request_error", "input_file_id", "invalid_purpose",
                                              "file '%s' has purpose '%s'; a batch's input needs purpose 'batch'",
                                              file_id, purpose ? purpose : "");
        json_decref(file);
        return res;
    }
    json_decref(file);
    /* every line is a request (checked at upload); here: for this endpoint */
    char path[4200];
    FILE *f = files_path(r->srv->files, file_id, path, sizeof path) == 0 ? fopen(path, "rb") : NULL;
    if (!f) return http_send_error(r, 500, "server_error", NULL, "storage_error", "cannot read file '%s'", file_id);
    char *line = NULL, msg[600] = "";
    size_t cap = 0;
    ssize_t len;
    int64_t ln = 0, total = 0;
    while (!msg[0] && (len = getline(&line, &cap, f)) >= 0) {
        ln++;
        size_t L = (size_t)len;
        while (L > 0 && (line[L - 1] == '\n' || line[L - 1] == '\r')) L--;
        size_t k = 0;
        while (k < L && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == L) continue;
        char *cid = NULL, *bd = NULL, m[512];
        const char *url = NULL, *code = NULL;
        if (batch_parse_line(line, L, (size_t)1 << 40, &cid, &url, &bd, &code, m, sizeof m) != 0)
            snprintf(msg, sizeof msg, "line %lld of the input file is not a request: %s", (long long)ln, m);
        else if (strcmp(url, endpoint))
            snprintf(msg, sizeof msg, "line %lld of the input file has url %s, not the batch's endpoint %s",
                     (long long)ln, url, endpoint);
        free(cid), free(bd);
        total++;
    }
    free(line);
    fclose(f);
    if (msg[0]) return http_send_error(r, 400, "invalid_request_error", "input_file_id", "invalid_batch_file", "%s", msg);
    char id[40] = "batch_";
    {
        static const char hx[] = "0123456789abcdef";
        unsigned char rb[12];
        FILE *u = fopen("/dev/urandom", "rb");
        size_t got = u ? fread(rb, 1, sizeof rb, u) : 0;
        if (u) fclose(u);
        for (size_t i = got; i < sizeof rb; i++) rb[i] = (unsigned char)(rand() ^ (int)time(NULL));
        for (int i = 0; i < 12; i++) id[6 + 2 * i] = hx[rb[i] >> 4], id[7 + 2 * i] = hx[rb[i] & 15];
        id[30] = 0;
    }
    int64_t t = now_unix();
    json_t *obj = json_object();
    json_object_set_new(obj, "id", json_string(id));
    json_object_set_new(obj, "object", json_string("batch"));
    json_object_set_new(obj, "endpoint", json_string(endpoint));
    json_object_set_new(obj, "errors", json_null());
    json_object_set_new(obj, "input_file_id", json_string(file_id));
    json_object_set_new(obj, "completion_window", json_string("24h"));
    json_object_set_new(obj, "status", json_string("validating"));
    json_object_set_new(obj, "output_file_id", json_null());
    json_object_set_new(obj, "error_file_id", json_null());
    json_object_set_new(obj, "created_at", json_integer(t));
    json_object_set_new(obj, "in_progress_at", json_null());
    json_object_set_new(obj, "expires_at", json_integer(t + 86400));
    static const char *const k_at[] = {"finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
                                       "cancelled_at"};
    for (int i = 0; i < 6; i++) json_object_set_new(obj, k_at[i], json_null());
    json_object_set_new(obj, "request_counts", json_pack("{s:I,s:I,s:I}", "total", (json_int_t)total, "completed",
                                                         (json_int_t)0, "failed", (json_int_t)0));
    json_object_set_new(obj, "metadata", md ? json_incref(md) : json_null());
    pthread_mutex_lock(&b->mu);
    if (save(b, obj) != 0) {
        pthread_mutex_unlock(&b->mu);
        json_decref(obj);
        return http_send_error(r, 500, "server_error", NULL, "storage_error", "the batch could not be stored");
    }
    json_object_set(b->all, id, obj);
    json_t *v = json_deep_copy(obj); /* the runner may change obj as soon as mu is released */
    json_decref(obj);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return http_send_json(r, 200, v);
}

static json_t *list_all(struct batch_state *b) {
    json_t *arr = json_array(), *o;
    const char *k;
    json_object_foreach(b->all, k, o) {
        json_t *v = view(b, o);
        size_t i = 0, n = json_array_size(arr); /* insertion: newest first */
        json_int_t t = json_integer_value(json_object_get(v, "created_at"));
        while (i < n) {
            json_t *x = json_array_get(arr, i);
            json_int_t tx = json_integer_value(json_object_get(x, "created_at"));
            if (tx < t || (tx == t && strcmp(json_string_value(json_object_get(x, "id")), k) < 0)) break;
            i++;
        }
        json_array_insert_new(arr, i, v);
    }
    return arr;
}

enum MHD_Result route_batches(http_req *r) {
    server *s = r->srv;
    struct batch_state *b = s->batches;
    const char *u = r->url + 11; /* after "/v1/batches" */
    bool get = !strcmp(r->method, "GET"), post = !strcmp(r->method, "POST");
    r->route = !*u ? "/v1/batches" : strstr(u, "/cancel") ? "/v1/batches/{id}/cancel" : "/v1/batches/{id}";
    if (!b)
        return http_send_error(r, 404, "invalid_request_error", NULL, "not_found",
                               "batches are off: start herd serve with --data-dir DIR");
    if (!*u) {
        if (get) {
            pthread_mutex_lock(&b->mu);
            json_t *all = list_all(b);
            pthread_mutex_unlock(&b->mu);
            return http_send_json(r, 200, http_list_page(r, all, 20));
        }
        if (!post) return http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "use GET or POST on /v1/batches");
        if (r->too_large)
            return http_send_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                                   "the request body exceeds the limit of %zu bytes", s->cfg.max_body);
        json_error_t err;
        json_t *body = json_loadb(r->body.p ? r->body.p : "", r->body.n, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(body)) {
            json_decref(body);
            return http_send_error(r, 400, "invalid_request_error", NULL, "invalid_json", "the body must be a JSON object");
        }
        enum MHD_Result res = create(r, b, body);
        json_decref(body);
        return res;
    }
    char id[64];
    const char *rest = u + 1 + strcspn(u + 1, "/");
    snprintf(id, sizeof id, "%.*s", (int)(rest - u - 1 < 63 ? rest - u - 1 : 63), u + 1);
    bool cancel = !strcmp(rest, "/cancel");
    if (*u != '/' || (*rest && !cancel))
        return http_send_error(r, 404, "invalid_request_error", NULL, "not_found", "no route %s %s", r->method, r->url);
    if ((cancel && !post) || (!cancel && !get))
        return http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "use %s on %s",
                               cancel ? "POST" : "GET", r->url);
    pthread_mutex_lock(&b->mu);
    json_t *obj = valid_batch_id(id) ? json_object_get(b->all, id) : NULL;
    if (!obj) {
        pthread_mutex_unlock(&b->mu);
        return http_send_error(r, 404, "invalid_request_error", "batch_id", "batch_not_found", "no batch with id '%s'", id);
    }
    if (cancel) {
        const char *st = json_string_value(json_object_get(obj, "status"));
        if (strcmp(st, "validating") && strcmp(st, "in_progress") && strcmp(st, "cancelling")) {
            pthread_mutex_unlock(&b->mu);
            return http_send_error(r, 409, "invalid_request_error", NULL, "batch_not_cancellable",
                                   "batch '%s' is %s; only a validating or in_progress batch can be cancelled", id, st);
        }
        if (strcmp(st, "cancelling")) set_status(b, obj, "cancelling", "cancelling_at");
        if (!strcmp(b->cur, id)) b->stop_cur = 1;
        pthread_cond_broadcast(&b->cv);
    }
    json_t *v = view(b, obj);
    pthread_mutex_unlock(&b->mu);
    return http_send_json(r, 200, v);
}
