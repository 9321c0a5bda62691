/* PEFT LoRA adapter folders (Hugging Face peft's save_pretrained), read and written.
 *
 *   adapter_config.json        {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "target_modules": ["q_proj", ...],
 *                               "bias": "none", "task_type": "CAUSAL_LM", ...}
 *   adapter_model.safetensors  base_model.model.model.layers.N.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight
 *                              base_model.model.model.layers.N.mlp.{gate,up,down}_proj.lora_{A,B}.weight
 *                              lora_A [r, in], lora_B [out, r] (row-major, as torch's Linear weights)
 * The effective update is W + (lora_alpha / r) B A, as llama.cpp's. lora_B's Q/K rows are in HF's order; a
 * GGUF base holds them permuted (LLAMA31.md, RoPE), so they are moved on load and moved back on save, as
 * llama.cpp's convert_lora_to_gguf.py does with its LoraTorchTensor.permute.
 *
 * Refused by name (herd's forward pass could not honour them): use_dora, use_rslora, alpha_pattern,
 * modules_to_save, adapter_model.bin (pickle), and any tensor that is not one of the seven matrices. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/file.h"
#include "../base/log.h"
#include "../formats/safetensors.h"
#include "lora.h"

#define PEFT_CONFIG_MAX ((size_t)4 << 20)
#define PEFT_PREFIX "base_model.model.model.layers."

static const char *peft_group(int t) {
    return t <= LORA_O ? "self_attn" : "mlp";
}

/* "base_model.model.model.layers.N.<group>.<proj>.lora_A|B.weight" -> layer, target, is_b */
static bool parse_peft_name(const char *name, int64_t *layer, int *target, bool *is_b) {
    size_t np = strlen(PEFT_PREFIX);
    if (strncmp(name, PEFT_PREFIX, np) != 0) return false;
    char *end;
    errno = 0;
    long long l = strtoll(name + np, &end, 10);
    if (errno || end == name + np || *end != '.' || l < 0) return false;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        char want[96];
        snprintf(want, sizeof want, ".%s.%s.lora_", peft_group(t), lora_target_hf(t));
        size_t n = strlen(want);
        if (strncmp(end, want, n) != 0) continue;
        const char *rest = end + n;
        if (strcmp(rest, "A.weight") && strcmp(rest, "B.weight")) continue;
        *layer = l, *target = t, *is_b = rest[0] == 'B';
        return true;
    }
    return false;
}

/* The config's checks; OUT: r, alpha, whether ranks may differ per module, target_modules (borrowed or NULL) */
static int read_config(const char *cfg_path, json_t **root, int64_t *r, double *alpha, bool *rank_pattern,
                       json_t **targets) {
    char *text;
    size_t len;
    int rc = herd_file_read_all(cfg_path, PEFT_CONFIG_MAX, &text, &len);
    if (rc) return herd_err(rc, "lora: %s", herd_last_error());
    json_error_t je;
    json_t *c = json_loadb(text, len, 0, &je);
    free(text);
    if (!json_is_object(c)) {
        json_decref(c);
        return herd_err(HERD_E_FORMAT, "lora: %s: not a JSON object (line %d: %s)", cfg_path, je.line, je.text);
    }
    *root = c;
    const char *pt = json_string_value(json_object_get(c, "peft_type"));
    if (pt && strcmp(pt, "LORA") != 0)
        return herd_err(HERD_E_UNSUPPORTED, "lora: %s: peft_type is '%s', herd reads LORA adapters", cfg_path, pt);
    json_t *jr = json_object_get(c, "r");
    if (!json_is_integer(jr) || json_integer_value(jr) < 1)
        return herd_err(HERD_E_FORMAT, "lora: %s: 'r' must be a positive integer", cfg_path);
    *r = json_integer_value(jr);
    json_t *ja = json_object_get(c, "lora_alpha");
    if (ja && !json_is_null(ja) && !json_is_number(ja))
        return herd_err(HERD_E_FORMAT, "lora: %s: 'lora_alpha' must be a number", cfg_path);
    *alpha = ja && json_is_number(ja) ? json_number_value(ja) : 8.0; /* peft's LoraConfig default */
    static const char *const flags[] = {"use_dora", "use_rslora"};
    for (int i = 0; i < 2; i++)
        if (json_is_true(json_object_get(c, flags[i])))
            return herd_err(HERD_E_UNSUPPORTED, "lora: %s: '%s' is true; herd applies plain LoRA only", cfg_path, flags[i]);
    json_t *ap = json_object_get(c, "alpha_pattern");
    if (json_is_object(ap) && json_object_size(ap) > 0)
        return herd_err(HERD_E_UNSUPPORTED, "lora: %s: 'alpha_pattern' is set; herd needs one lora_alpha for all modules",
                        cfg_path);
    json_t *ms = json_object_get(c, "modules_to_save");
    if (json_is_array(ms) && json_array_size(ms) > 0)
        return herd_err(HERD_E_UNSUPPORTED, "lora: %s: 'modules_to_save' lists full weights (%s...); herd applies LoRA "
                        "matrices only", cfg_path, json_string_value(json_array_get(ms, 0)) ? json_string_value(json_array_get(ms, 0)) : "?");
    json_t *rp = json_object_get(c, "rank_pattern");
    *rank_pattern = json_is_object(rp) && json_object_size(rp) > 0;
    *targets = json_object_get(c, "target_modules");
    if (!json_is_array(*targets)) *targets = NULL; /* a regex string or "all-linear": not checked per tensor */
    return HERD_OK;
}

