#include "matmul.h"

#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "../kernels/packed.h"

/* bytes of one converted row on the stack before packing */
#define GEMM_ROW_MAX 65536

/* Batches of at least this many tokens go through the type's gemm where it has one; smaller ones
 * (decode steps, a server's few decoding sequences) keep the per-row dots, which stream the weights
 * once with no packing. Either way every output is bit-identical (kernels.h), so the choice never
 * shows in the results, only in the time. The gemm packs each tile of weight rows per call (q8_0 and
 * q4_0 into a layout ~3x the size: more than the dots' whole cost per token), which a few tokens do not
 * repay: a 1B-shaped model's batched decode step with B sequences (2 threads, ms) measured
 *     q8_0  B=4: gemm 143-153, dots 98-102;  B=6: 154-173 vs 147-150;  B=7: 186-187 vs 176-183; B=8: 174 vs 205
 *     q4_0  B=4: 97, 79-96;  B=5: 103-105 vs 107-123;  B=8: 135 vs 155
 *     q4_K, q6_K: gemm faster from B=3 (B=4: 57-66 vs 86-90).
 * The K-quants' packing is cheap next to their dots' unpacking, so they switch at 3. F32 needs no packing
 * and its few-token gemm streams each row once for up to 6 tokens (1024-wide rows from DRAM, one thread,
 * GFLOP/s: 2 tokens 28.5 vs the dots' 25.0, 3: 38 vs 31, 6: 57 vs 31), so it switches at 2. */
static int64_t gemm_min_tokens(int type) {
    switch (type) {
    case HERD_TYPE_Q8_0: return 8;
    case HERD_TYPE_Q4_0: return 5;
    case HERD_TYPE_F32: return 2;
    default: return 3;
    }
}

/* The type's gemm for rows of n_in, or NULL */
static const kernel_type_ops *gemm_ops(const weight *w, int64_t n_tok) {
    const kernel_type_ops *o = kernels_type(w->type);
    if (n_tok < gemm_min_tokens(w->type) || !o->gemm || w->row_scale || o->gemm_x_bytes(w->n_in) <= 0 ||
        kernels_row_bytes(o->vec_dot_type, w->n_in) > GEMM_ROW_MAX)
        return NULL;
    return o;
}

int64_t matmul_scratch_bytes(int weight_type, int64_t n_in, int64_t n_tok) {
    const kernel_type_ops *o = kernels_type(weight_type);
    HERD_ASSERT(o);
    int64_t b = kernels_row_bytes(o->vec_dot_type, n_in) * n_tok;
    if (o->gemm && n_tok >= gemm_min_tokens(weight_type) && o->gemm_x_bytes(n_in) * n_tok > b) b = o->gemm_x_bytes(n_in) * n_tok;
    if (pk_gemm_for(weight_type, n_in, PK_ROWS) && pk_x_bytes(weight_type, n_in) * n_tok > b) b = pk_x_bytes(weight_type, n_in) * n_tok;
    return b;
}

typedef struct {
    const matmul_out *outs; /* weights sharing the input, and where their outputs go */
    int n_outs;
    int64_t total_rows;     /* sum of their n_out */
    const kernel_type_ops *vd; /* the vec_dot type of all of them */
    const weight *w0;       /* the first weight: n_in, act_ub */
    const float *x;
    int64_t ldx, n_tok, xq_row;
    void *xq;
    const uint8_t *xsrc;    /* converted rows (xq), or x itself when the vec_dot type is f32 */
    const kernel_type_ops *g; /* the weights' gemm (xq holds packed rows), or NULL: per-row dots */
    pk_gemm_fn pk;          /* the packed kernel when the weights are packed (xq: packed activations) */
    int64_t n_units, chunk; /* rows (groups of PK_ROWS when packed) in all, and per chunk (mm_plan) */
} mm_job;

static void convert_range(mm_job *j, int64_t t0, int64_t t1) {
    if (j->pk) { /* each row converted as for the dot (q8_0 / q8_K), then to the packed activation blocks */
        _Alignas(64) uint8_t row[GEMM_ROW_MAX];
        for (int64_t t = t0; t < t1; t++) {
            j->vd->from_f32(j->x + t * j->ldx, row, j->w0->n_in);
            pk_pack_x(j->w0->type, j->w0->n_in, row, (uint8_t *)j->xq + t * j->xq_row);
        }
        return;
    }
    if (j->g) { /* each row converted as for the dot, then packed */
        _Alignas(64) uint8_t row[GEMM_ROW_MAX];
        for (int64_t t = t0; t < t1; t++) {
            j->vd->from_f32(j->x + t * j->ldx, row, j->w0->n_in);
            j->g->gemm_pack_x(j->w0->n_in, row, (uint8_t *)j->xq + t * j->xq_row);
        }
        return;
    }
    for (int64_t t = t0; t < t1; t++) {
        uint8_t *dst = (uint8_t *)j->xq + t * j->xq_row;
        if (j->vd->from_f32_ub) j->vd->from_f32_ub(j->x + t * j->ldx, dst, j->w0->n_in, j->w0->act_ub); /* FP8 rows */
        else j->vd->from_f32(j->x + t * j->ldx, dst, j->w0->n_in);
    }
}

