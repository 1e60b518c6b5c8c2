"""algo="autotune": the fastest applicable algorithm of a conv problem, measured once per machine
and remembered on disk.

selection.select calls `choose` for algo="autotune" (selection stays the place that decides;
this module only measures and remembers). The first time a problem's key is seen, every
candidate the CPU backend can run is timed on scratch operands of the problem's shapes (the
caller's arrays are never touched; the call then runs the winner on its own operands), the
winner goes into an in-memory table and a JSON file in the user cache directory, and later
lookups - in this process or in a new one - read it without timing.

Key: op, pass, the resolved problem (shapes, strides, padding, dilation, groups, mode,
output_padding), dtype, thread count, active ISA level and fastconv version. Entries of another
version or ISA never match; an unreadable file is ignored with one warning and rewritten.

The GPU is not timed: on a backend other than the CPU "autotune" runs auto's rule and says so.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import statistics
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from . import _C
from .backends.base import Call

FORMAT = 1  # of the cache file
FILE_NAME = "autotune.json"
REPEATS = 5  # timed samples per candidate (after one untimed warm-up run)
SAMPLE_S = 1e-3  # shorter runs are repeated back to back within one sample
SLOWER = 3.0  # a candidate this many times slower than the best so far is not timed further
MARGIN = 1.05  # auto's choice stays unless another candidate is this much faster (noise)
BUDGET_S = 2.0  # seconds: timing of one problem starts no new candidate or round after this


@dataclass
class Tuning:
    """How an autotuned choice was made: the winner, the medians (ms) of the candidates timed,
    where it came from ("measured" or "cache") and the cache file."""

    algo: str
    times_ms: dict[str, float] = field(default_factory=dict)
    source: str = "measured"
    path: str = ""
    notes: dict[str, str] = field(default_factory=dict)  # candidates not fully timed, why

    def describe(self) -> str:
        timed = ", ".join(f"{a} {t:.3g} ms" for a, t in sorted(self.times_ms.items(), key=_ms))
        if self.source == "cache":
            where = f"from the autotune cache {self.path}"
        elif self.source == "only":
            return "autotune: the only applicable algorithm (nothing to time)"
        else:
            where = f"measured now, stored in {self.path or 'memory only (cache not writable)'}"
        dropped = f"; not fully timed: {', '.join(self.notes)}" if self.notes else ""
        return f"autotune: fastest {where} ({timed}{dropped})"


def _ms(item: tuple[str, float]) -> float:
    return item[1]


# ---- where and under which key


def cache_path() -> Path:
    """$FASTCONV_CACHE_DIR, else $XDG_CACHE_HOME/fastconv, else ~/.cache/fastconv; the file."""
    base = os.environ.get("FASTCONV_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = os.path.join(xdg, "fastconv") if xdg else os.path.join("~", ".cache", "fastconv")
    return Path(os.path.expanduser(base)) / FILE_NAME


_BUILD: dict[str, str] = {}


def build_identity() -> tuple[str, str]:
    """(fastconv version, active ISA level). A development build without a version is told
    apart by its module file's modification time (kernels change between rebuilds)."""
    if not _BUILD:
        version = str(getattr(_C, "__version__", "") or "")
        if not version:
            try:
                version = f"dev+{int(os.stat(_C.__file__).st_mtime)}"
            except (OSError, AttributeError, TypeError):
                version = "dev"
        _BUILD["version"] = version
        _BUILD["isa"] = str(_C.cpu_info()["active_isa"])
    return _BUILD["version"], _BUILD["isa"]


def _dims(values: Any) -> str:
    return "x".join(str(int(v)) for v in values) or "-"


def problem_key(problem: Any, threads: Optional[int] = None) -> str:
    """The cache key of a conv problem at the current (or given) thread count."""
    version, isa = build_identity()
    threads = int(_C.get_num_threads()) if threads is None else threads
    parts = [
        problem.op,
        problem.pass_,
        problem.dtype,
        "x" + _dims(problem.x_shape),
        "w" + _dims(problem.w_shape),
        "s" + _dims(problem.stride),
        "lo" + _dims(problem.pad_lo),
        "hi" + _dims(problem.pad_hi),
        "d" + _dims(problem.dilation),
        f"g{problem.groups}",
        problem.mode,
        "op" + _dims(problem.output_padding),
        f"t{threads}",
        isa,
        version,
    ]
    return " ".join(parts)


