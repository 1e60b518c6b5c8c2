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
from torch import Tensor

from .. import _calls
from .._problem import remember
from .._runtime import follow_threads
from ._shapes import conv_result_shape, pool_result_shape

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


def _register(name: str):
    """Registers the decorated function as the CPU and CUDA kernel of fastconv::name."""

    def register(fn):
        for key in ("CPU", "CUDA"):
            _LIB.impl(name, fn, key)
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
    return all(type(t) is Tensor and (t.is_cpu or t.is_cuda) for t in tensors)


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
    return a.new_empty(
        conv_result_shape(
            op, pass_, a.shape, b.shape, shape, stride, lo, hi, dilation, window[-1], output_padding
        )
    )


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
        op, pass_, mode, _ = ctx.spec.split()

        def run(p, u, v, shape=()):
            args = (u, v, None, list(shape), ctx.window, f"{op} {p} {mode} auto")
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


# ---- pooling


def _pool_params(kernel, stride, lo, hi, dilation, ceil_mode, cip=True, p=2.0, size=None):
    return (
        tuple(kernel),
        tuple(stride),
        tuple(zip(lo, hi)),
        tuple(dilation),
        ceil_mode,
        cip,
        p,
        size,
    )


def _packed(name: str, *args) -> tuple:
    return (name, *[tuple(a) if type(a) is list else a for a in args])


_POOL_ARGS: dict = {}  # packed arguments -> run_pool's params (a few per layer)


def _pool_args(name: str, build, *args) -> tuple:
    """(params, packed) of a pool operator's arguments: build(*args) made once per distinct
    arguments; `packed` (hashable) keys fastconv's own caches."""
    packed = _packed(name, *args)
    params = _POOL_ARGS.get(packed)
    if params is None:
        params = build(*args)
        remember(_POOL_ARGS, packed, params)
    return params, packed


def _max_params(window, ceil_mode):
    return _pool_params(*_split(window, 5), ceil_mode)


def _avg_params(window, ceil_mode, count_include_pad):
    kernel, stride, lo, hi = _split(window, 4)
    return _pool_params(kernel, stride, lo, hi, [1] * len(kernel), ceil_mode, count_include_pad)


@_register("max_pool")
def _max_pool_kernel(x, window, ceil_mode):
    follow_threads(torch.get_num_threads())
    params, packed = _pool_args("max_pool", _max_params, window, ceil_mode)
    indices = ("indices", _calls.INDICES_OUT)
    return _calls.run_pool("max_pool", "forward", ("x",), (x,), params, None, indices, packed)


@torch.library.register_fake("fastconv::max_pool")
def _(x, window, ceil_mode):
    out = pool_result_shape(x.shape, *_split(window, 5), ceil_mode)
    return x.new_empty(out), x.new_empty(out, dtype=torch.int64)


@_register("max_pool_backward")
def _max_pool_backward_kernel(grad_y, x, indices, window, ceil_mode):
    follow_threads(torch.get_num_threads())
    params, packed = _pool_args("max_pool_backward", _max_params, window, ceil_mode)
    return _calls.run_pool(
        "max_pool",
        "backward",
        ("grad_y", "x"),
        (grad_y, x),
        params,
        None,
        ("indices", indices),
        packed,
    )


@torch.library.register_fake("fastconv::max_pool_backward")
def _(grad_y, x, indices, window, ceil_mode):
    return grad_y.new_empty(x.shape)


def _gather(grad: Tensor, indices: Tensor) -> Tensor:
    """grad (N, C, *in) read at each plane's flat indices: the adjoint of a scatter."""
    picked = grad.flatten(2).gather(2, indices.flatten(2))
    return picked.reshape(indices.shape)


class _MaxPoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, window, ceil_mode):
        y, indices = _below_autograd("max_pool", _max_pool_kernel, (x, window, ceil_mode), (x,))
        ctx.save_for_backward(x, indices)
        ctx.mark_non_differentiable(indices)
        ctx.window, ctx.ceil_mode = window, ceil_mode
        return y, indices

    @staticmethod
    def backward(ctx, grad, _grad_indices):
        x, indices = ctx.saved_tensors
        return (
            call(
                "max_pool_backward",
                (grad, x, indices, ctx.window, ctx.ceil_mode),
                (grad, x, indices),
            ),
            None,
            None,
        )


class _MaxPoolBackwardFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_y, x, indices, window, ceil_mode):
        args = (grad_y, x, indices, window, ceil_mode)
        out = _below_autograd("max_pool_backward", _max_pool_backward_kernel, args, args[:3])
        ctx.save_for_backward(indices)
        return out

    @staticmethod
    def backward(ctx, grad):  # grad_x scatters grad_y to the indices: its adjoint gathers
        (indices,) = ctx.saved_tensors
        return _gather(grad, indices), None, None, None, None


