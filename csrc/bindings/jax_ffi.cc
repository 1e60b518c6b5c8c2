// XLA FFI handlers of fastconv.jax (jax.ffi custom calls on the CPU): every conv and
// transposed-conv pass, max/avg pooling forward and backward. The geometry comes as attributes
// the Python layer resolved at trace time (explicit padding, the selected algorithm); the
// handlers build the same ConvProblem / PoolProblem as the pybind11 bindings, plan it through
// the same ConvProblemHandle and run it with run_conv_problem / run_pool on fastconv's pool.
//
// Batching (vmap_method="expand_dims"): a vmapped call has leading axes before each operand's
// own dims, of size 1 for an operand that is not batched. When only the data operand is batched
// (a conv's x or grad_y with a shared weight; any pooling) the axes fold into N and one problem
// runs; otherwise the handler runs the problem once per batch item.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include "conv_problem_handle.h"
#include "fastconv/algorithm.h"
#include "fastconv/problem.h"
#include "fastconv/status.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
namespace py = pybind11;

namespace fastconv::bindings {
namespace {

using Ints = ffi::Span<const int64_t>;

Shape to_shape(Ints s) { return Shape(s.begin(), s.end()); }

int64_t product(const Shape& s) {
  int64_t n = 1;
  for (int64_t e : s) n *= e;
  return n;
}

bool all_ones(const Shape& s) {
  for (int64_t e : s)
    if (e != 1) return false;
  return true;
}

// One buffer: its batch (vmapped) leading dims and the op's own dims behind them.
struct Operand {
  const char* name = "";
  char* data = nullptr;
  DType dtype = DType::kFloat32;
  Shape batch, dims;

  // Item i of the batch `out_batch` (this operand's size-1 axes broadcast).
  char* at(const Shape& out_batch, int64_t i) const {
    int64_t offset = 0, stride = 1;
    for (size_t d = out_batch.size(); d-- > 0;) {
      const int64_t index = i % out_batch[d];
      i /= out_batch[d];
      if (batch[d] != 1) offset += index * stride;
      stride *= batch[d];
    }
    const int64_t item_bytes = product(dims) * (dtype == DType::kFloat64 ? 8 : 4);
    return data + offset * item_bytes;
  }
};

Operand operand_of(const ffi::AnyBuffer& buf, const char* name, size_t own_rank) {
  Operand o;
  o.name = name;
  o.data = static_cast<char*>(buf.untyped_data());
  switch (buf.element_type()) {
    case ffi::DataType::F32: o.dtype = DType::kFloat32; break;
    case ffi::DataType::F64: o.dtype = DType::kFloat64; break;
    default:
      throw InvalidType(std::string(name) + " must be float32 or float64 (XLA dtype code " +
                        std::to_string(int(buf.element_type())) + ")");
  }
  const auto dims = buf.dimensions();
  if (dims.size() < own_rank) {
    throw InvalidArgument(std::string(name) + " must have at least " + std::to_string(own_rank) +
                          " dims, got " + std::to_string(dims.size()));
  }
  const size_t lead = dims.size() - own_rank;
  o.batch.assign(dims.begin(), dims.begin() + lead);
  o.dims.assign(dims.begin() + lead, dims.end());
  return o;
}

// Checks that every input's batch axes match the output's (or are size 1) and share its dtype.
void check_batch(const Operand& out, std::initializer_list<const Operand*> inputs) {
  for (const Operand* in : inputs) {
    if (!in) continue;
    if (in->dtype != out.dtype) {
      throw InvalidType(std::string(in->name) + " has dtype " + dtype_name(in->dtype) + ", " +
                        out.name + " " + dtype_name(out.dtype) + ": they must match");
    }
    bool ok = in->batch.size() == out.batch.size();
    for (size_t d = 0; ok && d < in->batch.size(); ++d)
      ok = in->batch[d] == out.batch[d] || in->batch[d] == 1;
    if (!ok) {
      throw InvalidArgument(std::string(in->name) + "'s batch axes " + format_dims(in->batch) +
                            " do not match the result's " + format_dims(out.batch));
    }
  }
}

void check_shape(const Operand& o, const Shape& want) {
  if (o.dims != want) {
    throw InvalidArgument(std::string(o.name) + " must have shape " + format_dims(want) +
                          ", got " + format_dims(o.dims));
  }
}

// Runs fn() and turns fastconv's exceptions into an ffi::Error (never a crash in XLA).
template <typename Fn>
ffi::Error guarded(const char* what, Fn&& fn) {
  try {
    fn();
    return ffi::Error::Success();
  } catch (const Unsupported& e) {
    return ffi::Error(ffi::ErrorCode::kUnimplemented, std::string(what) + ": " + e.what());
  } catch (const InvalidArgument& e) {
    return ffi::Error::InvalidArgument(std::string(what) + ": " + e.what());
  } catch (const InvalidType& e) {
    return ffi::Error::InvalidArgument(std::string(what) + ": " + e.what());
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string(what) + ": " + e.what());
  }
}

// ---- convolution

// Problems (with their plans) by their arguments, made once per distinct call.
std::shared_ptr<ConvProblemHandle> conv_problem_of(const ConvArguments& a) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<ConvProblemHandle>> cache;
  std::ostringstream key;
  key << int(a.op) << ' ' << int(a.pass) << ' ' << int(a.dtype) << ' ' << a.groups;
  for (const Shape* s : {&a.shape, &a.w_shape, &a.stride, &a.pad_lo, &a.pad_hi, &a.dilation,
                         &a.output_padding})
    key << '|' << format_dims(*s);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key.str());
  if (it != cache.end()) return it->second;
  if (cache.size() >= 4096) cache.clear();  // bounded, like the Python caches
  auto handle = std::make_shared<ConvProblemHandle>(make_conv_problem(a));
  cache.emplace(key.str(), handle);
  return handle;
}

