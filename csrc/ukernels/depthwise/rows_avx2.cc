// The row filter micro-kernel compiled for avx2 (32-byte vectors).
#include "ukernels/depthwise/rows_impl.h"
#include "ukernels/depthwise/rows_ukernels.h"

FASTCONV_DEFINE_ROWS(avx2, 32)
