// The batched GEMM front ends: items over the thread pool or one after another, with A dense or
// packed ahead (pack_a_rows), and B dense or stored ahead in the driver's packed layout.
#include <algorithm>
#include <string>

#include "fastconv/parallel.h"
#include "gemm/gemm_driver.h"

namespace fastconv::gemm {
namespace {

// Runs item(i, n0, n1) for i in [0, batch), columns [n0, n1) of item i: in parallel when the
// items divide evenly over the threads (or are many, or too small to split); otherwise one after
// another, each split over the threads. Nested gemm calls run inline on their pool thread, so the
// two levels never compete. With split_nr > 0, items that do not divide evenly are cut into
// parts of whole panels of split_nr columns, so that the parts do: Winograd F(2x2, 2x2)'s 9
// GEMMs on 2 threads ran 5 against 4, the wait 5% of dcgan.g3's backward data (perf, AVX2).
// Columns are independent (each sums over k in the same order), so results do not change.
template <typename F>
void for_each_item(int64_t batch, int64_t m, int64_t n, int64_t k, int64_t split_nr, F&& item) {
  const int threads = get_num_threads();
  const double item_work = double(m) * double(n) * double(k);
  const bool over_items =
      threads > 1 && batch > 1 &&
      (batch % threads == 0 || batch >= 4 * threads || item_work < kMinWorkPerThread * threads);
  if (!over_items) {
    for (int64_t i = 0; i < batch; ++i) item(i, int64_t(0), n);
    return;
  }
  // Parts per item: the fewest whose total the threads divide within 5% (busiest thread vs an
  // even share), each part at least two panels wide.
  int64_t parts = 1;
  if (split_nr > 0 && !inside_parallel_for()) {
    const auto uneven = [&](int64_t q) {
      return 20 * ceil_div(batch * q, threads) * threads > 21 * batch * q;
    };
    while (uneven(parts) && parts < threads && n >= 2 * split_nr * (parts + 1)) ++parts;
    if (uneven(parts)) parts = 1;
  }
  // Part j's first column: a whole number of panels in (j = parts: the end).
  const auto bound = [&](int64_t j) {
    return j == parts ? n : ceil_div(n, std::max<int64_t>(split_nr, 1)) * j / parts * split_nr;
  };
  parallel_for(batch * parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) item(u / parts, bound(u % parts), bound(u % parts + 1));
  });
}

void check_batch(int64_t batch, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                 const char* fn) {
  if (batch < 0)
    throw InvalidArgument(std::string(fn) + ": batch must be >= 0, got " + std::to_string(batch));
  check_extent<char>(batch, 2, stride_a, 1, "A batch");
  check_extent<char>(batch, 2, stride_b, 1, "B batch");
  check_extent<char>(batch, 2, stride_c, 1, "C batch");
}

}  // namespace

template <typename T>
void gemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k, T alpha, MatrixRef<T> a,
                  int64_t stride_a, MatrixRef<T> b, int64_t stride_b, T beta, T* c, int64_t ldc,
                  int64_t stride_c) {
  check_batch(batch, stride_a, stride_b, stride_c, "gemm_batched");
  check_sizes(m, n, k, ldc);
  if (batch == 0 || m == 0 || n == 0) return;
  for_each_item(batch, m, n, k, gemm_kernel<T>().nr, [&](int64_t i, int64_t n0, int64_t n1) {
    gemm<T>(m, n1 - n0, k, alpha, {a.data + i * stride_a, a.rs, a.cs},
            {b.data + i * stride_b + n0 * b.cs, b.rs, b.cs}, beta, c + i * stride_c + n0, ldc);
  });
}

template <typename T>
int64_t packed_a_row_step() {
  return gemm_kernel<T>().mr;
}

template <typename T>
int64_t packed_a_elems(int64_t m, int64_t k) {
  return round_up(m, gemm_kernel<T>().mr) * k;
}

