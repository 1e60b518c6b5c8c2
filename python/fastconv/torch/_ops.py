"""fastconv's kernels as PyTorch operators (torch.ops.fastconv.*): real kernels through
fastconv/_calls.py (CPU and CUDA backends alike), fake kernels for tracing, autograd through the
other passes (so gradients of gradients work), autocast on CUDA.

The operators are defined with torch.library.Library and a torch.autograd.Function on the
Autograd key rather than torch.library.custom_op: measured here, custom_op's Python wrapper
costs ~50 us per call before the kernel runs and its autograd path grows with the square of the
argument count, while a Library operator with packed arguments costs ~8 us. So every operator
takes its geometry as one int list and its choices as one string (`pack_conv` / `pack_pool`
build them), all normalised by the caller (fastconv/torch/functional.py, _recording.py).

  fastconv::conv(Tensor a, Tensor b, Tensor? bias, SymInt[] shape, int[] window, str spec)
    one pass of a convolution or transposed convolution; window = stride + pad_lo + pad_hi +
    dilation + output_padding + [groups]; spec = "op pass mode algo"; (a, b) are the pass's
    operands in public order: forward (x, w), backward_data (grad_y, w), backward_weight
    (x, grad_y); shape: the x_shape / w_shape a conv backward pass returns (else empty).
  fastconv::max_pool(Tensor x, int[] window, bool ceil_mode) -> (Tensor, Tensor)
  fastconv::max_pool_backward(Tensor grad_y, Tensor x, Tensor indices, int[] window, bool ceil_mode)
    window = kernel + stride + pad_lo + pad_hi + dilation
  fastconv::avg_pool(Tensor x, int[] window, bool ceil_mode, bool count_include_pad)
  fastconv::avg_pool_backward(Tensor grad_y, SymInt[] x_shape, int[] window, bool ceil_mode,
                              bool count_include_pad)        window = kernel + stride + lo + hi
  fastconv::lp_pool(Tensor x, float p, int[] window, bool ceil_mode)      window = kernel + stride
  fastconv::lp_pool_backward(Tensor grad_y, Tensor x, float p, int[] window, bool ceil_mode)
  fastconv::max_unpool(Tensor x, Tensor indices, int[] window, SymInt[] output_size)
    window = kernel + stride + pad_lo + pad_hi
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.autograd.forward_ad as _fwad
from torch import Tensor

from .. import _calls
from .._problem import remember
from .._runtime import follow_threads
from ..backends.cuda_plan import result_channels_last, stored_channels_last
from ._shapes import conv_result_shape

_LIB = torch.library.Library("fastconv", "DEF")
_SCHEMAS = {
    "conv": "(Tensor a, Tensor b, Tensor? bias, SymInt[] shape, int[] window, str spec) -> Tensor",
    "max_pool": "(Tensor x, int[] window, bool ceil_mode) -> (Tensor, Tensor)",
    "max_pool_backward": "(Tensor grad_y, Tensor x, Tensor indices, int[] window, bool ceil_mode)"
    " -> Tensor",
    "avg_pool": "(Tensor x, int[] window, bool ceil_mode, bool count_include_pad) -> Tensor",
    "avg_pool_backward": "(Tensor grad_y, SymInt[] x_shape, int[] window, bool ceil_mode, "
    "bool count_include_pad) -> Tensor",
    "lp_pool": "(Tensor x, float p, int[] window, bool ceil_mode) -> Tensor",
    "lp_pool_backward": "(Tensor grad_y, Tensor x, float p, int[] window, bool ceil_mode) "
    "-> Tensor",
    "max_unpool": "(Tensor x, Tensor indices, int[] window, SymInt[] output_size) -> Tensor",
}
for _name, _schema in _SCHEMAS.items():
    _LIB.define(_name + _schema)
OPS = torch.ops.fastconv


_KERNELS: dict = {}  # operator name -> its (CPU and CUDA) kernel, for call()


def _register(name: str):
    """Registers the decorated function as the CPU and CUDA kernel of fastconv::name."""

    def register(fn):
        for key in ("CPU", "CUDA"):
            _LIB.impl(name, fn, key)
        _KERNELS[name] = fn
        return fn

    return register


def _split(window: Sequence[int], parts: int) -> list[list[int]]:
    rank = len(window) // parts
    return [list(window[i * rank : (i + 1) * rank]) for i in range(parts)]


def _plain(tensors) -> bool:
    """Dense CPU / CUDA tensors of no subclass, with no dispatch mode, functorch transform or
    TorchScript trace active: below the Autograd key the dispatcher would call the backend
    kernel itself, so calling it directly is the same call without a second dispatch."""
    if (
        torch._C._len_torch_dispatch_stack()
        or torch._C._are_functorch_transforms_active()
        or torch._C._get_tracing_state() is not None
    ):
        return False
    return all(type(t) in _PLAIN_TYPES and (t.is_cpu or t.is_cuda) for t in tensors)


# nn.Parameter is a plain tensor for dispatch (its __torch_function__ is disabled): modules'
# weights must not send every call through the slow path.
_PLAIN_TYPES = (Tensor, torch.nn.Parameter)


def _forward_ad(tensors) -> bool:
    """Whether forward-mode AD would see this call: a tensor with a tangent at the current
    forward_ad dual level, or torch.func.jvp's transform on top."""
    if _fwad._current_level >= 0 and any(
        _fwad.unpack_dual(t).tangent is not None for t in tensors if t is not None
    ):
        return True
    if torch._C._are_functorch_transforms_active():
        top = torch._C._functorch.peek_interpreter_stack()
        return top is not None and top.key() == torch._C._functorch.TransformType.Jvp
    return False


