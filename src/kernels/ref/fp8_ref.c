/* FP8 E4M3 scalar reference (see ../fp8.h): conversions, rowwise quantization, the dot. The x86
 * variants in x86/fp8_*.c are tested against these by tests/unit/test_fp8.c. */
#include <math.h>
#include <string.h>

#include "../fp8.h"
#include "../kernels_impl.h"
#include "herd.h"

float fp8_e4m3_to_f32(uint8_t b) {
    int e = (b >> 3) & 15, m = b & 7;
    float v;
    if (e == 15 && m == 7)
        v = NAN;
    else if (e == 0)
        v = ldexpf((float)m, -9);
    else
        v = ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return (b & 0x80) ? -v : v;
}

/* round to nearest, ties to even, of y >= 0 (exact for the values here: y < 2^24) */
static float round_even(float y) {
    float f = floorf(y), d = y - f;
    if (d > 0.5f || (d == 0.5f && fmodf(f, 2.0f) != 0)) f += 1.0f;
    return f;
}

uint8_t fp8_e4m3_from_f32(float x) {
    if (isnan(x)) return 0x7f;
    uint8_t sign = signbit(x) ? 0x80 : 0;
    float a = fminf(fabsf(x), FP8_E4M3_MAX);
    if (a < 0x1p-6f) return (uint8_t)(sign | (int)round_even(a * 512.0f)); /* 8 = the smallest normal */
    int e;
    float fr = frexpf(a, &e); /* a = fr * 2^e, fr in [0.5, 1) */
    e -= 1;                   /* a = (2 fr) * 2^e, 2 fr in [1, 2) */
    int m = (int)round_even((2.0f * fr - 1.0f) * 8.0f);
    if (m == 8) m = 0, e++;
    return (uint8_t)(sign | ((e + 7) << 3) | m);
}

float fp8_quantize_row_ref(const float *x, uint8_t *q, int64_t n, float ub) {
    float amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float inv = fminf(FP8_E4M3_MAX / fminf(amax, ub), FP8_E4M3_MAX * 512.0f);
    for (int64_t i = 0; i < n; i++)
        q[i] = fp8_e4m3_from_f32(fminf(fmaxf(x[i] * inv, -FP8_E4M3_MAX), FP8_E4M3_MAX));
    return 1.0f / inv;
}

/* ---- kernel-table entries -------------------------------------------------------------------- */

/* exact products summed in double, rounded to f32 once, then times the activation scale */
static void dot_fp8_ref(int64_t n, float *out, const void *w, const void *x) {
    const uint8_t *a = w, *b = (const uint8_t *)x + sizeof(float);
    float scale;
    memcpy(&scale, x, sizeof scale);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)fp8_e4m3_to_f32(a[i]) * (double)fp8_e4m3_to_f32(b[i]);
    *out = (float)s * scale;
}

static void fp8_to_f32_ref(const void *x, float *y, int64_t n) {
    const uint8_t *b = x;
    for (int64_t i = 0; i < n; i++) y[i] = fp8_e4m3_to_f32(b[i]);
}

static void fp8_from_f32_ref(const float *x, void *y, int64_t n) {
    uint8_t *q = y;
    for (int64_t i = 0; i < n; i++) q[i] = fp8_e4m3_from_f32(x[i]);
}

static void act_from_f32_ub_ref(const float *x, void *y, int64_t n, float ub) {
    float scale = fp8_quantize_row_ref(x, (uint8_t *)y + sizeof(float), n, ub);
    memcpy(y, &scale, sizeof scale);
}

static void act_from_f32_ref(const float *x, void *y, int64_t n) {
    act_from_f32_ub_ref(x, y, n, INFINITY);
}

static void act_to_f32_ref(const void *x, float *y, int64_t n) {
    float scale;
    memcpy(&scale, x, sizeof scale);
    fp8_to_f32_ref((const uint8_t *)x + sizeof(float), y, n);
    for (int64_t i = 0; i < n; i++) y[i] *= scale;
}

void kernels_fill_fp8_ref(kernel_type_ops ops[KSLOT_COUNT]) {
    /* weight rows: plain e4m3 (to_f32 / from_f32 without scale: the caller holds the row scales) */
    ops[KSLOT_FP8] = (kernel_type_ops){.type = HERD_TYPE_FP8_E4M3,
                                       .vec_dot_type = KERNEL_TYPE_FP8_ACT,
                                       .block = 1,
                                       .block_bytes = 1,
                                       .dot = dot_fp8_ref,
                                       .to_f32 = fp8_to_f32_ref,
                                       .from_f32 = fp8_from_f32_ref};
    ops[KSLOT_FP8_ACT] = (kernel_type_ops){.type = KERNEL_TYPE_FP8_ACT,
                                           .vec_dot_type = KERNEL_TYPE_FP8_ACT,
                                           .block = 1,
                                           .block_bytes = 1,
                                           .to_f32 = act_to_f32_ref,
                                           .from_f32 = act_from_f32_ref,
                                           .row_extra = sizeof(float),
                                           .from_f32_ub = act_from_f32_ub_ref};
}
