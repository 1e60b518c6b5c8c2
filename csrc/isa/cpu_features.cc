// CPU feature detection (CPUID + XCR0) and the FASTCONV_ISA cap, evaluated once.
#include "fastconv/cpu_features.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(FASTCONV_X86) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define FASTCONV_HAVE_CPUID 1
#endif

namespace fastconv {
namespace {

#ifdef FASTCONV_HAVE_CPUID
uint64_t read_xcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef FASTCONV_HAVE_CPUID
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;
  __get_cpuid(1, &a, &b, &c, &d);
  const unsigned base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
  f.family = int(base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family);
  f.model = int(base_family == 0xf || base_family == 0x6 ? base_model | (((a >> 16) & 0xf) << 4)
                                                         : base_model);
  const bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  if (osxsave) {
    const uint64_t xcr0 = read_xcr0();
    f.os_avx = (xcr0 & 0x6) == 0x6;             // XMM and YMM state
    f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  }
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f.avx2 = b & (1u << 5);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
  }
  unsigned ext = 0;
  __get_cpuid(0x80000000, &ext, &b, &c, &d);
  if (ext >= 0x80000004) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002 + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
    f.brand = brand;
    f.brand.erase(0, f.brand.find_first_not_of(' '));
  }
#endif
  return f;
}

IsaLevel cap_from_env(IsaLevel level) {
  const char* env = std::getenv("FASTCONV_ISA");
  if (!env) return level;
  const std::string v(env);
  IsaLevel cap = level;
  if (v == "scalar") cap = IsaLevel::kScalar;
  else if (v == "avx2") cap = IsaLevel::kAvx2;
  else if (v == "avx512") cap = IsaLevel::kAvx512;
  // Unknown values are reported by the Python layer; here they leave the level unchanged.
  return int(cap) < int(level) ? cap : level;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

IsaLevel detected_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.os_avx512 && f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl && f.fma)
    return IsaLevel::kAvx512;
  if (f.os_avx && f.avx2 && f.fma) return IsaLevel::kAvx2;
  return IsaLevel::kScalar;
}

IsaLevel built_isa() {
#if defined(FASTCONV_X86) && defined(FASTCONV_NO_AVX512)
  return IsaLevel::kAvx2;
#elif defined(FASTCONV_X86)
  return IsaLevel::kAvx512;
#else
  return IsaLevel::kScalar;
#endif
}

IsaLevel active_isa() {
  static const IsaLevel level = [] {
    const IsaLevel detected = detected_isa(), built = built_isa();
    return cap_from_env(int(detected) < int(built) ? detected : built);
  }();
  return level;
}

bool avx512_on_256bit_units() {
  static const bool narrow = [] {
    if (detected_isa() != IsaLevel::kAvx512) return false;
    if (const char* env = std::getenv("FASTCONV_AVX512_UNITS")) {
      std::string v(env);
      v.erase(0, v.find_first_not_of(" \t\n\r\v\f"));  // as Python's str.strip()
      v.erase(v.find_last_not_of(" \t\n\r\v\f") + 1);
      if (v == "256") return true;
      if (v == "512") return false;
    }
    const CpuFeatures& f = cpu_features();
    return f.vendor == "AuthenticAMD" && f.family == 0x19;
  }();
  return narrow;
}

const char* isa_name(IsaLevel l) {
  switch (l) {
    case IsaLevel::kAvx512: return "avx512";
    case IsaLevel::kAvx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace fastconv
