"""The GPU kernels run on the CPU by the host emulation (cuda/emulation/), against the CPU
reference: the kernels and launchers one by one (fastconv_cuda_emulation), then fastconv's
public API end to end over the emulated fastconv._cuda. Skipped with the reason when the
emulation is not built (`sh cuda/emulation/build.sh`) or is older than the CUDA sources.
Tolerances and cases are those of the GPU tests (cuda_helpers.py).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import fastconv
import numpy as np
import pytest
from conftest import torch
from cuda_helpers import (
    CONV_CASES,
    CONV_IDS,
    DEPTHWISE_TILE_CASES,
    POOL_CASES,
    TENSOR_OP_CASES,
    TENSOR_OP_IDS,
    TRANSPOSE_CASES,
    assert_gpu_close,
)
from fastconv import backends
from fastconv._problem import conv_problem, pool_problem
from fastconv.backends.cuda import CudaBackend

# ---- the kernels themselves, run on the CPU by the host emulation (cuda/emulation/)
#
# cuda/*.cu compiled as C++ with cuda/emulation/host_emulation.h: every CUDA thread is a
# std::thread, shared memory is shared, WMMA fragments hold whole tiles and check alignment.
# This runs the real launchers and kernels (tiling, split reductions, depthwise, pooling, every
# dtype and both math paths) against the CPU reference here, on a machine without a GPU.
# cp.async and the real tensor-core instructions are the parts it cannot run.

EMULATION_DIR = Path(__file__).resolve().parent.parent / "build" / "cuda-emulation"
EMULATION_SOURCES = Path(__file__).resolve().parent.parent / "cuda"


def _load_emulation():
    sources = [
        *EMULATION_SOURCES.glob("*.cu"),
        *EMULATION_SOURCES.glob("*.h"),
        *EMULATION_SOURCES.glob("*.cuh"),
        *EMULATION_SOURCES.glob("emulation/*"),
    ]
    built = list(EMULATION_DIR.glob("fastconv_cuda_emulation*.so"))
    if not built:
        return (
            None,
            "not built: run `sh cuda/emulation/build.sh` (about 30 s, needs the CUDA headers)",
        )
    if max(s.stat().st_mtime for s in sources) > built[0].stat().st_mtime:
        return None, "stale: the CUDA sources changed; rerun `sh cuda/emulation/build.sh`"
    sys.path.insert(0, str(EMULATION_DIR))
    try:
        import fastconv_cuda_emulation as emu
    except ImportError as e:
        return None, f"cannot import it ({e})"
    finally:
        sys.path.pop(0)
    return emu, ""


EMU, EMU_REASON = _load_emulation()
requires_emulation = pytest.mark.skipif(EMU is None, reason=f"CUDA host emulation {EMU_REASON}")

EMU_MATHS = [
    ("float64", "simt"),
    ("float32", "simt"),
    ("float32", "tensor_core"),
    ("float16", "tensor_core"),
    ("float16", "simt"),
    ("bfloat16", "tensor_core"),
    ("bfloat16", "simt"),
]


def round_to(a, dtype):
    """a's values rounded to `dtype` (the values a GPU array of that dtype holds), as float64."""
    a = np.asarray(a, dtype=np.float64)
    if dtype == "float16":
        return a.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":  # round to nearest even on the top 16 bits of float32
        u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
        u = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
        return u.view(np.float32).astype(np.float64)
    if dtype == "float32":
        return a.astype(np.float32).astype(np.float64)
    return a


def _emu_conv(
    pass_, algo, math_, dtype, x_shape, w_shape, kw, a, b, bias=None, op_pad=None, **extra
):
    """emu.conv with the conv geometry of `kw`, as fastconv resolves it (its ConvProblem);
    op_pad lowers the high padding as a transposed conv's output_padding does."""
    geometry = conv_problem("conv", "forward", x_shape, w_shape, "float64", **kw).conv_geometry
    x_, w_, stride, lo, hi, dilation, groups, mode = geometry
    if op_pad is not None:
        hi = [h - o for h, o in zip(hi, op_pad)]
    return EMU.conv(
        pass_,
        algo,
        math_,
        dtype,
        list(x_),
        list(w_),
        stride,
        lo,
        hi,
        dilation,
        groups,
        mode,
        a,
        b,
        bias,
        **extra,
    )


# The default run keeps a quick subset (three ranks, exact FP32 and fp16 tensor cores); the
# whole matrix takes about a minute on two cores: `pytest -m slow tests/test_cuda_emulation.py`.
_QUICK_EMU = {
    (0, "float32", "simt"),
    (2, "float16", "tensor_core"),
    (6, "float32", "simt"),
    (7, "bfloat16", "tensor_core"),
    (9, "float64", "simt"),
}
EMU_CONV_PARAMS = [
    pytest.param(
        case,
        dtype,
        math_,
        id=f"{cid}-{dtype}-{math_}",
        marks=() if (i, dtype, math_) in _QUICK_EMU else pytest.mark.slow,
    )
    for i, (case, cid) in enumerate(zip(CONV_CASES, CONV_IDS))
    for dtype, math_ in EMU_MATHS
]


