/* DeBERTa-v2 (src/deberta/): the threaded forward against the scalar reference on random-weight models
 * written here as config.json + model.safetensors, for every window length 1..n_pos (log buckets and
 * clamping both reached), in three configurations (shared keys with c2p + p2c; separate position
 * projections with c2p only, position embeddings and an embedding projection; no relative attention),
 * at 1 and 3 threads; then the bucket function's known values (LLAMA31.md: exact up to ±mid); then the
 * AVX-512 row softmax (both gathers) and GELU against their scalar references on ragged lengths. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herd.h"
#include "deberta/deberta.h"
#include "deberta/deberta_kern.h"
#include "kernels/kernels.h"
#include "testutil.h"

typedef struct {
    char name[160];
    int64_t d0, d1;
} tdesc;

/* Writes DIR/model.safetensors of random F32 tensors (LayerNorm weights near 1). */
static void write_model(const char *dir, const tdesc *t, int n) {
    char hdr[65536];
    size_t k = 0;
    uint64_t off = 0;
    k += (size_t)snprintf(hdr + k, sizeof hdr - k, "{");
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)(t[i].d0 * (t[i].d1 ? t[i].d1 : 1)) * 4;
        if (t[i].d1)
            k += (size_t)snprintf(hdr + k, sizeof hdr - k, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}",
                                  i ? "," : "", t[i].name, (long long)t[i].d0, (long long)t[i].d1, (unsigned long long)off,
                                  (unsigned long long)(off + bytes));
        else
            k += (size_t)snprintf(hdr + k, sizeof hdr - k, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
                                  i ? "," : "", t[i].name, (long long)t[i].d0, (unsigned long long)off,
                                  (unsigned long long)(off + bytes));
        off += bytes;
    }
    k += (size_t)snprintf(hdr + k, sizeof hdr - k, "}");
    while (k % 8) hdr[k++] = ' ';
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    uint64_t hl = k;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, k, f);
    for (int i = 0; i < n; i++) {
        int64_t cnt = t[i].d0 * (t[i].d1 ? t[i].d1 : 1);
        bool ln = strstr(t[i].name, "LayerNorm.weight") != NULL;
        for (int64_t j = 0; j < cnt; j++) {
            float v = ln ? 1.0f + 0.1f * tu_sym() : (t[i].d1 ? 0.4f : 0.05f) * tu_sym();
            fwrite(&v, 4, 1, f);
        }
    }
    fclose(f);
}

typedef struct {
    int64_t H, L, nh, F, V, P, E, buckets, maxrel;
    bool share, c2p, p2c, rel, pos_bias, norm_rel;
} cfg_t;

static void make(const char *dir, const cfg_t *c) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"model_type\":\"deberta-v2\",\"hidden_size\":%lld,\"num_hidden_layers\":%lld,\"num_attention_heads\":%lld,"
            "\"intermediate_size\":%lld,\"vocab_size\":%lld,\"max_position_embeddings\":%lld,\"embedding_size\":%lld,"
            "\"position_buckets\":%lld,\"max_relative_positions\":%lld,\"share_att_key\":%s,\"relative_attention\":%s,"
            "\"position_biased_input\":%s,\"norm_rel_ebd\":\"%s\",\"pos_att_type\":\"%s%s%s\",\"hidden_act\":\"gelu\","
            "\"layer_norm_eps\":1e-7,\"type_vocab_size\":0,\"id2label\":{\"0\":\"A\",\"1\":\"B\",\"2\":\"C\"}}",
            (long long)c->H, (long long)c->L, (long long)c->nh, (long long)c->F, (long long)c->V, (long long)c->P,
            (long long)c->E, (long long)c->buckets, (long long)c->maxrel, c->share ? "true" : "false",
            c->rel ? "true" : "false", c->pos_bias ? "true" : "false", c->norm_rel ? "layer_norm" : "none",
            c->p2c ? "p2c" : "", c->p2c && c->c2p ? "|" : "", c->c2p ? "c2p" : "");
    fclose(f);
    tdesc t[256];
    int n = 0;
