// The FFT convolution's weight gradient (algo/fft_weight_gradient.h): GW[f] += sum over tiles
// conj(GY[f]) X[f]^T per group, then one inverse per (k, c) and a crop to the kernel taps.
#include "algo/fft_weight_gradient.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "algo/fft_tiles.h"
#include "fastconv/parallel.h"
#include "fft/fft_nd.h"
#include "gemm/gemm.h"

namespace fastconv::algo::fft_conv {
namespace {

// The block's spectra (x: in_lanes, grad_y: out_lanes) and the accumulated weight-gradient
// spectra (weight_grad_lanes, lanes (k, c * phase_count + r)).
template <typename T>
struct WeightSpectra {
  const T* x;
  const T* grad_y;
  T* acc;
};

// One input channel per group: elementwise products, summed over the block's tiles.
template <typename T>
void accumulate_elementwise(const ConvGeometry& g, const Layout& L, const WeightSpectra<T>& s) {
  const int64_t lg = L.weight_grad_lanes, kg = g.k_per_group(), Tt = L.tiles_per_block;
  const int64_t li = L.in_lanes, lo = L.out_lanes;
  const int64_t fsi = fft::fstride(li), fso = fft::fstride(lo), fsg = fft::fstride(lg);
  parallel_for(L.frequencies, 1, [&](int64_t f0, int64_t f1) {
    for (int64_t f = f0; f < f1; ++f) {
      const T* xr = s.x + f * fsi;
      const T* xi = xr + li;
      const T* gr = s.grad_y + f * fso;
      const T* gi = gr + lo;
      T* ar = s.acc + f * fsg;
      T* ai = ar + lg;
      if (kg == 1) {  // depthwise: lane k of grad_y meets lane k of x; vectorise over k
        for (int64_t t = 0; t < Tt; ++t)
#pragma GCC ivdep
          for (int64_t k = 0; k < g.k; ++k) {
            const T a = gr[k * Tt + t], b = gi[k * Tt + t];
            const T p = xr[k * Tt + t], q = xi[k * Tt + t];
            ar[k] += a * p + b * q;
            ai[k] += a * q - b * p;
          }
        continue;
      }
      for (int64_t k = 0; k < g.k; ++k) {
        const int64_t c = k / kg;
        T sr = 0, si = 0;
        for (int64_t t = 0; t < Tt; ++t) {
          const T a = gr[k * Tt + t], b = gi[k * Tt + t];
          const T p = xr[c * Tt + t], q = xi[c * Tt + t];
          sr += a * p + b * q;
          si += a * q - b * p;
        }
        ar[k] += sr;
        ai[k] += si;
      }
    }
  });
}

// Several input channels per group: four real GEMMs per group and frequency, reducing over the
// block's tiles (cg: x channels times phases per group, the GEMMs' n).
template <typename T>
void accumulate_gemms(const ConvGeometry& g, const Layout& L, const WeightSpectra<T>& s) {
  using gemm::MatrixRef;
  const int64_t lg = L.weight_grad_lanes, cg = L.in_per_group, kg = g.k_per_group();
  const int64_t Tt = L.tiles_per_block, li = L.in_lanes, lo = L.out_lanes;
  const int64_t fsi = fft::fstride(li), fso = fft::fstride(lo), fsg = fft::fstride(lg);
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const T* gr = s.grad_y + grp * kg * Tt;
    const T* gi = gr + lo;
    const T* xr = s.x + grp * cg * Tt;
    const T* xi = xr + li;
    T* cr = s.acc + grp * kg * cg;
    T* ci = cr + lg;
    auto run = [&](const T* a, const T* b, T alpha, T* c) {
      gemm::gemm_batched<T>(L.frequencies, kg, cg, Tt, alpha, MatrixRef<T>{a, Tt, 1}, fso,
                            MatrixRef<T>{b, 1, Tt}, fsi, T(1), c, cg, fsg);
    };
    run(gr, xr, T(1), cr);
    run(gi, xi, T(1), cr);
    run(gr, xi, T(1), ci);
    run(gi, xr, T(-1), ci);
  }
}

// grad_w from the inverse of the accumulated spectra: lanes (k, c) in chunks through R, each
// cropped to the kernel taps its polyphase component holds.
template <typename T>
void crop_weight_taps(const ConvGeometry& g, const Layout& L, const fft::PlanNd<T>& pl, T* acc,
                      T* R, T* gw) {
  const int64_t lg = L.weight_grad_lanes, cg = L.in_per_group;
  fft::inverse_dh(pl, acc, lg, L.kernel_extent[0]);
  const int64_t chunk = std::min(lg, L.tile_buffer_lanes - L.tile_buffer_lanes % 2);
  const T scale = T(1.0 / double(L.points));
  const int64_t ksp = g.kernel_spatial(), pairs = g.k * cg, n1 = L.fft_length[1],
                n2 = L.fft_length[2];
  // Per polyphase component r, its taps as (position in R, tap of the stored kernel): lane
  // (k, c * phase_count + r) holds the taps j with j * dilation = q * stride + r. A table built
  // once, as the divisions and tests per tap and lane took 16% of Inception's mixed5b 5x5 weight
  // gradient (48 -> 64 on 35x35, one thread; perf).
  std::vector<std::vector<std::pair<int64_t, int64_t>>> taps_of(L.phase_count);
  const bool flip = g.mode == ConvMode::kConv;
  for (int64_t jd = 0; jd < g.kernel[0]; ++jd)
    for (int64_t jh = 0; jh < g.kernel[1]; ++jh)
      for (int64_t jw = 0; jw < g.kernel[2]; ++jw) {
        const int64_t td = jd * g.dilation[0], th = jh * g.dilation[1], tw = jw * g.dilation[2];
        const int64_t rf = ((td % L.phases[0]) * L.phases[1] + th % L.phases[1]) * L.phases[2] +
                           tw % L.phases[2];
        const int64_t qd = td / L.phases[0], qh = th / L.phases[1], qw = tw / L.phases[2];
        const int64_t od = flip ? g.kernel[0] - 1 - jd : jd;
        const int64_t oh = flip ? g.kernel[1] - 1 - jh : jh;
        const int64_t ow = flip ? g.kernel[2] - 1 - jw : jw;
        taps_of[rf].emplace_back((qd * n1 + qh) * n2 + qw,
                                 (od * g.kernel[1] + oh) * g.kernel[2] + ow);
      }
  for (int64_t l0 = 0; l0 < pairs; l0 += chunk) {
    const int64_t lanes = std::min(chunk, lg - l0);  // even: a pair never reads past lg
    fft::inverse_w(pl, acc, lg, l0, lanes, R, L.kernel_extent[0], L.kernel_extent[1]);
    const int64_t count = std::min(lanes, pairs - l0), cg0 = g.c_per_group(),
                  rs = fft::rstride(lanes);
    parallel_for(count, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t k = (l0 + b) / cg, ip = (l0 + b) % cg;
        T* out = gw + (k * cg0 + ip / L.phase_count) * ksp;
        for (const auto& [src, dst] : taps_of[ip % L.phase_count])
          out[dst] = R[src * rs + b] * scale;
      }
    });
  }
}

}  // namespace

