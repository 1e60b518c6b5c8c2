"""Checks the NumPy oracle itself against brute-force loops, SciPy and PyTorch (no fastconv)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import reference as ref
import scipy.signal
from conftest import requires_torch, torch

# ---- brute force straight from the definitions (scalar loops, tiny shapes only)


def brute_conv(x, w, bias, stride, pads, dilation, groups, mode):
    rank = w.ndim - 2
    N, C = x.shape[:2]
    K, Cg = w.shape[:2]
    Kg = K // groups
    ks, ins = w.shape[2:], x.shape[2:]
    outs = tuple(
        ref.conv_out_size(n, k, s, d, lo, hi)
        for n, k, s, d, (lo, hi) in zip(ins, ks, stride, dilation, pads)
    )
    y = np.zeros((N, K) + outs)
    for n, kk, *o in itertools.product(range(N), range(K), *(range(v) for v in outs)):
        g = kk // Kg
        acc = 0.0 if bias is None else bias[kk]
        for c in range(Cg):
            for j in itertools.product(*(range(v) for v in ks)):
                pos = [o[i] * stride[i] + j[i] * dilation[i] - pads[i][0] for i in range(rank)]
                if all(0 <= p < ins[i] for i, p in enumerate(pos)):
                    jj = tuple(ks[i] - 1 - j[i] for i in range(rank)) if mode == "conv" else j
                    acc += x[(n, g * Cg + c) + tuple(pos)] * w[(kk, c) + jj]
        y[(n, kk) + tuple(o)] = acc
    return y


def brute_conv_grads(x, w, gy, stride, pads, dilation, groups, mode):
    """d<conv(x, w), gy>/dx and /dw by accumulating every product's contribution."""
    rank = w.ndim - 2
    K, Cg = w.shape[:2]
    Kg = K // groups
    ks, ins = w.shape[2:], x.shape[2:]
    gx, gw = np.zeros(x.shape), np.zeros(w.shape)
    for n, kk, *o in itertools.product(*(range(v) for v in gy.shape)):
        g = kk // Kg
        for c in range(Cg):
            for j in itertools.product(*(range(v) for v in ks)):
                pos = [o[i] * stride[i] + j[i] * dilation[i] - pads[i][0] for i in range(rank)]
                if all(0 <= p < ins[i] for i, p in enumerate(pos)):
                    jj = tuple(ks[i] - 1 - j[i] for i in range(rank)) if mode == "conv" else j
                    xi = (n, g * Cg + c) + tuple(pos)
                    gx[xi] += gy[(n, kk) + tuple(o)] * w[(kk, c) + jj]
                    gw[(kk, c) + jj] += gy[(n, kk) + tuple(o)] * x[xi]
    return gx, gw


def brute_conv_transpose(x, w, stride, pads, output_padding, dilation, groups):
    rank = w.ndim - 2
    N, Cin = x.shape[:2]
    Kg = w.shape[1]
    Cg = Cin // groups
    ks, ins = w.shape[2:], x.shape[2:]
    outs = tuple(
        ref.transpose_out_size(n, k, s, d, lo, hi, op)
        for n, k, s, d, (lo, hi), op in zip(ins, ks, stride, dilation, pads, output_padding)
    )
    y = np.zeros((N, groups * Kg) + outs)
    for n, c, *i in itertools.product(range(N), range(Cin), *(range(v) for v in ins)):
        g = c // Cg
        for k in range(Kg):
            for j in itertools.product(*(range(v) for v in ks)):
                pos = [i[a] * stride[a] + j[a] * dilation[a] - pads[a][0] for a in range(rank)]
                if all(0 <= p < outs[a] for a, p in enumerate(pos)):
                    y[(n, g * Kg + k) + tuple(pos)] += x[(n, c) + tuple(i)] * w[(c, k) + j]
    return y


def brute_windows(in_sizes, k, s, d, pads, outs):
    """For each output position, the list of in-input flat offsets of its window (scan order)."""
    for o in itertools.product(*(range(v) for v in outs)):
        cells = []
        for j in itertools.product(*(range(v) for v in k)):
            pos = [o[a] * s[a] + j[a] * d[a] - pads[a][0] for a in range(len(k))]
            if all(0 <= p < in_sizes[a] for a, p in enumerate(pos)):
                cells.append(int(np.ravel_multi_index(pos, in_sizes)))
        yield o, cells


