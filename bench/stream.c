/* How close the packed decode GEMV comes to a plain read of the same bytes, and what splitting one
 * token's weights into a forward pass's many matmuls costs. Never part of make test.
 *
 * One buffer of packed weights (q8_0, q4_0, q4_K or q6_K; rows WIDTH wide) of MB megabytes,
 * 2 MiB-aligned with MADV_HUGEPAGE as model_repack allocates them, on herd's thread pool; alternately:
 *   read:   every thread sums its share of the buffer (kernel_vec_ops.read_sum: the roofline's read loop)
 *   gemv:   one pool pass of the packed kernel over all rows, 1 token (a decode step's one big matmul)
 *   split:  the same rows as consecutive matmuls of 4 MB each, one pool pass (and barrier) apiece, as a
 *           forward pass cuts a token's weights into ~7 matmuls per layer
 * Each round prints GB/s of the three; they alternate, so the machine's bandwidth drifting hits all
 * alike. The weights are random bytes with small valid scales (speed does not depend on the values;
 * random, not constant, pages so that nothing below the process can share them).
 *
 *   make build/libherd.a && gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc -o build/bench_stream \
 *       bench/stream.c build/libherd.a -lm -lpthread
 *   build/bench_stream [TYPE (q4_0)] [WIDTH (4096)] [MB (1024)] [THREADS (2)] [ROUNDS (8)]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "herd.h"
#include "kernels/kernels.h"
#include "kernels/packed.h"
#include "thread/pool.h"

#define SPLIT_BYTES (4 << 20)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const uint8_t *w;
    int64_t n, bytes, gb;      /* row width, bytes read by `read`, bytes per group of PK_ROWS rows */
    int64_t g0, g1;            /* the groups of this gemv pass */
    pk_gemm_fn pk;
    const uint8_t *x;          /* the packed activation row */
    float *y;
    uint64_t sink[64];
} job;

static void read_pass(void *arg, int ith, int nth) {
    job *j = arg;
    int64_t a, b; /* 256-byte units; the buffer is a multiple of 256 bytes */
    pool_range(j->bytes / 256, ith, nth, &a, &b);
    j->sink[ith % 64] = kernels_vec()->read_sum(j->w + a * 256, (b - a) * 256); /* herd's read loop */
}

static void gemv_pass(void *arg, int ith, int nth) {
    job *j = arg;
    int64_t a, b;
    pool_range(j->g1 - j->g0, ith, nth, &a, &b);
    if (b > a) j->pk(j->n, b - a, 1, j->w + (j->g0 + a) * j->gb, j->x, 0, j->y + (j->g0 + a) * PK_ROWS, 0);
}