_autograd("max_pool", _MaxPoolFunction, _max_pool_kernel, (0,))
_autograd("max_pool_backward", _MaxPoolBackwardFunction, _max_pool_backward_kernel, (0, 1))


@_register("avg_pool")
def _avg_pool_kernel(x, window, ceil_mode, count_include_pad):
    follow_threads(torch.get_num_threads())
    params, packed = _pool_args("avg_pool", _avg_params, window, ceil_mode, count_include_pad)
    return _calls.run_pool("avg_pool", "forward", ("x",), (x,), params, packed=packed)


@torch.library.register_fake("fastconv::avg_pool")
def _(x, window, ceil_mode, count_include_pad):
    kernel, stride, lo, hi = _split(window, 4)
    out = pool_result_shape(x.shape, kernel, stride, lo, hi, [1] * len(kernel), ceil_mode)
    return x.new_empty(out)


@_register("avg_pool_backward")
def _avg_pool_backward_kernel(grad_y, x_shape, window, ceil_mode, count_include_pad):
    follow_threads(torch.get_num_threads())
    shape = tuple(int(s) for s in x_shape)
    params, packed = _pool_args(
        "avg_pool_backward", _avg_params, window, ceil_mode, count_include_pad
    )
    packed += (shape,)
    return _calls.run_pool(
        "avg_pool", "backward", ("grad_y",), (grad_y,), params, shape, packed=packed
    )


@torch.library.register_fake("fastconv::avg_pool_backward")
def _(grad_y, x_shape, window, ceil_mode, count_include_pad):
    return grad_y.new_empty(x_shape)


class _AvgPoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, window, ceil_mode, count_include_pad):
        args = (x, window, ceil_mode, count_include_pad)
        out = _below_autograd("avg_pool", _avg_pool_kernel, args, (x,))
        ctx.x_shape, ctx.args = list(x.shape), (window, ceil_mode, count_include_pad)
        return out

    @staticmethod
    def backward(ctx, grad):
        args = (grad, ctx.x_shape, *ctx.args)
        return call("avg_pool_backward", args, (grad,)), None, None, None


class _AvgPoolBackwardFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_y, x_shape, window, ceil_mode, count_include_pad):
        args = (grad_y, x_shape, window, ceil_mode, count_include_pad)
        out = _below_autograd("avg_pool_backward", _avg_pool_backward_kernel, args, (grad_y,))
        ctx.args = (window, ceil_mode, count_include_pad)
        return out

    @staticmethod
    def backward(ctx, grad):  # the backward is linear: its adjoint is the forward
        return call("avg_pool", (grad, *ctx.args), (grad,)), None, None, None, None


_autograd("avg_pool", _AvgPoolFunction, _avg_pool_kernel, (0,))
_autograd("avg_pool_backward", _AvgPoolBackwardFunction, _avg_pool_backward_kernel, (0,))


def _lp_params(p, window, ceil_mode):
    kernel, stride = _split(window, 2)
    zeros, ones = [0] * len(kernel), [1] * len(kernel)
    return _pool_params(kernel, stride, zeros, zeros, ones, ceil_mode, True, p)


@_register("lp_pool")
def _lp_pool_kernel(x, p, window, ceil_mode):
    """fastconv's lp_pool: (sum over the window of x**p) ** (1/p) (torch's lp_pool* scale a
    partial window; fastconv/torch/functional.py builds those from avg_pool)."""
    follow_threads(torch.get_num_threads())
    params, packed = _pool_args("lp_pool", _lp_params, p, window, ceil_mode)
    return _calls.run_pool("lp_pool", "forward", ("x",), (x,), params, packed=packed)


@torch.library.register_fake("fastconv::lp_pool")
def _(x, p, window, ceil_mode):
    kernel, stride = _split(window, 2)
    zeros, ones = [0] * len(kernel), [1] * len(kernel)
    return x.new_empty(pool_result_shape(x.shape, kernel, stride, zeros, zeros, ones, ceil_mode))


@_register("lp_pool_backward")
def _lp_pool_backward_kernel(grad_y, x, p, window, ceil_mode):
    follow_threads(torch.get_num_threads())
    params, packed = _pool_args("lp_pool_backward", _lp_params, p, window, ceil_mode)
    return _calls.run_pool(
        "lp_pool", "backward", ("grad_y", "x"), (grad_y, x), params, packed=packed
    )


@torch.library.register_fake("fastconv::lp_pool_backward")
def _(grad_y, x, p, window, ceil_mode):
    return grad_y.new_empty(x.shape)


