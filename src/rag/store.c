/* Vector stores in SQLite (see include/herd.h, "retrieval"). This module owns the file format:
 *
 *   DIR/store.sqlite, WAL journal, synchronous=NORMAL (a process crash loses nothing committed)
 *   meta(key PRIMARY KEY, value)                      embedding model, n_embd, pooling
 *   collections(id PRIMARY KEY, name, created_at, metadata JSON)
 *   documents(id INTEGER PRIMARY KEY, collection, source, metadata JSON, n_tokens, n_chunks, created_at)
 *   chunks(id INTEGER PRIMARY KEY, doc_id, seq, tok_start, tok_end, text, metadata JSON, vector BLOB)
 *       vector: n_embd little-endian float32, unit L2 norm
 *   files(collection, file_id, doc_id, filename, created_at, usage_bytes, chunk_tokens, overlap, attributes JSON)
 *       OpenAI vector store files: the uploaded file (by its /v1/files id) a document was made from;
 *       PRIMARY KEY(collection, file_id); the row goes with its document (ON DELETE CASCADE). A store
 *       made before this table existed gets it (empty) when opened.
 *   ann_ivf(collection PRIMARY KEY, n_embd, nlist, trained_rows, centroids BLOB, created_at)
 *       the IVF index of a big collection (src/rag/ivf.c): nlist x n_embd float32 unit centroids, trained
 *       on trained_rows chunks; goes with its collection (ON DELETE CASCADE)
 *   ann_list(chunk_id PRIMARY KEY, list)  the IVF list of each chunk; goes with its chunk (ON DELETE CASCADE)
 *
 * What survives a crash: each document is inserted (documents row + all its chunks) in one transaction,
 * after every chunk has been embedded, so a kill at any point leaves it wholly in or absent; n_chunks
 * in its row equals the number of its chunk rows; a file's row is written in the same transaction. Search keeps each collection's vectors in memory
 * (one matrix, rows in chunk id order) and drops them when the collection changes.
 *
 * The IVF index: trained on the first approximate search of a collection of at least ivf_min_rows chunks
 * and saved (centroids + every chunk's list) in one transaction; a document added later gets its chunks'
 * lists in its own transaction (nearest saved centroid); a deleted chunk's list row goes with it. A chunk
 * without a list row (written while no index existed, or by an older herd) is assigned when the index is
 * next loaded, and saved. The index is retrained (and resaved) when the collection has grown past 4x the
 * rows it was trained on, or when its n_embd no longer matches. A crash loses at most an index not yet
 * saved; it is never half-saved. */
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/log.h"
#include "herd.h"
#include "search.h"
#include "text.h"

typedef struct {
    char *collection;
    int64_t rows, n;
    float *v;           /* [rows][n] */
    int64_t *chunk_id;  /* [rows] */
    json_t **meta;      /* [rows] chunk metadata + "source" (owned refs) */
    rag_hnsw *hnsw;     /* built on the first approximate search of a small collection */
    int32_t *list;      /* [rows] saved IVF list of each row, -1: none */
    rag_ivf *ivf;       /* loaded (or trained and saved) on the first approximate search of a big one */
} vec_cache;

struct herd_store {
    sqlite3 *db;
    char *path;
    vec_cache cache;
    int n_threads;
    int64_t ivf_min_rows, ivf_nlist; /* herd_store_set_ivf */
};

static int db_err(herd_store *s, const char *what) {
    return herd_err(HERD_E_IO, "store %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static void cache_drop(herd_store *s) {
    vec_cache *c = &s->cache;
    for (int64_t i = 0; i < c->rows; i++) json_decref(c->meta[i]);
    rag_hnsw_free(c->hnsw);
    rag_ivf_free(c->ivf);
    free(c->collection), free(c->v), free(c->chunk_id), free(c->meta), free(c->list);
    memset(c, 0, sizeof *c);
}

static int exec(herd_store *s, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = herd_err(HERD_E_IO, "store %s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return rc;
    }
    return HERD_OK;
}

int herd_store_open(const char *dir, herd_store **out) {
    *out = NULL;
    if (mkdir(dir, 0777) != 0) {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return herd_err(HERD_E_IO, "store: cannot create the directory '%s'", dir);
    }
    herd_store *s = herd_xcalloc(1, sizeof *s);
    size_t n = strlen(dir) + 16;
    s->path = herd_xmalloc(n);
    snprintf(s->path, n, "%s/store.sqlite", dir);
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    s->n_threads = nc > 0 ? (int)nc : 1;
    if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        int rc = herd_err(HERD_E_IO, "store: cannot open '%s': %s", s->path, s->db ? sqlite3_errmsg(s->db) : "?");
        herd_store_close(s);
        return rc;
    }
    sqlite3_busy_timeout(s->db, 10000);
    int rc = exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                     "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
                     "CREATE TABLE IF NOT EXISTS collections(id TEXT PRIMARY KEY, name TEXT, created_at INTEGER,"
                     " metadata TEXT);"
                     "CREATE TABLE IF NOT EXISTS documents(id INTEGER PRIMARY KEY, collection TEXT NOT NULL"
                     " REFERENCES collections(id) ON DELETE CASCADE, source TEXT, metadata TEXT, n_tokens INTEGER,"
                     " n_chunks INTEGER, created_at INTEGER);"
                     "CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL"
                     " REFERENCES documents(id) ON DELETE CASCADE, seq INTEGER, tok_start INTEGER, tok_end INTEGER,"
                     " text TEXT, metadata TEXT, vector BLOB);"
                     "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);"
                     "CREATE TABLE IF NOT EXISTS files(collection TEXT NOT NULL, file_id TEXT NOT NULL, doc_id INTEGER"
                     " NOT NULL REFERENCES documents(id) ON DELETE CASCADE, filename TEXT, created_at INTEGER,"
                     " usage_bytes INTEGER, chunk_tokens INTEGER, overlap INTEGER, attributes TEXT,"
                     " PRIMARY KEY(collection, file_id));"
                     "CREATE INDEX IF NOT EXISTS files_doc ON files(doc_id);"
                     "CREATE INDEX IF NOT EXISTS documents_collection ON documents(collection);"
                     "CREATE TABLE IF NOT EXISTS ann_ivf(collection TEXT PRIMARY KEY REFERENCES collections(id)"
                     " ON DELETE CASCADE, n_embd INTEGER, nlist INTEGER, trained_rows INTEGER, centroids BLOB,"
                     " created_at INTEGER);"
                     "CREATE TABLE IF NOT EXISTS ann_list(chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id)"
                     " ON DELETE CASCADE, list INTEGER NOT NULL);"
                     "INSERT OR IGNORE INTO collections VALUES('default', 'default', strftime('%s','now'), '{}');");
    if (rc) {
        herd_store_close(s);
        return rc;
    }
    s->ivf_min_rows = HERD_STORE_IVF_MIN_ROWS;
    *out = s;
    return HERD_OK;
}

