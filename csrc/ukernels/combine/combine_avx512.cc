// Slice combinations compiled for the avx512 level (see combine_ukernels.h).
#define FASTCONV_COMBINE_NS avx512
#define FASTCONV_COMBINE_NAME(dtype) "combine_" dtype "_avx512"
#include "ukernels/combine/combine_impl.h"
