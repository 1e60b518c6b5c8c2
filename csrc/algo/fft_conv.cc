// FFT convolution: overlap-save tiles of the input, our own batched real FFTs (fft/fft.h), the
// channel reduction as a complex GEMM per frequency (elementwise for depthwise), inverse FFTs,
// crop. Forward and backward data are one engine, here (backward data correlates zero-inserted
// grad_y with the flipped, K<->C transposed kernel); backward weight correlates input and grad_y
// tiles and sums over batch and tiles in the frequency domain before one inverse FFT per (k, c)
// (algo/fft_weight_gradient.cc). Strided forward / backward weight split the input into stride^d
// polyphase components that act as extra input channels of a stride-1 correlation with the
// matching kernel taps. The plan holds the layout (algo/fft_layout.h); tiles move in and out
// through algo/fft_tiles.h.
#include "algo/fft_conv.h"

#include <algorithm>
#include <memory>
#include <string>

#include "algo/fft_layout.h"
#include "algo/fft_tiles.h"
#include "algo/fft_weight_gradient.h"
#include "fastconv/parallel.h"
#include "fft/fft_nd.h"
#include "gemm/gemm.h"

namespace fastconv::algo {
namespace fft_conv {
namespace {

// S_out[f] = W'[f] S_in[f] per group: one stacked real GEMM per frequency (groups == 1), four per
// group (groups > 1), or an elementwise complex product (one input channel per group).
template <typename T>
void frequency_products(const Layout& L, const T* kspec, const T* sin, T* sout) {
  const int64_t Tt = L.tiles_per_block, li = L.in_lanes, lo = L.out_lanes, fsi = fft::fstride(li),
                fso = fft::fstride(lo);
  if (L.in_per_group == 1) {
    parallel_for(L.frequencies, 1, [&](int64_t f0, int64_t f1) {
      for (int64_t f = f0; f < f1; ++f) {
        const T* wr = kspec + f * 2 * L.out_channels;
        const T* wi = wr + L.out_channels;
        const T* xr = sin + f * fsi;
        const T* xi = xr + li;
        T* yr = sout + f * fso;
        T* yi = yr + lo;
        if (Tt == 1 && L.out_per_group == 1) {  // depthwise, one tile: vectorise over channels
#pragma GCC ivdep
          for (int64_t o = 0; o < L.out_channels; ++o) {
            yr[o] = wr[o] * xr[o] - wi[o] * xi[o];
            yi[o] = wr[o] * xi[o] + wi[o] * xr[o];
          }
          continue;
        }
        if (Tt < 16 && L.out_per_group == 1) {  // few tiles: weights expanded per 16 lanes
          for (int64_t l0 = 0; l0 < lo; l0 += 16) {
            const int64_t n = std::min<int64_t>(16, lo - l0);
            T a[16], b[16];
            for (int64_t j = 0; j < n; ++j) a[j] = wr[(l0 + j) / Tt], b[j] = wi[(l0 + j) / Tt];
            for (int64_t j = 0; j < n; ++j) {
              const T p = xr[l0 + j], q = xi[l0 + j];
              yr[l0 + j] = a[j] * p - b[j] * q;
              yi[l0 + j] = a[j] * q + b[j] * p;
            }
          }
          continue;
        }
        for (int64_t o = 0; o < L.out_channels; ++o) {
          const int64_t c = o / L.out_per_group;
          const T a = wr[o], b = wi[o];
#pragma GCC ivdep
          for (int64_t t = 0; t < Tt; ++t) {
            yr[o * Tt + t] = a * xr[c * Tt + t] - b * xi[c * Tt + t];
            yi[o * Tt + t] = a * xi[c * Tt + t] + b * xr[c * Tt + t];
          }
        }
      }
    });
    return;
  }
  using gemm::MatrixRef;
  const int64_t cg = L.in_per_group, kg = L.out_per_group;
  if (L.groups == 1) {
    gemm::gemm_batched<T>(L.frequencies, 2 * kg, Tt, 2 * cg, T(1), MatrixRef<T>{kspec, 2 * cg, 1},
                          4 * kg * cg, MatrixRef<T>{sin, Tt, 1}, fsi, T(0), sout, Tt, fso);
    return;
  }
  for (int64_t grp = 0; grp < L.groups; ++grp) {
    const T* a = kspec + grp * 4 * kg * cg;
    const int64_t sa = L.groups * 4 * kg * cg, ld = 2 * cg;
    const T* xr = sin + grp * cg * Tt;
    const T* xi = xr + li;
    T* yr = sout + grp * kg * Tt;
    T* yi = yr + lo;
    auto run = [&](const T* am, const T* b, T beta, T* c) {
      gemm::gemm_batched<T>(L.frequencies, kg, Tt, cg, T(1), MatrixRef<T>{am, ld, 1}, sa,
                            MatrixRef<T>{b, Tt, 1}, fsi, beta, c, Tt, fso);
    };
    run(a, xr, T(0), yr);                 // Wr' Xr
    run(a + cg, xi, T(1), yr);            // - Wi' Xi
    run(a + kg * ld, xr, T(0), yi);       // Wi' Xr
    run(a + kg * ld + cg, xi, T(1), yi);  // Wr' Xi
  }
}

// Lane-local layers: each worker takes chunks of chunk_pairs two-for-one pairs (lanes: channel x
// tile) through load, forward transforms, product with the kernel spectrum, inverse and store in
// its own small buffers, so a chunk stays in L2 and no phase waits for another worker.
template <typename T>
void run_lane_local(const ConvGeometry& g, const Layout& L, const fft::PlanNd<T>& pl, const T* src,
                    const Dims& src_ext, const T* w, const T* bias, T* dst, const Dims& dst_ext,
                    T* kspec, T* loc, const Dims& need) {
  const int64_t s_off =
      round64(L.points * fft::rstride(2 * L.chunk_pairs) * int64_t(sizeof(T))) / int64_t(sizeof(T));
  // Kernel spectra through worker 0's buffers, in chunks of 2 chunk_pairs pairs.
  kernel_spectra(g, L, pl, w, 2 * L.chunk_pairs, kspec, loc, loc + s_off);
  const int64_t half = L.in_lanes / 2, chunks = (half + L.chunk_pairs - 1) / L.chunk_pairs;
  parallel_for(L.workers, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t wk = w0; wk < w1; ++wk) {
      T* R = loc + wk * L.worker_buffer_elems;
      T* S = R + s_off;
      for (int64_t c = wk; c < chunks; c += L.workers) {
        const int64_t p0 = c * L.chunk_pairs, nh = std::min(L.chunk_pairs, half - p0),
                      lanes = 2 * nh;
        const LaneMap map{fft::rstride(lanes), nh, p0, half + p0};
        const int64_t fs = fft::fstride(lanes);
        load_tiles(L, L.input_load, src, L.in_channels, src_ext, 0, R, 0, lanes, &map);
        fft::forward_nd(pl, R, lanes, S, L.fft_length[0], L.fft_length[1]);
        int64_t ch[2 * kMaxChunkPairs];  // channel of each local lane
        for (int64_t l = 0; l < lanes; ++l) ch[l] = map.global(l) / L.tiles_per_block;
        for (int64_t f = 0; f < L.frequencies; ++f) {
          const T* wr = kspec + f * 2 * L.out_channels;
          const T* wi = wr + L.out_channels;
          T* yr = S + f * fs;
          T* yi = yr + lanes;
          for (int64_t l = 0; l < lanes; ++l) {
            const T a = wr[ch[l]], b = wi[ch[l]], p = yr[l], q = yi[l];
            yr[l] = a * p - b * q;
            yi[l] = a * q + b * p;
          }
        }
        fft::inverse_dh(pl, S, lanes, need[0]);
        fft::inverse_w(pl, S, lanes, 0, lanes, R, need[0], need[1]);
        store_tiles(L, R, dst_ext, bias, 0, dst, 0, lanes, &map);
      }
    }
  });
}

// The forward and backward-data engine: tiles of src (N, in_channels, *src_ext) -> dst
// (N, out_channels, *dst_ext), one block of tiles at a time.
template <typename T>
void run_forward_engine(const ConvGeometry& g, const Layout& L, const T* src, const Dims& src_ext,
                        const T* w, const T* bias, T* dst, const Dims& dst_ext, T* ws) {
  T* base = aligned_base(ws);
  const fft::PlanNd<T> pl = build_plans(L, base);
  T* kspec = carve(base, L.kernel_spectra_offset);
  const Dims need = L.tile_outputs;  // rows of the inverse transform that outputs read
  if (L.lane_local) {
    run_lane_local(g, L, pl, src, src_ext, w, bias, dst, dst_ext, kspec,
                   carve(base, L.worker_buffers_offset), need);
    return;
  }
  T* R = carve(base, L.tile_buffer_offset);
  T* sin = carve(base, L.in_spectra_offset);
  T* sout = carve(base, L.out_spectra_offset);
  kernel_spectra(g, L, pl, w, L.in_lanes, kspec, R, sin);
  for (int64_t t0 = 0; t0 < L.total_tiles; t0 += L.tiles_per_block) {
    load_tiles(L, L.input_load, src, L.in_channels, src_ext, t0, R, 0, -1, nullptr, &L.phases);
    fft::forward_nd(pl, R, L.in_lanes, sin, L.fft_length[0], L.fft_length[1]);
    frequency_products(L, kspec, sin, sout);
    fft::inverse_dh(pl, sout, L.out_lanes, need[0]);
    fft::inverse_w(pl, sout, L.out_lanes, 0, L.out_lanes, R, need[0], need[1]);
    store_tiles(L, R, dst_ext, bias, t0, dst);
  }
}

std::string unsupported_reason(const ConvGeometry& g, ConvPass pass) {
  // The transforms are as long as the dilated kernel and the tiles cover the padded input:
  // extents past these make plans that take minutes (found by tests/native/fuzz_geometry.cc).
  constexpr int64_t kMaxKernelExtent = int64_t(1) << 16, kMaxPadded = int64_t(1) << 31;
  for (int d = 0; d < 3; ++d) {
    const int64_t padded = g.in[d] + g.pad_lo[d] + g.pad_hi[d];
    if (dilated(g, d) > kMaxKernelExtent || padded > kMaxPadded || g.out[d] > kMaxPadded)
      return "fft: the dilated kernel extent " + std::to_string(dilated(g, d)) +
             " or the padded input extent " + std::to_string(padded) +
             " is beyond the transforms' range (2^16 / 2^31); use implicit_gemm";
  }
  if (pass != ConvPass::kBackwardData)
    for (int d = 0; d < 3; ++d)
      if (g.stride[d] > dilated(g, d))
        return "fft: stride " + std::to_string(g.stride[d]) +
               " exceeds the dilated kernel extent " + std::to_string(dilated(g, d)) +
               " (the polyphase split would transform input phases no tap reads; use "
               "implicit_gemm)";
  return "";
}

// The Layout fft_plan made for this plan.
const Layout& layout_of(const ConvPlan& plan) {
  return *static_cast<const Layout*>(plan.detail.get());
}

}  // namespace
}  // namespace fft_conv

