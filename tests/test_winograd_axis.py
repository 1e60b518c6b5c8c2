"""Winograd F(m,3) along depth for 3x1x1 kernels (csrc/algo/winograd_axis.h): every pass as
transform-domain GEMMs whose columns are the H x W planes (the weight gradient's summing over
them); every pass vs the float64 oracle with outputs poisoned, the tiles, the chunks, threads,
the error bound, refusals and auto's rule (_cpu_volume._axis_winograd)."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import FastconvProcess, raises_naming, rand, same_at_thread_counts
from test_winograd_phases import check_passes

# (x_shape, w_shape, kwargs): R(2+1)D's padding 1 over a depth that leaves a partial last tile,
# asymmetric depth padding with true convolution, one output plane (F(2,3)), no padding (3
# input planes, one output), padding past the kernel (outputs reading only zeros at the ends), a
# batch, 1x1 planes and an empty batch.
GEOMETRIES = [
    ((2, 5, 7, 3, 4), (6, 5, 3, 1, 1), dict(padding=(1, 0, 0))),
    ((1, 4, 6, 2, 3), (3, 4, 3, 1, 1), dict(padding=((2, 0), (0, 0), (0, 0)), mode="conv")),
    ((1, 3, 1, 2, 2), (2, 3, 3, 1, 1), dict(padding=(1, 0, 0))),
    ((2, 3, 3, 4, 5), (4, 3, 3, 1, 1), dict()),
    ((1, 4, 5, 3, 3), (5, 4, 3, 1, 1), dict(padding=(3, 0, 0))),
    ((3, 6, 9, 1, 1), (7, 6, 3, 1, 1), dict(padding=(1, 0, 0), mode="conv")),
    ((0, 4, 5, 3, 3), (4, 4, 3, 1, 1), dict(padding=(1, 0, 0))),
    # 2-D: 3x1 along H, 1x3 along W (transposed planes), asymmetric padding, true convolution
    ((2, 5, 9, 6), (6, 5, 3, 1), dict(padding=(1, 0))),
    ((2, 5, 6, 9), (6, 5, 1, 3), dict(padding=(0, 1))),
    ((1, 4, 5, 11), (3, 4, 1, 3), dict(padding=((0, 0), (2, 1)), mode="conv")),
    ((3, 3, 4, 7), (5, 3, 3, 1), dict(padding=((0, 2), (0, 0)), mode="conv")),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]
LAYER3 = (1, 64, 8, 6, 5), (48, 64, 3, 1, 1), dict(padding=(1, 0, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_temporal_passes(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    """Outputs start as NaN: every plane of y and grad_x (a partial last tile's included) is
    written; the bias lands once per output."""
    check_passes(fastconv, rng, x_shape, w_shape, kw, dtype)


def test_explain_names_the_tile():
    """F(4,3) from 3 output planes, F(2,3) for 1-2; the weight gradient's F(3,4)."""
    x_shape, w_shape, kw = LAYER3
    for pass_, tile in [
        ("forward", "F(4,3)"),
        ("backward_data", "F(4,3)"),
        ("backward_weight", "F(3,4)"),
    ]:
        e = fastconv.explain(x_shape, w_shape, algo="winograd", pass_=pass_, **kw)
        assert e.algo == "winograd" and f"{tile} along depth" in e.reason, str(e)
        assert e.workspace_bytes > 0
    e = fastconv.explain((1, 4, 2, 3, 3), (4, 4, 3, 1, 1), algo="winograd", padding=(1, 0, 0))
    assert "F(2,3) along depth" in e.reason, str(e)
    e = fastconv.explain((1, 4, 9, 6), (4, 4, 3, 1), algo="winograd", padding=(1, 0))
    assert "F(4,3) along H" in e.reason and "rows as GEMM columns" in e.reason, str(e)
    e = fastconv.explain((1, 4, 6, 9), (4, 4, 1, 3), algo="winograd", padding=(0, 1))
    assert "F(4,3) along W" in e.reason and "transposed" in e.reason, str(e)


@pytest.mark.parametrize("tile", [2, 4, 6])
def test_every_tile(fastconv_with_env, rng, tile):
    """FASTCONV_WINOGRAD_TILE forces F(2,3), F(4,3) and F(6,3) along depth."""
    fc = fastconv_with_env(FASTCONV_WINOGRAD_TILE=str(tile))
    for x_shape, w_shape, kw in GEOMETRIES[:2] + GEOMETRIES[7:9] + [LAYER3]:
        e = fc.explain(x_shape, w_shape, algo="winograd", **kw)
        assert f"F({tile},3) along" in e.reason, str(e)
        for dtype in (np.float32, np.float64):
            check_passes(fc, rng, x_shape, w_shape, kw, dtype)


def test_chunks_of_tiles(poisoned_outputs, rng):
    """An (image, tile) pair's points take over a third of the 16 MiB chunk budget: two pairs
    per chunk, the GEMMs and transforms run chunk by chunk, the last chunk one pair (three images
    of one tile each); the weight gradient adds each chunk's sums into the last."""
    x_shape, w_shape, kw = (3, 64, 4, 64, 32), (64, 64, 3, 1, 1), dict(padding=(1, 0, 0))
    x, w = rand(rng, x_shape, np.float32), rand(rng, w_shape, np.float32)
    b = rand(rng, (64,), np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    got = fastconv.conv(x, w, b, algo="winograd", **kw)
    want = ref.conv(x64, w64, b.astype(np.float64), **kw)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())
    gy = rand(rng, want.shape, np.float32)
    got = fastconv.conv_backward_weight(x, gy, w_shape, algo="winograd", **kw)
    want = ref.conv_backward_weight(x64, gy.astype(np.float64), w_shape, **kw)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_transposed_planes_in_chunks(poisoned_outputs, rng):
    """1x3 on planes transposed into the workspace, with several chunks of (image, tile) pairs
    (128 + 128 channels over 1024-row columns: 3 pairs of 6 MiB per 16 MiB chunk), every pass."""
    x_shape, w_shape, kw = (2, 128, 1024, 12), (128, 128, 1, 3), dict(padding=(0, 1))
    assert "along W" in fastconv.explain(x_shape, w_shape, algo="winograd", **kw).reason
    check_passes(fastconv, rng, x_shape, w_shape, kw, np.float32)


def test_folded_images_in_chunks(poisoned_outputs, rng):
    """Slices under 64 elements fold the batch's images side by side (rows of 63 along H: one
    1008-wide slice), with several chunks of tiles (96 + 96 channels: 3 tiles of 4.4 MiB per
    16 MiB chunk, 4 tiles), every pass; a 1x3 on 8x8 maps folds its transposed columns; rows of
    64 and batches whose folded tile would pass the chunk do not fold."""
    x_shape, w_shape, kw = (16, 96, 16, 63), (96, 96, 3, 1), dict(padding=(1, 0))
    e = fastconv.explain(x_shape, w_shape, algo="winograd", **kw)
    assert "along H" in e.reason and "side by side" in e.reason, str(e)
    check_passes(fastconv, rng, x_shape, w_shape, kw, np.float32)
    x_shape, w_shape, kw = (4, 24, 8, 8), (16, 24, 1, 3), dict(padding=(0, 1), mode="conv")
    e = fastconv.explain(x_shape, w_shape, algo="winograd", **kw)
    assert "along W" in e.reason and "side by side" in e.reason, str(e)
    for dtype in (np.float32, np.float64):
        check_passes(fastconv, rng, x_shape, w_shape, kw, dtype)
    e = fastconv.explain((1, 24, 8, 8), w_shape, algo="winograd", **kw)
    assert "side by side" not in e.reason, str(e)
    # rows of 64: several images unfolded, every pass
    x_shape, w_shape, kw = (3, 5, 7, 64), (4, 5, 3, 1), dict(padding=(1, 0))
    e = fastconv.explain(x_shape, w_shape, algo="winograd", **kw)
    assert "along H" in e.reason and "side by side" not in e.reason, str(e)
    check_passes(fastconv, rng, x_shape, w_shape, kw, np.float32)
    # 512 + 512 channels x 6 points x 8-wide slices x 4 bytes = 192 KiB per image: 85 fold
    # within 16 MiB, 86 do not
    for n, folds in ((85, True), (86, False)):
        e = fastconv.explain((n, 512, 8, 8), (512, 512, 3, 1), algo="winograd", padding=(1, 0))
        assert ("side by side" in e.reason) == folds, (n, str(e))


def _random_geometry(r):
    """A 3x1, 1x3 or 3x1x1 layer: batches of 1-6, slices across the axis of 1-69 (folded under
    64), asymmetric padding along the axis, both modes."""
    kind, n = int(r.integers(3)), int(r.integers(1, 7))
    c, k = int(r.integers(1, 9)), int(r.integers(1, 9))
    lo, hi = int(r.integers(0, 4)), int(r.integers(0, 4))
    along, across = int(r.integers(1, 12)), int(r.integers(1, 70))
    hi = max(hi, 3 - along - lo)  # at least one output along the axis
    mode = "conv" if r.random() < 0.3 else "cross"
    if kind == 0:
        return (n, c, along, across), (k, c, 3, 1), dict(padding=((lo, hi), (0, 0)), mode=mode)
    if kind == 1:
        return (n, c, across, along), (k, c, 1, 3), dict(padding=((0, 0), (lo, hi)), mode=mode)
    hw = (int(r.integers(1, 9)), int(r.integers(1, 9)))
    kw = dict(padding=((lo, hi), (0, 0), (0, 0)), mode=mode)
    return (n, c, min(along, 8), *hw), (k, c, 3, 1, 1), kw


@pytest.mark.parametrize("seed", range(12))
def test_random_geometries(poisoned_outputs, seed):
    """Seeded random layers along one axis, folded or not, every pass in both dtypes, against
    the float64 oracle (the inputs left untouched)."""
    r = np.random.default_rng(1000 + seed)
    x_shape, w_shape, kw = _random_geometry(r)
    for dtype in (np.float32, np.float64):
        check_passes(fastconv, r, x_shape, w_shape, kw, dtype)


def test_threads_agree_bit_for_bit(rng):
    """The GEMM engine's sums and the per-element transforms: no thread count changes a bit."""
    x_shape, w_shape, kw = LAYER3
    x, w = rand(rng, x_shape, np.float32), rand(rng, w_shape, np.float32)
    gy = rand(rng, ref.conv(x, w, **kw).shape, np.float32)
    for call in (
        lambda: fastconv.conv(x, w, algo="winograd", **kw),
        lambda: fastconv.conv_backward_data(gy, w, x_shape, algo="winograd", **kw),
        lambda: fastconv.conv_backward_weight(x, gy, w_shape, algo="winograd", **kw),
    ):
        same_at_thread_counts(call)
    # folded images (slices of 12 and 10), a 1x3 and a 3x1, every pass
    for w_shape, pad in [((8, 16, 1, 3), (0, 1)), ((8, 16, 3, 1), (1, 0))]:
        x2, w2 = rand(rng, (3, 16, 12, 10), np.float32), rand(rng, w_shape, np.float32)
        gy2 = rand(rng, ref.conv(x2, w2, padding=pad).shape, np.float32)
        for call in (
            lambda: fastconv.conv(x2, w2, algo="winograd", padding=pad),
            lambda: fastconv.conv_backward_data(gy2, w2, x2.shape, algo="winograd", padding=pad),
            lambda: fastconv.conv_backward_weight(x2, gy2, w2.shape, algo="winograd", padding=pad),
        ):
            same_at_thread_counts(call)


@pytest.mark.parametrize("pass_", ["forward", "backward_data", "backward_weight"])
def test_float32_error_bound(rng, pass_):
    """F(4,3)'s (the weight gradient's F(3,4)) float32 error over 192-256 channels: within 10x
    implicit GEMM's (the tile rule's bound; measured 0.6-4.5x on R(2+1)D's layers)."""
    x_shape, w_shape, kw = (1, 256, 8, 7, 7), (192, 256, 3, 1, 1), dict(padding=(1, 0, 0))
    x = rng.uniform(-1, 1, x_shape).astype(np.float32)
    w = rng.uniform(-1, 1, w_shape).astype(np.float32)
    gy = rng.uniform(-1, 1, (1, 192, 8, 7, 7)).astype(np.float32)
    x64, w64, gy64 = x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64)
    if pass_ == "forward":
        want = ref.conv(x64, w64, **kw)

        def run(algo):
            return fastconv.conv(x, w, algo=algo, **kw)
    elif pass_ == "backward_data":
        want = ref.conv_backward_data(gy64, w64, x_shape, **kw)

        def run(algo):
            return fastconv.conv_backward_data(gy, w, x_shape, algo=algo, **kw)
    else:
        want = ref.conv_backward_weight(x64, gy64, w_shape, **kw)

        def run(algo):
            return fastconv.conv_backward_weight(x, gy, w_shape, algo=algo, **kw)

    wino = np.abs(run("winograd") - want).max()
    gemm = np.abs(run("implicit_gemm") - want).max()
    assert wino <= 10 * gemm, (wino, gemm)


