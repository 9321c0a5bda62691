/* DeBERTa-v2 forward: the scalar reference and the threaded version; see deberta.h for the maths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "../train/gemm.h"
#include "deberta.h"

static float gelu(float x) { return (float)(0.5 * (double)x * (1.0 + erf((double)x * M_SQRT1_2))); }

static void layer_norm(const float *x, int64_t H, const float *w, const float *b, double eps, float *y) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < H; i++) mean += x[i];
    mean /= (double)H;
    for (int64_t i = 0; i < H; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    var /= (double)H;
    double inv = 1.0 / sqrt(var + eps);
    for (int64_t i = 0; i < H; i++) y[i] = (float)(((double)x[i] - mean) * inv) * w[i] + b[i];
}

static int check_input(const deberta_model *m, const int32_t *ids, int64_t T) {
    if (T < 1 || T > m->cfg.n_pos)
        return herd_err(HERD_E_RANGE, "deberta: %lld tokens (1..%lld fit a window)", (long long)T, (long long)m->cfg.n_pos);
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= m->cfg.n_vocab)
            return herd_err(HERD_E_ARG, "deberta: token id %d is outside the vocabulary (%lld)", ids[t],
                            (long long)m->cfg.n_vocab);
    return 0;
}

/* x[T][H] = the embeddings of ids after their LayerNorm. tmp holds T * E floats. */
static void embed(const deberta_model *m, const int32_t *ids, int64_t T, float *tmp, float *x) {
    const hf_deberta_config *c = &m->cfg;
    const int64_t H = c->n_embd, E = c->n_embd_in;
    for (int64_t t = 0; t < T; t++) {
        float *e = tmp + t * E;
        memcpy(e, m->tok_embd + (int64_t)ids[t] * E, (size_t)E * sizeof *e);
        if (m->pos_embd)
            for (int64_t i = 0; i < E; i++) e[i] += m->pos_embd[t * E + i];
        if (m->type_embd)
            for (int64_t i = 0; i < E; i++) e[i] += m->type_embd[i];
    }
    for (int64_t t = 0; t < T; t++) {
        float *e = tmp + t * E;
        float proj[E == H ? 1 : H];
        if (m->embed_proj) {
            for (int64_t o = 0; o < H; o++) {
                double s = 0;
                for (int64_t i = 0; i < E; i++) s += (double)m->embed_proj[o * E + i] * e[i];
                proj[o] = (float)s;
            }
            e = proj;
        }
        layer_norm(e, H, m->emb_ln_w, m->emb_ln_b, c->norm_eps, x + t * H);
    }
}

static void pool_classify(const deberta_model *m, const float *cls, float *logits) {
    const int64_t H = m->cfg.n_embd;
    float *pooled = herd_xmalloc((size_t)H * sizeof *pooled);
    for (int64_t o = 0; o < H; o++) {
        double s = m->pool_b[o];
        for (int64_t i = 0; i < H; i++) s += (double)m->pool_w[o * H + i] * cls[i];
        pooled[o] = gelu((float)s);
    }
    for (int64_t o = 0; o < m->cfg.n_labels; o++) {
        double s = m->cls_b[o];
        for (int64_t i = 0; i < H; i++) s += (double)m->cls_w[o * H + i] * pooled[i];
        logits[o] = (float)s;
    }
    free(pooled);
}

/* ---- scalar reference ------------------------------------------------------------------------------ */

/* y[n_out] = W[n_out][n_in] x + b, double sums */
static void linear(const float *W, const float *b, int64_t n_in, int64_t n_out, const float *x, float *y) {
    for (int64_t o = 0; o < n_out; o++) {
        double s = b ? b[o] : 0;
        for (int64_t i = 0; i < n_in; i++) s += (double)W[o * n_in + i] * x[i];
        y[o] = (float)s;
    }
}

