// The tensor-op path's NHWC core on the GPU (tensor_op_conv.h): CUTLASS's implicit-GEMM
// convolution kernels for sm_80 (mma.sync tensor cores, cp.async 16-byte loads with zero-fill
// at the padding, a 4-stage shared-memory pipeline, 128x128 block tiles of four 64x64 warp
// tiles, offsets advanced incrementally by CUTLASS's "optimized" iterators; Config below).
// The same kernels are compiled for sm_90 too (its own SASS in the default architectures, or
// JIT from PTX); on a compute capability 9.0 device the problems the Hopper core covers run
// its wgmma / TMA kernels instead (tensor_op_sm90.h, built where the architectures include
// sm_90; FASTCONV_CUDA_SM90=0 keeps every problem here, to compare the two on one GPU).
// Built when cmake found CUTLASS's headers (FASTCONV_WITH_CUTLASS, from the nvidia-cutlass
// package); without them the core reports that it cannot run and every layer takes the WMMA
// implicit-GEMM kernel.
#include <string>

#include "cuda_check.h"
#include "tensor_op_conv.h"
#include "fastconv/status.h"

#ifdef FASTCONV_WITH_CUTLASS
#include <cutlass/bfloat16.h>
#include <cutlass/conv/conv2d_problem_size.h>
#include <cutlass/conv/device/implicit_gemm_convolution.h>
#include <cutlass/conv/kernel/default_conv2d_dgrad.h>
#include <cutlass/conv/kernel/default_conv2d_fprop.h>
#include <cutlass/conv/kernel/default_conv2d_wgrad.h>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/thread/linear_combination.h>
#include <cutlass/half.h>
#include <cutlass/tfloat32.h>
#include <cutlass/version.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>
#endif
#ifdef FASTCONV_WITH_CUTLASS_SM90
#include "tensor_op_sm90.h"
#endif