def test_every_isa_level_matches_the_oracle(isa):
    r = np.random.default_rng(11)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, kw in GEOMETRIES[:2] + GEOMETRIES[7:9] + [LAYER3]:
            for dtype in (np.float32, np.float64):
                check_passes(fc, r, x_shape, w_shape, kw, dtype)


def test_transposed(rng):
    """A 3x1x1 transposed convolution's forward is the conv's backward data: the same path."""
    x, w = rand(rng, (2, 6, 5, 3, 4), np.float32), rand(rng, (6, 5, 3, 1, 1), np.float32)
    kw = dict(padding=(1, 0, 0))
    e = fastconv.explain(x, w, op="conv_transpose", algo="winograd", **kw)
    assert "along depth" in e.reason, str(e)
    want = ref.conv_transpose(x, w, **kw)
    got = fastconv.conv_transpose(x, w, algo="winograd", **kw)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize(
    "kw",
    [
        dict(stride=(2, 1, 1), padding=(1, 0, 0)),
        dict(dilation=(2, 1, 1), padding=(2, 0, 0)),
        dict(padding=(1, 1, 0)),
    ],
)
def test_refusals_name_both_forms(kw):
    """Strided, dilated or H/W-padded 3x1x1 layers are neither form; the message names both."""
    x = np.ones((1, 4, 8, 5, 5), np.float32)
    with raises_naming(NotImplementedError, "winograd", "depth taps", "3x1x1"):
        fastconv.conv(x, np.ones((4, 4, 3, 1, 1), np.float32), algo="winograd", **kw)


