"""The `fastconv bench` command line: options, checks, the run over a suite, the exit status."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastconv
from fastconv.backends.cuda_plan import get_allow_tf32

from .candidates import fastconv_algorithms, fastconv_candidates, make_problem, peer_candidates
from .jax_peer import jax_candidates
from .model_bench import MODELS, main_model
from .report import (
    annotate,
    environment,
    fastconv_info,
    format_table,
    header_text,
    probe_peak_gflops,
    write_results,
)
from .suite import BenchError, Layer, is_variant_suite, load_suite, read_suite, resolve_suite
from .timing import Row, Settings, run_task
from .variants import check_passes, load_variants, run_variants, select

PASSES = ("forward", "backward_data", "backward_weight")
LAYER_BUDGET_S = 5.0  # default time allowed for the repeats of one (layer, pass)


def _optional(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastconv bench",
        description="Time fastconv's algorithms and installed peers "
        "(PyTorch, SciPy) on a layer suite, interleaved, in one process.",
    )
    parser.add_argument(
        "--suite",
        default="quick",
        help=(
            "suite name (quick, reference, networks, batches, variants) or path to a suite JSON"
            " file"
        ),
    )
    parser.add_argument(
        "--quick", action="store_const", const="quick", dest="suite", help="alias for --suite quick"
    )
    parser.add_argument("--filter", metavar="REGEX", help="only layers whose name matches")
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for fastconv and torch (default: fastconv.get_num_threads())",
    )
    parser.add_argument(
        "--algo",
        action="append",
        metavar="NAME",
        help="time only this fastconv algorithm (repeatable)",
    )
    parser.add_argument(
        "--passes",
        help="comma-separated: forward,backward_data,backward_weight (default forward); "
        "a variants suite: forward,step (default both; step = forward + backward)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write rows and metadata")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="write a bar chart")
    parser.add_argument("--repeats", type=int, default=5, help="minimum samples per candidate")
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.1,
        metavar="SECONDS",
        help="minimum measured time per candidate, within the layer budget",
    )
    parser.add_argument(
        "--layer-budget",
        type=float,
        default=LAYER_BUDGET_S,
        metavar="SECONDS",
        help="time allowed for the repeats of one layer and pass",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        metavar="R",
        help="run the suite R times and pool each row's samples (a slow spell of a shared "
        "machine then touches one round of a layer, not all its samples)",
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="time fastconv only (and any --peer asked for)"
    )
    parser.add_argument(
        "--peer",
        action="append",
        choices=["jax"],
        default=[],
        help="also time an opt-in peer: jax (XLA's CPU convolution, jitted; needs jax)",
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64", "float16", "bfloat16"],
        help="float16 and bfloat16 need --device cuda",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--memory-format",
        default="contiguous",
        choices=["contiguous", "channels_last"],
        help="--device cuda: the 2-D layers' tensors (inputs, weights, output gradients) "
        "for fastconv and PyTorch alike; channels_last is what cuDNN runs fastest in "
        "float16 / bfloat16 (default contiguous)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="batch size of every layer (default: the suite's; 32 with --device cuda)",
    )
    parser.add_argument(
        "--model",
        choices=MODELS,
        help="time a whole network instead of a suite: PyTorch-native vs after "
        "fastconv.torch.replace_modules, training step and inference (needs torch; with "
        "--device cuda the whole model in --dtype, BatchNorm included - not autocast -, in "
        "--memory-format, batch 32 of 224x224 by default)",
    )
    parser.add_argument(
        "--image-size", type=int, metavar="N", help="--model: image height and width"
    )
    return parser


# Where --rounds is taken (check_args, _run's --model branch).
_ROUNDS_SCOPE = "--rounds applies to conv and pooling suites, not --model or variants"


def check_args(args: argparse.Namespace, variants: bool = False) -> None:
    """Turn options into checked values; raise BenchError with a readable message. variants:
    the suite is a variants suite (its own passes; CPU, every op once, no --algo)."""
    default = "forward,step" if variants else "forward"
    passes = [p.strip() for p in (args.passes or default).split(",") if p.strip()]
    if variants:
        check_passes(passes)
        if args.device != "cpu" or args.algo:
            raise BenchError("a variants suite runs on the CPU and takes no --algo")
    bad = [p for p in passes if p not in PASSES] if not variants else []
    if bad or not passes:
        raise BenchError(f"--passes: unknown pass(es) {bad}; choose from {', '.join(PASSES)}")
    args.passes = passes
    if args.repeats < 1 or args.min_time < 0 or args.layer_budget <= 0:
        raise BenchError("--repeats must be >= 1, --min-time >= 0 and --layer-budget > 0")
    if args.rounds < 1:
        raise BenchError(f"--rounds must be >= 1, got {args.rounds}")
    if args.rounds > 1 and variants:
        raise BenchError(_ROUNDS_SCOPE)
    if args.batch is None and args.device == "cuda":
        args.batch = 32  # GPU comparisons at a training batch size
    if args.batch is not None and args.batch < 1:
        raise BenchError(f"--batch must be >= 1, got {args.batch}")
    if args.threads is not None and args.threads < 1:
        raise BenchError(f"--threads must be >= 1, got {args.threads}")
    try:
        args.filter_re = re.compile(args.filter) if args.filter else None
    except re.error as exc:
        raise BenchError(f"--filter: invalid regular expression {args.filter!r}: {exc}") from None
    if args.memory_format != "contiguous" and args.device != "cuda":
        raise BenchError(
            "--memory-format channels_last needs --device cuda (the CPU suite times NumPy arrays)"
        )
    if args.device == "cuda":
        check_cuda(args)
    elif args.dtype in ("float16", "bfloat16"):
        raise BenchError(
            f"--dtype {args.dtype} is GPU-only here; the CPU supports float32 and float64"
        )
    if args.algo:
        known = {
            a
            for op in ("conv", "conv_transpose", "max_pool", "avg_pool")
            for a in fastconv_algorithms(op, args.device)
        } | {"auto", "autotune"}
        unknown = sorted(set(args.algo) - known)
        if unknown:
            raise BenchError(
                f"--algo: unknown algorithm(s) {unknown}; available: {', '.join(sorted(known))}"
            )


def check_cuda(args: argparse.Namespace) -> None:
    unavailable = "--device cuda: the CUDA benchmark is not available in this build"
    if _optional("fastconv._cuda") is None:
        raise BenchError(
            f"{unavailable} (fastconv was built without its CUDA module "
            "fastconv._cuda; rebuild with a CUDA compiler and FASTCONV_CUDA=ON, "
            "or use --device cpu)"
        )
    try:  # a _cuda module that only queries devices has no algorithms to time
        fastconv.algorithms("conv", device="cuda")
    except ValueError as exc:
        status = fastconv_info().get("cuda", {}).get("status")
        raise BenchError(f"{unavailable} ({exc}{'; ' + status if status else ''})") from None
    torch = _optional("torch")
    if torch is None or not torch.cuda.is_available():
        raise BenchError(
            "--device cuda needs PyTorch with a visible CUDA device (GPU inputs are torch tensors)"
        )
    if args.dtype == "float64":
        raise BenchError("--device cuda supports float32, float16 and bfloat16")


def load_peers(args: argparse.Namespace, variants: bool = False) -> dict[str, Any]:
    """The installed peers asked for; a variants suite's are torch and, installed, JAX."""
    peers = {}
    torch = None if args.no_peers else _optional("torch")
    if torch is not None:
        peers["torch"] = torch
    if variants:
        jax = None if args.no_peers and "jax" not in args.peer else _optional("jax")
        if jax is not None:
            peers["jax"] = jax
        return peers
    if not args.no_peers and args.device == "cpu" and _optional("scipy.signal") is not None:
        peers["scipy"] = importlib.import_module("scipy")
    if "jax" in args.peer:
        if args.device != "cpu":
            raise BenchError("--peer jax times XLA's CPU convolution: use it with --device cpu")
        jax = _optional("jax")
        if jax is None:
            raise BenchError("--peer jax needs JAX: pip install 'fastconv[jax]'")
        peers["jax"] = jax
    return peers


