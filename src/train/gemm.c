/* See gemm.h. The products are cut into blocks of k (TRAIN_GEMM_KC) whose operands stay in cache and
 * handed to kernel_vec_ops.gemm_f32; frozen weights are dequantized into a per-thread panel first. */
#include "gemm.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "../kernels/packed.h"
#include "../model/matmul.h"
#include "herd.h"

/* columns of a B panel: 256 floats x TRAIN_GEMM_KC rows = 256 KiB, L2-sized */
#define NC 256
/* the bf16 dy W's k block: longer than TRAIN_GEMM_KC (a bf16 panel of 1024 x NC is 512 KiB), so that
 * each AMX tile of C sums 32 steps of 32 before it is stored and added (K = 256: about half the speed;
 * 2048 x 128 and 4096 x 64 measured slower too) */
#define KB 1024

struct train_gemm {
    thread_pool *pool;
    int nth;
    float *panel; /* [nth][TRAIN_GEMM_KC * NC]   dequantized weight pieces */
    float *xt;    /* [T / SW][n_in][SW] the input transposed in strips (xwt), grown as needed */
    int64_t xt_cap;
    float *ct;    /* [nth][NC * T] a tile of y transposed (xwt), or [KC][NC] a piece of a small W transposed */
    int64_t ct_cap; /* floats per thread */
    /* --base-compute bf16 (train_gemm_set_base_bf16) */
    bool bf16;
    uint16_t *bpanel; /* [nth][KB * NC] dyw: a piece of a frozen weight in bf16 pairs, gemm_bf16's B */
    uint16_t *hpanel; /* [nth][KB * NC] xwt: XR of a weight's rows in bf16, gemm_bf16's A (not for BF16) */
    uint16_t *ab;     /* [T][ab_ld] the activation (x or dy) in bf16, its odd column padded with 0 */
    int64_t ab_cap, ab_T, ab_ld; /* elements allocated; rows and row stride in use */
    uint16_t *xb;     /* xwt: x^T as gemm_bf16's B (job_pack_x) */
    int64_t xb_cap;
    float *dt;        /* dytx: [nth][DR * T] a block of dy^T */
    int64_t dt_cap;   /* floats per thread */
    float *yt;        /* xwt: [nth][XR * T] a block of y^T */
    int64_t yt_cap;   /* floats per thread */
    /* --base-compute int8 (TRAIN_BASE_INT8) */
    bool int8;
    void *xq;         /* matmul's scratch (x or dy converted) */
    int64_t xq_cap;
    float *dxt;       /* dyw: [T][n_in] matmul(W^T, dy), added to dx */
    int64_t dxt_cap;
    train_tcopy *tc;  /* the transposed Q8_0 copies */
    int n_tc, cap_tc;
};

train_gemm *train_gemm_new(thread_pool *pool) {
    train_gemm *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->pool = pool;
    g->nth = pool_size(pool);
    g->panel = malloc((size_t)g->nth * TRAIN_GEMM_KC * NC * sizeof(float));
    if (!g->panel) {
        train_gemm_free(g);
        return NULL;
    }
    return g;
}

void train_gemm_free(train_gemm *g) {
    if (!g) return;
    free(g->panel);
    free(g->xt);
    free(g->ct);
    free(g->bpanel);
    free(g->hpanel);
    free(g->ab);
    free(g->xb);
    free(g->yt);
    free(g->dt);
    free(g->xq);
    free(g->dxt);
    for (int i = 0; i < g->n_tc; i++) {
        for (int p = 0; p < g->tc[i].n_parts; p++) free((void *)g->tc[i].parts[p].data), free((void *)g->tc[i].parts[p].packed);
        free(g->tc[i].parts), free(g->tc[i].k0);
    }
    free(g->tc);
    free(g);
}

/* *buf holds at least need elements in each of copies per-thread pieces (*cap: per piece) */
static void grow(void **buf, int64_t *cap, int64_t need, int64_t copies, size_t elem) {
    if (need <= *cap) return;
    free(*buf);
    *cap = need;
    *buf = herd_xmalloc((size_t)(copies * need) * elem);
}

static int64_t w_block(const train_w *w) {
    if (!w->q) return 1;
    return kernels_type(w->q->type)->block;
}

void train_w_row(const train_w *w, int64_t r, int64_t c0, int64_t n, float *out) {
    if (!w->q) {
        memcpy(out, w->f + r * w->n_in + c0, (size_t)n * sizeof(float));
        return;
    }
    const kernel_type_ops *t = kernels_type(w->q->type);
    const uint8_t *row = w->q->data + r * w->q->row_bytes;
    HERD_ASSERT(c0 % t->block == 0);
    t->to_f32(row + c0 / t->block * t->block_bytes, out, n);
    if (w->q->row_scale) {
        const float s = w->q->row_scale[r];
        for (int64_t i = 0; i < n; i++) out[i] *= s;
    }
}

