#include "grammar.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"

/* ---- builder -------------------------------------------------------------------------------- */

void grb_init(gr_builder *b) {
    memset(b, 0, sizeof *b);
}

void grb_free(gr_builder *b) {
    for (int32_t r = 0; r < b->n_rules; r++) {
        for (int32_t i = 0; i < b->n_alts[r]; i++) seq_free(&b->alts[r][i]);
        free(b->alts[r]);
    }
    free(b->alts);
    free(b->n_alts);
    free(b->cap_alts);
    free(b->sets);
    free(b->str_min);
    free(b->str_max);
    memset(b, 0, sizeof *b);
}

int32_t grb_rule(gr_builder *b) {
    if (b->n_rules == b->cap_rules) {
        b->cap_rules = b->cap_rules ? 2 * b->cap_rules : 64;
        b->alts = herd_xrealloc(b->alts, (size_t)b->cap_rules * sizeof *b->alts);
        b->n_alts = herd_xrealloc(b->n_alts, (size_t)b->cap_rules * sizeof *b->n_alts);
        b->cap_alts = herd_xrealloc(b->cap_alts, (size_t)b->cap_rules * sizeof *b->cap_alts);
    }
    int32_t r = b->n_rules++;
    b->alts[r] = NULL;
    b->n_alts[r] = b->cap_alts[r] = 0;
    return r;
}

static void seq_push(gr_seq *s, gr_elem e) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->p = herd_xrealloc(s->p, (size_t)s->cap * sizeof *s->p);
    }
    s->p[s->n++] = e;
}

void grb_alt(gr_builder *b, int32_t rule, const gr_seq *s) {
    if (b->n_alts[rule] == b->cap_alts[rule]) {
        b->cap_alts[rule] = b->cap_alts[rule] ? 2 * b->cap_alts[rule] : 2;
        b->alts[rule] = herd_xrealloc(b->alts[rule], (size_t)b->cap_alts[rule] * sizeof(gr_seq));
    }
    gr_seq c = {0};
    for (int32_t i = 0; i < s->n; i++) seq_push(&c, s->p[i]);
    b->alts[rule][b->n_alts[rule]++] = c;
    b->size += s->n + 1;
}

void seq_free(gr_seq *s) {
    free(s->p);
    memset(s, 0, sizeof *s);
}

void seq_set(gr_builder *b, gr_seq *s, const gr_set *set) {
    int32_t i = 0;
    while (i < b->n_sets && memcmp(&b->sets[i], set, sizeof *set) != 0) i++;
    if (i == b->n_sets) {
        if (b->n_sets == b->cap_sets) {
            b->cap_sets = b->cap_sets ? 2 * b->cap_sets : 32;
            b->sets = herd_xrealloc(b->sets, (size_t)b->cap_sets * sizeof *b->sets);
        }
        b->sets[b->n_sets++] = *set;
    }
    seq_push(s, (gr_elem){G_SET, i});
}

void seq_range(gr_builder *b, gr_seq *s, int lo, int hi) {
    gr_set set = {{0}};
    for (int c = lo; c <= hi; c++) gr_set_add(&set, c);
    seq_set(b, s, &set);
}

void seq_byte(gr_builder *b, gr_seq *s, int c) {
    seq_range(b, s, c, c);
}

void seq_lit(gr_builder *b, gr_seq *s, const char *text, size_t n) {
    for (size_t i = 0; i < n; i++) seq_byte(b, s, (uint8_t)text[i]);
}

void seq_ref(gr_seq *s, int32_t rule) {
    seq_push(s, (gr_elem){G_REF, rule});
}

void seq_str(gr_builder *b, gr_seq *s, int32_t min, int32_t max) {
    if (b->n_strs == b->cap_strs) {
        b->cap_strs = b->cap_strs ? 2 * b->cap_strs : 16;
        b->str_min = herd_xrealloc(b->str_min, (size_t)b->cap_strs * sizeof *b->str_min);
        b->str_max = herd_xrealloc(b->str_max, (size_t)b->cap_strs * sizeof *b->str_max);
    }
    b->str_min[b->n_strs] = min;
    b->str_max[b->n_strs] = max;
    seq_push(s, (gr_elem){G_STR, b->n_strs++});
}

