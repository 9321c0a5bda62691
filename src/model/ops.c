/* See ops.h. */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "../base/log.h"
#include "model.h"

float model_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    float mean = (float)(sum / (double)n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
    return scale;
}

void model_rope_cache(float *cs, float pos, int64_t head_dim, float base, float freq_scale, const float *freqs) {
    float theta_scale = powf(base, -2.0f / (float)head_dim);
    float theta = pos;
    for (int64_t i = 0; i < head_dim / 2; i++) {
        float ff = freqs ? freqs[i] : 1.0f;
        float a = freq_scale * (theta / ff);
        cs[2 * i] = cosf(a);
        cs[2 * i + 1] = sinf(a);
        theta *= theta_scale;
    }
}

void model_rope_apply(float *x, int64_t n_heads, int64_t head_dim, const float *cs, bool half_split) {
    float tmp[MODEL_MAX_HEAD_DIM];
    const int64_t half = head_dim / 2;
    HERD_ASSERT(head_dim <= MODEL_MAX_HEAD_DIM);
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        if (half_split) {
            memcpy(tmp, v, (size_t)head_dim * sizeof(float));
            for (int64_t i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1], x0 = tmp[i], x1 = tmp[i + half];
                v[2 * i] = x0 * c - x1 * s;
                v[2 * i + 1] = x0 * s + x1 * c;
            }
            continue;
        }
        for (int64_t i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1], x0 = v[2 * i], x1 = v[2 * i + 1];
            v[2 * i] = x0 * c - x1 * s;
            v[2 * i + 1] = x0 * s + x1 * c;
        }
    }
}

void model_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
