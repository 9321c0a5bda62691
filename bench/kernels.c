/* Micro-benchmark of the matmul dot kernels at decode shape: one token against a 4096 x 4096 weight
 * matrix, one kernel call per row, one thread. Reports weight-streaming bandwidth (weight bytes / time)
 * for every type and every ISA this CPU supports, next to what a plain read loop gets, so we can see how
 * close to memory bandwidth a decode matmul gets.
 *
 *   make build/libherd.a
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc -o build/bench_kernels bench/kernels.c build/libherd.a \
 *       -ljansson -lm -lpthread
 *   build/bench_kernels            # HERD_BENCH_FLUSH_MB=... changes the cache-flush buffer (default 1024)
 *   build/bench_kernels prompt     # only the prompt-shape (gemm) table
 *   build/bench_kernels attn       # only the attention table
 *   build/bench_kernels packed     # only the packed table
 *
 * cold: before each timed pass a buffer far larger than the caches is read, so the weights come from DRAM
 *       as in real decode (a model is GBs; each layer's weights are read once per token).
 * hot:  the same matrix again right after, so whatever fits in L2/L3 is served from there.
 * Each figure is the best of several passes (the least disturbed by other work on the machine).
 * Then the cost of converting one activation row (from_f32 of the vec_dot types) per ISA.
 * Last, prompt shape: 1024 rows x 2048 (the 1B's n_embd) times 64 tokens, thread CPU time, GMAC/s of the
 * type's gemm (kernels.h) next to one dot per (row, token) in 16-token tiles (matmul without gemm).
 * Packed: the packed kernels (kernels/packed.h: 16 rows interleaved, repacked at load) at decode shape, one
 * token against the whole matrix from DRAM (cold), next to the same type's plain dot: GB/s of the bytes each
 * reads, and of the file's bytes (the lattice i-quants' packed copies are larger than their rows). Types
 * herd has no quantizer for (iq3_s, iq3_xxs, iq2_s) get random blocks (speed does not depend on values).
 * Attention: the causal prefill of one KV head (1B shape: head_dim 64, 4 query heads per KV head, f16
 * cache) at 512 and 4096 positions, in tiles of 16 tokens as the forward pass cuts them, thread CPU time:
 * the active ISA's tiled kernel (vec->attn) next to the per-query code on the same ISA's dots and axpys
 * (kernels_attn_generic: a dot per key and an axpy per value, as attention ran before the tiled kernel).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herd.h"
#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "kernels/packed.h"
#include "kernels/types.h"

enum { ROWS = 4096, COLS = 4096, PASSES = 5 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t g_rng = 88172645463325252ull;
static float rnd_sym(void) { /* xorshift64, [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) * 0x1p-52 - 1.0);
}

/* Reads `bytes` of `buf` with four independent 64-bit accumulators: the single-thread read bandwidth a
 * simple streaming loop reaches, the ceiling for a memory-bound dot. Returns the sum so it is not elided. */
static uint64_t read_all(const uint64_t *buf, size_t bytes) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= bytes / 8; i += 4) {
        s0 += buf[i];
        s1 += buf[i + 1];
        s2 += buf[i + 2];
        s3 += buf[i + 3];
    }
    return s0 ^ s1 ^ s2 ^ s3;
}

static volatile uint64_t g_sink;

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* gemm vs per-(row, token) dots at prompt shape, active ISA, best of 5 (CPU time: other load on the
 * machine does not count) */
static void prompt_shape(const int *types, const char *const *names, int n_types, const float *src) {
    enum { N = 2048, NR = 1024, NT = 64 };
    printf("\nprompt shape: %d rows x %d, %d tokens, 1 thread, %s\n%-6s %12s %12s %7s\n", NR, N, NT,
           kernels_isa_name(kernels_active_isa()), "type", "gemm GMAC/s", "dots GMAC/s", "ratio");
    for (int ti = 0; ti < n_types; ti++) {
        const kernel_type_ops *o = kernels_type(types[ti]);
        if (!o || !o->gemm || o->gemm_x_bytes(N) <= 0) continue;
        const kernel_type_ops *vd = kernels_type(o->vec_dot_type);
        int64_t wrow = kernels_row_bytes(types[ti], N), xrow = kernels_row_bytes(o->vec_dot_type, N);
        int64_t xpb = o->gemm_x_bytes(N);
        unsigned char *w = malloc((size_t)(wrow * NR)), *x = malloc((size_t)(xrow * NT)), *xp = malloc((size_t)(xpb * NT));
        float *yy = malloc(sizeof(float) * NR * NT);
        for (int r = 0; r < NR; r++) o->from_f32(src + (size_t)r * N, w + r * wrow, N);
        for (int t = 0; t < NT; t++) {
            vd->from_f32(src + (size_t)(NR + t) * N, x + t * xrow, N);
            o->gemm_pack_x(N, x + t * xrow, xp + t * xpb);
        }
        double bg = 1e30, bd = 1e30;
        for (int p = 0; p < 5; p++) {
            double t0 = cpu_s();
            o->gemm(N, NR, NT, w, wrow, xp, xpb, yy, NR);
            double t1 = cpu_s();
            for (int t0k = 0; t0k < NT; t0k += 16)
                for (int r = 0; r < NR; r++)
                    for (int t = t0k; t < t0k + 16; t++) o->dot(N, &yy[t * NR + r], w + r * wrow, x + t * xrow);
            double t2 = cpu_s();
            bg = t1 - t0 < bg ? t1 - t0 : bg;
            bd = t2 - t1 < bd ? t2 - t1 : bd;
            g_sink += (uint64_t)(yy[0] != yy[0]);
        }
        double macs = (double)N * NR * NT;
        printf("%-6s %12.1f %12.1f %6.2fx\n", names[ti], macs / bg * 1e-9, macs / bd * 1e-9, bd / bg);
        free(w), free(x), free(xp), free(yy);
    }
}

