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

typedef struct {
    const char *key;
    uint32_t len;
    int32_t val;
} tok_strmap_entry;

typedef struct {
    uint32_t *slots; /* entry index + 1; 0 = empty. (mask + 1) slots */
    uint32_t *tags;  /* low 32 bits of the key's hash, per slot, to skip most memcmp calls */
    uint64_t mask;
    tok_strmap_entry *e;
    int64_t n, cap;
} tok_strmap;

/* Room for up to max_keys keys (fixed; inserting more is a bug and asserts). */
void tok_strmap_init(tok_strmap *m, int64_t max_keys);
void tok_strmap_free(tok_strmap *m);
/* Inserts key -> val unless key is present; returns the value now stored for key. */
int32_t tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val);
/* The value for key, or -1. */
int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len);
int32_t tok_strmap_get_h(const tok_strmap *m, const char *key, size_t len, uint64_t h);

typedef struct {
    uint64_t key;   /* (left << 32) | right; TOK_PAIR_EMPTY when free */
    int32_t rank;   /* merge priority: lower merges first */
    int32_t result; /* symbol id of left+right */
} tok_pair_slot;

#define TOK_PAIR_EMPTY UINT64_MAX

typedef struct {
    tok_pair_slot *slots;
    uint64_t mask;
    int64_t n, cap;
} tok_pairmap;

void tok_pairmap_init(tok_pairmap *m, int64_t max_keys);
void tok_pairmap_free(tok_pairmap *m);
/* Inserts unless (left, right) is present (the first, lowest rank wins, as in llama.cpp). */
void tok_pairmap_put(tok_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t result);
/* The slot for (left, right), or NULL. */
const tok_pair_slot *tok_pairmap_get(const tok_pairmap *m, int32_t left, int32_t right);

#endif
