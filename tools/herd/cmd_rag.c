/* herd rag index --store DIR [-m MODEL] FILES...   herd rag query --store DIR -q TEXT [-k 5]
 * herd rag delete --store DIR --doc ID             herd rag list --store DIR
 *
 * A thin shell over herd_store_* (src/rag/). The first index records the embedding model (its absolute
 * path) and pooling in the store, so later commands need no -m. rag_query_context() is shared with
 * herd chat --store. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

typedef struct {
    herd_context *ctx;
    int pooling;
    int64_t n_tokens; /* embedded so far (BOS included) */
    double embed_s;   /* seconds spent embedding them */
    double best_tps;  /* the fastest single chunk, tokens/s (on a shared machine: the least disturbed) */
} rag_embedder;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int rag_embed(void *user, const int32_t *tokens, int64_t n, float *out) {
    rag_embedder *e = user;
    double t0 = now_s();
    int rc = herd_embed_pooled(e->ctx, 0, tokens, n, e->pooling, true, out);
    double dt = now_s() - t0;
    e->embed_s += dt;
    e->n_tokens += n;
    if (dt > 0 && (double)n / dt > e->best_tps) e->best_tps = (double)n / dt;
    return rc;
}

/* Opens the store and the model (-m, else the one the store records; recorded on first use). */
static int open_all(const char *cmd, cli_common *c, const char *dir, const char *pool, herd_store **s, herd_model **m,
                    rag_embedder *em) {
    if (!dir) return cli_fail(cmd, "need --store DIR");
    if (herd_store_open(dir, s) != HERD_OK) return cli_fail_lib(cmd);
    char *model = herd_store_meta_get(*s, "model"), *spool = herd_store_meta_get(*s, "pooling");
    const char *use = c->model ? c->model : model;
    int rc = 0;
    if (!use) rc = cli_fail(cmd, "need -m MODEL (the store %s has no embedding model yet)", dir);
    else if (pool && spool && strcmp(pool, spool))
        rc = cli_fail(cmd, "the store was indexed with --pooling %s, not %s", spool, pool);
    else {
        em->pooling = herd_pooling_parse(pool ? pool : spool ? spool : "mean");
        if (em->pooling < 0 || em->pooling == HERD_POOLING_NONE)
            rc = cli_fail(cmd, "--pooling must be mean, cls or last");
    }
    if (!rc && (herd_model_load(use, m) != HERD_OK || herd_context_new(*m, &c->ctx, &em->ctx) != HERD_OK))
        rc = cli_fail_lib(cmd);
    if (!rc && !model) {
        char abs[PATH_MAX];
        herd_store_meta_set(*s, "model", realpath(use, abs) ? abs : use);
    }
    if (!rc && !spool) herd_store_meta_set(*s, "pooling", pool ? pool : "mean");
    free(model), free(spool);
    return rc;
}

static void json_hits(const herd_store_hit *h, int64_t n) {
    json_t *a = json_array();
    for (int64_t i = 0; i < n; i++) {
        json_error_t e;
        json_t *meta = json_loads(h[i].metadata, 0, &e);
        json_array_append_new(a, json_pack("{s:I, s:I, s:f, s:s, s:s, s:[I,I], s:o}", "chunk_id", (json_int_t)h[i].chunk_id,
                                           "doc_id", (json_int_t)h[i].doc_id, "score", (double)h[i].score, "source",
                                           h[i].source, "text", h[i].text, "tokens", (json_int_t)h[i].tok_start,
                                           (json_int_t)h[i].tok_end, "metadata", meta ? meta : json_object()));
    }
    char *s = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);
    puts(s);
    free(s);
    json_decref(a);
}

int rag_query_context(herd_store *s, const herd_model *m, herd_context *ctx, int pooling, const char *collection,
                      const char *query, int64_t k, const char *filter, int ef, herd_store_hit **hits, int64_t *n) {
    int32_t *ids;
    int64_t nt;
    int rc = herd_tokenize(m, query, strlen(query), herd_vocab_add_bos(m) ? HERD_TOKENIZE_ADD_BOS : 0, &ids, &nt);
    if (rc) return rc;
    float *q = malloc((size_t)herd_model_n_embd(m) * sizeof(float));
    rc = q ? herd_embed_pooled(ctx, 0, ids, nt, pooling, true, q) : HERD_E_NOMEM;
    if (!rc) rc = herd_store_search(s, collection, q, k, filter, ef, hits, n);
    free(q), free(ids);
    return rc;
}

