/* Public API: inference contexts (KV cache + scratch + threads) and decoding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/log.h"
#include "../base/meminfo.h"
#include "../kv/kv.h"
#include "../model/forward.h"
#include "../model/lora.h"
#include "../model/model.h"
#include "../thread/cpus.h"
#include "../thread/pool.h"
#include "api_context.h"
#include "api_tp.h"
#include "herd.h"

const api_tp_hooks *api_tp = NULL;

struct herd_context {
    herd_model *m;
    forward_state *fs;
    int64_t n_ctx;
    int kv_type;
};

int herd_default_threads(char *why, size_t cap) {
    cpu_share s;
    cpus_share_read(NULL, NULL, &s);
    if (why && cap)
        snprintf(why, cap, "%s; %s", s.why,
                 pool_dynamic_enabled() ? "in use: the CPUs other work leaves free (HERD_DYNAMIC_THREADS=0: all)"
                                        : "all in use (HERD_DYNAMIC_THREADS=0)");
    return s.n_threads;
}

herd_context_params herd_context_default_params(void) {
    return (herd_context_params){.n_ctx = 0, .n_batch = 0, .n_threads = 0, .kv_type = HERD_KV_AUTO};
}

/* The parameters with the defaults filled in and checked (HERD_E_ARG with a message). */
typedef struct {
    int64_t n_seq, n_ctx, n_batch;
    int n_threads, kv;
} resolved_params;

static int resolve_params(const herd_model *m, const herd_context_params *pp, resolved_params *r) {
    herd_context_params p = pp ? *pp : herd_context_default_params();
    if (m->vocab_only)
        return herd_err(HERD_E_ARG, "context: '%s' holds only a vocabulary, no weights to run", m->file.path);
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0 || p.n_seq < 0)
        return herd_err(HERD_E_ARG, "context: negative n_ctx, n_seq, n_batch or n_threads");
    int64_t n_seq = p.n_seq ? p.n_seq : 1;
    if (n_seq > 4096) return herd_err(HERD_E_ARG, "context: %lld sequences is too many", (long long)n_seq);
    int64_t n_ctx = p.n_ctx ? p.n_ctx : (m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    if (n_ctx > m->hp.n_ctx_train)
        return herd_err(HERD_E_ARG, "context: requested context %lld exceeds the model's %lld positions",
                        (long long)n_ctx, (long long)m->hp.n_ctx_train);
    int64_t n_batch = p.n_batch ? p.n_batch : 512;
    if (n_batch > n_ctx * (p.n_seq ? p.n_seq : 1)) n_batch = n_ctx * (p.n_seq ? p.n_seq : 1);
    int n_threads = p.n_threads;
    if (n_threads == 0) n_threads = cpus_default_threads();
    if (n_threads > 512) return herd_err(HERD_E_ARG, "context: %d threads is too many", n_threads);
    int kv = p.kv_type;
    const int kv_auto = m->weight_type == HERD_TYPE_F32 ? HERD_TYPE_F32 : HERD_TYPE_F16;
    if (kv == HERD_KV_AUTO) kv = kv_auto;
    if (kv >= 0x10000) { /* a pair; a half of 0xff (HERD_KV_AUTO's low byte) is the default */
        const int tk = HERD_KV_TYPE_K(kv), tv = HERD_KV_TYPE_V(kv);
        kv = HERD_KV_PAIR(tk == 0xff ? kv_auto : tk, tv == 0xff ? kv_auto : tv);
        if (HERD_KV_TYPE_K(kv) == HERD_KV_TYPE_V(kv)) kv = HERD_KV_TYPE_K(kv);
    }
    for (int i = 0; i < 2; i++) {
        const int t = i ? HERD_KV_TYPE_V(kv) : HERD_KV_TYPE_K(kv);
        if (!kv_type_supported(t))
            return herd_err(HERD_E_ARG, "context: the KV cache type of %s must be f32, f16, bf16, q8_0 or q4_0, not %s",
                            i ? "V" : "K", herd_type_name(t));
        if ((t == HERD_TYPE_Q8_0 || t == HERD_TYPE_Q4_0) && m->hp.head_dim % 32)
            return herd_err(HERD_E_ARG, "context: a %s KV cache needs head_dim a multiple of 32; this model's is %lld",
                            herd_type_name(t), (long long)m->hp.head_dim);
    }
    *r = (resolved_params){n_seq, n_ctx, n_batch, n_threads, kv};
    return HERD_OK;
}

