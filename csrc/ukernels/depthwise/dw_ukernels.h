// Depthwise (one input channel per group) plane kernels: the per-channel work of the depthwise
// algorithm, compiled once per ISA level (dw_<isa>.cc) and picked at run time.
//
// Every kernel walks an output plane of extent `out` and reads or writes a zero-padded,
// phase-split copy of the source plane (built by the driver), so no kernel checks bounds:
// element (z, y, x) of the padded plane lives at buf[((z * rows + y) * sx + x % sx) * width
// + x / sx], with sx = stride[2]. A tap (tz, ty, tx) at output (oz, oy, ox) touches padded
// position (oz * sd + tz * dd, oy * sh + ty * dh, ox * sx + tx * dx); within one output row and
// one tap the positions are consecutive in one phase row, so every inner loop is a contiguous
// multiply-add that vectorises.
//
// A plane may stack `channels` source planes `channel_stride` elements apart (a group's input
// channels): its taps then run over (channel, kernel tap) pairs, channel-major, so one forward
// call sums every input channel of a group in registers and stores each output once.
#pragma once
#include <cstdint>

#include "fastconv/geometry.h"

namespace fastconv {

struct DwPlane {
  Dims out, kernel, stride, dilation;
  int64_t rows;   // padded rows per depth slice
  int64_t width;  // elements per phase row
  // Offset of tap t's first element relative to its output row's base (set by set_taps()):
  // the kernels add it to row_base(), so no index arithmetic runs per tap.
  const int64_t* tap_offset = nullptr;
  int64_t channels = 1;        // stacked source planes (see above)
  int64_t channel_stride = 0;  // elements from one stacked plane to the next
  int64_t kernel_volume() const { return kernel[0] * kernel[1] * kernel[2]; }
  // Taps the kernels loop over: every (stacked plane, kernel tap) pair.
  int64_t taps() const { return channels * kernel_volume(); }
  int64_t row_base(int64_t oz, int64_t oy) const {
    return (oz * stride[0] * rows + oy * stride[1]) * stride[2] * width;
  }
  // Fills offsets[0 : taps()) and points tap_offset at it.
  void set_taps(int64_t* offsets) {
    int64_t t = 0;
    for (int64_t c = 0; c < channels; ++c)
    for (int64_t tz = 0; tz < kernel[0]; ++tz)
      for (int64_t ty = 0; ty < kernel[1]; ++ty)
        for (int64_t tx = 0; tx < kernel[2]; ++tx, ++t) {
          const int64_t xo = tx * dilation[2];
          offsets[t] = c * channel_stride + ((tz * dilation[0] * rows + ty * dilation[1]) * stride[2] + xo % stride[2]) *
                           width + xo / stride[2];
        }
    tap_offset = offsets;
  }
  // Padded-plane extent needed by `out`, kernel, stride and dilation along dim d.
  int64_t padded_extent(int d) const { return (out[d] - 1) * stride[d] + (kernel[d] - 1) * dilation[d] + 1; }
  int64_t buffer_elems() const { return padded_extent(0) * rows * stride[2] * width; }
  // Unit stride along H and W, narrow rows: the forward kernel treats each depth slice of output as one flat
  // run with the padded plane's row pitch (outputs in the pitch's last columns are computed and
  // dropped), so narrow rows still fill whole vector blocks.
  // Wider rows run row by row (masked last vectors, several rows per register block).
  bool flat() const { return stride[1] == 1 && stride[2] == 1 && out[2] <= 8; }
  int64_t flat_elems() const { return (out[1] - 1) * width + out[2]; }
};

// A channels-last depthwise problem (one image, 2-D, multiplier 1): input padded and laid out
// (hp, wp, c), output (oh, ow, c), weights (kh * kw, c). For planes of few positions, where a
// plane kernel's vectors along output rows would be mostly empty (7x7).
struct DwChannelsLast {
  int64_t c, oh, ow, kh, kw, sy, sx, dy, dx, wp;
};

// Output planes one forward call produces from one padded source plane.
constexpr int kDwMaxOutputs = 4;

template <typename T>
struct DwKernels {
  // For each of `count` (1..kMaxOutputs) filters f: out[f] = (accumulate ? out[f] : bias[f]) +
  // sum over taps of w[f * w_stride + tap] * buf[...]. The filters share the source loads.
  // bias may be null (zero). scratch holds kMaxOutputs * (flat_elems() + 16) elements (used when
  // p.flat()).
  void (*forward)(const DwPlane& p, const T* buf, const T* w, int64_t w_stride, int count,
                  const T* bias, bool accumulate, T* const* out, T* scratch);
  // For each of `count` (1..kDwMaxOutputs) grad_y planes gy[f] and each tap t < p.taps():
  // gw[f * gw_stride + t] += sum over outputs o of gy[f][o] * buf[...].
  void (*weight)(const DwPlane& p, const T* buf, const T* const* gy, int count, T* gw,
                 int64_t gw_stride);
  // Rows r < rows of a padded, phase-split plane, dst_pitch elements apart from dst, plane e <
  // planes of row r at dst + r * dst_pitch + e * phase_pitch: its `width` positions q = src[r *
  // src_pitch + q * sx + e - pad] where that index lies in [0, n), else 0 (planes == sx: the
  // stride phases, e.g. the depthwise planes: dst_pitch sx * width, phase_pitch width; more:
  // implicit GEMM's column planes, one per column offset, as separate planes).
  void (*pack_rows)(const T* src, int64_t src_pitch, int64_t rows, int64_t n, int64_t pad,
                    int64_t sx, int64_t width, T* dst, int64_t dst_pitch, int64_t phase_pitch,
                    int64_t planes);
  // Back to rows: dst[r * dst_pitch + j] (j < n) = phase ph = (j + pad) % sx of source row r at
  // q = (j + pad) / sx (0 where q >= width); that phase row starts at src + r * src_pitch +
  // ph * phase_pitch.
  void (*unpack_rows)(const T* src, int64_t src_pitch, int64_t phase_pitch, int64_t rows,
                      int64_t width, int64_t sx, int64_t pad, int64_t n, T* dst,
                      int64_t dst_pitch);
  // Channels-last (DwChannelsLast): y's channels [c0, c1) of every position (+ bias, or null);
  // gw (taps, c) += the weight gradient of channels [c0, c1) over every position.
  void (*cl_forward)(const DwChannelsLast& p, const T* x, const T* w, const T* bias, T* y,
                     int64_t c0, int64_t c1);
  void (*cl_weight)(const DwChannelsLast& p, const T* x, const T* gy, T* gw, int64_t c0,
                    int64_t c1);
  const char* name;
};

// The kernels for the active ISA level (FASTCONV_ISA may cap it).
template <typename T>
const DwKernels<T>& dw_kernels();

#define FASTCONV_DECLARE_DW(ns)                  \
  namespace ns {                                 \
  extern const DwKernels<float> dw_f32_kernels;  \
  extern const DwKernels<double> dw_f64_kernels; \
  }
FASTCONV_DECLARE_DW(scalar)
FASTCONV_DECLARE_DW(avx2)
FASTCONV_DECLARE_DW(avx512)
#undef FASTCONV_DECLARE_DW

}  // namespace fastconv
