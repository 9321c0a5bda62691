/* Optimizers over the trainable tensors (tmodel.h's tparam list): AdamW with decoupled weight decay
 * exactly as torch.optim.AdamW (PyTorch 1.13, single-tensor path) computes it, and plain SGD; the
 * learning-rate schedule; clipping by the global gradient norm (torch.nn.utils.clip_grad_norm_). */
#ifndef HERD_TRAIN_OPTIM_H
#define HERD_TRAIN_OPTIM_H

#include <stdint.h>

#include "../thread/pool.h"
#include "tmodel.h"

enum { TRAIN_OPT_ADAMW = 0, TRAIN_OPT_SGD = 1 };
enum { TRAIN_SCHED_COSINE = 0, TRAIN_SCHED_CONSTANT = 1 };

typedef struct {
    int kind;                /* TRAIN_OPT_* */
    /* doubles, as Python floats are: torch turns (1 - beta1), lr * wd, ... into floats only at the end */
    double lr, weight_decay;   /* peak learning rate; decoupled decay (AdamW) or L2 added to the gradient (SGD) */
    double beta1, beta2, eps;  /* AdamW: 0.9, 0.999, 1e-8 */
    int schedule;            /* TRAIN_SCHED_* */
    int64_t warmup, total_steps;
} optim_params;

/* AdamW's moments, one pair of buffers per tensor of the list (SGD: none). */
typedef struct {
    optim_params p;
    int n;
    float **m, **v;  /* [n][param n] */
    int64_t t;       /* steps taken */
} optim;

int optim_init(optim *o, const optim_params *p, const tparam *params, int n);
void optim_free(optim *o);
/* The learning rate of step `step` (1-based), as torch's LambdaLR with torchtune's
 * get_cosine_schedule_with_warmup gives it: with s = step - 1 steps taken before, lr * s / warmup while
 * s < warmup, then lr (constant) or lr * 0.5 (1 + cos(pi (s - warmup) / (total_steps - warmup))). */
double optim_lr(const optim_params *p, int64_t step);
/* The global L2 norm of all gradients; with max_norm > 0 and norm > max_norm, every gradient is scaled by
 * max_norm / (norm + 1e-6). Returns the norm before clipping. */
double optim_clip(const tparam *params, int n, float max_norm);
/* One update of every tensor with its gradient, at learning rate lr. */
void optim_step(optim *o, thread_pool *pool, tparam *params, int n, double lr);
/* The same in parts (tmodel_params.grads_ready: tensors updated as their gradients complete):
 * optim_begin counts the step, then optim_step_range updates tensors [i0, i1) of the list (each once
 * per step; the result is optim_step's bit for bit). optim_sumsq: the sum of squares of one gradient,
 * in double (eight partial sums, optim.c), as optim_clip sums it (the norm is the square root of these summed in list order). */
void optim_begin(optim *o);
void optim_step_range(optim *o, thread_pool *pool, tparam *params, int i0, int i1, double lr);
double optim_sumsq(const tparam *p);

#endif
