/* Tokenizer tests against llama.cpp's golden vectors and LLAMA31.md.
 *
 *   test_tokenizer                      run the tests (exit 0 pass, 77 skip, 1 fail)
 *   test_tokenizer --jsonl MODEL [--special]
 *       each stdin line is a JSON string; prints the JSON array of its ids (no BOS) per line and
 *       checks detokenize(tokenize(x)) == x (mismatches on stderr, exit 1). Used by
 *       tests/conformance/tokenizer_llama_cpp.sh. SentencePiece cannot give back U+2581 (it is its
 *       space) nor the space it puts after a special token, so for SPM texts holding U+2581, or
 *       with --special, the round trip is not checked.
 *   test_tokenizer --bench MODEL FILE   tokenizes FILE (whole, no special parsing); prints MB/s
 *   test_tokenizer --vocab MODEL        one JSON line per token: [id, eog, control, piece with
 *                                       render_special (base64), piece without (base64)]
 *
 * References (tests/ref/setup.sh): build/ref/llama.cpp/models/ggml-vocab-llama-{bpe,spm}.gguf and
 * their .inp/.out files. Missing references skip (77), or fail under CI=true. Optional, from
 * ../shared (absent on fresh CI machines): stories260K.gguf and Meta's Llama 3 tokenizer.model.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"
#include "gguf/gguf.h"
#include "testutil.h"
#include "tokenizer/vocab.h"

#define BPE_PATH "build/ref/llama.cpp/models/ggml-vocab-llama-bpe.gguf"
#define SPM_PATH "build/ref/llama.cpp/models/ggml-vocab-llama-spm.gguf"
#define STORIES_PATH "../shared/fixtures/stories260K/stories260K.gguf"
#define TIKTOKEN_PATH "../shared/fixtures/llama3/tokenizer.model"

typedef struct {
    herd_mapped_file f;
    gguf_file g;
    herd_vocab *v;
} loaded;

static int load(const char *path, loaded *L) {
    memset(L, 0, sizeof(*L));
    int rc = herd_file_map(path, &L->f);
    if (rc == 0) rc = gguf_parse(L->f.data, L->f.size, path, &L->g);
    if (rc == 0) rc = vocab_load(&L->g, path, &L->v);
    return rc; /* on failure herd_last_error() says why */
}

static void unload(loaded *L) {
    vocab_free(L->v);
    gguf_file_clear(&L->g);
    herd_file_unmap(&L->f);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static char *read_file(const char *path, size_t *len) {
    char *d = NULL;
    if (herd_file_read_all(path, (size_t)1 << 30, &d, len) != 0) return NULL;
    return d;
}

/* ---- helpers --------------------------------------------------------------------------------- */

static int64_t tok(const herd_vocab *v, const char *s, size_t n, bool bos, bool special, int32_t **ids) {
    int64_t k = -1;
    int rc = vocab_tokenize(v, s, n, bos, special, ids, &k);
    if (rc != 0) {
        fprintf(stderr, "  tokenize failed: %s\n", herd_last_error());
        *ids = NULL;
        return -1;
    }
    return k;
}

static bool ids_equal(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(int32_t)) == 0);
}

