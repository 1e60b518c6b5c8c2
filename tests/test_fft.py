"""The fft algorithm: its own FFT against numpy.fft, and every pass against the float64 oracle
(ranks 1-3, long kernels, groups and depthwise with multiplier, padding forms, true convolution,
strides by polyphase split, empty batch, transposed convolution) with NaN-poisoned outputs;
refusals name fft."""

from __future__ import annotations

import textwrap

import fastconv
import numpy as np
import pytest
import reference as ref
from conftest import FastconvProcess, assert_close, rand, run_with_isa, skip_unless_isa_runs
from fastconv import _C

# ---- the FFT itself

LENGTHS = [1, 2, 3, 4, 5, 6, 8, 9, 15, 16, 25, 27, 60, 64, 100, 125, 243, 1000, 1024, 3072]


def _fft_tol(dtype, n):
    # Rounding of an n-point FFT grows like log2(n) ulps of the largest bin.
    eps = float(np.finfo(dtype).eps)
    return 8 * eps * (1 + np.log2(max(n, 2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", LENGTHS)
def test_fft_matches_numpy(rng, n, dtype):
    x = rand(rng, (7, n), dtype)  # odd batch: the two-for-one real transform pads a lane
    want = np.fft.rfft(x.astype(np.float64))
    scale = max(float(np.abs(want).max()), 1e-30)
    tol = _fft_tol(dtype, n) * scale
    np.testing.assert_allclose(_C.fft_rfft(x), want, rtol=0, atol=tol)
    np.testing.assert_allclose(_C.fft_irfft(want.astype(np.complex128), n), x, rtol=0, atol=tol)
    z = (x + 1j * rand(rng, (7, n), dtype)).astype(np.complex64 if dtype == np.float32 else complex)
    zw = np.fft.fft(z.astype(np.complex128))
    tol = _fft_tol(dtype, n) * float(np.abs(zw).max())
    np.testing.assert_allclose(_C.fft_cfft(z), zw, rtol=0, atol=tol)
    np.testing.assert_allclose(_C.fft_cfft(zw, inverse=True), z, rtol=0, atol=tol / n * 4)


def test_fft_refuses_lengths_with_other_prime_factors():
    with pytest.raises(ValueError, match="2\\^a 3\\^b 5\\^c"):
        _C.fft_rfft(np.zeros((1, 7)))


# ---- convolution passes


# (x_shape, w_shape, kwargs)
GEOMETRIES = [
    ((2, 3, 50), (4, 3, 7), dict(padding=3)),
    ((1, 1, 6000), (1, 1, 1025), dict()),  # long kernel, long signal: many tiles
    ((1, 2, 300), (2, 1, 129), dict(padding="same", groups=2, mode="conv")),
    ((1, 8, 40, 40), (8, 1, 31, 31), dict(padding=15, groups=8)),  # large depthwise kernel
    ((2, 4, 27, 37), (8, 1, 7, 5), dict(padding=((3, 1), (0, 2)), groups=4)),  # multiplier 2
    ((1, 6, 23, 19), (4, 3, 9, 5), dict(padding="full", groups=2)),  # groups, odd sizes
    ((1, 5, 20, 21), (7, 5, 5, 5), dict(padding=4, dilation=(2, 1), mode="conv")),
    ((2, 3, 16, 16), (5, 3, 11, 11), dict(padding="valid")),
    ((1, 3, 9, 10, 11), (4, 3, 3, 4, 5), dict(padding=((1, 2), 1, (0, 3)))),
    ((1, 4, 7, 8, 9), (4, 1, 5, 3, 5), dict(padding="same", groups=4, dilation=(1, 2, 1))),
    ((0, 3, 12, 12), (4, 3, 5, 5), dict(padding=2)),  # empty batch
]
IDS = [f"g{i}" for i in range(len(GEOMETRIES))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,kw", GEOMETRIES, ids=IDS)
def test_fft_passes(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    kw = dict(kw)
    kw.setdefault("groups", 1)
    taps = int(np.prod(w_shape[2:]))
    want = ref.conv(x, w, b, **kw)
    y = fastconv.conv(x, w, b, algo="fft", **kw)
    assert_close(y, want, dtype, int(np.prod(w_shape[1:])))
    gy = rand(rng, want.shape, dtype)
    gx = fastconv.conv_backward_data(gy, w, x_shape, algo="fft", **kw)
    want_gx = ref.conv_backward_data(gy, w, x_shape, **kw)
    assert_close(gx, want_gx, dtype, w_shape[0] // kw["groups"] * taps)
    gw = fastconv.conv_backward_weight(x, gy, w_shape, algo="fft", **kw)
    want_gw = ref.conv_backward_weight(x, gy, w_shape, **kw)
    out_count = int(np.prod(want.shape)) // max(want.shape[1], 1)
    assert_close(gw, want_gw, dtype, max(out_count, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fft_transposed_forward_runs_strided(poisoned_outputs, rng, dtype):
    """A transposed conv's forward is the conv's backward data: zero-inserted grad_y, any stride."""
    x, w = rand(rng, (2, 6, 9, 7), dtype), rand(rng, (6, 2, 5, 4), dtype)
    b = rand(rng, (4,), dtype)
    kw = dict(stride=(2, 3), padding=((2, 1), 1), output_padding=(1, 2), groups=2)
    y = fastconv.conv_transpose(x, w, b, algo="fft", **kw)
    assert_close(y, ref.conv_transpose(x, w, b, **kw), dtype, 3 * 20)
    kw1 = dict(padding=2, output_padding=0, groups=2)  # stride 1: every pass runs
    y1 = fastconv.conv_transpose(x, w, b, algo="fft", **kw1)
    assert_close(y1, ref.conv_transpose(x, w, b, **kw1), dtype, 3 * 20)
    gy = rand(rng, y1.shape, dtype)
    gx = fastconv.conv_transpose_backward_data(gy, w, algo="fft", **kw1)
    assert_close(gx, ref.conv_transpose_backward_data(gy, w, **kw1), dtype, 2 * 20)
    gw = fastconv.conv_transpose_backward_weight(x, gy, w.shape, algo="fft", **kw1)
    want_gw = ref.conv_transpose_backward_weight(x, gy, w.shape, **kw1)
    assert_close(gw, want_gw, dtype, 2 * 9 * 7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape,w_shape,kw",
    [
        ((1, 3, 35, 37), (8, 3, 11, 11), dict(stride=4, padding=2)),  # alexnet conv1, smaller
        ((2, 4, 17, 16), (4, 1, 3, 3), dict(stride=2, padding=1, groups=4)),  # strided depthwise
        ((1, 2, 40), (3, 2, 7), dict(stride=3, dilation=2, padding=((4, 1),), mode="conv")),
        ((1, 2, 9, 8, 10), (2, 2, 3, 2, 4), dict(stride=(2, 1, 3), padding=1)),
    ],
)
def test_fft_strided_polyphase(poisoned_outputs, rng, x_shape, w_shape, kw, dtype):
    """Strided forward and weight gradient run as stride-1 correlations of the phases."""
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    groups = kw.get("groups", 1)
    want = ref.conv(x, w, **kw)
    assert_close(fastconv.conv(x, w, algo="fft", **kw), want, dtype, int(np.prod(w_shape[1:])))
    gy = rand(rng, want.shape, dtype)
    gw = fastconv.conv_backward_weight(x, gy, w_shape, algo="fft", **kw)
    out_count = int(np.prod(want.shape)) // max(want.shape[1], 1)
    assert_close(gw, ref.conv_backward_weight(x, gy, w_shape, **kw), dtype, out_count)
    gx = fastconv.conv_backward_data(gy, w, x_shape, algo="fft", **kw)
    taps = w_shape[0] // groups * int(np.prod(w_shape[2:]))
    assert_close(gx, ref.conv_backward_data(gy, w, x_shape, **kw), dtype, taps)


def test_fft_refuses_stride_past_the_kernel_extent(rng):
    x, w = rand(rng, (1, 3, 20, 20)), rand(rng, (4, 3, 1, 3))
    with pytest.raises(NotImplementedError, match="fft.*stride 2 exceeds"):
        fastconv.conv(x, w, stride=2, algo="fft")
    gy = rand(rng, (1, 4, 10, 9))
    with pytest.raises(NotImplementedError, match="fft.*stride 2 exceeds"):
        fastconv.conv_backward_weight(x, gy, w.shape, stride=2, algo="fft")
    gx = fastconv.conv_backward_data(gy, w, x.shape, stride=2, algo="fft")  # runs
    assert_close(gx, ref.conv_backward_data(gy, w, x.shape, stride=2), np.float64)
    w2 = rand(rng, (4, 3, 1, 3))
    y = fastconv.conv(x, w2, stride=(1, 2), dilation=(3, 1), algo="fft")  # extents 1, 3 fit
    assert_close(y, ref.conv(x, w2, stride=(1, 2), dilation=(3, 1)), np.float64)


def test_fft_float32_error_on_long_kernels(rng):
    """The transform error stays well inside conftest's 8 sqrt(L) + 512 ulp rule on the layers
    fft is for (31x31 depthwise, 1-D k=1025): measured ~1e-6 relative, i.e. ~10 ulps of scale."""
    cases = [
        ((1, 4, 56, 56), (4, 1, 31, 31), dict(padding=15, groups=4)),
        ((1, 1, 20000), (1, 1, 1025), dict()),
    ]
    for x_shape, w_shape, kw in cases:
        x, w = rand(rng, x_shape, np.float32), rand(rng, w_shape, np.float32)
        want = ref.conv(x, w, **kw)
        err = np.abs(fastconv.conv(x, w, algo="fft", **kw) - want).max() / np.abs(want).max()
        assert err < 2e-5, (x_shape, w_shape, err)


def test_fft_workspace_is_bounded_by_tile_blocks():
    """Scratch grows with channels and the FFT tile, not with the image."""
    small = fastconv.explain((1, 4, 256, 256), (4, 4, 9, 9), padding=4, algo="fft").workspace_bytes
    huge = fastconv.explain((1, 4, 8192, 8192), (4, 4, 9, 9), padding=4, algo="fft")
    assert 0 < small and huge.workspace_bytes < 64 * 2**20 < 4 * 8192 * 8192 * 4
    for pass_ in ("backward_data", "backward_weight"):
        e = fastconv.explain((1, 4, 8192, 8192), (4, 4, 9, 9), padding=4, algo="fft", pass_=pass_)
        assert 0 < e.workspace_bytes < 64 * 2**20


@pytest.mark.parametrize("isa", ["avx2", "scalar"])
def test_fft_lower_isa_levels_match_oracle(isa):
    code = textwrap.dedent(
        """
        import numpy as np, fastconv, reference as ref
        r = np.random.default_rng(5)
        x = r.uniform(-1, 1, (2, 4, 19, 23)); w = r.uniform(-1, 1, (6, 2, 7, 5))
        kw = dict(padding=(3, 2), groups=2)
        for dt in (np.float32, np.float64):
            xs, ws = x.astype(dt), w.astype(dt)
            y = fastconv.conv(xs, ws, algo="fft", **kw)
            want = ref.conv(xs, ws, **kw)
            err = np.abs(y - want).max() / np.abs(want).max()
            assert err < (1e-5 if dt == np.float32 else 1e-12), (dt, err)
        """
    )
    run_with_isa(code, isa)


@pytest.mark.parametrize(
    "x_shape,w_shape,kw",
    [
        ((1, 6, 30, 30), (6, 1, 9, 9), dict(padding=4, groups=6)),  # lane-local path
        ((2, 5, 20, 20), (4, 5, 5, 5), dict(padding=2)),  # frequency GEMMs
    ],
)
def test_fft_results_do_not_depend_on_thread_count(restore_threads, rng, x_shape, w_shape, kw):
    x, w = rand(rng, x_shape, np.float32), rand(rng, w_shape, np.float32)
    gy = rand(rng, ref.conv(x, w, **kw).shape, np.float32)
    out = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        out.append(
            (
                fastconv.conv(x, w, algo="fft", **kw),
                fastconv.conv_backward_data(gy, w, x_shape, algo="fft", **kw),
                fastconv.conv_backward_weight(x, gy, w_shape, algo="fft", **kw),
            )
        )
    for other in out[1:]:
        for a, b in zip(out[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_3d_below_avx512_runs_fft(isa):
    """Dense 3-D passes of 27+ taps on up to 64 channels run the FFT below AVX-512
    (_cpu_volume._fft_3d_at_avx2) unless their planes take 3x3 Winograd over the depth taps
    (_cpu_volume._depth_winograd: C3D's 3x3x3 at both levels); AVX-512 keeps its direct row
    kernels (implicit GEMM for the weight gradient), and more channels or small volumes stay off
    the FFT at every level."""
    skip_unless_isa_runs(isa)
    with FastconvProcess({"FASTCONV_ISA": isa}) as fc:
        for pass_ in ("forward", "backward_data", "backward_weight"):
            c3d = fc.explain((1, 64, 8, 28, 28), (64, 64, 3, 3, 3), padding=1, pass_=pass_)
            assert c3d.algo == "winograd" and "depth taps" in c3d.reason, str(c3d)
            wide5 = fc.explain(
                (1, 64, 8, 28, 28), (64, 64, 3, 5, 5), padding=(1, 2, 2), pass_=pass_
            )
            assert (wide5.algo == "fft") == (isa == "avx2"), str(wide5)
            if isa == "avx512" and pass_ == "backward_weight":
                assert wide5.algo == "implicit_gemm", str(wide5)
            wide = fc.explain((1, 128, 8, 28, 28), (128, 128, 3, 5, 5), padding=1, pass_=pass_)
            small = fc.explain((1, 64, 2, 7, 7), (64, 64, 3, 3, 3), padding=1, pass_=pass_)
            assert wide.algo != "fft" and small.algo != "fft", (str(wide), str(small))
            # Unmeasured there: a first layer (3 channels) and a dilated kernel.
            first = fc.explain((1, 3, 16, 112, 112), (64, 3, 3, 3, 3), padding=1, pass_=pass_)
            dil = fc.explain(
                (1, 64, 8, 28, 28), (64, 64, 3, 3, 3), padding=2, dilation=2, pass_=pass_
            )
            assert first.algo != "fft" and dil.algo != "fft", (str(first), str(dil))


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_auto_weight_gradient_fft_needs_a_large_map(isa):
    """2-D weight gradients of 25+ tap kernels at stride 1 run the FFT (_cpu_rule._fft_pays)
    except on small maps: under 256 output positions per image at every level, and on 512-bit
    AVX-512 units under 48x48 per image unless the batch holds 8192+ positions (where implicit
    GEMM's panels won on the Xeon). AVX2 and 256-bit units keep the FFT on the others."""
    skip_unless_isa_runs(isa)
    cases = [  # (x, w, FFT at AVX2 / 256-bit units, FFT on 512-bit units)
        ((1, 48, 35, 35), (64, 48, 5, 5), True, False),  # Inception's mixed5b 5x5
        ((2, 48, 35, 35), (64, 48, 5, 5), True, False),
        ((8, 48, 35, 35), (64, 48, 5, 5), True, True),
        ((1, 64, 47, 47), (64, 64, 5, 5), True, False),
        ((1, 64, 48, 48), (64, 64, 5, 5), True, True),
        ((1, 64, 56, 56), (64, 64, 5, 5), True, True),  # dense5x5
        ((1, 128, 15, 15), (128, 128, 7, 7), False, False),  # 225 positions
        ((1, 128, 16, 16), (128, 128, 7, 7), True, False),
    ]
    for units in ("256", "512"):
        with FastconvProcess({"FASTCONV_ISA": isa, "FASTCONV_AVX512_UNITS": units}) as fc:
            for x_shape, w_shape, low, wide in cases:
                pad = w_shape[-1] // 2
                want = wide if (isa == "avx512" and units == "512") else low
                e = fc.explain(x_shape, w_shape, padding=pad, pass_="backward_weight")
                assert (e.algo == "fft") == want, (units, x_shape, str(e))