namespace fastconv::cuda {

#ifdef FASTCONV_WITH_CUTLASS
namespace {

namespace cc = cutlass::conv;
using Nhwc = cutlass::layout::TensorNHWC;
constexpr int kStages = 4;
using Swizzle = cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<4>;
using OutF32 = cutlass::epilogue::thread::LinearCombination<float, 4, float, float>;

// Per dtype: the element CUTLASS multiplies, the output element and epilogue of an unsplit
// forward / backward data (16-byte stores), and the tiles: 128x128 blocks of four 64x64 warp
// tiles, 32 deep with m16n8k16 tensor-core steps for the 2-byte types, 16 deep with m16n8k8
// for TF32 (float32 storage, rounded to TF32 by the move); 4 stages, 64 KiB of shared memory
// either way. kNarrow (2-byte types): 128x64 blocks of four 64x32 warp tiles, 48 KiB, for
// layers whose GEMM is at most 64 wide (tensor_op_conv.h's core_tile_n decides, and sizes the
// split with the same tile).
template <typename T, bool kNarrow = false>
struct Config {
  using Elem = T;
  using Out = T;
  using Epi = cutlass::epilogue::thread::LinearCombination<T, 8, float, float>;
  using Block = cutlass::gemm::GemmShape<128, kNarrow ? 64 : 128, 32>;
  using Warp = cutlass::gemm::GemmShape<64, kNarrow ? 32 : 64, 32>;
  using Mma = cutlass::gemm::GemmShape<16, 8, 16>;
};
template <>
struct Config<float, false> {
  using Elem = cutlass::tfloat32_t;
  using Out = float;
  using Epi = OutF32;
  using Block = cutlass::gemm::GemmShape<128, 128, 16>;
  using Warp = cutlass::gemm::GemmShape<64, 64, 16>;
  using Mma = cutlass::gemm::GemmShape<16, 8, 8>;
};
static_assert(Config<cutlass::half_t>::Block::kM == kCoreTileM &&
              Config<cutlass::half_t>::Block::kN == 128 &&
              Config<cutlass::half_t, true>::Block::kN == 64 &&
              Config<float>::Block::kM == kCoreTileM && Config<float>::Block::kN == 128);

// kF32: the output is float32 (a split reduction or a bias; always so for TF32).
template <typename T, bool kF32, bool kNarrow>
using OutOf = std::conditional_t<kF32, float, typename Config<T, kNarrow>::Out>;
template <typename T, bool kF32, bool kNarrow>
using EpiOf = std::conditional_t<kF32, OutF32, typename Config<T, kNarrow>::Epi>;

template <typename T, bool kF32, bool kNarrow>
using Fprop = typename cc::kernel::DefaultConv2dFprop<
    typename Config<T, kNarrow>::Elem, Nhwc, typename Config<T, kNarrow>::Elem, Nhwc,
    OutOf<T, kF32, kNarrow>, Nhwc, float, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
    typename Config<T, kNarrow>::Block, typename Config<T, kNarrow>::Warp,
    typename Config<T, kNarrow>::Mma, EpiOf<T, kF32, kNarrow>, Swizzle, kStages,
    cutlass::arch::OpMultiplyAdd, cc::IteratorAlgorithm::kOptimized>::Kernel;

template <typename T, bool kF32, bool kNarrow, cc::StrideSupport kStride, typename Sw>
using Dgrad = typename cc::kernel::DefaultConv2dDgrad<
    typename Config<T, kNarrow>::Elem, Nhwc, typename Config<T, kNarrow>::Elem, Nhwc,
    OutOf<T, kF32, kNarrow>, Nhwc, float, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
    typename Config<T, kNarrow>::Block, typename Config<T, kNarrow>::Warp,
    typename Config<T, kNarrow>::Mma, EpiOf<T, kF32, kNarrow>, Sw, kStages,
    cutlass::arch::OpMultiplyAdd, cc::IteratorAlgorithm::kOptimized, kStride>::Kernel;

template <typename T>
using Wgrad = typename cc::kernel::DefaultConv2dWgrad<
    typename Config<T>::Elem, Nhwc, typename Config<T>::Elem, Nhwc, float, Nhwc, float,
    cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80, typename Config<T>::Block,
    typename Config<T>::Warp, typename Config<T>::Mma, OutF32, Swizzle, kStages,
    cutlass::arch::OpMultiplyAdd, cc::IteratorAlgorithm::kOptimized>::Kernel;

template <typename Kernel>
using Op = cc::device::ImplicitGemmConvolution<Kernel>;

bool strided(const NhwcConv& c) { return c.stride_h > 1 || c.stride_w > 1; }

// c.splits slices (tensor_op_conv.cu chose them: core_splits) as CUTLASS's serial split-K: the
// slices add into the float32 output in slice order behind a per-tile semaphore, so the sum is
// the same every run.
cc::Conv2dProblemSize problem(const NhwcConv& c) {
  return cc::Conv2dProblemSize(c.n, c.h, c.w, c.c, c.k, c.r, c.s, c.p, c.q, c.pad_h, c.pad_w,
                               c.stride_h, c.stride_w, c.dil_h, c.dil_w,
                               cc::Mode::kCrossCorrelation, c.splits, 1);
}

// The Arguments of one pass: tensor A, B, C (= D) in the GEMM's operand order.
template <typename OpT>
typename OpT::Arguments arguments(const cc::Conv2dProblemSize& ps, const void* a, const void* b,
                                  void* out) {
  using EA = typename OpT::ElementA;
  using EB = typename OpT::ElementB;
  using EC = typename OpT::ElementC;
  constexpr cc::Operator kOp = OpT::kConvolutionalOperator;
  const auto x_ext = cc::implicit_gemm_tensor_a_extent(kOp, ps);
  const auto b_ext = cc::implicit_gemm_tensor_b_extent(kOp, ps);
  const auto c_ext = cc::implicit_gemm_tensor_c_extent(kOp, ps);
  cutlass::TensorRef<EA, Nhwc> ra(static_cast<EA*>(const_cast<void*>(a)), Nhwc::packed(x_ext));
  cutlass::TensorRef<EB, Nhwc> rb(static_cast<EB*>(const_cast<void*>(b)), Nhwc::packed(b_ext));
  cutlass::TensorRef<EC, Nhwc> rc(static_cast<EC*>(out), Nhwc::packed(c_ext));
  typename OpT::Arguments args(ps, ra, rb, rc, rc, {1.0f, 0.0f});
  args.split_k_mode = ps.split_k_slices > 1 ? cc::SplitKMode::kSerial : cc::SplitKMode::kNone;
  return args;
}

template <typename OpT>
bool can_run(const cc::Conv2dProblemSize& ps) {
  return OpT::can_implement(arguments<OpT>(ps, nullptr, nullptr, nullptr)) ==
         cutlass::Status::kSuccess;
}

template <typename OpT>
size_t workspace_of(const cc::Conv2dProblemSize& ps) {
  return OpT::get_workspace_size(arguments<OpT>(ps, nullptr, nullptr, nullptr));
}

template <typename OpT>
void run(const cc::Conv2dProblemSize& ps, const void* a, const void* b, void* out, Workspace ws,
         cudaStream_t stream, bool float_out) {
  // the kernel writes what tensor_op_conv.cu reads back: float32 exactly when c.float_out
  if (std::is_same_v<typename OpT::ElementC, float> != float_out) {
    throw CudaError("fastconv: tensor-op core picked a kernel whose output type is not the one "
                    "the layout expects (a bug in cuda/tensor_op_cutlass.cu's with_op)");
  }
  const auto args = arguments<OpT>(ps, a, b, out);
  if (workspace_of<OpT>(ps) > ws.bytes) {
    throw InvalidArgument("tensor-op conv: the core's workspace is short");
  }
  OpT op;
  cutlass::Status st = op.initialize(args, ws.ptr, stream);
  if (st == cutlass::Status::kSuccess) st = op.run(stream);
  if (st != cutlass::Status::kSuccess) {
    throw CudaError(std::string("fastconv CUDA error in the tensor-op convolution (CUTLASS): ") +
                    cutlass::cutlassGetStatusString(st));
  }
}

template <typename OpT>
struct Tag {
  using type = OpT;
};

// Calls f(Tag<OpT>{}) with the kernel of this pass, dtype and stride.
template <typename F>
auto with_op(ConvPass pass, DType dtype, const NhwcConv& c, F&& f) {
  // the forward / backward data kernel with this tile width
  auto with_width = [&](auto tag, auto narrow) {
    using T = decltype(tag);
    constexpr bool kNarrow = decltype(narrow)::value;
    const bool f32 = c.float_out(pass);
    if (pass == ConvPass::kForward) {
      if (f32) return f(Tag<Op<Fprop<T, true, kNarrow>>>{});
      return f(Tag<Op<Fprop<T, false, kNarrow>>>{});
    }
    if (strided(c)) {  // never split (core_splits)
      using Sw = cc::threadblock::StridedDgradIdentityThreadblockSwizzle<1>;
      if (f32) return f(Tag<Op<Dgrad<T, true, kNarrow, cc::StrideSupport::kStrided, Sw>>>{});
      return f(Tag<Op<Dgrad<T, false, kNarrow, cc::StrideSupport::kStrided, Sw>>>{});
    }
    if (f32) return f(Tag<Op<Dgrad<T, true, kNarrow, cc::StrideSupport::kUnity, Swizzle>>>{});
    return f(Tag<Op<Dgrad<T, false, kNarrow, cc::StrideSupport::kUnity, Swizzle>>>{});
  };
  auto per_type = [&](auto tag) {
    using T = decltype(tag);
    if (pass == ConvPass::kBackwardWeight) return f(Tag<Op<Wgrad<T>>>{});
    if constexpr (!std::is_same_v<T, float>) {
      if (c.tile_n == 64) return with_width(tag, std::true_type{});
    }
    return with_width(tag, std::false_type{});
  };
  if (dtype == DType::kFloat16) return per_type(cutlass::half_t{});
  if (dtype == DType::kBFloat16) return per_type(cutlass::bfloat16_t{});
  return per_type(float{});  // TF32
}

#ifdef FASTCONV_WITH_CUTLASS_SM90
// Whether the current device is compute capability 9.0 exactly (sm_90a code runs there and
// nowhere else), asked once per device; false when there is no device to ask.
bool device_is_sm90() {
  static std::mutex mu;
  static std::vector<int> cache;  // per device: 0 unknown, 1 yes, 2 no
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();  // not this call's error to keep
    return false;
  }
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(cache.size()) <= dev) cache.resize(dev + 1, 0);
  if (cache[dev] == 0) {
    int major = 0, minor = 0;
    const bool ok =
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess;
    if (!ok) cudaGetLastError();
    cache[dev] = ok && major == 9 && minor == 0 ? 1 : 2;
  }
  return cache[dev] == 1;
}

