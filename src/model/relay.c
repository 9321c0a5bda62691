/* The decode relay (relay.h). */
#include "relay.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "matmul.h"
#include "ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Phase numbers: step << STEP_SHIFT | index of the phase in the step, so that a thread still holding an
 * old step's numbers never mistakes a later step's phase for its own. The phase counter packs the phase
 * with its committed chunks (COUNT_BITS), the claim word with its next chunk; a chunk's state word is
 * phase << 2 | COMMITTING / COMMITTED (a smaller phase: not committed in this one). 51 bits of phase
 * leave 2^39 steps. */
#define STEP_SHIFT 12
#define MAX_PHASES (1 << STEP_SHIFT)
#define COUNT_BITS 13
#define MAX_CHUNKS ((1 << COUNT_BITS) - 1)
#define COMMITTING 1u
#define COMMITTED 2u

/* Chunks per thread of a matmul phase: small chunks make a chunk computed twice cheap. */
#define RELAY_CHUNKS_PER_THREAD 16
/* SwiGLU elements per chunk */
#define SWIGLU_CHUNK 4096
/* A thread that has nothing left to claim waits for a chunk another holds this long (ns) beyond twice the
 * phase's recent chunk time before computing it itself: a running holder finishes within that, a
 * descheduled one would hold it for a time slice (milliseconds). */
#define BACKUP_SLACK_NS 2000

enum { PH_NORM, PH_MM, PH_ROPE, PH_ATTN, PH_SWIGLU };

typedef struct {
    int kind;
    int64_t layer;
    int64_t n_chunks;
    const float *norm_w; /* PH_NORM: the norm's weights */
    bool add;            /* PH_NORM: x += h first (the previous block's output) */
    bool final;          /* PH_NORM: the output norm (hidden: into the step's out); PH_MM: the logits */
    matmul_pass *mp;     /* PH_MM */
    const float *in;     /* PH_MM: the input row */
    _Atomic int64_t est_ns; /* PH_*: a recent chunk's time */
} phase;

typedef struct {
    float *o;            /* a chunk's outputs */
    uint8_t *kv;         /* PH_ROPE: the K row, then the V row, in the cache's types */
    uint8_t *xq;         /* PH_MM: the converted input */
    uint64_t xq_phase;   /* the phase (+ 1) whose input xq holds; 0 none */
    float *attn_scratch;
} priv;

struct relay {
    relay_bufs b;
    int n_threads;
    int64_t group, q_dim, kv_dim;
    phase *ph;
    int64_t n_layer_ph; /* phases of the layers; then the output norm, then the logits */
    priv *pv;           /* [n_threads] */
    void *mem;
    /* the step: written by the caller before it publishes step */
    int64_t n_step;
    int32_t seq;
    int64_t pos;
    const float *cs;
    float *out;
    bool hidden;
    uint64_t next_step;
    _Alignas(64) _Atomic uint64_t step;
    _Alignas(64) _Atomic uint64_t pc;    /* phase << COUNT_BITS | committed chunks */
    _Alignas(64) _Atomic uint64_t claim; /* phase << COUNT_BITS | next unclaimed chunk */
    _Alignas(64) _Atomic uint64_t cst[MAX_CHUNKS];
};

/* process-wide counts (relay_stats) */
static _Atomic uint64_t g_steps, g_backups, g_lost;

