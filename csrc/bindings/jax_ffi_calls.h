// The custom calls of fastconv.jax as the XLA FFI hands them over, decoded once for every
// platform: the CPU handlers (csrc/bindings/jax_ffi.cc, in fastconv._C) and the CUDA ones
// (cuda/jax_ffi.cc, in fastconv._cuda) bind the same signatures, read the same attributes into
// the same ConvArguments / PoolProblem, check the operands the same way and differ only in
// what runs the problem.
//
// Batching (vmap_method="expand_dims"): a vmapped call has leading axes before each operand's
// own dims, of size 1 for an operand that is not batched. When only the data operand is batched
// (a conv's x or grad_y with a shared weight; any pooling) the axes fold into N and one problem
// runs (items == 1); otherwise the problem runs once per batch item (item(i)).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fastconv/problem.h"
#include "fastconv/status.h"
#include "xla/ffi/api/ffi.h"

namespace fastconv::jax_ffi {

namespace ffi = xla::ffi;
using Ints = ffi::Span<const int64_t>;

// The element types a platform's kernels take: the CPU's float32 / float64, the GPU's also
// float16 / bfloat16.
enum class Platform { kCpu, kCuda };

// One buffer: its batch (vmapped) leading dims and the op's own dims behind them.
struct Operand {
  const char* name = "";
  char* data = nullptr;
  DType dtype = DType::kFloat32;
  int64_t item_size = 4;  // bytes per element
  bool is_index = false;  // int64 indices (dtype unused)
  Shape batch, dims;

  // Item i of the batch `out_batch` (this operand's size-1 axes broadcast).
  char* at(const Shape& out_batch, int64_t i) const;
};

// ---- convolution: (a, b[, bias]) -> out, the pass's operands in public order (forward (x, w),
// backward_data (grad_y, w), backward_weight (x, grad_y)).

// The conv target's attributes (XLA decodes them into this struct: see the registration at the
// end of this file).
struct ConvAttributes {
  std::string_view op, pass, algo, gpu_algo;  // algo: the CPU's choice, gpu_algo: the GPU's
  Ints stride, pad_lo, pad_hi, dilation, output_padding;
  int64_t groups;
};

struct ConvCall {
  ConvArguments args;  // the problem of one item, or of the folded batch
  Operand a, b, bias, out;
  bool has_bias = false;
  int64_t items = 0;  // problems to run (1 when the batch folds into N; 0: nothing to do)

  struct Pointers {
    const void *a, *b, *bias;
    void* out;
  };
  Pointers item(int64_t i) const;
};

ConvCall decode_conv(Platform platform, const ffi::AnyBuffer& a, const ffi::AnyBuffer& b,
                     const std::optional<ffi::AnyBuffer>& bias, ffi::AnyBuffer& out,
                     const ConvAttributes& at);
// The operands against the problem made from call.args (shapes, bias length).
void check_conv_operands(const ConvCall& call, const ConvProblem& problem);

// The XLA signature of the conv target after `binding`'s context arguments:
// handler(ctx..., a, b, std::optional bias, out, ConvAttributes).
template <typename Binding>
auto bind_conv(Binding binding) {
  return std::move(binding)
      .template Arg<ffi::AnyBuffer>()
      .template Arg<ffi::AnyBuffer>()
      .template OptionalArg<ffi::AnyBuffer>()
      .template Ret<ffi::AnyBuffer>()
      .template Attrs<ConvAttributes>();
}

// ---- pooling (max / avg). Passes and operands:
//   forward:  (x) -> y, and the argmax indices (int64, y-shaped) when a second result is asked
//             for (max only)
//   backward: avg (grad_y) -> grad_x; max (grad_y, indices) -> grad_x
//   gather:   max (grad_x, indices) -> grad_x at the indices, y-shaped (second order)

struct PoolAttributes {
  std::string_view kind, pass;
  Ints kernel, stride, pad_lo, pad_hi, dilation;
  bool ceil_mode, count_include_pad;
};

struct PoolCall {
  PoolProblem problem;  // of one item, or of the folded batch
  Operand a, indices, out;
  bool has_indices = false;  // read (backward, gather) or written (forward)
  int64_t items = 0;

  struct Pointers {
    const void* a;
    int64_t* indices;
    void* out;
  };
  Pointers item(int64_t i) const;
};

PoolCall decode_pool(Platform platform, const ffi::AnyBuffer& a,
                     const std::optional<ffi::AnyBuffer>& indices, ffi::AnyBuffer& out,
                     std::optional<ffi::Result<ffi::AnyBuffer>>& indices_out,
                     const PoolAttributes& at);

// handler(ctx..., a, std::optional indices, out, std::optional indices_out, PoolAttributes).
template <typename Binding>
auto bind_pool(Binding binding) {
  return std::move(binding)
      .template Arg<ffi::AnyBuffer>()
      .template OptionalArg<ffi::AnyBuffer>()
      .template Ret<ffi::AnyBuffer>()
      .template OptionalRet<ffi::AnyBuffer>()
      .template Attrs<PoolAttributes>();
}

// ---- errors

// Runs fn() and turns fastconv's exceptions (and any other) into an ffi::Error whose message
// starts with `what`: XLA raises it in Python, the process never crashes.
ffi::Error error_of(const std::string& what, std::exception_ptr e);
template <typename Fn>
ffi::Error guarded(const std::string& what, Fn&& fn) {
  try {
    fn();
    return ffi::Error::Success();
  } catch (...) {
    return error_of(what, std::current_exception());
  }
}

}  // namespace fastconv::jax_ffi

// The attributes by name (fastconv/jax/_conv.py and _pool.py pass them), in the structs' order.
XLA_FFI_REGISTER_STRUCT_ATTR_DECODING(
    fastconv::jax_ffi::ConvAttributes, xla::ffi::StructMember<std::string_view>("op"),
    xla::ffi::StructMember<std::string_view>("pass_"),
    xla::ffi::StructMember<std::string_view>("algo"),
    xla::ffi::StructMember<std::string_view>("gpu_algo"),
    xla::ffi::StructMember<fastconv::jax_ffi::Ints>("stride"),
    xla::ffi::StructMember<fastconv::jax_ffi::Ints>("pad_lo"),
    xla::ffi::StructMember<fastconv::jax_ffi::Ints>("pad_hi"),
    xla::ffi::StructMember<fastconv::jax_ffi::Ints>("dilation"),
    xla::ffi::StructMember<fastconv::jax_ffi::Ints>("output_padding"),
    xla::ffi::StructMember<int64_t>("groups"));
XLA_FFI_REGISTER_STRUCT_ATTR_DECODING(
    fastconv::jax_ffi::PoolAttributes, xla::ffi::StructMember<std::string_view>("kind"),
    xla::ffi::StructMember<std::string_view>("pass_"),
    xla::ffi::StructMember<fastconv::jax_ffi::Ints>("kernel"),
    xla::ffi::StructMember<fastconv::jax_ffi::Ints>("stride"),
    xla::ffi::StructMember<fastconv::jax_ffi::Ints>("pad_lo"),
    xla::ffi::StructMember<fastconv::jax_ffi::Ints>("pad_hi"),
    xla::ffi::StructMember<fastconv::jax_ffi::Ints>("dilation"),
    xla::ffi::StructMember<bool>("ceil_mode"),
    xla::ffi::StructMember<bool>("count_include_pad"));
