// Depthwise plane kernels compiled for the avx512 level (see dw_impl.h).
#define FASTCONV_DW_NS avx512
#define FASTCONV_DW_NAME(dtype) "dw_" dtype "_avx512"
#include "ukernels/depthwise/dw_impl.h"
