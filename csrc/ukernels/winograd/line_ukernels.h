// Winograd F(2,7) along a line (algo/winograd_line.h): the transforms over runs of channels,
// compiled once per ISA level (line_<isa>.cc) and picked at run time (line_table.cc). Pure:
// pointers and counts in. The matrices are winograd::Matrices<2, 7> (points 0, +-1, +-2, +-1/2
// and infinity): a tile's 2 outputs from its 8 inputs, 8 products per 2 outputs against 14.
#pragma once
#include <cstdint>

namespace fastconv {

template <typename T>
struct LineKernels {
  // One tile's 8 input points: input j is the run of n channels at x + j * step; point q
  // (BT's row q) goes to v + q * vs.
  void (*input)(const T* x, int64_t step, int64_t n, T* v, int64_t vs);
  // One tile's 2 outputs from its 8 points' products (point q's run of n at m + q * ms): output
  // i (AT's row i) to y + i * ys; only the first `outputs` (1 or 2) are written.
  void (*output)(const T* m, int64_t ms, int64_t n, T* y, int64_t ys, int outputs);
  // The 8 points of n kernels of one channel (G's rows): tap t's run of n lanes at w + t * n
  // (flip: tap 6 - t, true convolution); point q to u + q * us.
  void (*weights)(const T* w, int64_t n, bool flip, T* u, int64_t us);
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
