"""fastconv's kernels as PyTorch custom ops (torch.ops.fastconv.*): real kernels through
fastconv/_calls.py (CPU and CUDA backends alike), fake kernels for tracing, autograd through the
other passes, autocast on CUDA.

Every argument is already normalised (per-dim int lists, explicit (low, high) padding), so the
schemas are plain typed lists. One `conv` op serves every pass of convolution and transposed
convolution: its backward calls the same op for the other passes, so gradients of gradients work.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from .. import _calls
from .._runtime import follow_threads
from ._shapes import conv_result_shape, pool_result_shape

_WINDOW = "int[] stride, int[] pad_lo, int[] pad_hi"

# ---- convolution: one op for every pass of conv and conv_transpose


@torch.library.custom_op(
    "fastconv::conv",
    mutates_args=(),
    schema="(Tensor a, Tensor b, Tensor? bias, str op, str pass_, SymInt[] shape, "
    f"{_WINDOW}, int[] dilation, int groups, str mode, int[] output_padding, str algo) -> Tensor",
)
def conv(
    a: Tensor,
    b: Tensor,
    bias: Optional[Tensor],
    op: str,
    pass_: str,
    shape: Sequence[int],
    stride: Sequence[int],
    pad_lo: Sequence[int],
    pad_hi: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    mode: str,
    output_padding: Sequence[int],
    algo: str,
) -> Tensor:
    """A conv (op="conv") or transposed-conv pass; (a, b) are its operands in public order:
    forward (x, w), backward_data (grad_y, w), backward_weight (x, grad_y); shape is the
    x_shape / w_shape a conv backward pass returns (empty otherwise)."""
    follow_threads(torch.get_num_threads())
    takes_shape = pass_ == "backward_weight" or (op == "conv" and pass_ == "backward_data")
    params = (
        tuple(stride),
        tuple(zip(pad_lo, pad_hi)),
        tuple(dilation),
        groups,
        mode,
        tuple(output_padding),
    )
    shape_arg = tuple(int(s) for s in shape) if takes_shape else None
    return _calls.run_conv(op, pass_, a, b, bias, shape_arg, algo, params)


@conv.register_fake
def _(
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
):
    out = conv_result_shape(
        op,
        pass_,
        a.shape,
        b.shape,
        shape,
        stride,
        pad_lo,
        pad_hi,
        dilation,
        groups,
        output_padding,
    )
    return a.new_empty(out)


def _conv_setup(ctx, inputs, output):
    a, b, bias, *ctx.args = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(a, b)


def _like(grad: Optional[Tensor], ref: Tensor) -> Optional[Tensor]:
    """A weight gradient in the parameter's own memory format (DDP's gradient buckets view the
    parameters' layout)."""
    if grad is None or ref.dim() not in (4, 5) or ref.is_contiguous():
        return grad
    fmt = torch.channels_last if ref.dim() == 4 else torch.channels_last_3d
    return grad.contiguous(memory_format=fmt) if ref.is_contiguous(memory_format=fmt) else grad


def _conv_backward(ctx, grad):
    a, b = ctx.saved_tensors
    op, pass_, shape, *window = ctx.args
    window[-1] = "auto"  # the other passes choose their own algorithms

    def run(p, u, v, s=()):
        return conv(u, v, None, op, p, list(s), *window)

    need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    ga = gb = gbias = None
    if pass_ == "forward":  # y = F(x, w): dx = D(gy, w), dw = W(x, gy)
        ga = run("backward_data", grad, b, a.shape if op == "conv" else ()) if need_a else None
        gb = _like(run("backward_weight", a, grad, b.shape), b) if need_b else None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gbias = grad.sum(dim=[d for d in range(grad.dim()) if d != 1])
    elif pass_ == "backward_data":  # gx = D(gy, w), linear in both: the adjoints
        ga = run("forward", grad, b) if need_a else None
        gb = _like(run("backward_weight", grad, a, b.shape), b) if need_b else None
    else:  # gw = W(x, gy)
        ga = run("backward_data", b, grad, a.shape if op == "conv" else ()) if need_a else None
        gb = run("forward", a, grad) if need_b else None
    return (ga, gb, gbias) + (None,) * 11


conv.register_autograd(_conv_backward, setup_context=_conv_setup)


# ---- pooling

_POOL = f"{_WINDOW}, int[] dilation, bool ceil_mode"


def _pool_params(kernel, stride, pad_lo, pad_hi, dilation, ceil_mode, cip=True, p=2.0, size=None):
    return (
        tuple(kernel),
        tuple(stride),
        tuple(zip(pad_lo, pad_hi)),
        tuple(dilation),
        ceil_mode,
        cip,
        p,
        size,
    )


