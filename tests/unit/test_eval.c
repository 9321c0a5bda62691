/* src/eval: the pieces of llama-perplexity herd reproduces without a model.
 *  - eval_mt19937 against the C++ standard's check value (the 10000th output of a default-seeded
 *    std::mt19937 is 4123659995; seed 1 starts 1791095845); eval_uniform stays in range and hits every
 *    value about equally (that it is libstdc++'s draw is checked by perplexity_llama_cpp.sh: llama.cpp and
 *    herd pick the same HellaSwag tasks);
 *  - kld_row_quantize: the quantized row decodes to the log-softmax within scale/2 above the clip, and the
 *    returned nll is -log p(tok);
 *  - kld_file_open on a valid file written with kld_file_write_header + rows, then on corrupt variants
 *    (bad magic, truncated, padded, token out of range, vocabulary mismatch, tiny n_ctx): each refused
 *    with a message, never a crash. */
#include <stdio.h>
#include <unistd.h>

#include "eval/kld_file.h"
#include "eval/tasks.h"
#include "herd.h"
#include "testutil.h"

static void write_file(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(d, 1, n, f);
    fclose(f);
}

int main(void) {
    tu_rng = 77;
    /* mt19937 */
    eval_mt19937 r;
    eval_mt19937_seed(&r, 5489u);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = eval_mt19937_next(&r);
    CHECK(v == 4123659995u, "10000th mt19937 output %u", v);
    eval_mt19937_seed(&r, 1);
    CHECK(eval_mt19937_next(&r) == 1791095845u, "first output for seed 1");
    int hits[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t u = eval_uniform(&r, 7);
        CHECK(u < 7, "uniform out of range %llu", (unsigned long long)u);
        if (u < 7) hits[u]++;
    }
    for (int i = 0; i < 7; i++) CHECK(hits[i] > 850 && hits[i] < 1150, "value %d drawn %d times of 7000", i, hits[i]);
    CHECK(eval_uniform(&r, 1) == 0, "range 1");

    /* kld_row_quantize */
    enum { NV = 37 };
    float lg[NV];
    for (int i = 0; i < NV; i++) lg[i] = 6 * tu_sym();
    lg[5] = -40; /* far below the clip */
    uint16_t row[2 * ((NV + 1) / 2) + 4];
    double nll = kld_row_quantize(NV, lg, row, 3);
    double mx = lg[0], se = 0;
    for (int i = 0; i < NV; i++) mx = lg[i] > mx ? lg[i] : mx;
    for (int i = 0; i < NV; i++) se += exp(lg[i] - mx);
    CHECK(fabs(nll - (mx + log(se) - lg[3])) < 1e-5, "nll %g", nll);
    float scale, minlp;
    memcpy(&scale, row, 4), memcpy(&minlp, row + 2, 4);
    for (int i = 0; i < NV; i++) {
        double lp = lg[i] - mx - log(se), q = scale * row[4 + i] + minlp;
        if (lp > minlp) CHECK(fabs(q - lp) <= scale * 0.51 + 1e-5, "token %d: %g vs %g", i, q, lp);
        else CHECK(row[4 + i] == 0, "clipped token %d", i);
    }
    CHECK(row[4 + NV] == 0, "pad of an odd vocabulary");

    /* kld_file: a valid file, then corrupt ones */
    char path[64];
    snprintf(path, sizeof path, "/tmp/test_eval.%ld.bin", (long)getpid());
    const int32_t n_ctx = 6, n_chunk = 2;
    const int64_t nv = 2 * ((NV + 1) / 2) + 4, n_rows = n_ctx - 1 - n_ctx / 2;
    int32_t toks[12];
    for (int i = 0; i < 12; i++) toks[i] = i * 3 % NV;
    FILE *f = fopen(path, "wb");
    CHECK(kld_file_write_header(f, n_ctx, NV, n_chunk, toks) == HERD_OK, "header");
    for (int i = 0; i < n_chunk * n_rows; i++) {
        row[4] = (uint16_t)i;
        fwrite(row, 2, (size_t)nv, f);
    }
    fclose(f);
    kld_file k;
    CHECK(kld_file_open(path, NV, &k) == HERD_OK, "valid file: %s", herd_last_error());
    CHECK(k.n_ctx == n_ctx && k.n_vocab == NV && k.n_chunk == n_chunk && k.n_rows == n_rows && k.nv == nv, "header");
    uint16_t back[sizeof row / 2];
    kld_file_row(&k, 1, 1, back);
    CHECK(back[4] == n_rows + 1 && !memcmp(back + 5, row + 5, (size_t)(nv - 5) * 2), "row (1,1)");
    CHECK(k.tokens[11] == toks[11], "tokens");
    size_t size = k.f.size;
    uint8_t *good = malloc(size + 8);
    memcpy(good, k.f.data, size);
    kld_file_close(&k);
    CHECK(kld_file_open(path, NV + 1, &k) == HERD_E_FORMAT && strstr(herd_last_error(), "vocabulary"), "vocab");

    uint8_t *bad = malloc(size + 8);
    struct { const char *what; size_t n; int off; uint32_t val; } cases[] = {
        {"bad magic", size, 0, 0x41414141u}, {"truncated", size - 1, -1, 0}, {"padded", size + 2, -1, 0},
        {"token out of range", size, 20 + 4 * 5, NV}, {"negative token", size, 20, 0xffffffffu},
        {"n_ctx 3", size, 8, 3}, {"n_chunk 0", size, 16, 0}, {"n_chunk 3", size, 16, 3},
        {"huge n_vocab", size, 12, 0x7fffffffu}, {"empty", 0, -1, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(bad, good, size);
        memset(bad + size, 0, 8);
        if (cases[c].off >= 0) memcpy(bad + cases[c].off, &cases[c].val, 4);
        write_file(path, bad, cases[c].n);
        int rc = kld_file_open(path, 0, &k);
        CHECK(rc == HERD_E_FORMAT && *herd_last_error(), "%s: rc %d", cases[c].what, rc);
    }
    unlink(path);
    free(good), free(bad);
    return TU_DONE("test_eval");
}
