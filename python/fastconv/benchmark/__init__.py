"""`fastconv bench`: time fastconv's algorithms against PyTorch and SciPy on a layer suite.

Every candidate of a (layer, pass) is timed in the same process, interleaved in rotating
order, and the median per-call time is reported. Modules, each importing only earlier ones:
suite (suite files, Layer), candidates (what is timed), timing, report (table, JSON, plot),
variant_calls and variants (a variants suite: one op call per entry against its peers),
cli (options and the run); tune (`fastconv tune`: fills the algo="autotune" cache for a
suite's layers). The timing constants live in .timing; patch them there.
models (reference CNNs for whole-model runs; needs torch) stands apart: nothing imports it.
"""

from .cli import main
from .suite import BenchError, Layer, load_suite, parse_layer, resolve_suite, suite_dirs

__all__ = [
    "BenchError",
    "Layer",
    "load_suite",
    "main",
    "parse_layer",
    "resolve_suite",
    "suite_dirs",
]
