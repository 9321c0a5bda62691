/* Llama 3.1 chat format: exact renderings (the official template's output, by hand) and the trim
 * rules. The full comparison with the official Jinja template is tests/conformance/chat_template.sh. */
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "herd.h"
#include "testutil.h"

static void expect(const herd_chat_message *m, size_t n, const herd_chat_params *p, const char *want, const char *what) {
    char *got = NULL;
    int rc = herd_chat_format(m, n, p, &got);
    CHECK(rc == 0 && got && strcmp(got, want) == 0, "%s:\n got: %s\nwant: %s", what, got ? got : "(null)", want);
    free(got);
}

#define SYS_HEAD "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: "

int main(void) {
    herd_chat_params gen = {.add_generation_prompt = true}, nogen = {.add_generation_prompt = false};
    herd_chat_message a[] = {{.role = "user", .content = "Hello!"}};
    expect(a, 1, &gen,
           SYS_HEAD "26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n",
           "user only: system block with dates is always there");
    herd_chat_message b[] = {{.role = "system", .content = "  You are terse.\n"}, {.role = "user", .content = "\tQ? "},
                             {.role = "assistant", .content = "A."}};
    herd_chat_params dated = {.date_string = "21 September 2024", .add_generation_prompt = false};
    expect(b, 3, &dated,
           SYS_HEAD "21 September 2024\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ?"
                    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA.<|eot_id|>",
           "system trimmed, contents trimmed, no generation prompt, custom date");
    expect(NULL, 0, &nogen, SYS_HEAD "26 Jul 2024\n\n<|eot_id|>", "no messages");

    size_t i, j;
    const char *s = "\xc2\xa0\xe3\x80\x80 x y\xe2\x80\x83\n";
    chat_trim(s, strlen(s), &i, &j);
    CHECK(i == 6 && j == 9, "NBSP, ideographic space and em space are trimmed (%zu, %zu)", i, j);
    const char *t = "\xc2\x85x\xc2\x85";
    chat_trim(t, strlen(t), &i, &j);
    CHECK(i == 0 && j == strlen(t), "NEL (U+0085) is not JavaScript whitespace: kept (%zu, %zu)", i, j);
    const char *u = "   ";
    chat_trim(u, 3, &i, &j);
    CHECK(i == j, "all-space trims to empty");
    const char *bad = "\xff x \xe2\x80";
    chat_trim(bad, strlen(bad), &i, &j);
    CHECK(i == 0 && j == strlen(bad), "invalid UTF-8 bytes are kept as content (%zu, %zu)", i, j);

    herd_chat_message noc[] = {{.role = "user", .content = NULL}};
    char *out = NULL;
    CHECK(herd_chat_format(noc, 1, &gen, &out) == HERD_E_ARG && out == NULL, "a message without content is an error");
    return TU_DONE("test_chat");
}
