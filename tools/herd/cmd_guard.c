/* herd guard -m LLAMA_GUARD (--messages FILE.json | -p TEXT) [--role auto|user|agent]
 *            [--categories FILE.json] [--exclude S1,S7] [--prompt | --tokens] [--json]
 * Classifies a conversation's last user or assistant message with Llama Guard 3 (herd_guard_run). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* [{"code", "name", "description"?}, ...] -> cats (strings point into *root; decref it after use). */
static bool read_categories(const char *path, json_t **root, herd_guard_category **cats, int *n) {
    char *text;
    size_t len;
    if (!cli_read_text("guard", NULL, path, &text, &len)) return false;
    json_error_t err;
    *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (!*root) {
        cli_fail("guard", "%s: invalid JSON at line %d, column %d: %s", path, err.line, err.column, err.text);
        return false;
    }
    if (!json_is_array(*root) || json_array_size(*root) == 0) {
        cli_fail("guard", "%s: categories must be a non-empty array of {\"code\", \"name\", \"description\"}", path);
        return false;
    }
    *n = (int)json_array_size(*root);
    *cats = calloc((size_t)*n, sizeof **cats);
    for (int i = 0; i < *n; i++) {
        json_t *o = json_array_get(*root, (size_t)i);
        json_t *code = json_object_get(o, "code"), *name = json_object_get(o, "name"),
               *desc = json_object_get(o, "description");
        if (!json_is_object(o) || !json_is_string(code) || !json_is_string(name) ||
            (desc && !json_is_null(desc) && !json_is_string(desc))) {
            cli_fail("guard", "%s: categories[%d] needs string 'code' and 'name' (and an optional string 'description')",
                     path, i);
            return false;
        }
        (*cats)[i].code = json_string_value(code);
        (*cats)[i].name = json_string_value(name);
        (*cats)[i].description = json_is_string(desc) ? json_string_value(desc) : NULL;
    }
    return true;
}

