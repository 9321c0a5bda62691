/* K-quants (src/kernels/kquants.h): the formats and quantizers against llama.cpp, every SIMD variant
 * against the scalar reference.
 *
 *   golden     hashes of llama.cpp's own output, computed by tests/tools/kquants_golden.c (which links
 *              llama.cpp's ggml-quants.c from the node-llama-cpp source bundle) on the data generated
 *              below: dequantization of random blocks of every K type, q8_K quantization of activations,
 *              and llama.cpp's weight quantizers (q2_K..q6_K, q4_0, q8_0) on normal and Student-t(3)
 *              weights. herd's dequantizers, row_quantize_q8_K_ref, kq_quantize_row_llama (the first
 *              stage of herd's K quantizers) and row_quantize_q4_0/q8_0_ref must give the same bits.
 *   quality    herd's quantizers vs llama.cpp's algorithm (proven bit-identical by the golden hashes):
 *              NMSE = sum (x - x')^2 / sum x^2 of the dequantized row, on normal and heavy-tailed
 *              weights; herd's must be <= llama.cpp's in every super-block. Printed as a table.
 *   reference  the reference dot equals the double-precision sum of dequantized products within
 *              dot_tol; q8_K invariants (|q| <= 127, bsums = group sums, |x - d q| <= |d| / 2).
 *   ISAs       every AVX2 / AVX-512 kernel of the K slots against the reference: conversions (to_f32 of
 *              every type, from_f32 of q8_K and of the weight types) bit-exact, dots within dot_tol, on
 *              ragged super-block counts, at 4 addresses and ending at a PROT_NONE page (same bits
 *              everywhere, no read past the row), no write past the output, same bits when repeated.
 * Exit status 0 pass, 1 fail.
 */
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
#include "kernels/kquants.h"
#include "kernels/types.h"
#include "testutil.h"

/* ---- golden values (tests/tools/kquants_golden.c; see there how to recompute) ----------------------- */

static const uint64_t k_golden_dequant[5] = {0x75e629591a6b9f50ull, 0x9c892476e47935f8ull, 0x3bf275bae00997acull,
                                             0xf52b5abae47233c1ull, 0x07c79da0023e87baull};
static const uint64_t k_golden_q8_K = 0x9fa892ef84192727ull;
static const uint64_t k_golden_quant[2][7] = {
    {0x848e6fea5fbfed3eull, 0x0efdd1ac0d0da8a5ull, 0xf5cbf6b2500eecaaull, 0xfc747a730033be5cull,
     0xe025065a51db7d18ull, 0xc9d474c5a58dc1dbull, 0x118a01d7d04b1fc5ull},
    {0x3eaa32535ab831d9ull, 0x5b5bbad70a8824c1ull, 0x1cd3aa113550911eull, 0xb26eaeadd98165b2ull,
     0xbd51442b6099d5afull, 0x3ea5b8cfe24b0e06ull, 0xbbc89909242f2954ull}};

/* ---- generators (identical to tests/tools/kquants_golden.c: IEEE operations only, no libm) ----------- */

static uint64_t g_rng;

