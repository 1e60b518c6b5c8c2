"""Winograd on 3-D layers: a KD x r x r kernel at stride 1 along H and W runs as a 2-D
convolution over its depth taps, input channel (c, kd) of 2-D image (n, d) being the input plane
at depth d * stride + kd * dilation - padding, read in place (csrc/algo/winograd_depth.h); every
pass vs the float64 oracle, the planner's refusals and auto's rule (_cpu_volume._depth_winograd)."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import FastconvProcess, raises_naming, rand, same_at_thread_counts
from test_winograd_phases import check_passes

# (x_shape, w_shape, kwargs): C3D-like 3x3x3, R(2+1)D's 1x3x3 (planes strided in the volume),
# depth stride, dilation and asymmetric padding (taps off the volume read the zero plane), the
# depth taps of backward data that no output reaches (stride 3 skips them), true convolution with
# groups, 2- and 5-tap planes, a kernel deeper than the padded volume's reach on one side, a
# batch, and enough channels and tiles for the transform-domain weight gradient.
TRANSFORM_DOMAIN = ((1, 32, 6, 20, 20), (32, 32, 3, 3, 3), dict(padding=1))
GEOMETRIES = [
    ((1, 4, 5, 6, 7), (5, 4, 3, 3, 3), dict(padding=1)),
    ((2, 6, 4, 9, 8), (4, 6, 1, 3, 3), dict(padding=(0, 1, 1))),
    ((2, 6, 9, 6, 7), (4, 6, 3, 3, 3), dict(stride=(2, 1, 1), dilation=(2, 1, 1), padding=2)),
    ((1, 5, 11, 6, 6), (4, 5, 2, 3, 3), dict(stride=(3, 1, 1), padding=((2, 0), (1, 1), (0, 2)))),
    ((1, 4, 5, 8, 8), (6, 2, 3, 3, 3), dict(padding=1, groups=2, mode="conv")),
    ((1, 3, 4, 9, 9), (4, 3, 1, 5, 5), dict(padding=(0, 2, 2))),
    ((2, 4, 5, 8, 8), (4, 4, 4, 2, 2), dict(stride=(2, 1, 1), padding=(1, 0, 0))),
    ((1, 4, 3, 7, 7), (4, 4, 5, 3, 3), dict(padding=(1, 1, 1))),
    TRANSFORM_DOMAIN,
    ((0, 4, 5, 6, 6), (4, 4, 3, 3, 3), dict(padding=1)),
    # three images, asymmetric depth padding: the depth taps' shared transforms (below)
    ((3, 4, 5, 6, 6), (5, 4, 3, 3, 3), dict(padding=((2, 0), (1, 1), (1, 1)))),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_depth_passes(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    """Outputs start as NaN: every element of y, grad_x (backward data's input depths that no
    tap reaches at stride 3 included) and grad_w is written."""
    check_passes(fastconv, rng, x_shape, w_shape, kw, dtype)


def test_the_passes_run_over_the_depth_taps():
    """explain names the 2-D convolution each pass runs: N x D_out planes of C x KD channels
    forward and for the weight gradient (here in the transform domain, not implicit_gemm's
    fallback), grad_y's planes as K x KD channels into N x D_in planes for backward data."""
    x_shape, w_shape, kw = TRANSFORM_DOMAIN
    for pass_, what in [
        ("forward", "6 planes, 96 -> 32 channels"),
        ("backward_data", "6 planes, 96 -> 32 channels"),
        ("backward_weight", "6 planes, 96 -> 32 channels"),
    ]:
        e = fastconv.explain(x_shape, w_shape, algo="winograd", pass_=pass_, **kw)
        assert "3 depth taps" in e.reason and what in e.reason, e.reason
        assert "implicit_gemm" not in e.reason and e.workspace_bytes > 0, e.reason
    e = fastconv.explain((1, 4, 6, 8, 8), (4, 4, 1, 3, 3), algo="winograd", padding=(0, 1, 1))
    assert "1 depth taps (2-D over 6 planes, 4 -> 4 channels)" in e.reason, e.reason


@pytest.mark.parametrize("block_bytes", ["2048", "65536"])
def test_small_blocks(fastconv_with_env, rng, block_bytes):
    """At depth stride and dilation 1 a depth tap's transforms are the first tap's one plane of
    tiles on, copied where those tiles lie in the block and the same image and computed at the
    edges (Stages::depth_input): blocks of a few tiles put edges inside planes and images."""
    fc = fastconv_with_env(FASTCONV_WINOGRAD_BLOCK_BYTES=block_bytes)
    for x_shape, w_shape, kw in [GEOMETRIES[0], GEOMETRIES[4], GEOMETRIES[7], GEOMETRIES[-1]]:
        for dtype in (np.float32, np.float64):
            check_passes(fc, rng, x_shape, w_shape, kw, dtype)


