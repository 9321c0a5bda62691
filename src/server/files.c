/* /v1/files: the on-disk file store (files.h), multipart/form-data uploads, and the routes (upload, list,
 * retrieve, content, delete) as OpenAI's Files API defines them (docs/API.md#files-and-batches). */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/log.h"
#include "../base/randhex.h"
#include "../batch/batch.h"
#include "http.h"

struct files_store {
    char *dir; /* DIR/files */
    size_t max_bytes;
    pthread_mutex_t mu; /* create / delete / list against each other */
};

/* ---- the store ---- */

static int mkdir_p(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

bool files_id_valid(const char *id) {
    if (!id || strncmp(id, "file-", 5) != 0 || strlen(id) != 29) return false;
    for (const char *p = id + 5; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

int files_write_atomic(const char *path, const void *data, size_t len) {
    static _Atomic unsigned tmp_seq;
    char tmp[4200];
    unsigned seq = tmp_seq++;
    snprintf(tmp, sizeof tmp, "%s.tmp%d.%u", path, (int)getpid(), seq);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd), unlink(tmp);
            return errno = e, -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return errno = e, -1;
    }
    return 0;
}

static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) fsync(fd), close(fd);
}

int files_store_open(const char *dir, size_t max_bytes, files_store **out) {
    *out = NULL;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/files", dir) >= (int)sizeof path)
        return herd_err(HERD_E_ARG, "serve: --data-dir '%.100s...' is too long", dir);
    if (mkdir_p(path) != 0) return herd_err(HERD_E_IO, "serve: cannot create %s: %s", path, strerror(errno));
    DIR *d = opendir(path);
    if (!d) return herd_err(HERD_E_IO, "serve: cannot read %s: %s", path, strerror(errno));
    /* a crash leaves temporaries and .data files without their .json: not files, removed */
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (n[0] == '.') continue;
        char id[64], meta[4200], p[4400]; /* path (< 4096) + '/' + a name (<= 255) */
        size_t L = strcspn(n, ".");
        bool tmp = strstr(n, ".tmp") != NULL;
        if (!tmp && (L >= sizeof id || strcmp(n + L, ".data"))) continue;
        snprintf(id, sizeof id, "%.*s", (int)(L < sizeof id ? L : sizeof id - 1), n);
        snprintf(meta, sizeof meta, "%s/%s.json", path, id);
        snprintf(p, sizeof p, "%s/%s", path, n);
        if (tmp || access(meta, F_OK) != 0) unlink(p);
    }
    closedir(d);
    files_store *fs = herd_xcalloc(1, sizeof *fs);
    fs->dir = herd_xstrndup(path, strlen(path));
    fs->max_bytes = max_bytes;
    pthread_mutex_init(&fs->mu, NULL);
    *out = fs;
    return HERD_OK;
}

void files_store_close(files_store *fs) {
    if (!fs) return;
    pthread_mutex_destroy(&fs->mu);
    free(fs->dir);
    free(fs);
}

size_t files_max_bytes(const files_store *fs) {
    return fs->max_bytes;
}

/* Writes the object of a file whose bytes are already at ID.data. */
static int publish(files_store *fs, const char *id, const char *purpose, const char *filename, size_t len,
                   json_t **obj) {
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:n}", "id", id, "object", "file", "bytes",
                          (json_int_t)len, "created_at", (json_int_t)time(NULL), "filename", filename, "purpose",
                          purpose, "status", "processed", "status_details");
    if (!o) return herd_err(HERD_E_ARG, "files: the filename or purpose is not valid UTF-8");
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char meta[4200], data[4200];
    snprintf(meta, sizeof meta, "%s/%s.json", fs->dir, id);
    snprintf(data, sizeof data, "%s/%s.data", fs->dir, id);
    int rc = s && files_write_atomic(meta, s, strlen(s)) == 0 ? 0 : -1;
    int e = errno;
    free(s);
    if (rc != 0) {
        unlink(data);
        json_decref(o);
        return herd_err(HERD_E_IO, "files: cannot write %s: %s", meta, strerror(e));
    }
    sync_dir(fs->dir);
    *obj = o;
    return HERD_OK;
}

