// Spellings of the shared enums (csrc/include/fastconv/types.h): names out, parsers in.
#include "fastconv/types.h"

#include "fastconv/status.h"

namespace fastconv {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
  }
  return "unknown";
}

int64_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat64: return 8;
    case DType::kFloat32: return 4;
    default: return 2;
  }
}

const char* pass_name(ConvPass p) {
  switch (p) {
    case ConvPass::kForward: return "forward";
    case ConvPass::kBackwardData: return "backward_data";
    case ConvPass::kBackwardWeight: return "backward_weight";
  }
  return "unknown";
}

const char* pool_kind_name(PoolKind k) {
  switch (k) {
    case PoolKind::kMax: return "max_pool";
    case PoolKind::kAvg: return "avg_pool";
    case PoolKind::kLp: return "lp_pool";
    case PoolKind::kUnpool: return "max_unpool";
  }
  return "unknown";
}

const char* pool_pass_name(PoolPass p) {
  switch (p) {
    case PoolPass::kForward: return "forward";
    case PoolPass::kBackward: return "backward";
    case PoolPass::kGather: return "gather";
  }
  return "unknown";
}

DType parse_dtype(const std::string& name) {
  for (DType t : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16})
    if (name == dtype_name(t)) return t;
  throw InvalidType("dtype must be float32, float64, float16 or bfloat16, got '" + name + "'");
}

ConvPass parse_conv_pass(const std::string& name) {
  for (ConvPass p : {ConvPass::kForward, ConvPass::kBackwardData, ConvPass::kBackwardWeight})
    if (name == pass_name(p)) return p;
  throw InvalidArgument("pass_ must be 'forward', 'backward_data' or 'backward_weight', got '" +
                        name + "'");
}

PoolKind parse_pool_kind(const std::string& name) {
  for (PoolKind k : {PoolKind::kMax, PoolKind::kAvg, PoolKind::kLp, PoolKind::kUnpool})
    if (name == pool_kind_name(k)) return k;
  throw InvalidArgument(
      "op must be 'max_pool', 'avg_pool', 'lp_pool' or 'max_unpool', got '" + name + "'");
}

PoolPass parse_pool_pass(const std::string& name) {
  for (PoolPass p : {PoolPass::kForward, PoolPass::kBackward, PoolPass::kGather})
    if (name == pool_pass_name(p)) return p;
  throw InvalidArgument("pass_ must be 'forward', 'backward' or 'gather' for pooling, got '" +
                        name + "'");
}

}  // namespace fastconv
