"""fastconv.torch.nn and fastconv.torch.replace_modules against torch.nn: each module, whole
models (ResNet-18, a digits CNN) and a DistributedDataParallel run."""

from __future__ import annotations

import copy
import gc
import time

import pytest

# Not `from conftest import torch`: a tests/torch/conftest.py would take the module name
# `conftest` here. And torch.nn rather than torch: without torch installed, tests/torch/ itself
# imports as a namespace package `torch` (tests/ is on sys.path).
pytest.importorskip("torch.nn", reason="torch is not installed")

import fastconv.torch as fct
import torch
import torch.nn.functional as F
from fastconv.benchmark.models import build
from fastconv.torch import nn as fnn

IN_SIZES = {1: (11,), 2: (9, 8), 3: (6, 7, 5)}
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _same_module(native_cls, *args, **kwargs):
    """(torch's module, fastconv's namesake) built alike, in float64 (so that the two differ
    only by summation order), with torch's parameters loaded into fastconv's."""
    torch.manual_seed(0)
    native = native_cls(*args, **kwargs).double()
    ours = getattr(fnn, native_cls.__name__)(*args, **kwargs).double()
    ours.load_state_dict(native.state_dict())
    assert type(ours).__mro__[1] is native_cls
    return native, ours


def _input(rank, channels, batch=2, positive=False, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = ((batch,) if batch else ()) + (channels, *IN_SIZES[rank])
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    return x + 0.5 if positive else 2 * x - 1


def _grads(module, x, out):
    """d(sum(out * weights))/d(x and each parameter), the weights fixed per output shape."""
    g = torch.Generator().manual_seed(2)
    weights = torch.rand(out.shape, generator=g, dtype=out.dtype) - 0.5
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.autograd.grad((out * weights).sum(), [x, *params])


def _check_same(native, ours, x, *args, **kwargs):
    """The two modules' outputs and gradients (input and parameters) on the same input."""
    x_native = x.clone().requires_grad_()
    x_ours = x.clone().requires_grad_()
    want = native(x_native, *args, **kwargs)
    got = ours(x_ours, *args, **kwargs)
    if isinstance(want, tuple):  # max pooling's (values, indices)
        assert torch.equal(got[1], want[1])
        want, got = want[0], got[0]
    torch.testing.assert_close(got, want)
    grads_ours, grads_native = _grads(ours, x_ours, got), _grads(native, x_native, want)
    assert len(grads_ours) == len(grads_native)
    for g_ours, g_native in zip(grads_ours, grads_native):
        torch.testing.assert_close(g_ours, g_native)
    return got


def _case_id(case):
    """'2d-4-6-3-stride=2-padding=1' for a (rank, ..., {keyword: value}, ...) case."""
    parts = [f"{case[0]}d"]
    for item in case[1:]:
        if isinstance(item, dict):
            parts += [f"{k}={v}" for k, v in item.items()]
        elif item is not None:
            parts.append(str(item))
    return "-".join(parts).replace(" ", "")


# ---- convolution

# (rank, in, out, kernel, keyword arguments): strides, dilations, groups, padding forms
CONV_CASES = [
    (1, 4, 6, 3, dict(padding=1)),
    (1, 4, 6, 3, dict(stride=2, padding=2, dilation=2, groups=2)),
    (2, 4, 6, (3, 5), dict(padding="same", dilation=(1, 2))),
    (2, 4, 6, (3, 2), dict(padding="valid", stride=(2, 1))),
    (2, 4, 4, 3, dict(padding=(1, 2), groups=4, bias=False)),
    (3, 2, 3, (3, 2, 3), dict(padding=(1, 0, 2), stride=(1, 2, 1))),
]


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv(case, padding_mode):
    rank, cin, cout, kernel, kw = case
    native_cls = getattr(torch.nn, f"Conv{rank}d")
    native, ours = _same_module(native_cls, cin, cout, kernel, padding_mode=padding_mode, **kw)
    _check_same(native, ours, _input(rank, cin))


def test_conv_unbatched():
    native, ours = _same_module(torch.nn.Conv2d, 3, 5, 3, padding=1, padding_mode="reflect")
    y = _check_same(native, ours, _input(2, 3, batch=None))
    assert y.shape == (5, *IN_SIZES[2])


# (rank, in, out, kernel, keyword arguments)
CONV_T_CASES = [
    (1, 4, 6, 3, dict(stride=2, padding=1, output_padding=1)),
    (2, 4, 6, (3, 2), dict(stride=(2, 3), padding=(1, 0), dilation=(1, 2), groups=2)),
    (3, 2, 3, 2, dict(stride=2, bias=False)),
]


@pytest.mark.parametrize("case", CONV_T_CASES, ids=_case_id)
def test_conv_transpose(case):
    rank, cin, cout, kernel, kw = case
    native_cls = getattr(torch.nn, f"ConvTranspose{rank}d")
    native, ours = _same_module(native_cls, cin, cout, kernel, **kw)
    _check_same(native, ours, _input(rank, cin))


@pytest.mark.parametrize("case", CONV_T_CASES, ids=_case_id)
def test_conv_transpose_output_size(case):
    rank, cin, cout, kernel, kw = case
    native_cls = getattr(torch.nn, f"ConvTranspose{rank}d")
    kw = {k: v for k, v in kw.items() if k != "output_padding"}  # output_size decides it
    native, ours = _same_module(native_cls, cin, cout, kernel, **kw)
    x = _input(rank, cin)
    smallest = native(x).shape[2:]
    largest = [s + st - 1 for s, st in zip(smallest, native.stride)]  # the most it may add
    y = _check_same(native, ours, x, output_size=largest)
    assert list(y.shape[2:]) == largest
    full = [x.shape[0], cout, *largest]  # torch also takes the (N, C, *spatial) form
    _check_same(native, ours, x, output_size=full)
    too_big = [s + 1 for s in largest]
    with pytest.raises(ValueError, match="valid sizes range") as native_error:
        native(x, output_size=too_big)
    with pytest.raises(ValueError) as our_error:
        ours(x, output_size=too_big)
    assert str(our_error.value) == str(native_error.value)


def test_conv_transpose_refuses_padding_modes_like_torch():
    # torch's constructor refuses them; an attribute set afterwards fails in forward, alike
    native, ours = _same_module(torch.nn.ConvTranspose2d, 2, 3, 3)
    x = _input(2, 2)
    for module in (native, ours):
        module.padding_mode = "reflect"
    with pytest.raises(ValueError) as native_error:
        native(x)
    with pytest.raises(ValueError) as our_error:
        ours(x)
    assert str(our_error.value) == str(native_error.value)


# ---- pooling

MAX_POOL_CASES = [
    (1, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (2, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))),
    (3, dict(kernel_size=2)),
]


