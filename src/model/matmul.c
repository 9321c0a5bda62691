#include "matmul.h"

#include "../base/log.h"
#include "../kernels/kernels.h"

int64_t matmul_scratch_bytes(int weight_type, int64_t n_in, int64_t n_tok) {
    const kernel_type_ops *o = kernels_type(weight_type);
    HERD_ASSERT(o);
    return kernels_row_bytes(o->vec_dot_type, n_in) * n_tok;
}

typedef struct {
    const weight *w;
    const kernel_type_ops *ops;
    const float *x;
    int64_t ldx, n_tok, ldy, xq_row;
    float *y;
    void *xq;
    const uint8_t *xsrc; /* converted rows (xq), or x itself when the vec_dot type is f32 */
} mm_job;

static void convert_rows(void *arg, int ith, int nth) {
    mm_job *j = arg;
    const kernel_type_ops *vd = kernels_type(j->ops->vec_dot_type);
    int64_t t0, t1;
    pool_range(j->n_tok, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        uint8_t *dst = (uint8_t *)j->xq + t * j->xq_row;
        if (vd->from_f32_ub) vd->from_f32_ub(j->x + t * j->ldx, dst, j->w->n_in, j->w->act_ub); /* FP8 rows */
        else vd->from_f32(j->x + t * j->ldx, dst, j->w->n_in);
    }
}

/* Tokens are visited in tiles so that a tile of activations stays in cache while the thread's
 * weight rows stream past it once per tile. */
#define TOKEN_TILE 16

static void mm_rows(void *arg, int ith, int nth) {
    mm_job *j = arg;
    const weight *w = j->w;
    int64_t r0, r1;
    pool_range(w->n_out, ith, nth, &r0, &r1);
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += TOKEN_TILE) {
        int64_t t1 = t0 + TOKEN_TILE < j->n_tok ? t0 + TOKEN_TILE : j->n_tok;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *wr = w->data + r * w->row_bytes;
            for (int64_t t = t0; t < t1; t++) j->ops->dot(w->n_in, &j->y[t * j->ldy + r], wr, j->xsrc + t * j->xq_row);
            if (w->row_scale) /* FP8: the dot carries the activation row's scale, this the weight row's */
                for (int64_t t = t0; t < t1; t++) j->y[t * j->ldy + r] *= w->row_scale[r];
        }
    }
}

void matmul(thread_pool *pool, const weight *w, const float *x, int64_t ldx, int64_t n_tok, float *y, int64_t ldy,
            void *xq) {
    mm_job j = {.w = w, .ops = kernels_type(w->type), .x = x, .ldx = ldx, .n_tok = n_tok, .ldy = ldy, .y = y, .xq = xq};
    HERD_ASSERT(j.ops);
    if (j.ops->vec_dot_type == HERD_TYPE_F32) {
        j.xsrc = (const uint8_t *)x;
        j.xq_row = ldx * (int64_t)sizeof(float);
    } else {
        j.xq_row = kernels_row_bytes(j.ops->vec_dot_type, w->n_in);
        pool_run(pool, convert_rows, &j);
        j.xsrc = xq;
    }
    pool_run(pool, mm_rows, &j);
}
