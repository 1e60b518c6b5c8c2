// Transpose kernels compiled for the scalar level (see transpose_ukernels.h).
#define FASTCONV_TRANSPOSE_NS scalar
#define FASTCONV_TRANSPOSE_NAME(dtype) "transpose_" dtype "_scalar"
#define FASTCONV_TRANSPOSE_AVX 0
#include "ukernels/transpose/transpose_impl.h"
