/* KV cache: keys and values of every layer for positions [0, n_ctx) of one sequence.
 *
 * Layout per layer: K [n_ctx][kv_dim] and V [n_ctx][kv_dim] (kv_dim = n_head_kv * head_dim), rows of
 * f32 or f16. Keys are stored after RoPE. Sized once at init to the requested context, never to the
 * model's maximum (131072 positions of an 8B model would be 16 GiB). */
#ifndef HERD_KV_H
#define HERD_KV_H

#include <stdint.h>

typedef struct {
    int type;          /* HERD_TYPE_F32 or HERD_TYPE_F16 */
    int64_t n_layer, n_ctx, kv_dim;
    int64_t row_bytes; /* kv_dim elements of `type` */
    uint8_t *k, *v;    /* [n_layer][n_ctx][kv_dim] each; owned */
    int64_t n_past;    /* positions filled */
} kv_cache;

/* HERD_E_NOMEM with the size in the message when the cache does not fit. */
int kv_cache_init(kv_cache *kv, int type, int64_t n_layer, int64_t n_ctx, int64_t kv_dim);
void kv_cache_free(kv_cache *kv);
uint64_t kv_cache_bytes(const kv_cache *kv);
void *kv_k_row(const kv_cache *kv, int64_t layer, int64_t pos);
void *kv_v_row(const kv_cache *kv, int64_t layer, int64_t pos);

#endif
