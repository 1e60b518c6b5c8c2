// Packing of implicit im2col panels. Each panel is kc rows x nr columns; rows and columns are
// decoded once per panel, and in-bounds unit-stride runs are copied without per-element checks.
#include "algo/conv_panels.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace fastconv::algo {

TapTable::TapTable(const ConvGeometry& g) {
  const int64_t taps = g.kernel_spatial();
  dz.resize(taps);
  dy.resize(taps);
  dx.resize(taps);
  for (int64_t t = 0; t < taps; ++t) {
    const int64_t kd = t / (g.kernel[1] * g.kernel[2]);
    const int64_t kh = (t / g.kernel[2]) % g.kernel[1];
    const int64_t kw = t % g.kernel[2];
    dz[t] = tap_position(g, 0, kd) * g.dilation[0];
    dy[t] = tap_position(g, 1, kh) * g.dilation[1];
    dx[t] = tap_position(g, 2, kw) * g.dilation[2];
  }
}

namespace {

// Window corner (input coordinates of tap 0) of output position o, per dim.
struct Corner {
  int64_t z, y, x;
};

inline Corner corner_of(const ConvGeometry& g, int64_t o) {
  const int64_t ow = o % g.out[2];
  const int64_t oh = (o / g.out[2]) % g.out[1];
  const int64_t od = o / (g.out[2] * g.out[1]);
  return {od * g.stride[0] - g.pad_lo[0], oh * g.stride[1] - g.pad_lo[1],
          ow * g.stride[2] - g.pad_lo[2]};
}

constexpr int64_t kMaxPanelWidth = 64;

void check_panel_width(int64_t nr) {
  if (nr > kMaxPanelWidth) throw std::logic_error("conv panel packing: panel width above 64");
}

inline bool inside(int64_t v, int64_t extent) { return static_cast<uint64_t>(v) < uint64_t(extent); }

}  // namespace

template <typename T>
void ForwardColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                             T* dst) const {
  const ConvGeometry& g = g_;
  const int64_t taps = g.kernel_spatial(), in_sp = g.in_spatial();
  check_panel_width(nr);
  Corner corners[kMaxPanelWidth];
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    for (int64_t j = 0; j < cols; ++j) corners[j] = corner_of(g, n0 + p0 + j);
    // Columns of one output row with unit stride read consecutive input elements.
    const bool one_row = g.stride[2] == 1 && corners[0].y == corners[cols - 1].y &&
                         corners[0].z == corners[cols - 1].z;
    for (int64_t kk = 0; kk < kc; ++kk) {
      const int64_t r = k0 + kk, c = r / taps, t = r % taps;
      const T* xc = x_ + c * in_sp;
      T* row = dst + kk * nr;
      const int64_t dz = taps_.dz[t], dy = taps_.dy[t], dx = taps_.dx[t];
      if (one_row) {
        const int64_t z = corners[0].z + dz, y = corners[0].y + dy, x0 = corners[0].x + dx;
        if (inside(z, g.in[0]) && inside(y, g.in[1]) && x0 >= 0 && x0 + cols <= g.in[2]) {
          std::memcpy(row, xc + (z * g.in[1] + y) * g.in[2] + x0, cols * sizeof(T));
          for (int64_t j = cols; j < nr; ++j) row[j] = T(0);
          continue;
        }
      }
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t z = corners[j].z + dz, y = corners[j].y + dy, x = corners[j].x + dx;
        row[j] = (inside(z, g.in[0]) && inside(y, g.in[1]) && inside(x, g.in[2]))
                     ? xc[(z * g.in[1] + y) * g.in[2] + x]
                     : T(0);
      }
      for (int64_t j = cols; j < nr; ++j) row[j] = T(0);
    }
  }
}

// Output coordinate reached from input coordinate i through dilated tap offset d, or -1.
static inline int64_t source(int64_t i, int64_t pad, int64_t d, int64_t stride, int64_t out) {
  const int64_t s = i + pad - d;
  if (s < 0) return -1;
  if (stride != 1) {
    if (s % stride != 0) return -1;
    const int64_t o = s / stride;
    return o < out ? o : -1;
  }
  return s < out ? s : -1;
}

template <typename T>
void BackwardDataColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                                  T* dst) const {
  const ConvGeometry& g = g_;
  const int64_t taps = g.kernel_spatial(), out_sp = g.out_spatial();
  check_panel_width(nr);
  int64_t iz[kMaxPanelWidth], iy[kMaxPanelWidth], ix[kMaxPanelWidth];
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t i = n0 + p0 + j;
      ix[j] = i % g.in[2];
      iy[j] = (i / g.in[2]) % g.in[1];
      iz[j] = i / (g.in[2] * g.in[1]);
    }
    for (int64_t kk = 0; kk < kc; ++kk) {
      const int64_t r = k0 + kk, k = r / taps, t = r % taps;
      const T* gyk = gy_ + k * out_sp;
      T* row = dst + kk * nr;
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t oz = source(iz[j], g.pad_lo[0], taps_.dz[t], g.stride[0], g.out[0]);
        const int64_t oy = source(iy[j], g.pad_lo[1], taps_.dy[t], g.stride[1], g.out[1]);
        const int64_t ox = source(ix[j], g.pad_lo[2], taps_.dx[t], g.stride[2], g.out[2]);
        row[j] = (oz >= 0 && oy >= 0 && ox >= 0) ? gyk[(oz * g.out[1] + oy) * g.out[2] + ox] : T(0);
      }
      for (int64_t j = cols; j < nr; ++j) row[j] = T(0);
    }
  }
}

template <typename T>
void WeightColumns<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                            T* dst) const {
  const ConvGeometry& g = g_;
  const int64_t taps = g.kernel_spatial(), in_sp = g.in_spatial();
  check_panel_width(nr);
  int64_t chan[kMaxPanelWidth], tz[kMaxPanelWidth], ty[kMaxPanelWidth], tx[kMaxPanelWidth];
  for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
    const int64_t cols = std::min(nr, nc - p0);
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t r = n0 + p0 + j, t = r % taps;
      chan[j] = (r / taps) * in_sp;
      tz[j] = taps_.dz[t];
      ty[j] = taps_.dy[t];
      tx[j] = taps_.dx[t];
    }
    for (int64_t kk = 0; kk < kc; ++kk) {
      const Corner cn = corner_of(g, k0 + kk);
      T* row = dst + kk * nr;
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t z = cn.z + tz[j], y = cn.y + ty[j], x = cn.x + tx[j];
        row[j] = (inside(z, g.in[0]) && inside(y, g.in[1]) && inside(x, g.in[2]))
                     ? x_[chan[j] + (z * g.in[1] + y) * g.in[2] + x]
                     : T(0);
      }
      for (int64_t j = cols; j < nr; ++j) row[j] = T(0);
    }
  }
}

template class ForwardColumns<float>;
template class ForwardColumns<double>;
template class BackwardDataColumns<float>;
template class BackwardDataColumns<double>;
template class WeightColumns<float>;
template class WeightColumns<double>;

}  // namespace fastconv::algo
