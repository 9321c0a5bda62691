/* DeBERTa-v2 sequence classifier (Prompt Guard), as transformers' modeling_deberta_v2.py computes it.
 *
 * Data flow for one window of T ids (T <= n_pos), H = hidden, nh heads of d, S = att_span:
 *   x[T][H]  = LayerNorm(word_embeddings[id] (+ position_embeddings[t] if position_biased_input)
 *              (+ token_type_embeddings[0] if type_vocab_size > 0), then embed_proj if embedding_size != H)
 *   rel[2S][H] = LayerNorm_enc(rel_embeddings)        (norm_rel_ebd "layer_norm"; else as stored)
 *   each layer:
 *     q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv             per head h: columns h*d .. h*d+d
 *     pk, pq  = rel Wk^T + bk, rel Wq^T + bq  (share_att_key; else pos_key_proj / pos_query_proj)
 *     r(i,j)  = clamp(bucket(i - j) + S, 0, 2S - 1)    bucket = make_log_bucket_position (log-bucketed
 *               beyond ±position_buckets/2, up to max_relative_positions; identity without buckets)
 *     s[i][j] = q_i.k_j / c + q_i.pk_r(i,j) / c (c2p) + k_j.pq_r(i,j) / c (p2c),  c = sqrt(d * (1 + #terms))
 *               (p2c gathers at clamp(-bucket(j - i) + S) = r(i,j): the buckets are odd-symmetric)
 *     a = softmax_j(s) v;  x1 = LayerNorm(a Wo^T + bo + x);  x = LayerNorm(gelu(x1 Wi^T + bi) Wo2^T + bo2 + x1)
 *   pooled = gelu(Wp x[0] + bp) ([CLS]); logits = Wc pooled + bc
 * gelu is the exact erf form. Weights are F32 views into model.safetensors (F16/BF16 tensors are
 * converted once at load), with the HF names (deberta.embeddings.word_embeddings.weight, ...).
 * A model is read-only after load; a deberta_ctx holds one thread pool's scratch.
 */
#ifndef HERD_DEBERTA_DEBERTA_H
#define HERD_DEBERTA_DEBERTA_H

#include <stdint.h>

#include "../base/file.h"
#include "../formats/hf_config.h"
#include "../formats/safetensors.h"
#include "../thread/pool.h"

typedef struct {
    const float *wq, *bq, *wk, *bk, *wv, *bv; /* [H][H], [H] */
    const float *wpk, *bpk, *wpq, *bpq;       /* pos_key_proj / pos_query_proj without share_att_key */
    const float *wo, *bo, *ln1_w, *ln1_b;     /* attention.output.dense [H][H], its LayerNorm [H] */
    const float *wi, *bi;                     /* intermediate.dense [F][H], [F] */
    const float *wo2, *bo2, *ln2_w, *ln2_b;   /* output.dense [H][F], [H]; output.LayerNorm [H] */
    float *pos_k, *pos_q;                     /* [2S][H] position keys / queries (owned; NULL if unused) */
} deberta_layer;

typedef struct {
    hf_deberta_config cfg;
    const float *tok_embd;   /* [V][E] */
    const float *pos_embd;   /* [n_pos][E] or NULL */
    const float *type_embd;  /* [n_type][E] or NULL */
    const float *embed_proj; /* [H][E] or NULL */
    const float *emb_ln_w, *emb_ln_b;
    float *rel;              /* [2S][H] relative embeddings after their LayerNorm (owned) */
    deberta_layer *layers;
    const float *pool_w, *pool_b; /* [H][H], [H] */
    const float *cls_w, *cls_b;   /* [n_labels][H], [n_labels] */
    int32_t *rel_idx;             /* [2 n_pos - 1]: r for i - j = delta at rel_idx[delta + n_pos - 1] */
    herd_mapped_file file;
    st_file st;
    float **owned;
    int n_owned;
} deberta_model;

/* Reads DIR/config.json and DIR/model.safetensors and precomputes the position projections on pool
 * (NULL: one thread). Errors name the file and the tensor (missing, wrong shape, unsupported dtype). */
int deberta_load(const char *dir, thread_pool *pool, deberta_model **out);
void deberta_free(deberta_model *m);

/* The relative-position bucket of delta = i - j (make_log_bucket_position in float32, as PyTorch). */
int64_t deberta_bucket(int64_t delta, int64_t bucket_size, int64_t max_position);

/* Scalar reference: logits[n_labels] of ids[0..T), straight from the definitions above. */
int deberta_forward_ref(const deberta_model *m, const int32_t *ids, int64_t T, float *logits);

typedef struct deberta_ctx deberta_ctx;
deberta_ctx *deberta_ctx_new(const deberta_model *m, thread_pool *pool);
void deberta_ctx_free(deberta_ctx *c);
/* The same logits, threaded on the pool with the F32 GEMM. HERD_E_RANGE for T outside 1..n_pos,
 * HERD_E_ARG for an id outside the vocabulary. */
int deberta_forward(deberta_ctx *c, const int32_t *ids, int64_t T, float *logits);

#endif