/* Prefetches row r's bytes holding elements [c0, c0 + n) of a frozen weight (r < n_out): the dequantizing
 * walks below read short pieces (a few cache lines) of rows a whole row apart, often a page apart, which
 * the hardware prefetcher does not follow; without this the dequantization waits on memory (perf: the
 * Q8_0 loads took 13 % of a LoRA step). */
#define PF_ROWS 4
static inline void prefetch_piece(const train_w *w, int64_t r, int64_t c0, int64_t n) {
    if (r >= w->n_out) return;
    const kernel_type_ops *t = kernels_type(w->q->type);
    const uint8_t *p = w->q->data + r * w->q->row_bytes + c0 / t->block * t->block_bytes;
    const int64_t bytes = (n + t->block - 1) / t->block * t->block_bytes;
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 0);
    __builtin_prefetch(p + bytes - 1, 0, 0);
}

/* Rows [r0, r0 + nr), elements [c0, c0 + nc) of w as an F32 block: in place for an F32 weight, else
 * dequantized into panel. OUT: *ld, the block's row stride. */
static const float *w_block_f32(const train_w *w, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float *panel,
                                int64_t *ld) {
    if (!w->q) {
        *ld = w->n_in;
        return w->f + r0 * w->n_in + c0;
    }
    for (int64_t r = 0; r < PF_ROWS && r < nr; r++) prefetch_piece(w, r0 + r, c0, nc);
    for (int64_t r = 0; r < nr; r++) {
        if (r + PF_ROWS < nr) prefetch_piece(w, r0 + r + PF_ROWS, c0, nc);
        train_w_row(w, r0 + r, c0, nc, panel + r * nc);
    }
    *ld = nc;
    return panel;
}

/* B operands are laid out in strips of SW columns, [n / SW][k][SW] (the last strip ragged, its padding
 * never read): the kernel's 8 x 32 tiles then stream one contiguous strip (kc x 128 bytes) instead of
 * 128 bytes every row stride, whose lines (strides of 1 KiB and more) collide in a few L1 sets. */
#define SW 32

/* dst[s][r][SW] = src[r][s * SW ...] for rows r < rows, columns < cols */
static void pack_strips(float *dst, const float *src, int64_t lds, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c += SW)
            memcpy(dst + c * rows + r * SW, src + r * lds + c, (size_t)(cols - c < SW ? cols - c : SW) * sizeof(float));
}

/* C[M][N] += A B with B packed by pack_strips (K rows): one kernel call per strip */
static void gemm_strips(const kernel_vec_ops *vo, int64_t M, int64_t N, int64_t K, const float *A, int64_t am,
                        int64_t ak, const float *Bp, float *C, int64_t ldc) {
    for (int64_t c = 0; c < N; c += SW) vo->gemm_f32(M, N - c < SW ? N - c : SW, K, A, am, ak, Bp + c * K, SW, C + c, ldc);
}

typedef struct {
    train_gemm *g;
    const train_w *w;
    const float *a, *b;  /* xwt: a = x; dyw: a = dy; dytx: a = dy, b = x */
    int64_t lda, ldb, T;
    float *c;
    int64_t ldc;
    int64_t n_out, n_in; /* dytx */
    bool acc;            /* xwt_small: add to c instead of writing it */
} gjob;

/* y = x W^T, computed as its transpose y^T[r][t] = sum_k W[r][k] x^T[k][t]: W's rows are the A operand
 * as they are (F32) or dequantized (a [NC][KC] piece), x^T (transposed once into strips, shared) the B operand, so
 * the weight is never transposed; thread ith takes a contiguous range of W's rows and scatters its
 * tile of y^T into y. Per element the same fma chain over k as x . W_r. */
static void job_xwt(void *arg, int ith, int nth) {
    gjob *j = arg;
    const train_w *w = j->w;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t T = j->T;
    float *panel = j->g->panel + (int64_t)ith * TRAIN_GEMM_KC * NC, *ct = j->g->ct + (int64_t)ith * j->g->ct_cap;
    int64_t r0, r1;
    pool_range(w->n_out, ith, nth, &r0, &r1);
    for (int64_t rb = r0; rb < r1; rb += NC) {
        const int64_t nr = r1 - rb < NC ? r1 - rb : NC;
        memset(ct, 0, (size_t)(nr * T) * sizeof(float));
        for (int64_t k0 = 0; k0 < w->n_in; k0 += TRAIN_GEMM_KC) {
            const int64_t kc = w->n_in - k0 < TRAIN_GEMM_KC ? w->n_in - k0 : TRAIN_GEMM_KC;
            int64_t am;
            const float *A = w_block_f32(w, rb, nr, k0, kc, panel, &am);
            for (int64_t t = 0; t < T; t += SW) /* strip t / SW of x^T, rows k0.. */
                vo->gemm_f32(nr, T - t < SW ? T - t : SW, kc, A, am, 1, j->g->xt + t * w->n_in + k0 * SW, SW, ct + t, T);
        }
        vo->transpose_f32(nr, T, ct, T, j->c + rb, j->ldc);
    }
}

