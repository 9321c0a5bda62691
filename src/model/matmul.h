/* Threaded matmul of a weight with a batch of activation rows.
 *
 *   y[t][r] = dot(W row r, convert(x[t]))   for t < n_tok, r < W.n_out   (* W.row_scale[r] for FP8;
 *   FP8 activation rows carry their own scale, bounded by W.act_ub)
 * x: n_tok rows of W.n_in floats (stride ldx floats); y: n_tok rows (stride ldy floats).
 * Each activation row is converted once to W's vec_dot type (llama.cpp does the same, which is why
 * results agree with it), into `xq`, a scratch of at least matmul_scratch_bytes() bytes.
 * Every y element is computed with the same numerics whatever n_tok is, so a token's result never
 * depends on what else is in the batch: a weight repacked at load (W.packed, kernels/packed.h) always
 * goes through its packed kernel; any other through its type's dot, or its gemm, which is bit-identical
 * to the dot. */
#ifndef HERD_MODEL_MATMUL_H
#define HERD_MODEL_MATMUL_H

#include <stdint.h>

#include "../thread/pool.h"
#include "model.h"

int64_t matmul_scratch_bytes(int weight_type, int64_t n_in, int64_t n_tok);
void matmul(thread_pool *pool, const weight *w, const float *x, int64_t ldx, int64_t n_tok, float *y, int64_t ldy,
            void *xq);

/* Several weights applied to the same input (Q, K and V; gate and up): the input is converted once
 * and all their rows are shared out in one parallel pass. Falls back to one matmul each when they
 * differ in input width or vec_dot type. */
typedef struct {
    const weight *w;
    float *y;
    int64_t ldy;
} matmul_out;
void matmul_multi(thread_pool *pool, const matmul_out *outs, int n_outs, const float *x, int64_t ldx, int64_t n_tok,
                  void *xq);

#endif
