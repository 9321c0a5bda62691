#include "llamaguard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/log.h"
#include "../base/strbuf.h"
#include "../constrain/constrain.h"
#include "../model/model.h"
#include "../tokenizer/vocab.h"

/* Meta's short names (llama-stack's SAFETY_CATEGORIES_TO_CODE_MAP); 8B uses all 14, 1B the first 13. */
static const herd_guard_category DEFAULT_CATS[14] = {
    {"S1", "Violent Crimes", NULL},        {"S2", "Non-Violent Crimes", NULL},
    {"S3", "Sex Crimes", NULL},            {"S4", "Child Exploitation", NULL},
    {"S5", "Defamation", NULL},            {"S6", "Specialized Advice", NULL},
    {"S7", "Privacy", NULL},               {"S8", "Intellectual Property", NULL},
    {"S9", "Indiscriminate Weapons", NULL}, {"S10", "Hate", NULL},
    {"S11", "Self-Harm", NULL},            {"S12", "Sexual Content", NULL},
    {"S13", "Elections", NULL},            {"S14", "Code Interpreter Abuse", NULL},
};

#define CODE_MAX 32

herd_guard_params herd_guard_default_params(void) {
    herd_guard_params p = {0};
    return p;
}

static bool code_ok(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > CODE_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return false;
    }
    return true;
}

int guard_categories_make(const herd_guard_params *p, int n_default_model, guard_categories *out) {
    memset(out, 0, sizeof *out);
    const herd_guard_category *all = DEFAULT_CATS;
    int n_all = p->n_default ? p->n_default : n_default_model;
    if (p->categories) {
        all = p->categories;
        n_all = p->n_categories;
        if (n_all <= 0) return herd_err(HERD_E_ARG, "llama guard: the category list is empty");
    } else if (n_all != 13 && n_all != 14) {
        return herd_err(HERD_E_ARG, "llama guard: the default category list has 13 or 14 entries, not %d", n_all);
    }
    for (int i = 0; i < n_all; i++) {
        const herd_guard_category *c = &all[i];
        if (!code_ok(c->code))
            return herd_err(HERD_E_ARG, "llama guard: categories[%d].code '%.40s' must be 1-%d letters, digits, '_', '-' or '.'",
                            i, c->code ? c->code : "", CODE_MAX);
        if (!c->name || !*c->name || strpbrk(c->name, "\r\n"))
            return herd_err(HERD_E_ARG, "llama guard: categories[%d] (%s) needs a one-line 'name'", i, c->code);
        for (int j = 0; j < i; j++)
            if (!strcmp(all[j].code, c->code))
                return herd_err(HERD_E_ARG, "llama guard: category code '%s' appears twice", c->code);
    }
    bool *drop = herd_xcalloc((size_t)n_all, sizeof *drop);
    for (int e = 0; e < p->n_exclude; e++) {
        const char *x = p->exclude[e];
        int hit = -1;
        for (int i = 0; i < n_all && hit < 0; i++)
            if (x && !strcmp(all[i].code, x)) hit = i;
        if (hit < 0) {
            free(drop);
            return herd_err(HERD_E_ARG, "llama guard: cannot exclude '%.40s': no such category (the codes are %s..%s)",
                            x ? x : "", all[0].code, all[n_all - 1].code);
        }
        drop[hit] = true;
    }
    out->cats = herd_xcalloc((size_t)n_all, sizeof *out->cats);
    for (int i = 0; i < n_all; i++)
        if (!drop[i]) out->cats[out->n++] = all[i];
    free(drop);
    if (out->n == 0) {
        guard_categories_free(out);
        return herd_err(HERD_E_ARG, "llama guard: every category is excluded");
    }
    return HERD_OK;
}

void guard_categories_free(guard_categories *c) {
    free(c->cats);
    memset(c, 0, sizeof *c);
}

/* ---- the prompt ----------------------------------------------------------------------------- */

