"""Helpers of the fastconv.torch tests: tensors in a chosen dtype and layout, geometries through
the compiled problems. Imported as `fct_testing` (the test modules' folder is on sys.path under
pytest's default import mode); never touches torch at import time.

The folder is tests/torch_adapter/, not tests/torch/: tests/ is on sys.path (conftest.py, and
pytest's rootdir insertion), so without torch installed a tests/torch/ folder is what
`import torch` finds, as a namespace package: conftest's `torch` would not be None, the torch
tests would not skip, and every sys.modules["torch"].Tensor look-up (fastconv's, scipy's)
would fail."""

from __future__ import annotations

from conftest import torch

LAYOUTS = ("contiguous", "channels_last", "strided")


def tensor(rng, shape, dtype=None, grad=False, layout="contiguous", low=-1.0, high=1.0):
    """Uniform values in [low, high) as a tensor of `dtype` (default float64) laid out as
    `layout`: "contiguous", "channels_last" (4-D/5-D; other ranks stay contiguous) or "strided"
    (a view of every other element of a wider tensor: not contiguous in any format)."""
    dtype = torch.float64 if dtype is None else dtype
    shape = tuple(shape)
    if layout == "strided" and len(shape) > 0:
        wide = shape[:-1] + (2 * shape[-1],)
        base = torch.from_numpy(rng.uniform(low, high, wide)).to(dtype)
        t = base[..., ::2]
        assert not t.is_contiguous() or shape[-1] == 1 or t.numel() <= 1  # size-1 dims: any stride
    else:
        t = torch.from_numpy(rng.uniform(low, high, shape)).to(dtype)
        if layout == "channels_last" and t.dim() in (4, 5):
            fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
            t = t.contiguous(memory_format=fmt)
        elif layout not in LAYOUTS:
            raise ValueError(layout)
    return t.requires_grad_(grad)


def conv_shapes(op, x_shape, w_shape, stride, pad_lo, pad_hi, dilation, groups, output_padding):
    """(x_shape, w_shape, y_shape) of a conv / transposed conv, y from the compiled geometry."""
    from fastconv._problem import conv_problem

    problem = conv_problem(
        op,
        "forward",
        tuple(x_shape),
        tuple(w_shape),
        "float64",
        stride=list(stride),
        padding=[(lo, hi) for lo, hi in zip(pad_lo, pad_hi)],
        dilation=list(dilation),
        groups=groups,
        output_padding=list(output_padding) if op == "conv_transpose" else 0,
    )
    return tuple(x_shape), tuple(w_shape), tuple(problem.result_shape)


def assert_tensors_close(got, want, dtype=None, rtol=None, atol=None, msg=""):
    """torch.testing.assert_close with tolerances by dtype: float64 tight, float32 loose enough
    for any summation order or transform-domain algorithm fastconv may pick."""
    dtype = want.dtype if dtype is None else dtype
    if rtol is None:
        rtol, atol = (1e-10, 1e-10) if dtype == torch.float64 else (2e-4, 2e-4)
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=msg or None)
