// Stride-2 Winograd transforms compiled for the avx2 level (see stride2_ukernels.h).
#define FASTCONV_STRIDE2_NS avx2
#define FASTCONV_STRIDE2_NAME(dtype) "stride2_" dtype "_avx2"
#include "ukernels/winograd/stride2_impl.h"
