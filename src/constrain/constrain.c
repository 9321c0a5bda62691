/* The herd_constraint_* functions of herd.h: a compiled schema (schema.c), its recognizer state
 * (grammar.c) and the vocabulary's token trie (mask.c).
 *
 * End of generation: the model's end tokens (EOS/EOT/EOM, vocab_is_eog) are allowed exactly when
 * the text so far is a complete document; once the document cannot go on (a closed top-level object
 * or array), they are the only tokens allowed — no trailing whitespace. Should a state ever allow
 * no token at all (a vocabulary without single-byte tokens), the end tokens are allowed so that
 * generation stops instead of sampling from nothing. */
#include "constrain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../model/model.h"
#include "mask.h"
#include "schema.h"

#define MEMO_N 2
#define MEMO_TOPS 8

struct herd_constraint {
    const herd_vocab *v;
    tok_trie *trie;
    grammar g;
    gr_arena a;
    gr_state cur;
    int32_t n_vocab;
    uint8_t *allowed;    /* [n_vocab], valid when mask_ok */
    int32_t *eog, n_eog; /* the end-of-generation ids */
    bool mask_ok;
    int64_t n_allowed;
    /* masks of recent states, by exact content: inside an unbounded string every token leaves the
     * state as it was (same element, same parent, same sub-state), so its mask is reused */
    struct {
        int32_t n; /* tops; -1: empty slot */
        gr_node key[MEMO_TOPS];
        uint8_t *mask;
        int64_t n_allowed;
    } memo[MEMO_N];
    int memo_next;
    bool no_memo;
};

int constraint_new(const herd_vocab *v, const char *schema_json, herd_constraint **out) {
    *out = NULL;
    grammar g;
    int rc = schema_compile(schema_json, &g);
    if (rc) return rc;
    return constraint_new_grammar(v, &g, out);
}

int constraint_new_grammar(const herd_vocab *v, grammar *g, herd_constraint **out) {
    *out = NULL;
    herd_constraint *c = herd_xcalloc(1, sizeof *c);
    c->g = *g;
    memset(g, 0, sizeof *g);
    c->v = v;
    gra_init(&c->a, &c->g);
    gr_start(&c->a, &c->cur);
    if (c->cur.n == 0) {
        herd_constraint_free(c);
        return herd_err(HERD_E_FORMAT, "json schema: no document satisfies it");
    }
    c->trie = tok_trie_get(v);
    c->n_vocab = tok_trie_n_vocab(c->trie);
    c->allowed = herd_xmalloc((size_t)c->n_vocab);
    c->eog = herd_xmalloc(16 * sizeof *c->eog);
    for (int32_t i = 0; i < c->n_vocab; i++)
        if (vocab_is_eog(v, i)) {
            if (c->n_eog % 16 == 0) c->eog = herd_xrealloc(c->eog, (size_t)(c->n_eog + 16) * sizeof *c->eog);
            c->eog[c->n_eog++] = i;
        }
    for (int i = 0; i < MEMO_N; i++) c->memo[i].n = -1;
    *out = c;
    return 0;
}

int herd_constraint_json_schema(const herd_model *m, const char *schema_json, herd_constraint **out) {
    if (!m || !out) return herd_err(HERD_E_ARG, "herd_constraint_json_schema: NULL argument");
    return constraint_new(m->vocab, schema_json, out);
}

void herd_constraint_free(herd_constraint *c) {
    if (!c) return;
    tok_trie_release(c->trie);
    gra_free(&c->a);
    grammar_free(&c->g);
    free(c->allowed);
    free(c->eog);
    for (int i = 0; i < MEMO_N; i++) free(c->memo[i].mask);
    free(c);
}

/* The state's content as a memo key (ACCEPT as pos -1); false when it has too many tops. */
static bool state_key(const herd_constraint *c, gr_node *key) {
    if (c->cur.n > MEMO_TOPS) return false;
    for (int32_t i = 0; i < c->cur.n; i++) {
        int32_t t = c->cur.top[i];
        key[i] = t == GR_ACCEPT ? (gr_node){-1, -1, 0} : c->a.nodes[t];
    }
    return true;
}

