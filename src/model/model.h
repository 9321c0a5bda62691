/* The llama architecture: hyperparameters and weight views over a mapped GGUF.
 *
 * Shapes below use GGUF order [ne0 = contiguous, ne1 = rows]; a matmul weight W of shape
 * [n_in, n_out] maps x (n_in) to y (n_out): y[r] = dot(W row r, x).
 * Weights are views into the mapped file (no copies), except the small 1-D tensors (norms,
 * rope_freqs), which are converted to owned f32 arrays at load.
 */
#ifndef HERD_MODEL_H
#define HERD_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/file.h"
#include "../gguf/gguf.h"
#include "../tokenizer/vocab.h"
#include "herd.h"

typedef struct {
    int type;               /* herd_type */
    int64_t n_in, n_out;    /* ne0 (row length), ne1 (rows) */
    int64_t row_bytes;
    const uint8_t *data;    /* n_out rows of row_bytes, inside the mapping */
    const char *name;       /* the GGUF tensor name (owned by the gguf_file) */
} weight;

typedef struct {
    const float *attn_norm; /* [n_embd] */
    weight wq;              /* [n_embd, n_head * head_dim] */
    weight wk;              /* [n_embd, n_head_kv * head_dim] */
    weight wv;              /* [n_embd, n_head_kv * head_dim] */
    weight wo;              /* [n_head * head_dim, n_embd] */
    const float *ffn_norm;  /* [n_embd] */
    weight w_gate;          /* [n_embd, n_ff] */
    weight w_up;            /* [n_embd, n_ff] */
    weight w_down;          /* [n_ff, n_embd] */
} layer_weights;

typedef struct {
    int64_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    float rope_theta;       /* llama.rope.freq_base (10000 if absent) */
    float rope_freq_scale;  /* 1 / llama.rope.scaling.factor for linear scaling, else 1 */
    float norm_eps;         /* llama.attention.layer_norm_rms_epsilon */
} model_hparams;

struct herd_model {
    herd_mapped_file file;
    gguf_file gguf;
    model_hparams hp;
    herd_vocab *vocab;
    bool vocab_only;
    weight tok_embd;        /* [n_embd, n_vocab] */
    const float *output_norm; /* [n_embd] */
    weight output;          /* [n_embd, n_vocab]; a copy of tok_embd's view when tied */
    bool tied_output;
    float *rope_freqs;      /* [head_dim / 2] divisors (Llama 3 scaling), or NULL */
    layer_weights *layers;  /* [n_layer] */
    float *f32_owned;       /* backing store of the 1-D tensors above */
    char *chat_template;    /* tokenizer.chat_template, NUL-terminated, or NULL */
    int weight_type;
    int64_t n_params;
};

enum { MODEL_LOAD_VOCAB_ONLY = 1 };

int model_load(const char *path, int flags, herd_model **out);
void model_free(herd_model *m);

#endif
