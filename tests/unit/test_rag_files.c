/* src/rag vector store files (herd_store_file_*, the OpenAI /v1/vector_stores/{id}/files store): add a file
 * under an id (its chunks found by search, named by it), refusals (a second add, an unsupported type, no
 * text, an unknown collection), list / one file, a document's chunks, attribute updates reaching the chunks' filters, delete,
 * the row going with its collection, and all of it persisting across a reopen. The embedder is a fake:
 * a token histogram (hashed into n_embd bins, unit norm), so equal texts give equal vectors without a
 * forward pass; the model (for its vocabulary and n_embd) is a tiny random one. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "herd.h"
#include "testutil.h"
#include "testvocab.h"

static char g_dir[256];
static int64_t g_embd;

static int fake_embed(void *user, const int32_t *tokens, int64_t n, float *out) {
    (void)user;
    memset(out, 0, (size_t)g_embd * sizeof(float));
    for (int64_t i = 0; i < n; i++) out[(uint32_t)tokens[i] * 2654435761u % (uint32_t)g_embd] += 1;
    double s = 0;
    for (int64_t e = 0; e < g_embd; e++) s += (double)out[e] * out[e];
    for (int64_t e = 0; e < g_embd; e++) out[e] = (float)(out[e] / sqrt(s));
    return HERD_OK;
}

static void write_file(const char *name, const char *text, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* The files of coll as parsed JSON (NULL if the collection is gone). */
static json_t *list(herd_store *s, const char *coll, const char *fid) {
    char *l = herd_store_file_list(s, coll, fid);
    if (!l) return NULL;
    json_error_t e;
    json_t *a = json_loads(l, 0, &e);
    free(l);
    return a;
}

