// pybind11 bindings of tiled / locally connected convolution: _C.tiled_conv_problem builds a
// pass's problem once (the Python layer caches it), _C.tiled_conv runs it with the GIL
// released. Operands as in problem_bindings.cc: NumPy arrays or checked buffer addresses.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "algo/separable_conv.h"
#include "fastconv/status.h"
#include "fastconv/tiled_conv.h"
#include "without_gil.h"

namespace py = pybind11;

namespace fastconv::bindings {

void* bound_operand(py::handle h, const char* name, DType t, const Shape& shape, bool output);

namespace {

TiledConvProblem tiled_conv_problem(const std::string& pass, Shape shape, Shape w_shape,
                                    Shape stride, Shape pad_lo, Shape pad_hi, Shape dilation,
                                    bool local, const std::string& dtype) {
  TiledConvArguments a;
  a.pass = parse_conv_pass(pass);
  a.shape = std::move(shape);
  a.w_shape = std::move(w_shape);
  a.stride = std::move(stride);
  a.pad_lo = std::move(pad_lo);
  a.pad_hi = std::move(pad_hi);
  a.dilation = std::move(dilation);
  a.local = local;
  a.dtype = parse_dtype(dtype);
  return make_tiled_conv_problem(a);
}

void tiled_conv(const TiledConvProblem& p, py::handle a, py::handle b, py::handle bias,
                bool bias_per_phase, py::handle out, bool reference) {
  static const char* kNames[3][2] = {{"x", "w"}, {"grad_y", "w"}, {"x", "grad_y"}};
  const char* const* names = kNames[int(p.pass)];
  const void* pa = bound_operand(a, names[0], p.dtype, p.operand_shapes[0], false);
  const void* pb = bound_operand(b, names[1], p.dtype, p.operand_shapes[1], false);
  const void* pbias = nullptr;
  if (!bias.is_none()) {
    if (p.pass != ConvPass::kForward) throw InvalidArgument("only a forward pass takes a bias");
    pbias = bound_operand(bias, "bias", p.dtype,
                          bias_per_phase ? p.bias_per_phase_shape : Shape{p.g.k}, false);
  }
  void* pout = bound_operand(out, "out", p.dtype, p.result_shape, true);
  if (a.is_none() || b.is_none() || out.is_none())
    throw InvalidArgument("tiled_conv operands must not be None");
  without_gil([&] { run_tiled_conv(p, pa, pb, pbias, bias_per_phase, pout, reference); });
}

// The separable shape of x (N, Cx, [L,] H, W), factors f0 / f1 (K, C/G, k) and y or grad_y
// `out` (N, K, [L,] Ho, Wo): every operand one float dtype and C-contiguous, the window and the
// shapes consistent; InvalidArgument / InvalidType naming `what` otherwise. Sets *f64.
algo::SeparableShape separable_shape(const std::string& what,
                                     const std::vector<py::array>& operands, int64_t groups,
                                     bool pairs, const Shape& stride, const Shape& pad_lo,
                                     const Shape& pad_hi, const Shape& dilation, bool* f64) {
  const py::array &x = operands[0], &f0 = operands[1], &f1 = operands[2], &out = operands[3];
  const int nd = int(x.ndim());
  if ((nd != 4 && nd != 5) || out.ndim() != nd || f0.ndim() != 3 || f1.ndim() != 3)
    throw InvalidArgument(what + ": x and the output must have 4 or 5 dims, the factors 3");
  for (const py::array& a : operands) {
    if (!a.dtype().is(x.dtype())) throw InvalidType(what + ": operands of one dtype");
    if (!(a.flags() & py::array::c_style))
      throw InvalidArgument(what + ": operands must be C-contiguous");
  }
  if (stride.size() != 2 || pad_lo.size() != 2 || pad_hi.size() != 2 || dilation.size() != 2)
    throw InvalidArgument(what + ": stride, pad_lo, pad_hi, dilation: 2 entries each");
  algo::SeparableShape s;
  s.n = x.shape(0);
  s.x_channels = x.shape(1);
  s.k = f0.shape(0);
  s.cg = f0.shape(1);
  s.groups = groups;
  s.pairs = pairs;
  s.lines = nd == 5 ? x.shape(2) : 1;
  s.h_in = x.shape(nd - 2);
  s.w_in = x.shape(nd - 1);
  s.k0 = f0.shape(2);
  s.k1 = f1.shape(2);
  s.s0 = stride[0];
  s.s1 = stride[1];
  s.p0 = pad_lo[0];
  s.p1 = pad_lo[1];
  s.d0 = dilation[0];
  s.d1 = dilation[1];
  for (int64_t v : {s.s0, s.s1, s.d0, s.d1, s.groups, s.k0, s.k1, s.cg, s.k})
    if (v < 1) throw InvalidArgument(what + ": sizes, strides, dilations must be >= 1");
  if (pad_lo[0] < 0 || pad_lo[1] < 0 || pad_hi[0] < 0 || pad_hi[1] < 0)
    throw InvalidArgument(what + ": padding must be >= 0");
  s.h_out = output_extent(s.h_in, s.k0, s.s0, s.p0, pad_hi[0], s.d0);
  s.w_out = output_extent(s.w_in, s.k1, s.s1, s.p1, pad_hi[1], s.d1);
  const int64_t want_channels = pairs ? s.cg * s.k : s.cg * s.groups;
  const bool ok = s.k % s.groups == 0 && s.x_channels == want_channels && f1.shape(0) == s.k &&
                  f1.shape(1) == s.cg && s.h_out >= 1 && s.w_out >= 1 && out.shape(0) == s.n &&
                  out.shape(1) == s.k && out.shape(nd - 2) == s.h_out &&
                  out.shape(nd - 1) == s.w_out && (nd == 4 || out.shape(2) == s.lines);
  if (!ok) throw InvalidArgument(what + ": inconsistent shapes or window");
  *f64 = x.dtype().kind() == 'f' && x.itemsize() == 8;
  if (x.dtype().kind() != 'f' || (x.itemsize() != 4 && !*f64))
    throw InvalidType(what + ": float32 or float64");
  return s;
}

// separable_conv's fused 2-D passes (fastconv/separable.py, csrc/algo/separable_conv.h):
// x (N, Cx, [L,] H, W), f0 (K, C/G, k0), f1 (K, C/G, k1), bias (K,) or None, y (N, K, [L,] Ho,
// Wo); NumPy arrays, C-contiguous, one dtype, checked here.
void separable_conv2d(py::array x, py::array f0, py::array f1, py::object bias, py::array y,
                      int64_t groups, bool pairs, Shape stride, Shape pad_lo, Shape pad_hi,
                      Shape dilation) {
  std::vector<py::array> operands{x, f0, f1, y};
  if (!bias.is_none()) {
    if (!py::isinstance<py::array>(bias)) throw InvalidType("separable_conv2d: bias: an array");
    operands.push_back(py::reinterpret_borrow<py::array>(bias));
  }
  bool f64 = false;
  const algo::SeparableShape s = separable_shape("separable_conv2d", operands, groups, pairs,
                                                 stride, pad_lo, pad_hi, dilation, &f64);
  if (!y.writeable()) throw InvalidArgument("separable_conv2d: y must be writeable");
  const bool has_bias = operands.size() == 5;
  if (has_bias && (operands[4].ndim() != 1 || operands[4].shape(0) != s.k))
    throw InvalidArgument("separable_conv2d: bias must have shape (K,)");
  const void* pb = has_bias ? operands[4].data() : nullptr;
  const void *px = x.data(), *pf0 = f0.data(), *pf1 = f1.data();
  void* py_ = y.mutable_data();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    algo::separable_conv2d<T>(s, static_cast<const T*>(px), static_cast<const T*>(pf0),
                              static_cast<const T*>(pf1), static_cast<const T*>(pb),
                              static_cast<T*>(py_));
  };
  without_gil([&] { f64 ? run(double{}) : run(float{}); });
}

// separable_conv_backward_factors' fused 2-D passes at stride 1 (csrc/algo/separable_conv.h):
// x (N, C, [L,] H, W), grad_y (N, K, [L,] Ho, Wo), f0 / f1 (K, C/G, k), grad_f0 / grad_f1 their
// shapes; NumPy arrays, C-contiguous, one dtype, checked here.
void separable_conv2d_backward_factors(py::array x, py::array grad_y, py::array f0, py::array f1,
                                       py::array grad_f0, py::array grad_f1, int64_t groups,
                                       Shape pad_lo, Shape pad_hi, Shape dilation) {
  const std::string what = "separable_conv2d_backward_factors";
  bool f64 = false;
  const algo::SeparableShape s =
      separable_shape(what, {x, f0, f1, grad_y, grad_f0, grad_f1}, groups, false, {1, 1},
                      pad_lo, pad_hi, dilation, &f64);
  if (s.p1 > (s.k1 - 1) * s.d1)
    throw InvalidArgument(what + ": row padding must be at most (k1 - 1) * d1");
  if (!grad_f0.writeable() || !grad_f1.writeable())
    throw InvalidArgument(what + ": the gradients must be writeable");
  for (int i = 0; i < 3; ++i)
    if (grad_f0.ndim() != 3 || grad_f1.ndim() != 3 || grad_f0.shape(i) != f0.shape(i) ||
        grad_f1.shape(i) != f1.shape(i))
      throw InvalidArgument(what + ": the gradients must have the factors' shapes");
  const void *px = x.data(), *pg = grad_y.data(), *pf0 = f0.data(), *pf1 = f1.data();
  void *pgf0 = grad_f0.mutable_data(), *pgf1 = grad_f1.mutable_data();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    algo::separable_conv2d_backward_factors<T>(
        s, static_cast<const T*>(px), static_cast<const T*>(pg), static_cast<const T*>(pf0),
        static_cast<const T*>(pf1), static_cast<T*>(pgf0), static_cast<T*>(pgf1));
  };
  without_gil([&] { f64 ? run(double{}) : run(float{}); });
}

