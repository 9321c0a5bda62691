/* Internal to src/kernels: how the per-ISA tables are assembled.
 * Each ISA's table starts as a copy of the reference table; kernels_fill_<isa>() then replaces the
 * entries it has faster code for. Type slots are indexed by kernels_type_slot(). */
#ifndef HERD_KERNELS_IMPL_H
#define HERD_KERNELS_IMPL_H

#include "kernels.h"

enum {
    KSLOT_F32, KSLOT_F16, KSLOT_BF16, KSLOT_Q8_0, KSLOT_Q4_0,
    KSLOT_Q8_K, KSLOT_Q2_K, KSLOT_Q3_K, KSLOT_Q4_K, KSLOT_Q5_K, KSLOT_Q6_K, /* kquants.h */
    KSLOT_FP8, KSLOT_FP8_ACT, /* fp8.h (herd extension) */
    KSLOT_Q4_1, KSLOT_Q5_0, KSLOT_Q5_1, KSLOT_Q8_1, KSLOT_IQ4_NL, KSLOT_IQ4_XS, /* legacy.h */
    KSLOT_IQ2_XXS, KSLOT_IQ2_XS, KSLOT_IQ2_S, KSLOT_IQ3_XXS, KSLOT_IQ3_S, /* iquants.h */
    KSLOT_IQ1_S, KSLOT_IQ1_M, KSLOT_TQ1_0, KSLOT_TQ2_0,
    KSLOT_Q1_0, KSLOT_Q2_0, /* bitquants.h */
    KSLOT_COUNT
};

int kernels_type_slot(int type); /* -1 for types without kernels */

void kernels_fill_ref(kernel_type_ops ops[KSLOT_COUNT], kernel_vec_ops *vec);
void kernels_fill_avx2(kernel_type_ops ops[KSLOT_COUNT], kernel_vec_ops *vec);   /* x86/kernels_avx2.c */
void kernels_fill_avx512(kernel_type_ops ops[KSLOT_COUNT], kernel_vec_ops *vec); /* x86/kernels_avx512.c */
/* The K-quant slots, called right after the fill of the same ISA. */
void kernels_fill_ref_kquants(kernel_type_ops ops[KSLOT_COUNT]);    /* ref/kquants_ref.c */
void kernels_fill_avx2_kquants(kernel_type_ops ops[KSLOT_COUNT]);   /* x86/kquants_avx2.c */
void kernels_fill_avx512_kquants(kernel_type_ops ops[KSLOT_COUNT]); /* x86/kquants_avx512.c */
/* The FP8 slots (herd extension), likewise. */
void kernels_fill_fp8_ref(kernel_type_ops ops[KSLOT_COUNT]);    /* ref/fp8_ref.c */
void kernels_fill_fp8_avx2(kernel_type_ops ops[KSLOT_COUNT]);   /* x86/fp8_avx2.c */
void kernels_fill_fp8_avx512(kernel_type_ops ops[KSLOT_COUNT]); /* x86/fp8_avx512.c */
/* The legacy and i-quant slots (legacy.h), likewise. */
void kernels_fill_ref_legacy(kernel_type_ops ops[KSLOT_COUNT]);  /* ref/legacy_ref.c */
void kernels_fill_avx2_legacy(kernel_type_ops ops[KSLOT_COUNT]); /* x86/legacy_avx2.c */
void kernels_fill_avx512_legacy(kernel_type_ops ops[KSLOT_COUNT]); /* x86/legacy_avx512.c (iq4_xs) */
/* The low-bit i-quant and ternary slots (iquants.h), likewise. */
void kernels_fill_ref_iquants(kernel_type_ops ops[KSLOT_COUNT]);    /* ref/iquants_ref.c */
void kernels_fill_avx2_iquants(kernel_type_ops ops[KSLOT_COUNT]);   /* x86/iquants_avx2.c */
void kernels_fill_avx512_iquants(kernel_type_ops ops[KSLOT_COUNT]); /* x86/iquants_avx512.c */
/* q1_0 and q2_0 (bitquants.h), likewise; AVX-512 keeps the AVX2 variants. */
void kernels_fill_ref_bitquants(kernel_type_ops ops[KSLOT_COUNT]);  /* ref/bitquants_ref.c */
void kernels_fill_avx2_bitquants(kernel_type_ops ops[KSLOT_COUNT]); /* x86/bitquants_avx2.c */
/* Attention (vec->attn) as the reference writes it, on the per-row primitives of isa's table: one query at a
 * time, a dot per key and an axpy per value. With the reference's primitives it is the scalar truth;
 * with an ISA's it is that ISA's variant (ref/attn_ref.c). */