// FASTCONV_CUDA_SM90=0 turns the Hopper core off (read at every call, so one process can
// compare both cores).
bool hopper_enabled() {
  const char* v = std::getenv("FASTCONV_CUDA_SM90");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

// A device where the Hopper core could not set a kernel up (CUTLASS's initialize failed,
// nothing launched): that problem and every later one there run the sm_80 kernels, and
// explain() says why. Per device, set once; the message outlives the calls that read it.
constexpr int kMaxDevices = 64;
std::mutex g_hopper_off_mu;
std::string g_hopper_off[kMaxDevices];

const char* hopper_off_reason() {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) {
    cudaGetLastError();
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(g_hopper_off_mu);
  return g_hopper_off[dev].empty() ? nullptr : g_hopper_off[dev].c_str();
}
#endif

// Whether this problem runs on the Hopper core: built, enabled, a 9.0 device, a problem its
// kernels cover and CUTLASS's can_implement accepts. Every other problem runs the sm_80
// kernels above, which can run whatever the Hopper core can (tensor_op_eligible asks them).
bool hopper_takes(ConvPass pass, DType dtype, const NhwcConv& c) {
#ifdef FASTCONV_WITH_CUTLASS_SM90
  if (!sm90::covers(pass, dtype, c) || !hopper_enabled() || !device_is_sm90()) return false;
  if (hopper_off_reason() != nullptr) return false;
  return dtype == DType::kFloat16 ? sm90::Core<DType::kFloat16>::can_run(pass, c)
                                  : sm90::Core<DType::kBFloat16>::can_run(pass, c);
#else
  (void)pass, (void)dtype, (void)c;
  return false;
#endif
}

}  // namespace

