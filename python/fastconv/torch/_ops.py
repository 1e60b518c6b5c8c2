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


# ---- convolution


def pack_conv(
    op, pass_, shape, stride, pad_lo, pad_hi, dilation, groups, mode, output_padding, algo
) -> tuple:
    """(shape, window, spec) of fastconv::conv from the unpacked arguments."""
    window = [*stride, *pad_lo, *pad_hi, *dilation, *output_padding, groups]
    return list(shape), window, f"{op} {pass_} {mode} {algo}"


@_register("conv")
def _conv_kernel(a: Tensor, b: Tensor, bias, shape, window, spec: str) -> Tensor:
    follow_threads(torch.get_num_threads())
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
        with torch._C._AutoDispatchBelowAutograd():
            out = OPS.conv.default(a, b, bias, shape, window, spec)
        ctx.save_for_backward(a, b)
        ctx.window, ctx.spec, ctx.has_bias = window, spec, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        op, pass_, mode, _ = ctx.spec.split()

        def run(p, u, v, shape=()):
            return OPS.conv.default(u, v, None, list(shape), ctx.window, f"{op} {p} {mode} auto")

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


_LIB.impl("conv", _ConvFunction.apply, "Autograd")


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
    return OPS.conv.default(
        a,
        b,
        bias,
        *pack_conv(
            op, pass_, shape, stride, pad_lo, pad_hi, dilation, groups, mode, output_padding, algo
        ),
    )


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
    return (f"fastconv::{name}",) + tuple(tuple(a) if isinstance(a, list) else a for a in args)


@_register("max_pool")
def _max_pool_kernel(x, window, ceil_mode):
    follow_threads(torch.get_num_threads())
    params = _pool_params(*_split(window, 5), ceil_mode)
    return _calls.run_pool(
        "max_pool",
        "forward",
        ("x",),
        (x,),
        params,
        None,
        ("indices", _calls.INDICES_OUT),
        _packed("max_pool", window, ceil_mode),
    )


@torch.library.register_fake("fastconv::max_pool")
def _(x, window, ceil_mode):
    out = pool_result_shape(x.shape, *_split(window, 5), ceil_mode)
    return x.new_empty(out), x.new_empty(out, dtype=torch.int64)


@_register("max_pool_backward")
def _max_pool_backward_kernel(grad_y, x, indices, window, ceil_mode):
    follow_threads(torch.get_num_threads())
    params = _pool_params(*_split(window, 5), ceil_mode)
    return _calls.run_pool(
        "max_pool",
        "backward",
        ("grad_y", "x"),
        (grad_y, x),
        params,
        None,
        ("indices", indices),
        _packed("max_pool_backward", window, ceil_mode),
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
        with torch._C._AutoDispatchBelowAutograd():
            y, indices = OPS.max_pool.default(x, window, ceil_mode)
        ctx.save_for_backward(x, indices)
        ctx.mark_non_differentiable(indices)
        ctx.window, ctx.ceil_mode = window, ceil_mode
        return y, indices

    @staticmethod
    def backward(ctx, grad, _grad_indices):
        x, indices = ctx.saved_tensors
        return (
            OPS.max_pool_backward.default(grad, x, indices, ctx.window, ctx.ceil_mode),
            None,
            None,
        )


class _MaxPoolBackwardFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_y, x, indices, window, ceil_mode):
        with torch._C._AutoDispatchBelowAutograd():
            out = OPS.max_pool_backward.default(grad_y, x, indices, window, ceil_mode)
        ctx.save_for_backward(indices)
        return out

    @staticmethod
    def backward(ctx, grad):  # grad_x scatters grad_y to the indices: its adjoint gathers
        (indices,) = ctx.saved_tensors
        return _gather(grad, indices), None, None, None, None


_LIB.impl("max_pool", _MaxPoolFunction.apply, "Autograd")
_LIB.impl("max_pool_backward", _MaxPoolBackwardFunction.apply, "Autograd")


@_register("avg_pool")
def _avg_pool_kernel(x, window, ceil_mode, count_include_pad):
    follow_threads(torch.get_num_threads())
    kernel, stride, lo, hi = _split(window, 4)
    params = _pool_params(kernel, stride, lo, hi, [1] * len(kernel), ceil_mode, count_include_pad)
    packed = _packed("avg_pool", window, ceil_mode, count_include_pad)
    return _calls.run_pool("avg_pool", "forward", ("x",), (x,), params, packed=packed)


@torch.library.register_fake("fastconv::avg_pool")
def _(x, window, ceil_mode, count_include_pad):
    kernel, stride, lo, hi = _split(window, 4)
    out = pool_result_shape(x.shape, kernel, stride, lo, hi, [1] * len(kernel), ceil_mode)
    return x.new_empty(out)


@_register("avg_pool_backward")
def _avg_pool_backward_kernel(grad_y, x_shape, window, ceil_mode, count_include_pad):
    follow_threads(torch.get_num_threads())
    kernel, stride, lo, hi = _split(window, 4)
    params = _pool_params(kernel, stride, lo, hi, [1] * len(kernel), ceil_mode, count_include_pad)
    shape = tuple(int(s) for s in x_shape)
    packed = _packed("avg_pool_backward", shape, window, ceil_mode, count_include_pad)
    return _calls.run_pool(
        "avg_pool", "backward", ("grad_y",), (grad_y,), params, shape, packed=packed
    )


@torch.library.register_fake("fastconv::avg_pool_backward")
def _(grad_y, x_shape, window, ceil_mode, count_include_pad):
    return grad_y.new_empty(x_shape)


