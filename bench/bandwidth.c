/* Memory read bandwidth with N threads: the roofline for decode, which streams every weight once
 * per token. Each thread sums its share of a buffer much larger than the caches with 32-byte loads
 * (several independent accumulators, so the loads, not the adds, are the limit); best of R rounds.
 *   gcc -O2 -mavx2 -pthread -o build/bench_bandwidth bench/bandwidth.c && build/bench_bandwidth [THREADS] [MiB]
 * Prints GB/s (10^9 bytes per second). */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const uint8_t *p;
    size_t n;
    double sink;
    pthread_barrier_t *bar;
} job;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *reader(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->bar);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= j->n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(j->p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(j->p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(j->p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(j->p + i + 96)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    j->sink = (double)_mm256_extract_epi64(a0, 0);
    pthread_barrier_wait(j->bar);
    return NULL;
}

int main(int argc, char **argv) {
    int nt = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    size_t n = mib << 20;
    uint8_t *buf = aligned_alloc(64, n);
    memset(buf, 1, n); /* fault every page in before timing */
    double best = 0;
    for (int round = 0; round < 5; round++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)nt + 1);
        pthread_t th[64];
        job jobs[64];
        for (int t = 0; t < nt; t++) {
            jobs[t] = (job){buf + n / (size_t)nt * (size_t)t, n / (size_t)nt, 0, &bar};
            pthread_create(&th[t], NULL, reader, &jobs[t]);
        }
        pthread_barrier_wait(&bar);
        double t0 = now();
        pthread_barrier_wait(&bar);
        double dt = now() - t0;
        for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
        pthread_barrier_destroy(&bar);
        double gbs = (double)n / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    printf("%.2f\n", best);
    free(buf);
    return 0;
}
