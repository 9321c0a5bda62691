/* The llama architecture: hyperparameters and weight views over a mapped GGUF or a mapped
 * Hugging Face directory (config.json + safetensors; the tensors reach the loader through one
 * tensor_table either way, under GGUF names).
 *
 * Shapes below use GGUF order [ne0 = contiguous, ne1 = rows]; a matmul weight W of shape
 * [n_in, n_out] maps x (n_in) to y (n_out): y[r] = dot(W row r, x) (* row_scale[r] for FP8).
 * Weights are views into the mapped files (no copies), except the small 1-D tensors (norms,
 * rope_freqs, FP8 row scales), which are converted to owned f32 arrays at load.
 */
#ifndef HERD_MODEL_H
#define HERD_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/file.h"
#include "../formats/hf_dir.h"
#include "../formats/tensor_table.h"
#include "../gguf/gguf.h"
#include "../tokenizer/hf_vocab.h"
#include "../tokenizer/vocab.h"
#include "herd.h"

typedef struct {
    int type;               /* herd_type */
    int64_t n_in, n_out;    /* ne0 (row length), ne1 (rows) */
    int64_t row_bytes;
    const uint8_t *data;    /* n_out rows of row_bytes, inside the mapping */
    const char *name;       /* the GGUF tensor name (owned by the tensor table) */
    const float *row_scale; /* [n_out] scale of each row (FP8 weights), else NULL */
    float act_ub;           /* FP8: upper bound of an activation row's scale (activation_scale_ub) */
    const uint8_t *packed;  /* the rows interleaved for the packed kernels (kernels/packed.h), or NULL */
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
    /* Llama 3 rope scaling from config.json (HF directories; a GGUF stores rope_freqs.weight
     * instead); factor 0 = none */
    float rope_l3_factor, rope_l3_low, rope_l3_high, rope_l3_orig_ctx;
} model_hparams;

struct herd_model {
    herd_mapped_file file;  /* the GGUF; for a HF directory only path (the directory) and size (of
                               the shards) are set */
    gguf_file gguf;         /* GGUF metadata; empty for a HF directory */
    hf_dir *hf;             /* the HF directory (config.json, mapped shards), or NULL */
    hf_vocab *hf_vocab;     /* its tokenizer as GGUF metadata (herd convert copies it), or NULL */
    tensor_table tensors;   /* every tensor under its GGUF name, from either source */
    model_hparams hp;
    herd_vocab *vocab;
    bool vocab_only;
    weight tok_embd;        /* [n_embd, n_vocab] */
    const float *output_norm; /* [n_embd] */
    weight output;          /* [n_embd, n_vocab]; a copy of tok_embd's view when tied */
    bool tied_output;
    float *rope_freqs;      /* [head_dim / 2] divisors (Llama 3 scaling), or NULL */
    bool rope_half_split;   /* Q/K rows in HF order: RoPE rotates (i, i + head_dim/2), see forward.c */
    float fp8_act_ub;       /* activation_scale_ub of FP8 weights (0 when the model has none) */
    float **scales_owned;   /* the FP8 row scales, [n_scales_owned] arrays */
    int64_t n_scales_owned;
    layer_weights *layers;  /* [n_layer] */
    float *f32_owned;       /* backing store of the 1-D tensors above */
    char *chat_template;    /* tokenizer.chat_template, NUL-terminated, or NULL */
    int weight_type;
    int64_t n_params;
    uint8_t **packed_owned; /* the packed copies of weights (repack.c), [n_packed_owned] */
    int64_t n_packed_owned;
    int64_t packed_bytes;   /* their total size */
    int shard_rank, shard_n; /* tensor-parallel shard (model_shard): rank of n; 0 of 1 for a whole model */
    int stage, n_stages;     /* pipeline stage (model_stage): its layers only; 0 of 1 for a whole model */
    int64_t stage_l0;        /* the first of its layers in the file (layers[0] is that one) */
    int64_t n_layer_file;    /* layers in the file (hp.n_layer is the stage's) */
    model_hparams hp_file;   /* the file's hyperparameters (hp becomes a shard's or a stage's) */
};

enum { MODEL_LOAD_VOCAB_ONLY = 1, MODEL_LOAD_NO_REPACK = 2 /* rows only, for readers that copy them (convert) */ };