static void convert_rows(void *arg, int ith, int nth) {
    mm_job *j = arg;
    int64_t t0, t1;
    pool_range(j->n_tok, ith, nth, &t0, &t1);
    convert_range(j, t0, t1);
}

/* Tokens are visited in tiles so that a tile of activations stays in cache while the thread's
 * weight rows stream past it once per tile. */
#define TOKEN_TILE 16

/* Rows r0..r1 of one weight; y: the output of row r0 (token t's at y + t * ldy). */
static void rows_of(const mm_job *j, const weight *w, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    if (j->g) { /* each weight's own gemm: the weights may differ in type, sharing the packed layout */
        kernels_type(w->type)->gemm(w->n_in, r1 - r0, j->n_tok, w->data + r0 * w->row_bytes, w->row_bytes, j->xsrc, j->xq_row,
                   y, ldy);
        return;
    }
    const kernel_type_ops *ops = kernels_type(w->type);
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += TOKEN_TILE) {
        int64_t t1 = t0 + TOKEN_TILE < j->n_tok ? t0 + TOKEN_TILE : j->n_tok;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *wr = w->data + r * w->row_bytes;
            for (int64_t t = t0; t < t1; t++) ops->dot(w->n_in, &y[t * ldy + r - r0], wr, j->xsrc + t * j->xq_row);
            if (w->row_scale) /* FP8: the dot carries the activation row's scale, this the weight row's */
                for (int64_t t = t0; t < t1; t++) y[t * ldy + r - r0] *= w->row_scale[r];
        }
    }
}

/* Work is shared out in chunks of consecutive rows of all the weights, taken as one concatenated range,
 * so that one pass covers Q, K and V, or gate and up; packed weights in chunks of whole groups of
 * PK_ROWS rows. Threads claim chunks as they go (pool.h), about MM_CHUNKS_PER_THREAD each, so a thread
 * the scheduler parks holds up one chunk rather than its whole share; a chunk is at least
 * MM_MIN_CHUNK_BYTES of weights, one sequential stream for the prefetchers (and rows a multiple of 16,
 * the gemm's and packed kernels' row tiles), so an uncontended pass runs as fast as with one range per
 * thread. Each output is computed by one thread in one order whatever the chunking: results do not
 * depend on the thread count or on which thread took which chunk. */
#define MM_CHUNKS_PER_THREAD 8
#define MM_MIN_CHUNK_BYTES (64 * 1024)

/* Chunk c: into the weights' outputs, or (dst, one token) into dst, the chunk's rows of all the weights
 * one after another. */
static void mm_chunk_to(const mm_job *j, int64_t c, float *dst) {
    int64_t r0 = c * j->chunk, r1 = r0 + j->chunk < j->n_units ? r0 + j->chunk : j->n_units, base = 0;
    const int64_t unit = j->pk ? PK_ROWS : 1;
    for (int i = 0; i < j->n_outs && base < r1; i++) {
        const weight *w = j->outs[i].w;
        int64_t n = w->n_out / unit, a = r0 > base ? r0 - base : 0, b = r1 - base < n ? r1 - base : n;
        if (a < b) {
            float *y = dst ? dst + (base + a - r0) * unit : j->outs[i].y + a * unit;
            if (j->pk)
                j->pk(w->n_in, b - a, j->n_tok, w->packed + a * pk_group_bytes(w->type, w->n_in), j->xsrc, j->xq_row, y,
                      j->outs[i].ldy);
            else rows_of(j, w, y, j->outs[i].ldy, a, b);
        }
        base += n;
    }
}

static void mm_chunk(void *arg, int64_t c, int ith) {
    (void)ith;
    mm_chunk_to(arg, c, NULL);
}