template <typename T>
void fft_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  const ConvGeometry& g = plan.g;
  const fft_conv::Layout& L = fft_conv::layout_of(plan);
  if (L.total_tiles == 0 || g.k == 0) return;
  fft_conv::run_forward_engine(g, L, x, g.in, w, bias, y, g.out, ws);
}

template <typename T>
void fft_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws) {
  const ConvGeometry& g = plan.g;
  const fft_conv::Layout& L = fft_conv::layout_of(plan);
  if (L.total_tiles == 0 || g.c == 0) return;
  fft_conv::run_forward_engine<T>(g, L, grad_y, g.out, w, nullptr, grad_x, g.in, ws);
}

template <typename T>
void fft_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w, T* ws) {
  const ConvGeometry& g = plan.g;
  const fft_conv::Layout& L = fft_conv::layout_of(plan);
  if (L.total_tiles == 0) {
    std::fill(grad_w, grad_w + g.k * g.c_per_group() * g.kernel_spatial(), T(0));
    return;
  }
  fft_conv::weight_gradient(g, L, x, grad_y, grad_w, ws);
}

std::string fft_plan(ConvPlan& plan) {
  const std::string why = fft_conv::unsupported_reason(plan.g, plan.pass);
  if (!why.empty()) return why;
  auto layout = std::make_shared<const fft_conv::Layout>(
      fft_conv::make_layout(plan.g, plan.pass, dtype_size(plan.dtype), plan.threads));
  plan.workspace_bytes = layout->workspace_bytes;  // 0 for an empty batch
  plan.detail = std::move(layout);
  return "";
}

#define FASTCONV_INSTANTIATE(T)                                                        \
  template void fft_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*); \
  template void fft_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);     \
  template void fft_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
