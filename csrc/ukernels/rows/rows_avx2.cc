// Row kernels compiled for the avx2 level (see rows_impl.h).
#define FASTCONV_ROWS_NS avx2
#define FASTCONV_ROWS_NAME(dtype) "rows_" dtype "_avx2"
#include "ukernels/rows/rows_impl.h"
#include "ukernels/rows/rows_winograd_impl.h"
#include "ukernels/rows/rows_tables.h"
