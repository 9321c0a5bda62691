/* Exact top-k search by cosine over vectors held in memory, and an HNSW index for approximate search.
 *
 * Vectors are rows of n_embd floats, stored unit-normalised (rag_search_add normalises), so cosine is
 * a dot product. Exact search is one pass over all rows: a dot per row (AVX-512 when the CPU has it,
 * else the scalar reference; both in this file's .c, same signature), split over threads by row
 * ranges, then a top-k heap per thread merged at the end. Bound by memory bandwidth: 100k x 2048 F32
 * is 800 MB read once per query. */
#ifndef HERD_RAG_SEARCH_H
#define HERD_RAG_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* dots[r] = sum_e q[e] * v[r * n + e] for r in [0, rows): the scalar reference and the AVX-512 kernel. */
void rag_dots_ref(const float *q, const float *v, int64_t rows, int64_t n, float *dots);
void rag_dots_avx512(const float *q, const float *v, int64_t rows, int64_t n, float *dots);
/* The best available on this CPU. */
void rag_dots(const float *q, const float *v, int64_t rows, int64_t n, float *dots);

typedef struct {
    int64_t row;
    float score;
} rag_hit;

/* Top k of rows by q . v (ties: the lower row first), among rows with allow[r] != 0 (allow NULL: all);
 * q need not be normalised (scores are then scaled by |q|). n_threads >= 1. OUT: hits[0..k'), k' <= k,
 * best first; returns k'. */
int64_t rag_topk(const float *q, const float *v, int64_t rows, int64_t n, const uint8_t *allow, int64_t k,
                 int n_threads, rag_hit *hits);

/* ---- HNSW (Malkov & Yashunin 2016): layered proximity graphs over the same rows ----------------- */

typedef struct rag_hnsw rag_hnsw;

/* Builds the index over rows [0, rows) of v (borrowed: must outlive the index, unit-normalised rows),
 * M neighbours per node (2M on layer 0), ef_construction candidates while inserting; seed fixes the
 * level draw, so a build is deterministic. */
rag_hnsw *rag_hnsw_build(const float *v, int64_t rows, int64_t n, int M, int ef_construction, uint64_t seed);
void rag_hnsw_free(rag_hnsw *h);
/* Approximate top k by dot product with ef candidates (ef >= k). OUT: hits best first; returns count. */
int64_t rag_hnsw_search(const rag_hnsw *h, const float *q, int64_t k, int ef, rag_hit *hits);

#endif