@requires_emulation
@pytest.mark.parametrize("case,dtype,math_", EMU_CONV_PARAMS)
def test_emulated_conv_kernels_match_cpu_reference(rng, case, dtype, math_):
    x_shape, w_shape, kw = case
    x = round_to(rng.uniform(-1, 1, x_shape), dtype)
    w = round_to(rng.uniform(-1, 1, w_shape), dtype)
    b = round_to(rng.uniform(-1, 1, w_shape[0]), dtype)
    y = fastconv.conv(x, w, b, algo="reference", **kw)
    gy = round_to(rng.uniform(-1, 1, y.shape), dtype)
    ref_kw = {k: v for k, v in kw.items()}
    dx = fastconv.conv_backward_data(gy, w, x_shape, algo="reference", **ref_kw)
    dw = fastconv.conv_backward_weight(x, gy, w_shape, algo="reference", **ref_kw)
    tol = "tf32" if (dtype, math_) == ("float32", "tensor_core") else dtype
    taps = math.prod(w_shape[2:])
    kg = w_shape[0] // kw.get("groups", 1)
    algos = ["implicit_gemm"] + (["depthwise"] if w_shape[1] == 1 and math_ == "simt" else [])
    for algo in algos:
        got = _emu_conv("forward", algo, math_, dtype, x_shape, w_shape, kw, x, w, b)
        assert_gpu_close(got, y, tol, w_shape[1] * taps, f"forward {algo}")
        got = _emu_conv("backward_data", algo, math_, dtype, x_shape, w_shape, kw, gy, w)
        assert_gpu_close(got, dx, tol, kg * taps, f"backward_data {algo}")
        got = _emu_conv("backward_weight", algo, math_, dtype, x_shape, w_shape, kw, x, gy)
        assert_gpu_close(got, dw, tol, max(y.size // max(w_shape[0], 1), 1), f"bw {algo}")
    if y.size:
        assert_gpu_close(
            EMU.bias_grad(dtype, list(gy.shape), gy),
            fastconv.conv_backward_bias(gy),
            dtype,
            gy.size // w_shape[0],
        )


@requires_emulation
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("case", TENSOR_OP_CASES, ids=TENSOR_OP_IDS)
def test_emulated_tensor_op_path_matches_cpu_reference(rng, case, dtype):
    """The tensor-op path (channels-last moves, filter flip, bias, float32 weight gradient,
    the core's NHWC problem; the emulation's reference core in place of CUTLASS's) for the
    layers it takes, the WMMA kernel for the rest; and with a workspace too small for the moves,
    the WMMA kernel for all."""
    x_shape, w_shape, kw, eligible = case
    tol = "tf32" if dtype == "float32" else dtype
    x = round_to(rng.uniform(-1, 1, x_shape), dtype)
    w = round_to(rng.uniform(-1, 1, w_shape), dtype)
    b = round_to(rng.uniform(-1, 1, w_shape[0]), dtype)
    y = fastconv.conv(x, w, b, algo="reference", **kw)
    gy = round_to(rng.uniform(-1, 1, y.shape), dtype)
    dx = fastconv.conv_backward_data(gy, w, x_shape, algo="reference", **kw)
    dw = fastconv.conv_backward_weight(x, gy, w_shape, algo="reference", **kw)
    geometry = conv_problem("conv", "forward", x_shape, w_shape, "float64", **kw).conv_geometry
    _, _, stride, lo, hi, dilation, groups, _ = geometry
    taps = math.prod(w_shape[2:])
    y0 = fastconv.conv(x, w, algo="reference", **kw)
    passes = [
        ("forward", x, w, b, y, w_shape[1] * taps),  # with a bias: a float32 result
        ("forward", x, w, None, y0, w_shape[1] * taps),
        ("backward_data", gy, w, None, dx, w_shape[0] * taps),
        ("backward_weight", x, gy, None, dw, y.size // w_shape[0]),
    ]
    for (pass_, a, bb, bias, want, n), runs in zip(passes, (eligible[0], *eligible)):
        args = (pass_, dtype, list(x_shape), list(w_shape), stride, lo, hi, dilation, groups)
        assert EMU.tensor_op(*args) == runs, pass_
        need = EMU.tensor_op_workspace(*args)
        # the moved operands, or else the WMMA kernel's split reduction
        assert need > 0 if runs else need == EMU.conv_workspace(*args), (pass_, need)
        for ws in (-1, 0):  # what the path asks for; none (the WMMA kernel runs)
            got = _emu_conv(
                pass_,
                "implicit_gemm",
                "tensor_core",
                dtype,
                x_shape,
                w_shape,
                kw,
                a,
                bb,
                bias,
                workspace_bytes=ws,
            )
            assert_gpu_close(got, want, tol, n, f"{pass_} workspace={ws}")
    # a transposed conv's forward: backward_data with output_padding (negative high padding)
    if eligible[1] and len(x_shape) == 4:
        tkw = dict(stride=2, padding=1, output_padding=1)
        xt = round_to(rng.uniform(-1, 1, (1, w_shape[0], 5, 4)), dtype)
        bt = round_to(rng.uniform(-1, 1, w_shape[1]), dtype)
        yt = fastconv.conv_transpose(xt, w, bt, algo="reference", **tkw)
        got = _emu_conv(
            "backward_data",
            "implicit_gemm",
            "tensor_core",
            dtype,
            yt.shape,
            w_shape,
            dict(stride=tkw["stride"], padding=1),
            xt,
            w,
            bt,
            op_pad=[1, 1],
        )
        assert_gpu_close(got, yt, tol, w_shape[0] * taps, "transposed forward")


@requires_emulation
def test_hopper_core_problem_mapping(rng):
    """The Hopper core (cuda/tensor_op_sm90.h) derives the output extent from the padding, so
    its upper padding must give exactly the layer's output: for random layers it does, with
    the least non-negative padding that covers every row a window reads; it refuses what its
    kernels lack (a strided backward_data, a split, a stride past the copy engine's im2col
    limit of 8, a negative high padding such as a transposed conv's output_padding, float32)
    and takes the rest, 128 or 64 wide."""
    EMU.set_multiprocessors(2)  # few tiles per layer needed to leave it unsplit
    try:
        seen = {True: 0, False: 0}
        for _ in range(300):
            rank = int(rng.integers(1, 3))
            spatial = [int(v) for v in rng.integers(1, 20, rank)]
            window = [int(v) for v in rng.integers(1, 6, rank)]
            stride = [int(v) for v in rng.choice([1, 1, 2, 3, 8, 9, 16], rank)]
            dil = [int(v) for v in rng.integers(1, 3, rank)]
            lo = [int(rng.integers(0, k)) for k in window]
            hi = [int(rng.integers(-2, k)) for k in window]
            span = [(k - 1) * d + 1 for k, d in zip(window, dil)]
            if any(s + a + b < sp for s, a, b, sp in zip(spatial, lo, hi, span)):
                continue  # no output
            c, k = 8 * int(rng.integers(1, 20)), 8 * int(rng.integers(1, 20))
            pass_ = str(rng.choice(["forward", "backward_data", "backward_weight"]))
            geometry = ([2, c, *spatial], [k, c, *window], stride, lo, hi, dil, 1)
            covers, *dims, splits, tile_n = EMU.hopper_problem(pass_, "float16", *geometry)
            narrow = pass_ == "forward" and k <= 64 or pass_ == "backward_data" and c <= 64
            assert tile_n == (64 if narrow else 128)
            # (the strides as the problem holds them: a dimension of one output may carry a
            # smaller one than asked, which reads the same rows)
            strides = [d[3] for d in dims]
            ok = splits == 1 and max(strides) <= 8
            ok &= not (pass_ == "backward_data" and max(strides) > 1)
            for n, r, pad, st, d, out, lower, upper in dims:
                if n == 1 and r == 1 and out == 1:
                    continue  # the unused H of a 1-D layer
                assert lower == pad
                reach = (out - 1) * st + (r - 1) * d + 1  # rows the windows span
                if upper < 0:  # only when even zero padding would add an output
                    assert upper == -1 and (n + pad - reach) // st >= 1
                    ok = False
                    continue
                assert 1 + (n + lower + upper - ((r - 1) * d + 1)) // st == out
                assert n + lower + upper >= reach  # every row read lies inside
                assert upper == 0 or n + lower + upper - 1 < reach  # and no more
            assert covers == ok, (pass_, geometry, dims, splits, tile_n)
            seen[covers] += 1
        assert min(seen.values()) > 30, seen
        # float32 (TF32) stays on the sm_80 kernels
        args = ([8, 128, 8, 8], [128, 128, 3, 3], [1, 1], [1, 1], [1, 1], [1, 1], 1)
        assert EMU.hopper_problem("forward", "float16", *args)[0]
        assert EMU.hopper_problem("forward", "bfloat16", *args)[0]
        assert not EMU.hopper_problem("forward", "float32", *args)[0]
    finally:
        EMU.set_multiprocessors(8)


@requires_emulation
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_emulated_tensor_op_split_writes_float32_and_matches(rng, dtype):
    """On a device with many more multiprocessors than the layer has tiles, every unit-stride
    pass of the tensor-op path splits its reduction (a float32 result plus the split's
    semaphores in the workspace: more bytes than unsplit on a 2-multiprocessor device, which
    the layer's 4 tiles fill); the results match either way."""
    x_shape, w_shape, kw = (8, 64, 8, 8), (64, 64, 3, 3), dict(padding=1)
    x = round_to(rng.uniform(-1, 1, x_shape), dtype)
    w = round_to(rng.uniform(-1, 1, w_shape), dtype)
    b = round_to(rng.uniform(-1, 1, 64), dtype)
    y = fastconv.conv(x, w, b, algo="reference", **kw)
    gy = round_to(rng.uniform(-1, 1, y.shape), dtype)
    wants = {
        "forward": (x, w, b, y, 576),
        "backward_data": (gy, w, None, fastconv.conv_backward_data(gy, w, x_shape, **kw), 576),
        "backward_weight": (x, gy, None, fastconv.conv_backward_weight(x, gy, w_shape, **kw), 512),
    }
    geometry = conv_problem("conv", "forward", x_shape, w_shape, "float64", **kw).conv_geometry
    _, _, stride, lo, hi, dilation, groups, _ = geometry
    sizes = {}
    try:
        for sms in (2, 1000):
            EMU.set_multiprocessors(sms)
            for pass_, (a, bb, bias, want, n) in wants.items():
                args = (pass_, dtype, list(x_shape), list(w_shape), stride, lo, hi, dilation, 1)
                sizes[sms, pass_] = EMU.tensor_op_workspace(*args)
                got = _emu_conv(
                    pass_, "implicit_gemm", "tensor_core", dtype, x_shape, w_shape, kw, a, bb, bias
                )
                assert_gpu_close(got, want, dtype, n, f"{pass_} on {sms} multiprocessors")
    finally:
        EMU.set_multiprocessors(8)
    for pass_ in wants:
        assert sizes[1000, pass_] > sizes[2, pass_], (pass_, sizes)


@requires_emulation
@pytest.mark.parametrize("sms", [1, 8, pytest.param(132, marks=pytest.mark.slow)])
def test_emulated_split_backward_weight_is_exact_and_tiles_cover_everything(rng, sms):
    """Split reductions (few SMs -> more splits) and partial tiles on every edge."""
    EMU.set_multiprocessors(sms)
    try:
        x_shape, w_shape = (3, 66, 11, 13), (70, 33, 3, 3)
        kw = dict(padding=1, groups=2, stride=(1, 2))
        x, w = rng.uniform(-1, 1, x_shape), rng.uniform(-1, 1, w_shape)
        y = fastconv.conv(x, w, algo="reference", **kw)
        gy = rng.uniform(-1, 1, y.shape)
        dw = fastconv.conv_backward_weight(x, gy, w_shape, algo="reference", **kw)
        got = _emu_conv(
            "backward_weight", "implicit_gemm", "simt", "float64", x_shape, w_shape, kw, x, gy
        )
        assert_gpu_close(got, dw, "float64", 1)
    finally:
        EMU.set_multiprocessors(8)


@requires_emulation
@pytest.mark.parametrize(
    "dtype,math_",
    [("float64", "simt"), pytest.param("float16", "tensor_core", marks=pytest.mark.slow)],
)
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: f"{len(c[0]) - 2}d")
def test_emulated_transposed_conv_runs_the_conv_passes(rng, case, dtype, math_):
    """The transposed conv's passes through its conv geometry (negative high padding for
    output_padding), as cuda/module.cc maps them."""
    x_shape, w_shape, kw = case
    groups = kw.get("groups", 1)
    x = round_to(rng.uniform(-1, 1, x_shape), dtype)
    w = round_to(rng.uniform(-1, 1, w_shape), dtype)
    y = fastconv.conv_transpose(x, w, algo="reference", **kw)
    gy = round_to(rng.uniform(-1, 1, y.shape), dtype)
    rank = len(w_shape) - 2
    op = kw.get("output_padding", 0)
    op = [op] * rank if isinstance(op, int) else list(op)
    conv_kw = {k: v for k, v in kw.items() if k != "output_padding"}
    taps = math.prod(w_shape[2:])
    got = _emu_conv(
        "backward_data", "implicit_gemm", math_, dtype, y.shape, w_shape, conv_kw, x, w, op_pad=op
    )
    assert_gpu_close(got, y, dtype, w_shape[0] // groups * taps, "transposed forward")
    got = _emu_conv(
        "forward", "implicit_gemm", math_, dtype, y.shape, w_shape, conv_kw, gy, w, op_pad=op
    )
    want = fastconv.conv_transpose_backward_data(gy, w, algo="reference", **kw)
    assert_gpu_close(got, want, dtype, w_shape[1] * taps, "transposed backward_data")
    got = _emu_conv(
        "backward_weight",
        "implicit_gemm",
        math_,
        dtype,
        y.shape,
        w_shape,
        conv_kw,
        gy,
        x,
        op_pad=op,
    )
    want = fastconv.conv_transpose_backward_weight(x, gy, w_shape, algo="reference", **kw)
    assert_gpu_close(got, want, dtype, x.size // x_shape[1], "transposed backward_weight")


@requires_emulation
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("case", DEPTHWISE_TILE_CASES, ids=lambda c: "x".join(map(str, c[0])))
def test_emulated_depthwise_tiles_match_the_reference(rng, case, dtype):
    x_shape, w_shape, kw, tiled = case
    geometry = conv_problem("conv", "forward", x_shape, w_shape, "float64", **kw).conv_geometry
    _, _, stride, lo, hi, dilation, groups, _ = geometry
    for pass_ in ("forward", "backward_data", "backward_weight"):
        ran = EMU.depthwise_tiled(
            pass_, dtype, list(x_shape), list(w_shape), stride, lo, hi, dilation, groups
        )
        assert ran == tiled, (pass_, ran)
    x = round_to(rng.uniform(-1, 1, x_shape), dtype)
    w = round_to(rng.uniform(-1, 1, w_shape), dtype)
    b = round_to(rng.uniform(-1, 1, w_shape[0]), dtype)
    y = fastconv.conv(x, w, b, algo="reference", **kw)
    gy = round_to(rng.uniform(-1, 1, y.shape), dtype)
    taps = math.prod(w_shape[2:])
    mult = w_shape[0] // kw["groups"]
    got = _emu_conv("forward", "depthwise", "simt", dtype, x_shape, w_shape, kw, x, w, b)
    assert_gpu_close(got, y, dtype, taps, "forward")
    dx = fastconv.conv_backward_data(gy, w, x_shape, algo="reference", **kw)
    bias_c = round_to(rng.uniform(-1, 1, x_shape[1]), dtype)  # a transposed conv's bias
    got = _emu_conv("backward_data", "depthwise", "simt", dtype, x_shape, w_shape, kw, gy, w)
    assert_gpu_close(got, dx, dtype, mult * taps, "backward_data")
    got = _emu_conv(
        "backward_data", "depthwise", "simt", dtype, x_shape, w_shape, kw, gy, w, bias_c
    )
    want = dx + bias_c.reshape((1, -1) + (1,) * (len(x_shape) - 2))
    assert_gpu_close(got, want, dtype, mult * taps, "backward_data with bias")
    dw = fastconv.conv_backward_weight(x, gy, w_shape, algo="reference", **kw)
    got = _emu_conv("backward_weight", "depthwise", "simt", dtype, x_shape, w_shape, kw, x, gy)
    assert_gpu_close(got, dw, dtype, max(y.size // w_shape[0], 1), "backward_weight")


@requires_emulation
@pytest.mark.parametrize("sms", [1, 8, 132])
@pytest.mark.parametrize(
    "case", [0, 2, 3, 4], ids=lambda i: "x".join(map(str, DEPTHWISE_TILE_CASES[i][0]))
)
def test_emulated_depthwise_weight_split_is_exact_with_any_workspace(rng, case, sms):
    """The tiled weight gradient splits its (image, tile) reduction into slices summed in a fixed
    order when there are few channels for the multiprocessors: the asked-for workspace, a
    smaller one (fewer slices) and none (one block per channel) all give the reference."""
    x_shape, w_shape, kw, _ = DEPTHWISE_TILE_CASES[case]
    x_shape = (4 * x_shape[0],) + x_shape[1:]  # enough (image, tile) pairs to split
    geometry = conv_problem("conv", "forward", x_shape, w_shape, "float64", **kw).conv_geometry
    _, _, stride, lo, hi, dilation, groups, _ = geometry
    x, w = rng.uniform(-1, 1, x_shape), rng.uniform(-1, 1, w_shape)
    y = fastconv.conv(x, w, algo="reference", **kw)
    gy = rng.uniform(-1, 1, y.shape)
    dw = fastconv.conv_backward_weight(x, gy, w_shape, algo="reference", **kw)
    slice_bytes = 8 * math.prod(w_shape[:1] + w_shape[2:])
    EMU.set_multiprocessors(sms)
    try:
        asked = EMU.depthwise_workspace(
            "backward_weight",
            "float64",
            list(x_shape),
            list(w_shape),
            stride,
            lo,
            hi,
            dilation,
            groups,
        )
        assert asked % slice_bytes == 0
        if sms == 1:
            # the tiled kernel asks none (two blocks' worth of channels already); the size is
            # asked without the operands' order, so it covers the channels-last kernel's two
            # slices (all channels in one block of 32)
            assert asked == 2 * slice_bytes
        if sms == 132:
            assert asked >= 2 * slice_bytes  # a few channels on many multiprocessors: split
        args = ("backward_weight", "depthwise", "simt", "float64", x_shape, w_shape, kw, x, gy)
        for nbytes in (-1, 2 * slice_bytes + 5, 0):
            got = _emu_conv(*args, workspace_bytes=nbytes)
            assert_gpu_close(got, dw, "float64", max(y.size // w_shape[0], 1), f"ws {nbytes}")
    finally:
        EMU.set_multiprocessors(8)


@requires_emulation
@pytest.mark.parametrize("math_", ["simt", "tensor_core"])
def test_emulated_backward_data_takes_its_phases_eight_per_launch(rng, math_):
    """A 3x4 stride has 12 phases (two launches of the phase table), of different widths, one
    that no tap reaches (kernel 2 along the stride-3 dim at dilation 1: phase 2 gets zeros plus
    the bias); against the reference."""
    x_shape, w_shape = (2, 5, 13, 17), (6, 5, 2, 5)
    kw = dict(stride=(3, 4), padding=(0, 2))
    x, w = rng.uniform(-1, 1, x_shape), rng.uniform(-1, 1, w_shape)
    dtype = "float64" if math_ == "simt" else "float16"
    x, w = round_to(x, dtype), round_to(w, dtype)
    y = fastconv.conv(x, w, algo="reference", **kw)
    gy = round_to(rng.uniform(-1, 1, y.shape), dtype)
    bias = round_to(rng.uniform(-1, 1, x_shape[1]), dtype)
    want = fastconv.conv_backward_data(gy, w, x_shape, algo="reference", **kw)
    want = want + bias.reshape(1, -1, 1, 1)
    got = _emu_conv(
        "backward_data", "implicit_gemm", math_, dtype, x_shape, w_shape, kw, gy, w, bias
    )
    assert_gpu_close(got, want, dtype, w_shape[0] * 10, "12 phases")


@requires_emulation
def test_round_to_tf32_rounds_to_nearest_ties_away(rng):
    """The tensor-op path rounds float32 operands to TF32 (10 mantissa bits) as cvt.rna does:
    to nearest, ties away from zero; infinities and NaNs kept."""
    v = np.concatenate(
        [
            rng.standard_normal(2000).astype(np.float32),
            np.float32([1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11), 1 + 2**-12, 3.4e38, 0.0]),
            np.float32([np.inf, -np.inf, 1e-40]),
        ]
    )
    got = np.asarray(EMU.round_to_tf32(v.tolist()), dtype=np.float32)
    m, e = np.frexp(v.astype(np.float64))  # v = m 2^e, 0.5 <= |m| < 1: keep 11 bits of m
    want = np.ldexp(np.sign(m) * np.floor(np.abs(m) * 2**11 + 0.5) / 2**11, e)
    finite = np.isfinite(v) & (np.abs(v) < 3e38) & (np.abs(v) > 1e-37)
    np.testing.assert_array_equal(got[finite], want[finite].astype(np.float32))
    assert got[-9] == np.float32(1 + 2**-10) and got[-7] == -np.float32(1 + 2**-10)  # ties
    assert got[-6] == 1.0
    assert np.isposinf(got[-3]) and np.isneginf(got[-2])
    assert np.isnan(EMU.round_to_tf32([float("nan")])[0])


@requires_emulation
def test_fast_division_is_exact_for_every_31_bit_dividend(rng):
    """FastDiv (cuda/launch.cuh), the pooling kernels' 32-bit division by a run-time divisor:
    exact against integer division for divisors 1 to 2^31 - 1 (powers of two, their
    neighbours, primes, random) and dividends at the edges and at random below 2^31."""
    top = 2**31 - 1
    divisors = {1, 2, 3, 5, 7, 9, 10, 49, 56, 112, 224, 3136, 12544, 65537, top, top - 1}
    divisors |= {2**k + e for k in range(1, 31) for e in (-1, 0, 1) if 0 < 2**k + e <= top}
    divisors |= {int(v) for v in rng.integers(1, top, 40)}
    for d in sorted(divisors):
        n = np.concatenate(
            [
                np.array([0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, top - 1, top], np.int64),
                rng.integers(0, top, 200),
                (rng.integers(0, max(top // d, 1), 50) * d),
            ]
        )
        n = n[(n >= 0) & (n <= top)].astype(np.uint32)
        got = np.array(EMU.fast_div(d, n.tolist()), np.int64)
        np.testing.assert_array_equal(got, n.astype(np.int64) // d, err_msg=f"d = {d}")


@requires_emulation
@pytest.mark.slow
def test_emulated_depthwise_31x31(rng):
    x_shape, w_shape = (1, 1, 33, 40), (2, 1, 31, 31)  # channel multiplier 2
    kw = dict(stride=2, padding=15, dilation=(1, 2), groups=1)
    x, w = rng.uniform(-1, 1, x_shape), rng.uniform(-1, 1, w_shape)
    y = fastconv.conv(x, w, **kw)
    gy = rng.uniform(-1, 1, y.shape)
    assert_gpu_close(
        _emu_conv("forward", "depthwise", "simt", "float64", x_shape, w_shape, kw, x, w),
        y,
        "float64",
        1,
    )
    assert_gpu_close(
        _emu_conv("backward_data", "depthwise", "simt", "float64", x_shape, w_shape, kw, gy, w),
        fastconv.conv_backward_data(gy, w, x_shape, **kw),
        "float64",
        1,
    )
    assert_gpu_close(
        _emu_conv("backward_weight", "depthwise", "simt", "float64", x_shape, w_shape, kw, x, gy),
        fastconv.conv_backward_weight(x, gy, w_shape, **kw),
        "float64",
        1,
    )


@requires_emulation
@pytest.mark.parametrize(
    "dtype",
    [
        "float32",
        pytest.param("float64", marks=pytest.mark.slow),
        pytest.param("float16", marks=pytest.mark.slow),
        pytest.param("bfloat16", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize(
    "case",
    POOL_CASES + [((2, 2, 7, 6), dict(kernel_size=(7, 6)))],
    ids=lambda c: f"{len(c[0]) - 2}d-{c[1]['kernel_size']}",
)
def test_emulated_pool_kernels_match_cpu_reference(rng, case, dtype):
    _check_emulated_pools(rng, case, dtype)


@requires_emulation
@pytest.mark.parametrize("wide", [False, True], ids=["32-bit", "64-bit"])
@pytest.mark.parametrize(
    "case",
    [
        ((2, 3, 23, 19), dict(kernel_size=3, stride=3, padding=1, dilation=2)),
        ((1, 2, 11, 9, 13), dict(kernel_size=(2, 3, 2), stride=(1, 2, 3), dilation=(2, 1, 3))),
        ((3, 2, 41), dict(kernel_size=4, stride=3, padding=2, dilation=3, ceil_mode=True)),
        ((2, 3, 23, 19), dict(kernel_size=(3, 4), stride=(2, 3), padding=(1, 2), ceil_mode=True)),
        ((1, 2, 9, 10, 11), dict(kernel_size=3, stride=(1, 2, 3))),
    ],
    ids=["2d-dilated", "3d-dilated", "1d-dilated", "2d", "3d"],
)
def test_emulated_pool_index_math_in_32_and_64_bits(rng, case, wide):
    """Pooling's kernels with 32-bit index math (FastDiv: what problems below 2^31 elements
    run) and with the 64-bit kernels (forced here; on a GPU only past 2^31), on dilated, strided
    and padded windows in 1-3 D: both match the reference in every pass."""
    EMU.set_wide_indices(wide)
    try:
        _check_emulated_pools(rng, case, "float32")
    finally:
        EMU.set_wide_indices(False)


def _check_emulated_pools(rng, case, dtype):
    shape, kw = case
    x = round_to(rng.uniform(-1, 1, shape), dtype)
    x.flat[3] = x.flat[4]  # a tie: the first maximum wins
    ceil_mode = kw.get("ceil_mode", False)
    dilated = kw.get("dilation", 1) != 1  # max pooling only (avg and lp take no dilation)
    geo = pool_problem(
        "max_pool" if dilated else "avg_pool",
        "forward",
        shape,
        "float64",
        kw["kernel_size"],
        stride=kw.get("stride"),
        padding=kw.get("padding", 0),
        dilation=kw.get("dilation", 1),
        ceil_mode=ceil_mode,
    ).pool_geometry
    pad_lo = geo[3]
    y, idx = EMU.pool_forward("max_pool", dtype, *geo, True, 1.0, x)
    y64, idx64 = fastconv.max_pool(x, return_indices=True, **kw)
    assert_gpu_close(y, y64, dtype, 1)
    np.testing.assert_array_equal(idx, idx64)
    gy = round_to(rng.uniform(-1, 1, y64.shape), dtype)
    assert_gpu_close(
        EMU.pool_backward("max_pool", dtype, *geo, True, 1.0, gy, x),
        fastconv.max_pool_backward(gy, x, **kw),
        dtype,
        8,
    )
    for cip in (True, False) if not dilated else ():
        y, _ = EMU.pool_forward("avg_pool", dtype, *geo, cip, 1.0, x)
        assert_gpu_close(y, fastconv.avg_pool(x, count_include_pad=cip, **kw), dtype, 8)
        assert_gpu_close(
            EMU.pool_backward("avg_pool", dtype, *geo, cip, 1.0, gy, x),
            fastconv.avg_pool_backward(gy, x.shape, count_include_pad=cip, **kw),
            dtype,
            8,
        )
    if not any(pad_lo) and not dilated:  # lp pools take no padding
        xp = round_to(np.abs(x) + 0.1, dtype)
        lp_kw = {k_: v for k_, v in kw.items() if k_ in ("kernel_size", "stride", "ceil_mode")}
        for p in (2.0, 3.0):
            y, _ = EMU.pool_forward("lp_pool", dtype, *geo, True, p, xp)
            assert_gpu_close(y, fastconv.lp_pool(xp, p, **lp_kw), dtype, 16)
            assert_gpu_close(
                EMU.pool_backward("lp_pool", dtype, *geo, True, p, gy, xp),
                fastconv.lp_pool_backward(gy, xp, p, **lp_kw),
                dtype,
                16,
            )
    # max_unpool: duplicates (overlapping windows) keep the last, as on the CPU
    out_shape = list(shape)
    want = fastconv.max_unpool(
        y64,
        idx64,
        kw["kernel_size"],
        stride=kw.get("stride"),
        padding=kw.get("padding", 0),
        output_size=shape[2:],
    )
    assert_gpu_close(EMU.max_unpool(dtype, out_shape, y64, idx64), want, dtype, 1)
    assert EMU.take_unpool_error() is None
    # A bad index is skipped, not written anywhere, and reported through the device's record
    # (no synchronisation): the first bad one in the call's order, read once.
    plane = int(np.prod(out_shape[2:]))
    bad = idx64.copy()
    bad.reshape(-1)[1] = plane + 5
    bad.reshape(-1)[-1] = -3
    got = EMU.max_unpool(dtype, out_shape, y64, bad)
    assert_gpu_close(got, _unpool_in_range(y64, bad, out_shape), dtype, 1)
    assert EMU.take_unpool_error() == (plane + 5, plane)
    assert EMU.take_unpool_error() is None


def _unpool_in_range(x, idx, out_shape):
    """max_unpool in NumPy with out-of-range indices skipped (the last duplicate wins)."""
    planes = out_shape[0] * out_shape[1]
    out = np.zeros((planes, int(np.prod(out_shape[2:]))))
    for p_, (xs, js) in enumerate(zip(x.reshape(planes, -1), idx.reshape(planes, -1))):
        for v, j in zip(xs, js):
            if 0 <= j < out.shape[1]:
                out[p_, j] = v
    return out.reshape(out_shape)


# ---- end to end on the CPU: fastconv's public API -> the CUDA backend (fastconv/backends/cuda.py)
# -> the real glue (cuda/module.cc) -> launchers -> kernels, all emulated. CPU torch tensors
# wrapped as "CUDA arrays" (they report a CUDA DLPack device) stand in for device tensors (the
# emulated "device pointers" are host pointers), and a registered backend serves them with the
# emulated module, so routing, shape checks, output allocation, the transposed-conv pass
# mapping and max_unpool's index check run as they would on a GPU.


def _load_emulated_glue():
    import importlib.util

    found = list((EMULATION_DIR / "glue").glob("_cuda*.so"))
    if EMU is None or not found:
        return None
    spec = importlib.util.spec_from_file_location("_cuda", found[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GLUE = _load_emulated_glue()


class EmulatedDeviceTensor:
    """A CPU torch tensor that says it lives on cuda:0; methods and operators act on the tensor
    and wrap tensor results again."""

    def __init__(self, t):
        self.t = t

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA, device 0

    @staticmethod
    def _wrap(v):
        return EmulatedDeviceTensor(v) if isinstance(v, torch.Tensor) else v

    def __getattr__(self, name):
        attr = getattr(self.t, name)
        if not callable(attr):
            return attr
        return lambda *a, **k: self._wrap(attr(*a, **k))

    def __getitem__(self, key):
        return self._wrap(self.t[key])

    def __add__(self, other):
        return self._wrap(self.t + other)

    def copy_(self, other):
        self.t.copy_(other.t if isinstance(other, EmulatedDeviceTensor) else other)
        return self


class EmulatedCuda(CudaBackend):
    """The CUDA backend over the emulated module: host pointers, no streams, NaN outputs."""

    def module(self):
        return GLUE

    def devices(self):
        return GLUE.devices()

    def stream(self, call):
        return 0

    def prepare(self, names, values, device, index=None, channels_last=False):
        def unwrap(v):
            return v.t if isinstance(v, EmulatedDeviceTensor) else v

        if index is not None:
            index = (index[0], unwrap(index[1]))
        values = [unwrap(v) for v in values]
        return super().prepare(names, values, device, index, channels_last=channels_last)

    allocations: list = []  # (shape, dtype) of every empty(): outputs and workspaces
    fail_workspaces = False  # empty() of a workspace raises MemoryError (an exhausted cache)

    def empty(self, call, shape, dtype=None, channels_last=False):
        dtype = dtype or call.dtype
        self.allocations.append((tuple(shape), dtype))
        if dtype == "uint8":  # workspaces: poisoned bytes, the kernels must write what they read
            if self.fail_workspaces:
                raise MemoryError("emulated: CUDA out of memory")
            t = torch.full(tuple(shape), 0x7F, dtype=torch.uint8)
            return t, t.data_ptr()
        t = torch.full(tuple(shape), float("nan")) if dtype != "int64" else torch.empty(shape)
        t = t.to(getattr(torch, dtype))
        if channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return EmulatedDeviceTensor(t), t.data_ptr()


@pytest.fixture
def emulated_gpu():
    """Serves "CUDA" arrays with the emulated kernels for the duration of a test; float32
    runs exact FP32 (torch's cudnn.allow_tf32, which fastconv follows, off) unless a test
    turns TF32 on."""
    if GLUE is None or torch is None:
        pytest.skip(f"needs torch and the CUDA host emulation ({EMU_REASON or 'glue missing'})")
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with backends.registered(EmulatedCuda()) as backend:
            backend.allocations = []
            yield GLUE
    finally:
        torch.backends.cudnn.allow_tf32 = old
        GLUE._clear_pending_error()


def _t(a, dtype):
    return EmulatedDeviceTensor(torch.from_numpy(np.ascontiguousarray(a)).to(getattr(torch, dtype)))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_emulated_end_to_end_conv_and_transposed_conv(emulated_gpu, rng, dtype):
    x64 = round_to(rng.uniform(-1, 1, (2, 6, 9, 7)), dtype)
    w64 = round_to(rng.uniform(-1, 1, (4, 3, 3, 2)), dtype)
    b64 = round_to(rng.uniform(-1, 1, 4), dtype)
    kw = dict(stride=(2, 1), padding=((1, 0), (1, 1)), dilation=(1, 2), groups=2)
    x, w, b = _t(x64, dtype), _t(w64, dtype), _t(b64, dtype)
    y = fastconv.conv(x, w, b, **kw)
    assert isinstance(y, EmulatedDeviceTensor) and y.dtype == x.dtype  # the inputs' kind
    y64 = fastconv.conv(x64, w64, b64, **kw)
    assert_gpu_close(y, y64, dtype, 18)
    gy64 = round_to(rng.uniform(-1, 1, y64.shape), dtype)
    gy = _t(gy64, dtype)
    assert_gpu_close(
        fastconv.conv_backward_data(gy, w, x.shape, **kw),
        fastconv.conv_backward_data(gy64, w64, x64.shape, **kw),
        dtype,
        12,
    )
    assert_gpu_close(
        fastconv.conv_backward_weight(x, gy, w.shape, **kw),
        fastconv.conv_backward_weight(x64, gy64, w64.shape, **kw),
        dtype,
        gy64.size,
    )
    assert_gpu_close(
        fastconv.conv_backward_bias(gy), fastconv.conv_backward_bias(gy64), dtype, gy64.size
    )
    with pytest.raises(ValueError, match="grad_y must have shape"):
        fastconv.conv_backward_data(gy[:, :, :-1], w, x.shape, **kw)
    with pytest.raises(ValueError, match="is on the CPU"):
        fastconv.conv(x, w64, **kw)  # a NumPy weight with a "GPU" input
    # transposed conv: each pass is a conv pass of its conv geometry (cuda/module.cc)
    tkw = dict(stride=2, padding=1, output_padding=1, groups=2)
    wt64 = round_to(rng.uniform(-1, 1, (6, 2, 3, 3)), dtype)
    bt64 = round_to(rng.uniform(-1, 1, 4), dtype)
    wt, bt = _t(wt64, dtype), _t(bt64, dtype)
    yt64 = fastconv.conv_transpose(x64, wt64, bt64, **tkw)
    assert_gpu_close(fastconv.conv_transpose(x, wt, bt, **tkw), yt64, dtype, 27)
    gyt64 = round_to(rng.uniform(-1, 1, yt64.shape), dtype)
    gyt = _t(gyt64, dtype)
    assert_gpu_close(
        fastconv.conv_transpose_backward_data(gyt, wt, **tkw),
        fastconv.conv_transpose_backward_data(gyt64, wt64, **tkw),
        dtype,
        18,
    )
    assert_gpu_close(
        fastconv.conv_transpose_backward_weight(x, gyt, wt.shape, **tkw),
        fastconv.conv_transpose_backward_weight(x64, gyt64, wt64.shape, **tkw),
        dtype,
        x64.size,
    )
    # depthwise chosen by auto, and forced
    wd64 = round_to(rng.uniform(-1, 1, (12, 1, 3, 3)), dtype)
    yd = fastconv.conv(x, _t(wd64, dtype), padding=1, groups=6, algo="depthwise")
    assert_gpu_close(yd, fastconv.conv(x64, wd64, padding=1, groups=6), dtype, 9)
    with pytest.raises(NotImplementedError, match="depthwise"):
        fastconv.conv(x, w, algo="depthwise", groups=2)


def test_emulated_end_to_end_pools(emulated_gpu, rng):
    x64 = rng.uniform(-1, 1, (2, 3, 9, 8)).astype(np.float32).astype(np.float64)
    x = _t(x64, "float32")
    kw = dict(stride=2, padding=1, ceil_mode=True)
    y, idx = fastconv.max_pool(x, 3, return_indices=True, **kw)
    y64, idx64 = fastconv.max_pool(x64, 3, return_indices=True, **kw)
    assert idx.dtype == torch.int64
    assert_gpu_close(y, y64, "float32", 1)
    np.testing.assert_array_equal(idx.numpy(), idx64)
    gy64 = rng.uniform(-1, 1, y64.shape).astype(np.float32).astype(np.float64)
    gy = _t(gy64, "float32")
    assert_gpu_close(
        fastconv.max_pool_backward(gy, x, 3, **kw),
        fastconv.max_pool_backward(gy64, x64, 3, **kw),
        "float32",
        9,
    )
    assert_gpu_close(fastconv.avg_pool(x, 3, **kw), fastconv.avg_pool(x64, 3, **kw), "float32", 9)
    assert_gpu_close(
        fastconv.avg_pool_backward(gy, x.shape, 3, **kw),
        fastconv.avg_pool_backward(gy64, x64.shape, 3, **kw),
        "float32",
        9,
    )
    xp64, xp = np.abs(x64) + 0.5, x.abs() + 0.5
    assert_gpu_close(fastconv.lp_pool(xp, 2, 2), fastconv.lp_pool(xp64, 2, 2), "float32", 4)
    gl64 = round_to(rng.uniform(-1, 1, (2, 3, 4, 4)), "float32")
    assert_gpu_close(
        fastconv.lp_pool_backward(_t(gl64, "float32"), xp, 2, 2),
        fastconv.lp_pool_backward(gl64, xp64, 2, 2),
        "float32",
        4,
    )
    assert_gpu_close(fastconv.global_avg_pool(x), fastconv.global_avg_pool(x64), "float32", 72)
    assert_gpu_close(fastconv.global_max_pool(x), fastconv.global_max_pool(x64), "float32", 1)
    unpool_kw = dict(stride=2, padding=1, output_size=(9, 8))
    assert_gpu_close(
        fastconv.max_unpool(y, idx, 3, **unpool_kw),
        fastconv.max_unpool(y64, idx64, 3, **unpool_kw),
        "float32",
        1,
    )
    with pytest.raises(TypeError, match="integer"):
        fastconv.max_unpool(y, idx.double(), 3, **unpool_kw)


def test_emulated_max_unpool_reports_bad_indices_without_synchronising(emulated_gpu, rng):
    """GPU max_unpool never stalls the stream to validate indices: a bad one is skipped and
    recorded on the device, raised (ValueError naming indices) by the next max_unpool call on
    the device or by check_gpu_errors(), once."""
    x64 = rng.uniform(-1, 1, (2, 3, 9, 8)).astype(np.float32).astype(np.float64)
    y64, idx64 = fastconv.max_pool(x64, 3, stride=2, padding=1, return_indices=True)
    y, idx = _t(y64, "float32"), EmulatedDeviceTensor(torch.from_numpy(idx64))
    unpool_kw = dict(stride=2, padding=1, output_size=(9, 8))
    bad = idx64.copy()
    bad[1, 2, 0, 1] = 72 + 1000
    got = fastconv.max_unpool(y, EmulatedDeviceTensor(torch.from_numpy(bad)), 3, **unpool_kw)
    assert_gpu_close(got, _unpool_in_range(y64, bad, (2, 3, 9, 8)), "float32", 1)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 72\).*got 1072.*earlier"):
        fastconv.check_gpu_errors()
    fastconv.check_gpu_errors()  # read once
    fastconv.max_unpool(y, EmulatedDeviceTensor(torch.from_numpy(bad)), 3, **unpool_kw)
    with pytest.raises(ValueError, match="got 1072 in an earlier max_unpool call"):
        fastconv.max_unpool(y, idx, 3, **unpool_kw)  # the next call on the device reports it
    good = fastconv.max_unpool(y, idx, 3, **unpool_kw)
    assert_gpu_close(good, fastconv.max_unpool(y64, idx64, 3, **unpool_kw), "float32", 1)
    skip = idx64.copy()
    skip[0, 1, 2, 3] = skip[1, 0, 0, 0] = -1  # windows of padding only: skipped, no error
    got = fastconv.max_unpool(y, EmulatedDeviceTensor(torch.from_numpy(skip)), 3, **unpool_kw)
    assert_gpu_close(got, fastconv.max_unpool(y64, skip, 3, **unpool_kw), "float32", 1)
    fastconv.check_gpu_errors()
    fastconv.check_gpu_errors(synchronize=False)
    with pytest.raises(TypeError, match="synchronize"):
        fastconv.check_gpu_errors("yes")


def test_emulated_workspaces_come_from_the_callers_allocator(emulated_gpu, rng):
    """The kernels allocate nothing: the backend asks the module for the workspace size and
    allocates it with the caller's library (here: the test backend's empty()), explain()
    reports it, and a workspace that cannot be had costs speed (a warning), not the result."""
    backend = backends.backend_for_device("cuda")
    x_shape, w_shape = (2, 16, 12, 12), (8, 16, 3, 3)  # few output tiles, long reduction
    x64, gy64 = rng.uniform(-1, 1, x_shape), rng.uniform(-1, 1, (2, 8, 12, 12))
    x64, gy64 = round_to(x64, "float32"), round_to(gy64, "float32")
    x, gy = _t(x64, "float32"), _t(gy64, "float32")
    want = fastconv.conv_backward_weight(x64, gy64, w_shape, padding=1)
    e = fastconv.explain(x, w_shape, padding=1, pass_="backward_weight")
    assert e.workspace_bytes > 0 and "caller's allocator" in e.reason
    # backward data's phases fill the grid side by side: no split, no workspace
    assert fastconv.explain(x, w_shape, padding=1, pass_="backward_data").workspace_bytes == 0
    backend.allocations.clear()
    split = fastconv.conv_backward_weight(x, gy, w_shape, padding=1)
    assert ((e.workspace_bytes,), "uint8") in backend.allocations
    assert_gpu_close(split, want, "float32", 2 * 144)
    backend.fail_workspaces = True
    try:
        with pytest.warns(ResourceWarning, match="workspace"):
            unsplit = fastconv.conv_backward_weight(x, gy, w_shape, padding=1)
        assert_gpu_close(unsplit, want, "float32", 2 * 144)
        with pytest.raises(MemoryError):  # max-pool backward cannot run without its scratch
            fastconv.max_pool_backward(x, x, 1)
    finally:
        backend.fail_workspaces = False
    # pooling backward's scratch (argmax / norm) is a workspace too; a short one is refused
    g6_64 = round_to(rng.uniform(-1, 1, (2, 8, 6, 6)), "float32")
    gp = fastconv.max_pool_backward(_t(g6_64, "float32"), gy, 2)
    assert_gpu_close(gp, fastconv.max_pool_backward(g6_64, gy64, 2), "float32", 1)
    assert ((2 * 8 * 6 * 6 * 8,), "uint8") in backend.allocations
    geometry = ((2, 8, 12, 12), (2, 2), (2, 2), (0, 0), (0, 0), (1, 1), False)
    assert GLUE.pool_workspace("max_pool", "backward", "float32", *geometry) == 2 * 8 * 36 * 8
    assert GLUE.pool_workspace("avg_pool", "backward", "float32", *geometry) == 0
    with pytest.raises(ValueError, match="needs a workspace of 4608 bytes, got 0"):
        GLUE.pool(
            "max_pool",
            "backward",
            "float32",
            0,
            0,
            *geometry,
            True,
            2.0,
            gy.t.data_ptr(),
            gy.t.data_ptr(),
            0,
            gp.t.data_ptr(),
        )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_emulated_tensor_op_path_end_to_end(emulated_gpu, rng, dtype):
    """fastconv's API over the emulated module: a half-precision layer with channels in 8s
    takes the tensor-op path for every pass (explain says so, its workspace comes from the
    caller's allocator); when that workspace cannot be had, the WMMA kernel runs instead (a
    warning) with the same result; a 10-channel layer never takes it."""
    backend = backends.backend_for_device("cuda")
    x_shape, w_shape, kw = (2, 16, 10, 9), (8, 16, 3, 3), dict(stride=2, padding=1)
    x64 = round_to(rng.uniform(-1, 1, x_shape), dtype)
    w64 = round_to(rng.uniform(-1, 1, w_shape), dtype)
    b64 = round_to(rng.uniform(-1, 1, 8), dtype)
    x, w, b = _t(x64, dtype), _t(w64, dtype), _t(b64, dtype)
    y64 = fastconv.conv(x64, w64, b64, **kw)
    gy64 = round_to(rng.uniform(-1, 1, y64.shape), dtype)
    gy = _t(gy64, dtype)
    runs = {
        "forward": lambda: fastconv.conv(x, w, b, **kw),
        "backward_data": lambda: fastconv.conv_backward_data(gy, w, x_shape, **kw),
        "backward_weight": lambda: fastconv.conv_backward_weight(x, gy, w_shape, **kw),
    }
    wants = {
        "forward": (y64, 16 * 9),
        "backward_data": (fastconv.conv_backward_data(gy64, w64, x_shape, **kw), 8 * 9),
        "backward_weight": (fastconv.conv_backward_weight(x64, gy64, w_shape, **kw), 50),
    }
    for pass_, run in runs.items():
        e = fastconv.explain(x, w_shape, pass_=pass_, **kw)
        assert "tensor-op path" in e.reason and e.workspace_bytes > 0, e.reason
        backend.allocations.clear()
        assert_gpu_close(run(), *wants[pass_][:1], dtype, wants[pass_][1], pass_)
        assert ((e.workspace_bytes,), "uint8") in backend.allocations
        backend.fail_workspaces = True
        try:
            with pytest.warns(ResourceWarning, match="workspace"):
                got = run()
        finally:
            backend.fail_workspaces = False
        assert_gpu_close(got, *wants[pass_][:1], dtype, wants[pass_][1], f"{pass_} (WMMA)")
    e = fastconv.explain(_t(np.zeros((2, 10, 6, 6)), dtype), (8, 10, 3, 3))
    assert "tensor-op" not in e.reason


class _ConvRecorder:
    """The emulated module, recording the channels-last flags of every conv call."""

    def __init__(self, mod):
        self.mod, self.flags, self.out_flags = mod, [], []

    def __getattr__(self, name):
        return getattr(self.mod, name)

    def conv(self, *args):
        self.flags.append(tuple(args[-3:-1]))  # the operands' flags (a, b)
        self.out_flags.append(args[-1])  # the result written channels-last
        return self.mod.conv(*args)


def _cl(a, dtype):
    t = torch.from_numpy(np.ascontiguousarray(a)).to(getattr(torch, dtype))
    return EmulatedDeviceTensor(t.to(memory_format=torch.channels_last))


def test_emulated_channels_last_operands_are_read_in_place(emulated_gpu, rng, monkeypatch):
    """channels_last float16 tensors reach the tensor-op path as they are (no copy: the kernel
    gets the channels-last flags, explain() says so) in every pass and in a transposed conv;
    a filter with mode="conv", a float32 call (TF32 rounding is the move's job), a layer off
    the path and pooling get channel-first copies. The result of a forward or backward data
    with a channels_last operand is channels_last, as PyTorch's (the path writes it itself;
    other kernels' results are copied into it); a weight gradient's is channel-first. Results
    match the reference either way; the inputs stay as they were."""
    backend = backends.backend_for_device("cuda")
    rec = _ConvRecorder(GLUE)
    monkeypatch.setattr(backend, "module", lambda: rec)
    x64 = round_to(rng.uniform(-1, 1, (2, 16, 9, 10)), "float16")
    w64 = round_to(rng.uniform(-1, 1, (8, 16, 3, 3)), "float16")
    gy64 = round_to(rng.uniform(-1, 1, (2, 8, 9, 10)), "float16")
    x, w, gy = _cl(x64, "float16"), _cl(w64, "float16"), _cl(gy64, "float16")
    kw = dict(padding=1)
    cl = torch.channels_last

    def check(got, want, n, flags, what, written=True, dtype="float16"):
        """written: the kernel wrote the channels_last result itself (None: a weight
        gradient, channel-first)."""
        assert rec.flags[-1] == flags, (what, rec.flags[-1])
        assert rec.out_flags[-1] is bool(written), (what, rec.out_flags[-1])
        if written is None:
            assert got.t.is_contiguous(), what
        else:
            assert got.t.is_contiguous(memory_format=cl) and not got.t.is_contiguous(), what
        assert_gpu_close(got, want, dtype, n, what)

    check(fastconv.conv(x, w, **kw), fastconv.conv(x64, w64, **kw), 144, (True, True), "fwd")
    # what explain() asks (its copy notes then say "read in place")
    fwd = conv_problem("conv", "forward", x64.shape, w64.shape, "float16", **kw)
    assert backend.reads_in_place(fwd, "implicit_gemm", (True, True)) == (True, True)
    assert backend.reads_in_place(fwd, "implicit_gemm_simt", (True, False)) == (False, False)
    flipped = conv_problem("conv", "forward", x64.shape, w64.shape, "float16", mode="conv", **kw)
    assert backend.reads_in_place(flipped, "implicit_gemm", (True, True)) == (True, False)
    want = fastconv.conv_backward_data(gy64, w64, x64.shape, **kw)
    check(fastconv.conv_backward_data(gy, w, x64.shape, **kw), want, 72, (True, True), "bd")
    # one channels_last operand is enough for a channels_last result (either one)
    got = fastconv.conv(x, _t(w64, "float16"), **kw)
    check(got, fastconv.conv(x64, w64, **kw), 144, (True, False), "fwd, x only")
    got = fastconv.conv_backward_data(_t(gy64, "float16"), w, x64.shape, **kw)
    check(got, want, 72, (False, True), "bd, w only")
    want = fastconv.conv_backward_weight(x64, gy64, w64.shape, **kw)
    got = fastconv.conv_backward_weight(x, gy, w64.shape, **kw)
    check(got, want, 180, (True, True), "bw", written=None)
    got = fastconv.conv_backward_weight(x, _t(gy64, "float16"), w64.shape, **kw)
    check(got, want, 180, (True, False), "bw, x only", None)  # the module's a = x, b = grad_y
    got = fastconv.conv_backward_weight(_t(x64, "float16"), gy, w64.shape, **kw)
    check(got, want, 180, (False, True), "bw, grad_y only", None)
    # a channels_last view 2 bytes off 16-byte alignment: copied (cp.async needs 16 bytes),
    # and still a channels_last result
    base = torch.zeros(x64.size + 1, dtype=torch.float16)
    view = base[1:].view(2, 9, 10, 16).permute(0, 3, 1, 2)
    view.copy_(torch.from_numpy(x64).half())
    assert view.is_contiguous(memory_format=cl) and view.data_ptr() % 16
    got = fastconv.conv(EmulatedDeviceTensor(view), w, **kw)
    check(got, fastconv.conv(x64, w64, **kw), 144, (False, True), "misaligned x")
    got = fastconv.conv(EmulatedDeviceTensor(view), _t(w64, "float16"), **kw)
    check(got, fastconv.conv(x64, w64, **kw), 144, (False, False), "misaligned x only")
    # mode="conv": the filter's move flips it, so a channels_last filter is copied
    want = fastconv.conv(x64, w64, mode="conv", **kw)
    check(fastconv.conv(x, w, mode="conv", **kw), want, 144, (True, False), "flip")
    # a transposed conv's forward runs backward data with (w, x) swapped back in order
    wt64 = round_to(rng.uniform(-1, 1, (16, 8, 3, 3)), "float16")
    tkw = dict(stride=2, padding=1, output_padding=1)
    want = fastconv.conv_transpose(x64, wt64, **tkw)
    wt = _cl(wt64, "float16")
    got = fastconv.conv_transpose(x, wt, **tkw)
    check(got, want, 72, (True, True), "transposed")
    # with a bias: the core writes float32, rounded into the channels_last result with it
    bt64 = round_to(rng.uniform(-1, 1, 8), "float16")
    want = fastconv.conv_transpose(x64, wt64, bt64, **tkw)
    got = fastconv.conv_transpose(x, wt, _t(bt64, "float16"), **tkw)
    check(got, want, 73, (True, True), "transposed, bias")
    # its weight gradient: the module's (a, b) = (grad_y, x), swapped from the public (x, gy)
    gyt64 = round_to(rng.uniform(-1, 1, want.shape), "float16")
    want = fastconv.conv_transpose_backward_weight(x64, gyt64, wt64.shape, **tkw)
    got = fastconv.conv_transpose_backward_weight(x, _t(gyt64, "float16"), wt64.shape, **tkw)
    check(got, want, 180, (False, True), "transposed bw, x only", None)
    # no workspace to be had: the path cannot run, so both are copied and the WMMA kernel's
    # channel-first result copied into the channels_last one (with a ResourceWarning)
    backend.fail_workspaces = True
    try:
        with pytest.warns(ResourceWarning, match="workspace"):
            got = fastconv.conv(x, w, **kw)
    finally:
        backend.fail_workspaces = False
    check(got, fastconv.conv(x64, w64, **kw), 144, (False, False), "no workspace", False)
    # copied: float32 (exact FP32 here, off the path), a 10-channel layer, a pool; their
    # channel-first results copied into channels_last ones
    x32 = _cl(round_to(x64, "float32"), "float32")
    w32 = _t(round_to(w64, "float32"), "float32")
    got = fastconv.conv(x32, w32, **kw)
    check(got, fastconv.conv(x64, w64, **kw), 144, (False, False), "fp32", False, "float32")
    x10 = round_to(rng.uniform(-1, 1, (1, 10, 6, 6)), "float16")
    w10 = round_to(rng.uniform(-1, 1, (8, 10, 3, 3)), "float16")
    got = fastconv.conv(_cl(x10, "float16"), _t(w10, "float16"))
    check(got, fastconv.conv(x10, w10), 90, (False, False), "10 channels", False)
    assert_gpu_close(fastconv.max_pool(x, 2), fastconv.max_pool(x64, 2), "float16", 1)
    assert x.t.is_contiguous(memory_format=cl)
    # depthwise: its channels-last kernels (test_emulated_depthwise_channels_last below)
    wd64 = round_to(rng.uniform(-1, 1, (16, 1, 3, 3)), "float16")
    got = fastconv.conv(x, _t(wd64, "float16"), groups=16, algo="depthwise", **kw)
    want = fastconv.conv(x64, wd64, groups=16, **kw)
    check(got, want, 9, (True, False), "depthwise")
    # float32 as TF32 takes the path: no channels_last operand (rounding is the move's job),
    # but the result written in place, with a bias too
    torch.backends.cudnn.allow_tf32 = True
    b64 = rng.uniform(-1, 1, 8)
    want = fastconv.conv(x64, w64, b64, **kw)
    got = fastconv.conv(x32, w32, _t(b64, "float32"), **kw)
    check(got, round_to(want, "float32"), 144, (False, False), "tf32, bias", True, "tf32")


DEPTHWISE_CL_CASES = [  # (x shape, multiplier, kernel, kwargs)
    ((2, 16, 9, 10), 1, (3, 3), dict(padding=1)),
    ((2, 8, 11, 9), 2, (3, 3), dict(stride=2, padding=((1, 0), (2, 1)))),
    ((1, 40, 12, 13), 1, (5, 5), dict(stride=(1, 2), padding=4, dilation=2)),
    ((3, 6, 7, 8), 3, (2, 3), dict(padding=((0, 1), (1, 1)), mode="conv")),
    ((2, 34, 6, 6), 1, (7, 7), dict(padding=3)),  # 34 channels: two blocks of 32, one short
    ((1, 24, 7, 9), 2, (3, 3), dict(padding=1)),  # 48 outputs: blocks of 32 across groups
    # more taps than one staged chunk (64): the tap walk across chunks
    ((1, 40, 12, 11), 1, (9, 9), dict(padding=4, dilation=(1, 2), mode="conv")),
    ((1, 8, 2, 140), 2, (1, 130), dict(padding=((0, 0), (3, 60)))),
]


@pytest.mark.parametrize("case", range(len(DEPTHWISE_CL_CASES)))
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_emulated_depthwise_channels_last(emulated_gpu, rng, monkeypatch, case, dtype):
    """channels_last activations run depthwise's channels-last kernels in every pass (no copy
    in or out: the module gets the flags; the forward's and backward data's results are written
    channels_last, the weight gradient's channel-first), with channel multipliers, stride,
    dilation, asymmetric padding, mode="conv", a bias (forward; a transposed conv's backward
    data), a split weight gradient with any workspace; against the float64 reference."""
    backend = backends.backend_for_device("cuda")
    rec = _ConvRecorder(GLUE)
    monkeypatch.setattr(backend, "module", lambda: rec)
    x_shape, mult, kernel, kw = DEPTHWISE_CL_CASES[case]
    c = x_shape[1]
    w_shape = (c * mult, 1) + kernel
    kw = dict(kw, groups=c, algo="depthwise")
    ref = {k: v for k, v in kw.items() if k != "algo"}
    x64 = round_to(rng.uniform(-1, 1, x_shape), dtype)
    w64 = round_to(rng.uniform(-1, 1, w_shape), dtype)
    b64 = round_to(rng.uniform(-1, 1, w_shape[0]), dtype)
    y64 = fastconv.conv(x64, w64, b64, **ref)
    gy64 = round_to(rng.uniform(-1, 1, y64.shape), dtype)
    x, gy, w = _cl(x64, dtype), _cl(gy64, dtype), _t(w64, dtype)
    cl = torch.channels_last
    taps = math.prod(kernel)

    def check(got, want, n, flags, out, what):
        assert rec.flags[-1] == flags and rec.out_flags[-1] is out, (what, rec.flags[-1])
        layout = dict(memory_format=cl) if out else {}
        assert got.t.is_contiguous(**layout), what
        assert_gpu_close(got, want, dtype, n, what)

    check(fastconv.conv(x, w, _t(b64, dtype), **kw), y64, taps, (True, False), True, "fwd")
    want = fastconv.conv_backward_data(gy64, w64, x_shape, **ref)
    got = fastconv.conv_backward_data(gy, w, x_shape, **kw)
    check(got, want, mult * taps, (True, False), True, "bd")
    want = fastconv.conv_backward_weight(x64, gy64, w_shape, **ref)
    n = max(gy64.size // w_shape[0], 1)
    check(fastconv.conv_backward_weight(x, gy, w_shape, **kw), want, n, (True, True), False, "bw")
    if taps <= 9:  # (the channel-first weight gradient is slow in the emulation: a block per tap)
        # one activation channels_last: copied (the weight gradient takes both or neither)
        got = fastconv.conv_backward_weight(x, _t(gy64, dtype), w_shape, **kw)
        check(got, want, n, (False, False), False, "bw, x only")
    # the split weight gradient straight through the module: the asked-for workspace (slices
    # summed in a fixed order), one slice's worth less, none (one block per 32 channels)
    geometry = conv_problem("conv", "backward_weight", x_shape, w_shape, dtype, **ref)
    geometry = geometry.conv_geometry
    asked = GLUE.conv_workspace("backward_weight", "depthwise", "simt", dtype, 0, *geometry)
    slice_bytes = (8 if dtype == "float64" else 4) * w_shape[0] * taps
    # two blocks per multiprocessor (8) over blocks of 32 channels, slices of 64+ positions
    positions = gy64.size // w_shape[0]
    splits = min(-(-16 // -(-w_shape[0] // 32)), positions // 64, 64)
    assert asked % slice_bytes == 0 and asked >= (splits > 1) * splits * slice_bytes, asked
    for nbytes in sorted({asked, max(asked - slice_bytes, 0), 0}, reverse=True):
        out = torch.full(w_shape, float("nan"), dtype=getattr(torch, dtype))
        ws = torch.full((max(nbytes, 1),), 0x7F, dtype=torch.uint8)
        GLUE.conv(
            "backward_weight", "depthwise", "simt", dtype, 0, 0, *geometry, x.t.data_ptr(),
            gy.t.data_ptr(), 0, out.data_ptr(), ws.data_ptr(), nbytes, True, True, False,
        )  # fmt: skip
        assert_gpu_close(out, want, dtype, n, f"bw, {nbytes} bytes of workspace")
    if "stride" not in ref and "mode" not in ref:  # a transposed conv with a bias: its forward
        tb64 = round_to(rng.uniform(-1, 1, c), dtype)  # is backward data, bias per channel
        wt64 = round_to(rng.uniform(-1, 1, (c * mult, 1) + kernel), dtype)
        tkw = {k: v for k, v in ref.items() if k != "dilation"}
        want = fastconv.conv_transpose(gy64, wt64, tb64, **tkw)
        got = fastconv.conv_transpose(gy, _t(wt64, dtype), _t(tb64, dtype), algo="depthwise", **tkw)
        check(got, want, mult * taps, (True, False), True, "transposed, bias")
    # a channels_last view off 16-byte alignment: read in place all the same (no cp.async)
    base = torch.zeros(x64.size + 1, dtype=getattr(torch, dtype))
    view = base[1:].view(x_shape[0], *x_shape[2:], c).permute(0, 3, 1, 2)
    view.copy_(x.t)
    assert view.is_contiguous(memory_format=cl) and view.data_ptr() % 16
    got = fastconv.conv(EmulatedDeviceTensor(view), w, _t(b64, dtype), **kw)
    check(got, y64, taps, (True, False), True, "misaligned x")
    assert x.t.is_contiguous(memory_format=cl) and gy.t.is_contiguous(memory_format=cl)


def _random_channels_last_case(rng):
    """A random 2-D layer for the channels-last paths: depthwise (multiplier 1-3) or dense
    (channels multiples of 8: the tensor-op path), stride, dilation, uneven padding, maybe
    mode="conv" and a bias; small enough for the emulation."""
    depthwise = bool(rng.integers(2))
    # (two channels at least: a one-channel tensor is contiguous too, so channel-first)
    c = int(rng.integers(2, 40)) if depthwise else 8 * int(rng.integers(1, 4))
    k = c * int(rng.integers(1, 4)) if depthwise else 8 * int(rng.integers(1, 4))
    kernel = tuple(int(v) for v in rng.integers(1, 6, 2))
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    padding = tuple((int(rng.integers(0, kk)), int(rng.integers(0, kk))) for kk in kernel)
    spatial = tuple(int((kk - 1) * d + 1 + rng.integers(0, 9)) for kk, d in zip(kernel, dilation))
    kw = dict(stride=stride, dilation=dilation, padding=padding, groups=c if depthwise else 1)
    if rng.integers(4) == 0:
        kw["mode"] = "conv"
    x_shape = (int(rng.integers(1, 3)), c) + spatial
    w_shape = (k, 1 if depthwise else c) + kernel
    return x_shape, w_shape, kw, bool(rng.integers(2))


def _check_channels_last_case(rng, rec, x_shape, w_shape, kw, bias, dtype, what):
    """Every pass of one layer with channels_last activations (and filter, for a dense layer)
    against the float64 reference: values, the results' layouts, and (rec: the recording
    module) that the channels-last kernels ran - depthwise's, or the tensor-op path's reading
    the operands and writing the result in place (not the filter under mode="conv", whose
    move flips it; not a strided and dilated backward data, which the path does not take)."""
    cl = torch.channels_last
    x64 = round_to(rng.uniform(-1, 1, x_shape), dtype)
    w64 = round_to(rng.uniform(-1, 1, w_shape), dtype)
    b64 = round_to(rng.uniform(-1, 1, w_shape[0]), dtype) if bias else None
    y64 = fastconv.conv(x64, w64, b64, **kw)
    gy64 = round_to(rng.uniform(-1, 1, y64.shape), dtype)
    dense = kw["groups"] == 1
    x, gy = _cl(x64, dtype), _cl(gy64, dtype)
    w = _cl(w64, dtype) if dense else _t(w64, dtype)
    b = _t(b64, dtype) if bias else None
    red = w_shape[1] * w_shape[2] * w_shape[3]
    taps = w_shape[2] * w_shape[3]

    def stored(*ts):  # channels_last and not also contiguous (one channel: both)
        return any(t.t.is_contiguous(memory_format=cl) and not t.t.is_contiguous() for t in ts)

    fwd_layout = cl if stored(x, w) else torch.contiguous_format
    bd_layout = cl if stored(gy, w) else torch.contiguous_format
    if dense:
        flip = kw.get("mode") == "conv"
        fwd_flags = ((True, not flip), True)
        strided = max(kw["stride"]) > 1 and max(kw["dilation"]) > 1
        bd_flags = ((False, False), False) if strided else ((True, not flip), True)
    else:
        fwd_flags = bd_flags = ((True, False), True)
    flags = {
        "forward": fwd_flags,
        "backward_data": bd_flags,
        "backward_weight": ((True,) * 2, False),
    }
    for name, run, want, n, layout in (
        ("forward", lambda: fastconv.conv(x, w, b, **kw), y64, red, fwd_layout),
        (
            "backward_data",
            lambda: fastconv.conv_backward_data(gy, w, x_shape, **kw),
            fastconv.conv_backward_data(gy64, w64, x_shape, **kw),
            w_shape[0] // kw["groups"] * taps,
            bd_layout,
        ),
        (
            "backward_weight",
            lambda: fastconv.conv_backward_weight(x, gy, w_shape, **kw),
            fastconv.conv_backward_weight(x64, gy64, w_shape, **kw),
            max(gy64.size // w_shape[0], 1),
            torch.contiguous_format,
        ),
    ):
        got = run()  # (the reference calls above run on the CPU: not recorded)
        assert got.t.is_contiguous(memory_format=layout), (what, name)
        assert (rec.flags[-1], rec.out_flags[-1]) == flags[name], (what, name, rec.flags[-1])
        assert_gpu_close(got, want, dtype, n, f"{what} {name}")


def _random_channels_last_run(monkeypatch, seed):
    backend = backends.backend_for_device("cuda")
    rec = _ConvRecorder(GLUE)
    monkeypatch.setattr(backend, "module", lambda: rec)
    rng = np.random.default_rng(1000 + seed)
    case = _random_channels_last_case(rng)
    # dense layers in the tensor-op path's dtypes; depthwise in float32 too
    dtypes = ("float16", "bfloat16") if case[2]["groups"] == 1 else ("float16", "float32")
    dtype = dtypes[seed % 2]
    _check_channels_last_case(rng, rec, *case, dtype, f"seed {seed} {dtype}: {case}")


@pytest.mark.parametrize("seed", range(6))
def test_emulated_random_channels_last_layers(emulated_gpu, monkeypatch, seed):
    """Random layers through the channels-last paths (depthwise's kernels, the tensor-op
    path's in-place reads and writes, both checked on the module's flags): every pass against
    the reference, results channels_last (the weight gradient channel-first). More seeds:
    -m slow."""
    _random_channels_last_run(monkeypatch, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6, 60))
def test_emulated_random_channels_last_layers_more(emulated_gpu, monkeypatch, seed):
    _random_channels_last_run(monkeypatch, seed)


def test_emulated_float64_results_stay_channel_first(emulated_gpu, rng, monkeypatch):
    """float64 on the GPU keeps channel-first results whatever the operands' layout (PyTorch's
    cuDNN rule), so depthwise copies a channels_last x (its channels-last kernels write a
    channels-last result); its weight gradient still reads both activations in place."""
    backend = backends.backend_for_device("cuda")
    rec = _ConvRecorder(GLUE)
    monkeypatch.setattr(backend, "module", lambda: rec)
    x64, w64 = rng.uniform(-1, 1, (2, 16, 7, 8)), rng.uniform(-1, 1, (16, 1, 3, 3))
    kw = dict(padding=1, groups=16, algo="depthwise")
    ref = dict(padding=1, groups=16)
    x, w = _cl(x64, "float64"), _t(w64, "float64")
    y = fastconv.conv(x, w, **kw)
    assert y.t.is_contiguous() and rec.flags[-1] == (False, False) and not rec.out_flags[-1]
    assert_gpu_close(y, fastconv.conv(x64, w64, **ref), "float64", 9)
    gy64 = rng.uniform(-1, 1, y.t.shape)
    got = fastconv.conv_backward_weight(x, _cl(gy64, "float64"), w64.shape, **kw)
    assert rec.flags[-1] == (True, True) and got.t.is_contiguous()
    want = fastconv.conv_backward_weight(x64, gy64, w64.shape, **ref)
    assert_gpu_close(got, want, "float64", gy64.size // 16)
    fwd = conv_problem("conv", "forward", x64.shape, w64.shape, "float64", **ref)
    assert "contiguous channel-first" in backend.result_note(fwd, "depthwise", "forward", (1, 0))


@requires_emulation
def test_emulated_split_backward_weight_takes_any_workspace(rng):
    """Fewer slices when the workspace is short, none without one: same result to the bit
    for a given split, and every split matches the reference."""
    x_shape, w_shape = (3, 8, 15, 15), (6, 8, 3, 3)
    kw = dict(padding=1)
    x, w = rng.uniform(-1, 1, x_shape), rng.uniform(-1, 1, w_shape)
    gy = rng.uniform(-1, 1, fastconv.conv(x, w, **kw).shape)
    want = fastconv.conv_backward_weight(x, gy, w_shape, algo="reference", **kw)
    full = EMU.conv_workspace(
        "backward_weight", "float64", x_shape, w_shape, [1, 1], [1, 1], [1, 1], [1, 1], 1
    )
    per_split = 6 * 8 * 9 * 8
    assert full >= 2 * per_split and full % per_split == 0
    for nbytes in (-1, 0, 1, per_split, 2 * per_split + 7, full):
        got = _emu_conv(
            "backward_weight",
            "implicit_gemm",
            "simt",
            "float64",
            x_shape,
            w_shape,
            kw,
            x,
            gy,
            workspace_bytes=nbytes,
        )
        assert_gpu_close(got, want, "float64", 1, f"workspace {nbytes}")


@requires_emulation
@pytest.mark.parametrize("math_", ["simt", "tensor_core"])
def test_emulated_split_forward_adds_the_bias_once_after_the_sum(rng, math_):
    """Split-K forward (few output tiles, a long reduction: a late layer's 7x7 map): the
    slices' sums in a fixed order, then the bias; the asked-for, a smaller and no workspace all
    match the reference, with and without groups."""
    dtype = "float64" if math_ == "simt" else "bfloat16"
    for x_shape, w_shape, kw in [
        ((2, 96, 7, 7), (24, 96, 3, 3), dict(padding=1)),
        ((1, 64, 5, 6), (16, 32, 3, 3), dict(padding=1, groups=2)),
    ]:
        x = round_to(rng.uniform(-1, 1, x_shape), dtype)
        w = round_to(rng.uniform(-1, 1, w_shape), dtype)
        bias = round_to(rng.uniform(-1, 1, w_shape[0]), dtype)
        want = fastconv.conv(x, w, bias, algo="reference", **kw)
        geometry = conv_problem("conv", "forward", x_shape, w_shape, dtype, **kw).conv_geometry
        _, _, stride, lo, hi, dilation, groups, _ = geometry
        full = EMU.conv_workspace(
            "forward", dtype, list(x_shape), list(w_shape), stride, lo, hi, dilation, groups
        )
        per_split = want.size * (8 if dtype == "float64" else 4)
        assert full >= 2 * per_split and full % per_split == 0, (full, per_split)
        args = ("forward", "implicit_gemm", math_, dtype, x_shape, w_shape, kw, x, w, bias)
        reduction = w_shape[1] * 9
        for nbytes in (-1, 2 * per_split + 3, 0):
            got = _emu_conv(*args, workspace_bytes=nbytes)
            assert_gpu_close(got, want, dtype, reduction, f"forward, workspace {nbytes}")


def test_emulated_pending_cuda_errors_are_not_blamed_on_this_call(emulated_gpu, rng):
    """An error left pending by earlier work: a recoverable one is cleared before the call
    launches (its own launch checks then see only its own errors); a sticky one fails the call
    before any launch, saying it came from earlier asynchronous work."""
    x64 = round_to(rng.uniform(-1, 1, (1, 2, 5, 5)), "float32")
    w64 = round_to(rng.uniform(-1, 1, (3, 2, 3, 3)), "float32")
    x, w = _t(x64, "float32"), _t(w64, "float32")
    emulated_gpu._set_pending_error(False)
    assert_gpu_close(fastconv.conv(x, w), fastconv.conv(x64, w64), "float32", 18)
    assert_gpu_close(fastconv.conv(x, w), fastconv.conv(x64, w64), "float32", 18)
    emulated_gpu._set_pending_error(True)
    with pytest.raises(RuntimeError, match="before conv launched anything.*earlier asynchronous"):
        fastconv.conv(x, w)
    with pytest.raises(RuntimeError, match="before pool launched anything"):
        fastconv.max_pool(x, 2)


def test_emulated_tf32_follows_torch_cudnn_flag(emulated_gpu, rng):
    """float32 torch tensors take TF32 tensor cores when torch.backends.cudnn.allow_tf32 says
    so (as PyTorch's own convolutions do), exact FP32 otherwise; set_allow_tf32 overrides."""
    x64 = round_to(rng.uniform(-1, 1, (2, 32, 8, 8)), "float32")
    w64 = round_to(rng.uniform(-1, 1, (16, 32, 3, 3)), "float32")
    x, w = _t(x64, "float32"), _t(w64, "float32")
    want = fastconv.conv(x64, w64, padding=1)
    exact = fastconv.conv(x, w, padding=1)
    assert_gpu_close(exact, want, "float32", 288)
    torch.backends.cudnn.allow_tf32 = True
    tf32 = fastconv.conv(x, w, padding=1)
    assert_gpu_close(tf32, want, "tf32", 288)
    assert not torch.equal(tf32.t, exact.t)  # really rounded: TF32 keeps 10 mantissa bits
    assert torch.equal(fastconv.conv(x, w, padding=1, algo="implicit_gemm_simt").t, exact.t)
    try:
        fastconv.set_allow_tf32(False)
        assert torch.equal(fastconv.conv(x, w, padding=1).t, exact.t)
    finally:
        fastconv.set_allow_tf32(None)
    torch.backends.cudnn.allow_tf32 = False
    old_matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True  # the matmul flag is not the one followed
    try:
        assert torch.equal(fastconv.conv(x, w, padding=1).t, exact.t)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_matmul


def test_emulated_explain_names_the_channels_last_copy(emulated_gpu, rng):
    """Kernels take channel-first contiguous buffers: a channels_last tensor is copied on every
    call (on either device), and explain() says so and what it costs."""
    x = torch.from_numpy(rng.uniform(-1, 1, (2, 8, 6, 6))).float()
    xc = x.to(memory_format=torch.channels_last)
    e = fastconv.explain(xc, (4, 8, 3, 3))
    assert e.copies and "x is channels_last" in e.copies[0] and "2304 bytes" in e.copies[0]
    assert "channels_last" in str(e)
    assert not fastconv.explain(x, (4, 8, 3, 3)).copies
    assert (
        "w is strided" in fastconv.explain(x, torch.ones(3, 3, 8, 4).permute(3, 2, 0, 1)).copies[0]
    )
    assert "the result is contiguous channel-first" in e.copies[-1]  # the CPU's
    y = fastconv.conv(EmulatedDeviceTensor(xc), _t(np.ones((4, 8, 3, 3)), "float32"))
    # on the GPU, as PyTorch: a channels_last result (off the tensor-op path: copied into it)
    assert y.t.is_contiguous(memory_format=torch.channels_last)
    assert xc.is_contiguous(memory_format=torch.channels_last)  # the input is left as it was
    # explain()'s note on the result, from the GPU's backend (float32: off the path)
    backend = backends.backend_for_device("cuda")
    fwd = conv_problem("conv", "forward", x.shape, (4, 8, 3, 3), "float32")
    note = backend.result_note(fwd, "implicit_gemm_simt", "forward", (True, False))
    assert "channels_last" in note and "copied into it (512 bytes" in note, note
    assert "channel-first" in backend.result_note(fwd, "implicit_gemm", "backward_weight", (1, 0))
    half = conv_problem("conv", "forward", (2, 16, 6, 6), (8, 16, 3, 3), "float16")
    note = backend.result_note(half, "implicit_gemm", "forward", (False, True))
    assert "written so by the GPU's tensor-op path" in note, note


@requires_emulation
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_emulated_random_geometries(seed):
    """Random rank, groups, stride, padding (low != high), dilation, mode and kernel sizes:
    every pass of implicit_gemm (and depthwise where it applies) against the CPU reference."""
    rng = np.random.default_rng(seed)
    for _ in range(30):
        rank = int(rng.integers(1, 4))
        groups, cg, kg = (
            int(rng.choice([1, 2, 3])),
            int(rng.integers(1, 5)),
            int(rng.integers(1, 5)),
        )
        if rng.random() < 0.25:
            cg = 1
        k = [int(rng.integers(1, 4)) for _ in range(rank)]
        s = [int(rng.integers(1, 4)) for _ in range(rank)]
        d = [int(rng.integers(1, 3)) for _ in range(rank)]
        pads = [(int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(rank)]
        ins = [
            int(rng.integers(max(1, (kk - 1) * dd + 1 - lo - hi), 9))
            for kk, dd, (lo, hi) in zip(k, d, pads)
        ]
        x_shape = (int(rng.integers(1, 3)), cg * groups, *ins)
        w_shape = (kg * groups, cg, *k)
        mode = str(rng.choice(["cross", "conv"]))
        kw = dict(stride=s, padding=pads, dilation=d, groups=groups, mode=mode)
        x, w = rng.uniform(-1, 1, x_shape), rng.uniform(-1, 1, w_shape)
        y = fastconv.conv(x, w, algo="reference", **kw)
        gy = rng.uniform(-1, 1, y.shape)
        want = {
            "forward": y,
            "backward_data": fastconv.conv_backward_data(gy, w, x_shape, algo="reference", **kw),
            "backward_weight": fastconv.conv_backward_weight(
                x, gy, w_shape, algo="reference", **kw
            ),
        }
        problem = conv_problem("conv", "forward", x_shape, w_shape, "float64", **kw)
        geo = [list(v) for v in problem.conv_geometry[:6]]
        operands = {"forward": (x, w), "backward_data": (gy, w), "backward_weight": (x, gy)}
        for algo in ["implicit_gemm"] + (["depthwise"] if cg == 1 else []):
            for pass_, (a, b) in operands.items():
                got = EMU.conv(pass_, algo, "simt", "float64", *geo, groups, mode, a, b, None)
                assert_gpu_close(got, want[pass_], "float64", 1, f"{algo} {pass_} {x_shape} {kw}")
