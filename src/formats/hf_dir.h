/* A Hugging Face model directory: config.json + *.safetensors (one file, or shards listed by
 * model.safetensors.index.json), mapped read-only.
 *
 * Tensor names (transformers' LlamaForCausalLM) and herd's (GGUF) names:
 *   model.embed_tokens.weight                       token_embd.weight       [n_vocab, n_embd]
 *   model.norm.weight                               output_norm.weight      [n_embd]
 *   lm_head.weight                                  output.weight           [n_vocab, n_embd]
 *   model.layers.N.input_layernorm.weight           blk.N.attn_norm.weight
 *   model.layers.N.self_attn.{q,k,v,o}_proj.weight  blk.N.attn_{q,k,v,output}.weight
 *   model.layers.N.post_attention_layernorm.weight  blk.N.ffn_norm.weight
 *   model.layers.N.mlp.{gate,up,down}_proj.weight   blk.N.ffn_{gate,up,down}.weight
 *   ...._proj.weight_scale (FP8 checkpoints)        blk.N.<same>.weight_scale   [n_out, 1] f32
 * (shapes as safetensors writes them: [out, in]). Q and K rows are in HF's order, which rotates
 * half-split pairs (LLAMA31.md, RoPE); the model loader accounts for it. rotary_emb.inv_freq and
 * input_scale_ub tensors are ignored (derived from config.json); any other name is an error.
 */
#ifndef HERD_FORMATS_HF_DIR_H
#define HERD_FORMATS_HF_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/file.h"
#include "hf_config.h"
#include "safetensors.h"
#include "tensor_table.h"

typedef struct {
    herd_mapped_file map;
    st_file st;
} hf_shard;

typedef struct {
    char *dir;
    hf_config cfg;
    hf_shard *shards; /* [n_shards], in index (or file-name) order */
    int n_shards;
    uint64_t total_bytes; /* of the shards */
} hf_dir;

/* True if path is a directory. */
bool hf_is_dir(const char *path);
/* Reads config.json and maps the safetensors files (a directory without any is allowed: it holds
 * only a tokenizer). Errors name the file (and the tensor). OUT: *out (free with hf_dir_free). */
int hf_dir_open(const char *dir, hf_dir **out);
void hf_dir_free(hf_dir *d);
/* Adds every tensor under its herd name. Checks that layer numbers are below num_hidden_layers,
 * that no name appears twice and that every tensor has at most 4 dimensions. */
int hf_dir_tensors(const hf_dir *d, tensor_table *tt);

/* Name mapping (both directions; false for names outside the table above). */
bool hf_name_to_gguf(const char *hf, char *out, size_t cap);
bool hf_name_from_gguf(const char *gguf, char *out, size_t cap);

#endif
