"""fastconv: compiled convolution, transposed convolution and pooling kernels for Python.

NumPy in, NumPy out; torch tensor in, torch tensor out. See `fastconv.info()` for what this
build has, and `fastconv bench` for how fast it is on your machine.
"""

from __future__ import annotations

from . import _C
from ._host_memory import empty_cache
from ._runtime import (
    algorithms,
    check_gpu_errors,
    get_num_threads,
    info,
    peak_gflops,
    set_num_threads,
)
from .backends.cuda_plan import set_allow_tf32
from .functional import (
    conv,
    conv1d,
    conv2d,
    conv3d,
    conv_backward_bias,
    conv_backward_data,
    conv_backward_weight,
    conv_transpose,
    conv_transpose_backward_data,
    conv_transpose_backward_weight,
    explain,
)
from .pooling import (
    avg_pool,
    avg_pool_backward,
    global_avg_pool,
    global_max_pool,
    lp_pool,
    lp_pool_backward,
    max_pool,
    max_pool_backward,
    max_unpool,
)
from .resampling import (
    blur_pool,
    blur_pool_backward,
    pixel_shuffle,
    pixel_unshuffle,
    stochastic_pool,
    stochastic_pool_backward,
    upsample_linear,
    upsample_linear_backward,
    upsample_nearest,
    upsample_nearest_backward,
    weighted_avg_pool,
    weighted_avg_pool_backward,
)
from .selection import Explanation
from .separable import (
    separable_conv,
    separable_conv_backward_data,
    separable_conv_backward_factors,
)
from .tiled import (
    locally_connected,
    locally_connected_backward_data,
    locally_connected_backward_weight,
    tiled_conv,
    tiled_conv_backward_data,
    tiled_conv_backward_weight,
)

__version__: str = _C.__version__

__all__ = [
    "blur_pool",
    "blur_pool_backward",
    "pixel_shuffle",
    "pixel_unshuffle",
    "stochastic_pool",
    "stochastic_pool_backward",
    "upsample_linear",
    "upsample_linear_backward",
    "upsample_nearest",
    "upsample_nearest_backward",
    "weighted_avg_pool",
    "weighted_avg_pool_backward",
    "Explanation",
    "__version__",
    "algorithms",
    "avg_pool",
    "avg_pool_backward",
    "check_gpu_errors",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_backward_bias",
    "conv_backward_data",
    "conv_backward_weight",
    "conv_transpose",
    "conv_transpose_backward_data",
    "conv_transpose_backward_weight",
    "empty_cache",
    "explain",
    "get_num_threads",
    "global_avg_pool",
    "global_max_pool",
    "info",
    "lp_pool",
    "locally_connected",
    "locally_connected_backward_data",
    "locally_connected_backward_weight",
    "lp_pool_backward",
    "max_pool",
    "max_pool_backward",
    "max_unpool",
    "peak_gflops",
    "set_allow_tf32",
    "separable_conv",
    "separable_conv_backward_data",
    "separable_conv_backward_factors",
    "set_num_threads",
    "tiled_conv",
    "tiled_conv_backward_data",
    "tiled_conv_backward_weight",
]
