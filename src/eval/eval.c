/* herd eval: benchmark tasks from local JSONL files, scored as lm-evaluation-harness scores them.
 *
 * Multiple choice (mc, mmlu): for each choice the request is (context, " " + choice) (the harness's
 * target_delimiter " "), encoded as the harness's _encode_pair does: trailing whitespace of the context moves
 * to the front of the continuation; whole = tok(context + continuation), ctx = tok(context), continuation
 * tokens = whole[len(ctx):]; the model runs ctx + continuation tokens (BOS first when the model adds one).
 * The context runs once per item (sequence 0), each choice's tokens after it (the cache cut back to the
 * context between choices). ll = the sum over the continuation of log softmax (double) at the token.
 * acc: argmax ll == answer; acc_norm: argmax ll / len(choice) == answer, len as Python's len (code points of
 * the choice without the delimiter), as the harness's process_results; first index on ties (np.argmax).
 *
 * MMLU: the harness's mmlu task format: "The following are multiple choice questions (with answers) about
 * SUBJECT.\n\n", n_shot shots "Q\nA. c0\nB. c1\nC. c2\nD. c3\nAnswer: X\n\n", then the item the same way
 * ending "Answer:", choices the letters (" A" .. " D" as continuations).
 *
 * Generative (gen): greedy generation (raw prompt + BOS, or the chat template), stop strings; the answer is
 * the harness's GSM8K flexible-extract (the last number) and exact_match after its normalization. */
#include "eval.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"
#include "../base/strbuf.h"
#include "../tools/sandbox.h"

/* ---- parsing ---------------------------------------------------------------------------------------------
 */

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void eval_items_free(eval_item *items, int64_t n) {
    if (!items) return;
    for (int64_t i = 0; i < n; i++) {
        free(items[i].context);
        for (int k = 0; k < items[i].n_choices; k++) free(items[i].choices[k]);
        free(items[i].choices);
        free(items[i].target);
        free(items[i].subject);
    }
    free(items);
}