@torch.library.custom_op(
    "fastconv::max_pool",
    mutates_args=(),
    schema=f"(Tensor x, int[] kernel, {_POOL}) -> (Tensor, Tensor)",
)
def max_pool(
    x: Tensor,
    kernel: Sequence[int],
    stride: Sequence[int],
    pad_lo: Sequence[int],
    pad_hi: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> tuple[Tensor, Tensor]:
    follow_threads(torch.get_num_threads())
    params = _pool_params(kernel, stride, pad_lo, pad_hi, dilation, ceil_mode)
    index = ("indices", _calls.INDICES_OUT)
    return _calls.run_pool("max_pool", "forward", ("x",), (x,), params, None, index)


@max_pool.register_fake
def _(x, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode):
    out = pool_result_shape(x.shape, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode)
    return x.new_empty(out), x.new_empty(out, dtype=torch.int64)


@torch.library.custom_op(
    "fastconv::max_pool_backward",
    mutates_args=(),
    schema=f"(Tensor grad_y, Tensor x, Tensor indices, int[] kernel, {_POOL}) -> Tensor",
)
def max_pool_backward(
    grad_y: Tensor,
    x: Tensor,
    indices: Tensor,
    kernel: Sequence[int],
    stride: Sequence[int],
    pad_lo: Sequence[int],
    pad_hi: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> Tensor:
    follow_threads(torch.get_num_threads())
    params = _pool_params(kernel, stride, pad_lo, pad_hi, dilation, ceil_mode)
    names, values = ("grad_y", "x"), (grad_y, x)
    return _calls.run_pool(
        "max_pool", "backward", names, values, params, None, ("indices", indices)
    )


@max_pool_backward.register_fake
def _(grad_y, x, indices, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode):
    return grad_y.new_empty(x.shape)


def _gather(grad: Tensor, indices: Tensor) -> Tensor:
    """grad (N, C, *in) read at each plane's flat indices: the adjoint of a scatter."""
    # flatten, not reshape(N, C, -1): an empty batch leaves -1 undetermined.
    return grad.flatten(2).gather(2, indices.flatten(2)).reshape(indices.shape)


def _max_pool_setup(ctx, inputs, output):
    x, *ctx.args = inputs
    ctx.save_for_backward(x, output[1])
    ctx.mark_non_differentiable(output[1])


def _max_pool_grad(ctx, grad, _grad_indices):
    x, indices = ctx.saved_tensors
    return (max_pool_backward(grad, x, indices, *ctx.args),) + (None,) * 6


max_pool.register_autograd(_max_pool_grad, setup_context=_max_pool_setup)


def _max_pool_backward_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[2])


def _max_pool_backward_grad(ctx, grad):
    (indices,) = ctx.saved_tensors
    return (_gather(grad, indices),) + (None,) * 8


max_pool_backward.register_autograd(_max_pool_backward_grad, setup_context=_max_pool_backward_setup)


@torch.library.custom_op(
    "fastconv::avg_pool",
    mutates_args=(),
    schema=f"(Tensor x, int[] kernel, {_WINDOW}, bool ceil_mode, bool count_include_pad) -> Tensor",
)
def avg_pool(
    x: Tensor,
    kernel: Sequence[int],
    stride: Sequence[int],
    pad_lo: Sequence[int],
    pad_hi: Sequence[int],
    ceil_mode: bool,
    count_include_pad: bool,
) -> Tensor:
    follow_threads(torch.get_num_threads())
    params = _pool_params(
        kernel, stride, pad_lo, pad_hi, [1] * len(kernel), ceil_mode, count_include_pad
    )
    return _calls.run_pool("avg_pool", "forward", ("x",), (x,), params)


@avg_pool.register_fake
def _(x, kernel, stride, pad_lo, pad_hi, ceil_mode, count_include_pad):
    ones = [1] * len(kernel)
    return x.new_empty(pool_result_shape(x.shape, kernel, stride, pad_lo, pad_hi, ones, ceil_mode))


@torch.library.custom_op(
    "fastconv::avg_pool_backward",
    mutates_args=(),
    schema=f"(Tensor grad_y, SymInt[] x_shape, int[] kernel, {_WINDOW}, bool ceil_mode, "
    "bool count_include_pad) -> Tensor",
)
def avg_pool_backward(
    grad_y: Tensor,
    x_shape: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pad_lo: Sequence[int],
    pad_hi: Sequence[int],
    ceil_mode: bool,
    count_include_pad: bool,
) -> Tensor:
    follow_threads(torch.get_num_threads())
    params = _pool_params(
        kernel, stride, pad_lo, pad_hi, [1] * len(kernel), ceil_mode, count_include_pad
    )
    shape = tuple(int(s) for s in x_shape)
    return _calls.run_pool("avg_pool", "backward", ("grad_y",), (grad_y,), params, shape)


@avg_pool_backward.register_fake
def _(grad_y, x_shape, kernel, stride, pad_lo, pad_hi, ceil_mode, count_include_pad):
    return grad_y.new_empty(x_shape)


def _avg_pool_setup(ctx, inputs, output):
    x, *ctx.args = inputs
    ctx.x_shape = list(x.shape)


def _avg_pool_grad(ctx, grad):
    return (avg_pool_backward(grad, ctx.x_shape, *ctx.args),) + (None,) * 6


avg_pool.register_autograd(_avg_pool_grad, setup_context=_avg_pool_setup)


def _avg_pool_backward_setup(ctx, inputs, output):
    ctx.args = inputs[2:]


def _avg_pool_backward_grad(ctx, grad):  # the backward is linear: its adjoint is the forward
    return (avg_pool(grad, *ctx.args),) + (None,) * 7


avg_pool_backward.register_autograd(_avg_pool_backward_grad, setup_context=_avg_pool_backward_setup)


@torch.library.custom_op(
    "fastconv::lp_pool",
    mutates_args=(),
    schema="(Tensor x, float p, int[] kernel, int[] stride, bool ceil_mode) -> Tensor",
)
def lp_pool(
    x: Tensor, p: float, kernel: Sequence[int], stride: Sequence[int], ceil_mode: bool
) -> Tensor:
    """fastconv's lp_pool: (sum over the window of x**p) ** (1/p) (torch's lp_pool* scale a
    partial window; fastconv/torch/functional.py builds those from avg_pool)."""
    follow_threads(torch.get_num_threads())
    zeros, ones = [0] * len(kernel), [1] * len(kernel)
    params = _pool_params(kernel, stride, zeros, zeros, ones, ceil_mode, True, p)
    return _calls.run_pool("lp_pool", "forward", ("x",), (x,), params)


@lp_pool.register_fake
def _(x, p, kernel, stride, ceil_mode):
    zeros, ones = [0] * len(kernel), [1] * len(kernel)
    return x.new_empty(pool_result_shape(x.shape, kernel, stride, zeros, zeros, ones, ceil_mode))


@torch.library.custom_op(
    "fastconv::lp_pool_backward",
    mutates_args=(),
    schema="(Tensor grad_y, Tensor x, float p, int[] kernel, int[] stride, bool ceil_mode) "
    "-> Tensor",
)
def lp_pool_backward(
    grad_y: Tensor,
    x: Tensor,
    p: float,
    kernel: Sequence[int],
    stride: Sequence[int],
    ceil_mode: bool,
) -> Tensor:
    follow_threads(torch.get_num_threads())
    zeros, ones = [0] * len(kernel), [1] * len(kernel)
    params = _pool_params(kernel, stride, zeros, zeros, ones, ceil_mode, True, p)
    return _calls.run_pool("lp_pool", "backward", ("grad_y", "x"), (grad_y, x), params)


@lp_pool_backward.register_fake
def _(grad_y, x, p, kernel, stride, ceil_mode):
    return grad_y.new_empty(x.shape)


def _lp_pool_setup(ctx, inputs, output):
    x, *ctx.args = inputs
    ctx.save_for_backward(x)


def _lp_pool_grad(ctx, grad):
    (x,) = ctx.saved_tensors
    return (lp_pool_backward(grad, x, *ctx.args),) + (None,) * 4


lp_pool.register_autograd(_lp_pool_grad, setup_context=_lp_pool_setup)


@torch.library.custom_op(
    "fastconv::max_unpool",
    mutates_args=(),
    schema=f"(Tensor x, Tensor indices, int[] kernel, {_WINDOW}, SymInt[] output_size) -> Tensor",
)
def max_unpool(
    x: Tensor,
    indices: Tensor,
    kernel: Sequence[int],
    stride: Sequence[int],
    pad_lo: Sequence[int],
    pad_hi: Sequence[int],
    output_size: Sequence[int],
) -> Tensor:
    follow_threads(torch.get_num_threads())
    size = tuple(int(s) for s in output_size)
    params = _pool_params(kernel, stride, pad_lo, pad_hi, [1] * len(kernel), False, True, 2.0, size)
    return _calls.run_pool(
        "max_unpool", "forward", ("x",), (x,), params, None, ("indices", indices)
    )


@max_unpool.register_fake
def _(x, indices, kernel, stride, pad_lo, pad_hi, output_size):
    return x.new_empty([x.shape[0], x.shape[1], *output_size])


def _max_unpool_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])  # the indices (they take no gradient)


def _max_unpool_grad(ctx, grad):
    (indices,) = ctx.saved_tensors
    return (_gather(grad, indices),) + (None,) * 6


max_unpool.register_autograd(_max_unpool_grad, setup_context=_max_unpool_setup)

# AMP hands each op one dtype on the GPU (the tensor-core dtypes).
for _name in ("conv", "max_pool", "avg_pool", "lp_pool"):
    torch.library.register_autocast(f"fastconv::{_name}", "cuda", torch.float16)