static uint64_t rnd_u64(void) {
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd_unit(void) {
    return (double)(rnd_u64() >> 11) * 0x1p-53;
}

static double rnd_normal(void) { /* Irwin-Hall: 12 uniforms - 6 */
    double s = 0;
    for (int i = 0; i < 12; i++) s += rnd_unit();
    return s - 6;
}

static double rnd_t3(void) { /* Student-t(3): heavy tails (outliers 10-50 sigma occur) */
    double z = rnd_normal(), c = 0;
    for (int i = 0; i < 3; i++) {
        double u = rnd_normal();
        c += u * u;
    }
    return z / sqrt(c / 3 + 1e-12);
}

static uint16_t rnd_f16_scale(void) { /* a normal half in [2^-14, 2^5), random sign */
    uint16_t e = (uint16_t)(1 + rnd_u64() % 20), m = (uint16_t)(rnd_u64() & 0x3ff);
    return (uint16_t)(((rnd_u64() & 1) << 15) | (e << 10) | m);
}

static const int k_types[5] = {HERD_TYPE_Q2_K, HERD_TYPE_Q3_K, HERD_TYPE_Q4_K, HERD_TYPE_Q5_K, HERD_TYPE_Q6_K};
static const char *k_names[5] = {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};
static const size_t k_bytes[5] = {sizeof(block_q2_K), sizeof(block_q3_K), sizeof(block_q4_K),
                                  sizeof(block_q5_K), sizeof(block_q6_K)};

/* nb random blocks of K type ti: random bytes, then sane f16 scales (dmin non-negative) */
static void gen_blocks(int ti, void *dst, int nb) {
    uint8_t *p = dst;
    for (size_t i = 0; i < (size_t)nb * k_bytes[ti]; i++) p[i] = (uint8_t)rnd_u64();
    for (int b = 0; b < nb; b++) {
        uint8_t *blk = p + (size_t)b * k_bytes[ti];
        uint16_t d = rnd_f16_scale(), dmin = (uint16_t)(rnd_f16_scale() & 0x7fff);
        switch (k_types[ti]) {
        case HERD_TYPE_Q2_K: memcpy(&((block_q2_K *)blk)->d, &d, 2), memcpy(&((block_q2_K *)blk)->dmin, &dmin, 2); break;
        case HERD_TYPE_Q3_K: memcpy(&((block_q3_K *)blk)->d, &d, 2); break;
        case HERD_TYPE_Q4_K: memcpy(&((block_q4_K *)blk)->d, &d, 2), memcpy(&((block_q4_K *)blk)->dmin, &dmin, 2); break;
        case HERD_TYPE_Q5_K: memcpy(&((block_q5_K *)blk)->d, &d, 2), memcpy(&((block_q5_K *)blk)->dmin, &dmin, 2); break;
        default: memcpy(&((block_q6_K *)blk)->d, &d, 2); break;
        }
    }
}

static void gen_weights(int dist, float *x, int64_t n) { /* dist 0 normal, 1 Student-t(3) */
    for (int64_t i = 0; i < n; i++) x[i] = (float)(0.02 * (dist ? rnd_t3() : rnd_normal()));
}

static void gen_acts(float *x, int64_t n) { /* blocks at scales 2^-20..2^20, block 5 all zero */
    for (int64_t b = 0; b < n / 256; b++) {
        double s = ldexp(1, (int)(rnd_u64() % 41) - 20);
        for (int i = 0; i < 256; i++) x[256 * b + i] = b == 5 ? 0.0f : (float)(s * rnd_normal());
    }
}

static uint64_t fnv(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#define GNB 64
#define GN (GNB * QK_K)

/* ---- golden: herd's layouts and quantizers are llama.cpp's ------------------------------------------ */

static void test_golden(void) {
    static uint8_t blocks[GN * 2];
    static float x[GN], y[GN];
    g_rng = 1;
    for (int t = 0; t < 5; t++) {
        gen_blocks(t, blocks, GNB);
        kernels_type_isa(k_types[t], KERNEL_ISA_REF)->to_f32(blocks, y, GN);
        CHECK(fnv(y, sizeof y) == k_golden_dequant[t], "%s dequantization differs from llama.cpp's", k_names[t]);
    }
    g_rng = 2;
    gen_acts(x, GN);
    memset(blocks, 0, sizeof blocks);
    row_quantize_q8_K_ref(x, blocks, GN);
    CHECK(fnv(blocks, GNB * sizeof(block_q8_K)) == k_golden_q8_K, "q8_K quantization differs from llama.cpp's");

    const size_t qbytes[7] = {84, 110, 144, 176, 210, 144, 272}; /* per 256 elements */
    const char *qnames[7] = {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q4_0", "q8_0"};
    for (int dist = 0; dist < 2; dist++) {
        g_rng = 3 + (uint64_t)dist;
        gen_weights(dist, x, GN);
        for (int t = 0; t < 7; t++) {
            memset(blocks, 0, sizeof blocks);
            if (t < 5) kq_quantize_row_llama(k_types[t], x, blocks, GN);
            else if (t == 5) row_quantize_q4_0_ref(x, blocks, GN);
            else row_quantize_q8_0_ref(x, blocks, GN);
            CHECK(fnv(blocks, GNB * qbytes[t]) == k_golden_quant[dist][t],
                  "%s: %s quantization (llama.cpp's algorithm) differs from llama.cpp's output", qnames[t],
                  dist ? "Student-t" : "normal");
        }
    }
    printf("golden: dequantization of 5 K types, q8_K, 7 quantizers x 2 distributions checked against "
           "llama.cpp's output\n");
}

/* ---- quality: herd's quantizers vs llama.cpp's algorithm ---------------------------------------------- */

typedef void (*quant_fn)(const float *, void *, int64_t);

/* sum over a row's elements [e0, e1) of (x - x')^2 */
static double sq_err(const float *x, const float *y, int64_t e0, int64_t e1) {
    double s = 0;
    for (int64_t i = e0; i < e1; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return s;
}

static void test_quality(void) {
    const int64_t n = 256 * QK_K; /* 65536 weights per distribution */
    float *x = malloc((size_t)n * sizeof(float)), *yh = malloc((size_t)n * sizeof(float)),
          *yl = malloc((size_t)n * sizeof(float));
    void *bh = malloc((size_t)n * 2), *bl = malloc((size_t)n * 2);
    printf("quantization error, NMSE = sum (x - x')^2 / sum x^2 over %" PRId64 " weights:\n", n);
    printf("  %-5s %-10s %12s %12s %7s\n", "type", "weights", "herd", "llama.cpp", "ratio");
    for (int dist = 0; dist < 2; dist++) {
        g_rng = 100 + (uint64_t)dist;
        gen_weights(dist, x, n);
        double sx = 0;
        for (int64_t i = 0; i < n; i++) sx += (double)x[i] * x[i];
        for (int t = 0; t < 7; t++) {
            int type = t < 5 ? k_types[t] : t == 5 ? HERD_TYPE_Q4_0 : HERD_TYPE_Q8_0;
            const kernel_type_ops *o = kernels_type_isa(type, KERNEL_ISA_REF);
            o->from_f32(x, bh, n);
            o->to_f32(bh, yh, n);
            if (t < 5) kq_quantize_row_llama(type, x, bl, n);
            else o->from_f32(x, bl, n); /* q4_0 / q8_0: herd's quantizer is llama.cpp's (golden above) */
            o->to_f32(bl, yl, n);
            int worse = 0;
            for (int64_t b = 0; b < n / QK_K; b++)
                worse += sq_err(x, yh, b * QK_K, (b + 1) * QK_K) > sq_err(x, yl, b * QK_K, (b + 1) * QK_K);
            double eh = sq_err(x, yh, 0, n) / sx, el = sq_err(x, yl, 0, n) / sx;
            CHECK(worse == 0, "%s %s: herd's error exceeds llama.cpp's in %d super-blocks", herd_type_name(type),
                  dist ? "Student-t" : "normal", worse);
            CHECK(eh <= el && isfinite(eh), "%s: NMSE %.4e > llama.cpp's %.4e", herd_type_name(type), eh, el);
            printf("  %-5s %-10s %12.4e %12.4e %7.4f\n", herd_type_name(type), dist ? "Student-t3" : "normal", eh,
                   el, eh / el);
        }
    }
    free(x), free(yh), free(yl), free(bh), free(bl);
}

/* ---- reference dots and q8_K ------------------------------------------------------------------------ */

/* A float summation with at most k roundings on the path of any term has |error| <= k u S, u = 2^-24,
 * S = sum |term| (Higham §4.2). Terms here are d_w d_x scale q_w q_x and dmin_w d_x min q_x (the min
 * part is summed separately and may cancel against the scale part, so S counts both). Roundings on a
 * term's path: fl(d_w d_x) once, the integer sum's conversion to float (|isum| may exceed 2^24) once,
 * the super-block's accumulation (SIMD: one FMA per super-block into a lane, <= n/256 + 4) and <= 8
 * levels of accumulator / horizontal adds, the final cast once; the reference sums in double. Both
 * sides together stay below k = n/16 + 32 (test_kernels.c's bound, generous here), plus the dequantized
 * comparison's own roundings (4 per term). Underflow: (n + 64) 2^-149. */
static double dot_tol(int64_t n, double S) {
    return (double)(n / 16 + 32) * 0x1p-24 * S + (double)(n + 64) * 0x1p-149;
}

/* S for dot(w, x): sum over elements of |a q x| + |b x| where w = a q - b, from the dequantized w and
 * the weight's min term (the dequantized value alone would hide cancellation between a q and b). */
static double dot_scale_sum(int type, const void *w, const void *x, int64_t n) {
    float *wf = malloc((size_t)n * sizeof(float)), *xf = malloc((size_t)n * sizeof(float));
    kernels_type_isa(type, KERNEL_ISA_REF)->to_f32(w, wf, n);
    row_dequantize_q8_K_ref(x, xf, n);
    double S = 0;
    for (int64_t e = 0; e < n; e++) {
        double mterm = 0;
        if (type == HERD_TYPE_Q4_K || type == HERD_TYPE_Q5_K) {
            const uint8_t *sc = type == HERD_TYPE_Q4_K ? ((const block_q4_K *)w)[e / QK_K].scales
                                                       : ((const block_q5_K *)w)[e / QK_K].scales;
            uint16_t dm = type == HERD_TYPE_Q4_K ? ((const block_q4_K *)w)[e / QK_K].dmin
                                                 : ((const block_q5_K *)w)[e / QK_K].dmin;
            uint8_t s, m;
            kq_scale_min(sc, (int)(e % QK_K) / 32, &s, &m);
            mterm = fabs((double)fp16_to_fp32(dm) * m);
        } else if (type == HERD_TYPE_Q2_K) {
            const block_q2_K *b = (const block_q2_K *)w + e / QK_K;
            mterm = fabs((double)fp16_to_fp32(b->dmin) * (b->scales[(e % QK_K) / 16] >> 4));
        }
        S += (fabs((double)wf[e]) + 2 * mterm) * fabs((double)xf[e]);
    }
    free(wf), free(xf);
    return S;
}

static void test_reference(void) {
    int64_t n = 17 * QK_K;
    float *xf = malloc((size_t)n * sizeof(float)), *wf = malloc((size_t)n * sizeof(float)),
          *back = malloc((size_t)n * sizeof(float));
    block_q8_K *xq = malloc((size_t)(n / QK_K) * sizeof(block_q8_K));
    void *w = malloc((size_t)n);
    g_rng = 7;
    for (int rep = 0; rep < 4; rep++) {
        gen_acts(xf, n);
        row_quantize_q8_K_ref(xf, xq, n);
        row_dequantize_q8_K_ref(xq, back, n);
        int bad_range = 0, bad_sum = 0, bad_err = 0;
        for (int64_t b = 0; b < n / QK_K; b++)
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int l = 0; l < 16; l++) {
                    int64_t e = b * QK_K + 16 * g + l;
                    s += xq[b].qs[16 * g + l];
                    bad_range += xq[b].qs[16 * g + l] < -127;
                    bad_err += !(fabs((double)xf[e] - back[e]) <= fabs((double)xq[b].d) * 0.5000001);
                }
                bad_sum += s != xq[b].bsums[g];
            }
        CHECK(!bad_range && !bad_sum && !bad_err, "q8_K: %d quants < -127, %d wrong bsums, %d errors > d/2",
              bad_range, bad_sum, bad_err);
        for (int t = 0; t < 5; t++) {
            if (rep % 2) gen_blocks(t, w, (int)(n / QK_K));
            else {
                gen_weights(rep / 2, wf, n);
                kernels_type_isa(k_types[t], KERNEL_ISA_REF)->from_f32(wf, w, n);
            }
            const kernel_type_ops *o = kernels_type_isa(k_types[t], KERNEL_ISA_REF);
            float got;
            o->dot(n, &got, w, xq);
            o->to_f32(w, wf, n);
            double want = 0;
            for (int64_t e = 0; e < n; e++) want += (double)wf[e] * back[e];
            double S = dot_scale_sum(k_types[t], w, xq, n), tol = dot_tol(n, S) + 4 * 0x1p-24 * S;
            CHECK(fabs(got - want) <= tol, "%s reference dot %.9g, dequantized sum %.9g (tol %.3g)", k_names[t], got,
                  want, tol);
        }
    }
    free(xf), free(wf), free(back), free(xq), free(w);
}

/* ---- SIMD variants against the reference ------------------------------------------------------------- */

typedef struct {
    void *map;
    size_t len;
} guard_page;

/* src copied so that its last byte is the last before a PROT_NONE page */
static void *guard_row(guard_page *g, const void *src, size_t bytes) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), data = (bytes + pg - 1) / pg * pg;
    g->len = data + pg;
    g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED || mprotect((char *)g->map + data, pg, PROT_NONE) != 0) {
        perror("mmap");
        exit(1);
    }
    char *p = (char *)g->map + data - bytes;
    memcpy(p, src, bytes);
    return p;
}

