// Pooling kernels compiled for the avx512 level (see pool_ukernels.h).
#define FASTCONV_POOL_NS avx512
#define FASTCONV_POOL_NAME(dtype) "pool_" dtype "_avx512"
#include "ukernels/pool/pool_impl.h"
