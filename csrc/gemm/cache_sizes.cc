// Cache size detection for the GEMM driver (cache_sizes.h).
#include "gemm/cache_sizes.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/tuning.h"
#include "fastconv/cpu_features.h"

#if defined(FASTCONV_X86) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define FASTCONV_GEMM_HAVE_CPUID 1
#endif

namespace fastconv::gemm {
namespace {

int64_t parse_size(const std::string& s) {  // sysfs style: "48K", "1024K", "32M"
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (v <= 0) return 0;
  if (*end == 'K') return v << 10;
  if (*end == 'M') return v << 20;
  if (*end == 'G') return v << 30;
  return v;
}

int count_cpus(const std::string& list) {  // "0-3,8-11" -> 8
  int count = 0;
  for (size_t pos = 0; pos < list.size();) {
    char* end = nullptr;
    const long lo = std::strtol(list.c_str() + pos, &end, 10);
    long hi = lo;
    if (*end == '-') hi = std::strtol(end + 1, &end, 10);
    count += int(std::max(0L, hi - lo + 1));
    pos = size_t(end - list.c_str());
    if (pos < list.size() && list[pos] == ',')
      ++pos;
    else
      break;
  }
  return std::max(1, count);
}

// The first line of a sysfs file ("" when unreadable). C stdio, not std::ifstream: a build with
// a statically linked libstdc++ crashed on stream extraction inside a process that had loaded
// another libstdc++ (PyTorch's; seen on the GPU machines' GCC 13), the locale facets differing.
std::string read_line(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return "";
  char buf[256] = {};
  const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  if (!ok) return "";
  std::string line(buf);
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  return line;
}

bool caches_from_sysfs(CacheSizes& out) {
  bool found = false;
  for (int idx = 0; idx < 8; ++idx) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(idx) + "/";
    const std::string level_s = read_line(dir + "level"), type = read_line(dir + "type");
    const std::string size = read_line(dir + "size");
    const int level = std::atoi(level_s.c_str());
    if (level_s.empty() || type.empty() || size.empty()) continue;
    const int64_t bytes = parse_size(size);
    if (bytes <= 0 || type == "Instruction") continue;
    if (level == 1) out.l1d = bytes;
    if (level == 2) out.l2 = bytes;
    if (level == 3) {
      const std::string shared = read_line(dir + "shared_cpu_list");
      out.l3_per_core = bytes / (shared.empty() ? 1 : count_cpus(shared));
    }
    found = true;
  }
  return found;
}

bool caches_from_cpuid(CacheSizes& out) {
#ifdef FASTCONV_GEMM_HAVE_CPUID
  // Leaf 4 (Intel) and 0x8000001D (AMD) share one layout: type/level/sharing in EAX, ways,
  // partitions and line size in EBX, sets in ECX.
  const unsigned leaf = cpu_features().vendor == "AuthenticAMD" ? 0x8000001Du : 4u;
  unsigned max_leaf = __get_cpuid_max(leaf & 0x80000000u, nullptr);
  if (max_leaf < leaf) return false;
  bool found = false;
  for (unsigned sub = 0; sub < 8; ++sub) {
    unsigned a, b, c, d;
    __cpuid_count(leaf, sub, a, b, c, d);
    const unsigned type = a & 0x1f, level = (a >> 5) & 0x7;
    if (type == 0) break;
    if (type == 2) continue;  // instruction cache
    const int64_t bytes =
        int64_t((b >> 22) + 1) * (((b >> 12) & 0x3ff) + 1) * ((b & 0xfff) + 1) * (int64_t(c) + 1);
    const int64_t sharing = ((a >> 14) & 0xfff) + 1;
    if (level == 1) out.l1d = bytes;
    if (level == 2) out.l2 = bytes;
    if (level == 3) out.l3_per_core = bytes / sharing;
    found = true;
  }
  return found;
#else
  (void)out;
  return false;
#endif
}

}  // namespace

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = [] {
    CacheSizes s;
    if (!caches_from_sysfs(s)) caches_from_cpuid(s);
    if (tuning().l2_bytes > 0) s.l2 = tuning().l2_bytes;  // FASTCONV_L2_BYTES
    return s;
  }();
  return sizes;
}

}  // namespace fastconv::gemm
