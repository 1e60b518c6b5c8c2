"""The resampling ops in the PyTorch adapter: opcheck of every operator (schema, autograd
registration, fake kernels, AOT dispatch), gradcheck through fastconv's functions on tensors
that require grad, double backward of the linear ops, torch.compile, and the modules
(BlurPool, StochasticPool honouring module.training, Upsample, PixelShuffle)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_torch, torch

pytestmark = requires_torch

if torch is not None:
    import fastconv
    import fastconv.torch as fct
    from fastconv.torch import _resample_ops as ops

CHEAP = ("test_schema", "test_autograd_registration", "test_faketensor")
ALL = CHEAP + ("test_aot_dispatch_dynamic",)


def _t(shape, grad=True, dtype=None, low=0.0):
    g = torch.Generator().manual_seed(sum(shape))
    t = torch.rand(shape, generator=g, dtype=dtype or torch.float64) * (1 - low) + low
    return t.requires_grad_(grad)


def _samples():
    x2, x1, x3 = _t((2, 3, 5, 4)), _t((1, 2, 6)), _t((1, 2, 3, 2, 4))
    return [
        (ops.upsample_nearest_op, (x2, [2, 3])),
        (ops.upsample_nearest_op, (x3, [1, 2, 2])),
        (ops.upsample_linear_op, (x2, [2, 2], False)),
        (ops.upsample_linear_op, (x1, [3], True)),
        (ops.upsample_nearest_backward_op, (_t((2, 3, 10, 12)), [2, 3, 5, 4], [2, 3])),
        (ops.upsample_linear_backward_op, (_t((1, 2, 18)), [1, 2, 6], [3], False)),
        (ops.pixel_shuffle_op, (_t((2, 8, 3, 2)), 2)),
        (ops.pixel_unshuffle_op, (_t((2, 2, 4, 6)), 2)),
        (ops.stochastic_pool_op, (x2, [2, 2, 2, 2, 0, 0, 0, 0], 11)),
        (ops.stochastic_pool_eval_op, (x2, [3, 3, 2, 2, 1, 1, 1, 1])),
        (ops.stochastic_pool_eval_backward_op, (_t((2, 3, 3, 2)), x2, [3, 3, 2, 2, 1, 1, 1, 1])),
    ]


@pytest.mark.parametrize("case", range(11))
def test_opcheck(case):
    op, args = _samples()[case]
    torch.library.opcheck(op, args, test_utils=ALL if case in (2, 8) else CHEAP)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_gradcheck(rank):
    shape = (1, 2) + (4, 3, 2)[:rank]
    x = _t(shape, low=0.05)
    fns = [
        lambda x: fastconv.upsample_nearest(x, 2),
        lambda x: fastconv.upsample_linear(x, 2),
        lambda x: fastconv.upsample_linear(x, 3, align_corners=True),
        lambda x: fastconv.pixel_unshuffle(fastconv.pixel_shuffle(x * 2, 1), 2 if rank == 1 else 1),
        lambda x: fastconv.stochastic_pool(x, 2, seed=3),
        lambda x: fastconv.stochastic_pool(x, 2, stride=1, padding=1, training=False),
        lambda x: fastconv.blur_pool(x),
        lambda x: fastconv.weighted_avg_pool(x, np.ones((2,) * rank), stride=1, padding=1),
    ]
    for fn in fns:
        assert torch.autograd.gradcheck(fn, (x,))
    # the backward passes of the linear ops: their own gradients (double backward)
    g = _t((1, 2) + tuple(2 * s for s in shape[2:]))
    assert torch.autograd.gradcheck(lambda g: fastconv.upsample_linear_backward(g, shape, 2), (g,))
    assert torch.autograd.gradgradcheck(lambda x: fastconv.upsample_linear(x, 2), (x,))


def test_stochastic_backward_gradient_of_grad():
    x = _t((1, 2, 4, 4), grad=False)
    y, idx = fastconv.stochastic_pool(x, 2, seed=1, return_indices=True)
    g = _t(tuple(y.shape))
    assert torch.autograd.gradcheck(
        lambda g: fastconv.stochastic_pool_backward(g, x, 2, indices=idx), (g,)
    )


def test_compile():
    # the operators themselves (fastconv's functions check arguments in C++, outside the graph)
    def f(x):
        return ops.upsample_linear_op(x, [2, 2], False).sum() + ops.pixel_unshuffle_op(x, 2).sum()

    x = _t((1, 2, 4, 4))
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    want = f(x)
    got = compiled(x)
    assert torch.allclose(got, want)


def test_modules():
    x = _t((2, 3, 8, 8), grad=False, dtype=torch.float32)
    pool = fct.nn.StochasticPool2d(2, seed=5)
    a, b = pool(x), pool(x)
    assert torch.equal(a, b)  # a fixed seed repeats
    pool.eval()
    want = (x.unfold(2, 2, 2).unfold(3, 2, 2) ** 2).sum((-1, -2)) / x.unfold(2, 2, 2).unfold(
        3, 2, 2
    ).sum((-1, -2))
    assert torch.allclose(pool(x), want, atol=1e-6)
    fresh = fct.nn.StochasticPool2d(2)
    with pytest.raises(ValueError, match="4-D"):
        fresh(x[0])
    blur = fct.nn.BlurPool2d()
    assert blur(x).shape == (2, 3, 4, 4)
    assert torch.allclose(blur(torch.ones(1, 1, 6, 6))[0, 0, :2, :2], torch.ones(2, 2))
    for mode, kw in (("nearest", {}), ("bilinear", {"align_corners": False})):
        m, ref = (
            fct.nn.Upsample(scale_factor=2, mode=mode, **kw),
            torch.nn.Upsample(scale_factor=2, mode=mode, **kw),
        )
        assert torch.allclose(m(x), ref(x), atol=1e-6)
    m = fct.nn.Upsample(size=(5, 5), mode="bilinear")  # not integral: torch computes
    assert m(x).shape == (2, 3, 5, 5)
    assert torch.equal(
        fct.nn.PixelShuffle(2)(_t((1, 8, 2, 2), False)),
        torch.nn.PixelShuffle(2)(_t((1, 8, 2, 2), False)),
    )
    assert torch.equal(fct.nn.PixelUnshuffle(2)(x), torch.nn.PixelUnshuffle(2)(x))
    # training a module: gradients reach the input
    x.requires_grad_(True)
    fct.nn.StochasticPool2d(2)(x).sum().backward()
    assert x.grad is not None and torch.all(x.grad.sum((-1, -2)) == 16)
