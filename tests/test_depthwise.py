"""The plane kernels behind `depthwise` and grouped `direct`, at every FASTCONV_ISA level (one
subprocess each), against the float64 oracle: padded, phase-split planes packed per row (stride
2 deinterleaved, other strides per phase), backward data as one stride-1 correlation per input
phase interleaved back, the 3x3 register-weight forward and weight-gradient bands with their
exact tail blocks."""

from __future__ import annotations

import math

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, assert_close, rand

PASSES = ("forward", "backward_data", "backward_weight")

# (x_shape, w_shape, kwargs) aimed at the paths above: stride-2 rows of odd and even widths
# (one vector, several, a partial last one), 14x14 planes (narrow rows, tail blocks of every
# height), stride 3, dilation sharing a factor with the stride (phases no tap reaches: zeros),
# kernels smaller than the stride, padding wider than the kernel, multipliers, true
# convolution, 1-D and 3-D.
CASES = [
    ((1, 3, 56, 56), (3, 1, 3, 3), dict(stride=2, padding=1, groups=3)),
    ((1, 2, 55, 37), (2, 1, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((2, 3, 14, 14), (3, 1, 3, 3), dict(padding=1, groups=3)),
    ((1, 2, 15, 13), (4, 1, 3, 3), dict(padding=1, groups=2)),
    ((1, 2, 23, 70), (2, 1, 3, 3), dict(padding=(1, 0), groups=2, mode="conv")),
    ((1, 2, 17, 19), (2, 1, 3, 3), dict(stride=3, padding=2, groups=2)),
    ((1, 2, 12, 21), (2, 1, 3, 3), dict(stride=2, dilation=2, padding=2, groups=2)),
    ((1, 3, 9, 11), (3, 1, 1, 1), dict(stride=2, groups=3)),
    ((1, 2, 30, 41), (4, 1, 2, 3), dict(stride=(7, 9), padding=1, groups=2)),
    ((1, 2, 10, 9), (6, 1, 2, 3), dict(stride=(3, 2), padding=(4, 3), groups=2)),
    ((2, 3, 33), (6, 1, 5), dict(stride=2, padding=((3, 1),), dilation=3, groups=3)),
    ((1, 2, 7, 9, 10), (2, 1, 3, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((1, 16, 13, 29), (16, 4, 3, 3), dict(stride=2, padding=1, groups=4)),
    ((1, 12, 9, 18), (24, 3, 3, 3), dict(stride=(2, 3), padding=1, dilation=(1, 2), groups=4)),
    ((2, 8, 6, 6), (40, 2, 3, 3), dict(padding=1, groups=4)),  # 10 outputs per group
    ((1, 36, 9, 17), (36, 18, 3, 3), dict(stride=2, padding=1, groups=2)),  # two stacks
]


def _random_cases(count, seed):
    """Random depthwise and grouped geometries: ranks 1-3, strides 1-3, dilation 1-2, padding,
    odd widths, multipliers and group widths, batch 1-2, both modes."""
    r = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        rank = int(r.choice([1, 2, 2, 2, 3]))
        groups = int(r.integers(1, 4))
        cg = 1 if r.random() < 0.6 else int(r.integers(2, 6))
        kg = int(r.integers(1, 4))
        kernel = [int(r.integers(1, 6)) if rank < 3 else int(r.integers(1, 4)) for _ in range(rank)]
        stride = [int(r.integers(1, 4)) for _ in range(rank)]
        dilation = [int(r.integers(1, 3)) for _ in range(rank)]
        pads = [(int(r.integers(0, k + 1)), int(r.integers(0, k + 1))) for k in kernel]
        extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
        top = 40 if rank == 1 else 24 if rank == 2 else 9
        size = [max(e - lo - hi, 1) + int(r.integers(0, top)) for e, (lo, hi) in zip(extent, pads)]
        kw = dict(stride=stride, padding=pads, dilation=dilation, groups=groups)
        if r.random() < 0.3:
            kw["mode"] = "conv"
        x_shape = (int(r.integers(1, 3)), groups * cg, *size)
        cases.append((x_shape, (groups * kg, cg, *kernel), kw))
    return cases


def _check_passes(fc, rng, x_shape, w_shape, kw, dtype):
    algo = "depthwise" if w_shape[1] == 1 else "direct"
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    want = ref.conv(x, w, b, **kw)
    label = f"{x_shape} {w_shape} {kw} {np.dtype(dtype).name}"
    assert_close(
        fc.conv(x, w, b, algo=algo, **kw), want, dtype, math.prod(w_shape[1:]), err_msg=label
    )
    gy = rand(rng, want.shape, dtype)
    assert_close(
        fc.conv_backward_data(gy, w, x_shape, algo=algo, **kw),
        ref.conv_backward_data(gy, w, x_shape, **kw),
        dtype,
        w_shape[0] * math.prod(w_shape[2:]),
        err_msg=label,
    )
    assert_close(
        fc.conv_backward_weight(x, gy, w_shape, algo=algo, **kw),
        ref.conv_backward_weight(x, gy, w_shape, **kw),
        dtype,
        x_shape[0] * math.prod(want.shape[2:]),
        err_msg=label,
    )


def test_plane_kernels_match_oracle_at_each_isa(fastconv_with_env, rng, isa):
    fc = fastconv_with_env(FASTCONV_ISA=isa)
    for x_shape, w_shape, kw in CASES:
        for dtype in DTYPES:
            _check_passes(fc, rng, x_shape, w_shape, kw, dtype)


def test_random_geometries_match_oracle_at_each_isa(fastconv_with_env, rng, isa):
    fc = fastconv_with_env(FASTCONV_ISA=isa)
    for i, (x_shape, w_shape, kw) in enumerate(_random_cases(40, seed=13)):
        _check_passes(fc, rng, x_shape, w_shape, kw, DTYPES[i % 2])


def test_inputs_unchanged(rng):
    import fastconv

    x, w = rand(rng, (1, 3, 12, 11), np.float32), rand(rng, (3, 1, 3, 3), np.float32)
    gy = rand(rng, (1, 3, 6, 6), np.float32)
    copies = [a.copy() for a in (x, w, gy)]
    kw = dict(stride=2, padding=1, groups=3, algo="depthwise")
    fastconv.conv(x, w, **kw)
    fastconv.conv_backward_data(gy, w, x.shape, **kw)
    fastconv.conv_backward_weight(x, gy, w.shape, **kw)
    for a, c in zip((x, w, gy), copies):
        np.testing.assert_array_equal(a, c)


# Small planes with 16+ channels run channels-last (csrc/algo/depthwise_channels_last.cc): the
# planes transposed to (positions, channels), vectors across channels, whole blocks of 4 vectors
# and a masked tail (67 channels), strides, dilation, padding (backward data only while it stays
# within the kernel's reach), true convolution, bias, two images, 1-D; planes of up to 64
# positions for kernels under 25 taps; for 25+ taps up to 100, 256 for the weight gradient, 400
# for backward data and for the forward of two or more images (19x19: odd rows and channels
# against the transposes' register tiles). At stride and dilation 1 along rows, kernels 3, 5
# and 7 wide run the row kernel that loads each input vector once per kernel row (runs of 8
# outputs and shorter last runs: 7x7, 10x10, 19x19).
CHANNELS_LAST = [
    ("7x7-5x5", (1, 67, 7, 7), (5, 5), dict(padding=2)),
    ("14x14-3x3-s2", (2, 32, 14, 14), (3, 3), dict(stride=2, padding=1)),
    ("12x12-5x5-weight", (1, 16, 12, 12), (5, 5), dict(padding=2)),
    ("8x8-dilated", (1, 16, 8, 8), (3, 3), dict(padding=(2, 1), dilation=(2, 1))),
    ("conv-mode", (2, 24, 6, 5), (3, 2), dict(padding=(1, 0), mode="conv")),
    ("1d", (1, 40, 30), (5,), dict(padding=2, stride=2)),
    ("pad-past-reach", (1, 16, 6, 6), (3, 3), dict(padding=3)),
    ("19x19-batch", (2, 20, 19, 19), (5, 5), dict(padding=2)),
    ("17x17-one-image", (1, 16, 17, 17), (5, 5), dict(padding=(2, 4), dilation=(1, 2))),
    ("10x10-7x7", (1, 40, 10, 10), (7, 7), dict(padding=3)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CHANNELS_LAST, ids=lambda c: c[0])
def test_channels_last_small_planes(case, dtype, rng, poisoned_outputs):
    _, x_shape, kernel, kw = case
    c = x_shape[1]
    x, w, b = rand(rng, x_shape, dtype), rand(rng, (c, 1, *kernel), dtype), rand(rng, (c,), dtype)
    conv_kw = dict(groups=c, **kw)
    if case[0] not in ("pad-past-reach", "12x12-5x5-weight", "17x17-one-image"):
        assert "channels-last" in fastconv.explain(x, w, **conv_kw).reason
    if case[0] in ("19x19-batch", "17x17-one-image"):  # 289+ positions: backward data
        assert "channels-last" in fastconv.explain(x, w, pass_="backward_data", **conv_kw).reason
        weight = fastconv.explain(x, w, pass_="backward_weight", **conv_kw).reason
        assert "channels-last" not in weight
    if case[0] == "17x17-one-image":  # one image: its forward stays on the plane kernels
        assert "channels-last" not in fastconv.explain(x, w, **conv_kw).reason
        # A 3x3 kernel there (under 25 taps): the plane kernels for every pass.
        w3 = rand(rng, (c, 1, 3, 3), dtype)
        for pass_ in ("forward", "backward_data", "backward_weight"):
            e = fastconv.explain(x, w3, pass_=pass_, groups=c, padding=1)
            assert "channels-last" not in e.reason, pass_
    if case[0] == "12x12-5x5-weight":  # 144 positions: only the 25-tap weight gradient
        e = fastconv.explain(x, w, pass_="backward_weight", **conv_kw)
        assert (
            "channels-last" in e.reason
            and "channels-last" not in fastconv.explain(x, w, **conv_kw).reason
        )
    y = fastconv.conv(x, w, b, algo="depthwise", **conv_kw)
    assert_close(y, ref.conv(x, w, b, **conv_kw), reduction=math.prod(kernel))
    gy = rand(rng, y.shape, dtype)
    gx = fastconv.conv_backward_data(gy, w, x.shape, algo="depthwise", **conv_kw)
    assert_close(gx, ref.conv_backward_data(gy, w, x.shape, **conv_kw), reduction=math.prod(kernel))
    gw = fastconv.conv_backward_weight(x, gy, w.shape, algo="depthwise", **conv_kw)
    want = ref.conv_backward_weight(x, gy, w.shape, **conv_kw)
    assert_close(gw, want, reduction=x_shape[0] * math.prod(y.shape[2:]))


def test_channels_last_leaves_depth_padded_3d_to_the_plane_kernels(rng, poisoned_outputs):
    """A 3-D depthwise conv with one input and one output slice can still pad along depth (its
    output then reads only padding): not a 2-D problem, so not channels-last."""
    x, w = rand(rng, (1, 16, 1, 7, 7), np.float32), rand(rng, (16, 1, 1, 3, 3), np.float32)
    b = rand(rng, (16,), np.float32)
    kw = dict(groups=16, stride=(3, 1, 1), padding=1)
    assert "channels-last" not in fastconv.explain(x, w, **kw).reason
    y = fastconv.conv(x, w, b, algo="depthwise", **kw)
    assert_close(y, ref.conv(x, w, b, **kw), reduction=9)
    gy = rand(rng, y.shape, np.float32)
    gx = fastconv.conv_backward_data(gy, w, x.shape, algo="depthwise", **kw)
    assert_close(gx, ref.conv_backward_data(gy, w, x.shape, **kw), reduction=9)
    gw = fastconv.conv_backward_weight(x, gy, w.shape, algo="depthwise", **kw)
    assert_close(gw, ref.conv_backward_weight(x, gy, w.shape, **kw), reduction=49)
