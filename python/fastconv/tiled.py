"""Tiled and locally connected (unshared) convolution, every pass (docs/api-contract.md).

A tiled convolution cycles through a grid of kernels as it moves over the output: output
position o uses w[:, o_1 % t_1, ..., o_d % t_d] of w (K, *tiles, C, *kernel). Locally connected
convolution is the tiled one with one kernel per output position (tiles = the output size). One
compiled engine runs both (csrc/algo/tiled_gemm.cc: one GEMM per kernel phase).
"""

from __future__ import annotations

from typing import Sequence, Union

from ._autograd import records_grad
from ._tiled_calls import run_tiled_pass

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, str, Sequence[int], Sequence[Sequence[int]]]


def run_tiled(op: str, pass_: str, a, b, bias, shape_arg, params: tuple):
    """One pass of tiled_conv / locally_connected on the backend of the arrays' device."""
    if records_grad(a, b, bias):
        from .torch import _tiled_ops  # torch is loaded: the caller's tensors need grad

        return _tiled_ops.tiled(op, pass_, a, b, bias, shape_arg, params)
    return run_tiled_pass(op, pass_, a, b, bias, shape_arg, params)


def _passes(op: str, forward_doc: str):
    """The public forward, backward_data and backward_weight functions of `op`."""

    def forward(
        x, w, bias=None, *, stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1
    ):
        return run_tiled(op, "forward", x, w, bias, None, (stride, padding, dilation))

    def backward_data(
        grad_y,
        w,
        x_shape: Sequence[int],
        *,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
    ):
        params = (stride, padding, dilation)
        return run_tiled(op, "backward_data", grad_y, w, None, x_shape, params)

    def backward_weight(
        x,
        grad_y,
        w_shape: Sequence[int],
        *,
        stride: IntOrTuple = 1,
        padding: Padding = 0,
        dilation: IntOrTuple = 1,
    ):
        params = (stride, padding, dilation)
        return run_tiled(op, "backward_weight", x, grad_y, None, w_shape, params)

    docs = {
        op: forward_doc,
        f"{op}_backward_data": f"Gradient of `{op}` with respect to x (shape `x_shape`).",
        f"{op}_backward_weight": f"Gradient of `{op}` with respect to w (shape `w_shape`).",
    }
    for function, (name, doc) in zip((forward, backward_data, backward_weight), docs.items()):
        function.__name__ = function.__qualname__ = name
        function.__doc__ = doc
    return forward, backward_data, backward_weight


tiled_conv, tiled_conv_backward_data, tiled_conv_backward_weight = _passes(
    "tiled_conv",
    """Tiled convolution of x (N, C, *in) with w (K, *tiles, C, *kernel): output position o
    uses w[:, o_1 % t_1, ..., o_d % t_d]; bias (K,) or (K, *tiles).""",
)
locally_connected, locally_connected_backward_data, locally_connected_backward_weight = _passes(
    "locally_connected",
    """Locally connected (unshared) convolution of x (N, C, *in) with w (K, *out_spatial, C,
    *kernel): one kernel per output position; bias (K,) or (K, *out_spatial).""",
)