int herd_context_memory_estimate(const herd_model *m, const herd_context_params *p, herd_context_memory *out) {
    memset(out, 0, sizeof *out);
    resolved_params r;
    int rc = resolve_params(m, p, &r);
    if (rc) return rc;
    const model_hparams *hp = &m->hp;
    out->n_ctx = r.n_ctx;
    out->n_seq = r.n_seq;
    out->n_batch = r.n_batch;
    out->n_threads = r.n_threads;
    out->kv_type_k = HERD_KV_TYPE_K(r.kv);
    out->kv_type_v = HERD_KV_TYPE_V(r.kv);
    out->weights = m->file.size;
    out->packed = (uint64_t)m->packed_bytes;
    out->kv = kv_cache_bytes_for(out->kv_type_k, out->kv_type_v, r.n_seq, hp->n_layer, r.n_ctx, hp->n_head_kv * hp->head_dim);
    out->scratch = forward_scratch_bytes(m, r.n_seq, r.n_batch, r.n_threads);
    out->available = base_mem_available();
    return HERD_OK;
}

int herd_context_new(herd_model *m, const herd_context_params *pp, herd_context **out) {
    *out = NULL;
    resolved_params r;
    int rc = resolve_params(m, pp, &r);
    if (rc) return rc;
    const int64_t n_seq = r.n_seq, n_ctx = r.n_ctx, n_batch = r.n_batch;
    const int n_threads = r.n_threads, kv = r.kv;
    /* refuse up front what will not fit: the cache and scratch are allocated now, but their pages are
     * faulted in only as the context fills, so a context larger than the free memory would fail late,
     * in the kernel's OOM killer, not here (HERD_MEMCHECK=0 turns the check off) */
    const char *mc = getenv("HERD_MEMCHECK");
    if (!mc || strcmp(mc, "0")) {
        herd_context_memory mem;
        rc = herd_context_memory_estimate(m, pp, &mem);
        if (rc) return rc;
        const uint64_t need = mem.kv + mem.scratch;
        if (mem.available && need > mem.available)
            return herd_err(HERD_E_NOMEM,
                            "context: %lld positions x %lld sequences need %.2f GiB (KV cache %.2f GiB as K %s / V %s, "
                            "scratch %.1f MiB) but %.2f GiB is available (MemAvailable; the weights, %.2f GiB, come "
                            "on top): use a smaller -c or --kv-type q8_0/q4_0",
                            (long long)n_ctx, (long long)n_seq, (double)need / (1ull << 30),
                            (double)mem.kv / (1ull << 30), herd_type_name(mem.kv_type_k), herd_type_name(mem.kv_type_v),
                            (double)mem.scratch / (1 << 20), (double)mem.available / (1ull << 30),
                            (double)(mem.weights + mem.packed) / (1ull << 30));
    }
    herd_context *c = herd_xcalloc(1, sizeof *c);
    c->m = m;
    c->n_ctx = n_ctx;
    c->kv_type = kv;
    rc = forward_state_new(m, n_seq, n_ctx, n_batch, kv, n_threads, &c->fs);
    if (!rc && api_tp && (rc = api_tp->context_new(m, c->fs, n_seq, n_ctx, n_batch, kv, n_threads)))
        forward_state_free(c->fs);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return HERD_OK;
}

void herd_context_free(herd_context *c) {
    if (!c) return;
    if (api_tp) api_tp->context_free(c->fs);
    forward_state_free(c->fs);
    free(c);
}

int64_t herd_context_n_ctx(const herd_context *c) { return c->n_ctx; }
forward_state *api_context_forward(herd_context *c) { return c->fs; }
const herd_model *herd_context_model(const herd_context *c) { return c->m; }
int herd_context_kv_type(const herd_context *c) { return c->kv_type; }
int64_t herd_context_n_past(const herd_context *c) { return forward_kv(c->fs)->n_past[0]; }
int32_t herd_context_n_seq(const herd_context *c) { return (int32_t)forward_kv(c->fs)->n_seq; }

double herd_context_read_weights(herd_context *c, uint64_t *bytes) {
    uint64_t b;
    double s = forward_read_weights(c->fs, &b);
    if (bytes) *bytes = b;
    return s;
}

void herd_context_truncate(herd_context *c, int64_t pos) {
    herd_seq_truncate(c, 0, pos);
}

int64_t herd_seq_n_past(const herd_context *c, int32_t seq) {
    const kv_cache *kv = forward_kv(c->fs);
    return seq >= 0 && seq < kv->n_seq ? kv->n_past[seq] : -1;
}

void herd_seq_truncate(herd_context *c, int32_t seq, int64_t pos) {
    kv_cache *kv = forward_kv(c->fs);
    if (seq >= 0 && seq < kv->n_seq && pos >= 0 && pos < kv->n_past[seq]) kv->n_past[seq] = pos;
}

int herd_seq_copy(herd_context *c, int32_t src, int32_t dst, int64_t n) {
    kv_cache *kv = forward_kv(c->fs);
    if (src < 0 || src >= kv->n_seq || dst < 0 || dst >= kv->n_seq)
        return herd_err(HERD_E_ARG, "seq copy: sequence %d or %d is not in [0, %lld)", src, dst, (long long)kv->n_seq);
    if (n < 0 || n > kv->n_past[src])
        return herd_err(HERD_E_ARG, "seq copy: sequence %d holds %lld positions, not %lld", src,
                        (long long)kv->n_past[src], (long long)n);
    kv_seq_copy(kv, src, dst, n);
    if (api_tp) api_tp->seq_copy(src, dst, n);
    return HERD_OK;
}

int herd_seq_set_lora(herd_context *c, int32_t seq, herd_lora *const *adapters, const float *scales, int n) {
    if (n < 0 || n > 1024) return herd_err(HERD_E_ARG, "lora: %d adapters is not in [0, 1024]", n);
    if (n > 0 && (!adapters || !scales)) return herd_err(HERD_E_ARG, "lora: no adapters or scales given");
    const lora_adapter *ad[1024];
    for (int i = 0; i < n; i++) {
        if (!adapters[i] || adapters[i]->base != c->m)
            return herd_err(HERD_E_ARG, "lora: adapter %d was loaded for another model than the context's", i);
        ad[i] = adapters[i]->ad;
    }
    return forward_set_lora(c->fs, seq, ad, scales, n);
}

int herd_context_set_lora(herd_context *c, herd_lora *const *adapters, const float *scales, int n) {
    return herd_seq_set_lora(c, -1, adapters, scales, n);
}

static int check_tokens(const herd_context *c, const int32_t *tokens, int64_t n) {
    int64_t n_vocab = c->m->hp.n_vocab;
    if (n <= 0) return herd_err(HERD_E_ARG, "decode: no tokens");
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return herd_err(HERD_E_ARG, "decode: token id %d at index %lld is outside the vocabulary [0, %lld)",
                            tokens[i], (long long)i, (long long)n_vocab);
    return HERD_OK;
}

int herd_decode(herd_context *c, const int32_t *tokens, int64_t n, int mode, float *logits) {
    kv_cache *kv = forward_kv(c->fs);
    int64_t n_vocab = c->m->hp.n_vocab;
    int rc = check_tokens(c, tokens, n);
    if (rc) return rc;
    if (kv->n_past[0] + n > c->n_ctx)
        return herd_err(HERD_E_RANGE, "decode: %lld cached + %lld new tokens exceed the context of %lld",
                        (long long)kv->n_past[0], (long long)n, (long long)c->n_ctx);
    if (mode != HERD_LOGITS_NONE && !logits) return herd_err(HERD_E_ARG, "decode: logits buffer is NULL");
    int64_t nb = forward_n_batch(c->fs);
    bool *want = herd_xcalloc((size_t)nb, sizeof *want);
    for (int64_t i = 0; i < n; i += nb) {
        int64_t k = n - i < nb ? n - i : nb;
        for (int64_t t = 0; t < k; t++) want[t] = mode == HERD_LOGITS_ALL || (mode == HERD_LOGITS_LAST && i + t == n - 1);
        forward_batch(c->fs, tokens + i, NULL, k, want, mode == HERD_LOGITS_ALL ? logits + i * n_vocab : logits);
    }
    free(want);
    return HERD_OK;
}

int herd_decode_batch(herd_context *c, const int32_t *tokens, const int32_t *seq_ids, int64_t n,
                      const bool *want_logits, float *logits) {
    kv_cache *kv = forward_kv(c->fs);
    int rc = check_tokens(c, tokens, n);
    if (rc) return rc;
    int64_t *count = herd_xcalloc((size_t)kv->n_seq, sizeof *count);
    int64_t n_out = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        int32_t s = seq_ids[i];
        if (s < 0 || s >= kv->n_seq)
            rc = herd_err(HERD_E_ARG, "decode: token %lld names sequence %d, not in [0, %lld)", (long long)i, s,
                          (long long)kv->n_seq);
        else if (kv->n_past[s] + ++count[s] > c->n_ctx)
            rc = herd_err(HERD_E_RANGE, "decode: sequence %d: %lld cached + %lld new tokens exceed the context of %lld",
                          s, (long long)kv->n_past[s], (long long)count[s], (long long)c->n_ctx);
        if (want_logits && want_logits[i]) n_out++;
    }
    free(count);
    if (rc) return rc;
    if (n_out > 0 && !logits) return herd_err(HERD_E_ARG, "decode: logits buffer is NULL");
    int64_t nb = forward_n_batch(c->fs), done = 0;
    for (int64_t i = 0; i < n; i += nb) {
        int64_t k = n - i < nb ? n - i : nb;
        forward_batch(c->fs, tokens + i, seq_ids + i, k, want_logits ? want_logits + i : NULL,
                      logits ? logits + done * c->m->hp.n_vocab : NULL);
        if (want_logits)
            for (int64_t t = 0; t < k; t++) done += want_logits[i + t];
    }
    return HERD_OK;
}

int64_t herd_model_n_embd(const herd_model *m) {
    return m->hp.n_embd;
}

/* Pooling as llama.cpp's build_pooling does it over result_norm (the input of the output matrix):
 * MEAN averages the n rows, CLS takes the first, LAST the last, NONE keeps all n rows. Normalising is
 * common_embd_normalize(.., 2): each output row divided by its Euclidean norm, summed in double. */
