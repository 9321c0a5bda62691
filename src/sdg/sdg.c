/* herd sdg runner (sdg.h): seeds -> K candidates -> judge -> selection + dedupe -> output and journal. */
#include "sdg.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/jsonl.h"
#include "../base/log.h"
#include "../base/randhex.h"
#include "../base/strbuf.h"
#include "../server/server.h"
#include "minhash.h"

static const char *const k_task[] = {"sft", "dpo", "qa", "cot"};

/* ---- prompts ---- */

static const char k_cot_system[] =
    "Think step by step. Work through the problem in short numbered steps, then give the final answer on "
    "its own last line in the form 'Answer: ...'.";

static const char k_qa_system[] = "You write question-answer pairs for training a language model.";

static const char k_judge_system[] =
    "You are a strict, fair grader of training data for a language model. You reply only with JSON.";

static const char *default_rubric(sdg_task t) {
    switch (t) {
    case SDG_TASK_QA:
        return "Rate the question-answer pair written from the document, from 1 to 10.\n"
               "- Grounded: the answer is stated in or follows from the document.\n"
               "- Useful: the question is one a reader would ask, and it stands alone.\n"
               "- Correct and complete: the answer answers the question fully, without padding.\n"
               "1 = wrong or unrelated to the document, 5 = partly right or vague, 10 = correct, grounded "
               "and "
               "clear.";
    case SDG_TASK_COT:
        return "Rate the response to the prompt, from 1 to 10.\n"
               "- Reasoning: each step is correct and follows from the previous ones.\n"
               "- Answer: the last line gives the final answer as 'Answer: ...', and it is correct.\n"
               "- Clarity: the steps are short and to the point.\n"
               "1 = wrong or no reasoning, 5 = partly right, 10 = sound steps and a correct answer.";
    default:
        return "Rate the response to the prompt, from 1 to 10.\n"
               "- Helpful: it does what the prompt asks.\n"
               "- Correct: what it states is true; it does not make things up.\n"
               "- Clear: well organized, no padding, appropriate length.\n"
               "- Safe: no harmful content.\n"
               "1 = useless or wrong, 5 = partly right or unclear, 10 = correct, complete and clear.";
    }
}

/* ---- HTTP to the loopback servers ---- */

typedef struct {
    server *srv;
    int port;
} endpoint;

static size_t on_data(char *p, size_t size, size_t n, void *user) {
    strbuf_put(user, p, size * n);
    return size * n;
}

/* POSTs body to /v1/chat/completions. OUT: *status, *resp (the parsed answer, or NULL). false: no HTTP
 * answer at all (the server is gone), with why in err. */
static bool post(CURL *c, struct curl_slist *h, int port, const char *body, long *status, json_t **resp,
                 char *err, size_t err_cap) {
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", port);
    strbuf s = {0};
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cr = curl_easy_perform(c);
    *status = 0, *resp = NULL;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (cr == CURLE_OK && s.p) *resp = json_loadb(s.p, s.n, 0, NULL);
    strbuf_free(&s);
    if (cr != CURLE_OK) snprintf(err, err_cap, "%s", curl_easy_strerror(cr));
    return cr == CURLE_OK;
}

/* ---- one seed's work ---- */

typedef struct {
    int64_t k;
    uint64_t seed;
    char *text;              /* the answer (sft/dpo/cot) or the raw JSON (qa); NULL: generation failed */
    char *question, *answer; /* qa */
    const char *finish;
    char *error; /* why it has no text / no score */
    int score;   /* 1..10; 0: not judged */
    char *reason;
    const char *fate; /* kept, below_threshold, not_best, duplicate, near_duplicate, empty, ... */
    double similar;
} cand;

