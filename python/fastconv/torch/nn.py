"""torch.nn's convolution and pooling modules computing with fastconv: `fct.nn.Conv2d` etc.

Each class subclasses its torch.nn namesake and overrides only the compute (`_conv_forward` or
`forward`), which calls fastconv/torch/functional.py with the module's own attributes. The
constructors, parameters, state_dict keys, repr and hooks are torch's, so a model can switch
either by building with these classes or by `fastconv.torch.replace_modules(model)`.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

import fastconv.torch.functional as fcf

# ---- convolution


def _conv_forward(module, conv, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    # torch's Conv*d._conv_forward: a non-zero padding mode pads with F.pad (in F.pad's reversed
    # per-dim order, precomputed by _ConvNd.__init__, 'same' included) and then convolves
    # unpadded; 'zeros' hands the padding (int, tuple, 'same' or 'valid') to the conv itself.
    if module.padding_mode != "zeros":
        input = F.pad(input, module._reversed_padding_repeated_twice, mode=module.padding_mode)
        padding = 0
    else:
        padding = module.padding
    return conv(input, weight, bias, module.stride, padding, module.dilation, module.groups)


class Conv1d(torch.nn.Conv1d):
    """torch.nn.Conv1d computing with fastconv."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return _conv_forward(self, fcf.conv1d, input, weight, bias)


class Conv2d(torch.nn.Conv2d):
    """torch.nn.Conv2d computing with fastconv."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return _conv_forward(self, fcf.conv2d, input, weight, bias)


class Conv3d(torch.nn.Conv3d):
    """torch.nn.Conv3d computing with fastconv."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        return _conv_forward(self, fcf.conv3d, input, weight, bias)


def _conv_transpose_forward(module, conv_transpose, rank, input, output_size) -> Tensor:
    # torch's ConvTranspose*d.forward: only zero padding, and an output_size turned into the
    # output_padding that reaches it (torch's own helper, with its range check and messages).
    if module.padding_mode != "zeros":
        raise ValueError(f"Only `zeros` padding mode is supported for {type(module).__name__}")
    output_padding = module._output_padding(
        input,
        output_size,
        module.stride,
        module.padding,
        module.kernel_size,
        rank,
        module.dilation,
    )
    return conv_transpose(
        input,
        module.weight,
        module.bias,
        module.stride,
        module.padding,
        output_padding,
        module.groups,
        module.dilation,
    )


