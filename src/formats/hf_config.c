/* config.json parser; see hf_config.h. */
#include "hf_config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/file.h"
#include "../base/log.h"
#include "herd.h"

#define CONFIG_MAX_BYTES ((size_t)16 << 20)

/* Integer key in [lo, hi]: 1 found, 0 absent (or null), negative status on a bad value. */
static int get_int(const json_t *o, const char *what, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return herd_err(HERD_E_FORMAT, "config: %s: '%s' must be an integer in [%lld, %lld]", what, key,
                        (long long)lo, (long long)hi);
    *out = (int64_t)json_integer_value(v);
    return 1;
}

static int get_num(const json_t *o, const char *what, const char *key, double lo, double hi, double *out) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    double x = json_number_value(v);
    if (!json_is_number(v) || !(x >= lo && x <= hi))
        return herd_err(HERD_E_FORMAT, "config: %s: '%s' must be a number in [%g, %g]", what, key, lo, hi);
    *out = x;
    return 1;
}

static int get_bool(const json_t *o, const char *what, const char *key, bool *out) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        return herd_err(HERD_E_FORMAT, "config: %s: '%s' must be true or false", what, key);
    *out = json_is_true(v);
    return 1;
}

static int req_int(const json_t *o, const char *what, const char *key, int64_t hi, int64_t *out) {
    int rc = get_int(o, what, key, 1, hi, out);
    if (rc == 0) return herd_err(HERD_E_FORMAT, "config: %s: required key '%s' is missing", what, key);
    return rc < 0 ? rc : HERD_OK;
}

static int parse_arch(const json_t *root, const char *what) {
    const json_t *a = json_object_get(root, "architectures");
    if (a && !json_is_null(a)) {
        if (!json_is_array(a) || json_array_size(a) == 0)
            return herd_err(HERD_E_FORMAT, "config: %s: 'architectures' must be a non-empty list", what);
        for (size_t i = 0; i < json_array_size(a); i++) {
            const char *s = json_string_value(json_array_get(a, i));
            if (s && strcmp(s, "LlamaForCausalLM") == 0) return HERD_OK;
        }
        const char *s = json_string_value(json_array_get(a, 0));
        return herd_err(HERD_E_UNSUPPORTED,
                        "config: %s: architecture '%.64s' is not supported (herd runs LlamaForCausalLM)",
                        what, s ? s : "?");
    }
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    if (mt && strcmp(mt, "llama") == 0) return HERD_OK;
    return herd_err(HERD_E_UNSUPPORTED,
                    "config: %s: model_type '%.64s' is not supported (herd runs LlamaForCausalLM)", what,
                    mt ? mt : "(none)");
}

static int parse_rope_scaling(const json_t *root, const char *what, hf_config *c) {
    const json_t *rs = json_object_get(root, "rope_scaling");
    c->rope_kind = HF_ROPE_NONE;
    if (!rs || json_is_null(rs)) return HERD_OK;
    if (!json_is_object(rs))
        return herd_err(HERD_E_FORMAT, "config: %s: 'rope_scaling' must be an object", what);
    const char *t = json_string_value(json_object_get(rs, "rope_type"));
    if (!t) t = json_string_value(json_object_get(rs, "type"));
    if (!t) return herd_err(HERD_E_FORMAT, "config: %s: 'rope_scaling' has no rope_type", what);
    if (strcmp(t, "default") == 0) return HERD_OK;
    int rc;
    c->rope_factor = 0;
    if ((rc = get_num(rs, what, "factor", 1e-3, 1e6, &c->rope_factor)) <= 0)
        return rc < 0 ? rc : herd_err(HERD_E_FORMAT, "config: %s: rope_scaling.factor is missing", what);
    if (strcmp(t, "linear") == 0) {
        c->rope_kind = HF_ROPE_LINEAR;
        return HERD_OK;
    }
    if (strcmp(t, "llama3") != 0)
        return herd_err(HERD_E_UNSUPPORTED,
                        "config: %s: rope_scaling type '%.32s' is not supported (herd has llama3 and linear)",
                        what, t);
    c->rope_kind = HF_ROPE_LLAMA3;
    c->rope_low_freq_factor = 1;
    c->rope_high_freq_factor = 4;
    c->rope_orig_ctx = 8192;
    if ((rc = get_num(rs, what, "low_freq_factor", 1e-6, 1e6, &c->rope_low_freq_factor)) < 0 ||
        (rc = get_num(rs, what, "high_freq_factor", 1e-6, 1e6, &c->rope_high_freq_factor)) < 0 ||
        (rc = get_num(rs, what, "original_max_position_embeddings", 1, 1e9, &c->rope_orig_ctx)) < 0)
        return rc;
    if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
        return herd_err(HERD_E_FORMAT,
                        "config: %s: rope_scaling high_freq_factor %g must exceed low_freq_factor %g", what,
                        c->rope_high_freq_factor, c->rope_low_freq_factor);
    return HERD_OK;
}

