"""`fastconv bench --model NAME`: a whole network, PyTorch-native against the same network after
fastconv.torch.replace_modules, one training step (forward + backward) and inference, timed
interleaved in one process with the same threads; on the GPU (`--device cuda`) in the dtype
asked (float16 / bfloat16 / float32), channels_last with `--memory-format channels_last`,
PyTorch's convolutions with cudnn.benchmark=True, each timed call synchronised."""

from __future__ import annotations

import copy
import json
import statistics
import time
from typing import Any

MODELS = ("resnet18", "resnet50", "mobilenet_v2")
# Defaults that run one model in about a minute on 2 cores (batch, image size); on a GPU, a
# training batch of ImageNet images.
DEFAULT_SHAPE = {"resnet18": (8, 112), "resnet50": (4, 112), "mobilenet_v2": (8, 112)}
GPU_SHAPE = (32, 224)


def _timed(fn, sync=None) -> float:
    if sync:
        sync()
    start = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - start


def run_model(
    name: str,
    batch: int,
    size: int,
    repeats: int,
    threads: int,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    memory_format: str = "contiguous",
) -> dict[str, Any]:
    """Medians (seconds) of inference and a training step for native and replaced models."""
    import torch

    import fastconv
    import fastconv.torch as fct

    from .models import build

    torch.manual_seed(seed)
    native = build(name)
    replaced = copy.deepcopy(native)
    swapped = fct.replace_modules(replaced)
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    tdt = getattr(torch, dtype)
    native, replaced = (m.to(device, tdt).to(memory_format=fmt) for m in (native, replaced))
    x = torch.randn(batch, 3, size, size).to(device, tdt).contiguous(memory_format=fmt)
    sync = torch.cuda.synchronize if device == "cuda" else None
    saved = (torch.get_num_threads(), fastconv.get_num_threads())
    saved_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # PyTorch's best GPU algorithms (no effect on CPU)
    torch.set_num_threads(threads)
    fastconv.set_num_threads(threads)

    def infer(model):
        model.eval()
        with torch.no_grad():
            model(x)

    def train(model):
        model.train()
        model.zero_grad(set_to_none=True)
        model(x).float().sum().backward()

    models = {"torch": native, "fastconv": replaced}
    tasks = {"inference": infer, "training step": train}
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for model in models.values():  # warm: plans, allocator, first-call imports
            for task in tasks.values():
                task(model)
                task(model)
        for _ in range(repeats):
            for task_name, task in tasks.items():
                for model_name, model in models.items():
                    times.setdefault((task_name, model_name), []).append(
                        _timed(lambda: task(model), sync)
                    )
    finally:
        torch.set_num_threads(saved[0])
        fastconv.set_num_threads(saved[1])
        torch.backends.cudnn.benchmark = saved_benchmark
    rows = []
    for task_name in tasks:
        t_torch = statistics.median(times[(task_name, "torch")])
        t_fast = statistics.median(times[(task_name, "fastconv")])
        rows.append(
            {"task": task_name, "torch_s": t_torch, "fastconv_s": t_fast, "ratio": t_torch / t_fast}
        )
    return {
        "model": name,
        "batch": batch,
        "image_size": size,
        "threads": threads,
        "device": device,
        "dtype": dtype,
        "memory_format": memory_format,
        "repeats": repeats,
        "modules_replaced": swapped,
        "rows": rows,
    }


def format_model(result: dict[str, Any]) -> str:
    where = f"{result['threads']} threads"
    if result.get("device", "cpu") != "cpu":
        where = f"{result['device']}, {result['dtype']}, {result['memory_format']}"
    head = (
        f"{result['model']}: batch {result['batch']}, {result['image_size']}x"
        f"{result['image_size']} images, {where}, "
        f"{result['modules_replaced']} modules replaced, median of {result['repeats']}"
    )
    lines = [head, f"{'':16s}{'torch':>12s}{'fastconv':>12s}{'vs torch':>10s}"]
    for r in result["rows"]:
        lines.append(
            f"{r['task']:16s}{r['torch_s'] * 1e3:10.1f}ms{r['fastconv_s'] * 1e3:10.1f}ms"
            f"{r['ratio']:9.2f}x"
        )
    lines.append("vs torch = torch's time / fastconv's time (> 1: the replaced model is faster)")
    return "\n".join(lines)


def main_model(args) -> int:
    """The --model run of `fastconv bench` (fastconv/benchmark/cli.py)."""
    import fastconv

    default_batch, default_size = GPU_SHAPE if args.device == "cuda" else DEFAULT_SHAPE[args.model]
    result = run_model(
        args.model,
        args.batch or default_batch,
        args.image_size or default_size,
        args.repeats,
        args.threads or fastconv.get_num_threads(),
        device=args.device,
        dtype=args.dtype,
        memory_format=args.memory_format,
    )
    print(format_model(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"results written to {args.json}")
    return 0
