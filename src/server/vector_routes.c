/* Vector-store routes (herd serve --store DIR): OpenAI's /v1/vector_stores (create, list, retrieve,
 * delete, search; /files and /file_batches: files uploaded through /v1/files, with --data-dir, attached
 * and ingested synchronously, so every vector store file is "completed" when the call returns) and Llama Stack's /v1/vector-io/{insert,query} and /v1/tool-runtime/rag-tool/{insert,
 * query}, over the SQLite store of src/rag (herd_store_*). Embeddings run through the engine like
 * /v1/embeddings (mean pooling, unit norm: herd embed's and herd rag's vectors). One store handle per
 * server process, used under a lock (SQLite writes are serialised anyway). A vector store id is a
 * collection of the store ("default" is the one herd rag index fills). */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "files.h"
#include "http.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static herd_store *g_store;

/* ---- embedding through the engine ----------------------------------------------------------------- */

typedef struct {
    http_req *r;
} embed_ctx;

static int engine_embed(void *user, const int32_t *tokens, int64_t n, float *out) {
    embed_ctx *ec = user;
    int32_t *ids = herd_xmalloc((size_t)n * sizeof(int32_t));
    memcpy(ids, tokens, (size_t)n * sizeof(int32_t));
    engine_params p = {.prompt = ids, .n_prompt = n, .max_tokens = 0, .top_logprobs = -1, .embedding = true};
    engine_req *er;
    int rc = engine_submit(ec->r->srv->e, &p, &er);
    if (rc) return rc;
    engine_event ev;
    rc = herd_err(HERD_E_RANGE, "embedding failed");
    while (engine_next_event(er, &ev, -1)) {
        if (ev.kind == ENGINE_EV_TOKEN) {
            engine_event_clear(&ev);
            continue;
        }
        if (ev.kind == ENGINE_EV_ERROR || !ev.embedding) rc = herd_err(HERD_E_RANGE, "embedding failed: %s", ev.error ? ev.error : "?");
        else {
            memcpy(out, ev.embedding, (size_t)ev.n_embd * sizeof(float));
            rc = HERD_OK;
        }
        engine_event_clear(&ev);
        break;
    }
    engine_release(er);
    return rc;
}

static const herd_model *model_of(http_req *r) {
    return engine_model(r->srv->e);
}

/* Query vector: BOS + the query's tokens. */
static int embed_query(http_req *r, const char *q, float **out) {
    const herd_model *m = model_of(r);
    int32_t *ids;
    int64_t n;
    int rc = herd_tokenize(m, q, strlen(q), herd_vocab_add_bos(m) ? HERD_TOKENIZE_ADD_BOS : 0, &ids, &n);
    if (rc) return rc;
    *out = herd_xmalloc((size_t)herd_model_n_embd(m) * sizeof(float));
    embed_ctx ec = {r};
    rc = engine_embed(&ec, ids, n, *out);
    free(ids);
    return rc;
}

/* ---- helpers -------------------------------------------------------------------------------------- */

static enum MHD_Result store_error(http_req *r, int rc) {
    const char *msg = herd_last_error();
    if (rc == HERD_E_ARG && (strstr(msg, "no vector store") || strstr(msg, "no file"))) return http_send_error(r, 404, "invalid_request_error", NULL, "not_found", "%s", msg);
    if (rc == HERD_E_ARG || rc == HERD_E_FORMAT || rc == HERD_E_UNSUPPORTED || rc == HERD_E_RANGE)
        return http_send_error(r, 400, "invalid_request_error", NULL, NULL, "%s", msg);
    return http_send_error(r, 500, "server_error", NULL, NULL, "%s", msg);
}

/* The collection as OpenAI's vector_store object, or NULL. Under g_mu. */
static json_t *store_object(const char *id) {
    char *l = herd_store_collection_list(g_store);
    json_error_t e;
    json_t *all = json_loads(l, 0, &e), *x, *found = NULL;
    free(l);
    size_t i;
    json_array_foreach(all, i, x) if (!strcmp(json_string_value(json_object_get(x, "id")), id)) found = x;
    json_t *o = NULL;
    if (found) {
        json_int_t nd = json_integer_value(json_object_get(found, "n_documents")), usage = 0;
        char *fl = herd_store_file_list(g_store, id, NULL); /* usage: the attached files' bytes */
        json_t *files = fl ? json_loads(fl, 0, &e) : NULL, *f;
        free(fl);
        json_array_foreach(files, i, f) usage += json_integer_value(json_object_get(f, "usage_bytes"));
        json_decref(files);
        o = json_pack("{s:O, s:s, s:O, s:O, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:s, s:O, s:n, s:n, s:I}", "id",
                      json_object_get(found, "id"), "object", "vector_store", "created_at",
                      json_object_get(found, "created_at"), "name", json_object_get(found, "name"), "usage_bytes",
                      usage, "file_counts", "in_progress", (json_int_t)0, "completed", nd, "failed",
                      (json_int_t)0, "cancelled", (json_int_t)0, "total", nd, "status", "completed", "metadata",
                      json_object_get(found, "metadata"), "expires_after", "expires_at", "last_active_at",
                      json_integer_value(json_object_get(found, "created_at")));
    }
    json_decref(all);
    return o;
}

/* Text of an InterleavedContent (a string, {"type":"text","text"}, or an array of those), owned; NULL if
 * it has no text. */
static char *content_text(json_t *c) {
    if (json_is_string(c)) return strdup(json_string_value(c));
    if (json_is_object(c)) {
        json_t *t = json_object_get(c, "text");
        return json_is_string(t) ? strdup(json_string_value(t)) : NULL;
    }
    if (!json_is_array(c)) return NULL;
    strbuf b = {0};
    size_t i;
    json_t *x;
    json_array_foreach(c, i, x) {
        char *t = content_text(x);
        if (t) strbuf_put(&b, t, strlen(t)), free(t);
    }
    if (!b.n) {
        free(b.p);
        return NULL;
    }
    strbuf_put(&b, "", 1);
    return b.p;
}

