/* herd chat -m MODEL [--system TEXT] [-p TEXT] [sampling]
 * One-shot with -p; otherwise an interactive loop on stdin (one message per line; /exit or EOF ends).
 * The conversation stays in the KV cache: each turn appends only its own tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static bool print_piece(const char *s, size_t n, void *user) {
    (void)user;
    fwrite(s, 1, n, stdout);
    fflush(stdout);
    return true;
}

typedef struct {
    herd_model *m;
    herd_context *ctx;
    herd_sampler *s;
    int64_t n_predict;
    bool stats;
    int32_t last_end;   /* the end token of the previous reply, or -1 */
} chat_state;

static int turn(chat_state *st, const char *text, size_t len) {
    int32_t *ids;
    int64_t n;
    if (herd_tokenize(st->m, text, len, HERD_TOKENIZE_PARSE_SPECIAL, &ids, &n) != HERD_OK) return cli_fail_lib("chat");
    /* the previous reply's end token was sampled but never fed back: it leads this turn */
    if (st->last_end >= 0) {
        ids = realloc(ids, (size_t)(n + 1) * sizeof *ids);
        memmove(ids + 1, ids, (size_t)n * sizeof *ids);
        ids[0] = st->last_end;
        n++;
    }
    if (herd_context_n_past(st->ctx) + n >= herd_context_n_ctx(st->ctx)) {
        free(ids);
        return cli_fail("chat", "the conversation no longer fits the context of %lld tokens (use -c to enlarge it)",
                        (long long)herd_context_n_ctx(st->ctx));
    }
    herd_generate_params gp = {.n_predict = st->n_predict, .on_text = print_piece};
    herd_generate_result r;
    int rc = herd_generate(st->ctx, st->s, ids, n, &gp, &r);
    free(ids);
    if (rc != HERD_OK) return cli_fail_lib("chat");
    fputc('\n', stdout);
    fflush(stdout);
    if (st->stats)
        fprintf(stderr, "[%lld prompt tokens at %.1f t/s, %lld generated at %.1f t/s]\n", (long long)n,
                r.prompt_seconds > 0 ? (double)n / r.prompt_seconds : 0, (long long)r.n_ids,
                r.gen_seconds > 0 ? (double)r.n_ids / r.gen_seconds : 0);
    st->last_end = r.stop_reason == HERD_STOP_EOG ? r.stop_token : herd_vocab_find(st->m, "<|eot_id|>");
    herd_generate_result_free(&r);
    return 0;
}

/* The text of one more user turn after the first (the template's per-message rendering). */
static char *user_turn_text(const char *msg) {
    herd_chat_message one = {"user", msg};
    herd_chat_params p = {.add_generation_prompt = true};
    char *full;
    if (herd_chat_format(&one, 1, &p, &full) != HERD_OK) return NULL;
    /* drop the system block: everything up to and including the first <|eot_id|> */
    char *u = strstr(full, "<|eot_id|>");
    char *t = strdup(u ? u + strlen("<|eot_id|>") : full);
    free(full);
    return t;
}

int cmd_chat(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    c.samp.temp = 0.6f; /* Meta's recommendation for Llama 3.1 chat (LLAMA31.md) */
    c.samp.top_p = 0.9f;
    const char *system = NULL, *prompt = NULL;
    int64_t n_predict = -1;
    bool stats = true;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("chat", &c, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--system")) { if (!cli_str("chat", argc, argv, &i, &system)) return 1; }
        else if (!strcmp(argv[i], "-p")) { if (!cli_str("chat", argc, argv, &i, &prompt)) return 1; }
        else if (!strcmp(argv[i], "-n")) { if (!cli_i64("chat", argc, argv, &i, -1, INT32_MAX, &n_predict)) return 1; }
        else if (!strcmp(argv[i], "--no-stats")) stats = false;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: herd chat -m MODEL [--system TEXT] [-p TEXT] [-n N] [--no-stats] [sampling options]\n"
                   "  Llama 3.1 chat format; one reply with -p, else an interactive loop (/exit to quit).\n"
                   "  Sampling defaults to Meta's recommendation: --temp 0.6 --top-p 0.9.\n");
            return 0;
        } else return cli_fail("chat", "unknown option '%s'", argv[i]);
    }
    if (!c.model) return cli_fail("chat", "no model given (-m MODEL)");
    chat_state st = {.n_predict = n_predict, .stats = stats, .last_end = -1};
    int rc = 1;
    if (herd_model_load(c.model, &st.m) != HERD_OK) return cli_fail_lib("chat");
    if (herd_vocab_find(st.m, "<|start_header_id|>") < 0 || herd_vocab_find(st.m, "<|eot_id|>") < 0) {
        cli_fail("chat", "'%s' has no Llama 3 chat tokens (<|start_header_id|>, <|eot_id|>); use 'herd run' for "
                 "plain completion", c.model);
        goto done;
    }
    if (herd_context_new(st.m, &c.ctx, &st.ctx) != HERD_OK) { cli_fail_lib("chat"); goto done; }
    st.s = herd_sampler_new(&c.samp, herd_vocab_n_tokens(st.m));

    bool interactive = prompt == NULL;
    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    bool first = true;
    rc = 0;
    for (;;) {
        const char *msg = prompt;
        if (interactive) {
            if (tty) { fputs("> ", stdout); fflush(stdout); }
            ssize_t got = getline(&line, &cap, stdin);
            if (got < 0) break;
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
            if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
            if (got == 0) continue;
            msg = line;
        }
        char *text;
        if (first) {
            herd_chat_message msgs[2] = {{"system", system ? system : ""}, {"user", msg}};
            herd_chat_params p = {.add_generation_prompt = true};
            if (herd_chat_format(system ? msgs : msgs + 1, system ? 2 : 1, &p, &text) != HERD_OK) {
                rc = cli_fail_lib("chat");
                break;
            }
            first = false;
        } else {
            text = user_turn_text(msg);
        }
        rc = turn(&st, text, strlen(text));
        free(text);
        if (rc || !interactive) break;
    }
    free(line);
done:
    herd_sampler_free(st.s);
    herd_context_free(st.ctx);
    herd_model_free(st.m);
    return rc;
}
