/* Llama Guard's verdict grammar and parser (src/safety/llamaguard.c).
 *
 * The grammar against an independent string-level reference of the language
 *     "safe" | "unsafe\n" CODE ("," CODE)*      (CODE: one of the known codes)
 * (is_prefix / is_complete below): every string reachable by a depth-first walk over an alphabet of
 * the bytes that matter (plus bytes that never do), and seeded random near-miss strings, must get the
 * same answer from the recognizer and from the reference — codes that are prefixes of others (S1,
 * S10; C1, C10, C100) and excluded codes included. Then on the real Llama 3 vocabulary (when
 * tests/ref/setup.sh has fetched it): the token mask of herd_guard_constraint equals the reference
 * for EVERY token of the vocabulary in states along seeded random walks (so nothing else can be
 * generated), <|eot_id|> is the only end token and only once complete, and every walk's text parses
 * with herd_guard_parse into the codes it spelled. Also the parser on good and bad verdicts and the
 * 13 / 14 default categories by model shape. */
#include "base/log.h"
#include "constrain/constrain.h"
#include "constrain/grammar.h"
#include "model/model.h"
#include "safety/llamaguard.h"
#include "testutil.h"
#include "tokenizer/vocab.h"

#define VOCAB31 "build/ref/llama31-vocab.gguf"

/* ---- the reference language ----------------------------------------------------------------- */

typedef struct {
    const char **codes;
    int n;
} codeset;

static bool is_code(const codeset *cs, const char *s, size_t n) {
    for (int i = 0; i < cs->n; i++)
        if (strlen(cs->codes[i]) == n && !memcmp(cs->codes[i], s, n)) return true;
    return false;
}

static bool is_code_prefix(const codeset *cs, const char *s, size_t n) {
    for (int i = 0; i < cs->n; i++)
        if (strlen(cs->codes[i]) >= n && !memcmp(cs->codes[i], s, n)) return true;
    return false;
}

/* s[0..n) is a complete verdict */
static bool is_complete(const codeset *cs, const char *s, size_t n) {
    if (n == 4 && !memcmp(s, "safe", 4)) return true;
    if (n < 8 || memcmp(s, "unsafe\n", 7)) return false;
    size_t i = 7;
    for (;;) {
        size_t j = i;
        while (j < n && s[j] != ',') j++;
        if (!is_code(cs, s + i, j - i)) return false;
        if (j == n) return true;
        i = j + 1;
    }
}

/* s[0..n) can still become a complete verdict */
static bool is_prefix(const codeset *cs, const char *s, size_t n) {
    if (n <= 4 && !memcmp(s, "safe", n)) return true;
    if (n <= 7) return !memcmp(s, "unsafe\n", n);
    if (memcmp(s, "unsafe\n", 7)) return false;
    size_t i = 7;
    for (;;) {
        size_t j = i;
        while (j < n && s[j] != ',') j++;
        if (j == n) return is_code_prefix(cs, s + i, j - i);
        if (!is_code(cs, s + i, j - i)) return false;
        i = j + 1;
    }
}

/* ---- the recognizer on strings ------------------------------------------------------------------ */

static guard_categories cats_of(const codeset *cs) {
    guard_categories c = {herd_xcalloc((size_t)cs->n, sizeof *c.cats), cs->n};
    for (int i = 0; i < cs->n; i++) c.cats[i] = (herd_guard_category){cs->codes[i], "Name", NULL};
    return c;
}

static const char ALPHA[] = "safeun\nS0134,C X\rs";

static int64_t n_walked;

static void dfs(const codeset *cs, gr_arena *a, const gr_state *st, char *buf, size_t n, size_t max) {
    n_walked++;
    CHECK(gr_complete(st) == is_complete(cs, buf, n), "'%.*s': complete %d", (int)n, buf, gr_complete(st));
    if (n == max) return;
    for (const char *p = ALPHA; *p; p++) {
        gr_state t;
        int32_t mark = a->n_nodes;
        gr_step(a, st, (unsigned char)*p, &t);
        buf[n] = *p;
        bool live = t.n > 0, want = is_prefix(cs, buf, n + 1);
        CHECK(live == want, "'%.*s': grammar %d, reference %d", (int)n + 1, buf, live, want);
        if (live && want) dfs(cs, a, &t, buf, n + 1, max);
        a->n_nodes = mark;
    }
}

