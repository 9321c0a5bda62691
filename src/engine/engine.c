/* Continuous batching engine (see engine.h). */
#include "engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "../sample/stop.h"
#include "prefix_cache.h"
#include "../spec/spec.h"
#include "slot_file.h"

/* ---- requests and their event queues ------------------------------------------------------- */

struct engine_req {
    engine_params p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    engine_event *ev; /* FIFO of undelivered events: ev[head .. n) */
    int n, cap, head;
    bool finished;    /* DONE or ERROR was queued */
    bool delivered_end;
    _Atomic bool cancelled;
    _Atomic int refs; /* the engine's and the submitter's */
    engine_req *next; /* waiting queue link */
    /* context shift mid-reply: the prompt's length as submitted (usage), the next shift prompt to consider,
     * the conversation part of the current prompt (its generated ids follow), messages left out so far */
    int64_t n_prompt0, shift_at, conv_len, n_dropped;
};

static void free_shift(engine_params *p) {
    for (int i = 0; i < p->n_shift; i++) free(p->shift[i].ids);
    free(p->shift);
    p->shift = NULL;
    p->n_shift = 0;
}

static void req_unref(engine_req *r) {
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    for (int i = r->head; i < r->n; i++) engine_event_clear(&r->ev[i]);
    free(r->ev);
    free(r->p.prompt);
    free(r->p.forced);
    for (int i = 0; i < r->p.n_stop; i++) free(r->p.stop[i]);
    free(r->p.stop);
    herd_constraint_free(r->p.constraint);
    free_shift(&r->p);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static void req_push(engine_req *r, engine_event *ev) {
    pthread_mutex_lock(&r->mu);
    if (r->n == r->cap) {
        /* compact delivered events before growing */
        if (r->head > 0) {
            memmove(r->ev, r->ev + r->head, (size_t)(r->n - r->head) * sizeof *r->ev);
            r->n -= r->head;
            r->head = 0;
        }
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 16;
            r->ev = herd_xrealloc(r->ev, (size_t)r->cap * sizeof *r->ev);
        }
    }
    r->ev[r->n++] = *ev;
    if (ev->kind != ENGINE_EV_TOKEN) r->finished = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

bool engine_next_event(engine_req *r, engine_event *ev, int timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ms > 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (r->head == r->n && !r->delivered_end && timeout_ms != 0) {
        if (timeout_ms < 0) pthread_cond_wait(&r->cv, &r->mu);
        else if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT) break;
    }
    bool got = r->head < r->n;
    if (got) {
        *ev = r->ev[r->head++];
        if (ev->kind != ENGINE_EV_TOKEN) r->delivered_end = true;
    }
    pthread_mutex_unlock(&r->mu);
    return got;
}

void engine_event_clear(engine_event *ev) {
    free(ev->text);
    free(ev->embedding);
    free(ev->error);
    memset(ev, 0, sizeof *ev);
}

void engine_cancel(engine_req *r) {
    atomic_store(&r->cancelled, true);
}

void engine_release(engine_req *r) {
    if (!r) return;
    engine_cancel(r);
    req_unref(r);
}

/* ---- slots ---------------------------------------------------------------------------------- */

typedef enum { SLOT_IDLE, SLOT_PREFILL, SLOT_DECODE } slot_state;

typedef struct {
    slot_state st;
    engine_req *req;
    int32_t *cache;      /* ids whose KV this slot holds: positions [0, n_cache) */
    int64_t n_cache;
    int lora;            /* the adapter its sequence runs with and its cache was computed with (0: none) */
    herd_sampler *sampler;
    text_stream ts;
    int64_t n_gen, n_cached;
    int32_t next;        /* sampled token to feed in the next step (DECODE) */
    int32_t stop_token;  /* the EOG token that ended the request, or -1 */
    uint64_t last_used;
    /* speculative decoding: this step's drafts (verified in the same pass as next); the draft context's
     * tokens of this slot's sequence there */
    int32_t *drafts;
    int64_t n_draft;
    int64_t lookup_max;  /* prompt lookup: this request's proposal limit (spec_lookup_next_max) */
    int32_t *dcache;
    int64_t n_dcache;
} slot;

struct engine {
    herd_model *m;
    herd_context *ctx;
    engine_config cfg;
    int64_t n_vocab;
    int32_t python_tag;  /* <|python_tag|> id, or -1 */
    slot *slots;
    pthread_t th;
    pthread_mutex_t mu;  /* guards the queue, the flags and the stats */
    pthread_cond_t cv;
    engine_req *q_head, *q_tail;
    int n_queued;
    bool closing, stopping, drain, started;
    int n_busy;          /* slots holding a request (guarded by mu) */
    uint64_t tick;
    engine_stats stats;  /* guarded by mu; refreshed after every step */
    uint64_t gen_tokens; /* engine thread only */
    /* step buffers */
    int32_t *b_tok, *b_seq;
    bool *b_want;
    int *b_slot_of_row;  /* logits row -> slot */
    float *logits;       /* [rows_cap][n_vocab]: a row per decoding slot and draft, per finished prompt */
    int64_t rows_cap;
    /* speculative decoding (engine_config.lookup_ngram / draft): draft_max > 0 when on */
    int64_t draft_max;
    herd_context *dctx;  /* the draft model's context, a sequence per slot (NULL: lookup or off) */
    int32_t *d_tok, *d_seq;
    bool *d_want;
    float *dlogits;      /* [n_vocab] */
    uint64_t spec_drafted, spec_accepted;
    /* prefix cache (NULL: off); blocks of PC_BLOCK tokens, each every layer's K and V rows of them */
    prefix_cache *pc;
    const void **pc_blocks; /* match results, [n_ctx_slot / PC_BLOCK + 1] */
    /* a slot action (engine_slot_action) waiting for the engine thread: guarded by mu, one at a time
     * (op_mu serializes the callers); the engine sets op_done and broadcasts op_cv */
    pthread_mutex_t op_mu;
    pthread_cond_t op_cv;
    struct slot_op *op;
};