typedef struct {
    const sdg_config *cfg;
    const sdg_seeds *seeds;
    bool *done;
    endpoint gen, judge;
    char api_key[40];
    pthread_mutex_t mu;
    int64_t next;
    int out_fd, jr_fd;
    int io_error; /* errno of a failed write (mu) */
    char *fatal;  /* the server stopped answering (mu) */
    sdg_minhash_index ix;
    json_t *ids; /* seed id -> index, while reading the files back (before the workers start) */
    double t0, last_sync, last_progress;
    int64_t todo;
    sdg_stats *st;
} run;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t fnv(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* The conversation a prompt seed gives, with the generation system prompt (cfg->system, and the CoT
 * instruction for cot) merged into its first system message. keep_system: the one the output keeps
 * (cfg->system only). */
static json_t *seed_messages(const sdg_config *cfg, const sdg_seed *sd, bool for_generation) {
    json_t *m = json_loads(sd->messages, 0, NULL);
    const char *extra = for_generation && cfg->task == SDG_TASK_COT ? k_cot_system : NULL;
    strbuf sys = {0};
    json_t *first = json_array_get(m, 0);
    bool has_sys = !strcmp(json_string_value(json_object_get(first, "role")), "system");
    if (has_sys) strbuf_puts(&sys, json_string_value(json_object_get(first, "content")));
    if (cfg->system) strbuf_printf(&sys, "%s%s", sys.n ? "\n\n" : "", cfg->system);
    if (extra) strbuf_printf(&sys, "%s%s", sys.n ? "\n\n" : "", extra);
    if (sys.n) {
        json_t *o = json_pack("{s:s,s:s%}", "role", "system", "content", sys.p, sys.n);
        if (has_sys)
            json_array_set_new(m, 0, o);
        else
            json_array_insert_new(m, 0, o);
    }
    strbuf_free(&sys);
    return m;
}

static json_t *qa_messages(const sdg_config *cfg, const sdg_seed *sd) {
    strbuf u = {0};
    strbuf_printf(
        &u,
        "Document:\n<<<\n%s\n>>>\n\nWrite one question a reader could ask about this document, and its "
        "answer, using only what the document says. Reply as JSON: {\"question\": \"...\", "
        "\"answer\": \"...\"}.",
        sd->document);
    const char *sys = cfg->system ? cfg->system : k_qa_system;
    json_t *m = json_pack("[{s:s,s:s},{s:s,s:s%}]", "role", "system", "content", sys, "role", "user",
                          "content", u.p, u.n);
    strbuf_free(&u);
    return m;
}

static char *request_body(const run *r, json_t *messages, const cand *c) {
    const sdg_config *cfg = r->cfg;
    json_t *b =
        json_pack("{s:s,s:o,s:f,s:f,s:f,s:i,s:I,s:I}", "model", cfg->gen_id, "messages", messages,
                  "temperature", (double)cfg->temperature, "top_p", (double)cfg->top_p, "min_p",
                  (double)cfg->min_p, "top_k", (int)cfg->top_k, "seed",
                  (json_int_t)(c->seed & 0x7fffffffffffffffull), "max_tokens", (json_int_t)cfg->max_tokens);
    if (cfg->task == SDG_TASK_QA) {
        /* lengths in characters, bounded by the token budget so the object can close before max_tokens */
        json_int_t q = cfg->max_tokens / 4 > 8 ? cfg->max_tokens / 4 : 8,
                   a = cfg->max_tokens / 2 > 8 ? cfg->max_tokens / 2 : 8;
        json_t *schema = json_pack("{s:s,s:{s:{s:s,s:i,s:I},s:{s:s,s:i,s:I}},s:[s,s],s:b}", "type", "object",
                                   "properties", "question", "type", "string", "minLength", 1, "maxLength", q,
                                   "answer", "type", "string", "minLength", 1, "maxLength", a, "required",
                                   "question", "answer", "additionalProperties", 0);
        json_object_set_new(b, "response_format",
                            json_pack("{s:s,s:{s:s,s:o}}", "type", "json_schema", "json_schema", "name",
                                      "qa_pair", "schema", schema));
    }
    char *s = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(b);
    return s;
}

/* The judge's view of the item: the conversation, then the response. */
static char *judge_body(const run *r, const sdg_seed *sd, const cand *c) {
    const sdg_config *cfg = r->cfg;
    strbuf u = {0};
    strbuf_printf(&u, "%s\n\nReply with JSON: {\"score\": <1-10>, \"reason\": \"<one sentence>\"}.\n\n",
                  cfg->rubric ? cfg->rubric : default_rubric(cfg->task));
    if (cfg->task == SDG_TASK_QA) {
        strbuf_printf(&u, "[Document]\n%s\n\n[Question]\n%s\n\n[Answer]\n%s\n", sd->document, c->question,
                      c->answer);
    } else {
        json_t *m = json_loads(sd->messages, 0, NULL);
        size_t i;
        json_t *o;
        json_array_foreach(m, i, o) {
            const char *role = json_string_value(json_object_get(o, "role"));
            strbuf_printf(&u, "[%s]\n%s\n\n", !strcmp(role, "user") ? "Prompt" : role,
                          json_string_value(json_object_get(o, "content")));
        }
        json_decref(m);
        strbuf_printf(&u, "[Response]\n%s\n", c->text);
    }
    json_t *en = json_array();
    for (int i = 1; i <= 10; i++) json_array_append_new(en, json_integer(i));
    json_t *schema =
        json_pack("{s:s,s:{s:{s:s,s:o},s:{s:s,s:i}},s:[s,s],s:b}", "type", "object", "properties", "score",
                  "type", "integer", "enum", en, "reason", "type", "string", "maxLength",
                  (int)(cfg->judge_max_tokens / 2 > 8 ? cfg->judge_max_tokens / 2 : 8), "required", "score",
                  "reason", "additionalProperties", 0);
    json_t *b = json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s%}],s:f,s:I,s:I,s:{s:s,s:{s:s,s:o}}}", "model",
                          cfg->judge_id, "messages", "role", "system", "content", k_judge_system, "role",
                          "user", "content", u.p, u.n, "temperature", (double)cfg->judge_temp, "seed",
                          (json_int_t)(mix(c->seed) & 0x7fffffffffffffffull), "max_tokens",
                          (json_int_t)cfg->judge_max_tokens, "response_format", "type", "json_schema",
                          "json_schema", "name", "judgment", "schema", schema);
    strbuf_free(&u);
    char *s = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(b);
    return s;
}

