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
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]  # of the conv geometry (transposed conv: high padding - output_padding)
    dilation: tuple[int, ...]
    groups: int
    dtype: str = "float32"

    @property
    def kernel(self) -> tuple[int, ...]:
        return self.w_shape[2:]


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


def workspace_bytes(problem: Problem, algo: str) -> int:
    """Scratch memory `algo` allocates for one call on `problem` (0 for most algorithms)."""
    return int(_C.conv_workspace_bytes(
        algo, problem.pass_, list(problem.x_shape), list(problem.w_shape), list(problem.stride),
        list(problem.pad_lo), list(problem.pad_hi), list(problem.dilation), problem.groups,
        problem.dtype,
    ))


def _auto_rule(problem: Problem) -> tuple[str, str]:
    """The `auto` choice for a problem and the reason, from measurements on a 2-core Zen 4
    (`fastconv bench --suite reference`, see README): the packed-GEMM algorithms beat the
    naive reference on every layer but tiny ones; implicit GEMM avoids the column buffer and
    ties or beats im2col except where the patch matrix is reused enough to pay for itself."""
    c_per_group = problem.w_shape[1]
    k_per_group = problem.w_shape[0] // problem.groups if problem.op == "conv" else problem.w_shape[1]
    built = algorithms(problem.op)
    if "implicit_gemm" not in built:
        return "reference", "the only algorithm in this build"
    if c_per_group * k_per_group < 4:
        return "reference", "one or two channels per group: a GEMM has nothing to block over"
    return "implicit_gemm", "packed GEMM with panels read straight from the input, no column buffer"


def candidates(problem: Problem) -> list[str]:
    """Algorithms to try for `problem`, best first, among those built."""
    first, _ = _auto_rule(problem)
    built = algorithms(problem.op)
    order = [first] + [a for a in ("implicit_gemm", "im2col", "reference") if a != first]
    return [a for a in order if a in built]


def select(problem: Problem, algo: str = "auto") -> Explanation:
    """Resolves `algo` ("auto" or a name) for `problem`; raises ValueError or NotImplementedError."""
    if not isinstance(algo, str):
        raise TypeError(f"algo must be a string, got {type(algo).__name__}")
    order = candidates(problem)
    if algo == "auto":
        name, reason = _auto_rule(problem)
        return Explanation(problem.op, problem.pass_, name, reason, order)
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
    e = select(problem, algo)
    e.workspace_bytes = workspace_bytes(problem, e.algo)
    return e


def as_tuple(v: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(e) for e in v)