const uint8_t *constraint_mask(herd_constraint *c, int64_t *n_allowed) {
    if (!c->mask_ok) {
        gr_node key[MEMO_TOPS];
        bool keyed = !c->no_memo && state_key(c, key);
        int hit = -1;
        for (int i = 0; i < MEMO_N && keyed && hit < 0; i++)
            if (c->memo[i].n == c->cur.n && !memcmp(c->memo[i].key, key, (size_t)c->cur.n * sizeof *key))
                hit = i;
        if (hit >= 0) {
            memcpy(c->allowed, c->memo[hit].mask, (size_t)c->n_vocab);
            c->n_allowed = c->memo[hit].n_allowed;
        } else {
            memset(c->allowed, 0, (size_t)c->n_vocab);
            c->n_allowed = tok_trie_mask(c->trie, &c->a, &c->cur, c->allowed);
            if (gr_complete(&c->cur) || c->n_allowed == 0)
                for (int32_t i = 0; i < c->n_eog; i++) c->allowed[c->eog[i]] = 1, c->n_allowed++;
            if (keyed) {
                int m = c->memo_next;
                c->memo_next = (m + 1) % MEMO_N;
                if (!c->memo[m].mask) c->memo[m].mask = herd_xmalloc((size_t)c->n_vocab);
                memcpy(c->memo[m].mask, c->allowed, (size_t)c->n_vocab);
                memcpy(c->memo[m].key, key, (size_t)c->cur.n * sizeof *key);
                c->memo[m].n = c->cur.n;
                c->memo[m].n_allowed = c->n_allowed;
            }
        }
        c->mask_ok = true;
    }
    if (n_allowed) *n_allowed = c->n_allowed;
    return c->allowed;
}

/* One of the end tokens this constraint allows (the vocabulary's end-of-generation set unless
 * constraint_set_end_tokens narrowed it). */
static bool is_end(const herd_constraint *c, int32_t id) {
    for (int32_t i = 0; i < c->n_eog; i++)
        if (c->eog[i] == id) return true;
    return false;
}

void herd_constraint_apply(herd_constraint *c, float *logits) {
    const uint8_t *ok = constraint_mask(c, NULL);
    for (int32_t i = 0; i < c->n_vocab; i++)
        if (!ok[i]) logits[i] = -INFINITY;
}

int herd_constraint_accept(herd_constraint *c, int32_t id) {
    if (id < 0 || id >= c->n_vocab) return herd_err(HERD_E_ARG, "constraint: token %d out of range", (int)id);
    if (is_end(c, id)) {
        if (gr_complete(&c->cur) || (c->mask_ok && c->allowed[id])) return 0;
        return herd_err(HERD_E_ARG, "constraint: end of generation before the document is complete");
    }
    int32_t len;
    const uint8_t *p = tok_trie_bytes(c->trie, id, &len);
    if (!p) return herd_err(HERD_E_ARG, "constraint: token %d is not allowed in a document", (int)id);
    int32_t mark = c->a.n_nodes;
    gr_state s = c->cur, t;
    for (int32_t i = 0; i < len; i++) {
        gr_step(&c->a, &s, p[i], &t);
        if (t.n == 0) {
            c->a.n_nodes = mark;
            return herd_err(HERD_E_ARG, "constraint: token %d does not continue the document", (int)id);
        }
        s = t;
    }
    c->cur = s;
    c->mask_ok = false;
    return 0;
}

bool herd_constraint_complete(const herd_constraint *c) {
    return gr_complete(&c->cur);
}

bool constraint_can_continue(const herd_constraint *c) {
    for (int32_t i = 0; i < c->cur.n; i++)
        if (c->cur.top[i] != GR_ACCEPT) return true;
    return false;
}

bool constraint_token_ok(herd_constraint *c, int32_t id) {
    if (id < 0 || id >= c->n_vocab) return false;
    if (is_end(c, id)) return gr_complete(&c->cur);
    int32_t len;
    const uint8_t *p = tok_trie_bytes(c->trie, id, &len);
    if (!p) return false;
    int32_t mark = c->a.n_nodes;
    gr_state s = c->cur, t;
    bool ok = true;
    for (int32_t i = 0; i < len && ok; i++) {
        gr_step(&c->a, &s, p[i], &t);
        ok = t.n > 0;
        s = t;
    }
    c->a.n_nodes = mark;
    return ok;
}

void constraint_set_end_tokens(herd_constraint *c, const int32_t *ids, int32_t n) {
    c->eog = herd_xrealloc(c->eog, (size_t)(n > 0 ? n : 1) * sizeof *c->eog);
    memcpy(c->eog, ids, (size_t)n * sizeof *ids);
    c->n_eog = n;
    c->mask_ok = false;
    for (int i = 0; i < MEMO_N; i++) c->memo[i].n = -1;
}

void constraint_set_memo(herd_constraint *c, bool on) {
    c->no_memo = !on;
    c->mask_ok = false;
}
