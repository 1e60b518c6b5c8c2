"""The problem -> plan -> backend path: one geometry and one selection per call signature, the
plan shared by the run and explain(), the transposed-conv mapping in the problem, the caches'
keys, and explain() / errors for torch and meta tensors."""

from __future__ import annotations

import fastconv
import numpy as np
import pytest
from conftest import assert_close, rand, requires_torch, torch
from fastconv import _C, _calls, functional, pooling
from fastconv._problem import PROBLEMS, clear_caches, conv_problem, pool_problem


@pytest.fixture
def counted_selections(monkeypatch):
    """Clears the caches and counts the selections the functional layer makes."""
    clear_caches()
    made = []
    real = _calls.select

    def counting(*args, **kwargs):
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(_calls, "select", counting)
    return made


def test_a_call_builds_its_geometry_once_and_selects_once(counted_selections):
    x = rand(np.random.default_rng(0), (2, 3, 17, 19), np.float32)
    w = rand(np.random.default_rng(1), (8, 3, 3, 3), np.float32)
    before = _C.geometry_constructions()
    y = fastconv.conv2d(x, w, stride=2, padding="same")
    assert _C.geometry_constructions() - before == 1
    assert len(counted_selections) == 1
    # The repeat, explain() and the same call with other arrays of the same signature build
    # nothing and select nothing.
    y2 = fastconv.conv2d(x, w, stride=2, padding="same")
    e = fastconv.explain(x, w, stride=2, padding="same")
    fastconv.conv2d(x + 1, w, stride=2, padding="same")
    assert _C.geometry_constructions() - before == 1
    assert len(counted_selections) == 1
    np.testing.assert_array_equal(y, y2)
    # explain() reads the entry the call made: same algorithm, same plan's workspace.
    (entry,) = PROBLEMS.values()
    assert e.algo == entry.selection.algo
    assert e.workspace_bytes == entry.plan.workspace_bytes
    assert entry.problem.plan(e.algo) is entry.plan  # the problem keeps one plan per algorithm


def test_a_pool_call_builds_its_geometry_once():
    clear_caches()
    x = np.arange(64, dtype=np.float64).reshape(1, 1, 8, 8)
    before = _C.geometry_constructions()
    for _ in range(3):
        y = fastconv.max_pool(x, 2)
    assert _C.geometry_constructions() - before == 1
    assert y[0, 0, 0, 0] == 9.0


def test_cached_calls_still_check_operands():
    """A call signature's checks run once; a different operand shape is a new signature."""
    x, w = np.ones((1, 2, 6, 6)), np.ones((3, 2, 3, 3))
    gy = fastconv.conv(x, w)
    fastconv.conv_backward_data(gy, w, x.shape)
    with pytest.raises(ValueError, match=r"grad_y must have shape \(1, 3, 4, 4\)"):
        fastconv.conv_backward_data(gy[:, :, :3], w, x.shape)
    with pytest.raises(ValueError, match="bias must have shape"):
        fastconv.conv(x, w, np.ones(4))
    fastconv.conv(x, w, np.ones(3))


@pytest.mark.parametrize("value", [True, 1.0])
def test_the_cache_keeps_bools_and_floats_apart_from_ints(value):
    x, w = np.ones((1, 2, 6, 6)), np.ones((3, 2, 3, 3))
    fastconv.conv(x, w, stride=1)  # cached with the int
    with pytest.raises(TypeError, match="stride"):
        fastconv.conv(x, w, stride=value)
    fastconv.conv(x, w, stride=(1, 1))
    with pytest.raises(TypeError, match="stride"):
        fastconv.conv(x, w, stride=(1, value))


def test_plans_follow_the_thread_count():
    """A plan records the threads it was made for; a run at another count re-plans."""
    rng = np.random.default_rng(3)
    x, w = rand(rng, (2, 16, 20, 20)), rand(rng, (16, 16, 3, 3))
    want = fastconv.conv(x, w, padding=1, algo="reference")
    threads = fastconv.get_num_threads()
    try:
        for n in (1, 3, threads):
            fastconv.set_num_threads(n)
            for algo in ("winograd", "implicit_gemm", "direct", "fft"):
                assert_close(fastconv.conv(x, w, padding=1, algo=algo), want, np.float64, 144)
    finally:
        fastconv.set_num_threads(threads)


