/* --base-compute int8 (src/train/gemm.h, TRAIN_BASE_INT8): the products with a frozen weight as inference
 * computes them.
 * 1. The transposed Q8_0 copy: row i, block b is the Q8_0 quantization of the dequantized weight's rows
 *    32 b .. 32 b + 31 at column i (its bytes, or its packed bytes, against the test's own construction,
 *    cut into parts of at most TRAIN_T_KMAX columns), and its values lie
 *    within a q8_0 step of the weight's: |W^T'[i][o] - W[o][i]| <= (1/2 + 127 * 2^-11) * amax / 127 per
 *    block (rounding to the nearest step, plus the scale's rounding to fp16).
 * 2. x W^T is model/matmul.h's matmul bit for bit (a weight packed or not), and dy W adds matmul(part,
 *    dy's columns of it) to dx part after part, bit for bit; both with 1 and 3 threads alike (batches below
 *    and above the Q8_0 gemm's 8 tokens).
 * 3. What they compute: y against the double sum of the converted operands (x through the weight's
 *    vec_dot type: q8_0 for Q8_0 and Q4_0, bf16 for BF16) within the float rounding of the block sums
 *    (2 (n_blocks + 2) u S, S the sum of |products|), and dx likewise with dy in q8_0 and the copy's values.
 * 4. A weight whose n_out is not a multiple of 32 has no copy: its dy W is the F32 mode's, bit for bit;
 *    and an F32 (adapter) weight is F32 in int8 mode. */
#include <float.h>

#include "../../src/kernels/kernels.h"
#include "../../src/kernels/packed.h"
#include "../../src/model/matmul.h"
#include "../../src/train/gemm.h"
#include "testutil.h"

#define U 0x1p-24

/* x[n] through type t's conversion and back */
static void round_trip(int type, const float *x, float *out, int64_t n) {
    const kernel_type_ops *t = kernels_type(type);
    uint8_t *q = malloc((size_t)kernels_row_bytes(type, n));
    t->from_f32(x, q, n);
    t->to_f32(q, out, n);
    free(q);
}

