/* Threaded causal attention for training: the forward (output + log-sum-exp per query) and the
 * flash-style backward that recomputes the attention weights from lse instead of storing T x T per
 * head (the math, written out, is train_attention_*_ref in ops.h; these agree with it to float
 * rounding). Work items: forward and dq by (query head, block of queries); dk, dv by (KV head, block
 * of keys), each key's gradient summed over the queries of all heads of its group in a fixed order, so
 * results do not depend on the thread count. */
#ifndef HERD_TRAIN_ATTN_H
#define HERD_TRAIN_ATTN_H

#include "../thread/pool.h"
#include "ops.h"

/* scratch: train_attention_scratch_floats(a, n_threads) floats */
int64_t train_attention_scratch_floats(const train_attn_shape *a, int n_threads);
void train_attention_forward(thread_pool *pool, const train_attn_shape *a, const float *q, const float *k,
                             const float *v, float *o, float *lse, float *scratch);
/* dq, dk, dv written; D: [T][n_head] scratch of dO . o */
void train_attention_backward(thread_pool *pool, const train_attn_shape *a, const float *q, const float *k,
                              const float *v, const float *o, const float *lse, const float *dout, float *dq, float *dk,
                              float *dv, float *D, float *scratch);

#endif
