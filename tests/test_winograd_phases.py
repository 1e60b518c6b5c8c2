"""Winograd on strided layers: the stride phases stacked as channels make a stride-1 convolution
with ceil(kernel / stride) taps per dim (2 or 3), F(mxm,2x2) / F(mxm,3x3) on it, batches of
small images folded side by side; every pass vs the float64 oracle."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import FastconvProcess, assert_close, error_ratios, isa_top, raises_naming, rand

# (x_shape, w_shape, kwargs): kernels twice the stride (DCGAN's 4x4 / 2), kernels that are not a
# multiple of it (3x3 / 2, 5x5 / 2 and AlexNet's 11x11 / 4: zero taps in the stacked kernel),
# 1-D, groups, true convolution, asymmetric and zero padding, unequal strides, one image
# (unfolded) and batches (folded), a batch of larger images (unfolded), an input with positions
# no output reads (its gradient there is zero), batch 0.
GEOMETRIES = [
    ((3, 6, 8, 8), (5, 6, 4, 4), dict(stride=2, padding=1)),
    ((1, 6, 8, 8), (5, 6, 4, 4), dict(stride=2, padding=1)),
    ((2, 4, 9, 11), (6, 4, 3, 3), dict(stride=2, padding=1)),
    ((2, 3, 13, 12), (4, 3, 5, 5), dict(stride=2, padding=((2, 1), (0, 2)))),
    ((2, 3, 23, 23), (5, 3, 11, 11), dict(stride=4, padding=2)),
    ((4, 6, 7, 9), (4, 3, 4, 4), dict(stride=2, padding=((0, 1), (2, 0)), groups=2, mode="conv")),
    ((2, 4, 10, 9), (3, 4, 4, 6), dict(stride=(2, 3), padding=1)),
    ((2, 5, 40, 38), (3, 5, 4, 4), dict(stride=2, padding=1)),
    ((2, 4, 12, 12), (3, 4, 4, 4), dict(stride=2, padding=0)),
    ((2, 4, 11, 10), (3, 4, 4, 4), dict(stride=2, padding=1)),
    ((3, 6, 17), (5, 6, 4), dict(stride=2, padding=1)),
    ((1, 4, 29), (6, 2, 6), dict(stride=2, padding=((1, 2),), groups=2, mode="conv")),
    ((2, 3, 50), (2, 3, 9), dict(stride=3, padding=0)),
    ((0, 4, 8, 8), (4, 4, 4, 4), dict(stride=2, padding=1)),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


def check_passes(fc, rng, x_shape, w_shape, kw, dtype):
    kw = dict(kw, groups=kw.get("groups", 1))
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    x_copy, w_copy = x.copy(), w.copy()
    want = ref.conv(x, w, b, **kw)
    taps = int(np.prod(w_shape[1:]))
    assert_close(fc.conv(x, w, b, algo="winograd", **kw), want, dtype, taps)
    gy = rand(rng, want.shape, dtype)
    gx = fc.conv_backward_data(gy, w, x_shape, algo="winograd", **kw)
    want_gx = ref.conv_backward_data(gy, w, x_shape, **kw)
    assert_close(gx, want_gx, dtype, w_shape[0] // kw["groups"] * int(np.prod(w_shape[2:])))
    gw = fc.conv_backward_weight(x, gy, w_shape, algo="winograd", **kw)
    out_count = int(np.prod(want.shape)) // max(want.shape[1], 1)
    want_gw = ref.conv_backward_weight(x, gy, w_shape, **kw)
    assert_close(gw, want_gw, dtype, max(out_count, 1))
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(w, w_copy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_strided_passes(rng, x_shape, w_shape, kw, dtype):
    check_passes(fastconv, rng, x_shape, w_shape, kw, dtype)


@pytest.mark.parametrize("tile", ["2", "3", "4", "4x3", "3x4"])
def test_every_two_tap_tile(fastconv_with_env, rng, tile):
    """FASTCONV_WINOGRAD_TILE forces F(2x2,2x2), F(3x3,2x2), F(4x4,2x2) and the rectangular
    F(4x3,2x2) and F(3x4,2x2) (and the weight gradient's F(2x2,hxw)); 6 has no 2-tap tile and
    keeps the default, as do 1-D layers under a rectangular one."""
    fc = fastconv_with_env(FASTCONV_WINOGRAD_TILE=tile)
    for x_shape, w_shape, kw in GEOMETRIES[:2] + GEOMETRIES[7:8] + GEOMETRIES[10:11]:
        for dtype in (np.float32, np.float64):
            check_passes(fc, rng, x_shape, w_shape, kw, dtype)
    assert_forced(fc, tile)
    check_passes(fc, rng, *WEIGHT_IN_DOMAIN, np.float32)
    if "x" in tile:  # 1-D has no rectangular tile: the default's F(m,2)
        args = ((2, 4, 40), (6, 4, 4))
        kw = dict(stride=2, padding=1, algo="winograd")
        assert fc.explain(*args, **kw).reason == fastconv.explain(*args, **kw).reason


# 2x2 kernels at stride 1 (2-D, and 3-D over their depth taps) over more than 64 summed
# channels, where F(4x3,2x2) takes the fewest products: 8x8 outputs, 120 against 144.
RECTANGULAR = [
    ((1, 72, 9, 9), (16, 72, 2, 2), {}),
    ((1, 24, 4, 9, 9), (8, 24, 3, 2, 2), dict(padding=(1, 0, 0))),
]
# A strided layer whose weight gradient stays in the transform domain (16+ channels a side,
# enough tiles), so a forced tile runs all three passes on it.
WEIGHT_IN_DOMAIN = ((16, 40, 16, 16), (24, 40, 4, 4), dict(stride=2, padding=1))


def assert_forced(fc, tile):
    """fc (FASTCONV_WINOGRAD_TILE=tile) names the forced tile on WEIGHT_IN_DOMAIN's forward and
    weight gradient."""
    shape = tile if "x" in tile else f"{tile}x{tile}"
    x_shape, w_shape, kw = WEIGHT_IN_DOMAIN
    for pass_, name in (("forward", f"F({shape},2x2)"), ("backward_weight", f"F(2x2,{shape})")):
        e = fc.explain(x_shape, w_shape, algo="winograd", pass_=pass_, **kw)
        assert name in e.reason, (pass_, e.reason)


def test_rectangular_tiles_on_every_isa_level(isa):
    """F(4x3,2x2) and F(3x4,2x2) (forced) at each ISA level: every pass, float32 and float64,
    folded and not, grouped, dilated, 2-D and 3-D, the weight gradient in the transform domain,
    against the oracle."""
    r = np.random.default_rng(5)
    dilated = ((1, 20, 12, 11), (8, 20, 2, 2), dict(dilation=2, padding=2))
    for tile in ("4x3", "3x4"):
        with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_WINOGRAD_TILE": tile}) as fc:
            assert_forced(fc, tile)
            cases = GEOMETRIES[:2] + GEOMETRIES[5:6] + GEOMETRIES[10:11] + RECTANGULAR
            cases += [WEIGHT_IN_DOMAIN, dilated]
            for x_shape, w_shape, kw in cases:
                for dtype in (np.float32, np.float64):
                    check_passes(fc, r, x_shape, w_shape, kw, dtype)


@pytest.mark.parametrize("x_shape,w_shape,kw", RECTANGULAR, ids=["2d", "3d"])
def test_rectangular_tile_by_default(rng, x_shape, w_shape, kw):
    """The default tile of a 2-tap kernel over 64+ summed channels whose 8x8 outputs F(4x3)
    covers with fewer products than any square tile allowed (F(4x4) is not, past 64 channels);
    every pass matches the oracle."""
    e = fastconv.explain(x_shape, w_shape, algo="winograd", **kw)
    assert "F(4x3,2x2)" in e.reason, e.reason
    for dtype in (np.float32, np.float64):
        check_passes(fastconv, rng, x_shape, w_shape, kw, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tile_blocks_split_unevenly_run_as_one(fastconv_with_env, rng, restore_threads, dtype):
    """288 folded F(2x2,2x2) output tiles with 512 stacked channels over 2 threads: float32's
    even blocks of whole vectors (16 tiles) would be 80 + 80 + 80 + 48, so the schedule runs one
    block split stage by stage (the workspace of a block budget large enough for all tiles).
    float64's vectors hold 8 tiles, which that geometry's rows of 4 tiles fill by half, so its
    forward is not folded; 27 images of 6x6 outputs are (3 tiles a row, 282 folded tiles), and
    their even blocks of 72 are balanced and stay. F(2x2,2x2) forced (the default takes F(3x3)
    where it ties with F(2x2) and both fold). Every pass still matches the oracle."""
    kw = dict(stride=2, padding=1)
    x_shape = (16, 128, 16, 16) if dtype == np.float32 else (27, 128, 12, 12)
    w_shape, env = (16, 128, 4, 4), {"FASTCONV_WINOGRAD_TILE": "2"}
    fc = fastconv_with_env(**env)

    def workspace(f):
        return f.explain(x_shape, w_shape, algo="winograd", dtype=dtype, **kw).workspace_bytes

    note = fc.explain(x_shape, w_shape, algo="winograd", dtype=dtype, **kw).reason
    assert "F(2x2,2x2)" in note and "side by side" in note, note
    one_block = fastconv_with_env(
        FASTCONV_NUM_THREADS="2", FASTCONV_WINOGRAD_BLOCK_BYTES="64000000", **env
    )
    fc.set_num_threads(2)
    if dtype == np.float32:
        assert workspace(fc) == workspace(one_block)
    else:
        assert workspace(fc) < workspace(one_block)
    fc.set_num_threads(1)  # one thread: blocks from the cache budget, a smaller workspace
    assert workspace(fc) < workspace(one_block)
    fc.set_num_threads(2)
    check_passes(fc, rng, x_shape, w_shape, kw, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_upsampling(rng, dtype):
    """DCGAN-style 4x4 / 2 transposed convolutions, with output_padding (input positions of the
    conv that no output reads) and a bias."""
    for x_shape, w_shape, kw in (
        ((3, 8, 5, 5), (8, 6, 4, 4), dict(stride=2, padding=1)),
        ((2, 8, 4, 6), (8, 3, 4, 4), dict(stride=2, padding=1, output_padding=1)),
        ((1, 6, 9), (6, 4, 4), dict(stride=2, padding=0, output_padding=1)),
    ):
        x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
        b = rand(rng, (w_shape[1],), dtype)
        want = ref.conv_transpose(x, w, b, **kw)
        assert_close(fastconv.conv_transpose(x, w, b, algo="winograd", **kw), want, dtype, 64)
        gy = rand(rng, want.shape, dtype)
        gx = fastconv.conv_transpose_backward_data(gy, w, algo="winograd", **kw)
        assert_close(gx, ref.conv_transpose_backward_data(gy, w, **kw), dtype, 128)
        gw = fastconv.conv_transpose_backward_weight(x, gy, w_shape, algo="winograd", **kw)
        want_gw = ref.conv_transpose_backward_weight(x, gy, w_shape, **kw)
        assert_close(gw, want_gw, dtype, 256)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_blocks_move_back_as_they_finish(
    poisoned_outputs, rng, restore_threads, threads, dtype
):
    """Backward data (a transposed forward) on kernel blocks, many stacked channels over few
    output tiles: each block's stored channels (all P phases) are moved back into grad_x right
    after its output transform, by the thread that ran it (2 threads, whole blocks) or split over
    the threads (1 thread's stage-by-stage split, also taken by one block); groups and 3x3 / 2
    (zero taps) too. Outputs start as NaN, so a channel a block leaves
    unmoved fails."""
    fastconv.set_num_threads(threads)
    for x_shape, w_shape, kw in (
        ((2, 48, 6, 6), (48, 40, 4, 4), dict(stride=2, padding=1)),
        ((1, 64, 5, 7), (64, 24, 4, 4), dict(stride=2, padding=1, groups=2)),
        ((2, 40, 5, 5), (40, 36, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ):
        note = fastconv.explain(
            x_shape, w_shape, op="conv_transpose", algo="winograd", dtype=dtype, **kw
        ).reason
        assert "stride phases" in note, note
        x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
        want = ref.conv_transpose(x, w, None, **kw)
        got = fastconv.conv_transpose(x, w, algo="winograd", **kw)
        assert_close(got, want, dtype, w_shape[0] * 4)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tile_blocks_move_back_window_by_window(
    poisoned_outputs, rng, restore_threads, threads, dtype
):
    """Backward data on tile blocks (more output tiles than stacked channels): each stored
    channel's P phases go from the output transform through a window on the stack straight into
    grad_x, run of tiles by run; no stacked gradient is kept (a smaller workspace). Folded
    batches (a window spanning images), one large image, odd and even padding, padding past one
    phase, stride 3 down the columns, 1-D, groups and true convolution, and input positions no
    output reads (zeroed apart: they are in no window). Outputs start as NaN."""
    fastconv.set_num_threads(threads)
    for x_shape, w_shape, kw in (
        ((6, 4, 20, 22), (8, 4, 4, 4), dict(stride=2, padding=1)),
        ((1, 3, 70, 65), (5, 3, 4, 4), dict(stride=2, padding=((0, 1), (2, 3)))),
        ((3, 4, 27, 26), (4, 4, 3, 3), dict(stride=2, padding=0)),
        ((2, 3, 61, 59), (4, 3, 6, 4), dict(stride=(3, 2), padding=1)),
        ((4, 6, 23, 21), (4, 3, 4, 4), dict(stride=2, padding=(2, 0), groups=2, mode="conv")),
        ((5, 4, 301), (6, 4, 4), dict(stride=2, padding=1)),
        ((2, 4, 25, 24), (6, 4, 4, 4), dict(stride=2, padding=0)),
    ):
        e = fastconv.explain(
            x_shape, w_shape, algo="winograd", pass_="backward_data", dtype=dtype, **kw
        )
        assert "window by window" in e.reason, (x_shape, e.reason)
        kw = dict(kw, groups=kw.get("groups", 1))
        w = rand(rng, w_shape, dtype)
        out = ref.conv(np.zeros(x_shape), np.zeros(w_shape), None, **kw).shape
        gy = rand(rng, out, dtype)
        gy_copy = gy.copy()
        gx = fastconv.conv_backward_data(gy, w, x_shape, algo="winograd", **kw)
        want = ref.conv_backward_data(gy, w, x_shape, **kw)
        assert_close(gx, want, dtype, w_shape[0] // kw["groups"] * int(np.prod(w_shape[2:])))
        np.testing.assert_array_equal(gy, gy_copy)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_folded_forward_moves_out_window_by_window(
    poisoned_outputs, rng, restore_threads, threads, dtype
):
    """A folded forward's output (the batch's images side by side in one wide plane) goes from
    the output transform through a window on the stack into each image's columns of y: a bias,
    1-D, groups, kernel blocks (few tiles, many channels), and a wide plane of 300 images longer
    than one window (3000 columns: a window's edge falls inside an image, at either dtype).
    Outputs start as NaN, so a column or row a window leaves unwritten fails."""
    fastconv.set_num_threads(threads)
    for x_shape, w_shape, kw in (
        ((5, 4, 10, 12), (6, 4, 4, 4), dict(stride=2, padding=1)),
        ((300, 2, 6, 18), (3, 2, 4, 4), dict(stride=2, padding=1)),
        ((7, 3, 22), (4, 3, 4), dict(stride=2, padding=1)),
        ((4, 6, 9, 9), (4, 3, 4, 4), dict(stride=2, padding=(1, 2), groups=2, mode="conv")),
        ((3, 40, 6, 6), (48, 40, 4, 4), dict(stride=2, padding=1)),
    ):
        e = fastconv.explain(x_shape, w_shape, algo="winograd", dtype=dtype, **kw)
        assert "side by side" in e.reason, (x_shape, e.reason)
        kw = dict(kw, groups=kw.get("groups", 1))
        x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
        b = rand(rng, (w_shape[0],), dtype)
        got = fastconv.conv(x, w, b, algo="winograd", **kw)
        want = ref.conv(x, w, b, **kw)
        assert_close(got, want, dtype, int(np.prod(w_shape[1:])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_stacked_window_by_window(poisoned_outputs, rng, restore_threads, dtype):
    """Forward and weight gradient stack each stored channel's P phases of a run of tiles into a
    window on the stack, which the input transform reads; the stacked input is never written
    whole. Tile blocks and kernel blocks (few tiles, many output channels: V packed for the
    GEMMs), folded and not (a batch of rows of half a run), stride 3 down the columns, 1-D,
    groups; 1 and 2 threads. The weight gradient stays in the transform domain (and so on
    windows) from 16 channels per group each side: the last two geometries. Stride 4 along rows
    (16 phases of alexnet.conv1, which would move element by element) stacks ahead."""
    geometries = [
        ((6, 4, 20, 22), (8, 4, 4, 4), dict(stride=2, padding=1)),
        # dcgan.g4's conv forward in small: rows of 8 F(2x2) tiles, not folded (float32).
        ((4, 32, 32, 32), (16, 32, 4, 4), dict(stride=2, padding=1)),
        ((2, 8, 6, 7), (40, 8, 4, 4), dict(stride=2, padding=1)),
        ((1, 3, 70, 65), (5, 3, 4, 4), dict(stride=2, padding=((0, 1), (2, 3)))),
        ((2, 3, 61, 59), (4, 3, 6, 4), dict(stride=(3, 2), padding=1)),
        ((4, 6, 23, 21), (4, 3, 4, 4), dict(stride=2, padding=(2, 0), groups=2, mode="conv")),
        ((5, 4, 301), (6, 4, 4), dict(stride=2, padding=1)),
        ((2, 8, 20, 22), (16, 8, 4, 4), dict(stride=2, padding=1)),
        ((4, 16, 23, 21), (32, 8, 4, 4), dict(stride=2, padding=(2, 1), groups=2, mode="conv")),
    ]
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        for i, (x_shape, w_shape, kw) in enumerate(geometries):
            passes = ("forward", "backward_weight") if i >= len(geometries) - 2 else ("forward",)
            for pass_ in passes:
                e = fastconv.explain(
                    x_shape, w_shape, algo="winograd", pass_=pass_, dtype=dtype, **kw
                )
                assert "stacked window by window" in e.reason, (x_shape, pass_, e.reason)
                if i == 1:  # 8 tiles a row: half a float32 run, a whole float64 one
                    assert "side by side" not in e.reason, e.reason
            check_passes(fastconv, rng, x_shape, w_shape, kw, dtype)
    for pass_ in ("forward", "backward_data", "backward_weight"):
        e = fastconv.explain(
            (1, 3, 224, 224), (64, 3, 11, 11), stride=4, padding=2, pass_=pass_, dtype=dtype
        )
        assert "stride phases" in e.reason and "window" not in e.reason, e.reason


def test_every_isa_level_matches_the_oracle(isa):
    r = np.random.default_rng(3)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, kw in GEOMETRIES[:1] + GEOMETRIES[4:5] + GEOMETRIES[10:11]:
            for dtype in (np.float32, np.float64):
                check_passes(fc, r, x_shape, w_shape, kw, dtype)


def test_float32_error_close_to_implicit_gemm():
    """Over 4 x 128 stacked channels, against the float64 oracle, float32 error within a bound
    of implicit_gemm's: F(2x2,2x2) and F(3x3,2x2) 3x (measured 1.0-1.6x), F(4x3,2x2) 10x
    (measured 3.5-6.2x over 256-2048 summed channels), the weight gradient 3x.
    8x8 outputs run F(4x3,2x2) forward (120 products an image against F(3x3)'s 144) and
    F(3x3,2x2) backward data (9x9 outputs: 144 against F(4x3)'s 180); 16x16 outputs
    F(2x2,2x2) forward, unfolded (dcgan.g4's: F(4x3) would fold it)."""
    kw = dict(stride=2, padding=1)
    cases = (
        ((4, 128, 16, 16), "forward", "F(4x3,2x2)", 10),
        ((4, 128, 16, 16), "backward_data", "F(3x3,2x2)", 3),
        ((4, 128, 16, 16), "backward_weight", "implicit_gemm", 3),  # too few tiles
        ((4, 128, 32, 32), "forward", "F(2x2,2x2)", 3),
    )
    for x_shape, pass_, tile, bound in cases:
        e = fastconv.explain(x_shape, (96, 128, 4, 4), algo="winograd", pass_=pass_, **kw)
        assert tile in e.reason, (pass_, e.reason)
        ratio = error_ratios(x_shape, (96, 128, 4, 4), 7, (pass_,), **kw)[pass_]
        assert ratio <= bound, (x_shape, pass_, ratio)


def test_explain_says_phases_and_folding():
    def note(x_shape, w_shape, pass_="forward", **kw):
        e = fastconv.explain(x_shape, w_shape, algo="winograd", pass_=pass_, **kw)
        return e.reason

    folded = note((16, 128, 16, 16), (64, 128, 4, 4), stride=2, padding=1)
    assert "over the 4 stride phases stacked as channels" in folded
    assert "side by side" in folded
    # Tile rows that fill half a run (8 of 16 float32 lanes, dcgan.g4's conv forward) fold in
    # the other passes only.
    g4 = ((16, 128, 32, 32), (64, 128, 4, 4))
    assert "side by side" not in note(*g4, stride=2, padding=1)
    for pass_ in ("backward_data", "backward_weight"):
        assert "side by side" in note(*g4, pass_, stride=2, padding=1), pass_
    assert "F(2x2,2x2)" in note(*g4, stride=2, padding=1)
    # dcgan.g3's conv forward: 8x8 outputs per image, where F(4x3) takes 120 products (2 x 3
    # tiles), F(2x2) and F(3x3) 144; folded in float32, as is the best square F(3x3) (3 tiles a
    # row; F(2x2) 4.5 with the seams wins no tie). One image folds nothing: F(4x3) too.
    g3 = ((16, 128, 16, 16), (256, 128, 4, 4))
    g3_32 = note(*g3, stride=2, padding=1)
    assert "F(4x3,2x2)" in g3_32 and "side by side" in g3_32, g3_32
    assert "F(4x3,2x2)" in note((1,) + g3[0][1:], g3[1], stride=2, padding=1)
    # float64 runs of 8 lanes: 4 F(2x2) tiles a row fill half of one, so the forward does not
    # fold, the tie keeps F(2x2), and F(4x3)'s 3 tiles a row would fold it: F(2x2).
    g3_64 = note(*g3, stride=2, padding=1, dtype="float64")
    assert "F(2x2,2x2)" in g3_64 and "side by side" not in g3_64, g3_64
    # Backward data (12x12 outputs: 7x7 per phase): F(2x2) and F(3x3) take 144 products, a tie
    # that keeps the first square, and F(4x3) 120, all folding: F(4x3).
    bd = note((2, 32, 12, 12), (128, 32, 4, 4), "backward_data", stride=2, padding=1)
    assert "F(4x3,2x2)" in bd and "side by side" in bd, bd
    bd = note((2, 32, 10, 10), (128, 32, 4, 4), "backward_data", stride=2, padding=1)
    assert "F(3x3,2x2)" in bd, bd  # 6x6 per phase: F(2x2) 81, F(3x3) 64, F(4x3) 80
    bd = note((2, 32, 6, 6), (128, 32, 4, 4), "backward_data", stride=2, padding=1)
    assert "F(2x2,2x2)" in bd, bd  # 4x4 per phase: F(2x2) 36, F(3x3) 64, F(4x3) 40
    one = note((1, 128, 32, 32), (64, 128, 4, 4), stride=2, padding=1)
    assert "stride phases" in one and "side by side" not in one
    assert "F(3x3,3x3)" not in note((1, 3, 64, 64), (8, 3, 11, 11), stride=4, padding=2)
    assert "16 stride phases" in note((1, 3, 64, 64), (8, 3, 11, 11), stride=4, padding=2)


def test_auto_runs_upsampling_layers_on_phases():
    """auto's rule (_cpu_phases._upsampling_winograd): a kernel twice the stride runs its weight
    gradient, a batch's forward with small enough transformed kernels and any forward of 256+
    output tiles on Winograd; not the 3x3 / 2 layers (no fewer products), nor one small image's
    forward."""

    def algo(x_shape, w_shape, pass_, **kw):
        return fastconv.explain(x_shape, w_shape, pass_=pass_, **kw).algo

    g4 = ((16, 64, 32, 32), (128, 64, 4, 4))
    assert algo(*g4, "backward_weight", stride=2, padding=1) == "winograd"
    assert algo((1, 64, 32, 32), (128, 64, 4, 4), "forward", stride=2, padding=1) != "winograd"
    # Batches with output rows of at most 14 positions under 256 output channels: Winograd's
    # forward below AVX-512 and where AVX-512 runs on 256-bit units (AMD's Zen 4), not on
    # 512-bit units (8x8 outputs); dcgan.g4's backward data (16x16 outputs), 256 channels
    # (dcgan.g3's, 8x8) and 32x32 outputs on Winograd everywhere.
    small = ((16, 128, 16, 16), (128, 128, 4, 4))
    for isa, units in (("avx2", "512"), ("avx512", "512"), ("avx512", "256")):
        if isa == "avx512" and isa_top() != "avx512":
            continue
        with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_AVX512_UNITS": units}) as fc:
            want = "implicit_gemm" if (isa, units) == ("avx512", "512") else "winograd"
            got = fc.explain(*small, stride=2, padding=1).algo
            assert got == want, (isa, got)
            got = fc.explain(*g4, stride=2, padding=1).algo
            assert got == "winograd", (isa, got)
            g3 = fc.explain((16, 128, 16, 16), (256, 128, 4, 4), stride=2, padding=1)
            assert g3.algo == "winograd", (isa, str(g3))
            wide = fc.explain((4, 64, 64, 64), (128, 64, 4, 4), stride=2, padding=1)
            assert wide.algo == "winograd", (isa, str(wide))
    # Larger transformed kernels (9 x 512 x 256 x 4 bytes) from 256 F(2x2) output tiles on:
    # one 64x64 image's, not 128 tiles of 8 images.
    assert algo((1, 128, 64, 64), (256, 128, 4, 4), "forward", stride=2, padding=1) == "winograd"
    assert algo((8, 128, 16, 16), (256, 128, 4, 4), "forward", stride=2, padding=1) != "winograd"
    assert algo((4, 128, 16, 16), (256, 128, 4, 4), "forward", stride=2, padding=1) != "winograd"
    # 256+ tiles but transformed kernels past 32 MiB (9 x 4096 x 1024 x 4 bytes): not measured
    assert algo((1, 1024, 64, 64), (1024, 1024, 4, 4), "forward", stride=2, padding=1) != (
        "winograd"
    )
    # (3x3 / 2 over 64+ channels runs Winograd at stride 2 on 256-bit AVX-512 units: not the
    # stacked phases)
    e = fastconv.explain(
        (1, 64, 56, 56), (64, 64, 3, 3), pass_="backward_weight", stride=2, padding=1
    )
    assert e.algo != "winograd" or "F(2x2,3x3) at stride 2" in e.reason, str(e)
    # The transposed layer's forward is the conv's backward data: on Winograd where the stacked
    # gradient (one position longer per dim) still takes at most 0.57 of the direct products.
    tr = fastconv.explain((16, 128, 16, 16), (128, 64, 4, 4), op="conv_transpose", stride=2)
    assert tr.algo == "winograd", str(tr)  # 16x16 phase planes: 0.56 of the products
    tr = fastconv.explain((16, 64, 32, 32), (64, 32, 4, 4), op="conv_transpose", stride=2)
    assert tr.algo == "winograd"  # 32x32: 0.47
    tr = fastconv.explain((1, 64, 32, 32), (64, 32, 4, 4), op="conv_transpose", stride=2)
    assert tr.algo != "winograd"  # one image
    for isa in ("avx2", "avx512"):
        if isa == "avx512" and isa_top() != "avx512":
            continue
        with FastconvProcess({"FASTCONV_ISA": isa}) as fc:  # dcgan.g3: 0.56, 8 MiB of kernels
            kw = dict(op="conv_transpose", stride=2, padding=1)
            g3 = fc.explain((16, 256, 8, 8), (256, 128, 4, 4), **kw)
            assert g3.algo == "winograd", (isa, str(g3))
            g2 = fc.explain((16, 512, 4, 4), (512, 256, 4, 4), **kw)
            assert g2.algo != "winograd", (isa, str(g2))  # 4x4 planes: no fewer products


@pytest.mark.parametrize(
    "w_shape,kw,why",
    [
        ((4, 4, 3, 3), dict(stride=3, padding=1), "stride"),
        ((4, 4, 8, 8), dict(stride=2, padding=1), "stride phase"),
        ((4, 4, 4, 6), dict(stride=2, padding=1), "the same in each"),
        ((4, 4, 4, 4), dict(stride=2, dilation=2, padding=1), "dilation"),
    ],
)
def test_refusals_name_the_reason(w_shape, kw, why):
    """(Backward data: the forwards of 8x8 / 2 and 4x6 / 2 run along the rows,
    winograd_rows.h.)"""
    with raises_naming(NotImplementedError, "winograd", why):
        fastconv.explain((1, 4, 16, 16), w_shape, algo="winograd", pass_="backward_data", **kw)
