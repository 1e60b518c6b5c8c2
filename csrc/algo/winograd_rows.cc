// Winograd F(m, r) along output rows over W's stride phases (winograd_rows.h).
#include "algo/winograd_rows.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "algo/direct_rows_parts.h"
#include "common/signed_div.h"
#include "fastconv/parallel.h"
#include "gemm/cache_sizes.h"
#include "ukernels/rows/rows_ukernels.h"
#include "ukernels/winograd/winograd_matrices.h"

namespace fastconv::algo::winograd_rows {
namespace {

using rows_parts::kSlack;
using rows_parts::pack_chunks;
using rows_parts::slots_of;
using rows_parts::stored_tap;


int64_t phase_taps(const ConvGeometry& g) { return ceil_div(g.kernel[2], g.stride[2]); }

// The tile for r taps per phase: the largest m up to 4 whose transform has at most 6 points
// (the F(4,3) point set; a 7th point, +-2 or +-1/2, grows float32 error where the products
// saved per output shrink, alpha / m: 7/4 against 6/3 for r = 4).
int tile_for(int64_t r) { return r == 2 || r == 3 ? 4 : r == 4 ? 3 : 2; }

// Band bytes: a slot's points for one band in about a quarter of the L2.
int64_t band_budget() { return std::max<int64_t>(gemm::cache_sizes().l2 / 4, 64 << 10); }

// The row kernels for runs of n points.
template <typename T>
const RowsKernels<T>& kernels(int64_t n) {
  return rows_kernels_for_row<T>(n);
}

// Which H phase plane index each H phase gets (-1: none of the kernel rows reads it).
std::vector<int64_t> rho_index(const ConvGeometry& g) {
  std::vector<int64_t> idx(size_t(g.stride[1]), -1);
  int64_t n = 0;
  for (int64_t kh = 0; kh < g.kernel[1]; ++kh) {
    const int64_t rho = kh * g.dilation[1] % g.stride[1];
    if (idx[size_t(rho)] < 0) idx[size_t(rho)] = n++;
  }
  return idx;
}

// The weight's points for F(M, R): U[t](f, (c, kh, p)) = sum over i < R of
// G[t][i] w(f, c, kh, p + s i).
template <typename T, int M, int R>
struct Transforms {
  using Mat = winograd::Matrices<M, R>;
  static constexpr int kAlpha = Mat::kAlpha;

