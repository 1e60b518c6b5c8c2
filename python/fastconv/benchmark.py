"""`fastconv bench`: time fastconv's algorithms against PyTorch and SciPy on a layer suite.

A suite is a JSON file with lists "conv", "conv_transpose" and "pool" (the format of
benchmarks/suites/reference.json). Each entry gives n, c, in (spatial extents), kernel and,
for conv ops, k (output channels); optional stride (default 1; pools: the kernel size, as in
PyTorch), padding (0), dilation (1), groups (1), output_padding (0, conv_transpose only);
pools give kind "max" or "avg". Every candidate of a (layer, pass) is timed in the same
process, interleaved in rotating order, and the median per-call time is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import gc
import importlib
import inspect
import json
import math
import os
import platform
import random
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import fastconv

PASSES = ("forward", "backward_data", "backward_weight")
PEER_ORDER = ("torch", "scipy.fftconvolve", "scipy.oaconvolve")
SLOW_CALL_S = 1.5  # a first call slower than this is not repeated
LAYER_BUDGET_S = 5.0  # default time allowed for the repeats of one (layer, pass)
SKIP_ESTIMATE_S = 20.0  # skip a candidate whose predicted call (from earlier layers) exceeds this
SAMPLE_TARGET_S = 10e-3  # shorter calls run back to back in one sample (a block)
SETTLE_S = 3e-3  # pause before each block: other libraries' spinning threads go idle
TOLERANCE = {"float32": 1e-3, "float64": 1e-8, "float16": 1e-2, "bfloat16": 5e-2}
ENTRY_KEYS = {
    "name",
    "n",
    "c",
    "k",
    "in",
    "kernel",
    "stride",
    "padding",
    "dilation",
    "groups",
    "output_padding",
    "kind",
}


class BenchError(Exception):
    """A problem with the request (suite, options); reported as one line, no traceback."""


# ---- suites


@dataclass(frozen=True)
class Layer:
    """One benchmark problem, normalised from a suite entry."""

    name: str
    op: str  # "conv" | "conv_transpose" | "max_pool" | "avg_pool"
    n: int
    c: int  # input channels
    k: int  # output channels (== c for pools)
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int = 1
    output_padding: tuple[int, ...] = ()

    @property
    def rank(self) -> int:
        return len(self.spatial)

    @property
    def is_pool(self) -> bool:
        return self.op.endswith("_pool")

    def output_spatial(self) -> tuple[int, ...]:
        dims = zip(self.spatial, self.kernel, self.stride, self.padding, self.dilation)
        if self.op == "conv_transpose":
            return tuple(
                (i - 1) * s - 2 * p + d * (k - 1) + 1 + op
                for (i, k, s, p, d), op in zip(dims, self.output_padding)
            )
        return tuple((i + 2 * p - d * (k - 1) - 1) // s + 1 for i, k, s, p, d in dims)

    def weight_shape(self) -> tuple[int, ...]:
        if self.op == "conv_transpose":  # (C_in, K_out/G, *kernel), as PyTorch
            return (self.c, self.k // self.groups, *self.kernel)
        return (self.k, self.c // self.groups, *self.kernel)

    def flops(self) -> int:
        """2*N*K*(C/G)*prod(kernel)*prod(out) for conv (every pass); one op per window element
        for pools. A transposed conv counts as the conv whose backward_data it is."""
        if self.is_pool:
            return self.n * self.c * math.prod(self.kernel) * math.prod(self.output_spatial())
        conv_out = self.spatial if self.op == "conv_transpose" else self.output_spatial()
        conv_k = self.c if self.op == "conv_transpose" else self.k
        conv_c = self.k if self.op == "conv_transpose" else self.c
        return (
            2
            * self.n
            * conv_k
            * (conv_c // self.groups)
            * math.prod(self.kernel)
            * math.prod(conv_out)
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "n": self.n,
            "c": self.c,
            "k": self.k,
            "in": list(self.spatial),
            "kernel": list(self.kernel),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "output_padding": list(self.output_padding),
            "out": list(self.output_spatial()),
            "flops": self.flops(),
        }


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BenchError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _per_dim(
    entry: dict[str, Any], key: str, rank: int, default: Any, where: str, minimum: int
) -> tuple[int, ...]:
    value = entry.get(key, default)
    values = list(value) if isinstance(value, (list, tuple)) else [value] * rank
    if len(values) != rank:
        raise BenchError(
            f"{where}: '{key}' needs {rank} entries (one per spatial dim), got {value!r}"
        )
    return tuple(_positive_int(v, f"{where}: '{key}'", minimum) for v in values)


def parse_layer(section: str, entry: Any, index: int) -> Layer:
    """Turn one suite entry into a checked Layer; errors name the entry and the key."""
    where = f"{section}[{index}]"
    if not isinstance(entry, dict):
        raise BenchError(f"{where}: expected an object, got {type(entry).__name__}")
    where = f"{section}[{index}] ({entry.get('name', '?')})"
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise BenchError(f"{where}: unknown key(s) {unknown}; known: {sorted(ENTRY_KEYS)}")
    for key in ("name", "n", "c", "in", "kernel") + (() if section == "pool" else ("k",)):
        if key not in entry:
            raise BenchError(f"{where}: missing '{key}'")
    spatial = entry["in"] if isinstance(entry["in"], list) else [entry["in"]]
    rank = len(spatial)
    if not 1 <= rank <= 3:
        raise BenchError(f"{where}: 'in' must have 1 to 3 spatial extents, got {entry['in']!r}")
    kernel = _per_dim(entry, "kernel", rank, None, where, 1)
    op = section
    if section == "pool":
        if entry.get("kind") not in ("max", "avg"):
            raise BenchError(f'{where}: \'kind\' must be "max" or "avg", got {entry.get("kind")!r}')
        op = f"{entry['kind']}_pool"
    layer = Layer(
        name=str(entry["name"]),
        op=op,
        n=_positive_int(entry["n"], f"{where}: 'n'"),
        c=_positive_int(entry["c"], f"{where}: 'c'"),
        k=entry["c"] if section == "pool" else _positive_int(entry["k"], f"{where}: 'k'"),
        spatial=_per_dim(entry, "in", rank, None, where, 1),
        kernel=kernel,
        stride=_per_dim(entry, "stride", rank, kernel if section == "pool" else 1, where, 1),
        padding=_per_dim(entry, "padding", rank, 0, where, 0),
        dilation=_per_dim(entry, "dilation", rank, 1, where, 1),
        groups=_positive_int(entry.get("groups", 1), f"{where}: 'groups'"),
        output_padding=_per_dim(entry, "output_padding", rank, 0, where, 0),
    )
    _check_layer(layer, entry, where)
    return layer


def _check_layer(layer: Layer, entry: dict[str, Any], where: str) -> None:
    if layer.c % layer.groups or layer.k % layer.groups:
        raise BenchError(
            f"{where}: channels c={layer.c}, k={layer.k} are not divisible by groups={layer.groups}"
        )
    if layer.op != "conv_transpose" and "output_padding" in entry:
        raise BenchError(f"{where}: 'output_padding' applies to conv_transpose only")
    if layer.is_pool and ("groups" in entry or "k" in entry):
        raise BenchError(f"{where}: pools take neither 'groups' nor 'k'")
    if layer.op == "avg_pool" and any(d != 1 for d in layer.dilation):
        raise BenchError(f"{where}: avg pools take no dilation")
    if layer.is_pool and any(p > k // 2 for p, k in zip(layer.padding, layer.kernel)):
        raise BenchError(f"{where}: pool padding {layer.padding} exceeds kernel_size // 2")
    if any(o < 1 for o in layer.output_spatial()):
        raise BenchError(
            f"{where}: kernel {layer.kernel} is larger than the padded input "
            f"{layer.spatial} (output {layer.output_spatial()})"
        )


def load_suite(path: Path) -> list[Layer]:
    """Read and check a suite file; layer names must be unique."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read suite {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise BenchError(f"suite {str(path)!r}: expected a JSON object at the top level")
    unknown = sorted(set(data) - {"about", "conv", "conv_transpose", "pool"})
    if unknown:
        raise BenchError(
            f"suite {str(path)!r}: unknown section(s) {unknown}; "
            "known: about, conv, conv_transpose, pool"
        )
    layers = [
        parse_layer(section, entry, i)
        for section in ("conv", "conv_transpose", "pool")
        for i, entry in enumerate(data.get(section, []))
    ]
    names = [layer.name for layer in layers]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BenchError(f"suite {str(path)!r}: duplicate layer names {duplicates}")
    return layers


