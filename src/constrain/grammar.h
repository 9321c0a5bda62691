/* Constrained decoding, part 1: a byte-level grammar and its incremental recognizer.
 *
 * A grammar is a set of rules; a rule is a list of alternatives; an alternative is a sequence of
 * elements ending in G_END. Elements: G_SET (one byte from a 256-bit set), G_REF (a rule), G_STR
 * (the content of a JSON string between its quotes — plain characters as well-formed UTF-8, and
 * JSON escapes, escapes of surrogates (backslash-u D800-DFFF) excepted so that each escape is one character —
 * with a length in characters between min and max; native because a length bound would otherwise need one
 * rule per character). Rule 0 is the start rule. Grammars come from schema.c; they must not be left-recursive
 * (the recognizer bounds its expansion depth and drops what goes deeper, so a bad grammar restricts the
 * language instead of looping).
 *
 * The recognizer is a pushdown automaton run on a *set* of stacks (the grammar may be ambiguous:
 * anyOf branches that share a prefix). A stack is a chain of nodes in an arena (node = position of
 * the next element + a parent continuation + aux, the G_STR sub-state); stacks share their tails,
 * so advancing by a byte allocates only the new tops. A state is at most GR_MAX_STACKS tops; a top
 * is a node whose element is G_SET or G_STR, or GR_ACCEPT (the document is complete). Extra stacks
 * beyond the limit are dropped: every stack can still be completed, so dropping one restricts the
 * language but never yields invalid output.
 */
#ifndef HERD_CONSTRAIN_GRAMMAR_H
#define HERD_CONSTRAIN_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { G_END = 0, G_SET = 1, G_REF = 2, G_STR = 3 };

typedef struct {
    uint8_t kind;
    int32_t arg; /* G_SET: set index; G_REF: rule; G_STR: index into str_min/str_max */
} gr_elem;

typedef struct {
    uint64_t bits[4];
} gr_set;

typedef struct {
    gr_elem *elems;
    int32_t n_elems;
    int32_t *alt_start; /* element index of each alternative */
    int32_t *rule_alt;  /* rule r's alternatives: alt_start[rule_alt[r] .. rule_alt[r+1]) */
    int32_t n_rules;
    gr_set *sets;
    int32_t n_sets;
    int32_t *str_min, *str_max; /* max < 0: unbounded */
    int32_t n_strs;
} grammar;

void grammar_free(grammar *g);

/* ---- builder -------------------------------------------------------------------------------- */

typedef struct {
    gr_elem *p;
    int32_t n, cap;
} gr_seq;

typedef struct {
    gr_seq **alts; /* per rule: its alternatives, each a sequence */
    int32_t *n_alts, *cap_alts;
    int32_t n_rules, cap_rules;
    gr_set *sets;
    int32_t n_sets, cap_sets;
    int32_t *str_min, *str_max;
    int32_t n_strs, cap_strs;
    int64_t size; /* elements so far, for the size limit */
} gr_builder;

#define GR_MAX_ELEMS 4000000

void grb_init(gr_builder *b);
void grb_free(gr_builder *b);
int32_t grb_rule(gr_builder *b); /* a new, empty rule */
/* Adds an alternative (copied; s may be reused); an empty sequence is the empty alternative. */
void grb_alt(gr_builder *b, int32_t rule, const gr_seq *s);
void seq_free(gr_seq *s);
void seq_set(gr_builder *b, gr_seq *s, const gr_set *set);
void seq_range(gr_builder *b, gr_seq *s, int lo, int hi); /* one byte in [lo, hi] */
void seq_byte(gr_builder *b, gr_seq *s, int c);
void seq_lit(gr_builder *b, gr_seq *s, const char *text, size_t n);
void seq_ref(gr_seq *s, int32_t rule);
void seq_str(gr_builder *b, gr_seq *s, int32_t min, int32_t max);
/* Moves the rules into g (rules never given an alternative match nothing). */
void grb_finish(gr_builder *b, grammar *g);

static inline void gr_set_add(gr_set *s, int c) {
    s->bits[c >> 6] |= 1ull << (c & 63);
}
static inline bool gr_set_has(const gr_set *s, int c) {
    return (s->bits[c >> 6] >> (c & 63)) & 1;
}

/* ---- recognizer ----------------------------------------------------------------------------- */

#define GR_ACCEPT (-2)
#define GR_MAX_STACKS 64

typedef struct {
    int32_t pos, parent; /* parent: node index or -1 (the bottom) */
    uint32_t aux;        /* G_STR: (characters << 5) | phase */
} gr_node;

typedef struct {
    int32_t n;
    int32_t top[GR_MAX_STACKS];
} gr_state;

typedef struct {
    const grammar *g;
    gr_node *nodes;
    int32_t n_nodes, cap_nodes;
} gr_arena;

void gra_init(gr_arena *a, const grammar *g);
void gra_free(gr_arena *a);
/* The start state (rule 0 expanded). */
void gr_start(gr_arena *a, gr_state *out);
/* Advances every stack of in by byte c into out (which may end up empty: c is not allowed). */
void gr_step(gr_arena *a, const gr_state *in, int c, gr_state *out);
bool gr_complete(const gr_state *s);
/* The most characters a top of s that sits at a character boundary of a G_STR can still take
 * (INT32_MAX when unbounded), or -1 when there is no such top: any run of that many plain string
 * characters keeps the state alive. */
int32_t gr_string_room(const gr_arena *a, const gr_state *s);

#endif
