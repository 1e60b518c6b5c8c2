"""GPU kernels (fastconv._cuda) against the CPU reference and torch.nn.functional on CUDA, and
the host side of GPU routing (device checks, availability, selection, TF32), which runs
without a GPU.

Tolerances (scale = max|expected|, L = products summed into one output). Inputs are rounded to
the dtype first and the float64 CPU reference runs on the rounded values, so only the kernel's
own arithmetic is measured:
  float64:  1e-10 * scale                        (any summation order passes)
  float32:  eps32 * scale * (8 sqrt(L) + 16)     (exact FP32 SIMT: random-walk summation error)
  tf32:     2^-10 * scale * 4 sqrt(L)            (each product of operands rounded to 10 bits)
  float16:  (2^-10 + eps32 * 8 sqrt(L)) * scale  (float32 accumulation, one rounding to fp16)
  bfloat16: (2^-7 + eps32 * 8 sqrt(L)) * scale   (float32 accumulation, one rounding to bf16)
Any indexing bug (wrong tap, channel or padding) is off by ~10% of scale or more.
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
from fastconv import _arrays, backends, selection
from fastconv._problem import conv_problem, pool_problem
from fastconv.backends.cuda import CudaBackend, cuda_module, get_allow_tf32, kernel_math

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

GPU_DTYPES = ("float32", "float64", "float16", "bfloat16")
EPS32 = float(np.finfo(np.float32).eps)


def rel_tolerance(dtype: str, reduction: int) -> float:
    root = math.sqrt(max(reduction, 1))
    return {
        "float64": 1e-10,
        "float32": EPS32 * (8 * root + 16),
        "tf32": 2.0**-10 * 4 * root,
        "float16": 2.0**-10 + EPS32 * 8 * root,
        "bfloat16": 2.0**-7 + EPS32 * 8 * root,
    }[dtype]


def assert_gpu_close(got, want, dtype: str, reduction: int, what: str = "") -> None:
    got = got.detach().double().cpu().numpy() if hasattr(got, "detach") else np.asarray(got)
    want = want.detach().double().cpu().numpy() if hasattr(want, "detach") else np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    finite = want[np.isfinite(want)]
    scale = max(float(np.max(np.abs(finite))) if finite.size else 0.0, 1e-30)
    atol = rel_tolerance(dtype, reduction) * scale
    np.testing.assert_allclose(got, want, rtol=0, atol=atol, equal_nan=True, err_msg=what)


# ---- GPU data helpers


def _torch_dtype(name: str):
    return getattr(torch, name)


def gpu_rand(rng, shape, dtype: str):
    """(cuda tensor in dtype, float64 numpy copy of exactly those values)."""
    a = torch.from_numpy(rng.uniform(-1.0, 1.0, size=shape)).to(_torch_dtype(dtype))
    return a.cuda(), a.double().numpy()


# ---- convolution cases: (x shape, w shape, kwargs)

CONV_CASES = [
    ((2, 4, 13), (6, 4, 3), dict(stride=1, padding=1)),
    ((2, 4, 17), (6, 2, 4), dict(stride=2, padding=((1, 2),), dilation=2, groups=2)),
    ((2, 3, 9, 8), (5, 3, 3, 2), dict(stride=(2, 1), padding=((1, 0), (2, 1)))),
    ((1, 8, 11, 10), (8, 4, 3, 3), dict(stride=1, padding=2, dilation=2, groups=2)),
    ((3, 6, 7, 9), (6, 1, 3, 3), dict(stride=2, padding=1, groups=6)),  # depthwise
    ((2, 4, 12, 12), (8, 1, 5, 5), dict(padding=2, groups=4)),  # depthwise, multiplier 2
    ((1, 3, 5, 6, 4), (4, 3, 2, 3, 2), dict(stride=(1, 2, 1), padding=1)),
    ((2, 70, 9, 9), (67, 70, 1, 1), {}),  # more than one 64-wide tile on M and K
    ((1, 5, 8, 8), (3, 5, 3, 3), dict(padding=1, mode="conv")),
    ((0, 4, 8, 8), (4, 4, 3, 3), {}),  # empty batch
]
CONV_IDS = [f"{len(x) - 2}d-{i}" for i, (x, _, _) in enumerate(CONV_CASES)]


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
    x, x64 = gpu_rand(rng, x_shape, dtype)
    w, w64 = gpu_rand(rng, w_shape, dtype)
    b, b64 = gpu_rand(rng, (w_shape[0],), dtype)
    y64 = fastconv.conv(x64, w64, b64, algo="reference", **kw)
    gy, gy64 = gpu_rand(rng, y64.shape, dtype)
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


TRANSPOSE_CASES = [
    ((2, 4, 7), (4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 6, 5, 4), (6, 2, 3, 3), dict(stride=(2, 3), padding=1, output_padding=(1, 2), groups=3)),
    ((1, 4, 3, 4, 3), (4, 2, 2, 2, 2), dict(stride=2, dilation=2, output_padding=1)),
    ((2, 4, 6, 6), (4, 1, 4, 4), dict(stride=2, padding=1, groups=4)),  # depthwise
]


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
def test_non_contiguous_inputs_and_tf32_opt_in(rng):
    x, x64 = gpu_rand(rng, (2, 16, 12, 12), "float32")
    w, w64 = gpu_rand(rng, (8, 16, 3, 3), "float32")
    xt = x.transpose(2, 3)  # a strided view: copied once by torch
    want = fastconv.conv(np.ascontiguousarray(x64.transpose(0, 1, 3, 2)), w64)
    assert_gpu_close(fastconv.conv(xt, w), want, "float32", 16 * 9)
    try:
        fastconv.set_allow_tf32(True)
        assert_gpu_close(fastconv.conv(xt, w), want, "tf32", 16 * 9)
    finally:
        fastconv.set_allow_tf32(None)
    assert not xt.is_contiguous()  # inputs are never modified or replaced


POOL_CASES = [
    ((2, 3, 17), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 3, 9, 10), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True)),
    ((1, 2, 5, 6, 7), dict(kernel_size=2, stride=2, ceil_mode=True)),
]


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
    with pytest.raises(ValueError, match="indices"):
        fastconv.max_unpool(y, idx + 100, 2)
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
    problem = conv_problem("conv_transpose", "forward", (1, 8, 5, 5), (8, 1, 3, 3), "float16",
                           groups=8)
    assert selection.select(problem, backend, "auto").algo == "depthwise"


def test_tf32_is_opt_in():
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
        old = torch.backends.cuda.matmul.allow_tf32
        try:
            torch.backends.cuda.matmul.allow_tf32 = True
            assert kernel_math("implicit_gemm", "float32", "torch")[1] == "tensor_core"
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old
    with pytest.raises(TypeError):
        fastconv.set_allow_tf32("yes")


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


def _emu_conv(pass_, algo, math_, dtype, x_shape, w_shape, kw, a, b, bias=None, op_pad=None):
    """emu.conv with the conv geometry of `kw`, as fastconv resolves it (its ConvProblem);
    op_pad lowers the high padding as a transposed conv's output_padding does."""
    geometry = conv_problem("conv", "forward", x_shape, w_shape, "float64", **kw).conv_geometry
    x_, w_, stride, lo, hi, dilation, groups, mode = geometry
    if op_pad is not None:
        hi = [h - o for h, o in zip(hi, op_pad)]
    return EMU.conv(
        pass_, algo, math_, dtype, list(x_), list(w_), stride, lo, hi, dilation, groups, mode,
        a, b, bias,
    )


