/* herd_train: the training loop (include/herd.h, docs/TRAINING.md).
 *
 * A run is a stream of examples: epoch e visits the training examples in the order of a permutation
 * drawn from (seed, e) (or file order with --no-shuffle); optimizer step s (1-based) consumes stream
 * positions [(s-1) B A, s B A) for B = batch, A = grad_accum. Every source of randomness is a
 * function of (seed, step, position) (tmodel.h's dropout, this file's shuffle), so a run resumed from
 * a checkpoint computes bit for bit what the uninterrupted run computes.
 *
 * Loss of a step: cpt/sft, the mean cross-entropy over all predicted tokens of its B A sequences;
 * dpo, the mean over its pairs of -log sigmoid(beta ((pi_c - ref_c) - (pi_r - ref_r))) (+ nll_coef
 * times the chosen response's mean NLL), log-probs summed over each response's tokens; distill,
 * (1 - kd_ratio) CE + kd_ratio KL(teacher || student at temperature T), both means over the
 * predicted tokens. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "../base/file.h"
#include "../base/log.h"
#include "../base/strbuf.h"
#include "../kernels/kernels.h"
#include "../model/lora.h"
#include "ckpt.h"
#include "data.h"
#include "optim.h"
#include "save.h"
#include "tmodel.h"

herd_train_params herd_train_default_params(void) {
    herd_train_params p = {0};
    p.objective = HERD_TRAIN_CPT;
    p.method = HERD_TRAIN_LORA;
    p.lora_rank = 8, p.lora_alpha = 16, p.lora_dropout = 0;
    p.optimizer = 0, p.lr = 3e-4, p.weight_decay = 0.01, p.schedule = 0, p.grad_clip = 1.0f;
    p.epochs = 1, p.batch = 1, p.grad_accum = 1, p.seq_len = 512, p.seed = 42, p.shuffle = true;
    p.checkpoint_activations = true;
    p.dpo_beta = 0.1f, p.kd_ratio = 0.5f, p.kd_temp = 1.0f;
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* "q,k,v" -> bits in lora.h's order */
static int parse_targets(const char *s, unsigned *out) {
    *out = 0;
    if (!s || !*s) {
        *out = (1u << LORA_N_TARGETS) - 1;
        return HERD_OK;
    }
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        int found = -1;
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (strlen(lora_target_name(t)) == n && !strncmp(s, lora_target_name(t), n)) found = t;
        if (found < 0)
            return herd_err(HERD_E_ARG, "train: --lora-targets: unknown module '%.*s' (q, k, v, o, gate, up, down)", (int)n, s);
        *out |= 1u << found;
        s += n + (e ? 1 : 0);
    }
    return HERD_OK;
}

typedef struct {
    const herd_train_params *p;
    herd_model *base, *teacher_model;
    tmodel *tm, *ref, *teacher; /* ref: DPO's reference for full fine-tuning; teacher: distill */
    train_data data;
    int64_t n_train, n_val;     /* examples */
    int64_t per_example;        /* sequences per example: 2 for dpo, else 1 */
    int64_t *perm;              /* [n_train] the current epoch's order */
    int64_t perm_epoch;
    float *wbuf, *kbuf;         /* [seq_len] per-position loss weights */
    double *ref_logp;           /* dpo: [n_train + n_val][2] reference log-probs, NaN until computed */
    tparam *params;
    int n_params;
    optim opt;
    FILE *metrics;
    train_history hist;
    char ckpt_dir[4096];
    char fingerprint[1024];
    int64_t total_steps;
    int64_t last_saved;         /* step of the last checkpoint written (-1: none) */
    /* full fine-tuning with no clipping and one sequence a step: the optimizer steps each group of
     * tensors inside the backward pass (grads_ready), at step_lr; sumsq [n_params]: their gradients'
     * sums of squares, for the reported norm */
    bool fused;
    double step_lr;
    double *sumsq;
} trainer;

/* tmodel's grads_ready: the gradients of tensors [p0, p1) are complete; update them now */
static void grads_ready(void *user, int p0, int p1) {
    trainer *tr = user;
    for (int i = p0; i < p1; i++) tr->sumsq[i] = optim_sumsq(&tr->params[i]);
    optim_step_range(&tr->opt, tmodel_pool(tr->tm), tr->params, p0, p1, tr->step_lr);
}

