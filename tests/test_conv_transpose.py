"""conv_transpose and its backward passes against the oracle; adjoint identities with conv."""

from __future__ import annotations

import itertools
import math
import random

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, assert_close, assert_result_type, rand

GEOMS = {1: ((7,), (3,)), 2: ((5, 4), (3, 2)), 3: ((3, 4, 3), (2, 2, 3))}
STRIDES = {1: [1, 2, 3], 2: [1, (2, 3)], 3: [1, (2, 1, 2)]}
DILATIONS = {1: [1, 2], 2: [1, (2, 1)], 3: [1, (1, 2, 1)]}
PADDINGS = {
    1: [0, 1, ((0, 2),), "valid"],
    2: [1, (0, 1), ((0, 2), (1, 0)), "valid"],
    3: [0, ((1, 0), (0, 1), (1, 1))],
}
GROUPINGS = [(5, 3, 1), (4, 6, 2), (4, 4, 4), (3, 6, 3)]  # (C_in, K_out, groups)
OUTPUT_PADDINGS = ["zero", "max"]  # 0, or the largest allowed: max(stride, dilation) - 1 per dim


def _cases():
    for rank in (1, 2, 3):
        for s, p, d, op in itertools.product(
            STRIDES[rank], PADDINGS[rank], DILATIONS[rank], OUTPUT_PADDINGS
        ):
            yield rank, s, p, d, op


CASES = list(_cases())
CASE_IDS = [f"r{r}-s{s}-p{p}-d{d}-op{o}".replace(" ", "") for r, s, p, d, o in CASES]


