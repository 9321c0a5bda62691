/* herd eval: benchmark tasks from local JSONL files (multiple choice by log-likelihood, MMLU 5-shot,
 * generative with the final number extracted), through herd_eval() (src/eval/eval.c). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int eval_main(cli_common *c, int argc, char **argv) {
    const char *task = NULL, *type = "mc", *json = NULL, *judge_path = NULL, *rubric_path = NULL;
    char *rubric = NULL;
    const char **stop = NULL;
    int n_stop = 0, rc = 1;
    herd_eval_params p = herd_eval_default_params();
    p.progress = isatty(2);
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("eval", c, argc, argv, &i);
        if (r < 0) goto out;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--task")) {
            if (!cli_str("eval", argc, argv, &i, &task)) goto out;
        } else if (!strcmp(argv[i], "--type")) {
            if (!cli_str("eval", argc, argv, &i, &type)) goto out;
        } else if (!strcmp(argv[i], "--json")) {
            if (!cli_str("eval", argc, argv, &i, &json)) goto out;
        } else if (!strcmp(argv[i], "--limit")) {
            if (!cli_i64("eval", argc, argv, &i, 1, INT64_MAX, &p.limit)) goto out;
        } else if (!strcmp(argv[i], "--fewshot")) {
            if (!cli_str("eval", argc, argv, &i, &p.fewshot_path)) goto out;
        } else if (!strcmp(argv[i], "--num-fewshot")) {
            if (!cli_i64("eval", argc, argv, &i, 0, 1000, &p.n_shot)) goto out;
        } else if (!strcmp(argv[i], "--max-tokens") || !strcmp(argv[i], "-n")) {
            if (!cli_i64("eval", argc, argv, &i, 1, INT32_MAX, &p.max_tokens)) goto out;
        } else if (!strcmp(argv[i], "--stop")) {
            const char *s;
            if (!cli_str("eval", argc, argv, &i, &s)) goto out;
            const char **ns = realloc(stop, (size_t)(n_stop + 1) * sizeof *stop);
            if (!ns) {
                cli_fail("eval", "out of memory");
                goto out;
            }
            stop = ns;
            stop[n_stop++] = s;
        } else if (!strcmp(argv[i], "--judge")) {
            if (!cli_str("eval", argc, argv, &i, &judge_path)) goto out;
        } else if (!strcmp(argv[i], "--rubric")) {
            if (!cli_str("eval", argc, argv, &i, &rubric_path)) goto out;
        } else if (!strcmp(argv[i], "--chat")) {
            p.chat = true;
        } else if (!strcmp(argv[i], "--progress")) {
            p.progress = true;
        } else if (!strcmp(argv[i], "--no-progress")) {
            p.progress = false;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            rc = cli_help("eval");
            goto out;
        } else {
            cli_fail("eval", "unknown option '%s'", argv[i]);
            goto out;
        }
    }
    if (!strcmp(type, "mc"))
        p.type = HERD_EVAL_MC;
    else if (!strcmp(type, "gen"))
        p.type = HERD_EVAL_GEN;
    else if (!strcmp(type, "mmlu"))
        p.type = HERD_EVAL_MMLU;
    else if (!strcmp(type, "code"))
        p.type = HERD_EVAL_CODE;
    else {
        cli_fail("eval", "--type must be mc, gen, mmlu or code, not '%s'", type);
        goto out;
    }
    if (!c->model) {
        cli_fail("eval", "need -m MODEL");
        goto out;
    }
    if (!task) {
        cli_fail("eval", "need --task FILE.jsonl");
        goto out;
    }
    if (judge_path && p.type != HERD_EVAL_GEN) {
        cli_fail("eval", "--judge grades generated answers: it needs --type gen");
        goto out;
    }
    if (rubric_path) { /* the rubric: a text file */
        FILE *f = fopen(rubric_path, "rb");
        size_t cap = 0, len = 0;
        if (f) {
            char buf[4096];
            size_t k;
            while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
                char *nr = realloc(rubric, cap = len + k + 1);
                if (!nr) break;
                rubric = nr;
                memcpy(rubric + len, buf, k);
                len += k;
                rubric[len] = 0;
            }
            fclose(f);
        }
        if (!f || !rubric || !len) {
            cli_fail("eval", "--rubric: cannot read %s (or it is empty)", rubric_path);
            goto out;
        }
        (void)cap;
        p.rubric = rubric;
    }
    p.stop = stop;
    p.n_stop = n_stop;
    herd_model *m = NULL, *jm = NULL;
    herd_context *ctx = NULL, *jctx = NULL;
    herd_lora **loras = NULL;
    if (herd_model_load(c->model, &m) != HERD_OK)
        cli_fail_lib("eval");
    else if (herd_context_new(m, &c->ctx, &ctx) != HERD_OK)
        cli_fail_lib("eval");
    else if (!cli_lora_apply("eval", c, m, ctx, &loras)) {
    } else if (judge_path && herd_model_load(judge_path, &jm) != HERD_OK)
        cli_fail_lib("eval");
    else if (judge_path && herd_context_new(jm, &c->ctx, &jctx) != HERD_OK)
        cli_fail_lib("eval");
    else if ((p.judge = jctx), herd_eval(ctx, task, &p, json, stdout, stderr) != HERD_OK)
        cli_fail_lib("eval");
    else
        rc = 0;
    herd_context_free(ctx);
    herd_context_free(jctx);
    cli_lora_free(loras, c->n_lora);
    herd_model_free(m);
    herd_model_free(jm);
out:
    free(rubric);
    free(stop);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    int rc = eval_main(&c, argc, argv);
    cli_common_free(&c);
    return rc;
}