void herd_store_set_ivf(herd_store *s, int64_t min_rows, int64_t nlist) {
    s->ivf_min_rows = min_rows > 0 ? min_rows : HERD_STORE_IVF_MIN_ROWS;
    s->ivf_nlist = nlist > 0 ? nlist : 0;
    cache_drop(s); /* an index of another nlist is retrained on the next search */
}

void herd_store_close(herd_store *s) {
    if (!s) return;
    cache_drop(s);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

char *herd_store_meta_get(herd_store *s, const char *key) {
    sqlite3_stmt *st;
    char *v = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK) return NULL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

int herd_store_meta_set(herd_store *s, const char *key, const char *value) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta VALUES(?, ?)", -1, &st, NULL) != SQLITE_OK)
        return db_err(s, "meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? HERD_OK : db_err(s, "meta");
    sqlite3_finalize(st);
    return rc;
}

/* metadata_json must be NULL or a JSON object; OUT: *canon (owned, compact). */
static int check_meta(const char *metadata_json, char **canon) {
    json_error_t e;
    json_t *j = metadata_json ? json_loads(metadata_json, 0, &e) : json_object();
    if (!json_is_object(j)) {
        json_decref(j);
        return herd_err(HERD_E_FORMAT, "store: metadata must be a JSON object");
    }
    *canon = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return HERD_OK;
}

int herd_store_collection_create(herd_store *s, const char *name, const char *metadata_json, char **id) {
    char *meta;
    int rc = check_meta(metadata_json, &meta);
    if (rc) return rc;
    char buf[40];
    FILE *ur = fopen("/dev/urandom", "rb");
    unsigned char r[12] = {0};
    if (!ur || fread(r, 1, sizeof r, ur) != sizeof r) {
        uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)clock() << 20 ^ (uint64_t)getpid();
        memcpy(r, &t, 8);
    }
    if (ur) fclose(ur);
    int o = snprintf(buf, sizeof buf, "vs_");
    for (int i = 0; i < 12; i++) o += snprintf(buf + o, sizeof buf - (size_t)o, "%02x", r[i]);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO collections VALUES(?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK) {
        free(meta);
        return db_err(s, "create");
    }
    sqlite3_bind_text(st, 1, buf, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name ? name : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
    sqlite3_bind_text(st, 4, meta, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? HERD_OK : db_err(s, "create");
    sqlite3_finalize(st);
    free(meta);
    if (!rc) *id = strdup(buf);
    return rc;
}

char *herd_store_collection_list(herd_store *s) {
    sqlite3_stmt *st;
    json_t *a = json_array();
    if (sqlite3_prepare_v2(s->db,
                           "SELECT c.id, c.name, c.created_at, c.metadata,"
                           " (SELECT count(*) FROM documents d WHERE d.collection = c.id),"
                           " (SELECT count(*) FROM chunks k JOIN documents d ON k.doc_id = d.id WHERE d.collection = c.id)"
                           " FROM collections c ORDER BY c.created_at, c.rowid",
                           -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_error_t e;
            json_t *meta = json_loads((const char *)sqlite3_column_text(st, 3), 0, &e);
            json_array_append_new(a, json_pack("{s:s, s:s, s:I, s:o, s:I, s:I}", "id", sqlite3_column_text(st, 0),
                                               "name", sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "",
                                               "created_at", (json_int_t)sqlite3_column_int64(st, 2), "metadata",
                                               meta ? meta : json_object(), "n_documents",
                                               (json_int_t)sqlite3_column_int64(st, 4), "n_chunks",
                                               (json_int_t)sqlite3_column_int64(st, 5)));
        }
        sqlite3_finalize(st);
    }
    char *out = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return out;
}

int herd_store_collection_check(herd_store *s, const char *id) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM collections WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return db_err(s, "collection");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found ? HERD_OK : herd_err(HERD_E_ARG, "store: no vector store '%s'", id);
}

int herd_store_collection_delete(herd_store *s, const char *id) {
    int rc = herd_store_collection_check(s, id);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM collections WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return db_err(s, "delete");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? HERD_OK : db_err(s, "delete");
    sqlite3_finalize(st);
    cache_drop(s);
    return rc;
}

/* ---- ingestion ------------------------------------------------------------------------------------ */

typedef struct {
    int64_t tok_start, tok_end;
    char *text, *meta;
    float *vec;
} pending_chunk;

/* What a vector store file adds to its document (herd_store_file_add); NULL for other documents. */
typedef struct {
    const char *file_id, *filename;
    int64_t chunk_tokens, overlap;
} file_link;

/* Writes one document and its chunks (and fl's files row, if any) in one transaction. */
/* Inside write_doc's transaction: when the collection has a saved IVF index of this n_embd, each new chunk
 * joins the list of its nearest saved centroid (so the index stays whole without retraining). */
static int ann_add(herd_store *s, const char *collection, const pending_chunk *ch, const int64_t *chunk_ids, int64_t n,
                   int64_t n_embd) {
    sqlite3_stmt *st, *ins = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT nlist, centroids FROM ann_ivf WHERE collection = ? AND n_embd = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return db_err(s, "index");
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, n_embd);
    int rc = HERD_OK;
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t nlist = sqlite3_column_int64(st, 0);
        const float *cent = sqlite3_column_blob(st, 1);
        if (nlist < 1 || sqlite3_column_bytes(st, 1) != nlist * n_embd * (int64_t)sizeof(float)) {
            sqlite3_finalize(st);
            return HERD_OK; /* unusable: retrained on the next load */
        }
        if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO ann_list(chunk_id, list) VALUES(?, ?)", -1, &ins, NULL) !=
            SQLITE_OK)
            rc = db_err(s, "index");
        for (int64_t i = 0; i < n && !rc; i++) {
            int32_t l;
            rag_ivf_assign(cent, nlist, n_embd, ch[i].vec, 1, 1, &l);
            sqlite3_reset(ins);
            sqlite3_bind_int64(ins, 1, chunk_ids[i]);
            sqlite3_bind_int64(ins, 2, l);
            if (sqlite3_step(ins) != SQLITE_DONE) rc = db_err(s, "index chunk");
        }
    }
    sqlite3_finalize(st), sqlite3_finalize(ins);
    return rc;
}