static int parse_item(json_t *o, int type, const char *name, int64_t line, eval_item *it) {
    if (!json_is_object(o))
        return herd_err(HERD_E_FORMAT, "%s:%lld: not a JSON object", name, (long long)line);
    const char *ck = type == HERD_EVAL_GEN || type == HERD_EVAL_CODE ? "prompt" : "context";
    json_t *ctx = json_object_get(o, "question");
    if (!ctx) ctx = json_object_get(o, ck);
    if (!json_is_string(ctx))
        return herd_err(HERD_E_FORMAT, "%s:%lld: needs \"question\" or \"%s\" (a string)", name,
                        (long long)line, ck);
    it->context = dupstr(json_string_value(ctx));
    if (!it->context) return herd_err(HERD_E_NOMEM, "eval: out of memory");
    json_t *ans = json_object_get(o, "answer");
    if (type == HERD_EVAL_CODE) { /* HumanEval: prompt, test, entry_point (the test defines check(candidate)) */
        json_t *test = json_object_get(o, "test"), *ep = json_object_get(o, "entry_point");
        if (!json_is_string(test))
            return herd_err(HERD_E_FORMAT, "%s:%lld: needs \"test\" (python code, a string)", name, (long long)line);
        if (ep && !json_is_string(ep))
            return herd_err(HERD_E_FORMAT, "%s:%lld: \"entry_point\" is not a string", name, (long long)line);
        it->target = dupstr(json_string_value(test));
        if (ep) it->subject = dupstr(json_string_value(ep));
        if (!it->target || (ep && !it->subject)) return herd_err(HERD_E_NOMEM, "eval: out of memory");
        return HERD_OK;
    }
    if (type == HERD_EVAL_GEN) {
        char buf[64];
        if (json_is_string(ans))
            it->target = dupstr(json_string_value(ans));
        else if (json_is_integer(ans)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(ans));
            it->target = dupstr(buf);
        } else if (json_is_real(ans)) {
            snprintf(buf, sizeof buf, "%.17g", json_real_value(ans));
            it->target = dupstr(buf);
        } else
            return herd_err(HERD_E_FORMAT, "%s:%lld: needs \"answer\" (a string or number)", name,
                            (long long)line);
        if (!it->target) return herd_err(HERD_E_NOMEM, "eval: out of memory");
        return HERD_OK;
    }
    json_t *ch = json_object_get(o, "choices");
    if (!json_is_array(ch))
        return herd_err(HERD_E_FORMAT, "%s:%lld: needs \"choices\" (an array of strings)", name,
                        (long long)line);
    size_t nc = json_array_size(ch);
    if (nc == 0) return herd_err(HERD_E_FORMAT, "%s:%lld: \"choices\" is empty", name, (long long)line);
    if (nc > 1024) return herd_err(HERD_E_FORMAT, "%s:%lld: more than 1024 choices", name, (long long)line);
    if (type == HERD_EVAL_MMLU && nc != 4)
        return herd_err(HERD_E_FORMAT, "%s:%lld: mmlu needs 4 choices, not %zu", name, (long long)line, nc);
    it->choices = calloc(nc, sizeof *it->choices);
    if (!it->choices) return herd_err(HERD_E_NOMEM, "eval: out of memory");
    for (size_t k = 0; k < nc; k++) {
        json_t *c = json_array_get(ch, k);
        if (!json_is_string(c))
            return herd_err(HERD_E_FORMAT, "%s:%lld: choices[%zu] is not a string", name, (long long)line, k);
        it->choices[k] = dupstr(json_string_value(c));
        if (!it->choices[k]) return herd_err(HERD_E_NOMEM, "eval: out of memory");
        it->n_choices = (int)k + 1;
    }
    if (!json_is_integer(ans))
        return herd_err(HERD_E_FORMAT, "%s:%lld: needs \"answer\" (an integer index)", name, (long long)line);
    json_int_t a = json_integer_value(ans);
    if (a < 0 || a >= (json_int_t)nc)
        return herd_err(HERD_E_FORMAT, "%s:%lld: answer %lld out of range (%zu choices)", name,
                        (long long)line, (long long)a, nc);
    it->answer = (int)a;
    json_t *subj = json_object_get(o, "subject");
    if (subj && !json_is_string(subj))
        return herd_err(HERD_E_FORMAT, "%s:%lld: \"subject\" is not a string", name, (long long)line);
    if (subj && !(it->subject = dupstr(json_string_value(subj))))
        return herd_err(HERD_E_NOMEM, "eval: out of memory");
    return HERD_OK;
}

int eval_parse_tasks(const char *text, size_t len, int type, const char *name, eval_item **items,
                     int64_t *n) {
    *items = NULL;
    *n = 0;
    eval_item *v = NULL;
    int64_t nv = 0, cap = 0, line = 0;
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        line++;
        size_t b = i;
        bool blank = true;
        for (size_t k = b; k < e; k++)
            if (!isspace((unsigned char)text[k])) blank = false;
        i = e + 1;
        if (blank) continue;
        json_error_t je;
        json_t *o = json_loadb(text + b, e - b, JSON_REJECT_DUPLICATES, &je);
        if (!o) {
            eval_items_free(v, nv);
            return herd_err(HERD_E_FORMAT, "%s:%lld: malformed JSON: %s", name, (long long)line, je.text);
        }
        if (nv == cap) {
            cap = cap ? 2 * cap : 16;
            eval_item *nvp = realloc(v, (size_t)cap * sizeof *v);
            if (!nvp) {
                json_decref(o);
                eval_items_free(v, nv);
                return herd_err(HERD_E_NOMEM, "eval: out of memory");
            }
            v = nvp;
        }
        memset(&v[nv], 0, sizeof v[nv]);
        v[nv].line = line;
        int rc = parse_item(o, type, name, line, &v[nv]);
        nv++;
        json_decref(o);
        if (rc != HERD_OK) {
            eval_items_free(v, nv);
            return rc;
        }
    }
    if (nv == 0) return herd_err(HERD_E_FORMAT, "%s: no items", name);
    *items = v;
    *n = nv;
    return HERD_OK;
}

/* ---- answer extraction (gen) ------------------------------------------------------------------------------
 */

