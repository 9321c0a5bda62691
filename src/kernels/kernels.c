/* Run-time ISA selection and the per-ISA kernel tables. */
#include "kernels.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../base/log.h"
#include "bf16gemm.h"
#include "herd.h"
#include "kernels_impl.h"

static kernel_type_ops g_ops[KERNEL_ISA_COUNT][KSLOT_COUNT];
static kernel_vec_ops g_vec[KERNEL_ISA_COUNT];
static bool g_supported[KERNEL_ISA_COUNT];
static kernel_isa g_active = KERNEL_ISA_REF;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_amx_supported, g_amx_active, g_amx_bf16;

static const char *k_isa_names[KERNEL_ISA_COUNT] = {"scalar", "avx2", "avx512"};

int kernels_type_slot(int type) {
    switch (type) {
    case HERD_TYPE_F32: return KSLOT_F32;
    case HERD_TYPE_F16: return KSLOT_F16;
    case HERD_TYPE_BF16: return KSLOT_BF16;
    case HERD_TYPE_Q8_0: return KSLOT_Q8_0;
    case HERD_TYPE_Q4_0: return KSLOT_Q4_0;
    case HERD_TYPE_Q8_K: return KSLOT_Q8_K;
    case HERD_TYPE_Q2_K: return KSLOT_Q2_K;
    case HERD_TYPE_Q3_K: return KSLOT_Q3_K;
    case HERD_TYPE_Q4_K: return KSLOT_Q4_K;
    case HERD_TYPE_Q5_K: return KSLOT_Q5_K;
    case HERD_TYPE_Q6_K: return KSLOT_Q6_K;
    case HERD_TYPE_FP8_E4M3: return KSLOT_FP8;
    case KERNEL_TYPE_FP8_ACT: return KSLOT_FP8_ACT;
    case HERD_TYPE_Q4_1: return KSLOT_Q4_1;
    case HERD_TYPE_Q5_0: return KSLOT_Q5_0;
    case HERD_TYPE_Q5_1: return KSLOT_Q5_1;
    case HERD_TYPE_Q8_1: return KSLOT_Q8_1;
    case HERD_TYPE_IQ4_NL: return KSLOT_IQ4_NL;
    case HERD_TYPE_IQ4_XS: return KSLOT_IQ4_XS;
    case HERD_TYPE_IQ2_XXS: return KSLOT_IQ2_XXS;
    case HERD_TYPE_IQ2_XS: return KSLOT_IQ2_XS;
    case HERD_TYPE_IQ2_S: return KSLOT_IQ2_S;
    case HERD_TYPE_IQ3_XXS: return KSLOT_IQ3_XXS;
    case HERD_TYPE_IQ3_S: return KSLOT_IQ3_S;
    case HERD_TYPE_IQ1_S: return KSLOT_IQ1_S;
    case HERD_TYPE_IQ1_M: return KSLOT_IQ1_M;
    case HERD_TYPE_TQ1_0: return KSLOT_TQ1_0;
    case HERD_TYPE_TQ2_0: return KSLOT_TQ2_0;
    case HERD_TYPE_Q1_0: return KSLOT_Q1_0;
    case HERD_TYPE_Q2_0: return KSLOT_Q2_0;
    default: return -1;
    }
}

/* CPUID + XGETBV: the CPU must have the instructions *and* the OS must save the registers.
 * (Read directly: compilers disagree on which names __builtin_cpu_supports knows.) */
static void detect(bool *avx2, bool *avx512) {
    unsigned a, b, c, d;
    *avx2 = *avx512 = false;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
    if (!osxsave || !avx) return;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    bool os_avx = (lo & 0x6) == 0x6, os_avx512 = (lo & 0xE6) == 0xE6;
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2_ = b & (1u << 5), f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30),
         vl = b & (1u << 31), vnni = c & (1u << 11);
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    bool bf16 = a1 & (1u << 5);
    (void)hi, (void)b1, (void)c1, (void)d1;
    *avx2 = os_avx && avx2_ && fma && f16c;
    *avx512 = *avx2 && os_avx512 && f && dq && bw && vl && vnni && bf16;
}

/* AMX-TILE (CPUID 7.0 EDX bit 24) and AMX-INT8 (bit 25), the OS saving XTILECFG and XTILEDATA (XCR0 bits
 * 17, 18), and Linux's permission for this process to use the tile data (ARCH_REQ_XCOMP_PERM for
 * XFEATURE_XTILEDATA; without it the first tile instruction faults). Idempotent; 0 from the kernel
 * means granted, to every thread of the process. */