static int write_doc(herd_store *s, const char *collection, const char *source, const char *doc_meta, int64_t n_tokens,
                     pending_chunk *ch, int64_t n, int64_t n_embd, const file_link *fl, int64_t *doc_id) {
    int rc = exec(s, "BEGIN IMMEDIATE");
    if (rc) return rc;
    sqlite3_stmt *d = NULL, *c = NULL, *f = NULL;
    int64_t *chunk_ids = NULL;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO documents(collection, source, metadata, n_tokens, n_chunks, created_at)"
                                  " VALUES(?, ?, ?, ?, ?, ?)", -1, &d, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT INTO chunks(doc_id, seq, tok_start, tok_end, text, metadata, vector)"
                                  " VALUES(?, ?, ?, ?, ?, ?, ?)", -1, &c, NULL) != SQLITE_OK) {
        rc = db_err(s, "insert");
        goto fail;
    }
    sqlite3_bind_text(d, 1, collection, -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 2, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 3, doc_meta, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d, 4, n_tokens);
    sqlite3_bind_int64(d, 5, n);
    sqlite3_bind_int64(d, 6, (sqlite3_int64)time(NULL));
    if (sqlite3_step(d) != SQLITE_DONE) {
        rc = db_err(s, "insert document");
        goto fail;
    }
    int64_t id = sqlite3_last_insert_rowid(s->db);
    chunk_ids = herd_xmalloc((size_t)n * sizeof(int64_t));
    /* a test hook: HERD_RAG_TEST_PAUSE_MS sleeps between chunk rows inside the transaction, so that a
     * test's kill -9 lands in the middle of one (tests/conformance/rag_store.sh) */
    const char *pause = getenv("HERD_RAG_TEST_PAUSE_MS");
    long pause_ms = pause ? atol(pause) : 0;
    for (int64_t i = 0; i < n; i++) {
        sqlite3_reset(c);
        sqlite3_bind_int64(c, 1, id);
        sqlite3_bind_int64(c, 2, i);
        sqlite3_bind_int64(c, 3, ch[i].tok_start);
        sqlite3_bind_int64(c, 4, ch[i].tok_end);
        sqlite3_bind_text(c, 5, ch[i].text, -1, SQLITE_STATIC);
        sqlite3_bind_text(c, 6, ch[i].meta ? ch[i].meta : doc_meta, -1, SQLITE_STATIC);
        sqlite3_bind_blob(c, 7, ch[i].vec, (int)(n_embd * (int64_t)sizeof(float)), SQLITE_STATIC);
        if (sqlite3_step(c) != SQLITE_DONE) {
            rc = db_err(s, "insert chunk");
            goto fail;
        }
        chunk_ids[i] = sqlite3_last_insert_rowid(s->db);
        if (pause_ms > 0) usleep((useconds_t)pause_ms * 1000);
    }
    if (fl) {
        /* usage: the chunks' text and vectors, as OpenAI counts a file's share of a store */
        int64_t bytes = n * n_embd * (int64_t)sizeof(float);
        for (int64_t i = 0; i < n; i++) bytes += (int64_t)strlen(ch[i].text);
        if (sqlite3_prepare_v2(s->db, "INSERT INTO files VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &f, NULL) != SQLITE_OK) {
            rc = db_err(s, "insert file");
            goto fail;
        }
        sqlite3_bind_text(f, 1, collection, -1, SQLITE_STATIC);
        sqlite3_bind_text(f, 2, fl->file_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(f, 3, id);
        sqlite3_bind_text(f, 4, fl->filename, -1, SQLITE_STATIC);
        sqlite3_bind_int64(f, 5, (sqlite3_int64)time(NULL));
        sqlite3_bind_int64(f, 6, bytes);
        sqlite3_bind_int64(f, 7, fl->chunk_tokens);
        sqlite3_bind_int64(f, 8, fl->overlap);
        sqlite3_bind_text(f, 9, doc_meta, -1, SQLITE_STATIC);
        int st = sqlite3_step(f);
        if (st != SQLITE_DONE) {
            rc = sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_PRIMARYKEY
                     ? herd_err(HERD_E_ARG, "store: the file '%s' is already in vector store '%s'", fl->file_id, collection)
                     : db_err(s, "insert file");
            goto fail;
        }
    }
    if ((rc = ann_add(s, collection, ch, chunk_ids, n, n_embd))) goto fail;
    free(chunk_ids), chunk_ids = NULL;
    sqlite3_finalize(d), sqlite3_finalize(c), sqlite3_finalize(f);
    rc = exec(s, "COMMIT");
    if (rc) {
        exec(s, "ROLLBACK");
        return rc;
    }
    if (s->cache.collection && !strcmp(s->cache.collection, collection)) cache_drop(s);
    if (doc_id) *doc_id = id;
    return HERD_OK;
fail:
    free(chunk_ids);
    sqlite3_finalize(d), sqlite3_finalize(c), sqlite3_finalize(f);
    exec(s, "ROLLBACK");
    return rc;
}

/* Embeds BOS + tokens of each pending chunk; checks n_embd against the store's. */
static int embed_chunks(herd_store *s, const herd_model *m, herd_embed_fn fn, void *user, pending_chunk *ch, int64_t n,
                        const int32_t *const *toks, const int64_t *ntok) {
    int64_t E = herd_model_n_embd(m);
    char *have = herd_store_meta_get(s, "n_embd");
    if (have && atoll(have) != E) {
        int rc = herd_err(HERD_E_ARG, "store %s: holds %s-dimensional vectors; this model's are %lld", s->path, have,
                          (long long)E);
        free(have);
        return rc;
    }
    if (!have) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)E);
        herd_store_meta_set(s, "n_embd", b);
    }
    free(have);
    int32_t bos = herd_vocab_bos(m);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = ntok[i] + (bos >= 0);
        int32_t *ids = herd_xmalloc((size_t)(k ? k : 1) * sizeof(int32_t));
        if (bos >= 0) ids[0] = bos;
        memcpy(ids + (bos >= 0), toks[i], (size_t)ntok[i] * sizeof(int32_t));
        ch[i].vec = herd_xmalloc((size_t)E * sizeof(float));
        int rc = fn(user, ids, k, ch[i].vec);
        free(ids);
        if (rc) return rc;
    }
    return HERD_OK;
}

