"""How fastconv.torch's eager calls reach the kernels: straight from the wrapper when nothing
watches the operator (plain tensors or Parameters, no gradient, mode, profiler or forward AD),
through torch.ops.fastconv.* otherwise; forward-mode AD raises instead of dropping tangents;
a forked child (DataLoader workers) runs fastconv after the parent shared PyTorch's threads."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import requires_torch, torch

pytestmark = requires_torch

if torch is not None:
    import fastconv.torch as fct
    from fastconv.torch import _ops


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts calls of the conv kernel made by the eager bypass (the operator's registered
    kernel is the original function, so calls through the dispatcher are not counted)."""
    calls = []
    original = _ops._KERNELS["conv"]

    def counted(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setitem(_ops._KERNELS, "conv", counted)
    return calls


def test_modules_and_plain_tensors_take_the_eager_path(kernel_calls):
    x, w = torch.randn(1, 2, 8, 8), torch.randn(3, 2, 3, 3)
    want = torch.nn.functional.conv2d(x, w)
    torch.testing.assert_close(fct.conv2d(x, w), want)
    assert len(kernel_calls) == 1
    conv = torch.nn.Conv2d(2, 3, 3, bias=False)
    conv.weight.data.copy_(w)
    fct.replace_modules(conv)
    with torch.no_grad():  # a Parameter is a plain tensor for dispatch
        torch.testing.assert_close(conv(x), want)
    assert len(kernel_calls) == 2
    y = conv(x)  # the weight needs a gradient: the operator and its autograd
    assert y.requires_grad and len(kernel_calls) == 2


def test_function_modes_and_the_profiler_see_the_operator(kernel_calls):
    from torch.overrides import TorchFunctionMode

    class Log(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.seen.append(str(func))
            return func(*args, **(kwargs or {}))

    x, w = torch.randn(1, 1, 8, 8), torch.randn(1, 1, 3, 3)
    with Log() as mode:
        fct.conv2d(x, w)
    assert "fastconv.conv.default" in mode.seen
    with torch.profiler.profile() as prof:
        fct.conv2d(x, w)
    assert any(e.name == "fastconv::conv" for e in prof.events())
    assert not kernel_calls


def test_forward_mode_ad_raises_instead_of_dropping_tangents():
    import torch.autograd.forward_ad as fwad

    x, w = (
        torch.randn(1, 2, 6, 6, dtype=torch.float64),
        torch.randn(3, 2, 3, 3, dtype=torch.float64),
    )
    with pytest.raises(NotImplementedError, match="forward-mode AD"):
        torch.func.jvp(lambda a: fct.conv2d(a, w), (x,), (torch.randn_like(x),))
    with fwad.dual_level():
        dual = fwad.make_dual(x, torch.randn_like(x))
        with pytest.raises(NotImplementedError, match="forward-mode AD"):
            fct.max_pool2d(dual, 2)
        y = fct.conv2d(x, w)  # no tangent anywhere: runs
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w))


def test_a_forked_child_runs_fastconv_after_the_parent_shared_torchs_threads(tmp_path):
    """libgomp's team does not survive fork(): the child must fall back to fastconv's own
    pool (it hung in GOMP_parallel before)."""
    script = textwrap.dedent(
        """
        import os, signal, sys
        import numpy as np, torch
        import fastconv, fastconv.torch
        fastconv.set_num_threads(2)
        x = np.random.rand(2, 8, 32, 32).astype(np.float32)
        w = np.random.rand(8, 8, 3, 3).astype(np.float32)
        want = fastconv.conv(x, w)
        shared = fastconv.info()["thread_pool"]
        pid = os.fork()
        if pid == 0:
            signal.alarm(60)
            torch.set_num_threads(1)
            ok = np.array_equal(fastconv.conv(x, w), want)
            ok = ok and fastconv.info()["thread_pool"] == "fastconv's own"
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print(shared, status)
        sys.exit(0 if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else 1)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cuda_autocast_casts_convolutions_to_the_autocast_dtype_only():
    """Under torch.autocast("cuda", dtype=...) convolutions run in that dtype (float16 or
    bfloat16, not always float16) and pools keep their input's dtype, as PyTorch's do. The
    rule itself is checked here on CPU tensors; the GPU device check runs it for real."""
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    assert has("fastconv::conv", "AutocastCUDA")
    for name in ("max_pool", "avg_pool", "lp_pool", "max_unpool"):
        assert not has(f"fastconv::{name}", "AutocastCUDA"), name
    args = (torch.randn(2), torch.randn(2, dtype=torch.float64), None, [3], "spec")
    for dtype in (torch.bfloat16, torch.float16):
        cast = _ops.autocast_args(args, "cpu", dtype)
        assert cast[0].dtype == dtype and cast[1].dtype == torch.float64  # float64 stays
        assert cast[2:] == args[2:]
        assert _ops.autocast_args(args, "cuda", dtype)[0] is args[0]  # other devices: as is