static void print_ids(const char *label, const int32_t *ids, int64_t n) {
    fprintf(stderr, "    %s:", label);
    for (int64_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

/* tokenize without BOS and check ids == want; then the round trip */
static void check_ids(const herd_vocab *v, const char *s, size_t n, bool special, const int32_t *want,
                      int64_t nwant, const char *what) {
    int32_t *ids;
    int64_t k = tok(v, s, n, false, special, &ids);
    bool ok = k >= 0 && ids_equal(ids, k, want, nwant);
    CHECK(ok, "%s: ids differ for \"%.*s\"", what, (int)(n < 80 ? n : 80), s);
    if (!ok && k >= 0) {
        print_ids("want", want, nwant);
        print_ids("got ", ids, k);
    }
    free(ids);
}

static bool round_trip(const herd_vocab *v, const char *s, size_t n, bool special) {
    int32_t *ids;
    int64_t k = tok(v, s, n, false, special, &ids);
    if (k < 0) return false;
    char *text;
    size_t len;
    bool ok = vocab_detokenize(v, ids, k, true, &text, &len) == 0 && len == n && memcmp(text, s, n) == 0;
    free(ids);
    free(text);
    return ok;
}

/* ---- llama.cpp golden vectors (.inp/.out as test-tokenizer-0 reads them; add_special false) ---- */

static int golden(const herd_vocab *v, const char *model_path, int *n_cases) {
    char inp_path[512], out_path[512];
    snprintf(inp_path, sizeof(inp_path), "%s.inp", model_path);
    snprintf(out_path, sizeof(out_path), "%s.out", model_path);
    size_t ni, no;
    char *inp = read_file(inp_path, &ni), *out = read_file(out_path, &no);
    if (!inp || !out) {
        free(inp);
        free(out);
        return -1;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep);
    char *ip = inp, *iend = inp + ni, *op = out, *oend = out + no;
    int count = 0;
    while (ip < iend) {
        char *next = memmem(ip, (size_t)(iend - ip), sep, seplen);
        size_t n = next ? (size_t)(next - ip) : (size_t)(iend - ip);
        /* the matching output line */
        char *eol = memchr(op, '\n', (size_t)(oend - op));
        if (!eol) eol = oend;
        int32_t *want = malloc(((size_t)(eol - op) / 2 + 1) * sizeof(int32_t)); /* ids are >= 2 chars apart */
        int64_t nwant = 0;
        for (char *q = op; q < eol;) {
            while (q < eol && *q == ' ') q++;
            if (q >= eol) break;
            want[nwant++] = (int32_t)strtol(q, &q, 10);
        }
        check_ids(v, ip, n, false, want, nwant, model_path);
        free(want);
        CHECK(round_trip(v, ip, n, false), "%s: round trip of \"%.*s\"", model_path, (int)(n < 60 ? n : 60),
              ip);
        count++;
        op = eol < oend ? eol + 1 : oend;
        if (!next) break;
        ip = next + seplen;
    }
    free(inp);
    free(out);
    *n_cases = count;
    return 0;
}

/* ---- Llama 3 ---------------------------------------------------------------------------------- */

static void test_llama3(const herd_vocab *v) {
    CHECK(vocab_get_kind(v) == VOCAB_BPE, "kind");
    CHECK(strcmp(vocab_pre_name(v), "llama-bpe") == 0, "pre %s", vocab_pre_name(v));
    CHECK(vocab_n_tokens(v) == 128256, "n_tokens %d", vocab_n_tokens(v));
    CHECK(vocab_bos(v) == 128000 && vocab_eos(v) == 128001, "bos %d eos %d", vocab_bos(v), vocab_eos(v));
    /* this GGUF has no add_bos_token key; llama.cpp adds BOS for the llama3 pre-tokenizer */
    CHECK(vocab_add_bos(v), "add_bos default");
    /* ggml-vocab-llama-bpe is Llama 3.0's vocabulary: 128008 is <|reserved_special_token_4|> there, 3.1
     * renamed it <|eom_id|>; EOT and EOM are found by text as llama.cpp does (no metadata keys) */
    int32_t eom = vocab_find(v, "<|eom_id|>", 10);
    CHECK(vocab_eot(v) == 128009 && vocab_eom(v) == eom, "eot %d eom %d", vocab_eot(v), vocab_eom(v));
    CHECK(vocab_is_eog(v, 128001) && vocab_is_eog(v, 128009) && (eom < 0 || vocab_is_eog(v, eom)), "eog set");
    CHECK(eom >= 0 || !vocab_is_eog(v, 128008), "reserved 128008 is not eog in 3.0");
    CHECK(!vocab_is_eog(v, 128000) && !vocab_is_eog(v, 13) && !vocab_is_eog(v, -1) &&
              !vocab_is_eog(v, 1 << 20),
          "not eog");
    CHECK(vocab_is_control(v, 128000) && !vocab_is_control(v, 2028), "control");

    /* LLAMA31.md */
    const char *s = "This is a test sentence.";
    int32_t *ids;
    int64_t n = tok(v, s, strlen(s), true, false, &ids);
    const int32_t want[] = {128000, 2028, 374, 264, 1296, 11914, 13};
    CHECK(n == 7 && ids_equal(ids, n, want, 7), "test sentence");
    if (n == 7) {
        ids = realloc(ids, 8 * sizeof(int32_t));
        ids[7] = vocab_eos(v);
        const int32_t with_eos[] = {128000, 2028, 374, 264, 1296, 11914, 13, 128001};
        CHECK(ids_equal(ids, 8, with_eos, 8), "with eos");
        char *t;
        size_t len;
        CHECK(vocab_detokenize(v, ids, 8, false, &t, &len) == 0 && strcmp(t, s) == 0,
              "detok without specials");
        free(t);
        CHECK(vocab_detokenize(v, ids, 8, true, &t, &len) == 0 &&
                  strcmp(t, "<|begin_of_text|>This is a test sentence.<|end_of_text|>") == 0,
              "detok with specials");
        free(t);
    }
    free(ids);
    check_ids(v, "system", 6, false, (int32_t[]){9125}, 1, "system");
    check_ids(v, "user", 4, false, (int32_t[]){882}, 1, "user");
    check_ids(v, "assistant", 9, false, (int32_t[]){78191}, 1, "assistant");
    check_ids(v, "\n\n", 2, false, (int32_t[]){271}, 1, "\\n\\n");
    CHECK(vocab_find(v, "<|eot_id|>", 10) == 128009, "find eot");
    CHECK(vocab_find(v, "nope-not-a-token", 16) == -1, "find missing");
    CHECK(strcmp(vocab_token_text(v, 128006), "<|start_header_id|>") == 0, "token text");
    CHECK(vocab_token_text(v, -1) == NULL && vocab_token_text(v, 128256) == NULL, "token text range");

    /* special tokens: parsed only with parse_special */
    const char *chat = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
    check_ids(v, chat, strlen(chat), true, (int32_t[]){128006, 882, 128007, 271, 13347, 128009}, 6,
              "chat special");
    n = tok(v, chat, strlen(chat), false, false, &ids);
    bool any_special = false;
    for (int64_t i = 0; i < n; i++) any_special |= ids[i] >= 128000;
    CHECK(n > 6 && !any_special, "chat without parse_special is plain text");
    free(ids);
    CHECK(round_trip(v, chat, strlen(chat), true) && round_trip(v, chat, strlen(chat), false),
          "chat round trip");
    check_ids(v, "<|begin_of_text|><|begin_of_text|>", 34, true, (int32_t[]){128000, 128000}, 2, "two bos");
    check_ids(v, "<|eot_id", 8, true, (int32_t[]){27, 91, 68, 354, 851}, 5, "partial special");

    /* token_to_piece */
    char buf[64];
    CHECK(vocab_token_to_piece(v, 128009, false, buf, sizeof(buf)) == 0, "control hidden");
    CHECK(vocab_token_to_piece(v, 128009, true, buf, sizeof(buf)) == 10 && memcmp(buf, "<|eot_id|>", 10) == 0,
          "control shown");
    CHECK(vocab_token_to_piece(v, 271, false, buf, sizeof(buf)) == 2 && memcmp(buf, "\n\n", 2) == 0,
          "piece \\n\\n");
    CHECK(vocab_token_to_piece(v, 128256, false, buf, sizeof(buf)) == -1, "piece out of range");
    CHECK(vocab_token_to_piece(v, 2028, false, buf, 1) == 4 && buf[0] == 'T', "piece truncated");
    int32_t bad = 128256;
    char *t;
    size_t len;
    CHECK(vocab_detokenize(v, &bad, 1, false, &t, &len) == HERD_E_ARG, "detok out of range");

    /* empty input */
    n = tok(v, "", 0, false, false, &ids);
    CHECK(n == 0, "empty gives no ids");
    free(ids);
    n = tok(v, "", 0, true, false, &ids);
    CHECK(n == 1 && ids[0] == 128000, "empty with bos");
    free(ids);
}

/* invalid UTF-8 and arbitrary bytes: every id in range, exact round trip, no crash */
/* (SPM adds a space after every special token, by design, so parse_special breaks its round trip) */
static void test_bytes(const herd_vocab *v, const char *name) {
    bool spm = vocab_get_kind(v) == VOCAB_SPM;
    static const char *cases[] = {
        "\x80",
        "\xff",
        "\xc3",
        "a\xc3",
        "\xc3(",
        "\xe2\x82",
        "\xe2\x82(",
        "\xf0\x9f\x98",
        "\xc0\x80",
        "\xe0\x80\x80",
        "\xed\xa0\x80",
        "\xf4\x90\x80\x80",
        "\xf8\x88\x80\x80\x80",
        "x\xfe\xfey",
        " \x80\x80 ",
        "'\x80s",
        "1\x80"
        "2",
        "\xef\xbf\xbd",
        "a\x00"
        "b",
    };
    int ok = 0, total = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i]) + (i == sizeof(cases) / sizeof(cases[0]) - 1 ? 2 : 0); /* "a\0b" */
        total++;
        ok += round_trip(v, cases[i], n, false);
    }
    /* seeded random byte strings, biased to UTF-8 lead/continuation bytes and ASCII classes */
    uint64_t seed = 0x12345678;
    char buf[256];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 1 + (size_t)(iter % 200);
        for (size_t k = 0; k < n; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(seed >> 33);
            static const char pool[] = " \t\n\r'sSlLdD09aZ.<|>_\x80\xbf\xc2\xc3\xe0\xe2\xed\xf0\xf4\xff";
            buf[k] = (r & 1) ? (char)(r >> 8) : pool[(r >> 8) % (sizeof(pool) - 1)];
        }
        total++;
        bool special = (iter & 1) && !spm;
        ok += round_trip(v, buf, n, special);
        int32_t *ids;
        int64_t k = tok(v, buf, n, false, iter & 1, &ids);
        for (int64_t j = 0; j < k; j++)
            if (ids[j] < 0 || ids[j] >= vocab_n_tokens(v)) {
                CHECK(false, "%s: id %d out of range", name, ids[j]);
                break;
            }
        free(ids);
    }
    CHECK(ok == total, "%s: %d of %d byte strings round-trip", name, ok, total);
}

