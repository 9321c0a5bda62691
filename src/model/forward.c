/* Forward pass (see forward.h for the data flow). Numerics follow llama.cpp where it matters for
 * agreement: RMSNorm sums squares in double, RoPE angles are built by repeated float
 * multiplication of theta_scale (ggml's rope cache), attention in f32 (the kernels' blocked online
 * softmax, kernels.h). */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "../kernels/packed.h"
#include "../thread/pool.h"
#include "matmul.h"
#include "ops.h"
#include "relay.h"

struct forward_state {
    const herd_model *m;
    kv_cache kv;
    thread_pool *pool;
    int64_t n_batch;
    /* scratch, sized for n_batch tokens */
    float *x;          /* [n_batch][n_embd]  residual stream */
    float *h;          /* [n_batch][n_embd]  normed input of a block */
    float *q;          /* [n_batch][n_head * head_dim] */
    float *k, *v;      /* [n_batch][kv_dim] */
    float *att;        /* [n_batch][n_head * head_dim] attention output */
    float *gate, *up;  /* [n_batch][n_ff] */
    float *rope_cs;    /* [n_batch][head_dim/2][2] cos, sin */
    int64_t *pos;      /* [n_batch] position of each token in its sequence */
    int32_t *seq;      /* [n_batch] sequence of each token */
    void *xq;          /* converted activations for matmul */
    /* attention tiles (plan_tiles): tokens of one sequence, up to tile_tokens of them */
    int64_t tile_tokens, tile_q;   /* tokens per tile; queries per tile (x the GQA group) */
    int64_t n_tiles;
    int64_t *tile_tok;             /* [n_batch] token indices, grouped by sequence, batch order within */
    int64_t *tile_beg;             /* [n_batch + 1] tile i is tile_tok[tile_beg[i] .. tile_beg[i+1]) */
    int64_t *seq_off;              /* [n_seq + 1] counting-sort offsets */
    /* per thread: the kernel's scratch and a tile's query / output pointers and key counts */
    int64_t attn_scratch_n;        /* floats per thread */
    float *attn_scratch;           /* [n_threads][attn_scratch_n] */
    const float **attn_q;          /* [n_threads][tile_q] */
    float **attn_o;                /* [n_threads][tile_q] */
    int64_t *attn_nkv;             /* [n_threads][tile_q] */
    /* LoRA (forward_set_lora): each sequence's adapters and their user scales */
    int *lora_n;                   /* [n_seq], NULL until the first set */
    const lora_adapter ***lora_ad; /* [n_seq][lora_n[sq]] */
    float **lora_scale;            /* [n_seq][lora_n[sq]] */
    int64_t n_lora_seqs;           /* sequences with at least one adapter: 0 skips every LoRA step */
    int64_t lora_rank_max;         /* the most ranks of one sequence's adapters on one matrix (summed) */
    float *lora_u;                 /* [LORA_MAX_OUTS][n_batch][lora_rank_max]: A x of each output, token, adapter */
    const forward_tp *tp;          /* tensor parallelism (forward_set_tp), or NULL in a single process */
    const forward_observer *obs;   /* the matmul inputs' observer (forward_set_observer), or NULL */
    relay *relay;                  /* single-token steps carried by any running thread (relay.h), or NULL */
    int relay_mode;                /* HERD_RELAY: 1 every eligible step, 0 none, -1 while the pool is contended */
};

/* Matrices that share one LoRA step (Q, K and V) */
#define LORA_MAX_OUTS 3

/* Queries per attention tile: enough to amortize each K/V block's conversion over many dots, few
 * enough that a long prompt still splits into many work items for the threads. */
#define ATTN_TILE_QUERIES 64

/* 64-byte aligned (herd_malloc64): the kernels read activation rows with 64-byte loads */
static void *alloc_or_null(size_t bytes, bool *ok) {
    void *p = herd_malloc64(bytes);
    if (!p) *ok = false;
    return p;
}

/* Bytes of the activation matmul scratch (s->xq): the largest converted activation block over all matmuls. */
static int64_t xq_bytes(const herd_model *m, int64_t n_batch) {
    const model_hparams *hp = &m->hp;
    int64_t xq = 0;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        weight *lw[MODEL_LAYER_MATRICES];
        model_layer_matrices(&m->layers[l], lw);
        for (int i = 0; i < MODEL_LAYER_MATRICES; i++) {
            int64_t b = matmul_scratch_bytes(lw[i]->type, lw[i]->n_in, n_batch);
            if (b > xq) xq = b;
        }
    }
    int64_t bo = matmul_scratch_bytes(m->output.type, m->output.n_in, n_batch);
    return bo > xq ? bo : xq;
}

