// Winograd F(3,7) along a line (algo/winograd_line.h): the transforms over runs of channels,
// compiled once per ISA level (line_<isa>.cc) and picked at run time (line_table.cc). Pure:
// pointers and counts in. The matrices are winograd::SplitLine37 (F(3,4) on taps 0-3 plus
// F(3,3) on taps 4-6): a tile's 3 outputs from its 9 inputs, 11 products per 3 outputs against 21.
#pragma once
#include <cstdint>

namespace fastconv {

// A tile's outputs, inputs and transform points (winograd::SplitLine37's kM, kInputs, kPoints).
constexpr int kLineOutputs = 3, kLineInputs = 9, kLinePoints = 11;

template <typename T>
struct LineKernels {
  // One tile's 11 input points: input j (of 9) is the run of n channels at x + j * step; point
  // q (BT's row q) goes to v + q * vs.
  void (*input)(const T* x, int64_t step, int64_t n, T* v, int64_t vs);
  // One tile's 3 outputs from its 11 points' products (point q's run of n at m + q * ms):
  // output i (AT's row i) to y + i * ys; only the first `outputs` (1-3) are written.
  void (*output)(const T* m, int64_t ms, int64_t n, T* y, int64_t ys, int outputs);
  // The 11 points of n kernels of one channel (G's rows): tap t's run of n lanes at w + t * n
  // (flip: tap 6 - t, true convolution); point q to u + q * us.
  void (*weights)(const T* w, int64_t n, bool flip, T* u, int64_t us);
  // The weight gradient's output side: one tile's 11 points of grad_y (the output transform's
  // transpose, AT's columns) from its first `outputs` (1-3) outputs' runs of n channels, output
  // i at y + i * ys (the others zero); point q to g + q * gs.
  void (*grad)(const T* y, int64_t ys, int outputs, int64_t n, T* g, int64_t gs);
  // The kernel side's transpose (G's columns): the 7 taps' gradients of n kernels from their 11
  // points' (point q's run of n at u + q * us); tap t (flip: 6 - t) to w + t * n.
  void (*fold)(const T* u, int64_t us, int64_t n, bool flip, T* w);
  const char* name;
};

// The kernels for the active ISA level (FASTCONV_ISA may cap it).
template <typename T>
const LineKernels<T>& line_kernels();

#define FASTCONV_DECLARE_LINE(ns)                     \
  namespace ns {                                      \
  extern const LineKernels<float> line_f32_kernels;   \
  extern const LineKernels<double> line_f64_kernels;  \
  }
FASTCONV_DECLARE_LINE(scalar)
FASTCONV_DECLARE_LINE(avx2)
FASTCONV_DECLARE_LINE(avx512)
#undef FASTCONV_DECLARE_LINE

}  // namespace fastconv
