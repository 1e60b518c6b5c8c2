"""Output shapes for the custom ops' fake kernels, in plain integer arithmetic that also works on
torch SymInts (dynamic shapes under torch.compile).

This mirrors output_extent() / transposed_extent() of csrc/common/geometry.cc, the one formula
the library itself uses; fake kernels cannot call into C++ with symbolic sizes.
tests/torch_adapter/test_torch_shapes.py checks these against the compiled geometry on random
geometries.
"""

from __future__ import annotations

from typing import Any, Sequence


def output_extent(
    size: Any, kernel: int, stride: int, lo: int, hi: int, dilation: int, ceil_mode: bool = False
) -> Any:
    span = size + lo + hi - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = (span + stride - 1) // stride + 1  # floor division, as geometry.cc's floor_div
    if (out - 1) * stride >= size + lo:  # the last window must start inside input or low pad
        out = out - 1
    return out


def transposed_extent(
    size: Any, kernel: int, stride: int, lo: int, hi: int, dilation: int, output_padding: int
) -> Any:
    return (size - 1) * stride - lo - hi + dilation * (kernel - 1) + 1 + output_padding


def conv_result_shape(
    op: str,
    pass_: str,
    a: Sequence[Any],
    b: Sequence[Any],
    shape: Sequence[Any],
    stride: Sequence[int],
    pad_lo: Sequence[int],
    pad_hi: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    output_padding: Sequence[int],
) -> list:
    """The shape a conv / transposed-conv pass returns; a, b are its operands' shapes."""
    if pass_ != "forward" and not (op == "conv_transpose" and pass_ == "backward_data"):
        return list(shape)  # x_shape or w_shape, given
    kernel = b[2:]
    if op == "conv":  # forward: (N, K, *out)
        dims = zip(a[2:], kernel, stride, pad_lo, pad_hi, dilation)
        return [a[0], b[0], *(output_extent(*d) for d in dims)]
    if pass_ == "forward":  # transposed forward: (N, K, *out) with K = w.shape[1] * groups
        dims = zip(a[2:], kernel, stride, pad_lo, pad_hi, dilation, output_padding)
        return [a[0], b[1] * groups, *(transposed_extent(*d) for d in dims)]
    # transposed backward_data: the conv of grad_y, its high padding lowered by output_padding
    dims = zip(a[2:], kernel, stride, pad_lo, pad_hi, dilation, output_padding)
    return [
        a[0],
        b[0],
        *(output_extent(i, k, s, lo, hi - op_, d) for i, k, s, lo, hi, d, op_ in dims),
    ]


def pool_result_shape(
    x: Sequence[Any],
    kernel: Sequence[int],
    stride: Sequence[int],
    pad_lo: Sequence[int],
    pad_hi: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> list:
    dims = zip(x[2:], kernel, stride, pad_lo, pad_hi, dilation)
    return [x[0], x[1], *(output_extent(*d, ceil_mode) for d in dims)]
