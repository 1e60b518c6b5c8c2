// AVX2 FMA throughput probe: 12 independent ymm chains (latency 4-5 x 2 pipes needs 8-10).
#include <immintrin.h>

#include "ukernels/peak/fma_peak.h"

namespace fastconv::avx2 {
namespace {

constexpr int kChains = 12;  // 16 ymm registers: 12 chains + 2 constants

template <typename V, typename T, V (*Set1)(T), V (*Fma)(V, V, V), V (*Add)(V, V), T (*Reduce)(V)>
int64_t fma_chains(int64_t iters, double* sink) {
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = Set1(T(i) * T(1e-3));
  const V x = Set1(T(0.999)), y = Set1(T(1e-3));  // fixed point y / (1 - x): no overflow
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < kChains; ++i) acc[i] = Fma(acc[i], x, y);
  }
  V total = acc[0];
  for (int i = 1; i < kChains; ++i) total = Add(total, acc[i]);
  *sink = double(Reduce(total));
  return iters * kChains * int64_t(sizeof(V) / sizeof(T)) * 2;
}

__m256 set1_ps(float v) { return _mm256_set1_ps(v); }
__m256 fmadd_ps(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
__m256 add_ps(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
float reduce_ps(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
__m256d set1_pd(double v) { return _mm256_set1_pd(v); }
__m256d fmadd_pd(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
__m256d add_pd(__m256d a, __m256d b) { return _mm256_add_pd(a, b); }
double reduce_pd(__m256d v) {
  alignas(32) double t[4];
  _mm256_store_pd(t, v);
  return t[0] + t[1] + t[2] + t[3];
}

}  // namespace

int64_t f32_fma_peak(int64_t iters, double* sink) {
  return fma_chains<__m256, float, set1_ps, fmadd_ps, add_ps, reduce_ps>(iters, sink);
}

int64_t f64_fma_peak(int64_t iters, double* sink) {
  return fma_chains<__m256d, double, set1_pd, fmadd_pd, add_pd, reduce_pd>(iters, sink);
}

}  // namespace fastconv::avx2
