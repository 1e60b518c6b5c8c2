"""How one call runs, written once for every public function and the framework adapters:
arrays -> backend (fastconv/_arrays.py), problem (fastconv/_problem.py: arguments normalised,
geometry built in C++), selection (fastconv/selection.py), backend run (fastconv/backends/).

What a call signature resolves to is cached at three levels (fastconv/_problem.py): the
problem with its selection and plan (PROBLEMS, shared with explain), the checked call (CALLS),
and for host arrays a runner the backend made for the signature (RUNNERS), which a repeated call
goes straight to. fastconv/functional.py and fastconv/pooling.py are the public names over
run_conv / run_pool; fastconv/torch/ calls them inside its custom ops.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from ._arguments import full_shape
from ._arrays import host_signature, prepare_call
from ._problem import (
    _SIMPLE_TYPES,
    CALLS,
    PROBLEMS,
    RUNNERS,
    cached,
    call_key,
    conv_problem,
    pool_problem,
    remember,
    same_rank,
    weight_rank,
)
from .backends import Backend, backend_for_device
from .selection import Selection, select

_NDARRAY = np.ndarray
INDICES_OUT = object()  # max_pool(return_indices=True): the indices are an output, not an operand

# ---- convolution and transposed convolution


class _ConvEntry(NamedTuple):
    """What one conv call signature resolved to (cached)."""

    problem: Any  # fastconv._C.ConvProblem
    selection: Selection
    plan: Any  # the backend's plan of the selected algorithm
    operand_shapes: tuple  # (a, b) shapes the call's arrays must have
    result_shape: tuple
    bias_shape: tuple


# Operand names of each pass, in the order the backends take them.
_CONV_OPERANDS = {
    "forward": ("x", "w", "bias"),
    "backward_data": ("grad_y", "w"),
    "backward_weight": ("x", "grad_y"),
}


def _conv_entry(
    op, pass_, data_shape, w_shape, dtype, backend: Backend, algo, params, check=None
) -> _ConvEntry:
    """The problem, selection and plan of one conv pass (cached in PROBLEMS). `check(problem)`
    runs before selection and planning: a call checks there that its result can be allocated,
    since plans of absurd sizes (a 2**32-long FFT) would take long or allocate much."""
    stride, padding, dilation, groups, mode, output_padding = params
    problem = conv_problem(
        op,
        pass_,
        data_shape,
        w_shape,
        dtype,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        mode=mode,
        output_padding=output_padding,
    )
    if check is not None:
        check(problem)
    selection = select(problem, backend, algo)
    plan = backend.conv_plan(problem, selection.algo)
    result = problem.result_shape
    return _ConvEntry(
        problem, selection, plan, problem.operand_shapes, result, (problem.bias_channels,)
    )


def problem_entry(op, pass_, data, w_shape, dtype, backend, algo, params, check=None):
    key = call_key((op, pass_, tuple(data), tuple(w_shape), dtype, backend), (algo,) + params)
    return cached(
        PROBLEMS,
        key,
        lambda: _conv_entry(op, pass_, data, w_shape, dtype, backend, algo, params, check),
    )


def _checked_conv_entry(op, pass_, call, shape_arg, algo, params) -> _ConvEntry:
    """A call's entry, its operands checked against it (once per call signature)."""
    shapes = call.shapes
    if pass_ == "forward":
        weight_rank(shapes[1])
        same_rank(shapes[0], shapes[1], "x")
        data, w_shape = shapes[0], shapes[1]
    elif pass_ == "backward_data":
        weight_rank(shapes[1])
        if op == "conv":
            data = tuple(full_shape(shape_arg, "x_shape", len(shapes[1])))
        else:
            data = shapes[0]
        same_rank(shapes[0], shapes[1], "grad_y")
        w_shape = shapes[1]
    else:
        ndim = len(shape_arg) if isinstance(shape_arg, (tuple, list)) else 0
        w_shape = tuple(full_shape(shape_arg, "w_shape", ndim))
        weight_rank(w_shape, "w_shape")
        same_rank(shapes[0], w_shape, "x", "w_shape")
        same_rank(shapes[1], w_shape, "grad_y", "w_shape")
        data = shapes[0]

    def check(problem):
        call.backend.check_allocation(call, problem.result_shape, None)

    entry = problem_entry(op, pass_, data, w_shape, call.dtype, call.backend, algo, params, check)
    for name, want, got in zip(call.names, entry.operand_shapes, shapes):
        if tuple(got) != want:
            raise ValueError(f"{name} must have shape {want}, got {tuple(got)}")
    if pass_ == "forward" and shapes[2] is not None and tuple(shapes[2]) != entry.bias_shape:
        raise ValueError(
            f"bias must have shape {entry.bias_shape} (output channels), got {tuple(shapes[2])}"
        )
    call.backend.check_allocation(call, entry.result_shape, None)
    return entry