/* y = x W^T for a small W (LoRA's A and B): thread ith takes a range of tokens and all of W's rows, NC
 * at a time; per k block the [nr][kc] piece of W is transposed into a [kc][nr] B operand (every thread
 * its own copy: W is small), so that x is the A operand as it is and the tiles go straight into y.
 * Per element the same fma chain over k as job_xwt's, so either job gives the same bits. */
static void job_xwt_small(void *arg, int ith, int nth) {
    gjob *j = arg;
    const train_w *w = j->w;
    const kernel_vec_ops *vo = kernels_vec();
    float *panel = j->g->panel + (int64_t)ith * TRAIN_GEMM_KC * NC, *pt = j->g->ct + (int64_t)ith * j->g->ct_cap;
    int64_t t0, t1;
    pool_range(j->T, ith, nth, &t0, &t1);
    if (t1 <= t0) return;
    for (int64_t rb = 0; rb < w->n_out; rb += NC) {
        const int64_t nr = w->n_out - rb < NC ? w->n_out - rb : NC;
        if (!j->acc)
            for (int64_t t = t0; t < t1; t++) memset(j->c + t * j->ldc + rb, 0, (size_t)nr * sizeof(float));
        for (int64_t k0 = 0; k0 < w->n_in; k0 += TRAIN_GEMM_KC) {
            const int64_t kc = w->n_in - k0 < TRAIN_GEMM_KC ? w->n_in - k0 : TRAIN_GEMM_KC;
            int64_t am;
            const float *A = w_block_f32(w, rb, nr, k0, kc, panel, &am);
            vo->transpose_f32(nr, kc, A, am, pt, nr);
            vo->gemm_f32(t1 - t0, nr, kc, j->a + t0 * j->lda + k0, j->lda, 1, pt, nr, j->c + t0 * j->ldc + rb, j->ldc);
        }
    }
}

/* dx += dy W: thread ith takes a range of dx's columns (W's row elements), whole blocks of W's type,
 * NC at a time; per k block (rows of W) a [KC][nc] panel of dequantized row pieces (an F32 W is used in
 * place). */
static void job_dyw(void *arg, int ith, int nth) {
    gjob *j = arg;
    const train_w *w = j->w;
    const kernel_vec_ops *vo = kernels_vec();
    float *panel = j->g->panel + (int64_t)ith * TRAIN_GEMM_KC * NC;
    /* NC columns rounded down to whole blocks (no type's block exceeds NC = 256) */
    const int64_t blk = w_block(w), nb = w->n_in / blk, nc_max = NC / blk * blk;
    int64_t b0, b1;
    pool_range(nb, ith, nth, &b0, &b1);
    const int64_t c0 = b0 * blk, c1 = b1 * blk;
    HERD_ASSERT(blk <= NC);
    for (int64_t cb = c0; cb < c1; cb += nc_max) {
        const int64_t nc = c1 - cb < nc_max ? c1 - cb : nc_max;
        for (int64_t k0 = 0; k0 < w->n_out; k0 += TRAIN_GEMM_KC) {
            const int64_t kc = w->n_out - k0 < TRAIN_GEMM_KC ? w->n_out - k0 : TRAIN_GEMM_KC;
            if (!w->q) { /* an F32 W's rows k0.., columns cb.. straight into strips */
                pack_strips(panel, w->f + k0 * w->n_in + cb, w->n_in, kc, nc);
            } else { /* each row piece dequantized, then into strips */
                float row[NC];
                for (int64_t r = 0; r < PF_ROWS && r < kc; r++) prefetch_piece(w, k0 + r, cb, nc);
                for (int64_t r = 0; r < kc; r++) {
                    if (r + PF_ROWS < kc) prefetch_piece(w, k0 + r + PF_ROWS, cb, nc);
                    train_w_row(w, k0 + r, cb, nc, row);
                    for (int64_t c = 0; c < nc; c += SW)
                        memcpy(panel + c * kc + r * SW, row + c, (size_t)(nc - c < SW ? nc - c : SW) * sizeof(float));
                }
            }
            gemm_strips(vo, j->T, nc, kc, j->a + k0, j->lda, 1, panel, j->c + cb, j->ldc);
        }
    }
}

/* dx += dy W for an F32 W of few columns (n_in <= SMALL_N: a LoRA B, whose n_in is the rank): thread ith
 * takes a range of tokens and all of dx's columns, so that each thread reads its rows of dy once (the
 * column split of job_dyw has every thread read all of dy for a few columns each); W's rows k0.. are the
 * B operand as they are (n_in floats a row). Per element the same sums as job_dyw's (over k blocks of
 * TRAIN_GEMM_KC in order, each from 0, added to dx): the same bits. */
