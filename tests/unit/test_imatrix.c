/* Importance-matrix files and weighted quantization (src/quant/imatrix.h, quant_weighted.c):
 *
 *   gguf round trip   an imatrix written as GGUF reads back with the same names, sums (bit for bit), counts,
 *                     datasets, chunk count and size; imatrix_weights gives sums / count (1 where count is 0);
 *   dat round trip    written as .dat it reads back as legacy: ncall = ceil(count / chunk_size), values
 *                     sums / count * ncall, so the weights are sums / count again (to a float rounding); an
 *                     entry whose count is 0 is left out, as llama-imatrix does;
 *   prefixes          every proper prefix of either file fails with a message (or, for the .dat's optional
 *                     tail, reads the entries), never a crash (run under ASan by make test);
 *   weighted rows     every type quant_row_weighted takes quantizes random rows (with random weights) to
 *                     values whose error is within a loose bound of the type's bits, and the same bytes
 *                     twice; a type it does not take (Q8_0) returns false.
 * ggml's own bytes for the weighted quantizers are checked by tests/conformance/imatrix_llama_cpp.sh.
 * Exit status 0 = pass, 1 = fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"
#include "herd.h"
#include "kernels/kernels.h"
#include "quant/imatrix.h"
#include "quant/quant.h"
#include "testutil.h"

static void make(imatrix *im) {
    static const char *names[3] = {"blk.0.attn_k.weight", "blk.0.ffn_down.weight", "blk.1.attn_q.weight"};
    static const int64_t n_in[3] = {64, 96, 64}, counts[3] = {640, 0, 700};
    static char *ds[1] = {"text.txt"};
    memset(im, 0, sizeof *im);
    im->n = 3;
    im->e = calloc(3, sizeof *im->e);
    for (int i = 0; i < 3; i++) {
        imatrix_entry *e = &im->e[i];
        e->name = (char *)names[i];
        e->n_sums = n_in[i];
        e->sums = malloc((size_t)n_in[i] * sizeof *e->sums);
        for (int64_t j = 0; j < n_in[i]; j++) e->sums[j] = counts[i] ? (float)counts[i] * (1.0f + tu_sym() * 0.9f) : 0;
        e->n_counts = 1;
        e->counts = malloc(sizeof *e->counts);
        e->counts[0] = counts[i];
    }
    im->datasets = ds;
    im->n_datasets = 1;
    im->chunk_size = 128;
    im->chunk_count = 5;
}

static void unmake(imatrix *im) {
    for (int i = 0; i < im->n; i++) free(im->e[i].sums), free(im->e[i].counts);
    free(im->e);
}

static void check_prefixes(const char *path, const char *what) {
    herd_mapped_file f;
    CHECK(herd_file_map(path, &f) == 0, "%s: map", what);
    int ok = 0, failed = 0, silent = 0;
    for (uint64_t n = 0; n < f.size; n++) {
        uint8_t *buf = malloc(n ? n : 1);
        memcpy(buf, f.data, n);
        imatrix im;
        herd_err(HERD_OK, "%s", "");
        int rc = imatrix_parse(buf, n, what, &im);
        if (rc == 0) ok++, imatrix_clear(&im);
        else if (*herd_last_error()) failed++;
        else silent++;
        free(buf);
    }
    CHECK(silent == 0, "%s: %d prefixes failed without a message", what, silent);
    printf("  %s: %llu prefixes: %d read, %d refused\n", what, (unsigned long long)f.size, ok, failed);
    herd_file_unmap(&f);
}

static void test_files(void) {
    char gpath[64], dpath[64];
    snprintf(gpath, sizeof gpath, "/tmp/test_imatrix.%ld.gguf", (long)getpid());
    snprintf(dpath, sizeof dpath, "/tmp/test_imatrix.%ld.dat", (long)getpid());
    imatrix im, g, d;
    make(&im);
    CHECK(imatrix_save(&im, gpath, false) == 0, "save gguf: %s", herd_last_error());
    CHECK(imatrix_save(&im, dpath, true) == 0, "save dat: %s", herd_last_error());
    CHECK(imatrix_load(gpath, &g) == 0, "load gguf: %s", herd_last_error());
    CHECK(!g.legacy && g.has_metadata && g.n == 3 && g.chunk_size == 128 && g.chunk_count == 5 && g.n_datasets == 1 &&
              !strcmp(g.datasets[0], "text.txt"),
          "gguf metadata");
    for (int i = 0; i < 3 && g.n == 3; i++) {
        const imatrix_entry *a = &im.e[i], *b = imatrix_find(&g, a->name);
        CHECK(b && b->n_sums == a->n_sums && b->n_counts == 1 && b->counts[0] == a->counts[0] &&
                  !memcmp(b->sums, a->sums, (size_t)a->n_sums * sizeof(float)),
              "gguf entry %s", a->name);
        float *w = malloc((size_t)a->n_sums * sizeof *w);
        imatrix_weights(&g, b, w);
        int bad = 0;
        for (int64_t j = 0; j < a->n_sums; j++) bad += w[j] != (a->counts[0] ? a->sums[j] / (float)a->counts[0] : 1.0f);
        CHECK(bad == 0, "gguf weights of %s: %d wrong", a->name, bad);
        free(w);
    }
    CHECK(imatrix_load(dpath, &d) == 0, "load dat: %s", herd_last_error());
    CHECK(d.legacy && d.n == 2 && d.chunk_count == 5 && d.n_datasets == 1 && !strcmp(d.datasets[0], "text.txt"),
          "dat metadata: n %lld", (long long)d.n);
    CHECK(!imatrix_find(&d, "blk.0.ffn_down.weight"), "the entry with count 0 is not in the .dat");
    for (int i = 0; i < 3; i++) {
        const imatrix_entry *a = &im.e[i], *b = imatrix_find(&d, a->name);
        if (!a->counts[0]) continue;
        CHECK(b && b->counts[0] == (a->counts[0] + 127) / 128, "dat ncall of %s", a->name);
        if (!b) continue;
        float *w = malloc((size_t)a->n_sums * sizeof *w);
        imatrix_weights(&d, b, w);
        double worst = 0;
        for (int64_t j = 0; j < a->n_sums; j++) {
            double want = a->sums[j] / (double)a->counts[0], r = fabs(w[j] - want) / want;
            worst = r > worst ? r : worst;
        }
        CHECK(worst < 1e-6, "dat weights of %s: rel err %g", a->name, worst);
        free(w);
    }
    check_prefixes(gpath, "gguf");
    check_prefixes(dpath, "dat");
    imatrix_clear(&g);
    imatrix_clear(&d);
    unmake(&im);
    unlink(gpath);
    unlink(dpath);
}

static void test_weighted(void) {
    static const struct {
        int type;
        double bound; /* NMSE bound: far above what each type gets on uniform noise */
    } types[] = {{HERD_TYPE_Q2_K, 0.2},  {HERD_TYPE_Q3_K, 0.06},   {HERD_TYPE_Q4_K, 0.015}, {HERD_TYPE_Q5_K, 0.004},
                 {HERD_TYPE_Q6_K, 0.001}, {HERD_TYPE_Q4_0, 0.02},   {HERD_TYPE_Q4_1, 0.015}, {HERD_TYPE_Q5_0, 0.005},
                 {HERD_TYPE_Q5_1, 0.004}, {HERD_TYPE_IQ4_NL, 0.02}, {HERD_TYPE_IQ4_XS, 0.02}};
    enum { N = 512 };
    float x[N], qw[N], y[N];
    uint8_t q[2][N * 2];
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const kernel_type_ops *o = kernels_type(types[k].type);
        double err = 0, ref = 0;
        int differ = 0;
        for (int row = 0; row < 8; row++) {
            for (int j = 0; j < N; j++) x[j] = tu_sym() * (row == 7 ? 1e-3f : 1.0f), qw[j] = 0.01f + (tu_sym() + 1.0f) * 2;
            CHECK(quant_row_weighted(types[k].type, x, q[0], N, qw), "type %s taken", herd_type_name(types[k].type));
            quant_row_weighted(types[k].type, x, q[1], N, qw);
            differ += memcmp(q[0], q[1], (size_t)kernels_row_bytes(types[k].type, N)) != 0;
            o->to_f32(q[0], y, N);
            for (int j = 0; j < N; j++) err += ((double)x[j] - y[j]) * ((double)x[j] - y[j]), ref += (double)x[j] * x[j];
        }
        CHECK(differ == 0, "%s: not deterministic", herd_type_name(types[k].type));
        CHECK(err / ref < types[k].bound, "%s: NMSE %.3g >= %.3g", herd_type_name(types[k].type), err / ref, types[k].bound);
        printf("  weighted %-7s NMSE %.3e\n", herd_type_name(types[k].type), err / ref);
    }
    CHECK(!quant_row_weighted(HERD_TYPE_Q8_0, x, q[0], N, qw), "Q8_0 takes no weights");
}

int main(void) {
    tu_rng = 19;
    kernels_init();
    test_files();
    test_weighted();
    return TU_DONE("test_imatrix");
}
