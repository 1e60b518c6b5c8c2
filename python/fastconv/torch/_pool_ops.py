"""fastconv's pooling operators (fastconv::max_pool, avg_pool, lp_pool, their backward
operators, max_unpool) on the library, helpers and conventions of fastconv/torch/_ops.py, and
their unpacked forms for fastconv/torch/functional.py and _recording.py."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _calls
from .._problem import remember
from .._runtime import follow_threads
from ._ops import _autograd, _below_autograd, _register, _split, call
from ._shapes import pool_result_shape

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
    """grad (N, C, *in) read at each plane's flat indices: the adjoint of a scatter (index -1,
    a window of padding only, scatters nothing and reads 0)."""
    flat = indices.flatten(2)
    none = flat < 0
    picked = grad.flatten(2).gather(2, flat.clamp(min=0)).masked_fill(none, 0)
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


# ---- unpacked forms


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