int files_create(files_store *fs, const char *purpose, const char *filename, const void *data, size_t len,
                 json_t **obj) {
    char id[32] = "file-", path[4200];
    herd_random_hex(id + 5, 24);
    snprintf(path, sizeof path, "%s/%s.data", fs->dir, id);
    if (files_write_atomic(path, data, len) != 0)
        return herd_err(HERD_E_IO, "files: cannot write %s: %s", path, strerror(errno));
    return publish(fs, id, purpose, filename, len, obj);
}

int files_adopt(files_store *fs, const char *purpose, const char *filename, const char *src_path, json_t **obj) {
    char id[32] = "file-", path[4200];
    herd_random_hex(id + 5, 24);
    snprintf(path, sizeof path, "%s/%s.data", fs->dir, id);
    struct stat st;
    int fd = open(src_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0 || fstat(fd, &st) != 0 || rename(src_path, path) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return herd_err(HERD_E_IO, "files: cannot move %s into the store: %s", src_path, strerror(e));
    }
    close(fd);
    return publish(fs, id, purpose, filename, (size_t)st.st_size, obj);
}

json_t *files_get(files_store *fs, const char *id) {
    if (!files_id_valid(id)) return NULL;
    char meta[4200];
    snprintf(meta, sizeof meta, "%s/%s.json", fs->dir, id);
    json_t *o = json_load_file(meta, 0, NULL);
    if (o && !json_is_object(o)) json_decref(o), o = NULL;
    return o;
}

int files_path(files_store *fs, const char *id, char *buf, size_t cap) {
    if (!files_id_valid(id)) return -1;
    char meta[4200];
    snprintf(meta, sizeof meta, "%s/%s.json", fs->dir, id);
    if (access(meta, F_OK) != 0) return -1;
    return snprintf(buf, cap, "%s/%s.data", fs->dir, id) < (int)cap ? 0 : -1;
}

static int newest_first(const void *a, const void *b) {
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t tx = json_integer_value(json_object_get(x, "created_at")),
               ty = json_integer_value(json_object_get(y, "created_at"));
    if (tx != ty) return tx > ty ? -1 : 1;
    return strcmp(json_string_value(json_object_get(y, "id")), json_string_value(json_object_get(x, "id")));
}

json_t *files_list(files_store *fs, const char *purpose) {
    json_t *arr = json_array();
    pthread_mutex_lock(&fs->mu);
    DIR *d = opendir(fs->dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char id[32];
        size_t L = strlen(de->d_name);
        if (L != 34 || strcmp(de->d_name + 29, ".json")) continue;
        snprintf(id, sizeof id, "%.29s", de->d_name);
        json_t *o = files_get(fs, id);
        if (!o) continue;
        if (purpose && strcmp(purpose, json_string_value(json_object_get(o, "purpose")) ?: "")) {
            json_decref(o);
            continue;
        }
        json_array_append_new(arr, o);
    }
    if (d) closedir(d);
    pthread_mutex_unlock(&fs->mu);
    size_t n = json_array_size(arr);
    json_t **v = herd_xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, newest_first);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, v[i]);
    free(v);
    return arr;
}

int files_delete(files_store *fs, const char *id) {
    if (!files_id_valid(id)) return -1;
    char meta[4200], data[4200];
    snprintf(meta, sizeof meta, "%s/%s.json", fs->dir, id);
    snprintf(data, sizeof data, "%s/%s.data", fs->dir, id);
    pthread_mutex_lock(&fs->mu);
    int rc = unlink(meta) == 0 ? 0 : -1;
    if (rc == 0) unlink(data), sync_dir(fs->dir);
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

/* ---- multipart/form-data ---- */

static const char *memmem_s(const char *h, size_t hn, const char *n, size_t nn) {
    return nn <= hn ? memmem(h, hn, n, nn) : NULL;
}

/* The value of `key` (e.g. name) in a header line's parameters ("form-data; name=\"x\""), malloc'd. */
static char *header_param(const char *h, size_t hn, const char *key) {
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl < hn; i++) {
        if (strncasecmp(h + i, key, kl) != 0 || h[i + kl] != '=') continue;
        if (i > 0 && h[i - 1] != ' ' && h[i - 1] != ';' && h[i - 1] != '\t') continue;
        const char *v = h + i + kl + 1, *end = h + hn;
        if (v < end && *v == '"') {
            const char *q = memchr(v + 1, '"', (size_t)(end - v - 1));
            if (!q) return NULL;
            return herd_xstrndup(v + 1, (size_t)(q - v - 1));
        }
        size_t L = 0;
        while (v + L < end && v[L] != ';' && v[L] != ' ' && v[L] != '\r') L++;
        return herd_xstrndup(v, L);
    }
    return NULL;
}

