"""fastconv's own functional API (fastconv.conv, fastconv.max_pool, ...) on torch tensors that
require grad: arguments normalised by the problem (fastconv/_problem.py: fastconv's padding
rules, pairs, "same" at any stride), then the custom ops of fastconv/torch/_ops.py, so autograd
records the call (fastconv/_autograd.py routes here).
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from .._arguments import full_shape
from .._problem import conv_problem, pool_problem
from . import _ops, _pool_ops


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def conv(op: str, pass_: str, a, b, bias, shape_arg, algo: str, params: tuple):
    """run_conv's arguments (fastconv/_calls.py), recorded by autograd."""
    stride, padding, dilation, groups, mode, output_padding = params
    if pass_ == "backward_weight":
        ndim = len(shape_arg) if isinstance(shape_arg, (tuple, list)) else 0
        data, w_shape = a.shape, full_shape(shape_arg, "w_shape", ndim)
    elif op == "conv" and pass_ == "backward_data":
        data, w_shape = full_shape(shape_arg, "x_shape", b.dim()), b.shape
    else:
        data, w_shape = a.shape, b.shape
    p = conv_problem(
        op,
        pass_,
        data,
        w_shape,
        _dtype(a),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        mode=mode,
        output_padding=output_padding,
    )
    shape = list(shape_arg) if shape_arg is not None else []
    return _ops.conv(
        a,
        b,
        bias,
        op,
        pass_,
        shape,
        list(p.stride),
        list(p.pad_lo),
        list(p.pad_hi),
        list(p.dilation),
        p.groups,
        p.mode,
        list(p.output_padding) or [0] * len(p.stride),
        algo,
    )


def conv_backward_bias(grad_y: torch.Tensor) -> torch.Tensor:
    return grad_y.sum(dim=[d for d in range(grad_y.dim()) if d != 1])


def _window(kind: str, x_shape, dtype: str, params: tuple) -> tuple:
    """(kernel, stride, pad_lo, pad_hi, dilation, ceil_mode, problem) of a pooling call."""
    kernel_size, stride, padding, dilation, ceil_mode, cip, p, output_size = params
    problem = pool_problem(
        kind,
        "forward",
        x_shape,
        dtype,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        count_include_pad=cip,
        p=p,
        output_size=output_size,
    )
    _, k, s, lo, hi, d, ceil = problem.pool_geometry
    return list(k), list(s), list(lo), list(hi), list(d), bool(ceil), problem


def max_pool(x, params: tuple, return_indices: bool):
    k, s, lo, hi, d, ceil, _ = _window("max_pool", x.shape, _dtype(x), params)
    y, indices = _pool_ops.max_pool(x, k, s, lo, hi, d, ceil)
    return (y, indices) if return_indices else y


def avg_pool(x, params: tuple):
    k, s, lo, hi, _, ceil, _ = _window("avg_pool", x.shape, _dtype(x), params)
    return _pool_ops.avg_pool(x, k, s, lo, hi, ceil, bool(params[5]))


def lp_pool(x, params: tuple):
    k, s, _, _, _, ceil, problem = _window("lp_pool", x.shape, _dtype(x), params)
    return _pool_ops.lp_pool(x, problem.p, k, s, ceil)


def max_unpool(x, indices, params: tuple):
    k, s, lo, hi, _, _, problem = _window("max_unpool", x.shape, _dtype(x), params)
    return _pool_ops.max_unpool(x, indices, k, s, lo, hi, list(problem.y_shape[2:]))


def max_pool_backward(grad_y, x, params: tuple, indices: Optional[Any]):
    k, s, lo, hi, d, ceil, _ = _window("max_pool", x.shape, _dtype(x), params)
    if indices is None:  # the argmax of every window, as the forward saved it
        with torch.no_grad():
            indices = _pool_ops.max_pool(x, k, s, lo, hi, d, ceil)[1]
    return _pool_ops.max_pool_backward(grad_y, x, torch.as_tensor(indices), k, s, lo, hi, d, ceil)


def avg_pool_backward(grad_y, x_shape, params: tuple):
    shape = full_shape(x_shape, "x_shape", grad_y.dim())
    k, s, lo, hi, _, ceil, _ = _window("avg_pool", shape, _dtype(grad_y), params)
    return _pool_ops.avg_pool_backward(grad_y, shape, k, s, lo, hi, ceil, bool(params[5]))


def lp_pool_backward(grad_y, x, params: tuple):
    k, s, _, _, _, ceil, problem = _window("lp_pool", x.shape, _dtype(x), params)
    return _pool_ops.lp_pool_backward(grad_y, x, problem.p, k, s, ceil)
