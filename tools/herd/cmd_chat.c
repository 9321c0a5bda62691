/* herd chat -m MODEL [--system TEXT] [-p TEXT] [sampling] [--tools LIST] [--functions FILE.json]
 * One-shot with -p; otherwise an interactive loop on stdin (one message per line; /exit or EOF ends).
 * The conversation stays in the KV cache: each turn runs only the tokens the cache lacks.
 * With tools, a reply that calls a built-in tool is executed and the model continues with the
 * result (call -> execute -> ipython result -> continue), shown as it happens. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct {
    herd_model *m;
    herd_context *ctx;
    herd_sampler *s;
    int64_t n_predict;
    bool stats;
    cli_spec spec; /* --draft / --lookup */
    bool shift;    /* --context-policy shift: leave out the oldest turns when the context is full */
    herd_chat_message *msgs; /* the conversation so far (strings owned) */
    size_t n_msgs;
    int32_t *cached;         /* ids whose KV the context holds */
    int64_t n_cached;
    /* tools */
    const char *const *builtin; /* --tools: built-in tools (rendered and executed), or NULL */
    int n_builtin;
    char *functions_json;       /* --functions: custom function definitions (OpenAI tools JSON) */
    int max_steps;
    herd_tool_params tool_params; /* --tool-timeout */
    herd_tool_stream *ts;       /* holds what may be a tool call while the reply streams */
    /* test-only scripted model */
    json_t *script;
    size_t script_next;
    const char *dump_prompt;    /* write the final prompt here (for tests) */
} chat_state;

static bool tools_on(const chat_state *st) {
    return st->builtin || st->functions_json;
}

