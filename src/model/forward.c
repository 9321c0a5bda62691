/* Forward pass (see forward.h for the data flow). Numerics follow llama.cpp where it matters for
 * agreement: RMSNorm sums squares in double, RoPE angles are built by repeated float
 * multiplication of theta_scale (ggml's rope cache), softmax sums in double, attention in f32. */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "../thread/pool.h"
#include "matmul.h"

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
    float *scores;     /* [n_threads][n_ctx] */
    int64_t *pos;      /* [n_batch] position of each token in its sequence */
    int32_t *seq;      /* [n_batch] sequence of each token */
    void *xq;          /* converted activations for matmul */
};

static void *alloc_or_null(size_t bytes, bool *ok) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) *ok = false;
    return p;
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
    int rc = kv_cache_init(&s->kv, kv_type, n_seq, hp->n_layer, n_ctx, kv_dim);
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
    s->att = alloc_or_null((size_t)(n_batch * q_dim) * f, &ok);
    s->gate = alloc_or_null((size_t)(n_batch * hp->n_ff) * f, &ok);
    s->up = alloc_or_null((size_t)(n_batch * hp->n_ff) * f, &ok);
    s->rope_cs = alloc_or_null((size_t)(n_batch * hp->head_dim) * f, &ok);
    s->scores = alloc_or_null((size_t)(n_threads * n_ctx) * f, &ok);
    s->pos = alloc_or_null((size_t)n_batch * sizeof *s->pos, &ok);
    s->seq = alloc_or_null((size_t)n_batch * sizeof *s->seq, &ok);
    /* the largest converted activation block over all matmuls of the model */
    int64_t xq = 0;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const layer_weights *L = &m->layers[l];
        const weight *lw[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof lw / sizeof lw[0]; i++) {
            int64_t b = matmul_scratch_bytes(lw[i]->type, lw[i]->n_in, n_batch);
            if (b > xq) xq = b;
        }
    }
    int64_t bo = matmul_scratch_bytes(m->output.type, m->output.n_in, n_batch);
    if (bo > xq) xq = bo;
    s->xq = alloc_or_null((size_t)xq, &ok);
    if (!ok) {
        forward_state_free(s);
        return herd_err(HERD_E_NOMEM, "forward: out of memory for scratch buffers of a %lld-token batch",
                        (long long)n_batch);
    }
    *out = s;
    return HERD_OK;
}

void forward_state_free(forward_state *s) {
    if (!s) return;
    pool_free(s->pool);
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
    free(s->scores);
    free(s->pos);
    free(s->seq);
    free(s->xq);
    free(s);
}

kv_cache *forward_kv(forward_state *s) {
    return &s->kv;
}

int64_t forward_n_batch(const forward_state *s) {
    return s->n_batch;
}

/* ---- elementwise pieces (reference C: small next to the matmuls) --------------------------- */

/* out = x / sqrt(mean(x^2) + eps) * w, exactly in ggml's order: the sum of squares in double, the
 * scale as a float, then the two multiplications. */
