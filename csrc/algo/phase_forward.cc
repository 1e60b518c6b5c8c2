// Strided forward by stride phases (space-to-depth): with stride s and a kernel of s * a taps
// per dim, tap p = s * a + b of output o reads input s * (o + a) + b - pad, i.e. position o + a
// of phase image b (x[s * m + b - pad]). Splitting x into its s^d phase images once makes the
// conv stride 1 and unpadded over C * s^d channels with a^d taps, the weight regrouped to
// match: the implicit GEMM then packs contiguous runs (dcgan's transposed backward data, k4 s2;
// k2 s2 up/down-sampling and patch embeddings become plain GEMMs over the phase images).
#include "algo/phase_forward.h"

#include <algorithm>
#include <vector>

#include "algo/conv_panels.h"
#include "fastconv/parallel.h"

namespace fastconv::algo {

namespace {

int64_t phase_count(const ConvGeometry& g) { return g.stride[0] * g.stride[1] * g.stride[2]; }

// The stride-1 conv over the phase images (N, C * s^d, *(out + a - 1)), kernel a = kernel / s.
ConvGeometry phase_geometry(const ConvGeometry& g) {
  ConvGeometry p = g;
  p.c = g.c * phase_count(g);
  p.mode = ConvMode::kCross;
  for (int d = 0; d < kMaxRank; ++d) {
    p.kernel[d] = g.kernel[d] / g.stride[d];
    p.in[d] = g.out[d] + p.kernel[d] - 1;
    p.stride[d] = p.dilation[d] = 1;
    p.pad_lo[d] = p.pad_hi[d] = 0;
  }
  return p;
}

// Images split per pass: as many as the forward GEMM folds into one.
int64_t chunk_images(const ConvGeometry& p) {
  const int64_t out_sp = std::max<int64_t>(1, p.out_spatial());
  if (p.n < 2 || out_sp > 512) return std::min<int64_t>(1, p.n);
  return std::min(p.n, std::max<int64_t>(1, 4096 / out_sp));
}

// w'[k][(c, b)][a] = w[k][c][tap at position s * a + b] (flipped for true convolution): one
// permutation of the taps, the same for every (k, c).
template <typename T>
void regroup_weight(const ConvGeometry& g, const ConvGeometry& p, const T* w, T* out) {
  const int64_t taps = g.kernel_spatial(), ptaps = p.kernel_spatial();
  const int64_t phases = phase_count(g);
  std::vector<int64_t> from(phases * ptaps);
  for (int64_t b = 0; b < phases; ++b) {
    const int64_t bz = b / (g.stride[1] * g.stride[2]), by = (b / g.stride[2]) % g.stride[1];
    const int64_t bx = b % g.stride[2];
    for (int64_t a = 0; a < ptaps; ++a) {
      const int64_t az = a / (p.kernel[1] * p.kernel[2]), ay = (a / p.kernel[2]) % p.kernel[1];
      const int64_t ax = a % p.kernel[2];
      const int64_t tz = tap_position(g, 0, g.stride[0] * az + bz);
      const int64_t ty = tap_position(g, 1, g.stride[1] * ay + by);
      const int64_t tx = tap_position(g, 2, g.stride[2] * ax + bx);
      from[b * ptaps + a] = (tz * g.kernel[1] + ty) * g.kernel[2] + tx;
    }
  }
  const int64_t* idx = from.data();
  const int64_t grain = std::max<int64_t>(1, 16384 / taps);
  parallel_for(g.k * g.c_per_group(), grain, [&](int64_t begin, int64_t end) {
    for (int64_t kc = begin; kc < end; ++kc) {
      const T* src = w + kc * taps;
      T* dst = out + kc * taps;  // phases * ptaps == taps
      for (int64_t j = 0; j < taps; ++j) dst[j] = src[idx[j]];
    }
  });
}

// x'[i][(c, b)][m] = x[i][c][s * m + b - pad_lo] (0 outside x) for cnt images.
template <typename T>
void split_phases(const ConvGeometry& g, const ConvGeometry& p, const T* x, int64_t cnt, T* out) {
  const int64_t phases = phase_count(g), in_sp = g.in_spatial(), pin_sp = p.in_spatial();
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, pin_sp * phases));
  const int64_t W = p.in[2], sx = g.stride[2];
  parallel_for(cnt * g.c, grain, [&](int64_t begin, int64_t end) {
    for (int64_t ic = begin; ic < end; ++ic) {
      const T* src = x + ic * in_sp;
      T* dst = out + ic * phases * pin_sp;
      for (int64_t bz = 0; bz < g.stride[0]; ++bz)
        for (int64_t by = 0; by < g.stride[1]; ++by)
          for (int64_t bx = 0; bx < sx; ++bx) {
            // Columns mx with 0 <= sx * mx + x0 < in: [lo, hi).
            const int64_t x0 = bx - g.pad_lo[2];
            const int64_t lo = std::min(W, x0 >= 0 ? 0 : (-x0 + sx - 1) / sx);
            const int64_t hi = std::max(lo, std::min(W, x0 >= g.in[2] ? 0 : (g.in[2] - 1 - x0) / sx + 1));
            for (int64_t mz = 0; mz < p.in[0]; ++mz)
              for (int64_t my = 0; my < p.in[1]; ++my, dst += W) {
                const int64_t z = g.stride[0] * mz + bz - g.pad_lo[0];
                const int64_t y = g.stride[1] * my + by - g.pad_lo[1];
                if (z < 0 || z >= g.in[0] || y < 0 || y >= g.in[1]) {
                  std::fill(dst, dst + W, T(0));
                  continue;
                }
                const T* row = src + (z * g.in[1] + y) * g.in[2] + x0;
                std::fill(dst, dst + lo, T(0));
                for (int64_t mx = lo; mx < hi; ++mx) dst[mx] = row[sx * mx];
                std::fill(dst + hi, dst + W, T(0));
              }
          }
    }
  });
}

}  // namespace

bool phase_forward_applies(const ConvGeometry& g) {
  bool strided = false;
  for (int d = 0; d < kMaxRank; ++d) {
    if (g.dilation[d] != 1 || g.kernel[d] % g.stride[d] != 0) return false;
    strided = strided || g.stride[d] > 1;
  }
  return strided;
}

int64_t phase_forward_workspace(const ConvGeometry& g) {
  ConvGeometry p = phase_geometry(g);
  const int64_t chunk = chunk_images(p);
  p.n = chunk;
  return g.k * p.c_per_group() * p.kernel_spatial() + chunk * p.c * p.in_spatial() +
         implicit_forward_workspace(p);
}

template <typename T>
void phase_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, T* ws) {
  ConvGeometry p = phase_geometry(g);
  const int64_t chunk = std::max<int64_t>(1, chunk_images(p));
  T* pw = ws;
  T* px = pw + g.k * p.c_per_group() * p.kernel_spatial();
  T* rest = px + chunk * p.c * p.in_spatial();
  regroup_weight(g, p, w, pw);
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    p.n = std::min(chunk, g.n - n0);
    split_phases(g, p, x + n0 * g.c * g.in_spatial(), p.n, px);
    implicit_forward_images(p, px, pw, bias, y + n0 * g.k * g.out_spatial(), rest);
  }
}

template void phase_forward<float>(const ConvGeometry&, const float*, const float*, const float*,
                                   float*, float*);
template void phase_forward<double>(const ConvGeometry&, const double*, const double*,
                                    const double*, double*, double*);

}  // namespace fastconv::algo
