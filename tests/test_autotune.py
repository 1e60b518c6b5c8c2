"""algo="autotune" (fastconv/autotune.py): the winner is an applicable algorithm and its results
are auto's; it is timed once per key, stored atomically in the cache file of
FASTCONV_CACHE_DIR and read back in a new process; unreadable files and entries of another
version or ISA are ignored; `fastconv tune` fills the cache; explain() says where the choice
came from. Every test uses its own cache directory (tmp_path)."""

from __future__ import annotations

import json
import os
import textwrap

import fastconv
import numpy as np
import pytest
from conftest import assert_close, rand, requires_torch, run_python, torch
from fastconv import _problem, autotune, selection
from fastconv.backends import backend_for_device
from fastconv.cli import main as cli_main


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache directory, empty caches, 1 thread; counts the measurements made."""
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path / "cache"))
    threads = fastconv.get_num_threads()
    fastconv.set_num_threads(1)
    _problem.clear_caches()
    measured = []
    real = autotune.measure

    def counting(problem, backend, candidates):
        measured.append((problem.op, problem.pass_, tuple(candidates)))
        return real(problem, backend, candidates)

    monkeypatch.setattr(autotune, "measure", counting)
    yield tmp_path / "cache" / "autotune.json", measured
    _problem.clear_caches()
    fastconv.set_num_threads(threads)


def _x_w(rng, x_shape, w_shape, dtype=np.float32):
    return rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)


# (op, x shape, w shape, parameters): dense 3x3, strided transposed conv, depthwise, 1-D, 3-D
CASES = [
    ("conv", (2, 8, 12, 12), (16, 8, 3, 3), dict(padding=1)),
    ("conv", (1, 6, 9, 11), (6, 1, 3, 3), dict(padding=1, groups=6)),
    ("conv", (2, 4, 40), (8, 4, 5), dict(stride=2, dilation=2)),
    ("conv", (1, 3, 5, 6, 6), (4, 3, 3, 3, 3), dict(padding=(1, 0, 1))),
    ("conv_transpose", (2, 8, 7, 7), (8, 4, 4, 4), dict(stride=2, padding=1, output_padding=1)),
]


def _passes(op, x, w, params, algo):
    """The three passes of one layer, run with `algo`."""
    rng = np.random.default_rng(5)
    if op == "conv":
        y = fastconv.conv(x, w, algo=algo, **params)
        gy = rand(rng, y.shape, x.dtype)
        dx = fastconv.conv_backward_data(gy, w, x.shape, algo=algo, **params)
        dw = fastconv.conv_backward_weight(x, gy, w.shape, algo=algo, **params)
    else:
        y = fastconv.conv_transpose(x, w, algo=algo, **params)
        gy = rand(rng, y.shape, x.dtype)
        dx = fastconv.conv_transpose_backward_data(gy, w, algo=algo, **params)
        dw = fastconv.conv_transpose_backward_weight(x, gy, w.shape, algo=algo, **params)
    return y, dx, dw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op,x_shape,w_shape,params", CASES)
def test_the_winner_is_a_candidate_and_computes_what_auto_does(
    cache, rng, op, x_shape, w_shape, params, dtype
):
    x, w = _x_w(rng, x_shape, w_shape, dtype)
    tuned = _passes(op, x, w, params, "autotune")
    auto = _passes(op, x, w, params, "auto")
    for got, want in zip(tuned, auto):
        assert got.dtype == want.dtype
        assert_close(got, want, dtype, reduction=int(np.prod(w_shape)) * x_shape[0])
    backend = backend_for_device("cpu")
    entries = [e for e in _problem.PROBLEMS.values() if e.selection.tuning is not None]
    assert len(entries) == 3  # one per pass
    for entry in entries:
        applicable = selection.candidates(entry.problem, backend)
        assert entry.selection.algo in applicable
        tuning = entry.selection.tuning
        assert "reference" not in tuning.times_ms or applicable == ["reference"]
        assert set(tuning.times_ms) <= set(applicable)


def test_a_key_is_timed_once_and_repeats_take_the_fast_path(cache, rng, monkeypatch):
    path, measured = cache
    x, w = _x_w(rng, (1, 8, 10, 10), (8, 8, 3, 3))
    y1 = fastconv.conv(x, w, padding=1, algo="autotune")
    assert len(measured) == 1
    y2 = fastconv.conv(x, w, padding=1, algo="autotune")
    fastconv.explain(x, w, padding=1, algo="autotune")
    np.testing.assert_array_equal(y1, y2)
    # A third call goes straight to the runner RUNNERS holds: nothing is prepared or selected.
    with monkeypatch.context() as m:
        m.setattr("fastconv._calls.prepare_call", None)
        np.testing.assert_array_equal(fastconv.conv(x, w, padding=1, algo="autotune"), y1)
    # With the process's caches gone (file deleted too), the in-memory layer still answers.
    os.remove(path)
    _problem.PROBLEMS.clear()
    _problem.CALLS.clear()
    _problem.RUNNERS.clear()
    fastconv.conv(x, w, padding=1, algo="autotune")
    assert len(measured) == 1
    # Another thread count is another key.
    fastconv.set_num_threads(2)
    _problem.clear_caches()
    fastconv.conv(x, w, padding=1, algo="autotune")
    assert len(measured) == 2


def test_the_file_is_written_atomically_and_read_by_a_new_process(cache, rng, monkeypatch):
    path, measured = cache
    replaced = []
    real_replace = os.replace

    def recording_replace(src, dst):
        replaced.append((str(src), str(dst)))
        assert json.loads(open(src).read())["format"] == autotune.FORMAT  # complete before
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    x, w = _x_w(rng, (1, 8, 10, 10), (8, 8, 3, 3))
    fastconv.conv(x, w, padding=1, algo="autotune")
    algo = fastconv.explain(x, w, padding=1, algo="autotune").algo
    assert len(replaced) == 1
    src, dst = replaced[0]
    assert dst == str(path) and os.path.dirname(src) == str(path.parent)
    assert sorted(os.listdir(path.parent)) == ["autotune.json"]  # no temporary file left
    (entry,) = json.loads(path.read_text())["entries"].values()
    assert entry["algo"] == algo and entry["threads"] == 1
    code = textwrap.dedent(
        """
        import numpy as np, fastconv
        from fastconv import autotune
        def fail(*args):
            raise AssertionError("timed again")
        autotune.measure = fail
        fastconv.set_num_threads(1)
        x = np.ones((1, 8, 10, 10), np.float32); w = np.ones((8, 8, 3, 3), np.float32)
        fastconv.conv(x, w, padding=1, algo="autotune")
        e = fastconv.explain(x, w, padding=1, algo="autotune")
        print(e.algo); print(e.reason)
        """
    )
    proc = run_python(code, {"FASTCONV_CACHE_DIR": str(path.parent)})
    assert proc.returncode == 0, proc.stderr
    got_algo, reason = proc.stdout.splitlines()[:2]
    assert got_algo == algo
    assert f"from the autotune cache {path}" in reason


@pytest.mark.parametrize("content", ["{not json", "[]", '{"format": 1, "entries": []}', ""])
def test_an_unreadable_file_is_ignored_with_a_warning_and_rewritten(cache, rng, content):
    path, measured = cache
    path.parent.mkdir(parents=True)
    path.write_text(content)
    autotune._WARNED.clear()
    x, w = _x_w(rng, (1, 4, 8, 8), (4, 4, 3, 3))
    with pytest.warns(RuntimeWarning, match="autotune cache"):
        y = fastconv.conv(x, w, padding=1, algo="autotune")
    assert_close(y, fastconv.conv(x, w, padding=1), np.float32, reduction=36)
    assert len(measured) == 1
    assert len(json.loads(path.read_text())["entries"]) == 1  # replaced by a valid file


def test_entries_of_another_version_or_isa_are_ignored(cache, rng):
    path, measured = cache
    x, w = _x_w(rng, (1, 4, 8, 8), (4, 4, 3, 3))
    fastconv.conv(x, w, padding=1, algo="autotune")
    entries = json.loads(path.read_text())["entries"]
    (key,) = entries
    version, isa = autotune.build_identity()
    # Under this build's key, but recorded by another version / ISA; and stale keys.
    for field, value in (("version", "0.0.1"), ("isa", "scalar")):
        stale = dict(entries[key], algo="direct", **{field: value})
        other = key.replace(version, "0.0.1") if field == "version" else key.replace(isa, "avx2")
        data = {"format": 1, "entries": {key: stale, other: dict(stale)}}
        path.write_text(json.dumps(data))
        _problem.clear_caches()
        before = len(measured)
        e = fastconv.explain(x, w, padding=1, algo="autotune")
        assert len(measured) == before + 1, field  # timed again
        assert "measured now" in e.reason
        kept = json.loads(path.read_text())["entries"]
        assert kept[key]["version"] == version and kept[key]["isa"] == isa
        # Another version's entries are pruned when the file is rewritten; another ISA's stay
        # (FASTCONV_ISA can select it in the same installation).
        assert (other in kept) == (field == "isa")


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert autotune.cache_path() == tmp_path / "a" / "autotune.json"
    monkeypatch.delenv("FASTCONV_CACHE_DIR")
    assert autotune.cache_path() == tmp_path / "xdg" / "fastconv" / "autotune.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert autotune.cache_path() == tmp_path / "home" / ".cache" / "fastconv" / "autotune.json"


def test_explain_says_where_the_choice_came_from(cache, rng):
    path, measured = cache
    x, w = _x_w(rng, (1, 8, 10, 10), (8, 8, 3, 3))
    e = fastconv.explain(x, w, padding=1, algo="autotune", pass_="backward_weight")
    assert f"measured now, stored in {path}" in e.reason
    assert e.algo in e.candidates and f"{e.algo} " in e.reason  # the winner's time is listed
    _problem.clear_caches()  # a new process, as far as the caches go
    e2 = fastconv.explain(x, w, padding=1, algo="autotune", pass_="backward_weight")
    assert f"from the autotune cache {path}" in e2.reason and e2.algo == e.algo
    assert len(measured) == 1


class _Backend:
    """A stand-in backend: `usable` algorithms run the problem, the rest decline."""

    def __init__(self, device, usable):
        self.device, self.usable = device, usable

    def algorithms(self, op):
        return ["reference", "implicit_gemm", "depthwise"]

    def conv_unsupported_reason(self, problem, algo, forced=False):
        return "" if algo in self.usable else "declined"


def test_a_single_candidate_besides_the_reference_is_not_timed(cache):
    problem = _problem.conv_problem("conv", "forward", (1, 4, 8, 8), (4, 4, 3, 3), "float32")
    got = selection.select(problem, _Backend("cpu", ("reference", "implicit_gemm")), "autotune")
    assert got.algo == "implicit_gemm" and "the only applicable algorithm" in got.reason
    got = selection.select(problem, _Backend("cpu", ("reference",)), "autotune")
    assert got.algo == "reference"
    assert cache[1] == []


def test_an_unwritable_cache_keeps_winners_in_memory(cache, rng, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(blocker / "sub"))  # a directory under a file
    autotune._WARNED.clear()
    x, w = _x_w(rng, (1, 4, 8, 8), (4, 4, 3, 3))
    with pytest.warns(RuntimeWarning, match="cannot write"):
        y = fastconv.conv(x, w, padding=1, algo="autotune")
    assert_close(y, fastconv.conv(x, w, padding=1), np.float32, reduction=36)
    assert "memory only" in fastconv.explain(x, w, padding=1, algo="autotune").reason


def test_on_a_gpu_backend_autotune_is_auto(cache):
    problem = _problem.conv_problem("conv", "forward", (1, 4, 8, 8), (4, 4, 3, 3), "float32")
    got = selection.select(problem, _Backend("cuda", ("implicit_gemm",)), "autotune")
    assert got.algo == "implicit_gemm" and got.tuning is None
    assert "autotune times CPU algorithms only" in got.reason
    assert cache[1] == []


def test_fastconv_tune_fills_the_cache_for_a_suite(cache, tmp_path, capsys):
    path, measured = cache
    suite = tmp_path / "tiny.json"
    layers = {
        "conv": [
            {"name": "a", "n": 1, "c": 4, "in": [9, 9], "k": 8, "kernel": [3, 3], "padding": 1},
            {"name": "b", "n": 2, "c": 8, "in": [30], "k": 4, "kernel": [5], "stride": 2},
        ],
        "conv_transpose": [
            {"name": "up", "n": 1, "c": 8, "in": [5, 5], "k": 4, "kernel": [2, 2], "stride": 2}
        ],
        "pool": [{"name": "p", "kind": "max", "n": 1, "c": 4, "in": [8, 8], "kernel": [2, 2]}],
    }
    suite.write_text(json.dumps(layers))
    assert cli_main(["tune", "--suite", str(suite), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {path}" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["a"], ["b"], ["up"])]
    assert len(rows) == 9  # 3 conv layers x 3 passes; the pool has no algorithm choice
    stored = json.loads(path.read_text())["entries"]
    assert len(stored) == len(measured) >= 6
    assert all(r[5] in ("measured", "only") for r in rows)
    for r in rows:  # winner and auto are algorithms of this build
        assert r[2] in fastconv.algorithms() and r[3] in fastconv.algorithms()
    # A second run reads the cache; the winners' calls read it too.
    _problem.clear_caches()
    assert cli_main(["tune", "--suite", str(suite), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert len(measured) == len(stored)
    assert "cache" in out
    assert cli_main(["tune", "--suite", str(suite), "--passes", "sideways"]) == 2


@requires_torch
def test_torch_tensors_and_autograd_take_autotune(cache, rng):
    x = torch.from_numpy(rand(rng, (2, 4, 9, 9), np.float64)).requires_grad_(True)
    w = torch.from_numpy(rand(rng, (6, 4, 3, 3), np.float64)).requires_grad_(True)
    y = fastconv.conv(x, w, stride=2, padding=1, algo="autotune")
    y.sum().backward()
    ref = torch.nn.functional.conv2d(x, w, stride=2, padding=1)
    gx, gw = torch.autograd.grad(ref.sum(), (x, w))
    assert_close(y.detach().numpy(), ref.detach().numpy(), np.float64)
    assert_close(x.grad.numpy(), gx.numpy(), np.float64)
    assert_close(w.grad.numpy(), gw.numpy(), np.float64)
    assert len(cache[1]) == 3  # forward, backward data, backward weight


def test_unknown_algorithm_names_still_fail(cache, rng):
    x, w = _x_w(rng, (1, 4, 8, 8), (4, 4, 3, 3))
    with pytest.raises(ValueError, match="'autotune'"):
        fastconv.conv(x, w, algo="autotuned")


def test_a_candidate_that_fails_to_run_is_left_out(cache, rng, monkeypatch):
    from fastconv.backends.cpu import CpuBackend

    real = CpuBackend.conv_plan
    auto_algo = fastconv.explain((1, 8, 10, 10), (8, 8, 3, 3), padding=1).algo

    def failing(self, problem, algo):
        if algo != auto_algo:
            raise MemoryError("no room for its workspace")
        return real(self, problem, algo)

    x, w = _x_w(rng, (1, 8, 10, 10), (8, 8, 3, 3))
    monkeypatch.setattr(CpuBackend, "conv_plan", failing)
    e = fastconv.explain(x, w, padding=1, algo="autotune")
    assert e.algo == auto_algo and "not fully timed" in e.reason
    assert_close(fastconv.conv(x, w, padding=1, algo="autotune"), fastconv.conv(x, w, padding=1))


def test_autos_choice_stays_unless_another_is_clearly_faster():
    assert autotune.winner({"winograd": 1.0, "implicit_gemm": 1.04}, "implicit_gemm") == (
        "implicit_gemm"
    )
    assert autotune.winner({"winograd": 1.0, "implicit_gemm": 1.2}, "implicit_gemm") == "winograd"
    assert autotune.winner({"winograd": 1.0, "im2col": 0.9}, "implicit_gemm") == "im2col"
