/* Exact top-k search by cosine over vectors held in memory, and HNSW and IVF indexes for approximate search.
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

/* ---- IVF-Flat (see ivf.c for why it serves the big stores): k-means lists over the same rows ---------- */

typedef struct rag_ivf rag_ivf;

/* ~sqrt(rows) lists, at most rows / 39. */
int64_t rag_ivf_default_nlist(int64_t rows);
/* Trains nlist (<= 0: the default) unit centroids by spherical k-means, n_iter rounds, over a seeded sample
 * of up to 256 rows per list, then puts every row of v (borrowed, unit rows, must outlive the index) in the
 * list of its nearest centroid; n_threads split the rows. Deterministic for a given seed and thread count. */
rag_ivf *rag_ivf_build(const float *v, int64_t rows, int64_t n, int64_t nlist, int n_iter, uint64_t seed,
                       int n_threads);
/* An index from saved state: centroids [nlist][n] (copied) and each row's list[r] in [0, nlist) (copied). */
rag_ivf *rag_ivf_from(const float *v, int64_t rows, int64_t n, const float *centroids, int64_t nlist,
                      const int32_t *list);
/* OUT: list[r] = the nearest of the centroids [nlist][n] to row r of v [rows][n]. */
void rag_ivf_assign(const float *centroids, int64_t nlist, int64_t n, const float *v, int64_t rows, int n_threads,
                    int32_t *list);
/* The index's centroids (OUT: *nlist) and its list of each row, owned by the index. */
const float *rag_ivf_centroids(const rag_ivf *f, int64_t *nlist);
const int32_t *rag_ivf_lists(const rag_ivf *f);
/* Heap bytes the index holds beside the borrowed rows. */
size_t rag_ivf_bytes(const rag_ivf *f);
void rag_ivf_free(rag_ivf *f);
/* Approximate top k by dot product: all rows of the nprobe lists whose centroids score best. OUT: hits
 * best first (ties: lower row); returns count. */
int64_t rag_ivf_search(const rag_ivf *f, const float *q, int64_t k, int nprobe, rag_hit *hits);

#endif
