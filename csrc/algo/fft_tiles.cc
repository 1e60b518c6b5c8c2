// Overlap-save tiles of the FFT convolution (algo/fft_tiles.h): loads, stores, kernel spectra.
#include "algo/fft_tiles.h"

#include <algorithm>

#include "fastconv/parallel.h"

namespace fastconv::algo::fft_conv {
namespace {

// Image n and per-dim tile indices t of tile number tg (tiles run row-major within an image).
struct TileCoord {
  int64_t n, t[3];
};

TileCoord tile_coord(const Layout& L, int64_t tg) {
  TileCoord c;
  c.n = tg / L.tiles_per_image;
  int64_t ts = tg % L.tiles_per_image;
  c.t[2] = ts % L.tile_count[2];
  ts /= L.tile_count[2];
  c.t[1] = ts % L.tile_count[1];
  c.t[0] = ts / L.tile_count[1];
  return c;
}

// Lanes move between tensors and [pos][lane] tiles in chunks of 16 lanes (a cache line of f32)
// and blocks of 64 positions, so both sides stay in L1 while the block transposes.
constexpr int64_t kLaneChunk = 16, kPosBlock = 64;

// Weight index along dim d feeding tap q of the correlation kernel (polyphase component r of a
// strided forward: dilated tap q * stride + r), or -1.
int64_t kernel_tap(const ConvGeometry& g, ConvPass pass, int d, int64_t q, int64_t r = 0) {
  const int64_t ke = dilated(g, d);
  if (pass == ConvPass::kForward) q = q * g.stride[d] + r;
  if (q >= ke) return -1;
  const int64_t t = pass == ConvPass::kBackwardData ? ke - 1 - q : q;
  if (t % g.dilation[d] != 0) return -1;
  const int64_t j = t / g.dilation[d];
  return g.mode == ConvMode::kConv ? g.kernel[d] - 1 - j : j;
}

// R[pos][lane] for the kernel taps of channel pairs [first, first + lanes) (pairs past `pairs`
// are zero). Only rows inside the kernel extent are written: forward_nd reads no others.
template <typename T>
void gather_kernel_taps(const ConvGeometry& g, const Layout& L, const T* w, int64_t first,
                        int64_t pairs, int64_t lanes, T* R) {
  const int64_t ksp = g.kernel_spatial(), rs = fft::rstride(lanes);
  const int64_t n1 = L.fft_length[1], n2 = L.fft_length[2];
  parallel_for((lanes + kLaneChunk - 1) / kLaneChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t b0 = chunk * kLaneChunk, b1 = std::min(lanes, b0 + kLaneChunk);
      const T* wl[kLaneChunk];
      int64_t rp[kLaneChunk][3];  // polyphase component per dim (forward of a strided conv)
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t idx = first + b;
        wl[b - b0] = nullptr;
        if (idx >= pairs) continue;
        const int64_t o = idx / L.in_per_group, i = idx % L.in_per_group, rf = i % L.phase_count;
        rp[b - b0][2] = rf % L.phases[2];
        rp[b - b0][1] = (rf / L.phases[2]) % L.phases[1];
        rp[b - b0][0] = rf / (L.phases[2] * L.phases[1]);
        const int64_t cg = L.in_per_group / L.phase_count;
        const int64_t wrow = L.pass == ConvPass::kForward
                                 ? o * cg + i / L.phase_count  // (k, c-in-group)
                                 : ((o / L.out_per_group) * L.in_per_group + i) * L.out_per_group +
                                       o % L.out_per_group;
        wl[b - b0] = w + wrow * ksp;
      }
      if (L.phase_count > 1) {  // taps differ per lane: one lookup per element
        for (int64_t pd = 0; pd < std::min(L.kernel_extent[0], L.fft_length[0]); ++pd)
          for (int64_t ph = 0; ph < std::min(L.kernel_extent[1], n1); ++ph) {
            T* r = R + (pd * n1 + ph) * n2 * rs;
            for (int64_t pw = 0; pw < n2; ++pw)
              for (int64_t b = b0; b < b1; ++b) {
                const int64_t* q = rp[b - b0];
                const int64_t td = kernel_tap(g, L.pass, 0, pd, q[0]);
                const int64_t th = kernel_tap(g, L.pass, 1, ph, q[1]);
                const int64_t tw = kernel_tap(g, L.pass, 2, pw, q[2]);
                const bool on = td >= 0 && th >= 0 && tw >= 0 && wl[b - b0];
                r[pw * rs + b] = on ? wl[b - b0][(td * g.kernel[1] + th) * g.kernel[2] + tw] : T(0);
              }
          }
        continue;
      }
      for (int64_t pd = 0; pd < std::min(L.kernel_extent[0], L.fft_length[0]); ++pd)
        for (int64_t ph = 0; ph < std::min(L.kernel_extent[1], n1); ++ph) {
          const int64_t td = kernel_tap(g, L.pass, 0, pd), th = kernel_tap(g, L.pass, 1, ph);
          T* r = R + (pd * n1 + ph) * n2 * rs;
          for (int64_t pw = 0; pw < n2; ++pw) {
            const int64_t tw = kernel_tap(g, L.pass, 2, pw);
            const bool on = td >= 0 && th >= 0 && tw >= 0;
            const int64_t off = (td * g.kernel[1] + th) * g.kernel[2] + tw;
            for (int64_t b = b0; b < b1; ++b)
              r[pw * rs + b] = on && wl[b - b0] ? wl[b - b0][off] : T(0);
          }
        }
    }
  });
}

