/* Compute kernels: per-type traits and the vector primitives the forward pass is built on,
 * with a scalar reference (ref/) and x86 variants (x86/) chosen once at start-up by CPUID.
 *
 * Matmul model (as llama.cpp, so numbers agree with it): a weight row of type T is dotted with an
 * activation row converted once to T's *vec_dot type*:
 *     f32 -> f32,   f16 -> f16,   bf16 -> bf16,   q8_0 -> q8_0,   q4_0 -> q8_0,
 *     q2_K .. q6_K -> q8_K (kquants.h).
 * Every variant of a function has the same signature and must agree with the reference (tests/unit/
 * test_kernels.c checks each on ragged shapes). A dot's reduction order depends only on n, never on
 * how many rows or tokens are in flight, so results do not depend on batch composition.
 */
#ifndef HERD_KERNELS_H
#define HERD_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { KERNEL_ISA_REF = 0, KERNEL_ISA_AVX2 = 1, KERNEL_ISA_AVX512 = 2, KERNEL_ISA_COUNT } kernel_isa;

/* *out = sum_{i<n} w[i] * x[i]; w: a row of the weight type, x: a row of its vec_dot type. */
typedef void (*kernel_dot_fn)(int64_t n, float *out, const void *w, const void *x);
/* Converts n floats into a row of the type (n a multiple of the block size). */
typedef void (*kernel_from_f32_fn)(const float *x, void *y, int64_t n);
/* Converts a row of the type into n floats. */
typedef void (*kernel_to_f32_fn)(const void *x, float *y, int64_t n);
/* Converts n floats into a row that carries its own scale, the scale clamped at ub (FP8 activation
 * rows, see fp8.h: scale = min(max|x|, ub) / 448). */
typedef void (*kernel_from_f32_ub_fn)(const float *x, void *y, int64_t n, float ub);

/* The batched form of dot, for prompt processing (a type may have none: then its fields are NULL).
 * gemm_x_bytes(n): bytes of one packed activation row of n elements, 0 where the kernel does not take
 * that width. gemm_pack_x: a row of the vec_dot type (as from_f32 makes it) into that packed layout.
 * gemm: y[t * ldy + r] = dot(n, w + r * w_stride, x_t) for r < nr, t < nt, from nt packed rows
 * xp_stride bytes apart; every result bit-identical to what dot returns for the same row and token (a
 * weight block is reused from registers across several tokens, the reduction order is dot's). */
typedef int64_t (*kernel_gemm_x_bytes_fn)(int64_t n);
typedef void (*kernel_gemm_pack_x_fn)(int64_t n, const void *x, void *xp);
typedef void (*kernel_gemm_fn)(int64_t n, int64_t nr, int64_t nt, const void *w, int64_t w_stride, const void *xp,
                               int64_t xp_stride, float *y, int64_t ldy);

/* Internal type id of FP8 activation rows { f32 scale; e4m3 q[n] } (the vec_dot type of FP8 weights;
 * never in a file). */
#define KERNEL_TYPE_FP8_ACT 4097

typedef struct {
    int type;
    int vec_dot_type;
    int64_t block;        /* elements per block */
    int64_t block_bytes;
    kernel_dot_fn dot;    /* weight row (type) . activation row (vec_dot_type) */
    kernel_to_f32_fn to_f32;
    kernel_from_f32_fn from_f32; /* used for activations (vec_dot types) and to write weights */
    int64_t row_extra;    /* bytes per row after the blocks (FP8 activations: the f32 scale); else 0 */
    kernel_from_f32_ub_fn from_f32_ub; /* activation conversion with a scale bound (FP8), else NULL */
    kernel_gemm_x_bytes_fn gemm_x_bytes; /* batched dot (see above), else NULL */
    kernel_gemm_pack_x_fn gemm_pack_x;
    kernel_gemm_fn gemm;
} kernel_type_ops;

