"""Shared by tests/test_cuda.py (GPU kernels on a real GPU, host-side routing) and
tests/test_cuda_emulation.py (the same kernels in the host emulation): the tolerance of GPU
results against the CPU reference, and the convolution, transposed-convolution and pooling
cases both files run.

Tolerances (scale = max|expected|, L = products summed into one output). Inputs are rounded to
the dtype first and the float64 CPU reference runs on the rounded values, so only the kernel's
own arithmetic is measured:
  float64:  1e-10 * scale                        (any summation order passes)
  float32:  eps32 * scale * (8 sqrt(L) + 16)     (exact FP32 SIMT: random-walk summation error)
  tf32:     2^-10 * scale * 4 sqrt(L)            (each product of operands rounded to 10 bits)
  float16:  (2^-10 + eps32 * 8 sqrt(L)) * scale  (float32 accumulation, one rounding to fp16)
  bfloat16: (2^-7 + eps32 * 8 sqrt(L)) * scale   (float32 accumulation, one rounding to bf16)
Any indexing bug (wrong tap, channel or padding) is off by ~10% of scale or more.
"""

from __future__ import annotations

import math

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)


def rel_tolerance(dtype: str, reduction: int) -> float:
    root = math.sqrt(max(reduction, 1))
    return {
        "float64": 1e-10,
        "float32": EPS32 * (8 * root + 16),
        "tf32": 2.0**-10 * 4 * root,
        "float16": 2.0**-10 + EPS32 * 8 * root,
        "bfloat16": 2.0**-7 + EPS32 * 8 * root,
    }[dtype]


def assert_gpu_close(got, want, dtype: str, reduction: int, what: str = "") -> None:
    got = got.detach().double().cpu().numpy() if hasattr(got, "detach") else np.asarray(got)
    want = want.detach().double().cpu().numpy() if hasattr(want, "detach") else np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    finite = want[np.isfinite(want)]
    scale = max(float(np.max(np.abs(finite))) if finite.size else 0.0, 1e-30)
    atol = rel_tolerance(dtype, reduction) * scale
    np.testing.assert_allclose(got, want, rtol=0, atol=atol, equal_nan=True, err_msg=what)


# ---- convolution cases: (x shape, w shape, kwargs)

CONV_CASES = [
    ((2, 4, 13), (6, 4, 3), dict(stride=1, padding=1)),
    ((2, 4, 17), (6, 2, 4), dict(stride=2, padding=((1, 2),), dilation=2, groups=2)),
    ((2, 3, 9, 8), (5, 3, 3, 2), dict(stride=(2, 1), padding=((1, 0), (2, 1)))),
    ((1, 8, 11, 10), (8, 4, 3, 3), dict(stride=1, padding=2, dilation=2, groups=2)),
    ((3, 6, 7, 9), (6, 1, 3, 3), dict(stride=2, padding=1, groups=6)),  # depthwise
    ((2, 4, 12, 12), (8, 1, 5, 5), dict(padding=2, groups=4)),  # depthwise, multiplier 2
    ((1, 3, 5, 6, 4), (4, 3, 2, 3, 2), dict(stride=(1, 2, 1), padding=1)),
    ((2, 70, 9, 9), (67, 70, 1, 1), {}),  # more than one 64-wide tile on M and K
    ((1, 5, 8, 8), (3, 5, 3, 3), dict(padding=1, mode="conv")),
    ((0, 4, 8, 8), (4, 4, 3, 3), {}),  # empty batch
]
CONV_IDS = [f"{len(x) - 2}d-{i}" for i, (x, _, _) in enumerate(CONV_CASES)]


