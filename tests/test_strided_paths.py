"""The strided GEMM paths against the float64 oracle, at 1 and 2 threads, NaN-poisoned outputs:
im2col's backward data as column GEMM tiles gathered by stride phase (csrc/algo/
column_backward_data.cc: plane by plane for whole images and for bands of k == s upsampling,
line by line otherwise, tiles of several images or of grad_y lines), and, on strided convs,
the forward and weight gradient of implicit GEMM and im2col with them. Shapes are sized to reach
each tiling (the tile budgets are fixed byte counts, so float64 tiles hold half as much)."""

from __future__ import annotations

import math

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, FastconvProcess, assert_close, rand, skip_unless_isa_runs

# (name, x shape (N, C_in, *in), weight shape (C_in, K/G, *kernel), keyword arguments)
TRANSPOSED = [
    # whole images, three image blocks of a 13-image batch, two channel blocks
    ("k4s2-blocks", (13, 12, 8, 8), (12, 40, 4, 4), dict(stride=2, padding=1)),
    # C/G * taps = 1024 (4 KiB rows): the GEMMs pack the weight's columns a column at a time
    ("k4s2-4kib-weight-rows", (3, 8, 5, 6), (8, 64, 4, 4), dict(stride=2, padding=1)),
    # kernel == stride on a large image: bands of grad_y lines, still plane by plane
    ("k2s2-bands", (1, 16, 40, 70), (16, 24, 2, 2), dict(stride=2)),
    # grad_x != stride x grad_y: line by line, bands whose edge lines add up over two tiles
    ("k3s2-lines", (1, 32, 30, 40), (32, 20, 3, 3), dict(stride=2, padding=1)),
    # stride > kernel: grad_x lines no tap reaches are zero
    ("k2s3-unreached", (2, 6, 5, 7), (6, 4, 2, 2), dict(stride=3, padding=(1, 0))),
    (
        "outpad-groups",
        (3, 6, 5, 7),
        (6, 3, 4, 4),
        dict(stride=2, padding=1, groups=2, output_padding=1),
    ),
    (
        "dilation",
        (2, 5, 6, 6),
        (5, 7, 3, 3),
        dict(stride=2, padding=2, dilation=2, output_padding=1),
    ),
    ("rank1", (4, 6, 33), (6, 5, 4), dict(stride=2, padding=1)),
    ("rank3", (2, 4, 3, 4, 5), (4, 3, 2, 4, 4), dict(stride=(2, 2, 2), padding=(0, 1, 1))),
]


@pytest.fixture(params=[1, 2], ids=lambda t: f"t{t}")
def threads(request, restore_threads):
    fastconv.set_num_threads(request.param)
    return request.param


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", TRANSPOSED, ids=lambda c: c[0])
def test_transposed_forward_by_column_tiles(case, dtype, threads, rng, poisoned_outputs):
    _, x_shape, w_shape, kw = case
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[1] * kw.get("groups", 1),), dtype)
    y = fastconv.conv_transpose(x, w, b, algo="im2col", **kw)
    assert_close(
        y, ref.conv_transpose(x, w, b, **kw), reduction=w_shape[0] * math.prod(w_shape[2:])
    )


