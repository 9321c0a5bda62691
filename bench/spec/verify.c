/* Cost of verifying k drafted tokens relative to one decode step (speculative decoding, src/spec/):
 * after a PROMPT-token prompt, the time of one forward pass over k + 1 tokens with logits for all of
 * them (what herd_generate runs per speculative step: the pending token and k drafts), divided by
 * the time of one single-token decode step; the cache is cut back after each pass. Decode is bound by
 * reading the weights, so small k should cost close to 1x. Never part of make test.
 *
 *   make && gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -o build/bench_spec_verify bench/spec/verify.c \
 *       build/libherd.a -lmicrohttpd -lcurl -ljansson -lm -lpthread
 *   build/bench_spec_verify MODEL.gguf [THREADS (2)] [REPS (5)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "herd.h"

enum { PROMPT = 128, KMAX = 16 };

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [THREADS] [REPS]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 2, reps = argc > 3 ? atoi(argv[3]) : 5;
    herd_model *m;
    if (herd_model_load(argv[1], &m) != HERD_OK) {
        fprintf(stderr, "%s\n", herd_last_error());
        return 1;
    }
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = PROMPT + KMAX + 8;
    cp.n_threads = threads;
    herd_context *c;
    if (herd_context_new(m, &cp, &c) != HERD_OK) {
        fprintf(stderr, "%s\n", herd_last_error());
        return 1;
    }
    int32_t nv = herd_vocab_n_tokens(m), toks[PROMPT + KMAX + 1];
    for (int i = 0; i < PROMPT + KMAX + 1; i++) toks[i] = (int32_t)((i * 7919 + 13) % nv);
    float *logits = malloc(sizeof(float) * (size_t)nv * (KMAX + 1));
    herd_decode(c, toks, PROMPT, HERD_LOGITS_NONE, NULL);
    double t[KMAX + 1], base = 0, *sam = malloc(sizeof(double) * (size_t)reps);
    for (int k = 0; k <= KMAX; k++) { /* k = 0: one plain decode step */
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now_s();
            herd_decode(c, toks + PROMPT, k + 1, HERD_LOGITS_ALL, logits);
            double dt = now_s() - t0;
            herd_context_truncate(c, PROMPT);
            if (r > 0) sam[r - 1] = dt; /* the first is a warm-up */
        }
        qsort(sam, (size_t)reps, sizeof *sam, cmp_d);
        t[k] = sam[reps / 2];
        if (k == 0) base = t[0];
    }
    printf("| k drafted | tokens in the pass | ms (median of %d) | x one decode step |\n|---|---|---|---|\n", reps);
    for (int k = 0; k <= KMAX; k++)
        printf("| %d | %d | %.2f | %.2f |\n", k, k + 1, t[k] * 1e3, t[k] / base);
    free(sam);
    free(logits);
    herd_context_free(c);
    herd_model_free(m);
    return 0;
}