/* long runs stay fast (O(n log n) merges) and round-trip */
static void test_long_runs(const herd_vocab *v, const char *name) {
    size_t n = 1 << 20;
    char *s = malloc(n);
    const char fill[] = {' ', '7', 'a', '\n', '!'};
    for (size_t f = 0; f < sizeof(fill); f++) {
        memset(s, fill[f], n);
        clock_t t0 = clock();
        bool ok = round_trip(v, s, n, false);
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        CHECK(ok, "%s: 1 MB of '%c' round-trips", name, fill[f]);
        CHECK(secs < 5, "%s: 1 MB of '%c' took %.2f s", name, fill[f], secs);
    }
    free(s);
}

static void test_spm(const herd_vocab *v) {
    CHECK(vocab_get_kind(v) == VOCAB_SPM, "spm kind");
    CHECK(vocab_bos(v) == 1 && vocab_eos(v) == 2 && vocab_add_bos(v), "spm bos/eos");
    CHECK(vocab_is_eog(v, 2), "spm eos is eog");
    int32_t *ids;
    int64_t n = tok(v, "Hello world", 11, true, false, &ids);
    const int32_t want[] = {1, 15043, 3186};
    CHECK(n == 3 && ids_equal(ids, n, want, 3), "spm hello world");
    char *t = NULL;
    size_t len;
    /* the leading space that add_space_prefix added is dropped, also after BOS */
    CHECK(n == 3 && vocab_detokenize(v, ids, n, false, &t, &len) == 0 && strcmp(t, "Hello world") == 0,
          "spm detok bos");
    free(t);
    t = NULL;
    CHECK(n == 3 && vocab_detokenize(v, ids + 1, n - 1, false, &t, &len) == 0 &&
              strcmp(t, "Hello world") == 0,
          "spm detok");
    free(t);
    free(ids);
    /* special text: with parse_special "<s>" is BOS and the text after it gets its own leading space */
    check_ids(v, "<s>Hi", 5, true, (int32_t[]){1, 6324}, 2, "spm <s>");
    n = tok(v, "", 0, false, false, &ids);
    CHECK(n == 0, "spm empty");
    free(ids);
}