int guard_py_space(uint32_t c) {
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680) return 1;
    return (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The code point at s[i] (*n bytes); invalid UTF-8 decodes as its first byte (never a space). */
static uint32_t utf8_at(const unsigned char *s, size_t len, size_t i, size_t *n) {
    unsigned c = s[i];
    size_t k = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    *n = 1;
    if (k == 0 || i + k >= len) return c;
    uint32_t v = c & (0x3Fu >> k);
    for (size_t j = 1; j <= k; j++) {
        if ((s[i + j] & 0xC0) != 0x80) return c;
        v = (v << 6) | (s[i + j] & 0x3F);
    }
    *n = k + 1;
    return v;
}

/* Appends s stripped of leading and trailing Python whitespace. */
static void put_stripped(strbuf *b, const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    size_t len = strlen(str), i = 0, n, beg = 0, end = 0;
    bool any = false;
    while (i < len) {
        uint32_t c = utf8_at(s, len, i, &n);
        if (!guard_py_space(c)) {
            if (!any) beg = i;
            any = true;
            end = i + n;
        }
        i += n;
    }
    if (any) strbuf_put(b, str + beg, end - beg);
}

static void put_special(guard_prompt *gp, strbuf *b, const char *tok) {
    gp->sp_off[gp->n_sp] = b->n;
    gp->sp_len[gp->n_sp++] = strlen(tok);
    strbuf_puts(b, tok);
}

int guard_prompt_render(const guard_categories *cats, const herd_chat_message *msgs, size_t n, int role,
                        guard_prompt *out) {
    memset(out, 0, sizeof *out);
    if (n == 0) return herd_err(HERD_E_ARG, "llama guard: no messages to assess");
    for (size_t i = 0; i < n; i++) {
        const herd_chat_message *m = &msgs[i];
        if (!m->role || (strcmp(m->role, "user") && strcmp(m->role, "assistant")))
            return herd_err(HERD_E_ARG,
                            "llama guard: messages[%zu] has role '%.32s'; Llama Guard assesses user and assistant messages only",
                            i, m->role ? m->role : "");
        if (m->tool_name || !m->content)
            return herd_err(HERD_E_ARG, "llama guard: messages[%zu] has no text content (tool calls cannot be assessed)", i);
    }
    const char *agent;
    if (role == HERD_GUARD_ROLE_USER) agent = "User";
    else if (role == HERD_GUARD_ROLE_AGENT) agent = "Agent";
    else if (role == HERD_GUARD_ROLE_AUTO) agent = strcmp(msgs[n - 1].role, "user") ? "Agent" : "User";
    else return herd_err(HERD_E_ARG, "llama guard: role %d is not auto, user or agent", role);

    strbuf b = {0};
    put_special(out, &b, "<|begin_of_text|>");
    put_special(out, &b, "<|start_header_id|>");
    strbuf_puts(&b, "user");
    put_special(out, &b, "<|end_header_id|>");
    strbuf_printf(&b, "\n\nTask: Check if there is unsafe content in '%s' messages in conversations according our "
                      "safety policy with the below categories.\n",
                  agent);
    strbuf_puts(&b, "\n<BEGIN UNSAFE CONTENT CATEGORIES>\n");
    for (int i = 0; i < cats->n; i++) {
        const herd_guard_category *c = &cats->cats[i];
        strbuf_printf(&b, "%s%s: %s.", i ? "\n" : "", c->code, c->name);
        if (c->description) {
            strbuf_puts(&b, "\n");
            strbuf_puts(&b, c->description);
        }
    }
    strbuf_puts(&b, "\n<END UNSAFE CONTENT CATEGORIES>\n");
    strbuf_puts(&b, "\n<BEGIN CONVERSATION>\n\n");
    for (size_t i = 0; i < n; i++) {
        strbuf_puts(&b, i ? "\n\n" : "");
        strbuf_puts(&b, strcmp(msgs[i].role, "user") ? "Agent: " : "User: ");
        put_stripped(&b, msgs[i].content);
    }
    strbuf_puts(&b, "\n\n<END CONVERSATION>\n");
    strbuf_printf(&b, "\nProvide your safety assessment for ONLY THE LAST %s message in the above conversation:\n"
                      " - First line must read 'safe' or 'unsafe'.\n"
                      " - If unsafe, a second line must include a comma-separated list of violated categories.",
                  agent);
    put_special(out, &b, "<|eot_id|>");
    put_special(out, &b, "<|start_header_id|>");
    strbuf_puts(&b, "assistant");
    put_special(out, &b, "<|end_header_id|>");
    strbuf_puts(&b, "\n\n");
    out->text = b.p;
    out->len = b.n;
    return HERD_OK;
}

void guard_prompt_free(guard_prompt *p) {
    free(p->text);
    memset(p, 0, sizeof *p);
}

/* 13 for the Llama 3.2-1B shape (Llama Guard 3 1B), 14 otherwise (8B) and without a model. */
static int model_default_n(const herd_model *m) {
    if (!m) return 14;
    return m->hp.n_embd == 2048 && m->hp.n_layer == 16 ? 13 : 14;
}

static int build(const herd_model *m, const herd_chat_message *msgs, size_t n, const herd_guard_params *p,
                 guard_prompt *out) {
    herd_guard_params dp = herd_guard_default_params();
    if (!p) p = &dp;
    guard_categories cats;
    int rc = guard_categories_make(p, model_default_n(m), &cats);
    if (rc) return rc;
    rc = guard_prompt_render(&cats, msgs, n, p->role, out);
    guard_categories_free(&cats);
    return rc;
}

int herd_guard_prompt(const herd_model *m, const herd_chat_message *msgs, size_t n, const herd_guard_params *p,
                      char **text) {
    *text = NULL;
    if (!msgs && n) return herd_err(HERD_E_ARG, "herd_guard_prompt: NULL messages");
    guard_prompt gp;
    int rc = build(m, msgs, n, p, &gp);
    if (rc) return rc;
    *text = gp.text;
    return HERD_OK;
}

/* Plain text runs tokenized on their own, special spans as their ids (as chat_tokenize does). */
static int tokenize_prompt(const herd_vocab *v, const guard_prompt *gp, int32_t **ids, int64_t *n_ids) {
    int32_t *all = NULL;
    int64_t n = 0, cap = 0;
    size_t at = 0;
    int rc = HERD_OK;
    for (int i = 0; i <= gp->n_sp && rc == HERD_OK; i++) {
        size_t end = i < gp->n_sp ? gp->sp_off[i] : gp->len;
        int32_t *part = NULL;
        int64_t np = 0;
        if (end > at) rc = vocab_tokenize(v, gp->text + at, end - at, false, false, &part, &np);
        int32_t sid = -1;
        if (rc == HERD_OK && i < gp->n_sp) {
            sid = vocab_find(v, gp->text + gp->sp_off[i], gp->sp_len[i]);
            if (sid < 0)
                rc = herd_err(HERD_E_UNSUPPORTED, "llama guard: the vocabulary has no token '%.*s' (not a Llama 3 model)",
                              (int)gp->sp_len[i], gp->text + gp->sp_off[i]);
            at = gp->sp_off[i] + gp->sp_len[i];
        }
        if (rc == HERD_OK) {
            if (n + np + 1 > cap) {
                cap = (n + np + 1) * 2;
                all = herd_xrealloc(all, (size_t)cap * sizeof *all);
            }
            if (np) memcpy(all + n, part, (size_t)np * sizeof *part);
            n += np;
            if (sid >= 0) all[n++] = sid;
        }
        free(part);
    }
    if (rc) {
        free(all);
        return rc;
    }
    *ids = all;
    *n_ids = n;
    return HERD_OK;
}

int herd_guard_tokenize(const herd_model *m, const herd_chat_message *msgs, size_t n, const herd_guard_params *p,
                        int32_t **ids, int64_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!m) return herd_err(HERD_E_ARG, "herd_guard_tokenize: NULL model");
    guard_prompt gp;
    int rc = build(m, msgs, n, p, &gp);
    if (rc) return rc;
    rc = tokenize_prompt(m->vocab, &gp, ids, n_ids);
    guard_prompt_free(&gp);
    return rc;
}