char *eval_extract_number(const char *text) {
    regex_t re;
    /* POSIX leftmost-longest equals Python's leftmost-first here: the first alternative's class holds the
     * second's, so where both match the first is at least as long */
    if (regcomp(&re, "(-?[$0-9.,]{2,})|(-?[0-9]+)", REG_EXTENDED) != 0) return NULL;
    const char *p = text, *best = NULL;
    size_t best_len = 0;
    regmatch_t m[1];
    int flags = 0;
    while (*p && regexec(&re, p, 1, m, flags) == 0) {
        if (m[0].rm_eo <= m[0].rm_so) break;
        best = p + m[0].rm_so;
        best_len = (size_t)(m[0].rm_eo - m[0].rm_so);
        p += m[0].rm_eo;
        flags = REG_NOTBOL;
    }
    regfree(&re);
    if (!best) return dupstr("[invalid]");
    while (best_len && isspace((unsigned char)*best)) best++, best_len--;
    while (best_len && isspace((unsigned char)best[best_len - 1])) best_len--;
    char *r = malloc(best_len + 1);
    if (!r) return NULL;
    memcpy(r, best, best_len);
    r[best_len] = 0;
    return r;
}

char *eval_normalize_answer(const char *text) {
    size_t n = strlen(text);
    char *a = malloc(n + 1);
    if (!a) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (text[i] != ',' && text[i] != '$') a[k++] = text[i];
    a[k] = 0;
    /* (?s).*#### : greedy, so through the last "#### " */
    char *last = NULL;
    for (char *q = strstr(a, "#### "); q; q = strstr(q + 1, "#### ")) last = q;
    if (last) memmove(a, last + 5, strlen(last + 5) + 1);
    k = strlen(a);
    /* \.$ : a final "." (Python's $ also matches before a final newline) */
    if (k >= 1 && a[k - 1] == '.')
        a[--k] = 0;
    else if (k >= 2 && a[k - 1] == '\n' && a[k - 2] == '.')
        memmove(a + k - 2, a + k - 1, 2), k--;
    for (size_t i = 0; i < k; i++) a[i] = (char)tolower((unsigned char)a[i]);
    return a;
}

/* ---- scoring
 * ----------------------------------------------------------------------------------------------- */

/* log softmax(row)[tok] in double */
static double logprob(const float *row, int64_t n_vocab, int32_t tok) {
    float mx = row[0];
    for (int64_t j = 1; j < n_vocab; j++) mx = row[j] > mx ? row[j] : mx;
    double s = 0;
    for (int64_t j = 0; j < n_vocab; j++) s += exp((double)row[j] - mx);
    return (double)row[tok] - mx - log(s);
}

