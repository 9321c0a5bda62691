/* See attn.h. */
#include "attn.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "../kernels/kernels.h"

#define QBLK 16 /* queries (or keys) per work item */

int64_t train_attention_scratch_floats(const train_attn_shape *a, int n_threads) {
    return (int64_t)n_threads * (a->T + a->hd);
}

typedef struct {
    const train_attn_shape *a;
    const float *q, *k, *v, *o, *lse, *dout;
    float *out, *lse_out, *dq, *dk, *dv, *D, *scratch;
    _Atomic int64_t next;
} ajob;

/* one query head h, queries t in [t0, t1) */
static void job_fwd(void *arg, int ith, int nth) {
    (void)nth;
    ajob *j = arg;
    const train_attn_shape *a = j->a;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t T = a->T, H = a->n_head, hd = a->hd, qd = H * hd, kd = a->n_head_kv * hd, group = H / a->n_head_kv;
    const int64_t nqb = (T + QBLK - 1) / QBLK, n_items = H * nqb;
    float *s = j->scratch + (int64_t)ith * (T + hd);
    for (int64_t w; (w = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < n_items;) {
        const int64_t h = w % H, qb = nqb - 1 - w / H, off = (h / group) * hd;
        const int64_t t1 = (qb + 1) * QBLK < T ? (qb + 1) * QBLK : T;
        for (int64_t t = qb * QBLK; t < t1; t++) {
            const float *qt = j->q + t * qd + h * hd;
            float m = -INFINITY;
            for (int64_t jj = 0; jj <= t; jj++) {
                s[jj] = vo->dot_f32(hd, qt, j->k + jj * kd + off) * a->scale;
                if (s[jj] > m) m = s[jj];
            }
            double l = 0;
            for (int64_t jj = 0; jj <= t; jj++) l += (double)(s[jj] = expf(s[jj] - m));
            float *ot = j->out + t * qd + h * hd;
            memset(ot, 0, (size_t)hd * sizeof(float));
            const float inv = (float)(1.0 / l);
            for (int64_t jj = 0; jj <= t; jj++) vo->axpy_f32(hd, s[jj] * inv, j->v + jj * kd + off, ot);
            j->lse_out[t * H + h] = m + (float)log(l);
        }
    }
}

void train_attention_forward(thread_pool *pool, const train_attn_shape *a, const float *q, const float *k,
                             const float *v, float *o, float *lse, float *scratch) {
    ajob j = {.a = a, .q = q, .k = k, .v = v, .out = o, .lse_out = lse, .scratch = scratch};
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

/* dq of query head h, queries [t0, t1) */
static void job_dq(void *arg, int ith, int nth) {
    (void)nth;
    ajob *j = arg;
    const train_attn_shape *a = j->a;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t T = a->T, H = a->n_head, hd = a->hd, qd = H * hd, kd = a->n_head_kv * hd, group = H / a->n_head_kv;
    const int64_t nqb = (T + QBLK - 1) / QBLK, n_items = H * nqb;
    (void)ith;
    for (int64_t w; (w = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < n_items;) {
        const int64_t h = w % H, qb = nqb - 1 - w / H, off = (h / group) * hd;
        const int64_t t1 = (qb + 1) * QBLK < T ? (qb + 1) * QBLK : T;
        for (int64_t t = qb * QBLK; t < t1; t++) {
            const float *qt = j->q + t * qd + h * hd, *dot_ = j->dout + t * qd + h * hd;
            const float lse = j->lse[t * H + h], D = j->D[t * H + h];
            float *dqt = j->dq + t * qd + h * hd;
            memset(dqt, 0, (size_t)hd * sizeof(float));
            for (int64_t jj = 0; jj <= t; jj++) {
                const float *kj = j->k + jj * kd + off;
                const float p = expf(vo->dot_f32(hd, qt, kj) * a->scale - lse);
                const float ds = p * (vo->dot_f32(hd, dot_, j->v + jj * kd + off) - D);
                vo->axpy_f32(hd, ds * a->scale, kj, dqt);
            }
        }
    }
}

/* dk, dv of KV head g, keys [j0, j1): over the queries t >= key of every head of the group */
static void job_dkv(void *arg, int ith, int nth) {
    (void)nth;
    (void)ith;
    ajob *j = arg;
    const train_attn_shape *a = j->a;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t T = a->T, H = a->n_head, hd = a->hd, qd = H * hd, kd = a->n_head_kv * hd, group = H / a->n_head_kv;
    const int64_t nkb = (T + QBLK - 1) / QBLK, n_items = a->n_head_kv * nkb;
    for (int64_t w; (w = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < n_items;) {
        const int64_t g = w % a->n_head_kv, kb = w / a->n_head_kv, off = g * hd;
        const int64_t j1 = (kb + 1) * QBLK < T ? (kb + 1) * QBLK : T;
        for (int64_t jj = kb * QBLK; jj < j1; jj++) {
            const float *kj = j->k + jj * kd + off, *vj = j->v + jj * kd + off;
            float *dkj = j->dk + jj * kd + off, *dvj = j->dv + jj * kd + off;
            memset(dkj, 0, (size_t)hd * sizeof(float));
            memset(dvj, 0, (size_t)hd * sizeof(float));
            for (int64_t t = jj; t < T; t++)
                for (int64_t h = g * group; h < (g + 1) * group; h++) {
                    const float *qt = j->q + t * qd + h * hd, *dot_ = j->dout + t * qd + h * hd;
                    const float p = expf(vo->dot_f32(hd, qt, kj) * a->scale - j->lse[t * H + h]);
                    const float ds = p * (vo->dot_f32(hd, dot_, vj) - j->D[t * H + h]);
                    vo->axpy_f32(hd, p, dot_, dvj);
                    vo->axpy_f32(hd, ds * a->scale, qt, dkj);
                }
        }
    }
}

void train_attention_backward(thread_pool *pool, const train_attn_shape *a, const float *q, const float *k,
                              const float *v, const float *o, const float *lse, const float *dout, float *dq, float *dk,
                              float *dv, float *D, float *scratch) {
    ajob j = {.a = a, .q = q, .k = k, .v = v, .o = o, .lse = lse, .dout = dout, .dq = dq, .dk = dk, .dv = dv, .D = D,
              .scratch = scratch};
    pool_run(pool, job_D, &j);
    atomic_store(&j.next, 0);
    pool_run(pool, job_dq, &j);
    atomic_store(&j.next, 0);
    pool_run(pool, job_dkv, &j);
}