uint64_t forward_scratch_bytes(const herd_model *m, int64_t n_seq, int64_t n_batch, int n_threads) {
    /* what forward_state_new allocates besides the KV cache: every term scales with the batch, the
     * threads or the sequences, none with n_ctx (attention is flash-style: no n_ctx x n_ctx anything) */
    const model_hparams *hp = &m->hp;
    const int64_t q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    const int64_t nth = n_threads < 1 ? 1 : n_threads, group = hp->n_head / hp->n_head_kv;
    const int64_t tile_tokens = ATTN_TILE_QUERIES / group > 1 ? ATTN_TILE_QUERIES / group : 1, tile_q = tile_tokens * group;
    uint64_t f = (uint64_t)n_batch * (uint64_t)(2 * hp->n_embd + 2 * q_dim + 2 * kv_dim + 2 * hp->n_ff + hp->head_dim);
    f += (uint64_t)(nth * kernels_attn_scratch_floats(hp->head_dim, tile_q));
    uint64_t b = f * sizeof(float);
    b += (uint64_t)nth * (uint64_t)tile_q * (2 * sizeof(void *) + sizeof(int64_t));
    b += (uint64_t)n_batch * (2 * sizeof(int64_t) + sizeof(int64_t) + sizeof(int32_t)) + (uint64_t)(n_seq + 2) * 8;
    return b + (uint64_t)xq_bytes(m, n_batch) + (nth > 1 ? relay_scratch_bytes(m, (int)nth) : 0);
}

int forward_state_new(const herd_model *m, int64_t n_seq, int64_t n_ctx, int64_t n_batch, int kv_type, int n_threads,
                      forward_state **out) {
    *out = NULL;
    HERD_ASSERT(!m->vocab_only);
    const model_hparams *hp = &m->hp;
    forward_state *s = herd_xcalloc(1, sizeof *s);
    s->m = m;
    s->n_batch = n_batch;
    int64_t q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    int rc = kv_cache_init(&s->kv, HERD_KV_TYPE_K(kv_type), HERD_KV_TYPE_V(kv_type), n_seq, hp->n_layer, n_ctx, kv_dim);
    if (rc) {
        free(s);
        return rc;
    }
    s->pool = pool_new(n_threads);
    if (!s->pool) {
        forward_state_free(s);
        return HERD_E_NOMEM;
    }
    bool ok = true;
    size_t f = sizeof(float);
    s->x = alloc_or_null((size_t)(n_batch * hp->n_embd) * f, &ok);
    s->h = alloc_or_null((size_t)(n_batch * hp->n_embd) * f, &ok);
    s->q = alloc_or_null((size_t)(n_batch * q_dim) * f, &ok);
    s->k = alloc_or_null((size_t)(n_batch * kv_dim) * f, &ok);
    s->v = alloc_or_null((size_t)(n_batch * kv_dim) * f, &ok);
    /* att and gate also receive a tensor-parallel shard's gathered rows: the widths of wo's and w_down's input */
    s->att = alloc_or_null((size_t)(n_batch * m->layers[0].wo.n_in) * f, &ok);
    s->gate = alloc_or_null((size_t)(n_batch * m->layers[0].w_down.n_in) * f, &ok);
    s->up = alloc_or_null((size_t)(n_batch * hp->n_ff) * f, &ok);
    s->rope_cs = alloc_or_null((size_t)(n_batch * hp->head_dim) * f, &ok);
    int64_t nth = n_threads < 1 ? 1 : n_threads, group = hp->n_head / hp->n_head_kv;
    s->tile_tokens = ATTN_TILE_QUERIES / group > 1 ? ATTN_TILE_QUERIES / group : 1;
    s->tile_q = s->tile_tokens * group;
    s->tile_tok = alloc_or_null((size_t)n_batch * sizeof *s->tile_tok, &ok);
    s->tile_beg = alloc_or_null((size_t)(n_batch + 1) * sizeof *s->tile_beg, &ok);
    s->seq_off = alloc_or_null((size_t)(n_seq + 1) * sizeof *s->seq_off, &ok);
    s->attn_scratch_n = kernels_attn_scratch_floats(hp->head_dim, s->tile_q);
    s->attn_scratch = alloc_or_null((size_t)(nth * s->attn_scratch_n) * f, &ok);
    s->attn_q = alloc_or_null((size_t)(nth * s->tile_q) * sizeof *s->attn_q, &ok);
    s->attn_o = alloc_or_null((size_t)(nth * s->tile_q) * sizeof *s->attn_o, &ok);
    s->attn_nkv = alloc_or_null((size_t)(nth * s->tile_q) * sizeof *s->attn_nkv, &ok);
    s->pos = alloc_or_null((size_t)n_batch * sizeof *s->pos, &ok);
    s->seq = alloc_or_null((size_t)n_batch * sizeof *s->seq, &ok);
    /* the largest converted activation block over all matmuls of the model */
    s->xq = alloc_or_null((size_t)xq_bytes(m, n_batch), &ok);
    if (!ok) {
        forward_state_free(s);
        return herd_err(HERD_E_NOMEM, "forward: out of memory for scratch buffers of a %lld-token batch",
                        (long long)n_batch);
    }
    const char *rm = getenv("HERD_RELAY");
    s->relay_mode = rm && !strcmp(rm, "1") ? 1 : rm && !strcmp(rm, "0") ? 0 : -1;
    if (s->relay_mode != 0 && pool_size(s->pool) > 1) {
        const relay_bufs rb = {m, &s->kv, s->pool, s->x, s->h, s->q, s->k, s->v, s->att, s->gate, s->up};
        s->relay = relay_new(&rb); /* NULL (too deep a model): the plain pass */
    }
    *out = s;
    return HERD_OK;
}