# ---- the file and the in-memory layer

_MEMORY: dict[str, dict[str, Any]] = {}  # file path -> its entries, read once per process
_WARNED: set[str] = set()
_RETUNE = [False]


def forget() -> None:
    """Drops the in-memory layer (the next lookup reads the file again)."""
    _MEMORY.clear()


@contextlib.contextmanager
def retuning() -> Iterator[None]:
    """Within: stored winners are ignored, every problem is timed again (fastconv tune --force)."""
    _RETUNE[0] = True
    try:
        yield
    finally:
        _RETUNE[0] = False


def _warn(path: Path, why: str) -> None:
    key = f"{path} {why.split()[0]}"  # once per file and kind of trouble
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(f"fastconv autotune cache {path}: {why}", RuntimeWarning, stacklevel=4)


def _read(path: Path) -> dict[str, Any]:
    """The file's entries; {} when it is missing, unreadable or of another format (warned)."""
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as e:
        _warn(path, f"cannot read it ({e.strerror}); ignored")
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a fastconv autotune cache of format 1")
        entries = data.get("entries")
        if not isinstance(entries, dict):
            raise ValueError("no 'entries' object")
    except ValueError as e:
        _warn(path, f"unreadable ({e}); ignored, it is rewritten on the next measurement")
        return {}
    return entries


def _entries(path: Path) -> dict[str, Any]:
    entries = _MEMORY.get(str(path))
    if entries is None:
        # setdefault: of threads reading the file at once the first one's dict stays, so a
        # winner stored into it is not dropped by a later thread's (older) read.
        entries = _MEMORY.setdefault(str(path), _read(path))
    return entries


def _write(path: Path, key: str, entry: dict[str, Any]) -> bool:
    """Adds one entry to the file: re-read (other processes may have added theirs), entries of
    other versions dropped, written to a temporary file and renamed over it (atomic)."""
    version, _ = build_identity()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        current = {k: v for k, v in _read(path).items() if _valid(v, version)}
        current[key] = entry
        data = {"format": FORMAT, "about": "fastconv algo='autotune' winners", "entries": current}
        fd, tmp = tempfile.mkstemp(prefix=".autotune-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        _warn(path, f"cannot write it ({e.strerror or e}); winners are kept in memory only")
        return False
    return True


def _valid(entry: Any, version: str, isa: Optional[str] = None) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("algo"), str)
        and entry.get("version") == version
        and (isa is None or entry.get("isa") == isa)
    )


def lookup(problem: Any, candidates: list[str]) -> Optional[Tuning]:
    """The stored winner of `problem` if it is still one of `candidates`."""
    if _RETUNE[0]:
        return None
    path = cache_path()
    entry = _entries(path).get(problem_key(problem))
    if not _valid(entry, *build_identity()) or entry["algo"] not in candidates:
        return None
    times = entry.get("times_ms")
    times = {k: float(v) for k, v in times.items()} if isinstance(times, dict) else {}
    return Tuning(entry["algo"], times, "cache", str(path))


