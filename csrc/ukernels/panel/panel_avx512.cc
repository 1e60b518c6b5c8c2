// Panel-row kernels compiled for the avx512 level (see panel_ukernels.h).
#define FASTCONV_PANEL_NS avx512
#define FASTCONV_PANEL_NAME(dtype) "panel_" dtype "_avx512"
#include "ukernels/panel/panel_impl.h"