/* Random strings: a valid verdict, then mutated (a byte changed, dropped, inserted) or cut. */
static void random_strings(const codeset *cs, gr_arena *a, int n_iter) {
    char s[128];
    for (int it = 0; it < n_iter; it++) {
        size_t n = 0;
        if (tu_u64() % 4 == 0) n = (size_t)snprintf(s, sizeof s, "safe");
        else {
            n = (size_t)snprintf(s, sizeof s, "unsafe\n");
            int k = 1 + (int)(tu_u64() % 5);
            for (int i = 0; i < k; i++)
                n += (size_t)snprintf(s + n, sizeof s - n, "%s%s", i ? "," : "", cs->codes[tu_u64() % (uint64_t)cs->n]);
        }
        int op = (int)(tu_u64() % 4);
        size_t at = (size_t)(tu_u64() % (n + 1));
        if (op == 1 && at < n) s[at] = ALPHA[tu_u64() % (sizeof ALPHA - 1)];
        if (op == 2 && at < n) memmove(s + at, s + at + 1, n - at - 1), n--;
        if (op == 3 && n + 1 < sizeof s) memmove(s + at + 1, s + at, n - at), s[at] = (char)(tu_u64() % 256), n++;
        gr_state st, t;
        int32_t mark = a->n_nodes;
        gr_start(a, &st);
        size_t alive = 0;
        for (; alive < n; alive++) {
            gr_step(a, &st, (unsigned char)s[alive], &t);
            if (t.n == 0) break;
            st = t;
        }
        /* the recognizer dies exactly where the reference stops being a prefix */
        size_t want = 0;
        while (want < n && is_prefix(cs, s, want + 1)) want++;
        CHECK(alive == want, "'%.*s': dies after %zu bytes, reference %zu", (int)n, s, alive, want);
        if (alive == n) CHECK(gr_complete(&st) == is_complete(cs, s, n), "'%.*s': completeness", (int)n, s);
        a->n_nodes = mark;
    }
}

static void test_grammar(const codeset *cs, size_t depth) {
    guard_categories c = cats_of(cs);
    grammar g;
    guard_grammar_build(&c, &g);
    gr_arena a;
    gra_init(&a, &g);
    gr_state st;
    gr_start(&a, &st);
    char buf[64];
    n_walked = 0;
    dfs(cs, &a, &st, buf, 0, depth);
    random_strings(cs, &a, 20000);
    printf("  grammar over %d codes: %lld strings walked (depth %zu), 20000 random\n", cs->n, (long long)n_walked,
           depth);
    gra_free(&a);
    grammar_free(&g);
    guard_categories_free(&c);
}

/* ---- the parser ----------------------------------------------------------------------------- */

static void parse_ok(const char *s, bool unsafe, const char *cats) {
    herd_guard_result r;
    int rc = herd_guard_parse(s, strlen(s), &r);
    CHECK(rc == 0, "parse '%s': %s", s, herd_last_error());
    if (rc) return;
    char got[256] = "";
    for (int i = 0; i < r.n_categories; i++) {
        strcat(got, i ? "," : "");
        strcat(got, r.categories[i]);
    }
    CHECK(r.unsafe == unsafe && !strcmp(got, cats), "parse '%s': unsafe %d '%s'", s, r.unsafe, got);
    herd_guard_result_free(&r);
}

static void parse_bad(const char *s) {
    herd_guard_result r;
    CHECK(herd_guard_parse(s, strlen(s), &r) == HERD_E_FORMAT, "parse '%s' was accepted", s);
}