def suite_dirs() -> list[Path]:
    """Where suite names resolve: the installed copy first, then the source tree's."""
    here = Path(__file__).resolve()
    return [here.parent / "suites", here.parents[2] / "benchmarks" / "suites"]


def resolve_suite(spec: str) -> Path:
    looks_like_path = spec.endswith(".json") or "/" in spec or os.sep in spec
    candidates = [] if looks_like_path else [d / f"{spec}.json" for d in suite_dirs()]
    candidates.append(Path(spec))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    names = sorted({p.stem for d in suite_dirs() if d.is_dir() for p in d.glob("*.json")})
    raise BenchError(
        f"unknown suite {spec!r}: no such file, and no {spec}.json in "
        f"{', '.join(str(d) for d in suite_dirs())}; "
        f"available: {', '.join(names) or 'none'}"
    )


# ---- problems and candidates


@dataclass
class Problem:
    """Inputs of one (layer, pass): numpy arrays on the CPU, torch tensors on a GPU."""

    layer: Layer
    pass_: str
    x: Any  # (N, C, *in)
    w: Any  # weight; None for pools
    gy: Any  # gradient of the output, (N, K, *out)


def make_problem(layer: Layer, pass_: str, dtype: str, device: str) -> Problem:
    rng = np.random.default_rng(0)
    np_dtype = np.float64 if dtype == "float64" else np.float32
    shapes = [
        (layer.n, layer.c, *layer.spatial),
        None if layer.is_pool else layer.weight_shape(),
        (layer.n, layer.k, *layer.output_spatial()),
    ]
    arrays = [None if s is None else rng.standard_normal(s, dtype=np_dtype) for s in shapes]
    if device != "cpu":
        torch = importlib.import_module("torch")
        arrays = [
            None if a is None else torch.from_numpy(a).to(device, getattr(torch, dtype))
            for a in arrays
        ]
    return Problem(layer, pass_, *arrays)


