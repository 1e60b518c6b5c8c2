"""Markdown table of several `fastconv bench --suite variants --json` runs at two ISA levels:
per layer and pass (forward, step) fastconv's median time (the median over runs of each run's
median) and the median over runs of its ratio to each peer (torch, jax, the fastest dense
fastconv algorithm). Used for the README's and the issue notes' variants tables.

    python benchmarks/variants_table.py avx512 a1.json a2.json -- avx2 b1.json b2.json
"""

from __future__ import annotations

import json
import statistics
import sys

PEERS = ("torch", "jax", "dense")


def load(paths: list[str]) -> tuple[list[tuple[str, str]], dict]:
    """Row order and, per (layer, pass), fastconv's times and each peer's ratios over runs."""
    order: list[tuple[str, str]] = []
    runs: dict[tuple[str, str], dict[str, list[float]]] = {}
    for path in paths:
        with open(path) as f:
            rows = json.load(f)["rows"]
        for r in rows:
            if r["kind"] != "fastconv" or r.get("status") != "ok" or not r.get("median_ms"):
                continue
            key = (r["layer"], r["pass"])
            if key not in order:
                order.append(key)
            entry = runs.setdefault(key, {})
            entry.setdefault("ms", []).append(r["median_ms"])
            for peer, ratio in (r.get("ratios") or {}).items():
                name = "dense" if peer.startswith("dense") else peer
                if ratio:
                    entry.setdefault(name, []).append(ratio)
    return order, runs


def cell(values: list[float] | None, fmt: str) -> str:
    return format(statistics.median(values), fmt) if values else ""


def main(argv: list[str]) -> None:
    groups, label, paths = [], None, []
    for a in argv + ["--"]:
        if a == "--":
            if label:
                groups.append((label, paths))
            label, paths = None, []
        elif label is None:
            label = a
        else:
            paths.append(a)
    loaded = [(lab, load(p), len(p)) for lab, p in groups]
    labels = " / ".join(f"{lab} ({n} runs)" for lab, _, n in loaded)
    print(f"Medians over runs, {labels}; ratio = peer time / fastconv time")
    print()
    print("| layer | pass | fastconv ms | vs torch | vs jax | vs dense |")
    print("| --- | --- | --- | --- | --- | --- |")
    order = loaded[0][1][0]
    for key in order:
        ms = " / ".join(cell(runs.get(key, {}).get("ms"), ".3g") for _, (_, runs), _ in loaded)
        peers = []
        for peer in PEERS:
            vals = [cell(runs.get(key, {}).get(peer), ".2f") for _, (_, runs), _ in loaded]
            peers.append(" / ".join(v + "x" for v in vals) if any(vals) else "")
        print(f"| {key[0]} | {key[1]} | {ms} | " + " | ".join(peers) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
