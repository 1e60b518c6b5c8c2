// fastconv_cuda_emulation: the GPU launchers and kernels of cuda/*.cu compiled for the host
// (see host_emulation.h), callable from Python on float64 NumPy arrays so
// tests/test_cuda_emulation.py can check their index math, tiling, split reductions and dtype
// handling without a GPU.
// Built by build.sh; not part of the installed package.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <vector>

#include "conv_kernels.h"
#include "dtype.cuh"
#include "launch.cuh"
#include "tensor_op_conv.h"
#include "tensor_op_sm90.h"
#include "fastconv/geometry.h"
#include "fastconv/status.h"
#include "fastconv/types.h"

namespace py = pybind11;
using Shape = std::vector<int64_t>;
using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
namespace fc = fastconv::cuda;

namespace {

using fastconv::parse_dtype;

size_t itemsize(fastconv::DType t) {
  return t == fastconv::DType::kFloat64 ? 8 : t == fastconv::DType::kFloat32 ? 4 : 2;
}

// A device-side buffer of `count` elements of dtype t (host memory here).
struct Buffer {
  fastconv::DType t;
  std::vector<unsigned char> bytes;
  Buffer(fastconv::DType t_, size_t count) : t(t_), bytes(count * itemsize(t_)) {}
  void* data() { return bytes.empty() ? nullptr : bytes.data(); }
  size_t count() const { return bytes.size() / itemsize(t); }
  void set(size_t i, double v) {
    switch (t) {
      case fastconv::DType::kFloat32: reinterpret_cast<float*>(bytes.data())[i] = float(v); break;
      case fastconv::DType::kFloat64: reinterpret_cast<double*>(bytes.data())[i] = v; break;
      case fastconv::DType::kFloat16:
        reinterpret_cast<__half*>(bytes.data())[i] = __float2half_rn(float(v));
        break;
      case fastconv::DType::kBFloat16:
        reinterpret_cast<__nv_bfloat16*>(bytes.data())[i] = __float2bfloat16_rn(float(v));
        break;
    }
  }
  double get(size_t i) const {
    switch (t) {
      case fastconv::DType::kFloat32: return reinterpret_cast<const float*>(bytes.data())[i];
      case fastconv::DType::kFloat64: return reinterpret_cast<const double*>(bytes.data())[i];
      case fastconv::DType::kFloat16: return __half2float(reinterpret_cast<const __half*>(bytes.data())[i]);
      default: return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(bytes.data())[i]);
    }
  }
};

Buffer to_buffer(fastconv::DType t, const Array& a) {
  Buffer b(t, a.size());
  for (py::ssize_t i = 0; i < a.size(); ++i) b.set(i, a.data()[i]);
  return b;
}

Buffer poisoned(fastconv::DType t, size_t count) {  // NaN: every output must be written
  Buffer b(t, count);
  for (size_t i = 0; i < count; ++i) b.set(i, std::numeric_limits<double>::quiet_NaN());
  return b;
}

// A workspace of `bytes` poisoned bytes: kernels must write what they read back.
struct Scratch {
  std::vector<unsigned char> bytes;
  explicit Scratch(size_t n) : bytes(n, 0x7f) {}
  fc::Workspace get() { return {bytes.empty() ? nullptr : bytes.data(), bytes.size()}; }
};

Array to_array(const Buffer& b, const Shape& shape) {
  Array out(std::vector<py::ssize_t>(shape.begin(), shape.end()));
  for (size_t i = 0; i < b.count(); ++i) out.mutable_data()[i] = b.get(i);
  return out;
}

