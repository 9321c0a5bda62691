/* AVX-512 attention (kernel_attn_fn, kernels.h): a tile of queries walks the keys of one KV head in
 * blocks of B = 32 positions. Per block, once for the whole tile:
 *   - the K rows are converted to f32 and transposed into Kt[d][j] (16x16 register transposes), so
 *     the scores of one query against the block's 32 keys are two vectors, each lane a chain of
 *     head_dim FMAs in d order: s_j = fma(q[d], k_j[d], s_j), d = 0, 1, ...;
 *   - f16 V rows are converted once into a [B][head_dim] block (f32 rows are used in place);
 *   - quantized (or bf16) K rows are not converted: each score is the type's dot of the key with the
 *     query converted once per call to K's vec_dot type (ggml's arithmetic, kernels.h), computed for
 *     the whole tile by the type's gemm (gemm_avx512.c: the same sums as the dot, bit for bit) over the
 *     block's 32 keys; quantized V rows are converted to f32 into the [B][head_dim] block like f16 ones.
 * Then per query: scale, mask the keys past its position to -inf, the online-softmax step (vmath_exp_ps of vmath_avx512.h
 * below; the running sum kept as 16 partial sums, reduced by _mm512_reduce_add_ps, a fixed tree, at the
 * end), and o = o c + p_j v_j with one FMA per (key, dimension) in key order.
 *
 * Batch invariance (kernels.h): every value a query gets is made by lanes that belong to it alone, in
 * an order fixed by head_dim and the block, never by the tile: register tiles of several queries share
 * only the loads of Kt and V. Lanes and keys past a query's last position are masked (scores to -inf,
 * V FMAs to no-ops), so what other queries of the tile need does not leak in. head_dim must be a
 * multiple of 16; other widths take the generic per-query code on this ISA's primitives.
 */
#include <immintrin.h>
#include <math.h>

#include "herd.h"
#include "../kernels_impl.h"
#include "vmath_avx512.h" /* vmath_exp_ps: e^x for x <= 0 */

#define B KERNEL_ATTN_BLOCK
#define QK_TILE 6 /* queries per register tile of the scores: 6 x 2 accumulators */
#define PV_TILE 4 /* queries per register tile of o: 4 x 4 vectors of 16 dimensions */
_Static_assert(KERNEL_ATTN_BLOCK == 32, "a block's scores are two vectors");

/* r[c] = column c of the 16x16 matrix whose rows are r[0..15] (4 stages of in-lane unpacks/shuffles,
 * then 128-bit lane shuffles). */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int h = 0; h < 16; h += 8)
        for (int c = 0; c < 4; c++) {
            t[h + c] = _mm512_shuffle_f32x4(r[h + c], r[h + c + 4], 0x88);
            t[h + c + 4] = _mm512_shuffle_f32x4(r[h + c], r[h + c + 4], 0xDD);
        }
    for (int c = 0; c < 8; c++) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0x88);
        r[c + 8] = _mm512_shuffle_f32x4(t[c], t[c + 8], 0xDD);
    }
}

static inline __m512 load_row16(const uint8_t *row, bool f16, int64_t d) {
    return f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + d)))
               : _mm512_loadu_ps((const float *)row + d);
}

/* Kt[d][j] = K row b0 + j, element d, as f32, for j < nb; 0 for nb <= j < B. */
static void load_k_block(const kernel_attn_kv *kv, int64_t b0, int64_t nb, float *Kt) {
    const int64_t hd = kv->head_dim;
    const bool f16 = kv->type_k == HERD_TYPE_F16;
    const uint8_t *K = (const uint8_t *)kv->k + b0 * kv->stride_k;
    for (int64_t jg = 0; jg < B; jg += 16)
        for (int64_t dc = 0; dc < hd; dc += 16) {
            __m512 r[16];
            if (jg >= nb) {
                for (int c = 0; c < 16; c++) _mm512_storeu_ps(Kt + (dc + c) * B + jg, _mm512_setzero_ps());
                continue;
            }
            for (int64_t j = 0; j < 16; j++)
                r[j] = jg + j < nb ? load_row16(K + (jg + j) * kv->stride_k, f16, dc) : _mm512_setzero_ps();
            transpose16(r);
            for (int c = 0; c < 16; c++) _mm512_storeu_ps(Kt + (dc + c) * B + jg, r[c]);
        }
}

/* Raw scores of n queries against the block: s[i][j] = sum_d q[i][d] Kt[d][j], one FMA chain per
 * (query, key) in d order (n a constant after inlining, so the accumulators stay in registers). */
