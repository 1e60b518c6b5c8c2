// Dense convolution of small images as per-tap GEMM micro-kernel calls over channels-last
// segments of output rows (see direct_taps.h).
#include "algo/direct_taps.h"

#include <algorithm>
#include <atomic>
#include <numeric>

#include "algo/plane_transpose.h"
#include "fastconv/parallel.h"
#include "gemm/cache_sizes.h"
#include "gemm/gemm.h"
#include "gemm/kernel_table.h"

namespace fastconv::algo {
namespace {

// Output rows of at most kTapsMaxWidth positions (kTapsLongMaxWidth for kernels of kLongTaps+
// taps, where the FFT competes), at least kTapsMinChannels channels on both sides. The Python
// auto rule (_cpu_taps._taps_served) mirrors these.
constexpr int64_t kTapsMaxWidth = 40, kTapsLongMaxWidth = 36, kLongTaps = 25;
constexpr int64_t kTapsMinChannels = 16;

// dst (ct channels, out extents) = the correlation of src (cs channels, src extents) with the
// kernel: output (z, y, x) reads source (z * stride + tz * dilation - pad, ...) per dim (depth,
// rows, columns; 1-D and 2-D convolutions have extent-1 leading dims).
struct TapConv {
  int64_t cs, ct;
  Dims src, out, kernel, stride, dilation, pad;
  int64_t taps() const { return kernel[0] * kernel[1] * kernel[2]; }
  int64_t src_positions() const { return src[0] * src[1] * src[2]; }
  int64_t out_positions() const { return out[0] * out[1] * out[2]; }
  int64_t rows() const { return out[0] * out[1]; }  // output rows of one image
};

TapConv forward_conv(const ConvGeometry& g) {
  return {g.c, g.k, g.in, g.out, g.kernel, g.stride, g.dilation, g.pad_lo};
}

// Unit-stride backward data: grad_y correlated with the flipped kernel, padded by its reach
// less the forward's padding.
TapConv data_conv(const ConvGeometry& g) {
  TapConv p{g.k, g.c, g.out, g.in, g.kernel, Dims{1, 1, 1}, g.dilation, {}};
  for (int d = 0; d < kMaxRank; ++d) p.pad[d] = (g.kernel[d] - 1) * g.dilation[d] - g.pad_lo[d];
  return p;
}

// How the kernels read the weights: panel j (nr target channels) holds (source channel, tap)
// rows of nr at packed + j * cs * taps * nr, source-major, the stored taps in order; the
// correlation's tap t is stored tap (reverse ? taps - 1 - t : t).
struct WeightView {
  bool data;     // backward data: targets are the weight's input channels, sources its outputs
  bool reverse;
};

// One segment [x0, x1) of output row `row` (depth and row of one image) for one panel of `cols`
// output channels: c is the segment's first position (row stride ct), wp the panel's packed taps
// (cs x nr each), st the image's channels-last source. Each tap runs over the positions whose
// source it reaches; a tap that reaches all of them goes first and writes (beta 0), else the
// segment is zeroed first.
// Source channels [c0, c0 + cn) only (a block of the panel's rows, see run_taps); blocks after
// the first (c0 > 0) add to the segment.
template <typename T>
void segment(const TapConv& p, const gemm::GemmKernel<T>& kern, const WeightView& v, const T* wp,
             const T* st, T* c, int64_t cols, int64_t row, int64_t x0, int64_t x1, int64_t c0,
             int64_t cn) {
  const int64_t taps = p.taps(), kw = p.kernel[2], kh = p.kernel[1];
  const int64_t oz = row / p.out[1], oy = row % p.out[1];
  // The source row tap t reads, or -1 when that row lies in the padding.
  auto source_row = [&](int64_t t) -> int64_t {
    const int64_t iz = oz * p.stride[0] + t / (kh * kw) * p.dilation[0] - p.pad[0];
    const int64_t iy = oy * p.stride[1] + t / kw % kh * p.dilation[1] - p.pad[1];
    if (iz < 0 || iz >= p.src[0] || iy < 0 || iy >= p.src[1]) return -1;
    return iz * p.src[1] + iy;
  };
  const int64_t sx = p.stride[2], sw = p.src[2];
  auto reach = [&](int64_t t, int64_t& lo, int64_t& hi) {
    if (source_row(t) < 0) return false;
    const int64_t off = (t % kw) * p.dilation[2] - p.pad[2];  // source column of output 0
    // x * sx + off in [0, sw)
    const int64_t first = off >= 0 ? 0 : (sx - 1 - off) / sx;
    const int64_t end = sw - off <= 0 ? 0 : (sw - off - 1) / sx + 1;
    lo = std::max(x0, first), hi = std::min(x1, end);
    return lo < hi;
  };
  auto run = [&](int64_t t, int64_t lo, int64_t hi, T beta) {
    const int64_t col = lo * sx + (t % kw) * p.dilation[2] - p.pad[2];
    const T* a = st + (source_row(t) * sw + col) * p.cs + c0;
    kern.fn_rows_a(cn, a, sx * p.cs, wp + (c0 * taps + (v.reverse ? taps - 1 - t : t)) * kern.nr,
                   taps * kern.nr, c + (lo - x0) * p.ct, p.ct, hi - lo, cols, T(1), beta);
  };
  int64_t full = -1, lo = 0, hi = 0;
  for (int64_t t = 0; t < taps && full < 0 && c0 == 0; ++t)
    if (reach(t, lo, hi) && lo == x0 && hi == x1) full = t;
  if (full >= 0) {
    run(full, x0, x1, T(0));
  } else if (c0 == 0) {
    for (int64_t x = 0; x < x1 - x0; ++x) std::fill(c + x * p.ct, c + x * p.ct + cols, T(0));
  }
  for (int64_t t = 0; t < taps; ++t)
    if (t != full && reach(t, lo, hi)) run(t, lo, hi, T(1));
}

// Packs panel j with the GEMM's B packer (its x86 transposes read whole lines of each of the nr
// rows): the forward's panel is one nr x (C * taps) block of the weight; backward data's is,
// per output channel k, the nr x taps block of its input channels (contiguous).
template <typename T>
void pack_panel(const gemm::GemmKernel<T>& kern, const T* w, const WeightView& v,
                const TapConv& p, int64_t j, T* dst) {
  const int64_t nr = kern.nr, taps = p.taps(), cols = std::min(nr, p.ct - j * nr);
  if (!v.data) {
    kern.pack_b(cols, p.cs * taps, w + j * nr * p.cs * taps, p.cs * taps, 1, dst);
    return;
  }
  for (int64_t k = 0; k < p.cs; ++k)
    kern.pack_b(cols, taps, w + (k * p.ct + j * nr) * taps, taps, 1, dst + k * taps * nr);
}

// How the work is cut: images go in chunks whose channels-last copies stay cache-sized; in a
// chunk, items are (panel, block of output rows of all its images), panel-major so a thread's
// consecutive items reuse one panel's weights from L2, and enough of them to keep every thread
// busy. Where each item has a panel of its own, it packs it into its thread's slot just before
// using it (written to L2, read back from there: res5.3x3 forward 3.6 -> 3.0 ms at 1 thread;
// repeated per chunk); otherwise every panel is packed once, up front.
constexpr int64_t kChunkBytes = 4 << 20;

struct Schedule {
  int64_t images, panels, row_blocks, items, slots;  // images per chunk
  bool fused;
};

Schedule schedule(const TapConv& p, int64_t images, int64_t threads, int64_t nr, int64_t elem) {
  Schedule s;
  const int64_t per_image = checked_product({p.src_positions(), p.cs, elem}, "direct workspace") +
                            checked_product({p.out_positions(), p.ct, elem}, "direct workspace");
  s.images = std::clamp<int64_t>(kChunkBytes / std::max<int64_t>(1, per_image), 1,
                                 std::max<int64_t>(1, images));
  s.panels = (p.ct + nr - 1) / nr;
  const int64_t max_blocks = s.images * p.rows();
  s.row_blocks = std::clamp<int64_t>((2 * threads + s.panels - 1) / s.panels, 1, max_blocks);
  // Items a multiple of the threads where the panels alone are not: I3D Mixed_4b's 13 panels ran
  // 7 against 6 on 2 threads (the last panel alone on one thread). Row blocks a multiple of
  // threads / gcd(panels, threads) make them even where each block keeps kBalanceRows rows or
  // more: the panels are then packed up front (not per item into a thread's slot, which saved
  // res5.3x3 a sixth of its time) and each block reads its panel back from L3 once, a cost
  // spread over its rows. Small images keep the fused packing and the uneven split.
  constexpr int64_t kBalanceRows = 32;
  if (threads > 1 && s.panels % threads != 0) {
    const int64_t step = threads / std::gcd(s.panels, threads);
    const int64_t balanced = (s.row_blocks + step - 1) / step * step;
    if (balanced * kBalanceRows <= max_blocks) s.row_blocks = balanced;
  }
  s.items = s.panels * s.row_blocks;
  s.slots = std::max<int64_t>(1, std::min(threads, s.items));
  s.fused = s.row_blocks == 1;
  return s;
}

int64_t workspace_elems(const TapConv& p, int64_t images, int64_t threads, int64_t nr,
                        int64_t elem) {
  const Schedule s = schedule(p, images, threads, nr, elem);
  return checked_product({s.fused ? s.slots : s.panels, p.taps(), p.cs, nr}, "direct workspace") +
         checked_product({s.images, p.src_positions() * p.cs + p.out_positions() * p.ct},
                         "direct workspace");
}

// dst (images x ct x oh x ow) = the tap convolution of src (images x cs x sh x sw) with the
// weights w (as `view` reads them), plus bias.
template <typename T>
void run_taps(const TapConv& p, int64_t images, int64_t threads, const T* src, const T* bias,
              const T* w, const WeightView& view, T* dst, T* ws) {
  const gemm::GemmKernel<T>& kern = gemm::gemm_kernel<T>();
  const int64_t nr = kern.nr, panel = p.cs * p.taps() * nr;
  const Schedule sc = schedule(p, images, threads, nr, sizeof(T));
  const int64_t in_sp = p.src_positions(), out_sp = p.out_positions(), ow = p.out[2];
  T* packed = ws;
  T* st = packed + (sc.fused ? sc.slots : sc.panels) * panel;  // chunk's sources, channels-last
  T* dt = st + sc.images * in_sp * p.cs;                        // and its outputs
  // Output row segments of nearly equal length, at most the kernel's rows.
  const int64_t segs = (ow + kern.rows_a - 1) / kern.rows_a;
  // A panel past half of L2 runs in blocks of its source channels, each over the item's rows:
  // its taps read every taps-th row of the panel, and with the source rows beside it a whole
  // panel outgrew a 512 KiB L2 (I3D's Mixed_4b backward data, 208 source channels x 27 taps:
  // 359 KiB, against 166 KiB for its forward's 96).
  const int64_t half_l2 = std::max<int64_t>(1, gemm::cache_sizes().l2 / 2);
  const int64_t cblocks = std::max<int64_t>(
      1, (panel * int64_t(sizeof(T)) + half_l2 - 1) / half_l2);
  const int64_t cblock = (p.cs + cblocks - 1) / cblocks;
  if (!sc.fused) {
    parallel_for(sc.panels, 1, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) pack_panel(kern, w, view, p, j, packed + j * panel);
    });
  }
  for (int64_t n0 = 0; n0 < images; n0 += sc.images) {
    const int64_t nb = std::min(sc.images, images - n0), rows = nb * p.rows();
    for (int64_t i = 0; i < nb; ++i)
      transpose_to_positions(src + (n0 + i) * p.cs * in_sp, p.cs, in_sp, st + i * in_sp * p.cs);
    std::atomic<int64_t> next{0};
    parallel_for(sc.slots, 1, [&](int64_t b, int64_t e) {
      for (int64_t s = b; s < e; ++s)
        for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < sc.items;) {
          const int64_t j = i / sc.row_blocks, rb = i % sc.row_blocks;
          const int64_t cols = std::min(nr, p.ct - j * nr);
          const T* wp = packed + (sc.fused ? s : j) * panel;
          if (sc.fused) pack_panel(kern, w, view, p, j, packed + s * panel);
          for (int64_t c0 = 0; c0 < p.cs; c0 += cblock)
            for (int64_t r = rb * rows / sc.row_blocks; r < (rb + 1) * rows / sc.row_blocks;
                 ++r) {
              const int64_t img = r / p.rows(), row = r % p.rows();
              for (int64_t sg = 0; sg < segs; ++sg) {
                const int64_t x0 = sg * ow / segs, x1 = (sg + 1) * ow / segs;
                segment(p, kern, view, wp, st + img * in_sp * p.cs,
                        dt + (r * ow + x0) * p.ct + j * nr, cols, row, x0, x1, c0,
                        std::min(cblock, p.cs - c0));
              }
            }
        }
    });
    for (int64_t i = 0; i < nb; ++i)
      transpose_into(dt + i * out_sp * p.ct, out_sp, p.ct, bias, dst + (n0 + i) * p.ct * out_sp);
  }
}

}  // namespace