static int parse_quant(const json_t *root, const char *what, hf_config *c) {
    const json_t *q = json_object_get(root, "quantization_config");
    if (!q || json_is_null(q)) return HERD_OK;
    const char *m = json_string_value(json_object_get(q, "quant_method"));
    if (!json_is_object(q) || !m)
        return herd_err(HERD_E_FORMAT, "config: %s: 'quantization_config' has no quant_method", what);
    if (strcmp(m, "fbgemm_fp8") != 0)
        return herd_err(HERD_E_UNSUPPORTED,
                        "config: %s: quantization method '%.32s' is not supported (herd reads fbgemm_fp8)",
                        what, m);
    c->fp8 = true;
    double ub = 1200;
    int rc = get_num(q, what, "activation_scale_ub", 1e-6, 1e30, &ub);
    if (rc < 0) return rc;
    c->fp8_act_ub = (float)ub;
    return HERD_OK;
}

static int parse_special(const json_t *root, const char *what, hf_config *c) {
    c->bos_id = -1;
    c->n_eos = 0;
    int rc = get_int(root, what, "bos_token_id", 0, INT32_MAX, &c->bos_id);
    if (rc < 0) return rc;
    const json_t *e = json_object_get(root, "eos_token_id");
    if (json_is_integer(e)) {
        if ((rc = get_int(root, what, "eos_token_id", 0, INT32_MAX, &c->eos_ids[0])) < 0) return rc;
        c->n_eos = 1;
    } else if (json_is_array(e)) {
        for (size_t i = 0; i < json_array_size(e) && c->n_eos < HF_MAX_EOS; i++) {
            int64_t id = (int64_t)json_integer_value(json_array_get(e, i));
            if (!json_is_integer(json_array_get(e, i)) || id < 0 || id > INT32_MAX)
                return herd_err(HERD_E_FORMAT, "config: %s: 'eos_token_id' must list token ids", what);
            c->eos_ids[c->n_eos++] = id;
        }
    } else if (e && !json_is_null(e)) {
        return herd_err(HERD_E_FORMAT, "config: %s: 'eos_token_id' must be an id or a list of ids", what);
    }
    return HERD_OK;
}

