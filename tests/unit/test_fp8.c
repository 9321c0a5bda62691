/* FP8 (Meta's fbgemm rowwise scheme, herd extension; see src/kernels/fp8.h):
 *
 *   e4m3 decode       every one of the 256 codes against the format's definition
 *   e4m3 encode       fp8_e4m3_from_f32 == nearest code by brute force (ties to even code), on every code,
 *                     every midpoint between neighbours, random values, the subnormal range, saturation
 *   activation rows   from_f32_ub of every ISA bit-identical to the reference (ragged n, values past ub)
 *   dot               every ISA within f32-accumulation error of the reference, ragged n
 *   matmul            the whole rowwise scheme computed here in plain C (own quantizer, double sums,
 *                     y = sum(qw*qx) * sx * sw) against model/matmul.c through each ISA's kernels
 * Exit status 0 = pass, 1 = fail.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "kernels/fp8.h"
#include "kernels/kernels.h"
#include "model/matmul.h"
#include "testutil.h"

/* ---- an independent e4m3: the value of a code from its definition, and nearest-code search -------- */

static double code_value(int b) {
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    double v = e == 0 ? ldexp(m / 8.0, -6) : ldexp(1 + m / 8.0, e - 7);
    return s ? -v : v;
}

static bool code_is_nan(int b) {
    return (b & 0x7f) == 0x7f;
}

/* nearest finite code to x (|x| <= 448), ties to the code with an even mantissa, sign kept for 0 */
static uint8_t nearest_code(double x) {
    int best = -1;
    double bd = INFINITY;
    for (int b = 0; b < 256; b++) {
        if (code_is_nan(b) || (b & 0x80) != (signbit(x) ? 0x80 : 0)) continue;
        double d = fabs(code_value(b) - x);
        if (d < bd || (d == bd && (b & 1) == 0)) bd = d, best = b;
    }
    return (uint8_t)best;
}

static void test_codes(void) {
    int bad = 0;
    for (int b = 0; b < 256; b++) {
        float v = fp8_e4m3_to_f32((uint8_t)b);
        if (code_is_nan(b)) {
            bad += !isnan(v);
            continue;
        }
        bad += v != (float)code_value(b);
        bad += fp8_e4m3_from_f32(v) != b; /* round trip, -0 included */
    }
    CHECK(bad == 0, "%d of 256 codes decode or round-trip wrongly", bad);
    CHECK(fp8_e4m3_to_f32(0x7e) == 448.0f && fp8_e4m3_to_f32(0x01) == 0x1p-9f, "448 / 2^-9 codes");
}

static void test_encode(void) {
    int bad = 0, n = 0;
    float first_bad = 0;
    /* every midpoint between neighbouring positive codes, and just around it */
    for (int b = 0; b < 0x7e; b++) {
        double lo = code_value(b), hi = code_value(b + 1), mid = (lo + hi) / 2;
        float xs[] = {(float)mid, nextafterf((float)mid, 0), nextafterf((float)mid, 1000), (float)lo,
                      (float)hi};
        for (size_t k = 0; k < sizeof xs / sizeof xs[0]; k++)
            for (int s = 0; s < 2; s++) {
                float x = s ? -xs[k] : xs[k];
                n++;
                if (fp8_e4m3_from_f32(x) != nearest_code(x)) bad++, first_bad = x;
            }
    }
    /* random values over the whole range, and in the subnormal range */
    for (int i = 0; i < 20000; i++) {
        float x = ldexpf(tu_sym(), (int)(tu_u64() % 20) - 11);
        if (fabsf(x) > 448) continue;
        n++;
        if (fp8_e4m3_from_f32(x) != nearest_code(x)) bad++, first_bad = x;
    }
    CHECK(bad == 0, "%d of %d encodings differ from the nearest code (first at %a)", bad, n, first_bad);
    CHECK(fp8_e4m3_from_f32(1e9f) == 0x7e && fp8_e4m3_from_f32(-500.0f) == 0xfe, "saturation at 448");
    CHECK(fp8_e4m3_from_f32(NAN) == 0x7f, "NaN");
}