int deberta_forward_ref(const deberta_model *m, const int32_t *ids, int64_t T, float *logits) {
    int rc = check_input(m, ids, T);
    if (rc) return rc;
    const hf_deberta_config *c = &m->cfg;
    const int64_t H = c->n_embd, F = c->n_ff, S = c->att_span, nh = c->n_head, d = c->head_dim;
    const int64_t R = c->relative_attention ? 2 * S : 0;
    float *x = herd_xmalloc((size_t)(T * (H > c->n_embd_in ? H : c->n_embd_in)) * sizeof *x);
    float *tmp = herd_xmalloc((size_t)(T * (H > c->n_embd_in ? H : c->n_embd_in)) * sizeof *tmp);
    float *q = herd_xmalloc((size_t)(T * H) * sizeof *q), *k = herd_xmalloc((size_t)(T * H) * sizeof *k);
    float *v = herd_xmalloc((size_t)(T * H) * sizeof *v), *a = herd_xmalloc((size_t)(T * H) * sizeof *a);
    float *pk = herd_xmalloc((size_t)(R * H + 1) * sizeof *pk), *pq = herd_xmalloc((size_t)(R * H + 1) * sizeof *pq);
    float *s = herd_xmalloc((size_t)T * sizeof *s), *h1 = herd_xmalloc((size_t)H * sizeof *h1);
    float *ff = herd_xmalloc((size_t)F * sizeof *ff);
    embed(m, ids, T, tmp, x);
    const double scale = sqrt((double)(float)d * (double)(1 + c->c2p + c->p2c));
    for (int64_t l = 0; l < c->n_layer; l++) {
        const deberta_layer *L = &m->layers[l];
        for (int64_t t = 0; t < T; t++) {
            linear(L->wq, L->bq, H, H, x + t * H, q + t * H);
            linear(L->wk, L->bk, H, H, x + t * H, k + t * H);
            linear(L->wv, L->bv, H, H, x + t * H, v + t * H);
        }
        for (int64_t r = 0; r < R; r++) { /* position keys / queries from the normed relative embeddings */
            const float *wk = c->share_att_key ? L->wk : L->wpk, *bk = c->share_att_key ? L->bk : L->bpk;
            const float *wq = c->share_att_key ? L->wq : L->wpq, *bq = c->share_att_key ? L->bq : L->bpq;
            if (c->c2p) linear(wk, bk, H, H, m->rel + r * H, pk + r * H);
            if (c->p2c) linear(wq, bq, H, H, m->rel + r * H, pq + r * H);
        }
        for (int64_t h = 0; h < nh; h++)
            for (int64_t i = 0; i < T; i++) {
                const float *qi = q + i * H + h * d;
                double mx = -INFINITY;
                for (int64_t j = 0; j < T; j++) {
                    const float *kj = k + j * H + h * d;
                    double qk = 0, c2p = 0, p2c = 0;
                    for (int64_t e = 0; e < d; e++) qk += (double)qi[e] * kj[e];
                    if (c->relative_attention) {
                        int64_t b = deberta_bucket(i - j, c->position_buckets, c->max_relative_positions) + S;
                        b = b < 0 ? 0 : b > 2 * S - 1 ? 2 * S - 1 : b;
                        /* p2c gathers at clamp(-bucket(j - i) + S) */
                        int64_t bp = -deberta_bucket(j - i, c->position_buckets, c->max_relative_positions) + S;
                        bp = bp < 0 ? 0 : bp > 2 * S - 1 ? 2 * S - 1 : bp;
                        if (c->c2p)
                            for (int64_t e = 0; e < d; e++) c2p += (double)qi[e] * pk[b * H + h * d + e];
                        if (c->p2c)
                            for (int64_t e = 0; e < d; e++) p2c += (double)kj[e] * pq[bp * H + h * d + e];
                    }
                    s[j] = (float)((qk + c2p + p2c) / scale);
                    if (s[j] > mx) mx = s[j];
                }
                double sum = 0;
                for (int64_t j = 0; j < T; j++) sum += exp((double)s[j] - mx);
                for (int64_t e = 0; e < d; e++) {
                    double o = 0;
                    for (int64_t j = 0; j < T; j++) o += exp((double)s[j] - mx) / sum * v[j * H + h * d + e];
                    a[i * H + h * d + e] = (float)o;
                }
            }
        for (int64_t t = 0; t < T; t++) {
            linear(L->wo, L->bo, H, H, a + t * H, h1);
            for (int64_t i = 0; i < H; i++) h1[i] += x[t * H + i];
            layer_norm(h1, H, L->ln1_w, L->ln1_b, c->norm_eps, h1);
            linear(L->wi, L->bi, H, F, h1, ff);
            for (int64_t i = 0; i < F; i++) ff[i] = gelu(ff[i]);
            linear(L->wo2, L->bo2, F, H, ff, x + t * H);
            for (int64_t i = 0; i < H; i++) x[t * H + i] += h1[i];
            layer_norm(x + t * H, H, L->ln2_w, L->ln2_b, c->norm_eps, x + t * H);
        }
    }
    pool_classify(m, x, logits);
    free(x), free(tmp), free(q), free(k), free(v), free(a), free(pk), free(pq), free(s), free(h1), free(ff);
    return 0;
}

/* ---- threaded ---------------------------------------------------------------------------------------- */

