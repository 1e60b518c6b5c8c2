"""fastconv.jax on CUDA: the CUDA handlers (cuda/jax_ffi.cc in fastconv._cuda) and the Python side
that reaches them. Without a GPU: the capsules, their registration for the CUDA platform, what a
jitted function lowered for CUDA contains (fastconv's custom calls with the GPU's algorithm, no
XLA convolution or reduce_window), and how a GPU-only dtype or algorithm fails on the CPU. With
a GPU and jax's CUDA plugin: parity with lax on the device (cuda/device_check.sh runs them);
elsewhere those skip with the reason."""

from __future__ import annotations

import functools
import importlib.util
import re
from functools import partial
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install 'fastconv[jax]')")

import fastconv  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from fastconv import _C  # noqa: E402
from fastconv.backends import backend_for_device  # noqa: E402
from fastconv.jax import _targets  # noqa: E402
from fcj_testing import (  # noqa: E402
    array,
    assert_close,
    fcj,
    hvp,
    lax_conv,
    lax_conv_transpose,
    lax_pool,
)
from jax.test_util import check_grads  # noqa: E402

jax.config.update("jax_enable_x64", True)

requires_cuda_handlers = pytest.mark.skipif(
    _targets.cuda_targets() is None,
    reason="this build has no CUDA XLA FFI handlers (fastconv._cuda not built, or built "
    "without jaxlib's headers)",
)


def _gpu_reason() -> str:
    if "cuda" not in _targets.PLATFORMS:
        return "this build has no CUDA XLA FFI handlers"
    try:
        jax.devices("cuda")
    except RuntimeError as e:
        return f"jax has no CUDA device (jax's CUDA plugin and a GPU are needed): {e}"
    return backend_for_device("cuda").unavailable_reason()


GPU_REASON = _gpu_reason()
requires_gpu = pytest.mark.skipif(bool(GPU_REASON), reason=GPU_REASON or "")


def _lowered(f, *args, platforms=("cuda",)) -> str:
    return jax.jit(f).trace(*args).lower(lowering_platforms=platforms).as_text()


def _calls(text: str, target: str) -> list[str]:
    return [line for line in text.splitlines() if f"custom_call @{target}" in line]


def _attr(line: str, name: str) -> str:
    return re.search(rf'\b{name} = "([^"]*)"', line).group(1)


# ---- without a GPU


@requires_cuda_handlers
def test_cuda_module_exports_the_handlers():
    from fastconv import _cuda

    assert set(_cuda.jax_ffi_targets) == set(_C.jax_ffi_targets) == {"fastconv_conv",
                                                                    "fastconv_pool"}  # fmt: skip
    for name, capsule in _cuda.jax_ffi_targets.items():
        assert type(capsule).__name__ == "PyCapsule"
        assert capsule is not _C.jax_ffi_targets[name]
    assert _targets.built_for(_cuda) == _targets.built_for(_C)
    assert "cuda" in _targets.PLATFORMS


@requires_cuda_handlers
def test_register_adds_the_cuda_platform(monkeypatch):
    from fastconv import _cuda

    monkeypatch.setattr(_targets, "PLATFORMS", _targets.PLATFORMS)
    seen = []
    assert _targets.register(lambda *a, **k: seen.append((a, k))) == ("cpu", "cuda")
    got = {(name, kw["platform"]): capsule for (name, capsule), kw in seen}
    assert set(got) == {(n, p) for n in ("fastconv_conv", "fastconv_pool") for p in ("cpu", "CUDA")}
    for name in ("fastconv_conv", "fastconv_pool"):
        assert got[name, "cpu"] is _C.jax_ffi_targets[name]
        assert got[name, "CUDA"] is _cuda.jax_ffi_targets[name]
    # a build without them registers the CPU only, and selects for the CPU only
    monkeypatch.setattr(_targets, "cuda_targets", lambda: None)
    seen.clear()
    assert _targets.register(lambda *a, **k: seen.append((a, k))) == ("cpu",)
    assert {kw["platform"] for _, kw in seen} == {"cpu"}
    assert [p for p, _ in _targets.selection_backends()] == ["cpu"]


