#include "schema.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"

#define WS_MAX 16     /* spaces/tabs after a newline */
#define INT_DIGITS 16 /* digits of an integer part / a fraction */
#define EXP_DIGITS 3
#define MAX_REPEAT 10000 /* minItems, maxItems - minItems */
#define MAX_NEST 256     /* schema nesting */

typedef struct {
    gr_builder *b;
    json_t *root;
    struct {
        json_t *s;
        int32_t rule;
    } * memo;
    int32_t n_memo, cap_memo;
    int32_t ws, value, string, number, integer, digits[INT_DIGITS + 1];
    int depth;
} sc;

static int32_t rule_of(sc *c, gr_seq *s) { /* a new rule with the one alternative s (freed) */
    int32_t r = grb_rule(c->b);
    grb_alt(c->b, r, s);
    seq_free(s);
    return r;
}

static void alt_free(sc *c, int32_t rule, gr_seq *s) { /* adds s as an alternative, frees it */
    grb_alt(c->b, rule, s);
    seq_free(s);
}

/* ws: "" | " " | "\n" [ \t]{0,WS_MAX} */
static int32_t ws_rule(sc *c) {
    if (c->ws >= 0) return c->ws;
    gr_builder *b = c->b;
    int32_t tail = grb_rule(b); /* [ \t]{0,0} */
    gr_seq s = {0};
    alt_free(c, tail, &s);
    for (int k = 1; k <= WS_MAX; k++) {
        int32_t r = grb_rule(b);
        alt_free(c, r, &s);
        gr_set sp = {{0}};
        gr_set_add(&sp, ' ');
        gr_set_add(&sp, '\t');
        seq_set(b, &s, &sp);
        seq_ref(&s, tail);
        alt_free(c, r, &s);
        tail = r;
    }
    c->ws = grb_rule(b);
    alt_free(c, c->ws, &s);
    seq_byte(b, &s, ' ');
    alt_free(c, c->ws, &s);
    seq_byte(b, &s, '\n');
    seq_ref(&s, tail);
    alt_free(c, c->ws, &s);
    return c->ws;
}

/* [0-9]{0,k} */
static int32_t digits(sc *c, int k) {
    if (c->digits[k] >= 0) return c->digits[k];
    gr_seq s = {0};
    int32_t r = grb_rule(c->b);
    alt_free(c, r, &s);
    if (k > 0) {
        seq_range(c->b, &s, '0', '9');
        seq_ref(&s, digits(c, k - 1));
        alt_free(c, r, &s);
    }
    return c->digits[k] = r;
}

/* -?(0|[1-9][0-9]{0,15}) */
static int32_t integer_rule(sc *c) {
    if (c->integer >= 0) return c->integer;
    gr_builder *b = c->b;
    gr_seq s = {0};
    int32_t mag = grb_rule(b);
    seq_byte(b, &s, '0');
    alt_free(c, mag, &s);
    seq_range(b, &s, '1', '9');
    seq_ref(&s, digits(c, INT_DIGITS - 1));
    alt_free(c, mag, &s);
    int32_t r = grb_rule(b);
    seq_ref(&s, mag);
    alt_free(c, r, &s);
    seq_byte(b, &s, '-');
    seq_ref(&s, mag);
    alt_free(c, r, &s);
    return c->integer = r;
}

static int32_t number_rule(sc *c) {
    if (c->number >= 0) return c->number;
    gr_builder *b = c->b;
    gr_seq s = {0};
    int32_t frac = grb_rule(b); /* ("." [0-9]{1,16})? */
    alt_free(c, frac, &s);
    seq_byte(b, &s, '.');
    seq_range(b, &s, '0', '9');
    seq_ref(&s, digits(c, INT_DIGITS - 1));
    alt_free(c, frac, &s);
    int32_t sign = grb_rule(b); /* [+-]? */
    alt_free(c, sign, &s);
    gr_set pm = {{0}};
    gr_set_add(&pm, '+');
    gr_set_add(&pm, '-');
    seq_set(b, &s, &pm);
    alt_free(c, sign, &s);
    int32_t exp = grb_rule(b); /* ([eE] [+-]? [0-9]{1,3})? */
    alt_free(c, exp, &s);
    gr_set e = {{0}};
    gr_set_add(&e, 'e');
    gr_set_add(&e, 'E');
    seq_set(b, &s, &e);
    seq_ref(&s, sign);
    seq_range(b, &s, '0', '9');
    seq_ref(&s, digits(c, EXP_DIGITS - 1));
    alt_free(c, exp, &s);
    seq_ref(&s, integer_rule(c));
    seq_ref(&s, frac);
    seq_ref(&s, exp);
    return c->number = rule_of(c, &s);
}

