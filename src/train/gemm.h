/* The trainer's matrix products, in F32, threaded on the pool, over a weight that is either an F32
 * matrix (trainable: full fine-tuning) or a frozen weight of any type herd loads (dequantized on the
 * fly, tile by tile: the quantized base of QLoRA-style training). Training computes in F32 with the
 * dequantized weights, the function PyTorch computes with `W.float()`: gradients are exact for it.
 *
 * Shapes: W is [n_out][n_in] (GGUF's rows of n_in), activations are rows of T tokens.
 *   train_gemm_xwt:  y[T][n_out]  = x[T][n_in] . W^T      (forward; y written)
 *   train_gemm_dyw:  dx[T][n_in] += dy[T][n_out] . W      (gradient w.r.t. the input)
 *   train_gemm_dytx: dW[n_out][n_in] += dy^T . x          (gradient w.r.t. an F32 weight)
 * Each output element is one sum in a fixed order (kernels.h gemm_f32, over k blocks of
 * TRAIN_GEMM_KC in order) computed by one thread: results do not depend on the thread count. */
#ifndef HERD_TRAIN_GEMM_H
#define HERD_TRAIN_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "../model/model.h"
#include "../thread/pool.h"

typedef struct {
    const weight *q; /* a frozen weight (any type; FP8 row scales applied), or NULL */
    const float *f;  /* else an F32 matrix [n_out][n_in] */
    int64_t n_in, n_out;
} train_w;

#define TRAIN_GEMM_KC 256

typedef struct train_gemm train_gemm;

/* Scratch for the pool's threads (the transposed operands grow with the first products). NULL on OOM. */
train_gemm *train_gemm_new(thread_pool *pool);
void train_gemm_free(train_gemm *g);

void train_gemm_xwt(train_gemm *g, const train_w *w, const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy);
void train_gemm_dyw(train_gemm *g, const train_w *w, const float *dy, int64_t lddy, int64_t T, float *dx,
                    int64_t lddx);
void train_gemm_dytx(train_gemm *g, const float *dy, int64_t lddy, const float *x, int64_t ldx, int64_t T,
                     int64_t n_out, int64_t n_in, float *dw);

/* --base-compute bf16 (on) or f32 (off, the default): with it, train_gemm_xwt and train_gemm_dyw over a
 * FROZEN weight (w->q set) round both operands to bf16 (round to nearest even; the weight piece by piece
 * as it is dequantized, the activation x or dy once per call) and sum the exact products in F32
 * (kernel_vec_ops.gemm_bf16 over k blocks of 1024 in order, each block's sum in the order that
 * src/kernels/bf16gemm.h states, added to the output; independent of the thread count): the products of
 * torch.autocast(bfloat16) for the frozen base, about 2^-9 relative per operand. Products with an F32
 * weight (adapters, full fine-tuning) and train_gemm_dytx stay exact F32. Call between products only. */
void train_gemm_set_base_bf16(train_gemm *g, bool on);

/* Row r, elements [c0, c0 + n) of w as floats (c0 and n multiples of the type's block, or n reaching the
 * row's end). */
void train_w_row(const train_w *w, int64_t r, int64_t c0, int64_t n, float *out);

#endif
