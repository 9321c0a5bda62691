/* DeBERTa-v2 forward: the scalar reference and the threaded version; see deberta.h for the maths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "deberta.h"
#include "deberta_kern.h"

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

/* x[T][H] (row stride ldx) = the embeddings of ids after their LayerNorm. tmp holds T * E floats. */
static void embed(const deberta_model *m, const int32_t *ids, int64_t T, float *tmp, float *x, int64_t ldx) {
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
        layer_norm(e, H, m->emb_ln_w, m->emb_ln_b, c->norm_eps, x + t * ldx);
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
    embed(m, ids, T, tmp, x, H);
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

/* The products of the threaded forward go through kernels.h gemm_f32 (C += A B, A read with strides, B
 * row-major), with B laid out first as strips of MM_NR columns, [N / MM_NR][K][MM_NR] (zero past N):
 * B operands with a row stride of 2 KiB or 3 KiB (x^T or W^T in place, k^T, v) map every row of a
 * column strip to the same few L1 sets and thrash it; a strip's k block of MM_KC rows (32 KiB) stays
 * in L1 while all M rows of A stream past it. The weights are laid out once per context (pack_nt), the
 * attention's keys, positions and values once per head. */
#define MM_KC 256
#define MM_NR 32

static int64_t pad_nr(int64_t n) { return (n + MM_NR - 1) / MM_NR * MM_NR; }

/* dst[s][k][j] = W[s MM_NR + j][k] for W [n_out][n_in] with row stride ldw (a weight, or keys /
 * positions of one head): W^T as B strips */
static void pack_nt(const float *W, int64_t ldw, int64_t n_out, int64_t n_in, float *dst) {
    for (int64_t n0 = 0; n0 < n_out; n0 += MM_NR, dst += MM_NR * n_in)
        for (int64_t j = 0; j < MM_NR; j++)
            for (int64_t k = 0; k < n_in; k++) dst[k * MM_NR + j] = n0 + j < n_out ? W[(n0 + j) * ldw + k] : 0;
}

/* dst[s][k][j] = B[k][s MM_NR + j] for B [K][N] with row stride ldb (one head's values) */
static void pack_nn(const float *B, int64_t ldb, int64_t K, int64_t N, float *dst) {
    for (int64_t n0 = 0; n0 < N; n0 += MM_NR, dst += MM_NR * K)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < MM_NR; j++) dst[k * MM_NR + j] = n0 + j < N ? B[k * ldb + n0 + j] : 0;
}

/* C[M][N] += A[M][K] . B, B in strips (pack_nt / pack_nn), in k blocks of MM_KC */
static void mm_packed(const kernel_vec_ops *vo, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                      const float *Bp, float *C, int64_t ldc) {
    for (int64_t n0 = 0; n0 < N; n0 += MM_NR) {
        const int64_t nr = N - n0 < MM_NR ? N - n0 : MM_NR;
        const float *bs = Bp + n0 * K; /* the strip [K][MM_NR] */
        for (int64_t k0 = 0; k0 < K; k0 += MM_KC)
            vo->gemm_f32(M, nr, K - k0 < MM_KC ? K - k0 : MM_KC, A + k0, lda, 1, bs + k0 * MM_NR, MM_NR, C + n0, ldc);
    }
}

/* A row stride of n floats plus one cache line: rows of 2, 3 or 12 KiB (512, 768, 3072 floats) start
 * in the same few of L1's 64 sets, so the 8 rows a GEMM tile reads at once (or the 512 rows of p2c a
 * score row gathers from) evict each other; one more line per row spreads them over all sets. */
static int64_t ld_pad(int64_t n) { return n + 16; }

/* queries per attention block: its scores [QB][T] and c2p rows [QB][R] stay in L2 */
#define QB 64

struct deberta_ctx {
    const deberta_model *m;
    thread_pool *pool;
    int nth;
    deberta_row_fn row;                        /* deberta_kern.h: AVX-512 when active, else the reference */
    deberta_gelu_fn gelu;
    float *wpack;                              /* the layers' weights packed for linear_job (pack_nt), mmap'd */
    size_t wpack_bytes;
    const float **wp;                          /* [n_layer][6]: wq wk wv wo wi wo2 in wpack */
    int32_t *rr;                               /* [2 n_pos - 1]: r(i, j) at rr[n_pos - 1 - i + j] (rel_idx reversed) */
    float *x, *tmp, *q, *k, *v, *a, *h1, *ff; /* [n_pos][ldh] ([n_pos][ldf] for ff; tmp [n_pos][max(H, E)]) */
    int64_t ldh, ldf, ldp;                     /* row strides of the activations and of p2c, see ld_pad */
    float *ws;                                 /* per thread: attention scratch, see attn_job */
    int64_t ws_per;
};