struct ConvAttributes {
  std::string_view op, pass, algo;
  Ints stride, pad_lo, pad_hi, dilation, output_padding;
  int64_t groups;
};

void run_conv_call(const ffi::AnyBuffer& a_buf, const ffi::AnyBuffer& b_buf,
                   const ffi::AnyBuffer* bias_buf, ffi::AnyBuffer& out_buf,
                   const ConvAttributes& at) {
  ConvArguments args;
  if (at.op == "conv")
    args.op = ConvOp::kConv;
  else if (at.op == "conv_transpose")
    args.op = ConvOp::kConvTranspose;
  else
    throw InvalidArgument("op must be 'conv' or 'conv_transpose', got '" + std::string(at.op) +
                          "'");
  args.pass = parse_conv_pass(std::string(at.pass));
  static const char* kNames[3][3] = {
      {"x", "w", "y"}, {"grad_y", "w", "grad_x"}, {"x", "grad_y", "grad_w"}};
  const char* const* names = kNames[int(args.pass)];
  const size_t own_rank = at.stride.size() + 2;
  Operand a = operand_of(a_buf, names[0], own_rank);
  Operand b = operand_of(b_buf, names[1], own_rank);
  Operand out = operand_of(out_buf, names[2], own_rank);
  Operand bias;
  if (bias_buf) {
    if (args.pass != ConvPass::kForward) throw InvalidArgument("only a forward pass takes a bias");
    bias = operand_of(*bias_buf, "bias", 1);
  }
  check_batch(out, {&a, &b, bias_buf ? &bias : nullptr});
  int64_t items = product(out.batch);
  if (items == 0) return;
  // The weight (and bias) shared by every item and the data operand batched like the result:
  // the batch is more images of one problem.
  const bool fold = !out.batch.empty() && args.pass != ConvPass::kBackwardWeight &&
                    all_ones(b.batch) && (!bias_buf || all_ones(bias.batch)) &&
                    a.batch == out.batch;
  Shape a_dims = a.dims, out_dims = out.dims;
  if (fold) {
    a_dims[0] *= items;
    out_dims[0] *= items;
  }
  const bool transposed = args.op == ConvOp::kConvTranspose;
  switch (args.pass) {
    case ConvPass::kForward: args.shape = a_dims, args.w_shape = b.dims; break;
    case ConvPass::kBackwardData:
      args.shape = transposed ? a_dims : out_dims, args.w_shape = b.dims;
      break;
    case ConvPass::kBackwardWeight: args.shape = a_dims, args.w_shape = out_dims; break;
  }
  args.stride = to_shape(at.stride);
  args.pad_lo = to_shape(at.pad_lo);
  args.pad_hi = to_shape(at.pad_hi);
  args.dilation = to_shape(at.dilation);
  args.output_padding = transposed ? to_shape(at.output_padding) : Shape{};
  args.groups = at.groups;
  args.padding = PaddingRule::kExplicit;
  args.dtype = out.dtype;
  auto handle = conv_problem_of(args);
  const ConvProblem& p = handle->problem;
  const Shape want_a = p.operand_shapes[0], want_b = p.operand_shapes[1];
  Operand a_seen = a, out_seen = out;
  a_seen.dims = a_dims, out_seen.dims = out_dims;
  check_shape(a_seen, want_a);
  check_shape(b, want_b);
  check_shape(out_seen, p.result_shape);
  if (bias_buf) check_shape(bias, {p.bias_channels});
  const ConvPlanResult& r = handle->plan(parse_algorithm(std::string(at.algo)));
  if (!r.invalid.empty()) throw InvalidArgument(r.invalid);
  if (!r.plan) {
    throw Unsupported("algo='" + std::string(at.algo) + "' cannot run this " +
                      std::string(at.op) + " " + pass_name(p.pass) + ": " + r.unsupported);
  }
  if (fold) items = 1;
  for (int64_t i = 0; i < items; ++i) {
    run_conv_problem(p, *r.plan, a.at(out.batch, fold ? 0 : i), b.at(out.batch, i),
                     bias_buf ? bias.at(out.batch, i) : nullptr, out.at(out.batch, fold ? 0 : i));
  }
}