static inline __attribute__((always_inline)) void qk_tile(const int n, const float *Kt, int64_t hd,
                                                          const float *const *q, float *const *s) {
    __m512 a0[QK_TILE], a1[QK_TILE];
#pragma GCC unroll 6
    for (int i = 0; i < n; i++) a0[i] = a1[i] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d++) {
        const __m512 k0 = _mm512_loadu_ps(Kt + d * B), k1 = _mm512_loadu_ps(Kt + d * B + 16);
#pragma GCC unroll 6
        for (int i = 0; i < n; i++) {
            const __m512 qd = _mm512_set1_ps(q[i][d]);
            a0[i] = _mm512_fmadd_ps(qd, k0, a0[i]);
            a1[i] = _mm512_fmadd_ps(qd, k1, a1[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < n; i++) {
        _mm512_storeu_ps(s[i], a0[i]);
        _mm512_storeu_ps(s[i] + 16, a1[i]);
    }
}

static void qk_any(int n, const float *Kt, int64_t hd, const float *const *q, float *const *s) {
    switch (n) {
    case 1:
        qk_tile(1, Kt, hd, q, s);
        break;
    case 2:
        qk_tile(2, Kt, hd, q, s);
        break;
    case 3:
        qk_tile(3, Kt, hd, q, s);
        break;
    case 4:
        qk_tile(4, Kt, hd, q, s);
        break;
    case 5:
        qk_tile(5, Kt, hd, q, s);
        break;
    default:
        qk_tile(6, Kt, hd, q, s);
        break;
    }
}

/* The online-softmax step of one query, in two halves so that the rescale factors c = exp(m - m') of
 * 16 queries take one exp_ps (lanes never mix, so a query's c does not depend on its neighbours).
 * softmax_max: p holds the block's raw scores, nv of them valid (1..B); scales them and sets the others
 * to -inf (in place), moves the running max m, returns m - m' (-inf on the first block). */
static inline float softmax_max(float *p, int64_t nv, float scale, float *m) {
    const __mmask16 k0 = nv >= 16 ? 0xFFFF : (__mmask16)((1u << nv) - 1);
    const __mmask16 k1 = nv >= 32 ? 0xFFFF : nv > 16 ? (__mmask16)((1u << (nv - 16)) - 1) : 0;
    const __m512 ninf = _mm512_set1_ps(-INFINITY), vs = _mm512_set1_ps(scale);
    const __m512 s0 = _mm512_mask_mul_ps(ninf, k0, _mm512_loadu_ps(p), vs);
    const __m512 s1 = _mm512_mask_mul_ps(ninf, k1, _mm512_loadu_ps(p + 16), vs);
    _mm512_storeu_ps(p, s0);
    _mm512_storeu_ps(p + 16, s1);
    const float bmax = _mm512_reduce_max_ps(_mm512_max_ps(s0, s1));
    const float m1 = *m > bmax ? *m : bmax, d = *m - m1;
    *m = m1;
    return d;
}

/* softmax_weights: p = exp(s - m) in place; the running sum, kept as 16 partial sums l16 (reduced once,
 * at the end), becomes l16 c + p[0..16) + p[16..32). */
static inline void softmax_weights(float *p, float m, float c, float *l16) {
    const __m512 vm = _mm512_set1_ps(m);
    const __m512 p0 = vmath_exp_ps(_mm512_sub_ps(_mm512_loadu_ps(p), vm));
    const __m512 p1 = vmath_exp_ps(_mm512_sub_ps(_mm512_loadu_ps(p + 16), vm));
    _mm512_storeu_ps(p, p0);
    _mm512_storeu_ps(p + 16, p1);
    _mm512_storeu_ps(l16, _mm512_fmadd_ps(_mm512_loadu_ps(l16), _mm512_set1_ps(c), _mm512_add_ps(p0, p1)));
}

/* Loads and stores of 16 floats, masked only where a group of 64 dimensions is partial (full is a
 * constant after inlining): o is stored at the end of one block and loaded at the start of the next, and
 * a masked store cannot forward to that load (a stall of a few dozen cycles each). */
static inline __m512 load_w(bool full, __mmask16 m, const float *p) {
    return full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

static inline void store_w(bool full, __mmask16 m, float *p, __m512 x) {
    if (full) _mm512_storeu_ps(p, x);
    else _mm512_mask_storeu_ps(p, m, x);
}

/* o[i][dc .. dc + 16 w) = (first ? 0 : o c[i]) + sum_{j < nv[i]} p[i][j] v_j, for n queries; w <= 4
 * vectors (full: w = 4; else masked beyond w: those lanes are neither loaded nor stored). Keys below
 * every query's nv take plain FMAs, the ones above the smallest masked FMAs that leave the other
 * queries' lanes untouched. */
static inline __attribute__((always_inline)) void pv_tile(const int n, const bool full, int w, int64_t dc,
                                                          const float *vb, int64_t vstride, float *const *p,
                                                          const int64_t *nv, const float *c, bool first,
                                                          float *const *o) {
    __m512 acc[PV_TILE][4];
    __mmask16 mw[4];
    for (int v = 0; v < 4; v++) mw[v] = v < w ? 0xFFFF : 0;
    int64_t jmin = B, jmax = 0;
#pragma GCC unroll 4
    for (int i = 0; i < n; i++) {
        jmin = nv[i] < jmin ? nv[i] : jmin;
        jmax = nv[i] > jmax ? nv[i] : jmax;
        const __m512 ci = _mm512_set1_ps(c[i]);
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++)
            acc[i][v] = first ? _mm512_setzero_ps()
                              : _mm512_mul_ps(load_w(full, mw[v], o[i] + dc + 16 * v), ci);
    }
    int64_t j = 0;
    for (; j < jmin; j++) {
        const float *vr = vb + j * vstride + dc;
        __m512 vv[4];
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) vv[v] = load_w(full, mw[v], vr + 16 * v);
#pragma GCC unroll 4
        for (int i = 0; i < n; i++) {
            const __m512 pj = _mm512_set1_ps(p[i][j]);
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) acc[i][v] = _mm512_fmadd_ps(pj, vv[v], acc[i][v]);
        }
    }
    for (; j < jmax; j++) {
        const float *vr = vb + j * vstride + dc;
        __m512 vv[4];
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) vv[v] = load_w(full, mw[v], vr + 16 * v);
#pragma GCC unroll 4
        for (int i = 0; i < n; i++) {
            const __m512 pj = _mm512_set1_ps(p[i][j]);
            const __mmask16 k = j < nv[i] ? 0xFFFF : 0;
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) acc[i][v] = _mm512_mask3_fmadd_ps(pj, vv[v], acc[i][v], k);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < n; i++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) store_w(full, mw[v], o[i] + dc + 16 * v, acc[i][v]);
}

