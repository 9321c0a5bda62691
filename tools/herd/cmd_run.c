/* herd run   -m MODEL (-p TEXT | -f FILE | --prompt-ids JSON) [-n N] [sampling] [--stop S]... [--json]
 *            [--json-schema FILE | --json-object]
 * herd logits -m MODEL --prompt-ids JSON -o FILE */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static bool print_piece(const char *s, size_t n, void *user) {
    (void)user;
    fwrite(s, 1, n, stdout);
    fflush(stdout);
    return true;
}

int cmd_run(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    cli_spec sp;
    cli_spec_init(&sp);
    const char *text = NULL, *file = NULL, *ids_json = NULL, *schema_file = NULL;
    bool any_object = false;
    char *schema = NULL;
    herd_constraint *con = NULL;
    int64_t n_predict = -1;
    bool json = false, special = true, no_bos = false;
    const char **stops = calloc((size_t)argc, sizeof *stops);
    int n_stop = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("run", &c, argc, argv, &i);
        if (r < 0) goto out;
        if (r > 0) continue;
        if ((r = cli_spec_opt("run", &sp, argc, argv, &i)) < 0) goto out;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-p")) { if (!cli_str("run", argc, argv, &i, &text)) goto out; }
        else if (!strcmp(a, "-f")) { if (!cli_str("run", argc, argv, &i, &file)) goto out; }
        else if (!strcmp(a, "--prompt-ids")) { if (!cli_str("run", argc, argv, &i, &ids_json)) goto out; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!cli_i64("run", argc, argv, &i, -1, INT32_MAX, &n_predict)) goto out;
        } else if (!strcmp(a, "--stop")) {
            if (!cli_str("run", argc, argv, &i, &stops[n_stop])) goto out;
            if (!stops[n_stop][0]) { cli_fail("run", "--stop needs a non-empty string"); goto out; }
            n_stop++;
        } else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--json-schema")) { if (!cli_str("run", argc, argv, &i, &schema_file)) goto out; }
        else if (!strcmp(a, "--json-object")) any_object = true;
        else if (!strcmp(a, "--no-special")) special = false;
        else if (!strcmp(a, "--no-bos")) no_bos = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { rc = cli_help("run"); goto out; }
        else { cli_fail("run", "unknown option '%s'", a); goto out; }
    }
    if (!c.model) { cli_fail("run", "no model given (-m MODEL)"); goto out; }
    if (!text && !file && !ids_json) { cli_fail("run", "no prompt given (-p TEXT, -f FILE or --prompt-ids JSON)"); goto out; }
    if (ids_json && (text || file)) { cli_fail("run", "give a text prompt or --prompt-ids, not both"); goto out; }
    if (schema_file && any_object) { cli_fail("run", "give --json-schema or --json-object, not both"); goto out; }
    if (schema_file) {
        size_t slen;
        if (!cli_read_text("run", NULL, schema_file, &schema, &slen)) goto out;
    }

    herd_model *m = NULL;
    herd_context *ctx = NULL;
    herd_sampler *s = NULL;
    herd_lora **loras = NULL;
    int32_t *prompt = NULL;
    int64_t n_prompt = 0;
    if (ids_json) {
        if (!cli_parse_ids("run", ids_json, strlen(ids_json), &prompt, &n_prompt)) goto out;
    }
    if (herd_model_load(c.model, &m) != HERD_OK) { cli_fail_lib("run"); goto done; }
    if (!ids_json) {
        char *buf;
        size_t len;
        if (!cli_read_text("run", text, file, &buf, &len)) goto done;
        int flags = (special ? HERD_TOKENIZE_PARSE_SPECIAL : 0) | (!no_bos && herd_vocab_add_bos(m) ? HERD_TOKENIZE_ADD_BOS : 0);
        int trc = herd_tokenize(m, buf, len, flags, &prompt, &n_prompt);
        free(buf);
        if (trc != HERD_OK) { cli_fail_lib("run"); goto done; }
    }
    if (n_prompt == 0) { cli_fail("run", "the prompt is empty (no tokens)"); goto done; }
    if (herd_context_new(m, &c.ctx, &ctx) != HERD_OK) { cli_fail_lib("run"); goto done; }
    if (!cli_lora_apply("run", &c, m, ctx, &loras)) goto done;
    if (!cli_spec_load("run", &sp, m, ctx, &c.ctx)) goto done;
    s = herd_sampler_new(&c.samp, herd_vocab_n_tokens(m));
    if (schema || any_object) {
        if (herd_constraint_json_schema(m, schema, &con) != HERD_OK) { cli_fail_lib("run"); goto done; }
        herd_sampler_set_constraint(s, con);
    }
    herd_generate_params gp = {.n_predict = n_predict, .stop = stops, .n_stop = n_stop,
                               .on_text = json ? NULL : print_piece, .user = NULL};
    cli_spec_params(&sp, &gp);
    herd_generate_result res;
    if (herd_generate(ctx, s, prompt, n_prompt, &gp, &res) != HERD_OK) {
        if (!json) fputc('\n', stdout);
        cli_fail_lib("run");
        goto done;
    }
    double pps = res.prompt_seconds > 0 ? (double)n_prompt / res.prompt_seconds : 0;
    double gps = res.gen_seconds > 0 ? (double)res.n_ids / res.gen_seconds : 0;
    if (json) {
        json_t *o = json_object(), *pa = json_array(), *ga = json_array(), *t = json_object();
        for (int64_t i = 0; i < n_prompt; i++) json_array_append_new(pa, json_integer(prompt[i]));
        for (int64_t i = 0; i < res.n_ids; i++) json_array_append_new(ga, json_integer(res.ids[i]));
        json_object_set_new(o, "prompt_ids", pa);
        json_object_set_new(o, "ids", ga);
        /* generated bytes may be invalid UTF-8 mid-way through a broken model's output: keep what
         * jansson accepts, else replace the text by its escaped bytes */
        json_t *txt = json_stringn(res.text, res.text_len);
        if (!txt) {
            char *esc = malloc(res.text_len * 4 + 1), *q = esc;
            for (size_t i = 0; i < res.text_len; i++) {
                unsigned char ch = (unsigned char)res.text[i];
                if (ch < 0x80) *q++ = (char)ch;
                else q += sprintf(q, "\\x%02x", ch);
            }
            *q = 0;
            txt = json_string(esc);
            free(esc);
        }
        json_object_set_new(o, "text", txt);
        json_object_set_new(t, "prompt_tokens_per_s", json_real(pps));
        json_object_set_new(t, "gen_tokens_per_s", json_real(gps));
        if (sp.ctx || sp.lookup > 0) {
            json_object_set_new(t, "drafted", json_integer(res.n_drafted));
            json_object_set_new(t, "accepted", json_integer(res.n_accepted));
            json_object_set_new(t, "spec_steps", json_integer(res.n_spec_steps));
        }
        json_object_set_new(o, "timings", t);
        static const char *reasons[] = {"", "eog", "length", "stop", "context", "user"};
        json_object_set_new(o, "stop_reason", json_string(reasons[res.stop_reason]));
        char *out = json_dumps(o, JSON_COMPACT);
        puts(out);
        free(out);
        json_decref(o);
    } else {
        fputc('\n', stdout);
        char st[160];
        cli_spec_stats(&res, st, sizeof st);
        fprintf(stderr, "herd run: prompt %lld tokens at %.1f t/s, generated %lld tokens at %.1f t/s%s\n",
                (long long)n_prompt, pps, (long long)res.n_ids, gps, st);
    }
    herd_generate_result_free(&res);
    rc = 0;