@requires_cuda_handlers
def test_lowered_for_cuda_runs_the_gpu_selection(rng):
    x = array(rng, (2, 8, 9, 9), np.float32)
    w, dw = array(rng, (6, 8, 3, 3), np.float32), array(rng, (8, 1, 5, 5), np.float32)

    def loss(x, w, dw):
        y = fcj.conv(fcj.conv(x, dw, padding=2, groups=8), w, stride=2)
        return jnp.sum(fcj.conv_transpose(y, w, stride=2) ** 2)

    text = _lowered(jax.grad(loss, (0, 1, 2)), x, w, dw)
    calls = _calls(text, "fastconv_conv")
    gpu = {(_attr(c, "pass_"), _attr(c, "gpu_algo")) for c in calls}
    # depthwise layer -> the depthwise kernel, dense ones -> implicit GEMM with exact float32
    assert ("forward", "depthwise") in gpu and ("backward_weight", "depthwise") in gpu
    assert ("forward", "implicit_gemm_simt") in gpu
    assert ("backward_data", "implicit_gemm_simt") in gpu
    assert "stablehlo.convolution" not in text
    fastconv.set_allow_tf32(True)
    try:
        text = _lowered(lambda x, w: fcj.conv(x, w), x, w)
    finally:
        fastconv.set_allow_tf32(None)
    assert _attr(_calls(text, "fastconv_conv")[0], "gpu_algo") == "implicit_gemm"
    # float64 has no tensor cores: SIMT even with TF32 allowed
    text = _lowered(lambda x, w: fcj.conv(x, w), x.astype(jnp.float64), w.astype(jnp.float64))
    assert _attr(_calls(text, "fastconv_conv")[0], "gpu_algo") == "implicit_gemm_simt"


@requires_cuda_handlers
def test_lowered_for_cuda_pools_to_second_order(rng):
    x = array(rng, (1, 3, 8, 8), np.float64)
    second = partial(hvp, partial(fcj.max_pool, kernel_size=2), r=1.0)
    text = _lowered(second, x, x)
    passes = {_attr(c, "pass_") for c in _calls(text, "fastconv_pool")}
    assert passes == {"forward", "backward", "gather"}
    assert "reduce_window" not in text and "select_and_scatter" not in text
    # one function lowered for both platforms: XLA picks the branch where it compiles
    text = _lowered(lambda x: fcj.avg_pool(x, 3, padding=1), x, platforms=("cpu", "cuda"))
    assert _calls(text, "fastconv_pool")


@requires_cuda_handlers
def test_gpu_only_dtype_or_algorithm_fails_on_the_cpu_when_run(rng):
    x, w = array(rng, (1, 2, 6, 6), np.float32), array(rng, (3, 2, 3, 3), np.float32)
    # float16 traces and lowers for the GPU; the CPU handler refuses it when the call runs
    half = x.astype(jnp.float16), w.astype(jnp.float16)
    f = jax.jit(lambda x, w: fcj.conv(x, w))
    assert "f16" in _calls(_lowered(f, *half), "fastconv_conv")[0]
    with pytest.raises(Exception, match="float32 or float64 on the CPU") as info:
        jax.block_until_ready(f(*half))
    assert "fastconv conv forward" in str(info.value)
    with pytest.raises(Exception, match="float32 or float64 on the CPU"):
        jax.block_until_ready(jax.jit(lambda x: fcj.max_pool(x, 2))(half[0]))
    # an algorithm only the GPU has: the CPU handler names it; one only the CPU has runs on the
    # CPU and is passed to the GPU by name (its handler would refuse it there)
    g = jax.jit(lambda x, w: fcj.conv(x, w, algo="implicit_gemm_simt"))
    with pytest.raises(Exception, match="implicit_gemm_simt"):
        jax.block_until_ready(g(x, w))
    h = jax.jit(lambda x, w: fcj.conv(x, w, algo="direct"))
    assert_close(h(x, w), lax_conv(x, w), np.float32)
    line = _calls(_lowered(h, x, w), "fastconv_conv")[0]
    assert _attr(line, "algo") == "direct" and _attr(line, "gpu_algo") == "direct"
    with pytest.raises(TypeError, match=r"float16 or bfloat16 on a GPU\), got int32"):
        fcj.conv(x.astype(jnp.int32), w)


# ---- on a GPU (jax's CUDA plugin): parity with lax on the device