int sdg_judge_score(const char *a, size_t n, char **reason) {
    if (reason) *reason = NULL;
    json_t *j = json_loadb(a, n, 0, NULL);
    if (j) {
        json_t *s = json_object_get(j, "score"), *rs = json_object_get(j, "reason");
        int v = json_is_integer(s) && json_integer_value(s) >= 1 && json_integer_value(s) <= 10
                    ? (int)json_integer_value(s)
                    : 0;
        if (reason && json_is_string(rs)) *reason = strdup(json_string_value(rs));
        json_decref(j);
        return v;
    }
    /* a prefix cut short: {ws "score" ws : ws digits, then something that ends the number */
    size_t i = 0;
#define WS                                                                                                   \
    while (i < n && (a[i] == ' ' || a[i] == '\n' || a[i] == '\t' || a[i] == '\r')) i++
    WS;
    if (i >= n || a[i++] != '{') return 0;
    WS;
    if (n - i < 7 || memcmp(a + i, "\"score\"", 7)) return 0;
    i += 7;
    WS;
    if (i >= n || a[i++] != ':') return 0;
    WS;
    int v = 0;
    size_t d = i;
    while (i < n && a[i] >= '0' && a[i] <= '9' && i - d < 3) v = v * 10 + (a[i++] - '0');
#undef WS
    if (i == d || i >= n ||
        (a[i] != ',' && a[i] != '}' && a[i] != ' ' && a[i] != '\n' && a[i] != '\t' && a[i] != '\r'))
        return 0; /* no digits, or the number may go on */
    return v >= 1 && v <= 10 ? v : 0;
}

static const char *message_text(json_t *resp, const char **finish) {
    json_t *ch = json_array_get(json_object_get(resp, "choices"), 0);
    *finish = json_string_value(json_object_get(ch, "finish_reason"));
    return json_string_value(json_object_get(json_object_get(ch, "message"), "content"));
}

static const char *error_text(json_t *resp) {
    const char *m = json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
    return m ? m : "the answer is not JSON";
}

static void add_usage(run *r, json_t *resp, bool judge) {
    json_t *u = json_object_get(resp, "usage");
    int64_t pt = json_integer_value(json_object_get(u, "prompt_tokens")),
            ct = json_integer_value(json_object_get(u, "completion_tokens"));
    pthread_mutex_lock(&r->mu);
    if (judge)
        r->st->judge_prompt_tokens += pt, r->st->judge_tokens += ct;
    else
        r->st->gen_prompt_tokens += pt, r->st->gen_tokens += ct;
    pthread_mutex_unlock(&r->mu);
}

static void set_fatal(run *r, const char *what) {
    pthread_mutex_lock(&r->mu);
    if (!r->fatal) r->fatal = strdup(what);
    pthread_mutex_unlock(&r->mu);
}