/* peft matches a target_modules entry against a module's name or its last components ("q_proj",
 * "self_attn.q_proj", "model.layers.0.self_attn.q_proj" all name a q_proj) */
static bool listed(const json_t *targets, int t) {
    if (!targets) return true;
    const char *hf = lora_target_hf(t);
    size_t n = strlen(hf);
    for (size_t i = 0; i < json_array_size(targets); i++) {
        const char *s = json_string_value(json_array_get(targets, i));
        size_t k = s ? strlen(s) : 0;
        if (s && k >= n && !strcmp(s + k - n, hf) && (k == n || s[k - n - 1] == '.')) return true;
    }
    return false;
}

static lora_pair_src pair_src(const char *file, const st_tensor *a, const st_tensor *b) {
    return (lora_pair_src){.file = file, .a_name = a->name, .b_name = b->name, .a_type = a->type, .b_type = b->type,
                           .a_data = a->data, .b_data = b->data, .a_rows = a->shape[0], .a_cols = a->shape[1],
                           .b_rows = b->shape[0], .b_cols = b->shape[1], .b_hf_order = true};
}

int lora_adapter_load_peft(const herd_model *base, const char *dir, lora_adapter **out) {
    *out = NULL;
    size_t dl = strlen(dir) + 64;
    char *cfg_path = herd_xmalloc(dl), *st_path = herd_xmalloc(dl);
    snprintf(cfg_path, dl, "%s/adapter_config.json", dir);
    snprintf(st_path, dl, "%s/adapter_model.safetensors", dir);
    json_t *cfg = NULL, *targets = NULL;
    int64_t r = 0;
    double alpha = 0;
    bool rank_pattern = false;
    herd_mapped_file f = {0};
    st_file st = {0};
    const st_tensor **ta = NULL, **tb = NULL;
    const int64_t nl = base->hp.n_layer, n_slots = nl * LORA_N_TARGETS;
    int rc = read_config(cfg_path, &cfg, &r, &alpha, &rank_pattern, &targets);
    if (rc) goto done;
    struct stat sb;
    if (stat(st_path, &sb) != 0) {
        char bin[4096];
        snprintf(bin, sizeof bin, "%s/adapter_model.bin", dir);
        rc = stat(bin, &sb) == 0
                 ? herd_err(HERD_E_UNSUPPORTED, "lora: %s holds adapter_model.bin (a pickle); herd reads "
                            "adapter_model.safetensors (save with safe_serialization=True)", dir)
                 : herd_err(HERD_E_IO, "lora: %s: no adapter_model.safetensors", dir);
        goto done;
    }
    if ((rc = herd_file_map(st_path, &f))) {
        rc = herd_err(rc, "lora: %s", herd_last_error());
        goto done;
    }
    if ((rc = st_parse(f.data, f.size, st_path, &st))) {
        rc = herd_err(rc, "lora: %s", herd_last_error());
        goto done;
    }
    ta = herd_xcalloc((size_t)n_slots, sizeof *ta);
    tb = herd_xcalloc((size_t)n_slots, sizeof *tb);
    for (int64_t i = 0; i < st.n_tensors && !rc; i++) {
        const st_tensor *t = &st.tensors[i];
        int64_t l;
        int tg;
        bool is_b;
        if (!parse_peft_name(t->name, &l, &tg, &is_b)) {
            rc = herd_err(HERD_E_UNSUPPORTED, "lora: %s: tensor '%s' is not a LoRA matrix herd applies ("
                          PEFT_PREFIX "N.self_attn.{q,k,v,o}_proj / .mlp.{gate,up,down}_proj .lora_A / .lora_B.weight)",
                          st_path, t->name);
        } else if (l >= nl) {
            rc = herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' is for layer %lld, but the base model has %lld layers",
                          st_path, t->name, (long long)l, (long long)nl);
        } else if (t->n_dims != 2) {
            rc = herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' has %d dimensions, expected 2", st_path, t->name, t->n_dims);
        } else if (!listed(targets, tg)) {
            rc = herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' adapts %s, which target_modules in %s does not list",
                          st_path, t->name, lora_target_hf(tg), cfg_path);
        } else {
            const st_tensor **slot = is_b ? &tb[l * LORA_N_TARGETS + tg] : &ta[l * LORA_N_TARGETS + tg];
            if (*slot) rc = herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' appears twice", st_path, t->name);
            *slot = t;
        }
    }
    int64_t floats = 0;
    for (int64_t k = 0; k < n_slots && !rc; k++) {
        if (!ta[k] && !tb[k]) continue;
        if (!ta[k] || !tb[k]) {
            const char *have = (ta[k] ? ta[k] : tb[k])->name;
            const char *ab = strstr(have, ".lora_");
            rc = herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' has no matching '%.*s.lora_%s.weight'", st_path, have,
                          (int)(ab - have), have, ta[k] ? "B" : "A");
            break;
        }
        lora_pair_src src = pair_src(st_path, ta[k], tb[k]);
        if (!rank_pattern && src.a_rows != r)
            rc = herd_err(HERD_E_FORMAT, "lora: %s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld] (r = %lld in %s)",
                          st_path, ta[k]->name, (long long)src.a_rows, (long long)src.a_cols, (long long)r,
                          (long long)src.a_cols, (long long)r, cfg_path);
        if (!rc) rc = lora_pair_check(base, k / LORA_N_TARGETS, (int)(k % LORA_N_TARGETS), &src);
        floats += src.a_rows * (src.a_cols + src.b_rows);
    }
    if (rc) goto done;
    if (floats == 0) {
        rc = herd_err(HERD_E_FORMAT, "lora: %s: the adapter holds no lora_A / lora_B tensors", st_path);
        goto done;
    }
    lora_adapter *a = lora_adapter_alloc(base, (float)alpha, floats);
    if (!a) {
        rc = herd_err(HERD_E_NOMEM, "lora: %s: out of memory for %lld floats", st_path, (long long)floats);
        goto done;
    }
    for (int64_t k = 0; k < n_slots; k++) {
        if (!ta[k]) continue;
        lora_pair_src src = pair_src(st_path, ta[k], tb[k]);
        lora_pair_store(a, base, k / LORA_N_TARGETS, (int)(k % LORA_N_TARGETS), &src);
    }
    *out = a;
