// Depthwise convolution of small planes in channels-last order: the planes of one image are
// transposed to (positions, channels) once, the kernels' vectors run across channels (every
// lane useful on a 7x7 plane, where a plane kernel's vectors along output rows are mostly
// empty), and the result is transposed back. Multiplier 1, 1-D and 2-D.
#pragma once
#include <cstdint>

#include "fastconv/geometry.h"
#include "fastconv/problem.h"

namespace fastconv::algo {

// Whether the channels-last path runs this pass (depthwise_plan asks; small planes, 16+
// channels; backward data at unit stride with padding below the kernel's reach).
bool depthwise_channels_last(const ConvGeometry& g, ConvPass pass);
// Its workspace in elements.
int64_t depthwise_channels_last_elems(const ConvGeometry& g, ConvPass pass);

template <typename T>
void depthwise_cl_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                          T* ws);
template <typename T>
void depthwise_cl_backward_data(const ConvGeometry& g, const T* grad_y, const T* w, T* grad_x,
                                T* ws);
template <typename T>
void depthwise_cl_backward_weight(const ConvGeometry& g, const T* x, const T* grad_y, T* grad_w,
                                  T* ws);

}  // namespace fastconv::algo
