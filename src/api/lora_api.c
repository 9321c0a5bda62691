/* Public API: LoRA adapters (load, save, merge into an exported GGUF). Setting them on a context is in
 * context_api.c, applying them in model/forward.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/log.h"
#include "../model/lora.h"
#include "../model/model.h"
#include "../quant/quant.h"
#include "herd.h"

int herd_lora_load(const herd_model *m, const char *path, herd_lora **out) {
    *out = NULL;
    lora_adapter *a;
    int rc = lora_adapter_load(m, path, &a);
    if (rc) return rc;
    herd_lora *h = herd_xcalloc(1, sizeof *h);
    h->ad = a;
    h->base = m;
    *out = h;
    return HERD_OK;
}

void herd_lora_free(herd_lora *a) {
    if (!a) return;
    lora_adapter_free(a->ad);
    free(a);
}

void herd_lora_get_info(const herd_lora *h, herd_lora_info *out) {
    memset(out, 0, sizeof *out);
    const lora_adapter *a = h->ad;
    out->alpha = a->alpha;
    for (int64_t l = 0; l < a->n_layer; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            const lora_matrix *mt = &a->m[l * LORA_N_TARGETS + t];
            if (mt->rank <= 0) continue;
            const weight *w = lora_target_weight(h->base, l, t);
            out->n_matrices++;
            out->n_params += mt->rank * (w->n_in + w->n_out);
            if (mt->rank > out->rank) out->rank = mt->rank;
        }
}

int herd_lora_save(const herd_lora *a, const char *path, int format) {
    if (format == HERD_LORA_GGUF) return lora_adapter_save_gguf(a->ad, a->base, path);
    if (format == HERD_LORA_PEFT) return lora_adapter_save_peft(a->ad, a->base, path);
    return herd_err(HERD_E_ARG, "lora: unknown format %d (HERD_LORA_GGUF or HERD_LORA_PEFT)", format);
}

/* ---- export: the base with the adapters merged ------------------------------------------------- */

static char *temp_beside(const char *path, const char *tag) {
    size_t n = strlen(path) + 48;
    char *t = herd_xmalloc(n);
    snprintf(t, n, "%s.%s.%ld", path, tag, (long)getpid());
    return t;
}

int herd_export_lora(const char *base_path, const char *const *paths, const float *scales, int n,
                     const char *out_path, const char *type) {
    if (n < 0 || (n > 0 && (!paths || !scales))) return herd_err(HERD_E_ARG, "export: no adapters given");
    if (!strcmp(base_path, out_path)) return herd_err(HERD_E_ARG, "export: the output '%s' is the base model", out_path);
    /* the target: a convert type (every matrix written in it), a quantize target (through a merged f32 file),
     * or the base's own types */
    herd_convert_params cp = {.type = -1};
    quant_plan qp;
    bool quant = false;
    if (type) {
        int t = herd_type_from_name(type);
        if (t == HERD_TYPE_F32 || t == HERD_TYPE_F16 || t == HERD_TYPE_BF16 || t == HERD_TYPE_Q8_0 || t == HERD_TYPE_Q4_0)
            cp.type = t;
        else if (quant_plan_init(&qp, type, false))
            quant = true, cp.type = HERD_TYPE_F32;
        else
            return herd_err(HERD_E_ARG, "export: unknown type '%s' (f32, f16, bf16, q8_0, q4_0, or %s)", type,
                            quant_plan_names());
    }
    herd_model *m;
    int rc = model_load(base_path, MODEL_LOAD_NO_REPACK, &m); /* export copies rows: no packed copy needed */
    if (rc) return rc;
    const lora_adapter **ad = herd_xcalloc((size_t)(n ? n : 1), sizeof *ad);
    for (int i = 0; i < n && !rc; i++) {
        lora_adapter *a;
        rc = lora_adapter_load(m, paths[i], &a);
        ad[i] = a;
    }
    char *tmp = temp_beside(out_path, "tmp"), *tmp_f32 = quant ? temp_beside(out_path, "f32") : NULL;
    if (!rc) {
        model_merge mg = {ad, scales, n};
        rc = model_convert(m, base_path, quant ? tmp_f32 : tmp, &cp, &mg);
    }
    if (!rc && quant) {
        herd_quantize_params qpar = herd_quantize_default_params();
        rc = herd_quantize_model(tmp_f32, tmp, type, &qpar, NULL);
    }
    if (tmp_f32) remove(tmp_f32);
    if (!rc && rename(tmp, out_path) != 0) rc = herd_err(HERD_E_IO, "export: cannot rename '%s' to '%s'", tmp, out_path);
    if (rc) remove(tmp);
    free(tmp);
    free(tmp_f32);
    for (int i = 0; i < n; i++) lora_adapter_free((lora_adapter *)ad[i]);
    free(ad);
    model_free(m);
    return rc;
}