/* the example at stream position pos */
static int64_t example_at(trainer *tr, int64_t pos) {
    const int64_t epoch = pos / tr->n_train, i = pos % tr->n_train;
    if (!tr->p->shuffle) return i;
    if (epoch != tr->perm_epoch) { /* Fisher-Yates from (seed, epoch) */
        for (int64_t k = 0; k < tr->n_train; k++) tr->perm[k] = k;
        uint64_t st = mix(tr->p->seed ^ 0x5348554646ull) ^ mix((uint64_t)epoch + 1);
        for (int64_t k = tr->n_train - 1; k > 0; k--) {
            st = mix(st + 0x9e3779b97f4a7c15ull);
            int64_t j = (int64_t)(st % (uint64_t)(k + 1)), t = tr->perm[k];
            tr->perm[k] = tr->perm[j], tr->perm[j] = t;
        }
        tr->perm_epoch = epoch;
    }
    return tr->perm[i];
}

static const train_seq *seq_of(trainer *tr, int64_t example, int which) {
    return &tr->data.seqs[example * tr->per_example + which];
}

/* distillation: the teacher's tempered log-probabilities (top k kept, renormalised) */
typedef struct {
    trainer *tr;
    float *z;
} teach_ctx;

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void teacher_chunk(void *user, const int64_t *pos, int64_t n, float *out) {
    teach_ctx *c = user;
    trainer *tr = c->tr;
    const int64_t V = tmodel_n_vocab(tr->teacher), K = tr->p->teacher_top_k;
    const float T = tr->p->kd_temp;
    tmodel_head_logits(tr->teacher, pos, n, out);
    for (int64_t i = 0; i < n; i++) {
        float *z = out + i * V;
        float cut = -INFINITY;
        if (K > 0 && K < V) { /* the K-th largest logit */
            memcpy(c->z, z, (size_t)V * sizeof(float));
            qsort(c->z, (size_t)V, sizeof(float), cmp_desc);
            cut = c->z[K - 1];
        }
        float m = -INFINITY;
        for (int64_t j = 0; j < V; j++)
            if (z[j] >= cut && z[j] / T > m) m = z[j] / T;
        double s = 0;
        for (int64_t j = 0; j < V; j++)
            if (z[j] >= cut) s += exp((double)(z[j] / T - m));
        const double lse = (double)m + log(s);
        for (int64_t j = 0; j < V; j++) z[j] = z[j] >= cut ? (float)((double)(z[j] / T) - lse) : -INFINITY;
    }
}

/* One sequence's CE weights (w per target) into wbuf; returns the number of targets. */
static int64_t fill_weights(trainer *tr, const train_seq *s, float w, float *buf) {
    int64_t n = 0;
    for (int64_t t = 0; t + 1 < s->n; t++) {
        buf[t] = s->target[t + 1] ? w : 0.0f;
        n += s->target[t + 1] != 0;
    }
    return n;
}

static int64_t count_targets(const train_seq *s) {
    int64_t n = 0;
    for (int64_t t = 1; t < s->n; t++) n += s->target[t] != 0;
    return n;
}

/* DPO: reference log-probs of example e's two responses (cached: they never change) */
static int dpo_ref(trainer *tr, int64_t e, double out[2]) {
    if (!isnan(tr->ref_logp[2 * e])) {
        out[0] = tr->ref_logp[2 * e], out[1] = tr->ref_logp[2 * e + 1];
        return HERD_OK;
    }
    tmodel *ref = tr->ref ? tr->ref : tr->tm;
    if (!tr->ref) tmodel_lora_enable(tr->tm, false);
    int rc = HERD_OK;
    for (int k = 0; k < 2 && !rc; k++) {
        const train_seq *s = seq_of(tr, e, k);
        fill_weights(tr, s, 1.0f, tr->wbuf);
        tmodel_result r;
        rc = tmodel_forward_logp(ref, s->n - 1, s->tokens, tr->wbuf, &r);
        out[k] = tr->ref_logp[2 * e + k] = r.sum_logp;
    }
    if (!tr->ref) tmodel_lora_enable(tr->tm, true);
    return rc;
}

