"""GPU checks that cuda/device_check.sh runs on a machine with an NVIDIA GPU (and PyTorch with
CUDA): stages that the pytest files do not cover, each printing one summary line per finding.

    python cuda/device_checks.py random [N]     N random geometries (all passes) vs cuDNN
    python cuda/device_checks.py suite          the reference suite's layers (batch 2) vs cuDNN
    python cuda/device_checks.py small          one tiny call of every GPU kernel (for the
                                                compute-sanitizer runs: few, small launches)
    python cuda/device_checks.py graph          CUDA-graph capture of a small conv net step
    python cuda/device_checks.py overhead       per-call host overhead, fastconv vs torch

The reference is PyTorch in float64 on the GPU over the operands rounded to the tested dtype,
so only the kernel's own arithmetic is measured (tolerances: tests/cuda_helpers.py). Exit code
1 when any check failed.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import fastconv  # noqa: E402
from cuda_helpers import rel_tolerance  # noqa: E402

F = torch.nn.functional
# FASTCONV_CHECK_DEVICE=cpu: a dry run of the script logic on the CPU (float32/float64 only)
DEVICE = os.environ.get("FASTCONV_CHECK_DEVICE", "cuda")
DTYPES = (
    ("float32", "float32", "float16", "bfloat16", "float64")
    if DEVICE == "cuda"
    else (
        "float32",
        "float64",
    )
)
FAILURES: list[str] = []
ALGOS = ("implicit_gemm", "implicit_gemm_simt", "depthwise") if DEVICE == "cuda" else ("auto",)


def close(got, want, dtype: str, reduction: int, what: str) -> float:
    """Error relative to max|want| in units of the dtype's tolerance (<= 1 passes)."""
    got = got.detach().double()
    want = want.detach().double()
    if got.shape != want.shape:
        FAILURES.append(f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}")
        return math.inf
    if want.numel() == 0:
        return 0.0
    scale = max(float(want.abs().max()), 1e-30)
    err = float((got - want).abs().max()) / scale
    if not math.isfinite(err):
        err = math.inf
    ratio = err / rel_tolerance(dtype, reduction)
    if ratio > 1:
        FAILURES.append(f"{what}: max error {err:.3g} of scale, {ratio:.2f}x the tolerance")
    return ratio


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def tol_name(dtype: str) -> str:
    tf32 = (
        DEVICE == "cuda"
        and dtype == "float32"
        and fastconv.backends.cuda_plan.get_allow_tf32("torch")
    )
    return "tf32" if tf32 else dtype


def conv_fn(rank: int, transposed: bool):
    return getattr(F, f"conv{'_transpose' if transposed else ''}{rank}d")


def check_conv(x_shape, w_shape, kw, dtype: str, transposed: bool, what: str) -> float:
    """Forward and both backward passes of conv (or conv_transpose) vs torch in float64."""
    dt = getattr(torch, dtype)
    x = torch.empty(x_shape, device=DEVICE).uniform_(-1, 1).to(dt)
    w = torch.empty(w_shape, device=DEVICE).uniform_(-1, 1).to(dt)
    rank = len(x_shape) - 2
    xr = x.double().requires_grad_(True)
    wr = w.double().requires_grad_(True)
    yr = conv_fn(rank, transposed)(xr, wr, None, **kw)
    g = torch.empty_like(yr).uniform_(-1, 1).to(dt)
    gx, gw = torch.autograd.grad(yr, (xr, wr), g.double())
    tol = tol_name(dtype)
    groups = kw.get("groups", 1)
    taps = math.prod(w_shape[2:])
    fk = dict(kw)
    if transposed:
        y = fastconv.conv_transpose(x, w, **fk)
        gxf = fastconv.conv_transpose_backward_data(g, w, **fk)
        gwf = fastconv.conv_transpose_backward_weight(x, g, w.shape, **fk)
        l_fwd, l_bd = w_shape[0] // groups * taps, w_shape[1] * taps
    else:
        y = fastconv.conv(x, w, **fk)
        gxf = fastconv.conv_backward_data(g, w, x.shape, **fk)
        gwf = fastconv.conv_backward_weight(x, g, w.shape, **fk)
        l_fwd, l_bd = w_shape[1] * taps, w_shape[0] // groups * taps
    l_bw = x_shape[0] * math.prod(yr.shape[2:] if not transposed else x_shape[2:])
    return max(
        close(y, yr, tol, l_fwd, f"{what} forward"),
        close(gxf, gx, tol, l_bd + 64, f"{what} backward_data"),
        close(gwf, gw, tol, l_bw + 64, f"{what} backward_weight"),
    )


