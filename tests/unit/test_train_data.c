/* The training data loader (src/train/data.h) with the Llama 3.1 vocabulary:
 *   test_train_data                     run the tests (exit 0 pass, 77 skip, 1 fail)
 *   test_train_data --dump OBJ MODEL FILE SEQ_LEN
 *                                       load FILE (cpt / sft / dpo / distill, no shuffling) and print
 *                                       each sequence as {"line", "tokens", "target"} — for
 *                                       tests/conformance/train_data.sh, which compares it with
 *                                       `herd format --tokens` and `herd tokenize`.
 * Covered: cpt windows (count, overlap, targets, separators, no separator, empty documents, many
 * documents), sft masks checked by detokenizing the targets (system / user / assistant / tool calls /
 * tool results / several assistant turns / built-in tools), train_on_input, overlong truncate vs skip,
 * dpo pairs (prompt / messages, string / object / array responses), and the file:line: field of the
 * errors. Needs build/ref/llama31-vocab.gguf (tests/ref/setup.sh): 77 without it, fail under CI=true. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herd.h"
#include "testutil.h"
#include "train/data.h"

#define VOCAB31 "build/ref/llama31-vocab.gguf"

static herd_model *g_m;
static char g_dir[256], g_path[320];
static int32_t g_eot_text, g_eot, g_eom; /* <|end_of_text|>, <|eot_id|>, <|eom_id|> */

/* Writes the file data.jsonl (or data.txt) in the scratch folder and returns its path. */
static const char *put(const char *name, const char *text) {
    snprintf(g_path, sizeof g_path, "%s/%s", g_dir, name);
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return g_path;
}

static train_data_params params(int obj, int64_t seq_len) {
    return (train_data_params){
        .objective = obj, .seq_len = seq_len, .train_on_input = false, .overlong = TRAIN_OVERLONG_TRUNCATE};
}

static int load(const char *text, const train_data_params *p, train_data *d) {
    return train_data_load(g_m, put(p->objective == TRAIN_OBJ_CPT ? "data.txt" : "data.jsonl", text), p, d);
}

static int32_t *tok(const char *text, int64_t *n) {
    int32_t *ids;
    if (herd_tokenize(g_m, text, strlen(text), HERD_TOKENIZE_ADD_BOS, &ids, n) != 0) abort();
    return ids;
}

/* The text of the targets of s, in order (special tokens shown). Caller frees. */
static char *target_text(const train_seq *s) {
    int32_t *ids = malloc((size_t)s->n * sizeof *ids);
    int64_t k = 0;
    for (int64_t i = 0; i < s->n; i++)
        if (s->target[i]) ids[k++] = s->tokens[i];
    char *text;
    size_t len;
    if (herd_detokenize(g_m, ids, k, true, &text, &len) != 0) abort();
    free(ids);
    return text;
}

/* herd_chat_tokenize of a messages JSON (no generation prompt, optional tools): what `herd format
 * --tokens --no-generation-prompt` prints. */
static int32_t *chat_ids(const char *messages, const char *tools, int64_t *n) {
    herd_chat_message *msgs;
    size_t nm;
    void *owner;
    if (herd_chat_parse_messages(messages, strlen(messages), &msgs, &nm, &owner) != 0) abort();
    herd_chat_params p = {.tools_json = tools};
    int32_t *ids;
    if (herd_chat_tokenize(g_m, msgs, nm, &p, &ids, n) != 0) abort();
    herd_chat_messages_free(owner);
    return ids;
}

static bool same(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    return na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}

static void check_totals(const train_data *d, const char *what) {
    int64_t nt = 0, ng = 0;
    for (int64_t i = 0; i < d->n_seqs; i++) {
        nt += d->seqs[i].n;
        for (int64_t j = 0; j < d->seqs[i].n; j++) ng += d->seqs[i].target[j];
        CHECK(d->seqs[i].target[0] == 0, "%s: seq %lld: the first token is a target", what, (long long)i);
    }
    CHECK(nt == d->n_tokens && ng == d->n_targets, "%s: totals %lld/%lld, counted %lld/%lld", what,
          (long long)d->n_tokens, (long long)d->n_targets, (long long)nt, (long long)ng);
}

