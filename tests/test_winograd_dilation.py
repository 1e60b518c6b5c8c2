"""Winograd on dilated layers: with stride 1 and padding a multiple of the dilation, the input's
dilation phases stacked as images make a dense convolution with the same kernel
(csrc/algo/dilation_phases.h); every pass vs the float64 oracle, auto's rule for them."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import FastconvProcess, error_ratios, raises_naming, rand
from test_winograd_phases import check_passes

# (x_shape, w_shape, kwargs): DeepLab's 3x3 d4 (phases of equal size), extents that are not a
# multiple of the dilation (phases one shorter: their zero tails stand for the padding), unequal
# dilations with groups and true convolution, asymmetric padding, no padding (valid), dilation in
# one dim only, 1-D, 2- and 5-tap kernels, phases smaller than the kernel's reach, extents smaller
# than the dilation (whole phases empty), enough channels and tiles for the transform-domain
# weight gradient, batch 0.
# 32 channels and enough tiles: the weight gradient runs in the transform domain
TRANSFORM_DOMAIN = ((2, 32, 26, 24), (24, 32, 3, 3), dict(dilation=2, padding=2))
GEOMETRIES = [
    ((1, 8, 28, 28), (8, 8, 3, 3), dict(dilation=4, padding=4)),
    ((2, 5, 17, 15), (6, 5, 3, 3), dict(dilation=4, padding=4)),
    ((2, 6, 13, 11), (4, 3, 3, 3), dict(dilation=(2, 3), padding=(2, 3), groups=2, mode="conv")),
    ((1, 4, 9, 10), (4, 4, 3, 3), dict(dilation=2, padding=((2, 4), (0, 2)))),
    ((2, 4, 14, 13), (3, 4, 3, 3), dict(dilation=3, padding=0)),
    ((1, 4, 12, 12), (5, 4, 3, 3), dict(dilation=(1, 2), padding=(1, 2))),
    ((3, 5, 37), (7, 5, 3), dict(dilation=3, padding=3)),
    ((1, 8, 20, 20), (8, 8, 2, 2), dict(dilation=2, padding=((2, 0), (2, 0)))),
    ((1, 6, 30, 30), (5, 6, 5, 5), dict(dilation=2, padding=4)),
    ((1, 4, 5, 5), (4, 4, 3, 3), dict(dilation=4, padding=4)),
    ((1, 4, 3, 3), (4, 4, 3, 3), dict(dilation=4, padding=4)),  # phases with no position
    TRANSFORM_DOMAIN,
    ((0, 4, 12, 12), (4, 4, 3, 3), dict(dilation=2, padding=2)),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_dilated_passes(rng, x_shape, w_shape, kw, dtype):
    check_passes(fastconv, rng, x_shape, w_shape, kw, dtype)


def test_weight_gradient_runs_in_the_transform_domain():
    """The case above with 32 channels sums its weight gradient on the phases' transforms (not
    implicit_gemm's fallback), so the dilated weight gradient is really tested."""
    x_shape, w_shape, kw = TRANSFORM_DOMAIN
    e = fastconv.explain(x_shape, w_shape, algo="winograd", pass_="backward_weight", **kw)
    assert "implicit_gemm" not in e.reason and "4 dilation phases" in e.reason, e.reason
    assert e.workspace_bytes > 0


def test_every_isa_level_matches_the_oracle(isa):
    r = np.random.default_rng(5)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, kw in GEOMETRIES[1:3] + GEOMETRIES[6:7] + [TRANSFORM_DOMAIN]:
            for dtype in (np.float32, np.float64):
                check_passes(fc, r, x_shape, w_shape, kw, dtype)


def test_transposed_dilated(rng):
    """A dilated transposed convolution's forward is the conv's backward data: the same phases."""
    x, w = rand(rng, (2, 6, 11, 12), np.float32), rand(rng, (6, 5, 3, 3), np.float32)
    kw = dict(dilation=3, padding=3)
    want = ref.conv_transpose(x, w, **kw)
    got = fastconv.conv_transpose(x, w, algo="winograd", **kw)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def split_phases(a, d, size):
    """(N, C, H, W) -> (N * d * d, C, size, size): image n * d * d + r * d + s holds positions
    (d * i + r, d * j + s), zero past the array (space to batch)."""
    n, c, h, w = a.shape
    pad = np.zeros((n, c, d * size, d * size), a.dtype)
    pad[:, :, :h, :w] = a
    return (
        pad.reshape(n, c, size, d, size, d).transpose(0, 3, 5, 1, 2, 4).reshape(-1, c, size, size)
    )


