"""fastconv vs torch.nn.functional and torch.autograd; torch tensors in -> torch tensors out."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
from conftest import DTYPES, assert_close, rand, requires_torch, torch

pytestmark = [requires_torch, pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")]

if torch is not None:
    F = torch.nn.functional
    CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
    CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
    MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
    AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
    LP = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: getattr(F, "lp_pool3d", None)}
    UNPOOL = {1: F.max_unpool1d, 2: F.max_unpool2d, 3: F.max_unpool3d}
    TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}

IN_SIZES = {1: (13,), 2: (9, 8), 3: (5, 6, 4)}
KERNELS = {1: (4,), 2: (3, 2), 3: (2, 3, 2)}
DT = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
RANK = pytest.mark.parametrize("rank", [1, 2, 3])


def t(a, requires_grad=False):
    return torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(requires_grad)


def n(tensor):
    return tensor.detach().numpy()


# (stride, padding, dilation, (C, K, groups)); padding int or per-dim tuple as torch takes them
CONV_CASES = [
    (1, 0, 1, (4, 6, 1)),
    (2, 1, 1, (4, 6, 2)),
    (3, "tuple", 2, (6, 6, 6)),
    (1, "same", 1, (3, 6, 3)),
    (1, "same", 2, (5, 7, 1)),
    (2, 2, 1, (5, 7, 1)),
]


def _padding(padding, rank):
    return tuple(range(rank)) if padding == "tuple" else padding


@DT
@RANK
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_and_its_gradients_match_torch(case, rank, dtype, rng):
    stride, padding, dilation, (c, k, g) = case
    padding = _padding(padding, rank)
    x = rand(rng, (2, c) + IN_SIZES[rank], dtype)
    w = rand(rng, (k, c // g) + KERNELS[rank], dtype)
    b = rand(rng, (k,), dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=g)
    tx, tw, tb = t(x, True), t(w, True), t(b, True)
    ty = CONV[rank](tx, tw, tb, **kw)
    y = fastconv.conv(x, w, b, **kw)
    red = (c // g) * int(np.prod(KERNELS[rank]))
    assert_close(y, n(ty).astype(np.float64), dtype, red)

    gy = rand(rng, y.shape, dtype)
    ty.backward(t(gy))
    assert_close(fastconv.conv_backward_data(gy, w, x.shape, **kw), n(tx.grad), dtype, red)
    assert_close(
        fastconv.conv_backward_weight(x, gy, w.shape, **kw), n(tw.grad), dtype, gy[0, 0].size * 2
    )
    assert_close(fastconv.conv_backward_bias(gy), n(tb.grad), dtype, gy[0, 0].size * 2)


# (stride, padding, output_padding, dilation, (C_in, K_out, groups)); symmetric padding only
TRANSPOSE_CASES = [
    (1, 0, 0, 1, (4, 6, 1)),
    (2, 1, 1, 1, (4, 6, 2)),
    (3, "tuple", 2, 1, (3, 3, 3)),
    (1, 1, 1, 2, (5, 2, 1)),
    (2, 0, 1, 3, (4, 4, 2)),
]


@DT
@RANK
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv_transpose_and_its_gradients_match_torch(case, rank, dtype, rng):
    stride, padding, op, dilation, (cin, kout, g) = case
    padding = _padding(padding, rank)
    x = rand(rng, (2, cin) + IN_SIZES[rank], dtype)
    w = rand(rng, (cin, kout // g) + KERNELS[rank], dtype)
    b = rand(rng, (kout,), dtype)
    kw = dict(stride=stride, padding=padding, output_padding=op, dilation=dilation, groups=g)
    tx, tw = t(x, True), t(w, True)
    ty = CONV_T[rank](tx, tw, t(b), stride, padding, op, g, dilation)
    y = fastconv.conv_transpose(x, w, b, **kw)
    red = cin * int(np.prod(KERNELS[rank]))
    assert_close(y, n(ty).astype(np.float64), dtype, red)

    gy = rand(rng, y.shape, dtype)
    ty.backward(t(gy))
    assert_close(fastconv.conv_transpose_backward_data(gy, w, **kw), n(tx.grad), dtype, red)
    assert_close(
        fastconv.conv_transpose_backward_weight(x, gy, w.shape, **kw),
        n(tw.grad),
        dtype,
        2 * x[0, 0].size,
    )


# (kernel, stride, padding, dilation)
POOL_CASES = [(2, None, 0, 1), (3, 2, 1, 1), (3, 1, 1, 2), (2, 3, 1, 1)]


@DT
@RANK
@pytest.mark.parametrize("ceil_mode", [False, True], ids=["floor", "ceil"])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool_indices_unpool_and_backward_match_torch(case, ceil_mode, rank, dtype, rng):
    k, s, p, d = case
    x = rand(rng, (2, 3) + IN_SIZES[rank], dtype)
    tx = t(x, True)
    ty, tidx = MAX[rank](tx, k, s, p, d, ceil_mode, return_indices=True)
    y, idx = fastconv.max_pool(
        x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode, return_indices=True
    )
    np.testing.assert_array_equal(y, n(ty))
    np.testing.assert_array_equal(idx, tidx.numpy())
    gy = rand(rng, y.shape, dtype)
    ty.backward(t(gy))
    gx = fastconv.max_pool_backward(gy, x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    assert_close(gx, n(tx.grad), dtype, 9)
    if d == 1 and not ceil_mode:
        u = fastconv.max_unpool(y, idx, k, stride=s, padding=p, output_size=x.shape[2:])
        np.testing.assert_array_equal(u, n(UNPOOL[rank](ty, tidx, k, s, p, x.shape[2:])))


@DT
@RANK
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl", "excl"])
@pytest.mark.parametrize("ceil_mode", [False, True], ids=["floor", "ceil"])
@pytest.mark.parametrize("case", [c[:3] for c in POOL_CASES if c[3] == 1], ids=str)
def test_avg_pool_and_backward_match_torch(case, ceil_mode, count_include_pad, rank, dtype, rng):
    k, s, p = case
    x = rand(rng, (2, 3) + IN_SIZES[rank], dtype)
    tx = t(x, True)
    ty = AVG[rank](tx, k, s, p, ceil_mode, count_include_pad)
    kw = dict(stride=s, padding=p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    y = fastconv.avg_pool(x, k, **kw)
    assert_close(y, n(ty), dtype, 27)
    gy = rand(rng, y.shape, dtype)
    ty.backward(t(gy))
    assert_close(fastconv.avg_pool_backward(gy, x.shape, k, **kw), n(tx.grad), dtype, 27)


@pytest.mark.parametrize("in_size,k,s", [(1, 2, 2), (3, 4, 2), (5, 7, 3)], ids=str)
def test_ceil_mode_window_larger_than_input_matches_torch(in_size, k, s, rng):
    x = rand(rng, (2, 3, in_size))
    ty, tidx = F.max_pool1d(t(x), k, s, 0, 1, True, return_indices=True)
    y, idx = fastconv.max_pool(x, k, stride=s, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y, n(ty))
    np.testing.assert_array_equal(idx, tidx.numpy())
    for cip in (True, False):
        ya = fastconv.avg_pool(x, k, stride=s, ceil_mode=True, count_include_pad=cip)
        assert_close(ya, n(F.avg_pool1d(t(x), k, s, 0, True, cip)), np.float64, k)


@DT
@RANK
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 1.5])
@pytest.mark.parametrize("ks", [(2, None), (3, 2)], ids=str)
def test_lp_pool_and_backward_match_torch(ks, p, rank, dtype, rng):
    if LP[rank] is None:
        pytest.skip("this torch has no lp_pool3d")
    k, s = ks
    x = rand(rng, (2, 3) + IN_SIZES[rank], dtype, 0.1, 1.0)  # positive: torch's sign trick is exact
    tx = t(x, True)
    ty = LP[rank](tx, p, k, s)
    y = fastconv.lp_pool(x, p, k, stride=s)
    assert_close(y, n(ty), dtype, 27)
    gy = rand(rng, y.shape, dtype)
    ty.backward(t(gy))
    assert_close(fastconv.lp_pool_backward(gy, x, p, k, stride=s), n(tx.grad), dtype, 27)


@DT
@RANK
def test_global_pools_match_torch(rank, dtype, rng):
    x = rand(rng, (2, 3) + IN_SIZES[rank], dtype)
    adaptive_avg = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[rank - 1]
    adaptive_max = (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)[rank - 1]
    assert_close(fastconv.global_avg_pool(x), n(adaptive_avg(t(x), 1)), dtype, x[0, 0].size)
    np.testing.assert_array_equal(fastconv.global_max_pool(x), n(adaptive_max(t(x), 1)))


# ---- tensor in -> tensor out


@DT
def test_tensors_in_tensors_out(dtype, rng):
    x = t(rand(rng, (2, 4, 9, 8), dtype))
    w = t(rand(rng, (6, 2, 3, 3), dtype))
    b = t(rand(rng, (6,), dtype))
    td = TORCH_DTYPE[dtype]
    outs = {
        "conv": fastconv.conv(x, w, b, padding=1, groups=2),
        "conv_transpose": fastconv.conv_transpose(x, w.reshape(4, 3, 3, 3), stride=2),
        "max_pool": fastconv.max_pool(x, 2),
        "avg_pool": fastconv.avg_pool(x, 3, stride=2, padding=1),
        "lp_pool": fastconv.lp_pool(x.abs(), 2, 2),
        "global_avg_pool": fastconv.global_avg_pool(x),
        "global_max_pool": fastconv.global_max_pool(x),
        "conv_backward_bias": fastconv.conv_backward_bias(x),
    }
    for name, y in outs.items():
        assert isinstance(y, torch.Tensor), name
        assert y.dtype == td and y.device.type == "cpu", name
    y, idx = fastconv.max_pool(x, 2, return_indices=True)
    assert isinstance(idx, torch.Tensor) and idx.dtype == torch.int64
    u = fastconv.max_unpool(y, idx, 2, output_size=x.shape)
    assert isinstance(u, torch.Tensor) and u.dtype == td
    np.testing.assert_array_equal(
        u.numpy(), F.max_unpool2d(y, idx, 2, output_size=x.shape[2:]).numpy()
    )
    assert_close(
        outs["conv"], F.conv2d(x, w, b, padding=1, groups=2).numpy().astype(np.float64), dtype, 18
    )


@DT
def test_requires_grad_tensors_record_autograd(dtype, rng):
    """No silent detach: fastconv's own functions on tensors that require grad record autograd
    (through fastconv.torch's custom ops), with torch's gradients; under no_grad they do not."""
    x = t(rand(rng, (2, 4, 7, 6), dtype), True)
    w = t(rand(rng, (6, 4, 3, 3), dtype), True)
    b = t(rand(rng, (6,), dtype), True)
    kw = dict(stride=(2, 1), padding=((1, 0), (0, 1)))  # fastconv's own (low, high) padding
    y = fastconv.conv(x, w, b, **kw)
    want = F.conv2d(F.pad(x, (0, 1, 1, 0)), w, b, stride=(2, 1))
    assert y.requires_grad and y.grad_fn is not None and y.dtype == TORCH_DTYPE[dtype]
    assert_close(y.detach().numpy(), want.detach().numpy().astype(np.float64), dtype, 36)
    gy = t(rand(rng, tuple(y.shape), dtype))
    got = torch.autograd.grad(y, (x, w, b), gy)
    ref = torch.autograd.grad(want, (x, w, b), gy)
    for g, r, n in zip(got, ref, (54, 20, 20)):
        assert_close(g.numpy(), r.numpy().astype(np.float64), dtype, n)
    p = fastconv.max_pool(x, 2)
    assert p.requires_grad
    (gx,) = torch.autograd.grad(p.sum(), x)
    (rx,) = torch.autograd.grad(F.max_pool2d(x, 2).sum(), x)
    np.testing.assert_array_equal(gx.numpy(), rx.numpy())
    assert fastconv.avg_pool(x, 2).requires_grad
    assert fastconv.conv_backward_weight(x, gy, tuple(w.shape), **kw).requires_grad
    with torch.no_grad():
        assert not fastconv.conv(x, w, b, **kw).requires_grad
    assert x.grad is None and w.grad is None  # only torch.autograd.grad ran


def test_noncontiguous_tensors(rng):
    base = t(rand(rng, (2, 4, 8, 9)))
    x = base.transpose(2, 3)  # (2, 4, 9, 8), non-contiguous
    w = t(rand(rng, (3, 4, 2, 6)))[..., ::2]
    assert not x.is_contiguous() and not w.is_contiguous()
    y = fastconv.conv(x, w, stride=2)
    assert_close(y, F.conv2d(x, w, stride=2).numpy(), np.float64, 24)
    assert torch.equal(base, t(base.numpy().copy()))  # input unchanged


def test_adapter_follows_torchs_thread_count_unless_fastconv_was_told(monkeypatch):
    """Inside a framework (e.g. one DDP process per core pair) fastconv runs as many threads as
    torch does, unless the user chose fastconv's own count."""
    import fastconv.torch as fct
    from fastconv import _runtime

    before, torch_before = fastconv.get_num_threads(), torch.get_num_threads()
    x, w = torch.ones(1, 2, 8, 8), torch.ones(3, 2, 3, 3)
    try:
        monkeypatch.setattr(_runtime, "_threads_chosen", False)
        torch.set_num_threads(1)
        fct.conv2d(x, w)
        assert fastconv.get_num_threads() == 1
        fastconv.set_num_threads(3)  # the user's choice wins from now on
        fct.conv2d(x, w)
        assert fastconv.get_num_threads() == 3
    finally:
        torch.set_num_threads(torch_before)
        fastconv.set_num_threads(before)


def test_default_device_does_not_move_cpu_calls():
    import fastconv.torch as fct

    x, w = torch.ones(1, 2, 6, 6), torch.ones(3, 2, 3, 3)
    with torch.device("meta"):  # what torch.set_default_device sets for new tensors
        y = fct.conv2d(x, w)
        z = fastconv.conv(x, w)
    assert y.device.type == "cpu" and z.device.type == "cpu"
    np.testing.assert_array_equal(y.numpy(), z.numpy())
    assert float(y[0, 0, 0, 0]) == 18.0


@requires_torch
def test_kernels_on_torchs_openmp_threads_give_the_same_results(rng, monkeypatch):
    """share_torch_threads() hands the kernels' chunks to PyTorch's own OpenMP team (no second
    pool fighting its spinning workers): every algorithm, pass and pool gives bitwise the
    results of fastconv's own pool, and the own pool comes back with use_openmp_runtime('')."""
    from fastconv import _C, _runtime, _torch_threads

    # the own pool for the first results, and no switch on the first tensor of results()
    monkeypatch.setattr(_torch_threads, "_decided", True)
    _C.use_openmp_runtime("")
    x = torch.from_numpy(rng.uniform(-1, 1, (4, 8, 13, 11)).astype(np.float32))
    w = torch.from_numpy(rng.uniform(-1, 1, (6, 8, 3, 3)).astype(np.float32))
    gy = torch.from_numpy(rng.uniform(-1, 1, (4, 6, 13, 11)).astype(np.float32))

    def results():
        out = [fastconv.max_pool(x, 3, stride=2, return_indices=True)[1].double()]
        out += [fastconv.avg_pool(x, 2), fastconv.max_pool_backward(x, x, 1)]
        for algo in fastconv.algorithms("conv"):
            try:
                out.append(fastconv.conv(x, w, padding=1, algo=algo))
                out.append(fastconv.conv_backward_data(gy, w, x.shape, padding=1, algo=algo))
                out.append(fastconv.conv_backward_weight(x, gy, w.shape, padding=1, algo=algo))
            except NotImplementedError:
                continue
        return out

    threads = fastconv.get_num_threads()
    fastconv.set_num_threads(2)  # a real team even on one core
    try:
        own = results()
        runtime = _runtime.share_torch_threads()
        if not runtime:
            pytest.skip("no OpenMP runtime loaded by torch in this process (not Linux/libgomp)")
        assert fastconv.info()["thread_pool"] == runtime
        shared = results()
        assert len(shared) == len(own) > 6
        for a, b in zip(own, shared):
            assert torch.equal(a, b)
    finally:
        _C.use_openmp_runtime("")
        fastconv.set_num_threads(threads)
    assert fastconv.info()["thread_pool"] == "fastconv's own"
    assert "not loaded" in _C.use_openmp_runtime("/nonexistent/libgomp.so.1")


_FIRST_TENSOR_SCRIPT = """
import sys
import numpy as np
import torch
import fastconv
from fastconv import _C
print(_C.openmp_runtime() or "own")
fastconv.conv(np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32))
print(_C.openmp_runtime() or "own")
y = fastconv.conv(torch.ones(1, 2, 5, 5), torch.ones(3, 2, 3, 3))
assert float(y[0, 0, 1, 1]) == 18.0
print(_C.openmp_runtime() or "own")
"""


_FORK_SCRIPT = """
import os, signal, sys
import numpy as np
import torch
import fastconv
from fastconv import _C
torch.set_num_threads(2)
torch.mm(torch.ones(256, 256), torch.ones(256, 256))  # PyTorch's OpenMP team now exists
pid = os.fork()
if pid == 0:
    signal.alarm(60)
    y = fastconv.conv(torch.ones(1, 2, 40, 40), torch.ones(3, 2, 3, 3))
    ok = float(y[0, 0, 5, 5]) == 18.0 and _C.openmp_runtime() == ""
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
sys.exit(0 if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else 1)
"""


@requires_torch
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_keeps_its_own_pool_on_its_first_tensor():
    """A child forked before the parent's first tensor call stays on fastconv's own pool when it
    gets a tensor (PyTorch's OpenMP team does not survive fork; switching there would hang)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, FASTCONV_NUM_THREADS="2")
    env.pop("FASTCONV_OPENMP", None)
    proc = subprocess.run(
        [sys.executable, "-c", _FORK_SCRIPT], env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@requires_torch
@pytest.mark.parametrize("opt_out", [False, True])
def test_first_torch_tensor_moves_the_kernels_onto_torchs_threads(opt_out):
    """Without fastconv.torch, the first call on CPU torch tensors (not NumPy arrays) moves the
    kernels onto PyTorch's OpenMP team, so fastconv calls between PyTorch operators do not run
    a second thread team on the same cores; FASTCONV_OPENMP=0 keeps fastconv's own pool. A fresh
    process: the choice is process-wide and made once."""
    import os
    import subprocess
    import sys

    from fastconv import _torch_threads

    if not opt_out and not _torch_threads._torch_openmp_runtime(torch):
        pytest.skip("no OpenMP runtime loaded by torch in this process (not Linux/libgomp)")
    env = dict(os.environ, FASTCONV_NUM_THREADS="2")
    env.pop("FASTCONV_OPENMP", None)
    if opt_out:
        env["FASTCONV_OPENMP"] = "0"
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_TENSOR_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out[:2] == ["own", "own"], out
    if opt_out:
        assert out[2] == "own"
    else:
        assert out[2] != "own" and "omp" in os.path.basename(out[2]), out