/* Python's len(): UTF-8 code points (continuation bytes not counted) */
static int64_t n_codepoints(const char *s) {
    int64_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

typedef struct {
    herd_context *c;
    const herd_model *m;
    int64_t n_vocab;
    int tok_flags;
    float *rows; /* [cap_rows][n_vocab] */
    int64_t cap_rows;
} scorer;

static int ensure_rows(scorer *s, int64_t n) {
    if (n <= s->cap_rows) return HERD_OK;
    float *r = realloc(s->rows, (size_t)n * (size_t)s->n_vocab * sizeof(float));
    if (!r) return herd_err(HERD_E_NOMEM, "eval: out of memory");
    s->rows = r;
    s->cap_rows = n;
    return HERD_OK;
}

/* Log-likelihoods of the choices after context (the harness's _encode_pair and loglikelihood).
 * OUT: ll[k], ntok[k]. */
static int score_choices(scorer *s, const char *context, char *const *choices, int n_choices,
                         const char *name, int64_t line, double *ll, int64_t *ntok) {
    size_t clen = strlen(context), nsp = 0;
    while (nsp < clen && isspace((unsigned char)context[clen - 1 - nsp])) nsp++;
    const size_t cbase = clen - nsp;
    int32_t *cids = NULL, *wids = NULL;
    int64_t ncids = 0, nwids = 0;
    int rc = herd_tokenize(s->m, context, cbase, s->tok_flags, &cids, &ncids);
    if (rc != HERD_OK) return rc;
    if (ncids == 0) {
        free(cids);
        return herd_err(HERD_E_FORMAT, "%s:%lld: empty context and no BOS token", name, (long long)line);
    }
    const int64_t n_ctx = herd_context_n_ctx(s->c);
    herd_context_truncate(s->c, 0);
    if (ncids > n_ctx) {
        free(cids);
        return herd_err(HERD_E_RANGE, "%s:%lld: context of %lld tokens exceeds -c %lld", name,
                        (long long)line, (long long)ncids, (long long)n_ctx);
    }
    float *last = malloc((size_t)s->n_vocab * sizeof(float));
    if (!last) {
        free(cids);
        return herd_err(HERD_E_NOMEM, "eval: out of memory");
    }
    rc = herd_decode(s->c, cids, ncids, HERD_LOGITS_LAST, last);
    for (int k = 0; rc == HERD_OK && k < n_choices; k++) {
        /* whole = context + (trailing whitespace + " " + choice) */
        size_t chl = strlen(choices[k]);
        char *whole = malloc(clen + 1 + chl + 1);
        if (!whole) {
            rc = herd_err(HERD_E_NOMEM, "eval: out of memory");
            break;
        }
        memcpy(whole, context, clen);
        whole[clen] = ' ';
        memcpy(whole + clen + 1, choices[k], chl + 1);
        free(wids);
        wids = NULL;
        rc = herd_tokenize(s->m, whole, clen + 1 + chl, s->tok_flags, &wids, &nwids);
        free(whole);
        if (rc != HERD_OK) break;
        const int32_t *cont = wids + (nwids < ncids ? nwids : ncids);
        const int64_t ncont = nwids > ncids ? nwids - ncids : 0;
        ntok[k] = ncont;
        ll[k] = 0;
        if (ncont == 0) continue;
        if (ncids + ncont - 1 > n_ctx) {
            rc = herd_err(HERD_E_RANGE, "%s:%lld: context + choice %d (%lld tokens) exceeds -c %lld", name,
                          (long long)line, k, (long long)(ncids + ncont), (long long)n_ctx);
            break;
        }
        ll[k] = logprob(last, s->n_vocab, cont[0]);
        if (ncont > 1) {
            herd_context_truncate(s->c, ncids);
            if ((rc = ensure_rows(s, ncont - 1)) != HERD_OK) break;
            if ((rc = herd_decode(s->c, cont, ncont - 1, HERD_LOGITS_ALL, s->rows)) != HERD_OK) break;
            for (int64_t j = 1; j < ncont; j++)
                ll[k] += logprob(s->rows + (size_t)(j - 1) * (size_t)s->n_vocab, s->n_vocab, cont[j]);
        }
    }
    free(last);
    free(cids);
    free(wids);
    return rc;
}

static int argmax(const double *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* "Q\nA. c0\nB. c1\nC. c2\nD. c3\nAnswer:" (the question stripped of surrounding whitespace) */
static void mmlu_doc(FILE *f, const eval_item *it) {
    const char *q = it->context, *e = q + strlen(q);
    while (q < e && isspace((unsigned char)*q)) q++;
    while (e > q && isspace((unsigned char)e[-1])) e--;
    fprintf(f, "%.*s\n", (int)(e - q), q);
    for (int k = 0; k < 4; k++) fprintf(f, "%c. %s\n", 'A' + k, it->choices[k]);
    fputs("Answer:", f);
}

static char *mmlu_prompt(const eval_item *it, const eval_item *shots, int64_t n_shots, int64_t n_shot) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputs("The following are multiple choice questions (with answers)", f);
    if (it->subject) {
        fputs(" about ", f);
        for (const char *p = it->subject; *p; p++) fputc(*p == '_' ? ' ' : *p, f);
    }
    fputs(".\n\n", f);
    int64_t used = 0;
    for (int64_t i = 0; i < n_shots && used < n_shot; i++) {
        const eval_item *s = &shots[i];
        if (it->subject && (!s->subject || strcmp(s->subject, it->subject))) continue;
        mmlu_doc(f, s);
        fprintf(f, " %c\n\n", 'A' + s->answer);
        used++;
    }
    mmlu_doc(f, it);
    fclose(f);
    return buf;
}

static bool on_text_nop(const char *piece, size_t len, void *user) {
    (void)piece, (void)len, (void)user;
    return true;
}

static double stderr_of(double sum, int64_t n) {
    if (n < 2) return 0;
    const double p = sum / (double)n;
    return sqrt(p * (1 - p) * (double)n / (double)(n - 1) / (double)n);
}

static int read_file(const char *path, char **text, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return herd_err(HERD_E_IO, "eval: cannot open %s", path);
    char *b = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(b, cap + 1);
            if (!nb) {
                free(b);
                fclose(f);
                return herd_err(HERD_E_NOMEM, "eval: out of memory");
            }
            b = nb;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        free(b);
        return herd_err(HERD_E_IO, "eval: cannot read %s", path);
    }
    b[n] = 0;
    *text = b;
    *len = n;
    return HERD_OK;
}

