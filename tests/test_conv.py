"""conv and conv1d/2d/3d vs the oracle: geometries, dtypes, array kinds, NaN/Inf."""

from __future__ import annotations

import itertools
import math
import random

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, assert_close, assert_result_type, raises_naming, rand

# Per rank: input spatial sizes and kernel sizes (odd, prime, non-square on purpose).
GEOMS = {1: ((13,), (5,)), 2: ((11, 7), (5, 3)), 3: ((6, 5, 5), (3, 2, 2))}
STRIDES = {1: [1, 2, 3], 2: [1, (2, 1), 3], 3: [1, 2, (1, 3, 2)]}
DILATIONS = {1: [1, 2], 2: [1, (2, 1)], 3: [1, 2]}
PADDINGS = {
    1: [0, 2, (1,), ((0, 3),), "valid", "same", "full"],
    2: [1, (2, 0), ((0, 2), (1, 0)), "valid", "same", "full"],
    3: [1, (1, 0, 1), ((1, 0), (0, 1), (2, 1)), "valid", "same", "full"],
}
# (C, K, groups): plain 5 -> 7, two groups, depthwise (G == C), channel multiplier 2 (K = 2C, G = C)
GROUPINGS = [(5, 7, 1), (4, 6, 2), (5, 5, 5), (3, 6, 3)]


