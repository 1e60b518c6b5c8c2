"""The public functional API: convolution, transposed convolution, pooling and their gradients.

Each function normalises and checks its arguments, asks `selection` which algorithm runs,
allocates the output with the caller's array library and calls the compiled kernels (which
release the GIL). See docs/api-contract.md for the exact semantics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _C, _gpu
from ._arguments import (
    check_groups,
    check_mode,
    conv_padding,
    explicit_padding,
    full_shape,
    lp_norm,
    per_dim,
    positive,
    spatial_rank,
    transpose_padding,
)
from ._interop import ArrayKind, as_array, as_index_array, common_dtype, result_kind, wrap_indices
from .selection import Explanation, Problem, as_tuple, explain_problem, select

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, str, Sequence[int], Sequence[Sequence[int]]]


@dataclass(frozen=True)
class _Window:
    """Normalised per-dimension window arguments of one call."""

    stride: list[int]
    pad_lo: list[int]
    pad_hi: list[int]
    dilation: list[int]

    def args(self) -> tuple[list[int], list[int], list[int]]:
        return self.stride, self.pad_lo, self.pad_hi


def _weight_rank(w_shape: Sequence[int], name: str = "w") -> int:
    if not 3 <= len(w_shape) <= 5:
        raise ValueError(
            f"{name} must have 3, 4 or 5 dims (out, in/groups, *kernel) for 1-3 spatial dims, "
            f"got shape {tuple(w_shape)}"
        )
    return len(w_shape) - 2


def _same_rank(shape: Sequence[int], w_shape: Sequence[int], name: str, w_name: str = "w") -> None:
    if len(shape) != len(w_shape):
        raise ValueError(
            f"{name} must have {len(w_shape)} dims to match {w_name} of shape {tuple(w_shape)}, "
            f"got shape {tuple(shape)}"
        )


def _conv_window(x_shape, w_shape, stride, padding, dilation) -> _Window:
    rank = _weight_rank(w_shape)
    s = positive(per_dim(stride, rank, "stride"), "stride")
    d = positive(per_dim(dilation, rank, "dilation"), "dilation")
    lo, hi = conv_padding(padding, list(x_shape[2:]), list(w_shape[2:]), s, d)
    return _Window(s, lo, hi, d)


def _transpose_window(w_shape, stride, padding, output_padding, dilation):
    rank = _weight_rank(w_shape)
    s = positive(per_dim(stride, rank, "stride"), "stride")
    d = positive(per_dim(dilation, rank, "dilation"), "dilation")
    lo, hi = transpose_padding(padding, rank)
    op = per_dim(output_padding, rank, "output_padding")
    if any(v < 0 for v in op):
        raise ValueError(f"output_padding must be non-negative, got {output_padding!r}")
    return _Window(s, lo, hi, d), op


def _problem(
    op, pass_, x_shape, w_shape, win: _Window, groups, dtype="float32", output_padding=None
) -> Problem:
    """The conv geometry selection sees (a transposed conv's is the conv it is the adjoint of)."""
    hi = (
        win.pad_hi
        if output_padding is None
        else [h - o for h, o in zip(win.pad_hi, output_padding)]
    )
    return Problem(
        op,
        pass_,
        as_tuple(x_shape),
        as_tuple(w_shape),
        as_tuple(win.stride),
        as_tuple(win.pad_lo),
        as_tuple(hi),
        as_tuple(win.dilation),
        groups,
        np.dtype(dtype).name,
    )


def _inputs(bias: Any = None, **named: Any) -> tuple[dict[str, np.ndarray], ArrayKind, np.dtype]:
    """Converts the named array arguments and the optional bias; checks they share one dtype."""
    if bias is not None:
        named["bias"] = bias
    arrays, kinds = {}, []
    for name, obj in named.items():
        if obj is None:
            raise TypeError(f"{name} must be an array or a tensor, got None")
        arrays[name], kind = as_array(obj, name)
        kinds.append(kind)
    dtype = common_dtype(list(arrays.items()))
    return arrays, result_kind(*kinds), dtype


# ---- convolution plans: argument normalisation, geometry checks and algorithm choice, cached
# per call signature so repeated calls on one layer skip straight to the kernel.


@dataclass(frozen=True)
class _ConvPlan:
    result_shape: list[int]  # shape of the array the pass returns
    win: _Window
    groups: int
    mode: str
    algo: str
    output_padding: list[int]  # transposed convolution only


_PLANS: dict[Any, _ConvPlan] = {}


def _freeze(v: Any) -> Any:
    """A hashable key that keeps types apart (True and 1 must not share a cache entry)."""
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_freeze(e) for e in v))
    hash(v)
    return (type(v).__name__, v)


