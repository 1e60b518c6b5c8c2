"""fastconv/torch/_shapes.py (the fake kernels' output sizes, plain integer arithmetic) against
the compiled geometry (csrc/common/geometry.cc through fastconv._problem) on random geometries:
every conv / transposed-conv pass and every pooling kind, ceil_mode and asymmetric padding
included. Geometries the library rejects are left out (assume)."""

from __future__ import annotations

import pytest
from conftest import requires_torch, torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytestmark = requires_torch

if torch is not None:
    from fastconv._problem import conv_problem, pool_problem
    from fastconv.torch import _shapes

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


@st.composite
def conv_geometries(draw, op):
    rank = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    n = draw(st.integers(0, 2))
    c = groups * draw(st.integers(1, 2))
    k = groups * draw(st.integers(1, 2))
    dims = st.integers
    kernel = [draw(dims(1, 4)) for _ in range(rank)]
    stride = [draw(dims(1, 4)) for _ in range(rank)]
    dilation = [draw(dims(1, 3)) for _ in range(rank)]
    pad_lo = [draw(dims(0, 4)) for _ in range(rank)]
    pad_hi = [draw(dims(0, 4)) for _ in range(rank)]
    size = [draw(dims(1, 12)) for _ in range(rank)]
    if op == "conv":
        w = [k, c // groups, *kernel]
        opad = [0] * rank
    else:  # w (C_in, K_out / groups, *kernel); output_padding < max(stride, dilation)
        w = [c, k // groups, *kernel]
        opad = [draw(dims(0, max(s, d) - 1)) for s, d in zip(stride, dilation)]
    return dict(
        x=[n, c, *size],
        w=w,
        stride=stride,
        pad_lo=pad_lo,
        pad_hi=pad_hi,
        dilation=dilation,
        groups=groups,
        output_padding=opad,
    )


def compiled(op, pass_, shape, w_shape, g):
    """result_shape of the compiled problem, or None where the library rejects the geometry."""
    try:
        problem = conv_problem(
            op,
            pass_,
            tuple(shape),
            tuple(w_shape),
            "float64",
            stride=g["stride"],
            padding=list(zip(g["pad_lo"], g["pad_hi"])),
            dilation=g["dilation"],
            groups=g["groups"],
            output_padding=g["output_padding"] if op == "conv_transpose" else 0,
        )
    except ValueError:
        return None
    return list(problem.result_shape)


def ours(op, pass_, a, b, shape, g):
    window = [g[k] for k in ("stride", "pad_lo", "pad_hi", "dilation", "groups")]
    return list(_shapes.conv_result_shape(op, pass_, a, b, shape, *window, g["output_padding"]))


@SETTINGS
@given(conv_geometries("conv"))
def test_conv_result_shapes_match_the_compiled_geometry(g):
    x, w = g["x"], g["w"]
    y = compiled("conv", "forward", x, w, g)
    assume(y is not None)
    assert ours("conv", "forward", x, w, [], g) == y
    # backward_data (grad_y, w) -> x_shape; backward_weight (x, grad_y) -> w_shape
    assert compiled("conv", "backward_data", x, w, g) == x
    assert ours("conv", "backward_data", y, w, x, g) == x
    assert compiled("conv", "backward_weight", x, w, g) == w
    assert ours("conv", "backward_weight", x, y, w, g) == w


@SETTINGS
@given(conv_geometries("conv_transpose"))
def test_conv_transpose_result_shapes_match_the_compiled_geometry(g):
    x, w = g["x"], g["w"]
    y = compiled("conv_transpose", "forward", x, w, g)
    assume(y is not None)
    assert ours("conv_transpose", "forward", x, w, [], g) == y
    # backward_data (grad_y, w): the conv of grad_y, back to x's shape
    assert compiled("conv_transpose", "backward_data", y, w, g) == x
    assert ours("conv_transpose", "backward_data", y, w, [], g) == x
    assert compiled("conv_transpose", "backward_weight", x, w, g) == w
    assert ours("conv_transpose", "backward_weight", x, y, w, g) == w


@st.composite
def pool_geometries(draw):
    rank = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["max_pool", "avg_pool", "lp_pool"]))
    dims = st.integers
    kernel = [draw(dims(1, 5)) for _ in range(rank)]
    stride = [draw(dims(1, 5)) for _ in range(rank)]
    if kind == "max_pool":
        dilation = [draw(dims(1, 3)) for _ in range(rank)]
    else:
        dilation = [1] * rank
    if kind == "lp_pool":
        pad_lo = pad_hi = [0] * rank
    else:  # torch's bound, which the library keeps: at most half the kernel
        pad_lo = [draw(dims(0, kk // 2)) for kk in kernel]
        pad_hi = [draw(dims(0, kk // 2)) for kk in kernel]
    x = [draw(dims(0, 2)), draw(dims(1, 3)), *(draw(dims(1, 12)) for _ in range(rank))]
    return dict(
        kind=kind,
        x=x,
        kernel=kernel,
        stride=stride,
        pad_lo=pad_lo,
        pad_hi=pad_hi,
        dilation=dilation,
        ceil_mode=draw(st.booleans()),
    )


@SETTINGS
@given(pool_geometries())
def test_pool_result_shapes_match_the_compiled_geometry(g):
    try:
        problem = pool_problem(
            g["kind"],
            "forward",
            tuple(g["x"]),
            "float64",
            g["kernel"],
            stride=g["stride"],
            padding=list(zip(g["pad_lo"], g["pad_hi"])),
            dilation=g["dilation"],
            ceil_mode=g["ceil_mode"],
        )
    except ValueError:
        assume(False)
    window = [g[k] for k in ("kernel", "stride", "pad_lo", "pad_hi", "dilation", "ceil_mode")]
    assert list(_shapes.pool_result_shape(g["x"], *window)) == list(problem.y_shape)


# The ceil_mode rule at its edges, by hand: (size, kernel, stride, lo, hi, dilation) -> (floor,
# ceil) output extent, as torch computes them.
EXTENTS = [
    ((5, 2, 2, 0, 0, 1), (2, 3)),  # a partial last window
    ((4, 2, 2, 0, 0, 1), (2, 2)),  # none
    ((5, 3, 2, 1, 1, 1), (3, 3)),  # the extra window would start in the high padding
    ((6, 3, 2, 1, 1, 1), (3, 4)),
    ((1, 2, 2, 0, 0, 1), (0, 1)),  # a window longer than the input (ceil keeps one)
    ((7, 3, 3, 1, 1, 2), (2, 3)),  # dilated
]


@pytest.mark.parametrize("args, want", EXTENTS, ids=str)
def test_output_extent_ceil_mode_edges(args, want):
    import torch.nn.functional as F

    assert (_shapes.output_extent(*args), _shapes.output_extent(*args, True)) == want
    size, k, s, lo, hi, d = args
    assert lo == hi  # torch's max_pool1d: symmetric padding
    x = torch.zeros(1, 1, size)
    for ceil_mode, extent in zip((False, True), want):
        if extent > 0:
            assert F.max_pool1d(x, k, s, lo, d, ceil_mode).shape[-1] == extent
