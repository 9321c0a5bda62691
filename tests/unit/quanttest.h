/* Checks shared by the weight-type kernel tests (test_legacy, test_iquants, test_bitquants): include after
 * testutil.h and the kernel headers. */
#ifndef HERD_QUANTTEST_H
#define HERD_QUANTTEST_H

#include <inttypes.h>
#include <stdbool.h>

/* dequantization and dot of `type` on `isa` against the scalar reference, bit for bit, on rows of width n
 * from random_blocks; pass 1 puts large entries in the activations (q8 values of +-127 meet the largest
 * grid values). */
static inline void qt_check_isa(kernel_isa isa, int type, int64_t n, void (*random_blocks)(int type, void *w, int64_t nb)) {
    const kernel_type_ops *r = kernels_type_isa(type, KERNEL_ISA_REF), *o = kernels_type_isa(type, isa);
    CHECK(o && o->vec_dot_type == r->vec_dot_type, "%s: %s has no kernels", herd_type_name(type), kernels_isa_name(isa));
    if (!o) return;
    const kernel_type_ops *xr = kernels_type_isa(r->vec_dot_type, KERNEL_ISA_REF);
    int64_t wb = kernels_row_bytes(type, n), xb = kernels_row_bytes(r->vec_dot_type, n);
    uint8_t *w = malloc((size_t)wb), *xq = malloc((size_t)xb);
    float *x = malloc((size_t)n * 4), *y1 = malloc((size_t)n * 4), *y2 = malloc((size_t)n * 4);
    for (int pass = 0; pass < 2; pass++) {
        random_blocks(type, w, n / r->block);
        r->to_f32(w, y1, n);
        o->to_f32(w, y2, n);
        CHECK(memcmp(y1, y2, (size_t)n * 4) == 0, "%s %s to_f32 n=%" PRId64 " differs", kernels_isa_name(isa), herd_type_name(type), n);
        for (int64_t i = 0; i < n; i++) x[i] = tu_sym() * (pass && i % 5 == 0 ? 8.0f : 1.0f);
        xr->from_f32(x, xq, n);
        float a, b;
        r->dot(n, &a, w, xq);
        o->dot(n, &b, w, xq);
        CHECK(memcmp(&a, &b, 4) == 0, "%s %s dot n=%" PRId64 ": %.9g, reference %.9g", kernels_isa_name(isa), herd_type_name(type), n, b, a);
    }
    free(w), free(xq), free(x), free(y1), free(y2);
}

/* gemm of `type` on `isa`: every output bit-identical to the dot against the same packed activations, for
 * 1 .. 19 tokens (partial tiles of 8), 5 rows of width n filled by random_blocks (the test's generator of
 * valid blocks). required: a missing gemm is a failure (prompt processing must not fall back to one dot per
 * token), else the check is skipped. */
static inline void qt_check_gemm(kernel_isa isa, int type, int64_t n, bool required,
                          void (*random_blocks)(int type, void *w, int64_t nb)) {
    const kernel_type_ops *o = kernels_type_isa(type, isa), *xo = kernels_type_isa(o->vec_dot_type, isa);
    if (required) CHECK(o->gemm != NULL, "%s %s has no gemm", kernels_isa_name(isa), herd_type_name(type));
    if (!o->gemm) return;
    const int64_t nr = 5, nt = 19, wb = kernels_row_bytes(type, n), xb = kernels_row_bytes(o->vec_dot_type, n);
    int64_t xpb = o->gemm_x_bytes(n);
    CHECK(xpb > 0, "%s %s gemm_x_bytes(%" PRId64 ") = %" PRId64, kernels_isa_name(isa), herd_type_name(type), n, xpb);
    if (xpb <= 0) return;
    uint8_t *w = malloc((size_t)(wb * nr)), *xq = malloc((size_t)xb), *xp = malloc((size_t)(xpb * nt));
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)(nt * nr) * 4), *want = malloc((size_t)(nt * nr) * 4);
    random_blocks(type, w, nr * (n / o->block));
    for (int64_t t = 0; t < nt; t++) {
        for (int64_t i = 0; i < n; i++) x[i] = tu_sym();
        xo->from_f32(x, xq, n);
        o->gemm_pack_x(n, xq, xp + t * xpb);
        for (int64_t r = 0; r < nr; r++) o->dot(n, &want[t * nr + r], w + r * wb, xq);
    }
    for (int64_t k = 1; k <= nt; k += 6) {
        memset(y, 0, (size_t)(nt * nr) * 4);
        o->gemm(n, nr, k, w, wb, xp, xpb, y, nr);
        CHECK(memcmp(y, want, (size_t)(k * nr) * 4) == 0, "%s %s gemm n=%" PRId64 " nt=%" PRId64 " differs from dot",
              kernels_isa_name(isa), herd_type_name(type), n, k);
    }
    free(w), free(xq), free(xp), free(x), free(y), free(want);
}

#endif
