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
/* y[T][n_out] += x W^T for an F32 W (w->f): per element the block sums of train_gemm_xwt's order added to
 * y as it is, rather than to 0 (a LoRA B's product added into the frozen product's output) */
void train_gemm_xwt_acc(train_gemm *g, const train_w *w, const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy);
void train_gemm_dyw(train_gemm *g, const train_w *w, const float *dy, int64_t lddy, int64_t T, float *dx,
                    int64_t lddx);
void train_gemm_dytx(train_gemm *g, const float *dy, int64_t lddy, const float *x, int64_t ldx, int64_t T,
                     int64_t n_out, int64_t n_in, float *dw);

/* The arithmetic of products with a FROZEN weight (w->q set); products with an F32 weight (adapters, full
 * fine-tuning) and train_gemm_dytx are exact F32 in every mode. Call between products only. */
enum { TRAIN_BASE_F32 = 0, TRAIN_BASE_BF16 = 1, TRAIN_BASE_INT8 = 2 };
void train_gemm_set_base(train_gemm *g, int mode);

/* TRAIN_BASE_BF16 (on) or TRAIN_BASE_F32 (off, the default): with it, train_gemm_xwt and train_gemm_dyw over a
 * FROZEN weight (w->q set) round both operands to bf16 (round to nearest even; the weight piece by piece
 * as it is dequantized, the activation x or dy once per call) and sum the exact products in F32
 * (kernel_vec_ops.gemm_bf16 over k blocks of 1024 in order, each block's sum in the order that
 * src/kernels/bf16gemm.h states, added to the output; independent of the thread count): the products of
 * torch.autocast(bfloat16) for the frozen base, about 2^-9 relative per operand. Products with an F32
 * weight (adapters, full fine-tuning) and train_gemm_dytx stay exact F32. Call between products only. */
void train_gemm_set_base_bf16(train_gemm *g, bool on);

/* TRAIN_BASE_INT8 (--base-compute int8): the frozen base's products as inference computes them.
 *   x W^T: model/matmul.h's matmul, bit for bit (x rows converted to the weight's vec_dot type — q8_0
 *          blocks for Q8_0 / Q4_0, q8_K for the K-quants — and integer dots; a type without an integer
 *          dot keeps its own, e.g. BF16's bf16 products): the forward of prompt processing.
 *   dy W:  dx += matmul(W^T, dy) with W^T a transposed Q8_0 copy of the weight: row i of W^T holds
 *          column i of the dequantized W, quantized in blocks of 32 consecutive rows of W (built once per
 *          weight at its first dy W, by train_gemm_transposed, and packed for the packed kernel where the
 *          ISA has it, as a model's weights are at load; memory: one Q8_0 copy of every frozen matrix,
 *          ~1.06 bytes per element); dy rows converted to q8_0. A W of more than TRAIN_T_KMAX rows (the
 *          output matrix: 128,256) is cut into parts of W^T's columns, about as wide as the widest layer
 *          matrix (a 1B model's ffn_down: 8,192), added to dx one after the other in order: matmul converts
 *          rows of at most 64 KiB, and the packed kernel keeps a group of 16 rows in L2 while tiles of
 *          tokens pass over it (one 32,064-wide part: 545 KB a group).
 * Each operand then carries up to about half a quantization step of its block's largest magnitude / 127
 * (q8_0), so the gradients are approximate — tests/unit/test_train_int8.c checks them against the bound
 * this gives — and independent of the thread count, as the matmul is. A weight whose n_out is not a
 * multiple of 32 keeps the F32 dy W. */
#define TRAIN_T_KMAX 8192
typedef struct {
    const weight *src;
    int n_parts;
    weight *parts; /* [n_parts] part p: W^T's columns [k0[p], k0[p] + parts[p].n_in), rows n_in of W;
                    * .data (the Q8_0 rows) NULL once packed into .packed */
    int64_t *k0;
} train_tcopy;
/* The transposed Q8_0 copy of frozen weight q (built and kept by g on first use), or NULL when q->n_out is
 * not a multiple of 32. Part p's row i, block b: quantize_q8_0(dequantized q rows k0[p] + 32 b .. + 31,
 * column i). */
const train_tcopy *train_gemm_transposed(train_gemm *g, const weight *q);

/* Row r, elements [c0, c0 + n) of w as floats (c0 and n multiples of the type's block, or n reaching the
 * row's end). */
void train_w_row(const train_w *w, int64_t r, int64_t c0, int64_t n, float *out);

#endif
