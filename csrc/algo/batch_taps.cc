// Batches of small maps as per-tap GEMM micro-kernel calls over images-innermost channels-last
// copies (batch_taps.h).
//
// Output index o of a dim reads input index s * o + t * d - pad for tap t (stride s, dilation d),
// so every such input index has residue r = (t * d - pad) mod s, the tap's stride phase, and
// index o + (t * d - pad - r) / s in the phase's plane: along an output row, consecutive
// columns meet consecutive columns of one plane. With the images innermost, a run of (column,
// image) rows is then one stride on both sides (the channels of a position), one rows-of-A tile
// call per up to rows_a of them. Forward gathers each tap from x's planes into y's rows;
// strided backward data scatters grad_y's rows into grad_x's planes (unit-stride backward data
// runs as the forward of its correlation with the flipped kernel, data_correlation_geometry);
// the weight gradient sums each tap over grad_y's channel rows (a copy with each channel's
// (row, column, image) contiguous, the depth) against the planes' rows. Each panel of the GEMM's columns (output channels forward,
// input channels backward) and each (tap, block of output channels) of the weight gradient is
// one thread's, its sums in a fixed order: results do not depend on the threads.
#include "algo/batch_taps.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "algo/plane_transpose.h"
#include "common/signed_div.h"
#include "fastconv/parallel.h"
#include "gemm/kernel_table.h"