static void guard_free(guard_page *g) {
    munmap(g->map, g->len);
}

static void *copy_at(void **base, const void *src, size_t bytes, size_t off) {
    *base = aligned_alloc(64, (bytes + off + 63) / 64 * 64 + 64);
    memcpy((char *)*base + off, src, bytes);
    return (char *)*base + off;
}

#define GUARD 64

static uint8_t *out_alloc(size_t bytes) {
    uint8_t *p = aligned_alloc(64, (bytes + GUARD + 63) / 64 * 64);
    memset(p, 0, bytes);
    memset(p + bytes, 0xa5, GUARD);
    return p;
}

static int out_guard_ok(const uint8_t *p, size_t bytes) {
    for (size_t i = 0; i < GUARD; i++)
        if (p[bytes + i] != 0xa5) return 0;
    return 1;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Super-block counts: every remainder of the 1/2/4-block loops, Llama shapes (2048, 4096, 8192, 14336). */
static const int k_nbs[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 56};
#define N_NBS ((int)(sizeof k_nbs / sizeof k_nbs[0]))

typedef struct {
    int cases;
    double worst_tol;
} stat;
static stat g_stat[KERNEL_ISA_COUNT][6];

/* dot of type at isa vs the reference, at 4 addresses and a page end (identical bits) */
static void check_dot(kernel_isa isa, int si, int type, int64_t n, const void *w, const void *x, const char *what) {
    const kernel_type_ops *ref = kernels_type_isa(type, KERNEL_ISA_REF), *op = kernels_type_isa(type, isa);
    size_t wb = (size_t)kernels_row_bytes(type, n), xb = (size_t)kernels_row_bytes(HERD_TYPE_Q8_K, n);
    float r, got, again;
    ref->dot(n, &r, w, x);
    op->dot(n, &got, w, x);
    double tol = dot_tol(n, dot_scale_sum(type, w, x, n)), diff = fabs((double)got - r);
    g_stat[isa][si].cases++;
    if (diff / tol > g_stat[isa][si].worst_tol) g_stat[isa][si].worst_tol = diff / tol;
    CHECK(diff <= tol, "%s %s dot n=%" PRId64 " %s: got %.9g ref %.9g diff %.3g tol %.3g", kernels_isa_name(isa),
          herd_type_name(type), n, what, got, r, diff, tol);
    /* K blocks hold fp16 scales (2-byte aligned); q8_K holds a float d (4-byte aligned) */
    size_t wstep = type == HERD_TYPE_Q8_K ? 4 : 2;
    for (size_t k = 1; k <= 3; k++) {
        void *bw, *bx;
        const void *w2 = copy_at(&bw, w, wb, wstep * k), *x2 = copy_at(&bx, x, xb, 4 * (4 - k));
        op->dot(n, &again, w2, x2);
        CHECK(f32_bits(again) == f32_bits(got), "%s %s dot n=%" PRId64 " %s: bits differ at offset %zu",
              kernels_isa_name(isa), herd_type_name(type), n, what, k);
        free(bw), free(bx);
    }
    guard_page gw, gx;
    op->dot(n, &again, guard_row(&gw, w, wb), guard_row(&gx, x, xb));
    CHECK(f32_bits(again) == f32_bits(got), "%s %s dot n=%" PRId64 " %s: bits differ at a page end",
          kernels_isa_name(isa), herd_type_name(type), n, what);
    guard_free(&gw), guard_free(&gx);
}

/* to_f32 / from_f32 of type at isa: bit-exact, no read past the input, no write past the output */
static void check_conv(kernel_isa isa, int type, const void *row, const float *src, int64_t n) {
    const kernel_type_ops *ref = kernels_type_isa(type, KERNEL_ISA_REF), *op = kernels_type_isa(type, isa);
    size_t qb = (size_t)kernels_row_bytes(type, n), fb = (size_t)n * sizeof(float);
    uint8_t *want = out_alloc(fb), *got = out_alloc(fb);
    guard_page g;
    ref->to_f32(row, (float *)want, n);
    op->to_f32(guard_row(&g, row, qb), (float *)got, n);
    guard_free(&g);
    CHECK(memcmp(want, got, fb) == 0 && out_guard_ok(got, fb), "%s %s to_f32 n=%" PRId64 " differs or overruns",
          kernels_isa_name(isa), herd_type_name(type), n);
    free(want), free(got);
    want = out_alloc(qb), got = out_alloc(qb);
    void *base;
    ref->from_f32(src, want, n);
    op->from_f32(copy_at(&base, src, fb, 4), got, n);
    free(base);
    CHECK(memcmp(want, got, qb) == 0 && out_guard_ok(got, qb), "%s %s from_f32 n=%" PRId64 " differs or overruns",
          kernels_isa_name(isa), herd_type_name(type), n);
    memset(got, 0, qb);
    op->from_f32(guard_row(&g, src, fb), got, n);
    guard_free(&g);
    CHECK(memcmp(want, got, qb) == 0, "%s %s from_f32 n=%" PRId64 " differs at a page end", kernels_isa_name(isa),
          herd_type_name(type), n);
    free(want), free(got);
}

/* Activation rows of several kinds, as q8_K: from_f32 of (0) normal, (1) wide block scales, (2) sparse,
 * (3) ties: every element an exact multiple of max/254 so iscale * x lands on k + 1/2 (round half even
 * decides), (4) raw random quants over [-128, 127] with consistent bsums and random d. */
static void gen_q8_K(kernel_isa isa, int kind, float *xf, block_q8_K *xq, int64_t n) {
    for (int64_t e = 0; e < n; e++) {
        double v = rnd_normal();
        if (kind == 1) v *= ldexp(1, (int)(e / 256 % 41) - 20);
        if (kind == 2 && rnd_u64() % 3) v = 0;
        if (kind == 3) v = (e % 256 == 0) ? 127.0 : (double)((int64_t)(rnd_u64() % 254) - 127) + 0.5;
        xf[e] = (float)v;
    }
    if (kind < 4) {
        kernels_type_isa(HERD_TYPE_Q8_K, isa)->from_f32(xf, xq, n);
        return;
    }
    for (int64_t b = 0; b < n / QK_K; b++) {
        xq[b].d = (float)ldexp(1 + rnd_unit(), (int)(rnd_u64() % 20) - 15);
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += xq[b].qs[16 * g + l] = (int8_t)(rnd_u64() & 0xff);
            xq[b].bsums[g] = (int16_t)s;
        }
    }
}

static void test_isa(kernel_isa isa) {
    int64_t nmax = 56 * QK_K;
    float *xf = malloc((size_t)nmax * sizeof(float)), *wf = malloc((size_t)nmax * sizeof(float));
    block_q8_K *xq = malloc((size_t)(nmax / QK_K) * sizeof(block_q8_K));
    void *w = malloc((size_t)nmax);
    for (int li = 0; li < N_NBS; li++) {
        int64_t n = (int64_t)k_nbs[li] * QK_K;
        for (int kind = 0; kind < 5; kind++) {
            gen_q8_K(isa, kind, xf, xq, n);
            if (kind < 4) check_conv(isa, HERD_TYPE_Q8_K, xq, xf, n);
            for (int t = 0; t < 5; t++) {
                if (kind % 2) gen_blocks(t, w, k_nbs[li]);
                else {
                    gen_weights(kind == 2, wf, n);
                    kernels_type_isa(k_types[t], KERNEL_ISA_REF)->from_f32(wf, w, n);
                }
                check_dot(isa, t, k_types[t], n, w, xq, kind == 4 ? "raw q8_K" : kind % 2 ? "random blocks" : "quantized");
                if (kind == 1 && k_nbs[li] <= 17) check_conv(isa, k_types[t], w, wf, n);
            }
            check_dot(isa, 5, HERD_TYPE_Q8_K, n, xq, xq, "q8_K x q8_K");
        }
    }
    /* repeated calls give the same bits (no state between calls) */
    int64_t n = 33 * QK_K;
    gen_q8_K(isa, 0, xf, xq, n);
    for (int t = 0; t < 5; t++) {
        gen_blocks(t, w, 33);
        const kernel_type_ops *op = kernels_type_isa(k_types[t], isa);
        float a, b;
        op->dot(n, &a, w, xq);
        op->dot(n, &b, w, xq);
        CHECK(f32_bits(a) == f32_bits(b), "%s %s dot not deterministic", kernels_isa_name(isa), k_names[t]);
    }
    free(xf), free(wf), free(xq), free(w);
}

int main(void) {
    test_golden();
    test_quality();
    test_reference();
    for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
        if (!kernels_isa_supported((kernel_isa)isa)) {
            printf("%s: not supported by this CPU, skipped\n", kernels_isa_name((kernel_isa)isa));
            continue;
        }
        int before = tu_failed;
        g_rng = 1000 + (uint64_t)isa;
        test_isa((kernel_isa)isa);
        printf("%s: %s; worst |dot - ref| / tol:", kernels_isa_name((kernel_isa)isa),
               tu_failed == before ? "ok" : "FAILED");
        for (int t = 0; t < 6; t++)
            printf(" %s %.3f", t < 5 ? k_names[t] : "q8_K", g_stat[isa][t].worst_tol);
        printf("\n");
    }
    return TU_DONE("test_kquants");
}