def run_conv_case(rng, dtype, rank, grouping, n, bias, mode, stride, padding, dilation):
    """Run fastconv.conv on random data and compare with the oracle."""
    in_sizes, k_sizes = GEOMS[rank]
    c, k, groups = grouping
    x = rand(rng, (n, c) + in_sizes, dtype)
    w = rand(rng, (k, c // groups) + k_sizes, dtype)
    b = rand(rng, (k,), dtype) if bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, mode=mode)
    want = ref.conv(x, w, b, **kw)
    assert min(want.shape[2:]) >= 1  # the case tables only hold valid geometries
    y = fastconv.conv(x, w, b, **kw)
    assert_result_type(y, dtype)
    assert_close(y, want, reduction=(c // groups) * math.prod(k_sizes))


def _geometry_cases():
    for rank in (1, 2, 3):
        for stride, padding, dilation in itertools.product(
            STRIDES[rank], PADDINGS[rank], DILATIONS[rank]
        ):
            yield rank, stride, padding, dilation


GEOMETRY_CASES = list(_geometry_cases())


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "case",
    range(len(GEOMETRY_CASES)),
    ids=[f"r{r}-s{s}-p{p}-d{d}".replace(" ", "") for r, s, p, d in GEOMETRY_CASES],
)
def test_forward_geometries(case, dtype, rng):
    # Every rank x stride x padding form x dilation; the other factors rotate with a seeded choice.
    rank, stride, padding, dilation = GEOMETRY_CASES[case]
    pick = random.Random(case)
    grouping = pick.choice(GROUPINGS)
    n, bias, mode = pick.choice([1, 2, 3]), pick.random() < 0.5, pick.choice(["cross", "conv"])
    run_conv_case(rng, dtype, rank, grouping, n, bias, mode, stride, padding, dilation)


# Fixed geometry per rank with stride and "same" padding; all channel/batch/bias/mode factors.
FACTOR_GEOMS = {1: (2, "same", 2), 2: ((1, 2), "same", 1), 3: (2, 1, 1)}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [0, 1, 3])
@pytest.mark.parametrize("mode", ["cross", "conv"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("grouping", GROUPINGS, ids=lambda g: "C{}-K{}-G{}".format(*g))
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_forward_factors(rank, grouping, bias, mode, n, dtype, rng):
    stride, padding, dilation = FACTOR_GEOMS[rank]
    run_conv_case(rng, dtype, rank, grouping, n, bias, mode, stride, padding, dilation)


# Shapes that steer `auto` towards each algorithm family (winograd 3x3, 1x1 gemm, depthwise, fft
# for large kernels and long 1-D signals, 3-D direct), plus awkward prime channel counts.
LAYERS = [
    # (x_shape, w_shape, stride, padding, groups)
    ((2, 8, 12, 12), (8, 8, 3, 3), 1, 1, 1),
    ((1, 8, 11, 9), (16, 8, 1, 1), 1, 0, 1),
    ((2, 8, 10, 12), (8, 1, 3, 3), 1, "same", 8),
    ((1, 8, 9, 11), (8, 1, 3, 3), 2, 1, 8),
    ((1, 3, 12, 12), (4, 3, 7, 7), 1, 3, 1),
    ((2, 3, 256), (4, 3, 9), 1, "same", 1),
    ((1, 2, 200), (3, 2, 31), 1, "valid", 1),
    ((1, 23, 5, 6), (19, 23, 3, 3), 1, 1, 1),
    ((1, 4, 6, 6, 6), (5, 4, 3, 3, 3), 1, 1, 1),
    ((1, 6, 5, 4, 6), (6, 1, 3, 3, 3), (2, 1, 2), "same", 6),
    ((1, 5, 7, 7), (3, 5, 7, 7), 1, 0, 1),  # kernel == input: a single output
    ((1, 5, 1, 9), (3, 5, 1, 3), 1, 0, 1),  # degenerate height
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layer", LAYERS, ids=lambda L: f"{L[0]}x{L[1]}".replace(" ", ""))
def test_forward_layers(layer, dtype, rng):
    x_shape, w_shape, stride, padding, groups = layer
    x, w, b = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype), rand(rng, w_shape[:1], dtype)
    y = fastconv.conv(x, w, b, stride=stride, padding=padding, groups=groups)
    assert_result_type(y, dtype)
    assert_close(y, ref.conv(x, w, b, stride, padding, 1, groups), reduction=math.prod(w_shape[1:]))


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_same_padding_output_is_ceil_of_input_over_stride(rank, stride, rng):
    in_sizes = GEOMS[rank][0]
    x = rand(rng, (1, 2) + in_sizes)
    w = rand(rng, (3, 2) + (4,) * rank)  # even kernel: the extra padding goes to the high end
    y = fastconv.conv(x, w, stride=stride, padding="same")
    assert y.shape == (1, 3) + tuple(-(-n // stride) for n in in_sizes)
    assert_close(y, ref.conv(x, w, stride=stride, padding="same"), reduction=2 * 4**rank)


def test_mode_conv_flips_every_spatial_dim(rng):
    x, w = rand(rng, (2, 3, 7, 6)), rand(rng, (4, 3, 3, 2))
    assert_close(
        fastconv.conv(x, w, mode="conv"),
        fastconv.conv(x, np.ascontiguousarray(w[:, :, ::-1, ::-1])),
        reduction=18,
    )


# ---- conv1d / conv2d / conv3d


RANK_FUNCS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_rank_specific_functions(rank, rng):
    in_sizes, k_sizes = GEOMS[rank]
    x, w, b = rand(rng, (2, 4) + in_sizes), rand(rng, (6, 2) + k_sizes), rand(rng, (6,))
    kw = dict(stride=2, padding=1, dilation=1, groups=2, mode="conv")
    y = getattr(fastconv, RANK_FUNCS[rank])(x, w, b, **kw)
    assert_result_type(y, np.float64)
    assert_close(y, ref.conv(x, w, b, **kw), reduction=2 * math.prod(k_sizes))
    for other_rank, name in RANK_FUNCS.items():
        if other_rank != rank:
            with raises_naming(ValueError, "w"):
                getattr(fastconv, name)(x, w, b, **kw)


# ---- array kinds


def _variant(a, kind):
    """The same values as `a`, laid out as `kind`."""
    if kind == "strided":  # a[:, :, ::2]-style view of a larger array
        big = np.zeros(a.shape[:2] + (2 * a.shape[2],) + a.shape[3:], a.dtype)
        big[:, :, ::2] = a
        return big[:, :, ::2]
    if kind == "transposed":  # a transposed view (of a contiguous array with swapped axes)
        axes = (a.ndim - 1, a.ndim - 2) if a.ndim > 3 else (0, 1)
        return np.ascontiguousarray(np.swapaxes(a, *axes)).swapaxes(*axes)
    if kind == "reversed":  # negative strides
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "byteswapped":
        return a.astype(a.dtype.newbyteorder("S"))
    if kind == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    raise AssertionError(kind)


KINDS = ["strided", "transposed", "reversed", "fortran", "byteswapped", "readonly"]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("which", ["x", "w", "both"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rank", [1, 2])
def test_noncontiguous_and_odd_arrays(rank, kind, which, dtype, rng):
    in_sizes, k_sizes = GEOMS[rank]
    x, w, b = (
        rand(rng, (2, 4) + in_sizes, dtype),
        rand(rng, (6, 2) + k_sizes, dtype),
        rand(rng, (6,), dtype),
    )
    xv = _variant(x, kind) if which in ("x", "both") else x
    wv = _variant(w, kind) if which in ("w", "both") else w
    bv = (
        _variant(b.reshape(1, 1, 6), kind).reshape(6)
        if which == "both" and kind != "strided"
        else b
    )
    np.testing.assert_array_equal(xv, x)  # the variant holds the same values
    y = fastconv.conv(xv, wv, bv, stride=(2,) * rank, padding=1, groups=2)
    assert type(y) is np.ndarray
    assert y.dtype.type is np.dtype(dtype).type
    assert_close(y, ref.conv(x, w, b, 2, 1, 1, 2), reduction=2 * math.prod(k_sizes))


def test_inputs_are_not_modified(rng):
    x, w, b = rand(rng, (2, 4, 9, 8)), rand(rng, (6, 2, 3, 3)), rand(rng, (6,))
    xs, ws, bs = _variant(x, "strided"), _variant(w, "transposed"), b.copy()
    copies = [a.copy() for a in (x, w, b, xs, ws)]
    fastconv.conv(x, w, b, stride=2, padding="same", groups=2, mode="conv")
    fastconv.conv(xs, ws, bs, padding="full", groups=2)
    for before, after in zip(copies, (x, w, b, xs, ws)):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(bs, b)


def test_python_lists_are_accepted_as_float64(rng):
    x, w = rand(rng, (1, 2, 6)), rand(rng, (3, 2, 3))
    y = fastconv.conv(x.tolist(), w.tolist(), padding=1)
    assert_result_type(y, np.float64)
    assert_close(y, ref.conv(x, w, padding=1), reduction=6)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_empty_batch(rank, dtype, rng):
    in_sizes, k_sizes = GEOMS[rank]
    x, w = np.zeros((0, 4) + in_sizes, dtype), rand(rng, (6, 4) + k_sizes, dtype)
    y = fastconv.conv(x, w, rand(rng, (6,), dtype), stride=2, padding="same")
    assert_result_type(y, dtype)
    assert y.shape == (0, 6) + tuple(-(-n // 2) for n in in_sizes)


# ---- IEEE specials


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("algo", ["auto", "reference"])
def test_nan_and_inf_propagate(value, algo, dtype, rng):
    x, w = rand(rng, (2, 3, 9, 8), dtype), rand(rng, (4, 3, 3, 3), dtype, 0.1, 1.0)  # w != 0
    x[1, 2, 4, 3] = value
    y = fastconv.conv(x, w, padding=1, algo=algo)
    want = ref.conv(x, w, padding=1)
    hit = ~np.isfinite(want)
    assert hit[1].any() and not hit[0].any()
    # every output whose window holds the special value is non-finite, with any algorithm
    assert not np.isfinite(y[hit]).any()
    # other images are untouched by it
    assert_close(y[0], want[0], reduction=27)
    if algo == "reference":  # a direct sum keeps the exact IEEE result, sign of inf included
        assert_close(y, want, reduction=27)