/* Generates and judges the K candidates of seed sd. false: a server stopped answering (r->fatal). */
static bool work_seed(run *r, CURL *c, struct curl_slist *h, const sdg_seed *sd, cand *cs) {
    const sdg_config *cfg = r->cfg;
    char err[256];
    uint64_t base = mix(cfg->seed ^ fnv(sd->id));
    for (int k = 0; k < cfg->k; k++) {
        cand *x = &cs[k];
        memset(x, 0, sizeof *x);
        x->k = k, x->seed = base + (uint64_t)k;
        json_t *msgs = cfg->task == SDG_TASK_QA ? qa_messages(cfg, sd) : seed_messages(cfg, sd, true);
        char *body = request_body(r, msgs, x);
        long status;
        json_t *resp;
        bool ok = post(c, h, r->gen.port, body, &status, &resp, err, sizeof err);
        free(body);
        if (!ok) return set_fatal(r, err), false;
        const char *finish = NULL, *t = status == 200 ? message_text(resp, &finish) : NULL;
        x->finish = finish && !strcmp(finish, "length") ? "length" : "stop";
        if (status != 200) {
            x->error = strdup(error_text(resp));
            x->fate = "generation_failed";
        } else {
            add_usage(r, resp, false);
            x->text = strdup(t ? t : "");
            if (cfg->task == SDG_TASK_QA) {
                json_t *qa = json_loads(x->text, 0, NULL);
                const char *q = json_string_value(json_object_get(qa, "question")),
                           *a = json_string_value(json_object_get(qa, "answer"));
                if (q && a) {
                    x->question = strdup(q), x->answer = strdup(a);
                } else {
                    x->error = strdup(finish && !strcmp(finish, "length")
                                          ? "the question-answer JSON was cut short by max_tokens"
                                          : "the answer is not a question-answer object");
                    x->fate = "generation_failed";
                }
                json_decref(qa);
            }
        }
        json_decref(resp);
        pthread_mutex_lock(&r->mu);
        r->st->candidates++;
        r->st->gen_failed += x->fate != NULL;
        pthread_mutex_unlock(&r->mu);
    }
    for (int k = 0; k < cfg->k; k++) {
        cand *x = &cs[k];
        if (x->fate) continue;
        char *body = judge_body(r, sd, x);
        long status;
        json_t *resp;
        bool ok = post(c, h, r->judge.port, body, &status, &resp, err, sizeof err);
        free(body);
        if (!ok) return set_fatal(r, err), false;
        const char *finish = NULL, *t = status == 200 ? message_text(resp, &finish) : NULL;
        if (status == 200) add_usage(r, resp, true);
        x->score = t ? sdg_judge_score(t, strlen(t), &x->reason) : 0;
        if (!x->score) {
            x->error = strdup(status != 200 ? error_text(resp) : "the judge's answer names no score");
            x->fate = "judge_failed";
        } else if (!x->reason && t)
            x->reason = strdup(t); /* cut short: the raw answer */
        json_decref(resp);
        pthread_mutex_lock(&r->mu);
        r->st->judged += x->score > 0;
        r->st->judge_failed += x->score == 0;
        pthread_mutex_unlock(&r->mu);
    }
    return true;
}

/* ---- selection and output ---- */

/* The text an example is deduplicated on: every message content, then the answer (or chosen). Computed
 * from the output line itself, so that a resumed run rebuilds the same index from the file. */
static void example_text(json_t *line, strbuf *t) {
    json_t *m = json_object_get(line, "messages"), *o;
    size_t i;
    json_array_foreach(m, i, o) {
        strbuf_puts(t, json_string_value(json_object_get(o, "content"))
                           ? json_string_value(json_object_get(o, "content"))
                           : "");
        strbuf_puts(t, "\n");
    }
    const char *p = json_string_value(json_object_get(line, "prompt")),
               *ch = json_string_value(json_object_get(line, "chosen"));
    if (p) strbuf_printf(t, "%s\n", p);
    if (ch) strbuf_printf(t, "%s\n", ch);
}

/* Adds line's example to the index; its verdict (minhash.h) */
static int dedupe(run *r, json_t *line, double *similar) {
    strbuf t = {0};
    example_text(line, &t);
    int v = sdg_minhash_index_add(&r->ix, t.p ? t.p : "", t.n, similar);
    strbuf_free(&t);
    return v;
}

static json_t *meta(const sdg_seed *sd, const cand *c) {
    json_t *o =
        json_pack("{s:s,s:I,s:i}", "seed_id", sd->id, "candidate", (json_int_t)c->k, "score", c->score);
    if (sd->document) json_object_set_new(o, "source", json_string(sd->id));
    return o;
}