/* ---- cpt -------------------------------------------------------------------------------------- */

/* The windows of `text` must be those of the stream `want` (n_want tokens). */
static void check_windows(const char *text, int64_t T, const int32_t *want, int64_t n_want,
                          const char *what) {
    train_data d;
    train_data_params p = params(TRAIN_OBJ_CPT, T);
    CHECK(load(text, &p, &d) == 0, "%s: %s", what, herd_last_error());
    int64_t n_win = 0;
    for (int64_t s = 0; n_want - s >= 2; s += T) n_win++;
    CHECK(d.n_seqs == n_win && d.n_examples == n_win, "%s: %lld windows, want %lld", what,
          (long long)d.n_seqs, (long long)n_win);
    for (int64_t k = 0; k < d.n_seqs && k < n_win; k++) {
        const train_seq *w = &d.seqs[k];
        int64_t n = n_want - k * T < T + 1 ? n_want - k * T : T + 1;
        CHECK(w->n == n && same(w->tokens, w->n, want + k * T, n) && w->line == k, "%s: window %lld", what,
              (long long)k);
        bool targets = w->target[0] == 0;
        for (int64_t i = 1; i < w->n; i++) targets &= w->target[i] == 1;
        CHECK(targets, "%s: window %lld: every token but the first is a target", what, (long long)k);
        if (k + 1 < d.n_seqs)
            CHECK(w->tokens[w->n - 1] == d.seqs[k + 1].tokens[0],
                  "%s: windows %lld and %lld overlap by one token", what, (long long)k, (long long)k + 1);
    }
    int64_t nt = 0;
    for (int64_t k = 0; k < n_win; k++) nt += n_want - k * T < T + 1 ? n_want - k * T : T + 1;
    CHECK(d.n_tokens == nt && d.n_targets == nt - n_win, "%s: %lld tokens, %lld targets; want %lld, %lld",
          what, (long long)d.n_tokens, (long long)d.n_targets, (long long)nt, (long long)(nt - n_win));
    check_totals(&d, what);
    train_data_free(&d);
}

/* the stream of documents: each tokenized with BOS, then <|end_of_text|> */
static int32_t *stream(const char *const *docs, int n_docs, int64_t *n) {
    int32_t *out = NULL;
    int64_t cap = 0;
    *n = 0;
    for (int i = 0; i < n_docs; i++) {
        int64_t k;
        int32_t *ids = tok(docs[i], &k);
        if (*n + k + 1 > cap) out = realloc(out, (size_t)(cap = 2 * (*n + k + 1)) * sizeof *out);
        memcpy(out + *n, ids, (size_t)k * sizeof *ids);
        *n += k;
        out[(*n)++] = g_eot_text;
        free(ids);
    }
    return out;
}

