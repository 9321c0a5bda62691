/* Model quantization (herd_quantize_model, quantize.c): which tensor gets which type (mix.c).
 *
 * The rules are llama.cpp's (src/llama-quant.cpp: llama_tensor_get_type and llama_tensor_get_type_impl) for a
 * dense llama model, keyed on the target's llama_ftype, stated here once and in docs/FORMATS.md:
 *   - quantized: tensors of 2+ dimensions whose name ends in "weight" and does not contain "_norm.weight";
 *     everything else (norms, rope_freqs, any 1-D tensor) is copied unchanged;
 *   - the target's base type (llama_ftype_get_default_type: IQ2_S -> iq2_xs, IQ2_M -> iq2_s, IQ3_XS / IQ3_M ->
 *     iq3_s, Q3_K_* -> q3_K, ...) everywhere but:
 *   - output.weight (token_embd.weight when tied): Q8_0 if the row is not a multiple of the base type's block,
 *     Q5_K for IQ2_XXS / IQ2_XS / IQ2_S / IQ2_M / IQ3_XXS / IQ1_S / IQ1_M, else Q6_K (Q8_0 files keep Q8_0);
 *   - token_embd.weight (untied): Q2_K for IQ2_XXS / IQ2_XS / IQ1_S / IQ1_M, IQ3_S for IQ2_S / IQ2_M / IQ3_XXS,
 *     Q4_K for TQ1_0 / TQ2_0;
 *   - the < 3-bit i-quant targets (IQ2_*, IQ1_*): attn_v Q4_K with 4+ query heads per KV head (else IQ3_S for
 *     IQ2_S / IQ2_M, Q2_K otherwise); the first eighth of the layers' ffn_down IQ3_S / Q2_K likewise;
 *     attn_output IQ2_XXS for IQ1_*, IQ3_S for IQ2_S / IQ2_M;
 *   - the other targets, per tensor and layer i of n (use_more_bits(i, n): i < n/8, i >= 7n/8, or
 *     (i - n/8) % 3 == 2): attn_v, attn_k, attn_q, attn_output, ffn_up / ffn_gate, ffn_down as
 *     llama_tensor_get_type_impl writes them for Q2_K, Q2_K_S, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, IQ3_XXS, IQ3_XS,
 *     IQ3_S, IQ3_M, IQ4_NL, IQ4_XS, Q4_0 / Q5_0 (mix.c, rule for rule); some depend on the importance matrix
 *     (has_imatrix: IQ3_XXS's attn_v and ffn_down, IQ4_*'s first-eighth ffn_down Q5_K, Q4_0 / Q5_0's
 *     first-eighth ffn_down Q4_1 / Q5_1); an 80-layer model (Llama 70B) gets Q5_K for Q3_K / Q4_K attn_v;
 *   - pure: the base type for every quantized tensor, output.weight included;
 *   - herd's uniform targets Q3_K, Q4_K, Q5_K (llama-quantize reads these names as Q3_K_M / Q4_K_M / Q5_K_M):
 *     the base type everywhere but the Q6_K output rule;
 *   - rows that are not a multiple of the chosen type's block fall back as llama.cpp's tensor_type_fallback:
 *     i-quants -> IQ4_NL, Q2_K / Q3_K / TQ* -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when
 *     even that does not fit. Llama 3.x shapes never need this.
 */
#ifndef HERD_QUANT_H
#define HERD_QUANT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int base;           /* herd_type every quantized tensor starts from */
    int file_type;      /* llama.cpp's general.file_type (llama_ftype) */
    bool mix;           /* llama.cpp's per-tensor rules (mix.c); false for pure and herd's uniform targets */
    bool pure;
    const char *name;   /* canonical name, "Q4_K_M" */
    /* counts over the file (quant_plan_count) and running positions (advanced by quant_plan_type) */
    int64_t n_attn_v, n_ffn_down, i_attn_v, i_ffn_down, i_ffn_up, i_ffn_gate;
    bool has_output;
    int64_t n_gqa;      /* query heads per KV head (llama.attention.head_count / head_count_kv), 0 unknown */
    bool has_imatrix;   /* quantizing with an importance matrix (changes llama.cpp's ffn_down rules, below) */
} quant_plan;

/* Parses a target ("Q4_K_M", case-insensitive). false for an unknown name. */
bool quant_plan_init(quant_plan *pl, const char *type_name, bool pure);
/* The accepted targets, for messages. */
const char *quant_plan_names(void);
/* Counts the layers' attn_v / ffn_down and notes output.weight; call for every tensor name first. */
void quant_plan_count(quant_plan *pl, const char *name);

/* The output type of one tensor (call once per tensor, in file order: the layer counters advance).
 * type_in is returned for tensors that are copied. *fallback: the rule's type did not fit the row length. */
int quant_plan_type(quant_plan *pl, const char *name, int n_dims, int64_t ne0, int type_in, bool *fallback);

/* llama.cpp's tensor_requires_imatrix: the i-quants below 4 bits (IQ3_XXS, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S,
 * IQ1_M), and Q2_K in a Q2_K_S file (file_type 21), need an importance matrix for every tensor but
 * token_embd / output; herd quantize refuses them without one, naming the tensor. */
bool quant_requires_imatrix(const char *name, int type, int file_type);

/* One row of n values quantized to type with the importance weights qw[n] (quant_weighted.c: ggml's
 * quantize_row_*_impl, byte for byte): the K-quants, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS. false for a type
 * that takes no weights (Q8_0, F16, ... : quantize as without an importance matrix, as llama.cpp does). */
bool quant_row_weighted(int type, const float *x, void *y, int64_t n, const float *qw);

/* One row of n values (a multiple of 256) quantized to a low-bit i-quant or ternary type (quant_iq.c: ggml's
 * quantizers, byte for byte): IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M (qw: importance weights,
 * or NULL where quant_lowbit_needs_weights is false), TQ1_0, TQ2_0 (qw unused). false for any other type.
 * Thread-safe; the first row of a lattice type builds that type's search tables (a fraction of a second). */
bool quant_row_lowbit(int type, const float *x, void *y, int64_t n, const float *qw);
/* IQ2_XXS, IQ2_XS, IQ1_S: ggml has no quantizer without weights for them, whatever the tensor */
bool quant_lowbit_needs_weights(int type);

#endif
