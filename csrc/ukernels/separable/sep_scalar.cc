// The separable-convolution micro-kernels compiled for scalar (16-byte vectors).
#include "ukernels/separable/sep_impl.h"
#include "ukernels/separable/sep_ukernels.h"

FASTCONV_DEFINE_SEPARABLE(scalar, 16)
