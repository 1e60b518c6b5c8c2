// Winograd F(3,7) line transforms compiled for the scalar level (see line_ukernels.h).
#define FASTCONV_LINE_NS scalar
#define FASTCONV_LINE_NAME(dtype) "line_" dtype "_scalar"
#include "ukernels/winograd/line_impl.h"
