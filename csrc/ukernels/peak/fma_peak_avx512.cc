// AVX-512 FMA throughput probe: 24 independent zmm chains (latency 4 x 2 pipes needs >= 8).
#include <immintrin.h>

#include "ukernels/peak/fma_peak.h"

namespace fastconv::avx512 {
namespace {

constexpr int kChains = 24;

template <typename V, typename T, V (*Set1)(T), V (*Fma)(V, V, V), V (*Add)(V, V), T (*Reduce)(V)>
int64_t fma_chains(int64_t iters, double* sink) {
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = Set1(T(i) * T(1e-3));
  // x < 1 and a small y keep every chain at a fixed point near y / (1 - x): no overflow, no
  // denormals.
  const V x = Set1(T(0.999)), y = Set1(T(1e-3));
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < kChains; ++i) acc[i] = Fma(acc[i], x, y);
  }
  V total = acc[0];
  for (int i = 1; i < kChains; ++i) total = Add(total, acc[i]);
  *sink = double(Reduce(total));
  return iters * kChains * int64_t(sizeof(V) / sizeof(T)) * 2;
}

__m512 set1_ps(float v) { return _mm512_set1_ps(v); }
__m512 fmadd_ps(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
__m512 add_ps(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
// Store and add rather than _mm512_reduce_add_*, which trips -Wuninitialized in GCC 12 headers.
float reduce_ps(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float s = 0;
  for (float x : t) s += x;
  return s;
}
__m512d set1_pd(double v) { return _mm512_set1_pd(v); }
__m512d fmadd_pd(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }
__m512d add_pd(__m512d a, __m512d b) { return _mm512_add_pd(a, b); }
double reduce_pd(__m512d v) {
  alignas(64) double t[8];
  _mm512_store_pd(t, v);
  double s = 0;
  for (double x : t) s += x;
  return s;
}

}  // namespace

int64_t f32_fma_peak(int64_t iters, double* sink) {
  return fma_chains<__m512, float, set1_ps, fmadd_ps, add_ps, reduce_ps>(iters, sink);
}

int64_t f64_fma_peak(int64_t iters, double* sink) {
  return fma_chains<__m512d, double, set1_pd, fmadd_pd, add_pd, reduce_pd>(iters, sink);
}

}  // namespace fastconv::avx512
