/* See attn.h. Blocked: a work item's scores are one matrix product (kernels.h gemm_f32) against the
 * keys transposed once per call, its weights one exp_f32 per row, its outputs products again (the plain
 * form, an F32 dot, expf and axpy per (query, key) pair, took ~12 % of a bf16 LoRA step for under 1 % of
 * its arithmetic).
 *
 * Per item (QBLK queries of one head, or QBLK keys of one KV head against all later queries of its
 * group), with kT, vT = K, V of the KV head transposed ([hd][T], built once per call):
 *   forward:  S[nq][n] = Q kT;  P = exp(S scale - m_t) (row max m_t; 0 past the diagonal);
 *             O = (P V) / l_t;  lse_t = m_t + log l_t            (n = keys up to the block's last query)
 *   dq:       P = exp(S scale - lse_t);  dP = dO vT;  dS = P (dP - D_t) scale;  dQ = dS K
 *   dk, dv:   per head h of the group, queries t >= the block's first key:  S[nt][nk] = Q_h kT_blk,
 *             P, dS as above;  dV_blk += P^T dO_h;  dK_blk += dS^T Q_h   (heads in order)
 * Every product is one gemm_f32 call whose sums run over k in order, and every item is computed by one
 * thread whatever the others do: results do not depend on the thread count. */
#include "attn.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "../kernels/kernels.h"

#define QBLK 16 /* queries (or keys) per work item */

/* kT, vT (2 T kd) then per thread two QBLK x T blocks (scores, their gradient) */
int64_t train_attention_scratch_floats(const train_attn_shape *a, int n_threads) {
    return 2 * a->T * a->n_head_kv * a->hd + (int64_t)n_threads * 2 * QBLK * a->T;
}

typedef struct {
    const train_attn_shape *a;
    const float *q, *k, *v, *o, *lse, *dout;
    float *out, *lse_out, *dq, *dk, *dv, *D, *scratch;
    float *kT, *vT; /* [n_head_kv][hd][T] */
    bool with_v;    /* transpose V too (the backward) */
    _Atomic int64_t next;
} ajob;

static void job_transpose(void *arg, int ith, int nth) {
    ajob *j = arg;
    const train_attn_shape *a = j->a;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t T = a->T, hd = a->hd, kd = a->n_head_kv * hd, n = a->n_head_kv * (j->with_v ? 2 : 1);
    int64_t i0, i1;
    pool_range(n, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const int64_t g = i % a->n_head_kv;
        const float *src = (i < a->n_head_kv ? j->k : j->v) + g * hd;
        vo->transpose_f32(T, hd, src, kd, (i < a->n_head_kv ? j->kT : j->vT) + g * hd * T, T);
    }
}

static void transpose_kv(thread_pool *pool, ajob *j, bool with_v) {
    j->kT = j->scratch;
    j->vT = j->scratch + j->a->T * j->a->n_head_kv * j->a->hd;
    j->with_v = with_v;
    pool_run(pool, job_transpose, j);
}

/* this thread's two QBLK x T blocks */
static float *thread_blocks(const ajob *j, int ith) {
    return j->scratch + 2 * j->a->T * j->a->n_head_kv * j->a->hd + (int64_t)ith * 2 * QBLK * j->a->T;
}

