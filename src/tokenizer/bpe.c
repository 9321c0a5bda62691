/* Byte-level BPE for tokenizer.ggml.model = "gpt2" (Llama 3).
 *
 * Each piece of the pre-tokenizer is tokenized on its own:
 *  1. ignore_merges (llama.cpp sets it for llama3): a piece that is itself a token is that token.
 *  2. Otherwise every byte becomes a symbol (the token of its GPT-2 byte-to-unicode char), and the
 *     adjacent pair with the lowest merge rank is merged, the leftmost pair on ties, until no
 *     adjacent pair has a merge. A binary heap of candidate pairs keeps this O(n log n) per piece;
 *     entries whose symbols changed since they were pushed are skipped when popped.
 *  3. Each final symbol is its token; a symbol that is not a token (only possible with merges whose
 *     result the vocabulary lacks) falls back as llama.cpp does: each byte of its byte-level text
 *     that is itself a one-byte token is emitted, the others are dropped.
 *
 * The work is on raw bytes: merges are keyed by (left symbol, right symbol) ids, so no strings are
 * built while tokenizing.
 */
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "tok_internal.h"

/* ---- load ------------------------------------------------------------------------------------ */

/* GPT-2's byte-to-unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes map to
 * U+0100.. in byte order. */
static void byte_chars(herd_vocab *v) {
    int next = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = printable ? (uint32_t)b : 256u + (uint32_t)next++;
        if (cp < 0x80) {
            v->byte_char[b][0] = (uint8_t)cp;
            v->byte_char_len[b] = 1;
        } else {
            v->byte_char[b][0] = (uint8_t)(0xC0 | (cp >> 6));
            v->byte_char[b][1] = (uint8_t)(0x80 | (cp & 0x3F));
            v->byte_char_len[b] = 2;
        }
    }
}

/* Decodes byte-level text t[0..n) to raw bytes in out (room for n); returns the length, or -1 if
 * some char is not one of the 256 byte chars. */
static int64_t byte_decode(const int16_t *inv, const uint8_t *t, size_t n, uint8_t *out) {
    int64_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        if (t[i] < 0x80) {
            cp = t[i++];
        } else if ((t[i] & 0xE0) == 0xC0 && i + 1 < n && (t[i + 1] & 0xC0) == 0x80) {
            cp = ((uint32_t)(t[i] & 0x1F) << 6) | (t[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1;
        }
        if (cp >= 0x200 || inv[cp] < 0) return -1;
        out[k++] = (uint8_t)inv[cp];
    }
    return k;
}

/* Strings that merges build but the vocabulary lacks get pseudo symbol ids, keyed in a temporary
 * map whose keys live in a growable arena (the map's base follows the arena). */
typedef struct {
    tok_strmap map;
    char *arena;
    size_t n, cap;
} pseudo_set;

static int32_t symbol_get(const herd_vocab *v, const pseudo_set *ps, const char *s, size_t n) {
    int32_t id = tok_strmap_get(&v->text_map, s, n);
    return id >= 0 ? id : tok_strmap_get(&ps->map, s, n);
}

static int32_t symbol_make(herd_vocab *v, pseudo_set *ps, const char *s, size_t n) {
    int32_t id = symbol_get(v, ps, s, n);
    if (id >= 0) return id;
    if (ps->n + n > ps->cap) {
        ps->cap = (ps->n + n) * 2 + 256;
        ps->arena = herd_xrealloc(ps->arena, ps->cap);
        ps->map.base = ps->arena;
    }
    memcpy(ps->arena + ps->n, s, n);
    id = v->n_tokens + v->n_pseudo++;
    tok_strmap_put(&ps->map, ps->n, n, id);
    ps->n += n;
    return id;
}

/* Splits merge string m into "a b" at the first space after position 0 (so "Ġ Ġ" is two spaces'
 * chars) and writes a+b to buf. false when there is no such space (llama.cpp then stores an
 * empty pair that never matches). */
static bool split_merge(const gguf_str *m, size_t *la, const char **b, size_t *lb, char *buf) {
    const char *sp = m->len > 1 ? memchr(m->ptr + 1, ' ', m->len - 1) : NULL;
    if (!sp) return false;
    *la = (size_t)(sp - m->ptr);
    *b = sp + 1;
    *lb = m->len - *la - 1;
    memcpy(buf, m->ptr, *la);
    memcpy(buf + *la, *b, *lb);
    return true;
}

int tok_bpe_init(herd_vocab *v, const gguf_kv *kv, const char *what) {
    byte_chars(v);

    int16_t inv[0x200]; /* byte char code point -> byte */
    for (int i = 0; i < 0x200; i++) inv[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = v->byte_char_len[b] == 1
                          ? v->byte_char[b][0]
                          : ((uint32_t)(v->byte_char[b][0] & 0x1F) << 6) | (v->byte_char[b][1] & 0x3F);
        inv[cp] = (int16_t)b;
    }

    /* raw bytes of every token whose text is all byte chars (so ignore_merges and the final lookup
     * can work on raw bytes); special tokens like "<|eot_id|>" are printable ASCII and included */
    uint64_t total = v->text_off[v->n_tokens];
    v->raw_blob = herd_xmalloc(total ? total : 1);
    tok_strmap_init(&v->raw_map, v->raw_blob, v->n_tokens);
    uint64_t at = 0;
    for (int32_t i0 = 0; i0 < v->n_tokens; i0 += 16) { /* blocks of 16: decode, hash, prefetch, insert */
        uint64_t h[16], off[16];
        int64_t len[16];
        int32_t nb = v->n_tokens - i0 < 16 ? v->n_tokens - i0 : 16;
        for (int32_t q = 0; q < nb; q++) {
            size_t n;
            const char *t = tok_text(v, i0 + q, &n);
            len[q] = byte_decode(inv, (const uint8_t *)t, n, (uint8_t *)v->raw_blob + at);
            if (len[q] < 0) continue;
            off[q] = at;
            at += (uint64_t)len[q];
            h[q] = tok_hash(v->raw_blob + off[q], (size_t)len[q]);
            tok_strmap_prefetch(&v->raw_map, h[q]);
        }
        for (int32_t q = 0; q < nb; q++)
            if (len[q] >= 0) tok_strmap_put_h(&v->raw_map, off[q], (size_t)len[q], i0 + q, h[q]);
    }

    int64_t n_merges = kv ? (int64_t)kv->arr_n : 0;
    if (n_merges > INT32_MAX)
        return herd_err(HERD_E_FORMAT, "tokenizer: %s: too many merges (%lld)", what, (long long)n_merges);
    pseudo_set ps = {0};
    tok_strmap_init(&ps.map, NULL, 1024); /* usually (Llama 3) no pseudo symbols beyond bytes */
    for (int b = 0; b < 256; b++)
        v->byte_sym[b] = symbol_make(v, &ps, (const char *)v->byte_char[b], v->byte_char_len[b]);

    /* One pass: each merge's result gets a symbol; a merge whose operand is not known yet (a pseudo
     * symbol that a later merge makes) is retried after the pass. An operand that no merge builds
     * means the merge can never apply. Merges go in blocks whose table slots are prefetched first:
     * loading is bound by cache misses in the 128K-token and 280K-merge tables. */
    enum { BLOCK = 16 };
    struct {
        const char *a, *b;
        size_t la, lb;
        uint64_t ha, hb, hab;
        uint64_t ab_off; /* a+b in buf */
        int32_t ia, ib, ir;
        bool ok;
    } blk[BLOCK];
    char *buf = NULL;
    size_t buf_cap = 0;
    int64_t *retry = NULL, n_retry = 0;
    tok_pairmap_init(&v->merges, n_merges);
    for (int pass = 0; pass < 2; pass++) {
        int64_t count = pass == 0 ? n_merges : n_retry;
        for (int64_t j0 = 0; j0 < count; j0 += BLOCK) {
            int nb = count - j0 < BLOCK ? (int)(count - j0) : BLOCK;
            size_t need = 0;
            for (int q = 0; q < nb; q++) need += kv->strs[pass == 0 ? j0 + q : retry[j0 + q]].len;
            if (need + 1 > buf_cap) {
                buf_cap = need * 2 + 64;
                buf = herd_xrealloc(buf, buf_cap);
            }
            size_t at_buf = 0;
            for (int q = 0; q < nb; q++) { /* split, hash, prefetch */
                const gguf_str *m = &kv->strs[pass == 0 ? j0 + q : retry[j0 + q]];
                blk[q].ok = split_merge(m, &blk[q].la, &blk[q].b, &blk[q].lb, buf + at_buf);
                if (!blk[q].ok) continue;
                blk[q].a = m->ptr;
                blk[q].ab_off = at_buf;
                at_buf += blk[q].la + blk[q].lb;
                blk[q].ha = tok_hash(blk[q].a, blk[q].la);
                blk[q].hb = tok_hash(blk[q].b, blk[q].lb);
                blk[q].hab = tok_hash(buf + blk[q].ab_off, blk[q].la + blk[q].lb);
                tok_strmap_prefetch(&v->text_map, blk[q].ha);
                tok_strmap_prefetch(&v->text_map, blk[q].hb);
                tok_strmap_prefetch(&v->text_map, blk[q].hab);
            }
            for (int q = 0; q < nb; q++) { /* resolve symbols */
                if (!blk[q].ok) continue;
                const char *ab = buf + blk[q].ab_off;
                size_t lab = blk[q].la + blk[q].lb;
                int32_t r = tok_strmap_get_h(&v->text_map, ab, lab, blk[q].hab);
                if (r < 0) r = pass == 0 ? symbol_make(v, &ps, ab, lab) : tok_strmap_get(&ps.map, ab, lab);
                int32_t a = tok_strmap_get_h(&v->text_map, blk[q].a, blk[q].la, blk[q].ha);
                if (a < 0) a = tok_strmap_get(&ps.map, blk[q].a, blk[q].la);
                int32_t b = tok_strmap_get_h(&v->text_map, blk[q].b, blk[q].lb, blk[q].hb);
                if (b < 0) b = tok_strmap_get(&ps.map, blk[q].b, blk[q].lb);
                blk[q].ia = a, blk[q].ib = b, blk[q].ir = r;
                if (a >= 0 && b >= 0) tok_pairmap_prefetch(&v->merges, a, b);
            }
            for (int q = 0; q < nb; q++) { /* insert */
                if (!blk[q].ok) continue;
                int64_t i = pass == 0 ? j0 + q : retry[j0 + q];
                if (blk[q].ia < 0 || blk[q].ib < 0) {
                    if (pass == 0) {
                        retry = herd_xrealloc(retry, (size_t)(n_retry + 1) * sizeof(*retry));
                        retry[n_retry++] = i;
                    }
                    continue;
                }
                tok_pairmap_put(&v->merges, blk[q].ia, blk[q].ib, (int32_t)i, blk[q].ir);
            }
        }
    }
    free(buf);
    free(retry);
    tok_strmap_free(&ps.map);
    free(ps.arena);
    if (v->n_pseudo)
        herd_log(1, "tokenizer: %s: %d merge results are not tokens (byte fallback for those)", what,
                 v->n_pseudo);
    return 0;
}

/* ---- tokenize -------------------------------------------------------------------------------- */

typedef struct {
    int32_t id;         /* symbol id; -1 once merged into its left neighbour */
    int32_t prev, next; /* neighbours in the piece, -1 at the ends */
    uint32_t start;     /* first byte in the piece */
} bpe_sym;

typedef struct {
    uint64_t key; /* (rank << 32) | left index: the heap's order, smallest first */
    int32_t lid;  /* symbol ids of left and right when pushed */
    int32_t rid;
    int32_t result;
} bpe_cand;

/* Piece cache for one tokenize call: words repeat, so a direct-mapped table (a new piece evicts
 * the one in its slot) maps recent pieces to their ids. Pieces up to CACHE_MAX_PIECE bytes are
 * cached; keys and ids live in append-only arenas, so memory stays O(input). Only large texts use
 * it (small ones would pay for the table without reusing it). */
#define CACHE_MAX_SLOTS 16384
#define CACHE_MAX_PIECE 48
#define CACHE_MIN_TEXT 4096

typedef struct {
    uint64_t hash;
    uint32_t key_off, ids_off; /* into keys / ids arenas */
    uint16_t key_len, n_ids;   /* key_len 0 = empty slot */
} cache_slot;

struct tok_bpe_scratch {
    bpe_sym *sym;
    size_t sym_cap;
    bpe_cand *heap;
    size_t heap_n, heap_cap;
    cache_slot *slots; /* n_slots (a power of two), or NULL when the cache is off */
    size_t n_slots;
    uint8_t *keys;
    size_t keys_n, keys_cap;
    int32_t *ids;
    size_t ids_n, ids_cap;
};

tok_bpe_scratch *tok_bpe_scratch_new(void) {
    return herd_xcalloc(1, sizeof(tok_bpe_scratch));
}

void tok_bpe_scratch_free(tok_bpe_scratch *w) {
    if (!w) return;
    free(w->sym);
    free(w->heap);
    free(w->slots);
    free(w->keys);
    free(w->ids);
    free(w);
}

static void heap_push(tok_bpe_scratch *w, bpe_cand c) {
    if (w->heap_n == w->heap_cap) {
        w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 64;
        w->heap = herd_xrealloc(w->heap, w->heap_cap * sizeof(*w->heap));
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (w->heap[parent].key <= c.key) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = c;
}

static bpe_cand heap_pop(tok_bpe_scratch *w) {
    bpe_cand top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && w->heap[c + 1].key < w->heap[c].key) c++;
        if (last.key <= w->heap[c].key) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void try_pair(const herd_vocab *v, tok_bpe_scratch *w, int32_t left) {
    if (left < 0) return;
    int32_t right = w->sym[left].next;
    if (right < 0) return;
    const tok_pair_slot *m = tok_pairmap_get(&v->merges, w->sym[left].id, w->sym[right].id);
    if (!m) return;
    bpe_cand c = {((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)left, w->sym[left].id, w->sym[right].id,
                  m->result};
    heap_push(w, c);
}

static void emit_symbol(const herd_vocab *v, const uint8_t *s, size_t from, size_t to, int32_t id,
                        tok_ids *out) {
    if (id < v->n_tokens) {
        tok_ids_push(out, id);
        return;
    }
    for (size_t i = from; i < to; i++) {
        uint8_t b = s[i];
        for (int k = 0; k < v->byte_char_len[b]; k++) {
            int32_t t = tok_strmap_get(&v->text_map, (const char *)&v->byte_char[b][k], 1);
            if (t >= 0) tok_ids_push(out, t);
        }
    }
}

static int bpe_piece(const herd_vocab *v, tok_bpe_scratch *w, const uint8_t *s, size_t n, tok_ids *out) {
    if (v->ignore_merges) {
        int32_t id = tok_strmap_get(&v->raw_map, (const char *)s, n);
        if (id >= 0) {
            tok_ids_push(out, id);
            return 0;
        }
    }
    if (n == 1) {
        emit_symbol(v, s, 0, 1, v->byte_sym[s[0]], out);
        return 0;
    }
    if (n > INT32_MAX) return herd_err(HERD_E_RANGE, "tokenizer: a piece of %zu bytes is too long", n);
    if (n > w->sym_cap) {
        free(w->sym);
        w->sym_cap = n < 64 ? 64 : n;
        w->sym = malloc(w->sym_cap * sizeof(*w->sym));
        if (!w->sym) {
            w->sym_cap = 0;
            return herd_err(HERD_E_NOMEM, "tokenizer: out of memory for a piece of %zu bytes", n);
        }
    }
    bpe_sym *sym = w->sym;
    for (size_t i = 0; i < n; i++)
        sym[i] = (bpe_sym){v->byte_sym[s[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, (uint32_t)i};
    w->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(v, w, (int32_t)i);

    while (w->heap_n) {
        bpe_cand c = heap_pop(w);
        int32_t left = (int32_t)(uint32_t)c.key;
        int32_t right = sym[left].next;
        if (sym[left].id != c.lid || right < 0 || sym[right].id != c.rid) continue; /* stale */
        sym[left].id = c.result;
        sym[left].next = sym[right].next;
        if (sym[right].next >= 0) sym[sym[right].next].prev = left;
        sym[right].id = -1;
        try_pair(v, w, sym[left].prev);
        try_pair(v, w, left);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        size_t to = sym[i].next >= 0 ? sym[sym[i].next].start : n;
        emit_symbol(v, s, sym[i].start, to, sym[i].id, out);
    }
    return 0;
}

/* Appends to the arenas; false when out of memory or past 32-bit offsets (then the piece is simply
 * not cached). */
static bool arena_reserve(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    if (need > UINT32_MAX) return false;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q, *cap = c;
    return true;
}

static int cached_piece(const herd_vocab *v, tok_bpe_scratch *w, const uint8_t *s, size_t n, tok_ids *out) {
    uint64_t h = tok_hash(s, n);
    cache_slot *slot = &w->slots[h & (w->n_slots - 1)];
    if (slot->key_len == n && slot->hash == h && memcmp(w->keys + slot->key_off, s, n) == 0) {
        for (uint16_t i = 0; i < slot->n_ids; i++) tok_ids_push(out, w->ids[slot->ids_off + i]);
        return 0;
    }
    int64_t before = out->n;
    int rc = bpe_piece(v, w, s, n, out);
    if (rc < 0 || out->oom) return rc;
    size_t k = (size_t)(out->n - before);
    if (k > UINT16_MAX || !arena_reserve((void **)&w->keys, &w->keys_cap, w->keys_n + n, 1) ||
        !arena_reserve((void **)&w->ids, &w->ids_cap, w->ids_n + k, sizeof(int32_t)))
        return 0;
    memcpy(w->keys + w->keys_n, s, n);
    memcpy(w->ids + w->ids_n, out->p + before, k * sizeof(int32_t));
    *slot = (cache_slot){h, (uint32_t)w->keys_n, (uint32_t)w->ids_n, (uint16_t)n, (uint16_t)k};
    w->keys_n += n;
    w->ids_n += k;
    return 0;
}

int tok_bpe_fragment(const herd_vocab *v, tok_bpe_scratch *w, const uint8_t *s, size_t n, tok_ids *out) {
    if (n >= CACHE_MIN_TEXT && !w->slots) { /* about one slot per 16 bytes of text; NULL: no cache */
        w->n_slots = 256;
        while (w->n_slots < CACHE_MAX_SLOTS && w->n_slots * 16 < n) w->n_slots *= 2;
        w->slots = calloc(w->n_slots, sizeof(cache_slot));
    }
    for (size_t pos = 0; pos < n;) {
        size_t end = pretok_llama3_next(s, pos, n);
        HERD_ASSERT(end > pos && end <= n);
        size_t len = end - pos;
        int rc = (w->slots && len <= CACHE_MAX_PIECE) ? cached_piece(v, w, s + pos, len, out)
                                                      : bpe_piece(v, w, s + pos, len, out);
        if (rc < 0) return rc;
        pos = end;
    }
    return 0;
}