def test_threads_agree_bit_for_bit(rng):
    x_shape, w_shape, kw = TRANSFORM_DOMAIN
    x, w = rand(rng, x_shape, np.float32), rand(rng, w_shape, np.float32)
    gy = rand(rng, ref.conv(x, w, **kw).shape, np.float32)
    same_at_thread_counts(lambda: fastconv.conv(x, w, algo="winograd", **kw))
    same_at_thread_counts(
        lambda: fastconv.conv_backward_data(gy, w, x_shape, algo="winograd", **kw)
    )
    same_at_thread_counts(
        lambda: fastconv.conv_backward_weight(x, gy, w_shape, algo="winograd", **kw)
    )


def test_float32_error_bound(rng):
    """The 2-D transforms' error over C x KD summed channels: within 10x implicit GEMM's (the
    tile rule's bound, csrc/algo/winograd_tiles.cc) on I3D-like channels."""
    x_shape, w_shape, kw = (1, 48, 6, 14, 14), (64, 48, 3, 3, 3), dict(padding=1)
    x = rng.uniform(-1, 1, x_shape).astype(np.float32)
    w = rng.uniform(-1, 1, w_shape).astype(np.float32)
    want = ref.conv(x.astype(np.float64), w.astype(np.float64), **kw)
    wino = np.abs(fastconv.conv(x, w, algo="winograd", **kw) - want).max()
    gemm = np.abs(fastconv.conv(x, w, algo="implicit_gemm", **kw) - want).max()
    assert wino <= 10 * gemm, (wino, gemm)


def test_every_isa_level_matches_the_oracle(isa):
    r = np.random.default_rng(7)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, kw in GEOMETRIES[2:5] + [TRANSFORM_DOMAIN]:
            for dtype in (np.float32, np.float64):
                check_passes(fc, r, x_shape, w_shape, kw, dtype)


def test_transposed_3d(rng):
    """A 3-D transposed convolution's forward is the conv's backward data: the same stack."""
    x, w = rand(rng, (1, 6, 4, 7, 7), np.float32), rand(rng, (6, 5, 3, 3, 3), np.float32)
    kw = dict(stride=(2, 1, 1), padding=1)
    want = ref.conv_transpose(x, w, **kw)
    got = fastconv.conv_transpose(x, w, algo="winograd", **kw)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize(
    "w_shape,kw",
    [
        ((4, 4, 3, 3, 3), dict(padding=1, stride=(1, 1, 2))),
        ((4, 4, 3, 3, 3), dict(padding=2, dilation=(1, 2, 1))),
        ((4, 4, 3, 3, 5), dict(padding=1)),
        ((4, 4, 3, 7, 7), dict(padding=3)),
    ],
)
def test_refusals_name_the_plane(w_shape, kw):
    x = np.ones((1, 4, 8, 8, 8), np.float32)
    with raises_naming(NotImplementedError, "winograd", "depth taps", "stride", "dilation"):
        fastconv.conv(x, np.ones(w_shape, np.float32), algo="winograd", **kw)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_takes_3x3_planes(isa):
    """auto runs 3x3-plane 3-D layers over their depth taps at both levels (every pass; the
    weight gradient plans its own fallback) with 64+ F(2x2) tiles; smaller volumes keep direct's
    per-tap path, other planes other algorithms, float64 too."""
    from conftest import skip_unless_isa_runs

    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, pad in [
            ((1, 64, 8, 28, 28), (64, 64, 3, 3, 3), 1),  # C3D
            ((1, 96, 16, 14, 14), (208, 96, 3, 3, 3), 1),  # I3D's Mixed_4b
            ((1, 256, 4, 14, 14), (576, 256, 1, 3, 3), (0, 1, 1)),  # R(2+1)D's layer3
            ((1, 32, 32, 32, 32), (32, 32, 3, 3, 3), 1),  # a 3-D U-Net
        ]:
            for pass_ in ("forward", "backward_data", "backward_weight"):
                e = fc.explain(x_shape, w_shape, padding=pad, pass_=pass_)
                assert e.algo == "winograd", str(e)
                # (R(2+1)D's 64 tiles of F(3x3,4x4) on 256 channels: implicit_gemm's fallback)
                assert "depth taps" in e.reason or pass_ == "backward_weight", str(e)
        for pass_ in ("forward", "backward_data"):
            small = fc.explain((1, 512, 2, 7, 7), (512, 512, 3, 3, 3), padding=1, pass_=pass_)
            assert small.algo == "direct", str(small)
        # summing 1024+ channels x depth taps (512 x 3): transformed kernels past 50 MiB
        for pass_ in ("forward", "backward_data", "backward_weight"):
            wide = fc.explain((1, 512, 8, 14, 14), (512, 512, 3, 3, 3), padding=1, pass_=pass_)
            assert wide.algo != "winograd", str(wide)
        e = fc.explain((1, 512, 8, 14, 14), (128, 512, 1, 3, 3), padding=(0, 1, 1))
        assert e.algo == "winograd", str(e)
        # (3x1x1 kernels run Winograd along depth: test_winograd_axis.py)
        strided = fc.explain((1, 64, 8, 28, 28), (64, 64, 3, 3, 3), padding=1, stride=2)
        assert strided.algo != "winograd", str(strided)
