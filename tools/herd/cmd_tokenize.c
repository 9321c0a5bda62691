/* herd tokenize -m MODEL [-p TEXT | -f FILE | stdin] [--no-bos] [--special] [--jsonl]
 * herd detokenize -m MODEL [--ids JSON | stdin] [--no-special]
 *
 * --jsonl: every stdin line is a JSON string; every output line is the JSON array of its ids
 * (one process for a whole corpus, for conformance tests and batch jobs). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int tokenize_one(const herd_model *m, const char *text, size_t len, int flags) {
    int32_t *ids;
    int64_t n;
    if (herd_tokenize(m, text, len, flags, &ids, &n) != HERD_OK) return cli_fail_lib("tokenize");
    cli_print_ids(stdout, ids, n);
    fputc('\n', stdout);
    free(ids);
    return 0;
}

static int tokenize_jsonl(const herd_model *m, int flags) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int64_t lineno = 0;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        json_error_t err;
        json_t *s = json_loadb(line, (size_t)got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!s || !json_is_string(s)) {
            json_decref(s);
            free(line);
            return cli_fail("tokenize", "--jsonl: line %lld is not a JSON string", (long long)lineno);
        }
        int rc = tokenize_one(m, json_string_value(s), json_string_length(s), flags);
        json_decref(s);
        if (rc) {
            free(line);
            return rc;
        }
    }
    free(line);
    return 0;
}

/* A Prompt Guard directory: [CLS] + the SentencePiece unigram ids + [SEP], one window at most. */
static int tokenize_classifier(const char *dir, const char *text, const char *file, bool jsonl) {
    herd_classifier *c;
    if (herd_classifier_load_tokenizer(dir, &c) != HERD_OK) return cli_fail_lib("tokenize");
    int rc = 1;
    char *line = NULL, *buf;
    size_t cap = 0, len;
    ssize_t got;
    int64_t lineno = 0;
    if (jsonl) {
        rc = 0;
        while (!rc && (got = getline(&line, &cap, stdin)) >= 0) {
            json_error_t err;
            json_t *s = json_loadb(line, (size_t)got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
            lineno++;
            int32_t *ids;
            int64_t n;
            if (!s || !json_is_string(s)) rc = cli_fail("tokenize", "--jsonl: line %lld is not a JSON string", (long long)lineno);
            else if (herd_classifier_tokenize(c, json_string_value(s), json_string_length(s), &ids, &n) != HERD_OK) rc = cli_fail_lib("tokenize");
            else {
                cli_print_ids(stdout, ids, n);
                fputc('\n', stdout);
                free(ids);
            }
            json_decref(s);
        }
        free(line);
    } else if (cli_read_text("tokenize", text, file, &buf, &len)) {
        int32_t *ids;
        int64_t n;
        if (herd_classifier_tokenize(c, buf, len, &ids, &n) != HERD_OK) rc = cli_fail_lib("tokenize");
        else {
            cli_print_ids(stdout, ids, n);
            fputc('\n', stdout);
            free(ids);
            rc = 0;
        }
        free(buf);
    }
    herd_classifier_free(c);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL;
    bool no_bos = false, special = false, jsonl = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m")) { if (!cli_str("tokenize", argc, argv, &i, &model)) return 1; }
        else if (!strcmp(a, "-p")) { if (!cli_str("tokenize", argc, argv, &i, &text)) return 1; }
        else if (!strcmp(a, "-f")) { if (!cli_str("tokenize", argc, argv, &i, &file)) return 1; }
        else if (!strcmp(a, "--no-bos")) no_bos = true;
        else if (!strcmp(a, "--special")) special = true;
        else if (!strcmp(a, "--jsonl")) jsonl = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return cli_help("tokenize");
        } else return cli_fail("tokenize", "unknown option '%s'", a);
    }
    if (!model) return cli_fail("tokenize", "no model given (-m MODEL)");
    if (herd_classifier_dir(model)) return tokenize_classifier(model, text, file, jsonl);
    herd_model *m;
    if (herd_model_load_vocab(model, &m) != HERD_OK) return cli_fail_lib("tokenize");
    int flags = (special ? HERD_TOKENIZE_PARSE_SPECIAL : 0) | (!no_bos && herd_vocab_add_bos(m) ? HERD_TOKENIZE_ADD_BOS : 0);
    int rc;
    if (jsonl) {
        rc = (text || file) ? cli_fail("tokenize", "--jsonl reads stdin; do not give -p or -f") : tokenize_jsonl(m, flags);
    } else {
        char *buf;
        size_t len;
        rc = 1;
        if (cli_read_text("tokenize", text, file, &buf, &len)) {
            rc = tokenize_one(m, buf, len, flags);
            free(buf);
        }
    }
    herd_model_free(m);
    return rc;
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL, *ids_arg = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m")) { if (!cli_str("detokenize", argc, argv, &i, &model)) return 1; }
        else if (!strcmp(a, "--ids")) { if (!cli_str("detokenize", argc, argv, &i, &ids_arg)) return 1; }
        else if (!strcmp(a, "--no-special")) special = false;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return cli_help("detokenize");
        } else return cli_fail("detokenize", "unknown option '%s'", a);
    }
    if (!model) return cli_fail("detokenize", "no model given (-m MODEL)");
    char *json;
    size_t jlen;
    if (!cli_read_text("detokenize", ids_arg, NULL, &json, &jlen)) return 1;
    int32_t *ids;
    int64_t n;
    bool ok = cli_parse_ids("detokenize", json, jlen, &ids, &n);
    free(json);
    if (!ok) return 1;
    herd_model *m;
    if (herd_model_load_vocab(model, &m) != HERD_OK) {
        free(ids);
        return cli_fail_lib("detokenize");
    }
    char *text;
    size_t len;
    int rc = herd_detokenize(m, ids, n, special, &text, &len);
    if (rc == HERD_OK) {
        fwrite(text, 1, len, stdout);
        free(text);
    } else {
        cli_fail_lib("detokenize");
    }
    free(ids);
    herd_model_free(m);
    return rc == HERD_OK ? 0 : 1;
}
