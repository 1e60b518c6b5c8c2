"""Markdown table of a `fastconv bench --json` run: per layer and pass, the ratio to PyTorch of
what `auto` runs (its own row when the run timed `--algo auto`, else the row of the algorithm it
picks) and of the fastest other algorithm when that beat it by more than 5%, as used in the
README. Usage: python benchmarks/report.py RUN.json"""

from __future__ import annotations

import json
import math
import sys

import fastconv


def auto_choice(layer: dict, pass_: str) -> str:
    w_shape = (
        (layer["c"], layer["k"] // layer["groups"], *layer["kernel"])
        if layer["op"] == "conv_transpose"
        else (layer["k"], layer["c"] // layer["groups"], *layer["kernel"])
    )
    kw = dict(
        stride=layer["stride"],
        padding=layer["padding"],
        dilation=layer["dilation"],
        groups=layer["groups"],
        op=layer["op"],
        pass_=pass_,
    )
    if layer["op"] == "conv_transpose":
        kw["output_padding"] = layer["output_padding"]
    return fastconv.explain((layer["n"], layer["c"], *layer["in"]), w_shape, **kw).algo


def main(path: str) -> None:
    run = json.load(open(path))
    layers = {lay["name"]: lay for lay in run["layers"] if lay["op"] in ("conv", "conv_transpose")}
    passes = run["metadata"]["passes"]
    cells: dict[tuple[str, str], str] = {}
    logs: dict[str, list[float]] = {}
    for name, layer in layers.items():
        for pass_ in passes:
            rows = [
                r
                for r in run["rows"]
                if r["layer"] == name and r["pass"] == pass_ and r["kind"] == "fastconv"
            ]
            timed = [r for r in rows if r.get("median_ms") and "torch" in r.get("ratios", {})]
            if not timed:
                continue
            algo = auto_choice(layer, pass_)
            # The "auto" row is what users get; else the row of the algorithm auto picks.
            pick = next((r for r in timed if r["candidate"] == "auto"), None) or next(
                (r for r in timed if r["candidate"] == algo), None
            )
            best = max(timed, key=lambda r: r["ratios"]["torch"])
            if pick is None:
                cells[name, pass_] = f"- ({algo} not timed)"
                continue
            ratio = pick["ratios"]["torch"]
            if name.startswith("resnet50"):
                logs.setdefault(pass_, []).append(math.log(ratio))
            text = f"{ratio:.2f}x ({algo}, {pick['pct_peak']:.0f}%)"
            if best["candidate"] not in (pick["candidate"], algo) and (
                best["ratios"]["torch"] > 1.05 * ratio
            ):
                text += f"; {best['candidate']} {best['ratios']['torch']:.2f}x"
            cells[name, pass_] = text
    print("| layer | " + " | ".join(p.replace("_", " ") for p in passes) + " |")
    print("| --- |" + " --- |" * len(passes))
    for name in layers:
        print(f"| {name} | " + " | ".join(cells.get((name, p), "-") for p in passes) + " |")
    print()
    for pass_, vals in logs.items():
        print(f"ResNet-50 geometric mean, {pass_}: {math.exp(sum(vals) / len(vals)):.2f}x")


if __name__ == "__main__":
    main(sys.argv[1])