namespace fastconv::algo {
namespace {

// Channels of the GEMM's depth per block: one block's packed taps (taps x block x nr) stay in L2
// beside the rows they multiply. dcgan.g2's transposed forward (512 grad_y channels), 2 threads,
// median ms: blocks of 64 4.86-4.89, 128 4.36-4.53, 256 4.29-4.34, 512 4.25-4.26 (its float32
// error 2.6x im2col's, against 1.5x at 256).
constexpr int64_t kBlockChannels = 256;

// A tap's reach along one dim, its input index at output 0 being `off`: outputs [lo, hi) read
// inside the input (extent in), in phase r at plane index o + shift.
struct Reach {
  int64_t lo, hi, r, shift;
};
Reach reach(int64_t off, int64_t s, int64_t in, int64_t out) {
  Reach d;
  d.r = ((off % s) + s) % s;
  d.shift = (off - d.r) / s;
  d.lo = std::max<int64_t>(0, ceil_div_signed(-off, s));
  d.hi = std::min(out, floor_div(in - 1 - off, s) + 1);
  if (d.hi < d.lo) d.hi = d.lo;
  return d;
}

// Extent of phase r of a dim of extent `in` at stride s.
inline int64_t phase_extent(int64_t in, int64_t s, int64_t r) {
  return r < in ? (in - r + s - 1) / s : 0;
}

// The workspace: the output side's copy (out positions x n x K), the input side's phase planes
// (C channels) and a margin (the weight gradient's in-place B loads are whole vectors: a last
// partial panel reads masked-off lanes past the planes), each tap's reach (Reach, as elements),
// a scratch row per thread (transposes), then per pass: forward and backward data one slot of
// packed taps per panel thread, the weight gradient the taps' sums (tap, K, C). Panels run over
// the GEMM's columns: output channels forward (depth C), input channels backward (depth K).
struct Layout {
  int64_t ycl, xp, reaches, scratch, slots, end;  // offsets (elements)
  int64_t plane[16][16];  // phase (ry, rx) plane offsets from xp (strides at most 16)
  int64_t nr, kc, slot, panels, slot_count, cols, depth, scratch_elems, threads;
  int64_t acc = 0;  // weight gradient: the taps' sums (tap, K, C)
};

constexpr int64_t kMargin = 64;

// Largest phase plane's positions.
int64_t most_phase_positions(const ConvGeometry& g) {
  int64_t most = 0;
  for (int64_t ry = 0; ry < g.stride[1]; ++ry)
    for (int64_t rx = 0; rx < g.stride[2]; ++rx)
      most = std::max(most, phase_extent(g.in[1], g.stride[1], ry) *
                                phase_extent(g.in[2], g.stride[2], rx));
  return most;
}

template <typename T>
Layout layout(const ConvGeometry& g, ConvPass pass, int threads) {
  Layout l{};
  const bool fwd = pass == ConvPass::kForward;
  l.nr = gemm::gemm_kernel<T>().nr;
  l.cols = fwd ? g.k : g.c;
  l.depth = fwd ? g.c : g.k;
  l.kc = std::min(kBlockChannels, l.depth);
  l.panels = (l.cols + l.nr - 1) / l.nr;
  l.threads = std::max(1, threads);
  l.slot_count = std::min<int64_t>(l.threads, l.panels);
  l.ycl = 0;
  l.xp = l.ycl + g.n * g.out_spatial() * g.k;
  int64_t at = 0;
  for (int64_t ry = 0; ry < g.stride[1]; ++ry)
    for (int64_t rx = 0; rx < g.stride[2]; ++rx) {
      l.plane[ry][rx] = at;
      at += phase_extent(g.in[1], g.stride[1], ry) * phase_extent(g.in[2], g.stride[2], rx) *
            g.n * g.c;
    }
  // Reach is 4 int64_t: as many elements of T as its bytes, rounded up.
  const int64_t reach_elems =
      (2 * g.kernel_spatial() * int64_t(sizeof(Reach)) + int64_t(sizeof(T)) - 1) / int64_t(sizeof(T));
  l.reaches = (l.xp + at + kMargin + 15) / 16 * 16;
  l.scratch = l.reaches + (reach_elems + 15) / 16 * 16;
  l.scratch_elems = std::max(g.in[2], most_phase_positions(g)) * g.c;
  l.slots = l.scratch + l.threads * l.scratch_elems;
  l.slot = g.kernel_spatial() * l.kc * l.nr;
  if (pass == ConvPass::kBackwardWeight) {  // the taps' sums (tap, K, C), no slots
    l.slot = 0;
    l.slot_count = 0;
    l.acc = l.slots;
    l.slots = l.acc + g.kernel_spatial() * g.k * g.c;
  }
  l.end = l.slots + l.slot_count * l.slot;
  return l;
}

// Each tap's reach along rows (ry[t]) and columns (rx[t]), written once per call into the
// workspace (Layout::reaches, alignment of T's at least 8 bytes).
template <typename T>
Reach* reaches(const ConvGeometry& g, const Layout& l, T* ws) {
  Reach* r = reinterpret_cast<Reach*>(ws + l.reaches);
  const int64_t kw = g.kernel[2], taps = g.kernel_spatial();
  for (int64_t t = 0; t < taps; ++t) {
    r[t] = reach((t / kw) * g.dilation[1] - g.pad_lo[1], g.stride[1], g.in[1], g.out[1]);
    r[taps + t] = reach((t % kw) * g.dilation[2] - g.pad_lo[2], g.stride[2], g.in[2], g.out[2]);
  }
  return r;
}

// fn(slot, item) for every item in [0, items), each of up to l.threads slots a contiguous share
// (one thread's at a time, so its scratch row is its own; neighbouring items stay together).
template <typename Fn>
void over_slots(const Layout& l, int64_t items, const Fn& fn) {
  const int64_t slots = std::min(l.threads, items);
  parallel_for(slots, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      for (int64_t i = items * s / slots; i < items * (s + 1) / slots; ++i) fn(s, i);
  });
}

// Runs the taps of one panel of nc GEMM columns (at column offset col0 of the output side's or
// the planes' channels) for depth channels [kb, kb + kn), their weights packed at `packed`
// (row (channel, tap) of nr, stored taps): forward A = the planes (C apart), C = y's copy (K
// apart); backward data A = grad_y's copy, C = grad_x's planes.
template <typename T>
void run_taps(const ConvGeometry& g, const Layout& l, bool fwd, const Reach* r, const T* packed,
              T* ws, int64_t col0, int64_t nc, int64_t kb, int64_t kn) {
  const gemm::GemmKernel<T>& kern = gemm::gemm_kernel<T>();
  const int64_t n = g.n, c = g.c, k = g.k, taps = g.kernel_spatial(), wo = g.out[2];
  const bool flip = g.mode == ConvMode::kConv;
  T* ycl = ws + l.ycl;
  T* xp = ws + l.xp;
  // Output row by output row, every tap of a row before the next: the input rows a row's taps
  // read (kh of them per phase) stay in cache between taps.
  for (int64_t oy = 0; oy < g.out[1]; ++oy)
    for (int64_t t = 0; t < taps; ++t) {
      const Reach& dy = r[t];
      const Reach& dx = r[taps + t];
      if (oy < dy.lo || oy >= dy.hi || dx.lo >= dx.hi) continue;
      const int64_t wp = phase_extent(g.in[2], g.stride[2], dx.r);
      const T* b = packed + (flip ? taps - 1 - t : t) * l.nr;
      // Each run in calls of nearly equal size (48 rows: 4 x 12, not 3 x 14 + 6).
      const int64_t rows = (dx.hi - dx.lo) * n;
      const int64_t calls = (rows + kern.rows_a - 1) / kern.rows_a;
      T* out_rows = ycl + (oy * wo + dx.lo) * n * k;
      T* in_rows = xp + l.plane[dy.r][dx.r] + ((oy + dy.shift) * wp + dx.lo + dx.shift) * n * c;
      const T* a = fwd ? in_rows + kb : out_rows + kb;
      const int64_t lda = fwd ? c : k, ldc = fwd ? k : c;
      T* dst = fwd ? out_rows + col0 : in_rows + col0;
      for (int64_t q = 0; q < calls; ++q) {
        const int64_t r0 = rows * q / calls, r1 = rows * (q + 1) / calls;
        kern.fn_rows_a(kn, a + r0 * lda, lda, b, taps * l.nr, dst + r0 * ldc, ldc, r1 - r0, nc,
                       T(1), T(1));
      }
    }
}

// Every panel over the threads, each slot's packed taps refilled per block of depth channels by
// `pack(col0, nc, kb, kn, slot)`.
template <typename T, typename Pack>
void run_panels(const ConvGeometry& g, const Layout& l, bool fwd, T* ws, const Pack& pack) {
  const Reach* r = reaches(g, l, ws);
  std::atomic<int64_t> next{0};
  parallel_for(l.slot_count, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      T* packed = ws + l.slots + s * l.slot;
      for (int64_t p; (p = next.fetch_add(1, std::memory_order_relaxed)) < l.panels;) {
        const int64_t col0 = p * l.nr, nc = std::min(l.nr, l.cols - col0);
        for (int64_t kb = 0; kb < l.depth; kb += l.kc) {
          const int64_t kn = std::min(l.kc, l.depth - kb);
          if (nc < l.nr) std::fill(packed, packed + l.slot, T(0));
          pack(col0, nc, kb, kn, packed);
          run_taps(g, l, fwd, r, packed, ws, col0, nc, kb, kn);
        }
      }
    }
  });
}