class _AvgPoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, window, ceil_mode, count_include_pad):
        with torch._C._AutoDispatchBelowAutograd():
            out = OPS.avg_pool.default(x, window, ceil_mode, count_include_pad)
        ctx.x_shape, ctx.args = list(x.shape), (window, ceil_mode, count_include_pad)
        return out

    @staticmethod
    def backward(ctx, grad):
        return OPS.avg_pool_backward.default(grad, ctx.x_shape, *ctx.args), None, None, None


class _AvgPoolBackwardFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_y, x_shape, window, ceil_mode, count_include_pad):
        with torch._C._AutoDispatchBelowAutograd():
            out = OPS.avg_pool_backward.default(
                grad_y, x_shape, window, ceil_mode, count_include_pad
            )
        ctx.args = (window, ceil_mode, count_include_pad)
        return out

    @staticmethod
    def backward(ctx, grad):  # the backward is linear: its adjoint is the forward
        return OPS.avg_pool.default(grad, *ctx.args), None, None, None, None


_LIB.impl("avg_pool", _AvgPoolFunction.apply, "Autograd")
_LIB.impl("avg_pool_backward", _AvgPoolBackwardFunction.apply, "Autograd")


def _lp_params(p, window, ceil_mode):
    kernel, stride = _split(window, 2)
    zeros, ones = [0] * len(kernel), [1] * len(kernel)
    return _pool_params(kernel, stride, zeros, zeros, ones, ceil_mode, True, p)


@_register("lp_pool")
def _lp_pool_kernel(x, p, window, ceil_mode):
    """fastconv's lp_pool: (sum over the window of x**p) ** (1/p) (torch's lp_pool* scale a
    partial window; fastconv/torch/functional.py builds those from avg_pool)."""
    follow_threads(torch.get_num_threads())
    return _calls.run_pool(
        "lp_pool",
        "forward",
        ("x",),
        (x,),
        _lp_params(p, window, ceil_mode),
        packed=_packed("lp_pool", p, window, ceil_mode),
    )


@torch.library.register_fake("fastconv::lp_pool")
def _(x, p, window, ceil_mode):
    kernel, stride = _split(window, 2)
    zeros, ones = [0] * len(kernel), [1] * len(kernel)
    return x.new_empty(pool_result_shape(x.shape, kernel, stride, zeros, zeros, ones, ceil_mode))


@_register("lp_pool_backward")
def _lp_pool_backward_kernel(grad_y, x, p, window, ceil_mode):
    follow_threads(torch.get_num_threads())
    return _calls.run_pool(
        "lp_pool",
        "backward",
        ("grad_y", "x"),
        (grad_y, x),
        _lp_params(p, window, ceil_mode),
        packed=_packed("lp_pool_backward", p, window, ceil_mode),
    )


@torch.library.register_fake("fastconv::lp_pool_backward")
def _(grad_y, x, p, window, ceil_mode):
    return grad_y.new_empty(x.shape)


class _LpPoolFunction(torch.autograd.Function):
    """Autograd of fastconv's lp_pool (first order: its backward has no gradient of its own)."""

    @staticmethod
    def forward(ctx, x, p, window, ceil_mode):
        with torch._C._AutoDispatchBelowAutograd():
            out = OPS.lp_pool.default(x, p, window, ceil_mode)
        ctx.save_for_backward(x)
        ctx.args = (p, window, ceil_mode)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return OPS.lp_pool_backward.default(grad, x, *ctx.args), None, None, None


_LIB.impl("lp_pool", _LpPoolFunction.apply, "Autograd")


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
        with torch._C._AutoDispatchBelowAutograd():
            out = OPS.max_unpool.default(x, indices, window, output_size)
        ctx.save_for_backward(indices)
        return out

    @staticmethod
    def backward(ctx, grad):  # unpooling scatters x to the indices: its adjoint gathers
        (indices,) = ctx.saved_tensors
        return _gather(grad, indices), None, None, None


_LIB.impl("max_unpool", _MaxUnpoolFunction.apply, "Autograd")

# ---- the unpacked forms fastconv/torch/functional.py and _recording.py call


def max_pool(x, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode):
    return OPS.max_pool.default(x, [*kernel, *stride, *pad_lo, *pad_hi, *dilation], ceil_mode)


def max_pool_backward(grad_y, x, indices, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode):
    window = [*kernel, *stride, *pad_lo, *pad_hi, *dilation]
    return OPS.max_pool_backward.default(grad_y, x, indices, window, ceil_mode)


def avg_pool(x, kernel, stride, pad_lo, pad_hi, ceil_mode, count_include_pad):
    return OPS.avg_pool.default(
        x, [*kernel, *stride, *pad_lo, *pad_hi], ceil_mode, count_include_pad
    )


def avg_pool_backward(
    grad_y, x_shape, kernel, stride, pad_lo, pad_hi, ceil_mode, count_include_pad
):
    return OPS.avg_pool_backward.default(
        grad_y, list(x_shape), [*kernel, *stride, *pad_lo, *pad_hi], ceil_mode, count_include_pad
    )


def lp_pool(x, p, kernel, stride, ceil_mode):
    return OPS.lp_pool.default(x, float(p), [*kernel, *stride], ceil_mode)


def lp_pool_backward(grad_y, x, p, kernel, stride, ceil_mode):
    return OPS.lp_pool_backward.default(grad_y, x, float(p), [*kernel, *stride], ceil_mode)


def max_unpool(x, indices, kernel, stride, pad_lo, pad_hi, output_size):
    return OPS.max_unpool.default(
        x, indices, [*kernel, *stride, *pad_lo, *pad_hi], list(output_size)
    )


# AMP hands each forward operator one dtype on the GPU (the tensor-core dtypes).
for _name in ("conv", "max_pool", "avg_pool", "lp_pool"):
    torch.library.register_autocast(f"fastconv::{_name}", "cuda", torch.float16, lib=_LIB)