@pytest.mark.parametrize("return_indices", [False, True])
@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=_case_id)
def test_max_pool(case, return_indices):
    rank, kw = case
    native_cls = getattr(torch.nn, f"MaxPool{rank}d")
    native, ours = _same_module(native_cls, return_indices=return_indices, **kw)
    _check_same(native, ours, _input(rank, 3))


def test_max_pool_unbatched():
    native, ours = _same_module(torch.nn.MaxPool2d, 3, stride=2, padding=1, return_indices=True)
    _check_same(native, ours, _input(2, 3, batch=None))


def _pool_unpool(pool, unpool):
    """pool (return_indices=True) then unpool: one module to compare natively and ours."""

    class PoolUnpool(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool, self.unpool = pool, unpool

        def forward(self, x, output_size=None):
            y, indices = self.pool(x)
            return self.unpool(y, indices, output_size=output_size), indices

    return PoolUnpool()


# (rank, pooling window keyword arguments, output_size for the unpooling or None)
UNPOOL_CASES = [
    (1, dict(kernel_size=3, stride=2, padding=1), None),
    (1, dict(kernel_size=2), [11]),  # 11 -> 5 -> 10 by default; 11 is within one stride
    (2, dict(kernel_size=(3, 2), stride=(2, 2), padding=(1, 0)), None),
    (2, dict(kernel_size=2), [9, 8]),
    (3, dict(kernel_size=2, stride=(2, 1, 2)), [6, 7, 5]),
]


@pytest.mark.parametrize("case", UNPOOL_CASES, ids=_case_id)
def test_max_pool_indices_to_max_unpool(case):
    rank, kw, output_size = case
    pool_native, pool_ours = _same_module(
        getattr(torch.nn, f"MaxPool{rank}d"), return_indices=True, **kw
    )
    unpool_kw = {k: v for k, v in kw.items() if k != "dilation"}
    unpool_native, unpool_ours = _same_module(getattr(torch.nn, f"MaxUnpool{rank}d"), **unpool_kw)
    native = _pool_unpool(pool_native, unpool_native)
    ours = _pool_unpool(pool_ours, unpool_ours)
    y = _check_same(native, ours, _input(rank, 3), output_size=output_size)
    if output_size is not None:
        assert list(y.shape[2:]) == output_size


AVG_POOL_CASES = [
    (1, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    (2, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1))),
    (2, dict(kernel_size=3, stride=2, padding=1, divisor_override=4)),
    (3, dict(kernel_size=2, ceil_mode=True, count_include_pad=False)),
]


