/* IVF-Flat (Jégou, Douze & Schmid, "Product quantization for nearest neighbor search", 2011, the "IVF"
 * coarse quantizer without the PQ): nlist centroids from spherical k-means over a sample of the rows; every
 * row belongs to the list of its nearest centroid (by dot product, rows are unit vectors); a query scores
 * all centroids, scans the rows of its nprobe best lists and keeps the top k.
 *
 * Why IVF rather than HNSW for stores of ~1M chunks: its build is k-means over a sample plus one
 * nearest-centroid pass over all rows — a few minutes at 1M rows on 2 cores, split by row ranges over
 * threads — where HNSW's inserts are sequential graph searches (10k x 2048 took 68 s single-threaded, so
 * 1M would take hours); its state is small and flat (nlist x n_embd centroids + one list number per row),
 * so it persists in the SQLite store next to the chunks and a new chunk joins it by one nearest-centroid
 * lookup, with no graph to repair on delete. The rows themselves stay in the caller's matrix (borrowed). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "search.h"

struct rag_ivf {
    const float *v; /* borrowed [rows][n] */
    int64_t rows, n, nlist;
    float *cent;     /* [nlist][n], unit norm */
    int64_t *off;    /* [nlist + 1]: list l holds row_of[off[l] .. off[l+1]) */
    int64_t *row_of; /* [rows] rows grouped by list, ascending within a list */
    int32_t *list;   /* [rows] the list of each row */
};

/* ---- nearest centroid of each row, split over threads by row ranges ---------------------------------- */

enum { CENT_BLOCK = 1024 }; /* centroids scored per rag_dots call */

typedef struct {
    const float *v, *cent;
    int64_t r0, r1, n, nlist;
    int32_t *best; /* [rows] OUT */
    double *sum;   /* [nlist][n] or NULL: accumulate the rows of each list (k-means update) */
    int64_t *cnt;  /* [nlist] */
} assign_job;

static void *assign_run(void *arg) {
    assign_job *j = arg;
    float *dots = herd_xmalloc(CENT_BLOCK * sizeof(float));
    for (int64_t r = j->r0; r < j->r1; r++) {
        const float *x = j->v + r * j->n;
        float bs = -INFINITY;
        int64_t b = 0;
        for (int64_t c0 = 0; c0 < j->nlist; c0 += CENT_BLOCK) {
            int64_t m = j->nlist - c0 < CENT_BLOCK ? j->nlist - c0 : CENT_BLOCK;
            rag_dots(x, j->cent + c0 * j->n, m, j->n, dots);
            for (int64_t i = 0; i < m; i++)
                if (dots[i] > bs) bs = dots[i], b = c0 + i;
        }
        j->best[r] = (int32_t)b;
        if (j->sum) {
            double *s = j->sum + b * j->n;
            for (int64_t e = 0; e < j->n; e++) s[e] += x[e];
            j->cnt[b]++;
        }
    }
    free(dots);
    return NULL;
}

/* best[r] for r in [0, rows); with sum/cnt ([nlist][n] doubles, [nlist]) non-NULL, also adds each row to
 * its centroid's sum (per thread, then merged in thread order, so a given thread count is deterministic). */
static void assign_rows(const float *v, int64_t rows, int64_t n, const float *cent, int64_t nlist, int n_threads,
                        int32_t *best, double *sum, int64_t *cnt) {
    if (n_threads < 1) n_threads = 1;
    if (rows < 256) n_threads = 1;
    assign_job *jobs = herd_xcalloc((size_t)n_threads, sizeof *jobs);
    pthread_t *th = herd_xcalloc((size_t)n_threads, sizeof *th);
    for (int t = 0; t < n_threads; t++) {
        jobs[t] = (assign_job){.v = v, .cent = cent, .r0 = rows * t / n_threads, .r1 = rows * (t + 1) / n_threads,
                               .n = n, .nlist = nlist, .best = best};
        if (sum) {
            jobs[t].sum = t ? herd_xcalloc((size_t)(nlist * n), sizeof(double)) : sum;
            jobs[t].cnt = t ? herd_xcalloc((size_t)nlist, sizeof(int64_t)) : cnt;
        }
        if (t > 0 && pthread_create(&th[t], NULL, assign_run, &jobs[t]) != 0) th[t] = 0, assign_run(&jobs[t]);
    }
    assign_run(&jobs[0]);
    for (int t = 1; t < n_threads; t++) {
        if (th[t]) pthread_join(th[t], NULL);
        if (sum) {
            for (int64_t i = 0; i < nlist * n; i++) sum[i] += jobs[t].sum[i];
            for (int64_t i = 0; i < nlist; i++) cnt[i] += jobs[t].cnt[i];
            free(jobs[t].sum), free(jobs[t].cnt);
        }
    }
    free(jobs), free(th);
}