# (x_shape, w_shape, conv kwargs, whether forward / backward_data / backward_weight take the
# tensor-op path): float16 / bfloat16 (and float32 as TF32) layers of one group, rank 1-2,
# channels multiples of 16 bytes run CUTLASS's kernels over channels-last copies
# (cuda/tensor_op_conv.h); the rest the WMMA implicit GEMM.
TENSOR_OP_CASES = [
    ((2, 16, 9, 11), (24, 16, 3, 3), dict(padding=1), (True, True, True)),
    # strided, asymmetric padding (the forward's output extent is explicit)
    ((2, 8, 13, 12), (16, 8, 3, 3), dict(stride=2, padding=((1, 2), (0, 1))), (True,) * 3),
    ((1, 8, 11, 10), (8, 8, 3, 3), dict(padding=2, dilation=2, mode="conv"), (True,) * 3),
    ((2, 16, 21), (8, 16, 5), dict(padding=2, stride=2), (True,) * 3),  # 1-D
    # 1x1 stride 2: input positions no tap reaches stay zero in backward_data
    ((2, 8, 10, 9), (16, 8, 1, 1), dict(stride=2), (True,) * 3),
    ((1, 24, 7, 7), (136, 24, 3, 3), dict(padding=1), (True,) * 3),  # past one 128-wide tile
    # stride and dilation together: backward_data's stride phases need undilated taps
    ((1, 8, 12, 12), (8, 8, 3, 3), dict(stride=2, dilation=2), (True, False, True)),
    ((2, 10, 8, 8), (16, 10, 3, 3), dict(padding=1), (False,) * 3),  # C = 10
    ((2, 16, 8, 8), (16, 8, 3, 3), dict(groups=2), (False,) * 3),
    ((1, 8, 3, 6, 6), (8, 8, 3, 3, 3), dict(padding=1), (False,) * 3),  # 3-D
]
TENSOR_OP_IDS = [
    f"{len(x) - 2}d-{i}-{'tc' if any(e) else 'wmma'}"
    for i, (x, _, _, e) in enumerate(TENSOR_OP_CASES)
]


# (x_shape, w_shape, conv kwargs, whether the tiled kernels run): the shared-memory tiles of
# cuda/depthwise_tiled.cuh for 1-D and 2-D maps that fill at least half a 512-position tile,
# the per-element kernels for the rest.
DEPTHWISE_TILE_CASES = [
    ((2, 3, 20, 30), (3, 1, 3, 3), dict(padding=1, groups=3), True),
    ((2, 3, 20, 30), (3, 1, 3, 3), dict(padding=(0, 2), groups=3, mode="conv"), True),
    ((1, 2, 47, 123), (4, 1, 5, 5), dict(stride=2, padding=2, dilation=(1, 2), groups=2), True),
    ((2, 4, 700), (4, 1, 7), dict(padding=3, groups=4), True),
    ((1, 2, 40, 40), (2, 1, 31, 31), dict(padding=15, groups=2), True),
    # stride past the kernel: grad_x positions no tap reaches
    ((1, 2, 47, 179), (2, 1, 2, 2), dict(stride=3, groups=2), True),
    ((1, 2, 28, 52), (2, 1, 3, 3), dict(padding=4, groups=2), True),  # padding past the kernel
    ((1, 3, 7, 7), (3, 1, 3, 3), dict(padding=1, groups=3), False),
    # depth 1, but the depth padding puts the only window off the input: per-element kernels
    ((1, 2, 1, 16, 32), (2, 1, 1, 3, 3), dict(stride=(3, 1, 1), padding=1, groups=2), False),
    ((1, 2, 3, 12, 12), (2, 1, 3, 3, 3), dict(padding=1, groups=2), False),
]


TRANSPOSE_CASES = [
    ((2, 4, 7), (4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 6, 5, 4), (6, 2, 3, 3), dict(stride=(2, 3), padding=1, output_padding=(1, 2), groups=3)),
    ((1, 4, 3, 4, 3), (4, 2, 2, 2, 2), dict(stride=2, dilation=2, output_padding=1)),
    ((2, 4, 6, 6), (4, 1, 4, 4), dict(stride=2, padding=1, groups=4)),  # depthwise
]


POOL_CASES = [
    ((2, 3, 17), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 3, 9, 10), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True)),
    ((1, 2, 5, 6, 7), dict(kernel_size=2, stride=2, ceil_mode=True)),
]
