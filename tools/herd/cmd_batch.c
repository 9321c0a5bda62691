/* herd batch -m MODEL --input IN.jsonl --output OUT.jsonl [--parallel N] [-c CTX] [-t N] [--progress]:
 * an OpenAI Batch API job file through the server's routes and the engine (src/batch/batch.h).
 * herd batch --server URL [--api-key KEY] ...: the same job posted to an OpenAI-compatible server already
 * running (another herd serve, llama.cpp's llama-server: bench/batch compares them with this one client). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/base/randhex.h"
#include "../../src/batch/batch.h"
#include "../../src/server/server.h"
#include "cli.h"

/* The summary lines on stderr. */
static int report(const batch_stats *s, const char *out) {
    const batch_stats st = *s;
    if (st.torn_bytes)
        fprintf(stderr, "herd batch: dropped a torn last line (%lld bytes) of %s; it was redone\n",
                (long long)st.torn_bytes, out);
    fprintf(stderr,
            "herd batch: %lld lines: %lld skipped (already in %s), %lld ok, %lld errors; %lld prompt + %lld "
            "generated tokens in %.2f s (%.1f tok/s)\n",
            (long long)st.lines, (long long)st.skipped, out, (long long)st.ok, (long long)st.failed,
            (long long)st.prompt_tokens, (long long)st.completion_tokens, st.seconds,
            st.seconds > 0 ? (double)st.completion_tokens / st.seconds : 0.0);
    return 0;
}

static int batch_main(cli_common *c, int argc, char **argv) {
    const char *in = NULL, *out = NULL, *alias = NULL, *server_url = NULL, *api_key = NULL;
    int64_t parallel = 4, max_body = 8 << 20;
    float sync_s = 1;
    bool progress = isatty(2);
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("batch", c, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--input") || !strcmp(a, "-i")) {
            if (!cli_str("batch", argc, argv, &i, &in)) return 1;
        } else if (!strcmp(a, "--output") || !strcmp(a, "-o")) {
            if (!cli_str("batch", argc, argv, &i, &out)) return 1;
        } else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) {
            if (!cli_i64("batch", argc, argv, &i, 1, 256, &parallel)) return 1;
        } else if (!strcmp(a, "--max-body")) {
            if (!cli_i64("batch", argc, argv, &i, 1024, (int64_t)1 << 32, &max_body)) return 1;
        } else if (!strcmp(a, "--server")) {
            if (!cli_str("batch", argc, argv, &i, &server_url)) return 1;
        } else if (!strcmp(a, "--api-key")) {
            if (!cli_str("batch", argc, argv, &i, &api_key)) return 1;
        } else if (!strcmp(a, "--alias")) {
            if (!cli_str("batch", argc, argv, &i, &alias)) return 1;
        } else if (!strcmp(a, "--fsync-interval")) {
            if (!cli_f32("batch", argc, argv, &i, 0, 3600, &sync_s)) return 1;
        } else if (!strcmp(a, "--progress"))
            progress = true;
        else if (!strcmp(a, "--no-progress"))
            progress = false;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return cli_help("batch");
        else
            return cli_fail("batch", "unknown option '%s'", a);
    }
    if (!in || !out) return cli_fail("batch", "need --input IN.jsonl and --output OUT.jsonl");
    if (!strcmp(in, out)) return cli_fail("batch", "--input and --output are the same file");
    if (server_url) {
        if (c->model) return cli_fail("batch", "give either -m MODEL or --server URL, not both");
        size_t L = strlen(server_url);
        if (L < 8 || (strncmp(server_url, "http://", 7) && strncmp(server_url, "https://", 8)) || L > 500)
            return cli_fail("batch", "--server needs a URL like http://127.0.0.1:8080, not '%.200s'", server_url);
        char base[512];
        snprintf(base, sizeof base, "%s", server_url);
        while (L > 0 && base[L - 1] == '/') base[--L] = 0;
        batch_config bc = {.input = in,
                           .output = out,
                           .parallel = (int)parallel,
                           .max_body = (size_t)max_body,
                           .progress = progress,
                           .fsync_interval_s = sync_s};
        batch_stats st;
        if (batch_run_client(&bc, base, api_key, &st) != HERD_OK) return cli_fail_lib("batch");
        return report(&st, out);
    }
    if (!c->model) return cli_fail("batch", "need -m MODEL (or --server URL)");
    herd_model *m;
    if (herd_model_load(c->model, &m) != HERD_OK) return cli_fail_lib("batch");
    herd_model_info info;
    herd_model_get_info(m, &info);
    int64_t per_slot =
        c->ctx.n_ctx ? c->ctx.n_ctx / parallel : (info.n_ctx_train < 4096 ? info.n_ctx_train : 4096);
    if (per_slot < 1 || per_slot > info.n_ctx_train) {
        herd_model_free(m);
        return cli_fail("batch", "-c %lld over %lld slots gives %lld positions per slot; need 1..%lld",
                        (long long)c->ctx.n_ctx, (long long)parallel, (long long)per_slot,
                        (long long)info.n_ctx_train);
    }
    char id[256]; /* the model name a body may give, as herd serve names it */
    if (alias)
        snprintf(id, sizeof id, "%s", alias);
    else {
        const char *base = strrchr(c->model, '/');
        snprintf(id, sizeof id, "%s", base ? base + 1 : c->model);
        size_t L = strlen(id);
        if (L > 5 && !strcmp(id + L - 5, ".gguf")) id[L - 5] = 0;
    }
    engine_config ec = {.n_parallel = (int)parallel,
                        .n_ctx_slot = per_slot,
                        .n_batch = c->ctx.n_batch,
                        .n_threads = c->ctx.n_threads,
                        .kv_type = c->ctx.kv_type,
                        .max_queue = (int)parallel * 2};
    engine *e = NULL;
    if (engine_new(m, &ec, &e) != HERD_OK) {
        herd_model_free(m);
        return cli_fail_lib("batch");
    }
    batch_config bc = {.input = in,
                       .output = out,
                       .parallel = (int)parallel,
                       .model_id = id,
                       .n_ctx_slot = per_slot,
                       .max_body = (size_t)max_body,
                       .progress = progress,
                       .fsync_interval_s = sync_s};
    /* the job runs through our own server on a loopback port, with a random API key */
    char key[33], url[64];
    herd_random_hex(key, 32);
    server_config sc = {.host = "127.0.0.1",
                        .port = 0,
                        .api_key = key,
                        .max_body = (size_t)max_body + 1024,
                        .model_id = id,
                        .n_ctx_slot = per_slot,
                        .max_connections = (int)parallel + 8};
    server *srv = NULL;
    batch_stats st;
    int rc = server_start(e, &sc, &srv);
    if (rc == HERD_OK) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d", server_port(srv));
        rc = batch_run_client(&bc, url, key, &st);
        server_shutdown(srv);
    }
    engine_free(e, true);
    herd_model_free(m);
    if (rc != HERD_OK) return cli_fail_lib("batch");
    return report(&st, out);
}

int cmd_batch(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    int rc = batch_main(&c, argc, argv);
    cli_common_free(&c);
    return rc;
}
