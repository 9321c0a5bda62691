/* SentencePiece-style tokenizer for tokenizer.ggml.model = "llama" (Llama 2, TinyLlama, stories260K),
 * following llama.cpp's llm_tokenizer_spm:
 *  - the caller has replaced spaces by U+2581 and added the leading one (add_space_prefix);
 *  - the text is cut into UTF-8 characters, each one symbol. llama.cpp cuts by lead byte alone (a
 *    stray lead byte swallows the next bytes, even half of an escaped space, which then cannot
 *    come back as a space); herd cuts well-formed characters the same way but makes each invalid
 *    byte a symbol of its own (unicode.h), so invalid input still round-trips. Ids differ from
 *    llama.cpp's only for invalid UTF-8;
 *  - repeatedly, the adjacent pair whose concatenation is a token with the highest score is merged
 *    (leftmost on ties); a binary heap makes this O(n log n);
 *  - each final symbol is its token, or, when its text is no token (an unmerged character), its bytes
 *    as <0xXX> byte tokens.
 * Symbols are byte ranges of the text, so a merge is a range union and token lookups hash the bytes
 * in place.
 *
 * Chunking: merges only join symbols whose concatenation is a token. If no token has U+2581 after
 * anything but another U+2581 (true for Llama 2's and stories260K's vocabularies; checked at load),
 * no merge can cross the point just before a U+2581 that follows another character, so the text
 * is cut there and each word is merged on its own: the same result as merging the whole text at
 * once (merges in different words never compete), in small, cache-resident pieces.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "tok_internal.h"
#include "unicode.h"

static const char SPACE[] = "\xe2\x96\x81";

void tok_spm_init(herd_vocab *v) {
    v->spm_word_cut = true;
    for (int32_t id = 0; id < v->n_tokens && v->spm_word_cut; id++) {
        size_t n;
        const char *t = tok_text(v, id, &n);
        for (size_t k = 1; k + 3 <= n; k++) {
            if (memcmp(t + k, SPACE, 3) == 0 && !(k >= 3 && memcmp(t + k - 3, SPACE, 3) == 0)) {
                v->spm_word_cut = false;
                break;
            }
        }
    }
    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof(hex), "<0x%02X>", b);
        int32_t id = tok_strmap_get(&v->text_map, hex, 6);
        if (id < 0) {
            char one = (char)b;
            id = tok_strmap_get(&v->text_map, &one, 1);
        }
        if (id < 0) id = v->unk; /* llama.cpp throws here; herd degrades to <unk> (or drops the byte) */
        v->spm_byte_tok[b] = id;
    }
}

typedef struct {
    uint32_t start, len; /* byte range; len 0 once merged into its left neighbour */
    int32_t prev, next;
} spm_sym;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of left + right when pushed */
} spm_cand;

typedef struct {
    spm_cand *p;
    size_t n, cap;
} spm_heap;

/* heap order: highest score first, then smallest left index */
static bool before(const spm_cand *a, const spm_cand *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(spm_heap *h, spm_cand c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        spm_cand *p = realloc(h->p, cap * sizeof(*p));
        if (!p) return HERD_E_NOMEM;
        h->p = p, h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&c, &h->p[parent])) break;
        h->p[i] = h->p[parent];
        i = parent;
    }
    h->p[i] = c;
    return 0;
}

static spm_cand heap_pop(spm_heap *h) {
    spm_cand top = h->p[0], last = h->p[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&h->p[c + 1], &h->p[c])) c++;
        if (!before(&h->p[c], &last)) break;
        h->p[i] = h->p[c];
        i = c;
    }
    if (n) h->p[i] = last;
    return top;
}

static int try_pair(const herd_vocab *v, const uint8_t *s, spm_sym *sym, spm_heap *h, int32_t left,
                    int32_t right) {
    if (left < 0 || right < 0) return 0;
    uint32_t size = sym[left].len + sym[right].len;
    int32_t id = tok_strmap_get(&v->text_map, (const char *)s + sym[left].start, size);
    if (id < 0) return 0;
    spm_cand c = {v->score[id], left, right, size};
    return heap_push(h, c);
}

typedef struct {
    spm_sym *sym;
    size_t cap;
    spm_heap heap;
} spm_work;

/* Merges and emits s[0..n), one chunk (see the top of the file). */
static int spm_chunk(const herd_vocab *v, spm_work *w, const uint8_t *s, size_t n, tok_ids *out) {
    if (n > w->cap) {
        spm_sym *p = realloc(w->sym, n * sizeof(*p));
        if (!p) return HERD_E_NOMEM;
        w->sym = p, w->cap = n;
    }
    spm_sym *sym = w->sym;
    int32_t count = 0;
    for (size_t off = 0; off < n;) {
        uint32_t cp;
        size_t len = utf8_unit(s + off, n - off, &cp);
        sym[count] = (spm_sym){(uint32_t)off, (uint32_t)len, count - 1, -1};
        if (count > 0) sym[count - 1].next = count;
        count++;
        off += len;
    }
    spm_heap *h = &w->heap;
    h->n = 0;
    int rc = 0;
    for (int32_t i = 1; i < count && rc == 0; i++) rc = try_pair(v, s, sym, h, i - 1, i);
    while (h->n && rc == 0) {
        spm_cand c = heap_pop(h);
        spm_sym *l = &sym[c.left], *r = &sym[c.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != c.size) continue; /* stale */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = c.left;
        rc = try_pair(v, s, sym, h, l->prev, c.left);
        if (rc == 0) rc = try_pair(v, s, sym, h, c.left, l->next);
    }
    if (rc < 0) return rc;
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        int32_t id = tok_strmap_get(&v->text_map, (const char *)s + sym[i].start, sym[i].len);
        if (id >= 0) {
            tok_ids_push(out, id);
            continue;
        }
        for (uint32_t k = 0; k < sym[i].len; k++) {
            int32_t b = v->spm_byte_tok[s[sym[i].start + k]];
            if (b >= 0) tok_ids_push(out, b);
        }
    }
    return 0;
}

int tok_spm_fragment(const herd_vocab *v, const uint8_t *s, size_t n, tok_ids *out) {
    if (n == 0) return 0;
    if (n > INT32_MAX) return herd_err(HERD_E_RANGE, "tokenizer: a fragment of %zu bytes is too long", n);
    spm_work w = {0};
    int rc = 0;
    size_t start = 0;
    if (v->spm_word_cut) {
        for (size_t i = 1; i + 3 <= n && rc == 0; i++) {
            if (s[i] != 0xE2 || memcmp(s + i, SPACE, 3) != 0) continue;
            if (i >= 3 && memcmp(s + i - 3, SPACE, 3) == 0) continue;
            rc = spm_chunk(v, &w, s + start, i - start, out);
            start = i;
        }
    }
    if (rc == 0) rc = spm_chunk(v, &w, s + start, n - start, out);
    free(w.sym);
    free(w.heap.p);
    if (rc < 0) return herd_err(HERD_E_NOMEM, "tokenizer: out of memory for %zu bytes of text", n);
    return 0;
}