int hf_config_parse(const char *text, size_t len, const char *what, hf_config *c) {
    memset(c, 0, sizeof *c);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return herd_err(HERD_E_FORMAT, "config: %s is not valid JSON (line %d, column %d): %s", what,
                        jerr.line, jerr.column, jerr.text);
    int rc = HERD_OK;
    const int64_t lim = (int64_t)1 << 24;
    if (!json_is_object(root)) {
        rc = herd_err(HERD_E_FORMAT, "config: %s is not a JSON object", what);
        goto done;
    }
    if ((rc = parse_arch(root, what))) goto done;
    const char *act = json_string_value(json_object_get(root, "hidden_act"));
    if (json_object_get(root, "hidden_act") && (!act || strcmp(act, "silu") != 0)) {
        rc = herd_err(HERD_E_UNSUPPORTED, "config: %s: hidden_act '%.32s' is not supported (Llama uses silu)",
                      what, act ? act : "?");
        goto done;
    }
    static const char *const biases[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++) {
        bool b = false;
        if ((rc = get_bool(root, what, biases[i], &b)) < 0) goto done;
        if (b) {
            rc = herd_err(HERD_E_UNSUPPORTED, "config: %s: '%s' is true; herd runs Llama without biases",
                          what, biases[i]);
            goto done;
        }
    }
    if ((rc = req_int(root, what, "hidden_size", lim, &c->n_embd)) ||
        (rc = req_int(root, what, "num_hidden_layers", 4096, &c->n_layer)) ||
        (rc = req_int(root, what, "num_attention_heads", 4096, &c->n_head)) ||
        (rc = req_int(root, what, "intermediate_size", lim, &c->n_ff)) ||
        (rc = req_int(root, what, "vocab_size", (int64_t)1 << 24, &c->n_vocab)))
        goto done;
    c->n_head_kv = c->n_head;
    c->head_dim = c->n_embd / c->n_head;
    c->n_ctx_train = 2048;
    c->norm_eps = 1e-6;
    c->rope_theta = 10000;
    if ((rc = get_int(root, what, "num_key_value_heads", 1, 4096, &c->n_head_kv)) < 0 ||
        (rc = get_int(root, what, "head_dim", 2, 4096, &c->head_dim)) < 0 ||
        (rc = get_int(root, what, "max_position_embeddings", 1, (int64_t)1 << 30, &c->n_ctx_train)) < 0 ||
        (rc = get_num(root, what, "rms_norm_eps", 1e-30, 1, &c->norm_eps)) < 0 ||
        (rc = get_num(root, what, "rope_theta", 1e-3, 1e30, &c->rope_theta)) < 0 ||
        (rc = get_bool(root, what, "tie_word_embeddings", &c->tie_word_embeddings)) < 0)
        goto done;
    rc = HERD_OK;
    if (c->n_head % c->n_head_kv != 0) {
        rc = herd_err(HERD_E_FORMAT,
                      "config: %s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
                      what, (long long)c->n_head, (long long)c->n_head_kv);
        goto done;
    }
    if (c->head_dim % 2 != 0 || c->head_dim < 2 || c->head_dim > 4096) {
        rc = herd_err(HERD_E_FORMAT, "config: %s: head dimension %lld must be even and positive", what,
                      (long long)c->head_dim);
        goto done;
    }
    if ((rc = parse_rope_scaling(root, what, c)) || (rc = parse_quant(root, what, c)) ||
        (rc = parse_special(root, what, c)))
        goto done;
    const char *nm = json_string_value(json_object_get(root, "_name_or_path"));
    if (nm) snprintf(c->name, sizeof c->name, "%s", nm);
done:
    json_decref(root);
    return rc;
}

int hf_config_load(const char *dir, hf_config *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    size_t len;
    int rc = herd_file_read_all(path, CONFIG_MAX_BYTES, &text, &len);
    if (rc) return rc;
    rc = hf_config_parse(text, len, path, out);
    free(text);
    return rc;
}

/* ---- DeBERTa-v2 (Prompt Guard) ------------------------------------------------------------------ */