static int32_t string_rule(sc *c, int32_t min, int32_t max) {
    if (min == 0 && max < 0 && c->string >= 0) return c->string;
    gr_seq s = {0};
    seq_byte(c->b, &s, '"');
    seq_str(c->b, &s, min, max);
    seq_byte(c->b, &s, '"');
    int32_t r = rule_of(c, &s);
    if (min == 0 && max < 0) c->string = r;
    return r;
}

static int32_t lit_rule(sc *c, const char *t) {
    gr_seq s = {0};
    seq_lit(c->b, &s, t, strlen(t));
    return rule_of(c, &s);
}

/* "[" ws "]" | "[" ws item ws ("," ws item ws){min-1 .. max-1} "]" ; max < 0: unbounded */
static int32_t array_rule(sc *c, int32_t item, int64_t min, int64_t max) {
    gr_builder *b = c->b;
    int32_t ws = ws_rule(c);
    gr_seq s = {0};
    /* the optional tail: ("," ws item ws){0, max-min'} where min' = max(min, 1) */
    int64_t lo = min > 1 ? min : 1;
    int32_t tail = grb_rule(b);
    if (max < 0) { /* tail = "" | "," ws item ws tail */
        alt_free(c, tail, &s);
        seq_byte(b, &s, ',');
        seq_ref(&s, ws);
        seq_ref(&s, item);
        seq_ref(&s, ws);
        seq_ref(&s, tail);
        alt_free(c, tail, &s);
    } else {
        alt_free(c, tail, &s);
        for (int64_t k = 1; k <= max - lo; k++) {
            int32_t r = grb_rule(b);
            alt_free(c, r, &s);
            seq_byte(b, &s, ',');
            seq_ref(&s, ws);
            seq_ref(&s, item);
            seq_ref(&s, ws);
            seq_ref(&s, tail);
            alt_free(c, r, &s);
            tail = r;
        }
    }
    int32_t r = grb_rule(b);
    if (min == 0) {
        seq_byte(b, &s, '[');
        seq_ref(&s, ws);
        seq_byte(b, &s, ']');
        alt_free(c, r, &s);
    }
    if (max != 0) {
        seq_byte(b, &s, '[');
        seq_ref(&s, ws);
        seq_ref(&s, item);
        seq_ref(&s, ws);
        for (int64_t k = 1; k < lo; k++) {
            seq_byte(b, &s, ',');
            seq_ref(&s, ws);
            seq_ref(&s, item);
            seq_ref(&s, ws);
        }
        seq_ref(&s, tail);
        seq_byte(b, &s, ']');
        alt_free(c, r, &s);
    }
    return r;
}

/* ---- extra object keys: any key but the declared ones ---------------------------------------- */

typedef struct {
    const char **keys; /* raw UTF-8 */
    size_t *len;
    int n;
} keyset;

static bool plain_byte(int ch) {
    return ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\';
}

/* The rest of a key (then its closing quote) whose first `depth` bytes are a prefix shared by the
 * declared keys in `on` (a mask over ks); the key may not end as a declared one. */
