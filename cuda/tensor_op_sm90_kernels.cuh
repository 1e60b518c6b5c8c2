// The Hopper core's kernels (tensor_op_sm90.h): CUTLASS 3's implicit-GEMM convolution for
// sm_90a, and the entry points tensor_op_sm90.cuh dispatches to (Entry), instantiated one dtype
// per translation unit (tensor_op_sm90_f16.cu, tensor_op_sm90_bf16.cu, so that the build
// compiles them side by side).
//
// Per pass, CUTLASS's collective builders assemble a warp-specialized kernel: a producer warp
// issues TMA loads (the activation operand in im2col mode, so the gather's padding and
// offsets are the copy engine's; the other operand tiled) into a shared-memory pipeline as deep
// as 227 KiB allows, the consumer warpgroup multiplies with wgmma (m64nNk16, float32
// accumulators in registers), and the epilogue stores the 128x128 result tile with TMA.
// Operands and result as the sm_80 core's (tensor_op_conv.h): NHWC activations, KRSC filters,
// cross-correlation; the result in the dtype, or float32 where c.float_out(pass).
//
// Compile only for sm_90a (wgmma and setmaxnreg exist only there); cmake/cuda.cmake does.
#pragma once
// kernel_hardware_info.hpp first: the conv collective headers use it without including it
#include <cutlass/kernel_hardware_info.hpp>
// (the order of the rest is clang-format's)
#include <cutlass/bfloat16.h>
#include <cutlass/conv/convolution.h>
#include <cutlass/cutlass.h>
#include <cutlass/half.h>

#include <cute/tensor.hpp>
#include <cutlass/conv/collective/collective_builder.hpp>
#include <cutlass/conv/convnd_problem_shape.hpp>
#include <cutlass/conv/device/conv_universal_adapter.hpp>
#include <cutlass/conv/dispatch_policy.hpp>
#include <cutlass/conv/kernel/conv_universal.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/util/packed_stride.hpp>
#include <string>
#include <type_traits>

#include "cuda_check.h"
#include "fastconv/status.h"
#include "split_reduce.cuh"
#include "tensor_op_sm90.cuh"

namespace fastconv::cuda::sm90 {

namespace detail {

namespace cc = cutlass::conv;

// One kernel: T operands, Out result, operator kOp, kN-wide block tiles (128, or 64 for a
// forward / backward data at most 64 channels wide: tensor_op_conv.h's core_tile_n) 128 long
// and 64 deep (four k16 wgmma steps per stage), one block per cluster; the epilogue has no
// source (C = void: the result is written, never read), so beta stays 0. The weight
// gradient's N (the filter's (C, S, R) positions) is a nested mode, its result a KRSC filter
// (CUTLASS's KCSR tag) stored without a shared-memory stage; the other passes store NHWC
// tiles through TMA.
template <typename T, typename Out, Operator kOp, int kN = 128>
struct Kernel {
  static constexpr bool kWgrad = kOp == Operator::kWgrad;
  using Nhwc = cutlass::layout::TensorNHWC;
  using OutLayout = std::conditional_t<kWgrad, cutlass::layout::TensorKCSR, Nhwc>;
  using TileN = std::conditional_t<kWgrad, cute::Shape<cute::Int<kN>>, cute::Int<kN>>;
  using TileShape = cute::Shape<cute::_128, TileN, cute::Shape<cute::_64>>;
  using ClusterShape = cute::Shape<cute::_1, cute::_1, cute::_1>;
  using EpilogueSchedule = std::conditional_t<kWgrad, cutlass::epilogue::NoSmemWarpSpecialized,
                                              cutlass::epilogue::TmaWarpSpecialized>;
  static constexpr int kAlignIn = 16 / static_cast<int>(sizeof(T));
  static constexpr int kAlignOut = 16 / static_cast<int>(sizeof(Out));
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, OutLayout, kAlignOut,
      Out, OutLayout, kAlignOut, EpilogueSchedule>::CollectiveOp;
  using Mainloop = typename cc::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, kOp, T, Nhwc, kAlignIn, T, Nhwc,
      kAlignIn, float, TileShape, ClusterShape,
      cc::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename Epilogue::SharedStorage))>,
      cc::KernelImplicitTmaWarpSpecializedSm90>::CollectiveOp;
  using Problem = cc::ConvProblemShape<kOp, Mainloop::DispatchPolicy::NumSpatialDimensions>;
  using Op =
      cc::device::ConvUniversalAdapter<cc::kernel::ConvUniversal<Problem, Mainloop, Epilogue>>;
};

// The problem: activations (N,H,W,C), filter (K,R,S,C), padding from padding_of (the exact
// output extent; extents_match checks CUTLASS's against ours before a kernel is asked).
template <Operator kOp>
cc::ConvProblemShape<kOp, 2> problem(const NhwcConv& c) {
  const Padding pad = padding_of(c);
  return cc::ConvProblemShape<kOp, 2>(cc::Mode::kCrossCorrelation, {c.n, c.h, c.w, c.c},
                                      {c.k, c.r, c.s, c.c}, {pad.lower_h, pad.lower_w},
                                      {pad.upper_h, pad.upper_w}, {c.stride_h, c.stride_w},
                                      {c.dil_h, c.dil_w}, 1);
}

// Whether CUTLASS's output-gradient / output extents are ours: (N, P, Q, K).
template <Operator kOp>
bool extents_match(const cc::ConvProblemShape<kOp, 2>& ps, const NhwcConv& c) {
  // the transformed activation (y or dy) is C of a forward and A of the gradients
  const auto& y = kOp == Operator::kFprop ? ps.shape_C : ps.shape_A;
  return y[0] == c.n && y[1] == c.p && y[2] == c.q && y[3] == c.k;
}

