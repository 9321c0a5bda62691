/* The IVF index of a vector store (src/rag/store.c, ann_ivf / ann_list): a collection of a few thousand
 * chunks (the threshold lowered with herd_store_set_ivf) answers approximate searches with recall@10
 * against its own exact search above a stated bound, and exactly when every list is probed; the index is
 * saved once (one centroid row, one list row per chunk); a document added later has its chunks in the
 * index without retraining and is found; a deleted one's chunks leave it and are never returned; the
 * store reopened answers the same; chunks whose list rows are missing are assigned and saved on the next
 * load; under the threshold ef < 0 is exact search.
 *
 * The embedder is a fake: a hash of the token sequence picks one of 64 cluster centres and seeds the
 * noise around it (unit norm), so equal texts give equal vectors and the vectors are clustered like
 * embeddings; the model (for its vocabulary and n_embd) is a tiny random one. */
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "herd.h"
#include "testutil.h"
#include "testvocab.h"

static char g_dir[256];
static int64_t g_embd;
enum { CLUSTERS = 64 };

static uint64_t mix(uint64_t x) {
    x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33, x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static int fake_embed(void *user, const int32_t *tokens, int64_t n, float *out) {
    (void)user;
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < n; i++) h = mix(h ^ (uint32_t)tokens[i]);
    uint64_t c = h % CLUSTERS, s = h | 1;
    double norm = 0;
    for (int64_t e = 0; e < g_embd; e++) {
        float centre = (float)((double)(mix(c * 1000003 + (uint64_t)e) >> 11) * 0x1p-53 * 2 - 1);
        s = mix(s);
        out[e] = centre + 1.6f * (float)((double)(s >> 11) * 0x1p-53 * 2 - 1);
        norm += (double)out[e] * out[e];
    }
    for (int64_t e = 0; e < g_embd; e++) out[e] = (float)(out[e] / sqrt(norm));
    return HERD_OK;
}

static void embed_text(const herd_model *m, const char *text, float *q) {
    int32_t *ids;
    int64_t n;
    CHECK(herd_tokenize(m, text, strlen(text), 0, &ids, &n) == 0, "tokenize");
    int32_t *with_bos = malloc((size_t)(n + 1) * sizeof *with_bos);
    with_bos[0] = herd_vocab_bos(m);
    memcpy(with_bos + 1, ids, (size_t)n * sizeof *ids);
    fake_embed(NULL, with_bos, n + 1, q);
    free(with_bos), free(ids);
}

/* One document of n chunks "doc D chunk I ..." in collection coll. */
static int64_t add_doc(herd_store *s, const herd_model *m, int d, int n) {
    char **texts = calloc((size_t)n, sizeof *texts);
    for (int i = 0; i < n; i++) {
        texts[i] = malloc(64);
        snprintf(texts[i], 64, "doc %d chunk %d of the test corpus", d, i);
    }
    int64_t id = -1;
    CHECK(herd_store_add_chunks(s, "default", m, fake_embed, NULL, "src", (const char *const *)texts, NULL, n, &id) == 0,
          "add doc %d: %s", d, herd_last_error());
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts);
    return id;
}

