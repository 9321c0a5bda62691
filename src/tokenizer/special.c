/* Special-token partition: which spans of the input are control / user-defined / unknown tokens.
 *
 * llama.cpp (tokenizer_st_partition) takes the special tokens longest text first and, for each, cuts
 * every occurrence out of the text that is still raw, left to right. That is not leftmost-longest
 * matching: with tokens "XY" and "YZW", "XYZW" gives X + [YZW]. herd reproduces that order without
 * rescanning the text once per token:
 *   1. one pass over the text with a trie of the special texts lists every occurrence of every
 *      candidate (position, token);
 *   2. occurrences are sorted by (the token's rank in llama.cpp's order, position) and accepted
 *      greedily unless they overlap an accepted one — for a single token that is exactly its left-to-
 *      right scan over the still-raw text, and tokens come in llama.cpp's order;
 *   3. accepted spans, sorted by position, cut the text into fragments.
 * Candidates: tokens with attribute control, user-defined or unknown; without parse_special only the
 * user-defined ones (control and unknown text stays plain text), as in llama.cpp.
 */
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "tok_internal.h"

static int32_t trie_child(const herd_vocab *v, int32_t node, uint8_t b) {
    for (int32_t c = v->trie[node].first_child; c >= 0; c = v->trie[c].next_sibling)
        if (v->trie[c].byte == b) return c;
    return -1;
}

void tok_trie_build(herd_vocab *v) {
    size_t total = 1;
    for (int32_t i = 0; i < v->n_special; i++) {
        size_t n;
        tok_text(v, v->special[i], &n);
        total += n;
    }
    v->trie = herd_xmalloc(total * sizeof(*v->trie));
    v->trie[0] = (tok_trie_node){-1, -1, -1, 0};
    v->n_trie = 1;
    memset(v->special_first, 0, sizeof(v->special_first));
    for (int32_t i = 0; i < v->n_special; i++) {
        size_t n;
        const uint8_t *t = (const uint8_t *)tok_text(v, v->special[i], &n);
        if (n == 0) continue;
        v->special_first[t[0] >> 3] |= (uint8_t)(1u << (t[0] & 7));
        int32_t node = 0;
        for (size_t k = 0; k < n; k++) {
            int32_t c = trie_child(v, node, t[k]);
            if (c < 0) {
                c = v->n_trie++;
                v->trie[c] = (tok_trie_node){-1, v->trie[node].first_child, -1, t[k]};
                v->trie[node].first_child = c;
            }
            node = c;
        }
        v->trie[node].token = v->special[i];
    }
}

typedef struct {
    uint64_t pos;
    int32_t rank, id;
} occurrence;

static int by_rank_pos(const void *a, const void *b) {
    const occurrence *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int by_pos(const void *a, const void *b) {
    const occurrence *x = a, *y = b;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static bool candidate(const herd_vocab *v, int32_t id, bool parse_special) {
    return parse_special || !(v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN));
}

int tok_partition(const herd_vocab *v, const char *text, size_t len, bool parse_special, tok_fragment_fn emit,
                  void *user) {
    const uint8_t *s = (const uint8_t *)text;
    occurrence *occ = NULL;
    size_t n_occ = 0, cap = 0;
    int rc = 0;

    /* 1. every occurrence of every candidate */
    if (v->n_trie > 1) {
        for (size_t i = 0; i < len; i++) {
            if (!(v->special_first[s[i] >> 3] & (1u << (s[i] & 7)))) continue;
            int32_t node = 0;
            for (size_t k = i; k < len; k++) {
                node = trie_child(v, node, s[k]);
                if (node < 0) break;
                int32_t id = v->trie[node].token;
                if (id < 0 || !candidate(v, id, parse_special)) continue;
                if (n_occ == cap) {
                    size_t c = cap ? cap * 2 : 16;
                    occurrence *p = realloc(occ, c * sizeof(*occ));
                    if (!p) {
                        free(occ);
                        return herd_err(HERD_E_NOMEM, "tokenizer: out of memory partitioning %zu bytes", len);
                    }
                    occ = p, cap = c;
                }
                occ[n_occ++] = (occurrence){i, v->special_rank[id], id};
            }
        }
    }
    if (n_occ == 0) {
        free(occ);
        return len ? emit(user, 0, len, -1) : 0;
    }

    /* 2. accept in llama.cpp's order, skipping overlaps */
    qsort(occ, n_occ, sizeof(*occ), by_rank_pos);
    uint8_t *taken = calloc(len, 1);
    if (!taken) {
        free(occ);
        return herd_err(HERD_E_NOMEM, "tokenizer: out of memory partitioning %zu bytes", len);
    }
    size_t n_acc = 0;
    for (size_t i = 0; i < n_occ; i++) {
        size_t n;
        tok_text(v, occ[i].id, &n);
        bool free_span = true;
        /* the whole span must still be raw text */
        for (size_t k = 0; k < n && free_span; k++) free_span = !taken[occ[i].pos + k];
        if (!free_span) continue;
        memset(taken + occ[i].pos, 1, n);
        occ[n_acc++] = occ[i];
    }
    free(taken);

    /* 3. fragments in text order */
    qsort(occ, n_acc, sizeof(*occ), by_pos);
    size_t at = 0;
    for (size_t i = 0; i < n_acc && rc == 0; i++) {
        size_t n;
        tok_text(v, occ[i].id, &n);
        if (occ[i].pos > at) rc = emit(user, at, occ[i].pos - at, -1);
        if (rc == 0) rc = emit(user, occ[i].pos, n, occ[i].id);
        at = occ[i].pos + n;
    }
    if (rc == 0 && at < len) rc = emit(user, at, len - at, -1);
    free(occ);
    return rc;
}
