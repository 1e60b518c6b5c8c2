// Bodies of the row-buffer and element-wise pooling kernels: split_row / merge_row (an input
// row into and out of its padded, phase-split buffer), the scale and lp helpers, and the
// whole-plane reductions of global pooling (see pool_ukernels.h).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ukernels/pool/pool_ukernels.h"
#include "ukernels/pool/pool_vector.h"

namespace fastconv::FASTCONV_POOL_NS {
namespace {

alignas(64) constexpr int32_t kLaneIota[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                                               8, 9, 10, 11, 12, 13, 14, 15};

template <typename T>
inline T power_of(T v, PoolPower power, double p) {
  if (power == PoolPower::kOne) return v;
  if (power == PoolPower::kTwo) return v * v;
  return T(std::pow(double(v), p));
}

template <typename T>
inline typename V<T>::type power_of(typename V<T>::type v, PoolPower power) {  // kOne, kTwo
  return power == PoolPower::kTwo ? V<T>::mul(v, v) : v;
}

inline int64_t ceil_div_nonneg(int64_t a, int64_t s) { return a <= 0 ? 0 : (a + s - 1) / s; }

// The first input column >= c whose padded column (col + pad_lo) lies in phase q.
inline int64_t first_of_phase(int64_t c, int64_t pad_lo, int64_t s, int64_t q) {
  return c + ((q - (c + pad_lo) % s) % s + s) % s;
}

template <typename T>
bool split_row(const T* x, const PoolRowLayout& l, T pad, PoolPower power, double p, T* buf) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  const int64_t s = l.stride, pw = l.phase_width, w = l.width, pl = l.pad_lo;
  // Phase q holds padded columns j * s + q; the input covers j in [begin, end) of each phase.
  for (int64_t q = 0; q < s; ++q) {
    const int64_t begin = ceil_div_nonneg(pl - q, s), end = ceil_div_nonneg(pl + w - q, s);
    std::fill(buf + q * pw, buf + q * pw + begin, pad);
    std::fill(buf + q * pw + end, buf + (q + 1) * pw, pad);
  }
  const bool vector_power = power != PoolPower::kOther;
  typename Vec::mask nan = Vec::isnan(Vec::set1(T(0)));
  bool scalar_nan = false;
  int64_t c = 0;  // input columns [0, c) are stored
  if (vector_power && s == 1) {
    for (; c + L <= w; c += L) {
      const typename Vec::type v = Vec::load(x + c);
      nan = Vec::mask_or(nan, Vec::isnan(v));
      Vec::store(buf + pl + c, power_of<T>(v, power));
    }
  } else if (vector_power && s == 2) {
    // Input column 2m goes to padded column 2m + pl: phase pl % 2, element m + pl / 2; column
    // 2m + 1 to the other phase, element m + (pl + 1) / 2.
    T* even = buf + (pl % 2) * pw + pl / 2;
    T* odd = buf + ((pl + 1) % 2) * pw + (pl + 1) / 2;
    for (; c + 2 * L <= w; c += 2 * L) {
      typename Vec::type e, o;
      Vec::deinterleave(x + c, e, o);
      nan = Vec::mask_or(nan, Vec::mask_or(Vec::isnan(e), Vec::isnan(o)));
      Vec::store(even + c / 2, power_of<T>(e, power));
      Vec::store(odd + c / 2, power_of<T>(o, power));
    }
  }
  // Columns [c, w) phase by phase: strided reads, no division per element.
  for (int64_t q = 0; q < s; ++q) {
    const int64_t first = first_of_phase(c, pl, s, q);
    T* dst = buf + q * pw + (first + pl) / s;
    for (int64_t col = first; col < w; col += s, ++dst) {
      const T v = x[col];
      scalar_nan = scalar_nan || v != v;
      *dst = power_of(v, power, p);
    }
  }
  return scalar_nan || Vec::any(nan);
}

template <typename T>
inline T grad_factor(T x, PoolPower power, double p) {  // d (x**p) / dx up to the factor p
  if (power == PoolPower::kOne) return T(1);
  if (power == PoolPower::kTwo) return x;
  return T(std::pow(double(x), p - 1.0));
}

template <typename T>
inline typename V<T>::type merged(typename V<T>::type a, const T* x, PoolPower power,
                                  bool accumulate, const T* gx) {
  if (power == PoolPower::kTwo) a = V<T>::mul(a, V<T>::load(x));
  return accumulate ? V<T>::add(a, V<T>::load(gx)) : a;
}

template <typename T>
void merge_row(const T* acc, const PoolRowLayout& l, const T* x, PoolPower power, double p,
               bool accumulate, T* gx) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  const int64_t s = l.stride, pw = l.phase_width, w = l.width, pl = l.pad_lo;
  int64_t c = 0;
  if (power != PoolPower::kOther && s == 1) {
    for (; c + L <= w; c += L)
      Vec::store(gx + c, merged<T>(Vec::load(acc + pl + c), x + c, power, accumulate, gx + c));
  } else if (power != PoolPower::kOther && s == 2) {
    const T* even = acc + (pl % 2) * pw + pl / 2;  // as in split_row
    const T* odd = acc + ((pl + 1) % 2) * pw + (pl + 1) / 2;
    for (; c + 2 * L <= w; c += 2 * L) {
      typename Vec::type lo, hi;
      Vec::interleave(Vec::load(even + c / 2), Vec::load(odd + c / 2), lo, hi);
      Vec::store(gx + c, merged<T>(lo, x + c, power, accumulate, gx + c));
      Vec::store(gx + c + L, merged<T>(hi, x + c + L, power, accumulate, gx + c + L));
    }
  }
  for (int64_t q = 0; q < s; ++q) {  // columns [c, w) phase by phase, as in split_row
    const int64_t first = first_of_phase(c, pl, s, q);
    const T* src = acc + q * pw + (first + pl) / s;
    for (int64_t col = first; col < w; col += s, ++src) {
      T v = *src;
      if (power != PoolPower::kOne) v *= grad_factor(x[col], power, p);
      gx[col] = accumulate ? gx[col] + v : v;
    }
  }
}

