"""torch.autograd.gradcheck and gradgradcheck in float64 through fastconv.torch's public functions
(and the ops where the functions do not reach: asymmetric padding, fastconv::lp_pool). Shapes are
small: gradgradcheck perturbs every element of every operand and of the output gradient."""

from __future__ import annotations

import pytest
from conftest import requires_torch, torch
from fct_testing import tensor

pytestmark = requires_torch

if torch is not None:
    import fastconv.torch as fct
    from fastconv.torch import _ops, _pool_ops

    CONV = {1: fct.conv1d, 2: fct.conv2d, 3: fct.conv3d}
    CONV_T = {1: fct.conv_transpose1d, 2: fct.conv_transpose2d, 3: fct.conv_transpose3d}
    MAX = {1: fct.max_pool1d, 2: fct.max_pool2d, 3: fct.max_pool3d}
    AVG = {1: fct.avg_pool1d, 2: fct.avg_pool2d, 3: fct.avg_pool3d}
    LP = {1: fct.lp_pool1d, 2: fct.lp_pool2d, 3: fct.lp_pool3d}
    UNPOOL = {1: fct.max_unpool1d, 2: fct.max_unpool2d, 3: fct.max_unpool3d}

RANK = pytest.mark.parametrize("rank", [1, 2, 3])
SIZES = {1: (7,), 2: (5, 6), 3: (4, 3, 5)}  # small: gradgradcheck is quadratic in them


@pytest.fixture(params=[True, pytest.param(False, marks=pytest.mark.slow)], ids=["fast", "full"])
def fast_mode(request):
    """gradcheck's fast mode (random projections of the Jacobians) in the default run; the full
    Jacobians, element by element, under -m slow (~50x longer)."""
    return request.param


def check(fast_mode, fn, *inputs, double=True):
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=fast_mode)
    if double:
        assert torch.autograd.gradgradcheck(fn, inputs, fast_mode=fast_mode)


def t(rng, shape, low=-1.0, grad=True):
    return tensor(rng, shape, torch.float64, grad, low=low)


# (stride, padding, dilation, C, K, groups)
CONV_CASES = [(1, 0, 1, 2, 3, 1), (2, 1, 1, 4, 2, 2), (1, "same", 2, 2, 2, 1), (1, 1, 1, 2, 4, 2)]


