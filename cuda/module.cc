// pybind11 glue of fastconv._cuda: device queries and the GPU kernels' entry points. Python
// (fastconv/backends/cuda.py) passes device pointers, shapes, the device index and the stream as
// ints; geometry is validated here by the CPU module's own csrc/common/geometry.cc, and the
// enums are parsed by csrc/common/types.cc.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "conv_kernels.h"
#include "cuda_check.h"
#include "device_query.h"
#include "tensor_op_conv.h"
#include "fastconv/geometry.h"
#include "fastconv/status.h"
#include "fastconv/types.h"
#include "bindings/without_gil.h"

namespace py = pybind11;
using fastconv::ConvGeometry;
using fastconv::WindowParams;
using Shape = std::vector<int64_t>;

namespace fastconv::cuda {
namespace {

GemmMath parse_math(const std::string& s) {
  if (s == "simt") return GemmMath::kSimt;
  if (s == "tensor_core") return GemmMath::kTensorCore;
  throw InvalidArgument("math must be 'simt' or 'tensor_core', got '" + s + "'");
}

template <typename T = void>
T* ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

void check_conv_algo(const std::string& algo) {
  if (algo != "implicit_gemm" && algo != "depthwise") {
    throw Unsupported("algorithm '" + algo + "' has no CUDA kernel (available: implicit_gemm, "
                      "depthwise)");
  }
}

Workspace workspace(uintptr_t p, uint64_t bytes) { return {ptr(p), static_cast<size_t>(bytes)}; }

ConvMode parse_mode(const std::string& mode) {
  if (mode == "cross") return ConvMode::kCross;
  if (mode == "conv") return ConvMode::kConv;
  throw InvalidArgument("mode must be 'cross' or 'conv', got '" + mode + "'");
}

// One pass of the convolution a problem runs, from the strings and shapes the Python layer
// passes (python/fastconv/backends/cuda.py passes the problem's conv_geometry: a transposed
// conv arrives as its conv pass, operands in that pass's order, its high padding possibly
// negative).
struct ConvCall {
  ConvPass pass;
  DType dtype;
  ConvParams params;
};

ConvCall conv_call(const std::string& pass, const std::string& dtype, const Shape& x_shape,
                   const Shape& w_shape, const Shape& stride, const Shape& pad_lo,
                   const Shape& pad_hi, const Shape& dilation, int64_t groups,
                   const std::string& mode) {
  const ConvGeometry g = make_conv_geometry(x_shape, w_shape, {stride, pad_lo, pad_hi, dilation},
                                            groups, parse_mode(mode), true);
  return {parse_conv_pass(pass), parse_dtype(dtype), make_conv_params(g)};
}

// Runs one conv pass with the chosen algorithm. Operands and result channel-first, or in the
// channels-last order the flags say (implicit_gemm's tensor-op path, depthwise's channels-last
// kernels: conv_takes_order).
void conv(const std::string& pass, const std::string& algo, const std::string& math,
          const std::string& dtype, int device, uintptr_t stream, const Shape& x_shape,
          const Shape& w_shape, const Shape& stride, const Shape& pad_lo, const Shape& pad_hi,
          const Shape& dilation, int64_t groups, const std::string& mode, uintptr_t a, uintptr_t b,
          uintptr_t bias, uintptr_t out, uintptr_t ws, uint64_t ws_bytes, bool a_channels_last,
          bool b_channels_last, bool out_channels_last) {
  const ConvCall c =
      conv_call(pass, dtype, x_shape, w_shape, stride, pad_lo, pad_hi, dilation, groups, mode);
  const GemmMath m = parse_math(math);
  check_conv_algo(algo);
  const OperandOrder order{a_channels_last, b_channels_last, out_channels_last};
  bindings::without_gil([&] {
    DeviceGuard guard(device, "conv");
    if (algo == "implicit_gemm") {
      implicit_gemm_conv(c.pass, c.dtype, c.params, ptr(a), ptr(b), ptr(bias), ptr(out), m,
                         workspace(ws, ws_bytes), as_stream(stream), order);
    } else {
      depthwise_conv(c.pass, c.dtype, c.params, ptr(a), ptr(b), ptr(bias), ptr(out),
                     workspace(ws, ws_bytes), as_stream(stream), order);
    }
  });
}

// The workspace bytes `conv` can use for this pass on this device (0: none; any less works,
// slower).
uint64_t conv_workspace(const std::string& pass, const std::string& algo,
                        const std::string& math, const std::string& dtype, int device,
                        const Shape& x_shape,
                        const Shape& w_shape, const Shape& stride, const Shape& pad_lo,
                        const Shape& pad_hi, const Shape& dilation, int64_t groups,
                        const std::string& mode) {
  check_conv_algo(algo);
  const ConvCall c =
      conv_call(pass, dtype, x_shape, w_shape, stride, pad_lo, pad_hi, dilation, groups, mode);
  DeviceGuard guard(device, "conv_workspace");
  if (algo == "depthwise") return depthwise_workspace(c.pass, c.dtype, c.params);
  return implicit_gemm_workspace(c.pass, c.dtype, c.params, parse_math(math));
}

// Whether `conv` takes the operands and writes the result of this pass in this order (the
// channels-last flags; all false: true): implicit_gemm on its tensor-op path
// (cuda/tensor_op_conv.h), depthwise with its channels-last kernels.
bool conv_takes_order(const std::string& pass, const std::string& algo, const std::string& math,
                      const std::string& dtype, const Shape& x_shape, const Shape& w_shape,
                      const Shape& stride, const Shape& pad_lo, const Shape& pad_hi,
                      const Shape& dilation, int64_t groups, const std::string& mode,
                      bool a_channels_last, bool b_channels_last, bool out_channels_last) {
  check_conv_algo(algo);
  const ConvCall c =
      conv_call(pass, dtype, x_shape, w_shape, stride, pad_lo, pad_hi, dilation, groups, mode);
  const OperandOrder order{a_channels_last, b_channels_last, out_channels_last};
  if (algo == "depthwise") return depthwise_takes_order(c.pass, c.dtype, c.params, order);
  return implicit_gemm_takes_order(c.pass, c.dtype, c.params, parse_math(math), order);
}

// The tensor-op core kernels that run this pass on `device` ("" when the layer does not take
// the path): explain()'s note, which names the Hopper kernels where a 9.0 device runs them.
std::string conv_tensor_op_kernel(const std::string& pass, const std::string& algo,
                                  const std::string& math, const std::string& dtype, int device,
                                  const Shape& x_shape, const Shape& w_shape, const Shape& stride,
                                  const Shape& pad_lo, const Shape& pad_hi, const Shape& dilation,
                                  int64_t groups, const std::string& mode) {
  check_conv_algo(algo);
  if (algo != "implicit_gemm") return "";
  const ConvCall c =
      conv_call(pass, dtype, x_shape, w_shape, stride, pad_lo, pad_hi, dilation, groups, mode);
  if (!implicit_gemm_tensor_op(c.pass, c.dtype, c.params, parse_math(math))) return "";
  DeviceGuard guard(device, "conv_tensor_op_kernel");
  return tensor_op_kernel(c.pass, c.dtype, c.params);
}

void bias_grad(const std::string& dtype, int device, uintptr_t stream, const Shape& grad_y_shape,
               uintptr_t grad_y, uintptr_t out) {
  if (grad_y_shape.size() < 3) throw InvalidArgument("grad_y must have 3 to 5 dims");
  const int64_t spatial = checked_product(Shape(grad_y_shape.begin() + 2, grad_y_shape.end()),
                                          "grad_y shape");
  const DType dt = parse_dtype(dtype);
  bindings::without_gil([&] {
    DeviceGuard guard(device, "conv_backward_bias");
    conv_bias_grad(dt, grad_y_shape[0], grad_y_shape[1], spatial, ptr(grad_y), ptr(out),
                   as_stream(stream));
  });
}

PoolArgs pool_args(const std::string& kind, bool count_include_pad, double p) {
  const PoolKind k = parse_pool_kind(kind);
  if (k == PoolKind::kUnpool) throw InvalidArgument("max_unpool has its own entry point");
  return {k, count_include_pad, p};
}

// One pooling pass (python/fastconv/backends/cuda.py passes the problem's pool_geometry):
// forward a = x, out = y, indices = the argmax output (max) or 0; backward a = grad_y, b = x,
// out = grad_x.
void pool(const std::string& kind, const std::string& pass, const std::string& dtype, int device,
          uintptr_t stream, const Shape& x_shape, const Shape& kernel, const Shape& stride,
          const Shape& pad_lo, const Shape& pad_hi, const Shape& dilation, bool ceil_mode,
          bool count_include_pad, double p, uintptr_t a, uintptr_t b, uintptr_t indices,
          uintptr_t out, uintptr_t ws, uint64_t ws_bytes) {
  const PoolGeometry g = canonical_pool_geometry(
      make_pool_geometry(x_shape, kernel, {stride, pad_lo, pad_hi, dilation}, ceil_mode));
  const PoolArgs args = pool_args(kind, count_include_pad, p);
  const PoolPass ps = parse_pool_pass(pass);
  const DType dt = parse_dtype(dtype);
  bindings::without_gil([&] {
    DeviceGuard guard(device, "pool");
    if (ps == PoolPass::kForward)
      pool_forward(dt, g, args, ptr(a), ptr(out), ptr<int64_t>(indices), as_stream(stream));
    else
      pool_backward(dt, g, args, ptr(a), ptr(b), ptr(out), workspace(ws, ws_bytes),
                    as_stream(stream));
  });
}

// The workspace bytes a pooling pass needs (backward of max and Lp; 0 otherwise).
uint64_t pool_workspace(const std::string& kind, const std::string& pass, const std::string& dtype,
                        const Shape& x_shape, const Shape& kernel, const Shape& stride,
                        const Shape& pad_lo, const Shape& pad_hi, const Shape& dilation,
                        bool ceil_mode) {
  const PoolGeometry g = canonical_pool_geometry(
      make_pool_geometry(x_shape, kernel, {stride, pad_lo, pad_hi, dilation}, ceil_mode));
  if (parse_pool_pass(pass) == PoolPass::kForward) return 0;
  return pool_backward_workspace(parse_dtype(dtype), g, pool_args(kind, false, 2.0));
}

// An earlier max_unpool call on `device` met an index outside its plane: raise it.
void raise_unpool_error(int device) {
  UnpoolError e{};
  if (!take_unpool_error(device, &e)) return;
  throw InvalidArgument(
      bad_index_message(e.index, e.out_count, "the output plane size") +
      " in an earlier max_unpool call on cuda:" + std::to_string(device) +
      "; its out-of-range entries were skipped (the GPU checks indices without synchronising, "
      "so the error is raised by the next max_unpool call on the device or by "
      "fastconv.check_gpu_errors())");
}

void unpool(const std::string& dtype, int device, uintptr_t stream, int64_t planes,
            int64_t in_count, int64_t out_count, uintptr_t x, uintptr_t indices, uintptr_t y,
            uintptr_t ws, uint64_t ws_bytes) {
  const DType dt = parse_dtype(dtype);
  bindings::without_gil([&] {
    raise_unpool_error(device);
    DeviceGuard guard(device, "max_unpool");
    max_unpool(dt, planes, in_count, out_count, ptr(x), ptr<int64_t>(indices), ptr(y),
               workspace(ws, ws_bytes), as_stream(stream));
  });
}

// fastconv.check_gpu_errors(): for the devices where max_unpool ran (no other device is
// touched, no context created), optionally waits for the device, then raises its report.
void check_errors(bool synchronize) {
  bindings::without_gil([&] {
    for (int device : unpool_report_devices()) {
      if (synchronize) {
        DeviceGuard guard(device, "check_gpu_errors");
        check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
      }
      raise_unpool_error(device);
    }
  });
}

}  // namespace

#ifdef FASTCONV_WITH_JAX_FFI
void bind_jax_ffi(py::module_& m);  // jax_ffi.cc: fastconv.jax's CUDA handlers as capsules
#endif

}  // namespace fastconv::cuda

