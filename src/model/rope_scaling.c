/* Llama 3 rope frequency scaling (LLAMA31.md, RoPE) as rope_freqs divisors. */
#include <math.h>

#include "model.h"

/* llama.cpp's converter computes these with torch in float32:
 *   freq_i = 1 / theta^(2i/head_dim);  wavelen = 2π / freq_i
 *   wavelen < orig/high -> 1;  wavelen > orig/low -> factor;
 *   else smooth = (orig/wavelen - low) / (high - low), divisor = 1 / ((1 - smooth)/factor + smooth)
 * so each step here is a float operation too (powf may differ from torch's pow in the last bit). */
void model_llama3_rope_freqs(float *out, int64_t head_dim, float theta, float factor, float low_freq_factor,
                             float high_freq_factor, float orig_ctx) {
    const float two_pi = (float)(2.0 * M_PI);
    const double low_wavelen = (double)orig_ctx / low_freq_factor,
                 high_wavelen = (double)orig_ctx / high_freq_factor;
    for (int64_t i = 0; i < head_dim / 2; i++) {
        float freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        float wavelen = two_pi / freq;
        if (wavelen < high_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > low_wavelen) {
            out[i] = factor;
        } else {
            float smooth = (orig_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
            out[i] = 1.0f / ((1.0f - smooth) / factor + smooth);
        }
    }
}
