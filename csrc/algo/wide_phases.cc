// Column planes of the stride phases for the strided forward (wide_phases.h).
#include "algo/wide_phases.h"

#include <algorithm>

#include "algo/conv_panels.h"
#include "algo/batch_fold.h"
#include "algo/gemm_conv.h"
#include "fastconv/parallel.h"
#include "gemm/cache_sizes.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

namespace {

// B[(c, tap), p] = channel c's planes at p + offset[tap] for the positions p of one band; every
// full panel is read in place, the last partial one packed.
template <typename T>
class WideColumns final : public gemm::PanelSource<T> {
 public:
  WideColumns(const WidePhases& wp, const T* src, int64_t positions)
      : wp_(wp), taps_(int64_t(wp.offsets.size())), src_(src), positions_(positions) {}

  bool rows(int64_t k0, int64_t kc, int64_t n0, int64_t nr, const T** dst) const override {
    if (n0 + nr > positions_) return false;
    int64_t c = k0 / taps_, t = k0 % taps_;
    for (int64_t kk = 0; kk < kc; ++kk) {
      dst[kk] = src_ + n0 + c * wp_.channel_size + wp_.offsets[size_t(t)];
      if (++t == taps_) t = 0, ++c;
    }
    return true;
  }

  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override {
    for (int64_t p0 = 0; p0 < nc; p0 += nr, dst += kc * nr) {
      const int64_t cols = std::min(nr, nc - p0);
      int64_t c = k0 / taps_, t = k0 % taps_;
      for (int64_t kk = 0; kk < kc; ++kk) {
        T* row = dst + kk * nr;
        copy_short(src_ + n0 + p0 + c * wp_.channel_size + wp_.offsets[size_t(t)], cols, row);
        std::fill(row + cols, row + nr, T(0));
        if (++t == taps_) t = 0, ++c;
      }
    }
  }

 private:
  const WidePhases& wp_;
  int64_t taps_;
  const T* src_;
  int64_t positions_;
};

// Splits the `channels` planes of x (channel c at x + c * in_spatial) into their column planes
// for the band of output rows from oy0, channel c at dst + c * channel_size: plane (ry, e) row r,
// column i holds x[sy * (r + oy0 + qy0) + ry, sx * i + ex0 + e] (zero outside x).
template <typename T>
void split_wide(const ConvGeometry& g, const WidePhases& wp, int64_t oy0, const T* x,
                int64_t channels, T* dst) {
  const int64_t in_sp = g.in_spatial();
  parallel_for(channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c)
      split_plane_rows(g, x + c * in_sp, oy0 + wp.qy0, wp.height, wp.width, -wp.ex0, wp.cols,
                       wp.plane_size, dst + c * wp.channel_size);
  });
}

// Column planes one GEMM reads in place, at most (bands of output rows of a large image): planes
// of 13-15 MiB ran slower than the packed phases, 2-7 MiB faster.
constexpr int64_t kPlanesBudget = int64_t(4) << 20;

// Output rows per band: all of them where an image's planes fit the budget.
int64_t band_rows(const ConvGeometry& g, int64_t elem_size) {
  const WidePhases whole = make_wide_phases(g);
  if (g.c_per_group() * whole.channel_size * elem_size <= kPlanesBudget) return g.out[1];
  const int64_t row_bytes = g.c_per_group() * whole.planes * whole.width * elem_size;
  const int64_t margin = whole.height - g.out[1];  // rows a band reads beyond its own
  return std::clamp<int64_t>(kPlanesBudget / row_bytes - margin, 1, g.out[1]);
}

// Every GEMM (per image, group and band) reads the weight packed once per call, each group's
// packed_a_elems(kg, rows) apart: with A read in place (the engine's choice for a few panels of
// columns: 256 positions of 16x16) it packed B too, 20% of CIFAR ResNet's 16 -> 32 3x3/2.
template <typename T>
int64_t packed_group_elems(const ConvGeometry& g) {
  return (gemm::packed_a_elems<T>(g.k_per_group(), g.c_per_group() * g.kernel_spatial()) + 15) /
         16 * 16;
}

int64_t packed_weight_elems(const ConvGeometry& g, int64_t elem_size) {
  return g.groups *
         (elem_size == 4 ? packed_group_elems<float>(g) : packed_group_elems<double>(g));
}

}  // namespace

WidePhases make_wide_phases(const ConvGeometry& g, int64_t rows) {
  // The stride phases' tap table (make_forward_phases): plane ry * sx + rx, phase row qy and
  // column qx, i.e. input column offset ex = qx * sx + rx.
  const int64_t sy = g.stride[1], sx = g.stride[2], taps = g.kernel_spatial();
  const TapTable tt = make_forward_phases(g).offsets;
  const std::vector<int64_t>& qy = tt.dy;
  std::vector<int64_t> ry(static_cast<size_t>(taps)), ex(ry);
  for (size_t t = 0; t < size_t(taps); ++t) {
    ry[t] = tt.dz[t] / sx;
    ex[t] = tt.dx[t] * sx + tt.dz[t] % sx;
  }
  WidePhases wp;
  const auto [y_lo, y_hi] = std::minmax_element(qy.begin(), qy.end());
  const auto [x_lo, x_hi] = std::minmax_element(ex.begin(), ex.end());
  wp.qy0 = *y_lo;
  wp.ex0 = *x_lo;
  wp.cols = std::max(sx, *x_hi - *x_lo + 1);
  wp.planes = sy * wp.cols;
  wp.rows = rows > 0 ? std::min(rows, g.out[1]) : g.out[1];
  wp.width = g.out[2];
  wp.height = wp.rows + (*y_hi - *y_lo);
  wp.plane_size = wp.height * wp.width;
  wp.channel_size = wp.planes * wp.plane_size;
  wp.offsets.resize(size_t(taps));
  for (int64_t t = 0; t < taps; ++t)
    wp.offsets[size_t(t)] =
        (ry[size_t(t)] * wp.cols + (ex[size_t(t)] - wp.ex0)) * wp.plane_size +
        (qy[size_t(t)] - wp.qy0) * wp.width;
  return wp;
}