// kspec entries of channel pairs [first, first + count) from their spectra S (lanes wide).
template <typename T>
void store_kernel_spectra(const Layout& L, const T* S, int64_t lanes, int64_t first, int64_t count,
                          T* kspec) {
  const T scale = T(1.0 / double(L.points));
  const int64_t fs = fft::fstride(lanes);
  parallel_for(L.frequencies, 1, [&](int64_t f0, int64_t f1) {
    for (int64_t f = f0; f < f1; ++f) {
      const T* sr = S + f * fs;
      const T* si = sr + lanes;
      if (L.in_per_group == 1) {  // W' = conj(W) / P
        for (int64_t b = 0; b < count; ++b) {
          kspec[f * 2 * L.out_channels + first + b] = scale * sr[b];
          kspec[f * 2 * L.out_channels + L.out_channels + first + b] = -scale * si[b];
        }
        continue;
      }
      // Walk the (o, i) pairs of this chunk row by row: no divisions per element.
      const int64_t ld = 2 * L.in_per_group;
      for (int64_t idx = first; idx < first + count;) {
        const int64_t o = idx / L.in_per_group, i0 = idx % L.in_per_group;
        const int64_t n = std::min(L.in_per_group - i0, first + count - idx);
        const int64_t grp = o / L.out_per_group, ol = o % L.out_per_group;
        T* a = kspec + (f * L.groups + grp) * 4 * L.out_per_group * L.in_per_group;
        T* top = a + ol * ld + i0;
        T* bottom = a + (L.out_per_group + ol) * ld + i0;
        const T* pr = sr + (idx - first);
        const T* pi = si + (idx - first);
        for (int64_t j = 0; j < n; ++j) {
          const T wr = scale * pr[j], wi = -scale * pi[j];  // W' = conj(W) / P
          top[j] = wr;
          top[L.in_per_group + j] = -wi;
          bottom[j] = wi;
          bottom[L.in_per_group + j] = wr;
        }
        idx += n;
      }
    }
  });
}

}  // namespace

template <typename T>
void load_tiles(const Layout& L, const AxisLoad* ax, const T* src, int64_t channels,
                const Dims& ext, int64_t t0, T* R, int64_t r0, int64_t r1, const LaneMap* map,
                const Dims* phase) {
  const int64_t lanes = channels * L.tiles_per_block, n0 = L.fft_length[0], n1 = L.fft_length[1],
                n2 = L.fft_length[2];
  const int64_t plane = ext[0] * ext[1] * ext[2], rs = map ? map->rs : fft::rstride(lanes);
  const Dims ph_ = phase ? *phase : Dims{1, 1, 1};
  const int64_t nph = ph_[0] * ph_[1] * ph_[2], src_channels = channels / nph;
  if (r1 < 0) r1 = lanes;
  parallel_for((r1 - r0 + kLaneChunk - 1) / kLaneChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t l0 = r0 + chunk * kLaneChunk, l1 = std::min(r1, l0 + kLaneChunk);
      const T* base[kLaneChunk];
      TileCoord tc[kLaneChunk];
      int64_t rp[kLaneChunk][3];  // phase per dim
      for (int64_t l = l0; l < l1; ++l) {
        const int64_t gl = map ? map->global(l) : l, tg = t0 + gl % L.tiles_per_block,
                      ch = gl / L.tiles_per_block;
        const int64_t rf = ch % nph;
        rp[l - l0][2] = rf % ph_[2];
        rp[l - l0][1] = (rf / ph_[2]) % ph_[1];
        rp[l - l0][0] = rf / (ph_[2] * ph_[1]);
        base[l - l0] = nullptr;
        if (tg >= L.total_tiles) continue;
        tc[l - l0] = tile_coord(L, tg);
        base[l - l0] = src + (tc[l - l0].n * src_channels + ch / nph) * plane;
      }
      for (int64_t pd = 0; pd < n0; ++pd)
        for (int64_t ph = 0; ph < n1; ++ph) {
          T* row = R + (pd * n1 + ph) * n2 * rs;
          for (int64_t p0 = 0; p0 < n2; p0 += kPosBlock) {
            const int64_t p1 = std::min(n2, p0 + kPosBlock);
            for (int64_t l = l0; l < l1; ++l) {
              const int64_t i = l - l0;
              const int64_t sd = base[i] ? ax[0].src(tc[i].t[0], pd, rp[i][0]) : -1;
              const int64_t sh = sd >= 0 ? ax[1].src(tc[i].t[1], ph, rp[i][1]) : -1;
              if (sh < 0) {
                for (int64_t pw = p0; pw < p1; ++pw) row[pw * rs + l] = T(0);
                continue;
              }
              const T* srow = base[i] + (sd * ext[1] + sh) * ext[2];
              const AxisLoad& a = ax[2];
              // A contiguous source run: copy [lo, hi) of this block, zero the rest.
              if (a.upsample == 1 && a.phases == 1) {
                const int64_t s0 = tc[i].t[2] * a.tile_step + a.offset;
                const int64_t lo = std::clamp<int64_t>(-s0, p0, p1);
                const int64_t hi = std::clamp<int64_t>(std::min(a.window, a.extent - s0), lo, p1);
                for (int64_t pw = p0; pw < lo; ++pw) row[pw * rs + l] = T(0);
                for (int64_t pw = lo; pw < hi; ++pw) row[pw * rs + l] = srow[s0 + pw];
                for (int64_t pw = hi; pw < p1; ++pw) row[pw * rs + l] = T(0);
              } else {
                for (int64_t pw = p0; pw < p1; ++pw) {
                  const int64_t sw = a.src(tc[i].t[2], pw, rp[i][2]);
                  row[pw * rs + l] = sw >= 0 ? srow[sw] : T(0);
                }
              }
            }
          }
        }
    }
  });
}

