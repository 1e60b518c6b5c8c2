// Panel-row kernels compiled for the avx2 level (see panel_ukernels.h).
#define FASTCONV_PANEL_NS avx2
#define FASTCONV_PANEL_NAME(dtype) "panel_" dtype "_avx2"
#include "ukernels/panel/panel_impl.h"
