/* herd bench -m MODEL [-p 512] [-n 128] [-t N] [-r REPS] [--json] [-b BATCH] [--kv-type f32|f16]
 * llama-bench's two measurements: pp = one batch of -p prompt tokens into an empty context;
 * tg = -n tokens decoded one at a time into an empty context. Token ids are fixed pseudo-random
 * ids (no sampling: only the forward pass is timed). Each repetition uses a fresh KV state. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

int cmd_bench(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    int64_t n_pp = 512, n_tg = 128, reps = 5;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("bench", &c, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (!strcmp(argv[i], "-p")) { if (!cli_i64("bench", argc, argv, &i, 0, 1 << 20, &n_pp)) return 1; }
        else if (!strcmp(argv[i], "-n")) { if (!cli_i64("bench", argc, argv, &i, 0, 1 << 20, &n_tg)) return 1; }
        else if (!strcmp(argv[i], "-r")) { if (!cli_i64("bench", argc, argv, &i, 1, 1000, &reps)) return 1; }
        else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: herd bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r REPS] [-b BATCH] [--kv-type f32|f16] [--json]\n"
                   "  pp: one batch of -p tokens; tg: -n tokens one at a time; tokens/s as mean +- sd over -r runs\n");
            return 0;
        } else return cli_fail("bench", "unknown option '%s'", argv[i]);
    }
    if (!c.model) return cli_fail("bench", "no model given (-m MODEL)");
    herd_model *m;
    if (herd_model_load(c.model, &m) != HERD_OK) return cli_fail_lib("bench");
    int64_t need = (n_pp > n_tg ? n_pp : n_tg) + 1;
    if (c.ctx.n_ctx == 0) c.ctx.n_ctx = need;
    if (c.ctx.n_batch == 0) c.ctx.n_batch = n_pp > 0 ? n_pp : 1;
    herd_context *ctx;
    if (herd_context_new(m, &c.ctx, &ctx) != HERD_OK) {
        herd_model_free(m);
        return cli_fail_lib("bench");
    }
    int64_t nv = herd_vocab_n_tokens(m), n_tok = n_pp > n_tg ? n_pp : n_tg;
    int32_t *toks = malloc((size_t)(n_tok + 1) * sizeof *toks);
    uint64_t st = 12345;
    for (int64_t i = 0; i < n_tok; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((st >> 33) % (uint64_t)nv);
    }
    float *logits = malloc((size_t)nv * sizeof(float));
    double *pp = calloc((size_t)reps, sizeof(double)), *tg = calloc((size_t)reps, sizeof(double));
    int rc = 0;
    /* one warm-up of each kind: page in the weights, start the threads */
    for (int64_t r = -1; r < reps && !rc; r++) {
        if (n_pp > 0) {
            herd_context_truncate(ctx, 0);
            double t0 = now_s();
            if (herd_decode(ctx, toks, n_pp, HERD_LOGITS_LAST, logits) != HERD_OK) rc = cli_fail_lib("bench");
            if (r >= 0) pp[r] = (double)n_pp / (now_s() - t0);
        }
        if (n_tg > 0 && !rc) {
            herd_context_truncate(ctx, 0);
            double t0 = now_s();
            for (int64_t i = 0; i < n_tg && !rc; i++)
                if (herd_decode(ctx, toks + i, 1, HERD_LOGITS_LAST, logits) != HERD_OK) rc = cli_fail_lib("bench");
            if (r >= 0) tg[r] = (double)n_tg / (now_s() - t0);
        }
    }
    if (!rc) {
        double ppm, pps, tgm, tgs;
        mean_sd(pp, (int)reps, &ppm, &pps);
        mean_sd(tg, (int)reps, &tgm, &tgs);
        herd_model_info in;
        herd_model_get_info(m, &in);
        int threads = c.ctx.n_threads ? c.ctx.n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (json) {
            json_t *o = json_pack("{s:s, s:i, s:{s:I, s:f, s:f}, s:{s:I, s:f, s:f}, s:I}", "model", c.model, "threads",
                                  threads, "pp", "n_tokens", (json_int_t)n_pp, "tokens_per_s", ppm, "sd", pps, "tg",
                                  "n_tokens", (json_int_t)n_tg, "tokens_per_s", tgm, "sd", tgs, "decode_bytes",
                                  (json_int_t)in.decode_bytes);
            char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
            puts(s);
            free(s);
            json_decref(o);
        } else {
            printf("| model | type | params | threads | test | t/s |\n|---|---|---|---|---|---|\n");
            if (n_pp > 0)
                printf("| %s | %s | %.2f B | %d | pp%lld | %.2f ± %.2f |\n", c.model, herd_type_name(in.weight_type),
                       (double)in.n_params / 1e9, threads, (long long)n_pp, ppm, pps);
            if (n_tg > 0)
                printf("| %s | %s | %.2f B | %d | tg%lld | %.2f ± %.2f |\n", c.model, herd_type_name(in.weight_type),
                       (double)in.n_params / 1e9, threads, (long long)n_tg, tgm, tgs);
        }
    }
    free(pp);
    free(tg);
    free(logits);
    free(toks);
    herd_context_free(ctx);
    herd_model_free(m);
    return rc;
}