void deberta_ctx_free(deberta_ctx *c) {
    if (!c) return;
    if (c->wpack) munmap(c->wpack, c->wpack_bytes);
    free(c->wp);
    free(c->rr);
    free(c->x), free(c->tmp), free(c->q), free(c->k), free(c->v), free(c->a), free(c->h1), free(c->ff), free(c->ws);
    free(c);
}

static void pack_job(void *arg, int ith, int nth) {
    deberta_ctx *c = arg;
    const hf_deberta_config *cf = &c->m->cfg;
    const int64_t H = cf->n_embd, F = cf->n_ff;
    int64_t i0, i1;
    pool_range(cf->n_layer * 6, ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        const deberta_layer *L = &c->m->layers[i / 6];
        const float *w[6] = {L->wq, L->wk, L->wv, L->wo, L->wi, L->wo2};
        const int64_t n_out = i % 6 == 4 ? F : H, n_in = i % 6 == 5 ? F : H;
        pack_nt(w[i % 6], n_in, n_out, n_in, (float *)c->wp[i]);
    }
}

deberta_ctx *deberta_ctx_new(const deberta_model *m, thread_pool *pool) {
    const hf_deberta_config *c = &m->cfg;
    const int64_t P = c->n_pos, H = c->n_embd > c->n_embd_in ? c->n_embd : c->n_embd_in, F = c->n_ff;
    const int64_t R = c->relative_attention ? 2 * c->att_span : 0, d = c->head_dim;
    deberta_ctx *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->m = m;
    x->pool = pool;
    x->nth = pool_size(pool);
    const bool avx512 = kernels_active_isa() == KERNEL_ISA_AVX512;
    x->row = avx512 && P * ld_pad(R) <= INT32_MAX ? deberta_row_avx512 : deberta_row_ref; /* its gathers index j R + r in int32 */
    x->gelu = avx512 ? deberta_gelu_avx512 : deberta_gelu_ref;
    x->ldh = ld_pad(c->n_embd), x->ldf = ld_pad(F), x->ldp = ld_pad(R);
    /* packed k, pos_k, pos_q, v of one head; p2c [P][ldp]; scores [QB][P]; c2p [QB][R] */
    x->ws_per = pad_nr(P) * d + 2 * pad_nr(R) * d + pad_nr(d) * P + P * x->ldp + QB * P + QB * R;
    float **bufs[] = {&x->x, &x->q, &x->k, &x->v, &x->a, &x->h1};
    bool ok = (x->tmp = malloc((size_t)(P * H) * sizeof(float))) != NULL;
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) ok = ok && (*bufs[i] = malloc((size_t)(P * x->ldh) * sizeof(float)));
    ok = ok && (x->ff = malloc((size_t)(P * x->ldf) * sizeof(float)));
    ok = ok && (x->ws = malloc((size_t)(x->nth * x->ws_per) * sizeof(float)));
    const int64_t Hn = c->n_embd, per_layer = 4 * pad_nr(Hn) * Hn + pad_nr(F) * Hn + pad_nr(Hn) * F;
    /* the packed weights (the model's F32 size) in transparent huge pages where the kernel allows them
     * (madvise mode): the first touch of every 4 KiB page faults, in a VM twice over, which made the
     * packing at load cost more CPU than a 512-id window */
    x->wpack_bytes = (size_t)(c->n_layer * per_layer) * sizeof(float);
    if (ok) {
        void *p = mmap(NULL, x->wpack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            madvise(p, x->wpack_bytes, MADV_HUGEPAGE); /* advice: failure leaves 4 KiB pages */
            x->wpack = p;
        } else
            ok = false;
    }
    ok = ok && (x->wp = malloc((size_t)(c->n_layer * 6) * sizeof *x->wp));
    ok = ok && (x->rr = malloc((size_t)(2 * P - 1) * sizeof *x->rr));
    if (!ok) {
        deberta_ctx_free(x);
        return NULL;
    }
    for (int64_t u = 0; u < 2 * P - 1; u++) x->rr[u] = m->rel_idx ? m->rel_idx[2 * P - 2 - u] : 0;
    float *w = x->wpack;
    for (int64_t i = 0; i < c->n_layer * 6; i++) {
        x->wp[i] = w;
        w += i % 6 == 4 ? pad_nr(F) * Hn : i % 6 == 5 ? pad_nr(Hn) * F : pad_nr(Hn) * Hn;
    }
    pool_run(pool, pack_job, x);
    return x;
}

typedef struct {
    deberta_ctx *c;
    const deberta_layer *L;
    int64_t T;
    int64_t nq; /* attention: query rows computed (T, or 1 in the last layer: only [CLS] is pooled) */
    float *buf; /* rows to transform */
    const float *ln_w, *ln_b, *resid;
    int64_t n, ld; /* row length, row stride */
} row_job;

