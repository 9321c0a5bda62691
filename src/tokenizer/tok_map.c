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

/* smallest power of two >= keys * num / den (and >= 16) */
static uint64_t table_size(int64_t keys, int num, int den) {
    uint64_t want = (uint64_t)(keys > 0 ? keys : 0) * (uint64_t)num / (uint64_t)den, sz = 16;
    while (sz < want) sz <<= 1;
    return sz;
}

void tok_strmap_init(tok_strmap *m, const char *base, int64_t expect_keys) {
    uint64_t sz = table_size(expect_keys, 2, 1); /* load <= 1/2 */
    m->slots = herd_xcalloc(sz, sizeof(*m->slots));
    m->mask = sz - 1;
    m->cap = (int64_t)(sz / 2);
    m->n = 0;
    m->base = base;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

int32_t tok_strmap_get_h(const tok_strmap *m, const char *key, size_t len, uint64_t h) {
    uint32_t tag = (uint32_t)h;
    for (uint64_t i = (h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        const tok_strmap_slot *s = &m->slots[i];
        if (s->len1 == 0) return -1;
        if (s->tag == tag && s->len1 == len + 1 && memcmp(m->base + s->off, key, len) == 0) return s->val;
    }
}

void tok_strmap_prefetch(const tok_strmap *m, uint64_t h) {
    __builtin_prefetch(&m->slots[(h >> 32) & m->mask]);
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len) {
    return tok_strmap_get_h(m, key, len, tok_hash(key, len));
}

static void strmap_grow(tok_strmap *m) {
    uint64_t sz = (m->mask + 1) * 2;
    tok_strmap_slot *old = m->slots;
    uint64_t old_n = m->mask + 1;
    m->slots = herd_xcalloc(sz, sizeof(*m->slots));
    m->mask = sz - 1;
    m->cap = (int64_t)(sz / 2);
    for (uint64_t k = 0; k < old_n; k++) {
        if (!old[k].len1) continue;
        uint64_t h = tok_hash(m->base + old[k].off, old[k].len1 - 1);
        uint64_t i = (h >> 32) & m->mask;
        while (m->slots[i].len1) i = (i + 1) & m->mask;
        m->slots[i] = old[k];
    }
    free(old);
}

int32_t tok_strmap_put(tok_strmap *m, uint64_t off, size_t len, int32_t val) {
    return tok_strmap_put_h(m, off, len, val, tok_hash(m->base + off, len));
}

int32_t tok_strmap_put_h(tok_strmap *m, uint64_t off, size_t len, int32_t val, uint64_t h) {
    HERD_ASSERT(len < UINT32_MAX && off <= UINT32_MAX);
    if (m->n >= m->cap) strmap_grow(m);
    const char *key = m->base + off;
    uint32_t tag = (uint32_t)h;
    uint64_t i = (h >> 32) & m->mask;
    for (;; i = (i + 1) & m->mask) {
        const tok_strmap_slot *s = &m->slots[i];
        if (s->len1 == 0) break;
        if (s->tag == tag && s->len1 == len + 1 && memcmp(m->base + s->off, key, len) == 0) return s->val;
    }
    m->slots[i] = (tok_strmap_slot){tag, (uint32_t)len + 1, (uint32_t)off, val};
    m->n++;
    return val;
}

static uint64_t pair_hash(uint64_t key) {
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15ull;
    key ^= key >> 29;
    return key;
}

void tok_pairmap_init(tok_pairmap *m, int64_t max_keys) {
    uint64_t sz = table_size(max_keys, 4, 3); /* load <= 3/4 */
    m->slots = herd_xcalloc(sz, sizeof(*m->slots));
    m->mask = sz - 1;
    m->cap = max_keys;
    m->n = 0;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

void tok_pairmap_put(tok_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t result) {
    uint64_t key1 = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    for (uint64_t i = pair_hash(key1) & m->mask;; i = (i + 1) & m->mask) {
        tok_pair_slot *s = &m->slots[i];
        if (s->key1 == key1) {
            if (rank < s->rank) s->rank = rank, s->result = result;
            return;
        }
        if (s->key1 == 0) {
            HERD_ASSERT(m->n < m->cap);
            *s = (tok_pair_slot){key1, rank, result};
            m->n++;
            return;
        }
    }
}

void tok_pairmap_prefetch(const tok_pairmap *m, int32_t left, int32_t right) {
    uint64_t key1 = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    __builtin_prefetch(&m->slots[pair_hash(key1) & m->mask], 1);
}

const tok_pair_slot *tok_pairmap_get(const tok_pairmap *m, int32_t left, int32_t right) {
    uint64_t key1 = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    for (uint64_t i = pair_hash(key1) & m->mask;; i = (i + 1) & m->mask) {
        const tok_pair_slot *s = &m->slots[i];
        if (s->key1 == key1) return s;
        if (s->key1 == 0) return NULL;
    }
}
