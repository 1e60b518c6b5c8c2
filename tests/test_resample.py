"""Upsampling (nearest, linear / bilinear / trilinear) and pixel shuffle / unshuffle: NumPy
oracles written from the definitions, adjoint identities of every backward, the reference
kernels against the fast paths, parity with torch.nn.functional, errors."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
from conftest import DTYPES, assert_close, raises_naming, rand, requires_torch, torch
from fastconv import _C
from fastconv._resample import resample_problem

SHAPES = {1: (2, 3, 7), 2: (2, 3, 5, 4), 3: (1, 2, 3, 4, 5)}
SCALES = {1: [1, 2, 3], 2: [2, (2, 3), (1, 4)], 3: [2, (1, 2, 3)]}


# ---- oracles, from the definitions


def _per_dim(v, rank):
    return list(v) if isinstance(v, (tuple, list)) else [v] * rank


def _linear_matrix(n_in, s, align_corners):
    """(n_in * s, n_in) interpolation matrix along one dim: torch's source coordinate."""
    n_out = n_in * s
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        if align_corners:
            src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = max((o + 0.5) / s - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        m[o, i0] += 1 - lam
        m[o, i1] += lam
    return m


def oracle_linear(x, scale, align_corners):
    y = np.asarray(x, np.float64)
    rank = y.ndim - 2
    for d, s in enumerate(_per_dim(scale, rank)):
        m = _linear_matrix(y.shape[2 + d], s, align_corners)
        y = np.moveaxis(np.tensordot(y, m, axes=([2 + d], [1])), -1, 2 + d)
    return y


def oracle_nearest(x, scale):
    y = np.asarray(x, np.float64)
    for d, s in enumerate(_per_dim(scale, y.ndim - 2)):
        y = np.repeat(y, s, axis=2 + d)
    return y


def oracle_shuffle(x, r):
    n, c, *sp = x.shape
    d = len(sp)
    y = x.reshape(n, c // r**d, *([r] * d), *sp)
    order = [0, 1]
    for k in range(d):
        order += [2 + d + k, 2 + k]  # spatial k, then its sub-pixel offset
    y = y.transpose(order)
    return y.reshape(n, c // r**d, *[s * r for s in sp])


def oracle_unshuffle(x, r):
    n, c, *sp = x.shape
    d = len(sp)
    y = x.reshape(n, c, *[v for s in sp for v in (s // r, r)])
    order = [0, 1] + [3 + 2 * k for k in range(d)] + [2 + 2 * k for k in range(d)]
    return y.transpose(order).reshape(n, c * r**d, *[s // r for s in sp])


# ---- forward against the oracles


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_upsample_nearest(rng, rank, dtype):
    x = rand(rng, SHAPES[rank], dtype)
    before = x.copy()
    for scale in SCALES[rank]:
        y = fastconv.upsample_nearest(x, scale)
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, oracle_nearest(x, scale))
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_upsample_linear(rng, rank, align_corners, dtype):
    x = rand(rng, SHAPES[rank], dtype)
    for scale in SCALES[rank]:
        y = fastconv.upsample_linear(x, scale, align_corners=align_corners)
        assert y.dtype == dtype
        assert_close(y, oracle_linear(x, scale, align_corners), reduction=2**rank)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_size_one_and_empty(rng, rank):
    x = rand(rng, (1, 2) + (1,) * rank)
    for ac in (False, True):
        assert_close(fastconv.upsample_linear(x, 3, align_corners=ac), oracle_linear(x, 3, ac))
    empty = np.zeros((0, 2) + (3,) * rank)
    assert fastconv.upsample_linear(empty, 2).shape == (0, 2) + (6,) * rank
    assert fastconv.pixel_unshuffle(empty, 3).shape == (0, 2 * 3**rank) + (1,) * rank


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_pixel_shuffle(rng, rank, dtype):
    for r in (1, 2, 3):
        x = rand(rng, (2, 2 * r**rank) + (3, 2, 4)[:rank], dtype)
        y = fastconv.pixel_shuffle(x, r)
        np.testing.assert_array_equal(y, oracle_shuffle(x, r))
        np.testing.assert_array_equal(fastconv.pixel_unshuffle(y, r), x)
        np.testing.assert_array_equal(fastconv.pixel_unshuffle(y, r), oracle_unshuffle(y, r))


# ---- backward: adjoint identities <A x, g> == <x, A^T g>, and the reference kernels


def _inner(a, b):
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_upsample_adjoints(rng, rank):
    x = rand(rng, SHAPES[rank])
    for scale in SCALES[rank]:
        y = fastconv.upsample_nearest(x, scale)
        g = rand(rng, y.shape)
        gx = fastconv.upsample_nearest_backward(g, x.shape, scale)
        assert np.isclose(_inner(y, g), _inner(x, gx), rtol=1e-12)
        for ac in (False, True):
            y = fastconv.upsample_linear(x, scale, align_corners=ac)
            gx = fastconv.upsample_linear_backward(g, x.shape, scale, align_corners=ac)
            assert np.isclose(_inner(y, g), _inner(x, gx), rtol=1e-12)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_pixel_shuffle_adjoints(rng, rank):
    x = rand(rng, (2, 2 * 2**rank) + (3, 2, 4)[:rank])
    y = fastconv.pixel_shuffle(x, 2)
    g = rand(rng, y.shape)
    assert np.isclose(_inner(y, g), _inner(x, fastconv.pixel_unshuffle(g, 2)), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_reference_matches_fast(rng, rank, dtype):
    x = rand(rng, SHAPES[rank], dtype)
    cases = [
        ("upsample_nearest", (2, False)),
        ("upsample_linear", (2, False)),
        ("upsample_linear", (3, True)),
        ("pixel_unshuffle", (1,)),
    ]
    for kind, params in cases:
        for pass_ in ("forward", "backward"):
            p = resample_problem(kind, pass_, x.shape, np.dtype(dtype).name, params)
            a = x if pass_ == "forward" else rand(rng, p.y_shape, dtype)
            fast, slow = np.empty(p.result_shape, dtype), np.empty(p.result_shape, dtype)
            _C.resample(p, a, None, None, fast)
            _C.resample(p, a, None, None, slow, reference=True)
            assert_close(fast, slow, reduction=8)


# ---- PyTorch parity


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_torch_interpolate_parity(rng, rank, dtype):
    F = torch.nn.functional
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[rank]
    x = torch.from_numpy(rand(rng, SHAPES[rank], dtype))
    for scale in SCALES[rank]:
        sf = tuple(_per_dim(scale, rank))
        want = F.interpolate(x, scale_factor=sf, mode="nearest")
        assert torch.equal(fastconv.upsample_nearest(x, scale), want)
        for ac in (False, True):
            want = F.interpolate(x, scale_factor=sf, mode=mode, align_corners=ac)
            got = fastconv.upsample_linear(x, scale, align_corners=ac)
            assert isinstance(got, torch.Tensor)
            assert_close(got.numpy(), want.numpy(), reduction=8)
            # the gradient: torch's autograd through interpolate
            xr = x.clone().requires_grad_(True)
            g = torch.from_numpy(rand(rng, want.shape, dtype))
            F.interpolate(xr, scale_factor=sf, mode=mode, align_corners=ac).backward(g)
            gx = fastconv.upsample_linear_backward(g, tuple(x.shape), scale, align_corners=ac)
            assert_close(gx.numpy(), xr.grad.numpy(), reduction=64)


@requires_torch
@pytest.mark.parametrize("r", [1, 2, 3])
def test_torch_pixel_shuffle_parity(rng, r):
    F = torch.nn.functional
    x = torch.from_numpy(rand(rng, (2, 3 * r * r, 4, 5)))
    assert torch.equal(fastconv.pixel_shuffle(x, r), F.pixel_shuffle(x, r))
    y = torch.from_numpy(rand(rng, (2, 3, 4 * r, 5 * r)))
    assert torch.equal(fastconv.pixel_unshuffle(y, r), F.pixel_unshuffle(y, r))


# ---- errors


def test_errors(rng):
    x = rand(rng, (1, 4, 4, 4))
    before = x.copy()
    with raises_naming(ValueError, "scale"):
        fastconv.upsample_nearest(x, 0)
    with raises_naming(ValueError, "scale"):
        fastconv.upsample_linear(x, (2, 2, 2))
    with raises_naming(TypeError, "scale"):
        fastconv.upsample_linear(x, 1.5)
    with raises_naming(TypeError, "align_corners"):
        fastconv.upsample_linear(x, 2, align_corners="yes")
    with raises_naming(ValueError, "x"):
        fastconv.upsample_nearest(x[0, 0], 2)
    with raises_naming(ValueError, "grad_y"):
        fastconv.upsample_linear_backward(rand(rng, (1, 4, 7, 8)), x.shape, 2)
    with raises_naming(TypeError, "r"):
        fastconv.pixel_shuffle(x, 2.0)
    with raises_naming(TypeError, "r"):
        fastconv.pixel_shuffle(x, True)
    with raises_naming(ValueError, "r"):
        fastconv.pixel_shuffle(x, 0)
    with raises_naming(ValueError, "x", "r"):
        fastconv.pixel_shuffle(x, 3)
    with raises_naming(ValueError, "x", "r"):
        fastconv.pixel_unshuffle(x, 3)
    with raises_naming(TypeError, "x"):
        fastconv.upsample_nearest(x.astype(np.int32), 2)
    np.testing.assert_array_equal(x, before)


def test_other_backends_refuse():
    from fastconv.backends.base import Backend

    p = resample_problem("upsample_linear", "forward", (1, 1, 2), "float32", (2, False))
    with raises_naming(NotImplementedError, "upsample_linear"):
        Backend().run_resample(None, p, None, None, None, None, 0)


def test_resampling_has_no_gather_pass():
    # "gather" is a pooling pass (max pooling's second order); a resampling problem refuses it
    with pytest.raises(ValueError, match="pass_ must be 'forward' or 'backward' for resampling"):
        resample_problem("upsample_nearest", "gather", (1, 1, 2), "float32", (2, False))