int cmd_rag(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) return cli_help("rag");
    const char *sub = argv[1];
    if (strcmp(sub, "index") && strcmp(sub, "query") && strcmp(sub, "delete") && strcmp(sub, "list"))
        return cli_fail("rag", "unknown subcommand '%s' (index, query, delete, list)", sub);
    cli_common c;
    cli_common_init(&c);
    const char *dir = NULL, *q = NULL, *meta = NULL, *filter = NULL, *pool = NULL, *coll = "default";
    int64_t k = 5, chunk = 0, overlap = -1, doc = -1, ef = 0;
    bool json = false;
    const char **files = calloc((size_t)argc, sizeof *files);
    int nf = 0, rc = 1;
    herd_store *s = NULL;
    herd_model *m = NULL;
    rag_embedder em = {0};
    for (int i = 2; i < argc; i++) {
        int r = cli_common_opt("rag", &c, argc, argv, &i);
        if (r < 0) goto done;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--store")) { if (!cli_str("rag", argc, argv, &i, &dir)) goto done; }
        else if (!strcmp(a, "-q")) { if (!cli_str("rag", argc, argv, &i, &q)) goto done; }
        else if (!strcmp(a, "-k")) { if (!cli_i64("rag", argc, argv, &i, 1, 10000, &k)) goto done; }
        else if (!strcmp(a, "--chunk")) { if (!cli_i64("rag", argc, argv, &i, 8, 1 << 20, &chunk)) goto done; }
        else if (!strcmp(a, "--overlap")) { if (!cli_i64("rag", argc, argv, &i, 0, 1 << 20, &overlap)) goto done; }
        else if (!strcmp(a, "--doc")) { if (!cli_i64("rag", argc, argv, &i, 0, INT64_MAX, &doc)) goto done; }
        else if (!strcmp(a, "--approx")) { if (!cli_i64("rag", argc, argv, &i, 1, 100000, &ef)) goto done; }
        else if (!strcmp(a, "--metadata")) { if (!cli_str("rag", argc, argv, &i, &meta)) goto done; }
        else if (!strcmp(a, "--filter")) { if (!cli_str("rag", argc, argv, &i, &filter)) goto done; }
        else if (!strcmp(a, "--pooling")) { if (!cli_str("rag", argc, argv, &i, &pool)) goto done; }
        else if (!strcmp(a, "--collection")) { if (!cli_str("rag", argc, argv, &i, &coll)) goto done; }
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { rc = cli_help("rag"); goto done; }
        else if (a[0] == '-' && a[1]) { cli_fail("rag", "unknown option '%s'", a); goto done; }
        else files[nf++] = a;
    }
    if (!strcmp(sub, "list") || !strcmp(sub, "delete")) {
        if (!dir) { cli_fail("rag", "need --store DIR"); goto done; }
        if (herd_store_open(dir, &s) != HERD_OK) { cli_fail_lib("rag"); goto done; }
        if (!strcmp(sub, "list")) {
            char *l = herd_store_collection_list(s);
            puts(l);
            free(l);
            rc = 0;
        } else if (doc < 0) cli_fail("rag", "delete: need --doc ID");
        else rc = herd_store_delete_doc(s, doc) == HERD_OK ? 0 : cli_fail_lib("rag");
        goto done;
    }
    if (!strcmp(sub, "index") && nf == 0) { cli_fail("rag", "index: no files given"); goto done; }
    if (!strcmp(sub, "query") && !q) { cli_fail("rag", "query: need -q TEXT"); goto done; }
    /* each chunk is embedded as BOS + its tokens: with the context's default batch of 512 a 512-token
     * chunk took a second forward pass for its last token, which cost 10-20 % of the ingestion time
     * (docs/BENCHMARKS.md, Retrieval); so the batch holds a whole chunk unless -b says otherwise */
    if (!strcmp(sub, "index") && c.ctx.n_batch == 0) c.ctx.n_batch = (chunk ? chunk : 512) + 1;
    if (open_all("rag", &c, dir, pool, &s, &m, &em)) goto done;
    if (!strcmp(sub, "index")) {
        herd_chunk_params cp = {.chunk_tokens = chunk, .overlap = overlap};
        rc = 0;
        double t0 = now_s();
        for (int i = 0; i < nf && !rc; i++) {
            int64_t id;
            if (herd_store_add_file(s, coll, m, rag_embed, &em, files[i], meta, &cp, &id) != HERD_OK) rc = cli_fail_lib("rag");
            else printf("%s: document %lld\n", files[i], (long long)id);
            fflush(stdout);
        }
        /* ingestion speed (bench/rag/ingest.sh reads it): the embedding itself against all the rest
         * (reading, tokenizing, cutting, SQLite) */
        double wall = now_s() - t0;
        if (!rc && wall > 0)
            fprintf(stderr, "rag: %lld tokens embedded in %.3f s: %.1f tokens/s (embedding %.3f s, the rest %.3f s;"
                            " fastest chunk %.1f tokens/s)\n", (long long)em.n_tokens, wall, (double)em.n_tokens / wall,
                    em.embed_s, wall - em.embed_s, em.best_tps);
    } else {
        herd_store_hit *h;
        int64_t n;
        if (rag_query_context(s, m, em.ctx, em.pooling, coll, q, k, filter, (int)ef, &h, &n) != HERD_OK) {
            cli_fail_lib("rag");
            goto done;
        }
        if (json) json_hits(h, n);
        else
            for (int64_t i = 0; i < n; i++)
                printf("[%lld] %.4f %s (document %lld, tokens %lld-%lld)\n%s\n\n", (long long)(i + 1), (double)h[i].score,
                       h[i].source, (long long)h[i].doc_id, (long long)h[i].tok_start, (long long)h[i].tok_end, h[i].text);
        herd_store_hits_free(h, n);
        rc = 0;
    }