def make_problem(case, dtype, rng, n=None):
    rank, stride, padding, dilation, op_kind = CASES[case]
    pick = random.Random(case)
    cin, kout, groups = pick.choice(GROUPINGS)
    n = pick.choice([1, 2, 3]) if n is None else n
    in_sizes, k_sizes = GEOMS[rank]
    s, d = ref.per_dim(stride, rank), ref.per_dim(dilation, rank)
    op = tuple(max(a, b) - 1 for a, b in zip(s, d)) if op_kind == "max" else 0
    kw = dict(stride=stride, padding=padding, output_padding=op, dilation=dilation, groups=groups)
    x = rand(rng, (n, cin) + in_sizes, dtype)
    w = rand(rng, (cin, kout // groups) + k_sizes, dtype)
    b = rand(rng, (kout,), dtype) if pick.random() < 0.5 else None
    return x, w, b, kw


def _reduction(w):
    return w.shape[0] * math.prod(w.shape[2:])  # upper bound on terms per output


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", range(len(CASES)), ids=CASE_IDS)
def test_forward(case, dtype, rng):
    x, w, b, kw = make_problem(case, dtype, rng)
    want = ref.conv_transpose(x, w, b, **kw)
    y = fastconv.conv_transpose(x, w, b, **kw)
    assert_result_type(y, dtype)
    assert_close(y, want, reduction=_reduction(w))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", range(len(CASES)), ids=CASE_IDS)
def test_backward_data_and_weight(case, dtype, rng):
    x, w, _, kw = make_problem(case, dtype, rng)
    out_shape = ref.conv_transpose(x, w, None, **kw).shape
    gy = rand(rng, out_shape, dtype)
    gx = fastconv.conv_transpose_backward_data(gy, w, **kw)
    assert_result_type(gx, dtype)
    assert_close(gx, ref.conv_transpose_backward_data(gy, w, **kw), reduction=_reduction(w))
    gw = fastconv.conv_transpose_backward_weight(x, gy, w.shape, **kw)
    assert_result_type(gw, dtype)
    assert_close(
        gw,
        ref.conv_transpose_backward_weight(x, gy, w.shape, **kw),
        reduction=x.shape[0] * math.prod(x.shape[2:]),
    )


@pytest.mark.parametrize("case", range(len(CASES)), ids=CASE_IDS)
def test_adjoint_identities(case, rng):
    # <T(x), gy> == <x, T_backward_data(gy)> == <w, T_backward_weight(x, gy)> == <x, conv(gy)>
    x, w, _, kw = make_problem(case, np.float64, rng)
    y = fastconv.conv_transpose(x, w, **kw)
    gy = rand(rng, y.shape)
    lhs = np.vdot(y, gy)
    scale = np.vdot(ref.conv_transpose(np.abs(x), np.abs(w), **kw), np.abs(gy))
    gx = fastconv.conv_transpose_backward_data(gy, w, **kw)
    gw = fastconv.conv_transpose_backward_weight(x, gy, w.shape, **kw)
    assert abs(lhs - np.vdot(x, gx)) <= 1e-12 * scale
    assert abs(lhs - np.vdot(w, gw)) <= 1e-12 * scale
    conv_kw = {k: v for k, v in kw.items() if k != "output_padding"}
    yc = fastconv.conv(gy, w, **conv_kw)  # the conv whose adjoint T is (w read as a conv weight)
    in_sizes = x.shape[2:]
    assert all(a >= b for a, b in zip(yc.shape[2:], in_sizes))
    yc = yc[
        (Ellipsis,) + tuple(slice(0, n) for n in in_sizes)
    ]  # output_padding >= stride adds rows
    assert abs(lhs - np.vdot(x, yc)) <= 1e-12 * scale


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_transpose_is_conv_backward_data(rank, rng):
    # Design: transposed conv forward IS conv backward_data (output_padding < stride keeps shapes).
    in_sizes, k_sizes = GEOMS[rank]
    x, w = rand(rng, (2, 4) + in_sizes), rand(rng, (4, 3) + k_sizes)
    kw = dict(stride=2, padding=1, dilation=1, groups=1)
    y = fastconv.conv_transpose(x, w, output_padding=1, **kw)
    gx = fastconv.conv_backward_data(x, w, y.shape, **kw)
    assert_close(y, gx, reduction=_reduction(w))
    back = fastconv.conv_transpose_backward_data(y, w, output_padding=1, **kw)
    assert_close(back, fastconv.conv(y, w, **kw), reduction=3 * math.prod(k_sizes))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_empty_batch(rank, dtype, rng):
    in_sizes, k_sizes = GEOMS[rank]
    x, w = np.zeros((0, 4) + in_sizes, dtype), rand(rng, (4, 3) + k_sizes, dtype)
    y = fastconv.conv_transpose(x, w, rand(rng, (6,), dtype), stride=2, groups=2)
    assert_result_type(y, dtype)
    assert y.shape == (0, 6) + tuple((n - 1) * 2 + k for n, k in zip(in_sizes, k_sizes))
    gw = fastconv.conv_transpose_backward_weight(
        x, np.zeros(y.shape, dtype), w.shape, stride=2, groups=2
    )
    np.testing.assert_array_equal(gw, np.zeros(w.shape))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_upsampling_layer(dtype, rng):
    # a typical decoder layer: 2x upsampling, k = 4, stride 2, padding 1, 8 -> 5 channels
    x, w, b = rand(rng, (2, 8, 6, 7), dtype), rand(rng, (8, 5, 4, 4), dtype), rand(rng, (5,), dtype)
    y = fastconv.conv_transpose(x, w, b, stride=2, padding=1)
    assert y.shape == (2, 5, 12, 14)
    assert_close(y, ref.conv_transpose(x, w, b, 2, 1), reduction=8 * 16)


def test_inputs_are_not_modified(rng):
    x, w, b = rand(rng, (2, 4, 5, 6)), rand(rng, (4, 3, 3, 3)), rand(rng, (6,))
    xv = np.asfortranarray(x)
    copies = [a.copy() for a in (xv, w, b)]
    y = fastconv.conv_transpose(xv, w, b, stride=2, padding=1, output_padding=1, groups=2)
    fastconv.conv_transpose_backward_data(y, w, stride=2, padding=1, output_padding=1, groups=2)
    fastconv.conv_transpose_backward_weight(
        xv, y, w.shape, stride=2, padding=1, output_padding=1, groups=2
    )
    for before, after in zip(copies, (xv, w, b)):
        np.testing.assert_array_equal(before, after)
    assert_close(y, ref.conv_transpose(x, w, b, 2, 1, 1, 1, 2), reduction=27)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "xs, ws, stride, padding",
    [
        ((6, 96, 4, 4), (96, 64, 4, 4), 2, 1),  # dcgan-like: whole images, plane by plane
        ((5, 40, 5, 6), (40, 70, 3, 3), 2, 1),  # line by line, panels split unevenly
        ((3, 36, 3, 3), (36, 90, 3, 3), 1, 1),
    ],
)
@pytest.mark.parametrize("threads", [2, 3])
def test_column_tiles_share_packed_grad_y(xs, ws, stride, padding, threads, dtype, rng):
    # im2col's backward data (= this forward) with parallel tiles of one image block: grad_y is
    # packed once, a share of panels per thread, and every tile's GEMM reads it in place.
    x, w = rand(rng, xs, dtype), rand(rng, ws, dtype)
    kw = dict(stride=stride, padding=padding, algo="im2col")
    before = fastconv.get_num_threads()
    fastconv.set_num_threads(threads)
    try:
        note = fastconv.explain(x, w, op="conv_transpose", **kw).reason
        y = fastconv.conv_transpose(x, w, **kw)
    finally:
        fastconv.set_num_threads(before)
    assert "grad_y packed once for all tiles" in note
    assert_close(y, ref.conv_transpose(x, w, None, stride, padding), reduction=xs[1] * 9)