/* Cuts the job's rows (or groups) into chunks: sets j->n_units, j->chunk; returns the chunk count. */
static int64_t mm_plan(mm_job *j, int nth, int per_thread, int64_t min_bytes) {
    const weight *w0 = j->w0;
    int64_t unit_bytes = j->pk ? pk_group_bytes(w0->type, w0->n_in) : w0->row_bytes, align = j->pk ? 1 : 16;
    j->n_units = j->pk ? j->total_rows / PK_ROWS : j->total_rows;
    int64_t min_units = (min_bytes + unit_bytes - 1) / unit_bytes;
    min_units = (min_units + align - 1) / align * align;
    int64_t n = pool_chunks(j->n_units, nth, per_thread, min_units);
    j->chunk = (j->n_units + n - 1) / n;
    j->chunk = (j->chunk + align - 1) / align * align;
    return (j->n_units + j->chunk - 1) / j->chunk;
}

/* The kernels of a pass of n_tok tokens over outs (matmul_multi, matmul_pass_new): *pk (the packed kernel)
 * or *g0 (the gemm) or neither (per-row dots). false when the weights cannot share one converted input:
 * one input conversion serves every weight of the same vec_dot type, width and FP8 bound (and the same
 * packed layout, for gemm; all packed and of one type for the packed kernel). */
static bool mm_kernels(const matmul_out *outs, int n_outs, int64_t n_tok, pk_gemm_fn *pk_out, const kernel_type_ops **g0_out) {
    const weight *w0 = outs[0].w;
    const kernel_type_ops *ops0 = kernels_type(w0->type);
    HERD_ASSERT(ops0);
    /* (a packed weight whose input row would not fit the conversion's stack row takes the plain path:
     * decided by the width alone, so still the same for every batch) */
    pk_gemm_fn pk = w0->packed && kernels_row_bytes(ops0->vec_dot_type, w0->n_in) <= GEMM_ROW_MAX
                        ? pk_gemm_for(w0->type, w0->n_in, w0->n_out) : NULL;
    const kernel_type_ops *g0 = pk ? NULL : gemm_ops(w0, n_tok);
    for (int i = 1; i < n_outs; i++) {
        const kernel_type_ops *o = kernels_type(outs[i].w->type), *g = gemm_ops(outs[i].w, n_tok);
        bool same_pk = pk ? outs[i].w->packed && outs[i].w->type == w0->type : !outs[i].w->packed;
        if (o->vec_dot_type != ops0->vec_dot_type || outs[i].w->n_in != w0->n_in || outs[i].w->act_ub != w0->act_ub ||
            !same_pk || (!pk && (g ? g->gemm_pack_x : NULL) != (g0 ? g0->gemm_pack_x : NULL)))
            return false;
    }
    *pk_out = pk;
    *g0_out = g0;
    return true;
}

void matmul_multi(thread_pool *pool, const matmul_out *outs, int n_outs, const float *x, int64_t ldx, int64_t n_tok,
                  void *xq) {
    const weight *w0 = outs[0].w;
    const kernel_type_ops *ops0 = kernels_type(w0->type);
    pk_gemm_fn pk;
    const kernel_type_ops *g0;
    if (!mm_kernels(outs, n_outs, n_tok, &pk, &g0)) {
        for (int k = 0; k < n_outs; k++) matmul_multi(pool, &outs[k], 1, x, ldx, n_tok, xq);
        return;
    }
    mm_job j = {.outs = outs, .n_outs = n_outs, .vd = kernels_type(ops0->vec_dot_type), .w0 = w0, .x = x,
                .ldx = ldx, .n_tok = n_tok, .xq = xq, .g = g0, .pk = pk};
    for (int i = 0; i < n_outs; i++) j.total_rows += outs[i].w->n_out;
    if (pk) {
        j.xq_row = pk_x_bytes(w0->type, w0->n_in);
        if (n_tok <= 2) convert_range(&j, 0, n_tok);
        else pool_run(pool, convert_rows, &j);
        j.xsrc = xq;
    } else if (g0 && ops0->vec_dot_type != HERD_TYPE_F32) {
        j.xq_row = g0->gemm_x_bytes(w0->n_in);
        pool_run(pool, convert_rows, &j);
        j.xsrc = xq;
    } else if (ops0->vec_dot_type == HERD_TYPE_F32) { /* the dots and the F32 gemm read x as it is */
        j.xsrc = (const uint8_t *)x;
        j.xq_row = ldx * (int64_t)sizeof(float);
    } else {
        j.xq_row = kernels_row_bytes(ops0->vec_dot_type, w0->n_in);
        /* a decode step's one or two rows convert faster than a thread handoff */
        if (n_tok <= 2) convert_range(&j, 0, n_tok);
        else pool_run(pool, convert_rows, &j);
        j.xsrc = xq;
    }
    pool_for(pool, mm_plan(&j, pool_size(pool), MM_CHUNKS_PER_THREAD, MM_MIN_CHUNK_BYTES), mm_chunk, &j);
}

