// Pooling kernels compiled for the avx2 level (see pool_ukernels.h).
#define FASTCONV_POOL_NS avx2
#define FASTCONV_POOL_NAME(dtype) "pool_" dtype "_avx2"
#include "ukernels/pool/pool_impl.h"
