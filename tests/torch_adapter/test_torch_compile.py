"""torch.compile(fullgraph=True) of a small CNN on fastconv.torch's functions: one graph, no
graph breaks, the custom ops in it, eager == compiled for outputs and gradients; dynamic=True once.

The default run compiles with backend="aot_eager" (dynamo, the fake kernels, AOT autograd: all
that concerns the adapter); inductor's C++ compile of the surrounding graph takes ~20 s on 2
cores, so the inductor variant is marked slow."""

from __future__ import annotations

import pytest
from conftest import requires_torch, torch
from fct_testing import assert_tensors_close, tensor

pytestmark = [
    requires_torch,
    # torch's own, from inside inductor
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]

if torch is not None:
    import fastconv.torch as fct
    from torch._dynamo.utils import counters


def net(x, w1, b1, w2, wt):
    y = torch.relu(fct.conv2d(x, w1, b1, padding=1))
    y = fct.max_pool2d(y, 2)
    y = fct.conv2d(y, w2, stride=1, padding=(1, 0), groups=2)
    y = fct.avg_pool2d(y, 2, ceil_mode=True)
    return fct.conv_transpose2d(y, wt, stride=2, output_padding=1)


def parameters(rng):
    # sizes distinct from the inputs' (dynamic=True: equal sizes would be tied by duck sizing)
    return [tensor(rng, s, grad=True) for s in [(4, 3, 3, 3), (4,), (6, 2, 3, 3), (6, 5, 3, 3)]]


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def run(fn, x, params):
    """fn's output and the gradients of x and every parameter (copies: leaves of their own)."""
    x = x.detach().clone().requires_grad_(True)
    params = [p.detach().clone().requires_grad_(True) for p in params]
    y = fn(x, *params)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
    return [y.detach(), x.grad] + [p.grad for p in params]


def assert_same(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        assert_tensors_close(g, w, msg=f"result {i} (output, x.grad, parameters' grads)")


def test_the_net_is_one_graph_of_fastconv_ops(fresh_dynamo, rng):
    x, params = tensor(rng, (2, 3, 12, 10)), parameters(rng)
    explanation = torch._dynamo.explain(net)(x, *params)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    code = explanation.graphs[0].code
    assert code.count("torch.ops.fastconv.conv") == 3, code
    for op in ("max_pool", "avg_pool"):
        assert f"torch.ops.fastconv.{op}" in code, code


BACKENDS = ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_matches_eager(backend, fresh_dynamo, rng):
    x, params = tensor(rng, (2, 3, 12, 10)), parameters(rng)
    compiled = torch.compile(net, backend=backend, fullgraph=True)
    assert_same(run(compiled, x, params), run(net, x, params))
    # again: the cached graph, no recompilation
    x2 = tensor(rng, x.shape)
    assert_same(run(compiled, x2, params), run(net, x2, params))
    assert counters["stats"]["unique_graphs"] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_with_dynamic_shapes_matches_eager(backend, fresh_dynamo, rng):
    params = parameters(rng)
    compiled = torch.compile(net, backend=backend, fullgraph=True, dynamic=True)
    # batch and spatial sizes change; so does the parity of the ceil_mode pool's input
    for shape in [(7, 3, 14, 11), (9, 3, 19, 13), (8, 3, 16, 17)]:
        x = tensor(rng, shape)
        assert_same(run(compiled, x, params), run(net, x, params))
    assert counters["stats"]["unique_graphs"] == 1  # one graph for every shape
