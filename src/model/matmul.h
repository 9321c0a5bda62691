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

/* One token's pass of matmul_multi cut into chunks that any thread computes into a buffer of its own and
 * copies to the outputs afterwards (the decode relay, model/relay.c: a chunk may be computed twice, by a
 * thread that was descheduled and by one that did not wait for it; only one copy lands). The same
 * numerics as matmul_multi for one token, whatever the chunking. NULL where matmul_multi would run the
 * weights as separate passes (they differ in input width, vec_dot type, FP8 bound or packing): make one
 * pass of each. nth, per_thread: the chunking (pool_chunks); a chunk is >= 16 KiB of weights. */
typedef struct matmul_pass matmul_pass;
matmul_pass *matmul_pass_new(const matmul_out *outs, int n_outs, int nth, int per_thread);
void matmul_pass_free(matmul_pass *mp);
int64_t matmul_pass_chunks(const matmul_pass *mp);
int64_t matmul_pass_chunk_floats(const matmul_pass *mp); /* outputs of the largest chunk */
int64_t matmul_pass_xq_bytes(const matmul_pass *mp);     /* the converted input row */
/* x (n_in floats) converted for the pass's dots into xq (matmul_pass_xq_bytes) */
void matmul_pass_convert(const matmul_pass *mp, const float *x, void *xq);
/* chunk c's outputs, its rows of each weight in turn, into dst (matmul_pass_chunk_floats) */
void matmul_pass_chunk(const matmul_pass *mp, int64_t c, const void *xq, float *dst);
/* copies chunk c's outputs from src to the weights' y (the first weight's to y0 instead, if not NULL) */
void matmul_pass_commit(const matmul_pass *mp, int64_t c, const float *src, float *y0);

#endif