static void free_pending(pending_chunk *ch, int64_t n) {
    for (int64_t i = 0; i < n; i++) free(ch[i].text), free(ch[i].vec), free(ch[i].meta);
    free(ch);
}

static int add_text(herd_store *s, const char *collection, const herd_model *m, herd_embed_fn fn, void *user,
                    const char *source, const char *text, size_t len, const char *metadata_json,
                    const herd_chunk_params *p, file_link *fl, int64_t *doc_id) {
    int64_t size = p && p->chunk_tokens > 0 ? p->chunk_tokens : 512;
    int64_t overlap = p && p->overlap >= 0 ? p->overlap : size / 4;
    if (overlap >= size)
        return herd_err(HERD_E_ARG, "store: the overlap (%lld) must be smaller than the chunk (%lld tokens)",
                        (long long)overlap, (long long)size);
    int rc = herd_store_collection_check(s, collection);
    if (rc) return rc;
    char *meta;
    if ((rc = check_meta(metadata_json, &meta))) return rc;
    int32_t *ids = NULL;
    int64_t n = 0, *st = NULL, *en = NULL;
    pending_chunk *ch = NULL;
    int64_t nc = 0;
    if ((rc = herd_tokenize(m, text, len, 0, &ids, &n))) goto done;
    if (n == 0) {
        rc = herd_err(HERD_E_FORMAT, "store: '%s' has no text", source);
        goto done;
    }
    nc = rag_chunk_windows(n, size, overlap, &st, &en);
    ch = herd_xcalloc((size_t)nc, sizeof *ch);
    const int32_t **toks = herd_xmalloc((size_t)nc * sizeof *toks);
    int64_t *ntok = herd_xmalloc((size_t)nc * sizeof *ntok);
    for (int64_t i = 0; i < nc; i++) {
        size_t tl;
        ch[i].tok_start = st[i], ch[i].tok_end = en[i];
        toks[i] = ids + st[i], ntok[i] = en[i] - st[i];
        if ((rc = herd_detokenize(m, ids + st[i], en[i] - st[i], false, &ch[i].text, &tl))) break;
    }
    if (!rc) rc = embed_chunks(s, m, fn, user, ch, nc, toks, ntok);
    free(toks), free(ntok);
    if (fl) fl->chunk_tokens = size, fl->overlap = overlap;
    if (!rc) rc = write_doc(s, collection, source, meta, n, ch, nc, herd_model_n_embd(m), fl, doc_id);
done:
    free_pending(ch, nc);
    free(ids), free(st), free(en), free(meta);
    return rc;
}

int herd_store_add_text(herd_store *s, const char *collection, const herd_model *m, herd_embed_fn fn, void *user,
                        const char *source, const char *text, size_t len, const char *metadata_json,
                        const herd_chunk_params *p, int64_t *doc_id) {
    return add_text(s, collection, m, fn, user, source, text, len, metadata_json, p, NULL, doc_id);
}