/* Forward + backward of one example with the step's normalisation; adds its loss to *loss. */
static int run_example(trainer *tr, int64_t step, int64_t pos, int64_t e, double norm, double *loss, int64_t *n_tok) {
    const herd_train_params *p = tr->p;
    tmodel_result r;
    int rc = HERD_OK;
    if (p->objective == HERD_TRAIN_DPO) {
        double ref[2], pol[2];
        if ((rc = dpo_ref(tr, e, ref))) return rc;
        for (int k = 0; k < 2 && !rc; k++) {
            const train_seq *s = seq_of(tr, e, k);
            fill_weights(tr, s, 1.0f, tr->wbuf);
            rc = tmodel_forward_logp(tr->tm, s->n - 1, s->tokens, tr->wbuf, &r);
            pol[k] = r.sum_logp;
        }
        if (rc) return rc;
        const double z = p->dpo_beta * ((pol[0] - ref[0]) - (pol[1] - ref[1]));
        const double sig_neg = 1.0 / (1.0 + exp(z)); /* sigmoid(-z) */
        const int64_t n_c = count_targets(seq_of(tr, e, 0));
        /* -log sigmoid(z) = softplus(-z), computed stably */
        double l = z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
        if (p->nll_coef > 0 && n_c > 0) l += p->nll_coef * (-pol[0] / (double)n_c);
        *loss += l / norm;
        for (int k = 0; k < 2 && !rc; k++) {
            const train_seq *s = seq_of(tr, e, k);
            /* d loss / d logp: chosen -beta sigmoid(-z) (- nll_coef / n_c), rejected +beta sigmoid(-z);
             * the CE head computes d(sum w (-logp)), so w = -(d loss / d logp) / norm */
            double w = k == 0 ? p->dpo_beta * sig_neg : -p->dpo_beta * sig_neg;
            if (k == 0 && p->nll_coef > 0 && n_c > 0) w += p->nll_coef / (double)n_c;
            fill_weights(tr, s, (float)(w / norm), tr->wbuf);
            tmodel_loss ls = {.tokens = s->tokens, .weight = tr->wbuf, .step = step, .seq_index = 2 * pos + k};
            rc = tmodel_forward_backward(tr->tm, s->n - 1, &ls, &r);
            *n_tok += s->n;
        }
        return rc;
    }
    const train_seq *s = seq_of(tr, e, 0);
    const bool kd = p->objective == HERD_TRAIN_DISTILL;
    fill_weights(tr, s, (float)((kd ? 1.0 - p->kd_ratio : 1.0) / norm), tr->wbuf);
    tmodel_loss ls = {.tokens = s->tokens, .weight = tr->wbuf, .step = step, .seq_index = pos};
    teach_ctx tc = {tr, NULL};
    if (kd) {
        fill_weights(tr, s, (float)(p->kd_ratio / norm), tr->kbuf);
        if ((rc = tmodel_forward_hidden(tr->teacher, s->n - 1, s->tokens))) return rc;
        tc.z = malloc((size_t)tmodel_n_vocab(tr->teacher) * sizeof(float));
        if (!tc.z) return herd_err(HERD_E_NOMEM, "train: out of memory");
        ls.teacher = teacher_chunk, ls.teacher_user = &tc, ls.kd_weight = tr->kbuf, ls.kd_ratio = p->kd_ratio,
        ls.kd_temp = p->kd_temp;
    }
    rc = tmodel_forward_backward(tr->tm, s->n - 1, &ls, &r);
    free(tc.z);
    *loss += r.loss;
    *n_tok += s->n;
    return rc;
}

/* the step's normaliser: predicted tokens (cpt, sft, distill) or pairs (dpo) over its examples */
static double step_norm(trainer *tr, int64_t pos0, int64_t n) {
    double norm = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t e = example_at(tr, pos0 + i);
        norm += tr->p->objective == HERD_TRAIN_DPO ? 1.0 : (double)count_targets(seq_of(tr, e, 0));
    }
    return norm > 0 ? norm : 1;
}

/* validation: the same loss over the held-out examples, no gradient */
static int validate(trainer *tr, double *out) {
    double loss = 0, norm = 0;
    for (int64_t v = 0; v < tr->n_val; v++) {
        const int64_t e = tr->n_train + v;
        tmodel_result r;
        int rc;
        if (tr->p->objective == HERD_TRAIN_DPO) {
            double ref[2], pol[2];
            if ((rc = dpo_ref(tr, e, ref))) return rc;
            for (int k = 0; k < 2; k++) {
                const train_seq *s = seq_of(tr, e, k);
                fill_weights(tr, s, 1.0f, tr->wbuf);
                if ((rc = tmodel_forward_logp(tr->tm, s->n - 1, s->tokens, tr->wbuf, &r))) return rc;
                pol[k] = r.sum_logp;
            }
            const double z = tr->p->dpo_beta * ((pol[0] - ref[0]) - (pol[1] - ref[1]));
            loss += z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
            norm += 1;
            continue;
        }
        const train_seq *s = seq_of(tr, e, 0);
        norm += (double)fill_weights(tr, s, 1.0f, tr->wbuf);
        if ((rc = tmodel_forward_logp(tr->tm, s->n - 1, s->tokens, tr->wbuf, &r))) return rc;
        loss += -r.sum_logp;
    }
    *out = norm > 0 ? loss / norm : NAN;
    return HERD_OK;
}

static int write_output(trainer *tr) {
    const herd_train_params *p = tr->p;
    if (p->method == HERD_TRAIN_FULL) return train_save_full_gguf(tr->base, tr->params, tr->n_params, p->out);
    lora_adapter a;
    tmodel_lora_view(tr->tm, &a);
    size_t n = strlen(p->out);
    int rc = n > 5 && !strcmp(p->out + n - 5, ".gguf") ? lora_adapter_save_gguf(&a, tr->base, p->out)
                                                         : lora_adapter_save_peft(&a, tr->base, p->out);
    free(a.owned);
    return rc;
}