#define ADD(d0_, d1_, ...) (snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__), t[n].d0 = (d0_), t[n].d1 = (d1_), n++)
    ADD(c->V, c->E, "deberta.embeddings.word_embeddings.weight");
    if (c->pos_bias) ADD(c->P, c->E, "deberta.embeddings.position_embeddings.weight");
    if (c->E != c->H) ADD(c->H, c->E, "deberta.embeddings.embed_proj.weight");
    ADD(c->H, 0, "deberta.embeddings.LayerNorm.weight");
    ADD(c->H, 0, "deberta.embeddings.LayerNorm.bias");
    int64_t span = c->buckets > 0 ? c->buckets : c->maxrel;
    if (c->rel) ADD(2 * span, c->H, "deberta.encoder.rel_embeddings.weight");
    if (c->rel && c->norm_rel) {
        ADD(c->H, 0, "deberta.encoder.LayerNorm.weight");
        ADD(c->H, 0, "deberta.encoder.LayerNorm.bias");
    }
    for (int64_t l = 0; l < c->L; l++) {
        const char *p = "deberta.encoder.layer";
        long long li = (long long)l;
        static const char *const proj[] = {"query_proj", "key_proj", "value_proj", "pos_key_proj", "pos_query_proj"};
        for (int j = 0; j < 5; j++) {
            if (j == 3 && (c->share || !c->c2p || !c->rel)) continue;
            if (j == 4 && (c->share || !c->p2c || !c->rel)) continue;
            ADD(c->H, c->H, "%s.%lld.attention.self.%s.weight", p, li, proj[j]);
            ADD(c->H, 0, "%s.%lld.attention.self.%s.bias", p, li, proj[j]);
        }
        ADD(c->H, c->H, "%s.%lld.attention.output.dense.weight", p, li);
        ADD(c->H, 0, "%s.%lld.attention.output.dense.bias", p, li);
        ADD(c->H, 0, "%s.%lld.attention.output.LayerNorm.weight", p, li);
        ADD(c->H, 0, "%s.%lld.attention.output.LayerNorm.bias", p, li);
        ADD(c->F, c->H, "%s.%lld.intermediate.dense.weight", p, li);
        ADD(c->F, 0, "%s.%lld.intermediate.dense.bias", p, li);
        ADD(c->H, c->F, "%s.%lld.output.dense.weight", p, li);
        ADD(c->H, 0, "%s.%lld.output.dense.bias", p, li);
        ADD(c->H, 0, "%s.%lld.output.LayerNorm.weight", p, li);
        ADD(c->H, 0, "%s.%lld.output.LayerNorm.bias", p, li);
    }
    ADD(c->H, c->H, "pooler.dense.weight");
    ADD(c->H, 0, "pooler.dense.bias");
    ADD(3, c->H, "classifier.weight");
    ADD(3, 0, "classifier.bias");
#undef ADD
    write_model(dir, t, n);
}

/* deberta_kern.h: the AVX-512 variants against the scalar references (expf / erff, in order) */
static void test_kern(void) {
    if (!kernels_isa_supported(KERNEL_ISA_AVX512)) {
        printf("  (no AVX-512 on this CPU: the vector kernels are not compared)\n");
        return;
    }
    /* GELU over [-12, 12] and beyond (both tails, 0, values that round 1 + erf to 2 or 0) */
    enum { NG = 100003 };
    float *g0 = malloc(NG * sizeof *g0), *g1 = malloc(NG * sizeof *g1), *xs = malloc(NG * sizeof *xs);
    for (int i = 0; i < NG; i++) xs[i] = g0[i] = g1[i] = i < NG - 3 ? -12.0f + 24.0f * (float)i / (NG - 4) : (float)(i - NG + 2) * 40.0f;
    deberta_gelu_ref(NG, g0);
    deberta_gelu_avx512(NG, g1);
    double gw = 0; /* the worst error as a fraction of the bound: A&S 7.1.26 is within 1.5e-7 of erf, its float evaluation
                    * within ~5e-7 near 0 (the polynomial cancels); times |x| / 2; and rounding */
    int gi = 0;
    for (int i = 0; i < NG; i++) {
        const double err = fabs((double)g0[i] - g1[i]), tol = 3e-7 * fabs(xs[i]) + 1.2e-7 * fabs(g0[i]) + 1e-30;
        if (err / tol > gw) gw = err / tol, gi = i;
    }
    printf("  gelu avx512 vs erff: worst error %.2f of the bound\n", gw);
    CHECK(gw <= 1, "gelu(%.9g): ref %.9g avx512 %.9g", xs[gi], g0[gi], g1[gi]);
    free(g0), free(g1), free(xs);
    /* rows of 1..70 and 512 keys, with and without each gathered term, r(i, j) from a real bucket table */
    const int64_t R = 24, lens[] = {1, 2, 15, 16, 17, 31, 33, 70, 512};
    float *p2c = malloc(512 * R * sizeof *p2c), c2p[24], s0[512], s1[512];
    int32_t r[512];
    for (int64_t i = 0; i < 512 * R; i++) p2c[i] = 3 * tu_sym();
    for (int i = 0; i < R; i++) c2p[i] = 3 * tu_sym();
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
        for (int terms = 0; terms < 4; terms++) {
            const int64_t T = lens[li];
            for (int64_t j = 0; j < T; j++) {
                s0[j] = s1[j] = 6 * tu_sym();
                r[j] = (int32_t)(deberta_bucket(5 - j, 8, 40) + R / 2);
                r[j] = r[j] < 0 ? 0 : r[j] > R - 1 ? (int32_t)R - 1 : r[j];
            }
            const float *a = terms & 1 ? c2p : NULL, *b = terms & 2 ? p2c : NULL;
            deberta_row_ref(T, s0, a, b, R, r, 0.3f);
            deberta_row_avx512(T, s1, a, b, R, r, 0.3f);
            double sum = 0;
            for (int64_t j = 0; j < T; j++) {
                sum += s1[j];
                CHECK(fabs((double)s0[j] - s1[j]) <= 1e-6 * s0[j] + 1e-9, "row T %lld terms %d: p[%lld] ref %.9g avx512 %.9g",
                      (long long)T, terms, (long long)j, s0[j], s1[j]);
            }
            CHECK(fabs(sum - 1) < 1e-5, "row T %lld terms %d: the probabilities sum to %.9g", (long long)T, terms, sum);
        }
    free(p2c);
}

