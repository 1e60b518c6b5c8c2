// The row filter micro-kernel compiled for scalar (16-byte vectors).
#include "ukernels/depthwise/rows_impl.h"
#include "ukernels/depthwise/rows_ukernels.h"

FASTCONV_DEFINE_ROWS(scalar, 16)