/* Causal prefill of one KV head: n tokens x group heads, tiles of 16 tokens; seconds (thread CPU time) of
 * the tiled kernel or of the per-query generic code. */
static double attn_prefill(int64_t n, int64_t hd, int64_t group, const uint16_t *k, const uint16_t *v,
                           const float *q, float *o, bool tiled) {
    enum { TILE = 16 };
    const kernel_vec_ops *vo = kernels_vec();
    const float *qp[TILE * 8];
    float *op[TILE * 8];
    int64_t nkv[TILE * 8];
    float *scratch = malloc(sizeof(float) * (size_t)kernels_attn_scratch_floats(hd, TILE * group));
    kernel_attn_kv kv = {.head_dim = hd, .type_k = HERD_TYPE_F16, .type_v = HERD_TYPE_F16, .k = k, .v = v,
                         .stride_k = hd * 2, .stride_v = hd * 2, .scale = 1.0f / 8};
    double t0 = cpu_s();
    for (int64_t t0k = 0; t0k < n; t0k += TILE) {
        int64_t nq = 0;
        for (int64_t t = t0k; t < t0k + TILE && t < n; t++)
            for (int64_t g = 0; g < group; g++, nq++) {
                qp[nq] = q + (t * group + g) * hd;
                op[nq] = o + (t * group + g) * hd;
                nkv[nq] = t + 1;
            }
        if (tiled) vo->attn(&kv, nq, qp, nkv, op, scratch);
        else kernels_attn_generic(kernels_active_isa(), &kv, nq, qp, nkv, op, scratch);
    }
    double dt = cpu_s() - t0;
    free(scratch);
    return dt;
}

static void attn_table(void) {
    const int64_t hd = 64, group = 4;
    printf("\nattention, causal prefill of one KV head: head_dim %lld, %lld query heads, f16 cache, 1 thread, %s\n"
           "%-9s %14s %14s %7s\n",
           (long long)hd, (long long)group, kernels_isa_name(kernels_active_isa()), "positions", "tiled GMAC/s",
           "per-query", "ratio");
    for (int64_t n = 512; n <= 4096; n *= 8) {
        uint16_t *k = malloc(sizeof(uint16_t) * (size_t)(n * hd)), *v = malloc(sizeof(uint16_t) * (size_t)(n * hd));
        float *q = malloc(sizeof(float) * (size_t)(n * group * hd)), *o = malloc(sizeof(float) * (size_t)(n * group * hd));
        for (int64_t i = 0; i < n * hd; i++) k[i] = fp32_to_fp16(rnd_sym()), v[i] = fp32_to_fp16(rnd_sym());
        for (int64_t i = 0; i < n * group * hd; i++) q[i] = rnd_sym();
        double bt = 1e30, bg = 1e30;
        for (int p = 0; p < 3; p++) {
            double a = attn_prefill(n, hd, group, k, v, q, o, true), b = attn_prefill(n, hd, group, k, v, q, o, false);
            bt = a < bt ? a : bt;
            bg = b < bg ? b : bg;
        }
        double macs = 2.0 * (double)hd * group * (double)n * (double)(n + 1) / 2; /* q.k and p v per (query, key) */
        printf("%-9lld %14.1f %14.1f %6.2fx\n", (long long)n, macs / bt * 1e-9, macs / bg * 1e-9, bg / bt);
        g_sink += (uint64_t)(o[0] != o[0]);
        free(k), free(v), free(q), free(o);
    }
}