/* ---- the verdict grammar -------------------------------------------------------------------- */

void guard_grammar_build(const guard_categories *cats, grammar *g) {
    gr_builder b;
    grb_init(&b);
    int32_t root = grb_rule(&b), codes = grb_rule(&b), more = grb_rule(&b), code = grb_rule(&b);
    gr_seq s = {0};
    /* root := "safe" | "unsafe\n" codes */
    seq_lit(&b, &s, "safe", 4);
    grb_alt(&b, root, &s);
    s.n = 0;
    seq_lit(&b, &s, "unsafe\n", 7);
    seq_ref(&s, codes);
    grb_alt(&b, root, &s);
    /* codes := code more;  more := "" | "," code more  (right recursion: no left recursion) */
    s.n = 0;
    seq_ref(&s, code);
    seq_ref(&s, more);
    grb_alt(&b, codes, &s);
    s.n = 0;
    grb_alt(&b, more, &s);
    seq_lit(&b, &s, ",", 1);
    seq_ref(&s, code);
    seq_ref(&s, more);
    grb_alt(&b, more, &s);
    /* code := "S1" | "S2" | ... (prefixes such as S1 / S10 are told apart by the recognizer's stacks) */
    for (int i = 0; i < cats->n; i++) {
        s.n = 0;
        seq_lit(&b, &s, cats->cats[i].code, strlen(cats->cats[i].code));
        grb_alt(&b, code, &s);
    }
    seq_free(&s);
    grb_finish(&b, g);
    grb_free(&b);
}