/* Top hit of text in coll (with a filter or NULL): its chunk's document, -1 if none. */
static int64_t top_doc(herd_store *s, const herd_model *m, const char *coll, const char *text, const char *filter) {
    int32_t *ids;
    int64_t n;
    CHECK(herd_tokenize(m, text, strlen(text), 0, &ids, &n) == 0, "tokenize");
    int64_t k = n + 1;
    int32_t *with_bos = malloc((size_t)k * sizeof *with_bos);
    with_bos[0] = herd_vocab_bos(m);
    memcpy(with_bos + 1, ids, (size_t)n * sizeof *ids);
    float *q = malloc((size_t)g_embd * sizeof *q);
    fake_embed(NULL, with_bos, k, q);
    herd_store_hit *h;
    int64_t nh;
    int rc = herd_store_search(s, coll, q, 3, filter, 0, &h, &nh);
    CHECK(rc == 0, "search: %s", herd_last_error());
    int64_t doc = rc == 0 && nh > 0 ? h[0].doc_id : -1;
    if (rc == 0 && nh > 0 && !filter)
        CHECK(h[0].score > 0.999f, "the top hit of a chunk's own text: score %f", (double)h[0].score);
    if (rc == 0) herd_store_hits_free(h, nh);
    free(q), free(with_bos), free(ids);
    return doc;
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/herd-test-ragf-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 1;
    char vocab[512], mpath[512];
    snprintf(vocab, sizeof vocab, "%s/vocab.gguf", g_dir);
    snprintf(mpath, sizeof mpath, "%s/m.gguf", g_dir);
    write_vocab(vocab);
    herd_synth_params sp = {.vocab_path = vocab, .n_embd = 64, .n_layer = 1, .n_head = 4, .n_head_kv = 2,
                            .head_dim = 16, .n_ff = 96, .n_ctx_train = 256, .rope_theta = 10000, .norm_eps = 1e-5f,
                            .rope_scale = 8, .type = HERD_TYPE_F32, .output_type = -1, .weight_scale = 0.08f, .seed = 3};
    CHECK(herd_synth_model(&sp, mpath) == 0, "synth: %s", herd_last_error());
    herd_model *m = NULL;
    CHECK(herd_model_load(mpath, &m) == 0, "load: %s", herd_last_error());
    if (!m) return TU_DONE("test_rag_files");
    g_embd = herd_model_n_embd(m);

    char sdir[300], a[512], b[512], e[512], x[512];
    snprintf(sdir, sizeof sdir, "%s/store", g_dir);
    const char *ta = "the cat sat on the mat and looked at the hat", *tb = "a big dog ran in the park";
    write_file("a.data", ta, a, sizeof a);
    write_file("b.data", tb, b, sizeof b);
    write_file("e.data", "", e, sizeof e);
    write_file("x.data", "a,b\n1,2\n", x, sizeof x);
    herd_store *s;
    CHECK(herd_store_open(sdir, &s) == 0, "open: %s", herd_last_error());
    char *vs;
    CHECK(herd_store_collection_create(s, "files", NULL, &vs) == 0, "create");
    herd_chunk_params cp = {.chunk_tokens = 200, .overlap = 10};
    int64_t da = -1, db = -1, dt = -1;
    CHECK(herd_store_file_add(s, vs, m, fake_embed, NULL, "file-a", "a.txt", a, "{\"lang\":\"en\"}", &cp, &da) == 0,
          "add a: %s", herd_last_error());
    CHECK(herd_store_file_add(s, vs, m, fake_embed, NULL, "file-b", "b.md", b, NULL, NULL, &db) == 0, "add b: %s",
          herd_last_error());
    CHECK(herd_store_add_text(s, vs, m, fake_embed, NULL, "plain", "some other text", 15, NULL, NULL, &dt) == 0,
          "add text");
    /* refusals, each naming what is wrong, and nothing written */
    CHECK(herd_store_file_add(s, vs, m, fake_embed, NULL, "file-a", "a.txt", a, NULL, NULL, NULL) == HERD_E_ARG &&
              strstr(herd_last_error(), "already in"),
          "a second add: %s", herd_last_error());
    CHECK(herd_store_file_add(s, vs, m, fake_embed, NULL, "file-x", "x.csv", x, NULL, NULL, NULL) == HERD_E_UNSUPPORTED &&
              strstr(herd_last_error(), "x.csv"),
          "unsupported: %s", herd_last_error());
    CHECK(herd_store_file_add(s, vs, m, fake_embed, NULL, "file-e", "e.txt", e, NULL, NULL, NULL) == HERD_E_FORMAT &&
              strstr(herd_last_error(), "no text"),
          "empty: %s", herd_last_error());
    CHECK(herd_store_file_add(s, "vs_nope", m, fake_embed, NULL, "file-b", "b.md", b, NULL, NULL, NULL) == HERD_E_ARG,
          "unknown collection");
    CHECK(list(s, "vs_nope", NULL) == NULL, "no list for an unknown collection");

    json_t *l = list(s, vs, NULL);
    CHECK(json_array_size(l) == 2, "two files listed");
    json_t *fa = json_array_get(l, 0);
    CHECK(!strcmp(json_string_value(json_object_get(fa, "file_id")), "file-a") &&
              !strcmp(json_string_value(json_object_get(fa, "filename")), "a.txt") &&
              json_integer_value(json_object_get(fa, "doc_id")) == da &&
              json_integer_value(json_object_get(fa, "n_chunks")) == 1 &&
              json_integer_value(json_object_get(fa, "chunk_tokens")) == 200 &&
              json_integer_value(json_object_get(fa, "overlap")) == 10 &&
              json_integer_value(json_object_get(fa, "usage_bytes")) > 4 * g_embd + 20 && /* text + vector */
              !strcmp(json_string_value(json_object_get(json_object_get(fa, "attributes"), "lang")), "en"),
          "file a's row");
    CHECK(json_integer_value(json_object_get(json_array_get(l, 1), "chunk_tokens")) == 512, "default chunking");
    json_decref(l);
    l = list(s, vs, "file-b");
    CHECK(json_array_size(l) == 1 && json_integer_value(json_object_get(json_array_get(l, 0), "doc_id")) == db, "one file");
    json_decref(l);
    l = list(s, vs, "file-zz");
    CHECK(json_array_size(l) == 0, "an absent file: []");
    json_decref(l);
    char *cj = herd_store_doc_chunks(s, da);
    json_error_t je;
    l = cj ? json_loads(cj, 0, &je) : NULL;
    CHECK(json_array_size(l) == 1 && strstr(json_string_value(json_object_get(json_array_get(l, 0), "text")), "looked"),
          "document a's chunks: %s", cj ? cj : "NULL");
    json_decref(l), free(cj);
    cj = herd_store_doc_chunks(s, 987654);
    CHECK(cj && !strcmp(cj, "[]"), "no such document: []");
    free(cj);
    char *f = herd_store_doc_file_id(s, da);
    CHECK(f && !strcmp(f, "file-a"), "document a's file id");
    free(f);
    CHECK(herd_store_doc_file_id(s, dt) == NULL, "a document added as text has no file id");

    /* search finds each file's text; attributes filter, and updates reach the chunks */
    CHECK(top_doc(s, m, vs, ta, NULL) == da, "search finds a");
    CHECK(top_doc(s, m, vs, tb, NULL) == db, "search finds b");
    CHECK(top_doc(s, m, vs, tb, "{\"lang\":\"en\"}") == da, "filter on a's attributes");
    CHECK(herd_store_file_update(s, vs, "file-b", "{\"lang\":\"en\",\"n\":2}") == 0, "update b: %s", herd_last_error());
    CHECK(top_doc(s, m, vs, tb, "{\"n\":2}") == db, "filter on b's new attributes");
    CHECK(herd_store_file_update(s, vs, "file-zz", "{}") == HERD_E_ARG && strstr(herd_last_error(), "no file"),
          "update an absent file");
    CHECK(herd_store_file_update(s, vs, "file-b", "[1]") == HERD_E_FORMAT, "attributes must be an object");

    /* delete: the file's chunks go, the others stay; persists across a reopen */
    CHECK(herd_store_file_delete(s, vs, "file-a") == 0, "delete a");
    CHECK(herd_store_file_delete(s, vs, "file-a") == HERD_E_ARG, "delete a again");
    CHECK(top_doc(s, m, vs, ta, "{\"lang\":\"en\"}") == db, "a's chunks are gone");
    herd_store_close(s);
    CHECK(herd_store_open(sdir, &s) == 0, "reopen");
    l = list(s, vs, NULL);
    CHECK(json_array_size(l) == 1 && !strcmp(json_string_value(json_object_get(json_array_get(l, 0), "file_id")), "file-b") &&
              json_integer_value(json_object_get(json_object_get(json_array_get(l, 0), "attributes"), "n")) == 2,
          "after a reopen: b with its new attributes");
    json_decref(l);
    /* the same file id may be in two collections; deleting a collection takes its rows */
    char *vs2;
    CHECK(herd_store_collection_create(s, "two", NULL, &vs2) == 0, "create 2");
    CHECK(herd_store_file_add(s, vs2, m, fake_embed, NULL, "file-b", "b.md", b, NULL, NULL, NULL) == 0, "b in two stores");
    CHECK(herd_store_collection_delete(s, vs) == 0, "delete the first collection");
    l = list(s, vs2, NULL);
    CHECK(json_array_size(l) == 1, "the second keeps its file");
    json_decref(l);
    f = herd_store_doc_file_id(s, db);
    CHECK(f == NULL, "the deleted collection's file rows are gone");
    free(f);
    herd_store_close(s);
    free(vs), free(vs2);
    herd_model_free(m);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    CHECK(system(cmd) == 0, "cleanup");
    return TU_DONE("test_rag_files");
}
