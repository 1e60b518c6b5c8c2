"""`fastconv bench --model NAME`: a whole network, PyTorch-native against the same network after
fastconv.torch.replace_modules, one training step (forward + backward) and inference, timed
interleaved in one process with the same threads."""

from __future__ import annotations

import copy
import json
import statistics
import time
from typing import Any

MODELS = ("resnet18", "resnet50", "mobilenet_v2")
# Defaults that run one model in about a minute on 2 cores (batch, image size).
DEFAULT_SHAPE = {"resnet18": (8, 112), "resnet50": (4, 112), "mobilenet_v2": (8, 112)}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_model(
    name: str, batch: int, size: int, repeats: int, threads: int, seed: int = 0
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
    x = torch.randn(batch, 3, size, size)
    saved = (torch.get_num_threads(), fastconv.get_num_threads())
    torch.set_num_threads(threads)
    fastconv.set_num_threads(threads)

    def infer(model):
        model.eval()
        with torch.no_grad():
            model(x)

    def train(model):
        model.train()
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

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
                        _timed(lambda: task(model))
                    )
    finally:
        torch.set_num_threads(saved[0])
        fastconv.set_num_threads(saved[1])
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
        "repeats": repeats,
        "modules_replaced": swapped,
        "rows": rows,
    }


def format_model(result: dict[str, Any]) -> str:
    head = (
        f"{result['model']}: batch {result['batch']}, {result['image_size']}x"
        f"{result['image_size']} images, {result['threads']} threads, "
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

    default_batch, default_size = DEFAULT_SHAPE[args.model]
    result = run_model(
        args.model,
        args.batch or default_batch,
        args.image_size or default_size,
        args.repeats,
        args.threads or fastconv.get_num_threads(),
    )
    print(format_model(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"results written to {args.json}")
    return 0
