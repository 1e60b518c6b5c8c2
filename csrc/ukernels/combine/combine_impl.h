// The combination kernel of one ISA level: included once by combine_<isa>.cc, which names the
// level's namespace (FASTCONV_COMBINE_NS) and kernel names (FASTCONV_COMBINE_NAME). Plain loops:
// the level's compile flags (cmake/sources.cmake) vectorise them.
#pragma once
#include <algorithm>
#include <cstdint>

#include "ukernels/combine/combine_ukernels.h"

namespace fastconv::FASTCONV_COMBINE_NS {
namespace {

// Blocks of dst short enough to stay in L1 while every source adds into them.
constexpr int64_t kBlock = 512;

template <typename T>
void combine(const T* const* src, const T* coef, int count, int64_t n, T add, T* dst) {
  const T* s[kCombineMaxSources];
  T c[kCombineMaxSources];
  int k = 0;
  for (int j = 0; j < count && j < kCombineMaxSources; ++j)
    if (src[j] != nullptr && coef[j] != T(0)) s[k] = src[j], c[k] = coef[j], ++k;
  for (int64_t p0 = 0; p0 < n; p0 += kBlock) {
    const int64_t len = std::min(kBlock, n - p0);
    T* __restrict d = dst + p0;
    if (k == 0) {
      for (int64_t p = 0; p < len; ++p) d[p] = add;
      continue;
    }
    {
      const T* __restrict a = s[0] + p0;
      const T ca = c[0];
      for (int64_t p = 0; p < len; ++p) d[p] = add + ca * a[p];
    }
    int i = 1;
    for (; i + 1 < k; i += 2) {  // two sources per sweep: half the stores
      const T* __restrict a = s[i] + p0;
      const T* __restrict b = s[i + 1] + p0;
      const T ca = c[i], cb = c[i + 1];
      for (int64_t p = 0; p < len; ++p) d[p] = (d[p] + ca * a[p]) + cb * b[p];
    }
    if (i < k) {
      const T* __restrict a = s[i] + p0;
      const T ca = c[i];
      for (int64_t p = 0; p < len; ++p) d[p] += ca * a[p];
    }
  }
}

}  // namespace

const CombineKernels<float> combine_f32_kernels{combine<float>, FASTCONV_COMBINE_NAME("f32")};
const CombineKernels<double> combine_f64_kernels{combine<double>, FASTCONV_COMBINE_NAME("f64")};

}  // namespace fastconv::FASTCONV_COMBINE_NS
