/* Constrained decoding (src/constrain): schema compile errors, the recognizer on hand-written
 * documents, and the token mask against a brute-force check (every token's bytes stepped alone)
 * on the real Llama 3 vocabulary and the SentencePiece one, along seeded random walks; the sampler
 * with a constraint (greedy picks the best allowed token).
 * The vocabularies come from tests/ref/setup.sh (build/ref/...); without them that part is skipped. */
#include <sys/stat.h>

#include "base/file.h"
#include "base/log.h"
#include "constrain/constrain.h"
#include "constrain/grammar.h"
#include "constrain/schema.h"
#include "gguf/gguf.h"
#include "sample/sample.h"
#include "testutil.h"
#include "tokenizer/vocab.h"

#define BPE_PATH "build/ref/llama.cpp/models/ggml-vocab-llama-bpe.gguf"
#define SPM_PATH "build/ref/llama.cpp/models/ggml-vocab-llama-spm.gguf"

/* ---- compile errors ------------------------------------------------------------------------- */

static void expect_err(const char *schema, int code, const char *needle) {
    grammar g;
    int rc = schema_compile(schema, &g);
    CHECK(rc == code, "%s: rc %d, want %d (%s)", schema, rc, code, rc ? herd_last_error() : "ok");
    if (rc == 0)
        grammar_free(&g);
    else if (needle)
        CHECK(strstr(herd_last_error(), needle), "%s: message '%s' lacks '%s'", schema, herd_last_error(),
              needle);
}

static void test_errors(void) {
    expect_err("{\"type\":\"string\",\"pattern\":\"^a\"}", HERD_E_UNSUPPORTED, "'pattern'");
    expect_err("{\"type\":\"string\",\"format\":\"date\"}", HERD_E_UNSUPPORTED, "'format'");
    expect_err("{\"type\":\"number\",\"minimum\":3}", HERD_E_UNSUPPORTED, "'minimum'");
    expect_err("{\"type\":\"object\",\"properties\":{\"a\":{\"uniqueItems\":true}}}", HERD_E_UNSUPPORTED,
               "uniqueItems");
    expect_err("{\"type\":", HERD_E_FORMAT, "invalid JSON");
    expect_err("{\"type\":\"strin\"}", HERD_E_UNSUPPORTED, "strin");
    expect_err("{\"type\":3}", HERD_E_FORMAT, "'type'");
    expect_err("{\"$ref\":\"#/$defs/nope\"}", HERD_E_FORMAT, "does not resolve");
    expect_err("{\"$ref\":\"http://x/y.json\"}", HERD_E_UNSUPPORTED, "$ref");
    expect_err("{\"$ref\":\"#\"}", HERD_E_FORMAT, "finite");
    expect_err("{\"$defs\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"},{\"type\":\"null\"}]}},\"$ref\":\"#/"
               "$defs/a\"}",
               HERD_E_UNSUPPORTED, "left recursion");
    expect_err("{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#\"}},\"required\":[\"a\"]}",
               HERD_E_FORMAT, "finite");
    expect_err("{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", HERD_E_FORMAT, "minItems");
    expect_err("{\"type\":\"string\",\"minLength\":-1}", HERD_E_FORMAT, "minLength");
    expect_err("{\"enum\":[1,2],\"type\":\"string\"}", HERD_E_FORMAT, "enum");
    expect_err("{\"type\":\"object\",\"required\":[\"x\"],\"additionalProperties\":false}", HERD_E_FORMAT,
               "'x'");
    expect_err("false", HERD_E_FORMAT, "false");
    expect_err("{\"type\":\"array\",\"maxItems\":1000000}", HERD_E_UNSUPPORTED, "maxItems");
    expect_err("{\"anyOf\":[{\"type\":\"null\"}],\"type\":\"string\"}", HERD_E_UNSUPPORTED, "anyOf");
    { /* 2^20 ways to the first byte through shared $refs */
        char big[4096];
        int o = snprintf(big, sizeof big, "{\"$defs\":{");
        for (int i = 0; i < 20; i++)
            o += snprintf(big + o, sizeof big - (size_t)o,
                          "\"d%d\":{\"anyOf\":[{\"$ref\":\"#/$defs/d%d\"},{\"$ref\":\"#/$defs/d%d\"}]},", i,
                          i + 1, i + 1);
        snprintf(big + o, sizeof big - (size_t)o, "\"d20\":{\"type\":\"null\"}},\"$ref\":\"#/$defs/d0\"}");
        expect_err(big, HERD_E_UNSUPPORTED, "fan-out");
    }
    /* annotations are ignored */
    expect_err("{\"title\":\"t\",\"description\":\"d\",\"default\":1,\"examples\":[1],\"$schema\":\"x\","
               "\"type\":\"integer\"}",
               0, NULL);
    expect_err(NULL, 0, NULL);
    expect_err("true", 0, NULL);
    expect_err("{}", 0, NULL);
}

