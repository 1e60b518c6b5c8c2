"""Winograd F(2x2,3x3) at stride 2 (csrc/algo/winograd_stride2.cc): a 3x3 / 2 forward as 25
transform-domain products per tile of 2x2 outputs, both schedules (fused blocks where the
transformed weights fit the L2, staged chunks where they do not, chunks splitting an image and
spanning images), and its weight gradient (algo="winograd" on 128+ tiles), against the float64
oracle with outputs poisoned, at each ISA level, threads agreeing bit for bit, and where `auto`
takes it (the forward; the weight gradient at AVX-512 on 256-bit units)."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import (
    FastconvProcess,
    assert_close,
    rand,
    same_at_thread_counts,
    skip_unless_isa_runs,
)

NOTE = "F(2x2,3x3) at stride 2"
WEIGHT_NOTE = "F(3x3,2x2) at stride 2"
AUTO = "Winograd F(2x2,3x3) at stride 2"

# (x_shape, w_shape, kwargs): 16 channels (the least it takes) with even and odd outputs,
# partial panels of output channels (17, 40), padding 0 / 2 / asymmetric, rectangular maps,
# true convolution, no bias; 256 -> 256 (transformed weights of 4 MiB: the staged schedule on
# any L2 up to 8 MiB; chunks of 163 tiles in float32, 81 in float64) on one image, on 40x40
# outputs (400 tiles: chunks split it, its input copied once), on 4 images of 100 tiles (a chunk
# each), and on 12 images of 16 tiles (chunks of 10 images, then 2; float64 5, 5 and 2).
GEOMETRIES = [
    ((1, 16, 8, 8), (16, 16, 3, 3), dict(stride=2, padding=1)),
    ((2, 32, 17, 13), (40, 32, 3, 3), dict(stride=2)),
    ((3, 20, 9, 10), (17, 20, 3, 3), dict(stride=2, padding=2)),
    ((2, 24, 7, 6), (50, 24, 3, 3), dict(stride=2, padding=((0, 1), (1, 0)))),
    ((1, 16, 3, 3), (16, 16, 3, 3), dict(stride=2, padding=1)),  # one tile, 2x2 outputs
    ((2, 48, 15, 22), (64, 48, 3, 3), dict(stride=2, padding=1, mode="conv")),
    ((1, 256, 28, 28), (256, 256, 3, 3), dict(stride=2, padding=1)),
    ((1, 256, 80, 80), (256, 256, 3, 3), dict(stride=2, padding=1)),
    ((4, 256, 40, 40), (256, 256, 3, 3), dict(stride=2, padding=1)),
    ((12, 256, 14, 14), (256, 256, 3, 3), dict(stride=2, padding=1)),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


def _check(got, x, w, b, kw, dtype):
    assert_close(got, ref.conv(x, w, b, **kw), dtype, w.shape[1] * 9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_forward(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    e = fastconv.explain(x_shape, w_shape, algo="winograd", dtype=np.dtype(dtype).name, **kw)
    assert NOTE in e.reason, str(e)
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = None if kw.get("mode") == "conv" else rand(rng, (w_shape[0],), dtype)
    x0, w0 = x.copy(), w.copy()
    got = fastconv.conv(x, w, b, algo="winograd", **kw)
    _check(got, x, w, b, kw, dtype)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


# The weight gradient's (128+ tiles over the batch): partial tiles (odd outputs), padding 2 and
# asymmetric, true convolution, 16 channels; 400 tiles in three chunks of 163 (the GEMMs add to
# the first chunk's sums) and 4 images of 100 tiles, a chunk each.
WEIGHT = [
    ((3, 20, 33, 34), (17, 20, 3, 3), dict(stride=2, padding=2)),
    ((3, 24, 30, 29), (50, 24, 3, 3), dict(stride=2, padding=((0, 1), (1, 0)))),
    ((2, 48, 47, 46), (64, 48, 3, 3), dict(stride=2, padding=1, mode="conv")),
    ((1, 16, 63, 61), (17, 16, 3, 3), dict(stride=2, padding=1)),
    ((1, 256, 80, 80), (256, 256, 3, 3), dict(stride=2, padding=1)),
    ((4, 256, 40, 40), (256, 256, 3, 3), dict(stride=2, padding=1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", WEIGHT, ids=[f"w{i}" for i in range(len(WEIGHT))])
def test_weight_gradient(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    e = fastconv.explain(
        x_shape, w_shape, pass_="backward_weight", algo="winograd", dtype=np.dtype(dtype).name, **kw
    )
    assert WEIGHT_NOTE in e.reason, str(e)
    x = rand(rng, x_shape, dtype)
    gy = rand(rng, ref.conv(np.zeros(x_shape), np.zeros(w_shape), **kw).shape, dtype)
    x0, gy0 = x.copy(), gy.copy()
    got = fastconv.conv_backward_weight(x, gy, w_shape, algo="winograd", **kw)
    want = ref.conv_backward_weight(x, gy, w_shape, **kw)
    assert_close(got, want, dtype, x_shape[0] * gy.shape[2] * gy.shape[3])
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(gy, gy0)


def test_weight_gradient_needs_tiles():
    """Under 128 tiles over the batch the GEMMs' depth is too short: the stacked phases (or
    implicit GEMM) keep the weight gradient; backward data never runs this path."""
    for x_shape in [(1, 32, 28, 28), (7, 32, 16, 16)]:  # 49 and 112 tiles
        e = fastconv.explain(
            x_shape, (32, 32, 3, 3), pass_="backward_weight", algo="winograd", stride=2, padding=1
        )
        assert WEIGHT_NOTE not in e.reason, str(e)
    e = fastconv.explain(
        (8, 32, 16, 16),
        (32, 32, 3, 3),
        pass_="backward_weight",
        algo="winograd",
        stride=2,
        padding=1,
    )
    assert WEIGHT_NOTE in e.reason, str(e)


def test_error_is_a_direct_sums(rng):
    """Every transform coefficient is +-1: the float32 error stays within 2x the direct
    algorithm's (the stacked phases' F(3x3,2x2) and F(4x4,3x3) reach 10x and more)."""
    x = rand(rng, (1, 256, 28, 28), np.float32)
    w = rand(rng, (256, 256, 3, 3), np.float32)
    want = ref.conv(x.astype(np.float64), w.astype(np.float64), stride=2, padding=1)
    err = {
        a: np.abs(fastconv.conv(x, w, stride=2, padding=1, algo=a) - want).max()
        for a in ("winograd", "direct")
    }
    assert err["winograd"] <= 2 * err["direct"], err


def test_few_channels_keep_the_stacked_phases():
    """Below 16 input channels the GEMM depth is too short: Winograd runs the stacked stride
    phases there (the stems' path), as on images whose copies would pass 64 MiB; other strides /
    kernels never take this one."""
    for x_shape, w_shape, kw in [
        ((1, 15, 16, 16), (32, 15, 3, 3), dict(stride=2, padding=1)),
        ((1, 32, 16, 16), (32, 32, 4, 4), dict(stride=2, padding=1)),
        # the padded input copy alone 257 MiB (the path keeps an image's copies whole)
        ((1, 256, 512, 512), (64, 256, 3, 3), dict(stride=2, padding=1)),
    ]:
        e = fastconv.explain(x_shape, w_shape, algo="winograd", **kw)
        assert NOTE not in e.reason and "stride phases" in e.reason, str(e)
    e = fastconv.explain(
        (1, 32, 16, 16), (32, 32, 3, 3), pass_="backward_data", algo="winograd", stride=2
    )
    assert NOTE not in e.reason, str(e)


@pytest.mark.parametrize(
    "shape,k", [((1, 32, 18, 18), 48), ((1, 256, 80, 80), 256)], ids=["fused", "staged"]
)
def test_threads_agree(rng, shape, k):
    """Fused: 48 x 32 kernels (transformed, 96 KiB at AVX-512); staged: 256 x 256 (4 MiB, past
    half of any L2 up to 8 MiB)."""
    x = rand(rng, shape, np.float32)
    w = rand(rng, (k, shape[1], 3, 3), np.float32)
    one = same_at_thread_counts(lambda: fastconv.conv(x, w, stride=2, padding=1, algo="winograd"))
    _check(one, x, w, None, dict(stride=2, padding=1), np.float32)


def test_weight_gradient_threads_agree(rng):
    x = rand(rng, (2, 64, 40, 40), np.float32)
    gy = rand(rng, (2, 48, 20, 20), np.float32)
    kw = dict(stride=2, padding=1, algo="winograd")
    one = same_at_thread_counts(lambda: fastconv.conv_backward_weight(x, gy, (48, 64, 3, 3), **kw))
    want = ref.conv_backward_weight(x, gy, (48, 64, 3, 3), stride=2, padding=1)
    assert_close(one, want, np.float32, 2 * 400)


# Banded forwards (an image's channels-last copies past the L2, set to 256 KiB here: each block
# of tiles along a tile row fills its own input window and moves its outputs into y): three
# blocks per tile row, the last one short, odd output widths (a partial tile column), 20
# channels (a window filled 8 channels at a time, then 4), no padding on two images, asymmetric
# padding, true convolution without a bias.
BANDED = [
    ((1, 16, 30, 241), (24, 16, 3, 3), dict(stride=2, padding=1)),
    ((2, 16, 61, 77), (24, 16, 3, 3), dict(stride=2)),
    ((1, 20, 45, 130), (17, 20, 3, 3), dict(stride=2, padding=((0, 1), (1, 0)))),
    ((1, 24, 40, 150), (32, 24, 3, 3), dict(stride=2, padding=2, mode="conv")),
    ((1, 16, 21, 140), (24, 16, 3, 3), dict(stride=2, padding=5)),  # whole zero rows, columns
]
BANDED_NOTE = "in bands of tile rows"


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_banded(rng, dtype, isa):
    """At each level: its transpose kernels (8x8 / 4x4 tiles, scalar edges) and GEMM panels."""
    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_L2_BYTES": str(256 << 10), "FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, kw in BANDED:
            e = fc.explain(x_shape, w_shape, algo="winograd", dtype=np.dtype(dtype).name, **kw)
            assert NOTE in e.reason and BANDED_NOTE in e.reason, (x_shape, str(e))
            x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
            b = None if kw.get("mode") == "conv" else rand(rng, (w_shape[0],), dtype)
            got = []
            for threads in (1, 2, 3):
                fc.set_num_threads(threads)
                got.append(fc.conv(x, w, b, algo="winograd", **kw))
            _check(got[0], x, w, b, kw, dtype)
            for other in got[1:]:
                np.testing.assert_array_equal(got[0], other)
    # With a 1 MiB L2 small images keep their whole copies.
    with FastconvProcess({"FASTCONV_L2_BYTES": str(1 << 20)}) as fc:
        e = fc.explain((1, 16, 30, 30), (24, 16, 3, 3), algo="winograd", stride=2, padding=1)
    assert NOTE in e.reason and BANDED_NOTE not in e.reason, str(e)


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_each_isa(rng, isa):
    """The transforms and GEMM tiles of each level (panels of 8, 16 and 32 columns)."""
    skip_unless_isa_runs(isa)
    kw = dict(stride=2, padding=1)
    x, w = rand(rng, (2, 40, 13, 14), np.float32), rand(rng, (36, 40, 3, 3), np.float32)
    xd, wd = rand(rng, (1, 24, 9, 9), np.float64), rand(rng, (20, 24, 3, 3), np.float64)
    xg, gy = rand(rng, (2, 24, 33, 31), np.float32), rand(rng, (2, 20, 17, 16), np.float32)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        got = fc.conv(x, w, algo="winograd", **kw)
        got64 = fc.conv(xd, wd, algo="winograd", **kw)
        gw = fc.conv_backward_weight(xg, gy, (20, 24, 3, 3), algo="winograd", **kw)
    _check(got, x, w, None, kw, np.float32)
    _check(got64, xd, wd, None, kw, np.float64)
    want = ref.conv_backward_weight(xg, gy, (20, 24, 3, 3), **kw)
    assert_close(gw, want, np.float32, 2 * 17 * 16)


# (x, w, kwargs, auto takes it on 256-bit units with a 1 MiB L2, and off them with a 2 MiB L2)
AUTO_CASES = [
    ((1, 128, 56, 56), (128, 128, 3, 3), dict(stride=2, padding=1), True, True),  # res3.3x3s2
    ((8, 256, 40, 40), (512, 256, 3, 3), dict(stride=2, padding=1), True, True),
    ((1, 64, 112, 112), (64, 64, 3, 3), dict(stride=2, padding=1), True, True),
    ((1, 192, 71, 71), (192, 192, 3, 3), dict(stride=2), True, True),  # 35x35 outputs
    # 14x14 outputs of one image: on the 2 MiB-L2 Xeon a tie with direct (under 400 outputs
    # over the batch); 8x8 outputs of a batch of 8
    ((1, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1), True, False),
    ((8, 192, 17, 17), (320, 192, 3, 3), dict(stride=2), True, True),
    # 32 input channels and large maps whose transformed kernels fit half the L2 (banded) on
    # 256-bit units only: YOLOv5s's conv1 and conv3, 64 -> 64 on 224x224, 32 -> 64 on 56x56 x8
    ((1, 32, 320, 320), (64, 32, 3, 3), dict(stride=2, padding=1), True, False),
    ((1, 64, 160, 160), (128, 64, 3, 3), dict(stride=2, padding=1), True, False),
    ((1, 64, 224, 224), (64, 64, 3, 3), dict(stride=2, padding=1), True, False),
    ((8, 32, 56, 56), (64, 32, 3, 3), dict(stride=2, padding=1), True, False),
    ((32, 32, 28, 28), (64, 32, 3, 3), dict(stride=2, padding=1), True, False),  # 14x14 outputs
    # under 14x14 outputs below 64 input channels (CIFAR ResNet's stage 3): implicit GEMM
    ((128, 32, 16, 16), (64, 32, 3, 3), dict(stride=2, padding=1), False, False),
    # below 64 input channels only where the kernels fit half the L2 (48 -> 512: staged)
    ((1, 48, 112, 112), (512, 48, 3, 3), dict(stride=2, padding=1), False, False),
    # an image whose copies pass kStride2MaxImageElems: the stacked phases, not this path
    ((1, 64, 512, 512), (64, 64, 3, 3), dict(stride=2, padding=1), False, False),
    # 17x17 and 7x7 outputs (tiles past 0.75 of the products), 16 input channels, 48 output
    # channels, grouped, dilated, larger maps whose kernels do not fit half the L2: not measured
    # faster
    ((1, 288, 35, 35), (384, 288, 3, 3), dict(stride=2), False, False),  # Inception's mixed6a
    ((1, 256, 14, 14), (512, 256, 3, 3), dict(stride=2, padding=1), False, False),
    ((1, 16, 224, 224), (32, 16, 3, 3), dict(stride=2, padding=1), False, False),
    ((1, 32, 224, 224), (32, 32, 3, 3), dict(stride=2, padding=1), False, False),
    ((1, 128, 56, 56), (48, 128, 3, 3), dict(stride=2, padding=1), False, False),
    ((1, 128, 56, 56), (128, 64, 3, 3), dict(stride=2, padding=1, groups=2), False, False),
    ((1, 128, 56, 56), (128, 128, 3, 3), dict(stride=2, padding=1, dilation=2), False, False),
    ((1, 128, 112, 112), (128, 128, 3, 3), dict(stride=2, padding=1), False, False),
    ((1, 96, 112, 112), (96, 96, 3, 3), dict(stride=2, padding=1), False, False),
]


@pytest.mark.parametrize("x_shape,w_shape,kw,takes,takes_2mib", AUTO_CASES)
@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto(x_shape, w_shape, kw, takes, takes_2mib, isa):
    """auto takes it for float32 forwards on a CPU with 256-bit AVX-512 units and a 1 MiB L2
    (set here; AMD's Zen 4, where it was measured), at AVX-512 and at AVX2 alike, never in float64
    or for backward data (off those units: below; the weight gradient: test_auto_weight)."""
    skip_unless_isa_runs(isa)
    # The level pinned: an inherited FASTCONV_ISA=avx2 would cap the subprocess below it.
    env = {"FASTCONV_ISA": isa, "FASTCONV_AVX512_UNITS": "256", "FASTCONV_L2_BYTES": str(1 << 20)}
    with FastconvProcess(env) as fc:
        e = fc.explain(x_shape, w_shape, **kw)
        others = [
            fc.explain(x_shape, w_shape, dtype="float64", **kw),
            fc.explain(x_shape, w_shape, pass_="backward_data", **kw),
        ]
    assert (e.algo == "winograd" and AUTO in e.reason) == takes, str(e)
    if takes:
        assert NOTE in fastconv.explain(x_shape, w_shape, algo="winograd", **kw).reason
    for o in others:
        assert AUTO not in o.reason, str(o)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_with_a_2mib_l2(isa):
    """Off 256-bit units (512-bit units set here, or AVX2) auto takes it with an L2 of 2 MiB or
    more (set here: the Xeon it was measured on) from 400 outputs over the batch, never just
    below 2 MiB (unmeasured off the Xeon and Zen 4); backward data never. One process per L2."""
    skip_unless_isa_runs(isa)
    for l2 in (2 << 20, (2 << 20) - 4096):
        env = {"FASTCONV_ISA": isa, "FASTCONV_AVX512_UNITS": "512", "FASTCONV_L2_BYTES": str(l2)}
        with FastconvProcess(env) as fc:
            for x_shape, w_shape, kw, _, takes_2mib in AUTO_CASES:
                want = takes_2mib and l2 == 2 << 20
                e = fc.explain(x_shape, w_shape, **kw)
                o = fc.explain(x_shape, w_shape, pass_="backward_data", **kw)
                assert (e.algo == "winograd" and AUTO in e.reason) == want, (env, x_shape, str(e))
                assert AUTO not in o.reason, (env, x_shape, str(o))


# (x_shape, w_shape, kwargs, whether auto's weight gradient runs the path on 256-bit AVX-512
# units): 64+ channels each side on 128+ tiles over the batch (_cpu_stems._stride2_winograd_weight)
AUTO_WEIGHT = [
    ((1, 128, 56, 56), (128, 128, 3, 3), dict(stride=2, padding=1), True),  # res3.3x3s2
    ((8, 256, 40, 40), (512, 256, 3, 3), dict(stride=2, padding=1), True),
    ((1, 64, 224, 224), (64, 64, 3, 3), dict(stride=2, padding=1), True),
    ((8, 128, 28, 28), (128, 128, 3, 3), dict(stride=2, padding=1), True),  # 392 tiles
    ((1, 128, 28, 28), (256, 128, 3, 3), dict(stride=2, padding=1), False),  # 49 tiles
    ((1, 256, 40, 40), (512, 256, 3, 3), dict(stride=2, padding=1), False),  # 100 tiles
    ((8, 32, 56, 56), (64, 32, 3, 3), dict(stride=2, padding=1), False),  # 32 input channels
    ((1, 128, 56, 56), (48, 128, 3, 3), dict(stride=2, padding=1), False),  # 48 output channels
    ((1, 64, 512, 512), (64, 64, 3, 3), dict(stride=2, padding=1), False),  # past the copies
    ((1, 128, 56, 56), (128, 64, 3, 3), dict(stride=2, padding=1, groups=2), False),
    ((1, 128, 56, 56), (128, 128, 3, 3), dict(stride=2, padding=1, dilation=2), False),
    ((32, 64, 12, 12), (64, 64, 3, 3), dict(stride=2, padding=1), False),  # direct's batch path
]


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_weight(isa):
    """auto's float32 weight gradient runs the path on a CPU with 256-bit AVX-512 units (Zen
    4, where measured), at AVX-512 and AVX2 alike, on 64+ channels each side and 128+ tiles;
    never on 512-bit units (unmeasured) nor in float64 (its results: test_weight_gradient)."""
    skip_unless_isa_runs(isa)
    for units in ("256", "512"):
        env = {"FASTCONV_ISA": isa, "FASTCONV_AVX512_UNITS": units}
        with FastconvProcess(env) as fc:
            for x_shape, w_shape, kw, takes in AUTO_WEIGHT:
                want = takes and units == "256"
                e = fc.explain(x_shape, w_shape, pass_="backward_weight", **kw)
                assert (e.algo == "winograd" and AUTO in e.reason) == want, (env, x_shape, str(e))
                if want:
                    assert WEIGHT_NOTE in e.reason, str(e)
                    f64 = fc.explain(
                        x_shape, w_shape, pass_="backward_weight", dtype="float64", **kw
                    )
                    assert AUTO not in f64.reason, str(f64)