/* Causal attention of a tile of queries against one KV head, flash-style (see ref/attn_ref.c for the
 * math, written out). The keys are walked in blocks of KERNEL_ATTN_BLOCK positions that start at
 * multiples of the block size (never relative to the tile), with an online softmax per query: per
 * block, scores s_j = (q . k_j) * scale, m' = max(m, max_j s_j), c = exp(m - m'), p_j = exp(s_j - m'),
 * l = l c + sum_j p_j, o = o c + sum_j p_j v_j (j in key order); at the end o /= l.
 *
 * Contract: query i (q[i], head_dim floats) attends positions 0 .. n_kv[i]-1 (n_kv[i] >= 1) and its
 * result goes to o[i] (head_dim floats; o[i] must not overlap q or another o). Each o[i] is a function
 * of q[i], n_kv[i] and those keys/values alone: bit-identical whichever other queries share the tile,
 * in whatever order, and whatever nq is. A tile only shares loads (each K/V row is read and converted
 * once per tile, not once per query); that is what makes GQA heads and prompt tokens cheap together.
 * scratch: kernels_attn_scratch_floats(head_dim, nq) floats, owned by the caller. */
#define KERNEL_ATTN_BLOCK 32
/*
 * Quantized caches (and bf16) follow ggml's flash attention on the CPU: for a K type other than f32/f16
 * the query is converted once per call to K's vec_dot type (q8_0 blocks for q8_0 and q4_0 keys, bf16 for
 * bf16) and each score is that type's dot (the matmul's, q . k in the type's arithmetic); for a V type
 * other than f32/f16 each V row of a block is converted to f32 (to_f32 of its head_dim elements) and
 * accumulated in f32. The cache is read in place, block by block: never a dequantized copy of it.
 * head_dim must be a multiple of 32 for the block types. */
typedef struct {
    int64_t head_dim;
    int type_k, type_v;          /* of the cache rows: HERD_TYPE_F32, F16, BF16, Q8_0 or Q4_0 */
    const void *k, *v;           /* this head's slice of position 0's K / V row */
    int64_t stride_k, stride_v;  /* bytes from one position's K / V row to the next */
    float scale;                 /* multiplies q . k (1/sqrt(head_dim)) */
} kernel_attn_kv;
typedef void (*kernel_attn_fn)(const kernel_attn_kv *kv, int64_t nq, const float *const *q, const int64_t *n_kv,
                               float *const *o, float *scratch);

/* the constants of kernel_vec_ops.adamw_f32 for one step */
typedef struct {
    float decay, b1, c1, b2, c2, step_size, bc2_sqrt, eps;
} kernel_adamw;

