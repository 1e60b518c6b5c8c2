"""fastconv.torch's functions against torch.nn.functional: the same outputs and gradients
(input, weight, bias) for the same arguments, over a range of geometries: padding='same' and
'valid', unbatched inputs, return_indices, ceil_mode (lp_pool scales partial windows as torch),
max_unpool's output_size; dtype mixes raise TypeError; a channels_last weight gets a
channels_last gradient."""

from __future__ import annotations

import pytest
from conftest import requires_torch, torch
from fct_testing import assert_tensors_close, tensor

pytestmark = [
    requires_torch,
    pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning"),  # torch's, even kernels
]

if torch is not None:
    import fastconv.torch as fct
    import torch.nn.functional as F

    DTYPES = {"f32": torch.float32, "f64": torch.float64}

# The default run: both dtypes for the convolutions (their float32 kernels differ most), float64
# pools, batched inputs (test_unbatched_inputs_match_torch takes each function unbatched once);
# -m slow adds the rest of the cross product.
SLOW = pytest.mark.slow
DT = pytest.mark.parametrize("dtype", ["f64", "f32"])
DT_POOL = pytest.mark.parametrize("dtype", ["f64", pytest.param("f32", marks=SLOW)])
RANK = pytest.mark.parametrize("rank", [1, 2, 3])
BATCHED = pytest.mark.parametrize(
    "batched", [True, pytest.param(False, marks=SLOW)], ids=["batched", "unbatched"]
)
SIZES = {1: (11,), 2: (8, 7), 3: (5, 6, 4)}


def fn(name, rank):
    """(fastconv.torch's, torch.nn.functional's) function of a family and rank."""
    full = f"{name}{rank}d"
    return getattr(fct, full), getattr(F, full)


def compare(ours, theirs, inputs, dtype, rng, outputs=1):
    """Runs ours(*inputs) and theirs(*inputs) on separate leaf copies; compares outputs (the
    first `outputs` of a tuple result) and, through a random output gradient, the gradients of
    every input that requires one. Returns both results."""
    mine = [i.detach().clone().requires_grad_(i.requires_grad) if _is_t(i) else i for i in inputs]
    ref = [i.detach().clone().requires_grad_(i.requires_grad) if _is_t(i) else i for i in inputs]
    got, want = ours(*mine), theirs(*ref)
    got_t = got if isinstance(got, tuple) else (got,)
    want_t = want if isinstance(want, tuple) else (want,)
    assert len(got_t) == len(want_t)
    for g, w in zip(got_t, want_t):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
    for g, w in zip(got_t[:outputs], want_t[:outputs]):
        assert_tensors_close(g, w, dtype)
    if any(_is_t(i) and i.requires_grad for i in inputs):
        grad = tensor(rng, want_t[0].shape, want_t[0].dtype)
        got_t[0].backward(grad)
        want_t[0].backward(grad)
        for m, r in zip(mine, ref):
            if _is_t(m) and m.requires_grad:
                if r.grad is None:  # an input the result does not depend on
                    assert m.grad is None
                else:
                    assert_tensors_close(m.grad, r.grad, dtype)
    return got, want


def _is_t(v):
    return isinstance(v, torch.Tensor)


# ---- convolution

# (stride, padding, dilation, C, K, groups, kernel by rank)
CONV_CASES = [
    (1, 0, 1, 3, 4, 1, (3, (3, 3), (3, 3, 3))),
    (2, 1, 1, 4, 6, 2, (3, (3, 2), (2, 3, 2))),
    (1, "same", 1, 3, 6, 3, (4, (2, 3), (2, 2, 3))),  # even taps: asymmetric 'same'
    (1, "same", 2, 2, 3, 1, (3, (2, 3), (3, 2, 2))),
    (1, "valid", 1, 2, 2, 1, (5, (4, 3), (2, 3, 3))),
    (3, "tuple", 2, 6, 6, 6, (2, (2, 2), (2, 2, 2))),  # depthwise, per-dim padding
    ((2, 1, 3), 2, (1, 2, 1), 4, 8, 4, (3, (3, 3), (3, 3, 3))),  # per-dim stride / dilation
]