template <typename T>
void zero(T* p, int64_t count) {
  parallel_for(count, 16384, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, T(0)); });
}


// x into its phase planes (row, column, image, channel): each image's input row transposed to
// (column, channel), each column's channels copied to its plane.
template <typename T>
void fill_planes(const ConvGeometry& g, const Layout& l, const T* x, T* ws) {
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const int64_t n = g.n, c = g.c, h = g.in[1], wd = g.in[2], sy = g.stride[1], sx = g.stride[2];
  T* xp = ws + l.xp;
  over_slots(l, n * h, [&](int64_t slot, int64_t j) {
    T* row = ws + l.scratch + slot * l.scratch_elems;
    const int64_t i = j / h, iy = j % h, ry = iy % sy;
    tr.transpose(x + i * c * h * wd + iy * wd, h * wd, c, wd, static_cast<const T*>(nullptr), row,
                 c);
    for (int64_t ix = 0; ix < wd; ++ix) {
      const int64_t rx = ix % sx, wp = phase_extent(wd, sx, rx);
      std::memcpy(xp + l.plane[ry][rx] + (((iy / sy) * wp + ix / sx) * n + i) * c, row + ix * c,
                  static_cast<size_t>(c) * sizeof(T));
    }
  });
}

// The forward's work on geometry g: x's phase planes, every panel's taps packed by
// `pack(col0, nc, kb, kn, nr, packed)`, y (NCHW, + bias) from the images-innermost copy.
template <typename T, typename Pack>
void forward_on(const ConvGeometry& g, int threads, const T* x, const T* bias, T* y, T* ws,
                const Pack& pack) {
  const Layout l = layout<T>(g, ConvPass::kForward, threads);
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const int64_t n = g.n, k = g.k, out_sp = g.out_spatial();
  fill_planes(g, l, x, ws);
  zero(ws + l.ycl, n * out_sp * k);
  run_panels<T>(g, l, true, ws, [&](int64_t col0, int64_t nc, int64_t kb, int64_t kn, T* packed) {
    pack(col0, nc, kb, kn, l.nr, packed);
  });
  // y[i][kk][pos] = the copy's (pos, i, kk) + bias.
  parallel_for(n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      tr.transpose(ws + l.ycl + i * k, n * k, out_sp, k, bias, y + i * k * out_sp, out_sp);
  });
}

// packed[(kk, t)][j] = w[kb + kk][col0 + j][t], w stored (K, C, taps): each grad_y channel's run
// of nc x taps transposed into one contiguous block (written tap-outer, 16 KiB apart, the stores
// missed the TLB: 13% of dcgan.g2).
template <typename T>
void pack_data_taps(const T* w, int64_t c, int64_t taps, int64_t col0, int64_t nc, int64_t kb,
                    int64_t kn, int64_t nr, T* packed) {
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  for (int64_t kk = 0; kk < kn; ++kk)
    tr.transpose(w + ((kb + kk) * c + col0) * taps, taps, nc, taps,
                 static_cast<const T*>(nullptr), packed + kk * taps * nr, nr);
}