done:
    herd_sampler_free(s);
    herd_constraint_free(con);
    herd_context_free(ctx);
    cli_spec_free(&sp);
    cli_lora_free(loras, c.n_lora);
    herd_model_free(m);
    free(prompt);
out:
    cli_common_free(&c);
    free(schema);
    free(stops);
    return rc;
}

static int logits_main(cli_common *cc, int argc, char **argv);

int cmd_logits(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    int rc = logits_main(&c, argc, argv);
    cli_common_free(&c);
    return rc;
}

static int logits_main(cli_common *c, int argc, char **argv) {
    const char *ids_json = NULL, *out_path = NULL, *at_json = NULL, *ids_file = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt("logits", c, argc, argv, &i);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--prompt-ids")) { if (!cli_str("logits", argc, argv, &i, &ids_json)) return 1; }
        else if (!strcmp(argv[i], "-o")) { if (!cli_str("logits", argc, argv, &i, &out_path)) return 1; }
        else if (!strcmp(argv[i], "--at")) { if (!cli_str("logits", argc, argv, &i, &at_json)) return 1; }
        else if (!strcmp(argv[i], "--prompt-ids-file")) { if (!cli_str("logits", argc, argv, &i, &ids_file)) return 1; }
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return cli_help("logits");
        } else return cli_fail("logits", "unknown option '%s'", argv[i]);
    }
    if (!c->model || !(ids_json || ids_file) || !out_path)
        return cli_fail("logits", "need -m MODEL, --prompt-ids JSON (or --prompt-ids-file FILE) and -o FILE");
    int32_t *ids;
    int64_t n;
    char *ids_buf = NULL; /* a long prompt's ids come from a file: a command line holds ~128 KiB per argument */
    size_t ids_len = ids_json ? strlen(ids_json) : 0;
    if (ids_file && !cli_read_text("logits", NULL, ids_file, &ids_buf, &ids_len)) return 1;
    bool parsed = cli_parse_ids("logits", ids_buf ? ids_buf : ids_json, ids_len, &ids, &n);
    free(ids_buf);
    if (!parsed) return 1;
    if (n == 0) { free(ids); return cli_fail("logits", "--prompt-ids is empty"); }
    /* --at: only these positions' rows (ascending), for long prompts: the prompt runs in passes that end at
     * each of them (HERD_LOGITS_LAST), so no row but theirs is computed */
    int32_t *at = NULL;
    int64_t n_at = 0;
    if (at_json) {
        if (!cli_parse_ids("logits", at_json, strlen(at_json), &at, &n_at)) { free(ids); return 1; }
        for (int64_t j = 0; j < n_at; j++)
            if (at[j] < 0 || at[j] >= n || (j > 0 && at[j] <= at[j - 1])) {
                int32_t bad = at[j];
                free(ids), free(at);
                return cli_fail("logits", "--at: position %d is not in [0, %lld) or not ascending", bad, (long long)n);
            }
    }
    herd_model *m = NULL;
    herd_context *ctx = NULL;
    herd_lora **loras = NULL;
    float *lg = NULL;
    FILE *fp = NULL;
    int rc = 1;
    if (herd_model_load(c->model, &m) != HERD_OK) { cli_fail_lib("logits"); goto done; }
    if (c->ctx.n_ctx == 0) c->ctx.n_ctx = n; /* just what the prompt needs */
    if (herd_context_new(m, &c->ctx, &ctx) != HERD_OK) { cli_fail_lib("logits"); goto done; }
    if (!cli_lora_apply("logits", c, m, ctx, &loras)) goto done;
    int64_t nv = herd_vocab_n_tokens(m), chunk = 64;
    lg = malloc((size_t)(chunk * nv) * sizeof(float));
    fp = fopen(out_path, "wb");
    if (!fp) { cli_fail("logits", "cannot create '%s'", out_path); goto done; }
    for (int64_t j = 0, i = 0; j < n_at; j++) { /* --at: [i, at[j]] in one call (split by n_batch inside) */
        int64_t k = at[j] + 1 - i;
        if (herd_decode(ctx, ids + i, k, HERD_LOGITS_LAST, lg) != HERD_OK) { cli_fail_lib("logits"); goto done; }
        if (fwrite(lg, sizeof(float), (size_t)nv, fp) != (size_t)nv) {
            cli_fail("logits", "cannot write '%s'", out_path);
            goto done;
        }
        i = at[j] + 1;
    }
    for (int64_t i = 0; i < n && !at; i += chunk) {
        int64_t k = n - i < chunk ? n - i : chunk;
        if (herd_decode(ctx, ids + i, k, HERD_LOGITS_ALL, lg) != HERD_OK) { cli_fail_lib("logits"); goto done; }
        if (fwrite(lg, sizeof(float), (size_t)(k * nv), fp) != (size_t)(k * nv)) {
            cli_fail("logits", "cannot write '%s'", out_path);
            goto done;
        }
    }
    if (fclose(fp) != 0) { fp = NULL; cli_fail("logits", "cannot write '%s'", out_path); goto done; }
    fp = NULL;
    rc = 0;
done:
    if (fp) fclose(fp);
    free(lg);
    free(ids);
    free(at);
    herd_context_free(ctx);
    cli_lora_free(loras, c->n_lora);
    herd_model_free(m);
    return rc;
}
