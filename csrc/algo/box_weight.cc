// The weight gradient of padding-heavy convolutions as one GEMM per kernel tap over only the
// output positions whose input that tap reaches (see box_weight.h).
#include "algo/box_weight.h"

#include <algorithm>
#include <cstring>

#include "algo/conv_panels.h"
#include "algo/plane_transpose.h"
#include "fastconv/parallel.h"
#include "gemm/gemm.h"

namespace fastconv::algo {
namespace {

// The positions one kernel tap reaches, as the reduction of a weight-gradient GEMM whose
// operands are channels-last: row kk of the source is the kk-th point, in (image, z, y, x)
// order, of `images` boxes [lo, hi) of output coordinates; it reads the channels [n0, n0 + nc)
// of tensor position image * image_positions + sum_d (o_d * step_d + shift_d) * (the product
// of the extents after d), `channels` elements per position. With step 1 and shift 0 this is
// grad_y at the output positions; with the stride and tap offset minus the padding, the input
// each of them reads through the tap. Serves as A^T (panels MR wide) and as B.
template <typename T>
class BoxPositions final : public gemm::PanelSource<T> {
 public:
  BoxPositions(const T* src, int64_t channels, const Dims& extent, int64_t image_positions,
               int64_t images, const Dims& lo, const Dims& hi, const Dims& step, const Dims& shift)
      : src_(src), channels_(channels), extent_(extent), image_positions_(image_positions),
        images_(images), lo_(lo), hi_(hi), step_(step), shift_(shift) {}
  // Points of the boxes: the GEMM's reduction length.
  int64_t count() const;
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override;

 private:
  const T* src_;
  int64_t channels_;
  Dims extent_;
  int64_t image_positions_, images_;
  Dims lo_, hi_, step_, shift_;
};

template <typename T>
int64_t BoxPositions<T>::count() const {
  int64_t n = images_;
  for (int d = 0; d < kMaxRank; ++d) n *= std::max<int64_t>(0, hi_[d] - lo_[d]);
  return n;
}

template <typename T>
void BoxPositions<T>::pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr,
                           T* dst) const {
  const int64_t w = hi_[2] - lo_[2], h = hi_[1] - lo_[1], d = hi_[0] - lo_[0];
  const int64_t plane = extent_[1] * extent_[2], panels = (nc + nr - 1) / nr;
  // the point k0: its image and coordinates, then stepped along x, y, z, images
  int64_t img = k0 / (d * h * w), r = k0 % (d * h * w);
  int64_t oz = lo_[0] + r / (h * w), oy = lo_[1] + r / w % h, ox = lo_[2] + r % w;
  for (int64_t kk = 0; kk < kc; ++kk) {
    const int64_t pos = img * image_positions_ + (oz * step_[0] + shift_[0]) * plane +
                        (oy * step_[1] + shift_[1]) * extent_[2] + ox * step_[2] + shift_[2];
    const T* from = src_ + pos * channels_ + n0;
    T* to = dst + kk * nr;
    for (int64_t p = 0; p < panels; ++p, from += nr, to += kc * nr) {
      const int64_t cols = std::min(nr, nc - p * nr);
      copy_channels(from, cols, to);
      if (cols < nr) std::fill(to + cols, to + nr, T(0));
    }
    if (++ox == hi_[2]) {
      ox = lo_[2];
      if (++oy == hi_[1]) {
        oy = lo_[1];
        if (++oz == hi_[0]) oz = lo_[0], ++img;
      }
    }
  }
}

// The output box [lo, hi) whose windows reach the input through tap t, per dim, and the input
// coordinate of output 0 through it (shift): input = o * stride + shift.
struct TapBox {
  Dims lo, hi, shift;
};

TapBox tap_box(const ConvGeometry& g, const TapTable& tt, int64_t t) {
  TapBox b;
  const int64_t off[kMaxRank] = {tt.dz[size_t(t)], tt.dy[size_t(t)], tt.dx[size_t(t)]};
  for (int d = 0; d < kMaxRank; ++d) {
    const int64_t s = g.stride[d], shift = off[d] - g.pad_lo[d], last = g.in[d] - 1 - shift;
    b.shift[d] = shift;
    b.lo[d] = std::min(g.out[d], shift >= 0 ? 0 : (-shift + s - 1) / s);
    b.hi[d] = last < 0 ? b.lo[d] : std::max(b.lo[d], std::min(g.out[d], last / s + 1));
  }
  return b;
}

// The share of (tap, output position) pairs whose input lies inside the tensor: the multiply-
// adds of a weight gradient that are not on padding.
double reached_share(const ConvGeometry& g) {
  const TapTable tt(g);
  const int64_t taps = g.kernel_spatial();
  double reached = 0;
  for (int64_t t = 0; t < taps; ++t) {
    const TapBox b = tap_box(g, tt, t);
    reached += double(b.hi[0] - b.lo[0]) * double(b.hi[1] - b.lo[1]) * double(b.hi[2] - b.lo[2]);
  }
  return reached / (double(taps) * double(std::max<int64_t>(1, g.out_spatial())));
}

}  // namespace

