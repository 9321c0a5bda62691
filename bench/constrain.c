/* Cost of constrained decoding per token: the mask over the whole vocabulary (constraint_mask) and
 * the advance (herd_constraint_accept), along seeded random walks through documents of a few
 * schemas, reported per kind of state (inside a string / elsewhere). Build and run:
 *   make && gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc -o build/bench_constrain bench/constrain.c \
 *       build/libherd.a -lmicrohttpd -lcurl -ljansson -lm -lpthread
 *   build/bench_constrain [VOCAB.gguf] [WALKS]     (default build/ref/llama31-vocab.gguf, 20)
 * Not part of make test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "base/log.h"
#include "constrain/constrain.h"
#include "gguf/gguf.h"
#include "sample/sample.h"
#include "tokenizer/vocab.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double *v;
    int n, cap;
} series;

static void add(series *s, double x) {
    if (s->n == s->cap) s->v = realloc(s->v, (size_t)(s->cap = s->cap ? 2 * s->cap : 1024) * sizeof *s->v);
    s->v[s->n++] = x;
}

static void report(const char *schema, const char *what, series *s) {
    if (s->n == 0) return;
    qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_d);
    double sum = 0;
    for (int i = 0; i < s->n; i++) sum += s->v[i];
    printf("| %s | %s | %d | %.0f | %.0f | %.0f | %.0f |\n", schema, what, s->n, sum / s->n * 1e6,
           s->v[s->n / 2] * 1e6, s->v[(int)(s->n * 0.99)] * 1e6, s->v[s->n - 1] * 1e6);
    s->n = 0;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "build/ref/llama31-vocab.gguf";
    int walks = argc > 2 ? atoi(argv[2]) : 20;
    herd_mapped_file f;
    gguf_file g;
    herd_vocab *v;
    if (herd_file_map(path, &f) || gguf_parse(f.data, f.size, path, &g) || vocab_load(&g, path, &v)) {
        fprintf(stderr, "bench_constrain: %s\n", herd_last_error());
        return 1;
    }
    static const struct {
        const char *name, *schema;
    } S[] = {
        {"any object", NULL},
        {"person",
         "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
         "\"email\":{\"type\":\"string\",\"maxLength\":40},\"tags\":{\"type\":\"array\",\"items\":{\"type\":"
         "\"string\"},\"maxItems\":5}},\"required\":[\"name\",\"age\"],\"additionalProperties\":false}"},
        {"enum+anyOf",
         "{\"type\":\"object\",\"properties\":{\"color\":{\"enum\":[\"red\",\"green\",\"blue\"]},\"v\":"
         "{\"anyOf\":[{\"type\":\"number\"},{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},{\"type\":"
         "\"null\"}]}},\"required\":[\"color\",\"v\"],\"additionalProperties\":false}"},
    };
    int32_t n = vocab_n_tokens(v);
    int32_t *pool = malloc((size_t)n * sizeof *pool);
    sample_rng rng;
    sample_rng_seed(&rng, 42);
    printf("vocabulary %s: %d tokens; %d random walks per schema (up to 200 tokens each)\n\n", path, n,
           walks);
    printf("| schema | state | masks | mean µs | median µs | p99 µs | max µs "
           "|\n|---|---|---|---|---|---|---|\n");
    double t0 = now();
    herd_constraint *c0;
    constraint_new(v, NULL, &c0); /* the first one builds the vocabulary trie */
    double t_trie = now() - t0;
    herd_constraint_free(c0);
    series in_str = {0}, other = {0}, acc = {0}, compile = {0};
    for (int memo = 0; memo < 2; memo++)
        for (size_t si = 0; si < sizeof S / sizeof S[0]; si++) {
            sample_rng_seed(&rng, 42 + si); /* the same walks with and without reuse */
            for (int w = 0; w < walks; w++) {
                herd_constraint *c;
                double t = now();
                if (constraint_new(v, S[si].schema, &c) != 0) {
                    fprintf(stderr, "bench_constrain: %s\n", herd_last_error());
                    return 1;
                }
                add(&compile, now() - t);
                constraint_set_memo(c, memo);
                bool instr = false;
                for (int st = 0; st < 200 && constraint_can_continue(c); st++) {
                    int64_t na;
                    t = now();
                    const uint8_t *ok = constraint_mask(c, &na);
                    add(instr ? &in_str : &other, now() - t);
                    int64_t np = 0;
                    for (int32_t id = 0; id < n; id++)
                        if (ok[id] && !vocab_is_eog(v, id)) pool[np++] = id;
                    if (np == 0) break;
                    int32_t pick = pool[sample_rng_next(&rng) % (uint64_t)np];
                    char piece[256] = "";
                    for (int tries = 0; tries < 4; tries++) { /* lean towards structure, to get through */
                        vocab_token_to_piece(v, pick, false, piece, sizeof piece - 1);
                        if (strpbrk(piece, "\"]},") || (sample_rng_next(&rng) & 1)) break;
                        pick = pool[sample_rng_next(&rng) % (uint64_t)np];
                    }
                    t = now();
                    herd_constraint_accept(c, pick);
                    add(&acc, now() - t);
                    for (const char *p = piece; *p; p++) /* track whether we are inside a string (roughly) */
                        if (*p == '"' && (p == piece || p[-1] != '\\')) instr = !instr;
                }
                herd_constraint_free(c);
            }
            report(S[si].name, memo ? "in a string, reuse on" : "in a string, walk", &in_str);
            report(S[si].name, memo ? "elsewhere, reuse on" : "elsewhere, walk", &other);
            if (!memo) report(S[si].name, "accept", &acc);
            if (!memo) report(S[si].name, "compile", &compile);
            acc.n = compile.n = 0;
        }
    printf("\nfirst constraint for this vocabulary (builds the token trie): %.1f ms\n", t_trie * 1e3);
    free(pool);
    vocab_free(v);
    gguf_file_clear(&g);
    herd_file_unmap(&f);
    return 0;
}
