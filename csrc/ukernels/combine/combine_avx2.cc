// Slice combinations compiled for the avx2 level (see combine_ukernels.h).
#define FASTCONV_COMBINE_NS avx2
#define FASTCONV_COMBINE_NAME(dtype) "combine_" dtype "_avx2"
#include "ukernels/combine/combine_impl.h"