# ---- random geometries

CONV_CASES = [
    # (x_shape, w_shape, stride, padding, dilation, groups)
    ((2, 3, 7), (4, 3, 3), 1, 0, 1, 1),
    ((1, 4, 9), (6, 2, 2), 2, ((1, 2),), 2, 2),
    ((2, 3, 8), (3, 1, 4), 3, "same", 1, 3),
    ((1, 2, 5), (2, 2, 3), 1, "full", 2, 1),
    ((2, 2, 5, 6), (4, 1, 3, 2), (2, 1), ((0, 2), (1, 0)), (1, 2), 2),
    ((1, 3, 6, 5), (2, 3, 2, 3), 2, "same", 1, 1),
    ((1, 2, 4, 5, 3), (2, 2, 2, 3, 2), (1, 2, 1), (1, 0, 1), 1, 1),
]


@pytest.mark.parametrize("mode", ["cross", "conv"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: str(c[:2]))
def test_conv_matches_brute_force(case, mode, rng):
    xs, ws, stride, padding, dilation, groups = case
    rank = len(ws) - 2
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    s, d = ref.per_dim(stride, rank), ref.per_dim(dilation, rank)
    pads = ref.resolve_padding(padding, xs[2:], ws[2:], s, d)
    want = brute_conv(x, w, b, s, pads, d, groups, mode)
    got = ref.conv(x, w, b, stride, padding, dilation, groups, mode)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

    gy = rng.standard_normal(want.shape)
    gx_want, gw_want = brute_conv_grads(x, w, gy, s, pads, d, groups, mode)
    np.testing.assert_allclose(
        ref.conv_backward_data(gy, w, xs, stride, padding, dilation, groups, mode),
        gx_want,
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        ref.conv_backward_weight(x, gy, ws, stride, padding, dilation, groups, mode),
        gw_want,
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        ref.conv_backward_bias(gy), gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))
    )


TRANSPOSE_CASES = [
    # (x_shape, w_shape, stride, padding, output_padding, dilation, groups)
    ((2, 3, 5), (3, 2, 3), 2, 1, 1, 1, 1),
    ((1, 4, 4), (4, 1, 2), 3, ((0, 2),), 2, 2, 2),
    ((1, 2, 3), (2, 3, 3), 1, 0, 1, 2, 1),
    ((1, 2, 3, 4), (2, 2, 3, 2), (2, 1), ((1, 0), (0, 1)), (1, 0), 1, 2),
    ((1, 2, 2, 3, 2), (2, 1, 2, 2, 3), 2, 0, (1, 0, 1), 1, 1),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: str(c[:2]))
def test_conv_transpose_matches_brute_force(case, rng):
    xs, ws, stride, padding, op, dilation, groups = case
    rank = len(ws) - 2
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    s, d, o = ref.per_dim(stride, rank), ref.per_dim(dilation, rank), ref.per_dim(op, rank)
    pads = ref.explicit_pairs(padding, rank)
    want = brute_conv_transpose(x, w, s, pads, o, d, groups)
    got = ref.conv_transpose(x, w, None, stride, padding, op, dilation, groups)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # adjoint: <T(x), gy> == <x, T*(gy)> and the weight gradient via the same pairing
    gy = rng.standard_normal(want.shape)
    gx = ref.conv_transpose_backward_data(gy, w, stride, padding, op, dilation, groups)
    assert gx.shape == x.shape
    np.testing.assert_allclose(np.vdot(got, gy), np.vdot(x, gx), rtol=1e-11)
    gw = ref.conv_transpose_backward_weight(x, gy, ws, stride, padding, op, dilation, groups)
    np.testing.assert_allclose(np.vdot(got, gy), np.vdot(w, gw), rtol=1e-11)


