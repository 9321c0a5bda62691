/* The scalar truth of kernel_vec_ops.exp_f32 (kernels.h): the exponentials of training's softmaxes
 * (attention weights, cross-entropy over the vocabulary) as one fixed sequence of float operations —
 * Cephes' expf: k = rint(t log2 e), r = t - k ln 2 in two fused steps (ln 2 split in a short head and a
 * tail), e^r by a degree-5 polynomial, times 2^k built in the exponent bits — so that the AVX-512 lanes
 * (x86/exp_avx512.c) give the same bits. libm's expf is a function call per element and is not
 * vectorized; this is within 2 ulp of exp over the range where the result is a normal float. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../kernels_impl.h"

static float exp_one(float t) {
    if (t != t) return t;
    if (t > KERNEL_EXP_HI) return INFINITY;
    if (t < KERNEL_EXP_LO) return 0.0f;
    const float k = rintf(t * 1.44269504088896341f);
    float r = fmaf(k, -0.693359375f, t);
    r = fmaf(k, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    const float y = fmaf(p, r * r, r) + 1.0f;
    const uint32_t bits = (uint32_t)((int32_t)k + 127) << 23; /* 2^k, k in [-126, 127] here */
    float two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    return y * two_k;
}

static double exp_f32_ref(int64_t n, const float *x, float scale, float sub, float *y) {
    double s[16] = {0};
    for (int64_t i = 0; i < n; i++) {
        const float t = x[i] * scale - sub;
        y[i] = exp_one(t);
        s[i % 16] += (double)y[i];
    }
    double sum = 0;
    for (int l = 0; l < 16; l++) sum += s[l];
    return sum;
}

void kernels_fill_exp_ref(kernel_vec_ops *vec) { vec->exp_f32 = exp_f32_ref; }
