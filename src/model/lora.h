/* LoRA adapters: y = W x + scale * B (A x) on a layer's matrices, scale = user_scale * alpha / rank.
 *
 * In memory an adapter holds, for each layer and each of the seven matrices (model_layer_matrices'
 * order: q, k, v, o, gate, up, down), either nothing (rank 0) or two F32 matrices:
 *   a: [rank][n_in]   row-major   (ggml tensor blk.N.<name>.weight.lora_a, ne = {n_in, rank};
 *                                   PEFT lora_A.weight, shape [r, in])
 *   b: [n_out][rank]  row-major   (ggml tensor blk.N.<name>.weight.lora_b, ne = {rank, n_out};
 *                                   PEFT lora_B.weight, shape [out, r])
 * b's rows follow the row order of the base weight as herd holds it (GGUF order for a GGUF base; for a
 * HF directory base, whose Q/K rows herd keeps in HF order (model->rope_half_split), HF order). The
 * files have their own orders (llama.cpp's adapter GGUF: GGUF's; PEFT: HF's, Q/K rows permuted back);
 * load and save convert.
 */
#ifndef HERD_MODEL_LORA_H
#define HERD_MODEL_LORA_H

#include <stdint.h>

#include "model.h"

enum { LORA_Q = 0, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_TARGETS };

typedef struct {
    int64_t rank; /* 0: no adapter on this matrix */
    float *a;     /* [rank][n_in] */
    float *b;     /* [n_out][rank] */
} lora_matrix;

typedef struct lora_adapter {
    float alpha;     /* adapter.lora.alpha (scale = alpha / rank; alpha 0 means scale 1, as llama.cpp) */
    int64_t n_layer;
    lora_matrix *m;  /* [n_layer * LORA_N_TARGETS]: layer l, target t at m[l * LORA_N_TARGETS + t] */
    void *owned;     /* what load allocated (NULL when a and b point at the caller's memory) */
} lora_adapter;

/* The public handle (herd.h's herd_lora): the adapter and the base it was checked against. */
struct herd_lora {
    lora_adapter *ad;
    const herd_model *base;
};

/* "q", "k", "v", "o", "gate", "up", "down" */
const char *lora_target_name(int target);
/* GGUF's tensor name of the target ("attn_q" .. "ffn_down"), and transformers' module name ("q_proj" ..
 * "down_proj", under self_attn. for q k v o, under mlp. for gate up down). */
const char *lora_target_gguf(int target);
const char *lora_target_hf(int target);
/* The base weight a target adapts: its n_in and n_out (what a: [rank][n_in] and b: [n_out][rank] must fit). */
const weight *lora_target_weight(const herd_model *base, int64_t layer, int target);

/* The factor of B (A x) for one matrix: user_scale * alpha / rank (user_scale when alpha is 0). */
float lora_matrix_scale(const lora_adapter *a, const lora_matrix *mt, float user_scale);

/* Reads an adapter for `base` (borrowed: only its shapes and Q/K row order are read):
 *   - a file: llama.cpp's adapter GGUF (general.type = adapter, adapter.type = lora, adapter.lora.alpha,
 *     tensors blk.N.<gguf name>.weight.lora_a / .lora_b, F32 / F16 / BF16);
 *   - a directory: PEFT's adapter_config.json + adapter_model.safetensors.
 * Every tensor's shape is checked against the base; whatever does not fit is refused with one line naming
 * the file and the tensor (expected vs found). Q/K rows of b are brought into the base's order (lora.h top).
 * OUT: *out, free with lora_adapter_free (owns its memory). */
int lora_adapter_load(const herd_model *base, const char *path, lora_adapter **out);
void lora_adapter_free(lora_adapter *a);
/* Allocates an adapter for base with every matrix of `targets` (a bit mask: 1 << LORA_Q | ...) in every
 * layer at `rank`, zero-filled (a and b in one owned block). For the trainer and tests. */
lora_adapter *lora_adapter_new(const herd_model *base, unsigned targets, int64_t rank, float alpha);

/* Writes llama.cpp's adapter GGUF (F32 tensors; general.architecture llama, general.type adapter,
 * adapter.type lora, adapter.lora.alpha). Only reads a. Atomic: a temporary file in the same folder,
 * renamed over path when complete; a crash leaves path as it was. */
int lora_adapter_save_gguf(const lora_adapter *a, const herd_model *base, const char *path);
/* Writes a PEFT adapter folder (created if missing): adapter_config.json (peft_type LORA, r, lora_alpha,
 * target_modules, bias none, task_type CAUSAL_LM) and adapter_model.safetensors (F32, Q/K rows of b in
 * HF order). Each file is written atomically (temporary + rename). All matrices must share one rank. */
int lora_adapter_save_peft(const lora_adapter *a, const herd_model *base, const char *dir);

/* ---- internal to the lora files ---- */
/* Q/K rows between HF's order and GGUF's (LLAMA31.md, RoPE): GGUF row h*hd + 2i + j = HF row h*hd + j*hd/2 + i.
 * to_gguf: the HF row that lands at GGUF row r; else the GGUF row that lands at HF row r. */
int64_t lora_qk_row(int64_t r, int64_t head_dim, bool to_gguf);
/* Checks one loaded pair against the base and stores it: a [rank][n_in] and b [n_out][rank] as F32, converted
 * from `type` (F32/F16/BF16), b's rows in the base's order (b_hf_order: the file holds them in HF order). */
typedef struct {
    const char *file, *a_name, *b_name; /* for messages */
    int a_type, b_type;
    const uint8_t *a_data, *b_data;
    int64_t a_rows, a_cols, b_rows, b_cols; /* as row-major matrices: a [rank][n_in], b [n_out][rank] */
    bool b_hf_order;
} lora_pair_src;
int lora_pair_check(const herd_model *base, int64_t layer, int target, const lora_pair_src *src);
/* Fills m (layer, target) from src (checked): allocates from the adapter's arena. */
void lora_pair_store(lora_adapter *a, const herd_model *base, int64_t layer, int target, const lora_pair_src *src);
/* An empty adapter for base (every rank 0), with an arena of `floats` floats for lora_pair_store. */
lora_adapter *lora_adapter_alloc(const herd_model *base, float alpha, int64_t floats);
int lora_adapter_load_peft(const herd_model *base, const char *dir, lora_adapter **out);

#endif