  static T weight(const ConvGeometry& g, const T* w, int t, int64_t f, int64_t term) {
    const int64_t sw = g.stride[2], kh_count = g.kernel[1];
    const int64_t c = term / (kh_count * sw), kh = term / sw % kh_count, p = term % sw;
    const int64_t taps = g.kernel_spatial();
    T s = T(0);
    for (int i = 0; i < R; ++i) {
      const int64_t kw = p + sw * i;
      if (kw >= g.kernel[2]) break;
      s += T(Mat::G[t][i]) * w[(f * g.c + c) * taps + stored_tap(g, kh * g.kernel[2] + kw)];
    }
    return s;
  }
};

// A phase row's M interleaved sub-rows: sub[k * len + i] = row[(M i + k) * step + first], zero
// off the row (0 <= index < width).
template <int M, typename T>
void gather_sub_rows(const T* row, int64_t width, int64_t step, int64_t first, int64_t len,
                     T* sub) {
  const int64_t stride = M * step;
  for (int k = 0; k < M; ++k) {
    const int64_t base = k * step + first;  // index of element i: base + i * stride
    // Elements inside the row: i0 <= i < i1.
    const int64_t i0 = std::clamp<int64_t>(base >= 0 ? 0 : ceil_div(-base, stride), 0, len);
    const int64_t i1 =
        std::clamp<int64_t>(base < width ? ceil_div(width - base, stride) : 0, i0, len);
    T* d = sub + k * len;
    std::fill(d, d + i0, T(0));
    for (int64_t i = i0; i < i1; ++i) d[i] = row[base + i * stride];
    std::fill(d + i1, d + len, T(0));
  }
}

template <typename T, int M, int R>
void run(const ConvPlan& plan, const Rows& rw, const T* x, const T* w, const T* bias, T* y,
         T* ws) {
  using Tr = Transforms<T, M, R>;
  constexpr int A = Tr::kAlpha;
  const ConvGeometry& g = plan.g;
  const int64_t sh = g.stride[1], sw = g.stride[2], kh_count = g.kernel[1];
  const int64_t out_h = g.out[1], out_w = g.out[2], in_h = g.in[1], in_w = g.in[2];
  const int64_t tiles = rw.tiles, ext = rw.band + rw.halo, plane = ext * tiles;
  const std::vector<int64_t> ridx = rho_index(g);
  // Term (c, kh, p): its plane's band rows from the kernel row's first.
  std::vector<int64_t> off(size_t(rw.nred));
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t kh = 0; kh < kh_count; ++kh)
      for (int64_t p = 0; p < sw; ++p) {
        const int64_t a = kh * g.dilation[1];
        const int64_t pl = (c * rw.rho + ridx[size_t(a % sh)]) * sw + p;
        off[size_t((c * kh_count + kh) * sw + p)] = pl * plane + a / sh * tiles;
      }
  const RowsKernels<T>& kern = kernels<T>(rw.band * tiles);
  const int64_t kb = rw.chunk;
  T* packed = ws;
  parallel_for(A, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      pack_chunks(g.k, rw.nred, kb,
                  [&](int64_t f, int64_t r) { return Tr::weight(g, w, int(t), f, r); },
                  packed + t * g.k * rw.nred);
  });
  const int64_t items = g.n * g.out[0] * rw.bands;
  const int64_t slots = std::min(rw.slots, items);
  const int64_t is = g.in_spatial(), os = g.out_spatial();
  std::atomic<int64_t> next{0};
  parallel_for(slots, 1, [&](int64_t sb, int64_t se) {
    for (int64_t slot = sb; slot < se; ++slot) {
      T* v = ws + rw.weight + slot * rw.slot;
      T* acc = v + A * rw.point;
      T* sub = acc + A * rw.chunk * rw.pitch;
      for (int64_t item; (item = next.fetch_add(1)) < items;) {
        const int64_t n = item / (g.out[0] * rw.bands), oz = item / rw.bands % g.out[0];
        const int64_t y0 = item % rw.bands * rw.band, rows = std::min(rw.band, out_h - y0);
        const int64_t iz = oz * g.stride[0] - g.pad_lo[0];
        const bool slice = iz >= 0 && iz < g.in[0];
        // The band's points: every plane row it reads.
        for (int64_t c = 0; c < g.c; ++c)
          for (int64_t rho = 0; rho < sh; ++rho) {
            if (ridx[size_t(rho)] < 0) continue;
            const T* xc = x + (n * g.c + c) * is + (slice ? iz : 0) * in_h * in_w;
            for (int64_t q = 0; q < rows + rw.halo; ++q) {
              const int64_t iy = (y0 + q) * sh + rho - g.pad_lo[1];
              const bool inside = slice && iy >= 0 && iy < in_h;
              for (int64_t p = 0; p < sw; ++p) {
                const int64_t pl = (c * rw.rho + ridx[size_t(rho)]) * sw + p;
                T* vp = v + pl * plane + q * tiles;
                if (!inside) {  // padding: zero points
                  for (int t = 0; t < A; ++t)
                    std::fill(vp + t * rw.point, vp + t * rw.point + tiles, T(0));
                  continue;
                }
                gather_sub_rows<M>(xc + iy * in_w, in_w, sw, p - g.pad_lo[2], rw.sub, sub);
                kern.winograd_input(R, sub, rw.sub, tiles, vp, rw.point);
              }
            }
          }
        // A chunk of output channels (one register block's rows) at a time: its sums stay
        // in L1 between the kernel calls and the output transform.
        const int64_t npos = rows * tiles;
        for (int64_t f0 = 0; f0 < g.k; f0 += kb) {
          const int64_t fc = std::min(kb, g.k - f0);
          for (int t = 0; t < A; ++t)
            kern.forward(v + t * rw.point, off.data(), rw.nred,
                         packed + (t * g.k + f0) * rw.nred, kb, fc, nullptr, false,
                         acc + t * kb * rw.pitch, rw.pitch, npos);
          for (int64_t f = 0; f < fc; ++f) {
            T* yf = y + (n * g.k + f0 + f) * os + (oz * out_h + y0) * out_w;
            const T b = bias ? bias[f0 + f] : T(0);
            kern.winograd_output(R, acc + f * rw.pitch, kb * rw.pitch, tiles, rows, b, yf, out_w);
          }
        }
      }
    }
  });
}

}  // namespace