void multipart_free(multipart_part *parts, int n_parts) {
    for (int i = 0; i < n_parts; i++) free((char *)parts[i].name), free((char *)parts[i].filename);
    free(parts);
}

int multipart_parse(const char *content_type, const char *body, size_t n, int max_parts, multipart_part **parts,
                    int *n_parts, char *msg, size_t msg_cap) {
    *parts = NULL, *n_parts = 0;
    if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) != 0) {
        snprintf(msg, msg_cap, "the upload must be multipart/form-data (Content-Type is '%.100s')",
                 content_type ? content_type : "");
        return -1;
    }
    char *b = header_param(content_type, strlen(content_type), "boundary");
    if (!b || !*b || strlen(b) > 200) {
        snprintf(msg, msg_cap, "the Content-Type names no (valid) multipart boundary");
        free(b);
        return -1;
    }
    char delim[210];
    size_t dl = (size_t)snprintf(delim, sizeof delim, "--%s", b);
    free(b);
    multipart_part *v = NULL;
    int np = 0;
    /* the first delimiter may open the body; later ones follow a CRLF */
    const char *p = memmem_s(body, n, delim, dl), *end = body + n;
    if (!p || (p != body && (p < body + 2 || memcmp(p - 2, "\r\n", 2)))) {
        snprintf(msg, msg_cap, "the body does not start with the multipart boundary");
        return -1;
    }
    char crlf_delim[214];
    size_t cdl = (size_t)snprintf(crlf_delim, sizeof crlf_delim, "\r\n%s", delim);
    for (;;) {
        p += dl;
        if (end - p >= 2 && !memcmp(p, "--", 2)) break; /* the closing delimiter */
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || memcmp(p, "\r\n", 2)) {
            snprintf(msg, msg_cap, "a multipart boundary is not followed by CRLF");
            goto fail;
        }
        p += 2;
        const char *he = memmem_s(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!he) {
            snprintf(msg, msg_cap, "a multipart part has no end of headers");
            goto fail;
        }
        char *name = NULL, *filename = NULL;
        for (const char *h = p; h < he;) { /* header lines */
            const char *le = memmem_s(h, (size_t)(he - h), "\r\n", 2);
            if (!le) le = he;
            if ((size_t)(le - h) > 20 && !strncasecmp(h, "Content-Disposition:", 20)) {
                free(name), free(filename);
                name = header_param(h + 20, (size_t)(le - h - 20), "name");
                filename = header_param(h + 20, (size_t)(le - h - 20), "filename");
            }
            h = le + 2;
        }
        const char *data = he + 4;
        const char *next = memmem_s(data, (size_t)(end - data), crlf_delim, cdl);
        if (!name || !next) {
            snprintf(msg, msg_cap, !name ? "a multipart part has no Content-Disposition name"
                                         : "the multipart body has no closing boundary");
            free(name), free(filename);
            goto fail;
        }
        if (np == max_parts) {
            snprintf(msg, msg_cap, "the upload has more than %d parts", max_parts);
            free(name), free(filename);
            goto fail;
        }
        v = realloc(v, (size_t)(np + 1) * sizeof *v);
        v[np++] = (multipart_part){name, filename, data, (size_t)(next - data)};
        p = next + 2;
    }
    *parts = v, *n_parts = np;
    return 0;
fail:
    multipart_free(v, np);
    return -1;
}

/* ---- routes ---- */

static const char *const k_purposes[] = {"batch", "fine-tune", "assistants", "vision", "user_data", "evals"};