struct deberta_ctx {
    const deberta_model *m;
    thread_pool *pool;
    train_gemm *g;
    int nth;
    float *x, *tmp, *q, *k, *v, *a, *h1, *ff; /* [n_pos][H] ([n_pos][F] for ff) */
    float *ws;                                 /* per thread: attention scratch, see attn_job */
    int64_t ws_per;
};

deberta_ctx *deberta_ctx_new(const deberta_model *m, thread_pool *pool) {
    const hf_deberta_config *c = &m->cfg;
    const int64_t P = c->n_pos, H = c->n_embd > c->n_embd_in ? c->n_embd : c->n_embd_in, F = c->n_ff;
    const int64_t R = 2 * c->att_span, d = c->head_dim;
    deberta_ctx *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->m = m;
    x->pool = pool;
    x->nth = pool_size(pool);
    x->g = train_gemm_new(pool);
    /* scores [P][P], c2p [P][R], p2c [P][R], kT [d][P], pkT [d][R], pqT [d][R] */
    x->ws_per = P * P + 2 * P * R + d * P + 2 * d * R;
    float **bufs[] = {&x->x, &x->tmp, &x->q, &x->k, &x->v, &x->a, &x->h1};
    bool ok = x->g != NULL;
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) ok = ok && (*bufs[i] = malloc((size_t)(P * H) * sizeof(float)));
    ok = ok && (x->ff = malloc((size_t)(P * F) * sizeof(float)));
    ok = ok && (x->ws = malloc((size_t)(x->nth * x->ws_per) * sizeof(float)));
    if (!ok) {
        deberta_ctx_free(x);
        return NULL;
    }
    return x;
}

void deberta_ctx_free(deberta_ctx *c) {
    if (!c) return;
    train_gemm_free(c->g);
    free(c->x), free(c->tmp), free(c->q), free(c->k), free(c->v), free(c->a), free(c->h1), free(c->ff), free(c->ws);
    free(c);
}

typedef struct {
    deberta_ctx *c;
    const deberta_layer *L;
    int64_t T;
    int64_t nq; /* attention: query rows computed (T, or 1 in the last layer: only [CLS] is pooled) */
    float *buf; /* rows to transform */
    const float *bias, *ln_w, *ln_b, *resid;
    int64_t n;  /* row length */
} row_job;

/* rows [T][n] += bias, then gelu (act) — one pool job */
static void bias_gelu_job(void *arg, int ith, int nth) {
    row_job *j = arg;
    int64_t r0, r1;
    pool_range(j->T, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t i = 0; i < j->n; i++) j->buf[r * j->n + i] = gelu(j->buf[r * j->n + i] + j->bias[i]);
}

/* rows [T][n] = LayerNorm(rows + bias + resid) */
static void bias_resid_ln_job(void *arg, int ith, int nth) {
    row_job *j = arg;
    const hf_deberta_config *c = &j->c->m->cfg;
    int64_t r0, r1;
    pool_range(j->T, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        float *y = j->buf + r * j->n;
        for (int64_t i = 0; i < j->n; i++) y[i] += j->bias[i] + j->resid[r * j->n + i];
        layer_norm(y, j->n, j->ln_w, j->ln_b, c->norm_eps, y);
    }
}

/* q, k, v get their biases */
static void qkv_bias_job(void *arg, int ith, int nth) {
    row_job *j = arg;
    deberta_ctx *c = j->c;
    const int64_t H = c->m->cfg.n_embd;
    int64_t r0, r1;
    pool_range(j->T, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t i = 0; i < H; i++) {
            c->q[r * H + i] += j->L->bq[i];
            c->k[r * H + i] += j->L->bk[i];
            c->v[r * H + i] += j->L->bv[i];
        }
}

static void transpose(const float *src, int64_t ld, int64_t rows, int64_t cols, float *dst) { /* dst[cols][rows] */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t e = 0; e < cols; e++) dst[e * rows + r] = src[r * ld + e];
}

