/* The decode relay: one token's forward pass carried by whichever of the pool's threads is running.
 *
 * The plain pass (forward.c) is driven by the caller: it issues each job, and a worker only helps with the
 * chunks of the job at hand. When the machine is busy every thread gets only a share of a core (2 threads
 * next to 2 busy loops on 2 cores: half a core each), and while the caller is off its core nothing moves:
 * a caller-driven pool decodes at most at the caller's share. The relay makes the whole step a fixed list
 * of phases (per layer: the attention norm, Q/K/V, RoPE and the cache writes, attention per KV head, the
 * output projection, the FFN norm, gate/up, SwiGLU, down; then the output norm and the logits) that every
 * thread walks: each phase is cut into chunks that any thread claims; a thread that finds the phase's
 * chunks all claimed but not finished computes a missing one itself after a short wait (its holder may be
 * off its core), so a thread descheduled in the middle of a chunk holds nobody up.
 *
 * A chunk may therefore be computed twice, and a late thread may still be computing one after its phase
 * (even its step) is over. So no chunk writes shared memory while it computes: each thread computes into
 * scratch of its own and then commits: a CAS on the chunk's state word (tagged with the phase number, which
 * only grows) lets exactly one copy land, and a late thread's CAS fails. The phase whose chunks are all
 * committed advances the phase counter. Inputs a late thread reads may have changed under it: it only
 * ever computes garbage it then throws away (every index it uses is fixed for the step, so it reads in
 * bounds). Each output is computed with the plain pass's functions on the same inputs, so the logits are
 * bit-identical to forward.c's whatever the thread count or timing (tests/test_relay.c).
 *
 * Used for single-token decode steps (no LoRA, no tensor or pipeline parallelism, no observer) while the
 * pool sees other work on its CPUs (pool_contended), or always / never with HERD_RELAY=1 / 0. While it is
 * contended forward.c also keeps the team on its share of the CPUs (pool_pin_here: 2 threads next to 2
 * busy loops on 2 CPUs share one): two relay threads running side by side wait for each other at every
 * phase and share the memory bandwidth, two taking turns on one CPU lose little (92 % of one thread's
 * speed with the CPU to itself). */
#ifndef HERD_MODEL_RELAY_H
#define HERD_MODEL_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "../kv/kv.h"
#include "../thread/pool.h"
#include "model.h"

typedef struct relay relay;

/* forward.c's one-token buffers (each at least one token's worth; the relay reads and writes row 0) */
typedef struct {
    const herd_model *m;
    kv_cache *kv;
    thread_pool *pool;
    float *x, *h, *q, *k, *v, *att, *gate, *up;
} relay_bufs;

/* NULL (no message) when the model is too deep or the pool too wide for its phase numbering. Sets the
 * pool's team function (pool_set_team): one relay per pool. */
relay *relay_new(const relay_bufs *b);
void relay_free(relay *r);
/* Bytes relay_new allocates for a model and thread count. */
uint64_t relay_scratch_bytes(const herd_model *m, int n_threads);

/* One token's pass: its embedding already in x (row 0), its RoPE cos/sin at rope_cs, its position pos in
 * sequence seq (the cache's n_past already counts it). out: n_vocab logits, or with hidden the n_embd
 * normed hidden state; NULL: only the cache is written. */
void relay_decode(relay *r, int32_t seq, int64_t pos, const float *rope_cs, float *out, bool hidden);

/* Since the process started: steps run, chunks a thread computed because their holder had not finished
 * (backups), and computed chunks whose copy did not land (another landed first). */
void relay_stats(uint64_t *steps, uint64_t *backups, uint64_t *lost);

#endif
