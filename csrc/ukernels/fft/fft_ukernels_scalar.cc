// Batched FFT micro-kernels built for the scalar level (flags from cmake/sources.cmake).
#define FASTCONV_FFT_ISA scalar
#include "ukernels/fft/fft_ukernels_impl.h"
