/* K-quant kernels for avx2: not written yet; the table keeps the scalar reference. */
#include "../kernels_impl.h"

void kernels_fill_avx2_kquants(kernel_type_ops ops[KSLOT_COUNT]) {
    (void)ops;
}
