"""GPU kernels (fastconv._cuda) against the CPU reference and torch.nn.functional on CUDA, and
the host side of GPU routing (device checks, availability, selection, TF32), which runs
without a GPU. The same kernels on the CPU, through the host emulation, are in
test_cuda_emulation.py; the tolerances and cases both use are in cuda_helpers.py.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import fastconv
import numpy as np
import pytest
from conftest import run_python, torch
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
from fastconv import _arrays, backends, selection
from fastconv._problem import conv_problem
from fastconv.backends.cuda import CudaBackend, cuda_module
from fastconv.backends.cuda_plan import get_allow_tf32, kernel_math

# ---- availability


def _gpu_reason() -> str:
    if torch is None:
        return "torch is not installed (the GPU tests use torch CUDA tensors)"
    reason = backends.backend_for_device("cuda").unavailable_reason()
    if reason:
        return reason
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return ""


GPU_REASON = _gpu_reason()
requires_gpu = pytest.mark.skipif(bool(GPU_REASON), reason=f"no usable GPU: {GPU_REASON}")
no_gpu_only = pytest.mark.skipif(not GPU_REASON, reason="a GPU is usable here")
# The CUTLASS tensor-op path is in the module only when its headers were found at build time
# (FASTCONV_CUTLASS=AUTO builds without it and says so; cuda/device_check.sh falls back to that
# on a device without them): the tests of its routing and of its in-place channels_last operands
# then skip, and the float16 / bfloat16 layers it would take run (and are checked) on WMMA.
TENSOR_OP = not GPU_REASON and bool(getattr(cuda_module(), "tensor_op_core", ""))
requires_tensor_op = pytest.mark.skipif(
    not TENSOR_OP, reason="this build has no tensor-op path (CUTLASS's headers were not found)"
)

GPU_DTYPES = ("float32", "float64", "float16", "bfloat16")


# ---- GPU data helpers


def _torch_dtype(name: str):
    return getattr(torch, name)


def gpu_rand(rng, shape, dtype: str):
    """(cuda tensor in dtype, float64 numpy copy of exactly those values)."""
    a = torch.from_numpy(rng.uniform(-1.0, 1.0, size=shape)).to(_torch_dtype(dtype))
    return a.cuda(), a.double().numpy()


def _conv_case(rng, x_shape, w_shape, kw, dtype):
    """GPU operands of a conv case with their float64 copies, the reference forward (with
    bias) and a grad_y: x, x64, w, w64, b, b64, y64, gy, gy64."""
    x, x64 = gpu_rand(rng, x_shape, dtype)
    w, w64 = gpu_rand(rng, w_shape, dtype)
    b, b64 = gpu_rand(rng, (w_shape[0],), dtype)
    y64 = fastconv.conv(x64, w64, b64, algo="reference", **kw)
    gy, gy64 = gpu_rand(rng, y64.shape, dtype)
    return x, x64, w, w64, b, b64, y64, gy, gy64


def _algos(w_shape):
    return ["implicit_gemm", "implicit_gemm_simt"] + (["depthwise"] if w_shape[1] == 1 else [])


def _tol_name(dtype, algo):
    tf32 = dtype == "float32" and algo == "implicit_gemm" and get_allow_tf32("torch")
    return "tf32" if tf32 else dtype


@requires_gpu
@pytest.mark.parametrize("dtype", GPU_DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_passes_match_cpu_reference(rng, case, dtype):
    x_shape, w_shape, kw = case
    x, x64, w, w64, b, b64, y64, gy, gy64 = _conv_case(rng, x_shape, w_shape, kw, dtype)
    taps = math.prod(w_shape[2:])
    for algo in _algos(w_shape):
        tol = _tol_name(dtype, algo)
        y = fastconv.conv(x, w, b, algo=algo, **kw)
        assert isinstance(y, torch.Tensor) and y.device == x.device and y.dtype == x.dtype
        assert_gpu_close(y, y64, tol, w_shape[1] * taps, f"forward {algo}")
        dx = fastconv.conv_backward_data(gy, w, x_shape, algo=algo, **kw)
        dx64 = fastconv.conv_backward_data(gy64, w64, x_shape, algo="reference", **kw)
        kg = w_shape[0] // kw.get("groups", 1)
        assert_gpu_close(dx, dx64, tol, kg * taps, f"backward_data {algo}")
        dw = fastconv.conv_backward_weight(x, gy, w_shape, algo=algo, **kw)
        dw64 = fastconv.conv_backward_weight(x64, gy64, w_shape, algo="reference", **kw)
        assert_gpu_close(dw, dw64, tol, max(y64.size // max(w_shape[0], 1), 1), f"bw {algo}")
    db = fastconv.conv_backward_bias(gy)
    assert_gpu_close(db, fastconv.conv_backward_bias(gy64), dtype, gy64.size // w_shape[0])


@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("case", DEPTHWISE_TILE_CASES, ids=lambda c: "x".join(map(str, c[0])))
def test_depthwise_tiled_and_per_element_kernels(rng, case, dtype):
    """The shared-memory tiles (1-D / 2-D maps that fill them) and the per-element kernels
    (3-D, tiny maps), all passes, against the float64 reference."""
    x_shape, w_shape, kw, _ = case
    x, x64 = gpu_rand(rng, x_shape, dtype)
    w, w64 = gpu_rand(rng, w_shape, dtype)
    y64 = fastconv.conv(x64, w64, algo="reference", **kw)
    gy, gy64 = gpu_rand(rng, y64.shape, dtype)
    taps = math.prod(w_shape[2:])
    mult = w_shape[0] // kw["groups"]
    assert_gpu_close(fastconv.conv(x, w, algo="depthwise", **kw), y64, dtype, taps)
    assert_gpu_close(
        fastconv.conv_backward_data(gy, w, x_shape, algo="depthwise", **kw),
        fastconv.conv_backward_data(gy64, w64, x_shape, algo="reference", **kw),
        dtype,
        mult * taps,
    )
    assert_gpu_close(
        fastconv.conv_backward_weight(x, gy, w_shape, algo="depthwise", **kw),
        fastconv.conv_backward_weight(x64, gy64, w_shape, algo="reference", **kw),
        dtype,
        max(y64.size // w_shape[0], 1),
    )


@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_depthwise_31x31_dilated(rng, dtype):
    kw = dict(stride=2, padding=15, dilation=(1, 2), groups=8)
    x, x64 = gpu_rand(rng, (2, 8, 40, 70), dtype)
    w, w64 = gpu_rand(rng, (8, 1, 31, 31), dtype)
    y64 = fastconv.conv(x64, w64, **kw)
    gy, gy64 = gpu_rand(rng, y64.shape, dtype)
    assert_gpu_close(fastconv.conv(x, w, algo="depthwise", **kw), y64, dtype, 961)
    assert_gpu_close(
        fastconv.conv_backward_data(gy, w, x.shape, algo="depthwise", **kw),
        fastconv.conv_backward_data(gy64, w64, x64.shape, **kw),
        dtype,
        961,
    )
    assert_gpu_close(
        fastconv.conv_backward_weight(x, gy, w.shape, algo="depthwise", **kw),
        fastconv.conv_backward_weight(x64, gy64, w64.shape, **kw),
        dtype,
        gy64.size // 8,
    )


@requires_gpu
@pytest.mark.parametrize("dtype", GPU_DTYPES)
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: f"{len(c[0]) - 2}d")
def test_conv_transpose_passes_match_cpu_reference(rng, case, dtype):
    x_shape, w_shape, kw = case
    x, x64 = gpu_rand(rng, x_shape, dtype)
    w, w64 = gpu_rand(rng, w_shape, dtype)
    groups = kw.get("groups", 1)
    b, b64 = gpu_rand(rng, (w_shape[1] * groups,), dtype)
    y64 = fastconv.conv_transpose(x64, w64, b64, algo="reference", **kw)
    gy, gy64 = gpu_rand(rng, y64.shape, dtype)
    taps = math.prod(w_shape[2:])
    for algo in _algos(w_shape):
        tol = _tol_name(dtype, algo)
        y = fastconv.conv_transpose(x, w, b, algo=algo, **kw)
        assert_gpu_close(y, y64, tol, w_shape[0] // groups * taps, f"forward {algo}")
        dx = fastconv.conv_transpose_backward_data(gy, w, algo=algo, **kw)
        dx64 = fastconv.conv_transpose_backward_data(gy64, w64, algo="reference", **kw)
        assert_gpu_close(dx, dx64, tol, w_shape[1] * taps, f"backward_data {algo}")
        dw = fastconv.conv_transpose_backward_weight(x, gy, w_shape, algo=algo, **kw)
        dw64 = fastconv.conv_transpose_backward_weight(x64, gy64, w_shape, algo="reference", **kw)
        assert_gpu_close(dw, dw64, tol, x64.size // x_shape[1], f"backward_weight {algo}")


@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_conv_matches_torch_on_cuda(rng, dtype):
    F = torch.nn.functional
    x, _ = gpu_rand(rng, (4, 16, 20, 18), dtype)
    w, _ = gpu_rand(rng, (32, 8, 3, 3), dtype)
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        want = F.conv2d(x.double(), w.double(), None, **kw)
        xr = x.double().requires_grad_(True)
        wr = w.double().requires_grad_(True)
        yr = F.conv2d(xr, wr, None, **kw)
        g = torch.randn_like(yr).to(x.dtype)  # the reference sees exactly the rounded values
        gx_want, gw_want = torch.autograd.grad(yr, (xr, wr), g.double())
    finally:
        torch.backends.cudnn.allow_tf32 = old
    L = 8 * 9
    tol = _tol_name(dtype, "implicit_gemm")
    assert_gpu_close(fastconv.conv2d(x, w, **kw), want, tol, L)
    assert_gpu_close(fastconv.conv_backward_data(g, w, x.shape, **kw), gx_want, tol, 16 * 9 + 64)
    assert_gpu_close(
        fastconv.conv_backward_weight(x, g, w.shape, **kw), gw_want, tol, 4 * 10 * 9 + 64
    )


@requires_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("case", TENSOR_OP_CASES, ids=TENSOR_OP_IDS)
def test_tensor_op_path_matches_cpu_reference_and_torch(rng, case, dtype):
    """CUTLASS's tensor-op kernels (cuda/tensor_op_cutlass.cu) for the layers that take them
    (explain says so), every pass against the float64 reference and torch's own conv; the
    weight gradient bitwise the same run to run (serial split-K)."""
    x_shape, w_shape, kw, eligible = case
    tol = "tf32" if dtype == "float32" else dtype  # float32 follows torch's cudnn TF32 flag
    x, x64, w, w64, b, b64, y64, gy, gy64 = _conv_case(rng, x_shape, w_shape, kw, dtype)
    taps = math.prod(w_shape[2:])
    for pass_, runs in zip(("forward", "backward_data", "backward_weight"), eligible):
        note = fastconv.explain(x, w.shape, pass_=pass_, **kw).reason
        assert ("tensor-op path" in note) == (runs and TENSOR_OP), (pass_, note)
    y = fastconv.conv(x, w, b, **kw)
    assert_gpu_close(y, y64, tol, w_shape[1] * taps, "forward")
    dx = fastconv.conv_backward_data(gy, w, x_shape, **kw)
    dx64 = fastconv.conv_backward_data(gy64, w64, x_shape, algo="reference", **kw)
    assert_gpu_close(dx, dx64, tol, w_shape[0] * taps, "backward_data")
    dw = fastconv.conv_backward_weight(x, gy, w_shape, **kw)
    dw64 = fastconv.conv_backward_weight(x64, gy64, w_shape, algo="reference", **kw)
    assert_gpu_close(dw, dw64, tol, y64.size // w_shape[0], "backward_weight")
    assert torch.equal(dw, fastconv.conv_backward_weight(x, gy, w_shape, **kw))
    if kw.get("mode") is None and len(x_shape) == 4:  # torch's conv2d has no padding pairs
        pad = kw.get("padding", 0)
        if isinstance(pad, int):
            F = torch.nn.functional
            torch_kw = {k: v for k, v in kw.items() if k in ("stride", "padding", "dilation")}
            groups = kw.get("groups", 1)
            want = F.conv2d(x.double(), w.double(), b.double(), groups=groups, **torch_kw)
            assert_gpu_close(y, want, tol, w_shape[1] * taps, "forward vs torch")


@requires_gpu
def test_tensor_op_path_on_resnet_shapes_and_a_large_batch(rng):
    """Layers big enough for many 128x128 tiles, a weight gradient that splits its reduction
    over many slices (64 x 576 outputs over 32 x 56 x 56 positions), and a strided 1x1
    backward_data (stride phases no tap reaches)."""
    for x_shape, w_shape, kw in [
        ((32, 64, 56, 56), (64, 64, 3, 3), dict(padding=1)),
        ((8, 256, 28, 28), (512, 256, 1, 1), dict(stride=2)),
        ((8, 128, 28, 28), (128, 128, 3, 3), dict(stride=2, padding=1)),
    ]:
        x, x64 = gpu_rand(rng, x_shape, "float16")
        w, w64 = gpu_rand(rng, w_shape, "float16")
        y = fastconv.conv(x, w, **kw)
        taps = math.prod(w_shape[2:])
        want = torch.nn.functional.conv2d(x.float(), w.float(), **kw)
        assert_gpu_close(y, want, "float16", w_shape[1] * taps, f"forward {x_shape}")
        gy = torch.randn_like(y)
        xr = x.float().requires_grad_(True)
        wr = w.float().requires_grad_(True)
        gx_want, gw_want = torch.autograd.grad(
            torch.nn.functional.conv2d(xr, wr, **kw), (xr, wr), gy.float()
        )
        dx = fastconv.conv_backward_data(gy, w, x_shape, **kw)
        assert_gpu_close(dx, gx_want, "float16", w_shape[0] * taps, f"backward_data {x_shape}")
        dw = fastconv.conv_backward_weight(x, gy, w_shape, **kw)
        assert_gpu_close(dw, gw_want, "float16", y.numel() // w_shape[0], f"bw {x_shape}")
        assert torch.equal(dw, fastconv.conv_backward_weight(x, gy, w_shape, **kw))  # split-K
        for pass_ in ("forward", "backward_data", "backward_weight"):
            reason = fastconv.explain(x, w, pass_=pass_, **kw).reason
            assert ("tensor-op path" in reason) == TENSOR_OP, reason


def _hopper_reason() -> str:
    if not TENSOR_OP:
        return "no tensor-op path on a usable GPU"
    if "sm_90a" not in cuda_module().tensor_op_core:
        return "this build has no Hopper core (its CUDA architectures lack sm_90)"
    if torch.cuda.get_device_capability() != (9, 0):
        return f"the GPU is compute capability {torch.cuda.get_device_capability()}, not 9.0"
    return ""


HOPPER_REASON = "" if GPU_REASON else _hopper_reason()


def _torch_conv_passes(x, w, b, gy, stride, pads, dilation):
    """float64 forward (with bias), input and weight gradients by torch on the GPU; pads: one
    (low, high) pair per spatial dimension, applied with F.pad so they may differ."""
    F = torch.nn.functional
    xr = x.double().requires_grad_(True)
    wr = w.double().requires_grad_(True)
    flat = [p for lo_hi in reversed(pads) for p in lo_hi]  # F.pad: last dimension first
    conv = F.conv1d if x.dim() == 3 else F.conv2d
    y = conv(F.pad(xr, flat), wr, b.double(), stride=stride, dilation=dilation)
    dx, dw = torch.autograd.grad(y, (xr, wr), gy.double())
    return y.detach(), dx, dw


@requires_gpu
@pytest.mark.skipif(bool(HOPPER_REASON), reason=f"needs the Hopper core: {HOPPER_REASON}")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_hopper_core_matches_the_sm80_kernels_and_torch(rng, dtype, monkeypatch):
    """On an H100 / H200 the tensor-op problems CUTLASS's sm_90a kernels cover run them, and
    explain names them: unsplit forward with and without a bias (float32 and dtype results),
    unit-stride backward data, an unsplit weight gradient; strided, asymmetrically padded,
    dilated, 1-D and 64-channel (128x64 tiles) layers. Every pass agrees with torch in
    float64 and with the sm_80 kernels (FASTCONV_CUDA_SM90=0); a strided backward data and a
    split stay on the sm_80 kernels."""
    # (x_shape, w_shape, stride, (lo, hi) pads, dilation, whether forward / backward data /
    # weight gradient run unsplit, so on the Hopper core): on 114-132 multiprocessors (H100
    # PCIe to H200) a pass splits under 228-264 output tiles of 128 x 128 (128 x 64 at 64
    # channels), so these are well clear of that edge either way.
    cases = [
        ((32, 128, 56, 56), (128, 128, 3, 3), 1, ((1, 1), (1, 1)), 1, (1, 1, 0)),  # 784 / 9
        ((64, 256, 28, 28), (128, 256, 1, 1), 1, ((0, 0), (0, 0)), 1, (1, 1, 0)),
        ((32, 128, 60, 58), (256, 128, 3, 3), 2, ((1, 2), (0, 1)), 1, (1, 0, 0)),  # strided
        ((32, 128, 48, 48), (128, 128, 3, 3), 1, ((2, 2), (2, 2)), 2, (1, 1, 0)),
        ((128, 128, 400), (128, 128, 5), 1, ((2, 2),), 1, (1, 1, 0)),  # 1-D
        ((8, 512, 14, 14), (1024, 512, 3, 3), 1, ((1, 1), (1, 1)), 1, (0, 0, 1)),  # dw: 288
        ((32, 64, 56, 56), (64, 64, 3, 3), 1, ((1, 1), (1, 1)), 1, (1, 1, 0)),  # 128x64 tiles
    ]
    routed = set()
    for x_shape, w_shape, stride, pads, dil, hopper in cases:
        kw = dict(stride=stride, padding=pads, dilation=dil)
        x, _ = gpu_rand(rng, x_shape, dtype)
        w, _ = gpu_rand(rng, w_shape, dtype)
        b, _ = gpu_rand(rng, (w_shape[0],), dtype)
        gy, _ = gpu_rand(rng, tuple(fastconv.conv(x, w, **kw).shape), dtype)

        def run():
            return {
                "forward": fastconv.conv(x, w, b, **kw),
                "forward_nobias": fastconv.conv(x, w, **kw),
                "backward_data": fastconv.conv_backward_data(gy, w, x_shape, **kw),
                "backward_weight": fastconv.conv_backward_weight(x, gy, w_shape, **kw),
            }

        for pass_, want in zip(("forward", "backward_data", "backward_weight"), hopper):
            note = fastconv.explain(x, w.shape, pass_=pass_, **kw).reason
            assert "tensor-op path" in note, (pass_, note)
            assert ("sm_90a" in note) == bool(want), (x_shape, pass_, note)
            if want:
                routed.add(pass_)
        got = run()
        monkeypatch.setenv("FASTCONV_CUDA_SM90", "0")
        for pass_ in ("forward", "backward_data", "backward_weight"):
            assert "sm_90a" not in fastconv.explain(x, w.shape, pass_=pass_, **kw).reason
        sm80 = run()
        monkeypatch.delenv("FASTCONV_CUDA_SM90")
        y, dx, dw = _torch_conv_passes(x, w, b, gy, stride, pads, dil)
        taps = math.prod(w_shape[2:])
        want = {
            "forward": (y, w_shape[1] * taps),
            "forward_nobias": (y - b.double().reshape(-1, *[1] * (x.dim() - 2)), w_shape[1] * taps),
            "backward_data": (dx, w_shape[0] * taps),
            "backward_weight": (dw, y.numel() // w_shape[0]),
        }
        for name, (ref, n) in want.items():
            what = f"{name} {x_shape} {kw}"
            assert_gpu_close(got[name], ref, dtype, n, what)
            assert_gpu_close(got[name], sm80[name], dtype, n, what + " vs sm_80")
    assert routed == {"forward", "backward_data", "backward_weight"}, routed
    # a transposed conv's forward with a bias: backward data with a float32 result
    xt, _ = gpu_rand(rng, (32, 128, 56, 56), dtype)
    wt, _ = gpu_rand(rng, (128, 128, 3, 3), dtype)
    bt, _ = gpu_rand(rng, (128,), dtype)
    got = fastconv.conv_transpose(xt, wt, bt, padding=1)
    want = torch.nn.functional.conv_transpose2d(xt.double(), wt.double(), bt.double(), padding=1)
    assert_gpu_close(got, want, dtype, 128 * 9, "transposed forward")
    # a late layer with few tiles splits its reduction: the sm_80 kernels' serial split-K. A
    # stride past the copy engine's im2col limit of 8 (9x9 / 9 patches, 312 unsplit tiles) runs
    # the sm_80 kernels too; 8x8 / 8 (392 tiles) the Hopper core.
    x, _ = gpu_rand(rng, (2, 512, 7, 7), dtype)
    note = fastconv.explain(x, (512, 512, 3, 3), padding=1).reason
    assert "tensor-op path" in note and "sm_90a" not in note, note
    for size, patch in ((225, 9), (224, 8)):
        x, _ = gpu_rand(rng, (64, 64, size, size), dtype)
        w, _ = gpu_rand(rng, (128, 64, patch, patch), dtype)
        note = fastconv.explain(x, w.shape, stride=patch).reason
        assert "tensor-op path" in note and ("sm_90a" in note) == (patch <= 8), note
        want = torch.nn.functional.conv2d(x.float(), w.float(), stride=patch)
        got = fastconv.conv(x, w, stride=patch)
        assert_gpu_close(got, want, dtype, 64 * patch * patch, f"{patch}x{patch} / {patch}")


@requires_gpu
@requires_tensor_op
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_channels_last_operands_are_read_in_place(rng, dtype, monkeypatch):
    """A channels_last model's tensors reach CUTLASS's kernels without copies in every pass
    (the module gets the channels-last flags; explain() says so); results match channel-first
    calls, the forward's and backward data's written channels_last by the kernels themselves
    (as PyTorch's), the weight gradient's channel-first."""
    backend = backends.backend_for_device("cuda")
    mod, flags = backend.module(), []

    class Recorder:
        def __getattr__(self, name):
            return getattr(mod, name)

        def conv(self, *args):
            flags.append(tuple(args[-3:]))  # a, b read and the result written channels-last
            return mod.conv(*args)

    monkeypatch.setattr(backend, "module", lambda: Recorder())
    x, _ = gpu_rand(rng, (8, 64, 28, 28), dtype)
    w, _ = gpu_rand(rng, (128, 64, 3, 3), dtype)
    gy, _ = gpu_rand(rng, (8, 128, 14, 14), dtype)
    kw = dict(stride=2, padding=1)
    cl = dict(memory_format=torch.channels_last)
    xc, wc, gyc = x.to(**cl), w.to(**cl), gy.to(**cl)
    copies = fastconv.explain(xc, wc, **kw).copies
    assert len(copies) == 3 and all("read in place" in c for c in copies[:2]), copies
    assert "written so by the GPU's tensor-op path" in copies[2], copies
    for got, want, layout in [
        (fastconv.conv(xc, wc, **kw), fastconv.conv(x, w, **kw), cl),
        (
            fastconv.conv_backward_data(gyc, wc, x.shape, **kw),
            fastconv.conv_backward_data(gy, w, x.shape, **kw),
            cl,
        ),
        (
            fastconv.conv_backward_weight(xc, gyc, w.shape, **kw),
            fastconv.conv_backward_weight(x, gy, w.shape, **kw),
            {},
        ),
    ]:
        assert got.is_contiguous(**layout) and want.is_contiguous()
        assert torch.equal(got, want)  # the same kernels on the same values
    # each pair: the channels_last call (both operands in place, the result written so but
    # for the weight gradient), then the channel-first one
    want = [(True, True, True), (False,) * 3] * 2 + [(True, True, False), (False,) * 3]
    assert flags == want, flags


@requires_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_channels_last_model_through_fastconv_torch(rng, dtype):
    """A channels_last float16 / bfloat16 model through fastconv.torch: every conv output and
    input gradient comes back channels_last as PyTorch's (layers that the tensor-op path
    writes - a plain one, one with a bias, a split small one -, depthwise layers, and a
    10-channel layer off the path whose result is copied), eager and under torch.compile, with
    outputs and gradients matching torch's own convolutions; opcheck's fake-tensor test
    compares the fake kernel's strides with the real result's on these CUDA tensors."""
    import fastconv.torch as fct

    tdt = getattr(torch, dtype)
    cl = torch.channels_last
    layers = [  # (C, K, kernel, stride, bias, input size, groups)
        (64, 64, 3, 1, False, 28, 1),
        (64, 128, 3, 2, True, 28, 1),
        (256, 256, 3, 1, True, 7, 1),  # few tiles: split-K, float32 out
        (10, 16, 3, 1, False, 12, 1),  # 10 channels: off the tensor-op path
        (96, 96, 3, 2, True, 28, 96),  # depthwise, strided
        (48, 96, 5, 1, False, 14, 48),  # depthwise, multiplier 2
    ]
    for c, k, r, s, bias, size, groups in layers:
        kw = dict(padding=1, bias=bias, groups=groups)
        ref = torch.nn.Conv2d(c, k, r, s, **kw).cuda().to(tdt).to(memory_format=cl)
        mine = fct.Conv2d(c, k, r, s, **kw).cuda().to(tdt).to(memory_format=cl)
        mine.load_state_dict(ref.state_dict())
        x0 = torch.randn(4, c, size, size, device="cuda", dtype=tdt).to(memory_format=cl)
        compiled = torch.compile(mine, backend="aot_eager", fullgraph=True)
        for name, run in (("eager", mine), ("compiled", compiled)):
            x = x0.clone().requires_grad_(True)
            xr = x0.clone().requires_grad_(True)
            y, yr = run(x), ref(xr)
            what = f"{name} {c}->{k} {r}x{r}/{s}"
            assert y.is_contiguous(memory_format=cl) and yr.is_contiguous(memory_format=cl), what
            gy = torch.randn_like(yr)
            y.backward(gy)
            yr.backward(gy)
            assert x.grad.is_contiguous(memory_format=cl), what
            n = c // groups * r * r
            assert_gpu_close(y, yr.double(), dtype, n, what)
            assert_gpu_close(x.grad, xr.grad.double(), dtype, k // groups * r * r, what)
            for p, pr in zip(mine.parameters(), ref.parameters()):
                assert p.grad.is_contiguous(memory_format=cl) or p.grad.dim() == 1, what
                assert_gpu_close(p.grad, pr.grad.double(), dtype, 4 * size * size, what)
                p.grad = pr.grad = None
        # the operator itself: fake and real results alike (shapes, strides), every pass
        from fastconv.torch import _ops

        w = mine.weight.detach()
        y = mine(x0).detach()
        pads = ([1, 1], [1, 1], [1, 1])
        for pass_, a, b, shape in (
            ("forward", x0, w, []),
            ("backward_data", torch.randn_like(y), w, list(x0.shape)),
            ("backward_weight", x0, torch.randn_like(y), list(w.shape)),
        ):
            packed = _ops.pack_conv(
                "conv", pass_, shape, [s, s], *pads[:2], pads[2], groups, "cross", [0, 0], "auto"
            )
            torch.library.opcheck(
                _ops.OPS.conv.default, (a, b, None, *packed), test_utils=("test_faketensor",)
            )


@requires_gpu
def test_graph_capture_of_the_tensor_op_path(rng):
    """float16 forward (with bias), backward data and weight gradient on the tensor-op path
    capture in a CUDA graph (workspaces from torch's allocator, CUTLASS's split-K semaphores
    reset by a memset on the stream) and replay to the eager results."""
    x, _ = gpu_rand(rng, (4, 32, 14, 14), "float16")
    w, _ = gpu_rand(rng, (64, 32, 3, 3), "float16")
    b, _ = gpu_rand(rng, (64,), "float16")
    gy, _ = gpu_rand(rng, (4, 64, 14, 14), "float16")

    def step():
        return (
            fastconv.conv(x, w, b, padding=1),
            fastconv.conv_backward_data(gy, w, x.shape, padding=1),
            fastconv.conv_backward_weight(x, gy, w.shape, padding=1),
        )

    eager = step()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step()
    for _ in range(2):
        graph.replay()
        torch.cuda.synchronize()
        for got, want in zip(captured, eager):
            assert torch.equal(got, want)


@requires_gpu
def test_backward_weight_is_deterministic(rng):
    x, _ = gpu_rand(rng, (16, 32, 28, 28), "float32")
    gy, _ = gpu_rand(rng, (16, 64, 28, 28), "float32")
    first = fastconv.conv_backward_weight(x, gy, (64, 32, 3, 3), padding=1)
    for _ in range(3):
        again = fastconv.conv_backward_weight(x, gy, (64, 32, 3, 3), padding=1)
        assert torch.equal(first, again)


@requires_gpu
def test_runs_on_the_current_stream_and_device_of_the_input(rng):
    x, x64 = gpu_rand(rng, (2, 3, 16, 16), "float32")
    w, w64 = gpu_rand(rng, (4, 3, 3, 3), "float32")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        y = fastconv.conv(x, w, padding=1)  # queued on `side`, ordered after the copies
        y2 = y * 2
    torch.cuda.current_stream().wait_stream(side)
    assert_gpu_close(y2, 2 * fastconv.conv(x64, w64, padding=1), "float32", 27)


@requires_gpu
def test_non_contiguous_inputs_and_tf32(rng):
    x, x64 = gpu_rand(rng, (2, 16, 12, 12), "float32")
    w, w64 = gpu_rand(rng, (8, 16, 3, 3), "float32")
    xt = x.transpose(2, 3)  # a strided view: copied once by torch
    want = fastconv.conv(np.ascontiguousarray(x64.transpose(0, 1, 3, 2)), w64)
    try:
        fastconv.set_allow_tf32(False)
        exact = fastconv.conv(xt, w)
        assert_gpu_close(exact, want, "float32", 16 * 9)
        fastconv.set_allow_tf32(True)
        tf32 = fastconv.conv(xt, w)
        assert_gpu_close(tf32, want, "tf32", 16 * 9)
        assert not torch.equal(tf32, exact)
    finally:
        fastconv.set_allow_tf32(None)
    old = torch.backends.cudnn.allow_tf32
    try:  # the default follows PyTorch's own convolutions' flag
        torch.backends.cudnn.allow_tf32 = False
        assert torch.equal(fastconv.conv(xt, w), exact)
        torch.backends.cudnn.allow_tf32 = True
        assert torch.equal(fastconv.conv(xt, w), tf32)
    finally:
        torch.backends.cudnn.allow_tf32 = old
    assert not xt.is_contiguous()  # inputs are never modified or replaced


@requires_gpu
def test_workspaces_come_from_torchs_caching_allocator(rng):
    """backward_weight's split reduction and max-pool backward's argmax scratch are allocated
    by PyTorch (visible in its statistics, released to its cache), never by cudaMallocAsync."""
    x, x64 = gpu_rand(rng, (2, 64, 28, 28), "float32")
    gy, gy64 = gpu_rand(rng, (2, 32, 28, 28), "float32")
    ws = fastconv.explain(x, (32, 64, 3, 3), padding=1, pass_="backward_weight").workspace_bytes
    assert ws > 0
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    dw = fastconv.conv_backward_weight(x, gy, (32, 64, 3, 3), padding=1, algo="implicit_gemm_simt")
    peak = torch.cuda.max_memory_allocated() - base
    assert peak >= ws + dw.numel() * 4
    assert torch.cuda.memory_allocated() - base == dw.numel() * 4  # the workspace went back
    want = fastconv.conv_backward_weight(x64, gy64, (32, 64, 3, 3), padding=1)
    assert_gpu_close(dw, want, "float32", 2 * 28 * 28)


@requires_gpu
def test_graph_capture_of_unpool_split_weight_gradient_and_pool_backward(rng):
    """The calls that used to allocate or synchronise inside (max_unpool's index check, the
    split reduction, pooling backward's scratch) capture in a CUDA graph and replay right; a
    bad index inside a replay is reported by check_gpu_errors()."""
    x, x64 = gpu_rand(rng, (2, 8, 16, 16), "float32")
    gy, gy64 = gpu_rand(rng, (2, 4, 16, 16), "float32")
    y, idx = fastconv.max_pool(x, 2, return_indices=True)
    fastconv.max_unpool(y, idx, 2)  # warm-up on the side stream, as torch.cuda.graph asks
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fastconv.max_unpool(y, idx, 2)
            fastconv.conv_backward_weight(x, gy, (4, 8, 3, 3), padding=1)
            fastconv.max_pool_backward(y, x, 2)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        unpooled = fastconv.max_unpool(y, idx, 2)
        dw = fastconv.conv_backward_weight(x, gy, (4, 8, 3, 3), padding=1)
        dx = fastconv.max_pool_backward(y, x, 2)
    graph.replay()
    torch.cuda.synchronize()
    y64, idx64 = fastconv.max_pool(x64, 2, return_indices=True)
    assert_gpu_close(unpooled, fastconv.max_unpool(y64, idx64, 2), "float32", 1)
    tol = _tol_name("float32", "implicit_gemm")
    want_dw = fastconv.conv_backward_weight(x64, gy64, (4, 8, 3, 3), padding=1)
    assert_gpu_close(dw, want_dw, tol, 2 * 256)
    assert_gpu_close(dx, fastconv.max_pool_backward(y64, x64, 2), "float32", 1)
    fastconv.check_gpu_errors()
    idx[0, 0, 0, 0] = 10**6  # the graph reads idx in place
    graph.replay()
    with pytest.raises(ValueError, match="got 1000000"):
        fastconv.check_gpu_errors()


@requires_gpu
@pytest.mark.parametrize("dtype", GPU_DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{len(c[0]) - 2}d")
def test_pools_match_cpu_reference(rng, case, dtype):
    shape, kw = case
    x, x64 = gpu_rand(rng, shape, dtype)
    y, idx = fastconv.max_pool(x, dilation=1, return_indices=True, **kw)
    y64, idx64 = fastconv.max_pool(x64, return_indices=True, **kw)
    assert_gpu_close(y, y64, dtype, 1)
    np.testing.assert_array_equal(idx.cpu().numpy(), idx64)
    gy, gy64 = gpu_rand(rng, y64.shape, dtype)
    assert_gpu_close(
        fastconv.max_pool_backward(gy, x, **kw),
        fastconv.max_pool_backward(gy64, x64, **kw),
        dtype,
        8,
    )
    for cip in (True, False):
        a = fastconv.avg_pool(x, count_include_pad=cip, **kw)
        assert_gpu_close(a, fastconv.avg_pool(x64, count_include_pad=cip, **kw), dtype, 8)
        assert_gpu_close(
            fastconv.avg_pool_backward(gy, x.shape, count_include_pad=cip, **kw),
            fastconv.avg_pool_backward(gy64, x64.shape, count_include_pad=cip, **kw),
            dtype,
            8,
        )
    lp_kw = {k: v for k, v in kw.items() if k in ("kernel_size", "stride", "ceil_mode")}
    xp = x.abs() + 0.1
    xp64 = xp.double().cpu().numpy()
    for p in (2.0, 3.0):
        assert_gpu_close(
            fastconv.lp_pool(xp, p, **lp_kw), fastconv.lp_pool(xp64, p, **lp_kw), dtype, 16
        )
        gyl, gyl64 = gpu_rand(rng, fastconv.lp_pool(xp64, p, **lp_kw).shape, dtype)
        assert_gpu_close(
            fastconv.lp_pool_backward(gyl, xp, p, **lp_kw),
            fastconv.lp_pool_backward(gyl64, xp64, p, **lp_kw),
            dtype,
            16,
        )
    unpooled = fastconv.max_unpool(
        y, idx, **{k: v for k, v in kw.items() if k != "ceil_mode"}, output_size=shape[2:]
    )
    want = fastconv.max_unpool(
        y.double().cpu().numpy(),
        idx64,
        **{k: v for k, v in kw.items() if k != "ceil_mode"},
        output_size=shape[2:],
    )
    assert_gpu_close(unpooled, want, dtype, 1)


@requires_gpu
def test_pools_match_torch_and_global_pools(rng):
    F = torch.nn.functional
    x, x64 = gpu_rand(rng, (4, 8, 15, 13), "float32")
    assert_gpu_close(
        fastconv.max_pool(x, 3, stride=2, padding=1, dilation=2),
        F.max_pool2d(x, 3, 2, 1, 2),
        "float32",
        1,
    )
    assert_gpu_close(
        fastconv.avg_pool(x, 3, stride=2, padding=1, ceil_mode=True),
        F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
        "float32",
        9,
    )
    assert_gpu_close(fastconv.global_avg_pool(x), x.mean(dim=(2, 3), keepdim=True), "float32", 195)
    assert_gpu_close(fastconv.global_max_pool(x), x.amax(dim=(2, 3), keepdim=True), "float32", 1)


@requires_gpu
def test_gpu_errors_are_exceptions_and_leave_no_sticky_error(rng):
    x, _ = gpu_rand(rng, (1, 1, 4, 4), "float32")
    y, idx = fastconv.max_pool(x, 2, return_indices=True)
    assert not fastconv.max_unpool(y, idx + 100, 2).any()  # skipped, reported without a sync
    with pytest.raises(ValueError, match="indices must lie in"):
        fastconv.check_gpu_errors()
    with pytest.raises(ValueError, match="x .*w|w .*x"):
        fastconv.conv(x, torch.ones(1, 1, 3, 3))  # CPU weight, GPU input
    with pytest.raises(TypeError, match="dtype"):
        fastconv.conv(x, torch.ones(1, 1, 3, 3, device="cuda", dtype=torch.float16))
    assert fastconv.conv(x, torch.ones(1, 1, 3, 3, device="cuda")).shape == (1, 1, 2, 2)
    torch.cuda.synchronize()


@requires_gpu
@pytest.mark.slow
def test_int64_indexing_beyond_2_31_elements():
    """A 1-D max pool over 2^31 + 256 float16 elements (4 GiB): offsets past 2^31 must work."""
    n = 2**31 + 256
    x = torch.zeros((1, 1, n), dtype=torch.float16, device="cuda")
    x[0, 0, -5] = 7.0
    y, idx = fastconv.max_pool(x, 64, return_indices=True)
    assert float(y[0, 0, -1]) == 7.0 and int(idx[0, 0, -1]) == n - 5
    del x, y, idx
    w = torch.ones((1, 1, 3), dtype=torch.float16, device="cuda")
    x = torch.zeros((1, 1, n), dtype=torch.float16, device="cuda")
    x[0, 0, -2] = 1.0
    y = fastconv.conv(x, w)
    assert [float(v) for v in y[0, 0, -3:]] == [0.0, 1.0, 1.0]  # y[j] = x[j] + x[j+1] + x[j+2]


# ---- host side: runs on every machine


class FakeDeviceArray:
    """Exposes only a DLPack device, as a foreign GPU array would."""

    def __init__(self, shape, kind=2, index=0):
        self.shape = shape
        self._device = (kind, index)

    def __dlpack_device__(self):
        return self._device

    def __dlpack__(self, stream=None):  # pragma: no cover - never reached: checks come first
        raise AssertionError("fastconv touched the data before checking devices")


def test_cpu_and_gpu_arrays_mixed_raise_valueerror_before_any_launch():
    x = np.ones((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"w is on cuda:0 but x is on the CPU"):
        fastconv.conv(x, FakeDeviceArray((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"bias is on the CPU|on the CPU"):
        fastconv.conv(
            FakeDeviceArray((1, 2, 5, 5)), FakeDeviceArray((3, 2, 3, 3)), np.ones(3, np.float32)
        )
    with pytest.raises(ValueError, match="same device"):
        fastconv.max_pool_backward(FakeDeviceArray((1, 1, 2, 2)), x, 2)


def test_arrays_on_two_gpus_raise_valueerror_naming_both():
    with pytest.raises(ValueError, match=r"x on cuda:0, w on cuda:1"):
        fastconv.conv(FakeDeviceArray((1, 2, 5, 5), index=0), FakeDeviceArray((3, 2, 3, 3), 2, 1))


def test_array_device_classification():
    assert _arrays.device_of(np.ones(3)) == ("cpu", 0)
    assert _arrays.device_of(None) is None
    assert _arrays.device_of((1, 2)) == ("cpu", 0)
    assert _arrays.device_of(FakeDeviceArray((1,), 2, 3)) == ("cuda", 3)
    assert _arrays.device_of(FakeDeviceArray((1,), 13, 1)) == ("cuda", 1)  # managed memory
    assert _arrays.device_of(FakeDeviceArray((1,), 1, 0)) == ("cpu", 0)

    class CAI:
        __cuda_array_interface__ = {
            "shape": (2,),
            "typestr": "<f4",
            "data": (0, False),
            "version": 3,
        }

    assert _arrays.device_of(CAI())[0] == "cuda"
    if torch is not None:
        assert _arrays.device_of(torch.ones(2)) == ("cpu", 0)


def test_cpu_calls_are_not_rerouted_and_keep_their_signatures():
    import inspect

    assert "algo" in inspect.signature(fastconv.conv).parameters
    assert "return_indices" in inspect.signature(fastconv.max_pool).parameters
    y = fastconv.conv(np.ones((1, 1, 5), np.float32), np.ones((1, 1, 3), np.float32))
    assert type(y) is np.ndarray and y.tolist() == [[[3.0, 3.0, 3.0]]]
    if torch is not None:
        yt = fastconv.conv(torch.ones(1, 1, 5), torch.ones(1, 1, 3))
        assert isinstance(yt, torch.Tensor) and yt.device.type == "cpu"


@no_gpu_only
def test_gpu_arrays_without_a_usable_gpu_raise_valueerror_with_the_reason():
    with pytest.raises(ValueError, match="CUDA device, but"):
        fastconv.conv(FakeDeviceArray((1, 2, 5, 5)), FakeDeviceArray((3, 2, 3, 3)))
    with pytest.raises(ValueError, match="not available"):
        fastconv.algorithms("conv", device="cuda")


def test_algorithms_device_argument():
    assert fastconv.algorithms("conv", device="cpu") == fastconv.algorithms("conv")
    with pytest.raises(ValueError, match="device"):
        fastconv.algorithms("conv", device="tpu")
    if not GPU_REASON:
        assert fastconv.algorithms("conv", device="cuda")[0] == "implicit_gemm"
        assert "depthwise" in fastconv.algorithms("conv_transpose", device="cuda")
        assert fastconv.algorithms("max_pool", device="cuda") == ["direct"]


def test_info_reports_the_gpu_state():
    state = fastconv.info()["cuda"]
    assert set(state) >= {"built", "devices", "status"}
    assert state["built"] == (cuda_module() is not None)
    if state["built"]:
        assert isinstance(state["runtime"], int)
        assert state["architectures"]
        assert ("GPU(s) visible" in state["status"]) == bool(state["devices"])
    else:
        assert "not built" in state["status"]


class AvailableCuda(CudaBackend):
    """The CUDA backend as if an sm_90 GPU were present (selection needs no kernels)."""

    def module(self):
        return object()

    def devices(self):
        h100 = {"index": 0, "name": "H100", "capability": (9, 0), "total_memory": 1 << 36}
        return [h100], ""


def test_gpu_algorithm_choice():
    backend = AvailableCuda()

    def choose(w_shape, algo, pass_="forward", groups=1):
        x_shape = (1, w_shape[1] * groups, 6, 6)
        problem = conv_problem("conv", pass_, x_shape, w_shape, "float32", groups=groups)
        return selection.select(problem, backend, algo).algo

    assert choose((8, 1, 3, 3), "auto", groups=8) == "depthwise"
    assert choose((8, 4, 3, 3), "auto") == "implicit_gemm"
    assert choose((8, 4, 3, 3), "implicit_gemm_simt") == "implicit_gemm_simt"
    with pytest.raises(NotImplementedError, match="depthwise"):
        choose((8, 4, 3, 3), "depthwise", "backward_data")
    with pytest.raises(NotImplementedError, match="winograd"):
        choose((8, 4, 3, 3), "winograd")
    with pytest.raises(ValueError, match="algo"):
        choose((8, 4, 3, 3), "fastest")
    with pytest.raises(TypeError, match="algo"):
        choose((8, 4, 3, 3), 3)
    # a transposed conv's depthwise test is on the conv it runs: w.shape[1] == 1 there too
    problem = conv_problem(
        "conv_transpose", "forward", (1, 8, 5, 5), (8, 1, 3, 3), "float16", groups=8
    )
    assert selection.select(problem, backend, "auto").algo == "depthwise"


def test_tf32_follows_torchs_cudnn_flag():
    """float32 uses TF32 tensor cores when allowed: set_allow_tf32 decides when set; by default
    torch tensors follow torch.backends.cudnn.allow_tf32 (as PyTorch's convolutions do) and
    other arrays stay exact."""
    assert kernel_math("implicit_gemm", "float32", "cupy") == ("implicit_gemm", "simt")
    try:
        fastconv.set_allow_tf32(True)
        assert kernel_math("implicit_gemm", "float32", "cupy") == ("implicit_gemm", "tensor_core")
        assert kernel_math("implicit_gemm_simt", "float32", "cupy") == ("implicit_gemm", "simt")
        fastconv.set_allow_tf32(False)
        assert kernel_math("implicit_gemm", "float32", "cupy") == ("implicit_gemm", "simt")
    finally:
        fastconv.set_allow_tf32(None)
    assert kernel_math("implicit_gemm", "float16", "cupy") == ("implicit_gemm", "tensor_core")
    assert kernel_math("implicit_gemm_simt", "float16", "cupy") == ("implicit_gemm", "simt")
    assert kernel_math("implicit_gemm", "float64", "cupy") == ("implicit_gemm", "simt")
    if torch is not None:
        old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        try:
            for cudnn_flag in (True, False):
                torch.backends.cudnn.allow_tf32 = cudnn_flag
                torch.backends.cuda.matmul.allow_tf32 = not cudnn_flag
                want = "tensor_core" if cudnn_flag else "simt"
                assert kernel_math("implicit_gemm", "float32", "torch")[1] == want
                fastconv.set_allow_tf32(not cudnn_flag)  # the override wins
                assert kernel_math("implicit_gemm", "float32", "torch")[1] != want
                fastconv.set_allow_tf32(None)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
            fastconv.set_allow_tf32(None)
    with pytest.raises(TypeError):
        fastconv.set_allow_tf32("yes")


def test_tf32_follows_torchs_new_precision_api():
    """PyTorch's per-operator API (torch.backends.cudnn.conv.fp32_precision) decides too, and
    once it is used the legacy flag raises on reading: fastconv reads the new one."""
    if torch is None or not hasattr(torch.backends.cudnn, "conv"):
        pytest.skip("needs a torch with torch.backends.cudnn.conv.fp32_precision")
    cudnn = torch.backends.cudnn
    saved = (torch.backends.fp32_precision, cudnn.fp32_precision, cudnn.conv.fp32_precision)
    try:
        cudnn.conv.fp32_precision = "ieee"
        assert kernel_math("implicit_gemm", "float32", "torch")[1] == "simt"
        cudnn.conv.fp32_precision = "tf32"
        assert kernel_math("implicit_gemm", "float32", "torch")[1] == "tensor_core"
        cudnn.conv.fp32_precision = "none"  # defers to cudnn's, then the global setting
        cudnn.fp32_precision = "ieee"
        assert kernel_math("implicit_gemm", "float32", "torch")[1] == "simt"
    finally:
        torch.backends.fp32_precision, cudnn.fp32_precision = saved[0], saved[1]
        cudnn.conv.fp32_precision = saved[2]


@no_gpu_only
def test_bench_device_cuda_fails_cleanly_without_a_gpu():
    proc = run_python(
        "import sys, fastconv.benchmark as b; sys.exit(b.main(['--device', 'cuda']))", timeout=120
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--device cuda" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(cuda_module() is None, reason="fastconv._cuda is not built")
def test_cuda_module_imports_and_queries_without_a_gpu():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from fastconv import _cuda; d, e = _cuda.devices(); "
            "print(len(d), _cuda.runtime_version())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


# ---- build switches (CMake configure only; the CPU module's sources are not compiled)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode,cudacxx,expect,ok",
    [
        ("OFF", None, "CUDA module disabled (FASTCONV_CUDA=OFF)", True),
        ("AUTO", "/nonexistent/nvcc", "no CUDA compiler found; building the CPU module only", True),
        ("ON", "/nonexistent/nvcc", "FASTCONV_CUDA=ON but no CUDA compiler", False),
        ("ON;75", None, "the GPU kernels need sm_80 or newer", False),
    ],
)
def test_cmake_cuda_switch(tmp_path, mode, cudacxx, expect, ok):
    mode, _, archs = mode.partition(";")
    proc = _configure(tmp_path, mode, archs, cudacxx)
    out = " ".join((proc.stdout + proc.stderr).split())  # CMake wraps long messages
    assert expect in out, out
    assert (proc.returncode == 0) == ok, out


def _configure(tmp_path, mode, archs="", cudacxx=None, defines=()):
    """Configure the project with cmake (no build) in tmp_path; the completed process."""
    import os
    import shutil

    cmake = shutil.which("cmake", path=str(Path(sys.executable).parent)) or shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    pybind11_dir = subprocess.run(
        [sys.executable, "-m", "pybind11", "--cmakedir"], capture_output=True, text=True
    ).stdout.strip()
    env = dict(os.environ)
    env.pop("CUDACXX", None)
    env.pop("FASTCONV_CUDA_ARCHITECTURES", None)
    if archs:
        env["FASTCONV_CUDA_ARCHITECTURES"] = archs
    if cudacxx:
        env["CUDACXX"] = cudacxx
    return subprocess.run(
        [
            cmake,
            "-S",
            str(ROOT),
            "-B",
            str(tmp_path),
            f"-DFASTCONV_CUDA={mode}",
            f"-Dpybind11_DIR={pybind11_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            *defines,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "archs,sm90,built",
    [
        ("80-real", "AUTO", False),
        ("80-real;90-real", "AUTO", True),
        ("80-real", "ON", True),  # CI's compile check
        ("90-real", "OFF", False),
    ],
)
def test_cmake_hopper_core_switch(tmp_path, archs, sm90, built):
    """The Hopper core's sm_90a kernels are built where the architectures include sm_90 (or
    FASTCONV_CUTLASS_SM90=ON), not otherwise; configure only (needs nvcc and nvidia-cutlass)."""
    import shutil

    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        pytest.skip("no nvcc here")
    try:
        import cutlass_library  # noqa: F401
    except ImportError:
        pytest.skip("nvidia-cutlass is not installed (CUTLASS's headers)")
    proc = _configure(
        tmp_path, "ON", archs, defines=("-DFASTCONV_CUTLASS=ON", f"-DFASTCONV_CUTLASS_SM90={sm90}")
    )
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 0, out
    assert ("Hopper core (sm_90a wgmma / TMA kernels)" in out) == built, out


def test_gpus_older_than_sm80_are_reported_unavailable():
    class OldGpu(AvailableCuda):
        def devices(self):
            t4 = {"index": 0, "name": "Tesla T4", "capability": (7, 5), "total_memory": 1 << 34}
            return [t4], ""

    old = OldGpu()
    assert "compute capability 8.0" in old.unavailable_reason()
    assert "Tesla T4 (sm_75)" in old.unavailable_reason()
    with backends.registered(old):
        with pytest.raises(ValueError, match="compute capability"):
            fastconv.algorithms("conv", device="cuda")
    with backends.registered(AvailableCuda()) as new:
        assert new.unavailable_reason() == ""
        assert fastconv.algorithms("max_pool", device="cuda") == ["direct"]
