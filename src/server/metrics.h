/* Prometheus metrics of the server: requests by route and status, tokens, time to first token and
 * per-token latency histograms, and the engine's gauges (active/queued requests, KV cache use). */
#ifndef HERD_SERVER_METRICS_H
#define HERD_SERVER_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../engine/engine.h"

#define METRICS_MAX_SERIES 64
#define METRICS_BUCKETS 12

typedef struct {
    double le[METRICS_BUCKETS]; /* upper bounds; the last is +Inf */
    uint64_t count[METRICS_BUCKETS];
    double sum;
    uint64_t n;
} histogram;

typedef struct {
    pthread_mutex_t mu;
    struct {
        const char *route; /* static string */
        int status;
        uint64_t n;
    } req[METRICS_MAX_SERIES];
    int n_req;
    uint64_t prompt_tokens, generated_tokens;
    histogram ttft, token_latency;
    /* Llama Guard verdicts (safe / unsafe) and the categories of unsafe ones */
    struct {
        char key[40];
        bool category;
        uint64_t n;
    } shield[METRICS_MAX_SERIES];
    int n_shield;
    /* Prompt Guard verdicts: [guard type: 0 injection, 1 jailbreak][0 safe, 1 violation] */
    uint64_t prompt_guard[2][2];
} metrics;

void metrics_init(metrics *m);
void metrics_free(metrics *m);
void metrics_request(metrics *m, const char *route, int status);
void metrics_ttft(metrics *m, double seconds);
void metrics_token_latency(metrics *m, double seconds);
void metrics_tokens(metrics *m, int64_t prompt, int64_t generated);
/* One guard verdict ("safe" / "unsafe"), or one violated category of one (pass the other NULL). */
void metrics_shield(metrics *m, const char *verdict, const char *category);
/* One Prompt Guard verdict under its guard type. */
void metrics_prompt_guard(metrics *m, bool jailbreak, bool violation);
/* The Prometheus text exposition (malloc'd). */
char *metrics_render(metrics *m, const engine_stats *es);

#endif
