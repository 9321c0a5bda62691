#include "kv.h"

#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "herd.h"

int kv_cache_init(kv_cache *kv, int type, int64_t n_layer, int64_t n_ctx, int64_t kv_dim) {
    memset(kv, 0, sizeof *kv);
    HERD_ASSERT(type == HERD_TYPE_F32 || type == HERD_TYPE_F16);
    kv->type = type;
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->kv_dim = kv_dim;
    kv->row_bytes = kv_dim * (type == HERD_TYPE_F32 ? 4 : 2);
    uint64_t bytes = (uint64_t)n_layer * (uint64_t)n_ctx * (uint64_t)kv->row_bytes;
    /* untouched pages of a large cache are never faulted in, so malloc (not calloc) keeps a long
     * context cheap until it is used */
    kv->k = malloc(bytes ? bytes : 1);
    kv->v = malloc(bytes ? bytes : 1);
    if (!kv->k || !kv->v) {
        kv_cache_free(kv);
        return herd_err(HERD_E_NOMEM, "kv cache: cannot allocate 2 x %.1f MiB for %lld positions (try a smaller -c)",
                        (double)bytes / (1 << 20), (long long)n_ctx);
    }
    return HERD_OK;
}

void kv_cache_free(kv_cache *kv) {
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

uint64_t kv_cache_bytes(const kv_cache *kv) {
    return 2ull * (uint64_t)kv->n_layer * (uint64_t)kv->n_ctx * (uint64_t)kv->row_bytes;
}

void *kv_k_row(const kv_cache *kv, int64_t layer, int64_t pos) {
    return kv->k + ((uint64_t)layer * (uint64_t)kv->n_ctx + (uint64_t)pos) * (uint64_t)kv->row_bytes;
}

void *kv_v_row(const kv_cache *kv, int64_t layer, int64_t pos) {
    return kv->v + ((uint64_t)layer * (uint64_t)kv->n_ctx + (uint64_t)pos) * (uint64_t)kv->row_bytes;
}
