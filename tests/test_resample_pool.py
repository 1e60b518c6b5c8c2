"""Stochastic, blur and weighted average pooling: NumPy oracles from the definitions (with an
independent Philox-4x32-10 for the training draws), sampling frequencies, thread independence,
adjoint identities and finite differences of every backward, errors."""

from __future__ import annotations

import itertools
import math

import fastconv
import numpy as np
import pytest
from conftest import DTYPES, assert_close, raises_naming, rand, requires_torch, torch
from fastconv import _C
from fastconv._resample import resample_problem

M32 = 0xFFFFFFFF


def philox_uniform(seed, idx):
    """Philox-4x32-10 (Salmon et al. 2011) of counter (idx, 0) under key seed -> [0, 1)."""
    c = [idx & M32, idx >> 32, 0, 0]
    k = [seed & M32, seed >> 32]
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & M32, (p0 >> 32) ^ c[3] ^ k[1], p0 & M32]
        k = [(k[0] + 0x9E3779B9) & M32, (k[1] + 0xBB67AE85) & M32]
    return (((c[0] << 32) | c[1]) >> 11) / 2.0**53


def _windows(spatial, kernel, stride, pad):
    """Every output position's window, as lists of in-range flat offsets (row-major)."""
    rank = len(spatial)
    out = [(spatial[d] + 2 * pad[d] - kernel[d]) // stride[d] + 1 for d in range(rank)]
    for o in itertools.product(*[range(n) for n in out]):
        ranges = []
        for d in range(rank):
            start = o[d] * stride[d] - pad[d]
            ranges.append(range(max(start, 0), min(start + kernel[d], spatial[d])))
        yield o, [int(np.ravel_multi_index(i, spatial)) for i in itertools.product(*ranges)], out


def oracle_stochastic(x, kernel, stride, pad, training, seed=0):
    n, c, *spatial = x.shape
    rank = len(spatial)
    kernel, stride, pad = (
        [v] * rank if isinstance(v, int) else list(v) for v in (kernel, stride, pad)
    )
    wins = list(_windows(spatial, kernel, stride, pad))
    out = wins[0][2]
    y = np.zeros((n, c, *out))
    idx = np.zeros((n, c, *out), np.int64)
    for plane in range(n * c):
        xp = np.asarray(x, np.float64).reshape(n * c, -1)[plane]
        for j, (o, win, _) in enumerate(wins):
            vals = xp[win]
            s = vals.sum()
            at = (plane // c, plane % c, *o)
            if not training:
                y[at] = (vals**2).sum() / s if s > 0 else 0.0
                continue
            pick = win[0]
            if s > 0:
                target = philox_uniform(seed, plane * len(wins) + j) * s
                cum = 0.0
                for i, v in zip(win, vals):
                    if v > 0:
                        cum += v
                        pick = i
                        if target < cum:
                            break
            y[at], idx[at] = xp[pick], pick
    return y, idx


CASES = {  # (x spatial, kernel, stride, padding)
    1: [((9,), 3, 2, 1), ((7,), 2, None, 0)],
    2: [((7, 6), 3, 2, 1), ((6, 5), (2, 3), (1, 2), (1, 0)), ((5, 5), 2, 3, 0)],
    3: [((4, 5, 3), 2, 1, 1), ((4, 4, 4), 3, 2, 0)],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_stochastic_pool_oracle(rng, rank, dtype):
    for spatial, k, s, p in CASES[rank]:
        x = rand(rng, (2, 3, *spatial), dtype, 0.0, 1.0)
        x[0, 0] = 0  # all-zero windows
        x[1, 1].flat[::2] = 0
        before = x.copy()
        stride = k if s is None else s
        for training in (True, False):
            want, want_idx = oracle_stochastic(x, k, stride, p, training, seed=1234)
            if training:
                y, idx = fastconv.stochastic_pool(
                    x, k, stride=s, padding=p, seed=1234, return_indices=True
                )
                np.testing.assert_array_equal(idx, want_idx)
                np.testing.assert_array_equal(y, want)
            else:
                y = fastconv.stochastic_pool(x, k, stride=s, padding=p, training=False)
                assert_close(y, want, reduction=27)
        np.testing.assert_array_equal(x, before)


def test_stochastic_pool_frequencies():
    """Each element of a window is drawn with probability x_i / sum: a chi-square test over
    20000 windows (fixed seed, so deterministic)."""
    values = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 6.0])
    x = np.tile(values.reshape(1, 1, 6), (20000, 1, 1))
    _, idx = fastconv.stochastic_pool(x, 6, seed=7, return_indices=True)
    counts = np.bincount(idx.ravel(), minlength=6)
    expected = values / values.sum() * idx.size
    assert counts[4] == 0  # probability 0 is never drawn
    nz = expected > 0
    chi2 = float(np.sum((counts[nz] - expected[nz]) ** 2 / expected[nz]))
    assert chi2 < 25.0, (counts, expected, chi2)  # 4 dof: p < 1e-4 for a fair sampler
    # different seeds differ; the same seed repeats
    _, again = fastconv.stochastic_pool(x, 6, seed=7, return_indices=True)
    _, other = fastconv.stochastic_pool(x, 6, seed=8, return_indices=True)
    np.testing.assert_array_equal(idx, again)
    assert np.any(idx != other)
    _, fresh1 = fastconv.stochastic_pool(x, 6, return_indices=True)
    _, fresh2 = fastconv.stochastic_pool(x, 6, return_indices=True)
    assert np.any(fresh1 != fresh2)  # seed=None draws a fresh seed


def test_stochastic_pool_threads(rng, restore_threads):
    x = rand(rng, (2, 4, 96, 96), np.float32, 0.0, 1.0)  # planes big enough to run in parallel
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(
            fastconv.stochastic_pool(x, 3, stride=2, padding=1, seed=99, return_indices=True)
        )
    for y, idx in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(idx, results[0][1])
    p = resample_problem("stochastic_pool", "forward", x.shape, "float32", (3, 2, 1, True))
    y, idx = np.empty(p.y_shape, np.float32), np.empty(p.y_shape, np.int64)
    _C.resample(p, x, None, idx, y, 99, reference=True)
    np.testing.assert_array_equal(y, results[0][0])
    np.testing.assert_array_equal(idx, results[0][1])


def _inner(a, b):
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_stochastic_pool_backward(rng, rank):
    spatial, k, s, p = CASES[rank][0]
    x = rand(rng, (2, 2, *spatial), np.float64, 0.1, 1.0)
    x[0, 1] = 0
    y, idx = fastconv.stochastic_pool(x, k, stride=s, padding=p, seed=5, return_indices=True)
    g = rand(rng, y.shape)
    gx = fastconv.stochastic_pool_backward(g, x, k, stride=s, padding=p, indices=idx)
    # training: y = gather(x, idx) is linear in x; its adjoint scatters
    assert np.isclose(_inner(y, g), _inner(x, gx), rtol=1e-12)
    # eval: the exact derivative of sum(x^2)/sum(x), against central differences
    gx = fastconv.stochastic_pool_backward(g, x, k, stride=s, padding=p, training=False)
    eps = 1e-6
    for flat in rng.choice(x[1].size, 6, replace=False):
        at = np.unravel_index(flat, x[1].shape)
        hi, lo = x.copy(), x.copy()
        hi[(1, *at)] += eps
        lo[(1, *at)] -= eps
        f = [
            _inner(fastconv.stochastic_pool(v, k, stride=s, padding=p, training=False), g)
            for v in (hi, lo)
        ]
        assert math.isclose((f[0] - f[1]) / (2 * eps), gx[(1, *at)], rel_tol=1e-5, abs_tol=1e-8)
    assert np.all(gx[0, 1] == 0)  # all-zero windows: 0
    ref_p = resample_problem("stochastic_pool", "backward", x.shape, "float64", (k, s, p, False))
    slow = np.empty(x.shape)
    _C.resample(ref_p, g, x, None, slow, reference=True)
    assert_close(gx, slow)


# ---- blur pooling and weighted average pooling


def _depthwise_oracle(x, kernel, stride, pads):
    """y[n, c, o] = sum_k kernel[k] * xpad[n, c, o * stride + k] (zero padding)."""
    rank = kernel.ndim
    xp = np.pad(np.asarray(x, np.float64), [(0, 0), (0, 0)] + list(pads))
    out = [(xp.shape[2 + d] - kernel.shape[d]) // stride[d] + 1 for d in range(rank)]
    y = np.zeros(x.shape[:2] + tuple(out))
    for o in itertools.product(*[range(n) for n in out]):
        sl = tuple(slice(o[d] * stride[d], o[d] * stride[d] + kernel.shape[d]) for d in range(rank))
        y[(..., *o)] = np.sum(xp[(..., *sl)] * kernel, axis=tuple(range(2, 2 + rank)))
    return y


BINOMIAL = {2: [1, 1], 3: [1, 2, 1], 4: [1, 3, 3, 1], 5: [1, 4, 6, 4, 1]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_blur_pool(rng, rank, dtype):
    x = rand(rng, (2, 3) + (7, 6, 5)[:rank], dtype)
    for k in (3, 4, 5):
        row = np.array(BINOMIAL[k], np.float64) / sum(BINOMIAL[k])
        kernel = row
        for _ in range(rank - 1):
            kernel = np.multiply.outer(kernel, row)
        for stride in (1, 2):
            pads = []
            for n in x.shape[2:]:  # TF "same": output ceil(n / stride), odd unit at the end
                total = max((math.ceil(n / stride) - 1) * stride + k - n, 0)
                pads.append((total // 2, total - total // 2))
            want = _depthwise_oracle(x, kernel, [stride] * rank, pads)
            y = fastconv.blur_pool(x, kernel_size=k, stride=stride)
            assert y.dtype == dtype
            assert_close(y, want, reduction=k**rank)
            g = rand(rng, y.shape, dtype)
            gx = fastconv.blur_pool_backward(g, x.shape, kernel_size=k, stride=stride)
            assert math.isclose(
                _inner(y, g), _inner(x, gx), rel_tol=1e-4 if dtype == np.float32 else 1e-10
            )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_weighted_avg_pool(rng, rank, dtype):
    x = rand(rng, (2, 3) + (7, 6, 5)[:rank], dtype)
    weights = rng.uniform(0, 1, (3, 2, 2)[:rank])
    weights.flat[0] = 0
    for stride, padding in ((None, 0), (1, 1), (2, ((1, 0),) * rank)):
        st = list(weights.shape) if stride is None else [stride] * rank
        pads = [(padding, padding)] * rank if isinstance(padding, int) else list(padding)
        want = _depthwise_oracle(x, weights / weights.sum(), st, pads)
        y = fastconv.weighted_avg_pool(x, weights, stride=stride, padding=padding)
        assert_close(y, want, reduction=12)
        g = rand(rng, y.shape, dtype)
        gx = fastconv.weighted_avg_pool_backward(
            g, x.shape, weights, stride=stride, padding=padding
        )
        assert math.isclose(
            _inner(y, g), _inner(x, gx), rel_tol=1e-4 if dtype == np.float32 else 1e-10
        )


@requires_torch
def test_torch_in_torch_out(rng):
    x = torch.from_numpy(rand(rng, (1, 2, 6, 6), np.float32, 0.0, 1.0))
    for y in (
        fastconv.blur_pool(x),
        fastconv.weighted_avg_pool(x, torch.ones(2, 2)),
        fastconv.stochastic_pool(x, 2, seed=1),
        fastconv.stochastic_pool(x, 2, training=False),
    ):
        assert isinstance(y, torch.Tensor) and y.dtype == torch.float32


# ---- errors


def test_errors(rng):
    x = rand(rng, (1, 2, 6, 6), np.float64, 0.0, 1.0)
    before = x.copy()
    neg = x.copy()
    neg[0, 1, 3, 3] = -1
    with raises_naming(ValueError, "x"):
        fastconv.stochastic_pool(neg, 2, seed=0)
    with raises_naming(ValueError, "x"):
        fastconv.stochastic_pool(neg, 2, training=False)
    with raises_naming(ValueError, "x"):
        fastconv.stochastic_pool_backward(np.ones((1, 2, 3, 3)), neg, 2, training=False)
    with raises_naming(ValueError, "indices"):
        fastconv.stochastic_pool_backward(np.ones((1, 2, 3, 3)), x, 2)
    with raises_naming(ValueError, "indices"):
        fastconv.stochastic_pool_backward(
            np.ones((1, 2, 3, 3)), x, 2, indices=np.zeros((1, 2, 2, 2), np.int64)
        )
    with raises_naming(ValueError, "indices"):
        fastconv.stochastic_pool_backward(
            np.ones((1, 2, 3, 3)), x, 2, indices=np.full((1, 2, 3, 3), 99)
        )
    with raises_naming(ValueError, "seed"):
        fastconv.stochastic_pool(x, 2, seed=-1)
    with raises_naming(TypeError, "seed"):
        fastconv.stochastic_pool(x, 2, seed=1.5)
    for bad, exc in (("1", TypeError), (-1, ValueError)):  # eval uses no seed, but checks it
        with raises_naming(exc, "seed"):
            fastconv.stochastic_pool(x, 2, training=False, seed=bad)
    with raises_naming(ValueError, "return_indices"):
        fastconv.stochastic_pool(x, 2, training=False, return_indices=True)
    with raises_naming(ValueError, "padding"):
        fastconv.stochastic_pool(x, 2, padding=2)
    with raises_naming(ValueError, "kernel_size"):
        fastconv.stochastic_pool(x, 0)
    for bad in (np.ones((2, 2, 2)), -np.ones((2, 2)), np.zeros((2, 2)), np.full((2, 2), np.nan)):
        with raises_naming(ValueError, "weights"):
            fastconv.weighted_avg_pool(x, bad)
    with raises_naming(TypeError, "weights"):
        fastconv.weighted_avg_pool(x, np.array([["a", "b"]]))
    with raises_naming(ValueError, "kernel_size"):
        fastconv.blur_pool(x, kernel_size=0)
    with raises_naming(ValueError, "x_shape"):
        fastconv.blur_pool_backward(np.ones((1, 2, 3, 3)), (1, 2, 6), kernel_size=3)
    np.testing.assert_array_equal(x, before)
