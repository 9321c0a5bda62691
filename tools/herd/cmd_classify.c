/* herd classify -m PROMPT_GUARD_DIR (-p TEXT | -f FILE | --jsonl) [--logits] [--json] [-t N]
 *
 * Prompt Guard scores of a text (Meta's windows and scores; see include/herd.h herd_classify). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void print_result(const herd_classifier *c, const herd_classify_result *r, bool json, bool logits) {
    if (json) {
        json_t *o = json_object(), *labels = json_object();
        for (int i = 0; i < r->n_labels; i++)
            json_object_set_new(labels, herd_classifier_label(c, i), json_real(r->probs[i]));
        json_object_set_new(o, "labels", labels);
        json_object_set_new(o, "jailbreak_score", json_real(r->jailbreak_score));
        json_object_set_new(o, "injection_score", json_real(r->injection_score));
        json_object_set_new(o, "windows", json_integer(r->n_windows));
        if (logits) {
            json_t *all = json_array();
            for (int64_t w = 0; w < r->n_windows; w++) {
                json_t *row = json_array();
                for (int i = 0; i < r->n_labels; i++) json_array_append_new(row, json_real(r->logits[w * r->n_labels + i]));
                json_array_append_new(all, row);
            }
            json_object_set_new(o, "logits", all);
        }
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
        puts(s);
        free(s);
        json_decref(o);
        return;
    }
    for (int i = 0; i < r->n_labels; i++) printf("%s%s %.6f", i ? "  " : "", herd_classifier_label(c, i), r->probs[i]);
    printf("\njailbreak_score %.6f  injection_score %.6f  windows %lld\n", r->jailbreak_score, r->injection_score,
           (long long)r->n_windows);
    if (logits)
        for (int64_t w = 0; w < r->n_windows; w++) {
            printf("logits[%lld]", (long long)w);
            for (int i = 0; i < r->n_labels; i++) printf(" %.7g", r->logits[w * r->n_labels + i]);
            putchar('\n');
        }
}

static int classify_one(herd_classifier *c, const char *text, size_t len, bool json, bool logits) {
    herd_classify_result r;
    if (herd_classify(c, text, len, &r) != HERD_OK) return cli_fail_lib("classify");
    print_result(c, &r, json, logits);
    herd_classify_result_free(&r);
    return 0;
}

int cmd_classify(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL;
    bool jsonl = false, json = false, logits = false;
    int64_t threads = 0; /* 0: herd_default_threads() */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m")) { if (!cli_str("classify", argc, argv, &i, &model)) return 1; }
        else if (!strcmp(a, "-p")) { if (!cli_str("classify", argc, argv, &i, &text)) return 1; }
        else if (!strcmp(a, "-f")) { if (!cli_str("classify", argc, argv, &i, &file)) return 1; }
        else if (!strcmp(a, "-t")) { if (!cli_i64("classify", argc, argv, &i, 1, 256, &threads)) return 1; }
        else if (!strcmp(a, "--jsonl")) jsonl = true;
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--logits")) logits = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cli_help("classify");
        else return cli_fail("classify", "unknown option '%s'", a);
    }
    if (!model) return cli_fail("classify", "no model given (-m PROMPT_GUARD_DIR)");
    if ((text != NULL) + (file != NULL) + jsonl != 1) return cli_fail("classify", "give exactly one of -p TEXT, -f FILE, --jsonl");
    herd_classifier *c;
    if (herd_classifier_load(model, threads ? (int)threads : herd_default_threads(NULL, 0), &c) != HERD_OK) return cli_fail_lib("classify");
    int rc = 0;
    if (jsonl) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t got;
        int64_t lineno = 0;
        while (!rc && (got = getline(&line, &cap, stdin)) >= 0) {
            lineno++;
            json_error_t err;
            json_t *s = json_loadb(line, (size_t)got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
            if (!s || !json_is_string(s)) rc = cli_fail("classify", "--jsonl: line %lld is not a JSON string", (long long)lineno);
            else rc = classify_one(c, json_string_value(s), json_string_length(s), json, logits);
            json_decref(s);
            fflush(stdout);
        }
        free(line);
    } else {
        char *buf;
        size_t len;
        rc = 1;
        if (cli_read_text("classify", text, file, &buf, &len)) {
            rc = classify_one(c, buf, len, json, logits);
            free(buf);
        }
    }
    herd_classifier_free(c);
    return rc;
}