/* The packed table (see the top): best of PASSES cold passes each. */
static void packed_table(const float *src, const float *xf, const uint64_t *flush, size_t flush_bytes) {
    static const int types[] = {HERD_TYPE_Q8_0, HERD_TYPE_Q4_0, HERD_TYPE_Q5_0,  HERD_TYPE_IQ4_NL, HERD_TYPE_Q4_1,
                                HERD_TYPE_Q5_1, HERD_TYPE_Q4_K, HERD_TYPE_Q5_K,  HERD_TYPE_Q6_K,   HERD_TYPE_IQ4_XS,
                                HERD_TYPE_IQ3_S, HERD_TYPE_IQ3_XXS, HERD_TYPE_IQ2_S};
    printf("\npacked kernels: %d x %d, 1 token, 1 thread, weights from DRAM\n%-8s %12s %12s %14s\n", ROWS, COLS,
           "type", "dot GB/s", "packed GB/s", "in file bytes");
    for (int t = 0; t < (int)(sizeof types / sizeof types[0]); t++) {
        const kernel_type_ops *o = kernels_type(types[t]), *vd = kernels_type(o->vec_dot_type);
        pk_gemm_fn f = pk_gemm_for(types[t], COLS, ROWS);
        if (!f) continue;
        const size_t row_bytes = (size_t)kernels_row_bytes(types[t], COLS), mat_bytes = row_bytes * ROWS;
        const size_t gb = (size_t)pk_group_bytes(types[t], COLS), pk_bytes = gb * (ROWS / PK_ROWS);
        unsigned char *w = malloc(mat_bytes), *wp = malloc(pk_bytes), *xp = malloc((size_t)pk_x_bytes(types[t], COLS));
        unsigned char xq[COLS * 4];
        float *y = malloc(ROWS * sizeof(float));
        for (int r = 0; r < ROWS; r++) {
            unsigned char *row = w + r * row_bytes;
            if (o->from_f32) {
                o->from_f32(src + (size_t)r * COLS, row, COLS);
                continue;
            }
            for (size_t i = 0; i < row_bytes; i++) row[i] = (unsigned char)(rnd_sym() * 127.0f + 128.0f);
            for (int b = 0; b < COLS / 256; b++) { /* each super-block starts with its f16 d */
                uint16_t d = fp32_to_fp16(0.01f);
                memcpy(row + b * o->block_bytes, &d, 2);
            }
        }
        for (int g = 0; g < ROWS / PK_ROWS; g++) pk_pack_w(types[t], COLS, w + (size_t)g * PK_ROWS * row_bytes, (int64_t)row_bytes, wp + g * gb);
        vd->from_f32(xf, xq, COLS);
        pk_pack_x(types[t], COLS, xq, xp);
        double bd = 1e30, bp = 1e30;
        for (int p = 0; p < PASSES; p++) {
            g_sink += read_all(flush, flush_bytes);
            double t0 = now_s();
            for (int r = 0; r < ROWS; r++) o->dot(COLS, &y[r], w + r * row_bytes, xq);
            double t1 = now_s();
            bd = t1 - t0 < bd ? t1 - t0 : bd;
            g_sink += read_all(flush, flush_bytes);
            t0 = now_s();
            f(COLS, ROWS / PK_ROWS, 1, wp, xp, 0, y, ROWS);
            t1 = now_s();
            bp = t1 - t0 < bp ? t1 - t0 : bp;
            g_sink += (uint64_t)(y[0] != y[0]);
        }
        printf("%-8s %12.2f %12.2f %14.2f\n", herd_type_name(types[t]), (double)mat_bytes / bd * 1e-9,
               (double)pk_bytes / bp * 1e-9, (double)mat_bytes / bp * 1e-9);
        free(w), free(wp), free(xp), free(y);
    }
}

