// Winograd tile transforms (f32, f64; F(m,3) and F(mxm,3x3), m = 2, 4, 6) compiled for avx2.
#include "ukernels/winograd/winograd_transforms.h"

FASTCONV_DEFINE_WINOGRAD_TABLE(avx2)
