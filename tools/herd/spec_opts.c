/* The speculative-decoding options of run and chat: --draft MODEL, --draft-max N, --draft-min N,
 * --draft-p-min P, --lookup N (see cli.h, src/spec/spec.h). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_spec_init(cli_spec *sp) {
    memset(sp, 0, sizeof *sp);
    sp->draft_max = 16;
}

int cli_spec_opt(const char *cmd, cli_spec *sp, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    int64_t v;
    if (!strcmp(a, "--draft") || !strcmp(a, "-md") || !strcmp(a, "--model-draft"))
        return cli_str(cmd, argc, argv, i, &sp->draft_path) ? 1 : -1;
    if (!strcmp(a, "--draft-max")) {
        if (!cli_i64(cmd, argc, argv, i, 1, 256, &sp->draft_max)) return -1;
        return 1;
    }
    if (!strcmp(a, "--draft-min")) {
        if (!cli_i64(cmd, argc, argv, i, 0, 256, &sp->draft_min)) return -1;
        return 1;
    }
    if (!strcmp(a, "--draft-p-min")) return cli_f32(cmd, argc, argv, i, 0.0f, 1.0f, &sp->p_min) ? 1 : -1;
    if (!strcmp(a, "--lookup")) {
        if (!cli_i64(cmd, argc, argv, i, 1, 64, &v)) return -1;
        sp->lookup = (int)v;
        return 1;
    }
    return 0;
}

bool cli_spec_load(const char *cmd, cli_spec *sp, const herd_model *target, herd_context *tctx,
                   const herd_context_params *cp) {
    if (sp->draft_path && sp->lookup > 0) {
        cli_fail(cmd, "give --draft MODEL or --lookup N, not both");
        return false;
    }
    if (sp->draft_min > sp->draft_max) {
        cli_fail(cmd, "--draft-min %lld is larger than --draft-max %lld", (long long)sp->draft_min,
                 (long long)sp->draft_max);
        return false;
    }
    if (!sp->draft_path) return true;
    if (herd_model_load(sp->draft_path, &sp->model) != HERD_OK) {
        cli_fail(cmd, "draft model: %s", herd_last_error());
        return false;
    }
    if (herd_vocab_compatible(target, sp->model) != HERD_OK) {
        cli_fail(cmd, "--draft %s: %s", sp->draft_path, herd_last_error());
        return false;
    }
    herd_context_params dp = *cp;
    dp.n_ctx = herd_context_n_ctx(tctx);
    dp.n_seq = 1;
    dp.kv_type = HERD_KV_AUTO;
    if (herd_context_new(sp->model, &dp, &sp->ctx) != HERD_OK) {
        cli_fail(cmd, "draft model: %s", herd_last_error());
        return false;
    }
    return true;
}

void cli_spec_params(const cli_spec *sp, herd_generate_params *gp) {
    gp->draft = sp->ctx;
    gp->lookup_ngram = sp->lookup;
    gp->draft_max = sp->draft_max;
    gp->draft_min = sp->draft_min;
    gp->draft_p_min = sp->p_min;
}

void cli_spec_stats(const herd_generate_result *r, char *buf, size_t cap) {
    buf[0] = 0;
    if (r->n_spec_steps == 0 && r->n_drafted == 0) return;
    snprintf(buf, cap, ", drafted %lld, accepted %lld (%.1f%%) in %lld steps", (long long)r->n_drafted,
             (long long)r->n_accepted, r->n_drafted ? 100.0 * (double)r->n_accepted / (double)r->n_drafted : 0.0,
             (long long)r->n_spec_steps);
}

void cli_spec_free(cli_spec *sp) {
    herd_context_free(sp->ctx);
    herd_model_free(sp->model);
    sp->ctx = NULL;
    sp->model = NULL;
}
