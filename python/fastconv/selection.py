"""Algorithm selection: the one readable place that decides which algorithm runs a problem.

`select(problem, backend, algo)` takes a compiled problem (fastconv._C.ConvProblem: the conv
that runs, incl. a transposed conv's) and the backend of the call's device, and returns the
algorithm and why; explain() reads the same result. Each device has its own `auto` rule: the
GPU's here (_cuda_rule), the CPU's in _cpu_rule.py (cpu_rule, with its measurements).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import autotune
from ._cpu_rule import cpu_rule

# Every algorithm name fastconv knows, built or not (README, "Algorithms").
KNOWN_ALGORITHMS = (
    "reference",
    "direct",
    "depthwise",
    "im2col",
    "implicit_gemm",
    "winograd",
    "fft",
    "implicit_gemm_simt",
)
OPS = ("conv", "conv_transpose", "max_pool", "avg_pool", "lp_pool")
PASSES = ("forward", "backward_data", "backward_weight")
# Fallback order behind `auto`'s first choice (explain() lists the applicable ones).
_FALLBACKS = (
    "implicit_gemm",
    "implicit_gemm_simt",
    "depthwise",
    "direct",
    "winograd",
    "fft",
    "im2col",
    "reference",
)


@dataclass(frozen=True)
class Selection:
    """The algorithm that runs a problem and why."""

    algo: str
    reason: str
    tuning: Any = field(default=None, compare=False)  # algo="autotune": autotune.Tuning


@dataclass
class Explanation:
    """What `auto` (or a forced algorithm) would run for a problem, and why."""

    op: str
    pass_: str
    algo: str
    reason: str
    candidates: list[str] = field(default_factory=list)
    workspace_bytes: int = 0
    copies: list[str] = field(default_factory=list)  # operands a call copies first, and why

    def __str__(self) -> str:
        copies = "".join(f" {c}." for c in self.copies)
        return (
            f"{self.op} {self.pass_}: algorithm '{self.algo}' - {self.reason}. "
            f"Candidates in order: {', '.join(self.candidates)}. "
            f"Workspace: {self.workspace_bytes} bytes.{copies}"
        )


def _cuda_rule(problem: Any, usable: Any) -> tuple[str, str]:
    """The GPU's `auto`: the direct depthwise kernel for one input channel per group of the
    conv that runs (w.shape[1] == 1 for conv and transposed conv alike), else implicit GEMM."""
    if usable("depthwise"):
        return "depthwise", "one input channel per group: direct depthwise kernel"
    return "implicit_gemm", "implicit GEMM (tensor cores for float16/bfloat16, TF32 if allowed)"


_AUTO_RULES = {"cpu": cpu_rule, "cuda": _cuda_rule}


def _first_usable(problem: Any, usable: Any) -> tuple[str, str]:
    return "", "the first algorithm of the backend that can run it"


def candidates(problem: Any, backend: Any, first: str = "") -> list[str]:
    """Algorithms of `backend` that can run `problem`: `first`, then the fallback order."""
    built = backend.algorithms(problem.op)
    order = [first] + [a for a in _FALLBACKS if a != first] + built
    seen: list[str] = []
    for a in order:
        if a in built and a not in seen and not backend.conv_unsupported_reason(problem, a):
            seen.append(a)
    return seen


def select(problem: Any, backend: Any, algo: str = "auto") -> Selection:
    """Resolves `algo` ("auto", "autotune" or a name) for `problem` on `backend`; ValueError for
    an unknown name, NotImplementedError for an algorithm that is not built or cannot run the
    problem. "autotune": the fastest of the applicable algorithms on this machine, measured
    once and remembered on disk (fastconv/autotune.py); on the GPU, auto's choice."""
    if not isinstance(algo, str):
        raise TypeError(f"algo must be a string, got {type(algo).__name__}")
    built = backend.algorithms(problem.op)
    if algo == "auto":

        def usable(name: str) -> bool:
            return name in built and not backend.conv_unsupported_reason(problem, name)

        name, reason = _AUTO_RULES.get(backend.device, _first_usable)(problem, usable)
        if not name:
            name = candidates(problem, backend)[0]
        return Selection(name, reason)
    if algo == "autotune":
        auto = select(problem, backend, "auto")
        order = candidates(problem, backend, auto.algo)
        return Selection(*autotune.choose(problem, backend, order, auto))
    if algo not in KNOWN_ALGORITHMS:
        raise ValueError(
            f"algo must be 'auto', 'autotune' or one of {KNOWN_ALGORITHMS}, got {algo!r}"
        )
    if algo not in built:
        raise NotImplementedError(
            f"algorithm '{algo}' is not available in this build of fastconv for {problem.op} on "
            f"{backend.device} (available: {', '.join(built)})"
        )
    why = backend.conv_unsupported_reason(problem, algo, forced=True)
    if why:
        raise NotImplementedError(
            f"algo={algo!r} cannot run this {problem.op} {problem.pass_}: {why}"
        )
    return Selection(algo, "forced by algo=")


def explanation(problem: Any, backend: Any, selection: Selection) -> Explanation:
    """explain()'s record of a selection: the reason with the algorithm's own note, the
    applicable candidates and the workspace of the plan that runs."""
    workspace, note = backend.plan_details(problem, selection.algo)
    reason = selection.reason + (f" [{note}]" if note else "")
    order = candidates(problem, backend, select(problem, backend, "auto").algo)  # auto's order
    return Explanation(problem.op, problem.pass_, selection.algo, reason, order, workspace)