def _key(fixed: tuple, params: tuple, packed: Optional[tuple]) -> Optional[tuple]:
    return call_key(fixed, params) if packed is None else (fixed, packed)


# Types of the parameter tuples the quick key has met, by the ids of their elements: the
# parameters (held, so no id is reused while its entry is cached) and their types, a tuple's per
# element. Literal values (stride=(2, 2), groups=1 in a caller's code) are the same objects on
# every call from a call site, so one lookup replaces building the types of each element (a
# 1x1 conv with stride, padding and dilation as tuples: 4.6 -> 4.2 us a call, 3.3 us with ints;
# parameters without tuples return their types before the lookup).
_PARAM_TYPES: dict = {}
_PARAM_TYPES_MAX = 256


def _element_types(p: tuple) -> Optional[tuple]:
    """The element types of a tuple parameter; None when one is of another kind."""
    inner = tuple(map(type, p))
    return inner if _SIMPLE_TYPES.issuperset(inner) else None


def _quick_types(params: tuple) -> Optional[tuple]:
    """The types of the parameters, a tuple's per element (stride=(2, 2) is not (2, True)), or
    None when one is of another kind (a list, a nested tuple): the quick key's type part."""
    types = tuple(map(type, params))
    if _SIMPLE_TYPES.issuperset(types):  # no tuples: nothing to memoise
        return types
    ids = tuple(map(id, params))
    hit = _PARAM_TYPES.get(ids)
    if hit is not None:
        return hit[1]
    out = []
    for t, p in zip(types, params):
        inner = _element_types(p) if t is tuple else t if t in _SIMPLE_TYPES else None
        if inner is None:
            return None
        out.append(inner)
    types = tuple(out)
    if len(_PARAM_TYPES) >= _PARAM_TYPES_MAX:
        _PARAM_TYPES.clear()
    _PARAM_TYPES[ids] = (params, types)
    return types


def _quick_key(head: tuple, params: tuple) -> Optional[tuple]:
    """The quick key of a host call on NumPy arrays (run_conv, run_pool): `head` (the op and
    the arrays' shapes and dtypes), the host backend (one registered later makes other
    runners), the parameters and their types; None when a parameter is of another kind."""
    types = _quick_types(params)
    return None if types is None else (head, backend_for_device("cpu"), params, types)


