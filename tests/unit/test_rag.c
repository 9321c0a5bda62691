/* src/rag: the AVX-512 dot kernel against the scalar reference on ragged shapes; exact top-k against a
 * brute-force sort (with and without a filter mask, 1 and 3 threads); HNSW recall@10 against exact
 * search on clustered data (reported, and bounded below); IVF likewise, plus exactness with every list
 * probed and rebuilding from saved state; HTML to text; chunk windows. */
#include <stdbool.h>

#include "herd.h"
#include "rag/search.h"
#include "rag/text.h"
#include "testutil.h"

static void fill(float *v, int64_t rows, int64_t n, bool normalise) {
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t e = 0; e < n; e++) v[r * n + e] = tu_sym(), s += (double)v[r * n + e] * v[r * n + e];
        if (normalise)
            for (int64_t e = 0; e < n; e++) v[r * n + e] /= (float)sqrt(s);
    }
}

static void test_dots(void) {
    if (!__builtin_cpu_supports("avx512f")) {
        printf("  (no AVX-512 on this CPU: kernel comparison skipped)\n");
        return;
    }
    const int64_t ns[] = {1, 3, 15, 16, 17, 31, 33, 100, 257, 2048};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int64_t rows = 1; rows <= 9; rows += 2) {
            int64_t n = ns[i];
            float *q = malloc((size_t)n * 4), *v = malloc((size_t)(rows * n) * 4), a[9], b[9];
            fill(q, 1, n, false), fill(v, rows, n, false);
            rag_dots_ref(q, v, rows, n, a);
            rag_dots_avx512(q, v, rows, n, b);
            for (int64_t r = 0; r < rows; r++) {
                double ex = 0, mag = 0;
                for (int64_t e = 0; e < n; e++) ex += (double)q[e] * v[r * n + e], mag += fabs((double)q[e] * v[r * n + e]);
                CHECK(fabs(a[r] - ex) <= 1e-6 * mag + 1e-7 && fabs(b[r] - ex) <= 1e-6 * mag + 1e-7,
                      "n %lld row %lld: ref %g avx512 %g exact %g", (long long)n, (long long)r, a[r], b[r], ex);
            }
            free(q), free(v);
        }
}

static int cmp_desc(const void *x, const void *y) {
    const rag_hit *a = x, *b = y;
    return a->score > b->score ? -1 : a->score < b->score ? 1 : (a->row > b->row) - (a->row < b->row);
}

static void test_topk(void) {
    const int64_t rows = 5003, n = 77;
    float *v = malloc((size_t)(rows * n) * 4), q[77];
    fill(v, rows, n, true), fill(q, 1, n, true);
    uint8_t *allow = malloc((size_t)rows);
    for (int64_t r = 0; r < rows; r++) allow[r] = (uint8_t)(r % 3 != 0);
    rag_hit *brute = malloc((size_t)rows * sizeof *brute), got[50];
    for (int pass = 0; pass < 2; pass++) {
        int64_t nb = 0;
        for (int64_t r = 0; r < rows; r++) {
            if (pass && !allow[r]) continue;
            double s = 0;
            for (int64_t e = 0; e < n; e++) s += (double)q[e] * v[r * n + e];
            brute[nb++] = (rag_hit){r, (float)s};
        }
        qsort(brute, (size_t)nb, sizeof *brute, cmp_desc);
        for (int th = 1; th <= 3; th += 2) {
            int64_t k = rag_topk(q, v, rows, n, pass ? allow : NULL, 50, th, got);
            CHECK(k == 50, "k %lld", (long long)k);
            for (int64_t i = 0; i < k; i++)
                CHECK(got[i].row == brute[i].row && fabsf(got[i].score - brute[i].score) < 1e-5f,
                      "filter %d threads %d rank %lld: row %lld (%g) vs brute force %lld (%g)", pass, th, (long long)i,
                      (long long)got[i].row, got[i].score, (long long)brute[i].row, brute[i].score);
        }
    }
    CHECK(rag_topk(q, v, 3, n, NULL, 10, 1, got) == 3, "fewer rows than k");
    free(v), free(allow), free(brute);
}

