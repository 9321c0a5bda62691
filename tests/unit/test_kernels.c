/* Kernels: every SIMD variant (kernels_type_isa / kernels_vec_isa for each ISA this CPU has) against the
 * scalar reference, and the scalar fp16/bf16 conversions against independent computations.
 *
 *   conversions (to_f32, from_f32 of f16/bf16/q8_0/...)   bit-exact vs the reference, NaN bits included
 *   dots (type dots, dot_f32, dot_f16_f32)                 within dot_tol() of the reference (see there)
 *   axpy                                                   within axpy_tol() per element
 *   any kernel                                             identical bits at 4 different addresses, no read
 *                                                          past the row (it ends at a PROT_NONE page), no
 *                                                          write past the output (guard bytes)
 *
 * Shapes are ragged on purpose (n = 1, 3, 31, 33, 100, 257, ...) so every main loop / step / tail path of
 * each kernel runs. Data is deterministic (fixed seed). Exit status 0 = pass, 1 = fail.
 */
#include <float.h>
#include <immintrin.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "herd.h"
#include "kernels/kernels.h"
#include "kernels/types.h"
#include "testutil.h"

/* ---- deterministic random numbers (splitmix64) ----------------------------------------------------- */

static uint64_t g_rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd_u64(void) {
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rnd_u32(void) {
    return (uint32_t)(rnd_u64() >> 32);
}

static int rnd_int(int lo, int hi) { /* inclusive */
    return lo + (int)(rnd_u64() % (uint64_t)(hi - lo + 1));
}

static double rnd_unit(void) { /* [0, 1) */
    return (double)(rnd_u64() >> 11) * 0x1p-53;
}

static float rnd_sym(void) { /* [-1, 1) */
    return (float)(2 * rnd_unit() - 1);
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- buffers that catch out-of-bounds access ------------------------------------------------------- */

/* A row placed so that its last byte is the last byte before a PROT_NONE page: any read past the row
 * faults, even from a SIMD load that ASan does not instrument (masked loads must not fault on the lanes
 * they leave out, so a correct kernel never trips this). */
typedef struct {
    void *map;
    size_t len;
} guard_page;

static void *guard_row(guard_page *g, const void *src, size_t bytes) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), data = (bytes + pg - 1) / pg * pg;
    g->len = data + pg;
    g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    if (mprotect((char *)g->map + data, pg, PROT_NONE) != 0) {
        perror("mprotect");
        exit(1);
    }
    char *p = (char *)g->map + data - bytes;
    memcpy(p, src, bytes);
    return p;
}

static void guard_free(guard_page *g) {
    munmap(g->map, g->len);
}

#define GUARD_BYTES 64
#define GUARD_FILL 0xa5

/* Output buffer of `bytes` followed by GUARD_BYTES of a fill pattern; out_guard_ok() checks the pattern. */
static unsigned char *out_alloc(size_t bytes) {
    unsigned char *p = aligned_alloc(64, (bytes + GUARD_BYTES + 63) / 64 * 64);
    memset(p, 0, bytes);
    memset(p + bytes, GUARD_FILL, GUARD_BYTES);
    return p;
}

static int out_guard_ok(const unsigned char *p, size_t bytes) {
    for (size_t i = 0; i < GUARD_BYTES; i++)
        if (p[bytes + i] != GUARD_FILL) return 0;
    return 1;
}

/* A copy of src at 64-byte alignment plus `off` bytes (off < 64); free with free(*base). */
static void *copy_at(void **base, const void *src, size_t bytes, size_t off) {
    *base = aligned_alloc(64, (bytes + off + 63) / 64 * 64 + 64);
    memcpy((char *)*base + off, src, bytes);
    return (char *)*base + off;
}

/* ---- names and shapes ------------------------------------------------------------------------------ */

static const int k_types[] = {HERD_TYPE_F32, HERD_TYPE_F16, HERD_TYPE_BF16, HERD_TYPE_Q8_0, HERD_TYPE_Q4_0};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

static const char *type_name(int type) {
    switch (type) {
    case HERD_TYPE_F32:
        return "f32";
    case HERD_TYPE_F16:
        return "f16";
    case HERD_TYPE_BF16:
        return "bf16";
    case HERD_TYPE_Q8_0:
        return "q8_0";
    case HERD_TYPE_Q4_0:
        return "q4_0";
    default:
        return "?";
    }
}

/* Lengths: every tail size of the 8/16/32/64/128-wide loops appears somewhere, plus Llama-3.1-8B's
 * n_embd (4096) and n_ff (14336) and Llama-2-7B's n_ff (11008). Block types use the multiples of 32. */
static const int64_t k_lengths[] = {1,   2,   3,   7,   8,    9,    15,   16,   17,   31,    32,   33,
                                    63,  64,  65,  96,  100,  127,  128,  129,  160,  192,   224,  255,
                                    256, 257, 288, 320, 1000, 1056, 4096, 4128, 4160, 11008, 14336};
#define N_LENGTHS ((int)(sizeof k_lengths / sizeof k_lengths[0]))

/* Unit of address offsets: the type's alignment (float 4, half 2, blocks 2 because of their f16 scale);
 * offsetting by less would make the reference itself read misaligned scalars. */
static size_t type_align(int type) {
    return type == HERD_TYPE_F32 ? 4 : 2;
}

/* ---- tolerances ------------------------------------------------------------------------------------ */