ffi::Error conv_handler(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::RemainingArgs rest,
                        ffi::Result<ffi::AnyBuffer> out, std::string_view op,
                        std::string_view pass, std::string_view algo, Ints stride, Ints pad_lo,
                        Ints pad_hi, Ints dilation, Ints output_padding, int64_t groups) {
  const std::string what = "fastconv " + std::string(op) + " " + std::string(pass);
  if (rest.size() > 1) return ffi::Error::InvalidArgument(what + ": at most one bias operand");
  std::optional<ffi::AnyBuffer> bias;
  if (rest.size() == 1) {
    auto got = rest.get<ffi::AnyBuffer>(0);
    if (got.has_error()) return got.error();
    bias = *got;
  }
  const ConvAttributes at{op, pass, algo, stride, pad_lo, pad_hi, dilation, output_padding, groups};
  return guarded(what.c_str(), [&] {
    run_conv_call(a, b, bias ? &*bias : nullptr, *out, at);
  });
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastconv_conv_ffi, conv_handler,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::string_view>("op")
                                  .Attr<std::string_view>("pass_")
                                  .Attr<std::string_view>("algo")
                                  .Attr<Ints>("stride")
                                  .Attr<Ints>("pad_lo")
                                  .Attr<Ints>("pad_hi")
                                  .Attr<Ints>("dilation")
                                  .Attr<Ints>("output_padding")
                                  .Attr<int64_t>("groups"));

// ---- pooling

struct PoolAttributes {
  std::string_view kind, pass;
  Ints kernel, stride, pad_lo, pad_hi, dilation;
  bool ceil_mode, count_include_pad;
};

