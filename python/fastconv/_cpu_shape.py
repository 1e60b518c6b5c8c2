"""The numbers the CPU's `auto` rule (_cpu_rule.py) looks at: one problem's shape as the
convolution that runs, and the ISA level its kernels run at."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class _Shape:
    """The numbers the rules look at, of the convolution that runs."""

    conv_pass: str
    n: int
    c_per_group: int
    k_per_group: int
    groups: int
    spatial: int  # input positions of one image
    in_extents: tuple[int, ...]
    kernel: tuple[int, ...]
    taps: int
    stride: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    itemsize: int
    out_extents: tuple[int, ...] = ()  # of the conv's output (grad_y for backward data)
    dilation: tuple[int, ...] = ()

    @classmethod
    def of(cls, problem: Any) -> "_Shape":
        x, w, stride, lo, hi, dilation, groups, _ = problem.conv_geometry
        out = tuple(
            (i + a + b - d * (k - 1) - 1) // s + 1
            for i, a, b, d, k, s in zip(x[2:], lo, hi, dilation, w[2:], stride)
        )
        spatial = taps = 1
        for e in x[2:]:
            spatial *= e
        for e in w[2:]:
            taps *= e
        return cls(
            problem.conv_pass,
            x[0],
            w[1],
            w[0] // groups,
            groups,
            spatial,
            tuple(x[2:]),
            tuple(w[2:]),
            taps,
            tuple(stride),
            tuple(lo),
            tuple(hi),
            8 if problem.dtype == "float64" else 4,
            out,
            tuple(dilation),
        )


@functools.lru_cache(maxsize=None)
def _active_isa() -> str:
    """The ISA level the kernels run at ("avx512", "avx2" or "scalar")."""
    from . import _C

    return str(_C.cpu_info()["active_isa"])


# Per-core L2 below which the per-tap choices below AVX-512 differ (_cpu_taps): the AVX2 rules
# were measured on a 2 MiB-L2 Xeon capped to AVX2; most AVX2-only cores have 256-512 KiB (AMD
# Zen 1-3, Intel's client cores up to Skylake), which the AMD EPYC measurements stand for.
_SMALL_L2_BYTES = 1 << 20


@functools.lru_cache(maxsize=None)
def _l2_bytes() -> int:
    """This core's L2: as detected (sysfs, else CPUID; 512 KiB where both fail), or
    FASTCONV_L2_BYTES where set."""
    from . import _C

    return int(_C.cpu_info()["l2"])


def _small_l2() -> bool:
    """Whether this core's L2 is under 1 MiB (_l2_bytes)."""
    return _l2_bytes() < _SMALL_L2_BYTES


@functools.lru_cache(maxsize=None)
def _avx512_on_256bit_units() -> bool:
    """Whether this CPU runs 512-bit instructions on 256-bit units, one FMA of 16 floats per
    cycle: AMD's Zen 4 (vendor AuthenticAMD, CPUID family 0x19, with AVX-512), unlike the Intel
    Xeons with two 512-bit FMA units the AVX-512 rules were first measured on.
    Not detected as 256: other CPUs with one 512-bit FMA per cycle (Intel's client and some
    Xeon Bronze / Silver parts, AMD's Zen 5 mobile parts); FASTCONV_AVX512_UNITS=256|512
    replaces the detection (read once per process; other values are ignored with a warning)."""
    import os

    from . import _C

    setting = os.environ.get("FASTCONV_AVX512_UNITS", "").strip()
    if setting and setting not in ("256", "512"):
        import warnings

        warnings.warn(
            f"FASTCONV_AVX512_UNITS={setting!r} ignored (expected 256 or 512)", stacklevel=2
        )
    # The decision (detection and setting) is the compiled library's, which its row kernels
    # also read (csrc/isa/cpu_features.cc, avx512_on_256bit_units).
    return _C.cpu_info().get("avx512_units") == 256
