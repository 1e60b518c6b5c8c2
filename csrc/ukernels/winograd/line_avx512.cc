// Winograd F(3,7) line transforms compiled for the avx512 level (see line_ukernels.h).
#define FASTCONV_LINE_NS avx512
#define FASTCONV_LINE_NAME(dtype) "line_" dtype "_avx512"
#include "ukernels/winograd/line_impl.h"