void matmul(thread_pool *pool, const weight *w, const float *x, int64_t ldx, int64_t n_tok, float *y, int64_t ldy,
            void *xq) {
    matmul_out o = {w, y, ldy};
    matmul_multi(pool, &o, 1, x, ldx, n_tok, xq);
}

/* ---- one-token passes run chunk by chunk (the decode relay, model/relay.c) ------------------------ */

struct matmul_pass {
    mm_job j;            /* n_tok 1; xsrc, xq unset (each caller's own converted row) */
    matmul_out outs[3];  /* the weights (y: where matmul_pass_commit copies to) */
    int64_t n_chunks, chunk_floats, xq_bytes;
};

matmul_pass *matmul_pass_new(const matmul_out *outs, int n_outs, int nth, int per_thread) {
    HERD_ASSERT(n_outs >= 1 && n_outs <= 3);
    const weight *w0 = outs[0].w;
    const kernel_type_ops *ops0 = kernels_type(w0->type);
    pk_gemm_fn pk;
    const kernel_type_ops *g0;
    if (!mm_kernels(outs, n_outs, 1, &pk, &g0)) return NULL;
    HERD_ASSERT(!g0); /* no gemm for one token (gemm_min_tokens) */
    matmul_pass *mp = herd_xcalloc(1, sizeof *mp);
    memcpy(mp->outs, outs, (size_t)n_outs * sizeof *outs);
    mm_job *j = &mp->j;
    *j = (mm_job){.outs = mp->outs, .n_outs = n_outs, .vd = kernels_type(ops0->vec_dot_type), .w0 = w0, .n_tok = 1, .pk = pk};
    for (int i = 0; i < n_outs; i++) j->total_rows += outs[i].w->n_out;
    if (pk) mp->xq_bytes = pk_x_bytes(w0->type, w0->n_in);
    else if (ops0->vec_dot_type == HERD_TYPE_F32) mp->xq_bytes = w0->n_in * (int64_t)sizeof(float); /* a copy of x */
    else mp->xq_bytes = kernels_row_bytes(ops0->vec_dot_type, w0->n_in);
    j->xq_row = mp->xq_bytes;
    mp->n_chunks = mm_plan(j, nth, per_thread, MM_MIN_CHUNK_BYTES / 4);
    mp->chunk_floats = j->chunk * (pk ? PK_ROWS : 1);
    return mp;
}

void matmul_pass_free(matmul_pass *mp) {
    free(mp);
}

int64_t matmul_pass_chunks(const matmul_pass *mp) {
    return mp->n_chunks;
}

int64_t matmul_pass_chunk_floats(const matmul_pass *mp) {
    return mp->chunk_floats;
}

int64_t matmul_pass_xq_bytes(const matmul_pass *mp) {
    return mp->xq_bytes;
}

void matmul_pass_convert(const matmul_pass *mp, const float *x, void *xq) {
    if (mp->j.vd->type == HERD_TYPE_F32 && !mp->j.pk) {
        memcpy(xq, x, (size_t)mp->xq_bytes);
        return;
    }
    mm_job j = mp->j;
    j.x = x;
    j.ldx = j.w0->n_in;
    j.xq = xq;
    convert_range(&j, 0, 1);
}

void matmul_pass_chunk(const matmul_pass *mp, int64_t c, const void *xq, float *dst) {
    mm_job j = mp->j;
    j.xsrc = xq;
    mm_chunk_to(&j, c, dst);
}

void matmul_pass_commit(const matmul_pass *mp, int64_t c, const float *src, float *y0) {
    const mm_job *j = &mp->j;
    const int64_t unit = j->pk ? PK_ROWS : 1;
    int64_t r0 = c * j->chunk, r1 = r0 + j->chunk < j->n_units ? r0 + j->chunk : j->n_units, base = 0;
    for (int i = 0; i < j->n_outs && base < r1; i++) {
        int64_t n = j->outs[i].w->n_out / unit, a = r0 > base ? r0 - base : 0, b = r1 - base < n ? r1 - base : n;
        float *y = i == 0 && y0 ? y0 : j->outs[i].y;
        if (a < b) memcpy(y + a * unit, src + (base + a - r0) * unit, (size_t)((b - a) * unit) * sizeof(float));
        base += n;
    }
}
