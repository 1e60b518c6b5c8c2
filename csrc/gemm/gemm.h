// The packed GEMM engine (GotoBLAS/BLIS structure): C = alpha * A * B + beta * C, with A dense
// and strided and B read through a PanelSource, so convolution can pack B straight from its
// input (implicit GEMM) while plain matrices use DenseSource. Reused by im2col, implicit GEMM,
// Winograd and FFT.
#pragma once
#include <cstdint>
#include <string>

namespace fastconv::gemm {

// Element (i, j) of a dense matrix lives at data[i * rs + j * cs].
template <typename T>
struct MatrixRef {
  const T* data;
  int64_t rs, cs;
};

// Produces packed panels of B (k x n). pack() writes B[k0 : k0+kc, n0 : n0+nc] as
// ceil(nc / nr) consecutive panels of kc x nr elements, row-major inside each panel
// (element (kk, j) of panel p at dst[p * kc * nr + kk * nr + j]); columns past nc are zero.
// Must be safe to call from several threads at once (const, no shared scratch).
template <typename T>
class PanelSource {
 public:
  virtual ~PanelSource() = default;
  virtual void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const = 0;
  // Where the full panel of columns [n0, n0 + nr) lies in memory as kc rows of nr consecutive
  // elements (B[k0 + kk, n0 : n0 + nr) at dst[kk]): true and dst filled, and the micro-kernel
  // reads those rows in place instead of a packed copy; false (the default) to pack.
  virtual bool rows(int64_t /*k0*/, int64_t /*kc*/, int64_t /*n0*/, int64_t /*nr*/,
                    const T** /*dst*/) const {
    return false;
  }
  // Where the block pack() would write for columns [n0, n0 + nc) of rows [k0, k0 + kc) already
  // lies in memory in that layout (a B stored packed ahead): its address, read in place; nullptr
  // (the default) to pack.
  virtual const T* packed(int64_t /*k0*/, int64_t /*kc*/, int64_t /*n0*/, int64_t /*nc*/,
                          int64_t /*nr*/) const {
    return nullptr;
  }
};

// B as a dense strided matrix.
template <typename T>
class DenseSource final : public PanelSource<T> {
 public:
  explicit DenseSource(MatrixRef<T> b) : b_(b) {}
  void pack(int64_t k0, int64_t kc, int64_t n0, int64_t nc, int64_t nr, T* dst) const override;

 private:
  MatrixRef<T> b_;
};

// C (m x n, row stride ldc, unit column stride) = alpha * A (m x k) * B (k x n) + beta * C.
// beta == 0 never reads C (NaN in C does not leak). k == 0 or alpha == 0 scales C by beta
// without reading A or B (as BLAS does). Parallel over
// M/N blocks with the thread pool (never over k), so results do not depend on the thread count.
template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, T alpha, MatrixRef<T> a, const PanelSource<T>& b,
          T beta, T* c, int64_t ldc);

// C = alpha * A * B + beta * C with A also packed by a source: `a_t` packs A's transpose
// (k x m) in panels of the tile's MR columns, which is the packed-A layout. For operands whose
// reduction runs over a set no strided matrix describes (the positions a kernel tap reaches).
template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, T alpha, const PanelSource<T>& a_t,
          const PanelSource<T>& b, T beta, T* c, int64_t ldc);

// Convenience: dense B.
template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, T alpha, MatrixRef<T> a, MatrixRef<T> b, T beta, T* c,
          int64_t ldc);

// `batch` independent dense GEMMs of one shape; item i uses a + i * stride_a, b + i * stride_b,
// c + i * stride_c. Parallel over items when there are enough of them, else inside each.
template <typename T>
void gemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k, T alpha, MatrixRef<T> a,
                  int64_t stride_a, MatrixRef<T> b, int64_t stride_b, T beta, T* c, int64_t ldc,
                  int64_t stride_c);

// A packed ahead, for GEMMs that share it (Winograd's transformed kernels serve every block of
// tiles): the whole m x k A in the driver's packed layout, read in place by each GEMM instead of
// packed again per call. packed_a_elems(m, k) elements; pack_a_rows writes rows [i0, i0 + rows)
// of A into it (i0 a multiple of packed_a_row_step(); a points at row i0, so threads can pack
// disjoint row ranges); gemm_batched_packed_a is gemm_batched with item i's A at
// a_packed + i * stride_a. The layout depends on the active ISA and the cache blocking, so a
// packed A is only for this process.
template <typename T>
int64_t packed_a_row_step();
template <typename T>
int64_t packed_a_elems(int64_t m, int64_t k);
template <typename T>
void pack_a_rows(int64_t m, int64_t k, int64_t i0, int64_t rows, MatrixRef<T> a, T* packed);
template <typename T>
void gemm_batched_packed_a(int64_t batch, int64_t m, int64_t n, int64_t k, T alpha,
                           const T* a_packed, int64_t stride_a, MatrixRef<T> b, int64_t stride_b,
                           T beta, T* c, int64_t ldc, int64_t stride_c);
