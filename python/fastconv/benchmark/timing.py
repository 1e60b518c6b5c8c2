"""Timing for `fastconv bench`: first calls, output checks and interleaved samples."""

from __future__ import annotations

import gc
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .candidates import Candidate, Problem

SLOW_CALL_S = 1.5  # a first call slower than this is not repeated...
RETRY_SLOW_S = 6.0  # ...unless a second call, made when the first is under this, is faster
SKIP_ESTIMATE_S = 20.0  # skip a candidate whose predicted call (from earlier layers) exceeds this
SAMPLE_TARGET_S = 10e-3  # shorter calls run back to back in one sample (a block)
# Pause before each block, so other libraries' spinning threads go idle. PyTorch's OpenMP
# workers spin for a few ms after each operator (libgomp's default spin count; the spin's
# `pause` is slow on recent CPUs): on a 2-core AMD Zen 4, fastconv's block right after a torch
# block ran at a median 0.94 ms with a 3 ms pause, 0.72 with 6, 0.66 with 10-30 (1x1 conv
# 512 -> 2048 on 7x7, best 0.63 ms), so 3 ms charged torch's spinning to the next candidate.
SETTLE_S = 12e-3
# Untimed calls after the pause, at least one and for about this long: threads that slept
# through the pause come back late or on a busy CPU, and on a 2-vCPU VM the scheduler took a few
# ms to spread them again, so a block right after one waking call ran half its calls at one
# thread's speed (fastconv and, less often, torch: resnet50.res4.1x1 forward median 1.31 ms vs
# 0.62 with 6 ms of warm calls, best 0.60; torch 0.72 vs 0.60).
WARM_S = 6e-3
TOLERANCE = {"float32": 1e-3, "float64": 1e-8, "float16": 1e-2, "bfloat16": 5e-2}


@dataclass
class Row:
    """One (layer, pass, candidate) result."""

    layer: str
    op: str
    pass_: str
    candidate: str
    kind: str
    flops: int
    times_s: list[float] = field(default_factory=list)
    status: str = "ok"  # ok | mismatch | unsupported | skipped | error
    note: str = ""
    max_rel_err: float | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    best: bool = False
    # With `fastconv bench --rounds`: the suite round of each sample (empty: one round), so that
    # report.paired_ratio pairs samples within a round.
    sample_rounds: list[int] = field(default_factory=list)

    @property
    def median_s(self) -> float | None:
        return float(np.median(self.times_s)) if self.times_s else None

    @property
    def gflops(self) -> float | None:
        median = self.median_s
        return self.flops / median / 1e9 if median and self.flops else None

    def to_json(self, peak: float | None) -> dict[str, Any]:
        median, gflops = self.median_s, self.gflops
        return {
            "layer": self.layer,
            "op": self.op,
            "pass": self.pass_,
            "candidate": self.candidate,
            "kind": self.kind,
            "status": self.status,
            "note": self.note,
            "flops": self.flops,
            "runs": len(self.times_s),
            "times_ms": [t * 1e3 for t in self.times_s],
            "median_ms": None if median is None else median * 1e3,
            "gflops": gflops,
            "pct_peak": None if gflops is None or not peak else 100 * gflops / peak,
            "ratios": self.ratios,
            "best": self.best,
            "max_rel_err": self.max_rel_err,
            **({"sample_rounds": self.sample_rounds} if any(self.sample_rounds) else {}),
        }


@dataclass
class Settings:
    repeats: int
    min_time: float
    budget: float
    dtype: str
    sync: Callable[[], None]
    events: Any = None  # torch.cuda with --device cuda: samples timed by CUDA events


@dataclass
class Timed:
    """A candidate being timed: its row, its call, the estimate and the samples planned."""

    row: Row
    fn: Callable[[], Any]
    estimate: float  # seconds per call
    inner: int = 1  # calls per sample
    goal: int = 0  # samples wanted


