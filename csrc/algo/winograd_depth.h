// 3-D convolutions through the 2-D Winograd: a kernel of KD x r x r taps at stride 1 along H
// and W is a 2-D convolution of r x r taps over images (n, output depth d) whose input channels
// are (c, kd) pairs, channel (c, kd) of image (n, d) being the input plane at depth
// d * stride + kd * dilation - padding (or zeros, off the volume). The weight's (K, C/G, KD, r, r)
// layout is that 2-D weight's (K, C/G * KD, r, r) as it lies; nothing is copied except, for
// backward data, the weight with (C, KD) swapped. The planes are addressed in place
// (DepthStack::source / dest): the 2-D transforms read and write the 3-D tensors' planes.
//
// Products per output: KD x the 2-D tile's (F(2x2,3x3), the tile the error rule gives for the
// C/G x KD channels real layers sum: 3 x 16 / 4 = 12 against 27 for a 3x3x3 kernel); each input
// plane's transform is computed once per depth tap that reads it.
#pragma once
#include <cstdint>
#include <string>

#include "fastconv/algorithm.h"
#include "fastconv/geometry.h"

namespace fastconv::algo::winograd_depth {

// Where the 2-D run's planes lie in the 3-D tensors of one pass. Forward and weight gradient:
// 2-D image n2 = n * D_out + d, input channel (c, kd) from x, output channel k into y (or read
// from grad_y). Backward data: image n2 = n * D_in + s (input depth s), input channel (k, kd)
// from grad_y at depth (s + padding - kd * dilation) / stride where that is whole and inside,
// output channel c into grad_x.
struct DepthStack {
  int64_t images_d = 1;      // 2-D images per 3-D image: the depth of the run's output side
  int64_t src_d = 1;         // depth of the source (x, or grad_y for backward data)
  int64_t src_channels = 0;  // channels of the source tensor
  int64_t dst_channels = 0;  // channels of the destination tensor
  int64_t taps = 1, stride = 1, dilation = 1, pad = 0;  // along depth
  bool flip = false;         // true convolution: tap kd reads as KD - 1 - kd
  bool backward_data = false;
  int64_t src_plane = 0, dst_plane = 0;  // elements per plane (H x W of each side)

  // The source plane of 2-D image n2, input channel ch2, or `zero` where it lies off the
  // volume.
  template <typename T>
  const T* source(const T* base, int64_t n2, int64_t ch2, const T* zero) const {
    const int64_t n = n2 / images_d, d2 = n2 % images_d;
    const int64_t ch = ch2 / taps, kd = flip ? taps - 1 - ch2 % taps : ch2 % taps;
    int64_t s;
    if (backward_data) {
      const int64_t num = d2 + pad - kd * dilation;
      if (num < 0 || num % stride != 0) return zero;
      s = num / stride;
    } else {
      s = d2 * stride + kd * dilation - pad;
    }
    if (s < 0 || s >= src_d) return zero;
    return base + ((n * src_channels + ch) * src_d + s) * src_plane;
  }

  // The destination plane of 2-D image n2, output channel ch2 (or, for the weight gradient,
  // grad_y's plane read at the same place).
  template <typename T>
  T* dest(T* base, int64_t n2, int64_t ch2) const {
    const int64_t n = n2 / images_d, d2 = n2 % images_d;
    return base + ((n * dst_channels + ch2) * images_d + d2) * dst_plane;
  }
};

// Whether the 3-D g runs this way: stride and dilation 1 along H and W, the same 2, 3 or 5 taps
// along both (any depth kernel, stride, dilation and padding).
bool stackable(const ConvGeometry& g);

// Why not (for a 3-D g that is not stackable).
std::string unstackable_reason(const ConvGeometry& g);

// The 2-D convolution whose `pass` runs: forward and weight gradient N * D_out images of
// C * KD channels into K; backward data's forward view N * D_in images of C channels into
// K * KD (its backward data then reads grad_y's planes as those K * KD channels).
ConvGeometry flat_geometry(const ConvGeometry& g, ConvPass pass);

// The planes of `pass` of g (flat_geometry's images).
DepthStack make_stack(const ConvGeometry& g, ConvPass pass);

// Elements of backward data's reordered weight (K, KD, C/G, r, r), else 0.
int64_t weight_elems(const ConvGeometry& g, ConvPass pass);

// w (K, C/G, KD, r, r) into (K, KD, C/G, r, r), parallel over K.
template <typename T>
void swap_weight(const ConvGeometry& g, const T* w, T* out);

}  // namespace fastconv::algo::winograd_depth