/* head_dim is at most this (checked at load; Llama's are 64 and 128) */
#define MODEL_MAX_HEAD_DIM 4096

/* A layer's seven matrices, in the forward pass's order (what decode streams, with the output). */
enum { MODEL_LAYER_MATRICES = 7 };
static inline void model_layer_matrices(layer_weights *L, weight *w[MODEL_LAYER_MATRICES]) {
    w[0] = &L->wq, w[1] = &L->wk, w[2] = &L->wv, w[3] = &L->wo, w[4] = &L->w_gate, w[5] = &L->w_up, w[6] = &L->w_down;
}

/* path: a GGUF file or a Hugging Face directory. */
int model_load(const char *path, int flags, herd_model **out);
/* The same, keeping only rank's shard of n (shard.c; n = 1: the whole model): the split is checked
 * (model_shard_check) before any weight is touched. */
int model_load_shard(const char *path, int flags, int rank, int n, herd_model **out);
/* The same, also keeping only pipeline stage `stage` of n_stages (its layers; model_stage). */
int model_load_part(const char *path, int flags, int rank, int n, int stage, int n_stages, herd_model **out);

/* Tensor parallelism (shard.c): rows [*r0, *r1) of n_rows that rank of n keeps (balanced, cut at
 * multiples of PK_ROWS when n_rows is one); HERD_E_ARG naming the problem when a model cannot be split n
 * ways (n not dividing n_head_kv); model_shard turns a loaded model into rank's shard (before repacking). */
void model_shard_range(int64_t n_rows, int rank, int n, int64_t *r0, int64_t *r1);
int model_shard_check(const model_hparams *hp, int n, const char *path);
int model_shard(herd_model *m, int rank, int n);
/* Pipeline parallelism (shard.c): stage s of n keeps layers [n_layer s / n, n_layer (s + 1) / n) (hp.n_layer
 * becomes their count, layers[0] the first of them; the embeddings and the output stay as views, used by
 * the first and the last stage). HERD_E_ARG when there are fewer layers than stages. Before repacking. */
int model_stage_check(const model_hparams *hp, int n_stages, const char *path);
int model_stage(herd_model *m, int stage, int n_stages);
void model_free(herd_model *m);
/* Interleaves the weights of the packed types (kernels/packed.h) for the packed kernels where this CPU has
 * them (repack.c);
 * HERD_REPACK=0 in the environment keeps the plain layout. */
int model_repack(herd_model *m);
/* Fills hp, vocab, chat template, tensors and m->hf from a HF directory (model_hf.c). */
int model_load_hf(herd_model *m, const char *dir);

/* Llama 3 rope scaling as llama.cpp's converter writes it to rope_freqs.weight: the divisor of
 * each of head_dim/2 frequencies (LLAMA31.md, RoPE), computed in f32 as its torch code does. */
void model_llama3_rope_freqs(float *out, int64_t head_dim, float theta, float factor, float low_freq_factor,
                             float high_freq_factor, float orig_ctx);

/* Adapters merged by model_convert: W' = W + sum_i scales[i] * alpha_i / rank * B_i A_i (lora.h). */
struct lora_adapter;
typedef struct {
    const struct lora_adapter *const *ad;
    const float *scales;
    int n;
} model_merge;
/* herd convert of a loaded model (in_path names it in general.name when it has none), merging the adapters
 * of `merge` (NULL: none) into the matrices they adapt (convert.c). */
int model_convert(const herd_model *m, const char *in_path, const char *out_path, const herd_convert_params *p,
                  const model_merge *merge);

/* llama.cpp's general.file_type (llama_ftype) for a weight type; -1 for herd's own types (convert.c) */
int model_gguf_file_type(int type);

/* herd's GGUF extensions (docs/FORMATS.md): a file using one lists it in this string array. */
#define MODEL_KEY_EXTENSIONS "herd.required_extensions"
#define MODEL_EXT_FP8 "fp8_e4m3_rowwise"
#define MODEL_KEY_FP8_UB "herd.fp8.activation_scale_ub"
#define MODEL_FP8_SCALE_SUFFIX "_scale" /* blk.N.ffn_gate.weight -> blk.N.ffn_gate.weight_scale */

#endif