def test_auto_runs_upsampling_by_column_tiles():
    """U-Net's 2x2 / 2 transposed convs take the column tiles, gathered plane by plane (DCGAN's
    4x4 / 2 on a batch of 4x4 maps scatters per tap instead, test_batch_taps.py; g3 and g4 run
    Winograd's stride phases); so does every other strided backward data of single images (3x3 /
    2: uneven phases, 1x1 / 2, 3-D), with col2im per tile."""
    dcgan = fastconv.explain(  # g2 at batch 4: below the batch path's 8 images
        (4, 512, 4, 4), (512, 256, 4, 4), op="conv_transpose", stride=2, padding=1
    )
    unet = fastconv.explain((1, 128, 64, 64), (128, 64, 2, 2), op="conv_transpose", stride=2)
    for e in (dcgan, unet):
        assert e.algo == "im2col" and "plane by plane" in e.reason, e
    for x_shape, w_shape, kw in (
        ((1, 128, 56, 56), (128, 128, 3, 3), dict(stride=2, padding=1)),
        ((1, 256, 56, 56), (512, 256, 1, 1), dict(stride=2)),
        ((1, 64, 8, 28, 28), (128, 64, 3, 3, 3), dict(stride=2, padding=1)),
    ):
        e = fastconv.explain(x_shape, w_shape, pass_="backward_data", **kw)
        assert e.algo == "im2col" and "strided backward data" in e.reason, e
    # Unit stride stays on implicit GEMM; so does a large image's strided weight gradient,
    # whose stride phases it gathers faster than im2col's column chunks (on 256-bit AVX-512
    # units a 3x3 / 2 one over 64+ channels runs Winograd at stride 2: test_winograd_stride2.py).
    e = fastconv.explain((1, 128, 56, 56), (128, 128, 1, 1), pass_="backward_data")
    assert e.algo == "implicit_gemm", e
    info = fastconv.info()
    zen4 = info["isa_active"] in ("avx512", "avx2") and info["avx512_units"] == 256
    e = fastconv.explain(
        (1, 64, 160, 160), (128, 64, 3, 3), stride=2, padding=1, pass_="backward_weight"
    )
    assert e.algo == ("winograd" if zen4 else "implicit_gemm"), e
    e = fastconv.explain(  # 4x4: no Winograd
        (1, 64, 224, 224), (64, 64, 4, 4), padding=1, pass_="backward_weight"
    )
    assert e.algo == "im2col" and "large image" in e.reason, e
    # dilated (padding not a multiple of the dilation: no Winograd): implicit GEMM, as im2col's
    # columns are longer strided gathers there (64 ch 224x224 d2: 17.3 vs 21.6 ms)
    e = fastconv.explain(
        (1, 64, 224, 224), (64, 64, 3, 3), padding=1, dilation=2, pass_="backward_weight"
    )
    assert e.algo == "implicit_gemm", e


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_strided_forwards_leave_the_taps_path(isa):
    """Strided float32 forwards that the per-tap path would take (_cpu_taps._strided_packed):
    at AVX2 implicit GEMM's packed phases for batches with rows longer than 4 and single images
    with rows of 20+ (where the L2 is under 1 MiB only from 512 output channels: FASTCONV_L2_BYTES
    sets it); at AVX-512 for batches with rows longer than 7 and single images with rows of
    17+. Winograd at stride 2 takes some of them first with the 2 MiB L2 set here
    (_cpu_stems._stride2_winograd)."""
    skip_unless_isa_runs(isa)
    cases = {
        # (x, w, want at AVX2, want at AVX-512)
        # (Winograd at stride 2 takes res3 and res4 x8 first with a 2 MiB L2: _stride2_winograd)
        "res3 56x56 b1": ((1, 128, 56, 56), (128, 128, 3, 3), "winograd", "winograd"),
        # 48 output channels: not Winograd at stride 2; rows of 28 (AVX2's 20+, AVX-512's 17+)
        "rows of 28 b1": ((1, 128, 56, 56), (48, 128, 3, 3), "implicit_gemm", "implicit_gemm"),
        "res4 28x28 b1": ((1, 256, 28, 28), (256, 256, 3, 3), "direct", "direct"),
        "rows of 17 b1": ((1, 288, 33, 33), (384, 288, 3, 3), "direct", "implicit_gemm"),
        "res4 28x28 b2": ((2, 256, 28, 28), (256, 256, 3, 3), "implicit_gemm", "implicit_gemm"),
        "res4 28x28 b8": ((8, 256, 28, 28), (256, 256, 3, 3), "winograd", "winograd"),
        # batches of small maps: direct's images-innermost path at both (_batch_taps_served;
        # res5's 7x7 at AVX2 16.3 vs implicit GEMM's 18.3 ms)
        "res5 14x14 b8": ((8, 512, 14, 14), (512, 512, 3, 3), "direct", "direct"),
        "6x6 rows of 3": ((16, 512, 6, 6), (512, 512, 3, 3), "direct", "direct"),
    }
    # The AVX2 rule of an L2 of 1 MiB or more (the Xeon it was measured on: 2 MiB), and AVX-512
    # on 512-bit units (that Xeon's; below: 256-bit units)
    wide = {"FASTCONV_ISA": isa, "FASTCONV_L2_BYTES": "2M", "FASTCONV_AVX512_UNITS": "512"}
    with FastconvProcess(wide) as fc:
        for name, (x_shape, w_shape, at_avx2, at_avx512) in cases.items():
            e = fc.explain(x_shape, w_shape, stride=2, padding=1)
            assert e.algo == (at_avx512 if isa == "avx512" else at_avx2), (name, str(e))
            e64 = fc.explain(x_shape, w_shape, stride=2, padding=1, dtype="float64")
            if e.algo == "implicit_gemm" and "strided: one packed GEMM" in e.reason:
                assert "strided: one packed GEMM" not in e64.reason, name  # float32's rule
    # An L2 under 1 MiB (the AMD EPYCs: 512 KiB): at AVX2 the per-tap path below 512 output
    # channels, explain saying why; AVX-512's choices do not depend on it.
    small = {  # (x, w, want at AVX2, want at AVX-512)
        "res3 56x56 b1": ((1, 128, 56, 56), (128, 128, 3, 3), "direct", "implicit_gemm"),
        "res3 56x56 b8": ((8, 128, 56, 56), (128, 128, 3, 3), "direct", "implicit_gemm"),
        "res4 28x28 b8": ((8, 256, 28, 28), (256, 256, 3, 3), "direct", "implicit_gemm"),
        "rows of 20": ((1, 256, 40, 40), (512, 256, 3, 3), "implicit_gemm", "implicit_gemm"),
        # 7x7 outputs at batch 8: direct's images-innermost path at both (_cpu_taps._taps_choice)
        "res5 14x14 b8": ((8, 512, 14, 14), (512, 512, 3, 3), "direct", "direct"),
    }  # fmt: skip
    small_l2 = {"FASTCONV_ISA": isa, "FASTCONV_L2_BYTES": "512K", "FASTCONV_AVX512_UNITS": "512"}
    with FastconvProcess(small_l2) as fc:
        for name, (x_shape, w_shape, at_avx2, at_avx512) in small.items():
            e = fc.explain(x_shape, w_shape, stride=2, padding=1)
            if isa == "avx512":
                assert e.algo == at_avx512 and "L2" not in e.reason, (name, str(e))
                continue
            assert e.algo == at_avx2, (name, str(e))
            if at_avx2 == "direct":
                why = "a batch of small maps" if name == "res5 14x14 b8" else "L2 under 1 MiB"
                assert why in e.reason, (name, str(e))


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_single_images_on_256bit_avx512_units(isa):
    """Where 512-bit instructions run on 256-bit units (AMD's Zen 4; FASTCONV_AVX512_UNITS=256
    says so), AVX-512 float32 strided forwards of one small image with rows under 32 stay on
    the per-tap path (_cpu_taps._single_image_taps), and those of one large image over 16-64
    channels with 3x3+ kernels run the direct row kernels (_cpu_stems._strided_rows), explain
    saying why, instead of implicit GEMM's in-place phases or stride-2 gather; batches, more
    channels and float64 are unchanged. On 512-bit units the large images' rule takes the
    forwards with up to 64 output channels. At AVX2 it holds whatever the units (but Winograd
    at stride 2, which takes its layers on 256-bit units at both levels). The results match the
    float64 oracle."""
    skip_unless_isa_runs(isa)
    cases = {  # (x, w, padding, want at AVX-512 on 256-bit units)
        # 3x3 / 2 on 64+ channels, and on 256-bit units 32+ with large maps whose kernels fit
        # half the L2: Winograd F(2x2,3x3) at stride 2 (test_winograd_stride2.py)
        "res3 56x56 b1": ((1, 128, 56, 56), (128, 128, 3, 3), 1, "winograd"),
        "Inception 35x35 rows of 17": ((1, 288, 35, 35), (384, 288, 3, 3), 0, "direct"),
        "YOLOv5s 40x40 rows of 20": ((1, 256, 40, 40), (512, 256, 3, 3), 1, "winograd"),
        "YOLOv5s 40x40 b8": ((8, 256, 40, 40), (512, 256, 3, 3), 1, "winograd"),
        "rows of 40": ((1, 128, 80, 80), (256, 128, 3, 3), 1, "winograd"),
        "rows of 160, 32 channels": ((1, 32, 320, 320), (64, 32, 3, 3), 1, "winograd"),
        # one large image over 16-64 channels otherwise: the row kernels (_strided_rows)
        "rows of 112, 16 channels": ((1, 16, 224, 224), (32, 16, 3, 3), 1, "direct"),
        "rows of 56, 128 channels": ((1, 128, 112, 112), (128, 128, 3, 3), 1, "implicit_gemm"),
        "rows of 112, 1x1": ((1, 32, 224, 224), (64, 32, 1, 1), 0, "implicit_gemm"),
    }
    found = {}
    for units in ("256", "512"):
        env = {"FASTCONV_ISA": isa, "FASTCONV_L2_BYTES": "1M", "FASTCONV_AVX512_UNITS": units}
        with FastconvProcess(env) as fc:
            for name, (x_shape, w_shape, pad, want) in cases.items():
                e = fc.explain(x_shape, w_shape, stride=2, padding=pad)
                found[units, name] = e.algo
                if units == "256" and isa == "avx512":
                    assert e.algo == want, (name, str(e))
                    if want == "direct":
                        assert "AVX-512 on 256-bit units" in e.reason, (name, str(e))
                    else:
                        assert "256-bit units" not in e.reason, (name, str(e))
                else:
                    assert "256-bit units" not in e.reason, (name, str(e))
                # the row kernels' large image (on 256-bit units at AVX-512 too, but Winograd
                # takes YOLOv5s's 32 -> 64 there at both levels)
                large = name.startswith("rows of 1") and "1x1" not in name
                if units == "256" and name.startswith("rows of 160"):
                    large = False
                if units == "512" and isa == "avx512":  # up to 64 output channels
                    assert (e.algo == "direct") == large, (name, str(e))
                    assert ("512-bit units, up to 64 output channels" in e.reason) == large, str(e)
                assert ("channels, AVX2: row kernels" in e.reason) == (isa == "avx2" and large), (
                    name,
                    str(e),
                )
                e64 = fc.explain(x_shape, w_shape, stride=2, padding=pad, dtype="float64")
                assert "256-bit units" not in e64.reason, name
            if isa == "avx512":
                rng = np.random.default_rng(5)
                if units == "256":
                    x = rng.standard_normal((1, 64, 35, 35)).astype(np.float32)
                    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
                    got = fc.conv(x, w, stride=2, padding=1)
                    assert_close(got, ref.conv(x, w, stride=2, padding=1), reduction=64 * 9)
                else:  # 128 output channels stay on implicit GEMM on 512-bit units
                    e = fc.explain((1, 64, 160, 160), (128, 64, 3, 3), stride=2, padding=1)
                    assert e.algo == "implicit_gemm", str(e)
                x = rng.standard_normal((1, 16, 90, 90)).astype(np.float32)  # rows of 45
                w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
                e = fc.explain(x.shape, w.shape, stride=2, padding=1)
                assert e.algo == "direct" and f"on {units}-bit units" in e.reason, str(e)
                got = fc.conv(x, w, stride=2, padding=1)
                assert_close(got, ref.conv(x, w, stride=2, padding=1), reduction=16 * 9)
    for name, case in cases.items():  # below AVX-512 the setting changes only Winograd at stride 2
        if isa == "avx2":
            if case[3] == "winograd":  # (measured on Zen 4 at AVX2 too: _stride2_winograd)
                assert found["256", name] == "winograd", name
            else:
                assert found["256", name] == found["512", name], name


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_strided_weight_gradients_of_one_large_image(isa):
    """The weight gradient of one large image's strided 3x3+ layer over 16-32 input channels
    runs the direct row kernels (band by band) at AVX2 and AVX-512, on 256-bit and 512-bit units
    (_cpu_stems._strided_rows), explain saying why; 64 channels and float64 keep implicit
    GEMM (on 256-bit AVX-512 units 64+ channels run Winograd at stride 2; batches over few
    channels: the next test). The result matches the float64 oracle."""
    skip_unless_isa_runs(isa)
    for units in ("256", "512"):
        env = {"FASTCONV_ISA": isa, "FASTCONV_L2_BYTES": "1M", "FASTCONV_AVX512_UNITS": units}
        with FastconvProcess(env) as fc:

            def algo(x_shape, w_shape, **kw):
                e = fc.explain(x_shape, w_shape, stride=2, padding=1, pass_="backward_weight", **kw)
                return e.algo, e.reason

            got, why = algo((1, 32, 320, 320), (64, 32, 3, 3))
            assert got == "direct", why
            assert "16-32 input channels" in why and "row kernels" in why, why
            if isa == "avx512":  # the units named; no output-channel cap on the weight gradient
                assert f"AVX-512 on {units}-bit units: row kernels" in why, why
                got, why = algo((1, 32, 160, 160), (128, 32, 3, 3))
                assert got == "direct" and "output channels" not in why, why
            stride2_winograd = units == "256"
            want = "winograd" if stride2_winograd else "implicit_gemm"
            assert algo((1, 64, 160, 160), (128, 64, 3, 3))[0] == want
            assert algo((2, 64, 160, 160), (64, 64, 3, 3))[0] != "direct"  # batches: below
            assert "row kernels" not in algo((1, 32, 320, 320), (64, 32, 3, 3), dtype="float64")[1]
            rng = np.random.default_rng(7)
            x = rng.standard_normal((1, 16, 90, 90)).astype(np.float32)  # rows of 45
            gy = rng.standard_normal((1, 24, 45, 45)).astype(np.float32)
            assert algo(x.shape, (24, 16, 3, 3))[0] == "direct"
            gw = fc.conv_backward_weight(x, gy, (24, 16, 3, 3), stride=2, padding=1)
            want = ref.conv_backward_weight(x, gy, (24, 16, 3, 3), stride=2, padding=1)
            assert_close(gw, want, reduction=45 * 45)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_strided_batches_over_few_channels(isa):
    """Batches of large images over 16-32 input channels run the direct row kernels too
    (_cpu_stems._strided_rows): the weight gradient from output rows past 40, the forward from
    rows of 64 (shorter rows lost or swung on the Xeon), at every level and unit width (on
    512-bit units the forward up to 64 output channels); 64 input channels stay on implicit
    GEMM. On 256-bit units (with a 1 MiB L2, set here) the forward over 32 input channels to 64+
    output channels runs Winograd at stride 2 in bands instead (test_winograd_stride2.py). The
    results match the float64 oracle."""
    skip_unless_isa_runs(isa)
    for units in ("256", "512"):
        env = {"FASTCONV_ISA": isa, "FASTCONV_AVX512_UNITS": units, "FASTCONV_L2_BYTES": "1M"}
        with FastconvProcess(env) as fc:

            def explain(x_shape, w_shape, pass_="forward"):
                return fc.explain(x_shape, w_shape, stride=2, padding=1, pass_=pass_)

            for p in ("forward", "backward_weight"):
                e = explain((2, 32, 160, 160), (64, 32, 3, 3), p)  # rows of 80
                if p == "forward" and units == "256":
                    assert e.algo == "winograd" and "in bands" in e.reason, str(e)
                    continue
                assert e.algo == "direct" and "large images, 16-32 input" in e.reason, str(e)
                assert explain((2, 64, 112, 112), (64, 64, 3, 3), p).algo != "direct"
            assert explain((4, 32, 112, 112), (64, 32, 3, 3)).algo != "direct"  # rows of 56
            e = explain((4, 32, 112, 112), (64, 32, 3, 3), "backward_weight")
            assert e.algo == "direct", str(e)
            if isa == "avx512" and units == "512":
                assert explain((2, 32, 160, 160), (128, 32, 3, 3)).algo != "direct"
            rng = np.random.default_rng(11)
            x = rng.standard_normal((2, 16, 130, 130)).astype(np.float32)  # rows of 65
            w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
            assert explain(x.shape, w.shape).algo == "direct"
            got = fc.conv(x, w, stride=2, padding=1)
            assert_close(got, ref.conv(x, w, stride=2, padding=1), reduction=16 * 9)
            gy = rng.standard_normal(got.shape).astype(np.float32)
            assert explain(x.shape, w.shape, "backward_weight").algo == "direct"
            gw = fc.conv_backward_weight(x, gy, w.shape, stride=2, padding=1)
            want = ref.conv_backward_weight(x, gy, w.shape, stride=2, padding=1)
            assert_close(gw, want, reduction=2 * 65 * 65)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_few_channel_weight_gradients_on_rows(isa):
    """3x3 weight gradients of batches over up to 16 input channels (CIFAR ResNets' first stage)
    on the direct row kernels (_cpu_stems._few_channel_weight_rows), at stride 1 and 2; 32 input
    channels, single images, 5x5 kernels and float64 keep the previous choice; 32 output channels
    at stride 1 only at AVX-512. The results match the float64 oracle."""
    skip_unless_isa_runs(isa)
    why = "a batch over up to 16 input channels"
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:

        def explain(x_shape, w_shape, stride=1, dtype="float32"):
            kw = dict(stride=stride, padding=w_shape[-1] // 2, dtype=dtype)
            return fc.explain(x_shape, w_shape, pass_="backward_weight", **kw)

        for x_shape, w_shape, stride, want in [
            ((128, 16, 32, 32), (16, 16, 3, 3), 1, True),
            ((32, 16, 16, 16), (16, 16, 3, 3), 1, True),
            ((128, 16, 32, 32), (32, 16, 3, 3), 2, True),
            ((64, 16, 32, 32), (32, 16, 3, 3), 1, isa == "avx512"),
            ((32, 32, 32, 32), (32, 32, 3, 3), 1, False),
            ((4, 16, 32, 32), (16, 16, 3, 3), 1, False),
            ((32, 16, 32, 32), (16, 16, 5, 5), 1, False),
            ((32, 16, 32, 32), (64, 16, 3, 3), 2, False),
        ]:
            e = explain(x_shape, w_shape, stride)
            assert (e.algo == "direct" and why in e.reason) == want, (x_shape, w_shape, str(e))
            assert why not in explain(x_shape, w_shape, stride, "float64").reason
        rng = np.random.default_rng(5)
        x = rng.standard_normal((8, 16, 20, 18)).astype(np.float32)
        gy = rng.standard_normal((8, 16, 10, 9)).astype(np.float32)
        assert why in explain(x.shape, (16, 16, 3, 3), 2).reason
        gw = fc.conv_backward_weight(x, gy, (16, 16, 3, 3), stride=2, padding=1)
        want = ref.conv_backward_weight(x, gy, (16, 16, 3, 3), stride=2, padding=1)
        assert_close(gw, want, reduction=8 * 90)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_kernels_that_tile_the_input(isa):
    """Kernel = stride, no padding (U-Net's 2x2 / 2): the per-tap path has no padding to skip, so
    small images run implicit GEMM (_cpu_taps._tiling_kernel); one large image with up to 64
    input channels runs the direct row kernels below AVX-512 (_cpu_rule._patch_rows), implicit
    GEMM at AVX-512."""
    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:

        def explain(x_shape, w_shape, **kw):
            return fc.explain(x_shape, w_shape, stride=2, **kw)

        for x_shape, w_shape in [
            ((1, 256, 32, 32), (512, 256, 2, 2)),
            ((1, 512, 32, 32), (1024, 512, 2, 2)),
            ((1, 128, 64, 64), (256, 128, 2, 2)),  # 128 channels
            ((4, 64, 64, 64), (128, 64, 2, 2)),  # a batch
        ]:
            e = explain(x_shape, w_shape)
            assert e.algo != "direct", str(e)
        for x_shape, w_shape in [
            ((1, 64, 128, 128), (128, 64, 2, 2)),
            ((1, 32, 256, 256), (64, 32, 2, 2)),
        ]:
            e = explain(x_shape, w_shape)
            if isa == "avx512":  # implicit GEMM's stride-2 panel gather is faster there
                assert e.algo == "implicit_gemm" and "2x2 / 2" not in e.reason, str(e)
            else:
                assert e.algo == "direct" and "2x2 / 2" in e.reason, str(e)
        # Padding to skip, or another kernel: the rules before these.
        e = explain((1, 64, 128, 128), (128, 64, 2, 2), padding=1)
        assert "2x2 / 2" not in e.reason, str(e)
        e = explain((1, 256, 24, 24), (512, 256, 2, 2), padding=1)
        assert e.algo == "direct" and "per tap" in e.reason, str(e)
        e = explain((1, 64, 128, 128), (128, 64, 3, 3), padding=1)
        assert "2x2 / 2" not in e.reason, str(e)
        # Output rows the per-tap path serves (64 wide, 16+ channels): not the row kernels'.
        e = explain((1, 64, 256, 64), (128, 64, 2, 2))
        assert "2x2 / 2" not in e.reason, str(e)
        # The transposed layer's forward (the conv's backward data) keeps its own rule.
        up = fc.explain((1, 128, 64, 64), (128, 64, 2, 2), op="conv_transpose", stride=2)
        assert "2x2 / 2" not in up.reason, str(up)
        # The transposed layer's backward data is this forward.
        up = fc.explain(
            (1, 128, 128, 128),
            (128, 64, 2, 2),
            op="conv_transpose",
            stride=2,
            pass_="backward_data",
        )
        assert (up.algo == "direct" and "2x2 / 2" in up.reason) == (isa != "avx512"), str(up)


# (name, x shape, weight shape (K, C/G, *kernel), keyword arguments) of strided convs (rank <= 2
# forward: implicit GEMM reads the input split into stride phases)
STRIDED = [
    # 20 positions per image: folded images, bias added while unfolding
    ("folded", (9, 6, 8, 10), (5, 6, 4, 4), dict(stride=2, padding=1)),
    # one image of 2880 outputs: backward data in bands of grad_y lines
    ("bands", (1, 64, 96, 120), (12, 64, 3, 3), dict(stride=2, padding=1)),
    ("padded-weight", (2, 64, 8, 8), (8, 64, 4, 4), dict(stride=2, padding=1)),
    (
        "groups-dilation-flip",
        (3, 6, 13, 17),
        (4, 3, 3, 3),
        dict(stride=3, padding=2, dilation=2, groups=2, mode="conv"),
    ),
    ("rank1", (3, 5, 40), (4, 5, 5), dict(stride=2, padding=2)),
    ("rank3", (2, 4, 5, 6, 7), (3, 4, 3, 2, 3), dict(stride=(2, 1, 2), padding=1)),
    ("y-only-stride", (2, 4, 9, 7), (3, 4, 3, 3), dict(stride=(2, 1), padding=1)),
    # forward by stride phases: odd extents (uneven phases, zero-filled), rows long enough for
    # the paired split, padding past a phase's end, a tap offset below -stride
    ("phases-odd", (1, 3, 11, 23), (8, 3, 3, 3), dict(stride=2, padding=1)),
    ("phases-pad", (2, 2, 9, 19), (4, 2, 5, 5), dict(stride=(2, 3), padding=(4, 3))),
    ("phases-1x1-x-stride", (1, 4, 6, 30), (3, 4, 1, 2), dict(stride=(1, 4))),
    # forward by column planes of the stride phases (csrc/algo/wide_phases.h; float32, at
    # AVX-512 every geometry below, at AVX2 batches only): rows of 16-22 outputs; images whose
    # 256 positions fill whole panels; two images; stride 3 (the generic column split, 5 column
    # planes per row phase)
    ("wide-folded", (4, 8, 32, 32), (16, 8, 3, 3), dict(stride=2, padding=1)),
    ("wide-images", (2, 6, 34, 44), (7, 6, 3, 3), dict(stride=2, padding=1)),
    ("wide-stride3", (1, 8, 20, 110), (8, 8, 5, 5), dict(stride=3, padding=2)),
    # over 4 MiB of planes per image: bands of output rows, the last a partial GEMM, two images
    ("wide-bands", (2, 256, 100, 44), (8, 256, 3, 3), dict(stride=2, padding=1)),
    # groups; dilated taps at column offsets -2, 0, 2 (x stride 3: rows the gather does not
    # take), true convolution; asymmetric padding
    ("wide-groups", (2, 8, 40, 46), (6, 4, 3, 3), dict(stride=2, padding=1, groups=2)),
    # groups where the threads take whole images (6 >= 2 x 3 threads)
    ("wide-groups-batch", (6, 8, 32, 32), (6, 4, 3, 3), dict(stride=2, padding=1, groups=2)),
    (
        "wide-dilation",
        (2, 8, 30, 100),
        (6, 4, 3, 3),
        dict(stride=(2, 3), padding=2, dilation=2, groups=2, mode="conv"),
    ),
    ("wide-asymmetric", (1, 3, 33, 67), (4, 3, 5, 5), dict(stride=3, padding=(1, 3))),
    # x stride 2 over 5 and 7 column planes (swept 4 at a time, then the rest): 8x8 and 16x16
    # outputs fill whole panels
    ("wide-5-planes", (2, 6, 16, 16), (5, 6, 5, 5), dict(stride=2, padding=2)),
    ("wide-7-planes", (2, 3, 32, 32), (4, 3, 7, 7), dict(stride=2, padding=3)),
    # forward gathering stride-2 columns from the input (forward_double_step; the same float32
    # panels, rows of 24+ outputs): one image per GEMM, rows whose last panel runs past the row
    # end; dilated taps reaching both sides; asymmetric padding; folded images whose panels
    # cross from one image to the next; 1-D; stride 3 down the rows
    ("double-images", (2, 6, 34, 70), (7, 6, 3, 3), dict(stride=2, padding=1)),
    (
        "double-groups-dilation",
        (2, 8, 40, 75),
        (6, 4, 3, 3),
        dict(stride=2, padding=2, dilation=2, groups=2, mode="conv"),
    ),
    ("double-asymmetric", (1, 3, 33, 67), (4, 3, 5, 5), dict(stride=2, padding=(1, 3))),
    ("double-folded", (6, 5, 20, 50), (9, 5, 3, 3), dict(stride=2, padding=1)),
    ("double-rank1", (3, 4, 101), (5, 4, 3), dict(stride=2, padding=1)),
    ("double-y3", (1, 4, 30, 61), (5, 4, 4, 4), dict(stride=(3, 2))),
    ("double-bands", (1, 64, 200, 200), (8, 64, 3, 3), dict(stride=2, padding=1)),
]
WIDE = [case for case in STRIDED if case[0].startswith("wide-")]
DOUBLE = [case for case in STRIDED if case[0].startswith("double-")]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", STRIDED, ids=lambda c: c[0])
def test_strided_forward_and_weight_gradient(case, dtype, threads, rng, poisoned_outputs):
    _, x_shape, w_shape, kw = case
    x, w, b = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype), rand(rng, (w_shape[0],), dtype)
    want_y = ref.conv(x, w, b, **kw)
    for algo in ("implicit_gemm", "im2col"):
        y = fastconv.conv(x, w, b, algo=algo, **kw)
        assert_close(y, want_y, reduction=math.prod(w_shape[1:]))
    gy = rand(rng, y.shape, dtype)
    want = ref.conv_backward_weight(x, gy, w.shape, **kw)
    for algo in ("implicit_gemm", "im2col"):
        gw = fastconv.conv_backward_weight(x, gy, w.shape, algo=algo, **kw)
        assert_close(gw, want, reduction=x_shape[0] * math.prod(y.shape[2:]))
    gx = fastconv.conv_backward_data(gy, w, x.shape, algo="im2col", **kw)
    want = ref.conv_backward_data(gy, w, x.shape, **kw)
    assert_close(gx, want, reduction=w_shape[0] * math.prod(w_shape[2:]))