/* A float summation with at most k roundings on the path of any term (a tree of any shape, FMA counting
 * once) has |computed - exact| <= gamma_k * S, S = sum |term|, gamma_k = k u / (1 - k u), u = 2^-24
 * (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §4.2). Per kernel:
 *   reference f32/f16/bf16: exact products summed in double, then one rounding to float: k <= 1 + n 2^-29
 *   reference q8_0/q4_0:    exact block integers; scale d_w*d_x, term and sequential sum: k <= n/32 + 2
 *   avx2 / avx512 float:    a lane takes <= n/32 (resp. n/64, 2 per bf16 pair) FMAs + <= 4 tail steps,
 *                           then <= 7 levels of accumulator / horizontal adds: k <= n/32 + 11
 *   avx2 / avx512 quant:    scale rounding + per-block FMA (block i in accumulator i mod 2..4) + <= 7 levels
 * Both sides together stay below k = n/16 + 32 for every n. The bound is rigorous and ~sqrt(n) looser than
 * typical random-sign error, yet 10-30x tighter than 1e-5 sqrt(n). Underflow adds at most 2^-149 (half a
 * subnormal step, twice over) per rounding: (n + 64) 2^-149. For quantized types S uses the dequantized
 * values, and fl(d_w d_x) >= (1 - u) d_w d_x only stretches the bound by 1 + u. */
static double dot_tol(int64_t n, double S) {
    return (double)(n / 16 + 32) * 0x1p-24 * S + (double)(n + 64) * 0x1p-149;
}

/* axpy: the reference rounds alpha*x and then the sum; the SIMD kernels use one FMA. Both are within
 * 2u (|y| + |alpha x|) of the exact value, so they differ by at most 4u of it, plus two subnormal steps. */
static double axpy_tol(float y0, float alpha, float x) {
    return 4 * 0x1p-24 * (fabs((double)y0) + fabs((double)alpha * x)) + 0x1p-148;
}

static int is_subnormal(float f) {
    return f != 0 && fabsf(f) < FLT_MIN;
}

/* ---- test data ------------------------------------------------------------------------------------- */

enum { DIST_UNIFORM, DIST_WIDE, DIST_SPARSE, DIST_TINY, DIST_LARGE, DIST_COUNT };
static const char *k_dist_names[DIST_COUNT] = {"uniform", "wide", "sparse", "tiny", "large"};

/* Element i of a row of `type` (f32/f16/bf16): a value drawn from `dist`, stored as the type's bits.
 * HERD_TYPE_Q8_0 asks for f32 values fit for a q8_0 activation: amax <= 127 * 65504 keeps the f16 scale
 * finite (an infinite one times a zero weight scale is NaN in every implementation). */
static void gen_elem(int type, int dist, void *row, int64_t i) {
    float f;
    uint16_t h = 0;
    int tiny_bits = 0;
    switch (dist) {
    case DIST_UNIFORM:
        f = rnd_sym();
        break;
    case DIST_WIDE: /* magnitudes over the type's normal range (kept well away from f16 overflow) */
        f = 1 + (float)rnd_unit(); /* (separate statements: argument evaluation order is unspecified) */
        f = ldexpf(f, type == HERD_TYPE_F16    ? rnd_int(-24, 14)
                      : type == HERD_TYPE_BF16 ? rnd_int(-60, 60)
                      : type == HERD_TYPE_Q8_0 ? rnd_int(-20, 20)
                                               : rnd_int(-40, 40));
        if (rnd_u32() & 1) f = -f;
        break;
    case DIST_SPARSE:
        f = (rnd_u32() % 3) ? 0.0f : rnd_sym();
        break;
    case DIST_TINY: /* subnormals of the type, mixed with zeros and small normals */
        tiny_bits = (rnd_u32() % 4) != 0;
        f = type == HERD_TYPE_F32 ? bits_f32((rnd_u32() & 0x807fffffu)) : rnd_sym() * 1e-3f;
        if (type == HERD_TYPE_Q8_0)
            f = bits_f32((rnd_u32() & 0x807fffffu)) * 0x1p100f; /* ~2^-26, any scale */
        break;
    default: /* DIST_LARGE: big magnitudes the type can still multiply and sum without overflow */
        f = rnd_sym() * (type == HERD_TYPE_F16 ? 60000.0f : type == HERD_TYPE_Q8_0 ? 8e6f : 1e15f);
        break;
    }
    if (type == HERD_TYPE_F32 || type == HERD_TYPE_Q8_0) {
        ((float *)row)[i] = f;
        return;
    }
    if (tiny_bits)
        h = (uint16_t)(rnd_u32() & (type == HERD_TYPE_F16 ? 0x83ffu : 0x807fu)); /* exponent 0 */
    else
        h = type == HERD_TYPE_F16 ? fp32_to_fp16(f) : fp32_to_bf16(f);
    ((uint16_t *)row)[i] = h;
}

/* A random f16 scale in [2^-lo_exp, 2^hi_exp), either sign. */
static uint16_t gen_scale(int lo_exp, int hi_exp) {
    float d = 1 + (float)rnd_unit();
    d = ldexpf(d, rnd_int(lo_exp, hi_exp - 1));
    return fp32_to_fp16((rnd_u32() & 1) ? -d : d);
}

/* Weight rows of quantized types: random scales, random quants over the whole range (q8_0 includes -128,
 * which no quantizer writes but a file may hold), some zero-scale blocks. */
static void gen_q_weights(int type, void *row, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        uint16_t d = (rnd_u32() % 16) ? gen_scale(-16, 2) : 0;
        if (type == HERD_TYPE_Q8_0) {
            block_q8_0 *blk = (block_q8_0 *)row + b;
            blk->d = d;
            for (int j = 0; j < 32; j++) blk->qs[j] = (int8_t)rnd_u32();
        } else {
            block_q4_0 *blk = (block_q4_0 *)row + b;
            blk->d = d;
            for (int j = 0; j < 16; j++) blk->qs[j] = (uint8_t)rnd_u32();
        }
    }
}

/* ---- per-kernel checks ----------------------------------------------------------------------------- */