bool taps_serve(const ConvGeometry& g, ConvPass pass) {
  if (g.groups != 1 || g.c < kTapsMinChannels || g.k < kTapsMinChannels) return false;
  if (g.n == 0 || g.out_spatial() == 0) return false;  // empty: the row path's early exits
  for (int d = 0; d < kMaxRank; ++d)
    if (g.pad_lo[d] < 0) return false;
  const int64_t width = g.kernel_spatial() >= kLongTaps ? kTapsLongMaxWidth : kTapsMaxWidth;
  if (pass == ConvPass::kForward) return g.out[2] <= width;
  if (pass != ConvPass::kBackwardData || g.in[2] > width) return false;
  for (int d = 0; d < kMaxRank; ++d)
    if (g.stride[d] != 1) return false;
  return true;
}

int64_t taps_workspace_bytes(const ConvGeometry& g, ConvPass pass, DType t, int threads) {
  const TapConv p = pass == ConvPass::kBackwardData ? data_conv(g) : forward_conv(g);
  const int64_t nr =
      t == DType::kFloat64 ? gemm::panel_width<double>() : gemm::panel_width<float>();
  return checked_product({workspace_elems(p, g.n, std::max(1, threads), nr, dtype_size(t)),
                          dtype_size(t)},
                         "direct workspace");
}

template <typename T>
void taps_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y, T* ws) {
  const ConvGeometry& g = plan.g;
  run_taps(forward_conv(g), g.n, std::max(1, plan.threads), x, bias, w,
           WeightView{false, g.mode == ConvMode::kConv}, y, ws);
}

template <typename T>
void taps_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws) {
  const ConvGeometry& g = plan.g;
  run_taps(data_conv(g), g.n, std::max(1, plan.threads), grad_y, static_cast<const T*>(nullptr), w,
           WeightView{true, g.mode != ConvMode::kConv}, grad_x, ws);
}

#define FASTCONV_INSTANTIATE(T)                                                            \
  template void taps_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*); \
  template void taps_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
