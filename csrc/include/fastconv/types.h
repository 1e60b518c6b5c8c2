// The enums every layer shares, CPU and CUDA alike: element types, convolution passes, pooling
// kinds. Parsing and naming live in csrc/common/types.cc, the only place their spellings exist.
#pragma once
#include <cstdint>
#include <string>

namespace fastconv {

// Element type of a call's arrays. The CPU kernels take float32 / float64; the CUDA kernels
// also float16 / bfloat16.
enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };

// The three passes every convolution algorithm implements (transposed convolution runs them).
enum class ConvPass { kForward, kBackwardData, kBackwardWeight };

// Pooling ops; max_unpool is the adjoint of max pooling's index selection.
enum class PoolKind { kMax, kAvg, kLp, kUnpool };

// Passes of a pooling op (max_unpool has a forward only). kGather is max pooling's
// second-order pass, the adjoint of its backward from indices: out[plane][j] =
// a[plane][indices[plane][j]] (y-shaped, from an x-shaped a).
enum class PoolPass { kForward, kBackward, kGather };

const char* dtype_name(DType t);  // "float32", ...
int64_t dtype_size(DType t);      // bytes per element
const char* pass_name(ConvPass p);  // "forward", "backward_data", "backward_weight"
const char* pool_kind_name(PoolKind k);  // "max_pool", "avg_pool", "lp_pool", "max_unpool"
const char* pool_pass_name(PoolPass p);  // "forward", "backward", "gather"

// Parsers: throw InvalidType (dtype) or InvalidArgument naming the argument for anything else.
DType parse_dtype(const std::string& name);
ConvPass parse_conv_pass(const std::string& name);
PoolKind parse_pool_kind(const std::string& name);
PoolPass parse_pool_pass(const std::string& name);

}  // namespace fastconv
