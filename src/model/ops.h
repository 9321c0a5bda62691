/* The llama block's small per-row operations, shared by the inference forward (forward.c) and the
 * trainer (src/train/), so that training computes exactly the function inference runs.
 * Numerics follow llama.cpp where it matters for agreement (see each function). */
#ifndef HERD_MODEL_OPS_H
#define HERD_MODEL_OPS_H

#include <stdbool.h>
#include <stdint.h>

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], in ggml's order: the sum of squares in double, the
 * scale as a float, then the two multiplications. Returns the scale 1/sqrt(mean + eps). out may be x. */
float model_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

/* cos/sin of every rotated pair for one position: cs[2i], cs[2i+1] = cos, sin of
 * pos * theta_scale^i / freq_factor_i * freq_scale, theta_scale = base^(-2/head_dim). The power is
 * accumulated by repeated float multiplication, as ggml's rope cache does, so angles agree with
 * llama.cpp to the last bit. freqs: [head_dim/2] divisors (rope_freqs) or NULL. */
void model_rope_cache(float *cs, float pos, int64_t head_dim, float base, float freq_scale, const float *freqs);

/* Rotates pairs of each of n_heads heads of x (in place) by the angles in cs: adjacent pairs (x[2i],
 * x[2i+1]) (Meta's and GGUF's layout) or, half_split, HF's (x[i], x[i + head_dim/2]), the rotated pair
 * stored at (2i, 2i+1) (see forward.c). */
void model_rope_apply(float *x, int64_t n_heads, int64_t head_dim, const float *cs, bool half_split);

/* gate[i] = silu(gate[i]) * up[i] for i < n: g / (1 + exp(-g)) * u in float, as ggml's swiglu. */
void model_swiglu(float *gate, const float *up, int64_t n);

#endif