static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    float mean = (float)(sum / (double)n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

/* cos/sin of every rotated pair for one position: angle_i = pos * theta_scale^i / freq_factor_i *
 * freq_scale, with theta_scale = base^(-2/head_dim). The power is accumulated by repeated float
 * multiplication, as ggml's rope cache does, so angles agree with llama.cpp to the last bit. */
static void rope_cache(float *cs, float pos, int64_t head_dim, float base, float freq_scale, const float *freqs) {
    float theta_scale = powf(base, -2.0f / (float)head_dim);
    float theta = pos;
    for (int64_t i = 0; i < head_dim / 2; i++) {
        float ff = freqs ? freqs[i] : 1.0f;
        float a = freq_scale * (theta / ff);
        cs[2 * i] = cosf(a);
        cs[2 * i + 1] = sinf(a);
        theta *= theta_scale;
    }
}

/* Rotates adjacent pairs (x[2i], x[2i+1]) of each of n_heads heads (Meta's and GGUF's layout).
 * half_split: the head is in HF's row order, whose pairs are (x[i], x[i + head_dim/2]) (LLAMA31.md,
 * RoPE); the rotated pair is stored at (2i, 2i+1). That is exactly what the GGUF layout gives (its
 * rows are HF's, permuted), so q, k, the KV cache and every later value are bit-identical between a
 * HF directory and the GGUF converted from it. */
static void rope_apply(float *x, int64_t n_heads, int64_t head_dim, const float *cs, bool half_split) {
    float tmp[MODEL_MAX_HEAD_DIM];
    const int64_t half = head_dim / 2;
    HERD_ASSERT(head_dim <= MODEL_MAX_HEAD_DIM);
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        if (half_split) {
            memcpy(tmp, v, (size_t)head_dim * sizeof(float));
            for (int64_t i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1], x0 = tmp[i], x1 = tmp[i + half];
                v[2 * i] = x0 * c - x1 * s;
                v[2 * i + 1] = x0 * s + x1 * c;
            }
            continue;
        }
        for (int64_t i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1], x0 = v[2 * i], x1 = v[2 * i + 1];
            v[2 * i] = x0 * c - x1 * s;
            v[2 * i + 1] = x0 * s + x1 * c;
        }
    }
}

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
    const kernel_type_ops *kvt = kernels_type(s->kv.type);
    int64_t q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim, t0, t1;
    pool_range(j->n, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        const float *cs = s->rope_cs + t * hp->head_dim;
        rope_apply(s->q + t * q_dim, hp->n_head, hp->head_dim, cs, s->m->rope_half_split);
        rope_apply(s->k + t * kv_dim, hp->n_head_kv, hp->head_dim, cs, s->m->rope_half_split);
        kvt->from_f32(s->k + t * kv_dim, kv_k_row(&s->kv, s->seq[t], j->layer, s->pos[t]), kv_dim);
        kvt->from_f32(s->v + t * kv_dim, kv_v_row(&s->kv, s->seq[t], j->layer, s->pos[t]), kv_dim);
    }
}

/* Causal attention for every (token, head) pair; each thread owns a scores row of n_ctx. */
static void job_attention(void *arg, int ith, int nth) {
    job *j = arg;
    forward_state *s = j->s;
    const model_hparams *hp = &s->m->hp;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t hd = hp->head_dim, q_dim = hp->n_head * hd, group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const bool f16 = s->kv.type == HERD_TYPE_F16;
    float *sc = s->scores + (int64_t)ith * s->kv.n_ctx;
    int64_t w0, w1;
    pool_range(j->n * hp->n_head, ith, nth, &w0, &w1);
    for (int64_t w = w0; w < w1; w++) {
        int64_t t = w / hp->n_head, h = w % hp->n_head, kvh = h / group, sq = s->seq[t];
        int64_t n_pos = s->pos[t] + 1; /* causal: positions 0 .. pos[t] of its own sequence */
        const float *q = s->q + t * q_dim + h * hd;
        float *o = s->att + t * q_dim + h * hd;
        float mx = -INFINITY;
        for (int64_t p = 0; p < n_pos; p++) {
            const void *kr = (const uint8_t *)kv_k_row(&s->kv, sq, j->layer, p) + kvh * hd * (f16 ? 2 : 4);
            float d = f16 ? vo->dot_f16_f32(hd, kr, q) : vo->dot_f32(hd, kr, q);
            sc[p] = d * scale;
            if (sc[p] > mx) mx = sc[p];
        }
        double sum = 0;
        for (int64_t p = 0; p < n_pos; p++) {
            sc[p] = expf(sc[p] - mx);
            sum += (double)sc[p];
        }
        float inv = (float)(1.0 / sum);
        memset(o, 0, (size_t)hd * sizeof(float));
        for (int64_t p = 0; p < n_pos; p++) {
            const void *vr = (const uint8_t *)kv_v_row(&s->kv, sq, j->layer, p) + kvh * hd * (f16 ? 2 : 4);
            float pw = sc[p] * inv;
            if (f16) vo->axpy_f16(hd, pw, vr, o);
            else vo->axpy_f32(hd, pw, vr, o);
        }
    }
}