void run_pool_call(const ffi::AnyBuffer& a_buf, const ffi::AnyBuffer* x_buf,
                   ffi::AnyBuffer& out_buf, const PoolAttributes& at) {
  PoolArguments args;
  args.kind = parse_pool_kind(std::string(at.kind));
  if (args.kind != PoolKind::kMax && args.kind != PoolKind::kAvg)
    throw InvalidArgument("kind must be 'max_pool' or 'avg_pool', got '" + std::string(at.kind) +
                          "'");
  args.pass = parse_pool_pass(std::string(at.pass));
  const bool forward = args.pass == PoolPass::kForward;
  const size_t own_rank = at.kernel.size() + 2;
  Operand a = operand_of(a_buf, forward ? "x" : "grad_y", own_rank);
  Operand out = operand_of(out_buf, forward ? "y" : "grad_x", own_rank);
  Operand x;
  const bool needs_x = !forward && args.kind == PoolKind::kMax;  // argmax recomputed from x
  if (needs_x != (x_buf != nullptr))
    throw InvalidArgument(needs_x ? "max_pool backward needs x" : "this pass takes one operand");
  if (x_buf) x = operand_of(*x_buf, "x", own_rank);
  check_batch(out, {&a, x_buf ? &x : nullptr});
  int64_t items = product(out.batch);
  if (items == 0) return;
  // Every plane pools on its own: a batch that all operands share is more images.
  const bool fold = a.batch == out.batch && (!x_buf || x.batch == out.batch);
  Shape a_dims = a.dims, out_dims = out.dims, x_dims = x.dims;
  if (fold) {
    a_dims[0] *= items;
    out_dims[0] *= items;
    if (x_buf) x_dims[0] *= items;
  }
  args.x_shape = forward ? a_dims : out_dims;
  args.kernel = to_shape(at.kernel);
  args.stride = to_shape(at.stride);
  args.pad_lo = to_shape(at.pad_lo);
  args.pad_hi = to_shape(at.pad_hi);
  args.dilation = to_shape(at.dilation);
  args.ceil_mode = at.ceil_mode;
  args.count_include_pad = at.count_include_pad;
  args.dtype = out.dtype;
  const PoolProblem p = make_pool_problem(args);
  Operand a_seen = a, out_seen = out, x_seen = x;
  a_seen.dims = a_dims, out_seen.dims = out_dims, x_seen.dims = x_dims;
  check_shape(a_seen, forward ? p.x_shape : p.y_shape);
  check_shape(out_seen, p.result_shape);
  if (x_buf) check_shape(x_seen, p.x_shape);
  if (fold) items = 1;
  for (int64_t i = 0; i < items; ++i) {
    run_pool(p, a.at(out.batch, fold ? 0 : i), x_buf ? x.at(out.batch, fold ? 0 : i) : nullptr,
             nullptr, out.at(out.batch, fold ? 0 : i));
  }
}

ffi::Error pool_handler(ffi::AnyBuffer a, ffi::RemainingArgs rest, ffi::Result<ffi::AnyBuffer> out,
                        std::string_view kind, std::string_view pass, Ints kernel, Ints stride,
                        Ints pad_lo, Ints pad_hi, Ints dilation, bool ceil_mode,
                        bool count_include_pad) {
  const std::string what = "fastconv " + std::string(kind) + " " + std::string(pass);
  if (rest.size() > 1) return ffi::Error::InvalidArgument(what + ": at most two operands");
  std::optional<ffi::AnyBuffer> x;
  if (rest.size() == 1) {
    auto got = rest.get<ffi::AnyBuffer>(0);
    if (got.has_error()) return got.error();
    x = *got;
  }
  const PoolAttributes at{kind,   pass,     kernel,    stride,
                          pad_lo, pad_hi,   dilation,  ceil_mode,
                          count_include_pad};
  return guarded(what.c_str(), [&] { run_pool_call(a, x ? &*x : nullptr, *out, at); });
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastconv_pool_ffi, pool_handler,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<std::string_view>("kind")
                                  .Attr<std::string_view>("pass_")
                                  .Attr<Ints>("kernel")
                                  .Attr<Ints>("stride")
                                  .Attr<Ints>("pad_lo")
                                  .Attr<Ints>("pad_hi")
                                  .Attr<Ints>("dilation")
                                  .Attr<bool>("ceil_mode")
                                  .Attr<bool>("count_include_pad"));

}  // namespace

void bind_jax_ffi(py::module_& m) {
  py::dict targets;
  targets["fastconv_conv"] = py::capsule(reinterpret_cast<void*>(&fastconv_conv_ffi));
  targets["fastconv_pool"] = py::capsule(reinterpret_cast<void*>(&fastconv_pool_ffi));
  m.attr("jax_ffi_targets") = targets;
  m.attr("jax_ffi_built_for") =
      py::make_tuple(FASTCONV_JAXLIB_VERSION, py::make_tuple(XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR));
}

}  // namespace fastconv::bindings
