// Reads the tuning knobs of common/tuning.h from the environment, once.
#include "common/tuning.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace fastconv {
namespace {

// The variable's value, or "" when it is unset.
std::string env_text(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

void read_winograd_tile(Tuning& t) {
  const std::string v = env_text("FASTCONV_WINOGRAD_TILE");
  if (v == "2" || v == "3" || v == "4" || v == "6") {
    t.winograd_tile = std::stoi(v);
  } else if (v == "4x3" || v == "3x4") {
    t.winograd_tile_h = v[0] - '0';
    t.winograd_tile = v[2] - '0';
  } else if (!v.empty()) {
    t.winograd_tile_error =
        "FASTCONV_WINOGRAD_TILE must be 2, 3, 4, 6, 4x3 or 3x4, got '" + v + "'";
  }
}

void read_winograd_block_bytes(Tuning& t) {
  const long long v = std::atoll(env_text("FASTCONV_WINOGRAD_BLOCK_BYTES").c_str());
  if (v > 0) t.winograd_block_bytes = v;
}

// A byte count with an optional K, M or G suffix (powers of 1024; a trailing "B" or "iB" is
// allowed: 512K, 512KB, 512KiB), or 0 when unset, empty, not a number, with another suffix, or
// not positive. Positive values round up to at least 1; values past int64 saturate.
int64_t env_bytes(const char* name) {
  const std::string v = env_text(name);
  if (v.empty()) return 0;
  char* end = nullptr;
  const double n = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || !(n > 0)) return 0;  // not a number, NaN, zero or negative
  std::string unit(end);
  if (unit.size() >= 2 && unit.compare(unit.size() - 2, 2, "iB") == 0)
    unit.resize(unit.size() - 2);
  else if (unit.size() >= 2 && (unit.back() == 'B' || unit.back() == 'b'))
    unit.pop_back();  // "KB" / "MB" / "GB", not a bare "B"
  const double scale = unit.empty()                 ? 1.0
                       : unit == "K" || unit == "k" ? 1024.0
                       : unit == "M" || unit == "m" ? 1048576.0
                       : unit == "G" || unit == "g" ? 1073741824.0
                                                    : 0.0;
  if (scale == 0.0) return 0;
  const double bytes = n * scale;
  if (!(bytes < 9.2e18)) return INT64_MAX;  // +inf and past int64
  return std::max<int64_t>(1, int64_t(bytes));
}

void read_workspace_limit(Tuning& t) {
  if (const int64_t n = env_bytes("FASTCONV_WORKSPACE_LIMIT"))
    t.workspace_limit_bytes = std::max<int64_t>(4096, n);
}

void read_l2_bytes(Tuning& t) {
  if (const int64_t n = env_bytes("FASTCONV_L2_BYTES")) t.l2_bytes = std::max<int64_t>(16384, n);
}

void read_spin(Tuning& t) {
  const std::string v = env_text("FASTCONV_SPIN_US");
  if (v.empty()) return;
  char* end = nullptr;
  const long long n = std::strtoll(v.c_str(), &end, 10);
  if (end != v.c_str() && *end == '\0' && n >= 0) t.spin_us = std::min<long long>(n, 1000000);
}

void read_pin_threads(Tuning& t) {
  const std::string v = env_text("FASTCONV_PIN_THREADS");
  if (v == "0") t.pin_threads = 0;
  if (v == "1") t.pin_threads = 1;
}

Tuning read_tuning() {
  Tuning t;
  read_spin(t);
  read_pin_threads(t);
  read_winograd_tile(t);
  read_winograd_block_bytes(t);
  read_workspace_limit(t);
  read_l2_bytes(t);
  return t;
}

}  // namespace

const Tuning& tuning() {
  static const Tuning knobs = read_tuning();
  return knobs;
}

}  // namespace fastconv
