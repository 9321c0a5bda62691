/* herd train: fine-tuning (LoRA or full), continued pre-training, DPO and distillation. The work is
 * herd_train() (src/train/); this file parses options and prints progress. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static volatile int g_stop;

static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
}

static void fmt_time(double s, char *out, size_t cap) {
    if (!(s >= 0) || !isfinite(s)) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
}

static void progress(const herd_train_progress *pr, void *user) {
    (void)user;
    char eta[32];
    switch (pr->event) {
    case HERD_TRAIN_EV_START:
        fprintf(stderr, "train: %lld examples (%lld held out), %lld truncated, %lld skipped; %lld trainable parameters; %lld steps\n",
                (long long)(pr->n_train + pr->n_val), (long long)pr->n_val, (long long)pr->n_truncated,
                (long long)pr->n_skipped, (long long)pr->n_params, (long long)pr->total_steps);
        break;
    case HERD_TRAIN_EV_STEP:
        fmt_time(pr->eta_s, eta, sizeof eta);
        fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.3g  grad-norm %.3f  %.1f tok/s  ETA %s\n", (long long)pr->step,
                (long long)pr->total_steps, pr->loss, pr->lr, pr->grad_norm, pr->tokens_per_s, eta);
        break;
    case HERD_TRAIN_EV_VAL:
        fprintf(stderr, "step %lld/%lld  val-loss %.4f\n", (long long)pr->step, (long long)pr->total_steps, pr->val_loss);
        break;
    case HERD_TRAIN_EV_SAVE:
        fprintf(stderr, "step %lld/%lld  checkpoint saved to %s\n", (long long)pr->step, (long long)pr->total_steps, pr->path);
        break;
    case HERD_TRAIN_EV_DONE:
        fprintf(stderr, "train: wrote %s\n", pr->path);
        break;
    }
}

/* name among names[] -> index, else -1 */
static int pick(const char *v, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    return -1;
}

int cmd_train(int argc, char **argv) {
    const char *C = "train";
    herd_train_params p = herd_train_default_params();
    bool have_objective = false, have_method = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n;
        float f;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return cli_help("train");
        }
#define STR(opt, field) else if (!strcmp(a, opt)) { if (!cli_str(C, argc, argv, &i, &v)) return 1; p.field = v; }
#define I64(opt, field, lo, hi) else if (!strcmp(a, opt)) { if (!cli_i64(C, argc, argv, &i, lo, hi, &n)) return 1; p.field = n; }
#define F32(opt, field, lo, hi) else if (!strcmp(a, opt)) { if (!cli_f32(C, argc, argv, &i, lo, hi, &f)) return 1; p.field = f; }
        STR("-m", model) STR("--model", model) STR("--data", data) STR("--out", out) STR("-o", out)
        STR("--teacher", teacher) STR("--resume", resume) STR("--checkpoint-dir", checkpoint_dir)
        STR("--metrics", metrics) STR("--lora-init", lora_init) STR("--dump-data", dump_data) STR("--lora-targets", lora_targets)
        I64("--lora-rank", lora_rank, 1, 4096) F32("--lora-alpha", lora_alpha, 0, 1e6f)
        F32("--lora-dropout", lora_dropout, 0, 0.99f) I64("--warmup", warmup, 0, INT64_MAX / 2)
        F32("--grad-clip", grad_clip, 0, 1e30f) I64("--steps", steps, 1, INT64_MAX / 2) I64("--batch", batch, 1, 1 << 20)
        I64("--grad-accum", grad_accum, 1, 1 << 20) I64("--seq-len", seq_len, 1, 1 << 24)
        I64("--val-every", val_every, 0, INT64_MAX / 2) I64("--save-every", save_every, 0, INT64_MAX / 2)
        F32("--dpo-beta", dpo_beta, 0, 1e6f) F32("--nll-coef", nll_coef, 0, 1e6f) F32("--kd-ratio", kd_ratio, 0, 1)
        F32("--kd-temp", kd_temp, 1e-6f, 1e6f) I64("--teacher-top-k", teacher_top_k, 0, 1 << 30)
