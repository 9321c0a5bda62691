/* chat_tokenize (src/chat/chat_tokens.h): over every case of tests/data/chat_cases.json, its ids equal
 * herd_chat_tokenize's (and tokenizing the rendered text with special parsing, where no content holds
 * special-token text), and each message's spans are exact: [begin, body) detokenizes to its header,
 * [body, end) to the rendered text from its body to its closing token, spans in order and disjoint.
 * Needs build/ref/llama31-vocab.gguf (tests/ref/setup.sh): skipped (77) without it, failed under CI=true. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "chat/chat_tokens.h"
#include "herd.h"
#include "model/model.h"
#include "testutil.h"

#define VOCAB31 "build/ref/llama31-vocab.gguf"

static char *detok(const herd_model *m, const int32_t *ids, int64_t n) {
    char *s = NULL;
    size_t len;
    if (herd_detokenize(m, ids, n, true, &s, &len) != HERD_OK) return strdup("(detokenize failed)");
    return s;
}

static void check_case(const herd_model *m, const json_t *c, size_t ci) {
    char *mj = json_dumps(json_object_get(c, "messages"), JSON_ENCODE_ANY);
    json_t *tools = json_object_get(c, "tools"), *bt = json_object_get(c, "builtin_tools");
    char *tj = tools ? json_dumps(tools, JSON_ENCODE_ANY) : NULL;
    const char *names[8];
    int n_names = 0;
    for (size_t i = 0; i < json_array_size(bt) && n_names < 8; i++)
        names[n_names++] = json_string_value(json_array_get(bt, i));
    json_t *in_user = json_object_get(c, "tools_in_user_message"), *date = json_object_get(c, "date_string");
    herd_chat_params p = {.date_string = json_string_value(date),
                          .add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt")),
                          .tools_json = tj,
                          .tools_in_system = in_user && json_is_false(in_user),
                          .builtin_tools = bt ? names : NULL,
                          .n_builtin_tools = n_names};
    herd_chat_message *msgs;
    size_t n;
    void *owner;
    if (herd_chat_parse_messages(mj, strlen(mj), &msgs, &n, &owner) != HERD_OK) {
        CHECK(0, "case %zu: %s", ci, herd_last_error());
        free(mj), free(tj);
        return;
    }
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    chat_tokens t;
    chat_rendered r;
    int rc1 = herd_chat_tokenize(m, msgs, n, &p, &ids, &n_ids),
        rc2 = chat_tokenize(m->vocab, msgs, n, &p, &t);
    int rc3 = chat_render(msgs, n, &p, &r);
    CHECK(rc1 == 0 && rc2 == 0 && rc3 == 0, "case %zu: %s", ci, herd_last_error());
    if (rc1 == 0 && rc2 == 0 && rc3 == 0) {
        CHECK(t.n_ids == n_ids && memcmp(t.ids, ids, (size_t)n_ids * sizeof *ids) == 0,
              "case %zu: chat_tokenize's ids differ from herd_chat_tokenize's", ci);
        if (!strstr(mj, "<|")) {
            int32_t *sp;
            int64_t n_sp;
            CHECK(herd_tokenize(m, r.text.p, r.text.n, HERD_TOKENIZE_PARSE_SPECIAL, &sp, &n_sp) == 0 &&
                      n_sp == t.n_ids && memcmp(sp, t.ids, (size_t)n_sp * sizeof *sp) == 0,
                  "case %zu: ids differ from tokenizing the rendered text with special parsing", ci);
            free(sp);
        }
        CHECK(t.n_msg == n, "case %zu: %zu spans for %zu messages", ci, t.n_msg, n);
        int64_t prev_end = 1; /* after <|begin_of_text|> */
        for (size_t i = 0; i < n && i < t.n_msg; i++) {
            const chat_msg_span *s = &t.msg[i];
            const chat_msg_place *pl = &r.msg[i];
            CHECK(s->begin >= prev_end && s->begin < s->body && s->body < s->end && s->end <= t.n_ids,
                  "case %zu msg %zu: spans out of order (%lld %lld %lld)", ci, i, (long long)s->begin,
                  (long long)s->body, (long long)s->end);
            if (!(s->begin < s->body && s->body < s->end && s->end <= t.n_ids)) continue;
            prev_end = s->end;
            char *head = detok(m, t.ids + s->begin, s->body - s->begin),
                 *body = detok(m, t.ids + s->body, s->end - s->body);
            char *want_head = strndup(r.text.p + pl->begin, pl->body - pl->begin);
            char *want_body = strndup(r.text.p + pl->body, pl->end - pl->body);
            CHECK(!strcmp(head, want_head), "case %zu msg %zu: header '%s', want '%s'", ci, i, head,
                  want_head);
            CHECK(!strcmp(body, want_body), "case %zu msg %zu: body '%s', want '%s'", ci, i, body, want_body);
            const char *role = msgs[i].role;
            bool asst = !strcmp(role, "assistant") && !(i == 0 && p.tools_json && !p.tools_in_system);
            CHECK(s->assistant == asst && (!asst || strstr(head, "assistant")),
                  "case %zu msg %zu: assistant flag", ci, i);
            int32_t last = t.ids[s->end - 1];
            CHECK(last == herd_vocab_find(m, "<|eot_id|>") || last == herd_vocab_find(m, "<|eom_id|>"),
                  "case %zu msg %zu: the body does not end with <|eot_id|> / <|eom_id|>", ci, i);
            free(head), free(body), free(want_head), free(want_body);
        }
        chat_rendered_free(&r);
        chat_tokens_free(&t);
    }
    free(ids);
    herd_chat_messages_free(owner);
    free(mj);
    free(tj);
}

int main(void) {
    herd_model *m;
    if (herd_model_load_vocab(VOCAB31, &m) != HERD_OK) {
        bool ci = getenv("CI") && !strcmp(getenv("CI"), "true");
        printf("skipped: %s (tests/ref/setup.sh installs it)\n", herd_last_error());
        return ci ? 1 : 77;
    }
    json_error_t err;
    json_t *cases = json_load_file("tests/data/chat_cases.json", 0, &err);
    CHECK(json_array_size(cases) > 30, "tests/data/chat_cases.json: %s", err.text);
    for (size_t i = 0; i < json_array_size(cases); i++) check_case(m, json_array_get(cases, i), i);

    /* the straddle rule never fires on these, but body is where the content starts even when the
     * content is empty (body = the closing token) */
    herd_chat_message e[] = {{.role = "user", .content = "q"}, {.role = "assistant", .content = "  "}};
    chat_tokens t;
    herd_chat_params nogen = {0};
    CHECK(chat_tokenize(m->vocab, e, 2, &nogen, &t) == 0 && t.msg[1].body == t.msg[1].end - 1 &&
              t.ids[t.msg[1].body] == herd_vocab_find(m, "<|eot_id|>"),
          "an empty assistant body is its <|eot_id|> alone");
    chat_tokens_free(&t);
    json_decref(cases);
    herd_model_free(m);
    return TU_DONE("test_chat_tokens");
}
