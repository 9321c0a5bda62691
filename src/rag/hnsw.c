/* HNSW (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
 * Navigable Small World graphs", 2016): algorithms 1 (insert), 2 (search a layer), 4 (select neighbours
 * by the heuristic, keeping pruned ones to fill up) and 5 (k-NN search). Similarity is the dot product
 * of unit rows (cosine); the graph holds row numbers into the caller's matrix. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "search.h"

struct rag_hnsw {
    const float *v; /* borrowed [rows][n] */
    int64_t rows, n;
    int M, M0, ef_c;
    int *level;        /* [rows] top layer of each node */
    int64_t *links0;   /* [rows][M0] layer-0 neighbours, -1 = none */
    int64_t **links;   /* [rows] -> [level][M] layers 1..level, NULL for level 0 */
    int64_t entry;
    int top;
};

static inline float sim(const rag_hnsw *h, const float *q, int64_t r) {
    float d;
    rag_dots(q, h->v + r * h->n, 1, h->n, &d);
    return d;
}

static inline int64_t *nbrs(const rag_hnsw *h, int64_t r, int layer) {
    return layer == 0 ? h->links0 + r * h->M0 : h->links[r] + (int64_t)(layer - 1) * h->M;
}

/* ---- a binary heap of (score, row); max = true keeps the highest score at the root ----------------- */
typedef struct {
    rag_hit *a;
    int64_t n, cap;
    bool max;
} heap;

static inline bool above(const heap *hp, rag_hit x, rag_hit y) {
    return hp->max ? x.score > y.score : x.score < y.score;
}
static void hpush(heap *hp, rag_hit x) {
    if (hp->n == hp->cap) hp->cap = hp->cap ? hp->cap * 2 : 64, hp->a = herd_xrealloc(hp->a, (size_t)hp->cap * sizeof x);
    int64_t i = hp->n++;
    while (i > 0 && above(hp, x, hp->a[(i - 1) / 2])) hp->a[i] = hp->a[(i - 1) / 2], i = (i - 1) / 2;
    hp->a[i] = x;
}
static rag_hit hpop(heap *hp) {
    rag_hit top = hp->a[0], x = hp->a[--hp->n];
    int64_t i = 0;
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        rag_hit cur = x;
        if (l < hp->n && above(hp, hp->a[l], cur)) w = l, cur = hp->a[l];
        if (r < hp->n && above(hp, hp->a[r], cur)) w = r;
        if (w == i) break;
        hp->a[i] = hp->a[w];
        i = w;
    }
    if (hp->n) hp->a[i] = x;
    return top;
}

/* Algorithm 2: the ef nearest to q found greedily on one layer from the entry points in W (in: the
 * entry points, out: the result, as a min-heap: worst at the root). visited: a byte per row, cleared
 * by the caller afterwards via the list it returns in *touched. */
static void search_layer(const rag_hnsw *h, const float *q, heap *W, int ef, int layer, uint8_t *visited,
                         heap *touched) {
    heap C = {.max = true};
    for (int64_t i = 0; i < W->n; i++) {
        hpush(&C, W->a[i]);
        if (!visited[W->a[i].row]) visited[W->a[i].row] = 1, hpush(touched, (rag_hit){W->a[i].row, 0});
    }
    while (C.n) {
        rag_hit c = hpop(&C);
        if (W->n >= ef && c.score < W->a[0].score) break;
        int m = layer == 0 ? h->M0 : h->M;
        const int64_t *nb = nbrs(h, c.row, layer);
        for (int j = 0; j < m && nb[j] >= 0; j++) {
            int64_t e = nb[j];
            if (visited[e]) continue;
            visited[e] = 1;
            hpush(touched, (rag_hit){e, 0});
            float s = sim(h, q, e);
            if (W->n < ef || s > W->a[0].score) {
                hpush(&C, (rag_hit){e, s});
                hpush(W, (rag_hit){e, s});
                if (W->n > ef) hpop(W);
            }
        }
    }
    free(C.a);
}

static int cmp_best(const void *a, const void *b) {
    const rag_hit *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score ? 1 : (x->row > y->row) - (x->row < y->row);
}

/* Algorithm 4: from cand (sorted best first), keep c when it is closer to the base than to every kept
 * one; fill up to m with the pruned ones. OUT: out[0..m) (-1 padded). */
static void select_nbrs(const rag_hnsw *h, rag_hit *cand, int64_t nc, int m, int64_t *out) {
    int k = 0;
    int64_t *pruned = herd_xmalloc((size_t)(nc ? nc : 1) * sizeof(int64_t));
    int64_t np = 0;
    for (int64_t i = 0; i < nc && k < m; i++) {
        bool good = true;
        for (int j = 0; j < k && good; j++)
            if (sim(h, h->v + cand[i].row * h->n, out[j]) > cand[i].score) good = false;
        if (good) out[k++] = cand[i].row;
        else pruned[np++] = cand[i].row;
    }
    for (int64_t i = 0; i < np && k < m; i++) out[k++] = pruned[i];
    for (; k < m; k++) out[k] = -1;
    free(pruned);
}

static void clear_visited(uint8_t *visited, heap *touched) {
    for (int64_t i = 0; i < touched->n; i++) visited[touched->a[i].row] = 0;
    touched->n = 0;
}