// gemm() with that packed A and B from a source (a conv's weight packed once for the GEMMs of
// all its images: implicit GEMM's forward).
template <typename T>
void gemm_packed_a(int64_t m, int64_t n, int64_t k, T alpha, const T* a_packed,
                   const PanelSource<T>& b, T beta, T* c, int64_t ldc);

// B (k x n) stored ahead in the driver's packed layout, for GEMMs whose B is produced anyway (the
// Winograd input transform writes it so, instead of a layout every GEMM packs again): rows in the
// driver's k blocks (kc rows each, the last shorter), each block's columns in panels of nr,
// element (kk, j) at offset(kk, j); columns past n up to n_pad exist (read by the micro-kernel; their
// products are never stored). From packed_b_layout, for this process only (ISA and blocking).
struct PackedBLayout {
  int64_t k = 0, n_pad = 0, kc = 1, nr = 1;
  int64_t elems() const { return k * n_pad; }
  int64_t offset(int64_t kk, int64_t j) const {
    const int64_t kb = kk / kc, rows = k - kb * kc < kc ? k - kb * kc : kc;
    return kb * kc * n_pad + (j / nr) * rows * nr + (kk - kb * kc) * nr + j % nr;
  }
};
template <typename T>
PackedBLayout packed_b_layout(int64_t k, int64_t n);

// Columns [n0, n0 + nc) of B (n0 a multiple of lb.nr) from src into layout lb at b, in every
// k block: the stored-ahead B's share one thread writes.
template <typename T>
void pack_b_columns(const PanelSource<T>& src, const PackedBLayout& lb, int64_t n0, int64_t nc,
                    T* b);

// gemm_batched with item i's B at b + i * stride_b in layout lb (n <= lb.n_pad, k == lb.k).
template <typename T>
void gemm_batched_packed_b(int64_t batch, int64_t m, int64_t n, int64_t k, T alpha, MatrixRef<T> a,
                           int64_t stride_a, const T* b, const PackedBLayout& lb,
                           int64_t stride_b, T beta, T* c, int64_t ldc, int64_t stride_c);

// The micro-kernel tile the active ISA uses for T (what PanelSource::pack is asked for).
template <typename T>
int64_t panel_width();

// Whether gemm() reads a row-major A (row stride lda, unit column stride) in place, without
// packing it, when C has n columns: few B panels, and rows that do not all share one L1 set.
template <typename T>
bool reads_a_in_place(int64_t lda, int64_t n);

// Whether C (m x n) is better computed as its transpose C^T = B^T A^T: the share of the
// micro-kernel's multiply-adds that land on real elements when n fills NR-wide panels, against
// that share when n runs along tile rows (computed in the tile's row steps), better by at least
// `margin` (49 columns fill 77% of two 32-wide panels and 94% of 52 tile rows).
template <typename T>
bool transpose_fills_better(int64_t n, double margin);

// Cache blocking the driver uses for T, from the detected cache sizes: packed A blocks of
// mc x kc (kept in L2), packed B blocks of kc x nc (L3), B micro-panels of kc x nr (L1). k is
// split into equal blocks of at most kc, a function of k alone, so the summation order (and
// hence the result) never depends on the thread count.
struct Blocking {
  int64_t mc, kc, nc;
};
template <typename T>
Blocking blocking();

// Names of the micro-kernels in use, e.g. "f32_gemm_12x32_avx512" (for `fastconv info`).
std::string kernel_names();

// Measured single-core peak of the active ISA in GFLOP/s (FMA throughput probe, ~50 ms the
// first call, cached afterwards).
double peak_gflops_per_core(bool float64 = false);

// Core clock in GHz measured with a chain of dependent integer adds (one per cycle), ~20 ms the
// first call, cached; 0 where it cannot be measured. For reporting FMAs per cycle.
double measured_clock_ghz();

}  // namespace fastconv::gemm