static int32_t notkey_rule(sc *c, const keyset *ks, const bool *on, size_t depth, int32_t rest) {
    gr_builder *b = c->b;
    int32_t r = grb_rule(b);
    gr_seq s = {0};
    bool ends = false, child[256] = {false};
    for (int i = 0; i < ks->n; i++) {
        if (!on[i]) continue;
        if (ks->len[i] == depth)
            ends = true;
        else
            child[(uint8_t)ks->keys[i][depth]] = true;
    }
    /* at a character boundary: the byte before is not a lead/continuation still expecting more */
    bool mid = false;
    for (int i = 0; i < ks->n && !mid; i++) {
        if (!on[i] || ks->len[i] <= depth) continue;
        uint8_t nb = (uint8_t)ks->keys[i][depth];
        mid = nb >= 0x80 && nb <= 0xBF;
    }
    if (!mid) {
        if (!ends) {
            seq_byte(b, &s, '"');
            alt_free(c, r, &s);
        }
        /* diverge: a character no declared key has here, then any string */
        gr_set ascii = {{0}};
        bool any = false;
        for (int ch = 0x20; ch < 0x80; ch++)
            if (plain_byte(ch) && !child[ch]) gr_set_add(&ascii, ch), any = true;
        if (any) {
            seq_set(b, &s, &ascii);
            seq_ref(&s, rest);
            alt_free(c, r, &s);
        }
        static const struct {
            int lo, hi, c1lo, c1hi, more;
        } mb[] = {{0xC2, 0xDF, 0x80, 0xBF, 0}, {0xE0, 0xE0, 0xA0, 0xBF, 1}, {0xE1, 0xEC, 0x80, 0xBF, 1},
                  {0xED, 0xED, 0x80, 0x9F, 1}, {0xEE, 0xEF, 0x80, 0xBF, 1}, {0xF0, 0xF0, 0x90, 0xBF, 2},
                  {0xF1, 0xF3, 0x80, 0xBF, 2}, {0xF4, 0xF4, 0x80, 0x8F, 2}};
        for (size_t k = 0; k < sizeof mb / sizeof mb[0]; k++) {
            gr_set lead = {{0}};
            any = false;
            for (int ch = mb[k].lo; ch <= mb[k].hi; ch++)
                if (!child[ch]) gr_set_add(&lead, ch), any = true;
            if (!any) continue;
            seq_set(b, &s, &lead);
            seq_range(b, &s, mb[k].c1lo, mb[k].c1hi);
            for (int m = 0; m < mb[k].more; m++) seq_range(b, &s, 0x80, 0xBF);
            seq_ref(&s, rest);
            alt_free(c, r, &s);
        }
    }
    /* follow a declared key's spelling (not through a byte that would end or escape the string) */
    bool *sub = herd_xmalloc((size_t)ks->n + 1);
    for (int ch = 0; ch < 256; ch++) {
        if (!child[ch] || (ch < 0x80 && !plain_byte(ch))) continue;
        for (int i = 0; i < ks->n; i++)
            sub[i] = on[i] && ks->len[i] > depth && (uint8_t)ks->keys[i][depth] == ch;
        seq_byte(b, &s, ch);
        seq_ref(&s, notkey_rule(c, ks, sub, depth + 1, rest));
        alt_free(c, r, &s);
    }
    free(sub);
    return r;
}

/* ---- schemas -------------------------------------------------------------------------------- */

static int gen(sc *c, json_t *s, int32_t *out);

static bool annotation(const char *k) {
    static const char *const ann[] = {"title",    "description", "default",  "examples",
                                      "$schema",  "$id",         "$comment", "deprecated",
                                      "readOnly", "writeOnly",   "$defs",    "definitions"};
    for (size_t i = 0; i < sizeof ann / sizeof ann[0]; i++)
        if (!strcmp(k, ann[i])) return true;
    return false;
}

static int get_count(json_t *s, const char *k, int64_t *v) {
    json_t *x = json_object_get(s, k);
    if (!x) return 0;
    if (!json_is_integer(x) || json_integer_value(x) < 0)
        return herd_err(HERD_E_FORMAT, "json schema: '%s' must be a non-negative integer", k);
    *v = json_integer_value(x);
    return 0;
}

static int resolve_ref(sc *c, const char *ref, json_t **out) {
    if (ref[0] != '#')
        return herd_err(HERD_E_UNSUPPORTED, "json schema: '$ref' to '%s' (only local '#/...')", ref);
    json_t *cur = c->root;
    const char *p = ref + 1;
    while (*p) {
        if (*p != '/') return herd_err(HERD_E_FORMAT, "json schema: bad '$ref' '%s'", ref);
        p++;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char key[256];
        size_t k = 0;
        for (size_t i = 0; i < n && k < sizeof key - 1; i++) { /* JSON pointer escapes ~0 ~1 */
            if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
                key[k++] = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else
                key[k++] = p[i];
        }
        key[k] = 0;
        json_t *next = NULL;
        if (json_is_object(cur))
            next = json_object_get(cur, key);
        else if (json_is_array(cur))
            next = json_array_get(cur, (size_t)strtoul(key, NULL, 10));
        if (!next) return herd_err(HERD_E_FORMAT, "json schema: '$ref' '%s' does not resolve", ref);
        cur = next;
        p += n;
    }
    *out = cur;
    return 0;
}

static bool type_matches(json_t *v, const char *t) {
    if (!strcmp(t, "string")) return json_is_string(v);
    if (!strcmp(t, "integer"))
        return json_is_integer(v) ||
               (json_is_real(v) && json_real_value(v) == (double)(int64_t)json_real_value(v));
    if (!strcmp(t, "number")) return json_is_number(v);
    if (!strcmp(t, "boolean")) return json_is_boolean(v);
    if (!strcmp(t, "null")) return json_is_null(v);
    if (!strcmp(t, "object")) return json_is_object(v);
    if (!strcmp(t, "array")) return json_is_array(v);
    return false;
}

static const char *const TYPES[] = {"object", "array", "string", "number", "integer", "boolean", "null"};

