/* herd side of bench/guard: Llama Guard verdict latency (herd_guard_run: prompt + constrained greedy
 * verdict) on one conversation, the model loaded once, one warm-up run then REPS timed ones.
 *   build/bench_guard MODEL MESSAGES.json THREADS REPS
 * Prints {"prompt_tokens", "generated", "latency_s" (mean), "latency_sd", "prompt_s", "gen_s", "verdict"}. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "herd.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: bench_guard MODEL MESSAGES.json THREADS REPS\n");
        return 2;
    }
    int threads = atoi(argv[3]), reps = atoi(argv[4]);
    FILE *f = fopen(argv[2], "rb");
    if (!f) return perror(argv[2]), 1;
    char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    herd_chat_message *msgs;
    size_t n;
    void *owner;
    herd_model *m;
    herd_context *c;
    herd_context_params cp = herd_context_default_params();
    cp.n_threads = threads;
    cp.n_ctx = 1024;
    if (herd_chat_parse_messages(buf, len, &msgs, &n, &owner) || herd_model_load(argv[1], &m) ||
        herd_context_new(m, &cp, &c)) {
        fprintf(stderr, "bench_guard: %s\n", herd_last_error());
        return 1;
    }
    double sum = 0, sum2 = 0, ps = 0, gs = 0;
    herd_guard_result r = {0};
    for (int i = -1; i < reps; i++) {
        herd_guard_result_free(&r);
        if (herd_guard_run(c, msgs, n, NULL, &r)) {
            fprintf(stderr, "bench_guard: %s\n", herd_last_error());
            return 1;
        }
        if (i < 0) continue;
        double t = r.prompt_seconds + r.gen_seconds;
        sum += t, sum2 += t * t, ps += r.prompt_seconds, gs += r.gen_seconds;
    }
    double mean = sum / reps, sd = reps > 1 ? sqrt(fmax(0, (sum2 - reps * mean * mean) / (reps - 1))) : 0;
    printf("{\"prompt_tokens\":%lld,\"generated\":%lld,\"latency_s\":%.6f,\"latency_sd\":%.6f,\"prompt_s\":%.6f,"
           "\"gen_s\":%.6f,\"verdict\":\"%s\"}\n",
           (long long)r.n_prompt, (long long)r.n_generated, mean, sd, ps / reps, gs / reps, r.unsafe ? "unsafe" : "safe");
    herd_guard_result_free(&r);
    herd_context_free(c);
    herd_model_free(m);
    herd_chat_messages_free(owner);
    return 0;
}