done:
    free(files);
    herd_context_free(em.ctx);
    herd_model_free(m);
    herd_store_close(s);
    cli_common_free(&c);
    return rc;
}

/* ---- herd chat --store: retrieval for each user turn ------------------------------------------------ */

struct rag_session {
    herd_store *s;
    herd_model *m;
    rag_embedder em;
    int64_t k;
};

rag_session *rag_session_open(const char *dir, int64_t k, int n_threads) {
    cli_common c;
    cli_common_init(&c);
    c.ctx.n_threads = n_threads;
    rag_session *rs = calloc(1, sizeof *rs);
    rs->k = k;
    if (open_all("chat", &c, dir, NULL, &rs->s, &rs->m, &rs->em)) {
        rag_session_close(rs);
        rs = NULL;
    }
    cli_common_free(&c);
    return rs;
}

void rag_session_close(rag_session *rs) {
    if (!rs) return;
    herd_context_free(rs->em.ctx);
    herd_model_free(rs->m);
    herd_store_close(rs->s);
    free(rs);
}

/* The user's message with the k retrieved chunks before it, each numbered with its source, and the
 * request to cite them by number. NULL (error printed) on failure. */
char *rag_session_augment(rag_session *rs, const char *question) {
    herd_store_hit *h;
    int64_t n;
    if (rag_query_context(rs->s, rs->m, rs->em.ctx, rs->em.pooling, "default", question, rs->k, NULL, 0, &h, &n) !=
        HERD_OK) {
        cli_fail_lib("chat");
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    fputs("Answer the question using the documents below. Cite the documents you use by their number in "
          "brackets, like [1], and say so if they do not contain the answer.\n\n", fp);
    for (int64_t i = 0; i < n; i++)
        fprintf(fp, "[%lld] (source: %s, tokens %lld-%lld)\n%s\n\n", (long long)(i + 1), h[i].source,
                (long long)h[i].tok_start, (long long)h[i].tok_end, h[i].text);
    fprintf(fp, "Question: %s", question);
    fclose(fp);
    herd_store_hits_free(h, n);
    return buf;
}