static void test_hnsw(void) {
    /* 64 clusters of 8000 points in 64 dims: like embeddings, not uniform noise */
    const int64_t rows = 8000, n = 64, nq = 200, C = 64;
    float *cent = malloc((size_t)(C * n) * 4), *v = malloc((size_t)(rows * n) * 4), *q = malloc((size_t)(nq * n) * 4);
    fill(cent, C, n, true);
    for (int64_t r = 0; r < rows + nq; r++) {
        float *x = r < rows ? v + r * n : q + (r - rows) * n;
        int64_t c = (int64_t)(tu_u64() % (uint64_t)C);
        double s = 0;
        for (int64_t e = 0; e < n; e++) x[e] = cent[c * n + e] + 0.35f * tu_sym(), s += (double)x[e] * x[e];
        for (int64_t e = 0; e < n; e++) x[e] /= (float)sqrt(s);
    }
    rag_hnsw *h = rag_hnsw_build(v, rows, n, 16, 100, 42);
    int64_t found = 0;
    rag_hit ex[10], ap[10];
    for (int64_t i = 0; i < nq; i++) {
        rag_topk(q + i * n, v, rows, n, NULL, 10, 1, ex);
        int64_t k = rag_hnsw_search(h, q + i * n, 10, 64, ap);
        for (int a = 0; a < 10; a++)
            for (int64_t b = 0; b < k; b++) found += ex[a].row == ap[b].row;
    }
    double recall = (double)found / (double)(nq * 10);
    printf("  hnsw: %lld x %lld, M 16, ef_construction 100, ef 64: recall@10 %.4f\n", (long long)rows, (long long)n, recall);
    CHECK(recall >= 0.95, "recall@10 %.4f", recall);
    rag_hnsw_free(h);
    free(cent), free(v), free(q);
}

/* IVF: recall@10 against exact search at a few nprobe (reported; nprobe 16 bounded below), exact results
 * when every list is probed, and an index rebuilt from its saved state (centroids + lists) answering the
 * same as the one built. Same clustered data as test_hnsw. */