#define SMALL_N 64
static void job_dyw_small(void *arg, int ith, int nth) {
    gjob *j = arg;
    const train_w *w = j->w;
    int64_t t0, t1;
    pool_range(j->T, ith, nth, &t0, &t1);
    if (t1 <= t0) return;
    for (int64_t k0 = 0; k0 < w->n_out; k0 += TRAIN_GEMM_KC) {
        const int64_t kc = w->n_out - k0 < TRAIN_GEMM_KC ? w->n_out - k0 : TRAIN_GEMM_KC;
        kernels_vec()->gemm_f32(t1 - t0, w->n_in, kc, j->a + t0 * j->lda + k0, j->lda, 1, w->f + k0 * w->n_in, w->n_in,
                                j->c + t0 * j->ldc, j->ldc);
    }
}

/* dW += dy^T x: thread ith takes a range of dW's rows; per DR of them their columns of dy are transposed
 * first (dt, DR x T: A's rows contiguous for the kernel, instead of a stride of n_out between the
 * elements of a row), then per NC columns of x and KC tokens the kernel sums as before (same bits).
 * A dW of few rows (n_out <= SMALL_N: a LoRA A, whose n_out is the rank) is split by columns instead:
 * every thread transposes all of dy (T x n_out, small) and takes a range of NC-column blocks, so that
 * each piece of x is packed by one thread rather than by all (the same sums: the same bits). */
#define DR 512
static void job_dytx(void *arg, int ith, int nth) {
    gjob *j = arg;
    const kernel_vec_ops *vo = kernels_vec();
    float *panel = j->g->panel + (int64_t)ith * TRAIN_GEMM_KC * NC, *dt = j->g->dt + (int64_t)ith * DR * j->T;
    const bool by_cols = j->n_out <= SMALL_N;
    int64_t r0 = 0, r1 = j->n_out, c0 = 0, c1 = j->n_in;
    if (by_cols) {
        int64_t b0, b1;
        pool_range((j->n_in + NC - 1) / NC, ith, nth, &b0, &b1);
        c0 = b0 * NC, c1 = b1 * NC < j->n_in ? b1 * NC : j->n_in;
        if (c0 >= c1) return;
    } else {
        pool_range(j->n_out, ith, nth, &r0, &r1);
    }
    for (int64_t rb = r0; rb < r1; rb += DR) {
        const int64_t nr = r1 - rb < DR ? r1 - rb : DR;
        vo->transpose_f32(j->T, nr, j->a + rb, j->lda, dt, j->T);
        for (int64_t cb = c0; cb < c1; cb += NC) {
            const int64_t nc = c1 - cb < NC ? c1 - cb : NC;
            for (int64_t k0 = 0; k0 < j->T; k0 += TRAIN_GEMM_KC) {
                const int64_t kc = j->T - k0 < TRAIN_GEMM_KC ? j->T - k0 : TRAIN_GEMM_KC;
                pack_strips(panel, j->b + k0 * j->ldb + cb, j->ldb, kc, nc);
                gemm_strips(vo, nr, nc, kc, dt + k0, j->T, 1, panel, j->c + rb * j->ldc + cb, j->ldc);
            }
        }
    }
}

/* x^T in strips of SW tokens, [T / SW][n_in][SW]; x's columns split across threads */
static void job_transpose(void *arg, int ith, int nth) {
    gjob *j = arg;
    int64_t k0, k1;
    pool_range(j->w->n_in, ith, nth, &k0, &k1);
    for (int64_t t = 0; t < j->T; t += SW) /* strip t / SW: xt[t * n_in + k * SW + (t' - t)] = x[t'][k] */
        kernels_vec()->transpose_f32(j->T - t < SW ? j->T - t : SW, k1 - k0, j->a + t * j->lda + k0, j->lda,
                                     j->g->xt + t * j->w->n_in + k0 * SW, SW);
}

/* ---- --base-compute bf16: the products with a frozen weight, both operands rounded to bf16 ---------- */

void train_gemm_set_base_bf16(train_gemm *g, bool on) {
    if (on && !g->bpanel) {
        g->bpanel = herd_xmalloc((size_t)(g->nth * KB * NC) * sizeof(uint16_t));
        g->hpanel = herd_xmalloc((size_t)(g->nth * KB * NC) * sizeof(uint16_t));
    }
    g->bf16 = on;
}

typedef struct {
    train_gemm *g;
    const float *x;
    int64_t ldx, n;
} cjob;

/* rows of x into g->ab (bf16, round to nearest even), tokens split across threads */
static void job_to_bf16(void *arg, int ith, int nth) {
    cjob *j = arg;
    const kernel_type_ops *b = kernels_type(HERD_TYPE_BF16);
    int64_t t0, t1;
    pool_range(j->g->ab_T, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        uint16_t *o = j->g->ab + t * j->g->ab_ld;
        b->from_f32(j->x + t * j->ldx, o, j->n);
        if (j->n % 2) o[j->n] = 0;
    }
}

