// Winograd F(2x2,3x3) at stride 2 (algo/winograd_stride2.h): the tile transforms over runs of
// channels, compiled once per ISA level (stride2_<isa>.cc) and picked at run time
// (stride2_table.cc). Pure: pointers and counts in. Per dim the 5 points are
//   input (x0 - x2, x2, x4 - x2, x1, x3), weight (g0, g0 + g2, g2, g1, g1),
//   output y0 = p0 + p1 + p3, y1 = p1 + p2 + p4 (its transpose, the weight gradient's output
//   side: (y0, y0 + y1, y1, y0, y1));
// point q = 5 * row point + column point.
#pragma once
#include <cstdint>

namespace fastconv {

template <typename T>
struct Stride2Kernels {
  // One tile's 25 input points from its 5x5 window: input (i, j) is the run of n channels at
  // x + i * rs + j * n; point q goes to v + q * vs.
  void (*input)(const T* x, int64_t rs, int64_t n, T* v, int64_t vs);
  // One tile's 2x2 outputs from its 25 points' products (point q's run of n at m + q * ms):
  // output (row, column) to y + (2 * row + column) * n.
  void (*output)(const T* m, int64_t ms, int64_t n, T* y);
  // The 4 x 4 distinct weight points of n kernels of one channel (the weight's points 3 and 4
  // are the same, g1): tap t's run of n lanes at w + t * n (flip: tap 8 - t, true convolution);
  // distinct point 4 * a + b to u + (4 * a + b) * us.
  void (*weights)(const T* w, int64_t n, bool flip, T* u, int64_t us);
  // The weight gradient's output side: one tile's 25 points of grad_y (the output transform's
  // transpose: per dim (y0, y0 + y1, y1, y0, y1)) from its 2x2 outputs' runs of n channels
  // (y00, y01: row 0; y10, y11: row 1); point q to g + q * gs.
  void (*grad)(const T* y00, const T* y01, const T* y10, const T* y11, int64_t n, T* g,
               int64_t gs);
  const char* name;
};

// The kernels for the active ISA level (FASTCONV_ISA may cap it).
template <typename T>
const Stride2Kernels<T>& stride2_kernels();

#define FASTCONV_DECLARE_STRIDE2(ns)                        \
  namespace ns {                                            \
  extern const Stride2Kernels<float> stride2_f32_kernels;   \
  extern const Stride2Kernels<double> stride2_f64_kernels;  \
  }
FASTCONV_DECLARE_STRIDE2(scalar)
FASTCONV_DECLARE_STRIDE2(avx2)
FASTCONV_DECLARE_STRIDE2(avx512)
#undef FASTCONV_DECLARE_STRIDE2

}  // namespace fastconv