static void svg_path(const trainer *tr, char *out, size_t cap) {
    const char *o = tr->p->out;
    size_t n = strlen(o);
    struct stat st;
    bool dir = (n > 0 && o[n - 1] == '/') || (stat(o, &st) == 0 && S_ISDIR(st.st_mode)) ||
               (tr->p->method == HERD_TRAIN_LORA && !(n > 5 && !strcmp(o + n - 5, ".gguf")));
    if (dir) snprintf(out, cap, "%s/loss.svg", o);
    else snprintf(out, cap, "%.*s.loss.svg", (int)(n > 5 && !strcmp(o + n - 5, ".gguf") ? n - 5 : n), o);
}

static void report(trainer *tr, herd_train_progress *pr) {
    if (tr->p->on_progress) tr->p->on_progress(pr, tr->p->user);
}

static int save_checkpoint(trainer *tr, int64_t step) {
    ckpt_meta meta = {.step = step, .next_example = step * tr->p->batch * tr->p->grad_accum, .seed = tr->p->seed,
                      .fingerprint = tr->fingerprint};
    int rc = ckpt_save(tr->ckpt_dir, &meta, tr->params, tr->n_params, &tr->opt);
    if (!rc) {
        tr->last_saved = step;
        herd_train_progress pr = {.event = HERD_TRAIN_EV_SAVE, .step = step, .total_steps = tr->total_steps,
                                  .path = tr->ckpt_dir};
        report(tr, &pr);
    }
    return rc;
}

