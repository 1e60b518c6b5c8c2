"""`fastconv bench` on a variants suite (python/fastconv/benchmark/variants.py): every op of a
tiny suite gets its rows, each peer's result is checked against fastconv's before it is timed,
a wrong peer becomes an untimed mismatch row that fails the run, the shipped suite parses and
runs, and bad suites and options are one-line errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

fastconv = pytest.importorskip("fastconv")
benchmark = pytest.importorskip("fastconv.benchmark")

from fastconv.benchmark import variants  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None
FAST = ["--repeats", "1", "--min-time", "0", "--threads", "1"]

# One entry per op, awkward small sizes.
TINY = {
    "about": "tiny variants suite for tests/test_bench_variants.py",
    "conv_variants": [
        {"name": "lc", "op": "locally_connected", "x": [2, 3, 7, 6], "k": 4, "kernel": 3,
         "padding": 1},
        {"name": "tiled", "op": "tiled_conv", "x": [2, 3, 7, 6], "k": 5, "kernel": [3, 2],
         "tiles": [2, 3], "stride": [1, 2]},
        {"name": "sep dw", "op": "separable_conv", "x": [2, 3, 20, 21], "k": 3, "groups": 3,
         "kernel": 9, "padding": "same"},
        {"name": "sep dense", "op": "separable_conv", "x": [1, 2, 19, 18], "k": 3, "kernel": 11,
         "padding": 2},
    ],
    "resample": [
        {"name": "up bilinear", "op": "upsample_linear", "x": [2, 3, 5, 7], "scale": 2},
        {"name": "up nearest 3d", "op": "upsample_nearest", "x": [1, 2, 3, 4, 5],
         "scale": [1, 2, 3]},
        {"name": "shuffle", "op": "pixel_shuffle", "x": [2, 8, 3, 5], "r": 2},
        {"name": "unshuffle", "op": "pixel_unshuffle", "x": [2, 2, 6, 4], "r": 2},
        {"name": "stochastic", "op": "stochastic_pool", "x": [4, 8, 30, 30], "kernel": 3,
         "stride": 2, "padding": 1},
        {"name": "stochastic eval", "op": "stochastic_pool_eval", "x": [2, 3, 9, 8], "kernel": 3,
         "stride": 2},
        {"name": "blur", "op": "blur_pool", "x": [2, 3, 9, 10]},
    ],
}  # fmt: skip


def expected_peers(entry: dict) -> set[str]:
    op = entry["op"]
    if op == "separable_conv":
        return {"dense"}
    peers = {"torch"} if HAS_TORCH else set()
    if op in ("locally_connected", "tiled_conv") and HAS_JAX:
        peers.add("jax")
    return peers


def run(tmp_path: Path, suite: dict, *extra: str) -> tuple[int, dict]:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    out = tmp_path / "out.json"
    code = benchmark.main(["--suite", str(path), *FAST, "--json", str(out), *extra])
    return code, (json.loads(out.read_text()) if out.exists() else {})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_op_gets_checked_and_timed_rows(tmp_path: Path, dtype: str) -> None:
    code, data = run(tmp_path, TINY, "--dtype", dtype)
    assert code == 0
    entries = TINY["conv_variants"] + TINY["resample"]
    assert [layer["name"] for layer in data["layers"]] == [e["name"] for e in entries]
    for entry in entries:
        for pass_ in ("forward", "step"):
            rows = {
                r["candidate"]: r
                for r in data["rows"]
                if r["layer"] == entry["name"] and r["pass"] == pass_
            }
            assert set(rows) == {"fastconv"} | expected_peers(entry), (entry["name"], pass_)
            for row in rows.values():
                assert row["status"] == "ok" and row["runs"] >= 1, row
                if row["kind"] == "peer":  # compared with fastconv's result before timing
                    checked = row["max_rel_err"] is not None or "statistical check" in row["note"]
                    assert checked, row
                    assert rows["fastconv"]["ratios"][row["candidate"]] > 0  # peer time / ours
            if entry["op"] == "separable_conv":
                assert rows["dense"]["note"].startswith("best dense: "), rows["dense"]


@pytest.mark.skipif(not HAS_TORCH, reason="the peer patched here is torch's")
def test_a_wrong_peer_is_a_mismatch_row_never_timed(tmp_path: Path, monkeypatch) -> None:
    import torch

    original = torch.nn.functional.pixel_shuffle
    monkeypatch.setattr(torch.nn.functional, "pixel_shuffle", lambda t, r: original(t, r) * 1.01)
    suite = {"resample": [e for e in TINY["resample"] if e["op"] == "pixel_shuffle"]}
    code, data = run(tmp_path, suite)
    assert code == 1  # a wrong result fails the run
    peers = [r for r in data["rows"] if r["candidate"] == "torch"]
    assert len(peers) == 2
    for row in peers:
        assert row["status"] == "mismatch" and row["runs"] == 0, row
        assert "MISMATCH" in row["note"]
    ours = [r for r in data["rows"] if r["candidate"] == "fastconv"]
    assert all(r["status"] == "ok" and r["runs"] >= 1 for r in ours)


def test_a_wrong_dense_algorithm_is_reported(tmp_path: Path, monkeypatch) -> None:
    """The dense peers go through fastconv.conv with a forced algorithm; one that returns a
    wrong result stays in the table as a mismatch, the others give "dense"."""
    original = fastconv.conv

    def conv(x, w, *args, algo="auto", **kw):
        y = original(x, w, *args, algo=algo, **kw)
        return y * 1.5 if algo == "direct" else y

    monkeypatch.setattr(fastconv, "conv", conv)
    suite = {"conv_variants": [TINY["conv_variants"][2]]}
    code, data = run(tmp_path, suite, "--passes", "forward")
    assert code == 1
    rows = {r["candidate"]: r for r in data["rows"]}
    assert rows["dense.direct"]["status"] == "mismatch" and rows["dense.direct"]["runs"] == 0
    assert rows["dense"]["status"] == "ok" and "direct" not in rows["dense"]["note"].split(":")[1]


def test_shipped_variants_suite_parses_and_runs(tmp_path: Path) -> None:
    path = REPO / "benchmarks" / "suites" / "variants.json"
    data = benchmark.suite.read_suite(path)
    loaded = variants.load_variants(path, data)
    ops = {v.op for v in loaded}
    assert {"locally_connected", "tiled_conv", "separable_conv", "stochastic_pool"} <= ops
    assert {"upsample_linear", "pixel_shuffle"} <= ops
    out = tmp_path / "out.json"
    code = benchmark.main(["--suite", "variants", "--filter", "^pixel shuffle", *FAST,
                           "--json", str(out)])  # fmt: skip
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["pass"] for r in rows} == {"forward", "step"}


@pytest.mark.parametrize(
    ("suite", "extra", "message"),
    [
        ({"resample": [{"name": "a", "op": "nope", "x": [1, 1, 4]}]}, [], "unknown op"),
        ({"resample": [{"name": "a", "op": "pixel_shuffle", "x": [1, 4, 2]}]}, [], "missing ['r']"),
        ({"resample": [{"name": "a", "op": "pixel_shuffle", "x": [1, 4], "r": 2}]}, [], "'x'"),
        ({"resample": [], "conv": []}, [], "one kind"),
        ({"resample": [{"name": "a", "op": "pixel_shuffle", "x": [1, 4, 2, 2], "r": 2}]},
         ["--passes", "backward_data"], "forward, step"),
        ({"resample": [{"name": "a", "op": "pixel_shuffle", "x": [1, 4, 2, 2], "r": 2}]},
         ["--algo", "fft"], "no --algo"),
    ],
)  # fmt: skip
def test_bad_variant_suites_are_one_line_errors(tmp_path, capsys, suite, extra, message) -> None:
    code, _ = run(tmp_path, suite, *extra)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
