/* See ops.h: the scalar backward of RMSNorm, RoPE, SwiGLU, cross-entropy, and the reference attention. */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "../model/model.h"

void train_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, float s,
                            int64_t n) {
    double dot = 0; /* sum_j dy_j w_j x_j */
    for (int64_t i = 0; i < n; i++) dot += (double)dy[i] * (double)w[i] * (double)x[i];
    const float c = (float)(dot * (double)s * (double)s * (double)s / (double)n);
    if (dw)
        for (int64_t i = 0; i < n; i++) dw[i] += dy[i] * (x[i] * s);
    for (int64_t i = 0; i < n; i++) dx[i] = s * (dy[i] * w[i]) - x[i] * c;
}

void train_rope_backward(float *d, int64_t n_heads, int64_t head_dim, const float *cs, bool half_split) {
    float tmp[MODEL_MAX_HEAD_DIM];
    const int64_t half = head_dim / 2;
    HERD_ASSERT(head_dim <= MODEL_MAX_HEAD_DIM);
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = d + h * head_dim;
        memcpy(tmp, v, (size_t)head_dim * sizeof(float));
        for (int64_t i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1], d0 = tmp[2 * i], d1 = tmp[2 * i + 1];
            float g0 = d0 * c + d1 * s, g1 = d1 * c - d0 * s;
            if (half_split) v[i] = g0, v[i + half] = g1;
            else v[2 * i] = g0, v[2 * i + 1] = g1;
        }
    }
}

void train_swiglu_forward(float *a, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) a[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void train_swiglu_backward(float *dg, float *du, const float *da, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float e = expf(-g[i]); /* once: the same value both times */
        float sg = 1.0f / (1.0f + e);
        float silu = g[i] / (1.0f + e);
        float d = da[i];
        dg[i] = d * u[i] * (sg * (1.0f + g[i] * (1.0f - sg)));
        du[i] = d * silu;
    }
}

static double dotd(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

void train_attention_forward_ref(const train_attn_shape *a, const float *q, const float *k, const float *v, float *o,
                                 float *lse) {
    const int64_t T = a->T, H = a->n_head, hd = a->hd, qd = H * hd, kd = a->n_head_kv * hd, group = H / a->n_head_kv;
    double *s = herd_xmalloc((size_t)T * sizeof *s), *acc = herd_xmalloc((size_t)hd * sizeof *acc);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            const float *qt = q + t * qd + h * hd;
            const int64_t off = (h / group) * hd;
            double m = -INFINITY, l = 0;
            for (int64_t j = 0; j <= t; j++) {
                s[j] = dotd(qt, k + j * kd + off, hd) * a->scale;
                if (s[j] > m) m = s[j];
            }
            memset(acc, 0, (size_t)hd * sizeof *acc);
            for (int64_t j = 0; j <= t; j++) {
                double p = exp(s[j] - m);
                l += p;
                for (int64_t i = 0; i < hd; i++) acc[i] += p * v[j * kd + off + i];
            }
            for (int64_t i = 0; i < hd; i++) o[t * qd + h * hd + i] = (float)(acc[i] / l);
            lse[t * H + h] = (float)(m + log(l));
        }
    free(s);
    free(acc);
}

void train_attention_backward_ref(const train_attn_shape *a, const float *q, const float *k, const float *v,
                                  const float *o, const float *lse, const float *dout, float *dq, float *dk,
                                  float *dv) {
    const int64_t T = a->T, H = a->n_head, hd = a->hd, qd = H * hd, kd = a->n_head_kv * hd, group = H / a->n_head_kv;
    memset(dq, 0, (size_t)(T * qd) * sizeof(float));
    memset(dk, 0, (size_t)(T * kd) * sizeof(float));
    memset(dv, 0, (size_t)(T * kd) * sizeof(float));
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            const float *qt = q + t * qd + h * hd, *dot_ = dout + t * qd + h * hd;
            const int64_t off = (h / group) * hd;
            double D = dotd(dot_, o + t * qd + h * hd, hd);
            for (int64_t j = 0; j <= t; j++) {
                const float *kj = k + j * kd + off, *vj = v + j * kd + off;
                double p = exp(dotd(qt, kj, hd) * a->scale - lse[t * H + h]);
                double ds = p * (dotd(dot_, vj, hd) - D);
                for (int64_t i = 0; i < hd; i++) {
                    dq[t * qd + h * hd + i] += (float)(ds * a->scale * kj[i]);
                    dk[j * kd + off + i] += (float)(ds * a->scale * qt[i]);
                    dv[j * kd + off + i] += (float)(p * dot_[i]);
                }
            }
        }
}

double train_xent_row(float *dz, const float *z, int64_t n_vocab, int32_t target, float wt, double *logp) {
    const kernel_vec_ops *vo = kernels_vec();
    /* the largest logit (the first of equals; a NaN logit makes the loss NaN below either way) */
    const float m = z[vo->argmax_f32(n_vocab, z)];
    /* one exp per logit, vectorized (kernels.h exp_f32; libm's exp in double was 7 % of a LoRA step):
     * e_i = e^(z_i - m) kept in dz, then dz_i = wt e_i / sum (within 3 float roundings of wt exp(z_i - lse)) */
    const double zt = z[target];
    const double sum = vo->exp_f32(n_vocab, z, 1.0f, m, dz);
    const double lse = (double)m + log(sum);
    const double lp = zt - lse;
    if (logp) *logp = lp;
    const float f = (float)((double)wt / sum);
    for (int64_t i = 0; i < n_vocab; i++) dz[i] *= f;
    dz[target] -= wt;
    return -(double)wt * lp;
}