def test_transposed_conv_problem_runs_the_adjoint_conv_passes():
    kw = dict(stride=2, padding=1, dilation=1, groups=2, output_padding=1)
    passes = {"forward": "backward_data", "backward_data": "forward"}
    x_shape, w_shape = (1, 4, 5, 5), (4, 3, 3, 3)
    fwd = conv_problem("conv_transpose", "forward", x_shape, w_shape, "float32", **kw)
    assert fwd.y_shape == (1, 6, 10, 10)
    for pass_ in ("forward", "backward_data", "backward_weight"):
        shape = fwd.y_shape if pass_ == "backward_data" else x_shape
        p = conv_problem("conv_transpose", pass_, shape, w_shape, "float32", **kw)
        assert p.conv_pass == passes.get(pass_, pass_)
        assert p.swap_operands == (pass_ == "backward_weight")
        conv_x, conv_w, _, _, pad_hi, _, groups, _ = p.conv_geometry
        assert conv_x == (1, 6, 10, 10) and conv_w == w_shape and groups == 2
        assert pad_hi == (0, 0)  # padding 1 minus output_padding 1
        assert p.x_shape == x_shape and p.y_shape == fwd.y_shape


def test_problems_resolve_padding_rules_in_the_geometry():
    p = conv_problem(
        "conv", "forward", (1, 1, 8, 7), (1, 1, 3, 4), "float32", padding="same", stride=2
    )
    assert p.y_shape == (1, 1, 4, 4)
    assert (p.pad_lo, p.pad_hi) == ((0, 1), (1, 2))  # odd totals: the extra unit at the end
    full = conv_problem(
        "conv", "forward", (1, 1, 5), (1, 1, 3), "float64", padding="full", dilation=2
    )
    assert (full.pad_lo, full.pad_hi, full.y_shape) == ((4,), (4,), (1, 1, 9))
    with pytest.raises(ValueError, match="padding"):
        conv_problem("conv_transpose", "forward", (1, 1, 5), (1, 1, 3), "float32", padding="same")
    unpool = pool_problem("max_unpool", "forward", (1, 2, 3, 3), "float32", 2)
    assert unpool.y_shape == (1, 2, 6, 6)


@requires_torch
def test_explain_takes_torch_and_meta_tensors():
    """The dtype is read from the tensor; a meta tensor is explained by its shape (CPU)."""
    x64, w64 = np.ones((1, 4, 9, 9)), np.ones((8, 4, 3, 3))
    cases = [
        (torch.ones(1, 4, 9, 9, dtype=torch.float64), x64),
        (torch.empty(1, 4, 9, 9, device="meta"), x64.astype(np.float32)),
    ]
    for tensor, array in cases:
        got = fastconv.explain(tensor, w64.shape, padding=1, pass_="backward_weight")
        want = fastconv.explain(array, w64.shape, padding=1, pass_="backward_weight")
        assert str(got) == str(want)


@requires_torch
def test_meta_tensors_are_refused_with_the_reason():
    x = torch.empty(1, 4, 9, 9, device="meta")
    with pytest.raises(ValueError, match="meta tensor"):
        fastconv.conv(x, torch.empty(8, 4, 3, 3, device="meta"))
    with pytest.raises(ValueError, match="meta tensor"):
        fastconv.max_pool(x, 2)


def test_public_functions_are_thin():
    """Every public function goes through the shared paths (no per-function flows)."""
    import inspect

    for module, shared in ((functional, "run_conv("), (pooling, "run_pool(")):  # the one flow
        for name in module.__all__ if hasattr(module, "__all__") else dir(module):
            fn = getattr(module, name)
            if (
                name.startswith("_")
                or not inspect.isfunction(fn)
                or fn.__module__ != module.__name__
            ):
                continue
            if name in ("explain", "conv_backward_bias", "global_avg_pool", "global_max_pool"):
                continue
            source = inspect.getsource(fn)
            assert (
                shared in source
                or "return conv(" in source
                or "pool(x," in source
                or "_conv(" in source
            ), name


