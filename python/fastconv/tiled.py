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


def tiled_conv(
    x, w, bias=None, *, stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1
):
    """Tiled convolution of x (N, C, *in) with w (K, *tiles, C, *kernel): output position o
    uses w[:, o_1 % t_1, ..., o_d % t_d]; bias (K,) or (K, *tiles)."""
    return run_tiled("tiled_conv", "forward", x, w, bias, None, (stride, padding, dilation))


def tiled_conv_backward_data(
    grad_y,
    w,
    x_shape: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
):
    """Gradient of `tiled_conv` with respect to x (shape `x_shape`)."""
    params = (stride, padding, dilation)
    return run_tiled("tiled_conv", "backward_data", grad_y, w, None, x_shape, params)


def tiled_conv_backward_weight(
    x,
    grad_y,
    w_shape: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
):
    """Gradient of `tiled_conv` with respect to w (shape `w_shape`)."""
    params = (stride, padding, dilation)
    return run_tiled("tiled_conv", "backward_weight", x, grad_y, None, w_shape, params)


def locally_connected(
    x, w, bias=None, *, stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1
):
    """Locally connected (unshared) convolution of x (N, C, *in) with w (K, *out_spatial, C,
    *kernel): one kernel per output position; bias (K,) or (K, *out_spatial)."""
    params = (stride, padding, dilation)
    return run_tiled("locally_connected", "forward", x, w, bias, None, params)


def locally_connected_backward_data(
    grad_y,
    w,
    x_shape: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
):
    """Gradient of `locally_connected` with respect to x (shape `x_shape`)."""
    params = (stride, padding, dilation)
    return run_tiled("locally_connected", "backward_data", grad_y, w, None, x_shape, params)


def locally_connected_backward_weight(
    x,
    grad_y,
    w_shape: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
):
    """Gradient of `locally_connected` with respect to w (shape `w_shape`)."""
    params = (stride, padding, dilation)
    return run_tiled("locally_connected", "backward_weight", x, grad_y, None, w_shape, params)