void forward_state_free(forward_state *s) {
    if (!s) return;
    pool_free(s->pool); /* first: no worker is in the relay after it */
    relay_free(s->relay);
    kv_cache_free(&s->kv);
    free(s->x);
    free(s->h);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->gate);
    free(s->up);
    free(s->rope_cs);
    free(s->tile_tok);
    free(s->tile_beg);
    free(s->seq_off);
    free(s->attn_scratch);
    free(s->attn_q);
    free(s->attn_o);
    free(s->attn_nkv);
    free(s->pos);
    free(s->seq);
    free(s->xq);
    if (s->lora_n)
        for (int64_t i = 0; i < s->kv.n_seq; i++) free(s->lora_ad[i]), free(s->lora_scale[i]);
    free(s->lora_n);
    free(s->lora_ad);
    free(s->lora_scale);
    free(s->lora_u);
    free(s);
}

void forward_set_tp(forward_state *s, const forward_tp *tp) {
    s->tp = tp;
}

void forward_set_observer(forward_state *s, const forward_observer *obs) {
    s->obs = obs;
}

/* shows the observer the input x [n][ldx] of the n_w weights w (forward_observer) */
static void observe(forward_state *s, const weight *w0, const weight *w1, const weight *w2, const float *x,
                    int64_t ldx, int64_t n) {
    const weight *w[3] = {w0, w1, w2};
    s->obs->matmul_input(s->obs->ctx, w, w2 ? 3 : w1 ? 2 : 1, x, ldx, n);
}

/* a shard's rows of an activation [n][its width] become [n][the whole width] (forward_tp) */
static void tp_gather(forward_state *s, float *buf, int64_t n, int what) {
    if (s->tp && s->tp->gather) s->tp->gather(s->tp->ctx, buf, n, what);
}

kv_cache *forward_kv(forward_state *s) {
    return &s->kv;
}

int64_t forward_n_batch(const forward_state *s) {
    return s->n_batch;
}

/* ---- LoRA ---------------------------------------------------------------------------------------- */