#undef STR
#undef I64
#undef F32
        else if (!strcmp(a, "--lr") || !strcmp(a, "--weight-decay") || !strcmp(a, "--epochs") || !strcmp(a, "--val-split")) {
            if (!cli_str(C, argc, argv, &i, &v)) return 1;
            char *end;
            double d = strtod(v, &end);
            if (*end || !isfinite(d) || d < 0) return cli_fail(C, "%s: '%s' is not a non-negative number", a, v);
            if (!strcmp(a, "--lr")) p.lr = d;
            else if (!strcmp(a, "--weight-decay")) p.weight_decay = d;
            else if (!strcmp(a, "--epochs")) p.epochs = d;
            else p.val_split = d;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_i64(C, argc, argv, &i, 0, INT64_MAX, &n)) return 1;
            p.seed = (uint64_t)n;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_i64(C, argc, argv, &i, 1, 1024, &n)) return 1;
            p.n_threads = (int)n;
        } else if (!strcmp(a, "--objective")) {
            static const char *const names[] = {"cpt", "sft", "dpo", "distill"};
            if (!cli_str(C, argc, argv, &i, &v)) return 1;
            if ((p.objective = pick(v, names, 4)) < 0) return cli_fail(C, "--objective: '%s' is not one of cpt, sft, dpo, distill", v);
            have_objective = true;
        } else if (!strcmp(a, "--method")) {
            static const char *const names[] = {"lora", "full"};
            if (!cli_str(C, argc, argv, &i, &v)) return 1;
            if ((p.method = pick(v, names, 2)) < 0) return cli_fail(C, "--method: '%s' is not one of lora, full", v);
            have_method = true;
        } else if (!strcmp(a, "--base-compute")) {
            static const char *const names[] = {"f32", "bf16", "int8"};
            if (!cli_str(C, argc, argv, &i, &v)) return 1;
            if ((p.base_compute = pick(v, names, 3)) < 0) return cli_fail(C, "--base-compute: '%s' is not one of f32, bf16, int8", v);
        } else if (!strcmp(a, "--optimizer")) {
            static const char *const names[] = {"adamw", "sgd"};
            if (!cli_str(C, argc, argv, &i, &v)) return 1;
            if ((p.optimizer = pick(v, names, 2)) < 0) return cli_fail(C, "--optimizer: '%s' is not one of adamw, sgd", v);
        } else if (!strcmp(a, "--schedule")) {
            static const char *const names[] = {"cosine", "constant"};
            if (!cli_str(C, argc, argv, &i, &v)) return 1;
            if ((p.schedule = pick(v, names, 2)) < 0) return cli_fail(C, "--schedule: '%s' is not one of cosine, constant", v);
        } else if (!strcmp(a, "--no-shuffle")) {
            p.shuffle = false;
        } else if (!strcmp(a, "--train-on-input")) {
            p.train_on_input = true;
        } else if (!strcmp(a, "--skip-overlong")) {
            p.skip_overlong = true;
        } else if (!strcmp(a, "--no-checkpointing")) {
            p.checkpoint_activations = false;
        } else {
            return cli_fail(C, "unknown option '%s' (see herd train --help)", a);
        }
    }
    if (!p.model || !p.data || !p.out) return cli_fail(C, "-m MODEL, --data FILE and --out are required (see herd train --help)");
    if (!have_objective) return cli_fail(C, "--objective cpt|sft|dpo|distill is required");
    if (!have_method) return cli_fail(C, "--method lora|full is required");
    p.on_progress = progress;
    p.stop = &g_stop;
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = herd_train(&p);
    if (rc == HERD_E_INTERRUPTED) {
        fprintf(stderr, "herd train: %s\n", herd_last_error());
        return 130;
    }
    return rc ? cli_fail_lib(C) : 0;
}