@dataclass
class Progress:
    """tqdm on a terminal; otherwise a plain counter on stderr, one line per step."""

    total: int
    bar: Any = None
    done: int = 0

    def __post_init__(self) -> None:
        tqdm = _optional("tqdm")
        if tqdm is not None and sys.stderr.isatty():
            self.bar = tqdm.tqdm(
                total=self.total,
                file=sys.stderr,
                unit="layer-pass",
                leave=False,
                dynamic_ncols=True,
            )

    def step(self, label: str) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_description(label)
            self.bar.update(1)
        else:
            print(f"[{self.done}/{self.total}] {label}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _tasks(layers: list[Layer], passes: list[str]) -> Iterator[tuple[Layer, str]]:
    for layer in layers:
        for pass_ in passes:
            if not (layer.is_pool and pass_ == "backward_weight"):  # pools have no weights
                yield layer, pass_


def run_suite(layers: list[Layer], args: argparse.Namespace, peers: dict[str, Any]) -> list[Row]:
    torch = (peers.get("torch") or _optional("torch")) if args.device == "cuda" else None
    sync = torch.cuda.synchronize if torch is not None else (lambda: None)
    settings = Settings(args.repeats, args.min_time, args.layer_budget, args.dtype, sync)
    if torch is not None:  # --device cuda: event timing; PyTorch picks its cuDNN algorithms
        settings.events = torch.cuda
        torch.backends.cudnn.benchmark = True
        # Same math on both sides: cuDNN may use TF32 exactly when fastconv does (exact FP32
        # unless allowed, see fastconv.set_allow_tf32).
        torch.backends.cudnn.allow_tf32 = get_allow_tf32("torch")
    tasks = list(_tasks(layers, args.passes))
    progress, rows = Progress(len(tasks) * args.rounds), []
    rates: dict[tuple[str, str], float] = {}
    try:
        for r in range(args.rounds):
            for i, (layer, pass_) in enumerate(tasks):
                candidates = fastconv_candidates(layer.op, args.device, args.algo)
                candidates += peer_candidates(layer, args.device, peers)
                if "jax" in peers:
                    candidates += jax_candidates(layer, args.device)
                if r > 0:  # later rounds time what the first timed (the same set every round)
                    timed = {row.candidate for row in rows[i] if row.status == "ok"}
                    candidates = [c for c in candidates if c.name in timed]
                problem = make_problem(layer, pass_, args.dtype, args.device, args.memory_format)
                task_rows = run_task(problem, candidates, settings, rates)
                if r == 0:
                    rows.append(task_rows)
                else:
                    merge_round(rows[i], task_rows, r)
                label = f"{layer.name} {pass_}"
                progress.step(label + (f" (round {r + 1})" if args.rounds > 1 else ""))
    finally:
        progress.close()
    flat = [row for task_rows in rows for row in task_rows]
    annotate(flat)
    return flat


_STATUS_RANK = {"ok": 0, "skipped": 1, "unsupported": 2, "mismatch": 3, "error": 4}


def merge_round(rows: list[Row], more: list[Row], round_index: int) -> None:
    """Adds round `round_index` (> 0) of one (layer, pass) to the first round's rows: each
    sample tagged with its round (Row.sample_rounds), so report.paired_ratio pairs samples of
    the same round; a row keeps the worst status any round gave it (a wrong result or an error
    in a later round marks the row)."""
    by_name = {row.candidate: row for row in more}
    for row in rows:
        later = by_name.get(row.candidate)
        if later is None:
            continue
        if not row.sample_rounds:
            row.sample_rounds = [0] * len(row.times_s)
        if _STATUS_RANK.get(later.status, 4) > _STATUS_RANK.get(row.status, 4):
            row.status, row.note = later.status, later.note
        if later.max_rel_err is not None:
            row.max_rel_err = max(row.max_rel_err or 0.0, later.max_rel_err)
        row.times_s.extend(later.times_s)
        row.sample_rounds.extend([round_index] * len(later.times_s))
        if row.note.startswith("1 run (") and row.status == "ok":  # one a round: say so
            row.note = f"1 run a round ({row.note[len('1 run (') :]}"


def run_variants_suite(variants: list[Any], args: argparse.Namespace, peers: dict) -> list[Row]:
    progress = Progress(len(variants) * len(args.passes))
    try:
        return run_variants(variants, args, peers, progress.step)
    finally:
        progress.close()


def _set_threads(n: int, peers: dict[str, Any]) -> None:
    fastconv.set_num_threads(n)
    if "torch" in peers:
        peers["torch"].set_num_threads(n)


def _run(args: argparse.Namespace) -> int:
    if args.model:
        if args.rounds != 1:
            raise BenchError(_ROUNDS_SCOPE)
        if _optional("torch") is None:
            raise BenchError("--model needs PyTorch (pip install torch)")
        if args.device == "cuda":
            check_cuda(args)
        elif args.dtype in ("float16", "bfloat16") or args.memory_format != "contiguous":
            raise BenchError("--model: float16, bfloat16 and channels_last need --device cuda")
        for name in ("batch", "image_size", "threads"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise BenchError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        return main_model(args)
    suite = resolve_suite(args.suite)
    data = read_suite(suite)
    variants = is_variant_suite(data)
    check_args(args, variants)
    if variants:
        items: list[Any] = select(load_variants(suite, data), args.filter_re, args.batch)
    else:
        items = [
            layer
            for layer in load_suite(suite, data)
            if args.filter_re is None or args.filter_re.search(layer.name)
        ]
        if args.batch is not None:
            items = [dataclasses.replace(layer, n=args.batch) for layer in items]
    if not items:
        raise BenchError(f"no layer of {suite} matches --filter {args.filter!r}")
    peers = load_peers(args, variants)
    saved = (
        fastconv.get_num_threads(),
        peers["torch"].get_num_threads() if "torch" in peers else None,
    )
    args.threads = args.threads or saved[0]
    peak = probe_peak_gflops(args.dtype, args.threads) if args.device == "cpu" else None
    env = environment(args, suite, peers, peak)
    print(header_text(env, len(items)), flush=True)
    start = time.perf_counter()
    _set_threads(args.threads, peers)
    try:
        workers = peers["scipy"].fft.set_workers(args.threads) if "scipy" in peers else None
        with workers or contextlib.nullcontext():  # SciPy's FFTs get the same threads as the others
            rows = (
                run_variants_suite(items, args, peers)
                if variants
                else run_suite(items, args, peers)
            )
    finally:
        fastconv.set_num_threads(saved[0])
        if saved[1] is not None:
            peers["torch"].set_num_threads(saved[1])
    env["total_s"] = time.perf_counter() - start
    print("\n" + format_table(rows, peak))
    return write_results(rows, args, env, peak, [item.describe() for item in items])


def main(argv: list[str] | None = None) -> int:
    """Entry point of `fastconv bench`; returns the process exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage message
        return int(exc.code or 0)
    try:
        return _run(args)
    except BenchError as exc:
        print(f"fastconv bench: error: {exc}", file=sys.stderr)
        return 2