int forward_set_lora(forward_state *s, int32_t seq, const lora_adapter *const *ad, const float *scales, int n) {
    const int64_t n_seq = s->kv.n_seq;
    if (seq < -1 || seq >= n_seq)
        return herd_err(HERD_E_ARG, "lora: sequence %d is not in [0, %lld)", seq, (long long)n_seq);
    if (n < 0 || (n > 0 && (!ad || !scales))) return herd_err(HERD_E_ARG, "lora: no adapters or scales given");
    for (int i = 0; i < n; i++) {
        if (!ad[i] || ad[i]->n_layer != s->m->hp.n_layer)
            return herd_err(HERD_E_ARG, "lora: adapter %d has %lld layers, the model %lld", i,
                            ad[i] ? (long long)ad[i]->n_layer : 0LL, (long long)s->m->hp.n_layer);
        if (!isfinite(scales[i])) return herd_err(HERD_E_ARG, "lora: the scale of adapter %d is not finite", i);
    }
    if (n > 0 && (s->m->shard_n > 1 || s->m->n_stages > 1))
        return herd_err(HERD_E_UNSUPPORTED, "lora: adapters are not supported with --tp or --pp yet");
    if (!s->lora_n) {
        s->lora_n = herd_xcalloc((size_t)n_seq, sizeof *s->lora_n);
        s->lora_ad = herd_xcalloc((size_t)n_seq, sizeof *s->lora_ad);
        s->lora_scale = herd_xcalloc((size_t)n_seq, sizeof *s->lora_scale);
    }
    for (int64_t sq = seq < 0 ? 0 : seq; sq < (seq < 0 ? n_seq : seq + 1); sq++) {
        free(s->lora_ad[sq]);
        free(s->lora_scale[sq]);
        s->lora_ad[sq] = n ? herd_xmalloc((size_t)n * sizeof **s->lora_ad) : NULL;
        s->lora_scale[sq] = n ? herd_xmalloc((size_t)n * sizeof **s->lora_scale) : NULL;
        if (n) memcpy(s->lora_ad[sq], ad, (size_t)n * sizeof *ad), memcpy(s->lora_scale[sq], scales, (size_t)n * sizeof *scales);
        s->lora_n[sq] = n;
    }
    /* the scratch for A x: the largest sum of ranks any sequence needs on one matrix */
    int64_t rmax = 0, active = 0;
    for (int64_t sq = 0; sq < n_seq; sq++) {
        active += s->lora_n[sq] > 0;
        for (int64_t k = 0; k < s->m->hp.n_layer * LORA_N_TARGETS; k++) {
            int64_t sum = 0;
            for (int i = 0; i < s->lora_n[sq]; i++) sum += s->lora_ad[sq][i]->m[k].rank;
            rmax = sum > rmax ? sum : rmax;
        }
    }
    if (rmax > s->lora_rank_max) {
        float *u = malloc((size_t)(LORA_MAX_OUTS * s->n_batch * rmax) * sizeof(float));
        if (!u) return herd_err(HERD_E_NOMEM, "lora: out of memory for a %lld-token batch of rank %lld", (long long)s->n_batch, (long long)rmax);
        free(s->lora_u);
        s->lora_u = u;
        s->lora_rank_max = rmax;
    }
    s->n_lora_seqs = active;
    return HERD_OK;
}

/* One LoRA step: outputs o < n_outs are y_o = W_o x (already computed) of target t_o in this layer. */
typedef struct {
    int target;
    const float *x; /* [n][ldx] the matmul's input */
    int64_t ldx;
    float *y;       /* [n][ldy] its output, updated in place */
    int64_t ldy;
} lora_out;

typedef struct {
    forward_state *s;
    const lora_out *outs;
    int n_outs;
    int64_t n, layer;
} lora_job;

/* u[o][t][k] = dot(A row, x_t) for the k-th rank row over the token's adapters (in order), flat over
 * (o, t, k < lora_rank_max); rows past the token's ranks are skipped. */
static void job_lora_a(void *arg, int ith, int nth) {
    const lora_job *j = arg;
    forward_state *s = j->s;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t R = s->lora_rank_max, total = j->n_outs * j->n * R;
    int64_t i0, i1;
    pool_range(total, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const int64_t o = i / (j->n * R), t = i / R % j->n, k = i % R;
        const int32_t sq = s->seq[t];
        const lora_out *lo = &j->outs[o];
        const int64_t n_in = lora_target_weight(s->m, j->layer, lo->target)->n_in;
        int64_t base = 0;
        for (int a = 0; a < s->lora_n[sq]; a++) {
            const lora_matrix *mt = &s->lora_ad[sq][a]->m[j->layer * LORA_N_TARGETS + lo->target];
            if (k < base + mt->rank) {
                s->lora_u[(o * s->n_batch + t) * R + k] = vo->dot_f32(n_in, mt->a + (k - base) * n_in, lo->x + t * lo->ldx);
                break;
            }
            base += mt->rank;
        }
    }
}

/* y[t][r] += scale_a * dot(B_a row r, u_a) for each of the token's adapters in order, flat over (o, t, r). */
static void job_lora_b(void *arg, int ith, int nth) {
    const lora_job *j = arg;
    forward_state *s = j->s;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t R = s->lora_rank_max;
    int64_t total = 0, i0, i1, beg = 0;
    for (int o = 0; o < j->n_outs; o++) total += j->n * lora_target_weight(s->m, j->layer, j->outs[o].target)->n_out;
    pool_range(total, ith, nth, &i0, &i1);
    for (int o = 0; o < j->n_outs && beg < i1; o++) {
        const lora_out *lo = &j->outs[o];
        const int64_t n_out = lora_target_weight(s->m, j->layer, lo->target)->n_out, end = beg + j->n * n_out;
        for (int64_t i = i0 > beg ? i0 : beg; i < i1 && i < end; i++) {
            const int64_t t = (i - beg) / n_out, r = (i - beg) % n_out;
            const int32_t sq = s->seq[t];
            const float *u = s->lora_u + (o * s->n_batch + t) * R;
            float *y = lo->y + t * lo->ldy + r;
            for (int a = 0; a < s->lora_n[sq]; a++) {
                const lora_adapter *ad = s->lora_ad[sq][a];
                const lora_matrix *mt = &ad->m[j->layer * LORA_N_TARGETS + lo->target];
                if (mt->rank <= 0) continue;
                *y += lora_matrix_scale(ad, mt, s->lora_scale[sq][a]) * vo->dot_f32(mt->rank, mt->b + r * mt->rank, u);
                u += mt->rank;
            }
        }
        beg = end;
    }
}

