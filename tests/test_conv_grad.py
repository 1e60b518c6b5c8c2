"""conv_backward_data / _weight / _bias against the oracle, and the adjoint identities with conv."""

from __future__ import annotations

import itertools
import math
import random

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, assert_close, assert_result_type, rand

GEOMS = {1: ((12,), (3,)), 2: ((9, 7), (3, 2)), 3: ((5, 6, 4), (2, 3, 2))}
STRIDES = {1: [1, 2, 3], 2: [1, (2, 3)], 3: [1, (2, 1, 2)]}
PADDINGS = {
    1: [0, ((2, 1),), "same", "full"],
    2: [(1, 0), ((0, 2), (1, 1)), "valid", "same", "full"],
    3: [1, "same", "full"],
}
DILATIONS = {1: [1, 3], 2: [1, (1, 2)], 3: [1, (2, 1, 1)]}
GROUPINGS = [(5, 3, 1), (4, 6, 2), (6, 6, 6), (3, 6, 3)]  # (C, K, groups)


def _cases():
    for rank in (1, 2, 3):
        for stride, padding, dilation in itertools.product(
            STRIDES[rank], PADDINGS[rank], DILATIONS[rank]
        ):
            yield rank, stride, padding, dilation


CASES = list(_cases())
CASE_IDS = [f"r{r}-s{s}-p{p}-d{d}".replace(" ", "") for r, s, p, d in CASES]