static int deberta_pos_att(const json_t *root, const char *what, hf_deberta_config *c) {
    const json_t *v = json_object_get(root, "pos_att_type");
    if (!v || json_is_null(v)) return 0;
    char buf[64];
    size_t i;
    const json_t *e;
    if (json_is_string(v)) { /* "p2c|c2p" */
        snprintf(buf, sizeof buf, "%s", json_string_value(v));
        for (char *tok = strtok(buf, "|"); tok; tok = strtok(NULL, "|")) {
            while (*tok == ' ') tok++;
            if (!strncmp(tok, "c2p", 3)) c->c2p = true;
            else if (!strncmp(tok, "p2c", 3)) c->p2c = true;
            else if (*tok) return herd_err(HERD_E_UNSUPPORTED, "config: %s: pos_att_type '%s' is not supported", what, tok);
        }
        return 0;
    }
    if (!json_is_array(v)) return herd_err(HERD_E_FORMAT, "config: %s: 'pos_att_type' must be a list", what);
    json_array_foreach(v, i, e) {
        const char *s = json_string_value(e);
        if (s && !strcmp(s, "c2p")) c->c2p = true;
        else if (s && !strcmp(s, "p2c")) c->p2c = true;
        else return herd_err(HERD_E_UNSUPPORTED, "config: %s: pos_att_type '%s' is not supported", what, s ? s : "?");
    }
    return 0;
}

static bool is_gelu(const char *act) { return act && (!strcmp(act, "gelu") || !strcmp(act, "gelu_python")); }

