// What the resampling kernels (csrc/ref/resample_ref.cc, csrc/algo/resample.cc,
// csrc/algo/stochastic_pool.cc) share, so the reference and the fast paths agree bit for bit
// where they must: the counter-based RNG of stochastic pooling and the source positions of
// linear interpolation (PyTorch's rules for integer scale factors).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace fastconv {

// Spatial extents (or per-dim factors) right-aligned in three slots (D, H, W), leading 1s.
using Dims3 = std::array<int64_t, 3>;
inline Dims3 dims3(const std::vector<int64_t>& v, size_t first, int rank) {
  Dims3 d{1, 1, 1};
  for (int k = 0; k < rank; ++k) d[size_t(3 - rank + k)] = v[first + size_t(k)];
  return d;
}

// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): the
// counter (idx, 0) under key `seed` -> four 32-bit words. A pure function of (seed, idx), so a
// sample does not depend on which thread draws it or in what order.
inline void philox4x32_10(uint64_t seed, uint64_t idx, uint32_t out[4]) {
  uint32_t c0 = uint32_t(idx), c1 = uint32_t(idx >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    const uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = uint32_t(p1);
    c2 = n2;
    c3 = uint32_t(p0);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// A uniform double in [0, 1) with 53 random bits: sample `idx` of stream `seed`.
inline double philox_uniform(uint64_t seed, uint64_t idx) {
  uint32_t r[4];
  philox4x32_10(seed, idx, r);
  const uint64_t bits = ((uint64_t(r[0]) << 32) | r[1]) >> 11;
  return double(bits) * (1.0 / 9007199254740992.0);  // 2^-53
}

// Linear interpolation along one dim from `in` to `out` = in * scale samples: output o reads
// i0[o] and i1[o] with weights w0[o], w1[o] (torch.nn.functional.interpolate's source index:
// align_corners=False: (o + 0.5) / scale - 0.5 clamped at 0; True: o * (in - 1) / (out - 1)).
struct LinearTable {
  std::vector<int64_t> i0, i1;
  std::vector<double> w0, w1;
};

inline LinearTable linear_table(int64_t in, int64_t scale, bool align_corners) {
  const int64_t out = in * scale;
  LinearTable t;
  t.i0.resize(size_t(out));
  t.i1.resize(size_t(out));
  t.w0.resize(size_t(out));
  t.w1.resize(size_t(out));
  double ratio;
  if (align_corners)
    ratio = out > 1 ? double(in - 1) / double(out - 1) : 0.0;
  else
    ratio = 1.0 / double(scale);
  for (int64_t o = 0; o < out; ++o) {
    double src = align_corners ? ratio * double(o) : ratio * (double(o) + 0.5) - 0.5;
    if (src < 0) src = 0;
    int64_t i0 = int64_t(src);
    if (i0 > in - 1) i0 = in - 1;
    const int64_t i1 = i0 < in - 1 ? i0 + 1 : i0;
    double lambda = src - double(i0);
    if (lambda > 1) lambda = 1;
    t.i0[size_t(o)] = i0;
    t.i1[size_t(o)] = i1;
    t.w0[size_t(o)] = 1.0 - lambda;
    t.w1[size_t(o)] = lambda;
  }
  return t;
}

}  // namespace fastconv