/* AMX-TILE and AMX-INT8 (and whether AMX-BF16 too, into *bf16), the OS saving the tile state (XCR0), and
 * Linux (5.16+) handing this process the 8 KiB tile data: asked once here for every AMX kernel; a refusal
 * (older kernel, a seccomp filter) leaves AMX off. */
static bool detect_amx(bool *bf16) {
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    if (!(d & (1u << 24)) || !(d & (1u << 25))) return false;
    *bf16 = d & (1u << 22);
    __get_cpuid(1, &a, &b, &c, &d);
    if (!(c & (1u << 27))) return false; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & (3u << 17)) != (3u << 17)) return false;
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
}

static void init_once(void) {
    g_supported[KERNEL_ISA_REF] = true;
    detect(&g_supported[KERNEL_ISA_AVX2], &g_supported[KERNEL_ISA_AVX512]);
    kernels_fill_ref(g_ops[KERNEL_ISA_REF], &g_vec[KERNEL_ISA_REF]);
    kernels_fill_attn_ref(&g_vec[KERNEL_ISA_REF]);
    kernels_fill_sgemm_ref(&g_vec[KERNEL_ISA_REF]);
    kernels_fill_bf16gemm_ref(&g_vec[KERNEL_ISA_REF]);
    kernels_fill_optim_ref(&g_vec[KERNEL_ISA_REF]);
    kernels_fill_exp_ref(&g_vec[KERNEL_ISA_REF]);
    kernels_fill_ref_kquants(g_ops[KERNEL_ISA_REF]);
    kernels_fill_fp8_ref(g_ops[KERNEL_ISA_REF]);
    kernels_fill_ref_legacy(g_ops[KERNEL_ISA_REF]);
    kernels_fill_ref_iquants(g_ops[KERNEL_ISA_REF]);
    kernels_fill_ref_bitquants(g_ops[KERNEL_ISA_REF]);
    for (int isa = KERNEL_ISA_AVX2; isa < KERNEL_ISA_COUNT; isa++) {
        memcpy(g_ops[isa], g_ops[KERNEL_ISA_REF], sizeof g_ops[isa]);
        g_vec[isa] = g_vec[KERNEL_ISA_REF];
    }
    if (g_supported[KERNEL_ISA_AVX2]) {
        kernels_fill_avx2(g_ops[KERNEL_ISA_AVX2], &g_vec[KERNEL_ISA_AVX2]);
        kernels_fill_avx2_kquants(g_ops[KERNEL_ISA_AVX2]);
        kernels_fill_fp8_avx2(g_ops[KERNEL_ISA_AVX2]);
        kernels_fill_avx2_legacy(g_ops[KERNEL_ISA_AVX2]); /* AVX-512 keeps these but iq4_xs */
        kernels_fill_avx2_iquants(g_ops[KERNEL_ISA_AVX2]);
        kernels_fill_avx2_bitquants(g_ops[KERNEL_ISA_AVX2]);
        kernels_fill_attn_avx2(&g_vec[KERNEL_ISA_AVX2]);
    }
    if (g_supported[KERNEL_ISA_AVX512]) {
        /* AVX-512 builds on the AVX2 table for whatever it does not replace */
        memcpy(g_ops[KERNEL_ISA_AVX512], g_ops[KERNEL_ISA_AVX2], sizeof g_ops[KERNEL_ISA_AVX512]);
        g_vec[KERNEL_ISA_AVX512] = g_vec[KERNEL_ISA_AVX2];
        kernels_fill_avx512(g_ops[KERNEL_ISA_AVX512], &g_vec[KERNEL_ISA_AVX512]);
        kernels_fill_avx512_kquants(g_ops[KERNEL_ISA_AVX512]);
        kernels_fill_fp8_avx512(g_ops[KERNEL_ISA_AVX512]);
        kernels_fill_gemm_avx512(g_ops[KERNEL_ISA_AVX512]);
        kernels_fill_avx512_iquants(g_ops[KERNEL_ISA_AVX512]);
        kernels_fill_avx512_legacy(g_ops[KERNEL_ISA_AVX512]);
        kernels_fill_attn_avx512(&g_vec[KERNEL_ISA_AVX512]);
        kernels_fill_sgemm_avx512(&g_vec[KERNEL_ISA_AVX512]);
        kernels_fill_bf16gemm_avx512(&g_vec[KERNEL_ISA_AVX512]);
        kernels_fill_optim_avx512(&g_vec[KERNEL_ISA_AVX512]);
        kernels_fill_exp_avx512(&g_vec[KERNEL_ISA_AVX512]);
    }
    g_active = KERNEL_ISA_REF;
    for (int isa = KERNEL_ISA_COUNT - 1; isa >= 0; isa--)
        if (g_supported[isa]) {
            g_active = (kernel_isa)isa;
            break;
        }
    const char *force = getenv("HERD_ISA");
    g_amx_supported = g_supported[KERNEL_ISA_AVX512] && detect_amx(&g_amx_bf16);
    g_amx_bf16 = g_amx_bf16 && g_amx_supported;
    g_amx_active = g_amx_supported && g_active == KERNEL_ISA_AVX512 && !(force && *force);
    /* AMX tiles on top of AVX-512 (int8 prompt-processing gemms; training's bf16 products), unless HERD_ISA
     * forces an ISA (then the lower paths) */
    if (g_amx_active) kernels_fill_amx(g_ops[KERNEL_ISA_AVX512]);
    if (g_amx_active && g_amx_bf16) g_vec[KERNEL_ISA_AVX512].gemm_bf16 = gemm_bf16_amx;
    if (force && *force) {
        for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++)
            if (strcmp(force, k_isa_names[isa]) == 0 || (isa == 0 && strcmp(force, "ref") == 0)) {
                if (g_supported[isa] && isa <= (int)g_active) g_active = (kernel_isa)isa;
                else herd_log(0, "HERD_ISA=%s is not available on this CPU; using %s", force, k_isa_names[g_active]);
            }
    }
}