int hf_deberta_config_parse(const char *text, size_t len, const char *what, hf_deberta_config *c) {
    memset(c, 0, sizeof *c);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return herd_err(HERD_E_FORMAT, "config: %s is not valid JSON (line %d, column %d): %s", what,
                        jerr.line, jerr.column, jerr.text);
    int rc = HERD_OK;
    const int64_t lim = (int64_t)1 << 20;
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    if (!json_is_object(root) || !mt || strcmp(mt, "deberta-v2")) {
        rc = herd_err(HERD_E_UNSUPPORTED, "config: %s: model_type is '%s', not deberta-v2", what, mt ? mt : "missing");
        goto done;
    }
    const json_t *arch = json_array_get(json_object_get(root, "architectures"), 0);
    if (arch && (!json_is_string(arch) || strcmp(json_string_value(arch), "DebertaV2ForSequenceClassification"))) {
        rc = herd_err(HERD_E_UNSUPPORTED, "config: %s: architecture '%s' is not DebertaV2ForSequenceClassification",
                      what, json_is_string(arch) ? json_string_value(arch) : "?");
        goto done;
    }
    if ((rc = req_int(root, what, "hidden_size", lim, &c->n_embd)) ||
        (rc = req_int(root, what, "num_hidden_layers", 1024, &c->n_layer)) ||
        (rc = req_int(root, what, "num_attention_heads", 1024, &c->n_head)) ||
        (rc = req_int(root, what, "intermediate_size", lim, &c->n_ff)) ||
        (rc = req_int(root, what, "vocab_size", (int64_t)1 << 24, &c->n_vocab)))
        goto done;
    c->head_dim = c->n_embd / c->n_head;
    c->n_embd_in = c->n_embd;
    c->n_pos = 512;
    c->norm_eps = 1e-7;
    c->max_relative_positions = -1;
    c->position_buckets = -1;
    c->position_biased_input = true;
    c->pooler_size = c->n_embd;
    int64_t conv = 0;
    if ((rc = get_int(root, what, "attention_head_size", 1, 4096, &c->head_dim)) < 0 ||
        (rc = get_int(root, what, "embedding_size", 1, lim, &c->n_embd_in)) < 0 ||
        (rc = get_int(root, what, "max_position_embeddings", 1, 1 << 16, &c->n_pos)) < 0 ||
        (rc = get_int(root, what, "type_vocab_size", 0, 1 << 16, &c->n_type)) < 0 ||
        (rc = get_int(root, what, "max_relative_positions", -1, 1 << 16, &c->max_relative_positions)) < 0 ||
        (rc = get_int(root, what, "position_buckets", -1, 1 << 16, &c->position_buckets)) < 0 ||
        (rc = get_int(root, what, "pooler_hidden_size", 1, lim, &c->pooler_size)) < 0 ||
        (rc = get_int(root, what, "conv_kernel_size", 0, 1 << 10, &conv)) < 0 ||
        (rc = get_num(root, what, "layer_norm_eps", 0, 1, &c->norm_eps)) < 0 ||
        (rc = get_bool(root, what, "relative_attention", &c->relative_attention)) < 0 ||
        (rc = get_bool(root, what, "share_att_key", &c->share_att_key)) < 0 ||
        (rc = get_bool(root, what, "position_biased_input", &c->position_biased_input)) < 0 ||
        (rc = deberta_pos_att(root, what, c)) < 0)
        goto done;
    rc = HERD_OK;
    const char *act = json_string_value(json_object_get(root, "hidden_act"));
    const char *pact = json_string_value(json_object_get(root, "pooler_hidden_act"));
    if ((json_object_get(root, "hidden_act") && !is_gelu(act)) ||
        (json_object_get(root, "pooler_hidden_act") && !is_gelu(pact))) {
        rc = herd_err(HERD_E_UNSUPPORTED, "config: %s: activation '%s' is not supported (gelu only)", what,
                      !is_gelu(act) && act ? act : pact ? pact : "?");
        goto done;
    }
    if (conv > 0) {
        rc = herd_err(HERD_E_UNSUPPORTED, "config: %s: conv_kernel_size %lld: the convolution layer is not supported",
                      what, (long long)conv);
        goto done;
    }
    const char *nre = json_string_value(json_object_get(root, "norm_rel_ebd"));
    c->norm_rel_ebd = nre && strstr(nre, "layer_norm");
    if (c->n_head * c->head_dim != c->n_embd) {
        rc = herd_err(HERD_E_UNSUPPORTED, "config: %s: %lld heads of %lld differ from hidden_size %lld", what,
                      (long long)c->n_head, (long long)c->head_dim, (long long)c->n_embd);
        goto done;
    }
    if (c->pooler_size != c->n_embd) {
        rc = herd_err(HERD_E_UNSUPPORTED, "config: %s: pooler_hidden_size %lld differs from hidden_size %lld", what,
                      (long long)c->pooler_size, (long long)c->n_embd);
        goto done;
    }
    if (c->max_relative_positions < 1) c->max_relative_positions = c->n_pos;
    c->att_span = c->position_buckets > 0 ? c->position_buckets : c->max_relative_positions;
    /* labels: id2label {"0": "BENIGN", ...}, else num_labels (default 2) as LABEL_i */
    const json_t *id2 = json_object_get(root, "id2label");
    int64_t nl = 2;
    if (json_is_object(id2)) nl = (int64_t)json_object_size(id2);
    else if ((rc = get_int(root, what, "num_labels", 1, HF_MAX_LABELS, &nl)) < 0) goto done;
    rc = HERD_OK;
    if (nl < 1 || nl > HF_MAX_LABELS) {
        rc = herd_err(HERD_E_UNSUPPORTED, "config: %s: %lld labels (1..%d supported)", what, (long long)nl, HF_MAX_LABELS);
        goto done;
    }
    c->n_labels = nl;
    for (int64_t i = 0; i < nl; i++) {
        char key[24];
        snprintf(key, sizeof key, "%lld", (long long)i);
        const char *name = json_string_value(json_object_get(id2, key));
        if (json_is_object(id2) && !name) {
            rc = herd_err(HERD_E_FORMAT, "config: %s: id2label has no label \"%s\"", what, key);
            goto done;
        }
        if (name) snprintf(c->labels[i], sizeof c->labels[i], "%s", name);
        else snprintf(c->labels[i], sizeof c->labels[i], "LABEL_%lld", (long long)i);
    }
done:
    json_decref(root);
    return rc;
}

int hf_deberta_config_load(const char *dir, hf_deberta_config *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    size_t len;
    int rc = herd_file_read_all(path, CONFIG_MAX_BYTES, &text, &len);
    if (rc) return rc;
    rc = hf_deberta_config_parse(text, len, path, out);
    free(text);
    return rc;
}
