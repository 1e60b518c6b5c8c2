// Separable convolution on 2-D planes, both passes fused per band of rows (separable_conv.h).
#include "algo/separable_conv.h"

#include <algorithm>
#include <vector>

#include "fastconv/parallel.h"
#include "isa/isa_dispatch.h"
#include "ukernels/separable/sep_ukernels.h"

namespace fastconv::algo {

namespace {

constexpr int64_t kBandBytes = 24 * 1024;  // one band's intermediate rows: within L1 / L2

// The active ISA's micro-kernels (csrc/ukernels/separable/sep_*.cc), chosen once.
void vertical(const float* const* rows, const float* f, int64_t k, int64_t stride,
              int64_t dilation, int64_t n_rows, int64_t width, float* out, int64_t out_stride) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(sep_vertical_f32);
  kernel(rows, f, k, stride, dilation, n_rows, width, out, out_stride);
}
void vertical(const double* const* rows, const double* f, int64_t k, int64_t stride,
              int64_t dilation, int64_t n_rows, int64_t width, double* out, int64_t out_stride) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(sep_vertical_f64);
  kernel(rows, f, k, stride, dilation, n_rows, width, out, out_stride);
}
void horizontal(const float* src, const float* f, int64_t k, int64_t dilation, int64_t n,
                float* y, bool accumulate) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(sep_horizontal_f32);
  kernel(src, f, k, dilation, n, y, accumulate);
}
void horizontal(const double* src, const double* f, int64_t k, int64_t dilation, int64_t n,
                double* y, bool accumulate) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(sep_horizontal_f64);
  kernel(src, f, k, dilation, n, y, accumulate);
}

// Per-thread scratch, kept between calls (grown, never shrunk).
template <typename T>
struct Scratch {
  std::vector<T> band;      // the band's vertical outputs, one padded row each
  std::vector<T> zero;      // the row padding rows point at
  std::vector<T> strided;   // a stride-1 horizontal row before subsampling (s1 > 1)
  std::vector<const T*> rows;  // the input row (or zero row) of each tap position
};

// Sizes one call derives once.
struct Layout {
  int64_t length;   // input positions one output row reads: [-p1, -p1 + length)
  int64_t cols;     // input columns the vertical pass computes (those the row reads)
  int64_t span;     // outputs of the stride-1 horizontal pass
  int64_t row_len;  // a scratch row: length plus the horizontal kernel's read-past
  int64_t band;     // output rows per task
  int64_t bands;    // tasks per output plane
  int64_t taps;     // input rows one band reads
};

template <typename T>
Layout layout(const SeparableShape& s) {
  Layout a;
  a.length = (s.w_out - 1) * s.s1 + (s.k1 - 1) * s.d1 + 1;
  a.cols = std::max<int64_t>(0, std::min(s.w_in, a.length - s.p1));
  a.span = s.s1 == 1 ? s.w_out : (s.w_out - 1) * s.s1 + 1;
  a.row_len = a.length + kSeparableMaxVectorBytes / int64_t(sizeof(T));
  a.band = std::clamp<int64_t>(kBandBytes / (a.row_len * int64_t(sizeof(T))), 4, 64) / 4 * 4;
  a.band = std::min(a.band, s.h_out);
  a.bands = (s.h_out + a.band - 1) / a.band;
  a.taps = (a.band - 1) * s.s0 + (s.k0 - 1) * s.d0 + 1;
  return a;
}

// One band of output rows [i0, i0 + nb) of output plane (nn, o, l).
template <typename T>
void run_band(const SeparableShape& s, const Layout& a, Scratch<T>& w, const T* x, const T* f0,
              const T* f1, const T* bias, T* y, int64_t nn, int64_t o, int64_t l, int64_t i0) {
  const int64_t nb = std::min(a.band, s.h_out - i0), m = s.k / s.groups, g = o / m;
  const int64_t n_rows = (nb - 1) * s.s0 + (s.k0 - 1) * s.d0 + 1;
  T* yp = y + (((nn * s.k + o) * s.lines + l) * s.h_out + i0) * s.w_out;
  for (int64_t ci = 0; ci < s.cg; ++ci) {
    const int64_t xc = s.pairs ? (g * s.cg + ci) * m + o % m : g * s.cg + ci;
    const T* xp = x + ((nn * s.x_channels + xc) * s.lines + l) * s.h_in * s.w_in;
    for (int64_t q = 0; q < n_rows; ++q) {
      const int64_t i = i0 * s.s0 - s.p0 + q;
      w.rows[q] = i >= 0 && i < s.h_in ? xp + i * s.w_in : w.zero.data();
    }
    const T* fa = f0 + (o * s.cg + ci) * s.k0;
    const T* fb = f1 + (o * s.cg + ci) * s.k1;
    if (a.cols > 0)
      vertical(w.rows.data(), fa, s.k0, s.s0, s.d0, nb, a.cols, w.band.data() + s.p1, a.row_len);
    const bool accumulate = ci > 0 || bias != nullptr;
    for (int64_t r = 0; r < nb; ++r) {
      T* yr = yp + r * s.w_out;
      if (ci == 0 && bias != nullptr) std::fill(yr, yr + s.w_out, bias[o]);
      const T* src = w.band.data() + r * a.row_len;
      if (s.s1 == 1) {
        horizontal(src, fb, s.k1, s.d1, s.w_out, yr, accumulate);
        continue;
      }
      horizontal(src, fb, s.k1, s.d1, a.span, w.strided.data(), false);  // then subsample
      for (int64_t j = 0; j < s.w_out; ++j)
        yr[j] = accumulate ? yr[j] + w.strided[j * s.s1] : w.strided[j * s.s1];
    }
  }
}

}  // namespace

template <typename T>
void separable_conv2d(const SeparableShape& s, const T* x, const T* f0, const T* f1,
                      const T* bias, T* y) {
  const Layout a = layout<T>(s);
  const int64_t planes = s.n * s.k * s.lines;
  parallel_for(planes * a.bands, 1, [&](int64_t begin, int64_t end) {
    thread_local Scratch<T> w;
    // The padding columns of each scratch row stay zero: the vertical pass writes the middle.
    w.band.assign(size_t(a.band * a.row_len), T(0));
    if (int64_t(w.zero.size()) < s.w_in) w.zero.assign(size_t(s.w_in), T(0));
    if (int64_t(w.strided.size()) < a.span) w.strided.resize(size_t(a.span));
    if (int64_t(w.rows.size()) < a.taps) w.rows.resize(size_t(a.taps));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t plane = task / a.bands, i0 = task % a.bands * a.band;
      const int64_t l = plane % s.lines, o = plane / s.lines % s.k, nn = plane / (s.lines * s.k);
      run_band(s, a, w, x, f0, f1, bias, y, nn, o, l, i0);
    }
  });
}

template void separable_conv2d<float>(const SeparableShape&, const float*, const float*,
                                      const float*, const float*, float*);
template void separable_conv2d<double>(const SeparableShape&, const double*, const double*,
                                       const double*, const double*, double*);

}  // namespace fastconv::algo