def random_geometry(rng: np.random.Generator):
    rank = int(rng.choice([1, 2, 2, 2, 3]))
    groups = int(rng.choice([1, 1, 1, 2, 4]))
    depthwise = rng.random() < 0.2
    cin_g = 1 if depthwise else int(rng.integers(1, 9))
    cout_g = int(rng.integers(1, 3)) if depthwise else int(rng.integers(1, 9))
    if depthwise:
        groups = int(rng.integers(2, 17))
    n = int(rng.integers(1, 5))
    ks = [int(rng.integers(1, 6 if rank < 3 else 4)) for _ in range(rank)]
    stride = [int(rng.integers(1, 4)) for _ in range(rank)]
    dil = [int(rng.choice([1, 1, 2])) for _ in range(rank)]
    transposed = rng.random() < 0.25
    extra = 1 if transposed else 2  # a transposed conv's output must stay non-empty
    pad = [int(rng.integers(0, (k - 1) * d // 2 + extra)) for k, d in zip(ks, dil)]
    hi = 40 if rank == 1 else (18 if rank == 2 else 8)
    span = [(k - 1) * d + 1 for k, d in zip(ks, dil)]
    size = [max(int(rng.integers(1, hi)), s - 2 * p) for s, p in zip(span, pad)]
    x_shape = (n, cin_g * groups, *size)
    if transposed:
        w_shape = (cin_g * groups, cout_g, *ks)
        out_pad = [int(rng.integers(0, max(s, d))) for s, d in zip(stride, dil)]
        out_pad = [min(o, max(s, d) - 1) for o, s, d in zip(out_pad, stride, dil)]
        kw = dict(stride=stride, padding=pad, output_padding=out_pad, groups=groups, dilation=dil)
    else:
        w_shape = (cout_g * groups, cin_g, *ks)
        kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    dtype = str(rng.choice(DTYPES))
    return x_shape, w_shape, kw, dtype, transposed


def stage_random(count: int = 200, seed: int = 20261130) -> None:
    rng = np.random.default_rng(seed)
    worst, done = 0.0, 0
    for i in range(count):
        x_shape, w_shape, kw, dtype, transposed = random_geometry(rng)
        what = f"random#{i} {'T' if transposed else ''}conv x{x_shape} w{w_shape} {kw} {dtype}"
        try:
            worst = max(worst, check_conv(x_shape, w_shape, kw, dtype, transposed, what))
            done += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported, the run goes on
            FAILURES.append(f"{what}: {type(exc).__name__}: {exc}")
    print(f"random: {done}/{count} geometries ran, worst error {worst:.2f}x tolerance")


def stage_suite(batch: int = 2) -> None:
    from fastconv.benchmark.suite import load_suite, resolve_suite

    worst, done = 0.0, 0
    for layer in load_suite(resolve_suite("reference")):
        if layer.is_pool:
            continue
        x_shape = (batch, *layer.input_shape()[1:])
        kw = dict(
            stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups
        )
        if layer.op == "conv_transpose":
            kw["output_padding"] = layer.output_padding or 0
        for dtype in DTYPES[1:3]:
            what = f"suite {layer.name} {dtype}"
            try:
                worst = max(
                    worst,
                    check_conv(
                        x_shape, layer.weight_shape(), kw, dtype, layer.op == "conv_transpose", what
                    ),
                )
                done += 1
            except Exception as exc:  # noqa: BLE001
                FAILURES.append(f"{what}: {type(exc).__name__}: {exc}")
    print(f"suite: {done} layer x dtype checks ran, worst error {worst:.2f}x tolerance")


def stage_small() -> None:
    """Every GPU kernel once on tiny shapes: forward/backward conv (implicit GEMM, SIMT,
    depthwise, transposed), every pool and its backward, max_unpool."""
    rng = np.random.default_rng(1)
    for algo in ALGOS:
        for dtype in sorted(set(DTYPES)):
            w_shape = (6, 1, 3, 3) if algo == "depthwise" else (5, 3, 3, 3)
            x_shape = (2, 6 if algo == "depthwise" else 3, 9, 7)
            kw = dict(stride=2, padding=1, groups=6 if algo == "depthwise" else 1)
            x = torch.from_numpy(rng.uniform(-1, 1, x_shape)).to(DEVICE, getattr(torch, dtype))
            w = torch.from_numpy(rng.uniform(-1, 1, w_shape)).to(DEVICE, getattr(torch, dtype))
            y = fastconv.conv(x, w, algo=algo, **kw)
            fastconv.conv_backward_data(y, w, x.shape, algo=algo, **kw)
            fastconv.conv_backward_weight(x, y, w.shape, algo=algo, **kw)
            fastconv.conv_transpose(y, w, algo=algo, **kw)
    if DEVICE == "cuda":
        tensor_op_calls()
    x = torch.rand(2, 3, 9, 8, device=DEVICE) + 0.1
    y, idx = fastconv.max_pool(x, 3, stride=2, padding=1, return_indices=True)
    fastconv.max_pool_backward(y, x, 3, stride=2, padding=1)
    fastconv.avg_pool_backward(
        fastconv.avg_pool(x, 3, stride=2, padding=1), x.shape, 3, stride=2, padding=1
    )
    fastconv.lp_pool_backward(fastconv.lp_pool(x, 2.0, 2), x, 2.0, 2)
    fastconv.max_unpool(y, idx, 3, stride=2, padding=1, output_size=x.shape[2:])
    fastconv.global_avg_pool(x)
    fastconv.global_max_pool(x)
    sync()
    print("small: every kernel ran once")


def tensor_op_calls() -> None:
    """The tensor-op path's kernels once each (channel counts the tiny calls above lack): the
    sm_80 kernels on a small float16 / bfloat16 / TF32 layer (split and strided), and on a 9.0
    device the Hopper core's on layers big enough to run unsplit (132 multiprocessors: 264
    tiles): forward with and without a bias, unit-stride backward data, the weight gradient."""
    for dtype in ("float16", "bfloat16", "float32"):
        dt = getattr(torch, dtype)
        x = torch.rand(4, 16, 9, 7, device=DEVICE).to(dt)
        w = torch.rand(16, 16, 3, 3, device=DEVICE).to(dt)
        for kw in (dict(padding=1), dict(stride=2, padding=1)):
            y = fastconv.conv(x, w, w[:, 0, 0, 0], **kw)
            fastconv.conv_backward_data(y, w, x.shape, **kw)
            fastconv.conv_backward_weight(x, y, w.shape, **kw)
    if torch.cuda.get_device_capability() != (9, 0):
        return
    for dtype in ("float16", "bfloat16"):
        dt = getattr(torch, dtype)
        x = torch.rand(32, 128, 56, 56, device=DEVICE).to(dt)
        w = torch.rand(128, 128, 3, 3, device=DEVICE).to(dt)
        y = fastconv.conv(x, w, padding=1)
        fastconv.conv(x, w, w[:, 0, 0, 0], padding=1)
        fastconv.conv_backward_data(y, w, x.shape, padding=1)
        y = fastconv.conv(x[:, :64], w[:64, :64], padding=1)  # 128x64 tiles
        fastconv.conv_backward_data(y, w[:64, :64], (32, 64, 56, 56), padding=1)
        x = torch.rand(8, 512, 14, 14, device=DEVICE).to(dt)
        w = torch.rand(1024, 512, 3, 3, device=DEVICE).to(dt)
        fastconv.conv_backward_weight(x, fastconv.conv(x, w, padding=1), w.shape, padding=1)
        for pass_ in ("forward", "backward_data"):
            x = torch.empty(32, 128, 56, 56, device=DEVICE, dtype=dt)
            note = fastconv.explain(x, (128, 128, 3, 3), pass_=pass_, padding=1).reason
            if "sm_90a" not in note:
                FAILURES.append(f"small: {dtype} {pass_} did not run the Hopper core: {note}")


def stage_graph() -> None:
    """Capture forward + both backward passes + pooling in one CUDA graph, replay it on new
    inputs, compare with eager calls; then a fastconv.torch model's training step."""
    torch.manual_seed(0)
    x = torch.randn(8, 16, 32, 32, device=DEVICE)
    w1 = torch.randn(32, 16, 3, 3, device=DEVICE) * 0.1
    w2 = torch.randn(32, 1, 3, 3, device=DEVICE) * 0.1

    def step(x):
        h = fastconv.conv(x, w1, padding=1)
        p = fastconv.max_pool(h, 2)
        d = fastconv.conv(p, w2, padding=1, groups=32)
        a = fastconv.avg_pool(d, 2)
        gd = fastconv.avg_pool_backward(torch.ones_like(a), d.shape, 2)
        gw2 = fastconv.conv_backward_weight(p, gd, w2.shape, padding=1, groups=32)
        gp = fastconv.conv_backward_data(gd, w2, p.shape, padding=1, groups=32)
        gh = fastconv.max_pool_backward(gp, h, 2)
        gw1 = fastconv.conv_backward_weight(x, gh, w1.shape, padding=1)
        return a, gw1, gw2

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step(x)
    torch.cuda.current_stream().wait_stream(s)
    static_x = x.clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = step(static_x)
    new = torch.randn_like(x)
    static_x.copy_(new)
    graph.replay()
    torch.cuda.synchronize()
    for got, want, name in zip(outs, step(new), ("avg", "gw1", "gw2")):
        if not torch.equal(got, want):
            FAILURES.append(
                f"graph: replayed {name} differs from eager by "
                f"{float((got - want).abs().max()):.3g}"
            )
    print("graph: functional step captured and replayed")

    import fastconv.torch as fct

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 8 * 8, 10),
    ).to(DEVICE)
    import copy

    native = copy.deepcopy(model)
    swapped = fct.replace_modules(model)
    data = torch.randn(16, 3, 32, 32, device=DEVICE)
    target = torch.randint(0, 10, (16,), device=DEVICE)
    old_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # fastconv follows this flag for torch inputs
    try:
        grads = []
        for m in (native, model):
            m.zero_grad()
            F.cross_entropy(m(data), target).backward()
            grads.append([p.grad.clone() for p in m.parameters()])
    finally:
        torch.backends.cudnn.allow_tf32 = old_tf32
    for i, (gn, gf) in enumerate(zip(*grads)):
        close(gf, gn, "float32", 16 * 9 * 32 * 32 + 64, f"graph: fastconv.torch grad {i}")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def train_step():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(data), target)
        loss.backward()
        opt.step()
        return loss

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            train_step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_loss = train_step()
    losses = []
    for _ in range(5):
        g.replay()
        losses.append(float(static_loss))
    if not losses[-1] < losses[0]:
        FAILURES.append(f"graph: captured training step does not reduce the loss: {losses}")
    print(f"graph: fastconv.torch model ({swapped} modules) step captured; losses {losses}")