static bool print_piece(const char *s, size_t n, void *user) {
    chat_state *st = user;
    if (st->ts) n = herd_tool_stream_feed(st->ts, s, n, &s);
    fwrite(s, 1, n, stdout);
    fflush(stdout);
    return true;
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static void add_msg(chat_state *st, const char *role, const char *content, const char *tool, const char *args) {
    st->msgs = realloc(st->msgs, (st->n_msgs + 1) * sizeof *st->msgs);
    st->msgs[st->n_msgs++] = (herd_chat_message){.role = role, .content = dup_or_null(content),
                                                 .tool_name = dup_or_null(tool), .tool_arguments = dup_or_null(args)};
}

static herd_chat_params chat_params(const chat_state *st) {
    return (herd_chat_params){.add_generation_prompt = true, .tools_json = st->functions_json,
                              .builtin_tools = st->builtin, .n_builtin_tools = st->n_builtin};
}

/* Leaves out messages [from, from + k) (the oldest turns, context policy shift). */
static void drop_msgs(chat_state *st, size_t from, size_t k) {
    for (size_t i = from; i < from + k; i++) {
        free((char *)st->msgs[i].content);
        free((char *)st->msgs[i].tool_name);
        free((char *)st->msgs[i].tool_arguments);
    }
    memmove(st->msgs + from, st->msgs + from + k, (st->n_msgs - from - k) * sizeof *st->msgs);
    st->n_msgs -= k;
    fprintf(stderr, "[context shift: the %zu oldest message%s left out; %zu kept]\n", k, k == 1 ? "" : "s", st->n_msgs);
}

/* The prompt of the conversation so far (ending with the assistant header). Under the context policy
 * shift its oldest turns are left out (herd_chat_tokenize_fit) so that it and `reserve` more tokens fit;
 * under stop it must leave `reserve` (at least one) positions free. OUT: *ids, *n. */
static int conversation_ids(chat_state *st, int64_t reserve, int32_t **ids, int64_t *n) {
    herd_chat_params p = chat_params(st);
    int64_t n_ctx = herd_context_n_ctx(st->ctx);
    if (st->shift) {
        size_t from, k;
        int rc = herd_chat_tokenize_fit(st->m, st->msgs, st->n_msgs, &p, n_ctx, reserve, &from, &k, ids, n);
        if (rc == HERD_OK && k) drop_msgs(st, from, k);
        return rc == HERD_OK ? 0 : cli_fail_lib("chat");
    }
    if (herd_chat_tokenize(st->m, st->msgs, st->n_msgs, &p, ids, n) != HERD_OK) return cli_fail_lib("chat");
    if (*n >= n_ctx) {
        free(*ids);
        return cli_fail("chat", "stopped: the conversation (%lld tokens) no longer fits the context of %lld tokens "
                        "(use -c, or --context-policy shift)", (long long)*n, (long long)n_ctx);
    }
    return 0;
}

/* Appends b (a continuation of the same reply) to a. */
static void result_append(herd_generate_result *a, herd_generate_result *b) {
    a->ids = realloc(a->ids, (size_t)(a->n_ids + b->n_ids + 1) * sizeof *a->ids);
    if (b->n_ids) memcpy(a->ids + a->n_ids, b->ids, (size_t)b->n_ids * sizeof *a->ids);
    a->n_ids += b->n_ids;
    a->text = realloc(a->text, a->text_len + b->text_len + 1);
    if (b->text_len) memcpy(a->text + a->text_len, b->text, b->text_len);
    a->text_len += b->text_len;
    a->text[a->text_len] = 0;
    a->stop_reason = b->stop_reason;
    a->stop_token = b->stop_token;
    a->prompt_seconds += b->prompt_seconds;
    a->gen_seconds += b->gen_seconds;
    a->n_spec_steps += b->n_spec_steps;
    a->n_drafted += b->n_drafted;
    a->n_accepted += b->n_accepted;
    herd_generate_result_free(b);
}

/* One generation: render + tokenize the whole conversation, keep the cached prefix it shares with
 * what the context holds, run only the rest, generate. When the context fills mid-reply: under the
 * policy stop, the reply ends there and so does the chat (exit 1, the reason on stderr); under shift,
 * the oldest turns are left out, the conversation is re-templated with the reply so far (its exact
 * ids) after the assistant header, re-prefilled past the shared prefix, and the reply goes on.
 * OUT: the reply (text and stop token). */
static int generate_reply(chat_state *st, herd_generate_result *r) {
    int64_t n_ctx = herd_context_n_ctx(st->ctx);
    int64_t want = st->n_predict > 0 ? st->n_predict : n_ctx / 4; /* room for the reply when shifting */
    int32_t *ids, *forced = NULL;
    int64_t n, n_forced = 0;
    if (conversation_ids(st, want, &ids, &n)) return 1;
    json_t *entry = st->script ? json_array_get(st->script, st->script_next++) : NULL;
    if (st->script && !json_is_null(entry)) { /* test-only: the next scripted reply (null: the model's own) */
        const char *sc = json_string_value(entry);
        if (!sc) {
            free(ids);
            return cli_fail("chat", "--test-script ran out of replies");
        }
        if (herd_tokenize(st->m, sc, strlen(sc), HERD_TOKENIZE_PARSE_SPECIAL, &forced, &n_forced) != HERD_OK) {
            free(ids);
            return cli_fail_lib("chat");
        }
    }
    if (tools_on(st)) st->ts = herd_tool_stream_new();
    memset(r, 0, sizeof *r);
    int rc = 0;
    for (int part = 0;; part++) {
        /* ids: the prompt of this part (after a shift: the conversation + the reply so far) */
        int64_t keep = 0;
        while (keep < n - 1 && keep < st->n_cached && ids[keep] == st->cached[keep]) keep++;
        herd_context_truncate(st->ctx, keep);
        herd_generate_params gp = {.n_predict = st->n_predict < 0 ? -1 : st->n_predict - r->n_ids,
                                   .on_text = print_piece, .user = st, .render_python_tag = tools_on(st)};
        cli_spec_params(&st->spec, &gp);
        if (forced) {
            gp.forced = forced + r->n_ids;
            gp.n_forced = n_forced - r->n_ids;
        }
        herd_generate_result g;
        if (herd_generate(st->ctx, st->s, ids + keep, n - keep, &gp, &g) != HERD_OK) {
            rc = cli_fail_lib("chat");
            free(ids);
            break;
        }
        if (st->stats) {
            char sps[160];
            cli_spec_stats(&g, sps, sizeof sps);
            fprintf(stderr, "%s[%lld prompt tokens (%lld cached) at %.1f t/s, %lld generated at %.1f t/s%s]\n",
                    tools_on(st) ? "" : "\n", (long long)n, (long long)keep,
                    g.prompt_seconds > 0 ? (double)(n - keep) / g.prompt_seconds : 0, (long long)g.n_ids,
                    g.gen_seconds > 0 ? (double)g.n_ids / g.gen_seconds : 0, sps);
        }
        /* the context now holds the prompt and every generated id but the last */
        free(st->cached);
        st->cached = realloc(ids, (size_t)(n + g.n_ids + 1) * sizeof *ids);
        if (g.n_ids) memcpy(st->cached + n, g.ids, (size_t)g.n_ids * sizeof *ids);
        st->n_cached = herd_context_n_past(st->ctx);
        result_append(r, &g);
        if (r->stop_reason != HERD_STOP_CONTEXT) break;
        if (!st->shift) {
            fputc('\n', stdout);
            fflush(stdout);
            rc = cli_fail("chat", "stopped: the context of %lld tokens is full (reason: context; use -c, or "
                          "--context-policy shift)", (long long)n_ctx);
            break;
        }
        /* shift: the conversation without its oldest turns, then the reply so far */
        int32_t *conv;
        int64_t nc;
        int64_t reserve = st->n_predict > 0 ? st->n_predict : r->n_ids + want;
        size_t before = st->n_msgs;
        if (conversation_ids(st, reserve, &conv, &nc)) {
            rc = 1;
            break;
        }
        if (st->n_msgs == before || nc + r->n_ids >= n_ctx) {
            free(conv);
            fputc('\n', stdout);
            fflush(stdout);
            rc = cli_fail("chat", "stopped: the context of %lld tokens is full and only the system prompt and this "
                          "turn are left (reason: context; use -c)", (long long)n_ctx);
            break;
        }
        n = nc + r->n_ids;
        ids = realloc(conv, (size_t)n * sizeof *ids);
        memcpy(ids + nc, r->ids, (size_t)r->n_ids * sizeof *ids);
    }
    free(forced);
    if (rc) {
        herd_tool_stream_free(st->ts);
        st->ts = NULL;
        herd_generate_result_free(r);
    }
    return rc;
}

static bool is_enabled_builtin(const chat_state *st, const char *name) {
    for (int i = 0; i < st->n_builtin; i++)
        if (!strcmp(st->builtin[i], name)) return true;
    return false;
}

/* Reads one line from stdin into a new string without its line end; NULL at end of input. */
static char *read_line(void) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t got = getline(&line, &cap, stdin);
    if (got < 0) {
        free(line);
        return NULL;
    }
    while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
    return line;
}