template <typename T>
void scale_row(const T* g, const T* scale, int64_t n, T* out) {
  using Vec = V<T>;
  int64_t o = 0;
  for (; o + Vec::lanes <= n; o += Vec::lanes)
    Vec::store(out + o, Vec::mul(Vec::load(g + o), Vec::load(scale + o)));
  for (; o < n; ++o) out[o] = g[o] * scale[o];
}

template <typename T>
void lp_root_row(T* y, int64_t n, PoolPower power, double p) {
  using Vec = V<T>;
  if (power == PoolPower::kOne) return;
  int64_t o = 0;
  if (power == PoolPower::kTwo)
    for (; o + Vec::lanes <= n; o += Vec::lanes) Vec::store(y + o, Vec::sqrt(Vec::load(y + o)));
  for (; o < n; ++o) y[o] = T(std::pow(double(y[o]), 1.0 / p));
}

template <typename T>
void lp_grad_row(const T* y, const T* g, int64_t n, PoolPower power, double p, T* out) {
  using Vec = V<T>;
  int64_t o = 0;
  if (power != PoolPower::kOther) {
    const typename Vec::type zero = Vec::set1(T(0));
    for (; o + Vec::lanes <= n; o += Vec::lanes) {
      const typename Vec::type yv = Vec::load(y + o), gv = Vec::load(g + o);
      const typename Vec::type d = power == PoolPower::kTwo ? Vec::div(gv, yv) : gv;
      Vec::store(out + o, Vec::select(Vec::eq(yv, zero), zero, d));
    }
  }
  for (; o < n; ++o) {
    const T d = power == PoolPower::kOne   ? g[o]
                : power == PoolPower::kTwo ? g[o] / y[o]
                                           : T(double(g[o]) * std::pow(double(y[o]), 1.0 - p));
    out[o] = y[o] == T(0) ? T(0) : d;
  }
}

// The reference's rule in flat order: the first maximum, or the last NaN when there is one.
template <typename T>
void max_plane_exact(const T* x, int64_t n, T* y, int64_t* idx) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best] || x[i] != x[i]) best = i;
  *y = x[best];
  if (idx) *idx = best;
}

