"""Tests for the `fastconv bench` driver (python/fastconv/benchmark/) on tiny synthetic suites."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

fastconv = pytest.importorskip("fastconv")
benchmark = pytest.importorskip("fastconv.benchmark")

REPO = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_SCIPY = importlib.util.find_spec("scipy") is not None
FAST = ["--repeats", "1", "--min-time", "0"]  # correctness of the driver, not of the timings
ALL_PASSES = ["--passes", "forward,backward_data,backward_weight"]

# Awkward small sizes: every op, rank and argument the driver maps onto fastconv and the peers.
TINY_SUITE = {
    "about": "tiny synthetic suite for tests/test_benchmark.py",
    "conv": [
        {
            "name": "tiny.conv2d",
            "n": 2,
            "c": 3,
            "in": [9, 11],
            "k": 5,
            "kernel": [3, 2],
            "padding": [1, 0],
        },
        {
            "name": "tiny.conv1d.grouped",
            "n": 1,
            "c": 6,
            "in": [23],
            "k": 4,
            "kernel": [3],
            "stride": 2,
            "dilation": 2,
            "groups": 2,
        },
        {
            "name": "tiny.conv3d.depthwise",
            "n": 1,
            "c": 4,
            "in": [5, 6, 7],
            "k": 4,
            "kernel": [3, 3, 3],
            "padding": 1,
            "groups": 4,
        },
        {
            "name": "tiny.signal1d",
            "n": 1,
            "c": 1,
            "in": [301],
            "k": 1,
            "kernel": [17],
            "padding": 3,
        },
    ],
    "conv_transpose": [
        {
            "name": "tiny.convT2d",
            "n": 2,
            "c": 4,
            "in": [5, 6],
            "k": 3,
            "kernel": [4, 3],
            "stride": 2,
            "padding": 1,
        },
    ],
    "pool": [
        {
            "name": "tiny.maxpool2d",
            "kind": "max",
            "n": 1,
            "c": 3,
            "in": [9, 10],
            "kernel": [3, 3],
            "stride": 2,
            "padding": 1,
        },
        {
            "name": "tiny.avgpool1d",
            "kind": "avg",
            "n": 2,
            "c": 3,
            "in": [17],
            "kernel": [3],
            "stride": 1,
            "padding": 1,
        },
    ],
}


def write_suite(directory: Path, suite: dict, name: str = "tiny.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(suite))
    return path


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path, TINY_SUITE)


def run_json(args: list[str], tmp_path: Path) -> tuple[int, dict]:
    out = tmp_path / "result.json"
    code = benchmark.main([*args, *FAST, "--json", str(out)])
    return code, (json.loads(out.read_text()) if out.exists() else {})


def expected_fastconv(op: str) -> list[set[str]]:
    """Pools whose functions take no `algo` are timed once, as "auto"."""
    return [set(fastconv.algorithms(op))] + ([{"auto"}] if op.endswith("_pool") else [])


def test_rows_cover_every_algorithm_and_peer(tiny_suite: Path, tmp_path: Path, capsys) -> None:
    threads_before = fastconv.get_num_threads()
    code, data = run_json(["--suite", str(tiny_suite), *ALL_PASSES, "--threads", "1"], tmp_path)
    assert code == 0
    assert fastconv.get_num_threads() == threads_before  # the driver restores global state
    assert data["metadata"]["threads"] == 1 and data["metadata"]["dtype"] == "float32"
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert set(layers) == {
        e["name"] for section in ("conv", "conv_transpose", "pool") for e in TINY_SUITE[section]
    }
    for name, layer in layers.items():
        passes = ["forward", "backward_data"] + (
            [] if layer["op"].endswith("pool") else ["backward_weight"]
        )
        for pass_ in passes:
            rows = [r for r in data["rows"] if r["layer"] == name and r["pass"] == pass_]
            ours = {r["candidate"] for r in rows if r["kind"] == "fastconv"}
            assert ours in expected_fastconv(layer["op"]), (name, pass_, ours)
            peers = {r["candidate"] for r in rows if r["kind"] == "peer"}
            want = {"torch"} if HAS_TORCH else set()
            if name == "tiny.signal1d" and HAS_SCIPY:
                want |= {"scipy.fftconvolve", "scipy.oaconvolve"}
            assert peers == want, (name, pass_)
            assert sum(r["best"] for r in rows) == 1
    for row in data["rows"]:
        assert row["status"] in ("ok", "unsupported"), row
        if row["status"] == "ok":
            check_row_numbers(row)
    assert "tiny.conv3d.depthwise" in capsys.readouterr().out


def check_row_numbers(row: dict) -> None:
    assert row["runs"] >= 1 and all(t > 0 for t in row["times_ms"])
    assert row["median_ms"] > 0
    assert math.isclose(row["gflops"], row["flops"] / row["median_ms"] / 1e6, rel_tol=1e-9)
    assert all(ratio > 0 for ratio in row["ratios"].values())
    assert row["candidate"] not in row["ratios"]


@pytest.mark.skipif(not HAS_TORCH, reason="the peer ISA is PyTorch's")
def test_metadata_records_the_peer_isa_and_warns_on_a_one_sided_cap(
    tiny_suite: Path, tmp_path: Path
) -> None:
    import torch
    from fastconv.benchmark.report import isa_note

    code, data = run_json(["--suite", str(tiny_suite), "--filter", "tiny.conv2d$"], tmp_path)
    assert code == 0
    meta = data["metadata"]
    assert meta["peer_isa"]["torch_aten"] == torch.backends.cpu.get_cpu_capability()
    # fastconv capped at AVX2 on an AVX-512 CPU against uncapped PyTorch: the ratios compare two
    # instruction sets, which the header says (and stops saying once oneDNN is capped too)
    base = {"isa": "avx2", "cpu_features": ["avx2", "fma", "avx512f"]}
    uncapped = {"torch_aten": "AVX512", "onednn_max_cpu_isa": None}
    note = isa_note({**base, "peer_isa": uncapped})
    assert note is not None and "ONEDNN_MAX_CPU_ISA=AVX2" in note
    aten_only = {"torch_aten": "AVX2", "onednn_max_cpu_isa": None}
    assert isa_note({**base, "peer_isa": aten_only}) is not None  # oneDNN still runs AVX-512
    both = {"torch_aten": "AVX2", "onednn_max_cpu_isa": "AVX2"}
    assert isa_note({**base, "peer_isa": both}) is None  # a PyTorch without MKL
    # with MKL, whose sgemm (PyTorch's GEMM-shaped convolutions) ignores the other two caps
    mkl = {**both, "torch_mkl": True}
    note = isa_note({**base, "peer_isa": {**mkl, "mkl_enable_instructions": None}})
    assert note is not None and "MKL_ENABLE_INSTRUCTIONS=AVX2" in note
    assert isa_note({**base, "peer_isa": {**mkl, "mkl_enable_instructions": "AVX2"}}) is None
    assert isa_note({**base, "peer_isa": {**mkl, "mkl_enable_instructions": "AVX512"}})
    assert meta["peer_isa"]["torch_mkl"] == torch.backends.mkl.is_available()
    onednn_avx512 = {"torch_aten": "AVX2", "onednn_max_cpu_isa": "AVX512_CORE"}
    assert isa_note({**base, "peer_isa": onednn_avx512}) is not None
    assert isa_note({**base, "isa": "avx512", "peer_isa": uncapped}) is None
    avx2_cpu = {"isa": "avx2", "cpu_features": ["avx2", "fma"], "peer_isa": uncapped}
    assert isa_note(avx2_cpu) is None


def test_float64_results_agree_to_float64_precision(tiny_suite: Path, tmp_path: Path) -> None:
    # a float32 round trip anywhere in the driver would show up as a 1e-8 "mismatch"
    code, data = run_json(["--suite", str(tiny_suite), *ALL_PASSES, "--dtype", "float64"], tmp_path)
    assert code == 0
    errors = [r["max_rel_err"] for r in data["rows"] if r["max_rel_err"] is not None]
    assert errors and max(errors) < 1e-10


def test_ratios_are_peer_time_over_candidate_time(tiny_suite: Path, tmp_path: Path) -> None:
    code, data = run_json(["--suite", str(tiny_suite)], tmp_path)
    assert code == 0
    medians = {(r["layer"], r["candidate"]): r["median_ms"] for r in data["rows"]}
    samples = {(r["layer"], r["candidate"]): r["times_ms"] for r in data["rows"]}
    for row in data["rows"]:
        peers = {
            r["candidate"]
            for r in data["rows"]
            if r["layer"] == row["layer"] and r["kind"] == "peer" and r["median_ms"]
        }
        if row["median_ms"]:
            assert set(row["ratios"]) == peers - {row["candidate"]}
        for peer, ratio in row["ratios"].items():
            # round by round where both have 3+ samples (paired_ratio), else the medians'
            theirs, ours = samples[(row["layer"], peer)], row["times_ms"]
            n = min(len(theirs), len(ours))
            want = (
                float(np.median([t / o for t, o in zip(theirs[:n], ours[:n])]))
                if n >= 3
                else medians[(row["layer"], peer)] / row["median_ms"]
            )
            assert math.isclose(ratio, want, rel_tol=1e-9)


def test_paired_ratio_follows_rounds() -> None:
    """A machine that slows both candidates down halfway through the rounds: the per-round
    ratios stay 1.1 while the medians (one before the change, one after) read 2.2."""
    from fastconv.benchmark.report import paired_ratio

    ours = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    peer = [1.1, 1.1, 1.1, 2.2, 2.2, 2.2, 2.2, 2.2]  # one more round than ours: unpaired
    assert math.isclose(float(np.median(peer)) / float(np.median(ours)), 2.2)
    assert math.isclose(paired_ratio(peer, ours), 1.1)
    assert paired_ratio(peer[:2], ours[:2]) is None  # too few rounds: the caller uses medians
    assert math.isclose(paired_ratio([3.0, 1.0, 2.0], [1.0, 1.0, 1.0]), 2.0)


def test_rounds_pool_each_rows_samples_by_round(tiny_suite: Path, tmp_path: Path) -> None:
    """--rounds 3: every row holds its samples of all three suite rounds, each tagged with its
    round (JSON "sample_rounds"), and the metadata says how many rounds ran."""
    args = ["--suite", str(tiny_suite), "--filter", r"^tiny\.conv2d$", "--algo", "auto"]
    code, data = run_json([*args, "--rounds", "3"], tmp_path)
    assert code == 0 and data["metadata"]["rounds"] == 3
    rows = data["rows"]
    assert {r["candidate"] for r in rows} == {"auto"} | ({"torch"} if HAS_TORCH else set())
    for r in rows:
        assert r["status"] == "ok" and r["median_ms"] > 0
        assert sorted(set(r["sample_rounds"])) == [0, 1, 2]
        assert len(r["sample_rounds"]) == r["runs"] == len(r["times_ms"])


def test_paired_ratio_pairs_within_suite_rounds() -> None:
    """Samples of different counts per round (a slow candidate takes one per round): the pairs
    stay within rounds, so a round where the machine ran 2x slow for both gives the same
    ratio, where pairing by position would cross rounds."""
    from fastconv.benchmark.report import paired_ratio

    ours = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    ours_rounds = [0, 0, 0, 1, 1, 1]
    peer = [1.5, 3.0, 3.0]  # fewer samples a round; the second round slow for both
    peer_rounds = [0, 1, 1]
    assert math.isclose(paired_ratio(peer, ours, peer_rounds, ours_rounds), 1.5)
    assert math.isclose(paired_ratio(peer, ours), 3.0)  # by position: 3.0 / 1.0 twice


def test_merge_round_tags_samples_and_keeps_the_worst_status() -> None:
    from fastconv.benchmark.cli import merge_round
    from fastconv.benchmark.timing import Row

    def row(name: str, times: list[float], status: str = "ok", err: float | None = None) -> Row:
        return Row("l", "conv", "forward", name, "fastconv", 1, list(times), status, "", err)

    first = [row("auto", [1.0, 1.1, 1.2]), row("torch", [2.0]), row("fft", [], "skipped")]
    merge_round(first, [row("auto", [5.0, 5.1], "mismatch", 0.5), row("torch", [6.0])], 1)
    merge_round(first, [row("auto", [7.0]), row("torch", [8.0, 8.1])], 2)
    assert first[0].times_s == [1.0, 1.1, 1.2, 5.0, 5.1, 7.0]
    assert first[0].sample_rounds == [0, 0, 0, 1, 1, 2]
    assert first[1].times_s == [2.0, 6.0, 8.0, 8.1] and first[1].sample_rounds == [0, 1, 2, 2]
    assert first[0].status == "mismatch" and first[0].max_rel_err == 0.5  # round 2 "ok" stays
    assert first[2].times_s == [] and first[2].status == "skipped"
    slow = [row("fft", [3.0])]
    slow[0].note = "1 run (too slow to repeat: 3.00 s)"
    merge_round(slow, [row("fft", [3.1])], 1)
    merge_round(slow, [row("fft", [3.2])], 2)
    assert slow[0].note == "1 run a round (too slow to repeat: 3.00 s)"


def test_filter_selects_layers_by_regex(tiny_suite: Path, tmp_path: Path) -> None:
    code, data = run_json(
        ["--suite", str(tiny_suite), "--filter", r"pool|^tiny\.conv2d$"], tmp_path
    )
    assert code == 0
    assert {r["layer"] for r in data["rows"]} == {"tiny.maxpool2d", "tiny.avgpool1d", "tiny.conv2d"}


def test_no_peers_and_algo_restrict_candidates(tiny_suite: Path, tmp_path: Path) -> None:
    code, data = run_json(
        ["--suite", str(tiny_suite), "--filter", "conv2d", "--no-peers", "--algo", "reference"],
        tmp_path,
    )
    assert code == 0
    assert [r["candidate"] for r in data["rows"]] == ["reference"]


def test_algo_autotune_is_a_candidate(tiny_suite: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path / "cache"))
    args = ["--suite", str(tiny_suite), "--filter", "conv2d", "--algo", "auto", "--algo"]
    code, data = run_json([*args, "autotune", "--no-peers"], tmp_path)
    assert code == 0
    assert [r["candidate"] for r in data["rows"]] == ["auto", "autotune"]
    assert (tmp_path / "cache" / "autotune.json").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--suite", "no-such-suite"], "unknown suite 'no-such-suite'"),
        (["--suite", "missing/dir/suite.json"], "unknown suite"),
        (["--passes", "forward,sideways"], "--passes"),
        (["--filter", "("], "--filter"),
        (["--filter", "matches-no-layer-at-all"], "no layer"),
        (["--algo", "no-such-algorithm"], "--algo"),
        (["--threads", "0"], "--threads"),
        (["--rounds", "0"], "--rounds"),
        (["--suite", "variants", "--rounds", "2"], "--rounds applies"),
        (["--model", "resnet18", "--rounds", "2"], "--rounds applies"),
    ],
)
def test_bad_requests_give_one_clear_line(args: list[str], message: str, capsys) -> None:
    assert benchmark.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_suite_entry_names_the_key(tmp_path: Path, capsys) -> None:
    suite = {
        "conv": [{"name": "typo", "n": 1, "c": 2, "in": [8], "k": 2, "kernel": [3], "strides": 2}]
    }
    assert benchmark.main(["--suite", str(write_suite(tmp_path, suite))]) == 2
    err = capsys.readouterr().err
    assert "conv[0] (typo)" in err and "strides" in err


def test_suite_names_resolve_to_shipped_suites() -> None:
    assert benchmark.resolve_suite("quick").name == "quick.json"
    assert benchmark.resolve_suite("reference").name == "reference.json"


def test_shipped_suites_parse_and_quick_stays_small() -> None:
    reference = benchmark.load_suite(REPO / "benchmarks" / "suites" / "reference.json")
    assert len(reference) == 36
    quick = benchmark.load_suite(REPO / "benchmarks" / "suites" / "quick.json")
    # the quick suite must stay quick for the naive reference algorithm (~0.5 GFLOP/s)
    assert sum(layer.flops() for layer in quick) < 0.6e9
    assert {layer.rank for layer in quick} == {1, 2, 3}
    assert {layer.op for layer in quick} == {"conv", "conv_transpose", "max_pool", "avg_pool"}
    assert any(layer.groups == layer.c > 1 for layer in quick)  # depthwise
    assert any(1 < layer.groups < layer.c for layer in quick)  # grouped
    assert any(layer.c == layer.k == 1 for layer in quick)  # single-channel signal: SciPy


def test_networks_suite_has_real_network_layers_that_are_valid_problems() -> None:
    from fastconv._problem import conv_problem

    path = benchmark.resolve_suite("networks")
    assert path.name == "networks.json"
    layers = benchmark.load_suite(path)
    convs = [layer for layer in layers if not layer.is_pool]
    assert len([c for c in convs if c.op == "conv"]) >= 30
    families = {layer.name.split(".")[0] for layer in layers}
    for family in ("inception_v3", "efficientnet_b0", "yolov5s", "yolov8s", "unet"):
        assert family in families
    assert any(max(layer.dilation) > 1 for layer in convs)  # DeepLabv3's atrous stages
    assert {layer.n for layer in layers} == {1, 8}
    assert {layer.rank for layer in convs} == {2, 3}
    assert any(layer.groups == layer.c > 1 for layer in convs)  # depthwise
    assert {layer.op for layer in layers} == {"conv", "conv_transpose", "max_pool"}
    about = json.loads(path.read_text())["about"]
    assert "R(2+1)D" in about and "SSDLite" in about
    for layer in convs:  # every pass of every layer is a problem the library accepts
        out_padding = layer.output_padding if layer.op == "conv_transpose" else 0
        geometry = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
        for pass_ in ("forward", "backward_data", "backward_weight"):
            data = layer.input_shape()
            if layer.op == "conv_transpose" and pass_ == "backward_data":
                data = layer.output_shape()
            extra = {"output_padding": out_padding} if layer.op == "conv_transpose" else {}
            problem = conv_problem(
                layer.op,
                pass_,
                data,
                layer.weight_shape(),
                "float32",
                groups=layer.groups,
                **geometry,
                **extra,
            )
            assert tuple(problem.y_shape) == layer.output_shape(), layer.name


def test_flops_and_output_extents() -> None:
    conv1 = benchmark.parse_layer(
        "conv",
        {
            "name": "resnet50.conv1",
            "n": 1,
            "c": 3,
            "in": [224, 224],
            "k": 64,
            "kernel": [7, 7],
            "stride": 2,
            "padding": 3,
        },
        0,
    )
    assert conv1.output_spatial() == (112, 112)
    assert conv1.flops() == 2 * 64 * 3 * 49 * 112 * 112
    up = benchmark.parse_layer(
        "conv_transpose",
        {
            "name": "dcgan",
            "n": 16,
            "c": 512,
            "in": [4, 4],
            "k": 256,
            "kernel": [4, 4],
            "stride": 2,
            "padding": 1,
        },
        0,
    )
    assert up.output_spatial() == (8, 8) and up.weight_shape() == (512, 256, 4, 4)
    assert up.flops() == 2 * 16 * 512 * 256 * 16 * 16  # as the conv it is the adjoint of
    pool = benchmark.parse_layer(
        "pool", {"name": "gap", "kind": "avg", "n": 8, "c": 2048, "in": [7, 7], "kernel": [7, 7]}, 0
    )
    assert pool.stride == (7, 7) and pool.flops() == 8 * 2048 * 49


def test_wrong_results_are_flagged_mismatch(tiny_suite: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")  # torch's output is the oracle
    real_conv = fastconv.conv
    monkeypatch.setattr(fastconv, "conv", lambda *a, **kw: real_conv(*a, **kw) * 1.01)
    code, data = run_json(["--suite", str(tiny_suite), "--filter", "conv2d"], tmp_path)
    assert code == 1
    ours = [r for r in data["rows"] if r["kind"] == "fastconv" and r["status"] != "unsupported"]
    assert ours and all(r["status"] == "mismatch" and not r["best"] for r in ours)
    assert all(r["max_rel_err"] > 1e-3 for r in ours)


def test_slow_candidates_run_once_or_are_skipped(
    tiny_suite: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(benchmark.timing, "SLOW_CALL_S", 0.0)
    code, data = run_json(["--suite", str(tiny_suite), "--filter", "conv"], tmp_path)
    assert code == 0
    timed = [r for r in data["rows"] if r["status"] == "ok"]
    assert timed and all(r["runs"] == 1 and "1 run" in r["note"] for r in timed)
    monkeypatch.setattr(benchmark.timing, "SKIP_ESTIMATE_S", 0.0)
    code, data = run_json(["--suite", str(tiny_suite), "--filter", "conv"], tmp_path)
    assert code == 0
    later = [r for r in data["rows"] if r["layer"] != "tiny.conv2d" and r["kind"] == "fastconv"]
    skipped = [r for r in later if r["status"] == "skipped"]
    assert skipped and all(r["note"].startswith("skipped: too slow, est.") for r in skipped)


def test_gpu_first_call_is_warm_up_not_the_sample(monkeypatch) -> None:
    """A peer's first call may be one-time work (cuDNN's algorithm search, lazy init): on the
    GPU and after a moderately slow first call on the CPU the second call is the estimate, so
    that work is neither the only sample nor a reason to skip."""
    from fastconv.benchmark.candidates import Candidate, Problem
    from fastconv.benchmark.suite import Layer
    from fastconv.benchmark.timing import Settings, _first_calls

    monkeypatch.setattr(benchmark.timing, "SLOW_CALL_S", 0.05)
    layer = Layer("l", "conv", 1, 1, 1, (4,), (1,), (1,), (0,), (1,))
    calls = []

    def bind(problem):
        def fn():
            calls.append(1)
            if len(calls) == 1:
                import time

                time.sleep(0.1)  # the search
            return 0.0

        return fn

    cand = Candidate("peer", "peer", bind)
    problem = Problem(layer, "forward", None, None, None)
    monkeypatch.setattr(benchmark.timing, "RETRY_SLOW_S", 0.09)  # the CPU's retry: off
    for events, timed_rows in ((None, 0), (object(), 1)):
        calls.clear()
        settings = Settings(3, 0.0, 10.0, "float32", lambda: None, events)
        rows, timed, _ = _first_calls(problem, [cand], settings, {})
        assert len(timed) == timed_rows
        if events is None:
            assert rows[0].note.startswith("1 run (too slow")
        else:
            assert timed[0].estimate < 0.05 and not rows[0].note
    # On the CPU a slow first call under RETRY_SLOW_S gets a second one, which is the estimate.
    monkeypatch.setattr(benchmark.timing, "RETRY_SLOW_S", 1.0)
    calls.clear()
    rows, timed, _ = _first_calls(
        problem, [cand], Settings(3, 0.0, 10.0, "float32", lambda: None), {}
    )
    assert len(timed) == 1 and timed[0].estimate < 0.05 and len(calls) == 2


def test_plot_writes_a_png(tiny_suite: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "chart.png"
    code = benchmark.main(
        ["--suite", str(tiny_suite), "--filter", "conv2d|pool", *FAST, "--plot", str(png)]
    )
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot written" in capsys.readouterr().out


def test_cuda_request_without_cuda_kernels_is_a_clear_error(capsys) -> None:
    try:  # a build whose fastconv._cuda only queries devices has no CUDA algorithms either
        fastconv.algorithms("conv", device="cuda")
        pytest.skip("this build has CUDA algorithms")
    except ValueError:
        pass
    assert benchmark.main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "CUDA benchmark is not available in this build" in err and "Traceback" not in err


def test_unwritable_json_path_is_a_clear_error(tiny_suite: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "no-such-dir" / "out.json"
    args = ["--suite", str(tiny_suite), "--filter", "conv2d", "--no-peers", *FAST]
    assert benchmark.main([*args, "--json", str(target)]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err


def test_model_benchmark_times_native_and_replaced(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "model.json"
    args = ["--model", "resnet18", "--batch", "2", "--image-size", "32", "--repeats", "1"]
    assert benchmark.main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "resnet18" and result["modules_replaced"] == 21  # 20 conv + pool
    assert {r["task"] for r in result["rows"]} == {"inference", "training step"}
    assert all(r["torch_s"] > 0 and r["fastconv_s"] > 0 for r in result["rows"])
    assert result["device"] == "cpu" and result["memory_format"] == "contiguous"
    assert benchmark.main(["--model", "resnet18", "--batch", "0"]) == 2


def test_model_benchmark_layouts_and_gpu_options(capsys) -> None:
    """The model run in channels_last (what --device cuda --memory-format channels_last times;
    on the CPU here, through run_model); float16 / channels_last without --device cuda, and
    --device cuda without a usable GPU, are clear errors."""
    torch = pytest.importorskip("torch")
    from fastconv.benchmark.model_bench import format_model, run_model

    result = run_model("mobilenet_v2", 2, 32, 1, 1, memory_format="channels_last")
    assert result["memory_format"] == "channels_last" and result["modules_replaced"] > 0
    assert all(r["torch_s"] > 0 and r["fastconv_s"] > 0 for r in result["rows"])
    assert "mobilenet_v2" in format_model(result)
    for extra in (["--dtype", "float16"], ["--memory-format", "channels_last"]):
        assert benchmark.main(["--model", "resnet18", *extra]) == 2
        err = capsys.readouterr().err
        assert "need --device cuda" in err and "Traceback" not in err
    if not torch.cuda.is_available():
        assert benchmark.main(["--model", "resnet18", "--device", "cuda"]) == 2
        assert "Traceback" not in capsys.readouterr().err


def test_batches_suite_is_training_size_batches_of_valid_problems() -> None:
    """benchmarks/suites/batches.json (`--suite batches`): the layers of the batch rules
    (_cpu_taps._direct_first and its neighbours) at training batch sizes, each pass a problem the
    library accepts."""
    from fastconv._problem import conv_problem

    path = benchmark.resolve_suite("batches")
    assert path.name == "batches.json"
    layers = benchmark.load_suite(path)
    assert len(layers) >= 9 and all(layer.n >= 8 and layer.op == "conv" for layer in layers)
    assert any(max(layer.stride) == 2 for layer in layers)
    assert {layer.name.split(".")[0] for layer in layers} >= {"cifar_resnet", "cifar_vgg16"}
    for layer in layers:
        geometry = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
        for pass_ in ("forward", "backward_data", "backward_weight"):
            problem = conv_problem(
                "conv", pass_, layer.input_shape(), layer.weight_shape(), "float32", **geometry
            )
            assert tuple(problem.y_shape) == layer.output_shape(), (layer.name, pass_)


def test_memory_format_channels_last_stores_the_gpu_tensors_so(capsys) -> None:
    """--memory-format channels_last hands both libraries 4-D channels_last tensors (a meta
    device stands in for the GPU); other ranks stay as they are; on the CPU it is an error."""
    torch = pytest.importorskip("torch")
    from fastconv.benchmark.candidates import make_problem
    from fastconv.benchmark.suite import Layer

    conv2d = Layer("c", "conv", 2, 16, 8, (9, 10), (3, 3), (1, 1), (1, 1), (1, 1))
    p = make_problem(conv2d, "forward", "float16", "meta", "channels_last")
    for t in (p.x, p.w, p.gy):
        assert t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    assert make_problem(conv2d, "forward", "float16", "meta").x.is_contiguous()
    conv1d = Layer("c1", "conv", 2, 16, 8, (9,), (3,), (1,), (1,), (1,))
    assert make_problem(conv1d, "forward", "float16", "meta", "channels_last").x.is_contiguous()
    assert benchmark.main(["--memory-format", "channels_last"]) == 2
    err = capsys.readouterr().err
    assert "--memory-format channels_last needs --device cuda" in err and "Traceback" not in err