PYBIND11_MODULE(_cuda, m) {
  namespace fc = fastconv::cuda;
  m.doc() = "fastconv CUDA kernels. Use the fastconv package (its CUDA backend), not this module.";
  py::register_exception<fastconv::Unsupported>(m, "UnsupportedError", PyExc_NotImplementedError);
  py::register_exception<fc::CudaError>(m, "CudaError", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fastconv::InvalidType& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });

#ifdef FASTCONV_CUDA_ARCHITECTURES
  m.attr("architectures") = FASTCONV_CUDA_ARCHITECTURES;  // what this build has SASS / PTX for
#else
  m.attr("architectures") = "unknown";
#endif
  m.attr("tensor_op_core") = fc::nhwc_core_name();  // the tensor-op path's kernels, or ""
  m.def("runtime_version", &fc::runtime_version);
  m.def("devices", [] {
    std::string error;
    py::list out;
    for (const auto& d : fc::query_devices(&error)) {
      py::dict e;
      e["index"] = d.index;
      e["name"] = d.name;
      e["capability"] = py::make_tuple(d.major, d.minor);
      e["total_memory"] = d.total_memory;
      e["multiprocessors"] = d.multiprocessors;
      out.append(e);
    }
    return py::make_tuple(out, error);
  });

  m.def("conv", &fc::conv, py::arg("pass_"), py::arg("algo"), py::arg("math"), py::arg("dtype"),
        py::arg("device"), py::arg("stream"), py::arg("x_shape"), py::arg("w_shape"),
        py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"), py::arg("dilation"),
        py::arg("groups"), py::arg("mode"), py::arg("a"), py::arg("b"), py::arg("bias"),
        py::arg("out"), py::arg("workspace") = 0, py::arg("workspace_bytes") = 0,
        py::arg("a_channels_last") = false, py::arg("b_channels_last") = false,
        py::arg("out_channels_last") = false);
  m.def("conv_workspace", &fc::conv_workspace, py::arg("pass_"), py::arg("algo"),
        py::arg("math"), py::arg("dtype"), py::arg("device"), py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"),
        py::arg("dilation"), py::arg("groups"), py::arg("mode"));
  m.def("conv_takes_order", &fc::conv_takes_order, py::arg("pass_"), py::arg("algo"),
        py::arg("math"), py::arg("dtype"), py::arg("x_shape"), py::arg("w_shape"),
        py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"), py::arg("dilation"),
        py::arg("groups"), py::arg("mode"), py::arg("a_channels_last") = false,
        py::arg("b_channels_last") = false, py::arg("out_channels_last") = false);
  m.def("conv_tensor_op_kernel", &fc::conv_tensor_op_kernel, py::arg("pass_"), py::arg("algo"),
        py::arg("math"), py::arg("dtype"), py::arg("device"), py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"),
        py::arg("dilation"), py::arg("groups"), py::arg("mode"));
  m.def("conv_backward_bias", &fc::bias_grad, py::arg("dtype"), py::arg("device"),
        py::arg("stream"), py::arg("grad_y_shape"), py::arg("grad_y"), py::arg("out"));
  m.def("pool", &fc::pool, py::arg("kind"), py::arg("pass_"), py::arg("dtype"), py::arg("device"),
        py::arg("stream"), py::arg("x_shape"), py::arg("kernel"), py::arg("stride"),
        py::arg("pad_lo"), py::arg("pad_hi"), py::arg("dilation"), py::arg("ceil_mode"),
        py::arg("count_include_pad"), py::arg("p"), py::arg("a"), py::arg("b"),
        py::arg("indices"), py::arg("out"), py::arg("workspace") = 0,
        py::arg("workspace_bytes") = 0);
  m.def("pool_workspace", &fc::pool_workspace, py::arg("kind"), py::arg("pass_"),
        py::arg("dtype"), py::arg("x_shape"), py::arg("kernel"), py::arg("stride"),
        py::arg("pad_lo"), py::arg("pad_hi"), py::arg("dilation"), py::arg("ceil_mode"));
  m.def("max_unpool", &fc::unpool, py::arg("dtype"), py::arg("device"), py::arg("stream"),
        py::arg("planes"), py::arg("in_count"), py::arg("out_count"), py::arg("x"),
        py::arg("indices"), py::arg("y"), py::arg("workspace") = 0,
        py::arg("workspace_bytes") = 0);
  m.def("max_unpool_workspace", &fc::max_unpool_workspace, py::arg("planes"),
        py::arg("out_count"));
  m.def("check_errors", &fc::check_errors, py::arg("synchronize") = true);
#ifdef FASTCONV_WITH_JAX_FFI
  fc::bind_jax_ffi(m);
#endif
#ifdef FASTCONV_HOST_EMULATION
  // Tests of the emulated module plant a pending CUDA error before a call (host_emulation.h).
  m.def("_set_pending_error", [](bool sticky) {
    fc::emulation::set_pending_error(cudaErrorInvalidValue, sticky);
  });
  m.def("_clear_pending_error", [] { fc::emulation::set_pending_error(cudaSuccess, false); });
#endif
}
