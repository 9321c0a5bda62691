/* Model quantization (herd_quantize_model, quantize.c): which tensor gets which type (mix.c).
 *
 * The rules are llama.cpp's (src/llama-quant.cpp, llama_tensor_get_type) for a dense llama model without
 * an importance matrix, stated here once and in docs/FORMATS.md:
 *   - quantized: tensors of 2+ dimensions whose name ends in "weight" and does not contain "_norm.weight";
 *     everything else (norms, rope_freqs, any 1-D tensor) is copied unchanged;
 *   - output.weight, and token_embd.weight when there is no output.weight (tied embeddings): Q6_K, except
 *     for Q8_0 files (stays Q8_0) or a row length not a multiple of 256 (Q8_0);
 *   - Q4_K_M and Q5_K_M: attn_v.weight of the i-th of n layers and ffn_down.weight of the i-th of n layers
 *     get Q6_K when use_more_bits(i, n): i < n/8, or i >= 7n/8, or (i - n/8) % 3 == 2 (a third of the
 *     middle layers); with 80 layers (Llama 70B, 8 query heads per KV head) the remaining Q4_K attn_v
 *     become Q5_K; everything else gets the base type (Q4_K / Q5_K);
 *   - Q8_0, Q4_0, Q4_K, Q5_K, Q6_K: the base type everywhere but the output rule above;
 *   - pure: the base type for every quantized tensor, output.weight included;
 *   - Q2_K, Q3_K (herd's targets, not llama.cpp's Q2_K / Q3_K_S mixes): the base type everywhere but the
 *     output rule above;
 *   - with an importance matrix (has_imatrix), as llama.cpp: IQ4_NL / IQ4_XS drop their first-eighth ffn_down
 *     Q5_K rule, and Q4_0 / Q5_0 give the ffn_down of the first n/8 layers Q4_1 / Q5_1;
 *   - rows that are not a multiple of the type's block: llama.cpp falls back Q4_K -> Q5_0, Q5_K -> Q5_1,
 *     Q6_K -> Q8_0; herd has no Q5_0 / Q5_1 kernels, so every K type falls back to Q8_0; rows not a
 *     multiple of 32 stay F16 (as llama.cpp). Llama 3.x shapes never need this.
 */
#ifndef HERD_QUANT_H
#define HERD_QUANT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int base;           /* herd_type every quantized tensor starts from */
    int file_type;      /* llama.cpp's general.file_type (llama_ftype) */
    bool mix_m;         /* the _M rules */
    bool pure;
    const char *name;   /* canonical name, "Q4_K_M" */
    /* counts over the file (quant_plan_count) and running positions (advanced by quant_plan_type) */
    int64_t n_attn_v, n_ffn_down, i_attn_v, i_ffn_down;
    bool has_output;
    int64_t n_gqa;      /* query heads per KV head (llama.attention.head_count / head_count_kv), 0 unknown */
    bool has_imatrix;   /* quantizing with an importance matrix (changes llama.cpp's ffn_down rules, below) */
} quant_plan;

/* Parses a target ("Q4_K_M", case-insensitive). false for an unknown name. */
bool quant_plan_init(quant_plan *pl, const char *type_name, bool pure);
/* The accepted targets, for messages: "Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q4_K_M, Q5_K_M". */
const char *quant_plan_names(void);
/* Counts the layers' attn_v / ffn_down and notes output.weight; call for every tensor name first. */
void quant_plan_count(quant_plan *pl, const char *name);

/* The output type of one tensor (call once per tensor, in file order: the layer counters advance).
 * type_in is returned for tensors that are copied. *fallback: the rule's type did not fit the row length. */
int quant_plan_type(quant_plan *pl, const char *name, int n_dims, int64_t ne0, int type_in, bool *fallback);

/* llama.cpp's tensor_requires_imatrix: the i-quants below 4 bits (IQ3_XXS, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S,
 * IQ1_M) need an importance matrix for every tensor but token_embd / output; herd quantize refuses them
 * without one, naming the tensor. (herd does not write those types yet: no target gives them.) */
bool quant_requires_imatrix(const char *name, int type);

/* One row of n values quantized to type with the importance weights qw[n] (quant_weighted.c: ggml's
 * quantize_row_*_impl, byte for byte): the K-quants, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS. false for a type
 * that takes no weights (Q8_0, F16, ... : quantize as without an importance matrix, as llama.cpp does). */
bool quant_row_weighted(int type, const float *x, void *y, int64_t n, const float *qw);

#endif