void kernels_init(void) {
    pthread_once(&g_once, init_once);
}

bool kernels_amx_supported(void) {
    kernels_init();
    return g_amx_supported;
}

bool kernels_amx_bf16_supported(void) {
    kernels_init();
    return g_amx_bf16;
}

bool kernels_amx_active(void) {
    kernels_init();
    return g_amx_active;
}

kernel_isa kernels_active_isa(void) {
    kernels_init();
    return g_active;
}

const char *kernels_isa_name(kernel_isa isa) {
    return isa >= 0 && isa < KERNEL_ISA_COUNT ? k_isa_names[isa] : "unknown";
}

const char *herd_cpu_backend(void) {
    return kernels_isa_name(kernels_active_isa());
}

bool kernels_isa_supported(kernel_isa isa) {
    kernels_init();
    return isa >= 0 && isa < KERNEL_ISA_COUNT && g_supported[isa];
}

const kernel_type_ops *kernels_type_isa(int type, kernel_isa isa) {
    kernels_init();
    int s = kernels_type_slot(type);
    if (s < 0 || isa < 0 || isa >= KERNEL_ISA_COUNT || !g_supported[isa]) return NULL;
    return &g_ops[isa][s];
}

const kernel_vec_ops *kernels_vec_isa(kernel_isa isa) {
    kernels_init();
    if (isa < 0 || isa >= KERNEL_ISA_COUNT || !g_supported[isa]) return NULL;
    return &g_vec[isa];
}

const kernel_type_ops *kernels_type(int type) {
    return kernels_type_isa(type, kernels_active_isa());
}

const kernel_vec_ops *kernels_vec(void) {
    return kernels_vec_isa(kernels_active_isa());
}

int64_t kernels_row_bytes(int type, int64_t n) {
    const kernel_type_ops *o = kernels_type_isa(type, KERNEL_ISA_REF);
    HERD_ASSERT(o && n % o->block == 0);
    return n / o->block * o->block_bytes + o->row_extra;
}

int64_t kernels_attn_scratch_floats(int64_t head_dim, int64_t nq) {
    /* the AVX-512 tile's: a transposed K block and a V block [B][head_dim], and per query the block's
     * weights [B], its running sum as 16 partial sums, its running max and rescale factor; the
     * reference uses less */
    const int64_t B = KERNEL_ATTN_BLOCK;
    return 2 * B * head_dim + nq * (B + 18) + B +
           /* quantized/bf16 K: each query as K's vec_dot type (q8_0 or bf16 rows fit in head_dim floats);
            * the generic code's V row */
           nq * head_dim + head_dim;
}