static int any_value(sc *c, int32_t *out);

static int gen_object(sc *c, json_t *s, int32_t *out) {
    gr_builder *b = c->b;
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required"),
           *addl = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props))
        return herd_err(HERD_E_FORMAT, "json schema: 'properties' must be an object");
    if (req && !json_is_array(req))
        return herd_err(HERD_E_FORMAT, "json schema: 'required' must be an array");
    if (addl && !json_is_boolean(addl) && !json_is_object(addl))
        return herd_err(HERD_E_FORMAT, "json schema: 'additionalProperties' must be a boolean or a schema");
    size_t n_req = req ? json_array_size(req) : 0;
    for (size_t i = 0; i < n_req; i++)
        if (!json_is_string(json_array_get(req, i)))
            return herd_err(HERD_E_FORMAT, "json schema: 'required' must list strings");
    bool extra = !addl || !json_is_false(addl);
    /* declared keys: properties in order, then required keys not among them (any value) */
    size_t n_props = props ? json_object_size(props) : 0, n = 0;
    const char **keys = herd_xcalloc(n_props + n_req + 1, sizeof *keys);
    json_t **vals = herd_xcalloc(n_props + n_req + 1, sizeof *vals);
    bool *reqd = herd_xcalloc(n_props + n_req + 1, 1);
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v) {
        keys[n] = k;
        vals[n++] = v;
    }
    for (size_t i = 0; i < n_req; i++) {
        const char *rk = json_string_value(json_array_get(req, i));
        size_t j = 0;
        while (j < n && strcmp(keys[j], rk)) j++;
        if (j == n) {
            if (!extra) {
                free(keys), free(vals), free(reqd);
                return herd_err(
                    HERD_E_FORMAT,
                    "json schema: required key '%s' is not in 'properties' and additionalProperties is false",
                    rk);
            }
            keys[n] = rk;
            vals[n++] = json_true();
        }
        reqd[j] = true;
    }
    int rc = 0;
    int32_t ws = ws_rule(c), *kv = herd_xcalloc(n + 1, sizeof *kv);
    gr_seq sq = {0};
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (json_is_false(vals[i])) {
            if (reqd[i])
                rc = herd_err(HERD_E_FORMAT, "json schema: required key '%s' has schema false", keys[i]);
            kv[i] = -1;
            continue;
        }
        int32_t val;
        if ((rc = gen(c, vals[i], &val))) break;
        json_t *js = json_string(keys[i]);
        char *lit = js ? json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        json_decref(js);
        if (!lit) {
            rc = herd_err(HERD_E_FORMAT, "json schema: property name is not valid UTF-8");
            break;
        }
        seq_lit(b, &sq, lit, strlen(lit));
        free(lit);
        seq_ref(&sq, ws);
        seq_byte(b, &sq, ':');
        seq_ref(&sq, ws);
        seq_ref(&sq, val);
        seq_ref(&sq, ws);
        kv[i] = rule_of(c, &sq);
    }
    /* extra key-value pairs: C_extra = ("," ws EKV)*, F_extra = "" | EKV C_extra */
    int32_t c_next = grb_rule(b), f_next = grb_rule(b);
    if (rc == 0) {
        alt_free(c, c_next, &sq);
        alt_free(c, f_next, &sq);
        if (extra) {
            int32_t val;
            if (addl && json_is_object(addl))
                rc = gen(c, addl, &val);
            else
                rc = any_value(c, &val);
            if (rc == 0) {
                keyset ks = {keys, herd_xcalloc(n + 1, sizeof(size_t)), (int)n};
                bool *on = herd_xmalloc(n + 1);
                for (size_t i = 0; i < n; i++) ks.len[i] = strlen(keys[i]), on[i] = true;
                gr_seq rs = {0};
                seq_str(b, &rs, 0, -1);
                seq_byte(b, &rs, '"');
                int32_t rest = rule_of(c, &rs);
                seq_byte(b, &sq, '"');
                seq_ref(&sq, notkey_rule(c, &ks, on, 0, rest));
                seq_ref(&sq, ws);
                seq_byte(b, &sq, ':');
                seq_ref(&sq, ws);
                seq_ref(&sq, val);
                seq_ref(&sq, ws);
                int32_t ekv = rule_of(c, &sq);
                free(ks.len);
                free(on);
                seq_byte(b, &sq, ',');
                seq_ref(&sq, ws);
                seq_ref(&sq, ekv);
                seq_ref(&sq, c_next);
                alt_free(c, c_next, &sq);
                seq_ref(&sq, ekv);
                seq_ref(&sq, c_next);
                alt_free(c, f_next, &sq);
            }
        }
    }
    /* declared properties from the last: C_i (after an item) and F_i (nothing yet) */
    for (size_t ii = n; ii-- > 0 && rc == 0;) {
        int32_t ci = grb_rule(b), fi = grb_rule(b);
        if (kv[ii] >= 0) {
            seq_byte(b, &sq, ',');
            seq_ref(&sq, ws);
            seq_ref(&sq, kv[ii]);
            seq_ref(&sq, c_next);
            alt_free(c, ci, &sq);
            seq_ref(&sq, kv[ii]);
            seq_ref(&sq, c_next);
            alt_free(c, fi, &sq);
        }
        if (!reqd[ii]) {
            seq_ref(&sq, c_next);
            alt_free(c, ci, &sq);
            seq_ref(&sq, f_next);
            alt_free(c, fi, &sq);
        }
        c_next = ci;
        f_next = fi;
    }
    if (rc == 0) {
        seq_byte(b, &sq, '{');
        seq_ref(&sq, ws);
        seq_ref(&sq, f_next);
        seq_byte(b, &sq, '}');
        *out = rule_of(c, &sq);
    }
    seq_free(&sq);
    free(kv);
    free(keys);
    free(vals);
    free(reqd);
    return rc;
}

