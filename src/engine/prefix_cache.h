/* Prefix cache: a radix tree of KV blocks over every prompt prefix the server has computed, so that
 * requests sharing a system prompt or continuing a chat start from cached KV instead of recomputing it.
 *
 * The tree's edges are blocks of `block_tokens` token ids (whole blocks only: a prefix is cached up to
 * its last full block). A node holds the KV of its block's positions, `block_bytes` opaque bytes that
 * the caller fills (the engine: every layer's K and V rows of those positions, see engine.c); since a
 * position's KV depends on every token before it, a node is valid only under its parent, which is why
 * the tree is keyed by the whole path. Namespaces (`ns`, the engine's LoRA adapter index) are separate
 * trees: KV computed with one adapter is never reused by another.
 *
 * Memory: at most `budget` bytes of block data (plus a small node header each). When an insert would
 * go over, least-recently-used leaves are evicted first. Every match or insert touches the whole path,
 * and the LRU list keeps every node more recent than all its descendants, so the list's tail is always
 * a leaf: eviction is O(1) and never orphans a child.
 *
 * Threads: none; the engine thread owns it. Pointers returned by match stay valid until the next insert
 * or free. */
#ifndef HERD_PREFIX_CACHE_H
#define HERD_PREFIX_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct prefix_cache prefix_cache;

typedef struct {
    int64_t n_blocks;   /* blocks held now */
    uint64_t bytes;     /* their data bytes (n_blocks * block_bytes) */
    uint64_t evictions; /* blocks evicted since creation */
    uint64_t inserted;  /* blocks inserted since creation */
} prefix_cache_stats;

/* budget: most bytes of block data; 0 caches nothing. Returns NULL only if block_tokens < 1 or
 * block_bytes < 1. */
prefix_cache *prefix_cache_new(int64_t block_tokens, size_t block_bytes, uint64_t budget);
void prefix_cache_free(prefix_cache *pc);
int64_t prefix_cache_block_tokens(const prefix_cache *pc);

/* The longest cached prefix of tokens[0..n) in namespace ns, in whole blocks: returns the number of
 * blocks m (m * block_tokens <= n), and blocks[0..min(m, max_blocks)) their data (borrowed, see above).
 * The matched path becomes the most recently used. */
int64_t prefix_cache_match(prefix_cache *pc, int ns, const int32_t *tokens, int64_t n, const void **blocks,
                           int64_t max_blocks);

/* Makes the blocks of tokens[0..n) (n / block_tokens whole blocks) cached in namespace ns: the ones
 * already there are touched; for each missing block i, fill(user, i, dst) writes its block_bytes into
 * dst. Evicts LRU leaves to stay within the budget, never a block of this path; stops early when the
 * budget cannot hold the next block. Returns how many leading blocks of the path are now cached. */
int64_t prefix_cache_insert(prefix_cache *pc, int ns, const int32_t *tokens, int64_t n,
                            void (*fill)(void *user, int64_t block, void *dst), void *user);

void prefix_cache_get_stats(const prefix_cache *pc, prefix_cache_stats *out);

/* Checks the invariants (parent links, children counts, the LRU order: every node ahead of its
 * descendants, byte count, budget); returns 0 when they hold, else the number of the first violated
 * one. For tests. */
int prefix_cache_check(const prefix_cache *pc);

#endif
