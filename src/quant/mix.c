/* Which tensor gets which type: llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) for a dense llama
 * model, stated in quant.h. Every rule is keyed on llama.cpp's file type (llama_ftype), as there. */
#include <string.h>
#include <strings.h>

#include "../kernels/kernels.h"
#include "herd.h"
#include "quant.h"

/* llama_ftype values (llama.h) */
enum {
    FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9, FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12,
    FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15, FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_IQ2_XXS = 19,
    FT_IQ2_XS = 20, FT_Q2_K_S = 21, FT_IQ3_XS = 22, FT_IQ3_XXS = 23, FT_IQ1_S = 24, FT_IQ4_NL = 25, FT_IQ3_S = 26,
    FT_IQ3_M = 27, FT_IQ2_S = 28, FT_IQ2_M = 29, FT_IQ4_XS = 30, FT_IQ1_M = 31, FT_TQ1_0 = 36, FT_TQ2_0 = 37,
};

static const struct {
    const char *name;
    int base, file_type;
    bool mix;  /* false: herd's uniform targets (the base type everywhere but the output rule) */
} k_targets[] = {
    {"Q8_0", HERD_TYPE_Q8_0, FT_Q8_0, true},      {"Q4_0", HERD_TYPE_Q4_0, FT_Q4_0, true},
    {"Q4_1", HERD_TYPE_Q4_1, FT_Q4_1, true},      {"Q5_0", HERD_TYPE_Q5_0, FT_Q5_0, true},
    {"Q5_1", HERD_TYPE_Q5_1, FT_Q5_1, true},      {"Q6_K", HERD_TYPE_Q6_K, FT_Q6_K, true},
    {"Q2_K", HERD_TYPE_Q2_K, FT_Q2_K, true},      {"Q2_K_S", HERD_TYPE_Q2_K, FT_Q2_K_S, true},
    {"Q3_K_S", HERD_TYPE_Q3_K, FT_Q3_K_S, true},  {"Q3_K_M", HERD_TYPE_Q3_K, FT_Q3_K_M, true},
    {"Q3_K_L", HERD_TYPE_Q3_K, FT_Q3_K_L, true},  {"Q4_K_S", HERD_TYPE_Q4_K, FT_Q4_K_S, true},
    {"Q4_K_M", HERD_TYPE_Q4_K, FT_Q4_K_M, true},  {"Q5_K_S", HERD_TYPE_Q5_K, FT_Q5_K_S, true},
    {"Q5_K_M", HERD_TYPE_Q5_K, FT_Q5_K_M, true},  {"IQ4_NL", HERD_TYPE_IQ4_NL, FT_IQ4_NL, true},
    {"IQ4_XS", HERD_TYPE_IQ4_XS, FT_IQ4_XS, true}, {"IQ3_M", HERD_TYPE_IQ3_S, FT_IQ3_M, true},
    {"IQ3_S", HERD_TYPE_IQ3_S, FT_IQ3_S, true},   {"IQ3_XS", HERD_TYPE_IQ3_S, FT_IQ3_XS, true},
    {"IQ3_XXS", HERD_TYPE_IQ3_XXS, FT_IQ3_XXS, true}, {"IQ2_M", HERD_TYPE_IQ2_S, FT_IQ2_M, true},
    {"IQ2_S", HERD_TYPE_IQ2_XS, FT_IQ2_S, true},  {"IQ2_XS", HERD_TYPE_IQ2_XS, FT_IQ2_XS, true},
    {"IQ2_XXS", HERD_TYPE_IQ2_XXS, FT_IQ2_XXS, true}, {"IQ1_M", HERD_TYPE_IQ1_M, FT_IQ1_M, true},
    {"IQ1_S", HERD_TYPE_IQ1_S, FT_IQ1_S, true},   {"TQ2_0", HERD_TYPE_TQ2_0, FT_TQ2_0, true},
    {"TQ1_0", HERD_TYPE_TQ1_0, FT_TQ1_0, true},
    /* herd's own uniform targets (llama-quantize reads Q3_K / Q4_K / Q5_K as Q3_K_M / Q4_K_M / Q5_K_M) */
    {"Q3_K", HERD_TYPE_Q3_K, FT_Q3_K_S, false},   {"Q4_K", HERD_TYPE_Q4_K, FT_Q4_K_S, false},
    {"Q5_K", HERD_TYPE_Q5_K, FT_Q5_K_S, false},
};

