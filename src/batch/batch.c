/* herd batch runner (see batch.h): input lines checked here, requests answered by the server's routes over
 * loopback HTTP, output appended line by line and resumable. */
#include "batch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/jsonl.h"
#include "../base/log.h"
#include "../base/randhex.h"
#include "../base/strbuf.h"

static const char *const k_urls[] = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"};

int batch_parse_line(const char *line, size_t len, size_t max_body, char **custom_id, const char **url,
                     char **body, const char **code, char *msg, size_t msg_cap) {
    *custom_id = NULL, *url = NULL, *body = NULL, *code = NULL;
    json_error_t je;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (len > max_body) { /* the line was read whole; it is parsed only to name its custom_id */
        json_t *cid = json_object_get(j, "custom_id");
        if (json_is_string(cid)) *custom_id = strdup(json_string_value(cid));
        json_decref(j);
        *code = "request_too_large";
        snprintf(msg, msg_cap, "the line (%zu bytes) exceeds the limit of %zu bytes (--max-body)", len,
                 max_body);
        return -1;
    }
    if (!j) {
        *code = "invalid_json";
        snprintf(msg, msg_cap, "the line is not JSON: %s (column %d)", je.text, je.column);
        return -1;
    }
    int rc = -1;
    json_t *cid = json_object_get(j, "custom_id"), *m = json_object_get(j, "method"),
           *u = json_object_get(j, "url"), *b = json_object_get(j, "body");
    if (!json_is_object(j)) {
        *code = "invalid_request";
        snprintf(msg, msg_cap, "the line is not a JSON object");
        goto out;
    }
    if (json_is_string(cid)) *custom_id = strdup(json_string_value(cid));
    if (!json_is_string(cid) || !json_string_length(cid)) {
        *code = "missing_custom_id";
        snprintf(msg, msg_cap, "\"custom_id\" must be a non-empty string");
        goto out;
    }
    if (!json_is_string(m) || strcmp(json_string_value(m), "POST")) {
        *code = "invalid_method";
        snprintf(msg, msg_cap, "\"method\" must be \"POST\"");
        goto out;
    }
    if (!json_is_string(u)) {
        *code = "invalid_url";
        snprintf(msg, msg_cap, "\"url\" must be a string");
        goto out;
    }
    for (size_t i = 0; i < sizeof k_urls / sizeof *k_urls; i++)
        if (!strcmp(json_string_value(u), k_urls[i])) *url = k_urls[i];
    if (!*url) {
        *code = "invalid_url";
        snprintf(
            msg, msg_cap,
            "url '%.200s' is not supported (use /v1/chat/completions, /v1/completions or /v1/embeddings)",
            json_string_value(u));
        goto out;
    }
    if (!json_is_object(b)) {
        *code = "invalid_body";
        snprintf(msg, msg_cap, "\"body\" must be a JSON object");
        goto out;
    }
    if (json_is_true(json_object_get(b, "stream"))) {
        *code = "invalid_body";
        snprintf(msg, msg_cap, "\"stream\": true is not supported in a batch");
        goto out;
    }
    *body = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*body) {
        *code = "invalid_body";
        snprintf(msg, msg_cap, "\"body\" cannot be serialized");
        goto out;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* ---- the job ---- */

typedef struct {
    char *custom_id; /* NULL: none */
    const char *url; /* NULL: an error line */
    char *body;
    const char *code;
    char *msg;
    bool skip; /* done in an earlier run */
} job_line;

typedef struct {
    const batch_config *cfg;
    job_line *lines;
    int64_t n;
    const char *base_url;
    const char *api_key; /* NULL: none */
    pthread_mutex_t mu;
    int64_t next; /* next line to take (mu) */
    int fd;       /* output, O_APPEND */
    int io_error; /* errno of a failed write (mu) */
    double t0, last_sync, last_progress;
    int64_t todo, done;
    batch_stats *st;
    char run_tag[13];
} job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void progress(job *jb, bool final) {
    double t = now_s();
    if (!jb->cfg->progress || (!final && t - jb->last_progress < 0.5)) return;
    jb->last_progress = t;
    double el = t - jb->t0, tps = el > 0 ? (double)jb->st->completion_tokens / el : 0;
    double eta = jb->done > 0 ? el * (double)(jb->todo - jb->done) / (double)jb->done : 0;
    bool tty = isatty(2);
    fprintf(stderr, "%sherd batch: %lld/%lld lines, %.1f tok/s, ETA %d:%02d%s", tty ? "\r" : "",
            (long long)jb->done, (long long)jb->todo, tps, (int)(eta / 60), (int)eta % 60,
            tty && !final ? "   " : "\n");
    fflush(stderr);
}

/* Appends one whole line (with its newline) to the output; mu held. */
static void emit(job *jb, json_t *obj, bool ok) {
    char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (!s) return;
    size_t n = strlen(s);
    s[n] = '\n'; /* json_dumps' terminator becomes the newline; written as one piece */
    size_t off = 0;
    while (off < n + 1 && !jb->io_error) {
        ssize_t w = write(jb->fd, s + off, n + 1 - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            jb->io_error = errno ? errno : EIO;
        else
            off += (size_t)w;
    }
    free(s);
    if (ok)
        jb->st->ok++;
    else
        jb->st->failed++;
    jb->done++;
    double t = now_s();
    if (t - jb->last_sync >= jb->cfg->fsync_interval_s) {
        fdatasync(jb->fd);
        jb->last_sync = t;
    }
    progress(jb, false);
    if (jb->cfg->on_line) jb->cfg->on_line(jb->cfg->on_line_user, ok);
}

static json_t *line_head(job *jb, int64_t i) {
    char id[64];
    char r[13];
    herd_random_hex(r, 12);
    /* the input line number is part of the id: a rerun knows which lines are done */
    snprintf(id, sizeof id, "batch_req_%010lld_%s", (long long)i, r);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "custom_id",
                        jb->lines[i].custom_id ? json_string(jb->lines[i].custom_id) : json_null());
    return o;
}

typedef struct {
    strbuf buf;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *user) {
    strbuf_put(&((sink *)user)->buf, p, size * n);
    return size * n;
}

static void *worker(void *arg) {
    job *jb = arg;
    CURL *c = curl_easy_init();
    char auth[512];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", jb->api_key ? jb->api_key : "");
    struct curl_slist *h = jb->api_key ? curl_slist_append(NULL, auth) : NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    for (;;) {
        pthread_mutex_lock(&jb->mu);
        int64_t i = jb->next;
        while (i < jb->n && jb->lines[i].skip) i++;
        jb->next = i + 1;
        bool stop = i >= jb->n || jb->io_error || (jb->cfg->stop && *jb->cfg->stop);
        pthread_mutex_unlock(&jb->mu);
        if (stop) break;
        job_line *L = &jb->lines[i];
        json_t *o = line_head(jb, i);
        bool ok = false;
        if (!L->url) {
            json_object_set_new(o, "response", json_null());
            json_object_set_new(o, "error", json_pack("{s:s,s:s}", "code", L->code, "message", L->msg));
        } else {
            char url[600], rid[40] = "req_";
            snprintf(url, sizeof url, "%s%s", jb->base_url, L->url);
            herd_random_hex(rid + 4, 24);
            sink s = {{0}};
            curl_easy_reset(c);
            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, L->body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(L->body));
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
            CURLcode cr = curl_easy_perform(c);
            long status = 0;
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
            json_error_t je;
            json_t *body = cr == CURLE_OK && s.buf.p ? json_loadb(s.buf.p, s.buf.n, 0, &je) : NULL;
            if (!body) {
                json_object_set_new(o, "response", json_null());
                json_object_set_new(
                    o, "error",
                    json_pack("{s:s,s:s}", "code", "server_error", "message",
                              cr != CURLE_OK ? curl_easy_strerror(cr) : "the answer is not JSON"));
            } else {
                json_t *u = json_object_get(body, "usage");
                int64_t pt = json_integer_value(json_object_get(u, "prompt_tokens"));
                int64_t ct = json_integer_value(json_object_get(u, "completion_tokens"));
                json_object_set_new(o, "response",
                                    json_pack("{s:i,s:s,s:o}", "status_code", (json_int_t)status,
                                              "request_id", rid, "body", body));
                json_object_set_new(o, "error", json_null());
                ok = status >= 200 && status < 300;
                pthread_mutex_lock(&jb->mu);
                jb->st->prompt_tokens += pt, jb->st->completion_tokens += ct;
                pthread_mutex_unlock(&jb->mu);
            }
            strbuf_free(&s.buf);
        }
        pthread_mutex_lock(&jb->mu);
        emit(jb, o, ok);
        pthread_mutex_unlock(&jb->mu);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* ---- resuming: what the output already holds ---- */

typedef struct {
    json_t *by_line; /* {"<line>": custom_id or null} from our ids */
    json_t *ids;     /* {custom_id: true} of lines whose id is not ours */
} done_set;

typedef struct {
    done_set *d;
    int64_t n;
} done_ctx;

static void done_line(void *ctx, json_t *j) {
    done_ctx *c = ctx;
    const char *id = json_string_value(json_object_get(j, "id"));
    json_t *cid = json_object_get(j, "custom_id");
    long long ln;
    char key[32];
    if (id && sscanf(id, "batch_req_%lld_", &ln) == 1 && ln >= 0) {
        snprintf(key, sizeof key, "%lld", ln);
        json_object_set(c->d->by_line, key, json_is_string(cid) ? cid : json_null());
    } else if (json_is_string(cid))
        json_object_set_new(c->d->ids, json_string_value(cid), json_true());
    c->n++;
}

/* Reads the output's complete lines; cuts a torn tail. HERD_E_IO on failure. */
static int read_done(const char *path, done_set *d, int64_t *n_done, int64_t *torn_bytes) {
    d->by_line = json_object(), d->ids = json_object();
    done_ctx c = {d, 0};
    int rc = jsonl_read_back(path, done_line, &c, torn_bytes);
    *n_done = c.n;
    return rc;
}

static bool is_done(const done_set *d, int64_t i, const char *cid) {
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)i);
    json_t *v = json_object_get(d->by_line, key);
    if (v) {
        if (json_is_null(v)) return cid == NULL;
        return cid && !strcmp(json_string_value(v), cid);
    }
    return cid && json_object_get(d->ids, cid);
}