typedef struct {
    int cases;
    double worst_rel; /* max |diff| / S over cases away from underflow (S > 1e-30, no subnormal input) */
    double worst_tol; /* max |diff| / tolerance over all cases */
} err_stat;

static err_stat g_dot_stat[KERNEL_ISA_COUNT][N_TYPES + 2]; /* + dot_f32, dot_f16_f32 */

static void note_err(err_stat *st, double diff, double S, double tol, int subnormals) {
    st->cases++;
    if (S > 1e-30 && !subnormals && diff / S > st->worst_rel) st->worst_rel = diff / S;
    if (diff / tol > st->worst_tol) st->worst_tol = diff / tol;
}

/* The dot of `type` at `isa` on (w, x) versus the reference, at 4 addresses + a guard-page end, all of
 * which must give the same bits. */
static void check_type_dot(kernel_isa isa, int ti, int64_t n, const void *w, const void *x,
                           const char *what) {
    int type = k_types[ti];
    const kernel_type_ops *ref = kernels_type_isa(type, KERNEL_ISA_REF), *op = kernels_type_isa(type, isa);
    const kernel_type_ops *xref = kernels_type_isa(ref->vec_dot_type, KERNEL_ISA_REF);
    size_t wb = (size_t)kernels_row_bytes(type, n), xb = (size_t)kernels_row_bytes(ref->vec_dot_type, n);

    float r, got;
    ref->dot(n, &r, w, x);
    op->dot(n, &got, w, x);

    float *wf = malloc((size_t)n * sizeof(float)), *xf = malloc((size_t)n * sizeof(float));
    ref->to_f32(w, wf, n);
    xref->to_f32(x, xf, n);
    double S = 0, flushed = 0;
    int subnormals = 0;
    for (int64_t i = 0; i < n; i++) {
        double p = fabs((double)wf[i] * (double)xf[i]);
        S += p;
        if (is_subnormal(wf[i]) || is_subnormal(xf[i])) {
            flushed += p;
            subnormals = 1;
        }
    }
    double tol = dot_tol(n, S);
    /* vdpbf16ps reads subnormal bf16 as 0 and flushes subnormal results: allow exactly those terms plus
     * FLT_MIN per rounding (see kernels_avx512.c) */
    if (type == HERD_TYPE_BF16 && isa == KERNEL_ISA_AVX512) tol += flushed + (double)(n + 64) * 0x1p-126;
    double diff = fabs((double)got - (double)r);
    note_err(&g_dot_stat[isa][ti], diff, S, tol, subnormals);
    CHECK(diff <= tol, "%s %s dot n=%" PRId64 " %s: got %.9g ref %.9g diff %.3g tol %.3g",
          kernels_isa_name(isa), type_name(type), n, what, got, r, diff, tol);

    for (size_t k = 1; k <= 3; k++) {
        void *bw, *bx;
        const void *w2 = copy_at(&bw, w, wb, k * type_align(type));
        const void *x2 = copy_at(&bx, x, xb, (4 - k) * type_align(ref->vec_dot_type));
        float again;
        op->dot(n, &again, w2, x2);
        CHECK(f32_bits(again) == f32_bits(got),
              "%s %s dot n=%" PRId64 " %s: bits differ at offset %zu: %.9g vs %.9g", kernels_isa_name(isa),
              type_name(type), n, what, k, again, got);
        free(bw);
        free(bx);
    }
    guard_page gw, gx;
    const void *w3 = guard_row(&gw, w, wb), *x3 = guard_row(&gx, x, xb);
    float again;
    op->dot(n, &again, w3, x3);
    CHECK(f32_bits(again) == f32_bits(got), "%s %s dot n=%" PRId64 " %s: bits differ at a page end",
          kernels_isa_name(isa), type_name(type), n, what);
    guard_free(&gw);
    guard_free(&gx);
    free(wf);
    free(xf);
}

/* to_f32 of `type` at `isa`: bit-exact, no read past the row, no write past n floats. */
static void check_to_f32(kernel_isa isa, int type, const void *row, int64_t n, const char *what) {
    const kernel_type_ops *ref = kernels_type_isa(type, KERNEL_ISA_REF), *op = kernels_type_isa(type, isa);
    size_t bytes = (size_t)kernels_row_bytes(type, n), ob = (size_t)n * sizeof(float);
    unsigned char *want = out_alloc(ob), *got = out_alloc(ob);
    ref->to_f32(row, (float *)want, n);
    for (size_t k = 0; k < 2; k++) {
        guard_page g;
        void *base = NULL;
        const void *src =
            k == 0 ? guard_row(&g, row, bytes) : copy_at(&base, row, bytes, 3 * type_align(type));
        memset(got, 0, ob);
        op->to_f32(src, (float *)got, n);
        int bad = -1;
        for (int64_t i = 0; i < n && bad < 0; i++)
            if (memcmp(got + 4 * i, want + 4 * i, 4) != 0) bad = (int)i;
        float gv = 0, wv = 0;
        if (bad >= 0) {
            memcpy(&gv, got + 4 * bad, 4);
            memcpy(&wv, want + 4 * bad, 4);
        }
        CHECK(bad < 0, "%s %s to_f32 n=%" PRId64 " %s: element %d is %08x, reference %08x",
              kernels_isa_name(isa), type_name(type), n, what, bad, f32_bits(gv), f32_bits(wv));
        CHECK(out_guard_ok(got, ob), "%s %s to_f32 n=%" PRId64 ": wrote past the end", kernels_isa_name(isa),
              type_name(type), n);
        if (k == 0) guard_free(&g);
        free(base);
    }
    free(want);
    free(got);
}