static int64_t int_field(json_t *o, const char *k, int64_t def) {
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

/* ---- OpenAI /v1/vector_stores ------------------------------------------------------------------------ */

static bool parse_chunking(json_t *cs, herd_chunk_params *cp, char *msg, size_t cap);
static int attach_file(http_req *r, const char *vs, const char *fid, json_t *attributes, const herd_chunk_params *cp,
                       char *msg, size_t cap);
static enum MHD_Result attach_error(http_req *r, int status, const char *msg);

static enum MHD_Result vs_create(http_req *r, json_t *b) {
    json_t *name = json_object_get(b, "name"), *meta = json_object_get(b, "metadata");
    if (name && !json_is_string(name) && !json_is_null(name))
        return http_send_error(r, 400, "invalid_request_error", "name", NULL, "'name' must be a string");
    if (meta && !json_is_object(meta) && !json_is_null(meta))
        return http_send_error(r, 400, "invalid_request_error", "metadata", NULL, "'metadata' must be an object");
    /* file_ids: attached (and ingested) one by one once the store exists; if one cannot be, the store is
     * deleted again and the error names the file */
    json_t *fids = json_object_get(b, "file_ids"), *x;
    size_t i;
    bool strs = !fids || json_is_null(fids) || json_is_array(fids);
    json_array_foreach(fids, i, x) strs &= json_is_string(x);
    if (!strs) return http_send_error(r, 400, "invalid_request_error", "file_ids", NULL, "'file_ids' must be an array of file ids");
    char msg[512];
    herd_chunk_params cp;
    if (!parse_chunking(json_object_get(b, "chunking_strategy"), &cp, msg, sizeof msg))
        return http_send_error(r, 400, "invalid_request_error", "chunking_strategy", NULL, "%s", msg);
    char *ms = json_is_object(meta) ? json_dumps(meta, JSON_COMPACT) : NULL, *id = NULL;
    int rc = herd_store_collection_create(g_store, json_is_string(name) ? json_string_value(name) : "", ms, &id);
    free(ms);
    if (rc) return store_error(r, rc);
    json_array_foreach(fids, i, x) {
        int st = attach_file(r, id, json_string_value(x), NULL, &cp, msg, sizeof msg);
        if (st) {
            herd_store_collection_delete(g_store, id);
            free(id);
            return attach_error(r, st, msg);
        }
    }
    json_t *o = store_object(id);
    free(id);
    return http_send_json(r, 200, o);
}

static enum MHD_Result vs_list(http_req *r) {
    char *l = herd_store_collection_list(g_store);
    json_error_t e;
    json_t *all = json_loads(l, 0, &e), *x, *data = json_array();
    free(l);
    size_t i;
    json_array_foreach(all, i, x) json_array_append_new(data, store_object(json_string_value(json_object_get(x, "id"))));
    json_decref(all);
    size_t n = json_array_size(data);
    json_t *first = n ? json_object_get(json_array_get(data, 0), "id") : json_null();
    json_t *last = n ? json_object_get(json_array_get(data, n - 1), "id") : json_null();
    return http_send_json(r, 200, json_pack("{s:s, s:o, s:O, s:O, s:b}", "object", "list", "data", data, "first_id",
                                            first, "last_id", last, "has_more", 0));
}

/* hits -> OpenAI search results */
static json_t *openai_results(herd_store_hit *h, int64_t n) {
    json_t *data = json_array();
    for (int64_t i = 0; i < n; i++) {
        json_error_t e;
        json_t *meta = json_loads(h[i].metadata, 0, &e);
        /* an attached file's own id; text added otherwise is named after its document */
        char fid[32], *att = herd_store_doc_file_id(g_store, h[i].doc_id);
        snprintf(fid, sizeof fid, "file-%lld", (long long)h[i].doc_id);
        json_array_append_new(data, json_pack("{s:s, s:s, s:f, s:o, s:[{s:s, s:s}]}", "file_id", att ? att : fid, "filename",
                                              h[i].source, "score", (double)h[i].score, "attributes",
                                              meta ? meta : json_object(), "content", "type", "text", "text", h[i].text));
        free(att);
    }
    return data;
}

static enum MHD_Result vs_search(http_req *r, const char *id, json_t *b) {
    json_t *q = json_object_get(b, "query");
    char *text = NULL;
    if (json_is_string(q)) text = strdup(json_string_value(q));
    else if (json_is_array(q) && json_array_size(q) > 0 && json_is_string(json_array_get(q, 0))) text = content_text(q);
    if (!text || !text[0]) {
        free(text);
        return http_send_error(r, 400, "invalid_request_error", "query", NULL, "'query' must be a non-empty string");
    }
    int64_t k = int_field(b, "max_num_results", 10);
    if (k < 1 || k > 50) {
        free(text);
        return http_send_error(r, 400, "invalid_request_error", "max_num_results", NULL,
                               "'max_num_results' must be an integer from 1 to 50");
    }
    json_t *f = json_object_get(b, "filters");
    if (f && !json_is_object(f) && !json_is_null(f)) {
        free(text);
        return http_send_error(r, 400, "invalid_request_error", "filters", NULL, "'filters' must be an object");
    }
    int rc = herd_store_collection_check(g_store, id);
    if (rc) {
        free(text);
        return store_error(r, rc);
    }
    float *qv = NULL;
    rc = embed_query(r, text, &qv);
    herd_store_hit *h = NULL;
    int64_t n = 0;
    char *fs = json_is_object(f) ? json_dumps(f, JSON_COMPACT) : NULL;
    if (!rc) rc = herd_store_search(g_store, id, qv, k, fs, -1, &h, &n);
    free(fs), free(qv);
    if (rc) {
        free(text);
        return store_error(r, rc);
    }
    json_t *o = json_pack("{s:s, s:[s], s:o, s:b, s:n}", "object", "vector_store.search_results.page", "search_query",
                          text, "data", openai_results(h, n), "has_more", 0, "next_page");
    herd_store_hits_free(h, n);
    free(text);
    return http_send_json(r, 200, o);
}

/* ---- OpenAI /v1/vector_stores/{id}/files and /file_batches ------------------------------------------ */

/* chunking_strategy: absent, null or {"type":"auto"}: herd's default (512 tokens, a quarter shared);
 * {"type":"static","static":{"max_chunk_size_tokens":100..4096,"chunk_overlap_tokens":0..half}} as OpenAI
 * bounds them. false with msg filled for anything else. */
static bool parse_chunking(json_t *cs, herd_chunk_params *cp, char *msg, size_t cap) {
    *cp = (herd_chunk_params){.chunk_tokens = 512, .overlap = 128};
    if (!cs || json_is_null(cs)) return true;
    const char *t = json_string_value(json_object_get(cs, "type"));
    if (t && !strcmp(t, "auto")) return true;
    json_t *st = json_object_get(cs, "static");
    json_t *mx = json_object_get(st, "max_chunk_size_tokens"), *ov = json_object_get(st, "chunk_overlap_tokens");
    if (!t || strcmp(t, "static") || !json_is_integer(mx) || !json_is_integer(ov)) {
        snprintf(msg, cap, "'chunking_strategy' must be {\"type\": \"auto\"} or {\"type\": \"static\", \"static\": "
                           "{\"max_chunk_size_tokens\": N, \"chunk_overlap_tokens\": M}}");
        return false;
    }
    json_int_t m = json_integer_value(mx), o = json_integer_value(ov);
    if (m < 100 || m > 4096 || o < 0 || o > m / 2) {
        snprintf(msg, cap, "chunking_strategy: max_chunk_size_tokens must be 100..4096 and chunk_overlap_tokens "
                           "0..half of it (got %lld and %lld)", (long long)m, (long long)o);
        return false;
    }
    cp->chunk_tokens = m, cp->overlap = o;
    return true;
}

/* OpenAI attributes: an object of at most 16 string, number or boolean values. */
static bool check_attributes(json_t *a, char *msg, size_t cap) {
    if (!a || json_is_null(a)) return true;
    if (!json_is_object(a) || json_object_size(a) > 16) {
        snprintf(msg, cap, "'attributes' must be an object of at most 16 keys");
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v) if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v)) {
        snprintf(msg, cap, "attributes.%.64s must be a string, a number or a boolean", k);
        return false;
    }
    return true;
}