/* random row: mostly normal-ish values, some tiny, some huge (past activation_scale_ub) */
static void random_row(float *x, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        float v = tu_sym() * (kind == 0 ? 3.0f : kind == 1 ? 1e-4f : 50.0f);
        if (kind == 2 && tu_u64() % 17 == 0) v *= 100; /* outliers up to 5000 > ub */
        x[i] = v;
    }
    if (kind == 3) memset(x, 0, (size_t)n * sizeof *x);
}

static const int64_t k_sizes[] = {1,  3,  7,  15,  16,  17,  31,  32,   33,
                                  63, 64, 65, 100, 127, 255, 257, 1000, 4099};

static void test_act_and_dot(void) {
    const kernel_type_ops *ref_a = kernels_type_isa(KERNEL_TYPE_FP8_ACT, KERNEL_ISA_REF);
    const kernel_type_ops *ref_w = kernels_type_isa(HERD_TYPE_FP8_E4M3, KERNEL_ISA_REF);
    CHECK(ref_a && ref_w && ref_a->from_f32_ub && ref_w->dot, "reference FP8 kernels present");
    for (int isa = KERNEL_ISA_REF; isa < KERNEL_ISA_COUNT; isa++) {
        const kernel_type_ops *a = kernels_type_isa(KERNEL_TYPE_FP8_ACT, (kernel_isa)isa);
        const kernel_type_ops *w = kernels_type_isa(HERD_TYPE_FP8_E4M3, (kernel_isa)isa);
        if (!a || !w) continue;
        int act_bad = 0, dot_bad = 0, cases = 0;
        double worst = 0;
        for (size_t si = 0; si < sizeof k_sizes / sizeof k_sizes[0]; si++)
            for (int kind = 0; kind < 4; kind++) {
                int64_t n = k_sizes[si], rb = kernels_row_bytes(KERNEL_TYPE_FP8_ACT, n);
                float *x = malloc((size_t)n * sizeof *x), *wf = malloc((size_t)n * sizeof *wf);
                uint8_t *qa = malloc((size_t)rb), *qr = malloc((size_t)rb), *qw = malloc((size_t)n);
                random_row(x, n, kind);
                random_row(wf, n, 0);
                float ub = kind == 2 ? 1200.0f : INFINITY;
                ref_a->from_f32_ub(x, qr, n, ub);
                a->from_f32_ub(x, qa, n, ub);
                act_bad += memcmp(qa, qr, (size_t)rb) != 0;
                fp8_quantize_row_ref(wf, qw, n, INFINITY);
                float d_ref, d;
                ref_w->dot(n, &d_ref, qw, qr);
                w->dot(n, &d, qw, qr);
                /* bound: f32 accumulation of n exact products, relative to sum |w_i x_i| * scale */
                float sx;
                memcpy(&sx, qr, 4);
                double mag = 0;
                for (int64_t i = 0; i < n; i++)
                    mag += fabs((double)fp8_e4m3_to_f32(qw[i]) * fp8_e4m3_to_f32(qr[4 + i])) * sx;
                double err = fabs((double)d - d_ref);
                if (mag > 0 && err / mag > worst) worst = err / mag;
                dot_bad += err > 1e-5 * mag; /* <= 64 f32 additions per lane, each off by <= 2^-24 */
                cases++;
                free(x), free(wf), free(qa), free(qr), free(qw);
            }
        CHECK(act_bad == 0, "%s: %d of %d activation rows differ from the reference", kernels_isa_name(isa),
              act_bad, cases);
        CHECK(dot_bad == 0, "%s: %d of %d dots outside f32 accumulation error (worst %.2e)",
              kernels_isa_name(isa), dot_bad, cases, worst);
        printf("  %-7s %d activation rows bit-identical, dots within %.2e relative of the reference\n",
               kernels_isa_name(isa), cases - act_bad, worst);
    }
}

/* ---- the rowwise scheme in plain C vs matmul through the kernels ---------------------------------- */

