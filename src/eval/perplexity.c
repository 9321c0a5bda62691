/* herd eval: perplexity and KL divergence exactly as llama.cpp's tools/perplexity/perplexity.cpp computes
 * them (its perplexity() and kl_divergence()), through the public API (herd_decode_batch), so that
 * `herd perplexity` prints the numbers llama-perplexity prints, in the lines it prints them.
 *
 * The method: the text is tokenized once (BOS first when the vocabulary adds one); window w is tokens
 * [w * n_ctx, (w + 1) * n_ctx) with its first token replaced by BOS, run from an empty cache; of its logits
 * only positions i in [n_ctx/2, n_ctx - 1) are scored, each against token i + 1 of the window. The running
 * value is exp(mean nll) over every scored token so far; the final error is
 * PPL * sqrt((mean(nll^2) - mean(nll)^2) / (count - 1)).
 *
 * Streams follow llama.cpp's: what it LOGs (the [i] values, the KL table and statistics) goes to `out`
 * (its stdout), what it LOG_INFs (progress, "Final estimate") to `log` (its stderr).
 *
 * llama.cpp runs n_batch / n_ctx windows side by side as separate sequences; every window starts from an
 * empty cache either way, so one window at a time gives the same numbers (and herd's batches are one
 * window's n_batch-token slices). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/file.h"
#include "../base/log.h"
#include "kld_file.h"
#include "tasks.h"
#include "herd.h"

herd_perplexity_params herd_perplexity_default_params(void) {
    herd_perplexity_params p = {.n_ctx = 512, .n_chunks = -1, .kld_base = NULL, .kl_divergence = false, .output_type = 0, .hellaswag = false, .hellaswag_tasks = 400, .winogrande = false, .winogrande_tasks = 0,
                                .multiple_choice = false, .multiple_choice_tasks = 0};
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs one window (n_ctx tokens, the first replaced by BOS when add_bos) from an empty cache of sequence 0
 * and writes the logits of positions [n_ctx/2, n_ctx - 1) to logits ((n_ctx - 1 - n_ctx/2) rows of n_vocab). */
static int run_window(herd_context *c, const int32_t *win, int64_t n_ctx, bool add_bos, int32_t bos, int32_t *tok,
                      int32_t *seq, bool *want, float *logits) {
    const int64_t first = n_ctx / 2;
    memcpy(tok, win, (size_t)n_ctx * sizeof *tok);
    if (add_bos) tok[0] = bos;
    for (int64_t i = 0; i < n_ctx; i++) seq[i] = 0, want[i] = i >= first && i < n_ctx - 1;
    herd_seq_truncate(c, 0, 0);
    return herd_decode_batch(c, tok, seq, n_ctx, want, logits);
}

/* llama.cpp's log_softmax(n_vocab, logits, tok).log_softmax: log p(tok), in its mix of float and double */
static double log_softmax_tok(int64_t n_vocab, const float *logits, int32_t tok) {
    float max_logit = logits[0];
    for (int64_t i = 1; i < n_vocab; ++i) max_logit = fmaxf(max_logit, logits[i]);
    double sum_exp = 0.0;
    for (int64_t i = 0; i < n_vocab; ++i) sum_exp += expf(logits[i] - max_logit);
    return (double)(logits[tok] - max_logit) - log(sum_exp);
}

static void print_eta(FILE *out, FILE *log, double t_pass, int64_t n_chunk) {
    fprintf(log, "perplexity: %.2f seconds per pass - ETA ", t_pass);
    fflush(log);
    int total_seconds = (int)(t_pass * (double)n_chunk);
    if (total_seconds >= 60 * 60) {
        fprintf(out, "%d hours ", total_seconds / (60 * 60));
        total_seconds = total_seconds % (60 * 60);
    }
    fprintf(out, "%.2f minutes\n", total_seconds / 60.0);
    fflush(out);
}

/* ---- perplexity (optionally writing a KL base file) ---- */

