// Stride-2 Winograd transforms compiled for the avx512 level (see stride2_ukernels.h).
#define FASTCONV_STRIDE2_NS avx512
#define FASTCONV_STRIDE2_NAME(dtype) "stride2_" dtype "_avx512"
#include "ukernels/winograd/stride2_impl.h"