def stage_cpu() -> None:
    """Every CPU algorithm, pass and dtype on a few small shapes vs the reference algorithm,
    announced before each call (a crash names its call): the CPU path at this machine's ISA
    and thread count."""
    rng = np.random.default_rng(2)
    shapes = [
        ((2, 3, 16, 16), (4, 3, 3, 3), dict(padding=1)),
        ((2, 16, 14, 14), (32, 16, 3, 3), dict(padding=1)),
        ((1, 8, 30), (8, 8, 3), dict(padding=1)),
        ((2, 8, 9, 9), (8, 1, 3, 3), dict(padding=1, groups=8)),
        ((1, 4, 6, 6, 6), (4, 4, 3, 3, 3), dict(padding=1)),
    ]
    for x_shape, w_shape, kw in shapes:
        for dtype in ("float32", "float64"):
            x = rng.uniform(-1, 1, x_shape).astype(dtype)
            w = rng.uniform(-1, 1, w_shape).astype(dtype)
            y = fastconv.conv(x, w, algo="reference", **kw)
            g = rng.uniform(-1, 1, y.shape).astype(dtype)
            want = (
                y,
                fastconv.conv_backward_data(g, w, x.shape, algo="reference", **kw),
                fastconv.conv_backward_weight(x, g, w.shape, algo="reference", **kw),
            )
            for algo in fastconv.algorithms("conv"):
                print(f"cpu: {algo} {dtype} x{x_shape} w{w_shape}", flush=True)
                try:
                    got = (
                        fastconv.conv(x, w, algo=algo, **kw),
                        fastconv.conv_backward_data(g, w, x.shape, algo=algo, **kw),
                        fastconv.conv_backward_weight(x, g, w.shape, algo=algo, **kw),
                    )
                except NotImplementedError:
                    continue  # the algorithm does not take this shape
                for p, a, b in zip(("forward", "bwd_data", "bwd_weight"), got, want):
                    close(torch.from_numpy(a), torch.from_numpy(b), dtype, 1000, f"cpu {algo} {p}")
    print("cpu: every algorithm ran")