/* A row of herd_store_file_list as OpenAI's vector_store.file object. */
static json_t *vs_file_object(const char *vs, json_t *row) {
    return json_pack("{s:O, s:s, s:O, s:O, s:s, s:s, s:n, s:{s:s, s:{s:O, s:O}}, s:O}", "id",
                     json_object_get(row, "file_id"), "object", "vector_store.file", "usage_bytes",
                     json_object_get(row, "usage_bytes"), "created_at", json_object_get(row, "created_at"),
                     "vector_store_id", vs, "status", "completed", "last_error", "chunking_strategy", "type", "static",
                     "static", "max_chunk_size_tokens", json_object_get(row, "chunk_tokens"), "chunk_overlap_tokens",
                     json_object_get(row, "overlap"), "attributes", json_object_get(row, "attributes"));
}

/* The vector_store.file object of fid in vs (new reference), or NULL. */
static json_t *vs_file_get(const char *vs, const char *fid) {
    char *l = herd_store_file_list(g_store, vs, fid);
    json_error_t e;
    json_t *a = l ? json_loads(l, 0, &e) : NULL;
    free(l);
    json_t *o = json_array_size(a) ? vs_file_object(vs, json_array_get(a, 0)) : NULL;
    json_decref(a);
    return o;
}

/* Attaches the uploaded file fid to vs. 0, or an HTTP status with msg saying why (the file unknown: 404,
 * its type unsupported, no text, already attached: 400). */
static int attach_file(http_req *r, const char *vs, const char *fid, json_t *attributes, const herd_chunk_params *cp,
                       char *msg, size_t cap) {
    files_store *fs = r->srv->files;
    if (!fs) {
        snprintf(msg, cap, "this server keeps no files: start herd serve with --data-dir DIR, upload with /v1/files");
        return 400;
    }
    json_t *fo = files_id_valid(fid) ? files_get(fs, fid) : NULL;
    char path[4200];
    if (!fo || files_path(fs, fid, path, sizeof path) != 0) {
        json_decref(fo);
        snprintf(msg, cap, "no file with id '%.64s' (upload it with POST /v1/files first)", fid);
        return 404;
    }
    const char *fname = json_string_value(json_object_get(fo, "filename"));
    char *attr = json_is_object(attributes) ? json_dumps(attributes, JSON_COMPACT) : NULL;
    embed_ctx ec = {r};
    int rc = herd_store_file_add(g_store, vs, model_of(r), engine_embed, &ec, fid, fname ? fname : "", path, attr, cp,
                                 NULL);
    free(attr);
    json_decref(fo);
    if (!rc) return 0;
    snprintf(msg, cap, "%s", herd_last_error());
    if (rc == HERD_E_ARG && strstr(msg, "no vector store")) return 404;
    return rc == HERD_E_IO || rc == HERD_E_NOMEM ? 500 : 400;
}

static enum MHD_Result attach_error(http_req *r, int status, const char *msg) {
    return http_send_error(r, status, status >= 500 ? "server_error" : "invalid_request_error",
                           status == 404 ? "file_id" : NULL, status == 404 ? "not_found" : NULL, "%s", msg);
}

