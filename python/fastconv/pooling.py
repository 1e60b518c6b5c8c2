"""The public pooling API: max / average / Lp / global pooling, max_unpool and their gradients.

The same steps as fastconv/functional.py, written once in `_run`: arrays -> backend, problem
(fastconv._C.PoolProblem), backend run, with the same three caches. Pooling has no algorithm
choice yet.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np

from ._arguments import check_bool, full_shape, spatial_rank
from ._arrays import host_signature, prepare_call
from ._problem import CALLS, PROBLEMS, RUNNERS, cached, call_key, pool_problem, remember

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int], Sequence[Sequence[int]]]
_X = ("x",)  # the operand names of a forward pass
_INDICES_OUT = object()  # max_pool(return_indices=True): the indices are an output, not an operand


class _PoolEntry(NamedTuple):
    problem: Any  # fastconv._C.PoolProblem
    x_shape: tuple
    y_shape: tuple
    result_shape: tuple


def _pool_entry(kind, pass_, x_shape, dtype, params, x_name) -> _PoolEntry:
    kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, p, output_size = params
    problem = pool_problem(
        kind,
        pass_,
        x_shape,
        dtype,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        p=p,
        output_size=output_size,
        x_name=x_name,
    )
    return _PoolEntry(problem, problem.x_shape, problem.y_shape, problem.result_shape)


def _checked_pool_entry(kind, pass_, call, x_shape_arg, params) -> _PoolEntry:
    shapes, names = call.shapes, call.names
    if "x" in names:
        x_shape, x_name = tuple(shapes[names.index("x")]), "x"
    else:
        x_shape, x_name = tuple(full_shape(x_shape_arg, "x_shape", len(shapes[0]))), "x_shape"
    key = call_key((kind, pass_, x_shape, call.dtype, call.backend), params)
    entry = cached(
        PROBLEMS, key, lambda: _pool_entry(kind, pass_, x_shape, call.dtype, params, x_name)
    )
    if len(shapes) > len(names):  # indices, last
        of, want = ("x", entry.x_shape) if kind == "max_unpool" else ("grad_y", tuple(shapes[0]))
        if tuple(shapes[-1]) != want:
            raise ValueError(f"indices must have {of}'s shape {want}, got {tuple(shapes[-1])}")
    if pass_ == "backward" and tuple(shapes[0]) != entry.y_shape:
        raise ValueError(f"grad_y must have shape {entry.y_shape}, got {tuple(shapes[0])}")
    call.backend.check_allocation(call, entry.result_shape, None)
    return entry


def _pool(kind, pass_, call, params, x_shape_arg=None) -> _PoolEntry:
    """The checked entry of a pooling call; x_shape_arg: avg_pool_backward's x_shape."""
    fixed = (kind, pass_, call.shapes, call.dtype, call.backend, call.device)
    key = call_key(fixed, (x_shape_arg,) + params)
    entry = CALLS.get(key) if key is not None else None
    if entry is None:
        entry = cached(
            CALLS, key, lambda: _checked_pool_entry(kind, pass_, call, x_shape_arg, params)
        )
    return entry


def _run(kind, pass_, names, values, params, x_shape_arg=None, index=None):
    """One pooling pass: operands (x) forward, (grad_y[, x]) backward, `index` an optional
    (name, integer array) operand; returns the output (and, for max_pool's forward with
    index=("indices", _INDICES_OUT), the indices it writes)."""
    signature = host_signature(values) if index is None else None
    fast_key = None
    if signature is not None:
        fast_key = call_key((kind, pass_, signature), (x_shape_arg,) + params)
        run = RUNNERS.get(fast_key) if fast_key is not None else None
        if run is not None:
            return run(*values)
    given = index if index is not None and index[1] is not _INDICES_OUT else None
    call = prepare_call(names, values, given)
    entry = _pool(kind, pass_, call, params, x_shape_arg)
    backend, h = call.backend, call.handles
    out, handle = backend.empty(call, entry.result_shape)
    b = h[1] if len(names) > 1 else None
    if index is not None and index[1] is _INDICES_OUT:
        idx, idx_handle = backend.empty(call, entry.y_shape, "int64")
        backend.run_pool(call, entry.problem, h[0], b, idx_handle, handle)
        return out, idx
    backend.run_pool(call, entry.problem, h[0], b, h[-1] if given else None, handle)
    if fast_key is not None:
        remember(RUNNERS, fast_key, backend.pool_runner(call, entry.problem, entry.result_shape))
    return out


def max_pool(
    x,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """Max pooling; with return_indices also the flat argmax offsets per (n, c) plane."""
    if type(return_indices) is not bool:
        return_indices = check_bool(return_indices, "return_indices")
    params = (kernel_size, stride, padding, dilation, ceil_mode, True, 2.0, None)
    index = ("indices", _INDICES_OUT) if return_indices else None
    return _run("max_pool", "forward", _X, (x,), params, None, index)


def avg_pool(
    x,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
):
    """Average pooling (PyTorch's divisor rules for padding and ceil_mode)."""
    params = (kernel_size, stride, padding, 1, ceil_mode, count_include_pad, 2.0, None)
    return _run("avg_pool", "forward", _X, (x,), params)


def lp_pool(
    x,
    p: float,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    ceil_mode: bool = False,
):
    """Power-average pooling: (sum over the window of x**p) ** (1/p)."""
    params = (kernel_size, stride, 0, 1, ceil_mode, True, p, None)
    return _run("lp_pool", "forward", _X, (x,), params)


def _spatial_of(x) -> list[int]:
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    spatial_rank(len(shape), "x")
    return [int(s) for s in shape[2:]]


def global_avg_pool(x):
    """Mean over all spatial dims; shape (N, C, 1, ..., 1)."""
    return avg_pool(x, _spatial_of(x))


def global_max_pool(x):
    """Max over all spatial dims; shape (N, C, 1, ..., 1)."""
    return max_pool(x, _spatial_of(x))


def max_unpool(
    x,
    indices,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    padding: Padding = 0,
    output_size: Optional[Sequence[int]] = None,
):
    """Inverse of max_pool: scatters x to the positions in `indices`, zeros elsewhere."""
    params = (kernel_size, stride, padding, 1, False, True, 2.0, output_size)
    return _run("max_unpool", "forward", ("x",), (x,), params, index=("indices", indices))


def max_pool_backward(
    grad_y,
    x,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    indices=None,
):
    """Gradient of max_pool with respect to x (each grad goes to its window's argmax).

    With `indices` (what `max_pool(..., return_indices=True)` returned for this x) the gradient
    is scattered to the saved positions instead of recomputing every window's argmax, as
    PyTorch's backward does; x then only supplies the shape and dtype."""
    params = (kernel_size, stride, padding, dilation, ceil_mode, True, 2.0, None)
    index = None if indices is None else ("indices", indices)
    return _run("max_pool", "backward", ("grad_y", "x"), (grad_y, x), params, index=index)


def avg_pool_backward(
    grad_y,
    x_shape: Sequence[int],
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
):
    """Gradient of avg_pool with respect to x (shape `x_shape`)."""
    params = (kernel_size, stride, padding, 1, ceil_mode, count_include_pad, 2.0, None)
    return _run("avg_pool", "backward", ("grad_y",), (grad_y,), params, x_shape)


def lp_pool_backward(
    grad_y,
    x,
    p: float,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    ceil_mode: bool = False,
):
    """Gradient of lp_pool with respect to x."""
    params = (kernel_size, stride, 0, 1, ceil_mode, True, p, None)
    return _run("lp_pool", "backward", ("grad_y", "x"), (grad_y, x), params)
