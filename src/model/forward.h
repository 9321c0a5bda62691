/* The forward pass of the llama architecture over a batch of tokens of one sequence.
 *
 * Data flow per layer, for a batch of n tokens at positions p..p+n-1 (LLAMA31.md):
 *   h   = rmsnorm(x) * attn_norm
 *   q,k,v = h Wq, h Wk, h Wv;  rope(q), rope(k) on adjacent pairs, angles scaled by rope_freqs
 *   K,V cache[p..p+n) = k, v
 *   a   = softmax(q K^T / sqrt(head_dim), causal) V        (head h uses KV head h / (n_head/n_head_kv))
 *   x  += a Wo
 *   h   = rmsnorm(x) * ffn_norm
 *   x  += (silu(h Wgate) * (h Wup)) Wdown
 * then logits = (rmsnorm(x) * output_norm) Woutput for the rows asked for.
 */
#ifndef HERD_MODEL_FORWARD_H
#define HERD_MODEL_FORWARD_H

#include <stdint.h>

#include "../kv/kv.h"
#include "model.h"

typedef struct forward_state forward_state;

/* Allocates the KV cache (n_ctx positions of kv_type) and scratch for n_batch tokens, and starts
 * n_threads workers. HERD_E_NOMEM / HERD_E_ARG with a message. */
int forward_state_new(const herd_model *m, int64_t n_ctx, int64_t n_batch, int kv_type, int n_threads,
                      forward_state **out);
void forward_state_free(forward_state *s);
kv_cache *forward_kv(forward_state *s);
int64_t forward_n_batch(const forward_state *s);

/* Runs n <= n_batch tokens at positions kv.n_past.. and advances n_past. With logits_mode
 * HERD_LOGITS_ALL, logits gets n rows of n_vocab; with HERD_LOGITS_LAST one row (the last token).
 * The caller has checked n_past + n <= n_ctx and that every token id is < n_vocab. */
void forward_batch(forward_state *s, const int32_t *tokens, int64_t n, int logits_mode, float *logits);

#endif
