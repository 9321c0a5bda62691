/* herd_imatrix: llama.cpp's llama-imatrix (tools/imatrix/imatrix.cpp in the bundled source), collecting the
 * same statistics in the same file formats (src/quant/imatrix.h).
 *
 * What llama-imatrix collects, and how herd gets the same numbers:
 *   - which matrices: every matrix multiplication whose weight's name starts with "blk." (and output.weight
 *     with --process-output), from graph passes of at least 16 tokens ("small batches" are ignored). herd's
 *     forward pass shows its observer (forward.h) each matmul's input before the matmul; Q, K and V (gate and
 *     up) share one input, and each of them gets its own entry with the same sums, as in llama.cpp.
 *   - what: per input column j, sums[j] += x[j]^2 over the tokens in batch order, in F32; count += tokens.
 *     llama.cpp's passes are its ubatches (512 tokens by default); herd's are the context's n_batch (512 by
 *     default), so the same tokens enter the sums in the same order. The sums differ from llama.cpp's only by
 *     the activations' own differences (herd's logits agree with llama.cpp's to ~1e-6 on F32 weights).
 *   - windows ("chunks"): the text tokenized with BOS, cut into n_ctx-token windows, each window's first token
 *     replaced by BOS, each run from an empty cache. At least 2 windows of text, as llama-imatrix demands.
 *     chunk_count in the file is max count / n_ctx.
 * llama-imatrix also scores perplexity on the windows (its "[i]ppl" lines; herd perplexity does that): herd
 * asks for no logits, so the output matrix is skipped unless --process-output needs its input.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "../model/forward.h"
#include "../model/model.h"
#include "../quant/imatrix.h"
#include "api_context.h"
#include "herd.h"

/* llama-imatrix ignores matmuls of fewer tokens ("why are small batches ignored (<16 tokens)?") */
#define IMATRIX_MIN_TOKENS 16

typedef struct {
    const weight *w;
    float *sums;   /* [w->n_in] */
    int64_t count; /* tokens summed */
} col_entry;

typedef struct {
    bool process_output;
    col_entry *e;
    int64_t n, cap;
    const char *bad; /* the first matrix whose sums went non-finite, or NULL */
} collector;

static bool wanted(const collector *c, const char *name) {
    return name && (strncmp(name, "blk.", 4) == 0 || (c->process_output && strcmp(name, "output.weight") == 0));
}

static col_entry *entry_of(collector *c, const weight *w) {
    for (int64_t i = 0; i < c->n; i++)
        if (c->e[i].w == w) return &c->e[i];
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->e = realloc(c->e, (size_t)c->cap * sizeof *c->e);
        HERD_ASSERT(c->e);
    }
    col_entry *e = &c->e[c->n++];
    e->w = w;
    e->sums = herd_xcalloc((size_t)w->n_in, sizeof *e->sums);
    e->count = 0;
    return e;
}

/* forward_observer: x [n][ldx] is the input of the n_w matrices w */
static void on_matmul_input(void *ctx, const weight *const *w, int n_w, const float *x, int64_t ldx, int64_t n) {
    collector *c = ctx;
    if (n < IMATRIX_MIN_TOKENS) return;
    for (int k = 0; k < n_w; k++) {
        if (!wanted(c, w[k]->name)) continue;
        col_entry *e = entry_of(c, w[k]);
        const int64_t n_in = w[k]->n_in;
        float *acc = e->sums;
        for (int64_t t = 0; t < n; t++) {
            const float *xr = x + t * ldx;
            for (int64_t j = 0; j < n_in; j++) acc[j] += xr[j] * xr[j];
        }
        e->count += n;
        if (!c->bad)
            for (int64_t j = 0; j < n_in; j++)
                if (!isfinite(acc[j])) {
                    c->bad = w[k]->name;
                    break;
                }
    }
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const imatrix_entry *)a)->name, ((const imatrix_entry *)b)->name);
}

/* The collected statistics as an imatrix (borrowing the sums) and written to path. */
static int save(const collector *c, const herd_imatrix_params *p, const char *path) {
    imatrix im = {0};
    im.n = c->n;
    im.e = herd_xcalloc((size_t)(c->n ? c->n : 1), sizeof *im.e);
    int64_t max_count = 0;
    for (int64_t i = 0; i < c->n; i++) {
        im.e[i].name = (char *)c->e[i].w->name;
        im.e[i].sums = c->e[i].sums;
        im.e[i].n_sums = c->e[i].w->n_in;
        im.e[i].counts = (int64_t *)&c->e[i].count;
        im.e[i].n_counts = 1;
        if (c->e[i].count > max_count) max_count = c->e[i].count;
    }
    qsort(im.e, (size_t)im.n, sizeof *im.e, by_name);
    char *ds[1] = {(char *)p->dataset};
    im.datasets = ds;
    im.n_datasets = p->dataset ? 1 : 0;
    im.chunk_size = p->n_ctx;
    im.chunk_count = max_count / p->n_ctx;
    int rc = imatrix_save(&im, path, p->dat);
    free(im.e);
    return rc;
}