/* Tokens per prefix-cache block: fine enough that a prompt sharing a system prompt reuses all but < 16
 * of its tokens, coarse enough that a 2K prompt is a 128-node path. */
#define PC_BLOCK 16

typedef struct slot_op {
    int slot, action;
    const char *path;
    int rc;
    char err[512];
    int64_t n_tokens;
    uint64_t n_bytes;
    bool done;
} slot_op;

typedef struct {
    engine *e;
    int seq;
} pc_fill_ctx;

/* Fills a new prefix-cache block with positions [block * B, (block + 1) * B) of a slot's sequence. */
static void pc_fill(void *user, int64_t block, void *dst) {
    pc_fill_ctx *f = user;
    int rc = herd_seq_kv_read(f->e->ctx, f->seq, block * PC_BLOCK, PC_BLOCK, dst);
    HERD_ASSERT(rc == HERD_OK); /* the slot holds those positions: a bug otherwise */
}

/* Offers slot si's cached tokens (all computed) to the prefix cache. */
static void pc_offer(engine *e, int si) {
    slot *s = &e->slots[si];
    if (!e->pc || s->n_cache < PC_BLOCK) return;
    pc_fill_ctx f = {e, si};
    prefix_cache_insert(e->pc, s->lora, s->cache, s->n_cache, pc_fill, &f);
}

static void emit_error(engine_req *r, const char *msg) {
    engine_event ev = {.kind = ENGINE_EV_ERROR, .error = herd_xstrndup(msg, strlen(msg))};
    req_push(r, &ev);
}

static void slot_finish(engine *e, slot *s, int finish) {
    engine_req *r = s->req;
    pc_offer(e, (int)(s - e->slots));
    if (r) {
        size_t from, k = text_stream_flush(&s->ts, &from);
        if (k > 0 && finish != ENGINE_FINISH_CANCELLED) {
            engine_event tail = {.kind = ENGINE_EV_TOKEN, .token = -1, .text = herd_xstrndup(s->ts.text.p + from, k),
                                 .text_len = k};
            req_push(r, &tail);
        }
        engine_event ev = {.kind = ENGINE_EV_DONE, .finish = finish, .n_prompt = r->n_prompt0,
                           .n_cached = s->n_cached, .n_gen = s->n_gen, .stop_token = s->stop_token,
                           .n_dropped = r->n_dropped};
        req_push(r, &ev);
        req_unref(r);
    }
    text_stream_free(&s->ts);
    herd_sampler_free(s->sampler);
    s->sampler = NULL;
    s->req = NULL;
    if (s->st != SLOT_IDLE) {
        pthread_mutex_lock(&e->mu);
        e->n_busy--;
        pthread_mutex_unlock(&e->mu);
    }
    s->st = SLOT_IDLE;
    s->last_used = ++e->tick;
}

