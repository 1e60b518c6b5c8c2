// Strided backward data of small images as per-tap GEMM micro-kernel calls scattering an
// images-innermost channels-last grad_y into grad_x's stride-phase planes (scatter_taps.h).
//
// Forward (cross-correlation): y[o] += w[t] x[s * o + t - pad] per dim, so backward data adds
// w[t] grad_y[o] into grad_x[s * o + t - pad]: for tap t every such grad_x index has residue
// r = (t - pad) mod s, the stride phase, and index o + (t - pad - r) / s in the phase's plane.
// Along a grad_y row, consecutive columns land on consecutive columns of one phase plane, so a
// run of (column, image) rows is a run of rows with one stride in both grad_y's copy (k apart)
// and the plane (c apart): one rows-of-A tile call per up to rows_a of them.
#include "algo/scatter_taps.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "algo/plane_transpose.h"
#include "fastconv/parallel.h"
#include "gemm/kernel_table.h"

namespace fastconv::algo {
namespace {

// grad_y channels per block: one block's packed taps (taps x kc x nr) stay in L2 beside the rows
// they multiply.
constexpr int64_t kBlockChannels = 256;

inline int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return q * b > a ? q - 1 : q;
}
inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// Tap t's reach along one dim: grad_y indices [lo, hi) land in grad_x (extent in), in phase r at
// plane index o + shift.
struct Reach {
  int64_t lo, hi, r, shift;
};
Reach reach(int64_t t, int64_t s, int64_t pad, int64_t in, int64_t out) {
  Reach d;
  const int64_t off = t - pad;  // grad_x index of grad_y index 0
  d.r = ((off % s) + s) % s;
  d.shift = (off - d.r) / s;
  d.lo = std::max<int64_t>(0, ceil_div(-off, s));
  d.hi = std::min(out, floor_div(in - 1 - off, s) + 1);
  if (d.hi < d.lo) d.hi = d.lo;
  return d;
}

// Extent of phase r of a dim of extent `in` at stride s.
inline int64_t phase_extent(int64_t in, int64_t s, int64_t r) { return r < in ? (in - r + s - 1) / s : 0; }

struct Layout {
  int64_t gy, xp, slots;  // offsets (elements)
  int64_t plane[16][16];  // phase (ry, rx) plane offsets from xp (strides at most 16)
  int64_t nr, kc, slot, panels, slot_count;
};

template <typename T>
Layout layout(const ConvGeometry& g, int threads) {
  Layout l{};
  l.nr = gemm::gemm_kernel<T>().nr;
  l.kc = std::min(kBlockChannels, g.k);
  l.panels = (g.c + l.nr - 1) / l.nr;
  l.slot_count = std::min<int64_t>(std::max(1, threads), l.panels);
  l.gy = 0;
  l.xp = l.gy + g.n * g.out_spatial() * g.k;
  int64_t at = 0;
  for (int64_t ry = 0; ry < g.stride[1]; ++ry)
    for (int64_t rx = 0; rx < g.stride[2]; ++rx) {
      l.plane[ry][rx] = at;
      at += phase_extent(g.in[1], g.stride[1], ry) * phase_extent(g.in[2], g.stride[2], rx) *
            g.n * g.c;
    }
  l.slots = l.xp + at;
  l.slot = g.kernel_spatial() * l.kc * l.nr;
  return l;
}

}  // namespace

bool scatter_serve(const ConvGeometry& g, ConvPass pass) {
  if (pass != ConvPass::kBackwardData || g.groups != 1 || g.c < 16 || g.k < 16) return false;
  if (g.rank != 2 || g.n < kScatterMinImages) return false;
  if (g.out_spatial() > kScatterMaxPositions || g.out_spatial() == 0) return false;
  if (g.stride[1] * g.stride[2] == 1 || g.stride[1] > 16 || g.stride[2] > 16) return false;
  for (int d = 1; d < 3; ++d)
    if (g.dilation[d] != 1 || g.pad_lo[d] < 0) return false;
  return true;
}

int64_t scatter_workspace_bytes(const ConvGeometry& g, DType t, int threads) {
  const bool f64 = t == DType::kFloat64;
  const Layout l = f64 ? layout<double>(g, threads) : layout<float>(g, threads);
  return checked_product({l.slots + l.slot_count * l.slot, dtype_size(t)}, "direct workspace");
}