/* Meta's tokenizer.model ("base64(bytes) rank" lines) against the GGUF vocabulary */
static void test_tiktoken(const herd_vocab *v) {
    size_t n;
    char *d = read_file(TIKTOKEN_PATH, &n);
    if (!d) {
        CHECK(false, "cannot read %s", TIKTOKEN_PATH);
        return;
    }
    static int8_t b64[256];
    memset(b64, -1, sizeof(b64));
    const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; i++) b64[(uint8_t)al[i]] = (int8_t)i;
    int lines = 0, bad = 0;
    char piece[512];
    for (char *p = d, *end = d + n; p < end;) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        char *sp = memchr(p, ' ', (size_t)(eol - p));
        if (sp) {
            uint32_t acc = 0;
            int bits = 0;
            size_t k = 0;
            for (char *q = p; q < sp && *q != '='; q++) {
                acc = (acc << 6) | (uint32_t)b64[(uint8_t)*q];
                bits += 6;
                if (bits >= 8 && k < sizeof(piece)) {
                    bits -= 8;
                    piece[k++] = (char)(acc >> bits);
                }
            }
            int32_t rank = (int32_t)strtol(sp + 1, NULL, 10);
            char got[512];
            int64_t m = vocab_token_to_piece(v, rank, false, got, sizeof(got));
            if (m != (int64_t)k || memcmp(got, piece, k) != 0) {
                if (bad++ < 5) fprintf(stderr, "  tiktoken rank %d differs\n", rank);
            }
            lines++;
        }
        p = eol + 1;
    }
    free(d);
    CHECK(lines == 128000 && bad == 0, "tokenizer.model: %d lines, %d differ", lines, bad);
}