static void run(const char *dir, const char *name, const cfg_t *c) {
    make(dir, c);
    for (int nth = 1; nth <= 3; nth += 2) {
        thread_pool *pool = pool_new(nth);
        deberta_model *m;
        int rc = deberta_load(dir, pool, &m);
        CHECK(rc == 0, "%s: load: %s", name, herd_last_error());
        if (rc) {
            pool_free(pool);
            return;
        }
        deberta_ctx *ctx = deberta_ctx_new(m, pool);
        int32_t ids[512];
        for (int64_t i = 0; i < c->P; i++) ids[i] = (int32_t)(tu_u64() % (uint64_t)c->V);
        double worst = 0;
        for (int64_t T = 1; T <= c->P; T += (T < 20 ? 1 : 7)) {
            float a[3], b[3];
            CHECK(deberta_forward_ref(m, ids, T, a) == 0, "%s: ref", name);
            CHECK(deberta_forward(ctx, ids, T, b) == 0, "%s: fast", name);
            for (int k = 0; k < 3; k++) worst = fmax(worst, fabs((double)a[k] - b[k]));
        }
        float x[3];
        CHECK(deberta_forward(ctx, ids, c->P + 1, x) == HERD_E_RANGE, "%s: too long a window", name);
        ids[0] = (int32_t)c->V;
        CHECK(deberta_forward(ctx, ids, 2, x) == HERD_E_ARG, "%s: id out of range", name);
        printf("  %s, %d thread(s): max |ref - fast| %.2e\n", name, nth, worst);
        CHECK(worst < 2e-5, "%s: max |ref - fast| = %g", name, worst);
        deberta_ctx_free(ctx);
        deberta_free(m);
        pool_free(pool);
    }
}

int main(void) {
    tu_rng = 0xdeb3a;
    kernels_init();
    test_kern();
    char dir[] = "/tmp/herd-test-deberta.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    cfg_t a = {.H = 32, .L = 2, .nh = 4, .F = 48, .V = 50, .P = 70, .E = 32, .buckets = 8, .maxrel = 40,
               .share = true, .c2p = true, .p2c = true, .rel = true, .norm_rel = true};
    run(dir, "shared keys, c2p+p2c, 8 buckets", &a);
    cfg_t b = {.H = 24, .L = 2, .nh = 3, .F = 40, .V = 30, .P = 50, .E = 16, .buckets = -1, .maxrel = 12,
               .share = false, .c2p = true, .p2c = false, .rel = true, .pos_bias = true};
    run(dir, "own position projections, c2p, clamped", &b);
    cfg_t d = {.H = 16, .L = 1, .nh = 2, .F = 20, .V = 20, .P = 30, .E = 16, .buckets = -1, .maxrel = -1,
               .rel = false, .pos_bias = true};
    run(dir, "no relative attention", &d);
    /* the buckets: identity within ±mid, log-spaced beyond, odd-symmetric, at most max_position's bucket */
    for (int64_t dl = -127; dl <= 127; dl++) CHECK(deberta_bucket(dl, 256, 512) == dl, "bucket(%lld)", (long long)dl);
    for (int64_t dl = 1; dl < 1024; dl++)
        CHECK(deberta_bucket(-dl, 256, 512) == -deberta_bucket(dl, 256, 512), "symmetry at %lld", (long long)dl);
    CHECK(deberta_bucket(511, 256, 512) == 255, "bucket(511) = %lld", (long long)deberta_bucket(511, 256, 512));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return TU_DONE("test_deberta");
}