namespace {

// Whether one image's planes take at most about a quarter of the L2 (a thread's share), and
// so fit the budget whole (band_rows: a thread takes whole images, never bands).
bool image_planes_fit(const ConvGeometry& g, int64_t elem_size) {
  return g.c_per_group() * make_wide_phases(g).channel_size * elem_size <=
         std::min(gemm::cache_sizes().l2 / 4, kPlanesBudget);
}

}  // namespace

bool wide_phases_apply(const ConvGeometry& g, int64_t elem_size) {
  const int64_t nr = elem_size == 4 ? gemm::panel_width<float>() : gemm::panel_width<double>();
  if (nr < 16 || !forward_reads_phases(g, elem_size) || g.out_spatial() <= 0 ||
      g.k_per_group() > 256)
    return false;
  // 16-wide panels: float32 batches of small images only (AVX2; float64 not measured), with an
  // L2 of 1 MiB or more (measured on 2 MiB; below, the per-tap path's rule holds: _cpu_taps). A
  // large image's planes spill the L2 where the packed phases run in bands per thread
  // (phase_bands.h): AVX2, 2 threads, ab_processes, column planes vs packed phases:
  // res3.3x3s2 0.87-0.89x, yolov5s.conv1 0.88x; CIFAR ResNet's 3x3/2 at batch 128 1.06-1.09x
  // (16 -> 32) and 1.04-1.12x (32 -> 64).
  if (nr < 32 && !(elem_size == 4 && g.n >= 2 && gemm::cache_sizes().l2 >= (int64_t(1) << 20) &&
                   image_planes_fit(g, elem_size)))
    return false;
  // Margins of at most 1/16 of a row in the padded-width phases this layout replaced, or
  // images whose positions fill whole panels on rows of 8+ (a per-image GEMM computes its last
  // panel whole): 2 threads, AVX-512, against the packed phases, 32 -> 64 on 16x16 x128 (8x8
  // outputs) 1.03-1.13x; short rows with a partial last panel lost (128 -> 256 on 28x28 x16,
  // 196 positions: 0.83x; 128 -> 128 on 14x14 x8: 0.89x).
  const ForwardPhases ph = make_forward_phases(g);
  const auto [lo, hi] = std::minmax_element(ph.offsets.dx.begin(), ph.offsets.dx.end());
  return 16 * (*hi - *lo) <= g.out[2] || (g.out[2] >= 8 && g.out_spatial() % nr == 0);
}

bool wide_thread_images(const ConvGeometry& g, int64_t elem_size, int threads) {
  return threads >= 2 && g.n >= 2 * int64_t(threads) && image_planes_fit(g, elem_size);
}

int64_t wide_phases_workspace(const ConvGeometry& g, int64_t elem_size, int threads) {
  const WidePhases wp = make_wide_phases(g, band_rows(g, elem_size));
  const int64_t slot = (g.c_per_group() * wp.channel_size + 15) / 16 * 16;
  const int64_t slots = wide_thread_images(g, elem_size, threads) ? threads : 1;
  return packed_weight_elems(g, elem_size) + slots * slot;
}

template <typename T>
void wide_phases_forward(const ConvGeometry& g, int threads, const T* x, const T* w,
                         const T* bias, T* y, T* ws) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), rows = cg * g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial(), ow = g.out[2];
  if (g.n == 0) return;
  const WidePhases wp = make_wide_phases(g, band_rows(g, sizeof(T)));
  // The weight packed once for every GEMM (packed_group_elems), at the front of ws.
  const int64_t group_elems = packed_group_elems<T>(g);
  T* const packed_w = ws;
  ws += g.groups * group_elems;
  pack_forward_weight(g, w, group_elems, packed_w);
  // Image n's output rows [oy0, oy0 + band), every group, through `planes`: the GEMM writes
  // them in place in y (onto the bias, where there is one).
  const auto run = [&](int64_t n, int64_t oy0, int64_t band, T* planes) {
    const int64_t cols = band * ow;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      split_wide(g, wp, oy0, x + (n * g.c + grp * cg) * in_sp, cg, planes);
      T* c = y + (n * g.k + grp * kg) * out_sp + oy0 * ow;
      if (bias)
        for (int64_t k = 0; k < kg; ++k) std::fill_n(c + k * out_sp, cols, bias[grp * kg + k]);
      const WideColumns<T> b(wp, planes, cols);
      const T beta = bias ? T(1) : T(0);
      gemm::gemm_packed_a<T>(kg, cols, rows, T(1), packed_w + grp * group_elems, b, beta, c,
                             out_sp);
    }
  };
  if (wide_thread_images(g, sizeof(T), threads)) {
    const int64_t slot = (cg * wp.channel_size + 15) / 16 * 16;
    for_each_thread_block(threads, g.n, [&](int64_t n, int64_t s) {
      run(n, 0, g.out[1], ws + s * slot);
    });
    return;
  }
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oy0 = 0; oy0 < g.out[1]; oy0 += wp.rows)
      run(n, oy0, std::min(wp.rows, g.out[1] - oy0), ws);
}

template void wide_phases_forward<float>(const ConvGeometry&, int, const float*, const float*,
                                         const float*, float*, float*);
template void wide_phases_forward<double>(const ConvGeometry&, int, const double*,
                                          const double*, const double*, double*, double*);

}  // namespace fastconv::algo
