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

void correlate(const float* const* a, const float* const* b, const SeparableCorrelation& c,
               float* acc) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(sep_correlate_f32);
  kernel(a, b, c, acc);
}
void correlate(const double* const* a, const double* const* b, const SeparableCorrelation& c,
               double* acc) {
  static const auto kernel = FASTCONV_KERNEL_BY_ISA(sep_correlate_f64);
  kernel(a, b, c, acc);
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

// The vertical pass of output rows [i0, i0 + nb) over input plane xp into the band rows:
// its taps, and rows[q] = input row i0 * s0 - p0 + q (the zero row where that is padding).
template <typename T>
SeparableTaps band_rows(const SeparableShape& s, const Layout& a, Scratch<T>& w, const T* xp,
                        int64_t i0, int64_t nb) {
  const int64_t n_rows = (nb - 1) * s.s0 + (s.k0 - 1) * s.d0 + 1;
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
  for (int64_t q = 0; q < n_rows; ++q)
    w.rows[q] = q >= v.valid_begin && q < v.valid_end ? xp + (first + q) * s.w_in : w.zero.data();
  return v;
}

// One band of output rows [i0, i0 + nb) of output plane (nn, o, l).
template <typename T>
void run_band(const SeparableShape& s, const Layout& a, Scratch<T>& w, const T* x, const T* f0,
              const T* f1, const T* bias, T* y, int64_t nn, int64_t o, int64_t l, int64_t i0) {
  const int64_t nb = std::min(a.band, s.h_out - i0), m = s.k / s.groups, g = o / m;
  T* const yp = y + (((nn * s.k + o) * s.lines + l) * s.h_out + i0) * s.w_out;
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
    const SeparableTaps v = band_rows(s, a, w, xp, i0, nb);
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

namespace {

// The backward pass's per-thread scratch: the forward's, and grad_y's band with its zero
// padding, the horizontal adjoint's output, the row pointers of the sums and their lanes.
template <typename T>
struct FactorScratch {
  Scratch<T> fwd;
  std::vector<T> g, u, acc, flipped;
  std::vector<const T*> g_rows, u_rows, band_rows;
};

template <typename T>
void grow(std::vector<T>& v, int64_t n) {
  if (int64_t(v.size()) < n) v.resize(size_t(n));
}

// One (pair, image) task of separable_conv2d_backward_factors: its sums over every band, per
// tap, into sums[0, k0) (f0) and sums[k0, k0 + k1) (f1).
template <typename T>
void factor_task(const SeparableShape& s, const Layout& a, FactorScratch<T>& w, const T* x,
                 const T* grad_y, const T* f0, const T* f1, int64_t pair, int64_t image,
                 T* sums) {
  constexpr int64_t kLanes = kSeparableLanes<T>;
  const int64_t o = pair / s.cg, ci = pair % s.cg, m = s.k / s.groups, g = o / m;
  const int64_t nn = image / s.lines, l = image % s.lines;
  const T* xp = x + ((nn * s.x_channels + g * s.cg + ci) * s.lines + l) * s.h_in * s.w_in;
  const T* gp = grad_y + ((nn * s.k + o) * s.lines + l) * s.h_out * s.w_out;
  const T* fa = f0 + pair * s.k0;
  const T* fb = f1 + pair * s.k1;
  for (int64_t t = 0; t < s.k1; ++t) w.flipped[t] = fb[s.k1 - 1 - t];
  // grad_y rows sit at q1 in rows of g_len zeros: the adjoint's taps read [q1 - (k1-1) d1, ..).
  const int64_t q1 = (s.k1 - 1) * s.d1 - s.p1;
  const int64_t g_vec = (s.w_out + kLanes - 1) / kLanes * kLanes;
  const int64_t g_len = std::max(q1 + g_vec, s.w_in + (s.k1 - 1) * s.d1 + 2 * kLanes);
  const int64_t u_len = (s.w_in + kLanes - 1) / kLanes * kLanes;
  std::fill(w.acc.begin(), w.acc.end(), T(0));
  T* acc0 = w.acc.data();
  T* acc1 = acc0 + s.k0 * kLanes;
  for (int64_t i0 = 0; i0 < s.h_out; i0 += a.band) {
    const int64_t nb = std::min(a.band, s.h_out - i0);
    const SeparableTaps v = band_rows(s, a, w.fwd, xp, i0, nb);
    if (a.cols > 0) vertical(w.fwd.rows.data(), fa, v, w.fwd.band.data() + s.p1);
    for (int64_t r = 0; r < nb; ++r) {
      T* row = w.g.data() + r * g_len;
      std::copy(gp + (i0 + r) * s.w_out, gp + (i0 + r + 1) * s.w_out, row + q1);
      w.g_rows[r] = row + q1;
      w.band_rows[r] = w.fwd.band.data() + r * a.row_len;
      w.u_rows[r] = w.u.data() + r * u_len;
    }
    SeparableCorrelation c1;  // f1: grad_y rows against the vertical pass's rows, shifted
    c1.k = s.k1;
    c1.rows = nb;
    c1.width = g_vec;
    c1.col_step = s.d1;
    correlate(w.g_rows.data(), w.band_rows.data(), c1, acc1);
    SeparableTaps h;  // u = the horizontal pass's adjoint on grad_y
    h.k = s.k1;
    h.dilation = s.d1;
    h.valid_begin = q1;
    h.valid_end = q1 + s.w_out;
    h.count = s.w_in;
    h.lines = nb;
    h.in_stride = g_len;
    h.out_stride = u_len;
    h.cached = true;
    horizontal(w.g.data(), w.flipped.data(), h, w.u.data(), false);
    SeparableCorrelation c0;  // f0: u rows against the input rows the taps read
    c0.k = s.k0;
    c0.rows = nb;
    c0.width = s.w_in;
    c0.row_step = s.d0;
    correlate(w.u_rows.data(), w.fwd.rows.data(), c0, acc0);
  }
  for (int64_t t = 0; t < s.k0 + s.k1; ++t) {
    T sum = 0;
    for (int64_t lane = 0; lane < kLanes; ++lane) sum += w.acc[t * kLanes + lane];
    sums[t] = sum;
  }
}

}  // namespace

template <typename T>
void separable_conv2d_backward_factors(const SeparableShape& s, const T* x, const T* grad_y,
                                       const T* f0, const T* f1, T* grad_f0, T* grad_f1) {
  constexpr int64_t kLanes = kSeparableLanes<T>;
  const Layout a = layout<T>(s);
  const int64_t pairs = s.k * s.cg, images = s.n * s.lines, taps = s.k0 + s.k1;
  std::vector<T> partial(size_t(pairs * images * taps));
  const int64_t q1 = (s.k1 - 1) * s.d1 - s.p1;
  const int64_t g_len = std::max(q1 + (s.w_out + kLanes - 1) / kLanes * kLanes,
                                 s.w_in + (s.k1 - 1) * s.d1 + 2 * kLanes);
  const int64_t u_len = (s.w_in + kLanes - 1) / kLanes * kLanes;
  parallel_for(pairs * images, 1, [&](int64_t begin, int64_t end) {
    thread_local FactorScratch<T> w;
    // (the f1 sums read up to a vector past a band row: the last row's slack)
    w.fwd.band.assign(size_t(a.band * a.row_len + kLanes), T(0));
    if (int64_t(w.fwd.zero.size()) < s.w_in) w.fwd.zero.assign(size_t(s.w_in), T(0));
    grow(w.fwd.rows, a.taps);
    w.g.assign(size_t(a.band * g_len), T(0));  // the padding stays zero: copies fill [q1, ..)
    grow(w.u, a.band * u_len);
    w.acc.assign(size_t(taps * kLanes), T(0));
    grow(w.flipped, s.k1);
    grow(w.g_rows, a.band);
    grow(w.u_rows, a.band);
    grow(w.band_rows, a.band);
    for (int64_t task = begin; task < end; ++task)
      factor_task(s, a, w, x, grad_y, f0, f1, task / images, task % images,
                  partial.data() + task * taps);
  });
  for (int64_t pair = 0; pair < pairs; ++pair)  // images in order: any thread count, one sum
    for (int64_t t = 0; t < taps; ++t) {
      T sum = 0;
      for (int64_t i = 0; i < images; ++i) sum += partial[(pair * images + i) * taps + t];
      (t < s.k0 ? grad_f0[pair * s.k0 + t] : grad_f1[pair * s.k1 + t - s.k0]) = sum;
    }
}

template void separable_conv2d_backward_factors<float>(const SeparableShape&, const float*,
                                                       const float*, const float*, const float*,
                                                       float*, float*);
template void separable_conv2d_backward_factors<double>(const SeparableShape&, const double*,
                                                        const double*, const double*,
                                                        const double*, double*, double*);

template void separable_conv2d<float>(const SeparableShape&, const float*, const float*,
                                      const float*, const float*, float*);
template void separable_conv2d<double>(const SeparableShape&, const double*, const double*,
                                       const double*, const double*, double*);

}  // namespace fastconv::algo
