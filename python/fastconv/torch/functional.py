"""torch.nn.functional's convolution and pooling functions, with the same names, arguments,
defaults and results, running fastconv's kernels through the custom ops (fastconv/torch/_ops.py):
autograd, torch.compile and CUDA tensors included. Change the import, nothing else.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._arguments import per_dim
from ._ops import conv as _conv_op
from ._pool_ops import avg_pool as _avg_pool_op
from ._pool_ops import max_pool as _max_pool_op
from ._pool_ops import max_unpool as _max_unpool_op
from ._shapes import transposed_extent


def _batched(input: Tensor, rank: int, name: str = "input") -> tuple[Tensor, bool]:
    """(N, C, *spatial) input, and whether it came unbatched (C, *spatial), as torch allows."""
    if input.dim() == rank + 2:
        return input, False
    if input.dim() == rank + 1:
        return input.unsqueeze(0), True
    raise ValueError(
        f"{name} must have {rank + 1} (unbatched) or {rank + 2} (batched) dims for a {rank}-D op, "
        f"got shape {tuple(input.shape)}"
    )


def _unbatch(t: Tensor, unbatched: bool) -> Tensor:
    return t.squeeze(0) if unbatched else t


def _window(value: Any, rank: int, name: str, default: Any = None) -> list[int]:
    if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
        value = default
    return per_dim(value, rank, name)


# ---- convolution


def _conv(rank, input, weight, bias, stride, padding, dilation, groups) -> Tensor:
    s, d = per_dim(stride, rank, "stride"), per_dim(dilation, rank, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            lo = hi = [0] * rank
        elif padding == "same":  # torch's rule: stride 1, the odd unit at the end
            if any(v != 1 for v in s):
                raise ValueError("padding='same' is not supported for strided convolutions")
            total = [dd * (k - 1) for k, dd in zip(weight.shape[2:], d)]
            lo = [t // 2 for t in total]
            hi = [t - t // 2 for t in total]
        else:
            raise ValueError(
                f"Invalid padding string {padding!r}, should be one of ('valid', 'same')"
            )
    else:
        lo = hi = per_dim(padding, rank, "padding")
    x, unbatched = _batched(input, rank)
    y = _conv_op(
        x, weight, bias, "conv", "forward", [], s, lo, hi, d, groups, "cross", [0] * rank, "auto"
    )
    return _unbatch(y, unbatched)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d on fastconv's kernels."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d on fastconv's kernels."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv3d on fastconv's kernels."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(
    rank, input, weight, bias, stride, padding, output_padding, groups, dilation
) -> Tensor:
    s, d = per_dim(stride, rank, "stride"), per_dim(dilation, rank, "dilation")
    p = per_dim(padding, rank, "padding")
    op = per_dim(output_padding, rank, "output_padding")
    x, unbatched = _batched(input, rank)
    y = _conv_op(
        x, weight, bias, "conv_transpose", "forward", [], s, p, p, d, groups, "cross", op, "auto"
    )
    return _unbatch(y, unbatched)


def conv_transpose1d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """torch.nn.functional.conv_transpose1d on fastconv's kernels."""
    return _conv_transpose(
        1, input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def conv_transpose2d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """torch.nn.functional.conv_transpose2d on fastconv's kernels."""
    return _conv_transpose(
        2, input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def conv_transpose3d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """torch.nn.functional.conv_transpose3d on fastconv's kernels."""
    return _conv_transpose(
        3, input, weight, bias, stride, padding, output_padding, groups, dilation
    )


# ---- pooling


def _max_pool(rank, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    k = per_dim(kernel_size, rank, "kernel_size")
    s = _window(stride, rank, "stride", k)
    p = per_dim(padding, rank, "padding")
    d = per_dim(dilation, rank, "dilation")
    x, unbatched = _batched(input, rank)
    y, indices = _max_pool_op(x, k, s, p, p, d, bool(ceil_mode))
    y, indices = _unbatch(y, unbatched), _unbatch(indices, unbatched)
    return (y, indices) if return_indices else y


def max_pool1d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """torch.nn.functional.max_pool1d on fastconv's kernels."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """torch.nn.functional.max_pool2d on fastconv's kernels."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """torch.nn.functional.max_pool3d on fastconv's kernels."""
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


_TORCH_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _avg_pool(
    rank, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None
):
    if divisor_override is not None:
        # A fixed divisor is torch's own extension of average pooling: torch computes it.
        return _TORCH_AVG[rank](
            input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        )
    k = per_dim(kernel_size, rank, "kernel_size")
    s = _window(stride, rank, "stride", k)
    p = per_dim(padding, rank, "padding")
    x, unbatched = _batched(input, rank)
    y = _avg_pool_op(x, k, s, p, p, bool(ceil_mode), bool(count_include_pad))
    return _unbatch(y, unbatched)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """torch.nn.functional.avg_pool1d on fastconv's kernels."""
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def avg_pool2d(
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    """torch.nn.functional.avg_pool2d on fastconv's kernels (divisor_override: torch's)."""
    return _avg_pool(
        2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def avg_pool3d(
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    """torch.nn.functional.avg_pool3d on fastconv's kernels (divisor_override: torch's)."""
    return _avg_pool(
        3, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def _lp_pool(rank, input, norm_type, kernel_size, stride, ceil_mode):
    # torch's definition, kept exactly: p = +-inf is the max (min) of |x| over the window;
    # otherwise the average of x**p over the window (partial windows of ceil_mode averaged over
    # their valid part) times the window size, then the p-th root.
    if isinstance(norm_type, (int, float)) and math.isinf(norm_type):
        sign = 1 if norm_type > 0 else -1
        y = _max_pool(rank, sign * input.abs(), kernel_size, stride, 0, 1, ceil_mode, False)
        return sign * y
    k = per_dim(kernel_size, rank, "kernel_size")
    s = _window(stride, rank, "stride", k)
    x, unbatched = _batched(input, rank)
    zeros = [0] * rank
    out = _avg_pool_op(x.pow(norm_type), k, s, zeros, zeros, bool(ceil_mode), True)
    out = (torch.sign(out) * torch.relu(torch.abs(out))).mul(math.prod(k)).pow(1.0 / norm_type)
    return _unbatch(out, unbatched)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch.nn.functional.lp_pool1d on fastconv's kernels."""
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch.nn.functional.lp_pool2d on fastconv's kernels."""
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch.nn.functional.lp_pool3d on fastconv's kernels."""
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)


def _max_unpool(rank, input, indices, kernel_size, stride, padding, output_size):
    k = per_dim(kernel_size, rank, "kernel_size")
    s = _window(stride, rank, "stride", k)
    p = per_dim(padding, rank, "padding")
    x, unbatched = _batched(input, rank)
    idx, _ = _batched(indices, rank, "indices")
    default = [
        transposed_extent(i, kk, ss, pp, pp, 1, 0) for i, kk, ss, pp in zip(x.shape[2:], k, s, p)
    ]
    if output_size is None:
        size = default
    else:  # torch's rule: the spatial part, within one stride of the default
        given = list(output_size)
        if len(given) == rank + 2:
            given = given[2:]
        if len(given) != rank:
            raise ValueError(
                f"output_size must have {rank} or {rank + 2} elements, got {len(given)}"
            )
        for dim, (g, dflt, ss) in enumerate(zip(given, default, s)):
            if not dflt - ss < g < dflt + ss:
                raise ValueError(
                    f"invalid output_size {tuple(given)} (dim {dim} must be between "
                    f"{dflt - ss} and {dflt + ss})"
                )
        size = [int(g) for g in given]
    y = _max_unpool_op(x, idx, k, s, p, p, size)
    return _unbatch(y, unbatched)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool1d on fastconv's kernels."""
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool2d on fastconv's kernels."""
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool3d on fastconv's kernels."""
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)


__all__ = [
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "max_pool1d", "max_pool2d", "max_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
]  # fmt: skip
