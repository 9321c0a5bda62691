/* herd eval: llama-perplexity's --hellaswag, as tools/perplexity/perplexity.cpp's hellaswag_score():
 *
 * Data (llama.cpp's hellaswag_val_full.txt layout): 6 lines per task — context, gold ending index (0..3),
 * four endings. min(n_tasks, tasks in the file) tasks are drawn at random without replacement with
 * std::mt19937(1) (the same draws as llama.cpp). Each ending s is scored on the tokens of
 * context + " " + ending[s] (BOS first): the tokens all four share are run once (sequence 0, copied to
 * sequences 1..3), then the four endings side by side; the score of an ending is the mean log-probability
 * of its tokens after the shared prefix (the first one from the prefix's last logits, through a float
 * softmax; the rest with a float sum of exps, as llama.cpp's compute_logprobs). The highest mean wins
 * (the first on ties); acc_norm is the running fraction of tasks whose gold ending wins, printed after each
 * task with its 95 % Wilson score interval, on stdout. */
#include "tasks.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../base/log.h"

void eval_mt19937_seed(eval_mt19937 *r, uint32_t seed) {
    r->mt[0] = seed;
    for (int i = 1; i < 624; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->idx = 624;
}

uint32_t eval_mt19937_next(eval_mt19937 *r) {
    if (r->idx >= 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (r->mt[i] & 0x80000000u) | (r->mt[(i + 1) % 624] & 0x7fffffffu);
            r->mt[i] = r->mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        r->idx = 0;
    }
    uint32_t y = r->mt[r->idx++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t eval_uniform(eval_mt19937 *r, uint64_t n) {
    uint32_t range = (uint32_t)n;
    uint64_t product = (uint64_t)eval_mt19937_next(r) * range;
    uint32_t low = (uint32_t)product;
    if (low < range) {
        uint32_t threshold = (uint32_t)(-range) % range;
        while (low < threshold) {
            product = (uint64_t)eval_mt19937_next(r) * range;
            low = (uint32_t)product;
        }
    }
    return product >> 32;
}

/* llama.cpp's softmax(logits)[tok] (float probabilities normalized by a double sum) */
static float softmax_prob(int64_t n_vocab, const float *logits, int32_t tok) {
    float max_logit = logits[0];
    for (int64_t i = 0; i < n_vocab; i++) max_logit = fmaxf(max_logit, logits[i]);
    double sum_exp = 0.0;
    float p_tok = 0;
    for (int64_t i = 0; i < n_vocab; i++) {
        const float e = expf(logits[i] - max_logit);
        sum_exp += e;
        if (i == tok) p_tok = e;
    }
    return (float)(p_tok / sum_exp);
}

/* llama.cpp's compute_logprobs for one row: float sum of exps */
static float logprob_f(int64_t n_vocab, const float *logits, int32_t tok) {
    float max_logit = logits[0];
    for (int64_t j = 1; j < n_vocab; j++) max_logit = fmaxf(max_logit, logits[j]);
    float sum_p = 0.f;
    for (int64_t j = 0; j < n_vocab; j++) sum_p += expf(logits[j] - max_logit);
    return logits[tok] - max_logit - logf(sum_p);
}

/* Splits text into lines as std::getline does (a final empty line after a trailing '\n' does not count).
 * OUT: *lines (pointers into text, which is modified: '\n' -> 0), *n. */
static void split_lines(char *text, size_t len, char ***lines, int64_t *n) {
    int64_t cap = 16, k = 0;
    char **v = herd_xmalloc((size_t)cap * sizeof *v);
    size_t i = 0;
    while (i < len) {
        if (k == cap) v = herd_xrealloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[k++] = text + i;
        char *nl = memchr(text + i, '\n', len - i);
        if (!nl) break;
        *nl = 0;
        i = (size_t)(nl - text) + 1;
    }
    *lines = v;
    *n = k;
}

typedef struct {
    int64_t gold;
    int32_t *tok[4];
    int64_t n[4];
    int64_t prefix;
} hs_task;

int eval_hellaswag(herd_context *c, const char *text_in, size_t len, int64_t n_tasks, FILE *out, FILE *err) {
    const herd_model *m = herd_context_model(c);
    const int64_t n_vocab = herd_vocab_n_tokens(m);
    const bool add_bos = herd_vocab_add_bos(m);
    if (herd_context_n_seq(c) < 4) return herd_err(HERD_E_ARG, "hellaswag: the context needs 4 sequences");
    char *text = herd_xmalloc(len + 1);
    memcpy(text, text_in, len);
    text[len] = 0;
    char **lines;
    int64_t n_lines;
    split_lines(text, len, &lines, &n_lines);
    int rc = HERD_OK;
    hs_task *hs = NULL;
    int64_t count = 0;
    float *lg = NULL;
    int32_t *btok = NULL, *bseq = NULL;
    bool *bwant = NULL;
    if (n_lines % 6 != 0 || n_lines == 0) {
        rc = herd_err(HERD_E_FORMAT, "hellaswag: the data has %lld lines, not a (non-zero) multiple of 6 "
                      "(context, gold index, 4 endings per task)", (long long)n_lines);
        goto done;
    }
    int64_t n_avail = n_lines / 6;
    count = n_tasks < n_avail ? n_tasks : n_avail;
    fprintf(err, "hellaswag_score : loaded %lld tasks from prompt.\n", (long long)n_avail);
    fprintf(err, "hellaswag_score : selecting %lld randomized tasks.\n", (long long)count);
    hs = herd_xcalloc((size_t)count, sizeof *hs);
    eval_mt19937 rng;
    eval_mt19937_seed(&rng, 1);
    /* task indices, erased from as llama.cpp erases the lines of a drawn task */
    int64_t *left = herd_xmalloc((size_t)n_avail * sizeof *left);
    for (int64_t i = 0; i < n_avail; i++) left[i] = i;
    int64_t n_left = n_avail;
    int64_t max_len = 0;
    for (int64_t i = 0; i < count; i++) {
        int64_t pick = (int64_t)eval_uniform(&rng, (uint64_t)n_left);
        int64_t idx = left[pick];
        memmove(left + pick, left + pick + 1, (size_t)(n_left - pick - 1) * sizeof *left);
        n_left--;
        hs_task *t = &hs[i];
        char *end;
        const char *g = lines[idx * 6 + 1];
        long gold = strtol(g, &end, 10);
        if (end == g || gold < 0 || gold > 3) {
            rc = herd_err(HERD_E_FORMAT, "hellaswag: line %lld: the gold ending index must be 0..3, not '%.40s'",
                          (long long)(idx * 6 + 2), g);
            break;
        }
        t->gold = gold;
        for (int s = 0; s < 4 && !rc; s++) {
            size_t lc = strlen(lines[idx * 6]), le = strlen(lines[idx * 6 + 2 + s]);
            char *q = herd_xmalloc(lc + le + 2);
            memcpy(q, lines[idx * 6], lc);
            q[lc] = ' ';
            memcpy(q + lc + 1, lines[idx * 6 + 2 + s], le + 1);
            rc = herd_tokenize(m, q, lc + 1 + le, add_bos ? HERD_TOKENIZE_ADD_BOS : 0, &t->tok[s], &t->n[s]);
            free(q);
        }
        if (rc) break;
        int64_t mn = t->n[0];
        for (int s = 1; s < 4; s++) mn = t->n[s] < mn ? t->n[s] : mn;
        while (t->prefix < mn && t->tok[0][t->prefix] == t->tok[1][t->prefix] &&
               t->tok[0][t->prefix] == t->tok[2][t->prefix] && t->tok[0][t->prefix] == t->tok[3][t->prefix])
            t->prefix++;
        if (t->prefix == 0 || t->prefix == mn) {
            rc = herd_err(HERD_E_FORMAT, "hellaswag: task at line %lld: %s", (long long)(idx * 6 + 1),
                          t->prefix == 0 ? "the endings share no token (no BOS)" : "an ending adds no token");
            break;
        }
        int64_t req = t->prefix;
        for (int s = 0; s < 4; s++) req += t->n[s] - t->prefix;
        if (req > herd_context_n_ctx(c)) { /* llama.cpp: 4 * c in its unified cache */
            rc = herd_err(HERD_E_RANGE, "hellaswag: task %lld does not fit in the context window (requires %lld "
                          "tokens)", (long long)i, (long long)req);
            break;
        }
        if (req > max_len) max_len = req;
    }
    free(left);
    if (rc) goto done;
    fprintf(err, "hellaswag_score : calculating hellaswag score over selected tasks.\n");
    fprintf(out, "\ntask\tacc_norm\t95%% confidence interval\n");
    lg = malloc((size_t)(max_len + 1) * (size_t)n_vocab * sizeof(float));
    btok = malloc((size_t)max_len * sizeof *btok);
    bseq = malloc((size_t)max_len * sizeof *bseq);
    bwant = malloc((size_t)max_len * sizeof *bwant);
    if (!lg || !btok || !bseq || !bwant) { rc = herd_err(HERD_E_NOMEM, "hellaswag: out of memory"); goto done; }
    double acc = 0.0;
    for (int64_t i = 0; i < count; i++) {
        hs_task *t = &hs[i];
        for (int s = 0; s < 4; s++) herd_seq_truncate(c, s, 0);
        /* the shared prefix once, in sequence 0: the logits of its last token */
        for (int64_t k = 0; k < t->prefix; k++) bseq[k] = 0, bwant[k] = k == t->prefix - 1;
        rc = herd_decode_batch(c, t->tok[0], bseq, t->prefix, bwant, lg);
        if (rc) goto done;
        for (int s = 1; s < 4; s++)
            if ((rc = herd_seq_copy(c, 0, s, t->prefix))) goto done;
        /* the four endings side by side: logits of every ending token but the last */
        int64_t nb = 0;
        for (int s = 0; s < 4; s++)
            for (int64_t k = t->prefix; k < t->n[s]; k++) btok[nb] = t->tok[s][k], bseq[nb] = s, bwant[nb++] = k < t->n[s] - 1;
        rc = herd_decode_batch(c, btok, bseq, nb, bwant, lg + n_vocab);
        if (rc) goto done;
        double lp[4];
        int64_t row = 1;
        for (int s = 0; s < 4; s++) {
            int64_t cnt = 1;
            lp[s] = log(softmax_prob(n_vocab, lg, t->tok[s][t->prefix]));
            for (int64_t k = t->prefix; k < t->n[s] - 1; k++, cnt++)
                lp[s] += logprob_f(n_vocab, lg + (size_t)row++ * (size_t)n_vocab, t->tok[s][k + 1]);
            lp[s] /= (double)cnt;
        }
        int64_t best = 0;
        for (int s = 1; s < 4; s++)
            if (lp[s] > lp[best]) best = s;
        if (best == t->gold) acc += 1.0;
        double freq = acc / (double)(i + 1);
        const double za = 1.95996398454;
        double z = za * za / (double)(i + 1);
        double cnf = z * sqrt((double)(i + 1) * (4.0 * freq * (1 - freq) + z)) / (za + za);
        double a = (freq + z * 0.5 - cnf) / (1.0 + z), b = (freq + z * 0.5 + cnf) / (1.0 + z);
        fprintf(out, "%lld\t%3.8lf%%\t[%3.4lf%%, %3.4lf%%]\n", (long long)(i + 1), freq * 100.0, a * 100.0,
                b * 100.0);
        fflush(out);
    }
    fprintf(out, "\n");
done:
    for (int64_t i = 0; i < count && hs; i++)
        for (int s = 0; s < 4; s++) free(hs[i].tok[s]);
    free(hs), free(lines), free(text), free(lg), free(btok), free(bseq), free(bwant);
    return rc;
}

/* ---- Winogrande ---------------------------------------------------------------------------------- */
/* llama-perplexity's --winogrande, as winogrande_score(): CSV lines "index,sentence,choice1,choice2,answer"
 * (the sentence may be quoted; its '_' is where a choice goes). A line counts only when a '\n' ends it
 * (std::getline stops at EOF: llama.cpp drops an unterminated last line); lines without 4 separators, a '_'
 * or an answer 1/2 (a header) are skipped with a note. Each choice's sentence is tokenized (BOS first); the
 * score of a choice is the mean log-probability of the tokens after the choice word (of the whole choice when
 * either continuation is 3 tokens or fewer), the last token excluded when more than one is scored — with
 * llama.cpp's row indexing, including its FIXME (the second sentence's first scored row when the choice word
 * is scored). With winogrande_tasks in (0, tasks) that many are drawn with mt19937(1) as llama.cpp draws. */

typedef struct {
    char *first, *second, *choice[2];
    int answer;
    int32_t *tok[2];
    int64_t n[2], n_base[2], prefix;
} wg_task;

static int64_t tokenize_len(const herd_model *m, const char *a, const char *b, const char *c, int32_t **out) {
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *q = herd_xmalloc(la + lb + lc + 1);
    memcpy(q, a, la), memcpy(q + la, b, lb);
    if (c) memcpy(q + la + lb, c, lc);
    q[la + lb + lc] = 0;
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = herd_tokenize(m, q, la + lb + lc, herd_vocab_add_bos(m) ? HERD_TOKENIZE_ADD_BOS : 0, &ids, &n);
    free(q);
    if (rc) return rc;
    if (out) *out = ids;
    else free(ids);
    return n;
}

static void wg_free(wg_task *t) {
    free(t->first), free(t->second), free(t->choice[0]), free(t->choice[1]), free(t->tok[0]), free(t->tok[1]);
}

/* one CSV line -> task; false (with a note on err) when llama.cpp skips the line */
static bool wg_parse(const char *line, wg_task *t, FILE *err) {
    size_t len = strlen(line), cp[4];
    int ip = 0;
    bool quote = false;
    for (size_t i = 0; i < len && ip < 4; i++) {
        if (!quote) {
            if (line[i] == ',') cp[ip++] = i;
            else if (line[i] == '"') quote = true;
        } else if (line[i] == '"') quote = false;
    }
    if (ip != 4) {
        fprintf(err, "load_winogrande_from_csv: failed to find comma separators in <%s>\n", line);
        return false;
    }
    size_t s0, sl;
    if (line[cp[0] + 1] == '"') s0 = cp[0] + 2, sl = cp[1] - cp[0] >= 3 ? cp[1] - cp[0] - 3 : 0;
    else s0 = cp[0] + 1, sl = cp[1] - cp[0] - 1;
    const char *us = memchr(line + s0, '_', sl);
    if (!us) {
        fprintf(err, "load_winogrande_from_csv: no _ in <%.*s>\n", (int)sl, line + s0);
        return false;
    }
    const char *ans = line + cp[3] + 1;
    char *end;
    long a = strtol(ans, &end, 10);
    if (end == ans || a < 1 || a > 2) {
        fprintf(err, "load_winogrande_from_csv: failed to parse answer <%s>\n", ans);
        return false;
    }
    memset(t, 0, sizeof *t);
    t->answer = (int)a;
    t->first = herd_xstrndup(line + s0, (size_t)(us - (line + s0)));
    t->second = herd_xstrndup(us + 1, sl - (size_t)(us - (line + s0)) - 1);
    t->choice[0] = herd_xstrndup(line + cp[1] + 1, cp[2] - cp[1] - 1);
    t->choice[1] = herd_xstrndup(line + cp[2] + 1, cp[3] - cp[2] - 1);
    return true;
}

int eval_winogrande(herd_context *c, const char *text_in, size_t len, int64_t n_select, FILE *out, FILE *err) {
    const herd_model *m = herd_context_model(c);
    const int64_t n_vocab = herd_vocab_n_tokens(m);
    const int64_t k_min_trailing_ctx = 3;
    if (herd_context_n_seq(c) < 2) return herd_err(HERD_E_ARG, "winogrande: the context needs 2 sequences");
    char *text = herd_xmalloc(len + 1);
    memcpy(text, text_in, len);
    text[len] = 0;
    char **lines;
    int64_t n_lines;
    split_lines(text, len, &lines, &n_lines);
    if (n_lines > 0 && (len == 0 || text_in[len - 1] != '\n')) n_lines--; /* unterminated last line */
    wg_task *data = herd_xcalloc((size_t)(n_lines > 0 ? n_lines : 1), sizeof *data);
    int64_t n = 0;
    for (int64_t i = 0; i < n_lines; i++)
        if (wg_parse(lines[i], &data[n], err)) n++;
    int rc = HERD_OK;
    float *lg = NULL;
    int32_t *btok = NULL, *bseq = NULL;
    bool *bwant = NULL;
    if (n == 0) {
        rc = herd_err(HERD_E_FORMAT, "winogrande: no tasks (lines \"index,sentence with _,choice1,choice2,1|2\")");
        goto done;
    }
    fprintf(err, "winogrande_score : loaded %lld tasks from prompt.\n", (long long)n);
    if (n_select > 0 && n_select < n) {
        fprintf(err, "winogrande_score : selecting %lld random tasks\n", (long long)n_select);
        eval_mt19937 rng;
        eval_mt19937_seed(&rng, 1);
        int64_t *aux = herd_xmalloc((size_t)n * sizeof *aux), n_aux = n;
        for (int64_t i = 0; i < n; i++) aux[i] = i;
        wg_task *sel = herd_xcalloc((size_t)n_select, sizeof *sel);
        const float scale = 1 / (1.f + (float)4294967295u);
        for (int64_t i = 0; i < n_select; i++) {
            float r = (float)eval_mt19937_next(&rng);
            int64_t j = (int64_t)(scale * r * (float)n_aux);
            if (j >= n_aux) j = n_aux - 1; /* a float product rounded up to 1 (undefined in llama.cpp) */
            sel[i] = data[aux[j]];
            memset(&data[aux[j]], 0, sizeof data[0]);
            aux[j] = aux[--n_aux];
        }
        for (int64_t i = 0; i < n; i++) wg_free(&data[i]);
        free(data), free(aux);
        data = sel;
        n = n_select;
    }
    int64_t max_len = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        wg_task *t = &data[i];
        for (int s = 0; s < 2 && !rc; s++) {
            int64_t k = tokenize_len(m, t->first, t->choice[s], t->second, &t->tok[s]);
            if (k < 0) rc = (int)k;
            else t->n[s] = k;
            k = tokenize_len(m, t->first, t->choice[s], NULL, NULL);
            if (k < 0) rc = (int)k;
            else t->n_base[s] = k;
        }
        if (rc) break;
        int64_t mn = t->n[0] < t->n[1] ? t->n[0] : t->n[1];
        while (t->prefix < mn && t->tok[0][t->prefix] == t->tok[1][t->prefix]) t->prefix++;
        bool skip_choice = t->n[0] - t->prefix > k_min_trailing_ctx && t->n[1] - t->prefix > k_min_trailing_ctx;
        for (int s = 0; s < 2; s++) {
            int64_t nb = skip_choice ? t->n_base[s] : t->prefix;
            int64_t last = t->n[s] - nb > 1 ? 1 : 0;
            /* llama.cpp's size_t arithmetic wraps (and reads out of bounds) outside these bounds */
            if (t->prefix < 1 || t->prefix >= mn || nb < t->prefix || t->n[s] - nb - last < 1)
                rc = herd_err(HERD_E_FORMAT, "winogrande: task %lld ('%s_%s'): the choices do not tokenize to a "
                              "shared prefix and scorable continuations", (long long)i + 1, t->first, t->second);
        }
        int64_t req = t->n[0] + t->n[1] - t->prefix;
        if (!rc && req > herd_context_n_ctx(c))
            rc = herd_err(HERD_E_RANGE, "winogrande: task %lld does not fit in the context window (requires %lld "
                          "tokens)", (long long)i, (long long)req);
        if (req > max_len) max_len = req;
    }
    if (rc) goto done;
    fprintf(err, "winogrande_score : calculating winogrande score over selected tasks.\n");
    lg = malloc((size_t)(max_len + 1) * (size_t)n_vocab * sizeof(float));
    btok = malloc((size_t)max_len * sizeof *btok);
    bseq = malloc((size_t)max_len * sizeof *bseq);
    bwant = malloc((size_t)max_len * sizeof *bwant);
    if (!lg || !btok || !bseq || !bwant) { rc = herd_err(HERD_E_NOMEM, "winogrande: out of memory"); goto done; }
    int n_correct = 0, n_done = 0;
    for (int64_t i = 0; i < n; i++) {
        wg_task *t = &data[i];
        herd_seq_truncate(c, 0, 0), herd_seq_truncate(c, 1, 0);
        /* rows as llama.cpp lays them out: the prefix's last token, then every token of sentence 1 after the
         * prefix, then every token of sentence 2 after it */
        for (int64_t k = 0; k < t->prefix; k++) bseq[k] = 0, bwant[k] = k == t->prefix - 1;
        if ((rc = herd_decode_batch(c, t->tok[0], bseq, t->prefix, bwant, lg))) goto done;
        if ((rc = herd_seq_copy(c, 0, 1, t->prefix))) goto done;
        int64_t nb = 0;
        for (int s = 0; s < 2; s++)
            for (int64_t k = t->prefix; k < t->n[s]; k++) btok[nb] = t->tok[s][k], bseq[nb] = s, bwant[nb++] = true;
        if ((rc = herd_decode_batch(c, btok, bseq, nb, bwant, lg + n_vocab))) goto done;
        bool skip_choice = t->n[0] - t->prefix > k_min_trailing_ctx && t->n[1] - t->prefix > k_min_trailing_ctx;
        float score[2];
        for (int s = 0; s < 2; s++) {
            int64_t n_base = skip_choice ? t->n_base[s] : t->prefix;
            int64_t last = t->n[s] - n_base > 1 ? 1 : 0;
            int64_t li = s == 0 ? n_base - t->prefix : t->n[0] - t->prefix + n_base - t->prefix;
            float sc = 0;
            for (int64_t j = n_base - 1; j < t->n[s] - 1 - last; j++)
                sc += logprob_f(n_vocab, lg + (size_t)li++ * (size_t)n_vocab, t->tok[s][j + 1]);
            score[s] = sc / (float)(t->n[s] - n_base - last);
        }
        int result = score[0] > score[1] ? 1 : 2;
        if (result == t->answer) ++n_correct;
        ++n_done;
        fprintf(out, "%lld\t%.4lf\t%10.6f  %10.6f  %d  %d\n", (long long)i + 1, 100.0 * n_correct / n_done, score[0],
                score[1], result, t->answer);
        fflush(out);
    }
    fprintf(out, "\n");
    if (n_done >= 100) {
        const float p = 1.f * (float)n_correct / (float)n_done;
        const float sigma = 100.f * sqrtf(p * (1 - p) / (float)(n_done - 1));
        fprintf(err, "Final Winogrande score(%d tasks): %.4lf +/- %.4lf\n", n_done, 100 * p, sigma);
    }
done:
    for (int64_t i = 0; i < n; i++) wg_free(&data[i]);
    free(data), free(lines), free(text), free(lg), free(btok), free(bseq), free(bwant);
    return rc;
}

/* ---- multiple choice ----------------------------------------------------------------------------- */
/* llama-perplexity's --multiple-choice, as multiple_choice_score(): llama.cpp's binary task file
 * (little-endian): uint32 n_task, uint32 pos[n_task] (each task's byte offset), then per task: string
 * question, answers mc1, answers mc2, where string = uint32 size + bytes and answers = uint32 n (<= 100),
 * n strings, int32 labels[n]. Only mc1 is scored: answer s on the tokens of question + " " + answer (BOS
 * first), its score the mean log-probability (in float, as there) of its tokens after the shared prefix; the
 * highest wins, correct when its label is 1. Every task is read in order, or --multiple-choice-tasks N are
 * drawn as for Winogrande (then read at their offsets). A task with more answers than the context has
 * sequences (4, llama.cpp's default -np) is refused, as llama.cpp refuses it. Every length is checked
 * against the file. */

typedef struct {
    int64_t n;
    int32_t **tok;
    int64_t *ntok;
    int32_t *labels;
    int64_t prefix;
} mc_task;

typedef struct {
    const uint8_t *d;
    size_t len, pos;
    bool bad;
} mc_reader;

static uint32_t mc_u32(mc_reader *r) {
    uint32_t v = 0;
    if (r->len - r->pos < 4 || r->pos > r->len) r->bad = true;
    else memcpy(&v, r->d + r->pos, 4), r->pos += 4;
    return v;
}

/* a string: returns a pointer into the data and its size, or NULL when it overruns */
static const char *mc_str(mc_reader *r, uint32_t *size) {
    *size = mc_u32(r);
    if (r->bad || *size > r->len - r->pos) { r->bad = true; return NULL; }
    const char *s = (const char *)r->d + r->pos;
    r->pos += *size;
    return s;
}

static void mc_free(mc_task *t) {
    for (int64_t s = 0; s < t->n; s++) free(t->tok[s]);
    free(t->tok), free(t->ntok), free(t->labels);
    memset(t, 0, sizeof *t);
}

/* reads the task at r->pos and tokenizes its mc1 answers (skipping mc2) */
static int mc_read(const herd_model *m, mc_reader *r, mc_task *t, int64_t index) {
    uint32_t qn;
    const char *q = mc_str(r, &qn);
    uint32_t n = mc_u32(r);
    if (r->bad || n > 100)
        return herd_err(HERD_E_FORMAT, "multiple-choice: failed to read task %lld", (long long)index + 1);
    memset(t, 0, sizeof *t);
    t->n = n;
    t->tok = herd_xcalloc(n ? n : 1, sizeof *t->tok);
    t->ntok = herd_xcalloc(n ? n : 1, sizeof *t->ntok);
    t->labels = herd_xcalloc(n ? n : 1, sizeof *t->labels);
    const char **a = herd_xcalloc(n ? n : 1, sizeof *a);
    uint32_t *an = herd_xcalloc(n ? n : 1, sizeof *an);
    for (uint32_t s = 0; s < n; s++) a[s] = mc_str(r, &an[s]);
    for (uint32_t s = 0; s < n; s++) t->labels[s] = (int32_t)mc_u32(r);
    uint32_t n2 = mc_u32(r); /* mc2: read past it, as deserialize() does */
    if (!r->bad && n2 > 100) r->bad = true;
    for (uint32_t s = 0; s < n2 && !r->bad; s++) mc_str(r, &(uint32_t){0});
    for (uint32_t s = 0; s < n2 && !r->bad; s++) mc_u32(r);
    int rc = HERD_OK;
    if (r->bad) rc = herd_err(HERD_E_FORMAT, "multiple-choice: failed to read task %lld", (long long)index + 1);
    else if (qn == 0 || n == 0)
        rc = herd_err(HERD_E_FORMAT, "multiple-choice: task %lld: found bad task with empty question and/or answers",
                      (long long)index + 1);
    for (uint32_t s = 0; s < n && !rc; s++) {
        if (an[s] == 0) {
            rc = herd_err(HERD_E_FORMAT, "multiple-choice: task %lld: found empty answer", (long long)index + 1);
            break;
        }
        char *qa = herd_xmalloc((size_t)qn + an[s] + 2);
        memcpy(qa, q, qn), qa[qn] = ' ', memcpy(qa + qn + 1, a[s], an[s]);
        rc = herd_tokenize(m, qa, (size_t)qn + 1 + an[s], herd_vocab_add_bos(m) ? HERD_TOKENIZE_ADD_BOS : 0,
                           &t->tok[s], &t->ntok[s]);
        free(qa);
    }
    free(a), free(an);
    if (rc) return rc;
    int64_t mn = t->ntok[0];
    for (int64_t s = 1; s < t->n; s++) mn = t->ntok[s] < mn ? t->ntok[s] : mn;
    for (bool same = true; same && t->prefix < mn;) {
        for (int64_t s = 1; s < t->n; s++) same = same && t->tok[s][t->prefix] == t->tok[0][t->prefix];
        if (same) t->prefix++;
    }
    if (t->prefix == 0 || t->prefix == mn)
        return herd_err(HERD_E_FORMAT, "multiple-choice: task %lld: %s", (long long)index + 1,
                        t->prefix == 0 ? "the answers share no token (no BOS)" : "an answer adds no token");
    return HERD_OK;
}

int eval_multiple_choice(herd_context *c, const char *text, size_t len, int64_t n_select, FILE *out, FILE *err) {
    const herd_model *m = herd_context_model(c);
    const int64_t n_vocab = herd_vocab_n_tokens(m);
    mc_reader r = {.d = (const uint8_t *)text, .len = len};
    uint32_t n_task = mc_u32(&r);
    if (r.bad || n_task == 0) return herd_err(HERD_E_FORMAT, "multiple-choice: no tasks");
    fprintf(err, "multiple_choice_score: there are %u tasks in prompt\n", n_task);
    if ((size_t)n_task > (len - r.pos) / 4)
        return herd_err(HERD_E_FORMAT, "multiple-choice: failed to read task positions from prompt");
    const uint8_t *pos_at = r.d + r.pos;
    r.pos += (size_t)n_task * 4;
    bool all = n_select == 0 || n_select >= (int64_t)n_task;
    int64_t n = all ? (int64_t)n_task : n_select;
    mc_task *tasks = herd_xcalloc((size_t)n, sizeof *tasks);
    int rc = HERD_OK;
    int64_t n_dot = n / 100 > 1 ? n / 100 : 1;
    if (all) {
        fprintf(err, "multiple_choice_score: reading tasks\n"); /* llama.cpp: no newline (its dots go to stdout) */
        for (int64_t i = 0; i < n && !rc; i++) {
            rc = mc_read(m, &r, &tasks[i], i);
            if (!rc && (i + 1) % n_dot == 0) fprintf(out, ".");
        }
        if (!rc) fprintf(out, "done\n");
    } else {
        fprintf(err, "multiple_choice_score: selecting %lld random tasks from %u tasks available\n", (long long)n,
                n_task);
        eval_mt19937 rng;
        eval_mt19937_seed(&rng, 1);
        int64_t *aux = herd_xmalloc((size_t)n_task * sizeof *aux), n_aux = n_task;
        for (int64_t i = 0; i < n_aux; i++) aux[i] = i;
        const float scale = 1.f / (1.f + (float)4294967295u);
        for (int64_t i = 0; i < n && !rc; i++) {
            float rv = (float)eval_mt19937_next(&rng);
            int64_t j = (int64_t)(scale * rv * (float)n_aux);
            if (j >= n_aux) j = n_aux - 1;
            int64_t idx = aux[j];
            aux[j] = aux[--n_aux];
            uint32_t p;
            memcpy(&p, pos_at + 4 * idx, 4);
            r.pos = p, r.bad = p > len;
            rc = mc_read(m, &r, &tasks[i], idx);
        }
        free(aux);
    }
    if (rc) goto done;
    fprintf(err, "multiple_choice_score: preparing task data\n");
    if (n > 500) fprintf(out, "...");
    else
        for (int64_t i = 1; i <= n; i++)
            if (i % n_dot == 0) fprintf(out, ".");
    fprintf(out, "done\n");
    int64_t max_len = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        mc_task *t = &tasks[i];
        if (t->n > herd_context_n_seq(c))
            rc = herd_err(HERD_E_RANGE, "multiple-choice: task %lld requires a higher -np|--parallel value (at least "
                          "%lld)", (long long)i, (long long)t->n);
        int64_t req = t->prefix;
        for (int64_t s = 0; s < t->n; s++) req += t->ntok[s] - t->prefix;
        if (!rc && req > herd_context_n_ctx(c))
            rc = herd_err(HERD_E_RANGE, "multiple-choice: task %lld does not fit in the context window (requires "
                          "%lld tokens)", (long long)i, (long long)req);
        if (req > max_len) max_len = req;
    }
    if (rc) goto done;
    fprintf(err, "multiple_choice_score : calculating TruthfulQA score over %lld tasks.\n", (long long)n);
    fprintf(out, "\ntask\tacc_norm\n");
    float *lg = malloc((size_t)(max_len + 1) * (size_t)n_vocab * sizeof(float));
    int32_t *btok = malloc((size_t)max_len * sizeof *btok), *bseq = malloc((size_t)max_len * sizeof *bseq);
    bool *bwant = malloc((size_t)max_len * sizeof *bwant);
    float *lp = malloc(100 * sizeof *lp);
    int n_done = 0, n_correct = 0, n_tot_answers = 0;
    if (!lg || !btok || !bseq || !bwant || !lp) rc = herd_err(HERD_E_NOMEM, "multiple-choice: out of memory");
    for (int64_t i = 0; i < n && !rc; i++) {
        mc_task *t = &tasks[i];
        for (int64_t s = 0; s < t->n; s++) herd_seq_truncate(c, (int32_t)s, 0);
        for (int64_t k = 0; k < t->prefix; k++) bseq[k] = 0, bwant[k] = k == t->prefix - 1;
        if ((rc = herd_decode_batch(c, t->tok[0], bseq, t->prefix, bwant, lg))) break;
        for (int64_t s = 1; s < t->n && !rc; s++) rc = herd_seq_copy(c, 0, (int32_t)s, t->prefix);
        if (rc) break;
        int64_t nb = 0;
        for (int64_t s = 0; s < t->n; s++)
            for (int64_t k = t->prefix; k < t->ntok[s]; k++)
                btok[nb] = t->tok[s][k], bseq[nb] = (int32_t)s, bwant[nb++] = k < t->ntok[s] - 1;
        if ((rc = herd_decode_batch(c, btok, bseq, nb, bwant, lg + n_vocab))) break;
        int64_t row = 1;
        for (int64_t s = 0; s < t->n; s++) {
            size_t count = 1;
            float log_prob = logf(softmax_prob(n_vocab, lg, t->tok[s][t->prefix]));
            for (int64_t j = t->prefix; j < t->ntok[s] - 1; j++, count++)
                log_prob += logprob_f(n_vocab, lg + (size_t)row++ * (size_t)n_vocab, t->tok[s][j + 1]);
            lp[s] = log_prob / (float)count;
        }
        int64_t best = 0;
        for (int64_t s = 1; s < t->n; s++)
            if (lp[s] > lp[best]) best = s;
        n_tot_answers += (int)t->n;
        if (t->labels[best] == 1) ++n_correct;
        ++n_done;
        fprintf(out, "%d\t%.8lf\n", n_done, 100. * n_correct / n_done);
        fflush(out);
    }
    free(lg), free(btok), free(bseq), free(bwant), free(lp);
    if (rc || (n_done < 100 && !all)) goto done;
    float p = 1.f * (float)n_correct / (float)n_done, sigma = sqrtf(p * (1 - p) / (float)(n_done - 1));
    fprintf(out, "\n");
    fflush(out);
    fprintf(err, "Final result: %.4f +/- %.4f\n", 100.f * p, 100.f * sigma);
    p = 1.f * (float)n_done / (float)n_tot_answers;
    sigma = sqrtf(p * (1 - p) / (float)(n_done - 1));
    fprintf(err, "Random chance: %.4f +/- %.4f\n", 100.f * p, 100.f * sigma);
    fprintf(err, "\n");
done:
    for (int64_t i = 0; i < n; i++) mc_free(&tasks[i]);
    free(tasks);
    return rc;
}