def _per_dim(v, rank):
    """A case's per-dim value for `rank` dims ("tuple": 0, 1, 2; a 1-D op gets an int, as
    torch's lp_pool1d requires)."""
    if v == "tuple":
        v = tuple(range(3))
    if isinstance(v, tuple):
        return v[0] if rank == 1 else v[:rank]
    return v


@DT
@BATCHED
@RANK
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_matches_torch(case, rank, batched, dtype, rng):
    stride, padding, dilation, c, k, g, kernels = case
    kernel = (kernels[0],) if rank == 1 else kernels[rank - 1]
    stride, padding, dilation = (_per_dim(v, rank) for v in (stride, padding, dilation))
    dt = DTYPES[dtype]
    x = tensor(rng, ((2, c) if batched else (c,)) + SIZES[rank], dt, True)
    w = tensor(rng, (k, c // g) + kernel, dt, True)
    b = tensor(rng, (k,), dt, True)
    ours, theirs = fn("conv", rank)
    compare(
        lambda x, w, b: ours(x, w, b, stride, padding, dilation, g),
        lambda x, w, b: theirs(x, w, b, stride, padding, dilation, g),
        (x, w, b),
        dt,
        rng,
    )


@RANK
def test_conv_keywords_and_no_bias_match_torch(rank, rng):
    x = tensor(rng, (2, 3) + SIZES[rank], grad=True)
    w = tensor(rng, (4, 3) + (2,) * rank, grad=True)
    ours, theirs = fn("conv", rank)
    kw = dict(stride=2, padding=1, dilation=1, groups=1)
    compare(lambda x, w: ours(x, w, **kw), lambda x, w: theirs(x, w, **kw), (x, w), None, rng)
    compare(lambda x, w: ours(x, w), lambda x, w: theirs(x, w), (x, w), None, rng)


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_conv_of_laid_out_operands_matches_torch(layout, rng):
    x = tensor(rng, (2, 4, 9, 8), grad=True, layout=layout)
    w = tensor(rng, (6, 2, 3, 3), grad=True, layout=layout)
    b = tensor(rng, (6,), grad=True)
    kw = dict(stride=(2, 1), padding=1, groups=2)
    compare(
        lambda x, w, b: fct.conv2d(x, w, b, **kw),
        lambda x, w, b: F.conv2d(x, w, b, **kw),
        (x, w, b),
        None,
        rng,
    )


# (stride, padding, output_padding, dilation, C_in, K_out, groups)
TRANSPOSE_CASES = [
    (1, 0, 0, 1, 4, 6, 1),
    (2, 1, 1, 1, 4, 6, 2),
    (3, "tuple", 2, 1, 3, 3, 3),  # depthwise
    (1, 1, 1, 2, 5, 2, 1),  # output_padding below the dilation
    (2, 0, 1, 3, 4, 4, 2),
    ((2, 3, 1), (1, 0, 1), (1, 2, 0), (1, 1, 2), 2, 4, 1),  # per-dim
]


@DT
@BATCHED
@RANK
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv_transpose_matches_torch(case, rank, batched, dtype, rng):
    stride, padding, opad, dilation, cin, kout, g = (_per_dim(v, rank) for v in case)
    dt = DTYPES[dtype]
    sizes = {1: (6,), 2: (4, 5), 3: (3, 4, 3)}[rank]
    x = tensor(rng, ((2, cin) if batched else (cin,)) + sizes, dt, True)
    w = tensor(rng, (cin, kout // g) + (3, 2, 3)[:rank], dt, True)
    b = tensor(rng, (kout,), dt, True)
    ours, theirs = fn("conv_transpose", rank)
    compare(
        lambda x, w, b: ours(x, w, b, stride, padding, opad, g, dilation),
        lambda x, w, b: theirs(x, w, b, stride, padding, opad, g, dilation),
        (x, w, b),
        dt,
        rng,
    )


def test_conv_transpose_keywords_and_no_bias_match_torch(rng):
    x = tensor(rng, (2, 3, 5, 4), grad=True)
    w = tensor(rng, (3, 2, 3, 3), grad=True)
    kw = dict(stride=2, padding=1, output_padding=1, dilation=1)
    compare(
        lambda x, w: fct.conv_transpose2d(x, w, **kw),
        lambda x, w: F.conv_transpose2d(x, w, **kw),
        (x, w),
        None,
        rng,
    )


@pytest.mark.parametrize(
    "name, w_shape", [("conv", (6, 4, 3, 3)), ("conv_transpose", (4, 6, 3, 3))]
)
@pytest.mark.parametrize("rank", [2, 3])
def test_weight_gradient_keeps_the_weights_memory_format(name, w_shape, rank, rng):
    w_shape = w_shape + (2,) * (rank - 2)
    ours, _ = fn(name, rank)
    x = tensor(rng, (2, 4) + SIZES[rank], grad=True)
    fmt = torch.channels_last if rank == 2 else torch.channels_last_3d
    for layout in ("channels_last", "contiguous"):
        w = tensor(rng, w_shape, grad=True, layout=layout)
        ours(x, w, padding=1).sum().backward()
        assert w.grad.shape == w.shape
        if layout == "channels_last":
            assert w.grad.is_contiguous(memory_format=fmt), w.grad.stride()
        else:
            assert w.grad.is_contiguous(), w.grad.stride()


@pytest.mark.parametrize("which", ["x", "w", "bias"])
@pytest.mark.parametrize("name", ["conv", "conv_transpose"])
def test_conv_dtype_mix_raises_type_error(name, which, rng):
    ours, _ = fn(name, 2)
    args = {
        "x": tensor(rng, (1, 2, 5, 5)),
        "w": tensor(rng, (2, 2, 3, 3)),
        "bias": tensor(rng, (2,)),
    }
    args[which] = args[which].float()
    with pytest.raises(TypeError):
        ours(args["x"], args["w"], args["bias"])


def test_conv_padding_errors(rng):
    x, w = tensor(rng, (1, 2, 5, 5)), tensor(rng, (2, 2, 3, 3))
    with pytest.raises(ValueError, match="strided"):
        fct.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding"):
        fct.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match="dims"):
        fct.conv2d(x[0, 0], w)


# ---- pooling

# (kernel, stride, padding, dilation)
POOL_CASES = [
    (2, None, 0, 1),
    (3, 2, 1, 1),
    (3, 1, 1, 2),
    (2, 3, 1, 1),
    ((3, 2, 2), (2, 1, 2), 1, 1),
]


def _pool_args(case, rank):
    return tuple(_per_dim(v, rank) for v in case)


CEIL = pytest.mark.parametrize("ceil_mode", [False, True], ids=["floor", "ceil"])


@DT_POOL
@CEIL
@BATCHED
@RANK
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool_and_indices_match_torch(case, rank, batched, ceil_mode, dtype, rng):
    k, s, p, d = _pool_args(case, rank)
    dt = DTYPES[dtype]
    x = tensor(rng, ((2, 3) if batched else (3,)) + SIZES[rank], dt, True)
    ours, theirs = fn("max_pool", rank)
    (y, idx), (ty, tidx) = compare(
        lambda x: ours(x, k, s, p, d, ceil_mode, return_indices=True),
        lambda x: theirs(x, k, s, p, d, ceil_mode, return_indices=True),
        (x,),
        dt,
        rng,
    )
    assert idx.dtype == torch.int64
    assert torch.equal(idx, tidx)
    assert torch.equal(y, ty)  # a max is exact
    compare(
        lambda x: ours(x, k, s, p, d, ceil_mode),
        lambda x: theirs(x, k, s, p, d, ceil_mode),
        (x,),
        dt,
        rng,
    )


@DT_POOL
@CEIL
@BATCHED
@RANK
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl", "excl"])
@pytest.mark.parametrize("case", [c[:3] for c in POOL_CASES if c[3] == 1], ids=str)
def test_avg_pool_matches_torch(case, rank, batched, ceil_mode, count_include_pad, dtype, rng):
    k, s, p = _pool_args(case, rank)
    dt = DTYPES[dtype]
    x = tensor(rng, ((2, 3) if batched else (3,)) + SIZES[rank], dt, True)
    ours, theirs = fn("avg_pool", rank)
    compare(
        lambda x: ours(x, k, s, p, ceil_mode, count_include_pad),
        lambda x: theirs(x, k, s, p, ceil_mode, count_include_pad),
        (x,),
        dt,
        rng,
    )


@pytest.mark.parametrize("rank", [2, 3])
def test_avg_pool_divisor_override_matches_torch(rank, rng):
    x = tensor(rng, (2, 3) + SIZES[rank], grad=True)
    ours, theirs = fn("avg_pool", rank)
    compare(
        lambda x: ours(x, 3, 2, 1, True, False, 5),
        lambda x: theirs(x, 3, 2, 1, True, False, 5),
        (x,),
        None,
        rng,
    )


# (kernel, stride, ceil_mode): ceil_mode windows that run past the input are partial windows,
# which torch scales (average over the valid part times the window size)
LP_CASES = [
    (2, None, False),
    (3, 2, False),
    (3, 2, True),
    (2, 3, True),
    ((3, 2, 2), (2, 1, 3), True),
]


@DT_POOL
@BATCHED
@RANK
@pytest.mark.parametrize(
    "norm_type", [2.0, 1.5, pytest.param(1.0, marks=SLOW), pytest.param(3.0, marks=SLOW)]
)
@pytest.mark.parametrize("case", LP_CASES, ids=str)
def test_lp_pool_matches_torch(case, norm_type, rank, batched, dtype, rng):
    k, s, ceil_mode = case
    k, s = _per_dim(k, rank), _per_dim(s, rank)
    dt = DTYPES[dtype]
    # positive: x**p is real for a fractional p and |.| (torch's sign trick) is smooth
    x = tensor(rng, ((2, 3) if batched else (3,)) + SIZES[rank], dt, True, low=0.1)
    ours, theirs = fn("lp_pool", rank)
    compare(
        lambda x: ours(x, norm_type, k, s, ceil_mode),
        lambda x: theirs(x, norm_type, k, s, ceil_mode),
        (x,),
        dt,
        rng,
    )


def test_lp_pool_of_signed_input_matches_torch(rng):
    x = tensor(rng, (2, 3, 7, 6), grad=True)
    compare(
        lambda x: fct.lp_pool2d(x, 2.0, 2, ceil_mode=True),
        lambda x: F.lp_pool2d(x, 2.0, 2, ceil_mode=True),
        (x,),
        None,
        rng,
    )
    # p = 3: a window of negative sum has no real cube root; NaN exactly where torch has it
    got, want = fct.lp_pool2d(x, 3.0, 2), F.lp_pool2d(x, 3.0, 2)
    assert want.isnan().any()
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, equal_nan=True)


# (kernel, stride, padding); output_size: None (the default), the default given spatially or
# with (N, C), or one larger (torch allows up to one stride more)
UNPOOL_CASES = [(2, None, 0), (3, 2, 1), (2, 3, 1), ((3, 2, 2), (3, 2, 3), (1, 0, 1))]


@DT_POOL
@BATCHED
@RANK
@pytest.mark.parametrize("size", ["default", "spatial", "full", "larger"])
@pytest.mark.parametrize("case", UNPOOL_CASES, ids=str)
def test_max_unpool_matches_torch(case, size, rank, batched, dtype, rng):
    k, s, p = _pool_args(case, rank)
    dt = DTYPES[dtype]
    per = [(v,) * rank if isinstance(v, int) else v for v in (k, k if s is None else s, p)]
    # the input whose max_pool gives `pooled` (3, 2, 4)[:rank] and which is the default output
    # of unpooling that: the indices then lie inside every output size tried
    spatial = tuple((o - 1) * ss + kk - 2 * pp for o, kk, ss, pp in zip((3, 2, 4), *per))
    source = tensor(rng, ((2, 3) if batched else (3,)) + spatial, dt)
    pool, _ = fn("max_pool", rank)
    pooled, indices = pool(source, k, s, p, return_indices=True)
    assert pooled.shape[-rank:] == (3, 2, 4)[:rank]
    output_size = {
        "default": None,
        "spatial": spatial,
        "full": (2, 3) + spatial,  # torch takes (N, C, *spatial) for unbatched input too
        "larger": tuple(e + 1 for e in spatial),  # every stride here is at least 2
    }[size]
    x = pooled.clone().requires_grad_(True)
    ours, theirs = fn("max_unpool", rank)
    got, _ = compare(
        lambda x: ours(x, indices, k, s, p, output_size),
        lambda x: theirs(x, indices, k, s, p, output_size),
        (x,),
        dt,
        rng,
    )
    assert got.shape[-rank:] == (output_size or spatial)[-rank:]


def test_max_unpool_rejects_what_torch_rejects(rng):
    x = tensor(rng, (1, 2, 8, 8))
    y, idx = fct.max_pool2d(x, 2, return_indices=True)
    for bad in [(10, 8), (8,), (1, 2, 3, 8, 8)]:
        with pytest.raises((ValueError, RuntimeError)):
            F.max_unpool2d(y, idx, 2, output_size=bad)
        with pytest.raises(ValueError, match="output_size"):
            fct.max_unpool2d(y, idx, 2, output_size=bad)


@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "lp_pool"])
def test_pool_of_an_empty_batch(name, rng):
    ours, theirs = fn(name, 2)
    args = (2.0, 2) if name == "lp_pool" else (2,)
    x = tensor(rng, (0, 3, 6, 6), grad=True)
    compare(lambda x: ours(x, *args), lambda x: theirs(x, *args), (x,), None, rng)