/* from_f32 of `type` at `isa`: bit-exact, no read past the input, no write past the row. */
static void check_from_f32(kernel_isa isa, int type, const float *src, int64_t n, const char *what) {
    const kernel_type_ops *ref = kernels_type_isa(type, KERNEL_ISA_REF), *op = kernels_type_isa(type, isa);
    size_t bytes = (size_t)kernels_row_bytes(type, n), ib = (size_t)n * sizeof(float);
    unsigned char *want = out_alloc(bytes), *got = out_alloc(bytes);
    ref->from_f32(src, want, n);
    for (size_t k = 0; k < 2; k++) {
        guard_page g;
        void *base = NULL;
        const float *in = k == 0 ? guard_row(&g, src, ib) : copy_at(&base, src, ib, 4 * (k + 1));
        memset(got, 0, bytes);
        op->from_f32(in, got, n);
        int64_t bad = -1;
        for (size_t i = 0; i < bytes && bad < 0; i++)
            if (got[i] != want[i]) bad = (int64_t)i;
        CHECK(bad < 0, "%s %s from_f32 n=%" PRId64 " %s: byte %" PRId64 " is %02x, reference %02x",
              kernels_isa_name(isa), type_name(type), n, what, bad, bad < 0 ? 0 : got[bad],
              bad < 0 ? 0 : want[bad]);
        if (bad >= 0 && type != HERD_TYPE_Q8_0 && type != HERD_TYPE_Q4_0) {
            int64_t e = bad / 2;
            fprintf(stderr, "    input %.9g (%08x)\n", src[e], f32_bits(src[e]));
        }
        CHECK(out_guard_ok(got, bytes), "%s %s from_f32 n=%" PRId64 ": wrote past the end",
              kernels_isa_name(isa), type_name(type), n);
        if (k == 0) guard_free(&g);
        free(base);
    }
    free(want);
    free(got);
}

/* ---- the scalar references against independent computations -------------------------------------- */

__attribute__((target("f16c"))) static float f16c_to_f32(uint16_t h) {
    return _cvtsh_ss(h);
}

__attribute__((target("f16c"))) static uint16_t f16c_from_f32(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

/* vcvtneps2bf16 rounds to nearest even and quiets NaNs as (u >> 16) | 0x40, but reads subnormals as 0 */
__attribute__((target("avx512f,avx512bf16"))) static void cvtne_bf16_16(const float *x, uint16_t *y) {
    __m256i r = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x));
    _mm256_storeu_si256((__m256i *)y, r);
}

/* fp16_to_fp32 by definition: (-1)^s 2^(e-15) (1 + m/1024), subnormals 2^-14 (m/1024). */
static float f16_by_ldexp(uint16_t h, int *is_nan) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    *is_nan = e == 31 && m != 0;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return (float)(s ? -v : v);
}

/* fp32_to_bf16 by definition for non-NaN input: of the two bf16 neighbours (truncation and the next one
 * away from zero, where the step past the largest finite value is 2^128 = infinity), the nearer, ties to
 * the even one. Differences are exact in double. */
static uint16_t bf16_by_definition(float f) {
    uint32_t u = f32_bits(f), lo = u & 0xffff0000u, hi = lo + 0x10000u;
    if ((u & 0x7fffffff) == 0x7f800000) return (uint16_t)(u >> 16);
    double a = fabs((double)f), al = fabs((double)bits_f32(lo));
    double ah = ((hi & 0x7f800000u) == 0x7f800000u) ? ldexp(1, 128) : fabs((double)bits_f32(hi));
    double dl = a - al, dh = ah - a;
    if (dl < dh || (dl == dh && !((lo >> 16) & 1))) return (uint16_t)(lo >> 16);
    return (uint16_t)(hi >> 16);
}

/* Floats that stress f16 and bf16 rounding: specials, the f16 overflow edge, subnormal edges, every
 * midpoint between neighbouring f16 / bf16 values and the floats right next to those midpoints, and
 * random bit patterns (NaN payloads included). Returns the count; *out is malloc'd. */
static int64_t conversion_inputs(float **out) {
    static const uint32_t special[] = {
        0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001,
        0x7fa00000, 0x7fbfffff, 0x7fffffff, 0xffffffff, 0x7f802000, 0x7f801fff, 0x7f7fffff, 0xff7fffff,
        0x00000001, 0x80000001, 0x007fffff, 0x00800000, 0x00008000, 0x00007fff, 0x00018000, 0x7f7f8000,
        0x7f7f7fff, 0x7f7f8001, 0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0x47800000, 0xc77ff000,
        0x38800000, 0x387fffff, 0x387fe000, 0x387ff000, 0x33800000, 0x33000000, 0x33000001, 0x32ffffff,
        0x33c00000, 0x33a00000, 0x34000000, 0x3f800000, 0x3f801000, 0x3f803000, 0x3f808000, 0x3f818000,
    };
    int64_t ns = (int64_t)(sizeof special / sizeof special[0]), cap = ns + 6 * 65536 + (1 << 18), k = 0;
    float *v = malloc((size_t)cap * sizeof(float));
    for (int64_t i = 0; i < ns; i++) v[k++] = bits_f32(special[i]);
    for (uint32_t h = 0; h < 0x7c00; h++) { /* positive finite f16 and their upper midpoint */
        uint16_t s = (rnd_u32() & 1) ? 0x8000 : 0;
        double next = h == 0x7bff ? 65536.0 : (double)fp16_to_fp32((uint16_t)(h + 1)); /* inf: 2^16 */
        float m = (float)(((double)fp16_to_fp32((uint16_t)h) + next) / 2);
        if (s) m = -m;
        v[k++] = m;
        v[k++] = nextafterf(m, 0);
        v[k++] = nextafterf(m, s ? -INFINITY : INFINITY);
    }
    for (uint32_t h = 0; h < 0x7f80; h++) { /* bf16 midpoints are the floats with low half 0x8000 */
        uint32_t s = (rnd_u32() & 1) ? 0x80000000u : 0;
        v[k++] = bits_f32(s | (h << 16) | 0x8000);
        v[k++] = bits_f32(s | (h << 16) | 0x7fff);
        v[k++] = bits_f32(s | (h << 16) | 0x8001);
    }
    while (k < cap) v[k++] = bits_f32(rnd_u32());
    *out = v;
    return k;
}