/* A code item (HumanEval): the program prompt + completion + "\n" + test + "\ncheck(entry_point)\n" runs in
 * herd's python sandbox with its default limits (10 s wall, 5 CPU s, 1 GiB); it passes when it exits 0.
 * The record gets the completion, passed, exit_code, timed_out and the start of stderr. HERD_E_IO when the
 * sandbox cannot run code at all (it fails closed: the reason is in the message). */
static int run_code_item(const eval_item *it, const char *completion, size_t clen, json_t *rec, bool *passed) {
    strbuf prog = {0};
    strbuf_puts(&prog, it->context);
    strbuf_put(&prog, completion, clen);
    strbuf_puts(&prog, "\n");
    strbuf_puts(&prog, it->target);
    if (it->subject) strbuf_printf(&prog, "\ncheck(%s)\n", it->subject);
    sandbox_limits lim;
    sandbox_default_limits(&lim);
    sandbox_result r;
    memset(&r, 0, sizeof r);
    int rc = sandbox_run_python(prog.p, prog.n, &lim, &r);
    strbuf_free(&prog);
    if (rc != 0) return rc;
    if (r.error) {
        rc = herd_err(HERD_E_IO, "eval: the sandbox cannot run code: %s", r.error);
        sandbox_result_free(&r);
        return rc;
    }
    *passed = r.exit_code == 0 && !r.timed_out;
    json_t *out = json_stringn(completion, clen);
    json_object_set_new(rec, "output", out ? out : json_string("\xef\xbf\xbd"));
    json_object_set_new(rec, "passed", json_integer(*passed));
    json_object_set_new(rec, "exit_code", json_integer(r.exit_code));
    json_object_set_new(rec, "timed_out", json_boolean(r.timed_out));
    json_t *e = json_stringn(r.err ? r.err : "", r.err_len < 400 ? r.err_len : 400);
    json_object_set_new(rec, "stderr", e ? e : json_string(""));
    sandbox_result_free(&r);
    return HERD_OK;
}

/* ---- LLM-as-judge (gen) ---- */

static const char k_judge_schema[] =
    "{\"type\":\"object\",\"properties\":{\"score\":{\"type\":\"integer\",\"enum\":[1,2,3,4,5,6,7,8,9,10]}},"
    "\"required\":[\"score\"],\"additionalProperties\":false}";
static const char k_default_rubric[] =
    "Score how well the response answers the question, judged against the reference answer: 10 = correct and "
    "complete, 5 = partly correct, 1 = wrong or unrelated.";

/* Grades one answer with the judge: a system turn with the rubric, a user turn with the question, the
 * reference and the response; the reply greedy under k_judge_schema. The record gets judge_output,
 * judge_prompt_ids and judge_score (null when the reply did not complete within 64 tokens). */
