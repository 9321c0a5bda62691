/* DeBERTa-v2 weights from a Hugging Face directory; see deberta.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/types.h"
#include "../train/gemm.h"
#include "deberta.h"

/* The F32 data of tensor `name` with the given shape (n_dims 1 or 2). OUT: *out. */
static int get_tensor(deberta_model *m, const char *what, const float **out, int64_t d0, int64_t d1, const char *fmt,
                      ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const st_tensor *t = st_find(&m->st, name);
    if (!t) return herd_err(HERD_E_FORMAT, "deberta: %s: tensor '%s' is missing", what, name);
    int nd = d1 ? 2 : 1;
    if (t->n_dims != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1)) {
        char got[96] = "";
        size_t k = 0;
        for (int i = 0; i < t->n_dims && k < sizeof got - 24; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (nd == 2)
            return herd_err(HERD_E_FORMAT, "deberta: %s: tensor '%s' has shape [%s], expected [%lld, %lld]", what, name,
                            got, (long long)d0, (long long)d1);
        return herd_err(HERD_E_FORMAT, "deberta: %s: tensor '%s' has shape [%s], expected [%lld]", what, name, got,
                        (long long)d0);
    }
    int64_t n = d0 * (d1 ? d1 : 1);
    if (!strcmp(t->dtype, "F32")) {
        *out = (const float *)t->data;
        return 0;
    }
    void (*conv)(const void *, float *, int64_t) = NULL;
    if (!strcmp(t->dtype, "F16")) conv = row_f16_to_f32_ref;
    if (!strcmp(t->dtype, "BF16")) conv = row_bf16_to_f32_ref;
    if (!conv)
        return herd_err(HERD_E_UNSUPPORTED, "deberta: %s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)", what,
                        name, t->dtype);
    float *f = malloc((size_t)n * sizeof *f);
    if (!f) return herd_err(HERD_E_NOMEM, "deberta: out of memory converting '%s'", name);
    conv(t->data, f, n);
    m->owned = herd_xrealloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *m->owned);
    m->owned[m->n_owned++] = f;
    *out = f;
    return 0;
}

int64_t deberta_bucket(int64_t delta, int64_t bucket_size, int64_t max_position) {
    if (bucket_size <= 0 || max_position <= 0) return delta;
    int64_t mid = bucket_size / 2;
    int64_t sign = delta > 0 ? 1 : delta < 0 ? -1 : 0;
    int64_t abs_pos = (delta < mid && delta > -mid) ? mid - 1 : (delta < 0 ? -delta : delta);
    if (abs_pos <= mid) return delta;
    /* float32 throughout, as torch evaluates it on float tensors */
    float lp = ceilf(logf((float)abs_pos / (float)mid) / logf((float)((double)(max_position - 1) / (double)mid)) *
                     (float)(mid - 1)) +
               (float)mid;
    return (int64_t)(lp * (float)sign);
}

static void layer_norm_rows(const float *x, int64_t n, int64_t H, const float *w, const float *b, double eps, float *y) {
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * H;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < H; i++) mean += xr[i];
        mean /= (double)H;
        for (int64_t i = 0; i < H; i++) var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        var /= (double)H;
        double inv = 1.0 / sqrt(var + eps);
        for (int64_t i = 0; i < H; i++) y[r * H + i] = (float)(((double)xr[i] - mean) * inv) * w[i] + b[i];
    }
}

/* y[n][H] = x[n][H] W^T + b on the pool */
static void project(train_gemm *g, const float *W, const float *b, int64_t n_in, int64_t n_out, const float *x,
                    int64_t n, float *y) {
    train_w w = {.f = W, .n_in = n_in, .n_out = n_out};
    train_gemm_xwt(g, &w, x, n_in, n, y, n_out);
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < n_out; i++) y[r * n_out + i] += b[i];
}

void deberta_free(deberta_model *m) {
    if (!m) return;
    if (m->layers)
        for (int64_t l = 0; l < m->cfg.n_layer; l++) {
            free(m->layers[l].pos_k);
            free(m->layers[l].pos_q);
        }
    free(m->layers);
    free(m->rel);
    free(m->rel_idx);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    st_file_clear(&m->st);
    herd_file_unmap(&m->file);
    free(m);
}

