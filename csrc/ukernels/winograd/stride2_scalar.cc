// Stride-2 Winograd transforms compiled for the scalar level (see stride2_ukernels.h).
#define FASTCONV_STRIDE2_NS scalar
#define FASTCONV_STRIDE2_NAME(dtype) "stride2_" dtype "_scalar"
#include "ukernels/winograd/stride2_impl.h"
