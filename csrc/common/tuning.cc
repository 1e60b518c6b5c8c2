// Reads the tuning knobs of common/tuning.h from the environment, once.
#include "common/tuning.h"

#include <algorithm>
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
  if (v == "2" || v == "3" || v == "4" || v == "6")
    t.winograd_tile = std::stoi(v);
  else if (!v.empty())
    t.winograd_tile_error = "FASTCONV_WINOGRAD_TILE must be 2, 3, 4 or 6, got '" + v + "'";
}

void read_winograd_block_bytes(Tuning& t) {
  const long long v = std::atoll(env_text("FASTCONV_WINOGRAD_BLOCK_BYTES").c_str());
  if (v > 0) t.winograd_block_bytes = v;
}

// A byte count with an optional K, M or G suffix (powers of 1024), or 0 when unset, empty or
// not positive.
int64_t env_bytes(const char* name) {
  const std::string v = env_text(name);
  if (v.empty()) return 0;
  char* end = nullptr;
  const double n = std::strtod(v.c_str(), &end);
  const std::string unit(end);
  const double scale = unit == "K" || unit == "k"   ? 1024.0
                       : unit == "M" || unit == "m" ? 1048576.0
                       : unit == "G" || unit == "g" ? 1073741824.0
                                                    : 1.0;
  return n > 0 ? int64_t(n * scale) : 0;
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

Tuning read_tuning() {
  Tuning t;
  read_spin(t);
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
