// Pooling kernels compiled for the avx512 level (see pool_ukernels.h).
#define FASTCONV_POOL_NS avx512
#define FASTCONV_POOL_NAME(dtype) "pool_" dtype "_avx512"
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's own _mm512_undefined_* (inside e.g. _mm512_cvtepi32_epi64) trips these (GCC PR 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "ukernels/pool/pool_impl.h"