done:
    free(ta);
    free(tb);
    st_file_clear(&st);
    herd_file_unmap(&f);
    json_decref(cfg);
    free(cfg_path);
    free(st_path);
    return rc;
}

/* ---- writing -------------------------------------------------------------------------------------- */

int lora_adapter_save_peft(const lora_adapter *a, const herd_model *base, const char *dir) {
    const int64_t nl = a->n_layer, hd = base->hp.head_dim;
    if (nl != base->hp.n_layer)
        return herd_err(HERD_E_ARG, "lora: the adapter has %lld layers, the base model %lld", (long long)nl,
                        (long long)base->hp.n_layer);
    int64_t rank = 0, n_pairs = 0;
    unsigned used = 0;
    for (int64_t k = 0; k < nl * LORA_N_TARGETS; k++) {
        if (a->m[k].rank <= 0) continue;
        if (rank && a->m[k].rank != rank)
            return herd_err(HERD_E_ARG, "lora: PEFT needs one rank for all matrices; this adapter has %lld and %lld",
                            (long long)rank, (long long)a->m[k].rank);
        rank = a->m[k].rank;
        used |= 1u << (k % LORA_N_TARGETS);
        n_pairs++;
    }
    if (n_pairs == 0) return herd_err(HERD_E_ARG, "lora: the adapter holds no matrices to write to '%s'", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return herd_err(HERD_E_IO, "lora: cannot create '%s': %s", dir, strerror(errno));

    /* adapter_model.safetensors: the header, then a and b of each pair (b's Q/K rows in HF order) */
    const void **parts = herd_xcalloc((size_t)(2 * n_pairs + 2), sizeof *parts);
    size_t *sizes = herd_xcalloc((size_t)(2 * n_pairs + 2), sizeof *sizes);
    float **copies = herd_xcalloc((size_t)(2 * n_pairs), sizeof *copies);
    int np = 1, n_copies = 0, rc = HERD_OK;
    json_t *hdr = json_object();
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    uint64_t off = 0;
    char name[160];
    for (int64_t l = 0; l < nl && !rc; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            const lora_matrix *mt = &a->m[l * LORA_N_TARGETS + t];
            if (mt->rank <= 0) continue;
            const weight *w = lora_target_weight(base, l, t);
            const float *b = mt->b;
            if ((t == LORA_Q || t == LORA_K) && !base->rope_half_split) { /* GGUF-order base: rows back to HF's */
                float *c = malloc((size_t)(w->n_out * rank) * sizeof(float));
                if (!c) {
                    rc = herd_err(HERD_E_NOMEM, "lora: out of memory writing '%s'", dir);
                    break;
                }
                for (int64_t row = 0; row < w->n_out; row++)
                    memcpy(c + row * rank, mt->b + lora_qk_row(row, hd, false) * rank, (size_t)rank * sizeof(float));
                b = copies[n_copies++] = c;
            }
            const float *data[2] = {mt->a, b};
            int64_t rows[2] = {rank, w->n_out}, cols[2] = {w->n_in, rank};
            for (int ab = 0; ab < 2; ab++) {
                snprintf(name, sizeof name, PEFT_PREFIX "%lld.%s.%s.lora_%c.weight", (long long)l, peft_group(t),
                         lora_target_hf(t), ab ? 'B' : 'A');
                uint64_t n = (uint64_t)(rows[ab] * cols[ab]) * sizeof(float);
                json_object_set_new(hdr, name, json_pack("{s:s, s:[I, I], s:[I, I]}", "dtype", "F32", "shape",
                                                         (json_int_t)rows[ab], (json_int_t)cols[ab], "data_offsets",
                                                         (json_int_t)off, (json_int_t)(off + n)));
                parts[np] = data[ab];
                sizes[np++] = (size_t)n;
                off += n;
            }
        }
    char *htext = NULL, *head = NULL;
    if (!rc) {
        htext = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
        size_t hl = strlen(htext), padded = (hl + 7) / 8 * 8; /* the data section 8-aligned, as the format asks */
        head = herd_xmalloc(8 + padded);
        uint64_t n = padded;
        for (int i = 0; i < 8; i++) head[i] = (char)(n >> (8 * i));
        memcpy(head + 8, htext, hl);
        memset(head + 8 + hl, ' ', padded - hl);
        parts[0] = head;
        sizes[0] = 8 + padded;
        size_t pl = strlen(dir) + 64;
        char *p = herd_xmalloc(pl);
        snprintf(p, pl, "%s/adapter_model.safetensors", dir);
        rc = herd_file_write_atomic(p, parts, sizes, np);
        free(p);
    }
    json_decref(hdr);
    free(htext);
    free(head);
    for (int i = 0; i < n_copies; i++) free(copies[i]);
    free(copies);
    free(parts);
    free(sizes);
    if (rc) return rc;

    /* adapter_config.json: alpha 0 (herd: scale 1) is lora_alpha = r for peft */
    json_t *tm = json_array(), *layers = json_array();
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (used & (1u << t)) json_array_append_new(tm, json_string(lora_target_hf(t)));
    bool all_layers = true;
    for (int64_t l = 0; l < nl; l++) {
        bool any = false;
        for (int t = 0; t < LORA_N_TARGETS; t++) any |= a->m[l * LORA_N_TARGETS + t].rank > 0;
        if (any) json_array_append_new(layers, json_integer(l));
        all_layers &= any;
    }
    json_t *c = json_pack("{s:s, s:s, s:I, s:f, s:o, s:s, s:f, s:b, s:b, s:b, s:b}", "peft_type", "LORA", "task_type",
                          "CAUSAL_LM", "r", (json_int_t)rank, "lora_alpha", a->alpha != 0 ? (double)a->alpha : (double)rank,
                          "target_modules", tm, "bias", "none", "lora_dropout", 0.0, "fan_in_fan_out", 0,
                          "inference_mode", 1, "use_rslora", 0, "use_dora", 0);
    if (!all_layers) json_object_set_new(c, "layers_to_transform", layers);
    else json_decref(layers);
    json_object_set_new(c, "base_model_name_or_path", base->hf ? json_string(base->hf->dir) : json_null());
    char *ctext = json_dumps(c, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(c);
    size_t pl = strlen(dir) + 64;
    char *p = herd_xmalloc(pl);
    snprintf(p, pl, "%s/adapter_config.json", dir);
    const void *cp[2] = {ctext, "\n"};
    size_t cs[2] = {strlen(ctext), 1};
    rc = herd_file_write_atomic(p, cp, cs, 2);
    free(p);
    free(ctext);
    return rc;
}