// Weight gradients whose padding takes a large share of the multiply-adds (DeepLab's 3x3
// dilated by 4 on 28x28: 18%; DCGAN's 4x4/2 on 4x4 maps: 23%) run one GEMM per tap over only
// the positions that tap reaches, both operands channels-last (BoxPositions): K/G x C/G
// products summed over a box of positions, never over padding. Each tap's GEMM then sums at
// most N * output positions: on fewer than kBoxMinPositions the C tiles' loads and stores
// outweigh the padding saved. 2 threads, interleaved, median ms, boxes vs the previous path
// (AVX-512): deeplab 4.23-4.89 vs 4.63-5.43, dcgan.g2 5.63-6.18 vs 6.62-7.02, res5.3x3 at
// batch 8 9.3-9.5 vs 10.6-10.8; AVX2 deeplab 4.76/5.83 vs 5.09/5.77, dcgan.g2 6.27/6.45 vs
// 6.65/7.65; but at 88% reached dcgan.g3 6.2-7.2 vs 6.2-6.6, and res4.3x3 at batch 2 (87%) 2.83-
// 2.95 vs 2.54-2.58, res5.3x3 at batch 1 (49 positions) 2.03 vs 1.25.
constexpr double kBoxMaxShare = 0.85;
constexpr int64_t kBoxMinChannels = 16, kBoxMinPositions = 256;

bool box_weight(const ConvGeometry& g) {
  return g.c_per_group() >= kBoxMinChannels && g.k_per_group() >= kBoxMinChannels &&
         g.kernel_spatial() > 1 && g.n * g.out_spatial() >= kBoxMinPositions &&
         reached_share(g) < kBoxMaxShare;
}

int64_t box_weight_workspace(const ConvGeometry& g, int64_t nb) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group();
  return nb * (g.in_spatial() * cg + g.out_spatial() * kg) + kg * cg * g.kernel_spatial();
}

// (box_weight.h)
template <typename T>
void reorder_tap_major(const ConvGeometry& g, const T* acc, T* gw) {
  const int64_t cg = g.c_per_group(), taps = g.kernel_spatial();
  // Each k's taps x C/G block transposed by the ISA's register tiles (the element loop, a
  // store 9 elements apart each, was 4.7% of deeplab's weight gradient).
  const TransposeKernels<T>& kern = transpose_kernels<T>();
  parallel_for(g.k_per_group(), 4, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      kern.transpose(acc + k * taps * cg, cg, taps, cg, static_cast<const T*>(nullptr),
                     gw + k * cg * taps, taps);
  });
}

// grad_w's group through box_weight: per block of images the channels-last input and grad_y,
// per tap a GEMM (K/G x C/G, the reduction over the tap's box) into `acc` as (k, tap, c), then
// reordered. ws: the input copies, the grad_y copies, acc.
template <typename T>
void box_weight_gradient(const ConvGeometry& g, int64_t grp, int64_t nb, const T* x,
                         const T* grad_y, T* grad_w, T* ws) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), taps = g.kernel_spatial();
  const int64_t rows = cg * taps, in_sp = g.in_spatial(), out_sp = g.out_spatial();
  T* xcl = ws;
  T* gycl = xcl + nb * in_sp * cg;
  T* acc = gycl + nb * out_sp * kg;
  const TapTable tt(g);
  for (int64_t n0 = 0; n0 < g.n; n0 += nb) {
    const int64_t cnt = std::min(nb, g.n - n0);
    for (int64_t i = 0; i < cnt; ++i) {
      transpose_to_positions(x + ((n0 + i) * g.c + grp * cg) * in_sp, cg, in_sp,
                             xcl + i * in_sp * cg);
      transpose_to_positions(grad_y + ((n0 + i) * g.k + grp * kg) * out_sp, kg, out_sp,
                             gycl + i * out_sp * kg);
    }
    for (int64_t t = 0; t < taps; ++t) {
      const TapBox b = tap_box(g, tt, t);
      const BoxPositions<T> a(gycl, kg, g.out, out_sp, cnt, b.lo, b.hi, Dims{1, 1, 1},
                              Dims{0, 0, 0});
      const BoxPositions<T> cols(xcl, cg, g.in, in_sp, cnt, b.lo, b.hi, g.stride, b.shift);
      gemm::gemm<T>(kg, cg, a.count(), T(1), a, cols, n0 == 0 ? T(0) : T(1), acc + t * cg, rows);
    }
  }
  reorder_tap_major(g, acc, grad_w + grp * kg * rows);
}


#define FASTCONV_INSTANTIATE(T)                                                                \
  template void reorder_tap_major<T>(const ConvGeometry&, const T*, T*);                       \
  template void box_weight_gradient<T>(const ConvGeometry&, int64_t, int64_t, const T*, const T*, \
                                       T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
