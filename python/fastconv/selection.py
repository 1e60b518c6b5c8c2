"""Algorithm selection: the one readable place that decides which algorithm runs a problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from . import _C

# Every algorithm name fastconv knows, built or not (DESIGN.md, "Algorithms (CPU)").
KNOWN_ALGORITHMS = ("reference", "direct", "depthwise", "im2col", "implicit_gemm", "winograd", "fft")
OPS = ("conv", "conv_transpose", "max_pool", "avg_pool", "lp_pool")
PASSES = ("forward", "backward_data", "backward_weight")
DEVICES = ("cpu",)


@dataclass(frozen=True)
class Problem:
    """What selection looks at: the conv geometry of one pass."""

    op: str
    pass_: str
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int


@dataclass
class Explanation:
    """What `auto` (or a forced algorithm) would run for a problem, and why."""

    op: str
    pass_: str
    algo: str
    reason: str
    candidates: list[str] = field(default_factory=list)
    workspace_bytes: int = 0

    def __str__(self) -> str:
        return (
            f"{self.op} {self.pass_}: algorithm '{self.algo}' - {self.reason}. "
            f"Candidates in order: {', '.join(self.candidates)}. "
            f"Workspace: {self.workspace_bytes} bytes."
        )


def algorithms(op: str = "conv", device: str = "cpu") -> list[str]:
    """Names of the algorithms this build can run for `op` on `device`."""
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES} in this build, got {device!r}")
    return list(_C.algorithms(op))


def candidates(problem: Problem) -> list[str]:
    """Algorithms to try for `problem`, best first, among those built.

    Only the naive reference kernels exist so far; later algorithms slot in here with the
    measurements behind each rule.
    """
    return [a for a in ("reference",) if a in algorithms(problem.op)]


def select(problem: Problem, algo: str = "auto") -> Explanation:
    """Resolves `algo` ("auto" or a name) for `problem`; raises ValueError or NotImplementedError."""
    if not isinstance(algo, str):
        raise TypeError(f"algo must be a string, got {type(algo).__name__}")
    order = candidates(problem)
    if algo == "auto":
        return Explanation(
            problem.op, problem.pass_, order[0],
            "the only algorithm built so far (naive loops, double accumulation)", order,
        )
    if algo not in KNOWN_ALGORITHMS:
        raise ValueError(f"algo must be 'auto' or one of {KNOWN_ALGORITHMS}, got {algo!r}")
    if algo not in algorithms(problem.op):
        raise NotImplementedError(
            f"algorithm '{algo}' is not available in this build of fastconv for {problem.op} "
            f"(available: {', '.join(algorithms(problem.op))})"
        )
    return Explanation(problem.op, problem.pass_, algo, "forced by algo=", order)


def explain_problem(problem: Problem, algo: str = "auto") -> Explanation:
    if problem.pass_ not in PASSES:
        raise ValueError(f"pass_ must be one of {PASSES}, got {problem.pass_!r}")
    return select(problem, algo)


def as_tuple(v: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(e) for e in v)