@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=_case_id)
def test_avg_pool(case):
    rank, kw = case
    native, ours = _same_module(getattr(torch.nn, f"AvgPool{rank}d"), **kw)
    _check_same(native, ours, _input(rank, 3))


LP_POOL_CASES = [
    (1, dict(norm_type=2, kernel_size=3, stride=2)),
    (2, dict(norm_type=3, kernel_size=(2, 3), ceil_mode=True)),
    (2, dict(norm_type=1.5, kernel_size=2, stride=1)),
    (3, dict(norm_type=2, kernel_size=2, stride=(1, 2, 2), ceil_mode=True)),
]


@pytest.mark.parametrize("case", LP_POOL_CASES, ids=_case_id)
def test_lp_pool(case):
    rank, kw = case
    native, ours = _same_module(getattr(torch.nn, f"LPPool{rank}d"), **kw)
    # Positive inputs: a fractional power of a negative sum is NaN in both.
    _check_same(native, ours, _input(rank, 3, positive=True))


@pytest.mark.parametrize("norm_type", [float("inf"), -float("inf")])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_lp_pool_infinite_norm(rank, norm_type):
    # torch's p = +-inf: the max (min) of |x| over each window
    native, ours = _same_module(getattr(torch.nn, f"LPPool{rank}d"), norm_type, 2, ceil_mode=True)
    _check_same(native, ours, _input(rank, 3))


# ---- replace_modules

# One of each torch.nn class that replace_modules swaps, with small arguments.
SWAPPED = {
    "Conv1d": (2, 3, 3),
    "Conv2d": (2, 3, 3),
    "Conv3d": (2, 3, 3),
    "ConvTranspose1d": (2, 3, 3),
    "ConvTranspose2d": (2, 3, 3),
    "ConvTranspose3d": (2, 3, 3),
    "MaxPool1d": (2,),
    "MaxPool2d": (2,),
    "MaxPool3d": (2,),
    "AvgPool1d": (2,),
    "AvgPool2d": (2,),
    "AvgPool3d": (2,),
    "LPPool1d": (2, 2),
    "LPPool2d": (2, 2),
    "LPPool3d": (2, 2),
    "MaxUnpool1d": (2,),
    "MaxUnpool2d": (2,),
    "MaxUnpool3d": (2,),
}


class UserConv2d(torch.nn.Conv2d):
    """A user's own conv: replace_modules must not touch it (its forward is its own)."""

    def forward(self, x):
        return super().forward(x) + 1


def test_replace_modules_swaps_exact_types_only():
    model = torch.nn.ModuleDict({name: getattr(torch.nn, name)(*a) for name, a in SWAPPED.items()})
    model["user"] = UserConv2d(2, 3, 3)
    model["lazy"] = torch.nn.LazyConv2d(3, 3)  # a subclass too, until it sees an input
    model["other"] = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Linear(3, 3))
    assert fct.replace_modules(model) == len(SWAPPED)
    for name in SWAPPED:
        assert type(model[name]) is getattr(fnn, name)
        assert isinstance(model[name], getattr(torch.nn, name))  # still one for torch's checks
    assert type(model["user"]) is UserConv2d
    assert type(model["lazy"]) is torch.nn.LazyConv2d
    assert [type(m) for m in model["other"]] == [torch.nn.BatchNorm2d, torch.nn.Linear]
    assert fct.replace_modules(model) == 0  # already swapped: nothing more to do
    conv = torch.nn.Conv2d(2, 3, 3)
    assert fct.replace_modules(conv) == 1 and type(conv) is fnn.Conv2d  # the root counts too


def _small_cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect"),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 8, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2, ceil_mode=True),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 2 * 2, 10),  # 14x14 -> 14x14 -> 7x7 -> 3x3 -> 2x2
    )


