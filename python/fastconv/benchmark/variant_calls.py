"""What the variants suite times (.variants): per op, fastconv's forward and training step
(forward + backward) and each peer's formulation of the same computation, with what the check
compares. Peers: PyTorch (torch.nn.functional: unfold + einsum for tiled / locally connected
convolution, interpolate, pixel_shuffle, ...), JAX (lax.conv_general_dilated_local) and, for
separable kernels, fastconv's own dense algorithms on the outer-product kernel."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import fastconv
from fastconv._problem import conv_problem

from .timing import TOLERANCE

PASSES = ("forward", "step")  # step: forward + every gradient, as a training step runs them
DENSE_SCREEN_S = 3.0  # a dense algorithm whose estimated call exceeds this is not timed
DENSE_WORKSPACE_BYTES = 2 << 30  # ... nor one needing more scratch memory than this
STOCHASTIC_SIGMAS = 6.0  # sampled totals this many standard deviations apart: a mismatch


@dataclass
class Variant:
    """One suite entry: an op call on an input of shape x, with the op's own arguments."""

    name: str
    section: str
    op: str
    x: tuple[int, ...]
    args: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "section": self.section, "op": self.op, "x": list(self.x)} | {
            key: value for key, value in self.args.items()
        }


@dataclass
class Call:
    """One timed candidate of a (variant, pass). `results` turns fn's output into the arrays
    the check compares, in fastconv's layout; fn None: not timed, `note` says why."""

    name: str  # "fastconv", "torch", "jax", "dense.<algorithm>"
    kind: str  # "fastconv" | "peer"
    fn: Callable[[], Any] | None
    results: Callable[[Any], list[np.ndarray]]
    note: str = ""


# compare(fastconv's results, a peer's) -> (what differs or "", the measure checked: the
# largest relative error for allclose, else None) ...
Compare = Callable[[list[np.ndarray], list[np.ndarray]], tuple[str, "float | None"]]


@dataclass
class Case:
    """The candidates of one (variant, pass) and how a peer's results are checked."""

    pass_: str
    calls: list[Call]
    flops: int = 0
    compare: Compare = field(default=lambda a, b: ("", None))
    check: str = "allclose"  # ... a note for the others (the statistical test's outcome)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def arrays(out: Any) -> list[np.ndarray]:
    """The arrays of a call's output (one array, or a tuple / list of them)."""
    return [_numpy(v) for v in (out if isinstance(out, (tuple, list)) else (out,))]


def allclose(dtype: str) -> Compare:
    """Every array within TOLERANCE[dtype] of the largest magnitude of fastconv's."""

    def compare(ours: list[np.ndarray], theirs: list[np.ndarray]) -> tuple[str, float | None]:
        if len(ours) != len(theirs):
            return f"{len(theirs)} results vs fastconv's {len(ours)}", None
        worst = 0.0
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if a.shape != b.shape:
                return f"result {i}: shape {b.shape} != fastconv's {a.shape}", None
            scale = max(float(np.max(np.abs(a), initial=0.0)), np.finfo(np.float64).tiny)
            err = float(np.max(np.abs(a - b), initial=0.0)) / scale
            if not err <= TOLERANCE[dtype]:  # also catches NaN
                return f"result {i}: rel. error {err:.1e} vs fastconv", err
            worst = max(worst, err)
        return "", worst

    return compare


def _per_dim(value: Any, rank: int) -> list[int]:
    return list(value) if isinstance(value, (list, tuple)) else [value] * rank