@pytest.mark.parametrize(
    "w_shape,kw",
    [
        ((4, 4, 1, 3), dict(padding=1)),  # padded along H, where the kernel has one tap
        ((4, 4, 3, 1), dict(stride=(1, 2), padding=(1, 0))),
        ((4, 4, 1, 5), dict(padding=(0, 2))),
    ],
)
def test_2d_refusals_name_the_axis_form(w_shape, kw):
    """(Backward data: the forwards of 1x3 and 1x5 run along the rows, winograd_rows.h.)"""
    with raises_naming(NotImplementedError, "winograd", "3x1 or 1x3"):
        fastconv.explain((1, 4, 8, 8), w_shape, algo="winograd", pass_="backward_data", **kw)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_takes_temporal_layers(isa):
    """auto runs R(2+1)D's temporal layers along depth at both levels, every pass, 40+ channels
    each side and 4+ output planes (float64 too), the weight gradient from 8M multiply-adds per
    point; 2 output planes, 16 channels, groups, strided or H/W-padded layers and small weight
    gradients keep other algorithms."""
    from conftest import skip_unless_isa_runs

    skip_unless_isa_runs(isa)
    pad = (1, 0, 0)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape in [
            ((1, 576, 4, 14, 14), (256, 576, 3, 1, 1)),  # layer3
            ((1, 288, 8, 28, 28), (128, 288, 3, 1, 1)),  # layer2
            ((1, 45, 16, 56, 56), (64, 45, 3, 1, 1)),  # the stem's temporal half
        ]:
            for pass_ in ("forward", "backward_data", "backward_weight"):
                for dtype in ("float32", "float64"):
                    e = fc.explain(x_shape, w_shape, padding=pad, pass_=pass_, dtype=dtype)
                    assert e.algo == "winograd" and "along depth" in e.reason, str(e)
        small = ((2, 64, 8, 14, 14), (64, 64, 3, 1, 1))  # 64 x 64 x 784 columns: 3.2M
        for pass_ in ("forward", "backward_data"):
            assert fc.explain(*small, padding=pad, pass_=pass_).algo == "winograd"
        e = fc.explain(*small, padding=pad, pass_="backward_weight")
        assert e.algo != "winograd", str(e)
        others = [
            ((1, 1152, 2, 7, 7), (512, 1152, 3, 1, 1), dict(padding=pad)),  # layer4: 2 planes
            ((1, 16, 16, 56, 56), (16, 16, 3, 1, 1), dict(padding=pad)),
            ((1, 128, 8, 14, 14), (128, 64, 3, 1, 1), dict(padding=pad, groups=2)),
            ((1, 128, 8, 14, 14), (128, 128, 3, 1, 1), dict(padding=pad, stride=(2, 1, 1))),
            ((1, 128, 8, 14, 14), (128, 128, 3, 1, 1), dict(padding=(1, 1, 1))),
        ]
        for x_shape, w_shape, kw in others:
            for pass_ in ("forward", "backward_data", "backward_weight"):
                e = fc.explain(x_shape, w_shape, pass_=pass_, **kw)
                assert e.algo != "winograd", (x_shape, w_shape, kw, str(e))


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_auto_takes_2d_axis_layers(isa):
    """2-D 3x1 from 128 channels each side and 1024 GEMM columns per point (ERFNet-like 128 ch
    on 64x128), every pass, at every level; 1x3 (transposed planes) at AVX-512 and AVX2 whatever
    the L2 (FASTCONV_L2_BYTES sets it here), never below AVX2. Batches of maps
    whose slices across the axis are under 64 (folded side by side) from 64 columns where that
    was measured (AVX-512, AVX2 with a 2 MiB L2): Inception's 384 ch on 8x8 at batch 4 (64
    columns) and 8, not at batch 2 (32) nor 1; 64 channels keep other algorithms."""
    from conftest import skip_unless_isa_runs

    skip_unless_isa_runs(isa)
    for l2 in ("2M", "1920K"):
        env = {"FASTCONV_ISA": isa, "FASTCONV_L2_BYTES": l2, "FASTCONV_AVX512_UNITS": "512"}
        with FastconvProcess(env) as fc:
            for w_shape, pad, taken in [
                ((128, 128, 3, 1), (1, 0), True),
                ((128, 128, 1, 3), (0, 1), isa in ("avx512", "avx2")),
            ]:
                for pass_ in ("forward", "backward_data", "backward_weight"):
                    e = fc.explain((1, 128, 64, 128), w_shape, padding=pad, pass_=pass_)
                    assert (e.algo == "winograd") == taken, (l2, str(e))
                for n in (1, 2, 4, 8):
                    for pass_ in ("forward", "backward_data", "backward_weight"):
                        e = fc.explain(
                            (n, 384, 8, 8), (384, 384) + w_shape[2:], padding=pad, pass_=pass_
                        )
                        folds = isa == "avx512" or (isa == "avx2" and l2 == "2M")
                        want = taken and n >= 4 and folds
                        assert (e.algo == "winograd") == want, (n, l2, str(e))
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, pad in [
            ((1, 64, 128, 256), (64, 64, 3, 1), (1, 0)),
            ((8, 64, 8, 8), (64, 64, 3, 1), (1, 0)),
        ]:
            for pass_ in ("forward", "backward_data", "backward_weight"):
                e = fc.explain(x_shape, w_shape, padding=pad, pass_=pass_)
                assert e.algo != "winograd", (x_shape, w_shape, str(e))
