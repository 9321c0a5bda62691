/* config.json of a Hugging Face Llama checkpoint (transformers' LlamaConfig).
 *
 * Keys read (defaults are LlamaConfig's where it has one that Meta's checkpoints rely on):
 *   architectures ["LlamaForCausalLM"] (or model_type "llama"), hidden_size, num_hidden_layers,
 *   num_attention_heads, num_key_value_heads (= heads), head_dim (= hidden / heads), intermediate_size,
 *   vocab_size, rms_norm_eps (1e-6), rope_theta (10000), max_position_embeddings (2048),
 *   tie_word_embeddings (false), hidden_act ("silu"), attention_bias / mlp_bias (false),
 *   rope_scaling {rope_type|type: "llama3" | "linear" | "default", factor, low_freq_factor (1),
 *                 high_freq_factor (4), original_max_position_embeddings (8192)},
 *   quantization_config {quant_method "fbgemm_fp8", activation_scale_ub (1200)},
 *   bos_token_id, eos_token_id (an integer or a list).
 * Anything herd cannot run (another architecture, biases, another rope scaling or quantization
 * method) is an error naming the file and the key.
 */
#ifndef HERD_FORMATS_HF_CONFIG_H
#define HERD_FORMATS_HF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { HF_ROPE_NONE = 0, HF_ROPE_LLAMA3 = 1, HF_ROPE_LINEAR = 2 };

#define HF_MAX_EOS 8

typedef struct {
    int64_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train;
    double norm_eps, rope_theta;
    bool tie_word_embeddings;
    int rope_kind; /* HF_ROPE_* */
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor, rope_orig_ctx;
    bool fp8;                    /* quantization_config.quant_method == "fbgemm_fp8" */
    float fp8_act_ub;            /* activation_scale_ub */
    int64_t bos_id;              /* -1 when absent */
    int64_t eos_ids[HF_MAX_EOS]; /* the first is EOS */
    int n_eos;
    char name[128]; /* _name_or_path, may be empty */
} hf_config;

/* Parses config.json text json[0..len). `what` names the file in errors. 0 ok, HERD_E_FORMAT /
 * HERD_E_UNSUPPORTED with one line naming the key. */
int hf_config_parse(const char *json, size_t len, const char *what, hf_config *out);
/* Reads and parses DIR/config.json. */
int hf_config_load(const char *dir, hf_config *out);

#endif
