// pybind11 bindings of problems and plans: _C.conv_problem / _C.pool_problem build a call's
// problem once (the Python layer caches it by the call's arguments), ConvProblem.plan(algo)
// plans an algorithm once per problem, and _C.conv / _C.pool run them with the GIL released.
//
// Operands are NumPy arrays (checked here: dtype, C-contiguity, shape, writeable outputs) or
// plain integers: the address of a C-contiguous buffer of the problem's shape and dtype, which
// the Python layer has checked (torch tensors go this way: .data_ptr() is ~20x cheaper than a
// NumPy view of the tensor).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "conv_problem_handle.h"
#include "fastconv/algorithm.h"
#include "fastconv/parallel.h"
#include "fastconv/problem.h"
#include "fastconv/status.h"
#include "without_gil.h"

namespace py = pybind11;

namespace fastconv::bindings {
namespace {

using ConvPlanHandle = std::shared_ptr<ConvPlan>;

bool is_dtype(const py::array& a, DType t) {
  const char kind = a.dtype().kind();
  const auto size = a.itemsize();
  switch (t) {
    case DType::kFloat32: return kind == 'f' && size == 4;
    case DType::kFloat64: return kind == 'f' && size == 8;
    default: return false;
  }
}

// The data pointer of one operand (see the file comment); null for None.
void* operand(py::handle h, const char* name, DType t, const Shape& shape, bool output,
              bool index = false) {
  if (h.is_none()) return nullptr;
  if (PyLong_Check(h.ptr())) {
    const unsigned long long v = PyLong_AsUnsignedLongLong(h.ptr());
    if (PyErr_Occurred()) throw py::error_already_set();
    return reinterpret_cast<void*>(uintptr_t(v));
  }
  if (!py::isinstance<py::array>(h))
    throw InvalidType(std::string(name) + " must be a NumPy array or a buffer address");
  py::array a = py::reinterpret_borrow<py::array>(h);
  const bool dtype_ok = index ? (a.dtype().kind() == 'i' && a.itemsize() == 8) : is_dtype(a, t);
  if (!dtype_ok || a.dtype().byteorder() == '>')
    throw InvalidType(std::string(name) + " must have dtype " +
                      (index ? "int64" : dtype_name(t)) + ", got " +
                      std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw InvalidArgument(std::string(name) + " must be C-contiguous");
  bool same = size_t(a.ndim()) == shape.size();
  for (size_t i = 0; same && i < shape.size(); ++i) same = a.shape(py::ssize_t(i)) == shape[i];
  if (!same) {
    throw InvalidArgument(std::string(name) + " must have shape " + format_dims(shape) +
                          ", got " + format_dims(Shape(a.shape(), a.shape() + a.ndim())));
  }
  if (output && !a.writeable()) throw InvalidArgument(std::string(name) + " must be writeable");
  return output ? a.mutable_data() : const_cast<void*>(a.data());
}

Shape tail(const Dims& d, int rank) { return Shape(d.begin() + (kMaxRank - rank), d.end()); }

py::tuple as_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

std::shared_ptr<ConvProblemHandle> conv_problem(const std::string& op, const std::string& pass,
                                                Shape shape, Shape w_shape, Shape stride,
                                                const std::string& padding, Shape pad_lo,
                                                Shape pad_hi, Shape dilation, int64_t groups,
                                                const std::string& mode, Shape output_padding,
                                                const std::string& dtype) {
  ConvArguments a;
  if (op == "conv")
    a.op = ConvOp::kConv;
  else if (op == "conv_transpose")
    a.op = ConvOp::kConvTranspose;
  else
    throw InvalidArgument("op must be 'conv' or 'conv_transpose', got '" + op + "'");
  a.pass = parse_conv_pass(pass);
  a.shape = std::move(shape);
  a.w_shape = std::move(w_shape);
  a.stride = std::move(stride);
  a.padding = parse_padding_rule(padding);
  a.pad_lo = std::move(pad_lo);
  a.pad_hi = std::move(pad_hi);
  a.dilation = std::move(dilation);
  a.output_padding = std::move(output_padding);
  a.groups = groups;
  if (mode == "cross")
    a.mode = ConvMode::kCross;
  else if (mode == "conv")
    a.mode = ConvMode::kConv;
  else
    throw InvalidArgument("mode must be 'cross' (cross-correlation) or 'conv' (true convolution), "
                          "got '" + mode + "'");
  a.dtype = parse_dtype(dtype);
  return std::make_shared<ConvProblemHandle>(make_conv_problem(a));
}

ConvPlanHandle plan(ConvProblemHandle& h, const std::string& algo) {
  const ConvPlanResult& r = h.plan(parse_algorithm(algo));
  if (!r.invalid.empty()) throw InvalidArgument(r.invalid);
  if (!r.plan) {
    const ConvProblem& p = h.problem;
    throw Unsupported("algo='" + algo + "' cannot run this " +
                      (p.op == ConvOp::kConv ? "conv " : "conv_transpose ") + pass_name(p.pass) +
                      ": " + r.unsupported);
  }
  return r.plan;
}

void conv(ConvProblemHandle& h, const ConvPlanHandle& plan, py::handle a, py::handle b,
          py::handle bias, py::handle out) {
  const ConvProblem& p = h.problem;
  if (!plan || plan->pass != p.conv_pass || plan->dtype != p.dtype || !(plan->g == p.g))
    throw InvalidArgument("the plan was not made for this problem");
  const ConvPlan* run = plan.get();
  if (run->threads != get_num_threads()) {  // set_num_threads since: the problem's current plan
    const ConvPlanResult& r = h.plan(run->algo);
    if (!r.plan) throw Unsupported(r.unsupported);
    run = r.plan.get();
  }
  static const char* kNames[3][2] = {{"x", "w"}, {"grad_y", "w"}, {"x", "grad_y"}};
  const char* const* names = kNames[int(p.pass)];
  const void* pa = operand(a, names[0], p.dtype, p.operand_shapes[0], false);
  const void* pb = operand(b, names[1], p.dtype, p.operand_shapes[1], false);
  const void* pbias = nullptr;
  if (!bias.is_none()) {
    if (p.pass != ConvPass::kForward) throw InvalidArgument("only a forward pass takes a bias");
    pbias = operand(bias, "bias", p.dtype, {p.bias_channels}, false);
  }
  void* pout = operand(out, "out", p.dtype, p.result_shape, true);
  // Address 0 is a tensor without elements; only None is absent.
  if (a.is_none() || b.is_none() || out.is_none())
    throw InvalidArgument("conv operands must not be None");
  without_gil([&] { run_conv_problem(p, *run, pa, pb, pbias, pout); });
}

void conv_backward_bias(Shape grad_y_shape, const std::string& dtype, py::handle grad_y,
                        py::handle out) {
  const DType t = parse_dtype(dtype);
  if (grad_y_shape.size() < 3 || grad_y_shape.size() > 5) {
    throw InvalidArgument("grad_y must have 3, 4 or 5 dims, got shape " +
                          format_dims(grad_y_shape));
  }
  const int64_t spatial =
      checked_product(Shape(grad_y_shape.begin() + 2, grad_y_shape.end()), "grad_y");
  checked_product(grad_y_shape, "grad_y");
  const void* pgy = operand(grad_y, "grad_y", t, grad_y_shape, false);
  void* pgb = operand(out, "out", t, {grad_y_shape[1]}, true);
  if (grad_y.is_none() || out.is_none())
    throw InvalidArgument("conv_backward_bias operands must not be None");
  without_gil([&] {
    fastconv::conv_backward_bias(grad_y_shape[0], grad_y_shape[1], spatial, t, pgy, pgb);
  });
}

PoolProblem pool_problem(const std::string& kind, const std::string& pass, Shape x_shape,
                         Shape kernel, Shape stride, Shape pad_lo, Shape pad_hi, Shape dilation,
                         bool ceil_mode, bool count_include_pad, double p, Shape output_size,
                         const std::string& dtype) {
  PoolArguments a;
  a.kind = parse_pool_kind(kind);
  a.pass = parse_pool_pass(pass);
  a.x_shape = std::move(x_shape);
  a.kernel = std::move(kernel);
  a.stride = std::move(stride);
  a.pad_lo = std::move(pad_lo);
  a.pad_hi = std::move(pad_hi);
  a.dilation = std::move(dilation);
  a.ceil_mode = ceil_mode;
  a.count_include_pad = count_include_pad;
  a.p = p;
  a.output_size = std::move(output_size);
  a.dtype = parse_dtype(dtype);
  return make_pool_problem(a);
}

void pool(const PoolProblem& p, py::handle a, py::handle b, py::handle indices, py::handle out,
          bool reference) {
  const bool forward = p.pass == PoolPass::kForward;
  const bool backward = p.pass == PoolPass::kBackward;  // else a is x-shaped (gather: grad_x)
  const void* pa = operand(a, forward ? "x" : backward ? "grad_y" : "grad_x", p.dtype,
                           backward ? p.y_shape : p.x_shape, false);
  const void* pb = operand(b, "x", p.dtype, p.x_shape, false);
  // Indices have y's shape: written by the max forward, read by max backward and gather;
  // max_unpool's have x's (its input, the pooled tensor).
  const Shape& index_shape = p.kind == PoolKind::kUnpool ? p.x_shape : p.y_shape;
  auto* pi = static_cast<int64_t*>(operand(indices, "indices", p.dtype, index_shape,
                                           forward && p.kind == PoolKind::kMax, true));
  void* pout = operand(out, "out", p.dtype, p.result_shape, true);
  if (a.is_none() || out.is_none()) throw InvalidArgument("pool operands must not be None");
  const bool has_indices = !indices.is_none();
  if (p.pass == PoolPass::kGather && !has_indices)
    throw InvalidArgument("max_pool gather needs indices");
  const bool needs_x =
      !forward && (p.kind == PoolKind::kLp || (p.kind == PoolKind::kMax && !has_indices));
  if (needs_x && b.is_none()) throw InvalidArgument("this pooling backward pass needs x");
  if (p.kind == PoolKind::kUnpool && !has_indices)
    throw InvalidArgument("max_unpool needs indices");
  without_gil([&] { run_pool(p, pa, pb, pi, pout, reference); });
}

}  // namespace

// operand() for the other binding files (tiled_bindings.cc).
void* bound_operand(py::handle h, const char* name, DType t, const Shape& shape, bool output) {
  return operand(h, name, t, shape, output);
}

void bind_problems(py::module_& m) {
  py::class_<ConvPlan, ConvPlanHandle>(m, "ConvPlan",
                                       "One algorithm's plan for a ConvProblem (made once).")
      .def_property_readonly("algo", [](const ConvPlan& p) { return algorithm_name(p.algo); })
      .def_property_readonly("runner",
                             [](const ConvPlan& p) { return algorithm_name(p.runner); })
      .def_readonly("workspace_bytes", &ConvPlan::workspace_bytes)
      .def_readonly("note", &ConvPlan::note)
      .def_readonly("threads", &ConvPlan::threads)
      .def_property_readonly("pass_", [](const ConvPlan& p) { return pass_name(p.pass); });

  py::class_<ConvProblemHandle, std::shared_ptr<ConvProblemHandle>>(
      m, "ConvProblem", "One conv or transposed-conv pass, normalised; see problem.h.")
      .def_property_readonly("op", [](const ConvProblemHandle& h) {
        return h.problem.op == ConvOp::kConv ? "conv" : "conv_transpose";
      })
      .def_property_readonly("pass_", [](const ConvProblemHandle& h) {
        return pass_name(h.problem.pass);
      })
      .def_property_readonly("conv_pass", [](const ConvProblemHandle& h) {
        return pass_name(h.problem.conv_pass);
      })
      .def_property_readonly("dtype", [](const ConvProblemHandle& h) {
        return dtype_name(h.problem.dtype);
      })
      .def_property_readonly("swap_operands",
                             [](const ConvProblemHandle& h) { return h.problem.swap_operands; })
      .def_property_readonly("x_shape", [](const ConvProblemHandle& h) {
        return as_tuple(h.problem.x_shape);
      })
      .def_property_readonly("w_shape", [](const ConvProblemHandle& h) {
        return as_tuple(h.problem.w_shape);
      })
      .def_property_readonly("y_shape", [](const ConvProblemHandle& h) {
        return as_tuple(h.problem.y_shape);
      })
      .def_property_readonly("operand_shapes", [](const ConvProblemHandle& h) {
        return py::make_tuple(as_tuple(h.problem.operand_shapes[0]),
                              as_tuple(h.problem.operand_shapes[1]));
      })
      .def_property_readonly("result_shape", [](const ConvProblemHandle& h) {
        return as_tuple(h.problem.result_shape);
      })
      .def_property_readonly("bias_channels",
                             [](const ConvProblemHandle& h) { return h.problem.bias_channels; })
      .def_property_readonly("stride", [](const ConvProblemHandle& h) {
        return as_tuple(h.problem.stride);
      })
      .def_property_readonly("pad_lo", [](const ConvProblemHandle& h) {
        return as_tuple(h.problem.pad_lo);
      })
      .def_property_readonly("pad_hi", [](const ConvProblemHandle& h) {
        return as_tuple(h.problem.pad_hi);
      })
      .def_property_readonly("dilation", [](const ConvProblemHandle& h) {
        return as_tuple(h.problem.dilation);
      })
      .def_property_readonly("output_padding", [](const ConvProblemHandle& h) {
        return as_tuple(h.problem.output_padding);
      })
      .def_property_readonly("groups", [](const ConvProblemHandle& h) { return h.problem.g.groups; })
      .def_property_readonly("mode", [](const ConvProblemHandle& h) {
        return h.problem.g.mode == ConvMode::kConv ? "conv" : "cross";
      })
      .def_property_readonly("flops", [](const ConvProblemHandle& h) { return h.problem.g.flops(); })
      .def_property_readonly(
          "conv_geometry",
          [](const ConvProblemHandle& h) {
            // The convolution that runs, as the CUDA module takes it: x_shape, w_shape, stride,
            // pad_lo, pad_hi (a transposed conv's high padding may be negative), dilation,
            // groups, mode.
            const ConvGeometry& g = h.problem.g;
            return py::make_tuple(as_tuple(g.input_shape()), as_tuple(g.weight_shape()),
                                  as_tuple(tail(g.stride, g.rank)),
                                  as_tuple(tail(g.pad_lo, g.rank)),
                                  as_tuple(tail(g.pad_hi, g.rank)),
                                  as_tuple(tail(g.dilation, g.rank)), g.groups,
                                  g.mode == ConvMode::kConv ? "conv" : "cross");
          },
          "(x_shape, w_shape, stride, pad_lo, pad_hi, dilation, groups, mode) of the conv "
          "that runs")
      .def_property_readonly(
          "implicit_gemm_strided_panels",
          [](const ConvProblemHandle& h) { return implicit_gemm_strided_panels(h.problem); },
          "Whether implicit_gemm runs this pass as a strided forward without a packed phase "
          "split: over column planes of the stride phases read in place, or gathering stride-2 "
          "columns from the input")
      .def("plan", &plan, py::arg("algo"),
           "The plan of `algo` (made once, then cached); NotImplementedError with the reason "
           "when it cannot run this problem.")
      .def(
          "unsupported_reason",
          [](ConvProblemHandle& h, const std::string& algo, bool forced) {
            const ConvPlanResult& r = h.plan(parse_algorithm(algo));
            if (forced && !r.invalid.empty()) throw InvalidArgument(r.invalid);
            return r.unsupported;
          },
          py::arg("algo"), py::arg("forced") = false,
          "Why `algo` cannot run this problem ('' when it can). An invalid setting (a bad tuning "
          "knob) is a reason too, raised as ValueError instead when `forced`.");

  m.def("conv_problem", &conv_problem, py::arg("op"), py::arg("pass_"), py::arg("shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("pad_lo"),
        py::arg("pad_hi"), py::arg("dilation"), py::arg("groups"), py::arg("mode"),
        py::arg("output_padding"), py::arg("dtype"));
  m.def("conv", &conv, py::arg("problem"), py::arg("plan"), py::arg("a"), py::arg("b"),
        py::arg("bias"), py::arg("out"));
  m.def("conv_backward_bias", &conv_backward_bias, py::arg("grad_y_shape"), py::arg("dtype"),
        py::arg("grad_y"), py::arg("out"));

  py::class_<PoolProblem, std::shared_ptr<PoolProblem>>(
      m, "PoolProblem", "One pooling (or max_unpool) pass, normalised; see problem.h.")
      .def_property_readonly("kind", [](const PoolProblem& p) { return pool_kind_name(p.kind); })
      .def_property_readonly("pass_", [](const PoolProblem& p) { return pool_pass_name(p.pass); })
      .def_property_readonly("dtype", [](const PoolProblem& p) { return dtype_name(p.dtype); })
      .def_property_readonly("x_shape", [](const PoolProblem& p) { return as_tuple(p.x_shape); })
      .def_property_readonly("y_shape", [](const PoolProblem& p) { return as_tuple(p.y_shape); })
      .def_property_readonly("result_shape",
                             [](const PoolProblem& p) { return as_tuple(p.result_shape); })
      .def_readonly("count_include_pad", &PoolProblem::count_include_pad)
      .def_readonly("p", &PoolProblem::p)
      .def_property_readonly(
          "pool_geometry",
          [](const PoolProblem& p) {
            // The pooling window as the CUDA module takes it: the pooled input's shape (for
            // max_unpool: the unpooled output), kernel, stride, pad_lo, pad_hi, dilation,
            // ceil_mode.
            const PoolGeometry& g = p.g;
            Shape in{g.n, g.c};
            for (int64_t e : tail(g.in, g.rank)) in.push_back(e);
            return py::make_tuple(as_tuple(in), as_tuple(tail(g.kernel, g.rank)),
                                  as_tuple(tail(g.stride, g.rank)),
                                  as_tuple(tail(g.pad_lo, g.rank)),
                                  as_tuple(tail(g.pad_hi, g.rank)),
                                  as_tuple(tail(g.dilation, g.rank)), g.ceil_mode);
          })
      .def_property_readonly("planes", [](const PoolProblem& p) { return p.g.n * p.g.c; });

  m.def("pool_problem", &pool_problem, py::arg("kind"), py::arg("pass_"), py::arg("x_shape"),
        py::arg("kernel"), py::arg("stride"), py::arg("pad_lo"), py::arg("pad_hi"),
        py::arg("dilation"), py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("p"),
        py::arg("output_size"), py::arg("dtype"));
  m.def("pool", &pool, py::arg("problem"), py::arg("a"), py::arg("b"), py::arg("indices"),
        py::arg("out"), py::arg("reference") = false,
        "One pooling pass; reference=True runs csrc/ref's kernels even where the direct ones "
        "serve (tests compare the two).");
  m.def("pool_runs_direct", &pool_direct_serves, py::arg("problem"),
        "Whether _C.pool runs this problem on the direct (SIMD) kernels rather than the "
        "reference.");
  m.def("geometry_constructions", &geometry_constructions,
        "Geometries built since start-up (tests: one per new call signature, none on a repeat).");
}

}  // namespace fastconv::bindings
