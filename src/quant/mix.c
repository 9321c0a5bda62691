/* Which tensor gets which type: the rules are stated in quant.h. */
#include <string.h>
#include <strings.h>

#include "../kernels/kernels.h"
#include "herd.h"
#include "quant.h"

static const struct {
    const char *name;
    int base, file_type;
    bool mix_m;
} k_targets[] = {
    {"Q8_0", HERD_TYPE_Q8_0, 7, false},    {"Q4_0", HERD_TYPE_Q4_0, 2, false},
    {"Q4_K", HERD_TYPE_Q4_K, 14, false},   {"Q5_K", HERD_TYPE_Q5_K, 16, false},
    {"Q6_K", HERD_TYPE_Q6_K, 18, false},   {"Q4_K_M", HERD_TYPE_Q4_K, 15, true},
    {"Q5_K_M", HERD_TYPE_Q5_K, 17, true},
    {"Q4_1", HERD_TYPE_Q4_1, 3, false},    {"Q5_0", HERD_TYPE_Q5_0, 8, false},
    {"Q5_1", HERD_TYPE_Q5_1, 9, false},    {"IQ4_NL", HERD_TYPE_IQ4_NL, 25, false},
    {"IQ4_XS", HERD_TYPE_IQ4_XS, 30, false},
    {"Q2_K", HERD_TYPE_Q2_K, 10, false},   {"Q3_K", HERD_TYPE_Q3_K, 11, false},
};

bool quant_plan_init(quant_plan *pl, const char *type_name, bool pure) {
    memset(pl, 0, sizeof *pl);
    for (size_t i = 0; i < sizeof k_targets / sizeof k_targets[0]; i++)
        if (strcasecmp(type_name, k_targets[i].name) == 0) {
            pl->base = k_targets[i].base;
            pl->file_type = k_targets[i].file_type;
            pl->mix_m = k_targets[i].mix_m && !pure;
            pl->pure = pure;
            pl->name = k_targets[i].name;
            return true;
        }
    return false;
}

const char *quant_plan_names(void) {
    return "Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q4_K_M, Q5_K_M, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K, Q3_K";
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

/* llama.cpp's choice of the layers that get more bits in the _M mixes */
static bool use_more_bits(int64_t i, int64_t n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

int quant_plan_type(quant_plan *pl, const char *name, int n_dims, int64_t ne0, int type_in, bool *fallback) {
    *fallback = false;
    if (n_dims < 2 || !ends_with(name, "weight") || strstr(name, "_norm.weight")) return type_in;
    bool is_output = strcmp(name, "output.weight") == 0 ||
                     (!pl->has_output && strcmp(name, "token_embd.weight") == 0);
    int t = pl->base;
    if (!pl->pure && is_output) {
        t = pl->base == HERD_TYPE_Q8_0 || ne0 % 256 != 0 ? HERD_TYPE_Q8_0 : HERD_TYPE_Q6_K;
    } else if (strstr(name, "attn_v.weight")) {
        bool iq4 = pl->base == HERD_TYPE_IQ4_NL || pl->base == HERD_TYPE_IQ4_XS;
        if (!pl->pure && iq4 && pl->n_gqa >= 4) t = HERD_TYPE_Q5_K; /* llama.cpp's IQ4_NL / IQ4_XS rule */
        else if (pl->mix_m && use_more_bits(pl->i_attn_v, pl->n_attn_v)) t = HERD_TYPE_Q6_K;
        else if (pl->mix_m && pl->n_attn_v == 80 && t == HERD_TYPE_Q4_K) t = HERD_TYPE_Q5_K; /* 70B */
        pl->i_attn_v++;
    } else if (strstr(name, "ffn_down")) {
        if (pl->mix_m && use_more_bits(pl->i_ffn_down, pl->n_ffn_down)) t = HERD_TYPE_Q6_K;
        /* IQ4_NL / IQ4_XS without an importance matrix: the first eighth of the layers' ffn_down Q5_K */
        if (!pl->pure && !pl->has_imatrix && (pl->base == HERD_TYPE_IQ4_NL || pl->base == HERD_TYPE_IQ4_XS) &&
            pl->i_ffn_down < pl->n_ffn_down / 8)
            t = HERD_TYPE_Q5_K;
        /* Q4_0 / Q5_0 with one: the first eighth Q4_1 / Q5_1 (llama.cpp's guard against their ffn_down going wrong) */
        if (!pl->pure && pl->has_imatrix && (pl->base == HERD_TYPE_Q4_0 || pl->base == HERD_TYPE_Q5_0) &&
            pl->i_ffn_down < pl->n_ffn_down / 8)
            t = pl->base == HERD_TYPE_Q4_0 ? HERD_TYPE_Q4_1 : HERD_TYPE_Q5_1;
        pl->i_ffn_down++;
    }
    const kernel_type_ops *o = kernels_type_isa(t, KERNEL_ISA_REF);
    if (ne0 % o->block != 0) {
        *fallback = true;
        t = ne0 % 32 == 0 ? HERD_TYPE_Q8_0 : HERD_TYPE_F16;
    }
    return t;
}

bool quant_requires_imatrix(const char *name, int type) {
    if (strstr(name, "token_embd.weight") || strcmp(name, "output.weight") == 0) return false;
    /* ggml's type ids: IQ2_XXS 16, IQ2_XS 17, IQ3_XXS 18, IQ1_S 19, IQ2_S 22, IQ1_M 29 */
    switch (type) {
    case 16: case 17: case 18: case 19: case 22: case 29: return true;
    default: return false;
    }
}
