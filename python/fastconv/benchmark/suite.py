"""Layer suites for `fastconv bench`: finding, reading and checking suite files.

A suite is a JSON file with lists "conv", "conv_transpose" and "pool" (the format of
benchmarks/suites/reference.json). Each entry gives n, c, in (spatial extents), kernel and,
for conv ops, k (output channels); optional stride (default 1; pools: the kernel size, as in
PyTorch), padding (0), dilation (1), groups (1), output_padding (0, conv_transpose only);
pools give kind "max" or "avg". A variants suite (benchmarks/suites/variants.json) has the
sections VARIANT_SECTIONS instead, read by .variants.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fastconv._problem import conv_problem, pool_problem

ENTRY_KEYS = {
    "name",
    "n",
    "c",
    "k",
    "in",
    "kernel",
    "stride",
    "padding",
    "dilation",
    "groups",
    "output_padding",
    "kind",
}


LAYER_SECTIONS = ("conv", "conv_transpose", "pool")
VARIANT_SECTIONS = ("conv_variants", "resample")  # one op call per entry (.variants)


class BenchError(Exception):
    """A problem with the request (suite, options); reported as one line, no traceback."""


@dataclass(frozen=True)
class Layer:
    """One benchmark problem, normalised from a suite entry."""

    name: str
    op: str  # "conv" | "conv_transpose" | "max_pool" | "avg_pool"
    n: int
    c: int  # input channels
    k: int  # output channels (== c for pools)
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int = 1
    output_padding: tuple[int, ...] = ()

    @property
    def rank(self) -> int:
        return len(self.spatial)

    @property
    def is_pool(self) -> bool:
        return self.op.endswith("_pool")

    def input_shape(self) -> tuple[int, ...]:
        return (self.n, self.c, *self.spatial)

    def output_shape(self) -> tuple[int, ...]:
        return _library_output_shape(self)

    def output_spatial(self) -> tuple[int, ...]:
        return self.output_shape()[2:]

    def weight_shape(self) -> tuple[int, ...]:
        if self.op == "conv_transpose":  # (C_in, K_out/G, *kernel), as PyTorch
            return (self.c, self.k // self.groups, *self.kernel)
        return (self.k, self.c // self.groups, *self.kernel)

    def flops(self) -> int:
        """2*N*K*(C/G)*prod(kernel)*prod(out) for conv (every pass); one op per window element
        for pools. A transposed conv counts as the conv whose backward_data it is."""
        if self.is_pool:
            return math.prod(self.output_shape()) * math.prod(self.kernel)
        conv_x, conv_y = self.input_shape(), self.output_shape()
        if self.op == "conv_transpose":  # its conv reads our output, writes our input
            conv_x, conv_y = conv_y, conv_x
        return 2 * math.prod(conv_y) * (conv_x[1] // self.groups) * math.prod(self.kernel)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "n": self.n,
            "c": self.c,
            "k": self.k,
            "in": list(self.spatial),
            "kernel": list(self.kernel),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "output_padding": list(self.output_padding),
            "out": list(self.output_spatial()),
            "flops": self.flops(),
        }


def _library_output_shape(layer: Layer) -> tuple[int, ...]:
    """(N, K, *out) of the layer's forward pass, as fastconv's compiled geometry computes it.

    The only output-size computation of the benchmark, so its shapes cannot drift from the
    library's; raises ValueError where the library rejects the geometry."""
    x_shape, pad = layer.input_shape(), list(layer.padding)
    geometry = dict(stride=list(layer.stride), padding=pad, dilation=list(layer.dilation))
    if layer.is_pool:
        pool = pool_problem(layer.op, "forward", x_shape, "float32", list(layer.kernel), **geometry)
        return tuple(pool.y_shape)
    extra = {"output_padding": list(layer.output_padding)} if layer.op == "conv_transpose" else {}
    problem = conv_problem(
        layer.op,
        "forward",
        x_shape,
        layer.weight_shape(),
        "float32",
        groups=layer.groups,
        **geometry,
        **extra,
    )
    shape = problem.y_shape
    return tuple(shape)


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BenchError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _per_dim(
    entry: dict[str, Any], key: str, rank: int, default: Any, where: str, minimum: int
) -> tuple[int, ...]:
    value = entry.get(key, default)
    values = list(value) if isinstance(value, (list, tuple)) else [value] * rank
    if len(values) != rank:
        raise BenchError(
            f"{where}: '{key}' needs {rank} entries (one per spatial dim), got {value!r}"
        )
    return tuple(_positive_int(v, f"{where}: '{key}'", minimum) for v in values)


