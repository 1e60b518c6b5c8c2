// The GEMM driver's per-thread packing memory (gemm.cc): allocation at the GEMM level, never in
// micro-kernels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(_WIN32)
#include <malloc.h>
#endif

namespace fastconv::gemm {

// Per-thread packing memory for one A block and one B block, grown on demand and kept for the
// next call (allocation happens here, at the GEMM level, never in micro-kernels). Large buffers
// are 2 MiB aligned and asked for transparent huge pages: physically contiguous blocks map evenly
// onto the cache sets (with 4 KiB pages, random physical pages make L2 conflicts vary from run to
// run) and need few TLB entries.
class PackBuffers {
 public:
  template <typename T>
  void reserve(int64_t a_elems, int64_t b_elems, T** a, T** b) {
    const size_t a_bytes = round_up(size_t(a_elems) * sizeof(T), kAlign);
    const size_t bytes = a_bytes + size_t(b_elems) * sizeof(T);
    if (bytes > capacity_) {
      memory_.reset();  // free first: the old block is not needed
      memory_.reset(allocate(bytes));
      capacity_ = bytes;
    }
    *a = reinterpret_cast<T*>(memory_.get());
    *b = reinterpret_cast<T*>(memory_.get() + a_bytes);
  }

 private:
  static constexpr size_t kAlign = 64, kHugePage = size_t(2) << 20;
  static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }
  struct Free {
#if defined(_WIN32)
    void operator()(unsigned char* p) const { _aligned_free(p); }
#else
    void operator()(unsigned char* p) const { std::free(p); }
#endif
  };

  static unsigned char* allocate(size_t bytes) {
    void* p = nullptr;
#if defined(__linux__)
    if (bytes >= kHugePage / 2) {
      const size_t rounded = round_up(bytes, kHugePage);
      if (posix_memalign(&p, kHugePage, rounded) == 0) {
        madvise(p, rounded, MADV_HUGEPAGE);  // a hint: without THP it is just memory
        return static_cast<unsigned char*>(p);
      }
    }
#endif
#if defined(_WIN32)
    p = _aligned_malloc(bytes, kAlign);
    if (!p) throw std::bad_alloc();
#else
    if (posix_memalign(&p, kAlign, bytes) != 0) throw std::bad_alloc();
#endif
    return static_cast<unsigned char*>(p);
  }

  std::unique_ptr<unsigned char, Free> memory_;
  size_t capacity_ = 0;
};

}  // namespace fastconv::gemm