void relay_stats(uint64_t *steps, uint64_t *backups, uint64_t *lost) {
    *steps = atomic_load_explicit(&g_steps, memory_order_relaxed);
    *backups = atomic_load_explicit(&g_backups, memory_order_relaxed);
    *lost = atomic_load_explicit(&g_lost, memory_order_relaxed);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the phase list ------------------------------------------------------------------------------ */

static phase *add_phase(phase *ph, int64_t *n, int kind, int64_t layer, int64_t n_chunks) {
    phase *p = &ph[(*n)++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->layer = layer;
    p->n_chunks = n_chunks;
    return p;
}

/* One matmul phase for weights sharing an input, or one per weight where they cannot share a pass (as
 * matmul_multi would run them). false when a pass has too many chunks. */
static bool add_matmul(relay *r, int64_t *n, int64_t layer, const matmul_out *outs, int n_outs, const float *in,
                       bool final) {
    int per = RELAY_CHUNKS_PER_THREAD;
    matmul_pass *mp = matmul_pass_new(outs, n_outs, r->n_threads, per);
    if (!mp) {
        for (int i = 0; i < n_outs; i++)
            if (!add_matmul(r, n, layer, &outs[i], 1, in, final)) return false;
        return true;
    }
    if (matmul_pass_chunks(mp) > MAX_CHUNKS) {
        matmul_pass_free(mp);
        return false;
    }
    phase *p = add_phase(r->ph, n, PH_MM, layer, matmul_pass_chunks(mp));
    p->mp = mp;
    p->in = in;
    p->final = final;
    return true;
}

/* The phase array's size (relay_new refuses a model for which it exceeds MAX_PHASES) */
static int64_t max_phases(const herd_model *m) {
    return m->hp.n_layer * 12 + 3; /* a layer: 4 serial / per-head phases + up to 7 matmul passes */
}

static bool build_phases(relay *r) {
    const herd_model *m = r->b.m;
    const model_hparams *hp = &m->hp;
    const relay_bufs *b = &r->b;
    int64_t n = 0;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const layer_weights *L = &m->layers[l];
        phase *p = add_phase(r->ph, &n, PH_NORM, l, 1);
        p->norm_w = L->attn_norm;
        p->add = l > 0;
        const matmul_out qkv[3] = {{&L->wq, b->q, r->q_dim}, {&L->wk, b->k, r->kv_dim}, {&L->wv, b->v, r->kv_dim}};
        if (!add_matmul(r, &n, l, qkv, 3, b->h, false)) return false;
        add_phase(r->ph, &n, PH_ROPE, l, 1);
        add_phase(r->ph, &n, PH_ATTN, l, hp->n_head_kv);
        const matmul_out o = {&L->wo, b->h, hp->n_embd};
        if (!add_matmul(r, &n, l, &o, 1, b->att, false)) return false;
        p = add_phase(r->ph, &n, PH_NORM, l, 1);
        p->norm_w = L->ffn_norm;
        p->add = true;
        const matmul_out gu[2] = {{&L->w_gate, b->gate, hp->n_ff}, {&L->w_up, b->up, hp->n_ff}};
        if (!add_matmul(r, &n, l, gu, 2, b->h, false)) return false;
        add_phase(r->ph, &n, PH_SWIGLU, l, (hp->n_ff + SWIGLU_CHUNK - 1) / SWIGLU_CHUNK);
        const matmul_out d = {&L->w_down, b->h, hp->n_embd};
        if (!add_matmul(r, &n, l, &d, 1, b->gate, false)) return false;
    }
    r->n_layer_ph = n;
    phase *p = add_phase(r->ph, &n, PH_NORM, hp->n_layer, 1);
    p->norm_w = m->output_norm;
    p->add = true;
    p->final = true;
    /* the logits: one weight, so one pass, the last phase (relay_decode counts on it) */
    const matmul_out lo = {&m->output, NULL, hp->n_vocab};
    return add_matmul(r, &n, hp->n_layer, &lo, 1, b->h, true);
}

/* ---- scratch ------------------------------------------------------------------------------------- */

typedef struct {
    int64_t o_floats, kv_bytes, xq_bytes, attn_floats;
} priv_sizes;

static int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

static int64_t round64(int64_t b) {
    return (b + 63) / 64 * 64;
}

static priv_sizes sizes_of(const relay *r) {
    const model_hparams *hp = &r->b.m->hp;
    priv_sizes z = {0};
    z.o_floats = max64(2 * hp->n_embd, r->q_dim + r->kv_dim);
    z.o_floats = max64(z.o_floats, r->group * hp->head_dim);
    z.o_floats = max64(z.o_floats, SWIGLU_CHUNK);
    for (int64_t i = 0; i < r->n_layer_ph + 2; i++)
        if (r->ph[i].kind == PH_MM) {
            z.o_floats = max64(z.o_floats, matmul_pass_chunk_floats(r->ph[i].mp));
            z.xq_bytes = max64(z.xq_bytes, matmul_pass_xq_bytes(r->ph[i].mp));
        }
    z.kv_bytes = r->b.kv->row_bytes_k + r->b.kv->row_bytes_v;
    z.attn_floats = kernels_attn_scratch_floats(hp->head_dim, r->group);
    return z;
}

static int64_t priv_bytes(const priv_sizes *z) {
    return round64(z->o_floats * 4) + round64(z->kv_bytes) + round64(z->xq_bytes) + round64(z->attn_floats * 4);
}

uint64_t relay_scratch_bytes(const herd_model *m, int n_threads) {
    /* an upper bound: a chunk's outputs are at most its pass's rows (the logits', or gate and up) */
    const model_hparams *hp = &m->hp;
    int64_t nth = n_threads < 1 ? 1 : n_threads, kv_dim = hp->n_head_kv * hp->head_dim;
    int64_t per = max64(max64(2 * hp->n_embd, hp->n_head * hp->head_dim + 2 * kv_dim), SWIGLU_CHUNK);
    per = max64(per, max64(hp->n_vocab, 2 * hp->n_ff));
    int64_t bytes = per * 4 + 2 * kv_dim * 4 + 4 * max64(hp->n_ff, hp->n_embd) + 4 * 64 +
                    kernels_attn_scratch_floats(hp->head_dim, hp->n_head / hp->n_head_kv) * 4;
    return (uint64_t)(nth * bytes) + (uint64_t)max_phases(m) * sizeof(phase) + sizeof(relay);
}

/* ---- one phase ----------------------------------------------------------------------------------- */

/* Chunk c of phase ph into the thread's scratch. */
static void compute(relay *r, const phase *ph, uint64_t p, int64_t c, priv *pv) {
    const relay_bufs *b = &r->b;
    const model_hparams *hp = &b->m->hp;
    const int64_t E = hp->n_embd, hd = hp->head_dim;
    switch (ph->kind) {
    case PH_NORM: { /* o: [x + h][rmsnorm of it] */
        float *xn = pv->o, *hn = pv->o + E;
        if (ph->add)
            for (int64_t i = 0; i < E; i++) xn[i] = b->x[i] + b->h[i];
        else memcpy(xn, b->x, (size_t)E * sizeof(float));
        model_rmsnorm(hn, xn, ph->norm_w, E, hp->norm_eps);
        break;
    }
    case PH_MM:
        if (pv->xq_phase != p + 1) {
            matmul_pass_convert(ph->mp, ph->in, pv->xq);
            pv->xq_phase = p + 1;
        }
        matmul_pass_chunk(ph->mp, c, pv->xq, pv->o);
        break;
    case PH_ROPE: { /* o: [q rotated][k rotated]; kv: k, v in the cache's types */
        const kv_cache *kv = b->kv;
        float *q = pv->o, *k = pv->o + r->q_dim;
        memcpy(q, b->q, (size_t)r->q_dim * sizeof(float));
        memcpy(k, b->k, (size_t)r->kv_dim * sizeof(float));
        model_rope_apply(q, hp->n_head, hd, r->cs, b->m->rope_half_split);
        model_rope_apply(k, hp->n_head_kv, hd, r->cs, b->m->rope_half_split);
        kernels_type(kv->type_k)->from_f32(k, pv->kv, r->kv_dim);
        kernels_type(kv->type_v)->from_f32(b->v, pv->kv + kv->row_bytes_k, r->kv_dim);
        break;
    }
    case PH_ATTN: { /* c: the KV head; o: its group of query heads' outputs */
        const kv_cache *kv = b->kv;
        const float *qp[64];
        float *op[64];
        int64_t nkv[64];
        for (int64_t g = 0; g < r->group; g++) {
            qp[g] = b->q + (c * r->group + g) * hd;
            op[g] = pv->o + g * hd;
            nkv[g] = r->pos + 1;
        }
        const kernel_attn_kv akv = {.head_dim = hd,
                                    .type_k = kv->type_k,
                                    .type_v = kv->type_v,
                                    .k = (const uint8_t *)kv_k_row(kv, r->seq, ph->layer, 0) + kv_offset_k(kv, c * hd),
                                    .v = (const uint8_t *)kv_v_row(kv, r->seq, ph->layer, 0) + kv_offset_v(kv, c * hd),
                                    .stride_k = kv->row_bytes_k,
                                    .stride_v = kv->row_bytes_v,
                                    .scale = 1.0f / sqrtf((float)hd)};
        kernels_vec()->attn(&akv, r->group, qp, nkv, op, pv->attn_scratch);
        break;
    }
    case PH_SWIGLU: {
        int64_t a = c * SWIGLU_CHUNK, e = a + SWIGLU_CHUNK < hp->n_ff ? a + SWIGLU_CHUNK : hp->n_ff;
        memcpy(pv->o, b->gate + a, (size_t)(e - a) * sizeof(float));
        model_swiglu(pv->o, b->up + a, e - a);
        break;
    }
    }
}

/* Copies chunk c's outputs from the thread's scratch to where the next phases read them. */
static void publish_chunk(relay *r, const phase *ph, int64_t c, const priv *pv) {
    const relay_bufs *b = &r->b;
    const model_hparams *hp = &b->m->hp;
    const int64_t E = hp->n_embd, hd = hp->head_dim;
    switch (ph->kind) {
    case PH_NORM:
        if (ph->add) memcpy(b->x, pv->o, (size_t)E * sizeof(float));
        memcpy(ph->final && r->hidden ? r->out : b->h, pv->o + E, (size_t)E * sizeof(float));
        break;
    case PH_MM: matmul_pass_commit(ph->mp, c, pv->o, ph->final ? r->out : NULL); break;
    case PH_ROPE: {
        const kv_cache *kv = b->kv;
        memcpy(b->q, pv->o, (size_t)r->q_dim * sizeof(float));
        memcpy(kv_k_row(kv, r->seq, ph->layer, r->pos), pv->kv, (size_t)kv->row_bytes_k);
        memcpy(kv_v_row(kv, r->seq, ph->layer, r->pos), pv->kv + kv->row_bytes_k, (size_t)kv->row_bytes_v);
        break;
    }
    case PH_ATTN: memcpy(b->att + c * r->group * hd, pv->o, (size_t)(r->group * hd) * sizeof(float)); break;
    case PH_SWIGLU: {
        int64_t a = c * SWIGLU_CHUNK, e = a + SWIGLU_CHUNK < hp->n_ff ? a + SWIGLU_CHUNK : hp->n_ff;
        memcpy(b->gate + a, pv->o, (size_t)(e - a) * sizeof(float));
        break;
    }
    }
}

/* The next unclaimed chunk of phase p (of n), or -1. */
static int64_t claim_chunk(relay *r, uint64_t p, int64_t n) {
    uint64_t w = atomic_load(&r->claim);
    for (;;) {
        uint64_t ph = w >> COUNT_BITS;
        if (ph > p) return -1;
        int64_t k = ph == p ? (int64_t)(w & MAX_CHUNKS) : 0;
        if (k >= n) return -1;
        if (atomic_compare_exchange_weak(&r->claim, &w, p << COUNT_BITS | (uint64_t)(k + 1))) return k;
    }
}

/* Lands chunk c of phase p from this thread's scratch unless another copy landed (or is landing) first;
 * the chunk completing the phase opens the next one (next: its number). */
static void commit(relay *r, const phase *ph, uint64_t p, uint64_t next, int64_t c, const priv *pv) {
    uint64_t w = atomic_load(&r->cst[c]);
    do
        if ((w >> 2) >= p) {
            atomic_fetch_add_explicit(&g_lost, 1, memory_order_relaxed);
            return;
        }
    while (!atomic_compare_exchange_weak(&r->cst[c], &w, p << 2 | COMMITTING));
    publish_chunk(r, ph, c, pv);
    atomic_store(&r->cst[c], p << 2 | COMMITTED);
    w = atomic_load(&r->pc);
    for (;;) {
        HERD_ASSERT(w >> COUNT_BITS == p);
        uint64_t cnt = (w & MAX_CHUNKS) + 1;
        uint64_t nw = cnt == (uint64_t)ph->n_chunks ? next << COUNT_BITS : w + 1;
        if (atomic_compare_exchange_weak(&r->pc, &w, nw)) return;
    }
}

static bool phase_done(relay *r, uint64_t p) {
    return atomic_load(&r->pc) >> COUNT_BITS > p;
}

static void run_chunk(relay *r, phase *ph, uint64_t p, uint64_t next, int64_t c, priv *pv) {
    int64_t t0 = now_ns();
    compute(r, ph, p, c, pv);
    /* a chunk during which the thread lost its core took a time slice: counted as at most 4x the estimate,
     * else the others would wait slices for a held chunk before computing it themselves */
    int64_t dt = now_ns() - t0, e = atomic_load_explicit(&ph->est_ns, memory_order_relaxed);
    if (e && dt > 4 * e) dt = 4 * e;
    atomic_store_explicit(&ph->est_ns, e ? (e + dt) / 2 : dt, memory_order_relaxed);
    commit(r, ph, p, next, c, pv);
}

/* Phase p (ph) on thread ith: returns once every chunk is committed. */
static void run_phase(relay *r, phase *ph, uint64_t p, uint64_t next, int ith) {
    priv *pv = &r->pv[ith];
    if (phase_done(r, p)) return;
    for (int64_t c; (c = claim_chunk(r, p, ph->n_chunks)) >= 0;) run_chunk(r, ph, p, next, c, pv);
    /* the rest are held by others: wait a little, then compute one that is still missing */
    int64_t t0 = now_ns(), start = ith;
    for (unsigned i = 0; !phase_done(r, p); i++) {
        CPU_RELAX();
        if (i % 16) continue;
        int64_t limit = 2 * atomic_load_explicit(&ph->est_ns, memory_order_relaxed) + BACKUP_SLACK_NS;
        if (now_ns() - t0 < limit) continue;
        int64_t n = ph->n_chunks, c = -1;
        for (int64_t k = 0; k < n && c < 0; k++) {
            int64_t cc = (start + k) % n;
            if (atomic_load(&r->cst[cc]) >> 2 < p) c = cc;
        }
        if (c < 0) continue; /* the rest are being copied */
        start = c + 1;
        atomic_fetch_add_explicit(&g_backups, 1, memory_order_relaxed);
        run_chunk(r, ph, p, next, c, pv);
        t0 = now_ns();
    }
}

/* The pool's team function: every thread walks the current step's phases. */
static void relay_step(void *arg, int ith) {
    relay *r = arg;
    uint64_t step = atomic_load(&r->step);
    int64_t n = r->n_step; /* a later step's count if this one is over: then every phase below is done */
    if (n > MAX_PHASES) n = MAX_PHASES;
    for (int64_t i = 0; i < n; i++) {
        uint64_t p = step << STEP_SHIFT | (uint64_t)i, next = i + 1 == n ? (step + 1) << STEP_SHIFT : p + 1;
        run_phase(r, &r->ph[i], p, next, ith);
    }
}

/* ---- the relay ----------------------------------------------------------------------------------- */

relay *relay_new(const relay_bufs *b) {
    const herd_model *m = b->m;
    const model_hparams *hp = &m->hp;
    const int nth = pool_size(b->pool);
    if (max_phases(m) > MAX_PHASES || (int64_t)nth * RELAY_CHUNKS_PER_THREAD > MAX_CHUNKS ||
        hp->n_head / hp->n_head_kv > 64 || hp->n_head_kv > MAX_CHUNKS)
        return NULL;
    relay *r = herd_malloc64(sizeof *r);
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->b = *b;
    r->n_threads = nth;
    r->group = hp->n_head / hp->n_head_kv;
    r->q_dim = hp->n_head * hp->head_dim;
    r->kv_dim = hp->n_head_kv * hp->head_dim;
    r->ph = calloc((size_t)max_phases(m), sizeof *r->ph);
    r->pv = calloc((size_t)nth, sizeof *r->pv);
    if (!r->ph || !r->pv || !build_phases(r)) {
        relay_free(r);
        return NULL;
    }
    priv_sizes z = sizes_of(r);
    int64_t per = priv_bytes(&z);
    r->mem = herd_malloc64((size_t)(per * nth));
    if (!r->mem) {
        relay_free(r);
        return NULL;
    }
    for (int i = 0; i < nth; i++) {
        uint8_t *base = (uint8_t *)r->mem + per * i;
        priv *pv = &r->pv[i];
        pv->o = (float *)base;
        base += round64(z.o_floats * 4);
        pv->kv = base;
        base += round64(z.kv_bytes);
        pv->xq = base;
        base += round64(z.xq_bytes);
        pv->attn_scratch = (float *)base;
    }
    /* step 0 is never run: phase 0 would look committed in the zeroed state words */
    r->next_step = 1;
    atomic_store(&r->pc, (uint64_t)1 << STEP_SHIFT << COUNT_BITS);
    pool_set_team(b->pool, relay_step, r);
    return r;
}

void relay_free(relay *r) {
    if (!r) return;
    if (r->ph)
        for (int64_t i = 0; i < max_phases(r->b.m); i++) matmul_pass_free(r->ph[i].mp);
    free(r->ph);
    free(r->pv);
    free(r->mem);
    free(r);
}

void relay_decode(relay *r, int32_t seq, int64_t pos, const float *rope_cs, float *out, bool hidden) {
    r->seq = seq;
    r->pos = pos;
    r->cs = rope_cs;
    r->out = out;
    r->hidden = hidden;
    r->n_step = !out ? r->n_layer_ph : hidden ? r->n_layer_ph + 1 : r->n_layer_ph + 2;
    atomic_store(&r->step, r->next_step++);
    atomic_fetch_add_explicit(&g_steps, 1, memory_order_relaxed);
    pool_team(r->b.pool); /* runs relay_step here too: back when the last phase is committed */
}
