#include "mask.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../tokenizer/tok_internal.h"

struct tok_trie {
    int refs;
    const herd_vocab *v;
    uint64_t hash;
    int32_t n_vocab;
    uint8_t *blob; /* token bytes: token i = blob + off[i], length off[i+1] - off[i] (0: not in the trie) */
    uint64_t *off;
    int32_t *order; /* token ids in byte order (only those in the trie) */
    int32_t n_order;
    /* nodes in preorder; node 0 is the root. Children of n: n+1, then end[child], ... < end[n] */
    int32_t n_nodes, cap_nodes;
    uint8_t *byte, *plain;
    int32_t *end, *tok_lo, *tok_hi, *n_here, *maxrem;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static tok_trie *g_cached;
static const tok_trie *g_sort_trie; /* qsort context (under g_mu) */

static int cmp_tok(const void *x, const void *y) {
    const tok_trie *t = g_sort_trie;
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    uint64_t la = t->off[a + 1] - t->off[a], lb = t->off[b + 1] - t->off[b];
    int c = memcmp(t->blob + t->off[a], t->blob + t->off[b], la < lb ? la : lb);
    if (c) return c;
    if (la != lb) return la < lb ? -1 : 1;
    return (a > b) - (a < b);
}

/* length of a plain character starting at p (n bytes left), or 0 */
static int plain_char(const uint8_t *p, int64_t n) {
    uint8_t c = p[0];
    if (c < 0x80) return c >= 0x20 && c != '"' && c != '\\';
    int len, lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return len;
}

static int32_t new_node(tok_trie *t) {
    if (t->n_nodes == t->cap_nodes) {
        t->cap_nodes = t->cap_nodes ? 2 * t->cap_nodes : 4096;
        size_t n = (size_t)t->cap_nodes;
        t->byte = herd_xrealloc(t->byte, n);
        t->plain = herd_xrealloc(t->plain, n);
        t->end = herd_xrealloc(t->end, n * sizeof(int32_t));
        t->tok_lo = herd_xrealloc(t->tok_lo, n * sizeof(int32_t));
        t->tok_hi = herd_xrealloc(t->tok_hi, n * sizeof(int32_t));
        t->n_here = herd_xrealloc(t->n_here, n * sizeof(int32_t));
        t->maxrem = herd_xrealloc(t->maxrem, n * sizeof(int32_t));
    }
    return t->n_nodes++;
}

/* The node for order[lo, hi), all sharing their first `depth` bytes. sp: per token of the order,
 * from offset d: whether bytes [d, len) are plain characters (suffix_plain, flattened like blob) */
static void build(tok_trie *t, int32_t lo, int32_t hi, int64_t depth, int byte, const uint8_t *sp) {
    int32_t n = new_node(t);
    t->byte[n] = (uint8_t)byte;
    t->tok_lo[n] = lo;
    t->tok_hi[n] = hi;
    int32_t maxrem = 0;
    uint8_t plain = 1;
    int32_t i = lo;
    for (int32_t j = lo; j < hi; j++) {
        int32_t id = t->order[j];
        int64_t len = (int64_t)(t->off[id + 1] - t->off[id]);
        if (len - depth > maxrem) maxrem = (int32_t)(len - depth);
        plain &= sp[t->off[id] + (uint64_t)id + (uint64_t)depth];
        if (len == depth) i = j + 1; /* tokens ending here sort first */
    }
    t->n_here[n] = i - lo;
    t->plain[n] = plain;
    t->maxrem[n] = maxrem;
    while (i < hi) {
        int32_t id = t->order[i];
        uint8_t c = t->blob[t->off[id] + (uint64_t)depth];
        int32_t j = i + 1;
        while (j < hi && t->blob[t->off[t->order[j]] + (uint64_t)depth] == c) j++;
        build(t, i, j, depth + 1, c, sp);
        i = j;
    }
    t->end[n] = t->n_nodes;
}

static tok_trie *trie_new(const herd_vocab *v, uint8_t *blob, uint64_t *off, uint64_t hash) {
    tok_trie *t = herd_xcalloc(1, sizeof *t);
    t->refs = 1;
    t->v = v;
    t->hash = hash;
    t->n_vocab = v->n_tokens;
    t->blob = blob;
    t->off = off;
    t->order = herd_xmalloc((size_t)t->n_vocab * sizeof *t->order);
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (off[id + 1] > off[id]) t->order[t->n_order++] = id;
    g_sort_trie = t;
    qsort(t->order, (size_t)t->n_order, sizeof *t->order, cmp_tok);
    /* suffix_plain per token, from each offset (len + 1 entries per token, at off[id] + id) */
    uint8_t *sp = herd_xmalloc((size_t)(off[t->n_vocab] + (uint64_t)t->n_vocab + 1));
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int64_t len = (int64_t)(off[id + 1] - off[id]);
        uint8_t *s = sp + off[id] + (uint64_t)id;
        const uint8_t *p = blob + off[id];
        s[len] = 1;
        for (int64_t i = len - 1; i >= 0; i--) {
            s[i] = 0;
            for (int k = 1; k <= 4 && i + k <= len; k++) /* a character of k bytes starting at i */
                if (plain_char(p + i, len - i) == k) s[i] = s[i + k];
        }
    }
    build(t, 0, t->n_order, 0, 0, sp);
    free(sp);
    return t;
}

