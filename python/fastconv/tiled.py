"""Tiled and locally connected (unshared) convolution, every pass (docs/api-contract.md).

A tiled convolution cycles through a grid of kernels as it moves over the output: output
position o uses w[:, o_1 % t_1, ..., o_d % t_d] of w (K, *tiles, C, *kernel). Locally connected
convolution is the tiled one with one kernel per output position (tiles = the output size). One
compiled engine runs both (csrc/algo/tiled_gemm.cc: one GEMM per kernel phase).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence, Union

from ._arguments import full_shape
from ._arrays import prepare_call
from ._autograd import records_grad
from ._problem import CALLS, PROBLEMS, cached, call_key, tiled_conv_problem

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, str, Sequence[int], Sequence[Sequence[int]]]

_OPERANDS = {
    "forward": ("x", "w", "bias"),
    "backward_data": ("grad_y", "w"),
    "backward_weight": ("x", "grad_y"),
}


class _Entry(NamedTuple):
    problem: Any  # fastconv._C.TiledConvProblem
    bias_per_phase: bool


def _entry(op: str, pass_: str, call, shape_arg, params: tuple) -> _Entry:
    shapes = call.shapes
    if pass_ == "forward":
        data, w_shape = tuple(shapes[0]), tuple(shapes[1])
    elif pass_ == "backward_data":
        data = tuple(full_shape(shape_arg, "x_shape", len(shapes[0])))
        w_shape = tuple(shapes[1])
    else:
        ndim = len(shape_arg) if isinstance(shape_arg, (tuple, list)) else 0
        w_shape = tuple(full_shape(shape_arg, "w_shape", ndim))
        data = tuple(shapes[0])
    stride, padding, dilation = params
    key = call_key((op, pass_, data, w_shape, call.dtype), params)
    problem = cached(
        PROBLEMS,
        key,
        lambda: tiled_conv_problem(
            op, pass_, data, w_shape, call.dtype, stride=stride, padding=padding, dilation=dilation
        ),
    )
    for name, want, got in zip(call.names, problem.operand_shapes, shapes):
        if tuple(got) != want:
            raise ValueError(f"{name} must have shape {want}, got {tuple(got)}")
    per_phase = False
    if pass_ == "forward" and shapes[2] is not None:
        bias = tuple(shapes[2])
        per_phase = bias == problem.bias_per_phase_shape and len(bias) > 1
        if bias != (problem.y_shape[1],) and not per_phase:
            what = "out_spatial" if op == "locally_connected" else "tiles"
            raise ValueError(
                f"bias must have shape {(problem.y_shape[1],)} or "
                f"{problem.bias_per_phase_shape} (K, *{what}), got {bias}"
            )
    call.backend.check_allocation(call, problem.result_shape, None)
    return _Entry(problem, per_phase)


def run_tiled(op: str, pass_: str, a, b, bias, shape_arg, params: tuple):
    """One pass of tiled_conv / locally_connected on the backend of the arrays' device."""
    if records_grad(a, b, bias):
        from .torch import _tiled_ops  # torch is loaded: the caller's tensors need grad

        return _tiled_ops.tiled(op, pass_, a, b, bias, shape_arg, params)
    return run_tiled_pass(op, pass_, a, b, bias, shape_arg, params)


def run_tiled_pass(op: str, pass_: str, a, b, bias, shape_arg, params: tuple):
    """run_tiled without autograd (the PyTorch adapter's operator kernel)."""
    values = (a, b, bias) if pass_ == "forward" else (a, b)
    call = prepare_call(_OPERANDS[pass_], values)
    fixed = (op, pass_, call.shapes, call.dtype, call.backend, call.device)
    key = call_key(fixed, params + (shape_arg,))
    entry = CALLS.get(key) if key is not None else None
    if entry is None:
        entry = cached(CALLS, key, lambda: _entry(op, pass_, call, shape_arg, params))
    out, handle = call.backend.empty(call, entry.problem.result_shape)
    call.backend.run_tiled_conv(call, op, entry.problem, entry.bias_per_phase, handle)
    return out


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
