// Measures the single-core FMA peak of the active ISA and the core clock, once each, then caches.
#include <algorithm>
#include <chrono>
#include <cstdint>

#include "gemm/gemm.h"
#include "isa/isa_dispatch.h"
#include "ukernels/peak/fma_peak.h"

namespace fastconv::gemm {
namespace {

using ProbeFn = int64_t (*)(int64_t iters, double* sink);

ProbeFn probe_for(bool float64) {
  return float64 ? FASTCONV_KERNEL_BY_ISA(f64_fma_peak) : FASTCONV_KERNEL_BY_ISA(f32_fma_peak);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best rate (units per second) of `run` over several ~4 ms runs: the best run is the one with
// the least interference, and the calibration runs bring the core up to its working clock.
template <typename Run>
double best_rate(Run run) {
  int64_t iters = 1 << 10;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    run(iters);
    if (seconds_since(t0) >= 4e-3 || iters > (int64_t(1) << 40)) break;
    iters *= 2;
  }
  double best = 0;
  for (int rep = 0; rep < 8; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    const double units = run(iters);
    best = std::max(best, units / seconds_since(t0));
  }
  return best;
}

double measure_peak(bool float64) {
  const ProbeFn fn = probe_for(float64);
  volatile double keep = 0;
  const double flops_per_s = best_rate([&](int64_t iters) {
    double sink = 0;
    const int64_t flops = fn(iters, &sink);
    keep = keep + sink;
    return double(flops);
  });
  return flops_per_s / 1e9;
}

double measure_clock() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__aarch64__))
  volatile uint64_t keep = 0;
  const double cycles_per_s = best_rate([&](int64_t iters) {
    uint64_t x = 0, y = 1;
    __asm__ volatile("" : "+r"(y));
    for (int64_t i = 0; i < iters; ++i) {
      // Eight dependent one-cycle adds; the empty asm keeps the compiler from merging them.
#pragma GCC unroll 8
      for (int step = 0; step < 8; ++step) {
        x += y;
        __asm__ volatile("" : "+r"(x));
      }
    }
    keep = keep + x;
    return double(iters) * 8;
  });
  return cycles_per_s / 1e9;
#else
  return 0;
#endif
}

}  // namespace

double peak_gflops_per_core(bool float64) {
  if (float64) {
    static const double f64 = measure_peak(true);
    return f64;
  }
  static const double f32 = measure_peak(false);
  return f32;
}

double measured_clock_ghz() {
  static const double ghz = measure_clock();
  return ghz;
}

}  // namespace fastconv::gemm
