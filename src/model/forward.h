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
#include "lora.h"
#include "model.h"

typedef struct forward_state forward_state;

/* Allocates the KV cache (n_seq sequences of n_ctx positions, of kv_type) and scratch for n_batch
 * tokens, and starts n_threads workers. HERD_E_NOMEM with a message. */
int forward_state_new(const herd_model *m, int64_t n_seq, int64_t n_ctx, int64_t n_batch, int kv_type, int n_threads,
                      forward_state **out);
/* Bytes forward_state_new allocates besides the KV cache (kv_cache_bytes_for): activations of n_batch
 * tokens, the attention and matmul scratch of n_threads threads. Independent of n_ctx. */
uint64_t forward_scratch_bytes(const herd_model *m, int64_t n_seq, int64_t n_batch, int n_threads);
void forward_state_free(forward_state *s);
kv_cache *forward_kv(forward_state *s);
int64_t forward_n_batch(const forward_state *s);

/* Runs n <= n_batch tokens. Token t belongs to sequence seq[t] (seq NULL: all to sequence 0) and
 * takes that sequence's next position, so a sequence's tokens appear in order; sequences' n_past
 * advance. Token t attends to its own sequence only, and its result does not depend on the other
 * tokens of the batch. logits receives one row of n_vocab per token with want[t] set, in batch
 * order (want NULL: none). The caller has checked positions against n_ctx and ids against n_vocab. */
void forward_batch(forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                   float *logits);
/* The same pass, but out receives the final normed hidden state (n_embd floats, the input of the
 * output matrix) of each token with want[t], instead of logits. */
void forward_batch_hidden(forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                          float *out);

/* Tensor parallelism (model_shard; src/dist/ implements it over MPI). On a shard, the pass computes its
 * own heads and rows and calls gather(ctx, buf, n, what) where it needs whole activations: buf holds
 * [n][the shard's width] contiguous and must come back as [n][the whole width], the ranks' slices side by
 * side in rank order (FORWARD_TP_ATT: attention output, width n_head * head_dim; EMBD: the output of wo and
 * of w_down, n_embd; FF: swiglu's, n_ff; VOCAB: the logits, n_vocab, needed on rank 0 only). buf has room
 * for the whole width. begin (rank 0, else NULL) is called first with the pass's arguments, so the
 * followers can run the same pass. tp is borrowed; NULL: a single process. */
enum { FORWARD_TP_ATT, FORWARD_TP_EMBD, FORWARD_TP_FF, FORWARD_TP_VOCAB };
/* Pipeline parallelism (model_stage): a stage runs its own layers, over a batch cut into micro-batches
 * (forward.c). A stage other than the first gets the residual stream x ([n][n_embd]) from recv_x instead
 * of the embeddings; one other than the last hands it on with send_x after its last layer. The last stage
 * computes the outputs of the rows asked for and, when it is not rank 0's stage, sends them with out_send
 * ([n_rows][width]: logits, or hidden states); rank 0 posts a receive per micro-batch with out_post
 * before its first one runs, and waits for them all with out_wait. gather may be NULL (one rank per
 * stage). */
typedef struct {
    void *ctx;
    void (*begin)(void *ctx, forward_state *s, const int32_t *tokens, const int32_t *seq, int64_t n, const bool *want,
                  bool hidden);
    void (*gather)(void *ctx, float *buf, int64_t n, int what);
    int n_stages;                       /* 0 or 1: no pipeline (the fields below are not used) */
    bool first_stage, last_stage, lead; /* lead: rank 0 (its stage gets the outputs) */
    void (*recv_x)(void *ctx, float *x, int64_t n);
    void (*send_x)(void *ctx, const float *x, int64_t n);
    void (*out_send)(void *ctx, const float *out, int64_t n_rows, int64_t width);
    void (*out_post)(void *ctx, float *out, int64_t n_rows, int64_t width);
    void (*out_wait)(void *ctx);
} forward_tp;
void forward_set_tp(forward_state *s, const forward_tp *tp);

/* An observer of the matrices' inputs (herd imatrix: llama-imatrix's statistics). When set, it is called on
 * the calling thread before each matmul of a pass with that matmul's input rows x [n][ldx] (the first
 * w[0]->n_in floats of each row) and the n_w weights that take them: wq, wk and wv share one call, w_gate and
 * w_up another; wo, w_down and the output matrix (its rows: the tokens with want set) one each. NULL (the
 * default): one test per matmul, nothing else. The observer is borrowed and must outlive its use. */
typedef struct {
    void *ctx;
    void (*matmul_input)(void *ctx, const weight *const *w, int n_w, const float *x, int64_t ldx, int64_t n);
} forward_observer;
void forward_set_observer(forward_state *s, const forward_observer *obs);

/* LoRA adapters of sequence seq (-1: every sequence): from the next forward pass on, each of its tokens gets
 *     y += user_scale_i * (alpha_i / rank) * B_i (A_i x)      (lora.h; in F32, adapter by adapter in the order given)
 * on every matrix adapter i adapts (q k v o gate up down, the fused Q/K/V and gate/up passes included). A token's
 * result depends on its own sequence's adapters only, never on the rest of the batch. Replaces the sequence's
 * previous set; n = 0 clears it (no adapter: the pass is exactly the plain one, same numerics and speed).
 * The adapters are borrowed and must outlive the state or be unset first; the KV cache is not touched (positions
 * cached before were computed with the previous set). HERD_E_ARG for an adapter of another model's shape or a
 * scale that is not finite. */
int forward_set_lora(forward_state *s, int32_t seq, const lora_adapter *const *ad, const float *scales, int n);

/* Reads every weight byte a decode step reads, once, with a plain read loop (kernel_vec_ops.read_sum)
 * on the state's threads: each layer's seven matrices (their packed copies where the model has them)
 * and the output matrix, in the forward pass's order, one parallel pass per matrix as decode runs
 * them. Returns the seconds it took; *bytes gets the bytes read (herd_model_info.decode_bytes). The
 * time a decode step would take if it did nothing but stream its weights: its bandwidth roofline,
 * measured on the same threads, buffers and pages. */
double forward_read_weights(forward_state *s, uint64_t *bytes);

#endif