static int judge_item(const herd_eval_params *p, const eval_item *it, const char *resp, size_t rlen, json_t *rec,
                      double *score, bool *valid) {
    herd_context *jc = p->judge;
    const herd_model *jm = herd_context_model(jc);
    *valid = false;
    strbuf sys = {0}, user = {0};
    strbuf_printf(&sys, "You are a strict grader. %s\nReply with a JSON object {\"score\": N}, N an integer from 1 to 10.",
                  p->rubric ? p->rubric : k_default_rubric);
    strbuf_printf(&user, "Question:\n%s\n\nReference answer:\n%s\n\nResponse:\n", it->context, it->target);
    strbuf_put(&user, resp, rlen);
    herd_chat_message msgs[2] = {{"system", sys.p, NULL, NULL}, {"user", user.p, NULL, NULL}};
    herd_chat_params cp = {0};
    cp.add_generation_prompt = true;
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = herd_chat_tokenize(jm, msgs, 2, &cp, &ids, &n);
    strbuf_free(&sys), strbuf_free(&user);
    if (rc == HERD_OK && n + 64 > herd_context_n_ctx(jc))
        rc = herd_err(HERD_E_RANGE, "eval: the judge's prompt (%lld tokens) does not fit its context of %lld",
                      (long long)n, (long long)herd_context_n_ctx(jc));
    herd_constraint *con = NULL;
    herd_sampler *smp = NULL;
    if (rc == HERD_OK) rc = herd_constraint_json_schema(jm, k_judge_schema, &con);
    if (rc == HERD_OK) {
        herd_sampler_params sp = herd_sampler_default_params();
        sp.temp = 0;
        smp = herd_sampler_new(&sp, (int32_t)herd_vocab_n_tokens(jm));
        if (!smp) rc = herd_err(HERD_E_NOMEM, "eval: out of memory");
    }
    herd_generate_result g;
    memset(&g, 0, sizeof g);
    if (rc == HERD_OK) {
        herd_sampler_set_constraint(smp, con);
        herd_context_truncate(jc, 0);
        herd_generate_params gp = {0};
        gp.n_predict = 64;
        gp.on_text = on_text_nop;
        rc = herd_generate(jc, smp, ids, n, &gp, &g);
    }
    if (rc == HERD_OK) {
        json_t *ja = json_array();
        for (int64_t i = 0; i < n; i++) json_array_append_new(ja, json_integer(ids[i]));
        json_object_set_new(rec, "judge_prompt_ids", ja);
        json_t *o = json_stringn(g.text, g.text_len);
        json_object_set_new(rec, "judge_output", o ? o : json_string(""));
        json_t *doc = herd_constraint_complete(con) ? json_loadb(g.text, g.text_len, 0, NULL) : NULL;
        json_t *sc = json_object_get(doc, "score");
        if (json_is_integer(sc)) {
            *score = (double)json_integer_value(sc);
            *valid = true;
            json_object_set_new(rec, "judge_score", json_integer(json_integer_value(sc)));
        } else
            json_object_set_new(rec, "judge_score", json_null());
        json_decref(doc);
    }
    herd_generate_result_free(&g);
    herd_sampler_free(smp);
    herd_constraint_free(con);
    free(ids);
    return rc;
}

herd_eval_params herd_eval_default_params(void) {
    herd_eval_params p;
    memset(&p, 0, sizeof p);
    p.type = HERD_EVAL_MC;
    p.n_shot = 5;
    p.max_tokens = 256;
    return p;
}

