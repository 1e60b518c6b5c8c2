// pybind11 bindings of fastconv._C: array checks, GIL release, exception mapping. The Python
// layer normalises arguments and allocates outputs; this layer sees contiguous arrays only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "fastconv/algorithm.h"
#include "fastconv/cpu_features.h"
#include "fastconv/geometry.h"
#include "fastconv/parallel.h"
#include "fastconv/status.h"

namespace py = pybind11;

namespace fastconv::bindings {
void bind_gemm(py::module_& m);  // gemm_bindings.cc: GEMM entry points for tests and benchmarks
void bind_fft(py::module_& m);   // fft_bindings.cc: the FFT itself, for tests
}
using fastconv::ConvGeometry;
using fastconv::DType;
using fastconv::PoolGeometry;
using fastconv::WindowParams;
using Shape = std::vector<int64_t>;

namespace {

DType dtype_of(const py::array& a, const char* name) {
  if (a.dtype().is(py::dtype::of<float>())) return DType::kFloat32;
  if (a.dtype().is(py::dtype::of<double>())) return DType::kFloat64;
  throw fastconv::InvalidType(std::string(name) + " must be float32 or float64, got " +
                              std::string(py::str(a.dtype())));
}

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

// Checks one array argument: C-contiguous, the expected dtype and shape, writeable if output.
const void* checked(const py::array& a, const char* name, DType t, const Shape& shape,
                    bool output = false) {
  if (dtype_of(a, name) != t) throw fastconv::InvalidType(std::string(name) + " has the wrong dtype");
  if (!(a.flags() & py::array::c_style)) {
    throw fastconv::InvalidArgument(std::string(name) + " must be C-contiguous");
  }
  if (shape_of(a) != shape) {
    throw fastconv::InvalidArgument(std::string(name) + " must have shape " +
                                    fastconv::format_dims(shape) + ", got " +
                                    fastconv::format_dims(shape_of(a)));
  }
  if (output && !a.writeable()) {
    throw fastconv::InvalidArgument(std::string(name) + " must be writeable");
  }
  return a.data();
}

void* checked_out(py::array& a, const char* name, DType t, const Shape& shape) {
  checked(a, name, t, shape, true);
  return a.mutable_data();
}

WindowParams window(const Shape& stride, const Shape& lo, const Shape& hi, const Shape& dil) {
  return WindowParams{stride, lo, hi, dil};
}

fastconv::ConvMode parse_mode(const std::string& mode) {
  if (mode == "cross") return fastconv::ConvMode::kCross;
  if (mode == "conv") return fastconv::ConvMode::kConv;
  throw fastconv::InvalidArgument("mode must be 'cross' or 'conv', got '" + mode + "'");
}

// ---- convolution

void conv_forward(py::array x, py::array w, py::object bias, py::array y, Shape stride, Shape lo,
                  Shape hi, Shape dil, int64_t groups, std::string mode, std::string algo) {
  const DType t = dtype_of(x, "x");
  const ConvGeometry g = fastconv::make_conv_geometry(shape_of(x), shape_of(w),
                                                      window(stride, lo, hi, dil), groups,
                                                      parse_mode(mode));
  const auto a = fastconv::parse_algorithm(algo);
  const void* px = checked(x, "x", t, g.input_shape());
  const void* pw = checked(w, "w", t, g.weight_shape());
  const void* pb = nullptr;
  py::array b;
  if (!bias.is_none()) {
    b = bias.cast<py::array>();
    pb = checked(b, "bias", t, {g.k});
  }
  void* py_ = checked_out(y, "y", t, g.output_shape());
  py::gil_scoped_release nogil;
  fastconv::conv_forward(g, a, t, px, pw, pb, py_);
}

void conv_backward_data(py::array grad_y, py::array w, py::array grad_x, Shape stride, Shape lo,
                        Shape hi, Shape dil, int64_t groups, std::string mode, std::string algo) {
  const DType t = dtype_of(grad_y, "grad_y");
  const ConvGeometry g = fastconv::make_conv_geometry(shape_of(grad_x), shape_of(w),
                                                      window(stride, lo, hi, dil), groups,
                                                      parse_mode(mode));
  const auto a = fastconv::parse_algorithm(algo);
  const void* pgy = checked(grad_y, "grad_y", t, g.output_shape());
  const void* pw = checked(w, "w", t, g.weight_shape());
  void* pgx = checked_out(grad_x, "grad_x", t, g.input_shape());
  py::gil_scoped_release nogil;
  fastconv::conv_backward_data(g, a, t, pgy, pw, pgx);
}

void conv_backward_weight(py::array x, py::array grad_y, py::array grad_w, Shape stride,
                          Shape lo, Shape hi, Shape dil, int64_t groups, std::string mode,
                          std::string algo) {
  const DType t = dtype_of(x, "x");
  const ConvGeometry g = fastconv::make_conv_geometry(shape_of(x), shape_of(grad_w),
                                                      window(stride, lo, hi, dil), groups,
                                                      parse_mode(mode));
  const auto a = fastconv::parse_algorithm(algo);
  const void* px = checked(x, "x", t, g.input_shape());
  const void* pgy = checked(grad_y, "grad_y", t, g.output_shape());
  void* pgw = checked_out(grad_w, "grad_w", t, g.weight_shape());
  py::gil_scoped_release nogil;
  fastconv::conv_backward_weight(g, a, t, px, pgy, pgw);
}

void conv_backward_bias(py::array grad_y, py::array grad_b) {
  const DType t = dtype_of(grad_y, "grad_y");
  const Shape s = shape_of(grad_y);
  if (s.size() < 3 || s.size() > 5) {
    throw fastconv::InvalidArgument("grad_y must have 3, 4 or 5 dims, got shape " +
                                    fastconv::format_dims(s));
  }
  const int64_t spatial = fastconv::checked_product(Shape(s.begin() + 2, s.end()), "grad_y");
  const void* pgy = checked(grad_y, "grad_y", t, s);
  void* pgb = checked_out(grad_b, "grad_bias", t, {s[1]});
  py::gil_scoped_release nogil;
  fastconv::conv_backward_bias(s[0], s[1], spatial, t, pgy, pgb);
}

// ---- transposed convolution: the conv passes on make_transposed_conv_geometry()

ConvGeometry transposed(const Shape& x_shape, const Shape& w_shape, const Shape& stride,
                        const Shape& lo, const Shape& hi, const Shape& out_pad, const Shape& dil,
                        int64_t groups) {
  return fastconv::make_transposed_conv_geometry(x_shape, w_shape, window(stride, lo, hi, dil),
                                                 out_pad, groups);
}

void conv_transpose_forward(py::array x, py::array w, py::object bias, py::array y, Shape stride,
                            Shape lo, Shape hi, Shape out_pad, Shape dil, int64_t groups,
                            std::string algo) {
  const DType t = dtype_of(x, "x");
  const ConvGeometry g = transposed(shape_of(x), shape_of(w), stride, lo, hi, out_pad, dil, groups);
  const auto a = fastconv::parse_algorithm(algo);
  const void* px = checked(x, "x", t, g.output_shape());
  const void* pw = checked(w, "w", t, g.weight_shape());
  const void* pb = nullptr;
  py::array b;
  if (!bias.is_none()) {
    b = bias.cast<py::array>();
    pb = checked(b, "bias", t, {g.c});
  }
  void* py_ = checked_out(y, "y", t, g.input_shape());
  py::gil_scoped_release nogil;
  fastconv::conv_backward_data(g, a, t, px, pw, py_);
  if (pb) fastconv::add_channel_bias(g.n, g.c, g.in_spatial(), t, pb, py_);
}

void conv_transpose_backward_data(py::array grad_y, py::array w, py::array grad_x, Shape stride,
                                  Shape lo, Shape hi, Shape out_pad, Shape dil, int64_t groups,
                                  std::string algo) {
  const DType t = dtype_of(grad_y, "grad_y");
  const ConvGeometry g =
      transposed(shape_of(grad_x), shape_of(w), stride, lo, hi, out_pad, dil, groups);
  const auto a = fastconv::parse_algorithm(algo);
  const void* pgy = checked(grad_y, "grad_y", t, g.input_shape());
  const void* pw = checked(w, "w", t, g.weight_shape());
  void* pgx = checked_out(grad_x, "grad_x", t, g.output_shape());
  py::gil_scoped_release nogil;
  fastconv::conv_forward(g, a, t, pgy, pw, nullptr, pgx);
}

void conv_transpose_backward_weight(py::array x, py::array grad_y, py::array grad_w, Shape stride,
                                    Shape lo, Shape hi, Shape out_pad, Shape dil, int64_t groups,
                                    std::string algo) {
  const DType t = dtype_of(x, "x");
  const ConvGeometry g =
      transposed(shape_of(x), shape_of(grad_w), stride, lo, hi, out_pad, dil, groups);
  const auto a = fastconv::parse_algorithm(algo);
  const void* px = checked(x, "x", t, g.output_shape());
  const void* pgy = checked(grad_y, "grad_y", t, g.input_shape());
  void* pgw = checked_out(grad_w, "grad_w", t, g.weight_shape());
  py::gil_scoped_release nogil;
  // The conv's input is grad_y and its output gradient is x.
  fastconv::conv_backward_weight(g, a, t, pgy, px, pgw);
}

// ---- pooling

PoolGeometry pool(const Shape& x_shape, const Shape& kernel, const Shape& stride, const Shape& lo,
                  const Shape& hi, const Shape& dil, bool ceil_mode) {
  return fastconv::make_pool_geometry(x_shape, kernel, window(stride, lo, hi, dil), ceil_mode);
}

void max_pool_forward(py::array x, py::array y, py::object indices, Shape kernel, Shape stride,
                      Shape lo, Shape hi, Shape dil, bool ceil_mode) {
  const DType t = dtype_of(x, "x");
  const PoolGeometry g = pool(shape_of(x), kernel, stride, lo, hi, dil, ceil_mode);
  const void* px = checked(x, "x", t, shape_of(x));
  void* py_ = checked_out(y, "y", t, g.output_shape());
  int64_t* pi = nullptr;
  py::array_t<int64_t> idx;
  if (!indices.is_none()) {
    idx = indices.cast<py::array_t<int64_t>>();
    if (!(idx.flags() & py::array::c_style) || shape_of(idx) != g.output_shape() ||
        !idx.writeable()) {
      throw fastconv::InvalidArgument("indices buffer must be a writeable C-contiguous int64 array of the output shape");
    }
    pi = idx.mutable_data();
  }
  py::gil_scoped_release nogil;
  fastconv::max_pool_forward(g, t, px, py_, pi);
}

void max_pool_backward(py::array grad_y, py::array x, py::array grad_x, Shape kernel,
                       Shape stride, Shape lo, Shape hi, Shape dil, bool ceil_mode) {
  const DType t = dtype_of(x, "x");
  const PoolGeometry g = pool(shape_of(x), kernel, stride, lo, hi, dil, ceil_mode);
  const void* pgy = checked(grad_y, "grad_y", t, g.output_shape());
  const void* px = checked(x, "x", t, shape_of(x));
  void* pgx = checked_out(grad_x, "grad_x", t, shape_of(x));
  py::gil_scoped_release nogil;
  fastconv::max_pool_backward(g, t, pgy, px, pgx);
}

void max_pool_backward_indices(py::array grad_y, py::array_t<int64_t> indices, py::array grad_x,
                               Shape kernel, Shape stride, Shape lo, Shape hi, Shape dil,
                               bool ceil_mode) {
  const DType t = dtype_of(grad_y, "grad_y");
  const Shape xs = shape_of(grad_x);
  const PoolGeometry g = pool(xs, kernel, stride, lo, hi, dil, ceil_mode);
  const void* pgy = checked(grad_y, "grad_y", t, g.output_shape());
  if (!(indices.flags() & py::array::c_style) || shape_of(indices) != g.output_shape()) {
    throw fastconv::InvalidArgument("indices must be a C-contiguous int64 array of grad_y's shape " +
                                    fastconv::format_dims(g.output_shape()));
  }
  void* pgx = checked_out(grad_x, "grad_x", t, xs);
  const int64_t* pi = indices.data();
  py::gil_scoped_release nogil;
  fastconv::max_pool_backward_indices(g.n * g.c, g.in_spatial(), g.out_spatial(), t, pgy, pi, pgx);
}

void avg_pool_forward(py::array x, py::array y, Shape kernel, Shape stride, Shape lo, Shape hi,
                      bool ceil_mode, bool count_include_pad) {
  const DType t = dtype_of(x, "x");
  const PoolGeometry g = pool(shape_of(x), kernel, stride, lo, hi, Shape(kernel.size(), 1), ceil_mode);
  const void* px = checked(x, "x", t, shape_of(x));
  void* py_ = checked_out(y, "y", t, g.output_shape());
  py::gil_scoped_release nogil;
  fastconv::avg_pool_forward(g, t, count_include_pad, px, py_);
}

void avg_pool_backward(py::array grad_y, py::array grad_x, Shape kernel, Shape stride, Shape lo,
                       Shape hi, bool ceil_mode, bool count_include_pad) {
  const DType t = dtype_of(grad_y, "grad_y");
  const PoolGeometry g =
      pool(shape_of(grad_x), kernel, stride, lo, hi, Shape(kernel.size(), 1), ceil_mode);
  const void* pgy = checked(grad_y, "grad_y", t, g.output_shape());
  void* pgx = checked_out(grad_x, "grad_x", t, shape_of(grad_x));
  py::gil_scoped_release nogil;
  fastconv::avg_pool_backward(g, t, count_include_pad, pgy, pgx);
}

void lp_pool_forward(py::array x, py::array y, double p, Shape kernel, Shape stride,
                     bool ceil_mode) {
  const DType t = dtype_of(x, "x");
  const Shape zero(kernel.size(), 0), one(kernel.size(), 1);
  const PoolGeometry g = pool(shape_of(x), kernel, stride, zero, zero, one, ceil_mode);
  const void* px = checked(x, "x", t, shape_of(x));
  void* py_ = checked_out(y, "y", t, g.output_shape());
  py::gil_scoped_release nogil;
  fastconv::lp_pool_forward(g, t, p, px, py_);
}

void lp_pool_backward(py::array grad_y, py::array x, py::array grad_x, double p, Shape kernel,
                      Shape stride, bool ceil_mode) {
  const DType t = dtype_of(x, "x");
  const Shape zero(kernel.size(), 0), one(kernel.size(), 1);
  const PoolGeometry g = pool(shape_of(x), kernel, stride, zero, zero, one, ceil_mode);
  const void* pgy = checked(grad_y, "grad_y", t, g.output_shape());
  const void* px = checked(x, "x", t, shape_of(x));
  void* pgx = checked_out(grad_x, "grad_x", t, shape_of(x));
  py::gil_scoped_release nogil;
  fastconv::lp_pool_backward(g, t, p, pgy, px, pgx);
}

void max_unpool_forward(py::array x, py::array_t<int64_t> indices, py::array y) {
  const DType t = dtype_of(x, "x");
  const Shape xs = shape_of(x), ys = shape_of(y);
  if (xs.size() < 3 || ys.size() != xs.size() || xs[0] != ys[0] || xs[1] != ys[1]) {
    throw fastconv::InvalidArgument("max_unpool: x " + fastconv::format_dims(xs) +
                                    " and output " + fastconv::format_dims(ys) +
                                    " disagree in N, C or rank");
  }
  if (!(indices.flags() & py::array::c_style) || shape_of(indices) != xs) {
    throw fastconv::InvalidArgument("indices must be a C-contiguous int64 array of x's shape " +
                                    fastconv::format_dims(xs));
  }
  const int64_t planes = xs[0] * xs[1];
  const int64_t in_count = fastconv::checked_product(Shape(xs.begin() + 2, xs.end()), "x");
  const int64_t out_count = fastconv::checked_product(Shape(ys.begin() + 2, ys.end()), "output_size");
  const void* px = checked(x, "x", t, xs);
  void* py_ = checked_out(y, "y", t, ys);
  const int64_t* pi = indices.data();
  py::gil_scoped_release nogil;
  fastconv::max_unpool_forward(planes, in_count, out_count, t, px, pi, py_);
}

// ---- shapes and info

Shape conv_output_shape(Shape x_shape, Shape w_shape, Shape stride, Shape lo, Shape hi, Shape dil,
                        int64_t groups) {
  return fastconv::make_conv_geometry(x_shape, w_shape, window(stride, lo, hi, dil), groups,
                                      fastconv::ConvMode::kCross)
      .output_shape();
}

Shape conv_transpose_output_shape(Shape x_shape, Shape w_shape, Shape stride, Shape lo, Shape hi,
                                  Shape out_pad, Shape dil, int64_t groups) {
  return transposed(x_shape, w_shape, stride, lo, hi, out_pad, dil, groups).input_shape();
}

Shape conv_transpose_input_shape(Shape grad_y_shape, Shape w_shape, Shape stride, Shape lo,
                                 Shape hi, Shape out_pad, Shape dil, int64_t groups) {
  return fastconv::transposed_conv_input_shape(grad_y_shape, w_shape, window(stride, lo, hi, dil),
                                               out_pad, groups);
}

Shape pool_output_shape(Shape x_shape, Shape kernel, Shape stride, Shape lo, Shape hi, Shape dil,
                        bool ceil_mode) {
  return pool(x_shape, kernel, stride, lo, hi, dil, ceil_mode).output_shape();
}

fastconv::ConvPass parse_pass(const std::string& pass) {
  return pass == "forward"         ? fastconv::ConvPass::kForward
         : pass == "backward_data" ? fastconv::ConvPass::kBackwardData
                                   : fastconv::ConvPass::kBackwardWeight;
}

int64_t conv_workspace_bytes(std::string algo, std::string pass, Shape x_shape, Shape w_shape,
                             Shape stride, Shape lo, Shape hi, Shape dil, int64_t groups,
                             std::string dtype) {
  const ConvGeometry g = fastconv::make_conv_geometry(x_shape, w_shape, window(stride, lo, hi, dil),
                                                      groups, fastconv::ConvMode::kCross, true);
  return fastconv::conv_workspace_bytes(g, fastconv::parse_algorithm(algo), parse_pass(pass),
                                        dtype == "float64" ? DType::kFloat64 : DType::kFloat32);
}

std::string conv_unsupported_reason(std::string algo, std::string pass, Shape x_shape,
                                    Shape w_shape, Shape stride, Shape lo, Shape hi, Shape dil,
                                    int64_t groups) {
  const ConvGeometry g = fastconv::make_conv_geometry(x_shape, w_shape, window(stride, lo, hi, dil),
                                                      groups, fastconv::ConvMode::kCross, true);
  return fastconv::conv_unsupported_reason(g, fastconv::parse_algorithm(algo), parse_pass(pass));
}

std::string conv_algorithm_note(std::string algo, std::string pass, Shape x_shape, Shape w_shape,
                                Shape stride, Shape lo, Shape hi, Shape dil, int64_t groups) {
  const ConvGeometry g = fastconv::make_conv_geometry(x_shape, w_shape, window(stride, lo, hi, dil),
                                                      groups, fastconv::ConvMode::kCross, true);
  return fastconv::conv_algorithm_note(g, fastconv::parse_algorithm(algo), parse_pass(pass));
}

py::dict cpu_info() {
  const auto& f = fastconv::cpu_features();
  py::dict d;
  d["vendor"] = f.vendor;
  d["brand"] = f.brand;
  py::list feats;
  auto add = [&](bool on, const char* name) {
    if (on) feats.append(name);
  };
  add(f.avx2 && f.os_avx, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f && f.os_avx512, "avx512f");
  add(f.avx512dq && f.os_avx512, "avx512dq");
  add(f.avx512bw && f.os_avx512, "avx512bw");
  add(f.avx512vl && f.os_avx512, "avx512vl");
  d["features"] = feats;
  d["detected_isa"] = fastconv::isa_name(fastconv::detected_isa());
  d["active_isa"] = fastconv::isa_name(fastconv::active_isa());
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastconv compiled kernels (CPU). Use the fastconv package, not this module.";
  py::register_exception<fastconv::Unsupported>(m, "UnsupportedError", PyExc_NotImplementedError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fastconv::InvalidType& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });

  m.attr("__version__") = FASTCONV_VERSION;
  m.attr("compiler") = FASTCONV_COMPILER;

  const auto w = py::arg("stride"), lo = py::arg("pad_lo"), hi = py::arg("pad_hi");
  m.def("conv_forward", &conv_forward, py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("y"),
        w, lo, hi, py::arg("dilation"), py::arg("groups"), py::arg("mode"), py::arg("algo"));
  m.def("conv_backward_data", &conv_backward_data, py::arg("grad_y"), py::arg("w"),
        py::arg("grad_x"), w, lo, hi, py::arg("dilation"), py::arg("groups"), py::arg("mode"),
        py::arg("algo"));
  m.def("conv_backward_weight", &conv_backward_weight, py::arg("x"), py::arg("grad_y"),
        py::arg("grad_w"), w, lo, hi, py::arg("dilation"), py::arg("groups"), py::arg("mode"),
        py::arg("algo"));
  m.def("conv_backward_bias", &conv_backward_bias, py::arg("grad_y"), py::arg("grad_bias"));
  m.def("conv_transpose_forward", &conv_transpose_forward, py::arg("x"), py::arg("w"),
        py::arg("bias"), py::arg("y"), w, lo, hi, py::arg("output_padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("algo"));
  m.def("conv_transpose_backward_data", &conv_transpose_backward_data, py::arg("grad_y"),
        py::arg("w"), py::arg("grad_x"), w, lo, hi, py::arg("output_padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("algo"));
  m.def("conv_transpose_backward_weight", &conv_transpose_backward_weight, py::arg("x"),
        py::arg("grad_y"), py::arg("grad_w"), w, lo, hi, py::arg("output_padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("algo"));
  m.def("max_pool_forward", &max_pool_forward, py::arg("x"), py::arg("y"), py::arg("indices"),
        py::arg("kernel"), w, lo, hi, py::arg("dilation"), py::arg("ceil_mode"));
  m.def("max_pool_backward", &max_pool_backward, py::arg("grad_y"), py::arg("x"),
        py::arg("grad_x"), py::arg("kernel"), w, lo, hi, py::arg("dilation"),
        py::arg("ceil_mode"));
  m.def("max_pool_backward_indices", &max_pool_backward_indices, py::arg("grad_y"),
        py::arg("indices"), py::arg("grad_x"), py::arg("kernel"), w, lo, hi, py::arg("dilation"),
        py::arg("ceil_mode"));
  m.def("avg_pool_forward", &avg_pool_forward, py::arg("x"), py::arg("y"), py::arg("kernel"), w,
        lo, hi, py::arg("ceil_mode"), py::arg("count_include_pad"));
  m.def("avg_pool_backward", &avg_pool_backward, py::arg("grad_y"), py::arg("grad_x"),
        py::arg("kernel"), w, lo, hi, py::arg("ceil_mode"), py::arg("count_include_pad"));
  m.def("lp_pool_forward", &lp_pool_forward, py::arg("x"), py::arg("y"), py::arg("p"),
        py::arg("kernel"), w, py::arg("ceil_mode"));
  m.def("lp_pool_backward", &lp_pool_backward, py::arg("grad_y"), py::arg("x"), py::arg("grad_x"),
        py::arg("p"), py::arg("kernel"), w, py::arg("ceil_mode"));
  m.def("max_unpool_forward", &max_unpool_forward, py::arg("x"), py::arg("indices"), py::arg("y"));

  m.def("conv_output_shape", &conv_output_shape, py::arg("x_shape"), py::arg("w_shape"), w, lo,
        hi, py::arg("dilation"), py::arg("groups"));
  m.def("conv_transpose_output_shape", &conv_transpose_output_shape, py::arg("x_shape"),
        py::arg("w_shape"), w, lo, hi, py::arg("output_padding"), py::arg("dilation"),
        py::arg("groups"));
  m.def("conv_transpose_input_shape", &conv_transpose_input_shape, py::arg("grad_y_shape"),
        py::arg("w_shape"), w, lo, hi, py::arg("output_padding"), py::arg("dilation"),
        py::arg("groups"));
  m.def("transposed_extent", &fastconv::transposed_extent, py::arg("in"), py::arg("kernel"),
        py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"), py::arg("dilation"),
        py::arg("output_padding"));
  m.def("pool_output_shape", &pool_output_shape, py::arg("x_shape"), py::arg("kernel"), w, lo, hi,
        py::arg("dilation"), py::arg("ceil_mode"));
  m.def("algorithms", &fastconv::built_algorithms, py::arg("op"));
  m.def("conv_workspace_bytes", &conv_workspace_bytes, py::arg("algo"), py::arg("pass_"),
        py::arg("x_shape"), py::arg("w_shape"), w, lo, hi, py::arg("dilation"), py::arg("groups"),
        py::arg("dtype"));
  m.def("conv_algorithm_note", &conv_algorithm_note, py::arg("algo"), py::arg("pass_"),
        py::arg("x_shape"), py::arg("w_shape"), w, lo, hi, py::arg("dilation"), py::arg("groups"));
  m.def("conv_unsupported_reason", &conv_unsupported_reason, py::arg("algo"), py::arg("pass_"),
        py::arg("x_shape"), py::arg("w_shape"), w, lo, hi, py::arg("dilation"), py::arg("groups"));
  m.def("set_num_threads", &fastconv::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &fastconv::get_num_threads);
  m.def("cpu_info", &cpu_info);
  fastconv::bindings::bind_gemm(m);
  fastconv::bindings::bind_fft(m);
}
