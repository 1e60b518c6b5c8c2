// Decoding of fastconv.jax's custom calls, shared by the CPU and CUDA handlers (jax_ffi_calls.h):
// buffers -> operands with their batch axes, attributes -> ConvArguments / PoolProblem, the
// operand checks, and fastconv's exceptions -> ffi::Error.
#include "jax_ffi_calls.h"

#include <exception>
#include <initializer_list>
#include <string>

namespace fastconv::jax_ffi {
namespace {

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

std::optional<DType> dtype_of(ffi::DataType t, Platform platform) {
  switch (t) {
    case ffi::DataType::F32: return DType::kFloat32;
    case ffi::DataType::F64: return DType::kFloat64;
    case ffi::DataType::F16:
      if (platform == Platform::kCuda) return DType::kFloat16;
      break;
    case ffi::DataType::BF16:
      if (platform == Platform::kCuda) return DType::kBFloat16;
      break;
    default: break;
  }
  return std::nullopt;
}

void split_dims(Operand& o, const ffi::AnyBuffer& buf, size_t own_rank) {
  const auto dims = buf.dimensions();
  if (dims.size() < own_rank) {
    throw InvalidArgument(std::string(o.name) + " must have at least " +
                          std::to_string(own_rank) + " dims, got " + std::to_string(dims.size()));
  }
  const size_t lead = dims.size() - own_rank;
  o.batch.assign(dims.begin(), dims.begin() + lead);
  o.dims.assign(dims.begin() + lead, dims.end());
}

Operand operand_of(Platform platform, const ffi::AnyBuffer& buf, const char* name,
                   size_t own_rank) {
  Operand o;
  o.name = name;
  o.data = static_cast<char*>(buf.untyped_data());
  const std::optional<DType> t = dtype_of(buf.element_type(), platform);
  if (!t) {
    throw InvalidType(std::string(name) + " must be " +
                      (platform == Platform::kCuda ? "float32, float64, float16 or bfloat16"
                                                   : "float32 or float64 on the CPU") +
                      " (XLA dtype code " + std::to_string(int(buf.element_type())) + ")");
  }
  o.dtype = *t;
  o.item_size = dtype_size(*t);
  split_dims(o, buf, own_rank);
  return o;
}

Operand indices_of(const ffi::AnyBuffer& buf, size_t own_rank) {
  Operand o;
  o.name = "indices";
  o.data = static_cast<char*>(buf.untyped_data());
  if (buf.element_type() != ffi::DataType::S64) {
    throw InvalidType("indices must be int64 (XLA dtype code " +
                      std::to_string(int(buf.element_type())) + ")");
  }
  o.is_index = true;
  o.item_size = 8;
  split_dims(o, buf, own_rank);
  return o;
}

// Every input's batch axes match the output's (or are size 1); float inputs share its dtype.
void check_batch(const Operand& out, std::initializer_list<const Operand*> inputs) {
  for (const Operand* in : inputs) {
    if (!in) continue;
    if (!in->is_index && in->dtype != out.dtype) {
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

ConvOp parse_op(std::string_view op) {
  if (op == "conv") return ConvOp::kConv;
  if (op == "conv_transpose") return ConvOp::kConvTranspose;
  throw InvalidArgument("op must be 'conv' or 'conv_transpose', got '" + std::string(op) + "'");
}

}  // namespace

char* Operand::at(const Shape& out_batch, int64_t i) const {
  int64_t offset = 0, stride = 1;
  for (size_t d = out_batch.size(); d-- > 0;) {
    const int64_t index = i % out_batch[d];
    i /= out_batch[d];
    if (batch[d] != 1) offset += index * stride;
    stride *= batch[d];
  }
  return data + offset * product(dims) * item_size;
}

// ---- convolution

ConvCall::Pointers ConvCall::item(int64_t i) const {
  return {a.at(out.batch, i), b.at(out.batch, i), has_bias ? bias.at(out.batch, i) : nullptr,
          out.at(out.batch, i)};
}

ConvCall decode_conv(Platform platform, const ffi::AnyBuffer& a_buf, const ffi::AnyBuffer& b_buf,
                     const std::optional<ffi::AnyBuffer>& bias_buf, ffi::AnyBuffer& out_buf,
                     const ConvAttributes& at) {
  ConvCall c;
  ConvArguments& args = c.args;
  args.op = parse_op(at.op);
  args.pass = parse_conv_pass(std::string(at.pass));
  static const char* kNames[3][3] = {
      {"x", "w", "y"}, {"grad_y", "w", "grad_x"}, {"x", "grad_y", "grad_w"}};
  const char* const* names = kNames[int(args.pass)];
  const size_t own_rank = at.stride.size() + 2;
  c.a = operand_of(platform, a_buf, names[0], own_rank);
  c.b = operand_of(platform, b_buf, names[1], own_rank);
  c.out = operand_of(platform, out_buf, names[2], own_rank);
  c.has_bias = bias_buf.has_value();
  if (c.has_bias) {
    if (args.pass != ConvPass::kForward) throw InvalidArgument("only a forward pass takes a bias");
    c.bias = operand_of(platform, *bias_buf, "bias", 1);
  }
  check_batch(c.out, {&c.a, &c.b, c.has_bias ? &c.bias : nullptr});
  c.items = product(c.out.batch);
  // The weight (and bias) shared by every item and the data operand batched like the result:
  // the batch is more images of one problem.
  const bool fold = !c.out.batch.empty() && args.pass != ConvPass::kBackwardWeight &&
                    all_ones(c.b.batch) && (!c.has_bias || all_ones(c.bias.batch)) &&
                    c.a.batch == c.out.batch;
  if (fold && c.items > 0) {
    c.a.dims[0] *= c.items;
    c.out.dims[0] *= c.items;
    c.items = 1;
  }
  const bool transposed = args.op == ConvOp::kConvTranspose;
  switch (args.pass) {
    case ConvPass::kForward: args.shape = c.a.dims, args.w_shape = c.b.dims; break;
    case ConvPass::kBackwardData:
      args.shape = transposed ? c.a.dims : c.out.dims, args.w_shape = c.b.dims;
      break;
    case ConvPass::kBackwardWeight: args.shape = c.a.dims, args.w_shape = c.out.dims; break;
  }
  args.stride = to_shape(at.stride);
  args.pad_lo = to_shape(at.pad_lo);
  args.pad_hi = to_shape(at.pad_hi);
  args.dilation = to_shape(at.dilation);
  args.output_padding = transposed ? to_shape(at.output_padding) : Shape{};
  args.groups = at.groups;
  args.padding = PaddingRule::kExplicit;
  args.dtype = c.out.dtype;
  return c;
}

void check_conv_operands(const ConvCall& c, const ConvProblem& p) {
  check_shape(c.a, p.operand_shapes[0]);
  check_shape(c.b, p.operand_shapes[1]);
  check_shape(c.out, p.result_shape);
  if (c.has_bias) check_shape(c.bias, {p.bias_channels});
}

// ---- pooling

PoolCall::Pointers PoolCall::item(int64_t i) const {
  return {a.at(out.batch, i),
          has_indices ? reinterpret_cast<int64_t*>(indices.at(out.batch, i)) : nullptr,
          out.at(out.batch, i)};
}

PoolCall decode_pool(Platform platform, const ffi::AnyBuffer& a_buf,
                     const std::optional<ffi::AnyBuffer>& indices_buf, ffi::AnyBuffer& out_buf,
                     std::optional<ffi::Result<ffi::AnyBuffer>>& indices_out,
                     const PoolAttributes& at) {
  PoolCall c;
  PoolArguments args;
  args.kind = parse_pool_kind(std::string(at.kind));
  if (args.kind != PoolKind::kMax && args.kind != PoolKind::kAvg)
    throw InvalidArgument("kind must be 'max_pool' or 'avg_pool', got '" + std::string(at.kind) +
                          "'");
  args.pass = parse_pool_pass(std::string(at.pass));
  const bool max = args.kind == PoolKind::kMax;
  const bool backward = args.pass == PoolPass::kBackward;
  const bool forward = args.pass == PoolPass::kForward;
  // What each pass reads and writes besides its one float operand and result.
  const bool reads_indices = max && !forward;
  if (reads_indices != indices_buf.has_value()) {
    throw InvalidArgument(reads_indices ? "max_pool " + std::string(at.pass) +
                                              " takes the forward's indices"
                                        : std::string(at.kind) + " " + std::string(at.pass) +
                                              " takes one operand");
  }
  if (indices_out && !(max && forward))
    throw InvalidArgument("only max_pool's forward returns indices");
  const size_t own_rank = at.kernel.size() + 2;
  c.a = operand_of(platform, a_buf, forward ? "x" : backward ? "grad_y" : "grad_x", own_rank);
  c.out = operand_of(platform, out_buf, forward ? "y" : backward ? "grad_x" : "out", own_rank);
  c.has_indices = indices_buf || indices_out;
  if (indices_buf) c.indices = indices_of(*indices_buf, own_rank);
  if (indices_out) c.indices = indices_of(**indices_out, own_rank);
  check_batch(c.out, {&c.a, indices_buf ? &c.indices : nullptr});
  if (indices_out && c.indices.batch != c.out.batch)
    throw InvalidArgument("indices must be batched like y");
  c.items = product(c.out.batch);
  // Every plane pools on its own: a batch that all operands share is more images.
  const bool fold = c.a.batch == c.out.batch && (!c.has_indices || c.indices.batch == c.out.batch);
  if (fold && c.items > 0) {
    for (Operand* o : {&c.a, &c.out, &c.indices})
      if (!o->dims.empty()) o->dims[0] *= c.items;
    c.items = 1;
  }
  args.x_shape = backward ? c.out.dims : c.a.dims;
  args.kernel = to_shape(at.kernel);
  args.stride = to_shape(at.stride);
  args.pad_lo = to_shape(at.pad_lo);
  args.pad_hi = to_shape(at.pad_hi);
  args.dilation = to_shape(at.dilation);
  args.ceil_mode = at.ceil_mode;
  args.count_include_pad = at.count_include_pad;
  args.dtype = c.out.dtype;
  c.problem = make_pool_problem(args);
  const PoolProblem& p = c.problem;
  check_shape(c.a, backward ? p.y_shape : p.x_shape);
  check_shape(c.out, p.result_shape);
  if (c.has_indices) check_shape(c.indices, p.y_shape);
  return c;
}

// ---- errors

ffi::Error error_of(const std::string& what, std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const Unsupported& e) {
    return ffi::Error(ffi::ErrorCode::kUnimplemented, what + ": " + e.what());
  } catch (const InvalidArgument& e) {
    return ffi::Error::InvalidArgument(what + ": " + e.what());
  } catch (const InvalidType& e) {
    return ffi::Error::InvalidArgument(what + ": " + e.what());
  } catch (const std::exception& e) {
    return ffi::Error::Internal(what + ": " + e.what());
  } catch (...) {
    return ffi::Error::Internal(what + ": an unknown exception");
  }
}

}  // namespace fastconv::jax_ffi