class _LpPoolFunction(torch.autograd.Function):
    """Autograd of fastconv's lp_pool (first order: its backward has no gradient of its own)."""

    @staticmethod
    def forward(ctx, x, p, window, ceil_mode):
        out = _below_autograd("lp_pool", _lp_pool_kernel, (x, p, window, ceil_mode), (x,))
        ctx.save_for_backward(x)
        ctx.args = (p, window, ceil_mode)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return call("lp_pool_backward", (grad, x, *ctx.args), (grad, x)), None, None, None


_autograd("lp_pool", _LpPoolFunction, _lp_pool_kernel, (0,))


@_register("max_unpool")
def _max_unpool_kernel(x, indices, window, output_size):
    follow_threads(torch.get_num_threads())
    kernel, stride, lo, hi = _split(window, 4)
    size = tuple(int(s) for s in output_size)
    params = _pool_params(kernel, stride, lo, hi, [1] * len(kernel), False, True, 2.0, size)
    return _calls.run_pool(
        "max_unpool",
        "forward",
        ("x",),
        (x,),
        params,
        None,
        ("indices", indices),
        _packed("max_unpool", window, size),
    )


@torch.library.register_fake("fastconv::max_unpool")
def _(x, indices, window, output_size):
    return x.new_empty([x.shape[0], x.shape[1], *output_size])


class _MaxUnpoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, indices, window, output_size):
        args = (x, indices, window, output_size)
        out = _below_autograd("max_unpool", _max_unpool_kernel, args, (x, indices))
        ctx.save_for_backward(indices)
        return out

    @staticmethod
    def backward(ctx, grad):  # unpooling scatters x to the indices: its adjoint gathers
        (indices,) = ctx.saved_tensors
        return _gather(grad, indices), None, None, None


_autograd("max_unpool", _MaxUnpoolFunction, _max_unpool_kernel, (0,))

# ---- the unpacked forms fastconv/torch/functional.py and _recording.py call


_KERNELS = {
    "conv": _conv_kernel,
    "max_pool": _max_pool_kernel,
    "max_pool_backward": _max_pool_backward_kernel,
    "avg_pool": _avg_pool_kernel,
    "avg_pool_backward": _avg_pool_backward_kernel,
    "lp_pool": _lp_pool_kernel,
    "lp_pool_backward": _lp_pool_backward_kernel,
    "max_unpool": _max_unpool_kernel,
}


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


def _plain_eager(tensors) -> bool:
    """_plain(tensors), none needing a gradient, no CUDA autocast on a CUDA one (None skipped)."""
    if _dispatch_modes() or _functorch_active() or _tracing() is not None:
        return False
    grad = _grad_enabled()
    for t in tensors:
        if t is None:
            continue
        if type(t) is not Tensor or (grad and t.requires_grad):
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


def max_pool(x, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode):
    window = [*kernel, *stride, *pad_lo, *pad_hi, *dilation]
    return call("max_pool", (x, window, ceil_mode), (x,))


def max_pool_backward(grad_y, x, indices, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode):
    window = [*kernel, *stride, *pad_lo, *pad_hi, *dilation]
    return call("max_pool_backward", (grad_y, x, indices, window, ceil_mode), (grad_y, x, indices))


def avg_pool(x, kernel, stride, pad_lo, pad_hi, ceil_mode, count_include_pad):
    window = [*kernel, *stride, *pad_lo, *pad_hi]
    return call("avg_pool", (x, window, ceil_mode, count_include_pad), (x,))


def avg_pool_backward(
    grad_y, x_shape, kernel, stride, pad_lo, pad_hi, ceil_mode, count_include_pad
):
    window = [*kernel, *stride, *pad_lo, *pad_hi]
    args = (grad_y, list(x_shape), window, ceil_mode, count_include_pad)
    return call("avg_pool_backward", args, (grad_y,))


def lp_pool(x, p, kernel, stride, ceil_mode):
    return call("lp_pool", (x, float(p), [*kernel, *stride], ceil_mode), (x,))


def lp_pool_backward(grad_y, x, p, kernel, stride, ceil_mode):
    args = (grad_y, x, float(p), [*kernel, *stride], ceil_mode)
    return call("lp_pool_backward", args, (grad_y, x))


def max_unpool(x, indices, kernel, stride, pad_lo, pad_hi, output_size):
    window = [*kernel, *stride, *pad_lo, *pad_hi]
    return call("max_unpool", (x, indices, window, list(output_size)), (x, indices))


# AMP hands each forward operator one dtype on the GPU (the tensor-core dtypes).
for _name in ("conv", "max_pool", "avg_pool", "lp_pool"):
    torch.library.register_autocast(f"fastconv::{_name}", "cuda", torch.float16, lib=_LIB)