int main(int argc, char **argv) {
    const char *tn = argc > 1 ? argv[1] : "q4_0";
    /* block bytes and the offsets of its f16 scales (0 when it has one), per type */
    int type, bb, sc0, sc1;
    if (!strcmp(tn, "q8_0")) type = HERD_TYPE_Q8_0, bb = 34, sc0 = 0, sc1 = 0;
    else if (!strcmp(tn, "q4_0")) type = HERD_TYPE_Q4_0, bb = 18, sc0 = 0, sc1 = 0;
    else if (!strcmp(tn, "q4_K")) type = HERD_TYPE_Q4_K, bb = 144, sc0 = 0, sc1 = 2;
    else if (!strcmp(tn, "q6_K")) type = HERD_TYPE_Q6_K, bb = 210, sc0 = 208, sc1 = 208;
    else {
        fprintf(stderr, "bench_stream: type %s: expected q8_0, q4_0, q4_K or q6_K\n", tn);
        return 2;
    }
    job j = {.n = argc > 2 ? atol(argv[2]) : 4096};
    int64_t mb = argc > 3 ? atol(argv[3]) : 1024;
    int nth = argc > 4 ? atoi(argv[4]) : 2, rounds = argc > 5 ? atoi(argv[5]) : 8;
    j.pk = pk_gemm_for(type, j.n, PK_ROWS);
    if (!j.pk || j.n % 256 || mb < 1 || nth < 1 || rounds < 2) {
        fprintf(stderr, "bench_stream: no packed %s kernel for width %lld on this CPU, or bad arguments\n", tn,
                (long long)j.n);
        return 1;
    }
    j.gb = pk_group_bytes(type, j.n);
    int64_t ng = (mb << 20) / j.gb, total = ng * j.gb, rb = kernels_row_bytes(type, j.n);
    j.bytes = total / 256 * 256;
    uint8_t *w = aligned_alloc(2 << 20, (size_t)((total + (2 << 20) - 1) / (2 << 20) * (2 << 20)));
    uint8_t *rows = malloc((size_t)(rb * PK_ROWS));
    if (!w || !rows) return 1;
    madvise(w, (size_t)total, MADV_HUGEPAGE);
    uint64_t s = 1;
    for (int64_t g = 0; g < ng; g++) {
        for (int64_t i = 0; i < rb * PK_ROWS; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            rows[i] = (uint8_t)(s >> 56);
        }
        for (int64_t i = 0; i < rb * PK_ROWS; i += bb) /* f16 2^-7 */
            rows[i + sc0] = rows[i + sc1] = 0x00, rows[i + sc0 + 1] = rows[i + sc1 + 1] = 0x20;
        pk_pack_w(type, j.n, rows, rb, w + g * j.gb);
    }
    float *xf = malloc((size_t)j.n * sizeof(float));
    uint8_t *xr = malloc((size_t)j.n * 2), *xp = aligned_alloc(64, (size_t)(pk_x_bytes(type, j.n) + 63) / 64 * 64);
    j.y = malloc((size_t)(ng * PK_ROWS) * sizeof(float));
    if (!xf || !xr || !xp || !j.y) return 1;
    for (int64_t i = 0; i < j.n; i++) xf[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
    kernels_type(kernels_type(type)->vec_dot_type)->from_f32(xf, xr, j.n);
    pk_pack_x(type, j.n, xr, xp);
    j.w = w, j.x = xp;
    thread_pool *pool = pool_new(nth);
    int64_t split_g = SPLIT_BYTES / j.gb < 1 ? 1 : SPLIT_BYTES / j.gb;
    printf("%s, rows %lld wide, %.0f MB packed, %d threads; split: %lld passes of %d MB\n", tn, (long long)j.n,
           (double)total / 1e6, nth, (long long)((ng + split_g - 1) / split_g), SPLIT_BYTES >> 20);
    printf("round   read GB/s   gemv GB/s   split GB/s   gemv/read   split/read\n");
    double sr = 0, sg = 0, ss = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        pool_run(pool, read_pass, &j);
        double t1 = now_s();
        j.g0 = 0, j.g1 = ng;
        pool_run(pool, gemv_pass, &j);
        double t2 = now_s();
        for (int64_t g = 0; g < ng; g += split_g) {
            j.g0 = g, j.g1 = g + split_g < ng ? g + split_g : ng;
            pool_run(pool, gemv_pass, &j);
        }
        double t3 = now_s();
        double rd = (double)j.bytes / 1e9 / (t1 - t0), gv = (double)total / 1e9 / (t2 - t1),
               sp = (double)total / 1e9 / (t3 - t2);
        if (r > 0) sr += rd, sg += gv, ss += sp; /* round 0 warms up */
        printf("%5d   %9.1f   %9.1f   %10.1f   %8.0f%%   %9.0f%%\n", r, rd, gv, sp, 100 * gv / rd, 100 * sp / rd);
    }
    int n = rounds - 1;
    printf(" mean   %9.1f   %9.1f   %10.1f   %8.0f%%   %9.0f%%\n", sr / n, sg / n, ss / n, 100 * sg / sr, 100 * ss / sr);
    pool_free(pool);
    return 0;
}