int herd_store_add_file(herd_store *s, const char *collection, const herd_model *m, herd_embed_fn fn, void *user,
                        const char *path, const char *metadata_json, const herd_chunk_params *p, int64_t *doc_id) {
    int kind = rag_text_kind_of(path);
    if (kind < 0)
        return herd_err(HERD_E_UNSUPPORTED, "store: '%s': unsupported file type (herd reads .txt, .md, .html, .htm, .pdf)",
                        path);
    char *text;
    size_t len;
    int rc = rag_text_load(path, kind, &text, &len);
    if (rc) return rc;
    rc = herd_store_add_text(s, collection, m, fn, user, path, text, len, metadata_json, p, doc_id);
    free(text);
    return rc;
}

int herd_store_add_chunks(herd_store *s, const char *collection, const herd_model *m, herd_embed_fn fn, void *user,
                          const char *source, const char *const *texts, const char *const *metadata_json, int64_t n,
                          int64_t *doc_id) {
    int rc = herd_store_collection_check(s, collection);
    if (rc) return rc;
    if (n <= 0) return herd_err(HERD_E_FORMAT, "store: no chunks to insert");
    pending_chunk *ch = herd_xcalloc((size_t)n, sizeof *ch);
    int32_t **ids = herd_xcalloc((size_t)n, sizeof *ids);
    int64_t *ntok = herd_xcalloc((size_t)n, sizeof *ntok), total = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        if ((rc = check_meta(metadata_json ? metadata_json[i] : NULL, &ch[i].meta))) break;
        if ((rc = herd_tokenize(m, texts[i], strlen(texts[i]), 0, &ids[i], &ntok[i]))) break;
        if (ntok[i] == 0) rc = herd_err(HERD_E_FORMAT, "store: chunk %lld has no text", (long long)i);
        ch[i].text = strdup(texts[i]);
        ch[i].tok_start = total, ch[i].tok_end = total + ntok[i];
        total += ntok[i];
    }
    if (!rc) rc = embed_chunks(s, m, fn, user, ch, n, (const int32_t *const *)ids, ntok);
    if (!rc) rc = write_doc(s, collection, source ? source : "", "{}", total, ch, n, herd_model_n_embd(m), NULL, doc_id);
    for (int64_t i = 0; i < n; i++) free(ids[i]);
    free(ids), free(ntok);
    free_pending(ch, n);
    return rc;
}

int herd_store_delete_doc(herd_store *s, int64_t doc_id) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM documents WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return db_err(s, "delete");
    sqlite3_bind_int64(st, 1, doc_id);
    int rc = sqlite3_step(st) == SQLITE_DONE ? HERD_OK : db_err(s, "delete");
    sqlite3_finalize(st);
    if (!rc && sqlite3_changes(s->db) == 0) rc = herd_err(HERD_E_ARG, "store: no document %lld", (long long)doc_id);
    cache_drop(s);
    return rc;
}

/* ---- vector store files ----------------------------------------------------------------------------- */

int herd_store_file_add(herd_store *s, const char *collection, const herd_model *m, herd_embed_fn fn, void *user,
                        const char *file_id, const char *filename, const char *path, const char *attributes_json,
                        const herd_chunk_params *p, int64_t *doc_id) {
    int rc = herd_store_collection_check(s, collection);
    if (rc) return rc;
    if (!file_id || !file_id[0]) return herd_err(HERD_E_ARG, "store: a file needs an id");
    int kind = rag_text_kind_of(filename);
    if (kind < 0)
        return herd_err(HERD_E_UNSUPPORTED,
                        "store: '%s' (file %s): unsupported file type (herd reads .txt, .md, .html, .htm, .pdf)",
                        filename, file_id);
    char *have = herd_store_file_list(s, collection, file_id);
    bool dup = have && strcmp(have, "[]");
    free(have);
    if (dup) return herd_err(HERD_E_ARG, "store: the file '%s' is already in vector store '%s'", file_id, collection);
    char *text;
    size_t len;
    if ((rc = rag_text_load(path, kind, &text, &len))) return rc;
    file_link fl = {.file_id = file_id, .filename = filename};
    rc = add_text(s, collection, m, fn, user, filename, text, len, attributes_json, p, &fl, doc_id);
    free(text);
    return rc;
}

char *herd_store_file_list(herd_store *s, const char *collection, const char *file_id) {
    if (herd_store_collection_check(s, collection)) return NULL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT f.file_id, f.doc_id, f.filename, f.created_at, f.usage_bytes, d.n_chunks,"
                           " f.chunk_tokens, f.overlap, f.attributes FROM files f JOIN documents d ON f.doc_id = d.id"
                           " WHERE f.collection = ?1 AND (?2 IS NULL OR f.file_id = ?2) ORDER BY f.created_at, f.rowid",
                           -1, &st, NULL) != SQLITE_OK) {
        db_err(s, "files");
        return NULL;
    }
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    if (file_id) sqlite3_bind_text(st, 2, file_id, -1, SQLITE_STATIC);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_error_t e;
        const char *at = (const char *)sqlite3_column_text(st, 8);
        json_t *attr = at ? json_loads(at, 0, &e) : NULL;
        if (!json_is_object(attr)) json_decref(attr), attr = json_object();
        const char *fn = (const char *)sqlite3_column_text(st, 2);
        json_array_append_new(a, json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "file_id",
                                           (const char *)sqlite3_column_text(st, 0), "doc_id",
                                           (json_int_t)sqlite3_column_int64(st, 1), "filename", fn ? fn : "",
                                           "created_at", (json_int_t)sqlite3_column_int64(st, 3), "usage_bytes",
                                           (json_int_t)sqlite3_column_int64(st, 4), "n_chunks",
                                           (json_int_t)sqlite3_column_int64(st, 5), "chunk_tokens",
                                           (json_int_t)sqlite3_column_int64(st, 6), "overlap",
                                           (json_int_t)sqlite3_column_int64(st, 7), "attributes", attr));
    }
    sqlite3_finalize(st);
    char *out = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return out;
}

