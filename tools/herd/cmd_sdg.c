/* herd sdg -m MODEL (--seeds FILE | --docs FILE...) -o OUT.jsonl [--task sft|dpo|qa|cot] [...]: synthetic
 * data generation — K candidates per seed, an LLM judge, selection, dedupe (src/sdg/sdg.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/sdg/sdg.h"
#include "cli.h"

static bool ends_with(const char *s, const char *x) {
    size_t a = strlen(s), b = strlen(x);
    return a >= b && !strcmp(s + a - b, x);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    size_t n = 0, cap = 0, got;
    char tmp[4096];
    while ((got = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (n + got + 1 > cap) cap = 2 * (n + got + 1), b = realloc(b, cap);
        memcpy(b + n, tmp, got), n += got;
    }
    fclose(f);
    if (!b) b = calloc(1, 1);
    b[n] = 0;
    return b;
}

/* the model name the loopback server answers to: the file name without .gguf */
static void model_id(const char *path, char *id, size_t cap) {
    const char *base = strrchr(path, '/');
    snprintf(id, cap, "%s", base && base[1] ? base + 1 : path);
    size_t L = strlen(id);
    if (L > 5 && !strcmp(id + L - 5, ".gguf")) id[L - 5] = 0;
}

typedef struct {
    herd_model *m;
    engine *e;
    int64_t per_slot;
} loaded;

/* cache_mb: the engine's prefix cache (herd serve's --cache-ram): every judge request opens with the same
 * system prompt and rubric, and the K candidates of a seed with the same prompt, so their KV is computed
 * once and copied thereafter. */
static bool load(const char *path, const cli_common *c, int parallel, int64_t cache_mb, loaded *L) {
    if (herd_model_load(path, &L->m) != HERD_OK) return cli_fail_lib("sdg"), false;
    herd_model_info info;
    herd_model_get_info(L->m, &info);
    L->per_slot =
        c->ctx.n_ctx ? c->ctx.n_ctx / parallel : (info.n_ctx_train < 4096 ? info.n_ctx_train : 4096);
    if (L->per_slot < 1 || L->per_slot > info.n_ctx_train) {
        cli_fail("sdg", "-c %lld over %d slots gives %lld positions per slot; need 1..%lld",
                 (long long)c->ctx.n_ctx, parallel, (long long)L->per_slot, (long long)info.n_ctx_train);
        return false;
    }
    engine_config ec = {.n_parallel = parallel,
                        .n_ctx_slot = L->per_slot,
                        .n_batch = c->ctx.n_batch,
                        .n_threads = c->ctx.n_threads,
                        .kv_type = c->ctx.kv_type,
                        .max_queue = parallel * 2,
                        .cache_ram = (uint64_t)cache_mb << 20};
    if (engine_new(L->m, &ec, &L->e) != HERD_OK) return cli_fail_lib("sdg"), false;
    return true;
}

static void unload(loaded *L) {
    if (L->e) engine_free(L->e, true);
    if (L->m) herd_model_free(L->m);
}