bool quant_plan_init(quant_plan *pl, const char *type_name, bool pure) {
    memset(pl, 0, sizeof *pl);
    for (size_t i = 0; i < sizeof k_targets / sizeof k_targets[0]; i++)
        if (strcasecmp(type_name, k_targets[i].name) == 0) {
            pl->base = k_targets[i].base;
            pl->file_type = k_targets[i].file_type;
            pl->mix = k_targets[i].mix && !pure;
            pl->pure = pure;
            pl->name = k_targets[i].name;
            return true;
        }
    return false;
}

const char *quant_plan_names(void) {
    return "Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q4_K_M, Q4_K_S, Q3_K_L, Q3_K_M, Q3_K_S, Q2_K, Q2_K_S, Q4_0, Q4_1, Q5_0, Q5_1, "
           "IQ4_NL, IQ4_XS, IQ3_M, IQ3_S, IQ3_XS, IQ3_XXS, IQ2_M, IQ2_S, IQ2_XS, IQ2_XXS, IQ1_M, IQ1_S, TQ2_0, TQ1_0, "
           "and herd's uniform Q3_K, Q4_K, Q5_K";
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

void quant_plan_count(quant_plan *pl, const char *name) {
    if (strstr(name, "attn_v.weight")) pl->n_attn_v++;
    if (strstr(name, "ffn_down")) pl->n_ffn_down++;
    if (strcmp(name, "output.weight") == 0) pl->has_output = true;
}

/* llama.cpp's choice of the layers that get more bits */
static bool use_more_bits(int64_t i, int64_t n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static bool ft_in(int ft, const int *list, int n) {
    for (int i = 0; i < n; i++)
        if (list[i] == ft) return true;
    return false;
}
#define FT_IN(ft, ...) ft_in(ft, (const int[]){__VA_ARGS__}, (int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int)))

/* llama_tensor_get_type_impl for a dense llama model (no experts, not Falcon): t is the base type */
static int mix_type(quant_plan *pl, const char *name, int64_t ne0, int t) {
    const int ft = pl->file_type;
    const bool gqa4 = pl->n_gqa >= 4;
    const bool is_70b = pl->n_attn_v == 80; /* llama.cpp's LLM_TYPE_70B: the only 80-layer llama */
    const bool low_iq = FT_IN(ft, FT_IQ2_XXS, FT_IQ2_XS, FT_IQ1_S, FT_IQ2_S, FT_IQ2_M, FT_IQ1_M);
    const bool iq2_sm = ft == FT_IQ2_S || ft == FT_IQ2_M;
    bool is_output = strcmp(name, "output.weight") == 0;
    bool is_embd = strcmp(name, "token_embd.weight") == 0;
    if (is_output || (is_embd && !pl->has_output)) {
        const kernel_type_ops *o = kernels_type_isa(t, KERNEL_ISA_REF);
        if (ne0 % o->block != 0) return HERD_TYPE_Q8_0;
        if (FT_IN(ft, FT_IQ2_XXS, FT_IQ2_XS, FT_IQ3_XXS, FT_IQ1_S, FT_IQ2_S, FT_IQ2_M, FT_IQ1_M)) return HERD_TYPE_Q5_K;
        return t != HERD_TYPE_Q8_0 ? HERD_TYPE_Q6_K : t;
    }
    if (is_embd) {
        if (FT_IN(ft, FT_IQ2_XXS, FT_IQ2_XS, FT_IQ1_S, FT_IQ1_M)) return HERD_TYPE_Q2_K;
        if (iq2_sm || ft == FT_IQ3_XXS) return HERD_TYPE_IQ3_S;
        if (ft == FT_TQ1_0 || ft == FT_TQ2_0) return HERD_TYPE_Q4_K;
        return t;
    }
    if (low_iq) {
        if (strstr(name, "attn_v.weight")) {
            t = gqa4 ? HERD_TYPE_Q4_K : iq2_sm ? HERD_TYPE_IQ3_S : HERD_TYPE_Q2_K;
            pl->i_attn_v++;
        } else if (strstr(name, "ffn_down")) {
            if (pl->i_ffn_down < pl->n_ffn_down / 8) t = iq2_sm ? HERD_TYPE_IQ3_S : HERD_TYPE_Q2_K;
            pl->i_ffn_down++;
        } else if (strstr(name, "attn_output.weight")) {
            if (ft == FT_IQ1_S || ft == FT_IQ1_M) t = HERD_TYPE_IQ2_XXS;
            else if (iq2_sm) t = HERD_TYPE_IQ3_S;
        }
        return t;
    }
    if (strstr(name, "attn_v.weight")) {
        int64_t i = pl->i_attn_v, n = pl->n_attn_v;
        if (ft == FT_Q2_K) t = gqa4 ? HERD_TYPE_Q4_K : HERD_TYPE_Q3_K;
        else if (ft == FT_Q2_K_S && gqa4) t = HERD_TYPE_Q4_K;
        else if (ft == FT_IQ3_XXS) t = gqa4 ? HERD_TYPE_Q4_K : !pl->has_imatrix ? HERD_TYPE_IQ3_S : HERD_TYPE_IQ3_XXS;
        else if ((ft == FT_IQ3_XS || ft == FT_IQ3_S) && gqa4) t = HERD_TYPE_Q4_K;
        else if (ft == FT_IQ3_M) t = HERD_TYPE_Q4_K;
        else if (ft == FT_Q3_K_M) t = i < 2 ? HERD_TYPE_Q5_K : HERD_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = HERD_TYPE_Q5_K;
        else if ((ft == FT_IQ4_NL || ft == FT_IQ4_XS) && gqa4) t = HERD_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(i, n)) t = HERD_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && i < 4) t = HERD_TYPE_Q5_K;
        if (is_70b && (t == HERD_TYPE_Q3_K || t == HERD_TYPE_Q4_K)) t = HERD_TYPE_Q5_K;
        pl->i_attn_v++;
    } else if (strstr(name, "attn_k.weight")) {
        if (ft == FT_IQ3_XS) t = HERD_TYPE_IQ3_XXS;
        else if (ft == FT_IQ3_XXS) t = HERD_TYPE_IQ2_S;
    } else if (strstr(name, "attn_q.weight")) {
        if (ft == FT_IQ3_XS) t = HERD_TYPE_IQ3_XXS;
        else if (ft == FT_IQ3_XXS) t = HERD_TYPE_IQ2_S;
    } else if (strstr(name, "attn_output.weight")) {
        if (ft == FT_Q2_K) t = HERD_TYPE_Q3_K;
        else if (ft == FT_IQ3_XXS) t = HERD_TYPE_IQ3_S;
        else if (ft == FT_Q3_K_M) t = HERD_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = HERD_TYPE_Q5_K;
        else if (ft == FT_IQ3_M) t = HERD_TYPE_Q4_K;
    } else if (strstr(name, "ffn_up") || strstr(name, "ffn_gate")) {
        int64_t *ip = strstr(name, "ffn_up") ? &pl->i_ffn_up : &pl->i_ffn_gate, n = pl->n_ffn_down;
        if (ft == FT_IQ3_XS && *ip >= n / 8 && *ip < 7 * n / 8) t = HERD_TYPE_IQ3_XXS;
        (*ip)++;
    } else if (strstr(name, "ffn_down")) {
        int64_t i = pl->i_ffn_down, n = pl->n_ffn_down;
        if (ft == FT_Q2_K) t = HERD_TYPE_Q3_K;
        else if (ft == FT_Q2_K_S) {
            if (i < n / 8) t = HERD_TYPE_Q4_K;
        } else if (ft == FT_IQ3_XXS && !pl->has_imatrix) t = i < n / 8 ? HERD_TYPE_Q4_K : HERD_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M) t = i < n / 16 ? HERD_TYPE_Q5_K : HERD_TYPE_Q4_K; /* (not Falcon) */
        else if (ft == FT_IQ3_M && i < n / 8) t = HERD_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L) t = HERD_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) {
            if (use_more_bits(i, n)) t = HERD_TYPE_Q6_K;
        } else if (i < n / 8 && (ft == FT_IQ4_NL || ft == FT_IQ4_XS) && !pl->has_imatrix) t = HERD_TYPE_Q5_K;
        else if (ft == FT_Q5_K_M && use_more_bits(i, n)) t = HERD_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && i < n / 8) t = HERD_TYPE_Q5_K;
        else if ((ft == FT_Q4_0 || ft == FT_Q5_0) && pl->has_imatrix && i < n / 8)
            t = ft == FT_Q4_0 ? HERD_TYPE_Q4_1 : HERD_TYPE_Q5_1;
        pl->i_ffn_down++;
    }
    return t;
}