@dataclass(frozen=True)
class Candidate:
    """Something to time: a fastconv algorithm or a peer library."""

    name: str
    kind: str  # "fastconv" | "peer"
    bind: Callable[[Problem], Callable[[], Any]]  # returns the zero-argument call to time


def _accepts_algo(function: Callable[..., Any] | None) -> bool:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):  # compiled functions may hide their signature
        return True
    return "algo" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _fastconv_call(p: Problem, algo: str | None) -> Callable[[], Any]:
    layer, fc = p.layer, fastconv
    kw: dict[str, Any] = {} if algo is None else {"algo": algo}
    geo: dict[str, Any] = {"stride": layer.stride, "padding": layer.padding}
    if layer.op != "avg_pool":
        geo["dilation"] = layer.dilation
    if not layer.is_pool:
        geo["groups"] = layer.groups
    x_shape, w_shape = tuple(p.x.shape), () if p.w is None else tuple(p.w.shape)
    if layer.op == "conv":
        calls = {
            "forward": lambda: fc.conv(p.x, p.w, **geo, **kw),
            "backward_data": lambda: fc.conv_backward_data(p.gy, p.w, x_shape, **geo, **kw),
            "backward_weight": lambda: fc.conv_backward_weight(p.x, p.gy, w_shape, **geo, **kw),
        }
    elif layer.op == "conv_transpose":
        geo["output_padding"] = layer.output_padding
        calls = {
            "forward": lambda: fc.conv_transpose(p.x, p.w, **geo, **kw),
            "backward_data": lambda: fc.conv_transpose_backward_data(p.gy, p.w, **geo, **kw),
            "backward_weight": lambda: fc.conv_transpose_backward_weight(
                p.x, p.gy, w_shape, **geo, **kw
            ),
        }
    elif layer.op == "max_pool":
        if p.pass_ == "forward":
            return lambda: fc.max_pool(p.x, layer.kernel, **geo, **kw)
        # Backward from the indices the forward saved (what PyTorch's backward uses too).
        _, idx = fc.max_pool(p.x, layer.kernel, **geo, return_indices=True)
        return lambda: fc.max_pool_backward(p.gy, p.x, layer.kernel, **geo, **kw, indices=idx)
    else:
        calls = {
            "forward": lambda: fc.avg_pool(p.x, layer.kernel, **geo, **kw),
            "backward_data": lambda: fc.avg_pool_backward(p.gy, x_shape, layer.kernel, **geo, **kw),
        }
    return calls[p.pass_]