/* ---- the recognizer ------------------------------------------------------------------------- */

/* 1: doc is a complete document; 0: a valid prefix only; -1: dead at some byte */
static int run(const char *schema, const char *doc) {
    grammar g;
    if (schema_compile(schema, &g) != 0) {
        fprintf(stderr, "  compile failed: %s: %s\n", schema, herd_last_error());
        return -2;
    }
    gr_arena a;
    gra_init(&a, &g);
    gr_state s, t;
    gr_start(&a, &s);
    int rc = 0;
    for (size_t i = 0; doc[i] && rc == 0; i++) {
        gr_step(&a, &s, (uint8_t)doc[i], &t);
        if (t.n == 0) rc = -1;
        s = t;
    }
    if (rc == 0) rc = gr_complete(&s) ? 1 : 0;
    gra_free(&a);
    grammar_free(&g);
    return rc;
}

static const char *nz(const char *s) {
    return s ? s : "(any object)";
}
#define ACCEPT(schema, doc) CHECK(run(schema, doc) == 1, "should accept: %s  <-  %s", doc, nz(schema))
#define PREFIX(schema, doc) CHECK(run(schema, doc) == 0, "should be a prefix: %s  <-  %s", doc, nz(schema))
#define REJECT(schema, doc) CHECK(run(schema, doc) == -1, "should reject: %s  <-  %s", doc, nz(schema))