/* llama.cpp's tensor_type_fallback: a row length that is not a multiple of the type's block */
static int fallback_type(int t, int64_t ne0, bool *fallback) {
    if (ne0 % kernels_type_isa(t, KERNEL_ISA_REF)->block == 0) return t;
    *fallback = true;
    int f;
    switch (t) {
    case HERD_TYPE_IQ1_S: case HERD_TYPE_IQ1_M: case HERD_TYPE_IQ2_XXS: case HERD_TYPE_IQ2_XS: case HERD_TYPE_IQ2_S:
    case HERD_TYPE_IQ3_XXS: case HERD_TYPE_IQ3_S: case HERD_TYPE_IQ4_XS: f = HERD_TYPE_IQ4_NL; break;
    case HERD_TYPE_Q2_K: case HERD_TYPE_Q3_K: case HERD_TYPE_TQ1_0: case HERD_TYPE_TQ2_0: f = HERD_TYPE_Q4_0; break;
    case HERD_TYPE_Q4_K: f = HERD_TYPE_Q5_0; break;
    case HERD_TYPE_Q5_K: f = HERD_TYPE_Q5_1; break;
    case HERD_TYPE_Q6_K: f = HERD_TYPE_Q8_0; break;
    default: f = t; break;
    }
    return ne0 % kernels_type_isa(f, KERNEL_ISA_REF)->block == 0 ? f : HERD_TYPE_F16;
}

