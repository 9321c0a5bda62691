/* herd format [-m MODEL] --messages FILE.json [--tools FILE.json] [--builtin-tools LIST]
 *             [--date "26 Jul 2024"] [--no-generation-prompt] [--tools-in-system] [--tokens]
 * Prints the Llama 3.1 prompt for OpenAI-style messages (and tools), BOS included, exactly as the
 * official chat template renders it — for debugging prompts, and for tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_format(int argc, char **argv) {
    const char *model = NULL, *messages = NULL, *date = NULL, *tools = NULL, *builtin = NULL;
    bool gen = true, tokens = false, in_system = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m")) { if (!cli_str("format", argc, argv, &i, &model)) return 1; }
        else if (!strcmp(a, "--messages")) { if (!cli_str("format", argc, argv, &i, &messages)) return 1; }
        else if (!strcmp(a, "--tools")) { if (!cli_str("format", argc, argv, &i, &tools)) return 1; }
        else if (!strcmp(a, "--builtin-tools")) { if (!cli_str("format", argc, argv, &i, &builtin)) return 1; }
        else if (!strcmp(a, "--date")) { if (!cli_str("format", argc, argv, &i, &date)) return 1; }
        else if (!strcmp(a, "--no-generation-prompt")) gen = false;
        else if (!strcmp(a, "--tools-in-system")) in_system = true;
        else if (!strcmp(a, "--tokens")) tokens = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cli_help("format");
        else return cli_fail("format", "unknown option '%s'", a);
    }
    if (!messages) return cli_fail("format", "need --messages FILE.json");
    if (tokens && !model) return cli_fail("format", "--tokens needs -m MODEL");
    char *text = NULL, *tools_text = NULL;
    size_t len, tlen;
    if (!cli_read_text("format", NULL, messages, &text, &len)) return 1;
    if (tools && !cli_read_text("format", NULL, tools, &tools_text, &tlen)) {
        free(text);
        return 1;
    }
    herd_chat_message *msgs;
    size_t n;
    void *owner;
    int rc = 0;
    if (herd_chat_parse_messages(text, len, &msgs, &n, &owner) != HERD_OK) {
        free(text);
        free(tools_text);
        return cli_fail("format", "%s: %s", messages, herd_last_error());
    }
    /* the built-in tool list, split at commas */
    const char *names[16];
    int n_names = 0;
    char *blist = builtin ? strdup(builtin) : NULL;
    for (char *tok = blist ? strtok(blist, ",") : NULL; tok && n_names < 16; tok = strtok(NULL, ","))
        if (*tok) names[n_names++] = tok;
    herd_chat_params p = {.date_string = date, .add_generation_prompt = gen, .tools_json = tools_text,
                          .tools_in_system = in_system, .builtin_tools = builtin ? names : NULL,
                          .n_builtin_tools = n_names};
    if (tokens) {
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
    } else {
        char *out;
        if (herd_chat_format(msgs, n, &p, &out) != HERD_OK) rc = cli_fail_lib("format");
        else {
            fputs(out, stdout);
            free(out);
        }
    }
    herd_chat_messages_free(owner);
    free(blist);
    free(text);
    free(tools_text);
    return rc;
}
