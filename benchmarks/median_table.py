"""Markdown table of several `fastconv bench --json` runs, per ISA level: for each layer the
median over runs of the ratio PyTorch time / fastconv time (the fastest fastconv row of the
layer and pass: `--algo auto` runs have one; within a run the median of the per-round ratios,
fastconv.benchmark.report.paired_ratio, where the JSON has the samples, else the medians' ratio)
for forward, backward data, backward weight, and the training step (the three passes' summed
median times; pools: forward + backward), then the geometric means and the layers below 1.0x.
Used for the README's and the issue notes' tables. `--candidate NAME` (before the groups) takes
that fastconv row instead of the fastest one, e.g. `--candidate autotune` from runs of
`fastconv bench --algo auto --algo autotune`.

    python benchmarks/median_table.py avx512 a1.json a2.json a3.json -- avx2 b1.json b2.json
    python benchmarks/median_table.py --candidate autotune tuned r1.json r2.json r3.json
"""

from __future__ import annotations

import json
import math
import statistics
import sys

from fastconv.benchmark.report import paired_ratio

PASSES = ("forward", "backward_data", "backward_weight")


Run = tuple[float, float, float]  # fastconv ms, torch ms, ratio


def load(
    paths: list[str], candidate: str | None = None
) -> tuple[list[str], dict[tuple[str, str], list[Run]]]:
    """Layer order and, per (layer, pass), the (fastconv ms, torch ms, ratio) of each run: the
    fastest fastconv row, or the row of `candidate` (an --algo name) where given."""
    order: list[str] = []
    times: dict[tuple[str, str], list[Run]] = {}
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        best: dict[tuple[str, str], dict] = {}
        torch: dict[tuple[str, str], dict] = {}
        for r in run["rows"]:
            key = (r["layer"], r["pass"])
            if r.get("status") != "ok" or not r.get("median_ms"):
                continue
            if r["kind"] == "fastconv" and (
                r["candidate"] == candidate if candidate else r.get("best")
            ):
                best[key] = r
            elif r["candidate"] == "torch":
                torch[key] = r
        for key, ours in best.items():
            if key in torch:
                if key[0] not in order:
                    order.append(key[0])
                f, t = ours["median_ms"], torch[key]["median_ms"]
                peer = torch[key]
                paired = paired_ratio(
                    peer.get("times_ms", []),
                    ours.get("times_ms", []),
                    peer.get("sample_rounds"),
                    ours.get("sample_rounds"),
                )
                times.setdefault(key, []).append((f, t, paired or t / f))
    return order, times


def table(label: str, paths: list[str], candidate: str | None = None) -> list[str]:
    order, times = load(paths, candidate)
    if not order:
        who = f"{candidate!r} rows" if candidate else "rows"
        sys.exit(f"median_table: no fastconv {who} paired with torch in {paths}")
    who = f"fastconv `{candidate}`" if candidate else "fastconv"
    lines = [
        f"**{label}** (median of {len(paths)} runs; ratio = PyTorch time / {who} time)",
        "",
        "| layer | forward | backward data | backward weight | training step |",
        "| --- | --- | --- | --- | --- |",
    ]
    fwd, train, below = [], [], []
    for layer in order:
        cells, fc_sum, torch_sum = [], 0.0, 0.0
        for p in PASSES:
            runs = times.get((layer, p))
            if not runs:
                cells.append("-")
                continue
            ratio = statistics.median(r for _, _, r in runs)
            cells.append(f"{ratio:.2f}x")
            fc_sum += statistics.median(f for f, _, _ in runs)
            torch_sum += statistics.median(t for _, t, _ in runs)
            if p == "forward":
                fwd.append(ratio)
        step = torch_sum / fc_sum
        train.append(step)
        worst = min([float(c[:-1]) for c in cells if c != "-"] + [step])
        if worst < 1.0:
            below.append(layer)
        lines.append(f"| {layer} | " + " | ".join(cells) + f" | {step:.2f}x |")

    def geomean(values: list[float]) -> float:
        return math.exp(sum(map(math.log, values)) / len(values))

    lines += [
        "",
        f"Geometric mean over {len(order)} layers: forward {geomean(fwd):.2f}x, "
        f"training step {geomean(train):.2f}x; {len(below)} layers below 1.0x in some pass.",
        "",
    ]
    return lines


def main(argv: list[str]) -> None:
    candidate = None
    if argv[:1] == ["--candidate"] and len(argv) >= 2:
        candidate, argv = argv[1], argv[2:]
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    groups, current = [], []
    for arg in argv + ["--"]:
        if arg == "--":
            if current:
                groups.append(current)
            current = []
        else:
            current.append(arg)
    for label, *paths in groups:
        if not paths:
            sys.exit(f"median_table: no JSON files after the label {label!r}\n{__doc__}")
        print("\n".join(table(label, paths, candidate)))


if __name__ == "__main__":
    main(sys.argv[1:])