static void test_cpt(void) {
    const char *plain = "The quick brown fox jumps over the lazy dog. Then it naps in the sun, twice.";
    int64_t n;
    int32_t *want = stream(&plain, 1, &n);
    for (int64_t T = 1; T <= n + 1; T++) check_windows(plain, T, want, n, "no separator");
    free(want);

    const char *docs[] = {"First document.", "Second one,\nwith a newline.",
                          "\nthird (a leading newline is kept)"};
    want = stream(docs, 3, &n);
    check_windows(
        "First document.<|end_of_text|>Second one,\nwith a newline.<|end_of_text|>\nthird (a leading "
        "newline is kept)",
        5, want, n, "separators, no trailing one");
    check_windows(
        "First document.<|end_of_text|>Second one,\nwith a newline.<|end_of_text|>\nthird (a leading "
        "newline is kept)<|end_of_text|>\n",
        7, want, n, "separators, trailing one and a newline");
    check_windows(
        "<|end_of_text|>First document.<|end_of_text|><|end_of_text|> \n\t<|end_of_text|>Second one,\nwith "
        "a newline.<|end_of_text|>\nthird (a leading newline is kept)<|end_of_text|><|end_of_text|>",
        3, want, n, "empty and blank documents");
    free(want);

    /* the separator is the token, not its text; the whole stream of a two-document file */
    train_data d;
    train_data_params p = params(TRAIN_OBJ_CPT, 1000);
    CHECK(load("a<|end_of_text|>b", &p, &d) == 0 && d.n_seqs == 1 && d.seqs[0].n == 6 &&
              d.seqs[0].tokens[2] == g_eot_text && d.seqs[0].tokens[5] == g_eot_text,
          "'a<|end_of_text|>b': BOS a EOT BOS b EOT");
    train_data_free(&d);
    CHECK(load("", &p, &d) == 0 && d.n_seqs == 0 && d.n_tokens == 0, "an empty file: no windows");
    train_data_free(&d);
    CHECK(load("<|end_of_text|>\n<|end_of_text|>", &p, &d) == 0 && d.n_seqs == 0,
          "only empty documents: no windows");
    train_data_free(&d);

    /* many documents (20,000): each its own tokenizer call, the stream linear in the file */
    enum { N_DOCS = 20000 };
    char *big = malloc(N_DOCS * 40), *q = big;
    const char **many = malloc(N_DOCS * sizeof *many);
    char *texts = malloc(N_DOCS * 32);
    for (int i = 0; i < N_DOCS; i++) {
        many[i] = texts + i * 32;
        snprintf(texts + i * 32, 32, "doc %d says hi.", i);
        q += sprintf(q, "%s<|end_of_text|>", many[i]);
    }
    want = stream(many, N_DOCS, &n);
    check_windows(big, 256, want, n, "20,000 documents");
    free(want);
    free(many);
    free(texts);
    free(big);
}

/* ---- sft -------------------------------------------------------------------------------------- */

#define CONV                                                                                                 \
    "[{\"role\": \"system\", \"content\": \"You are a weather bot.\"},"                                      \
    "{\"role\": \"user\", \"content\": \"Weather in Paris?\"},"                                              \
    "{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"type\": \"function\", \"function\": "  \
    "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}]},"                      \
    "{\"role\": \"tool\", \"content\": \"{\\\"temp\\\": 21}\"},"                                             \
    "{\"role\": \"assistant\", \"content\": \"  It is 21 degrees.\\n\"},"                                    \
    "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"And \"}, {\"type\": \"text\", "     \
    "\"text\": \"tomorrow?\"}]},"                                                                            \
    "{\"role\": \"assistant\", \"content\": [{\"type\": \"text\", \"text\": \"No forecast, sorry.\"}]}]"
#define TOOLS                                                                                                \
    "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather "        \
    "now.\", "                                                                                               \
    "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}]"
#define CONV_TARGETS                                                                                         \
    "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>It is 21 "                  \
    "degrees.<|eot_id|>"                                                                                     \
    "No forecast, sorry.<|eot_id|>"

