/* herd eval (src/eval/eval.c): the task-file parser and the pieces tests and fuzz/ reach directly. */
#ifndef HERD_EVAL_EVAL_H
#define HERD_EVAL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "herd.h"

/* One task item, validated for its type. Strings are NUL-terminated copies. */
typedef struct {
    int64_t line;   /* 1-based line in the file */
    char *context;  /* mc/mmlu: question or context; gen: question or prompt */
    char **choices; /* mc/mmlu */
    int n_choices;
    int answer;    /* mc/mmlu: index of the right choice */
    char *target;  /* gen: the reference answer as text */
    char *subject; /* mmlu: may be NULL */
} eval_item;

/* Parses JSONL text (blank lines skipped) into items of type (HERD_EVAL_*). name labels errors:
 * HERD_E_FORMAT "NAME:LINE: ..." for malformed JSON, a missing or mistyped field, empty choices or an
 * answer index out of range. OUT: *items, *n (eval_items_free). */
int eval_parse_tasks(const char *text, size_t len, int type, const char *name, eval_item **items, int64_t *n);
void eval_items_free(eval_item *items, int64_t n);

/* lm-evaluation-harness's GSM8K flexible-extract: the last match of (-?[$0-9.,]{2,})|(-?[0-9]+), stripped;
 * "[invalid]" when none. Caller frees. */
char *eval_extract_number(const char *text);
/* Its exact_match normalization: "," and "$" removed, everything through the last "#### " removed, a final
 * "." removed, lower case. Caller frees. */
char *eval_normalize_answer(const char *text);

#endif