int herd_store_file_delete(herd_store *s, const char *collection, const char *file_id) {
    int rc = herd_store_collection_check(s, collection);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM documents WHERE id IN (SELECT doc_id FROM files WHERE collection = ?"
                                  " AND file_id = ?)", -1, &st, NULL) != SQLITE_OK)
        return db_err(s, "delete file");
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, file_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? HERD_OK : db_err(s, "delete file");
    sqlite3_finalize(st);
    if (!rc && sqlite3_changes(s->db) == 0)
        rc = herd_err(HERD_E_ARG, "store: no file '%s' in vector store '%s'", file_id, collection);
    cache_drop(s);
    return rc;
}

int herd_store_file_update(herd_store *s, const char *collection, const char *file_id, const char *attributes_json) {
    int rc = herd_store_collection_check(s, collection);
    if (rc) return rc;
    char *meta;
    if ((rc = check_meta(attributes_json, &meta))) return rc;
    if ((rc = exec(s, "BEGIN IMMEDIATE"))) {
        free(meta);
        return rc;
    }
    /* the file's row, its document and every chunk of it carry the attributes (chunks: for filters) */
    static const char *const k_sql[] = {
        "UPDATE files SET attributes = ?1 WHERE collection = ?2 AND file_id = ?3",
        "UPDATE documents SET metadata = ?1 WHERE id = (SELECT doc_id FROM files WHERE collection = ?2 AND file_id = ?3)",
        "UPDATE chunks SET metadata = ?1 WHERE doc_id = (SELECT doc_id FROM files WHERE collection = ?2 AND file_id = ?3)",
    };
    for (int i = 0; i < 3 && !rc; i++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, k_sql[i], -1, &st, NULL) != SQLITE_OK) {
            rc = db_err(s, "update file");
            break;
        }
        sqlite3_bind_text(st, 1, meta, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, collection, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, file_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? HERD_OK : db_err(s, "update file");
        if (!rc && i == 0 && sqlite3_changes(s->db) == 0)
            rc = herd_err(HERD_E_ARG, "store: no file '%s' in vector store '%s'", file_id, collection);
        sqlite3_finalize(st);
    }
    free(meta);
    if (!rc) rc = exec(s, "COMMIT");
    if (rc) exec(s, "ROLLBACK");
    cache_drop(s);
    return rc;
}

char *herd_store_doc_chunks(herd_store *s, int64_t doc_id) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, seq, tok_start, tok_end, text FROM chunks WHERE doc_id = ? ORDER BY seq", -1,
                           &st, NULL) != SQLITE_OK) {
        db_err(s, "chunks");
        return NULL;
    }
    sqlite3_bind_int64(st, 1, doc_id);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 4);
        json_array_append_new(a, json_pack("{s:I, s:I, s:I, s:I, s:s}", "chunk_id", (json_int_t)sqlite3_column_int64(st, 0),
                                           "seq", (json_int_t)sqlite3_column_int64(st, 1), "tok_start",
                                           (json_int_t)sqlite3_column_int64(st, 2), "tok_end",
                                           (json_int_t)sqlite3_column_int64(st, 3), "text", t ? t : ""));
    }
    sqlite3_finalize(st);
    char *out = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return out;
}

char *herd_store_doc_file_id(herd_store *s, int64_t doc_id) {
    sqlite3_stmt *st;
    char *v = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT file_id FROM files WHERE doc_id = ?", -1, &st, NULL) != SQLITE_OK) return NULL;
    sqlite3_bind_int64(st, 1, doc_id);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

/* ---- search --------------------------------------------------------------------------------------- */

static int cache_load(herd_store *s, const char *collection) {
    if (s->cache.collection && !strcmp(s->cache.collection, collection)) return HERD_OK;
    cache_drop(s);
    vec_cache *c = &s->cache;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT k.id, k.vector, k.metadata, d.source, a.list FROM chunks k JOIN documents d"
                                  " ON k.doc_id = d.id LEFT JOIN ann_list a ON a.chunk_id = k.id WHERE d.collection = ?"
                                  " ORDER BY k.id", -1, &st, NULL) != SQLITE_OK)
        return db_err(s, "search");
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    int64_t cap = 0;
    int rc = HERD_OK, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int bytes = sqlite3_column_bytes(st, 1);
        if (c->rows == 0) c->n = bytes / (int)sizeof(float);
        if (bytes != c->n * (int64_t)sizeof(float) || c->n == 0) {
            rc = herd_err(HERD_E_FORMAT, "store %s: chunk %lld has a vector of %d bytes, not %lld", s->path,
                          (long long)sqlite3_column_int64(st, 0), bytes, (long long)(c->n * 4));
            break;
        }
        if (c->rows == cap) {
            cap = cap ? cap * 2 : 1024;
            float *nv = realloc(c->v, (size_t)(cap * c->n) * sizeof(float));
            if (!nv) {
                rc = herd_err(HERD_E_NOMEM, "store: out of memory loading vectors");
                break;
            }
            c->v = nv;
            c->chunk_id = herd_xrealloc(c->chunk_id, (size_t)cap * sizeof(int64_t));
            c->meta = herd_xrealloc(c->meta, (size_t)cap * sizeof(json_t *));
            c->list = herd_xrealloc(c->list, (size_t)cap * sizeof(int32_t));
        }
        float *row = c->v + c->rows * c->n;
        memcpy(row, sqlite3_column_blob(st, 1), (size_t)bytes);
        double norm = 0;
        for (int64_t e = 0; e < c->n; e++) norm += (double)row[e] * row[e];
        if (norm > 0)
            for (int64_t e = 0; e < c->n; e++) row[e] = (float)(row[e] / sqrt(norm));
        json_error_t e;
        const char *mt = (const char *)sqlite3_column_text(st, 2);
        json_t *meta = mt ? json_loads(mt, 0, &e) : NULL;
        if (!json_is_object(meta)) json_decref(meta), meta = json_object();
        const char *src = (const char *)sqlite3_column_text(st, 3);
        if (!json_object_get(meta, "source")) json_object_set_new(meta, "source", json_string(src ? src : ""));
        c->meta[c->rows] = meta;
        c->list[c->rows] = sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : (int32_t)sqlite3_column_int64(st, 4);
        c->chunk_id[c->rows++] = sqlite3_column_int64(st, 0);
    }
    if (!rc && step != SQLITE_DONE) rc = db_err(s, "search");
    sqlite3_finalize(st);
    if (rc) {
        cache_drop(s);
        return rc;
    }
    c->collection = strdup(collection);
    return HERD_OK;
}