/* Adds the adapters' B (A x) to the outputs of one matmul (or one fused Q/K/V, gate/up pass). Every value
 * is a function of its own token, row and sequence's adapters: the same whatever else is in the batch. */
static void lora_apply(forward_state *s, int64_t layer, const lora_out *outs, int n_outs, int64_t n) {
    if (s->n_lora_seqs == 0 || s->lora_rank_max == 0) return;
    bool any = false;
    for (int64_t t = 0; t < n && !any; t++) any = s->lora_n[s->seq[t]] > 0;
    if (!any) return;
    HERD_ASSERT(n_outs <= LORA_MAX_OUTS);
    lora_job j = {s, outs, n_outs, n, layer};
    pool_run(s->pool, job_lora_a, &j);
    pool_run(s->pool, job_lora_b, &j);
}

/* The elementwise pieces (rmsnorm, the rope cache and rotation) are model/ops.h's, shared with the
 * trainer. */

/* ---- parallel jobs ---------------------------------------------------------------------------- */

typedef struct {
    forward_state *s;
    int64_t n, layer;
} job;

/* RoPE on q and k, then k and v into the cache at their positions. */
static void job_rope_store(void *arg, int ith, int nth) {
    job *j = arg;
    forward_state *s = j->s;
    const model_hparams *hp = &s->m->hp;
    const kernel_type_ops *kt = kernels_type(s->kv.type_k), *vt = kernels_type(s->kv.type_v);
    int64_t q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim, t0, t1;
    pool_range(j->n, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        const float *cs = s->rope_cs + t * hp->head_dim;
        model_rope_apply(s->q + t * q_dim, hp->n_head, hp->head_dim, cs, s->m->rope_half_split);
        model_rope_apply(s->k + t * kv_dim, hp->n_head_kv, hp->head_dim, cs, s->m->rope_half_split);
        kt->from_f32(s->k + t * kv_dim, kv_k_row(&s->kv, s->seq[t], j->layer, s->pos[t]), kv_dim);
        vt->from_f32(s->v + t * kv_dim, kv_v_row(&s->kv, s->seq[t], j->layer, s->pos[t]), kv_dim);
    }
}

/* Cuts the batch into attention tiles: its tokens grouped by sequence (a counting sort; batch order,
 * hence position order, within a sequence), up to tile_tokens consecutive ones per tile. */
static void plan_tiles(forward_state *s, int64_t n) {
    const int64_t n_seq = s->kv.n_seq;
    memset(s->seq_off, 0, (size_t)(n_seq + 1) * sizeof *s->seq_off);
    for (int64_t t = 0; t < n; t++) s->seq_off[s->seq[t] + 1]++;
    for (int64_t sq = 0; sq < n_seq; sq++) s->seq_off[sq + 1] += s->seq_off[sq];
    for (int64_t t = 0; t < n; t++) s->tile_tok[s->seq_off[s->seq[t]]++] = t;
    s->n_tiles = 0;
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || s->seq[s->tile_tok[i]] != s->seq[s->tile_tok[i - 1]] ||
            i - s->tile_beg[s->n_tiles - 1] == s->tile_tokens)
            s->tile_beg[s->n_tiles++] = i;
    s->tile_beg[s->n_tiles] = n;
}

/* Causal attention, one work item (pool chunk) per (tile, KV head): the tile's tokens x the query heads
 * that share the KV head go through the attention kernel together, which reads each K/V row once for all
 * of them (kernels.h, kernel_attn_fn). Threads claim items in order (pool.h), KV head by KV head (the
 * threads stream the same K/V rows, which stay in cache) and within one the last tiles (the most keys)
 * first, so the work ends on small items; a query's result depends neither on its tile nor on the
 * thread. ith picks the thread's scratch. */