def test_replace_modules_keeps_parameters_state_dict_and_hooks():
    torch.manual_seed(0)
    model = _small_cnn()
    native = copy.deepcopy(model)
    params = list(model.parameters())
    state = model.state_dict()
    calls = []
    conv = model[0]
    conv.register_forward_pre_hook(lambda m, args: calls.append(("pre", m)))
    conv.register_forward_hook(lambda m, args, out: calls.append(("fwd", m)) or out * 2)
    conv.register_full_backward_hook(lambda m, gin, gout: calls.append(("bwd", m)))
    native[0].register_forward_hook(lambda m, args, out: out * 2)

    assert fct.replace_modules(model) == 4
    assert type(conv) is fnn.Conv2d and model[0] is conv
    assert all(a is b for a, b in zip(model.parameters(), params))
    after = model.state_dict()
    assert list(after) == list(state)
    for key, value in after.items():
        assert torch.equal(value, state[key]) and value.data_ptr() == state[key].data_ptr()

    x = torch.randn(3, 1, 14, 14, requires_grad=True)  # a full backward hook wants one
    y = model(x)
    assert [c[0] for c in calls] == ["pre", "fwd"] and all(c[1] is conv for c in calls)
    torch.testing.assert_close(y, native(x), rtol=1e-4, atol=1e-5)  # the doubling hook ran
    y.sum().backward()
    assert [c[0] for c in calls] == ["pre", "fwd", "bwd"]


def test_replace_modules_keeps_optimizer_state():
    # Two momentum steps: the second after the swap, on the same optimizer and its momentum
    # buffers, lands where an unswapped model's second step does.
    torch.manual_seed(0)
    model = _small_cnn().double()
    native = copy.deepcopy(model)
    x = torch.randn(4, 1, 14, 14, dtype=torch.float64)
    target = torch.tensor([1, 2, 3, 4])
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (model, native)]

    def step(m, opt):
        opt.zero_grad()
        F.cross_entropy(m(x), target).backward()
        opt.step()

    step(model, opts[0])
    step(native, opts[1])
    buffers = {p: opts[0].state[p]["momentum_buffer"] for p in model.parameters()}
    fct.replace_modules(model)
    assert all(opts[0].state[p]["momentum_buffer"] is b for p, b in buffers.items())
    step(model, opts[0])
    step(native, opts[1])
    for p, q in zip(model.parameters(), native.parameters()):
        torch.testing.assert_close(p, q)


# ---- whole models


def test_model_zoo_shapes():
    # torchvision's parameter counts for these architectures: the zoo builds the same layers.
    expected = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872}
    for name, count in expected.items():
        model = build(name)
        assert sum(p.numel() for p in model.parameters()) == count, name
        assert build(name, num_classes=7).state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match="unknown model"):
        build("vgg16")


def _compare_models(name, expected_swaps, size):
    torch.manual_seed(0)
    native = build(name, num_classes=10)
    ours = copy.deepcopy(native)
    assert fct.replace_modules(ours) == expected_swaps
    x = torch.randn(2, 3, size, size)

    # Inference: same logits up to float32 summation order.
    native.eval()
    ours.eval()
    with torch.no_grad():
        want, got = native(x), ours(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())

    # One training step (batch statistics): same loss, gradients and BatchNorm statistics, in
    # float64. In float32 the gradients of a random-init net in training mode on a batch of 2 are
    # ill-conditioned (the late BatchNorms normalise a handful of values): torch's own float32
    # early-layer gradients of ResNet-50 are ~4% off its float64 ones, fastconv's alike.
    native.double().train()
    ours.double().train()
    x, target = x.double(), torch.tensor([3, 7])
    losses = []
    for model in (native, ours):
        torch.manual_seed(1)  # the same dropout masks
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        losses.append(loss.item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-10)
    named = dict(native.named_parameters())
    # A floor at the largest gradient's scale: some gradients are zero in exact arithmetic (a
    # BatchNorm shift that the next training-mode BatchNorm removes again), rounding noise here.
    floor = 1e-10 * max(p.grad.abs().max().item() for p in named.values())
    for key, p in ours.named_parameters():
        torch.testing.assert_close(
            p.grad, named[key].grad, rtol=1e-7, atol=floor, msg=lambda m: f"{key}: {m}"
        )
    buffers = dict(native.named_buffers())
    for key, b in ours.named_buffers():
        torch.testing.assert_close(b, buffers[key], msg=lambda m: f"{key}: {m}")


def test_resnet18_matches_native():
    _compare_models("resnet18", 21, 64)  # 20 convolutions and the stem's max pool