def _no_forward_ad(name: str, tensors) -> None:
    if _forward_ad(tensors):
        raise NotImplementedError(
            f"fastconv::{name} has no forward-mode AD (jvp, torch.func.jvp, forward_ad) yet; "
            "use reverse mode (backward, torch.func.grad/vjp)"
        )


def _below_autograd(name: str, kernel, args: tuple, tensors):
    """fastconv::name(*args) below the Autograd key: the kernel directly for plain tensors
    (see _plain), else a redispatch (fake tensors, functionalization, other modes)."""
    if _plain(tensors):
        return kernel(*args)
    with torch._C._AutoDispatchBelowAutograd():
        return getattr(OPS, name).default(*args)


def _autograd(name: str, function, kernel, differentiable: tuple[int, ...]) -> None:
    """Registers fastconv::name's Autograd kernel: `function` (a torch.autograd.Function) when a
    differentiable argument (by position) requires grad, else the call without autograd's cost
    (measured: Function.apply alone costs ~35 us a call)."""

    def run(*args):
        tensors = [args[i] for i in differentiable if args[i] is not None]
        _no_forward_ad(name, tensors)  # rather than tangents silently dropped
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return function.apply(*args)
        return _below_autograd(name, kernel, args, tensors)

    _LIB.impl(name, run, "Autograd")


# ---- convolution


def pack_conv(
    op, pass_, shape, stride, pad_lo, pad_hi, dilation, groups, mode, output_padding, algo
) -> tuple:
    """(shape, window, spec) of fastconv::conv from the unpacked arguments."""
    window = [*stride, *pad_lo, *pad_hi, *dilation, *output_padding, groups]
    return list(shape), window, f"{op} {pass_} {mode} {algo}"


_CONV_ARGS: dict = {}  # (shape, window, spec) -> run_conv's arguments (a few per layer)