/* A cheap fingerprint of a vocabulary: its size and a sample of its token texts (a hit needs the
 * same vocabulary object too, so this only guards against a freed one's address being reused). */
static uint64_t fingerprint(const herd_vocab *v) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)v->n_tokens;
    for (int32_t id = 0; id < v->n_tokens; id += 97) {
        for (uint64_t i = v->piece_off[id]; i < v->piece_off[id + 1]; i++)
            h = (h ^ (uint8_t)v->pieces[i]) * 1099511628211ull;
        h = (h ^ v->attr[id]) * 1099511628211ull;
    }
    return h;
}

tok_trie *tok_trie_get(const herd_vocab *v) {
    int32_t n = v->n_tokens;
    uint64_t h = fingerprint(v);
    pthread_mutex_lock(&g_mu);
    tok_trie *t = g_cached;
    if (t && t->v == v && t->n_vocab == n && t->hash == h) {
        t->refs++;
        pthread_mutex_unlock(&g_mu);
        return t;
    }
    uint64_t *off = herd_xmalloc(((size_t)n + 1) * sizeof *off);
    size_t cap = 1 << 20, used = 0;
    uint8_t *blob = herd_xmalloc(cap);
    char buf[512];
    for (int32_t id = 0; id < n; id++) {
        off[id] = used;
        if (!(v->attr[id] & (TOK_ATTR_NORMAL | TOK_ATTR_BYTE)) || vocab_is_eog(v, id)) continue;
        int64_t k = vocab_token_to_piece(v, id, false, buf, sizeof buf);
        if (k <= 0 || k > (int64_t)sizeof buf) continue; /* longer texts: left out (never allowed) */
        if (used + (size_t)k > cap) blob = herd_xrealloc(blob, cap *= 2);
        memcpy(blob + used, buf, (size_t)k);
        used += (size_t)k;
    }
    off[n] = used;
    t = trie_new(v, blob, off, h);
    t->refs++; /* the cache's reference */
    tok_trie *old = g_cached;
    g_cached = t;
    pthread_mutex_unlock(&g_mu);
    tok_trie_release(old);
    return t;
}

void tok_trie_release(tok_trie *t) {
    if (!t) return;
    pthread_mutex_lock(&g_mu);
    bool last = --t->refs == 0;
    pthread_mutex_unlock(&g_mu);
    if (!last) return;
    free(t->blob);
    free(t->off);
    free(t->order);
    free(t->byte);
    free(t->plain);
    free(t->end);
    free(t->tok_lo);
    free(t->tok_hi);
    free(t->n_here);
    free(t->maxrem);
    free(t);
}

int32_t tok_trie_n_vocab(const tok_trie *t) {
    return t->n_vocab;
}

const uint8_t *tok_trie_bytes(const tok_trie *t, int32_t id, int32_t *len) {
    if (id < 0 || id >= t->n_vocab || t->off[id + 1] == t->off[id]) {
        *len = 0;
        return NULL;
    }
    *len = (int32_t)(t->off[id + 1] - t->off[id]);
    return t->blob + t->off[id];
}

static void walk(const tok_trie *t, gr_arena *a, int32_t node, const gr_state *s, uint8_t *allowed,
                 int64_t *cnt) {
    if (t->plain[node]) {
        int32_t room = gr_string_room(a, s);
        if (room >= t->maxrem[node]) {
            for (int32_t j = t->tok_lo[node]; j < t->tok_hi[node]; j++) allowed[t->order[j]] = 1;
            *cnt += t->tok_hi[node] - t->tok_lo[node];
            return;
        }
    }
    for (int32_t j = t->tok_lo[node]; j < t->tok_lo[node] + t->n_here[node]; j++) allowed[t->order[j]] = 1;
    *cnt += t->n_here[node];
    gr_state next;
    for (int32_t c = node + 1; c < t->end[node]; c = t->end[c]) {
        gr_step(a, s, t->byte[c], &next);
        if (next.n > 0) walk(t, a, c, &next, allowed, cnt);
    }
}

int64_t tok_trie_mask(const tok_trie *t, gr_arena *a, const gr_state *s, uint8_t *allowed) {
    int32_t mark = a->n_nodes;
    int64_t cnt = 0;
    if (s->n > 0 && t->n_nodes > 0) {
        gr_state next;
        for (int32_t c = 1; c < t->end[0]; c = t->end[c]) {
            gr_step(a, s, t->byte[c], &next);
            if (next.n > 0) walk(t, a, c, &next, allowed, &cnt);
        }
    }
    a->n_nodes = mark;
    return cnt;
}