bool unit_stride_data(const ConvGeometry& g, ConvPass pass) {
  return pass == ConvPass::kBackwardData && g.stride[1] * g.stride[2] == 1;
}

}  // namespace

bool batch_taps_serve(const ConvGeometry& g, ConvPass pass) {
  if (g.groups != 1 || g.c < 16 || g.k < 16) return false;
  if (g.rank != 2 || g.n < kBatchTapsMinImages) return false;
  if (unit_stride_data(g, pass))
    return batch_taps_serve(data_correlation_geometry(g), ConvPass::kForward);
  if (g.out_spatial() > kBatchTapsMaxPositions || g.out_spatial() == 0) return false;
  if (g.stride[1] > 16 || g.stride[2] > 16) return false;
  if (pass == ConvPass::kForward && g.out[2] > kBatchTapsMaxForwardRow) return false;
  for (int d = 1; d < 3; ++d)
    if (g.pad_lo[d] < 0) return false;
  return true;
}

int64_t batch_taps_workspace_bytes(const ConvGeometry& g, ConvPass pass, DType t, int threads) {
  if (unit_stride_data(g, pass))
    return batch_taps_workspace_bytes(data_correlation_geometry(g), ConvPass::kForward, t, threads);
  const bool f64 = t == DType::kFloat64;
  const Layout l = f64 ? layout<double>(g, pass, threads) : layout<float>(g, pass, threads);
  return checked_product({l.end, dtype_size(t)}, "direct workspace");
}

template <typename T>
void batch_taps_forward(const ConvPlan& plan, const T* x, const T* w, const T* bias, T* y,
                        T* ws) {
  const ConvGeometry& g = plan.g;
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const int64_t c = g.c, taps = g.kernel_spatial();
  // packed[(cc, t)][j] = w[col0 + j][kb + cc][t]: the panel's kernels' runs transposed at once.
  forward_on(g, plan.threads, x, bias, y, ws,
             [&](int64_t col0, int64_t nc, int64_t kb, int64_t kn, int64_t nr, T* packed) {
               tr.transpose(w + (col0 * c + kb) * taps, c * taps, nc, kn * taps,
                            static_cast<const T*>(nullptr), packed, nr);
             });
}

template <typename T>
void batch_taps_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x,
                              T* ws) {
  const ConvGeometry& g = plan.g;
  if (unit_stride_data(g, plan.pass)) {  // the forward's path on the correlation's geometry
    const int64_t c = g.c, taps = g.kernel_spatial();
    forward_on(data_correlation_geometry(g), plan.threads, grad_y, static_cast<const T*>(nullptr),
               grad_x, ws,
               [&](int64_t col0, int64_t nc, int64_t kb, int64_t kn, int64_t nr, T* packed) {
                 pack_data_taps(w, c, taps, col0, nc, kb, kn, nr, packed);
               });
    return;
  }
  const Layout l = layout<T>(g, ConvPass::kBackwardData, plan.threads);
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const int64_t n = g.n, c = g.c, k = g.k, taps = g.kernel_spatial();
  const int64_t out_sp = g.out_spatial(), in_sp = g.in_spatial();
  const int64_t sy = g.stride[1], sx = g.stride[2];
  T* xp = ws + l.xp;
  // grad_y as (row, column, image, channel); the phase planes zeroed.
  parallel_for(n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      tr.transpose(grad_y + i * k * out_sp, out_sp, k, out_sp, static_cast<const T*>(nullptr),
                   ws + l.ycl + i * k, n * k);
  });
  zero(xp, l.reaches - l.xp);
  run_panels<T>(g, l, false, ws, [&](int64_t col0, int64_t nc, int64_t kb, int64_t kn, T* packed) {
    pack_data_taps(w, c, taps, col0, nc, kb, kn, l.nr, packed);
  });
  // grad_x[i][cc][y][x] from plane (y % sy, x % sx), row y / sy, column x / sx: per image and
  // phase, the plane's positions (n * c apart) x channels transposed through a buffer, then
  // spread over the phase's places in each channel's plane.
  over_slots(l, n, [&](int64_t slot, int64_t i) {
    T* buf = ws + l.scratch + slot * l.scratch_elems;
    for (int64_t ry = 0; ry < std::min(sy, g.in[1]); ++ry)
      for (int64_t rx = 0; rx < std::min(sx, g.in[2]); ++rx) {
        const int64_t hp = phase_extent(g.in[1], sy, ry), wp = phase_extent(g.in[2], sx, rx),
                      pp = hp * wp;
        tr.transpose(xp + l.plane[ry][rx] + i * c, n * c, pp, c, static_cast<const T*>(nullptr),
                     buf, pp);
        for (int64_t cc = 0; cc < c; ++cc) {
          const T* src = buf + cc * pp;
          T* dst = grad_x + (i * c + cc) * in_sp + ry * g.in[2] + rx;
          for (int64_t yy = 0; yy < hp; ++yy)
            for (int64_t xx = 0; xx < wp; ++xx) dst[yy * sy * g.in[2] + xx * sx] = src[yy * wp + xx];
        }
      }
  });
}