template <typename T>
void scatter_backward_data(const ConvPlan& plan, const T* grad_y, const T* w, T* grad_x, T* ws) {
  const ConvGeometry& g = plan.g;
  const Layout l = layout<T>(g, plan.threads);
  const gemm::GemmKernel<T>& kern = gemm::gemm_kernel<T>();
  const TransposeKernels<T>& tr = transpose_kernels<T>();
  const int64_t n = g.n, c = g.c, k = g.k, kh = g.kernel[1], kw = g.kernel[2], taps = kh * kw;
  const int64_t out_sp = g.out_spatial(), in_sp = g.in_spatial(), wo = g.out[2];
  const int64_t sy = g.stride[1], sx = g.stride[2];
  T* gy = ws + l.gy;
  T* xp = ws + l.xp;
  // grad_y as (row, column, image, channel); the phase planes zeroed.
  parallel_for(n, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      tr.transpose(grad_y + i * k * out_sp, out_sp, k, out_sp, static_cast<const T*>(nullptr),
                   gy + i * k, n * k);
  });
  const int64_t planes_elems = l.slots - l.xp;
  parallel_for(planes_elems, 16384, [&](int64_t b, int64_t e) {
    std::fill(xp + b, xp + e, T(0));
  });
  const bool flip = g.mode == ConvMode::kConv;
  std::atomic<int64_t> next{0};
  parallel_for(l.slot_count, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t slot = s0; slot < s1; ++slot) {
      T* packed = ws + l.slots + slot * l.slot;
      for (int64_t p; (p = next.fetch_add(1, std::memory_order_relaxed)) < l.panels;) {
        const int64_t c0 = p * l.nr, nc = std::min(l.nr, c - c0);
        for (int64_t kb = 0; kb < k; kb += l.kc) {
          const int64_t kn = std::min(l.kc, k - kb);
          // packed[kk][t][j] = w[kb + kk][c0 + j][t] (zero past nc): each grad_y channel's run
          // of nc x taps transposed into one contiguous block (tap-major rows of B, taps * nr
          // apart; written tap-outer, 16 KiB apart, the stores missed the TLB: 13% of dcgan.g2).
          if (nc < l.nr) std::fill(packed, packed + l.slot, T(0));
          for (int64_t kk = 0; kk < kn; ++kk)
            tr.transpose(w + ((kb + kk) * c + c0) * taps, taps, nc, taps,
                         static_cast<const T*>(nullptr), packed + kk * taps * l.nr, l.nr);
          for (int64_t t = 0; t < taps; ++t) {
            const int64_t ty = t / kw, tx = t % kw;
            const Reach ry = reach(ty, sy, g.pad_lo[1], g.in[1], g.out[1]);
            const Reach rx = reach(tx, sx, g.pad_lo[2], g.in[2], g.out[2]);
            if (ry.lo >= ry.hi || rx.lo >= rx.hi) continue;
            const int64_t wp = phase_extent(g.in[2], sx, rx.r);
            const int64_t stored = flip ? taps - 1 - t : t;
            const T* b = packed + stored * l.nr;
            T* plane = xp + l.plane[ry.r][rx.r];
            // Each run of rows in calls of nearly equal size (48 rows: 4 x 12, not 3 x 14 + 6).
            const int64_t rows = (rx.hi - rx.lo) * n;
            const int64_t calls = (rows + kern.rows_a - 1) / kern.rows_a;
            for (int64_t oy = ry.lo; oy < ry.hi; ++oy) {
              const T* a = gy + (oy * wo + rx.lo) * n * k + kb;
              T* dst = plane + ((oy + ry.shift) * wp + rx.lo + rx.shift) * n * c + c0;
              for (int64_t q = 0; q < calls; ++q) {
                const int64_t r0 = rows * q / calls, r1 = rows * (q + 1) / calls;
                kern.fn_rows_a(kn, a + r0 * k, k, b, taps * l.nr, dst + r0 * c, c, r1 - r0, nc,
                               T(1), T(1));
              }
            }
          }
        }
      }
    }
  });
  // grad_x[i][cc][y][x] from plane (y % sy, x % sx), row y / sy, column x / sx: per image and
  // phase, the plane's positions (n * c apart) x channels transposed through a buffer, then
  // spread over the phase's places in each channel's plane.
  parallel_for(n, 1, [&](int64_t i0, int64_t i1) {
    int64_t most = 0;
    for (int64_t ry = 0; ry < sy; ++ry)
      for (int64_t rx = 0; rx < sx; ++rx)
        most = std::max(most, phase_extent(g.in[1], sy, ry) * phase_extent(g.in[2], sx, rx));
    std::vector<T> buf(size_t(most * c));
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t ry = 0; ry < std::min(sy, g.in[1]); ++ry)
        for (int64_t rx = 0; rx < std::min(sx, g.in[2]); ++rx) {
          const int64_t hp = phase_extent(g.in[1], sy, ry), wp = phase_extent(g.in[2], sx, rx),
                        pp = hp * wp;
          tr.transpose(xp + l.plane[ry][rx] + i * c, n * c, pp, c, static_cast<const T*>(nullptr),
                       buf.data(), pp);
          for (int64_t cc = 0; cc < c; ++cc) {
            const T* src = buf.data() + cc * pp;
            T* dst = grad_x + (i * c + cc) * in_sp + ry * g.in[2] + rx;
            for (int64_t yy = 0; yy < hp; ++yy)
              for (int64_t xx = 0; xx < wp; ++xx) dst[yy * sy * g.in[2] + xx * sx] = src[yy * wp + xx];
          }
        }
  });
}

#define FASTCONV_INSTANTIATE(T)                                                               \
  template void scatter_backward_data<T>(const ConvPlan&, const T*, const T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo
