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
static int64_t byte_decode(const herd_vocab *v, const int16_t *inv, const uint8_t *t, size_t n, uint8_t *out) {
    (void)v;
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

/* Symbol id of a merge operand or result: a token, or a pseudo symbol made for it. */
static int32_t symbol_of(herd_vocab *v, tok_strmap *pseudo, const char *s, size_t n, bool create) {
    int32_t id = tok_strmap_get(&v->text_map, s, n);
    if (id >= 0) return id;
    id = tok_strmap_get(pseudo, s, n);
    if (id >= 0 || !create) return id;
    char *copy = herd_xstrndup(s, n);
    v->pseudo_text = herd_xrealloc(v->pseudo_text, (size_t)(v->n_pseudo + 1) * sizeof(char *));
    v->pseudo_text[v->n_pseudo] = copy;
    id = v->n_tokens + v->n_pseudo++;
    tok_strmap_put(pseudo, copy, n, id);
    return id;
}

int tok_bpe_init(herd_vocab *v, const void *merges_kv, const char *what) {
    const gguf_kv *kv = merges_kv;
    byte_chars(v);

    int16_t inv[0x200]; /* byte char code point -> byte */
    for (int i = 0; i < 0x200; i++) inv[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = v->byte_char_len[b] == 1 ? v->byte_char[b][0]
                                               : ((uint32_t)(v->byte_char[b][0] & 0x1F) << 6) | (v->byte_char[b][1] & 0x3F);
        inv[cp] = (int16_t)b;
    }

    /* raw bytes of every token whose text is all byte chars (so ignore_merges and the final lookup
     * can work on raw bytes); special tokens like "<|eot_id|>" are printable ASCII and included */
    uint64_t total = v->text_off[v->n_tokens];
    v->raw_blob = herd_xmalloc(total ? total : 1);
    tok_strmap_init(&v->raw_map, v->n_tokens);
    uint64_t at = 0;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        size_t n;
        const char *t = tok_text(v, id, &n);
        int64_t k = byte_decode(v, inv, (const uint8_t *)t, n, (uint8_t *)v->raw_blob + at);
        if (k < 0) continue;
        tok_strmap_put(&v->raw_map, v->raw_blob + at, (size_t)k, id);
        at += (uint64_t)k;
    }

    /* pseudo symbols: byte chars and merge results that are not tokens */
    int64_t n_merges = kv ? (int64_t)kv->arr_n : 0;
    tok_strmap pseudo;
    tok_strmap_init(&pseudo, n_merges + 256);
    for (int b = 0; b < 256; b++)
        v->byte_sym[b] = symbol_of(v, &pseudo, (const char *)v->byte_char[b], v->byte_char_len[b], true);

    char *buf = NULL;
    size_t buf_cap = 0;
    for (int64_t i = 0; i < n_merges; i++) {
        const gguf_str *m = &kv->strs[i];
        if (m->len + 1 > buf_cap) {
            buf_cap = m->len * 2 + 16;
            buf = herd_xrealloc(buf, buf_cap);
        }
        /* "a b": split at the first space after position 0 (a merge of a space char is "Ġ Ġ" etc.) */
        const char *sp = m->len > 1 ? memchr(m->ptr + 1, ' ', m->len - 1) : NULL;
        if (!sp) continue;
        size_t la = (size_t)(sp - m->ptr), lb = m->len - la - 1;
        memcpy(buf, m->ptr, la);
        memcpy(buf + la, sp + 1, lb);
        symbol_of(v, &pseudo, buf, la + lb, true);
    }
    tok_pairmap_init(&v->merges, n_merges);
    for (int64_t i = 0; i < n_merges; i++) {
        const gguf_str *m = &kv->strs[i];
        const char *sp = m->len > 1 ? memchr(m->ptr + 1, ' ', m->len - 1) : NULL;
        if (!sp) continue;
        size_t la = (size_t)(sp - m->ptr), lb = m->len - la - 1;
        int32_t a = symbol_of(v, &pseudo, m->ptr, la, false);
        int32_t b = symbol_of(v, &pseudo, sp + 1, lb, false);
        if (a < 0 || b < 0) continue; /* an operand no merge can build: this merge never applies */
        memcpy(buf, m->ptr, la);
        memcpy(buf + la, sp + 1, lb);
        int32_t r = symbol_of(v, &pseudo, buf, la + lb, false);
        if (i > INT32_MAX) {
            free(buf);
            tok_strmap_free(&pseudo);
            return herd_err(HERD_E_FORMAT, "tokenizer: %s: too many merges (%lld)", what, (long long)n_merges);
        }
        tok_pairmap_put(&v->merges, a, b, (int32_t)i, r);
    }
    free(buf);
    tok_strmap_free(&pseudo);
    if (v->n_pseudo)
        herd_log(1, "tokenizer: %s: %d merge results are not tokens (byte fallback for those)", what, v->n_pseudo);
    return 0;
}

/* ---- tokenize -------------------------------------------------------------------------------- */

typedef struct {
    int32_t id;         /* symbol id; -1 once merged into its left neighbour */
    int32_t prev, next; /* neighbours in the piece, -1 at the ends */
    uint32_t start;     /* first byte in the piece */
} bpe_sym;

typedef struct {
    uint64_t key;  /* (rank << 32) | left index: the heap's order, smallest first */
    int32_t lid;   /* symbol ids of left and right when pushed */
    int32_t rid;
    int32_t result;
} bpe_cand;

struct tok_bpe_scratch {
    bpe_sym *sym;
    size_t sym_cap;
    bpe_cand *heap;
    size_t heap_n, heap_cap;
};

tok_bpe_scratch *tok_bpe_scratch_new(void) {
    return herd_xcalloc(1, sizeof(tok_bpe_scratch));
}

void tok_bpe_scratch_free(tok_bpe_scratch *w) {
    if (!w) return;
    free(w->sym);
    free(w->heap);
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
    bpe_cand c = {((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)left, w->sym[left].id, w->sym[right].id, m->result};
    heap_push(w, c);
}

static void emit_symbol(const herd_vocab *v, const uint8_t *s, size_t from, size_t to, int32_t id, tok_ids *out) {
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

int tok_bpe_fragment(const herd_vocab *v, tok_bpe_scratch *w, const uint8_t *s, size_t n, tok_ids *out) {
    for (size_t pos = 0; pos < n;) {
        size_t end = pretok_llama3_next(s, pos, n);
        HERD_ASSERT(end > pos && end <= n);
        int rc = bpe_piece(v, w, s + pos, end - pos, out);
        if (rc < 0) return rc;
        pos = end;
    }
    return 0;
}
