// FMA throughput probes: many independent multiply-add chains per ISA, timed by gemm/peak_probe.cc.
#pragma once
#include <cstdint>

namespace fastconv {

// Each runs `iters` rounds of independent chains (enough of them to cover FMA latency times the
// number of FMA pipes) and returns the flops performed (2 per lane per FMA). *sink receives a value
// computed from the results so the work cannot be optimised away.
#define FASTCONV_DECLARE_FMA_PEAK(name) int64_t name(int64_t iters, double* sink)

namespace scalar {
FASTCONV_DECLARE_FMA_PEAK(f32_fma_peak);
FASTCONV_DECLARE_FMA_PEAK(f64_fma_peak);
}  // namespace scalar

namespace avx2 {
FASTCONV_DECLARE_FMA_PEAK(f32_fma_peak);
FASTCONV_DECLARE_FMA_PEAK(f64_fma_peak);
}  // namespace avx2

namespace avx512 {
FASTCONV_DECLARE_FMA_PEAK(f32_fma_peak);
FASTCONV_DECLARE_FMA_PEAK(f64_fma_peak);
}  // namespace avx512

#undef FASTCONV_DECLARE_FMA_PEAK

}  // namespace fastconv
