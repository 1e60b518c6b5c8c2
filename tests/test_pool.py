"""Pooling (max, avg, lp, global, max_unpool) and the pooling backward passes against the oracle."""

from __future__ import annotations

import math

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, assert_close, assert_result_type, rand

IN_SIZES = {1: (11,), 2: (9, 8), 3: (5, 6, 4)}
# (kernel_size, stride, padding, dilation); every padding side <= kernel // 2
MAX_CASES = {
    1: [
        (3, None, 0, 1),
        (3, 2, 1, 1),
        (4, 3, ((2, 1),), 1),
        (2, 1, 1, 1),
        (3, 2, 1, 2),
        (5, 2, 2, 1),
        (3, (1,), (1,), (3,)),
    ],
    2: [
        (2, None, 0, 1),
        ((3, 2), (2, 1), (1, 0), 1),
        (3, 2, ((1, 0), (0, 1)), (2, 1)),
        (3, 3, 1, 1),
        ((2, 3), (1, 2), (1, 1), 1),
        ((1, 3), (1, 2), (0, 1), (1, 2)),
    ],
    3: [(2, None, 0, 1), ((3, 2, 2), (2, 1, 2), (1, 0, 1), 1), (3, 2, 1, (1, 2, 1))],
}
MAX_PARAMS = [(r, c) for r in (1, 2, 3) for c in MAX_CASES[r]]
AVG_PARAMS = [(r, c[:3]) for r, c in MAX_PARAMS if c[3] == 1]


def _id(p):
    return f"r{p[0]}-{p[1]}".replace(" ", "")


def _x(rng, rank, dtype, n=2, c=3, positive=False):
    lo = 0.05 if positive else -1.0
    return rand(rng, (n, c) + IN_SIZES[rank], dtype, lo, 1.0)


DT = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
CEIL = pytest.mark.parametrize("ceil_mode", [False, True], ids=["floor", "ceil"])


# ---- max pool