int main(int argc, char **argv) {
    static const int types[] = {HERD_TYPE_F32,  HERD_TYPE_F16,  HERD_TYPE_BF16, HERD_TYPE_Q8_0, HERD_TYPE_Q4_0,
                                HERD_TYPE_Q2_K, HERD_TYPE_Q3_K, HERD_TYPE_Q4_K, HERD_TYPE_Q5_K, HERD_TYPE_Q6_K,
                                HERD_TYPE_IQ4_XS};
    static const char *names[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K",
                                  "iq4_xs"};
    const char *env = getenv("HERD_BENCH_FLUSH_MB");
    size_t flush_bytes = (size_t)(env ? atol(env) : 1024) << 20;
    uint64_t *flush = malloc(flush_bytes);
    float *src = malloc((size_t)ROWS * COLS * sizeof(float)), *y = malloc(ROWS * sizeof(float));
    if (!flush || !src || !y) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    memset(flush, 1, flush_bytes);
    for (size_t i = 0; i < (size_t)ROWS * COLS; i++) src[i] = rnd_sym();
    if (argc > 1 && strcmp(argv[1], "attn") == 0) { /* only the attention table */
        attn_table();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "prompt") == 0) { /* only the prompt-shape table */
        prompt_shape(types, names, (int)(sizeof types / sizeof types[0]), src);
        return 0;
    }
    float xf[COLS];
    for (int i = 0; i < COLS; i++) xf[i] = rnd_sym();
    if (argc > 1 && strcmp(argv[1], "packed") == 0) { /* only the packed table */
        packed_table(src, xf, flush, flush_bytes);
        return 0;
    }

    double best = 1e30;
    for (int p = 0; p < 3; p++) {
        double t0 = now_s();
        g_sink += read_all(flush, flush_bytes);
        double t = now_s() - t0;
        best = t < best ? t : best;
    }
    printf("herd kernels: %d x %d weights, 1 token, 1 thread; active ISA %s\n", ROWS, COLS,
           kernels_isa_name(kernels_active_isa()));
    printf("plain read loop over %zu MiB: %.1f GB/s\n\n", flush_bytes >> 20,
           (double)flush_bytes / best * 1e-9);
    printf("%-6s %-8s %9s %10s %10s %10s\n", "type", "isa", "MiB", "cold GB/s", "hot GB/s", "us/matrix");

    for (int t = 0; t < (int)(sizeof types / sizeof types[0]); t++) {
        const kernel_type_ops *ref = kernels_type_isa(types[t], KERNEL_ISA_REF);
        size_t row_bytes = (size_t)kernels_row_bytes(types[t], COLS);
        size_t mat_bytes = row_bytes * ROWS;
        unsigned char *w = aligned_alloc(64, (mat_bytes + 63) / 64 * 64);
        unsigned char xq[COLS * 4];
        double tq = now_s();
        for (int r = 0; r < ROWS; r++) ref->from_f32(src + (size_t)r * COLS, w + r * row_bytes, COLS);
        tq = now_s() - tq;
        if (ref->block > 1) /* the weight quantizer (herd quantize / synth), one thread */
            printf("%-6s %-8s quantize %.1f M weights/s\n", names[t], "ref", (double)ROWS * COLS / tq * 1e-6);
        kernels_type_isa(ref->vec_dot_type, KERNEL_ISA_REF)->from_f32(xf, xq, COLS);

        for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
            const kernel_type_ops *op = kernels_type_isa(types[t], (kernel_isa)isa);
            if (!op) continue;
            double cold = 1e30, hot = 1e30;
            for (int p = 0; p < PASSES; p++) {
                g_sink += read_all(flush, flush_bytes);
                for (int k = 0; k < 2; k++) { /* k = 0 cold, k = 1 hot */
                    double t0 = now_s();
                    for (int r = 0; r < ROWS; r++) op->dot(COLS, &y[r], w + r * row_bytes, xq);
                    double dt = now_s() - t0;
                    if (k == 0)
                        cold = dt < cold ? dt : cold;
                    else
                        hot = dt < hot ? dt : hot;
                    g_sink += (uint64_t)(y[0] != y[0]);
                }
            }
            printf("%-6s %-8s %9.1f %10.1f %10.1f %10.0f\n", names[t], kernels_isa_name((kernel_isa)isa),
                   (double)mat_bytes / (1 << 20), (double)mat_bytes / cold * 1e-9,
                   (double)mat_bytes / hot * 1e-9, cold * 1e6);
        }
        free(w);
    }

    /* activation conversion: one row of COLS floats into each vec_dot type, in L1 (done once per token
     * and matmul, so it only has to stay small next to the matmul above) */
    printf("\n%-6s %-8s %14s\n", "type", "isa", "from_f32 ns/row");
    static const int act_types[] = {HERD_TYPE_F16, HERD_TYPE_BF16, HERD_TYPE_Q8_0, HERD_TYPE_Q8_K};
    static const char *act_names[] = {"f16", "bf16", "q8_0", "q8_K"};
    for (int t = 0; t < 4; t++) {
        for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
            const kernel_type_ops *op = kernels_type_isa(act_types[t], (kernel_isa)isa);
            if (!op) continue;
            unsigned char out[COLS * 2 + COLS / 16];
            double bestc = 1e30;
            for (int p = 0; p < 200; p++) {
                double t0 = now_s();
                op->from_f32(xf, out, COLS);
                double dt = now_s() - t0;
                bestc = dt < bestc ? dt : bestc;
                g_sink += out[p];
            }
            printf("%-6s %-8s %14.0f\n", act_names[t], kernels_isa_name((kernel_isa)isa), bestc * 1e9);
        }
    }
    prompt_shape(types, names, (int)(sizeof types / sizeof types[0]), src);
    packed_table(src, xf, flush, flush_bytes);
    attn_table();
    free(flush);
    free(src);
    free(y);
    return 0;
}