static void test_sft(void) {
    train_data d;
    train_data_params p = params(TRAIN_OBJ_SFT, 4096);
    const char *file =
        "\n{\"messages\": " CONV ", \"tools\": " TOOLS ", \"id\": \"ignored\"}\n\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
        "\"content\": \"Hello!\"}]}\r\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"no answer\"}]}\n"
        "{\"messages\": [{\"role\": \"developer\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
        "\"content\": \"Search cats\"}, {\"role\": \"assistant\", \"tool_calls\": [{\"function\": "
        "{\"name\": \"brave_search\", \"arguments\": {\"query\": \"cats\"}}}]}, {\"role\": \"ipython\", "
        "\"content\": \"cats are mammals\"}, {\"role\": \"assistant\", \"content\": \"Cats are "
        "mammals.\"}], \"builtin_tools\": [\"brave_search\"]}";
    CHECK(load(file, &p, &d) == 0, "%s", herd_last_error());
    CHECK(d.n_seqs == 3 && d.n_examples == 3 && d.n_skipped == 1 && d.n_truncated == 0,
          "3 conversations kept, the one without an assistant message skipped (%lld, %lld)",
          (long long)d.n_seqs, (long long)d.n_skipped);
    if (d.n_seqs == 3) {
        int64_t n;
        int32_t *want = chat_ids(CONV, TOOLS, &n);
        CHECK(same(d.seqs[0].tokens, d.seqs[0].n, want, n), "tokens = herd_chat_tokenize (with tools)");
        free(want);
        char *t = target_text(&d.seqs[0]);
        CHECK(!strcmp(t, CONV_TARGETS), "targets: the assistant bodies\n got: %s\nwant: %s", t, CONV_TARGETS);
        free(t);
        CHECK(d.seqs[0].line == 2 && d.seqs[1].line == 4 && d.seqs[2].line == 6, "lines %lld %lld %lld",
              (long long)d.seqs[0].line, (long long)d.seqs[1].line, (long long)d.seqs[2].line);
        t = target_text(&d.seqs[1]);
        CHECK(!strcmp(t, "Hello!<|eot_id|>"), "a CRLF line: %s", t);
        free(t);
        t = target_text(&d.seqs[2]);
        CHECK(!strcmp(t,
                      "<|python_tag|>brave_search.call(query=\"cats\")<|eom_id|>Cats are mammals.<|eot_id|>"),
              "built-in tools: the call ends with <|eom_id|>: %s", t);
        free(t);
        /* the header (its "\n\n" last) is not a target; the body and its closing token are */
        const train_seq *s = &d.seqs[1];
        int64_t f = 0, nl;
        while (f < s->n && !s->target[f]) f++;
        int32_t *nn;
        if (herd_tokenize(g_m, "\n\n", 2, 0, &nn, &nl) != 0) abort();
        CHECK(f > 0 && f < s->n && s->tokens[f - 1] == nn[0] && s->tokens[s->n - 1] == g_eot &&
                  s->target[s->n - 1],
              "the first target follows the header's \\n\\n; the eot is a target");
        free(nn);
    }
    check_totals(&d, "sft");
    int64_t targets = d.n_targets;
    train_data_free(&d);

    p.train_on_input = true;
    CHECK(load(file, &p, &d) == 0 && d.n_seqs == 4 && d.n_skipped == 0, "train_on_input: all 4 kept (%lld)",
          (long long)d.n_seqs);
    CHECK(d.n_targets == d.n_tokens - d.n_seqs && d.n_targets > targets,
          "train_on_input: every token but the first");
    check_totals(&d, "sft train_on_input");
    train_data_free(&d);

    /* overlong: the "Hi/Hello!" conversation is 33 tokens; "Hello!<|eot_id|>" are its last two */
    const char *hi = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                     "\"content\": \"Hello!\"}]}\n";
    p = params(TRAIN_OBJ_SFT, 4096);
    CHECK(load(hi, &p, &d) == 0 && d.n_seqs == 1, "hi");
    int64_t full = d.n_seqs ? d.seqs[0].n : 0;
    train_data_free(&d);
    p.seq_len = full - 2; /* keeps all but the last token: "Hello!" stays a target */
    CHECK(load(hi, &p, &d) == 0 && d.n_seqs == 1 && d.seqs[0].n == full - 1 && d.n_truncated == 1 &&
              d.n_skipped == 0,
          "truncate: cut to seq_len + 1 and counted");
    if (d.n_seqs == 1) {
        char *t = target_text(&d.seqs[0]);
        CHECK(!strcmp(t, "Hello!"), "truncated targets: %s", t);
        free(t);
    }
    train_data_free(&d);
    int64_t nh;
    int32_t *h = tok("Hello!", &nh);
    free(h);
    p.seq_len = full - nh - 1; /* cut before "Hello!" (nh - 1 tokens without BOS): no target left, skipped */
    CHECK(load(hi, &p, &d) == 0 && d.n_seqs == 0 && d.n_truncated == 0 && d.n_skipped == 1,
          "truncated to no target: skipped");
    train_data_free(&d);
    p.seq_len = full - 1; /* fits exactly */
    CHECK(load(hi, &p, &d) == 0 && d.n_seqs == 1 && d.n_truncated == 0, "seq_len + 1 tokens fit");
    train_data_free(&d);
    p.seq_len = full - 2;
    p.overlong = TRAIN_OVERLONG_SKIP;
    CHECK(load(hi, &p, &d) == 0 && d.n_seqs == 0 && d.n_truncated == 0 && d.n_skipped == 1,
          "skip: dropped, counted");
    train_data_free(&d);

    /* distill reads JSONL like sft, and raw text like cpt */
    p = params(TRAIN_OBJ_DISTILL, 4096);
    CHECK(load(hi, &p, &d) == 0 && d.n_seqs == 1 && d.seqs[0].n == full, "distill on JSONL = sft");
    train_data_free(&d);
    CHECK(train_data_load(g_m, put("data.txt", "plain text"), &p, &d) == 0 && d.n_seqs == 1 &&
              d.seqs[0].n == 4,
          "distill on text = cpt");
    train_data_free(&d);
}