int quant_plan_type(quant_plan *pl, const char *name, int n_dims, int64_t ne0, int type_in, bool *fallback) {
    *fallback = false;
    if (n_dims < 2 || !ends_with(name, "weight") || strstr(name, "_norm.weight")) return type_in;
    int t = pl->base;
    if (pl->mix) {
        t = mix_type(pl, name, ne0, t);
    } else if (!pl->pure) { /* herd's uniform targets: only the output rule */
        bool is_output = strcmp(name, "output.weight") == 0 ||
                         (!pl->has_output && strcmp(name, "token_embd.weight") == 0);
        if (is_output) t = ne0 % 256 != 0 ? HERD_TYPE_Q8_0 : HERD_TYPE_Q6_K;
    }
    return fallback_type(t, ne0, fallback);
}

bool quant_requires_imatrix(const char *name, int type, int file_type) {
    if (strstr(name, "token_embd.weight") || strcmp(name, "output.weight") == 0) return false;
    switch (type) {
    case HERD_TYPE_IQ2_XXS: case HERD_TYPE_IQ2_XS: case HERD_TYPE_IQ3_XXS: case HERD_TYPE_IQ1_S:
    case HERD_TYPE_IQ2_S: case HERD_TYPE_IQ1_M: return true;
    case HERD_TYPE_Q2_K: return file_type == FT_Q2_K_S; /* only a Q2_K_S file's Q2_K tensors */
    default: return false;
    }
}