py::tuple as_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

}  // namespace

void bind_tiled(py::module_& m) {
  py::class_<TiledConvProblem>(m, "TiledConvProblem",
                               "One tiled / locally connected conv pass; see tiled_conv.h.")
      .def_property_readonly("pass_", [](const TiledConvProblem& p) { return pass_name(p.pass); })
      .def_property_readonly("dtype", [](const TiledConvProblem& p) { return dtype_name(p.dtype); })
      .def_readonly("local", &TiledConvProblem::local)
      .def_property_readonly("x_shape", [](const TiledConvProblem& p) { return as_tuple(p.x_shape); })
      .def_property_readonly("w_shape", [](const TiledConvProblem& p) { return as_tuple(p.w_shape); })
      .def_property_readonly("y_shape", [](const TiledConvProblem& p) { return as_tuple(p.y_shape); })
      .def_property_readonly("operand_shapes",
                             [](const TiledConvProblem& p) {
                               return py::make_tuple(as_tuple(p.operand_shapes[0]),
                                                     as_tuple(p.operand_shapes[1]));
                             })
      .def_property_readonly("result_shape",
                             [](const TiledConvProblem& p) { return as_tuple(p.result_shape); })
      .def_property_readonly(
          "bias_per_phase_shape",
          [](const TiledConvProblem& p) { return as_tuple(p.bias_per_phase_shape); })
      .def_property_readonly("workspace_bytes", &tiled_conv_workspace_bytes)
      .def_property_readonly("flops", [](const TiledConvProblem& p) { return p.g.flops(); });
  m.def("tiled_conv_problem", &tiled_conv_problem, py::arg("pass_"), py::arg("shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"),
        py::arg("dilation"), py::arg("local"), py::arg("dtype"));
  m.def("tiled_conv", &tiled_conv, py::arg("problem"), py::arg("a"), py::arg("b"),
        py::arg("bias"), py::arg("bias_per_phase"), py::arg("out"), py::arg("reference") = false,
        "One tiled / locally connected conv pass; reference=True runs csrc/ref's loops.");
  m.def("separable_conv2d", &separable_conv2d, py::arg("x"), py::arg("f0"), py::arg("f1"),
        py::arg("bias"), py::arg("y"), py::arg("groups"), py::arg("pairs"), py::arg("stride"),
        py::arg("pad_lo"), py::arg("pad_hi"), py::arg("dilation"),
        "separable_conv's two last dims, both 1-D passes fused (csrc/algo/separable_conv.h).");
  m.def("separable_conv2d_backward_factors", &separable_conv2d_backward_factors, py::arg("x"),
        py::arg("grad_y"), py::arg("f0"), py::arg("f1"), py::arg("grad_f0"), py::arg("grad_f1"),
        py::arg("groups"), py::arg("pad_lo"), py::arg("pad_hi"), py::arg("dilation"),
        "separable_conv_backward_factors at stride 1, fused per band (separable_conv.h).");
}

}  // namespace fastconv::bindings
