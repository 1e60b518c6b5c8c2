// The algorithm enum and the C++ entry points of every op and pass.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fastconv/geometry.h"

namespace fastconv {

enum class Algorithm { kReference, kDirect, kIm2col, kImplicitGemm, kWinograd, kFft, kDepthwise };
enum class DType { kFloat32, kFloat64 };
enum class ConvPass { kForward, kBackwardData, kBackwardWeight };

const char* algorithm_name(Algorithm a);
// Parses a concrete algorithm name ("auto" is resolved in Python); throws InvalidArgument.
Algorithm parse_algorithm(const std::string& name);
// Algorithms compiled into this build, by op ("conv", "conv_transpose", pooling ops).
std::vector<std::string> built_algorithms(const std::string& op);

// Scratch bytes algorithm `a` allocates for one call of `pass` (reported by explain()).
int64_t conv_workspace_bytes(const ConvGeometry& g, Algorithm a, ConvPass pass, DType t);

// "" when algorithm `a` can run `pass` of g, else why not (raised as NotImplementedError when
// the algorithm is forced; `auto` never picks it).
std::string conv_unsupported_reason(const ConvGeometry& g, Algorithm a, ConvPass pass);

// What algorithm `a` will do inside for `pass` of g, for explain(): e.g. winograd's tile
// "F(4x4,3x3)" or its weight-gradient fallback; "" when there is nothing to add.
std::string conv_algorithm_note(const ConvGeometry& g, Algorithm a, ConvPass pass);

// ---- convolution passes (transposed convolution calls these with its conv geometry)
void conv_forward(const ConvGeometry& g, Algorithm a, DType t, const void* x, const void* w,
                  const void* bias, void* y);
void conv_backward_data(const ConvGeometry& g, Algorithm a, DType t, const void* grad_y,
                        const void* w, void* grad_x);
void conv_backward_weight(const ConvGeometry& g, Algorithm a, DType t, const void* x,
                          const void* grad_y, void* grad_w);
// grad_bias[k] = sum over n and spatial of grad_y[n, k, ...].
void conv_backward_bias(int64_t n, int64_t k, int64_t spatial, DType t, const void* grad_y,
                        void* grad_bias);
// y[n, k, ...] += bias[k].
void add_channel_bias(int64_t n, int64_t k, int64_t spatial, DType t, const void* bias, void* y);

// ---- pooling
void max_pool_forward(const PoolGeometry& g, DType t, const void* x, void* y, int64_t* indices);
void max_pool_backward(const PoolGeometry& g, DType t, const void* grad_y, const void* x,
                       void* grad_x);
void avg_pool_forward(const PoolGeometry& g, DType t, bool count_include_pad, const void* x,
                      void* y);
void avg_pool_backward(const PoolGeometry& g, DType t, bool count_include_pad,
                       const void* grad_y, void* grad_x);
void lp_pool_forward(const PoolGeometry& g, DType t, double p, const void* x, void* y);
void lp_pool_backward(const PoolGeometry& g, DType t, double p, const void* grad_y,
                      const void* x, void* grad_x);
// Max-pool backward from the forward's saved indices (plane-local flat input positions, one
// per output): grad_x = 0, grad_x[indices[j]] += grad_y[j]. Throws InvalidArgument on an index
// out of range.
void max_pool_backward_indices(int64_t planes, int64_t in_count, int64_t out_count, DType t,
                               const void* grad_y, const int64_t* indices, void* grad_x);
// y (N, C, *out) = 0 except y[n, c].flat[indices[n, c, i]] = x[n, c, i]; x has in_count
// elements per plane, y has out_count. Throws InvalidArgument on an index out of range.
void max_unpool_forward(int64_t planes, int64_t in_count, int64_t out_count, DType t,
                        const void* x, const int64_t* indices, void* y);

}  // namespace fastconv