static int sdg_main(cli_common *c, int argc, char **argv) {
    const char *seeds_path = NULL, *out = NULL, *journal = NULL, *judge_path = NULL, *task = "sft";
    const char *system = NULL, *rubric_path = NULL;
    const char **docs = calloc((size_t)argc, sizeof *docs);
    int n_docs = 0;
    int64_t k = 4, parallel = 8, max_tokens = 256, judge_max = 96, threshold = -1, chunk = 512, overlap = -1, cache_mb = 512;
    float dedupe = 0.8f, sync_s = 1, judge_temp = 0;
    bool best_of = false, progress = isatty(2), no_dedupe = false;
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--temperature")) a = argv[i] = "--temp";
        int r = cli_common_opt("sdg", c, argc, argv, &i);
        if (r < 0) goto out;
        if (r > 0) continue;
        bool ok = true;
        if (!strcmp(a, "--seeds"))
            ok = cli_str("sdg", argc, argv, &i, &seeds_path);
        else if (!strcmp(a, "--docs")) {
            ok = cli_str("sdg", argc, argv, &i, &docs[n_docs]);
            n_docs += ok;
            while (ok && i + 1 < argc && argv[i + 1][0] != '-')
                docs[n_docs++] = argv[++i]; /* --docs a.md b.md */
        } else if (!strcmp(a, "--output") || !strcmp(a, "-o"))
            ok = cli_str("sdg", argc, argv, &i, &out);
        else if (!strcmp(a, "--journal"))
            ok = cli_str("sdg", argc, argv, &i, &journal);
        else if (!strcmp(a, "--judge"))
            ok = cli_str("sdg", argc, argv, &i, &judge_path);
        else if (!strcmp(a, "--task"))
            ok = cli_str("sdg", argc, argv, &i, &task);
        else if (!strcmp(a, "--system"))
            ok = cli_str("sdg", argc, argv, &i, &system);
        else if (!strcmp(a, "--rubric"))
            ok = cli_str("sdg", argc, argv, &i, &rubric_path);
        else if (!strcmp(a, "-k") || !strcmp(a, "--candidates"))
            ok = cli_i64("sdg", argc, argv, &i, 1, 64, &k);
        else if (!strcmp(a, "--cache-ram"))
            ok = cli_i64("sdg", argc, argv, &i, 0, (int64_t)1 << 30, &cache_mb);
        else if (!strcmp(a, "--parallel") || !strcmp(a, "-np"))
            ok = cli_i64("sdg", argc, argv, &i, 1, 256, &parallel);
        else if (!strcmp(a, "--max-tokens") || !strcmp(a, "-n"))
            ok = cli_i64("sdg", argc, argv, &i, 1, 1 << 20, &max_tokens);
        else if (!strcmp(a, "--judge-max-tokens"))
            ok = cli_i64("sdg", argc, argv, &i, 16, 1 << 20, &judge_max);
        else if (!strcmp(a, "--judge-temp"))
            ok = cli_f32("sdg", argc, argv, &i, 0, 2, &judge_temp);
        else if (!strcmp(a, "--threshold"))
            ok = cli_i64("sdg", argc, argv, &i, 1, 10, &threshold);
        else if (!strcmp(a, "--best-of"))
            best_of = true;
        else if (!strcmp(a, "--dedupe"))
            ok = cli_f32("sdg", argc, argv, &i, 0.05f, 1, &dedupe);
        else if (!strcmp(a, "--exact-dedupe-only"))
            no_dedupe = true;
        else if (!strcmp(a, "--chunk-tokens"))
            ok = cli_i64("sdg", argc, argv, &i, 16, 1 << 20, &chunk);
        else if (!strcmp(a, "--chunk-overlap"))
            ok = cli_i64("sdg", argc, argv, &i, 0, 1 << 20, &overlap);
        else if (!strcmp(a, "--fsync-interval"))
            ok = cli_f32("sdg", argc, argv, &i, 0, 3600, &sync_s);
        else if (!strcmp(a, "--progress"))
            progress = true;
        else if (!strcmp(a, "--no-progress"))
            progress = false;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            rc = cli_help("sdg");
            goto out;
        } else {
            cli_fail("sdg", "unknown option '%s'", a);
            goto out;
        }
        if (!ok) goto out;
    }
    sdg_task t;
    if (!strcmp(task, "sft"))
        t = SDG_TASK_SFT;
    else if (!strcmp(task, "dpo"))
        t = SDG_TASK_DPO;
    else if (!strcmp(task, "qa"))
        t = SDG_TASK_QA;
    else if (!strcmp(task, "cot"))
        t = SDG_TASK_COT;
    else {
        cli_fail("sdg", "--task '%s' is not one of sft, dpo, qa, cot", task);
        goto out;
    }
    if (!c->model) {
        cli_fail("sdg", "need -m MODEL (the generator)");
        goto out;
    }
    if (!out) {
        cli_fail("sdg", "need -o OUT.jsonl");
        goto out;
    }
    if (!seeds_path && !n_docs) {
        cli_fail("sdg", "need --seeds FILE (prompts: JSONL or one per line) or --docs FILE... (documents)");
        goto out;
    }
    if (overlap < 0) overlap = chunk / 4;
    if (overlap >= chunk) {
        cli_fail("sdg", "--chunk-overlap %lld must be smaller than --chunk-tokens %lld", (long long)overlap,
                 (long long)chunk);
        goto out;
    }
    if (t == SDG_TASK_DPO && k < 2) {
        cli_fail("sdg", "--task dpo needs -k 2 or more (a pair is the best and the worst of K)");
        goto out;
    }
    char jbuf[4096];
    if (!journal) {
        snprintf(jbuf, sizeof jbuf, "%s", out);
        size_t L = strlen(jbuf);
        if (ends_with(jbuf, ".jsonl")) jbuf[L - 6] = 0;
        strncat(jbuf, ".judged.jsonl", sizeof jbuf - strlen(jbuf) - 1);
        journal = jbuf;
    }
    if (!strcmp(journal, out) || (seeds_path && (!strcmp(seeds_path, out) || !strcmp(seeds_path, journal)))) {
        cli_fail("sdg", "the seeds, the output and the journal must be three different files");
        goto out;
    }
    char *rubric = NULL;
    if (rubric_path && !(rubric = read_text(rubric_path))) {
        cli_fail("sdg", "cannot read the rubric %s", rubric_path);
        goto out;
    }
    loaded gen = {0}, jud = {0};
    sdg_seeds seeds = {0};
    /* the seed file first: a bad line is reported before minutes of model loading */
    if (seeds_path && sdg_seeds_read_file(&seeds, seeds_path, ends_with(seeds_path, ".jsonl")) != HERD_OK) {
        cli_fail_lib("sdg");
        goto done;
    }
    if (!load(c->model, c, (int)parallel, cache_mb, &gen)) goto done;
    if (judge_path && strcmp(judge_path, c->model) && !load(judge_path, c, (int)parallel, cache_mb, &jud)) goto done;
    for (int i = 0; i < n_docs; i++)
        if (sdg_seeds_read_document(&seeds, gen.m, docs[i], chunk, overlap) != HERD_OK) {
            cli_fail_lib("sdg");
            goto done;
        }
    if (sdg_seeds_check_unique(&seeds) != HERD_OK) {
        cli_fail_lib("sdg");
        goto done;
    }
    for (int64_t i = 0; i < seeds.n; i++) {
        bool doc = seeds.v[i].document != NULL;
        if (doc != (t == SDG_TASK_QA)) {
            cli_fail("sdg", "seed '%s' is a %s, but --task %s needs %s", seeds.v[i].id,
                     doc ? "document" : "prompt", task,
                     t == SDG_TASK_QA ? "documents (--docs, or \"document\" seeds)" : "prompts");
            goto done;
        }
    }
    char gid[256], jid[256];
    model_id(c->model, gid, sizeof gid);
    model_id(jud.m ? judge_path : c->model, jid, sizeof jid);
    sdg_config cfg = {.task = t,
                      .output = out,
                      .journal = journal,
                      .k = (int)k,
                      .parallel = (int)parallel,
                      .temperature = c->samp.temp,
                      .top_p = c->samp.top_p,
                      .min_p = c->samp.min_p,
                      .top_k = c->samp.top_k,
                      .seed = c->samp.seed,
                      .max_tokens = max_tokens,
                      .judge_max_tokens = judge_max,
                      .judge_temp = judge_temp,
                      .threshold = threshold > 0 ? (int)threshold
                                   : best_of     ? 1
                                                 : 7,
                      .best_of = best_of,
                      .dedupe = no_dedupe ? 2.0 : dedupe,
                      .system = system,
                      .rubric = rubric,
                      .gen_id = gid,
                      .judge_id = jid,
                      .n_ctx_slot = gen.per_slot,
                      .judge_ctx_slot = jud.m ? jud.per_slot : gen.per_slot,
                      .progress = progress,
                      .fsync_interval_s = sync_s};
    sdg_stats st;
    if (sdg_run(gen.e, jud.e, &seeds, &cfg, &st) != HERD_OK) {
        cli_fail_lib("sdg");
        goto done;
    }
    if (st.torn_bytes)
        fprintf(stderr, "herd sdg: dropped a torn last line (%lld bytes); its seed was redone\n",
                (long long)st.torn_bytes);
    double gs = st.seconds > 0 ? (double)st.gen_tokens / st.seconds : 0;
    double ts = st.seconds > 0 ? (double)(st.gen_tokens + st.judge_tokens) / st.seconds : 0;
    fprintf(
        stderr,
        "herd sdg: %lld seeds: %lld skipped (already done), %lld done; %lld candidates (%lld failed), %lld "
        "judged (%lld unscored); %lld kept, %lld under the threshold, %lld duplicates; %lld lines to %s; "
        "prompts: "
        "%lld generator + %lld judge tokens\n"
        "herd sdg: %lld generated + %lld judge tokens in %.2f s: generation %.1f tok/s, all %.1f tok/s\n",
        (long long)st.seeds, (long long)st.skipped, (long long)st.done, (long long)st.candidates,
        (long long)st.gen_failed, (long long)st.judged, (long long)st.judge_failed, (long long)st.kept,
        (long long)st.below, (long long)st.duplicates, (long long)st.lines, out,
        (long long)st.gen_prompt_tokens, (long long)st.judge_prompt_tokens, (long long)st.gen_tokens,
        (long long)st.judge_tokens, st.seconds, gs, ts);
    rc = 0;
done:
    sdg_seeds_free(&seeds);
    free(rubric);
    unload(&jud);
    unload(&gen);
out:
    free(docs);
    return rc;
}

int cmd_sdg(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    int rc = sdg_main(&c, argc, argv);
    cli_common_free(&c);
    return rc;
}
