// The separable-convolution micro-kernels compiled for avx2 (32-byte vectors).
#include "ukernels/separable/sep_impl.h"
#include "ukernels/separable/sep_ukernels.h"

FASTCONV_DEFINE_SEPARABLE(avx2, 32)
