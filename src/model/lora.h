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

/* "q", "k", "v", "o", "gate", "up", "down" */
const char *lora_target_name(int target);

/* path: llama.cpp's adapter GGUF or a PEFT directory; shapes checked against base. */
int lora_adapter_load(const herd_model *base, const char *path, lora_adapter **out);
void lora_adapter_free(lora_adapter *a);
int lora_adapter_save_gguf(const lora_adapter *a, const herd_model *base, const char *path);
int lora_adapter_save_peft(const lora_adapter *a, const herd_model *base, const char *dir);

#endif