def _plan(op: str, pass_: str, shape, w_shape, dtype, **kw: Any) -> _ConvPlan:
    """Cached _make_plan. `shape` is the data shape the caller has (see _make_plan)."""
    try:
        key = (
            op,
            pass_,
            tuple(shape),
            tuple(w_shape),
            np.dtype(dtype).char,
            _freeze(sorted(kw.items())),
        )
    except TypeError:  # unhashable argument: validate without caching
        return _make_plan(op, pass_, shape, w_shape, dtype, **kw)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _make_plan(op, pass_, shape, w_shape, dtype, **kw)
        if len(_PLANS) >= 4096:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def _make_plan(
    op,
    pass_,
    shape,
    w_shape,
    dtype,
    *,
    stride,
    padding,
    dilation,
    groups,
    mode="cross",
    algo="auto",
    output_padding=0,
) -> _ConvPlan:
    """Validates one conv or transposed-conv pass. `shape` is x's shape for conv passes and for
    the transposed forward/backward-weight passes, and grad_y's for transposed backward data."""
    shape, w_shape = [int(s) for s in shape], [int(s) for s in w_shape]
    groups, mode = check_groups(groups), check_mode(mode)
    if op == "conv":
        win = _conv_window(shape, w_shape, stride, padding, dilation)
        y_shape = _C.conv_output_shape(shape, w_shape, *win.args(), win.dilation, groups)
        result = {"forward": y_shape, "backward_data": shape, "backward_weight": w_shape}[pass_]
        problem = _problem(op, pass_, shape, w_shape, win, groups, dtype)
        return _ConvPlan(result, win, groups, mode, select(problem, algo).algo, [])
    win, op_pad = _transpose_window(w_shape, stride, padding, output_padding, dilation)
    if pass_ == "backward_data":
        x_shape = _C.conv_transpose_input_shape(
            shape, w_shape, *win.args(), op_pad, win.dilation, groups
        )
        y_shape = shape
    else:
        x_shape = shape
    # The transposed conv is validated by its own geometry (output_padding rules included).
    y_shape = _C.conv_transpose_output_shape(
        x_shape, w_shape, *win.args(), op_pad, win.dilation, groups
    )
    if pass_ == "backward_data" and list(y_shape) != list(shape):
        raise ValueError(f"grad_y must have shape {tuple(y_shape)}, got {tuple(shape)}")
    result = {"forward": y_shape, "backward_data": x_shape, "backward_weight": w_shape}[pass_]
    problem = _problem(op, pass_, y_shape, w_shape, win, groups, dtype, op_pad)
    return _ConvPlan(result, win, groups, mode, select(problem, algo).algo, op_pad)


def _check_bias(a: dict, channels: int) -> None:
    if "bias" in a and a["bias"].shape != (channels,):
        raise ValueError(
            f"bias must have shape ({channels},) (output channels), got {a['bias'].shape}"
        )


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
def conv(
    x,
    w,
    bias=None,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    mode: str = "cross",
    algo: str = "auto",
):
    """N-d convolution (1-3 spatial dims) of x (N, C, *in) with w (K, C/groups, *kernel)."""
    a, kind, dtype = _inputs(x=x, w=w, bias=bias)
    xa, wa = a["x"], a["w"]
    _weight_rank(wa.shape)
    _same_rank(xa.shape, wa.shape, "x")
    p = _plan(
        "conv",
        "forward",
        xa.shape,
        wa.shape,
        dtype,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        mode=mode,
        algo=algo,
    )
    _check_bias(a, wa.shape[0])
    out, view = kind.empty(p.result_shape, dtype)
    _C.conv_forward(
        xa, wa, a.get("bias"), view, *p.win.args(), p.win.dilation, p.groups, p.mode, p.algo
    )
    return out


def _conv_of_rank(rank: int):
    def fn(x, w, bias=None, **kwargs):
        ndim = getattr(w, "ndim", None)
        if ndim is None:
            ndim = np.ndim(w)
        if ndim != rank + 2:
            raise ValueError(
                f"conv{rank}d expects w with {rank + 2} dims (K, C/groups, *{rank} kernel dims), "
                f"got {ndim} dims"
            )
        return conv(x, w, bias, **kwargs)

    fn.__name__ = fn.__qualname__ = f"conv{rank}d"
    fn.__doc__ = f"{rank}-D convolution: `conv` with the weight's rank checked."
    return fn