/* x[T][n] (row stride ldx) into g->ab as bf16 rows of ab_ld = n rounded up to even, plus 32 (64 bytes)
 * where that is a multiple of 64: an AMX tile reads 16 rows at once, which at a stride of 4 KiB (n 2048)
 * would all fall into one L1 set */
static void to_bf16(train_gemm *g, const float *x, int64_t ldx, int64_t T, int64_t n) {
    const int64_t ld = (n + 1) / 2 * 2 + ((n + 1) / 2 * 2 % 64 == 0 ? 32 : 0);
    grow((void **)&g->ab, &g->ab_cap, T * ld, 1, sizeof(uint16_t));
    g->ab_T = T, g->ab_ld = ld;
    cjob j = {.g = g, .x = x, .ldx = ldx, .n = n};
    pool_run(g->pool, job_to_bf16, &j);
}

/* A BF16 weight without row scales: its rows are bf16 already, read in place (rounding a bf16 value
 * changes nothing); with an even width a pair of elements is a 32-bit word (the data is 32-byte aligned) */
static bool bf16_raw(const train_w *w) {
    return w->q->type == HERD_TYPE_BF16 && !w->q->row_scale && w->n_in % 2 == 0;
}
static const uint16_t *w_bf16(const train_w *w, int64_t r, int64_t c) {
    return (const uint16_t *)(w->q->data + r * w->q->row_bytes) + c;
}

/* Row r, elements [c0, c0 + n) of a frozen weight in bf16 (round to nearest even), n even or out[n] set
 * to 0; a bf16 weight without row scales is copied as it is (rounding a bf16 value changes nothing).
 * tmp: n floats. */
static void w_row_bf16(const train_w *w, int64_t r, int64_t c0, int64_t n, uint16_t *out, float *tmp) {
    if (w->q->type == HERD_TYPE_BF16 && !w->q->row_scale)
        memcpy(out, w->q->data + r * w->q->row_bytes + c0 * 2, (size_t)n * sizeof(uint16_t));
    else {
        train_w_row(w, r, c0, n, tmp);
        kernels_type(HERD_TYPE_BF16)->from_f32(tmp, out, n);
    }
    if (n % 2) out[n] = 0;
}

/* x in bf16 (g->ab) into gemm_bf16's B layout for y^T = W x^T (g->xb): strips of 16 tokens, element (k, t)
 * at xb[(t / 16) * 16 xk + (k / 2) * 32 + (t % 16) * 2 + k % 2], xk = the width rounded up to even: 16
 * tokens' rows transposed as 32-bit words (pairs of bf16); a last group short of 16 tokens padded with 0 */
static void job_pack_x(void *arg, int ith, int nth) {
    cjob *j = arg;
    train_gemm *g = j->g;
    const int64_t xk = (j->n + 1) / 2 * 2, ng = (g->ab_T + 15) / 16;
    int64_t g0, g1;
    pool_range(ng, ith, nth, &g0, &g1);
    for (int64_t q = g0; q < g1; q++) {
        const int64_t t0 = q * 16, rows = g->ab_T - t0 < 16 ? g->ab_T - t0 : 16;
        uint16_t *dst = g->xb + q * 16 * xk;
        if (rows < 16) memset(dst, 0, (size_t)(16 * xk) * sizeof(uint16_t));
        kernels_vec()->transpose_f32(rows, xk / 2, (const float *)(g->ab + t0 * g->ab_ld), g->ab_ld / 2, (float *)dst, 16);
    }
}

/* y = x W^T in bf16, computed as y^T = W x^T: W's rows are gemm_bf16's A — a BF16 weight's rows read in
 * place, other types' rows dequantized and rounded into a panel (hpanel) — and x^T its B (g->xb, packed
 * once per product), so a frozen weight is never transposed. Thread ith takes a contiguous range of W's
 * rows; per XR rows their y^T block (yt, XR x T floats) sums the k chunks (XK long) in order, from 0, and
 * is transposed into y. The thread count changes nothing. */