/* The job over a running server (see batch.h). */
static int run_job(const batch_config *cfg, const char *base_url, const char *api_key,
                   batch_stats *st) {
    memset(st, 0, sizeof *st);
    FILE *in = fopen(cfg->input, "rb");
    if (!in) return herd_err(HERD_E_IO, "cannot read %s: %s", cfg->input, strerror(errno));
    done_set d;
    int64_t n_out = 0;
    int rc = read_done(cfg->output, &d, &n_out, &st->torn_bytes);
    if (rc != HERD_OK) {
        fclose(in);
        json_decref(d.by_line), json_decref(d.ids);
        return rc;
    }
    job jb = {.cfg = cfg, .st = st, .fd = -1};
    pthread_mutex_init(&jb.mu, NULL);
    json_t *seen = json_object();
    char *line = NULL;
    size_t cap = 0, ncap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, in)) >= 0) {
        size_t L = (size_t)len;
        while (L > 0 && (line[L - 1] == '\n' || line[L - 1] == '\r')) L--;
        size_t k = 0;
        while (k < L && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == L) continue; /* blank lines are not requests */
        if ((size_t)jb.n == ncap) {
            ncap = ncap ? 2 * ncap : 256;
            jb.lines = realloc(jb.lines, ncap * sizeof *jb.lines);
        }
        job_line *jl = &jb.lines[jb.n];
        memset(jl, 0, sizeof *jl);
        char msg[512] = "";
        if (batch_parse_line(line, L, cfg->max_body, &jl->custom_id, &jl->url, &jl->body, &jl->code, msg,
                             sizeof msg) != 0)
            jl->url = NULL;
        if (jl->custom_id) {
            if (json_object_get(seen, jl->custom_id) && jl->url) {
                free(jl->body);
                jl->body = NULL, jl->url = NULL, jl->code = "duplicate_custom_id";
                snprintf(msg, sizeof msg, "custom_id '%.200s' was used by an earlier line", jl->custom_id);
            }
            json_object_set_new(seen, jl->custom_id, json_true());
        }
        if (!jl->url) jl->msg = strdup(msg);
        jl->skip = is_done(&d, jb.n, jl->custom_id);
        st->skipped += jl->skip;
        jb.n++;
    }
    bool read_err = ferror(in);
    free(line);
    fclose(in);
    json_decref(seen);
    json_decref(d.by_line), json_decref(d.ids);
    st->lines = jb.n;
    jb.todo = jb.n - st->skipped;
    if (read_err) rc = herd_err(HERD_E_IO, "cannot read %s", cfg->input);
    if (rc == HERD_OK) {
        jb.fd = open(cfg->output, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (jb.fd < 0) rc = herd_err(HERD_E_IO, "cannot write %s: %s", cfg->output, strerror(errno));
    }
    jb.base_url = base_url, jb.api_key = api_key;
    if (rc == HERD_OK && jb.todo > 0) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        jb.t0 = jb.last_sync = now_s();
        int nt = cfg->parallel < 1 ? 1 : cfg->parallel;
        pthread_t *th = calloc((size_t)nt, sizeof *th);
        int started = 0;
        for (int t = 0; t < nt; t++) started += pthread_create(&th[started], NULL, worker, &jb) == 0;
        if (!started) worker(&jb);
        for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
        free(th);
        st->seconds = now_s() - jb.t0;
        progress(&jb, true);
        if (jb.io_error) rc = herd_err(HERD_E_IO, "cannot write %s: %s", cfg->output, strerror(jb.io_error));
    }
    if (jb.fd >= 0) {
        if (fdatasync(jb.fd) != 0 && rc == HERD_OK)
            rc = herd_err(HERD_E_IO, "cannot sync %s: %s", cfg->output, strerror(errno));
        close(jb.fd);
    }
    for (int64_t i = 0; i < jb.n; i++)
        free(jb.lines[i].custom_id), free(jb.lines[i].body), free(jb.lines[i].msg);
    free(jb.lines);
    pthread_mutex_destroy(&jb.mu);
    return rc;
}

int batch_run_client(const batch_config *cfg, const char *base_url, const char *api_key, batch_stats *st) {
    return run_job(cfg, base_url, api_key, st);
}