@RANK
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_gradcheck_and_gradgradcheck(case, rank, fast_mode, rng):
    stride, padding, dilation, c, k, g = case
    kernel = (2, 3, 2)[:rank]  # even taps: padding="same" pads asymmetrically
    x = t(rng, (2, c) + SIZES[rank])
    w = t(rng, (k, c // g) + kernel)
    b = t(rng, (k,))
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=g)
    check(fast_mode, lambda x, w, b: CONV[rank](x, w, b, **kw), x, w, b)


# (stride, padding, output_padding, dilation, C_in, K_out, groups)
TRANSPOSE_CASES = [(1, 0, 0, 1, 2, 3, 1), (2, 1, 1, 1, 4, 2, 2), (2, 0, 1, 2, 2, 2, 1)]


@RANK
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv_transpose_gradcheck_and_gradgradcheck(case, rank, fast_mode, rng):
    stride, padding, opad, dilation, cin, kout, g = case
    sizes = {1: (4,), 2: (3, 4), 3: (2, 3, 2)}[rank]
    x = t(rng, (1, cin) + sizes)
    w = t(rng, (cin, kout // g) + (2, 3, 2)[:rank])
    b = t(rng, (kout,))
    kw = dict(stride=stride, padding=padding, output_padding=opad, groups=g, dilation=dilation)
    check(fast_mode, lambda x, w, b: CONV_T[rank](x, w, b, **kw), x, w, b)


@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_conv_op_gradgradcheck_asymmetric_padding(op, fast_mode, rng):
    """The op with pad_lo != pad_hi (the functions reach it only through padding='same')."""
    if op == "conv":
        x, w, opad = t(rng, (1, 2, 5, 6)), t(rng, (3, 2, 2, 3)), [0, 0]
    else:
        x, w, opad = t(rng, (1, 2, 3, 4)), t(rng, (2, 3, 2, 3)), [1, 0]
    b = t(rng, (3,))
    window = ([2, 1], [1, 0], [0, 2], [1, 2], 1, "cross", opad, "auto")

    def fn(x, w, b):
        return _ops.conv(x, w, b, op, "forward", [], *window)

    check(fast_mode, fn, x, w, b)


# (kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [(2, None, 0, 1, False), (3, 2, 1, 1, True), (2, 1, 1, 2, False), (3, 2, 1, 2, True)]


@RANK
@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool_gradcheck_and_gradgradcheck(case, rank, fast_mode, rng):
    k, s, p, d, ceil = case
    x = t(rng, (2, 2) + SIZES[rank])  # distinct values: no ties within gradcheck's eps
    check(fast_mode, lambda x: MAX[rank](x, k, s, p, d, ceil), x)


@RANK
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl", "excl"])
@pytest.mark.parametrize("case", [(2, None, 0, False), (3, 2, 1, True), (2, 3, 1, True)], ids=str)
def test_avg_pool_gradcheck_and_gradgradcheck(case, count_include_pad, rank, fast_mode, rng):
    k, s, p, ceil = case
    x = t(rng, (2, 2) + SIZES[rank])
    check(fast_mode, lambda x: AVG[rank](x, k, s, p, ceil, count_include_pad), x)


@RANK
@pytest.mark.parametrize("norm_type", [2.0, 3.0, 1.5])
@pytest.mark.parametrize("case", [(2, None, False), (3, 2, True)], ids=str)
def test_lp_pool_gradcheck_and_gradgradcheck(case, norm_type, rank, fast_mode, rng):
    # fastconv.torch's lp_pool* are avg_pool and elementwise torch ops, so they have double
    # backward; x > 0 keeps x**p smooth for a fractional p.
    k, s, ceil = case
    x = t(rng, (2, 2) + SIZES[rank], low=0.2)
    check(fast_mode, lambda x: LP[rank](x, norm_type, k, s, ceil), x)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_lp_pool_op_gradcheck(ceil_mode, fast_mode, rng):
    # fastconv::lp_pool (not used by the functions): its backward op has no autograd formula,
    # so gradcheck only.
    x = t(rng, (2, 2, 5, 6), low=0.2)
    pool = _pool_ops.lp_pool
    check(fast_mode, lambda x: pool(x, 2.5, [2, 3], [2, 2], ceil_mode), x, double=False)


@RANK
@pytest.mark.parametrize("case", [(2, None, 0), (3, 3, 1), (2, 3, 1)], ids=str)
def test_max_unpool_gradcheck_and_gradgradcheck(case, rank, fast_mode, rng):
    # Windows that do not overlap: overlapping ones can pick one input twice, and unpooling
    # duplicate indices keeps one value while the gradient reaches both (torch's too).
    k, s, p = case
    source = t(rng, (2, 2) + SIZES[rank], grad=False)
    pooled, indices = fct.functional._max_pool(rank, source, k, s, p, 1, False, True)
    x = t(rng, pooled.shape)
    size = source.shape[2:]
    check(fast_mode, lambda x: UNPOOL[rank](x, indices, k, s, p, size), x)


def test_pools_whose_dims_have_one_window(rng):
    """Dims with one window (3x3 / kernel 2; a huge stride) keep their shape on the recording
    path too, which rebuilds the geometry from the problem (a canonical stride of 1 there once
    gave 2x2: the kernels' canonical windows must stay internal)."""
    x = t(rng, (1, 2, 3, 3))
    for pool in (MAX[2], AVG[2]):
        y = pool(x, 2)
        assert y.shape == (1, 2, 1, 1)
        y.sum().backward()
    v = t(rng, (1, 1, 6))
    assert fct.max_pool1d(v, 5, 1000, ceil_mode=True).shape == (1, 1, 1)


def test_max_pool_windows_of_padding_only_through_autograd(rng):
    """A window of padding only: -inf, index -1, no gradient; max_unpool's backward, the max
    pool's double backward and the backward-from-indices' backward gather nothing there
    (torch.gather at -1 raised)."""
    x = t(rng, (1, 2, 1))
    y, idx = fct.functional._max_pool(1, x, 3, 3, 1, 2, True, True)
    assert torch.isneginf(y).all() and (idx == -1).all()
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    assert (g == 0).all()
    g.sum().backward()
    z = t(rng, y.shape)
    UNPOOL[1](z, idx, 3, 3, 1, (1,)).sum().backward()
    assert (z.grad == 0).all()
