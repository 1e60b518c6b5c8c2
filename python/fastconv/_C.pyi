"""Type stub of fastconv._C, the compiled CPU kernels (use the fastconv package instead)."""

from typing import Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

__version__: str
compiler: str

class UnsupportedError(NotImplementedError): ...

_Dims = Sequence[int]
_F = npt.NDArray[np.floating[Any]]
_I = npt.NDArray[np.int64]

def conv_forward(
    x: _F,
    w: _F,
    bias: Optional[_F],
    y: _F,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    groups: int,
    mode: str,
    algo: str,
) -> None: ...
def conv_backward_data(
    grad_y: _F,
    w: _F,
    grad_x: _F,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    groups: int,
    mode: str,
    algo: str,
) -> None: ...
def conv_backward_weight(
    x: _F,
    grad_y: _F,
    grad_w: _F,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    groups: int,
    mode: str,
    algo: str,
) -> None: ...
def conv_backward_bias(grad_y: _F, grad_bias: _F) -> None: ...
def conv_transpose_forward(
    x: _F,
    w: _F,
    bias: Optional[_F],
    y: _F,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    output_padding: _Dims,
    dilation: _Dims,
    groups: int,
    algo: str,
) -> None: ...
def conv_transpose_backward_data(
    grad_y: _F,
    w: _F,
    grad_x: _F,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    output_padding: _Dims,
    dilation: _Dims,
    groups: int,
    algo: str,
) -> None: ...
def conv_transpose_backward_weight(
    x: _F,
    grad_y: _F,
    grad_w: _F,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    output_padding: _Dims,
    dilation: _Dims,
    groups: int,
    algo: str,
) -> None: ...
def max_pool_forward(
    x: _F,
    y: _F,
    indices: Optional[_I],
    kernel: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    ceil_mode: bool,
) -> None: ...
def max_pool_backward(
    grad_y: _F,
    x: _F,
    grad_x: _F,
    kernel: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    ceil_mode: bool,
) -> None: ...
def max_pool_backward_indices(
    grad_y: _F,
    indices: Any,
    grad_x: _F,
    kernel: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    ceil_mode: bool,
) -> None: ...
def avg_pool_forward(
    x: _F,
    y: _F,
    kernel: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    ceil_mode: bool,
    count_include_pad: bool,
) -> None: ...
def avg_pool_backward(
    grad_y: _F,
    grad_x: _F,
    kernel: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    ceil_mode: bool,
    count_include_pad: bool,
) -> None: ...
def lp_pool_forward(
    x: _F, y: _F, p: float, kernel: _Dims, stride: _Dims, ceil_mode: bool
) -> None: ...
def lp_pool_backward(
    grad_y: _F, x: _F, grad_x: _F, p: float, kernel: _Dims, stride: _Dims, ceil_mode: bool
) -> None: ...
def max_unpool_forward(x: _F, indices: _I, y: _F) -> None: ...
def conv_output_shape(
    x_shape: _Dims,
    w_shape: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    groups: int,
) -> list[int]: ...
def conv_transpose_output_shape(
    x_shape: _Dims,
    w_shape: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    output_padding: _Dims,
    dilation: _Dims,
    groups: int,
) -> list[int]: ...
def conv_transpose_input_shape(
    grad_y_shape: _Dims,
    w_shape: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    output_padding: _Dims,
    dilation: _Dims,
    groups: int,
) -> list[int]: ...
def transposed_extent(
    in_: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int, output_padding: int
) -> int: ...
def pool_output_shape(
    x_shape: _Dims,
    kernel: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    ceil_mode: bool,
) -> list[int]: ...
def algorithms(op: str) -> list[str]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def cpu_info() -> dict[str, Any]: ...
def conv_workspace_bytes(
    algo: str,
    pass_: str,
    x_shape: _Dims,
    w_shape: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    groups: int,
    dtype: str,
) -> int: ...
def conv_unsupported_reason(
    algo: str,
    pass_: str,
    x_shape: _Dims,
    w_shape: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    groups: int,
) -> str: ...
def conv_algorithm_note(
    algo: str,
    pass_: str,
    x_shape: _Dims,
    w_shape: _Dims,
    stride: _Dims,
    pad_lo: _Dims,
    pad_hi: _Dims,
    dilation: _Dims,
    groups: int,
) -> str: ...
def gemm(a: _F, b: _F, c: _F, alpha: float = 1.0, beta: float = 0.0) -> None: ...
def gemm_batched(a: _F, b: _F, c: _F, alpha: float = 1.0, beta: float = 0.0) -> None: ...
def gemm_kernels() -> str: ...
def gemm_blocking(dtype: str = "float32") -> dict[str, Any]: ...
def peak_gflops(dtype: str = "float32") -> float: ...
def core_clock_ghz() -> float: ...
