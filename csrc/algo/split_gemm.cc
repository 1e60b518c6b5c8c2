// The weight gradient's GEMM split along its reduction (split_gemm.h).
#include "algo/split_gemm.h"

#include <algorithm>

#include "fastconv/parallel.h"

namespace fastconv::algo {

namespace {

// Weight gradients reduce over every output position (and image): with a small output (e.g.
// resnet50.conv1: 64 x 147 over 12544 positions) an M/N split leaves each thread packing the
// whole gathered B, the expensive operand, for a share of few tiles. Such a GEMM is split
// along its reduction instead, into chunks of about kSplitDepth positions summed in a fixed
// order: the count depends on the shape alone, so results do not depend on the thread count.
// Outputs up to 2^16 elements (alexnet.conv1's 96 x 363 weight: 2 threads, median, 1.50 -> 1.35
// ms split; 2^18 changed nothing on the 3x3 layers).
constexpr int64_t kSplitDepth = 1024, kMaxSplits = 16, kSplitMaxOutput = int64_t(1) << 16;

// B's rows from `offset` on.
template <typename T>
class RowOffset final : public gemm::PanelSource<T> {
 public:
  RowOffset(const gemm::PanelSource<T>& b, int64_t offset) : b_(b), offset_(offset) {}
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override {
    b_.pack(k0 + offset_, kc, n0, nc, nr, dst);
  }

 private:
  const gemm::PanelSource<T>& b_;
  int64_t offset_;
};

}  // namespace

int64_t reduction_splits(int64_t m, int64_t n, int64_t depth) {
  if (m * n > kSplitMaxOutput) return 1;
  const int64_t splits = std::clamp<int64_t>(depth / kSplitDepth, 1, kMaxSplits);
  // A multiple of 4 once split, so 2 or 4 threads get equal shares (3 chunks on 2 threads left
  // one idle a third of the time: resnet50.res2.1x1b's weight gradient, 3136 positions).
  return splits > 1 ? std::min<int64_t>(kMaxSplits, (splits + 3) / 4 * 4) : 1;
}

template <typename T>
void split_gemm(int64_t m, int64_t n, int64_t depth, gemm::MatrixRef<T> a,
                const gemm::PanelSource<T>& b, T beta, T* c, int64_t ldc, T* partial) {
  const int64_t splits = reduction_splits(m, n, depth);
  if (splits <= 1) return gemm::gemm<T>(m, n, depth, T(1), a, b, beta, c, ldc);
  parallel_for(splits, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t k0 = depth * s / splits, k1 = depth * (s + 1) / splits;
      gemm::gemm<T>(m, n, k1 - k0, T(1), {a.data + k0 * a.cs, a.rs, a.cs}, RowOffset<T>(b, k0),
                    T(0), partial + s * m * n, n);
    }
  });
  parallel_for(m, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* out = c + r * ldc;
      const T* p0 = partial + r * n;
      if (beta == T(0)) {
        std::copy_n(p0, n, out);
      } else {
        for (int64_t j = 0; j < n; ++j) out[j] = beta * out[j] + p0[j];
      }
      for (int64_t s = 1; s < splits; ++s) {
        const T* ps = partial + (s * m + r) * n;
        for (int64_t j = 0; j < n; ++j) out[j] += ps[j];
      }
    }
  });
}

template void split_gemm<float>(int64_t, int64_t, int64_t, gemm::MatrixRef<float>,
                                const gemm::PanelSource<float>&, float, float*, int64_t, float*);
template void split_gemm<double>(int64_t, int64_t, int64_t, gemm::MatrixRef<double>,
                                 const gemm::PanelSource<double>&, double, double*, int64_t,
                                 double*);

}  // namespace fastconv::algo
