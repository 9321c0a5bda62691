/* herd perplexity: llama.cpp's llama-perplexity (perplexity, KL divergence against a base file), through
 * herd_perplexity() (src/eval/perplexity.c). Options as llama-perplexity names them. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int perplexity_main(cli_common *c, int argc, char **argv) {
    const char *file = NULL;
    herd_perplexity_params p = herd_perplexity_default_params();
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("perplexity", c, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) {
            if (!cli_str("perplexity", argc, argv, &i, &file)) return 1;
        } else if (!strcmp(argv[i], "--chunks")) {
            if (!cli_i64("perplexity", argc, argv, &i, 1, INT32_MAX, &p.n_chunks)) return 1;
        } else if (!strcmp(argv[i], "--kl-divergence-base") || !strcmp(argv[i], "--save-all-logits")) {
            if (!cli_str("perplexity", argc, argv, &i, &p.kld_base)) return 1;
        } else if (!strcmp(argv[i], "--ppl-output-type")) {
            int64_t v;
            if (!cli_i64("perplexity", argc, argv, &i, 0, 1, &v)) return 1;
            p.output_type = (int)v;
        } else if (!strcmp(argv[i], "--hellaswag")) {
            p.hellaswag = true;
        } else if (!strcmp(argv[i], "--hellaswag-tasks")) {
            if (!cli_i64("perplexity", argc, argv, &i, 1, INT32_MAX, &p.hellaswag_tasks)) return 1;
        } else if (!strcmp(argv[i], "--winogrande")) {
            p.winogrande = true;
        } else if (!strcmp(argv[i], "--winogrande-tasks")) {
            if (!cli_i64("perplexity", argc, argv, &i, 0, INT32_MAX, &p.winogrande_tasks)) return 1;
        } else if (!strcmp(argv[i], "--multiple-choice")) {
            p.multiple_choice = true;
        } else if (!strcmp(argv[i], "--multiple-choice-tasks")) {
            if (!cli_i64("perplexity", argc, argv, &i, 0, INT32_MAX, &p.multiple_choice_tasks)) return 1;
        } else if (!strcmp(argv[i], "--kl-divergence")) {
            p.kl_divergence = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return cli_help("perplexity");
        } else return cli_fail("perplexity", "unknown option '%s'", argv[i]);
    }
    if (!c->model) return cli_fail("perplexity", "need -m MODEL");
    if (p.kl_divergence && !p.kld_base) return cli_fail("perplexity", "--kl-divergence needs --kl-divergence-base FILE");
    if (!p.kl_divergence && !file) return cli_fail("perplexity", "need -f TEXT (the text or task file)");
    if (p.hellaswag + p.winogrande + p.multiple_choice + p.kl_divergence > 1)
        return cli_fail("perplexity", "--hellaswag, --winogrande, --multiple-choice and --kl-divergence exclude each other");
    const bool task = p.hellaswag || p.winogrande || p.multiple_choice; /* llama.cpp: 4 sequences in a cache of 4 * c */
    if (c->ctx.n_ctx) p.n_ctx = c->ctx.n_ctx;
    if (p.n_ctx < 4) return cli_fail("perplexity", "-c must be at least 4 tokens, not %lld", (long long)p.n_ctx);
    char *text = NULL;
    size_t len = 0;
    if (!p.kl_divergence) {
        if (!cli_read_text("perplexity", NULL, file, &text, &len)) return 1;
        if (len > 0 && text[len - 1] == '\n') text[--len] = 0; /* as llama.cpp's -f does */
    } else {
        /* the window length is the base file's; its header is checked before the model loads */
        if (herd_kld_base_info(p.kld_base, &p.n_ctx, NULL, NULL) != HERD_OK) return cli_fail_lib("perplexity");
    }
    herd_model *m = NULL;
    herd_context *ctx = NULL;
    herd_lora **loras = NULL;
    int rc = 1;
    if (herd_model_load(c->model, &m) != HERD_OK) { cli_fail_lib("perplexity"); goto done; }
    c->ctx.n_ctx = task ? 4 * p.n_ctx : p.n_ctx;
    c->ctx.n_seq = task ? 4 : 1;
    if (!task && c->ctx.n_batch > p.n_ctx) c->ctx.n_batch = p.n_ctx;
    if (herd_context_new(m, &c->ctx, &ctx) != HERD_OK) { cli_fail_lib("perplexity"); goto done; }
    if (!cli_lora_apply("perplexity", c, m, ctx, &loras)) goto done;
    if (herd_perplexity(ctx, text, len, &p, stdout, stderr, NULL) != HERD_OK) { cli_fail_lib("perplexity"); goto done; }
    rc = 0;
done:
    free(text);
    herd_context_free(ctx);
    cli_lora_free(loras, c->n_lora);
    herd_model_free(m);
    return rc;
}

int cmd_perplexity(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    int rc = perplexity_main(&c, argc, argv);
    cli_common_free(&c);
    return rc;
}