static uint64_t xs(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static void normalise(float *x, int64_t n) {
    double s = 0;
    for (int64_t e = 0; e < n; e++) s += (double)x[e] * x[e];
    if (s > 0)
        for (int64_t e = 0; e < n; e++) x[e] = (float)(x[e] / sqrt(s));
}

int64_t rag_ivf_default_nlist(int64_t rows) {
    /* ~sqrt(rows) lists: a probe scans ~sqrt(rows) rows, the centroid pass nlist; at least 39 sample rows
     * per centroid (below that k-means is poorly determined) */
    int64_t nl = (int64_t)sqrt((double)rows);
    if (nl > rows / 39) nl = rows / 39;
    return nl < 1 ? 1 : nl;
}

/* Groups rows by list (counting sort: stable, so ascending rows within each list). */
static void build_lists(rag_ivf *f) {
    f->off = herd_xcalloc((size_t)f->nlist + 1, sizeof(int64_t));
    f->row_of = herd_xmalloc((size_t)(f->rows ? f->rows : 1) * sizeof(int64_t));
    for (int64_t r = 0; r < f->rows; r++) f->off[f->list[r] + 1]++;
    for (int64_t l = 0; l < f->nlist; l++) f->off[l + 1] += f->off[l];
    int64_t *fill = herd_xmalloc((size_t)f->nlist * sizeof(int64_t));
    memcpy(fill, f->off, (size_t)f->nlist * sizeof(int64_t));
    for (int64_t r = 0; r < f->rows; r++) f->row_of[fill[f->list[r]]++] = r;
    free(fill);
}

rag_ivf *rag_ivf_build(const float *v, int64_t rows, int64_t n, int64_t nlist, int n_iter, uint64_t seed,
                       int n_threads) {
    HERD_ASSERT(rows >= 1 && n >= 1);
    if (nlist <= 0) nlist = rag_ivf_default_nlist(rows);
    if (nlist > rows) nlist = rows;
    uint64_t s = seed ? seed : 1;
    /* the training sample: up to 256 rows per centroid (as FAISS caps it), a seeded partial shuffle */
    int64_t ns = nlist * 256 < rows ? nlist * 256 : rows;
    int64_t *perm = herd_xmalloc((size_t)rows * sizeof(int64_t));
    for (int64_t r = 0; r < rows; r++) perm[r] = r;
    for (int64_t i = 0; i < ns; i++) {
        int64_t j = i + (int64_t)(xs(&s) % (uint64_t)(rows - i));
        int64_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    float *sample = herd_xmalloc((size_t)(ns * n) * sizeof(float));
    for (int64_t i = 0; i < ns; i++) memcpy(sample + i * n, v + perm[i] * n, (size_t)n * sizeof(float));
    free(perm);
    /* spherical k-means: start from the first nlist sample rows (already a random draw) */
    float *cent = herd_xmalloc((size_t)(nlist * n) * sizeof(float));
    memcpy(cent, sample, (size_t)(nlist * n) * sizeof(float));
    int32_t *best = herd_xmalloc((size_t)ns * sizeof(int32_t));
    double *sum = herd_xmalloc((size_t)(nlist * n) * sizeof(double));
    int64_t *cnt = herd_xmalloc((size_t)nlist * sizeof(int64_t));
    for (int it = 0; it < n_iter; it++) {
        memset(sum, 0, (size_t)(nlist * n) * sizeof(double));
        memset(cnt, 0, (size_t)nlist * sizeof(int64_t));
        assign_rows(sample, ns, n, cent, nlist, n_threads, best, sum, cnt);
        for (int64_t l = 0; l < nlist; l++) {
            if (cnt[l] == 0) continue;
            for (int64_t e = 0; e < n; e++) cent[l * n + e] = (float)sum[l * n + e];
            normalise(cent + l * n, n);
        }
        /* an empty list takes a random member of the largest one, nudged apart from its centroid (as
         * FAISS splits big clusters), so every list ends up used */
        for (int64_t l = 0; l < nlist; l++) {
            if (cnt[l]) continue;
            int64_t big = 0;
            for (int64_t b = 1; b < nlist; b++)
                if (cnt[b] > cnt[big]) big = b;
            if (cnt[big] < 2) break;
            int64_t pick = (int64_t)(xs(&s) % (uint64_t)cnt[big]), seen = 0;
            for (int64_t i = 0; i < ns; i++)
                if (best[i] == big && seen++ == pick) {
                    memcpy(cent + l * n, sample + i * n, (size_t)n * sizeof(float));
                    break;
                }
            for (int64_t e = 0; e < n; e++) cent[l * n + e] += 1e-3f * (float)((double)(xs(&s) >> 11) * 0x1p-53 - 0.5);
            normalise(cent + l * n, n);
            cnt[big] /= 2, cnt[l] = 1;
        }
    }
    free(sum), free(cnt), free(best), free(sample);
    int32_t *list = herd_xmalloc((size_t)rows * sizeof(int32_t));
    assign_rows(v, rows, n, cent, nlist, n_threads, list, NULL, NULL);
    rag_ivf *f = rag_ivf_from(v, rows, n, cent, nlist, list);
    free(cent), free(list);
    return f;
}

rag_ivf *rag_ivf_from(const float *v, int64_t rows, int64_t n, const float *centroids, int64_t nlist,
                      const int32_t *list) {
    HERD_ASSERT(nlist >= 1 && n >= 1);
    rag_ivf *f = herd_xcalloc(1, sizeof *f);
    *f = (rag_ivf){.v = v, .rows = rows, .n = n, .nlist = nlist};
    f->cent = herd_xmalloc((size_t)(nlist * n) * sizeof(float));
    memcpy(f->cent, centroids, (size_t)(nlist * n) * sizeof(float));
    f->list = herd_xmalloc((size_t)(rows ? rows : 1) * sizeof(int32_t));
    for (int64_t r = 0; r < rows; r++) {
        HERD_ASSERT(list[r] >= 0 && list[r] < nlist);
        f->list[r] = list[r];
    }
    build_lists(f);
    return f;
}

void rag_ivf_assign(const float *centroids, int64_t nlist, int64_t n, const float *v, int64_t rows, int n_threads,
                    int32_t *list) {
    assign_rows(v, rows, n, centroids, nlist, n_threads, list, NULL, NULL);
}

const float *rag_ivf_centroids(const rag_ivf *f, int64_t *nlist) {
    *nlist = f->nlist;
    return f->cent;
}

const int32_t *rag_ivf_lists(const rag_ivf *f) { return f->list; }

size_t rag_ivf_bytes(const rag_ivf *f) {
    return sizeof *f + (size_t)(f->nlist * f->n) * sizeof(float) + (size_t)(f->nlist + 1) * sizeof(int64_t) +
           (size_t)f->rows * (sizeof(int64_t) + sizeof(int32_t));
}

void rag_ivf_free(rag_ivf *f) {
    if (!f) return;
    free(f->cent), free(f->off), free(f->row_of), free(f->list), free(f);
}

/* ---- search ----------------------------------------------------------------------------------------- */

static int cmp_best(const void *a, const void *b) {
    const rag_hit *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score ? 1 : (x->row > y->row) - (x->row < y->row);
}

int64_t rag_ivf_search(const rag_ivf *f, const float *q, int64_t k, int nprobe, rag_hit *hits) {
    if (k <= 0 || f->rows == 0) return 0;
    if (nprobe < 1) nprobe = 1;
    if (nprobe > f->nlist) nprobe = (int)f->nlist;
    /* the nprobe best lists: exact top-k over the centroids */
    rag_hit *probe = herd_xmalloc((size_t)nprobe * sizeof *probe);
    int64_t np = rag_topk(q, f->cent, f->nlist, f->n, NULL, nprobe, 1, probe);
    /* their rows, scored in blocks through a gather buffer so rag_dots sees contiguous rows */
    int64_t cand = 0;
    for (int64_t p = 0; p < np; p++) cand += f->off[probe[p].row + 1] - f->off[probe[p].row];
    rag_hit *all = herd_xmalloc((size_t)(cand ? cand : 1) * sizeof *all);
    int64_t na = 0;
    for (int64_t p = 0; p < np; p++) {
        int64_t l = probe[p].row;
        for (int64_t i = f->off[l]; i < f->off[l + 1]; i++) {
            int64_t r = f->row_of[i];
            float d;
            if (i + 2 < f->off[l + 1]) __builtin_prefetch(f->v + f->row_of[i + 2] * f->n);
            rag_dots(q, f->v + r * f->n, 1, f->n, &d);
            all[na++] = (rag_hit){r, d};
        }
    }
    /* top k of the candidates (best first, ties: lower row), by insertion into a sorted array of k: most
     * candidates fail the one comparison with the current k-th */
    int64_t out = na < k ? na : k;
    if (na > 4 * k) {
        rag_hit *top = herd_xmalloc((size_t)k * sizeof *top);
        int64_t nt = 0;
        for (int64_t i = 0; i < na; i++) {
            if (nt < k) {
                top[nt++] = all[i];
                if (nt == k) qsort(top, (size_t)k, sizeof *top, cmp_best);
                continue;
            }
            if (cmp_best(&all[i], &top[k - 1]) >= 0) continue;
            int64_t j = k - 1; /* insertion into the sorted top */
            while (j > 0 && cmp_best(&all[i], &top[j - 1]) < 0) top[j] = top[j - 1], j--;
            top[j] = all[i];
        }
        memcpy(hits, top, (size_t)out * sizeof *hits);
        free(top);
    } else {
        qsort(all, (size_t)na, sizeof *all, cmp_best);
        memcpy(hits, all, (size_t)out * sizeof *hits);
    }
    free(all), free(probe);
    return out;
}
