#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/strbuf.h"

static void hist_init(histogram *h, const double *le, int n) {
    memset(h, 0, sizeof *h);
    for (int i = 0; i < METRICS_BUCKETS; i++) h->le[i] = i < n ? le[i] : -1;
}

void metrics_init(metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    static const double ttft[] = {0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 1e300};
    static const double tok[] = {0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 1e300};
    hist_init(&m->ttft, ttft, 12);
    hist_init(&m->token_latency, tok, 12);
}

void metrics_free(metrics *m) {
    pthread_mutex_destroy(&m->mu);
}

void metrics_request(metrics *m, const char *route, int status) {
    pthread_mutex_lock(&m->mu);
    int i;
    for (i = 0; i < m->n_req; i++)
        if (m->req[i].status == status && strcmp(m->req[i].route, route) == 0) break;
    if (i == m->n_req && m->n_req < METRICS_MAX_SERIES) {
        m->req[i].route = route;
        m->req[i].status = status;
        m->req[i].n = 0;
        m->n_req++;
    }
    if (i < m->n_req) m->req[i].n++;
    pthread_mutex_unlock(&m->mu);
}

static void observe(metrics *m, histogram *h, double v) {
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < METRICS_BUCKETS; i++)
        if (h->le[i] >= v) {
            h->count[i]++;
            break;
        }
    h->sum += v;
    h->n++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_ttft(metrics *m, double s) { observe(m, &m->ttft, s); }
void metrics_token_latency(metrics *m, double s) { observe(m, &m->token_latency, s); }

void metrics_tokens(metrics *m, int64_t prompt, int64_t generated) {
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (uint64_t)prompt;
    m->generated_tokens += (uint64_t)generated;
    pthread_mutex_unlock(&m->mu);
}

