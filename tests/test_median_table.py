"""benchmarks/median_table.py: medians over runs, the training step from summed times, geomeans."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location(
        "median_table", ROOT / "benchmarks" / "median_table.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(path, times):
    """A minimal --json run: times[(layer, pass)] = (fastconv ms, torch ms)."""
    rows = []
    for (layer, pass_), (fc, torch) in times.items():
        common = {"layer": layer, "pass": pass_, "status": "ok"}
        rows.append(
            {**common, "kind": "fastconv", "candidate": "auto", "best": True, "median_ms": fc}
        )
        rows.append({**common, "kind": "peer", "candidate": "torch", "median_ms": torch})
    path.write_text(json.dumps({"rows": rows}))
    return str(path)


def test_median_table(tmp_path):
    mod = _module()
    runs = []
    # layer a: forward ratios 2, 4, 1 over three runs (median 2); backward data 1 each time
    for i, r in enumerate((2.0, 4.0, 1.0)):
        times = {("a", "forward"): (1.0, r), ("a", "backward_data"): (3.0, 3.0)}
        runs.append(_run(tmp_path / f"r{i}.json", times))
    lines = mod.table("x", runs)
    row = next(line for line in lines if line.startswith("| a |"))
    cells = [c.strip() for c in row.split("|")[2:-1]]
    assert cells[0] == "2.00x" and cells[1] == "1.00x" and cells[2] == "-"
    # training step: (median torch 2 + 3) / (1 + 3)
    assert cells[3] == f"{5 / 4:.2f}x"
    summary = next(line for line in lines if line.startswith("Geometric mean"))
    assert f"forward {2.0:.2f}x" in summary and f"training step {1.25:.2f}x" in summary
    assert "0 layers below 1.0x" in summary
    assert math.isclose(float(cells[0][:-1]), 2.0)


def test_median_table_pairs_rounds(tmp_path):
    """With the samples in the JSON a run's ratio is the median of per-round ratios: here both
    libraries slow down 2x after round 3, the medians' ratio would read 2.2x."""
    mod = _module()
    rows = [
        {"layer": "a", "pass": "forward", "status": "ok", "kind": "fastconv", "candidate": "auto",
         "best": True, "median_ms": 1.0, "times_ms": [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]},
        {"layer": "a", "pass": "forward", "status": "ok", "kind": "peer", "candidate": "torch",
         "median_ms": 2.2, "times_ms": [1.1, 1.1, 1.1, 2.2, 2.2, 2.2, 2.2, 2.2]},
    ]  # fmt: skip
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"rows": rows}))
    row = next(line for line in mod.table("x", [str(path)]) if line.startswith("| a |"))
    assert row.split("|")[2].strip() == "1.10x"
    assert row.split("|")[5].strip() == f"{2.2:.2f}x"  # the step: summed medians


def test_median_table_candidate(tmp_path, capsys):
    """--candidate NAME reads that fastconv row (runs with --algo auto --algo autotune) instead of
    the fastest; without it the fastest ("best") row; no JSON files is a usage error."""
    mod = _module()
    common = {"layer": "a", "pass": "forward", "status": "ok"}
    rows = [
        {**common, "kind": "fastconv", "candidate": "auto", "median_ms": 4.0},
        {**common, "kind": "fastconv", "candidate": "autotune", "best": True, "median_ms": 2.0},
        {**common, "kind": "peer", "candidate": "torch", "median_ms": 3.0},
    ]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"rows": rows}))

    def forward(lines):
        row = next(line for line in lines if line.startswith("| a |"))
        return row.split("|")[2].strip()

    assert forward(mod.table("x", [str(path)])) == "1.50x"
    assert forward(mod.table("x", [str(path)], "auto")) == "0.75x"
    mod.main(["--candidate", "autotune", "x", str(path)])
    out = capsys.readouterr().out
    assert "fastconv `autotune` time" in out and forward(out.splitlines()) == "1.50x"
    for argv in ([], ["--help"], ["x"], ["--candidate", "nosuch", "x", str(path)]):
        try:
            mod.main(argv)
        except SystemExit as e:
            assert "median_table" in str(e.code)
        else:
            raise AssertionError(f"{argv} did not exit with the usage")


def test_variants_table(tmp_path, capsys):
    """benchmarks/variants_table.py: per row fastconv's median time and each peer's median
    ratio over runs, dense.<algo> peers shown as "dense", one column group per ISA."""
    spec = importlib.util.spec_from_file_location(
        "variants_table", ROOT / "benchmarks" / "variants_table.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    paths = []
    for i, (ms, torch_ratio, dense_ratio) in enumerate(
        ((2.0, 3.0, 5.0), (4.0, 1.0, 7.0), (3.0, 2.0, 6.0))
    ):
        rows = [
            {
                "layer": "L",
                "pass": "forward",
                "kind": "fastconv",
                "status": "ok",
                "median_ms": ms,
                "ratios": {"torch": torch_ratio, "dense.fft": dense_ratio},
            },
            {
                "layer": "L",
                "pass": "forward",
                "kind": "peer",
                "candidate": "torch",
                "status": "ok",
                "median_ms": ms * torch_ratio,
            },
        ]
        p = tmp_path / f"r{i}.json"
        p.write_text(json.dumps({"rows": rows}))
        paths.append(str(p))
    mod.main(["isa1", *paths, "--", "isa2", paths[0]])
    out = capsys.readouterr().out
    assert "isa1 (3 runs) / isa2 (1 runs)" in out
    assert "| L | forward | 3 / 2 | 2.00x / 3.00x |  | 6.00x / 5.00x |" in out