static void test_reference_conversions(const float *vals, int64_t nvals) {
    /* kernels.c requires F16C for avx2 and AVX512-BF16 for avx512 (clang 14 has no "f16c" for
     * __builtin_cpu_supports, so ask the library instead) */
    int have_f16c = kernels_isa_supported(KERNEL_ISA_AVX2);
    int have_bf16 = kernels_isa_supported(KERNEL_ISA_AVX512);
    int bad_ldexp = 0, bad_f16c = 0, bad_bf16_lo = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        int is_nan;
        float want = f16_by_ldexp((uint16_t)h, &is_nan), got = fp16_to_fp32((uint16_t)h);
        uint32_t gb = f32_bits(got);
        /* NaN: same sign, all-ones exponent, the payload shifted up by 13 */
        int ok = is_nan ? (gb == (((h & 0x8000u) << 16) | 0x7f800000u | ((h & 0x3ffu) << 13)))
                        : f32_bits(want) == gb;
        bad_ldexp += !ok;
        /* vcvtph2ps quiets signaling NaNs (sets bit 22); the reference keeps them signaling */
        int snan = is_nan && !(h & 0x200);
        if (have_f16c) bad_f16c += (f32_bits(f16c_to_f32((uint16_t)h)) & ~(snan ? 0x00400000u : 0)) != gb;
        bad_bf16_lo += f32_bits(bf16_to_fp32((uint16_t)h)) != h << 16;
    }
    CHECK(bad_ldexp == 0, "fp16_to_fp32 differs from the ldexp definition on %d of 65536 halves", bad_ldexp);
    CHECK(bad_f16c == 0, "fp16_to_fp32 differs from vcvtph2ps (up to the sNaN quiet bit) on %d halves",
          bad_f16c);
    CHECK(bad_bf16_lo == 0, "bf16_to_fp32 is not the top-half shift on %d values", bad_bf16_lo);

    /* fp32_to_fp16 vs the F16C instruction: the stress values plus every 251st float bit pattern */
    int64_t bad16 = 0, tried = 0;
    uint32_t first_bad = 0;
    if (have_f16c) {
        for (int64_t i = 0; i < nvals; i++, tried++)
            if (fp32_to_fp16(vals[i]) != f16c_from_f32(vals[i]) && !bad16++) first_bad = f32_bits(vals[i]);
        for (uint64_t u = 0; u < (1ull << 32); u += 251, tried++)
            if (fp32_to_fp16(bits_f32((uint32_t)u)) != f16c_from_f32(bits_f32((uint32_t)u)) && !bad16++)
                first_bad = (uint32_t)u;
        CHECK(bad16 == 0,
              "fp32_to_fp16 differs from vcvtps2ph on %" PRId64 " of %" PRId64 " floats, first %08x", bad16,
              tried, first_bad);
    } else {
        printf("  note: no F16C on this CPU, fp16 reference checked against ldexp only\n");
    }

    /* fp32_to_bf16 vs the definition (non-NaN), NaN handling (stays NaN, sign and top payload bits kept,
     * quiet bit set), and vs vcvtneps2bf16 on everything but subnormals */
    int64_t badb = 0, badnan = 0, badcvt = 0;
    uint32_t first_b = 0, first_c = 0;
    for (int64_t i = 0; i < nvals; i++) {
        uint32_t u = f32_bits(vals[i]);
        uint16_t got = fp32_to_bf16(vals[i]);
        if (isnan(vals[i])) {
            badnan += !((got & 0x7f80) == 0x7f80 && (got & 0x40) && (got >> 15) == (u >> 31) &&
                        (got & 0x3f) == ((u >> 16) & 0x3f));
        } else if (got != bf16_by_definition(vals[i]) && !badb++) {
            first_b = u;
        }
    }
    for (uint64_t u = 0; u < (1ull << 32); u += 4093) {
        float f = bits_f32((uint32_t)u);
        if (!isnan(f) && fp32_to_bf16(f) != bf16_by_definition(f) && !badb++) first_b = (uint32_t)u;
    }
    CHECK(badb == 0, "fp32_to_bf16 differs from round-to-nearest-even on %" PRId64 " floats, first %08x",
          badb, first_b);
    CHECK(badnan == 0, "fp32_to_bf16 mishandles %" PRId64 " NaNs", badnan);
    if (have_bf16) {
        for (int64_t i = 0; i + 16 <= nvals; i += 16) {
            uint16_t hw[16];
            cvtne_bf16_16(vals + i, hw);
            for (int j = 0; j < 16; j++)
                if (!is_subnormal(vals[i + j]) && hw[j] != fp32_to_bf16(vals[i + j]) && !badcvt++)
                    first_c = f32_bits(vals[i + j]);
        }
        CHECK(badcvt == 0, "fp32_to_bf16 differs from vcvtneps2bf16 on %" PRId64 " normal floats, first %08x",
              badcvt, first_c);
    }
    printf("reference conversions: 65536 halves, %" PRId64 " floats to f16, %" PRId64 " to bf16 checked\n",
           tried, nvals + (int64_t)((1ull << 32) / 4093));
}

/* ---- per-ISA test groups --------------------------------------------------------------------------- */