/* One head per task: scores, softmax, a[:, head] = P v. */
static void attn_job(void *arg, int ith, int nth) {
    row_job *j = arg;
    deberta_ctx *c = j->c;
    const deberta_model *m = c->m;
    const hf_deberta_config *cf = &m->cfg;
    const int64_t T = j->T, nq = j->nq, H = cf->n_embd, d = cf->head_dim, S = cf->att_span, R = 2 * S, P = cf->n_pos;
    const kernel_vec_ops *vo = kernels_vec();
    float *sc = c->ws + (int64_t)ith * c->ws_per;
    float *c2p = sc + P * P, *p2c = c2p + P * R, *kT = p2c + P * R, *pkT = kT + d * P, *pqT = pkT + d * R;
    const float inv = (float)(1.0 / sqrt((double)(float)d * (double)(1 + cf->c2p + cf->p2c)));
    const bool rel = cf->relative_attention;
    for (int64_t h = ith; h < cf->n_head; h += nth) {
        const float *q = c->q + h * d, *k = c->k + h * d;
        transpose(k, H, T, d, kT);
        memset(sc, 0, (size_t)(nq * T) * sizeof *sc);
        vo->gemm_f32(nq, T, d, q, H, 1, kT, T, sc, T); /* q k^T */
        if (rel && cf->c2p) {
            transpose(j->L->pos_k + h * d, H, R, d, pkT);
            memset(c2p, 0, (size_t)(nq * R) * sizeof *c2p);
            vo->gemm_f32(nq, R, d, q, H, 1, pkT, R, c2p, R);
        }
        if (rel && cf->p2c) {
            transpose(j->L->pos_q + h * d, H, R, d, pqT);
            memset(p2c, 0, (size_t)(T * R) * sizeof *p2c);
            vo->gemm_f32(T, R, d, k, H, 1, pqT, R, p2c, R);
        }
        for (int64_t i = 0; i < nq; i++) {
            float *s = sc + i * T, mx = -INFINITY;
            for (int64_t jj = 0; jj < T; jj++) {
                float v = s[jj] * inv;
                if (rel) {
                    int32_t r = m->rel_idx[i - jj + P - 1];
                    if (cf->c2p) v += c2p[i * R + r] * inv;
                    if (cf->p2c) v += p2c[jj * R + r] * inv;
                }
                s[jj] = v;
                if (v > mx) mx = v;
            }
            float sum = 0;
            for (int64_t jj = 0; jj < T; jj++) sum += (s[jj] = expf(s[jj] - mx));
            float is = 1.0f / sum;
            for (int64_t jj = 0; jj < T; jj++) s[jj] *= is;
        }
        float *out = c->a + h * d;
        for (int64_t i = 0; i < nq; i++) memset(out + i * H, 0, (size_t)d * sizeof *out);
        vo->gemm_f32(nq, d, T, sc, T, 1, c->v + h * d, H, out, H); /* P v */
    }
}

int deberta_forward(deberta_ctx *c, const int32_t *ids, int64_t T, float *logits) {
    const deberta_model *m = c->m;
    int rc = check_input(m, ids, T);
    if (rc) return rc;
    const hf_deberta_config *cf = &m->cfg;
    const int64_t H = cf->n_embd, F = cf->n_ff;
    embed(m, ids, T, c->tmp, c->x);
    for (int64_t l = 0; l < cf->n_layer; l++) {
        const deberta_layer *L = &m->layers[l];
        train_w wq = {.f = L->wq, .n_in = H, .n_out = H}, wk = {.f = L->wk, .n_in = H, .n_out = H},
                wv = {.f = L->wv, .n_in = H, .n_out = H}, wo = {.f = L->wo, .n_in = H, .n_out = H},
                wi = {.f = L->wi, .n_in = H, .n_out = F}, wo2 = {.f = L->wo2, .n_in = F, .n_out = H};
        train_gemm_xwt(c->g, &wq, c->x, H, T, c->q, H);
        train_gemm_xwt(c->g, &wk, c->x, H, T, c->k, H);
        train_gemm_xwt(c->g, &wv, c->x, H, T, c->v, H);
        row_job j = {.c = c, .L = L, .T = T, .nq = T};
        pool_run(c->pool, qkv_bias_job, &j);
        if (l == cf->n_layer - 1) j.nq = T = 1; /* from here on only the [CLS] row matters (the pooler's) */
        pool_run(c->pool, attn_job, &j);
        train_gemm_xwt(c->g, &wo, c->a, H, T, c->h1, H);
        j = (row_job){.c = c, .L = L, .T = T, .buf = c->h1, .bias = L->bo, .ln_w = L->ln1_w, .ln_b = L->ln1_b,
                      .resid = c->x, .n = H};
        pool_run(c->pool, bias_resid_ln_job, &j);
        train_gemm_xwt(c->g, &wi, c->h1, H, T, c->ff, F);
        j = (row_job){.c = c, .T = T, .buf = c->ff, .bias = L->bi, .n = F};
        pool_run(c->pool, bias_gelu_job, &j);
        train_gemm_xwt(c->g, &wo2, c->ff, F, T, c->x, H);
        j = (row_job){.c = c, .L = L, .T = T, .buf = c->x, .bias = L->bo2, .ln_w = L->ln2_w, .ln_b = L->ln2_b,
                      .resid = c->h1, .n = H};
        pool_run(c->pool, bias_resid_ln_job, &j);
    }
    pool_classify(m, c->x, logits);
    return 0;
}
