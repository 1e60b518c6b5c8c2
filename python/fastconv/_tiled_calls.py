"""How one tiled_conv / locally_connected pass runs (the twin of fastconv/_calls.py for these
ops): arrays -> backend, the cached problem (fastconv/_problem.py: tiled_conv_problem), operand
checks, backend run. fastconv/tiled.py is the public API over it; fastconv/torch/_tiled_ops.py
calls it inside its operator."""

from __future__ import annotations

from typing import Any, NamedTuple

from ._arguments import full_shape
from ._arrays import prepare_call
from ._problem import CALLS, PROBLEMS, cached, call_key, tiled_conv_problem

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