def _inputs(v: Variant, dtype: str, low: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(0)
    if low is None:
        return rng.standard_normal(v.x).astype(dtype)
    return rng.uniform(low, 1.0, v.x).astype(dtype)


def _torch_step(torch: Any, forward: Callable[..., Any], leaves: Sequence[Any], g: Any):
    """A training step of a torch formulation: forward, backward(g), the leaves' gradients."""

    def run() -> list[Any]:
        for leaf in leaves:
            leaf.grad = None
        forward(*leaves).backward(g)
        return [leaf.grad for leaf in leaves]

    return run


# ---- tiled and locally connected convolution


def _local_geometry(v: Variant, dtype: str) -> tuple[list[int], tuple[int, ...], dict[str, Any]]:
    """(kernel, output spatial extents, the op's keyword arguments) of a tiled / local entry."""
    rank = len(v.x) - 2
    kernel = _per_dim(v.args["kernel"], rank)
    kw = {key: v.args[key] for key in ("stride", "padding", "dilation") if key in v.args}
    dense = (v.args["k"], v.x[1], *kernel)
    out = tuple(conv_problem("conv", "forward", v.x, dense, dtype, **kw).y_shape[2:])
    return kernel, out, kw


def build_local(v: Variant, dtype: str, passes: Sequence[str], peers: dict) -> list[Case]:
    """tiled_conv / locally_connected: fastconv's per-phase GEMMs against torch's unfold +
    einsum (per-position kernels gathered from the tiles) and JAX's local convolution."""
    rank, k, c = len(v.x) - 2, v.args["k"], v.x[1]
    kernel, out, kw = _local_geometry(v, dtype)
    local = v.op == "locally_connected"
    tiles = list(out) if local else _per_dim(v.args["tiles"], rank)
    rng = np.random.default_rng(1)
    x = _inputs(v, dtype)
    w = rng.standard_normal((k, *tiles, c, *kernel)) / math.sqrt(c * math.prod(kernel))
    w = w.astype(dtype)
    g = rng.standard_normal((v.x[0], k, *out)).astype(dtype)
    fwd = getattr(fastconv, v.op)
    bwd_data = getattr(fastconv, f"{v.op}_backward_data")
    bwd_weight = getattr(fastconv, f"{v.op}_backward_weight")

    def fc_step() -> list[Any]:
        fwd(x, w, **kw)
        return [bwd_data(g, w, x.shape, **kw), bwd_weight(x, g, w.shape, **kw)]

    mine = {
        "forward": Call("fastconv", "fastconv", lambda: fwd(x, w, **kw), arrays),
        "step": Call("fastconv", "fastconv", fc_step, arrays),
    }
    # position o of the output reads kernel index (o_1 % t_1, ...): one gather per dim
    picks = [np.arange(o) % t for o, t in zip(out, tiles)]
    positions = math.prod(out)
    flops = 2 * v.x[0] * k * c * math.prod(kernel) * positions
    theirs: dict[str, list[Call]] = {p: [] for p in passes}
    if "torch" in peers and rank == 2:
        _torch_local(peers["torch"], x, w, g, picks, kernel, kw, theirs)
    if "jax" in peers:
        _jax_local(peers["jax"], x, w, g, picks, kernel, kw, theirs)
    return [Case(p, [mine[p], *theirs[p]], flops, allclose(dtype)) for p in passes]


def _torch_local(torch: Any, x, w, g, picks, kernel, kw, theirs: dict[str, list[Call]]) -> None:
    """unfold + einsum: the input's patches (N, C * taps, L) times per-position kernels, those of
    a tiled conv gathered from its tiles in the timed call (the torch formulation's cost)."""
    padding = kw.get("padding", 0)
    if not isinstance(padding, int):
        return  # unfold takes one symmetric int padding per dim
    F = torch.nn.functional
    n, k = x.shape[0], w.shape[0]
    taps = x.shape[1] * math.prod(kernel)
    out = [len(p) for p in picks]
    local = list(w.shape[1:3]) == out and all(np.array_equal(p, np.arange(len(p))) for p in picks)
    rows, cols = (torch.from_numpy(p) for p in picks)
    unfold = dict(dilation=kw.get("dilation", 1), padding=padding, stride=kw.get("stride", 1))

    def forward(xv: Any, wv: Any) -> Any:
        per_pos = wv if local else wv[:, rows][:, :, cols]
        cols_ = F.unfold(xv, kernel, **unfold)
        y = torch.einsum("nql,klq->nkl", cols_, per_pos.reshape(k, -1, taps))
        return y.reshape(n, k, *out)

    xt, wt, gt = (torch.from_numpy(a) for a in (x, w, g))
    leaves = [xt.clone().requires_grad_(True), wt.clone().requires_grad_(True)]

    def no_grad() -> Any:
        with torch.no_grad():
            return forward(xt, wt)

    calls = {
        "forward": Call("torch", "peer", no_grad, arrays, "unfold + einsum"),
        "step": Call("torch", "peer", _torch_step(torch, forward, leaves, gt), arrays),
    }
    for p in theirs:
        theirs[p].append(calls[p])


def _jax_local(jax: Any, x, w, g, picks, kernel, kw, theirs: dict[str, list[Call]]) -> None:
    """lax.conv_general_dilated_local, whose kernel is (K, C * taps, *out) with the input
    features ordered (c, kernel offsets). A locally connected layer keeps its weight in that
    layout (converted once, outside the timed call); a tiled one gathers it from the tiles in
    the timed call, as the torch formulation does."""
    padding = kw.get("padding", 0)
    if isinstance(padding, str):
        return
    jnp, lax = jax.numpy, jax.lax
    rank, k = x.ndim - 2, w.shape[0]
    out = tuple(len(p) for p in picks)
    taps = x.shape[1] * math.prod(kernel)
    local = w.shape[1 : 1 + rank] == out and all(
        np.array_equal(p, np.arange(len(p))) for p in picks
    )
    grids = np.meshgrid(*picks, indexing="ij")
    pads = [(p, p) if isinstance(p, int) else tuple(p) for p in _per_dim(padding, rank)]
    stride = tuple(_per_dim(kw.get("stride", 1), rank))
    dilation = tuple(_per_dim(kw.get("dilation", 1), rank))

    def jax_layout(wv: Any) -> Any:  # (K, *out, C, *kernel) -> (K, C * taps, *out)
        return wv.reshape(k, -1, taps).transpose(0, 2, 1).reshape(k, taps, *out)

    def forward(xv: Any, wv: Any) -> Any:
        if not local:
            wv = jax_layout(wv[(slice(None), *grids)])
        return lax.conv_general_dilated_local(
            xv, wv, stride, pads, tuple(kernel), rhs_dilation=dilation,
            precision=lax.Precision.HIGHEST,
        )  # fmt: skip

    x64 = x.dtype == np.float64  # float64 inputs: JAX's 64-bit mode, for these calls only
    with jax.enable_x64(x64):
        xj, gj = jnp.asarray(x), jnp.asarray(g)
        wj = jax_layout(jnp.asarray(w)) if local else jnp.asarray(w)
        wj.block_until_ready()
    jit_forward = jax.jit(forward)

    @jax.jit
    def step(xv: Any, wv: Any, gv: Any) -> Any:
        return jax.vjp(forward, xv, wv)[1](gv)

    def run_forward() -> Any:
        with jax.enable_x64(x64):
            return jit_forward(xj, wj).block_until_ready()

    def run_step() -> Any:
        with jax.enable_x64(x64):
            return jax.block_until_ready(step(xj, wj, gj))

    def step_results(out_: Any) -> list[np.ndarray]:
        gx, gw = arrays(out_)
        if local:  # back to fastconv's (K, *out, C, *kernel)
            gw = gw.reshape(k, taps, -1).transpose(0, 2, 1).reshape(w.shape)
        return [gx, gw]

    calls = {
        "forward": Call("jax", "peer", run_forward, arrays, "lax.conv_general_dilated_local"),
        "step": Call("jax", "peer", run_step, step_results),
    }
    for p in theirs:
        theirs[p].append(calls[p])


# ---- separable kernels: the chain against fastconv's dense algorithms


def build_separable(v: Variant, dtype: str, passes: Sequence[str], peers: dict) -> list[Case]:
    """separable_conv against every dense fastconv algorithm that can run the outer-product
    kernel (the runner keeps the fastest as "dense")."""
    rank, k = len(v.x) - 2, v.args["k"]
    groups = v.args.get("groups", 1)
    cg = v.x[1] // groups
    kernel = _per_dim(v.args["kernel"], rank)
    kw = {key: v.args[key] for key in ("stride", "padding", "dilation") if key in v.args}
    kw["groups"] = groups
    rng = np.random.default_rng(1)
    x = _inputs(v, dtype)
    factors = [rng.standard_normal((k, cg, n)).astype(dtype) for n in kernel]
    w = factors[0]
    for d in range(1, rank):
        w = w[..., None] * factors[d].reshape(k, cg, *([1] * d), kernel[d])
    w = np.ascontiguousarray(w)
    y = fastconv.separable_conv(x, factors, **kw)
    g = rng.standard_normal(y.shape).astype(dtype)

    def step() -> list[Any]:
        fastconv.separable_conv(x, factors, **kw)
        gx = fastconv.separable_conv_backward_data(g, factors, x.shape, **kw)
        return [gx, *fastconv.separable_conv_backward_factors(x, g, factors, **kw)]

    def factor_grads(out: Any) -> list[np.ndarray]:
        """A dense step's [gx, gw] -> [gx, one gradient per factor] (the chain rule through
        w = the factors' outer product: gw summed against the other factors)."""
        gx, gw = arrays(out)
        grads = []
        for d in range(rank):
            term = gw
            for e in range(rank):
                if e != d:
                    term = _contract(term, factors[e], e)
            grads.append(term.reshape(k, cg, kernel[d]))
        return [gx, *grads]

    def forward() -> Any:
        return fastconv.separable_conv(x, factors, **kw)

    cases = {
        "forward": [Call("fastconv", "fastconv", forward, arrays)],
        "step": [Call("fastconv", "fastconv", step, arrays)],
    }
    for algo in fastconv.algorithms("conv"):
        if algo == "reference":  # naive loops: minutes, never the best
            continue
        skip = _dense_screen(x, w, kw, algo, 3 if "step" in passes else 1)
        if skip is None:
            continue  # the algorithm cannot run this conv
        fwd, dense_step = _dense_calls(x, w, g, kw, algo)
        name = f"dense.{algo}"
        cases["forward"].append(Call(name, "peer", None if skip else fwd, arrays, skip))
        cases["step"].append(Call(name, "peer", None if skip else dense_step, factor_grads, skip))
    return [Case(p, cases[p], 0, allclose(dtype)) for p in passes]


def _contract(term: np.ndarray, factor: np.ndarray, e: int) -> np.ndarray:
    """Sum term (K, C/G, *kernel) against factor (K, C/G, k_e) over kernel dim e."""
    shape = [1] * (term.ndim - 2)
    shape[e] = factor.shape[2]
    f = factor.astype(np.float64).reshape(*factor.shape[:2], *shape)
    return (term * f).sum(axis=2 + e, keepdims=True)


def _dense_calls(x, w, g, kw, algo: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    def forward() -> Any:
        return fastconv.conv(x, w, algo=algo, **kw)

    def step() -> list[Any]:
        fastconv.conv(x, w, algo=algo, **kw)
        gx = fastconv.conv_backward_data(g, w, x.shape, algo=algo, **kw)
        return [gx, fastconv.conv_backward_weight(x, g, w.shape, algo=algo, **kw)]

    return forward, step


def _dense_screen(x, w, kw, algo: str, calls: int) -> str | None:
    """ "" to time `algo` on this conv, a note why not (too slow, too much scratch), or None
    when it cannot run it at all."""
    try:
        workspace = fastconv.explain(x, w, algo=algo, **kw).workspace_bytes
        if workspace > DENSE_WORKSPACE_BYTES:
            return f"skipped: needs {workspace / 2**30:.1f} GiB of workspace"
        start = time.perf_counter()
        fastconv.conv(x[:1], w, algo=algo, **kw)  # one image: support and a time estimate
        estimate = (time.perf_counter() - start) * x.shape[0] * calls
    except NotImplementedError:
        return None
    if estimate > DENSE_SCREEN_S:
        return f"skipped: est. {estimate:.0f} s per call"
    return ""


# ---- resampling and pooling variants: fastconv against torch.nn.functional

_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _resample_ops(v: Variant, x: np.ndarray, torch: Any) -> tuple[Callable, Callable, Any]:
    """(fastconv forward(x), fastconv backward(g), torch forward(tensor) or None)."""
    a, rank, shape = v.args, x.ndim - 2, x.shape
    F = torch.nn.functional if torch is not None else None
    if v.op == "upsample_nearest":
        s = a["scale"]
        return (
            lambda: fastconv.upsample_nearest(x, s),
            lambda g: fastconv.upsample_nearest_backward(g, shape, s),
            F and (lambda t: F.interpolate(t, scale_factor=s, mode="nearest")),
        )
    if v.op == "upsample_linear":
        s, ac = a["scale"], a.get("align_corners", False)
        mode = _LINEAR[rank]
        return (
            lambda: fastconv.upsample_linear(x, s, align_corners=ac),
            lambda g: fastconv.upsample_linear_backward(g, shape, s, align_corners=ac),
            F and (lambda t: F.interpolate(t, scale_factor=s, mode=mode, align_corners=ac)),
        )
    if v.op in ("pixel_shuffle", "pixel_unshuffle"):
        r = a["r"]
        inverse = "pixel_unshuffle" if v.op == "pixel_shuffle" else "pixel_shuffle"
        fwd, bwd = getattr(fastconv, v.op), getattr(fastconv, inverse)
        peer = F and getattr(F, v.op)
        return lambda: fwd(x, r), lambda g: bwd(g, r), peer and (lambda t: peer(t, r))
    if v.op == "stochastic_pool_eval":
        k, s, p = a["kernel"], a.get("stride"), a.get("padding", 0)
        kw = dict(stride=s, padding=p, training=False)
        pool = F and getattr(F, f"avg_pool{rank}d")
        return (
            lambda: fastconv.stochastic_pool(x, k, **kw),
            lambda g: fastconv.stochastic_pool_backward(g, x, k, **kw),
            pool and (lambda t: pool(t * t, k, s, p) / pool(t, k, s, p)),
        )
    if v.op == "blur_pool":
        k, s = a.get("kernel", 3), a.get("stride", 2)
        return (
            lambda: fastconv.blur_pool(x, kernel_size=k, stride=s),
            lambda g: fastconv.blur_pool_backward(g, shape, kernel_size=k, stride=s),
            F and _torch_blur(torch, shape, k, s, x.dtype),
        )
    raise ValueError(f"not a resampling op: {v.op!r}")


def _torch_blur(torch: Any, shape: tuple, k: int, s: int, dtype: Any) -> Callable[[Any], Any]:
    """Blur pooling as torch writes it: pad TF-style "same", depthwise binomial conv."""
    rank, c = len(shape) - 2, shape[1]
    row = np.array([math.comb(k - 1, i) for i in range(k)], np.float64)
    kernel = row / row.sum()
    for _ in range(rank - 1):
        kernel = np.multiply.outer(kernel, row / row.sum())
    w = torch.from_numpy(np.ascontiguousarray(np.broadcast_to(kernel, (c, 1, *kernel.shape))))
    w = w.to(getattr(torch, np.dtype(dtype).name))
    geometry = conv_problem(
        "conv", "forward", shape, tuple(w.shape), np.dtype(dtype).name, stride=s,
        padding="same", groups=c,
    )  # fmt: skip
    pads = [q for lo, hi in zip(geometry.pad_lo[::-1], geometry.pad_hi[::-1]) for q in (lo, hi)]
    conv = getattr(torch.nn.functional, f"conv{rank}d")
    return lambda t: conv(torch.nn.functional.pad(t, pads), w, stride=s, groups=c)


def build_resample(v: Variant, dtype: str, passes: Sequence[str], peers: dict) -> list[Case]:
    """Upsampling, pixel (un)shuffle, blur pooling and stochastic pooling's eval mode against
    their torch formulations (autograd for the training step)."""
    if v.op == "stochastic_pool":
        return _build_stochastic(v, dtype, passes, peers)
    torch = peers.get("torch")
    x = _inputs(v, dtype, low=0.01)
    fc_forward, fc_backward, torch_forward = _resample_ops(v, x, torch)
    y = arrays(fc_forward())[0]
    g = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)

    def fc_step() -> Any:
        fc_forward()
        return fc_backward(g)

    mine = {
        "forward": Call("fastconv", "fastconv", fc_forward, arrays),
        "step": Call("fastconv", "fastconv", fc_step, arrays),
    }
    cases = {p: [mine[p]] for p in passes}
    if torch_forward is not None:
        xt = torch.from_numpy(x)
        leaf = xt.clone().requires_grad_(True)
        theirs = {
            "forward": Call("torch", "peer", lambda: torch_forward(xt), arrays),
            "step": Call(
                "torch", "peer", _torch_step(torch, torch_forward, [leaf], torch.from_numpy(g)),
                arrays,
            ),
        }  # fmt: skip
        for p in passes:
            cases[p].append(theirs[p])
    return [Case(p, cases[p], 0, allclose(dtype)) for p in passes]


def _build_stochastic(v: Variant, dtype: str, passes: Sequence[str], peers: dict) -> list[Case]:
    """Stochastic pooling in training mode: fastconv's draw (Philox, saved indices, scatter
    backward) against torch's unfold + multinomial + gather. The two draw different samples,
    so the check is statistical: each side's total (forward: sum of y; step with grad_y = 1:
    sum of x * grad_x, the same sum) within STOCHASTIC_SIGMAS standard deviations of the
    exact expectation and of each other; fastconv's outputs must also be x at its indices."""
    torch = peers.get("torch")
    a, rank = v.args, len(v.x) - 2
    k, s, p = a["kernel"], a.get("stride", a["kernel"]), a.get("padding", 0)
    x = _inputs(v, dtype, low=0.01)
    kw = dict(stride=s, padding=p)

    def fc_forward() -> Any:
        return fastconv.stochastic_pool(x, k, **kw, seed=1, return_indices=True)

    y, idx = fc_forward()
    ones = np.ones_like(y)

    def fc_step() -> Any:
        _, indices = fc_forward()
        return fastconv.stochastic_pool_backward(ones, x, k, **kw, indices=indices)

    planes = x.reshape(x.shape[0] * x.shape[1], -1)

    def fc_total(out: Any) -> list[np.ndarray]:
        yv, iv = out
        picked = np.take_along_axis(planes, iv.reshape(planes.shape[0], -1), axis=1)
        if not np.array_equal(picked.reshape(yv.shape), yv):
            raise AssertionError("fastconv's stochastic_pool outputs are not x at its indices")
        return [np.array(float(yv.sum()))]

    def step_total(out: Any) -> list[np.ndarray]:
        return [np.array(float((x * arrays(out)[0]).sum()))]

    mine = {
        "forward": Call("fastconv", "fastconv", fc_forward, fc_total),
        "step": Call("fastconv", "fastconv", fc_step, step_total),
    }
    cases = {q: [mine[q]] for q in passes}
    if torch is None or rank != 2:
        return [Case(q, cases[q]) for q in passes]
    F = torch.nn.functional
    xt = torch.from_numpy(x)

    def torch_forward(t: Any) -> Any:  # unfold, normalise, multinomial, gather
        n, c = t.shape[:2]
        patches = F.unfold(t, k, padding=p, stride=s).view(n, c, k * k, -1)
        probs = patches.detach().permute(0, 1, 3, 2).reshape(-1, k * k)
        pick = torch.multinomial(probs, 1).view(n, c, 1, -1)
        return patches.gather(2, pick).view(n, c, *y.shape[2:])

    leaf = xt.clone().requires_grad_(True)
    torch_step = _torch_step(torch, torch_forward, [leaf], torch.from_numpy(ones))
    theirs = {
        "forward": Call(
            "torch", "peer", lambda: torch_forward(xt), lambda o: [np.array(float(o.sum()))],
            "unfold + multinomial + gather",
        ),
        "step": Call("torch", "peer", torch_step, step_total),
    }  # fmt: skip
    pool = getattr(F, f"avg_pool{rank}d")
    x64 = torch.from_numpy(x.astype(np.float64))
    mean = pool(x64 * x64, k, s, p) / pool(x64, k, s, p)  # each window's expected draw
    var = pool(x64**3, k, s, p) / pool(x64, k, s, p) - mean * mean
    expected, sigma = float(mean.sum()), math.sqrt(float(var.sum()))

    def compare(ours: list[np.ndarray], other: list[np.ndarray]) -> tuple[str, float | None]:
        totals = {"fastconv": float(ours[0]), "torch": float(other[0])}
        for who, total in totals.items():
            z = abs(total - expected) / sigma
            if z > STOCHASTIC_SIGMAS:
                return (
                    f"{who}'s sampled total {total:.6g} is {z:.1f} sigma from {expected:.6g}",
                    None,
                )
        z = abs(totals["fastconv"] - totals["torch"]) / (sigma * math.sqrt(2))
        return (f"totals {z:.1f} sigma apart" if z > STOCHASTIC_SIGMAS else ""), None

    for q in passes:
        cases[q].append(theirs[q])
    check = f"statistical check: sampled totals within {STOCHASTIC_SIGMAS:g} sigma"
    return [Case(q, cases[q], 0, compare, check) for q in passes]
