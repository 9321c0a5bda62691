/* KV cache: keys and values of every layer for n_seq independent sequences of up to n_ctx
 * positions each.
 *
 * Layout: K and V each [n_seq][n_layer][n_ctx][kv_dim] (kv_dim = n_head_kv * head_dim), rows of f32
 * or f16; keys are stored after RoPE. A sequence's rows for one layer are contiguous, so a cached
 * prefix moves to another sequence with one copy per layer. Sized once at init to what was asked
 * for, never to the model's maximum (131072 positions of an 8B model would be 16 GiB). */
#ifndef HERD_KV_H
#define HERD_KV_H

#include <stdint.h>

typedef struct {
    int type;          /* HERD_TYPE_F32 or HERD_TYPE_F16 */
    int64_t n_seq, n_layer, n_ctx, kv_dim;
    int64_t row_bytes; /* kv_dim elements of `type` */
    uint8_t *k, *v;    /* owned */
    int64_t *n_past;   /* [n_seq] positions filled per sequence */
} kv_cache;

/* HERD_E_NOMEM with the size in the message when the cache does not fit. */
int kv_cache_init(kv_cache *kv, int type, int64_t n_seq, int64_t n_layer, int64_t n_ctx, int64_t kv_dim);
void kv_cache_free(kv_cache *kv);
uint64_t kv_cache_bytes(const kv_cache *kv);
void *kv_k_row(const kv_cache *kv, int64_t seq, int64_t layer, int64_t pos);
void *kv_v_row(const kv_cache *kv, int64_t seq, int64_t layer, int64_t pos);
/* Copies positions [0, n) of sequence src into dst (all layers) and sets dst's n_past to n. */
void kv_seq_copy(kv_cache *kv, int64_t src, int64_t dst, int64_t n);

#endif
