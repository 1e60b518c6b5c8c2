// The GEMM driver's problem and the helpers its front ends share (internal to csrc/gemm: the
// dense and source-fed entry points in gemm.cc, the batched ones in gemm_batched.cc).
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "fastconv/status.h"
#include "gemm/gemm.h"
#include "gemm/kernel_table.h"

namespace fastconv::gemm {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// k split into equal blocks of at most blocking.kc (a multiple of 8 when k allows): depends on k
// alone, so every thread sums every element in the same order.
inline int64_t k_block(int64_t k, int64_t kc_max) {
  return std::min(k, round_up(ceil_div(k, ceil_div(k, kc_max)), 8));
}

template <typename T>
struct Problem {
  int64_t m, n, k;
  T alpha, beta;
  MatrixRef<T> a;
  const PanelSource<T>* b;
  T* c;
  int64_t ldc;
  const GemmKernel<T>* kernel;
  Blocking blocking;
  int64_t row_a_cols;  // blocks of at most this many columns read A in place (0: never)
  const PanelSource<T>* a_src = nullptr;  // packs A's panels instead of `a` (then row_a_cols 0)
  const T* a_packed = nullptr;  // A packed ahead (pack_a_rows' layout; then row_a_cols 0)
};

// Runs one problem: its M/N parts over the thread pool, each through the blocked loops.
template <typename T>
void run_problem(const Problem<T>& p);

// Multiply-adds worth waking one more thread for (~10 us of work).
constexpr double kMinWorkPerThread = double(1 << 19);

// Small N: with only a few B panels, each packed A panel would serve just those few micro-kernel
// calls, so packing A costs as much as a good share of the multiply-adds (512 x 49 x 2048, a
// 1x1 conv on a 7x7 image, two panels: 1.27 ms packed, 0.98 ms in place; 512 x 49 x 4608, the
// 3x3 conv on it: 2.72 vs 2.24 ms; one thread, AVX-512). A row-major A (the weight of a forward
// conv) is then read in place by the micro-kernel, and B is packed once for many k blocks, which
// stay in L2. Up to 8 panels measured no slower than packing A (256 x 196 x 1024: 0.79 ms
// either way; 512 x 196 x 1024: 1.51 vs 1.61 ms).
constexpr int64_t kRowAMaxPanels = 8;

template <typename T>
inline int64_t row_a_columns(MatrixRef<T> a, int64_t nr) {
  return a.cs == 1 ? kRowAMaxPanels * nr : 0;
}
template <typename T>
inline void check_extent(int64_t rows, int64_t cols, int64_t rs, int64_t cs, const char* name) {
  // The largest offset touched, (rows - 1) * |rs| + (cols - 1) * |cs|, must fit in int64.
  const uint64_t lim = uint64_t(std::numeric_limits<int64_t>::max());
  const uint64_t r = uint64_t(std::max<int64_t>(rows - 1, 0)),
                 c = uint64_t(std::max<int64_t>(cols - 1, 0));
  const uint64_t ars = uint64_t(rs < 0 ? -rs : rs), acs = uint64_t(cs < 0 ? -cs : cs);
  const bool ok =
      (ars == 0 || r <= lim / ars) && (acs == 0 || c <= lim / acs) && r * ars <= lim - c * acs;
  if (!ok) throw InvalidArgument(std::string("gemm: ") + name + " offsets overflow int64");
}

inline void check_sizes(int64_t m, int64_t n, int64_t k, int64_t ldc) {
  if (m < 0 || n < 0 || k < 0) {
    throw InvalidArgument("gemm: m, n, k must be >= 0, got " + std::to_string(m) + ", " +
                          std::to_string(n) + ", " + std::to_string(k));
  }
  if (m > 1 && ldc < n) {
    throw InvalidArgument("gemm: ldc must be >= n, got ldc=" + std::to_string(ldc) +
                          ", n=" + std::to_string(n));
  }
  // Packed buffers are sized from the blocking, so only the index ranges can overflow.
  check_extent<char>(m, n, ldc, 1, "C");
}

template <typename T>
inline void scale_c(int64_t m, int64_t n, T beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0))
      std::fill(ci, ci + n, T(0));  // never read C: NaN must not leak
    else
      for (int64_t j = 0; j < n; ++j) ci[j] *= beta;
  }
}

}  // namespace fastconv::gemm
