"""The direct algorithm's per-tap GEMM path for small images (csrc/algo/direct_taps.cc): forward
and unit-stride backward data against the float64 oracle, outputs poisoned, and the cases its
padding skip has to get right (outputs no tap reaches, a segment no tap covers whole)."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import FastconvProcess, assert_close, rand, skip_unless_isa_runs

# (x_shape, w_shape, kwargs): 16+ channels each side and output rows of at most 40 positions
# (what the path serves). Output channels not a multiple of the panel width, rows longer than
# one micro-kernel call (28 = two AVX-512 segments, five AVX2 ones), strides, dilation, padding
# wider than the kernel's reach (outputs no tap reaches: bias only), asymmetric padding,
# rectangular kernels, true convolution, ranks 1-3 and batches.
GEOMETRIES = [
    ((1, 32, 7, 7), (48, 32, 3, 3), dict(padding=1)),  # resnet50 res5 in small
    ((2, 16, 14, 14), (17, 16, 3, 3), dict(padding=1, mode="conv")),
    ((1, 24, 28, 28), (40, 24, 3, 3), dict(padding=4, dilation=4)),  # deeplab atrous
    ((1, 20, 9, 11), (33, 20, 3, 3), dict(stride=2, padding=1)),
    ((1, 16, 5, 6), (20, 16, 3, 3), dict(padding=3)),  # corners reach no input
    ((1, 17, 6, 9), (35, 17, 2, 2), dict(dilation=2)),
    ((1, 18, 17, 17), (16, 18, 1, 7), dict(padding=(0, 3))),  # inception 1x7
    ((1, 18, 17, 17), (19, 18, 7, 1), dict(padding=(3, 0), mode="conv")),
    ((1, 16, 10, 12), (16, 16, 5, 3), dict(padding=((2, 1), (0, 3)))),
    ((1, 20, 25), (24, 20, 3), dict(padding=2, dilation=2)),  # rank 1
    ((3, 16, 6, 5), (64, 16, 3, 3), dict(padding=1)),  # batch: rows of several images per item
    ((1, 16, 4, 6, 7), (24, 16, 3, 3, 3), dict(padding=1)),  # rank 3
    ((2, 20, 4, 5, 5), (18, 20, 3, 1, 1), dict(padding=(1, 0, 0), mode="conv")),  # R(2+1)D
    ((1, 16, 5, 6, 9), (17, 16, 2, 3, 2), dict(stride=(2, 1, 2), padding=(1, 2, 0))),
    # 1100 source channels x 27 taps: a panel of 1.9 MiB at AVX2's 16 columns (3.8 at AVX-512's
    # 32) runs in blocks of its source channels on any L2 up to 2 MiB: the forward of the first,
    # backward data of the second (the first block writes or zeroes, the others add; padding
    # leaves taps partial)
    ((1, 1100, 3, 4, 5), (17, 1100, 3, 3, 3), dict(padding=1)),
    ((1, 17, 3, 4, 5), (1100, 17, 3, 3, 3), dict(padding=1, mode="conv")),
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


def _path(x_shape, w_shape, kw, pass_):
    return fastconv.explain(x_shape, w_shape, pass_=pass_, algo="direct", **kw).reason


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_direct_taps_passes(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    assert "one GEMM call per tap" in _path(x_shape, w_shape, kw, "forward")
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    x0, w0 = x.copy(), w.copy()
    taps = int(np.prod(w_shape[2:]))
    want = ref.conv(x, w, b, **kw)
    assert_close(fastconv.conv(x, w, b, algo="direct", **kw), want, dtype, w_shape[1] * taps)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    gy = rand(rng, want.shape, dtype)
    gx = fastconv.conv_backward_data(gy, w, x_shape, algo="direct", **kw)
    assert_close(gx, ref.conv_backward_data(gy, w, x_shape, **kw), dtype, w_shape[0] * taps)
    stride = kw.get("stride", 1)
    if stride == 1:
        assert "one GEMM call per tap" in _path(x_shape, w_shape, kw, "backward_data")


def test_direct_taps_unreached_outputs_are_bias(rng):
    """Padding 3 around a 3x3 kernel: the corner outputs read only padding, so no tap runs there
    and they must be exactly the bias, also after a call that left other values in the
    workspace."""
    x = rand(rng, (1, 16, 4, 4), np.float32)
    w = rand(rng, (32, 16, 3, 3), np.float32)
    b = rand(rng, (32,), np.float32)
    fastconv.conv(x * 7, w, b, padding=3, algo="direct")  # leaves other values in the workspace
    y = fastconv.conv(x, w, b, padding=3, algo="direct")
    np.testing.assert_array_equal(y[0, :, 0, 0], b)
    np.testing.assert_array_equal(y[0, :, -1, -1], b)
    assert_close(y, ref.conv(x, w, b, padding=3), np.float32, 16 * 9)


# 6 panels of 16 output channels at AVX2 (8 of 32 at AVX-512), two images; 13 panels (7) over 100
# rows, which 2 and 3 threads also split into row blocks (direct_taps.cc's kBalanceRows)
@pytest.mark.parametrize("x_shape, k", [((2, 64, 14, 14), 96), ((1, 32, 100, 12), 208)])
def test_direct_taps_threads_agree(rng, x_shape, k):
    """Each output element sums its taps in one fixed order whatever the threads or schedule
    (panel counts the threads do not divide run their rows in blocks too)."""
    from fastconv._runtime import get_num_threads, set_num_threads

    x = rand(rng, x_shape, np.float32)
    w = rand(rng, (k, x_shape[1], 3, 3), np.float32)
    before = get_num_threads()
    try:
        set_num_threads(1)
        one = fastconv.conv(x, w, padding=1, algo="direct")
        for threads in (2, 3):
            set_num_threads(threads)
            many = fastconv.conv(x, w, padding=1, algo="direct")
            np.testing.assert_array_equal(one, many, err_msg=f"{threads} threads")
    finally:
        set_num_threads(before)
    assert_close(one, ref.conv(x, w, padding=1), np.float32, x_shape[1] * 9)


@pytest.mark.parametrize(
    "x_shape,w_shape,kw,pass_",
    [
        ((1, 512, 7, 7), (512, 512, 3, 3), dict(padding=1), "forward"),
        ((1, 256, 14, 14), (256, 256, 3, 3), dict(padding=1), "backward_data"),
        ((1, 256, 28, 28), (256, 256, 3, 3), dict(padding=4, dilation=4), "forward"),
        ((2, 512, 7, 7), (512, 512, 3, 3), dict(padding=1), "forward"),  # x8: winograd
        # 3x5x5: I3D's 3x3x3 runs Winograd over its depth taps (_cpu_volume._depth_winograd)
        ((1, 96, 16, 14, 14), (208, 96, 3, 5, 5), dict(padding=(1, 2, 2)), "backward_data"),
    ],
)
def test_auto_small_images_run_taps(x_shape, w_shape, kw, pass_):
    e = fastconv.explain(x_shape, w_shape, pass_=pass_, **kw)
    assert e.algo == "direct" and "a GEMM call per tap" in e.reason, str(e)


SHORT_ROWS = [
    ((16, 256, 8, 8), (512, 256, 4, 4), dict(stride=2, padding=1), "forward"),  # dcgan.g2's data
    ((1, 512, 4, 4), (512, 512, 3, 3), dict(padding=1), "backward_data"),
    ((16, 512, 6, 6), (512, 512, 3, 3), dict(stride=2, padding=1), "forward"),  # 3 wide
]


@pytest.mark.parametrize("units", ["256", "512"])
def test_auto_short_rows_leave_taps_at_avx512(units):
    """Rows of at most 4 positions would run 4-row tiles on the taps path: at AVX-512 float32
    auto runs implicit GEMM's 12-row tiles instead (_cpu_taps._short_segments) for one image; a
    batch of 8+ small maps takes direct's images-innermost path first (_batch_taps_served) at
    every level and unit width (dcgan.g2's transposed backward data 7.12 -> 5.53 ms on the
    Xeon's 512-bit units); float64 keeps direct: the taps path for one image."""
    with FastconvProcess({"FASTCONV_AVX512_UNITS": units}) as fc:
        for x_shape, w_shape, kw, pass_ in SHORT_ROWS:
            for dtype in ("float32", "float64"):
                e = fc.explain(x_shape, w_shape, pass_=pass_, dtype=dtype, **kw)
                avx512 = fastconv.info()["isa_active"] == "avx512"
                if x_shape[0] >= 8:
                    assert e.algo == "direct" and "a batch of small maps" in e.reason, str(e)
                elif avx512 and dtype == "float32":
                    assert e.algo == "implicit_gemm" and "at most 4 positions" in e.reason, str(e)
                else:
                    assert e.algo == "direct" and "a GEMM call per tap" in e.reason, str(e)


def test_auto_short_rows_leave_winograd_its_large_batches():
    """3x3 on 6x6 at batch 32 over 512 channels (288 whole F(2x2) tiles) stays on Winograd at
    every ISA level (_cpu_taps._batch_first); on 4x4 maps the batch path takes it first (17.6 vs
    19.6 ms at AVX-512, 27.9 vs 34.7 at AVX2), not the short-rows rule's implicit GEMM."""
    e = fastconv.explain((32, 512, 6, 6), (512, 512, 3, 3), padding=1)
    assert e.algo == "winograd", str(e)
    e = fastconv.explain((64, 512, 4, 4), (512, 512, 3, 3), padding=1)
    assert e.algo == "direct" and "a batch of small maps" in e.reason, str(e)


def test_auto_rows_of_five_stay_on_direct():
    """A batch of 8 on 5x5 maps: direct's images-innermost path (rows of five would be five-row
    tiles on the per-tap path)."""
    e = fastconv.explain((8, 256, 5, 5), (256, 256, 3, 3), padding=1)
    assert e.algo == "direct" and "a batch of small maps" in e.reason, str(e)
    e = fastconv.explain((2, 256, 5, 5), (256, 256, 3, 3), padding=1)
    assert e.algo == "direct" and "a GEMM call per tap" in e.reason, str(e)


@pytest.mark.parametrize(
    "x_shape,w_shape,kw,pass_",
    [
        ((1, 128, 28, 28), (128, 128, 3, 3), dict(padding=1), "forward"),  # 196 Winograd tiles
        ((8, 256, 14, 14), (256, 256, 3, 3), dict(padding=1), "forward"),  # 392 tiles
        ((1, 512, 7, 7), (512, 512, 1, 1), {}, "forward"),  # 1x1: no padding to skip
        ((1, 512, 7, 7), (512, 512, 3, 3), dict(padding=1), "backward_weight"),
        ((1, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), "forward"),  # wide rows
        ((1, 64, 40, 40), (64, 64, 5, 5), dict(padding=2), "forward"),  # the FFT's
        ((1, 8, 7, 7), (64, 8, 3, 3), dict(padding=1), "forward"),  # few input channels
    ],
)
def test_auto_elsewhere_not_taps(x_shape, w_shape, kw, pass_):
    e = fastconv.explain(x_shape, w_shape, pass_=pass_, **kw)
    assert "a GEMM call per tap" not in e.reason, str(e)


def test_direct_taps_batch_over_several_chunks(rng):
    """Images go in chunks whose channels-last copies stay cache-sized (~2 MiB per image here:
    one image per chunk), the weights packed once for all of them."""
    x = rand(rng, (3, 64, 120, 36), np.float32)
    w = rand(rng, (40, 64, 3, 3), np.float32)
    b = rand(rng, (40,), np.float32)
    got = fastconv.conv(x, w, b, padding=1, algo="direct")
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    want = fastconv.conv(x64, w64, b64, padding=1, algo="implicit_gemm")
    assert_close(got, want, np.float32, 64 * 9)


def test_direct_taps_transposed_forward_with_output_padding(rng):
    """A transposed conv's forward is the conv's unit-stride backward data: output_padding makes
    the conv's high padding negative, which the tap ranges must respect."""
    x = rand(rng, (2, 24, 9, 8), np.float64)
    w = rand(rng, (24, 20, 3, 3), np.float64)
    kw = dict(dilation=2, padding=1, output_padding=1)
    got = fastconv.conv_transpose(x, w, algo="direct", **kw)
    assert_close(got, ref.conv_transpose(x, w, **kw), np.float64, 24 * 9)


SHAPES = [
    ((1, 64, 8, 38, 38), (64, 64, 3, 3, 3), dict(padding=1)),  # 27 taps, 38 wide: row kernels
    ((1, 64, 8, 34, 34), (64, 64, 3, 3, 3), dict(padding=1)),
    ((1, 48, 35, 35), (64, 48, 5, 5), dict(padding=2)),
    ((1, 48, 38, 38), (64, 48, 5, 5), dict(padding=2)),
    ((1, 256, 40, 40), (256, 256, 3, 3), dict(padding=2, dilation=2)),
    ((1, 256, 44, 44), (256, 256, 3, 3), dict(padding=2, dilation=2)),
    ((1, 512, 7, 7), (512, 512, 1, 1), {}),
    ((1, 3, 28, 28), (64, 3, 3, 3), dict(padding=1)),
    ((2, 64, 16, 16), (64, 64, 3, 3), dict(stride=2, padding=1)),
]


@pytest.mark.parametrize("x_shape,w_shape,kw", SHAPES)
@pytest.mark.parametrize("pass_", ["forward", "backward_data"])
def test_auto_names_the_direct_path_that_runs(x_shape, w_shape, kw, pass_):
    """Where auto picks direct, its reason names the path the plan runs (_cpu_taps._taps_served
    mirrors taps_serve in csrc/algo/direct_taps.cc)."""
    e = fastconv.explain(x_shape, w_shape, pass_=pass_, **kw)
    if e.algo == "direct":
        assert ("a GEMM call per tap" in e.reason) == ("one GEMM call per tap" in e.reason), str(e)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_factorised_kernels_backward_data_on_im2col(isa):
    """1xN / Nx1 kernels' backward data on small images (Inception's 1x7, 7x1, 1x3) runs im2col's
    column GEMM; their forward keeps its rules, and square kernels stay off it. (AVX-512 on
    512-bit units; on 256-bit units: test_auto_packed_taps_on_256bit_avx512_units.)"""
    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_AVX512_UNITS": "512"}) as fc:
        for x_shape, w_shape, pad in [
            ((1, 768, 9, 9), (128, 768, 1, 7), (0, 3)),
            ((1, 768, 9, 9), (192, 768, 7, 1), (3, 0)),
            ((1, 384, 8, 8), (384, 384, 1, 3), (0, 1)),
            ((2, 384, 8, 8), (384, 384, 3, 1), (1, 0)),  # from batch 4 Winograd along H
        ]:
            e = fc.explain(x_shape, w_shape, padding=pad, pass_="backward_data")
            assert e.algo == "im2col" and "1xN" in e.reason, str(e)
            e = fc.explain(x_shape, w_shape, padding=pad)
            assert e.algo != "im2col", str(e)
        e = fc.explain((1, 256, 14, 14), (256, 256, 3, 3), padding=1, pass_="backward_data")
        assert "1xN" not in e.reason, str(e)


@pytest.mark.parametrize("pass_", ["forward", "backward_data"])
def test_auto_full_winograd_vectors_leave_taps(pass_):
    """64-128 F(2x2) tiles that fill Winograd's 16-tile vectors (a 16x16 image, 8x8 at batch 4)
    run Winograd (_cpu_rule._full_winograd_vectors), float64 too; float64's 19x19 and 8x8 at
    batch 2 (32 tiles) keep the per-tap path."""

    def algo(x_shape, w_shape, dtype="float32"):
        return fastconv.explain(x_shape, w_shape, padding=1, pass_=pass_, dtype=dtype).algo

    assert algo((1, 512, 16, 16), (512, 512, 3, 3)) == "winograd"
    assert algo((1, 512, 16, 16), (1024, 512, 3, 3)) == "winograd"
    assert algo((4, 512, 8, 8), (512, 512, 3, 3)) == "winograd"
    assert algo((4, 512, 8, 8), (512, 512, 3, 3), "float64") == "winograd"
    assert algo((1, 256, 19, 19), (256, 256, 3, 3), "float64") == "direct"
    assert algo((2, 512, 8, 8), (512, 512, 3, 3)) == "direct"


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_winograd_on_few_tiles(isa):
    """float32 3x3 work of 64-128 F(2x2) tiles runs Winograd (_cpu_rule._winograd_few_tiles);
    below AVX-512 the forward of 49 tiles on 256+ channels too, and rows of 7-13 from 64 tiles
    on 512+ channels; fewer tiles or channels keep the per-tap path, and the weight gradient
    its own rule."""
    skip_unless_isa_runs(isa)
    avx2 = isa == "avx2"
    cases = [  # (x, w, pass, Winograd at AVX2, at AVX-512)
        ((1, 256, 15, 15), (256, 256, 3, 3), "forward", True, True),
        ((1, 256, 15, 15), (256, 256, 3, 3), "backward_data", True, True),
        ((1, 256, 19, 19), (256, 256, 3, 3), "backward_data", True, True),
        ((2, 256, 14, 14), (256, 256, 3, 3), "forward", True, True),
        ((1, 256, 14, 14), (256, 256, 3, 3), "forward", True, False),
        ((1, 256, 14, 14), (512, 256, 3, 3), "forward", True, False),
        ((1, 256, 14, 14), (256, 256, 3, 3), "backward_data", False, False),
        ((1, 128, 14, 14), (128, 128, 3, 3), "forward", False, False),
        ((1, 256, 12, 12), (256, 256, 3, 3), "forward", False, False),
        # rows of 7-13 (runs over several tile rows): 64+ tiles on 512+ channels, below AVX-512
        ((8, 512, 7, 7), (512, 512, 3, 3), "forward", True, False),
        ((8, 512, 7, 7), (512, 512, 3, 3), "backward_data", True, False),
        ((8, 256, 7, 7), (256, 256, 3, 3), "forward", False, False),
        ((1, 512, 7, 7), (512, 512, 3, 3), "forward", False, False),
        ((6, 512, 5, 5), (512, 512, 3, 3), "forward", False, False),
    ]
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for x_shape, w_shape, pass_, at_avx2, at_avx512 in cases:
            e = fc.explain(x_shape, w_shape, padding=1, pass_=pass_)
            want = at_avx2 if avx2 else at_avx512
            assert (e.algo == "winograd") == want, (x_shape, w_shape, str(e))
            if not want:
                assert e.algo == "direct", str(e)
        e = fc.explain((1, 256, 15, 15), (256, 256, 3, 3), padding=1, dtype="float64")
        assert e.algo == "direct", str(e)  # float64: 8-tile vectors, not measured


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_packed_taps_leave_the_taps_path(isa):
    """On the per-tap domain, one packed GEMM (implicit_gemm) runs (_cpu_taps._packed_taps):
    kernels of at most 3 taps (1x3, 3x1, R(2+1)D's 3x1x1 on two output planes: on four or more
    Winograd runs along depth, test_winograd_axis.py) in both passes, factorised 1xN / Nx1
    forwards, and 3-D forwards over at most 96 channels on rows of at most 16 (I3D's Mixed_4b),
    at both ISA levels; square 2-D kernels, 3-D kernels over more channels or longer rows, and
    those 3-D layers' backward data keep the per-tap path."""
    skip_unless_isa_runs(isa)
    # (the AVX2 rule of an L2 of 1 MiB or more, AVX-512 on 512-bit units; below:
    # test_auto_packed_taps_small_l2, test_auto_packed_taps_on_256bit_avx512_units)
    env = {"FASTCONV_ISA": isa, "FASTCONV_L2_BYTES": "2M", "FASTCONV_AVX512_UNITS": "512"}
    with FastconvProcess(env) as fc:
        for x_shape, w_shape, pad in [
            ((1, 384, 8, 8), (384, 384, 1, 3), (0, 1)),
            ((1, 384, 8, 8), (384, 384, 3, 1), (1, 0)),
            ((8, 1152, 2, 7, 7), (512, 1152, 3, 1, 1), (1, 0, 0)),
        ]:
            for pass_ in ("forward", "backward_data"):
                e = fc.explain(x_shape, w_shape, padding=pad, pass_=pass_)
                if pass_ == "backward_data" and len(w_shape) == 4:
                    assert e.algo == "im2col", str(e)  # their 1xN backward-data rule
                else:
                    assert e.algo == "implicit_gemm" and "3-tap" in e.reason, str(e)
        for x_shape, w_shape, pad in [
            ((1, 768, 9, 9), (128, 768, 1, 7), (0, 3)),
            ((1, 768, 9, 9), (192, 768, 7, 1), (3, 0)),
        ]:
            e = fc.explain(x_shape, w_shape, padding=pad)
            assert e.algo == "implicit_gemm" and "1xN" in e.reason, str(e)
        # I3D-like with 5x5 planes (its 3x3x3 runs Winograd over the depth taps)
        i3d = ((1, 96, 16, 14, 14), (208, 96, 3, 5, 5))
        e = fc.explain(*i3d, padding=1)
        assert e.algo == "implicit_gemm" and "3-D kernel over few channels" in e.reason, str(e)
        for x_shape, w_shape, pass_ in [
            (*i3d, "backward_data"),
            ((1, 128, 8, 14, 14), (128, 128, 3, 3, 3), "forward"),  # more channels
            ((1, 64, 8, 28, 28), (64, 64, 3, 3, 3), "forward"),  # longer rows (AVX2: the FFT's)
            ((1, 512, 7, 7), (512, 512, 3, 3), "forward"),
        ]:
            e = fc.explain(x_shape, w_shape, padding=1, pass_=pass_)
            assert e.algo != "implicit_gemm", str(e)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_packed_taps_small_l2(isa):
    """Where the L2 is under 1 MiB (FASTCONV_L2_BYTES sets it; the AMD EPYCs: 512 KiB), the AVX2
    level keeps 1xN / Nx1 forwards and I3D-like 3-D forwards on the per-tap path (explain says
    why); 3-tap kernels still run one packed GEMM; AVX-512's choices do not change."""
    skip_unless_isa_runs(isa)
    env = {"FASTCONV_ISA": isa, "FASTCONV_L2_BYTES": "512K", "FASTCONV_AVX512_UNITS": "512"}
    with FastconvProcess(env) as fc:
        assert fc.info()["caches"]["l2"] == 512 << 10
        for x_shape, w_shape, pad in [
            ((1, 768, 9, 9), (128, 768, 1, 7), (0, 3)),
            ((1, 768, 9, 9), (192, 768, 7, 1), (3, 0)),
            ((1, 96, 16, 14, 14), (208, 96, 3, 5, 5), 1),
        ]:
            e = fc.explain(x_shape, w_shape, padding=pad)
            if isa == "avx512":
                assert e.algo == "implicit_gemm" and "L2" not in e.reason, str(e)
            else:
                assert e.algo == "direct" and "L2 under 1 MiB" in e.reason, str(e)
        e = fc.explain((1, 384, 8, 8), (384, 384, 1, 3), padding=(0, 1))
        assert e.algo == "implicit_gemm" and "3-tap" in e.reason, str(e)
        # a square 2-D kernel was never the packed GEMM's: no L2 note
        e = fc.explain((1, 512, 7, 7), (512, 512, 3, 3), padding=1)
        assert "L2" not in e.reason, str(e)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_packed_taps_on_256bit_avx512_units(isa):
    """Where AVX-512 runs on 256-bit units (FASTCONV_AVX512_UNITS=256; AMD's Zen 4), the AVX-512
    level keeps 3-tap kernels (both passes), 1xN / Nx1 forwards and backward data and I3D-like
    3-D forwards with output rows of up to 17 on the per-tap path, explain saying why; AVX2's
    choices do not depend on it. The per-tap path's results match the float64 oracle."""
    skip_unless_isa_runs(isa)
    cases = [  # (x, w, padding, pass, the choice at AVX-512 on 512-bit units)
        ((1, 384, 8, 8), (384, 384, 1, 3), (0, 1), "forward", "implicit_gemm"),
        ((8, 1152, 2, 7, 7), (512, 1152, 3, 1, 1), (1, 0, 0), "forward", "implicit_gemm"),
        ((8, 1152, 2, 7, 7), (512, 1152, 3, 1, 1), (1, 0, 0), "backward_data", "implicit_gemm"),
        ((1, 768, 9, 9), (128, 768, 1, 7), (0, 3), "forward", "implicit_gemm"),
        ((1, 768, 9, 9), (192, 768, 7, 1), (3, 0), "forward", "implicit_gemm"),
        ((1, 96, 16, 14, 14), (208, 96, 3, 5, 5), 1, "forward", "implicit_gemm"),
        # 1xN / Nx1 backward data: im2col's column GEMM on 512-bit units (_cpu_rule)
        ((1, 768, 9, 9), (128, 768, 1, 7), (0, 3), "backward_data", "im2col"),
        ((2, 384, 8, 8), (384, 384, 3, 1), (1, 0), "backward_data", "im2col"),
        # batches of 4+ such maps: Winograd along H on 512-bit units (_axis_winograd)
        ((8, 384, 8, 8), (384, 384, 3, 1), (1, 0), "backward_data", "winograd"),
    ]
    found = {}
    for units in ("256", "512"):
        env = {"FASTCONV_ISA": isa, "FASTCONV_L2_BYTES": "1M", "FASTCONV_AVX512_UNITS": units}
        with FastconvProcess(env) as fc:
            for x_shape, w_shape, pad, pass_, wide in cases:
                e = fc.explain(x_shape, w_shape, padding=pad, pass_=pass_)
                found[units, x_shape, w_shape, pass_] = e.algo
                if isa == "avx512" and units == "256":
                    assert e.algo == "direct", str(e)
                    assert "AVX-512 on 256-bit units" in e.reason, str(e)
                elif isa == "avx512":
                    assert e.algo == wide, str(e)
            # rows of more than 17 outputs keep the packed GEMM (a 3x1x1 layer over 32 input
            # channels: R(2+1)D's own 288 run Winograd along depth)
            e = fc.explain((1, 32, 8, 28, 28), (128, 32, 3, 1, 1), padding=(1, 0, 0))
            assert e.algo == "implicit_gemm", (units, str(e))
            if isa == "avx512" and units == "256":
                rng = np.random.default_rng(11)
                x = rng.standard_normal((2, 24, 3, 6, 6)).astype(np.float32)
                w = rng.standard_normal((20, 24, 3, 1, 1)).astype(np.float32)
                assert fc.explain(x.shape, w.shape, padding=(1, 0, 0)).algo == "direct"
                got = fc.conv(x, w, padding=(1, 0, 0))
                assert_close(got, ref.conv(x, w, padding=(1, 0, 0)), reduction=24 * 3)
                x = rng.standard_normal((2, 20, 9, 9)).astype(np.float32)  # 1x5 backward data
                w = rng.standard_normal((18, 20, 1, 5)).astype(np.float32)
                gy = rng.standard_normal((2, 18, 9, 9)).astype(np.float32)
                e = fc.explain(x.shape, w.shape, padding=(0, 2), pass_="backward_data")
                assert e.algo == "direct", str(e)
                got = fc.conv_backward_data(gy, w, x.shape, padding=(0, 2))
                want = ref.conv_backward_data(gy, w, x.shape, padding=(0, 2))
                assert_close(got, want, reduction=18 * 5)
    if isa == "avx2":
        for x_shape, w_shape, _, pass_, _ in cases:
            key = (x_shape, w_shape, pass_)
            assert found[("256", *key)] == found[("512", *key)], key


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_temporal_kernels_on_large_planes_use_columns_below_avx512(isa):
    """_cpu_taps._temporal_columns: a 3-D kernel with taps along time only (R(2+1)D's 3x1x1)
    on planes of 2048+ positions runs its forward as im2col at AVX2 (each column a whole
    shifted plane), implicit GEMM at AVX-512; its other passes, 28x28 planes and kernels with
    spatial taps are unchanged. (Under 40 input channels: R(2+1)D's own stem, 45 -> 64, runs
    Winograd along depth, test_winograd_axis.py.)"""
    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        stem = ((1, 32, 16, 56, 56), (64, 32, 3, 1, 1))
        e = fc.explain(*stem, padding=(1, 0, 0))
        assert (e.algo == "im2col") == (isa == "avx2"), str(e)
        if isa == "avx2":
            assert "temporal" in e.reason, str(e)
        for pass_ in ("backward_data", "backward_weight"):
            e = fc.explain(*stem, padding=(1, 0, 0), pass_=pass_)
            assert e.algo == "implicit_gemm", str(e)
        e = fc.explain((1, 32, 8, 28, 28), (128, 32, 3, 1, 1), padding=(1, 0, 0))
        assert e.algo == "implicit_gemm", str(e)
        e = fc.explain((1, 45, 16, 56, 56), (64, 45, 1, 3, 3), padding=(0, 1, 1))
        assert "temporal" not in e.reason, str(e)
