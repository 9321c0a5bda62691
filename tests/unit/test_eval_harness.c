/* src/eval/eval.c without a model: the GSM8K answer extraction and exact_match normalization against
 * values Python's re gives for lm-evaluation-harness's patterns (flexible-extract
 * (-?[$0-9.,]{2,})|(-?[0-9]+), last match; regexes_to_ignore ",", "\$", "(?s).*#### ", "\.$"), and the
 * task-file parser: valid files of each type, then bad ones refused with FILE:LINE in the message.
 * (tests/conformance/eval.sh compares the same functions with Python on model outputs.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "herd.h"
#include "testutil.h"

int main(void) {
    static const char *const cases[][3] = {
        /* text, extracted, normalized(text) */
        {"The answer is $1,234.50.", "$1,234.50.", "the answer is 1234.50"},
        {"no numbers here", "[invalid]", "no numbers here"},
        {"x -5 y", "-5", "x -5 y"},
        {"a 7", "7", "a 7"},
        {"3 + 4 = 7\n#### 7", "7", "7"},
        {"1, 2 and -3.", "-3.", "1 2 and -3"},
        {"--12", "-12", "--12"},
        {"5 apples, then 10.\n", "10.", "5 apples then 10\n"},
        {"#### 1,000\n#### 42.", "42.", "42"},
        {"-.", "[invalid]", "-"},
        {"e.g. 3.14159 and 2", "2", "e.g. 3.14159 and 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *ex = eval_extract_number(cases[i][0]), *nm = eval_normalize_answer(cases[i][0]);
        CHECK(ex && !strcmp(ex, cases[i][1]), "extract(%s) = %s, want %s", cases[i][0], ex, cases[i][1]);
        CHECK(nm && !strcmp(nm, cases[i][2]), "normalize(%s) = %s, want %s", cases[i][0], nm, cases[i][2]);
        free(ex);
        free(nm);
    }

    eval_item *it = NULL;
    int64_t n = 0;
    const char *mc =
        "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 1}\n\n  \n{\"context\": \"c\", "
        "\"choices\": [\"x\"], \"answer\": 0, \"subject\": \"s\"}";
    CHECK(eval_parse_tasks(mc, strlen(mc), HERD_EVAL_MC, "t.jsonl", &it, &n) == HERD_OK && n == 2, "mc: %s",
          herd_last_error());
    if (n == 2) {
        CHECK(it[0].n_choices == 2 && it[0].answer == 1 && it[1].line == 4 && !strcmp(it[1].subject, "s"),
              "mc fields");
    }
    eval_items_free(it, n);
    const char *gen = "{\"prompt\": \"p\", \"answer\": 12}\n{\"question\": \"q\", \"answer\": \"#### 3\"}\n";
    CHECK(eval_parse_tasks(gen, strlen(gen), HERD_EVAL_GEN, "g.jsonl", &it, &n) == HERD_OK && n == 2,
          "gen: %s", herd_last_error());
    if (n == 2) CHECK(!strcmp(it[0].target, "12") && !strcmp(it[1].context, "q"), "gen fields");
    eval_items_free(it, n);

    static const struct {
        int type;
        const char *text, *want;
    } bad[] = {
        {HERD_EVAL_MC, "{\"question\": \"q\", \"choices\": [\"a\"], \"answer\": 0}\n{\"question\":",
         "b.jsonl:2: malformed JSON"},
        {HERD_EVAL_MC, "{\"question\": \"q\", \"choices\": [\"a\"], \"answer\": 1}",
         "b.jsonl:1: answer 1 out of range"},
        {HERD_EVAL_MC, "{\"question\": \"q\", \"choices\": [\"a\"], \"answer\": -1}",
         "b.jsonl:1: answer -1 out of range"},
        {HERD_EVAL_MC, "\n{\"question\": \"q\", \"choices\": [], \"answer\": 0}",
         "b.jsonl:2: \"choices\" is empty"},
        {HERD_EVAL_MC, "{\"question\": \"q\", \"choices\": [1], \"answer\": 0}",
         "b.jsonl:1: choices[0] is not a string"},
        {HERD_EVAL_MC, "[1]", "b.jsonl:1: not a JSON object"},
        {HERD_EVAL_MC, "\n\n", "b.jsonl: no items"},
        {HERD_EVAL_MMLU, "{\"question\": \"q\", \"choices\": [\"a\"], \"answer\": 0}",
         "b.jsonl:1: mmlu needs 4 choices"},
        {HERD_EVAL_GEN, "{\"question\": \"q\", \"answer\": null}", "b.jsonl:1: needs \"answer\""},
        {HERD_EVAL_GEN, "{\"question\": 5, \"answer\": 1}", "b.jsonl:1: needs \"question\" or \"prompt\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        it = NULL;
        n = 0;
        int rc = eval_parse_tasks(bad[i].text, strlen(bad[i].text), bad[i].type, "b.jsonl", &it, &n);
        CHECK(rc == HERD_E_FORMAT && !it && n == 0, "bad %zu accepted", i);
        CHECK(strstr(herd_last_error(), bad[i].want), "bad %zu: '%s' lacks '%s'", i, herd_last_error(),
              bad[i].want);
    }
    return TU_DONE("test_eval_harness");
}
