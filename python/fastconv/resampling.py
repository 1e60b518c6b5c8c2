"""The public resampling and pooling-variant API (DESIGN.md, "Ops from the seed texts"):
upsampling (nearest, linear / bilinear / trilinear), pixel shuffle / unshuffle, stochastic
pooling, and blur / weighted average pooling with their gradients.

Upsampling, pixel shuffle and stochastic pooling run fastconv._C's resampling kernels
(fastconv/_resample.py, csrc/ops/resample.cc). Blur pooling and weighted average pooling are
depthwise convolutions with a fixed, normalised kernel and run as fastconv.conv (its problem,
selection and depthwise algorithm). On torch tensors that require grad the calls go through the
PyTorch adapter's operators (fastconv/torch/_resample_ops.py), so autograd records them.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from ._arguments import array_shape, check_bool, explicit_padding, full_shape, spatial_rank
from ._autograd import records_grad
from ._resample import (
    INDICES_OUT,
    blur_kernel,
    check_seed,
    depthwise_weight,
    pool_weights,
    run_resample,
)
from .functional import conv, conv_backward_data

IntOrTuple = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int], Sequence[Sequence[int]]]
_X = ("x",)


def _recorded() -> Any:
    from .torch import _resample_ops  # torch is loaded: the caller passed a tensor

    return _resample_ops


def _shape(x: Any, name: str = "x") -> tuple[int, ...]:
    shape = array_shape(x, name)
    spatial_rank(len(shape), name)
    return tuple(int(s) for s in shape)


# ---- upsampling


def upsample_nearest(x, scale: IntOrTuple):
    """Nearest-neighbour upsampling by integer factors: y[..., o] = x[..., o // scale]."""
    if records_grad(x):
        return _recorded().upsample("upsample_nearest", x, scale, False)
    return run_resample("upsample_nearest", "forward", _X, (x,), (scale, False))


def upsample_nearest_backward(grad_y, x_shape: Sequence[int], scale: IntOrTuple):
    """Gradient of upsample_nearest: each x element gets the sum over its scale block."""
    if records_grad(grad_y):
        return _recorded().upsample_backward("upsample_nearest", grad_y, x_shape, scale, False)
    return run_resample(
        "upsample_nearest", "backward", ("grad_y",), (grad_y,), (scale, False), x_shape
    )


def upsample_linear(x, scale: IntOrTuple, *, align_corners: bool = False):
    """Linear (1-D), bilinear (2-D) or trilinear (3-D) upsampling by integer factors, as
    torch.nn.functional.interpolate(x, scale_factor=scale, mode=..., align_corners=...)."""
    if records_grad(x):
        return _recorded().upsample("upsample_linear", x, scale, align_corners)
    return run_resample("upsample_linear", "forward", _X, (x,), (scale, align_corners))


def upsample_linear_backward(
    grad_y, x_shape: Sequence[int], scale: IntOrTuple, *, align_corners: bool = False
):
    """Gradient of upsample_linear with respect to x (shape `x_shape`)."""
    if records_grad(grad_y):
        return _recorded().upsample_backward(
            "upsample_linear", grad_y, x_shape, scale, align_corners
        )
    return run_resample(
        "upsample_linear", "backward", ("grad_y",), (grad_y,), (scale, align_corners), x_shape
    )


# ---- pixel shuffle


def pixel_shuffle(x, r: int):
    """(N, C * r**d, *S) -> (N, C, *S * r), as torch.nn.functional.pixel_shuffle for d = 2;
    its gradient is pixel_unshuffle."""
    if records_grad(x):
        return _recorded().pixel("pixel_shuffle", x, r)
    return run_resample("pixel_shuffle", "forward", _X, (x,), (r,))


def pixel_unshuffle(x, r: int):
    """(N, C, *S * r) -> (N, C * r**d, *S), the inverse of pixel_shuffle (and its gradient)."""
    if records_grad(x):
        return _recorded().pixel("pixel_unshuffle", x, r)
    return run_resample("pixel_unshuffle", "forward", _X, (x,), (r,))


# ---- stochastic pooling


def stochastic_pool(
    x,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    padding: Padding = 0,
    training: bool = True,
    seed: Optional[int] = None,
    return_indices: bool = False,
):
    """Stochastic pooling of non-negative x. Training: each window's output is one of its
    elements, drawn with probability x_i / sum(window) from a counter-based RNG keyed by
    (seed, output index): the same seed gives the same result for any thread count; seed=None
    draws a fresh seed. Eval (training=False): sum(x_i**2) / sum(x_i). An all-zero window gives
    0 (training: its first element). return_indices (training only): also the flat offsets of
    the chosen elements within each (n, c) plane, as max_pool's."""
    training = check_bool(training, "training")
    return_indices = check_bool(return_indices, "return_indices")
    if return_indices and not training:
        raise ValueError("return_indices needs training=True (eval mode selects no element)")
    # A bad seed is refused in eval too, where no seed is used (so none is drawn for None).
    seed_value = check_seed(seed) if training or seed is not None else 0
    if not training:
        seed_value = 0
    params = (kernel_size, stride, padding, training)
    if records_grad(x):
        return _recorded().stochastic_pool(x, params, seed_value, return_indices)
    index = ("indices", INDICES_OUT) if return_indices else None
    return run_resample(
        "stochastic_pool", "forward", _X, (x,), params, index=index, seed=seed_value
    )


def stochastic_pool_backward(
    grad_y,
    x,
    kernel_size: IntOrTuple,
    *,
    stride: Optional[IntOrTuple] = None,
    padding: Padding = 0,
    training: bool = True,
    indices=None,
):
    """Gradient of stochastic_pool with respect to x. Training: grad_y scattered to `indices`
    (what stochastic_pool(..., return_indices=True) returned; x gives the shape). Eval: the
    exact derivative of sum(x**2) / sum(x), (2 x_i - y) / sum(x), 0 for an all-zero window."""
    training = check_bool(training, "training")
    params = (kernel_size, stride, padding, training)
    if training and indices is None:
        raise ValueError(
            "indices must be given in training mode (the ones stochastic_pool returned with "
            "return_indices=True)"
        )
    if records_grad(grad_y):
        return _recorded().stochastic_pool_backward(grad_y, x, params, indices)
    index = ("indices", indices) if training else None
    return run_resample(
        "stochastic_pool", "backward", ("grad_y", "x"), (grad_y, x), params, index=index
    )


# ---- blur pooling and weighted average pooling: depthwise convolutions


def blur_pool(x, *, kernel_size: IntOrTuple = 3, stride: IntOrTuple = 2, padding: Any = "same"):
    """Anti-aliased subsampling: a depthwise convolution with the normalised binomial kernel
    ([1, 2, 1] / 4 outer products for 3) at `stride`; padding as conv's ("same": TF's rule)."""
    shape = _shape(x)
    w = depthwise_weight(blur_kernel(kernel_size, len(shape) - 2), x, shape[1])
    return conv(x, w, stride=stride, padding=padding, groups=max(shape[1], 1))


def blur_pool_backward(
    grad_y,
    x_shape: Sequence[int],
    *,
    kernel_size: IntOrTuple = 3,
    stride: IntOrTuple = 2,
    padding: Any = "same",
):
    """Gradient of blur_pool with respect to x (shape `x_shape`)."""
    shape = full_shape(x_shape, "x_shape", len(_shape(grad_y, "grad_y")))
    w = depthwise_weight(blur_kernel(kernel_size, len(shape) - 2), grad_y, shape[1])
    return conv_backward_data(
        grad_y, w, shape, stride=stride, padding=padding, groups=max(shape[1], 1)
    )


def _weighted(weights: Any, rank: int, stride: Any, padding: Any) -> tuple:
    kernel = pool_weights(weights, rank)
    lo, hi = explicit_padding(padding, rank)
    return kernel, (kernel.shape if stride is None else stride), tuple(zip(lo, hi))


def weighted_avg_pool(x, weights, *, stride: Optional[IntOrTuple] = None, padding: Padding = 0):
    """y = sum(w_i x_i) / sum(w_i) over each window; `weights` kernel-shaped, >= 0, shared by
    all channels; padding counts as zeros. A depthwise convolution with weights / sum(weights)
    (the weights are constants: no gradient flows to them)."""
    shape = _shape(x)
    kernel, stride, pads = _weighted(weights, len(shape) - 2, stride, padding)
    w = depthwise_weight(kernel, x, shape[1])
    return conv(x, w, stride=stride, padding=pads, groups=max(shape[1], 1))


def weighted_avg_pool_backward(
    grad_y,
    x_shape: Sequence[int],
    weights,
    *,
    stride: Optional[IntOrTuple] = None,
    padding: Padding = 0,
):
    """Gradient of weighted_avg_pool with respect to x (shape `x_shape`)."""
    shape = full_shape(x_shape, "x_shape", len(_shape(grad_y, "grad_y")))
    kernel, stride, pads = _weighted(weights, len(shape) - 2, stride, padding)
    w = depthwise_weight(kernel, grad_y, shape[1])
    return conv_backward_data(
        grad_y, w, shape, stride=stride, padding=pads, groups=max(shape[1], 1)
    )
