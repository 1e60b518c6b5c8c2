"""Type stub of fastconv._C, the compiled CPU kernels (use the fastconv package instead)."""

from typing import Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

__version__: str
compiler: str

class UnsupportedError(NotImplementedError): ...

_Dims = Sequence[int]
_F = npt.NDArray[np.floating[Any]]

# An operand: a NumPy array (checked by the bindings) or the address of a C-contiguous buffer of
# the problem's shape and dtype (checked by the Python layer), None where optional.
_Operand = Optional[Any]
_Shape = tuple[int, ...]

class ConvPlan:
    """One algorithm's plan for a ConvProblem (csrc/include/fastconv/algorithm.h)."""

    @property
    def algo(self) -> str: ...
    @property
    def runner(self) -> str: ...
    @property
    def workspace_bytes(self) -> int: ...
    @property
    def note(self) -> str: ...
    @property
    def threads(self) -> int: ...
    @property
    def pass_(self) -> str: ...

class ConvProblem:
    """One conv or transposed-conv pass, normalised (csrc/include/fastconv/problem.h)."""

    op: str
    pass_: str
    conv_pass: str
    dtype: str
    swap_operands: bool
    x_shape: _Shape
    w_shape: _Shape
    y_shape: _Shape
    operand_shapes: tuple[_Shape, _Shape]
    result_shape: _Shape
    bias_channels: int
    stride: _Shape
    pad_lo: _Shape
    pad_hi: _Shape
    dilation: _Shape
    output_padding: _Shape
    groups: int
    mode: str
    flops: float
    conv_geometry: tuple[_Shape, _Shape, _Shape, _Shape, _Shape, _Shape, int, str]
    implicit_gemm_strided_panels: bool
    def plan(self, algo: str) -> ConvPlan: ...
    def unsupported_reason(self, algo: str, forced: bool = False) -> str: ...

class PoolProblem:
    """One pooling or max_unpool pass, normalised (csrc/include/fastconv/problem.h)."""

    kind: str
    pass_: str
    dtype: str
    x_shape: _Shape
    y_shape: _Shape
    result_shape: _Shape
    count_include_pad: bool
    p: float
    pool_geometry: tuple[_Shape, _Shape, _Shape, _Shape, _Shape, _Shape, bool]
    planes: int

def conv_problem(
    op: str,
    pass_: str,
    shape: _Dims,
    w_shape: _Dims,
    stride: _Dims,
    padding: str,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    groups: int,
    mode: str,
    output_padding: _Dims,
    dtype: str,
) -> ConvProblem: ...
def conv(
    problem: ConvProblem,
    plan: ConvPlan,
    a: _Operand,
    b: _Operand,
    bias: _Operand,
    out: _Operand,
) -> None: ...
def conv_backward_bias(
    grad_y_shape: _Dims, dtype: str, grad_y: _Operand, out: _Operand
) -> None: ...
def pool_problem(
    kind: str,
    pass_: str,
    x_shape: _Dims,
    kernel: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    ceil_mode: bool,
    count_include_pad: bool,
    p: float,
    output_size: _Dims,
    dtype: str,
) -> PoolProblem: ...
def pool(
    problem: PoolProblem,
    a: _Operand,
    b: _Operand,
    indices: _Operand,
    out: _Operand,
    reference: bool = False,
) -> None: ...
def pool_runs_direct(problem: PoolProblem) -> bool: ...
def geometry_constructions() -> int: ...
def algorithms(op: str) -> list[str]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def cpu_info() -> dict[str, Any]: ...

# Only in a build with jaxlib's headers (FASTCONV_JAX): the XLA FFI handlers of fastconv.jax as
# PyCapsules by target name, and (jaxlib version, (FFI API major, minor)) they were built for.
jax_ffi_targets: dict[str, Any]
jax_ffi_built_for: tuple[str, tuple[int, int]]

def gemm(a: _F, b: _F, c: _F, alpha: float = 1.0, beta: float = 0.0) -> None: ...
def gemm_batched(a: _F, b: _F, c: _F, alpha: float = 1.0, beta: float = 0.0) -> None: ...
def gemm_kernels() -> str: ...
def gemm_blocking(dtype: str = "float32") -> dict[str, Any]: ...
def peak_gflops(dtype: str = "float32") -> float: ...
def core_clock_ghz() -> float: ...
def fft_rfft(x: _F) -> _F: ...
def fft_irfft(X: _F, n: int) -> _F: ...
def fft_cfft(x: _F, inverse: bool = False) -> _F: ...
