"""torch.library.opcheck on every fastconv custom op (torch.ops.fastconv.*): schema, autograd
registration, fake kernel vs real kernel, AOT dispatch with dynamic shapes, over samples that
cover 1-3 spatial dims, stride, dilation, groups and depthwise, asymmetric padding, bias,
float32 / float64, requires_grad on and off, non-contiguous and channels_last operands and an
empty batch; every pass of the one conv op for conv and transposed conv."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from conftest import requires_torch, torch
from fct_testing import conv_shapes, tensor

pytestmark = requires_torch

if torch is not None:
    from fastconv.torch import _ops

    F32, F64 = torch.float32, torch.float64
else:  # collected for the skip reason only
    F32 = F64 = None


# opcheck's tests: the AOT-dispatch one traces forward and backward with dynamic shapes and takes
# ~0.2-1.3 s a sample on 2 cores, the others a few ms. The default run does the cheap ones on
# every sample and all of them on the `smoke` samples (every op and every conv pass, 1-D);
# `-m slow` does all of them on every sample.
CHEAP = ("test_schema", "test_autograd_registration", "test_faketensor")
ALL = CHEAP + ("test_aot_dispatch_dynamic",)
LEVEL = pytest.mark.parametrize("level", ["default", pytest.param("all", marks=pytest.mark.slow)])


def opcheck(op, args, level, smoke):
    """opcheck (raising with its own message on a failure) at `level` for a (smoke) sample."""
    if level == "all" and smoke:
        pytest.skip("a smoke sample: fully checked in the default run")
    torch.library.opcheck(op, args, test_utils=ALL if smoke or level == "all" else CHEAP)


# ---- convolution: fastconv::conv(a, b, bias, shape, window, spec), the packed arguments
# (fastconv/torch/_ops.py's pack_conv) of one pass of a conv or transposed conv


class ConvCase(NamedTuple):
    op: str
    x: tuple  # the input of the forward (transposed: its small side)
    w: tuple
    stride: tuple
    pad_lo: tuple
    pad_hi: tuple
    dilation: tuple
    groups: int
    output_padding: tuple = ()
    bias: bool = False
    dtype: str = "f64"
    grad: bool = True
    layout: str = "contiguous"
    mode: str = "cross"
    algo: str = "auto"
    smoke: bool = False  # opcheck's AOT test in the default run too

    def __str__(self):
        flags = [self.op, f"x{self.x}", f"w{self.w}", self.dtype, self.layout]
        flags += ["bias"] * self.bias + ["grad"] * self.grad
        flags += [f"pad{self.pad_lo}/{self.pad_hi}"] * (self.pad_lo != self.pad_hi)
        return "-".join(flags + [self.mode, self.algo]).replace(" ", "")


CONV_CASES = [
    # 1-D: stride, asymmetric padding, groups, bias
    ConvCase("conv", (2, 4, 9), (6, 2, 3), (2,), (1,), (2,), (1,), 2, bias=True, smoke=True),
    # 2-D: per-dim stride and dilation, asymmetric padding, channels_last, float32
    ConvCase(
        "conv", (2, 3, 7, 6), (4, 3, 3, 2), (1, 2), (1, 0), (0, 2), (2, 1), 1,
        dtype="f32", layout="channels_last",
    ),
    # depthwise (one input channel per group, channel multiplier 2), non-contiguous, no grad
    ConvCase(
        "conv", (1, 4, 6, 6), (8, 1, 3, 3), (1, 1), (1, 1), (1, 1), (1, 1), 4,
        bias=True, grad=False, layout="strided",
    ),
    # 3-D: groups, asymmetric padding, channels_last_3d, float32
    ConvCase(
        "conv", (1, 2, 4, 5, 3), (2, 1, 2, 3, 2), (1, 2, 1), (0, 1, 1), (1, 0, 1), (1, 1, 2), 2,
        bias=True, dtype="f32", layout="channels_last",
    ),
    # an empty batch
    ConvCase("conv", (0, 3, 5, 5), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), (1, 1), 1, bias=True),
    # true convolution (mode="conv") and a forced algorithm
    ConvCase("conv", (2, 2, 5, 5), (3, 2, 2, 3), (1, 1), (0, 1), (1, 0), (1, 1), 1, mode="conv"),
    ConvCase("conv", (1, 2, 8), (2, 2, 3), (1,), (1,), (1,), (1,), 1, dtype="f32", algo="im2col"),
    # transposed 1-D: stride, output_padding, asymmetric padding, bias
    ConvCase(
        "conv_transpose", (2, 4, 5), (4, 3, 3), (2,), (1,), (0,), (1,), 1, (1,), bias=True,
        smoke=True,
    ),
    # transposed 2-D: groups, per-dim stride and output_padding, asymmetric padding,
    # channels_last, float32
    ConvCase(
        "conv_transpose", (1, 4, 4, 3), (4, 2, 3, 2), (2, 3), (1, 0), (0, 1), (1, 1), 2, (1, 2),
        dtype="f32", layout="channels_last",
    ),
    # transposed 3-D: dilation, output_padding below the dilation, non-contiguous, no grad
    ConvCase(
        "conv_transpose", (1, 2, 3, 3, 2), (2, 2, 2, 2, 2), (2, 1, 2), (0, 0, 0), (0, 0, 0),
        (1, 2, 1), 1, (1, 1, 0), bias=True, grad=False, layout="strided",
    ),
    # transposed, depthwise, empty batch
    ConvCase(
        "conv_transpose", (0, 3, 4, 4), (3, 1, 3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 3, (1, 0),
    ),
]  # fmt: skip

PASSES = ("forward", "backward_data", "backward_weight")


def conv_sample(case: ConvCase, pass_: str, rng):
    """The conv op's arguments for one pass of `case` (operands in the pass's public order)."""
    dtype = {"f32": F32, "f64": F64}[case.dtype]
    rank = len(case.x) - 2
    opad = case.output_padding or (0,) * rank
    window = (case.stride, case.pad_lo, case.pad_hi, case.dilation, case.groups, opad)
    x_shape, w_shape, y_shape = conv_shapes(case.op, case.x, case.w, *window)

    def make(shape):
        return tensor(rng, shape, dtype, case.grad, case.layout)

    bias = None
    if pass_ == "forward":
        a, b, shape = make(x_shape), make(w_shape), []
        if case.bias:
            bias = make((y_shape[1],))
    elif pass_ == "backward_data":  # (grad_y, w); conv's takes x_shape
        a, b = make(y_shape), make(w_shape)
        shape = list(x_shape) if case.op == "conv" else []
    else:  # (x, grad_y, w_shape)
        a, b, shape = make(x_shape), make(y_shape), list(w_shape)
    lists = [list(v) for v in (case.stride, case.pad_lo, case.pad_hi, case.dilation)]
    packed = _ops.pack_conv(
        case.op, pass_, shape, *lists, case.groups, case.mode, list(opad), case.algo
    )
    return (a, b, bias, *packed)


@LEVEL
@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_opcheck_conv(case, pass_, level, rng):
    opcheck(_ops.OPS.conv.default, conv_sample(case, pass_, rng), level, case.smoke)


def test_conv_samples_cover_what_they_claim():
    """The sample list keeps its coverage as it is edited."""
    cases = CONV_CASES
    assert {len(c.x) - 2 for c in cases} == {1, 2, 3}
    assert {c.op for c in cases} == {"conv", "conv_transpose"}
    assert any(c.pad_lo != c.pad_hi for c in cases if c.op == "conv")
    assert any(c.pad_lo != c.pad_hi and any(c.output_padding) for c in cases)
    assert any(any(s > 1 for s in c.stride) for c in cases)
    assert any(any(d > 1 for d in c.dilation) for c in cases)
    assert any(c.groups > 1 and c.w[1] > 1 for c in cases)  # grouped
    assert any(c.groups == c.x[1] and c.w[1 if c.op == "conv" else 1] == 1 for c in cases)
    assert {c.bias for c in cases} == {False, True}
    assert {c.dtype for c in cases} == {"f32", "f64"}
    assert {c.grad for c in cases} == {False, True}
    assert {c.layout for c in cases} >= {"contiguous", "channels_last", "strided"}
    assert any(c.x[0] == 0 for c in cases if c.op == "conv")
    assert any(c.x[0] == 0 for c in cases if c.op == "conv_transpose")


# ---- pooling


class PoolCase(NamedTuple):
    x: tuple
    kernel: tuple
    stride: tuple
    pad_lo: tuple
    pad_hi: tuple
    dilation: tuple
    ceil_mode: bool
    dtype: str = "f64"
    grad: bool = True
    layout: str = "contiguous"
    smoke: bool = False

    def __str__(self):
        flags = [f"x{self.x}", f"k{self.kernel}", f"s{self.stride}", self.dtype, self.layout]
        flags += [f"pad{self.pad_lo}/{self.pad_hi}", f"d{self.dilation}"]
        flags += ["ceil"] * self.ceil_mode + ["grad"] * self.grad
        return "-".join(flags).replace(" ", "")

    @property
    def rank(self):
        return len(self.x) - 2

    def make(self, rng, shape, low=-1.0, grad=None):
        dtype = {"f32": F32, "f64": F64}[self.dtype]
        grad = self.grad if grad is None else grad
        return tensor(rng, shape, dtype, grad, self.layout, low=low)

    def y_shape(self, dilation=None):
        from fastconv.torch import _shapes

        d = self.dilation if dilation is None else dilation
        return tuple(
            _shapes.pool_result_shape(
                self.x, self.kernel, self.stride, self.pad_lo, self.pad_hi, d, self.ceil_mode
            )
        )


POOL_CASES = [
    PoolCase((2, 3, 9), (3,), (2,), (1,), (1,), (1,), True, smoke=True),
    PoolCase((2, 3, 7, 6), (3, 2), (2, 1), (1, 0), (0, 1), (1, 2), False, "f32", True,
             "channels_last"),
    PoolCase((1, 2, 5, 4, 4), (2, 2, 2), (2, 2, 2), (0, 1, 0), (1, 0, 1), (1, 1, 1), True,
             grad=False, layout="strided"),
    PoolCase((0, 2, 6, 6), (2, 2), (2, 2), (0, 0), (0, 0), (1, 1), False),
    PoolCase((1, 2, 5, 7), (2, 3), (3, 2), (1, 1), (1, 1), (1, 1), True, "f32", False,
             "channels_last"),
]  # fmt: skip


def window(case: PoolCase, dilation=True):
    """The packed window of the pool ops: kernel + stride + pad_lo + pad_hi (+ dilation)."""
    w = [*case.kernel, *case.stride, *case.pad_lo, *case.pad_hi]
    return w + list(case.dilation) * dilation


@LEVEL
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_opcheck_max_pool_and_backward(case, level, rng):
    x = case.make(rng, case.x)
    args = (window(case), case.ceil_mode)
    opcheck(_ops.OPS.max_pool.default, (x, *args), level, case.smoke)
    _, indices = _ops.OPS.max_pool.default(x.detach(), *args)
    grad_y = case.make(rng, case.y_shape())
    opcheck(_ops.OPS.max_pool_backward.default, (grad_y, x, indices, *args), level, case.smoke)


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl", "excl"])
@LEVEL
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_opcheck_avg_pool_and_backward(case, count_include_pad, level, rng):
    if any(d != 1 for d in case.dilation):  # avg_pool has no dilation
        case = case._replace(dilation=(1,) * case.rank)
    x = case.make(rng, case.x)
    args = (window(case, dilation=False), case.ceil_mode, count_include_pad)
    opcheck(_ops.OPS.avg_pool.default, (x, *args), level, case.smoke)
    grad_y = case.make(rng, case.y_shape())
    opcheck(_ops.OPS.avg_pool_backward.default, (grad_y, list(case.x), *args), level, case.smoke)


@pytest.mark.parametrize("p", [2.0, 1.5])
@LEVEL
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_opcheck_lp_pool_and_backward(case, p, level, rng):
    # lp_pool has no padding or dilation; x > 0 keeps x**p real for a fractional p.
    zeros = (0,) * case.rank
    case = case._replace(pad_lo=zeros, pad_hi=zeros, dilation=(1,) * case.rank)
    x = case.make(rng, case.x, low=0.1)
    args = (p, [*case.kernel, *case.stride], case.ceil_mode)
    opcheck(_ops.OPS.lp_pool.default, (x, *args), level, case.smoke)
    # lp_pool_backward has no autograd formula (no double backward): its operands take none.
    grad_y = case.make(rng, case.y_shape(), grad=False)
    opcheck(_ops.OPS.lp_pool_backward.default, (grad_y, x.detach(), *args), level, case.smoke)


@LEVEL
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_opcheck_max_unpool(case, level, rng):
    case = case._replace(dilation=(1,) * case.rank, ceil_mode=False)
    pooled, indices = _ops.OPS.max_pool.default(
        case.make(rng, case.x, grad=False), window(case), False
    )
    x = case.make(rng, pooled.shape)
    unpool = _ops.OPS.max_unpool.default
    opcheck(unpool, (x, indices, window(case, False), list(case.x[2:])), level, case.smoke)
    # an output_size larger than the default (torch allows up to one stride more)
    bigger = [s + 1 for s in case.x[2:]]
    opcheck(unpool, (x, indices, window(case, False), bigger), level, case.smoke)


@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_fake_conv_gives_the_layout_of_the_real_result(op):
    """fastconv::conv's fake kernel (torch.compile's view of the result) has the layout the
    backends give: on CUDA, channels_last for a forward or backward data with a channels_last
    operand (as PyTorch's cuDNN convolutions; fastconv/backends/cuda.py), channel-first for
    the weight gradient; on the CPU always channel-first. (The real CUDA results' layout is
    tested in the emulation: test_emulated_channels_last_operands_are_read_in_place.)"""
    from torch._subclasses.fake_tensor import FakeTensorMode

    cl = torch.channels_last
    kw = dict(stride=[2, 2], pad_lo=[1, 1], pad_hi=[1, 1], dilation=[1, 1], groups=1)
    x_shape, w_shape = (2, 16, 9, 10), (8, 16, 3, 3) if op == "conv" else (16, 8, 3, 3)
    y_shape = (2, 8, 5, 5) if op == "conv" else (2, 8, 17, 19)

    def run(pass_, a, b, shape=()):
        packed = _ops.pack_conv(op, pass_, shape, *kw.values(), "cross", [0, 0], "auto")
        return _ops.OPS.conv.default(a, b, None, *packed)

    with FakeTensorMode():
        for device in ("cuda", "cpu"):
            on = dict(device=device, dtype=torch.float16)
            x, w, gy = (torch.empty(s, **on) for s in (x_shape, w_shape, y_shape))
            xc, wc, gyc = (t.to(memory_format=cl) for t in (x, w, gy))
            want_cl = device == "cuda"
            for a, b, layout in [(xc, w, want_cl), (x, wc, want_cl), (x, w, False)]:
                y = run("forward", a, b)
                assert tuple(y.shape) == y_shape
                assert y.is_contiguous(memory_format=cl) == layout and y.is_contiguous() != layout
            shape = x_shape if op == "conv" else ()
            assert run("backward_data", gyc, w, shape).is_contiguous(memory_format=cl) == want_cl
            assert run("backward_data", gy, w, shape).is_contiguous()
            assert run("backward_weight", xc, gyc, w_shape).is_contiguous()