_POOL_FUNCTIONS = {
    "max_pool": ("max_pool", "max_pool_backward"),
    "avg_pool": ("avg_pool", "avg_pool_backward"),
}


def fastconv_algorithms(op: str, device: str) -> list[str]:
    try:
        return list(fastconv.algorithms(op, device=device))
    except ValueError:  # an op this build does not list
        return []


def fastconv_candidates(op: str, device: str, wanted: Sequence[str] | None) -> list[Candidate]:
    """fastconv.algorithms(op) in its order; one "auto" row where pool functions take no algo."""
    names = fastconv_algorithms(op, device)
    forced = all(_accepts_algo(getattr(fastconv, f, None)) for f in _POOL_FUNCTIONS.get(op, ()))
    if not forced:  # this build's pool functions pick their own algorithm
        names = ["auto"] if wanted is None or set(wanted) & {*names, "auto"} else []
    elif wanted is not None:
        names = [n for n in names if n in wanted] + (["auto"] if "auto" in wanted else [])
    return [
        Candidate(
            name, "fastconv", functools.partial(_fastconv_call, algo=name if forced else None)
        )
        for name in names
    ]


def _torch_conv_call(p: Problem, torch: Any, x: Any, w: Any, gy: Any) -> Callable[[], Any]:
    layer, f = p.layer, torch.nn.functional
    stride, padding, dilation = list(layer.stride), list(layer.padding), list(layer.dilation)
    transposed = layer.op == "conv_transpose"
    if p.pass_ == "forward" and transposed:
        fn = getattr(f, f"conv_transpose{layer.rank}d")
        return lambda: fn(
            x, w, None, stride, padding, list(layer.output_padding), layer.groups, dilation
        )
    if p.pass_ == "forward":
        fn = getattr(f, f"conv{layer.rank}d")
        return lambda: fn(x, w, None, stride, padding, dilation, layer.groups)
    # aten's backward computes only the gradient asked for, as a training step would
    mask = [p.pass_ == "backward_data", p.pass_ == "backward_weight", False]
    index = 0 if mask[0] else 1
    output_padding = list(layer.output_padding) if transposed else [0] * layer.rank
    backward = torch.ops.aten.convolution_backward
    return lambda: backward(
        gy, x, w, None, stride, padding, dilation, transposed, output_padding, layer.groups, mask
    )[index]


def _torch_call(p: Problem) -> Callable[[], Any]:
    torch = importlib.import_module("torch")
    x, w, gy = (torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in (p.x, p.w, p.gy))
    layer = p.layer
    if not layer.is_pool:
        return _torch_conv_call(p, torch, x, w, gy)
    pool = getattr(torch.nn.functional, f"{layer.op.split('_')[0]}_pool{layer.rank}d")
    args: tuple[Any, ...] = (layer.kernel, layer.stride, layer.padding)
    if layer.op == "max_pool":
        args += (layer.dilation,)
    if p.pass_ == "forward":
        return lambda: pool(x, *args)
    # keep the graph so each timed call runs only the pool's backward kernel
    x_leaf = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = pool(x_leaf, *args)
    return lambda: torch.autograd.grad(y, x_leaf, gy, retain_graph=True)[0]


def _scipy_applies(layer: Layer, device: str) -> bool:
    return (
        device == "cpu"
        and layer.op == "conv"
        and layer.c == layer.k == 1
        and layer.rank <= 2
        and set(layer.stride) == {1}
        and set(layer.dilation) == {1}
    )


