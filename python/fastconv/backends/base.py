"""The backend interface: what every device's backend implements, and `Call`, the operands of
one call as a backend prepared them (registry: fastconv/backends/__init__.py)."""

from __future__ import annotations

from typing import Any, Optional, Sequence


class Call:
    """The operands of one call, prepared by its backend: `handles` are what the kernels take
    (NumPy arrays or buffer addresses), `keep` holds the objects the handles point into."""

    __slots__ = (
        "backend", "library", "dtype", "device", "names", "shapes", "handles", "keep", "layouts",
        "stored_channels_last",
    )  # fmt: skip

    def __init__(
        self, backend, library, dtype, device, names, shapes, handles, keep, layouts=None,
        stored_channels_last=(),
    ) -> None:  # fmt: skip
        self.backend: Backend = backend
        self.library: str = library  # "numpy", "torch" or "cupy": the results' kind
        self.dtype: str = dtype  # "float32", ...
        self.device: int = device  # device index (0 on the CPU; -1: the arrays did not say)
        self.names: tuple[str, ...] = names
        self.shapes: tuple = shapes  # per operand; None for an absent optional one
        self.handles: tuple = handles
        self.keep: Any = keep
        # per operand, a channels-last tensor its handle points into (kept in that order, only
        # where the caller asked prepare for it: a backend that can read it in place), or None
        self.layouts: Optional[tuple] = layouts
        # per operand, whether the caller's tensor is stored channels_last, kept or copied
        # (asked only where prepare took channels_last=True); () when none is
        self.stored_channels_last: tuple = stored_channels_last


class Backend:
    """What every device's backend implements. `problem` arguments are fastconv._C.ConvProblem
    or PoolProblem objects (csrc/include/fastconv/problem.h); `plan` is whatever `conv_plan`
    returned for the chosen algorithm."""

    device = ""  # the device type it serves
    # whether prepare() takes channels_last=True (a backend that may read channels_last
    # tensors in place); other backends are never asked, so theirs need not know the keyword
    reads_channels_last = False
    dtypes: tuple[str, ...] = ()  # element types its kernels take

    def unavailable_reason(self) -> str:
        """Why this process cannot run this backend ("" when it can)."""
        return ""

    def check_errors(self, synchronize: bool) -> None:
        """Raises what this device's kernels reported without synchronising (fastconv's
        check_gpu_errors); nothing on devices whose kernels report synchronously."""

    def algorithms(self, op: str) -> list[str]:
        """Algorithm names for `op` ("conv", "conv_transpose", "max_pool", ...) in table order."""
        raise NotImplementedError

    def conv_unsupported_reason(self, problem: Any, algo: str, forced: bool = False) -> str:
        """Why `algo` cannot run `problem` ("" when it can); with `forced`, a setting that makes
        the request invalid (a bad tuning knob) raises ValueError instead."""
        raise NotImplementedError

    def conv_plan(self, problem: Any, algo: str) -> Any:
        """What run_conv needs to run `algo` on `problem` (made once per cached problem)."""
        raise NotImplementedError

    def plan_details(self, problem: Any, algo: str) -> tuple[int, str]:
        """(workspace bytes, note) of `algo` on `problem`, for explain()."""
        return 0, ""

    def reads_in_place(self, problem: Any, algo: str, channels_last: tuple) -> tuple:
        """Which of a conv call's first two operands (public order), stored channels_last as
        the two flags say, it reads in place rather than copying, for explain()."""
        return (False, False)

    def result_note(self, problem: Any, algo: str, pass_: str, stored: tuple) -> str:
        """For explain(): how a conv call whose operands are stored channels_last as `stored`
        says (public order) gets its result ("" when none is)."""
        return "the result is contiguous channel-first" if any(stored) else ""

    def prepare(
        self,
        names: Sequence[str],
        values: Sequence[Any],
        device: int,
        index: Any = None,
        channels_last: bool = False,
    ) -> Call:
        """The call's operands: dtypes checked (TypeError naming the argument), contiguous
        buffers; None stays None (optional operands); `index` is an integer array (max-pool
        indices), converted to int64, appended last. channels_last: a conv call whose backend
        may keep 4-D channels_last tensors as they are (Call.layouts) and read them in place;
        its run_conv then copies those it cannot."""
        raise NotImplementedError

    def prepare_local(self, names: Sequence[str], values: Sequence[Any], index: Any = None):
        """prepare() for the host device, classifying as it goes: None as soon as an operand
        is not this backend's (the caller then classifies every operand and asks again).
        Only the CPU backend has one."""
        return None

    def signature(self, values: Sequence[Any]) -> Optional[tuple]:
        """The host fast path's key part for these operands, or None (no fast path)."""
        return None

    def conv_runner(self, call: Call, problem: Any, plan: Any, result_shape: tuple) -> Any:
        """A callable run(a, b, bias=None) -> output for later calls of this signature, or None."""
        return None

    def pool_runner(
        self, call: Call, problem: Any, result_shape: tuple, indices_shape: Optional[tuple] = None
    ) -> Any:
        """A callable run(a, b=None) -> output for later calls of this signature, or None; with
        `indices_shape` (max_pool returning its indices) run(a) -> (output, indices)."""
        return None

    def check_allocation(self, call: Call, shape: Sequence[int], dtype: Optional[str]) -> None:
        """MemoryError when an output of `shape` cannot fit, before any work."""

    def empty(self, call: Call, shape: Sequence[int], dtype: Optional[str] = None) -> tuple:
        """(result object of the call's library, kernel handle) for a new output."""
        raise NotImplementedError

    def run_conv(self, call: Call, problem: Any, plan: Any, out: Any) -> None:
        """Runs a conv problem on call.handles = (a, b[, bias]) in the public op's terms."""
        raise NotImplementedError

    def conv_result(
        self, call: Call, problem: Any, plan: Any, pass_: str, shape: Sequence[int]
    ) -> Any:
        """Runs a conv problem (public pass `pass_`) into a new result of `shape` and returns
        it: contiguous channel-first here; the CUDA backend's follows its operands' layout."""
        out, handle = self.empty(call, shape)
        self.run_conv(call, problem, plan, handle)
        return out

    def run_conv_backward_bias(self, call: Call, out: Any) -> None:
        raise NotImplementedError

    def run_pool(self, call: Call, problem: Any, a: Any, b: Any, indices: Any, out: Any) -> None:
        raise NotImplementedError

    def run_resample(
        self, call: Call, problem: Any, a: Any, b: Any, indices: Any, out: Any, seed: int
    ) -> None:
        """Runs a resampling problem (fastconv._C.ResampleProblem: upsampling, pixel shuffle,
        stochastic pooling); a backend without these kernels raises NotImplementedError."""
        raise NotImplementedError(
            f"fastconv.{problem.kind} has no {self.device.upper()} kernels yet; "
            "run it on CPU arrays"
        )

    def run_tiled_conv(self, call: Call, op: str, problem: Any, bias_per_phase: bool, out: Any):
        """Runs a tiled_conv / locally_connected pass (`op`, fastconv._C.TiledConvProblem) on
        call.handles = (a, b[, bias]); bias_per_phase: the bias is (K, *tiles), else (K,)."""
        raise NotImplementedError(
            f"{op} has no kernels on the {self.device} backend yet (it runs on the CPU)"
        )