void grb_finish(gr_builder *b, grammar *g) {
    memset(g, 0, sizeof *g);
    int64_t n_el = 0, n_alt = 0;
    for (int32_t r = 0; r < b->n_rules; r++) {
        n_alt += b->n_alts[r];
        for (int32_t i = 0; i < b->n_alts[r]; i++) n_el += b->alts[r][i].n + 1;
    }
    g->elems = herd_xmalloc((size_t)(n_el + 1) * sizeof *g->elems);
    g->alt_start = herd_xmalloc((size_t)(n_alt + 1) * sizeof *g->alt_start);
    g->rule_alt = herd_xmalloc((size_t)(b->n_rules + 1) * sizeof *g->rule_alt);
    int32_t e = 0, a = 0;
    for (int32_t r = 0; r < b->n_rules; r++) {
        g->rule_alt[r] = a;
        for (int32_t i = 0; i < b->n_alts[r]; i++) {
            g->alt_start[a++] = e;
            for (int32_t k = 0; k < b->alts[r][i].n; k++) g->elems[e++] = b->alts[r][i].p[k];
            g->elems[e++] = (gr_elem){G_END, 0};
        }
    }
    g->rule_alt[b->n_rules] = a;
    g->n_elems = e;
    g->n_rules = b->n_rules;
    g->sets = b->sets;
    g->n_sets = b->n_sets;
    g->str_min = b->str_min;
    g->str_max = b->str_max;
    g->n_strs = b->n_strs;
    b->sets = NULL;
    b->str_min = b->str_max = NULL;
    grb_free(b);
}

void grammar_free(grammar *g) {
    if (!g) return;
    free(g->elems);
    free(g->alt_start);
    free(g->rule_alt);
    free(g->sets);
    free(g->str_min);
    free(g->str_max);
    memset(g, 0, sizeof *g);
}

/* ---- recognizer ----------------------------------------------------------------------------- */

/* G_STR phases (aux & 31) */
enum {
    PH_CHAR = 0, /* at a character boundary */
    PH_CONT1,    /* 1, 2, 3 continuation bytes (80-BF) to go */
    PH_CONT2,
    PH_CONT3,
    PH_E0, /* after E0: A0-BF, then one more */
    PH_ED, /* after ED: 80-9F, then one more (no surrogates) */
    PH_F0, /* after F0: 90-BF, then two more */
    PH_F4, /* after F4: 80-8F, then two more */
    PH_ESC,
    PH_HEX4, /* \u: 4, 3, 2, 1 hex digits to go */
    PH_HEX3,
    PH_HEX2,
    PH_HEX1,
    PH_HEXD, /* \uD: 0-7 next (no surrogate escapes: each \u is one character), then 2 more */
};

void gra_init(gr_arena *a, const grammar *g) {
    memset(a, 0, sizeof *a);
    a->g = g;
}

void gra_free(gr_arena *a) {
    free(a->nodes);
    memset(a, 0, sizeof *a);
}

static int32_t alloc_node(gr_arena *a, int32_t pos, int32_t parent, uint32_t aux) {
    if (a->n_nodes == a->cap_nodes) {
        a->cap_nodes = a->cap_nodes ? 2 * a->cap_nodes : 1024;
        a->nodes = herd_xrealloc(a->nodes, (size_t)a->cap_nodes * sizeof *a->nodes);
    }
    a->nodes[a->n_nodes] = (gr_node){pos, parent, aux};
    return a->n_nodes++;
}

static void add_top(gr_arena *a, gr_state *out, int32_t pos, int32_t parent, uint32_t aux, int32_t self) {
    for (int32_t i = 0; i < out->n; i++) {
        int32_t t = out->top[i];
        if (t == GR_ACCEPT) continue;
        const gr_node *n = &a->nodes[t];
        if (n->pos == pos && n->parent == parent && n->aux == aux) return;
    }
    if (out->n == GR_MAX_STACKS) return; /* dropped: see grammar.h */
    out->top[out->n++] = self >= 0 ? self : alloc_node(a, pos, parent, aux);
}

static void add_accept(gr_state *out) {
    for (int32_t i = 0; i < out->n; i++)
        if (out->top[i] == GR_ACCEPT) return;
    if (out->n < GR_MAX_STACKS) out->top[out->n++] = GR_ACCEPT;
}

#define GR_MAX_DEPTH 128

/* Adds the tops reachable from "next element pos, then parent" without consuming a byte. */
static void expand(gr_arena *a, int32_t pos, int32_t parent, uint32_t aux, int32_t self, gr_state *out,
                   int depth) {
    const grammar *g = a->g;
    if (depth > GR_MAX_DEPTH) return;
    for (;;) {
        gr_elem e = g->elems[pos];
        if (e.kind == G_END) {
            if (parent < 0) {
                add_accept(out);
                return;
            }
            self = parent;
            pos = a->nodes[parent].pos;
            aux = a->nodes[parent].aux;
            parent = a->nodes[parent].parent;
            continue;
        }
        if (e.kind == G_SET) {
            add_top(a, out, pos, parent, aux, self);
            return;
        }
        if (e.kind == G_STR) {
            add_top(a, out, pos, parent, aux, self);
            int32_t min = g->str_min[e.arg];
            if ((aux & 31) == PH_CHAR && (int32_t)(aux >> 5) >= min)
                expand(a, pos + 1, parent, 0, -1, out, depth + 1);
            return;
        }
        /* G_REF: the continuation is the next element, unless the alternative ends there (so
         * right recursion does not grow the stack) */
        int32_t cont = parent;
        if (g->elems[pos + 1].kind != G_END) cont = alloc_node(a, pos + 1, parent, 0);
        for (int32_t k = g->rule_alt[e.arg]; k < g->rule_alt[e.arg + 1]; k++)
            expand(a, g->alt_start[k], cont, 0, -1, out, depth + 1);
        return;
    }
}