static int make_constraint(const herd_model *m, const herd_guard_params *p, herd_constraint **out) {
    *out = NULL;
    herd_guard_params dp = herd_guard_default_params();
    if (!p) p = &dp;
    guard_categories cats;
    int rc = guard_categories_make(p, model_default_n(m), &cats);
    if (rc) return rc;
    grammar g;
    guard_grammar_build(&cats, &g);
    guard_categories_free(&cats);
    int32_t eot = vocab_eot(m->vocab);
    if (eot < 0) {
        grammar_free(&g);
        return herd_err(HERD_E_UNSUPPORTED, "llama guard: the vocabulary has no <|eot_id|> (not a Llama 3 model)");
    }
    rc = constraint_new_grammar(m->vocab, &g, out);
    if (rc) return rc;
    constraint_set_end_tokens(*out, &eot, 1);
    return HERD_OK;
}

int herd_guard_constraint(const herd_model *m, const herd_guard_params *p, herd_constraint **out) {
    if (!m || !out) return herd_err(HERD_E_ARG, "herd_guard_constraint: NULL argument");
    return make_constraint(m, p, out);
}

/* ---- the verdict ---------------------------------------------------------------------------- */

void herd_guard_result_free(herd_guard_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_categories; i++) free(r->categories[i]);
    free(r->categories);
    free(r->text);
    memset(r, 0, sizeof *r);
}

int herd_guard_parse(const char *text, size_t len, herd_guard_result *out) {
    memset(out, 0, sizeof *out);
    size_t b = 0, e = len;
    while (b < e && guard_py_space((unsigned char)text[b])) b++;
    while (e > b && guard_py_space((unsigned char)text[e - 1])) e--;
    const char *s = text + b;
    size_t n = e - b;
    if (n == 4 && !memcmp(s, "safe", 4)) {
        out->text = herd_xstrndup(text, len);
        return HERD_OK;
    }
    if (n < 8 || memcmp(s, "unsafe\n", 7) != 0)
        return herd_err(HERD_E_FORMAT, "llama guard: the verdict '%.*s' is neither 'safe' nor 'unsafe\\n<codes>'",
                        (int)(n < 40 ? n : 40), s);
    out->unsafe = true;
    size_t i = 7;
    while (i <= n) {
        size_t j = i;
        while (j < n && s[j] != ',') j++;
        char code[CODE_MAX + 1];
        size_t cl = j - i;
        if (cl == 0 || cl > CODE_MAX) goto bad;
        memcpy(code, s + i, cl);
        code[cl] = 0;
        if (!code_ok(code)) goto bad;
        bool seen = false;
        for (int k = 0; k < out->n_categories && !seen; k++) seen = !strcmp(out->categories[k], code);
        if (!seen) {
            out->categories = herd_xrealloc(out->categories, (size_t)(out->n_categories + 1) * sizeof(char *));
            out->categories[out->n_categories++] = herd_xstrndup(code, cl);
        }
        i = j + 1;
    }
    out->text = herd_xstrndup(text, len);
    return HERD_OK;
bad:
    herd_guard_result_free(out);
    return herd_err(HERD_E_FORMAT, "llama guard: the verdict '%.*s' has a malformed category list", (int)(n < 60 ? n : 60),
                    s);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* softmax(logits)[id], in double (max-subtracted). */
static double softmax_at(const float *logits, int32_t n, int32_t id) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)logits[i] - (double)mx);
    return exp((double)logits[id] - (double)mx) / sum;
}

