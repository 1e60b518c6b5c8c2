"""Results of `fastconv bench`: ratios, the table, JSON, the plot and the environment header."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

import fastconv

from .suite import BenchError
from .timing import Row

PEER_ORDER = ("torch", "scipy.fftconvolve", "scipy.oaconvolve")


# Paired samples a ratio needs; with fewer (a candidate timed once) it is the medians' ratio.
MIN_PAIRS = 3


def paired_ratio(
    peer: list[float],
    ours: list[float],
    peer_rounds: list[int] | None = None,
    our_rounds: list[int] | None = None,
) -> float | None:
    """The median over sampling rounds of peer time / our time, or None with fewer than
    MIN_PAIRS rounds. Sample i of every candidate comes from round i of the interleaved
    measurement (timing._measure), taken within one round of the others. A shared VM changes
    speed for seconds at a time (on the 2-vCPU Zen 3: both libraries 2x slower for the second
    half of a layer's rounds): per-round ratios cancel that, while the ratio of two medians
    depends on where each median falls (resnet50.conv1, one run: medians 2.67 / 2.82 ms, 1.05x;
    round by round 1.03-1.14x).

    With `--rounds`, each sample's suite round (peer_rounds, our_rounds; Row.sample_rounds):
    the pairs are taken within each suite round, sample i of a round with sample i of the same
    round."""
    pairs: list[tuple[float, float]] = []
    if (
        peer_rounds
        and our_rounds
        and len(peer_rounds) == len(peer)
        and len(our_rounds) == len(ours)
    ):
        for r in sorted(set(peer_rounds) & set(our_rounds)):
            p_r = [t for t, k in zip(peer, peer_rounds) if k == r]
            o_r = [t for t, k in zip(ours, our_rounds) if k == r]
            pairs += zip(p_r, o_r)
    else:
        pairs = list(zip(peer, ours))
    if len(pairs) < MIN_PAIRS or min(o for _, o in pairs) <= 0:
        return None
    return float(np.median([p / o for p, o in pairs]))


def annotate(rows: list[Row]) -> None:
    """Fill ratios (peer time / row time: paired_ratio, else the medians') and mark the fastest
    correct fastconv row."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.layer, row.pass_), []).append(row)
    for group in groups.values():
        peers = {r.candidate: r for r in group if r.kind == "peer" and r.median_s}
        for row in group:
            if row.median_s:
                row.ratios = {
                    name: paired_ratio(
                        peer.times_s, row.times_s, peer.sample_rounds, row.sample_rounds
                    )
                    or peer.median_s / row.median_s
                    for name, peer in peers.items()
                    if name != row.candidate
                }
        ours = [r for r in group if r.kind == "fastconv" and r.median_s and r.status == "ok"]
        if ours:
            min(ours, key=lambda r: r.median_s or 0.0).best = True


def _fmt(value: float | None, suffix: str = "") -> str:
    if value is None:
        return "-"
    digits = 3 if value < 10 else 2 if value < 100 else 1
    return f"{value:.{digits}f}{suffix}"


def format_table(rows: list[Row], peak: float | None) -> str:
    peers = [p for p in PEER_ORDER if any(r.candidate == p for r in rows)]
    peers += sorted({r.candidate for r in rows if r.kind == "peer"} - set(peers))
    header = ["layer", "pass", "candidate", "median ms", "GFLOP/s", "% peak"]
    header += [f"vs {p.split('.')[-1]}" for p in peers] + ["note"]
    table, last = [header], ("", "")
    for row in rows:
        gflops = row.gflops
        same = (row.layer, row.pass_) == last
        last = (row.layer, row.pass_)
        cells = [
            "" if same else row.layer,
            "" if same else row.pass_,
            row.candidate + (" *" if row.best else ""),
            _fmt(None if row.median_s is None else row.median_s * 1e3),
            _fmt(gflops),
            _fmt(100 * gflops / peak) if gflops and peak else "-",
        ]
        cells += [
            _fmt(row.ratios.get(p), "x") if row.kind == "fastconv" or p != row.candidate else ""
            for p in peers
        ]
        table.append([*cells, row.note])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    numeric = range(3, len(header) - 1)  # right-align the number columns

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    notes = (
        "* fastest fastconv algorithm for the layer and pass; vs X = X's time / this time "
        "(> 1: faster than X)"
    )
    return "\n".join([line(header), rule] + [line(r) for r in table[1:]] + [notes])


def write_plot(rows: list[Row], path: Path, title: str) -> str:
    """Grouped bar chart of GFLOP/s per (layer, pass); returns a line for the user."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global backend state to disturb
    except ImportError:
        return "matplotlib is not installed; --plot skipped (pip install matplotlib)"
    timed = [r for r in rows if r.gflops]
    groups = list(dict.fromkeys((r.layer, r.pass_) for r in timed))
    names = list(
        dict.fromkeys(
            [r.candidate for r in timed if r.kind == "fastconv"]
            + [r.candidate for r in timed if r.kind == "peer"]
        )
    )
    colors = {name: f"C{i % 10}" for i, name in enumerate(names)}
    fig = Figure(figsize=(min(max(6.0, 0.9 * len(groups) + 2.0), 24.0), 5.0))
    ax = fig.subplots()
    labelled: set[str] = set()
    for g, group in enumerate(groups):
        bars = sorted(
            (r for r in timed if (r.layer, r.pass_) == group),
            key=lambda r: names.index(r.candidate),
        )
        width = 0.8 / len(bars)
        for i, row in enumerate(bars):  # centre each group's bars on its tick
            ax.bar(
                g - 0.4 + (i + 0.5) * width,
                row.gflops,
                width,
                color=colors[row.candidate],
                label=None if row.candidate in labelled else row.candidate,
            )
            labelled.add(row.candidate)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(
        [layer if pass_ == "forward" else f"{layer} ({pass_})" for layer, pass_ in groups],
        rotation=40,
        ha="right",
        fontsize=8,
    )
    ax.set_yscale("log")  # reference and tuned kernels differ by orders of magnitude
    ax.set_ylabel("GFLOP/s (log scale)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))  # beside, not over, bars
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return f"plot written to {path}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fastconv_info() -> dict[str, Any]:
    try:
        return dict(fastconv.info())
    except Exception:  # noqa: BLE001 -- info() is a convenience; the bench runs without it
        return {}


def probe_peak_gflops(dtype: str, threads: int) -> float | None:
    """The machine's measured peak at `threads` threads, if this build can measure it."""
    probe = getattr(fastconv, "peak_gflops", None)
    if probe is None:
        return None
    try:
        return float(probe(dtype, threads=threads))
    except Exception:  # noqa: BLE001 -- a failing probe only costs the % column
        return None


def environment(
    args: argparse.Namespace, suite: Path, peers: dict[str, Any], peak: float | None
) -> dict[str, Any]:
    versions = {
        "fastconv": getattr(fastconv, "__version__", "?"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    for name in ("torch", "scipy"):
        module = peers.get(name) or sys.modules.get(name)
        versions[name] = module.__version__ if module else "not used"
    info = fastconv_info()
    torch_module = peers.get("torch")
    return {
        "suite": str(suite),
        "threads": args.threads,
        "dtype": args.dtype,
        "device": args.device,
        "memory_format": getattr(args, "memory_format", "contiguous"),
        "batch": args.batch,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "isa": info.get("isa_active", "?"),
        "isa_built": info.get("isa_built", "?"),
        "cpu_features": info.get("cpu_features", []),
        "peer_isa": peer_isa(torch_module),
        "peak_gflops": peak,
        "passes": args.passes,
        "repeats": args.repeats,
        "min_time_s": args.min_time,
        "layer_budget_s": args.layer_budget,
        "rounds": args.rounds,
        "versions": versions,
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def peer_isa(torch_module: Any) -> dict[str, Any]:
    """The instruction set PyTorch's CPU kernels run at: ATen's dispatch level (capped by
    ATEN_CPU_CAPABILITY), the oneDNN cap its convolutions honour (ONEDNN_MAX_CPU_ISA), and,
    where PyTorch has MKL, MKL's cap (MKL_ENABLE_INSTRUCTIONS): the convolutions PyTorch runs
    as GEMMs (a batch-1 1x1 layer, its slow_conv2d path) call MKL's sgemm, which ignores the
    other two (EfficientNet-B0's head 1x1 on 7x7: 0.175 ms with only ATen and oneDNN capped, i.e.
    AVX-512 GEMMs, 0.238 ms with MKL capped too)."""
    aten = None
    mkl = False
    if torch_module is not None:
        try:
            aten = str(torch_module.backends.cpu.get_cpu_capability())
        except (AttributeError, RuntimeError):  # older torch: the level is unknown, not an error
            aten = None
        try:
            mkl = bool(torch_module.backends.mkl.is_available())
        except (AttributeError, RuntimeError):
            mkl = False
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return {
        "torch_aten": aten,
        "onednn_max_cpu_isa": onednn,
        "torch_mkl": mkl,
        "mkl_enable_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS"),
    }


def _at_most_avx2(cap: str) -> bool:
    return cap.startswith(("SSE", "AVX2")) or cap == "AVX"


def isa_note(env: dict[str, Any]) -> str | None:
    """A warning when fastconv is capped below an AVX-512 CPU and PyTorch is not: the ratios
    then compare fastconv's AVX2 kernels with PyTorch's AVX-512 ones, not an AVX2 machine."""
    peer = env.get("peer_isa") or {}
    aten = (peer.get("torch_aten") or "").upper()
    if env.get("isa") not in ("avx2", "scalar") or not aten:
        return None
    if "avx512f" not in env.get("cpu_features", []):
        return None  # an AVX2-only CPU: both already run AVX2 at most
    onednn = (peer.get("onednn_max_cpu_isa") or "").upper()
    mkl = (peer.get("mkl_enable_instructions") or "").upper()
    mkl_capped = not peer.get("torch_mkl") or _at_most_avx2(mkl)
    if not aten.startswith("AVX512") and _at_most_avx2(onednn) and mkl_capped:
        return None  # all capped at AVX2 or below
    return (
        f"note: fastconv runs at {env['isa']} (FASTCONV_ISA, or a FASTCONV_AVX512=OFF build) "
        "while PyTorch may run AVX-512 "
        f"kernels (ATen {aten}, oneDNN cap {peer.get('onednn_max_cpu_isa') or 'none'}, MKL cap "
        f"{peer.get('mkl_enable_instructions') or 'none'}); to compare both at AVX2 (as on an "
        "AVX2-only CPU) also set ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 "
        "MKL_ENABLE_INSTRUCTIONS=AVX2"
    )


def header_text(env: dict[str, Any], n_layers: int) -> str:
    v = env["versions"]
    peak = f"{env['peak_gflops']:.1f} GFLOP/s" if env["peak_gflops"] else "not measured"
    peer = env.get("peer_isa") or {}
    torch_isa = ""
    if peer.get("torch_aten"):
        torch_isa = f", torch ISA {peer['torch_aten']}"
        caps = (
            [f"oneDNN cap {peer['onednn_max_cpu_isa']}"] if peer.get("onednn_max_cpu_isa") else []
        )
        if peer.get("torch_mkl") and peer.get("mkl_enable_instructions"):
            caps.append(f"MKL cap {peer['mkl_enable_instructions']}")
        if caps:
            torch_isa += f" ({', '.join(caps)})"
    fmt = env.get("memory_format", "contiguous")
    layout = f" ({fmt})" if fmt != "contiguous" else ""
    text = (
        f"fastconv bench: suite {env['suite']} ({n_layers} layers), "
        f"passes {','.join(env['passes'])}\n"
        f"threads {env['threads']} | dtype {env['dtype']} | device {env['device']}{layout} | "
        f"CPU {env['cpu']} ({env['cpu_count']} logical cores, fastconv ISA {env['isa']}"
        f"{torch_isa}) | peak {peak}\n"
        f"fastconv {v['fastconv']} | numpy {v['numpy']} | torch {v['torch']} | "
        f"scipy {v['scipy']} | python {v['python']}"
    )
    note = isa_note(env)
    return text + ("\n" + note if note else "")


def write_results(
    rows: list[Row],
    args: argparse.Namespace,
    env: dict[str, Any],
    peak: float | None,
    layers: list[dict[str, Any]],
) -> int:
    bad = [r for r in rows if r.status in ("mismatch", "error")]
    try:
        if args.json:
            payload = {"metadata": env, "layers": layers, "rows": [r.to_json(peak) for r in rows]}
            args.json.write_text(json.dumps(payload, indent=1) + "\n")
            print(f"results written to {args.json}")
        if args.plot:
            suite = Path(env["suite"]).stem
            title = f"{suite}: {env['dtype']}, {env['threads']} threads, {env['cpu']}"
            print(write_plot(rows, args.plot, title))
    except OSError as exc:  # the table above is printed; say plainly what could not be saved
        raise BenchError(f"cannot write {exc.filename}: {exc.strerror}") from None
    counts = {
        s: sum(r.status == s for r in rows) for s in ("mismatch", "error", "unsupported", "skipped")
    }
    print(f"done in {env['total_s']:.1f} s; " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if bad else 0  # wrong results or crashes fail the run, so CI notices
