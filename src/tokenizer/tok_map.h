/* Tokenizer-internal hash maps (open addressing, linear probing, power-of-two tables sized once
 * for a known number of keys, load <= 1/2).
 *
 *   tok_strmap:   byte string -> int32 (token text -> id, raw bytes -> id). Keys are borrowed: the
 *                 caller keeps the key bytes alive and unchanged for the map's lifetime.
 *   tok_pairmap:  (int32 left, int32 right) -> (int32 rank, int32 result): BPE merges. */
#ifndef HERD_TOKENIZER_TOK_MAP_H
#define HERD_TOKENIZER_TOK_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint64_t tok_hash(const void *p, size_t n);

/* One slot holds everything but the key bytes, so a lookup touches the slot and the key only. */
typedef struct {
    uint32_t tag;  /* low 32 bits of the key's hash */
    uint32_t len1; /* key length + 1; 0 for a free slot (so a calloc'd table is empty) */
    uint32_t off;  /* key bytes at base + off */
    int32_t val;
} tok_strmap_slot;

typedef struct {
    tok_strmap_slot *slots;
    uint64_t mask;
    int64_t n, cap;
    const char *base; /* keys live at base + off; the owner updates base if its buffer moves */
} tok_strmap;

/* Sized for expect_keys keys; grows (doubling) past that. */
void tok_strmap_init(tok_strmap *m, const char *base, int64_t expect_keys);
void tok_strmap_free(tok_strmap *m);
/* Inserts the key at base + off (len bytes, already there) -> val unless the key is present;
 * returns the value now stored for the key. */
int32_t tok_strmap_put(tok_strmap *m, uint64_t off, size_t len, int32_t val);
int32_t tok_strmap_put_h(tok_strmap *m, uint64_t off, size_t len, int32_t val,
                         uint64_t h); /* h = tok_hash(key) */
/* The value for key (any memory), or -1. */
int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len);
int32_t tok_strmap_get_h(const tok_strmap *m, const char *key, size_t len, uint64_t h);
/* Hints the cache to fetch the slot of hash h (bulk loading overlaps its misses this way). */
void tok_strmap_prefetch(const tok_strmap *m, uint64_t h);

typedef struct {
    uint64_t key1;  /* ((left << 32) | right) + 1; 0 when free */
    int32_t rank;   /* merge priority: lower merges first */
    int32_t result; /* symbol id of left+right */
} tok_pair_slot;

typedef struct {
    tok_pair_slot *slots;
    uint64_t mask;
    int64_t n, cap;
} tok_pairmap;

/* Room for max_keys pairs (fixed: the number of merges is known up front). */
void tok_pairmap_init(tok_pairmap *m, int64_t max_keys);
void tok_pairmap_free(tok_pairmap *m);
/* Inserts (left, right); for a pair already present the lowest rank wins (as in llama.cpp, where
 * the first of duplicate merges counts). */
void tok_pairmap_put(tok_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t result);
void tok_pairmap_prefetch(const tok_pairmap *m, int32_t left, int32_t right);
/* The slot for (left, right), or NULL. */
const tok_pair_slot *tok_pairmap_get(const tok_pairmap *m, int32_t left, int32_t right);

#endif
