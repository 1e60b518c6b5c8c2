// Batched FFT micro-kernels built for the avx512 level (flags from cmake/sources.cmake).
#define FASTCONV_FFT_ISA avx512
#include "ukernels/fft/fft_ukernels_impl.h"