/* Primitives of attention and elementwise work, all on contiguous rows. */
typedef struct {
    float (*dot_f32)(int64_t n, const float *a, const float *b);
    float (*dot_f16_f32)(int64_t n, const uint16_t *a, const float *b);   /* a: f16 */
    void (*axpy_f32)(int64_t n, float alpha, const float *x, float *y);   /* y += alpha * x */
    void (*axpy_f16)(int64_t n, float alpha, const uint16_t *x, float *y); /* x: f16 */
    kernel_attn_fn attn;                                                   /* see above */
    /* The wrapping sum of the n / 8 little-endian 64-bit words at p (n a multiple of 8): a plain read
     * of memory, as fast as the loads go, to time against the kernels (the decode roofline). */
    uint64_t (*read_sum)(const void *p, int64_t n);
    /* The index of the first largest of x[0..n) (n >= 1) as the plain scan finds it: best = 0, then
     * best = i whenever x[i] > x[best]. So NaNs never win, except x[0] when it is NaN (then 0), and of
     * equal maxima (+0 and -0 are equal) the first wins. Greedy sampling over 128K logits (src/sample). */
    int64_t (*argmax_f32)(int64_t n, const float *x);
    /* F32 matrix product block for training (src/train/gemm.c): C[M][N] += A[M][K] B[K][N], where
     * A's element (m, k) is A[m * am + k * ak] (A or its transpose), B and C row-major with leading
     * dimensions ldb, ldc. Each C element gets one sum over k in order, begun at 0 with fused
     * multiply-adds, then added to C: every ISA's variant is bit-identical to the reference. */
    void (*gemm_f32)(int64_t M, int64_t N, int64_t K, const float *A, int64_t am, int64_t ak, const float *B,
                     int64_t ldb, float *C, int64_t ldc);
    /* dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: the training products' transposes of
     * activations (src/train/gemm.c). A copy: every ISA's variant gives the same bits. */
    void (*transpose_f32)(int64_t rows, int64_t cols, const float *src, int64_t lds, float *dst, int64_t ldd);
    /* bf16 matrix product block for training's frozen weights (src/train/gemm.c, --base-compute bf16):
     * C[M][N] += A[M][K] B[K][N] with A row-major bf16 (element (m, k) at A[m * lda + k]) and B in strips
     * of 16 columns of pairs (element (k, n) at B[(n / 16) * ldb + (k / 2) * 32 + (n % 16) * 2 + k % 2],
     * what vdpbf16ps and AMX tiles read), K even, sums in F32. Variants, layout details and accumulation
     * orders: bf16gemm.h (ref and AVX-512 bit-identical; AMX, used when the CPU and OS have it and
     * HERD_ISA is unset, within a tested bound). */
    void (*gemm_bf16)(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *B,
                      int64_t ldb, float *C, int64_t ldc);
    /* Two F32 rows into one pair row of gemm_bf16's B (strips of 16 columns, ld elements apart): for
     * i < n, out[(i / 16) * ld + (i % 16) * 2] = bf16(x0[i]) and the element after it bf16(x1[i]) (0 when
     * x1 is NULL), rounded as fp32_to_bf16 (types.h). Every variant, same bits. */
    void (*bf16_pairs)(int64_t n, const float *x0, const float *x1, uint16_t *out, int64_t ld);
    /* bf16_pairs for rows already in bf16 (a BF16 weight's rows, read in place): out as above with
     * x0[i] and x1[i] (0 when x1 is NULL) copied. Every variant, same bits. */
    void (*bf16_pairs_u16)(int64_t n, const uint16_t *x0, const uint16_t *x1, uint16_t *out, int64_t ld);
    /* One AdamW update of n elements (src/train/optim.c), torch.optim.AdamW's arithmetic per element in F32
     * with each product rounded before its sum: w *= decay; m = m b1 + c1 g; v = v b2 + (c2 g) g;
     * w += -step_size (m / (sqrt(v) / bc2_sqrt + eps)). Every variant, same bits. */
    void (*adamw_f32)(int64_t n, float *w, const float *g, float *m, float *v, const kernel_adamw *c);
    /* s[j % 8] += (double)x[j]^2 for j < n (product, then sum): a gradient's sum of squares in eight
     * partial sums. Every variant, same bits. */
    void (*sumsq_f32)(int64_t n, const float *x, double s[8]);
    /* The exponentials of a softmax (training's attention weights and cross-entropy): for i < n,
     * y[i] = e^t with t = x[i] * scale - sub (the product, then the difference, each rounded to float),
     * e^t as ref/exp_ref.c computes it (Cephes' expf: within 2 ulp of exp where e^t is a normal float;
     * t < KERNEL_EXP_LO gives 0, t > KERNEL_EXP_HI +inf, a NaN stays NaN). Returns the sum of the y[i] in
     * double: y[i] added to partial sum i % 16, the 16 partials then added in order. y may be x. Every
     * variant, same bits. */
    double (*exp_f32)(int64_t n, const float *x, float scale, float sub, float *y);
} kernel_vec_ops;

/* exp_f32's range: below LO, e^t < FLT_MIN (0 is returned, no subnormals); above HI, 2^k would leave
 * the exponent's range (+inf is returned: e^t > 2.4e38, a little short of FLT_MAX) */
#define KERNEL_EXP_LO (-87.3365478515625f)
#define KERNEL_EXP_HI 88.3762626647949f

/* Picks the best ISA this CPU supports (idempotent, thread-safe). HERD_ISA=ref|avx2|avx512 in the
 * environment forces a lower one (for tests and benchmarks). */
void kernels_init(void);
kernel_isa kernels_active_isa(void);
const char *kernels_isa_name(kernel_isa isa);
bool kernels_isa_supported(kernel_isa isa);

/* Ops of the active ISA; NULL when herd cannot compute with this type. */
const kernel_type_ops *kernels_type(int type);
const kernel_vec_ops *kernels_vec(void);
/* Ops of one specific ISA (for tests); NULL if the CPU lacks it or the type is unsupported. */
const kernel_type_ops *kernels_type_isa(int type, kernel_isa isa);
const kernel_vec_ops *kernels_vec_isa(kernel_isa isa);

/* Scratch of one kernel_attn_fn call with up to nq queries of head_dim (every ISA's variant fits). */
int64_t kernels_attn_scratch_floats(int64_t head_dim, int64_t nq);

/* Bytes of a row of n elements of a supported type (row_extra included). */
int64_t kernels_row_bytes(int type, int64_t n);

#endif
