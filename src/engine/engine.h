/* The engine: continuous batching of many requests over one model, on one thread.
 *
 * `n_parallel` slots each own one sequence of the context's KV cache. Every step runs one forward
 * pass holding the next token of every decoding slot plus chunks of pending prompts (up to n_batch
 * tokens), then samples each slot that got logits. Requests wait in a bounded FIFO queue for a slot.
 * A slot keeps its tokens' KV after its request ends, so a later request sharing a prefix (the same
 * system prompt) starts from there — or from a copy of another slot's prefix.
 *
 * Threads: only the engine thread touches the context (KV, scratch, threads). Any thread may
 * submit, read events, cancel and release. Each request has its own event queue: the submitter
 * reads token pieces as they become final, then exactly one DONE or ERROR event.
 *
 * Outputs do not depend on what else is in the batch (the forward pass computes every token
 * independently), so greedy requests give the same tokens alone or among others. */
#ifndef HERD_ENGINE_H
#define HERD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "herd.h"

typedef struct engine engine;
typedef struct engine_req engine_req;

typedef struct {
    int n_parallel;     /* slots decoded together */
    int64_t n_ctx_slot; /* KV positions per slot (prompt + generated) */
    int64_t n_batch;    /* most tokens per forward pass */
    int n_threads;
    int kv_type;        /* herd_kv_type */
    int max_queue;      /* waiting requests before submit refuses (HERD_E_RANGE) */
    /* LoRA adapters a request may pick (engine_params.lora), each at its scale; borrowed, they must outlive
     * the engine. A slot's cached prefix is reused only by requests of the same adapter. */
    herd_lora *const *loras;
    const float *lora_scales;
    int n_loras;
    /* prefix cache (prefix_cache.h): up to cache_ram bytes of KV blocks of every computed prefix, reused by
     * any later request with the same leading tokens and adapter; 0: off (only the slots' own caches) */
    uint64_t cache_ram;
    /* speculative decoding in every decoding slot (docs/SPECULATIVE.md): lookup_ngram > 0: prompt lookup with
     * n-grams up to that long; draft: a draft model (borrowed, outlives the engine; the caller checked its
     * vocabulary, herd_vocab_compatible) run greedily in its own context, one sequence per slot. draft_max:
     * most drafted tokens per slot and step (0: 16; the batch's n_batch is shared between the slots). The
     * pending token and the drafts run in the one batched pass; each row is sampled as in plain decoding
     * and a draft is kept while it equals the target's own choice, so greedy output is the plain output
     * and sampled output keeps its distribution (a one-hot draft: accept iff the target's draw equals it). */
    int lookup_ngram;
    herd_model *draft;
    int draft_max;
} engine_config;

#define ENGINE_MAX_TOP 20

/* Context policy shift mid-reply (docs/CONTEXT.md): a shorter prompt of the same conversation, with more of
 * its oldest turns left out. */
typedef struct {
    int32_t *ids;      /* malloc'd, owned by the engine once submitted */
    int64_t n;
    int64_t n_dropped; /* messages it leaves out that the request's prompt still has */
} engine_shift_prompt;

typedef struct {
    int32_t *prompt;            /* moved into the engine by engine_submit (malloc'd) */
    int64_t n_prompt;
    herd_sampler_params sampling;
    int64_t max_tokens;         /* < 0: until end of generation or a full context */
    char **stop;                /* moved into the engine (malloc'd array of malloc'd strings) */
    int n_stop;
    int top_logprobs;           /* < 0: no logprobs; else 0..ENGINE_MAX_TOP alternatives per token */
    bool embedding;             /* embedding request: no generation, DONE carries the vector */
    int pooling;                /* embedding: HERD_POOLING_* (0: mean); NONE: DONE carries n_prompt rows */
    bool no_normalize;          /* embedding: the raw pooled state, not scaled to unit L2 norm */
    bool render_python_tag;     /* write <|python_tag|> into the text (for tool-call parsing) */
    herd_constraint *constraint; /* moved into the engine (freed with the request); NULL: none */
    int lora;                   /* 0: the base model; i in 1..n_loras: engine_config's adapter i - 1 */
    /* test-only scripted model: the generated tokens are these (moved into the engine), the model
     * still runs; after them generation ends as if the last one were end-of-turn */
    int32_t *forced;
    int64_t n_forced;
    /* watch: every TOKEN event carries watch_logprob, the log-softmax of the raw logits at watch_token
     * (Llama Guard's P(unsafe) at the first generated position) */
    bool watch;
    int32_t watch_token;
    /* context policy shift mid-reply: when the slot's context fills while generating, the reply goes on
     * after the conversation loses its oldest turns, as herd chat does it: shift[j] (j = 0.., each one turn
     * shorter; moved into the engine, malloc'd) is taken for the first j from the current one on where
     * ids + reserve fit the context (reserve: max_tokens, or without it the reply so far + a quarter of the
     * context; else the last), the reply so far (its exact ids) is appended, and that prompt is re-prefilled
     * past the prefix it shares with the slot's cache; then generation goes on. When no turn is left to
     * drop, or the new prompt leaves no position free, the reply ends with ENGINE_FINISH_CONTEXT as under
     * stop. Greedy output is exactly a fresh request's on the shifted prompt. n_shift 0: stop. */
    engine_shift_prompt *shift;
    int n_shift;
} engine_params;

