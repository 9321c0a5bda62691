/* The model as the trainer sees it: the frozen base (any weight type herd loads), the trainable
 * parameters (LoRA adapters, or F32 copies of every weight for full fine-tuning) with gradients of
 * exactly their layout, and the forward and backward pass of one sequence.
 *
 * The pass over a sequence of T input tokens (positions 0..T-1; token t predicts tokens[t + 1]):
 *   x_0 = embd[tokens]                                                  x: [L + 1][T][E] (kept)
 *   per layer l (its intermediates in a layer tape, recomputed from x_l in the backward pass when
 *   checkpointing, else kept for every layer):
 *     h1 = rmsnorm(x_l) * attn_norm (s1: the rms scale per token)      [T][E], [T]
 *     q, k, v = h1 Wq^T, h1 Wk^T, h1 Wv^T (+ LoRA);  rope(q), rope(k)   [T][qd], [T][kd], [T][kd]
 *     o, lse = attention(q, k, v)                                       [T][qd], [T][H]
 *     xm = x_l + o Wo^T (+ LoRA)                                        [T][E]
 *     h2 = rmsnorm(xm) * ffn_norm (s2)                                  [T][E], [T]
 *     g, u = h2 Wgate^T, h2 Wup^T (+ LoRA);  a = silu(g) * u            [T][F] each
 *     x_{l+1} = xm + a Wdown^T (+ LoRA)
 *   hN = rmsnorm(x_L) * output_norm, then the loss head over chunks of tokens: logits = hN Wout^T,
 *   one chunk of TRAIN_HEAD_CHUNK x n_vocab floats at a time (never T x n_vocab).
 * LoRA on a matrix W with input x: y += scale * (drop(x) A^T) B^T, scale = alpha / rank; drop() is
 * inverted dropout with a mask drawn from (seed, step, sequence, layer, matrix, element), so the
 * recomputation draws the same mask. */
#ifndef HERD_TRAIN_TMODEL_H
#define HERD_TRAIN_TMODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "../model/lora.h"
#include "../model/model.h"
#include "../thread/pool.h"
#include "gemm.h"

enum { TRAIN_METHOD_LORA = 0, TRAIN_METHOD_FULL = 1 };

/* A trainable tensor: values, gradient (same layout), and its name in the output files. */
typedef struct {
    char name[96];
    float *w, *g;
    int64_t n;
    int64_t ne[2];  /* GGUF shape (ne[1] = 1 for vectors) */
    int src_type;   /* the base tensor's type (full fine-tuning writes it back in that type) */
} tparam;

typedef struct {
    int64_t rank;      /* 0: no adapter */
    float scale;       /* alpha / rank */
    float *a, *b;      /* [rank][n_in], [n_out][rank] */
    float *ga, *gb;
} tlora;

typedef struct {
    train_w w;  /* what the products read: the frozen base, or the F32 trainable copy */
    float *gw;  /* full: the gradient [n_out][n_in]; else NULL */
    tlora lora;
} tmat;

typedef struct {
    const float *attn_norm, *ffn_norm; /* [E] */
    float *g_attn_norm, *g_ffn_norm;   /* full: gradients; else NULL */
    tmat m[LORA_N_TARGETS];            /* q, k, v, o, gate, up, down */
} tlayer;

typedef struct {
    int method;              /* TRAIN_METHOD_* */
    int64_t rank;
    float alpha, dropout;
    unsigned targets;        /* bit t set: LoRA on target t (lora.h order) */
    uint64_t seed;           /* initialisation and dropout */
    bool checkpoint;         /* recompute each layer in the backward pass (memory: one layer tape) when all
                              * layers' tapes exceed TRAIN_TAPE_BUDGET */
    int n_threads;
    int base_compute; /* LoRA: the frozen weights' products, TRAIN_BASE_F32 / BF16 / INT8 (gemm.h) */
    /* Full fine-tuning only, and only where nothing needs all gradients at once (no clipping by the
     * global norm, no accumulation over several sequences): when set, forward_backward hands each group
     * of parameters (indices [p0, p1) of tmodel_params_list) to grads_ready as soon as its gradient is
     * complete in the backward pass (the untied output, output_norm, each layer from the last, the
     * embedding), and the callback updates them (torchtune's optimizer_in_bwd). The layers' gradients then
     * share one layer-sized buffer, zeroed after each hand-over: the gradients of a 1B-shaped model take
     * ~1.3 GB instead of 5 GB. Not called when the loss is not finite. */
    void (*grads_ready)(void *user, int p0, int p1);
    void *grads_user;
} tmodel_params;