static enum MHD_Result vsf_create(http_req *r, const char *vs, json_t *b) {
    json_t *fid = json_object_get(b, "file_id"), *attr = json_object_get(b, "attributes");
    char msg[512];
    herd_chunk_params cp;
    if (!json_is_string(fid))
        return http_send_error(r, 400, "invalid_request_error", "file_id", NULL, "'file_id' must be a string");
    if (!check_attributes(attr, msg, sizeof msg))
        return http_send_error(r, 400, "invalid_request_error", "attributes", NULL, "%s", msg);
    if (!parse_chunking(json_object_get(b, "chunking_strategy"), &cp, msg, sizeof msg))
        return http_send_error(r, 400, "invalid_request_error", "chunking_strategy", NULL, "%s", msg);
    int rc = herd_store_collection_check(g_store, vs);
    if (rc) return store_error(r, rc);
    int st = attach_file(r, vs, json_string_value(fid), attr, &cp, msg, sizeof msg);
    if (st) return attach_error(r, st, msg);
    return http_send_json(r, 200, vs_file_get(vs, json_string_value(fid)));
}

/* The vector_store.file objects of vs, newest first (http_list_page's order); only: file ids to keep
 * (NULL: all). NULL when vs does not exist. */
static json_t *vs_files_all(const char *vs, json_t *only) {
    char *l = herd_store_file_list(g_store, vs, NULL);
    if (!l) return NULL;
    json_error_t e;
    json_t *rows = json_loads(l, 0, &e), *all = json_array(), *x;
    free(l);
    for (size_t i = json_array_size(rows); i-- > 0;) {
        x = json_array_get(rows, i);
        bool keep = !only;
        size_t j;
        json_t *y;
        json_array_foreach(only, j, y) keep |= json_equal(y, json_object_get(x, "file_id"));
        if (keep) json_array_append_new(all, vs_file_object(vs, x));
    }
    json_decref(rows);
    return all;
}

static enum MHD_Result vsf_list(http_req *r, const char *vs, json_t *only) {
    json_t *all = vs_files_all(vs, only);
    if (!all) return store_error(r, HERD_E_ARG);
    /* every file is "completed": another status filter lists nothing */
    const char *filter = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "filter");
    if (filter && strcmp(filter, "completed")) json_array_clear(all);
    return http_send_json(r, 200, http_list_page(r, all, 20));
}

/* A file batch: attaches each of file_ids, in order; a file that cannot be (unknown, unsupported, no
 * text) is counted "failed" and the rest go on. Kept in the store's meta table under
 * "file_batch/VS/ID" as {id, created_at, files: [ids attached], failed: [{file_id, message}]}. */
static json_t *batch_object(const char *vs, json_t *rec) {
    json_int_t ok = (json_int_t)json_array_size(json_object_get(rec, "files"));
    json_int_t bad = (json_int_t)json_array_size(json_object_get(rec, "failed"));
    return json_pack("{s:O, s:s, s:O, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I}}", "id", json_object_get(rec, "id"),
                     "object", "vector_store.files_batch", "created_at", json_object_get(rec, "created_at"),
                     "vector_store_id", vs, "status", "completed", "file_counts", "in_progress", (json_int_t)0,
                     "completed", ok, "failed", bad, "cancelled", (json_int_t)0, "total", ok + bad);
}

static json_t *batch_load(const char *vs, const char *bid) {
    char key[300];
    snprintf(key, sizeof key, "file_batch/%s/%s", vs, bid);
    char *v = herd_store_meta_get(g_store, key);
    json_error_t e;
    json_t *rec = v ? json_loads(v, 0, &e) : NULL;
    free(v);
    return rec;
}

static enum MHD_Result vsb_create(http_req *r, const char *vs, json_t *b) {
    json_t *ids = json_object_get(b, "file_ids"), *attr = json_object_get(b, "attributes"), *x;
    char msg[512];
    herd_chunk_params cp;
    size_t i;
    bool strs = json_is_array(ids) && json_array_size(ids) >= 1 && json_array_size(ids) <= 500;
    json_array_foreach(ids, i, x) strs &= json_is_string(x);
    if (!strs)
        return http_send_error(r, 400, "invalid_request_error", "file_ids", NULL, "'file_ids' must be 1..500 file ids");
    if (!check_attributes(attr, msg, sizeof msg))
        return http_send_error(r, 400, "invalid_request_error", "attributes", NULL, "%s", msg);
    if (!parse_chunking(json_object_get(b, "chunking_strategy"), &cp, msg, sizeof msg))
        return http_send_error(r, 400, "invalid_request_error", "chunking_strategy", NULL, "%s", msg);
    int rc = herd_store_collection_check(g_store, vs);
    if (rc) return store_error(r, rc);
    if (!r->srv->files)
        return http_send_error(r, 400, "invalid_request_error", NULL, NULL,
                               "this server keeps no files: start herd serve with --data-dir DIR");
    char bid[40];
    unsigned char rnd[12];
    FILE *ur = fopen("/dev/urandom", "rb");
    bool got = ur && fread(rnd, 1, sizeof rnd, ur) == sizeof rnd;
    if (ur) fclose(ur);
    if (!got) return http_send_error(r, 500, "server_error", NULL, NULL, "cannot read /dev/urandom for an id");
    int o = snprintf(bid, sizeof bid, "vsfb_");
    for (int k = 0; k < 12; k++) o += snprintf(bid + o, sizeof bid - (size_t)o, "%02x", rnd[k]);
    json_t *done = json_array(), *failed = json_array();
    json_array_foreach(ids, i, x) {
        int st = attach_file(r, vs, json_string_value(x), attr, &cp, msg, sizeof msg);
        if (st) json_array_append_new(failed, json_pack("{s:O, s:s}", "file_id", x, "message", msg));
        else json_array_append(done, x);
    }
    json_t *rec = json_pack("{s:s, s:I, s:o, s:o}", "id", bid, "created_at", (json_int_t)time(NULL), "files", done,
                            "failed", failed);
    char key[300], *v = json_dumps(rec, JSON_COMPACT);
    snprintf(key, sizeof key, "file_batch/%s/%s", vs, bid);
    rc = herd_store_meta_set(g_store, key, v);
    free(v);
    json_t *out = batch_object(vs, rec);
    json_decref(rec);
    if (rc) {
        json_decref(out);
        return store_error(r, rc);
    }
    return http_send_json(r, 200, out);
}