/* Saves the lists of rows [the rows listed in which, or all rows if which is NULL] (and, with cent
 * non-NULL, the centroids first) in one transaction. */
static int ann_save(herd_store *s, const char *collection, const float *cent, int64_t nlist, const int64_t *which,
                    int64_t n_which) {
    vec_cache *c = &s->cache;
    int rc = exec(s, "BEGIN IMMEDIATE");
    if (rc) return rc;
    sqlite3_stmt *st = NULL;
    if (cent) {
        if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO ann_ivf VALUES(?, ?, ?, ?, ?, ?)", -1, &st, NULL) !=
            SQLITE_OK) {
            rc = db_err(s, "save index");
            goto done;
        }
        sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, c->n);
        sqlite3_bind_int64(st, 3, nlist);
        sqlite3_bind_int64(st, 4, c->rows);
        sqlite3_bind_blob64(st, 5, cent, (sqlite3_uint64)(nlist * c->n) * sizeof(float), SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)time(NULL));
        if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(s, "save index");
        sqlite3_finalize(st), st = NULL;
        if (rc) goto done;
    }
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO ann_list(chunk_id, list) VALUES(?, ?)", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = db_err(s, "save index");
        goto done;
    }
    int64_t m = which ? n_which : c->rows;
    for (int64_t i = 0; i < m && !rc; i++) {
        int64_t r = which ? which[i] : i;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, c->chunk_id[r]);
        sqlite3_bind_int64(st, 2, c->list[r]);
        if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(s, "save index");
    }
done:
    sqlite3_finalize(st);
    if (!rc) rc = exec(s, "COMMIT");
    if (rc) exec(s, "ROLLBACK");
    return rc;
}

/* The loaded collection's IVF index in c->ivf: from the saved centroids and lists (rows without a list
 * assigned and saved now), or trained over all rows and saved (see the header comment). A save that fails
 * (a read-only store, a busy writer) is logged and the index kept in memory: search still answers. */
static int ann_ensure(herd_store *s, const char *collection) {
    vec_cache *c = &s->cache;
    if (c->ivf) return HERD_OK;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT n_embd, nlist, trained_rows, centroids FROM ann_ivf WHERE collection = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return db_err(s, "index");
    sqlite3_bind_text(st, 1, collection, -1, SQLITE_STATIC);
    float *cent = NULL;
    int64_t nlist = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t e = sqlite3_column_int64(st, 0), trained = sqlite3_column_int64(st, 2);
        nlist = sqlite3_column_int64(st, 1);
        bool ok = e == c->n && nlist >= 1 && sqlite3_column_bytes(st, 3) == nlist * e * (int64_t)sizeof(float) &&
                  c->rows <= 4 * trained && (s->ivf_nlist == 0 || s->ivf_nlist == nlist);
        if (ok) {
            cent = herd_xmalloc((size_t)(nlist * e) * sizeof(float));
            memcpy(cent, sqlite3_column_blob(st, 3), (size_t)(nlist * e) * sizeof(float));
        }
    }
    sqlite3_finalize(st);
    int rc = HERD_OK;
    if (cent) {
        int64_t *miss = herd_xmalloc((size_t)c->rows * sizeof(int64_t)), nm = 0;
        for (int64_t r = 0; r < c->rows; r++)
            if (c->list[r] < 0 || c->list[r] >= nlist) miss[nm++] = r;
        for (int64_t i = 0; i < nm; i++) rag_ivf_assign(cent, nlist, c->n, c->v + miss[i] * c->n, 1, 1, &c->list[miss[i]]);
        if (nm && (rc = ann_save(s, collection, NULL, nlist, miss, nm)))
            herd_log(1, "store %s: the IVF lists of %lld new chunks were not saved (kept in memory)", s->path,
                          (long long)nm);
        c->ivf = rag_ivf_from(c->v, c->rows, c->n, cent, nlist, c->list);
        free(miss), free(cent);
        return HERD_OK;
    }
    c->ivf = rag_ivf_build(c->v, c->rows, c->n, s->ivf_nlist, 10, 42, s->n_threads);
    memcpy(c->list, rag_ivf_lists(c->ivf), (size_t)c->rows * sizeof(int32_t));
    const float *cc = rag_ivf_centroids(c->ivf, &nlist);
    if ((rc = ann_save(s, collection, cc, nlist, NULL, 0)))
        herd_log(1, "store %s: the IVF index of '%s' was not saved (kept in memory)", s->path, collection);
    return HERD_OK;
}