def test_the_host_fast_path_gives_the_general_paths_results():
    """Repeated calls run the runner their first call left (fastconv/_problem.py, RUNNERS);
    operands it cannot take (strided views, other kinds) go the general way."""
    from fastconv._problem import RUNNERS

    clear_caches()
    rng = np.random.default_rng(5)
    x, w, b = rand(rng, (2, 4, 9, 9)), rand(rng, (6, 2, 3, 3)), rand(rng, (6,))
    kw = dict(stride=2, padding="same", groups=2)
    want = fastconv.conv(x, w, b, algo="reference", **kw)
    first = fastconv.conv(x, w, b, **kw)
    # the reference call and this one: two signatures, each also under its quick key
    assert len(RUNNERS) == 4
    for _ in range(2):
        np.testing.assert_array_equal(fastconv.conv(x, w, b, **kw), first)
    assert_close(first, want, np.float64, 18)
    strided = np.asfortranarray(x)  # not C-contiguous: no signature, the general path copies
    np.testing.assert_array_equal(fastconv.conv(strided, w, b, **kw), first)
    gy = rand(rng, first.shape)
    for _ in range(2):  # backward passes and pools too
        gx = fastconv.conv_backward_data(gy, w, x.shape, **kw)
        gw = fastconv.conv_backward_weight(x, gy, w.shape, **kw)
        p = fastconv.avg_pool(x, 3, stride=2, padding=1)
        gp = fastconv.avg_pool_backward(p, x.shape, 3, stride=2, padding=1)
    assert_close(
        gx, fastconv.conv_backward_data(gy, w, x.shape, algo="reference", **kw), np.float64, 27
    )
    assert_close(
        gw, fastconv.conv_backward_weight(x, gy, w.shape, algo="reference", **kw), np.float64, 50
    )
    assert gp.shape == x.shape and p.shape == (2, 4, 5, 5)
    if torch is not None:
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        for bias in (torch.from_numpy(b), b):  # a NumPy bias with torch tensors: its own runner
            for _ in range(2):
                yt = fastconv.conv(xt, wt, bias, **kw)
                assert isinstance(yt, torch.Tensor)
                np.testing.assert_array_equal(yt.numpy(), first)
        for _ in range(2):
            pt = fastconv.max_pool(xt, 2)
            assert isinstance(pt, torch.Tensor)
        np.testing.assert_array_equal(pt.numpy(), fastconv.max_pool(x, 2))


def test_the_quick_forward_key_runs_what_the_general_path_runs():
    """Forward calls without a bias on NumPy arrays with scalar parameters are looked up by a
    shorter key (fastconv/_calls.py, run_conv): repeats give the general path's result, and
    what that key must not mix up (another op on the same shapes, another dtype, a view the
    kernels cannot take, a bool or float parameter) stays apart."""
    from fastconv._problem import RUNNERS

    clear_caches()
    rng = np.random.default_rng(7)
    x, w = rand(rng, (1, 4, 9, 9), np.float32), rand(rng, (4, 4, 3, 3), np.float32)
    want = fastconv.conv(x, w, stride=2, padding=1, algo="reference")
    first = fastconv.conv(x, w, stride=2, padding=1)
    assert any(len(k) == 4 and k[0][0] == "conv" for k in RUNNERS)  # the quick key was stored
    for _ in range(2):
        np.testing.assert_array_equal(fastconv.conv(x, w, stride=2, padding=1), first)
    assert_close(first, want, np.float32, 36)
    np.testing.assert_array_equal(
        fastconv.conv(np.asfortranarray(x), w, stride=2, padding=1), first
    )
    for _ in range(2):  # the transposed conv of the same operand shapes: its own runner
        yt = fastconv.conv_transpose(x, w, stride=2, padding=1)
        assert yt.shape == (1, 4, 17, 17)
    assert_close(
        yt, fastconv.conv_transpose(x, w, stride=2, padding=1, algo="reference"), np.float32, 36
    )
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for _ in range(2):
        y64 = fastconv.conv(x64, w64, stride=2, padding=1)
        assert y64.dtype == np.float64
    assert_close(
        y64, fastconv.conv(x64, w64, stride=2, padding=1, algo="reference"), np.float64, 36
    )
    with pytest.raises(TypeError, match="padding"):  # equal to the cached 1, not of its type
        fastconv.conv(x, w, stride=2, padding=True)
    for _ in range(2):  # tuples of parameters: their elements' types are part of the key
        np.testing.assert_array_equal(fastconv.conv(x, w, stride=(2, 2), padding=(1, 1)), first)
    with pytest.raises(TypeError, match="padding"):
        fastconv.conv(x, w, stride=(2, 2), padding=(1, True))
    with pytest.raises(TypeError, match="algo"):
        fastconv.conv(x, w, stride=2, padding=1, algo=["auto"])
    with pytest.raises(TypeError, match="padding"):
        fastconv.conv(x, w, stride=2, padding=1.0)


