#include "kv.h"

#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "herd.h"

int kv_cache_init(kv_cache *kv, int type, int64_t n_seq, int64_t n_layer, int64_t n_ctx, int64_t kv_dim) {
    memset(kv, 0, sizeof *kv);
    HERD_ASSERT(type == HERD_TYPE_F32 || type == HERD_TYPE_F16);
    kv->type = type;
    kv->n_seq = n_seq;
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->kv_dim = kv_dim;
    kv->row_bytes = kv_dim * (type == HERD_TYPE_F32 ? 4 : 2);
    uint64_t bytes = (uint64_t)n_seq * (uint64_t)n_layer * (uint64_t)n_ctx * (uint64_t)kv->row_bytes;
    /* untouched pages of a large cache are never faulted in, so malloc (not calloc) keeps a long
     * context cheap until it is used */
    kv->k = malloc(bytes ? bytes : 1);
    kv->v = malloc(bytes ? bytes : 1);
    kv->n_past = calloc((size_t)n_seq, sizeof *kv->n_past);
    if (!kv->k || !kv->v || !kv->n_past) {
        kv_cache_free(kv);
        return herd_err(HERD_E_NOMEM,
                        "kv cache: cannot allocate 2 x %.1f MiB for %lld sequences x %lld positions (try a smaller -c)",
                        (double)bytes / (1 << 20), (long long)n_seq, (long long)n_ctx);
    }
    return HERD_OK;
}

void kv_cache_free(kv_cache *kv) {
    free(kv->k);
    free(kv->v);
    free(kv->n_past);
    kv->k = kv->v = NULL;
    kv->n_past = NULL;
}

uint64_t kv_cache_bytes(const kv_cache *kv) {
    return 2ull * (uint64_t)kv->n_seq * (uint64_t)kv->n_layer * (uint64_t)kv->n_ctx * (uint64_t)kv->row_bytes;
}

static uint64_t row_index(const kv_cache *kv, int64_t seq, int64_t layer, int64_t pos) {
    return ((uint64_t)seq * (uint64_t)kv->n_layer + (uint64_t)layer) * (uint64_t)kv->n_ctx + (uint64_t)pos;
}

void *kv_k_row(const kv_cache *kv, int64_t seq, int64_t layer, int64_t pos) {
    return kv->k + row_index(kv, seq, layer, pos) * (uint64_t)kv->row_bytes;
}

void *kv_v_row(const kv_cache *kv, int64_t seq, int64_t layer, int64_t pos) {
    return kv->v + row_index(kv, seq, layer, pos) * (uint64_t)kv->row_bytes;
}

void kv_seq_copy(kv_cache *kv, int64_t src, int64_t dst, int64_t n) {
    HERD_ASSERT(src >= 0 && src < kv->n_seq && dst >= 0 && dst < kv->n_seq && n >= 0 && n <= kv->n_past[src]);
    if (src != dst)
        for (int64_t l = 0; l < kv->n_layer; l++) {
            memcpy(kv_k_row(kv, dst, l, 0), kv_k_row(kv, src, l, 0), (size_t)(n * kv->row_bytes));
            memcpy(kv_v_row(kv, dst, l, 0), kv_v_row(kv, src, l, 0), (size_t)(n * kv->row_bytes));
        }
    kv->n_past[dst] = n;
}
