/* Exact top-k cosine search (see search.h). */
#include "search.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"

void rag_dots_ref(const float *q, const float *v, int64_t rows, int64_t n, float *dots) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x = v + r * n;
        float s = 0;
        for (int64_t e = 0; e < n; e++) s += q[e] * x[e];
        dots[r] = s;
    }
}

/* Four rows at a time share each load of q; 16 lanes per row, a masked tail for n % 16. */
__attribute__((target("avx512f"))) void rag_dots_avx512(const float *q, const float *v, int64_t rows, int64_t n,
                                                        float *dots) {
    int64_t n16 = n & ~(int64_t)15;
    __mmask16 tail = (__mmask16)((1u << (n - n16)) - 1);
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *x0 = v + r * n, *x1 = x0 + n, *x2 = x1 + n, *x3 = x2 + n;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t e = 0; e < n16; e += 16) {
            __m512 qq = _mm512_loadu_ps(q + e);
            a0 = _mm512_fmadd_ps(qq, _mm512_loadu_ps(x0 + e), a0);
            a1 = _mm512_fmadd_ps(qq, _mm512_loadu_ps(x1 + e), a1);
            a2 = _mm512_fmadd_ps(qq, _mm512_loadu_ps(x2 + e), a2);
            a3 = _mm512_fmadd_ps(qq, _mm512_loadu_ps(x3 + e), a3);
        }
        if (tail) {
            __m512 qq = _mm512_maskz_loadu_ps(tail, q + n16);
            a0 = _mm512_fmadd_ps(qq, _mm512_maskz_loadu_ps(tail, x0 + n16), a0);
            a1 = _mm512_fmadd_ps(qq, _mm512_maskz_loadu_ps(tail, x1 + n16), a1);
            a2 = _mm512_fmadd_ps(qq, _mm512_maskz_loadu_ps(tail, x2 + n16), a2);
            a3 = _mm512_fmadd_ps(qq, _mm512_maskz_loadu_ps(tail, x3 + n16), a3);
        }
        dots[r] = _mm512_reduce_add_ps(a0);
        dots[r + 1] = _mm512_reduce_add_ps(a1);
        dots[r + 2] = _mm512_reduce_add_ps(a2);
        dots[r + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; r < rows; r++) {
        const float *x = v + r * n;
        __m512 a = _mm512_setzero_ps();
        for (int64_t e = 0; e < n16; e += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + e), _mm512_loadu_ps(x + e), a);
        if (tail) a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, q + n16), _mm512_maskz_loadu_ps(tail, x + n16), a);
        dots[r] = _mm512_reduce_add_ps(a);
    }
}

void rag_dots(const float *q, const float *v, int64_t rows, int64_t n, float *dots) {
    static int have = -1;
    if (have < 0) have = __builtin_cpu_supports("avx512f") ? 1 : 0;
    if (have) rag_dots_avx512(q, v, rows, n, dots);
    else rag_dots_ref(q, v, rows, n, dots);
}

/* ---- top-k: a min-heap of the k best seen (worst at the root) ------------------------------------- */

/* a better than b: higher score, then lower row */
static inline bool better(rag_hit a, rag_hit b) {
    return a.score > b.score || (a.score == b.score && a.row < b.row);
}

static void heap_push(rag_hit *h, int64_t *n, int64_t k, rag_hit x) {
    if (*n == k) {
        if (!better(x, h[0])) return;
        /* replace the root, sift down */
        int64_t i = 0;
        for (;;) {
            int64_t l = 2 * i + 1, r = l + 1, w = i;
            rag_hit cur = w == i ? x : h[w];
            if (l < k && better(cur, h[l])) w = l, cur = h[l];
            if (r < k && better(cur, h[r])) w = r;
            if (w == i) break;
            h[i] = h[w];
            i = w;
        }
        h[i] = x;
        return;
    }
    int64_t i = (*n)++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!better(h[p], x)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static int cmp_hit(const void *a, const void *b) {
    rag_hit x = *(const rag_hit *)a, y = *(const rag_hit *)b;
    return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

typedef struct {
    const float *q, *v;
    int64_t r0, r1, n, k;
    const uint8_t *allow;
    rag_hit *heap;
    int64_t nh;
} topk_job;

enum { DOT_BLOCK = 256 }; /* rows per rag_dots call: the dots stay in L1 */

static void *topk_run(void *arg) {
    topk_job *j = arg;
    float dots[DOT_BLOCK];
    for (int64_t r = j->r0; r < j->r1; r += DOT_BLOCK) {
        int64_t m = j->r1 - r < DOT_BLOCK ? j->r1 - r : DOT_BLOCK;
        rag_dots(j->q, j->v + r * j->n, m, j->n, dots);
        for (int64_t i = 0; i < m; i++)
            if (!j->allow || j->allow[r + i]) heap_push(j->heap, &j->nh, j->k, (rag_hit){r + i, dots[i]});
    }
    return NULL;
}

int64_t rag_topk(const float *q, const float *v, int64_t rows, int64_t n, const uint8_t *allow, int64_t k,
                 int n_threads, rag_hit *hits) {
    if (k <= 0 || rows <= 0) return 0;
    if (n_threads < 1) n_threads = 1;
    if (rows < 4096) n_threads = 1;
    topk_job *jobs = herd_xcalloc((size_t)n_threads, sizeof *jobs);
    pthread_t *th = herd_xcalloc((size_t)n_threads, sizeof *th);
    for (int t = 0; t < n_threads; t++) {
        jobs[t] = (topk_job){.q = q, .v = v, .r0 = rows * t / n_threads, .r1 = rows * (t + 1) / n_threads, .n = n,
                             .k = k, .allow = allow, .heap = herd_xmalloc((size_t)k * sizeof(rag_hit))};
        if (t > 0 && pthread_create(&th[t], NULL, topk_run, &jobs[t]) != 0) th[t] = 0, topk_run(&jobs[t]);
    }
    topk_run(&jobs[0]);
    rag_hit *all = herd_xmalloc((size_t)(k * n_threads) * sizeof(rag_hit));
    int64_t na = 0;
    for (int t = 0; t < n_threads; t++) {
        if (t > 0 && th[t]) pthread_join(th[t], NULL);
        memcpy(all + na, jobs[t].heap, (size_t)jobs[t].nh * sizeof(rag_hit));
        na += jobs[t].nh;
        free(jobs[t].heap);
    }
    qsort(all, (size_t)na, sizeof *all, cmp_hit);
    int64_t out = na < k ? na : k;
    memcpy(hits, all, (size_t)out * sizeof(rag_hit));
    free(all), free(jobs), free(th);
    return out;
}
