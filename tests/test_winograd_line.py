"""Winograd F(3,7) along a line for 1x7 / 7x1 kernels (csrc/algo/winograd_line.h: F(3,4) plus
F(3,3), 11 points): every pass channels-last, each point a GEMM over the tiles' channel vectors
(the weight gradient's a sum over the tiles); every pass vs the float64 oracle with outputs
poisoned, the blocks and chunks, threads, the error bound, the transposed forward, refusals,
the weight gradient's fallback and auto's rule (_cpu_volume._line_winograd)."""

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

# (x_shape, w_shape, kwargs): Inception's "same" 1x7 and 7x1, asymmetric padding, none, padding
# of 6 (backward data's 0), true convolution, output channels past a GEMM panel (40, 70), 16
# summed channels (the least), a batch, and an image whose tiles take several blocks per thread
# (72 x 37: 936 tiles). Lines of 3k, 3k + 1 and 3k + 2 outputs (a last tile of 3, 1 or 2). The
# weight gradient runs from 96 tiles over the batch (the first, 72 tiles, and the 9-tile one run
# implicit GEMM's; g5 has exactly 96; g8 is the first's lines at batch 3, 108 tiles: a last tile
# of 2 along W).
GEOMETRIES = [
    ((2, 24, 9, 11), (40, 24, 1, 7), dict(padding=(0, 3))),
    ((3, 24, 11, 9), (40, 24, 7, 1), dict(padding=(3, 0))),
    ((3, 16, 9, 16), (17, 16, 1, 7), dict(padding=((0, 0), (1, 5)), mode="conv")),
    ((2, 20, 14, 9), (70, 20, 7, 1), dict(padding=((6, 2), (0, 0)), mode="conv")),
    ((3, 18, 16, 21), (19, 18, 7, 1), dict()),
    ((4, 33, 4, 12), (21, 33, 1, 7), dict(padding=((0, 0), (6, 6)), mode="conv")),
    ((1, 20, 6, 3), (24, 20, 7, 1), dict(padding=((6, 2), (0, 0)))),  # 9 tiles: implicit GEMM
    ((1, 16, 72, 37), (16, 16, 1, 7), dict(padding=(0, 3))),
    ((3, 24, 9, 11), (40, 24, 1, 7), dict(padding=(0, 3))),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


def run_passes(rng, x_shape, w_shape, kw, dtype):
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    x_copy, w_copy = x.copy(), w.copy()
    want = ref.conv(x, w, b, **kw)
    assert_close(fastconv.conv(x, w, b, algo="winograd", **kw), want, dtype, x_shape[1] * 7)
    gy = rand(rng, want.shape, dtype)
    gx = fastconv.conv_backward_data(gy, w, x_shape, algo="winograd", **kw)
    assert_close(gx, ref.conv_backward_data(gy, w, x_shape, **kw), dtype, w_shape[0] * 7)
    gw = fastconv.conv_backward_weight(x, gy, w_shape, algo="winograd", **kw)
    positions = int(np.prod(want.shape)) // want.shape[1]
    assert_close(gw, ref.conv_backward_weight(x, gy, w_shape, **kw), dtype, positions)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(w, w_copy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_line_passes(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    """Outputs start as NaN: every output of y and grad_x is written (one- and two-output last
    tiles included); the bias lands once per output."""
    run_passes(rng, x_shape, w_shape, kw, dtype)


def test_explain_names_the_axis():
    """F(3,7) along the axis; the weight gradient F(7,3) from 96 tiles over the batch (108
    here), below them implicit GEMM (explain says so)."""
    for w_shape, pad, axis in [((16, 16, 1, 7), (0, 3), "W"), ((16, 16, 7, 1), (3, 0), "H")]:
        for pass_, tile in [
            ("forward", "F(3,7)"),
            ("backward_data", "F(3,7)"),
            ("backward_weight", "F(7,3)"),
        ]:
            e = fastconv.explain((4, 16, 9, 9), w_shape, algo="winograd", padding=pad, pass_=pass_)
            assert e.algo == "winograd" and f"{tile} along {axis}" in e.reason, str(e)
            assert "11 points per 3 outputs" in e.reason, str(e)
            assert e.workspace_bytes > 0
        e = fastconv.explain(
            (2, 16, 9, 9), w_shape, algo="winograd", padding=pad, pass_="backward_weight"
        )
        assert "implicit_gemm (too few output tiles" in e.reason, str(e)


def test_empty_batch():
    w = np.ones((16, 16, 1, 7), np.float32)
    y = fastconv.conv(np.ones((0, 16, 5, 9), np.float32), w, algo="winograd", padding=(0, 3))
    assert y.shape == (0, 16, 5, 9)
    gx = fastconv.conv_backward_data(y, w, (0, 16, 5, 9), algo="winograd", padding=(0, 3))
    assert gx.shape == (0, 16, 5, 9)


def test_threads_bit_identical(rng):
    """Blocks of tiles over the threads, each output's sums in a fixed order."""
    x = rand(rng, (2, 32, 30, 17), np.float32)
    w = rand(rng, (48, 32, 7, 1), np.float32)
    y = same_at_thread_counts(lambda: fastconv.conv(x, w, algo="winograd", padding=(3, 0)))
    assert_close(y, ref.conv(x, w, padding=(3, 0)), np.float32, 32 * 7)
    gy = rand(rng, y.shape, np.float32)
    same_at_thread_counts(
        lambda: fastconv.conv_backward_data(gy, w, x.shape, algo="winograd", padding=(3, 0))
    )


@pytest.mark.parametrize("pass_", ["forward", "backward_data", "backward_weight"])
def test_float32_error_bound(pass_):
    """The split F(3,7)'s float32 error over Inception's 128-768 channels: within 10x implicit
    GEMM's (the tile rule's bound)."""
    for seed, (x_shape, w_shape) in enumerate(
        [((4, 128, 17, 17), (192, 128, 1, 7)), ((2, 768, 17, 17), (192, 768, 7, 1))]
    ):
        pad = (0, 3) if w_shape[2] == 1 else (3, 0)
        ratios = error_ratios(x_shape, w_shape, seed, (pass_,), padding=pad)
        assert ratios[pass_] < 10, ratios


def test_transposed_forward(rng):
    """conv_transpose with a 1x7 kernel is backward data's correlation."""
    x = rand(rng, (2, 24, 9, 13), np.float32)
    w = rand(rng, (24, 20, 1, 7), np.float32)
    got = fastconv.conv_transpose(x, w, algo="winograd", padding=(0, 3))
    want = ref.conv_backward_data(x, w, (2, 20, 9, 13), padding=(0, 3))
    assert_close(got, want, np.float32, 24 * 7)


@pytest.mark.parametrize(
    "x_shape,w_shape,kw",
    [
        ((1, 16, 9, 9), (16, 16, 1, 7), dict(padding=(1, 3))),  # padded across the axis
        ((1, 16, 20, 9), (16, 16, 1, 7), dict(stride=(2, 1), padding=(0, 3))),
        ((1, 15, 9, 9), (16, 15, 1, 7), dict(padding=(0, 3))),  # under 16 summed channels
        ((1, 16, 9, 9), (16, 16, 1, 7), dict(padding=(0, 7))),  # padding past the kernel
        ((1, 32, 9, 9), (32, 16, 1, 7), dict(padding=(0, 3), groups=2)),
    ],
)
def test_refusals_name_the_line_form(x_shape, w_shape, kw):
    x = np.ones(x_shape, np.float32)
    with raises_naming(NotImplementedError, "winograd", "1x7 / 7x1"):
        fastconv.conv(x, np.ones(w_shape, np.float32), algo="winograd", **kw)


def test_dilated_refused():
    x = np.ones((1, 16, 9, 20), np.float32)
    with raises_naming(NotImplementedError, "winograd", "dilation"):
        fastconv.conv(x, np.ones((16, 16, 1, 7), np.float32), algo="winograd", dilation=(1, 2))


def test_weight_gradient_threads_bit_identical(rng):
    """The chunks' sums over the tiles do not depend on the threads (the GEMM engine's never do;
    the points are per tile)."""
    x = rand(rng, (4, 24, 17, 17), np.float32)
    gy = rand(rng, (4, 32, 17, 17), np.float32)
    gw = same_at_thread_counts(
        lambda: fastconv.conv_backward_weight(
            x, gy, (32, 24, 1, 7), algo="winograd", padding=(0, 3)
        )
    )
    want = ref.conv_backward_weight(x, gy, (32, 24, 1, 7), padding=(0, 3))
    assert_close(gw, want, np.float32, 4 * 17 * 17)


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_weight_gradient_each_level(rng, isa):
    """The weight gradient's V in each level's packed-B layout (nr = 8 / 16 / 32 channels a
    panel): 24 channels leave a part-filled last panel at every level, 128 fill four or more,
    which 2 threads split into parts of whole panels (11 points: 6 items against 5 otherwise);
    1, 2 and 3 threads bit-identical, along W and H."""
    skip_unless_isa_runs(isa)
    cases = [
        ((3, 24, 9, 11), (40, 24, 1, 7), (0, 3)),
        ((2, 128, 9, 17), (128, 128, 1, 7), (0, 3)),
        ((2, 128, 17, 9), (96, 128, 7, 1), (3, 0)),
    ]
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, pad in cases:
            x = rand(rng, x_shape, np.float32)
            gy = rand(rng, (x_shape[0], w_shape[0], *x_shape[2:]), np.float32)
            want = ref.conv_backward_weight(x, gy, w_shape, padding=pad)
            got = []
            for threads in (1, 2, 3):
                fc.set_num_threads(threads)
                got.append(fc.conv_backward_weight(x, gy, w_shape, algo="winograd", padding=pad))
            assert_close(got[0], want, np.float32, x_shape[0] * x_shape[2] * x_shape[3])
            for other in got[1:]:
                np.testing.assert_array_equal(got[0], other)


def test_weight_gradient_chunks_inside_an_image(rng):
    """Chunks of tiles that end inside an image (FASTCONV_WINOGRAD_BLOCK_BYTES=64K: 46 of its
    102 tiles): the image's copies reused by the next chunk, partial tile ranges, the GEMMs'
    sums added chunk by chunk."""
    x = rand(rng, (3, 16, 17, 17), np.float32)
    gy = rand(rng, (3, 16, 17, 17), np.float32)
    want = ref.conv_backward_weight(x, gy, (16, 16, 7, 1), padding=(3, 0), mode="conv")
    with FastconvProcess({"FASTCONV_WINOGRAD_BLOCK_BYTES": "65536"}) as fc:
        for threads in (1, 2):
            fc.set_num_threads(threads)
            got = fc.conv_backward_weight(
                x, gy, (16, 16, 7, 1), algo="winograd", padding=(3, 0), mode="conv"
            )
            assert_close(got, want, np.float32, 3 * 17 * 17)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_takes_inception_lines(isa):
    """auto at both levels: float32 1x7 / 7x1 layers with 96+ tiles of 3 outputs over the batch
    (Inception's 17x17: 102 per image), the forward and backward data with 64+ channels each
    side, the weight gradient with 128+; never float64, 32 channels or fewer tiles."""
    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:

        def algo(x_shape, w_shape, pad, pass_, dtype="float32"):
            return fc.explain(x_shape, w_shape, padding=pad, pass_=pass_, dtype=dtype).algo

        for x_shape, w_shape, pad, weight in [
            ((8, 128, 17, 17), (128, 128, 1, 7), (0, 3), True),
            ((4, 768, 17, 17), (192, 768, 7, 1), (3, 0), True),
            ((2, 128, 17, 17), (192, 128, 7, 1), (3, 0), True),
            ((8, 64, 17, 17), (64, 64, 1, 7), (0, 3), False),
            ((8, 128, 17, 17), (96, 128, 1, 7), (0, 3), False),
            ((1, 160, 17, 17), (160, 160, 7, 1), (3, 0), True),
            ((2, 128, 9, 16), (128, 128, 1, 7), (0, 3), True),  # 2 x 9 lines x 6 tiles: 108
        ]:
            for pass_ in ("forward", "backward_data"):
                assert algo(x_shape, w_shape, pad, pass_) == "winograd", (x_shape, pass_)
                assert algo(x_shape, w_shape, pad, pass_, "float64") != "winograd"
            got = algo(x_shape, w_shape, pad, "backward_weight")
            assert (got == "winograd") == weight, (x_shape, w_shape, got)
        for pass_ in ("forward", "backward_data", "backward_weight"):
            assert algo((1, 128, 9, 8), (128, 128, 1, 7), (0, 3), pass_) != "winograd"  # 27 tiles
            assert algo((8, 32, 17, 17), (32, 32, 1, 7), (0, 3), pass_) != "winograd"