/* A user turn: generate; while the reply calls a tool, get its result and continue with it (the
 * agent loop): an enabled built-in tool is executed by herd; a custom function (or a built-in tool
 * not enabled with --tools) is shown to the user, who types its result in an interactive session —
 * in one-shot mode (-p) the call is the answer. At most max_steps calls are answered per turn. */
static int turn(chat_state *st, bool interactive) {
    for (int step = 0;; step++) {
        herd_generate_result r;
        int rc = generate_reply(st, &r);
        if (rc) return rc;
        herd_parsed_output po = {0};
        if (st->ts) {
            herd_tool_stream_finish(st->ts, &po);
            fwrite(po.content, 1, po.content_len, stdout);
            herd_tool_stream_free(st->ts);
            st->ts = NULL;
        }
        if (po.n_calls == 0) {
            fputc('\n', stdout);
            fflush(stdout);
            add_msg(st, "assistant", r.text, NULL, NULL);
            herd_parsed_output_free(&po);
            herd_generate_result_free(&r);
            return 0;
        }
        const herd_tool_call *call = &po.calls[0]; /* the template renders one call per message */
        if (po.content_len) fputc('\n', stdout);
        printf("[tool call] %s %s\n", call->name, call->arguments);
        if (po.n_calls > 1) printf("[note] the reply made %d calls; only the first is answered\n", po.n_calls);
        fflush(stdout);
        add_msg(st, "assistant", NULL, call->name, call->arguments);
        if (step == st->max_steps) {
            printf("[stopped] --max-steps %d reached: this call is not answered\n", st->max_steps);
            fflush(stdout);
            herd_parsed_output_free(&po);
            herd_generate_result_free(&r);
            return 0;
        }
        char *result = NULL;
        if (is_enabled_builtin(st, call->name)) { /* also when written as a JSON call */
            if (herd_builtin_tool_run_ex(call->name, call->arguments, &st->tool_params, &result) != HERD_OK)
                result = strdup(herd_last_error());
            printf("[tool result] %s\n%s\n[end of tool result]\n", call->name, result);
            fflush(stdout);
        } else if (interactive) {
            printf("[tool result] type the result of %s (one line):\n", call->name);
            fflush(stdout);
            result = read_line();
            if (!result) {
                herd_parsed_output_free(&po);
                herd_generate_result_free(&r);
                return 0;
            }
        } else {
            /* one-shot: the call is the answer, for the user to carry out */
            herd_parsed_output_free(&po);
            herd_generate_result_free(&r);
            return 0;
        }
        add_msg(st, "ipython", result, NULL, NULL);
        free(result);
        herd_parsed_output_free(&po);
        herd_generate_result_free(&r);
    }
}

