/* Helpers shared by the weighted quantizers of src/quant (quant_weighted.c, quant_iq.c): ggml's own, operation
 * for operation, so the files agree with llama-quantize byte for byte. Internal to src/quant. */
#ifndef HERD_QUANT_IMPL_H
#define HERD_QUANT_IMPL_H

#include <stdint.h>
#include <string.h>

/* ggml's nearest_int: round half to even through the float's mantissa, for |fval| <= 4194303 */
static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* ggml's make_qp_quants: n non-negative x[] -> L[n] in 0..nmax and the scale minimizing sum w (x - s L)^2
 * (a grid of 9 trial scales, then up to 5 passes of coordinate descent). Returns the scale (0 for all-zero x).
 * quant_weighted.c. */
float quant_make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *quant_weights);

#endif
