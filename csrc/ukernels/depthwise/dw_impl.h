// The depthwise plane kernels of one ISA level (see dw_ukernels.h): included by one file per
// level (dw_<isa>.cc) with FASTCONV_DW_NS naming its namespace; the bodies live in
// dw_forward_impl.h, dw_weight_impl.h and dw_pack_impl.h over dw_vector.h's primitives.
#pragma once

#include "ukernels/depthwise/dw_channels_last_impl.h"
#include "ukernels/depthwise/dw_forward_impl.h"
#include "ukernels/depthwise/dw_pack_impl.h"
#include "ukernels/depthwise/dw_ukernels.h"
#include "ukernels/depthwise/dw_weight_impl.h"

namespace fastconv::FASTCONV_DW_NS {

extern const DwKernels<float> dw_f32_kernels;
extern const DwKernels<double> dw_f64_kernels;
const DwKernels<float> dw_f32_kernels = {forward<float>,    weight<float>,
                                         pack_rows<float>,  unpack_rows<float>,
                                         cl_forward<float>, cl_weight<float>,
                                         FASTCONV_DW_NAME("f32")};
const DwKernels<double> dw_f64_kernels = {forward<double>,    weight<double>,
                                          pack_rows<double>,  unpack_rows<double>,
                                          cl_forward<double>, cl_weight<double>,
                                          FASTCONV_DW_NAME("f64")};

}  // namespace fastconv::FASTCONV_DW_NS
