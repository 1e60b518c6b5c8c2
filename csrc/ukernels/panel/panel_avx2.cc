// Panel-row kernels compiled for the avx2 level (see panel_ukernels.h).
#include "ukernels/gemm/gemm_tile_avx2.h"
#define FASTCONV_PANEL_NS avx2
#define FASTCONV_PANEL_NAME(dtype) "panel_" dtype "_avx2"
#define FASTCONV_PANEL_VECTOR 1
#include "ukernels/panel/panel_impl.h"
