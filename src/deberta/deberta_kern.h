/* The elementwise and per-row work of the threaded DeBERTa forward (deberta_forward.c), in two
 * variants with one signature: the scalar reference (deberta_kern.c, libm's expf / erff, in order) and
 * AVX-512 (deberta_avx512.c: gathers, vmath_avx512.h's exp and GELU, sums as 16 partial sums). The
 * AVX-512 ones are not bit-identical to the reference; tests/unit/test_deberta.c bounds the
 * difference on ragged lengths, and the forward's logits against the scalar forward. */
#ifndef HERD_DEBERTA_DEBERTA_KERN_H
#define HERD_DEBERTA_DEBERTA_KERN_H

#include <stdint.h>

/* One attention row of query i over T keys, in place:
 *   s[j] = softmax_j((s[j] + c2p[r[j]] + p2c[j * ldp + r[j]]) * inv)     for j < T
 * s: q_i . k_j (the content term), c2p: the row q_i . pos_k[0..R) (NULL without c2p), p2c: [T][R] with
 * row stride ldp, k_j . pos_q[r] (NULL without p2c; only the entries r[j] of row j are read),
 * r[j] = r(i, j) in [0, R) (unused when both are NULL). j * ldp + r must fit an int32
 * (deberta_ctx_new checks). */
typedef void (*deberta_row_fn)(int64_t T, float *s, const float *c2p, const float *p2c, int64_t ldp, const int32_t *r,
                               float inv);
/* x[0..n) = gelu(x) = 0.5 x (1 + erf(x / sqrt 2)), in place */
typedef void (*deberta_gelu_fn)(int64_t n, float *x);

void deberta_row_ref(int64_t T, float *s, const float *c2p, const float *p2c, int64_t ldp, const int32_t *r, float inv);
void deberta_gelu_ref(int64_t n, float *x);
void deberta_row_avx512(int64_t T, float *s, const float *c2p, const float *p2c, int64_t ldp, const int32_t *r, float inv);
void deberta_gelu_avx512(int64_t n, float *x);

#endif
