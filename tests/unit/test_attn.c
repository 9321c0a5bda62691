/* The attention kernel (kernel_vec_ops.attn, kernels.h), for every ISA this CPU has, f32 and f16 caches
 * (and bf16, q8_0, q4_0 ones, K and V of the same or different types, head_dim a multiple of 32),
 * head_dim 32, 40 (not a multiple of 16: the generic path), 64, 80 (a partial group of 64 dimensions),
 * 128, GQA groups 1, 2, 4, 8, prompts of ragged lengths starting at ragged positions:
 *
 *   vs ref      every output within a tight bound of the scalar reference (ref/attn_ref.c), also with
 *               peaky scores (|s| up to ~40: most weights underflow, the running max moves);
 *   alone       each query computed alone, on a cache whose rows past its position are NaN, is
 *               bit-identical to its result in the whole prefill tile (T tokens x the group's heads):
 *               nothing a tile shares leaks into a query, and the tile does not change its arithmetic;
 *   decode      one token's group of heads per call (a decode step), bit-identical to the prefill;
 *   shuffled    the queries in random order, cut into random tiles: bit-identical;
 *   guards      no write outside the output rows;
 *   naive       (bf16/q8_0/q4_0) the reference within 1e-5 of attention in double on the dequantized
 *               cache, with each score the dot of the key and the query rounded to K's vec_dot type
 *               (q8_0 blocks, or bf16): ggml's arithmetic, written out independently of the kernels.
 * Exit status 0 = pass, 1 = fail.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "kernels/kernels.h"
#include "kernels/types.h"
#include "testutil.h"

#define GUARD 8 /* sentinel floats around every output row */
#define SENTINEL 0x7fc0beefu

typedef struct {
    int type_k, type_v;
    int64_t hd, group, n_head_kv, kvh, n_ctx, p0, n_tok, nq;
    int64_t stride_k, stride_v; /* bytes per cache row */
    uint8_t *k, *v;      /* [n_ctx][n_head_kv * hd] of type_k / type_v */
    float *q;            /* [nq][hd], query i = token i / group, head i % group */
    int64_t *n_kv;       /* [nq] */
} attn_case;

static kernel_attn_kv case_kv(const attn_case *c, const uint8_t *k, const uint8_t *v) {
    return (kernel_attn_kv){.head_dim = c->hd,
                            .type_k = c->type_k,
                            .type_v = c->type_v,
                            .k = k + kernels_row_bytes(c->type_k, c->kvh * c->hd),
                            .v = v + kernels_row_bytes(c->type_v, c->kvh * c->hd),
                            .stride_k = c->stride_k,
                            .stride_v = c->stride_v,
                            .scale = 1.0f / sqrtf((float)c->hd)};
}

/* A cache row of type from n floats (the reference conversion, as the forward pass writes it). */
static void put_row(int type, uint8_t *row, const float *x, int64_t n) {
    kernels_type_isa(type, KERNEL_ISA_REF)->from_f32(x, row, n);
}

/* A row nobody may read: all bits set is a NaN in every type (f32, f16/bf16, the blocks' f16 scales). */
static void poison_row(uint8_t *row, int64_t bytes) {
    memset(row, 0xff, (size_t)bytes);
}

static const char *tname(int t) {
    return herd_type_name(t);
}

/* Output rows with GUARD sentinel floats before and after each. */
static float *rows_new(int64_t nq, int64_t hd) {
    float *b = malloc(sizeof(float) * (size_t)(nq * (hd + GUARD) + GUARD));
    for (int64_t i = 0; i < nq * (hd + GUARD) + GUARD; i++) memcpy(&b[i], &(uint32_t){SENTINEL}, 4);
    return b;
}

static float *row(float *b, int64_t i, int64_t hd) {
    return b + GUARD + i * (hd + GUARD);
}

static int guards_intact(const float *b, int64_t nq, int64_t hd) {
    for (int64_t i = 0; i < nq * (hd + GUARD) + GUARD; i++) {
        int64_t r = i < GUARD ? -1 : (i - GUARD) % (hd + GUARD);
        if (r >= 0 && r < hd) continue;
        uint32_t u;
        memcpy(&u, &b[i], 4);
        if (u != SENTINEL) return 0;
    }
    return 1;
}