conv1d = _conv_of_rank(1)
conv2d = _conv_of_rank(2)
conv3d = _conv_of_rank(3)


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
def conv_backward_data(
    grad_y,
    w,
    x_shape: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    mode: str = "cross",
    algo: str = "auto",
):
    """Gradient of `conv` with respect to its input x (shape `x_shape`)."""
    a, kind, dtype = _inputs(grad_y=grad_y, w=w)
    gy, wa = a["grad_y"], a["w"]
    _weight_rank(wa.shape)
    x_shape = full_shape(x_shape, "x_shape", wa.ndim)
    _same_rank(gy.shape, wa.shape, "grad_y")
    p = _plan(
        "conv",
        "backward_data",
        x_shape,
        wa.shape,
        dtype,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        mode=mode,
        algo=algo,
    )
    out, view = kind.empty(p.result_shape, dtype)
    _C.conv_backward_data(gy, wa, view, *p.win.args(), p.win.dilation, p.groups, p.mode, p.algo)
    return out


def _weight_grad_inputs(x, grad_y, w_shape: Any):
    """Arrays and checked w_shape of a weight-gradient call (conv or transposed conv)."""
    a, kind, dtype = _inputs(x=x, grad_y=grad_y)
    ndim = len(w_shape) if isinstance(w_shape, (tuple, list)) else 0
    w_shape = full_shape(w_shape, "w_shape", ndim)
    _weight_rank(w_shape, "w_shape")
    _same_rank(a["x"].shape, w_shape, "x", "w_shape")
    _same_rank(a["grad_y"].shape, w_shape, "grad_y", "w_shape")
    return a["x"], a["grad_y"], w_shape, kind, dtype


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
def conv_backward_weight(
    x,
    grad_y,
    w_shape: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    mode: str = "cross",
    algo: str = "auto",
):
    """Gradient of `conv` with respect to its weight (shape `w_shape`)."""
    xa, gy, w_shape, kind, dtype = _weight_grad_inputs(x, grad_y, w_shape)
    p = _plan(
        "conv",
        "backward_weight",
        xa.shape,
        w_shape,
        dtype,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        mode=mode,
        algo=algo,
    )
    out, view = kind.empty(p.result_shape, dtype)
    _C.conv_backward_weight(xa, gy, view, *p.win.args(), p.win.dilation, p.groups, p.mode, p.algo)
    return out


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
def conv_backward_bias(grad_y):
    """Gradient of `conv` with respect to its bias: grad_y summed over N and spatial dims."""
    a, kind, dtype = _inputs(grad_y=grad_y)
    gy = a["grad_y"]
    spatial_rank(gy.ndim, "grad_y")
    out, view = kind.empty((gy.shape[1],), dtype)
    _C.conv_backward_bias(gy, view)
    return out


# ---- transposed convolution (runs the conv passes; DESIGN.md "One geometry, three passes")


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
def conv_transpose(
    x,
    w,
    bias=None,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    algo: str = "auto",
):
    """Transposed convolution of x (N, C_in, *in) with w (C_in, K/groups, *kernel)."""
    a, kind, dtype = _inputs(x=x, w=w, bias=bias)
    xa, wa = a["x"], a["w"]
    _weight_rank(wa.shape)
    _same_rank(xa.shape, wa.shape, "x")
    p = _plan(
        "conv_transpose",
        "forward",
        xa.shape,
        wa.shape,
        dtype,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
        algo=algo,
    )
    _check_bias(a, p.result_shape[1])
    out, view = kind.empty(p.result_shape, dtype)
    _C.conv_transpose_forward(
        xa,
        wa,
        a.get("bias"),
        view,
        *p.win.args(),
        p.output_padding,
        p.win.dilation,
        p.groups,
        p.algo,
    )
    return out


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
def conv_transpose_backward_data(
    grad_y,
    w,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    algo: str = "auto",
):
    """Gradient of `conv_transpose` with respect to its input (a conv forward pass)."""
    a, kind, dtype = _inputs(grad_y=grad_y, w=w)
    gy, wa = a["grad_y"], a["w"]
    _weight_rank(wa.shape)
    _same_rank(gy.shape, wa.shape, "grad_y")
    p = _plan(
        "conv_transpose",
        "backward_data",
        gy.shape,
        wa.shape,
        dtype,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
        algo=algo,
    )
    out, view = kind.empty(p.result_shape, dtype)
    _C.conv_transpose_backward_data(
        gy, wa, view, *p.win.args(), p.output_padding, p.win.dilation, p.groups, p.algo
    )
    return out


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
def conv_transpose_backward_weight(
    x,
    grad_y,
    w_shape: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    algo: str = "auto",
):
    """Gradient of `conv_transpose` with respect to its weight (C_in, K/groups, *kernel)."""
    xa, gy, w_shape, kind, dtype = _weight_grad_inputs(x, grad_y, w_shape)
    p = _plan(
        "conv_transpose",
        "backward_weight",
        xa.shape,
        w_shape,
        dtype,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
        algo=algo,
    )
    out, view = kind.empty(p.result_shape, dtype)
    _C.conv_transpose_backward_weight(
        xa, gy, view, *p.win.args(), p.output_padding, p.win.dilation, p.groups, p.algo
    )
    return out