static void test_conversions(kernel_isa isa, const float *vals, int64_t nvals) {
    /* f16 / bf16 to_f32: all 65536 patterns in one row, then ragged slices of a shuffled copy */
    uint16_t *all = malloc(65536 * 2), *shuf = malloc(65536 * 2);
    for (uint32_t h = 0; h < 65536; h++) all[h] = shuf[h] = (uint16_t)h;
    for (uint32_t h = 65535; h > 0; h--) {
        uint32_t j = rnd_u32() % (h + 1);
        uint16_t t = shuf[h];
        shuf[h] = shuf[j];
        shuf[j] = t;
    }
    for (int t = 0; t < 2; t++) {
        int type = t ? HERD_TYPE_BF16 : HERD_TYPE_F16;
        check_to_f32(isa, type, all, 65536, "all patterns");
        for (int li = 0; li < N_LENGTHS; li++)
            check_to_f32(isa, type, shuf + 1000 * li, k_lengths[li], "shuffled");
    }
    free(all);
    free(shuf);

    /* f16 / bf16 / f32 from_f32: every stress value (in one long row), then ragged slices */
    for (int t = 0; t < 3; t++) {
        int type = t == 0 ? HERD_TYPE_F16 : t == 1 ? HERD_TYPE_BF16 : HERD_TYPE_F32;
        check_from_f32(isa, type, vals, nvals, "stress values");
        for (int li = 0; li < N_LENGTHS; li++)
            check_from_f32(isa, type, vals + 7919 * li, k_lengths[li], "stress slice");
    }

    /* q8_0 / q4_0 to_f32: random blocks, scales over all 16-bit patterns (inf and NaN included) */
    for (int li = 0; li < N_LENGTHS; li++) {
        int64_t n = k_lengths[li];
        if (n % 32) continue;
        for (int t = 0; t < 2; t++) {
            int type = t ? HERD_TYPE_Q4_0 : HERD_TYPE_Q8_0;
            size_t bytes = (size_t)kernels_row_bytes(type, n);
            unsigned char *row = malloc(bytes);
            gen_q_weights(type, row, n);
            for (int64_t b = 0; b < n / 32; b++) {
                uint16_t d = (uint16_t)rnd_u32();
                memcpy(row + b * (t ? sizeof(block_q4_0) : sizeof(block_q8_0)), &d, 2);
            }
            check_to_f32(isa, type, row, n, "random blocks");
            free(row);
        }
    }
}

/* q8_0 quantization, bit-exact. Blocks of several kinds: random at scales 2^-100..2^100, exact ties
 * (amax = 127 * 2^e so d = 2^e and x / d = k + 1/2 for every k in -127..126) and the floats either side
 * of those ties, all-zero blocks, subnormals under a normal amax, amax near FLT_MAX (d overflows f16),
 * and amax ~5e-37 (d an f32 subnormal). Inputs whose 1/d overflows are left out: the reference then
 * converts inf to int8, which is undefined. */
static void fill_q8_block(float *x, int64_t b) {
    int kind = (int)(b % 7);
    int e = rnd_int(-20, 20);
    for (int j = 0; j < 32; j++) {
        switch (kind) {
        case 0:
            x[j] = rnd_sym();
            x[j] *= ldexpf(1, rnd_int(-100, 100));
            break;
        case 1:
        case 2: {
            int k = (int)((b * 31 + j) % 254) - 127; /* sweeps every k over the blocks */
            float t = ldexpf((float)k + 0.5f, e);
            x[j] = kind == 1 ? t : nextafterf(t, (j & 1) ? INFINITY : -INFINITY);
            break;
        }
        case 3:
            x[j] = (j & 1) ? -0.0f : 0.0f;
            break;
        case 4:
            x[j] = bits_f32(rnd_u32() & 0x807fffffu);
            break;
        case 5:
            x[j] = rnd_sym() * 3.4e38f;
            break;
        default:
            x[j] = rnd_sym() * 5e-37f;
            break; /* d = amax / 127 an f32 subnormal, 1 / d still finite */
        }
    }
    if (kind == 1 || kind == 2 || kind == 4 || kind == 6) {
        int j = rnd_int(0, 31);
        x[j] = kind == 4 ? 1e-30f : kind == 6 ? -5e-37f : ldexpf((rnd_u32() & 1) ? -127.0f : 127.0f, e);
    }
}

static void test_quantize(kernel_isa isa) {
    for (int li = 0; li < N_LENGTHS; li++) {
        int64_t n = k_lengths[li];
        if (n % 32) continue;
        float *x = malloc((size_t)n * sizeof(float));
        for (int64_t b = 0; b < n / 32; b++) fill_q8_block(x + 32 * b, b + li);
        check_from_f32(isa, HERD_TYPE_Q8_0, x, n, "mixed blocks");
        check_from_f32(isa, HERD_TYPE_Q4_0, x, n, "mixed blocks");
        free(x);
    }
}