template <typename T>
void batch_taps_backward_weight(const ConvPlan& plan, const T* x, const T* grad_y, T* grad_w,
                                T* ws) {
  const ConvGeometry& g = plan.g;
  const Layout l = layout<T>(g, ConvPass::kBackwardWeight, plan.threads);
  const gemm::GemmKernel<T>& kern = gemm::gemm_kernel<T>();
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const int64_t n = g.n, c = g.c, k = g.k, kh = g.kernel[1], kw = g.kernel[2], taps = kh * kw;
  const int64_t out_sp = g.out_spatial(), wo = g.out[2], depth = out_sp * n;
  T* gy = ws + l.ycl;  // here (channel, row, column, image): each channel's rows of depth
  T* xp = ws + l.xp;
  T* acc = ws + l.acc;
  parallel_for(k, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t kk = k0; kk < k1; ++kk)
      tr.transpose(grad_y + kk * out_sp, k * out_sp, n, out_sp, static_cast<const T*>(nullptr),
                   gy + kk * depth, n);
  });
  fill_planes(g, l, x, ws);
  // Items: (tap, block of kBlockRows output channels), each over every panel of input channels
  // and, per output row the tap reaches, its run of (column, image) pairs as the depth: A =
  // grad_y's channel rows read in place (depth apart), B = the plane's rows (c apart), the
  // tap's sums accumulated in place.
  constexpr int64_t kBlockRows = 64;
  const int64_t kblocks = (k + kBlockRows - 1) / kBlockRows, panels = (c + l.nr - 1) / l.nr;
  const Reach* r = reaches(g, l, ws);
  parallel_for(taps * kblocks, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / kblocks, k0 = i % kblocks * kBlockRows;
      const int64_t kn = std::min(kBlockRows, k - k0);
      T* sums = acc + (t * k + k0) * c;
      std::fill(sums, sums + kn * c, T(0));
      const Reach& dy = r[t];
      const Reach& dx = r[taps + t];
      if (dy.lo >= dy.hi || dx.lo >= dx.hi) continue;
      const int64_t wp = phase_extent(g.in[2], g.stride[2], dx.r);
      const T* plane = xp + l.plane[dy.r][dx.r];
      const int64_t run = (dx.hi - dx.lo) * n;
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t n0 = p * l.nr, nc = std::min(l.nr, c - n0);
        for (int64_t r0 = 0; r0 < kn; r0 += kern.rows_a) {
          const int64_t rows = std::min(kern.rows_a, kn - r0);
          for (int64_t oy = dy.lo; oy < dy.hi; ++oy)
            kern.fn_rows_a(run, gy + (k0 + r0) * depth + (oy * wo + dx.lo) * n, depth,
                           plane + ((oy + dy.shift) * wp + dx.lo + dx.shift) * n * c + n0, c,
                           sums + r0 * c + n0, c, rows, nc, T(1), T(1));
        }
      }
    }
  });
  // grad_w[kk][cc][stored tap] from the sums (tap, K, C).
  const bool flip = g.mode == ConvMode::kConv;
  parallel_for(k, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t kk = k0; kk < k1; ++kk) {
      T* dst = grad_w + kk * c * taps;
      if (!flip) {
        tr.transpose(acc + kk * c, k * c, taps, c, static_cast<const T*>(nullptr), dst, taps);
        continue;
      }
      for (int64_t t = 0; t < taps; ++t)
        for (int64_t cc = 0; cc < c; ++cc)
          dst[cc * taps + taps - 1 - t] = acc[(t * k + kk) * c + cc];
    }
  });
}

#define FASTCONV_INSTANTIATE(T)                                                                 \
  template void batch_taps_forward<T>(const ConvPlan&, const T*, const T*, const T*, T*, T*); \
  template void batch_taps_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);     \
  template void batch_taps_backward_weight<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