static void job_attention(void *arg, int64_t w, int ith) {
    job *j = arg;
    forward_state *s = j->s;
    const model_hparams *hp = &s->m->hp;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t hd = hp->head_dim, q_dim = hp->n_head * hd, group = hp->n_head / hp->n_head_kv;
    const float **qp = s->attn_q + ith * s->tile_q;
    float **op = s->attn_o + ith * s->tile_q, *scratch = s->attn_scratch + ith * s->attn_scratch_n;
    int64_t *nkv = s->attn_nkv + ith * s->tile_q;
    const int64_t kvh = w / s->n_tiles, tile = s->n_tiles - 1 - w % s->n_tiles;
    const int64_t sq = s->seq[s->tile_tok[s->tile_beg[tile]]];
    int64_t nq = 0;
    for (int64_t i = s->tile_beg[tile]; i < s->tile_beg[tile + 1]; i++) {
        const int64_t t = s->tile_tok[i];
        for (int64_t g = 0; g < group; g++, nq++) {
            qp[nq] = s->q + t * q_dim + (kvh * group + g) * hd;
            op[nq] = s->att + t * q_dim + (kvh * group + g) * hd;
            nkv[nq] = s->pos[t] + 1; /* causal: positions 0 .. pos[t] of its own sequence */
        }
    }
    const kernel_attn_kv kv = {.head_dim = hd,
                               .type_k = s->kv.type_k,
                               .type_v = s->kv.type_v,
                               .k = (const uint8_t *)kv_k_row(&s->kv, sq, j->layer, 0) + kv_offset_k(&s->kv, kvh * hd),
                               .v = (const uint8_t *)kv_v_row(&s->kv, sq, j->layer, 0) + kv_offset_v(&s->kv, kvh * hd),
                               .stride_k = s->kv.row_bytes_k,
                               .stride_v = s->kv.row_bytes_v,
                               .scale = 1.0f / sqrtf((float)hd)};
    vo->attn(&kv, nq, qp, nkv, op, scratch);
}

static void job_swiglu(void *arg, int ith, int nth) {
    job *j = arg;
    forward_state *s = j->s;
    int64_t n = j->n * s->m->hp.n_ff, i0, i1;
    pool_range(n, ith, nth, &i0, &i1);
    model_swiglu(s->gate + i0, s->up + i0, i1 - i0);
}

/* ---- the pass ---------------------------------------------------------------------------------- */

#define PP_MIN_MICRO 32 /* tokens per pipeline micro-batch, at least (a smaller batch is one part) */

/* Token t of the pass, of sequence sq, takes the sequence's next position. */
static void take_position(forward_state *s, int64_t t, int32_t sq) {
    HERD_ASSERT(sq >= 0 && sq < s->kv.n_seq);
    s->seq[t] = sq;
    s->pos[t] = s->kv.n_past[sq]++;
    HERD_ASSERT(s->pos[t] < s->kv.n_ctx);
}

/* Token t's RoPE cos/sin at its position, and its embedding into x unless token < 0 (a pipeline stage after
 * the first receives x instead). */
static void token_inputs(forward_state *s, int64_t t, int32_t token) {
    const herd_model *m = s->m;
    const model_hparams *hp = &m->hp;
    if (token >= 0)
        kernels_type(m->tok_embd.type)->to_f32(m->tok_embd.data + (int64_t)token * m->tok_embd.row_bytes,
                                               s->x + t * hp->n_embd, hp->n_embd);
    model_rope_cache(s->rope_cs + t * hp->head_dim, (float)s->pos[t], hp->head_dim, hp->rope_theta, hp->rope_freq_scale,
                     m->rope_freqs);
}

/* The pass over n tokens on this rank's layers (all of them but in a pipeline stage); out gets the rows
 * asked for, on the last stage. */