@DT
@CEIL
@pytest.mark.parametrize("param", MAX_PARAMS, ids=_id)
def test_max_pool(param, ceil_mode, dtype, rng):
    rank, (k, s, p, d) = param
    x = _x(rng, rank, dtype)
    want, want_idx = ref.max_pool(x, k, s, p, d, ceil_mode)
    assert (want_idx >= 0).all()  # every window reaches the input (a property of the case table)
    y = fastconv.max_pool(x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    assert_result_type(y, dtype)
    np.testing.assert_array_equal(y, want)  # max selects, it does not round
    y2, idx = fastconv.max_pool(
        x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode, return_indices=True
    )
    np.testing.assert_array_equal(y2, want)
    assert_result_type(idx, np.int64)
    np.testing.assert_array_equal(idx, want_idx)


@DT
@CEIL
@pytest.mark.parametrize("param", MAX_PARAMS, ids=_id)
def test_max_pool_backward(param, ceil_mode, dtype, rng):
    rank, (k, s, p, d) = param
    x = _x(rng, rank, dtype)
    gy = rand(rng, ref.max_pool(x, k, s, p, d, ceil_mode)[0].shape, dtype)
    gx = fastconv.max_pool_backward(gy, x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    assert_result_type(gx, dtype)
    kk = ref.per_dim(k, rank)
    assert_close(gx, ref.max_pool_backward(gy, x, k, s, p, d, ceil_mode), reduction=math.prod(kk))


@pytest.mark.parametrize("param", [(1, (4, 3, 1, 1)), (2, (3, 2, 1, 1)), (3, (2, 1, 0, 1))])
@DT
def test_max_pool_backward_from_saved_indices(param, dtype, rng):
    """indices= scatters to the saved argmax positions: overlapping windows that share an argmax
    add their gradients, as recomputing the argmax does (up to the order of those sums: the
    scatter takes a block's even windows before its odd ones)."""
    rank, (k, s, p, d) = param
    x = _x(rng, rank, dtype)
    y, idx = fastconv.max_pool(x, k, stride=s, padding=p, dilation=d, return_indices=True)
    gy = rand(rng, y.shape, dtype)
    kw = dict(stride=s, padding=p, dilation=d)
    got = fastconv.max_pool_backward(gy, x, k, indices=idx, **kw)
    assert_result_type(got, dtype)
    kk = ref.per_dim(k, rank)
    assert_close(got, ref.max_pool_backward(gy, x, k, s, p, d, False), reduction=math.prod(kk))
    again = fastconv.max_pool_backward(gy, x, k, **kw)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(got, again, rtol=0, atol=8 * eps * float(np.abs(gy).max()))


@pytest.mark.parametrize("shape", [(2, 3, 17, 23), (1, 2, 6, 16), (1, 1, 5, 36), (3, 1, 4, 2)])
def test_max_pool_backward_2x2_rows_at_each_isa(shape, fastconv_with_env, isa, rng):
    """2x2 / 2 windows from saved indices (each pair of input rows written once by the row kernel
    where the level has one: 8 outputs a step, the last 8 again for 9-15, element by element
    under 8; odd last rows and columns zero) at every level, both dtypes: each position gets at
    most one gradient, so the result is exact, -0 gradients land as +0 (as 0 + g does); an index
    outside its window (but in the plane) is scattered there, one past the plane raises."""
    fc = fastconv_with_env(FASTCONV_ISA=isa)
    for dtype in DTYPES:
        x = rand(rng, shape, dtype)
        y, idx = fc.max_pool(x, 2, return_indices=True)
        gy = rand(rng, y.shape, dtype)
        gy.reshape(-1)[::5] = -0.0
        want = ref.max_pool_backward(gy, x, 2, 2, 0, 1, False)
        got = fc.max_pool_backward(gy, x, 2, indices=idx)
        np.testing.assert_array_equal(got, want)
        assert np.signbit(got[got == 0]).sum() == 0
        moved = idx.copy()
        moved[0, 0, 0, 0] = shape[2] * shape[3] - 1  # the plane's last position
        moved[-1, -1, -1, -1] = 0
        scattered = np.zeros((shape[0] * shape[1], shape[2] * shape[3]))
        flat_g, flat_i = gy.reshape(len(scattered), -1), moved.reshape(len(scattered), -1)
        for plane in range(len(scattered)):
            np.add.at(scattered[plane], flat_i[plane], flat_g[plane])
        got = fc.max_pool_backward(gy, x, 2, indices=moved)
        np.testing.assert_allclose(got.reshape(scattered.shape), scattered, rtol=1e-6, atol=1e-6)
        moved[-1, -1, 0, -1] = shape[2] * shape[3]
        with pytest.raises(ValueError, match="indices"):
            fc.max_pool_backward(gy, x, 2, indices=moved)


@pytest.mark.parametrize(
    "shape, padding, ceil_mode",
    [
        ((1, 3, 112, 112), 1, False),  # ResNet-50's max pool, smaller
        ((2, 2, 15, 17), 1, False),
        ((2, 2, 15, 17), 0, True),
        ((1, 2, 16, 9), (0, 1), False),
        ((1, 2, 9, 16), (1, 0), True),
        ((1, 1, 3, 3), 0, False),
        ((3, 1, 5, 35), 1, True),
    ],
)
def test_max_pool_backward_3x3s2_at_each_isa(
    shape, padding, ceil_mode, fastconv_with_env, isa, rng
):
    """3x3 / 2 windows from saved indices (overlapping windows: the scatter's sums, its even
    windows of a block before the odd, its zeroing a chunk ahead) at every level, both dtypes,
    against the oracle; -0 gradients land as +0; an index outside its window (but in the plane:
    the row before's last column, the next row's first) is scattered there, one past the plane
    raises."""
    fc = fastconv_with_env(FASTCONV_ISA=isa)
    kw = dict(stride=2, padding=padding, ceil_mode=ceil_mode)
    h, w = shape[2], shape[3]
    for dtype in DTYPES:
        x = rand(rng, shape, dtype)
        y, idx = fc.max_pool(x, 3, return_indices=True, **kw)
        gy = rand(rng, y.shape, dtype)
        gy.reshape(-1)[::5] = -0.0
        want = ref.max_pool_backward(gy, x, 3, 2, padding, 1, ceil_mode)
        got = fc.max_pool_backward(gy, x, 3, indices=idx, **kw)
        assert_close(got, want, reduction=4)
        assert np.signbit(got[got == 0]).sum() == 0

        def scattered(moved):
            out = np.zeros((shape[0] * shape[1], h * w))
            flat_g, flat_i = gy.reshape(len(out), -1), moved.reshape(len(out), -1)
            for plane in range(len(out)):
                np.add.at(out[plane], flat_i[plane], flat_g[plane])
            return out.reshape(got.shape)

        cases = []
        moved = idx.copy()
        moved[0, 0, 0, 0] = h * w - 1  # the plane's last position
        moved[-1, -1, -1, -1] = 0
        cases.append(moved)
        moved = idx.copy()  # the window's left column minus one: the row before's last column
        moved[0, -1, -1, 0] = (idx[0, -1, -1, 0] // w) * w - 1 if idx[0, -1, -1, 0] >= w else 0
        cases.append(moved)
        moved = idx.copy()  # the last window's right column plus one: the next row's first
        moved[-1, 0, 0, -1] = min(idx[-1, 0, 0, -1] // w * w + w, h * w - 1)
        cases.append(moved)
        for moved in cases:
            got = fc.max_pool_backward(gy, x, 3, indices=moved, **kw)
            np.testing.assert_allclose(got, scattered(moved), rtol=1e-6, atol=1e-6)
        moved = idx.copy()
        moved[-1, -1, -1, -1] = h * w  # the row past the plane
        with pytest.raises(ValueError, match="indices"):
            fc.max_pool_backward(gy, x, 3, indices=moved, **kw)


def test_max_pool_backward_rejects_bad_indices(rng):
    x = rand(rng, (1, 2, 6, 6))
    y, idx = fastconv.max_pool(x, 2, return_indices=True)
    with pytest.raises(ValueError, match="indices"):
        fastconv.max_pool_backward(y, x, 2, indices=idx[..., :2])  # wrong shape
    bad = idx.copy()
    bad[0, 1, 2, 2] = 36  # one past the plane
    with pytest.raises(ValueError, match="indices"):
        fastconv.max_pool_backward(y, x, 2, indices=bad)
    with pytest.raises(TypeError, match="indices"):
        fastconv.max_pool_backward(y, x, 2, indices=idx.astype(np.float64))


@DT
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_max_pool_windows_of_padding_only(rank, dtype, rng):
    """Dilation over a dim shorter than its step leaves windows that cover only padding (the
    fuzz campaign's case): -inf and index -1, as the oracle says; they depend on no input, so
    no gradient flows from them (from x or from the saved indices: PyTorch sends it to some
    element), max_unpool skips them, and any other negative index is still refused."""
    sizes = {1: (1,), 2: (5, 1), 3: (3, 1, 4)}[rank]
    one = {1: 0, 2: 1, 3: 1}[rank]  # the dim of extent 1
    stride, dilation = [1] * rank, [1] * rank
    stride[one], dilation[one] = 3, 2  # taps at -1 and 1: both outside a 1-wide dim
    kw = dict(stride=tuple(stride), padding=1, dilation=tuple(dilation), ceil_mode=True)
    x = rand(rng, (2, 3) + sizes, dtype)
    y, idx = fastconv.max_pool(x, 3, return_indices=True, **kw)
    want, want_idx = ref.max_pool(x, 3, **kw)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(idx, want_idx)
    assert (idx == -1).all() and np.isneginf(y).all()
    gy = rand(rng, y.shape, dtype)
    np.testing.assert_array_equal(ref.max_pool_backward(gy, x, 3, **kw), 0)
    for indices in (None, idx):
        gx = fastconv.max_pool_backward(gy, x, 3, indices=indices, **kw)
        assert_result_type(gx, dtype)
        np.testing.assert_array_equal(gx, np.zeros_like(x))
    unpool_kw = dict(stride=kw["stride"], padding=1, output_size=sizes)
    np.testing.assert_array_equal(fastconv.max_unpool(gy, idx, 3, **unpool_kw), np.zeros_like(x))
    bad = idx.copy()
    bad.flat[-1] = -2
    with pytest.raises(ValueError, match=r"indices must lie in \[0, \d+\).*or be -1.*got -2"):
        fastconv.max_pool_backward(gy, x, 3, indices=bad, **kw)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, \d+\).*or be -1.*got -2"):
        fastconv.max_unpool(gy, bad, 3, **unpool_kw)


@DT
def test_max_pool_window_of_minus_infinity(dtype, rng):
    """A window whose elements are all -inf has an element (its first, as PyTorch): a real
    index and the gradient, unlike a window of padding only (the oracle had said -1)."""
    x = rand(rng, (1, 2, 4, 4), dtype)
    x[0, 1, :2, 2:] = -np.inf
    y, idx = fastconv.max_pool(x, 2, return_indices=True)
    want, want_idx = ref.max_pool(x, 2)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(idx, want_idx)
    assert idx[0, 1, 0, 1] == 2 and np.isneginf(y[0, 1, 0, 1])
    gy = rand(rng, y.shape, dtype)
    gx = fastconv.max_pool_backward(gy, x, 2)
    assert gx[0, 1, 0, 2] == gy[0, 1, 0, 1]
    assert_close(gx, ref.max_pool_backward(gy, x, 2))


def test_pool_kernels_far_past_the_input(rng):
    """A ceil_mode window of 2^40 taps (stride the same) over 2 elements is one window over the
    padded input, equal to a 6-tap one: kernels are cut at the padded input's end and a lone
    window's stride is 1, so nothing loops over or plans for taps that read nothing (the row
    plan asked for 64 TB: the fuzz campaign's child, seed 4949, was OOM-killed). Likewise a
    dilation that puts every tap but the first past the input."""
    x = rand(rng, (2, 3, 2))
    big, small = dict(kernel_size=2**40, padding=2), dict(kernel_size=6, padding=2)
    for cip in (True, False):
        np.testing.assert_array_equal(
            fastconv.avg_pool(x, **big, ceil_mode=True, count_include_pad=cip),
            fastconv.avg_pool(x, **small, ceil_mode=True, count_include_pad=cip),
        )
        gy = rand(rng, (2, 3, 1))
        assert_close(
            fastconv.avg_pool_backward(gy, x.shape, **big, ceil_mode=True, count_include_pad=cip),
            ref.avg_pool_backward(gy, x.shape, 6, None, 2, True, cip),
        )
    y, idx = fastconv.max_pool(x, **big, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y, x.max(-1, keepdims=True))
    np.testing.assert_array_equal(idx, x.argmax(-1)[..., None])
    gy = rand(rng, y.shape)
    np.testing.assert_array_equal(
        fastconv.max_pool_backward(gy, x, **big, ceil_mode=True),
        fastconv.max_pool_backward(gy, x, **small, ceil_mode=True),
    )
    assert_close(
        fastconv.lp_pool(x, 2, 2**40, ceil_mode=True), np.linalg.norm(x, axis=-1)[..., None]
    )
    kw = dict(stride=2**40, padding=1, dilation=2**39, ceil_mode=True)
    y, idx = fastconv.max_pool(x, 3, **kw, return_indices=True)
    assert np.isneginf(y).all() and (idx == -1).all()  # only the first tap is near: padding


@DT
def test_max_pool_ties_pick_first_in_scan_order(dtype, rng):
    x = rng.integers(0, 3, (2, 3, 9, 8)).astype(dtype)  # many equal values per window
    y, idx = fastconv.max_pool(x, 3, stride=2, padding=1, return_indices=True)
    want, want_idx = ref.max_pool(x, 3, 2, 1)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(idx, want_idx)


@DT
def test_max_pool_nan_counts_as_max(dtype, rng):
    x = _x(rng, 2, dtype)
    x[1, 2, 4, 5] = np.nan
    y, idx = fastconv.max_pool(x, 3, stride=2, padding=1, return_indices=True)
    want, _ = ref.max_pool(x, 3, 2, 1)
    hit = np.isnan(want)
    assert hit.any()
    np.testing.assert_array_equal(np.isnan(y), hit)
    assert (idx[hit] == 4 * 8 + 5).all()
    np.testing.assert_array_equal(y[~hit], want[~hit])


@DT
def test_max_pool_padding_is_minus_infinity(dtype):
    x = -np.ones((1, 1, 4, 4), dtype) * 7  # all negative: zero padding would win
    y, idx = fastconv.max_pool(x, 3, stride=1, padding=1, return_indices=True)
    np.testing.assert_array_equal(y, np.full((1, 1, 4, 4), -7, dtype))
    assert ((idx >= 0) & (idx < 16)).all()


def test_max_pool_default_stride_is_kernel_size(rng):
    x = _x(rng, 2, np.float64)
    np.testing.assert_array_equal(
        fastconv.max_pool(x, (3, 2)), fastconv.max_pool(x, (3, 2), stride=(3, 2))
    )
    np.testing.assert_array_equal(fastconv.max_pool(x, (3, 2)), ref.max_pool(x, (3, 2))[0])


# ---- avg pool


@DT
@CEIL
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl", "excl"])
@pytest.mark.parametrize("param", AVG_PARAMS, ids=_id)
def test_avg_pool(param, count_include_pad, ceil_mode, dtype, rng):
    rank, (k, s, p) = param
    x = _x(rng, rank, dtype)
    kw = dict(stride=s, padding=p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    y = fastconv.avg_pool(x, k, **kw)
    assert_result_type(y, dtype)
    red = math.prod(ref.per_dim(k, rank))
    assert_close(y, ref.avg_pool(x, k, s, p, ceil_mode, count_include_pad), reduction=red)
    gy = rand(rng, y.shape, dtype)
    gx = fastconv.avg_pool_backward(gy, x.shape, k, **kw)
    assert_result_type(gx, dtype)
    assert_close(
        gx, ref.avg_pool_backward(gy, x.shape, k, s, p, ceil_mode, count_include_pad), reduction=red
    )


def test_avg_pool_divisor_rules():
    # 1-D, in = 5, k = 3, s = 2, padding 1, ceil: windows [-1,2) [1,4) [3,6) -> last one overhangs
    x = np.arange(1.0, 6.0).reshape(1, 1, 5)
    incl = fastconv.avg_pool(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
    excl = fastconv.avg_pool(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    # the last window [3, 6) lies inside [-1, 5 + 1): divisor 3 incl, 2 excl (positions 3, 4)
    np.testing.assert_allclose(incl.ravel(), [(1 + 2) / 3, (2 + 3 + 4) / 3, (4 + 5) / 3])
    np.testing.assert_allclose(excl.ravel(), [(1 + 2) / 2, (2 + 3 + 4) / 3, (4 + 5) / 2])
    # no padding, ceil: the overhanging window counts only positions inside [0, in + 0)
    y = fastconv.avg_pool(x, 2, stride=2, ceil_mode=True, count_include_pad=True)
    np.testing.assert_allclose(y.ravel(), [1.5, 3.5, 5.0])


@pytest.mark.parametrize("in_size,k,s", [(1, 2, None), (3, 4, 2), (5, 7, 3)], ids=str)
def test_ceil_mode_window_larger_than_input(in_size, k, s, rng):
    # ceil((in - k) / s) + 1 == 1: one window, starting inside the input, overhanging its end
    # (valid by the contract's formula, as in PyTorch)
    x = rand(rng, (2, 3, in_size), np.float64, 0.1, 1.0)
    y, idx = fastconv.max_pool(x, k, stride=s, ceil_mode=True, return_indices=True)
    want, want_idx = ref.max_pool(x, k, s, 0, 1, True)
    assert want.shape == (2, 3, 1)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(idx, want_idx)
    for cip in (True, False):
        ya = fastconv.avg_pool(x, k, stride=s, ceil_mode=True, count_include_pad=cip)
        assert_close(ya, ref.avg_pool(x, k, s, 0, True, cip), reduction=k)
    assert_close(
        fastconv.lp_pool(x, 2, k, stride=s, ceil_mode=True),
        ref.lp_pool(x, 2, k, s, True),
        reduction=k,
    )


# ---- lp pool


LP_CASES = {
    1: [(3, None), (2, 3), (4, 2)],
    2: [(2, None), ((3, 2), (2, 1))],
    3: [(2, None), ((2, 3, 2), (1, 2, 2))],
}
LP_PARAMS = [(r, c) for r in (1, 2, 3) for c in LP_CASES[r]]


@DT
@CEIL
@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
@pytest.mark.parametrize("param", LP_PARAMS, ids=_id)
def test_lp_pool(param, p, ceil_mode, dtype, rng):
    rank, (k, s) = param
    x = _x(rng, rank, dtype, positive=True)
    y = fastconv.lp_pool(x, p, k, stride=s, ceil_mode=ceil_mode)
    assert_result_type(y, dtype)
    red = math.prod(ref.per_dim(k, rank))
    assert_close(y, ref.lp_pool(x, p, k, s, ceil_mode), reduction=red)
    gy = rand(rng, y.shape, dtype)
    gx = fastconv.lp_pool_backward(gy, x, p, k, stride=s, ceil_mode=ceil_mode)
    assert_result_type(gx, dtype)
    assert_close(gx, ref.lp_pool_backward(gy, x, p, k, s, ceil_mode), reduction=red)


def test_lp_pool_p2_with_signed_input_is_window_norm(rng):
    x = _x(rng, 2, np.float64)
    y = fastconv.lp_pool(x, 2, 3, stride=2)
    assert_close(y, np.sqrt(ref.avg_pool(x * x, 3, 2) * 9), reduction=9)


def test_lp_pool_backward_zero_window_contributes_zero(rng):
    x = _x(rng, 1, np.float64, positive=True)
    x[0, 0, 0:3] = 0.0  # first window all zero -> y == 0 there
    gy = np.ones(ref.lp_pool(x, 2, 3).shape)
    gx = fastconv.lp_pool_backward(gy, x, 2, 3)
    assert np.isfinite(gx).all()
    np.testing.assert_array_equal(gx[0, 0, 0:3], 0.0)
    assert_close(gx, ref.lp_pool_backward(gy, x, 2, 3), reduction=3)


# ---- global pools


@DT
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_global_pools(rank, dtype, rng):
    x = _x(rng, rank, dtype)
    ya, ym = fastconv.global_avg_pool(x), fastconv.global_max_pool(x)
    for y in (ya, ym):
        assert_result_type(y, dtype)
        assert y.shape == x.shape[:2] + (1,) * rank
    assert_close(ya, ref.global_avg_pool(x), reduction=math.prod(IN_SIZES[rank]))
    np.testing.assert_array_equal(ym, ref.global_max_pool(x))


# ---- max_unpool


@DT
@pytest.mark.parametrize("param", [p for p in MAX_PARAMS if p[1][3] == 1], ids=_id)
def test_max_unpool_round_trip(param, dtype, rng):
    rank, (k, s, p, _) = param
    x = _x(rng, rank, dtype)
    y, idx = fastconv.max_pool(x, k, stride=s, padding=p, return_indices=True)
    for size in (x.shape[2:], x.shape):  # spatial or full output_size
        u = fastconv.max_unpool(y, idx, k, stride=s, padding=p, output_size=size)
        assert_result_type(u, dtype)
        np.testing.assert_array_equal(u, ref.max_unpool(y, idx, k, s, p, x.shape[2:]))
        # every kept value sits where it came from; everything else is zero
        np.testing.assert_array_equal(u[u != 0], x[u != 0])


@DT
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_max_unpool_default_output_size(rank, dtype, rng):
    in_sizes = {1: (12,), 2: (8, 6), 3: (4, 6, 2)}[rank]
    x = rand(rng, (2, 3) + in_sizes, dtype)
    y, idx = fastconv.max_pool(x, 2, return_indices=True)
    u = fastconv.max_unpool(y, idx, 2)
    assert u.shape == x.shape  # (in - 1) * s + k == original for non-overlapping windows
    np.testing.assert_array_equal(u, ref.max_unpool(y, idx, 2))
    np.testing.assert_array_equal(u, np.where(u != 0, x, 0))


def test_max_unpool_arbitrary_indices(rng):
    vals = rand(rng, (2, 3, 4))
    idx = np.stack(
        [np.stack([rng.permutation(10)[:4] for _ in range(3)]) for _ in range(2)]
    ).astype(np.int64)
    u = fastconv.max_unpool(vals, idx, 3, stride=3, output_size=(10,))
    np.testing.assert_array_equal(u, ref.max_unpool(vals, idx, 3, 3, 0, (10,)))
    idx[0, 1, 2] = idx[1, 0, 0] = -1  # windows of padding only: skipped
    u = fastconv.max_unpool(vals, idx, 3, stride=3, output_size=(10,))
    np.testing.assert_array_equal(u, ref.max_unpool(vals, idx, 3, 3, 0, (10,)))
    assert vals[0, 1, 2] not in u[0, 1] and vals[1, 0, 0] not in u[1, 0]


# ---- common behaviour


@pytest.mark.parametrize("op", ["max", "avg", "lp", "global_avg", "global_max"])
def test_pool_empty_batch(op):
    x = np.zeros((0, 3, 9, 8))
    y = {
        "max": lambda: fastconv.max_pool(x, 3, stride=2, padding=1),
        "avg": lambda: fastconv.avg_pool(x, 3, stride=2, padding=1),
        "lp": lambda: fastconv.lp_pool(x, 2, 3, stride=2),
        "global_avg": lambda: fastconv.global_avg_pool(x),
        "global_max": lambda: fastconv.global_max_pool(x),
    }[op]()
    assert_result_type(y, np.float64)
    expected = {"max": (5, 4), "avg": (5, 4), "lp": (4, 3)}.get(op, (1, 1))
    assert y.shape == (0, 3) + expected


def test_pool_inputs_not_modified_and_noncontiguous_ok(rng):
    base = _x(rng, 2, np.float64, positive=True)
    x = np.asfortranarray(base)[:, :, ::-1]  # Fortran order with a negative stride
    copy = x.copy()
    gy = rand(rng, (2, 3, 5, 4))
    gl = rand(rng, (2, 3, 4, 4))  # lp_pool's ceil-mode output shape
    results = [
        (fastconv.max_pool(x, 3, stride=2, padding=1), ref.max_pool(copy, 3, 2, 1)[0]),
        (fastconv.avg_pool(x, 3, stride=2, padding=1), ref.avg_pool(copy, 3, 2, 1)),
        (fastconv.lp_pool(x, 2, 3, stride=2, ceil_mode=True), ref.lp_pool(copy, 2, 3, 2, True)),
        (
            fastconv.max_pool_backward(gy, x, 3, stride=2, padding=1),
            ref.max_pool_backward(gy, copy, 3, 2, 1),
        ),
        (
            fastconv.lp_pool_backward(gl, x, 2, 3, stride=2, ceil_mode=True),
            ref.lp_pool_backward(gl, copy, 2, 3, 2, True),
        ),
    ]
    np.testing.assert_array_equal(x, copy)
    for got, want in results:
        assert_close(got, want, reduction=9)