static void test_parse(void) {
    parse_ok("safe", false, "");
    parse_ok(" safe\n", false, "");
    parse_ok("unsafe\nS1", true, "S1");
    parse_ok("unsafe\nS1,S10", true, "S1,S10");
    parse_ok("unsafe\nS10,S1,S10", true, "S10,S1");
    parse_ok("\n\nunsafe\nC100,X \n", true, "C100,X");
    const char *bad[] = {"", "Safe", "safe safe", "unsafe", "unsafe\n", "unsafe\nS1,", "unsafe\n,S1", "unsafe S1",
                         "unsafe\nS1,,S2", "unsafe\nS 1", "unsafe\nS1\nS2", "safeunsafe", "unsafe\nS1;S2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) parse_bad(bad[i]);
}

/* ---- default categories by model shape ---------------------------------------------------------- */

static void test_shape(void) {
    herd_model fake;
    memset(&fake, 0, sizeof fake);
    herd_chat_message msg = {.role = "user", .content = "hi"};
    struct {
        int64_t n_embd, n_layer;
        int want;
    } cases[] = {{2048, 16, 13}, {4096, 32, 14}, {2048, 28, 14}, {3072, 16, 14}};
    for (int i = 0; i < 4; i++) {
        fake.hp.n_embd = cases[i].n_embd;
        fake.hp.n_layer = cases[i].n_layer;
        herd_guard_params p = herd_guard_default_params();
        char *text;
        CHECK(herd_guard_prompt(&fake, &msg, 1, &p, &text) == 0, "prompt: %s", herd_last_error());
        bool has13 = strstr(text, "\nS13: Elections.\n") != NULL, has14 = strstr(text, "S14: Code Interpreter Abuse.") != NULL;
        CHECK(has13 && has14 == (cases[i].want == 14), "n_embd %lld n_layer %lld: want %d categories",
              (long long)cases[i].n_embd, (long long)cases[i].n_layer, cases[i].want);
        free(text);
        p.n_default = 14; /* the override */
        CHECK(herd_guard_prompt(&fake, &msg, 1, &p, &text) == 0 && strstr(text, "S14: Code"), "override 14");
        free(text);
    }
    char *text;
    CHECK(herd_guard_prompt(NULL, &msg, 1, NULL, &text) == 0 && strstr(text, "S14: Code"), "no model: 14");
    free(text);
}

/* ---- the constraint on the real vocabulary -------------------------------------------------------- */

static void test_vocab(void) {
    herd_model *m;
    FILE *f = fopen(VOCAB31, "rb");
    if (!f) {
        printf("  (skipped the vocabulary part: %s missing; run tests/ref/setup.sh)\n", VOCAB31);
        return;
    }
    fclose(f);
    CHECK(herd_model_load_vocab(VOCAB31, &m) == 0, "load: %s", herd_last_error());
    const herd_vocab *v = m->vocab;
    int32_t nv = vocab_n_tokens(v), eot = vocab_eot(v), eom = vocab_eom(v);
    /* the pieces of every token, once */
    char **piece = herd_xcalloc((size_t)nv, sizeof *piece);
    int32_t *plen = herd_xcalloc((size_t)nv, sizeof *plen);
    for (int32_t i = 0; i < nv; i++) {
        char buf[512];
        int64_t k = vocab_is_control(v, i) ? 0 : vocab_token_to_piece(v, i, false, buf, sizeof buf);
        if (k < 0 || k > (int64_t)sizeof buf) k = 0;
        piece[i] = herd_xstrndup(buf, (size_t)k);
        plen[i] = (int32_t)k;
    }
    const char *excl[] = {"S7", "S2"};
    herd_guard_params p = herd_guard_default_params();
    p.exclude = excl;
    p.n_exclude = 2;
    const char *codes[12] = {"S1", "S3", "S4", "S5", "S6", "S8", "S9", "S10", "S11", "S12", "S13", "S14"};
    codeset cs = {codes, 12};
    int64_t states = 0, tokens_checked = 0, walks = 0;
    for (int walk = 0; walk < 24; walk++) {
        herd_constraint *c;
        CHECK(herd_guard_constraint(m, &p, &c) == 0, "constraint: %s", herd_last_error());
        char text[512];
        size_t n = 0;
        bool ended = false;
        for (int step = 0; step < 40 && !ended; step++) {
            int64_t n_allowed;
            const uint8_t *mask = constraint_mask(c, &n_allowed);
            /* the whole vocabulary in every state of some walks; in the others every allowed token
             * (nothing outside the language) and a sample of the rest */
            bool full = walk % 8 == 0 || (walk < 2 && step < 2);
            int32_t allowed[4096];
            int32_t n_list = 0;
            for (int32_t id = 0; id < nv; id++) {
                if (!(full || mask[id] || tu_u64() % 64 == 0)) continue;
                bool want;
                if (id == eot) want = is_complete(&cs, text, n);
                else if (plen[id] == 0 || n + (size_t)plen[id] >= sizeof text) want = false;
                else {
                    memcpy(text + n, piece[id], (size_t)plen[id]);
                    want = is_prefix(&cs, text, n + (size_t)plen[id]);
                }
                tokens_checked++;
                CHECK(mask[id] == want, "walk %d '%.*s' + token %d '%s': mask %d, reference %d", walk, (int)n, text, id,
                      piece[id], mask[id], want);
                if (mask[id] && n_list < 4096) allowed[n_list++] = id;
            }
            CHECK(!mask[eom] && !mask[vocab_eos(v)], "an end token other than <|eot_id|> is allowed");
            states++;
            CHECK(n_list > 0, "walk %d: no token allowed after '%.*s'", walk, (int)n, text);
            if (!n_list) break;
            /* bias towards continuing so walks spell several codes; sometimes end */
            int32_t pick = allowed[tu_u64() % (uint64_t)n_list];
            while (pick == eot && n_list > 1 && tu_u64() % 3) pick = allowed[tu_u64() % (uint64_t)n_list];
            if (pick == eot) {
                CHECK(herd_constraint_accept(c, eot) == 0, "eot refused");
                ended = true;
                break;
            }
            CHECK(herd_constraint_accept(c, pick) == 0, "accept %d: %s", pick, herd_last_error());
            memcpy(text + n, piece[pick], (size_t)plen[pick]);
            n += (size_t)plen[pick];
            /* an adversarial token: any id, refused unless the reference allows it */
            int32_t any = (int32_t)(tu_u64() % (uint64_t)nv);
            bool want_any = any == eot ? is_complete(&cs, text, n)
                            : plen[any] == 0 || n + (size_t)plen[any] >= sizeof text
                                ? false
                                : (memcpy(text + n, piece[any], (size_t)plen[any]), is_prefix(&cs, text, n + (size_t)plen[any]));
            CHECK(constraint_token_ok(c, any) == want_any, "token %d after '%.*s'", any, (int)n, text);
        }
        if (ended || is_complete(&cs, text, n)) {
            walks++;
            herd_guard_result r;
            CHECK(herd_guard_parse(text, n, &r) == 0, "walk %d: '%.*s' does not parse", walk, (int)n, text);
            CHECK(r.unsafe == (n != 4), "walk %d: verdict", walk);
            /* the codes parsed are those spelled */
            size_t i = 7;
            for (int k = 0; r.unsafe && i < n; k++) {
                size_t j = i;
                while (j < n && text[j] != ',') j++;
                bool found = false;
                for (int q = 0; q < r.n_categories; q++)
                    found |= strlen(r.categories[q]) == j - i && !memcmp(r.categories[q], text + i, j - i);
                CHECK(found, "walk %d: code '%.*s' missing from the parse", walk, (int)(j - i), text + i);
                i = j + 1;
            }
            herd_guard_result_free(&r);
        }
        herd_constraint_free(c);
    }
    printf("  vocabulary: %lld states, %lld token checks, %lld complete walks\n", (long long)states,
           (long long)tokens_checked, (long long)walks);
    CHECK(walks >= 12, "only %lld walks ended", (long long)walks);
    for (int32_t i = 0; i < nv; i++) free(piece[i]);
    free(piece);
    free(plen);
    herd_model_free(m);
}

int main(void) {
    tu_rng = 0x6c67756172640001ull;
    const char *s14[] = {"S1", "S2", "S3", "S4", "S5", "S6", "S8", "S9", "S10", "S11", "S12", "S13", "S14"};
    codeset d = {s14, 13};
    test_grammar(&d, 22);
    const char *custom[] = {"C1", "C10", "C100", "X", "x-y.z_1"};
    codeset c = {custom, 5};
    test_grammar(&c, 20);
    test_parse();
    test_shape();
    test_vocab();
    return TU_DONE("test_guard");
}
