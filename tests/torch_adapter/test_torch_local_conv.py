"""fastconv.torch for tiled / locally connected / separable convolution: the fastconv::tiled_conv
operator's gradients against torch autograd of the unfold + einsum formulation, gradcheck and
gradgradcheck, the fake kernel under torch.compile, and the nn modules."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import fastconv  # noqa: E402
import fastconv.torch as fct  # noqa: E402
from fastconv.torch import nn as fnn  # noqa: E402


def unfold_einsum(x, w, bias, stride, padding, tiles):
    """2-D tiled conv in torch ops: unfold, pick each position's kernel, einsum."""
    k, c = w.shape[0], w.shape[3]
    kernel = w.shape[4:]
    cols = torch.nn.functional.unfold(x, kernel, padding=padding, stride=stride)
    oh = (x.shape[2] + 2 * padding - kernel[0]) // stride + 1
    ow = (x.shape[3] + 2 * padding - kernel[1]) // stride + 1
    rows = torch.arange(oh) % tiles[0]
    cols_i = torch.arange(ow) % tiles[1]
    per_pos = w[:, rows][:, :, cols_i]  # (K, oh, ow, C, *kernel)
    y = torch.einsum("nql,klq->nkl", cols, per_pos.reshape(k, oh * ow, c * kernel[0] * kernel[1]))
    y = y.reshape(x.shape[0], k, oh, ow)
    if bias is not None:
        y = y + (bias.view(1, -1, 1, 1) if bias.dim() == 1 else bias[:, rows][:, :, cols_i][None])
    return y


@pytest.mark.parametrize("tiles,bias_tiled", [((2, 3), True), ((1, 1), False), (None, True)])
def test_gradients_match_unfold_einsum(tiles, bias_tiled):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    stride, padding = 1, 1
    out = (7, 8)
    local = tiles is None
    tiles = out if local else tiles
    w = torch.randn(4, *tiles, 3, 3, 3, dtype=torch.float64)
    b = torch.randn(4, *tiles, dtype=torch.float64) if bias_tiled else torch.randn(4).double()
    leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    fn = fastconv.locally_connected if local else fastconv.tiled_conv
    y = fn(*leaves, stride=stride, padding=padding)
    ref_leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    y_ref = unfold_einsum(*ref_leaves, stride, padding, tiles)
    torch.testing.assert_close(y, y_ref)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    for got, want in zip(leaves, ref_leaves):
        torch.testing.assert_close(got.grad, want.grad)


def test_gradcheck_every_pass():
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        return fastconv.tiled_conv(x, w, b, stride=(2, 1), padding=1)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


def test_fake_kernel_under_compile():
    x = torch.randn(2, 3, 8, 8)
    m = fnn.TiledConv2d(3, 4, 3, tiles=2, padding=1)
    want = m(x)
    got = torch.compile(m, backend="eager", fullgraph=True)(x)
    torch.testing.assert_close(got, want)
    fake = fct._tiled_ops.OPS.tiled_conv.default
    with torch._subclasses.fake_tensor.FakeTensorMode():
        out = fake(
            torch.empty(2, 3, 8, 8),
            torch.empty(4, 2, 2, 3, 3, 3),
            None,
            [],
            [2, 2, 1, 1, 1, 1, 1, 1],
            "tiled_conv forward",
        )
    assert tuple(out.shape) == (2, 4, 4, 4)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_locally_connected_modules(rank):
    cls = [fnn.LocallyConnected1d, fnn.LocallyConnected2d, fnn.LocallyConnected3d][rank - 1]
    size = (6, 5, 4)[:rank]
    m = cls(2, 3, size, kernel_size=3, padding=1)
    assert m.weight.shape == (3, *size, 2, *([3] * rank))
    assert m.bias.shape == (3, *size)
    x = torch.randn(2, 2, *size, requires_grad=True)
    y = m(x)
    y.sum().backward()
    assert y.shape == (2, 3, *size)
    assert m.weight.grad is not None and x.grad is not None
    with pytest.raises(ValueError, match="input_size"):
        cls(2, 3, [2] * rank, kernel_size=5)


@pytest.mark.parametrize("groups", [4, 1])  # chain of 1-D passes; dense outer product
def test_separable_module_and_autograd(groups):
    torch.manual_seed(0)
    m = fnn.SeparableConv2d(4, 8, (5, 3), padding=(2, 1), groups=groups).double()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64, requires_grad=True)
    y = m(x)
    w = (m.weight0[:, :, :, None] * m.weight1[:, :, None, :]).detach().requires_grad_()
    xr = x.detach().clone().requires_grad_()
    y_ref = torch.nn.functional.conv2d(xr, w, m.bias.detach(), padding=(2, 1), groups=groups)
    torch.testing.assert_close(y, y_ref)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(m.weight0.grad, (w.grad * m.weight1[:, :, None, :]).sum(3))
    torch.testing.assert_close(m.weight1.grad, (w.grad * m.weight0[:, :, :, None]).sum(2))
