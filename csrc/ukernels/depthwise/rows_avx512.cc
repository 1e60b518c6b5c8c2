// The row filter micro-kernel compiled for avx512 (64-byte vectors).
#include "ukernels/depthwise/rows_impl.h"
#include "ukernels/depthwise/rows_ukernels.h"

FASTCONV_DEFINE_ROWS(avx512, 64)
