/* libFuzzer target: Llama Guard's prompt builder and verdict parser (src/safety/llamaguard.c). The input
 * is OpenAI messages JSON, then a NUL byte and a verdict text (parsed, and stepped through the verdict
 * grammar), then a NUL byte and a comma-separated exclusion list; the first byte's low bits pick the
 * role (auto / user / agent) and the 13- or 14-category default list. Built by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/grammar.h"
#include "herd.h"
#include "safety/llamaguard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 1 << 16) return 0;
    int flags = data[0];
    data++, size--;
    const uint8_t *nul = memchr(data, 0, size);
    size_t n_msg = nul ? (size_t)(nul - data) : size;
    const uint8_t *verdict = nul ? nul + 1 : data + size;
    size_t rest = (size_t)(data + size - verdict);
    const uint8_t *nul2 = memchr(verdict, 0, rest);
    size_t n_verdict = nul2 ? (size_t)(nul2 - verdict) : rest;
    char *excl = NULL;
    const char *codes[16];
    herd_guard_params p = herd_guard_default_params();
    p.role = flags % 3;
    p.n_default = flags & 4 ? 13 : 14;
    if (nul2) {
        size_t n_ex = (size_t)(data + size - (nul2 + 1));
        excl = malloc(n_ex + 1);
        memcpy(excl, nul2 + 1, n_ex);
        excl[n_ex] = 0;
        for (char *s = excl, *c; p.n_exclude < 16; s = c + 1) {
            codes[p.n_exclude++] = s;
            if (!(c = strchr(s, ','))) break;
            *c = 0;
        }
        p.exclude = codes;
    }
    herd_chat_message *msgs;
    size_t n;
    void *owner;
    if (herd_chat_parse_messages((const char *)data, n_msg, &msgs, &n, &owner) == HERD_OK) {
        char *text;
        if (herd_guard_prompt(NULL, msgs, n, &p, &text) == HERD_OK) free(text);
        herd_chat_messages_free(owner);
    }
    herd_guard_result r;
    if (herd_guard_parse((const char *)verdict, n_verdict, &r) == HERD_OK) herd_guard_result_free(&r);
    guard_categories cats;
    if (guard_categories_make(&p, 14, &cats) == HERD_OK) {
        grammar g;
        guard_grammar_build(&cats, &g);
        gr_arena a;
        gra_init(&a, &g);
        gr_state s, t;
        gr_start(&a, &s);
        for (size_t i = 0; i < n_verdict && s.n > 0; i++) {
            gr_step(&a, &s, verdict[i], &t);
            s = t;
        }
        (void)gr_complete(&s);
        gra_free(&a);
        grammar_free(&g);
        guard_categories_free(&cats);
    }
    free(excl);
    return 0;
}