static void check(int type, int64_t n_in, int64_t n_out, int64_t T, bool pack) {
    const kernel_type_ops *t = kernels_type(type), *q8 = kernels_type(HERD_TYPE_Q8_0);
    const int64_t row_bytes = kernels_row_bytes(type, n_in);
    float *wf = malloc((size_t)(n_out * n_in) * 4), *x = malloc((size_t)(T * n_in) * 4), *dy = malloc((size_t)(T * n_out) * 4),
          *dx0 = malloc((size_t)(T * n_in) * 4);
    uint8_t *wq = malloc((size_t)(n_out * row_bytes));
    for (int64_t i = 0; i < n_out * n_in; i++) wf[i] = tu_sym() * 0.1f * (tu_u64() % 7 == 0 ? 8 : 1);
    for (int64_t r = 0; r < n_out; r++) { /* the weight as stored, and as herd reads it back */
        t->from_f32(wf + r * n_in, wq + r * row_bytes, n_in);
        t->to_f32(wq + r * row_bytes, wf + r * n_in, n_in);
    }
    for (int64_t i = 0; i < T * n_in; i++) x[i] = tu_sym(), dx0[i] = tu_sym();
    for (int64_t i = 0; i < T * n_out; i++) dy[i] = tu_sym() * (tu_u64() % 5 == 0 ? 0.01f : 1);
    weight wt = {.type = type, .n_in = n_in, .n_out = n_out, .row_bytes = row_bytes, .data = wq, .name = "w"};
    uint8_t *wp = NULL; /* the weight packed as a model's are at load, where the ISA has the kernel */
    if (pack && pk_gemm_for(type, n_in, n_out)) {
        wp = malloc((size_t)pk_weight_bytes(type, n_in, n_out));
        for (int64_t gi = 0; gi < n_out / PK_ROWS; gi++)
            pk_pack_w(type, n_in, wq + gi * PK_ROWS * row_bytes, row_bytes, wp + gi * pk_group_bytes(type, n_in));
        wt.packed = wp;
    }
    train_w w = {.q = &wt, .n_in = n_in, .n_out = n_out}, wF = {.f = wf, .n_in = n_in, .n_out = n_out};
    const bool has_t = n_out % 32 == 0;

    float *y[2], *dx[2], *yF = malloc((size_t)(T * n_out) * 4), *yr = malloc((size_t)(T * n_out) * 4),
                          *dxr = malloc((size_t)(T * n_in) * 4);
    uint8_t *tref = NULL;
    const int64_t trb = has_t ? kernels_row_bytes(HERD_TYPE_Q8_0, n_out) : 0;
    for (int th = 0; th < 2; th++) {
        thread_pool *pool = pool_new(th ? 3 : 1);
        train_gemm *g = train_gemm_new(pool);
        y[th] = malloc((size_t)(T * n_out) * 4), dx[th] = malloc((size_t)(T * n_in) * 4);
        memcpy(dx[th], dx0, (size_t)(T * n_in) * 4);
        train_gemm_set_base(g, TRAIN_BASE_INT8);
        train_gemm_xwt(g, &w, x, n_in, T, y[th], n_out);
        train_gemm_dyw(g, &w, dy, n_out, T, dx[th], n_in);
        const train_tcopy *tc = train_gemm_transposed(g, &wt);
        CHECK((tc != NULL) == has_t, "type %d n_out %lld: a transposed copy %s", type, (long long)n_out, tc ? "made" : "missing");
        if (th == 0) {
            /* 1. the copy, against the test's construction: W^T whole (tref), then cut into parts */
            if (tc) {
                tref = malloc((size_t)(trb * n_in));
                for (int64_t i = 0; i < n_in; i++)
                    for (int64_t b = 0; b < n_out / 32; b++) {
                        float col[32];
                        for (int r = 0; r < 32; r++) col[r] = wf[(32 * b + r) * n_in + i];
                        q8->from_f32(col, tref + i * trb + b * q8->block_bytes, 32);
                    }
                const int64_t np = (n_out + TRAIN_T_KMAX - 1) / TRAIN_T_KMAX;
                int64_t k_sum = 0;
                CHECK(tc->n_parts == np, "type %d: %d parts, not %lld", type, tc->n_parts, (long long)np);
                for (int p = 0; p < tc->n_parts && p < np; p++) {
                    const weight *pt = &tc->parts[p];
                    const int64_t rb = pt->row_bytes;
                    uint8_t *rows = malloc((size_t)(rb * n_in));
                    for (int64_t i = 0; i < n_in; i++) memcpy(rows + i * rb, tref + i * trb + tc->k0[p] / 32 * q8->block_bytes, (size_t)rb);
                    bool same = pt->type == HERD_TYPE_Q8_0 && pt->n_out == n_in && tc->k0[p] == k_sum && pt->n_in % 32 == 0 &&
                                pt->n_in <= TRAIN_T_KMAX && rb == kernels_row_bytes(HERD_TYPE_Q8_0, pt->n_in);
                    if (same && pt->packed) {
                        const int64_t gb = pk_group_bytes(HERD_TYPE_Q8_0, pt->n_in);
                        uint8_t *pk = malloc((size_t)gb);
                        for (int64_t gi = 0; gi < n_in / PK_ROWS && same; gi++) {
                            pk_pack_w(HERD_TYPE_Q8_0, pt->n_in, rows + gi * PK_ROWS * rb, rb, pk);
                            same = !memcmp(pk, pt->packed + gi * gb, (size_t)gb);
                        }
                        free(pk);
                    } else if (same) {
                        same = !memcmp(pt->data, rows, (size_t)(rb * n_in));
                    }
                    CHECK(same, "type %d: part %d of the transposed copy is not W^T's columns in Q8_0", type, p);
                    k_sum += pt->n_in;
                    free(rows);
                }
                CHECK(k_sum == n_out, "type %d: the parts cover %lld of %lld columns", type, (long long)k_sum, (long long)n_out);
                float *row = malloc((size_t)n_out * 4);
                double worst = 0;
                for (int64_t i = 0; i < n_in; i++) {
                    q8->to_f32(tref + i * trb, row, n_out);
                    for (int64_t b = 0; b < n_out / 32; b++) {
                        float amax = 0;
                        for (int r = 0; r < 32; r++) amax = fmaxf(amax, fabsf(wf[(32 * b + r) * n_in + i]));
                        const double bound = (0.5 + 127 * 0x1p-11) * amax / 127 + 1e-30;
                        for (int r = 0; r < 32; r++) {
                            const double d = fabs(row[32 * b + r] - wf[(32 * b + r) * n_in + i]) / bound;
                            if (d > worst) worst = d;
                        }
                    }
                }
                free(row);
                printf("type %d %lldx%lld%s: the Q8_0 copy (%d part(s), %s) within %.3f of its bound\n", type, (long long)n_out,
                       (long long)n_in, wp ? " packed" : "", tc->n_parts, tc->parts[0].packed ? "packed" : "rows", worst);
                CHECK(worst <= 1, "type %d: the transposed copy's values off the weight's", type);
            }
            /* 2. the inference's matmul, bit for bit */
            int64_t xb = matmul_scratch_bytes(type, n_in, T), tb = has_t ? matmul_scratch_bytes(HERD_TYPE_Q8_0, TRAIN_T_KMAX, T) : 0;
            void *xq = malloc((size_t)(xb > tb ? xb : tb));
            matmul(pool, &wt, x, n_in, T, yr, n_out, xq);
            CHECK(!memcmp(y[0], yr, (size_t)(T * n_out) * 4), "type %d T %lld: int8 x W^T is not the matmul", type, (long long)T);
            if (tc) { /* each part as the test cut it (packed as the copy is), added in order */
                memcpy(dxr, dx0, (size_t)(T * n_in) * 4);
                float *part = malloc((size_t)(T * n_in) * 4);
                for (int p = 0; p < tc->n_parts; p++) {
                    const int64_t k = tc->parts[p].n_in, rb = kernels_row_bytes(HERD_TYPE_Q8_0, k), gb = pk_group_bytes(HERD_TYPE_Q8_0, k);
                    uint8_t *rows = malloc((size_t)(rb * n_in)), *pk = NULL;
                    for (int64_t i = 0; i < n_in; i++) memcpy(rows + i * rb, tref + i * trb + tc->k0[p] / 32 * q8->block_bytes, (size_t)rb);
                    if (tc->parts[p].packed) {
                        pk = malloc((size_t)(gb * (n_in / PK_ROWS)));
                        for (int64_t gi = 0; gi < n_in / PK_ROWS; gi++) pk_pack_w(HERD_TYPE_Q8_0, k, rows + gi * PK_ROWS * rb, rb, pk + gi * gb);
                    }
                    const weight wref = {.type = HERD_TYPE_Q8_0, .n_in = k, .n_out = n_in, .row_bytes = rb, .data = rows, .name = "t", .packed = pk};
                    matmul(pool, &wref, dy + tc->k0[p], n_out, T, part, n_in, xq);
                    for (int64_t i = 0; i < T * n_in; i++) dxr[i] += part[i];
                    free(rows), free(pk);
                }
                free(part);
            } else { /* no copy: the F32 mode's dy W */
                train_gemm *gf = train_gemm_new(pool);
                memcpy(dxr, dx0, (size_t)(T * n_in) * 4);
                train_gemm_dyw(gf, &w, dy, n_out, T, dxr, n_in);
                train_gemm_free(gf);
            }
            CHECK(!memcmp(dx[0], dxr, (size_t)(T * n_in) * 4), "type %d T %lld: int8 dy W is not dx + matmul(W^T, dy)%s", type,
                  (long long)T, tc ? "" : " (f32 fallback)");
            free(xq);
            train_gemm_xwt(g, &wF, x, n_in, T, yF, n_out); /* an F32 weight stays F32 in int8 mode */
            train_gemm *gf = train_gemm_new(pool);
            train_gemm_xwt(gf, &wF, x, n_in, T, yr, n_out);
            CHECK(!memcmp(yF, yr, (size_t)(T * n_out) * 4), "type %d: an F32 weight is not F32 in int8 mode", type);
            train_gemm_free(gf);
        }
        train_gemm_free(g);
        pool_free(pool);
    }
    CHECK(!memcmp(y[0], y[1], (size_t)(T * n_out) * 4) && !memcmp(dx[0], dx[1], (size_t)(T * n_in) * 4),
          "type %d: int8 results depend on the thread count", type);

    /* 3. against the converted operands' exact sums */
    const int vd = t->vec_dot_type;
    const int64_t blk = kernels_type(vd)->block;
    float *xc = malloc((size_t)n_in * 4), *dyc = malloc((size_t)n_out * 4), *wtv = malloc((size_t)(n_in * n_out) * 4);
    double worst_y = 0, worst_dx = 0, rel_y = 0;
    for (int64_t tk = 0; tk < T; tk++) {
        round_trip(vd, x + tk * n_in, xc, n_in);
        for (int64_t r = 0; r < n_out; r++) {
            double s = 0, S = 0, s32 = 0;
            for (int64_t k = 0; k < n_in; k++) {
                const double p = (double)xc[k] * wf[r * n_in + k];
                s += p, S += fabs(p), s32 += (double)x[tk * n_in + k] * wf[r * n_in + k];
            }
            const double d = fabs(y[0][tk * n_out + r] - s) / (2.0 * (n_in / blk + 2) * U * S + 1e-30);
            if (d > worst_y) worst_y = d;
            const double e = fabs(y[0][tk * n_out + r] - s32) / (S + 1e-30);
            if (e > rel_y) rel_y = e;
        }
    }
    if (has_t) {
        for (int64_t i = 0; i < n_in; i++) q8->to_f32(tref + i * trb, wtv + i * n_out, n_out);
        for (int64_t tk = 0; tk < T; tk++) {
            round_trip(HERD_TYPE_Q8_0, dy + tk * n_out, dyc, n_out);
            for (int64_t i = 0; i < n_in; i++) {
                double s = 0, S = 0;
                for (int64_t o = 0; o < n_out; o++) {
                    const double p = (double)dyc[o] * wtv[i * n_out + o];
                    s += p, S += fabs(p);
                }
                /* + the additions of the parts to dx0: an ulp of the running sum each */
                const double got = dx[0][tk * n_in + i], want = s + dx0[tk * n_in + i];
                const double np = (double)((n_out + TRAIN_T_KMAX - 1) / TRAIN_T_KMAX);
                const double d = fabs(got - want) / (2.0 * (n_out / 32 + 2) * U * S + (np + 1) * U * (S + fabs(want)) + 1e-30);
                if (d > worst_dx) worst_dx = d;
            }
        }
    }
    printf("type %d %lldx%lld T %lld: y within %.3f of its bound (%.2e S off the unconverted sum), dx %.3f\n", type,
           (long long)n_out, (long long)n_in, (long long)T, worst_y, rel_y, worst_dx);
    CHECK(worst_y <= 1 && worst_dx <= 1, "type %d: int8 products off the converted operands' sums", type);
    CHECK(rel_y < 0x1p-6, "type %d: int8 products too far from F32 (%g S)", type, rel_y);
    for (int th = 0; th < 2; th++) free(y[th]), free(dx[th]);
    free(yF), free(yr), free(dxr), free(tref), free(wp), free(xc), free(dyc), free(wtv), free(wf), free(x), free(dy), free(dx0), free(wq);
}

int main(void) {
    tu_rng = 0x1a7811a7ull;
    kernels_init();
    /* below and above the Q8_0 gemm's 8 tokens, plain and packed; an n_out not a multiple of 32 (no copy);
     * an n_out over TRAIN_T_KMAX (two parts, as the output matrix has four) */
    check(HERD_TYPE_Q8_0, 320, 288, 37, false);
    check(HERD_TYPE_Q8_0, 320, 288, 37, true);
    check(HERD_TYPE_Q8_0, 320, 288, 5, true);
    check(HERD_TYPE_Q4_0, 256, 96, 19, true);
    check(HERD_TYPE_BF16, 160, 64, 9, false);
    check(HERD_TYPE_Q8_0, 64, 1091, 11, false);
    check(HERD_TYPE_Q8_0, 32, TRAIN_T_KMAX + 64, 9, true);
    return TU_DONE("train_int8");
}