static void test_dots(kernel_isa isa) {
    for (int ti = 0; ti < N_TYPES; ti++) {
        int type = k_types[ti];
        const kernel_type_ops *ref = kernels_type_isa(type, KERNEL_ISA_REF);
        for (int li = 0; li < N_LENGTHS; li++) {
            int64_t n = k_lengths[li];
            if (n % ref->block) continue;
            size_t wb = (size_t)kernels_row_bytes(type, n),
                   xb = (size_t)kernels_row_bytes(ref->vec_dot_type, n);
            void *w = malloc(wb), *x = malloc(xb);
            float *xf = malloc((size_t)n * sizeof(float));
            for (int dist = 0; dist < DIST_COUNT; dist++) {
                if (ref->block == 1) {
                    for (int64_t i = 0; i < n; i++) {
                        gen_elem(type, dist, w, i);
                        gen_elem(type, dist, x, i);
                    }
                    check_type_dot(isa, ti, n, w, x, k_dist_names[dist]);
                    continue;
                }
                /* quantized: random weight blocks; the activation quantized by this ISA's from_f32 (which
                 * matches the reference bit for bit, checked elsewhere) from data of each distribution */
                gen_q_weights(type, w, n);
                for (int64_t i = 0; i < n; i++) gen_elem(HERD_TYPE_Q8_0, dist, xf, i);
                if (dist == DIST_SPARSE) /* activations of very different scale from block to block */
                    for (int64_t i = 0; i < n; i++) xf[i] *= ldexpf(1, (int)(i / 32 % 40) - 20);
                kernels_type_isa(ref->vec_dot_type, isa)->from_f32(xf, x, n);
                check_type_dot(isa, ti, n, w, x, k_dist_names[dist]);
            }
            /* raw activation bytes: -127..127 (all a quantizer can write) for every ISA, the full int8
             * range (-128 too) where the kernel is exact for it (not avx2's sign trick, see there) */
            if (ref->block != 1) {
                for (int full = 0; full < 2; full++) {
                    if (full && isa == KERNEL_ISA_AVX2) continue;
                    gen_q_weights(type, w, n);
                    block_q8_0 *xb8 = x;
                    for (int64_t b = 0; b < n / 32; b++) {
                        xb8[b].d = gen_scale(-16, 2);
                        for (int j = 0; j < 32; j++)
                            xb8[b].qs[j] =
                                (int8_t)(full ? (int)(rnd_u32() & 0xff) - 128 : rnd_int(-127, 127));
                    }
                    /* all extremes at once: the largest possible block sums */
                    if (n >= 64)
                        for (int j = 0; j < 32; j++) xb8[1].qs[j] = full ? -128 : -127;
                    check_type_dot(isa, ti, n, w, x, full ? "raw int8 incl. -128" : "raw int8");
                }
            }
            free(w);
            free(x);
            free(xf);
        }
    }
}

static void test_vec_ops(kernel_isa isa) {
    const kernel_vec_ops *ref = kernels_vec_isa(KERNEL_ISA_REF), *op = kernels_vec_isa(isa);
    for (int li = 0; li < N_LENGTHS; li++) {
        int64_t n = k_lengths[li];
        size_t fb = (size_t)n * sizeof(float), hb = (size_t)n * 2;
        float *a = malloc(fb), *b = malloc(fb), *y0 = malloc(fb), *yr = malloc(fb);
        uint16_t *h = malloc(hb);
        for (int dist = 0; dist < DIST_COUNT; dist++) {
            for (int64_t i = 0; i < n; i++) {
                gen_elem(HERD_TYPE_F32, dist, a, i);
                gen_elem(HERD_TYPE_F32, dist, b, i);
                gen_elem(HERD_TYPE_F16, dist, h, i);
                y0[i] = rnd_sym();
            }
            /* dot_f32 and dot_f16_f32 */
            for (int f = 0; f < 2; f++) {
                const void *av = f ? (const void *)h : (const void *)a;
                float r = f ? ref->dot_f16_f32(n, h, b) : ref->dot_f32(n, a, b);
                float got = f ? op->dot_f16_f32(n, h, b) : op->dot_f32(n, a, b);
                double S = 0;
                int subnormals = 0;
                for (int64_t i = 0; i < n; i++) {
                    float ai = f ? fp16_to_fp32(h[i]) : a[i];
                    S += fabs((double)ai * (double)b[i]);
                    subnormals |= is_subnormal(ai) || is_subnormal(b[i]);
                }
                double diff = fabs((double)got - (double)r), tol = dot_tol(n, S);
                note_err(&g_dot_stat[isa][N_TYPES + f], diff, S, tol, subnormals);
                CHECK(diff <= tol, "%s %s n=%" PRId64 " %s: got %.9g ref %.9g diff %.3g tol %.3g",
                      kernels_isa_name(isa), f ? "dot_f16_f32" : "dot_f32", n, k_dist_names[dist], got, r,
                      diff, tol);
                guard_page ga, gb;
                const void *a2 = guard_row(&ga, av, f ? hb : fb);
                const float *b2 = guard_row(&gb, b, fb);
                float again = f ? op->dot_f16_f32(n, a2, b2) : op->dot_f32(n, a2, b2);
                CHECK(f32_bits(again) == f32_bits(got), "%s %s n=%" PRId64 ": bits differ at another address",
                      kernels_isa_name(isa), f ? "dot_f16_f32" : "dot_f32", n);
                guard_free(&ga);
                guard_free(&gb);
            }
            /* axpy_f32 and axpy_f16: x at a page end, y with guard bytes after it */
            for (int f = 0; f < 2; f++) {
                float alpha = rnd_sym() * 4;
                memcpy(yr, y0, fb);
                if (f)
                    ref->axpy_f16(n, alpha, h, yr);
                else
                    ref->axpy_f32(n, alpha, a, yr);
                float *y = (float *)out_alloc(fb);
                memcpy(y, y0, fb);
                guard_page gx;
                const void *xv = guard_row(&gx, f ? (const void *)h : (const void *)a, f ? hb : fb);
                if (f)
                    op->axpy_f16(n, alpha, xv, y);
                else
                    op->axpy_f32(n, alpha, xv, y);
                int64_t bad = -1;
                for (int64_t i = 0; i < n && bad < 0; i++) {
                    float xi = f ? fp16_to_fp32(h[i]) : a[i];
                    if (!(fabs((double)y[i] - (double)yr[i]) <= axpy_tol(y0[i], alpha, xi))) bad = i;
                }
                CHECK(bad < 0, "%s %s n=%" PRId64 " %s: y[%" PRId64 "] = %.9g, reference %.9g",
                      kernels_isa_name(isa), f ? "axpy_f16" : "axpy_f32", n, k_dist_names[dist], bad,
                      bad < 0 ? 0 : y[bad], bad < 0 ? 0 : yr[bad]);
                CHECK(out_guard_ok((unsigned char *)y, fb), "%s %s n=%" PRId64 ": wrote past the end",
                      kernels_isa_name(isa), f ? "axpy_f16" : "axpy_f32", n);
                guard_free(&gx);
                free(y);
            }
        }
        free(a);
        free(b);
        free(y0);
        free(yr);
        free(h);
    }
}