@pytest.mark.slow
def test_resnet50_matches_native():
    _compare_models("resnet50", 54, 64)  # 53 convolutions and the stem's max pool


@pytest.mark.slow
def test_mobilenet_v2_matches_native():
    _compare_models("mobilenet_v2", 52, 64)  # 52 convolutions (17 of them depthwise)


@pytest.fixture
def one_thread():
    """torch (and fastconv, which follows it) on one thread for the test: tiny layers gain
    nothing from more, and lose much when other processes hold the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_lenet_learns_digits(one_thread):
    # sklearn's bundled 8x8 digits (1797 images, no download): a LeNet-style CNN of
    # fastconv.torch.nn layers trains to the accuracy such a network reaches natively (seed 0's
    # split: 99.2% here and with torch's modules alike; other seeds' splits give 96% to 99.5%).
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is not installed")
    digits = datasets.load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    images = (images - images.mean()) / images.std()
    labels = torch.tensor(digits.target)
    torch.manual_seed(0)
    order = torch.randperm(len(labels))
    test_idx, train_idx = order[:360], order[360:]

    model = torch.nn.Sequential(
        fnn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        fnn.MaxPool2d(2),  # 8x8 -> 4x4
        fnn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        fnn.AvgPool2d(2),  # 4x4 -> 2x2
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 2 * 2, 64),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(64, 10),
    )
    epochs, batch_size = 8, 32
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    # One-cycle schedule: few epochs reach a settled accuracy only if the rate anneals.
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=1e-2, total_steps=epochs * -(-len(train_idx) // batch_size)
    )
    for _ in range(epochs):
        for batch in torch.randperm(len(train_idx)).split(batch_size):
            idx = train_idx[batch]
            opt.zero_grad()
            F.cross_entropy(model(images[idx]), labels[idx]).backward()
            opt.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(images[test_idx]).argmax(1) == labels[test_idx]).float().mean().item()
    assert accuracy >= 0.97


# ---- DistributedDataParallel


def _ddp_worker(rank, world_size, init_file, out_dir, steps):
    """One rank: its own initial weights (DDP must broadcast rank 0's) and its own data."""
    import torch.distributed as dist

    torch.set_num_threads(1)  # the ranks share the machine's cores
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        torch.manual_seed(rank)
        model = _small_cnn()
        model[1] = torch.nn.Identity()  # BatchNorm's statistics would be per rank
        assert fct.replace_modules(model) == 4
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
        x, y = _ddp_data(steps)
        for step in range(steps):
            opt.zero_grad()
            F.cross_entropy(ddp(x[step, rank]), y[step, rank]).backward()
            opt.step()
        torch.save(model.state_dict(), f"{out_dir}/rank{rank}.pt")
        # Free DDP's reducer (it holds the process group) while Python still runs: otherwise
        # the group's gloo threads can drop their last finished work during interpreter
        # shutdown, and that work's thread-local state needs the GIL there, which aborts the
        # rank ("terminate called without an active exception", about 1 run in 10 on 2 cores).
        del ddp, opt
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()
        gc.collect()


def _ddp_data(steps, world_size=2, batch=4):
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(steps, world_size, batch, 1, 14, 14, generator=g)
    y = torch.randint(0, 10, (steps, world_size, batch), generator=g)
    return x, y


def test_ddp_gloo_two_ranks(tmp_path):
    import torch.multiprocessing as mp

    steps, world_size = 3, 2
    context = mp.spawn(
        _ddp_worker,
        args=(world_size, tmp_path / "rendezvous", tmp_path, steps),
        nprocs=world_size,
        join=False,
    )
    deadline = time.monotonic() + 120
    while not context.join(timeout=2):  # raises if a rank failed
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the DDP ranks did not finish in 120 s")
    states = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world_size)]
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key  # bitwise: the ranks stayed in step

    # The same steps in one process, torch's own modules, on both ranks' data at once (DDP
    # averages the ranks' gradients; equal batches make that the whole batch's mean loss).
    torch.manual_seed(0)
    reference = _small_cnn()
    reference[1] = torch.nn.Identity()
    opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    x, y = _ddp_data(steps)
    for step in range(steps):
        opt.zero_grad()
        F.cross_entropy(reference(x[step].flatten(0, 1)), y[step].flatten()).backward()
        opt.step()
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(states[0][key], value, rtol=1e-4, atol=1e-5, msg=key)
