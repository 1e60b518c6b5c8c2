"""The public pooling API: max / average / Lp / global pooling, max_unpool and their gradients.

Thin names over fastconv/_calls.py's run_pool (arrays -> backend, problem, backend run, with
the same three caches as convolution). Pooling has no algorithm choice yet.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

from ._arguments import array_shape, check_bool, spatial_rank
from ._autograd import recording, records_grad
from ._calls import INDICES_OUT, run_pool

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int], Sequence[Sequence[int]]]
_X = ("x",)  # the operand names of a forward pass


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
    """Max pooling; with return_indices also the flat argmax offsets per (n, c) plane (-1 for a
    window that covers only padding, whose output is -inf)."""
    if type(return_indices) is not bool:
        return_indices = check_bool(return_indices, "return_indices")
    params = (kernel_size, stride, padding, dilation, ceil_mode, True, 2.0, None)
    index = ("indices", INDICES_OUT) if return_indices else None
    if records_grad(x):
        return recording().max_pool(x, params, return_indices)
    return run_pool("max_pool", "forward", _X, (x,), params, None, index)


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
    if records_grad(x):
        return recording().avg_pool(x, params)
    return run_pool("avg_pool", "forward", _X, (x,), params)


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
    if records_grad(x):
        return recording().lp_pool(x, params)
    return run_pool("lp_pool", "forward", _X, (x,), params)


def _spatial_of(x) -> list[int]:
    shape = array_shape(x, "x")
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
    """Inverse of max_pool: scatters x to the positions in `indices`, zeros elsewhere (index -1,
    max_pool's window of padding only, scatters nothing)."""
    params = (kernel_size, stride, padding, 1, False, True, 2.0, output_size)
    if records_grad(x):
        return recording().max_unpool(x, indices, params)
    return run_pool("max_unpool", "forward", _X, (x,), params, index=("indices", indices))


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
    """Gradient of max_pool with respect to x (each grad goes to its window's argmax; a window
    that covers only padding has none and sends nothing).

    With `indices` (what `max_pool(..., return_indices=True)` returned for this x) the gradient
    is scattered to the saved positions instead of recomputing every window's argmax, as
    PyTorch's backward does; x then only supplies the shape and dtype."""
    params = (kernel_size, stride, padding, dilation, ceil_mode, True, 2.0, None)
    index = None if indices is None else ("indices", indices)
    if records_grad(grad_y, x):
        return recording().max_pool_backward(grad_y, x, params, indices)
    return run_pool("max_pool", "backward", ("grad_y", "x"), (grad_y, x), params, index=index)


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
    if records_grad(grad_y):
        return recording().avg_pool_backward(grad_y, x_shape, params)
    return run_pool("avg_pool", "backward", ("grad_y",), (grad_y,), params, x_shape)


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
    if records_grad(grad_y, x):
        return recording().lp_pool_backward(grad_y, x, params)
    return run_pool("lp_pool", "backward", ("grad_y", "x"), (grad_y, x), params)