static json_t *sft_line(const run *r, const sdg_seed *sd, const cand *c) {
    json_t *m;
    if (r->cfg->task == SDG_TASK_QA)
        m = json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "user", "content", c->question, "role", "assistant",
                      "content", c->answer);
    else {
        m = seed_messages(r->cfg, sd, false);
        json_array_append_new(m, json_pack("{s:s,s:s}", "role", "assistant", "content", c->text));
    }
    return json_pack("{s:o,s:o}", "messages", m, "sdg", meta(sd, c));
}

static int by_score(const void *a, const void *b) {
    const cand *x = *(const cand *const *)a, *y = *(const cand *const *)b;
    if (x->score != y->score) return y->score - x->score;
    return (int)(x->k - y->k);
}

static bool is_empty(const cand *c) {
    const char *t = c->question ? c->answer : c->text;
    for (; t && *t; t++)
        if (*t != ' ' && *t != '\n' && *t != '\t' && *t != '\r') return false;
    return true;
}

static void write_all(run *r, int fd, const char *s, size_t n) {
    size_t off = 0;
    while (off < n && !r->io_error) {
        ssize_t w = write(fd, s + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            r->io_error = errno ? errno : EIO;
        else
            off += (size_t)w;
    }
}

static void progress(run *r, bool final) {
    double t = now_s();
    if (!r->cfg->progress || (!final && t - r->last_progress < 0.5)) return;
    r->last_progress = t;
    sdg_stats *st = r->st;
    double el = t - r->t0, tps = el > 0 ? (double)(st->gen_tokens + st->judge_tokens) / el : 0;
    double eta = st->done > 0 ? el * (double)(r->todo - st->done) / (double)st->done : 0;
    int w = 24, fill = r->todo ? (int)(w * st->done / r->todo) : w;
    char bar[32];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    bool tty = isatty(2);
    fprintf(stderr, "%sherd sdg: [%s] %lld/%lld seeds, %lld candidates, %lld kept, %.1f tok/s, ETA %d:%02d%s",
            tty ? "\r" : "", bar, (long long)st->done, (long long)r->todo, (long long)st->candidates,
            (long long)st->kept, tps, (int)(eta / 60), (int)eta % 60, tty && !final ? "   " : "\n");
    fflush(stderr);
}

/* Picks, dedupes and writes one finished seed; mu held. */
static void finish_seed(run *r, const sdg_seed *sd, cand *cs) {
    const sdg_config *cfg = r->cfg;
    int K = cfg->k;
    cand **ord = herd_xcalloc((size_t)K, sizeof *ord);
    int n = 0;
    for (int k = 0; k < K; k++)
        if (!cs[k].fate) ord[n++] = &cs[k];
    qsort(ord, (size_t)n, sizeof *ord, by_score);
    strbuf out = {0};
    int64_t kept = 0;
    if (cfg->task == SDG_TASK_DPO) {
        cand *best = n ? ord[0] : NULL, *worst = n ? ord[n - 1] : NULL;
        for (int i = 0; i < n; i++) ord[i]->fate = "unpaired";
        if (best && best->score >= cfg->threshold && best->score > worst->score && !is_empty(best)) {
            json_t *m = seed_messages(cfg, sd, false);
            json_t *line =
                json_array_size(m) == 1
                    ? json_pack("{s:O}", "prompt", json_object_get(json_array_get(m, 0), "content"))
                    : json_pack("{s:O}", "messages", m);
            json_decref(m);
            json_object_set_new(line, "chosen", json_string(best->text));
            json_object_set_new(line, "rejected", json_string(worst->text));
            json_object_set_new(line, "sdg",
                                json_pack("{s:s,s:I,s:i,s:I,s:i}", "seed_id", sd->id, "chosen_candidate",
                                          (json_int_t)best->k, "chosen_score", best->score,
                                          "rejected_candidate", (json_int_t)worst->k, "rejected_score",
                                          worst->score));
            int v = dedupe(r, line, &best->similar);
            if (v) {
                best->fate = v == 1 ? "duplicate" : "near_duplicate";
                r->st->duplicates++;
            } else {
                best->fate = "chosen", worst->fate = "rejected";
                char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
                strbuf_printf(&out, "%s\n", s);
                free(s);
                kept = 1;
            }
            json_decref(line);
        } else if (best && best->score < cfg->threshold)
            r->st->below += n;
    } else {
        bool taken = false;
        for (int i = 0; i < n; i++) {
            cand *c = ord[i];
            if (c->score < cfg->threshold) {
                c->fate = "below_threshold", r->st->below++;
                continue;
            }
            if (is_empty(c)) {
                c->fate = "empty";
                continue;
            }
            if (cfg->best_of && taken) {
                c->fate = "not_best";
                continue;
            }
            json_t *line = sft_line(r, sd, c);
            int v = dedupe(r, line, &c->similar);
            if (v) {
                c->fate = v == 1 ? "duplicate" : "near_duplicate";
                r->st->duplicates++;
            } else {
                c->fate = "kept";
                char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
                strbuf_printf(&out, "%s\n", s);
                free(s);
                kept++, taken = true;
            }
            json_decref(line);
        }
    }
    free(ord);
    /* the output lines in one write, then the journal line */
    if (out.n) write_all(r, r->out_fd, out.p, out.n);
    strbuf_free(&out);
    json_t *jc = json_array();
    for (int k = 0; k < K; k++) {
        cand *c = &cs[k];
        json_t *o =
            json_pack("{s:I,s:I,s:s}", "candidate", (json_int_t)c->k, "seed",
                      (json_int_t)(c->seed & 0x7fffffffffffffffull), "fate", c->fate ? c->fate : "unjudged");
        if (c->text) json_object_set_new(o, "text", json_string(c->text));
        if (c->question) json_object_set_new(o, "question", json_string(c->question));
        if (c->answer) json_object_set_new(o, "answer", json_string(c->answer));
        if (c->text) json_object_set_new(o, "finish_reason", json_string(c->finish));
        json_object_set_new(o, "score", c->score ? json_integer(c->score) : json_null());
        if (c->reason) json_object_set_new(o, "reason", json_string(c->reason));
        if (c->error) json_object_set_new(o, "error", json_string(c->error));
        if (c->similar > 0) json_object_set_new(o, "similarity", json_real(c->similar));
        json_array_append_new(jc, o);
    }
    json_t *jl = json_pack("{s:s,s:s,s:I,s:o}", "seed_id", sd->id, "task", k_task[cfg->task], "kept",
                           (json_int_t)kept, "candidates", jc);
    char *s = json_dumps(jl, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(jl);
    if (s) {
        size_t L = strlen(s);
        s[L] = '\n';
        write_all(r, r->jr_fd, s, L + 1);
        free(s);
    }
    r->st->kept += kept, r->st->lines += kept, r->st->done++;
    double t = now_s();
    if (t - r->last_sync >= cfg->fsync_interval_s) {
        fdatasync(r->out_fd), fdatasync(r->jr_fd);
        r->last_sync = t;
    }
    progress(r, false);
}

static void cand_free(cand *c) {
    free(c->text), free(c->question), free(c->answer), free(c->error), free(c->reason);
}

static void *worker(void *arg) {
    run *r = arg;
    CURL *c = curl_easy_init();
    char auth[80];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->api_key);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    cand *cs = herd_xcalloc((size_t)r->cfg->k, sizeof *cs);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int64_t i = r->next;
        while (i < r->seeds->n && r->done[i]) i++;
        r->next = i + 1;
        bool stop = i >= r->seeds->n || r->io_error || r->fatal;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        bool ok = work_seed(r, c, h, &r->seeds->v[i], cs);
        if (ok) {
            pthread_mutex_lock(&r->mu);
            if (!r->io_error) finish_seed(r, &r->seeds->v[i], cs);
            pthread_mutex_unlock(&r->mu);
        }
        for (int k = 0; k < r->cfg->k; k++) cand_free(&cs[k]), memset(&cs[k], 0, sizeof cs[k]);
        if (!ok) break;
    }
    free(cs);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* ---- resuming ---- */

/* Reads path's complete lines, calling each(line) on every JSON object line; cuts a torn tail. */
static int read_back(const char *path, void (*each)(void *, json_t *), run *r, int64_t *torn) {
    int64_t t = 0;
    int rc = jsonl_read_back(path, each, r, &t);
    *torn += t;
    return rc;
}

static void mark_done(run *r, const char *id) {
    json_t *v = id ? json_object_get(r->ids, id) : NULL;
    if (v && !r->done[json_integer_value(v)]) r->done[json_integer_value(v)] = true, r->st->skipped++;
}

static void each_output(void *ctx, json_t *line) {
    run *r = ctx;
    mark_done(r, json_string_value(json_object_get(json_object_get(line, "sdg"), "seed_id")));
    dedupe(r, line, NULL);
}

static void each_journal(void *ctx, json_t *line) {
    run *r = ctx;
    mark_done(r, json_string_value(json_object_get(line, "seed_id")));
}

static int start_server(engine *e, run *r, const char *id, int64_t n_ctx, endpoint *ep) {
    server_config sc = {.host = "127.0.0.1",
                        .port = 0,
                        .api_key = r->api_key,
                        .max_body = 64u << 20,
                        .model_id = id,
                        .n_ctx_slot = n_ctx,
                        .max_connections = r->cfg->parallel + 8};
    int rc = server_start(e, &sc, &ep->srv);
    if (rc == HERD_OK) ep->port = server_port(ep->srv);
    return rc;
}

int sdg_run(engine *gen, engine *judge, const sdg_seeds *seeds, const sdg_config *cfg, sdg_stats *st) {
    memset(st, 0, sizeof *st);
    st->seeds = seeds->n;
    run r = {.cfg = cfg, .seeds = seeds, .st = st, .out_fd = -1, .jr_fd = -1};
    r.done = herd_xcalloc((size_t)(seeds->n ? seeds->n : 1), sizeof *r.done);
    pthread_mutex_init(&r.mu, NULL);
    sdg_minhash_index_init(&r.ix, cfg->dedupe);
    r.ids = json_object();
    for (int64_t i = 0; i < seeds->n; i++) json_object_set_new(r.ids, seeds->v[i].id, json_integer(i));
    int rc = read_back(cfg->output, each_output, &r, &st->torn_bytes);
    if (rc == HERD_OK) rc = read_back(cfg->journal, each_journal, &r, &st->torn_bytes);
    json_decref(r.ids);
    r.ids = NULL;
    r.todo = seeds->n - st->skipped;
    if (rc == HERD_OK) {
        r.out_fd = open(cfg->output, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (r.out_fd < 0) rc = herd_err(HERD_E_IO, "cannot write %s: %s", cfg->output, strerror(errno));
    }
    if (rc == HERD_OK) {
        r.jr_fd = open(cfg->journal, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (r.jr_fd < 0) rc = herd_err(HERD_E_IO, "cannot write %s: %s", cfg->journal, strerror(errno));
    }
    if (rc == HERD_OK && r.todo > 0) {
        herd_random_hex(r.api_key, 32);
        rc = start_server(gen, &r, cfg->gen_id, cfg->n_ctx_slot, &r.gen);
        if (rc == HERD_OK) {
            if (judge && judge != gen)
                rc = start_server(judge, &r, cfg->judge_id, cfg->judge_ctx_slot, &r.judge);
            else
                r.judge = (endpoint){NULL, r.gen.port};
        }
    }
    if (rc == HERD_OK && r.todo > 0) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        r.t0 = r.last_sync = now_s();
        int nt = cfg->parallel < 1 ? 1 : cfg->parallel;
        if (nt > r.todo) nt = (int)r.todo;
        pthread_t *th = herd_xcalloc((size_t)nt, sizeof *th);
        int started = 0;
        for (int t = 0; t < nt; t++) started += pthread_create(&th[started], NULL, worker, &r) == 0;
        if (!started) worker(&r);
        for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
        free(th);
        st->seconds = now_s() - r.t0;
        progress(&r, true);
        if (r.io_error)
            rc = herd_err(HERD_E_IO, "cannot write %s / %s: %s", cfg->output, cfg->journal,
                          strerror(r.io_error));
        else if (r.fatal)
            rc = herd_err(HERD_E_IO, "the loopback server stopped answering: %s", r.fatal);
    }
    if (r.judge.srv) server_shutdown(r.judge.srv);
    if (r.gen.srv) server_shutdown(r.gen.srv);
    for (int i = 0; i < 2; i++) {
        int fd = i ? r.jr_fd : r.out_fd;
        if (fd < 0) continue;
        if (fdatasync(fd) != 0 && rc == HERD_OK)
            rc = herd_err(HERD_E_IO, "cannot sync %s: %s", i ? cfg->journal : cfg->output, strerror(errno));
        close(fd);
    }
    free(r.fatal);
    free(r.done);
    sdg_minhash_index_free(&r.ix);
    pthread_mutex_destroy(&r.mu);
    return rc;
}