POOL_CASES = [
    # (x_shape, kernel, stride, padding, dilation, ceil_mode)
    ((2, 3, 9), 3, 2, 1, 1, False),
    ((1, 2, 10), 4, 3, ((2, 1),), 1, True),
    ((1, 2, 11), 3, 2, 1, 2, True),
    ((2, 2, 7, 8), (3, 2), (2, 1), (1, 0), 1, True),
    ((1, 2, 6, 7), 3, 2, ((1, 0), (0, 1)), (2, 1), False),
    ((1, 1, 5, 4, 6), 2, 2, 1, 1, True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: str(c[0]))
def test_pools_match_brute_force(case, rng):
    xs, kernel, stride, padding, dilation, ceil_mode = case
    x = rng.standard_normal(xs)
    ins = xs[2:]
    k, s, d, pads, outs = ref.pool_geometry(ins, kernel, stride, padding, dilation, ceil_mode)
    y, idx = ref.max_pool(x, kernel, stride, padding, dilation, ceil_mode)
    assert y.shape == xs[:2] + outs
    for o, cells in brute_windows(ins, k, s, d, pads, outs):
        for n, c in np.ndindex(*xs[:2]):
            plane = x[n, c].ravel()
            best = max(cells, key=lambda i: (plane[i], -i))  # first index among ties
            assert idx[(n, c) + o] == best and y[(n, c) + o] == plane[best]
    if dilation == 1:
        for cip in (True, False):
            ya = ref.avg_pool(x, kernel, stride, padding, ceil_mode, cip)
            for o, cells in brute_windows(ins, k, s, d, pads, outs):
                lo_hi = [
                    (
                        o[a] * s[a] - pads[a][0],
                        min(o[a] * s[a] - pads[a][0] + k[a], ins[a] + pads[a][1]),
                    )
                    for a in range(len(k))
                ]
                div = int(np.prod([e - b for b, e in lo_hi])) if cip else len(cells)
                for n, c in np.ndindex(*xs[:2]):
                    np.testing.assert_allclose(ya[(n, c) + o], x[n, c].ravel()[cells].sum() / div)


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("p", [1, 2, 3.5])
def test_lp_pool_matches_brute_force(p, ceil_mode, rng):
    x = rng.uniform(0.1, 2.0, (2, 2, 7, 6))
    y = ref.lp_pool(x, p, (3, 2), (2, 2), ceil_mode)
    k, s, d, pads, outs = ref.pool_geometry(x.shape[2:], (3, 2), (2, 2), 0, 1, ceil_mode)
    for o, cells in brute_windows(x.shape[2:], k, s, d, pads, outs):
        for n, c in np.ndindex(2, 2):
            np.testing.assert_allclose(
                y[(n, c) + o], (x[n, c].ravel()[cells] ** p).sum() ** (1 / p)
            )
    # backward by central differences
    gy = rng.standard_normal(y.shape)
    gx = ref.lp_pool_backward(gy, x, p, (3, 2), (2, 2), ceil_mode)
    h = 1e-6
    for flat in rng.choice(x.size, 8, replace=False):
        e = np.zeros(x.size)
        e[flat] = h
        e = e.reshape(x.shape)
        num = (
            np.vdot(ref.lp_pool(x + e, p, (3, 2), (2, 2), ceil_mode), gy)
            - np.vdot(ref.lp_pool(x - e, p, (3, 2), (2, 2), ceil_mode), gy)
        ) / (2 * h)
        np.testing.assert_allclose(gx.ravel()[flat], num, rtol=1e-5, atol=1e-7)


def test_pool_backward_adjoints(rng):
    x = rng.standard_normal((2, 3, 9, 7))
    gy_shape = ref.avg_pool(x, 3, 2, 1, True, False).shape
    gy = rng.standard_normal(gy_shape)
    for cip in (True, False):
        y = ref.avg_pool(x, 3, 2, 1, True, cip)
        gx = ref.avg_pool_backward(gy, x.shape, 3, 2, 1, True, cip)
        np.testing.assert_allclose(np.vdot(y, gy), np.vdot(x, gx), rtol=1e-12)
    y, idx = ref.max_pool(x, 3, 2, 1, 1, True)
    gx = ref.max_pool_backward(gy, x, 3, 2, 1, 1, True)
    np.testing.assert_allclose(np.vdot(y, gy), np.vdot(x, gx), rtol=1e-12)


def test_padding_resolution_rules():
    # "same": out = ceil(in / s), extra padding at the high end
    assert ref.resolve_padding("same", (10,), (4,), 1, 1) == ((1, 2),)
    assert ref.resolve_padding("same", (10,), (3,), 2, 1) == ((0, 1),)
    assert ref.resolve_padding("same", (7,), (3,), 3, 2) == ((2, 2),)
    assert ref.resolve_padding("same", (9,), (1,), 3, 1) == ((0, 0),)
    assert ref.resolve_padding("full", (5, 6), (3, 2), 1, (2, 3)) == ((4, 4), (3, 3))
    assert ref.resolve_padding("valid", (5, 6), (3, 2)) == ((0, 0), (0, 0))
    assert ref.resolve_padding((1, (2, 0)), (5, 6), (3, 2)) == ((1, 1), (2, 0))
    for n, k, s, d in itertools.product(range(1, 12), range(1, 5), range(1, 4), range(1, 3)):
        pads = ref.resolve_padding("same", (n,), (k,), s, d)
        assert ref.conv_out_shape((1, 1, n), (1, 1, k), s, pads, d) == (-(-n // s),)


def test_scipy_agrees_on_true_convolution(rng):
    x, w = rng.standard_normal((6, 9)), rng.standard_normal((3, 4))
    for pad in ("valid", "full"):
        want = scipy.signal.convolve(x, w, mode=pad, method="direct")
        got = ref.conv(x[None, None], w[None, None], padding=pad, mode="conv")[0, 0]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        want = scipy.signal.correlate(x, w, mode=pad, method="direct")
        got = ref.conv(x[None, None], w[None, None], padding=pad)[0, 0]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ---- against PyTorch (validates the oracle where torch defines the same thing)


@requires_torch
@pytest.mark.parametrize(
    "case",
    [
        c
        for c in CONV_CASES
        if isinstance(c[3], int)
        or (isinstance(c[3], tuple) and all(isinstance(p, int) for p in c[3]))
    ],
    ids=lambda c: str(c[:2]),
)
def test_torch_agrees_on_conv(case, rng):
    xs, ws, stride, padding, dilation, groups = case
    F = torch.nn.functional
    fn = (F.conv1d, F.conv2d, F.conv3d)[len(ws) - 3]
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    want = fn(
        torch.from_numpy(x),
        torch.from_numpy(w),
        torch.from_numpy(b),
        stride,
        padding,
        dilation,
        groups,
    )
    np.testing.assert_allclose(
        ref.conv(x, w, b, stride, padding, dilation, groups), want.numpy(), rtol=1e-12, atol=1e-12
    )


@requires_torch
def test_torch_agrees_on_transpose_and_pools(rng):
    F = torch.nn.functional
    x, w = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 3, 3, 2))
    want = F.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w), None, (2, 3), (1, 0), (1, 2), 2, (1, 2)
    )
    got = ref.conv_transpose(x, w, None, (2, 3), (1, 0), (1, 2), (1, 2), 2)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)

    x = rng.standard_normal((2, 3, 9, 10))
    t = torch.from_numpy(x)
    for ceil in (False, True):
        y, idx = ref.max_pool(x, (3, 2), (2, 2), 1, (1, 2), ceil)
        ty, tidx = F.max_pool2d(t, (3, 2), (2, 2), 1, (1, 2), ceil, return_indices=True)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
        y, idx = ref.max_pool(x, (3, 2), (2, 2), 1, 1, ceil)
        ty, tidx = F.max_pool2d(t, (3, 2), (2, 2), 1, 1, ceil, return_indices=True)
        np.testing.assert_array_equal(idx, tidx.numpy())
        un = ref.max_unpool(y, idx, (3, 2), (2, 2), 1, x.shape[2:])
        np.testing.assert_array_equal(
            un, F.max_unpool2d(ty, tidx, (3, 2), (2, 2), 1, x.shape[2:]).numpy()
        )
        for cip in (False, True):
            np.testing.assert_allclose(
                ref.avg_pool(x, 3, 2, 1, ceil, cip),
                F.avg_pool2d(t, 3, 2, 1, ceil, cip).numpy(),
                rtol=1e-12,
            )
    xp = np.abs(x) + 0.1
    np.testing.assert_allclose(
        ref.lp_pool(xp, 1.5, 3, 2), F.lp_pool2d(torch.from_numpy(xp), 1.5, 3, 2).numpy(), rtol=1e-10
    )