static int64_t common_prefix(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    int64_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* The prefix of slot s's cache that request p may reuse: none when it was computed with another adapter. */
static int64_t reusable(const slot *s, const engine_params *p) {
    return s->lora == p->lora ? common_prefix(s->cache, s->n_cache, p->prompt, p->n_prompt) : 0;
}

/* Puts request r into idle slot `si`, reusing the longest cached prefix of any slot. */
static void slot_assign(engine *e, int si, engine_req *r) {
    slot *s = &e->slots[si];
    const engine_params *p = &r->p;
    int64_t own = reusable(s, p), best = own;
    int best_slot = si;
    for (int j = 0; j < e->cfg.n_parallel; j++) {
        if (j == si) continue;
        int64_t l = reusable(&e->slots[j], p);
        if (l > best) best = l, best_slot = j;
    }
    /* the last prompt token is always run, to get the logits that start generation */
    if (best >= p->n_prompt) best = p->n_prompt - 1;
    if (p->embedding) best = 0;
    /* the prefix cache, when it holds more than any slot: its blocks are copied in after the slot's own
     * reusable positions (the positions before are the same bytes) */
    int64_t pc_m = 0, pc_best = 0;
    if (e->pc && !p->embedding) {
        pc_m = prefix_cache_match(e->pc, p->lora, p->prompt, p->n_prompt, e->pc_blocks, p->n_prompt / PC_BLOCK + 1);
        pc_best = pc_m * PC_BLOCK < p->n_prompt ? pc_m * PC_BLOCK : p->n_prompt - 1;
    }
    if (pc_best > best && pc_best > own) {
        int64_t from = (own < pc_best ? own : pc_best) / PC_BLOCK;
        herd_seq_truncate(e->ctx, si, from * PC_BLOCK);
        for (int64_t b = from; b < pc_m; b++) {
            int rc = herd_seq_kv_write(e->ctx, si, b * PC_BLOCK, PC_BLOCK, e->pc_blocks[b]);
            HERD_ASSERT(rc == HERD_OK); /* m * B <= n_prompt <= n_ctx_slot */
        }
        best = pc_best;
        herd_seq_truncate(e->ctx, si, best);
    } else if (best_slot != si && best > own) {
        herd_seq_copy(e->ctx, best_slot, si, best);
    } else {
        best = own < best ? own : best;
        herd_seq_truncate(e->ctx, si, best);
    }
    if (s->lora != p->lora) { /* validated at submit: it can only fail for a bug */
        int k = p->lora;
        int rc = herd_seq_set_lora(e->ctx, si, k ? &e->cfg.loras[k - 1] : NULL, k ? &e->cfg.lora_scales[k - 1] : NULL, k ? 1 : 0);
        HERD_ASSERT(rc == HERD_OK);
        s->lora = k;
    }
    memcpy(s->cache, p->prompt, (size_t)best * sizeof(int32_t));
    s->n_cache = best;
    s->n_cached = best;
    s->req = r;
    s->n_gen = 0;
    s->n_draft = 0;
    s->lookup_max = spec_lookup_next_max(SPEC_LOOKUP_START, 0, 0, 1, e->draft_max);
    s->stop_token = -1;
    s->st = SLOT_PREFILL;
    e->n_busy++; /* under mu: called from the admission loop */
    s->sampler = herd_sampler_new(&p->sampling, (int32_t)e->n_vocab);
    for (int64_t i = 0; i < p->n_prompt; i++) herd_sampler_accept_prompt(s->sampler, p->prompt[i]);
    herd_sampler_set_constraint(s->sampler, p->constraint); /* NULL: unconstrained */
    text_stream_init(&s->ts, (const char **)p->stop, p->n_stop);
    e->stats.cached_tokens += (uint64_t)best;
    e->stats.prompt_tokens += (uint64_t)p->n_prompt;
}

/* Log-softmax of the chosen token and the top-k alternatives, from raw logits. */
static void logprobs(const float *lg, int64_t n, int32_t chosen, int k, engine_event *ev) {
    float mx = lg[0];
    for (int64_t i = 1; i < n; i++) mx = lg[i] > mx ? lg[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += exp((double)(lg[i] - mx));
    double lse = (double)mx + log(sum);
    ev->logprob = (float)((double)lg[chosen] - lse);
    ev->n_top = 0;
    for (int64_t i = 0; i < n && k > 0; i++) { /* insertion into a sorted list of k */
        float v = lg[i];
        if (ev->n_top == k && v <= lg[ev->top[k - 1].id]) continue;
        int at = ev->n_top < k ? ev->n_top++ : k - 1;
        while (at > 0 && lg[ev->top[at - 1].id] < v) {
            ev->top[at] = ev->top[at - 1];
            at--;
        }
        ev->top[at].id = (int32_t)i;
    }
    for (int j = 0; j < ev->n_top; j++) ev->top[j].logprob = (float)((double)lg[ev->top[j].id] - lse);
}

/* The context of slot s filled while generating; `id` (just sampled and emitted, counted in n_gen) has no
 * KV yet. Context policy shift (engine_params.shift): the next shorter prompt that leaves room, then the
 * reply's ids so far, re-prefilled past what the slot's cache shares with it. false: nothing to drop or no
 * room (the caller ends the reply with ENGINE_FINISH_CONTEXT). */
static bool slot_shift(engine *e, slot *s, int32_t id) {
    engine_req *r = s->req;
    engine_params *p = &r->p;
    int64_t n_ctx = e->cfg.n_ctx_slot, reserve = p->max_tokens > 0 ? p->max_tokens : s->n_gen + n_ctx / 4;
    /* as herd_chat_tokenize_fit over the current conversation: turns go while it and reserve do not fit */
    int64_t j = r->shift_at - 1, len = r->conv_len;
    while (len + reserve > n_ctx && j + 1 < p->n_shift) len = p->shift[++j].n;
    if (j == r->shift_at - 1 || len + s->n_gen >= n_ctx) return false;
    int64_t n_new = len + s->n_gen, from = r->conv_len;
    HERD_ASSERT(s->n_cache - from == s->n_gen - 1); /* the cache: the prompt, then every generated id but id */
    int32_t *ids = herd_xmalloc((size_t)n_new * sizeof *ids);
    memcpy(ids, p->shift[j].ids, (size_t)len * sizeof *ids);
    memcpy(ids + len, s->cache + from, (size_t)(s->n_gen - 1) * sizeof *ids);
    ids[n_new - 1] = id;
    int64_t keep = common_prefix(s->cache, s->n_cache, ids, n_new);
    if (keep >= n_new) keep = n_new - 1; /* the last token runs again: its row continues the reply */
    herd_seq_truncate(e->ctx, (int)(s - e->slots), keep);
    free(p->prompt);
    p->prompt = ids;
    p->n_prompt = n_new;
    s->n_cache = keep;
    r->conv_len = len;
    r->n_dropped = p->shift[j].n_dropped;
    r->shift_at = j + 1;
    s->st = SLOT_PREFILL;
    return true;
}

/* Samples slot s from its logits row; emits the token; decides whether it goes on. */
static void slot_sample(engine *e, slot *s, const float *lg) {
    engine_req *r = s->req;
    int32_t id;
    if (r->p.forced) { /* scripted: the next scripted token, then the end of the turn */
        if (s->n_gen >= r->p.n_forced) {
            s->stop_token = -1;
            slot_finish(e, s, ENGINE_FINISH_STOP);
            return;
        }
        id = r->p.forced[s->n_gen];
    } else {
        id = herd_sampler_sample(s->sampler, lg);
    }
    if (herd_vocab_is_eog(e->m, id)) {
        s->stop_token = id;
        slot_finish(e, s, ENGINE_FINISH_STOP);
        return;
    }
    herd_sampler_accept(s->sampler, id);
    s->n_gen++;
    e->gen_tokens++;
    char piece[256];
    bool special = r->p.render_python_tag && id == e->python_tag;
    int64_t need = herd_token_to_piece(e->m, id, special, piece, sizeof piece);
    char *buf = piece;
    if (need > (int64_t)sizeof piece) {
        buf = herd_xmalloc((size_t)need);
        herd_token_to_piece(e->m, id, special, buf, (size_t)need);
    }
    size_t from, k = text_stream_push(&s->ts, buf, need > 0 ? (size_t)need : 0, &from);
    if (buf != piece) free(buf);
    engine_event ev = {.kind = ENGINE_EV_TOKEN, .token = id, .text = herd_xstrndup(s->ts.text.p + from, k),
                       .text_len = k};
    if (r->p.top_logprobs >= 0)
        logprobs(lg, e->n_vocab, id, r->p.top_logprobs < ENGINE_MAX_TOP ? r->p.top_logprobs : ENGINE_MAX_TOP, &ev);
    if (r->p.watch && r->p.watch_token >= 0 && r->p.watch_token < e->n_vocab) { /* in double throughout */
        float mx = lg[0];
        for (int64_t i = 1; i < e->n_vocab; i++) mx = lg[i] > mx ? lg[i] : mx;
        double sum = 0;
        for (int64_t i = 0; i < e->n_vocab; i++) sum += exp((double)lg[i] - (double)mx);
        ev.watch_logprob = (double)lg[r->p.watch_token] - (double)mx - log(sum);
    }
    req_push(r, &ev);
    if (s->ts.stopped) {
        slot_finish(e, s, ENGINE_FINISH_STOP);
    } else if (r->p.max_tokens >= 0 && s->n_gen >= r->p.max_tokens) {
        slot_finish(e, s, ENGINE_FINISH_LENGTH);
    } else if (s->n_cache >= e->cfg.n_ctx_slot) {
        if (!slot_shift(e, s, id)) slot_finish(e, s, ENGINE_FINISH_CONTEXT);
    } else {
        s->next = id;
        s->st = SLOT_DECODE;
    }
}

static void run_embedding(engine *e, int si) {
    slot *s = &e->slots[si];
    engine_req *r = s->req;
    int64_t E = herd_model_n_embd(e->m);
    int64_t rows = r->p.pooling == HERD_POOLING_NONE ? r->p.n_prompt : 1;
    float *v = herd_xmalloc((size_t)(rows * E) * sizeof(float));
    if (herd_embed_pooled(e->ctx, si, r->p.prompt, r->p.n_prompt, r->p.pooling, !r->p.no_normalize, v) != HERD_OK) {
        free(v);
        emit_error(r, herd_last_error());
        s->n_cache = 0;
        req_unref(r);
        s->req = NULL;
        slot_finish(e, s, ENGINE_FINISH_CANCELLED);
        return;
    }
    memcpy(s->cache, r->p.prompt, (size_t)r->p.n_prompt * sizeof(int32_t));
    s->n_cache = r->p.n_prompt;
    engine_event ev = {.kind = ENGINE_EV_DONE, .finish = ENGINE_FINISH_STOP, .n_prompt = r->p.n_prompt,
                       .embedding = v, .n_embd = E};
    req_push(r, &ev);
    req_unref(r);
    s->req = NULL;
    slot_finish(e, s, ENGINE_FINISH_STOP);
}

/* Publishes the gauges that other threads read (engine_get_stats). */
static void publish_stats(engine *e) {
    int64_t used = 0;
    for (int i = 0; i < e->cfg.n_parallel; i++) used += e->slots[i].n_cache;
    pthread_mutex_lock(&e->mu);
    e->stats.kv_used = used;
    e->stats.generated_tokens = e->gen_tokens;
    e->stats.spec_drafted = e->spec_drafted;
    e->stats.spec_accepted = e->spec_accepted;
    if (e->pc) {
        prefix_cache_stats ps;
        prefix_cache_get_stats(e->pc, &ps);
        e->stats.pc_blocks = ps.n_blocks;
        e->stats.pc_bytes = ps.bytes;
        e->stats.pc_evictions = ps.evictions;
    }
    pthread_mutex_unlock(&e->mu);
}

/* ---- slot save / restore / erase (on the engine thread) ------------------------------------------ */

static void slot_op_run(engine *e, slot_op *op) {
    op->rc = HERD_OK;
    if (op->slot < 0 || op->slot >= e->cfg.n_parallel) {
        op->rc = herd_err(HERD_E_RANGE, "slot %d does not exist (the server has %d)", op->slot, e->cfg.n_parallel);
    } else if (e->slots[op->slot].st != SLOT_IDLE) {
        op->rc = herd_err(HERD_E_RANGE, "slot %d is busy with a request", op->slot);
    } else {
        slot *s = &e->slots[op->slot];
        herd_model_info mi;
        herd_model_get_info(e->m, &mi);
        uint64_t bpp = herd_seq_kv_bytes_per_pos(e->ctx);
        if (op->action == ENGINE_SLOT_ERASE) {
            op->n_tokens = s->n_cache;
            s->n_cache = 0;
            herd_seq_truncate(e->ctx, op->slot, 0);
        } else if (op->action == ENGINE_SLOT_SAVE) {
            slot_file_header h = {.kv_type = herd_context_kv_type(e->ctx), .lora = s->lora, .n_layer = mi.n_layer,
                                  .n_embd = mi.n_embd, .n_vocab = mi.n_vocab, .bytes_per_pos = bpp, .n_tokens = s->n_cache};
            void *kv = malloc((size_t)(bpp * (uint64_t)s->n_cache) + 1);
            if (!kv) op->rc = herd_err(HERD_E_NOMEM, "slot save: no memory for the KV of %lld tokens", (long long)s->n_cache);
            else if ((op->rc = herd_seq_kv_read(e->ctx, op->slot, 0, s->n_cache, kv)) == HERD_OK)
                op->rc = slot_file_write(op->path, &h, s->cache, kv, &op->n_bytes);
            free(kv);
            op->n_tokens = s->n_cache;
        } else {
            slot_file_header h;
            int32_t *tok;
            void *kv;
            op->rc = slot_file_read(op->path, e->cfg.n_ctx_slot, &h, &tok, &kv, &op->n_bytes);
            if (op->rc == HERD_OK) {
                if (h.n_layer != mi.n_layer || h.n_embd != mi.n_embd || h.n_vocab != mi.n_vocab || h.bytes_per_pos != bpp ||
                    h.kv_type != herd_context_kv_type(e->ctx))
                    op->rc = herd_err(HERD_E_FORMAT,
                                      "slot restore: the file was saved from another model or KV type (%lld layers, "
                                      "n_embd %lld, %llu bytes per position; this server: %lld, %lld, %llu)",
                                      (long long)h.n_layer, (long long)h.n_embd, (unsigned long long)h.bytes_per_pos,
                                      (long long)mi.n_layer, (long long)mi.n_embd, (unsigned long long)bpp);
                else if (h.lora < 0 || h.lora > e->cfg.n_loras)
                    op->rc = herd_err(HERD_E_FORMAT, "slot restore: the file's adapter %d is not loaded here", h.lora);
                for (int64_t i = 0; op->rc == HERD_OK && i < h.n_tokens; i++)
                    if (tok[i] < 0 || tok[i] >= e->n_vocab)
                        op->rc = herd_err(HERD_E_FORMAT, "slot restore: token %d is outside the vocabulary", tok[i]);
            }
            if (op->rc == HERD_OK) {
                herd_seq_truncate(e->ctx, op->slot, 0);
                int rc = herd_seq_kv_write(e->ctx, op->slot, 0, h.n_tokens, kv);
                HERD_ASSERT(rc == HERD_OK); /* n_tokens <= n_ctx_slot was checked */
                if (s->lora != h.lora) {
                    int k = h.lora;
                    rc = herd_seq_set_lora(e->ctx, op->slot, k ? &e->cfg.loras[k - 1] : NULL,
                                           k ? &e->cfg.lora_scales[k - 1] : NULL, k ? 1 : 0);
                    HERD_ASSERT(rc == HERD_OK);
                    s->lora = k;
                }
                memcpy(s->cache, tok, (size_t)h.n_tokens * sizeof *tok);
                s->n_cache = h.n_tokens;
                s->last_used = ++e->tick;
                op->n_tokens = h.n_tokens;
            }
            free(tok);
            free(kv);
        }
    }
    if (op->rc != HERD_OK) snprintf(op->err, sizeof op->err, "%s", herd_last_error());
}

int engine_slot_action(engine *e, int slot_id, int action, const char *path, int64_t *n_tokens, uint64_t *n_bytes) {
    slot_op op = {.slot = slot_id, .action = action, .path = path};
    pthread_mutex_lock(&e->op_mu); /* one action at a time */
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        pthread_mutex_unlock(&e->op_mu);
        return herd_err(HERD_E_RANGE, "shutting down: the server is not taking new requests");
    }
    e->op = &op;
    pthread_cond_signal(&e->cv);
    while (!op.done) pthread_cond_wait(&e->op_cv, &e->mu);
    e->op = NULL;
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_unlock(&e->op_mu);
    if (n_tokens) *n_tokens = op.n_tokens;
    if (n_bytes) *n_bytes = op.n_bytes;
    if (op.rc != HERD_OK) return herd_err(op.rc, "%s", op.err);
    return HERD_OK;
}

/* ---- speculative decoding ---------------------------------------------------------------------------- */

/* Drafts up to kmax tokens continuing slot si's cache (which ends with the pending token) into s->drafts:
 * prompt lookup over the slot's tokens, or the draft model's greedy continuation (its sequence is first
 * brought to the slot's tokens: cut back to the common prefix, the rest run in n_batch chunks). Returns
 * how many; 0 when there is nothing to propose or the draft's pass failed (plain decoding then). */
static int64_t slot_propose(engine *e, int si, int64_t kmax) {
    slot *s = &e->slots[si];
    if (kmax <= 0) return 0;
    if (!e->dctx)
        return spec_lookup(s->cache, s->n_cache, e->cfg.lookup_ngram, kmax < s->lookup_max ? kmax : s->lookup_max,
                           s->drafts);
    int64_t c = common_prefix(s->dcache, s->n_dcache, s->cache, s->n_cache);
    if (c >= s->n_cache) c = s->n_cache - 1; /* the last token runs again: its row starts the draft */
    herd_seq_truncate(e->dctx, si, c);
    s->n_dcache = c;
    while (s->n_dcache < s->n_cache) {
        int64_t k = s->n_cache - s->n_dcache < e->cfg.n_batch ? s->n_cache - s->n_dcache : e->cfg.n_batch;
        for (int64_t j = 0; j < k; j++) {
            e->d_tok[j] = s->cache[s->n_dcache + j];
            e->d_seq[j] = si;
            e->d_want[j] = s->n_dcache + j == s->n_cache - 1;
        }
        if (herd_decode_batch(e->dctx, e->d_tok, e->d_seq, k, e->d_want, e->dlogits) != HERD_OK) {
            herd_seq_truncate(e->dctx, si, 0);
            s->n_dcache = 0;
            return 0;
        }
        memcpy(s->dcache + s->n_dcache, e->d_tok, (size_t)k * sizeof *e->d_tok);
        s->n_dcache += k;
    }
    int64_t k = 0;
    for (;;) { /* greedy: the draft's argmax (q one-hot) */
        int32_t t = 0;
        for (int64_t i = 1; i < e->n_vocab; i++)
            if (e->dlogits[i] > e->dlogits[t]) t = (int32_t)i;
        s->drafts[k++] = t;
        if (k == kmax || s->n_dcache >= e->cfg.n_ctx_slot) break;
        int32_t seq = si;
        bool want = true;
        if (herd_decode_batch(e->dctx, &t, &seq, 1, &want, e->dlogits) != HERD_OK) break;
        s->dcache[s->n_dcache++] = t;
    }
    return k;
}

/* One step: admit queued requests, drop cancelled ones, run one batch, sample. Returns false when
 * there was nothing to do. */
static bool step(engine *e) {
    int np = e->cfg.n_parallel;
    pthread_mutex_lock(&e->mu);
    if (e->op && !e->op->done) { /* a slot action, before admission can hand the slot out */
        slot_op *op = e->op;
        pthread_mutex_unlock(&e->mu);
        slot_op_run(e, op);
        pthread_mutex_lock(&e->mu);
        op->done = true;
        pthread_cond_broadcast(&e->op_cv);
    }
    /* admit: each queued request takes the idle slot sharing the longest prefix (else the LRU one) */
    while (e->q_head) {
        int pick = -1;
        int64_t pick_l = -1;
        for (int i = 0; i < np; i++) {
            slot *s = &e->slots[i];
            if (s->st != SLOT_IDLE) continue;
            int64_t l = reusable(s, &e->q_head->p);
            if (l > pick_l || (l == pick_l && s->last_used < e->slots[pick].last_used)) pick = i, pick_l = l;
        }
        if (pick < 0) break;
        engine_req *r = e->q_head;
        e->q_head = r->next;
        if (!e->q_head) e->q_tail = NULL;
        e->n_queued--;
        slot_assign(e, pick, r);
    }
    pthread_mutex_unlock(&e->mu);

    int n_active = 0;
    for (int i = 0; i < np; i++) {
        slot *s = &e->slots[i];
        if (s->st == SLOT_IDLE) continue;
        if (atomic_load(&s->req->cancelled)) {
            slot_finish(e, s, ENGINE_FINISH_CANCELLED);
            continue;
        }
        if (s->req->p.embedding) {
            run_embedding(e, i);
            continue;
        }
        n_active++;
    }
    if (n_active == 0) return false;

    /* batch: decode tokens first (one per slot, then its drafts), then prompt chunks, up to n_batch tokens */
    int64_t n = 0, budget = e->cfg.n_batch;
    int rows = 0;
    int64_t per = 0; /* drafts per decoding slot: an equal share of what the pending tokens leave */
    if (e->draft_max > 0) {
        int n_dec = 0;
        for (int i = 0; i < np; i++) n_dec += e->slots[i].st == SLOT_DECODE;
        per = n_dec ? (budget - n_dec) / n_dec : 0;
        if (per > e->draft_max) per = e->draft_max;
    }
    for (int i = 0; i < np && n < budget; i++) {
        slot *s = &e->slots[i];
        if (s->st != SLOT_DECODE) continue;
        e->b_tok[n] = s->next;
        e->b_seq[n] = i;
        e->b_want[n] = true;
        e->b_slot_of_row[rows++] = i;
        s->cache[s->n_cache++] = s->next;
        n++;
        s->n_draft = 0;
        if (per > 0 && !s->req->p.forced) {
            /* drafts take positions n_cache..; every token they let out must be one plain decoding gives */
            int64_t kmax = per < e->cfg.n_ctx_slot - s->n_cache ? per : e->cfg.n_ctx_slot - s->n_cache;
            if (s->req->p.max_tokens >= 0 && kmax > s->req->p.max_tokens - s->n_gen - 1)
                kmax = s->req->p.max_tokens - s->n_gen - 1;
            s->n_draft = slot_propose(e, i, kmax);
            for (int64_t j = 0; j < s->n_draft; j++) {
                e->b_tok[n] = s->drafts[j];
                e->b_seq[n] = i;
                e->b_want[n] = true;
                e->b_slot_of_row[rows++] = i;
                n++;
            }
        }
    }
    for (int i = 0; i < np && n < budget; i++) {
        slot *s = &e->slots[i];
        if (s->st != SLOT_PREFILL) continue;
        const engine_params *p = &s->req->p;
        int64_t left = p->n_prompt - s->n_cache, k = left < budget - n ? left : budget - n;
        for (int64_t j = 0; j < k; j++) {
            int32_t tok = p->prompt[s->n_cache];
            e->b_tok[n] = tok;
            e->b_seq[n] = i;
            e->b_want[n] = s->n_cache == p->n_prompt - 1; /* logits only for the last prompt token */
            if (e->b_want[n]) e->b_slot_of_row[rows++] = i;
            s->cache[s->n_cache] = tok;
            s->n_cache++;
            n++;
        }
    }
    if (n == 0) return false;
    if (herd_decode_batch(e->ctx, e->b_tok, e->b_seq, n, e->b_want, e->logits) != HERD_OK) {
        /* cannot happen for validated requests; fail every request in the batch rather than loop */
        char msg[512];
        snprintf(msg, sizeof msg, "engine: %s", herd_last_error());
        for (int i = 0; i < np; i++)
            if (e->slots[i].st != SLOT_IDLE) {
                emit_error(e->slots[i].req, msg);
                e->slots[i].n_cache = 0;
                herd_seq_truncate(e->ctx, i, 0);
                req_unref(e->slots[i].req);
                e->slots[i].req = NULL;
                slot_finish(e, &e->slots[i], ENGINE_FINISH_CANCELLED);
            }
        return true;
    }
    /* prompts that just finished prefilling go to the prefix cache now, for requests that come meanwhile */
    for (int i = 0; i < np && e->pc; i++)
        if (e->slots[i].st == SLOT_PREFILL && e->slots[i].n_cache == e->slots[i].req->p.n_prompt) pc_offer(e, i);
    /* sample: a decoding slot's rows in order, keeping each draft while it is the token sampled before it */
    for (int row = 0; row < rows;) {
        int si = e->b_slot_of_row[row];
        slot *s = &e->slots[si];
        int64_t k = s->n_draft, acc = 0;
        for (int64_t j = 0; j <= k; j++) {
            slot_sample(e, s, e->logits + (row + j) * e->n_vocab);
            if (j == k || s->st != SLOT_DECODE || s->next != s->drafts[j]) break;
            s->cache[s->n_cache++] = s->drafts[j]; /* accepted: its KV is in place, its row comes next */
            e->spec_accepted++;
            acc++;
        }
        if (k > 0) { /* drop the rejected drafts' positions */
            s->lookup_max = spec_lookup_next_max(s->lookup_max, k, acc, 1, e->draft_max);
            e->spec_drafted += (uint64_t)k;
            herd_seq_truncate(e->ctx, si, s->n_cache);
        }
        s->n_draft = 0;
        row += (int)(1 + k);
    }
    publish_stats(e);
    return true;
}

static void *engine_main(void *arg) {
    engine *e = arg;
    for (;;) {
        if (step(e)) continue;
        publish_stats(e);
        pthread_mutex_lock(&e->mu);
        /* idle: sleep until a request comes (a busy slot that got nothing to run is waiting for a
         * cancelled request's cleanup, which the next step does) */
        while (!e->q_head && !e->stopping && e->n_busy == 0 && !(e->op && !e->op->done)) pthread_cond_wait(&e->cv, &e->mu);
        bool quit = e->stopping && !e->q_head && e->n_busy == 0;
        if (quit && e->op && !e->op->done) { /* a slot action that came while stopping: refused, not left waiting */
            e->op->rc = HERD_E_RANGE;
            snprintf(e->op->err, sizeof e->op->err, "shutting down: the server is not taking new requests");
            e->op->done = true;
            pthread_cond_broadcast(&e->op_cv);
        }
        if (e->stopping && !e->drain) {
            /* cancel whatever is left */
            for (engine_req *r = e->q_head; r; r = r->next) atomic_store(&r->cancelled, true);
            for (int i = 0; i < e->cfg.n_parallel; i++)
                if (e->slots[i].req) atomic_store(&e->slots[i].req->cancelled, true);
        }
        pthread_mutex_unlock(&e->mu);
        if (quit) break;
        if (e->stopping && !e->drain) {
            /* queued-but-unassigned requests end here */
            pthread_mutex_lock(&e->mu);
            engine_req *r = e->q_head;
            e->q_head = e->q_tail = NULL;
            e->n_queued = 0;
            pthread_mutex_unlock(&e->mu);
            while (r) {
                engine_req *nx = r->next;
                engine_event ev = {.kind = ENGINE_EV_DONE, .finish = ENGINE_FINISH_CANCELLED, .n_prompt = r->p.n_prompt};
                req_push(r, &ev);
                req_unref(r);
                r = nx;
            }
        }
    }
    return NULL;
}

int engine_new(herd_model *m, const engine_config *cfg, engine **out) {
    *out = NULL;
    if (cfg->n_parallel < 1 || cfg->n_ctx_slot < 1 || cfg->max_queue < 0)
        return herd_err(HERD_E_ARG, "engine: need >= 1 slot, a positive context and a non-negative queue");
    engine *e = herd_xcalloc(1, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->m = m;
    e->cfg = *cfg;
    if (e->cfg.n_batch <= 0) e->cfg.n_batch = 512;
    if (e->cfg.n_batch < e->cfg.n_parallel) e->cfg.n_batch = e->cfg.n_parallel;
    herd_context_params cp = herd_context_default_params();
    cp.n_ctx = cfg->n_ctx_slot;
    cp.n_seq = cfg->n_parallel;
    cp.n_batch = e->cfg.n_batch;
    cp.n_threads = cfg->n_threads;
    cp.kv_type = cfg->kv_type;
    int rc = herd_context_new(m, &cp, &e->ctx);
    if (rc) {
        engine_free(e, false);
        return rc;
    }
    e->n_vocab = herd_vocab_n_tokens(m);
    e->python_tag = herd_vocab_find(m, "<|python_tag|>");
    pthread_mutex_init(&e->op_mu, NULL);
    pthread_cond_init(&e->op_cv, NULL);
    if (cfg->cache_ram > 0 && herd_seq_kv_bytes_per_pos(e->ctx) > 0) { /* 0: not readable (herd.h) */
        e->pc = prefix_cache_new(PC_BLOCK, (size_t)(PC_BLOCK * herd_seq_kv_bytes_per_pos(e->ctx)), cfg->cache_ram);
        e->pc_blocks = herd_xmalloc((size_t)(cfg->n_ctx_slot / PC_BLOCK + 2) * sizeof *e->pc_blocks);
        e->stats.pc_budget = cfg->cache_ram;
    }
    e->slots = herd_xcalloc((size_t)cfg->n_parallel, sizeof *e->slots);
    for (int i = 0; i < cfg->n_parallel; i++) e->slots[i].cache = herd_xmalloc((size_t)cfg->n_ctx_slot * sizeof(int32_t));
    int64_t nb = e->cfg.n_batch;
    e->b_tok = herd_xmalloc((size_t)nb * sizeof *e->b_tok);
    e->b_seq = herd_xmalloc((size_t)nb * sizeof *e->b_seq);
    e->b_want = herd_xmalloc((size_t)nb * sizeof *e->b_want);
    if (cfg->lookup_ngram > 0 || cfg->draft) {
        e->draft_max = cfg->draft_max > 0 ? cfg->draft_max : 16;
        for (int i = 0; i < cfg->n_parallel; i++) {
            e->slots[i].drafts = herd_xmalloc((size_t)e->draft_max * sizeof(int32_t));
            if (cfg->draft) e->slots[i].dcache = herd_xmalloc((size_t)cfg->n_ctx_slot * sizeof(int32_t));
        }
    }
    if (cfg->draft) {
        herd_context_params dp = herd_context_default_params();
        dp.n_ctx = cfg->n_ctx_slot;
        dp.n_seq = cfg->n_parallel;
        dp.n_batch = e->cfg.n_batch;
        dp.n_threads = cfg->n_threads;
        if ((rc = herd_context_new(cfg->draft, &dp, &e->dctx)) != HERD_OK) {
            engine_free(e, false);
            return rc;
        }
        e->d_tok = herd_xmalloc((size_t)nb * sizeof *e->d_tok);
        e->d_seq = herd_xmalloc((size_t)nb * sizeof *e->d_seq);
        e->d_want = herd_xmalloc((size_t)nb * sizeof *e->d_want);
        e->dlogits = herd_xmalloc((size_t)herd_vocab_n_tokens(cfg->draft) * sizeof(float));
    }
    /* logits rows: one per decoding slot and its drafts, or per prompt ending in the step */
    e->rows_cap = (int64_t)cfg->n_parallel * (1 + e->draft_max);
    if (e->rows_cap > nb + cfg->n_parallel) e->rows_cap = nb + cfg->n_parallel;
    e->b_slot_of_row = herd_xmalloc((size_t)e->rows_cap * sizeof *e->b_slot_of_row);
    e->logits = malloc((size_t)e->rows_cap * (size_t)e->n_vocab * sizeof(float));
    if (!e->logits) {
        engine_free(e, false);
        return herd_err(HERD_E_NOMEM, "engine: out of memory for logits");
    }
    if (pthread_create(&e->th, NULL, engine_main, e) != 0) {
        engine_free(e, false);
        return herd_err(HERD_E_NOMEM, "engine: cannot start its thread");
    }
    e->started = true;
    *out = e;
    return HERD_OK;
}

void engine_close(engine *e) {
    pthread_mutex_lock(&e->mu);
    e->closing = true;
    pthread_mutex_unlock(&e->mu);
}

void engine_free(engine *e, bool drain) {
    if (!e) return;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        e->closing = e->stopping = true;
        e->drain = drain;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->th, NULL);
    }
    for (int i = 0; e->slots && i < e->cfg.n_parallel; i++) {
        if (e->slots[i].req) slot_finish(e, &e->slots[i], ENGINE_FINISH_CANCELLED);
        free(e->slots[i].cache);
        free(e->slots[i].drafts);
        free(e->slots[i].dcache);
    }
    herd_context_free(e->dctx);
    free(e->d_tok);
    free(e->d_seq);
    free(e->d_want);
    free(e->dlogits);
    free(e->slots);
    herd_context_free(e->ctx);
    free(e->b_tok);
    free(e->b_seq);
    free(e->b_want);
    free(e->b_slot_of_row);
    free(e->logits);
    prefix_cache_free(e->pc);
    free(e->pc_blocks);
    if (e->n_vocab) { /* initialized together with the vocabulary size */
        pthread_mutex_destroy(&e->op_mu);
        pthread_cond_destroy(&e->op_cv);
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

static void free_params(engine_params *p) {
    free(p->prompt);
    free(p->forced);
    p->forced = NULL;
    for (int i = 0; i < p->n_stop; i++) free(p->stop[i]);
    free(p->stop);
    herd_constraint_free(p->constraint);
    p->constraint = NULL;
    free_shift(p);
    p->prompt = NULL;
    p->stop = NULL;
}

int engine_submit(engine *e, engine_params *p, engine_req **out) {
    *out = NULL;
    if (p->n_prompt <= 0) {
        free_params(p);
        return herd_err(HERD_E_ARG, "the prompt is empty");
    }
    if (p->lora < 0 || p->lora > e->cfg.n_loras) {
        int k = p->lora;
        free_params(p);
        return herd_err(HERD_E_ARG, "adapter %d is not in [0, %d]", k, e->cfg.n_loras);
    }
    int64_t need = p->n_prompt + (p->embedding ? 0 : (p->max_tokens > 0 ? p->max_tokens : 1));
    if (need > e->cfg.n_ctx_slot) {
        int64_t np = p->n_prompt, mt = p->max_tokens;
        free_params(p);
        if (mt > 0)
            return herd_err(HERD_E_RANGE,
                            "this request needs %lld tokens (%lld prompt + %lld max_tokens) but the context holds %lld",
                            (long long)need, (long long)np, (long long)mt, (long long)e->cfg.n_ctx_slot);
        return herd_err(HERD_E_RANGE, "the prompt has %lld tokens but the context holds %lld%s", (long long)np,
                        (long long)e->cfg.n_ctx_slot, p->embedding ? "" : " (and one more is needed to generate)");
    }
    engine_req *r = herd_xcalloc(1, sizeof *r);
    r->p = *p;
    r->n_prompt0 = r->conv_len = p->n_prompt;
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->refs, 2);
    pthread_mutex_lock(&e->mu);
    int rc = HERD_OK;
    if (e->closing) rc = herd_err(HERD_E_RANGE, "shutting down: the server is not taking new requests");
    else if (e->n_queued >= e->cfg.max_queue && e->n_busy + e->n_queued >= e->cfg.n_parallel)
        rc = herd_err(HERD_E_RANGE, "queue full: %d requests are waiting for %d slots", e->n_queued, e->cfg.n_parallel);
    if (rc == HERD_OK) {
        if (e->q_tail) e->q_tail->next = r;
        else e->q_head = r;
        e->q_tail = r;
        e->n_queued++;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    if (rc != HERD_OK) {
        atomic_store(&r->refs, 1);
        req_unref(r);
        return rc;
    }
    *out = r;
    return HERD_OK;
}

void engine_get_stats(engine *e, engine_stats *s) {
    pthread_mutex_lock(&e->mu);
    *s = e->stats;
    s->queued = e->n_queued;
    s->n_parallel = e->cfg.n_parallel;
    s->active = e->n_busy;
    s->kv_total = (int64_t)e->cfg.n_parallel * e->cfg.n_ctx_slot;
    pthread_mutex_unlock(&e->mu);
}

const herd_model *engine_model(const engine *e) {
    return e->m;
}
