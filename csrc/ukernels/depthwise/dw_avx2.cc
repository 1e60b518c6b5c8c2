// Depthwise plane kernels compiled for the avx2 level (see dw_impl.h).
#define FASTCONV_DW_NS avx2
#define FASTCONV_DW_NAME(dtype) "dw_" dtype "_avx2"
#include "ukernels/depthwise/dw_impl.h"