static void dump_prompt(chat_state *st) {
    herd_chat_params p = chat_params(st);
    p.add_generation_prompt = false;
    char *text;
    if (herd_chat_format(st->msgs, st->n_msgs, &p, &text) != HERD_OK) return;
    FILE *fp = fopen(st->dump_prompt, "wb");
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
    free(text);
}

int cmd_chat(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    c.samp.temp = 0.6f; /* Meta's recommendation for Llama 3.1 chat (LLAMA31.md) */
    c.samp.top_p = 0.9f;
    const char *system = NULL, *prompt = NULL, *tools = NULL, *functions = NULL, *script = NULL, *dump = NULL;
    const char *store = NULL;
    int64_t n_predict = -1, max_steps = 8, rag_k = 5;
    rag_session *rs = NULL;
    float tool_timeout = 0;
    bool stats = true, shift = false;
    cli_spec spec;
    cli_spec_init(&spec);
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("chat", &c, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        if ((r = cli_spec_opt("chat", &spec, argc, argv, &i)) < 0) return 1;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--system")) { if (!cli_str("chat", argc, argv, &i, &system)) return 1; }
        else if (!strcmp(argv[i], "-p")) { if (!cli_str("chat", argc, argv, &i, &prompt)) return 1; }
        else if (!strcmp(argv[i], "-n")) { if (!cli_i64("chat", argc, argv, &i, -1, INT32_MAX, &n_predict)) return 1; }
        else if (!strcmp(argv[i], "--no-stats")) stats = false;
        else if (!strcmp(argv[i], "--context-policy")) {
            const char *pol;
            if (!cli_str("chat", argc, argv, &i, &pol)) return 1;
            if (strcmp(pol, "stop") && strcmp(pol, "shift"))
                return cli_fail("chat", "--context-policy: '%s' is not stop or shift", pol);
            shift = !strcmp(pol, "shift");
        }
        else if (!strcmp(argv[i], "--store")) { if (!cli_str("chat", argc, argv, &i, &store)) return 1; }
        else if (!strcmp(argv[i], "--rag-k")) { if (!cli_i64("chat", argc, argv, &i, 1, 100, &rag_k)) return 1; }
        else if (!strcmp(argv[i], "--tools")) { if (!cli_str("chat", argc, argv, &i, &tools)) return 1; }
        else if (!strcmp(argv[i], "--functions")) { if (!cli_str("chat", argc, argv, &i, &functions)) return 1; }
        else if (!strcmp(argv[i], "--max-steps")) { if (!cli_i64("chat", argc, argv, &i, 1, 100, &max_steps)) return 1; }
        else if (!strcmp(argv[i], "--tool-timeout")) { if (!cli_f32("chat", argc, argv, &i, 0.01f, 86400, &tool_timeout)) return 1; }
        else if (!strcmp(argv[i], "--test-script")) { if (!cli_str("chat", argc, argv, &i, &script)) return 1; }
        else if (!strcmp(argv[i], "--dump-prompt")) { if (!cli_str("chat", argc, argv, &i, &dump)) return 1; }
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return cli_help("chat");
        } else return cli_fail("chat", "unknown option '%s'", argv[i]);
    }
    if (!c.model) return cli_fail("chat", "no model given (-m MODEL)");
    chat_state st = {.n_predict = n_predict, .stats = stats, .max_steps = (int)max_steps, .dump_prompt = dump,
                     .tool_params = {.timeout_s = tool_timeout}, .spec = spec, .shift = shift};
    const char *names[8];
    herd_lora **loras = NULL;
    char *tool_list = tools ? strdup(tools) : NULL;
    int rc = 1;
    if (tools) {
        st.builtin = names;
        for (char *t = strtok(tool_list, ","); t; t = strtok(NULL, ",")) {
            if (strcmp(t, "brave_search") && strcmp(t, "wolfram_alpha") && strcmp(t, "code_interpreter")) {
                cli_fail("chat", "--tools: unknown built-in tool '%s' (brave_search, wolfram_alpha, code_interpreter)", t);
                goto done;
            }
            if (!is_enabled_builtin(&st, t)) names[st.n_builtin++] = t;
        }
    }
    if (functions) {
        size_t flen;
        if (!cli_read_text("chat", NULL, functions, &st.functions_json, &flen)) goto done;
        json_error_t err;
        json_t *f = json_loadb(st.functions_json, flen, 0, &err);
        bool ok = json_is_array(f);
        json_decref(f);
        if (!ok) {
            cli_fail("chat", "--functions %s: not a JSON array of OpenAI tool definitions (line %d: %s)", functions,
                     err.line, err.text[0] ? err.text : "not an array");
            goto done;
        }
    }
    if (script) {
        json_error_t err;
        st.script = json_load_file(script, 0, &err);
        if (!json_is_array(st.script)) {
            cli_fail("chat", "--test-script %s: not a JSON array of strings", script);
            goto done;
        }
    }
    if (herd_model_load(c.model, &st.m) != HERD_OK) {
        cli_fail_lib("chat");
        goto done;
    }
    if (herd_vocab_find(st.m, "<|start_header_id|>") < 0 || herd_vocab_find(st.m, "<|eot_id|>") < 0) {
        cli_fail("chat", "'%s' has no Llama 3 chat tokens (<|start_header_id|>, <|eot_id|>); use 'herd run' for "
                 "plain completion", c.model);
        goto done;
    }
    if (herd_context_new(st.m, &c.ctx, &st.ctx) != HERD_OK) { cli_fail_lib("chat"); goto done; }
    if (!cli_lora_apply("chat", &c, st.m, st.ctx, &loras)) goto done;
    if (!cli_spec_load("chat", &st.spec, st.m, st.ctx, &c.ctx)) goto done;
    st.s = herd_sampler_new(&c.samp, herd_vocab_n_tokens(st.m));
    if (store && !(rs = rag_session_open(store, rag_k, c.ctx.n_threads))) goto done;

    bool interactive = prompt == NULL;
    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    if (system) add_msg(&st, "system", system, NULL, NULL);
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
        if (rs) {
            char *aug = rag_session_augment(rs, msg);
            if (!aug) { rc = 1; break; }
            add_msg(&st, "user", aug, NULL, NULL);
            free(aug);
        } else add_msg(&st, "user", msg, NULL, NULL);
        rc = turn(&st, interactive);
        if (rc || !interactive) break;
    }
    free(line);
    if (st.dump_prompt) dump_prompt(&st);
done:
    for (size_t i = 0; i < st.n_msgs; i++) {
        free((char *)st.msgs[i].content);
        free((char *)st.msgs[i].tool_name);
        free((char *)st.msgs[i].tool_arguments);
    }
    rag_session_close(rs);
    free(tool_list);
    free(st.functions_json);
    json_decref(st.script);
    free(st.msgs);
    free(st.cached);
    herd_sampler_free(st.s);
    herd_context_free(st.ctx);
    cli_spec_free(&st.spec);
    cli_lora_free(loras, c.n_lora);
    herd_model_free(st.m);
    cli_common_free(&c);
    return rc;
}