/* fbgemm's quantize_fp8_per_row, written out again: inv = min(448 / min(max|x|, ub), 448*512) */
static float plain_quantize(const float *x, uint8_t *q, int64_t n, float ub) {
    float amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    float m = amax < ub ? amax : ub;
    float inv = 448.0f / m;
    if (!(inv <= 448.0f * 512.0f)) inv = 448.0f * 512.0f;
    for (int64_t i = 0; i < n; i++) {
        float y = x[i] * inv;
        y = y > 448 ? 448 : y < -448 ? -448 : y;
        q[i] = nearest_code(y);
    }
    return 1.0f / inv;
}

static void test_matmul(void) {
    const int64_t n_in = 200, n_out = 37, n_tok = 5;
    const float ub = 1200;
    float *wf = malloc(sizeof(float) * n_in * n_out), *x = malloc(sizeof(float) * n_in * n_tok);
    uint8_t *qw = malloc((size_t)(n_in * n_out)), *qx = malloc((size_t)n_in);
    float *sw = malloc(sizeof(float) * n_out), *want = malloc(sizeof(float) * n_out * n_tok);
    for (int64_t i = 0; i < n_in * n_out; i++) wf[i] = tu_sym() * 0.05f;
    for (int64_t t = 0; t < n_tok; t++) random_row(x + t * n_in, n_in, t % 3 == 2 ? 2 : 0);
    for (int64_t r = 0; r < n_out; r++) sw[r] = plain_quantize(wf + r * n_in, qw + r * n_in, n_in, INFINITY);
    for (int64_t t = 0; t < n_tok; t++) {
        float sx = plain_quantize(x + t * n_in, qx, n_in, ub);
        for (int64_t r = 0; r < n_out; r++) {
            double s = 0;
            for (int64_t i = 0; i < n_in; i++) s += code_value(qw[r * n_in + i]) * code_value(qx[i]);
            want[t * n_out + r] = (float)(s * sx * sw[r]);
        }
    }
    /* herd's weights come from the reference quantizer: they must equal the plain ones */
    uint8_t *hw = malloc((size_t)(n_in * n_out));
    float *hs = malloc(sizeof(float) * n_out);
    int wbad = 0;
    for (int64_t r = 0; r < n_out; r++) {
        hs[r] = fp8_quantize_row_ref(wf + r * n_in, hw + r * n_in, n_in, INFINITY);
        wbad += hs[r] != sw[r] || memcmp(hw + r * n_in, qw + r * n_in, (size_t)n_in) != 0;
    }
    CHECK(wbad == 0, "%d weight rows quantized differently from the plain scheme", wbad);
    weight w = {.type = HERD_TYPE_FP8_E4M3,
                .n_in = n_in,
                .n_out = n_out,
                .row_bytes = n_in,
                .data = hw,
                .name = "w",
                .row_scale = hs,
                .act_ub = ub};
    thread_pool *pool = pool_new(2);
    float *y = malloc(sizeof(float) * n_out * n_tok);
    void *xq = malloc((size_t)matmul_scratch_bytes(HERD_TYPE_FP8_E4M3, n_in, n_tok));
    double worst = 0;
    matmul(pool, &w, x, n_in, n_tok, y, n_out, xq); /* the active (fastest) ISA */
    for (int64_t i = 0; i < n_out * n_tok; i++) {
        double e = fabs((double)y[i] - want[i]) / (fabs(want[i]) + 1e-3);
        if (e > worst) worst = e;
    }
    CHECK(worst < 1e-5, "matmul (%s) vs the plain-C rowwise scheme: worst relative error %.2e",
          herd_cpu_backend(), worst);
    printf(
        "  matmul (%s) vs plain-C rowwise FP8 (%lldx%lld, %lld tokens, ub %g): worst relative error %.2e\n",
        herd_cpu_backend(), (long long)n_out, (long long)n_in, (long long)n_tok, ub, worst);
    pool_free(pool);
    free(wf), free(x), free(qw), free(qx), free(sw), free(want), free(hw), free(hs), free(y), free(xq);
}

int main(void) {
    tu_rng = 0x9e3779b97f4a7c15ull; /* this test's seed */
    kernels_init();
    test_codes();
    test_encode();
    test_act_and_dot();
    test_matmul();
    return TU_DONE("test_fp8");
}
