/* herd bench -m MODEL [-p 512] [-n 128] [-d DEPTH] [-t N] [-r REPS] [--json] [-b BATCH] [--kv-type T] [--roofline]
 * llama-bench's two measurements: pp = one batch of -p prompt tokens into an empty context;
 * tg = -n tokens decoded one at a time into an empty context. Token ids are fixed pseudo-random
 * ids (no sampling: only the forward pass is timed). Each repetition uses a fresh KV state.
 * --roofline: each repetition then decodes the -n tokens again, each token followed by one plain
 * read of all the weights a token reads (herd_context_read_weights), and reports the fraction
 * sum(read times) / sum(token times): how close decode comes to streaming its weights at the
 * bandwidth the same threads get by only reading them, measured tens of milliseconds apart (the
 * machine's bandwidth can drift 2x within minutes, which a figure taken before the run would miss). */
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
    int64_t n_pp = 512, n_tg = 128, reps = 5, depth = 0;
    bool json = false, roofline = false;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("bench", &c, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (!strcmp(argv[i], "-p")) { if (!cli_i64("bench", argc, argv, &i, 0, 1 << 20, &n_pp)) return 1; }
        else if (!strcmp(argv[i], "-n")) { if (!cli_i64("bench", argc, argv, &i, 0, 1 << 20, &n_tg)) return 1; }
        else if (!strcmp(argv[i], "-r")) { if (!cli_i64("bench", argc, argv, &i, 1, 1000, &reps)) return 1; }
        else if (!strcmp(argv[i], "-d")) { if (!cli_i64("bench", argc, argv, &i, 0, 1 << 24, &depth)) return 1; }
        else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--roofline")) roofline = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return cli_help("bench");
        } else return cli_fail("bench", "unknown option '%s'", argv[i]);
    }
    if (!c.model) return cli_fail("bench", "no model given (-m MODEL)");
    if (roofline && n_tg == 0) return cli_fail("bench", "--roofline measures decode: it needs -n > 0");
    herd_model *m;
    if (herd_model_load(c.model, &m) != HERD_OK) return cli_fail_lib("bench");
    int64_t need = (n_pp > depth + n_tg ? n_pp : depth + n_tg) + 1;
    if (c.ctx.n_ctx == 0) c.ctx.n_ctx = need;
    if (c.ctx.n_batch == 0) c.ctx.n_batch = n_pp > 0 ? n_pp : depth > 0 ? 512 : 1;
    herd_context *ctx = NULL;
    herd_lora **loras = NULL;
    if (herd_context_new(m, &c.ctx, &ctx) != HERD_OK || !cli_lora_apply("bench", &c, m, ctx, &loras)) {
        if (!ctx) cli_fail_lib("bench");
        herd_context_free(ctx);
        herd_model_free(m);
        cli_common_free(&c);
        return 1;
    }
    int64_t nv = herd_vocab_n_tokens(m), n_tok = n_pp > depth + n_tg ? n_pp : depth + n_tg;
    int32_t *toks = malloc((size_t)(n_tok + 1) * sizeof *toks);
    uint64_t st = 12345;
    for (int64_t i = 0; i < n_tok; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((st >> 33) % (uint64_t)nv);
    }
    float *logits = malloc((size_t)nv * sizeof(float));
    double *pp = calloc((size_t)reps, sizeof(double)), *tg = calloc((size_t)reps, sizeof(double));
    double *rf = calloc((size_t)reps, sizeof(double)); /* per repetition: sum(read) / sum(token) */
    double rf_read = 0, rf_tok = 0;                     /* totals over the repetitions */
    uint64_t rf_bytes = 0;
    int rc = 0;
    bool filled = false; /* the cache holds the -d positions */
    /* one warm-up of each kind: page in the weights, start the threads */
    for (int64_t r = -1; r < reps && !rc; r++) {
        if (n_pp > 0) {
            herd_context_truncate(ctx, 0);
            filled = false;
            double t0 = now_s();
            if (herd_decode(ctx, toks, n_pp, HERD_LOGITS_LAST, logits) != HERD_OK) rc = cli_fail_lib("bench");
            if (r >= 0) pp[r] = (double)n_pp / (now_s() - t0);
        }
        if (n_tg > 0 && !rc) {
            /* -d: decode after depth filled positions (untimed prompt; llama-bench's -d), in batches; filled
             * once and kept across repetitions (cut back to depth), as llama-bench reuses its depth state */
            herd_context_truncate(ctx, filled ? depth : 0);
            for (int64_t i = 0; i < depth && !filled && !rc; i += c.ctx.n_batch)
                if (herd_decode(ctx, toks + i, depth - i < c.ctx.n_batch ? depth - i : c.ctx.n_batch, HERD_LOGITS_NONE, NULL) != HERD_OK)
                    rc = cli_fail_lib("bench");
            filled = !rc;
            double t0 = now_s();
            for (int64_t i = 0; i < n_tg && !rc; i++)
                if (herd_decode(ctx, toks + depth + i, 1, HERD_LOGITS_LAST, logits) != HERD_OK) rc = cli_fail_lib("bench");
            if (r >= 0) tg[r] = (double)n_tg / (now_s() - t0);
        }
        if (roofline && r >= 0 && !rc) {
            herd_context_truncate(ctx, 0);
            filled = false;
            double st_tok = 0, st_read = 0;
            for (int64_t i = 0; i < n_tg && !rc; i++) {
                double t0 = now_s();
                if (herd_decode(ctx, toks + i, 1, HERD_LOGITS_LAST, logits) != HERD_OK) rc = cli_fail_lib("bench");
                st_tok += now_s() - t0;
                st_read += herd_context_read_weights(ctx, &rf_bytes);
            }
            rf[r] = st_read / st_tok;
            rf_read += st_read;
            rf_tok += st_tok;
        }
    }
    if (!rc) {
        double ppm, pps, tgm, tgs, rfm, rfs;
        mean_sd(pp, (int)reps, &ppm, &pps);
        mean_sd(tg, (int)reps, &tgm, &tgs);
        mean_sd(rf, (int)reps, &rfm, &rfs);
        /* the fraction is the pooled sum(read) / sum(token) (one slow repetition on a busy machine must not
         * dominate it, as it would a mean of ratios); the sd is the repetitions' spread */
        if (roofline && rf_tok > 0) rfm = rf_read / rf_tok;
        /* the roofline's bandwidth and tokens/s, and decode's tokens/s while measured against it */
        double rf_gbs = roofline ? (double)rf_bytes * (double)(n_tg * reps) / rf_read / 1e9 : 0,
               rf_tps = roofline ? (double)(n_tg * reps) / rf_read : 0, rf_dec = roofline ? (double)(n_tg * reps) / rf_tok : 0;
        herd_model_info in;
        herd_model_get_info(m, &in);
        int threads = c.ctx.n_threads ? c.ctx.n_threads : herd_default_threads(NULL, 0);
        if (json) {
            json_t *o = json_pack("{s:s, s:i, s:{s:I, s:f, s:f}, s:{s:I, s:f, s:f}, s:I}", "model", c.model, "threads",
                                  threads, "pp", "n_tokens", (json_int_t)n_pp, "tokens_per_s", ppm, "sd", pps, "tg",
                                  "n_tokens", (json_int_t)n_tg, "tokens_per_s", tgm, "sd", tgs, "decode_bytes",
                                  (json_int_t)in.decode_bytes);
            if (roofline)
                json_object_set_new(o, "roofline",
                                    json_pack("{s:f, s:f, s:f, s:f, s:f}", "fraction", rfm, "sd", rfs, "read_gb_per_s",
                                              rf_gbs, "read_tokens_per_s", rf_tps, "tokens_per_s", rf_dec));
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
            if (roofline)
                printf("| %s | %s | %.2f B | %d | tg%lld / roofline | %.1f ± %.1f %% (%.2f t/s against %.2f t/s: a read "
                       "of the weights at %.1f GB/s) |\n",
                       c.model, herd_type_name(in.weight_type), (double)in.n_params / 1e9, threads, (long long)n_tg,
                       100 * rfm, 100 * rfs, rf_dec, rf_tps, rf_gbs);
        }
    }
    free(pp);
    free(tg);
    free(rf);
    free(logits);
    free(toks);
    herd_context_free(ctx);
    cli_lora_free(loras, c.n_lora);
    herd_model_free(m);
    cli_common_free(&c);
    return rc;
}