def _timed_call(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - start, out


def _sample(entry: Timed, sync: Callable[[], None], events: Any = None) -> float:
    """One timed block of `inner` back-to-back calls, the way a model runs one library.

    Thread pools spin for a while after each call (OpenMP's, and fastconv's): the pause lets
    the previous candidate's spinning workers go idle so they do not steal this candidate's
    cores, and the untimed calls wake this candidate's own workers and let them settle."""
    time.sleep(SETTLE_S)
    warm_until = time.perf_counter() + WARM_S
    entry.fn()
    sync()
    while time.perf_counter() < warm_until:
        entry.fn()
        sync()
    if events is not None:  # --device cuda: GPU time between two events on the current stream
        begin, end = events.Event(enable_timing=True), events.Event(enable_timing=True)
        begin.record()
        for _ in range(entry.inner):
            entry.fn()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1e3 / entry.inner
    start = time.perf_counter()
    for _ in range(entry.inner):
        entry.fn()
    sync()
    return (time.perf_counter() - start) / entry.inner


def first_call(row: Row, fn: Callable[[], Any], settings: Settings) -> tuple[Timed | None, Any]:
    """Call fn once (warm-up, time estimate, output for the check). Returns what to time and
    the output; None to time when the call failed (row.status says how) or is too slow to
    repeat (row.times_s holds its one run)."""
    try:
        elapsed, output = _timed_call(fn, settings.sync)
        # A first call may pay one-time work that later calls do not: on the GPU cuDNN's
        # algorithm search under cudnn.benchmark, module loading, workspace growth; on the
        # CPU a library's lazy initialisation (seen: torch's autograd engine, 2.4 s and
        # 1.1 s for its first two max-pool backward calls, then 1-2 ms). A later call is
        # the estimate, else that work would be the only sample and the ratio meaningless:
        # on the GPU always one more, on the CPU up to three more while a call looks too
        # slow to repeat yet not hopeless.
        slow = min(SLOW_CALL_S, settings.budget / max(settings.repeats, 1))
        tries = 0
        while tries < 3 and (
            (settings.events is not None and tries == 0) or slow < elapsed < RETRY_SLOW_S
        ):
            elapsed, _ = _timed_call(fn, settings.sync)
            tries += 1
    except NotImplementedError as exc:
        row.status, row.note = "unsupported", f"unsupported: {exc}"
        return None, None
    except Exception as exc:  # noqa: BLE001 -- one broken candidate must not end the run
        row.status, row.note = "error", f"error: {type(exc).__name__}: {exc}"
        return None, None
    if elapsed > SLOW_CALL_S or settings.repeats * elapsed > settings.budget:
        row.times_s, row.note = [elapsed], f"1 run (too slow to repeat: {elapsed:.2f} s)"
        return None, output
    return Timed(row, fn, elapsed), output


def _first_calls(
    problem: Problem,
    candidates: Sequence[Candidate],
    settings: Settings,
    rates: dict[tuple[str, str], float],
) -> tuple[list[Row], list[Timed], dict[str, Any]]:
    """Bind and call each candidate once: warm-up, time estimate and output for the check."""
    layer = problem.layer
    rows: list[Row] = []
    timed: list[Timed] = []
    outputs: dict[str, Any] = {}
    for cand in candidates:
        row = Row(layer.name, layer.op, problem.pass_, cand.name, cand.kind, layer.flops())
        rows.append(row)
        rate = rates.get((cand.name, problem.pass_))
        if rate and row.flops / rate > SKIP_ESTIMATE_S:
            row.status, row.note = "skipped", f"skipped: too slow, est. {row.flops / rate:.0f} s"
            continue
        try:
            fn = cand.bind(problem)
        except NotImplementedError as exc:
            row.status, row.note = "unsupported", f"unsupported: {exc}"
            continue
        except Exception as exc:  # noqa: BLE001 -- one broken candidate must not end the run
            row.status, row.note = "error", f"error: {type(exc).__name__}: {exc}"
            continue
        entry, output = first_call(row, fn, settings)
        if row.status == "ok":
            outputs[cand.name] = output
        if entry is not None:
            timed.append(entry)
    return rows, timed, outputs


def _plan_samples(timed: list[Timed], settings: Settings) -> list[Timed]:
    """Pick samples per candidate; demote candidates to one run when over the layer budget."""
    for entry in timed:
        if entry.estimate < 0.1:  # a cheap second warm-up gives a better per-call estimate
            entry.estimate, _ = _timed_call(entry.fn, settings.sync)
        entry.inner = max(1, round(SAMPLE_TARGET_S / max(entry.estimate, 1e-9)))
        sample = entry.inner * entry.estimate
        entry.goal = max(settings.repeats, math.ceil(settings.min_time / sample))

    def cost(e: Timed) -> float:
        return e.goal * e.inner * e.estimate

    total = sum(cost(e) for e in timed)
    if total > settings.budget:  # shrink the min-time extension first, keep `repeats`
        for entry in timed:
            entry.goal = max(settings.repeats, int(entry.goal * settings.budget / total))
    kept = sorted(timed, key=cost)
    while kept and sum(cost(e) for e in kept) > settings.budget:
        dropped = kept.pop()
        dropped.row.times_s = [dropped.estimate]
        dropped.row.note = f"1 run (over the {settings.budget:g} s layer budget)"
    kept_ids = {id(e) for e in kept}
    return [e for e in timed if id(e) in kept_ids]


def _measure(timed: list[Timed], sync: Callable[[], None], events: Any = None) -> None:
    """A fresh (seeded) order of the candidates every round, so drifting noise hits all of them
    equally and no candidate always runs right after the same other one: a library's threads
    keep a core busy for a while after its calls, and a fixed rotation charged that to the same
    next candidate every round (measured: the candidate after torch ran 20-30% slower)."""
    rounds = max((e.goal for e in timed), default=0)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside one sample would be charged to that candidate
    order_rng = random.Random(len(timed))
    try:
        for _ in range(rounds):
            order = list(timed)
            order_rng.shuffle(order)
            for entry in order:
                if len(entry.row.times_s) < entry.goal:
                    entry.row.times_s.append(_sample(entry, sync, events))
    finally:
        if gc_was_enabled:
            gc.enable()


def measure(timed: list[Timed], settings: Settings) -> None:
    """Samples for the first-called candidates of one problem, interleaved (into row.times_s)."""
    _measure(_plan_samples(timed, settings), settings.sync, settings.events)


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, (tuple, list)):  # e.g. (y, indices)
        value = value[0]
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()  # also covers bfloat16, unknown to NumPy
    return np.asarray(value, dtype=np.float64)