static int perplexity_run(herd_context *c, const char *text, size_t len, const herd_perplexity_params *p, FILE *out,
                          FILE *log, double *ppl_out) {
    const herd_model *m = herd_context_model(c);
    const int64_t n_ctx = p->n_ctx, n_vocab = herd_vocab_n_tokens(m), first = n_ctx / 2;
    const bool add_bos = herd_vocab_add_bos(m);
    const int32_t bos = herd_vocab_bos(m);
    if (n_ctx < 4) return herd_err(HERD_E_ARG, "perplexity: the window (-c) must be at least 4 tokens, not %lld",
                                   (long long)n_ctx);
    if (herd_context_n_ctx(c) < n_ctx)
        return herd_err(HERD_E_ARG, "perplexity: the context holds %lld tokens, less than the window of %lld",
                        (long long)herd_context_n_ctx(c), (long long)n_ctx);
    fprintf(log, "perplexity: tokenizing the input ..\n");
    int32_t *tokens = NULL;
    int64_t n_tokens = 0;
    double t0 = now_s();
    int rc = herd_tokenize(m, text, len, add_bos ? HERD_TOKENIZE_ADD_BOS : 0, &tokens, &n_tokens);
    if (rc) return rc;
    fprintf(log, "perplexity: tokenization took %g ms\n", 1e3 * (now_s() - t0));
    if (n_tokens < 2 * n_ctx) {
        free(tokens);
        return herd_err(HERD_E_RANGE, "perplexity: you need at least %lld tokens to evaluate perplexity with a "
                        "context of %lld, and the text tokenizes to only %lld", (long long)(2 * n_ctx),
                        (long long)n_ctx, (long long)n_tokens);
    }
    const int64_t n_chunk_max = n_tokens / n_ctx;
    const int64_t n_chunk = p->n_chunks < 0 ? n_chunk_max : (p->n_chunks < n_chunk_max ? p->n_chunks : n_chunk_max);
    const int64_t n_rows = n_ctx - 1 - first, nv = 2 * ((n_vocab + 1) / 2) + 4;

    FILE *bf = NULL;
    char *tmp = NULL;
    uint16_t *qrow = NULL;
    float *logits = malloc((size_t)n_rows * (size_t)n_vocab * sizeof(float));
    int32_t *tok = malloc((size_t)n_ctx * sizeof *tok), *seq = malloc((size_t)n_ctx * sizeof *seq);
    bool *want = malloc((size_t)n_ctx * sizeof *want);
    if (!logits || !tok || !seq || !want) { rc = herd_err(HERD_E_NOMEM, "perplexity: out of memory"); goto done; }
    if (p->kld_base) {
        tmp = herd_file_temp_name(p->kld_base);
        bf = fopen(tmp, "wb");
        qrow = malloc((size_t)nv * sizeof *qrow);
        if (!bf || !qrow) { rc = herd_err(HERD_E_IO, "perplexity: cannot create '%s'", p->kld_base); goto done; }
        fprintf(log, "perplexity: saving all logits to %s\n", p->kld_base);
        if (kld_file_write_header(bf, (int32_t)n_ctx, (int32_t)n_vocab, (int32_t)n_chunk, tokens)) {
            rc = herd_err(HERD_E_IO, "perplexity: cannot write '%s'", p->kld_base);
            goto done;
        }
    }
    fprintf(log, "perplexity: calculating perplexity over %lld chunks, n_ctx=%lld, batch_size=%lld, n_seq=%d\n",
            (long long)n_chunk, (long long)n_ctx, (long long)n_ctx, 1);
    double nll = 0.0, nll2 = 0.0;
    int64_t count = 0;
    for (int64_t i = 0; i < n_chunk; i++) {
        double ts = now_s();
        rc = run_window(c, tokens + i * n_ctx, n_ctx, add_bos, bos, tok, seq, want, logits);
        if (rc) goto done;
        if (i == 0) print_eta(out, log, now_s() - ts, n_chunk);
        const int32_t *target = tokens + i * n_ctx + first + 1; /* row r predicts target[r] */
        for (int64_t r = 0; r < n_rows; r++) {
            const float *lg = logits + (size_t)r * (size_t)n_vocab;
            double v;
            if (bf) {
                v = kld_row_quantize(n_vocab, lg, qrow, target[r]);
                if (fwrite(qrow, sizeof *qrow, (size_t)nv, bf) != (size_t)nv) {
                    rc = herd_err(HERD_E_IO, "perplexity: cannot write '%s'", p->kld_base);
                    goto done;
                }
            } else {
                v = -log_softmax_tok(n_vocab, lg, target[r]);
            }
            nll += v;
            nll2 += v * v;
        }
        count += n_rows;
        if (p->output_type == 0) {
            fprintf(out, "[%lld]%.4lf,", (long long)(i + 1), exp(nll / (double)count));
        } else {
            double av = nll / (double)count, av2 = nll2 / (double)count - av * av;
            if (av2 > 0) av2 = sqrt(av2 / (double)(count - 1));
            fprintf(out, "%8lld  %.4lf  %4lf  %4lf\n", (long long)(i * n_ctx), exp(nll / (double)count), av, av2);
        }
        fflush(out);
    }
    fprintf(out, "\n");
    fflush(out);
    if (bf) {
        int wrc = fclose(bf) ? HERD_E_IO : HERD_OK;
        bf = NULL;
        if (herd_file_commit(tmp, p->kld_base, wrc)) {
            rc = herd_err(HERD_E_IO, "perplexity: cannot write '%s'", p->kld_base);
            goto done;
        }
        free(tmp);
        tmp = NULL;
    }
    nll2 /= (double)count;
    nll /= (double)count;
    const double ppl = exp(nll);
    nll2 -= nll * nll;
    if (nll2 > 0) {
        nll2 = sqrt(nll2 / (double)(count - 1));
        fprintf(log, "Final estimate: PPL = %.4lf +/- %.5lf\n", ppl, nll2 * ppl);
    } else {
        fprintf(log, "Unexpected negative standard deviation of log(prob)\n");
    }
    if (ppl_out) *ppl_out = ppl;
    rc = HERD_OK;
done:
    if (bf) fclose(bf);
    if (tmp) herd_file_commit(tmp, p->kld_base, HERD_E_IO), free(tmp);
    free(qrow), free(logits), free(tok), free(seq), free(want), free(tokens);
    return rc;
}

