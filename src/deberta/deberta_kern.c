/* The scalar references of deberta_kern.h: the arithmetic of PyTorch's float ops, element by element. */
#include "deberta_kern.h"

#include <math.h>

void deberta_row_ref(int64_t T, float *s, const float *c2p, const float *p2c, int64_t ldp, const int32_t *r, float inv) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < T; j++) {
        float v = s[j];
        if (c2p) v += c2p[r[j]];
        if (p2c) v += p2c[j * ldp + r[j]];
        s[j] = v * inv;
        mx = s[j] > mx ? s[j] : mx;
    }
    float sum = 0;
    for (int64_t j = 0; j < T; j++) sum += (s[j] = expf(s[j] - mx));
    const float is = 1.0f / sum;
    for (int64_t j = 0; j < T; j++) s[j] *= is;
}

void deberta_gelu_ref(int64_t n, float *x) {
    for (int64_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}