/* Runs the queries idx[0..n) (indices into the case) in one call, into out's rows. */
static void run_tile(const kernel_vec_ops *vo, const attn_case *c, const uint8_t *k, const uint8_t *v,
                     const int64_t *idx, int64_t n, float *out) {
    const float **q = malloc(sizeof *q * (size_t)n);
    float **o = malloc(sizeof *o * (size_t)n);
    int64_t *nkv = malloc(sizeof *nkv * (size_t)n);
    float *scratch = malloc(sizeof(float) * (size_t)kernels_attn_scratch_floats(c->hd, n));
    for (int64_t i = 0; i < n; i++) {
        q[i] = c->q + idx[i] * c->hd;
        o[i] = row(out, idx[i], c->hd);
        nkv[i] = c->n_kv[idx[i]];
    }
    kernel_attn_kv kv = case_kv(c, k, v);
    vo->attn(&kv, n, q, nkv, o, scratch);
    free(q);
    free(o);
    free(nkv);
    free(scratch);
}

static int same_bits(const float *a, const float *b, int64_t nq, int64_t hd, int64_t *first_bad) {
    for (int64_t i = 0; i < nq; i++)
        if (memcmp(row((float *)a, i, hd), row((float *)b, i, hd), sizeof(float) * (size_t)hd) != 0) {
            *first_bad = i;
            return 0;
        }
    return 1;
}

static double g_worst[KERNEL_ISA_COUNT];

/* Attention in double on the dequantized cache, the query rounded to K's vec_dot type first (ggml's
 * arithmetic for bf16/q8_0/q4_0 keys): query i of the case into out (hd doubles). */
static void naive_query(const attn_case *c, int64_t i, double *out) {
    const int64_t hd = c->hd, n = c->n_kv[i];
    const kernel_type_ops *kt = kernels_type_isa(c->type_k, KERNEL_ISA_REF), *vt = kernels_type_isa(c->type_v, KERNEL_ISA_REF);
    const kernel_type_ops *qt = kernels_type_isa(kt->vec_dot_type, KERNEL_ISA_REF);
    float *qr = malloc(sizeof(float) * (size_t)hd), *row = malloc(sizeof(float) * (size_t)hd);
    uint8_t *qq = malloc((size_t)kernels_row_bytes(kt->vec_dot_type, hd));
    double *s = malloc(sizeof(double) * (size_t)n), smax = -INFINITY, l = 0;
    qt->from_f32(c->q + i * hd, qq, hd);
    qt->to_f32(qq, qr, hd);
    const kernel_attn_kv kv = case_kv(c, c->k, c->v);
    for (int64_t j = 0; j < n; j++) {
        kt->to_f32((const uint8_t *)kv.k + j * c->stride_k, row, hd);
        double d = 0;
        for (int64_t e = 0; e < hd; e++) d += (double)qr[e] * row[e];
        s[j] = d * kv.scale;
        smax = s[j] > smax ? s[j] : smax;
    }
    for (int64_t e = 0; e < hd; e++) out[e] = 0;
    for (int64_t j = 0; j < n; j++) {
        const double w = exp(s[j] - smax);
        l += w;
        vt->to_f32((const uint8_t *)kv.v + j * c->stride_v, row, hd);
        for (int64_t e = 0; e < hd; e++) out[e] += w * row[e];
    }
    for (int64_t e = 0; e < hd; e++) out[e] /= l;
    free(qr);
    free(row);
    free(qq);
    free(s);
}

