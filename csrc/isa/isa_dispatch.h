// The one ISA dispatch every kernel family uses: picks the scalar, avx2 or avx512 entry of a
// kernel table from active_isa().
#pragma once
#include "fastconv/cpu_features.h"

namespace fastconv {

// Returns pick_scalar(), pick_avx2() or pick_avx512(), whichever matches active_isa(); only the
// chosen one is called. Callers keep the result (a function-local static), so the choice is
// made once per table. Call it through FASTCONV_BY_ISA, which also builds without x86.
template <typename PickScalar, typename PickAvx2, typename PickAvx512>
auto by_isa(PickScalar&& pick_scalar, PickAvx2&& pick_avx2,
            PickAvx512&& pick_avx512) -> decltype(pick_scalar()) {
  switch (active_isa()) {
    case IsaLevel::kAvx512:
      return pick_avx512();
    case IsaLevel::kAvx2:
      return pick_avx2();
    case IsaLevel::kScalar:
      break;
  }
  return pick_scalar();
}

}  // namespace fastconv

// FASTCONV_BY_ISA(scalar_entry, avx2_entry, avx512_entry): the entry for the active ISA. Each
// entry is any expression, evaluated only if chosen; a named table or function comes back as a
// reference (no copy), a temporary as a value. Builds without FASTCONV_X86 compile no avx2 or
// avx512 kernels, so there the macro names only the scalar entry, and builds with
// FASTCONV_NO_AVX512 (CMake's FASTCONV_AVX512=OFF) no avx512 kernels, so there it names the
// avx2 entry in its place (active_isa() never exceeds built_isa()): the entries left out are
// never referenced and need not exist.
#if defined(FASTCONV_X86) && defined(FASTCONV_NO_AVX512)
#define FASTCONV_BY_ISA(scalar_entry, avx2_entry, avx512_entry)          \
  ::fastconv::by_isa([&]() -> decltype(auto) { return (scalar_entry); }, \
                     [&]() -> decltype(auto) { return (avx2_entry); },   \
                     [&]() -> decltype(auto) { return (avx2_entry); })
#elif defined(FASTCONV_X86)
#define FASTCONV_BY_ISA(scalar_entry, avx2_entry, avx512_entry)          \
  ::fastconv::by_isa([&]() -> decltype(auto) { return (scalar_entry); }, \
                     [&]() -> decltype(auto) { return (avx2_entry); },   \
                     [&]() -> decltype(auto) { return (avx512_entry); })
#else
#define FASTCONV_BY_ISA(scalar_entry, avx2_entry, avx512_entry) (scalar_entry)
#endif

// FASTCONV_KERNEL_BY_ISA(name): the active ISA's `name`, for kernels every ISA namespace
// (scalar, avx2, avx512) declares under the same name, e.g. FASTCONV_KERNEL_BY_ISA(f32_fma_peak).
#define FASTCONV_KERNEL_BY_ISA(name) FASTCONV_BY_ISA(scalar::name, avx2::name, avx512::name)