def parse_layer(section: str, entry: Any, index: int) -> Layer:
    """Turn one suite entry into a checked Layer; errors name the entry and the key."""
    where = f"{section}[{index}]"
    if not isinstance(entry, dict):
        raise BenchError(f"{where}: expected an object, got {type(entry).__name__}")
    where = f"{section}[{index}] ({entry.get('name', '?')})"
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise BenchError(f"{where}: unknown key(s) {unknown}; known: {sorted(ENTRY_KEYS)}")
    for key in ("name", "n", "c", "in", "kernel") + (() if section == "pool" else ("k",)):
        if key not in entry:
            raise BenchError(f"{where}: missing '{key}'")
    spatial = entry["in"] if isinstance(entry["in"], list) else [entry["in"]]
    rank = len(spatial)
    if not 1 <= rank <= 3:
        raise BenchError(f"{where}: 'in' must have 1 to 3 spatial extents, got {entry['in']!r}")
    kernel = _per_dim(entry, "kernel", rank, None, where, 1)
    op = section
    if section == "pool":
        if entry.get("kind") not in ("max", "avg"):
            raise BenchError(f'{where}: \'kind\' must be "max" or "avg", got {entry.get("kind")!r}')
        op = f"{entry['kind']}_pool"
    layer = Layer(
        name=str(entry["name"]),
        op=op,
        n=_positive_int(entry["n"], f"{where}: 'n'"),
        c=_positive_int(entry["c"], f"{where}: 'c'"),
        k=entry["c"] if section == "pool" else _positive_int(entry["k"], f"{where}: 'k'"),
        spatial=_per_dim(entry, "in", rank, None, where, 1),
        kernel=kernel,
        stride=_per_dim(entry, "stride", rank, kernel if section == "pool" else 1, where, 1),
        padding=_per_dim(entry, "padding", rank, 0, where, 0),
        dilation=_per_dim(entry, "dilation", rank, 1, where, 1),
        groups=_positive_int(entry.get("groups", 1), f"{where}: 'groups'"),
        output_padding=_per_dim(entry, "output_padding", rank, 0, where, 0),
    )
    _check_layer(layer, entry, where)
    return layer


def _check_layer(layer: Layer, entry: dict[str, Any], where: str) -> None:
    if layer.c % layer.groups or layer.k % layer.groups:
        raise BenchError(
            f"{where}: channels c={layer.c}, k={layer.k} are not divisible by groups={layer.groups}"
        )
    if layer.op != "conv_transpose" and "output_padding" in entry:
        raise BenchError(f"{where}: 'output_padding' applies to conv_transpose only")
    if layer.is_pool and ("groups" in entry or "k" in entry):
        raise BenchError(f"{where}: pools take neither 'groups' nor 'k'")
    if layer.op == "avg_pool" and any(d != 1 for d in layer.dilation):
        raise BenchError(f"{where}: avg pools take no dilation")
    if layer.is_pool and any(p > k // 2 for p, k in zip(layer.padding, layer.kernel)):
        raise BenchError(f"{where}: pool padding {layer.padding} exceeds kernel_size // 2")
    try:  # e.g. a kernel larger than the padded input: the library's message says where
        _library_output_shape(layer)
    except ValueError as exc:
        raise BenchError(f"{where}: {exc}") from None


def read_suite(path: Path) -> dict[str, Any]:
    """A suite file's JSON object; its sections are all layer or all variant sections."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read suite {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise BenchError(f"suite {str(path)!r}: expected a JSON object at the top level")
    known = ("about",) + LAYER_SECTIONS + VARIANT_SECTIONS
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise BenchError(
            f"suite {str(path)!r}: unknown section(s) {unknown}; known: {', '.join(known)}"
        )
    if is_variant_suite(data) and set(data) & set(LAYER_SECTIONS):
        raise BenchError(
            f"suite {str(path)!r}: holds layer sections {list(LAYER_SECTIONS)} and variant "
            f"sections {list(VARIANT_SECTIONS)}; a suite holds one kind"
        )
    return data


def is_variant_suite(data: dict[str, Any]) -> bool:
    return bool(set(data) & set(VARIANT_SECTIONS))


def load_suite(path: Path, data: dict[str, Any] | None = None) -> list[Layer]:
    """Read (or take the read `data` of) a layer suite and check it; names must be unique."""
    data = read_suite(path) if data is None else data
    if is_variant_suite(data):
        raise BenchError(f"suite {str(path)!r} is a variants suite: it holds no layers")
    return parse_sections(path, data, LAYER_SECTIONS, parse_layer)


def parse_sections(
    path: Path, data: dict[str, Any], sections: tuple[str, ...], parse: Callable[..., Any]
) -> list[Any]:
    """parse(section, entry, index) of every entry of the sections, in order; the results'
    names must be unique."""
    items = [
        parse(section, entry, i)
        for section in sections
        for i, entry in enumerate(data.get(section, []))
    ]
    names = [item.name for item in items]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BenchError(f"suite {str(path)!r}: duplicate layer names {duplicates}")
    return items


def suite_dirs() -> list[Path]:
    """Where suite names resolve: the installed copy first, then the source tree's."""
    package = Path(__file__).resolve().parents[1]  # python/fastconv, or the installed fastconv
    return [package / "suites", package.parents[1] / "benchmarks" / "suites"]


def resolve_suite(spec: str) -> Path:
    looks_like_path = spec.endswith(".json") or "/" in spec or os.sep in spec
    candidates = [] if looks_like_path else [d / f"{spec}.json" for d in suite_dirs()]
    candidates.append(Path(spec))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    names = sorted({p.stem for d in suite_dirs() if d.is_dir() for p in d.glob("*.json")})
    raise BenchError(
        f"unknown suite {spec!r}: no such file, and no {spec}.json in "
        f"{', '.join(str(d) for d in suite_dirs())}; "
        f"available: {', '.join(names) or 'none'}"
    )