/* one query head h, queries t in [t0, t1) */
static void job_fwd(void *arg, int ith, int nth) {
    (void)nth;
    ajob *j = arg;
    const train_attn_shape *a = j->a;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t T = a->T, H = a->n_head, hd = a->hd, qd = H * hd, kd = a->n_head_kv * hd, group = H / a->n_head_kv;
    const int64_t nqb = (T + QBLK - 1) / QBLK, n_items = H * nqb;
    float *S = thread_blocks(j, ith), inv[QBLK];
    for (int64_t w; (w = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < n_items;) {
        const int64_t h = w % H, qb = nqb - 1 - w / H, g = h / group, t0 = qb * QBLK;
        const int64_t t1 = t0 + QBLK < T ? t0 + QBLK : T, nq = t1 - t0, n = t1;
        memset(S, 0, (size_t)(nq * n) * sizeof(float));
        vo->gemm_f32(nq, n, hd, j->q + t0 * qd + h * hd, qd, 1, j->kT + g * hd * T, T, S, n);
        float *o = j->out + t0 * qd + h * hd;
        for (int64_t i = 0; i < nq; i++) {
            float *s = S + i * n;
            const int64_t nk = t0 + i + 1; /* keys 0 .. t */
            const float m = s[vo->argmax_f32(nk, s)] * a->scale; /* = the largest scaled score (scale > 0) */
            const double l = vo->exp_f32(nk, s, a->scale, m, s);
            memset(s + nk, 0, (size_t)(n - nk) * sizeof(float));
            inv[i] = (float)(1.0 / l);
            j->lse_out[(t0 + i) * H + h] = m + (float)log(l);
            memset(o + i * qd, 0, (size_t)hd * sizeof(float));
        }
        vo->gemm_f32(nq, hd, n, S, n, 1, j->v + g * hd, kd, o, qd); /* unnormalized: sum_j e_j v_j */
        for (int64_t i = 0; i < nq; i++)
            for (int64_t c = 0; c < hd; c++) o[i * qd + c] *= inv[i];
    }
}

void train_attention_forward(thread_pool *pool, const train_attn_shape *a, const float *q, const float *k,
                             const float *v, float *o, float *lse, float *scratch) {
    ajob j = {.a = a, .q = q, .k = k, .v = v, .out = o, .lse_out = lse, .scratch = scratch};
    transpose_kv(pool, &j, false);
    atomic_store(&j.next, 0);
    pool_run(pool, job_fwd, &j);
}

/* D[t][h] = dO . o, per token range */
static void job_D(void *arg, int ith, int nth) {
    ajob *j = arg;
    const train_attn_shape *a = j->a;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t H = a->n_head, hd = a->hd;
    int64_t t0, t1;
    pool_range(a->T, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        for (int64_t h = 0; h < H; h++)
            j->D[t * H + h] = vo->dot_f32(hd, j->dout + (t * H + h) * hd, j->o + (t * H + h) * hd);
}

/* P and dS of a block of scores in place: rows r < nr of S (P) and dP (dS), n columns; row r's query (one
 * position further than row r - 1's) sees columns [0, nv), nv = first + r (at most n; 0 past the causal
 * edge); its lse and D at lse[r * ld], D[r * ld] */
static void block_ds(const kernel_vec_ops *vo, const train_attn_shape *a, int64_t nr, int64_t n, float *S, float *dP,
                     const float *lse, const float *D, int64_t ld, int64_t first) {
    for (int64_t r = 0; r < nr; r++) {
        const int64_t nv = first + r < n ? first + r : n;
        float *p = S + r * n, *ds = dP + r * n;
        vo->exp_f32(nv, p, a->scale, lse[r * ld], p);
        const float Dr = D[r * ld];
        for (int64_t c = 0; c < nv; c++) ds[c] = p[c] * (ds[c] - Dr) * a->scale;
        memset(p + nv, 0, (size_t)(n - nv) * sizeof(float));
        memset(ds + nv, 0, (size_t)(n - nv) * sizeof(float));
    }
}

/* dq of query head h, queries [t0, t1) */
static void job_dq(void *arg, int ith, int nth) {
    (void)nth;
    ajob *j = arg;
    const train_attn_shape *a = j->a;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t T = a->T, H = a->n_head, hd = a->hd, qd = H * hd, kd = a->n_head_kv * hd, group = H / a->n_head_kv;
    const int64_t nqb = (T + QBLK - 1) / QBLK, n_items = H * nqb;
    float *S = thread_blocks(j, ith), *dP = S + QBLK * T;
    for (int64_t w; (w = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < n_items;) {
        const int64_t h = w % H, qb = nqb - 1 - w / H, g = h / group, t0 = qb * QBLK;
        const int64_t t1 = t0 + QBLK < T ? t0 + QBLK : T, nq = t1 - t0, n = t1;
        memset(S, 0, (size_t)(nq * n) * sizeof(float));
        memset(dP, 0, (size_t)(nq * n) * sizeof(float));
        vo->gemm_f32(nq, n, hd, j->q + t0 * qd + h * hd, qd, 1, j->kT + g * hd * T, T, S, n);
        vo->gemm_f32(nq, n, hd, j->dout + t0 * qd + h * hd, qd, 1, j->vT + g * hd * T, T, dP, n);
        /* query t0 + r sees keys 0 .. t0 + r */
        block_ds(vo, a, nq, n, S, dP, j->lse + t0 * H + h, j->D + t0 * H + h, H, t0 + 1);
        float *dq = j->dq + t0 * qd + h * hd;
        for (int64_t i = 0; i < nq; i++) memset(dq + i * qd, 0, (size_t)hd * sizeof(float));
        vo->gemm_f32(nq, hd, n, dP, n, 1, j->k + g * hd, kd, dq, qd);
    }
}

/* dk, dv of KV head g, keys [j0, j1): over the queries t >= j0 of every head of the group, in order */
static void job_dkv(void *arg, int ith, int nth) {
    (void)nth;
    ajob *j = arg;
    const train_attn_shape *a = j->a;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t T = a->T, H = a->n_head, hd = a->hd, qd = H * hd, kd = a->n_head_kv * hd, group = H / a->n_head_kv;
    const int64_t nkb = (T + QBLK - 1) / QBLK, n_items = a->n_head_kv * nkb;
    float *S = thread_blocks(j, ith), *dP = S + QBLK * T;
    for (int64_t w; (w = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < n_items;) {
        const int64_t g = w % a->n_head_kv, kb = w / a->n_head_kv, off = g * hd, j0 = kb * QBLK;
        const int64_t nk = j0 + QBLK < T ? QBLK : T - j0, nt = T - j0;
        float *dk = j->dk + j0 * kd + off, *dv = j->dv + j0 * kd + off;
        for (int64_t i = 0; i < nk; i++) {
            memset(dk + i * kd, 0, (size_t)hd * sizeof(float));
            memset(dv + i * kd, 0, (size_t)hd * sizeof(float));
        }
        for (int64_t h = g * group; h < (g + 1) * group; h++) {
            const float *qh = j->q + j0 * qd + h * hd, *doh = j->dout + j0 * qd + h * hd;
            memset(S, 0, (size_t)(nt * nk) * sizeof(float));
            memset(dP, 0, (size_t)(nt * nk) * sizeof(float));
            vo->gemm_f32(nt, nk, hd, qh, qd, 1, j->kT + g * hd * T + j0, T, S, nk);
            vo->gemm_f32(nt, nk, hd, doh, qd, 1, j->vT + g * hd * T + j0, T, dP, nk);
            /* query j0 + r sees keys j0 .. j0 + r of the block */
            block_ds(vo, a, nt, nk, S, dP, j->lse + j0 * H + h, j->D + j0 * H + h, H, 1);
            vo->gemm_f32(nk, hd, nt, S, 1, nk, doh, qd, dv, kd);  /* P^T dO */
            vo->gemm_f32(nk, hd, nt, dP, 1, nk, qh, qd, dk, kd);  /* dS^T Q */
        }
    }
}

void train_attention_backward(thread_pool *pool, const train_attn_shape *a, const float *q, const float *k,
                              const float *v, const float *o, const float *lse, const float *dout, float *dq, float *dk,
                              float *dv, float *D, float *scratch) {
    ajob j = {.a = a, .q = q, .k = k, .v = v, .o = o, .lse = lse, .dout = dout, .dq = dq, .dk = dk, .dv = dv, .D = D,
              .scratch = scratch};
    transpose_kv(pool, &j, true);
    pool_run(pool, job_D, &j);
    atomic_store(&j.next, 0);
    pool_run(pool, job_dq, &j);
    atomic_store(&j.next, 0);
    pool_run(pool, job_dkv, &j);
}