def _strided_panel_path(name, x_shape, isa, dtype):
    """Which of the two paths a wide-* / double-* case takes (or None): at AVX-512 float32 its
    own; at AVX2 (16-wide panels, no double step) float32 batches run on the column planes,
    single images on neither (nor wide-bands' images, whose planes pass a quarter of the L2);
    float64 neither."""
    if dtype != "float32":
        return None
    if isa == "avx512":
        return name.split("-")[0]
    return "wide" if x_shape[0] >= 2 and name != "wide-bands" else None


STRIDED_PANEL_NOTES = {
    "wide": "column planes of the stride phases, panels read in place, output written in place",
    "double": "stride-2 columns gathered from the input",
}


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_strided_cases_reach_their_path(isa, rng):
    """The wide-* geometries above run on the column planes and the double-* ones gather
    stride-2 columns from the input at AVX-512 float32, and at AVX2 the batches among them run
    on the column planes (an L2 of 2 MiB: each image's planes fit a quarter of it), so the oracle
    checks cover those paths; explain says which, and the results match the oracle at that level
    too. float64 takes neither."""
    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_L2_BYTES": "2M"}) as fc:
        for name, x_shape, w_shape, kw in WIDE + DOUBLE:
            for dtype in ("float32", "float64"):
                path = _strided_panel_path(name, x_shape, isa, dtype)
                e = str(fc.explain(x_shape, w_shape, algo="implicit_gemm", dtype=dtype, **kw))
                for which, note in STRIDED_PANEL_NOTES.items():
                    assert (note in e) == (path == which), (name, dtype, e)
            if _strided_panel_path(name, x_shape, isa, "float32"):
                x, w = rand(rng, x_shape, np.float32), rand(rng, w_shape, np.float32)
                b = rand(rng, (w_shape[0],), np.float32)
                y = fc.conv(x, w, b, algo="implicit_gemm", **kw)
                assert_close(y, ref.conv(x, w, b, **kw), reduction=math.prod(w_shape[1:]))


