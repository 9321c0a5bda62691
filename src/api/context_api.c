/* Public API: inference contexts (KV cache + scratch + threads) and decoding. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/log.h"
#include "../model/forward.h"
#include "../model/model.h"
#include "herd.h"

struct herd_context {
    herd_model *m;
    forward_state *fs;
    int64_t n_ctx;
    int kv_type;
};

herd_context_params herd_context_default_params(void) {
    return (herd_context_params){.n_ctx = 0, .n_batch = 0, .n_threads = 0, .kv_type = HERD_KV_AUTO};
}

int herd_context_new(herd_model *m, const herd_context_params *pp, herd_context **out) {
    *out = NULL;
    herd_context_params p = pp ? *pp : herd_context_default_params();
    if (m->vocab_only)
        return herd_err(HERD_E_ARG, "context: '%s' holds only a vocabulary, no weights to run", m->file.path);
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0)
        return herd_err(HERD_E_ARG, "context: negative n_ctx, n_batch or n_threads");
    int64_t n_ctx = p.n_ctx ? p.n_ctx : (m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    if (n_ctx > m->hp.n_ctx_train)
        return herd_err(HERD_E_ARG, "context: requested context %lld exceeds the model's %lld positions",
                        (long long)n_ctx, (long long)m->hp.n_ctx_train);
    int64_t n_batch = p.n_batch ? p.n_batch : 512;
    if (n_batch > n_ctx) n_batch = n_ctx;
    int n_threads = p.n_threads;
    if (n_threads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > 512) return herd_err(HERD_E_ARG, "context: %d threads is too many", n_threads);
    int kv = p.kv_type;
    if (kv == HERD_KV_AUTO) kv = m->weight_type == HERD_TYPE_F32 ? HERD_TYPE_F32 : HERD_TYPE_F16;
    if (kv != HERD_TYPE_F32 && kv != HERD_TYPE_F16)
        return herd_err(HERD_E_ARG, "context: KV cache type must be f32 or f16, not %s", herd_type_name(kv));
    herd_context *c = herd_xcalloc(1, sizeof *c);
    c->m = m;
    c->n_ctx = n_ctx;
    c->kv_type = kv;
    int rc = forward_state_new(m, n_ctx, n_batch, kv, n_threads, &c->fs);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return HERD_OK;
}

void herd_context_free(herd_context *c) {
    if (!c) return;
    forward_state_free(c->fs);
    free(c);
}

int64_t herd_context_n_ctx(const herd_context *c) { return c->n_ctx; }
const herd_model *herd_context_model(const herd_context *c) { return c->m; }
int herd_context_kv_type(const herd_context *c) { return c->kv_type; }
int64_t herd_context_n_past(const herd_context *c) { return forward_kv(c->fs)->n_past; }

void herd_context_truncate(herd_context *c, int64_t pos) {
    kv_cache *kv = forward_kv(c->fs);
    if (pos >= 0 && pos < kv->n_past) kv->n_past = pos;
}

int herd_decode(herd_context *c, const int32_t *tokens, int64_t n, int mode, float *logits) {
    kv_cache *kv = forward_kv(c->fs);
    int64_t n_vocab = c->m->hp.n_vocab;
    if (n <= 0) return herd_err(HERD_E_ARG, "decode: no tokens");
    if (kv->n_past + n > c->n_ctx)
        return herd_err(HERD_E_RANGE, "decode: %lld cached + %lld new tokens exceed the context of %lld",
                        (long long)kv->n_past, (long long)n, (long long)c->n_ctx);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return herd_err(HERD_E_ARG, "decode: token id %d at index %lld is outside the vocabulary [0, %lld)",
                            tokens[i], (long long)i, (long long)n_vocab);
    if (mode != HERD_LOGITS_NONE && !logits) return herd_err(HERD_E_ARG, "decode: logits buffer is NULL");
    int64_t nb = forward_n_batch(c->fs);
    for (int64_t i = 0; i < n; i += nb) {
        int64_t k = n - i < nb ? n - i : nb;
        bool last = i + k == n;
        int m = mode == HERD_LOGITS_ALL ? HERD_LOGITS_ALL : (last ? mode : HERD_LOGITS_NONE);
        forward_batch(c->fs, tokens + i, k, m, mode == HERD_LOGITS_ALL ? logits + i * n_vocab : logits);
    }
    return HERD_OK;
}
