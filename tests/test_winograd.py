"""Winograd F(m,3) / F(mxm,3x3) for every tile size, pass and dtype vs the float64 oracle (strided
layers on their stride phases: test_winograd_phases.py)."""

from __future__ import annotations

import textwrap

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import (
    FastconvProcess,
    assert_close,
    assert_passes_match,
    error_ratios,
    raises_naming,
    rand,
    run_python,
)
from fastconv._problem import conv_problem

TILES = (2, 4, 6)

# (x_shape, w_shape, kwargs): 1-D and 2-D, partial tiles (7x5, 13x1, 1x1), asymmetric, zero,
# "same", "full" and over-wide padding (backward data then pads negatively), groups, true
# convolution, batch 0 and 3, both schedules (tile blocks, kernel blocks).
GEOMETRIES = [
    ((2, 5, 13, 11), (7, 5, 3, 3), dict(padding=1)),
    ((1, 4, 7, 5), (6, 4, 3, 3), dict(padding=((0, 2), (1, 0)))),
    ((3, 3, 13, 1), (4, 3, 3, 3), dict(padding="same")),
    ((1, 3, 1, 1), (2, 3, 3, 3), dict(padding="full")),
    ((2, 6, 9, 8), (4, 3, 3, 3), dict(padding=0, groups=2, mode="conv")),
    ((1, 4, 17, 19), (8, 4, 3, 3), dict(padding=((3, 1), (0, 4)))),
    ((1, 20, 10, 21), (18, 20, 3, 3), dict(padding=1)),  # runs longer than one vector of tiles
    ((1, 32, 9, 10), (36, 16, 3, 3), dict(padding=((2, 0), (1, 1)), groups=2, mode="conv")),
    ((0, 4, 6, 6), (4, 4, 3, 3), dict(padding=1)),
    ((2, 3, 40, 40), (5, 3, 3, 3), dict(padding=1)),  # several tile blocks, threads take blocks
    ((1, 8, 6, 6), (64, 8, 3, 3), dict(padding=1)),  # fewer tiles than channels: kernel blocks
    ((3, 5, 19), (7, 5, 3), dict(padding=1)),
    ((2, 4, 7), (6, 2, 3), dict(padding=((2, 0),), groups=2, mode="conv")),
    ((1, 3, 1), (2, 3, 3), dict(padding="full")),
    ((1, 17, 40), (5, 17, 3), dict(padding=((0, 3),))),
    ((2, 16, 45), (20, 16, 3), dict(padding=1, mode="conv")),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


@pytest.fixture(params=TILES)
def tile(request):
    return request.param


@pytest.fixture
def tiled_fastconv(tile, fastconv_with_env):
    """fastconv forcing F(tile): FASTCONV_WINOGRAD_TILE is read once per process, so each tile
    runs in a process of its own (outputs there start as NaN, as under `poisoned_outputs`)."""
    fc = fastconv_with_env(FASTCONV_WINOGRAD_TILE=str(tile))
    reason = fc.explain((1, 4, 8, 8), (4, 4, 3, 3), padding=1, algo="winograd").reason
    assert f"F({tile}x{tile},3x3)" in reason, reason  # the variable reached the process
    return fc


def test_tile_environment_is_read_once_per_process():
    """FASTCONV_WINOGRAD_TILE is read on first use (common/tuning.h): later changes to the
    environment leave the tile as it was."""
    code = textwrap.dedent(
        """
        import os, fastconv
        def note():
            return fastconv.explain((1, 4, 8, 8), (4, 4, 3, 3), padding=1, algo="winograd").reason
        first = note()
        os.environ["FASTCONV_WINOGRAD_TILE"] = "6"
        print(first, "|", note())
        """
    )
    proc = run_python(code, {"FASTCONV_WINOGRAD_TILE": "2"})
    assert proc.returncode == 0, proc.stderr
    first, later = proc.stdout.strip().splitlines()[-1].split("|")
    assert "F(2x2,3x3)" in first and "F(2x2,3x3)" in later, proc.stdout


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_passes(tiled_fastconv, rng, x_shape, w_shape, kw, dtype):
    fc = tiled_fastconv
    kw = dict(kw, groups=kw.get("groups", 1))
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    want = ref.conv(x, w, b, **kw)
    y = fc.conv(x, w, b, algo="winograd", **kw)
    assert_close(y, want, dtype, int(np.prod(w_shape[1:])))
    gy = rand(rng, want.shape, dtype)
    gx = fc.conv_backward_data(gy, w, x_shape, algo="winograd", **kw)
    want_gx = ref.conv_backward_data(gy, w, x_shape, **kw)
    assert_close(gx, want_gx, dtype, w_shape[0] // kw["groups"] * 9)
    gw = fc.conv_backward_weight(x, gy, w_shape, algo="winograd", **kw)
    out_count = int(np.prod(want.shape)) // max(want.shape[1], 1)
    assert_close(gw, ref.conv_backward_weight(x, gy, w_shape, **kw), dtype, max(out_count, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape,w_shape,kw",
    [
        ((2, 6, 5, 7), (6, 3, 3, 3), dict(padding=1)),
        ((1, 4, 6, 4), (4, 2, 3, 3), dict(padding=((0, 2), (3, 1)), groups=2)),
        ((3, 4, 11), (4, 5, 3), dict(padding=0)),
    ],
)
def test_transposed_stride_one(tiled_fastconv, rng, x_shape, w_shape, kw, dtype):
    """A stride-1 transposed conv runs winograd's backward data (forward) and forward (its
    backward data); padding above kernel - 1 gives its conv geometry negative padding."""
    fc = tiled_fastconv
    groups = kw.get("groups", 1)
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[1] * groups,), dtype)
    want = ref.conv_transpose(x, w, b, **kw)
    y = fc.conv_transpose(x, w, b, algo="winograd", **kw)
    assert_close(y, want, dtype, 64)
    gy = rand(rng, want.shape, dtype)
    gx = fc.conv_transpose_backward_data(gy, w, algo="winograd", **kw)
    assert_close(gx, ref.conv_transpose_backward_data(gy, w, **kw), dtype, 64)
    gw = fc.conv_transpose_backward_weight(x, gy, w_shape, algo="winograd", **kw)
    assert_close(gw, ref.conv_transpose_backward_weight(x, gy, w_shape, **kw), dtype, 256)


@pytest.mark.parametrize(
    "w_shape,kw,why",
    [
        ((4, 4, 3, 3), dict(stride=3, padding=1), "stride"),
        ((4, 4, 3, 3), dict(dilation=2, padding=1), "dilation"),
        ((4, 4, 7, 7), dict(padding=3), "kernel"),
        ((4, 4, 5, 7), dict(padding=1), "kernel"),  # (5x3 forwards run along the rows)
        ((4, 4, 3, 1), dict(padding=1), "kernel"),
        # 3-D runs over its depth taps only with unit stride and dilation in each plane
        ((4, 4, 3, 3, 3), dict(padding=1, stride=(1, 2, 2)), "3-D"),
        ((4, 4, 3, 3, 3), dict(padding=2, dilation=(1, 2, 2)), "3-D"),
        ((4, 4, 3, 3, 5), dict(padding=1), "3-D"),
    ],
)
def test_refusals_name_winograd_and_the_reason(w_shape, kw, why):
    x = np.ones((1, 4) + (8,) * (len(w_shape) - 2), np.float32)
    w = np.ones(w_shape, np.float32)
    with raises_naming(NotImplementedError, "winograd", why):
        fastconv.conv(x, w, algo="winograd", **kw)
    with raises_naming(NotImplementedError, "winograd", why):
        fastconv.conv_backward_data(x[:, :4, :4], w, x.shape, algo="winograd", **kw)


# 5-tap kernels: F(2x2,5x5) / F(2,5) forward and backward data, F(5x5,2x2) weight gradient.
FIVE_TAP = [
    ((2, 5, 13, 11), (7, 5, 5, 5), dict(padding=2)),
    ((1, 4, 9, 6), (6, 4, 5, 5), dict(padding=((0, 3), (4, 1)))),  # asymmetric, partial tiles
    ((2, 6, 12, 10), (4, 3, 5, 5), dict(padding=1, groups=2, mode="conv")),
    ((1, 3, 5, 5), (2, 3, 5, 5), dict(padding="full")),
    ((1, 20, 10, 37), (18, 20, 5, 5), dict(padding=2)),  # runs longer than one vector of tiles
    ((1, 8, 6, 6), (64, 8, 5, 5), dict(padding=2)),  # fewer tiles than channels: kernel blocks
    ((3, 5, 19), (7, 5, 5), dict(padding=2)),
    ((2, 4, 30), (6, 2, 5), dict(padding=((4, 0),), groups=2, mode="conv")),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", FIVE_TAP, ids=[f"f{i}" for i in range(8)])
def test_five_tap_passes(rng, x_shape, w_shape, kw, dtype):
    kw = dict(kw, groups=kw.get("groups", 1))
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    x_copy, w_copy = x.copy(), w.copy()
    assert_passes_match(fastconv, "winograd", x, w, b, kw, dtype, rng)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(w, w_copy)
    note = fastconv.explain(x_shape, w_shape, algo="winograd", **kw).reason
    assert ("F(2x2,5x5)" if len(x_shape) == 4 else "F(2,5)") in note, note


def test_five_tap_every_isa_level(isa):
    r = np.random.default_rng(4)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for dtype in (np.float32, np.float64):
            for xs, ws in (((2, 16, 11, 13), (16, 16, 5, 5)), ((2, 16, 37), (16, 16, 5))):
                x = r.uniform(-1, 1, xs).astype(dtype)
                w = r.uniform(-1, 1, ws).astype(dtype)
                y = fc.conv(x, w, padding=2, algo="winograd")
                assert_close(y, ref.conv(x, w, padding=2), dtype, 16 * 25)
                gx = fc.conv_backward_data(y, w, xs, padding=2, algo="winograd")
                assert_close(gx, ref.conv_backward_data(y, w, xs, padding=2), dtype, 16 * 25)
                gw = fc.conv_backward_weight(x, y, ws, padding=2, algo="winograd")
                want_gw = ref.conv_backward_weight(x, y, ws, padding=2)
                assert_close(gw, want_gw, dtype, 2 * 143)


def test_five_tap_error_within_stated_multiple_of_implicit_gemm():
    """F(2x2,5x5) over 64 channels (dense5x5's), float32, against the float64 oracle: forward and
    backward data within 7x implicit_gemm's error (measured 4.4-5.6x at AVX-512; 7-8x at 128
    channels, 8-13x at 256). The weight gradient's F(5x5,2x2) measured ~18x, so winograd plans
    it as implicit_gemm and says so."""
    kw = dict(padding=2)
    passes = ("forward", "backward_data")
    ratios = error_ratios((1, 64, 28, 28), (64, 64, 5, 5), 9, passes, **kw)
    for name, ratio in ratios.items():
        assert ratio <= 7, (name, ratio)
    x, w = np.zeros((1, 64, 28, 28), np.float32), np.zeros((64, 64, 5, 5), np.float32)
    e = fastconv.explain(x, w, algo="winograd", pass_="backward_weight", **kw)
    assert "implicit_gemm" in e.reason and "F(5x5,2x2)" in e.reason, e


@pytest.mark.parametrize("value", ["5", "2x3"])
def test_bad_tile_environment_is_a_value_error(fastconv_with_env, value):
    fc = fastconv_with_env(FASTCONV_WINOGRAD_TILE=value)
    x, w = np.ones((1, 2, 6, 6), np.float32), np.ones((2, 2, 3, 3), np.float32)
    with raises_naming(ValueError, "FASTCONV_WINOGRAD_TILE", f"'{value}'"):
        fc.conv(x, w, padding=1, algo="winograd")
    # Only a request for winograd is invalid: auto and the other algorithms run as ever.
    want = fastconv.conv(x, w, padding=1, algo="implicit_gemm")
    np.testing.assert_array_equal(fc.conv(x, w, padding=1, algo="implicit_gemm"), want)
    np.testing.assert_allclose(fc.conv(x, w, padding=1), want, rtol=1e-6)
    assert fc.explain(x, w, padding=1).algo != "winograd"


@pytest.mark.parametrize("pass_", ["forward", "backward_data", "backward_weight"])
def test_workspace_is_bounded_by_blocks_not_the_image(pass_):
    """Scratch = transformed kernels (or weight-gradient sums) + one tile block per thread: a
    4x larger image needs no more of it. (Pinned to 2 threads: an image with fewer blocks than
    threads needs less, e.g. 112x112 at 16 threads.)"""
    w_shape = (64, 64, 3, 3)
    threads = fastconv.get_num_threads()
    fastconv.set_num_threads(2)
    try:
        small = fastconv.explain(
            (1, 64, 112, 112), w_shape, padding=1, algo="winograd", pass_=pass_
        )
        large = fastconv.explain(
            (1, 64, 224, 224), w_shape, padding=1, algo="winograd", pass_=pass_
        )
    finally:
        fastconv.set_num_threads(threads)
    assert 0 < small.workspace_bytes == large.workspace_bytes
    assert large.workspace_bytes < 64 * 224 * 224 * 4


# Error budget: float32 winograd may be at most this multiple of implicit_gemm's float32 error
# (max |got - want| / max |want| against float64) on a ResNet-like layer. Measured over the
# ResNet-50 and VGG-16 3x3 layers, 3 seeds, forward and backward data: F(2x2) 0.8-2.0x, F(4x4)
# 6-21x, F(6x6) 25-68x (resnet50.res3 itself: 1.3x, 11x, 42x); weight gradient F(3x3,mxm) on
# res2-res4: 0.7-1.4x, 2.4-4.5x, 7-12.5x. Each budget is about 2x the worst measured.
ERROR_MULTIPLE = {2: 4.0, 4: 40.0, 6: 120.0}
WEIGHT_ERROR_MULTIPLE = {2: 4.0, 4: 10.0, 6: 30.0}


def test_error_within_stated_multiple_of_implicit_gemm(fastconv_with_env):
    r = np.random.default_rng(5)
    x = r.uniform(-1, 1, (1, 128, 28, 28)).astype(np.float32)
    w = r.uniform(-1, 1, (128, 128, 3, 3)).astype(np.float32)
    gy = r.uniform(-1, 1, (1, 128, 28, 28)).astype(np.float32)
    kw = dict(padding=1)
    # the NumPy float64 oracle (not fastconv's own reference algorithm: slow under the sanitized
    # build's -O0, .ci/sanitize)
    runs = {
        "forward": (
            lambda fc, algo: fc.conv(x, w, algo=algo, **kw),
            ref.conv(x, w, **kw),
            ERROR_MULTIPLE,
        ),
        "backward_data": (
            lambda fc, algo: fc.conv_backward_data(gy, w, x.shape, algo=algo, **kw),
            ref.conv_backward_data(gy, w, x.shape, **kw),
            ERROR_MULTIPLE,
        ),
        "backward_weight": (
            lambda fc, algo: fc.conv_backward_weight(x, gy, w.shape, algo=algo, **kw),
            ref.conv_backward_weight(x, gy, w.shape, **kw),
            WEIGHT_ERROR_MULTIPLE,
        ),
    }
    for name, (run, want, multiples) in runs.items():
        scale = float(np.abs(want).max())
        base = float(np.abs(run(fastconv, "implicit_gemm") - want).max())
        for t, multiple in multiples.items():
            tiled = fastconv_with_env(FASTCONV_WINOGRAD_TILE=str(t))
            err = float(np.abs(run(tiled, "winograd") - want).max())
            assert err <= multiple * base, (name, t, err / scale, base / scale)


def test_every_isa_level_matches_the_oracle(isa):
    """Each FASTCONV_ISA level runs its own transform kernels (one process per level and tile:
    both variables are read once per process)."""
    r = np.random.default_rng(2)
    for t in TILES:
        with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_WINOGRAD_TILE": str(t)}) as fc:
            for dtype in (np.float32, np.float64):
                for xs, ws in (((2, 16, 11, 13), (16, 16, 3, 3)), ((2, 16, 37), (16, 16, 3))):
                    key = f"{np.dtype(dtype).name}/{t}/{len(xs)}"
                    x = r.uniform(-1, 1, xs).astype(dtype)
                    w = r.uniform(-1, 1, ws).astype(dtype)
                    y = fc.conv(x, w, padding=1, algo="winograd")
                    gx = fc.conv_backward_data(y, w, xs, padding=1, algo="winograd")
                    gw = fc.conv_backward_weight(x, y, ws, padding=1, algo="winograd")
                    assert_close(y, ref.conv(x, w, padding=1), dtype, 16 * 9, err_msg=key)
                    want_gx = ref.conv_backward_data(y, w, xs, padding=1)
                    assert_close(gx, want_gx, dtype, 16 * 9, err_msg=key)
                    want_gw = ref.conv_backward_weight(x, y, ws, padding=1)
                    assert_close(gw, want_gw, dtype, 2 * 143, err_msg=key)


def test_kernel_blocks_packed_v_at_every_isa(isa):
    """Kernel blocks (fewer tiles than output channels) with up to 16 transform coordinates
    write V straight in the GEMM's packed-B layout (winograd_schedule: packed_v), which each ISA
    level's GEMM reads in place: F(2x2) and 1-D F(2,3), float32 and float64, a reduction of
    several k blocks at every level (1100 channels: the engine's k blocks are L1-sized, at most
    1024 rows) with a shorter last block, tile counts that leave the last panel partial, a
    grouped forward, forward and backward data against the oracle."""
    r = np.random.default_rng(5)
    with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_WINOGRAD_TILE": "2"}) as fc:
        for dtype in (np.float32, np.float64):
            for xs, ws, kw in (
                ((1, 1100, 7, 9), (40, 1100, 3, 3), dict(padding=1)),
                ((2, 24, 5, 6), (64, 12, 3, 3), dict(padding=(1, 2), groups=2)),
                ((1, 1100, 23), (40, 1100, 3), dict(padding=1)),
            ):
                key = f"{np.dtype(dtype).name}/{xs}"
                x = r.uniform(-1, 1, xs).astype(dtype)
                w = r.uniform(-1, 1, ws).astype(dtype)
                y = fc.conv(x, w, algo="winograd", **kw)
                reduction = ws[1] * int(np.prod(ws[2:]))
                assert_close(y, ref.conv(x, w, **kw), dtype, reduction, err_msg=key)
                gx = fc.conv_backward_data(y, w, xs, algo="winograd", **kw)
                want = ref.conv_backward_data(y, w, xs, **kw)
                assert_close(gx, want, dtype, ws[0] * int(np.prod(ws[2:])), err_msg=key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_small_blocks(fastconv_with_env, rng, tile, dtype):
    """FASTCONV_WINOGRAD_BLOCK_BYTES=1 forces the smallest blocks: many tile blocks (the weight
    gradient accumulates over them) and many kernel blocks. Both knobs are read once per
    process: the calls run in a process with both set (outputs start as NaN there)."""
    fc = fastconv_with_env(FASTCONV_WINOGRAD_TILE=str(tile), FASTCONV_WINOGRAD_BLOCK_BYTES="1")
    for x_shape, w_shape in (((2, 16, 30, 31), (16, 16, 3, 3)), ((1, 6, 5, 6), (70, 6, 3, 3))):
        x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
        want = ref.conv(x, w, padding=1)
        assert_close(fc.conv(x, w, padding=1, algo="winograd"), want, dtype, 16 * 9)
        gy = rand(rng, want.shape, dtype)
        gx = fc.conv_backward_data(gy, w, x_shape, padding=1, algo="winograd")
        assert_close(gx, ref.conv_backward_data(gy, w, x_shape, padding=1), dtype, 70 * 9)
        gw = fc.conv_backward_weight(x, gy, w_shape, padding=1, algo="winograd")
        want_gw = ref.conv_backward_weight(x, gy, w_shape, padding=1)
        assert_close(gw, want_gw, dtype, int(np.prod(want.shape[2:])) * x_shape[0])


def test_weight_gradient_path():
    """The weight gradient runs in the transform domain (scratch for its sums) where its
    products, discounted for short reductions over few tiles, are at most 2/3 of the direct
    sum's (or with tiles for a quarter of the channels), with >= 16 channels per group;
    otherwise it is planned as implicit_gemm, with implicit_gemm's scratch (none) and a note
    saying so."""

    def explain(x_shape, w_shape, algo="winograd", **kw):
        return fastconv.explain(x_shape, w_shape, algo=algo, pass_="backward_weight", **kw)

    assert explain((1, 20, 10, 21), (18, 20, 3, 3), padding=1).workspace_bytes > 0
    assert explain((1, 64, 56, 56), (64, 64, 3, 3), padding=1).workspace_bytes > 0
    # Fewer tiles than a quarter of the channels, but 3-4x fewer products over 16+ tiles.
    for x_shape in ((1, 256, 14, 14), (1, 512, 28, 28), (1, 512, 16, 16)):
        e = explain(x_shape, (x_shape[1], x_shape[1], 3, 3), padding=1)
        assert "implicit_gemm" not in e.reason and e.workspace_bytes > 0, (x_shape, e.reason)
    dcgan_g3 = fastconv.explain(
        (16, 256, 8, 8),
        (256, 128, 4, 4),
        stride=2,
        padding=1,
        op="conv_transpose",
        pass_="backward_weight",
        algo="winograd",
    )
    assert "implicit_gemm" not in dcgan_g3.reason, dcgan_g3.reason
    fallbacks = [
        ((1, 512, 7, 7), (512, 512, 3, 3), dict(padding=1)),  # 4 tiles, 512 channels
        ((1, 64, 8, 8), (64, 8, 3, 3), dict(padding=1, groups=8)),  # 8 per group
        # dcgan.g2's 4x4 images: 16 tiles for 2.56x fewer products (1.28x discounted)
        ((16, 256, 8, 8), (512, 256, 4, 4), dict(stride=2, padding=1)),
    ]
    # An empty batch: no tiles, implicit_gemm's zeros (2-D and 3-D)
    for x_shape, w_shape in (
        ((0, 16, 8, 8), (16, 16, 3, 3)),
        ((0, 16, 4, 6, 6), (16, 16, 3, 3, 3)),
    ):
        assert "implicit_gemm" in explain(x_shape, w_shape, padding=1).reason
        x = np.zeros(x_shape, np.float32)
        gy = np.zeros(x_shape[:1] + w_shape[:1] + x_shape[2:], np.float32)
        gw = fastconv.conv_backward_weight(x, gy, w_shape, padding=1, algo="winograd")
        np.testing.assert_array_equal(gw, np.zeros(w_shape, np.float32))
    for x_shape, w_shape, kw in fallbacks:
        e = explain(x_shape, w_shape, **kw)
        assert "implicit_gemm" in e.reason, e.reason
        implicit = explain(x_shape, w_shape, algo="implicit_gemm", **kw)
        assert e.workspace_bytes == implicit.workspace_bytes  # none at stride 1
        assert e.workspace_bytes == 0 or "stride" in kw
        plan = conv_problem("conv", "backward_weight", x_shape, w_shape, "float32", **kw).plan(
            "winograd"
        )
        assert (plan.algo, plan.runner) == ("winograd", "implicit_gemm")


# (x_shape, w_shape, kwargs) whose weight gradient forms its sums by chunks of output channels
# under FASTCONV_WINOGRAD_BLOCK_BYTES=1 (threshold 4 bytes; K at least twice the tiles): several
# chunks with a shorter last one, groups with true convolution, 1-D, asymmetric padding.
FOLDED = [
    ((2, 20, 8, 8), (30, 20, 3, 3), dict(padding=1)),
    ((2, 32, 7, 9), (52, 16, 3, 3), dict(padding=((2, 0), (1, 1)), groups=2, mode="conv")),
    ((3, 16, 22), (30, 16, 3), dict(padding=1)),
    ((3, 24, 5, 4), (20, 24, 3, 3), dict(padding=((0, 2), (1, 0)))),
    # 196 tiles: more than the GEMM's k block (168 at AVX-512 with a 32 KiB L1d, fewer for
    # float64), so V is packed in several k blocks of the layout
    ((1, 16, 56, 56), (400, 16, 3, 3), dict(padding=1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", FOLDED, ids=[f"f{i}" for i in range(len(FOLDED))])
def test_weight_gradient_folded_by_chunks(fastconv_with_env, rng, x_shape, w_shape, kw, dtype):
    """The sums formed and folded a chunk of output channels at a time (each thread's GEMMs into
    its scratch, V packed once) give the oracle's weight gradient, the same bits at 1, 2 and 3
    threads (the chunks change with the threads)."""
    fc = fastconv_with_env(FASTCONV_WINOGRAD_BLOCK_BYTES="1")
    x = rand(rng, x_shape, dtype)
    want_y = ref.conv(x, rand(rng, w_shape, dtype), **kw)
    gy = rand(rng, want_y.shape, dtype)
    want = ref.conv_backward_weight(x, gy, w_shape, **kw)
    got = {}
    for threads in (1, 2, 3):
        fc.set_num_threads(threads)
        e = fc.explain(x_shape, w_shape, algo="winograd", pass_="backward_weight", **kw)
        assert "output channels at a time" in e.reason, e.reason
        got[threads] = fc.conv_backward_weight(x, gy, w_shape, algo="winograd", **kw)
        assert_close(got[threads], want, dtype, int(np.prod(want_y.shape[2:])) * x_shape[0])
    np.testing.assert_array_equal(got[1], got[2])
    np.testing.assert_array_equal(got[1], got[3])


def test_weight_gradient_folds_large_sums_by_chunks(rng):
    """Default settings: sums of 8 MiB or more, at least twice V, are folded by chunks
    (ResNet-50's res4 3x3: 9.4 MiB); smaller ones (res3) whole. Both match the oracle."""
    cases = (
        ((1, 256, 14, 14), (256, 256, 3, 3), True),
        ((1, 128, 28, 28), (128, 128, 3, 3), False),
    )
    for x_shape, w_shape, folded in cases:
        e = fastconv.explain(x_shape, w_shape, padding=1, pass_="backward_weight")
        assert e.algo == "winograd" and ("at a time" in e.reason) == folded, e.reason
        x = rand(rng, x_shape, np.float32)
        gy = rand(rng, x_shape[:1] + w_shape[:1] + x_shape[2:], np.float32)
        got = fastconv.conv_backward_weight(x, gy, w_shape, padding=1, algo="winograd")
        want = ref.conv_backward_weight(x, gy, w_shape, padding=1)
        assert_close(got, want, np.float32, int(np.prod(x_shape[2:])))


def test_auto_runs_five_tap_layers_on_winograd():
    """auto's rule (_cpu_rule._five_tap_winograd): dense 2-D 5x5 at stride 1 with 64-128
    channels (48-128 at AVX-512, for the forward, and for backward data on rows of up to 40) on
    rows of 28+, forward and backward data; not more channels (the error), fewer, small images,
    the weight gradient, nor dilated kernels."""

    def algo(x_shape, w_shape, pass_="forward", **kw):
        return fastconv.explain(x_shape, w_shape, pass_=pass_, **kw).algo

    avx512 = fastconv.info()["isa_active"] == "avx512"

    for pass_ in ("forward", "backward_data"):
        assert algo((1, 64, 56, 56), (64, 64, 5, 5), pass_, padding=2) == "winograd"
        assert algo((1, 128, 28, 28), (128, 128, 5, 5), pass_, padding=2) == "winograd"
        assert algo((1, 256, 28, 28), (256, 256, 5, 5), pass_, padding=2) != "winograd"
        assert algo((1, 64, 56, 56), (256, 64, 5, 5), pass_, padding=2) != "winograd"
        assert algo((1, 256, 56, 56), (64, 256, 5, 5), pass_, padding=2) != "winograd"
        assert algo((1, 48, 35, 35), (64, 48, 5, 5), pass_, padding=2) == "winograd"
        wide = algo((1, 48, 56, 56), (64, 48, 5, 5), pass_, padding=2)
        assert (wide == "winograd") == (avx512 or pass_ == "forward"), wide
        assert algo((1, 32, 56, 56), (32, 32, 5, 5), pass_, padding=2) != "winograd"
        assert algo((8, 64, 14, 14), (64, 64, 5, 5), pass_, padding=2) != "winograd"
        assert algo((1, 64, 56, 56), (64, 64, 5, 5), pass_, padding=4, dilation=2) != "winograd"
    assert algo((1, 64, 56, 56), (64, 64, 5, 5), "backward_weight", padding=2) != "winograd"
    e = fastconv.explain((1, 64, 56, 56), (64, 64, 5, 5), padding=2)
    assert "F(2x2,5x5)" in e.reason, e


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_blocks_split_evenly(fastconv_with_env, rng, restore_threads, dtype):
    """512 -> 512 channels over 64 tiles run in kernel blocks, 170 output channels from the
    cache budget; on 2 threads their count is a multiple of the threads and their sizes even:
    4 x 128, not 170 + 170 + 170 + 2 (the plan of a budget that gives 128-channel blocks
    itself), with the same results as the oracle."""
    x_shape, w_shape = (1, 512, 16, 16), (512, 512, 3, 3)
    budget = str(128 * 16 * (512 + 64) * 4)  # coords x (C + 64 tiles) x 4 bytes per channel
    even = fastconv_with_env(FASTCONV_NUM_THREADS="2", FASTCONV_WINOGRAD_BLOCK_BYTES=budget)
    fastconv.set_num_threads(2)
    for pass_ in ("forward", "backward_data"):
        kw = dict(padding=1, algo="winograd", dtype="float32", pass_=pass_)
        got = fastconv.explain(x_shape, w_shape, **kw).workspace_bytes
        assert got == even.explain(x_shape, w_shape, **kw).workspace_bytes, pass_
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    want = ref.conv(x, w, padding=1)
    assert_close(fastconv.conv(x, w, padding=1, algo="winograd"), want, dtype, 512 * 9)
    gy = rand(rng, want.shape, dtype)
    gx = fastconv.conv_backward_data(gy, w, x_shape, padding=1, algo="winograd")
    assert_close(gx, ref.conv_backward_data(gy, w, x_shape, padding=1), dtype, 512 * 9)


def test_one_tile_block_only_near_the_cache_budget(restore_threads):
    """With many threads, a larger image keeps even tile blocks: one block of all 1600 F(2x2)
    tiles (256 ch 80x80) would take ~55 MB of workspace at 16 threads; even blocks keep it
    below the 2-thread plan's."""
    shapes = ((1, 256, 80, 80), (256, 256, 3, 3))

    def workspace(threads):
        fastconv.set_num_threads(threads)
        return fastconv.explain(*shapes, padding=1, algo="winograd").workspace_bytes

    assert workspace(16) <= workspace(2)


RUN_ROWS = [
    ((1, 6, 4, 4), (5, 6, 5, 5), dict(padding=2)),  # 2 tiles a row: 8 rows' pieces per run
    ((2, 6, 3, 3), (5, 6, 5, 5), dict(padding=2)),  # rows of exactly (r - 1) / m_w tiles
    ((1, 6, 2, 2), (5, 6, 5, 5), dict(padding=2)),  # 1 tile a row: too short, a run per row
    ((2, 5, 9, 33), (7, 5, 3, 3), dict(padding=1)),  # 17 tiles a row: pieces of 1 and 15
    ((1, 5, 14, 14), (4, 5, 3, 3), dict(padding=((0, 2), (2, 1)), mode="conv")),
    ((1, 40, 35, 35), (8, 40, 5, 5), dict(padding=2)),  # Inception's 35x35, 18 tiles a row
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", RUN_ROWS, ids=[f"r{i}" for i in range(6)])
def test_runs_over_tile_rows(fastconv_with_env, rng, x_shape, w_shape, kw, dtype):
    """The transforms' runs go on over the next tile rows where a row has fewer tiles than a
    run has lanes (winograd.cc: wrap_runs): pieces of rows gathered through two buffers, the
    output's rows stored piece by piece. Forward, backward data and the weight gradient's input
    side, with small tile blocks too (runs end at block edges)."""
    for env in ({}, {"FASTCONV_WINOGRAD_BLOCK_BYTES": "1"}):
        x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
        b = rand(rng, (w_shape[0],), dtype)
        assert_passes_match(fastconv_with_env(**env), "winograd", x, w, b, kw, dtype, rng)


# Batches of small images, whose tiles fill few lanes of a run each: runs go on over the next
# images (winograd_stages.h: cross_images), the pieces of each image's tile rows read from its own
# plane. (x_shape, w_shape, kwargs, tile): 4, 9 and 1 tiles an image, partial tiles, per-side
# padding, true convolution, groups, 5-tap kernels, kernel blocks (fewer tiles than channels).
RUN_IMAGES = [
    ((5, 6, 8, 8), (7, 6, 3, 3), dict(padding=1), 4),  # 4 tiles an image: 16-lane runs of 4
    ((4, 5, 7, 5), (6, 5, 3, 3), dict(padding=1), 4),  # partial tiles in both dims
    ((3, 5, 6, 6), (4, 5, 3, 3), dict(padding=((0, 2), (1, 1)), mode="conv"), 2),
    ((9, 4, 2, 2), (5, 4, 3, 3), dict(padding=1), 2),  # one tile an image
    ((6, 8, 6, 6), (8, 4, 3, 3), dict(padding=1, groups=2), 2),
    ((4, 6, 5, 5), (5, 6, 5, 5), dict(padding=2), 2),  # F(2x2,5x5): 9 tiles an image
    ((3, 8, 4, 4), (64, 8, 3, 3), dict(padding=1), 2),  # kernel blocks
    ((17, 3, 8, 8), (4, 3, 3, 3), dict(padding=0), 2),  # 9 tiles, unpadded
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape,w_shape,kw,tile", RUN_IMAGES, ids=[f"i{i}" for i in range(len(RUN_IMAGES))]
)
def test_runs_over_images(fastconv_with_env, rng, x_shape, w_shape, kw, tile, dtype):
    """The transforms' runs go on over the batch's images where an image's tiles are not a
    whole number of runs: input and output, whole blocks and the smallest ones (runs end at
    block edges), against the oracle (few channels: the weight gradient is implicit GEMM's here;
    its grad_y tiles in the next test)."""
    for env in ({}, {"FASTCONV_WINOGRAD_BLOCK_BYTES": "1"}):
        fc = fastconv_with_env(FASTCONV_WINOGRAD_TILE=str(tile), **env)
        x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
        b = rand(rng, (w_shape[0],), dtype)
        assert_passes_match(fc, "winograd", x, w, b, kw, dtype, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape,tile",
    [((3, 16, 8, 8), 4), ((5, 16, 7, 5), 4), ((9, 16, 2, 2), 2)],
    ids=["8x8", "7x5", "2x2"],
)
def test_weight_gradient_runs_over_images(fastconv_with_env, rng, x_shape, tile, dtype):
    """16 channels each side: the weight gradient runs in the transform domain (not implicit
    GEMM's fallback), its grad_y tiles in runs over images, against the oracle."""
    fc = fastconv_with_env(FASTCONV_WINOGRAD_TILE=str(tile))
    w_shape, kw = (16, 16, 3, 3), dict(padding=1)
    e = fc.explain(x_shape, w_shape, algo="winograd", pass_="backward_weight", **kw)
    assert "implicit_gemm" not in e.reason, str(e)
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    assert_passes_match(fc, "winograd", x, w, None, kw, dtype, rng)


def test_runs_over_images_at_every_isa_level(isa):
    """Each ISA level's transforms (their own masked loads and stores) on runs over images."""
    r = np.random.default_rng(7)
    for t, cases in (("4", RUN_IMAGES[:2]), ("2", RUN_IMAGES[3:6])):
        with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_WINOGRAD_TILE": t}) as fc:
            for dtype in (np.float32, np.float64):
                for xs, ws, kw, _ in cases:
                    x, w = r.uniform(-1, 1, xs).astype(dtype), r.uniform(-1, 1, ws).astype(dtype)
                    assert_passes_match(fc, "winograd", x, w, None, kw, dtype, r)