def test_strided_panels_property_matches_the_paths():
    """conv_problem's implicit_gemm_strided_panels (what auto's rule reads) holds exactly where
    one of the two paths runs at this machine's level."""
    from fastconv._cpu_rule import _active_isa
    from fastconv._problem import conv_problem

    isa = _active_isa()
    if isa not in ("avx2", "avx512"):
        pytest.skip("no 16- or 32-wide float32 panels at this level")
    l2 = fastconv.info()["caches"]["l2"]
    for name, x_shape, w_shape, kw in WIDE + DOUBLE:
        for dtype in ("float32", "float64"):
            path = _strided_panel_path(name, x_shape, isa, dtype)
            if isa == "avx2" and path == "wide" and l2 < (2 << 20):
                continue  # the planes may not fit a quarter of a smaller L2
            problem = conv_problem("conv", "forward", x_shape, w_shape, dtype, **kw)
            assert problem.implicit_gemm_strided_panels == (path is not None), (name, dtype)


def test_auto_runs_strided_forward_without_a_phase_split():
    """Where implicit GEMM runs a strided forward without packing a phase split (AVX-512
    float32: column planes read in place on rows of 16+ per column the taps span or whole panels
    of positions, up to 256 output channels per group; or stride-2 columns gathered from the
    input, rows of 24+ outputs), `auto` runs it and explain says so; elsewhere (float64, short
    rows with a partial last panel or more channels, other passes) the property is false."""
    from fastconv._cpu_rule import _active_isa
    from fastconv._problem import conv_problem

    kw = dict(stride=2, padding=1)
    res3 = ((1, 128, 56, 56), (128, 128, 3, 3))
    expected = _active_isa() == "avx512"
    assert (
        conv_problem("conv", "forward", *res3, "float32", **kw).implicit_gemm_strided_panels
        == expected
    )
    for shapes, dtype, pass_ in [
        (res3, "float64", "forward"),
        (((1, 256, 28, 28), (256, 256, 3, 3)), "float32", "forward"),  # margins 1/14
        (((1, 256, 40, 40), (512, 256, 3, 3)), "float32", "forward"),  # 512 output channels
        (res3, "float32", "backward_weight"),
    ]:
        problem = conv_problem("conv", pass_, *shapes, dtype, **kw)
        assert not problem.implicit_gemm_strided_panels, (shapes, dtype, pass_)
    # (two images: one stays on the per-tap path where AVX-512 runs on 256-bit units,
    # test_auto_single_images_on_256bit_avx512_units; there 3x3 / 2 on 64+ channels runs
    # Winograd F(2x2,3x3) at stride 2, so 48 output channels here)
    e = fastconv.explain((2, 128, 56, 56), (48, 128, 3, 3), **kw)
    assert (e.algo == "implicit_gemm" and "no phase split" in e.reason) == expected, e


