/* Hash maps for the tokenizer; see tok_map.h. */
#include "tok_map.h"

#include <stdlib.h>
#include <string.h>

#include "../base/log.h"

/* 64-bit hash of a byte string: 8 bytes at a time, multiply-xorshift mixing. Not cryptographic;
 * token texts are trusted model data and lookups of user text only cost time on collisions. */
uint64_t tok_hash(const void *p, size_t n) {
    const uint8_t *s = p;
    const uint64_t k = 0x9E3779B97F4A7C15ull;
    uint64_t h = 0x6A09E667F3BCC909ull ^ (n * k);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
        s += 8, n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w ^ ((uint64_t)n << 56)) * k;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

static uint64_t table_size(int64_t max_keys) {
    uint64_t sz = 16;
    while (sz < (uint64_t)max_keys * 2) sz <<= 1;
    return sz;
}

void tok_strmap_init(tok_strmap *m, int64_t max_keys) {
    uint64_t sz = table_size(max_keys);
    m->slots = herd_xcalloc(sz, sizeof(*m->slots));
    m->tags = herd_xcalloc(sz, sizeof(*m->tags));
    m->mask = sz - 1;
    m->cap = max_keys;
    m->n = 0;
    m->e = herd_xmalloc((size_t)(max_keys > 0 ? max_keys : 1) * sizeof(*m->e));
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    free(m->tags);
    free(m->e);
    memset(m, 0, sizeof(*m));
}

int32_t tok_strmap_get_h(const tok_strmap *m, const char *key, size_t len, uint64_t h) {
    uint32_t tag = (uint32_t)h;
    for (uint64_t i = (h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t s = m->slots[i];
        if (!s) return -1;
        const tok_strmap_entry *e = &m->e[s - 1];
        if (m->tags[i] == tag && e->len == len && memcmp(e->key, key, len) == 0) return e->val;
    }
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len) {
    return tok_strmap_get_h(m, key, len, tok_hash(key, len));
}

int32_t tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val) {
    uint64_t h = tok_hash(key, len);
    uint32_t tag = (uint32_t)h;
    uint64_t i = (h >> 32) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        uint32_t s = m->slots[i];
        if (!s) break;
        const tok_strmap_entry *e = &m->e[s - 1];
        if (m->tags[i] == tag && e->len == len && memcmp(e->key, key, len) == 0) return e->val;
    }
    HERD_ASSERT(m->n < m->cap && len <= UINT32_MAX);
    m->e[m->n] = (tok_strmap_entry){key, (uint32_t)len, val};
    m->slots[i] = (uint32_t)(++m->n);
    m->tags[i] = tag;
    return val;
}

static uint64_t pair_hash(uint64_t key) {
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15ull;
    key ^= key >> 29;
    return key;
}

void tok_pairmap_init(tok_pairmap *m, int64_t max_keys) {
    uint64_t sz = table_size(max_keys);
    m->slots = herd_xmalloc(sz * sizeof(*m->slots));
    for (uint64_t i = 0; i < sz; i++) m->slots[i].key = TOK_PAIR_EMPTY;
    m->mask = sz - 1;
    m->cap = max_keys;
    m->n = 0;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

void tok_pairmap_put(tok_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t result) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (uint64_t i = pair_hash(key) & m->mask;; i = (i + 1) & m->mask) {
        if (m->slots[i].key == key) return;
        if (m->slots[i].key == TOK_PAIR_EMPTY) {
            HERD_ASSERT(m->n < m->cap);
            m->slots[i] = (tok_pair_slot){key, rank, result};
            m->n++;
            return;
        }
    }
}

const tok_pair_slot *tok_pairmap_get(const tok_pairmap *m, int32_t left, int32_t right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (uint64_t i = pair_hash(key) & m->mask;; i = (i + 1) & m->mask) {
        if (m->slots[i].key == key) return &m->slots[i];
        if (m->slots[i].key == TOK_PAIR_EMPTY) return NULL;
    }
}
