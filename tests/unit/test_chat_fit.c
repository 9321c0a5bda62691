/* herd_chat_tokenize_fit (the context policy "shift", docs/CONTEXT.md): turns (a user message and what
 * follows it up to the next user message) go oldest first, only as many as needed for the prompt plus the
 * reserve to fit; the leading system messages and the last turn always stay; the ids are exactly
 * herd_chat_tokenize's over the kept messages (custom tools move to the first user message left); a
 * conversation that cannot fit is HERD_E_RANGE. Needs build/ref/llama31-vocab.gguf (tests/ref/setup.sh):
 * skipped (77) without it, failed under CI=true. */
#include <stdlib.h>
#include <string.h>

#include "herd.h"
#include "testutil.h"

#define VOCAB31 "build/ref/llama31-vocab.gguf"

static herd_model *m;

static int64_t count(const herd_chat_message *msgs, size_t n, const herd_chat_params *p) {
    int32_t *ids;
    int64_t k;
    if (herd_chat_tokenize(m, msgs, n, p, &ids, &k) != HERD_OK) return -1;
    free(ids);
    return k;
}

/* fit msgs[0..n) into n_ctx with reserve; expect `drop` messages from `from` left out (drop < 0: E_RANGE) */
static void expect(const char *what, const herd_chat_message *msgs, size_t n, const herd_chat_params *p, int64_t n_ctx,
                   int64_t reserve, size_t from, int drop) {
    int32_t *ids;
    int64_t k;
    size_t f, d;
    int rc = herd_chat_tokenize_fit(m, msgs, n, p, n_ctx, reserve, &f, &d, &ids, &k);
    if (drop < 0) {
        CHECK(rc == HERD_E_RANGE && strstr(herd_last_error(), "context holds"), "%s: expected E_RANGE, got %d (%s)", what,
              rc, herd_last_error());
        return;
    }
    CHECK(rc == HERD_OK && f == from && d == (size_t)drop, "%s: rc %d, dropped [%zu, +%zu), want [%zu, +%d]: %s", what,
          rc, f, d, from, drop, herd_last_error());
    if (rc != HERD_OK) return;
    herd_chat_message kept[16];
    size_t nk = 0;
    for (size_t i = 0; i < n; i++)
        if (i < from || i >= from + (size_t)drop) kept[nk++] = msgs[i];
    int32_t *want;
    int64_t nw;
    CHECK(herd_chat_tokenize(m, kept, nk, p, &want, &nw) == HERD_OK && nw == k &&
              memcmp(want, ids, (size_t)k * sizeof *ids) == 0,
          "%s: ids are not herd_chat_tokenize's over the kept messages", what);
    CHECK(k + (reserve > 0 ? reserve : 1) <= n_ctx, "%s: %lld + %lld does not fit %lld", what, (long long)k, (long long)reserve,
          (long long)n_ctx);
    free(want);
    free(ids);
}

int main(void) {
    if (herd_model_load_vocab(VOCAB31, &m) != HERD_OK) {
        bool ci = getenv("CI") && !strcmp(getenv("CI"), "true");
        printf("skipped: %s (tests/ref/setup.sh installs it)\n", herd_last_error());
        return ci ? 1 : 77;
    }
    herd_chat_params p = {.add_generation_prompt = true};
    herd_chat_message c[] = {{.role = "system", .content = "You are terse."},
                             {.role = "user", .content = "First question, about apples and pears."},
                             {.role = "assistant", .content = "Apples are red; pears are green."},
                             {.role = "user", .content = "Second question, about the weather today."},
                             {.role = "assistant", .content = "It is sunny."},
                             {.role = "user", .content = "Third."}};
    int64_t full = count(c, 6, &p);
    herd_chat_message t1[] = {c[0], c[3], c[4], c[5]}, t2[] = {c[0], c[5]};
    int64_t n1 = count(t1, 4, &p), n2 = count(t2, 2, &p);
    CHECK(full > n1 && n1 > n2 && n2 > 0, "token counts %lld %lld %lld", (long long)full, (long long)n1, (long long)n2);

    /* reserve 0 counts as 1: a position to generate in */
    expect("fits", c, 6, &p, full + 1, 0, 1, 0);
    expect("one over: the first turn goes", c, 6, &p, full, 0, 1, 2);
    expect("exactly the first turn out", c, 6, &p, n1 + 1, 0, 1, 2);
    expect("one less: both earlier turns go", c, 6, &p, n1, 0, 1, 4);
    expect("reserve counts", c, 6, &p, full + 1, 5, 1, 2);
    expect("only the system prompt and the last turn fit", c, 6, &p, n2 + 1, 0, 1, 4);
    expect("not even those: E_RANGE", c, 6, &p, n2, 0, 1, -1);

    /* no system message: the turns start at 0 */
    expect("no system prompt", c + 1, 5, &p, count(c + 1, 5, &p) - 1, 0, 0, 2);

    /* a turn with a tool call and its result goes whole */
    herd_chat_params tp = {.add_generation_prompt = true, .builtin_tools = (const char *const[]){"brave_search"},
                           .n_builtin_tools = 1};
    herd_chat_message tc[] = {{.role = "system", .content = "S."},
                              {.role = "user", .content = "Search it."},
                              {.role = "assistant", .tool_name = "brave_search", .tool_arguments = "{\"query\": \"x\"}"},
                              {.role = "ipython", .content = "results"},
                              {.role = "assistant", .content = "Found it."},
                              {.role = "user", .content = "Thanks."}};
    expect("a tool-call turn goes whole", tc, 6, &tp, count(tc, 6, &tp) - 1, 0, 1, 4);

    /* custom tools live in the first user message: after a shift, in the first one left */
    herd_chat_params fp = {.add_generation_prompt = true,
                           .tools_json = "[{\"type\": \"function\", \"function\": {\"name\": \"get_time\", "
                                         "\"description\": \"The time.\", \"parameters\": {\"type\": \"object\"}}}]"};
    expect("custom tools move to the first user message left", c, 6, &fp, count(c, 6, &fp) - 1, 0, 1, 2);

    herd_model_free(m);
    return TU_DONE("test_chat_fit");
}