def run_conv(op: str, pass_: str, a, b, bias, shape_arg, algo, params: tuple, packed=None):
    """One conv or transposed-conv pass: a, b are the pass's two arrays in public order,
    shape_arg the x_shape / w_shape argument of the backward passes that take one, params
    (stride, padding, dilation, groups, mode, output_padding) as the caller gave them.
    `packed`: a hashable tuple of ints and strings standing for (shape_arg, algo, params), from
    a caller that normalised them itself (fastconv/torch/_ops.py); it keys the caches instead
    of the parameters, which saves freezing nested tuples on every call."""
    quick = None
    if pass_ == "forward" and packed is None and type(algo) is str:
        # The forward on NumPy arrays (batch-1 inference's common call), with or without a
        # NumPy bias: keyed by the arrays' shapes and dtypes and the parameters with their types
        # (True is not 1), without the general signature (3.0 vs 4.6 us a call; with a bias 2.6
        # vs 3.6). A runner is stored under such a key only after the general path checked its
        # call (the bias's shape and dtype included).
        if type(a) is _NDARRAY and type(b) is _NDARRAY:
            head = (op, a.shape, a.dtype, b.shape, b.dtype, algo)
            if bias is not None:
                head = head + (bias.shape, bias.dtype) if type(bias) is _NDARRAY else None
            quick = _quick_key(head, params) if head is not None else None
            run = RUNNERS.get(quick) if quick is not None else None
            if run is not None and a.flags.c_contiguous and b.flags.c_contiguous:
                if bias is None:
                    return run(a, b)
                if bias.flags.c_contiguous:
                    return run(a, b, bias)
    values = (a, b, bias) if pass_ == "forward" else (a, b)
    signature = host_signature(values)
    fast_key = None
    if signature is not None:
        fast_key = _key((op, pass_, signature), (shape_arg, algo) + params, packed)
        run = RUNNERS.get(fast_key) if fast_key is not None else None
        if run is not None:
            return run(*values)
    call = prepare_call(_CONV_OPERANDS[pass_], values, channels_last=True)
    fixed = (op, pass_, call.shapes, call.dtype, call.backend, call.device)
    key = _key(fixed, (shape_arg, algo) + params, packed)
    entry = CALLS.get(key) if key is not None else None
    if entry is None:
        entry = cached(
            CALLS, key, lambda: _checked_conv_entry(op, pass_, call, shape_arg, algo, params)
        )
    out = call.backend.conv_result(call, entry.problem, entry.plan, pass_, entry.result_shape)
    if fast_key is not None and key is not None:
        runner = call.backend.conv_runner(call, entry.problem, entry.plan, entry.result_shape)
        remember(RUNNERS, fast_key, runner)
        if quick is not None:
            remember(RUNNERS, quick, runner)
    return out


# ---- pooling


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


def _pool(kind, pass_, call, params, x_shape_arg=None, packed=None) -> _PoolEntry:
    """The checked entry of a pooling call; x_shape_arg: avg_pool_backward's x_shape."""
    fixed = (kind, pass_, call.shapes, call.dtype, call.backend, call.device)
    key = _key(fixed, (x_shape_arg,) + params, packed)
    entry = CALLS.get(key) if key is not None else None
    if entry is None:
        entry = cached(
            CALLS, key, lambda: _checked_pool_entry(kind, pass_, call, x_shape_arg, params)
        )
    return entry


def run_pool(kind, pass_, names, values, params, x_shape_arg=None, index=None, packed=None):
    """One pooling pass: operands (x) forward, (grad_y[, x]) backward, `index` an optional
    (name, integer array) operand, params (kernel_size, stride, padding, dilation, ceil_mode,
    count_include_pad, p, output_size); returns the output (and, for max_pool's forward with
    index=("indices", INDICES_OUT), the indices it writes). `packed`: as for run_conv."""
    indices_out = index is not None and index[1] is INDICES_OUT
    quick = None
    if (
        pass_ == "forward"
        and packed is None
        and len(values) == 1
        and (index is None or indices_out)
    ):
        # A forward on one NumPy array: the quick key, as in run_conv.
        x = values[0]
        if type(x) is _NDARRAY:
            quick = _quick_key((kind, x.shape, x.dtype, indices_out), params)
            run = RUNNERS.get(quick) if quick is not None else None
            if run is not None and x.flags.c_contiguous:
                return run(x)
    signature = host_signature(values) if index is None or indices_out else None
    fast_key = None
    if signature is not None:
        fast_key = _key((kind, pass_, signature, indices_out), (x_shape_arg,) + params, packed)
        run = RUNNERS.get(fast_key) if fast_key is not None else None
        if run is not None:
            return run(*values)
    given = index if index is not None and not indices_out else None
    call = prepare_call(names, values, given)
    entry = _pool(kind, pass_, call, params, x_shape_arg, packed)
    backend, h = call.backend, call.handles
    out, handle = backend.empty(call, entry.result_shape)
    b = h[1] if len(names) > 1 else None
    if indices_out:
        idx, idx_handle = backend.empty(call, entry.y_shape, "int64")
        backend.run_pool(call, entry.problem, h[0], b, idx_handle, handle)
        result = out, idx
    else:
        backend.run_pool(call, entry.problem, h[0], b, h[-1] if given else None, handle)
        result = out
    if fast_key is not None:
        idx_shape = entry.y_shape if indices_out else None
        runner = backend.pool_runner(call, entry.problem, entry.result_shape, idx_shape)
        remember(RUNNERS, fast_key, runner)
        if quick is not None and runner is not None:
            remember(RUNNERS, quick, runner)
    return result
