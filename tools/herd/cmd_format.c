/* herd format [-m MODEL] --messages FILE.json [--date "26 Jul 2024"] [--no-generation-prompt]
 * Prints the Llama 3.1 prompt text for an OpenAI-style message list, BOS included, exactly as the
 * official chat template renders it (for debugging prompts, and for tests). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_format(int argc, char **argv) {
    const char *model = NULL, *messages = NULL, *date = NULL;
    bool gen = true, tokens = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m")) { if (!cli_str("format", argc, argv, &i, &model)) return 1; }
        else if (!strcmp(argv[i], "--messages")) { if (!cli_str("format", argc, argv, &i, &messages)) return 1; }
        else if (!strcmp(argv[i], "--date")) { if (!cli_str("format", argc, argv, &i, &date)) return 1; }
        else if (!strcmp(argv[i], "--no-generation-prompt")) gen = false;
        else if (!strcmp(argv[i], "--tokens")) tokens = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: herd format [-m MODEL] --messages FILE.json [--date \"26 Jul 2024\"] [--no-generation-prompt]\n"
                   "                   [--tokens]\n"
                   "  FILE.json: [{\"role\": \"system|user|assistant|ipython\", \"content\": \"...\"}, ...] ('-' = stdin)\n"
                   "  --tokens: print the prompt's token ids (needs -m): template tokens are special, message\n"
                   "            contents are always plain text\n");
            return 0;
        } else return cli_fail("format", "unknown option '%s'", argv[i]);
    }
    if (!messages) return cli_fail("format", "need --messages FILE.json");
    if (tokens && !model) return cli_fail("format", "--tokens needs -m MODEL");
    char *text;
    size_t len;
    if (!cli_read_text("format", NULL, messages, &text, &len)) return 1;
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (!root) return cli_fail("format", "%s: invalid JSON at line %d, column %d: %s", messages, err.line, err.column, err.text);
    if (!json_is_array(root)) {
        json_decref(root);
        return cli_fail("format", "%s: expected a JSON array of messages", messages);
    }
    size_t n = json_array_size(root);
    herd_chat_message *msgs = calloc(n ? n : 1, sizeof *msgs);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *m = json_array_get(root, i), *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role)) rc = cli_fail("format", "message %zu has no string 'role'", i);
        else if (!json_is_string(content)) rc = cli_fail("format", "message %zu: 'content' must be a string", i);
        else msgs[i] = (herd_chat_message){json_string_value(role), json_string_value(content)};
    }
    herd_chat_params p = {.date_string = date, .add_generation_prompt = gen};
    if (!rc && tokens) {
        herd_model *m;
        int32_t *ids;
        int64_t k;
        if (herd_model_load_vocab(model, &m) != HERD_OK) rc = cli_fail_lib("format");
        else {
            if (herd_chat_tokenize(m, msgs, n, &p, &ids, &k) != HERD_OK) rc = cli_fail_lib("format");
            else {
                cli_print_ids(stdout, ids, k);
                fputc('\n', stdout);
                free(ids);
            }
            herd_model_free(m);
        }
    } else if (!rc) {
        char *out;
        if (herd_chat_format(msgs, n, &p, &out) != HERD_OK) rc = cli_fail_lib("format");
        else {
            fputs(out, stdout);
            free(out);
        }
    }
    free(msgs);
    json_decref(root);
    return rc;
}