int deberta_load(const char *dir, thread_pool *pool, deberta_model **out) {
    *out = NULL;
    deberta_model *m = herd_xcalloc(1, sizeof *m);
    hf_deberta_config *c = &m->cfg;
    int rc = hf_deberta_config_load(dir, c);
    if (rc) goto fail;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((rc = herd_file_map(path, &m->file))) goto fail;
    if ((rc = st_parse(m->file.data, m->file.size, path, &m->st))) goto fail;
    const int64_t H = c->n_embd, E = c->n_embd_in, F = c->n_ff, S = c->att_span, HD = c->n_head * c->head_dim;
    if (HD != H) {
        rc = herd_err(HERD_E_UNSUPPORTED, "deberta: %s: heads x head size %lld differs from hidden_size %lld", path,
                      (long long)HD, (long long)H);
        goto fail;
    }
    const char *p = path;
#define T2(dst, d0, d1, ...) \
    if ((rc = get_tensor(m, p, &(dst), d0, d1, __VA_ARGS__))) goto fail
    T2(m->tok_embd, c->n_vocab, E, "deberta.embeddings.word_embeddings.weight");
    if (c->position_biased_input) T2(m->pos_embd, c->n_pos, E, "deberta.embeddings.position_embeddings.weight");
    if (c->n_type > 0) T2(m->type_embd, c->n_type, E, "deberta.embeddings.token_type_embeddings.weight");
    if (E != H) T2(m->embed_proj, H, E, "deberta.embeddings.embed_proj.weight");
    T2(m->emb_ln_w, E == H ? H : H, 0, "deberta.embeddings.LayerNorm.weight");
    T2(m->emb_ln_b, H, 0, "deberta.embeddings.LayerNorm.bias");
    const float *rel_raw = NULL, *rel_w = NULL, *rel_b = NULL;
    if (c->relative_attention) {
        T2(rel_raw, 2 * S, H, "deberta.encoder.rel_embeddings.weight");
        if (c->norm_rel_ebd) {
            T2(rel_w, H, 0, "deberta.encoder.LayerNorm.weight");
            T2(rel_b, H, 0, "deberta.encoder.LayerNorm.bias");
        }
    }
    m->layers = herd_xcalloc((size_t)c->n_layer, sizeof *m->layers);
    for (int64_t l = 0; l < c->n_layer; l++) {
        deberta_layer *L = &m->layers[l];
        const char *pre = "deberta.encoder.layer";
        long long li = (long long)l;
        T2(L->wq, H, H, "%s.%lld.attention.self.query_proj.weight", pre, li);
        T2(L->bq, H, 0, "%s.%lld.attention.self.query_proj.bias", pre, li);
        T2(L->wk, H, H, "%s.%lld.attention.self.key_proj.weight", pre, li);
        T2(L->bk, H, 0, "%s.%lld.attention.self.key_proj.bias", pre, li);
        T2(L->wv, H, H, "%s.%lld.attention.self.value_proj.weight", pre, li);
        T2(L->bv, H, 0, "%s.%lld.attention.self.value_proj.bias", pre, li);
        if (c->relative_attention && !c->share_att_key) {
            if (c->c2p) {
                T2(L->wpk, H, H, "%s.%lld.attention.self.pos_key_proj.weight", pre, li);
                T2(L->bpk, H, 0, "%s.%lld.attention.self.pos_key_proj.bias", pre, li);
            }
            if (c->p2c) {
                T2(L->wpq, H, H, "%s.%lld.attention.self.pos_query_proj.weight", pre, li);
                T2(L->bpq, H, 0, "%s.%lld.attention.self.pos_query_proj.bias", pre, li);
            }
        }
        T2(L->wo, H, H, "%s.%lld.attention.output.dense.weight", pre, li);
        T2(L->bo, H, 0, "%s.%lld.attention.output.dense.bias", pre, li);
        T2(L->ln1_w, H, 0, "%s.%lld.attention.output.LayerNorm.weight", pre, li);
        T2(L->ln1_b, H, 0, "%s.%lld.attention.output.LayerNorm.bias", pre, li);
        T2(L->wi, F, H, "%s.%lld.intermediate.dense.weight", pre, li);
        T2(L->bi, F, 0, "%s.%lld.intermediate.dense.bias", pre, li);
        T2(L->wo2, H, F, "%s.%lld.output.dense.weight", pre, li);
        T2(L->bo2, H, 0, "%s.%lld.output.dense.bias", pre, li);
        T2(L->ln2_w, H, 0, "%s.%lld.output.LayerNorm.weight", pre, li);
        T2(L->ln2_b, H, 0, "%s.%lld.output.LayerNorm.bias", pre, li);
    }
    T2(m->pool_w, H, H, "pooler.dense.weight");
    T2(m->pool_b, H, 0, "pooler.dense.bias");
    T2(m->cls_w, c->n_labels, H, "classifier.weight");
    T2(m->cls_b, c->n_labels, 0, "classifier.bias");
#undef T2
    /* relative positions: buckets of every delta a window can hold */
    m->rel_idx = herd_xmalloc((size_t)(2 * c->n_pos - 1) * sizeof *m->rel_idx);
    for (int64_t dlt = -(c->n_pos - 1); dlt <= c->n_pos - 1; dlt++) {
        int64_t r = deberta_bucket(dlt, c->position_buckets, c->max_relative_positions) + S;
        m->rel_idx[dlt + c->n_pos - 1] = (int32_t)(r < 0 ? 0 : r > 2 * S - 1 ? 2 * S - 1 : r);
    }
    if (c->relative_attention) {
        m->rel = malloc((size_t)(2 * S * H) * sizeof *m->rel);
        if (!m->rel) {
            rc = herd_err(HERD_E_NOMEM, "deberta: out of memory");
            goto fail;
        }
        if (rel_w) layer_norm_rows(rel_raw, 2 * S, H, rel_w, rel_b, c->norm_eps, m->rel);
        else memcpy(m->rel, rel_raw, (size_t)(2 * S * H) * sizeof *m->rel);
        thread_pool *own = pool ? NULL : pool_new(1);
        train_gemm *g = train_gemm_new(pool ? pool : own);
        if (!g) {
            pool_free(own);
            rc = herd_err(HERD_E_NOMEM, "deberta: out of memory");
            goto fail;
        }
        for (int64_t l = 0; l < c->n_layer; l++) {
            deberta_layer *L = &m->layers[l];
            const float *wk = c->share_att_key ? L->wk : L->wpk, *bk = c->share_att_key ? L->bk : L->bpk;
            const float *wq = c->share_att_key ? L->wq : L->wpq, *bq = c->share_att_key ? L->bq : L->bpq;
            if (c->c2p) {
                L->pos_k = herd_xmalloc((size_t)(2 * S * H) * sizeof(float));
                project(g, wk, bk, H, H, m->rel, 2 * S, L->pos_k);
            }
            if (c->p2c) {
                L->pos_q = herd_xmalloc((size_t)(2 * S * H) * sizeof(float));
                project(g, wq, bq, H, H, m->rel, 2 * S, L->pos_q);
            }
        }
        train_gemm_free(g);
        pool_free(own);
    }
    *out = m;
    return 0;
fail:
    deberta_free(m);
    return rc;
}