enum { ENGINE_EV_TOKEN = 1, ENGINE_EV_DONE = 2, ENGINE_EV_ERROR = 3 };
/* ENGINE_FINISH_CONTEXT: the slot's context filled before max_tokens or a stop (docs/CONTEXT.md) */
enum { ENGINE_FINISH_STOP = 1, ENGINE_FINISH_LENGTH = 2, ENGINE_FINISH_CANCELLED = 3, ENGINE_FINISH_CONTEXT = 4 };

typedef struct {
    int32_t id;
    float logprob;
} engine_top;

typedef struct {
    int kind;
    /* ENGINE_EV_TOKEN: one generated token and the text that became final with it (may be empty:
     * held back, or a stop string began) */
    int32_t token;
    char *text;                 /* owned by the event (engine_event_clear) */
    size_t text_len;
    float logprob;              /* log-softmax of the raw logits, when logprobs were asked for */
    int n_top;
    engine_top top[ENGINE_MAX_TOP];
    double watch_logprob;       /* engine_params.watch: log-softmax of the raw logits at watch_token */
    /* ENGINE_EV_DONE */
    int finish;                 /* ENGINE_FINISH_* */
    int32_t stop_token;         /* the end-of-generation token that ended it (<|eot_id|>, <|eom_id|>), or -1 */
    int64_t n_prompt, n_cached, n_gen;
    int64_t n_dropped;          /* messages left out by context shifts while generating (engine_params.shift) */
    float *embedding;           /* owned; n_embd floats (embedding requests) */
    int64_t n_embd;
    /* ENGINE_EV_ERROR */
    char *error;                /* owned */
} engine_event;

typedef struct {
    int active, queued, n_parallel;
    int64_t kv_used, kv_total;  /* positions held in slots / all slots' positions */
    uint64_t prompt_tokens, cached_tokens, generated_tokens;
    /* the prefix cache: blocks and bytes held, its budget, blocks evicted */
    int64_t pc_blocks;
    uint64_t pc_bytes, pc_budget, pc_evictions;
    uint64_t spec_drafted, spec_accepted; /* speculative decoding: tokens drafted and verified, accepted */
} engine_stats;

/* Starts the engine thread over model m (borrowed; outlives the engine). */
int engine_new(herd_model *m, const engine_config *cfg, engine **out);
/* Stops accepting work; with drain, waits for queued and running requests to finish, else cancels
 * them; then joins the thread and frees everything but requests not yet released. */
void engine_free(engine *e, bool drain);
/* Refuses new submissions (HERD_E_RANGE "shutting down") from now on; running work continues. */
void engine_close(engine *e);

/* Queues a request. On success the engine owns p->prompt and p->stop (also on failure: freed) and
 * *out is the handle to read events from (release it with engine_release). Errors: HERD_E_RANGE
 * with the numbers when the prompt (+ max_tokens) exceeds a slot's context or the queue is full
 * (message starts with "queue full") or the engine is closing ("shutting down"); HERD_E_ARG for an
 * empty prompt or an adapter index out of range. */
int engine_submit(engine *e, engine_params *p, engine_req **out);
/* Waits up to timeout_ms for the next event (-1: forever). false on timeout. After DONE/ERROR,
 * further calls return false at once. */
bool engine_next_event(engine_req *r, engine_event *ev, int timeout_ms);
void engine_event_clear(engine_event *ev);
/* The client went away: the engine frees the slot at its next step. Safe to call any time. */
void engine_cancel(engine_req *r);
/* The submitter is done with the handle (cancels it if still running). */
void engine_release(engine_req *r);

void engine_get_stats(engine *e, engine_stats *s);

/* Slot KV on disk (llama.cpp's /slots/{id}?action=save|restore|erase): save writes slot `slot`'s cached
 * tokens and their KV to path (slot_file.h, atomically); restore loads such a file into the slot (its next
 * request sharing the prefix reuses it); erase forgets the slot's cache. Runs on the engine thread between
 * steps; blocks until done. HERD_E_RANGE for a slot out of range ("slot N does not exist") or busy
 * ("slot N is busy"); HERD_E_IO / HERD_E_FORMAT from the file. OUT: *n_tokens, *n_bytes (file bytes). */
enum { ENGINE_SLOT_SAVE = 0, ENGINE_SLOT_RESTORE = 1, ENGINE_SLOT_ERASE = 2 };
int engine_slot_action(engine *e, int slot, int action, const char *path, int64_t *n_tokens, uint64_t *n_bytes);
const herd_model *engine_model(const engine *e);

#endif
