"""`fastconv tune --suite NAME`: fills the algo="autotune" cache (fastconv/autotune.py) for every
conv and transposed-conv layer and pass of a bench suite, and prints the winners."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import sys

import fastconv
from fastconv import autotune
from fastconv._calls import problem_entry
from fastconv.backends import backend_for_device

from .suite import BenchError, Layer, load_suite, resolve_suite

PASSES = ("forward", "backward_data", "backward_weight")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastconv tune",
        description="Time every applicable CPU algorithm of each conv layer and pass of a suite "
        "and store the fastest in the autotune cache (used by algo='autotune').",
    )
    parser.add_argument(
        "--suite", default="quick", help="suite name (quick, reference, networks, batches)"
    )
    parser.add_argument("--filter", metavar="REGEX", help="only layers whose name matches")
    parser.add_argument("--passes", default=",".join(PASSES), help="comma-separated passes")
    parser.add_argument("--threads", type=int, help="threads (default: get_num_threads())")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--batch", type=int, metavar="N", help="batch size of every layer")
    parser.add_argument(
        "--force", action="store_true", help="time again even where the cache has a winner"
    )
    return parser


def _params(layer: Layer) -> tuple:
    output_padding = layer.output_padding if layer.op == "conv_transpose" else 0
    return (layer.stride, layer.padding, layer.dilation, layer.groups, "cross", output_padding)


def tune_layer(layer: Layer, pass_: str, dtype: str) -> tuple[str, str, autotune.Tuning]:
    """(auto's algorithm, autotune's, its Tuning) of one layer and pass."""
    data = layer.input_shape()
    if layer.op == "conv_transpose" and pass_ == "backward_data":
        data = layer.output_shape()  # this pass's data operand is grad_y
    backend = backend_for_device("cpu")
    args = (layer.op, pass_, data, layer.weight_shape(), dtype, backend)
    auto = problem_entry(*args, "auto", _params(layer)).selection
    tuned = problem_entry(*args, "autotune", _params(layer)).selection
    return auto.algo, tuned.algo, tuned.tuning


def _row(layer: Layer, pass_: str, auto: str, tuning: autotune.Tuning) -> list[str]:
    times = tuning.times_ms
    win = times.get(tuning.algo)
    gain = f"{times[auto] / win:.2f}x" if win and auto in times else "-"
    timed = ", ".join(f"{a} {t:.3g}" for a, t in sorted(times.items(), key=lambda i: i[1]))
    return [layer.name, pass_, tuning.algo, auto, gain, tuning.source, timed]


def _table(rows: list[list[str]]) -> str:
    header = ["layer", "pass", "winner", "auto", "auto/winner", "source", "timed (ms)"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    passes = [p.strip() for p in args.passes.split(",") if p.strip()]
    if not passes or any(p not in PASSES for p in passes):
        raise BenchError(f"--passes: choose from {', '.join(PASSES)}, got {args.passes!r}")
    for name in ("threads", "batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise BenchError(f"--{name} must be >= 1, got {value}")
    try:
        pattern = re.compile(args.filter) if args.filter else None
    except re.error as exc:
        raise BenchError(f"--filter: invalid regular expression: {exc}") from None
    suite = resolve_suite(args.suite)
    layers = [
        layer
        for layer in load_suite(suite)
        if not layer.is_pool and (pattern is None or pattern.search(layer.name))
    ]
    if not layers:
        raise BenchError(f"no conv layer of {suite} matches")
    if args.batch is not None:
        layers = [dataclasses.replace(layer, n=args.batch) for layer in layers]
    saved = fastconv.get_num_threads()
    if args.threads:
        fastconv.set_num_threads(args.threads)
    version, isa = autotune.build_identity()
    print(
        f"fastconv tune: suite {suite} ({len(layers)} conv layers), passes {','.join(passes)}, "
        f"{args.dtype}, {fastconv.get_num_threads()} threads, ISA {isa}, fastconv {version}\n"
        f"cache: {autotune.cache_path()}",
        flush=True,
    )
    rows = []
    try:
        with autotune.retuning() if args.force else contextlib.nullcontext():
            for layer in layers:
                for pass_ in passes:
                    auto, _, tuning = tune_layer(layer, pass_, args.dtype)
                    rows.append(_row(layer, pass_, auto, tuning))
                    print(f"[{len(rows)}] {layer.name} {pass_}: {tuning.algo}", file=sys.stderr)
    finally:
        fastconv.set_num_threads(saved)
    print("\n" + _table(rows))
    changed = sum(r[2] != r[3] for r in rows)
    print(f"{changed} of {len(rows)} layer-passes differ from auto's choice")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `fastconv tune`; returns the process exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return _run(args)
    except BenchError as exc:
        print(f"fastconv tune: error: {exc}", file=sys.stderr)
        return 2
