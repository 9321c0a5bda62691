#include "cli.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT_BYTES ((size_t)1 << 30)

const cli_help_entry *cli_help_find(const char *cmd) {
    for (size_t i = 0; i < cli_help_n; i++)
        if (!strcmp(cli_help_table[i].name, cmd)) return &cli_help_table[i];
    return NULL;
}

int cli_help(const char *cmd) {
    const cli_help_entry *h = cli_help_find(cmd);
    assert(h && "tools/gen_help.sh makes an entry for every command of main.c's table");
    fputs(h->text, stdout);
    return 0;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "herd %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail_lib(const char *cmd) {
    return cli_fail(cmd, "%s", herd_last_error());
}

bool cli_str(const char *cmd, int argc, char **argv, int *i, const char **out) {
    if (*i + 1 >= argc) {
        cli_fail(cmd, "option %s needs a value", argv[*i]);
        return false;
    }
    *out = argv[++*i];
    return true;
}

bool cli_i64(const char *cmd, int argc, char **argv, int *i, int64_t lo, int64_t hi, int64_t *out) {
    const char *s, *opt = argv[*i];
    if (!cli_str(cmd, argc, argv, i, &s)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_fail(cmd, "option %s wants an integer in [%lld, %lld], got '%s'", opt, (long long)lo, (long long)hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_f32(const char *cmd, int argc, char **argv, int *i, float lo, float hi, float *out) {
    const char *s, *opt = argv[*i];
    if (!cli_str(cmd, argc, argv, i, &s)) return false;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_fail(cmd, "option %s wants a number in [%g, %g], got '%s'", opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_ids(const char *cmd, const char *json, size_t len, int32_t **ids, int64_t *n) {
    json_error_t err;
    json_t *a = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!a) {
        cli_fail(cmd, "token ids are not valid JSON (line %d, column %d): %s", err.line, err.column, err.text);
        return false;
    }
    if (!json_is_array(a)) {
        json_decref(a);
        cli_fail(cmd, "token ids must be a JSON array of integers");
        return false;
    }
    size_t k = json_array_size(a);
    int32_t *v = malloc((k ? k : 1) * sizeof *v);
    for (size_t j = 0; j < k; j++) {
        json_t *e = json_array_get(a, j);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX) {
            free(v);
            json_decref(a);
            cli_fail(cmd, "token ids: element %zu is not a non-negative integer", j);
            return false;
        }
        v[j] = (int32_t)json_integer_value(e);
    }
    json_decref(a);
    *ids = v;
    *n = (int64_t)k;
    return true;
}

void cli_print_ids(FILE *fp, const int32_t *ids, int64_t n) {
    fputc('[', fp);
    for (int64_t i = 0; i < n; i++) fprintf(fp, i ? ", %d" : "%d", ids[i]);
    fputc(']', fp);
}

static bool read_file(const char *cmd, const char *path, char **text, size_t *len) {
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!fp) {
        cli_fail(cmd, "cannot open '%s': %s", path, strerror(errno));
        return false;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= MAX_INPUT_BYTES) {
                free(buf);
                if (fp != stdin) fclose(fp);
                cli_fail(cmd, "input '%s' is larger than %zu bytes", path, MAX_INPUT_BYTES);
                return false;
            }
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, fp);
        if (got == 0) break;
        n += got;
    }
    bool bad = ferror(fp);
    if (fp != stdin) fclose(fp);
    if (bad) {
        free(buf);
        cli_fail(cmd, "error reading '%s'", path);
        return false;
    }
    buf[n] = 0;
    *text = buf;
    *len = n;
    return true;
}

bool cli_read_text(const char *cmd, const char *text_arg, const char *file_arg, char **text, size_t *len) {
    if (text_arg && file_arg) {
        cli_fail(cmd, "give either -p or -f, not both");
        return false;
    }
    if (text_arg) {
        *len = strlen(text_arg);
        *text = malloc(*len + 1);
        memcpy(*text, text_arg, *len + 1);
        return true;
    }
    return read_file(cmd, file_arg ? file_arg : "-", text, len);
}

void cli_common_init(cli_common *c) {
    memset(c, 0, sizeof *c);
    c->ctx = herd_context_default_params();
    c->samp = herd_sampler_default_params();
}

void cli_common_free(cli_common *c) {
    for (int i = 0; i < c->n_lora; i++) free(c->lora[i].path), free(c->lora[i].spec_copy);
    free(c->lora);
    c->lora = NULL;
    c->n_lora = 0;
}

bool cli_lora_parse(const char *cmd, const char *spec, cli_lora *l) {
    memset(l, 0, sizeof *l);
    l->scale = 1.0f;
    l->spec_copy = strdup(spec);
    char *s = l->spec_copy, *eq = strchr(s, '='), *slash = strchr(s, '/');
    if (eq && eq > s && (!slash || eq < slash)) { /* NAME=FILE */
        *eq = 0;
        l->name = s;
        s = eq + 1;
    }
    char *colon = strrchr(s, ':');
    if (colon && colon[1]) { /* FILE:SCALE when what follows the last ':' is a number */
        char *end;
        errno = 0;
        float v = strtof(colon + 1, &end);
        if (!errno && !*end && isfinite(v)) {
            l->scale = v;
            *colon = 0;
        }
    }
    if (!*s) {
        cli_fail(cmd, "--lora '%s': no adapter file", spec);
        return false;
    }
    l->path = strdup(s);
    return true;
}