static void pass_part(forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                      float *out, bool hidden) {
    const herd_model *m = s->m;
    const model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;

    /* positions: each token takes the next position of its sequence */
    for (int64_t t = 0; t < n; t++) take_position(s, t, seq ? seq[t] : 0);
    const forward_tp *tp = s->tp;
    const bool piped = tp && tp->n_stages > 1, first = !piped || tp->first_stage, last = !piped || tp->last_stage;
    if (!first) tp->recv_x(tp->ctx, s->x, n); /* pipeline: the previous stage's residual stream */
    for (int64_t t = 0; t < n; t++) token_inputs(s, t, first ? tokens[t] : -1);

    plan_tiles(s, n);
    job j = {s, n, 0};
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const layer_weights *L = &m->layers[l];
        j.layer = l;
        for (int64_t t = 0; t < n; t++) model_rmsnorm(s->h + t * E, s->x + t * E, L->attn_norm, E, hp->norm_eps);
        const matmul_out qkv[3] = {{&L->wq, s->q, q_dim}, {&L->wk, s->k, kv_dim}, {&L->wv, s->v, kv_dim}};
        if (s->obs) observe(s, &L->wq, &L->wk, &L->wv, s->h, E, n);
        matmul_multi(s->pool, qkv, 3, s->h, E, n, s->xq);
        const lora_out lqkv[3] = {{LORA_Q, s->h, E, s->q, q_dim}, {LORA_K, s->h, E, s->k, kv_dim}, {LORA_V, s->h, E, s->v, kv_dim}};
        lora_apply(s, l, lqkv, 3, n);
        /* a decode step's rope and cache writes are cheaper than a thread handoff */
        if (n <= 2) job_rope_store(&j, 0, 1);
        else pool_run(s->pool, job_rope_store, &j);
        pool_for(s->pool, s->n_tiles * hp->n_head_kv, job_attention, &j);
        tp_gather(s, s->att, n, FORWARD_TP_ATT);
        if (s->obs) observe(s, &L->wo, NULL, NULL, s->att, L->wo.n_in, n);
        matmul(s->pool, &L->wo, s->att, L->wo.n_in, n, s->h, L->wo.n_out, s->xq);
        tp_gather(s, s->h, n, FORWARD_TP_EMBD);
        const lora_out lo = {LORA_O, s->att, q_dim, s->h, E};
        lora_apply(s, l, &lo, 1, n);
        for (int64_t i = 0; i < n * E; i++) s->x[i] += s->h[i];

        for (int64_t t = 0; t < n; t++) model_rmsnorm(s->h + t * E, s->x + t * E, L->ffn_norm, E, hp->norm_eps);
        const matmul_out gu[2] = {{&L->w_gate, s->gate, hp->n_ff}, {&L->w_up, s->up, hp->n_ff}};
        if (s->obs) observe(s, &L->w_gate, &L->w_up, NULL, s->h, E, n);
        matmul_multi(s->pool, gu, 2, s->h, E, n, s->xq);
        const lora_out lgu[2] = {{LORA_GATE, s->h, E, s->gate, hp->n_ff}, {LORA_UP, s->h, E, s->up, hp->n_ff}};
        lora_apply(s, l, lgu, 2, n);
        if (n * hp->n_ff <= 2048) job_swiglu(&j, 0, 1);
        else pool_run(s->pool, job_swiglu, &j);
        tp_gather(s, s->gate, n, FORWARD_TP_FF);
        if (s->obs) observe(s, &L->w_down, NULL, NULL, s->gate, L->w_down.n_in, n);
        matmul(s->pool, &L->w_down, s->gate, L->w_down.n_in, n, s->h, L->w_down.n_out, s->xq);
        tp_gather(s, s->h, n, FORWARD_TP_EMBD);
        const lora_out ld = {LORA_DOWN, s->gate, hp->n_ff, s->h, E};
        lora_apply(s, l, &ld, 1, n);
        for (int64_t i = 0; i < n * E; i++) s->x[i] += s->h[i];
    }

    if (!last) { /* pipeline: on to the next stage (rank 0 gets the outputs from the last: forward_pass) */
        tp->send_x(tp->ctx, s->x, n);
        return;
    }
    if (!want) return;
    int64_t n_out = 0;
    float *dst = hidden ? out : s->h;
    for (int64_t t = 0; t < n; t++)
        if (want[t]) model_rmsnorm(dst + n_out++ * E, s->x + t * E, m->output_norm, E, hp->norm_eps);
    if (n_out > 0 && !hidden) {
        if (s->obs) observe(s, &m->output, NULL, NULL, s->h, E, n_out);
        matmul(s->pool, &m->output, s->h, E, n_out, out, m->output.n_out, s->xq);
        tp_gather(s, out, n_out, FORWARD_TP_VOCAB);
    }
    if (!first && n_out > 0) tp->out_send(tp->ctx, out, n_out, hidden ? E : hp->n_vocab); /* to rank 0 */
}

/* Pipeline micro-batches: a batch of n tokens runs as n_micro consecutive parts (pool_range), each a pass of
 * its own, so that stage k works on part i + 1 while stage k + 1 works on part i. A token's result does not
 * depend on the other tokens of its pass (forward_batch), and each sequence's tokens keep their order, so
 * the parts give the batch's result bit for bit. Every stage cuts the same way (a function of n). */
static int64_t micro_batches(const forward_state *s, int64_t n) {
    const forward_tp *tp = s->tp;
    if (!tp || tp->n_stages <= 1) return 1;
    int64_t k = n / PP_MIN_MICRO, most = 2 * (int64_t)tp->n_stages;
    return k < 1 ? 1 : k > most ? most : k;
}

/* Whether this step goes through the relay (relay.h): one token, none of the features it does not carry,
 * and the pool contended (or HERD_RELAY=1). */
static bool use_relay(const forward_state *s, const int32_t *seq, int64_t n) {
    if (n != 1 || !s->relay || s->tp || s->obs || s->m->shard_n > 1 || s->m->n_stages > 1) return false;
    const int32_t sq = seq ? seq[0] : 0;
    if (s->n_lora_seqs > 0 && s->lora_rank_max > 0 && sq >= 0 && sq < s->kv.n_seq && s->lora_n[sq] > 0) return false;
    return s->relay_mode == 1 || pool_contended(s->pool);
}

