"""Winograd along the rows (csrc/algo/winograd_rows.h): the forward of layers the 2-D transforms
do not take, F(m, r) along W over its stride phases (r = ceil(kw / sw) = 2..5 taps per phase:
F(4,2), F(4,3), F(3,4), F(2,5)), the kernel rows summed directly by the row kernels; vs the
float64 oracle at every ISA level, plus auto's rule for first layers (6x6 / 2 to 8x8 / 2 over
1-4 channels)."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import (
    FastconvProcess,
    assert_close,
    error_ratios,
    raises_naming,
    rand,
    same_at_thread_counts,
    skip_unless_isa_runs,
)

# (x_shape, w_shape, kwargs): ResNet's 7x7 / 2 (one image and a batch, rows that end inside a
# tile), 4 taps per phase along W under other kernel heights and H strides, 3 and 2 taps per
# phase (7 / 3, 3 / 2), 3x5 at stride 1 (F(2,5)), 8 taps / 2 with unequal strides, dilation
# along H, asymmetric padding, true convolution, padding past the kernel (outputs of padding
# only), 1-D (9 / 2: F(2,5)), 3-D with a kernel depth of 1 (depth stride and padding: slices of
# padding), 6 -> 1 channels, 5x3 at stride 1, rows wide enough for
# whole vectors of the output interleave at AVX-512 (F(4,2), F(4,3)), batch 0.
GEOMETRIES = [
    ((1, 3, 64, 64), (16, 3, 7, 7), dict(stride=2, padding=3)),
    ((3, 3, 31, 29), (8, 3, 7, 7), dict(stride=2, padding=3)),
    ((2, 2, 20, 33), (5, 2, 3, 7), dict(stride=(1, 2), padding=(1, 2))),
    ((1, 3, 30, 30), (4, 3, 5, 7), dict(stride=(1, 3), padding=2)),  # F(4,3)
    ((2, 2, 19, 45), (5, 2, 5, 3), dict(stride=(1, 2), padding=(2, 1))),  # F(4,2)
    ((1, 3, 40, 41), (6, 3, 3, 5), dict(stride=1, padding=(1, 2))),  # F(2,5)
    ((2, 1, 25, 27), (6, 1, 7, 8), dict(stride=(3, 2), padding=((2, 0), (3, 1)))),
    ((1, 3, 25, 40), (6, 3, 7, 7), dict(stride=2, padding=(4, 3), dilation=(2, 1))),
    ((1, 3, 18, 22), (7, 3, 7, 7), dict(stride=2, padding=((0, 0), (0, 5)), mode="conv")),
    ((1, 3, 12, 12), (4, 3, 7, 7), dict(stride=2, padding=8)),  # outputs of padding only
    ((2, 3, 50), (7, 3, 9), dict(stride=2, padding=4)),
    ((1, 3, 4, 20, 22), (6, 3, 1, 7, 7), dict(stride=(2, 2, 2), padding=(1, 3, 3))),
    ((1, 6, 15, 47), (1, 6, 2, 7), dict(stride=(1, 2), padding=0)),
    ((1, 4, 8, 8), (4, 4, 5, 3), dict(padding=1)),  # stride 1: F(4,3) along W
    ((1, 2, 6, 140), (4, 2, 5, 3), dict(stride=(1, 2), padding=(2, 1))),  # F(4,2), 70 wide
    ((1, 2, 6, 200), (4, 2, 5, 7), dict(stride=(1, 3), padding=2)),  # F(4,3), 66 wide
    ((2, 3, 37, 70), (5, 3, 6, 6), dict(stride=2, padding=2)),  # 6x6 / 2: F(4,3), preferred
    ((0, 3, 16, 16), (4, 3, 7, 7), dict(stride=2, padding=3)),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


def check_forward(fc, rng, x_shape, w_shape, kw, dtype):
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    x_copy, w_copy = x.copy(), w.copy()
    got = fc.conv(x, w, b, algo="winograd", **kw)
    assert_close(got, ref.conv(x, w, b, **kw), dtype, int(np.prod(w_shape[1:])))
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(w, w_copy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_forward(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    """Outputs start as NaN: every output is written once (rows that end inside a tile, the
    bias once per output)."""
    check_forward(fastconv, rng, x_shape, w_shape, kw, dtype)


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_each_isa_level(rng, isa):
    """Each level's transforms (vector interleave of the outputs, masked tails) and row kernels,
    on every tile size."""
    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, kw in [GEOMETRIES[i] for i in (0, 2, 3, 4, 5, 6, 10, 11, 15, 16, 17)]:
            for dtype in (np.float32, np.float64):
                check_forward(fc, rng, x_shape, w_shape, kw, dtype)


def test_explain_names_the_rows():
    e = fastconv.explain((1, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3, algo="winograd")
    assert e.algo == "winograd" and "F(3,4) along W over its 2 stride phases" in e.reason, str(e)
    assert "6 points per 3 outputs" in e.reason and e.workspace_bytes > 0, str(e)
    with raises_naming(NotImplementedError, "winograd", "rows"):  # 7 taps per phase along W
        fastconv.explain((1, 3, 40, 40), (8, 3, 5, 7), padding=(2, 3), algo="winograd")
    e = fastconv.explain((1, 3, 40, 40), (8, 3, 5, 5), padding=2, algo="winograd")
    assert "F(2x2,5x5)" in e.reason, str(e)  # the 2-D transforms keep what they take


def test_preferred_over_the_stacked_phases():
    """6x6 / 2 over up to 4 channels runs along the rows although the stacked phases take it;
    over more channels, at stride 4 (11x11 / 4) and on 5x5 / 2 the stacked phases keep it."""

    def reason(x_shape, w_shape, **kw):
        return fastconv.explain(x_shape, w_shape, algo="winograd", **kw).reason

    assert "F(4,3) along W" in reason((1, 3, 64, 64), (8, 3, 6, 6), stride=2, padding=2)
    for x_shape, w_shape, kw in [
        ((1, 6, 64, 64), (8, 6, 6, 6), dict(stride=2, padding=2)),
        ((1, 3, 64, 64), (8, 3, 11, 11), dict(stride=4, padding=2)),
        ((1, 3, 64, 64), (8, 3, 5, 5), dict(stride=2, padding=2)),
    ]:
        assert "stacked as channels" in reason(x_shape, w_shape, **kw), w_shape
    e = fastconv.explain(
        (1, 3, 64, 64), (8, 3, 6, 6), stride=2, padding=2, algo="winograd", pass_="backward_data"
    )
    assert "stacked as channels" in e.reason, str(e)


def test_backward_passes_refused():
    """Only the forward runs along the rows; the other passes of 7x7 / 2 say so."""
    x = np.ones((1, 3, 32, 32), np.float32)
    w = np.ones((8, 3, 7, 7), np.float32)
    gy = np.ones((1, 8, 16, 16), np.float32)
    with raises_naming(NotImplementedError, "winograd", "forward"):
        fastconv.conv_backward_data(gy, w, x.shape, stride=2, padding=3, algo="winograd")
    with raises_naming(NotImplementedError, "winograd", "forward"):
        fastconv.conv_backward_weight(x, gy, w.shape, stride=2, padding=3, algo="winograd")
    # Dilation along W and groups stay refused in the forward too.
    with raises_naming(NotImplementedError, "winograd"):
        fastconv.conv(x, w, stride=2, padding=3, dilation=(1, 2), algo="winograd")
    with raises_naming(NotImplementedError, "winograd"):
        fastconv.conv(
            np.ones((1, 4, 32, 32), np.float32),
            np.ones((8, 2, 7, 7), np.float32),
            stride=2,
            padding=3,
            groups=2,
            algo="winograd",
        )


def test_threads_bit_identical(rng):
    """Bands of output rows over the threads, each output's sums in a fixed order."""
    x = rand(rng, (2, 3, 70, 66), np.float32)
    w = rand(rng, (24, 3, 7, 7), np.float32)
    y = same_at_thread_counts(lambda: fastconv.conv(x, w, algo="winograd", stride=2, padding=3))
    assert_close(y, ref.conv(x, w, stride=2, padding=3), np.float32, 3 * 49)