#define XR 128
#define XK 2048
static void job_xwt_bf16(void *arg, int ith, int nth) {
    gjob *j = arg;
    const train_w *w = j->w;
    train_gemm *g = j->g;
    const kernel_vec_ops *vo = kernels_vec();
    uint16_t *ap = g->hpanel + (int64_t)ith * KB * NC; /* XR x XK */
    float *yt = g->yt + (int64_t)ith * XR * j->T;
    const int64_t T = j->T, xk = (w->n_in + 1) / 2 * 2;
    const bool raw = bf16_raw(w);
    int64_t r0, r1;
    pool_range(w->n_out, ith, nth, &r0, &r1);
    for (int64_t rb = r0; rb < r1; rb += XR) {
        const int64_t nr = r1 - rb < XR ? r1 - rb : XR;
        memset(yt, 0, (size_t)(nr * T) * sizeof(float));
        for (int64_t k0 = 0; k0 < w->n_in; k0 += XK) {
            const int64_t kc = w->n_in - k0 < XK ? w->n_in - k0 : XK, kp = (kc + 1) / 2;
            const uint16_t *a = ap;
            int64_t lda = 2 * kp;
            if (raw)
                a = w_bf16(w, rb, k0), lda = w->q->row_bytes / 2;
            else {
                float tmp[XK];
                for (int64_t r = 0; r < PF_ROWS && r < nr; r++) prefetch_piece(w, rb + r, k0, kc);
                for (int64_t r = 0; r < nr; r++) {
                    if (r + PF_ROWS < nr) prefetch_piece(w, rb + r + PF_ROWS, k0, kc);
                    w_row_bf16(w, rb + r, k0, kc, ap + r * 2 * kp, tmp);
                }
            }
            vo->gemm_bf16(nr, T, 2 * kp, a, lda, g->xb + k0 * 16, 16 * xk, yt, T);
        }
        vo->transpose_f32(nr, T, yt, T, j->c + rb, j->ldc);
    }
}

/* dx += dy W in bf16: thread ith takes a range of dx's columns (whole blocks of W's type) as job_dyw;
 * per KB block (rows of W) each pair of rows, dequantized, rounded to bf16 and interleaved (bf16_pairs),
 * is a pair row of every strip of the B operand; the A operand is dy in bf16 (g->ab). */
static void job_dyw_bf16(void *arg, int ith, int nth) {
    gjob *j = arg;
    const train_w *w = j->w;
    const kernel_vec_ops *vo = kernels_vec();
    uint16_t *bp = j->g->bpanel + (int64_t)ith * KB * NC;
    const int64_t blk = w_block(w), nb = w->n_in / blk, nc_max = NC / blk * blk;
    const bool raw = bf16_raw(w);
    int64_t b0, b1;
    pool_range(nb, ith, nth, &b0, &b1);
    const int64_t c0 = b0 * blk, c1 = b1 * blk;
    /* k blocks outside, column blocks inside: a k block of dy (T x KB bf16, up to 512 KiB) is read from
     * memory once and stays in L2 for all of the thread's column blocks (the head's dy is T x 128,256).
     * Per dx element the k blocks are still added in order. */
    for (int64_t k0 = 0; k0 < w->n_out; k0 += KB) {
        const int64_t kc = w->n_out - k0 < KB ? w->n_out - k0 : KB, kp = (kc + 1) / 2;
        for (int64_t cb = c0; cb < c1; cb += nc_max) {
            const int64_t nc = c1 - cb < nc_max ? c1 - cb : nc_max;
            for (int64_t r = 0; r < PF_ROWS && r < kc; r++) prefetch_piece(w, k0 + r, cb, nc);
            for (int64_t p = 0; p < kp; p++) {
                const bool two = 2 * p + 1 < kc; /* an odd kc: the last pair's second row is 0, beside dy's padded 0 */
                for (int64_t r = 2 * p; r < 2 * p + 2 && r < kc; r++)
                    if (r + PF_ROWS < kc) prefetch_piece(w, k0 + r + PF_ROWS, cb, nc);
                if (raw) /* a BF16 weight's rows interleaved in place */
                    vo->bf16_pairs_u16(nc, w_bf16(w, k0 + 2 * p, cb), two ? w_bf16(w, k0 + 2 * p + 1, cb) : NULL,
                                       bp + p * 32, 32 * kp);
                else {
                    float row[2][NC];
                    train_w_row(w, k0 + 2 * p, cb, nc, row[0]);
                    if (two) train_w_row(w, k0 + 2 * p + 1, cb, nc, row[1]);
                    vo->bf16_pairs(nc, row[0], two ? row[1] : NULL, bp + p * 32, 32 * kp);
                }
            }
            vo->gemm_bf16(j->T, nc, 2 * kp, j->g->ab + k0, j->g->ab_ld, bp, 32 * kp, j->c + cb, j->ldc);
        }
    }
}

/* ---- --base-compute int8: the frozen products as inference computes them (gemm.h) ------------------ */

void train_gemm_set_base(train_gemm *g, int mode) {
    train_gemm_set_base_bf16(g, mode == TRAIN_BASE_BF16);
    g->int8 = mode == TRAIN_BASE_INT8;
}

typedef struct {
    const weight *src;
    weight *t;  /* the part being made: W^T's columns [k0, k0 + t->n_in) */
    int64_t k0;
} tjob;

/* A part's blocks for groups of 32 rows of W: thread ith takes a range of groups; per group the 32 rows
 * are dequantized into a [32][n_in] tile and transposed ([n_in][32]: column i's 32 values consecutive),
 * which quantizes as one row of n_in blocks, block i then copied to row i of the part, block b (each
 * block written by one thread) */