template <typename T>
void max_plane(const T* x, int64_t n, T* y, int64_t* idx) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  if (L == 1 || n < 2 * L) return max_plane_exact(x, n, y, idx);
  // Lane l keeps the first maximum of x[l], x[l + L], ...; NaN anywhere -> the exact scan.
  const typename Vec::itype iota = Vec::iload(kLaneIota);
  typename Vec::type best = Vec::load(x);
  typename Vec::itype at = iota;
  typename Vec::mask nan = Vec::isnan(best);
  int64_t i = L;
  for (; i + L <= n; i += L) {
    const typename Vec::type v = Vec::load(x + i);
    const typename Vec::mask better = Vec::gt(v, best);
    nan = Vec::mask_or(nan, Vec::isnan(v));
    best = Vec::max(v, best);
    at = Vec::iselect(better, Vec::iadd(iota, Vec::iset1(i)), at);
  }
  bool tail_nan = false;
  for (int64_t j = i; j < n; ++j) tail_nan = tail_nan || x[j] != x[j];
  if (tail_nan || Vec::any(nan)) return max_plane_exact(x, n, y, idx);
  T lane_best[L];
  int64_t lane_at[L];
  Vec::store(lane_best, best);
  Vec::istore_n(lane_at, at, L);
  T b = lane_best[0];
  int64_t where = lane_at[0];
  for (int64_t l = 1; l < L; ++l)  // equal maxima (0 and -0 too): the earliest offset
    if (lane_best[l] > b || (lane_best[l] == b && lane_at[l] < where)) {
      b = lane_best[l];
      where = lane_at[l];
    }
  for (; i < n; ++i)
    if (x[i] > b) b = x[i], where = i;
  *y = b;
  if (idx) *idx = where;
}

#if defined(__AVX2__)
inline void stream_store(float* p, const float* src) {
  _mm256_stream_ps(p, _mm256_loadu_ps(src));
}
inline void stream_store(double* p, const double* src) {
  _mm256_stream_pd(p, _mm256_loadu_pd(src));
}
#endif

template <typename T>
void stream_copy(const T* src, int64_t n, T* dst) {
#if defined(__AVX2__)
  constexpr int64_t kLanes = 32 / sizeof(T);  // 256-bit streaming stores want 32-byte alignment
  int64_t i = 0;
  for (; i < n && reinterpret_cast<uintptr_t>(dst + i) % 32 != 0; ++i) dst[i] = src[i];
  for (; i + kLanes <= n; i += kLanes) stream_store(dst + i, src + i);
  for (; i < n; ++i) dst[i] = src[i];
  _mm_sfence();  // the streamed lines are visible before the caller's task ends
#else
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
#endif
}

// Max backward of 2x2 / 2 windows (PoolKernels::unpool2x2_row): 8 outputs a step, their
// indices' offsets from the windows' corners (int64) split into low and high 32-bit halves in
// output order; an offset of 0, 1, w or w + 1 (high half 0) picks the position; the picked
// gradients, interleaved into the two rows' 16 columns, are written once (adding +0, so a -0
// gradient lands as +0, as the scatter's 0 + g gives).
#if defined(__AVX2__)
inline __m256i halves_in_order(__m256 a, __m256 b, int imm_is_high) {
  // shuffle_ps pairs 32-bit elements within 128-bit halves; the 64-bit permute orders them
  const __m256 v = imm_is_high ? _mm256_shuffle_ps(a, b, 0xDD) : _mm256_shuffle_ps(a, b, 0x88);
  return _mm256_castpd_si256(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
}

inline void store_interleaved(float* dst, __m256 even, __m256 odd) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8));
  const __m256 o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(odd), 0xD8));
  _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_unpacklo_ps(e, o), zero));
  _mm256_storeu_ps(dst + 8, _mm256_add_ps(_mm256_unpackhi_ps(e, o), zero));
}