/* ---- KL divergence against a base file ---- */

typedef struct {
    double sum_nll, sum_nll2, sum_nll_base, sum_nll_base2, sum_nll_nll_base;
    double sum_kld, sum_kld2, sum_p_diff, sum_p_diff2, sum_p_diff4;
    float max_p_diff;
    size_t n_same_top, count;
} kld_acc;

/* llama.cpp's log_softmax(n_vocab, logits, base_log_prob, tok, kld), float and double exactly as there.
 * OUT: *kld_value (this token's KL divergence), *p_diff (p(tok) - p_base(tok)). */
static void kld_token(int64_t n_vocab, const float *logits, const uint16_t *base_log_prob, int32_t tok,
                      kld_acc *kld, float *kld_value, float *p_diff_out) {
    float max_logit = logits[0];
    int64_t imax = 0;
    for (int64_t i = 1; i < n_vocab; ++i)
        if (logits[i] > max_logit) max_logit = logits[i], imax = i;
    double sum_exp = 0.0;
    for (int64_t i = 0; i < n_vocab; ++i) sum_exp += expf(logits[i] - max_logit);
    const float log_sum_exp = (float)log(sum_exp);
    float scale, min_log_prob;
    memcpy(&scale, base_log_prob, 4);
    memcpy(&min_log_prob, base_log_prob + 2, 4);
    base_log_prob += 4;

    const float nll = max_logit + log_sum_exp - logits[tok];
    kld->sum_nll += nll;
    kld->sum_nll2 += nll * nll;
    const float nll_base = -(scale * base_log_prob[tok] + min_log_prob);
    kld->sum_nll_base += nll_base;
    kld->sum_nll_base2 += nll_base * nll_base;
    kld->sum_nll_nll_base += nll * nll_base;

    max_logit += log_sum_exp;
    double sum = 0;
    int64_t imax_base = -1;
    float p_log_base_max = 0;
    for (int64_t i = 0; i < n_vocab; ++i) {
        const float p_log_base = scale * base_log_prob[i] + min_log_prob;
        if (i == 0 || p_log_base > p_log_base_max) p_log_base_max = p_log_base, imax_base = i;
        if (p_log_base > -16.f) {
            const float p_base = expf(p_log_base);
            sum += p_base * (p_log_base - logits[i] + max_logit);
        }
    }
    kld->sum_kld += sum;
    kld->sum_kld2 += sum * sum;
    ++kld->count;
    if (imax == imax_base) ++kld->n_same_top;

    const float p_base = expf(-nll_base);
    const float p = expf(-nll);
    const float p_diff = p - p_base;
    kld->sum_p_diff += p_diff;
    const double p_diff2 = p_diff * p_diff;
    kld->sum_p_diff2 += p_diff2;
    kld->sum_p_diff4 += p_diff2 * p_diff2;
    kld->max_p_diff = fmaxf(kld->max_p_diff, fabsf(p_diff));
    *kld_value = (float)sum;
    *p_diff_out = p_diff;
}