def test_float32_error_bound():
    """F(3,4)'s six points (0, +-1, 2, -1/2, infinity) over ResNet's 3-channel 7x7 / 2: within
    4x implicit GEMM's float32 error."""
    for seed, (x_shape, w_shape) in enumerate(
        [((1, 3, 96, 96), (64, 3, 7, 7)), ((2, 4, 40, 64), (32, 4, 7, 7))]
    ):
        ratios = error_ratios(x_shape, w_shape, seed, ("forward",), stride=2, padding=3)
        assert ratios["forward"] < 4, ratios


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_takes_first_layers(isa):
    """auto: the forward of 6-8 taps at stride 2 along W over 1-4 channels with rows of 48+
    outputs (2-D, or 3-D 1x7x7), float32 and float64; not short rows, more channels, 1-D, 5x5 or
    3x3 / 2, or other passes."""
    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:

        def algo(x_shape, w_shape, pass_="forward", dtype="float32", **kw):
            return fc.explain(x_shape, w_shape, pass_=pass_, dtype=dtype, **kw).algo

        s2 = dict(stride=2, padding=3)
        for x_shape, w_shape, kw in [
            ((1, 3, 224, 224), (64, 3, 7, 7), s2),
            ((8, 3, 224, 224), (64, 3, 7, 7), s2),
            ((1, 1, 224, 224), (64, 1, 7, 7), s2),
            ((1, 4, 112, 112), (32, 4, 7, 7), s2),
            ((1, 3, 16, 112, 112), (45, 3, 1, 7, 7), dict(stride=(1, 2, 2), padding=(0, 3, 3))),
            ((1, 3, 640, 640), (32, 3, 6, 6), dict(stride=2, padding=2)),
            ((1, 3, 224, 224), (64, 3, 6, 6), dict(stride=2, padding=2)),
        ]:
            assert algo(x_shape, w_shape, **kw) == "winograd", x_shape
            assert algo(x_shape, w_shape, dtype="float64", **kw) == "winograd", x_shape
            for pass_ in ("backward_data", "backward_weight"):  # (6x6's data: stacked phases)
                e = fc.explain(x_shape, w_shape, pass_=pass_, **kw)
                assert "along W" not in e.reason, (x_shape, pass_, str(e))
        for x_shape, w_shape, kw in [
            ((8, 3, 32, 32), (64, 3, 7, 7), s2),  # 16 outputs a row
            ((1, 8, 224, 224), (64, 8, 7, 7), s2),
            ((1, 3, 65536), (32, 3, 7), s2),
            ((1, 3, 224, 224), (64, 3, 5, 5), dict(stride=1, padding=2)),
            ((1, 3, 4, 112, 112), (45, 3, 3, 7, 7), dict(stride=(1, 2, 2), padding=(1, 3, 3))),
            ((1, 3, 224, 224), (32, 3, 5, 5), dict(stride=2, padding=2)),
            ((1, 3, 224, 224), (32, 3, 3, 3), dict(stride=2, padding=1)),
        ]:
            assert algo(x_shape, w_shape, **kw) != "winograd", x_shape