int herd_guard_run(herd_context *c, const herd_chat_message *msgs, size_t n, const herd_guard_params *p,
                   herd_guard_result *out) {
    memset(out, 0, sizeof *out);
    if (!c) return herd_err(HERD_E_ARG, "herd_guard_run: NULL context");
    const herd_model *m = herd_context_model(c);
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    int rc = herd_guard_tokenize(m, msgs, n, p, &ids, &n_ids);
    if (rc) return rc;
    /* the "unsafe" token, by its text */
    int32_t *u = NULL;
    int64_t nu = 0;
    rc = vocab_tokenize(m->vocab, "unsafe", 6, false, false, &u, &nu);
    int32_t unsafe_id = rc == HERD_OK && nu == 1 ? u[0] : -1;
    free(u);
    if (unsafe_id < 0) {
        free(ids);
        return herd_err(HERD_E_UNSUPPORTED, "llama guard: 'unsafe' is not one token of this vocabulary (not Llama 3)");
    }
    herd_constraint *con;
    if ((rc = make_constraint(m, p, &con))) {
        free(ids);
        return rc;
    }
    int64_t n_ctx = herd_context_n_ctx(c);
    /* "unsafe\n" + every code once, each piece at worst one token per byte: a budget that a real
     * verdict never reaches; a model that repeats codes forever is cut at the last complete state */
    int64_t budget = 16;
    {
        guard_categories cats;
        herd_guard_params dp = herd_guard_default_params();
        if (guard_categories_make(p ? p : &dp, model_default_n(m), &cats) == HERD_OK) {
            for (int i = 0; i < cats.n; i++) budget += (int64_t)strlen(cats.cats[i].code) + 1;
            guard_categories_free(&cats);
        }
    }
    if (n_ids + 1 > n_ctx) {
        herd_constraint_free(con);
        free(ids);
        return herd_err(HERD_E_RANGE, "llama guard: the prompt has %lld tokens, the context %lld",
                        (long long)n_ids, (long long)n_ctx);
    }
    if (n_ids + budget > n_ctx) budget = n_ctx - n_ids;
    int32_t n_vocab = herd_vocab_n_tokens(m);
    float *logits = herd_xmalloc((size_t)n_vocab * sizeof *logits);
    herd_context_truncate(c, 0);
    double t0 = now_s();
    rc = herd_decode(c, ids, n_ids, HERD_LOGITS_LAST, logits);
    double t1 = now_s();
    out->n_prompt = n_ids;
    out->prompt_seconds = t1 - t0;
    strbuf text = {0};
    strbuf_put(&text, "", 0);
    size_t complete_len = 0; /* text length at the last complete state */
    if (rc == HERD_OK) out->p_unsafe = softmax_at(logits, n_vocab, unsafe_id);
    int32_t eot = vocab_eot(m->vocab);
    for (int64_t step = 0; rc == HERD_OK; step++) {
        if (step >= budget) break;
        herd_constraint_apply(con, logits);
        int32_t best = -1;
        for (int32_t i = 0; i < n_vocab; i++)
            if (logits[i] != -INFINITY && (best < 0 || logits[i] > logits[best])) best = i;
        if (best < 0 || best == eot) break; /* best < 0 cannot happen: the grammar always leaves a way */
        if ((rc = herd_constraint_accept(con, best))) break;
        char piece[256];
        int64_t k = vocab_token_to_piece(m->vocab, best, false, piece, sizeof piece);
        if (k > 0) strbuf_put(&text, piece, (size_t)(k < (int64_t)sizeof piece ? k : (int64_t)sizeof piece));
        out->n_generated++;
        if (herd_constraint_complete(con)) {
            complete_len = text.n;
            if (!constraint_can_continue(con)) break; /* "safe": only <|eot_id|> can follow */
        }
        rc = herd_decode(c, &best, 1, HERD_LOGITS_LAST, logits);
    }
    out->gen_seconds = now_s() - t1;
    free(logits);
    free(ids);
    herd_constraint_free(con);
    if (rc) {
        strbuf_free(&text);
        return rc;
    }
    /* cut at the budget: back to the last complete verdict (the grammar makes one within 2 tokens) */
    if (!complete_len) {
        strbuf_free(&text);
        return herd_err(HERD_E_RANGE, "llama guard: no room in the context for the verdict");
    }
    herd_guard_result r;
    rc = herd_guard_parse(text.p, complete_len, &r);
    strbuf_free(&text);
    if (rc) return rc;
    r.p_unsafe = out->p_unsafe;
    r.n_prompt = out->n_prompt;
    r.n_generated = out->n_generated;
    r.prompt_seconds = out->prompt_seconds;
    r.gen_seconds = out->gen_seconds;
    *out = r;
    return HERD_OK;
}
