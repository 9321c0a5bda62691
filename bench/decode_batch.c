/* Cost of one batched decode step with B sequences: what a server's continuous batching runs per
 * generated token of each of B clients. Each of 16 sequences first gets a 32-token prompt; then, for
 * each B, STEPS forward passes of one token of each of sequences 0..B-1 (logits for all), timed, and
 * the sequences cut back to their prompts. Never part of make test.
 *
 *   make && gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -o build/bench_decode_batch bench/decode_batch.c \
 *       build/libherd.a -lmicrohttpd -lcurl -ljansson -lm -lpthread
 *   build/bench_decode_batch MODEL.gguf [THREADS (2)] [B ...]   (default B: 1 2 3 4 6 8 12 16)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "herd.h"

enum { MAX_SEQ = 16, PROMPT = 32, STEPS = 12 };

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [THREADS] [B ...]\n", argv[0]);
        return 2;
    }
    herd_model *m;
    if (herd_model_load(argv[1], &m) != HERD_OK) {
        fprintf(stderr, "bench_decode_batch: %s\n", herd_last_error());
        return 1;
    }
    herd_context_params p = herd_context_default_params();
    p.n_ctx = 512;
    p.n_seq = MAX_SEQ;
    p.n_threads = argc > 2 ? atoi(argv[2]) : 2;
    herd_context *c;
    if (herd_context_new(m, &p, &c) != HERD_OK) {
        fprintf(stderr, "bench_decode_batch: %s\n", herd_last_error());
        return 1;
    }
    int64_t nv = herd_vocab_n_tokens(m);
    float *logits = malloc(sizeof(float) * (size_t)nv * PROMPT);
    int32_t tok[PROMPT], seq[PROMPT];
    bool want[PROMPT];
    for (int s = 0; s < MAX_SEQ; s++) {
        for (int i = 0; i < PROMPT; i++) {
            tok[i] = (int32_t)((1000 + i * 7 + s) % nv);
            seq[i] = s;
            want[i] = i == PROMPT - 1;
        }
        herd_decode_batch(c, tok, seq, PROMPT, want, logits);
    }
    int def[] = {1, 2, 3, 4, 6, 8, 12, 16}, nb = argc > 3 ? argc - 3 : 8;
    printf("B  step ms  tokens/s (%d threads, %d steps each)\n", p.n_threads, STEPS);
    for (int bi = 0; bi < nb; bi++) {
        int B = argc > 3 ? atoi(argv[3 + bi]) : def[bi];
        if (B < 1 || B > MAX_SEQ) continue;
        double t0 = now_s();
        for (int st = 0; st < STEPS; st++) {
            for (int i = 0; i < B; i++) {
                tok[i] = (int32_t)((500 + st * 31 + i) % nv);
                seq[i] = i;
                want[i] = true;
            }
            if (herd_decode_batch(c, tok, seq, B, want, logits) != HERD_OK) {
                fprintf(stderr, "bench_decode_batch: %s\n", herd_last_error());
                return 1;
            }
        }
        double dt = (now_s() - t0) / STEPS;
        printf("%-2d %8.1f %9.1f\n", B, dt * 1e3, B / dt);
        fflush(stdout);
        for (int i = 0; i < MAX_SEQ; i++) herd_seq_truncate(c, i, PROMPT);
    }
    free(logits);
    herd_context_free(c);
    herd_model_free(m);
    return 0;
}