#define FASTCONV_STR2(x) #x
#define FASTCONV_STR(x) FASTCONV_STR2(x)
#define FASTCONV_SM80_CORE \
  "CUTLASS " FASTCONV_STR(CUTLASS_MAJOR) "." FASTCONV_STR(CUTLASS_MINOR) "." FASTCONV_STR( \
      CUTLASS_PATCH) " sm_80 tensor-op implicit GEMM (mma.sync; float16/bfloat16/TF32, " \
                     "128x128 and 128x64 tiles, 4 stages)"
#define FASTCONV_SM90_CORE \
  "CUTLASS " FASTCONV_STR(CUTLASS_MAJOR) "." FASTCONV_STR(CUTLASS_MINOR) "." FASTCONV_STR( \
      CUTLASS_PATCH) " sm_90a tensor-op implicit GEMM (wgmma, TMA im2col loads, " \
                     "warp-specialized; float16/bfloat16, 128x128x64 and 128x64x64 tiles)"
#ifdef FASTCONV_WITH_CUTLASS_SM90
namespace {
void turn_hopper_off(const char* why) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) {
    cudaGetLastError();
    return;
  }
  std::lock_guard<std::mutex> lock(g_hopper_off_mu);
  if (g_hopper_off[dev].empty()) {
    g_hopper_off[dev] = std::string(FASTCONV_SM80_CORE) +
                        " (the Hopper core is off on this device: CUTLASS could not set its "
                        "kernel up: " + why + ")";
  }
}
}  // namespace
#endif