typedef struct { double v, unc; } mean_unc;

static mean_unc mean_and_uncertainty(double sum, double sum2, size_t count) {
    if (count < 1) return (mean_unc){0, 0};
    double f = sum / (double)count;
    double df = sum2 / (double)count - f * f;
    df = df > 0 && count > 10 ? sqrt(df / (double)(count - 1)) : 0.;
    return (mean_unc){f, df};
}

static double covariance(double suma, double sumb, double sumab, size_t count) {
    if (count < 10) return 0.0;
    double var = sumab / (double)count - (suma / (double)count) * (sumb / (double)count);
    var /= (double)(count - 1);
    return var;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* llama.cpp's percentile lambda (float arithmetic) over sorted values */
static float percentile(const float *values, size_t n, float fraction) {
    if (fraction <= 0) return values[0];
    if (fraction >= 1) return values[n - 1];
    float p = fraction * (float)(n - 1);
    size_t ip = (size_t)p;
    p -= (float)ip;
    return (1 - p) * values[ip] + p * values[ip + 1 < n - 1 ? ip + 1 : n - 1];
}

static float median(const float *v, size_t n) {
    return n % 2 == 0 ? 0.5f * (v[n / 2] + v[n / 2 - 1]) : v[n / 2];
}

static void kld_print_row(FILE *out, int64_t chunk, const kld_acc *kld) {
    fprintf(out, "%4lld", (long long)chunk);
    mean_unc log_ppl = mean_and_uncertainty(kld->sum_nll, kld->sum_nll2, kld->count);
    const double ppl_val = exp(log_ppl.v);
    fprintf(out, "    %9.4lf ± %9.4lf", ppl_val, ppl_val * log_ppl.unc);
    mean_unc log_ppl_base = mean_and_uncertainty(kld->sum_nll_base, kld->sum_nll_base2, kld->count);
    const double log_ppl_cov = covariance(kld->sum_nll, kld->sum_nll_base, kld->sum_nll_nll_base, kld->count);
    const double ratio = log_ppl.v - log_ppl_base.v;
    const double ratio_unc =
        sqrt(log_ppl.unc * log_ppl.unc + log_ppl_base.unc * log_ppl_base.unc - 2.0 * log_ppl_cov);
    fprintf(out, "    %10.5lf ± %10.5lf", ratio, ratio_unc);
    mean_unc kl_div = mean_and_uncertainty(kld->sum_kld, kld->sum_kld2, kld->count);
    fprintf(out, "    %10.5lf ± %10.5lf", kl_div.v, kl_div.unc);
    mean_unc p_diff_mse = mean_and_uncertainty(kld->sum_p_diff2, kld->sum_p_diff4, kld->count);
    const double rms = sqrt(p_diff_mse.v), rms_unc = 0.5 / rms * p_diff_mse.unc;
    fprintf(out, "    %6.3lf ± %6.3lf %%", 100.0 * rms, 100.0 * rms_unc);
    double p_top = 1. * (double)kld->n_same_top / (double)kld->count;
    double p_top_unc = sqrt(p_top * (1 - p_top) / (double)(kld->count - 1));
    fprintf(out, "    %6.3lf ± %6.3lf %%", 100.0 * p_top, 100.0 * p_top_unc);
    fprintf(out, "\n");
    fflush(out);
}

static void kld_print_stats(FILE *out, const kld_acc *kld, float *kv, float *pv, size_t n) {
    qsort(kv, n, sizeof *kv, cmp_float);
    qsort(pv, n, sizeof *pv, cmp_float);
    fprintf(out, "====== Perplexity statistics ======\n");
    mean_unc log_ppl = mean_and_uncertainty(kld->sum_nll, kld->sum_nll2, kld->count);
    const double ppl_val = exp(log_ppl.v), ppl_unc = ppl_val * log_ppl.unc;
    fprintf(out, "Mean PPL(Q)                   : %10.6lf ± %10.6lf\n", ppl_val, ppl_unc);
    mean_unc log_ppl_base = mean_and_uncertainty(kld->sum_nll_base, kld->sum_nll_base2, kld->count);
    const double ppl_base_val = exp(log_ppl_base.v), ppl_base_unc = ppl_base_val * log_ppl_base.unc;
    fprintf(out, "Mean PPL(base)                : %10.6lf ± %10.6lf\n", ppl_base_val, ppl_base_unc);
    const double log_ppl_cov = covariance(kld->sum_nll, kld->sum_nll_base, kld->sum_nll_nll_base, kld->count);
    const double log_ppl_cor = log_ppl_cov / (log_ppl.unc * log_ppl_base.unc);
    fprintf(out, "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2lf%%\n", 100.0 * log_ppl_cor);
    const double ratio = log_ppl.v - log_ppl_base.v;
    const double ratio_unc =
        sqrt(log_ppl.unc * log_ppl.unc + log_ppl_base.unc * log_ppl_base.unc - 2.0 * log_ppl_cov);
    fprintf(out, "Mean ln(PPL(Q)/PPL(base))     : %10.6lf ± %10.6lf\n", ratio, ratio_unc);
    const double ppl_ratio = exp(ratio);
    fprintf(out, "Mean PPL(Q)/PPL(base)         : %10.6lf ± %10.6lf\n", ppl_ratio, ppl_ratio * ratio_unc);
    const double ppl_cov = ppl_val * ppl_base_val * log_ppl_cov;
    fprintf(out, "Mean PPL(Q)-PPL(base)         : %10.6lf ± %10.6lf\n", ppl_val - ppl_base_val,
            sqrt(ppl_unc * ppl_unc + ppl_base_unc * ppl_base_unc - 2.0 * ppl_cov));
    fprintf(out, "\n");

    fprintf(out, "====== KL divergence statistics ======\n");
    mean_unc kl_div = mean_and_uncertainty(kld->sum_kld, kld->sum_kld2, kld->count);
    fprintf(out, "Mean    KLD: %10.6lf ± %10.6lf\n", kl_div.v, kl_div.unc);
    fprintf(out, "Maximum KLD: %10.6f\n", kv[n - 1]);
    fprintf(out, "99.9%%   KLD: %10.6f\n", percentile(kv, n, 0.999f));
    fprintf(out, "99.0%%   KLD: %10.6f\n", percentile(kv, n, 0.990f));
    fprintf(out, "95.0%%   KLD: %10.6f\n", percentile(kv, n, 0.950f));
    fprintf(out, "90.0%%   KLD: %10.6f\n", percentile(kv, n, 0.900f));
    fprintf(out, "Median  KLD: %10.6f\n", median(kv, n));
    fprintf(out, "10.0%%   KLD: %10.6f\n", percentile(kv, n, 0.100f));
    fprintf(out, " 5.0%%   KLD: %10.6f\n", percentile(kv, n, 0.050f));
    fprintf(out, " 1.0%%   KLD: %10.6f\n", percentile(kv, n, 0.010f));
    fprintf(out, " 0.1%%   KLD: %10.6f\n", percentile(kv, n, 0.001f));
    fprintf(out, "Minimum KLD: %10.6f\n", kv[0]);
    fprintf(out, "\n");

    fprintf(out, "====== Token probability statistics ======\n");
    mean_unc p_diff = mean_and_uncertainty(kld->sum_p_diff, kld->sum_p_diff2, kld->count);
    fprintf(out, "Mean    Δp: %6.3lf ± %5.3lf %%\n", 100.0 * p_diff.v, 100.0 * p_diff.unc);
    fprintf(out, "Maximum Δp: %6.3lf%%\n", 100.0 * pv[n - 1]);
    fprintf(out, "99.9%%   Δp: %6.3lf%%\n", 100.0 * percentile(pv, n, 0.999f));
    fprintf(out, "99.0%%   Δp: %6.3lf%%\n", 100.0 * percentile(pv, n, 0.990f));
    fprintf(out, "95.0%%   Δp: %6.3lf%%\n", 100.0 * percentile(pv, n, 0.950f));
    fprintf(out, "90.0%%   Δp: %6.3lf%%\n", 100.0 * percentile(pv, n, 0.900f));
    fprintf(out, "75.0%%   Δp: %6.3lf%%\n", 100.0 * percentile(pv, n, 0.750f));
    fprintf(out, "Median  Δp: %6.3lf%%\n", 100.0 * median(pv, n));
    fprintf(out, "25.0%%   Δp: %6.3lf%%\n", 100.0 * percentile(pv, n, 0.250f));
    fprintf(out, "10.0%%   Δp: %6.3lf%%\n", 100.0 * percentile(pv, n, 0.100f));
    fprintf(out, " 5.0%%   Δp: %6.3lf%%\n", 100.0 * percentile(pv, n, 0.050f));
    fprintf(out, " 1.0%%   Δp: %6.3lf%%\n", 100.0 * percentile(pv, n, 0.010f));
    fprintf(out, " 0.1%%   Δp: %6.3lf%%\n", 100.0 * percentile(pv, n, 0.001f));
    fprintf(out, "Minimum Δp: %6.3lf%%\n", 100.0 * pv[0]);
    mean_unc p_diff_mse = mean_and_uncertainty(kld->sum_p_diff2, kld->sum_p_diff4, kld->count);
    const double rms = sqrt(p_diff_mse.v), rms_unc = 0.5 / rms * p_diff_mse.unc;
    fprintf(out, "RMS Δp    : %6.3lf ± %5.3lf %%\n", 100.0 * rms, 100.0 * rms_unc);
    const double same_top_p = 1.0 * (double)kld->n_same_top / (double)kld->count;
    fprintf(out, "Same top p: %6.3lf ± %5.3lf %%\n", 100.0 * same_top_p,
            100.0 * sqrt(same_top_p * (1.0 - same_top_p) / (double)(kld->count - 1)));
    fflush(out);
}

static int kld_run(herd_context *c, const herd_perplexity_params *p, FILE *out, FILE *log, double *ppl_out) {
    const herd_model *m = herd_context_model(c);
    const int64_t n_vocab = herd_vocab_n_tokens(m);
    const bool add_bos = herd_vocab_add_bos(m);
    const int32_t bos = herd_vocab_bos(m);
    if (!p->kld_base) return herd_err(HERD_E_ARG, "perplexity: --kl-divergence needs --kl-divergence-base FILE");
    kld_file kf;
    int rc = kld_file_open(p->kld_base, n_vocab, &kf);
    if (rc) return rc;
    const int64_t n_ctx = kf.n_ctx, n_chunk = kf.n_chunk, n_rows = kf.n_rows, first = n_ctx / 2;
    if (herd_context_n_ctx(c) < n_ctx) {
        kld_file_close(&kf);
        return herd_err(HERD_E_ARG, "perplexity: %s has been computed with %lld, while the current context is "
                        "%lld. Increase it with -c and retry", p->kld_base, (long long)n_ctx,
                        (long long)herd_context_n_ctx(c));
    }
    float *logits = malloc((size_t)n_rows * (size_t)n_vocab * sizeof(float));
    float *kv = malloc((size_t)(n_rows * n_chunk) * sizeof(float));
    float *pv = malloc((size_t)(n_rows * n_chunk) * sizeof(float));
    uint16_t *row = malloc((size_t)kf.nv * sizeof *row);
    int32_t *tok = malloc((size_t)n_ctx * sizeof *tok), *seq = malloc((size_t)n_ctx * sizeof *seq);
    bool *want = malloc((size_t)n_ctx * sizeof *want);
    kld_acc kld;
    memset(&kld, 0, sizeof kld);
    if (!logits || !kv || !pv || !row || !tok || !seq || !want) {
        rc = herd_err(HERD_E_NOMEM, "perplexity: out of memory");
        goto done;
    }
    fprintf(log, "kl_divergence: computing over %lld chunks, n_ctx=%lld, batch_size=%lld, n_seq=%d\n",
            (long long)n_chunk, (long long)n_ctx, (long long)n_ctx, 1);
    for (int64_t i = 0; i < n_chunk; i++) {
        double ts = now_s();
        rc = run_window(c, kf.tokens + i * n_ctx, n_ctx, add_bos, bos, tok, seq, want, logits);
        if (rc) goto done;
        if (i == 0) {
            double t = now_s() - ts;
            fprintf(log, "kl_divergence: %.2f seconds per pass - ETA ", t);
            fflush(log);
            int total_seconds = (int)(t * (double)n_chunk);
            if (total_seconds >= 60 * 60) {
                fprintf(out, "%d hours ", total_seconds / (60 * 60));
                total_seconds = total_seconds % (60 * 60);
            }
            fprintf(out, "%.2f minutes\n", total_seconds / 60.0);
            fprintf(out, "\n");
            fprintf(out, "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence        "
                         "      Δp RMS            Same top p\n");
        }
        const int32_t *target = kf.tokens + i * n_ctx + first + 1;
        for (int64_t r = 0; r < n_rows; r++) {
            kld_file_row(&kf, i, r, row);
            kld_token(n_vocab, logits + (size_t)r * (size_t)n_vocab, row, target[r], &kld, &kv[i * n_rows + r],
                      &pv[i * n_rows + r]);
        }
        kld_print_row(out, i + 1, &kld);
    }
    fprintf(out, "\n");
    if (kld.count >= 100) kld_print_stats(out, &kld, kv, pv, (size_t)(n_rows * n_chunk));
    fflush(out);
    if (ppl_out) *ppl_out = exp(mean_and_uncertainty(kld.sum_nll, kld.sum_nll2, kld.count).v);
    rc = HERD_OK;
done:
    free(logits), free(kv), free(pv), free(row), free(tok), free(seq), free(want);
    kld_file_close(&kf);
    return rc;
}

int herd_kld_base_info(const char *path, int64_t *n_ctx, int64_t *n_vocab, int64_t *n_chunk) {
    kld_file kf;
    int rc = kld_file_open(path, 0, &kf);
    if (rc) return rc;
    if (n_ctx) *n_ctx = kf.n_ctx;
    if (n_vocab) *n_vocab = kf.n_vocab;
    if (n_chunk) *n_chunk = kf.n_chunk;
    kld_file_close(&kf);
    return HERD_OK;
}

int herd_perplexity(herd_context *c, const char *text, size_t len, const herd_perplexity_params *p, FILE *out,
                    FILE *log, double *ppl) {
    if (!out) out = stdout;
    if (!log) log = stderr;
    int rc = p->hellaswag       ? eval_hellaswag(c, text, len, p->hellaswag_tasks, out, log)
             : p->winogrande    ? eval_winogrande(c, text, len, p->winogrande_tasks, out, log)
             : p->multiple_choice ? eval_multiple_choice(c, text, len, p->multiple_choice_tasks, out, log)
             : p->kl_divergence ? kld_run(c, p, out, log, ppl)
                                : perplexity_run(c, text, len, p, out, log, ppl);
    if (rc == HERD_OK) fprintf(out, "\n"); /* llama-perplexity's main() ends every mode with an empty line */
    fflush(out);
    return rc;
}
