"""tiled_conv / locally_connected as a PyTorch operator with autograd (see fastconv/torch/_ops.py
for why operators are defined this way):

  fastconv::tiled_conv(Tensor a, Tensor b, Tensor? bias, SymInt[] shape, int[] window, str spec)
    one pass; window = stride + pad_lo + pad_hi + dilation; spec = "op pass" with op
    "tiled_conv" or "locally_connected"; (a, b) as fastconv.tiled's passes take them; shape: the
    x_shape / w_shape a backward pass returns (else empty).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._arguments import explicit_padding, per_dim, positive
from .._runtime import follow_threads
from .._tiled_calls import run_tiled_pass
from ._ops import _LIB, OPS, _autograd, _below_autograd, _register, _split, call
from ._shapes import output_extent

_LIB.define(
    "tiled_conv(Tensor a, Tensor b, Tensor? bias, SymInt[] shape, int[] window, str spec) -> Tensor"
)


def _params(window) -> tuple:
    stride, lo, hi, dilation = _split(window, 4)
    return (tuple(stride), tuple(zip(lo, hi)), tuple(dilation))


@_register("tiled_conv")
def _kernel(a: Tensor, b: Tensor, bias, shape, window, spec: str) -> Tensor:
    follow_threads(torch.get_num_threads())
    op, pass_ = spec.split()
    shape_arg = tuple(int(s) for s in shape) if pass_ != "forward" else None
    return run_tiled_pass(op, pass_, a, b, bias, shape_arg, _params(window))


@torch.library.register_fake("fastconv::tiled_conv")
def _(a, b, bias, shape, window, spec):
    _, pass_ = spec.split()
    if pass_ != "forward":
        return a.new_empty(list(shape))
    stride, lo, hi, dilation = _split(window, 4)
    rank = len(stride)
    kernel = b.shape[2 + rank :]
    dims = zip(a.shape[2:], kernel, stride, lo, hi, dilation)
    return a.new_empty([a.shape[0], b.shape[0], *(output_extent(*d) for d in dims)])


def _fold_to_tiles(g: Tensor, tiles) -> Tensor:
    """(K, *out) summed over the positions of each kernel phase -> (K, *tiles)."""
    for d, t in enumerate(tiles):
        axis = 1 + d
        size = g.shape[axis]
        if size == t:
            continue
        pad = (-size) % t
        if pad:
            widths = [0, 0] * (g.dim() - 1 - axis) + [0, pad]
            g = torch.nn.functional.pad(g, widths)
        shape = list(g.shape)
        g = g.reshape(*shape[:axis], shape[axis] // t, t, *shape[axis + 1 :]).sum(axis)
    return g


class _TiledFunction(torch.autograd.Function):
    """Autograd of fastconv::tiled_conv: each pass's gradients are the other passes."""

    @staticmethod
    def forward(ctx, a, b, bias, shape, window, spec):
        args = (a, b, bias, shape, window, spec)
        out = _below_autograd(
            "tiled_conv", _kernel, args, [t for t in (a, b, bias) if t is not None]
        )
        ctx.save_for_backward(a, b)
        ctx.window, ctx.spec = window, spec
        ctx.bias_shape = None if bias is None else tuple(bias.shape)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        op, pass_ = ctx.spec.split()

        def run(p, u, v, shape=()):
            return call("tiled_conv", (u, v, None, list(shape), ctx.window, f"{op} {p}"), (u, v))

        need_a, need_b, need_bias = ctx.needs_input_grad[:3]
        ga = gb = gbias = None
        if pass_ == "forward":  # y = F(x, w): dx = D(gy, w), dw = W(x, gy)
            ga = run("backward_data", grad, b, a.shape) if need_a else None
            gb = run("backward_weight", a, grad, b.shape) if need_b else None
            if ctx.bias_shape is not None and need_bias:
                g = grad.sum(0)
                if len(ctx.bias_shape) == 1:
                    gbias = g.sum(list(range(1, g.dim())))
                else:
                    gbias = _fold_to_tiles(g, ctx.bias_shape[1:])
        elif pass_ == "backward_data":  # gx = D(gy, w), bilinear
            ga = run("forward", grad, b) if need_a else None
            gb = run("backward_weight", grad, a, b.shape) if need_b else None
        else:  # gw = W(x, gy)
            ga = run("backward_data", b, grad, a.shape) if need_a else None
            gb = run("forward", a, grad) if need_b else None
        return ga, gb, gbias, None, None, None


_autograd("tiled_conv", _TiledFunction, _kernel, (0, 1, 2))


def pack(rank: int, stride: Any, padding: Any, dilation: Any) -> list:
    """The operator's window from the public arguments (errors name the argument)."""
    s = positive(per_dim(stride, rank, "stride"), "stride")
    d = positive(per_dim(dilation, rank, "dilation"), "dilation")
    if isinstance(padding, str):
        if padding.lower() != "valid":
            raise ValueError(
                f"padding must be an int, a tuple, (low, high) pairs or 'valid', got {padding!r}"
            )
        lo, hi = [0] * rank, [0] * rank
    else:
        lo, hi = explicit_padding(padding, rank)
    return [*s, *lo, *hi, *d]


def tiled(op: str, pass_: str, a, b, bias, shape_arg, params: tuple) -> Tensor:
    """fastconv::tiled_conv from fastconv.tiled's arguments (autograd-recording calls)."""
    stride, padding, dilation = params
    if pass_ == "backward_weight":
        rank = a.dim() - 2
    else:
        rank = (b.dim() - 2) // 2
    window = pack(rank, stride, padding, dilation)
    shape = [] if shape_arg is None else [int(s) for s in shape_arg]
    return call("tiled_conv", (a, b, bias, shape, window, f"{op} {pass_}"), (a, b, bias))


__all__ = ["OPS", "tiled"]
