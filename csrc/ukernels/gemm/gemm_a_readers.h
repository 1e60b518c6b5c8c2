// How a GEMM micro-kernel reads its A operand, one k step at a time: from a packed panel, or in
// place from a row-major matrix (no packing; for small N, where a packed A block would serve only
// a panel or two of B); and its B rows, packed or in place. Shared by the tile bodies of every ISA.
#pragma once
#include <cstdint>
#include <type_traits>

namespace fastconv {

// A panel packed k-major, rows kStride apart per k (element (i, kk) at a[kk * kStride + i]).
template <typename T, int kStride>
struct PackedA {
  const T* a;
  T get(int i) const { return a[i]; }
  void next() { a += kStride; }
};

// MR rows of a row-major matrix, element (i, kk) at a[i * lda + kk]. Rows are reached from one
// base pointer per three rows as base, base + lda and base + 2 * lda, x86 addressing modes, so
// the loop needs ceil(MR / 3) pointers and lda in registers instead of MR pointers.
template <typename T, int MR>
struct RowMajorA {
  static constexpr int kBases = (MR + 2) / 3;
  const T* base[kBases];
  int64_t lda;
  RowMajorA(const T* a, int64_t ld) : lda(ld) {
    for (int j = 0; j < kBases; ++j) base[j] = a + 3 * j * ld;
  }
  T get(int i) const { return base[i / 3][(i % 3) * lda]; }
  void next() {
    for (int j = 0; j < kBases; ++j) ++base[j];
  }
};

// B's k rows read in place instead of from a packed panel: row kk at rows[kk] (a conv's input
// rows, for panels that lie inside one row of the input). The tiles take B either as a packed
// panel pointer (const T*, advanced by the panel's row step) or as this.
template <typename T>
struct IndirectB {
  const T* const* rows;
};

template <typename T>
inline const T* b_row(const T* b) {
  return b;
}
template <typename T>
inline const T* b_row(IndirectB<T> b) {
  return *b.rows;
}
template <typename T>
inline void b_next(const T*& b, int64_t step) {
  b += step;
}
template <typename T>
inline void b_next(IndirectB<T>& b, int64_t) {
  ++b.rows;
}

// Calls fn(std::integral_constant<int, R>{}) with R = mr (1 <= mr <= MR): a tile of exactly mr
// rows for kernels that read A in place (no packed panel to pad).
template <int MR, typename Fn>
inline void for_row_count(int64_t mr, Fn&& fn) {
  if constexpr (MR > 1) {
    if (mr < MR) return for_row_count<MR - 1>(mr, fn);
  }
  fn(std::integral_constant<int, MR>{});
}

}  // namespace fastconv