herd_imatrix_params herd_imatrix_default_params(void) {
    return (herd_imatrix_params){.n_ctx = 512, .n_chunks = -1, .process_output = false, .dataset = NULL, .dat = false,
                                 .save_every = 0};
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int herd_imatrix(herd_context *c, const char *text, size_t len, const herd_imatrix_params *pp, const char *out_path,
                 FILE *log) {
    herd_imatrix_params p = pp ? *pp : herd_imatrix_default_params();
    if (!log) log = stderr;
    const herd_model *m = herd_context_model(c);
    const int64_t n_ctx = p.n_ctx, n_vocab = herd_vocab_n_tokens(m);
    if (n_ctx < 1) return herd_err(HERD_E_ARG, "imatrix: the window (-c) must be at least 1 token");
    if (herd_context_n_ctx(c) < n_ctx)
        return herd_err(HERD_E_ARG, "imatrix: the context holds %lld tokens, less than the window of %lld",
                        (long long)herd_context_n_ctx(c), (long long)n_ctx);
    const bool add_bos = herd_vocab_add_bos(m);
    const int32_t bos = herd_vocab_bos(m);
    fprintf(log, "imatrix: tokenizing the input ..\n");
    int32_t *tokens = NULL;
    int64_t n_tokens = 0;
    double t0 = now_s();
    int rc = herd_tokenize(m, text, len, add_bos ? HERD_TOKENIZE_ADD_BOS : 0, &tokens, &n_tokens);
    if (rc) return rc;
    fprintf(log, "imatrix: tokenization took %g ms\n", 1e3 * (now_s() - t0));
    if (n_tokens < 2 * n_ctx) {
        free(tokens);
        return herd_err(HERD_E_RANGE, "imatrix: you need at least %lld tokens for a context of %lld tokens, and the "
                        "text tokenizes to only %lld", (long long)(2 * n_ctx), (long long)n_ctx, (long long)n_tokens);
    }
    const int64_t n_chunk_max = n_tokens / n_ctx;
    const int64_t n_chunk = p.n_chunks < 0 ? n_chunk_max : (p.n_chunks < n_chunk_max ? p.n_chunks : n_chunk_max);
    forward_state *fs = api_context_forward(c);
    const int64_t nb = forward_n_batch(fs);
    int32_t *tok = malloc((size_t)n_ctx * sizeof *tok);
    bool *want = p.process_output ? malloc((size_t)nb * sizeof *want) : NULL;
    float *logits = p.process_output ? malloc((size_t)nb * (size_t)n_vocab * sizeof *logits) : NULL;
    collector col = {.process_output = p.process_output};
    if (!tok || (p.process_output && (!want || !logits))) {
        rc = herd_err(HERD_E_NOMEM, "imatrix: out of memory for a window");
        goto done;
    }
    for (int64_t i = 0; want && i < nb; i++) want[i] = true;
    fprintf(log, "imatrix: computing over %lld chunks, n_ctx=%lld, batch_size=%lld, n_seq=1\n", (long long)n_chunk,
            (long long)n_ctx, (long long)nb);
    const forward_observer obs = {&col, on_matmul_input};
    forward_set_observer(fs, &obs);
    double t_start = now_s();
    for (int64_t i = 0; i < n_chunk && !rc; i++) {
        double ts = now_s();
        memcpy(tok, tokens + i * n_ctx, (size_t)n_ctx * sizeof *tok);
        if (add_bos) tok[0] = bos;
        herd_seq_truncate(c, 0, 0);
        for (int64_t off = 0; off < n_ctx; off += nb) {
            int64_t k = n_ctx - off < nb ? n_ctx - off : nb;
            forward_batch(fs, tok + off, NULL, k, want, logits);
        }
        if (col.bad) {
            rc = herd_err(HERD_E_FORMAT, "imatrix: non-finite activations entered the sums of %s (window %lld)", col.bad,
                          (long long)i + 1);
            break;
        }
        if (i == 0) {
            double t = now_s() - ts;
            fprintf(log, "imatrix: %.2f seconds per pass - ETA %.2f minutes\n", t, t * (double)n_chunk / 60.0);
        }
        if (p.save_every > 0 && (i + 1) % p.save_every == 0 && i + 1 < n_chunk) rc = save(&col, &p, out_path);
    }
    forward_set_observer(fs, NULL);
    herd_seq_truncate(c, 0, 0);
    if (!rc) {
        double t = now_s() - t_start;
        fprintf(log, "imatrix: %lld tokens in %.2f s (%.1f tokens/s)\n", (long long)(n_chunk * n_ctx), t,
                t > 0 ? (double)(n_chunk * n_ctx) / t : 0.0);
        rc = save(&col, &p, out_path);
        if (!rc)
            fprintf(log, "imatrix: stored collected data after %lld chunks in %s (%lld matrices)\n",
                    (long long)(n_chunk), out_path, (long long)col.n);
    }
done:
    for (int64_t i = 0; i < col.n; i++) free(col.e[i].sums);
    free(col.e);
    free(tok);
    free(want);
    free(logits);
    free(tokens);
    return rc;
}

int herd_imatrix_show(const char *path, FILE *out) {
    imatrix im;
    int rc = imatrix_load(path, &im);
    if (rc) return rc;
    fprintf(out, "%s: %s imatrix, %lld entries, %lld chunks of %lld tokens\n", path, im.legacy ? ".dat" : "GGUF",
            (long long)im.n, (long long)im.chunk_count, (long long)im.chunk_size);
    for (int64_t i = 0; i < im.n_datasets; i++) fprintf(out, "dataset: %s\n", im.datasets[i]);
    for (int64_t i = 0; i < im.n; i++) {
        const imatrix_entry *e = &im.e[i];
        double s = 0;
        for (int64_t j = 0; j < e->n_sums; j++) s += e->sums[j];
        fprintf(out, "%-40s %8lld values %3lld matrices  %s %-8lld  mean %.6g\n", e->name, (long long)e->n_sums,
                (long long)e->n_counts, im.legacy ? "ncall" : "count", (long long)e->counts[0],
                e->n_sums ? s / (double)e->n_sums : 0.0);
    }
    imatrix_clear(&im);
    return HERD_OK;
}