class ConvTranspose1d(torch.nn.ConvTranspose1d):
    """torch.nn.ConvTranspose1d computing with fastconv."""

    def forward(self, input: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        return _conv_transpose_forward(self, fcf.conv_transpose1d, 1, input, output_size)


class ConvTranspose2d(torch.nn.ConvTranspose2d):
    """torch.nn.ConvTranspose2d computing with fastconv."""

    def forward(self, input: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        return _conv_transpose_forward(self, fcf.conv_transpose2d, 2, input, output_size)


class ConvTranspose3d(torch.nn.ConvTranspose3d):
    """torch.nn.ConvTranspose3d computing with fastconv."""

    def forward(self, input: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        return _conv_transpose_forward(self, fcf.conv_transpose3d, 3, input, output_size)


# ---- pooling


def _max_pool_forward(module, max_pool, input: Tensor):
    return max_pool(
        input,
        module.kernel_size,
        module.stride,
        module.padding,
        module.dilation,
        ceil_mode=module.ceil_mode,
        return_indices=module.return_indices,
    )


class MaxPool1d(torch.nn.MaxPool1d):
    """torch.nn.MaxPool1d computing with fastconv."""

    def forward(self, input: Tensor):
        return _max_pool_forward(self, fcf.max_pool1d, input)


class MaxPool2d(torch.nn.MaxPool2d):
    """torch.nn.MaxPool2d computing with fastconv."""

    def forward(self, input: Tensor):
        return _max_pool_forward(self, fcf.max_pool2d, input)


class MaxPool3d(torch.nn.MaxPool3d):
    """torch.nn.MaxPool3d computing with fastconv."""

    def forward(self, input: Tensor):
        return _max_pool_forward(self, fcf.max_pool3d, input)


class AvgPool1d(torch.nn.AvgPool1d):
    """torch.nn.AvgPool1d computing with fastconv."""

    def forward(self, input: Tensor) -> Tensor:
        return fcf.avg_pool1d(
            input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad,
        )  # fmt: skip


class AvgPool2d(torch.nn.AvgPool2d):
    """torch.nn.AvgPool2d computing with fastconv (divisor_override: torch's, as in
    fastconv.torch.functional)."""

    def forward(self, input: Tensor) -> Tensor:
        return fcf.avg_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override,
        )  # fmt: skip


class AvgPool3d(torch.nn.AvgPool3d):
    """torch.nn.AvgPool3d computing with fastconv (divisor_override: torch's, as in
    fastconv.torch.functional)."""

    def forward(self, input: Tensor) -> Tensor:
        return fcf.avg_pool3d(
            input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override,
        )  # fmt: skip


class LPPool1d(torch.nn.LPPool1d):
    """torch.nn.LPPool1d computing with fastconv."""

    def forward(self, input: Tensor) -> Tensor:
        return fcf.lp_pool1d(
            input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode
        )


class LPPool2d(torch.nn.LPPool2d):
    """torch.nn.LPPool2d computing with fastconv."""

    def forward(self, input: Tensor) -> Tensor:
        return fcf.lp_pool2d(
            input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode
        )


class LPPool3d(torch.nn.LPPool3d):
    """torch.nn.LPPool3d computing with fastconv."""

    def forward(self, input: Tensor) -> Tensor:
        return fcf.lp_pool3d(
            input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode
        )


class MaxUnpool1d(torch.nn.MaxUnpool1d):
    """torch.nn.MaxUnpool1d computing with fastconv."""

    def forward(
        self, input: Tensor, indices: Tensor, output_size: Optional[list[int]] = None
    ) -> Tensor:
        return fcf.max_unpool1d(
            input, indices, self.kernel_size, self.stride, self.padding, output_size
        )


class MaxUnpool2d(torch.nn.MaxUnpool2d):
    """torch.nn.MaxUnpool2d computing with fastconv."""

    def forward(
        self, input: Tensor, indices: Tensor, output_size: Optional[list[int]] = None
    ) -> Tensor:
        return fcf.max_unpool2d(
            input, indices, self.kernel_size, self.stride, self.padding, output_size
        )


class MaxUnpool3d(torch.nn.MaxUnpool3d):
    """torch.nn.MaxUnpool3d computing with fastconv."""

    def forward(
        self, input: Tensor, indices: Tensor, output_size: Optional[list[int]] = None
    ) -> Tensor:
        return fcf.max_unpool3d(
            input, indices, self.kernel_size, self.stride, self.padding, output_size
        )


__all__ = [
    "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "Conv1d", "Conv2d", "Conv3d",
    "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "LPPool1d", "LPPool2d", "LPPool3d",
    "MaxPool1d", "MaxPool2d", "MaxPool3d",
    "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
]  # fmt: skip

# The torch.nn class each of the above replaces (fastconv/torch/__init__.py: replace_modules).
REPLACES = {getattr(torch.nn, name): globals()[name] for name in __all__}

# The resampling ops' modules (fastconv/torch/_resample_nn.py): not in REPLACES (BlurPool and
# StochasticPool have no torch.nn namesake; Upsample / PixelShuffle are opt-in).
from ._resample_nn import *  # noqa: E402, F403
from ._resample_nn import __all__ as _RESAMPLE_MODULES  # noqa: E402

__all__ += _RESAMPLE_MODULES
# Modules of ops torch.nn has no class for (not in REPLACES: nothing of torch's to swap).
from ._local_modules import (  # noqa: E402, F401 - fct.nn.TiledConv2d etc.
    LocallyConnected1d,
    LocallyConnected2d,
    LocallyConnected3d,
    SeparableConv2d,
    TiledConv2d,
)