def store(problem: Any, tuning: Tuning) -> None:
    """Remembers a measured winner in memory and in the cache file."""
    version, isa = build_identity()
    path = cache_path()
    key = problem_key(problem)
    entry = {
        "algo": tuning.algo,
        "times_ms": {a: round(t, 6) for a, t in tuning.times_ms.items()},
        "version": version,
        "isa": isa,
        "threads": int(_C.get_num_threads()),
        "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    _entries(path)[key] = entry
    tuning.path = str(path) if _write(path, key, entry) else ""


# ---- measuring


def _scratch(problem: Any, backend: Any) -> tuple[Call, Any]:
    """A call on scratch operands of the problem's shapes (seeded normal values) and its output."""
    rng = np.random.default_rng(0)
    dtype = np.float64 if problem.dtype == "float64" else np.float32
    operands = tuple(rng.standard_normal(s).astype(dtype) for s in problem.operand_shapes)
    shapes = tuple(tuple(a.shape) for a in operands)
    names: tuple[str, ...] = ("a", "b")
    if problem.pass_ == "forward":  # no bias: the same for every algorithm
        names, shapes, operands = names + ("bias",), shapes + (None,), operands + (None,)
    call = Call(backend, "numpy", problem.dtype, 0, names, shapes, operands, None)
    return call, backend.empty(call, problem.result_shape)[1]


def _sample(run: Callable[[], None], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        run()
    return (time.perf_counter() - start) / inner


def winner(times: dict[str, float], preferred: str) -> str:
    """The fastest of `times`, except that `preferred` (auto's choice) stays unless the fastest
    beats it by MARGIN: on a busy machine a few percent is noise, and auto's rule is measured."""
    fastest = min(times, key=lambda a: times[a])
    if preferred in times and times[preferred] <= MARGIN * times[fastest]:
        return preferred
    return fastest


def measure(problem: Any, backend: Any, candidates: list[str]) -> Tuning:
    """Times `candidates` (auto's choice first) on scratch operands: one warm-up run each (a
    candidate SLOWER times the fastest warm-up is dropped), then up to REPEATS rounds of one
    sample per candidate in turn (drift hits all alike); after each round a candidate SLOWER
    times the best median is dropped. No candidate or round starts after BUDGET_S (at least
    one full round runs). The winner: see `winner`."""
    call, out = _scratch(problem, backend)
    notes: dict[str, str] = {}
    start = time.perf_counter()
    live: dict[str, tuple[Callable[[], None], int]] = {}
    fastest = float("inf")
    for algo in candidates:
        if live and time.perf_counter() - start > BUDGET_S:
            notes[algo] = f"not timed: the {BUDGET_S:g} s budget was spent"
            continue
        try:
            plan = backend.conv_plan(problem, algo)

            def run(plan: Any = plan) -> None:
                backend.run_conv(call, problem, plan, out)

            warm = _sample(run, 1)
        except (ValueError, NotImplementedError, MemoryError) as e:  # e.g. a workspace limit
            notes[algo] = f"failed: {e}"
            continue
        if warm > SLOWER * fastest:
            notes[algo] = f"dropped after its warm-up run ({warm * 1e3:.3g} ms)"
            continue
        fastest = min(fastest, warm)
        live[algo] = (run, max(1, min(100, int(SAMPLE_S / max(warm, 1e-9)))))
    samples: dict[str, list[float]] = {a: [] for a in live}
    for _ in range(REPEATS):
        for algo, (run, inner) in live.items():
            samples[algo].append(_sample(run, inner))
        medians = {a: statistics.median(samples[a]) for a in live}
        best = min(medians.values())
        for algo in [a for a, t in medians.items() if t > SLOWER * best]:
            notes[algo] = f"dropped: over {SLOWER:g}x the best"
            del live[algo]
        if time.perf_counter() - start > BUDGET_S:
            break
    times = {a: statistics.median(t) for a, t in samples.items()}
    if not times:  # nothing ran: auto's choice, untimed
        return Tuning(candidates[0], {}, "measured", "", notes)
    ms = {a: t * 1e3 for a, t in times.items()}
    return Tuning(winner(times, candidates[0]), ms, "measured", "", notes)


def choose(problem: Any, backend: Any, candidates: list[str], auto: Any) -> tuple[str, str, Any]:
    """(algorithm, reason, Tuning or None) for algo="autotune"; `candidates` are the applicable
    algorithms in auto's order, `auto` auto's Selection (the GPU's answer)."""
    if backend.device != "cpu":
        why = f"autotune times CPU algorithms only; on {backend.device}, auto's rule: "
        return auto.algo, why + auto.reason, None
    timed = [a for a in candidates if a != "reference"] or candidates[:1]
    if len(timed) == 1:
        tuning = Tuning(timed[0], source="only")
        return timed[0], tuning.describe(), tuning
    tuning = lookup(problem, timed)
    if tuning is None:
        # One measurement at a time: Python threads autotuning the same new problem at once
        # (the kernels release the GIL) would each time it and could keep different winners for
        # one call signature; concurrent timings would also disturb each other. The second
        # finds the first's winner once it gets the lock.
        with _measuring:
            tuning = lookup(problem, timed)
            if tuning is None:
                tuning = measure(problem, backend, timed)
                store(problem, tuning)
    return tuning.algo, tuning.describe(), tuning


_measuring = threading.Lock()


def _after_fork_in_child() -> None:
    # A lock another thread held at fork() stays held in the child, which has no such thread.
    global _measuring
    _measuring = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
