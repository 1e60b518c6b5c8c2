// Row kernels compiled for the scalar level (see rows_impl.h).
#define FASTCONV_ROWS_NS scalar
#define FASTCONV_ROWS_NAME(dtype) "rows_" dtype "_scalar"
#include "ukernels/rows/rows_impl.h"
#include "ukernels/rows/rows_winograd_impl.h"
#include "ukernels/rows/rows_tables.h"