def make_problem(case, dtype, rng, n=None):
    """Random x, w, grad_y and kwargs for case number `case` (other factors rotate per case)."""
    rank, stride, padding, dilation = CASES[case]
    pick = random.Random(case)
    c, k, groups = pick.choice(GROUPINGS)
    n = pick.choice([1, 2, 3]) if n is None else n
    in_sizes, k_sizes = GEOMS[rank]
    kw = dict(
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        mode=pick.choice(["cross", "conv"]),
    )
    x = rand(rng, (n, c) + in_sizes, dtype)
    w = rand(rng, (k, c // groups) + k_sizes, dtype)
    outs = ref.conv_out_shape(x.shape, w.shape, stride, padding, dilation)
    assert min(outs) >= 1
    gy = rand(rng, (n, k) + outs, dtype)
    return x, w, gy, kw


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", range(len(CASES)), ids=CASE_IDS)
def test_backward_data(case, dtype, rng):
    x, w, gy, kw = make_problem(case, dtype, rng)
    gx = fastconv.conv_backward_data(gy, w, x.shape, **kw)
    assert_result_type(gx, dtype)
    assert_close(
        gx,
        ref.conv_backward_data(gy, w, x.shape, **kw),
        reduction=w.shape[0] * math.prod(w.shape[2:]),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", range(len(CASES)), ids=CASE_IDS)
def test_backward_weight(case, dtype, rng):
    x, w, gy, kw = make_problem(case, dtype, rng)
    gw = fastconv.conv_backward_weight(x, gy, w.shape, **kw)
    assert_result_type(gw, dtype)
    assert_close(
        gw,
        ref.conv_backward_weight(x, gy, w.shape, **kw),
        reduction=gy.shape[0] * math.prod(gy.shape[2:]),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 4, 3, 5), (1, 6, 2, 3, 4), (4, 1, 1)])
def test_backward_bias(shape, dtype, rng):
    gy = rand(rng, shape, dtype)
    gb = fastconv.conv_backward_bias(gy)
    assert_result_type(gb, dtype)
    assert gb.shape == (shape[1],)
    assert_close(gb, ref.conv_backward_bias(gy), reduction=math.prod(shape) // shape[1])


@pytest.mark.parametrize("case", range(len(CASES)), ids=CASE_IDS)
def test_adjoint_identities(case, rng):
    # <conv(x, w), gy> == <x, backward_data(gy, w)> == <w, backward_weight(x, gy)> (all fastconv)
    x, w, gy, kw = make_problem(case, np.float64, rng)
    y = fastconv.conv(x, w, **kw)
    gx = fastconv.conv_backward_data(gy, w, x.shape, **kw)
    gw = fastconv.conv_backward_weight(x, gy, w.shape, **kw)
    lhs = np.vdot(y, gy)
    # scale: the sum of |terms| of the triple product, so cancellation cannot hide a bug
    scale = np.vdot(ref.conv(np.abs(x), np.abs(w), **kw), np.abs(gy))
    assert abs(lhs - np.vdot(x, gx)) <= 1e-12 * scale
    assert abs(lhs - np.vdot(w, gw)) <= 1e-12 * scale


# Layer shapes steering `auto` towards each algorithm's backward passes.
LAYERS = [
    # (x_shape, w_shape, stride, padding, groups)
    ((2, 8, 12, 12), (8, 8, 3, 3), 1, 1, 1),
    ((2, 8, 11, 9), (16, 8, 1, 1), 1, 0, 1),
    ((2, 8, 10, 12), (8, 1, 3, 3), 2, "same", 8),
    ((1, 3, 12, 12), (4, 3, 7, 7), 1, 3, 1),
    ((2, 3, 128), (4, 3, 9), 1, "same", 1),
    ((1, 23, 5, 6), (19, 23, 3, 3), 2, 1, 1),
    ((1, 4, 6, 6, 6), (5, 4, 3, 3, 3), 1, 1, 1),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layer", LAYERS, ids=lambda L: f"{L[0]}x{L[1]}".replace(" ", ""))
def test_backward_layers(layer, dtype, rng):
    x_shape, w_shape, stride, padding, groups = layer
    kw = dict(stride=stride, padding=padding, groups=groups)
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    outs = ref.conv_out_shape(x_shape, w_shape, stride, padding)
    gy = rand(rng, x_shape[:1] + w_shape[:1] + outs, dtype)
    gx = fastconv.conv_backward_data(gy, w, x_shape, **kw)
    assert_close(
        gx,
        ref.conv_backward_data(gy, w, x_shape, **kw),
        reduction=w_shape[0] * math.prod(w_shape[2:]),
    )
    gw = fastconv.conv_backward_weight(x, gy, w_shape, **kw)
    assert_close(
        gw, ref.conv_backward_weight(x, gy, w_shape, **kw), reduction=x_shape[0] * math.prod(outs)
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_empty_batch_gradients(rank, dtype, rng):
    in_sizes, k_sizes = GEOMS[rank]
    w = rand(rng, (6, 2) + k_sizes, dtype)
    x = np.zeros((0, 4) + in_sizes, dtype)
    outs = ref.conv_out_shape(x.shape, w.shape, 1, 1)
    gy = np.zeros((0, 6) + outs, dtype)
    gx = fastconv.conv_backward_data(gy, w, x.shape, padding=1, groups=2)
    assert_result_type(gx, dtype)
    assert gx.shape == x.shape
    gw = fastconv.conv_backward_weight(x, gy, w.shape, padding=1, groups=2)
    assert_result_type(gw, dtype)
    np.testing.assert_array_equal(gw, np.zeros(w.shape))  # a sum over nothing is zero
    np.testing.assert_array_equal(fastconv.conv_backward_bias(gy), np.zeros(6))


def test_uncovered_input_positions_get_zero_gradient(rng):
    # in = 12, k = 3, stride 4, no padding: positions 11 and the gaps between windows are never read
    x, w = rand(rng, (1, 2, 12)), rand(rng, (3, 2, 2))
    gy = rand(rng, (1, 3, 3))
    gx = fastconv.conv_backward_data(gy, w, x.shape, stride=4)
    unused = np.ones(12, bool)
    for o in range(3):
        unused[o * 4 : o * 4 + 2] = False
    assert np.all(gx[..., unused] == 0)
    assert_close(gx, ref.conv_backward_data(gy, w, x.shape, stride=4), reduction=6)


def test_gradient_inputs_are_not_modified_and_may_be_noncontiguous(rng):
    x, w = rand(rng, (2, 4, 9, 8)), rand(rng, (6, 2, 3, 3))
    gy_full = rand(rng, (2, 6, 9, 16))
    gy = gy_full[..., ::2]  # strided view, shape (2, 6, 9, 8)
    xf, wf = np.asfortranarray(x), w.astype(w.dtype.newbyteorder("S"))
    copies = [a.copy() for a in (xf, wf, gy_full)]
    kw = dict(padding="same", groups=2, mode="conv")
    gx = fastconv.conv_backward_data(gy, wf, list(x.shape), **kw)  # x_shape as a list
    gw = fastconv.conv_backward_weight(xf, gy, list(w.shape), **kw)
    gb = fastconv.conv_backward_bias(gy)
    for before, after in zip(copies, (xf, wf, gy_full)):
        np.testing.assert_array_equal(before, after)
    assert_close(gx, ref.conv_backward_data(gy, w, x.shape, **kw), reduction=27)
    assert_close(gw, ref.conv_backward_weight(x, gy, w.shape, **kw), reduction=144)
    assert_close(gb, ref.conv_backward_bias(gy), reduction=144)