static void test_ivf(void) {
    const int64_t rows = 8000, n = 64, nq = 200, C = 64;
    float *cent = malloc((size_t)(C * n) * 4), *v = malloc((size_t)(rows * n) * 4), *q = malloc((size_t)(nq * n) * 4);
    fill(cent, C, n, true);
    for (int64_t r = 0; r < rows + nq; r++) {
        float *x = r < rows ? v + r * n : q + (r - rows) * n;
        int64_t c = (int64_t)(tu_u64() % (uint64_t)C);
        double s = 0;
        for (int64_t e = 0; e < n; e++) x[e] = cent[c * n + e] + 0.35f * tu_sym(), s += (double)x[e] * x[e];
        for (int64_t e = 0; e < n; e++) x[e] /= (float)sqrt(s);
    }
    rag_ivf *f = rag_ivf_build(v, rows, n, 0, 10, 42, 2);
    int64_t nlist;
    const float *cc = rag_ivf_centroids(f, &nlist);
    CHECK(nlist == rag_ivf_default_nlist(rows) && nlist == 89, "nlist %lld", (long long)nlist);
    rag_ivf *g = rag_ivf_from(v, rows, n, cc, nlist, rag_ivf_lists(f));
    /* the saved lists are each row's nearest centroid */
    int32_t *again = malloc((size_t)rows * sizeof *again);
    rag_ivf_assign(cc, nlist, n, v, rows, 1, again);
    CHECK(!memcmp(again, rag_ivf_lists(f), (size_t)rows * sizeof *again), "assignments reproduce");
    int64_t used = 0;
    for (int64_t l = 0; l < nlist; l++) {
        bool any = false;
        for (int64_t r = 0; r < rows && !any; r++) any = again[r] == l;
        used += any;
    }
    CHECK(used == nlist, "every list used: %lld of %lld", (long long)used, (long long)nlist);
    const int probes[] = {1, 4, 16, 89};
    rag_hit ex[10], ap[10], ap2[10];
    for (int p = 0; p < 4; p++) {
        int64_t found = 0;
        bool same = true, exact = true;
        for (int64_t i = 0; i < nq; i++) {
            rag_topk(q + i * n, v, rows, n, NULL, 10, 1, ex);
            int64_t k = rag_ivf_search(f, q + i * n, 10, probes[p], ap);
            int64_t k2 = rag_ivf_search(g, q + i * n, 10, probes[p], ap2);
            same &= k == k2; /* field by field: a rag_hit has padding bytes that memcmp would compare */
            for (int64_t a = 0; a < k && a < k2; a++) same &= ap[a].row == ap2[a].row && ap[a].score == ap2[a].score;
            for (int a = 0; a < 10; a++) {
                exact &= k == 10 && ap[a].row == ex[a].row && ap[a].score == ex[a].score;
                for (int64_t b = 0; b < k; b++) found += ex[a].row == ap[b].row;
            }
        }
        double recall = (double)found / (double)(nq * 10);
        printf("  ivf: %lld x %lld, nlist %lld, nprobe %d: recall@10 %.4f\n", (long long)rows, (long long)n,
               (long long)nlist, probes[p], recall);
        CHECK(same, "the index from saved state answers the same (nprobe %d)", probes[p]);
        if (probes[p] == 16) CHECK(recall >= 0.94, "recall@10 %.4f at nprobe 16", recall);
        if (probes[p] == nlist) CHECK(exact, "all lists probed: the exact top 10");
    }
    rag_ivf_free(f), rag_ivf_free(g);
    free(again), free(cent), free(v), free(q);
}

static void test_html(void) {
    const char *h = "<html><head><title>T</title><style>p{color:red}</style><script>var x='<p>';</script></head>"
                    "<body><!-- c --><h1>A &amp; B</h1><p>x &lt;y&gt; &#233;&#x20AC; &bogus; <b>bold</b>\n\n  z</p>"
                    "<a href=\"q>r\">link</a></body></html>";
    char *t;
    size_t n;
    rag_html_to_text(h, strlen(h), &t, &n);
    CHECK(!strcmp(t, "T\n\nA & B\n\nx <y> \xc3\xa9\xe2\x82\xac &bogus; bold z\nlink"), "got '%s'", t);
    CHECK(strlen(t) == n, "length");
    free(t);
    rag_html_to_text("<", 1, &t, &n);
    CHECK(!strcmp(t, "<"), "lone <: '%s'", t);
    free(t);
    rag_html_to_text("<script>never closed", 20, &t, &n);
    CHECK(n == 0, "unclosed script: '%s'", t);
    free(t);
}

static void test_windows(void) {
    int64_t *s, *e;
    int64_t c = rag_chunk_windows(1000, 512, 128, &s, &e);
    CHECK(c == 3 && s[0] == 0 && e[0] == 512 && s[1] == 384 && e[1] == 896 && s[2] == 488 && e[2] == 1000,
          "1000/512/128: %lld windows", (long long)c);
    free(s), free(e);
    c = rag_chunk_windows(10, 512, 128, &s, &e);
    CHECK(c == 1 && s[0] == 0 && e[0] == 10, "short");
    free(s), free(e);
    c = rag_chunk_windows(0, 512, 128, &s, &e);
    CHECK(c == 0, "empty");
    free(s), free(e);
}

int main(void) {
    tu_rng = 15;
    test_dots();
    test_topk();
    test_hnsw();
    test_ivf();
    test_html();
    test_windows();
    return TU_DONE("test_rag");
}