/* One token through the relay: the same results as pass_part's. */
static void relay_pass(forward_state *s, int32_t token, const int32_t *seq, const bool *want, float *out, bool hidden) {
    take_position(s, 0, seq ? seq[0] : 0);
    token_inputs(s, 0, token);
    /* while contended the team stays on its share of the CPUs (pool_pin_here): the kernel moves other work
     * off them */
    if (pool_contended(s->pool)) pool_pin_here(s->pool);
    else pool_unpin(s->pool);
    relay_decode(s->relay, s->seq[0], s->pos[0], s->rope_cs, want && want[0] ? out : NULL, hidden);
    pool_release_caller(s->pool);
}

static void forward_pass(forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                         float *out, bool hidden) {
    HERD_ASSERT(n > 0 && n <= s->n_batch);
    if (use_relay(s, seq, n)) {
        relay_pass(s, tokens[0], seq, want, out, hidden);
        return;
    }
    pool_unpin(s->pool); /* the relay's pinning (relay_pass) ends with its steps */
    const forward_tp *tp = s->tp;
    if (tp && tp->begin) tp->begin(tp->ctx, s, tokens, seq, n, want, hidden);
    const int64_t n_micro = micro_batches(s, n);
    const int64_t width = hidden ? s->m->hp.n_embd : s->m->hp.n_vocab;
    /* rank 0 of a pipeline: the last stage's outputs of every part, received in place, posted before the
     * parts run (so that the last stage never waits for rank 0 to be free) */
    const bool collect = tp && tp->n_stages > 1 && tp->lead && !tp->last_stage && want;
    for (int64_t i = 0, rows = 0; collect && i < n_micro; i++) {
        int64_t a, b, k = 0;
        pool_range(n, (int)i, (int)n_micro, &a, &b);
        for (int64_t t = a; t < b; t++) k += want[t];
        if (k > 0) tp->out_post(tp->ctx, out + rows * width, k, width);
        rows += k;
    }
    for (int64_t i = 0, rows = 0; i < n_micro; i++) {
        int64_t a, b;
        pool_range(n, (int)i, (int)n_micro, &a, &b);
        pass_part(s, tokens + a, seq ? seq + a : NULL, b - a, want ? want + a : NULL, out ? out + rows * width : NULL, hidden);
        for (int64_t t = a; want && t < b; t++) rows += want[t];
    }
    if (collect) tp->out_wait(tp->ctx);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    const uint8_t *p;
    int64_t n;
    const kernel_vec_ops *vo;
    uint64_t sum[64]; /* per thread (the first 64) */
} read_job;

static void job_read(void *arg, int ith, int nth) {
    read_job *r = arg;
    int64_t a, b; /* in 256-byte units, so that every share starts on a cache line; the last takes the tail */
    pool_range(r->n / 256, ith, nth, &a, &b);
    int64_t end = ith == nth - 1 ? r->n / 8 * 8 : b * 256;
    uint64_t s = r->vo->read_sum(r->p + a * 256, end - a * 256);
    if (ith < 64) r->sum[ith] += s;
}

/* one parallel pass over the bytes decode reads of w (its packed copy if it has one: the lattice i-quants'
 * copies are larger than their rows) */
static uint64_t read_weight(thread_pool *pool, read_job *r, const weight *w) {
    r->p = w->packed ? w->packed : w->data;
    r->n = w->packed ? pk_weight_bytes(w->type, w->n_in, w->n_out) : w->row_bytes * w->n_out;
    pool_run(pool, job_read, r);
    return (uint64_t)r->n;
}

double forward_read_weights(forward_state *s, uint64_t *bytes) {
    const herd_model *m = s->m;
    read_job r = {.vo = kernels_vec()};
    uint64_t total = 0;
    double t0 = now_s();
    for (int64_t l = 0; l < m->hp.n_layer; l++) {
        weight *w[MODEL_LAYER_MATRICES];
        model_layer_matrices(&m->layers[l], w);
        for (int i = 0; i < MODEL_LAYER_MATRICES; i++) total += read_weight(s->pool, &r, w[i]);
    }
    total += read_weight(s->pool, &r, &m->output);
    *bytes = total;
    return now_s() - t0;
}

void forward_batch(forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                   float *logits) {
    forward_pass(s, tokens, seq, n, want, logits, false);
}

void forward_batch_hidden(forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                          float *out) {
    forward_pass(s, tokens, seq, n, want, out, true);
}