def _scipy_call(p: Problem, convolve: Callable[..., Any]) -> Callable[[], Any]:
    layer = p.layer
    axes = tuple(range(1, layer.rank + 1))
    flip = (slice(None),) + (slice(None, None, -1),) * layer.rank
    x, w, gy = p.x[:, 0], p.w[0], p.gy[:, 0]  # (N, *in), (1, *kernel), (N, *out)
    pad_width = ((0, 0), *((q, q) for q in layer.padding))
    has_padding = any(layer.padding)

    def padded() -> Any:  # a SciPy user pads explicitly, so padding is part of the timed call
        return np.pad(x, pad_width) if has_padding else x

    if p.pass_ == "forward":  # cross-correlation is convolution with the flipped kernel
        w_flipped = w[flip]
        return lambda: convolve(padded(), w_flipped, mode="valid", axes=axes)[:, None]
    if p.pass_ == "backward_data":  # full convolution of grad_y with w, cropped to the input
        crop = (slice(None), None, *(slice(q, q + i) for q, i in zip(layer.padding, layer.spatial)))
        return lambda: convolve(gy, w, mode="full", axes=axes)[crop]
    gy_flipped = gy[flip]
    return lambda: convolve(padded(), gy_flipped, mode="valid", axes=axes).sum(
        axis=0, keepdims=True
    )[None]


def peer_candidates(layer: Layer, device: str, peers: dict[str, Any]) -> list[Candidate]:
    found = []
    if "torch" in peers:
        found.append(Candidate("torch", "peer", _torch_call))
    if "scipy" in peers and _scipy_applies(layer, device):
        signal = peers["scipy"].signal
        for fn in ("fftconvolve", "oaconvolve"):
            bind = functools.partial(_scipy_call, convolve=getattr(signal, fn))
            found.append(Candidate(f"scipy.{fn}", "peer", bind))
    return found


# ---- timing


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

    @property
    def median_s(self) -> float | None:
        return float(np.median(self.times_s)) if self.times_s else None

    @property
    def gflops(self) -> float | None:
        median = self.median_s
        return self.flops / median / 1e9 if median else None

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
class _Timed:
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


def _sample(entry: _Timed, sync: Callable[[], None], events: Any = None) -> float:
    """One timed block of `inner` back-to-back calls, the way a model runs one library.

    Thread pools spin for a while after each call (OpenMP's, and briefly fastconv's): the
    pause lets the previous candidate's spinning workers go idle so they do not steal this
    candidate's cores, and the untimed call wakes this candidate's own workers."""
    time.sleep(SETTLE_S)
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


def _first_calls(
    problem: Problem,
    candidates: Sequence[Candidate],
    settings: Settings,
    rates: dict[tuple[str, str], float],
) -> tuple[list[Row], list[_Timed], dict[str, Any]]:
    """Bind and call each candidate once: warm-up, time estimate and output for the check."""
    layer = problem.layer
    rows: list[Row] = []
    timed: list[_Timed] = []
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
            elapsed, outputs[cand.name] = _timed_call(fn, settings.sync)
        except NotImplementedError as exc:
            row.status, row.note = "unsupported", f"unsupported: {exc}"
            continue
        except Exception as exc:  # noqa: BLE001 -- one broken candidate must not end the run
            row.status, row.note = "error", f"error: {type(exc).__name__}: {exc}"
            continue
        if elapsed > SLOW_CALL_S or settings.repeats * elapsed > settings.budget:
            row.times_s, row.note = [elapsed], f"1 run (too slow to repeat: {elapsed:.2f} s)"
        else:
            timed.append(_Timed(row, fn, elapsed))
    return rows, timed, outputs


def _plan_samples(timed: list[_Timed], settings: Settings) -> list[_Timed]:
    """Pick samples per candidate; demote candidates to one run when over the layer budget."""
    for entry in timed:
        if entry.estimate < 0.1:  # a cheap second warm-up gives a better per-call estimate
            entry.estimate, _ = _timed_call(entry.fn, settings.sync)
        entry.inner = max(1, round(SAMPLE_TARGET_S / max(entry.estimate, 1e-9)))
        sample = entry.inner * entry.estimate
        entry.goal = max(settings.repeats, math.ceil(settings.min_time / sample))

    def cost(e: _Timed) -> float:
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


