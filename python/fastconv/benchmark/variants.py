"""`fastconv bench` on a variants suite (benchmarks/suites/variants.json): tiled, locally
connected and separable convolution and the resampling / pooling variants, each op call timed
against its peers (.variant_calls), forward and training step.

Each (entry, pass) runs its candidates once first; every peer's result is compared with
fastconv's (allclose, or a statistical test for stochastic pooling's draws) and a peer that
differs becomes a "mismatch" row, never timed (a mismatch fails the run). The rest are timed
interleaved as the layer suites are (.timing). Of the dense algorithms a separable entry is
compared with, the fastest is kept, as "dense"."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .report import annotate
from .suite import VARIANT_SECTIONS, BenchError, parse_sections
from .timing import Row, Settings, Timed, first_call, measure
from .variant_calls import PASSES, Case, Variant, build_local, build_resample, build_separable

_GEOMETRY = {"stride", "padding", "dilation"}
# op -> (builder, required keys, optional keys) besides name, op and x
OPS: dict[str, tuple[Callable[..., list[Case]], set[str], set[str]]] = {
    "locally_connected": (build_local, {"k", "kernel"}, _GEOMETRY),
    "tiled_conv": (build_local, {"k", "kernel", "tiles"}, _GEOMETRY),
    "separable_conv": (build_separable, {"k", "kernel"}, _GEOMETRY | {"groups"}),
    "upsample_nearest": (build_resample, {"scale"}, set()),
    "upsample_linear": (build_resample, {"scale"}, {"align_corners"}),
    "pixel_shuffle": (build_resample, {"r"}, set()),
    "pixel_unshuffle": (build_resample, {"r"}, set()),
    "stochastic_pool": (build_resample, {"kernel"}, {"stride", "padding"}),
    "stochastic_pool_eval": (build_resample, {"kernel"}, {"stride", "padding"}),
    "blur_pool": (build_resample, set(), {"kernel", "stride"}),
}


def parse_variant(section: str, entry: Any, index: int) -> Variant:
    """One suite entry as a Variant; errors name the entry and the key."""
    where = f"{section}[{index}]"
    if not isinstance(entry, dict):
        raise BenchError(f"{where}: expected an object, got {type(entry).__name__}")
    where = f"{where} ({entry.get('name', '?')})"
    for key in ("name", "op", "x"):
        if key not in entry:
            raise BenchError(f"{where}: missing '{key}'")
    if entry["op"] not in OPS:
        raise BenchError(f"{where}: unknown op {entry['op']!r}; known: {', '.join(OPS)}")
    _, required, optional = OPS[entry["op"]]
    args = {k: v for k, v in entry.items() if k not in ("name", "op", "x")}
    missing = sorted(required - set(args))
    unknown = sorted(set(args) - required - optional)
    if missing or unknown:
        raise BenchError(
            f"{where}: op {entry['op']} needs {sorted(required)} and takes {sorted(optional)}; "
            f"missing {missing}, unknown {unknown}"
        )
    x = entry["x"]
    if (
        not isinstance(x, list)
        or not 3 <= len(x) <= 5
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in x)
    ):
        raise BenchError(f"{where}: 'x' must be 3 to 5 positive ints (N, C, *spatial), got {x!r}")
    return Variant(str(entry["name"]), section, entry["op"], tuple(x), args)


def load_variants(path: Path, data: dict[str, Any]) -> list[Variant]:
    return parse_sections(path, data, VARIANT_SECTIONS, parse_variant)


def select(variants: list[Variant], pattern: re.Pattern | None, batch: int | None) -> list:
    """The variants --filter keeps, with --batch as their N."""
    kept = [v for v in variants if pattern is None or pattern.search(v.name)]
    if batch is not None:
        for v in kept:
            v.x = (batch, *v.x[1:])
    return kept


def check_passes(passes: Sequence[str]) -> None:
    bad = [p for p in passes if p not in PASSES]
    if bad:
        raise BenchError(f"--passes: a variants suite runs {', '.join(PASSES)}; got {bad}")


def run_variants(
    variants: list[Variant],
    args: argparse.Namespace,
    peers: dict[str, Any],
    step: Callable[[str], None],
) -> list[Row]:
    """Check and time every (variant, pass); step(label) after each."""
    settings = Settings(args.repeats, args.min_time, args.layer_budget, args.dtype, lambda: None)
    rows: list[Row] = []
    for v in variants:
        build = OPS[v.op][0]
        try:
            cases = build(v, args.dtype, args.passes, peers)
        except Exception as exc:  # noqa: BLE001 -- a broken entry must not end the run
            for pass_ in args.passes:
                rows.append(Row(v.name, v.op, pass_, "fastconv", "fastconv", 0, status="error"))
                rows[-1].note = f"error: {type(exc).__name__}: {exc}"
                step(f"{v.name} {pass_}")
            continue
        for case in cases:
            rows += run_case(v, case, settings)
            step(f"{v.name} {case.pass_}")
    annotate(rows)
    return rows


def run_case(v: Variant, case: Case, settings: Settings) -> list[Row]:
    """First calls, the check of every peer against fastconv, then the interleaved samples."""
    rows: list[Row] = []
    timed: dict[str, Timed] = {}
    results: dict[str, Any] = {}
    for call in case.calls:
        row = Row(v.name, v.op, case.pass_, call.name, call.kind, case.flops, note=call.note)
        rows.append(row)
        if call.fn is None:
            row.status = "skipped"
            continue
        entry, output = first_call(row, call.fn, settings)
        if row.status != "ok":
            continue
        try:
            results[call.name] = call.results(output)
        except Exception as exc:  # noqa: BLE001 -- e.g. fastconv's own consistency check
            row.status, row.note, row.times_s = "error", f"error: {exc}", []
            continue
        if call.note and row.note != call.note:
            row.note = f"{call.note}; {row.note}"
        if entry is not None:
            timed[call.name] = entry
    ours = results.get("fastconv")
    for row in rows:
        if row.kind != "peer" or row.candidate not in results:
            continue
        theirs = results[row.candidate]
        problem, row.max_rel_err = (
            ("fastconv's call failed", None) if ours is None else case.compare(ours, theirs)
        )
        if problem:
            row.status, row.note, row.times_s = "mismatch", f"MISMATCH: {problem}", []
            timed.pop(row.candidate, None)
        elif row.max_rel_err is None:
            row.note = f"{row.note}; {case.check}" if row.note else case.check
    measure(list(timed.values()), settings)
    return _best_dense(rows)


def _best_dense(rows: list[Row]) -> list[Row]:
    """Keep the fastest correct dense.<algorithm> row, as "dense", its note naming the others;
    dense rows that failed stay, so the failure shows."""
    dense = [r for r in rows if r.candidate.startswith("dense.")]
    ok = [r for r in dense if r.status == "ok" and r.median_s]
    if not ok:
        return rows
    best = min(ok, key=lambda r: r.median_s or 0.0)
    others = []
    for r in dense:
        if r is not best:
            what = f"{r.median_s * 1e3:.3g} ms" if r.median_s else r.note or r.status
            others.append(f"{r.candidate[6:]} {what}")
    best.note = f"best dense: {best.candidate[6:]}"
    if others:
        best.note += f" (others: {'; '.join(others)})"
    best.candidate = "dense"
    dense_ids = {id(r) for r in dense}
    keep = ("mismatch", "error")
    return [r for r in rows if id(r) not in dense_ids or r is best or r.status in keep]