/* GET /file_batches/ID, POST /file_batches/ID/cancel (a batch is done when created: nothing to cancel),
 * GET /file_batches/ID/files. */
static enum MHD_Result vsb_route(http_req *r, const char *vs, const char *rest, bool get, bool post) {
    char bid[64];
    size_t n = strcspn(rest, "/");
    snprintf(bid, sizeof bid, "%.*s", (int)(n < 63 ? n : 63), rest);
    const char *tail = rest + n;
    int rc = herd_store_collection_check(g_store, vs);
    if (rc) return store_error(r, rc);
    json_t *rec = batch_load(vs, bid);
    if (!rec) return http_send_error(r, 404, "invalid_request_error", NULL, "not_found", "no file batch '%s' in vector store '%s'", bid, vs);
    enum MHD_Result res;
    if (!*tail && get) res = http_send_json(r, 200, batch_object(vs, rec));
    else if (!strcmp(tail, "/cancel") && post) res = http_send_json(r, 200, batch_object(vs, rec));
    else if (!strcmp(tail, "/files") && get) res = vsf_list(r, vs, json_object_get(rec, "files"));
    else res = http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "%s %s is not a route", r->method, r->url);
    json_decref(rec);
    return res;
}

/* Everything below /v1/vector_stores/{vs}/files and /file_batches; tail starts with "/files" or
 * "/file_batches". b: the body of a POST. */
static enum MHD_Result vs_files_route(http_req *r, const char *vs, const char *tail, json_t *b, bool get, bool post,
                                      bool del) {
    if (!strncmp(tail, "/file_batches", 13)) {
        const char *rest = tail + 13;
        if (!*rest && post) return vsb_create(r, vs, b);
        if (*rest == '/' && rest[1]) return vsb_route(r, vs, rest + 1, get, post);
    } else {
        const char *rest = tail + 6;
        if (!*rest && post) return vsf_create(r, vs, b);
        if (!*rest && get) return vsf_list(r, vs, NULL);
        const char *slash = *rest == '/' ? strchr(rest + 1, '/') : NULL;
        if (slash && !strcmp(slash, "/content") && get) { /* the parsed text: its chunks, in order */
            char fid[64];
            snprintf(fid, sizeof fid, "%.*s", (int)(slash - rest - 1 < 63 ? slash - rest - 1 : 63), rest + 1);
            int rc = herd_store_collection_check(g_store, vs);
            if (rc) return store_error(r, rc);
            json_t *o = vs_file_get(vs, fid);
            if (!o)
                return http_send_error(r, 404, "invalid_request_error", "file_id", "not_found",
                                       "no file '%s' in vector store '%s'", fid, vs);
            char *l = herd_store_file_list(g_store, vs, fid), *cl = NULL;
            json_error_t e;
            json_t *row = json_loads(l ? l : "[]", 0, &e);
            free(l);
            cl = herd_store_doc_chunks(g_store, json_integer_value(json_object_get(json_array_get(row, 0), "doc_id")));
            json_t *chunks = json_loads(cl ? cl : "[]", 0, &e), *data = json_array(), *c;
            free(cl);
            size_t i;
            json_array_foreach(chunks, i, c) { /* Llama Stack's shape: the text with its chunk metadata */
                char cid[32];
                snprintf(cid, sizeof cid, "%lld", (long long)json_integer_value(json_object_get(c, "chunk_id")));
                json_int_t ntok = json_integer_value(json_object_get(c, "tok_end")) -
                                  json_integer_value(json_object_get(c, "tok_start"));
                json_array_append_new(data, json_pack("{s:s, s:O, s:O, s:{s:s, s:O, s:O, s:I}}", "type", "text", "text",
                                                      json_object_get(c, "text"), "metadata",
                                                      json_object_get(o, "attributes"), "chunk_metadata", "chunk_id", cid,
                                                      "document_id", json_object_get(o, "id"), "source",
                                                      json_object_get(json_array_get(row, 0), "filename"),
                                                      "content_token_count", ntok));
            }
            json_decref(chunks), json_decref(row), json_decref(o);
            return http_send_json(r, 200, json_pack("{s:s, s:o, s:b, s:n}", "object", "vector_store.file_content.page",
                                                    "data", data, "has_more", 0, "next_page"));
        }
        if (*rest == '/' && rest[1] && !strchr(rest + 1, '/')) {
            const char *fid = rest + 1;
            int rc = herd_store_collection_check(g_store, vs);
            if (rc) return store_error(r, rc);
            if (get) {
                json_t *o = vs_file_get(vs, fid);
                return o ? http_send_json(r, 200, o)
                         : http_send_error(r, 404, "invalid_request_error", "file_id", "not_found",
                                           "no file '%s' in vector store '%s'", fid, vs);
            }
            if (del) {
                rc = herd_store_file_delete(g_store, vs, fid);
                return rc ? store_error(r, rc)
                          : http_send_json(r, 200, json_pack("{s:s, s:s, s:b}", "id", fid, "object",
                                                             "vector_store.file.deleted", "deleted", 1));
            }
            if (post) { /* update: the attributes, the only field OpenAI lets one change */
                json_t *attr = json_object_get(b, "attributes");
                char msg[512];
                if (!attr || json_is_null(attr) || !check_attributes(attr, msg, sizeof msg))
                    return http_send_error(r, 400, "invalid_request_error", "attributes", NULL, "%s",
                                           attr && !json_is_null(attr) ? msg : "'attributes' must be an object");
                char *as = json_dumps(attr, JSON_COMPACT);
                rc = herd_store_file_update(g_store, vs, fid, as);
                free(as);
                return rc ? store_error(r, rc) : http_send_json(r, 200, vs_file_get(vs, fid));
            }
        }
    }
    return http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "%s %s is not a route",
                           r->method, r->url);
}