def stage_overhead() -> None:
    x = torch.randn(1, 8, 8, 8, device=DEVICE)
    w = torch.randn(8, 8, 3, 3, device=DEVICE)
    for name, fn in (
        ("fastconv.conv", lambda: fastconv.conv(x, w, padding=1)),
        ("F.conv2d", lambda: F.conv2d(x, w, padding=1)),
        ("fastconv.max_pool", lambda: fastconv.max_pool(x, 2)),
        ("F.max_pool2d", lambda: F.max_pool2d(x, 2)),
    ):
        for _ in range(50):
            fn()
        torch.cuda.synchronize()
        best = math.inf
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(200):
                fn()
            torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - t) / 200)
        print(f"overhead: {name:20s} {best * 1e6:8.1f} us/call")


def main(argv: list[str]) -> int:
    stage = argv[0] if argv else "random"
    fn = {
        "random": stage_random,
        "suite": stage_suite,
        "small": stage_small,
        "graph": stage_graph,
        "overhead": stage_overhead,
        "cpu": stage_cpu,
    }[stage]
    try:
        fn(*[int(a) for a in argv[1:]])
    except Exception:  # noqa: BLE001
        FAILURES.append(f"{stage}: {traceback.format_exc()}")
    for f in FAILURES[:40]:
        print("FAIL", f)
    print(json.dumps({"stage": stage, "failures": len(FAILURES)}))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