static void job_transpose_q8(void *arg, int ith, int nth) {
    tjob *j = arg;
    const weight *w = j->src;
    const kernel_type_ops *q8 = kernels_type(HERD_TYPE_Q8_0);
    const train_w tw = {.q = w, .n_in = w->n_in, .n_out = w->n_out};
    const int64_t n = w->n_in, bb = q8->block_bytes;
    int64_t b0, b1;
    pool_range(j->t->n_in / 32, ith, nth, &b0, &b1);
    if (b0 >= b1) return;
    float *tile = herd_xmalloc((size_t)(64 * n) * sizeof(float)), *tt = tile + 32 * n;
    uint8_t *qb = herd_xmalloc((size_t)(n * bb));
    for (int64_t b = b0; b < b1; b++) {
        for (int64_t r = 0; r < 32; r++) train_w_row(&tw, j->k0 + 32 * b + r, 0, n, tile + r * n);
        kernels_vec()->transpose_f32(32, n, tile, n, tt, 32);
        q8->from_f32(tt, qb, 32 * n);
        for (int64_t i = 0; i < n; i++) memcpy((uint8_t *)j->t->data + i * j->t->row_bytes + b * bb, qb + i * bb, (size_t)bb);
    }
    free(tile), free(qb);
}

/* the part's rows into the packed layout (kernels/packed.h), groups of 16 rows split across threads */
static void job_pack_part(void *arg, int ith, int nth) {
    tjob *j = arg;
    const weight *t = j->t;
    const int64_t gb = pk_group_bytes(HERD_TYPE_Q8_0, t->n_in);
    int64_t g0, g1;
    pool_range(t->n_out / PK_ROWS, ith, nth, &g0, &g1);
    for (int64_t g = g0; g < g1; g++)
        pk_pack_w(HERD_TYPE_Q8_0, t->n_in, t->data + g * PK_ROWS * t->row_bytes, t->row_bytes, (uint8_t *)t->packed + g * gb);
}

/* bytes for a copy that the products stream: 2 MiB-aligned and backed by huge pages where the kernel allows
 * (THP "madvise"), as the model's packed copies are (repack.c): fewer page faults making it (a 1B model's
 * copies are 1.3 GB) and fewer TLB misses reading it */
static void *huge_alloc(int64_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, (size_t)2 << 20, (size_t)bytes)) return herd_xmalloc((size_t)bytes);
    madvise(p, (size_t)bytes, MADV_HUGEPAGE);
    return p;
}

const train_tcopy *train_gemm_transposed(train_gemm *g, const weight *q) {
    for (int i = 0; i < g->n_tc; i++)
        if (g->tc[i].src == q) return &g->tc[i];
    if (q->n_out % 32) return NULL;
    if (g->n_tc == g->cap_tc) {
        g->cap_tc = g->cap_tc ? 2 * g->cap_tc : 16;
        g->tc = herd_xrealloc(g->tc, (size_t)g->cap_tc * sizeof *g->tc);
    }
    train_tcopy *c = &g->tc[g->n_tc++];
    *c = (train_tcopy){.src = q};
    /* parts of at most TRAIN_T_KMAX columns, as even as whole blocks allow */
    const int64_t nb = q->n_out / 32, np = (q->n_out + TRAIN_T_KMAX - 1) / TRAIN_T_KMAX;
    c->n_parts = (int)np;
    c->parts = herd_xcalloc((size_t)np, sizeof *c->parts);
    c->k0 = herd_xcalloc((size_t)np, sizeof *c->k0);
    for (int64_t p = 0, b = 0; p < np; p++) {
        const int64_t bp = nb / np + (p < nb % np), k = 32 * bp, rb = kernels_row_bytes(HERD_TYPE_Q8_0, k);
        weight *t = &c->parts[p];
        *t = (weight){.type = HERD_TYPE_Q8_0, .n_in = k, .n_out = q->n_in, .row_bytes = rb, .name = q->name};
        t->data = huge_alloc(rb * q->n_in);
        c->k0[p] = 32 * b;
        b += bp;
        tjob j = {.src = q, .t = t, .k0 = c->k0[p]};
        pool_run(g->pool, job_transpose_q8, &j);
        if (pk_gemm_for(HERD_TYPE_Q8_0, t->n_in, t->n_out)) { /* the kernel prompt processing runs on Q8_0 */
            t->packed = huge_alloc(pk_weight_bytes(HERD_TYPE_Q8_0, t->n_in, t->n_out));
            pool_run(g->pool, job_pack_part, &j);
            free((void *)t->data); /* the packed kernel reads only the packed copy */
            t->data = NULL;
        }
    }
    return c;
}

typedef struct {
    float *dx;
    const float *add;
    int64_t lddx, T, n;
} ajob;