def _conv_args(shape, window, spec: str) -> tuple:
    """run_conv's (op, pass_, shape_arg, algo, params, packed) of the packed arguments."""
    op, pass_, mode, algo = spec.split()
    stride, lo, hi, dilation, output_padding = _split(window[:-1], 5)
    takes_shape = pass_ == "backward_weight" or (op == "conv" and pass_ == "backward_data")
    shape_arg = tuple(int(s) for s in shape) if takes_shape else None
    params = (
        tuple(stride),
        tuple(zip(lo, hi)),
        tuple(dilation),
        window[-1],
        mode,
        tuple(output_padding),
    )
    packed = ("fastconv::conv", shape_arg, tuple(window), spec)
    return op, pass_, shape_arg, algo, params, packed


@_register("conv")
def _conv_kernel(a: Tensor, b: Tensor, bias, shape, window, spec: str) -> Tensor:
    follow_threads(torch.get_num_threads())
    key = (tuple(shape), tuple(window), spec)
    args = _CONV_ARGS.get(key)
    if args is None:
        args = _conv_args(shape, window, spec)
        remember(_CONV_ARGS, key, args)
    op, pass_, shape_arg, algo, params, packed = args
    return _calls.run_conv(op, pass_, a, b, bias, shape_arg, algo, params, packed)


@torch.library.register_fake("fastconv::conv")
def _(a, b, bias, shape, window, spec):
    op, pass_, _, _ = spec.split()
    stride, lo, hi, dilation, output_padding = _split(window[:-1], 5)
    size = conv_result_shape(
        op, pass_, a.shape, b.shape, shape, stride, lo, hi, dilation, window[-1], output_padding
    )
    # the layout the kernel's result has (fastconv/backends/cuda.py decides it for CUDA)
    stored = (stored_channels_last(a), stored_channels_last(b))
    if a.is_cuda and result_channels_last(pass_, stored, str(a.dtype)[6:]):
        return torch.empty(size, dtype=a.dtype, device=a.device, memory_format=torch.channels_last)
    return a.new_empty(size)


def _like(grad, ref: Tensor):
    """A weight gradient in the parameter's own memory format (DDP's gradient buckets view the
    parameters' layout)."""
    if grad is None or ref.dim() not in (4, 5) or ref.is_contiguous():
        return grad
    fmt = torch.channels_last if ref.dim() == 4 else torch.channels_last_3d
    return grad.contiguous(memory_format=fmt) if ref.is_contiguous(memory_format=fmt) else grad


class _ConvFunction(torch.autograd.Function):
    """Autograd of fastconv::conv: each pass's gradients are the other passes of the same
    convolution (linear in each operand), run by the same operator."""

    @staticmethod
    def forward(ctx, a, b, bias, shape, window, spec):
        args = (a, b, bias, shape, window, spec)
        out = _below_autograd(
            "conv", _conv_kernel, args, [t for t in (a, b, bias) if t is not None]
        )
        ctx.save_for_backward(a, b)
        ctx.window, ctx.spec, ctx.has_bias = window, spec, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        op, pass_, mode, algo = ctx.spec.split()
        # The gradients' passes pick their own algorithm: auto's, or autotune's when asked
        # (a forced name may not run the other passes).
        algo = "autotune" if algo == "autotune" else "auto"

        def run(p, u, v, shape=()):
            args = (u, v, None, list(shape), ctx.window, f"{op} {p} {mode} {algo}")
            return call("conv", args, (u, v))

        need_a, need_b, need_bias = ctx.needs_input_grad[:3]
        ga = gb = gbias = None
        x_shape = a.shape if op == "conv" else ()
        if pass_ == "forward":  # y = F(x, w): dx = D(gy, w), dw = W(x, gy)
            ga = run("backward_data", grad, b, x_shape) if need_a else None
            gb = _like(run("backward_weight", a, grad, b.shape), b) if need_b else None
            if ctx.has_bias and need_bias:
                gbias = grad.sum(dim=[d for d in range(grad.dim()) if d != 1])
        elif pass_ == "backward_data":  # gx = D(gy, w) is linear in both: the adjoints
            ga = run("forward", grad, b) if need_a else None
            gb = _like(run("backward_weight", grad, a, b.shape), b) if need_b else None
        else:  # gw = W(x, gy)
            x_shape = a.shape if op == "conv" else ()
            ga = run("backward_data", b, grad, x_shape) if need_a else None
            gb = run("forward", a, grad) if need_b else None
        return ga, gb, gbias, None, None, None


