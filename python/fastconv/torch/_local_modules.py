"""Modules of the ops torch.nn lacks, on fastconv's kernels: tiled and locally connected
convolution (the fastconv::tiled_conv operator, fastconv/torch/_tiled_ops.py) and a separable
convolution whose kernel is the outer product of trainable 1-D factors."""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import torch
from torch import Tensor

import fastconv.torch.functional as fcf

from .._arguments import explicit_padding, per_dim, positive
from ._rank_classes import rank_classes
from ._shapes import output_extent
from ._tiled_ops import tiled

IntOrTuple = Union[int, Sequence[int]]


class _TiledConv(torch.nn.Module):
    """Tiled convolution of rank `rank`: weight (K, *tiles, C, *kernel), bias (K,), or
    (K, *tiles) for a locally connected layer; torch's Conv init bounds."""

    rank = 2
    _op = "tiled_conv"
    _bias_per_tile = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        tiles: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: Any = 0,
        dilation: IntOrTuple = 1,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        rank = self.rank
        kernel = positive(per_dim(kernel_size, rank, "kernel_size"), "kernel_size")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = tuple(kernel)
        self.tiles = tuple(positive(per_dim(tiles, rank, "tiles"), "tiles"))
        self.stride = tuple(positive(per_dim(stride, rank, "stride"), "stride"))
        self.dilation = tuple(positive(per_dim(dilation, rank, "dilation"), "dilation"))
        self.padding = padding
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = torch.nn.Parameter(
            torch.empty(out_channels, *self.tiles, in_channels, *kernel, **kw)
        )
        shape = (out_channels, *self.tiles) if self._bias_per_tile else (out_channels,)
        self.bias = torch.nn.Parameter(torch.empty(*shape, **kw)) if bias else None
        bound = 1.0 / math.sqrt(max(1, in_channels * math.prod(kernel)))
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        params = (self.stride, self.padding, self.dilation)
        return tiled(self._op, "forward", input, self.weight, self.bias, None, params)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"tiles={self.tiles}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, bias={self.bias is not None}"
        )


class TiledConv2d(_TiledConv):
    """2-D tiled convolution: output position (i, j) uses kernel (i % tiles[0], j % tiles[1])."""


class _LocallyConnected(_TiledConv):
    """The tiled convolution whose tiles are the output positions: arguments as a conv's, with
    the input's spatial size (input_size) in place of the tiles."""

    _op = "locally_connected"
    _bias_per_tile = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        input_size: IntOrTuple,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: Any = 0,
        dilation: IntOrTuple = 1,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        rank = self.rank
        size = positive(per_dim(input_size, rank, "input_size"), "input_size")
        k = positive(per_dim(kernel_size, rank, "kernel_size"), "kernel_size")
        s = positive(per_dim(stride, rank, "stride"), "stride")
        d = positive(per_dim(dilation, rank, "dilation"), "dilation")
        lo, hi = explicit_padding(0 if padding == "valid" else padding, rank)
        out = [output_extent(*a) for a in zip(size, k, s, lo, hi, d)]
        if min(out) < 1:
            raise ValueError(
                f"kernel_size {tuple(k)} does not fit input_size {tuple(size)} with padding "
                f"{padding!r} and dilation {tuple(d)}"
            )
        super().__init__(in_channels, out_channels, k, out, s, padding, d, bias, device, dtype)
        self.input_size = tuple(size)


LocallyConnected1d, LocallyConnected2d, LocallyConnected3d = rank_classes(
    _LocallyConnected,
    "LocallyConnected",
    "{rank}-D locally connected (unshared) convolution of {shape} inputs: one kernel per output "
    "position; weight (K, *out_spatial, C, *kernel), bias (K, *out_spatial).",
)


class SeparableConv2d(torch.nn.Module):
    """2-D convolution whose kernel slices are outer products of trainable 1-D factors
    weight0 (K, C/groups, k0) and weight1 (K, C/groups, k1): fastconv.separable_conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: Any = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        k = positive(per_dim(kernel_size, 2, "kernel_size"), "kernel_size")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        cg = in_channels // groups
        self.weight0 = torch.nn.Parameter(torch.empty(out_channels, cg, k[0], **kw))
        self.weight1 = torch.nn.Parameter(torch.empty(out_channels, cg, k[1], **kw))
        self.bias = torch.nn.Parameter(torch.empty(out_channels, **kw)) if bias else None
        bound = (1.0 / math.sqrt(max(1, cg * k[0] * k[1]))) ** 0.5
        with torch.no_grad():
            for p in (self.weight0, self.weight1):
                p.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound * bound, bound * bound)

    def forward(self, input: Tensor) -> Tensor:
        # fastconv.separable_conv's plan in torch's argument conventions: with one input channel
        # per group, two 1-D depthwise passes (C -> K channels, then K -> K); else the dense
        # outer-product kernel (fastconv/separable.py measures where each wins).
        (k0, k1), c, k = self.kernel_size, self.in_channels, self.out_channels
        s = per_dim(self.stride, 2, "stride")
        d = per_dim(self.dilation, 2, "dilation")
        if c // self.groups > 1 or k0 * k1 <= k0 + k1:
            w = self.weight0[:, :, :, None] * self.weight1[:, :, None, :]
            return fcf.conv2d(input, w, self.bias, s, self.padding, d, self.groups)
        p = self.padding
        p0, p1 = (p, p) if isinstance(p, str) else ((p[0], 0), (0, p[1]))
        if isinstance(p, int):
            p0, p1 = (p, 0), (0, p)
        z = fcf.conv2d(input, self.weight0[:, :, :, None], None, (s[0], 1), p0, (d[0], 1), c)
        return fcf.conv2d(z, self.weight1[:, :, None, :], self.bias, (1, s[1]), p1, (1, d[1]), k)


__all__ = [
    "LocallyConnected1d",
    "LocallyConnected2d",
    "LocallyConnected3d",
    "SeparableConv2d",
    "TiledConv2d",
]
