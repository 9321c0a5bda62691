/* avx512 kernels (compiled with the avx512 flags of the Makefile; used only when CPUID says so). */
#include "../kernels_impl.h"

void kernels_fill_avx512(kernel_type_ops ops[KSLOT_COUNT], kernel_vec_ops *vec) {
    (void)ops;
    (void)vec;
}