template <typename T>
void pack_a_rows(int64_t m, int64_t k, int64_t i0, int64_t rows, MatrixRef<T> a, T* packed) {
  const GemmKernel<T>& kern = gemm_kernel<T>();
  if (i0 % kern.mr != 0 || i0 < 0 || rows < 0 || i0 + rows > m)
    throw InvalidArgument("pack_a_rows: rows [" + std::to_string(i0) + ", " +
                          std::to_string(i0 + rows) + ") must start at a multiple of " +
                          std::to_string(kern.mr) + " and lie in [0, " + std::to_string(m) + ")");
  if (k == 0 || rows == 0) return;  // nothing to pack (k_block needs k > 0)
  // The k blocks gemm_block uses (k_block), each a round_up(m, mr) x kc block of panels.
  const int64_t kc_max = k_block(k, blocking<T>().kc), m_pad = round_up(m, kern.mr);
  for (int64_t pc = 0; pc < k; pc += kc_max) {
    const int64_t kc = std::min(kc_max, k - pc);
    for (int64_t r = 0; r < rows; r += kern.mr)
      kern.pack_a(std::min(kern.mr, rows - r), kc, a.data + r * a.rs + pc * a.cs, a.rs, a.cs,
                  packed + pc * m_pad + (i0 + r) * kc);
  }
}

template <typename T>
void gemm_batched_packed_a(int64_t batch, int64_t m, int64_t n, int64_t k, T alpha,
                           const T* a_packed, int64_t stride_a, MatrixRef<T> b, int64_t stride_b,
                           T beta, T* c, int64_t ldc, int64_t stride_c) {
  check_batch(batch, stride_a, stride_b, stride_c, "gemm_batched_packed_a");
  check_sizes(m, n, k, ldc);
  if (batch == 0 || m == 0 || n == 0) return;
  check_extent<T>(k, n, b.rs, b.cs, "B");
  const GemmKernel<T>& kern = gemm_kernel<T>();
  for_each_item(batch, m, n, k, kern.nr, [&](int64_t i, int64_t n0, int64_t n1) {
    T* ci = c + i * stride_c + n0;
    if (k == 0 || alpha == T(0)) return scale_c(m, n1 - n0, beta, ci, ldc);
    const DenseSource<T> src(MatrixRef<T>{b.data + i * stride_b + n0 * b.cs, b.rs, b.cs});
    Problem<T> p{m, n1 - n0, k, alpha, beta, MatrixRef<T>{nullptr, 0, 0}, &src, ci, ldc,
                 &kern, blocking<T>(), 0};
    p.a_packed = a_packed + i * stride_a;
    run_problem(p);
  });
}

template <typename T>
void gemm_packed_a(int64_t m, int64_t n, int64_t k, T alpha, const T* a_packed,
                   const PanelSource<T>& b, T beta, T* c, int64_t ldc) {
  check_sizes(m, n, k, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == T(0)) return scale_c(m, n, beta, c, ldc);  // BLAS: A, B not read
  Problem<T> p{m, n, k, alpha, beta, MatrixRef<T>{nullptr, 0, 0}, &b, c, ldc,
               &gemm_kernel<T>(), blocking<T>(), 0};
  p.a_packed = a_packed;
  run_problem(p);
}

namespace {

// A B stored ahead in packed_b_layout, from its column `first` on (a whole panel's: a part of
// the columns, for_each_item): its blocks read in place where the driver's blocking asks for
// them as they lie, otherwise copied element by element (no path does that today).
template <typename T>
class PackedBSource final : public PanelSource<T> {
 public:
  PackedBSource(const T* b, const PackedBLayout& l, int64_t first) : b_(b), l_(l), first_(first) {}
  const T* packed(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr) const override {
    const bool whole_block = k0 % l_.kc == 0 && kc == std::min(l_.kc, l_.k - k0);
    n0 += first_;
    if (nr != l_.nr || n0 % nr != 0 || !whole_block || n0 + nc > l_.n_pad) return nullptr;
    return b_ + l_.offset(k0, n0);
  }
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override {
    n0 += first_;
    for (int64_t p = 0; p < nc; p += nr, dst += kc * nr)
      for (int64_t kk = 0; kk < kc; ++kk)
        for (int64_t j = 0; j < nr; ++j)
          dst[kk * nr + j] = p + j < nc ? b_[l_.offset(k0 + kk, n0 + p + j)] : T(0);
  }

 private:
  const T* b_;
  PackedBLayout l_;
  int64_t first_;
};

}  // namespace