bool cli_lora_load(const char *cmd, const cli_common *c, const herd_model *m, herd_lora ***out) {
    herd_lora **a = calloc((size_t)(c->n_lora ? c->n_lora : 1), sizeof *a);
    for (int i = 0; i < c->n_lora; i++)
        if (herd_lora_load(m, c->lora[i].path, &a[i]) != HERD_OK) {
            cli_fail_lib(cmd);
            cli_lora_free(a, i);
            return false;
        }
    *out = a;
    return true;
}

void cli_lora_free(herd_lora **a, int n) {
    if (!a) return;
    for (int i = 0; i < n; i++) herd_lora_free(a[i]);
    free(a);
}

bool cli_lora_apply(const char *cmd, const cli_common *c, const herd_model *m, herd_context *ctx, herd_lora ***out) {
    *out = NULL;
    if (c->n_lora == 0) return true;
    if (!cli_lora_load(cmd, c, m, out)) return false;
    float *scales = malloc((size_t)c->n_lora * sizeof *scales);
    for (int i = 0; i < c->n_lora; i++) scales[i] = c->lora[i].scale;
    int rc = herd_context_set_lora(ctx, *out, scales, c->n_lora);
    free(scales);
    if (rc != HERD_OK) {
        cli_fail_lib(cmd);
        cli_lora_free(*out, c->n_lora);
        *out = NULL;
        return false;
    }
    return true;
}

int cli_common_opt(const char *cmd, cli_common *c, int argc, char **argv, int *i) {
    const char *a = argv[*i], *s;
    int64_t v;
    float f;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) return cli_str(cmd, argc, argv, i, &c->model) ? 1 : -1;
    if (!strcmp(a, "--lora")) {
        if (!cli_str(cmd, argc, argv, i, &s)) return -1;
        c->lora = realloc(c->lora, (size_t)(c->n_lora + 1) * sizeof *c->lora);
        if (!cli_lora_parse(cmd, s, &c->lora[c->n_lora])) {
            free(c->lora[c->n_lora].spec_copy);
            return -1;
        }
        c->n_lora++;
        return 1;
    }
    if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if (!cli_i64(cmd, argc, argv, i, 1, 512, &v)) return -1;
        c->ctx.n_threads = (int)v;
        return 1;
    }
    if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
        if (!cli_i64(cmd, argc, argv, i, 1, (int64_t)1 << 24, &v)) return -1;
        c->ctx.n_ctx = v;
        return 1;
    }
    if (!strcmp(a, "-b") || !strcmp(a, "--batch")) {
        if (!cli_i64(cmd, argc, argv, i, 1, 1 << 16, &v)) return -1;
        c->ctx.n_batch = v;
        return 1;
    }
    if (!strcmp(a, "--kv-type") || !strcmp(a, "--kv-type-k") || !strcmp(a, "--kv-type-v")) {
        if (!cli_str(cmd, argc, argv, i, &s)) return -1;
        static const struct { const char *name; int type; } kvt[] = {
            {"f32", HERD_KV_F32}, {"f16", HERD_KV_F16}, {"bf16", HERD_KV_BF16}, {"q8_0", HERD_KV_Q8_0}, {"q4_0", HERD_KV_Q4_0}};
        int t = -1;
        for (size_t k = 0; k < sizeof kvt / sizeof kvt[0]; k++)
            if (!strcmp(s, kvt[k].name)) t = kvt[k].type;
        if (t < 0) {
            cli_fail(cmd, "%s must be f32, f16, bf16, q8_0 or q4_0, not '%s'", a, s);
            return -1;
        }
        const int cur = c->ctx.kv_type, ck = HERD_KV_TYPE_K(cur), cv = HERD_KV_TYPE_V(cur);
        if (!strcmp(a, "--kv-type")) c->ctx.kv_type = t;
        else if (!strcmp(a, "--kv-type-k")) c->ctx.kv_type = HERD_KV_PAIR(t, cv); /* AUTO's -1 becomes 0xff */
        else c->ctx.kv_type = HERD_KV_PAIR(ck, t);
        return 1;
    }
    if (!strcmp(a, "--temp")) {
        if (!cli_f32(cmd, argc, argv, i, 0, 100, &f)) return -1;
        c->samp.temp = f;
        return 1;
    }
    if (!strcmp(a, "--top-k")) {
        if (!cli_i64(cmd, argc, argv, i, 0, INT32_MAX, &v)) return -1;
        c->samp.top_k = (int32_t)v;
        return 1;
    }
    if (!strcmp(a, "--top-p")) {
        if (!cli_f32(cmd, argc, argv, i, 0, 1, &f)) return -1;
        c->samp.top_p = f;
        return 1;
    }
    if (!strcmp(a, "--min-p")) {
        if (!cli_f32(cmd, argc, argv, i, 0, 1, &f)) return -1;
        c->samp.min_p = f;
        return 1;
    }
    if (!strcmp(a, "--repeat-penalty")) {
        if (!cli_f32(cmd, argc, argv, i, 0.01f, 100, &f)) return -1;
        c->samp.repeat_penalty = f;
        return 1;
    }
    if (!strcmp(a, "--repeat-last-n")) {
        if (!cli_i64(cmd, argc, argv, i, 0, 1 << 20, &v)) return -1;
        c->samp.repeat_last_n = (int32_t)v;
        return 1;
    }
    if (!strcmp(a, "--seed")) {
        if (!cli_i64(cmd, argc, argv, i, 0, INT64_MAX, &v)) return -1;
        c->samp.seed = (uint64_t)v;
        return 1;
    }
    if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
        herd_set_verbosity(1);
        return 1;
    }
    return 0;
}