template <typename K>
typename K::Op::Arguments arguments(const typename K::Problem& ps, const void* a, const void* b,
                                    void* out) {
  using Op = typename K::Op;
  using Out = typename Op::ElementD;
  using StrideD = typename Op::ConvKernel::StrideD;
  constexpr Operator kOp = K::Problem::ConvOp;
  typename Op::Arguments args{};
  args.problem_shape = ps;
  args.mainloop.ptr_A = static_cast<const typename Op::ElementA*>(a);
  args.mainloop.ptr_B = static_cast<const typename Op::ElementB*>(b);
  args.epilogue.thread.alpha = 1.0f;
  args.epilogue.thread.beta = 0.0f;
  args.epilogue.ptr_D = static_cast<Out*>(out);
  StrideD d{};
  if constexpr (kOp == Operator::kWgrad) {
    // the filter gradient (K, R*S*C) packed
    d = cutlass::make_cute_packed_stride(StrideD{}, ps.shape_C, ps.stride_C, kOp);
  } else {
    // the result's positions (W, H, N innermost first) with the channels contiguous
    cute::for_each(cute::make_seq<cute::rank<0>(StrideD{})>{},
                   [&](auto i) { cute::get<0, i>(d) = ps.stride_C[K::Problem::RankT - 2 - i]; });
  }
  args.epilogue.dD = d;
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  args.hw_info.device_id = device;
  args.hw_info.sm_count = multiprocessors();
  return args;
}

template <typename K>
bool can_run(const NhwcConv& c) {
  const auto ps = problem<K::Problem::ConvOp>(c);
  if (!extents_match(ps, c)) return false;
  return K::Op::can_implement(arguments<K>(ps, nullptr, nullptr, nullptr)) ==
         cutlass::Status::kSuccess;
}

template <typename K>
size_t workspace(const NhwcConv& c) {
  const auto ps = problem<K::Problem::ConvOp>(c);
  return K::Op::get_workspace_size(arguments<K>(ps, nullptr, nullptr, nullptr));
}

// nullptr when the kernel ran; CUTLASS's status when it could not be set up (initialize: the
// kernel's shared-memory attribute and its workspace), before anything was launched. A launch
// that fails throws. (The TMA descriptors are encoded in initialize too, but CUTLASS only
// asserts their result: covers() keeps out what the encoder refuses, kMaxIm2colStride.)
template <typename K>
const char* run(const NhwcConv& c, const void* a, const void* b, void* out, Workspace ws,
                cudaStream_t stream) {
  const auto ps = problem<K::Problem::ConvOp>(c);
  const auto args = arguments<K>(ps, a, b, out);
  if (K::Op::get_workspace_size(args) > ws.bytes) {
    throw InvalidArgument("tensor-op conv: the Hopper core's workspace is short");
  }
  typename K::Op op;
  cutlass::Status st = op.initialize(args, ws.ptr, stream);
  if (st != cutlass::Status::kSuccess) return cutlass::cutlassGetStatusString(st);
  st = op.run(stream);
  if (st != cutlass::Status::kSuccess) {
    throw CudaError(std::string("fastconv CUDA error in the tensor-op convolution (CUTLASS "
                                "sm_90 kernel): ") +
                    cutlass::cutlassGetStatusString(st));
  }
  return nullptr;
}

template <typename T, typename Out, Operator kOp, int kN>
bool Entry<T, Out, kOp, kN>::can_run(const NhwcConv& c) {
  return detail::can_run<Kernel<T, Out, kOp, kN>>(c);
}

template <typename T, typename Out, Operator kOp, int kN>
size_t Entry<T, Out, kOp, kN>::workspace(const NhwcConv& c) {
  return detail::workspace<Kernel<T, Out, kOp, kN>>(c);
}

template <typename T, typename Out, Operator kOp, int kN>
const char* Entry<T, Out, kOp, kN>::run(const NhwcConv& c, const void* a, const void* b,
                                        void* out, Workspace ws, cudaStream_t stream) {
  return detail::run<Kernel<T, Out, kOp, kN>>(c, a, b, out, ws, stream);
}

}  // namespace detail
}  // namespace fastconv::cuda::sm90

// Every kernel with_kernel (tensor_op_sm90.cuh) can pick for dtype D, and the dispatch:
// explicitly instantiated, once per dtype, by its translation unit.
#define FASTCONV_SM90_INSTANTIATE(D)                                                     \
  namespace fastconv::cuda::sm90 {                                                        \
  namespace detail {                                                                      \
  using T##D = Element<DType::D>::type;                                                   \
  template struct Entry<T##D, T##D, Operator::kFprop, 128>;                               \
  template struct Entry<T##D, float, Operator::kFprop, 128>;                              \
  template struct Entry<T##D, T##D, Operator::kFprop, 64>;                                \
  template struct Entry<T##D, float, Operator::kFprop, 64>;                               \
  template struct Entry<T##D, T##D, Operator::kDgrad, 128>;                               \
  template struct Entry<T##D, float, Operator::kDgrad, 128>;                              \
  template struct Entry<T##D, T##D, Operator::kDgrad, 64>;                                \
  template struct Entry<T##D, float, Operator::kDgrad, 64>;                               \
  template struct Entry<T##D, float, Operator::kWgrad>;                                   \
  }                                                                                       \
  template struct Core<DType::D>;                                                         \
  }
