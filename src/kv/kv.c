#include "kv.h"

#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../kernels/kernels.h"
#include "herd.h"

bool kv_type_supported(int type) {
    return type == HERD_TYPE_F32 || type == HERD_TYPE_F16 || type == HERD_TYPE_BF16 || type == HERD_TYPE_Q8_0 ||
           type == HERD_TYPE_Q4_0;
}

/* elements per block of a cache type (1 for the float types) */
static int64_t type_block(int type) {
    return type == HERD_TYPE_Q8_0 || type == HERD_TYPE_Q4_0 ? 32 : 1;
}

uint64_t kv_cache_bytes_for(int type_k, int type_v, int64_t n_seq, int64_t n_layer, int64_t n_ctx, int64_t kv_dim) {
    HERD_ASSERT(kv_type_supported(type_k) && kv_type_supported(type_v));
    const uint64_t rows = (uint64_t)n_seq * (uint64_t)n_layer * (uint64_t)n_ctx;
    return rows * (uint64_t)(kernels_row_bytes(type_k, kv_dim / type_block(type_k) * type_block(type_k)) +
                             kernels_row_bytes(type_v, kv_dim / type_block(type_v) * type_block(type_v)));
}

int kv_cache_init(kv_cache *kv, int type_k, int type_v, int64_t n_seq, int64_t n_layer, int64_t n_ctx,
                  int64_t kv_dim) {
    memset(kv, 0, sizeof *kv);
    for (int i = 0; i < 2; i++) {
        const int t = i ? type_v : type_k;
        if (!kv_type_supported(t))
            return herd_err(HERD_E_ARG, "kv cache: %s cannot be a cache type (f32, f16, bf16, q8_0 or q4_0)",
                            herd_type_name(t));
        if (kv_dim % type_block(t))
            return herd_err(HERD_E_ARG, "kv cache: rows of %lld elements are not whole %s blocks of 32",
                            (long long)kv_dim, herd_type_name(t));
    }
    kv->type_k = type_k;
    kv->type_v = type_v;
    kv->n_seq = n_seq;
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->kv_dim = kv_dim;
    kv->row_bytes_k = kernels_row_bytes(type_k, kv_dim);
    kv->row_bytes_v = kernels_row_bytes(type_v, kv_dim);
    const uint64_t rows = (uint64_t)n_seq * (uint64_t)n_layer * (uint64_t)n_ctx;
    const uint64_t bk = rows * (uint64_t)kv->row_bytes_k, bv = rows * (uint64_t)kv->row_bytes_v;
    /* untouched pages of a large cache are never faulted in, so malloc (not calloc) keeps a long
     * context cheap until it is used */
    kv->k = malloc(bk ? bk : 1);
    kv->v = malloc(bv ? bv : 1);
    kv->n_past = calloc((size_t)n_seq, sizeof *kv->n_past);
    if (!kv->k || !kv->v || !kv->n_past) {
        kv_cache_free(kv);
        return herd_err(HERD_E_NOMEM,
                        "kv cache: cannot allocate %.1f + %.1f MiB for %lld sequences x %lld positions (try a smaller -c "
                        "or a smaller --kv-type)",
                        (double)bk / (1 << 20), (double)bv / (1 << 20), (long long)n_seq, (long long)n_ctx);
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
    return (uint64_t)kv->n_seq * (uint64_t)kv->n_layer * (uint64_t)kv->n_ctx *
           (uint64_t)(kv->row_bytes_k + kv->row_bytes_v);
}

static uint64_t row_index(const kv_cache *kv, int64_t seq, int64_t layer, int64_t pos) {
    return ((uint64_t)seq * (uint64_t)kv->n_layer + (uint64_t)layer) * (uint64_t)kv->n_ctx + (uint64_t)pos;
}

void *kv_k_row(const kv_cache *kv, int64_t seq, int64_t layer, int64_t pos) {
    return kv->k + row_index(kv, seq, layer, pos) * (uint64_t)kv->row_bytes_k;
}

void *kv_v_row(const kv_cache *kv, int64_t seq, int64_t layer, int64_t pos) {
    return kv->v + row_index(kv, seq, layer, pos) * (uint64_t)kv->row_bytes_v;
}

int64_t kv_offset_k(const kv_cache *kv, int64_t e) {
    return kernels_row_bytes(kv->type_k, e);
}

int64_t kv_offset_v(const kv_cache *kv, int64_t e) {
    return kernels_row_bytes(kv->type_v, e);
}

void kv_seq_copy(kv_cache *kv, int64_t src, int64_t dst, int64_t n) {
    HERD_ASSERT(src >= 0 && src < kv->n_seq && dst >= 0 && dst < kv->n_seq && n >= 0 && n <= kv->n_past[src]);
    if (src != dst)
        for (int64_t l = 0; l < kv->n_layer; l++) {
            memcpy(kv_k_row(kv, dst, l, 0), kv_k_row(kv, src, l, 0), (size_t)(n * kv->row_bytes_k));
            memcpy(kv_v_row(kv, dst, l, 0), kv_v_row(kv, src, l, 0), (size_t)(n * kv->row_bytes_v));
        }
    kv->n_past[dst] = n;
}

uint64_t kv_seq_bytes_per_pos(const kv_cache *kv) {
    return (uint64_t)kv->n_layer * (uint64_t)(kv->row_bytes_k + kv->row_bytes_v);
}

void kv_seq_read(const kv_cache *kv, int64_t seq, int64_t pos, int64_t n, void *buf) {
    uint8_t *o = buf;
    size_t rk = (size_t)kv->row_bytes_k, rv = (size_t)kv->row_bytes_v; /* K and V types may differ */
    for (int64_t l = 0; l < kv->n_layer; l++) {
        for (int64_t i = 0; i < n; i++, o += rk) memcpy(o, kv_k_row(kv, seq, l, pos + i), rk);
        for (int64_t i = 0; i < n; i++, o += rv) memcpy(o, kv_v_row(kv, seq, l, pos + i), rv);
    }
}

void kv_seq_write(kv_cache *kv, int64_t seq, int64_t pos, int64_t n, const void *buf) {
    const uint8_t *in = buf;
    size_t rk = (size_t)kv->row_bytes_k, rv = (size_t)kv->row_bytes_v;
    for (int64_t l = 0; l < kv->n_layer; l++) {
        for (int64_t i = 0; i < n; i++, in += rk) memcpy(kv_k_row(kv, seq, l, pos + i), in, rk);
        for (int64_t i = 0; i < n; i++, in += rv) memcpy(kv_v_row(kv, seq, l, pos + i), in, rv);
    }
    kv->n_past[seq] = pos + n;
}
