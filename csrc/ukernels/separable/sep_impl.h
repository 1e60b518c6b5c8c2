// Bodies of the separable-convolution micro-kernels (csrc/algo/separable_conv.cc): the
// vertical 1-D pass over whole rows and the horizontal 1-D pass along one row, compiled once per
// ISA by sep_{scalar,avx2,avx512}.cc with that file's flags. Pure: no allocation, no threads.
#pragma once
#include <cstdint>
#include <cstring>

namespace fastconv::sep_detail {

#if defined(__GNUC__)
template <typename T, int kBytes>
struct Vec {
  typedef T V __attribute__((vector_size(kBytes)));
  static constexpr int64_t L = kBytes / int64_t(sizeof(T));
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }
  static V splat(T s) { return V{} + s; }
};

// R output rows x C vectors of columns at `j`, stride 1, dilation 1: every input row is loaded
// once per block and feeds the R accumulators whose tap it is (q - r), so loads are 1 / R of
// the FMAs. Rows q < R - 1 and q >= k only reach some outputs: the checked head and tail.
template <typename T, int kBytes, int R, int C>
inline void vertical_block(const T* const* rows, const T* f, int64_t k, int64_t j, T* out,
                           int64_t out_stride) {
  using W = Vec<T, kBytes>;
  using V = typename W::V;
  constexpr int64_t L = W::L;
  V acc[R][C] = {};
  auto feed = [&](int64_t q, bool checked) {
    const T* src = rows[q] + j;
    V v[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) v[c] = W::load(src + c * L);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const int64_t t = q - r;
      if (checked && (t < 0 || t >= k)) continue;
      const V ft = W::splat(f[t]);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[r][c] += ft * v[c];
    }
  };
  const int64_t total = k + R - 1, body_end = k, body_begin = R - 1 < k ? R - 1 : k;
  int64_t q = 0;
  for (; q < body_begin; ++q) feed(q, true);
  for (; q < body_end; ++q) feed(q, false);
  for (; q < total; ++q) feed(q, true);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) W::store(out + r * out_stride + j + c * L, acc[r][c]);
}
#endif

// out[r * out_stride + j] = sum_t f[t] * rows[r * stride + t * dilation][j], for r < n_rows,
// j < width: the vertical pass. rows[] holds a pointer per input row the outputs read (a zero
// row for padding), so the kernel never checks bounds.
template <typename T, int kBytes>
inline void vertical(const T* const* rows, const T* f, int64_t k, int64_t stride,
                     int64_t dilation, int64_t n_rows, int64_t width, T* out,
                     int64_t out_stride) {
  int64_t r = 0;
#if defined(__GNUC__)
  using W = Vec<T, kBytes>;
  using V = typename W::V;
  constexpr int64_t L = W::L;
  constexpr int R = 4, C = 4;
  const int64_t vec_width = width / L * L;
  if (stride == 1 && dilation == 1) {
    for (; r + R <= n_rows; r += R) {
      const T* const* rr = rows + r;
      T* o = out + r * out_stride;
      int64_t j = 0;
      for (; j + C * L <= vec_width; j += C * L)
        vertical_block<T, kBytes, R, C>(rr, f, k, j, o, out_stride);
      for (; j < vec_width; j += L) vertical_block<T, kBytes, R, 1>(rr, f, k, j, o, out_stride);
      for (; j < width; ++j)
        for (int i = 0; i < R; ++i) {
          T acc = 0;
          for (int64_t t = 0; t < k; ++t) acc += f[t] * rr[i + t][j];
          o[i * out_stride + j] = acc;
        }
    }
  }
  for (; r < n_rows; ++r) {  // one row at a time: any stride and dilation
    const T* const* rr = rows + r * stride;
    T* o = out + r * out_stride;
    int64_t j = 0;
    for (; j + C * L <= vec_width; j += C * L) {
      V acc[C] = {};
      for (int64_t t = 0; t < k; ++t) {
        const T* src = rr[t * dilation] + j;
        const V ft = W::splat(f[t]);
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) acc[c] += ft * W::load(src + c * L);
      }
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) W::store(o + j + c * L, acc[c]);
    }
    for (; j < vec_width; j += L) {
      V acc = {};
      for (int64_t t = 0; t < k; ++t) acc += W::splat(f[t]) * W::load(rr[t * dilation] + j);
      W::store(o + j, acc);
    }
    for (; j < width; ++j) {
      T acc = 0;
      for (int64_t t = 0; t < k; ++t) acc += f[t] * rr[t * dilation][j];
      o[j] = acc;
    }
  }
