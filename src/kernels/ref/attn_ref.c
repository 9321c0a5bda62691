/* Attention, the math written out (the contract is in kernels.h, kernel_attn_fn): one query at a
 * time, keys in blocks of KERNEL_ATTN_BLOCK positions from position 0, an online softmax across the
 * blocks. With the reference's primitives (double-sum dots, scalar axpy) and libm's expf this is the
 * truth the SIMD variants are tested against; the AVX2 table runs the same code on its own dots and
 * axpys. Every query is computed alone, so nothing depends on which queries share a call. */
#include <math.h>
#include <string.h>

#include "herd.h"
#include "../kernels_impl.h"

void kernels_attn_generic(const kernel_vec_ops *vo, const kernel_attn_kv *kv, int64_t nq,
                          const float *const *q, const int64_t *n_kv, float *const *o, float *scratch) {
    const int64_t hd = kv->head_dim, B = KERNEL_ATTN_BLOCK;
    const bool f16 = kv->type == HERD_TYPE_F16;
    const uint8_t *K = kv->k, *V = kv->v;
    float *p = scratch; /* [B]: the block's scores, then its weights */
    for (int64_t i = 0; i < nq; i++) {
        float m = -INFINITY, l = 0, *out = o[i];
        memset(out, 0, (size_t)hd * sizeof(float));
        for (int64_t b0 = 0; b0 < n_kv[i]; b0 += B) {
            const int64_t nb = n_kv[i] - b0 < B ? n_kv[i] - b0 : B;
            float bmax = -INFINITY;
            for (int64_t j = 0; j < nb; j++) {
                const void *kr = K + (b0 + j) * kv->stride;
                float d = f16 ? vo->dot_f16_f32(hd, kr, q[i]) : vo->dot_f32(hd, kr, q[i]);
                p[j] = d * kv->scale;
                bmax = fmaxf(bmax, p[j]);
            }
            const float m1 = fmaxf(m, bmax);
            const float c = expf(m - m1); /* 0 for the first block (m = -inf) */
            float sum = 0;
            for (int64_t j = 0; j < nb; j++) {
                p[j] = expf(p[j] - m1);
                sum += p[j];
            }
            l = l * c + sum;
            for (int64_t d = 0; d < hd; d++) out[d] *= c;
            for (int64_t j = 0; j < nb; j++) {
                const void *vr = V + (b0 + j) * kv->stride;
                if (f16)
                    vo->axpy_f16(hd, p[j], vr, out);
                else
                    vo->axpy_f32(hd, p[j], vr, out);
            }
            m = m1;
        }
        for (int64_t d = 0; d < hd; d++) out[d] /= l;
    }
}

static void attn_ref(const kernel_attn_kv *kv, int64_t nq, const float *const *q, const int64_t *n_kv,
                     float *const *o, float *scratch) {
    kernels_attn_generic(kernels_vec_isa(KERNEL_ISA_REF), kv, nq, q, n_kv, o, scratch);
}

void kernels_fill_attn_ref(kernel_vec_ops *vec) {
    vec->attn = attn_ref;
}