static void check_case(kernel_isa isa, int type_k, int type_v, int64_t hd, int64_t group, int64_t p0, int64_t n_tok,
                       float qscale) {
    const kernel_vec_ops *vo = kernels_vec_isa(isa), *ref = kernels_vec_isa(KERNEL_ISA_REF);
    attn_case c = {.type_k = type_k, .type_v = type_v, .hd = hd, .group = group, .n_head_kv = 2, .kvh = 1,
                   .p0 = p0, .n_tok = n_tok};
    c.n_ctx = p0 + n_tok + 5; /* rows past the last position exist (and are NaN below) */
    c.nq = n_tok * group;
    c.stride_k = kernels_row_bytes(type_k, c.n_head_kv * hd);
    c.stride_v = kernels_row_bytes(type_v, c.n_head_kv * hd);
    c.k = malloc((size_t)(c.n_ctx * c.stride_k));
    c.v = malloc((size_t)(c.n_ctx * c.stride_v));
    c.q = malloc(sizeof(float) * (size_t)(c.nq * hd));
    c.n_kv = malloc(sizeof(int64_t) * (size_t)c.nq);
    float vmax = 0, *kx = malloc(sizeof(float) * (size_t)(c.n_head_kv * hd)), *vx = malloc(sizeof(float) * (size_t)(c.n_head_kv * hd));
    for (int64_t p = 0; p < c.n_ctx; p++) {
        for (int64_t i = 0; i < c.n_head_kv * hd; i++) {
            kx[i] = tu_sym(), vx[i] = tu_sym();
            if (fabsf(vx[i]) > vmax) vmax = fabsf(vx[i]);
        }
        if (p >= p0 + n_tok) { /* never attended by anyone */
            poison_row(c.k + p * c.stride_k, c.stride_k);
            poison_row(c.v + p * c.stride_v, c.stride_v);
        } else {
            put_row(type_k, c.k + p * c.stride_k, kx, c.n_head_kv * hd);
            put_row(type_v, c.v + p * c.stride_v, vx, c.n_head_kv * hd);
        }
    }
    free(kx);
    free(vx);
    for (int64_t i = 0; i < c.nq * hd; i++) c.q[i] = tu_sym() * qscale;
    for (int64_t i = 0; i < c.nq; i++) c.n_kv[i] = p0 + i / group + 1;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)c.nq);
    for (int64_t i = 0; i < c.nq; i++) idx[i] = i;
    char what[160];
    snprintf(what, sizeof what, "%s K %s V %s hd=%lld group=%lld positions %lld..%lld qscale %g",
             kernels_isa_name(isa), tname(type_k), tname(type_v), (long long)hd, (long long)group,
             (long long)p0, (long long)(p0 + n_tok - 1), qscale);

    /* the whole prefill tile */
    float *tile = rows_new(c.nq, hd);
    run_tile(vo, &c, c.k, c.v, idx, c.nq, tile);
    CHECK(guards_intact(tile, c.nq, hd), "%s: prefill tile wrote outside its output rows", what);

    /* vs the scalar reference */
    float *want = rows_new(c.nq, hd);
    run_tile(ref, &c, c.k, c.v, idx, c.nq, want);
    double err = 0;
    for (int64_t i = 0; i < c.nq; i++)
        for (int64_t d = 0; d < hd; d++) {
            double e = fabs((double)row(tile, i, hd)[d] - row(want, i, hd)[d]) / vmax;
            if (!(e <= err)) err = e; /* NaN sticks */
        }
    if (!(err <= g_worst[isa])) g_worst[isa] = err;
    CHECK(err <= 2e-5, "%s: max |out - ref| / max|v| = %.3g", what, err);

    /* the reference against attention written out in double (the quantized and bf16 types) */
    if (isa == KERNEL_ISA_REF && !(type_k == HERD_TYPE_F32 || type_k == HERD_TYPE_F16)) {
        double *nv = malloc(sizeof(double) * (size_t)hd), nerr = 0;
        for (int64_t i = 0; i < c.nq; i++) {
            naive_query(&c, i, nv);
            for (int64_t d = 0; d < hd; d++) {
                double e = fabs(nv[d] - row(want, i, hd)[d]) / vmax;
                if (!(e <= nerr)) nerr = e;
            }
        }
        CHECK(nerr <= 1e-5, "%s: reference vs attention in double on the dequantized cache: %.3g", what, nerr);
        free(nv);
    }

    /* each query alone, on a cache whose rows from its own position + 1 on are NaN */
    uint8_t *k2 = malloc((size_t)(c.n_ctx * c.stride_k)), *v2 = malloc((size_t)(c.n_ctx * c.stride_v));
    float *alone = rows_new(c.nq, hd);
    for (int64_t i = 0; i < c.nq; i++) {
        memcpy(k2, c.k, (size_t)(c.n_ctx * c.stride_k));
        memcpy(v2, c.v, (size_t)(c.n_ctx * c.stride_v));
        for (int64_t p = c.n_kv[i]; p < c.n_ctx; p++) {
            poison_row(k2 + p * c.stride_k, c.stride_k);
            poison_row(v2 + p * c.stride_v, c.stride_v);
        }
        run_tile(vo, &c, k2, v2, &i, 1, alone);
    }
    int64_t bad = -1;
    CHECK(same_bits(alone, tile, c.nq, hd, &bad), "%s: query %lld alone differs from the prefill tile", what,
          (long long)bad);

    /* decode: one token's heads per call */
    float *dec = rows_new(c.nq, hd);
    for (int64_t t = 0; t < n_tok; t++) run_tile(vo, &c, c.k, c.v, idx + t * group, group, dec);
    CHECK(same_bits(dec, tile, c.nq, hd, &bad),
          "%s: decode-style calls differ from the prefill tile (query %lld)", what, (long long)bad);

    /* shuffled, cut into random tiles */
    for (int64_t i = c.nq - 1; i > 0; i--) {
        int64_t j = (int64_t)(tu_u64() % (uint64_t)(i + 1)), t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    float *shuf = rows_new(c.nq, hd);
    for (int64_t i = 0; i < c.nq;) {
        int64_t n = 1 + (int64_t)(tu_u64() % 13);
        if (n > c.nq - i) n = c.nq - i;
        run_tile(vo, &c, c.k, c.v, idx + i, n, shuf);
        i += n;
    }
    CHECK(same_bits(shuf, tile, c.nq, hd, &bad), "%s: shuffled random tiles differ (query %lld)", what,
          (long long)bad);
    CHECK(guards_intact(alone, c.nq, hd) && guards_intact(dec, c.nq, hd) && guards_intact(shuf, c.nq, hd),
          "%s: a write outside the output rows", what);

    free(tile);
    free(want);
    free(alone);
    free(dec);
    free(shuf);
    free(k2);
    free(v2);
    free(idx);
    free(c.k);
    free(c.v);
    free(c.q);
    free(c.n_kv);
}