# ---- pooling


def _pool_window(ndim: int, kernel_size, stride, padding, dilation, name: str = "x"):
    rank = spatial_rank(ndim, name)
    k = positive(per_dim(kernel_size, rank, "kernel_size"), "kernel_size")
    s = list(k) if stride is None else positive(per_dim(stride, rank, "stride"), "stride")
    lo, hi = explicit_padding(padding, rank)
    d = positive(per_dim(dilation, rank, "dilation"), "dilation")
    return k, _Window(s, lo, hi, d)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
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
    a, kind, dtype = _inputs(x=x)
    xa = a["x"]
    k, win = _pool_window(xa.ndim, kernel_size, stride, padding, dilation)
    ceil_mode = _check_bool(ceil_mode, "ceil_mode")
    return_indices = _check_bool(return_indices, "return_indices")
    out_shape = _C.pool_output_shape(list(xa.shape), k, *win.args(), win.dilation, ceil_mode)
    out, view = kind.empty(out_shape, dtype)
    idx = np.empty(out_shape, dtype=np.int64) if return_indices else None
    _C.max_pool_forward(xa, view, idx, k, *win.args(), win.dilation, ceil_mode)
    return (out, wrap_indices(kind, idx)) if return_indices else out


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
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
    a, kind, dtype = _inputs(x=x)
    xa = a["x"]
    k, win = _pool_window(xa.ndim, kernel_size, stride, padding, 1)
    ceil_mode = _check_bool(ceil_mode, "ceil_mode")
    count_include_pad = _check_bool(count_include_pad, "count_include_pad")
    out_shape = _C.pool_output_shape(list(xa.shape), k, *win.args(), win.dilation, ceil_mode)
    out, view = kind.empty(out_shape, dtype)
    _C.avg_pool_forward(xa, view, k, *win.args(), ceil_mode, count_include_pad)
    return out


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
def lp_pool(
    x,
    p: float,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    ceil_mode: bool = False,
):
    """Power-average pooling: (sum over the window of x**p) ** (1/p)."""
    p = lp_norm(p)
    a, kind, dtype = _inputs(x=x)
    xa = a["x"]
    k, win = _pool_window(xa.ndim, kernel_size, stride, 0, 1)
    ceil_mode = _check_bool(ceil_mode, "ceil_mode")
    out_shape = _C.pool_output_shape(list(xa.shape), k, *win.args(), win.dilation, ceil_mode)
    out, view = kind.empty(out_shape, dtype)
    _C.lp_pool_forward(xa, view, p, k, win.stride, ceil_mode)
    return out


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


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
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
    a, kind, dtype = _inputs(x=x)
    xa = a["x"]
    k, win = _pool_window(xa.ndim, kernel_size, stride, padding, 1)
    idx = as_index_array(indices, "indices")
    if idx.shape != xa.shape:
        raise ValueError(f"indices must have x's shape {xa.shape}, got {idx.shape}")
    rank = len(k)
    if output_size is None:
        spatial = [
            _C.transposed_extent(i, kk, s, lo, hi, 1, 0)
            for i, kk, s, lo, hi in zip(xa.shape[2:], k, win.stride, win.pad_lo, win.pad_hi)
        ]
    else:
        size = list(output_size) if isinstance(output_size, (tuple, list)) else output_size
        if not isinstance(size, list) or len(size) not in (rank, rank + 2):
            raise ValueError(
                f"output_size must have {rank} (spatial) or {rank + 2} entries, got {output_size!r}"
            )
        spatial = per_dim(size[-rank:], rank, "output_size")
        if len(size) == rank + 2 and list(size[:2]) != list(xa.shape[:2]):
            raise ValueError(f"output_size {tuple(size)} disagrees with x's N and C {xa.shape[:2]}")
    if any(s < 1 for s in spatial):
        raise ValueError(f"output_size must be positive, got {tuple(spatial)}")
    out_shape = full_shape([xa.shape[0], xa.shape[1], *spatial], "output_size", rank + 2)
    out, view = kind.empty(out_shape, dtype)
    _C.max_unpool_forward(xa, idx, view)
    return out


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
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
    a, kind, dtype = _inputs(grad_y=grad_y, x=x)
    gy, xa = a["grad_y"], a["x"]
    k, win = _pool_window(xa.ndim, kernel_size, stride, padding, dilation)
    ceil_mode = _check_bool(ceil_mode, "ceil_mode")
    if indices is not None:
        idx = as_index_array(indices, "indices")
        if idx.shape != gy.shape:
            raise ValueError(f"indices must have grad_y's shape {gy.shape}, got {idx.shape}")
        out, view = kind.empty(xa.shape, dtype)
        _C.max_pool_backward_indices(gy, idx, view, k, *win.args(), win.dilation, ceil_mode)
        return out
    out, view = kind.empty(xa.shape, dtype)
    _C.max_pool_backward(gy, xa, view, k, *win.args(), win.dilation, ceil_mode)
    return out


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
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
    a, kind, dtype = _inputs(grad_y=grad_y)
    gy = a["grad_y"]
    x_shape = full_shape(x_shape, "x_shape", gy.ndim)
    k, win = _pool_window(len(x_shape), kernel_size, stride, padding, 1, "x_shape")
    ceil_mode = _check_bool(ceil_mode, "ceil_mode")
    count_include_pad = _check_bool(count_include_pad, "count_include_pad")
    _C.pool_output_shape(x_shape, k, *win.args(), win.dilation, ceil_mode)
    out, view = kind.empty(x_shape, dtype)
    _C.avg_pool_backward(gy, view, k, *win.args(), ceil_mode, count_include_pad)
    return out