static int gen_typed(sc *c, json_t *s, const char *t, int32_t *out) {
    if (!strcmp(t, "object")) return gen_object(c, s, out);
    if (!strcmp(t, "array")) {
        json_t *items = json_object_get(s, "items");
        int64_t min = 0, max = -1;
        int rc;
        if ((rc = get_count(s, "minItems", &min)) || (rc = get_count(s, "maxItems", &max))) return rc;
        if (max >= 0 && min > max) return herd_err(HERD_E_FORMAT, "json schema: minItems > maxItems");
        if (min > MAX_REPEAT || (max >= 0 && max - min > MAX_REPEAT))
            return herd_err(HERD_E_UNSUPPORTED, "json schema: 'minItems'/'maxItems' beyond %d", MAX_REPEAT);
        int32_t item;
        if (items && json_is_false(items)) {
            if (min > 0) return herd_err(HERD_E_FORMAT, "json schema: minItems > 0 with items false");
            max = 0, item = -1;
        } else if (items) {
            if (!json_is_object(items) && !json_is_true(items))
                return herd_err(HERD_E_UNSUPPORTED,
                                "json schema: 'items' must be a schema (tuple form is not supported)");
            if ((rc = gen(c, items, &item))) return rc;
        } else if ((rc = any_value(c, &item)))
            return rc;
        *out = array_rule(c, item, min, max);
        return 0;
    }
    if (!strcmp(t, "string")) {
        int64_t min = 0, max = -1;
        int rc;
        if ((rc = get_count(s, "minLength", &min)) || (rc = get_count(s, "maxLength", &max))) return rc;
        if (max >= 0 && min > max) return herd_err(HERD_E_FORMAT, "json schema: minLength > maxLength");
        if (min > (1 << 24) || max > (1 << 24))
            return herd_err(HERD_E_UNSUPPORTED, "json schema: 'minLength'/'maxLength' beyond %d", 1 << 24);
        *out = string_rule(c, (int32_t)min, (int32_t)max);
        return 0;
    }
    if (!strcmp(t, "number")) return *out = number_rule(c), 0;
    if (!strcmp(t, "integer")) return *out = integer_rule(c), 0;
    if (!strcmp(t, "null")) return *out = lit_rule(c, "null"), 0;
    if (!strcmp(t, "boolean")) {
        int32_t r = lit_rule(c, "true");
        gr_seq q = {0};
        seq_lit(c->b, &q, "false", 5);
        alt_free(c, r, &q);
        return *out = r, 0;
    }
    return herd_err(HERD_E_UNSUPPORTED, "json schema: type '%s'", t);
}

static int any_value(sc *c, int32_t *out) {
    if (c->value >= 0) return *out = c->value, 0;
    gr_builder *b = c->b;
    int32_t r = c->value = grb_rule(b);
    json_t *empty = json_object();
    gr_seq q = {0};
    int rc = 0;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0] && rc == 0; i++) {
        if (!strcmp(TYPES[i], "integer")) continue; /* within number */
        int32_t t;
        if ((rc = gen_typed(c, empty, TYPES[i], &t))) break;
        seq_ref(&q, t);
        alt_free(c, r, &q);
    }
    json_decref(empty);
    return *out = r, rc;
}

static int32_t literal(sc *c, json_t *v) {
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    gr_seq q = {0};
    if (t) seq_lit(c->b, &q, t, strlen(t));
    free(t);
    return rule_of(c, &q);
}

