"""Max and average pooling in JAX: the public functions, their custom_vjp and the ffi_call of each
pass. The window is normalised and resolved by the compiled pooling problem at trace time
(fastconv/_problem.pool_problem: the same rules and output size as fastconv.max_pool); the
handler (csrc/bindings/jax_ffi.cc) receives it resolved and only runs."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple, Optional, Sequence, Union

import jax
import numpy as np

from .._problem import pool_problem
from ._conv import _array
from ._targets import POOL_TARGET, VMAP_METHOD

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int], Sequence[Sequence[int]]]


class _Window(NamedTuple):
    """One pooling window, resolved (custom_vjp's non-differentiable argument)."""

    kind: str  # "max_pool" or "avg_pool"
    kernel: tuple
    stride: tuple
    pad_lo: tuple
    pad_hi: tuple
    dilation: tuple
    ceil_mode: bool
    count_include_pad: bool


def _run(window: _Window, pass_: str, a, x, result_shape) -> jax.Array:
    """One pass as a custom call: forward (x), backward (grad_y, and x for max_pool)."""
    call = jax.ffi.ffi_call(
        POOL_TARGET, jax.ShapeDtypeStruct(tuple(result_shape), a.dtype), vmap_method=VMAP_METHOD
    )
    operands = (a,) if x is None else (a, x)
    return call(
        *operands,
        kind=window.kind,
        pass_=pass_,
        kernel=np.asarray(window.kernel, np.int64),
        stride=np.asarray(window.stride, np.int64),
        pad_lo=np.asarray(window.pad_lo, np.int64),
        pad_hi=np.asarray(window.pad_hi, np.int64),
        dilation=np.asarray(window.dilation, np.int64),
        ceil_mode=bool(window.ceil_mode),
        count_include_pad=bool(window.count_include_pad),
    )


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _pool_op(x, window: _Window, y_shape: tuple):
    return _run(window, "forward", x, None, y_shape)


def _pool_op_fwd(x, window: _Window, y_shape: tuple):
    return _pool_op(x, window, y_shape), x


def _pool_op_bwd(window: _Window, y_shape: tuple, x, grad_y):
    # max_pool's backward recomputes each window's argmax from x (no index output to carry)
    return (_run(window, "backward", grad_y, x if window.kind == "max_pool" else None, x.shape),)


_pool_op.defvjp(_pool_op_fwd, _pool_op_bwd)


def _call(kind, x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad):
    x = _array(x, "x")
    problem = pool_problem(
        kind,
        "forward",
        tuple(x.shape),
        np.dtype(x.dtype).name,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )
    _, kernel, s, lo, hi, d, ceil = problem.pool_geometry
    window = _Window(
        kind, tuple(kernel), tuple(s), tuple(lo), tuple(hi), tuple(d), bool(ceil),
        bool(problem.count_include_pad),
    )  # fmt: skip
    return _pool_op(x, window, tuple(problem.y_shape))


def max_pool(
    x,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
) -> jax.Array:
    """Max pooling of x (N, C, *spatial) over 1-3 spatial dims; padding counts as -inf.
    fastconv.max_pool's arguments (stride defaults to the kernel size)."""
    return _call("max_pool", x, kernel_size, stride, padding, dilation, ceil_mode, True)


def avg_pool(
    x,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> jax.Array:
    """Average pooling of x (N, C, *spatial); fastconv.avg_pool's arguments and divisor rules
    (PyTorch's)."""
    return _call("avg_pool", x, kernel_size, stride, padding, 1, ceil_mode, count_include_pad)
