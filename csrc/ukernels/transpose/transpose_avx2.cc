// Transpose kernels compiled for the avx2 level (see transpose_ukernels.h).
#define FASTCONV_TRANSPOSE_NS avx2
#define FASTCONV_TRANSPOSE_NAME(dtype) "transpose_" dtype "_avx2"
#define FASTCONV_TRANSPOSE_AVX 1
#include "ukernels/transpose/transpose_impl.h"