def test_same_numbers_as_the_dense_convolution_of_the_phases(rng):
    """The dilated layer's three passes give exactly (bit for bit) the dense F(mxm,3x3)
    convolution's results on its phases split in NumPy: the moves add no error of their own."""
    d, kw, dense = 4, dict(dilation=4, padding=4), dict(padding=1)
    x, w = rand(rng, (2, 24, 28, 26), np.float32), rand(rng, (20, 24, 3, 3), np.float32)
    y = fastconv.conv(x, w, algo="winograd", **kw)
    gy = rand(rng, y.shape, np.float32)
    xs, gys = split_phases(x, d, 7), split_phases(gy, d, 7)
    ys = fastconv.conv(xs, w, algo="winograd", **dense)
    np.testing.assert_array_equal(split_phases(y, d, 7), ys * (split_phases(np.ones_like(y), d, 7)))
    gw = fastconv.conv_backward_weight(x, gy, w.shape, algo="winograd", **kw)
    np.testing.assert_array_equal(
        gw, fastconv.conv_backward_weight(xs, gys, w.shape, algo="winograd", **dense)
    )
    gx = fastconv.conv_backward_data(gy, w, x.shape, algo="winograd", **kw)
    gxs = fastconv.conv_backward_data(gys, w, xs.shape, algo="winograd", **dense)
    np.testing.assert_array_equal(
        split_phases(gx, d, 7), gxs * split_phases(np.ones_like(gx), d, 7)
    )


def test_float32_error_within_the_dense_budget():
    """F(4x4,3x3) over DeepLab's phases: within test_winograd's F(4x4) budget of implicit_gemm's
    error (40x forward and backward data, 10x the weight gradient; measured 5.8x, 5.2x, 4.6x)."""
    passes = ("forward", "backward_data", "backward_weight")
    ratios = error_ratios((1, 64, 28, 28), (64, 64, 3, 3), 11, passes, dilation=4, padding=4)
    budget = dict(forward=40.0, backward_data=40.0, backward_weight=10.0)
    for name, ratio in ratios.items():
        assert ratio <= budget[name], (name, ratio)


@pytest.mark.parametrize(
    "kw,why",
    [
        (dict(dilation=2, padding=1), "padding a multiple of the dilation"),
        (dict(dilation=2, padding=((2, 1), (2, 2))), "padding a multiple of the dilation"),
        (dict(dilation=2, padding=2, stride=2), "dilation"),
    ],
)
def test_refusals_name_the_reason(kw, why):
    x, w = np.ones((1, 4, 16, 16), np.float32), np.ones((4, 4, 3, 3), np.float32)
    with raises_naming(NotImplementedError, "winograd", why):
        fastconv.conv(x, w, algo="winograd", **kw)


def test_auto_runs_dilated_layers_on_phases():
    """auto's rule (_cpu_phases._dilation_phase_winograd): Winograd where F(4x4)'s tiles cover the
    phase planes well and the planes are 11+ per dim, at AVX-512 the weight gradient also on
    7x7 planes;
    the previous choices elsewhere, and the weight gradient of a large dilated image not on
    im2col (implicit_gemm skips the taps in the padding)."""

    def algo(x_shape, w_shape, pass_, **kw):
        return fastconv.explain(x_shape, w_shape, pass_=pass_, **kw).algo

    passes = ("forward", "backward_data", "backward_weight")
    deeplab = ((1, 256, 28, 28), (256, 256, 3, 3))
    dl = dict(dilation=4, padding=4)
    avx512 = fastconv.info()["isa_active"] == "avx512"
    weight = "winograd" if avx512 else "implicit_gemm"
    assert [algo(*deeplab, p, **dl) for p in passes] == ["direct", "direct", weight]
    for x_shape, kw in [
        ((1, 128, 64, 128), dict(dilation=2, padding=2)),
        ((1, 128, 64, 128), dict(dilation=4, padding=4)),
        ((1, 512, 65, 65), dict(dilation=4, padding=4)),
        ((1, 256, 65, 65), dict(dilation=6, padding=6)),
    ]:
        w_shape = (x_shape[1], x_shape[1], 3, 3)
        assert all(algo(x_shape, w_shape, p, **kw) == "winograd" for p in passes), x_shape
    tcn = ((8, 128, 1024), (128, 128, 3))
    assert algo(*tcn, "forward", dilation=4, padding=4) == "winograd"
    # Phases of 6x6 and 9x9 (F(4x4) tiles cover 0.47 of them); padding not a multiple; 2 taps.
    aspp = ((1, 512, 33, 33), (256, 512, 3, 3))
    for kw in (dict(dilation=6, padding=6), dict(dilation=4, padding=4)):
        assert all(algo(*aspp, p, **kw) != "winograd" for p in passes), kw
    assert algo(*aspp, "backward_weight", dilation=6, padding=6) == "implicit_gemm"
    big = ((1, 2048, 33, 33), (256, 2048, 3, 3))
    assert algo(*big, "backward_weight", dilation=12, padding=12) == "implicit_gemm"
    assert algo((1, 64, 64, 64), (64, 64, 3, 3), "forward", dilation=2, padding=1) != "winograd"
    wavenet = ((1, 64, 16000), (64, 64, 2))
    assert all(algo(*wavenet, p, dilation=8) != "winograd" for p in passes)
    e = fastconv.explain((1, 128, 64, 128), (128, 128, 3, 3), dilation=2, padding=2)
    assert "dilation phases" in e.reason
