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
    herd_chat_message *msgs; /* the conversation so far (contents owned) */
    size_t n_msgs;
    int32_t *cached;         /* ids whose KV the context holds */
    int64_t n_cached;
} chat_state;

static void add_msg(chat_state *st, const char *role, const char *content) {
    st->msgs = realloc(st->msgs, (st->n_msgs + 1) * sizeof *st->msgs);
    st->msgs[st->n_msgs++] = (herd_chat_message){.role = role, .content = strdup(content)};
}

/* One turn: render + tokenize the whole conversation, keep the cached prefix it shares with what
 * the context already holds, run only the rest, and generate the reply. */
static int turn(chat_state *st) {
    int32_t *ids;
    int64_t n;
    herd_chat_params p = {.add_generation_prompt = true};
    if (herd_chat_tokenize(st->m, st->msgs, st->n_msgs, &p, &ids, &n) != HERD_OK) return cli_fail_lib("chat");
    int64_t keep = 0;
    while (keep < n - 1 && keep < st->n_cached && ids[keep] == st->cached[keep]) keep++;
    if (n >= herd_context_n_ctx(st->ctx)) {
        free(ids);
        return cli_fail("chat", "the conversation (%lld tokens) no longer fits the context of %lld tokens (use -c)",
                        (long long)n, (long long)herd_context_n_ctx(st->ctx));
    }
    herd_context_truncate(st->ctx, keep);
    herd_generate_params gp = {.n_predict = st->n_predict, .on_text = print_piece};
    herd_generate_result r;
    int rc = herd_generate(st->ctx, st->s, ids + keep, n - keep, &gp, &r);
    if (rc != HERD_OK) {
        free(ids);
        return cli_fail_lib("chat");
    }
    fputc('\n', stdout);
    fflush(stdout);
    if (st->stats)
        fprintf(stderr, "[%lld prompt tokens (%lld cached) at %.1f t/s, %lld generated at %.1f t/s]\n", (long long)n,
                (long long)keep, r.prompt_seconds > 0 ? (double)(n - keep) / r.prompt_seconds : 0, (long long)r.n_ids,
                r.gen_seconds > 0 ? (double)r.n_ids / r.gen_seconds : 0);
    /* the context now holds the prompt and every generated id but the last */
    free(st->cached);
    st->cached = realloc(ids, (size_t)(n + r.n_ids) * sizeof *ids);
    memcpy(st->cached + n, r.ids, (size_t)r.n_ids * sizeof *ids);
    st->n_cached = herd_context_n_past(st->ctx);
    add_msg(st, "assistant", r.text);
    herd_generate_result_free(&r);
    return 0;
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
    chat_state st = {.n_predict = n_predict, .stats = stats};
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
    if (system) add_msg(&st, "system", system);
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
        add_msg(&st, "user", msg);
        rc = turn(&st);
        if (rc || !interactive) break;
    }
    free(line);
done:
    for (size_t i = 0; i < st.n_msgs; i++) free((char *)st.msgs[i].content);
    free(st.msgs);
    free(st.cached);
    herd_sampler_free(st.s);
    herd_context_free(st.ctx);
    herd_model_free(st.m);
    return rc;
}