# Strided forwards of one large image over stride phases (csrc/algo/phase_bands.h: 4 MiB or
# more of phases, panels of up to 16 columns): each thread splits bands of output rows into planes
# of its own, moving the rows the next band shares to the top. Bands ending in a partial one; a
# 5x5 kernel at row stride 2 (taps two phase rows apart) and column stride 3; groups with dilated
# taps of a true convolution. At 1 thread these always run in bands (where the panels allow);
# with more, only where each thread gets two bands (the band height follows the L2 size).
PHASE_BANDS = [
    ("bands-partial", (1, 24, 300, 150), (6, 24, 3, 3), dict(stride=2, padding=1)),
    ("bands-span2", (1, 12, 401, 300), (4, 12, 5, 5), dict(stride=(2, 3), padding=2)),
    (
        "bands-groups",
        (1, 16, 520, 256),
        (6, 8, 3, 3),
        dict(stride=2, padding=2, dilation=2, groups=2, mode="conv"),
    ),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", PHASE_BANDS, ids=lambda c: c[0])
def test_strided_forward_in_phase_bands(case, dtype, threads, rng, poisoned_outputs):
    from fastconv._cpu_rule import _active_isa

    _, x_shape, w_shape, kw = case
    x, w, b = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype), rand(rng, (w_shape[0],), dtype)
    y = fastconv.conv(x, w, b, algo="implicit_gemm", **kw)
    assert_close(y, ref.conv(x, w, b, **kw), reduction=math.prod(w_shape[1:]))
    if threads == 1:
        e = str(fastconv.explain(x, w, algo="implicit_gemm", **kw))
        banded = not (_active_isa() == "avx512" and np.dtype(dtype) == np.float32)  # 32 wide
        assert ("split band by band" in e) == banded, e


