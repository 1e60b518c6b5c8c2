// Padded-width stride phases for the strided forward (wide_phases.h).
#include "algo/wide_phases.h"

#include <algorithm>

#include "algo/batch_fold.h"
#include "algo/conv_panels.h"
#include "fastconv/parallel.h"
#include "gemm/gemm.h"

namespace fastconv::algo {

namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// B[(c, tap), p] = channel c's phases at p + offset[tap] for the positions p of each image
// (image_stride apart in src); every full panel inside one image is read in place.
template <typename T>
class WideColumns final : public gemm::PanelSource<T> {
 public:
  WideColumns(const WidePhases& wp, const T* src, int64_t image_stride)
      : wp_(wp), taps_(int64_t(wp.offsets.size())), src_(src), image_stride_(image_stride) {}

  bool rows(int64_t k0, int64_t kc, int64_t n0, int64_t nr, const T** dst) const override {
    const int64_t img = n0 / wp_.positions, local = n0 - img * wp_.positions;
    if (local + nr > wp_.positions) return false;
    const T* base = src_ + img * image_stride_ + local;
    int64_t c = k0 / taps_, t = k0 % taps_;
    for (int64_t kk = 0; kk < kc; ++kk) {
      dst[kk] = base + c * wp_.channel_size + wp_.offsets[size_t(t)];
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
        const int64_t off = c * wp_.channel_size + wp_.offsets[size_t(t)];
        for (int64_t j = 0; j < cols;) {  // one stretch per image the panel touches
          const int64_t col = n0 + p0 + j, img = col / wp_.positions;
          const int64_t local = col - img * wp_.positions;
          const int64_t len = std::min(cols - j, wp_.positions - local);
          copy_short(src_ + img * image_stride_ + local + off, len, row + j);
          j += len;
        }
        std::fill(row + cols, row + nr, T(0));
        if (++t == taps_) t = 0, ++c;
      }
    }
  }

 private:
  const WidePhases& wp_;
  int64_t taps_;
  const T* src_;
  int64_t image_stride_;
};

// Splits `images` x `channels` planes of x (channel c of image i at x + i * image_stride + c *
// in_spatial) into their padded phases for the band of output rows from oy0, at dst, channel
// (i, c) at (i * channels + c) * channel_size: plane (ry, rx) row r, column s holds
// x[sy * (r + oy0 + qy0) + ry, sx * (s + qx0) + rx] (zero outside x).
template <typename T>
void split_wide(const ConvGeometry& g, const WidePhases& wp, int64_t oy0, const T* x,
                int64_t images, int64_t image_stride, int64_t channels, T* dst) {
  const int64_t in_sp = g.in_spatial();
  parallel_for(images * channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx)  // column s of phase rx: sx (s + qx0) + rx
      split_plane_rows(g, x + (idx / channels) * image_stride + (idx % channels) * in_sp,
                       oy0 + wp.qy0, wp.height, wp.width, -g.stride[2] * wp.qx0, wp.plane_size,
                       dst + idx * wp.channel_size);
  });
}

}  // namespace

// Phase planes one GEMM reads in place, at most (images per GEMM, or bands of output rows of
// a large image): planes of 13-15 MiB ran slower than the packed phases, 2-7 MiB faster.
constexpr int64_t kPlanesBudget = int64_t(4) << 20;

WidePhases make_wide_phases(const ConvGeometry& g, int64_t rows) {
  const ForwardPhases ph = make_forward_phases(g);
  const int64_t taps = g.kernel_spatial();
  WidePhases wp;
  wp.planes = g.stride[1] * g.stride[2];
  const auto [y_lo, y_hi] = std::minmax_element(ph.offsets.dy.begin(), ph.offsets.dy.end());
  const auto [x_lo, x_hi] = std::minmax_element(ph.offsets.dx.begin(), ph.offsets.dx.end());
  wp.qy0 = *y_lo;
  wp.qx0 = *x_lo;
  wp.rows = rows > 0 ? std::min(rows, g.out[1]) : g.out[1];
  wp.width = g.out[2] + (*x_hi - *x_lo);
  // One spare row: the last output row's margin columns read past its plane row.
  wp.height = wp.rows + (*y_hi - *y_lo) + 1;
  wp.plane_size = wp.height * wp.width;
  wp.channel_size = wp.planes * wp.plane_size;
  wp.positions = wp.rows * wp.width;
  wp.offsets.resize(size_t(taps));
  for (int64_t t = 0; t < taps; ++t)
    wp.offsets[size_t(t)] = ph.offsets.dz[size_t(t)] * wp.plane_size +
                            (ph.offsets.dy[size_t(t)] - wp.qy0) * wp.width +
                            (ph.offsets.dx[size_t(t)] - wp.qx0);
  return wp;
}

bool wide_phases_apply(const ConvGeometry& g, int64_t elem_size) {
  const int64_t nr = elem_size == 4 ? gemm::panel_width<float>() : gemm::panel_width<double>();
  if (nr < 32 || !forward_reads_phases(g, elem_size) || g.out_spatial() == 0) return false;
  const WidePhases wp = make_wide_phases(g);
  return 16 * (wp.width - g.out[2]) <= g.out[2] && g.k_per_group() <= 256;
}

WideBlocks wide_blocks(const ConvGeometry& g, int64_t images, int64_t elem_size) {
  const WidePhases whole = make_wide_phases(g);
  const int64_t image_bytes = g.c_per_group() * whole.channel_size * elem_size;
  if (image_bytes <= kPlanesBudget)
    return {std::clamp<int64_t>(kPlanesBudget / image_bytes, 1, std::max<int64_t>(1, images)),
            g.out[1]};
  const int64_t row_bytes = g.c_per_group() * whole.planes * whole.width * elem_size;
  const int64_t margin = whole.height - g.out[1];  // rows a band reads beyond its own
  return {1, std::clamp<int64_t>(kPlanesBudget / row_bytes - margin, 1, g.out[1])};
}

