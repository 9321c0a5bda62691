/* bench/rag/search.c: herd's exact top-k search and HNSW index (src/rag/search.h) on random clustered
 * unit vectors, against a plain multi-threaded read of the same matrix (the bandwidth bound of exact
 * search). Writes the vectors and queries (raw float32) for bench/rag/faiss_bench.py, and the exact
 * top-10 of every query, so that FAISS's HNSW recall is measured against the same truth.
 *
 *   search ROWS DIM QUERIES THREADS OUTDIR [HNSW_ROWS] [NLIST]
 * prints one JSON object. HNSW is built over the first HNSW_ROWS rows (default ROWS; 0: no HNSW). The IVF
 * index is built over all ROWS with NLIST lists (default rag_ivf_default_nlist; -1: no IVF) on THREADS
 * threads, 10 k-means rounds; its recall@10 is against the exact top 10 over all rows. */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rag/search.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static float unif(void) { /* [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) * 0x1p-52 - 1.0);
}

typedef struct {
    const float *v;
    size_t n;
    float sum;
} read_job;

__attribute__((target("avx512f"))) static void *read_run(void *arg) {
    read_job *j = arg;
    __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 64 <= j->n; i += 64) {
        a = _mm512_add_ps(a, _mm512_loadu_ps(j->v + i));
        b = _mm512_add_ps(b, _mm512_loadu_ps(j->v + i + 16));
        c = _mm512_add_ps(c, _mm512_loadu_ps(j->v + i + 32));
        d = _mm512_add_ps(d, _mm512_loadu_ps(j->v + i + 48));
    }
    j->sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
    for (; i < j->n; i++) j->sum += j->v[i];
    return NULL;
}

/* One plain read of n floats on t threads (fresh threads, as rag_topk starts them). */
static float plain_read(const float *v, size_t n, int t) {
    read_job jobs[64];
    pthread_t th[64];
    for (int i = 0; i < t; i++) {
        jobs[i] = (read_job){v + n * (size_t)i / (size_t)t, n * (size_t)(i + 1) / (size_t)t - n * (size_t)i / (size_t)t, 0};
        if (i) pthread_create(&th[i], NULL, read_run, &jobs[i]);
    }
    read_run(&jobs[0]);
    float s = jobs[0].sum;
    for (int i = 1; i < t; i++) pthread_join(th[i], NULL), s += jobs[i].sum;
    return s;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_d);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: search ROWS DIM QUERIES THREADS OUTDIR [HNSW_ROWS]\n");
        return 2;
    }
    int64_t rows = atoll(argv[1]), dim = atoll(argv[2]), nq = atoll(argv[3]);
    int threads = atoi(argv[4]);
    const char *out = argv[5];
    int64_t hrows = argc > 6 ? atoll(argv[6]) : rows;
    int64_t nlist = argc > 7 ? atoll(argv[7]) : 0;
    /* 1000 clusters, points = centre + noise, unit norm: neighbourhoods like embeddings have */
    /* env RAG_CLUSTERS / RAG_NOISE: harder data for the approximate indexes (more clusters than lists,
     * more noise: neighbours spread over several lists); the defaults are the first measurements' data */
    int64_t C = getenv("RAG_CLUSTERS") ? atoll(getenv("RAG_CLUSTERS")) : 1000;
    float noise = getenv("RAG_NOISE") ? (float)atof(getenv("RAG_NOISE")) : 0.8f;
    float *cent = malloc((size_t)(C * dim) * 4), *v = malloc((size_t)(rows * dim) * 4), *q = malloc((size_t)(nq * dim) * 4);
    for (int64_t i = 0; i < C * dim; i++) cent[i] = unif();
    for (int64_t r = 0; r < rows + nq; r++) {
        float *x = r < rows ? v + r * dim : q + (r - rows) * dim;
        const float *c = cent + (int64_t)((rng >> 20) % (uint64_t)C) * dim;
        double s = 0;
        for (int64_t e = 0; e < dim; e++) x[e] = c[e] + noise * unif(), s += (double)x[e] * x[e];
        for (int64_t e = 0; e < dim; e++) x[e] /= (float)sqrt(s);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/vectors.f32", out);
    FILE *fp = fopen(path, "wb");
    fwrite(v, 4, (size_t)(rows * dim), fp), fclose(fp);
    snprintf(path, sizeof path, "%s/queries.f32", out);
    fp = fopen(path, "wb");
    fwrite(q, 4, (size_t)(nq * dim), fp), fclose(fp);

    double *t_read = malloc((size_t)nq * sizeof(double)), *t_exact = malloc((size_t)nq * sizeof(double));
    rag_hit (*truth)[10] = malloc((size_t)nq * sizeof *truth);
    volatile float sink = 0;
    for (int64_t i = 0; i < nq; i++) { /* interleaved, so both see the same machine */
        double t0 = now();
        sink += plain_read(v, (size_t)(rows * dim), threads);
        double t1 = now();
        rag_topk(q + i * dim, v, rows, dim, NULL, 10, threads, truth[i]);
        double t2 = now();
        t_read[i] = t1 - t0, t_exact[i] = t2 - t1;
    }
    double read_ms = 1e3 * median(t_read, (int)nq), exact_ms = 1e3 * median(t_exact, (int)nq);
    snprintf(path, sizeof path, "%s/truth.i64", out);
    fp = fopen(path, "wb");
    for (int64_t i = 0; i < nq; i++)
        for (int j = 0; j < 10; j++) fwrite(&truth[i][j].row, 8, 1, fp);
    fclose(fp);

    /* HNSW over the first hrows rows; its truth is exact search over the same rows */
    double t0 = now();
    rag_hnsw *h = hrows > 0 ? rag_hnsw_build(v, hrows, dim, 16, 100, 42) : NULL;
    double build_s = now() - t0;
    int efs[] = {16, 32, 64, 128};
    printf("{\"clusters\": %lld, \"noise\": %.2f, \"rows\": %lld, \"dim\": %lld, \"queries\": %lld, \"threads\": %d, \"plain_read_ms\": %.3f, "
           "\"exact_ms\": %.3f, \"exact_over_read\": %.3f, \"read_gbps\": %.2f, \"hnsw_rows\": %lld, "
           "\"hnsw_build_s\": %.2f, \"hnsw\": [",
           (long long)C, (double)noise, (long long)rows, (long long)dim, (long long)nq, threads, read_ms, exact_ms, exact_ms / read_ms,
           (double)(rows * dim * 4) / (read_ms * 1e-3) / 1e9, (long long)hrows, build_s);
    for (size_t e = 0; h && e < sizeof efs / sizeof efs[0]; e++) {
        int64_t found = 0;
        double t = 0;
        for (int64_t i = 0; i < nq; i++) {
            rag_hit ex[10], ap[10];
            if (hrows == rows) memcpy(ex, truth[i], sizeof ex);
            else rag_topk(q + i * dim, v, hrows, dim, NULL, 10, threads, ex);
            double a = now();
            int64_t k = rag_hnsw_search(h, q + i * dim, 10, efs[e], ap);
            t += now() - a;
            for (int x = 0; x < 10; x++)
                for (int64_t y = 0; y < k; y++) found += ex[x].row == ap[y].row;
        }
        printf("%s{\"ef\": %d, \"recall_at_10\": %.4f, \"ms_per_query\": %.4f}", e ? ", " : "", efs[e],
               (double)found / (double)(nq * 10), 1e3 * t / (double)nq);
    }
    printf("]");
    rag_hnsw_free(h);
    if (nlist >= 0) {
        t0 = now();
        rag_ivf *f = rag_ivf_build(v, rows, dim, nlist, 10, 42, threads);
        double ivf_s = now() - t0;
        const float *cc = rag_ivf_centroids(f, &nlist);
        (void)cc;
        printf(", \"ivf_nlist\": %lld, \"ivf_build_s\": %.2f, \"ivf_bytes\": %zu, \"ivf\": [", (long long)nlist, ivf_s,
               rag_ivf_bytes(f));
        int probes[] = {1, 4, 8, 16, 32, 64};
        for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
            int64_t found = 0;
            double t = 0;
            for (int64_t i = 0; i < nq; i++) {
                rag_hit ap[10];
                double a = now();
                int64_t k = rag_ivf_search(f, q + i * dim, 10, probes[p], ap);
                t += now() - a;
                for (int x = 0; x < 10; x++)
                    for (int64_t y = 0; y < k; y++) found += truth[i][x].row == ap[y].row;
            }
            printf("%s{\"nprobe\": %d, \"recall_at_10\": %.4f, \"ms_per_query\": %.4f}", p ? ", " : "", probes[p],
                   (double)found / (double)(nq * 10), 1e3 * t / (double)nq);
        }
        printf("]");
        rag_ivf_free(f);
    }
    printf("}\n");
    (void)sink;
    return 0;
}
