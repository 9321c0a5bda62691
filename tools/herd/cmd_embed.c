/* herd embed -m MODEL [-p TEXT | -f FILE | --prompt-ids JSON | --jsonl FILE] [--pooling P] [--no-normalize] [--json]
 *
 * Sentence embeddings through herd_embed_pooled (the function the server's /v1/embeddings uses): one
 * line per input, a JSON array of n_embd floats (pooling none: an array of one such array per token),
 * or with --json an object {"index","n_tokens","embedding"}. --jsonl: every line of FILE ("-": stdin)
 * is a JSON string or an object with a "text" string. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct {
    herd_model *m;
    herd_context *ctx;
    int pooling;
    bool normalize, json;
    float *buf;
    int64_t cap; /* floats in buf */
} embedder;

static void print_row(const float *v, int64_t n) {
    fputc('[', stdout);
    for (int64_t i = 0; i < n; i++) printf(i ? ", %.9g" : "%.9g", (double)v[i]);
    fputc(']', stdout);
}

static int embed_ids(embedder *em, int64_t index, const int32_t *ids, int64_t n) {
    if (n == 0) return cli_fail("embed", "input %lld has no tokens", (long long)index);
    int64_t E = herd_model_n_embd(em->m), rows = em->pooling == HERD_POOLING_NONE ? n : 1;
    if (rows * E > em->cap) {
        free(em->buf);
        em->cap = rows * E;
        em->buf = malloc((size_t)em->cap * sizeof(float));
        if (!em->buf) return cli_fail("embed", "out of memory");
    }
    if (herd_embed_pooled(em->ctx, 0, ids, n, em->pooling, em->normalize, em->buf) != HERD_OK)
        return cli_fail_lib("embed");
    if (em->json) printf("{\"index\": %lld, \"n_tokens\": %lld, \"embedding\": ", (long long)index, (long long)n);
    if (em->pooling == HERD_POOLING_NONE) {
        fputc('[', stdout);
        for (int64_t r = 0; r < rows; r++) {
            if (r) fputs(", ", stdout);
            print_row(em->buf + r * E, E);
        }
        fputc(']', stdout);
    } else print_row(em->buf, E);
    fputs(em->json ? "}\n" : "\n", stdout);
    return 0;
}

static int embed_text(embedder *em, int64_t index, const char *text, size_t len) {
    int32_t *ids;
    int64_t n;
    if (herd_tokenize(em->m, text, len, herd_vocab_add_bos(em->m) ? HERD_TOKENIZE_ADD_BOS : 0, &ids, &n) != HERD_OK)
        return cli_fail_lib("embed");
    int rc = embed_ids(em, index, ids, n);
    free(ids);
    return rc;
}

static int embed_jsonl(embedder *em, const char *path) {
    FILE *fp = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!fp) return cli_fail("embed", "cannot open '%s'", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int64_t lineno = 0;
    int rc = 0;
    while (!rc && (got = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        json_error_t err;
        json_t *j = json_loadb(line, (size_t)got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        json_t *s = json_is_object(j) ? json_object_get(j, "text") : j;
        if (!json_is_string(s))
            rc = cli_fail("embed", "--jsonl %s: line %lld is not a JSON string or an object with a \"text\" string",
                          path, (long long)lineno);
        else rc = embed_text(em, lineno - 1, json_string_value(s), json_string_length(s));
        json_decref(j);
    }
    free(line);
    if (fp != stdin) fclose(fp);
    return rc;
}

int cmd_embed(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    const char *text = NULL, *file = NULL, *jsonl = NULL, *ids_json = NULL, *pool = "mean";
    embedder em = {.normalize = true};
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("embed", &c, argc, argv, &i);
        if (r < 0) goto done;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-p")) { if (!cli_str("embed", argc, argv, &i, &text)) goto done; }
        else if (!strcmp(a, "-f")) { if (!cli_str("embed", argc, argv, &i, &file)) goto done; }
        else if (!strcmp(a, "--jsonl")) { if (!cli_str("embed", argc, argv, &i, &jsonl)) goto done; }
        else if (!strcmp(a, "--prompt-ids")) { if (!cli_str("embed", argc, argv, &i, &ids_json)) goto done; }
        else if (!strcmp(a, "--pooling")) { if (!cli_str("embed", argc, argv, &i, &pool)) goto done; }
        else if (!strcmp(a, "--no-normalize")) em.normalize = false;
        else if (!strcmp(a, "--json")) em.json = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { rc = cli_help("embed"); goto done; }
        else { cli_fail("embed", "unknown option '%s'", a); goto done; }
    }
    em.pooling = herd_pooling_parse(pool);
    if (em.pooling < 0) { cli_fail("embed", "--pooling must be mean, cls, last or none, not '%s'", pool); goto done; }
    if (!c.model) { cli_fail("embed", "need -m MODEL"); goto done; }
    if ((text != NULL) + (file != NULL) + (jsonl != NULL) + (ids_json != NULL) > 1) {
        cli_fail("embed", "give one of -p, -f, --prompt-ids and --jsonl");
        goto done;
    }
    if (herd_model_load(c.model, &em.m) != HERD_OK) { cli_fail_lib("embed"); goto done; }
    if (herd_context_new(em.m, &c.ctx, &em.ctx) != HERD_OK) { cli_fail_lib("embed"); goto done; }
    if (jsonl) rc = embed_jsonl(&em, jsonl);
    else if (ids_json) {
        int32_t *ids;
        int64_t n;
        if (!cli_parse_ids("embed", ids_json, strlen(ids_json), &ids, &n)) goto done;
        rc = embed_ids(&em, 0, ids, n);
        free(ids);
    } else {
        char *buf;
        size_t len;
        if (!cli_read_text("embed", text, file, &buf, &len)) goto done;
        rc = embed_text(&em, 0, buf, len);
        free(buf);
    }
done:
    free(em.buf);
    herd_context_free(em.ctx);
    herd_model_free(em.m);
    cli_common_free(&c);
    return rc;
}