// Batches of whole images run as blocks the threads take whole, each through its own planes and
// output block of about a quarter of the L2 (nested calls run inline): one shared block of up
// to 4 MiB had three parallel stages per block (split, GEMM, copy out), the threads waiting at
// each one's end, and each stage's data spilled the L2. benchmarks/ab_processes.py, 2 threads,
// Xeon, AVX-512, shared vs per thread: CIFAR ResNet's 16 -> 32 3x3/2 on 32x32 x128 1.11x (and
// 1.18x more once the split ran on the row kernel). At least 512 positions a block, as
// implicit GEMM's folded blocks (forward_thread_images).
int64_t wide_thread_images(const ConvGeometry& g, int64_t images, int64_t elem_size,
                           int threads) {
  const WidePhases whole = make_wide_phases(g);
  return thread_block_images(
      g.n, images, whole.positions,
      (g.c_per_group() * whole.channel_size + g.k_per_group() * whole.positions) * elem_size,
      threads);
}

namespace {

// A thread's slot: `per` images' planes and output block, in whole 64-byte lines.
int64_t thread_slot_elems(const ConvGeometry& g, const WidePhases& wp, int64_t per) {
  return (per * (g.c_per_group() * wp.channel_size + g.k_per_group() * wp.positions) + 15) /
         16 * 16;
}

}  // namespace

int64_t wide_phases_workspace(const ConvGeometry& g, int64_t images, int64_t elem_size,
                              int threads) {
  if (const int64_t per = wide_thread_images(g, images, elem_size, threads))
    return threads * thread_slot_elems(g, make_wide_phases(g), per);
  const WideBlocks b = wide_blocks(g, images, elem_size);
  const WidePhases wp = make_wide_phases(g, b.rows);
  return b.images * (g.c_per_group() * wp.channel_size + g.k_per_group() * wp.positions);
}

// A block's output rows (cnt images' bands of `band` rows, row k of the block `cols` long)
// without their margin columns, plus the bias, into y (at the block's first image and group,
// its band's first row).
template <typename T>
void copy_out(const ConvGeometry& g, const WidePhases& wp, const T* block, int64_t cnt,
              int64_t cols, int64_t band, T* y, const T* bias) {
  const int64_t kg = g.k_per_group(), out_sp = g.out_spatial(), ow = g.out[2];
  parallel_for(kg * cnt, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t idx = b0; idx < b1; ++idx) {
      const int64_t k = idx / cnt, i = idx % cnt;
      const T* src = block + k * cols + i * wp.positions;
      T* dst = y + (i * g.k + k) * out_sp;
      const T b = bias ? bias[k] : T(0);
      for (int64_t oy = 0; oy < band; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) dst[oy * ow + ox] = src[oy * wp.width + ox] + b;
    }
  });
}

template <typename T>
void wide_phases_forward(const ConvGeometry& g, int64_t images, int threads, const T* x,
                         const T* w, const T* bias, T* y, T* ws) {
  const int64_t cg = g.c_per_group(), kg = g.k_per_group(), rows = cg * g.kernel_spatial();
  const int64_t in_sp = g.in_spatial(), out_sp = g.out_spatial(), ow = g.out[2];
  // cnt images from n0, output rows [oy0, oy0 + band) (a band of one image, or whole images),
  // every group, through planes and the output block.
  const auto run = [&](const WidePhases& wp, int64_t n0, int64_t cnt, int64_t oy0, int64_t band,
                       T* planes, T* block) {
    const int64_t cols = cnt > 1 ? cnt * wp.positions : band * wp.width;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      split_wide(g, wp, oy0, x + (n0 * g.c + grp * cg) * in_sp, cnt, g.c * in_sp, cg, planes);
      gemm::gemm<T>(kg, cols, rows, T(1), {w + grp * kg * rows, rows, 1},
                    WideColumns<T>(wp, planes, cg * wp.channel_size), T(0), block, cols);
      copy_out(g, wp, block, cnt, cols, band, y + (n0 * g.k + grp * kg) * out_sp + oy0 * ow,
               bias ? bias + grp * kg : nullptr);
    }
  };
  if (const int64_t per = wide_thread_images(g, images, sizeof(T), threads)) {
    const WidePhases wp = make_wide_phases(g);
    const int64_t slot = thread_slot_elems(g, wp, per);
    for_each_thread_block(threads, ceil_div(g.n, per), [&](int64_t b, int64_t s) {
      T* planes = ws + s * slot;
      run(wp, b * per, std::min(per, g.n - b * per), 0, g.out[1], planes,
          planes + per * cg * wp.channel_size);
    });
    return;
  }
  const WideBlocks blocks = wide_blocks(g, images, sizeof(T));
  const WidePhases wp = make_wide_phases(g, blocks.rows);
  for (int64_t n0 = 0; n0 < g.n; n0 += blocks.images)
    for (int64_t oy0 = 0; oy0 < g.out[1]; oy0 += wp.rows)
      run(wp, n0, std::min(blocks.images, g.n - n0), oy0, std::min(wp.rows, g.out[1] - oy0), ws,
          ws + blocks.images * cg * wp.channel_size);
}

template void wide_phases_forward<float>(const ConvGeometry&, int64_t, int, const float*,
                                         const float*, const float*, float*, float*);
template void wide_phases_forward<double>(const ConvGeometry&, int64_t, int, const double*,
                                          const double*, const double*, double*, double*);

}  // namespace fastconv::algo