def test_max_unpool_of_an_empty_batch(rng):
    y, idx = fct.max_pool2d(tensor(rng, (0, 3, 6, 6)), 2, return_indices=True)
    x = y.clone().requires_grad_(True)
    compare(
        lambda x: fct.max_unpool2d(x, idx, 2), lambda x: F.max_unpool2d(x, idx, 2), (x,), None, rng
    )


def test_pools_of_float32_and_channels_last_inputs(rng):
    x = tensor(rng, (2, 3, 8, 7), torch.float32, True, "channels_last")
    (_, idx), (_, tidx) = compare(
        lambda x: fct.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True),
        lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True),
        (x,),
        torch.float32,
        rng,
    )
    assert torch.equal(idx, tidx)  # flat indices into each (H, W) plane, whatever the layout
    compare(
        lambda x: fct.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
        lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
        (x,),
        torch.float32,
        rng,
    )


@RANK
def test_unbatched_inputs_match_torch(rank, rng):
    """Each function with an unbatched (C, *spatial) input (-m slow: the whole cross product)."""
    x = tensor(rng, (4,) + SIZES[rank], grad=True)
    w = tensor(rng, (6, 2) + (2,) * rank, grad=True)
    wt = tensor(rng, (4, 3) + (2,) * rank, grad=True)
    b = tensor(rng, (6,), grad=True)
    calls = {
        "conv": lambda f, x, w, b: f(x, w, b, 1, "same", 2, 2),
        "conv_transpose": lambda f, x, w, b: f(x, wt, b[:3], 2, 1, 1, 1, 1),
        "max_pool": lambda f, x, w, b: f(x, 3, 2, 1, 1, True),
        "avg_pool": lambda f, x, w, b: f(x, 3, 2, 1, True, False),
        "lp_pool": lambda f, x, w, b: f(x.abs() + 0.1, 2.0, 2, None, True),
    }
    for name, call in calls.items():
        ours, theirs = fn(name, rank)
        compare(
            lambda x, w, b: call(ours, x, w, b),
            lambda x, w, b: call(theirs, x, w, b),
            (x, w, b),
            None,
            rng,
        )
    y, idx = fct.functional._max_pool(rank, x.detach(), 2, 2, 0, 1, False, True)
    assert idx.shape == y.shape == (4,) + tuple(e // 2 for e in SIZES[rank])
    ours, theirs = fn("max_unpool", rank)
    compare(
        lambda y: ours(y, idx, 2, 2, 0, x.shape[1:]),
        lambda y: theirs(y, idx, 2, 2, 0, x.shape[1:]),
        (y.requires_grad_(True),),
        None,
        rng,
    )