/* read_sum: the exact wrapping sum of the 64-bit words at any length (a multiple of 8), never reading
 * past the end (each row placed at a page end, so most lengths also start it off 64-byte alignment) */
static void test_read_sum(kernel_isa isa) {
    const kernel_vec_ops *op = kernels_vec_isa(isa);
    const int64_t lens[] = {0, 8, 120, 128, 136, 248, 256, 264, 1000, 4096, 4104, 65536 + 56};
    uint8_t *buf = malloc(65536 + 64);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int64_t n = lens[li];
        uint64_t want = 0; /* words k + 1, every other one with its top bits set: the sum wraps */
        for (int64_t k = 0; k < n / 8; k++) {
            uint64_t v = (uint64_t)(k + 1) | (k & 1 ? 0xF000000000000000ull : 0);
            memcpy(buf + 8 * k, &v, 8);
            want += v;
        }
        guard_page g;
        const void *p = guard_row(&g, buf, (size_t)n);
        uint64_t got = op->read_sum(p, n), ref = kernels_vec_isa(KERNEL_ISA_REF)->read_sum(p, n);
        CHECK(got == want && ref == want,
              "%s read_sum n=%" PRId64 ": got %" PRIu64 ", reference %" PRIu64 ", expected %" PRIu64,
              kernels_isa_name(isa), n, got, ref, want);
        guard_free(&g);
    }
    free(buf);
}

/* argmax_f32: the reference's index (the plain scan's: first of equal maxima, NaN never wins unless it is
 * x[0]) on ragged lengths, with ties, NaNs, infinities and signed zeros, never reading past the end */
static void test_argmax(kernel_isa isa) {
    const kernel_vec_ops *op = kernels_vec_isa(isa), *ref = kernels_vec_isa(KERNEL_ISA_REF);
    const int64_t lens[] = {1, 2, 15, 16, 17, 63, 64, 65, 100, 1000, 128256};
    float *x = malloc(128256 * sizeof *x);
    int bad = 0, runs = 0;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int64_t n = lens[li];
        for (int kind = 0; kind < 8; kind++) {
            for (int64_t i = 0; i < n; i++) /* kind 0: distinct; else few values, many ties */
                x[i] = kind == 0 ? tu_sym() : (float)(tu_u64() % 5) - 4.0f;
            int64_t at = (int64_t)(tu_u64() % (uint64_t)n);
            if (kind == 2) { /* NaNs everywhere, also after the one maximum in its lane of any vector width */
                for (int64_t i = 1; i < n; i++) x[i] = tu_u64() % 4 ? x[i] : NAN;
                x[at] = 50.0f;
            }
            if (kind == 3) x[0] = NAN;                               /* a NaN first: index 0 */
            if (kind == 4) x[at] = INFINITY, x[n - 1] = INFINITY;    /* tied infinities */
            if (kind == 5) for (int64_t i = 0; i < n; i++) x[i] = i % 3 ? -0.0f : 0.0f; /* signed zeros tie */
            if (kind == 6) for (int64_t i = 0; i < n; i++) x[i] = -INFINITY;
            if (kind == 7) x[n - 1] = 9.0f;                          /* the last one */
            guard_page g;
            const float *p = guard_row(&g, x, (size_t)n * sizeof *x);
            int64_t got = op->argmax_f32(n, p), want = ref->argmax_f32(n, p);
            int64_t scan = 0;
            for (int64_t i = 1; i < n; i++)
                if (p[i] > p[scan]) scan = i;
            if (got != want || want != scan) {
                if (bad++ < 5)
                    fprintf(stderr, "  %s argmax n=%" PRId64 " kind %d: got %" PRId64 ", reference %" PRId64
                                    ", scan %" PRId64 "\n",
                            kernels_isa_name(isa), n, kind, got, want, scan);
            }
            runs++;
            guard_free(&g);
        }
    }
    CHECK(bad == 0, "%s argmax_f32: %d of %d cases differ from the reference", kernels_isa_name(isa), bad, runs);
    free(x);
}

int main(void) {
    float *vals;
    int64_t nvals = conversion_inputs(&vals);
    test_reference_conversions(vals, nvals);

    for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
        if (!kernels_isa_supported((kernel_isa)isa)) {
            printf("%s: not supported by this CPU, skipped\n", kernels_isa_name((kernel_isa)isa));
            continue;
        }
        int before = tu_failed;
        test_conversions((kernel_isa)isa, vals, nvals);
        test_quantize((kernel_isa)isa);
        test_dots((kernel_isa)isa);
        test_vec_ops((kernel_isa)isa);
        test_read_sum((kernel_isa)isa);
        test_argmax((kernel_isa)isa);
        printf("%s: %s\n", kernels_isa_name((kernel_isa)isa), tu_failed == before ? "ok" : "FAILED");
        for (int t = 0; t < N_TYPES + 2; t++) {
            err_stat *st = &g_dot_stat[isa][t];
            const char *name = t < N_TYPES ? type_name(k_types[t]) : t == N_TYPES ? "dot_f32" : "dot_f16_f32";
            printf("  %-12s %4d dots: worst |diff| / sum|w*x| %.2e (normal-range data), worst |diff| / tol "
                   "%.3f\n",
                   name, st->cases, st->worst_rel, st->worst_tol);
        }
    }
    free(vals);
    return TU_DONE("test_kernels");
}