template <typename T>
void store_tiles(const Layout& L, const T* R, const Dims& ext, const T* bias, int64_t t0, T* dst,
                 int64_t r0, int64_t r1, const LaneMap* map) {
  const int64_t lanes = L.out_lanes, n1 = L.fft_length[1], n2 = L.fft_length[2];
  const int64_t rs = map ? map->rs : fft::rstride(lanes);
  const int64_t plane = ext[0] * ext[1] * ext[2];
  if (r1 < 0) r1 = lanes;
  parallel_for((r1 - r0 + kLaneChunk - 1) / kLaneChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t l0 = r0 + chunk * kLaneChunk, l1 = std::min(r1, l0 + kLaneChunk);
      // All lanes of a chunk share the tile shape only when they share the tile; go lane by lane
      // inside each block of 64 output positions.
      Dims rows{1, 1, 1};
      for (int d = 0; d < 2; ++d) rows[d] = L.tile_outputs[d];
      for (int64_t i0 = 0; i0 < rows[0]; ++i0)
        for (int64_t i1 = 0; i1 < rows[1]; ++i1) {
          const T* r = R + ((i0 * n1 + i1) * n2) * rs;
          for (int64_t q0 = 0; q0 < L.tile_outputs[2]; q0 += kPosBlock) {
            for (int64_t l = l0; l < l1; ++l) {
              const int64_t gl = map ? map->global(l) : l, o = gl / L.tiles_per_block,
                            tg = t0 + gl % L.tiles_per_block;
              if (tg >= L.total_tiles) continue;
              const TileCoord tc = tile_coord(L, tg);
              const int64_t od = tc.t[0] * L.tile_outputs[0] + i0,
                            oh = tc.t[1] * L.tile_outputs[1] + i1;
              const int64_t ow = tc.t[2] * L.tile_outputs[2];
              if (od >= ext[0] || oh >= ext[1]) continue;
              const int64_t q1 = std::min({L.tile_outputs[2], q0 + kPosBlock, ext[2] - ow});
              const T b = bias ? bias[o] : T(0);
              T* out = dst + (tc.n * L.out_channels + o) * plane + (od * ext[1] + oh) * ext[2] + ow;
              for (int64_t q = q0; q < q1; ++q) out[q] = r[q * rs + l] + b;
            }
          }
        }
    }
  });
}

template <typename T>
void kernel_spectra(const ConvGeometry& g, const Layout& L, const fft::PlanNd<T>& plans, const T* w,
                    int64_t buffer_lanes, T* kspec, T* R, T* S) {
  const int64_t pairs = L.out_channels * L.in_per_group;
  const int64_t lanes = std::min(round_even(pairs), buffer_lanes - buffer_lanes % 2);
  for (int64_t first = 0; first < pairs; first += lanes) {
    gather_kernel_taps(g, L, w, first, pairs, lanes, R);
    fft::forward_nd(plans, R, lanes, S, L.kernel_extent[0], L.kernel_extent[1]);
    store_kernel_spectra(L, S, lanes, first, std::min(lanes, pairs - first), kspec);
  }
}

#define FASTCONV_INSTANTIATE(T)                                                               \
  template void load_tiles<T>(const Layout&, const AxisLoad*, const T*, int64_t, const Dims&, \
                              int64_t, T*, int64_t, int64_t, const LaneMap*, const Dims*);    \
  template void store_tiles<T>(const Layout&, const T*, const Dims&, const T*, int64_t, T*,   \
                               int64_t, int64_t, const LaneMap*);                             \
  template void kernel_spectra<T>(const ConvGeometry&, const Layout&, const fft::PlanNd<T>&,  \
                                  const T*, int64_t, T*, T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo::fft_conv