/* ---- dpo -------------------------------------------------------------------------------------- */

static void check_pair(const train_data *d, int64_t i, const char *prompt_msgs, const char *chosen,
                       const char *rejected, const char *what) {
    int64_t np;
    int32_t *prompt = chat_ids(prompt_msgs, NULL, &np);
    for (int k = 0; k < 2; k++) {
        const train_seq *s = &d->seqs[2 * i + k];
        bool ok = s->n > np && same(s->tokens, np, prompt, np);
        for (int64_t j = 0; j < np && j < s->n; j++) ok &= s->target[j] == 0;
        CHECK(ok, "%s: %s starts with the prompt, no target in it", what, k ? "rejected" : "chosen");
        char *t = target_text(s);
        CHECK(!strcmp(t, k ? rejected : chosen), "%s: %s targets '%s'", what, k ? "rejected" : "chosen", t);
        free(t);
    }
    free(prompt);
}

static void test_dpo(void) {
    train_data d;
    train_data_params p = params(TRAIN_OBJ_DPO, 4096);
    const char *file =
        "{\"prompt\": \"Capital of France?\", \"chosen\": \"Paris.\", \"rejected\": {\"role\": "
        "\"assistant\", "
        "\"content\": \"Lyon.\"}}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Capital of France?\"}], \"chosen\": [{\"role\": "
        "\"assistant\", \"content\": \"Paris.\"}], \"rejected\": \"Lyon.\"}\n"
        "\n"
        "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": "
        "\"2^10?\"}], "
        "\"chosen\": [{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"calc\", "
        "\"arguments\": "
        "{\"x\": \"2^10\"}}}]}, {\"role\": \"tool\", \"content\": \"1024\"}, {\"role\": \"assistant\", "
        "\"content\": "
        "\"1024\"}], \"rejected\": \"1000\"}\n";
    CHECK(load(file, &p, &d) == 0, "%s", herd_last_error());
    CHECK(d.n_examples == 3 && d.n_seqs == 6 && d.n_skipped == 0, "3 pairs, 6 sequences (%lld)",
          (long long)d.n_seqs);
    if (d.n_seqs == 6) {
        const char *fr = "[{\"role\": \"user\", \"content\": \"Capital of France?\"}]";
        check_pair(&d, 0, fr, "Paris.<|eot_id|>", "Lyon.<|eot_id|>", "prompt, string / object");
        check_pair(&d, 1, fr, "Paris.<|eot_id|>", "Lyon.<|eot_id|>", "messages, array / string");
        CHECK(same(d.seqs[0].tokens, d.seqs[0].n, d.seqs[2].tokens, d.seqs[2].n) &&
                  same(d.seqs[1].tokens, d.seqs[1].n, d.seqs[3].tokens, d.seqs[3].n),
              "\"prompt\" is one user message");
        check_pair(
            &d, 2,
            "[{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"2^10?\"}]",
            "{\"name\": \"calc\", \"parameters\": {\"x\": \"2^10\"}}<|eot_id|>1024<|eot_id|>",
            "1000<|eot_id|>", "a tool round in the chosen response: the result is no target");
        CHECK(d.seqs[0].line == 1 && d.seqs[1].line == 1 && d.seqs[4].line == 4, "pair lines");
    }
    check_totals(&d, "dpo");
    train_data_free(&d);

    /* a pair is truncated or skipped as a pair */
    const char *pair = "{\"prompt\": \"Q\", \"chosen\": \"A short answer.\", \"rejected\": \"A\"}\n";
    CHECK(load(pair, &p, &d) == 0 && d.n_seqs == 2, "pair");
    int64_t nc = d.n_seqs == 2 ? d.seqs[0].n : 0, nr = d.n_seqs == 2 ? d.seqs[1].n : 0;
    train_data_free(&d);
    p.seq_len = nc - 2; /* the chosen one is 1 too long; the rejected one fits */
    CHECK(nr <= nc - 1 && load(pair, &p, &d) == 0 && d.n_seqs == 2 && d.seqs[0].n == nc - 1 &&
              d.seqs[1].n == nr && d.n_truncated == 1 && d.n_examples == 1,
          "truncate: the long one is cut, the pair counted once");
    train_data_free(&d);
    p.overlong = TRAIN_OVERLONG_SKIP;
    CHECK(load(pair, &p, &d) == 0 && d.n_seqs == 0 && d.n_skipped == 1, "skip: both go");
    train_data_free(&d);
    p = params(TRAIN_OBJ_DPO,
               nr - 3); /* the rejected response is cut before its first target: the pair goes */
    CHECK(load(pair, &p, &d) == 0 && d.n_seqs == 0 && d.n_skipped == 1 && d.n_truncated == 0,
          "a pair where one side has no target left is skipped");
    train_data_free(&d);
}