static void job_swiglu(void *arg, int ith, int nth) {
    job *j = arg;
    forward_state *s = j->s;
    int64_t n = j->n * s->m->hp.n_ff, i0, i1;
    pool_range(n, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        float g = s->gate[i];
        s->gate[i] = g / (1.0f + expf(-g)) * s->up[i];
    }
}

/* ---- the pass ---------------------------------------------------------------------------------- */

static void forward_pass(forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                         float *out, bool hidden) {
    const herd_model *m = s->m;
    const model_hparams *hp = &m->hp;
    HERD_ASSERT(n > 0 && n <= s->n_batch);
    const int64_t E = hp->n_embd, q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    const kernel_type_ops *emb = kernels_type(m->tok_embd.type);

    /* positions: each token takes the next position of its sequence */
    for (int64_t t = 0; t < n; t++) {
        int32_t sq = seq ? seq[t] : 0;
        HERD_ASSERT(sq >= 0 && sq < s->kv.n_seq);
        s->seq[t] = sq;
        s->pos[t] = s->kv.n_past[sq]++;
        HERD_ASSERT(s->pos[t] < s->kv.n_ctx);
    }
    for (int64_t t = 0; t < n; t++) {
        emb->to_f32(m->tok_embd.data + (int64_t)tokens[t] * m->tok_embd.row_bytes, s->x + t * E, E);
        rope_cache(s->rope_cs + t * hp->head_dim, (float)s->pos[t], hp->head_dim, hp->rope_theta, hp->rope_freq_scale,
                   m->rope_freqs);
    }

    job j = {s, n, 0};
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const layer_weights *L = &m->layers[l];
        j.layer = l;
        for (int64_t t = 0; t < n; t++) rmsnorm(s->h + t * E, s->x + t * E, L->attn_norm, E, hp->norm_eps);
        const matmul_out qkv[3] = {{&L->wq, s->q, q_dim}, {&L->wk, s->k, kv_dim}, {&L->wv, s->v, kv_dim}};
        matmul_multi(s->pool, qkv, 3, s->h, E, n, s->xq);
        /* a decode step's rope and cache writes are cheaper than a thread handoff */
        if (n <= 2) job_rope_store(&j, 0, 1);
        else pool_run(s->pool, job_rope_store, &j);
        pool_run(s->pool, job_attention, &j);
        matmul(s->pool, &L->wo, s->att, q_dim, n, s->h, E, s->xq);
        for (int64_t i = 0; i < n * E; i++) s->x[i] += s->h[i];

        for (int64_t t = 0; t < n; t++) rmsnorm(s->h + t * E, s->x + t * E, L->ffn_norm, E, hp->norm_eps);
        const matmul_out gu[2] = {{&L->w_gate, s->gate, hp->n_ff}, {&L->w_up, s->up, hp->n_ff}};
        matmul_multi(s->pool, gu, 2, s->h, E, n, s->xq);
        if (n * hp->n_ff <= 2048) job_swiglu(&j, 0, 1);
        else pool_run(s->pool, job_swiglu, &j);
        matmul(s->pool, &L->w_down, s->gate, hp->n_ff, n, s->h, E, s->xq);
        for (int64_t i = 0; i < n * E; i++) s->x[i] += s->h[i];
    }

    if (!want) return;
    int64_t n_out = 0;
    float *dst = hidden ? out : s->h;
    for (int64_t t = 0; t < n; t++)
        if (want[t]) rmsnorm(dst + n_out++ * E, s->x + t * E, m->output_norm, E, hp->norm_eps);
    if (n_out > 0 && !hidden) matmul(s->pool, &m->output, s->h, E, n_out, out, hp->n_vocab, s->xq);
}

void forward_batch(forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                   float *logits) {
    forward_pass(s, tokens, seq, n, want, logits, false);
}

void forward_batch_hidden(forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                          float *out) {
    forward_pass(s, tokens, seq, n, want, out, true);
}