Array conv(const std::string& pass, const std::string& algo, const std::string& math,
           const std::string& dtype, const Shape& x_shape, const Shape& w_shape,
           const Shape& stride, const Shape& pad_lo, const Shape& pad_hi, const Shape& dilation,
           int64_t groups, const std::string& mode, const Array& a, const Array& b,
           py::object bias, int64_t workspace_bytes) {
  const auto g = fastconv::make_conv_geometry(
      x_shape, w_shape, {stride, pad_lo, pad_hi, dilation}, groups,
      mode == "conv" ? fastconv::ConvMode::kConv : fastconv::ConvMode::kCross, true);
  const fastconv::DType t = parse_dtype(dtype);
  const fastconv::ConvPass ps = fastconv::parse_conv_pass(pass);
  const Shape out_shape = ps == fastconv::ConvPass::kForward        ? g.output_shape()
                          : ps == fastconv::ConvPass::kBackwardData ? g.input_shape()
                                                              : g.weight_shape();
  Buffer ba = to_buffer(t, a), bb = to_buffer(t, b);
  Buffer bbias(t, 0);
  if (!bias.is_none()) bbias = to_buffer(t, bias.cast<Array>());
  Buffer out = poisoned(t, fastconv::checked_product(out_shape, "out"));
  const auto p = fc::make_conv_params(g);
  if (algo == "depthwise") {  // workspace_bytes < 0: the size the launcher asks for
    Scratch ws(workspace_bytes < 0 ? fc::depthwise_workspace(ps, t, p)
                                   : static_cast<size_t>(workspace_bytes));
    fc::depthwise_conv(ps, t, p, ba.data(), bb.data(), bbias.data(), out.data(), ws.get(),
                       nullptr);
  } else {
    const auto m = math == "tensor_core" ? fc::GemmMath::kTensorCore : fc::GemmMath::kSimt;
    Scratch ws(workspace_bytes < 0 ? fc::implicit_gemm_workspace(ps, t, p, m)
                                   : static_cast<size_t>(workspace_bytes));
    fc::implicit_gemm_conv(ps, t, p, ba.data(), bb.data(), bbias.data(), out.data(), m, ws.get(),
                           nullptr);
  }
  return to_array(out, out_shape);
}

Array bias_grad(const std::string& dtype, const Shape& gy_shape, const Array& gy) {
  const fastconv::DType t = parse_dtype(dtype);
  int64_t spatial = 1;
  for (size_t i = 2; i < gy_shape.size(); ++i) spatial *= gy_shape[i];
  Buffer bg = to_buffer(t, gy);
  Buffer out = poisoned(t, gy_shape[1]);
  fc::conv_bias_grad(t, gy_shape[0], gy_shape[1], spatial, bg.data(), out.data(), nullptr);
  return to_array(out, {gy_shape[1]});
}

fc::PoolArgs pool_args(const std::string& kind, bool cip, double p) {
  return {fastconv::parse_pool_kind(kind), cip, p};
}

py::tuple pool_forward(const std::string& kind, const std::string& dtype, const Shape& x_shape,
                       const Shape& kernel, const Shape& stride, const Shape& lo, const Shape& hi,
                       const Shape& dil, bool ceil_mode, bool cip, double p, const Array& x) {
  const auto g = fastconv::make_pool_geometry(x_shape, kernel, {stride, lo, hi, dil}, ceil_mode);
  const fastconv::DType t = parse_dtype(dtype);
  Buffer bx = to_buffer(t, x);
  const Shape out_shape = g.output_shape();
  const int64_t count = fastconv::checked_product(out_shape, "out");
  Buffer y = poisoned(t, count);
  std::vector<int64_t> idx(count, -7);
  fc::pool_forward(t, g, pool_args(kind, cip, p), bx.data(), y.data(),
                   kind == "max_pool" ? idx.data() : nullptr, nullptr);
  py::array_t<int64_t> ia(std::vector<py::ssize_t>(out_shape.begin(), out_shape.end()));
  std::copy(idx.begin(), idx.end(), ia.mutable_data());
  return py::make_tuple(to_array(y, out_shape), ia);
}

Array pool_backward(const std::string& kind, const std::string& dtype, const Shape& x_shape,
                    const Shape& kernel, const Shape& stride, const Shape& lo, const Shape& hi,
                    const Shape& dil, bool ceil_mode, bool cip, double p, const Array& gy,
                    const Array& x) {
  const auto g = fastconv::make_pool_geometry(x_shape, kernel, {stride, lo, hi, dil}, ceil_mode);
  const fastconv::DType t = parse_dtype(dtype);
  Buffer bgy = to_buffer(t, gy), bx = to_buffer(t, x);
  Buffer gx = poisoned(t, fastconv::checked_product(x_shape, "x"));
  const fc::PoolArgs args = pool_args(kind, cip, p);
  Scratch ws(fc::pool_backward_workspace(t, g, args));
  fc::pool_backward(t, g, args, bgy.data(), bx.data(), gx.data(), ws.get(), nullptr);
  return to_array(gx, x_shape);
}

Array max_unpool(const std::string& dtype, const Shape& out_shape, const Array& x,
                 const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& idx) {
  const fastconv::DType t = parse_dtype(dtype);
  const int64_t planes = out_shape[0] * out_shape[1];
  const int64_t out_count =
      fastconv::checked_product(out_shape, "out") / std::max<int64_t>(planes, 1);
  const int64_t in_count = x.size() / std::max<int64_t>(planes, 1);
  Buffer bx = to_buffer(t, x);
  Buffer y = poisoned(t, planes * out_count);
  Scratch ws(fc::max_unpool_workspace(planes, out_count));
  fc::max_unpool(t, planes, in_count, out_count, bx.data(), idx.data(), y.data(), ws.get(),
                 nullptr);
  return to_array(y, out_shape);
}

