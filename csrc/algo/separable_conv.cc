// Separable convolution on 2-D planes, both passes fused per band of rows (separable_conv.h).
#include "algo/separable_conv.h"

#include <algorithm>
#include <vector>

#include "fastconv/parallel.h"
#include "isa/isa_dispatch.h"
#include "ukernels/separable/sep_ukernels.h"

namespace fastconv::algo {

namespace {

// One band's intermediate rows, in L2. Taller bands read each input row fewer times (a band
// reads k0 - 1 rows more than it makes); measured on (8, 64, 128, 128), 31x31, one thread:
// 24 KB 16.4 ms, 48-96 KB 15.6-16.2 ms.
constexpr int64_t kBandBytes = 64 * 1024;

// The active ISA's micro-kernels (csrc/ukernels/separable/sep_*.cc), chosen once.
void vertical(const float* const* rows, const float* f, const SeparableTaps& a, float* out) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(sep_vertical_f32);
  kernel(rows, f, a, out);
}
void vertical(const double* const* rows, const double* f, const SeparableTaps& a, double* out) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(sep_vertical_f64);
  kernel(rows, f, a, out);
}
void horizontal(const float* src, const float* f, const SeparableTaps& a, float* y, bool acc) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(sep_horizontal_f32);
  kernel(src, f, a, y, acc);
}
void horizontal(const double* src, const double* f, const SeparableTaps& a, double* y,
                bool acc) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(sep_horizontal_f64);
  kernel(src, f, a, y, acc);
}

// Per-thread scratch, kept between calls (grown, never shrunk).
template <typename T>
struct Scratch {
  std::vector<T> band;         // the band's vertical outputs, one padded row each
  std::vector<T> zero;         // the row padding rows point at
  std::vector<T> strided;      // a stride-1 horizontal row before subsampling (s1 > 1)
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
  a.band = std::clamp<int64_t>(kBandBytes / (a.row_len * int64_t(sizeof(T))), 4, 128) / 4 * 4;
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
  T* const yp = y + (((nn * s.k + o) * s.lines + l) * s.h_out + i0) * s.w_out;
  // The real input rows of the band: rows[q] is input row i0 * s0 - p0 + q.
  const int64_t first = i0 * s.s0 - s.p0;
  SeparableTaps v;
  v.k = s.k0;
  v.stride = s.s0;
  v.dilation = s.d0;
  v.valid_begin = std::clamp<int64_t>(-first, 0, n_rows);
  v.valid_end = std::clamp<int64_t>(s.h_in - first, v.valid_begin, n_rows);
  v.count = nb;
  v.width = a.cols;
  v.out_stride = a.row_len;
  SeparableTaps h;
  h.k = s.k1;
  h.dilation = s.d1;
  h.valid_begin = s.p1;
  h.valid_end = s.p1 + a.cols;
  h.count = s.s1 == 1 ? s.w_out : a.span;
  h.in_stride = a.row_len;
  h.out_stride = s.w_out;
  for (int64_t ci = 0; ci < s.cg; ++ci) {
    const int64_t xc = s.pairs ? (g * s.cg + ci) * m + o % m : g * s.cg + ci;
    const T* xp = x + ((nn * s.x_channels + xc) * s.lines + l) * s.h_in * s.w_in;
    for (int64_t q = 0; q < n_rows; ++q)
      w.rows[q] = q >= v.valid_begin && q < v.valid_end ? xp + (first + q) * s.w_in : w.zero.data();
    const T* fa = f0 + (o * s.cg + ci) * s.k0;
    const T* fb = f1 + (o * s.cg + ci) * s.k1;
    if (a.cols > 0) vertical(w.rows.data(), fa, v, w.band.data() + s.p1);
    const bool accumulate = ci > 0 || bias != nullptr;
    if (ci == 0 && bias != nullptr) std::fill(yp, yp + nb * s.w_out, bias[o]);
    if (s.s1 == 1) {
      h.lines = nb;
      horizontal(w.band.data(), fb, h, yp, accumulate);
      continue;
    }
    for (int64_t r = 0; r < nb; ++r) {  // at stride 1, then subsampled
      horizontal(w.band.data() + r * a.row_len, fb, h, w.strided.data(), false);
      T* yr = yp + r * s.w_out;
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
