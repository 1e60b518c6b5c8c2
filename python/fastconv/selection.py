"""Algorithm selection: the one readable place that decides which algorithm runs a problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from . import _C

# Every algorithm name fastconv knows, built or not (DESIGN.md, "Algorithms (CPU)").
KNOWN_ALGORITHMS = (
    "reference",
    "direct",
    "depthwise",
    "im2col",
    "implicit_gemm",
    "winograd",
    "fft",
)
OPS = ("conv", "conv_transpose", "max_pool", "avg_pool", "lp_pool")
PASSES = ("forward", "backward_data", "backward_weight")
DEVICES = ("cpu", "cuda")


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

    @property
    def conv_pass(self) -> str:
        """The convolution pass that runs: a transposed conv's forward is the conv's
        backward-data pass and its backward-data the conv's forward."""
        if self.op == "conv_transpose" and self.pass_ != "backward_weight":
            return "backward_data" if self.pass_ == "forward" else "forward"
        return self.pass_


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
    if device == "cuda":  # GPU kernels (fastconv/_gpu.py); ValueError saying why if none runs here
        from . import _gpu

        return _gpu.algorithms(op)
    return list(_C.algorithms(op))


def workspace_bytes(problem: Problem, algo: str) -> int:
    """Scratch memory `algo` allocates for one call on `problem` (0 for most algorithms)."""
    return int(
        _C.conv_workspace_bytes(
            algo,
            problem.conv_pass,
            list(problem.x_shape),
            list(problem.w_shape),
            list(problem.stride),
            list(problem.pad_lo),
            list(problem.pad_hi),
            list(problem.dilation),
            problem.groups,
            problem.dtype,
        )
    )


def unsupported_reason(problem: Problem, algo: str) -> str:
    """Why `algo` cannot run `problem` ("" when it can), e.g. winograd on a strided conv."""
    if algo == "reference":
        return ""
    return str(
        _C.conv_unsupported_reason(
            algo,
            problem.conv_pass,
            list(problem.x_shape),
            list(problem.w_shape),
            list(problem.stride),
            list(problem.pad_lo),
            list(problem.pad_hi),
            list(problem.dilation),
            problem.groups,
        )
    )


def _auto_rule(problem: Problem) -> tuple[str, str]:
    """The `auto` choice for one pass and the reason.

    Measured with `fastconv bench --suite reference --passes forward,backward_data,backward_weight`
    (2 threads, Zen 5, float32; ratios are PyTorch time / fastconv time, see README):
    - implicit_gemm is the fastest built algorithm on every dense and grouped layer's forward and
      backward-weight pass (e.g. res3.3x3 forward 0.81x vs im2col 0.47x; 1x1 layers 1.05-1.58x).
    - The conv backward-data pass (also the transposed conv's forward) with stride > 1 runs
      implicit_gemm by phases (one unit-stride GEMM per residue class of the stride):
      res3.3x3s2 0.93x vs im2col 0.56x, unet.up2x2 forward 1.25x vs 0.66x, dcgan.g4 0.74x vs
      0.52x. With only a few input channels per group (a network's first layer) each phase's
      GEMM has M = C/G rows, and im2col's M = C/G * taps wins (resnet50.conv1 1.03x vs 0.80x,
      alexnet.conv1 0.89x vs 0.59x). On small images col2im is cheap and the implicit gather
      dominates (res5.3x3, 7x7: 0.67x vs 0.54x), except 1x1 kernels, whose backward data is a
      plain GEMM (res5.1x1: 0.85x vs 0.60x).
    - Depthwise-like groups (one or two channels in and out per group) with small kernels leave
      a GEMM nothing to block over; for backward-weight the reference loops are 3-6x faster
      than either GEMM (mobilenetv2.dw14 0.25x vs 0.05x) until the depthwise algorithm exists.
      Long kernels give the GEMM a reduction to block over again (replknet.dw31 31x31:
      implicit_gemm 1.29x vs reference 0.95x; signal.1d.k1025: 1.11x vs 0.36x).
    """
    built = algorithms(problem.op)
    if "implicit_gemm" not in built:
        return "reference", "the only algorithm in this build"
    conv_pass = problem.conv_pass
    k_per_group = problem.w_shape[0] // problem.groups
    c_per_group = problem.w_shape[1]
    spatial = 1
    for e in problem.x_shape[2:]:
        spatial *= e
    taps = 1
    for e in problem.w_shape[2:]:
        taps *= e
    if conv_pass == "backward_weight" and c_per_group * k_per_group <= 2 and taps <= 25:
        return (
            "reference",
            "depthwise-like groups with a small kernel: a GEMM has nothing to block over",
        )
    if conv_pass == "backward_data" and "im2col" in built:
        if any(s > 1 for s in problem.stride) and c_per_group < 8 and c_per_group * k_per_group > 2:
            return "im2col", "strided backward-data into few channels: GEMM over (c, tap) rows"
        if spatial < 64 and taps > 1:
            return "im2col", "backward-data on a small image: col2im is cheap"
    # Large images: once one image's input no longer fits L2, implicit panels gather from
    # memory, while im2col's cache-sized column chunks are filled with long row copies and
    # packed by the GEMM's own packers (vgg16.conv1_2, 224x224x64: forward 0.76x vs 0.57x,
    # backward-weight 0.85x vs 0.76x; conv2_2: 0.82x vs 0.72x, 0.91x vs 0.84x). Inputs that
    # fit L2 (res2, 56x56x64) or short kernels (wavenet, k=2) stay on implicit_gemm.
    itemsize = 8 if problem.dtype == "float64" else 4
    input_bytes = c_per_group * spatial * itemsize
    if taps >= 9 and input_bytes > (2 << 20) and "im2col" in built:
        if conv_pass in ("forward", "backward_weight"):
            return "im2col", "large image: cache-sized column chunks beat gathering panels"
    return "implicit_gemm", "packed GEMM with panels read straight from the input, no column buffer"


def candidates(problem: Problem) -> list[str]:
    """Algorithms to try for `problem`, best first, among those built."""
    first, _ = _auto_rule(problem)
    built = algorithms(problem.op)
    order = [first] + [
        a for a in ("implicit_gemm", "winograd", "fft", "im2col", "reference") if a != first
    ]  # fallbacks
    return [a for a in order if a in built and not unsupported_reason(problem, a)]


def select(problem: Problem, algo: str = "auto") -> Explanation:
    """Resolves `algo` ("auto" or a name) for `problem`; ValueError or NotImplementedError."""
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
    why = unsupported_reason(problem, algo)
    if why:
        raise NotImplementedError(
            f"algo={algo!r} cannot run this {problem.op} {problem.pass_}: {why}"
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