CONV = [
    ((2, 4, 13), (6, 4, 3), dict(stride=1, padding=1)),
    ((2, 4, 11, 10), (6, 2, 3, 3), dict(stride=2, padding=((1, 0), (1, 1)), dilation=(1, 2),
                                         groups=2)),
    ((2, 6, 9, 9), (6, 1, 5, 5), dict(padding=2, groups=6)),  # depthwise
    ((1, 3, 4, 5, 6), (4, 3, 2, 3, 2), dict(stride=(1, 2, 1), padding=1)),
]  # fmt: skip
# weight gradients whose few output tiles split the reduction (workspace): on a GPU's SMs, and
# on the emulation's 8
SPLIT_GPU = ((8, 64, 16, 16), (64, 64, 3, 3), dict(padding=1))
SPLIT_EMULATED = ((2, 8, 12, 12), (4, 8, 3, 3), dict(padding=1))
TRANSPOSE = [
    ((2, 4, 7, 6), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((2, 6, 9), (6, 1, 4), dict(stride=3, groups=6)),
]


def _on_gpu(*arrays):
    device = jax.devices("cuda")[0]
    return [jax.device_put(a, device) for a in arrays]


@requires_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_gpu_conv_and_gradients_match_lax(rng, dtype, transposed):
    fn, ref = (fcj.conv_transpose, lax_conv_transpose) if transposed else (fcj.conv, lax_conv)
    for x_shape, w_shape, kw in TRANSPOSE if transposed else [*CONV, SPLIT_GPU]:
        x, w = _on_gpu(array(rng, x_shape, dtype), array(rng, w_shape, dtype))
        channels = w_shape[1] * kw.get("groups", 1) if transposed else w_shape[0]
        (b,) = _on_gpu(array(rng, (channels,), dtype))
        y = jax.jit(lambda x, w, b: fn(x, w, b, **kw))(x, w, b)
        assert y.devices() == {jax.devices("cuda")[0]}
        assert_close(y, ref(x, w, b, **kw), dtype)
        (r,) = _on_gpu(array(rng, y.shape, dtype))
        got = jax.jit(jax.grad(lambda x, w, b: jnp.sum(fn(x, w, b, **kw) * r), (0, 1, 2)))(x, w, b)
        want = jax.grad(lambda x, w, b: jnp.sum(ref(x, w, b, **kw) * r), (0, 1, 2))(x, w, b)
        for got_i, want_i in zip(got, want):
            assert_close(got_i, want_i, dtype, scale=10.0)


@requires_gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gpu_half_precision_conv_matches_lax(rng, dtype):
    from cuda_helpers import assert_gpu_close

    x, w = _on_gpu(array(rng, (2, 8, 10, 10), np.float32), array(rng, (16, 8, 3, 3), np.float32))
    x, w = x.astype(dtype), w.astype(dtype)
    got = jax.jit(lambda x, w: fcj.conv(x, w, padding=1))(x, w)
    assert got.dtype == jnp.dtype(dtype)
    want = lax_conv(x.astype(jnp.float64), w.astype(jnp.float64), padding=1)
    assert_gpu_close(np.asarray(got.astype(jnp.float64)), np.asarray(want), dtype, 8 * 9)


@requires_gpu
def test_gpu_second_order_and_vmap(rng):
    x, w = _on_gpu(array(rng, (3, 2, 4, 9, 8), np.float64), array(rng, (5, 4, 3, 3), np.float64))
    check_grads(jax.jit(lambda x, w: fcj.conv(x, w, padding=1)), (x[0], w), 2, modes=["rev"])
    for kind, kw in (("max_pool", dict(stride=2, padding=1, ceil_mode=True)),
                     ("avg_pool", dict(stride=2, padding=1, count_include_pad=False))):  # fmt: skip
        ours = partial(getattr(fcj, kind), kernel_size=3, **kw)
        ref = partial(lax_pool, kind, kernel_size=3, **kw)
        assert_close(jax.jit(jax.vmap(ours))(x), jax.vmap(ref)(x), np.float64)
        check_grads(jax.jit(ours), (x[0],), order=2, modes=["rev"])
        (v,) = _on_gpu(array(rng, x.shape[1:], np.float64))
        r = jnp.ones(ref(x[0]).shape, np.float64)
        hvps = [jax.jit(lambda x, v, f=f: hvp(f, x, v, r))(x[0], v) for f in (ours, ref)]
        assert_close(*hvps, np.float64)
    # a shared weight folds the vmapped batch into N; a batched weight runs item by item
    ws = jnp.stack([w, 2 * w, -w])
    got = jax.jit(jax.vmap(lambda x, w: fcj.conv(x, w, padding=1)))(x, ws)
    want = jnp.stack([lax_conv(xi, wi, padding=1) for xi, wi in zip(x, ws)])
    assert_close(got, want, np.float64)


# ---- the CUDA handlers run by XLA's CPU runtime over the host emulation of the GPU kernels
# (cuda/emulation/build.sh compiles cuda/jax_ffi.cc into the emulated _cuda, with the null
# stream and host scratch memory in place of XLA's): registered as CPU targets under their own
# names, fastconv.jax's calls routed to them. This runs the CUDA handlers' decoding, the
# transposed-conv pass mapping and operand order, the bias, vmap folding, the split workspace,
# every pooling pass and the launchers, here; XLA's stream and scratch allocator it cannot.

EMULATION = Path(__file__).resolve().parents[2] / "build" / "cuda-emulation" / "glue"
SOURCES = Path(__file__).resolve().parents[2]
EMULATED = {"fastconv_conv": "fastconv_conv_emulated", "fastconv_pool": "fastconv_pool_emulated"}


@functools.lru_cache(maxsize=1)
def _emulated_handlers():
    """(the emulated _cuda with its handlers registered for the CPU, or None, why not)."""
    found = list(EMULATION.glob("_cuda*.so"))
    if not found:
        return None, "the host emulation is not built: run `sh cuda/emulation/build.sh`"
    sources = [*SOURCES.glob("cuda/*.c*"), *SOURCES.glob("cuda/*.h"),
               *SOURCES.glob("csrc/bindings/jax_ffi_calls.*")]  # fmt: skip
    if max(s.stat().st_mtime for s in sources) > found[0].stat().st_mtime:
        return None, "the host emulation is stale: rerun `sh cuda/emulation/build.sh`"
    spec = importlib.util.spec_from_file_location("_cuda", found[0])
    glue = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(glue)
    if not hasattr(glue, "jax_ffi_targets"):
        return None, "the host emulation was built without jax's headers"
    for name, capsule in glue.jax_ffi_targets.items():
        jax.ffi.register_ffi_target(EMULATED[name], capsule, platform="cpu")
    return glue, ""


@pytest.fixture
def emulated_cuda(monkeypatch):
    """fastconv.jax's custom calls go to the emulated CUDA handlers (on the CPU)."""
    glue, why = _emulated_handlers()
    if glue is None:
        pytest.skip(why)
    monkeypatch.setattr(_targets, "PLATFORMS", ("cpu", "cuda"))  # the GPU selection runs
    monkeypatch.setattr(fcj._conv, "CONV_TARGET", EMULATED["fastconv_conv"])
    monkeypatch.setattr(fcj._pool, "POOL_TARGET", EMULATED["fastconv_pool"])
    return glue


@pytest.mark.parametrize(
    "dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.slow)], ids=["f32", "f64"]
)  # the emulated kernels are slow: float64 (the same geometry code) with -m slow
def test_emulated_cuda_handlers_conv_match_lax(emulated_cuda, rng, dtype):
    for transposed, cases in ((False, [*CONV, SPLIT_EMULATED]), (True, TRANSPOSE)):
        fn, ref = (fcj.conv_transpose, lax_conv_transpose) if transposed else (fcj.conv, lax_conv)
        for x_shape, w_shape, kw in cases:
            x, w = array(rng, x_shape, dtype), array(rng, w_shape, dtype)
            channels = w_shape[1] * kw.get("groups", 1) if transposed else w_shape[0]
            b = array(rng, (channels,), dtype)
            text = _lowered(lambda x, w, b: fn(x, w, b, **kw), x, w, b, platforms=("cpu",))
            assert _calls(text, EMULATED["fastconv_conv"])
            y = jax.jit(lambda x, w, b: fn(x, w, b, **kw))(x, w, b)
            assert_close(y, ref(x, w, b, **kw), dtype)
            r = array(rng, y.shape, dtype)
            grad = jax.jit(jax.grad(lambda x, w, b: jnp.sum(fn(x, w, b, **kw) * r), (0, 1, 2)))
            want = jax.grad(lambda x, w, b: jnp.sum(ref(x, w, b, **kw) * r), (0, 1, 2))(x, w, b)
            for got_i, want_i in zip(grad(x, w, b), want):
                assert_close(got_i, want_i, dtype, scale=10.0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_emulated_cuda_handlers_half_precision(emulated_cuda, rng, dtype):
    from cuda_helpers import assert_gpu_close

    x, w = array(rng, (2, 8, 6, 6), np.float32), array(rng, (16, 8, 3, 3), np.float32)
    x, w = x.astype(dtype), w.astype(dtype)
    got = jax.jit(lambda x, w: fcj.conv(x, w, padding=1))(x, w)  # tensor cores (emulated)
    assert got.dtype == jnp.dtype(dtype)
    want = lax_conv(x.astype(jnp.float64), w.astype(jnp.float64), padding=1)
    assert_gpu_close(np.asarray(got.astype(jnp.float64)), np.asarray(want), dtype, 8 * 9)
    y = jax.jit(lambda x: fcj.max_pool(x, 2))(x)
    assert_close(y.astype(jnp.float32), lax_pool("max_pool", x.astype(jnp.float32), 2),
                 np.float32)  # fmt: skip


def test_emulated_cuda_handlers_pool_to_second_order_and_vmap(emulated_cuda, rng):
    x = array(rng, (3, 2, 3, 7, 8), np.float64)
    for kind, kw in (("max_pool", dict(stride=2, padding=1, ceil_mode=True)),
                     ("max_pool", dict(stride=(2, 1), padding=(1, 0), dilation=(2, 1))),
                     ("avg_pool", dict(stride=2, padding=1, count_include_pad=False)),
                     ("avg_pool", dict(stride=2, padding=1, ceil_mode=True))):  # fmt: skip
        ours = partial(getattr(fcj, kind), kernel_size=3, **kw)
        ref = partial(lax_pool, kind, kernel_size=3, **kw)
        assert_close(jax.jit(jax.vmap(ours))(x), jax.vmap(ref)(x), np.float64)
        v, r = array(rng, x.shape[1:], np.float64), array(rng, ref(x[0]).shape, np.float64)
        hvps = [jax.jit(lambda x, v, f=f: hvp(f, x, v, r))(x[0], v) for f in (ours, ref)]
        assert_close(*hvps, np.float64)
    # a shared weight folds the vmapped batch into N; a batched weight runs item by item
    w = array(rng, (5, 2, 3, 3), np.float64)
    xs = x[:, :, :2]
    ws = jnp.stack([w, 2 * w, -w])
    got = jax.jit(jax.vmap(lambda x, w: fcj.conv(x, w, padding=1)))(xs, ws)
    assert_close(got, jnp.stack([lax_conv(a, b, padding=1) for a, b in zip(xs, ws)]), np.float64)
    got = jax.jit(jax.vmap(lambda x: fcj.conv(x, w, padding=1)))(xs)
    assert_close(got, jnp.stack([lax_conv(a, w, padding=1) for a in xs]), np.float64)


def test_emulated_cuda_handlers_report_errors(emulated_cuda, rng):
    x, w = array(rng, (1, 2, 6, 6), np.float32), array(rng, (3, 2, 3, 3), np.float32)
    with pytest.raises(Exception, match=r"\(CUDA\): algorithm 'direct' has no CUDA kernel"):
        jax.block_until_ready(jax.jit(lambda x, w: fcj.conv(x, w, algo="direct"))(x, w))
    call = jax.ffi.ffi_call(EMULATED["fastconv_pool"], jax.ShapeDtypeStruct((1, 2, 3, 3),
                            jnp.float32))  # fmt: skip
    attrs = dict(kind="max_pool", pass_="backward", kernel=np.array([2, 2]),
                 stride=np.array([2, 2]), pad_lo=np.array([0, 0]), pad_hi=np.array([0, 0]),
                 dilation=np.array([1, 1]), ceil_mode=False, count_include_pad=True)  # fmt: skip
    with pytest.raises(Exception, match="max_pool backward takes the forward's indices"):
        jax.block_until_ready(jax.jit(lambda g: call(g, **attrs))(x[:, :, :3, :3]))