template <typename T>
PackedBLayout packed_b_layout(int64_t k, int64_t n) {
  const int64_t nr = gemm_kernel<T>().nr;
  PackedBLayout l;
  l.k = k;
  l.nr = nr;
  l.n_pad = round_up(std::max<int64_t>(n, 1), nr);
  l.kc = k > 0 ? k_block(k, blocking<T>().kc) : 1;
  return l;
}

template <typename T>
void pack_b_columns(const PanelSource<T>& src, const PackedBLayout& lb, int64_t n0, int64_t nc,
                    T* b) {
  if (nc <= 0) return;
  if (n0 % lb.nr != 0) throw InvalidArgument("pack_b_columns: n0 must start a panel");
  for (int64_t k0 = 0; k0 < lb.k; k0 += lb.kc)
    src.pack(k0, std::min(lb.kc, lb.k - k0), n0, nc, lb.nr, b + lb.offset(k0, n0));
}

template <typename T>
void gemm_batched_packed_b(int64_t batch, int64_t m, int64_t n, int64_t k, T alpha, MatrixRef<T> a,
                           int64_t stride_a, const T* b, const PackedBLayout& lb,
                           int64_t stride_b, T beta, T* c, int64_t ldc, int64_t stride_c) {
  check_batch(batch, stride_a, stride_b, stride_c, "gemm_batched_packed_b");
  check_sizes(m, n, k, ldc);
  if (batch == 0 || m == 0 || n == 0) return;
  const GemmKernel<T>& kern = gemm_kernel<T>();
  if (k != lb.k || n > lb.n_pad || lb.nr != kern.nr)
    throw InvalidArgument("gemm_batched_packed_b: B's layout is for another shape or ISA");
  check_extent<T>(m, k, a.rs, a.cs, "A");
  // Items split into parts of whole panels where the threads do not divide them evenly (11
  // Winograd points on 2 threads: 6 items against 5 otherwise).
  for_each_item(batch, m, n, k, kern.nr, [&](int64_t i, int64_t n0, int64_t n1) {
    T* ci = c + i * stride_c + n0;
    if (k == 0 || alpha == T(0)) return scale_c(m, n1 - n0, beta, ci, ldc);
    const PackedBSource<T> src(b + i * stride_b, lb, n0);
    const MatrixRef<T> ai{a.data + i * stride_a, a.rs, a.cs};
    run_problem(Problem<T>{m, n1 - n0, k, alpha, beta, ai, &src, ci, ldc, &kern, blocking<T>(),
                           row_a_columns(ai, kern.nr)});
  });
}

#define FASTCONV_INSTANTIATE_BATCHED(T)                                                            \
  template void gemm_batched<T>(int64_t, int64_t, int64_t, int64_t, T, MatrixRef<T>, int64_t,      \
                                MatrixRef<T>, int64_t, T, T*, int64_t, int64_t);                   \
  template int64_t packed_a_row_step<T>();                                                         \
  template int64_t packed_a_elems<T>(int64_t, int64_t);                                            \
  template void pack_a_rows<T>(int64_t, int64_t, int64_t, int64_t, MatrixRef<T>, T*);              \
  template void gemm_batched_packed_a<T>(int64_t, int64_t, int64_t, int64_t, T, const T*, int64_t, \
                                         MatrixRef<T>, int64_t, T, T*, int64_t, int64_t);          \
  template void gemm_packed_a<T>(int64_t, int64_t, int64_t, T, const T*, const PanelSource<T>&, T, \
                                 T*, int64_t);                                                     \
  template PackedBLayout packed_b_layout<T>(int64_t, int64_t);                                     \
  template void pack_b_columns<T>(const PanelSource<T>&, const PackedBLayout&, int64_t, int64_t, \
                                  T*);                                                         \
  template void gemm_batched_packed_b<T>(int64_t, int64_t, int64_t, int64_t, T, MatrixRef<T>,       \
                                         int64_t, const T*, const PackedBLayout&, int64_t, T, T*,  \
                                         int64_t, int64_t);

FASTCONV_INSTANTIATE_BATCHED(float)
FASTCONV_INSTANTIATE_BATCHED(double)
#undef FASTCONV_INSTANTIATE_BATCHED

}  // namespace fastconv::gemm
