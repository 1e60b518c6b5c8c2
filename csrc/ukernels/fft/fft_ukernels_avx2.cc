// Batched FFT micro-kernels built for the avx2 level (flags from cmake/sources.cmake).
#define FASTCONV_FFT_ISA avx2
#include "ukernels/fft/fft_ukernels_impl.h"