/* OpenAI comparison/compound filters, or a plain object of key: value equalities. -1: malformed. */
static int filter_match(json_t *f, json_t *meta) {
    json_t *type = json_object_get(f, "type");
    if (!json_is_string(type)) {
        const char *k;
        json_t *v;
        json_object_foreach(f, k, v) if (!json_equal(json_object_get(meta, k), v)) return 0;
        return 1;
    }
    const char *t = json_string_value(type);
    if (!strcmp(t, "and") || !strcmp(t, "or")) {
        json_t *fs = json_object_get(f, "filters");
        if (!json_is_array(fs)) return -1;
        bool any = false, all = true;
        size_t i;
        json_t *x;
        json_array_foreach(fs, i, x) {
            int r = filter_match(x, meta);
            if (r < 0) return -1;
            any |= r, all &= r;
        }
        return !strcmp(t, "and") ? all : any;
    }
    json_t *key = json_object_get(f, "key"), *val = json_object_get(f, "value");
    if (!json_is_string(key) || !val) return -1;
    json_t *have = json_object_get(meta, json_string_value(key));
    if (!strcmp(t, "eq")) return have && json_equal(have, val);
    if (!strcmp(t, "ne")) return !have || !json_equal(have, val);
    bool gt = !strcmp(t, "gt"), ge = !strcmp(t, "gte"), lt = !strcmp(t, "lt"), le = !strcmp(t, "lte");
    if (!gt && !ge && !lt && !le) return -1;
    if (!json_is_number(val)) return -1;
    if (!json_is_number(have)) return 0;
    double a = json_number_value(have), b = json_number_value(val);
    return gt ? a > b : ge ? a >= b : lt ? a < b : a <= b;
}

int herd_store_search(herd_store *s, const char *collection, const float *q, int64_t k, const char *filter_json,
                      int ef, herd_store_hit **hits, int64_t *n_hits) {
    *hits = NULL, *n_hits = 0;
    int rc = herd_store_collection_check(s, collection);
    if (rc) return rc;
    if (k <= 0) return herd_err(HERD_E_ARG, "store: k must be at least 1");
    if ((rc = cache_load(s, collection))) return rc;
    vec_cache *c = &s->cache;
    if (c->rows == 0) return HERD_OK;
    uint8_t *allow = NULL;
    if (filter_json) {
        json_error_t e;
        json_t *f = json_loads(filter_json, 0, &e);
        if (!json_is_object(f)) {
            json_decref(f);
            return herd_err(HERD_E_FORMAT, "store: the filter must be a JSON object");
        }
        allow = herd_xmalloc((size_t)c->rows);
        for (int64_t r = 0; r < c->rows && !rc; r++) {
            int m = filter_match(f, c->meta[r]);
            if (m < 0) rc = herd_err(HERD_E_FORMAT, "store: malformed filter (want {\"key\": value, ...}, "
                                                    "{\"type\":\"eq|ne|gt|gte|lt|lte\",\"key\":..,\"value\":..} or "
                                                    "{\"type\":\"and|or\",\"filters\":[...]})");
            allow[r] = (uint8_t)(m > 0);
        }
        json_decref(f);
        if (rc) {
            free(allow);
            return rc;
        }
    }
    rag_hit *h = herd_xmalloc((size_t)k * sizeof *h);
    int64_t got;
    if (ef != 0 && !allow && c->rows >= s->ivf_min_rows) {
        if ((rc = ann_ensure(s, collection))) {
            free(h);
            return rc;
        }
        got = rag_ivf_search(c->ivf, q, k, ef > 0 ? ef : HERD_STORE_NPROBE, h);
    } else if (ef > 0 && !allow) {
        if (!c->hnsw) c->hnsw = rag_hnsw_build(c->v, c->rows, c->n, 16, 200, 42);
        got = rag_hnsw_search(c->hnsw, q, k, ef, h);
    } else got = rag_topk(q, c->v, c->rows, c->n, allow, k, s->n_threads, h);
    free(allow);
    herd_store_hit *out = herd_xcalloc((size_t)(got ? got : 1), sizeof *out);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT k.doc_id, k.tok_start, k.tok_end, k.text, d.source, k.metadata FROM chunks k"
                                  " JOIN documents d ON k.doc_id = d.id WHERE k.id = ?", -1, &st, NULL) != SQLITE_OK) {
        free(h), free(out);
        return db_err(s, "search");
    }
    for (int64_t i = 0; i < got; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, c->chunk_id[h[i].row]);
        out[i].chunk_id = c->chunk_id[h[i].row];
        out[i].score = h[i].score;
        if (sqlite3_step(st) == SQLITE_ROW) {
            out[i].doc_id = sqlite3_column_int64(st, 0);
            out[i].tok_start = sqlite3_column_int64(st, 1);
            out[i].tok_end = sqlite3_column_int64(st, 2);
            out[i].text = strdup(sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "");
            out[i].source = strdup(sqlite3_column_text(st, 4) ? (const char *)sqlite3_column_text(st, 4) : "");
            out[i].metadata = strdup(sqlite3_column_text(st, 5) ? (const char *)sqlite3_column_text(st, 5) : "{}");
        } else {
            out[i].text = strdup(""), out[i].source = strdup(""), out[i].metadata = strdup("{}");
        }
    }
    sqlite3_finalize(st);
    free(h);
    *hits = out, *n_hits = got;
    return HERD_OK;
}

void herd_store_hits_free(herd_store_hit *hits, int64_t n) {
    for (int64_t i = 0; i < (hits ? n : 0); i++) free(hits[i].text), free(hits[i].source), free(hits[i].metadata);
    free(hits);
}
