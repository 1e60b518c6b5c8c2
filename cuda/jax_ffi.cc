// XLA FFI handlers of fastconv.jax on CUDA devices (built into fastconv._cuda when jaxlib's
// headers are found): the same targets, signatures and attributes as the CPU handlers
// (csrc/bindings/jax_ffi.cc), decoded by the same code (csrc/bindings/jax_ffi_calls.cc), run by
// the GPU kernels' launchers (conv_kernels.h) on the stream XLA gives. Scratch memory comes from
// XLA's allocator (ffi::ScratchAllocator); nothing here synchronises or allocates on its own.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/jax_ffi_calls.h"
#include "conv_kernels.h"
#include "cuda_check.h"
#include "fastconv/problem.h"
#include "fastconv/status.h"

namespace py = pybind11;

namespace fastconv::cuda {
namespace {

namespace ffi = xla::ffi;
using jax_ffi::ConvCall;
using jax_ffi::Platform;
using jax_ffi::PoolCall;

// The kernel and math of the GPU's algorithm attribute, which fastconv/jax/_conv.py resolved
// with fastconv's CUDA selection and TF32 rule (backends/cuda.py kernel_math): "implicit_gemm"
// (tensor cores: float16 / bfloat16, TF32 for float32; float64 runs SIMT), "implicit_gemm_simt"
// (exact SIMT math) or "depthwise".
struct Kernel {
  bool depthwise;
  GemmMath math;
};

Kernel kernel_of(std::string_view gpu_algo, const ConvProblem& p) {
  if (gpu_algo == "implicit_gemm") return {false, GemmMath::kTensorCore};
  if (gpu_algo == "implicit_gemm_simt") return {false, GemmMath::kSimt};
  if (gpu_algo == "depthwise") {
    if (p.g.c / p.g.groups != 1) {
      throw Unsupported("algo='depthwise' needs one input channel per group of the conv that "
                        "runs (w.shape[1] == 1), got " + std::to_string(p.g.c / p.g.groups));
    }
    return {true, GemmMath::kSimt};
  }
  throw Unsupported("algorithm '" + std::string(gpu_algo) +
                    "' has no CUDA kernel (available: implicit_gemm, implicit_gemm_simt, "
                    "depthwise)");
}

// What a call gets from XLA's execution context: the stream, the device, scratch memory (null
// when refused). Under the host emulation (cuda/emulation/: tests without a GPU, the handlers
// called by XLA's CPU runtime, which has neither a stream nor a device allocator) the null
// stream and host memory stand in.
struct CallContext {
  cudaStream_t stream;
  int device;
  std::function<void*(size_t)> scratch;
};

void run_conv_call(const CallContext& ctx, const ConvCall& call, std::string_view gpu_algo) {
  if (call.items == 0) return;
  const ConvProblem p = make_conv_problem(call.args);
  jax_ffi::check_conv_operands(call, p);
  const Kernel kernel = kernel_of(gpu_algo, p);
  const ConvParams params = make_conv_params(p.g);
  DeviceGuard guard(ctx.device, "fastconv.jax conv");
  // The split reductions' slices and the tensor-op path's channels-last operands: optional,
  // so a refused allocation runs the WMMA / SIMT kernel without a split.
  Workspace ws;
  const size_t bytes = kernel.depthwise
                           ? depthwise_workspace(p.conv_pass, p.dtype, params)
                           : implicit_gemm_workspace(p.conv_pass, p.dtype, params, kernel.math);
  if (void* mem = bytes > 0 ? ctx.scratch(bytes) : nullptr) ws = {mem, bytes};
  for (int64_t i = 0; i < call.items; ++i) {
    const ConvCall::Pointers at = call.item(i);
    const void* a = p.swap_operands ? at.b : at.a;
    const void* b = p.swap_operands ? at.a : at.b;
    if (kernel.depthwise)
      depthwise_conv(p.conv_pass, p.dtype, params, a, b, at.bias, at.out, ws, ctx.stream);
    else
      implicit_gemm_conv(p.conv_pass, p.dtype, params, a, b, at.bias, at.out, kernel.math, ws,
                         ctx.stream);
  }
}

ffi::Error conv_call(const CallContext& ctx, const ffi::AnyBuffer& a, const ffi::AnyBuffer& b,
                     const std::optional<ffi::AnyBuffer>& bias, ffi::AnyBuffer& out,
                     const jax_ffi::ConvAttributes& at) {
  return jax_ffi::guarded(
      "fastconv " + std::string(at.op) + " " + std::string(at.pass) + " (CUDA)", [&] {
        run_conv_call(ctx, jax_ffi::decode_conv(Platform::kCuda, a, b, bias, out, at),
                      at.gpu_algo);
      });
}

void run_pool_call(const CallContext& ctx, const PoolCall& call) {
  if (call.items == 0) return;
  const PoolProblem& p = call.problem;
  const PoolArgs args{p.kind, p.count_include_pad, p.p};
  DeviceGuard guard(ctx.device, "fastconv.jax pool");
  for (int64_t i = 0; i < call.items; ++i) {
    const PoolCall::Pointers at = call.item(i);
    switch (p.pass) {
      case PoolPass::kForward:
        pool_forward(p.dtype, p.g, args, at.a, at.out, at.indices, ctx.stream);
        break;
      case PoolPass::kBackward:
        if (p.kind == PoolKind::kMax)
          max_pool_backward_indices(p.dtype, p.g, at.a, at.indices, at.out, ctx.stream);
        else  // average pooling's backward needs neither x nor a workspace
          pool_backward(p.dtype, p.g, args, at.a, nullptr, at.out, Workspace{}, ctx.stream);
        break;
      case PoolPass::kGather:
        max_pool_gather(p.dtype, p.g, at.a, at.indices, at.out, ctx.stream);
        break;
    }
  }
}

ffi::Error pool_call(const CallContext& ctx, const ffi::AnyBuffer& a,
                     const std::optional<ffi::AnyBuffer>& indices, ffi::AnyBuffer& out,
                     std::optional<ffi::Result<ffi::AnyBuffer>>& indices_out,
                     const jax_ffi::PoolAttributes& at) {
  return jax_ffi::guarded(
      "fastconv " + std::string(at.kind) + " " + std::string(at.pass) + " (CUDA)", [&] {
        run_pool_call(ctx, jax_ffi::decode_pool(Platform::kCuda, a, indices, out, indices_out,
                                                at));
      });
}

// ---- the handlers

#ifndef FASTCONV_HOST_EMULATION

ffi::Error conv_handler(cudaStream_t stream, int32_t device, ffi::ScratchAllocator scratch,
                        ffi::AnyBuffer a, ffi::AnyBuffer b, std::optional<ffi::AnyBuffer> bias,
                        ffi::Result<ffi::AnyBuffer> out, jax_ffi::ConvAttributes at) {
  const auto allocate = [&](size_t bytes) -> void* {
    const std::optional<void*> mem = scratch.Allocate(bytes, 256);
    return mem ? *mem : nullptr;
  };
  return conv_call({stream, device, allocate}, a, b, bias, *out, at);
}

ffi::Error pool_handler(cudaStream_t stream, int32_t device, ffi::AnyBuffer a,
                        std::optional<ffi::AnyBuffer> indices, ffi::Result<ffi::AnyBuffer> out,
                        std::optional<ffi::Result<ffi::AnyBuffer>> indices_out,
                        jax_ffi::PoolAttributes at) {
  return pool_call({stream, device, nullptr}, a, indices, *out, indices_out, at);
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastconv_conv_cuda_ffi, conv_handler,
                              jax_ffi::bind_conv(ffi::Ffi::Bind()
                                                     .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                                     .Ctx<ffi::DeviceOrdinal>()
                                                     .Ctx<ffi::ScratchAllocator>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(fastconv_pool_cuda_ffi, pool_handler,
                              jax_ffi::bind_pool(ffi::Ffi::Bind()
                                                     .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                                     .Ctx<ffi::DeviceOrdinal>()));

#else  // the host emulation: device 0, no stream, scratch on the host

ffi::Error conv_handler(ffi::AnyBuffer a, ffi::AnyBuffer b, std::optional<ffi::AnyBuffer> bias,
                        ffi::Result<ffi::AnyBuffer> out, jax_ffi::ConvAttributes at) {
  std::vector<char> host;
  const auto allocate = [&](size_t bytes) -> void* {
    host.resize(bytes);
    return host.data();
  };
  return conv_call({nullptr, 0, allocate}, a, b, bias, *out, at);
}

ffi::Error pool_handler(ffi::AnyBuffer a, std::optional<ffi::AnyBuffer> indices,
                        ffi::Result<ffi::AnyBuffer> out,
                        std::optional<ffi::Result<ffi::AnyBuffer>> indices_out,
                        jax_ffi::PoolAttributes at) {
  return pool_call({nullptr, 0, nullptr}, a, indices, *out, indices_out, at);
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastconv_conv_cuda_ffi, conv_handler,
                              jax_ffi::bind_conv(ffi::Ffi::Bind()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(fastconv_pool_cuda_ffi, pool_handler,
                              jax_ffi::bind_pool(ffi::Ffi::Bind()));

#endif

}  // namespace

// fastconv._cuda.jax_ffi_targets: the handlers as capsules under the CPU handlers' target names
// (fastconv/jax/_targets.py registers them for the CUDA platform), and the jaxlib they were
// built against.
void bind_jax_ffi(py::module_& m) {
  py::dict targets;
  targets["fastconv_conv"] = py::capsule(reinterpret_cast<void*>(&fastconv_conv_cuda_ffi));
  targets["fastconv_pool"] = py::capsule(reinterpret_cast<void*>(&fastconv_pool_cuda_ffi));
  m.attr("jax_ffi_targets") = targets;
  m.attr("jax_ffi_built_for") =
      py::make_tuple(FASTCONV_JAXLIB_VERSION, py::make_tuple(XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR));
}

}  // namespace fastconv::cuda