static void test_recognizer(void) {
    const char *obj =
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":5},"
        "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\"]},"
        "\"minItems\":1,\"maxItems\":2}},\"required\":[\"name\",\"age\"],\"additionalProperties\":false}";
    ACCEPT(obj, "{\"name\":\"bob\",\"age\":42}");
    ACCEPT(obj, "{ \"name\" : \"bob\" ,\n  \"age\":-7, \"tags\":[\"a\",\"b\"]}");
    ACCEPT(obj, "{\"name\":\"\\u00e9\\n\\\"x\",\"age\":0}"); /* escapes count as one character each */
    ACCEPT(obj, "{\"name\":\"h\xc3\xa9llo\",\"age\":1}");
    REJECT(obj, "{\"name\":\"toolong\",\"age\":1}");
    REJECT(obj, "{\"age\":1,\"name\":\"x\"}"); /* declared order */
    REJECT(obj, "{\"name\":\"x\"}");           /* age required */
    REJECT(obj, "{\"name\":\"x\",\"age\":1,\"tags\":[]}");
    REJECT(obj, "{\"name\":\"x\",\"age\":1,\"tags\":[\"a\",\"a\",\"a\"]}");
    REJECT(obj, "{\"name\":\"x\",\"age\":1,\"tags\":[\"c\"]}");
    REJECT(obj, "{\"name\":\"x\",\"age\":1,\"other\":1}");
    REJECT(obj, "{\"name\":\"x\",\"age\":01}");
    REJECT(obj, "{\"name\":\"x\",\"age\":1.5}");
    REJECT(obj, "{\"name\":\"\xc3\",\"age\":1}");         /* broken UTF-8 */
    REJECT(obj, "{\"name\":\"\xed\xa0\x80\",\"age\":1}"); /* a UTF-8 surrogate */
    REJECT(obj, "{\"name\":\"a\tb\",\"age\":1}");         /* raw control character */
    REJECT(obj, "{\"name\":\"\\x\",\"age\":1}");
    REJECT(obj, "{\"name\":\"\\ud83d\\ude00\",\"age\":1}"); /* no surrogate escapes: \u is one character */
    ACCEPT(obj, "{\"name\":\"\\ud7ff\\uE000\",\"age\":1}");
    REJECT(obj, " {\"name\":\"x\",\"age\":1}");     /* nothing before the document */
    REJECT(obj, "{\"name\":\"x\",\"age\":1} ");     /* nor after it */
    REJECT(obj, "{     \"name\":\"x\",\"age\":1}"); /* at most one space, or a newline and indentation */
    ACCEPT(obj, "{\n                \"name\":\"x\",\"age\":1}");
    REJECT(obj, "{\n                 \"name\":\"x\",\"age\":1}");
    PREFIX(obj, "{\"name\":\"x\",\"age\":12");

    /* extra keys: allowed unless declared */
    const char *open =
        "{\"type\":\"object\",\"properties\":{\"ab\":{\"type\":\"null\"},\"a\\\"c\":{\"type\":\"null\"}}}";
    ACCEPT(open, "{}");
    ACCEPT(open, "{\"ab\":null,\"x\":[1,{\"y\":true}],\"abc\":\"s\",\"a\":false,\"\":0}");
    REJECT(open, "{\"x\":1,\"ab\":2}"); /* a declared key as an extra key */
    REJECT(open, "{\"a\\u0062\":1}");   /* no escape before the key differs */
    REJECT(open, "{\"x\":1,\"a\\\"c\":null}");
    ACCEPT(open, "{\"zz\\u0062\":1}");
    ACCEPT("{\"type\":\"object\",\"properties\":{\"\xc3\xa9t\xc3\xa9\":{}}}",
           "{\"\xc3\xa9\":1,\"\xc3\xa9t\":2}");
    REJECT("{\"type\":\"object\",\"properties\":{\"\xc3\xa9t\xc3\xa9\":{\"type\":\"null\"}}}",
           "{\"\xc3\xa9t\xc3\xa9\":1}");

    /* any object (NULL) */
    ACCEPT(NULL, "{}");
    ACCEPT(NULL, "{\"a\":[1,2.5e-3,-0,\"x\",null,true,false,{\"b\":{}}],\"c\":[]}");
    REJECT(NULL, "[]");
    REJECT(NULL, "\"x\"");
    REJECT(NULL, "{\"a\":1,}");
    REJECT(NULL, "{\"a\":[1,]}");
    REJECT(NULL, "{\"a\":00}");
    REJECT(NULL, "{\"a\":1.}");
    REJECT(NULL, "{\"a\":1e}");
    REJECT(NULL, "{\"a\":12345678901234567}"); /* bounded digits */
    ACCEPT(NULL, "{\"a\":1234567890123456}");

    /* types, enum, const, anyOf, $ref */
    ACCEPT("{\"type\":[\"integer\",\"null\"]}", "null");
    ACCEPT("{\"type\":[\"integer\",\"null\"]}", "-12");
    REJECT("{\"type\":[\"integer\",\"null\"]}", "true");
    ACCEPT("{\"type\":\"number\"}", "-0.5E+10");
    ACCEPT("{\"type\":\"boolean\"}", "false");
    ACCEPT("{\"enum\":[\"red\",3,null,{\"k\":[1]}]}", "{\"k\":[1]}");
    REJECT("{\"enum\":[\"red\",3]}", "\"blue\"");
    ACCEPT("{\"const\":\"x\\u0001\"}", "\"x\\u0001\"");
    const char *any =
        "{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"k\":{\"const\":1}},\"required\":[\"k\"],"
        "\"additionalProperties\":false},{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\"}},"
        "\"required\":[\"k\"],\"additionalProperties\":false}]}";
    ACCEPT(any, "{\"k\":1}");
    ACCEPT(any, "{\"k\":\"1\"}");
    REJECT(any, "{\"k\":2}");
    const char *tree =
        "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},\"kids\":"
        "{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"],"
        "\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}";
    ACCEPT(tree, "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[{\"v\":4,\"kids\":[]}]}]}");
    REJECT(tree, "{\"v\":1,\"kids\":[{\"w\":2}]}");
    ACCEPT("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"ab\"");
    REJECT("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"a\"");
    REJECT("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"abcd\"");
    ACCEPT("{\"type\":\"array\",\"maxItems\":0}", "[]");
    REJECT("{\"type\":\"array\",\"maxItems\":0}", "[1]");
    ACCEPT("{\"type\":\"array\",\"minItems\":3,\"items\":{\"type\":\"integer\"}}", "[1,2,3,4,5]");
    REJECT("{\"type\":\"array\",\"minItems\":3,\"items\":{\"type\":\"integer\"}}", "[1,2]");
    ACCEPT("{\"allOf\":[{\"type\":\"null\"}]}", "null");
    ACCEPT("{\"oneOf\":[{\"type\":\"null\"},{\"type\":\"boolean\"}]}", "true");
    ACCEPT("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":1,\"b\":2}");
    REJECT("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":\"x\"}");
}

/* ---- the mask against brute force ---------------------------------------------------------- */

typedef struct {
    herd_mapped_file f;
    gguf_file g;
    herd_vocab *v;
} loaded;