static int64_t count(const char *sql) {
    char path[300];
    snprintf(path, sizeof path, "%s/store/store.sqlite", g_dir);
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        else if (rc == SQLITE_DONE) n = sqlite3_changes(db);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

enum { NQ = 40 };

/* Hits of query text i ("query I ...") at this ef: chunk ids and scores. */
static int64_t search(herd_store *s, const herd_model *m, int i, int ef, int64_t *ids, float *scores) {
    char text[64];
    snprintf(text, sizeof text, "query %d about something", i);
    float *q = malloc((size_t)g_embd * sizeof *q);
    embed_text(m, text, q);
    herd_store_hit *h;
    int64_t nh = 0;
    CHECK(herd_store_search(s, "default", q, 10, NULL, ef, &h, &nh) == 0, "search: %s", herd_last_error());
    for (int64_t j = 0; j < nh; j++) ids[j] = h[j].chunk_id, scores[j] = h[j].score;
    herd_store_hits_free(h, nh);
    free(q);
    return nh;
}

static double recall(herd_store *s, const herd_model *m, int ef) {
    int64_t found = 0, ex[10], ap[10];
    float se[10], sa[10];
    for (int i = 0; i < NQ; i++) {
        int64_t ne = search(s, m, i, 0, ex, se), na = search(s, m, i, ef, ap, sa);
        for (int64_t a = 0; a < ne; a++)
            for (int64_t b = 0; b < na; b++) found += ex[a] == ap[b];
    }
    return (double)found / (NQ * 10);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/herd-test-ragivf-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 1;
    char vocab[512], mpath[512], sdir[300];
    snprintf(vocab, sizeof vocab, "%s/vocab.gguf", g_dir);
    snprintf(mpath, sizeof mpath, "%s/m.gguf", g_dir);
    snprintf(sdir, sizeof sdir, "%s/store", g_dir);
    write_vocab(vocab);
    herd_synth_params sp = {.vocab_path = vocab, .n_embd = 64, .n_layer = 1, .n_head = 4, .n_head_kv = 2,
                            .head_dim = 16, .n_ff = 96, .n_ctx_train = 256, .rope_theta = 10000, .norm_eps = 1e-5f,
                            .rope_scale = 8, .type = HERD_TYPE_F32, .output_type = -1, .weight_scale = 0.08f, .seed = 3};
    CHECK(herd_synth_model(&sp, mpath) == 0, "synth: %s", herd_last_error());
    herd_model *m = NULL;
    CHECK(herd_model_load(mpath, &m) == 0, "load: %s", herd_last_error());
    if (!m) return TU_DONE("test_rag_ivf");
    g_embd = herd_model_n_embd(m);

    herd_store *s;
    CHECK(herd_store_open(sdir, &s) == 0, "open: %s", herd_last_error());
    herd_store_set_ivf(s, 1000, 0);
    int64_t doc[31];
    for (int d = 0; d < 30; d++) doc[d] = add_doc(s, m, d, 100); /* 3000 chunks */
    CHECK(count("SELECT count(*) FROM ann_ivf") == 0, "no index before the first approximate search");

    /* recall@10 against exact search (nlist ~sqrt(3000) = 54) */
    double r4 = recall(s, m, 1), r16 = recall(s, m, 16), rall = recall(s, m, 54), rauto = recall(s, m, -1);
    printf("  store ivf: 3000 chunks x %lld, nlist %lld: recall@10 nprobe 1 %.3f, 16 %.3f, %d (default) %.3f, 54 %.3f\n",
           (long long)g_embd, (long long)count("SELECT nlist FROM ann_ivf"), r4, r16, HERD_STORE_NPROBE, rauto, rall);
    CHECK(count("SELECT nlist FROM ann_ivf") == 54, "one index of 54 lists saved");
    CHECK(count("SELECT count(*) FROM ann_list") == 3000, "every chunk's list saved");
    CHECK(r16 >= 0.9, "recall@10 %.3f at nprobe 16 (bound 0.9)", r16);
    CHECK(rauto >= 0.97, "recall@10 %.3f at the default nprobe (bound 0.97)", rauto);
    CHECK(rall == 1.0, "every list probed: exact (%.3f)", rall);

    /* a document added: its chunks join the saved index (no retraining) and are found */
    int64_t trained = count("SELECT trained_rows FROM ann_ivf");
    doc[30] = add_doc(s, m, 30, 50);
    CHECK(count("SELECT count(*) FROM ann_list") == 3050, "the new chunks' lists saved with them");
    CHECK(count("SELECT trained_rows FROM ann_ivf") == trained, "not retrained");
    float *q = malloc((size_t)g_embd * sizeof *q);
    herd_store_hit *h;
    int64_t nh;
    embed_text(m, "doc 30 chunk 7 of the test corpus", q);
    CHECK(herd_store_search(s, "default", q, 3, NULL, 16, &h, &nh) == 0 && nh == 3, "search new");
    CHECK(h[0].doc_id == doc[30] && h[0].score > 0.999f, "a new chunk is its own top hit (doc %lld, %f)",
          (long long)h[0].doc_id, (double)h[0].score);
    herd_store_hits_free(h, nh);

    /* a document deleted: its chunks leave the index and are never returned */
    CHECK(herd_store_delete_doc(s, doc[3]) == 0, "delete");
    CHECK(count("SELECT count(*) FROM ann_list") == 2950, "its lists gone with its chunks");
    embed_text(m, "doc 3 chunk 5 of the test corpus", q);
    CHECK(herd_store_search(s, "default", q, 10, NULL, 54, &h, &nh) == 0 && nh == 10, "search deleted");
    bool clean = true;
    for (int64_t j = 0; j < nh; j++) clean &= h[j].doc_id != doc[3];
    CHECK(clean && h[0].score < 0.999f, "no chunk of the deleted document");
    herd_store_hits_free(h, nh);

    /* reopened: the same answers from the saved index */
    int64_t before[NQ][10], after[10];
    float sb[NQ][10], sa[10];
    int64_t nb[NQ];
    for (int i = 0; i < NQ; i++) nb[i] = search(s, m, i, 16, before[i], sb[i]);
    double r16b = recall(s, m, 16);
    herd_store_close(s);
    CHECK(herd_store_open(sdir, &s) == 0, "reopen");
    herd_store_set_ivf(s, 1000, 0);
    bool same = true;
    for (int i = 0; i < NQ; i++) {
        int64_t na = search(s, m, i, 16, after, sa);
        same &= na == nb[i] && !memcmp(after, before[i], (size_t)na * sizeof *after) &&
                !memcmp(sa, sb[i], (size_t)na * sizeof *sa);
    }
    CHECK(same, "the reopened store answers as before");
    CHECK(count("SELECT trained_rows FROM ann_ivf") == trained, "not retrained on reopen");
    printf("  store ivf after add + delete + reopen: recall@10 nprobe 16 %.3f\n", r16b);
    CHECK(r16b >= 0.9, "recall@10 %.3f at nprobe 16 after add + delete", r16b);

    /* list rows missing (a store from before the index): assigned and saved on the next load */
    herd_store_close(s);
    CHECK(count("DELETE FROM ann_list WHERE chunk_id % 7 = 0") > 0, "drop some list rows");
    CHECK(herd_store_open(sdir, &s) == 0, "reopen");
    herd_store_set_ivf(s, 1000, 0);
    same = true;
    for (int i = 0; i < NQ; i++) {
        int64_t na = search(s, m, i, 16, after, sa);
        same &= na == nb[i] && !memcmp(after, before[i], (size_t)na * sizeof *after);
    }
    CHECK(same, "the same answers with the missing lists recomputed");
    CHECK(count("SELECT count(*) FROM ann_list") == 2950, "the missing lists saved again");

    /* under the threshold: ef < 0 is exact search, ef > 0 the HNSW index */
    herd_store_set_ivf(s, 100000, 0);
    CHECK(recall(s, m, -1) == 1.0, "ef -1 under the threshold: exact");
    CHECK(recall(s, m, 64) >= 0.9, "ef 64 under the threshold: HNSW");

    herd_store_close(s);
    herd_model_free(m);
    free(q);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    CHECK(system(cmd) == 0, "cleanup");
    return TU_DONE("test_rag_ivf");
}