/* Adds e to r's neighbours on layer; when full, re-selects among the old ones plus e. */
static void link_add(rag_hnsw *h, int64_t r, int64_t e, int layer) {
    int m = layer == 0 ? h->M0 : h->M;
    int64_t *nb = nbrs(h, r, layer);
    for (int j = 0; j < m; j++)
        if (nb[j] < 0) { nb[j] = e; return; }
    rag_hit *cand = herd_xmalloc((size_t)(m + 1) * sizeof *cand);
    const float *base = h->v + r * h->n;
    for (int j = 0; j < m; j++) cand[j] = (rag_hit){nb[j], sim(h, base, nb[j])};
    cand[m] = (rag_hit){e, sim(h, base, e)};
    qsort(cand, (size_t)m + 1, sizeof *cand, cmp_best);
    select_nbrs(h, cand, m + 1, m, nb);
    free(cand);
}

static void insert(rag_hnsw *h, int64_t q_row, uint8_t *visited, heap *touched) {
    const float *q = h->v + q_row * h->n;
    int L = h->level[q_row];
    if (h->entry < 0) {
        h->entry = q_row, h->top = L;
        return;
    }
    heap W = {.max = false};
    int64_t ep = h->entry;
    float eps = sim(h, q, ep);
    /* greedy descent through the layers above L */
    for (int layer = h->top; layer > L; layer--) {
        bool moved = true;
        while (moved) {
            moved = false;
            const int64_t *nb = nbrs(h, ep, layer);
            for (int j = 0; j < h->M && nb[j] >= 0; j++) {
                float s = sim(h, q, nb[j]);
                if (s > eps) eps = s, ep = nb[j], moved = true;
            }
        }
    }
    hpush(&W, (rag_hit){ep, eps});
    for (int layer = L < h->top ? L : h->top; layer >= 0; layer--) {
        visited[ep] = 1;
        hpush(touched, (rag_hit){ep, 0});
        search_layer(h, q, &W, h->ef_c, layer, visited, touched);
        clear_visited(visited, touched);
        rag_hit *cand = herd_xmalloc((size_t)W.n * sizeof *cand);
        memcpy(cand, W.a, (size_t)W.n * sizeof *cand);
        qsort(cand, (size_t)W.n, sizeof *cand, cmp_best);
        int m = layer == 0 ? h->M0 : h->M;
        select_nbrs(h, cand, W.n, h->M, nbrs(h, q_row, layer)); /* M new links, up to M0 on layer 0 later */
        if (m > h->M) for (int j = h->M; j < m; j++) nbrs(h, q_row, layer)[j] = -1;
        const int64_t *mine = nbrs(h, q_row, layer);
        for (int j = 0; j < h->M && mine[j] >= 0; j++) link_add(h, mine[j], q_row, layer);
        ep = cand[0].row, eps = cand[0].score;
        free(cand);
        /* W stays as the entry points of the next layer */
    }
    free(W.a);
    if (L > h->top) h->top = L, h->entry = q_row;
}

rag_hnsw *rag_hnsw_build(const float *v, int64_t rows, int64_t n, int M, int ef_construction, uint64_t seed) {
    HERD_ASSERT(M >= 2 && ef_construction >= 1);
    rag_hnsw *h = herd_xcalloc(1, sizeof *h);
    *h = (rag_hnsw){.v = v, .rows = rows, .n = n, .M = M, .M0 = 2 * M, .ef_c = ef_construction, .entry = -1};
    h->level = herd_xmalloc((size_t)(rows ? rows : 1) * sizeof(int));
    h->links0 = herd_xmalloc((size_t)(rows ? rows * h->M0 : 1) * sizeof(int64_t));
    h->links = herd_xcalloc((size_t)(rows ? rows : 1), sizeof(int64_t *));
    memset(h->links0, 0xff, (size_t)(rows * h->M0) * sizeof(int64_t));
    double mL = 1.0 / log((double)M);
    uint64_t s = seed ? seed : 1;
    for (int64_t r = 0; r < rows; r++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
        double u = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
        int L = (int)floor(-log(u) * mL);
        if (L > 32) L = 32;
        h->level[r] = L;
        if (L > 0) {
            h->links[r] = herd_xmalloc((size_t)L * (size_t)M * sizeof(int64_t));
            memset(h->links[r], 0xff, (size_t)L * (size_t)M * sizeof(int64_t));
        }
    }
    uint8_t *visited = herd_xcalloc((size_t)(rows ? rows : 1), 1);
    heap touched = {0};
    for (int64_t r = 0; r < rows; r++) insert(h, r, visited, &touched);
    free(visited), free(touched.a);
    return h;
}

void rag_hnsw_free(rag_hnsw *h) {
    if (!h) return;
    for (int64_t r = 0; r < h->rows; r++) free(h->links[r]);
    free(h->links), free(h->links0), free(h->level), free(h);
}

int64_t rag_hnsw_search(const rag_hnsw *h, const float *q, int64_t k, int ef, rag_hit *hits) {
    if (h->entry < 0 || k <= 0) return 0;
    if (ef < k) ef = (int)k;
    int64_t ep = h->entry;
    float eps = sim(h, q, ep);
    for (int layer = h->top; layer > 0; layer--) {
        bool moved = true;
        while (moved) {
            moved = false;
            const int64_t *nb = nbrs(h, ep, layer);
            for (int j = 0; j < h->M && nb[j] >= 0; j++) {
                float s = sim(h, q, nb[j]);
                if (s > eps) eps = s, ep = nb[j], moved = true;
            }
        }
    }
    uint8_t *visited = herd_xcalloc((size_t)h->rows, 1);
    heap W = {.max = false}, touched = {0};
    visited[ep] = 1;
    hpush(&W, (rag_hit){ep, eps});
    search_layer(h, q, &W, ef, 0, visited, &touched);
    qsort(W.a, (size_t)W.n, sizeof *W.a, cmp_best);
    int64_t out = W.n < k ? W.n : k;
    memcpy(hits, W.a, (size_t)out * sizeof *hits);
    free(W.a), free(touched.a), free(visited);
    return out;
}