static bool load(const char *path, loaded *L) {
    memset(L, 0, sizeof *L);
    struct stat st;
    if (stat(path, &st) != 0) return false;
    int rc = herd_file_map(path, &L->f);
    if (rc == 0) rc = gguf_parse(L->f.data, L->f.size, path, &L->g);
    if (rc == 0) rc = vocab_load(&L->g, path, &L->v);
    CHECK(rc == 0, "load %s: %s", path, herd_last_error());
    return rc == 0;
}

static void unload(loaded *L) {
    vocab_free(L->v);
    gguf_file_clear(&L->g);
    herd_file_unmap(&L->f);
}

static const char *SCHEMAS[] = {
    NULL,
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},\"n\":{\"type\":"
    "\"number\"},"
    "\"ok\":{\"type\":\"boolean\"},\"list\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},"
    "\"maxItems\":3}},"
    "\"required\":[\"name\",\"n\"],\"additionalProperties\":false}",
    "{\"type\":\"object\",\"properties\":{\"color\":{\"enum\":[\"red\",\"green\",\"blue\"]},\"s\":{\"type\":"
    "\"string\"}},"
    "\"required\":[\"color\",\"s\"]}",
    "{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"string\",\"minLength\":1,\"maxLength\":4},{"
    "\"type\":\"null\"}]},"
    "\"minItems\":2,\"maxItems\":4}",
};

/* A seeded random walk: at each state the mask must equal the brute-force set; then a random
 * allowed token (often a "hard" one: with a quote or a multi-byte character) is accepted. */
static void walk_vocab(const char *what, const herd_vocab *v, int walks, int steps) {
    sample_rng rng;
    sample_rng_seed(&rng, 1234);
    int32_t n = vocab_n_tokens(v);
    int32_t *pool = malloc((size_t)n * sizeof *pool);
    for (size_t si = 0; si < sizeof SCHEMAS / sizeof SCHEMAS[0]; si++) {
        for (int w = 0; w < walks; w++) {
            herd_constraint *c;
            int rc = constraint_new(v, SCHEMAS[si], &c);
            CHECK(rc == 0, "%s: schema %zu: %s", what, si, herd_last_error());
            if (rc) continue;
            constraint_set_memo(c, w % 2 == 0); /* the masks with and without reuse of recent states */
            int mismatches = 0;
            for (int st = 0; st < steps; st++) {
                int64_t na;
                const uint8_t *ok = constraint_mask(c, &na);
                int64_t cnt = 0, np = 0;
                for (int32_t id = 0; id < n; id++) {
                    bool bf = constraint_token_ok(c, id);
                    if ((bool)ok[id] != bf && mismatches++ < 5) {
                        char piece[64] = "";
                        vocab_token_to_piece(v, id, true, piece, sizeof piece - 1);
                        CHECK(false, "%s: schema %zu walk %d step %d: token %d '%s': mask %d, brute force %d",
                              what, si, w, st, id, piece, ok[id], bf);
                    }
                    if (ok[id]) {
                        cnt++;
                        if (!vocab_is_eog(v, id)) pool[np++] = id;
                    }
                }
                CHECK(cnt == na, "%s: count %lld vs %lld", what, (long long)cnt, (long long)na);
                if (herd_constraint_complete(c) && !constraint_can_continue(c)) {
                    CHECK(np == 0, "%s: complete document, yet %lld tokens allowed", what, (long long)np);
                    break;
                }
                CHECK(np > 0, "%s: schema %zu: no token allowed mid-document", what, si);
                if (np == 0) break;
                /* prefer tokens that close things or hold a quote (to get through documents) */
                int32_t pick = pool[sample_rng_next(&rng) % (uint64_t)np];
                for (int tries = 0; tries < 8; tries++) {
                    char piece[64] = "";
                    vocab_token_to_piece(v, pick, false, piece, sizeof piece - 1);
                    if (strpbrk(piece, "\"]}") || (sample_rng_next(&rng) & 3) == 0) break;
                    pick = pool[sample_rng_next(&rng) % (uint64_t)np];
                }
                CHECK(herd_constraint_accept(c, pick) == 0, "%s: accept %d: %s", what, pick,
                      herd_last_error());
            }
            /* a token that was not allowed leaves the state as it was */
            const uint8_t *ok = constraint_mask(c, NULL);
            for (int32_t id = 0; id < n; id++) {
                if (ok[id] || vocab_is_control(v, id)) continue;
                CHECK(herd_constraint_accept(c, id) == HERD_E_ARG, "%s: disallowed token %d accepted", what,
                      id);
                const uint8_t *ok2 = constraint_mask(c, NULL);
                CHECK(ok2[id] == 0, "%s: state changed by a refused token", what);
                break;
            }
            herd_constraint_free(c);
        }
    }
    free(pool);
}

