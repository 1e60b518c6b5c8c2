// Panel-row kernels compiled for the avx512 level (see panel_ukernels.h).
#include "ukernels/gemm/gemm_tile_avx512.h"
#define FASTCONV_PANEL_NS avx512
#define FASTCONV_PANEL_NAME(dtype) "panel_" dtype "_avx512"
#define FASTCONV_PANEL_VECTOR 1
#include "ukernels/panel/panel_impl.h"
