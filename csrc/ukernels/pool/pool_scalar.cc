// Pooling kernels compiled for the scalar level (see pool_ukernels.h).
#define FASTCONV_POOL_NS scalar
#define FASTCONV_POOL_NAME(dtype) "pool_" dtype "_scalar"
#include "ukernels/pool/pool_impl.h"
