/* See optim.h. AdamW follows torch's single-tensor implementation operation by operation:
 *   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * with the bias corrections in double (Python floats) and the tensor operations in float. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/kernels.h"

int optim_init(optim *o, const optim_params *p, const tparam *params, int n) {
    memset(o, 0, sizeof *o);
    o->p = *p;
    o->n = n;
    if (p->kind != TRAIN_OPT_ADAMW) return HERD_OK;
    o->m = herd_xcalloc((size_t)n, sizeof *o->m);
    o->v = herd_xcalloc((size_t)n, sizeof *o->v);
    for (int i = 0; i < n; i++) {
        o->m[i] = calloc((size_t)params[i].n, sizeof(float));
        o->v[i] = calloc((size_t)params[i].n, sizeof(float));
        if (!o->m[i] || !o->v[i]) {
            optim_free(o);
            return herd_err(HERD_E_NOMEM, "train: out of memory for the optimizer state of '%s'", params[i].name);
        }
    }
    return HERD_OK;
}

void optim_free(optim *o) {
    for (int i = 0; o->m && i < o->n; i++) free(o->m[i]), free(o->v[i]);
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

double optim_lr(const optim_params *p, int64_t step) {
    const int64_t s = step - 1; /* torch's LambdaLR counts the steps taken before this one */
    if (s < p->warmup) return p->lr * (double)s / (double)p->warmup;
    if (p->schedule == TRAIN_SCHED_CONSTANT || p->total_steps <= p->warmup) return p->lr;
    const double progress = (double)(s - p->warmup) / (double)(p->total_steps - p->warmup);
    return p->lr * 0.5 * (1.0 + cos(M_PI * progress));
}

/* eight partial sums (element j into sum j % 8, kernel_vec_ops.sumsq_f32), added in order at the end: one
 * chain of dependent double additions was ~4 cycles an element (0.8 s a step for a 1B model) */
double optim_sumsq(const tparam *p) {
    double s[8] = {0};
    kernels_vec()->sumsq_f32(p->n, p->g, s);
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

double optim_clip(const tparam *params, int n, float max_norm) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += optim_sumsq(&params[i]);
    const double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        const float c = (float)((double)max_norm / (norm + 1e-6));
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < params[i].n; j++) params[i].g[j] *= c;
    }
    return norm;
}

typedef struct {
    optim *o;
    tparam *params;
    int i0, i1;
    double lr;
    double bc1, bc2_sqrt;
} ojob;

/* every tensor split across the threads by element ranges (elementwise: order does not matter) */
static void job_step(void *arg, int ith, int nth) {
    ojob *j = arg;
    const optim_params *p = &j->o->p;
    for (int i = j->i0; i < j->i1; i++) {
        float *w = j->params[i].w;
        const float *g = j->params[i].g;
        int64_t a, b;
        pool_range(j->params[i].n, ith, nth, &a, &b);
        if (p->kind == TRAIN_OPT_SGD) { /* torch.optim.SGD: g += wd * p; p += -lr * g */
            const float lr = (float)j->lr, wd = (float)p->weight_decay;
            for (int64_t e = a; e < b; e++) w[e] += -lr * (wd != 0 ? g[e] + wd * w[e] : g[e]);
            continue;
        }
        float *m = j->o->m[i], *v = j->o->v[i];
        const kernel_adamw c = {.decay = (float)(1.0 - j->lr * p->weight_decay),
                                .b1 = (float)p->beta1,
                                .c1 = (float)(1.0 - p->beta1),
                                .b2 = (float)p->beta2,
                                .c2 = (float)(1.0 - p->beta2),
                                .step_size = (float)(j->lr / j->bc1),
                                .bc2_sqrt = (float)j->bc2_sqrt,
                                .eps = (float)p->eps};
        if (b > a) kernels_vec()->adamw_f32(b - a, w + a, g + a, m + a, v + a, &c);
    }
}

void optim_begin(optim *o) {
    o->t++;
}

void optim_step_range(optim *o, thread_pool *pool, tparam *params, int i0, int i1, double lr) {
    ojob j = {.o = o, .params = params, .i0 = i0, .i1 = i1, .lr = lr};
    j.bc1 = 1.0 - pow((double)o->p.beta1, (double)o->t);
    j.bc2_sqrt = sqrt(1.0 - pow((double)o->p.beta2, (double)o->t));
    pool_run(pool, job_step, &j);
}

void optim_step(optim *o, thread_pool *pool, tparam *params, int n, double lr) {
    optim_begin(o);
    optim_step_range(o, pool, params, 0, n, lr);
}