inline bool unpool2x2_row_f32(const float* g, const int64_t* idx, int64_t n, int64_t row_base,
                              int64_t w, float* top, float* bottom) {
  const __m256i lanes = _mm256_setr_epi64x(0, 2, 4, 6), half = _mm256_set1_epi64x(8);
  const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi32(1);
  const __m256i wv = _mm256_set1_epi32(static_cast<int32_t>(w));
  const __m256i w1 = _mm256_set1_epi32(static_cast<int32_t>(w + 1));
  __m256i ok = _mm256_set1_epi32(-1);
  // Outputs [o, o + 8): their window corners are row_base + 2 * (o + lane).
  auto step = [&](int64_t o) {
    const __m256i c0 = _mm256_add_epi64(_mm256_set1_epi64x(row_base + 2 * o), lanes);
    const __m256i r0 =
        _mm256_sub_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + o)), c0);
    const __m256i r1 = _mm256_sub_epi64(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + o + 4)), _mm256_add_epi64(c0, half));
    const __m256 a = _mm256_castsi256_ps(r0), b = _mm256_castsi256_ps(r1);
    const __m256i lo = halves_in_order(a, b, 0), hi = halves_in_order(a, b, 1);
    const __m256i m0 = _mm256_cmpeq_epi32(lo, zero), m1 = _mm256_cmpeq_epi32(lo, one);
    const __m256i mw = _mm256_cmpeq_epi32(lo, wv), mw1 = _mm256_cmpeq_epi32(lo, w1);
    const __m256i any = _mm256_or_si256(_mm256_or_si256(m0, m1), _mm256_or_si256(mw, mw1));
    ok = _mm256_and_si256(ok, _mm256_and_si256(any, _mm256_cmpeq_epi32(hi, zero)));
    const __m256 gv = _mm256_loadu_ps(g + o);
    store_interleaved(top + 2 * o, _mm256_and_ps(_mm256_castsi256_ps(m0), gv),
                      _mm256_and_ps(_mm256_castsi256_ps(m1), gv));
    store_interleaved(bottom + 2 * o, _mm256_and_ps(_mm256_castsi256_ps(mw), gv),
                      _mm256_and_ps(_mm256_castsi256_ps(mw1), gv));
  };
  int64_t o = 0;
  for (; o + 8 <= n; o += 8) step(o);
  if (o < n && n >= 8) step(n - 8), o = n;  // the last 8 again: the same values rewritten
  bool valid = _mm256_movemask_ps(_mm256_castsi256_ps(ok)) == 0xFF;
  for (; o < n; ++o) {  // rows of under 8 outputs
    const int64_t rel = idx[o] - (row_base + 2 * o);
    const float v = g[o] + 0.0f;
    valid = valid && (rel == 0 || rel == 1 || rel == w || rel == w + 1);
    top[2 * o] = rel == 0 ? v : 0.0f;
    top[2 * o + 1] = rel == 1 ? v : 0.0f;
    bottom[2 * o] = rel == w ? v : 0.0f;
    bottom[2 * o + 1] = rel == w + 1 ? v : 0.0f;
  }
  return valid;
}
#endif

template <typename T>
constexpr auto unpool2x2_row_of() {
  using Fn = bool (*)(const T*, const int64_t*, int64_t, int64_t, int64_t, T*, T*);
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) return static_cast<Fn>(&unpool2x2_row_f32);
#endif
  return static_cast<Fn>(nullptr);
}

template <typename T>
T sum_plane(const T* x, int64_t n) {
  using Vec = V<T>;
  constexpr int64_t L = Vec::lanes;
  typename Vec::type acc[4] = {Vec::set1(T(0)), Vec::set1(T(0)), Vec::set1(T(0)), Vec::set1(T(0))};
  int64_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L)
    for (int k = 0; k < 4; ++k) acc[k] = Vec::add(acc[k], Vec::load(x + i + k * L));
  for (; i + L <= n; i += L) acc[0] = Vec::add(acc[0], Vec::load(x + i));
  T lanes[L];
  Vec::store(lanes, Vec::add(Vec::add(acc[0], acc[1]), Vec::add(acc[2], acc[3])));
  T s = T(0);
  for (int64_t l = 0; l < L; ++l) s += lanes[l];
  for (; i < n; ++i) s += x[i];
  return s;
}

}  // namespace
}  // namespace fastconv::FASTCONV_POOL_NS
