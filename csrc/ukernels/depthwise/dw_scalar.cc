// Depthwise plane kernels compiled for the scalar level (see dw_impl.h).
#define FASTCONV_DW_NS scalar
#define FASTCONV_DW_NAME(dtype) "dw_" dtype "_scalar"
#include "ukernels/depthwise/dw_impl.h"
