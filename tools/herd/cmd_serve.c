/* herd serve -m MODEL [--host 127.0.0.1] [--port 8080] [-c CTX] [--parallel N] [--api-key KEY]
 *            [-t THREADS] [--max-body BYTES] [--max-queue N] [--alias NAME] [-b BATCH] [--kv-type T]
 *            [--exec-builtin-tools LIST] [--max-tool-steps N] [--tool-timeout S]
 *            [--data-dir DIR [--max-file-size BYTES]] [--lora [NAME=]FILE[:SCALE]]... [--guard-model LLAMA_GUARD] [--prompt-guard DIR
 *            [--prompt-guard-type injection|jailbreak]] [--shields input,output,prompt-guard]
 *            [--cache-ram MiB] [--slot-save-path DIR] [--context-policy stop|shift]
 *            [--draft MODEL [--draft-max N] | --lookup N]
 * SIGTERM / SIGINT: stop accepting, finish in-flight requests, exit 0. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/server/server.h"
#include "cli.h"

int cmd_serve(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    const char *host = "127.0.0.1", *api_key = getenv("HERD_API_KEY"), *alias = NULL, *store_dir = NULL;
    int64_t port = 8080, parallel = 4, max_body = 8 << 20, max_queue = 64;
    const char *script_file = NULL, *exec_list = NULL, *guard_path = NULL, *shields = NULL;
    const char *pg_path = NULL, *pg_type = "injection", *data_dir = NULL;
    int64_t max_file = (int64_t)200 << 20;
    int64_t max_steps = 4, cache_ram = 1024;
    const char *slot_save_path = NULL, *ctx_policy = "stop";
    float tool_timeout = 0;
    cli_spec spec; /* --draft MODEL [--draft-max N] | --lookup N: speculative decoding in every slot */
    cli_spec_init(&spec);
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("serve", &c, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        if ((r = cli_spec_opt("serve", &spec, argc, argv, &i)) < 0) return 1;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--host")) { if (!cli_str("serve", argc, argv, &i, &host)) return 1; }
        else if (!strcmp(a, "--port")) { if (!cli_i64("serve", argc, argv, &i, 0, 65535, &port)) return 1; }
        else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) { if (!cli_i64("serve", argc, argv, &i, 1, 256, &parallel)) return 1; }
        else if (!strcmp(a, "--api-key")) { if (!cli_str("serve", argc, argv, &i, &api_key)) return 1; }
        else if (!strcmp(a, "--store")) { if (!cli_str("serve", argc, argv, &i, &store_dir)) return 1; }
        else if (!strcmp(a, "--max-body")) { if (!cli_i64("serve", argc, argv, &i, 1024, (int64_t)1 << 32, &max_body)) return 1; }
        else if (!strcmp(a, "--max-queue")) { if (!cli_i64("serve", argc, argv, &i, 0, 1 << 20, &max_queue)) return 1; }
        else if (!strcmp(a, "--data-dir")) { if (!cli_str("serve", argc, argv, &i, &data_dir)) return 1; }
        else if (!strcmp(a, "--max-file-size")) { if (!cli_i64("serve", argc, argv, &i, 1, (int64_t)1 << 40, &max_file)) return 1; }
        else if (!strcmp(a, "--alias")) { if (!cli_str("serve", argc, argv, &i, &alias)) return 1; }
        else if (!strcmp(a, "--exec-builtin-tools")) { if (!cli_str("serve", argc, argv, &i, &exec_list)) return 1; }
        else if (!strcmp(a, "--max-tool-steps")) { if (!cli_i64("serve", argc, argv, &i, 1, 64, &max_steps)) return 1; }
        else if (!strcmp(a, "--tool-timeout")) { if (!cli_f32("serve", argc, argv, &i, 0.1f, 3600, &tool_timeout)) return 1; }
        else if (!strcmp(a, "--guard-model")) { if (!cli_str("serve", argc, argv, &i, &guard_path)) return 1; }
        else if (!strcmp(a, "--prompt-guard")) { if (!cli_str("serve", argc, argv, &i, &pg_path)) return 1; }
        else if (!strcmp(a, "--prompt-guard-type")) { if (!cli_str("serve", argc, argv, &i, &pg_type)) return 1; }
        else if (!strcmp(a, "--shields")) { if (!cli_str("serve", argc, argv, &i, &shields)) return 1; }
        else if (!strcmp(a, "--cache-ram")) { if (!cli_i64("serve", argc, argv, &i, 0, (int64_t)1 << 30, &cache_ram)) return 1; }
        else if (!strcmp(a, "--slot-save-path")) { if (!cli_str("serve", argc, argv, &i, &slot_save_path)) return 1; }
        else if (!strcmp(a, "--context-policy")) {
            if (!cli_str("serve", argc, argv, &i, &ctx_policy)) return 1;
            if (strcmp(ctx_policy, "stop") && strcmp(ctx_policy, "shift"))
                return cli_fail("serve", "--context-policy: '%s' is not stop or shift", ctx_policy);
        }
        else if (!strcmp(a, "--test-script")) { if (!cli_str("serve", argc, argv, &i, &script_file)) return 1; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cli_help("serve");
        else return cli_fail("serve", "unknown option '%s'", a);
    }
    if (!c.model) return cli_fail("serve", "no model given (-m MODEL)");
    if (spec.draft_path && spec.lookup > 0) return cli_fail("serve", "give --draft MODEL or --lookup N, not both");
    if (spec.draft_min > 0 || spec.p_min > 0)
        return cli_fail("serve", "--draft-min and --draft-p-min are not supported by serve (every draft is verified)");
    bool shield_in = false, shield_out = false, shield_pg = false;
    if (strcmp(pg_type, "injection") && strcmp(pg_type, "jailbreak"))
        return cli_fail("serve", "--prompt-guard-type: '%s' is not injection or jailbreak", pg_type);
    if (shields) { /* input / output: Llama Guard on the user's turn / the answer; prompt-guard: Prompt Guard */
        for (const char *p = shields; *p;) {
            size_t L = strcspn(p, ",");
            if (L == 5 && !strncmp(p, "input", 5)) shield_in = true;
            else if (L == 6 && !strncmp(p, "output", 6)) shield_out = true;
            else if (L == 12 && !strncmp(p, "prompt-guard", 12)) shield_pg = true;
            else return cli_fail("serve", "--shields: '%.*s' is not input, output or prompt-guard", (int)L, p);
            p += L + (p[L] == ',');
        }
        if ((shield_in || shield_out) && !guard_path)
            return cli_fail("serve", "--shields input/output need --guard-model LLAMA_GUARD");
        if (shield_pg && !pg_path) return cli_fail("serve", "--shields prompt-guard needs --prompt-guard DIR");
    }
    /* --store: a default 512-token chunk is embedded as BOS + 512 tokens, one forward pass if the batch
     * holds 513 (herd rag index does the same) */
    if (store_dir && c.ctx.n_batch == 0) c.ctx.n_batch = 513;
    static const char *const k_all[] = {"code_interpreter", "brave_search", "wolfram_alpha"};
    const char *exec_tools[3];
    int n_exec = 0;
    if (exec_list) { /* a comma list of the three names, or "all" */
        const char *p = exec_list;
        while (*p) {
            size_t L = strcspn(p, ",");
            bool known = false;
            for (int k = 0; k < 3; k++) {
                bool all = L == 3 && !strncmp(p, "all", 3);
                if (all || (strlen(k_all[k]) == L && !strncmp(p, k_all[k], L))) {
                    known = true;
                    bool dup = false;
                    for (int j = 0; j < n_exec; j++) dup |= exec_tools[j] == k_all[k];
                    if (!dup) exec_tools[n_exec++] = k_all[k];
                }
            }
            if (!known)
                return cli_fail("serve", "--exec-builtin-tools: unknown tool '%.*s' (code_interpreter, brave_search, "
                                "wolfram_alpha or all)", (int)L, p);
            p += L + (p[L] == ',');
        }
        if (n_exec == 0) return cli_fail("serve", "--exec-builtin-tools: no tool named");
    }

    /* every thread started from here on inherits the blocked signals; main waits for them */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* test-only: a JSON array of outputs the "model" produces in turn */
    const char **script = NULL;
    int n_script = 0;
    json_t *script_json = NULL;
    if (script_file) {
        json_error_t err;
        script_json = json_load_file(script_file, 0, &err);
        if (!json_is_array(script_json)) return cli_fail("serve", "--test-script %s: not a JSON array of strings", script_file);
        n_script = (int)json_array_size(script_json);
        script = calloc((size_t)n_script + 1, sizeof *script);
        for (int k = 0; k < n_script; k++) {
            script[k] = json_string_value(json_array_get(script_json, (size_t)k));
            if (!script[k]) return cli_fail("serve", "--test-script %s: entry %d is not a string", script_file, k);
        }
    }
    herd_model *m;
    if (herd_model_load(c.model, &m) != HERD_OK) return cli_fail_lib("serve");
    if (spec.draft_path) { /* the draft: the same vocabulary, checked before anything else starts */
        if (herd_model_load(spec.draft_path, &spec.model) != HERD_OK) {
            herd_model_free(m);
            return cli_fail("serve", "draft model: %s", herd_last_error());
        }
        if (herd_vocab_compatible(m, spec.model) != HERD_OK) {
            herd_model_free(m);
            cli_fail("serve", "--draft %s: %s", spec.draft_path, herd_last_error());
            cli_spec_free(&spec);
            return 1;
        }
    }
    herd_model_info info;
    herd_model_get_info(m, &info);
    int64_t per_slot = c.ctx.n_ctx ? c.ctx.n_ctx / parallel : (info.n_ctx_train < 4096 ? info.n_ctx_train : 4096);
    if (per_slot < 1 || per_slot > info.n_ctx_train) {
        herd_model_free(m);
        return cli_fail("serve", "-c %lld over %lld slots gives %lld positions per slot; need 1..%lld",
                        (long long)c.ctx.n_ctx, (long long)parallel, (long long)per_slot, (long long)info.n_ctx_train);
    }
    char id[256];
    if (alias) snprintf(id, sizeof id, "%s", alias);
    else {
        const char *base = strrchr(c.model, '/');
        snprintf(id, sizeof id, "%s", base ? base + 1 : c.model);
        size_t L = strlen(id);
        if (L > 5 && !strcmp(id + L - 5, ".gguf")) id[L - 5] = 0;
    }
    /* adapters: each a model of its own name */
    herd_lora **loras = NULL;
    int nl = c.n_lora;
    char **lora_ids = calloc((size_t)(nl ? nl : 1), sizeof *lora_ids);
    const char **lora_paths = calloc((size_t)(nl ? nl : 1), sizeof *lora_paths);
    float *lora_scales = calloc((size_t)(nl ? nl : 1), sizeof *lora_scales);
    bool lora_ok = cli_lora_load("serve", &c, m, &loras);
    for (int i = 0; i < nl && lora_ok; i++) {
        const cli_lora *l = &c.lora[i];
        if (l->name) lora_ids[i] = strdup(l->name);
        else { /* the file (or PEFT folder) name without its extension */
            size_t L = strlen(l->path);
            while (L > 1 && l->path[L - 1] == '/') L--;
            const char *b = l->path + L;
            while (b > l->path && b[-1] != '/') b--;
            lora_ids[i] = strndup(b, (size_t)(l->path + L - b));
            char *dot = strrchr(lora_ids[i], '.');
            if (dot && dot != lora_ids[i]) *dot = 0;
        }
        lora_paths[i] = l->path;
        lora_scales[i] = l->scale;
        bool dup = !strcmp(lora_ids[i], id);
        for (int j = 0; j < i; j++) dup |= !strcmp(lora_ids[i], lora_ids[j]);
        if (dup) {
            cli_fail("serve", "--lora %s: the model name '%s' is taken (name it: --lora NAME=FILE)", l->path, lora_ids[i]);
            lora_ok = false;
        }
    }
    engine_config ec = {.n_parallel = (int)parallel, .n_ctx_slot = per_slot, .n_batch = c.ctx.n_batch,
                        .n_threads = c.ctx.n_threads, .kv_type = c.ctx.kv_type, .max_queue = (int)max_queue,
                        .loras = loras, .lora_scales = lora_scales, .n_loras = nl,
                        .cache_ram = (uint64_t)cache_ram << 20, .lookup_ngram = spec.lookup, .draft = spec.model,
                        .draft_max = (int)spec.draft_max};
    engine *e = NULL;
    if (!lora_ok || engine_new(m, &ec, &e) != HERD_OK) {
        if (lora_ok) cli_fail_lib("serve");
        for (int i = 0; i < nl; i++) free(lora_ids[i]);
        free(lora_ids), free(lora_paths), free(lora_scales);
        cli_lora_free(loras, nl);
        herd_model_free(m);
        cli_spec_free(&spec);
        cli_common_free(&c);
        return 1;
    }
    /* the guard model: an engine of its own, as many slots as the main one (docs/LLAMA_GUARD.md) */
    herd_model *gm = NULL;
    engine *gctx = NULL;
    char gid[256] = "";
    int64_t g_slot = 0;
    if (guard_path) {
        herd_model_info gi;
        int grc = herd_model_load(guard_path, &gm);
        if (grc == HERD_OK) {
            herd_model_get_info(gm, &gi);
            g_slot = gi.n_ctx_train < 4096 ? gi.n_ctx_train : 4096;
            engine_config gc = {.n_parallel = (int)parallel, .n_ctx_slot = g_slot, .n_batch = c.ctx.n_batch,
                                .n_threads = c.ctx.n_threads, .kv_type = c.ctx.kv_type, .max_queue = (int)max_queue};
            grc = engine_new(gm, &gc, &gctx);
        }
        if (grc != HERD_OK) {
            cli_fail("serve", "--guard-model %s: %s", guard_path, herd_last_error());
            herd_model_free(gm);
            engine_free(e, false);
            cli_lora_free(loras, nl);
            for (int i = 0; i < nl; i++) free(lora_ids[i]);
            free(lora_ids), free(lora_paths), free(lora_scales);
            herd_model_free(m);
            cli_common_free(&c);
            return 1;
        }
        const char *base = strrchr(guard_path, '/');
        snprintf(gid, sizeof gid, "%s", base && base[1] ? base + 1 : guard_path);
        size_t L = strlen(gid);
        if (L > 5 && !strcmp(gid + L - 5, ".gguf")) gid[L - 5] = 0;
    }
    /* Prompt Guard: a classifier of its own threads, one classification at a time (docs/PROMPT_GUARD.md) */
    herd_classifier *pg = NULL;
    char pgid[256] = "";
    if (pg_path) {
        if (herd_classifier_load(pg_path, c.ctx.n_threads > 0 ? c.ctx.n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN), &pg) != HERD_OK) {
            cli_fail("serve", "--prompt-guard %s: %s", pg_path, herd_last_error());
            if (gctx) engine_free(gctx, false);
            herd_model_free(gm);
            engine_free(e, false);
            cli_lora_free(loras, nl);
            for (int i = 0; i < nl; i++) free(lora_ids[i]);
            free(lora_ids), free(lora_paths), free(lora_scales);
            herd_model_free(m);
            cli_common_free(&c);
            return 1;
        }
        snprintf(pgid, sizeof pgid, "%s", pg_path);
        size_t L = strlen(pgid);
        while (L > 1 && pgid[L - 1] == '/') pgid[--L] = 0;
        const char *base = strrchr(pgid, '/');
        if (base) memmove(pgid, base + 1, strlen(base + 1) + 1);
    }
    server_config sc = {.prompt_guard = pg, .prompt_guard_id = pgid, .shield_prompt_guard = shield_pg,
                        .prompt_guard_jailbreak = !strcmp(pg_type, "jailbreak"), .guard = gctx, .guard_ctx_slot = g_slot, .guard_id = gid, .shield_input = shield_in, .shield_output = shield_out,.host = host, .port = (int)port, .api_key = api_key, .store_dir = store_dir, .max_body = (size_t)max_body,
                        .model_id = id, .n_ctx_slot = per_slot, .max_connections = 512, .script = script,
                        .n_script = n_script, .exec_tools = exec_tools, .n_exec_tools = n_exec,
                        .max_tool_steps = (int)max_steps, .tool_params = {.timeout_s = tool_timeout},
                        .lora_ids = (const char *const *)lora_ids, .lora_paths = lora_paths, .n_loras = nl,
                        .data_dir = data_dir, .max_file_bytes = (size_t)max_file, .batch_parallel = (int)parallel,
                        .slot_save_path = slot_save_path, .context_shift = !strcmp(ctx_policy, "shift")};
    server *s;
    if (server_start(e, &sc, &s) != HERD_OK) {
        engine_free(e, false);
        if (gctx) engine_free(gctx, false);
        herd_model_free(gm);
        herd_classifier_free(pg);
        herd_model_free(m);
        return cli_fail_lib("serve");
    }
    if (gctx)
        fprintf(stderr, "herd serve: shield '%s' (Llama Guard 3, %s)%s%s%s\n", gid, guard_path,
                shield_in || shield_out ? " on chat completions:" : "", shield_in ? " input" : "", shield_out ? " output" : "");
    if (pg)
        fprintf(stderr, "herd serve: shield '%s' (Prompt Guard, %s, guard type %s)%s\n", pgid, pg_path, pg_type,
                shield_pg ? " on chat completions: input" : "");
    for (int k = 0; k < n_exec; k++)
        fprintf(stderr, "herd serve: runs the built-in tool %s when a request declares it%s\n", exec_tools[k],
                !strcmp(exec_tools[k], "code_interpreter") ? " (python3 in a sandbox, docs/TOOLS.md)" : "");
    for (int k = 0; k < nl; k++)
        fprintf(stderr, "herd serve: model '%s': '%s' with the adapter %s (scale %g)\n", lora_ids[k], id, lora_paths[k],
                (double)lora_scales[k]);
    if (spec.model || spec.lookup > 0)
        fprintf(stderr, "herd serve: speculative decoding in every slot: %s%s, up to %lld drafted tokens per step\n",
                spec.model ? "draft model " : "prompt lookup", spec.model ? spec.draft_path : "",
                (long long)spec.draft_max);
    fprintf(stderr, "herd serve: model '%s', %lld slots x %lld tokens, listening on http://%s%s%s:%d/%s\n", id,
            (long long)parallel, (long long)per_slot, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
            server_port(s), api_key && *api_key ? " (API key required)" : "");
    printf("%d\n", server_port(s)); /* the port, for scripts that ask for --port 0 */
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "herd serve: %s: finishing in-flight requests\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server_shutdown(s);
    engine_free(e, true);
    if (gctx) engine_free(gctx, true);
    herd_model_free(gm);
    herd_classifier_free(pg);
    cli_lora_free(loras, nl);
    for (int i = 0; i < nl; i++) free(lora_ids[i]);
    free(lora_ids), free(lora_paths), free(lora_scales);
    herd_model_free(m);
    cli_spec_free(&spec); /* after the engine, which borrowed the draft */
    cli_common_free(&c);
    free(script);
    json_decref(script_json);
    fprintf(stderr, "herd serve: stopped\n");
    return 0;
}
