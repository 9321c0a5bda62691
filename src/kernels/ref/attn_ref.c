/* Attention, the math written out (the contract is in kernels.h, kernel_attn_fn): one query at a
 * time, keys in blocks of KERNEL_ATTN_BLOCK positions from position 0, an online softmax across the
 * blocks. With the reference's primitives (double-sum dots, scalar axpy) and libm's expf this is the
 * truth the SIMD variants are tested against; the AVX2 table runs the same code on its own dots and
 * axpys. Every query is computed alone, so nothing depends on which queries share a call.
 *
 * Quantized and bf16 caches (kernels.h): the query converted to K's vec_dot type, scores by the type's
 * dot; V rows converted to f32 one at a time, then the f32 axpy. */
#include <math.h>
#include <string.h>

#include "herd.h"
#include "../kernels_impl.h"

void kernels_attn_generic(kernel_isa isa, const kernel_attn_kv *kv, int64_t nq, const float *const *q,
                          const int64_t *n_kv, float *const *o, float *scratch) {
    const kernel_vec_ops *vo = kernels_vec_isa(isa);
    const int64_t hd = kv->head_dim, B = KERNEL_ATTN_BLOCK;
    const int tk = kv->type_k, tv = kv->type_v;
    const bool k_plain = tk == HERD_TYPE_F32 || tk == HERD_TYPE_F16, v_plain = tv == HERD_TYPE_F32 || tv == HERD_TYPE_F16;
    const kernel_type_ops *kt = k_plain ? NULL : kernels_type_isa(tk, isa);
    const kernel_type_ops *qt = k_plain ? NULL : kernels_type_isa(kt->vec_dot_type, isa);
    const kernel_type_ops *vt = v_plain ? NULL : kernels_type_isa(tv, isa);
    const uint8_t *K = kv->k, *V = kv->v;
    float *p = scratch;          /* [B]: the block's scores, then its weights */
    float *vrow = p + B;         /* [hd]: a V row as f32 */
    void *qq = vrow + hd;        /* the query as K's vec_dot type (at most hd floats' bytes) */
    for (int64_t i = 0; i < nq; i++) {
        float m = -INFINITY, l = 0, *out = o[i];
        memset(out, 0, (size_t)hd * sizeof(float));
        if (qt) qt->from_f32(q[i], qq, hd);
        for (int64_t b0 = 0; b0 < n_kv[i]; b0 += B) {
            const int64_t nb = n_kv[i] - b0 < B ? n_kv[i] - b0 : B;
            float bmax = -INFINITY;
            for (int64_t j = 0; j < nb; j++) {
                const void *kr = K + (b0 + j) * kv->stride_k;
                float d;
                if (kt) kt->dot(hd, &d, kr, qq);
                else d = tk == HERD_TYPE_F16 ? vo->dot_f16_f32(hd, kr, q[i]) : vo->dot_f32(hd, kr, q[i]);
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
                const void *vr = V + (b0 + j) * kv->stride_v;
                if (vt) {
                    vt->to_f32(vr, vrow, hd);
                    vo->axpy_f32(hd, p[j], vrow, out);
                } else if (tv == HERD_TYPE_F16)
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
    kernels_attn_generic(KERNEL_ISA_REF, kv, nq, q, n_kv, o, scratch);
}

void kernels_fill_attn_ref(kernel_vec_ops *vec) {
    vec->attn = attn_ref;
}
