/* Prefix cache: a radix tree of KV blocks with LRU eviction (see prefix_cache.h). */
#include "prefix_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"

typedef struct pc_node pc_node;
struct pc_node {
    pc_node *parent; /* NULL for a namespace's root (no block, not in the LRU list) */
    pc_node *child, *prev_sib, *next_sib;
    pc_node *lru_prev, *lru_next; /* lru_prev: more recent; the list's head is the most recent */
    int64_t n_child;
    uint64_t hash; /* of tok[0..B) */
    bool pinned;   /* on the path an insert is extending: not evictable */
    int64_t ord;   /* prefix_cache_check's scratch: position in the LRU list */
    int32_t *tok;  /* [B] */
    void *data;    /* [block_bytes] */
};

struct prefix_cache {
    int64_t B;
    size_t block_bytes;
    uint64_t budget;
    pc_node **roots; /* [n_roots], per namespace, created on first use */
    int n_roots;
    pc_node *lru_head, *lru_tail;
    prefix_cache_stats st;
};

static uint64_t block_hash(const int32_t *t, int64_t B) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over the ids */
    for (int64_t i = 0; i < B; i++) {
        h ^= (uint32_t)t[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

prefix_cache *prefix_cache_new(int64_t block_tokens, size_t block_bytes, uint64_t budget) {
    if (block_tokens < 1 || block_bytes < 1) return NULL;
    prefix_cache *pc = herd_xcalloc(1, sizeof *pc);
    pc->B = block_tokens;
    pc->block_bytes = block_bytes;
    pc->budget = budget;
    return pc;
}

static void free_subtree(pc_node *n) {
    for (pc_node *c = n->child, *nx; c; c = nx) {
        nx = c->next_sib;
        free_subtree(c);
    }
    free(n->tok);
    free(n->data);
    free(n);
}

void prefix_cache_free(prefix_cache *pc) {
    if (!pc) return;
    for (int i = 0; i < pc->n_roots; i++)
        if (pc->roots[i]) free_subtree(pc->roots[i]);
    free(pc->roots);
    free(pc);
}

int64_t prefix_cache_block_tokens(const prefix_cache *pc) {
    return pc->B;
}

static pc_node *root_of(prefix_cache *pc, int ns, bool create) {
    if (ns < 0) return NULL;
    if (ns >= pc->n_roots) {
        if (!create) return NULL;
        pc->roots = herd_xrealloc(pc->roots, (size_t)(ns + 1) * sizeof *pc->roots);
        memset(pc->roots + pc->n_roots, 0, (size_t)(ns + 1 - pc->n_roots) * sizeof *pc->roots);
        pc->n_roots = ns + 1;
    }
    if (!pc->roots[ns] && create) pc->roots[ns] = herd_xcalloc(1, sizeof(pc_node));
    return pc->roots[ns];
}

static pc_node *find_child(const prefix_cache *pc, const pc_node *n, const int32_t *t) {
    uint64_t h = block_hash(t, pc->B);
    for (pc_node *c = n->child; c; c = c->next_sib)
        if (c->hash == h && !memcmp(c->tok, t, (size_t)pc->B * sizeof *t)) return c;
    return NULL;
}

static void lru_unlink(prefix_cache *pc, pc_node *n) {
    if (n->lru_prev)
        n->lru_prev->lru_next = n->lru_next;
    else
        pc->lru_head = n->lru_next;
    if (n->lru_next)
        n->lru_next->lru_prev = n->lru_prev;
    else
        pc->lru_tail = n->lru_prev;
    n->lru_prev = n->lru_next = NULL;
}

/* Puts n right behind `after` (NULL: at the head). */
static void lru_insert_after(prefix_cache *pc, pc_node *after, pc_node *n) {
    n->lru_prev = after;
    n->lru_next = after ? after->lru_next : pc->lru_head;
    if (n->lru_next)
        n->lru_next->lru_prev = n;
    else
        pc->lru_tail = n;
    if (after)
        after->lru_next = n;
    else
        pc->lru_head = n;
}

/* Makes path[0..k) (root-most first) the most recent, each ahead of its descendants. */
static void touch_path(prefix_cache *pc, pc_node **path, int64_t k) {
    for (int64_t i = k - 1; i >= 0; i--) {
        lru_unlink(pc, path[i]);
        lru_insert_after(pc, NULL, path[i]);
    }
}

static void evict_one(prefix_cache *pc) {
    pc_node *n = pc->lru_tail;
    HERD_ASSERT(n && n->n_child == 0 && n->parent);
    lru_unlink(pc, n);
    pc_node *p = n->parent;
    if (n->prev_sib)
        n->prev_sib->next_sib = n->next_sib;
    else
        p->child = n->next_sib;
    if (n->next_sib) n->next_sib->prev_sib = n->prev_sib;
    p->n_child--;
    free(n->tok);
    free(n->data);
    free(n);
    pc->st.n_blocks--;
    pc->st.bytes -= pc->block_bytes;
    pc->st.evictions++;
}

int64_t prefix_cache_match(prefix_cache *pc, int ns, const int32_t *tokens, int64_t n, const void **blocks,
                           int64_t max_blocks) {
    pc_node *cur = root_of(pc, ns, false);
    if (!cur) return 0;
    int64_t m = 0, nb = n / pc->B;
    pc_node *last = NULL;
    while (m < nb) {
        pc_node *c = find_child(pc, cur, tokens + m * pc->B);
        if (!c) break;
        if (m < max_blocks) blocks[m] = c->data;
        cur = last = c;
        m++;
    }
    /* touch: walk back up from the deepest node, moving each to the head, so ancestors end ahead */
    for (pc_node *x = last; x && x->parent; x = x->parent) {
        lru_unlink(pc, x);
        lru_insert_after(pc, NULL, x);
    }
    return m;
}

int64_t prefix_cache_insert(prefix_cache *pc, int ns, const int32_t *tokens, int64_t n,
                            void (*fill)(void *user, int64_t block, void *dst), void *user) {
    int64_t nb = n / pc->B;
    if (nb <= 0 || pc->budget < pc->block_bytes) return 0;
    pc_node *cur = root_of(pc, ns, true);
    pc_node **path = herd_xmalloc((size_t)nb * sizeof *path);
    int64_t k = 0;
    while (k < nb) {
        pc_node *c = find_child(pc, cur, tokens + k * pc->B);
        if (!c) break;
        path[k++] = cur = c;
    }
    touch_path(pc, path, k);
    for (int64_t i = 0; i < k; i++) path[i]->pinned = true;
    while (k < nb) {
        while (pc->st.bytes + pc->block_bytes > pc->budget && pc->lru_tail && !pc->lru_tail->pinned)
            evict_one(pc);
        if (pc->st.bytes + pc->block_bytes > pc->budget) break; /* only this path is left: it cannot grow */
        pc_node *c = herd_xcalloc(1, sizeof *c);
        c->tok = herd_xmalloc((size_t)pc->B * sizeof *c->tok);
        memcpy(c->tok, tokens + k * pc->B, (size_t)pc->B * sizeof *c->tok);
        c->hash = block_hash(c->tok, pc->B);
        c->data = herd_xmalloc(pc->block_bytes);
        fill(user, k, c->data);
        c->parent = cur;
        c->next_sib = cur->child;
        if (cur->child) cur->child->prev_sib = c;
        cur->child = c;
        cur->n_child++;
        /* right behind its parent: behind every ancestor, ahead of whatever was less recent */
        lru_insert_after(pc, cur->parent ? cur : NULL, c);
        c->pinned = true;
        path[k++] = cur = c;
        pc->st.n_blocks++;
        pc->st.bytes += pc->block_bytes;
        pc->st.inserted++;
    }
    for (int64_t i = 0; i < k; i++) path[i]->pinned = false;
    free(path);
    return k;
}

void prefix_cache_get_stats(const prefix_cache *pc, prefix_cache_stats *out) {
    *out = pc->st;
}

/* ---- invariants (tests) ------------------------------------------------------------------------- */

typedef struct {
    const prefix_cache *pc;
    int64_t count;
    int bad;
} check_state;

static void check_node(check_state *s, const pc_node *n) { /* n's children and below */
    int64_t nc = 0;
    const pc_node *prev = NULL;
    for (const pc_node *c = n->child; c; c = c->next_sib) {
        nc++;
        s->count++;
        if (c->parent != n && !s->bad) s->bad = 1;
        if (c->prev_sib != prev && !s->bad) s->bad = 2;
        if (c->hash != block_hash(c->tok, s->pc->B) && !s->bad) s->bad = 3;
        if (c->pinned && !s->bad) s->bad = 4;
        for (const pc_node *d = c->next_sib; d; d = d->next_sib) /* siblings are distinct blocks */
            if (!memcmp(c->tok, d->tok, (size_t)s->pc->B * sizeof *c->tok) && !s->bad) s->bad = 5;
        /* LRU order: the parent is ahead of (more recent than) c */
        if (n->parent && n->ord >= c->ord && !s->bad) s->bad = 6;
        prev = c;
        check_node(s, c);
    }
    if (nc != n->n_child && !s->bad) s->bad = 7;
}

int prefix_cache_check(const prefix_cache *pc) {
    check_state s = {.pc = pc};
    int64_t o = 0;
    for (pc_node *x = pc->lru_head; x && o <= pc->st.n_blocks; x = x->lru_next) x->ord = o++;
    for (int i = 0; i < pc->n_roots; i++)
        if (pc->roots[i]) check_node(&s, pc->roots[i]);
    if (s.bad) return s.bad;
    int64_t L = 0;
    const pc_node *prev = NULL;
    for (const pc_node *x = pc->lru_head; x; x = x->lru_next) {
        if (x->lru_prev != prev) return 8;
        prev = x;
        L++;
    }
    if (prev != pc->lru_tail) return 9;
    if (L != s.count || L != pc->st.n_blocks) return 10;
    if (pc->st.bytes != (uint64_t)L * pc->block_bytes || pc->st.bytes > pc->budget) return 11;
    return 0;
}
