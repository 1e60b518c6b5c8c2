// The separable-convolution micro-kernels compiled for avx512 (64-byte vectors).
#include "ukernels/separable/sep_impl.h"
#include "ukernels/separable/sep_ukernels.h"

FASTCONV_DEFINE_SEPARABLE(avx512, 64)