_autograd("conv", _ConvFunction, _conv_kernel, (0, 1, 2))


# ---- the unpacked forms fastconv/torch/functional.py and _recording.py call


def call(name: str, args: tuple, tensors) -> Tensor:
    """fastconv::name(*args). In eager mode, on plain tensors (see _plain) that need no
    gradient and no CUDA autocast, the dispatcher would only reach the kernel through the
    Autograd kernel's redispatch, so the kernel runs directly: a dispatch into Python costs
    ~10 us, and more inside it (measured: 52 us per tiny conv through the operator, 18 us
    straight). Under torch.compile, autograd, autocast or any mode the operator runs."""
    if _is_compiling() or not _plain_eager(tensors):
        return getattr(OPS, name).default(*args)
    return _KERNELS[name](*args)


_is_compiling = torch.compiler.is_compiling
_grad_enabled = torch.is_grad_enabled
_dispatch_modes = torch._C._len_torch_dispatch_stack
_functorch_active = torch._C._are_functorch_transforms_active
_tracing = torch._C._get_tracing_state
_autocast = torch.is_autocast_enabled
_function_modes = torch._C._is_torch_function_mode_enabled
_profiling = torch._C._autograd._profiler_enabled


def _plain_eager(tensors) -> bool:
    """_plain(tensors), none needing a gradient, no CUDA autocast on a CUDA one (None skipped),
    and nothing that watches the operator call itself: a TorchFunctionMode, the profiler,
    forward-mode AD."""
    if (
        _dispatch_modes()
        or _functorch_active()
        or _tracing() is not None
        or _function_modes()
        or _profiling()
        or _fwad._current_level >= 0
    ):
        return False
    grad = _grad_enabled()
    for t in tensors:
        if t is None:
            continue
        if type(t) not in _PLAIN_TYPES or (grad and t.requires_grad):
            return False
        if not t.is_cpu and not (t.is_cuda and not _autocast("cuda")):
            return False
    return True


def conv(
    a,
    b,
    bias,
    op,
    pass_,
    shape,
    stride,
    pad_lo,
    pad_hi,
    dilation,
    groups,
    mode,
    output_padding,
    algo,
) -> Tensor:
    """fastconv::conv from unpacked arguments."""
    packed = pack_conv(
        op, pass_, shape, stride, pad_lo, pad_hi, dilation, groups, mode, output_padding, algo
    )
    return call("conv", (a, b, bias, *packed), (a, b, bias))


# ---- CUDA autocast: convolutions run in the autocast dtype (torch.autocast's dtype=, float16
# or bfloat16), as PyTorch's own do; pools have no rule and run in their input's dtype, as
# PyTorch's do.


def autocast_args(args: tuple, device_type: str, dtype) -> tuple:
    """args with every floating tensor on `device_type` other than float64 cast to dtype (what
    autocast does to an operator on its lower-precision list)."""

    def cast(v):
        if (
            isinstance(v, Tensor)
            and v.device.type == device_type
            and v.is_floating_point()
            and v.dtype not in (dtype, torch.float64)
        ):
            return v.to(dtype)
        return v

    return tuple(cast(v) for v in args)


_AUTOCAST_CUDA = torch._C.DispatchKey.AutocastCUDA


def _conv_autocast(*args):
    dtype = torch.get_autocast_dtype("cuda")
    with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(_AUTOCAST_CUDA)):
        return OPS.conv.default(*autocast_args(args, "cuda", dtype))


_LIB.impl("conv", lambda _keyset, *args: _conv_autocast(*args), "AutocastCUDA", with_keyset=True)
OPS.conv.default.py_impl(_AUTOCAST_CUDA)(_conv_autocast)  # the Python dispatcher (tracing)