int cmd_guard(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    const char *text = NULL, *messages = NULL, *role_s = "auto", *cats_path = NULL, *exclude_s = NULL;
    bool prompt_only = false, tokens_only = false, json = false;
    int n_default = 0;
    int rc = 1;
    json_t *cats_root = NULL;
    herd_guard_category *cats = NULL;
    char *excl_copy = NULL, *msg_text = NULL;
    const char **excl = NULL;
    void *owner = NULL;
    herd_model *m = NULL;
    herd_context *ctx = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("guard", &c, argc, argv, &i);
        if (r < 0) goto out;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-p")) { if (!cli_str("guard", argc, argv, &i, &text)) goto out; }
        else if (!strcmp(a, "--messages")) { if (!cli_str("guard", argc, argv, &i, &messages)) goto out; }
        else if (!strcmp(a, "--role")) { if (!cli_str("guard", argc, argv, &i, &role_s)) goto out; }
        else if (!strcmp(a, "--categories")) { if (!cli_str("guard", argc, argv, &i, &cats_path)) goto out; }
        else if (!strcmp(a, "--exclude")) { if (!cli_str("guard", argc, argv, &i, &exclude_s)) goto out; }
        else if (!strcmp(a, "--default-categories")) {
            int64_t v;
            if (!cli_i64("guard", argc, argv, &i, 13, 14, &v)) goto out;
            n_default = (int)v;
        }
        else if (!strcmp(a, "--prompt")) prompt_only = true;
        else if (!strcmp(a, "--tokens")) tokens_only = true;
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { rc = cli_help("guard"); goto out; }
        else { cli_fail("guard", "unknown option '%s'", a); goto out; }
    }
    if (!c.model) { cli_fail("guard", "no model given (-m LLAMA_GUARD)"); goto out; }
    if (!text == !messages) { cli_fail("guard", "give the conversation as --messages FILE.json or -p TEXT (one of them)"); goto out; }
    herd_guard_params p = herd_guard_default_params();
    p.n_default = n_default;
    if (!strcmp(role_s, "auto")) p.role = HERD_GUARD_ROLE_AUTO;
    else if (!strcmp(role_s, "user")) p.role = HERD_GUARD_ROLE_USER;
    else if (!strcmp(role_s, "agent")) p.role = HERD_GUARD_ROLE_AGENT;
    else { cli_fail("guard", "--role must be auto, user or agent, not '%s'", role_s); goto out; }
    if (cats_path) {
        if (!read_categories(cats_path, &cats_root, &cats, &p.n_categories)) goto out;
        p.categories = cats;
    }
    if (exclude_s) { /* comma-separated codes; an empty item is an error, not a silent skip */
        excl_copy = strdup(exclude_s);
        excl = calloc(strlen(exclude_s) + 1, sizeof *excl);
        for (char *s = excl_copy;;) {
            char *comma = strchr(s, ',');
            if (comma) *comma = 0;
            if (!*s) { cli_fail("guard", "--exclude '%s' has an empty code (use e.g. S1,S7)", exclude_s); goto out; }
            excl[p.n_exclude++] = s;
            if (!comma) break;
            s = comma + 1;
        }
        p.exclude = excl;
    }
    herd_chat_message one = {.role = p.role == HERD_GUARD_ROLE_AGENT ? "assistant" : "user", .content = text};
    const herd_chat_message *msgs = &one;
    size_t n = 1;
    if (messages) {
        size_t len;
        herd_chat_message *parsed;
        if (!cli_read_text("guard", NULL, messages, &msg_text, &len)) goto out;
        if (herd_chat_parse_messages(msg_text, len, &parsed, &n, &owner) != HERD_OK) {
            cli_fail("guard", "%s: %s", messages, herd_last_error());
            goto out;
        }
        msgs = parsed;
    }
    bool vocab_only = prompt_only || tokens_only;
    if ((vocab_only ? herd_model_load_vocab(c.model, &m) : herd_model_load(c.model, &m)) != HERD_OK) {
        cli_fail_lib("guard");
        goto out;
    }
    if (prompt_only) {
        char *out;
        if (herd_guard_prompt(m, msgs, n, &p, &out) != HERD_OK) { cli_fail_lib("guard"); goto out; }
        fputs(out, stdout); /* exactly the prompt: no newline after it */
        free(out);
        rc = 0;
        goto out;
    }
    if (tokens_only) {
        int32_t *ids;
        int64_t k;
        if (herd_guard_tokenize(m, msgs, n, &p, &ids, &k) != HERD_OK) { cli_fail_lib("guard"); goto out; }
        cli_print_ids(stdout, ids, k);
        fputc('\n', stdout);
        free(ids);
        rc = 0;
        goto out;
    }
    if (herd_context_new(m, &c.ctx, &ctx) != HERD_OK) { cli_fail_lib("guard"); goto out; }
    herd_guard_result res;
    if (herd_guard_run(ctx, msgs, n, &p, &res) != HERD_OK) { cli_fail_lib("guard"); goto out; }
    if (json) {
        printf("{\"verdict\":\"%s\",\"categories\":[", res.unsafe ? "unsafe" : "safe");
        for (int i = 0; i < res.n_categories; i++) printf("%s\"%s\"", i ? "," : "", res.categories[i]);
        printf("],\"p_unsafe\":%.9g}\n", res.p_unsafe);
    } else {
        printf("%s\n", res.unsafe ? "unsafe" : "safe");
        for (int i = 0; i < res.n_categories; i++) printf("%s%s", i ? "," : "", res.categories[i]);
        if (res.n_categories) printf("\n");
        fprintf(stderr, "p_unsafe %.6f  (%lld prompt tokens in %.3f s, %lld generated in %.3f s)\n", res.p_unsafe,
                (long long)res.n_prompt, res.prompt_seconds, (long long)res.n_generated, res.gen_seconds);
    }
    herd_guard_result_free(&res);
    rc = 0;
out:
    herd_context_free(ctx);
    herd_model_free(m);
    herd_chat_messages_free(owner);
    free(msg_text);
    free(excl);
    free(excl_copy);
    free(cats);
    json_decref(cats_root);
    cli_common_free(&c);
    return rc;
}