static void pv_any(int n, int64_t hd, const float *vb, int64_t vstride, float *const *p, const int64_t *nv,
                   const float *c, bool first, float *const *o) {
    for (int64_t dc = 0; dc < hd; dc += 64) {
        const int w = hd - dc >= 64 ? 4 : (int)((hd - dc) / 16);
#define PV(nn, ff) pv_tile(nn, ff, w, dc, vb, vstride, p, nv, c, first, o)
        if (w == 4) {
            if (n == 1) PV(1, true);
            else if (n == 2) PV(2, true);
            else if (n == 3) PV(3, true);
            else PV(4, true);
        } else {
            if (n == 1) PV(1, false);
            else if (n == 2) PV(2, false);
            else if (n == 3) PV(3, false);
            else PV(4, false);
        }
#undef PV
    }
}

static void attn_avx512(const kernel_attn_kv *kv, int64_t nq, const float *const *q, const int64_t *n_kv,
                        float *const *o, float *scratch) {
    const int64_t hd = kv->head_dim;
    if (hd % 16 != 0) {
        kernels_attn_generic(KERNEL_ISA_AVX512, kv, nq, q, n_kv, o, scratch);
        return;
    }
    const int tk = kv->type_k, tv = kv->type_v;
    /* K types other than f32/f16 (kernels.h): the query as K's vec_dot type, a dot per (query, key) */
    const kernel_type_ops *kt = tk == HERD_TYPE_F32 || tk == HERD_TYPE_F16 ? NULL : kernels_type_isa(tk, KERNEL_ISA_AVX512);
    const kernel_type_ops *qt = kt ? kernels_type_isa(kt->vec_dot_type, KERNEL_ISA_AVX512) : NULL;
    const kernel_type_ops *vt = tv == HERD_TYPE_F32 || tv == HERD_TYPE_F16 ? NULL : kernels_type_isa(tv, KERNEL_ISA_AVX512);
    /* scratch (kernels_attn_scratch_floats): Kt [hd][B], Vb [B][hd], P [nq][B], L [nq][16], M, C [nq],
     * Qq [nq][hd floats] (quantized K only) */
    float *Kt = scratch, *Vb = Kt + B * hd, *P = Vb + B * hd, *L = P + nq * B, *M = L + nq * 16, *C = M + nq;
    float *Qq = C + nq;
    /* With K's batched dot (gemm, bit-identical to its dot: kernels.h) the queries are packed once and
     * each block's scores are one gemm of the block's keys x the tile's queries, in place of a dot call
     * per (query, key). The packed row (<= 2 head_dim + 64 bytes) fits the query's head_dim floats; the
     * converted row goes through qrow first. */
    _Alignas(64) uint8_t qrow[4096];
    const int64_t xb = kt && kt->gemm && kt->gemm_pack_x ? kt->gemm_x_bytes(hd) : 0;
    const bool tiled = xb > 0 && xb <= hd * (int64_t)sizeof(float) && kernels_row_bytes(kt->vec_dot_type, hd) <= (int64_t)sizeof qrow;
    int64_t kmax = 0;
    for (int64_t i = 0; i < nq; i++) {
        if (tiled) {
            qt->from_f32(q[i], qrow, hd);
            kt->gemm_pack_x(hd, qrow, (uint8_t *)Qq + i * xb);
        } else if (qt) {
            qt->from_f32(q[i], Qq + i * hd, hd);
        }
        M[i] = -INFINITY;
        _mm512_storeu_ps(L + i * 16, _mm512_setzero_ps());
        kmax = n_kv[i] > kmax ? n_kv[i] : kmax;
    }
    for (int64_t b0 = 0; b0 < kmax; b0 += B) {
        const int64_t nb = kmax - b0 < B ? kmax - b0 : B;
        if (!kt) load_k_block(kv, b0, nb, Kt);
        const uint8_t *V = (const uint8_t *)kv->v + b0 * kv->stride_v;
        const float *vb = (const float *)V;
        int64_t vstride = kv->stride_v / (int64_t)sizeof(float);
        if (tv == HERD_TYPE_F16) {
            for (int64_t j = 0; j < nb; j++)
                for (int64_t d = 0; d < hd; d += 16)
                    _mm512_storeu_ps(Vb + j * hd + d, load_row16(V + j * kv->stride_v, true, d));
            vb = Vb;
            vstride = hd;
        } else if (vt) {
            for (int64_t j = 0; j < nb; j++) vt->to_f32(V + j * kv->stride_v, Vb + j * hd, hd);
            vb = Vb;
            vstride = hd;
        }
        if (tiled) { /* every query x the block's keys; what a query does not reach is masked below */
            kt->gemm(hd, nb, nq, (const uint8_t *)kv->k + b0 * kv->stride_k, kv->stride_k, Qq, xb, P, B);
        } else if (kt) { /* scores by the type's dot, each query's own keys only (the rest are masked below) */
            const uint8_t *K = (const uint8_t *)kv->k + b0 * kv->stride_k;
            for (int64_t i = 0; i < nq; i++)
                for (int64_t j = 0; j < nb && b0 + j < n_kv[i]; j++) kt->dot(hd, P + i * B + j, K + j * kv->stride_k, Qq + i * hd);
        }
        /* scores of the queries that reach this block, QK_TILE at a time, then their softmax step */
        for (int64_t i = 0; i < nq && !kt;) {
            const float *qs[QK_TILE];
            float *ss[QK_TILE];
            int n = 0;
            for (; i < nq && n < QK_TILE; i++)
                if (n_kv[i] > b0) {
                    qs[n] = q[i];
                    ss[n++] = P + i * B;
                }
            if (n) qk_any(n, Kt, hd, qs, ss);
        }
        for (int64_t i = 0; i < nq; i++)
            if (n_kv[i] > b0) C[i] = softmax_max(P + i * B, n_kv[i] - b0 < B ? n_kv[i] - b0 : B, kv->scale, &M[i]);
        for (int64_t i = 0; i < nq; i += 16) { /* C = exp(C); lanes of queries past this block are unused */
            const __mmask16 k = nq - i >= 16 ? 0xFFFF : (__mmask16)((1u << (nq - i)) - 1);
            _mm512_mask_storeu_ps(C + i, k, vmath_exp_ps(_mm512_maskz_loadu_ps(k, C + i)));
        }
        for (int64_t i = 0; i < nq; i++)
            if (n_kv[i] > b0) softmax_weights(P + i * B, M[i], C[i], L + i * 16);
        /* o, PV_TILE queries at a time */
        for (int64_t i = 0; i < nq;) {
            float *ps[PV_TILE], *os[PV_TILE], cs[PV_TILE];
            int64_t nvs[PV_TILE];
            int n = 0;
            for (; i < nq && n < PV_TILE; i++)
                if (n_kv[i] > b0) {
                    ps[n] = P + i * B;
                    os[n] = o[i];
                    cs[n] = C[i];
                    nvs[n++] = n_kv[i] - b0 < B ? n_kv[i] - b0 : B;
                }
            if (n) pv_any(n, hd, vb, vstride, ps, nvs, cs, b0 == 0, os);
        }
    }
    for (int64_t i = 0; i < nq; i++) {
        const __m512 l = _mm512_set1_ps(_mm512_reduce_add_ps(_mm512_loadu_ps(L + i * 16)));
        for (int64_t d = 0; d < hd; d += 16)
            _mm512_storeu_ps(o[i] + d, _mm512_div_ps(_mm512_loadu_ps(o[i] + d), l));
    }
}

void kernels_fill_attn_avx512(kernel_vec_ops *vec) {
    vec->attn = attn_avx512;
}