/* The jobs below are pool_for chunks (pool.h): threads claim them one at a time, so a thread the
 * scheduler takes off its core (a busy machine) holds up only the chunk it has; ith picks the scratch. */
#define LN_ROWS 16 /* rows per chunk of resid_ln_job */

/* rows [T][n] = LayerNorm(rows + resid) (the bias is in the rows already, see linear_job); chunk: LN_ROWS rows */
static void resid_ln_job(void *arg, int64_t chunk, int ith) {
    row_job *j = arg;
    const hf_deberta_config *c = &j->c->m->cfg;
    const int64_t r0 = chunk * LN_ROWS, r1 = r0 + LN_ROWS < j->T ? r0 + LN_ROWS : j->T;
    for (int64_t r = r0; r < r1; r++) {
        float *y = j->buf + r * j->ld;
        for (int64_t i = 0; i < j->n; i++) y[i] += j->resid[r * j->ld + i];
        layer_norm(y, j->n, j->ln_w, j->ln_b, c->norm_eps, y);
    }
}

/* One head per chunk. Its keys, position keys / queries and values are packed once; p2c [T][R] =
 * k pos_q^T (in the last layer, nq = 1, only the T entries the row reads: dots); then per block of QB
 * queries: scores q k^T and c2p q pos_k^T, each row finished in one call of c->row (both gathers, the
 * scale and the softmax while the row is in L1), and a[block, head] = P v. */
static void attn_job(void *arg, int64_t h, int ith) {
    row_job *j = arg;
    deberta_ctx *c = j->c;
    const deberta_model *m = c->m;
    const hf_deberta_config *cf = &m->cfg;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t T = j->T, nq = j->nq, H = cf->n_embd, ldh = c->ldh, ldp = c->ldp, d = cf->head_dim, P = cf->n_pos;
    const bool rel = cf->relative_attention, c2p_on = rel && cf->c2p, p2c_on = rel && cf->p2c;
    const int64_t R = rel ? 2 * cf->att_span : 0;
    float *kp = c->ws + (int64_t)ith * c->ws_per, *pkp = kp + pad_nr(P) * d, *pqp = pkp + pad_nr(R) * d;
    float *vp = pqp + pad_nr(R) * d, *p2c = vp + pad_nr(d) * P, *sc = p2c + P * ldp, *c2p = sc + QB * P;
    const float inv = (float)(1.0 / sqrt((double)(float)d * (double)(1 + cf->c2p + cf->p2c)));
    const float *q = c->q + h * d, *k = c->k + h * d;
    pack_nt(k, ldh, T, d, kp);
    pack_nn(c->v + h * d, ldh, T, d, vp);
    if (c2p_on) pack_nt(j->L->pos_k + h * d, H, R, d, pkp);
    if (p2c_on && nq * 8 <= R) { /* p2c[jj][r(i, jj)] for the few rows i < nq */
        for (int64_t i = 0; i < nq; i++)
            for (int64_t jj = 0; jj < T; jj++) {
                const int32_t r = c->rr[P - 1 - i + jj];
                p2c[jj * ldp + r] = vo->dot_f32(d, k + jj * ldh, j->L->pos_q + r * H + h * d);
            }
    } else if (p2c_on) {
        pack_nt(j->L->pos_q + h * d, H, R, d, pqp);
        memset(p2c, 0, (size_t)(T * ldp) * sizeof *p2c);
        mm_packed(vo, T, R, d, k, ldh, pqp, p2c, ldp);
    }
    for (int64_t i0 = 0; i0 < nq; i0 += QB) {
        const int64_t nb = nq - i0 < QB ? nq - i0 : QB;
        memset(sc, 0, (size_t)(nb * T) * sizeof *sc);
        mm_packed(vo, nb, T, d, q + i0 * ldh, ldh, kp, sc, T); /* q k^T */
        if (c2p_on) {
            memset(c2p, 0, (size_t)(nb * R) * sizeof *c2p);
            mm_packed(vo, nb, R, d, q + i0 * ldh, ldh, pkp, c2p, R);
        }
        for (int64_t i = 0; i < nb; i++)
            c->row(T, sc + i * T, c2p_on ? c2p + i * R : NULL, p2c_on ? p2c : NULL, ldp, c->rr + P - 1 - (i0 + i), inv);
        float *out = c->a + i0 * ldh + h * d;
        for (int64_t i = 0; i < nb; i++) memset(out + i * ldh, 0, (size_t)d * sizeof *out);
        mm_packed(vo, nb, d, T, sc, T, vp, out, ldh); /* P v */
    }
}

/* Up to three products y_i[T][n_out] = x[T][n_in] W_i^T + b_i (then gelu if act), W_i packed (pack_nt), in one pool job: the
 * column strips of MM_NR of all outputs are its chunks; each strip starts from its bias. */