def check_outputs(rows: list[Row], outputs: dict[str, Any], dtype: str) -> None:
    """Compare every output with torch's (or fastconv's reference) and flag mismatches."""
    oracle = next((name for name in ("torch", "reference") if name in outputs), None)
    if oracle is None:
        return
    expected = _to_numpy(outputs[oracle])
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    for row in rows:
        if row.candidate == oracle or row.candidate not in outputs:
            continue
        got = _to_numpy(outputs[row.candidate])
        if got.shape != expected.shape:
            row.status, row.note = "mismatch", f"MISMATCH: shape {got.shape} != {expected.shape}"
            continue
        row.max_rel_err = float(np.max(np.abs(got - expected), initial=0.0)) / scale
        if not row.max_rel_err <= TOLERANCE[dtype]:  # also catches NaN
            row.status = "mismatch"
            row.note = f"MISMATCH: rel. error {row.max_rel_err:.1e} vs {oracle}"


def run_task(
    problem: Problem,
    candidates: Sequence[Candidate],
    settings: Settings,
    rates: dict[tuple[str, str], float],
) -> list[Row]:
    """Time all candidates of one (layer, pass)."""
    rows, timed, outputs = _first_calls(problem, candidates, settings, rates)
    check_outputs(rows, outputs, settings.dtype)
    del outputs
    measure(timed, settings)
    for row in rows:
        if row.gflops:  # best rate seen so far predicts this candidate's later layers
            key = (row.candidate, row.pass_)
            rates[key] = max(rates.get(key, 0.0), row.flops / row.median_s)
    return rows