/* ---- Llama Stack ------------------------------------------------------------------------------------ */

/* Llama Stack named it vector_db_id, later vector_store_id: either. */
static const char *db_id(json_t *b, const char *key) {
    json_t *v = json_object_get(b, key);
    if (!v) v = json_object_get(b, "vector_store_id");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static enum MHD_Result vio_insert(http_req *r, json_t *b) {
    const char *id = db_id(b, "vector_db_id");
    json_t *chunks = json_object_get(b, "chunks");
    if (!id) return http_send_error(r, 400, "invalid_request_error", "vector_db_id", NULL, "'vector_db_id' must be a string");
    if (!json_is_array(chunks) || json_array_size(chunks) == 0 || json_array_size(chunks) > 4096)
        return http_send_error(r, 400, "invalid_request_error", "chunks", NULL, "'chunks' must be an array of 1..4096 chunks");
    size_t n = json_array_size(chunks);
    char **texts = herd_xcalloc(n, sizeof *texts), **metas = herd_xcalloc(n, sizeof *metas);
    enum MHD_Result res = MHD_NO;
    bool bad = false;
    for (size_t i = 0; i < n && !bad; i++) {
        json_t *c = json_array_get(chunks, i), *meta = json_object_get(c, "metadata");
        texts[i] = content_text(json_object_get(c, "content"));
        if (!texts[i] || !texts[i][0] || (meta && !json_is_object(meta))) {
            res = http_send_error(r, 400, "invalid_request_error", "chunks", NULL,
                                  "chunk %zu needs a non-empty 'content' and an object 'metadata'", i);
            bad = true;
        } else if (meta) metas[i] = json_dumps(meta, JSON_COMPACT);
    }
    if (!bad) {
        embed_ctx ec = {r};
        int rc = herd_store_add_chunks(g_store, id, model_of(r), engine_embed, &ec, "vector-io",
                                       (const char *const *)texts, (const char *const *)metas, (int64_t)n, NULL);
        res = rc ? store_error(r, rc) : http_send_json(r, 200, json_object());
    }
    for (size_t i = 0; i < n; i++) free(texts[i]), free(metas[i]);
    free(texts), free(metas);
    return res;
}

static enum MHD_Result vio_query(http_req *r, json_t *b) {
    const char *id = db_id(b, "vector_db_id");
    if (!id) return http_send_error(r, 400, "invalid_request_error", "vector_db_id", NULL, "'vector_db_id' must be a string");
    char *text = content_text(json_object_get(b, "query"));
    if (!text || !text[0]) {
        free(text);
        return http_send_error(r, 400, "invalid_request_error", "query", NULL, "'query' must have text");
    }
    json_t *params = json_object_get(b, "params");
    int64_t k = int_field(params, "max_chunks", 3);
    json_t *thr = json_object_get(params, "score_threshold");
    double threshold = json_is_number(thr) ? json_number_value(thr) : -2;
    if (k < 1 || k > 1000) {
        free(text);
        return http_send_error(r, 400, "invalid_request_error", "params", NULL, "'params.max_chunks' must be 1..1000");
    }
    int rc = herd_store_collection_check(g_store, id);
    float *qv = NULL;
    if (!rc) rc = embed_query(r, text, &qv);
    herd_store_hit *h = NULL;
    int64_t n = 0;
    if (!rc) rc = herd_store_search(g_store, id, qv, k, NULL, -1, &h, &n);
    free(qv), free(text);
    if (rc) return store_error(r, rc);
    json_t *chunks = json_array(), *scores = json_array();
    for (int64_t i = 0; i < n; i++) {
        if (h[i].score < threshold) continue;
        json_error_t e;
        json_t *meta = json_loads(h[i].metadata, 0, &e);
        if (!json_is_object(meta)) json_decref(meta), meta = json_object();
        if (!json_object_get(meta, "document_id")) {
            char d[32];
            snprintf(d, sizeof d, "doc-%lld", (long long)h[i].doc_id);
            json_object_set_new(meta, "document_id", json_string(d));
        }
        char cid[32];
        snprintf(cid, sizeof cid, "%lld", (long long)h[i].chunk_id);
        json_array_append_new(chunks, json_pack("{s:s, s:o, s:s, s:{s:s, s:O, s:s}}", "content", h[i].text, "metadata", meta,
                                                "chunk_id", cid, "chunk_metadata", "chunk_id", cid, "document_id",
                                                json_object_get(meta, "document_id"), "source", h[i].source));
        json_array_append_new(scores, json_real(h[i].score));
    }
    herd_store_hits_free(h, n);
    return http_send_json(r, 200, json_pack("{s:o, s:o}", "chunks", chunks, "scores", scores));
}

static enum MHD_Result rag_insert(http_req *r, json_t *b) {
    const char *id = db_id(b, "vector_db_id");
    json_t *docs = json_object_get(b, "documents");
    if (!id) return http_send_error(r, 400, "invalid_request_error", "vector_db_id", NULL, "'vector_db_id' must be a string");
    if (!json_is_array(docs) || json_array_size(docs) == 0)
        return http_send_error(r, 400, "invalid_request_error", "documents", NULL, "'documents' must be a non-empty array");
    int64_t chunk = int_field(b, "chunk_size_in_tokens", 512);
    if (chunk < 8 || chunk > 1 << 16)
        return http_send_error(r, 400, "invalid_request_error", "chunk_size_in_tokens", NULL,
                               "'chunk_size_in_tokens' must be 8..65536");
    herd_chunk_params cp = {.chunk_tokens = chunk, .overlap = -1};
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) {
        char *text = content_text(json_object_get(d, "content"));
        json_t *meta = json_object_get(d, "metadata"), *did = json_object_get(d, "document_id");
        json_t *mt = json_object_get(d, "mime_type");
        if (json_is_string(mt) && strncmp(json_string_value(mt), "text/", 5)) {
            free(text);
            return http_send_error(r, 400, "invalid_request_error", "documents", NULL,
                                   "document %zu: mime_type '%s' is not supported (text/* only)", i, json_string_value(mt));
        }
        if (!text || !text[0] || (meta && !json_is_object(meta)) || (did && !json_is_string(did))) {
            free(text);
            return http_send_error(r, 400, "invalid_request_error", "documents", NULL,
                                   "document %zu needs text 'content', a string 'document_id' and an object 'metadata'", i);
        }
        json_t *m2 = json_is_object(meta) ? json_deep_copy(meta) : json_object();
        if (did) json_object_set(m2, "document_id", did);
        char *ms = json_dumps(m2, JSON_COMPACT);
        json_decref(m2);
        embed_ctx ec = {r};
        int rc = herd_store_add_text(g_store, id, model_of(r), engine_embed, &ec, did ? json_string_value(did) : "",
                                     text, strlen(text), ms, &cp, NULL);
        free(ms);
        free(text);
        if (rc) return store_error(r, rc);
    }
    return http_send_json(r, 200, json_object());
}