typedef struct {
    deberta_ctx *c;
    const float *x;
    int64_t T, n_in, n_out, nw;
    int64_t ldx, ldy;         /* row strides of x and the y_i */
    const float *w[3], *b[3]; /* w: packed (pack_nt) */
    float *y[3];
    bool act;
} lin_job;

static void linear_job(void *arg, int64_t s, int ith) { /* chunk s: one strip of one output */
    lin_job *j = arg;
    const kernel_vec_ops *vo = kernels_vec();
    const int64_t ns = (j->n_out + MM_NR - 1) / MM_NR;
    const int64_t wi = s / ns, n0 = s % ns * MM_NR, nr = j->n_out - n0 < MM_NR ? j->n_out - n0 : MM_NR;
    float *y = j->y[wi];
    for (int64_t t = 0; t < j->T; t++) memcpy(y + t * j->ldy + n0, j->b[wi] + n0, (size_t)nr * sizeof *y);
    const float *wps = j->w[wi] + n0 * j->n_in; /* the packed strip [n_in][MM_NR] */
    for (int64_t k0 = 0; k0 < j->n_in; k0 += MM_KC)
        vo->gemm_f32(j->T, nr, j->n_in - k0 < MM_KC ? j->n_in - k0 : MM_KC, j->x + k0, j->ldx, 1, wps + k0 * MM_NR,
                     MM_NR, y + n0, j->ldy);
    if (j->act)
        for (int64_t t = 0; t < j->T; t++) j->c->gelu(nr, y + t * j->ldy + n0);
}

int deberta_forward(deberta_ctx *c, const int32_t *ids, int64_t T, float *logits) {
    const deberta_model *m = c->m;
    int rc = check_input(m, ids, T);
    if (rc) return rc;
    const hf_deberta_config *cf = &m->cfg;
    const int64_t H = cf->n_embd, F = cf->n_ff, ldh = c->ldh, ldf = c->ldf;
    embed(m, ids, T, c->tmp, c->x, ldh);
    for (int64_t l = 0; l < cf->n_layer; l++) {
        const deberta_layer *L = &m->layers[l];
        lin_job lj = {.c = c, .x = c->x, .T = T, .n_in = H, .n_out = H, .ldx = ldh, .ldy = ldh, .nw = 3, .w = {c->wp[l * 6], c->wp[l * 6 + 1], c->wp[l * 6 + 2]},
                      .b = {L->bq, L->bk, L->bv}, .y = {c->q, c->k, c->v}};
        pool_for(c->pool, lj.nw * ((lj.n_out + MM_NR - 1) / MM_NR), linear_job, &lj);
        row_job j = {.c = c, .L = L, .T = T, .nq = T};
        if (l == cf->n_layer - 1) j.nq = T = 1; /* from here on only the [CLS] row matters (the pooler's) */
        pool_for(c->pool, cf->n_head, attn_job, &j);
        lj = (lin_job){.c = c, .x = c->a, .T = T, .n_in = H, .n_out = H, .ldx = ldh, .ldy = ldh, .nw = 1, .w = {c->wp[l * 6 + 3]}, .b = {L->bo}, .y = {c->h1}};
        pool_for(c->pool, lj.nw * ((lj.n_out + MM_NR - 1) / MM_NR), linear_job, &lj);
        j = (row_job){.c = c, .L = L, .T = T, .buf = c->h1, .ln_w = L->ln1_w, .ln_b = L->ln1_b, .resid = c->x, .n = H, .ld = ldh};
        pool_for(c->pool, (T + LN_ROWS - 1) / LN_ROWS, resid_ln_job, &j);
        lj = (lin_job){.c = c, .x = c->h1, .T = T, .n_in = H, .n_out = F, .ldx = ldh, .ldy = ldf, .nw = 1, .w = {c->wp[l * 6 + 4]}, .b = {L->bi},
                       .y = {c->ff}, .act = true};
        pool_for(c->pool, lj.nw * ((lj.n_out + MM_NR - 1) / MM_NR), linear_job, &lj);
        lj = (lin_job){.c = c, .x = c->ff, .T = T, .n_in = F, .n_out = H, .ldx = ldf, .ldy = ldh, .nw = 1, .w = {c->wp[l * 6 + 5]}, .b = {L->bo2},
                       .y = {c->x}};
        pool_for(c->pool, lj.nw * ((lj.n_out + MM_NR - 1) / MM_NR), linear_job, &lj);
        j = (row_job){.c = c, .L = L, .T = T, .buf = c->x, .ln_w = L->ln2_w, .ln_b = L->ln2_b, .resid = c->h1, .n = H, .ld = ldh};
        pool_for(c->pool, (T + LN_ROWS - 1) / LN_ROWS, resid_ln_job, &j);
    }
    pool_classify(m, c->x, logits);
    return 0;
}