void gr_start(gr_arena *a, gr_state *out) {
    out->n = 0;
    const grammar *g = a->g;
    for (int32_t k = g->rule_alt[0]; k < g->rule_alt[1]; k++) expand(a, g->alt_start[k], -1, 0, -1, out, 0);
}

/* The G_STR sub-state after byte c, or UINT32_MAX when c cannot come next. */
static uint32_t str_step(uint32_t aux, int c, int32_t min, int32_t max) {
    uint32_t ph = aux & 31, n = aux >> 5;
    bool cont = c >= 0x80 && c <= 0xBF;
    switch (ph) {
    case PH_CHAR: {
        if (max >= 0 && (int32_t)n >= max) return UINT32_MAX;
        if (c < 0x20 || c == '"') return UINT32_MAX;
        uint32_t next;
        if (c == '\\')
            next = PH_ESC;
        else if (c < 0x80)
            next = PH_CHAR;
        else if (c >= 0xC2 && c <= 0xDF)
            next = PH_CONT1;
        else if (c == 0xE0)
            next = PH_E0;
        else if (c == 0xED)
            next = PH_ED;
        else if (c >= 0xE1 && c <= 0xEF)
            next = PH_CONT2;
        else if (c == 0xF0)
            next = PH_F0;
        else if (c >= 0xF1 && c <= 0xF3)
            next = PH_CONT3;
        else if (c == 0xF4)
            next = PH_F4;
        else
            return UINT32_MAX;
        n++;
        if (max < 0 && (int32_t)n > min) n = (uint32_t)min; /* only "reached min" matters */
        return (n << 5) | next;
    }
    case PH_CONT1:
        return cont ? (n << 5) | PH_CHAR : UINT32_MAX;
    case PH_CONT2:
        return cont ? (n << 5) | PH_CONT1 : UINT32_MAX;
    case PH_CONT3:
        return cont ? (n << 5) | PH_CONT2 : UINT32_MAX;
    case PH_E0:
        return c >= 0xA0 && c <= 0xBF ? (n << 5) | PH_CONT1 : UINT32_MAX;
    case PH_ED:
        return c >= 0x80 && c <= 0x9F ? (n << 5) | PH_CONT1 : UINT32_MAX;
    case PH_F0:
        return c >= 0x90 && c <= 0xBF ? (n << 5) | PH_CONT2 : UINT32_MAX;
    case PH_F4:
        return c >= 0x80 && c <= 0x8F ? (n << 5) | PH_CONT2 : UINT32_MAX;
    case PH_ESC:
        if (c == 'u') return (n << 5) | PH_HEX4;
        return strchr("\"\\/bfnrt", c) && c ? (n << 5) | PH_CHAR : UINT32_MAX;
    case PH_HEXD:
        return c >= '0' && c <= '7' ? (n << 5) | PH_HEX2 : UINT32_MAX;
    default: { /* PH_HEX4..PH_HEX1 */
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex) return UINT32_MAX;
        if (ph == PH_HEX4 && (c == 'd' || c == 'D')) return (n << 5) | PH_HEXD;
        return (n << 5) | (ph == PH_HEX1 ? PH_CHAR : ph + 1);
    }
    }
}

void gr_step(gr_arena *a, const gr_state *in, int c, gr_state *out) {
    const grammar *g = a->g;
    out->n = 0;
    for (int32_t i = 0; i < in->n; i++) {
        int32_t t = in->top[i];
        if (t == GR_ACCEPT) continue;
        gr_node n = a->nodes[t];
        gr_elem e = g->elems[n.pos];
        if (e.kind == G_SET) {
            if (gr_set_has(&g->sets[e.arg], c)) expand(a, n.pos + 1, n.parent, 0, -1, out, 0);
        } else { /* G_STR */
            uint32_t aux = str_step(n.aux, c, g->str_min[e.arg], g->str_max[e.arg]);
            if (aux != UINT32_MAX) expand(a, n.pos, n.parent, aux, -1, out, 0);
        }
    }
}

bool gr_complete(const gr_state *s) {
    for (int32_t i = 0; i < s->n; i++)
        if (s->top[i] == GR_ACCEPT) return true;
    return false;
}

int32_t gr_string_room(const gr_arena *a, const gr_state *s) {
    int32_t best = -1;
    for (int32_t i = 0; i < s->n; i++) {
        int32_t t = s->top[i];
        if (t == GR_ACCEPT) continue;
        const gr_node *n = &a->nodes[t];
        gr_elem e = a->g->elems[n->pos];
        if (e.kind != G_STR || (n->aux & 31) != PH_CHAR) continue;
        int32_t max = a->g->str_max[e.arg];
        int32_t room = max < 0 ? INT32_MAX : max - (int32_t)(n->aux >> 5);
        if (room > best) best = room;
    }
    return best;
}