static int gen_body(sc *c, json_t *s, int32_t r) {
    gr_builder *b = c->b;
    gr_seq q = {0};
    int rc = 0;
    if (json_is_true(s)) {
        int32_t v;
        if ((rc = any_value(c, &v))) return rc;
        seq_ref(&q, v);
        alt_free(c, r, &q);
        return 0;
    }
    if (json_is_false(s)) return herd_err(HERD_E_FORMAT, "json schema: schema false matches nothing");
    if (!json_is_object(s))
        return herd_err(HERD_E_FORMAT, "json schema: a schema must be an object or a boolean");
    static const char *const known[] = {"type",      "properties", "required", "additionalProperties",
                                        "items",     "enum",       "const",    "anyOf",
                                        "oneOf",     "allOf",      "minItems", "maxItems",
                                        "minLength", "maxLength",  "$ref"};
    const char *k;
    json_t *v;
    int n_constraints = 0;
    json_object_foreach(s, k, v) {
        if (annotation(k)) continue;
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] && strcmp(k, known[i])) i++;
        if (i == sizeof known / sizeof known[0])
            return herd_err(HERD_E_UNSUPPORTED, "json schema: keyword '%s' is not supported", k);
        n_constraints++;
    }
    /* keywords that stand alone (we cannot intersect grammars) */
    static const char *const alone[] = {"$ref", "anyOf", "oneOf", "allOf"};
    for (size_t i = 0; i < 4; i++) {
        json_t *x = json_object_get(s, alone[i]);
        if (!x) continue;
        if (n_constraints > 1) {
            json_object_foreach(s, k, v) if (!annotation(k) && strcmp(k, alone[i])) break;
            return herd_err(HERD_E_UNSUPPORTED, "json schema: '%s' combined with '%s' is not supported",
                            alone[i], k);
        }
        if (i == 0) {
            if (!json_is_string(x)) return herd_err(HERD_E_FORMAT, "json schema: '$ref' must be a string");
            json_t *t = NULL;
            int32_t tr;
            if ((rc = resolve_ref(c, json_string_value(x), &t)) || (rc = gen(c, t, &tr))) return rc;
            seq_ref(&q, tr);
            alt_free(c, r, &q);
            return 0;
        }
        if (!json_is_array(x) || json_array_size(x) == 0)
            return herd_err(HERD_E_FORMAT, "json schema: '%s' must be a non-empty array", alone[i]);
        if (i == 3 && json_array_size(x) != 1)
            return herd_err(HERD_E_UNSUPPORTED, "json schema: 'allOf' with more than one schema");
        size_t j;
        json_t *e;
        json_array_foreach(x, j, e) {
            int32_t er;
            if ((rc = gen(c, e, &er))) return rc;
            seq_ref(&q, er);
            alt_free(c, r, &q);
        }
        return 0;
    }
    /* types: explicit, or inferred from the keywords present */
    const char *types[8];
    int nt = 0;
    json_t *ty = json_object_get(s, "type");
    if (json_is_string(ty))
        types[nt++] = json_string_value(ty);
    else if (json_is_array(ty)) {
        size_t j;
        json_t *e;
        json_array_foreach(ty, j, e) {
            if (!json_is_string(e) || nt == 8)
                return herd_err(HERD_E_FORMAT, "json schema: bad 'type' array");
            types[nt++] = json_string_value(e);
        }
        if (nt == 0) return herd_err(HERD_E_FORMAT, "json schema: empty 'type' array");
    } else if (ty)
        return herd_err(HERD_E_FORMAT, "json schema: 'type' must be a string or an array");
    for (int i = 0; i < nt; i++) {
        size_t j = 0;
        while (j < 7 && strcmp(types[i], TYPES[j])) j++;
        if (j == 7) return herd_err(HERD_E_UNSUPPORTED, "json schema: type '%s'", types[i]);
    }
    json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    if (en || cn) {
        if (en && !json_is_array(en)) return herd_err(HERD_E_FORMAT, "json schema: 'enum' must be an array");
        size_t m = en ? json_array_size(en) : 1, added = 0;
        for (size_t j = 0; j < m; j++) {
            json_t *e = en ? json_array_get(en, j) : cn;
            bool ok = nt == 0;
            for (int i = 0; i < nt && !ok; i++) ok = type_matches(e, types[i]);
            if (cn && en && !json_equal(e, cn)) ok = false;
            if (!ok) continue;
            seq_ref(&q, literal(c, e));
            alt_free(c, r, &q);
            added++;
        }
        if (added == 0)
            return herd_err(HERD_E_FORMAT, "json schema: no value of 'enum'/'const' matches the schema");
        return 0;
    }
    if (nt == 0) {
        if (json_object_get(s, "properties") || json_object_get(s, "required") ||
            json_object_get(s, "additionalProperties"))
            types[nt++] = "object";
        else if (json_object_get(s, "items") || json_object_get(s, "minItems") ||
                 json_object_get(s, "maxItems"))
            types[nt++] = "array";
        else if (json_object_get(s, "minLength") || json_object_get(s, "maxLength"))
            types[nt++] = "string";
    }
    if (nt == 0) {
        int32_t vr;
        if ((rc = any_value(c, &vr))) return rc;
        seq_ref(&q, vr);
        alt_free(c, r, &q);
        return 0;
    }
    bool has_int = false, has_num = false;
    for (int i = 0; i < nt; i++)
        has_int |= !strcmp(types[i], "integer"), has_num |= !strcmp(types[i], "number");
    for (int i = 0; i < nt; i++) {
        if (has_int && has_num && !strcmp(types[i], "integer")) continue;
        int32_t tr;
        if ((rc = gen_typed(c, s, types[i], &tr))) return rc;
        seq_ref(&q, tr);
        alt_free(c, r, &q);
    }
    (void)b;
    return 0;
}