static enum MHD_Result rag_query(http_req *r, json_t *b) {
    json_t *ids = json_object_get(b, "vector_db_ids"), *cfg = json_object_get(b, "query_config");
    if (!ids) ids = json_object_get(b, "vector_store_ids");
    char *text = content_text(json_object_get(b, "content"));
    if (!json_is_array(ids) || json_array_size(ids) == 0 || !text || !text[0]) {
        free(text);
        return http_send_error(r, 400, "invalid_request_error", NULL, NULL,
                               "need 'content' with text and 'vector_db_ids', a non-empty array");
    }
    int64_t k = int_field(cfg, "max_chunks", 5);
    if (k < 1 || k > 1000) {
        free(text);
        return http_send_error(r, 400, "invalid_request_error", "query_config", NULL, "'max_chunks' must be 1..1000");
    }
    float *qv = NULL;
    int rc = embed_query(r, text, &qv);
    /* best k over all the stores named */
    herd_store_hit *all = NULL;
    int64_t na = 0;
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        if (rc) break;
        if (!json_is_string(v)) {
            rc = herd_err(HERD_E_FORMAT, "'vector_db_ids' must hold strings");
            break;
        }
        herd_store_hit *h;
        int64_t n;
        rc = herd_store_search(g_store, json_string_value(v), qv, k, NULL, -1, &h, &n);
        if (rc) break;
        all = herd_xrealloc(all, (size_t)(na + n + 1) * sizeof *all);
        memcpy(all + na, h, (size_t)n * sizeof *h);
        na += n;
        free(h); /* the strings moved to all */
    }
    free(qv);
    if (rc) {
        free(text);
        herd_store_hits_free(all, na);
        return store_error(r, rc);
    }
    for (int64_t a = 1; a < na; a++) /* insertion sort by score: few hits */
        for (int64_t c = a; c > 0 && all[c].score > all[c - 1].score; c--) {
            herd_store_hit t = all[c];
            all[c] = all[c - 1], all[c - 1] = t;
        }
    int64_t n = na < k ? na : k;
    /* Llama Stack's default rendering of knowledge_search results */
    json_t *content = json_array(), *doc_ids = json_array(), *chunks = json_array(), *scores = json_array();
    char head[160];
    snprintf(head, sizeof head, "knowledge_search tool found %lld chunks:\nBEGIN of knowledge_search tool results.\n",
             (long long)n);
    json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", head));
    for (int64_t c = 0; c < n; c++) {
        strbuf sb = {0};
        char num[48];
        snprintf(num, sizeof num, "Result %lld\nContent: ", (long long)(c + 1));
        strbuf_put(&sb, num, strlen(num));
        strbuf_put(&sb, all[c].text, strlen(all[c].text));
        strbuf_put(&sb, "\nMetadata: ", 11);
        strbuf_put(&sb, all[c].metadata, strlen(all[c].metadata));
        strbuf_put(&sb, "\n", 2);
        json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", sb.p));
        free(sb.p);
        json_error_t e;
        json_t *meta = json_loads(all[c].metadata, 0, &e);
        json_t *did = json_object_get(meta, "document_id");
        json_array_append_new(doc_ids, did ? json_incref(did) : json_string(all[c].source));
        json_decref(meta);
        json_array_append_new(chunks, json_string(all[c].text));
        json_array_append_new(scores, json_real(all[c].score));
    }
    json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", "END of knowledge_search tool results.\n"));
    strbuf tail = {0};
    const char *t1 = "The above results were retrieved to help answer the user's query: \"";
    const char *t2 = "\". Use them as supporting information only in answering this query.\n";
    strbuf_put(&tail, t1, strlen(t1));
    strbuf_put(&tail, text, strlen(text));
    strbuf_put(&tail, t2, strlen(t2) + 1);
    json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", tail.p));
    free(tail.p), free(text);
    herd_store_hits_free(all, na);
    return http_send_json(r, 200, json_pack("{s:o, s:{s:o, s:o, s:o}}", "content", content, "metadata", "document_ids",
                                            doc_ids, "chunks", chunks, "scores", scores));
}

/* ---- retrieval for chat completions' file_search tool (file_search.c) ---------------------------- */

