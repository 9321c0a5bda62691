/* The scalar truths of kernel_vec_ops.adamw_f32 and sumsq_f32 (kernels.h): training's optimizer update
 * and gradient norm (src/train/optim.c), written as torch.optim.AdamW's per-element arithmetic (no fused
 * multiply-adds: each product rounded, then the sum). */
#include <math.h>

#include "../kernels_impl.h"

static void adamw_f32_ref(int64_t n, float *w, const float *g, float *m, float *v, const kernel_adamw *c) {
    for (int64_t e = 0; e < n; e++) {
        w[e] *= c->decay;
        m[e] = m[e] * c->b1 + c->c1 * g[e];
        v[e] = v[e] * c->b2 + (c->c2 * g[e]) * g[e];
        const float denom = sqrtf(v[e]) / c->bc2_sqrt + c->eps;
        w[e] = w[e] + -c->step_size * (m[e] / denom);
    }
}

static void sumsq_f32_ref(int64_t n, const float *x, double s[8]) {
    for (int64_t j = 0; j < n; j++) s[j % 8] += (double)x[j] * (double)x[j];
}

void kernels_fill_optim_ref(kernel_vec_ops *vec) {
    vec->adamw_f32 = adamw_f32_ref;
    vec->sumsq_f32 = sumsq_f32_ref;
}
