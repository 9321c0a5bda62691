/* KV cache: keys and values of every layer for n_seq independent sequences of up to n_ctx
 * positions each.
 *
 * Layout: K and V each [n_seq][n_layer][n_ctx][kv_dim] (kv_dim = n_head_kv * head_dim), one row per
 * position of f32, f16, bf16, or llama.cpp's q8_0 / q4_0 blocks of 32 (kernels/types.h); K and V may
 * have different types. Keys are stored after RoPE. A head's slice of a row starts at
 * kv_head_offset_k/v (whole blocks: head_dim % 32 == 0 for the block types). A sequence's rows for one
 * layer are contiguous, so a cached prefix moves to another sequence with one copy per layer. Sized
 * once at init to what was asked for, never to the model's maximum (131072 positions of an 8B model
 * would be 16 GiB in f16). */
#ifndef HERD_KV_H
#define HERD_KV_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int type_k, type_v; /* HERD_TYPE_F32, F16, BF16, Q8_0 or Q4_0 */
    int64_t n_seq, n_layer, n_ctx, kv_dim;
    int64_t row_bytes_k, row_bytes_v; /* a row of kv_dim elements of type_k / type_v */
    uint8_t *k, *v;                   /* owned */
    int64_t *n_past;                  /* [n_seq] positions filled per sequence */
} kv_cache;

/* True for the element types a cache can hold. */
bool kv_type_supported(int type);
/* Bytes of a cache of these types and sizes (both K and V), without allocating. */
uint64_t kv_cache_bytes_for(int type_k, int type_v, int64_t n_seq, int64_t n_layer, int64_t n_ctx, int64_t kv_dim);

/* HERD_E_ARG for a type the cache cannot hold or a kv_dim that is not whole blocks; HERD_E_NOMEM with
 * the size in the message when the cache does not fit. */
int kv_cache_init(kv_cache *kv, int type_k, int type_v, int64_t n_seq, int64_t n_layer, int64_t n_ctx,
                  int64_t kv_dim);
void kv_cache_free(kv_cache *kv);
uint64_t kv_cache_bytes(const kv_cache *kv);
void *kv_k_row(const kv_cache *kv, int64_t seq, int64_t layer, int64_t pos);
void *kv_v_row(const kv_cache *kv, int64_t seq, int64_t layer, int64_t pos);
/* Byte offset of element e (the start of a head: a multiple of the block size) within a K / V row. */
int64_t kv_offset_k(const kv_cache *kv, int64_t e);
int64_t kv_offset_v(const kv_cache *kv, int64_t e);
/* Copies positions [0, n) of sequence src into dst (all layers) and sets dst's n_past to n. */
void kv_seq_copy(kv_cache *kv, int64_t src, int64_t dst, int64_t n);
/* Positions [pos, pos + n) of sequence seq as bytes, [layer][K rows n][V rows n] (kv_seq_bytes_per_pos(kv)
 * per position), out of and into the cache; the write sets n_past[seq] = pos + n. Ranges checked by the
 * caller. */
uint64_t kv_seq_bytes_per_pos(const kv_cache *kv);
void kv_seq_read(const kv_cache *kv, int64_t seq, int64_t pos, int64_t n, void *buf);
void kv_seq_write(kv_cache *kv, int64_t seq, int64_t pos, int64_t n, const void *buf);

#endif