@_gpu.routes  # CUDA arrays run fastconv._cuda (fastconv/_gpu.py)
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
    p = lp_norm(p)
    a, kind, dtype = _inputs(grad_y=grad_y, x=x)
    gy, xa = a["grad_y"], a["x"]
    k, win = _pool_window(xa.ndim, kernel_size, stride, 0, 1)
    ceil_mode = _check_bool(ceil_mode, "ceil_mode")
    out, view = kind.empty(xa.shape, dtype)
    _C.lp_pool_backward(gy, xa, view, p, k, win.stride, ceil_mode)
    return out


# ---- introspection


def _shape_of(obj: Any, name: str) -> tuple[int, ...]:
    if isinstance(obj, (tuple, list)) and all(isinstance(v, (int, np.integer)) for v in obj):
        return tuple(int(v) for v in obj)
    shape = getattr(obj, "shape", None)
    if shape is None:
        raise TypeError(f"{name} must be an array or a shape tuple, got {type(obj).__name__}")
    return tuple(int(v) for v in shape)


def explain(
    x,
    w,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    mode: str = "cross",
    algo: str = "auto",
    op: str = "conv",
    pass_: str = "forward",
    output_padding: IntOrTuple = 0,
    dtype: Any = "float32",
) -> Explanation:
    """What `algo` would run for this problem and why. x and w may be arrays or shapes;
    for op="conv_transpose", x is the transposed convolution's input."""
    x_shape, w_shape = _shape_of(x, "x"), _shape_of(w, "w")
    dtype = getattr(x, "dtype", dtype)
    _weight_rank(w_shape)
    _same_rank(x_shape, w_shape, "x")
    groups = check_groups(groups)
    check_mode(mode)
    if pass_ not in ("forward", "backward_data", "backward_weight"):
        raise ValueError(
            f"pass_ must be 'forward', 'backward_data' or 'backward_weight', got {pass_!r}"
        )
    if op == "conv":
        win = _conv_window(x_shape, w_shape, stride, padding, dilation)
        _C.conv_output_shape(list(x_shape), list(w_shape), *win.args(), win.dilation, groups)
        return explain_problem(_problem(op, pass_, x_shape, w_shape, win, groups, dtype), algo)
    if op == "conv_transpose":
        win, opad = _transpose_window(w_shape, stride, padding, output_padding, dilation)
        conv_x = _C.conv_transpose_output_shape(
            list(x_shape), list(w_shape), *win.args(), opad, win.dilation, groups
        )
        problem = _problem(op, pass_, conv_x, w_shape, win, groups, dtype, opad)
        return explain_problem(problem, algo)
    raise ValueError(f"op must be 'conv' or 'conv_transpose' for explain(), got {op!r}")
