"""Modules of the resampling ops (fastconv/resampling.py) for fastconv.torch.nn: BlurPool1d/2d/3d,
StochasticPool1d/2d/3d (training follows `module.training`), PixelShuffle / PixelUnshuffle and
Upsample (subclasses of torch's, computing with fastconv where it has the kernels). They call
the adapter's operators (fastconv/torch/_resample_ops.py; blur pooling: the conv operator
fastconv::conv), never fastconv.resampling, which sits above the adapter."""

from __future__ import annotations

import numbers
from typing import Any, Optional

import torch
from torch import Tensor

import fastconv.torch._resample_ops as ops

from .._problem import conv_problem
from .._resample import blur_kernel, check_seed, depthwise_weight
from ._ops import conv as conv_op
from ._rank_classes import rank_classes


def _check_rank(module: torch.nn.Module, input: Tensor, rank: int) -> None:
    if input.dim() != rank + 2:
        raise ValueError(
            f"{type(module).__name__} expects a {rank + 2}-D input (N, C, *{rank} spatial dims), "
            f"got shape {tuple(input.shape)}"
        )


class _BlurPool(torch.nn.Module):
    rank = 2  # BlurPool1d/2d/3d set it

    def __init__(self, kernel_size: Any = 3, stride: Any = 2, padding: Any = "same") -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, input: Tensor) -> Tensor:
        _check_rank(self, input, self.rank)
        w = depthwise_weight(blur_kernel(self.kernel_size, self.rank), input, input.shape[1])
        c = max(input.shape[1], 1)
        dtype = str(input.dtype).replace("torch.", "")
        p = conv_problem(
            "conv", "forward", input.shape, w.shape, dtype, stride=self.stride,
            padding=self.padding, groups=c,
        )  # fmt: skip
        rank = self.rank
        return conv_op(
            input, w, None, "conv", "forward", [], list(p.stride), list(p.pad_lo),
            list(p.pad_hi), [1] * rank, c, "cross", [0] * rank, "auto",
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"


BlurPool1d, BlurPool2d, BlurPool3d = rank_classes(
    _BlurPool, "BlurPool", "Anti-aliased subsampling (fastconv.blur_pool) of {shape} inputs."
)


class _StochasticPool(torch.nn.Module):
    rank = 2  # StochasticPool1d/2d/3d set it

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        return_indices: bool = False,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.return_indices, self.seed = return_indices, seed

    def forward(self, input: Tensor):
        """Training: a fresh draw per call (or `seed`'s, when set); eval: the weighted average."""
        _check_rank(self, input, self.rank)
        params = (self.kernel_size, self.stride, self.padding, self.training)
        seed = check_seed(self.seed) if self.training else 0
        return ops.stochastic_pool(input, params, seed, self.return_indices and self.training)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


StochasticPool1d, StochasticPool2d, StochasticPool3d = rank_classes(
    _StochasticPool,
    "StochasticPool",
    "Stochastic pooling (fastconv.stochastic_pool) of {shape} non-negative inputs.",
)


class PixelShuffle(torch.nn.PixelShuffle):
    """torch.nn.PixelShuffle computing with fastconv (4-D inputs; others go to torch)."""

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() != 4:
            return super().forward(input)
        return ops.pixel("pixel_shuffle", input, self.upscale_factor)


class PixelUnshuffle(torch.nn.PixelUnshuffle):
    """torch.nn.PixelUnshuffle computing with fastconv (4-D inputs; others go to torch)."""

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() != 4:
            return super().forward(input)
        return ops.pixel("pixel_unshuffle", input, self.downscale_factor)


_LINEAR = {"linear": 3, "bilinear": 4, "trilinear": 5}


class Upsample(torch.nn.Upsample):
    """torch.nn.Upsample computing with fastconv for integer scale factors with mode "nearest"
    or linear / bilinear / trilinear; everything else (size=, other modes) goes to torch."""

    def forward(self, input: Tensor) -> Tensor:
        sf = self.scale_factor
        factors = sf if isinstance(sf, tuple) else (sf,) * max(input.dim() - 2, 0)
        integral = (
            self.size is None
            and sf is not None
            and all(
                isinstance(f, numbers.Real) and float(f).is_integer() and f >= 1 for f in factors
            )
            and not getattr(self, "recompute_scale_factor", None)
        )
        scale = tuple(int(f) for f in factors) if integral else ()
        if integral and self.mode == "nearest" and 3 <= input.dim() <= 5:
            return ops.upsample("upsample_nearest", input, scale, False)
        if integral and _LINEAR.get(self.mode) == input.dim():
            return ops.upsample("upsample_linear", input, scale, bool(self.align_corners))
        return super().forward(input)


__all__ = [
    "BlurPool1d", "BlurPool2d", "BlurPool3d",
    "PixelShuffle", "PixelUnshuffle",
    "StochasticPool1d", "StochasticPool2d", "StochasticPool3d",
    "Upsample",
]  # fmt: skip