template <typename T>
void weight_gradient(const ConvGeometry& g, const Layout& L, const T* x, const T* grad_y, T* grad_w,
                     T* ws) {
  T* base = aligned_base(ws);
  const fft::PlanNd<T> pl = build_plans(L, base);
  T* acc = carve(base, L.kernel_spectra_offset);
  T* R = carve(base, L.tile_buffer_offset);
  T* sx = carve(base, L.in_spectra_offset);
  T* sg = carve(base, L.out_spectra_offset);
  const WeightSpectra<T> spectra{sx, sg, acc};
  std::memset(acc, 0, size_t(L.frequencies * fft::fstride(L.weight_grad_lanes)) * sizeof(T));
  for (int64_t t0 = 0; t0 < L.total_tiles; t0 += L.tiles_per_block) {
    load_tiles(L, L.input_load, x, L.in_channels, g.in, t0, R, 0, -1, nullptr, &L.phases);
    fft::forward_nd(pl, R, L.in_lanes, sx, L.fft_length[0], L.fft_length[1]);
    load_tiles(L, L.grad_y_load, grad_y, g.k, g.out, t0, R);
    fft::forward_nd(pl, R, L.out_lanes, sg, L.tile_outputs[0], L.tile_outputs[1]);
    if (L.in_per_group == 1)
      accumulate_elementwise(g, L, spectra);
    else
      accumulate_gemms(g, L, spectra);
  }
  crop_weight_taps(g, L, pl, acc, R, grad_w);
}

template void weight_gradient<float>(const ConvGeometry&, const Layout&, const float*, const float*,
                                     float*, float*);
template void weight_gradient<double>(const ConvGeometry&, const Layout&, const double*,
                                      const double*, double*, double*);

}  // namespace fastconv::algo::fft_conv