/* A batch input file: every non-blank line a request line (batch_parse_line), custom_ids unique. */
static bool check_batch_jsonl(const char *data, size_t n, size_t max_line, char *msg, size_t cap) {
    json_t *seen = json_object();
    bool ok = true;
    int64_t ln = 0;
    for (const char *p = data, *end = data + n; p < end && ok;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t L = (size_t)((nl ? nl : end) - p);
        ln++;
        size_t k = 0;
        while (k < L && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
        if (k < L) {
            char *cid = NULL, *body = NULL, m[512];
            const char *url = NULL, *code = NULL;
            if (batch_parse_line(p, L, max_line, &cid, &url, &body, &code, m, sizeof m) != 0) {
                snprintf(msg, cap, "line %lld of the batch file is not a request (%s): %s", (long long)ln, code, m);
                ok = false;
            } else if (json_object_get(seen, cid)) {
                snprintf(msg, cap, "line %lld of the batch file repeats custom_id '%.200s'", (long long)ln, cid);
                ok = false;
            } else
                json_object_set_new(seen, cid, json_true());
            free(cid), free(body);
        }
        p += L + (nl != NULL);
    }
    json_decref(seen);
    if (ok && ln == 0) snprintf(msg, cap, "the batch file is empty"), ok = false;
    return ok;
}

static enum MHD_Result upload(http_req *r) {
    files_store *fs = r->srv->files;
    if (r->too_large)
        return http_send_error(r, 413, "invalid_request_error", "file", "file_too_large",
                               "the upload exceeds the limit of %zu bytes (--max-file-size)", files_max_bytes(fs));
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    multipart_part *parts;
    int np;
    char msg[600];
    if (multipart_parse(ct, r->body.p ? r->body.p : "", r->body.n, 16, &parts, &np, msg, sizeof msg) != 0)
        return http_send_error(r, 400, "invalid_request_error", NULL, "invalid_multipart", "%s", msg);
    const multipart_part *file = NULL, *purpose = NULL;
    for (int i = 0; i < np; i++) {
        if (!strcmp(parts[i].name, "file")) file = &parts[i];
        if (!strcmp(parts[i].name, "purpose")) purpose = &parts[i];
    }
    enum MHD_Result res;
    char pbuf[64] = "";
    if (purpose && purpose->len < sizeof pbuf) memcpy(pbuf, purpose->data, purpose->len), pbuf[purpose->len] = 0;
    bool known = false;
    for (size_t i = 0; i < sizeof k_purposes / sizeof *k_purposes; i++) known |= !strcmp(pbuf, k_purposes[i]);
    if (!file) {
        res = http_send_error(r, 400, "invalid_request_error", "file", "missing_file",
                              "the upload has no 'file' part");
    } else if (!purpose) {
        res = http_send_error(r, 400, "invalid_request_error", "purpose", "missing_purpose",
                              "the upload has no 'purpose' part");
    } else if (!known) {
        res = http_send_error(r, 400, "invalid_request_error", "purpose", "invalid_purpose",
                              "purpose '%.60s' is not one of batch, fine-tune, assistants, vision, user_data, evals",
                              purpose->len < sizeof pbuf ? pbuf : "(too long)");
    } else if (file->len > files_max_bytes(fs)) {
        res = http_send_error(r, 413, "invalid_request_error", "file", "file_too_large",
                              "the file (%zu bytes) exceeds the limit of %zu bytes (--max-file-size)", file->len,
                              files_max_bytes(fs));
    } else if (!strcmp(pbuf, "batch") &&
               !check_batch_jsonl(file->data, file->len, r->srv->cfg.max_body, msg, sizeof msg)) {
        res = http_send_error(r, 400, "invalid_request_error", "file", "invalid_batch_file", "%s", msg);
    } else {
        json_t *obj = NULL;
        const char *fname = file->filename && *file->filename ? file->filename : "upload";
        if (files_create(fs, pbuf, fname, file->data, file->len, &obj) != HERD_OK)
            res = http_send_error(r, 500, "server_error", NULL, "storage_error", "the file could not be stored: %s",
                                  herd_last_error());
        else
            res = http_send_json(r, 200, obj);
    }
    multipart_free(parts, np);
    return res;
}

json_t *http_list_page(http_req *r, json_t *all, int default_limit) {
    const char *ls = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    const char *after = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "after");
    const char *order = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "order");
    long limit = ls ? strtol(ls, NULL, 10) : default_limit;
    if (limit < 1) limit = 1;
    if (limit > 10000) limit = 10000;
    size_t n = json_array_size(all), start = 0;
    if (order && !strcmp(order, "asc")) { /* the store lists newest first */
        json_t *rev = json_array();
        for (size_t i = n; i-- > 0;) json_array_append(rev, json_array_get(all, i));
        json_decref(all);
        all = rev;
    }
    if (after)
        for (size_t i = 0; i < n; i++)
            if (!strcmp(after, json_string_value(json_object_get(json_array_get(all, i), "id")) ?: "")) start = i + 1;
    json_t *data = json_array();
    for (size_t i = start; i < n && (long)(i - start) < limit; i++) json_array_append(data, json_array_get(all, i));
    size_t m = json_array_size(data);
    json_t *page = json_pack("{s:s,s:o,s:o,s:o,s:b}", "object", "list", "data", data, "first_id",
                             m ? json_incref(json_object_get(json_array_get(data, 0), "id")) : json_null(),
                             "last_id", m ? json_incref(json_object_get(json_array_get(data, m - 1), "id")) : json_null(),
                             "has_more", start + m < n);
    json_decref(all);
    return page;
}