static int gen(sc *c, json_t *s, int32_t *out) {
    for (int32_t i = 0; i < c->n_memo; i++)
        if (c->memo[i].s == s) return *out = c->memo[i].rule, 0;
    if (c->depth >= MAX_NEST)
        return herd_err(HERD_E_UNSUPPORTED, "json schema: nested deeper than %d", MAX_NEST);
    if (c->b->size > GR_MAX_ELEMS) return herd_err(HERD_E_UNSUPPORTED, "json schema: too large a grammar");
    int32_t r = grb_rule(c->b);
    if (c->n_memo == c->cap_memo) {
        c->cap_memo = c->cap_memo ? 2 * c->cap_memo : 32;
        c->memo = herd_xrealloc(c->memo, (size_t)c->cap_memo * sizeof *c->memo);
    }
    c->memo[c->n_memo].s = s;
    c->memo[c->n_memo++].rule = r;
    c->depth++;
    int rc = gen_body(c, s, r);
    c->depth--;
    *out = r;
    return rc;
}

/* ---- checks on the finished rules ------------------------------------------------------------ */

#define MAX_FANOUT 4096

/* Stacks rule r expands to (saturating); the "starts with" graph is acyclic when this runs. */
static int64_t fanout(gr_builder *b, const bool *null, int64_t *paths, int32_t r) {
    if (paths[r] >= 0) return paths[r];
    paths[r] = MAX_FANOUT + 1; /* guards against a cycle (none: left recursion is refused first) */
    int64_t sum = 0;
    for (int32_t a = 0; a < b->n_alts[r] && sum <= MAX_FANOUT; a++) {
        gr_seq *q = &b->alts[r][a];
        int32_t k = 0;
        for (; k < q->n && sum <= MAX_FANOUT; k++) {
            gr_elem e = q->p[k];
            sum += e.kind == G_REF ? fanout(b, null, paths, e.arg) : 1;
            bool nl = (e.kind == G_REF && null[e.arg]) || (e.kind == G_STR && b->str_min[e.arg] == 0);
            if (!nl) break;
        }
        if (k == q->n) sum++; /* all nullable: the end of the alternative */
    }
    return paths[r] = sum > MAX_FANOUT ? MAX_FANOUT + 1 : sum;
}

/* Drops alternatives that can never finish (they reference rules that derive no finite text),
 * and refuses rules that reach themselves without consuming a byte (left recursion). */