def test_the_quick_forward_key_takes_a_numpy_bias_and_still_checks_it():
    """A NumPy bias joins the quick key by its shape and dtype: repeats give the general
    path's result with each call's bias values (not the first call's), a bias of another shape
    or dtype still gets the general path's errors, a strided bias view is served correctly."""
    from fastconv._problem import RUNNERS

    clear_caches()
    rng = np.random.default_rng(8)
    x, w = rand(rng, (1, 6, 7, 7), np.float32), rand(rng, (5, 6, 3, 3), np.float32)
    b = rand(rng, (5,), np.float32)
    want = fastconv.conv(x, w, b, padding=1, algo="reference")
    first = fastconv.conv(x, w, b, padding=1)
    assert any(len(k) == 4 and len(k[0]) == 8 for k in RUNNERS)  # stored with the bias's part
    assert_close(first, want, np.float32, 54)
    for _ in range(2):
        np.testing.assert_array_equal(fastconv.conv(x, w, b, padding=1), first)
    b2 = b + 1
    np.testing.assert_allclose(fastconv.conv(x, w, b2, padding=1), first + 1, rtol=1e-6, atol=1e-5)
    no_bias = fastconv.conv(x, w, padding=1)  # its own key
    np.testing.assert_allclose(no_bias, first - b[:, None, None], rtol=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match="bias"):
        fastconv.conv(x, w, np.zeros(4, np.float32), padding=1)
    with pytest.raises((TypeError, ValueError), match="bias"):
        fastconv.conv(x, w, b.astype(np.float64), padding=1)
    strided = np.repeat(b, 2)[::2]
    for _ in range(2):
        np.testing.assert_array_equal(fastconv.conv(x, w, strided, padding=1), first)


def test_the_quick_pool_key_runs_what_the_general_path_runs():
    """Pooling forwards on one NumPy array use the quick key too (fastconv/_calls.py,
    run_pool): with and without indices, kept apart from other kinds and parameter types."""
    from fastconv._problem import RUNNERS

    clear_caches()
    rng = np.random.default_rng(8)
    x = rand(rng, (2, 3, 9, 10), np.float32)
    want = fastconv.max_pool(x.astype(np.float64), 3, stride=2, padding=1)
    for _ in range(3):
        y = fastconv.max_pool(x, 3, stride=2, padding=1)
        yi, idx = fastconv.max_pool(x, 3, stride=2, padding=1, return_indices=True)
        a = fastconv.avg_pool(x, 3, stride=2, padding=1)
    assert any(len(k) == 4 and k[0][0] == "max_pool" for k in RUNNERS)  # the quick key was stored
    np.testing.assert_array_equal(y, want.astype(np.float32))
    np.testing.assert_array_equal(yi, y)
    np.testing.assert_array_equal(
        np.take_along_axis(x.reshape(2, 3, -1), idx.reshape(2, 3, -1), 2), y.reshape(2, 3, -1)
    )
    assert_close(a, fastconv.avg_pool(x.astype(np.float64), 3, stride=2, padding=1), np.float32, 9)
    np.testing.assert_array_equal(
        fastconv.max_pool(np.asfortranarray(x), 3, stride=2, padding=1), y
    )
    for _ in range(2):
        np.testing.assert_array_equal(fastconv.max_pool(x, (3, 3), stride=(2, 2), padding=1), y)
    with pytest.raises(TypeError, match="padding"):  # equal to the cached 1, not of its type
        fastconv.max_pool(x, 3, stride=2, padding=True)
    with pytest.raises(TypeError, match="stride"):
        fastconv.max_pool(x, (3, 3), stride=(2, True), padding=1)


