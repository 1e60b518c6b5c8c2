// Portable multiply-add throughput probe: the rate plain C++ reaches (the compiler may vectorise
// the independent chains for the baseline ISA, as it does the scalar GEMM kernel).
#include "ukernels/peak/fma_peak.h"

namespace fastconv::scalar {
namespace {

constexpr int kChains = 32;

template <typename T>
int64_t fma_chains(int64_t iters, double* sink) {
  T acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = T(i) * T(1e-3);
  const T x = T(0.999), y = T(1e-3);  // fixed point y / (1 - x): no overflow, no denormals
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * x + y;
  }
  T total = 0;
  for (int i = 0; i < kChains; ++i) total += acc[i];
  *sink = double(total);
  return iters * kChains * 2;
}

}  // namespace

int64_t f32_fma_peak(int64_t iters, double* sink) { return fma_chains<float>(iters, sink); }
int64_t f64_fma_peak(int64_t iters, double* sink) { return fma_chains<double>(iters, sink); }

}  // namespace fastconv::scalar