/* metrics JSONL: one object per line, flushed */
static void metric_line(trainer *tr, json_t *o) {
    if (!tr->metrics) {
        json_decref(o);
        return;
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
    fprintf(tr->metrics, "%s\n", s);
    fflush(tr->metrics);
    free(s);
    json_decref(o);
}

/* On resume: keep the metrics lines of steps <= step (a killed run may have logged later steps),
 * and rebuild the loss history from them. */
static int reopen_metrics(trainer *tr, int64_t step) {
    const char *path = tr->p->metrics;
    strbuf keep = {0};
    FILE *f = fopen(path, "r");
    if (f) {
        char line[4096];
        while (fgets(line, sizeof line, f)) {
            json_t *o = json_loads(line, 0, NULL);
            if (!o) continue;
            int64_t s = json_integer_value(json_object_get(o, "step"));
            if (s <= step) {
                strbuf_puts(&keep, line);
                json_t *l = json_object_get(o, "loss"), *v = json_object_get(o, "val_loss");
                train_history_add(&tr->hist, s, l ? json_number_value(l) : NAN, v ? json_number_value(v) : NAN);
            }
            json_decref(o);
        }
        fclose(f);
    }
    const void *part = keep.p;
    int rc = herd_file_write_atomic(path, &part, &keep.n, 1);
    strbuf_free(&keep);
    if (rc) return rc;
    tr->metrics = fopen(path, "a");
    return tr->metrics ? HERD_OK : herd_err(HERD_E_IO, "train: cannot open '%s': %s", path, strerror(errno));
}

static void trainer_free(trainer *tr) {
    tmodel_free(tr->tm);
    tmodel_free(tr->ref);
    tmodel_free(tr->teacher);
    optim_free(&tr->opt);
    train_data_free(&tr->data);
    if (tr->base) model_free(tr->base);
    if (tr->teacher_model) model_free(tr->teacher_model);
    free(tr->perm);
    free(tr->wbuf);
    free(tr->kbuf);
    free(tr->ref_logp);
    free(tr->sumsq);
    if (tr->metrics) fclose(tr->metrics);
    train_history_free(&tr->hist);
}

/* --dump-data: {"example": i, "seq": k, "tokens": [...], "targets": [0, 1, ...]} per sequence */
static int dump_data(trainer *tr) {
    strbuf b = {0};
    for (int64_t i = 0; i < tr->data.n_seqs; i++) {
        const train_seq *s = &tr->data.seqs[i];
        strbuf_printf(&b, "{\"example\": %lld, \"seq\": %lld, \"tokens\": [", (long long)(i / tr->per_example),
                      (long long)(i % tr->per_example));
        for (int64_t t = 0; t < s->n; t++) strbuf_printf(&b, "%s%d", t ? ", " : "", s->tokens[t]);
        strbuf_printf(&b, "], \"targets\": [");
        for (int64_t t = 0; t < s->n; t++) strbuf_printf(&b, "%s%d", t ? ", " : "", s->target[t]);
        strbuf_printf(&b, "]}\n");
    }
    const void *part = b.p;
    int rc = herd_file_write_atomic(tr->p->dump_data, &part, &b.n, 1);
    strbuf_free(&b);
    return rc;
}

static int check_params(const herd_train_params *p) {
    if (!p->model || !p->data || !p->out) return herd_err(HERD_E_ARG, "train: -m MODEL, --data FILE and --out are required");
    if (p->objective < HERD_TRAIN_CPT || p->objective > HERD_TRAIN_DISTILL) return herd_err(HERD_E_ARG, "train: unknown objective");
    if (p->objective == HERD_TRAIN_DISTILL && !p->teacher) return herd_err(HERD_E_ARG, "train: --objective distill needs --teacher MODEL");
    if (p->method == HERD_TRAIN_LORA && (p->lora_rank < 1 || p->lora_rank > 4096)) return herd_err(HERD_E_ARG, "train: --lora-rank must be 1..4096");
    if (p->lora_dropout < 0 || p->lora_dropout >= 1) return herd_err(HERD_E_ARG, "train: --lora-dropout must be in [0, 1)");
    if (p->seq_len < 1 || p->batch < 1 || p->grad_accum < 1) return herd_err(HERD_E_ARG, "train: --seq-len, --batch and --grad-accum must be >= 1");
    if (p->val_split < 0 || p->val_split >= 1) return herd_err(HERD_E_ARG, "train: --val-split must be in [0, 1)");
    if (p->steps <= 0 && !(p->epochs > 0)) return herd_err(HERD_E_ARG, "train: --steps or --epochs must be positive");
    if (p->base_compute != HERD_TRAIN_BASE_F32 && p->base_compute != HERD_TRAIN_BASE_BF16 && p->base_compute != HERD_TRAIN_BASE_INT8)
        return herd_err(HERD_E_ARG, "train: unknown base compute");
    if (p->base_compute != HERD_TRAIN_BASE_F32 && p->method == HERD_TRAIN_FULL)
        return herd_err(HERD_E_ARG, "train: --base-compute %s is for LoRA (the frozen base's products); full fine-tuning computes in f32",
                        p->base_compute == HERD_TRAIN_BASE_BF16 ? "bf16" : "int8");
    if (p->kd_ratio < 0 || p->kd_ratio > 1 || !(p->kd_temp > 0)) return herd_err(HERD_E_ARG, "train: --kd-ratio must be in [0, 1] and --kd-temp > 0");
    return HERD_OK;
}

static int setup(trainer *tr) {
    const herd_train_params *p = tr->p;
    train_mem_note("at start");
    /* --base-compute int8 runs the frozen base's products through inference's matmul: on the packed copies
     * that prompt processing uses (the rows are read again only to build the transposed copies) */
    int rc = model_load(p->model, p->base_compute == HERD_TRAIN_BASE_INT8 ? 0 : MODEL_LOAD_NO_REPACK, &tr->base);
    if (rc) return rc;
    train_mem_note("model loaded");
    if (p->method == HERD_TRAIN_FULL) {
        weight *w[LORA_N_TARGETS];
        for (int64_t l = 0; l < tr->base->hp.n_layer; l++) {
            model_layer_matrices(&tr->base->layers[l], w);
            for (int t = 0; t < LORA_N_TARGETS; t++)
                if (w[t]->type != HERD_TYPE_F32 && w[t]->type != HERD_TYPE_F16 && w[t]->type != HERD_TYPE_BF16)
                    return herd_err(HERD_E_UNSUPPORTED, "train: --method full needs F32, F16 or BF16 weights; '%s' is %s (use --method lora)",
                                    w[t]->name, herd_type_name(w[t]->type));
        }
    }
    train_data_params dp = {.objective = p->objective, .seq_len = p->seq_len, .train_on_input = p->train_on_input,
                            .overlong = p->skip_overlong ? TRAIN_OVERLONG_SKIP : TRAIN_OVERLONG_TRUNCATE};
    if ((rc = train_data_load(tr->base, p->data, &dp, &tr->data))) return rc;
    tr->per_example = p->objective == HERD_TRAIN_DPO ? 2 : 1;
    const int64_t n = tr->data.n_examples;
    if (p->dump_data && (rc = dump_data(tr))) return rc;
    tr->n_val = (int64_t)((double)n * p->val_split);
    if (p->val_split > 0 && tr->n_val == 0 && n >= 2) tr->n_val = 1;
    tr->n_train = n - tr->n_val;
    if (tr->n_train < 1) return herd_err(HERD_E_ARG, "train: '%s' gives no training example (%lld read, %lld skipped, %lld held out)", p->data,
                                        (long long)n, (long long)tr->data.n_skipped, (long long)tr->n_val);
    tr->total_steps = p->steps > 0 ? p->steps
                                   : (int64_t)ceil(p->epochs * (double)tr->n_train / (double)(p->batch * p->grad_accum));
    if (tr->total_steps < 1) tr->total_steps = 1;
    unsigned targets;
    if ((rc = parse_targets(p->lora_targets, &targets))) return rc;
    if (p->base_compute == HERD_TRAIN_BASE_BF16 && kernels_active_isa() < KERNEL_ISA_AVX512)
        herd_log(0, "train: --base-compute bf16 on %s: no AVX-512 BF16 here, the scalar bf16 products are slower "
                    "than f32", kernels_isa_name(kernels_active_isa()));
    tmodel_params tp = {.method = p->method == HERD_TRAIN_FULL ? TRAIN_METHOD_FULL : TRAIN_METHOD_LORA,
                        .rank = p->lora_rank, .alpha = p->lora_alpha, .dropout = p->lora_dropout, .targets = targets,
                        .seed = p->seed, .checkpoint = p->checkpoint_activations, .n_threads = p->n_threads,
                        .base_compute = p->base_compute == HERD_TRAIN_BASE_BF16   ? TRAIN_BASE_BF16
                                        : p->base_compute == HERD_TRAIN_BASE_INT8 ? TRAIN_BASE_INT8
                                                                                  : TRAIN_BASE_F32};
    /* Full fine-tuning needs all gradients at once only to clip by their global norm or to sum them over
     * several sequences (batch, accumulation, DPO's pair): otherwise each tensor is updated as soon as
     * its gradient is complete, and the layers share one gradient buffer (the same weights bit for bit;
     * HERD_TRAIN_FUSED=0 in the environment turns it off, for comparison). */
    const char *fz = getenv("HERD_TRAIN_FUSED");
    tr->fused = p->method == HERD_TRAIN_FULL && !(p->grad_clip > 0) && p->batch * p->grad_accum == 1 &&
                p->objective != HERD_TRAIN_DPO && !(fz && !strcmp(fz, "0"));
    if (tr->fused) tp.grads_ready = grads_ready, tp.grads_user = tr;
    train_mem_note("data loaded");
    if ((rc = tmodel_new(tr->base, &tp, &tr->tm))) return rc;
    train_mem_note("parameters made");
    if ((rc = tmodel_reserve(tr->tm, p->seq_len))) return rc;
    train_mem_note("activations reserved");
    if (p->objective == HERD_TRAIN_DPO && p->method == HERD_TRAIN_FULL) { /* the frozen reference: the base itself */
        tmodel_params rp = tp;
        rp.method = TRAIN_METHOD_LORA, rp.targets = 0;
        if ((rc = tmodel_new(tr->base, &rp, &tr->ref)) || (rc = tmodel_reserve(tr->ref, p->seq_len))) return rc;
    }
    if (p->objective == HERD_TRAIN_DISTILL) {
        if ((rc = model_load(p->teacher, MODEL_LOAD_NO_REPACK, &tr->teacher_model))) return rc;
        if (tr->teacher_model->hp.n_vocab != tr->base->hp.n_vocab)
            return herd_err(HERD_E_ARG, "train: the teacher '%s' has %lld tokens, the student %lld: distillation needs the same vocabulary",
                            p->teacher, (long long)tr->teacher_model->hp.n_vocab, (long long)tr->base->hp.n_vocab);
        tmodel_params rp = tp;
        rp.method = TRAIN_METHOD_LORA, rp.targets = 0;
        if ((rc = tmodel_new(tr->teacher_model, &rp, &tr->teacher)) || (rc = tmodel_reserve(tr->teacher, p->seq_len))) return rc;
    }
    tr->params = tmodel_params_list(tr->tm, &tr->n_params);
    if (p->lora_init && p->method == HERD_TRAIN_LORA) {
        lora_adapter *init;
        if ((rc = lora_adapter_load(tr->base, p->lora_init, &init))) return rc;
        lora_adapter view;
        tmodel_lora_view(tr->tm, &view);
        for (int64_t l = 0; l < init->n_layer && !rc; l++) {
            weight *w[LORA_N_TARGETS];
            model_layer_matrices(&tr->base->layers[l], w);
            for (int t = 0; t < LORA_N_TARGETS && !rc; t++) {
                const lora_matrix *src = &init->m[l * LORA_N_TARGETS + t], *dst = &view.m[l * LORA_N_TARGETS + t];
                if (src->rank != dst->rank) {
                    rc = herd_err(HERD_E_ARG, "train: --lora-init '%s': blk.%lld %s has rank %lld, this run's adapter %lld (match --lora-rank and --lora-targets)",
                                  p->lora_init, (long long)l, lora_target_name(t), (long long)src->rank, (long long)dst->rank);
                    break;
                }
                if (!src->rank) continue;
                memcpy(dst->a, src->a, (size_t)(src->rank * w[t]->n_in) * sizeof(float));
                memcpy(dst->b, src->b, (size_t)(src->rank * w[t]->n_out) * sizeof(float));
            }
        }
        free(view.owned);
        lora_adapter_free(init);
        if (rc) return rc;
    }
    optim_params op = {.kind = p->optimizer == 1 ? TRAIN_OPT_SGD : TRAIN_OPT_ADAMW, .lr = p->lr,
                       .weight_decay = p->weight_decay, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                       .schedule = p->schedule, .warmup = p->warmup, .total_steps = tr->total_steps};
    if ((rc = optim_init(&tr->opt, &op, tr->params, tr->n_params))) return rc;
    if (tr->fused) tr->sumsq = herd_xcalloc((size_t)tr->n_params, sizeof(double));
    train_mem_note("optimizer state made");
    tr->perm = herd_xmalloc((size_t)tr->n_train * sizeof *tr->perm);
    tr->perm_epoch = -1;
    tr->wbuf = herd_xcalloc((size_t)p->seq_len + 1, sizeof(float));
    tr->kbuf = herd_xcalloc((size_t)p->seq_len + 1, sizeof(float));
    if (p->objective == HERD_TRAIN_DPO) {
        tr->ref_logp = herd_xmalloc((size_t)(2 * n) * sizeof(double));
        for (int64_t i = 0; i < 2 * n; i++) tr->ref_logp[i] = NAN;
    }
    snprintf(tr->ckpt_dir, sizeof tr->ckpt_dir, "%s", p->checkpoint_dir ? p->checkpoint_dir : "");
    if (!p->checkpoint_dir) snprintf(tr->ckpt_dir, sizeof tr->ckpt_dir, "%s.ckpt", p->out);
    snprintf(tr->fingerprint, sizeof tr->fingerprint,
             "objective=%d;method=%d;rank=%lld;alpha=%g;dropout=%g;targets=%u;optimizer=%d;lr=%.17g;weight_decay=%.17g;"
             "warmup=%lld;schedule=%d;grad_clip=%g;steps=%lld;batch=%lld;grad_accum=%lld;seq_len=%lld;shuffle=%d;"
             "val_split=%.17g;threads=%d;beta=%g;nll_coef=%g;kd_ratio=%g;kd_temp=%g;top_k=%lld;examples=%lld",
             p->objective, p->method, (long long)p->lora_rank, p->lora_alpha, p->lora_dropout, targets, p->optimizer, p->lr,
             p->weight_decay, (long long)p->warmup, p->schedule, p->grad_clip, (long long)tr->total_steps,
             (long long)p->batch, (long long)p->grad_accum, (long long)p->seq_len, p->shuffle, p->val_split,
             pool_size(tmodel_pool(tr->tm)), p->dpo_beta, p->nll_coef, p->kd_ratio, p->kd_temp,
             (long long)p->teacher_top_k, (long long)n);
    /* a bf16 (int8) run's checkpoint resumes only as bf16 (int8); f32 fingerprints stay as they were */
    if (p->base_compute != HERD_TRAIN_BASE_F32) {
        const size_t used = strlen(tr->fingerprint);
        snprintf(tr->fingerprint + used, sizeof tr->fingerprint - used, ";base_compute=%s",
                 p->base_compute == HERD_TRAIN_BASE_BF16 ? "bf16" : "int8");
    }
    return HERD_OK;
}

int herd_train(const herd_train_params *p) {
    int rc = check_params(p);
    if (rc) return rc;
    trainer tr = {.p = p, .last_saved = -1};
    if ((rc = setup(&tr))) goto done;
    int64_t step = 0;
    if (p->resume) {
        ckpt_meta meta = {.seed = p->seed, .fingerprint = tr.fingerprint};
        if ((rc = ckpt_load(p->resume, &meta, tr.params, tr.n_params, &tr.opt))) goto done;
        step = meta.step;
        tr.last_saved = step;
        snprintf(tr.ckpt_dir, sizeof tr.ckpt_dir, "%s", p->checkpoint_dir ? p->checkpoint_dir : p->resume);
    }
    if (p->metrics) {
        if (p->resume) rc = reopen_metrics(&tr, step);
        else if (!(tr.metrics = fopen(p->metrics, "w"))) rc = herd_err(HERD_E_IO, "train: cannot create '%s': %s", p->metrics, strerror(errno));
        if (rc) goto done;
    }
    int64_t n_trainable = 0;
    for (int i = 0; i < tr.n_params; i++) n_trainable += tr.params[i].n;
    herd_train_progress start = {.event = HERD_TRAIN_EV_START, .step = step, .total_steps = tr.total_steps,
                                 .n_train = tr.n_train, .n_val = tr.n_val, .n_truncated = tr.data.n_truncated,
                                 .n_skipped = tr.data.n_skipped, .n_params = n_trainable};
    report(&tr, &start);
    const int64_t per_step = p->batch * p->grad_accum;
    const double t_start = now_s();
    int64_t tokens_run = 0;
    for (; step < tr.total_steps; step++) {
        if (p->stop && *p->stop) {
            if (!(rc = save_checkpoint(&tr, step))) rc = herd_err(HERD_E_INTERRUPTED, "train: interrupted after step %lld; resume with --resume %s", (long long)step, tr.ckpt_dir);
            goto done;
        }
        const double t0 = now_s();
        const int64_t pos0 = step * per_step;
        tmodel_zero_grad(tr.tm);
        const double lr = optim_lr(&tr.opt.p, step + 1);
        if (tr.fused) tr.step_lr = lr, optim_begin(&tr.opt);
        const double norm = step_norm(&tr, pos0, per_step);
        double loss = 0;
        int64_t n_tok = 0;
        for (int64_t i = 0; i < per_step && !rc; i++)
            rc = run_example(&tr, step, pos0 + i, example_at(&tr, pos0 + i), norm, &loss, &n_tok);
        if (rc) goto done;
        double gnorm = NAN;
        if (isfinite(loss) && tr.fused) { /* the updates are made; the norm as optim_clip sums it */
            double ss = 0;
            for (int i = 0; i < tr.n_params; i++) ss += tr.sumsq[i];
            gnorm = sqrt(ss);
        } else if (isfinite(loss)) {
            gnorm = optim_clip(tr.params, tr.n_params, p->grad_clip);
        }
        if (!isfinite(loss) || !isfinite(gnorm)) {
            const char *what = isfinite(loss) ? "gradient norm" : "loss";
            const double v = isfinite(loss) ? gnorm : loss;
            if (tr.last_saved >= 0)
                rc = herd_err(HERD_E_RANGE, "train: step %lld: the %s is %g; stopped (the last good checkpoint is %s, step %lld)",
                              (long long)step + 1, what, v, tr.ckpt_dir, (long long)tr.last_saved);
            else
                rc = herd_err(HERD_E_RANGE, "train: step %lld: the %s is %g; stopped (no checkpoint was written: try a lower --lr)",
                              (long long)step + 1, what, v);
            goto done;
        }
        train_mem_note("step: backward done");
        if (!tr.fused) optim_step(&tr.opt, tmodel_pool(tr.tm), tr.params, tr.n_params, lr);
        train_mem_note("step: optimizer done");
        tokens_run += n_tok;
        const double dt = now_s() - t0, elapsed = now_s() - t_start;
        herd_train_progress pr = {.event = HERD_TRAIN_EV_STEP, .step = step + 1, .total_steps = tr.total_steps, .loss = loss,
                                  .lr = lr, .grad_norm = gnorm, .tokens_per_s = (double)n_tok / dt};
        pr.eta_s = elapsed / (double)(step + 1 - (tr.last_saved > 0 && p->resume ? tr.last_saved : 0)) * (double)(tr.total_steps - step - 1);
        report(&tr, &pr);
        double val = NAN;
        const bool do_val = tr.n_val > 0 && ((p->val_every > 0 && (step + 1) % p->val_every == 0) || step + 1 == tr.total_steps);
        if (do_val) {
            if ((rc = validate(&tr, &val))) goto done;
            herd_train_progress pv = {.event = HERD_TRAIN_EV_VAL, .step = step + 1, .total_steps = tr.total_steps, .val_loss = val};
            report(&tr, &pv);
        }
        json_t *m = json_pack("{s:I, s:f, s:f, s:f, s:f, s:I}", "step", (json_int_t)(step + 1), "loss", loss, "lr", lr,
                              "grad_norm", gnorm, "tokens_per_s", (double)n_tok / dt, "tokens", (json_int_t)tokens_run);
        if (do_val) json_object_set_new(m, "val_loss", json_real(val));
        metric_line(&tr, m);
        train_history_add(&tr.hist, step + 1, loss, val);
        if (p->save_every > 0 && (step + 1) % p->save_every == 0 && step + 1 < tr.total_steps) {
            if ((rc = save_checkpoint(&tr, step + 1))) goto done;
        }
    }
    tmodel_free_grads(tr.tm); /* the output and the last checkpoint need weights and moments only */
    train_mem_note("before writing the output");
    if ((rc = write_output(&tr))) goto done;
    if (p->save_every > 0 && (rc = save_checkpoint(&tr, tr.total_steps))) goto done;
    char svg[4200];
    svg_path(&tr, svg, sizeof svg);
    if ((rc = train_save_svg(&tr.hist, svg, p->out))) goto done;
    herd_train_progress dn = {.event = HERD_TRAIN_EV_DONE, .step = tr.total_steps, .total_steps = tr.total_steps, .path = p->out};
    report(&tr, &dn);
done:
    trainer_free(&tr);
    return rc;
}