// A binding of fn(pass, dtype, params) for the layer given as the conv geometry's parts: what a
// launcher would choose for it (workspace bytes, which kernel runs).
template <typename F>
auto on_geometry(F fn) {
  return [fn](const std::string& pass, const std::string& dtype, const Shape& x_shape,
              const Shape& w_shape, const Shape& stride, const Shape& lo, const Shape& hi,
              const Shape& dil, int64_t groups) {
    const auto g = fastconv::make_conv_geometry(x_shape, w_shape, {stride, lo, hi, dil}, groups,
                                                fastconv::ConvMode::kCross, true);
    return fn(fastconv::parse_conv_pass(pass), parse_dtype(dtype), fc::make_conv_params(g));
  };
}

}  // namespace

PYBIND11_MODULE(fastconv_cuda_emulation, m) {
  m.def("conv", &conv, py::arg("pass_"), py::arg("algo"), py::arg("math"), py::arg("dtype"),
        py::arg("x_shape"), py::arg("w_shape"), py::arg("stride"), py::arg("pad_lo"),
        py::arg("pad_hi"), py::arg("dilation"), py::arg("groups"), py::arg("mode"), py::arg("a"),
        py::arg("b"), py::arg("bias"), py::arg("workspace_bytes") = -1);
  m.def("bias_grad", &bias_grad);
  m.def("pool_forward", &pool_forward);
  m.def("pool_backward", &pool_backward);
  m.def("max_unpool", &max_unpool);
  m.def("set_multiprocessors", [](int n) { fc::emulation::g_multiprocessors = n; });
  m.def("set_wide_indices", [](bool wide) { fc::emulation::g_wide_indices = wide; });
  // the WMMA / SIMT kernel's workspace, the tensor-op path's, and whether that path runs
  m.def("conv_workspace", on_geometry([](auto ps, auto t, const auto& p) {
          return fc::implicit_gemm_workspace(ps, t, p, fc::GemmMath::kSimt);
        }));
  m.def("tensor_op_workspace", on_geometry([](auto ps, auto t, const auto& p) {
          return fc::implicit_gemm_workspace(ps, t, p, fc::GemmMath::kTensorCore);
        }));
  m.def("tensor_op", on_geometry([](auto ps, auto t, const auto& p) {
          return fc::implicit_gemm_tensor_op(ps, t, p, fc::GemmMath::kTensorCore);
        }));
  // The Hopper core's view of a tensor-op layer (tensor_op_sm90.h; its kernels need a 9.0
  // GPU, its problem mapping does not): (covers, (in, window, pad, stride, dilation, out,
  // lower padding, upper padding) per spatial dimension H, W) with the split and tile
  // of the emulated device.
  m.def("hopper_problem", on_geometry([](auto ps, auto t, const auto& p) {
          const fc::NhwcConv c = fc::tensor_op_problem(ps, t, p);
          const fc::sm90::Padding pad = fc::sm90::padding_of(c);
          return py::make_tuple(
              fc::sm90::covers(ps, t, c),
              py::make_tuple(c.h, c.r, c.pad_h, c.stride_h, c.dil_h, c.p, pad.lower_h, pad.upper_h),
              py::make_tuple(c.w, c.s, c.pad_w, c.stride_w, c.dil_w, c.q, pad.lower_w,
                             pad.upper_w),
              c.splits, c.tile_n);
        }));
  m.def("depthwise_workspace", on_geometry(&fc::depthwise_workspace));
  m.def("depthwise_tiled", on_geometry(&fc::depthwise_tiled));
  // round_to_tf32 (cuda/dtype.cuh), for its test against NumPy.
  m.def("round_to_tf32", [](const std::vector<float>& v) {
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = fc::round_to_tf32(v[i]);
    return out;
  });
  // FastDiv (cuda/launch.cuh) on the host: quotients of n by d, for its exactness test.
  m.def("fast_div", [](uint32_t d, const std::vector<uint32_t>& n) {
    const fc::FastDiv f(d);
    std::vector<uint32_t> q(n.size());
    for (size_t i = 0; i < n.size(); ++i) q[i] = f.div(n[i]);
    return q;
  });
  // max_unpool's report of a bad index: (index, out_count), or None; reading clears it.
  m.def("take_unpool_error", []() -> py::object {
    fc::UnpoolError e{};
    if (!fc::take_unpool_error(0, &e)) return py::none();
    return py::make_tuple(e.index, e.out_count);
  });
}
