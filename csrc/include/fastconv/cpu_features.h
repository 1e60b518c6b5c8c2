// CPU feature detection and the ISA level the kernel table uses, chosen once at run time.
#pragma once
#include <string>

namespace fastconv {

enum class IsaLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512dq = false, avx512bw = false, avx512vl = false;
  bool os_avx = false, os_avx512 = false;  // the OS saves the wider registers (XCR0)
  std::string vendor, brand;
  // CPUID leaf 1's display family and model (the extended fields folded in as the vendors
  // specify), 0 where unknown: AMD family 0x19 with AVX-512 is Zen 4, whose 512-bit
  // instructions run on 256-bit units.
  int family = 0, model = 0;
};

const CpuFeatures& cpu_features();
// Highest level the CPU supports.
IsaLevel detected_isa();
// Highest level this build compiled micro-kernels for: avx512 on x86-64 (avx2 where it was
// configured with FASTCONV_AVX512=OFF), scalar elsewhere.
IsaLevel built_isa();
// Level in use: detected_isa() capped by built_isa() and FASTCONV_ISA=avx512|avx2|scalar (read
// once).
IsaLevel active_isa();
const char* isa_name(IsaLevel l);

// Whether the CPU runs 512-bit instructions on 256-bit units (one FMA of 16 floats per cycle):
// AMD's Zen 4 (AuthenticAMD, family 0x19, with AVX-512 detected), unlike the Intel Xeons with two
// 512-bit FMA units. FASTCONV_AVX512_UNITS=256|512 replaces the detection (read once; other
// values leave it, and the Python layer warns about them). False without AVX-512. The kernels
// whose vector width decides their speed (the row kernels, direct_rows_parts.h) and auto's rule
// (python/fastconv/_cpu_shape.py, through cpu_info) read it here.
bool avx512_on_256bit_units();

}  // namespace fastconv