enum MHD_Result route_files(http_req *r) {
    server *s = r->srv;
    const char *u = r->url + 9; /* after "/v1/files" */
    bool get = !strcmp(r->method, "GET"), post = !strcmp(r->method, "POST"), del = !strcmp(r->method, "DELETE");
    r->route = !*u ? "/v1/files" : strstr(u, "/content") ? "/v1/files/{id}/content" : "/v1/files/{id}";
    if (!s->files)
        return http_send_error(r, 404, "invalid_request_error", NULL, "not_found",
                               "file storage is off: start herd serve with --data-dir DIR");
    if (!*u) {
        if (post) return upload(r);
        if (get) {
            const char *purpose = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "purpose");
            return http_send_json(r, 200, http_list_page(r, files_list(s->files, purpose), 10000));
        }
        return http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "use GET or POST on /v1/files");
    }
    if (*u != '/') return http_send_error(r, 404, "invalid_request_error", NULL, "not_found", "no route %s %s", r->method, r->url);
    char id[64];
    const char *rest = u + 1 + strcspn(u + 1, "/");
    snprintf(id, sizeof id, "%.*s", (int)(rest - u - 1 < 63 ? rest - u - 1 : 63), u + 1);
    bool content = !strcmp(rest, "/content");
    if (*rest && !content)
        return http_send_error(r, 404, "invalid_request_error", NULL, "not_found", "no route %s %s", r->method, r->url);
    json_t *obj = files_get(s->files, id);
    if (!obj)
        return http_send_error(r, 404, "invalid_request_error", "file_id", "file_not_found", "no file with id '%s'", id);
    if (content) {
        json_decref(obj);
        if (!get) return http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "use GET on %s", r->url);
        char path[4200];
        strbuf b = {0};
        FILE *f = files_path(s->files, id, path, sizeof path) == 0 ? fopen(path, "rb") : NULL;
        char chunk[65536];
        size_t k;
        while (f && (k = fread(chunk, 1, sizeof chunk, f)) > 0) strbuf_put(&b, chunk, k);
        bool bad = !f || ferror(f);
        if (f) fclose(f);
        enum MHD_Result res =
            bad ? http_send_error(r, 500, "server_error", NULL, "storage_error", "cannot read file '%s'", id)
                : http_send_text(r, 200, "application/octet-stream", b.p ? b.p : "", b.n);
        free(b.p);
        return res;
    }
    if (get) return http_send_json(r, 200, obj);
    json_decref(obj);
    if (del) {
        if (files_delete(s->files, id) != 0)
            return http_send_error(r, 404, "invalid_request_error", "file_id", "file_not_found", "no file with id '%s'", id);
        return http_send_json(r, 200, json_pack("{s:s,s:s,s:b}", "id", id, "object", "file", "deleted", 1));
    }
    return http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "use GET or DELETE on %s", r->url);
}