def test_phase_bands_at_every_isa(isa, rng, fastconv_with_env):
    """The band path under each ISA's micro-kernel (scalar and AVX2 panels at both dtypes,
    float64 at AVX-512), against the float64 oracle; one thread, so bands whatever the L2."""
    fc = fastconv_with_env(FASTCONV_ISA=isa, FASTCONV_NUM_THREADS="1")
    _, x_shape, w_shape, kw = PHASE_BANDS[1]
    for dtype in DTYPES:
        x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
        y = fc.conv(x, w, algo="implicit_gemm", **kw)
        assert_close(y, ref.conv(x, w, None, **kw), reduction=math.prod(w_shape[1:]))


# Forwards whose implicit-GEMM panels gather stride-2 columns from the input at every ISA level
# (the panel kernel's double-step loads; not a phase split): 1x1 / 2 (ResNet's downsampling
# shortcut), 3-D with x stride 2 (phases are 2-D only), and a 2-D layer that takes the gather at
# AVX-512 float32 (rows of 24+ outputs) and phases elsewhere. Edges: padding on both sides, rows
# whose panels end past the input row, odd widths, dilation, folded images.
DOUBLE_STEP_GATHERS = [
    ((2, 8, 9, 45), (6, 8, 1, 1), dict(stride=2)),
    ((1, 5, 7, 66), (7, 5, 1, 1), dict(stride=(1, 2))),
    ((2, 3, 5, 6, 41), (4, 3, 3, 3, 3), dict(stride=(1, 2, 2), padding=1)),
    ((1, 4, 4, 5, 70), (3, 4, 2, 1, 3), dict(stride=2, padding=(0, 0, 2), dilation=(1, 1, 2))),
    ((3, 6, 12, 61), (5, 6, 3, 3), dict(stride=2, padding=1)),
    # single small images as the transposed product, whose columns are one panel of all the
    # output positions: 48 (three vectors at AVX-512 float32), 16 (one), 24 (three at AVX2)
    ((1, 8, 12, 16), (6, 8, 3, 3), dict(stride=2, padding=1)),
    ((1, 8, 8, 8), (6, 8, 3, 3), dict(stride=2, padding=1)),
    ((1, 8, 8, 12), (6, 8, 3, 3), dict(stride=2, padding=1)),
]


