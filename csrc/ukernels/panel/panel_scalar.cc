// Panel-row kernels compiled for the scalar level (see panel_ukernels.h).
#define FASTCONV_PANEL_NS scalar
#define FASTCONV_PANEL_NAME(dtype) "panel_" dtype "_scalar"
#define FASTCONV_PANEL_VECTOR 0
#include "ukernels/panel/panel_impl.h"