void metrics_shield(metrics *m, const char *verdict, const char *category) {
    const char *key = verdict ? verdict : category;
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_shield && (m->shield[i].category != !verdict || strcmp(m->shield[i].key, key))) i++;
    if (i == m->n_shield && i < METRICS_MAX_SERIES) {
        snprintf(m->shield[i].key, sizeof m->shield[i].key, "%s", key);
        m->shield[i].category = !verdict;
        m->n_shield++;
    }
    if (i < m->n_shield) m->shield[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_prompt_guard(metrics *m, bool jailbreak, bool violation) {
    pthread_mutex_lock(&m->mu);
    m->prompt_guard[jailbreak][violation]++;
    pthread_mutex_unlock(&m->mu);
}

static void line(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(strbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    strbuf_put(b, tmp, k < (int)sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

static void render_hist(strbuf *b, const char *name, const char *help, const histogram *h) {
    line(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < METRICS_BUCKETS && h->le[i] >= 0; i++) {
        cum += h->count[i];
        if (h->le[i] >= 1e299) line(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
        else line(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
    }
    line(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->n);
}

char *metrics_render(metrics *m, const engine_stats *es) {
    strbuf b = {0};
    pthread_mutex_lock(&m->mu);
    line(&b, "# HELP herd_requests_total HTTP requests by route and status.\n# TYPE herd_requests_total counter\n");
    for (int i = 0; i < m->n_req; i++)
        line(&b, "herd_requests_total{route=\"%s\",status=\"%d\"} %llu\n", m->req[i].route, m->req[i].status,
             (unsigned long long)m->req[i].n);
    line(&b, "# HELP herd_prompt_tokens_total Prompt tokens of finished requests.\n"
             "# TYPE herd_prompt_tokens_total counter\nherd_prompt_tokens_total %llu\n",
         (unsigned long long)m->prompt_tokens);
    line(&b, "# HELP herd_generated_tokens_total Generated tokens of finished requests.\n"
             "# TYPE herd_generated_tokens_total counter\nherd_generated_tokens_total %llu\n",
         (unsigned long long)m->generated_tokens);
    if (m->n_shield) {
        line(&b, "# HELP herd_shield_verdicts_total Llama Guard verdicts.\n# TYPE herd_shield_verdicts_total counter\n");
        for (int i = 0; i < m->n_shield; i++)
            if (!m->shield[i].category)
                line(&b, "herd_shield_verdicts_total{verdict=\"%s\"} %llu\n", m->shield[i].key,
                     (unsigned long long)m->shield[i].n);
        line(&b, "# HELP herd_shield_violations_total Violated categories in unsafe Llama Guard verdicts.\n"
                 "# TYPE herd_shield_violations_total counter\n");
        for (int i = 0; i < m->n_shield; i++)
            if (m->shield[i].category)
                line(&b, "herd_shield_violations_total{category=\"%s\"} %llu\n", m->shield[i].key,
                     (unsigned long long)m->shield[i].n);
    }
    uint64_t pg = m->prompt_guard[0][0] + m->prompt_guard[0][1] + m->prompt_guard[1][0] + m->prompt_guard[1][1];
    if (pg) {
        line(&b, "# HELP herd_prompt_guard_verdicts_total Prompt Guard verdicts by guard type.\n"
                 "# TYPE herd_prompt_guard_verdicts_total counter\n");
        for (int t = 0; t < 2; t++)
            for (int v = 0; v < 2; v++)
                line(&b, "herd_prompt_guard_verdicts_total{guard_type=\"%s\",verdict=\"%s\"} %llu\n",
                     t ? "jailbreak" : "injection", v ? "violation" : "safe", (unsigned long long)m->prompt_guard[t][v]);
    }
    render_hist(&b, "herd_time_to_first_token_seconds", "Time from request to its first generated token.", &m->ttft);
    render_hist(&b, "herd_time_per_output_token_seconds", "Time between consecutive generated tokens.",
                &m->token_latency);
    pthread_mutex_unlock(&m->mu);
    line(&b, "# HELP herd_requests_active Requests holding a slot.\n# TYPE herd_requests_active gauge\n"
             "herd_requests_active %d\n", es->active);
    line(&b, "# HELP herd_requests_queued Requests waiting for a slot.\n# TYPE herd_requests_queued gauge\n"
             "herd_requests_queued %d\n", es->queued);
    line(&b, "# HELP herd_slots Parallel sequences.\n# TYPE herd_slots gauge\nherd_slots %d\n", es->n_parallel);
    line(&b, "# HELP herd_kv_cache_tokens KV cache positions in use (slots keep prefixes for reuse).\n"
             "# TYPE herd_kv_cache_tokens gauge\nherd_kv_cache_tokens %lld\n", (long long)es->kv_used);
    line(&b, "# HELP herd_kv_cache_capacity_tokens KV cache positions in all slots.\n"
             "# TYPE herd_kv_cache_capacity_tokens gauge\nherd_kv_cache_capacity_tokens %lld\n",
         (long long)es->kv_total);
    line(&b, "# HELP herd_kv_cache_usage_ratio Fraction of KV cache positions in use.\n"
             "# TYPE herd_kv_cache_usage_ratio gauge\nherd_kv_cache_usage_ratio %.6f\n",
         es->kv_total ? (double)es->kv_used / (double)es->kv_total : 0.0);
    line(&b, "# HELP herd_prompt_cache_hit_tokens_total Prompt tokens reused from cached prefixes.\n"
             "# TYPE herd_prompt_cache_hit_tokens_total counter\nherd_prompt_cache_hit_tokens_total %llu\n",
         (unsigned long long)es->cached_tokens);
    line(&b, "# HELP herd_prompt_cache_hit_ratio Cached prompt tokens / prompt tokens of admitted requests.\n"
             "# TYPE herd_prompt_cache_hit_ratio gauge\nherd_prompt_cache_hit_ratio %.6f\n",
         es->prompt_tokens ? (double)es->cached_tokens / (double)es->prompt_tokens : 0.0);
    line(&b, "# HELP herd_prefix_cache_bytes KV bytes held by the prefix cache (--cache-ram).\n"
             "# TYPE herd_prefix_cache_bytes gauge\nherd_prefix_cache_bytes %llu\n", (unsigned long long)es->pc_bytes);
    line(&b, "# HELP herd_prefix_cache_budget_bytes The prefix cache's budget.\n"
             "# TYPE herd_prefix_cache_budget_bytes gauge\nherd_prefix_cache_budget_bytes %llu\n",
         (unsigned long long)es->pc_budget);
    line(&b, "# HELP herd_prefix_cache_blocks KV blocks (16 tokens each) held by the prefix cache.\n"
             "# TYPE herd_prefix_cache_blocks gauge\nherd_prefix_cache_blocks %lld\n", (long long)es->pc_blocks);
    line(&b, "# HELP herd_prefix_cache_evictions_total Blocks evicted from the prefix cache (LRU).\n"
             "# TYPE herd_prefix_cache_evictions_total counter\nherd_prefix_cache_evictions_total %llu\n",
         (unsigned long long)es->pc_evictions);
    line(&b, "# HELP herd_spec_drafted_tokens_total Tokens drafted and verified (serve --draft / --lookup).\n"
             "# TYPE herd_spec_drafted_tokens_total counter\nherd_spec_drafted_tokens_total %llu\n",
         (unsigned long long)es->spec_drafted);
    line(&b, "# HELP herd_spec_accepted_tokens_total Drafted tokens the model accepted.\n"
             "# TYPE herd_spec_accepted_tokens_total counter\nherd_spec_accepted_tokens_total %llu\n",
         (unsigned long long)es->spec_accepted);
    return b.p;
}