static void test_real_vocab(void) {
    loaded L;
    if (!load(BPE_PATH, &L)) {
        printf("  (skipped the Llama 3 vocabulary part: %s missing; run tests/ref/setup.sh)\n", BPE_PATH);
        return;
    }
    herd_constraint *c;
    CHECK(constraint_new(L.v, NULL, &c) == 0, "%s", herd_last_error());
    int64_t na;
    const uint8_t *ok = constraint_mask(c, &na);
    int32_t lb = vocab_find(L.v, "{", 1), eot = vocab_eot(L.v), bos = vocab_bos(L.v);
    CHECK(lb >= 0 && ok[lb], "'{' allowed at the start");
    CHECK(eot >= 0 && !ok[eot], "<|eot_id|> not allowed before the document");
    CHECK(bos >= 0 && !ok[bos], "<|begin_of_text|> never allowed");
    CHECK(na < 200, "only tokens starting with '{' at the start (%lld)", (long long)na);
    /* "{}" then only end tokens */
    CHECK(herd_constraint_accept(c, vocab_find(L.v, "{}", 2)) == 0, "accept {}");
    ok = constraint_mask(c, &na);
    CHECK(herd_constraint_complete(c), "complete after {}");
    CHECK(ok[eot] && ok[vocab_eos(L.v)], "end tokens allowed once complete");
    int32_t n_eog = 0;
    for (int32_t i = 0; i < vocab_n_tokens(L.v); i++) n_eog += vocab_is_eog(L.v, i);
    CHECK(na == n_eog, "only end tokens once complete: %lld vs %d", (long long)na, n_eog);
    herd_constraint_free(c);

    /* inside a string nearly everything is allowed */
    CHECK(constraint_new(L.v, "{\"type\":\"string\"}", &c) == 0, "%s", herd_last_error());
    CHECK(herd_constraint_accept(c, vocab_find(L.v, "\"", 1)) == 0, "accept quote");
    ok = constraint_mask(c, &na);
    CHECK(na > 100000, "string content: %lld allowed", (long long)na);
    herd_constraint_free(c);

    /* greedy sampling with a constraint takes the best allowed token */
    int32_t n = vocab_n_tokens(L.v);
    float *lg = malloc((size_t)n * sizeof *lg);
    sample_rng rng;
    sample_rng_seed(&rng, 7);
    for (int32_t i = 0; i < n; i++) lg[i] = (float)sample_rng_uniform(&rng) * 10;
    lg[eot] = 100; /* the model would rather stop */
    CHECK(constraint_new(L.v, SCHEMAS[1], &c) == 0, "%s", herd_last_error());
    herd_sampler_params sp = herd_sampler_default_params();
    sp.temp = 0;
    herd_sampler *s = herd_sampler_new(&sp, n);
    herd_sampler_set_constraint(s, c);
    for (int step = 0; step < 20; step++) {
        ok = constraint_mask(c, NULL);
        int32_t best = -1;
        for (int32_t i = 0; i < n; i++)
            if (ok[i] && (best < 0 || lg[i] > lg[best])) best = i;
        int32_t got = herd_sampler_sample(s, lg);
        CHECK(got == best, "greedy step %d: %d, best allowed %d", step, got, best);
        if (vocab_is_eog(L.v, got)) break;
        herd_sampler_accept(s, got);
    }
    /* and sampling at temperature 1 never leaves the allowed set */
    herd_sampler_free(s);
    herd_constraint_free(c);
    sp = herd_sampler_default_params();
    sp.temp = 1.5f;
    sp.top_k = 0, sp.top_p = 1, sp.min_p = 0;
    CHECK(constraint_new(L.v, SCHEMAS[2], &c) == 0, "%s", herd_last_error());
    s = herd_sampler_new(&sp, n);
    herd_sampler_set_constraint(s, c);
    for (int step = 0; step < 60; step++) {
        ok = constraint_mask(c, NULL);
        int32_t got = herd_sampler_sample(s, lg);
        CHECK(ok[got], "sampled token %d not allowed", got);
        if (vocab_is_eog(L.v, got)) break;
        herd_sampler_accept(s, got);
    }
    herd_sampler_free(s);
    herd_constraint_free(c);
    free(lg);

    walk_vocab("llama-bpe", L.v, 3, 40);
    unload(&L);
    if (load(SPM_PATH, &L)) {
        walk_vocab("llama-spm", L.v, 2, 30);
        unload(&L);
    }
}

int main(void) {
    test_errors();
    test_recognizer();
    test_real_vocab();
    return TU_DONE("test_constrain");
}