/* dx[t][0..n) += add[t][0..n), tokens split across threads */
static void job_add_rows(void *arg, int ith, int nth) {
    ajob *j = arg;
    int64_t t0, t1;
    pool_range(j->T, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++)
        for (int64_t i = 0; i < j->n; i++) j->dx[t * j->lddx + i] += j->add[t * j->n + i];
}

static void *xq_for(train_gemm *g, const weight *w, int64_t T) {
    grow(&g->xq, &g->xq_cap, matmul_scratch_bytes(w->type, w->n_in, T), 1, 1);
    return g->xq;
}

/* ---- the products ---------------------------------------------------------------------------------- */

void train_gemm_xwt(train_gemm *g, const train_w *w, const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy) {
    if (g->int8 && w->q) {
        matmul(g->pool, w->q, x, ldx, T, y, ldy, xq_for(g, w->q, T));
        return;
    }
    if (g->bf16 && w->q) {
        to_bf16(g, x, ldx, T, w->n_in);
        grow((void **)&g->xb, &g->xb_cap, (T + 15) / 16 * 16 * ((w->n_in + 1) / 2 * 2), 1, sizeof(uint16_t));
        grow((void **)&g->yt, &g->yt_cap, XR * T, g->nth, sizeof(float));
        cjob c = {.g = g, .n = w->n_in};
        pool_run(g->pool, job_pack_x, &c);
        gjob j = {.g = g, .w = w, .T = T, .c = y, .ldc = ldy};
        pool_run(g->pool, job_xwt_bf16, &j);
        return;
    }
    /* transposing W costs n_out n_in copies, transposing x and y T (n_in + n_out): the cheaper one */
    const bool small = w->n_out * w->n_in <= T * (w->n_in + w->n_out);
    grow((void **)&g->ct, &g->ct_cap, small ? TRAIN_GEMM_KC * NC : NC * T, g->nth, sizeof(float));
    gjob j = {.g = g, .w = w, .a = x, .lda = ldx, .T = T, .c = y, .ldc = ldy};
    if (small) {
        pool_run(g->pool, job_xwt_small, &j);
        return;
    }
    grow((void **)&g->xt, &g->xt_cap, w->n_in * ((T + SW - 1) / SW * SW), 1, sizeof(float));
    pool_run(g->pool, job_transpose, &j);
    pool_run(g->pool, job_xwt, &j);
}

void train_gemm_xwt_acc(train_gemm *g, const train_w *w, const float *x, int64_t ldx, int64_t T, float *y, int64_t ldy) {
    HERD_ASSERT(!w->q);
    grow((void **)&g->ct, &g->ct_cap, TRAIN_GEMM_KC * NC, g->nth, sizeof(float));
    gjob j = {.g = g, .w = w, .a = x, .lda = ldx, .T = T, .c = y, .ldc = ldy, .acc = true};
    pool_run(g->pool, job_xwt_small, &j);
}

void train_gemm_dyw(train_gemm *g, const train_w *w, const float *dy, int64_t lddy, int64_t T, float *dx,
                    int64_t lddx) {
    HERD_ASSERT(w->n_in % w_block(w) == 0);
    gjob j = {.g = g, .w = w, .a = dy, .lda = lddy, .T = T, .c = dx, .ldc = lddx};
    const train_tcopy *tc = g->int8 && w->q ? train_gemm_transposed(g, w->q) : NULL;
    if (tc) { /* per part, in order: dx += matmul(part, dy's columns of the part) */
        grow((void **)&g->dxt, &g->dxt_cap, T * w->n_in, 1, sizeof(float));
        for (int p = 0; p < tc->n_parts; p++) {
            const weight *t = &tc->parts[p];
            matmul(g->pool, t, dy + tc->k0[p], lddy, T, g->dxt, w->n_in, xq_for(g, t, T));
            ajob a = {.dx = dx, .add = g->dxt, .lddx = lddx, .T = T, .n = w->n_in};
            pool_run(g->pool, job_add_rows, &a);
        }
        return;
    }
    if (g->bf16 && w->q) {
        to_bf16(g, dy, lddy, T, w->n_out);
        pool_run(g->pool, job_dyw_bf16, &j);
        return;
    }
    pool_run(g->pool, !w->q && w->n_in <= SMALL_N ? job_dyw_small : job_dyw, &j);
}

void train_gemm_dytx(train_gemm *g, const float *dy, int64_t lddy, const float *x, int64_t ldx, int64_t T,
                     int64_t n_out, int64_t n_in, float *dw) {
    grow((void **)&g->dt, &g->dt_cap, DR * T, g->nth, sizeof(float));
    gjob j = {.g = g, .a = dy, .lda = lddy, .b = x, .ldb = ldx, .T = T, .c = dw, .ldc = n_in, .n_out = n_out, .n_in = n_in};
    pool_run(g->pool, job_dytx, &j);
}
