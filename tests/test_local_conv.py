"""tiled_conv and locally_connected: every pass against a NumPy loop oracle written from the
definition, the adjoint identities, the compiled reference loops, the special cases (one tile
== dense conv, tiles == output size == locally connected), bias forms and errors."""

from __future__ import annotations

import itertools

import fastconv
import numpy as np
import pytest
from conftest import DTYPES, assert_close, raises_naming, rand
from fastconv import _C
from fastconv._problem import tiled_conv_problem

# ---- the oracle: y[n, k, o] = sum_{c, t} w[k, o % tiles, c, t] * x_pad[n, c, o * s + t * d]


def _out_size(in_, k, s, lo, hi, d):
    return (in_ + lo + hi - d * (k - 1) - 1) // s + 1


def oracle_forward(x, w, bias, stride, pad, dilation):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    rank = x.ndim - 2
    tiles, kernel = w.shape[1 : 1 + rank], w.shape[2 + rank :]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(lo, hi) for lo, hi in pad])
    out = [
        _out_size(x.shape[2 + d], kernel[d], stride[d], *pad[d], dilation[d]) for d in range(rank)
    ]
    y = np.zeros((x.shape[0], w.shape[0], *out))
    for o in itertools.product(*(range(n) for n in out)):
        phase = tuple(o[d] % tiles[d] for d in range(rank))
        idx = tuple(
            slice(
                o[d] * stride[d], o[d] * stride[d] + dilation[d] * (kernel[d] - 1) + 1, dilation[d]
            )
            for d in range(rank)
        )
        patch = xp[(slice(None), slice(None), *idx)]  # (N, C, *kernel)
        kern = w[(slice(None), *phase)]  # (K, C, *kernel)
        y[(slice(None), slice(None), *o)] = np.tensordot(
            patch, kern, axes=(list(range(1, 2 + rank)), list(range(1, 2 + rank)))
        )
    if bias is not None:
        b = np.asarray(bias, np.float64)
        if b.ndim == 1:
            y += b.reshape(1, -1, *([1] * rank))
        else:  # (K, *tiles): tiled over the output
            reps = [-(-out[d] // tiles[d]) for d in range(rank)]
            full = np.tile(b, [1, *reps])[(slice(None), *(slice(0, n) for n in out))]
            y += full[None]
    return y


def _pad(padding, rank):
    if isinstance(padding, int):
        return [(padding, padding)] * rank
    return [p if isinstance(p, tuple) else (p, p) for p in padding]


# (x shape, tiles, kernel, stride, padding, dilation): ranks 1-3, tiles dividing the output or
# not, tiles larger than the output, stride > kernel, padding > kernel, dilation, batch > 1.
CASES = [
    ((2, 3, 11), (2,), (3,), (1,), 1, (1,)),
    ((1, 2, 9), (4,), (2,), (3,), 0, (2,)),
    ((2, 3, 7, 8), (2, 3), (3, 2), (2, 1), [(1, 0), 2], (1, 2)),
    ((3, 2, 6, 6), (2, 2), (3, 3), (1, 1), 1, (1, 1)),
    ((1, 1, 5, 4), (7, 1), (1, 1), (1, 1), 4, (1, 1)),
    ((2, 2, 5, 6, 4), (2, 1, 3), (2, 3, 1), (1, 2, 1), 1, (1, 1, 2)),
]


def _problem(pass_, x_shape, w_shape, dtype, stride, padding, dilation, op="tiled_conv"):
    return tiled_conv_problem(
        op,
        pass_,
        x_shape,
        w_shape,
        np.dtype(dtype).name,
        stride=stride,
        padding=padding,
        dilation=dilation,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_tiled_passes_match_oracle_and_adjoints(rng, dtype, case, poisoned_outputs):
    xs, tiles, kernel, stride, padding, dilation = case
    rank = len(xs) - 2
    k = 4
    x = rand(rng, xs, dtype)
    w = rand(rng, (k, *tiles, xs[1], *kernel), dtype)
    bias = rand(rng, (k, *tiles), dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    pad = _pad(padding, rank)
    y = fastconv.tiled_conv(x, w, bias, **kw)
    want = oracle_forward(x, w, bias, stride, pad, dilation)
    reduction = xs[1] * int(np.prod(kernel))
    assert y.dtype == dtype
    assert_close(y, want, reduction=reduction)
    b1 = np.ascontiguousarray(bias.reshape(k, -1)[:, 0])  # bias (K,)
    y1 = fastconv.tiled_conv(x, w, b1, **kw)
    assert_close(y1, oracle_forward(x, w, b1, stride, pad, dilation), reduction=reduction)

    g = rand(rng, y.shape, dtype)
    gx = fastconv.tiled_conv_backward_data(g, w, xs, **kw)
    gw = fastconv.tiled_conv_backward_weight(x, g, w.shape, **kw)
    assert gx.shape == xs and gw.shape == w.shape
    # <g, y(x, w)> == <gx, x> == <gw, w> (the forward without bias is bilinear)
    inner = float((g.astype(np.float64) * oracle_forward(x, w, None, stride, pad, dilation)).sum())
    scale = float(np.abs(g).sum() * np.abs(want).max()) + 1.0
    tol = 1e-4 if dtype == np.float32 else 1e-11
    assert abs(float((gx.astype(np.float64) * x).sum()) - inner) <= tol * scale
    assert abs(float((gw.astype(np.float64) * w).sum()) - inner) <= tol * scale

    # the compiled reference loops agree with the engine
    for pass_, a, b, got in (
        ("forward", x, w, y),
        ("backward_data", g, w, gx),
        ("backward_weight", x, g, gw),
    ):
        p = _problem(pass_, xs, w.shape, dtype, stride, padding, dilation)
        ref = np.empty(p.result_shape, dtype)
        _C.tiled_conv(p, a, b, bias if pass_ == "forward" else None, True, ref, True)
        assert_close(got, ref, reduction=reduction * 4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_tile_is_dense_conv(rng, dtype):
    x = rand(rng, (2, 3, 9, 7), dtype)
    w = rand(rng, (5, 1, 1, 3, 3, 2), dtype)
    b = rand(rng, (5,), dtype)
    kw = dict(stride=(2, 1), padding=1, dilation=(1, 2))
    dense = w.reshape(5, 3, 3, 2)
    assert_close(fastconv.tiled_conv(x, w, b, **kw), fastconv.conv(x, dense, b, **kw), reduction=18)
    g = rand(rng, fastconv.conv(x, dense, **kw).shape, dtype)
    assert_close(
        fastconv.tiled_conv_backward_data(g, w, x.shape, **kw),
        fastconv.conv_backward_data(g, dense, x.shape, **kw),
        reduction=50,
    )
    assert_close(
        fastconv.tiled_conv_backward_weight(x, g, w.shape, **kw).reshape(dense.shape),
        fastconv.conv_backward_weight(x, g, dense.shape, **kw),
        reduction=100,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_locally_connected_is_tiled_with_output_tiles(rng, dtype, rank, poisoned_outputs):
    xs = (2, 3, *[6, 5, 4][:rank])
    kernel = (3, 2, 2)[:rank]
    kw = dict(stride=1, padding=1, dilation=1)
    out = [_out_size(xs[2 + d], kernel[d], 1, 1, 1, 1) for d in range(rank)]
    w = rand(rng, (4, *out, 3, *kernel), dtype)
    b = rand(rng, (4, *out), dtype)
    x = rand(rng, xs, dtype)
    y = fastconv.locally_connected(x, w, b, **kw)
    assert_close(y, fastconv.tiled_conv(x, w, b, **kw), reduction=30)
    assert_close(y, oracle_forward(x, w, b, [1] * rank, [(1, 1)] * rank, [1] * rank), reduction=30)
    g = rand(rng, y.shape, dtype)
    gx = fastconv.locally_connected_backward_data(g, w, xs, **kw)
    gw = fastconv.locally_connected_backward_weight(x, g, w.shape, **kw)
    assert_close(gx, fastconv.tiled_conv_backward_data(g, w, xs, **kw), reduction=100)
    assert_close(gw, fastconv.tiled_conv_backward_weight(x, g, w.shape, **kw), reduction=100)
    # every position has its own kernel: the weight gradient of position o is g[:, :, o] x patch
    inner = float((g.astype(np.float64) * (y - b[None])).sum())
    tol = (1e-4 if dtype == np.float32 else 1e-11) * (float(np.abs(g).sum()) + 1.0) * 10
    assert abs(float((gw.astype(np.float64) * w).sum()) - inner) <= tol


def test_inputs_not_modified_and_torch_in_torch_out(rng):
    x = rand(rng, (1, 2, 5, 5), np.float32)
    w = rand(rng, (3, 2, 2, 2, 3, 3), np.float32)
    x0, w0 = x.copy(), w.copy()
    y = fastconv.tiled_conv(x, w, padding=1)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    torch = pytest.importorskip("torch")
    yt = fastconv.tiled_conv(torch.from_numpy(x), torch.from_numpy(w), padding=1)
    assert isinstance(yt, torch.Tensor)
    np.testing.assert_array_equal(yt.numpy(), y)
    # non-contiguous operands are copied, not misread
    xt = np.asfortranarray(x)
    np.testing.assert_array_equal(fastconv.tiled_conv(xt, w, padding=1), y)


def test_errors_name_the_argument(rng):
    x = rand(rng, (1, 2, 5, 5), np.float32)
    w = rand(rng, (3, 2, 2, 2, 3, 3), np.float32)
    with raises_naming(ValueError, "w"):
        fastconv.tiled_conv(x, w[:, :, :, :1])  # C mismatch
    with raises_naming(ValueError, "w"):
        fastconv.tiled_conv(x, w.reshape(3, 4, 2, 3, 3))  # wrong rank
    with raises_naming(ValueError, "w"):
        fastconv.locally_connected(x, w)  # tiles != output size (3, 3)
    with raises_naming(ValueError, "stride"):
        fastconv.tiled_conv(x, w, stride=0)
    with raises_naming(ValueError, "padding"):
        fastconv.tiled_conv(x, w, padding=-1)
    with raises_naming(ValueError, "padding"):
        fastconv.tiled_conv(x, w, padding="same")
    with raises_naming(ValueError, "bias"):
        fastconv.tiled_conv(x, w, np.zeros(4, np.float32))
    with raises_naming(TypeError, "w"):
        fastconv.tiled_conv(x, w.astype(np.float64))
    with raises_naming(TypeError, "x"):
        fastconv.tiled_conv(x.astype(np.int32), w)
    with raises_naming(ValueError, "grad_y"):
        fastconv.tiled_conv_backward_data(np.zeros((1, 3, 2, 2), np.float32), w, x.shape)
    with raises_naming(ValueError, "x_shape"):
        fastconv.tiled_conv_backward_data(np.zeros((1, 3, 3, 3), np.float32), w, (1, 2, 5))
    with raises_naming(ValueError, "x"):
        fastconv.tiled_conv(rand(rng, (1, 2, 2, 2), np.float32), w)  # kernel does not fit
    with raises_naming(ValueError, "w_shape"):
        fastconv.tiled_conv_backward_weight(x, np.zeros((1, 3, 3, 3), np.float32), (3, 2, 2))


def test_empty_batch_and_zero_channels(rng):
    w = rand(rng, (3, 2, 2, 2, 3, 3), np.float32)
    y = fastconv.tiled_conv(np.zeros((0, 2, 5, 5), np.float32), w, padding=1)
    assert y.shape == (0, 3, 5, 5)
    gw = fastconv.tiled_conv_backward_weight(
        np.zeros((0, 2, 5, 5), np.float32), np.zeros((0, 3, 5, 5), np.float32), w.shape, padding=1
    )
    np.testing.assert_array_equal(gw, 0)