int vector_stores_retrieve(http_req *r, json_t *ids, const char *query, int64_t k, json_t *filters, json_t **results) {
    *results = NULL;
    if (!r->srv->cfg.store_dir)
        return herd_err(HERD_E_ARG, "file_search needs vector stores: start herd serve with --store DIR");
    pthread_mutex_lock(&g_mu);
    int rc = g_store ? HERD_OK : herd_store_open(r->srv->cfg.store_dir, &g_store);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) if (!rc) rc = herd_store_collection_check(g_store, json_string_value(v));
    float *qv = NULL;
    if (!rc) rc = embed_query(r, query, &qv);
    char *fs = json_is_object(filters) ? json_dumps(filters, JSON_COMPACT) : NULL;
    /* the best k over all the stores: each store's own top k, merged by score (ties: the earlier store) */
    json_t *all = json_array();
    json_array_foreach(ids, i, v) {
        if (rc) break;
        herd_store_hit *h;
        int64_t n;
        if ((rc = herd_store_search(g_store, json_string_value(v), qv, k, fs, -1, &h, &n))) break;
        json_t *page = openai_results(h, n), *x;
        size_t j;
        json_array_foreach(page, j, x) {
            json_object_set(x, "vector_store_id", v);
            json_object_set_new(x, "chunk_id", json_integer(h[j].chunk_id));
            json_object_set(x, "text", json_object_get(json_array_get(json_object_get(x, "content"), 0), "text"));
            json_object_del(x, "content");
            size_t at = json_array_size(all);
            while (at > 0 && json_real_value(json_object_get(json_array_get(all, at - 1), "score")) <
                                 json_real_value(json_object_get(x, "score")))
                at--;
            json_array_insert(all, at, x);
        }
        json_decref(page);
        herd_store_hits_free(h, n);
    }
    pthread_mutex_unlock(&g_mu);
    free(fs), free(qv);
    while ((int64_t)json_array_size(all) > k) json_array_remove(all, json_array_size(all) - 1);
    if (rc) json_decref(all);
    else *results = all;
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------------ */

static json_t *body_json(http_req *r, enum MHD_Result *res) {
    if (r->too_large) {
        *res = http_send_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                               "the request body exceeds the limit of %zu bytes", r->srv->cfg.max_body);
        return NULL;
    }
    json_error_t err;
    json_t *b = json_loadb(r->body.p ? r->body.p : "", r->body.n, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(b)) {
        json_decref(b);
        *res = http_send_error(r, 400, "invalid_request_error", NULL, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    return b;
}

bool vector_routes_dispatch(http_req *r, enum MHD_Result *res) {
    const char *u = r->url, *m = r->method;
    bool vs = !strncmp(u, "/v1/vector_stores", 17) && (u[17] == 0 || u[17] == '/');
    bool ls = !strcmp(u, "/v1/vector-io/insert") || !strcmp(u, "/v1/vector-io/query") ||
              !strcmp(u, "/v1/tool-runtime/rag-tool/insert") || !strcmp(u, "/v1/tool-runtime/rag-tool/query");
    if (!vs && !ls) return false;
    r->route = vs ? "/v1/vector_stores" : "/v1/vector-io";
    if (!r->srv->cfg.store_dir) {
        *res = http_send_error(r, 404, "invalid_request_error", NULL, "not_found",
                               "this server has no vector stores (start it with --store DIR)");
        return true;
    }
    pthread_mutex_lock(&g_mu);
    if (!g_store && herd_store_open(r->srv->cfg.store_dir, &g_store) != HERD_OK) {
        *res = http_send_error(r, 500, "server_error", NULL, NULL, "%s", herd_last_error());
        pthread_mutex_unlock(&g_mu);
        return true;
    }
    bool get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), del = !strcmp(m, "DELETE");
    json_t *b = NULL;
    if (post && !(b = body_json(r, res))) {
        pthread_mutex_unlock(&g_mu);
        return true;
    }
    if (ls) {
        if (!post) *res = http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "use POST on %s", u);
        else if (!strcmp(u, "/v1/vector-io/insert")) *res = vio_insert(r, b);
        else if (!strcmp(u, "/v1/vector-io/query")) *res = vio_query(r, b);
        else if (!strcmp(u, "/v1/tool-runtime/rag-tool/insert")) *res = rag_insert(r, b);
        else *res = rag_query(r, b);
    } else {
        const char *rest = u + 17; /* "" or "/ID" or "/ID/search" */
        char id[128] = "";
        const char *tail = "";
        if (*rest == '/') {
            rest++;
            size_t n = strcspn(rest, "/");
            if (n >= sizeof id) n = sizeof id - 1;
            memcpy(id, rest, n);
            id[n] = 0;
            tail = rest + strcspn(rest, "/");
        }
        if (!id[0] && post) *res = vs_create(r, b);
        else if (!id[0] && get) *res = vs_list(r);
        else if (id[0] && !*tail && get) {
            json_t *o = store_object(id);
            *res = o ? http_send_json(r, 200, o)
                     : http_send_error(r, 404, "invalid_request_error", NULL, "not_found", "no vector store '%s'", id);
        } else if (id[0] && !*tail && del) {
            int rc = herd_store_collection_delete(g_store, id);
            *res = rc ? store_error(r, rc)
                      : http_send_json(r, 200, json_pack("{s:s, s:s, s:b}", "id", id, "object", "vector_store.deleted",
                                                         "deleted", 1));
        } else if (id[0] && !strcmp(tail, "/search") && post) *res = vs_search(r, id, b);
        else if (id[0] && ((!strncmp(tail, "/files", 6) && (!tail[6] || tail[6] == '/')) ||
                           (!strncmp(tail, "/file_batches", 13) && (!tail[13] || tail[13] == '/'))))
            *res = vs_files_route(r, id, tail, b, get, post, del);
        else *res = http_send_error(r, 405, "invalid_request_error", NULL, "method_not_allowed", "%s %s is not a route", m, u);
    }
    json_decref(b);
    pthread_mutex_unlock(&g_mu);
    return true;
}