/* ---- errors ----------------------------------------------------------------------------------- */

static void expect_err(int obj, const char *file, int line, const char *field, const char *what) {
    train_data d;
    train_data_params p = params(obj, 4096);
    int rc = load(file, &p, &d);
    char want[512];
    snprintf(want, sizeof want, "%s:%d: %s", g_path, line, field);
    const char *e = herd_last_error();
    CHECK(rc == HERD_E_FORMAT && strstr(e, want) && !strchr(e, '\n') && d.n_seqs == 0 && d.seqs == NULL,
          "%s: rc %d, error '%s', want '%s...'", what, rc, e, want);
    train_data_free(&d);
}

#define OK_LINE                                                                                              \
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": "     \
    "\"Yo\"}]}\n"
#define U(c) "{\"role\": \"user\", \"content\": " c "}"

static void test_errors(void) {
    int S = TRAIN_OBJ_SFT, D = TRAIN_OBJ_DPO;
    expect_err(S, OK_LINE "{\"messages\": [\n", 2, "invalid JSON at column", "a line cut short");
    expect_err(S, OK_LINE "\n\nnot json\n", 4, "invalid JSON at column", "blank lines count");
    expect_err(S, "{\"messages\": [], \"messages\": []}", 1, "invalid JSON at column", "duplicate key");
    expect_err(S, "[" U("\"x\"") "]", 1, "expected a JSON object", "an array line");
    expect_err(S, "{\"msgs\": []}", 1, "messages: missing", "no messages");
    expect_err(S, "{\"messages\": \"Hi\"}", 1, "messages: expected an array of messages, got a string",
               "messages a string");
    expect_err(S, "{\"messages\": [\"Hi\"]}", 1, "messages[0]: expected a message object",
               "message a string");
    expect_err(S, "{\"messages\": [{\"content\": \"Hi\"}]}", 1, "messages[0].role: missing", "no role");
    expect_err(S, "{\"messages\": [" U("\"a\"") ", {\"role\": \"narrator\", \"content\": \"b\"}]}", 1,
               "messages[1].role: expected one of system, user, assistant, tool, ipython", "unknown role");
    expect_err(S, "{\"messages\": [{\"role\": 3, \"content\": \"b\"}]}", 1,
               "messages[0].role: expected one of", "role a number");
    expect_err(S, OK_LINE OK_LINE "{\"messages\": [" U("\"a\"") ", " U("42") "]}", 3,
               "messages[1].content: expected a string or an array of text parts, got a number",
               "content a number");
    expect_err(
        S, "{\"messages\": [" U("[{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"image_url\"}]") "]}", 1,
        "messages[0].content[1]: expected a text part", "an image part");
    expect_err(S, "{\"messages\": [{\"role\": \"user\"}]}", 1, "messages[0].content: missing", "no content");
    expect_err(S, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\", \"tool_calls\": [{}]}]}", 1,
               "messages[0].tool_calls: only assistant messages", "a user's tool call");
    const char *call = "{\"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}";
    char line[1024];
    snprintf(line, sizeof line,
             "{\"messages\": [" U("\"a\"") ", {\"role\": \"assistant\", \"tool_calls\": [%s, %s]}]}", call,
             call);
    expect_err(S, line, 1,
               "messages[1].tool_calls: Llama 3.1 renders exactly one tool call per message, got 2",
               "two tool calls");
    expect_err(S,
               "{\"messages\": [" U(
                   "\"a\"") ", {\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": "
                            "\"f\", \"arguments\": \"[1]\"}}]}]}",
               1, "messages[1].tool_calls[0].function.arguments", "arguments not an object");
    expect_err(S,
               "{\"messages\": [" U("\"a\"") ", {\"role\": \"assistant\", \"tool_calls\": [{\"function\": "
                                             "{\"arguments\": {}}}]}]}",
               1, "messages[1].tool_calls[0].function.name", "a call without a name");
    expect_err(S, "{\"messages\": [" U("\"a\"") "], \"tools\": {\"type\": \"function\"}}", 1,
               "tools: expected an array of tool definitions", "tools an object");
    expect_err(
        S,
        "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}], \"tools\": [{\"type\": \"function\"}]}",
        1, "chat: cannot put tools in the first user message", "tools without a user message");
    expect_err(D, "{\"prompt\": \"Q\", \"rejected\": \"b\"}", 1, "chosen: missing", "dpo without chosen");
    expect_err(D, "{\"prompt\": \"Q\", \"chosen\": \"a\", \"rejected\": 5}", 1,
               "rejected: expected a string, a message object or an array of messages, got a number",
               "rejected a number");
    expect_err(
        D,
        "{\"prompt\": \"Q\", \"chosen\": [{\"role\": \"assistant\", \"content\": \"a\"}, {\"role\": \"bot\", "
        "\"content\": \"b\"}], \"rejected\": \"c\"}",
        1, "chosen[1].role: expected one of", "a bad role in a chosen array");
    expect_err(D, "{\"prompt\": \"Q\", \"chosen\": {\"role\": \"assistant\"}, \"rejected\": \"c\"}", 1,
               "chosen.content: missing", "a chosen object without content");
    expect_err(D, "{\"prompt\": [\"Q\"], \"chosen\": \"a\", \"rejected\": \"b\"}", 1,
               "prompt: expected a string", "prompt an array");
    expect_err(D, "{\"prompt\": \"Q\", \"messages\": [], \"chosen\": \"a\", \"rejected\": \"b\"}", 1,
               "prompt: give \"messages\" or \"prompt\", not both", "both prompt and messages");
    expect_err(D, "{\"chosen\": \"a\", \"rejected\": \"b\"}", 1, "messages: missing", "no prompt");
    expect_err(D, "{\"prompt\": \"Q\", \"chosen\": [], \"rejected\": \"b\"}", 1,
               "chosen: expected at least one message", "an empty chosen array");

    train_data d;
    train_data_params p = params(S, 16);
    snprintf(g_path, sizeof g_path, "%s/missing.jsonl", g_dir);
    CHECK(train_data_load(g_m, g_path, &p, &d) == HERD_E_IO && strstr(herd_last_error(), "missing.jsonl"),
          "a missing file: HERD_E_IO naming it (%s)", herd_last_error());
    p.seq_len = 0;
    CHECK(train_data_load(g_m, put("data.jsonl", OK_LINE), &p, &d) == HERD_E_ARG, "seq_len 0");
    p.seq_len = (int64_t)1 << 40;
    CHECK(train_data_load(g_m, put("data.jsonl", OK_LINE), &p, &d) == HERD_E_ARG, "seq_len 2^40");
}

