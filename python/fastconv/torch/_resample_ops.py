"""The resampling ops as PyTorch operators with autograd (torch.ops.fastconv.*): upsampling,
pixel shuffle / unshuffle and stochastic pooling, each with a fake kernel for torch.compile; and
the entry points fastconv/resampling.py calls for tensors that require grad. Blur and weighted
average pooling need none: they are convolutions, recorded by the conv operator.

Defined with torch.library.custom_op (opcheck-clean; ~50 us of wrapper per call, against the
Library operators of _ops.py - these ops are not on the hot conv path). Arguments arrive
normalised (fastconv/_resample.py's problem): per-dim scales, window = kernel + stride + lo + hi.

  fastconv::upsample_nearest(Tensor x, int[] scale) -> Tensor
  fastconv::upsample_nearest_backward(Tensor grad_y, int[] x_shape, int[] scale) -> Tensor
  fastconv::upsample_linear(Tensor x, int[] scale, bool align_corners) -> Tensor
  fastconv::upsample_linear_backward(Tensor grad_y, int[] x_shape, int[] scale,
                                     bool align_corners) -> Tensor
  fastconv::pixel_shuffle(Tensor x, int r) -> Tensor, fastconv::pixel_unshuffle(Tensor x, int r)
  fastconv::stochastic_pool(Tensor x, int[] window, int seed) -> (Tensor, Tensor)   training
  fastconv::stochastic_pool_eval(Tensor x, int[] window) -> Tensor
  fastconv::stochastic_pool_backward(Tensor grad_y, Tensor x, Tensor indices, int[] window)
  fastconv::stochastic_pool_eval_backward(Tensor grad_y, Tensor x, int[] window) -> Tensor
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from .._arguments import full_shape
from .._resample import INDICES_OUT, resample_problem, run_resample
from .._runtime import follow_threads

_lib = torch.library


def _run(kind: str, pass_: str, operands: tuple, params: tuple, **kwargs):
    """fastconv/_resample.py's run_resample on the operator's (normalised) arguments."""
    follow_threads(torch.get_num_threads())
    names = ("x",) if pass_ == "forward" else ("grad_y", "x")[: len(operands)]
    return run_resample(kind, pass_, names, operands, params, **kwargs)


# ---- upsampling


@_lib.custom_op("fastconv::upsample_nearest", mutates_args=())
def upsample_nearest_op(x: Tensor, scale: list[int]) -> Tensor:
    return _run("upsample_nearest", "forward", (x,), (tuple(scale), False))


@_lib.custom_op("fastconv::upsample_nearest_backward", mutates_args=())
def upsample_nearest_backward_op(grad_y: Tensor, x_shape: list[int], scale: list[int]) -> Tensor:
    params = (tuple(scale), False)
    return _run("upsample_nearest", "backward", (grad_y,), params, x_shape_arg=tuple(x_shape))


@_lib.custom_op("fastconv::upsample_linear", mutates_args=())
def upsample_linear_op(x: Tensor, scale: list[int], align_corners: bool) -> Tensor:
    return _run("upsample_linear", "forward", (x,), (tuple(scale), align_corners))


@_lib.custom_op("fastconv::upsample_linear_backward", mutates_args=())
def upsample_linear_backward_op(
    grad_y: Tensor, x_shape: list[int], scale: list[int], align_corners: bool
) -> Tensor:
    params = (tuple(scale), align_corners)
    return _run("upsample_linear", "backward", (grad_y,), params, x_shape_arg=tuple(x_shape))


def _scaled(shape, scale) -> list[int]:
    return list(shape[:2]) + [s * f for s, f in zip(shape[2:], scale)]


@upsample_nearest_op.register_fake
def _(x, scale):
    return x.new_empty(_scaled(x.shape, scale))


@upsample_linear_op.register_fake
def _(x, scale, align_corners):
    return x.new_empty(_scaled(x.shape, scale))


@upsample_nearest_backward_op.register_fake
def _(grad_y, x_shape, scale):
    return grad_y.new_empty(x_shape)


@upsample_linear_backward_op.register_fake
def _(grad_y, x_shape, scale, align_corners):
    return grad_y.new_empty(x_shape)


def _setup_shape(ctx, inputs, output):
    ctx.x_shape = list(inputs[0].shape)


def _nearest_grad(ctx, grad):
    return upsample_nearest_backward_op(grad, ctx.x_shape, ctx.scale), None


def _nearest_setup(ctx, inputs, output):
    _setup_shape(ctx, inputs, output)
    ctx.scale = inputs[1]


def _linear_setup(ctx, inputs, output):
    _setup_shape(ctx, inputs, output)
    ctx.scale, ctx.align = inputs[1], inputs[2]


def _linear_grad(ctx, grad):
    return upsample_linear_backward_op(grad, ctx.x_shape, ctx.scale, ctx.align), None, None


def _nearest_bwd_setup(ctx, inputs, output):
    ctx.scale = inputs[2]


def _linear_bwd_setup(ctx, inputs, output):
    ctx.scale, ctx.align = inputs[2], inputs[3]


upsample_nearest_op.register_autograd(_nearest_grad, setup_context=_nearest_setup)
upsample_linear_op.register_autograd(_linear_grad, setup_context=_linear_setup)
# The backward passes are linear: their adjoints are the forward passes.
upsample_nearest_backward_op.register_autograd(
    lambda ctx, g: (upsample_nearest_op(g, ctx.scale), None, None),
    setup_context=_nearest_bwd_setup,
)
upsample_linear_backward_op.register_autograd(
    lambda ctx, g: (upsample_linear_op(g, ctx.scale, ctx.align), None, None, None),
    setup_context=_linear_bwd_setup,
)

# ---- pixel shuffle


@_lib.custom_op("fastconv::pixel_shuffle", mutates_args=())
def pixel_shuffle_op(x: Tensor, r: int) -> Tensor:
    return _run("pixel_shuffle", "forward", (x,), (r,))


@_lib.custom_op("fastconv::pixel_unshuffle", mutates_args=())
def pixel_unshuffle_op(x: Tensor, r: int) -> Tensor:
    return _run("pixel_unshuffle", "forward", (x,), (r,))


@pixel_shuffle_op.register_fake
def _(x, r):
    d = x.dim() - 2
    return x.new_empty([x.shape[0], x.shape[1] // r**d] + [s * r for s in x.shape[2:]])


@pixel_unshuffle_op.register_fake
def _(x, r):
    d = x.dim() - 2
    return x.new_empty([x.shape[0], x.shape[1] * r**d] + [s // r for s in x.shape[2:]])


def _r_setup(ctx, inputs, output):
    ctx.r = inputs[1]


pixel_shuffle_op.register_autograd(
    lambda ctx, g: (pixel_unshuffle_op(g, ctx.r), None), setup_context=_r_setup
)
pixel_unshuffle_op.register_autograd(
    lambda ctx, g: (pixel_shuffle_op(g, ctx.r), None), setup_context=_r_setup
)

# ---- stochastic pooling


def _window_args(window: Sequence[int]) -> tuple:
    rank = len(window) // 4
    k, s, lo, hi = (tuple(window[i * rank : (i + 1) * rank]) for i in range(4))
    return k, s, tuple(zip(lo, hi))


def _signed(seed: int) -> int:
    return seed - 2**64 if seed >= 2**63 else seed


@_lib.custom_op("fastconv::stochastic_pool", mutates_args=())
def stochastic_pool_op(x: Tensor, window: list[int], seed: int) -> tuple[Tensor, Tensor]:
    k, s, pad = _window_args(window)
    index = ("indices", INDICES_OUT)
    params = (k, s, pad, True)
    return _run("stochastic_pool", "forward", (x,), params, index=index, seed=seed % 2**64)


@_lib.custom_op("fastconv::stochastic_pool_eval", mutates_args=())
def stochastic_pool_eval_op(x: Tensor, window: list[int]) -> Tensor:
    k, s, pad = _window_args(window)
    return _run("stochastic_pool", "forward", (x,), (k, s, pad, False))


@_lib.custom_op("fastconv::stochastic_pool_backward", mutates_args=())
def stochastic_pool_backward_op(
    grad_y: Tensor, x: Tensor, indices: Tensor, window: list[int]
) -> Tensor:
    k, s, pad = _window_args(window)
    params = (k, s, pad, True)
    return _run("stochastic_pool", "backward", (grad_y, x), params, index=("indices", indices))


@_lib.custom_op("fastconv::stochastic_pool_eval_backward", mutates_args=())
def stochastic_pool_eval_backward_op(grad_y: Tensor, x: Tensor, window: list[int]) -> Tensor:
    k, s, pad = _window_args(window)
    return _run("stochastic_pool", "backward", (grad_y, x), (k, s, pad, False))


def _pooled(x: Tensor, window) -> list[int]:
    k, s, pad = _window_args(window)
    return list(x.shape[:2]) + [
        (n + lo + hi - kk) // ss + 1 for n, kk, ss, (lo, hi) in zip(x.shape[2:], k, s, pad)
    ]


@stochastic_pool_op.register_fake
def _(x, window, seed):
    out = _pooled(x, window)
    return x.new_empty(out), x.new_empty(out, dtype=torch.int64)


@stochastic_pool_eval_op.register_fake
def _(x, window):
    return x.new_empty(_pooled(x, window))


@stochastic_pool_backward_op.register_fake
def _(grad_y, x, indices, window):
    return grad_y.new_empty(x.shape)


@stochastic_pool_eval_backward_op.register_fake
def _(grad_y, x, window):
    return grad_y.new_empty(x.shape)


def _stochastic_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output[1])
    ctx.window = inputs[1]
    ctx.mark_non_differentiable(output[1])


def _stochastic_grad(ctx, grad, _grad_indices):
    x, indices = ctx.saved_tensors
    return stochastic_pool_backward_op(grad, x, indices, ctx.window), None, None


def _eval_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.window = inputs[1]


def _eval_grad(ctx, grad):
    (x,) = ctx.saved_tensors
    return stochastic_pool_eval_backward_op(grad, x, ctx.window), None


stochastic_pool_op.register_autograd(_stochastic_grad, setup_context=_stochastic_setup)
stochastic_pool_eval_op.register_autograd(_eval_grad, setup_context=_eval_setup)


def _gather_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[2])


def _gather_grad(ctx, grad):  # grad_x scatters grad_y to the indices: its adjoint gathers
    (indices,) = ctx.saved_tensors
    picked = grad.flatten(2).gather(2, indices.flatten(2)).reshape(indices.shape)
    return picked, None, None, None


stochastic_pool_backward_op.register_autograd(_gather_grad, setup_context=_gather_setup)

# ---- entry points of fastconv/resampling.py (tensors that require grad)


def _dtype(t: Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _problem(kind: str, x: Tensor, params: tuple) -> Any:
    return resample_problem(kind, "forward", tuple(x.shape), _dtype(x), params)


def _window(p_x: Tensor, params: tuple) -> list[int]:
    """kernel + stride + lo + hi of a stochastic_pool call, normalised (and checked)."""
    from .._arguments import explicit_padding, per_dim

    rank = p_x.dim() - 2
    _problem("stochastic_pool", p_x, params)  # validates every argument, names them
    kernel_size, stride, padding, _ = params
    k = per_dim(kernel_size, rank, "kernel_size")
    s = k if stride is None else per_dim(stride, rank, "stride")
    lo, hi = explicit_padding(padding, rank)
    return list(k) + list(s) + lo + hi


def _scale(x: Tensor, scale: Any) -> list[int]:
    from .._arguments import per_dim

    return per_dim(scale, x.dim() - 2, "scale")


def upsample(kind: str, x: Tensor, scale: Any, align_corners: Any):
    _problem(kind, x, (scale, align_corners))
    if kind == "upsample_nearest":
        return upsample_nearest_op(x, _scale(x, scale))
    return upsample_linear_op(x, _scale(x, scale), bool(align_corners))


def upsample_backward(kind: str, grad_y: Tensor, x_shape: Any, scale: Any, align_corners: Any):
    shape = full_shape(x_shape, "x_shape", grad_y.dim())
    resample_problem(kind, "backward", shape, _dtype(grad_y), (scale, align_corners), "x_shape")
    s = _scale(grad_y, scale)
    if kind == "upsample_nearest":
        return upsample_nearest_backward_op(grad_y, shape, s)
    return upsample_linear_backward_op(grad_y, shape, s, bool(align_corners))


def pixel(kind: str, x: Tensor, r: Any):
    _problem(kind, x, (r,))
    return (pixel_shuffle_op if kind == "pixel_shuffle" else pixel_unshuffle_op)(x, int(r))


def stochastic_pool(x: Tensor, params: tuple, seed: int, return_indices: bool):
    window = _window(x, params)
    if not params[3]:
        return stochastic_pool_eval_op(x, window)
    y, indices = stochastic_pool_op(x, window, _signed(seed))
    return (y, indices) if return_indices else y


def stochastic_pool_backward(grad_y: Tensor, x: Tensor, params: tuple, indices: Any):
    window = _window(x, params)
    if not params[3]:
        return stochastic_pool_eval_backward_op(grad_y, x, window)
    return stochastic_pool_backward_op(grad_y, x, torch.as_tensor(indices), window)