#else
  for (; r < n_rows; ++r)
    for (int64_t j = 0; j < width; ++j) {
      T acc = 0;
      for (int64_t t = 0; t < k; ++t) acc += f[t] * rows[r * stride + t * dilation][j];
      out[r * out_stride + j] = acc;
    }
#endif
}

// y[o] = sum_t f[t] * src[o + t * dilation] (accumulate: y[o] += ...), o < n: the horizontal
// pass at stride 1. src must be readable (any values) up to n rounded up to the vector width
// plus (k - 1) * dilation: the last vector is computed whole and stored in part.
template <typename T, int kBytes>
inline void horizontal(const T* src, const T* f, int64_t k, int64_t dilation, int64_t n, T* y,
                       bool accumulate) {
  int64_t o = 0;
#if defined(__GNUC__)
  using W = Vec<T, kBytes>;
  using V = typename W::V;
  constexpr int64_t L = W::L;
  constexpr int C = 4;
  for (; o + C * L <= n; o += C * L) {
    V acc[C] = {};
    for (int64_t t = 0; t < k; ++t) {
      const T* s = src + o + t * dilation;
      const V ft = W::splat(f[t]);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[c] += ft * W::load(s + c * L);
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      if (accumulate) acc[c] += W::load(y + o + c * L);
      W::store(y + o + c * L, acc[c]);
    }
  }
  for (; o < n; o += L) {
    V acc = {};
    for (int64_t t = 0; t < k; ++t) acc += W::splat(f[t]) * W::load(src + o + t * dilation);
    T lanes[L];
    W::store(lanes, acc);
    const int64_t m = n - o < L ? n - o : L;
    for (int64_t i = 0; i < m; ++i) y[o + i] = accumulate ? y[o + i] + lanes[i] : lanes[i];
  }
#else
  for (; o < n; ++o) {
    T acc = 0;
    for (int64_t t = 0; t < k; ++t) acc += f[t] * src[o + t * dilation];
    y[o] = accumulate ? y[o] + acc : acc;
  }
#endif
}

}  // namespace fastconv::sep_detail

// Defines the separable micro-kernels of one ISA namespace with vectors of `bytes`.
#define FASTCONV_DEFINE_SEPARABLE(ns, bytes)                                                   \
  namespace fastconv::ns {                                                                     \
  void sep_vertical_f32(const float* const* rows, const float* f, int64_t k, int64_t stride,   \
                        int64_t dilation, int64_t n_rows, int64_t width, float* out,           \
                        int64_t out_stride) {                                                  \
    sep_detail::vertical<float, bytes>(rows, f, k, stride, dilation, n_rows, width, out,       \
                                       out_stride);                                            \
  }                                                                                            \
  void sep_vertical_f64(const double* const* rows, const double* f, int64_t k, int64_t stride, \
                        int64_t dilation, int64_t n_rows, int64_t width, double* out,          \
                        int64_t out_stride) {                                                  \
    sep_detail::vertical<double, bytes>(rows, f, k, stride, dilation, n_rows, width, out,      \
                                        out_stride);                                           \
  }                                                                                            \
  void sep_horizontal_f32(const float* src, const float* f, int64_t k, int64_t dilation,       \
                          int64_t n, float* y, bool accumulate) {                              \
    sep_detail::horizontal<float, bytes>(src, f, k, dilation, n, y, accumulate);               \
  }                                                                                            \
  void sep_horizontal_f64(const double* src, const double* f, int64_t k, int64_t dilation,     \
                          int64_t n, double* y, bool accumulate) {                             \
    sep_detail::horizontal<double, bytes>(src, f, k, dilation, n, y, accumulate);              \
  }                                                                                            \
  }