int main(void) {
    tu_rng = 0x243f6a8885a308d3ull; /* this test's seed */
    kernels_init();
    static const int64_t hds[] = {32, 40, 64, 80, 128}, groups[] = {1, 2, 4, 8};
    /* (first position, tokens): block boundaries (32) inside, at and across the prompt */
    static const int64_t spans[][2] = {{0, 1},   {0, 37}, {5, 3},    {31, 2},
                                       {32, 17}, {63, 9}, {100, 40}, {200, 1}};
    const int n_spans = (int)(sizeof spans / sizeof spans[0]);
    int k = 0;
    /* (K, V) cache types: the plain ones, each block type alone and mixed with the others */
    static const int types[][2] = {{HERD_TYPE_F32, HERD_TYPE_F32},   {HERD_TYPE_F16, HERD_TYPE_F16},
                                   {HERD_TYPE_BF16, HERD_TYPE_BF16}, {HERD_TYPE_Q8_0, HERD_TYPE_Q8_0},
                                   {HERD_TYPE_Q4_0, HERD_TYPE_Q4_0}, {HERD_TYPE_Q8_0, HERD_TYPE_F16},
                                   {HERD_TYPE_F16, HERD_TYPE_Q4_0},  {HERD_TYPE_Q4_0, HERD_TYPE_F32}};
    for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
        if (!kernels_isa_supported((kernel_isa)isa)) continue;
        for (size_t ty = 0; ty < sizeof types / sizeof types[0]; ty++)
            for (size_t h = 0; h < sizeof hds / sizeof hds[0]; h++) {
                const bool plain = ty < 2;
                if (!plain && hds[h] % 32) continue; /* block types need whole blocks per head */
                for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
                    for (int r = 0; r < 2; r++, k++) {
                        const int64_t *sp = spans[(k * 3 + r) % n_spans];
                        check_case((kernel_isa)isa, types[ty][0], types[ty][1], hds[h], groups[g], sp[0], sp[1],
                                   r ? 30.0f : 1.0f);
                    }
            }
        printf("  %-7s worst |out - ref| / max|v| = %.3g\n", kernels_isa_name((kernel_isa)isa), g_worst[isa]);
    }
    return TU_DONE("test_attn");
}
