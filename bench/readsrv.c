/* The roofline for a decoder that is not herd (bench/llama_bench.mjs): a process holding BYTES of its
 * own memory (random, 2 MiB-aligned, MADV_HUGEPAGE) that, for every line it reads on stdin, reads the
 * whole buffer once with THREADS threads -- herd's thread pool and plain read loop
 * (kernel_vec_ops.read_sum), the same as herd bench --roofline -- and answers with the seconds it took
 * on one line of stdout. llama_bench.mjs asks after each decoded token, so each token is timed against
 * a read of as many bytes, tens of milliseconds apart. Never part of make test.
 *
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc -o build/bench_readsrv bench/readsrv.c build/libherd.a -lm -lpthread
 *   build/bench_readsrv THREADS BYTES
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "kernels/kernels.h"
#include "thread/pool.h"

typedef struct {
    const uint8_t *p;
    int64_t n;
    uint64_t sum[64];
} job;

static void read_pass(void *arg, int ith, int nth) {
    job *j = arg;
    int64_t a, b; /* 256-byte units; the last thread takes the tail */
    pool_range(j->n / 256, ith, nth, &a, &b);
    int64_t end = ith == nth - 1 ? j->n / 8 * 8 : b * 256;
    uint64_t s = kernels_vec()->read_sum(j->p + a * 256, end - a * 256);
    if (ith < 64) j->sum[ith] += s;
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : 0;
    long long bytes = argc > 2 ? atoll(argv[2]) : 0;
    if (nth < 1 || bytes < 256) {
        fprintf(stderr, "usage: %s THREADS BYTES\n", argv[0]);
        return 2;
    }
    kernels_init();
    size_t cap = ((size_t)bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20);
    uint8_t *p = aligned_alloc(2u << 20, cap);
    if (!p) {
        fprintf(stderr, "bench_readsrv: cannot allocate %lld bytes\n", bytes);
        return 1;
    }
    madvise(p, cap, MADV_HUGEPAGE);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < cap / 8; i++) { /* random: pages nothing below the process can share */
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        ((uint64_t *)p)[i] = s;
    }
    thread_pool *pool = pool_new(nth);
    job j = {.p = p, .n = bytes};
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        pool_run(pool, read_pass, &j);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%.9f\n", (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec));
        fflush(stdout);
    }
    pool_free(pool);
    free(p);
    return 0;
}