bool serves(const ConvGeometry& g, ConvPass pass) {
  if (pass != ConvPass::kForward || g.groups != 1 || g.kernel[0] != 1 || g.dilation[2] != 1)
    return false;
  for (int d = 0; d < kMaxRank; ++d)
    if (g.pad_lo[d] < 0) return false;
  const int64_t r = phase_taps(g);
  return r >= 2 && r <= 5;
}

bool preferred(const ConvGeometry& g, ConvPass pass) {
  return serves(g, pass) && g.c <= 4 && g.stride[2] == 2 && g.kernel[2] >= 6 && g.kernel[2] <= 8;
}

Rows make(const ConvGeometry& g, int64_t elem, int threads) {
  Rows rw;
  rw.r = int(phase_taps(g));
  rw.m = tile_for(rw.r);
  rw.alpha = rw.m + rw.r - 1;
  rw.tiles = ceil_div(g.out[2], rw.m);
  rw.sub = rw.tiles + ceil_div(rw.alpha - 1, rw.m);
  int64_t halo = 0;
  for (int64_t kh = 0; kh < g.kernel[1]; ++kh)
    halo = std::max(halo, kh * g.dilation[1] / g.stride[1]);
  rw.halo = halo;
  std::vector<int64_t> ridx = rho_index(g);
  rw.rho = *std::max_element(ridx.begin(), ridx.end()) + 1;
  rw.planes = g.c * rw.rho * g.stride[2];
  rw.nred = g.c * g.kernel[1] * g.stride[2];
  rw.slots = slots_of(threads);
  // Output rows per band: the points and sums of a band in band_budget(), then whole rounds
  // of bands over the slots.
  const int64_t out_h = std::max<int64_t>(g.out[1], 1);
  const int64_t per_row = elem * rw.alpha * rw.tiles * rw.planes;
  const int64_t fit = std::clamp<int64_t>(band_budget() / std::max<int64_t>(per_row, 1), 1, out_h);
  const int64_t rounds = ceil_div(out_h, fit * rw.slots);
  rw.band = std::max<int64_t>(1, ceil_div(out_h, rounds * rw.slots));
  rw.bands = ceil_div(out_h, rw.band);
  rw.point = rw.planes * (rw.band + rw.halo) * rw.tiles + kSlack;
  rw.pitch = round_up(rw.band * rw.tiles, 16);
  const int64_t n = rw.band * rw.tiles;
  rw.chunk = elem == 8 ? kernels<double>(n).forward_rows(g.k, n)
                       : kernels<float>(n).forward_rows(g.k, n);
  rw.slot = rw.alpha * rw.point + rw.alpha * rw.chunk * rw.pitch + rw.m * rw.sub + kSlack;
  rw.weight = round_up(rw.alpha * g.k * rw.nred, 16);
  return rw;
}

template <typename T>
void forward(const ConvPlan& plan, const Rows& rw, const T* x, const T* w, const T* bias, T* y,
             T* ws) {
  if (plan.g.n * plan.g.out_spatial() == 0) return;
  switch (rw.r) {
    case 2: return run<T, 4, 2>(plan, rw, x, w, bias, y, ws);
    case 3: return run<T, 4, 3>(plan, rw, x, w, bias, y, ws);
    case 4: return run<T, 3, 4>(plan, rw, x, w, bias, y, ws);
    default: return run<T, 2, 5>(plan, rw, x, w, bias, y, ws);
  }
}

template void forward<float>(const ConvPlan&, const Rows&, const float*, const float*,
                             const float*, float*, float*);
template void forward<double>(const ConvPlan&, const Rows&, const double*, const double*,
                              const double*, double*, double*);

}  // namespace fastconv::algo::winograd_rows