/* ---- a synthetic vocabulary: user-defined tokens, partition order, fix-ups, load errors ------- */

typedef struct {
    const char *model, *pre;
    bool merges, dup, short_types, add_bos_key, add_bos;
} synth_opts;

/* GPT-2 byte-to-unicode, written out independently of the library for the test vocabulary */
static size_t byte_char(int b, char *out) {
    static int map[256];
    static bool init;
    if (!init) {
        int next = 0;
        for (int c = 0; c < 256; c++) {
            bool printable = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
            map[c] = printable ? c : 256 + next++;
        }
        init = true;
    }
    int cp = map[b];
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* ids: 0..255 the byte chars, 256 "ab", 257 "<c>" control, 258 "XY" control, 259 "YZW" control,
 * 260 "<u>" user-defined, 261 "<|eot_id|>" typed normal (llama.cpp makes it control and EOG) */
static int synth_load(const synth_opts *o, loaded *L) {
    char path[] = "/tmp/herd-test-vocab-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    close(fd);
    static char chars[256][2];
    gguf_str toks[262];
    int32_t types[262];
    for (int b = 0; b < 256; b++) {
        toks[b].ptr = chars[b];
        toks[b].len = byte_char(b, chars[b]);
        types[b] = TOKEN_TYPE_NORMAL;
    }
    const char *extra[] = {"ab", "<c>", "XY", "YZW", "<u>", "<|eot_id|>"};
    const int32_t extra_type[] = {TOKEN_TYPE_NORMAL,  TOKEN_TYPE_CONTROL,      TOKEN_TYPE_CONTROL,
                                  TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED, TOKEN_TYPE_NORMAL};
    for (int i = 0; i < 6; i++) {
        toks[256 + i] = (gguf_str){extra[i], strlen(extra[i])};
        types[256 + i] = extra_type[i];
    }
    if (o->dup) toks[257] = toks[256];
    gguf_str merges[] = {{"a b", 3}};
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "tokenizer.ggml.model", o->model, strlen(o->model));
    gguf_writer_set_str(w, "tokenizer.ggml.pre", o->pre, strlen(o->pre));
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 262);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, types, o->short_types ? 100 : 262);
    if (o->merges) gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    if (o->add_bos_key) gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", o->add_bos);
    int rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    if (rc == 0) rc = load(path, L);
    unlink(path);
    return rc;
}

static void test_synthetic(void) {
    loaded L;
    synth_opts o = {"gpt2", "llama-bpe", true, false, false, false, false};
    if (synth_load(&o, &L) != 0) {
        CHECK(false, "synthetic vocabulary loads: %s", herd_last_error());
        return;
    }
    const herd_vocab *v = L.v;
    /* no BOS key: llama.cpp's BPE default (11) and add_bos for llama-bpe */
    CHECK(vocab_bos(v) == 11 && vocab_add_bos(v), "synthetic bos %d", vocab_bos(v));
    CHECK(vocab_eot(v) == 261 && vocab_is_eog(v, 261) && vocab_is_control(v, 261),
          "eot found by text, made control");
    check_ids(v, "ab", 2, false, (int32_t[]){256}, 1, "merge");
    check_ids(v, "aab", 3, false, (int32_t[]){'a', 256}, 2, "merge right pair");
    /* user-defined tokens match with and without parse_special; control tokens only with it */
    check_ids(v, "x<u>y", 5, false, (int32_t[]){'x', 260, 'y'}, 3, "user-defined, no parse_special");
    check_ids(v, "x<u>y", 5, true, (int32_t[]){'x', 260, 'y'}, 3, "user-defined, parse_special");
    check_ids(v, "x<c>y", 5, true, (int32_t[]){'x', 257, 'y'}, 3, "control, parse_special");
    check_ids(v, "x<c>y", 5, false, (int32_t[]){'x', '<', 'c', '>', 'y'}, 5, "control as text");
    check_ids(v, "<|eot_id|>", 10, true, (int32_t[]){261}, 1, "fixed-up control");
    /* llama.cpp's order: longest special text first, so "YZW" wins over the earlier "XY" */
    check_ids(v, "XYZW", 4, true, (int32_t[]){'X', 259}, 2, "partition order");
    check_ids(v, "XYXYZW", 6, true, (int32_t[]){258, 'X', 259}, 3, "partition order 2");
    char buf[16];
    CHECK(vocab_token_to_piece(v, 260, false, buf, sizeof(buf)) == 3, "user-defined piece always shown");
    CHECK(round_trip(v, "x<u>y<c>XYZW", 12, true) && round_trip(v, "x<u>y<c>XYZW", 12, false),
          "synthetic round trip");
    unload(&L);

    o.add_bos_key = true;
    o.add_bos = false;
    CHECK(synth_load(&o, &L) == 0 && !vocab_add_bos(L.v), "add_bos_token false");
    unload(&L);
    o.add_bos_key = false;

    /* load errors: one precise line, a negative status, nothing leaked (ASan build) */
    struct {
        synth_opts o;
        int want;
    } bad[] = {
        {{"gpt2", "gpt-4o", true, false, false, false, false}, HERD_E_UNSUPPORTED},
        {{"bert", "default", true, false, false, false, false}, HERD_E_UNSUPPORTED},
        {{"gpt2", "llama-bpe", false, false, false, false, false}, HERD_E_FORMAT},
        {{"gpt2", "llama-bpe", true, true, false, false, false}, HERD_E_FORMAT},
        {{"gpt2", "llama-bpe", true, false, true, false, false}, HERD_E_FORMAT},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = synth_load(&bad[i].o, &L);
        CHECK(rc == bad[i].want, "bad vocabulary %zu: status %d, want %d (%s)", i, rc, bad[i].want,
              herd_last_error());
        if (rc == 0)
            unload(&L);
        else {
            vocab_free(L.v);
            gguf_file_clear(&L.g);
            herd_file_unmap(&L.f);
        }
    }
}

/* ---- modes ----------------------------------------------------------------------------------- */

static int jsonl_mode(const char *model, bool special) {
    loaded L;
    if (load(model, &L) != 0) {
        fprintf(stderr, "%s\n", herd_last_error());
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t r;
    int64_t lineno = 0, failures = 0;
    while ((r = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        json_error_t err;
        json_t *j = json_loadb(line, (size_t)r, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!j || !json_is_string(j)) {
            fprintf(stderr, "line %lld: not a JSON string: %s\n", (long long)lineno, err.text);
            json_decref(j);
            failures++;
            puts("null");
            continue;
        }
        const char *s = json_string_value(j);
        size_t n = json_string_length(j);
        int32_t *ids;
        int64_t k = tok(L.v, s, n, false, special, &ids);
        fputc('[', stdout);
        for (int64_t i = 0; i < k; i++) printf(i ? ",%d" : "%d", ids[i]);
        fputs("]\n", stdout);
        char *t = NULL;
        size_t len = 0;
        bool spm = vocab_get_kind(L.v) == VOCAB_SPM;
        if (spm && (special || memmem(s, n, "\xe2\x96\x81", 3))) {
            free(ids);
            json_decref(j);
            continue;
        }
        if (k < 0 || vocab_detokenize(L.v, ids, k, true, &t, &len) != 0 || len != n || memcmp(t, s, n) != 0) {
            if (failures < 20) fprintf(stderr, "line %lld: round trip differs\n", (long long)lineno);
            failures++;
        }
        free(t);
        free(ids);
        json_decref(j);
    }
    free(line);
    unload(&L);
    fflush(stdout);
    if (failures)
        fprintf(stderr, "%lld of %lld lines failed the round trip\n", (long long)failures, (long long)lineno);
    return failures ? 1 : 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_mode(const char *model, const char *file) {
    loaded L;
    if (load(model, &L) != 0) {
        fprintf(stderr, "%s\n", herd_last_error());
        return 2;
    }
    size_t n;
    char *d = read_file(file, &n);
    if (!d) {
        fprintf(stderr, "cannot read %s\n", file);
        unload(&L);
        return 2;
    }
    double best = 1e30;
    int64_t k = 0;
    for (int rep = 0; rep < 3; rep++) {
        int32_t *ids;
        double t0 = now_s();
        k = tok(L.v, d, n, false, false, &ids);
        double dt = now_s() - t0;
        free(ids);
        if (dt < best) best = dt;
    }
    printf("{\"bytes\": %zu, \"tokens\": %lld, \"seconds\": %.4f, \"mb_per_s\": %.2f}\n", n, (long long)k,
           best, n / best / 1e6);
    free(d);
    unload(&L);
    return 0;
}

static void put_base64(const char *p, size_t n) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *s = (const uint8_t *)p;
    putchar('"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w =
            (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        putchar(al[w >> 18]);
        putchar(al[(w >> 12) & 63]);
        putchar(i + 1 < n ? al[(w >> 6) & 63] : '=');
        putchar(i + 2 < n ? al[w & 63] : '=');
    }
    putchar('"');
}

static int vocab_mode(const char *model) {
    loaded L;
    if (load(model, &L) != 0) {
        fprintf(stderr, "%s\n", herd_last_error());
        return 2;
    }
    size_t cap = 1024;
    char *buf = malloc(cap);
    for (int32_t id = 0; id < vocab_n_tokens(L.v); id++) {
        printf("[%d,%d,%d,", id, vocab_is_eog(L.v, id), vocab_is_control(L.v, id));
        for (int special = 1; special >= 0; special--) {
            int64_t n = vocab_token_to_piece(L.v, id, special, buf, cap);
            if ((size_t)n > cap) {
                cap = (size_t)n;
                buf = realloc(buf, cap);
                vocab_token_to_piece(L.v, id, special, buf, cap);
            }
            put_base64(buf, (size_t)n);
            putchar(special ? ',' : ']');
        }
        putchar('\n');
    }
    free(buf);
    unload(&L);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--vocab") == 0) return vocab_mode(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "--jsonl") == 0)
        return jsonl_mode(argv[2], argc >= 4 && strcmp(argv[3], "--special") == 0);
    if (argc >= 4 && strcmp(argv[1], "--bench") == 0) return bench_mode(argv[2], argv[3]);

    bool ci = getenv("CI") && strcmp(getenv("CI"), "true") == 0;
    if (!exists(BPE_PATH) || !exists(SPM_PATH)) {
        printf("%s: llama.cpp vocabularies missing (run tests/ref/setup.sh)\n", ci ? "FAIL" : "skip");
        return ci ? 1 : 77;
    }
    loaded bpe, spm;
    if (load(BPE_PATH, &bpe) != 0 || load(SPM_PATH, &spm) != 0) {
        fprintf(stderr, "%s\n", herd_last_error());
        return 1;
    }
    int n_bpe = 0, n_spm = 0;
    CHECK(golden(bpe.v, BPE_PATH, &n_bpe) == 0 && n_bpe > 40, "bpe golden vectors (%d)", n_bpe);
    CHECK(golden(spm.v, SPM_PATH, &n_spm) == 0 && n_spm > 40, "spm golden vectors (%d)", n_spm);
    printf("golden vectors: %d llama-bpe, %d llama-spm\n", n_bpe, n_spm);
    test_llama3(bpe.v);
    test_synthetic();
    test_spm(spm.v);
    test_bytes(bpe.v, "llama-bpe");
    test_bytes(spm.v, "llama-spm");
    test_long_runs(bpe.v, "llama-bpe");
    test_long_runs(spm.v, "llama-spm");

    if (exists(TIKTOKEN_PATH))
        test_tiktoken(bpe.v);
    else
        printf("note: %s absent, tiktoken comparison skipped\n", TIKTOKEN_PATH);

    if (exists(STORIES_PATH)) {
        loaded st;
        if (load(STORIES_PATH, &st) == 0) {
            CHECK(vocab_get_kind(st.v) == VOCAB_SPM && vocab_n_tokens(st.v) == 512, "stories260K vocab");
            const char *s = "Once upon a time, there was a little girl named Lily.";
            CHECK(round_trip(st.v, s, strlen(s), false), "stories260K round trip");
            test_bytes(st.v, "stories260K");
            unload(&st);
        } else {
            CHECK(false, "stories260K loads: %s", herd_last_error());
        }
    } else {
        printf("note: %s absent (no ../shared), stories260K part skipped\n", STORIES_PATH);
    }
    unload(&bpe);
    unload(&spm);
    return TU_DONE("test_tokenizer");
}