int herd_embed_pooled(herd_context *c, int32_t seq, const int32_t *tokens, int64_t n, int pooling, bool normalize,
                      float *out) {
    kv_cache *kv = forward_kv(c->fs);
    int rc = check_tokens(c, tokens, n);
    if (rc) return rc;
    if (seq < 0 || seq >= kv->n_seq)
        return herd_err(HERD_E_ARG, "embed: sequence %d is not in [0, %lld)", seq, (long long)kv->n_seq);
    if (pooling < HERD_POOLING_MEAN || pooling > HERD_POOLING_NONE)
        return herd_err(HERD_E_ARG, "embed: unknown pooling %d", pooling);
    if (n > c->n_ctx)
        return herd_err(HERD_E_RANGE, "embed: %lld tokens exceed the context of %lld", (long long)n,
                        (long long)c->n_ctx);
    int64_t E = c->m->hp.n_embd, nb = forward_n_batch(c->fs);
    float *h = malloc((size_t)(nb * E) * sizeof(float));
    bool *want = malloc((size_t)nb * sizeof(bool));
    int32_t *seqs = malloc((size_t)nb * sizeof(int32_t));
    if (!h || !want || !seqs) {
        free(h), free(want), free(seqs);
        return herd_err(HERD_E_NOMEM, "embed: out of memory");
    }
    double *acc = herd_xcalloc((size_t)E, sizeof(double));
    for (int64_t i = 0; i < nb; i++) want[i] = true, seqs[i] = seq;
    kv->n_past[seq] = 0;
    for (int64_t i = 0; i < n; i += nb) {
        int64_t k = n - i < nb ? n - i : nb;
        forward_batch_hidden(c->fs, tokens + i, seqs, k, want, h);
        for (int64_t t = 0; t < k; t++) {
            const float *row = h + t * E;
            if (pooling == HERD_POOLING_MEAN)
                for (int64_t e = 0; e < E; e++) acc[e] += row[e];
            else if (pooling == HERD_POOLING_NONE)
                memcpy(out + (i + t) * E, row, (size_t)E * sizeof(float));
            else if ((pooling == HERD_POOLING_CLS && i + t == 0) || (pooling == HERD_POOLING_LAST && i + t == n - 1))
                for (int64_t e = 0; e < E; e++) acc[e] = row[e];
        }
    }
    int64_t rows = pooling == HERD_POOLING_NONE ? n : 1;
    if (pooling != HERD_POOLING_NONE) {
        /* llama.cpp's mean is a matmul by a column of 1/n (float): sum x_t * (1/n) */
        float inv = pooling == HERD_POOLING_MEAN ? 1.0f / (float)n : 1.0f;
        for (int64_t e = 0; e < E; e++) out[e] = (float)(acc[e] * (double)inv);
    }
    if (normalize)
        for (int64_t r = 0; r < rows; r++) {
            float *v = out + r * E;
            double sum = 0;
            for (int64_t e = 0; e < E; e++) sum += (double)v[e] * (double)v[e];
            sum = sqrt(sum);
            float s = sum > 0 ? (float)(1.0 / sum) : 0.0f;
            for (int64_t e = 0; e < E; e++) v[e] *= s;
        }
    free(acc), free(h), free(want), free(seqs);
    return HERD_OK;
}

/* ---- a sequence's KV as bytes -------------------------------------------------------------------- */

uint64_t herd_seq_kv_bytes_per_pos(const herd_context *c) {
    if (api_tp) return api_tp->kv_bytes_per_pos(c->fs); /* every rank's rows, side by side (api_tp.h) */
    return kv_seq_bytes_per_pos(forward_kv(c->fs));
}

int herd_seq_kv_read(const herd_context *c, int32_t seq, int64_t pos, int64_t n, void *buf) {
    const kv_cache *kv = forward_kv(c->fs);
    if (seq < 0 || seq >= kv->n_seq || pos < 0 || n < 0 || pos + n > kv->n_past[seq])
        return herd_err(HERD_E_ARG, "kv read: positions [%lld, %lld) of sequence %d are not cached", (long long)pos,
                        (long long)(pos + n), seq);
    if (api_tp) return api_tp->kv_read(c->fs, seq, pos, n, buf);
    kv_seq_read(kv, seq, pos, n, buf);
    return HERD_OK;
}

int herd_seq_kv_write(herd_context *c, int32_t seq, int64_t pos, int64_t n, const void *buf) {
    kv_cache *kv = forward_kv(c->fs);
    if (seq < 0 || seq >= kv->n_seq || pos < 0 || n < 0 || pos > kv->n_past[seq] || pos + n > kv->n_ctx)
        return herd_err(HERD_E_ARG, "kv write: positions [%lld, %lld) do not fit sequence %d (%lld cached of %lld)",
                        (long long)pos, (long long)(pos + n), seq, seq >= 0 && seq < kv->n_seq ? (long long)kv->n_past[seq] : 0LL,
                        (long long)kv->n_ctx);
    if (api_tp) return api_tp->kv_write(c->fs, seq, pos, n, buf);
    kv_seq_write(kv, seq, pos, n, buf);
    return HERD_OK;
}

int herd_embed(herd_context *c, int32_t seq, const int32_t *tokens, int64_t n, float *out) {
    return herd_embed_pooled(c, seq, tokens, n, HERD_POOLING_MEAN, true, out);
}

int herd_pooling_parse(const char *name) {
    static const char *names[] = {"mean", "cls", "last", "none"};
    for (int i = 0; i < 4; i++)
        if (name && !strcmp(name, names[i])) return i;
    return -1;
}
