/* The backward side of the llama block's per-row operations, each beside its forward (the forward
 * ones that inference also runs live in src/model/ops.h and are reused as they are).
 *
 * Conventions: rows are contiguous; d* are gradients of the loss; "+=" means the result is
 * accumulated into the output (the caller zeroes it first when needed). Sums over a row are taken in
 * double so that the gradients' rounding stays far below the tests' 1e-4 relative tolerance. */
#ifndef HERD_TRAIN_OPS_H
#define HERD_TRAIN_OPS_H

#include <stdbool.h>
#include <stdint.h>

/* RMSNorm y = x * s * w, s = 1/sqrt(mean(x^2) + eps) (model_rmsnorm returns s).
 *   dx  = s * (dy * w) - x * s^3 / n * sum_j dy_j w_j x_j      (written, not accumulated)
 *   dw += dy * x * s                                           (dw may be NULL: a frozen norm) */
void train_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, float s,
                            int64_t n);

/* RoPE's backward: the rotation by the opposite angles, in place on d (n_heads heads of head_dim), with
 * the layout model_rope_apply used: adjacent pairs, or half_split (the pair (i, i + half) of the input
 * went to (2i, 2i+1) of the output, so the gradient goes back from (2i, 2i+1) to (i, i + half)). */
void train_rope_backward(float *d, int64_t n_heads, int64_t head_dim, const float *cs, bool half_split);

/* SwiGLU a = silu(g) * u, silu(g) = g * sigmoid(g) (computed as g / (1 + exp(-g)), as the forward).
 *   dg = da * u * sigmoid(g) * (1 + g * (1 - sigmoid(g))),   du = da * silu(g)   (written) */
void train_swiglu_forward(float *a, const float *g, const float *u, int64_t n);
void train_swiglu_backward(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n);

/* Causal self-attention of one sequence of T tokens, grouped-query: head h reads KV head
 * h / (n_head / n_head_kv). q: [T][n_head * hd], k, v: [T][n_head_kv * hd] (after RoPE);
 * o: [T][n_head * hd]; lse: [T][n_head] the log-sum-exp of each query's scaled scores (what the
 * backward needs to recompute the attention weights instead of storing T x T per head).
 *   s_tj = (q_t . k_j) * scale  (j <= t),  p_tj = exp(s_tj - lse_t),  o_t = sum_j p_tj v_j
 * These are the scalar references (in double); attn.c holds the threaded versions (the same math as
 * blocked F32 products and kernels.h exp_f32: they agree to float rounding). */
typedef struct {
    int64_t T, n_head, n_head_kv, hd;
    float scale;
} train_attn_shape;
void train_attention_forward_ref(const train_attn_shape *a, const float *q, const float *k, const float *v, float *o,
                                 float *lse);
/* dq, dk, dv written (not accumulated):
 *   D_t = dO_t . o_t,  dp_tj = dO_t . v_j,  ds_tj = p_tj (dp_tj - D_t)
 *   dq_t = scale sum_j ds_tj k_j,  dk_j = scale sum_{t,h} ds_tj q_t,  dv_j = sum_{t,h} p_tj dO_t */
void train_attention_backward_ref(const train_attn_shape *a, const float *q, const float *k, const float *v,
                                  const float *o, const float *lse, const float *dout, float *dq, float *dk,
                                  float *dv);

/* Cross-entropy of one row of logits (n_vocab) against target with weight wt:
 * returns wt * (logsumexp(z) - z[target]) and writes dz = wt * (softmax(z) - onehot(target)) (dz may be z).
 * Also *logp (if not NULL) = z[target] - logsumexp(z). */
double train_xent_row(float *dz, const float *z, int64_t n_vocab, int32_t target, float wt, double *logp);

#endif
