// Stride phases of the strided forward (ForwardPhases, conv_panels.h): where they apply, their
// geometry and tap table, and the split of an input into them.
#include <algorithm>

#include "algo/conv_panels.h"
#include "common/signed_div.h"
#include "fastconv/parallel.h"
#include "gemm/gemm.h"
#include "ukernels/depthwise/dw_ukernels.h"

namespace fastconv::algo {

bool forward_phases_apply(const ConvGeometry& g) {
  const bool strided = g.stride[1] > 1 || g.stride[2] > 1;
  // Windows that do not overlap (kernel <= stride: U-Net's 2x2 / 2) read each input element
  // once, so the split is an extra pass; it still pays with 16-wide panels (AVX2), where the
  // strided gather's cost per panel row is twice that of 32-wide ones. unet.up2x2 (2 threads,
  // ms, with / without the split, two interleaved A/Bs on a noisy VM): AVX2 backward data
  // 1.81 / 3.15 and 1.55 / 1.68, weight 1.62 / 2.01 and 1.57 / 1.65; AVX-512 (not split)
  // 1.65 / 1.58, 1.81 / 1.59.
  const bool overlap = g.kernel_spatial() > g.stride[1] * g.stride[2];
  const bool narrow_panels = gemm::panel_width<float>() <= 16 && g.kernel_spatial() > 1;
  return strided && g.rank <= 2 && g.in[0] == 1 && g.kernel[0] == 1 && g.stride[0] == 1 &&
         (overlap || narrow_panels);
}

constexpr int64_t kDoubleStepMinRow = 24;

bool forward_double_step(const ConvGeometry& g, int64_t elem_size) {
  const int64_t nr = elem_size == 4 ? gemm::panel_width<float>() : gemm::panel_width<double>();
  return nr >= 32 && g.stride[2] == 2 && g.out[2] >= kDoubleStepMinRow && forward_phases_apply(g);
}

bool forward_reads_phases(const ConvGeometry& g, int64_t elem_size) {
  return forward_phases_apply(g) && !forward_double_step(g, elem_size);
}

ForwardPhases make_forward_phases(const ConvGeometry& g) {
  const int64_t sy = g.stride[1], sx = g.stride[2];
  ForwardPhases ph;
  ph.grid = g;
  ph.grid.stride = {1, 1, 1};
  ph.grid.pad_lo = ph.grid.pad_hi = {0, 0, 0};
  ph.grid.dilation = {1, 1, 1};
  ph.grid.in = {sy * sx, (g.in[1] + sy - 1) / sy, (g.in[2] + sx - 1) / sx};
  ph.channel_size = ph.grid.in_spatial();
  const int64_t taps = g.kernel_spatial();
  ph.offsets.dz.resize(size_t(taps));
  ph.offsets.dy.resize(size_t(taps));
  ph.offsets.dx.resize(size_t(taps));
  for (int64_t t = 0; t < taps; ++t) {
    // input index s * o + e of tap t = plane (e mod s), element o + floor(e / s)
    const int64_t ey = tap_position(g, 1, t / g.kernel[2]) * g.dilation[1] - g.pad_lo[1];
    const int64_t ex = tap_position(g, 2, t % g.kernel[2]) * g.dilation[2] - g.pad_lo[2];
    const int64_t qy = floor_div(ey, sy), qx = floor_div(ex, sx);
    ph.offsets.dz[size_t(t)] = (ey - qy * sy) * sx + (ex - qx * sx);
    ph.offsets.dy[size_t(t)] = qy;
    ph.offsets.dx[size_t(t)] = qx;
  }
  return ph;
}

// Row r of plane (ry, e) is input row sy * (j0 + r) + ry at columns sx * i + e - pad (zero
// outside the input), split by the active ISA's row kernel a column of vectors at a time down
// the rows (stride 2 by vector deinterleaves, every plane in one sweep). Row by row with SSE
// shuffles before: 9.4% of CIFAR ResNet's 32 -> 64 3x3/2 forward on 16x16 x128, whose rows of
// 16 were mostly call and tail.
template <typename T>
void split_plane_rows(const ConvGeometry& g, const T* xc, int64_t j0, int64_t count,
                      int64_t width, int64_t pad, int64_t cols, int64_t plane, T* dst) {
  const int64_t sy = g.stride[1], sx = g.stride[2], H = g.in[1], W = g.in[2];
  for (int64_t ry = 0; ry < sy; ++ry) {
    T* planes = dst + ry * cols * plane;  // the planes of row phase ry
    const int64_t lo = std::clamp<int64_t>(-j0, 0, count);  // rows [lo, hi) read the input
    const int64_t hi = std::clamp<int64_t>((H - ry + sy - 1) / sy - j0, lo, count);
    for (int64_t e = 0; e < cols; ++e) {
      std::fill(planes + e * plane, planes + e * plane + lo * width, T(0));
      std::fill(planes + e * plane + hi * width, planes + e * plane + count * width, T(0));
    }
    if (hi > lo)
      dw_kernels<T>().pack_rows(xc + (sy * (j0 + lo) + ry) * W, sy * W, hi - lo, W, pad, sx,
                                width, planes + lo * width, width, plane, cols);
  }
}

template <typename T>
void split_phase_rows(const ConvGeometry& g, const ForwardPhases& ph, const T* xc, int64_t j0,
                      int64_t count, int64_t plane, T* dst) {
  split_plane_rows(g, xc, j0, count, ph.grid.in[2], 0, g.stride[2], plane, dst);
}

template <typename T>
void split_forward_phases(const ConvGeometry& g, const ForwardPhases& ph, const T* x,
                          int64_t images, int64_t image_stride, int64_t channels, T* dst) {
  const int64_t hp = ph.grid.in[1], plane = hp * ph.grid.in[2], in_sp = g.in_spatial();
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, in_sp));
  parallel_for(images * channels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t i = idx / channels, c = idx % channels;
      split_phase_rows(g, ph, x + i * image_stride + c * in_sp, 0, hp, plane,
                       dst + idx * ph.channel_size);
    }
  });
}

template void split_plane_rows<float>(const ConvGeometry&, const float*, int64_t, int64_t,
                                      int64_t, int64_t, int64_t, int64_t, float*);
template void split_plane_rows<double>(const ConvGeometry&, const double*, int64_t, int64_t,
                                       int64_t, int64_t, int64_t, int64_t, double*);
template void split_phase_rows<float>(const ConvGeometry&, const ForwardPhases&, const float*,
                                      int64_t, int64_t, int64_t, float*);
template void split_phase_rows<double>(const ConvGeometry&, const ForwardPhases&, const double*,
                                       int64_t, int64_t, int64_t, double*);
template void split_forward_phases<float>(const ConvGeometry&, const ForwardPhases&, const float*,
                                          int64_t, int64_t, int64_t, float*);
template void split_forward_phases<double>(const ConvGeometry&, const ForwardPhases&,
                                           const double*, int64_t, int64_t, int64_t, double*);
}  // namespace fastconv::algo