int herd_eval(herd_context *c, const char *task_path, const herd_eval_params *p, const char *json_path,
              FILE *out, FILE *log) {
    if (!out) out = stdout;
    if (!log) log = stderr;
    if (p->type < HERD_EVAL_MC || p->type > HERD_EVAL_CODE)
        return herd_err(HERD_E_ARG, "eval: unknown task type %d", p->type);
    char *text = NULL, *ftext = NULL;
    size_t len = 0, flen = 0;
    eval_item *items = NULL, *shots = NULL;
    int64_t n = 0, n_shots = 0;
    int rc = read_file(task_path, &text, &len);
    if (rc == HERD_OK) rc = eval_parse_tasks(text, len, p->type, task_path, &items, &n);
    if (rc == HERD_OK && p->type == HERD_EVAL_MMLU && p->fewshot_path && p->n_shot > 0) {
        rc = read_file(p->fewshot_path, &ftext, &flen);
        if (rc == HERD_OK)
            rc = eval_parse_tasks(ftext, flen, HERD_EVAL_MMLU, p->fewshot_path, &shots, &n_shots);
    }
    free(text);
    free(ftext);
    if (rc != HERD_OK) {
        eval_items_free(items, n);
        eval_items_free(shots, n_shots);
        return rc;
    }
    const int64_t n_all = n; /* all are freed; the first limit are scored */
    if (p->limit > 0 && p->limit < n) n = p->limit;

    const herd_model *m = herd_context_model(c);
    scorer s = {c, m, herd_vocab_n_tokens(m), herd_vocab_add_bos(m) ? HERD_TOKENIZE_ADD_BOS : 0, NULL, 0};
    json_t *records = json_array();
    double sum_acc = 0, sum_norm = 0, sum_em = 0, sum_judge = 0;
    int64_t n_judged = 0;
    herd_sampler *smp = NULL;
    const bool gen = p->type == HERD_EVAL_GEN || p->type == HERD_EVAL_CODE;
    /* lm-evaluation-harness's humaneval `until` */
    static const char *k_code_stop[] = {"\nclass", "\ndef", "\n#", "\nif", "\nprint"};
    const char **stop = p->stop;
    int n_stop = p->n_stop;
    if (p->type == HERD_EVAL_CODE && n_stop == 0) stop = k_code_stop, n_stop = 5;
    if (gen) {
        herd_sampler_params sp = herd_sampler_default_params();
        sp.temp = 0;
        smp = herd_sampler_new(&sp, (int32_t)s.n_vocab);
        if (!smp) rc = herd_err(HERD_E_NOMEM, "eval: out of memory");
    }
    static char *const letters[4] = {"A", "B", "C", "D"};
    for (int64_t i = 0; rc == HERD_OK && i < n; i++) {
        eval_item *it = &items[i];
        json_t *rec = json_object();
        json_object_set_new(rec, "line", json_integer(it->line));
        if (gen) {
            int32_t *ids = NULL;
            int64_t nids = 0;
            if (p->chat && p->type == HERD_EVAL_GEN) {
                herd_chat_message msg = {"user", it->context, NULL, NULL};
                herd_chat_params cp = {0};
                cp.add_generation_prompt = true;
                rc = herd_chat_tokenize(m, &msg, 1, &cp, &ids, &nids);
            } else
                rc = herd_tokenize(m, it->context, strlen(it->context), s.tok_flags, &ids, &nids);
            if (rc == HERD_OK && nids >= herd_context_n_ctx(c))
                rc = herd_err(HERD_E_RANGE, "%s:%lld: prompt of %lld tokens fills -c %lld", task_path,
                              (long long)it->line, (long long)nids, (long long)herd_context_n_ctx(c));
            herd_generate_result g;
            memset(&g, 0, sizeof g);
            if (rc == HERD_OK) {
                herd_context_truncate(c, 0);
                herd_generate_params gp = {0};
                gp.n_predict = p->max_tokens;
                gp.stop = stop;
                gp.n_stop = n_stop;
                gp.on_text = on_text_nop;
                rc = herd_generate(c, smp, ids, nids, &gp, &g);
            }
            free(ids);
            if (rc == HERD_OK && p->type == HERD_EVAL_CODE) {
                bool passed = false;
                rc = run_code_item(it, g.text, g.text_len, rec, &passed);
                sum_em += passed;
            } else if (rc == HERD_OK) {
                char *ex = eval_extract_number(g.text);
                char *np = ex ? eval_normalize_answer(ex) : NULL;
                char *nt = eval_normalize_answer(it->target);
                if (!ex || !np || !nt)
                    rc = herd_err(HERD_E_NOMEM, "eval: out of memory");
                else {
                    const bool em = !strcmp(np, nt);
                    sum_em += em;
                    json_object_set_new(rec, "output", json_stringn(g.text, g.text_len));
                    json_object_set_new(rec, "extracted", json_string(ex));
                    json_object_set_new(rec, "target", json_string(nt));
                    json_object_set_new(rec, "exact_match", json_integer(em));
                }
                if (rc == HERD_OK && p->judge) {
                    double sc = 0;
                    bool valid = false;
                    rc = judge_item(p, it, g.text, g.text_len, rec, &sc, &valid);
                    sum_judge += sc, n_judged += valid;
                }
                free(ex);
                free(np);
                free(nt);
            }
            herd_generate_result_free(&g);
        } else {
            const int nc = it->n_choices;
            double *ll = calloc((size_t)nc * 2, sizeof(double));
            int64_t *nt = calloc((size_t)nc, sizeof(int64_t));
            char *prompt = p->type == HERD_EVAL_MMLU ? mmlu_prompt(it, shots, n_shots, p->n_shot) : NULL;
            if (!ll || !nt || (p->type == HERD_EVAL_MMLU && !prompt))
                rc = herd_err(HERD_E_NOMEM, "eval: out of memory");
            else {
                char *const *chs = p->type == HERD_EVAL_MMLU ? letters : it->choices;
                rc = score_choices(&s, prompt ? prompt : it->context, chs, nc, task_path, it->line, ll, nt);
                if (rc == HERD_OK) {
                    double *norm = ll + nc;
                    json_t *jl = json_array(), *jn = json_array();
                    for (int k = 0; k < nc; k++) {
                        norm[k] = ll[k] / (double)n_codepoints(chs[k]);
                        json_array_append_new(jl, json_real(ll[k]));
                        json_array_append_new(jn, json_integer(nt[k]));
                    }
                    const int pred = argmax(ll, nc), pred_norm = argmax(norm, nc);
                    sum_acc += pred == it->answer;
                    sum_norm += pred_norm == it->answer;
                    json_object_set_new(rec, "loglikelihoods", jl);
                    json_object_set_new(rec, "n_tokens", jn);
                    json_object_set_new(rec, "answer", json_integer(it->answer));
                    json_object_set_new(rec, "pred", json_integer(pred));
                    json_object_set_new(rec, "pred_norm", json_integer(pred_norm));
                    json_object_set_new(rec, "acc", json_integer(pred == it->answer));
                    json_object_set_new(rec, "acc_norm", json_integer(pred_norm == it->answer));
                }
            }
            free(prompt);
            free(ll);
            free(nt);
        }
        json_array_append_new(records, rec);
        if (p->progress)
            fprintf(log, "\reval: %lld/%lld items%s", (long long)(i + 1), (long long)n,
                    i + 1 == n ? "\n" : "");
    }
    herd_sampler_free(smp);
    free(s.rows);
    if (rc == HERD_OK) {
        static const char *const tn[] = {"mc", "gen", "mmlu", "code"};
        json_t *metrics = json_object();
        fprintf(out, "|%-24s|%-6s|%-11s|%8s|%8s|%6s|\n", "task", "type", "metric", "value", "stderr", "n");
        fprintf(out, "|%s|%s|%s|%s|%s|%s|\n", "------------------------", "------", "-----------",
                "-------:", "-------:", "-----:");
        const char *base = strrchr(task_path, '/');
        base = base ? base + 1 : task_path;
        const char *names[2] = {"acc", "acc_norm"};
        double sums[2] = {sum_acc, sum_norm};
        int nm = 2;
        if (p->type == HERD_EVAL_GEN) names[0] = "exact_match", sums[0] = sum_em, nm = 1;
        if (p->type == HERD_EVAL_CODE) names[0] = "pass@1", sums[0] = sum_em, nm = 1;
        for (int k = 0; k < nm; k++) {
            const double v = sums[k] / (double)n, se = stderr_of(sums[k], n);
            fprintf(out, "|%-24.24s|%-6s|%-11s|%8.4f|%8.4f|%6lld|\n", base, tn[p->type], names[k], v, se,
                    (long long)n);
            json_object_set_new(metrics, names[k], json_real(v));
            char key[32];
            snprintf(key, sizeof key, "%s_stderr", names[k]);
            json_object_set_new(metrics, key, json_real(se));
        }
        if (p->type == HERD_EVAL_GEN && p->judge) { /* mean over the items the judge scored */
            const double v = n_judged ? sum_judge / (double)n_judged : 0;
            fprintf(out, "|%-24.24s|%-6s|%-11s|%8.4f|%8s|%6lld|\n", base, tn[p->type], "judge_score", v, "-",
                    (long long)n_judged);
            json_object_set_new(metrics, "judge_score", json_real(v));
            json_object_set_new(metrics, "judge_scored", json_integer(n_judged));
        }
        if (json_path) {
            json_t *doc = json_object();
            json_object_set_new(doc, "task", json_string(task_path));
            json_object_set_new(doc, "type", json_string(tn[p->type]));
            json_object_set_new(doc, "n", json_integer(n));
            json_object_set_new(doc, "metrics", metrics);
            json_object_set_new(doc, "items", records);
            records = NULL;
            metrics = NULL;
            if (json_dump_file(doc, json_path, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) != 0)
                rc = herd_err(HERD_E_IO, "eval: cannot write %s", json_path);
            json_decref(doc);
        }
        json_decref(metrics);
    }
    json_decref(records);
    eval_items_free(items, n_all);
    eval_items_free(shots, n_shots);
    return rc;
}
