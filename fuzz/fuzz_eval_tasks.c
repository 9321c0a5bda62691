/* libFuzzer target: herd eval's task-file parser (src/eval/eval.c, eval_parse_tasks) over arbitrary bytes, as
 * each of the three task types (the first byte picks it), then the answer extraction and normalization over
 * the same bytes. A file that parses must give items with the fields its type needs (choices non-empty, the
 * answer in range); one that does not must leave a message. Any outcome but a crash, a leak or a sanitizer
 * report is fine. Seeds: fuzz/seeds/fuzz_eval_tasks/. Built by `make fuzz`. */
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const int type = size ? data[0] % 4 : 0;
    eval_item *items = NULL;
    int64_t n = 0;
    int rc = eval_parse_tasks((const char *)data, size, type, "fuzz.jsonl", &items, &n);
    if (rc == HERD_OK) {
        if (n < 1 || !items) abort();
        for (int64_t i = 0; i < n; i++) {
            if (!items[i].context) abort();
            if (type == HERD_EVAL_GEN || type == HERD_EVAL_CODE
                    ? !items[i].target
                    : items[i].n_choices < 1 || items[i].answer < 0 || items[i].answer >= items[i].n_choices)
                abort();
        }
    } else if (!*herd_last_error() || items || n)
        abort();
    eval_items_free(items, n);
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char *ex = eval_extract_number(s), *nm = eval_normalize_answer(s);
    free(ex);
    free(nm);
    free(s);
    return 0;
}