const char* nhwc_core_name() {
#ifdef FASTCONV_WITH_CUTLASS_SM90
  return FASTCONV_SM80_CORE "; on compute capability 9.0: " FASTCONV_SM90_CORE;
#else
  return FASTCONV_SM80_CORE;
#endif
}

bool nhwc_core_picks_hopper(ConvPass pass, DType dtype, const NhwcConv& c) {
  return hopper_takes(pass, dtype, c);
}

const char* nhwc_core_kernel(ConvPass pass, DType dtype, const NhwcConv& c) {
  if (c.hopper) return FASTCONV_SM90_CORE;
#ifdef FASTCONV_WITH_CUTLASS_SM90
  // a problem the Hopper core would have run, had it not been turned off on this device
  if (sm90::covers(pass, dtype, c) && hopper_enabled() && device_is_sm90()) {
    if (const char* off = hopper_off_reason()) return off;
  }
#endif
  return FASTCONV_SM80_CORE;
}

bool nhwc_core_can_run(ConvPass pass, DType dtype, const NhwcConv& c) {
  const auto ps = problem(c);
  return with_op(pass, dtype, c,
                 [&](auto tag) { return can_run<typename decltype(tag)::type>(ps); });
}

size_t nhwc_core_workspace(ConvPass pass, DType dtype, const NhwcConv& c) {
#ifdef FASTCONV_WITH_CUTLASS_SM90
  if (c.hopper) {
    return dtype == DType::kFloat16 ? sm90::Core<DType::kFloat16>::workspace(pass, c)
                                    : sm90::Core<DType::kBFloat16>::workspace(pass, c);
  }
#endif
  const auto ps = problem(c);
  return with_op(pass, dtype, c,
                 [&](auto tag) { return workspace_of<typename decltype(tag)::type>(ps); });
}

void nhwc_core_run(ConvPass pass, DType dtype, const NhwcConv& c, const void* a, const void* b,
                   void* out, Workspace ws, cudaStream_t stream) {
#ifdef FASTCONV_WITH_CUTLASS_SM90
  if (c.hopper) {
    const char* failed = dtype == DType::kFloat16
                             ? sm90::Core<DType::kFloat16>::run(pass, c, a, b, out, ws, stream)
                             : sm90::Core<DType::kBFloat16>::run(pass, c, a, b, out, ws, stream);
    if (failed == nullptr) return;
    turn_hopper_off(failed);  // and run the sm_80 kernels below
  }
#endif
  const auto ps = problem(c);
  with_op(pass, dtype, c, [&](auto tag) {
    // float32 layers (TF32) always write float32
    const bool float_out = c.float_out(pass) || dtype == DType::kFloat32;
    run<typename decltype(tag)::type>(ps, a, b, out, ws, stream, float_out);
  });
}

#else  // built without CUTLASS's headers: every layer takes the WMMA kernel

const char* nhwc_core_name() { return ""; }
bool nhwc_core_picks_hopper(ConvPass, DType, const NhwcConv&) { return false; }
const char* nhwc_core_kernel(ConvPass, DType, const NhwcConv&) { return ""; }
bool nhwc_core_can_run(ConvPass, DType, const NhwcConv&) { return false; }
size_t nhwc_core_workspace(ConvPass, DType, const NhwcConv&) { return 0; }
void nhwc_core_run(ConvPass, DType, const NhwcConv&, const void*, const void*, void*, Workspace,
                   cudaStream_t) {
  throw Unsupported("this fastconv._cuda was built without CUTLASS's headers: no tensor-op core");
}

#endif

}  // namespace fastconv::cuda