def _measure(timed: list[_Timed], sync: Callable[[], None], events: Any = None) -> None:
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
    _measure(_plan_samples(timed, settings), settings.sync, settings.events)
    for row in rows:
        if row.gflops:  # best rate seen so far predicts this candidate's later layers
            key = (row.candidate, row.pass_)
            rates[key] = max(rates.get(key, 0.0), row.flops / row.median_s)
    return rows


# ---- results


def annotate(rows: list[Row]) -> None:
    """Fill ratios (peer time / row time) and mark the fastest correct fastconv row."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.layer, row.pass_), []).append(row)
    for group in groups.values():
        peers = {r.candidate: r.median_s for r in group if r.kind == "peer" and r.median_s}
        for row in group:
            if row.median_s:
                row.ratios = {
                    name: t / row.median_s for name, t in peers.items() if name != row.candidate
                }
        ours = [r for r in group if r.kind == "fastconv" and r.median_s and r.status == "ok"]
        if ours:
            min(ours, key=lambda r: r.median_s or 0.0).best = True


def _fmt(value: float | None, suffix: str = "") -> str:
    if value is None:
        return "-"
    digits = 3 if value < 10 else 2 if value < 100 else 1
    return f"{value:.{digits}f}{suffix}"


def format_table(rows: list[Row], peak: float | None) -> str:
    peers = [p for p in PEER_ORDER if any(r.candidate == p for r in rows)]
    peers += sorted({r.candidate for r in rows if r.kind == "peer"} - set(peers))
    header = ["layer", "pass", "candidate", "median ms", "GFLOP/s", "% peak"]
    header += [f"vs {p.split('.')[-1]}" for p in peers] + ["note"]
    table, last = [header], ("", "")
    for row in rows:
        gflops = row.gflops
        same = (row.layer, row.pass_) == last
        last = (row.layer, row.pass_)
        cells = [
            "" if same else row.layer,
            "" if same else row.pass_,
            row.candidate + (" *" if row.best else ""),
            _fmt(None if row.median_s is None else row.median_s * 1e3),
            _fmt(gflops),
            _fmt(100 * gflops / peak) if gflops and peak else "-",
        ]
        cells += [
            _fmt(row.ratios.get(p), "x") if row.kind == "fastconv" or p != row.candidate else ""
            for p in peers
        ]
        table.append([*cells, row.note])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    numeric = range(3, len(header) - 1)  # right-align the number columns

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    notes = (
        "* fastest fastconv algorithm for the layer and pass; vs X = X's time / this time "
        "(> 1: faster than X)"
    )
    return "\n".join([line(header), rule] + [line(r) for r in table[1:]] + [notes])


def write_plot(rows: list[Row], path: Path, title: str) -> str:
    """Grouped bar chart of GFLOP/s per (layer, pass); returns a line for the user."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global backend state to disturb
    except ImportError:
        return "matplotlib is not installed; --plot skipped (pip install matplotlib)"
    timed = [r for r in rows if r.gflops]
    groups = list(dict.fromkeys((r.layer, r.pass_) for r in timed))
    names = list(
        dict.fromkeys(
            [r.candidate for r in timed if r.kind == "fastconv"]
            + [r.candidate for r in timed if r.kind == "peer"]
        )
    )
    colors = {name: f"C{i % 10}" for i, name in enumerate(names)}
    fig = Figure(figsize=(min(max(6.0, 0.9 * len(groups) + 2.0), 24.0), 5.0))
    ax = fig.subplots()
    labelled: set[str] = set()
    for g, group in enumerate(groups):
        bars = sorted(
            (r for r in timed if (r.layer, r.pass_) == group),
            key=lambda r: names.index(r.candidate),
        )
        width = 0.8 / len(bars)
        for i, row in enumerate(bars):  # centre each group's bars on its tick
            ax.bar(
                g - 0.4 + (i + 0.5) * width,
                row.gflops,
                width,
                color=colors[row.candidate],
                label=None if row.candidate in labelled else row.candidate,
            )
            labelled.add(row.candidate)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(
        [layer if pass_ == "forward" else f"{layer} ({pass_})" for layer, pass_ in groups],
        rotation=40,
        ha="right",
        fontsize=8,
    )
    ax.set_yscale("log")  # reference and tuned kernels differ by orders of magnitude
    ax.set_ylabel("GFLOP/s (log scale)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))  # beside, not over, bars
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return f"plot written to {path}"


# ---- environment


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fastconv_info() -> dict[str, Any]:
    try:
        return dict(fastconv.info())
    except Exception:  # noqa: BLE001 -- info() is a convenience; the bench runs without it
        return {}


def _optional(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def probe_peak_gflops(dtype: str, threads: int) -> float | None:
    """The machine's measured peak at `threads` threads, if this build can measure it."""
    probe = getattr(fastconv, "peak_gflops", None)
    if probe is None:
        return None
    try:
        return float(probe(dtype, threads=threads))
    except Exception:  # noqa: BLE001 -- a failing probe only costs the % column
        return None


def environment(
    args: argparse.Namespace, suite: Path, peers: dict[str, Any], peak: float | None
) -> dict[str, Any]:
    versions = {
        "fastconv": getattr(fastconv, "__version__", "?"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    for name in ("torch", "scipy"):
        module = peers.get(name) or sys.modules.get(name)
        versions[name] = module.__version__ if module else "not used"
    info = _fastconv_info()
    return {
        "suite": str(suite),
        "threads": args.threads,
        "dtype": args.dtype,
        "device": args.device,
        "batch": args.batch,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "isa": info.get("isa_active", "?"),
        "cpu_features": info.get("cpu_features", []),
        "peak_gflops": peak,
        "passes": args.passes,
        "repeats": args.repeats,
        "min_time_s": args.min_time,
        "layer_budget_s": args.layer_budget,
        "versions": versions,
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def header_text(env: dict[str, Any], n_layers: int) -> str:
    v = env["versions"]
    peak = f"{env['peak_gflops']:.1f} GFLOP/s" if env["peak_gflops"] else "not measured"
    return (
        f"fastconv bench: suite {env['suite']} ({n_layers} layers), "
        f"passes {','.join(env['passes'])}\n"
        f"threads {env['threads']} | dtype {env['dtype']} | device {env['device']} | "
        f"CPU {env['cpu']} ({env['cpu_count']} logical cores, fastconv ISA {env['isa']}) | "
        f"peak {peak}\n"
        f"fastconv {v['fastconv']} | numpy {v['numpy']} | torch {v['torch']} | "
        f"scipy {v['scipy']} | python {v['python']}"
    )


# ---- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastconv bench",
        description="Time fastconv's algorithms and installed peers "
        "(PyTorch, SciPy) on a layer suite, interleaved, in one process.",
    )
    parser.add_argument(
        "--suite",
        default="quick",
        help="suite name (quick, reference) or path to a suite JSON file",
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
        "--passes", default="forward", help="comma-separated: forward,backward_data,backward_weight"
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
    parser.add_argument("--no-peers", action="store_true", help="time fastconv only")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64", "float16", "bfloat16"],
        help="float16 and bfloat16 need --device cuda",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="batch size of every layer (default: the suite's; 32 with --device cuda)",
    )
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Turn options into checked values; raise BenchError with a readable message."""
    passes = [p.strip() for p in args.passes.split(",") if p.strip()]
    bad = [p for p in passes if p not in PASSES]
    if bad or not passes:
        raise BenchError(f"--passes: unknown pass(es) {bad}; choose from {', '.join(PASSES)}")
    args.passes = passes
    if args.repeats < 1 or args.min_time < 0 or args.layer_budget <= 0:
        raise BenchError("--repeats must be >= 1, --min-time >= 0 and --layer-budget > 0")
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
        } | {"auto"}
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
        status = _fastconv_info().get("cuda", {}).get("status")
        raise BenchError(f"{unavailable} ({exc}{'; ' + status if status else ''})") from None
    torch = _optional("torch")
    if torch is None or not torch.cuda.is_available():
        raise BenchError(
            "--device cuda needs PyTorch with a visible CUDA device (GPU inputs are torch tensors)"
        )
    if args.dtype == "float64":
        raise BenchError("--device cuda supports float32, float16 and bfloat16")


def load_peers(args: argparse.Namespace) -> dict[str, Any]:
    if args.no_peers:
        return {}
    peers = {}
    torch = _optional("torch")
    if torch is not None:
        peers["torch"] = torch
    if args.device == "cpu" and _optional("scipy.signal") is not None:
        peers["scipy"] = importlib.import_module("scipy")
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
        # unless allowed, see fastconv._gpu.set_allow_tf32).
        torch.backends.cudnn.allow_tf32 = fastconv._gpu.get_allow_tf32("torch")
    tasks = list(_tasks(layers, args.passes))
    progress, rows = Progress(len(tasks)), []
    rates: dict[tuple[str, str], float] = {}
    try:
        for layer, pass_ in tasks:
            candidates = fastconv_candidates(layer.op, args.device, args.algo)
            candidates += peer_candidates(layer, args.device, peers)
            problem = make_problem(layer, pass_, args.dtype, args.device)
            rows += run_task(problem, candidates, settings, rates)
            progress.step(f"{layer.name} {pass_}")
    finally:
        progress.close()
    annotate(rows)
    return rows


def _set_threads(n: int, peers: dict[str, Any]) -> None:
    fastconv.set_num_threads(n)
    if "torch" in peers:
        peers["torch"].set_num_threads(n)


def _run(args: argparse.Namespace) -> int:
    check_args(args)
    suite = resolve_suite(args.suite)
    layers = [
        layer
        for layer in load_suite(suite)
        if args.filter_re is None or args.filter_re.search(layer.name)
    ]
    if not layers:
        raise BenchError(f"no layer of {suite} matches --filter {args.filter!r}")
    if args.batch is not None:
        layers = [dataclasses.replace(layer, n=args.batch) for layer in layers]
    peers = load_peers(args)
    saved = (
        fastconv.get_num_threads(),
        peers["torch"].get_num_threads() if "torch" in peers else None,
    )
    args.threads = args.threads or saved[0]
    peak = probe_peak_gflops(args.dtype, args.threads) if args.device == "cpu" else None
    env = environment(args, suite, peers, peak)
    print(header_text(env, len(layers)), flush=True)
    start = time.perf_counter()
    _set_threads(args.threads, peers)
    try:
        workers = peers["scipy"].fft.set_workers(args.threads) if "scipy" in peers else None
        with workers or contextlib.nullcontext():  # SciPy's FFTs get the same threads as the others
            rows = run_suite(layers, args, peers)
    finally:
        fastconv.set_num_threads(saved[0])
        if saved[1] is not None:
            peers["torch"].set_num_threads(saved[1])
    env["total_s"] = time.perf_counter() - start
    print("\n" + format_table(rows, peak))
    return _report(rows, args, env, peak, [layer.describe() for layer in layers])


def _report(
    rows: list[Row],
    args: argparse.Namespace,
    env: dict[str, Any],
    peak: float | None,
    layers: list[dict[str, Any]],
) -> int:
    bad = [r for r in rows if r.status in ("mismatch", "error")]
    try:
        if args.json:
            payload = {"metadata": env, "layers": layers, "rows": [r.to_json(peak) for r in rows]}
            args.json.write_text(json.dumps(payload, indent=1) + "\n")
            print(f"results written to {args.json}")
        if args.plot:
            suite = Path(env["suite"]).stem
            title = f"{suite}: {env['dtype']}, {env['threads']} threads, {env['cpu']}"
            print(write_plot(rows, args.plot, title))
    except OSError as exc:  # the table above is printed; say plainly what could not be saved
        raise BenchError(f"cannot write {exc.filename}: {exc.strerror}") from None
    counts = {
        s: sum(r.status == s for r in rows) for s in ("mismatch", "error", "unsupported", "skipped")
    }
    print(f"done in {env['total_s']:.1f} s; " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if bad else 0  # wrong results or crashes fail the run, so CI notices


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


if __name__ == "__main__":
    sys.exit(main())
