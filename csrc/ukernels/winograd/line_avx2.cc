// Winograd F(3,7) line transforms compiled for the avx2 level (see line_ukernels.h).
#define FASTCONV_LINE_NS avx2
#define FASTCONV_LINE_NAME(dtype) "line_" dtype "_avx2"
#include "ukernels/winograd/line_impl.h"