typedef struct tmodel tmodel;

/* Sets up training on base (loaded without repacking; borrowed, must outlive the tmodel): LoRA A
 * Kaiming-uniform (as PEFT/torch: U(-1/sqrt(n_in), 1/sqrt(n_in))), B zero; or full: F32 copies of
 * every weight. HERD_E_NOMEM / HERD_E_ARG with a message. */
int tmodel_new(herd_model *base, const tmodel_params *p, tmodel **out);
void tmodel_free(tmodel *tm);

/* The trainable tensors (LoRA: a then b of each adapted matrix, layer by layer; full: embedding,
 * per layer attn_norm, q, k, v, o, ffn_norm, gate, up, down, then output_norm and (untied) output).
 * Owned by tm. */
tparam *tmodel_params_list(tmodel *tm, int *n);
void tmodel_zero_grad(tmodel *tm);
/* Frees the gradients (after the last step: writing the output needs only the weights; a 1B-shaped full
 * fine-tuning's are 1.2 GB). No forward_backward, zero_grad or optimizer step after it. */
void tmodel_free_grads(tmodel *tm);
/* Switches the LoRA adapters off (the reference policy of DPO) or on. */
void tmodel_lora_enable(tmodel *tm, bool on);
thread_pool *tmodel_pool(tmodel *tm);
/* The adapter as lora.h holds it, pointing into tm's parameters (valid while tm lives). */
void tmodel_lora_view(tmodel *tm, lora_adapter *out);

/* What the loss head does with each position's logits. */
typedef struct {
    const int32_t *tokens;   /* [T + 1] */
    const float *weight;     /* [T] weight of position t's cross-entropy against tokens[t + 1] (0: none) */
    /* distillation: the teacher's log-probabilities at positions pos[0..n) (n <= TRAIN_HEAD_CHUNK),
     * computed by the caller's callback */
    void (*teacher)(void *user, const int64_t *pos, int64_t n, float *logp_teacher /* [n][n_vocab] */);
    void *teacher_user;
    float kd_ratio, kd_temp;  /* loss = (1 - kd_ratio) CE + kd_ratio KL(teacher || student at T) */
    const float *kd_weight;   /* [T] weight of position t's KL term */
    int64_t step, seq_index;  /* for the dropout mask */
} tmodel_loss;

typedef struct {
    double loss;       /* sum over positions of weight * CE (+ KL terms) */
    double sum_logp;   /* sum over positions with weight > 0 of log p(target) */
    int64_t n_pos;     /* positions with weight > 0 */
} tmodel_result;

/* Forward + backward of one sequence (tokens[0..T] with T <= max_T): the loss as loss describes, its
 * gradient added into every parameter's g. HERD_E_RANGE if T > max_T. */
int tmodel_forward_backward(tmodel *tm, int64_t T, const tmodel_loss *loss, tmodel_result *res);
/* Forward only (no tape kept, no gradient): sum of log p(tokens[t + 1]) over positions with
 * weight[t] > 0 (DPO's reference log-probabilities, validation loss). */
int tmodel_forward_logp(tmodel *tm, int64_t T, const int32_t *tokens, const float *weight, tmodel_result *res);
/* Forward only, keeping the final normed hidden states; then tmodel_head_logits gives the logits of
 * positions pos[0..n) (n <= TRAIN_HEAD_CHUNK) into out [n][n_vocab] (a distillation teacher). */
int tmodel_forward_hidden(tmodel *tm, int64_t T, const int32_t *tokens);
void tmodel_head_logits(tmodel *tm, const int64_t *pos, int64_t n, float *out);
int64_t tmodel_n_vocab(const tmodel *tm);
/* Reserves buffers for sequences up to T input tokens (called once before training). */
int tmodel_reserve(tmodel *tm, int64_t T);

/* With HERD_TRAIN_MEM=1 in the environment: one stderr line "train: memory <what>: RSS (anonymous,
 * file-backed), peak" from /proc/self/status (where the bytes of a step go); otherwise nothing. */
void train_mem_note(const char *what);

#define TRAIN_HEAD_CHUNK 256

/* With checkpoint asked for, the tapes of all layers are kept anyway when they take at most this many
 * bytes (the recomputation costs a third more products; a 1B-shaped model's 16 layers at 256 tokens
 * take ~0.6 GB, an 8B's 32 at 2048 tokens ~20 GB). The results are the same bit for bit either way. */
#define TRAIN_TAPE_BUDGET (1024ll << 20)

#endif
