// Dilation phases (dilation_phases.h): the stacked geometry and the moves into and out of it,
// one (image, channel) plane at a time, in parallel over planes.
#include "algo/dilation_phases.h"

#include "fastconv/parallel.h"

namespace fastconv::algo::dilation_phases {

namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Moves the planes (n, channels, full...) to or from the stacked phases (n * P, channels,
// part...): part[i] = full[d * i + r] of phase r, zero past full when splitting.
template <typename T, bool kSplit>
void move_planes(const Split& s, int64_t channels, const Dims& full, const Dims& part,
                 const T* src, T* dst) {
  const Dims& d = s.g.dilation;
  const int64_t full_size = full[0] * full[1] * full[2];
  const int64_t part_size = part[0] * part[1] * part[2];
  const int64_t P = s.phases;
  parallel_for(s.g.n * channels, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n = p / channels, c = p % channels;
      const int64_t full_off = p * full_size;
      int64_t phase = 0;
      for (int64_t r0 = 0; r0 < d[0]; ++r0)
        for (int64_t r1 = 0; r1 < d[1]; ++r1)
          for (int64_t r2 = 0; r2 < d[2]; ++r2, ++phase) {
            const int64_t part_off = ((n * P + phase) * channels + c) * part_size;
            for (int64_t i0 = 0; i0 < part[0]; ++i0) {
              const int64_t f0 = d[0] * i0 + r0;
              for (int64_t i1 = 0; i1 < part[1]; ++i1) {
                const int64_t f1 = d[1] * i1 + r1;
                const int64_t prow = part_off + (i0 * part[1] + i1) * part[2];
                const bool inside = f0 < full[0] && f1 < full[1];
                const int64_t frow = full_off + (f0 * full[1] + f1) * full[2] + r2;
                // Positions of this row inside `full`: r2 + d * i < full[2].
                const int64_t len = inside ? ceil_div(full[2] - r2, d[2]) : 0;
                if constexpr (kSplit) {
                  T* out = dst + prow;
                  for (int64_t i = 0; i < len; ++i) out[i] = src[frow + d[2] * i];
                  for (int64_t i = len; i < part[2]; ++i) out[i] = T(0);
                } else {
                  const T* in = src + prow;
                  for (int64_t i = 0; i < len; ++i) dst[frow + d[2] * i] = in[i];
                }
              }
            }
          }
    }
  });
}

}  // namespace

bool splittable(const ConvGeometry& g) {
  bool dilated = false;
  for (int i = 0; i < kMaxRank; ++i) {
    if (g.stride[i] != 1 || g.pad_lo[i] % g.dilation[i] != 0 || g.pad_hi[i] % g.dilation[i] != 0)
      return false;
    dilated = dilated || g.dilation[i] != 1;
  }
  return dilated;
}

Split make_split(const ConvGeometry& g) {
  Split s;
  s.g = g;
  s.dense = g;
  for (int i = 0; i < kMaxRank; ++i) {
    const int64_t d = g.dilation[i];
    s.phases *= d;
    s.dense.in[i] = ceil_div(g.in[i], d);
    s.dense.out[i] = ceil_div(g.out[i], d);
    s.dense.pad_lo[i] = g.pad_lo[i] / d;
    s.dense.pad_hi[i] = g.pad_hi[i] / d;
    s.dense.dilation[i] = 1;
  }
  s.dense.n = g.n * s.phases;
  return s;
}

int64_t input_elems(const Split& s) { return s.dense.n * s.dense.c * s.dense.in_spatial(); }
int64_t output_elems(const Split& s) { return s.dense.n * s.dense.k * s.dense.out_spatial(); }

template <typename T>
void split_input(const Split& s, const T* x, T* xs) {
  move_planes<T, true>(s, s.g.c, s.g.in, s.dense.in, x, xs);
}
template <typename T>
void merge_input(const Split& s, const T* xs, T* x) {
  move_planes<T, false>(s, s.g.c, s.g.in, s.dense.in, xs, x);
}
template <typename T>
void split_output(const Split& s, const T* y, T* ys) {
  move_planes<T, true>(s, s.g.k, s.g.out, s.dense.out, y, ys);
}
template <typename T>
void merge_output(const Split& s, const T* ys, T* y) {
  move_planes<T, false>(s, s.g.k, s.g.out, s.dense.out, ys, y);
}

#define FASTCONV_INSTANTIATE(T)                                   \
  template void split_input<T>(const Split&, const T*, T*);       \
  template void merge_input<T>(const Split&, const T*, T*);       \
  template void split_output<T>(const Split&, const T*, T*);      \
  template void merge_output<T>(const Split&, const T*, T*);
FASTCONV_INSTANTIATE(float)
FASTCONV_INSTANTIATE(double)
#undef FASTCONV_INSTANTIATE

}  // namespace fastconv::algo::dilation_phases
