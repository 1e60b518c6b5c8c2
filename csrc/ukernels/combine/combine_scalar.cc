// Slice combinations compiled for the scalar level (see combine_ukernels.h).
#define FASTCONV_COMBINE_NS scalar
#define FASTCONV_COMBINE_NAME(dtype) "combine_" dtype "_scalar"
#include "ukernels/combine/combine_impl.h"