/* ---- --dump for tests/conformance/train_data.sh ---------------------------------------------- */

static int dump(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: test_train_data --dump cpt|sft|dpo|distill MODEL FILE SEQ_LEN\n");
        return 2;
    }
    const char *objs[] = {"cpt", "sft", "dpo", "distill"};
    int obj = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(argv[2], objs[i])) obj = i;
    herd_model *m;
    if (obj < 0 || herd_model_load_vocab(argv[3], &m) != 0) {
        fprintf(stderr, "test_train_data: %s\n", obj < 0 ? "unknown objective" : herd_last_error());
        return 1;
    }
    train_data_params p = params(obj, atoll(argv[5]));
    train_data d;
    int rc = train_data_load(m, argv[4], &p, &d);
    if (rc) fprintf(stderr, "test_train_data: %s\n", herd_last_error());
    for (int64_t i = 0; rc == 0 && i < d.n_seqs; i++) {
        const train_seq *s = &d.seqs[i];
        printf("{\"line\": %lld, \"tokens\": [", (long long)s->line);
        for (int64_t j = 0; j < s->n; j++) printf("%s%d", j ? ", " : "", s->tokens[j]);
        printf("], \"target\": [");
        for (int64_t j = 0; j < s->n; j++) printf("%s%d", j ? ", " : "", s->target[j]);
        printf("]}\n");
    }
    train_data_free(&d);
    herd_model_free(m);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--dump")) return dump(argc, argv);
    if (herd_model_load_vocab(VOCAB31, &g_m) != HERD_OK) {
        bool ci = getenv("CI") && !strcmp(getenv("CI"), "true");
        printf("skipped: %s (tests/ref/setup.sh installs it)\n", herd_last_error());
        return ci ? 1 : 77;
    }
    g_eot_text = herd_vocab_find(g_m, "<|end_of_text|>");
    g_eot = herd_vocab_find(g_m, "<|eot_id|>");
    g_eom = herd_vocab_find(g_m, "<|eom_id|>");
    snprintf(g_dir, sizeof g_dir, "%s/herd-test-train-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 1;
    test_cpt();
    test_sft();
    test_dpo();
    test_errors();
    unlink(put("data.jsonl", ""));
    unlink(put("data.txt", ""));
    rmdir(g_dir);
    herd_model_free(g_m);
    return TU_DONE("test_train_data");
}