def test_a_backend_registered_later_serves_repeated_calls():
    """Neither fast-path key outlives the backend that made its runner."""
    from fastconv import backends
    from fastconv.backends.cpu import CpuBackend

    class Counting(CpuBackend):
        runs = 0

        def run_conv(self, *args, **kwargs):
            Counting.runs += 1
            return super().run_conv(*args, **kwargs)

    x, w = np.ones((1, 2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32)
    want = fastconv.conv(x, w, padding=1)
    fastconv.conv(x, w, padding=1)  # cached under both keys
    with backends.registered(Counting()):
        for _ in range(2):
            np.testing.assert_array_equal(fastconv.conv(x, w, padding=1), want)
    assert Counting.runs == 1  # the first call there, then its own runner


def test_fast_path_runners_keep_no_operand_alive():
    import gc
    import weakref

    clear_caches()
    x, w = np.ones((1, 2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32)
    fastconv.conv(x, w)
    fastconv.max_pool(x, 2)
    refs = [weakref.ref(x), weakref.ref(w)]
    if torch is not None:
        xt = torch.ones(1, 2, 6, 6)
        fastconv.conv(xt, torch.ones(3, 2, 3, 3))
        refs.append(weakref.ref(xt))
        del xt
    del x, w
    gc.collect()
    assert all(r() is None for r in refs)


def test_fast_path_takes_only_what_the_kernels_take():
    """Repeats of calls the general path converts (byte order, mixed kinds) give the same."""
    rng = np.random.default_rng(6)
    x, w = rand(rng, (1, 2, 6, 6), np.float32), rand(rng, (3, 2, 3, 3), np.float32)
    want = fastconv.conv(x, w)
    swapped = x.astype(">f4")
    for _ in range(3):
        np.testing.assert_array_equal(fastconv.conv(swapped, w), want)
        np.testing.assert_array_equal(fastconv.max_pool(swapped, 2), fastconv.max_pool(x, 2))
    if torch is not None:
        b = rand(rng, (3,), np.float32)
        with_bias = fastconv.conv(x, w, b)
        for _ in range(3):  # NumPy x and w with a torch bias, and the other way round
            got = fastconv.conv(x, w, torch.from_numpy(b))
            np.testing.assert_array_equal(np.asarray(got), with_bias)
            got = fastconv.conv(torch.from_numpy(x), torch.from_numpy(w), b)
            np.testing.assert_array_equal(got.numpy(), with_bias)


@requires_torch
def test_empty_batches_of_tensors():
    w = torch.ones(3, 2, 3, 3)
    for _ in range(2):
        y = fastconv.conv(torch.zeros(0, 2, 5, 5), w)
        assert isinstance(y, torch.Tensor) and tuple(y.shape) == (0, 3, 3, 3)
        gw = fastconv.conv_backward_weight(torch.zeros(0, 2, 5, 5), y, w.shape)
        assert tuple(gw.shape) == (3, 2, 3, 3) and not gw.any()
        assert not fastconv.conv_backward_bias(y).any()
        assert tuple(fastconv.max_pool(torch.zeros(0, 2, 4, 4), 2).shape) == (0, 2, 2, 2)


def test_missing_arrays_are_typeerrors():
    x = np.ones((1, 1, 4, 4))
    with pytest.raises(TypeError, match="indices"):
        fastconv.max_unpool(x, None, 2)
    with pytest.raises(TypeError, match="x_shape"):
        fastconv.avg_pool_backward(np.ones((1, 1, 2, 2)), None, 2)


@requires_torch
def test_tensors_without_strided_storage_are_typeerrors():
    w = torch.ones(3, 2, 3, 3)
    with pytest.raises(TypeError, match="x"):
        fastconv.conv(torch.ones(1, 2, 5, 5).to_sparse(), w)


def test_replanned_after_a_thread_change_once():
    """After set_num_threads the problem's plan for the new count is made once and reused;
    explain() reports the plan that runs."""
    rng = np.random.default_rng(7)
    x, w = rand(rng, (1, 1, 4096)), rand(rng, (1, 1, 257))
    threads = fastconv.get_num_threads()
    try:
        fastconv.conv(x, w, algo="fft")
        fastconv.set_num_threads(threads + 1)
        fastconv.conv(x, w, algo="fft")
        problem = conv_problem("conv", "forward", x.shape, w.shape, "float64")
        (entry,) = [e for e in PROBLEMS.values() if e.problem.x_shape == x.shape]
        assert entry.problem.plan("fft").threads == threads + 1
        assert entry.problem.plan("fft") is entry.problem.plan("fft")
        del problem
    finally:
        fastconv.set_num_threads(threads)


def test_plans_of_another_problem_are_refused():
    a = conv_problem("conv", "forward", (1, 2, 6, 6), (3, 2, 3, 3), "float32")
    b = conv_problem("conv", "forward", (1, 2, 9, 9), (3, 2, 3, 3), "float64")
    x, w = np.ones((1, 2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="plan"):
        _C.conv(a, b.plan("implicit_gemm"), x, w, None, np.empty((1, 3, 4, 4), np.float32))
