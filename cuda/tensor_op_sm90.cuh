// The Hopper core's dispatch (tensor_op_sm90.h): which compiled kernel runs a problem, reached
// through the kernels' declared entry points (Entry). The kernels themselves are in
// tensor_op_sm90_kernels.cuh; tensor_op_sm90_f16.cu and tensor_op_sm90_bf16.cu instantiate
// both, one dtype per translation unit.
//
// Compile only for sm_90a (wgmma and setmaxnreg exist only there); cmake/cuda.cmake does.
#pragma once
#include <cuda_runtime.h>

#include <cutlass/bfloat16.h>
#include <cutlass/conv/convolution.h>
#include <cutlass/half.h>

#include <cstddef>
#include <type_traits>

#include "tensor_op_sm90.h"

namespace fastconv::cuda::sm90 {

namespace detail {

using cutlass::conv::Operator;

template <DType D>
struct Element;
template <>
struct Element<DType::kFloat16> {
  using type = cutlass::half_t;
};
template <>
struct Element<DType::kBFloat16> {
  using type = cutlass::bfloat16_t;
};

// One compiled kernel (tensor_op_sm90_kernels.cuh's Kernel<T, Out, kOp, kN>): T operands, Out
// result, operator kOp, kN-wide block tiles. Its entry points are defined in
// tensor_op_sm90_kernels.cuh and instantiated explicitly in the dtype's translation unit. run
// returns nullptr when the kernel ran, or CUTLASS's status when it could not be
// set up (nothing launched); a failed launch throws.
template <typename T, typename Out, Operator kOp, int kN = 128>
struct Entry {
  static bool can_run(const NhwcConv& c);
  static size_t workspace(const NhwcConv& c);
  static const char* run(const NhwcConv& c, const void* a, const void* b, void* out,
                         Workspace ws, cudaStream_t stream);
};

template <typename K>
struct Tag {
  using type = K;
};

// Calls f(Tag<Entry>{}) with this pass's kernel: the dtype's result, or float32 (the weight
// gradient always; the other passes with a bias), 128 or 64 wide (c.tile_n).
template <DType D, typename F>
auto with_kernel(ConvPass pass, const NhwcConv& c, F&& f) {
  using T = typename Element<D>::type;
  if (pass == ConvPass::kBackwardWeight) return f(Tag<Entry<T, float, Operator::kWgrad>>{});
  auto with_width = [&](auto width) {
    constexpr int kN = decltype(width)::value;
    const bool f32 = c.float_out(pass);
    if (pass == ConvPass::kForward) {
      if (f32) return f(Tag<Entry<T, float, Operator::kFprop, kN>>{});
      return f(Tag<Entry<T, T, Operator::kFprop, kN>>{});
    }
    if (f32) return f(Tag<Entry<T, float, Operator::kDgrad, kN>>{});
    return f(Tag<Entry<T, T, Operator::kDgrad, kN>>{});
  };
  if (c.tile_n == 64) return with_width(std::integral_constant<int, 64>{});
  return with_width(std::integral_constant<int, 128>{});
}

}  // namespace detail

template <DType D>
bool Core<D>::can_run(ConvPass pass, const NhwcConv& c) {
  if (!covers(pass, D, c)) return false;
  return detail::with_kernel<D>(
      pass, c, [&](auto tag) { return decltype(tag)::type::can_run(c); });
}

template <DType D>
size_t Core<D>::workspace(ConvPass pass, const NhwcConv& c) {
  return detail::with_kernel<D>(
      pass, c, [&](auto tag) { return decltype(tag)::type::workspace(c); });
}

template <DType D>
const char* Core<D>::run(ConvPass pass, const NhwcConv& c, const void* a, const void* b,
                         void* out, Workspace ws, cudaStream_t stream) {
  return detail::with_kernel<D>(pass, c, [&](auto tag) {
    return decltype(tag)::type::run(c, a, b, out, ws, stream);
  });
}

}  // namespace fastconv::cuda::sm90
