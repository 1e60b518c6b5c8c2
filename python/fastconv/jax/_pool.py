"""Max and average pooling in JAX: the public functions, their custom_vjp and the ffi_call of each
pass, and their own VJPs (twice differentiable). The window is normalised and resolved by the
compiled pooling problem at trace time (fastconv/_problem.pool_problem: the same rules and
output size as fastconv.max_pool); the handlers (csrc/bindings/jax_ffi.cc, cuda/jax_ffi.cc)
receive it resolved and only run."""

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
    """One pooling window, resolved, with the unbatched x and y shapes (custom_vjp's
    non-differentiable argument)."""

    kind: str  # "max_pool" or "avg_pool"
    kernel: tuple
    stride: tuple
    pad_lo: tuple
    pad_hi: tuple
    dilation: tuple
    ceil_mode: bool
    count_include_pad: bool
    x_shape: tuple
    y_shape: tuple


def _run(window: _Window, pass_: str, a, indices=None, with_indices: bool = False):
    """One pass as a custom call (operands: jax_ffi_calls.h): forward (x) -> y, with the
    argmax indices too when with_indices; backward (grad_y[, indices]) -> grad_x; gather
    (grad_x, indices) -> y-shaped."""
    shape = window.x_shape if pass_ == "backward" else window.y_shape
    result = jax.ShapeDtypeStruct(shape, a.dtype)
    if with_indices:
        result = (result, jax.ShapeDtypeStruct(window.y_shape, np.int64))
    call = jax.ffi.ffi_call(POOL_TARGET, result, vmap_method=VMAP_METHOD)
    operands = (a,) if indices is None else (a, indices)
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


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _pool_op(x, window: _Window):
    return _run(window, "forward", x)


def _pool_op_fwd(x, window: _Window):
    if window.kind == "max_pool":  # the forward's argmax indices route every gradient
        return _max_with_indices(x, window)
    return _pool_op(x, window), None


def _pool_op_bwd(window: _Window, indices, grad_y):
    if window.kind == "max_pool":
        return (_INDEXED["backward"](grad_y, indices, window),)
    return (_avg_backward(grad_y, window),)


_pool_op.defvjp(_pool_op_fwd, _pool_op_bwd)

# Grad of grad. Max pooling's backward sums grad_y into the argmax positions and its gather reads
# an x-shaped array at them: both are linear in their float operand and each is the other's
# VJP (the indices are integers: no cotangent; w.r.t. x the backward is zero almost
# everywhere, which holding the indices fixed gives). Average pooling's backward is linear
# too, and its VJP is the average-pool forward with the same window and divisors.


# Every fwd rule calls its own custom_vjp function, never a bare custom call: a higher order
# differentiates the fwd rules too.


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_with_indices(x, window: _Window):
    return _run(window, "forward", x, with_indices=True)


def _max_with_indices_fwd(x, window: _Window):
    y, indices = _max_with_indices(x, window)
    return (y, indices), indices


def _max_with_indices_bwd(window: _Window, indices, cotangents):
    return (_INDEXED["backward"](cotangents[0], indices, window),)


_max_with_indices.defvjp(_max_with_indices_fwd, _max_with_indices_bwd)


def _indexed_pass(pass_: str, adjoint: str):
    """Max pooling's pass `pass_` from the forward's indices, f(a, indices, window), with the
    pass `adjoint` as its VJP w.r.t. a (none w.r.t. the integer indices)."""

    @partial(jax.custom_vjp, nondiff_argnums=(2,))
    def op(a, indices, window: _Window):
        return _run(window, pass_, a, indices)

    def fwd(a, indices, window: _Window):
        return op(a, indices, window), indices

    def bwd(window: _Window, indices, cotangent):
        return _INDEXED[adjoint](cotangent, indices, window), None

    op.defvjp(fwd, bwd)
    return op


# backward: grad_y summed into the argmax positions (x-shaped); gather: an x-shaped array read
# at them (y-shaped)
_INDEXED = {"backward": _indexed_pass("backward", "gather"),
            "gather": _indexed_pass("gather", "backward")}  # fmt: skip


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _avg_backward(grad_y, window: _Window):
    return _run(window, "backward", grad_y)


def _avg_backward_fwd(grad_y, window: _Window):
    return _avg_backward(grad_y, window), None


def _avg_backward_bwd(window: _Window, _, c):
    return (_pool_op(c, window),)


_avg_backward.defvjp(_avg_backward_fwd, _avg_backward_bwd)


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
        bool(problem.count_include_pad), tuple(problem.x_shape), tuple(problem.y_shape),
    )  # fmt: skip
    return _pool_op(x, window)


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