# The default run keeps a quick subset (three ranks, exact FP32 and fp16 tensor cores); the
# whole matrix takes about a minute on two cores: `pytest -m slow tests/test_cuda.py -k emulated`.
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
    shape, kw = case
    x = round_to(rng.uniform(-1, 1, shape), dtype)
    x.flat[3] = x.flat[4]  # a tie: the first maximum wins
    ceil_mode = kw.get("ceil_mode", False)
    geo = pool_problem(
        "avg_pool",
        "forward",
        shape,
        "float64",
        kw["kernel_size"],
        stride=kw.get("stride"),
        padding=kw.get("padding", 0),
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
    for cip in (True, False):
        y, _ = EMU.pool_forward("avg_pool", dtype, *geo, cip, 1.0, x)
        assert_gpu_close(y, fastconv.avg_pool(x, count_include_pad=cip, **kw), dtype, 8)
        assert_gpu_close(
            EMU.pool_backward("avg_pool", dtype, *geo, cip, 1.0, gy, x),
            fastconv.avg_pool_backward(gy, x.shape, count_include_pad=cip, **kw),
            dtype,
            8,
        )
    if not any(pad_lo):  # lp pools take no padding
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
    with pytest.raises(ValueError, match="bad index"):
        EMU.max_unpool(dtype, out_shape, y64, idx64 + 10**6)


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


class EmulatedCuda(CudaBackend):
    """The CUDA backend over the emulated module: host pointers, no streams, NaN outputs."""

    def module(self):
        return GLUE

    def devices(self):
        return GLUE.devices()

    def stream(self, call):
        return 0

    def prepare(self, names, values, device, index=None):
        def unwrap(v):
            return v.t if isinstance(v, EmulatedDeviceTensor) else v

        if index is not None:
            index = (index[0], unwrap(index[1]))
        return super().prepare(names, [unwrap(v) for v in values], device, index)

    def empty(self, call, shape, dtype=None):
        dtype = dtype or call.dtype
        t = torch.full(tuple(shape), float("nan")) if dtype != "int64" else torch.empty(shape)
        t = t.to(getattr(torch, dtype))
        return EmulatedDeviceTensor(t), t.data_ptr()


@pytest.fixture
def emulated_gpu():
    """Serves "CUDA" arrays with the emulated kernels for the duration of a test."""
    if GLUE is None or torch is None:
        pytest.skip(f"needs torch and the CUDA host emulation ({EMU_REASON or 'glue missing'})")
    with backends.registered(EmulatedCuda()):
        yield GLUE


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
    with pytest.raises(ValueError, match="indices must lie in"):
        fastconv.max_unpool(y, idx + 1000, 3, **unpool_kw)
    with pytest.raises(TypeError, match="integer"):
        fastconv.max_unpool(y, idx.double(), 3, **unpool_kw)


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
    mode, _, archs = mode.partition(";")
    if archs:
        env["FASTCONV_CUDA_ARCHITECTURES"] = archs
    if cudacxx:
        env["CUDACXX"] = cudacxx
    proc = subprocess.run(
        [
            cmake,
            "-S",
            str(ROOT),
            "-B",
            str(tmp_path),
            f"-DFASTCONV_CUDA={mode}",
            f"-Dpybind11_DIR={pybind11_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    out = " ".join((proc.stdout + proc.stderr).split())  # CMake wraps long messages
    assert expect in out, out
    assert (proc.returncode == 0) == ok, out


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
                got = EMU.conv(
                    pass_, algo, "simt", "float64", *geo, groups, mode, a, b, None
                )
                assert_gpu_close(got, want[pass_], "float64", 1, f"{algo} {pass_} {x_shape} {kw}")