void kernels_attn_generic(kernel_isa isa, const kernel_attn_kv *kv, int64_t nq, const float *const *q,
                          const int64_t *n_kv, float *const *o, float *scratch);
void kernels_fill_attn_ref(kernel_vec_ops *vec);    /* ref/attn_ref.c */
void kernels_fill_attn_avx2(kernel_vec_ops *vec);   /* x86/kernels_avx2.c */
void kernels_fill_attn_avx512(kernel_vec_ops *vec); /* x86/attn_avx512.c */
/* vec->read_sum of the reference, also the SIMD variants' tail */
uint64_t kernels_read_sum_ref(const void *p, int64_t n);
int64_t kernels_argmax_f32_ref(int64_t n, const float *x);
/* The batched dots (gemm fields), likewise; the ISAs without them keep NULL. */
void kernels_fill_gemm_avx512(kernel_type_ops ops[KSLOT_COUNT]); /* x86/gemm_avx512.c */

/* vec->gemm_f32 (training's F32 products) */
void kernels_fill_sgemm_ref(kernel_vec_ops *vec);    /* ref/sgemm_ref.c */
void kernels_fill_sgemm_avx512(kernel_vec_ops *vec); /* x86/sgemm_avx512.c */
/* vec->gemm_bf16 (training's frozen-weight products in bf16; the AMX variant: bf16gemm.h) */
void kernels_fill_bf16gemm_ref(kernel_vec_ops *vec);    /* ref/bf16gemm_ref.c */
void kernels_fill_bf16gemm_avx512(kernel_vec_ops *vec); /* x86/bf16gemm_avx512.c */
void kernels_fill_optim_ref(kernel_vec_ops *vec);       /* ref/optim_ref.c */
void kernels_fill_optim_avx512(kernel_vec_ops *vec);    /* x86/optim_avx512.c */
void kernels_fill_exp_ref(kernel_vec_ops *vec);         /* ref/exp_ref.c */
void kernels_fill_exp_avx512(kernel_vec_ops *vec);      /* x86/exp_avx512.c */

/* AMX-INT8 (x86/gemm_amx.c): prompt processing on the packed q8_0 / q4_0 layout (packed.h), bit for bit the
 * VNNI kernels' results. supported: the CPU has AMX-TILE and AMX-INT8 with AVX-512, the OS saves the tile
 * state and granted it to this process (arch_prctl, asked once at init). active: supported, AVX-512 is the
 * active ISA and HERD_ISA is not set (any HERD_ISA, avx512 included, keeps the VNNI kernels). */
bool kernels_amx_supported(void);
/* AMX-BF16 too (training's gemm_bf16_amx, bf16gemm.h), whether or not HERD_ISA turned AMX off */
bool kernels_amx_bf16_supported(void);
bool kernels_amx_active(void);
void pk_gemm_q8_0_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy);
/* The AMX gemm of the kernel table's types (iq4_xs), over the AVX-512 table when AMX is active; the gemm it
 * replaces stays its fallback (few tokens, tails). */
void kernels_fill_amx(kernel_type_ops ops[KSLOT_COUNT]);
void pk_gemm_q4_0_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy);
void pk_gemm_q5_0_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy);
void pk_gemm_iq4_nl_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                        int64_t ldy);
void pk_gemm_q4_1_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy);
void pk_gemm_q5_1_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy);
/* the packed q4_K / q5_K / q6_K / iq4_xs / iq3_s / iq3_xxs layouts likewise (from 16 tokens; fewer, and
 * the tail, go to the VNNI kernels) */
void pk_gemm_q4_K_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy);
void pk_gemm_q5_K_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy);
void pk_gemm_q6_K_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                      int64_t ldy);
void pk_gemm_iq4_xs_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                        int64_t ldy);
void pk_gemm_iq3_s_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                       int64_t ldy);
void pk_gemm_iq3_xxs_amx(int64_t n, int64_t ng, int64_t nt, const void *wp, const void *xp, int64_t xs, float *y,
                         int64_t ldy);

#endif