static int check(gr_builder *b, int32_t start) {
    int32_t n = b->n_rules;
    bool *prod = herd_xcalloc((size_t)n, 1), *null = herd_xcalloc((size_t)n, 1);
    for (bool changed = true; changed;) {
        changed = false;
        for (int32_t r = 0; r < n; r++) {
            for (int32_t a = 0; a < b->n_alts[r]; a++) {
                bool p = true, nl = true;
                for (int32_t k = 0; k < b->alts[r][a].n; k++) {
                    gr_elem e = b->alts[r][a].p[k];
                    if (e.kind == G_REF)
                        p &= prod[e.arg], nl &= null[e.arg];
                    else if (e.kind == G_STR)
                        nl &= b->str_min[e.arg] == 0;
                    else
                        nl = false;
                }
                if (p && !prod[r]) prod[r] = changed = true;
                if (nl && !null[r]) null[r] = changed = true;
            }
        }
    }
    int rc = 0;
    if (!prod[start]) rc = herd_err(HERD_E_FORMAT, "json schema: no finite document satisfies it");
    for (int32_t r = 0; r < n && rc == 0; r++) { /* prune */
        int32_t w = 0;
        for (int32_t a = 0; a < b->n_alts[r]; a++) {
            bool p = true;
            for (int32_t k = 0; k < b->alts[r][a].n; k++)
                if (b->alts[r][a].p[k].kind == G_REF) p &= prod[b->alts[r][a].p[k].arg];
            if (p)
                b->alts[r][w++] = b->alts[r][a];
            else
                seq_free(&b->alts[r][a]);
        }
        b->n_alts[r] = w;
    }
    /* left recursion: DFS over "r may start with s" edges */
    uint8_t *mark = herd_xcalloc((size_t)n, 1); /* 0 new, 1 on the path, 2 done */
    int32_t *stack = herd_xmalloc((size_t)n * 2 * sizeof *stack), sp = 0;
    for (int32_t root = 0; root < n && rc == 0; root++) {
        if (mark[root]) continue;
        stack[sp++] = root, stack[sp++] = 0;
        mark[root] = 1;
        while (sp > 0 && rc == 0) {
            int32_t r = stack[sp - 2], *it = &stack[sp - 1], next = -1;
            /* iterate (alt, elem) pairs encoded in *it */
            while (next < 0) {
                int32_t a = *it >> 12, k = *it & 4095;
                if (a >= b->n_alts[r]) break;
                gr_seq *q = &b->alts[r][a];
                bool ok = true;
                for (int32_t j = 0; j < k && ok; j++) {
                    gr_elem e = q->p[j];
                    ok = (e.kind == G_REF && null[e.arg]) || (e.kind == G_STR && b->str_min[e.arg] == 0);
                }
                if (!ok || k >= q->n || k >= 4095) {
                    *it = (a + 1) << 12;
                    continue;
                }
                (*it)++;
                if (q->p[k].kind == G_REF) next = q->p[k].arg;
            }
            if (next < 0) {
                mark[r] = 2;
                sp -= 2;
            } else if (mark[next] == 1) {
                rc = herd_err(HERD_E_UNSUPPORTED,
                              "json schema: a '$ref' cycle that consumes nothing (left recursion)");
            } else if (mark[next] == 0) {
                mark[next] = 1;
                stack[sp++] = next, stack[sp++] = 0;
            }
        }
    }
    /* fan-out: the stacks a rule expands to before its first byte (nested anyOf over shared $refs
     * can make this exponential; the recognizer would then do that work at every byte) */
    if (rc == 0) {
        int64_t *paths = herd_xmalloc((size_t)n * sizeof *paths);
        for (int32_t r = 0; r < n; r++) paths[r] = -1;
        for (int32_t r = 0; r < n && rc == 0; r++)
            if (fanout(b, null, paths, r) > MAX_FANOUT)
                rc = herd_err(HERD_E_UNSUPPORTED,
                              "json schema: too many alternatives at one point (anyOf/$ref fan-out over %d)",
                              MAX_FANOUT);
        free(paths);
    }
    free(mark);
    free(stack);
    free(prod);
    free(null);
    return rc;
}

int schema_compile(const char *schema_json, grammar *g) {
    memset(g, 0, sizeof *g);
    json_t *root;
    if (schema_json) {
        json_error_t je;
        root = json_loads(schema_json, JSON_DECODE_ANY, &je);
        if (!root)
            return herd_err(HERD_E_FORMAT, "json schema: invalid JSON at line %d: %s", je.line, je.text);
    } else {
        root = json_pack("{s:s}", "type", "object");
    }
    gr_builder b;
    grb_init(&b);
    sc c = {.b = &b, .root = root, .ws = -1, .value = -1, .string = -1, .number = -1, .integer = -1};
    for (int i = 0; i <= INT_DIGITS; i++) c.digits[i] = -1;
    int32_t start = grb_rule(&b); /* rule 0: the document */
    int32_t top;
    int rc = gen(&c, root, &top);
    if (rc == 0 && b.size > GR_MAX_ELEMS)
        rc = herd_err(HERD_E_UNSUPPORTED, "json schema: too large a grammar");
    if (rc == 0) {
        gr_seq q = {0};
        seq_ref(&q, top);
        grb_alt(&b, start, &q);
        seq_free(&q);
        rc = check(&b, start);
    }
    free(c.memo);
    json_decref(root);
    if (rc) {
        grb_free(&b);
        return rc;
    }
    grb_finish(&b, g);
    return 0;
}