def test_double_step_gathers_at_every_isa(isa, rng, fastconv_with_env):
    """The panel kernel's stride-2 rows (two masked vector loads and their even lanes at AVX2 /
    AVX-512, element by element in the scalar kernel) against the float64 oracle, float32 and
    float64 (whose vectors hold half as many columns)."""
    fc = fastconv_with_env(FASTCONV_ISA=isa)
    for dtype in DTYPES:
        for x_shape, w_shape, kw in DOUBLE_STEP_GATHERS:
            x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
            y = fc.conv(x, w, algo="implicit_gemm", **kw)
            assert_close(y, ref.conv(x, w, None, **kw), reduction=math.prod(w_shape[1:]))


def _random_panel_geometry(seed):
    """A strided 2-D forward whose outputs fill whole 32-wide panels on rows of 8+ (4x8, 8x8,
    2x16 or 3x32 per image), so the column planes take most of them at AVX-512 float32 (and at
    AVX2 the batches): random kernel, x and y stride 1-3 (one of them 2+), dilation, padding,
    groups, batch."""
    r = np.random.default_rng(seed)
    while (case := _draw_panel_geometry(r)) is None:
        pass
    return case


def _draw_panel_geometry(r):
    out = [(4, 8), (8, 8), (2, 16), (3, 32)][r.integers(4)]
    stride = [int(r.integers(1, 4)), int(r.integers(2, 4))]
    if r.integers(2):
        stride.reverse()
    kernel = [int(r.integers(1, 8)), int(r.integers(1, 8))]
    dilation = [int(r.integers(1, 3)), int(r.integers(1, 3))]
    padding = [int(r.integers(0, (k - 1) * d // 2 + 2)) for k, d in zip(kernel, dilation)]
    extent = [
        (o - 1) * s + d * (k - 1) + 1 - 2 * p + int(r.integers(0, s))
        for o, s, d, k, p in zip(out, stride, dilation, kernel, padding)
    ]
    if min(extent) < 1:
        return None
    groups = int(r.integers(1, 3))
    c, k = groups * int(r.integers(1, 5)), groups * int(r.integers(1, 6))
    x_shape = (int(r.integers(1, 4)), c, *extent)
    w_shape = (k, c // groups, *kernel)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x_shape, w_shape, kw


@pytest.mark.parametrize("seed", range(40))
def test_random_strided_forwards_against_the_oracle(seed, rng, poisoned_outputs):
    """Random strided forwards that fill whole panels (the column planes' other condition),
    implicit_gemm with a bias against the float64 oracle, at this machine's level, outputs
    starting as NaN (the column planes write y in place)."""
    x_shape, w_shape, kw = _random_panel_geometry(seed)
    x, w = rand(rng, x_shape, np.float32), rand(rng, w_shape, np.float32)
    b = rand(rng, (w_shape[0],), np.float32)
    y = fastconv.conv(x, w, b, algo="implicit_gemm", **kw)
    assert_close(y, ref.conv(x, w, b, **kw), reduction=math.prod(w_shape[1:]))


def test_random_strided_forwards_reach_the_column_planes():
    """Most of the random geometries above run on the column planes where they exist (AVX-512
    float32; the others: windows that do not overlap at x stride 1, stride-2 rows of 24+ that
    gather from the input), so the oracle test covers them."""
    from fastconv._cpu_rule import _active_isa

    if _active_isa() != "avx512":
        pytest.skip("the column planes take single images at AVX-512 float32 only")
    reached = sum(
        "column planes" in str(fastconv.explain(x, w, algo="implicit_gemm", **kw))
        for x, w, kw in map(_random_panel_geometry, range(40))
    )
    assert reached >= 15, reached  # 19 of the 40


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_column_planes_with_a_large_l2_stay_whole_images(isa, rng):
    """An L2 over 16 MiB (FASTCONV_L2_BYTES) lets a thread's quarter exceed the 4 MiB the planes
    may take whole: images past that run in bands on the shared path, not whole on the thread
    path (which read past a band's planes), against the oracle."""
    skip_unless_isa_runs(isa)
    x_shape, w_shape, kw = (4, 256, 100, 44), (8, 256, 3, 3), dict(stride=2, padding=1)
    x, w = rand(rng, x_shape, np.float32), rand(rng, w_shape, np.float32)
    with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_L2_BYTES": "32M"}) as fc:
        e = str(fc.explain(x_shape, w_shape, algo="implicit_gemm", **kw))
        assert "one image at a time" not in e, e
        y = fc.conv(x, w, algo="implicit_gemm", **kw)
    assert_close(y, ref.conv(x, w, None, **kw), reduction=math.prod(w_shape[1:]))
