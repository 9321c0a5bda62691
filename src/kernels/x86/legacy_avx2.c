/* AVX2 variants of the legacy / i-quant kernels (legacy.h); filled in below. */
#include "../kernels_impl.h"

void kernels_fill_avx2_legacy(kernel_type_ops ops[KSLOT_COUNT]) {
    (void)ops;
}
