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

/* config.json of a DeBERTa-v2 sequence classifier (Prompt Guard; transformers' DebertaV2Config):
 *   model_type "deberta-v2", architectures [DebertaV2ForSequenceClassification], hidden_size,
 *   num_hidden_layers, num_attention_heads, attention_head_size (= hidden / heads), intermediate_size,
 *   vocab_size, embedding_size (= hidden), max_position_embeddings (512), type_vocab_size (0),
 *   layer_norm_eps (1e-7), relative_attention, max_relative_positions (< 1: max_position_embeddings),
 *   position_buckets (-1), pos_att_type (list or "p2c|c2p"), share_att_key, position_biased_input
 *   (true), norm_rel_ebd ("layer_norm"), hidden_act / pooler_hidden_act (gelu only),
 *   pooler_hidden_size (= hidden), id2label (else num_labels). conv_kernel_size > 0 is refused. */
#define HF_MAX_LABELS 16

typedef struct {
    int64_t n_embd, n_layer, n_head, head_dim, n_ff, n_vocab, n_embd_in, n_pos, n_type;
    int64_t max_relative_positions, position_buckets, att_span, pooler_size;
    double norm_eps;
    bool relative_attention, c2p, p2c, share_att_key, position_biased_input, norm_rel_ebd;
    int64_t n_labels;
    char labels[HF_MAX_LABELS][64];
} hf_deberta_config;

int hf_deberta_config_parse(const char *json, size_t len, const char *what, hf_deberta_config *out);
int hf_deberta_config_load(const char *dir, hf_deberta_config *out);

#endif
